/**
 * `startGateway`: the HTTP/1.1 listener, its own endpoints (`/healthz`, `/gateway/stats`, and Envoy's
 * `/stats/prometheus`), and the shared parts
 * every request uses (endpoint pool, fallback policy, keep-alive agent, the ext_proc channel, counters).
 */
import * as http from 'http';
import type { AddressInfo } from 'net';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import { monotonicMs } from './clock';
import { Downstream, SERVER_NAME } from './downstream';
import { EndpointPool, RingHash, RoundRobin, type FallbackPolicy } from './endpoints';
import { Exchange, type ExchangeContext } from './exchange';
import { ExtProcCluster, type ExtProcCounters } from './ext-proc-cluster';
import { ExtProcClient } from './extproc-client';
import { DEFAULT_HCM_STAT_PREFIX, ENVOY_STATS_PATH, envoyPrometheusText, extProcCounterValues } from './envoy-stats';
import { EnvoyFailurePolicy } from './failure-policy';
import { envoyConfigRejection, resolveOptions, type GatewayOptions, type ResolvedOptions } from './options';
import { StatsCollector, type GatewayStats, type TimeoutKind } from './stats';

export const HEALTH_PATH = '/healthz';
export const STATS_PATH = '/gateway/stats';
/**
 * `PUT` `{"members": ["host:port", ...]}`: the EPP cluster's endpoint set, as Istio's EDS would push it from the EPP
 * Service's ready endpoints (a harness playing Kubernetes calls it when a replica dies or becomes ready). Envoy has no
 * such admin call; it gets the same update over xDS.
 */
export const EXT_PROC_MEMBERS_PATH = '/gateway/ext-proc/members';

export interface Gateway {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  readonly host: string;
  /** The options after defaults and validation. */
  readonly options: ResolvedOptions;
  stats(): GatewayStats;
  /**
   * Envoy's ext_proc filter counters as the release the gateway plays has them (`streams_started`,
   * `failure_mode_allowed`, `message_timeouts`, …; `envoy-stats.ts`), the values `GET /stats/prometheus` serves.
   * Empty without an EPP: the filter is not configured then.
   */
  envoyStats(): Record<string, number>;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to `shutdownGraceMs`, then cuts what is
   * left; closes the ext_proc channel and the upstream connections. Idempotent.
   */
  close(): Promise<void>;
}

/** The HCM's default request header limits (`max_request_headers_count`, `max_request_headers_kb`). */
export const MAX_REQUEST_HEADERS_COUNT = 100;
export const MAX_REQUEST_HEADERS_KB = 60;

/**
 * Whether Envoy's HTTP/1 codec would refuse this request head: more header fields than the count limit, or more bytes
 * than the size limit in the codec's count, the request URL plus every name and value (ServerConnectionImpl::
 * getHeadersSize adds `request_url_.size()` to ConnectionImpl::getHeadersSize, `source/common/http/http1/codec_impl.cc`
 * @ v1.35.0).
 */
function requestHeadersTooLarge(url: string, raw: readonly string[]): boolean {
  if (raw.length / 2 > MAX_REQUEST_HEADERS_COUNT) return true;
  let bytes = Buffer.byteLength(url, 'latin1');
  for (const part of raw) bytes += Buffer.byteLength(part, 'latin1');
  return bytes > MAX_REQUEST_HEADERS_KB * 1024;
}

/** Extra buffer room for a gRPC message around the largest body (buffered, or the full-duplex cap). */
const GRPC_MESSAGE_OVERHEAD = 1024 * 1024;
const WARN_INTERVAL_MS = 1000;

function statusCodeResolver(): (code: string | number | undefined) => number {
  const values = loadEnvoyApi().root.lookupEnum('envoy.type.v3.StatusCode').values;
  return (code) => {
    if (typeof code === 'number') return Number.isInteger(code) ? code : 0;
    if (typeof code === 'string') return values[code] ?? (/^\d+$/.test(code) ? Number(code) : 0);
    return 0;
  };
}

