/**
 * Command-line flags → `GatewayOptions`, parsed by `node:util` parseArgs (strict, no positionals). Every flag takes
 * `--flag value` or `--flag=value`; unknown flags, repeated flags, stray arguments and bad values are errors that
 * name the flag (nothing is silently ignored).
 */
import { parseArgs as parseArgv, type ParseArgsConfig } from 'node:util';
import { ENVOY_SEMANTICS_VERSIONS, NEWEST } from './envoy-semantics';
import { DEFAULTS, GatewayConfigError, resolveOptions, type GatewayOptions } from './options';

export const CLI_DEFAULT_PORT = 8080;

export const USAGE = `Usage: kvroute-gateway --endpoints IP:PORT[,IP:PORT...] [options]

A local stand-in for the Istio/Envoy gateway kvroute deploys: an HTTP/1.1 proxy that asks the Endpoint Picker
(Envoy ext_proc) where each request goes and honours the pick like Envoy's override_host load balancer.

Options:
  --endpoints LIST            upstream pool, comma-separated ip:port ([ipv6]:port); required
  --port N                    listen port (default ${CLI_DEFAULT_PORT}; 0 = any free port). Prints
                              {"event":"listening","port":N} on stdout once listening
  --host ADDR                 listen address (default ${DEFAULTS.host})
  --ext-proc HOST:PORT[,...]  the EPP's ext_proc gRPC address; several (comma-separated or the flag repeated)
                              are the EPP replicas, streams load-balanced over them. Without it every
                              request is routed by the fallback policy (a round-robin / session-hash baseline)
  --ext-proc-lb-policy P      least-request (default, Istio's) or round-robin: how streams spread over replicas
  --ext-proc-outlier-detection on|off|K=V[,K=V...]
                              Envoy outlier detection on the EPP cluster (default off, as without a
                              DestinationRule): 'on' = Envoy's defaults, 'off' = none, or set consecutive5xx,
                              consecutiveGatewayFailure, intervalMs, baseEjectionTimeMs, maxEjectionTimeMs,
                              maxEjectionPercent
  --envoy-semantics V         the Envoy release to behave as: ${[...ENVOY_SEMANTICS_VERSIONS, NEWEST].join(', ')}
                              (default ${DEFAULTS.envoySemantics}, the Envoy of Istio 1.27.0)
  --processing-mode MODE      request body mode: buffered (BUFFERED, default) or full-duplex
                              (FULL_DUPLEX_STREAMED)
  --processing-mode-scope S   filter (default: the filter's own modes, which Envoy validates) or vhost
                              (an ExtProcPerRoute override on the virtual host, which it does not)
  --request-trailer-mode M    send or skip (default: send with full-duplex, skip with buffered)
  --response-header-mode M    send (default) or skip
  --response-body-mode M      none (default) or full-duplex (FULL_DUPLEX_STREAMED)
  --response-trailer-mode M   send (default) or skip
  --failure-mode-allow[=B]    fail open when the EPP is unreachable, errors or times out (default true;
                              false = answer 500, or 504 on a message timeout)
  --message-timeout-ms N      how long to wait for each EPP answer (default ${DEFAULTS.messageTimeoutMs})
  --max-message-timeout-ms N  the longest override_message_timeout the EPP may ask for while it holds an
                              answer (Envoy's max_message_timeout; default ${DEFAULTS.maxMessageTimeoutMs} with buffered, 0 = every
                              override ignored with full-duplex, as the demo EnvoyFilter sets it)
  --request-body-buffer-limit-bytes N
                              largest buffered request body, 413 above (default ${DEFAULTS.requestBodyBufferLimitBytes})
  --request-receive-timeout-ms N
                              the whole request received and passed on, EPP hold included
                              (HCM request_timeout; default ${DEFAULTS.requestReceiveTimeoutMs}; 0 = off)
  --idle-timeout-ms N         no byte either way for this long ends a request (HCM
                              stream_idle_timeout; default ${DEFAULTS.idleTimeoutMs}; 0 = off)
  --request-timeout-ms N      from forwarding the request to the end of the response (route timeout;
                              default ${DEFAULTS.requestTimeoutMs} = off)
  --connection-idle-timeout-ms N
                              a client connection with no request in flight this long is closed
                              (HCM idle_timeout; default ${DEFAULTS.connectionIdleTimeoutMs}; 0 = off)
  --request-headers-to-remove LIST
                              headers the route removes after the EPP, before the pod (HTTPRoute
                              RequestHeaderModifier; default "${DEFAULTS.requestHeadersToRemove.join(',')}"; "" = none)
  --hash-header NAME          fallback policy: consistent (ring) hash on this header, e.g. x-session-id,
                              instead of round robin
  --ring-size N               ring hash minimum ring size (default ${DEFAULTS.ringSize})
  --connect-timeout-ms N      upstream connect timeout (default ${DEFAULTS.connectTimeoutMs})
  --eject-ms N                after a connect failure the fallback policy avoids an endpoint this long, a
                              stand-in for outlierDetection (default ${DEFAULTS.ejectMs}: never, as kvroute's
                              decode DestinationRule sets none)
  --accept-http-10[=B]        serve HTTP/1.0 requests (default false: 426 Upgrade Required, as Istio's gateway
                              answers without PILOT_HTTP10)
  --http1-enable-trailers[=B] carry HTTP/1.1 trailers both ways (Http1ProtocolOptions.enable_trailers; default
                              false: Envoy's HTTP/1 codec drops them, and Istio enables none)
  --retry-back-off-base-ms N  a retry waits a random time below N ms, doubling per retry up to 10 × N (Envoy's
                              jittered back-off; default ${DEFAULTS.retryBackOffBaseMs}; 0 = at once)
  --max-retries N             connect-failure retries after the first attempt (route num_retries; default
                              ${DEFAULTS.maxRetries}, Istio's default retry policy)
  --max-request-body-bytes N  largest full-duplex request body (default ${DEFAULTS.maxRequestBodyBytes})
  --ext-proc-bypass LIST      comma-separated "METHOD /path" or "/path" (exact path) that skip the EPP
                              (default "${DEFAULTS.extProcBypass.join(',')}"; "" = none)
  --route-prefixes LIST       comma-separated path prefixes the route matches (PathPrefix: whole path
                              elements); other paths, bypass paths aside, get Envoy's 404 route_not_found
                              (default "${DEFAULTS.routePrefixes.join(',')}"; "" = every path)
  --shutdown-grace-ms N       on SIGTERM/SIGINT, how long in-flight requests may finish (default ${DEFAULTS.shutdownGraceMs})
  -h, --help                  show this help

Gateway endpoints: GET /healthz, GET /gateway/stats (JSON counters), GET /stats/prometheus (Envoy's ext_proc
counters, as Envoy's Prometheus endpoint serves them).
`;

