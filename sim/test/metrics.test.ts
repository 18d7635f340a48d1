import { pythonFloatStr, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS } from '../src/metrics';
import { gzipAccepted, openMetricsAccepted, startSimulator, type Simulator } from '../src/server';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { ManualClock } from '../src/clock';
import { http, longText, metricValue, openStream, parsePrometheus, waitFor, type Sample } from './helpers';

const MODEL = 'kvroute/sim-qwen3';

async function scrape(sim: Simulator): Promise<Sample[]> {
  const r = await http(sim.url, 'GET', '/metrics');
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(r.text);
}

/** Wall-clock time from sending a streaming request to its first content chunk. */
async function wallTtftMs(base: string, body: unknown): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let first = -1;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (first < 0 && value && Buffer.from(value).toString('utf8').includes('"text":')) first = performance.now() - t0;
  }
  return first;
}

/** A page with the process collector's changing figures (memory, CPU, open fds) blanked, to compare two scrapes. */
function withoutProcessFigures(page: string): string {
  return page.replace(/^(process_(?:virtual_memory_bytes|resident_memory_bytes|cpu_seconds_total|open_fds)) \S+$/gm, '$1 _');
}

describe('/metrics (vLLM 0.10 names, parsed back)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, model: 'Qwen/Qwen3-0.6B', servedModelNames: [MODEL], kvCacheBlocks: 4096, simExtension: true });
  });
  const afterCleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    await Promise.all(afterCleanup.map((f) => f()));
    await sim.close();
  });

  it('starts at zero with every series present', async () => {
    const s = await scrape(sim);
    const labels = { model_name: MODEL, engine: '0' };
    for (const name of [
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'vllm:num_preemptions_total',
      'vllm:prefix_cache_queries_total',
      'vllm:prefix_cache_hits_total',
      'vllm:prompt_tokens_total',
      'vllm:generation_tokens_total',
      'vllm:time_to_first_token_seconds_count',
      'vllm:e2e_request_latency_seconds_count',
    ]) {
      expect(metricValue(s, name, labels)).toBe(0);
    }
    for (const reason of ['stop', 'length', 'abort']) {
      expect(metricValue(s, 'vllm:request_success_total', { ...labels, finished_reason: reason })).toBe(0);
    }
    // Before the first scheduling step vLLM has recorded no scheduler stats, so the gauges read 0 (loggers.py @ v0.10.0:
    // they are set from SchedulerStats only); once a request has run, idle usage is 1/num_gpu_blocks, the null block.
    expect(metricValue(s, 'vllm:kv_cache_usage_perc', labels)).toBe(0);
    expect(metricValue(s, 'vllm:gpu_cache_usage_perc', labels)).toBe(0);
  });

  it("opens with prometheus_client's own collectors in import order, gc, platform, process (prometheus_client/__init__.py @ 038b5bd), as vLLM's single API server's default registry does (vllm/v1/metrics/prometheus.py get_prometheus_registry @ v0.10.0); a new simulator has its own start time", async () => {
    const before = Date.now() / 1000;
    const restarted = await startSimulator({ port: 0, timeScale: 1000 });
    try {
      const page = (await http(restarted.url, 'GET', '/metrics')).text;
      const families = [...page.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
      expect(families.slice(0, 11)).toEqual([
        'python_gc_objects_collected_total counter', 'python_gc_objects_uncollectable_total counter', 'python_gc_collections_total counter',
        'python_info gauge',
        'process_virtual_memory_bytes gauge', 'process_resident_memory_bytes gauge', 'process_start_time_seconds gauge',
        'process_cpu_seconds_total counter', 'process_open_fds gauge', 'process_max_fds gauge',
        'vllm:num_requests_running gauge',
      ]);
      // Collector families have no _created samples (CounterMetricFamily without `created`), one series per generation.
      expect(page).not.toMatch(/^(python_gc|process_cpu)\S*_created/m);
      expect(page.match(/^python_gc_collections_total\{generation="[012]"\} \S+$/gm)).toHaveLength(3);
      expect(page).toMatch(/^python_info\{implementation="CPython",major="3",minor="12",patchlevel="\d+",version="3\.12\.\d+"\} 1\.0$/m);
      // The process's own figures, as the collector reads them from /proc/self.
      const value = (name: string) => parsePrometheus(page).find((s) => s.name === name)?.value;
      expect(value('process_resident_memory_bytes')).toBeGreaterThan(1e6);
      expect(value('process_open_fds')).toBeGreaterThan(2);
      const [started] = parsePrometheus(page).filter((s) => s.name === 'process_start_time_seconds').map((s) => s.value);
      const [first] = (await scrape(sim)).filter((s) => s.name === 'process_start_time_seconds').map((s) => s.value);
      expect(started).toBeGreaterThanOrEqual(Math.floor(before));
      expect(started).toBeLessThanOrEqual(Date.now() / 1000);
      expect(first).toBeLessThan(started!);
      // The same value on every page of one simulator.
      expect((await scrape(sim)).find((s) => s.name === 'process_start_time_seconds')?.value).toBe(first);
    } finally {
      await restarted.close();
    }
  });

  it("cache_config_info: vLLM 0.10.0's CacheConfig fields in order, str()-rendered, plus engine, no model_name, value 1", async () => {
    const s = await scrape(sim);
    const info = s.filter((x) => x.name === 'vllm:cache_config_info');
    expect(info).toHaveLength(1);
    expect(info[0].value).toBe(1);
    // vllm/config.py @ v0.10.0 (CacheConfig, metrics_info) and vllm/v1/metrics/loggers.py @ v0.10.0 (log_metrics_info);
    // prometheus_client writes the label names sorted.
    expect(Object.entries(info[0].labels)).toEqual([
      ['block_size', '16'],
      ['gpu_memory_utilization', '0.9'],
      ['swap_space', '4.0'],
      ['cache_dtype', 'auto'],
      ['is_attention_free', 'False'],
      ['num_gpu_blocks_override', 'None'],
      ['sliding_window', 'None'],
      ['enable_prefix_caching', 'True'],
      ['prefix_caching_hash_algo', 'builtin'],
      ['cpu_offload_gb', '0.0'],
      ['calculate_kv_scales', 'False'],
      ['cpu_kvcache_space_bytes', 'None'],
      ['mamba_page_size_padded', 'None'],
      ['num_gpu_blocks', '4096'],
      ['num_cpu_blocks', 'None'],
      ['swap_space_bytes', '4294967296.0'],
      ['engine', '0'],
    ].sort(([a], [b]) => (a < b ? -1 : 1)));
  });

  it('cache_config_info follows the flags, and the 0.10.2 field set with a 0.10.2 hash algorithm', async () => {
    const other = await startSimulator({ port: 0, kvCacheBlocks: 5000, blockSize: 32, gpuMemoryUtilization: 1, prefixCachingHashAlgo: 'sha256_cbor' });
    try {
      const labels = (await scrape(other)).filter((x) => x.name === 'vllm:cache_config_info')[0].labels;
      expect(labels).toMatchObject({ block_size: '32', num_gpu_blocks: '5000', gpu_memory_utilization: '1.0', prefix_caching_hash_algo: 'sha256_cbor' });
      // vllm/config/cache.py @ v0.10.2 adds mamba_cache_dtype, mamba_ssm_cache_dtype and kv_sharing_fast_prefill.
      expect(Object.keys(labels)).toEqual([
        'block_size', 'gpu_memory_utilization', 'swap_space', 'cache_dtype', 'is_attention_free', 'num_gpu_blocks_override',
        'sliding_window', 'enable_prefix_caching', 'prefix_caching_hash_algo', 'cpu_offload_gb', 'calculate_kv_scales',
        'cpu_kvcache_space_bytes', 'mamba_page_size_padded', 'mamba_cache_dtype', 'mamba_ssm_cache_dtype', 'num_gpu_blocks',
        'num_cpu_blocks', 'kv_sharing_fast_prefill', 'swap_space_bytes', 'engine',
      ].sort());
    } finally {
      await other.close();
    }
  });

  it('--no-enable-prefix-caching: a repeated prompt hits nothing, prefix-cache queries and hits stay 0, cache_config_info says False', async () => {
    // vllm/v1/core/kv_cache_manager.py @ 6eca337ce (v0.10.0) and 61aa4b290 (v0.10.2): get_computed_blocks returns
    // (empty, 0) when not enable_caching, before `prefix_cache_stats.queries/hits` are counted, so both counters stay 0.
    const off = await startSimulator({ port: 0, timeScale: 1000, enablePrefixCaching: false, simExtension: true });
    try {
      const prompt = longText(500, 7);
      const body = { model: 'Qwen/Qwen3-0.6B', prompt, max_tokens: 2 };
      const r1 = (await http(off.url, 'POST', '/v1/completions', body)).json();
      const r2 = (await http(off.url, 'POST', '/v1/completions', body)).json();
      expect(r2.kvroute_sim.cached_tokens).toBe(0);
      // Every prompt token computed again: the same model-time TTFT both times.
      expect(r2.kvroute_sim.ttft_s).toBeCloseTo(r1.kvroute_sim.ttft_s, 9);
      const s = await scrape(off);
      expect(metricValue(s, 'vllm:prefix_cache_queries_total')).toBe(0);
      expect(metricValue(s, 'vllm:prefix_cache_hits_total')).toBe(0);
      expect(metricValue(s, 'vllm:prompt_tokens_total')).toBe(2 * r1.usage.prompt_tokens);
      expect(s.filter((x) => x.name === 'vllm:cache_config_info')[0].labels.enable_prefix_caching).toBe('False');
    } finally {
      await off.close();
    }
  });

  it("renders floats as Python's str() does", () => {
    expect([0.9, 1, 0.95, 0.5, 1e-5, 4 * 1024 ** 3, 1e16, 0.0001].map(pythonFloatStr)).toEqual(['0.9', '1.0', '0.95', '0.5', '1e-05', '4294967296.0', '1e+16', '0.0001']);
  });

  it('histograms use vLLM bucket bounds', async () => {
    const s = await scrape(sim);
    const bounds = (name: string) => s.filter((x) => x.name === `${name}_bucket`).map((x) => x.labels.le);
    // prometheus_client writes each bound as a Python float (floatToGoString): le="1.0", not le="1".
    const py = (b: number) => (Number.isInteger(b) ? `${b}.0` : String(b));
    expect(bounds('vllm:time_to_first_token_seconds')).toEqual([...TTFT_BUCKETS.map(py), '+Inf']);
    expect(bounds('vllm:e2e_request_latency_seconds')).toEqual([...REQUEST_LATENCY_BUCKETS.map(py), '+Inf']);
    expect(bounds('vllm:request_params_n')).toEqual(['1.0', '2.0', '5.0', '10.0', '20.0', '+Inf']);
    expect(bounds('vllm:iteration_tokens_total')[0]).toBe('1.0');
    expect(TTFT_BUCKETS).toHaveLength(22);
  });

  it("is written as vLLM 0.10.0's prometheus_client writes it: sorted labels, Python floats, _created gauges, every loggers.py family", async () => {
    const fresh = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: ['m'] });
    try {
      const text = await fresh.metrics.metrics();
      // vllm/v1/metrics/loggers.py @ v0.10.0 registers these (besides the ones the other tests read).
      for (const fam of ['vllm:iteration_tokens_total', 'vllm:request_max_num_generation_tokens', 'vllm:request_params_n', 'vllm:request_params_max_tokens']) {
        expect(text).toContain(`# TYPE ${fam} histogram\n`);
        expect(text).toContain(`# TYPE ${fam}_created gauge\n`);
      }
      expect(text).toContain('vllm:num_requests_running{engine="0",model_name="m"} 0.0\n');
      expect(text).toMatch(/\n# HELP vllm:num_preemptions_created Cumulative number of preemption from the engine\.\n# TYPE vllm:num_preemptions_created gauge\nvllm:num_preemptions_created\{engine="0",model_name="m"\} \d\.\d+e\+09\n/);
      expect(text).toContain('vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0\n');
      expect(text).toContain('# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.\n');
      // prompt_tokens grows at the first token, generation_tokens per token; the success counter at the end.
      const r = await http(fresh.url, 'POST', '/v1/completions', { prompt: 'Hello there', max_tokens: 4 });
      expect(r.status).toBe(200);
      const after = await scrape(fresh);
      const labels = { model_name: 'm', engine: '0' };
      expect(metricValue(after, 'vllm:prompt_tokens_total', labels)).toBe(r.json().usage.prompt_tokens);
      expect(metricValue(after, 'vllm:generation_tokens_total', labels)).toBe(4);
      expect(metricValue(after, 'vllm:request_params_max_tokens_count', labels)).toBe(1);
      expect(metricValue(after, 'vllm:request_params_max_tokens_sum', labels)).toBe(4);
      expect(metricValue(after, 'vllm:time_per_output_token_seconds_count', labels)).toBe(3);
      expect(metricValue(after, 'vllm:iteration_tokens_total_count', labels)).toBe(4);
      // After the first step the gauges are live: idle usage is the null block.
      expect(metricValue(after, 'vllm:kv_cache_usage_perc', labels)).toBe(1 / fresh.options.kvCacheBlocks);
    } finally {
      await fresh.close();
    }
  });

  it('idle kv_cache_usage_perc: 1/N in 0.10.0 mode, 0 in 0.10.2 mode (vllm/v1/core/block_pool.py get_usage @ v0.10.0 vs v0.10.2, #22995)', async () => {
    for (const [algo, idle] of [
      // Python's 1.0 - 99 / 100, as the page writes it: 0.010000000000000009.
      ['sha256_cbor_64bit', 1 - 99 / 100],
      ['sha256_cbor', 0],
    ] as const) {
      const s2 = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: ['m'], prefixCachingHashAlgo: algo, kvCacheBlocks: 100, maxModelLen: 1600 });
      try {
        expect((await http(s2.url, 'POST', '/v1/completions', { prompt: 'Hello there', max_tokens: 2 })).status).toBe(200);
        const after = await scrape(s2);
        expect(metricValue(after, 'vllm:kv_cache_usage_perc')).toBe(idle);
        expect(metricValue(after, 'vllm:gpu_cache_usage_perc')).toBe(idle);
      } finally {
        await s2.close();
      }
    }
  });

  it('0.10.2 mode: vllm:inter_token_latency_seconds right after TPOT, the same samples, and TPOT\'s help marked deprecated (vLLM #24110; loggers.py @ 61aa4b290 lines 380-404, 555-557); 0.10.0 has neither', async () => {
    for (const algo of ['sha256_cbor_64bit', 'sha256_cbor'] as const) {
      const s2 = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: ['m'], prefixCachingHashAlgo: algo });
      try {
        expect((await http(s2.url, 'POST', '/v1/completions', { prompt: 'Hello there', max_tokens: 5 })).status).toBe(200);
        const text = (await http(s2.url, 'GET', '/metrics')).text;
        const samples = parsePrometheus(text);
        const tpotCount = metricValue(samples, 'vllm:time_per_output_token_seconds_count');
        expect(tpotCount).toBe(4);
        if (algo === 'sha256_cbor') {
          expect(metricValue(samples, 'vllm:inter_token_latency_seconds_count')).toBe(tpotCount);
          expect(metricValue(samples, 'vllm:inter_token_latency_seconds_sum')).toBe(metricValue(samples, 'vllm:time_per_output_token_seconds_sum'));
          expect(text).toContain('# HELP vllm:time_per_output_token_seconds Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.');
          expect(text.indexOf('# HELP vllm:inter_token_latency_seconds ')).toBeGreaterThan(text.indexOf('# HELP vllm:time_per_output_token_seconds '));
          expect(text.indexOf('# HELP vllm:inter_token_latency_seconds ')).toBeLessThan(text.indexOf('# HELP vllm:e2e_request_latency_seconds '));
        } else {
          expect(text).not.toContain('inter_token_latency');
          expect(text).not.toContain('DEPRECATED: Use vllm:inter_token_latency_seconds');
        }
      } finally {
        await s2.close();
      }
    }
  });

  it('request_params_max_tokens without max_tokens is the room left, SamplingParams.max_tokens from get_max_tokens (vllm/entrypoints/utils.py @ v0.10.0), not --default-max-tokens', async () => {
    const s2 = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: ['m'] });
    try {
      const r = await http(s2.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] });
      expect(r.json().usage.completion_tokens).toBe(16);
      const after = await scrape(s2);
      expect(metricValue(after, 'vllm:request_params_max_tokens_sum')).toBe(40960 - r.json().usage.prompt_tokens);
    } finally {
      await s2.close();
    }
  });

  // Paths under /metrics/ reach vLLM's Mount("/metrics", make_asgi_app()) (api_server.py @ 6eca337ce lines 342-359);
  // GET /metrics itself is the Instrumentator's route, which never negotiates (api-audit27.test.ts).
  it("/metrics/ (the make_asgi_app mount) gzips the page when Accept-Encoding names gzip, as prometheus_client's make_asgi_app does (exposition.py, gzip_accepted)", async () => {
    const get = (acceptEncoding?: string): Promise<{ headers: Record<string, unknown>; body: Buffer }> =>
      new Promise((resolve, reject) => {
        const req = request(`${sim.url}/metrics/`, { headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    const plain = await get();
    expect(plain.headers['content-encoding']).toBeUndefined();
    const zipped = await get('deflate, GZip;q=0.5');
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.headers['content-type']).toBe(plain.headers['content-type']);
    // Nothing ran in between, so the two pages are the same text, but for the process's own memory, CPU and fds.
    expect(withoutProcessFigures(gunzipSync(zipped.body).toString('utf8'))).toBe(withoutProcessFigures(plain.body.toString('utf8')));
    expect((await get('identity')).headers['content-encoding']).toBeUndefined();
    // Upstream reads no q-value: "gzip;q=0" is still gzip.
    expect(gzipAccepted('gzip;q=0')).toBe(true);
    expect(gzipAccepted(['br', ' x-gzip '])).toBe(false);
    expect(gzipAccepted(undefined)).toBe(false);
  });

  it("/metrics/ (the make_asgi_app mount) answers OpenMetrics 1.0 to a scraper that asks for it, as prometheus_client 0.22's choose_encoder and openmetrics generate_latest do", async () => {
    // Its own simulator: the other tests count this one's requests.
    const own = await startSimulator({ port: 0, timeScale: 1000, model: 'Qwen/Qwen3-0.6B', servedModelNames: [MODEL], kvCacheBlocks: 4096, simExtension: true });
    afterCleanup.push(() => own.close());
    const r = await http(own.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'count me', max_tokens: 2 });
    expect(r.status).toBe(200);
    const get = async (accept: string) => {
      const res = await fetch(`${own.url}/metrics/`, { headers: { accept } });
      return { type: res.headers.get('content-type'), text: await res.text() };
    };
    // Prometheus 2.x/3.x's default scrape Accept header.
    const om = await get('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1');
    const text = await get('text/plain;version=0.0.4');
    expect(om.type).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(text.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(om.text.endsWith('\n# EOF\n')).toBe(true);
    expect(text.text).not.toContain('# EOF');
    // A counter's family is named without _total, its samples keep it, and each series' _created follows it.
    expect(om.text).toContain('# TYPE vllm:num_preemptions counter\n');
    expect(om.text).toMatch(/\nvllm:num_preemptions_total\{engine="0",model_name="kvroute\/sim-qwen3"\} 0\.0\nvllm:num_preemptions_created\{engine="0",model_name="kvroute\/sim-qwen3"\} \d\.\d+e\+09\n/);
    // A histogram series: buckets, _count, _sum, then _created.
    expect(om.text).toMatch(/vllm:e2e_request_latency_seconds_bucket\{engine="0",le="\+Inf",model_name="kvroute\/sim-qwen3"\} \d+\.0\nvllm:e2e_request_latency_seconds_count\{[^}]*\} \d+\.0\nvllm:e2e_request_latency_seconds_sum\{[^}]*\} [\d.e+-]+\nvllm:e2e_request_latency_seconds_created\{/);
    expect(om.text).not.toContain('# TYPE vllm:num_preemptions_created gauge');
    // The same samples in both formats: the text format writes the _created ones as gauge families of their own.
    const samples = (page: string) => withoutProcessFigures(page).split('\n').filter((l) => l !== '' && !l.startsWith('#')).sort();
    expect(samples(om.text)).toEqual(samples(text.text));
    expect(openMetricsAccepted('text/plain, application/openmetrics-text ; version=1.0.0')).toBe(true);
    expect(openMetricsAccepted('application/*')).toBe(false);
    expect(openMetricsAccepted(undefined)).toBe(false);
  });

  it('a repeated prompt shows up as prefix-cache hits, counted in tokens; cached TTFT is several-fold lower', async () => {
    const prompt = longText(4000, 5);
    const r1 = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 8 })).json();
    const r2 = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 8 })).json();
    const n = r1.usage.prompt_tokens;
    const hit = Math.floor((n - 1) / 16) * 16;
    expect(r2.kvroute_sim.cached_tokens).toBe(hit);

    const s = await scrape(sim);
    const q = metricValue(s, 'vllm:prefix_cache_queries_total');
    const h = metricValue(s, 'vllm:prefix_cache_hits_total');
    expect(q).toBe(2 * n);
    expect(h).toBe(hit);
    expect(metricValue(s, 'vllm:gpu_prefix_cache_queries_total')).toBe(q);
    expect(metricValue(s, 'vllm:gpu_prefix_cache_hits_total')).toBe(h);
    expect(metricValue(s, 'vllm:prompt_tokens_total')).toBe(2 * n);
    expect(metricValue(s, 'vllm:generation_tokens_total')).toBe(16);
    expect(metricValue(s, 'vllm:request_success_total', { finished_reason: 'length' })).toBe(2);
    expect(metricValue(s, 'vllm:time_to_first_token_seconds_count')).toBe(2);
    expect(metricValue(s, 'vllm:time_per_output_token_seconds_count')).toBe(14);
    // Idle again: nothing running, no blocks referenced (they stay cached).
    expect(metricValue(s, 'vllm:num_requests_running')).toBe(0);
    expect(metricValue(s, 'vllm:kv_cache_usage_perc')).toBe(1 / 4096);

    // Model time, independent of --time-scale: 20 ms + 0.25 ms per uncached token.
    const cold = r1.kvroute_sim.ttft_s;
    const warm = r2.kvroute_sim.ttft_s;
    expect(cold).toBeCloseTo(0.02 + n * 0.00025, 9);
    expect(warm).toBeCloseTo(0.02 + (n - hit) * 0.00025, 9);
    expect(cold / warm).toBeGreaterThan(5);
    expect(metricValue(s, 'vllm:time_to_first_token_seconds_sum')).toBeCloseTo(cold + warm, 9);
    // The e2e histogram agrees with the per-response timing.
    expect(metricValue(s, 'vllm:e2e_request_latency_seconds_sum')).toBeCloseTo(r1.kvroute_sim.e2e_s + r2.kvroute_sim.e2e_s, 9);
  });
});

