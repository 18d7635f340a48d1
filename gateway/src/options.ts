/**
 * Gateway configuration: the programmatic options, their defaults (chosen to match the synthesized EnvoyFilter in
 * `dist/demo`), and validation that names the offending option. The CLI (`cli.ts`) maps flags onto these.
 */
import {
  DEFAULT_ENVOY_SEMANTICS,
  envoySemantics,
  verifyProcessingModeConfig,
  type EnvoySemantics,
  type EnvoySemanticsVersion,
} from './envoy-semantics';
import { isValidHeaderName } from './headers';
import { parseEndpoint, type Endpoint } from './endpoints';
import { EXT_PROC_LB_POLICIES, OUTLIER_DETECTION_DEFAULTS, type ExtProcLbPolicy, type OutlierDetectionConfig } from './ext-proc-cluster';

export type RequestBodyMode = 'full-duplex' | 'buffered';
export type ResponseHeaderMode = 'send' | 'skip';
export type ResponseBodyMode = 'full-duplex' | 'none';
export type TrailerMode = 'send' | 'skip';
/** Where the processing mode is configured: the filter itself (validated by Envoy), or an ExtProcPerRoute on the vhost. */
export type ProcessingModeScope = 'filter' | 'vhost';

export interface GatewayLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  info?(msg: string, fields?: Record<string, unknown>): void;
}