export class CliError extends Error {
  constructor(readonly flag: string, detail: string) {
    super(`${flag}: ${detail}`);
    this.name = 'CliError';
  }
}

export type CliCommand = { readonly kind: 'help' } | { readonly kind: 'run'; readonly options: GatewayOptions };

type FlagKind = 'int' | 'string' | 'bool' | 'list' | 'outlier';

interface FlagSpec {
  readonly kind: FlagKind;
  readonly option: keyof GatewayOptions;
  readonly choices?: readonly string[];
  /** A list flag that may be given more than once; the values add up. */
  readonly repeatable?: boolean;
}

/** By long name, as parseArgs names them (the flag is `--` + name). */
const FLAGS: Readonly<Record<string, FlagSpec>> = {
  'endpoints': { kind: 'list', option: 'endpoints' },
  'port': { kind: 'int', option: 'port' },
  'host': { kind: 'string', option: 'host' },
  'ext-proc': { kind: 'list', option: 'extProc', repeatable: true },
  'ext-proc-lb-policy': { kind: 'string', option: 'extProcLbPolicy', choices: ['least-request', 'round-robin'] },
  'ext-proc-outlier-detection': { kind: 'outlier', option: 'extProcOutlierDetection' },
  'envoy-semantics': { kind: 'string', option: 'envoySemantics', choices: [...ENVOY_SEMANTICS_VERSIONS, NEWEST] },
  'processing-mode': { kind: 'string', option: 'processingMode', choices: ['buffered', 'full-duplex'] },
  'processing-mode-scope': { kind: 'string', option: 'processingModeScope', choices: ['filter', 'vhost'] },
  'request-trailer-mode': { kind: 'string', option: 'requestTrailerMode', choices: ['send', 'skip'] },
  'response-header-mode': { kind: 'string', option: 'responseHeaderMode', choices: ['send', 'skip'] },
  'response-body-mode': { kind: 'string', option: 'responseBodyMode', choices: ['none', 'full-duplex'] },
  'response-trailer-mode': { kind: 'string', option: 'responseTrailerMode', choices: ['send', 'skip'] },
  'failure-mode-allow': { kind: 'bool', option: 'failureModeAllow' },
  'message-timeout-ms': { kind: 'int', option: 'messageTimeoutMs' },
  'max-message-timeout-ms': { kind: 'int', option: 'maxMessageTimeoutMs' },
  'request-body-buffer-limit-bytes': { kind: 'int', option: 'requestBodyBufferLimitBytes' },
  'request-receive-timeout-ms': { kind: 'int', option: 'requestReceiveTimeoutMs' },
  'idle-timeout-ms': { kind: 'int', option: 'idleTimeoutMs' },
  'request-timeout-ms': { kind: 'int', option: 'requestTimeoutMs' },
  'connection-idle-timeout-ms': { kind: 'int', option: 'connectionIdleTimeoutMs' },
  'request-headers-to-remove': { kind: 'list', option: 'requestHeadersToRemove' },
  'hash-header': { kind: 'string', option: 'hashHeader' },
  'ring-size': { kind: 'int', option: 'ringSize' },
  'connect-timeout-ms': { kind: 'int', option: 'connectTimeoutMs' },
  'eject-ms': { kind: 'int', option: 'ejectMs' },
  'accept-http-10': { kind: 'bool', option: 'acceptHttp10' },
  'http1-enable-trailers': { kind: 'bool', option: 'http1EnableTrailers' },
  'retry-back-off-base-ms': { kind: 'int', option: 'retryBackOffBaseMs' },
  'max-retries': { kind: 'int', option: 'maxRetries' },
  'max-request-body-bytes': { kind: 'int', option: 'maxRequestBodyBytes' },
  'ext-proc-bypass': { kind: 'list', option: 'extProcBypass' },
  'route-prefixes': { kind: 'list', option: 'routePrefixes' },
  'shutdown-grace-ms': { kind: 'int', option: 'shutdownGraceMs' },
};