describe('per-request histograms at the finish (vllm/v1/metrics/loggers.py @ 6eca337ce lines 542-561)', () => {
  // The histograms PrometheusStatLogger.record observes only in its `for finished_request in
  // iteration_stats.finished_requests` loop; their _count always equals request_success_total{stop} + {length}.
  const FINISHED = [
    'vllm:request_queue_time_seconds',
    'vllm:e2e_request_latency_seconds',
    'vllm:request_inference_time_seconds',
    'vllm:request_prefill_time_seconds',
    'vllm:request_decode_time_seconds',
    'vllm:request_prompt_tokens',
    'vllm:request_generation_tokens',
  ];
  it('request_queue_time_seconds is observed when a request finishes, not when it is scheduled; an aborted request observes none of them', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, servedModelNames: ['m'], simExtension: true });
    try {
      const scrapeNow = async () => parsePrometheus(await sim.metrics.metrics());
      const counts = async (): Promise<number[]> => {
        const s = await scrapeNow();
        return FINISHED.map((f) => metricValue(s, `${f}_count`));
      };
      const success = async (): Promise<number> => {
        const s = await scrapeNow();
        return ['stop', 'length', 'abort'].reduce((a, reason) => a + metricValue(s, 'vllm:request_success_total', { finished_reason: reason }), 0);
      };
      // 1. A stream hung up after its first tokens: OutputProcessor.abort_requests drops it without stats
      // (vllm/v1/engine/output_processor.py @ 6eca337ce lines 301-316), so only the per-iteration TTFT was observed.
      const stream = openStream(sim.url, '/v1/completions', { prompt: longText(100, 11), max_tokens: 50, stream: true });
      await waitFor(() => sim.engine.stats().running === 1, 'the stream scheduled');
      // Scheduled, not finished: no queue time yet (the sim observed it here before).
      expect(await counts()).toEqual(FINISHED.map(() => 0));
      clock.advance(200);
      const s1 = await stream;
      s1.hangUp();
      await waitFor(() => sim.engine.stats().running === 0, 'the stream aborted');
      expect(await counts()).toEqual(FINISHED.map(() => 0));
      expect(await success()).toBe(0);
      expect(metricValue(await scrapeNow(), 'vllm:time_to_first_token_seconds_count')).toBe(1);
      // 2. A request that queues behind another's prefill, then finishes: every finished-request histogram once.
      const a = http(sim.url, 'POST', '/v1/completions', { prompt: longText(400, 12), max_tokens: 3 });
      await waitFor(() => sim.engine.stats().running === 1, 'a scheduled');
      clock.advance(1); // b arrives while a's step is in flight (at a's very instant it would join that step)
      const b = http(sim.url, 'POST', '/v1/completions', { prompt: longText(400, 13), max_tokens: 3 });
      await waitFor(() => sim.engine.stats().inputQueue === 1, 'b in the engine core\'s input queue');
      clock.advance(110); // a's prefill lane frees (20 + ~100 ms): b is scheduled, neither has finished
      expect(sim.engine.stats().running).toBe(2);
      expect(await counts()).toEqual(FINISHED.map(() => 0));
      clock.runAll();
      const [ra, rb] = [(await a).json(), (await b).json()];
      expect(await counts()).toEqual(FINISHED.map(() => 2));
      expect(await success()).toBe(2);
      const s = await scrapeNow();
      // b was taken in when a's step ended and scheduled by that same pass: vLLM's queue time (QUEUED to SCHEDULED) is 0,
      // its wait for a's step is in its TTFT.
      expect(rb.kvroute_sim.queue_time_s).toBe(0);
      expect(rb.kvroute_sim.ttft_s).toBeGreaterThan(ra.kvroute_sim.ttft_s);
      expect(metricValue(s, 'vllm:request_queue_time_seconds_sum')).toBeCloseTo(ra.kvroute_sim.queue_time_s + rb.kvroute_sim.queue_time_s, 9);
    } finally {
      await sim.close();
    }
  });
});

