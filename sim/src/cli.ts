import { parseArgs } from 'node:util';
import { OptionError, resolveOptions, type SimulatorInput, type SimulatorOptions } from './options';

/** `json`: a JSON object, also given as dotted keys (`--flag.key value`), or `None`/empty for none. */
type Kind = 'int' | 'float' | 'string' | 'list' | 'bool' | 'no-bool' | 'lora-list' | 'json';

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
  // vLLM's BooleanOptionalAction pair (vllm/engine/arg_utils.py @ v0.10.0, `--enable-prefix-caching` from CacheConfig's
  // Optional[bool] field); on by default for V1 generation models.
  'enable-prefix-caching': { key: 'enablePrefixCaching', kind: 'bool', help: 'the default (vLLM V1): reuse cached prefix blocks' },
  'no-enable-prefix-caching': { key: 'enablePrefixCaching', kind: 'no-bool', help: 'no prefix cache: no hits, no BlockStored/BlockRemoved events' },
  'gpu-memory-utilization': { key: 'gpuMemoryUtilization', kind: 'float', help: 'only reported in vllm:cache_config_info (default 0.9)' },
  'prefix-caching-hash-algo': { key: 'prefixCachingHashAlgo', kind: 'string', help: 'builtin | sha256 | sha256_cbor_64bit | sha256_cbor (default builtin); seeded by $PYTHONHASHSEED' },
  'kv-events-config': { key: 'kvEventsConfig', kind: 'json', help: 'vLLM\'s KV events JSON, e.g. \'{"enable_kv_cache_events":true,"publisher":"zmq"}\', or dotted: --kv-events-config.publisher zmq' },
  'kv-events-encoding': { key: 'kvEventsEncoding', kind: 'string', help: 'positional (vLLM 0.10, default) | map (vLLM v0.26: #42892 tagged maps, LoRA hashed by name; needs sha256_cbor or sha256)' },
  'lora-modules': { key: 'loraModules', kind: 'lora-list', help: 'comma-separated LoRA adapter names (name or name=path) accepted as model' },
  'enable-auto-tool-choice': { key: 'enableAutoToolChoice', kind: 'bool', help: 'accept tool_choice "auto" (vLLM needs it with --tool-call-parser; default off: 400)' },
};

export const USAGE = `Usage: kvroute-sim [flags]

A vLLM 0.10 simulator: OpenAI API, Qwen3 tokenizer and chat template, a vLLM-like
prefix cache, a prefill/decode latency model and vLLM's Prometheus metrics.

Flags (--flag value or --flag=value; _ and - alike in names, as vLLM's FlexibleArgumentParser):
${Object.entries(FLAGS)
  .map(([name, s]) => `  ${`--${name}`.padEnd(34)}${s.help}`)
  .join('\n')}
  ${'--help, -h'.padEnd(34)}show this help

Environment: PYTHONHASHSEED seeds the block hashes as it seeds vLLM's (NONE_HASH);
VLLM_SERVER_DEV_MODE=1 serves POST /reset_prefix_cache, as vLLM's dev mode does.

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
  const { args, dotted } = flexibleArgs(argv);
  let given: Record<string, (string | boolean)[] | undefined>;
  try {
    given = parseArgs({ args, options: PARSE_OPTIONS, strict: true, allowPositionals: false }).values as typeof given;
  } catch (e) {
    throw optionError(e, args);
  }
  if (given.help) return { kind: 'help' };
  const partial: SimulatorInput = { host: '0.0.0.0', port: 8000 };
  const setBy = new Map<string, string>();
  const set = (flag: string, spec: FlagSpec, value: unknown): void => {
    const other = setBy.get(spec.key);
    if (other !== undefined) throw new OptionError(flag, `conflicts with ${other}`);
    setBy.set(spec.key, flag);
    (partial as Record<string, unknown>)[spec.key] = value;
  };
  for (const [name, values] of Object.entries(given) as [string, (string | boolean)[]][]) {
    const flag = `--${name}`;
    if (values.length > 1) throw new OptionError(flag, 'given more than once');
    const spec = FLAGS[name];
    set(flag, spec, convert(flag, spec.kind, values[0]));
    if (spec.kind === 'lora-list') partial.loraModulePaths = loraPaths(String(values[0]));
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
  const isDict = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
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
    case 'json':
      // optional_type (vllm/engine/arg_utils.py @ v0.10.0): "" and "None" mean None, no config; the JSON itself is
      // parsed and checked by resolveOptions (parseKvEventsConfig).
      return value === '' || value === 'None' ? null : value;
    case 'lora-list': {
      // vLLM takes `name=path` pairs; the paths are kept apart (loraPaths), only for /v1/models.
      const parts = value.split(',').map((s) => s.trim().split('=')[0].trim());
      if (parts.some((p) => p.length === 0)) throw new OptionError(flag, `empty name in ${JSON.stringify(value)}`);
      return parts;
    }
  }
}
