import { hostname } from 'node:os';
import { generationOf, HASH_ALGOS, type HashAlgo } from './block-hash';
import { SCHEDULING_POLICIES, type SchedulingPolicy } from './engine';
import { OptionError } from './option-error';
import { logLine } from './log-line';
import { KV_EVENTS_ENCODINGS, parseKvEventsConfig, type KvEventsConfig, type KvEventsEncoding } from './kv-events-config';

export interface SimulatorOptions {
  host: string;
  /** 0 = an ephemeral port; the bound port is reported by startSimulator / the listening line. */
  port: number;
  /** The model being impersonated (shown in /v1/models as `root`). Tokenizer is always Qwen3's. */
  model: string;
  /** Names accepted in requests; the first one labels the metrics (vLLM's behaviour). */
  servedModelNames: string[];
  blockSize: number;
  /** KV blocks in all, vLLM's null block included (like `num_gpu_blocks`). */
  kvCacheBlocks: number;
  maxNumSeqs: number;
  maxModelLen: number;
  /** Tokens a request prefills per scheduler step (vLLM's chunked prefill token budget). */
  maxNumBatchedTokens: number;
  ttftOverheadMs: number;
  prefillMsPerToken: number;
  itlMs: number;
  /** Prefills computed at once (FCFS); 0 = unlimited, i.e. each request's prefill is independent. */
  prefillConcurrency: number;
  /**
   * vLLM's `--scheduling-policy`: `fcfs`, or `priority` (the waiting queue by each request's `priority`, lower
   * first, then arrival; preemption takes the largest). Under `fcfs` any `priority` is accepted and ignored, as by
   * vLLM V1's processor.
   */
  schedulingPolicy: SchedulingPolicy;
  /**
   * vLLM's `--long-prefill-token-threshold`: the most tokens one request computes in a scheduler step; 0 (vLLM's
   * default) or less = no cap (see EngineConfig.longPrefillTokenThreshold).
   */
  longPrefillTokenThreshold: number;
  /** Simulated time runs this many times faster than wall time. */
  timeScale: number;
  podName: string;
  /** max_tokens when a request gives none (capped by the room left under max-model-len). */
  defaultMaxTokens: number;
  /** vLLM's `--enable-prompt-tokens-details`: report `usage.prompt_tokens_details.cached_tokens` (when non-zero). */
  enablePromptTokensDetails: boolean;
  /**
   * vLLM's `--enable-request-id-headers`: every response carries `X-Request-Id`, the request's own (even empty; the
   * first of repeated ones) or else a fresh uuid4 hex, as vLLM's XRequestIdMiddleware appends it at the response's start
   * (vllm/entrypoints/openai/api_server.py @ v0.10.0). @default false
   */
  enableRequestIdHeaders: boolean;
  /**
   * Add the `kvroute_sim` member (pod, cached tokens, queue time, TTFT, e2e in model seconds) to each non-streaming body
   * and to the last token's chunk. Off by default, so responses carry exactly vLLM's members.
   */
  simExtension: boolean;
  /**
   * vLLM's `--enable-prefix-caching` / `--no-enable-prefix-caching` (a `BooleanOptionalAction`; `None` becomes true for
   * a V1 generation model, `_set_default_args_v1` in vllm/engine/arg_utils.py @ v0.10.0 and v0.10.2). Off, nothing is
   * looked up or cached: no hits, no prefix-cache queries counted, no BlockStored or BlockRemoved
   * (vllm/v1/core/kv_cache_manager.py and block_pool.py, `enable_caching`).
   */
  enablePrefixCaching: boolean;
  /** Only reported, in `vllm:cache_config_info`. */
  gpuMemoryUtilization: number;
  /**
   * vLLM's `--swap-space` in GiB (CacheConfig.swap_space, a float, default 4). vLLM V1 preempts by recompute and never
   * swaps, so it is only reported: `swap_space` and `swap_space_bytes` (= swap_space × 2^30) in `vllm:cache_config_info`.
   * vLLM also refuses a swap space × tensor-parallel size above 70 % of its host's memory
   * (CacheConfig.verify_with_parallel_config, vllm/config.py @ 6eca337ce lines 1758-1775); the simulator's host is not the
   * GPU node it stands for, so that check is not made.
   */
  swapSpace: number;
  /**
   * vLLM's `--disable-log-stats`: no stat logger, hence no `vllm:` family on /metrics (vllm/v1/engine/async_llm.py @
   * 6eca337ce lines 126-133). @default false
   */
  disableLogStats: boolean;
  prefixCachingHashAlgo: HashAlgo;
  /** `PYTHONHASHSEED`, read from the environment by default; undefined = unset (a random hash root). */
  pythonHashSeed: string | undefined;
  /** `--kv-events-config`; null = not given. */
  kvEventsConfig: KvEventsConfig | null;
  kvEventsEncoding: KvEventsEncoding;
  /** LoRA adapter names accepted as `model` (`--lora-modules`); adapter i has `lora_int_id` i + 1. */
  loraModules: string[];
  /** The path of each `--lora-modules name=path` pair: the adapter's `root` in /v1/models. */
  loraModulePaths: Record<string, string>;
  /**
   * The `base_model_name` of each `--lora-modules` JSON item that gave one: the adapter's `parent` in /v1/models when it
   * is a served name, else ignored (serving_models.py @ v0.10.0 load_lora_adapter, `is_base_model`).
   */
  loraModuleBaseModels: Record<string, string>;
  /**
   * vLLM's `--enable-lora`: without it vLLM has no LoRAConfig, refuses `--lora-modules` at start-up ("LoRA is not
   * enabled.") and registers no `vllm:lora_requests_info` (vllm/engine/arg_utils.py @ 6eca337ce, create_lora_config;
   * vllm/v1/worker/lora_model_runner_mixin.py; vllm/v1/metrics/loggers.py lines 444-463). @default false
   */
  enableLora: boolean;
  /**
   * vLLM's `--max-loras` (LoRAConfig.max_loras): the adapters one scheduler step may serve. A waiting request for
   * another adapter is skipped while that many run (scheduler.py @ 6eca337ce lines 363-370); also the `max_lora`
   * label of `vllm:lora_requests_info`. Read only with `--enable-lora`. @default 1
   */
  maxLoras: number;
  /** vLLM's `--enable-auto-tool-choice` (with a `--tool-call-parser`): without it, `tool_choice: "auto"` is a 400. */
  enableAutoToolChoice: boolean;
  /**
   * `VLLM_SERVER_DEV_MODE`: the dev-mode routes (here `POST /reset_prefix_cache`) exist only when it is set. Not given,
   * {@link resolveOptions} reads the environment variable as vLLM does, `bool(int(os.getenv("VLLM_SERVER_DEV_MODE",
   * "0")))` (vllm/envs.py @ v0.10.0), so a non-integer value is refused, as it makes vLLM's API server fail to import.
   */
  serverDevMode: boolean;
  /**
   * `VLLM_ALLOW_RUNTIME_LORA_UPDATING`: POST /v1/load_lora_adapter and /v1/unload_lora_adapter exist only when it is
   * set (api_server.py @ v0.10.0). Not given, {@link resolveOptions} reads the environment variable as vLLM does,
   * `os.environ.get(..., "0").strip().lower() in ("1", "true")` (vllm/envs.py @ v0.10.0): any other value is off.
   */
  allowRuntimeLoraUpdating: boolean;
  /**
   * Seconds an idle HTTP keep-alive connection stays open: uvicorn's `timeout_keep_alive`, which vLLM sets from
   * `VLLM_HTTP_TIMEOUT_KEEP_ALIVE` (vllm/envs.py @ v0.10.0 L602-603, `int(os.environ.get(..., "5"))`;
   * vllm/entrypoints/openai/api_server.py @ v0.10.0 L1832, `serve_http(..., timeout_keep_alive=...)`). Not given,
   * {@link resolveOptions} reads that variable as vLLM does. Wall-clock seconds (not scaled by --time-scale).
   * @default 5
   */
  timeoutKeepAlive: number;
  /**
   * vLLM's `--ssl-keyfile` and `--ssl-certfile` (FrontendArgs, passed by run_server to uvicorn, api_server.py @
   * v0.10.0): with a certificate file the API is served over HTTPS. As uvicorn's Config.load has it, a key file needs a
   * certificate file (`assert self.ssl_certfile`), and without a key file the private key is read from the certificate
   * file (`load_cert_chain(certfile, keyfile)`). Paths, read when the server starts. @default null
   */
  sslKeyfile: string | null;
  sslCertfile: string | null;
  /** vLLM's `--ssl-ca-certs`: the CAs client certificates are verified against (`load_verify_locations`). @default null */
  sslCaCerts: string | null;
  /**
   * vLLM's `--ssl-cert-reqs`, Python's `ssl.VerifyMode`: 0 `CERT_NONE` (no client certificate asked for), 1
   * `CERT_OPTIONAL` (asked for, not required), 2 `CERT_REQUIRED` (a handshake without a valid one fails). @default 0
   */
  sslCertReqs: number;
  /**
   * vLLM's `--api-key`: with a key, a request whose path starts with `/v1` (any method but OPTIONS) must carry
   * `Authorization: Bearer <key>`, else it is answered 401 `{"error":"Unauthorized"}` before routing, CORS included
   * (vllm/entrypoints/openai/api_server.py @ v0.10.0 `AuthenticationMiddleware`, added after CORSMiddleware so it runs
   * first). The command line takes `$VLLM_API_KEY` when the flag is absent or empty (`args.api_key or
   * envs.VLLM_API_KEY`, `parseCli`); options given in code are taken as they are. An empty key is none. vLLM 0.10.0
   * takes one key (later releases several). @default null
   */
  apiKey: string | null;
  /**
   * vLLM's step as one batch: a decoding request's next token waits for the prefill chunks of its step (and of a step
   * still computing), and the requests a step schedules get their first tokens together at its end
   * (vllm/v1/engine/core.py @ v0.10.0 L255-274, EngineConfig.decodePrefillInterference). Off: the pre-audit-23 model
   * (decode every itl regardless, a step's prefills one after another on the lane). @default true
   */
  decodePrefillInterference: boolean;
}