describe('prefix-cache counters move with a sampled token (vLLM 0.10.0: make_stats only for a step with outputs, scheduler.py update_from_output)', () => {
  it('a long prompt mid-prefill: queries and hits 0 like the gauges, then the whole prompt with its first token', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, servedModelNames: ['m'], simExtension: true });
    try {
      const scrape = async () => parsePrometheus(await sim.metrics.metrics());
      const pending = http(sim.url, 'POST', '/v1/completions', { prompt: longText(4000, 21), max_tokens: 2 });
      await waitFor(() => sim.engine.stats().running === 1, 'the prompt scheduled');
      clock.advance(5); // into the prefill, before its first token
      const mid = await scrape();
      expect(metricValue(mid, 'vllm:num_requests_running')).toBe(0);
      expect(metricValue(mid, 'vllm:prefix_cache_queries_total')).toBe(0);
      expect(metricValue(mid, 'vllm:gpu_prefix_cache_queries_total')).toBe(0);
      clock.runAll();
      const r = (await pending).json();
      const done = await scrape();
      expect(metricValue(done, 'vllm:prefix_cache_queries_total')).toBe(r.usage.prompt_tokens);
      expect(metricValue(done, 'vllm:gpu_prefix_cache_queries_total')).toBe(r.usage.prompt_tokens);
      expect(metricValue(done, 'vllm:prefix_cache_hits_total')).toBe(0);
    } finally {
      await sim.close();
    }
  });
});