export interface GatewayOptions {
  /** Upstream pool, `ip:port` (IPv6 bracketed). Required, at least one. */
  readonly endpoints: readonly string[];
  /** Listen port; 0 (the default here) picks a free one. */
  readonly port?: number;
  /** Listen address. Default `127.0.0.1`. */
  readonly host?: string;
  /**
   * The EPP's ext_proc address `host:port`, or several (the replicas behind the EPP Service: the endpoints of the cluster
   * the filter's `grpc_service` names), which the gateway load-balances streams over (`ext-proc-cluster.ts`). Without it
   * every request is routed by the fallback policy.
   */
  readonly extProc?: string | readonly string[];
  /**
   * How ext_proc streams are spread over several EPP addresses. Default `least-request`: Istio's default for every
   * outbound cluster (power of two choices on open streams); `round-robin` as with a DestinationRule `simple: ROUND_ROBIN`.
   */
  readonly extProcLbPolicy?: ExtProcLbPolicy;
  /**
   * Envoy outlier detection on the EPP cluster, as a DestinationRule's `trafficPolicy.outlierDetection` configures it:
   * `true` for Envoy's defaults, or the fields to set (the rest Envoy's defaults). Default off, as Istio leaves it
   * without a DestinationRule.
   */
  readonly extProcOutlierDetection?: boolean | Partial<OutlierDetectionConfig>;
  /**
   * Which Envoy release the gateway behaves as (`envoy-semantics.ts`): `1.35.0`, `1.35`, `1.36`, `1.37`, `1.38` or
   * `newest`. Default `1.35.0`, the Envoy of Istio 1.27.0, which the demo profile targets.
   */
  readonly envoySemantics?: EnvoySemanticsVersion | 'newest';
  /** Request body mode: `buffered` (BUFFERED, default, as the EnvoyFilter) or `full-duplex` (FULL_DUPLEX_STREAMED). */
  readonly processingMode?: RequestBodyMode;
  /**
   * `filter` (default): the modes are the filter's own, which Envoy validates. `vhost`: they are an ExtProcPerRoute
   * override on the virtual host (the EnvoyFilter's full-duplex shape), which Envoy does not validate.
   */
  readonly processingModeScope?: ProcessingModeScope;
  /** Request trailer mode. Default: `send` with full-duplex, `skip` with buffered, as the EnvoyFilter sets them. */
  readonly requestTrailerMode?: TrailerMode;
  /** Response header mode (SEND, default, or SKIP). SKIP requires response body mode `none`. */
  readonly responseHeaderMode?: ResponseHeaderMode;
  /** Response body mode (NONE, default, or FULL_DUPLEX_STREAMED). */
  readonly responseBodyMode?: ResponseBodyMode;
  /** Response trailer mode (SEND, default: keeps the stream open to the end of the exchange on Envoy >= 1.37). */
  readonly responseTrailerMode?: TrailerMode;
  /** Envoy's `failure_mode_allow`. Default true. */
  readonly failureModeAllow?: boolean;
  /** Envoy's `message_timeout`. Default 1000 (the EnvoyFilter's 1s). */
  readonly messageTimeoutMs?: number;
  /**
   * Envoy's `max_message_timeout`: the longest `override_message_timeout` the EPP may ask for while it holds an
   * answer (flow control); 0 (Envoy's default) ignores every override. Default 30000 (the EnvoyFilter's 30s) with
   * BUFFERED request bodies, 0 with FULL_DUPLEX_STREAMED (the EnvoyFilter sets none there).
   */
  readonly maxMessageTimeoutMs?: number;
  /**
   * The listener's `per_connection_buffer_limit_bytes`: a BUFFERED request body above it gets Envoy's 413. Default
   * 8 MiB, as the EnvoyFilter sets it.
   */
  readonly requestBodyBufferLimitBytes?: number;
  /** HCM `request_timeout`: the whole request received and passed on (EPP hold included). Default 60000; 0 = off. */
  readonly requestReceiveTimeoutMs?: number;
  /** HCM `stream_idle_timeout`: no byte either way for this long ends the request, on any route. Default 300000; 0 = off. */
  readonly idleTimeoutMs?: number;
  /** Route `timeout`: from the request's forwarding to the response's end. Default 0 = off (HTTPRoute 0s). */
  readonly requestTimeoutMs?: number;
  /**
   * HCM `common_http_protocol_options.idle_timeout`: a client connection with no request in flight for this long is
   * closed. Default 3600000 (Envoy's 1 h); 0 = off.
   */
  readonly connectionIdleTimeoutMs?: number;
  /**
   * Request headers the route removes before the request leaves for a pod, after the EPP has seen them: the HTTPRoute's
   * `RequestHeaderModifier` (Istio writes it as the route's `request_headers_to_remove`, which Envoy's router applies
   * after every HTTP filter, ext_proc included: `Router::Filter::decodeHeaders` → `finalizeRequestHeaders` @ v1.35.0).
   * Default: the manifests' `x-prefiller-host-port` and `x-prefiller-url` (`ROUTING_SIDECAR_CLIENT_HEADERS` in
   * lib/gateway.ts), which llm-d's routing sidecar on a decode pod would otherwise follow.
   */
  readonly requestHeadersToRemove?: readonly string[];
  /** Use a ring hash on this request header as the fallback policy instead of round robin. */
  readonly hashHeader?: string;
  /**
   * Serve HTTP/1.0 requests (the HCM's `accept_http_10`, which Istio sets only with PILOT_HTTP10 or the proxy's
   * ISTIO_META_HTTP10). Default false: 426 Upgrade Required, as Envoy answers.
   */
  readonly acceptHttp10?: boolean;
  /**
   * Carry HTTP/1.1 trailers, both ways: `Http1ProtocolOptions.enable_trailers` on the HCM and the decode cluster. Default
   * false, Envoy's default, which neither Istio's gateway nor kvroute's EnvoyFilter changes: Envoy's HTTP/1 codec then
   * ignores the trailers it parses and drops those it would encode (`source/common/http/http1/codec_impl.cc` @ v1.35.0
   * ConnectionImpl::onHeaderFieldImpl "Ignore trailers.", StreamEncoderImpl::encodeTrailersBase), so no trailer reaches
   * the EPP, the pod or the client.
   */
  readonly http1EnableTrailers?: boolean;
  /** Ring hash `minimum_ring_size`. Default 1024 (Envoy's default). */
  readonly ringSize?: number;
  /** Upstream connect timeout. Default 10000 (Istio's default connect timeout). */
  readonly connectTimeoutMs?: number;
  /**
   * After a connect failure, fallback policies avoid the endpoint this long (0 = never): a stand-in for a
   * DestinationRule's `outlierDetection`, which kvroute's decode DestinationRule does not set, so Envoy ejects
   * nothing. Default 0 (5000 until session 35).
   */
  readonly ejectMs?: number;
  /**
   * The retry back-off's base interval: a retry waits a random time below 25 ms, the next below 50 ms (`retryBackOffMs`
   * in upstream.ts). Default 25, Envoy's default `retry_back_off` (Istio 1.27 sets none); 0 retries at once.
   */
  readonly retryBackOffBaseMs?: number;
  /**
   * The route retry policy's `num_retries`: connect-failure retries after the first attempt. Default 2, the policy
   * Istio writes for a route without its own (istio/istio `pilot/pkg/networking/core/route/retry/retry.go` @ 1.27.0
   * defaultPolicy L44-51, unchanged through 1.30.0); an HTTPRoute `retry.attempts` would set it.
   */
  readonly maxRetries?: number;
  /**
   * Largest FULL_DUPLEX_STREAMED request body (413 above): the gateway's own guard, Envoy has none in that mode; the
   * EPP refuses the same size itself. Default 64 MiB.
   */
  readonly maxRequestBodyBytes?: number;
  /**
   * Requests that skip ext_proc, as `METHOD /exact/path` or `/exact/path` (any method). Default `GET /v1/models`,
   * mirroring the EnvoyFilter's ExtProcPerRoute `disabled: true` on the models route.
   */
  readonly extProcBypass?: readonly string[];
  /**
   * The HTTPRoute's path prefixes (Gateway API PathPrefix: whole path elements, `/v1` matches `/v1` and `/v1/…`, not
   * `/v1beta`); with the bypass paths, the routes the gateway has. Any other path (the client's, or the EPP's `:path`
   * after a `clear_route_cache`) gets Envoy's 404 for a request no route matches (`route_not_found`), after the
   * ext_proc filter ran, as the HCM runs its filters before the router finds no route. Default `/v1`, the demo
   * HTTPRoute's (`lib/gateway.ts`); `[]` routes every path.
   */
  readonly routePrefixes?: readonly string[];
  /** On close(), how long in-flight requests may run before their connections are cut. Default 10000. */
  readonly shutdownGraceMs?: number;
  readonly logger?: GatewayLogger;
}

