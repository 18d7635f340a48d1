import { parseArgs } from 'node:util';
import { isDict } from '@kvroute/protocol/openai';
import { OptionError, resolveOptions, type SimulatorInput, type SimulatorOptions } from './options';

/**
 * `json`: a JSON object, also given as dotted keys (`--flag.key value`), or `None`/empty for none.
 * `py-int`, `py-float`: what Python's `int()` / `float()` take, argparse's `type=int` / `type=float` (surrounding
 * whitespace, a sign, `_` between digits; for floats also exponents, `inf` and `nan`).
 * `optional-py-int`, `optional-string`: vLLM's `optional_type(int)` / `optional_type(str)` (vllm/engine/arg_utils.py @
 * 6eca337ce lines 77-85): "" and "None" are None, anything else goes through the type.
 * `choice`: argparse `choices` (an exact match of one of `choices`).
 * `optional-human-int`: vLLM's `optional_type(human_readable_int)`, the type of its two Optional[int] fields
 * max_model_len and max_num_batched_tokens (see {@link humanReadableInt}); "" and "None" leave the default.
 */
type Kind =
  | 'int'
  | 'float'
  | 'string'
  | 'list'
  | 'bool'
  | 'no-bool'
  | 'lora-list'
  | 'json'
  | 'py-int'
  | 'py-float'
  | 'optional-py-int'
  | 'optional-string'
  | 'optional-human-int'
  | 'choice';

interface FlagSpec {
  /** The option the flag sets; absent for a vLLM flag the simulator accepts, checks and ignores (see `inert`). */
  key?: keyof SimulatorOptions;
  /**
   * For an accepted-and-ignored vLLM flag: the vLLM field it sets (both flags of a BooleanOptionalAction pair name the
   * same one, so giving both is refused like any conflicting pair).
   */
  inert?: string;
  kind: Kind;
  help: string;
  choices?: readonly string[];
  /** The smallest value a `py-int` flag takes. */
  min?: number;
}

/**
 * The names vLLM 0.10.0's `--tool-call-parser` takes: its argparse `choices`, `ToolParserManager.tool_parsers.keys()`
 * in the order the tool_parsers package registers them (cli_args.py @ v0.10.0, FrontendArgs.add_cli_args), as 0.10.0
 * itself lists them refusing another name (zai-org/GLM-4.5 issue #58: "vllm serve: error: argument --tool-call-parser:
 * invalid choice: 'glm45' (choose from 'deepseek_v3', 'glm4_moe', …)"). vLLM #21902 (merged after 0.10.0) made the
 * list a metavar, so later releases also take names a --tool-parser-plugin registers.
 */
const TOOL_CALL_PARSERS = [
  'deepseek_v3',
  'glm4_moe',
  'granite-20b-fc',
  'granite',
  'hermes',
  'hunyuan_a13b',
  'internlm',
  'jamba',
  'kimi_k2',
  'llama4_pythonic',
  'llama4_json',
  'llama3_json',
  'minimax',
  'mistral',
  'phi4_mini_json',
  'pythonic',
  'qwen3_coder',
  'xlam',
] as const;