describe('vllm:lora_requests_info (vllm/v1/metrics/loggers.py lines 444-463, 563-574; stats.py LoRARequestStates @ 6eca337ce)', () => {
  const loraSeries = (samples: Sample[]) => samples.filter((s) => s.name === 'vllm:lora_requests_info');
  const newest = (samples: Sample[]) => loraSeries(samples).reduce((a, b) => (b.value > a.value ? b : a));

  it('with --enable-lora: one series per (max_lora, waiting, running) set at each step with outputs, valued with the time; a request counts as running from its first token', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, servedModelNames: ['base'], enableLora: true, loraModules: ['sql', 'chat'] });
    try {
      const page = async () => (await http(sim.url, 'GET', '/metrics')).text;
      // Registered, no series before the first step with outputs (a labelled gauge without children).
      expect(await page()).toContain('# TYPE vllm:lora_requests_info gauge');
      expect(loraSeries(parsePrometheus(await page()))).toHaveLength(0);
      const sql = http(sim.url, 'POST', '/v1/completions', { model: 'sql', prompt: longText(100, 31), max_tokens: 20 });
      await waitFor(() => sim.engine.stats().running === 1, 'sql scheduled');
      clock.advance(1);
      // chat is a second adapter: with --max-loras 1 it waits while sql runs; the base model is not held back.
      const chat = http(sim.url, 'POST', '/v1/completions', { model: 'chat', prompt: longText(100, 32), max_tokens: 2 });
      const base = http(sim.url, 'POST', '/v1/completions', { model: 'base', prompt: longText(100, 33), max_tokens: 20 });
      await waitFor(() => sim.engine.stats().inputQueue === 2, 'chat and base in the engine core\'s input queue');
      clock.advance(200);
      const during = parsePrometheus(await page());
      expect(sim.engine.stats()).toMatchObject({ running: 2, waiting: 1 });
      expect(newest(during).labels).toEqual({ max_lora: '1', waiting_lora_adapters: 'chat', running_lora_adapters: 'sql' });
      // Every value is a time in seconds since the epoch, as set_to_current_time.
      for (const s of loraSeries(during)) expect(Math.abs(s.value - Date.now() / 1000)).toBeLessThan(60);
      clock.runAll();
      await Promise.all([sql, chat, base]);
      const after = parsePrometheus(await page());
      // The last step with outputs finished chat: nothing waits or runs. Earlier label sets stay on the page.
      expect(newest(after).labels).toEqual({ max_lora: '1', waiting_lora_adapters: '', running_lora_adapters: '' });
      expect(loraSeries(after).some((s) => s.labels.running_lora_adapters === 'chat')).toBe(true);
    } finally {
      await sim.close();
    }
  });

  it("the page lists vllm:lora_requests_info before vllm:cache_config_info, the last vllm: family: PrometheusStatLogger registers the LoRA gauge at the end of __init__ and the info gauge only in log_metrics_info, which AsyncLLM reaches through log_engine_initialized after building it (vllm/v1/metrics/loggers.py @ 6eca337ce, v0.10.0; prometheus_client's registry collects in registration order)", async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: ['base'], enableLora: true, loraModules: ['sql'] });
    try {
      expect((await http(sim.url, 'POST', '/v1/completions', { model: 'sql', prompt: 'Hello', max_tokens: 2 })).status).toBe(200);
      const families = [...(await http(sim.url, 'GET', '/metrics')).text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]).filter((f) => f.startsWith('vllm:'));
      expect(families.slice(-4)).toEqual(['vllm:request_decode_time_seconds', 'vllm:request_decode_time_seconds_created', 'vllm:lora_requests_info', 'vllm:cache_config_info']);
    } finally {
      await sim.close();
    }
  });

  it('without --enable-lora there is no LoRAConfig and no such family', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000 });
    try {
      expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hello', max_tokens: 2 })).status).toBe(200);
      expect((await http(sim.url, 'GET', '/metrics')).text).not.toContain('vllm:lora_requests_info');
    } finally {
      await sim.close();
    }
  });
});

