import { parseArgs } from 'node:util';
import { OptionError, resolveOptions, type SimulatorInput, type SimulatorOptions } from './options';

type Kind = 'int' | 'float' | 'string' | 'list' | 'bool' | 'no-bool' | 'lora-list';

interface FlagSpec {
  key: keyof SimulatorOptions;
  kind: Kind;
  help: string;
}

/** By name, without the leading dashes. */
const FLAGS: Record<string, FlagSpec> = {
  host: { key: 'host', kind: 'string', help: 'address to bind (default 0.0.0.0)' },
  port: { key: 'port', kind: 'int', help: 'port to bind; 0 picks a free one (default 8000)' },
  model: { key: 'model', kind: 'string', help: 'model id to impersonate (default Qwen/Qwen3-0.6B); the tokenizer is always Qwen3' },
  'served-model-name': { key: 'servedModelNames', kind: 'list', help: 'comma-separated names accepted in requests (default: --model); the first labels metrics' },
  'block-size': { key: 'blockSize', kind: 'int', help: 'tokens per KV block: 1, 8, 16, 32, 64 or 128 (default 16)' },
  'kv-cache-blocks': { key: 'kvCacheBlocks', kind: 'int', help: 'KV cache capacity in blocks (default 8192)' },
  'max-num-seqs': { key: 'maxNumSeqs', kind: 'int', help: 'max concurrently running requests; the rest wait (default 256)' },
  'max-model-len': { key: 'maxModelLen', kind: 'int', help: 'max prompt + completion tokens per request (default 40960)' },
  'ttft-overhead-ms': { key: 'ttftOverheadMs', kind: 'float', help: 'fixed time before prefill, per request (default 20)' },
  'prefill-ms-per-token': { key: 'prefillMsPerToken', kind: 'float', help: 'prefill time per uncached prompt token (default 0.25)' },
  'itl-ms': { key: 'itlMs', kind: 'float', help: 'time per output token after the first (default 20)' },
  'prefill-concurrency': { key: 'prefillConcurrency', kind: 'int', help: 'prefills computed at once, FCFS; 0 = unlimited (default 1)' },
  'scheduling-policy': { key: 'schedulingPolicy', kind: 'string', help: 'fcfs (default) | priority: the waiting queue by each request\'s priority (lower first), as vLLM\'s' },
  'time-scale': { key: 'timeScale', kind: 'float', help: 'run N× faster than real time; reported times stay in model seconds (default 1)' },
  'pod-name': { key: 'podName', kind: 'string', help: 'name reported in x-kvroute-pod and logs (default $POD_NAME or hostname)' },
  'default-max-tokens': { key: 'defaultMaxTokens', kind: 'int', help: 'max_tokens when a request omits it (default 16)' },
  'max-num-batched-tokens': { key: 'maxNumBatchedTokens', kind: 'int', help: 'prefill tokens per request per scheduler step (chunked prefill; default 2048)' },
  'enable-prompt-tokens-details': { key: 'enablePromptTokensDetails', kind: 'bool', help: 'report usage.prompt_tokens_details.cached_tokens, as vLLM (default off)' },
  'no-enable-prompt-tokens-details': { key: 'enablePromptTokensDetails', kind: 'no-bool', help: 'the default' },
  'sim-extension': { key: 'simExtension', kind: 'bool', help: 'add kvroute_sim {pod, cached_tokens, queue_time_s, ttft_s, e2e_s} to each body and last chunk (default off: exactly vLLM\'s members)' },
  'no-sim-extension': { key: 'simExtension', kind: 'no-bool', help: 'the default' },
  'gpu-memory-utilization': { key: 'gpuMemoryUtilization', kind: 'float', help: 'only reported in vllm:cache_config_info (default 0.9)' },
  'prefix-caching-hash-algo': { key: 'prefixCachingHashAlgo', kind: 'string', help: 'builtin | sha256 | sha256_cbor_64bit | sha256_cbor (default builtin); seeded by $PYTHONHASHSEED' },
  'kv-events-config': { key: 'kvEventsConfig', kind: 'string', help: 'vLLM\'s KV events JSON, e.g. \'{"enable_kv_cache_events":true,"publisher":"zmq"}\'' },
  'kv-events-encoding': { key: 'kvEventsEncoding', kind: 'string', help: 'positional (vLLM 0.10, default) | map (vLLM v0.26: #42892 tagged maps, LoRA hashed by name; needs sha256_cbor or sha256)' },
  'lora-modules': { key: 'loraModules', kind: 'lora-list', help: 'comma-separated LoRA adapter names (name or name=path) accepted as model' },
  'enable-auto-tool-choice': { key: 'enableAutoToolChoice', kind: 'bool', help: 'accept tool_choice "auto" (vLLM needs it with --tool-call-parser; default off: 400)' },
};

