/**
 * Command-line flags → `GatewayOptions`. Every flag takes `--flag value` or `--flag=value`; unknown flags, repeated
 * flags, stray arguments and bad values are errors that name the flag (nothing is silently ignored).
 */
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
  --ext-proc HOST:PORT        the EPP's ext_proc gRPC address. Without it every request is routed by the
                              fallback policy (a round-robin / session-hash baseline)
  --processing-mode MODE      request body mode: full-duplex (FULL_DUPLEX_STREAMED, default) or buffered
  --response-header-mode M    send (default) or skip
  --response-body-mode M      full-duplex (FULL_DUPLEX_STREAMED, default) or none
  --failure-mode-allow[=B]    fail open when the EPP is unreachable, errors or times out (default true;
                              false = answer 500, or 504 on a message timeout)
  --message-timeout-ms N      how long to wait for each EPP answer (default ${DEFAULTS.messageTimeoutMs})
  --hash-header NAME          fallback policy: consistent (ring) hash on this header, e.g. x-session-id,
                              instead of round robin
  --ring-size N               ring hash minimum ring size (default ${DEFAULTS.ringSize})
  --connect-timeout-ms N      upstream connect timeout (default ${DEFAULTS.connectTimeoutMs})
  --eject-ms N                after a connect failure the fallback policy avoids an endpoint this long
                              (default ${DEFAULTS.ejectMs}; 0 = never)
  --max-request-body-bytes N  largest request body sent through the EPP (default ${DEFAULTS.maxRequestBodyBytes})
  --ext-proc-bypass LIST      comma-separated "METHOD /path" or "/path" (exact path) that skip the EPP
                              (default "${DEFAULTS.extProcBypass.join(',')}"; "" = none)
  --shutdown-grace-ms N       on SIGTERM/SIGINT, how long in-flight requests may finish (default ${DEFAULTS.shutdownGraceMs})
  -h, --help                  show this help

Gateway endpoints: GET /healthz, GET /gateway/stats (JSON counters).
`;

export class CliError extends Error {
  constructor(readonly flag: string, detail: string) {
    super(`${flag}: ${detail}`);
    this.name = 'CliError';
  }
}

export type CliCommand = { readonly kind: 'help' } | { readonly kind: 'run'; readonly options: GatewayOptions };

type FlagKind = 'int' | 'string' | 'bool' | 'list';

interface FlagSpec {
  readonly kind: FlagKind;
  readonly option: keyof GatewayOptions;
  readonly choices?: readonly string[];
}

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  '--endpoints': { kind: 'list', option: 'endpoints' },
  '--port': { kind: 'int', option: 'port' },
  '--host': { kind: 'string', option: 'host' },
  '--ext-proc': { kind: 'string', option: 'extProc' },
  '--processing-mode': { kind: 'string', option: 'processingMode', choices: ['full-duplex', 'buffered'] },
  '--response-header-mode': { kind: 'string', option: 'responseHeaderMode', choices: ['send', 'skip'] },
  '--response-body-mode': { kind: 'string', option: 'responseBodyMode', choices: ['full-duplex', 'none'] },
  '--failure-mode-allow': { kind: 'bool', option: 'failureModeAllow' },
  '--message-timeout-ms': { kind: 'int', option: 'messageTimeoutMs' },
  '--hash-header': { kind: 'string', option: 'hashHeader' },
  '--ring-size': { kind: 'int', option: 'ringSize' },
  '--connect-timeout-ms': { kind: 'int', option: 'connectTimeoutMs' },
  '--eject-ms': { kind: 'int', option: 'ejectMs' },
  '--max-request-body-bytes': { kind: 'int', option: 'maxRequestBodyBytes' },
  '--ext-proc-bypass': { kind: 'list', option: 'extProcBypass' },
  '--shutdown-grace-ms': { kind: 'int', option: 'shutdownGraceMs' },
};

const OPTION_TO_FLAG = new Map(Object.entries(FLAGS).map(([flag, spec]) => [spec.option as string, flag]));

function parseValue(flag: string, spec: FlagSpec, value: string): unknown {
  switch (spec.kind) {
    case 'int':
      if (!/^\d+$/.test(value)) throw new CliError(flag, `expects a non-negative integer, got '${value}'`);
      return Number(value);
    case 'bool':
      if (value !== 'true' && value !== 'false') throw new CliError(flag, `expects true or false, got '${value}'`);
      return value === 'true';
    case 'list': {
      if (value.trim() === '') {
        if (flag === '--endpoints') throw new CliError(flag, 'expects at least one ip:port');
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

/** Parses argv (without `node` and the script). Throws `CliError` naming the flag. */
export function parseArgs(argv: readonly string[]): CliCommand {
  const options: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (!arg.startsWith('--')) throw new CliError(arg, 'unexpected argument (flags start with --; see --help)');
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    const spec = FLAGS[flag];
    if (!spec) throw new CliError(flag, 'unknown flag (see --help)');
    if (seen.has(flag)) throw new CliError(flag, 'given more than once');
    seen.add(flag);
    let value: string;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else if (spec.kind === 'bool') {
      // `--failure-mode-allow` alone means true; a following literal true/false is taken as its value.
      const next = argv[i + 1];
      if (next === 'true' || next === 'false') {
        value = next;
        i++;
      } else {
        value = 'true';
      }
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new CliError(flag, 'expects a value');
      value = next;
      i++;
    }
    options[spec.option] = parseValue(flag, spec, value);
  }
  if (!seen.has('--endpoints')) throw new CliError('--endpoints', 'is required (comma-separated ip:port list)');
  if (!seen.has('--port')) options.port = CLI_DEFAULT_PORT;
  const result = options as unknown as GatewayOptions;
  // Semantic checks (addresses, ranges, combinations) live with the options; report them under the flag's name.
  try {
    resolveOptions(result);
  } catch (err) {
    if (err instanceof GatewayConfigError) {
      throw new CliError(OPTION_TO_FLAG.get(err.option) ?? err.option, err.message.slice(err.option.length + 2));
    }
    throw err;
  }
  return { kind: 'run', options: result };
}