describe('--disable-log-stats and --swap-space (vllm/engine/arg_utils.py @ 6eca337ce lines 319, 839)', () => {
  it('--disable-log-stats: no vllm: family at all, as AsyncLLM builds no StatLoggerManager (vllm/v1/engine/async_llm.py @ 6eca337ce lines 126-133); the process collector\'s start time and the instrumentator\'s http_* families stay', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, disableLogStats: true });
    try {
      expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hello', max_tokens: 2 })).status).toBe(200);
      const text = await http(sim.url, 'GET', '/metrics');
      expect(text.status).toBe(200);
      // prometheus_client's collectors, then prometheus-fastapi-instrumentator's http_* families (mount_metrics does not
      // depend on log stats): the page starts with the GC counters, the process's fds end the collectors, and the
      // instrumentator's lowr histogram, which counted the completion, ends the page.
      const collectorsOnly = /^# HELP python_gc_objects_collected_total [^]*\nprocess_max_fds \S+\n# HELP http_requests_total [^]*\nhttp_request_duration_seconds_created\{handler="\/v1\/completions",method="POST"\} \S+\n$/;
      expect(text.text).toMatch(collectorsOnly);
      expect(text.text).not.toContain('vllm:');
      expect(text.text).toMatch(/^process_start_time_seconds \S+$/m);
      // The make_asgi_app mount (/metrics/) negotiates; /metrics does not.
      expect(await (await fetch(`${sim.url}/metrics`, { headers: { accept: 'application/openmetrics-text' } })).text()).toMatch(collectorsOnly);
      const om = await (await fetch(`${sim.url}/metrics/`, { headers: { accept: 'application/openmetrics-text' } })).text();
      // OpenMetrics names a counter's family without _total; its samples keep it.
      expect(om).toMatch(/^# HELP python_gc_objects_collected Objects collected during gc\n# TYPE python_gc_objects_collected counter\npython_gc_objects_collected_total\{generation="0"\} /);
      expect(om).toMatch(/\n# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total \S+\n/);
      expect(om).toMatch(/\nprocess_max_fds \S+\n# HELP http_requests [^]*\nhttp_request_duration_seconds_created\{handler="\/v1\/completions",method="POST"\} \S+\n# EOF\n$/);
      expect(om).not.toContain('vllm:');
    } finally {
      await sim.close();
    }
  });

  it("--swap-space is reported in cache_config_info as CacheConfig's str(float) and swap_space_bytes = swap_space × 2^30", async () => {
    const sim = await startSimulator({ port: 0, swapSpace: 0.5 });
    try {
      const info = (await scrape(sim)).filter((x) => x.name === 'vllm:cache_config_info')[0].labels;
      expect(info).toMatchObject({ swap_space: '0.5', swap_space_bytes: '536870912.0' });
    } finally {
      await sim.close();
    }
  });
});