/** What callers may pass: any subset, and `kvEventsConfig` as the flag's JSON or a partial object (defaults filled). */
export type SimulatorInput = Omit<Partial<SimulatorOptions>, 'kvEventsConfig'> & { kvEventsConfig?: Partial<KvEventsConfig> | string | null };

export const VLLM_BLOCK_SIZES = [1, 8, 16, 32, 64, 128] as const;

/**
 * Defaults resemble Qwen3-0.6B..8B on a small GPU (think L4/A10): 4000 prompt
 * tokens/s of prefill, 50 tokens/s decode per sequence. An uncached
 * 4000-token prompt then takes 20 + 1000 = 1020 ms to first token and the
 * same prompt fully cached 20 + 16 × 0.25 = 24 ms.
 */
export function defaultOptions(): SimulatorOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    model: 'Qwen/Qwen3-0.6B',
    servedModelNames: [],
    blockSize: 16,
    kvCacheBlocks: 8192,
    maxNumSeqs: 256,
    maxModelLen: 40960,
    // vLLM 0.10's default for the OpenAI server on a GPU under 70 GiB (vllm/engine/arg_utils.py @ v0.10.0,
    // _set_default_args_v1); V1 always chunks prefills for generation models.
    maxNumBatchedTokens: 2048,
    ttftOverheadMs: 20,
    prefillMsPerToken: 0.25,
    itlMs: 20,
    prefillConcurrency: 1,
    // vLLM's default (SchedulerConfig.policy @ v0.10.0).
    schedulingPolicy: 'fcfs',
    // SchedulerConfig.long_prefill_token_threshold @ v0.10.0: 0, no cap (set from max_model_len only with
    // --max-num-partial-prefills above 1, which the simulator does not take).
    longPrefillTokenThreshold: 0,
    timeScale: 1,
    podName: process.env.POD_NAME || hostname(),
    defaultMaxTokens: 16,
    enablePromptTokensDetails: false,
    enableRequestIdHeaders: false,
    simExtension: false,
    // None → True for a generation model on V1 (vllm/engine/arg_utils.py @ v0.10.0, _set_default_args_v1).
    enablePrefixCaching: true,
    gpuMemoryUtilization: 0.9,
    // CacheConfig.swap_space (vllm/config.py @ v0.10.0).
    swapSpace: 4,
    disableLogStats: false,
    prefixCachingHashAlgo: 'builtin',
    pythonHashSeed: process.env.PYTHONHASHSEED,
    kvEventsConfig: null,
    kvEventsEncoding: 'positional',
    loraModules: [],
    enableAutoToolChoice: false,
    loraModulePaths: {},
    loraModuleBaseModels: {},
    enableLora: false,
    // LoRAConfig.max_loras (vllm/config.py @ 6eca337ce).
    maxLoras: 1,
    // resolveOptions reads $VLLM_SERVER_DEV_MODE when it is not given.
    serverDevMode: false,
    // resolveOptions reads $VLLM_ALLOW_RUNTIME_LORA_UPDATING when it is not given.
    allowRuntimeLoraUpdating: false,
    // VLLM_HTTP_TIMEOUT_KEEP_ALIVE's default (vllm/envs.py @ v0.10.0); resolveOptions reads the variable when not given.
    timeoutKeepAlive: 5,
    // parseCli reads $VLLM_API_KEY when the flag is absent.
    apiKey: null,
    sslKeyfile: null,
    sslCertfile: null,
    sslCaCerts: null,
    // FrontendArgs `ssl_cert_reqs: int = int(ssl.CERT_NONE)` (cli_args.py @ v0.10.0).
    sslCertReqs: 0,
    decodePrefillInterference: true,
  };
}

