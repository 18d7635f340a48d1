import { REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS } from '../src/metrics';
import { startSimulator, type Simulator } from '../src/server';
import { http, longText, metricValue, parsePrometheus, type Sample } from './helpers';

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

describe('/metrics (vLLM 0.10 names, parsed back)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, model: 'Qwen/Qwen3-0.6B', servedModelNames: [MODEL], kvCacheBlocks: 4096 });
  });
  afterAll(() => sim.close());

  it('starts at zero with every series present', async () => {
    const s = await scrape(sim);
    const labels = { model_name: MODEL, engine: '0' };
    for (const name of [
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'vllm:kv_cache_usage_perc',
      'vllm:gpu_cache_usage_perc',
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
  });

  it('cache_config_info carries the cache geometry as labels, value 1', async () => {
    const s = await scrape(sim);
    const info = s.filter((x) => x.name === 'vllm:cache_config_info');
    expect(info).toHaveLength(1);
    expect(info[0].value).toBe(1);
    expect(info[0].labels).toMatchObject({ block_size: '16', num_gpu_blocks: '4096', enable_prefix_caching: 'True', cache_dtype: 'auto' });
  });

  it('histograms use vLLM bucket bounds', async () => {
    const s = await scrape(sim);
    const bounds = (name: string) => s.filter((x) => x.name === `${name}_bucket`).map((x) => x.labels.le);
    expect(bounds('vllm:time_to_first_token_seconds')).toEqual([...TTFT_BUCKETS.map(String), '+Inf']);
    expect(bounds('vllm:e2e_request_latency_seconds')).toEqual([...REQUEST_LATENCY_BUCKETS.map(String), '+Inf']);
    expect(TTFT_BUCKETS).toHaveLength(22);
  });

  it('a repeated prompt shows up as prefix-cache hits, counted in tokens; cached TTFT is several-fold lower', async () => {
    const prompt = longText(4000, 5);
    const r1 = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 8 })).json();
    const r2 = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 8 })).json();
    const n = r1.usage.prompt_tokens;
    const hit = Math.floor((n - 1) / 16) * 16;
    expect(r2.usage.prompt_tokens_details.cached_tokens).toBe(hit);

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
    expect(metricValue(s, 'vllm:kv_cache_usage_perc')).toBe(0);

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

describe('wall-clock TTFT follows the model (generous bounds)', () => {
  it('a cached long prompt streams its first token sooner than an uncached one', async () => {
    // At 5× a 4000-token cold prefill is ~200 ms of wall time; the warm one ~5 ms.
    const sim = await startSimulator({ port: 0, timeScale: 5 });
    try {
      const body = { model: 'Qwen/Qwen3-0.6B', prompt: longText(4000, 9), max_tokens: 2, stream: true };
      // Tokenize once first so neither measured request pays for BPE (the tokenizer memoizes text).
      await http(sim.url, 'POST', '/tokenize', { prompt: body.prompt });
      const cold = await wallTtftMs(sim.url, body);
      const warm = await wallTtftMs(sim.url, body);
      expect(cold).toBeGreaterThan(150);
      expect(warm).toBeLessThan(cold / 2);
    } finally {
      await sim.close();
    }
  });
});