/** At most one log line per key per second; the next one says how many were suppressed. */
function throttledWarn(opts: ResolvedOptions): ExchangeContext['warn'] {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (key, msg, fields) => {
    const now = monotonicMs();
    const entry = last.get(key);
    if (entry && now - entry.at < WARN_INTERVAL_MS) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    last.set(key, { at: now, suppressed: 0 });
    if (last.size > 10_000) last.clear();
    try {
      opts.logger.warn(msg, suppressed > 0 ? { ...fields, suppressed } : fields);
    } catch {
      // a logger must not break a request
    }
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, head: boolean): void {
  const bytes = Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, 'cache-control': 'no-store' });
  res.end(head ? undefined : bytes);
}

/**
 * The HTTP/1 codec's protocol error (ServerConnectionImpl::sendProtocolError, `source/common/http/http1/codec_impl.cc`
 * @ v1.35.0): the code's name as a text body, the connection closed. Since `early_errors_via_hcm` (Envoy 1.20; its
 * legacy path removed in 1.22) it goes out as the HCM's local reply, so it carries the HCM's `server` header too.
 */
function codecErrorReply(status: number): { body: Buffer; headers: Record<string, string> } {
  return closingReply(http.STATUS_CODES[status] ?? '');
}

/** A text reply after which the connection closes, with the HCM's headers. */
function closingReply(text: string): { body: Buffer; headers: Record<string, string> } {
  const body = Buffer.from(text);
  return { body, headers: { 'content-length': String(body.length), 'content-type': 'text/plain', server: SERVER_NAME, connection: 'close' } };
}