export { OptionError };

/** The most KV-cache blocks a pod may have (`--kv-cache-blocks`); tools that start simulators check against it. */
export const MAX_KV_CACHE_BLOCKS = 1 << 26;

/** Fills defaults and checks every value; errors name the CLI flag. */
export function resolveOptions(partial: SimulatorInput = {}): SimulatorOptions {
  const o = { ...defaultOptions(), ...stripUndefined(partial) } as SimulatorOptions;
  // An explicit undefined seed means "unset", not "use the default".
  if ('pythonHashSeed' in partial) o.pythonHashSeed = partial.pythonHashSeed;
  if (partial.serverDevMode === undefined) o.serverDevMode = serverDevModeFromEnv(process.env.VLLM_SERVER_DEV_MODE);
  if (partial.allowRuntimeLoraUpdating === undefined) o.allowRuntimeLoraUpdating = runtimeLoraUpdatingFromEnv(process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING);
  if (partial.timeoutKeepAlive === undefined) o.timeoutKeepAlive = timeoutKeepAliveFromEnv(process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE);
  if (o.apiKey !== null && typeof o.apiKey !== 'string') throw new OptionError('--api-key', 'expected a string');
  if (o.apiKey === '') o.apiKey = null;
  if (o.servedModelNames.length === 0) o.servedModelNames = [o.model];

  const int = (flag: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    if (!Number.isInteger(v) || v < min || v > max) throw new OptionError(flag, `expected an integer in [${min}, ${max}], got ${v}`);
  };
  const num = (flag: string, v: number, min: number, exclusive = false): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (exclusive && v === min)) {
      throw new OptionError(flag, `expected a number ${exclusive ? '>' : '>='} ${min}, got ${v}`);
    }
  };
  const str = (flag: string, v: unknown): void => {
    if (typeof v !== 'string' || v.length === 0) throw new OptionError(flag, 'expected a non-empty string');
  };

  str('--host', o.host);
  int('--port', o.port, 0, 65535);
  str('--model', o.model);
  if (!Array.isArray(o.servedModelNames)) throw new OptionError('--served-model-name', 'expected a list of names');
  for (const n of o.servedModelNames) str('--served-model-name', n);
  int('--block-size', o.blockSize, 1, 128);
  if (!(VLLM_BLOCK_SIZES as readonly number[]).includes(o.blockSize)) {
    throw new OptionError('--block-size', `must be one of ${VLLM_BLOCK_SIZES.join(', ')} (vLLM's choices), got ${o.blockSize}`);
  }
  // At least 2: block 0 is vLLM's null block.
  int('--kv-cache-blocks', o.kvCacheBlocks, 2, MAX_KV_CACHE_BLOCKS);
  int('--max-num-seqs', o.maxNumSeqs, 1);
  int('--max-model-len', o.maxModelLen, 2);
  checkDerivedMaxModelLen(o.model, o.maxModelLen);
  num('--ttft-overhead-ms', o.ttftOverheadMs, 0);
  num('--prefill-ms-per-token', o.prefillMsPerToken, 0);
  num('--itl-ms', o.itlMs, 0);
  int('--prefill-concurrency', o.prefillConcurrency, 0, 1024);
  if (!SCHEDULING_POLICIES.includes(o.schedulingPolicy)) {
    throw new OptionError('--scheduling-policy', `must be one of ${SCHEDULING_POLICIES.join(', ')} (vLLM's choices), got ${JSON.stringify(o.schedulingPolicy)}`);
  }
  num('--time-scale', o.timeScale, 0, true);
  str('--pod-name', o.podName);
  int('--default-max-tokens', o.defaultMaxTokens, 1);
  int('--max-num-batched-tokens', o.maxNumBatchedTokens, 1);
  // SchedulerConfig._verify_args (vllm/config.py @ 6eca337ce lines 2445-2466), with the values V1 resolved: the first
  // rule (max_num_batched_tokens < max_model_len without chunked prefill) never applies, as V1 always chunks a
  // generation model's prefill (_set_default_args_v1); the second is a ValueError that stops vLLM; the third a warning.
  if (o.maxNumBatchedTokens < o.maxNumSeqs) {
    throw new OptionError('--max-num-batched-tokens', `max_num_batched_tokens (${o.maxNumBatchedTokens}) must be greater than or equal to max_num_seqs (${o.maxNumSeqs}).`);
  }
  if (o.maxNumBatchedTokens > o.maxNumSeqs * o.maxModelLen) {
    logLine('warn', `max_num_batched_tokens (${o.maxNumBatchedTokens}) exceeds max_num_seqs * max_model_len (${o.maxNumSeqs * o.maxModelLen}). This may lead to unexpected behavior.`);
  }
  if (typeof o.enableAutoToolChoice !== 'boolean') throw new OptionError('--enable-auto-tool-choice', 'expected a boolean');
  if (typeof o.enablePromptTokensDetails !== 'boolean') throw new OptionError('--enable-prompt-tokens-details', 'expected a boolean');
  if (typeof o.enableRequestIdHeaders !== 'boolean') throw new OptionError('--enable-request-id-headers', 'expected a boolean');
  if (typeof o.simExtension !== 'boolean') throw new OptionError('--sim-extension', 'expected a boolean');
  if (typeof o.enablePrefixCaching !== 'boolean') throw new OptionError('--enable-prefix-caching', 'expected a boolean');
  if (typeof o.serverDevMode !== 'boolean') throw new OptionError('VLLM_SERVER_DEV_MODE', 'expected a boolean');
  if (typeof o.allowRuntimeLoraUpdating !== 'boolean') throw new OptionError('VLLM_ALLOW_RUNTIME_LORA_UPDATING', 'expected a boolean');
  // uvicorn's timeout_keep_alive is an int of seconds. 0 is refused: uvicorn would close each connection after its
  // response, where Node's keepAliveTimeout 0 would keep idle connections open for ever. The upper bound is what Node's
  // timers take (2^31 - 1 ms).
  if (!Number.isInteger(o.timeoutKeepAlive) || o.timeoutKeepAlive < 1 || o.timeoutKeepAlive > 2_147_483) {
    throw new OptionError('--timeout-keep-alive', `expected a whole number of seconds in [1, 2147483] (uvicorn's timeout_keep_alive; vLLM's default 5), got ${o.timeoutKeepAlive}`);
  }
  for (const [flag, v] of [['--ssl-keyfile', o.sslKeyfile], ['--ssl-certfile', o.sslCertfile], ['--ssl-ca-certs', o.sslCaCerts]] as const) {
    if (v !== null && (typeof v !== 'string' || v.length === 0)) throw new OptionError(flag, 'expected a file path');
  }
  // uvicorn's Config.load: TLS is on when either file is given, and then `assert self.ssl_certfile`.
  if (o.sslKeyfile !== null && o.sslCertfile === null) {
    throw new OptionError('--ssl-keyfile', 'needs --ssl-certfile: uvicorn serves TLS with a certificate file, and asserts one whenever --ssl-keyfile is given');
  }
  // `ssl.VerifyMode(cert_reqs)` raises ValueError for anything else when uvicorn builds its SSL context, which it does
  // only with TLS on.
  if (o.sslCertfile !== null && ![0, 1, 2].includes(o.sslCertReqs)) {
    throw new OptionError('--ssl-cert-reqs', `expected 0 (CERT_NONE), 1 (CERT_OPTIONAL) or 2 (CERT_REQUIRED), Python's ssl.VerifyMode, got ${o.sslCertReqs}`);
  }
  if (typeof o.decodePrefillInterference !== 'boolean') throw new OptionError('--decode-prefill-interference', 'expected a boolean');
  if (typeof o.disableLogStats !== 'boolean') throw new OptionError('--disable-log-stats', 'expected a boolean');
  // Python's float() also takes inf and nan; vLLM refuses inf as too large a swap space on any host, and nan or -inf
  // give a meaningless swap_space_bytes: refused here.
  if (typeof o.swapSpace !== 'number' || !Number.isFinite(o.swapSpace)) throw new OptionError('--swap-space', `expected a finite number of GiB, got ${o.swapSpace}`);
  // CacheConfig._verify_args (vllm/config.py @ v0.10.0) refuses > 1.0.
  if (!(typeof o.gpuMemoryUtilization === 'number' && o.gpuMemoryUtilization > 0 && o.gpuMemoryUtilization <= 1)) {
    throw new OptionError('--gpu-memory-utilization', `expected a number in (0, 1], got ${o.gpuMemoryUtilization}`);
  }
  if (!HASH_ALGOS.includes(o.prefixCachingHashAlgo)) {
    throw new OptionError('--prefix-caching-hash-algo', `must be one of ${HASH_ALGOS.join(', ')}, got ${JSON.stringify(o.prefixCachingHashAlgo)}`);
  }
  if (o.pythonHashSeed !== undefined && typeof o.pythonHashSeed !== 'string') throw new OptionError('PYTHONHASHSEED', 'expected a string');
  if (o.pythonHashSeed !== undefined && !pythonStartsWithHashSeed(o.pythonHashSeed)) {
    throw new OptionError('PYTHONHASHSEED', `must be "random" or an integer in range [0; 4294967295], got ${JSON.stringify(o.pythonHashSeed)} (CPython refuses any other value at start-up, so vLLM never starts)`);
  }
  if (o.kvEventsConfig !== null) {
    // The map encoding simulates v0.26, whose publisher defaults to "zmq" once events are enabled.
    o.kvEventsConfig = parseKvEventsConfig(o.kvEventsConfig as Partial<KvEventsConfig> | string, o.kvEventsEncoding === 'map' ? 'v0.26' : 'v0.10', (field) =>
      // vLLM 0.10 ignores it silently (pydantic's extra="ignore"); a warning at least shows the typo.
      logLine('warn', 'unknown --kv-events-config field ignored, as vLLM 0.10 does', { field }),
    );
  }
  if (!KV_EVENTS_ENCODINGS.includes(o.kvEventsEncoding)) {
    throw new OptionError('--kv-events-encoding', `must be one of ${KV_EVENTS_ENCODINGS.join(', ')}, got ${JSON.stringify(o.kvEventsEncoding)}`);
  }
  // Map-encoded events (vLLM #42892, releases after v0.23.0) come from releases that have neither `builtin` nor `sha256_cbor_64bit`
  // (both removed in 0.10.2 by #23673): that pair is no vLLM a subscriber could meet.
  if (o.kvEventsEncoding === 'map' && generationOf(o.prefixCachingHashAlgo) === '0.10.0') {
    throw new OptionError(
      '--kv-events-encoding',
      `map mirrors vLLM v0.26, which has no --prefix-caching-hash-algo ${o.prefixCachingHashAlgo} (removed in 0.10.2): use sha256_cbor or sha256, or --kv-events-encoding positional`,
    );
  }
  if (!Array.isArray(o.loraModules)) throw new OptionError('--lora-modules', 'expected a list of names');
  for (const n of o.loraModules) {
    str('--lora-modules', n);
    if (o.servedModelNames.includes(n)) throw new OptionError('--lora-modules', `${JSON.stringify(n)} is also a served model name`);
  }
  if (new Set(o.loraModules).size !== o.loraModules.length) throw new OptionError('--lora-modules', 'a name is given twice');
  if (typeof o.enableLora !== 'boolean') throw new OptionError('--enable-lora', 'expected a boolean');
  // LoRAConfig exists, and checks max_loras, only with --enable-lora.
  if (o.enableLora) int('--max-loras', o.maxLoras, 1);
  // vLLM loads --lora-modules at start-up through the engine, whose worker has no LoRA manager without --enable-lora:
  // `RuntimeError("LoRA is not enabled.")`, which init_static_loras raises as a ValueError that stops the server
  // (vllm/entrypoints/openai/serving_models.py @ 6eca337ce lines 74-85).
  if (o.loraModules.length > 0 && !o.enableLora) {
    throw new OptionError('--lora-modules', 'LoRA is not enabled. (vLLM refuses to load adapters without --enable-lora)');
  }
  // vLLM refuses to start when one max-length sequence cannot fit in the KV cache (memory for num_gpu_blocks, the
  // null block included; vllm/v1/core/kv_cache_utils.py @ v0.10.0, check_enough_kv_cache_memory). A sequence that
  // would need every block, the null block too, is refused per request (the engine's maxSequenceTokens).
  if (o.kvCacheBlocks * o.blockSize < o.maxModelLen) {
    throw new OptionError(
      '--kv-cache-blocks',
      `${o.kvCacheBlocks} blocks × ${o.blockSize} tokens = ${o.kvCacheBlocks * o.blockSize} tokens cannot hold one sequence of --max-model-len ${o.maxModelLen}; raise --kv-cache-blocks or lower --max-model-len`,
    );
  }
  return o;
}