export interface BypassRule {
  readonly method?: string;
  readonly path: string;
}

export interface ResolvedOptions {
  readonly endpoints: readonly Endpoint[];
  readonly port: number;
  readonly host: string;
  /** The EPP addresses joined by commas (null without an EPP). */
  readonly extProc: string | null;
  readonly extProcTargets: readonly string[];
  readonly extProcLbPolicy: ExtProcLbPolicy;
  readonly extProcOutlierDetection: OutlierDetectionConfig | null;
  readonly envoySemantics: EnvoySemantics;
  readonly processingMode: RequestBodyMode;
  readonly processingModeScope: ProcessingModeScope;
  readonly requestTrailerMode: TrailerMode;
  readonly responseHeaderMode: ResponseHeaderMode;
  readonly responseBodyMode: ResponseBodyMode;
  readonly responseTrailerMode: TrailerMode;
  readonly failureModeAllow: boolean;
  readonly messageTimeoutMs: number;
  readonly maxMessageTimeoutMs: number;
  readonly requestBodyBufferLimitBytes: number;
  readonly requestReceiveTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly connectionIdleTimeoutMs: number;
  readonly requestHeadersToRemove: readonly string[];
  readonly hashHeader: string | null;
  readonly acceptHttp10: boolean;
  readonly http1EnableTrailers: boolean;
  readonly ringSize: number;
  readonly connectTimeoutMs: number;
  readonly ejectMs: number;
  readonly retryBackOffBaseMs: number;
  readonly maxRetries: number;
  readonly maxRequestBodyBytes: number;
  readonly extProcBypass: readonly BypassRule[];
  readonly routePrefixes: readonly string[];
  readonly shutdownGraceMs: number;
  readonly logger: GatewayLogger;
}

