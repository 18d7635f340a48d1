/**
 * A stand-in for a vLLM 0.10 pod's `/metrics`: the page text in the shape prometheus_client renders it, and a real
 * HTTP server on loopback serving it, with switches for the ways a pod fails. For tests and local runs; not used by
 * the EPP itself.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeEngine {
  waiting: number;
  running: number;
  /** 0..1 */
  kvUsage: number;
  /** This engine's KV blocks (default 27153); the page shows the engines' total on every engine's series, as vLLM. */
  numGpuBlocks?: number;
}

export interface VllmPageOptions {
  modelName?: string;
  /** One entry per data-parallel engine (`engine` label "0", "1", ...). Default one idle engine. */
  engines?: FakeEngine[];
  blockSize?: number;
  /** The 0.10 name `vllm:kv_cache_usage_perc`. Default true. */
  kvCacheUsage?: boolean;
  /** The deprecated `vllm:gpu_cache_usage_perc` vLLM 0.10 still exports. Default true. */
  gpuCacheUsage?: boolean;
  cacheConfigInfo?: boolean;
  /** `vllm:lora_requests_info` with these running adapters (comma list in a label). Default none. */
  runningLoraAdapters?: string[];
  /** Python process, GC and HTTP-instrumentator families that precede vLLM's own. Default true. */
  processMetrics?: boolean;
}

const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
const E2E_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];
const TOKEN_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
const HTTP_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60];