/**
 * Python's `bool(int(value))` for `VLLM_SERVER_DEV_MODE` (vllm/envs.py @ v0.10.0; unset = "0"). `int()` takes
 * surrounding whitespace, a sign and `_` between digits; anything else (`true`, `""`) raises ValueError when
 * vllm/entrypoints/openai/api_server.py reads it at import, so vLLM does not start: refused here.
 */
export function serverDevModeFromEnv(value: string | undefined): boolean {
  if (value === undefined) return false;
  const m = /^\s*[+-]?(\d+(?:_\d+)*)\s*$/.exec(value);
  if (!m) throw new OptionError('VLLM_SERVER_DEV_MODE', `expected an integer (vLLM reads bool(int(value))), got ${JSON.stringify(value)}`);
  return /[1-9]/.test(m[1]);
}

/** `VLLM_ALLOW_RUNTIME_LORA_UPDATING` as vllm/envs.py @ v0.10.0 reads it (envFlag). */
export function runtimeLoraUpdatingFromEnv(value: string | undefined): boolean {
  return envFlag(value);
}

/**
 * A boolean variable as vllm/envs.py @ v0.10.0 reads VLLM_ALLOW_RUNTIME_LORA_UPDATING and VLLM_ALLOW_LONG_MAX_MODEL_LEN,
 * `os.environ.get(name, "0").strip().lower() in ("1", "true")`: any other value is off.
 */