/** By name, without the leading dashes. */
const FLAGS: Record<string, FlagSpec> = {
  host: { key: 'host', kind: 'string', help: 'address to bind (default 0.0.0.0)' },
  port: { key: 'port', kind: 'int', help: 'port to bind; 0 picks a free one (default 8000)' },
  model: { key: 'model', kind: 'string', help: 'model id to impersonate (default Qwen/Qwen3-0.6B); the tokenizer is always Qwen3' },
  'served-model-name': { key: 'servedModelNames', kind: 'list', help: 'names accepted in requests, space-separated as vLLM\'s nargs="+" (or comma-separated; default: --model); the first labels metrics' },
  'block-size': { key: 'blockSize', kind: 'int', help: 'tokens per KV block: 1, 8, 16, 32, 64 or 128 (default 16)' },
  'kv-cache-blocks': { key: 'kvCacheBlocks', kind: 'int', help: 'KV cache capacity in blocks (default 8192)' },
  'max-num-seqs': { key: 'maxNumSeqs', kind: 'int', help: 'max concurrently running requests; the rest wait (default 256)' },
  'max-model-len': { key: 'maxModelLen', kind: 'optional-human-int', help: 'max prompt + completion tokens per request, e.g. 32768, 32k (32000) or 32K (32768) (default 40960)' },
  'ttft-overhead-ms': { key: 'ttftOverheadMs', kind: 'float', help: 'fixed time before prefill, per request (default 20)' },
  'prefill-ms-per-token': { key: 'prefillMsPerToken', kind: 'float', help: 'prefill time per uncached prompt token (default 0.25)' },
  'itl-ms': { key: 'itlMs', kind: 'float', help: 'time per output token after the first (default 20)' },
  'prefill-concurrency': { key: 'prefillConcurrency', kind: 'int', help: 'prefills computed at once, FCFS; 0 = unlimited, no step token budget (default 1)' },
  'scheduling-policy': { key: 'schedulingPolicy', kind: 'string', help: 'fcfs (default) | priority: the waiting queue by each request\'s priority (lower first), as vLLM\'s' },
  // Not a vLLM flag: vLLM takes this from $VLLM_HTTP_TIMEOUT_KEEP_ALIVE (vllm/envs.py @ v0.10.0), read here too when the
  // flag is absent; uvicorn's `--timeout-keep-alive` (an int of seconds).
  'timeout-keep-alive': { key: 'timeoutKeepAlive', kind: 'py-int', min: 1, help: 'seconds an idle HTTP keep-alive connection stays open, as uvicorn\'s timeout_keep_alive (default $VLLM_HTTP_TIMEOUT_KEEP_ALIVE or 5, vLLM\'s)' },
  'decode-prefill-interference': { key: 'decodePrefillInterference', kind: 'bool', help: 'the default, as vLLM: a step\'s decode tokens wait for its prefill chunks, and a step\'s first tokens come together at its end' },
  'no-decode-prefill-interference': { key: 'decodePrefillInterference', kind: 'no-bool', help: 'the pre-audit-23 model: decode every --itl-ms whatever prefills, a step\'s prefills one after another' },
  'time-scale': { key: 'timeScale', kind: 'float', help: 'run N× faster than real time; reported times stay in model seconds (default 1)' },
  'api-key': { key: 'apiKey', kind: 'optional-string', help: 'require "Authorization: Bearer <key>" on /v1 paths (401 otherwise), as vLLM (default $VLLM_API_KEY or none)' },
  // FrontendArgs (cli_args.py @ v0.10.0) `ssl_keyfile`, `ssl_certfile`, `ssl_ca_certs: Optional[str] = None`
  // (optional_type(str)) and `ssl_cert_reqs: int = int(ssl.CERT_NONE)` (type=int), which run_server hands to uvicorn.
  'ssl-keyfile': { key: 'sslKeyfile', kind: 'optional-string', help: 'the private key\'s PEM file; needs --ssl-certfile' },
  'ssl-certfile': { key: 'sslCertfile', kind: 'optional-string', help: 'serve HTTPS with this PEM certificate (chain); the key too, without --ssl-keyfile' },
  'ssl-ca-certs': { key: 'sslCaCerts', kind: 'optional-string', help: 'PEM CAs that client certificates are verified against' },
  'ssl-cert-reqs': { key: 'sslCertReqs', kind: 'py-int', help: 'client certificates: 0 not asked for (default), 1 optional, 2 required (Python\'s ssl.VerifyMode)' },
  'pod-name': { key: 'podName', kind: 'string', help: 'name reported in x-kvroute-pod and logs (default $POD_NAME or hostname)' },
  'default-max-tokens': { key: 'defaultMaxTokens', kind: 'int', help: 'max_tokens when a request omits it (default 16)' },
  // argparse type=int and no range check in vLLM 0.10.0 (SchedulerConfig._verify_args checks it against max_model_len
  // only with --max-num-partial-prefills above 1); the scheduler reads 0 or less as no cap.
  'long-prefill-token-threshold': { key: 'longPrefillTokenThreshold', kind: 'py-int', help: 'the most tokens one request computes in a scheduler step, as vLLM (0 or less: no cap, the default); a long prompt then shares its steps with the requests scheduled beside it' },
  'max-num-batched-tokens': { key: 'maxNumBatchedTokens', kind: 'optional-human-int', help: 'a scheduler step\'s token budget: a prefill chunk at most, and what the requests a step schedules share (with prefill lanes; 2k, 2K as --max-model-len; default 2048)' },
  'enable-prompt-tokens-details': { key: 'enablePromptTokensDetails', kind: 'bool', help: 'report usage.prompt_tokens_details.cached_tokens, as vLLM (default off)' },
  'no-enable-prompt-tokens-details': { key: 'enablePromptTokensDetails', kind: 'no-bool', help: 'the default' },
  // FrontendArgs `enable_request_id_headers: bool = False` (vllm/entrypoints/openai/cli_args.py @ v0.10.0), added
  // through get_kwargs: a BooleanOptionalAction pair.
  'enable-request-id-headers': { key: 'enableRequestIdHeaders', kind: 'bool', help: 'send X-Request-Id on every response: the request\'s, else a fresh uuid4 hex, as vLLM\'s XRequestIdMiddleware (default off)' },
  'no-enable-request-id-headers': { key: 'enableRequestIdHeaders', kind: 'no-bool', help: 'the default' },
  'sim-extension': { key: 'simExtension', kind: 'bool', help: 'add kvroute_sim {pod, cached_tokens, queue_time_s, ttft_s, e2e_s} to each body and last chunk (default off: exactly vLLM\'s members)' },
  'no-sim-extension': { key: 'simExtension', kind: 'no-bool', help: 'the default' },
  // vLLM's BooleanOptionalAction pair (vllm/engine/arg_utils.py @ v0.10.0, `--enable-prefix-caching` from CacheConfig's
  // Optional[bool] field); on by default for V1 generation models.
  'enable-prefix-caching': { key: 'enablePrefixCaching', kind: 'bool', help: 'the default (vLLM V1): reuse cached prefix blocks' },
  'no-enable-prefix-caching': { key: 'enablePrefixCaching', kind: 'no-bool', help: 'no prefix cache: no hits, no BlockStored/BlockRemoved events' },
  'gpu-memory-utilization': { key: 'gpuMemoryUtilization', kind: 'float', help: 'only reported in vllm:cache_config_info (default 0.9)' },
  'prefix-caching-hash-algo': { key: 'prefixCachingHashAlgo', kind: 'string', help: 'builtin | sha256 | sha256_cbor_64bit | sha256_cbor (default builtin); seeded by $PYTHONHASHSEED' },
  'kv-events-config': { key: 'kvEventsConfig', kind: 'json', help: 'vLLM\'s KV events JSON, e.g. \'{"enable_kv_cache_events":true,"publisher":"zmq"}\', or dotted: --kv-events-config.publisher zmq' },
  'kv-events-encoding': { key: 'kvEventsEncoding', kind: 'string', help: 'positional (vLLM 0.10, default) | map (vLLM v0.26: #42892 tagged maps, LoRA hashed by name; needs sha256_cbor or sha256)' },
  'lora-modules': { key: 'loraModules', kind: 'lora-list', help: 'LoRA adapters accepted as model, as vLLM: name=path items (or JSON) up to the next flag; needs --enable-lora' },
  // vllm/engine/arg_utils.py @ 6eca337ce: `--enable-lora` (a bool field, so a BooleanOptionalAction pair),
  // `--max-loras` (LoRAConfig.max_loras = 1).
  'enable-lora': { key: 'enableLora', kind: 'bool', help: 'LoRA adapters: --lora-modules, --max-loras and vllm:lora_requests_info (default off)' },
  'no-enable-lora': { key: 'enableLora', kind: 'no-bool', help: 'the default' },
  'max-loras': { key: 'maxLoras', kind: 'int', help: 'LoRA adapters one scheduler step serves; a request for another waits (default 1)' },
  'max-lora-rank': { inert: 'max_lora_rank', kind: 'py-int', min: 0, help: 'checked as vLLM checks it with --enable-lora (8, 16, 32, 64, 128, 256, 320 or 512), then ignored: adapter weights are not simulated' },
  'max-cpu-loras': { inert: 'max_cpu_loras', kind: 'py-int', min: 0, help: 'checked as vLLM checks it with --enable-lora (at least --max-loras), then ignored: adapters are never evicted to CPU here' },
  // FrontendArgs `enable_auto_tool_choice: bool = False` (vllm/entrypoints/openai/cli_args.py @ v0.10.0): a
  // BooleanOptionalAction pair. Only with --tool-call-parser (parseCli, validate_parsed_serve_args).
  'enable-auto-tool-choice': { key: 'enableAutoToolChoice', kind: 'bool', help: 'accept tool_choice "auto"; needs --tool-call-parser, as vLLM (default off: 400)' },
  'no-enable-auto-tool-choice': { key: 'enableAutoToolChoice', kind: 'no-bool', help: 'the default' },
  // FrontendArgs `tool_call_parser: Optional[str] = None`, whose argparse `choices` FrontendArgs.add_cli_args sets to
  // the registered parsers in 0.10.0 (a metavar only from vLLM #21902, after 0.10.0; TOOL_CALL_PARSERS).
  'tool-call-parser': {
    inert: 'tool_call_parser',
    kind: 'choice',
    choices: TOOL_CALL_PARSERS,
    help: 'one of vLLM 0.10.0\'s tool parsers (hermes for Qwen3); required by --enable-auto-tool-choice, else ignored: tool calls are not parsed from generated text here',
  },
  // vLLM 0.10.0's own flags that change something the simulator shows (vllm/engine/arg_utils.py @ 6eca337ce).
  // `swap_space: float = CacheConfig.swap_space` (line 319, added at 676; argparse type=float from _compute_kwargs):
  // V1 preempts by recompute only, so it swaps nothing, but cache_config_info reports swap_space and swap_space_bytes.
  'swap-space': { key: 'swapSpace', kind: 'py-float', help: 'GiB of CPU swap per GPU (default 4); V1 never swaps: only reported in vllm:cache_config_info' },
  // `parser.add_argument('--disable-log-stats', action='store_true')` (line 839): AsyncLLM then has no stat logger.
  'disable-log-stats': { key: 'disableLogStats', kind: 'bool', help: 'no vllm: metrics at all, as vLLM registers no PrometheusStatLogger; /metrics still serves prometheus_client\'s collectors and the http_* families' },
  // vLLM 0.10.0 flags accepted, checked as its parser checks them, and ignored: none changes anything the simulator
  // models (each help says why). Value syntax from vllm/engine/arg_utils.py @ 6eca337ce (_compute_kwargs: a bool field
  // gets argparse.BooleanOptionalAction, so --x and --no-x; a Literal gets `choices`; Optional[...] gets optional_type).
  // `dtype: Union[ModelDType, torch.dtype]` (line 282, added at 470; ModelDType, vllm/config.py line 222): choices.
  dtype: {
    inert: 'dtype',
    kind: 'choice',
    choices: ['auto', 'bfloat16', 'float', 'float16', 'float32', 'half'],
    help: 'accepted and ignored: the weights\' dtype; there are no weights, and the latency flags set the speed',
  },
  // `enforce_eager: bool` (line 340, added at 488): BooleanOptionalAction.
  'enforce-eager': { inert: 'enforce_eager', kind: 'bool', help: 'accepted and ignored: CUDA graphs off changes only real GPU speed, which the latency flags set' },
  'no-enforce-eager': { inert: 'enforce_eager', kind: 'no-bool', help: 'accepted and ignored (the default)' },
  // `enable_chunked_prefill: Optional[bool]` (lines 378-379, added at 810; SchedulerConfig's SkipValidation[bool]):
  // BooleanOptionalAction. _set_default_args_v1 sets it True for every generation model, whatever was given (lines
  // 1528-1532, "V1 always uses chunked prefills").
  'enable-chunked-prefill': { inert: 'enable_chunked_prefill', kind: 'bool', help: 'accepted and ignored: vLLM 0.10 (V1) always chunks prefills of a generation model, and so does the simulator' },
  'no-enable-chunked-prefill': { inert: 'enable_chunked_prefill', kind: 'no-bool', help: 'accepted and ignored: V1 turns chunked prefill on regardless (_set_default_args_v1)' },
  // AsyncEngineArgs: `parser.add_argument('--disable-log-requests', action='store_true')` (line 1672).
  'disable-log-requests': { inert: 'disable_log_requests', kind: 'bool', help: 'accepted and ignored: only vLLM\'s per-request log lines, which the simulator does not write' },
  // `show_hidden_metrics_for_version: Optional[str]` (lines 396-397, added at 757): optional_type(str). Neither 0.10.0's
  // nor 0.10.2's PrometheusStatLogger hides a family behind it (vllm/v1/metrics/loggers.py @ 6eca337ce lines 209-233:
  // "TODO: in 0.10, only enable if show_hidden_metrics=True", the deprecated gpu_* families registered regardless).
  'show-hidden-metrics-for-version': { inert: 'show_hidden_metrics_for_version', kind: 'optional-string', help: 'accepted and ignored: no metric is hidden in 0.10.0 or 0.10.2' },
  // `tensor_parallel_size: int` (line 296, added at 598 as "--tensor-parallel-size", "-tp"): type=int.
  // No range check in vLLM, but 0 fails ModelConfig.verify_with_parallel_config (`num_attention_heads %
  // tensor_parallel_size`, vllm/config.py @ 6eca337ce line 1208) and a negative size is no GPU count: at least 1 here.
  // The divisibility of the model's attention heads by the size, and the GPUs present, are not checked.
  'tensor-parallel-size': { inert: 'tensor_parallel_size', kind: 'py-int', min: 1, help: 'accepted and ignored (also -tp): GPUs per engine; one engine\'s scheduling and metrics are the same' },
  // FrontendArgs `disable_frontend_multiprocessing: bool = False` (vllm/entrypoints/openai/cli_args.py @ v0.10.0 line
  // 129), added through get_kwargs: BooleanOptionalAction. One of the server setups vLLM's own metrics test starts.
  'disable-frontend-multiprocessing': { inert: 'disable_frontend_multiprocessing', kind: 'bool', help: 'accepted and ignored: the simulator is one process either way' },
  'no-disable-frontend-multiprocessing': { inert: 'disable_frontend_multiprocessing', kind: 'no-bool', help: 'accepted and ignored (the default)' },
  // `enable_sleep_mode: bool = ModelConfig.enable_sleep_mode` (False): BooleanOptionalAction. It only makes the workers
  // allocate weights and KV cache from the CuMemAllocator pools; the dev-mode /sleep never reads it (api_server.py →
  // executor_base.py `sleep`, which marks every tag asleep; gpu_worker.py `sleep` then frees whatever the pools hold,
  // nothing without the flag), so the simulator's /sleep, /wake_up and /is_sleeping behave alike either way.
  'enable-sleep-mode': { inert: 'enable_sleep_mode', kind: 'bool', help: 'accepted and ignored: vLLM 0.10.0\'s dev-mode /sleep does not read it, and no memory is simulated' },
  'no-enable-sleep-mode': { inert: 'enable_sleep_mode', kind: 'no-bool', help: 'accepted and ignored (the default)' },
  // `trust_remote_code: bool` (line 277, added at 468): BooleanOptionalAction.
  'trust-remote-code': { inert: 'trust_remote_code', kind: 'bool', help: 'accepted and ignored: Qwen3 needs no remote code, and the tokenizer is bundled' },
  'no-trust-remote-code': { inert: 'trust_remote_code', kind: 'no-bool', help: 'accepted and ignored (the default)' },
  // `download_dir: Optional[str]` (line 279, added at 552): optional_type(str).
  'download-dir': { inert: 'download_dir', kind: 'optional-string', help: 'accepted and ignored: nothing is downloaded' },
  // `seed: Optional[int]` (line 284, added at 471): optional_type(int).
  seed: { inert: 'seed', kind: 'optional-py-int', help: 'accepted and ignored: the sampling seed; the reply is fixed filler' },
};