/** Python's float repr for the values prometheus_client prints. */
function py(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return Number.isInteger(n) ? `${n}.0` : String(n);
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(l: Record<string, string>): string {
  const keys = Object.keys(l).sort();
  return keys.length === 0 ? '' : `{${keys.map((k) => `${k}="${esc(l[k] ?? '')}"`).join(',')}}`;
}

class Page {
  private out: string[] = [];
  family(name: string, type: string, help: string): this {
    this.out.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    return this;
  }
  sample(name: string, l: Record<string, string>, v: number): this {
    this.out.push(`${name}${labels(l)} ${py(v)}`);
    return this;
  }
  counter(base: string, help: string, series: Array<[Record<string, string>, number]>, created: number): this {
    this.family(`${base}_total`, 'counter', help);
    for (const [l, v] of series) this.sample(`${base}_total`, l, v);
    this.family(`${base}_created`, 'gauge', help);
    for (const [l] of series) this.sample(`${base}_created`, l, created);
    return this;
  }
  histogram(base: string, help: string, bounds: number[], series: Array<[Record<string, string>, number[]]>, created: number): this {
    this.family(base, 'histogram', help);
    for (const [l, observations] of series) {
      for (const b of bounds) this.sample(`${base}_bucket`, { ...l, le: py(b) }, observations.filter((o) => o <= b).length);
      this.sample(`${base}_bucket`, { ...l, le: '+Inf' }, observations.length);
      this.sample(`${base}_count`, l, observations.length);
      this.sample(`${base}_sum`, l, observations.reduce((a, b) => a + b, 0));
    }
    this.family(`${base}_created`, 'gauge', help);
    for (const [l] of series) this.sample(`${base}_created`, l, created);
    return this;
  }
  text(): string {
    return `${this.out.join('\n')}\n`;
  }
}

/** Renders a vLLM 0.10 `/metrics` page (V1 engine, prometheus_client text format 0.0.4). */
export function renderVllmMetrics(options: VllmPageOptions = {}): string {
  const model = options.modelName ?? 'meta-llama/Llama-3.1-8B-Instruct';
  const engines = options.engines ?? [{ waiting: 0, running: 0, kvUsage: 0 }];
  const created = 1753300000.123;
  const p = new Page();
  const perEngine = (f: (e: FakeEngine, i: number) => number): Array<[Record<string, string>, number]> =>
    engines.map((e, i) => [{ model_name: model, engine: String(i) }, f(e, i)]);
  const perEngineObs = (f: (e: FakeEngine, i: number) => number[]): Array<[Record<string, string>, number[]]> =>
    engines.map((e, i) => [{ model_name: model, engine: String(i) }, f(e, i)]);

  if (options.processMetrics ?? true) {
    p.family('python_gc_objects_collected_total', 'counter', 'Objects collected during gc');
    for (const g of ['0', '1', '2']) p.sample('python_gc_objects_collected_total', { generation: g }, 1000 * (Number(g) + 1));
    p.family('python_info', 'gauge', 'Python platform information');
    p.sample('python_info', { implementation: 'CPython', major: '3', minor: '12', patchlevel: '11', version: '3.12.11' }, 1);
    p.family('process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.').sample('process_virtual_memory_bytes', {}, 4.5e10);
    p.family('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.').sample('process_start_time_seconds', {}, 1753299990.5);
    p.family('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.').sample('process_cpu_seconds_total', {}, 812.34);
    p.counter('http_requests', 'Total number of requests by method, status and handler.', [
      [{ handler: '/v1/completions', method: 'POST', status: '2xx' }, 1200],
      [{ handler: '/v1/chat/completions', method: 'POST', status: '2xx' }, 3400],
      [{ handler: '/metrics', method: 'GET', status: '2xx' }, 99000],
    ], created);
    // A summary without quantiles, as the FastAPI instrumentator exports it.
    p.family('http_request_size_bytes', 'summary', 'Content length of incoming requests by handler. Only value of header is respected. Otherwise 0.');
    p.sample('http_request_size_bytes_count', { handler: '/v1/completions' }, 1200).sample('http_request_size_bytes_sum', { handler: '/v1/completions' }, 5.2e6);
    p.histogram('http_request_duration_highr_seconds', 'Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ', HTTP_BUCKETS, [[{}, [0.02, 0.3, 1.2, 4.0]]], created);
  }

  p.family('vllm:num_requests_running', 'gauge', 'Number of requests in model execution batches.');
  for (const [l, v] of perEngine((e) => e.running)) p.sample('vllm:num_requests_running', l, v);
  p.family('vllm:num_requests_waiting', 'gauge', 'Number of requests waiting to be processed.');
  for (const [l, v] of perEngine((e) => e.waiting)) p.sample('vllm:num_requests_waiting', l, v);
  if (options.gpuCacheUsage ?? true) {
    p.family('vllm:gpu_cache_usage_perc', 'gauge', 'GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.');
    for (const [l, v] of perEngine((e) => e.kvUsage)) p.sample('vllm:gpu_cache_usage_perc', l, v);
  }
  if (options.kvCacheUsage ?? true) {
    p.family('vllm:kv_cache_usage_perc', 'gauge', 'KV-cache usage. 1 means 100 percent usage.');
    for (const [l, v] of perEngine((e) => e.kvUsage)) p.sample('vllm:kv_cache_usage_perc', l, v);
  }
  p.counter('vllm:gpu_prefix_cache_queries', 'GPU prefix cache queries, in terms of number of queried tokens.DEPRECATED: Use vllm:prefix_cache_queries instead.', perEngine(() => 52000), created);
  p.counter('vllm:gpu_prefix_cache_hits', 'GPU prefix cache hits, in terms of number of cached tokens.DEPRECATED: Use vllm:prefix_cache_hits instead.', perEngine(() => 31000), created);
  p.counter('vllm:prefix_cache_queries', 'Prefix cache queries, in terms of number of queried tokens.', perEngine(() => 52000), created);
  p.counter('vllm:prefix_cache_hits', 'Prefix cache hits, in terms of number of cached tokens.', perEngine(() => 31000), created);
  p.counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', perEngine(() => 3), created);
  p.counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', perEngine(() => 52000), created);
  p.counter('vllm:generation_tokens', 'Number of generation tokens processed.', perEngine(() => 18000), created);
  p.counter(
    'vllm:request_success',
    'Count of successfully processed requests.',
    engines.flatMap((_, i) =>
      ['stop', 'length', 'abort'].map((r): [Record<string, string>, number] => [{ model_name: model, engine: String(i), finished_reason: r }, r === 'stop' ? 90 : 5]),
    ),
    created,
  );
  p.histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', TOKEN_BUCKETS, perEngineObs(() => [120, 900, 4000]), created);
  p.histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT_BUCKETS, perEngineObs(() => [0.03, 0.09, 0.4]), created);
  p.histogram('vllm:time_per_output_token_seconds', 'Histogram of time per output token in seconds.', TTFT_BUCKETS, perEngineObs(() => [0.011, 0.013]), created);
  p.histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', E2E_BUCKETS, perEngineObs(() => [1.2, 3.4, 9.9]), created);

  if (options.runningLoraAdapters) {
    p.family('vllm:lora_requests_info', 'gauge', 'Running stats on lora requests.');
    p.sample('vllm:lora_requests_info', { max_lora: '4', running_lora_adapters: options.runningLoraAdapters.join(','), waiting_lora_adapters: '' }, 1753300001.5);
  }
  if (options.cacheConfigInfo ?? true) {
    p.family('vllm:cache_config_info', 'gauge', 'Information of the LLMEngine CacheConfig');
    // vLLM's front end sums its engines' blocks into its one CacheConfig and labels each engine's series with it
    // (vllm/v1/engine/utils.py wait_for_engine_startup, vllm/v1/metrics/loggers.py log_metrics_info @ v0.10.0).
    const totalBlocks = engines.reduce((t, e) => t + (e.numGpuBlocks ?? 27153), 0);
    engines.forEach((_e, i) =>
      p.sample(
        'vllm:cache_config_info',
        {
          block_size: String(options.blockSize ?? 16),
          cache_dtype: 'auto',
          calculate_kv_scales: 'False',
          cpu_offload_gb: '0',
          enable_prefix_caching: 'True',
          engine: String(i),
          gpu_memory_utilization: '0.9',
          is_attention_free: 'False',
          num_cpu_blocks: 'None',
          num_gpu_blocks: String(totalBlocks),
          num_gpu_blocks_override: 'None',
          prefix_caching_hash_algo: 'sha256_cbor_64bit',
          sliding_window: 'None',
          swap_space: '4',
          swap_space_bytes: '4294967296',
        },
        1,
      ),
    );
  }
  return p.text();
}