const HELP = 'help';
const STRAY = 'unexpected argument (flags start with --; see --help)';
const UNKNOWN = 'unknown flag (see --help)';

// Every flag is a string to parseArgs (values are checked here, with messages that name the flag) and `multiple`, so
// that a repeated flag shows up as a second value instead of silently replacing the first.
const PARSE_OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  ...Object.fromEntries(Object.keys(FLAGS).map((name) => [name, { type: 'string', multiple: true }])),
  [HELP]: { type: 'boolean', short: 'h', multiple: true },
};

const BOOLEAN_FLAGS = new Set(Object.entries(FLAGS).filter(([, spec]) => spec.kind === 'bool').map(([name]) => `--${name}`));

const OPTION_TO_FLAG = new Map(Object.entries(FLAGS).map(([name, spec]) => [spec.option as string, `--${name}`]));

/** The flag that sets an option (`processingMode` → `--processing-mode`); the option's own name if none does. */
export function flagFor(option: string): string {
  const dot = option.indexOf('.');
  const flag = dot > 0 ? OPTION_TO_FLAG.get(option.slice(0, dot)) : undefined;
  if (flag) return `${flag} ${option.slice(dot + 1)}`;
  return OPTION_TO_FLAG.get(option) ?? option;
}

function parseValue(flag: string, spec: FlagSpec, value: string): unknown {
  switch (spec.kind) {
    case 'int':
      if (!/^\d+$/.test(value)) throw new CliError(flag, `expects a non-negative integer, got '${value}'`);
      return Number(value);
    case 'bool':
      if (value !== 'true' && value !== 'false') throw new CliError(flag, `expects true or false, got '${value}'`);
      return value === 'true';
    case 'outlier': {
      if (value === 'on') return true;
      if (value === 'off') return false;
      const fields: Record<string, number> = {};
      for (const item of value.split(',')) {
        const m = /^([A-Za-z0-9]+)=(\d+)$/.exec(item.trim());
        if (!m) throw new CliError(flag, `expects on, off or KEY=N[,KEY=N...], got '${item}'`);
        fields[m[1]] = Number(m[2]);
      }
      return fields;
    }
    case 'list': {
      if (value.trim() === '') {
        if (flag === '--endpoints' || flag === '--ext-proc') throw new CliError(flag, 'expects at least one host:port');
        return [];
      }
      const items = value.split(',').map((s) => s.trim());
      if (items.some((s) => s === '')) throw new CliError(flag, `has an empty entry in '${value}'`);
      return items;
    }
    case 'string':
      if (value === '') throw new CliError(flag, 'expects a value');
      if (spec.choices && !spec.choices.includes(value)) {
        throw new CliError(flag, `expects one of ${spec.choices.join(', ')}, got '${value}'`);
      }
      return value;
  }
}