/** argparse's other spellings of a flag: vLLM's `"--tensor-parallel-size", "-tp"` (arg_utils.py @ 6eca337ce line 598). */
const ALIASES: Record<string, string> = { '-tp': '--tensor-parallel-size' };

export const USAGE = `Usage: kvroute-sim [model] [flags]

A vLLM 0.10 simulator: OpenAI API, Qwen3 tokenizer and chat template, a vLLM-like
prefix cache, a prefill/decode latency model and vLLM's Prometheus metrics.

The model may also be given as vllm serve's positional argument (kvroute-sim [model] [flags]), as --model.

Flags (--flag value or --flag=value; _ and - alike in names, as vLLM's FlexibleArgumentParser):
${Object.entries(FLAGS)
  // A name longer than the column gets its description on the next line, as argparse prints it.
  .map(([name, s]) => (name.length + 2 <= 32 ? `  ${`--${name}`.padEnd(34)}${s.help}` : `  --${name}\n  ${''.padEnd(34)}${s.help}`))
  .join('\n')}
  ${'--help, -h'.padEnd(34)}show this help

Environment: PYTHONHASHSEED seeds the block hashes as it seeds vLLM's (NONE_HASH); "random" or an integer
0-4294967295, as CPython takes it;
VLLM_SERVER_DEV_MODE=1 serves vLLM's dev-mode routes: POST /reset_prefix_cache, GET /server_info, POST /sleep,
POST /wake_up and GET /is_sleeping; VLLM_ALLOW_RUNTIME_LORA_UPDATING=1 (or true) serves POST /v1/load_lora_adapter
and /v1/unload_lora_adapter; VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 lets --max-model-len exceed a Qwen3 model's 40960,
with a warning. VLLM_API_KEY, VLLM_HTTP_TIMEOUT_KEEP_ALIVE and POD_NAME are the defaults of --api-key,
--timeout-keep-alive and --pod-name.

On start it prints one JSON line, {"event":"listening","port":N,...}, to stdout.
`;

