import * as fs from 'node:fs';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import type { HashAlgo, VllmGeneration } from './block-hash';
import type { EngineObserver, EngineStats, RequestResult } from './engine';

/** vLLM 0.10 (v1 engine) bucket bounds, seconds. */
export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0,
  640.0, 2560.0,
];
export const TPOT_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
export const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0,
  7680.0,
];

/** `vllm:iteration_tokens_total`'s bounds (loggers.py @ v0.10.0). */
export const ITERATION_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** vLLM's 1-2-5 series up to max_model_len, used for token-count histograms. */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let exp = 1; ; exp *= 10) {
    for (const m of [1, 2, 5]) {
      const v = m * exp;
      if (v > max) return out;
      out.push(v);
    }
  }
}

const FINISHED_REASONS = ['stop', 'length', 'abort'] as const;

/**
 * prometheus-fastapi-instrumentator's `default()` latency buckets (src/prometheus_fastapi_instrumentator/metrics.py @
 * v7.1.0 lines 621-644; `instrument()` passes the same defaults, instrumentation.py lines 163-186); `default()` appends
 * +Inf (lines 693-697). vLLM's `mount_metrics` passes none of its own.
 */
export const HTTP_HIGHR_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60];
export const HTTP_LOWR_BUCKETS = [0.1, 0.5, 1];

/** One request as prometheus-fastapi-instrumentator's middleware hands it to `default()`'s instrumentation (`Info`). */
export interface HttpObservation {
  /** `request.method`, as sent. */
  method: string;
  /** The route's path template, or `none` for a request no route matched (middleware.py @ v7.1.0 lines 132-136). */
  handler: string;
  /** The status of `http.response.start`, or 500 when the app raised before sending one (middleware.py line 145). */
  status: number;
  /** The request's `Content-Length` header, 0 without one (metrics.py @ v7.1.0 lines 796-798). */
  requestBytes: number;
  /** The response's `Content-Length` header, 0 without one (a stream, an exception) (metrics.py lines 804-809). */
  responseBytes: number;
  /** From the request's arrival to the end of the app's call, its last body chunk sent (middleware.py lines 130, 186). */
  durationS: number;
}

export interface MetricsConfig {
  modelName: string;
  blockSize: number;
  kvCacheBlocks: number;
  maxModelLen: number;
  gpuMemoryUtilization: number;
  prefixCachingHashAlgo: HashAlgo;
  /** `--enable-prefix-caching` (CacheConfig.enable_prefix_caching after `_set_default_args_v1`). @default true */
  enablePrefixCaching?: boolean;
  /** Which vLLM's CacheConfig fields label `vllm:cache_config_info`. */
  generation: VllmGeneration;
  /** `--swap-space` in GiB (CacheConfig.swap_space, a float). @default 4 */
  swapSpace?: number;
  /**
   * `--disable-log-stats`: vLLM 0.10's AsyncLLM then builds no StatLoggerManager, so no PrometheusStatLogger registers
   * a `vllm:` family (vllm/v1/engine/async_llm.py @ 6eca337ce lines 126-133, `if self.log_stats:`); /metrics is still
   * mounted (api_server.py `mount_metrics`, line 1468) and shows only prometheus_client's own collectors (the
   * simulator's `runtimeFamilies`). @default false
   */
  disableLogStats?: boolean;
  /**
   * `--max-loras` when `--enable-lora` is on (a LoRAConfig exists): only then does vLLM register
   * `vllm:lora_requests_info` (vllm/v1/metrics/loggers.py @ 6eca337ce lines 444-463). Undefined = LoRA off.
   */
  maxLoras?: number;
}

/** Python's `str(float)` (repr): shortest round-trip digits, `.0` on integers, exponent below 1e-4 or from 1e16. */
export function pythonFloatStr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = x.toExponential().split('e');
  const exp = Number(expStr);
  if (exp < -4 || exp >= 16) {
    const m = mant.includes('.') ? mant : `${mant}`;
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const s = String(x); // JavaScript uses fixed notation in this range, with the same shortest digits
  return s.includes('.') ? s : `${s}.0`;
}

/**
 * `CacheConfig.metrics_info()` as vLLM renders it: `{k: str(v) for k, v in self.__dict__.items()}` — the dataclass
 * fields in declaration order, then `swap_space_bytes` (set in `__post_init__`) — plus `engine`
 * (vllm/config.py and vllm/v1/metrics/loggers.py @ v0.10.0, `log_metrics_info`; vllm/config/cache.py @ v0.10.2).
 * Values the simulator has no say in are vLLM's defaults for a GPU run. `swap_space` and `cpu_offload_gb` are
 * `float` fields that `create_engine_config` passes explicitly, and pydantic turns the int defaults into floats, hence
 * "4.0" and "0.0"; num_cpu_blocks stays None in V1.
 */