function envFlag(value: string | undefined): boolean {
  // Python's str.strip() with no argument strips whitespace, as String.prototype.trim does for these values.
  return ['1', 'true'].includes((value ?? '0').trim().toLowerCase());
}

/**
 * The max_model_len vLLM derives for the models the simulator stands in for, from their config.json: Qwen3-0.6B, -1.7B,
 * -4B and -8B have max_position_embeddings 40960, no rope_scaling and no model_max_length (vllm/config.py @ v0.10.0
 * `_get_and_verify_max_len`). No other model's config is known here, so no other model is checked.
 */
const DERIVED_MAX_MODEL_LEN = new Map<string, number>([
  ['Qwen/Qwen3-0.6B', 40960],
  ['Qwen/Qwen3-1.7B', 40960],
  ['Qwen/Qwen3-4B', 40960],
  ['Qwen/Qwen3-8B', 40960],
]);

/**
 * `_get_and_verify_max_len` (vllm/config.py @ v0.10.0), which ModelConfig runs before anything starts: a max_model_len
 * above the derived one is a ValueError that stops vLLM, unless $VLLM_ALLOW_LONG_MAX_MODEL_LEN is set, when it is only
 * logged as a warning.
 */
function checkDerivedMaxModelLen(model: string, maxModelLen: number): void {
  const derived = DERIVED_MAX_MODEL_LEN.get(model);
  if (derived === undefined || maxModelLen <= derived) return;
  const msg =
    `User-specified max_model_len (${maxModelLen}) is greater than the derived max_model_len (max_position_embeddings=${derived} or model_max_length=None in model's config.json). ` +
    'This may lead to incorrect model outputs or CUDA errors.';
  if (!envFlag(process.env.VLLM_ALLOW_LONG_MAX_MODEL_LEN)) {
    throw new OptionError('--max-model-len', `${msg} To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`);
  }
  logLine('warn', `${msg} Make sure the value is correct and within the model context size.`);
}