export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  envoySemantics: DEFAULT_ENVOY_SEMANTICS,
  processingMode: 'buffered' as RequestBodyMode,
  processingModeScope: 'filter' as ProcessingModeScope,
  responseHeaderMode: 'send' as ResponseHeaderMode,
  responseBodyMode: 'none' as ResponseBodyMode,
  responseTrailerMode: 'send' as TrailerMode,
  failureModeAllow: true,
  messageTimeoutMs: 1000,
  /**
   * The demo EnvoyFilter's `max_message_timeout` (`lib/ext-proc.ts` resolveMaxMessageTimeout: 30s with BUFFERED
   * request bodies, none with FULL_DUPLEX_STREAMED), like every other default here; Envoy's own default is 0
   * (`DefaultMaxMessageTimeoutMs`, `source/extensions/filters/http/ext_proc/config.h` @ v1.35.0), which ignores every
   * `override_message_timeout`. `resolveOptions` applies 0 with `processingMode: 'full-duplex'`.
   */
  maxMessageTimeoutMs: 30_000,
  requestBodyBufferLimitBytes: 8 * 1024 * 1024,
  requestReceiveTimeoutMs: 60_000,
  idleTimeoutMs: 300_000,
  requestTimeoutMs: 0,
  connectionIdleTimeoutMs: 3_600_000,
  ringSize: 1024,
  connectTimeoutMs: 10_000,
  ejectMs: 0,
  retryBackOffBaseMs: 25,
  maxRetries: 2,
  maxRequestBodyBytes: 64 * 1024 * 1024,
  extProcBypass: ['GET /v1/models'] as readonly string[],
  routePrefixes: ['/v1'] as readonly string[],
  requestHeadersToRemove: ['x-prefiller-host-port', 'x-prefiller-url'] as readonly string[],
  shutdownGraceMs: 10_000,
});

/** A configuration error; `option` is the option (or CLI flag) it is about. */
export class GatewayConfigError extends Error {
  constructor(readonly option: string, detail: string) {
    super(`${option}: ${detail}`);
    this.name = 'GatewayConfigError';
  }
}

const METHOD = /^[A-Z][A-Z0-9_-]*$/;
const TRAILER_MODES = ['send', 'skip'] as const;
/** The longest timeout accepted, in ms (a day). */
const MAX_TIMEOUT_MS = 86_400_000;

export function parseBypassRule(raw: string): BypassRule | string {
  const s = raw.trim();
  const parts = s.split(/\s+/);
  if (parts.length === 1 && parts[0].startsWith('/')) return { path: parts[0] };
  if (parts.length === 2 && METHOD.test(parts[0]) && parts[1].startsWith('/')) return { method: parts[0], path: parts[1] };
  return `'${raw}' is not 'METHOD /path' or '/path'`;
}

/** `host:port` of a gRPC target (a hostname, IPv4, or bracketed IPv6). */
export function checkHostPort(option: string, value: string): string {
  const parsed = parseEndpoint(value);
  if (typeof parsed === 'string') throw new GatewayConfigError(option, parsed);
  return parsed.address;
}

function int(option: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new GatewayConfigError(option, `must be an integer in ${min}..${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

function oneOf<T extends string>(option: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new GatewayConfigError(option, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
  }
  return v as T;
}

const stderrLogger: GatewayLogger = {
  // With the time it was written, as Envoy's lines (`--log-format`'s default starts `[%Y-%m-%d %T.%e]`) and the EPP's
  // (`ts`): the bench stack appends each process's stderr to one file across restarts.
  warn: (msg, fields) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level: 'warn', msg, ...fields })}\n`),
};

function resolveExtProcTargets(v: unknown): string[] {
  if (v === undefined) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0) throw new GatewayConfigError('extProc', 'must be host:port or a non-empty list of them');
  const targets: string[] = [];
  for (const raw of list) {
    if (typeof raw !== 'string') throw new GatewayConfigError('extProc', `not a string: ${JSON.stringify(raw)}`);
    const t = checkHostPort('extProc', raw);
    if (targets.includes(t)) throw new GatewayConfigError('extProc', `${t} is listed twice`);
    targets.push(t);
  }
  return targets;
}