describe('preemption through HTTP with a manual clock', () => {
  it('advances vllm:num_preemptions_total only at the preempted request\'s next token, and never for one aborted while preempted (scheduler.py @ 6eca337ce (v0.10.0) L267-269, L855-868; v1/metrics/stats.py L146-147; loggers.py L522-523)', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, kvCacheBlocks: 7, maxModelLen: 96, prefillConcurrency: 0 });
    try {
      const body = (seed: number) => ({ model: 'Qwen/Qwen3-0.6B', prompt: Array.from({ length: 32 }, (_, i) => 1000 + seed * 100 + i), max_tokens: 40, stream: true });
      const a = http(sim.url, 'POST', '/v1/completions', { ...body(1), stream: false });
      await waitFor(() => sim.engine.stats().running === 1, 'a to run');
      // B streams, so hanging up aborts it; its first chunk needs model time, so do not wait for it.
      const url = new URL(sim.url);
      const b = request({ host: url.hostname, port: url.port, path: '/v1/completions', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => res.resume());
      b.on('error', () => undefined);
      b.end(JSON.stringify(body(2)));
      await waitFor(() => sim.engine.stats().running === 2, 'b to run');
      // Both decode; B is preempted when their blocks run out (~348 ms of model time) and waits for A to finish (~808 ms).
      clock.advanceTo(600);
      expect(sim.engine.stats()).toMatchObject({ running: 1, waiting: 1, preemptions: 1 });
      const preemptions = async () => metricValue(parsePrometheus((await http(sim.url, 'GET', '/metrics')).text), 'vllm:num_preemptions_total');
      expect(await preemptions()).toBe(0);
      b.destroy();
      await waitFor(() => sim.engine.stats().waiting === 0, 'b to be aborted');
      clock.runAll();
      expect((await a).json().usage.completion_tokens).toBe(40);
      expect(await preemptions()).toBe(0);
    } finally {
      await sim.close();
    }
  });

  it('counts vllm:num_preemptions_total and re-counts the preempted request in the prefix-cache queries', async () => {
    const clock = new ManualClock();
    // 6 usable blocks of 16; two 32-token prompts with 40 tokens each need 5 blocks apiece by the end.
    const sim = await startSimulator({ port: 0, clock, kvCacheBlocks: 7, maxModelLen: 96, prefillConcurrency: 0 });
    try {
      const body = (seed: number) => ({ model: 'Qwen/Qwen3-0.6B', prompt: Array.from({ length: 32 }, (_, i) => 1000 + seed * 100 + i), max_tokens: 40 });
      const a = http(sim.url, 'POST', '/v1/completions', body(1));
      await waitFor(() => sim.engine.stats().running === 1, 'a to run');
      const b = http(sim.url, 'POST', '/v1/completions', body(2));
      await waitFor(() => sim.engine.stats().running === 2, 'b to run');
      clock.runAll();
      const [ra, rb] = [(await a).json(), (await b).json()];
      expect([ra.usage.completion_tokens, rb.usage.completion_tokens]).toEqual([40, 40]);
      const s = parsePrometheus((await http(sim.url, 'GET', '/metrics')).text);
      expect(metricValue(s, 'vllm:num_preemptions_total')).toBe(1);
      // 32 + 32 at first, then B (32 prompt + 17 outputs) once per step until it fits again.
      const queries = metricValue(s, 'vllm:prefix_cache_queries_total');
      expect((queries - 64) % 49).toBe(0);
      expect(queries - 64).toBeGreaterThan(49);
    } finally {
      await sim.close();
    }
  });
});