/** `reply` as bytes for a socket no `ServerResponse` owns. */
function rawReply(status: number, reply: { body: Buffer; headers: Record<string, string> }): Buffer {
  const lines = [...Object.entries(reply.headers), ['date', new Date().toUTCString()]].map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return Buffer.concat([Buffer.from(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n${lines}\r\n`, 'latin1'), reply.body]);
}

/**
 * Starts the gateway. Throws `GatewayConfigError` for invalid options, and for an ext_proc filter the chosen Envoy
 * release would refuse (the message is Envoy's own), before anything listens.
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const opts = resolveOptions(options);
  const rejection = envoyConfigRejection(opts);
  if (rejection) throw rejection;
  const pool = new EndpointPool(opts.endpoints, opts.ejectMs);
  const fallback: FallbackPolicy = opts.hashHeader ? new RingHash(pool, opts.ringSize) : new RoundRobin(pool);
  const stats = new StatsCollector();
  const agent = new http.Agent({
    keepAlive: true,
    keepAliveMsecs: 1000,
    maxSockets: Infinity,
    maxFreeSockets: 1024,
    scheduling: 'lifo',
    // Idle pooled connections are dropped after 4 s, before a typical upstream keep-alive timeout (uvicorn: 5 s)
    // closes them under us. (On a busy socket this only emits 'timeout', which the gateway ignores.)
    timeout: 4000,
  });
  // Loads and caches the protos now, so the first request does not pay for it (and a broken install fails here).
  const statusCodeOf = statusCodeResolver();
  const warn = throttledWarn(opts);
  // One channel (HTTP/2 connection) per EPP replica, as Envoy keeps a connection pool per host of the EPP cluster.
  const newClient = (target: string): ExtProcClient => new ExtProcClient({
    target,
    messageTimeoutMs: opts.messageTimeoutMs,
    maxMessageBytes: Math.max(opts.maxRequestBodyBytes, opts.requestBodyBufferLimitBytes) + GRPC_MESSAGE_OVERHEAD,
  });
  const extProc = opts.extProcTargets.length > 0
    ? new ExtProcCluster(opts.extProcTargets.map((target) => ({ address: target, client: newClient(target) })), {
      newClient,
      lbPolicy: opts.extProcLbPolicy,
      outlierDetection: opts.extProcOutlierDetection,
      onEjection: (address, ejected, type) => warn(`outlier-${address}-${ejected}`,
        ejected ? 'EPP replica ejected (outlier detection)' : 'EPP replica unejected', { extProc: address, ...(type ? { type } : {}) }),
    })
    : null;
  const sum = (f: (c: ExtProcCounters) => number): number => (extProc ? extProc.counters.reduce((a, c) => a + f(c), 0) : 0);
  const exchanges = new Set<Exchange>();
  const idleWaiters: (() => void)[] = [];
  let closing: Promise<void> | undefined;

  const ctx: ExchangeContext = {
    opts,
    pool,
    fallback,
    extProc,
    agent,
    stats,
    failurePolicy: new EnvoyFailurePolicy(opts.envoySemantics, {
      requestFullDuplex: opts.processingMode === 'full-duplex',
      responseFullDuplex: opts.responseBodyMode === 'full-duplex',
      failureModeAllow: opts.failureModeAllow,
    }),
    statusCodeOf,
    warn,
    done: (x) => {
      exchanges.delete(x);
      if (exchanges.size === 0) for (const w of idleWaiters.splice(0)) w();
    },
  };

  const snapshot = (): GatewayStats => stats.snapshot(pool, {
    target: opts.extProc,
    envoySemantics: opts.envoySemantics.version,
    requestBodyMode: opts.processingMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'BUFFERED',
    requestTrailerMode: opts.requestTrailerMode === 'send' ? 'SEND' : 'SKIP',
    responseHeaderMode: opts.responseHeaderMode === 'send' ? 'SEND' : 'SKIP',
    responseBodyMode: opts.responseBodyMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'NONE',
    responseTrailerMode: opts.responseTrailerMode === 'send' ? 'SEND' : 'SKIP',
    failureModeAllow: opts.failureModeAllow,
    streamsOpened: sum((c) => c.streamsOpened),
    openStreams: sum((c) => c.openSessions),
    messagesSent: sum((c) => c.messagesSent),
    messagesReceived: sum((c) => c.messagesReceived),
    cluster: extProc?.stats() ?? null,
  }, fallback.name);

  const envoyStats = (): Record<string, number> => (extProc ? extProcCounterValues(opts.envoySemantics, stats.envoy, {
    streams_started: sum((c) => c.streamsStarted),
    stream_msgs_sent: sum((c) => c.messagesSent),
    // The filter counts the closes Envoy counts in its own callbacks; the session those of live streams it closed.
    streams_closed: sum((c) => c.streamsClosed) + stats.envoy.get('streams_closed'),
  }) : {});

  const updateMembers = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.method !== 'PUT') {
      res.writeHead(405, { allow: 'PUT', 'content-length': 0 });
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 65536) chunks.push(c);
    });
    req.on('end', () => {
      if (!extProc) return sendJson(res, 404, { error: 'no EPP cluster: the gateway runs without --ext-proc' }, false);
      let members: unknown;
      try {
        members = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { members?: unknown }).members;
      } catch {
        members = undefined;
      }
      if (size > 65536 || !Array.isArray(members) || members.some((m) => typeof m !== 'string')) {
        return sendJson(res, 400, { error: 'body must be {"members": ["host:port", ...]}' }, false);
      }
      const unknown = extProc.setMembers(members as string[]);
      if (unknown.length > 0) {
        return sendJson(res, 400, { error: `not an EPP address of this gateway: ${unknown.join(', ')} (known: ${opts.extProcTargets.join(', ')})` }, false);
      }
      sendJson(res, 200, extProc.stats(), false);
    });
  };

  /** The HTTP/1 codec's protocol error (ServerConnectionImpl::sendProtocolError): the code's name as a text body, closed. */
  const protocolError = (req: http.IncomingMessage, res: http.ServerResponse, status: number): void => {
    const { body, headers } = codecErrorReply(status);
    stats.status(status);
    res.shouldKeepAlive = false;
    res.writeHead(status, headers);
    res.end(body);
    req.resume();
  };

  /** Requests whose `Expect: 100-continue` the HCM answers (see `checkContinue` below). */
  const expectsContinue = new WeakSet<http.IncomingMessage>();
  /**
   * Envoy's HCM answers `Expect: 100-continue` in ActiveStream::decodeHeaders (`conn_manager_impl.cc` @ v1.35.0),
   * before its own checks (missing Host, path, route) but after the HTTP/1 codec accepted the head: a request the codec
   * refuses (431, 501, 426) gets its protocol error alone, and its client sends no body into a closing connection.
   */
  const answerExpectContinue = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (expectsContinue.delete(req)) res.writeContinue();
  };

  const idleTrackers = new WeakMap<object, { start(req: http.IncomingMessage): void; end(): void }>();
  /** When each request's head began to arrive (`performance.now()`): the start of its stream in Envoy. */
  const streamStarts = new WeakMap<http.IncomingMessage, number>();
  const server = http.createServer({
    // Node's keep-alive timer would close an idle connection after this and advertise `Keep-Alive: timeout=…`, which
    // Envoy does not send: off, and the HCM's connection idle timeout below instead.
    keepAliveTimeout: 0,
    // Envoy's own stream timeouts (HCM request_timeout and stream_idle_timeout, route timeout) are the gateway's, per
    // exchange (`timeouts.ts`) and, while a request head comes in, per connection (below); Node's must not answer first.
    requestTimeout: 0,
    headersTimeout: 0,
    // Node answers a Host-less HTTP/1.1 request itself (400, no `server` header, connection closed); Envoy's HCM
    // answers it as a local reply (below).
    requireHostHeader: false,
    // Node's own 16 KiB header limit would answer before Envoy's 60 KiB one (checked per request below).
    maxHeaderSize: 2 * MAX_REQUEST_HEADERS_KB * 1024,
  }, (req, res) => {
    // A connection answered 408 while a head was coming in takes nothing the rest of that head would complete.
    if (req.socket.writableEnded) {
      req.socket.destroy();
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === EXT_PROC_MEMBERS_PATH || path === HEALTH_PATH || path === STATS_PATH || path === ENVOY_STATS_PATH) {
      answerExpectContinue(req, res);
    }
    if (path === EXT_PROC_MEMBERS_PATH) {
      updateMembers(req, res);
      return;
    }
    if (path === HEALTH_PATH || path === STATS_PATH || path === ENVOY_STATS_PATH) {
      const head = req.method === 'HEAD';
      if (req.method !== 'GET' && !head) {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 });
        res.end();
        return;
      }
      if (path === HEALTH_PATH) sendJson(res, closing ? 503 : 200, { status: closing ? 'shutting down' : 'ok' }, head);
      else if (path === STATS_PATH) sendJson(res, 200, snapshot(), head);
      else {
        // Envoy's admin handler answers text/plain in the Prometheus text format 0.0.4.
        const bytes = Buffer.from(envoyPrometheusText(envoyStats(), DEFAULT_HCM_STAT_PREFIX));
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': bytes.length, 'cache-control': 'no-store' });
        res.end(head ? undefined : bytes);
      }
      return;
    }
    if (closing) res.shouldKeepAlive = false;
    if (!(req.httpVersionMajor === 1 && req.httpVersionMinor === 1) && !opts.acceptHttp10) {
      // Envoy's HTTP/1 codec takes every version but 1.1 for HTTP/1.0 ("basically anything which is not HTTP/1.1") and
      // refuses it unless the HCM accepts HTTP/1.0 (ServerConnectionImpl::checkProtocolVersion:
      // `if (!codec_settings_.accept_http_10_) { error_code_ = Http::Code::UpgradeRequired; ... sendProtocolError }`,
      // `source/common/http/http1/codec_impl.cc`), and Istio sets accept_http_10 on a gateway only with PILOT_HTTP10 or
      // the proxy's ISTIO_META_HTTP10, both off by default (pilot/pkg/networking/core/gateway.go @ 1.27.0 L700-703,
      // pilot/pkg/features/pilot.go L30-34): 426 with the code's name as the body, the connection closed.
      protocolError(req, res, 426);
      return;
    }
    const transferEncoding = req.headers['transfer-encoding'];
    if (transferEncoding !== undefined && (transferEncoding.toLowerCase() !== 'chunked' || req.method === 'CONNECT')) {
      // A transfer coding other than exactly `chunked` (or any on CONNECT) is refused when the headers complete, before
      // any filter: ConnectionImpl::onHeadersCompleteImpl sets error_code_ NotImplemented and sends the protocol error
      // (`source/common/http/http1/codec_impl.cc`, InvalidTransferEncoding). Node's parser would read `gzip, chunked`
      // as chunked and wait for the body of `gzip` forever.
      protocolError(req, res, 501);
      return;
    }
    if (requestHeadersTooLarge(req.url ?? '', req.rawHeaders)) {
      // Envoy's HTTP/1 codec: more than `max_request_headers_count` header fields, or more than
      // `max_request_headers_kb` of request URL, header names and values (the HCM's defaults, 100 and 60 KiB; neither
      // Istio nor kvroute sets them), is a protocol error answered 431 with the code's name as the body, and the
      // connection is closed (`source/common/http/http1/codec_impl.cc` @ v1.35.0 completeCurrentHeader L571-578,
      // checkMaxHeadersSize L604-614 with ServerConnectionImpl::getHeadersSize, ServerConnectionImpl::sendProtocolError
      // L1369-1390).
      protocolError(req, res, 431);
      return;
    }
    answerExpectContinue(req, res);
    // An absolute-form target carries the authority, which the codec turns into the Host (`allow_absolute_url`, on by
    // default, as `Downstream` reads it).
    if (req.headers.host === undefined && !/^https?:\/\//i.test(req.url ?? '')) {
      // "Require host header. For HTTP/1.1 Host has already been translated to :authority." ActiveStream::decodeHeaders
      // (`source/common/http/conn_manager_impl.cc` @ v1.35.0): a 400 local reply with no body, before any filter
      // (`missing_host_header`); an HTTP/1.0 request without one gets the same, as Istio sets no
      // `default_host_for_http_10`.
      new Downstream(req, res, stats, opts.http1EnableTrailers).sendLocalReply(400, '');
      req.resume();
      return;
    }
    const x = new Exchange(ctx, req, res, streamStarts.get(req));
    exchanges.add(x);
    try {
      x.start();
    } catch (err) {
      // A bug must cost one request, not the process.
      ctx.warn('internal', 'gateway error while starting a request', { error: err instanceof Error ? err.stack ?? err.message : String(err) });
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain', 'content-length': 15 });
        res.end('gateway error\n');
      } else {
        res.destroy();
      }
    }
  });
  // Envoy's connection idle timer runs while no request is in flight on the connection (ConnectionManagerImpl
  // `idle_timer_`, source/common/http/conn_manager_impl.cc): armed at accept and whenever the last stream ends.
  // A stream begins with its request's first byte: the HTTP/1 codec calls ConnectionManagerImpl::newStream from
  // onMessageBeginImpl (`source/common/http/http1/codec_impl.cc` @ v1.35.0 ServerConnectionImpl::onMessageBeginBase),
  // which disables the connection idle timer, and the ActiveStream constructor arms request_timeout and
  // stream_idle_timeout (`conn_manager_impl.cc` L885-890). Node says nothing before the head is complete, so the first
  // byte, other than CR or LF, after the previous request's end and with no request in flight stands for that start
  // (http_parser's s_start_req skips CR and LF before a request line): until the head is in, both timers run here, and one that
  // expires answers 408 (the request is incomplete: Utility::maybeRequestTimeoutCode) with its body, "request timeout"
  // (onRequestTimeout) or "stream timeout" (onIdleTimeout), and closes the connection. Once the head is in, the
  // exchange takes them over (`timeouts.ts`): the request timer from the same start, the idle timer reset by the
  // headers, as Envoy resets it on decodeHeaders.
  server.on('connection', (socket: import('node:net').Socket) => {
    let inFlight = 0;
    let timer: NodeJS.Timeout | undefined;
    let headStartedAt: number | undefined;
    let headTimers: NodeJS.Timeout[] = [];
    const arm = () => {
      if (opts.connectionIdleTimeoutMs === 0) return;
      timer = setTimeout(() => socket.destroy(), opts.connectionIdleTimeoutMs);
      timer.unref();
    };
    const stopHeadTimers = () => {
      for (const t of headTimers) clearTimeout(t);
      headTimers = [];
    };
    const headTimeout = (kind: TimeoutKind, body: string) => {
      stopHeadTimers();
      if (socket.destroyed || !socket.writable) return;
      stats.timeouts[kind]++;
      stats.status(408);
      socket.end(rawReply(408, closingReply(body)), () => socket.destroy());
    };
    const startHead = () => {
      if (inFlight > 0 || headStartedAt !== undefined) return;
      headStartedAt = performance.now();
      if (opts.requestReceiveTimeoutMs > 0) headTimers.push(setTimeout(() => headTimeout('requestReceive', 'request timeout'), opts.requestReceiveTimeoutMs));
      if (opts.idleTimeoutMs > 0) headTimers.push(setTimeout(() => headTimeout('idle', 'stream timeout'), opts.idleTimeoutMs));
      // ConnectionManagerImpl::newStream disables the connection idle timer whatever the stream timers are.
      clearTimeout(timer);
    };
    // The request Node parsed last, and whether its body was all in before the chunk now being read: only bytes after
    // a request's end can begin the next one (the rest of the body of a request answered early is not a head).
    let lastRequest: http.IncomingMessage | undefined;
    let requestsInChunk = 0;
    let lastEndedBeforeChunk = true;
    let headWaiting = false;
    arm();
    // Node's own 'data' listener, added first, has parsed the chunk when this one runs. Bytes of a next head in the same
    // chunk as the end of a request cannot be told from that request's own (Node's parser does not say where a message
    // ended): they start nothing (gateway/README.md, Timeouts).
    socket.on('data', (chunk: Buffer) => {
      const startedNone = requestsInChunk === 0;
      const endedBefore = lastEndedBeforeChunk;
      requestsInChunk = 0;
      lastEndedBeforeChunk = lastRequest?.complete ?? true;
      // http_parser skips CR and LF before a request line (s_start_req), so Envoy opens no stream for them.
      if (!startedNone || !endedBefore || !chunk.some((byte) => byte !== 0x0d && byte !== 0x0a)) return;
      // Bytes after a request whose response is still going out wait in Envoy's codec, paused after each message
      // (http1/codec_impl.cc ServerConnectionImpl::onMessageCompleteBase "Always pause the parser"), and begin the next
      // stream when that one ends (ConnectionManagerImpl::doEndStream resumes the codec, which re-dispatches them).
      if (inFlight > 0) headWaiting = true;
      else startHead();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      stopHeadTimers();
    });
    idleTrackers.set(socket, {
      start: (req) => {
        inFlight++;
        lastRequest = req;
        requestsInChunk++;
        clearTimeout(timer);
        stopHeadTimers();
        if (headStartedAt !== undefined) streamStarts.set(req, headStartedAt);
        headStartedAt = undefined;
        headWaiting = false;
      },
      end: () => {
        if (--inFlight > 0 || socket.destroyed) return;
        arm();
        if (headWaiting) startHead();
      },
    });
  });
  // Node answers an `Expect` other than 100-continue with 417 itself; Envoy's HCM acts only on 100-continue
  // (conn_manager_impl.cc ActiveStream::decodeHeaders) and the request goes on as any other.
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => server.emit('request', req, res));
  // Node takes any list holding 100-continue for it; Envoy answers 100 only to exactly `100-continue` (any case) and
  // forwards any other Expect.
  // The 100 goes out from the request handler once the codec's own checks passed (`answerExpectContinue`).
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.headers.expect?.trim().toLowerCase() === '100-continue') expectsContinue.add(req);
    server.emit('request', req, res);
  });
  // Before the request handler, which hands the stream's start to the exchange.
  server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const tracker = idleTrackers.get(req.socket);
    if (tracker === undefined) return;
    tracker.start(req);
    res.once('close', tracker.end);
  });
  // A message Node's parser refuses (a malformed request line or header line, Content-Length beside chunked
  // Transfer-Encoding, headers past the parser's limit) is the HTTP/1 codec's protocol error in Envoy:
  // ServerConnectionImpl::sendProtocolError (`source/common/http/http1/codec_impl.cc` @ v1.35.0) sends it as the HCM's
  // local reply, the code's name as a text body (`CodeUtility::toString(error_code_)`) with the HCM's headers, and
  // the connection is closed. Envoy's codec refuses each of these (`allow_chunked_length` is false by default and
  // Istio leaves it so).
  // A malformed request pipelined behind one still being answered is answered after that response: Envoy's codec
  // parses one request at a time (`onMessageCompleteBase` pauses the parser "so that the calling code can process 1
  // request at a time"), where Node's parser reads ahead and reports the error at once.
  // A request line whose version Node's parser refuses (`HTTP/1.2`) is one Envoy's parser reads (any `HTTP/d.d`) and its
  // codec then answers as HTTP/1.0 (ServerConnectionImpl::checkProtocolVersion): 426 unless HTTP/1.0 is accepted.
  const unsupportedVersion = (err: NodeJS.ErrnoException & { rawPacket?: Buffer }): boolean =>
    err.code === 'HPE_INVALID_VERSION' && !opts.acceptHttp10
    && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/\d\.\d\r?\n/.test(err.rawPacket?.toString('latin1') ?? '');
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket) => {
    const answer = () => {
      if (!socket.writable || socket.destroyed) {
        socket.destroy();
        return;
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : unsupportedVersion(err) ? 426 : 400;
      stats.status(status);
      socket.end(rawReply(status, codecErrorReply(status)));
    };
    const inFlight = (socket as { _httpMessage?: http.ServerResponse | null })._httpMessage;
    if (inFlight && !inFlight.req.complete) {
      // The error is in the body of the request being answered (a chunk size that overflows): Envoy's codec sends the
      // protocol error as a local reply while no response has started, and resets the stream once one has
      // (ServerConnectionImpl::sendProtocolError). Closing the connection ends the exchange (upstream and ext_proc).
      if (inFlight.headersSent) socket.destroy();
      else answer();
      return;
    }
    if (inFlight && !inFlight.writableFinished) {
      // Answered once that response is all written; a response cut short leaves nothing to answer on.
      inFlight.once('close', () => (inFlight.writableFinished ? answer() : socket.destroy()));
      return;
    }
    answer();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      server.close();
      server.closeIdleConnections();
      if (exchanges.size > 0 && opts.shutdownGraceMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, opts.shutdownGraceMs);
          idleWaiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      for (const x of [...exchanges]) x.abort();
      server.closeAllConnections();
      extProc?.close();
      agent.destroy();
    })();
    return closing;
  };

  return {
    port: address.port,
    host: opts.host,
    options: opts,
    stats: snapshot,
    envoyStats,
    close,
  };
}