const OUTLIER_KEYS = Object.keys(OUTLIER_DETECTION_DEFAULTS) as (keyof OutlierDetectionConfig)[];

/** Outlier detection with Envoy's defaults for what is not given; `max_ejection_time` defaults to max(300 s, base). */
function resolveOutlierDetection(v: unknown): OutlierDetectionConfig | null {
  if (v === undefined || v === false) return null;
  if (v === true) return OUTLIER_DETECTION_DEFAULTS;
  if (typeof v !== 'object' || v === null) throw new GatewayConfigError('extProcOutlierDetection', 'must be a boolean or an object');
  const given = v as Record<string, unknown>;
  for (const k of Object.keys(given)) {
    if (!(OUTLIER_KEYS as string[]).includes(k)) {
      throw new GatewayConfigError('extProcOutlierDetection', `unknown field '${k}' (allowed: ${OUTLIER_KEYS.join(', ')})`);
    }
  }
  const field = (k: keyof OutlierDetectionConfig, min: number, max: number, dflt: number) =>
    int(`extProcOutlierDetection.${k}`, given[k] ?? dflt, min, max);
  const baseEjectionTimeMs = field('baseEjectionTimeMs', 1, 3_600_000, OUTLIER_DETECTION_DEFAULTS.baseEjectionTimeMs);
  const maxEjectionTimeMs = field('maxEjectionTimeMs', 1, 86_400_000, Math.max(OUTLIER_DETECTION_DEFAULTS.maxEjectionTimeMs, baseEjectionTimeMs));
  // Envoy refuses the cluster otherwise (DetectorImpl::create).
  if (maxEjectionTimeMs < baseEjectionTimeMs) {
    throw new GatewayConfigError('extProcOutlierDetection.maxEjectionTimeMs', "outlier detector's max_ejection_time cannot be smaller than base_ejection_time");
  }
  return {
    consecutive5xx: field('consecutive5xx', 0, 1_000_000, OUTLIER_DETECTION_DEFAULTS.consecutive5xx),
    consecutiveGatewayFailure: field('consecutiveGatewayFailure', 0, 1_000_000, OUTLIER_DETECTION_DEFAULTS.consecutiveGatewayFailure),
    intervalMs: field('intervalMs', 1, 3_600_000, OUTLIER_DETECTION_DEFAULTS.intervalMs),
    baseEjectionTimeMs,
    maxEjectionTimeMs,
    maxEjectionPercent: field('maxEjectionPercent', 0, 100, OUTLIER_DETECTION_DEFAULTS.maxEjectionPercent),
  };
}