export type CliResult = { kind: 'help' } | { kind: 'run'; options: SimulatorOptions };

// Each flag collects every occurrence, so a repeated flag is refused instead of the last one silently winning.
const PARSE_OPTIONS: Record<string, { type: 'string' | 'boolean'; short?: string; multiple: true }> = {
  help: { type: 'boolean', short: 'h', multiple: true },
  ...Object.fromEntries(
    Object.entries(FLAGS).map(([name, spec]) => [name, { type: spec.kind === 'bool' || spec.kind === 'no-bool' ? 'boolean' : 'string', multiple: true } as const]),
  ),
};

/** LoRAConfig's possible_max_ranks (vllm/config.py @ v0.10.0, __post_init__). */
const MAX_LORA_RANKS: readonly number[] = [8, 16, 32, 64, 128, 256, 320, 512];

/** Parses argv (without node and script) with node:util parseArgs; throws OptionError naming the offending flag. */
export function parseCli(argv: readonly string[]): CliResult {
  const { args, dotted } = flexibleArgs(withLoraItemsJoined(withAliases(argv)));
  let given: Record<string, (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    ({ values: given, positionals } = parseArgs({ args, options: PARSE_OPTIONS, strict: true, allowPositionals: true }) as { values: typeof given; positionals: string[] });
  } catch (e) {
    throw optionError(e, args);
  }
  if (given.help) return { kind: 'help' };
  // `vllm serve [model_tag] [options]`: make_arg_parser adds `model_tag` (type=str, nargs="?"; vllm/entrypoints/openai/
  // cli_args.py @ 6eca337ce lines 217-221), and ServeSubcommand.cmd sets `args.model = args.model_tag` when it is given
  // (vllm/entrypoints/cli/serve.py @ 6eca337ce lines 41-43). argparse refuses a second positional ("unrecognized
  // arguments"). vLLM lets the positional silently win over a different --model; refused here.
  if (positionals.length > 1) throw new OptionError(positionals[1], 'unexpected argument (flags start with --; the only positional is the model)');
  const partial: SimulatorInput = { host: '0.0.0.0', port: 8000 };
  const setBy = new Map<string, string>();
  /** The values of the flags the simulator checks and ignores, by vLLM's field name. */
  const inert = new Map<string, unknown>();
  const set = (flag: string, spec: FlagSpec, value: unknown): void => {
    const field = (spec.key ?? spec.inert) as string;
    const other = setBy.get(field);
    if (other !== undefined) throw new OptionError(flag, `conflicts with ${other}`);
    setBy.set(field, flag);
    if (spec.key) (partial as Record<string, unknown>)[spec.key] = value;
    else inert.set(field, value);
  };
  for (const [name, values] of Object.entries(given) as [string, (string | boolean)[]][]) {
    const flag = `--${name}`;
    if (values.length > 1) throw new OptionError(flag, 'given more than once');
    const spec = FLAGS[name];
    set(flag, spec, convert(flag, spec, values[0]));
    if (spec.kind === 'lora-list') {
      const { paths, bases } = loraPathsAndBases(String(values[0]));
      partial.loraModulePaths = paths;
      partial.loraModuleBaseModels = bases;
    }
  }
  if (positionals.length === 1) {
    const model = convert('model_tag', FLAGS.model, positionals[0]) as string;
    if (partial.model !== undefined && partial.model !== model) {
      throw new OptionError('--model', `conflicts with the positional model ${JSON.stringify(model)} (vllm serve would use the positional one)`);
    }
    partial.model = model;
  }
  for (const [flag, value] of dotted) {
    const spec = FLAGS[flag.slice(2)];
    if (!spec) throw new OptionError(flag, 'unknown flag (see --help)');
    // vLLM would hand any flag its dotted keys as a JSON string (so `--port.x 1` fails there too); only the JSON flags
    // take them here.
    if (spec.kind !== 'json') throw new OptionError(flag, `takes no dotted keys (${flag}.key): it is not a JSON flag`);
    // vLLM appends the dotted keys' JSON as one more occurrence of the flag, which then replaces the whole JSON given
    // before; like any repeated flag here, refused.
    if (given[flag.slice(2)]) throw new OptionError(flag, 'given more than once (as JSON and as dotted keys)');
    set(flag, spec, value);
  }
  // validate_parsed_serve_args (cli_args.py @ v0.10.0), which `vllm serve` runs before starting anything: `if
  // args.enable_auto_tool_choice and not args.tool_call_parser: raise TypeError(...)`.
  if (partial.enableAutoToolChoice && !setBy.has('tool_call_parser')) {
    throw new OptionError('--enable-auto-tool-choice', 'Error: --enable-auto-tool-choice requires --tool-call-parser');
  }
  // LoRAConfig.__post_init__ (vllm/config.py @ v0.10.0), which create_lora_config builds only with --enable-lora: a rank
  // outside possible_max_ranks, or fewer CPU slots than GPU slots, is a ValueError that stops vLLM before it serves
  // (lib/decode-pool.ts refuses the same maxLoraRank and maxCpuLoras). The adapters' weights are not simulated, so the
  // values are checked and then ignored.
  if (partial.enableLora) {
    const rank = inert.get('max_lora_rank') as number | undefined;
    if (rank !== undefined && !MAX_LORA_RANKS.includes(rank)) {
      throw new OptionError('--max-lora-rank', `max_lora_rank (${rank}) must be one of (${MAX_LORA_RANKS.join(', ')}).`);
    }
    const cpuLoras = inert.get('max_cpu_loras') as number | undefined;
    const maxLoras = partial.maxLoras ?? 1;
    if (cpuLoras !== undefined && cpuLoras < maxLoras) {
      throw new OptionError('--max-cpu-loras', `max_cpu_loras (${cpuLoras}) must be >= max_loras (${maxLoras})`);
    }
  }
  // `args.api_key or envs.VLLM_API_KEY` (api_server.py @ v0.10.0): the flag's key when it is one, else the variable's.
  if (!partial.apiKey && process.env.VLLM_API_KEY) partial.apiKey = process.env.VLLM_API_KEY;
  return { kind: 'run', options: resolveOptions(partial) };
}