export const USAGE = `Usage: kvroute-sim [flags]

A vLLM 0.10 simulator: OpenAI API, Qwen3 tokenizer and chat template, a vLLM-like
prefix cache, a prefill/decode latency model and vLLM's Prometheus metrics.

Flags (--flag value or --flag=value):
${Object.entries(FLAGS)
  .map(([name, s]) => `  ${`--${name}`.padEnd(34)}${s.help}`)
  .join('\n')}
  ${'--help, -h'.padEnd(34)}show this help

Environment: PYTHONHASHSEED seeds the block hashes as it seeds vLLM's (NONE_HASH).

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

/** Parses argv (without node and script) with node:util parseArgs; throws OptionError naming the offending flag. */
export function parseCli(argv: readonly string[]): CliResult {
  let given: Record<string, (string | boolean)[] | undefined>;
  try {
    given = parseArgs({ args: [...argv], options: PARSE_OPTIONS, strict: true, allowPositionals: false }).values as typeof given;
  } catch (e) {
    throw optionError(e, argv);
  }
  if (given.help) return { kind: 'help' };
  const partial: SimulatorInput = { host: '0.0.0.0', port: 8000 };
  const setBy = new Map<string, string>();
  for (const [name, values] of Object.entries(given) as [string, (string | boolean)[]][]) {
    const flag = `--${name}`;
    if (values.length > 1) throw new OptionError(flag, 'given more than once');
    const spec = FLAGS[name];
    const other = setBy.get(spec.key);
    if (other !== undefined) throw new OptionError(flag, `conflicts with ${other}`);
    setBy.set(spec.key, flag);
    (partial as Record<string, unknown>)[spec.key] = convert(flag, spec.kind, values[0]);
    if (spec.kind === 'lora-list') partial.loraModulePaths = loraPaths(String(values[0]));
  }
  return { kind: 'run', options: resolveOptions(partial) };
}

/** The `path` of each `name=path` pair of --lora-modules (a bare name has none). */
function loraPaths(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(',')) {
    const [name, ...rest] = part.trim().split('=');
    if (rest.length > 0) out[name.trim()] = rest.join('=').trim();
  }
  return out;
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

function convert(flag: string, kind: Kind, raw: string | boolean): unknown {
  if (kind === 'bool' || kind === 'no-bool') return kind === 'bool';
  const value = raw as string;
  const trimmed = value.trim();
  switch (kind) {
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
      const parts = value.split(',').map((s) => s.trim());
      if (parts.some((p) => p.length === 0)) throw new OptionError(flag, `empty name in ${JSON.stringify(value)}`);
      return parts;
    }
    case 'lora-list': {
      // vLLM takes `name=path` pairs; the paths are kept apart (loraPaths), only for /v1/models.
      const parts = value.split(',').map((s) => s.trim().split('=')[0].trim());
      if (parts.some((p) => p.length === 0)) throw new OptionError(flag, `empty name in ${JSON.stringify(value)}`);
      return parts;
    }
  }
}