describe('wall-clock TTFT follows the model (generous bounds)', () => {
  it('a cached long prompt streams its first token sooner than an uncached one', async () => {
    // At a quarter of real time a 4000-token cold prefill is ~4 s of wall time; the warm one a few tens of ms. The cold
    // bound is a lower bound (a slow machine only delays); the warm bound leaves ~2 s for a stalled process (at 2×, a
    // 400 ms stall during the warm request, less than a busy CI machine has delayed a first token, failed it).
    const sim = await startSimulator({ port: 0, timeScale: 0.25 });
    try {
      const body = { model: 'Qwen/Qwen3-0.6B', prompt: longText(4000, 9), max_tokens: 2, stream: true };
      // Tokenize once first so neither measured request pays for BPE (the tokenizer memoizes text).
      await http(sim.url, 'POST', '/tokenize', { prompt: body.prompt });
      const cold = await wallTtftMs(sim.url, body);
      const warm = await wallTtftMs(sim.url, body);
      expect(cold).toBeGreaterThan(3200);
      expect(warm).toBeLessThan(cold / 2);
    } finally {
      await sim.close();
    }
  });
});

// vLLM 0.10.0 returns the scheduler's stats only from a step with request outputs (vllm/v1/core/sched/scheduler.py @
// 6eca337ce lines 909-912), so after aborts empty the engine no step runs that returns them and the gauges stick at the
// last values; #22995 (8fd920924, vLLM 0.10.2: "Fix stuck stats/metrics after requests are aborted") returns them
// every step.
describe('scheduler gauges after aborts empty the engine (vLLM 0.10.0 vs 0.10.2, #22995)', () => {
  for (const [algo, generation, stuck] of [['builtin', '0.10.0', true], ['sha256', '0.10.2', false]] as const) {
    it(`${generation}: running ${stuck ? 'keeps the last step\'s value' : 'reads 0'} once the only request is aborted`, async () => {
      const clock = new ManualClock();
      const sim = await startSimulator({ port: 0, clock, prefixCachingHashAlgo: algo, model: 'Qwen/Qwen3-0.6B', servedModelNames: [MODEL] });
      try {
        const opened = openStream(sim.url, '/v1/completions', { model: MODEL, prompt: longText(100), max_tokens: 200, stream: true });
        await waitFor(() => sim.engine.stats().running === 1, 'the request reached the engine');
        // Into its decode: steps have sampled tokens and returned their stats.
        clock.advance(500);
        const stream = await opened;
        expect(metricValue(await scrape(sim), 'vllm:num_requests_running')).toBe(1);
        stream.hangUp();
        await waitFor(() => sim.engine.stats().running === 0, 'the abort reached the engine');
        clock.advance(500);
        const s = await scrape(sim);
        expect(metricValue(s, 'vllm:num_requests_running')).toBe(stuck ? 1 : 0);
        // The last step's usage (the request's blocks) sticks in 0.10.0; 0.10.2's idle usage is 0.
        if (stuck) expect(metricValue(s, 'vllm:kv_cache_usage_perc')).toBeGreaterThan(1 / 8192);
        else expect(metricValue(s, 'vllm:kv_cache_usage_perc')).toBe(0);
      } finally {
        await sim.close();
      }
    });
  }
});