export function cacheConfigInfoLabels(c: MetricsConfig): Record<string, string> {
  // `--swap-space` (argparse type=float; CacheConfig.__post_init__: swap_space_bytes = swap_space * GiB_bytes).
  const swapSpace = c.swapSpace ?? 4;
  const common: [string, string][] = [
    ['block_size', String(c.blockSize)],
    ['gpu_memory_utilization', pythonFloatStr(c.gpuMemoryUtilization)],
    ['swap_space', pythonFloatStr(swapSpace)],
    ['cache_dtype', 'auto'],
    ['is_attention_free', 'False'],
    ['num_gpu_blocks_override', 'None'],
    ['sliding_window', 'None'],
    ['enable_prefix_caching', c.enablePrefixCaching === false ? 'False' : 'True'],
    ['prefix_caching_hash_algo', c.prefixCachingHashAlgo],
    ['cpu_offload_gb', pythonFloatStr(0)],
    ['calculate_kv_scales', 'False'],
    ['cpu_kvcache_space_bytes', 'None'],
    ['mamba_page_size_padded', 'None'],
  ];
  const v0102: [string, string][] = c.generation === '0.10.2' ? [['mamba_cache_dtype', 'auto'], ['mamba_ssm_cache_dtype', 'auto']] : [];
  const blocks: [string, string][] = [
    ['num_gpu_blocks', String(c.kvCacheBlocks)],
    ['num_cpu_blocks', 'None'],
  ];
  const tail: [string, string][] = c.generation === '0.10.2' ? [['kv_sharing_fast_prefill', 'False']] : [];
  return Object.fromEntries([
    ...common,
    ...v0102,
    ...blocks,
    ...tail,
    ['swap_space_bytes', pythonFloatStr(swapSpace * 1024 ** 3)],
    ['engine', '0'],
  ]);
}

/** What prometheus_client's process collector reads from `/proc/self` (process_collector.py @ 038b5bd). */
interface ProcSelf {
  readonly virtualBytes: number;
  readonly residentBytes: number;
  readonly cpuSeconds: number;
  readonly openFds: number | undefined;
  readonly maxFds: number | undefined;
}

/** The process's `Max open files` soft limit, read once (it does not change under a running simulator). */
let maxFdsOnce: number | undefined | null = null;

/** Linux's `/proc/self`: `stat` fields 23-24 (vsize, rss in pages) and 14-15 (utime, stime in clock ticks); undefined without it. */
function readProcSelf(): ProcSelf | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync('/proc/self/stat', 'latin1');
  } catch {
    return undefined;
  }
  // Fields after the command name's closing parenthesis, from field 3 (state) on, as the collector splits them.
  const parts = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/);
  // USER_HZ is 100 on every Linux ABI Node runs on; the page size 4096 (x86-64, arm64 with 4K pages).
  const ticks = 100;
  let openFds: number | undefined;
  try {
    openFds = fs.readdirSync('/proc/self/fd').length;
  } catch {
    openFds = undefined;
  }
  if (maxFdsOnce === null) {
    try {
      const line = fs.readFileSync('/proc/self/limits', 'latin1').split('\n').find((l) => l.startsWith('Max open file'));
      maxFdsOnce = line === undefined ? undefined : Number(line.split(/\s+/)[3]);
    } catch {
      maxFdsOnce = undefined;
    }
  }
  return {
    virtualBytes: Number(parts[20]),
    residentBytes: Number(parts[21]) * 4096,
    cpuSeconds: (Number(parts[11]) + Number(parts[12])) / ticks,
    openFds,
    maxFds: maxFdsOnce,
  };
}

/**
 * prometheus_client's `floatToGoString` (exposition.py): Python's repr of the float, switched to Go's exponent form
 * for positive values with more than six integer digits (so a `_created` timestamp reads `1.7536e+09`).
 */
export function floatToGoString(x: number): string {
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  if (Number.isNaN(x)) return 'NaN';
  const s = pythonFloatStr(x);
  const dot = s.indexOf('.');
  if (x > 0 && dot > 6 && !s.includes('e')) {
    const mantissa = `${s[0]}.${s.slice(1, dot)}${s.slice(dot + 1)}`.replace(/[0.]+$/, '');
    return `${mantissa}e+0${dot - 1}`;
  }
  return s;
}

/** The types prometheus_client gives a `_created` sample (Counter, Summary, Histogram; vLLM never disables them). */
const HAS_CREATED: ReadonlySet<string> = new Set(['counter', 'summary', 'histogram']);

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelString(labels: Record<string, string | number>): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${escapeLabel(typeof labels[k] === 'number' ? floatToGoString(labels[k] as number) : String(labels[k]))}"`).join(',')}}`;
}

/**
 * vLLM 0.10's Prometheus surface for one engine, in its own registry so that
 * several simulators can live in one process.
 *
 * The families, their order, help texts, types, labels and buckets are vllm/v1/metrics/loggers.py @ v0.10.0
 * (`PrometheusStatLogger`); the page is written the way Python's prometheus_client 0.22 writes it for the default
 * registry (exposition.py `generate_latest`): label names sorted, every value a Python float (`0.0`, `le="1.0"`), and
 * after each counter and histogram a `<name>_created` gauge with the series' creation time (vLLM V1 does not call
 * `disable_created_metrics()`). prom-client keeps the values; `metrics()` renders them.
 *
 * What changes when (vllm/v1/metrics/stats.py, vllm/v1/engine/output_processor.py @ v0.10.0):
 * - the gauges hold the scheduler's stats of the last engine step, so they read 0 until the first request is
 *   scheduled (the engine sends no stats while idle at start);
 * - `prompt_tokens` grows at a request's first token, `generation_tokens` and the TTFT/TPOT histograms per token;
 * - the per-request histograms (queue, e2e, inference, prefill, decode time and the prompt/generation token counts),
 *   `request_success` and the `request_params_*` histograms when a request finishes with `stop` or `length`. A request aborted by its client is dropped by the output processor without stats, so
 *   `finished_reason="abort"` stays 0 here, as in vLLM 0.10.
 *
 * Every duration is *model* time — what the simulated GPU took — not wall
 * time, so the numbers do not depend on --time-scale: a TTFT that reads 1.0 s
 * here was delivered after 1.0 s / time-scale of wall time (plus real
 * tokenization and HTTP overhead, which the model does not include).
 */
