/**
 * Gateway configuration: the programmatic options, their defaults (chosen to match the synthesized EnvoyFilter in
 * `dist/demo`), and validation that names the offending option. The CLI (`cli.ts`) maps flags onto these.
 */
import { isValidHeaderName } from './headers';
import { parseEndpoint, type Endpoint } from './endpoints';

export type RequestBodyMode = 'full-duplex' | 'buffered';
export type ResponseHeaderMode = 'send' | 'skip';
export type ResponseBodyMode = 'full-duplex' | 'none';

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
  /** The EPP's ext_proc address `host:port`. Without it every request is routed by the fallback policy. */
  readonly extProc?: string;
  /** Request body mode: `full-duplex` (FULL_DUPLEX_STREAMED, default, as the EnvoyFilter) or `buffered` (BUFFERED). */
  readonly processingMode?: RequestBodyMode;
  /** Response header mode (SEND, default, or SKIP). SKIP requires response body mode `none`. */
  readonly responseHeaderMode?: ResponseHeaderMode;
  /** Response body mode (FULL_DUPLEX_STREAMED, default, or NONE). */
  readonly responseBodyMode?: ResponseBodyMode;
  /** Envoy's `failure_mode_allow`. Default true. */
  readonly failureModeAllow?: boolean;
  /** Envoy's `message_timeout`. Default 10000 (the EnvoyFilter's 10s). */
  readonly messageTimeoutMs?: number;
  /** Use a ring hash on this request header as the fallback policy instead of round robin. */
  readonly hashHeader?: string;
  /** Ring hash `minimum_ring_size`. Default 1024 (Envoy's default). */
  readonly ringSize?: number;
  /** Upstream connect timeout. Default 10000 (Istio's default connect timeout). */
  readonly connectTimeoutMs?: number;
  /** After a connect failure, fallback policies avoid the endpoint this long (0 = never). Default 5000. */
  readonly ejectMs?: number;
  /** Largest request body accepted (413 above). Default 64 MiB, the EPP's own limit. */
  readonly maxRequestBodyBytes?: number;
  /**
   * Requests that skip ext_proc, as `METHOD /exact/path` or `/exact/path` (any method). Default `GET /v1/models`,
   * mirroring the EnvoyFilter's ExtProcPerRoute `disabled: true` on the models route.
   */
  readonly extProcBypass?: readonly string[];
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
  readonly extProc: string | null;
  readonly processingMode: RequestBodyMode;
  readonly responseHeaderMode: ResponseHeaderMode;
  readonly responseBodyMode: ResponseBodyMode;
  readonly failureModeAllow: boolean;
  readonly messageTimeoutMs: number;
  readonly hashHeader: string | null;
  readonly ringSize: number;
  readonly connectTimeoutMs: number;
  readonly ejectMs: number;
  readonly maxRequestBodyBytes: number;
  readonly extProcBypass: readonly BypassRule[];
  readonly shutdownGraceMs: number;
  readonly logger: GatewayLogger;
}

export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  processingMode: 'full-duplex' as RequestBodyMode,
  responseHeaderMode: 'send' as ResponseHeaderMode,
  responseBodyMode: 'full-duplex' as ResponseBodyMode,
  failureModeAllow: true,
  messageTimeoutMs: 10_000,
  ringSize: 1024,
  connectTimeoutMs: 10_000,
  ejectMs: 5_000,
  maxRequestBodyBytes: 64 * 1024 * 1024,
  extProcBypass: ['GET /v1/models'] as readonly string[],
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
  warn: (msg, fields) => process.stderr.write(`${JSON.stringify({ level: 'warn', msg, ...fields })}\n`),
};

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
  const processingMode = oneOf('processingMode', o.processingMode ?? DEFAULTS.processingMode, ['full-duplex', 'buffered'] as const);
  const responseHeaderMode = oneOf('responseHeaderMode', o.responseHeaderMode ?? DEFAULTS.responseHeaderMode, ['send', 'skip'] as const);
  const responseBodyMode = oneOf('responseBodyMode', o.responseBodyMode ?? DEFAULTS.responseBodyMode, ['full-duplex', 'none'] as const);
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
  const bypass: BypassRule[] = [];
  for (const raw of o.extProcBypass ?? DEFAULTS.extProcBypass) {
    const r = typeof raw === 'string' ? parseBypassRule(raw) : `not a string: ${JSON.stringify(raw)}`;
    if (typeof r === 'string') throw new GatewayConfigError('extProcBypass', r);
    bypass.push(r);
  }
  const host = o.host ?? DEFAULTS.host;
  if (typeof host !== 'string' || host === '') throw new GatewayConfigError('host', 'must be a non-empty address');
  return {
    endpoints,
    port: int('port', o.port ?? 0, 0, 65535),
    host,
    extProc: o.extProc === undefined ? null : checkHostPort('extProc', o.extProc),
    processingMode,
    responseHeaderMode,
    responseBodyMode,
    failureModeAllow,
    messageTimeoutMs: int('messageTimeoutMs', o.messageTimeoutMs ?? DEFAULTS.messageTimeoutMs, 1, 86_400_000),
    hashHeader,
    ringSize: int('ringSize', o.ringSize ?? DEFAULTS.ringSize, 1, 8_388_608),
    connectTimeoutMs: int('connectTimeoutMs', o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, 1, 3_600_000),
    ejectMs: int('ejectMs', o.ejectMs ?? DEFAULTS.ejectMs, 0, 3_600_000),
    maxRequestBodyBytes: int('maxRequestBodyBytes', o.maxRequestBodyBytes ?? DEFAULTS.maxRequestBodyBytes, 0, 1024 * 1024 * 1024),
    extProcBypass: bypass,
    shutdownGraceMs: int('shutdownGraceMs', o.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs, 0, 3_600_000),
    logger: o.logger ?? stderrLogger,
  };
}