/**
 * vLLM's `FlexibleArgumentParser.parse_args` rewriting (vllm/utils/__init__.py @ v0.10.0, lines 1694-1823; the same in
 * v0.10.2) before argparse sees the arguments:
 * - in every argument that starts with `--`, `_` becomes `-` between the `--` and the first `.` (or the `=`), so
 *   `--kv_events_config` is `--kv-events-config` (keys after the `.` keep theirs);
 * - `--flag.key value` / `--flag.key=value` (also `--flag.a.b value`, nested) set one key of a JSON flag. The value is
 *   `json.loads`'d when it parses as JSON (`true`, `100`, `"x"`, `{...}`, and Python's extra `NaN`, `Infinity`,
 *   `-Infinity`), else kept as the string; `--flag.key+ a,b` makes a list of strings (lists of one key concatenate).
 *   Every key of one flag merges into one object (`recursive_dict_update`: nested objects merge). vLLM warns "Found
 *   duplicate keys" and keeps the last value of a key set twice; refused here like a repeated flag.
 * Differences: vLLM treats any argument starting with `-` and holding a `.` as dotted, so a value such as `-0.5` given as
 * a separate word is misread there; here only `--` arguments with a `.` in their name are (a negative value needs
 * `--flag=-0.5` anyway). vLLM's `--config` YAML file and `-O` shorthand are not simulated.
 *
 * @returns the remaining arguments for parseArgs, and each dotted flag's object, by flag (`--kv-events-config`).
 */