export class SimMetrics implements EngineObserver {
  readonly registry = new Registry();
  private readonly labels: { model_name: string; engine: string };
  private readonly queries: Counter<'model_name' | 'engine'>[];
  private readonly hits: Counter<'model_name' | 'engine'>[];
  private readonly preemptions: Counter<'model_name' | 'engine'>;
  private readonly promptTokens: Counter<'model_name' | 'engine'>;
  private readonly generationTokens: Counter<'model_name' | 'engine'>;
  private readonly success: Counter<'model_name' | 'engine' | 'finished_reason'>;
  private readonly ttft: Histogram<'model_name' | 'engine'>;
  private readonly tpot: Histogram<'model_name' | 'engine'>;
  /** 0.10.2's `vllm:inter_token_latency_seconds`, the same samples as TPOT; null in 0.10.0 mode. */
  private readonly itl: Histogram<'model_name' | 'engine'> | null;
  private readonly e2e: Histogram<'model_name' | 'engine'>;
  private readonly queueTime: Histogram<'model_name' | 'engine'>;
  private readonly prefillTime: Histogram<'model_name' | 'engine'>;
  private readonly decodeTime: Histogram<'model_name' | 'engine'>;
  private readonly inferenceTime: Histogram<'model_name' | 'engine'>;
  private readonly reqPromptTokens: Histogram<'model_name' | 'engine'>;
  private readonly reqGenerationTokens: Histogram<'model_name' | 'engine'>;
  private readonly iterationTokens: Histogram<'model_name' | 'engine'>;
  private readonly maxNumGenerationTokens: Histogram<'model_name' | 'engine'>;
  private readonly paramsN: Histogram<'model_name' | 'engine'>;
  private readonly paramsMaxTokens: Histogram<'model_name' | 'engine'>;
  /** When each family's series were created (Python's `_created`), seconds since the epoch. */
  private readonly createdAt = Date.now() / 1000;
  /** Requests finished, for the stand-in Python GC counters (`runtimeFamilies`). */
  private finishedRequests = 0;
  /** Until the first scheduling step the gauges read 0, as vLLM's before its first stats. */
  private stepped = false;
  /** The stats of the last step that returned any (`onSchedulerStats`), for vLLM 0.10.0's gauges. */
  private lastStats: EngineStats | undefined;
  /** vLLM 0.10.0: scheduler stats (gauges and prefix-cache counts) move only with a step that sampled a token. */
  private readonly perOutputStep: boolean;
  /** Prefix-cache lookups since the last such step, which 0.10.0's counters take with it. */
  private pendingPrefix = { queries: 0, hits: 0 };
  /** The time of each running request's last token, for the inter-token samples. */
  private readonly lastTokenMs = new Map<string, number>();
  private readonly disableLogStats: boolean;
  /** `vllm:lora_requests_info`, with LoRA on. */
  private readonly loraInfo: Gauge<'max_lora' | 'waiting_lora_adapters' | 'running_lora_adapters'> | null = null;
  private readonly maxLoras: number | undefined;
  /** Per adapter, in the order first seen, its requests waiting for a first output and running (LoRARequestStates). */
  private readonly loraStates = new Map<string, { waiting: Set<string>; running: Set<string> }>();
  private readonly loraOf = new Map<string, string>();
  /** The last value written to a lora_requests_info series, so a later change always reads newer. */
  private loraInfoAt = 0;
  /** prometheus-fastapi-instrumentator's `default()` families (see `observeHttp`). */
  private readonly httpRequests: Counter<'method' | 'status' | 'handler'>;
  private readonly httpRequestSize: Summary<'handler'>;
  private readonly httpResponseSize: Summary<'handler'>;
  private readonly httpHighr: Histogram<string>;
  private readonly httpLowr: Histogram<'method' | 'handler'>;
  /** When each labelled http_* series was created (its first observation), for its `_created`; keyed by name + labels. */
  private readonly seriesCreated = new Map<string, number>();