/** Validates options and fills in defaults. Throws `GatewayConfigError` naming the option. */
export function resolveOptions(o: GatewayOptions): ResolvedOptions {
  if (!o || !Array.isArray(o.endpoints) || o.endpoints.length === 0) {
    throw new GatewayConfigError('endpoints', 'at least one upstream endpoint (ip:port) is required');
  }
  const endpoints: Endpoint[] = [];
  for (const raw of o.endpoints) {
    if (typeof raw !== 'string') throw new GatewayConfigError('endpoints', `not a string: ${JSON.stringify(raw)}`);
    const e = parseEndpoint(raw);
    if (typeof e === 'string') throw new GatewayConfigError('endpoints', e);
    if (endpoints.some((x) => x.address === e.address)) throw new GatewayConfigError('endpoints', `${e.address} is listed twice`);
    endpoints.push(e);
  }
  if (endpoints.length > 65535) throw new GatewayConfigError('endpoints', 'too many endpoints');
  const version: unknown = o.envoySemantics ?? DEFAULTS.envoySemantics;
  const semantics = typeof version === 'string' ? envoySemantics(version) : 'must be a string';
  if (typeof semantics === 'string') throw new GatewayConfigError('envoySemantics', semantics);
  const processingMode = oneOf('processingMode', o.processingMode ?? DEFAULTS.processingMode, ['full-duplex', 'buffered'] as const);
  const processingModeScope = oneOf('processingModeScope', o.processingModeScope ?? DEFAULTS.processingModeScope, ['filter', 'vhost'] as const);
  const requestTrailerMode = oneOf('requestTrailerMode', o.requestTrailerMode ?? (processingMode === 'full-duplex' ? 'send' : 'skip'), TRAILER_MODES);
  const responseHeaderMode = oneOf('responseHeaderMode', o.responseHeaderMode ?? DEFAULTS.responseHeaderMode, ['send', 'skip'] as const);
  const responseBodyMode = oneOf('responseBodyMode', o.responseBodyMode ?? DEFAULTS.responseBodyMode, ['full-duplex', 'none'] as const);
  const responseTrailerMode = oneOf('responseTrailerMode', o.responseTrailerMode ?? DEFAULTS.responseTrailerMode, TRAILER_MODES);
  if (responseHeaderMode === 'skip' && responseBodyMode !== 'none') {
    throw new GatewayConfigError('responseHeaderMode', "'skip' requires the response body mode 'none' (the EPP expects response headers before a response body)");
  }
  const failureModeAllow = o.failureModeAllow ?? DEFAULTS.failureModeAllow;
  if (typeof failureModeAllow !== 'boolean') throw new GatewayConfigError('failureModeAllow', 'must be a boolean');
  let hashHeader: string | null = null;
  if (o.hashHeader !== undefined) {
    if (typeof o.hashHeader !== 'string' || !isValidHeaderName(o.hashHeader.toLowerCase()) || o.hashHeader.startsWith(':')) {
      throw new GatewayConfigError('hashHeader', `not a valid header name: ${JSON.stringify(o.hashHeader)}`);
    }
    hashHeader = o.hashHeader.toLowerCase();
  }
  const requestHeadersToRemove: string[] = [];
  for (const name of o.requestHeadersToRemove ?? DEFAULTS.requestHeadersToRemove) {
    if (typeof name !== 'string' || !isValidHeaderName(name.toLowerCase()) || name.startsWith(':')) {
      throw new GatewayConfigError('requestHeadersToRemove', `not a header name a route may remove: ${JSON.stringify(name)}`);
    }
    requestHeadersToRemove.push(name.toLowerCase());
  }
  const bypass: BypassRule[] = [];
  for (const raw of o.extProcBypass ?? DEFAULTS.extProcBypass) {
    const r = typeof raw === 'string' ? parseBypassRule(raw) : `not a string: ${JSON.stringify(raw)}`;
    if (typeof r === 'string') throw new GatewayConfigError('extProcBypass', r);
    bypass.push(r);
  }
  const routePrefixes: string[] = [];
  for (const prefix of o.routePrefixes ?? DEFAULTS.routePrefixes) {
    if (typeof prefix !== 'string' || !prefix.startsWith('/') || /[?#\s]/.test(prefix)) {
      throw new GatewayConfigError('routePrefixes', `not a path prefix (it starts with "/" and holds no query): ${JSON.stringify(prefix)}`);
    }
    routePrefixes.push(prefix);
  }
  const host = o.host ?? DEFAULTS.host;
  const extProcTargets = resolveExtProcTargets(o.extProc);
  if (typeof host !== 'string' || host === '') throw new GatewayConfigError('host', 'must be a non-empty address');
  return {
    endpoints,
    port: int('port', o.port ?? 0, 0, 65535),
    host,
    extProc: extProcTargets.length === 0 ? null : extProcTargets.join(','),
    extProcTargets,
    extProcLbPolicy: oneOf('extProcLbPolicy', o.extProcLbPolicy ?? 'least-request', EXT_PROC_LB_POLICIES),
    extProcOutlierDetection: resolveOutlierDetection(o.extProcOutlierDetection),
    envoySemantics: semantics,
    processingMode,
    processingModeScope,
    requestTrailerMode,
    responseHeaderMode,
    responseBodyMode,
    responseTrailerMode,
    failureModeAllow,
    messageTimeoutMs: int('messageTimeoutMs', o.messageTimeoutMs ?? DEFAULTS.messageTimeoutMs, 1, MAX_TIMEOUT_MS),
    // The proto's bound: `max_message_timeout` lte 3600s (ext_proc.proto @ v1.35.0).
    maxMessageTimeoutMs: int('maxMessageTimeoutMs', o.maxMessageTimeoutMs ?? (processingMode === 'full-duplex' ? 0 : DEFAULTS.maxMessageTimeoutMs), 0, 3_600_000),
    requestBodyBufferLimitBytes: int('requestBodyBufferLimitBytes', o.requestBodyBufferLimitBytes ?? DEFAULTS.requestBodyBufferLimitBytes, 1, 1024 * 1024 * 1024),
    requestReceiveTimeoutMs: int('requestReceiveTimeoutMs', o.requestReceiveTimeoutMs ?? DEFAULTS.requestReceiveTimeoutMs, 0, MAX_TIMEOUT_MS),
    idleTimeoutMs: int('idleTimeoutMs', o.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs, 0, MAX_TIMEOUT_MS),
    requestTimeoutMs: int('requestTimeoutMs', o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs, 0, MAX_TIMEOUT_MS),
    connectionIdleTimeoutMs: int('connectionIdleTimeoutMs', o.connectionIdleTimeoutMs ?? DEFAULTS.connectionIdleTimeoutMs, 0, MAX_TIMEOUT_MS),
    requestHeadersToRemove,
    hashHeader,
    acceptHttp10: o.acceptHttp10 === true,
    http1EnableTrailers: o.http1EnableTrailers === true,
    ringSize: int('ringSize', o.ringSize ?? DEFAULTS.ringSize, 1, 8_388_608),
    connectTimeoutMs: int('connectTimeoutMs', o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, 1, 3_600_000),
    ejectMs: int('ejectMs', o.ejectMs ?? DEFAULTS.ejectMs, 0, 3_600_000),
    retryBackOffBaseMs: int('retryBackOffBaseMs', o.retryBackOffBaseMs ?? DEFAULTS.retryBackOffBaseMs, 0, 60_000),
    maxRetries: int('maxRetries', o.maxRetries ?? DEFAULTS.maxRetries, 0, 1_000),
    maxRequestBodyBytes: int('maxRequestBodyBytes', o.maxRequestBodyBytes ?? DEFAULTS.maxRequestBodyBytes, 0, 1024 * 1024 * 1024),
    extProcBypass: bypass,
    routePrefixes,
    shutdownGraceMs: int('shutdownGraceMs', o.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs, 0, 3_600_000),
    logger: o.logger ?? stderrLogger,
  };
}

/**
 * What Envoy of the chosen release says to the ext_proc filter these options describe: a `GatewayConfigError` with
 * Envoy's own text when it would refuse it (the listener NACKed; `config.cc` verifyProcessingModeConfig), else null.
 * Only with an EPP: without one there is no ext_proc filter.
 */
export function envoyConfigRejection(o: ResolvedOptions): GatewayConfigError | null {
  if (o.extProc === null) return null;
  const s = o.envoySemantics;
  const rejection = verifyProcessingModeConfig({
    requestBodyMode: o.processingMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'BUFFERED',
    requestTrailerMode: o.requestTrailerMode === 'send' ? 'SEND' : 'SKIP',
    responseBodyMode: o.responseBodyMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'NONE',
    responseTrailerMode: o.responseTrailerMode === 'send' ? 'SEND' : 'SKIP',
    failureModeAllow: o.failureModeAllow,
    scope: o.processingModeScope,
  }, s);
  if (!rejection) return null;
  return new GatewayConfigError(rejection.option, `Envoy ${s.version} (Istio ${s.istio}) rejects this ext_proc filter: ${rejection.message}`);
}