export function flexibleArgs(argv: readonly string[]): { args: string[]; dotted: Map<string, Record<string, unknown>> } {
  // Everything between the first -- and the first . : underscores to dashes.
  const normalized = argv.map((arg) => {
    if (!arg.startsWith('--')) return arg;
    const eq = arg.indexOf('=');
    const key = eq < 0 ? arg : arg.slice(0, eq);
    const dot = key.indexOf('.');
    const name = dot < 0 ? key : key.slice(0, dot);
    return name.replace(/_/g, '-') + arg.slice(name.length);
  });
  const args: string[] = [];
  const dotted = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < normalized.length; i++) {
    const arg = normalized[i];
    const eq = arg.indexOf('=');
    let key = eq < 0 ? arg : arg.slice(0, eq);
    if (!arg.startsWith('--') || !key.includes('.')) {
      args.push(arg);
      continue;
    }
    let valueStr: string;
    if (eq >= 0) valueStr = arg.slice(eq + 1);
    else if (i + 1 < normalized.length) valueStr = normalized[++i];
    else throw new OptionError(key, 'missing value');
    let value: unknown;
    if (key.endsWith('+')) {
      key = key.slice(0, -1);
      value = valueStr.split(',');
    } else {
      value = pythonJsonLoads(valueStr);
    }
    const [flag, ...path] = key.split('.');
    let nested: unknown = value;
    for (const k of path.reverse()) nested = { [k]: nested };
    const into = dotted.get(flag) ?? {};
    dotted.set(flag, into);
    const duplicates = recursiveDictUpdate(into, nested as Record<string, unknown>);
    if (duplicates.length > 0) {
      throw new OptionError(flag, `key ${duplicates.map((d) => `${flag}.${d}`).join(', ')} given more than once (vLLM warns "Found duplicate keys" and keeps the last)`);
    }
  }
  return { args, dotted };
}