  constructor(config: MetricsConfig, stats: () => EngineStats) {
    this.disableLogStats = config.disableLogStats === true;
    const labelNames = ['model_name', 'engine'] as const;
    this.labels = { model_name: config.modelName, engine: '0' };
    const registers = [this.registry];
    const labels = this.labels;
    // vLLM 0.10.0 sets the scheduler gauges from the stats a step returns, and returns them only from a step with request
    // outputs (a sampled token): between such steps (a lone long prefill, or after aborts left the engine idle) they
    // keep the last values. #22995 (0.10.2) returns them every step, which the live reading stands for.
    const perOutputStep = config.generation === '0.10.0';
    this.perOutputStep = perOutputStep;
    const live = (read: (s: EngineStats) => number) => (): number => {
      if (perOutputStep) return this.lastStats === undefined ? 0 : read(this.lastStats);
      return this.stepped ? read(stats()) : 0;
    };

    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.set(labels, read());
        },
      });
    };
    const counter = (name: string, help: string): Counter<'model_name' | 'engine'> => {
      const c = new Counter({ name, help, labelNames, registers });
      c.inc(labels, 0);
      return c;
    };
    const histogram = (name: string, help: string, buckets: number[]): Histogram<'model_name' | 'engine'> => {
      const h = new Histogram({ name, help, labelNames, buckets, registers });
      h.zero(labels);
      return h;
    };

    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', live((s) => s.running));
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', live((s) => s.waiting));
    // Deprecated in 0.9 but still registered by 0.10 (its help text runs the sentences together); GIE v0.5 scrapes it.
    gauge('vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.', live((s) => s.kvUsage));
    const gpuQueries = counter('vllm:gpu_prefix_cache_queries_total', 'GPU prefix cache queries, in terms of number of queriedtokens. DEPRECATED: Use vllm:prefix_cache_queries instead.');
    const gpuHits = counter('vllm:gpu_prefix_cache_hits_total', 'GPU prefix cache hits, in terms of number of cached tokens. DEPRECATED: Use vllm:prefix_cache_hits instead.');
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', live((s) => s.kvUsage));
    this.queries = [counter('vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.'), gpuQueries];
    this.hits = [counter('vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.'), gpuHits];
    this.preemptions = counter('vllm:num_preemptions_total', 'Cumulative number of preemption from the engine.');
    this.promptTokens = counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.');
    this.generationTokens = counter('vllm:generation_tokens_total', 'Number of generation tokens processed.');
    this.success = new Counter({
      name: 'vllm:request_success_total',
      help: 'Count of successfully processed requests.',
      labelNames: ['model_name', 'engine', 'finished_reason'] as const,
      registers,
    });
    for (const reason of FINISHED_REASONS) this.success.inc({ ...labels, finished_reason: reason }, 0);

    const tokenBuckets = buckets125(config.maxModelLen);
    this.reqPromptTokens = histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', tokenBuckets);
    this.reqGenerationTokens = histogram('vllm:request_generation_tokens', 'Number of generation tokens processed.', tokenBuckets);
    this.iterationTokens = histogram('vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', ITERATION_TOKEN_BUCKETS);
    this.maxNumGenerationTokens = histogram('vllm:request_max_num_generation_tokens', 'Histogram of maximum number of requested generation tokens.', tokenBuckets);
    this.paramsN = histogram('vllm:request_params_n', 'Histogram of the n request parameter.', [1, 2, 5, 10, 20]);
    this.paramsMaxTokens = histogram('vllm:request_params_max_tokens', 'Histogram of the max_tokens request parameter.', tokenBuckets);
    this.ttft = histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT_BUCKETS);
    // vLLM #24110 (on main from 2025-09-02, in the 0.10.2 simulated here: loggers.py @ 61aa4b290 lines 380-404, 555-557)
    // renamed TPOT to inter-token latency: the old family stays, its help marked deprecated, and the new one follows
    // it with the same buckets and samples.
    const v0102 = config.generation === '0.10.2';
    this.tpot = histogram(
      'vllm:time_per_output_token_seconds',
      v0102 ? 'Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.' : 'Histogram of time per output token in seconds.',
      TPOT_BUCKETS,
    );
    this.itl = v0102 ? histogram('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', TPOT_BUCKETS) : null;
    this.e2e = histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', REQUEST_LATENCY_BUCKETS);
    this.queueTime = histogram('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', REQUEST_LATENCY_BUCKETS);
    this.inferenceTime = histogram('vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', REQUEST_LATENCY_BUCKETS);
    this.prefillTime = histogram('vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', REQUEST_LATENCY_BUCKETS);
    this.decodeTime = histogram('vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', REQUEST_LATENCY_BUCKETS);

    this.maxLoras = config.maxLoras;
    if (config.maxLoras !== undefined) {
      // No model_name or engine label; one series per distinct (max_lora, waiting, running), each keeping the time it
      // was last set, as prometheus_client keeps every child of a labelled gauge.
      this.loraInfo = new Gauge({
        name: 'vllm:lora_requests_info',
        help: 'Running stats on lora requests.',
        labelNames: ['max_lora', 'waiting_lora_adapters', 'running_lora_adapters'] as const,
        registers,
      });
    }

    // Last of the vllm: families: PrometheusStatLogger's __init__ ends with the LoRA gauge, and the info gauge is
    // registered by log_metrics_info, which AsyncLLM reaches through log_engine_initialized once the logger is built
    // (vllm/v1/metrics/loggers.py @ 6eca337ce, v0.10.0); prometheus_client's registry writes families in registration
    // order. No model_name label: vLLM's info gauge carries only the CacheConfig fields and the engine index.
    const infoLabels = cacheConfigInfoLabels(config);
    const info = new Gauge({
      name: 'vllm:cache_config_info',
      help: 'Information of the LLMEngine CacheConfig',
      labelNames: Object.keys(infoLabels),
      registers,
    });
    info.set(infoLabels, 1);

    // prometheus-fastapi-instrumentator's default metrics, which vLLM's mount_metrics installs with
    // `Instrumentator(excluded_handlers=[...], registry=registry).add().instrument(app)` (api_server.py @ v0.10.0
    // mount_metrics): `.add()` with no function adds none, so the middleware falls back to `metrics.default()`
    // (middleware.py @ v7.1.0 lines 88-104). Starlette builds its middleware stack, and so creates these, when the
    // server starts, after AsyncLLM (built before build_app) registered the vllm: families: they follow them on the page,
    // also with --disable-log-stats, which removes only the vllm: ones. Names, help texts (trailing spaces included),
    // types, label names and buckets are metrics.py @ v7.1.0 lines 706-777; the summaries have no quantiles.
    this.httpRequests = new Counter({
      name: 'http_requests_total',
      help: 'Total number of requests by method, status and handler.',
      labelNames: ['method', 'status', 'handler'] as const,
      registers,
    });
    this.httpRequestSize = new Summary({
      name: 'http_request_size_bytes',
      help: 'Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ',
      labelNames: ['handler'] as const,
      percentiles: [],
      registers,
    });
    this.httpResponseSize = new Summary({
      name: 'http_response_size_bytes',
      help: 'Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ',
      labelNames: ['handler'] as const,
      percentiles: [],
      registers,
    });
    // No labels: its one series (zero buckets, _count, _sum, _created) is on the page from the start.
    this.httpHighr = new Histogram({
      name: 'http_request_duration_highr_seconds',
      help: 'Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ',
      buckets: HTTP_HIGHR_BUCKETS,
      registers,
    });
    this.httpLowr = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ',
      labelNames: ['method', 'handler'] as const,
      buckets: HTTP_LOWR_BUCKETS,
      registers,
    });
  }

  /**
   * One request the instrumentator's middleware did not exclude, recorded as `default()`'s instrumentation records it
   * (metrics.py @ v7.1.0 lines 779-820): `http_requests_total{method,status,handler}` + 1 with the status grouped to
   * its first digit + `xx` (`should_group_status_codes` defaults to True, middleware.py lines 203-204), the two size
   * summaries per handler, the highr histogram for every status (`should_only_respect_2xx_for_highr` is False) and the
   * lowr one per method and handler, both with the whole duration (`should_exclude_streaming_duration` is False).
   */
  observeHttp(o: HttpObservation): void {
    const status = `${String(o.status)[0]}xx`;
    const now = Date.now() / 1000;
    const created = (name: string, labels: Record<string, string>): void => {
      const key = `${name}${labelString(labels)}`;
      if (!this.seriesCreated.has(key)) this.seriesCreated.set(key, now);
    };
    const total = { method: o.method, status, handler: o.handler };
    const byHandler = { handler: o.handler };
    const lowr = { method: o.method, handler: o.handler };
    created('http_requests_total', total);
    created('http_request_size_bytes', byHandler);
    created('http_response_size_bytes', byHandler);
    created('http_request_duration_seconds', lowr);
    this.httpRequests.inc(total, 1);
    this.httpRequestSize.observe(byHandler, o.requestBytes);
    this.httpResponseSize.observe(byHandler, o.responseBytes);
    this.httpHighr.observe(o.durationS);
    this.httpLowr.observe(lowr, o.durationS);
  }

  onSubmit(info: { id: string; loraName: string | null }): void {
    // LoRARequestStates.add_request (vllm/v1/metrics/stats.py @ 6eca337ce lines 197-199): waiting from the start.
    if (this.loraInfo === null || info.loraName === null) return;
    let state = this.loraStates.get(info.loraName);
    if (state === undefined) {
      state = { waiting: new Set(), running: new Set() };
      this.loraStates.set(info.loraName, state);
    }
    state.waiting.add(info.id);
    this.loraOf.set(info.id, info.loraName);
  }

  onPrefixQuery(info: { queries: number; hits: number }): void {
    // Every get_computed_blocks call, in tokens: each scheduling attempt of a waiting request, and again after a
    // preemption (vllm/v1/core/kv_cache_manager.py @ v0.10.0; PrefixCacheStats per step → loggers.py counters).
    this.stepped = true;
    if (this.perOutputStep) {
      // 0.10.0 takes the step's PrefixCacheStats out in make_stats(), which update_from_output calls only for a step
      // with request outputs (scheduler.py @ v0.10.0): the counters move with the gauges, at a sampled token.
      this.pendingPrefix.queries += info.queries;
      this.pendingPrefix.hits += info.hits;
      return;
    }
    this.countPrefix(info.queries, info.hits);
  }

  private countPrefix(queries: number, hits: number): void {
    for (const c of this.queries) c.inc(this.labels, queries);
    for (const c of this.hits) c.inc(this.labels, hits);
  }

  onAdmit(): void {
    // The first scheduling step: the gauges are live from now on. Its queue time is recorded only when the request
    // finishes (onFinish), with the other per-request histograms.
    this.stepped = true;
  }

  onSchedulerStats(stats: EngineStats): void {
    this.lastStats = stats;
    const { queries, hits } = this.pendingPrefix;
    if (queries > 0 || hits > 0) {
      this.pendingPrefix = { queries: 0, hits: 0 };
      this.countPrefix(queries, hits);
    }
  }

  onPreempt(): void {
    // EngineCoreEventType.PREEMPTED → IterationStats.num_preempted_reqs → vllm:num_preemptions (stats.py @ v0.10.0
    // L146-147, loggers.py L522-523). The engine calls this with the preempted request's next token, when vLLM's
    // EngineCoreOutput carries the event (scheduler.py @ 6eca337ce L855-868), never for one aborted while preempted.
    this.preemptions.inc(this.labels, 1);
  }

  onFirstToken(info: { ttftMs: number }): void {
    this.ttft.observe(this.labels, info.ttftMs / 1000);
  }

  onToken(info: { id: string; index: number; atMs: number; promptTokens: number }): void {
    // IterationStats.update_from_output @ v0.10.0: the prompt counts once, at the first token; every token is a
    // generation token; each later token is one TPOT sample (the gap since the previous one, preemptions included).
    const first = info.index === 0;
    if (first) this.promptTokens.inc(this.labels, info.promptTokens);
    // The SCHEDULED event reaches the output processor with the request's first output (its first token): waiting →
    // running then (stats.py @ 6eca337ce, update_from_events → scheduled_request). A preemption's PREEMPTED and the
    // next SCHEDULED arrive together with its next output, so they leave it running.
    if (first) {
      const lora = this.loraOf.get(info.id);
      const state = lora === undefined ? undefined : this.loraStates.get(lora);
      if (state !== undefined && state.waiting.delete(info.id)) state.running.add(info.id);
    }
    this.generationTokens.inc(this.labels, 1);
    const prev = this.lastTokenMs.get(info.id);
    if (!first && prev !== undefined) {
      const gap = (info.atMs - prev) / 1000;
      this.itl?.observe(this.labels, gap);
      this.tpot.observe(this.labels, gap);
    }
    this.lastTokenMs.set(info.id, info.atMs);
  }

  onIterationTokens(info: { promptTokens: number; generationTokens: number }): void {
    // PrometheusStatLogger.record (vllm/v1/metrics/loggers.py @ v0.10.0): one sample per engine step that produced
    // outputs, num_prompt_tokens + num_generation_tokens of that step.
    this.iterationTokens.observe(this.labels, info.promptTokens + info.generationTokens);
    // PrometheusStatLogger.record (loggers.py @ 6eca337ce lines 563-574): the adapters with waiting and with running
    // requests, comma-joined in the order first seen (update_iteration_stats), set to the current time.
    if (this.loraInfo !== null) {
      const waiting: string[] = [];
      const running: string[] = [];
      for (const [name, state] of this.loraStates) {
        if (state.waiting.size > 0) waiting.push(name);
        if (state.running.size > 0) running.push(name);
      }
      this.loraInfoAt = Math.max(Date.now() / 1000, this.loraInfoAt + 1e-6);
      this.loraInfo.set({ max_lora: String(this.maxLoras), waiting_lora_adapters: waiting.join(','), running_lora_adapters: running.join(',') }, this.loraInfoAt);
    }
  }

  onFinish(r: RequestResult): void {
    this.finishedRequests++;
    this.lastTokenMs.delete(r.id);
    // finish_request / abort_request (stats.py @ 6eca337ce lines 201-213): out of both sets.
    const lora = this.loraOf.get(r.id);
    if (lora !== undefined) {
      this.loraOf.delete(r.id);
      const state = this.loraStates.get(lora);
      state?.waiting.delete(r.id);
      state?.running.delete(r.id);
    }
    // OutputProcessor.abort_requests drops an aborted request without recording its stats: it pops the request's state
    // and never calls _update_stats_from_finished (vllm/v1/engine/output_processor.py @ 6eca337ce lines 301-316; the
    // stats of a finished request are taken only in process_outputs, lines 434-436), so an abort observes none of the
    // per-request histograms, queue time included.
    if (r.finishReason === 'abort' || r.admittedMs === null || r.firstTokenMs === null) return;
    this.success.inc({ ...this.labels, finished_reason: r.finishReason }, 1);
    this.reqPromptTokens.observe(this.labels, r.promptTokens);
    this.reqGenerationTokens.observe(this.labels, r.completionTokens);
    // A child of an n > 1 request: its parent records n and the largest child (observeParentFinished).
    if (r.parentN <= 1) {
      this.maxNumGenerationTokens.observe(this.labels, r.completionTokens);
      this.paramsN.observe(this.labels, 1);
    }
    this.paramsMaxTokens.observe(this.labels, r.maxTokensParam);
    this.e2e.observe(this.labels, (r.finishedMs - r.arrivalMs) / 1000);
    // Queue time (first QUEUED to first SCHEDULED, `scheduled_ts` set once so preemptions do not move it) is a field of
    // FinishedRequestStats (vllm/v1/metrics/stats.py @ 6eca337ce, v0.10.0, lines 150-181, update_from_finished_request)
    // and is observed only in PrometheusStatLogger.record's `for finished_request in iteration_stats.finished_requests`
    // loop (vllm/v1/metrics/loggers.py @ 6eca337ce lines 542-561), beside e2e, prefill, inference, decode and the token
    // histograms: so at the finish, never for an abort, and its _count always equals request_success's stop + length.
    // From QUEUED (the step boundary that took it in) to its first scheduling, as vLLM's queued_time
    // (vllm/v1/metrics/stats.py @ v0.10.0, update_from_finished_request); the wait for the step in flight at arrival is in TTFT only.
    this.queueTime.observe(this.labels, (r.admittedMs - (r.queuedMs ?? r.admittedMs)) / 1000);
    this.inferenceTime.observe(this.labels, (r.finishedMs - r.admittedMs) / 1000);
    this.prefillTime.observe(this.labels, (r.firstTokenMs - r.admittedMs) / 1000);
    this.decodeTime.observe(this.labels, (r.finishedMs - r.firstTokenMs) / 1000);
  }

  /**
   * The last child of an n > 1 request finished: one `request_params_n` sample and one
   * `request_max_num_generation_tokens` sample with the largest child (ParentRequest.observe_finished_request,
   * vllm/v1/engine/parallel_sampling.py @ v0.10.0).
   */
  observeParentFinished(n: number, maxGenerationTokens: number): void {
    this.paramsN.observe(this.labels, n);
    this.maxNumGenerationTokens.observe(this.labels, maxGenerationTokens);
  }

  /** The page as vLLM's prometheus_client writes it (see the class comment). */
  async metrics(): Promise<string> {
    const created = floatToGoString(this.createdAt);
    const out: string[] = [this.runtimeFamilies(false)];
    for (const f of await this.families()) {
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`);
      for (const series of f.series) out.push(...series.lines);
      // The text format has no _created samples: prometheus_client writes them as a gauge family after the family
      // (a labelled family no request has touched yet has no series, hence no _created family either).
      if (HAS_CREATED.has(f.type) && f.series.length > 0) {
        out.push(`# HELP ${f.base}_created ${escapeHelp(f.help)}\n# TYPE ${f.base}_created gauge\n`);
        for (const series of f.series) out.push(`${f.base}_created${labelString(series.labels)} ${series.created ?? created}\n`);
      }
    }
    return out.join('');
  }

  /**
   * The page in OpenMetrics 1.0, what vLLM answers a scraper whose Accept names `application/openmetrics-text`
   * (Prometheus does): prometheus_client 0.22's `openmetrics/exposition.py` `generate_latest`. A counter's family is
   * named without `_total`; each series' `_created` follows its samples; HELP also escapes `"`; the page ends `# EOF`.
   */
  async openMetrics(): Promise<string> {
    const created = floatToGoString(this.createdAt);
    const out: string[] = [this.runtimeFamilies(true)];
    for (const f of await this.families()) {
      out.push(`# HELP ${f.base} ${escapeHelp(f.help).replace(/"/g, '\\"')}\n# TYPE ${f.base} ${f.type}\n`);
      for (const series of f.series) {
        out.push(...series.lines);
        if (HAS_CREATED.has(f.type)) out.push(`${f.base}_created${labelString(series.labels)} ${series.created ?? created}\n`);
      }
    }
    out.push('# EOF\n');
    return out.join('');
  }

  /**
   * prometheus_client's own collectors, which open a vLLM page: vLLM's single API server serves the default registry
   * (`get_prometheus_registry`, vllm/v1/metrics/prometheus.py @ v0.10.0), and `prometheus_client/__init__.py` imports
   * `gc_collector`, `platform_collector` and `process_collector` in that order, each registering its collector at
   * import, so before vLLM's families (prometheus/client_python @ 038b5bd: gc_collector.py, platform_collector.py,
   * process_collector.py). Also with --disable-log-stats, which removes only vLLM's own families. Families and order:
   * - `python_gc_objects_collected_total`, `python_gc_objects_uncollectable_total`, `python_gc_collections_total`, one
   *   series per generation 0-2 (`gc.get_stats()`): the simulator has no Python heap, so these are stand-ins that grow
   *   with the requests it finished (nothing reads them; they give the page a real page's lines);
   * - `python_info`: the vllm-openai image's CPython 3.12 (vllm-project/vllm docker/Dockerfile `ARG PYTHON_VERSION=3.12`,
   *   from the deadsnakes PPA; the patch level is illustrative);
   * - the process collector's `process_virtual_memory_bytes`, `process_resident_memory_bytes`,
   *   `process_start_time_seconds`, `process_cpu_seconds_total`, `process_open_fds`, `process_max_fds`: the simulator
   *   process's own, read from `/proc` as the collector reads them, except the start time, which is the simulator's
   *   (several simulators share a test process; each must read as its own server, and the EPP tells a restarted server
   *   by it). Where `/proc` cannot be read the collector writes no family at all; the simulator still writes the start
   *   time, which the EPP needs.
   * Counters are custom-collector families: no `_created` sample. OpenMetrics names a counter's family without `_total`.
   */
  private runtimeFamilies(openMetrics: boolean): string {
    const out: string[] = [];
    const family = (name: string, type: 'counter' | 'gauge', help: string, samples: string[]): void => {
      const familyName = openMetrics && type === 'counter' ? name.slice(0, -'_total'.length) : name;
      out.push(`# HELP ${familyName} ${help}\n# TYPE ${familyName} ${type}\n`, ...samples);
    };
    const proc = readProcSelf();
    if (proc !== undefined) {
      const n = this.finishedRequests;
      const generations = (f: (g: number) => number, name: string) => [0, 1, 2].map((g) => `${name}{generation="${g}"} ${floatToGoString(f(g))}\n`);
      // Stand-ins: a young generation collected about once per request finished, each older one a tenth as often.
      const collections = (g: number) => Math.floor(n / 10 ** g);
      family('python_gc_objects_collected_total', 'counter', 'Objects collected during gc', generations((g) => 37 * collections(g), 'python_gc_objects_collected_total'));
      family('python_gc_objects_uncollectable_total', 'counter', 'Uncollectable object found during GC', generations(() => 0, 'python_gc_objects_uncollectable_total'));
      family('python_gc_collections_total', 'counter', 'Number of times this generation was collected', generations(collections, 'python_gc_collections_total'));
      family('python_info', 'gauge', 'Python platform information', ['python_info{implementation="CPython",major="3",minor="12",patchlevel="11",version="3.12.11"} 1.0\n']);
      family('process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.', [`process_virtual_memory_bytes ${floatToGoString(proc.virtualBytes)}\n`]);
      family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [`process_resident_memory_bytes ${floatToGoString(proc.residentBytes)}\n`]);
    }
    family('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', [`process_start_time_seconds ${floatToGoString(this.createdAt)}\n`]);
    if (proc !== undefined) {
      family('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', [`process_cpu_seconds_total ${floatToGoString(proc.cpuSeconds)}\n`]);
      if (proc.openFds !== undefined && proc.maxFds !== undefined) {
        family('process_open_fds', 'gauge', 'Number of open file descriptors.', [`process_open_fds ${floatToGoString(proc.openFds)}\n`]);
        family('process_max_fds', 'gauge', 'Maximum number of open file descriptors.', [`process_max_fds ${floatToGoString(proc.maxFds)}\n`]);
      }
    }
    return out.join('');
  }

  /** The families in registration order, each series' sample lines in prometheus_client's order. */
  private async families(): Promise<{ name: string; base: string; help: string; type: string; series: { labels: Record<string, string | number>; lines: string[]; created?: string }[] }[]> {
    // --disable-log-stats: no PrometheusStatLogger, so no vllm: family at all (see MetricsConfig.disableLogStats); the
    // instrumentator's http_* families stay.
    const families = (await this.registry.getMetricsAsJSON()).filter((f) => !(this.disableLogStats && f.name.startsWith('vllm:')));
    return families.map((f) => {
      const type = String(f.type);
      const values = f.values as { value: number; labels: Record<string, string | number>; metricName?: string }[];
      const series: { labels: Record<string, string | number>; lines: string[]; created?: string }[] = [];
      if (type === 'histogram' || type === 'summary') {
        // prometheus_client's order per series: the buckets, then _count, then _sum (prom-client lists _sum first); a
        // Summary without quantiles, as the instrumentator's, has no buckets here.
        const bySeries = new Map<string, { labels: Record<string, string | number>; buckets: string[]; sum?: string; count?: string }>();
        for (const v of values) {
          const { le, ...rest } = v.labels;
          const key = labelString(rest);
          let entry = bySeries.get(key);
          if (!entry) {
            entry = { labels: rest, buckets: [] };
            bySeries.set(key, entry);
          }
          const value = floatToGoString(v.value);
          if (v.metricName?.endsWith('_bucket')) entry.buckets.push(`${f.name}_bucket${labelString({ ...rest, le: le === '+Inf' ? Infinity : Number(le) })} ${value}\n`);
          else if (v.metricName?.endsWith('_sum')) entry.sum = `${f.name}_sum${key} ${value}\n`;
          else if (v.metricName?.endsWith('_count')) entry.count = `${f.name}_count${key} ${value}\n`;
        }
        for (const e of bySeries.values()) series.push({ labels: e.labels, lines: [...e.buckets, e.count ?? '', e.sum ?? ''] });
      } else {
        const byKey = new Map<string, { labels: Record<string, string | number>; lines: string[] }>();
        for (const v of values) {
          const key = labelString(v.labels);
          let entry = byKey.get(key);
          if (!entry) {
            entry = { labels: v.labels, lines: [] };
            byKey.set(key, entry);
            series.push(entry);
          }
          entry.lines.push(`${f.name}${key} ${floatToGoString(v.value)}\n`);
        }
      }
      // A series first observed after the start (the http_* ones) carries its own creation time.
      for (const e of series) {
        const at = this.seriesCreated.get(`${f.name}${labelString(e.labels)}`);
        if (at !== undefined) e.created = floatToGoString(at);
      }
      return { name: f.name, base: type === 'counter' ? f.name.replace(/_total$/, '') : f.name, help: f.help, type, series };
    });
  }

  get contentType(): string {
    // prometheus_client's CONTENT_TYPE_LATEST.
    return 'text/plain; version=0.0.4; charset=utf-8';
  }

  /** prometheus_client's `openmetrics.exposition.CONTENT_TYPE_LATEST`. */
  get openMetricsContentType(): string {
    return 'application/openmetrics-text; version=1.0.0; charset=utf-8';
  }
}