/**
 * A boolean flag may stand alone (true) or take `true`/`false` as the next argument. parseArgs has no options with
 * an optional value, so both forms become `--flag=VALUE` before it sees them.
 */
function withInlineBooleans(argv: readonly string[]): string[] {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!BOOLEAN_FLAGS.has(arg)) {
      args.push(arg);
      continue;
    }
    const next = argv[i + 1];
    if (next === 'true' || next === 'false') {
      args.push(`${arg}=${next}`);
      i++;
    } else {
      args.push(`${arg}=true`);
    }
  }
  return args;
}

/**
 * parseArgs's errors do not say which argument they are about. Read leniently, the same arguments show the first one
 * strict parsing refuses, so the error can name it like every other (unless help was asked for before it).
 */
function diagnose(args: readonly string[], err: unknown): CliCommand {
  const { tokens } = parseArgv({ args, options: PARSE_OPTIONS, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind === 'positional') throw new CliError(t.value, STRAY);
    if (t.kind === 'option-terminator') throw new CliError('--', UNKNOWN);
    if (t.name === HELP) return { kind: 'help' };
    if (!t.rawName.startsWith('--')) throw new CliError(t.rawName, STRAY);
    if (!(t.name in FLAGS)) throw new CliError(t.rawName, UNKNOWN);
    if (t.value === undefined) throw new CliError(t.rawName, 'expects a value');
    // Strict parsing takes no separate value that starts with '-': a flag there means this one's value is missing.
    if (!t.inlineValue && t.value.length > 1 && t.value.startsWith('-')) {
      if (t.value.startsWith('--')) throw new CliError(t.rawName, 'expects a value');
      throw new CliError(t.rawName, `expects a value (one that starts with '-' is written ${t.rawName}=${t.value})`);
    }
  }
  throw new CliError('arguments', err instanceof Error ? err.message : String(err));
}

/** Parses argv (without `node` and the script). Throws `CliError` naming the flag. */
export function parseArgs(argv: readonly string[]): CliCommand {
  const args = withInlineBooleans(argv);
  let parsed;
  try {
    parsed = parseArgv({ args, options: PARSE_OPTIONS, strict: true, allowPositionals: false, tokens: true });
  } catch (err) {
    return diagnose(args, err);
  }
  const { values, tokens } = parsed;
  const options: Record<string, unknown> = {};
  // In argument order, so the first mistake (or a request for help) is the one that counts.
  for (const t of tokens) {
    if (t.kind === 'option-terminator') throw new CliError('--', UNKNOWN);
    if (t.kind !== 'option') continue;
    if (t.name === HELP) return { kind: 'help' };
    if (t.value === undefined) continue;
    const given = values[t.name];
    const spec = FLAGS[t.name];
    const value = parseValue(t.rawName, spec, t.value);
    if (spec.repeatable) {
      options[spec.option] = [...((options[spec.option] as unknown[] | undefined) ?? []), ...(value as unknown[])];
      continue;
    }
    if (Array.isArray(given) && given.length > 1) throw new CliError(t.rawName, 'given more than once');
    options[spec.option] = value;
  }
  // One EPP address stays the single form (`extProc: 'host:port'`), as before replicas.
  if (Array.isArray(options.extProc) && options.extProc.length === 1) options.extProc = options.extProc[0];
  if (values.endpoints === undefined) throw new CliError('--endpoints', 'is required (comma-separated ip:port list)');
  options.port ??= CLI_DEFAULT_PORT;
  const result = options as unknown as GatewayOptions;
  // Semantic checks (addresses, ranges, combinations) live with the options; report them under the flag's name.
  try {
    resolveOptions(result);
  } catch (err) {
    if (err instanceof GatewayConfigError) {
      throw new CliError(flagFor(err.option), err.message.slice(err.option.length + 2));
    }
    throw err;
  }
  return { kind: 'run', options: result };
}