/** `json.loads(value)`, or the string itself when it is not JSON (`except json.decoder.JSONDecodeError`). */
function pythonJsonLoads(value: string): unknown {
  // Python's json also reads these three constants, which JSON.parse does not (here only as the whole value).
  const constant = /^[ \t\n\r]*(NaN|Infinity|-Infinity)[ \t\n\r]*$/.exec(value)?.[1];
  if (constant !== undefined) return constant === 'NaN' ? Number.NaN : constant === 'Infinity' ? Infinity : -Infinity;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

/** vLLM's `recursive_dict_update`: objects merge, lists concatenate, anything else replaces; returns replaced keys. */
function recursiveDictUpdate(original: Record<string, unknown>, update: Record<string, unknown>): string[] {
  const duplicates: string[] = [];
  for (const [k, v] of Object.entries(update)) {
    const o = original[k];
    if (isDict(v) && isDict(o)) duplicates.push(...recursiveDictUpdate(o, v).map((d) => `${k}.${d}`));
    else if (Array.isArray(v) && Array.isArray(o)) o.push(...(v as unknown[]));
    else {
      if (Object.prototype.hasOwnProperty.call(original, k)) duplicates.push(k);
      // defineProperty: a key named "__proto__" stays a plain key, as in a Python dict.
      Object.defineProperty(original, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  return duplicates;
}

/** argparse's other option strings, as their long names: `-tp 2` and `-tp=2` (not `-tp2`, which argparse refuses). */
function withAliases(argv: readonly string[]): string[] {
  return argv.map((arg) => {
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const long = ALIASES[name];
    return long === undefined ? arg : long + arg.slice(name.length);
  });
}

/** Separates the items of `--lora-modules` once joined into one value (withLoraItemsJoined). */
const LORA_ITEM_SEPARATOR = '\u0000';

/**
 * `--lora-modules` is argparse `nargs='+'` in vLLM (vllm/entrypoints/openai/cli_args.py @ 6eca337ce, LoRAParserAction):
 * `--lora-modules sql=/adapters/sql chat=/adapters/chat` takes every argument up to the next flag. node:util's
 * parseArgs takes one value, so those items are joined into it here.
 */
function withLoraItemsJoined(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    out.push(arg);
    // `--served-model-name` is nargs="+" too (vllm/engine/arg_utils.py @ 6eca337ce lines 211-219): `a b` serves both.
    if (arg !== '--lora-modules' && arg !== '--lora_modules' && arg !== '--served-model-name' && arg !== '--served_model_name') continue;
    const items: string[] = [];
    while (i + 1 < argv.length && !argv[i + 1]!.startsWith('-')) items.push(argv[++i]!);
    if (items.length > 0) out.push(items.join(LORA_ITEM_SEPARATOR));
  }
  return out;
}

/**
 * The adapters of `--lora-modules`, as vLLM's LoRAParserAction reads each item: `name=path` when it has an `=` and no
 * `,`, otherwise JSON `{"name": …, "path": …, "base_model_name": …}`. The simulator also takes its own earlier form, one
 * comma-separated item of names or `name=path` pairs (which vLLM would read as JSON and refuse).
 */
function loraItems(flag: string, value: string): { name: string; path?: string; baseModelName?: string }[] {
  const out: { name: string; path?: string; baseModelName?: string }[] = [];
  for (const item of value.split(LORA_ITEM_SEPARATOR)) {
    const text = item.trim();
    if (text.startsWith('{')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new OptionError(flag, `Invalid JSON format for --lora-modules: ${text}`);
      }
      const { name, path, base_model_name: base } = (parsed ?? {}) as { name?: unknown; path?: unknown; base_model_name?: unknown };
      if (typeof name !== 'string' || name.trim() === '' || typeof path !== 'string') {
        throw new OptionError(flag, `Invalid fields for --lora-modules: ${text} (needs "name" and "path" strings)`);
      }
      // LoRAModulePath's optional `base_model_name` (serving_models.py @ v0.10.0): only a served name is ever used, so
      // anything but a string can be dropped here.
      out.push(typeof base === 'string' ? { name: name.trim(), path, baseModelName: base } : { name: name.trim(), path });
      continue;
    }
    for (const part of text.split(',')) {
      const [name, ...rest] = part.trim().split('=');
      const entry: { name: string; path?: string } = { name: (name ?? '').trim() };
      if (rest.length > 0) entry.path = rest.join('=').trim();
      if (entry.name.length === 0) throw new OptionError(flag, `empty name in ${JSON.stringify(value.split(LORA_ITEM_SEPARATOR).join(' '))}`);
      out.push(entry);
    }
  }
  return out;
}

/** The `path` of each adapter of --lora-modules that gave one (a bare name has none), and each JSON item's `base_model_name`. */
function loraPathsAndBases(value: string): { paths: Record<string, string>; bases: Record<string, string> } {
  const paths: Record<string, string> = {};
  const bases: Record<string, string> = {};
  for (const { name, path, baseModelName } of loraItems('--lora-modules', value)) {
    if (path !== undefined) paths[name] = path;
    if (baseModelName !== undefined) bases[name] = baseModelName;
  }
  return { paths, bases };
}

/** parseArgs' errors as OptionErrors; its error codes are API, and its messages quote the flag or argument. */
function optionError(e: unknown, argv: readonly string[]): unknown {
  const quoted = /'([^']*)'/.exec((e as Error).message)?.[1] ?? '';
  switch ((e as { code?: string }).code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new OptionError(quoted, 'unknown flag (see --help)');
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new OptionError(quoted, 'unexpected argument (flags start with --)');
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag = /--[^\s,]+/.exec(quoted)?.[0] ?? quoted; // quoted as "--port <value>" or "-h, --help"
      const spec = FLAGS[flag.replace(/^-+/, '')];
      if (!spec || spec.kind === 'bool' || spec.kind === 'no-bool') return new OptionError(flag, 'takes no value');
      // Strict parseArgs never takes a separate word that starts with a dash as a value: say how to pass "-1".
      const next = argv.find((a, i) => argv[i - 1] === flag && a.startsWith('-') && !a.startsWith('--'));
      return new OptionError(flag, next === undefined ? 'missing value' : `missing value (if ${JSON.stringify(next)} is the value, write ${flag}=${next})`);
    }
    default:
      return e;
  }
}