/** How the fake answers `/metrics`. */
export type FakeVllmMode =
  | 'ok'
  /** 500 with an error body. */
  | 'error'
  /** Accepts the request and never answers. */
  | 'hang'
  /** Destroys the connection without answering. */
  | 'reset'
  /** 200 with an HTML page, as a misrouted request would get. */
  | 'not-metrics';

/** A real HTTP server on loopback serving a vLLM `/metrics` page. */
export class FakeVllmServer {
  /** What the page shows; change it between scrapes. */
  page: VllmPageOptions;
  /** When set, served verbatim instead of rendering `page`. */
  body: string | undefined;
  mode: FakeVllmMode = 'ok';
  /** `/metrics` requests received. */
  requests = 0;
  private readonly server: http.Server;
  private readonly hung = new Set<http.ServerResponse>();

  private constructor(page: VllmPageOptions) {
    this.page = page;
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static async start(page: VllmPageOptions = {}, host = '127.0.0.1'): Promise<FakeVllmServer> {
    const s = new FakeVllmServer(page);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(0, host, () => resolve());
    });
    return s;
  }

  get address(): string {
    return (this.server.address() as AddressInfo).address;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Ends hung requests too, so a test can finish while a scrape is stuck. */
  async close(): Promise<void> {
    for (const res of this.hung) res.destroy();
    this.hung.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found');
      return;
    }
    this.requests++;
    switch (this.mode) {
      case 'error':
        res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error');
        return;
      case 'hang':
        this.hung.add(res);
        res.on('close', () => this.hung.delete(res));
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'not-metrics':
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Welcome</body></html>');
        return;
      case 'ok':
        res
          .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
          .end(this.body ?? renderVllmMetrics(this.page));
    }
  }
}