/**
 * `VLLM_HTTP_TIMEOUT_KEEP_ALIVE` as vLLM reads it, `int(os.environ.get("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "5"))`
 * (vllm/envs.py @ v0.10.0 L602-603): unset = 5; Python's `int()` syntax; anything else is refused, as vLLM's
 * `int()` raises when the API server reads it.
 */
export function timeoutKeepAliveFromEnv(value: string | undefined): number {
  if (value === undefined) return 5;
  const m = /^\s*([+-]?)(\d+(?:_\d+)*)\s*$/.exec(value);
  if (!m) throw new OptionError('VLLM_HTTP_TIMEOUT_KEEP_ALIVE', `expected an integer number of seconds (vLLM reads int(value)), got ${JSON.stringify(value)}`);
  return Number(`${m[1]}${m[2].replace(/_/g, '')}`);
}

/**
 * Whether CPython starts with this `PYTHONHASHSEED`: config_init_hash_seed (Python/initconfig.c) takes "random", and
 * otherwise `strtoul(seed, &endptr, 10)` with nothing left over and a value of at most 4294967295, else it stops with
 * "Fatal Python error: config_init_hash_seed: PYTHONHASHSEED must be "random" or an integer in range [0; 4294967295]"
 * before vLLM runs. strtoul skips leading whitespace and takes a sign, so " 42", "+42" and "-0" start, while "abc",
 * "42 ", "0x2a" and "-1" (which wraps past the range) do not. An empty value is read as unset by CPython (and hashed
 * as "" by vLLM's init_none_hash, as here), so it starts. Checked against CPython 3.11.7.
 */
function pythonStartsWithHashSeed(seed: string): boolean {
  if (seed === '' || seed === 'random') return true;
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)$/.exec(seed);
  if (!m) return false;
  const value = BigInt(m[2]!);
  // strtoul negates a '-' value in unsigned long arithmetic: only -0 stays in range.
  return m[1] === '-' ? value === 0n : value <= 4_294_967_295n;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