function convert(flag: string, spec: FlagSpec, raw: string | boolean): unknown {
  const kind = spec.kind;
  if (kind === 'bool' || kind === 'no-bool') return kind === 'bool';
  const value = raw as string;
  const trimmed = value.trim();
  switch (kind) {
    case 'py-int': {
      const n = pythonInt(flag, value);
      if (spec.min !== undefined && n < spec.min) throw new OptionError(flag, `expected an integer >= ${spec.min}, got ${n}`);
      return n;
    }
    case 'optional-py-int':
      return value === '' || value === 'None' ? null : pythonInt(flag, value);
    case 'py-float':
      return pythonFloat(flag, value);
    case 'optional-string':
      return value === '' || value === 'None' ? null : value;
    case 'optional-human-int':
      // None is "not given": vLLM then derives max_model_len from the model and picks V1's default token budget.
      return value === '' || value === 'None' ? undefined : humanReadableInt(flag, value);
    case 'choice': {
      // argparse: "argument --dtype: invalid choice: 'x' (choose from 'auto', 'bfloat16', ...)".
      const choices = spec.choices ?? [];
      if (!choices.includes(value)) throw new OptionError(flag, `invalid choice: ${JSON.stringify(value)} (choose from ${choices.join(', ')})`);
      return value;
    }
    case 'int': {
      if (!/^[+-]?\d+$/.test(trimmed)) throw new OptionError(flag, `expected an integer, got ${JSON.stringify(value)}`);
      return Number(trimmed);
    }
    case 'float': {
      const n = Number(trimmed);
      if (trimmed === '' || !Number.isFinite(n)) throw new OptionError(flag, `expected a number, got ${JSON.stringify(value)}`);
      return n;
    }
    case 'string':
      if (value.length === 0) throw new OptionError(flag, 'expected a non-empty value');
      return value;
    case 'list': {
      // The space-separated names of nargs="+" (joined by withLoraItemsJoined), each also comma-separated (the
      // simulator's own form).
      const parts = value.split(LORA_ITEM_SEPARATOR).flatMap((item) => item.split(',')).map((s) => s.trim());
      if (parts.some((p) => p.length === 0)) throw new OptionError(flag, `empty name in ${JSON.stringify(value.split(LORA_ITEM_SEPARATOR).join(' '))}`);
      return parts;
    }
    case 'json':
      // optional_type (vllm/engine/arg_utils.py @ v0.10.0): "" and "None" mean None, no config; the JSON itself is
      // parsed and checked by resolveOptions (parseKvEventsConfig).
      return value === '' || value === 'None' ? null : value;
    case 'lora-list':
      // The names; the paths are kept apart (loraPaths), only for /v1/models.
      return loraItems(flag, value).map((a) => a.name);
  }
}

/** Python's `int(value)` (argparse type=int): surrounding whitespace, a sign, `_` between digits; base 10. */
function pythonInt(flag: string, value: string): number {
  const n = pythonIntValue(value);
  if (n === undefined) throw new OptionError(flag, `expected an integer, got ${JSON.stringify(value)}`);
  return n;
}

/** What Python's `int(value)` returns, or undefined where it raises (or the integer is past a double's exact range). */
function pythonIntValue(value: string): number | undefined {
  const m = /^\s*([+-]?)(\d+(?:_\d+)*)\s*$/.exec(value);
  const n = m ? Number(`${m[1]}${m[2].replace(/_/g, '')}`) : Number.NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

const DECIMAL_MULTIPLIERS: Readonly<Record<string, number>> = { k: 1e3, m: 1e6, g: 1e9 };
const BINARY_MULTIPLIERS: Readonly<Record<string, number>> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/**
 * vLLM's `human_readable_int` (vllm/engine/arg_utils.py; vLLM #18968 gave it max_num_batched_tokens beside
 * max_model_len before v0.10.0, read here in a v0.10.1 copy, where it is unchanged): the stripped value fully matching
 * `(\d+(?:\.\d+)?)([kKmMgGtT])` is `int(float(number) * mult)` for k/m/g (10^3, 10^6, 10^9; a double's product, so
 * 25.6k is 25600), `int(number) * mult` for K/M/G (2^10, 2^20, 2^30), whose decimals it refuses with an
 * ArgumentTypeError; t/T match but have no multiplier, so they reach the plain `int(value)`, which then fails.
 */
function humanReadableInt(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT])$/.exec(value.trim());
  if (m) {
    const [, number, suffix] = m;
    const decimal = DECIMAL_MULTIPLIERS[suffix];
    if (decimal !== undefined) return Math.trunc(Number(number) * decimal);
    const binary = BINARY_MULTIPLIERS[suffix];
    if (binary !== undefined) {
      if (number.includes('.')) {
        throw new OptionError(flag, `Decimals are not allowed with binary suffixes like ${suffix}. Did you mean to use ${number}${suffix.toLowerCase()} instead?`);
      }
      return Number(number) * binary;
    }
  }
  const n = pythonIntValue(value);
  if (n === undefined) {
    throw new OptionError(flag, `expected an integer, or a number with a k/m/g (×1000) or K/M/G (×1024) suffix (vLLM's human_readable_int), got ${JSON.stringify(value)}`);
  }
  return n;
}

/**
 * Python's `float(value)` (argparse type=float): surrounding whitespace, a sign, digits with `_` between them, a
 * fraction, an exponent, or `inf`/`infinity`/`nan` in any case. Values Python would take but nothing can use (inf, nan)
 * are left to the option's own check.
 */
function pythonFloat(flag: string, value: string): number {
  const s = value.trim();
  const digits = '\\d(?:_?\\d)*';
  const decimal = new RegExp(`^[+-]?(?:${digits}(?:\\.(?:${digits})?)?|\\.${digits})(?:[eE][+-]?${digits})?$`);
  if (decimal.test(s)) return Number(s.replace(/_/g, ''));
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(s);
  if (special) return special[2].toLowerCase() === 'nan' ? Number.NaN : special[1] === '-' ? -Infinity : Infinity;
  throw new OptionError(flag, `expected a number, got ${JSON.stringify(value)}`);
}
