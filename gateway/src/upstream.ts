/**
 * One upstream HTTP/1.1 request with the connect-failure retries of the route retry policy Istio gives every route
 * without its own (`retry.ConvertPolicy(nil, …)`, istio/istio `pilot/pkg/networking/core/route/retry/retry.go`
 * @ 1.27.0 L44-51, L73-82, unchanged through 1.30.0: `num_retries: 2`, `retry_on:
 * connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`). At most `1 + maxRetries` attempts
 * are made; the candidate source says where each one goes (the EPP's pick list first, then the fallback policy),
 * and a retry happens only when the connection could not be made (refused, unreachable, connect timeout). Of the
 * other `retry_on` conditions, `refused-stream` is HTTP/2's, `unavailable` and `cancelled` read a gRPC status in
 * the response headers, and `retriable-status-codes` comes with no codes (Istio sets `retriable_status_codes` only
 * from an explicit retry stanza, and Envoy strips the client's `x-envoy-retriable-status-codes`): none of them can
 * fire against an HTTP/1.1 vLLM pod, so none is modelled. Each attempt carries `x-envoy-attempt-count` (see
 * `outgoingHeaders`). A stale keep-alive socket (reset before any response byte on a reused connection) is replayed on
 * the same endpoint as the same attempt: a Node artefact, not an Envoy retry, so it counts against nothing. The body
 * written so far is kept until the response headers arrive so that a retry can replay it; every later failure is
 * final.
 */
import * as http from 'http';
import type { Endpoint, EndpointPool } from './endpoints';
import type { HeaderList } from './headers';

export interface UpstreamHead {
  readonly method: string;
  readonly path: string;
  /** Request headers without pseudo-headers; must include `host`. */
  readonly headers: HeaderList;
}

/**
 * Where the next attempt goes, given the addresses already tried; undefined when there is nowhere to go (the
 * request then fails). Whether a tried endpoint may come again is the source's business: Envoy retries the same
 * ring-hash host when Istio's consistent-hash retry policy leaves out `previous_hosts` (`router.ts`).
 */
export interface CandidateSource {
  next(tried: ReadonlySet<string>): Endpoint | undefined;
}

/** The route retry policy's `num_retries` when Istio writes its default policy (`retry.go` @ 1.27.0 L46). */
export const ISTIO_DEFAULT_NUM_RETRIES = 2;

/**
 * The header Envoy's router numbers each upstream attempt with (1, 2, 3, …), overwriting any the request carries
 * (`source/common/router/router.cc` Filter::decodeHeaders `headers.setEnvoyAttemptCount(attempt_count_)`, and again
 * in doRetry). It is sent because Istio turns `include_request_attempt_count` on for every gateway virtual host
 * (istio/istio `pilot/pkg/networking/core/gateway.go` @ 1.27.0 L499, L523, from GetProxyHeadersFromProxyConfig,
 * `httproute.go` L311-316: `IncludeRequestAttemptCount: true` unless ProxyConfig `proxyHeaders.attemptCount.disabled`).
 * The router runs after ext_proc, so the EPP never sees it.
 */
export const ATTEMPT_COUNT_HEADER = 'x-envoy-attempt-count';

/**
 * The header Envoy's router tells the upstream its deadline with: FilterUtility::setTimeoutHeaders
 * (`source/common/router/router.cc` @ v1.35.0), called from Filter::decodeHeaders (finalTimeout, nothing elapsed) and
 * again from doRetry (the time since the router had the whole request), with `insert_envoy_expected_request_timeout_ms
 * = !suppress_envoy_headers_`, which Istio leaves off on gateways (`listener_builder.go` @ 1.27.0 L440-442). With no
 * per-try timeout (Istio's default retry policy sets none) it is the route timeout less the time elapsed, 1 once that is
 * spent ("0 would be an infinite timeout"), and none without a route timeout. Overwritten, not appended.
 */
export const EXPECTED_TIMEOUT_HEADER = 'x-envoy-expected-rq-timeout-ms';

/** Methods Node's client sends without chunked framing when no Content-Length is given (ClientRequest). */
const UNCHUNKED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

export interface UpstreamCallbacks {
  onResponse(res: http.IncomingMessage, endpoint: Endpoint, attempts: number): void;
  /** No response could be obtained. `status` is what the client should get (503, or 500 for an unsendable request). */
  onError(status: number, message: string): void;
  /** The current attempt's socket drained after `write` returned false. */
  onDrain(): void;
  /** An attempt after the first is starting. */
  onRetry?(endpoint: Endpoint, reason: string): void;
  onConnectFailure?(endpoint: Endpoint, reason: string): void;
}

export interface UpstreamSettings {
  readonly agent: http.Agent;
  readonly pool: EndpointPool;
  readonly connectTimeoutMs: number;
  /** Above this many body bytes the replay log is dropped and no retry is possible. */
  readonly maxReplayBytes: number;
  /** The route retry policy's `num_retries`: at most this many retries after the first attempt. */
  readonly maxRetries: number;
  /** The retry back-off's base interval (`retryBackOffMs`); 0 retries at once. */
  readonly retryBackOffBaseMs: number;
  /** The route's `timeout` (0: none), which `EXPECTED_TIMEOUT_HEADER` states. */
  readonly routeTimeoutMs: number;
}

/**
 * Envoy's wait before retry `retry` (1 for the first): fully jittered exponential back-off
 * (`JitteredExponentialBackOffStrategy::nextBackOffMs`, source/common/common/backoff_strategy.cc @ v1.35.0): a random
 * whole number of milliseconds below the current interval, which starts at the base and doubles after each retry
 * while under half the max interval, then is the max. The route's default `retry_back_off` has a 25 ms base and a
 * max of 10 × base (Istio 1.27 sets none). So 0-24 ms before the first retry, 0-49 before the second, 0-99, 0-199,
 * then below 250.
 */
export function retryBackOffMs(retry: number, baseMs: number, random: () => number = Math.random): number {
  if (baseMs <= 0 || retry < 1) return 0;
  const max = 10 * baseMs;
  let interval = baseMs;
  for (let i = 1; i < retry && interval < max; i++) interval = interval < max / 2 ? interval * 2 : max;
  return Math.min(Math.floor(random() * interval), max);
}

/**
 * The HTTP/1 client codec's limits on a pod's response head, with the decode cluster's defaults (neither Istio nor
 * kvroute sets them): `max_response_headers_kb` unset → MAX_RESPONSE_HEADERS_KB, 80 KiB
 * (`source/common/http/http1/codec_impl.h`, ClientConnectionImpl in `codec_impl.cc` @ v1.35.0; the BalsaParser's
 * max_header_length counts the whole head, as Node's maxHeaderSize does), and `common_http_protocol_options
 * .max_headers_count` unset → 100 (ClusterInfoImpl max_response_headers_count_ = DEFAULT_MAX_HEADERS_COUNT,
 * `source/common/upstream/upstream_impl.cc`). Past either, the codec's dispatch fails (ConnectionImpl::
 * completeCurrentHeader, checkMaxHeadersSize): a protocol error, not Node's 16 KiB / 2000-header limits.
 */
export const MAX_RESPONSE_HEADERS_BYTES = 80 * 1024;
export const MAX_RESPONSE_HEADERS_COUNT = 100;

const CONNECT_FAILURE_CODES = new Set([
  'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET',
]);
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE']);
const MAX_STALE_RETRIES = 2;

class ConnectTimeout extends Error {
  readonly code = 'ETIMEDOUT';
}

/** strerror(3) on Linux for the connect failures Node reports, as Envoy prints them in a transport failure reason. */
const STRERROR: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'Connection refused',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ETIMEDOUT: 'Connection timed out',
  ECONNRESET: 'Connection reset by peer',
};

/**
 * Envoy's words for why an attempt got no response headers, as its router's local reply states them: the stream reset
 * reason (`Http::Utility::resetReasonToString`, `source/common/http/utility.cc`) and, for a connect that failed, the
 * connection's transport failure reason (`"delayed connect error: " + strerror`, `ConnectionImpl::onWriteReady` in
 * `source/common/network/connection_impl.cc`), both @ v1.35. Node's own error text never reaches the client.
 */
export function envoyResetReason(err: NodeJS.ErrnoException, connected: boolean): string {
  if (err instanceof ConnectTimeout) return 'connection timeout';
  const code = err.code ?? '';
  if (!connected && CONNECT_FAILURE_CODES.has(code)) {
    const detail = STRERROR[code];
    return detail === undefined ? 'remote connection failure' : `remote connection failure, transport failure reason: delayed connect error: ${detail}`;
  }
  // Node's parser refused the pod's response (HPE_*): Envoy's HTTP/1 client codec fails the dispatch, CodecClient::onData
  // sets `protocol_error_` and closes, and the close resets the stream with StreamResetReason::ProtocolError
  // (`source/common/http/codec_client.cc` onEvent).
  if (code.startsWith('HPE_')) return 'protocol error';
  // Connected, then closed or reset by the pod before its response headers.
  return 'connection termination';
}

export class UpstreamCall {
  private current: http.ClientRequest | undefined;
  private currentEndpoint: Endpoint | undefined;
  private readonly tried = new Set<string>();
  private record: Buffer[] | null = [];
  private recordBytes = 0;
  private ended = false;
  /** performance.now() when the body ended: the router had the whole request (downstream_request_complete_time_). */
  private endedAt: number | undefined;
  private trailers: Record<string, string> | null = null;
  /** The outcome is decided: a response arrived or the request failed; no further attempt. */
  private finished = false;
  /** The request was given up (abort, or a failure before any response): nothing more is written. */
  private aborted = false;
  /** Envoy's attempt count: the first attempt and each retry; stale keep-alive replays are not counted. */
  private attempts = 0;
  /** The retry back-off in progress. */
  private backOff: ReturnType<typeof setTimeout> | undefined;
  private staleRetries = 0;
  private lastReason = '';

  constructor(
    private readonly settings: UpstreamSettings,
    private readonly head: UpstreamHead,
    private readonly candidates: CandidateSource,
    private readonly cb: UpstreamCallbacks,
  ) {}

  start(): void {
    this.next();
  }

  /** Writes body bytes; false means "wait for onDrain". */
  write(chunk: Buffer): boolean {
    // `finished` is not checked: once the upstream's response has begun the body still goes on to it (a server may
    // answer before it has read the whole request, and Envoy's router keeps streaming the request to it).
    if (this.aborted || this.ended || chunk.length === 0) return true;
    if (this.record) {
      this.record.push(chunk);
      this.recordBytes += chunk.length;
      if (this.recordBytes > this.settings.maxReplayBytes) {
        this.record = null;
        // Past the retry buffer while a retry waits out its back-off: Envoy's router answers 507 and does not retry
        // (Router::Filter::decodeData, RequestPayloadExceededRetryBufferLimit, router.cc @ v1.35.0).
        if (this.backOff !== undefined) {
          clearTimeout(this.backOff);
          this.backOff = undefined;
          this.fail(507, 'exceeded request buffer limit while retrying upstream');
          return true;
        }
      }
    }
    return this.current ? this.current.write(chunk) : true;
  }

  /** Ends the body; `trailers` go out as HTTP/1.1 chunked trailers (only when the body is chunked). */
  end(trailers?: Record<string, string> | null): void {
    if (this.aborted || this.ended) return;
    this.ended = true;
    this.endedAt = performance.now();
    this.trailers = trailers && Object.keys(trailers).length > 0 ? trailers : null;
    if (this.current) this.endCurrent(this.current);
  }

  abort(): void {
    this.aborted = true;
    if (this.backOff !== undefined) clearTimeout(this.backOff);
    if (this.finished) return;
    this.finished = true;
    this.record = null;
    this.current?.destroy();
  }

  get endpoint(): Endpoint | undefined {
    return this.currentEndpoint;
  }

  private endCurrent(req: http.ClientRequest): void {
    if (this.trailers && !this.head.headers.has('content-length')) {
      try {
        req.addTrailers(this.trailers);
      } catch {
        // invalid trailer names/values are dropped rather than failing the request
      }
    }
    req.end();
  }

  private next(): void {
    if (this.finished) return;
    // The body was too large to keep for a retry (Envoy's router stops buffering past the retry buffer limit and
    // does not retry), or the retry budget is spent (Envoy's RetryStateImpl::shouldRetry answers
    // NoRetryLimitExceeded): the local reply for the last reset (`source/common/router/router.cc` onUpstreamReset).
    if ((this.attempts > 0 && this.record === null) || this.attempts > this.settings.maxRetries) {
      this.failReset();
      return;
    }
    const wait = retryBackOffMs(this.attempts, this.settings.retryBackOffBaseMs);
    if (wait > 0) {
      // The host is chosen when the retry starts, as Envoy's router does when its retry timer fires (doRetry).
      this.backOff = setTimeout(() => {
        this.backOff = undefined;
        this.pickAndAttempt();
      }, wait);
      return;
    }
    this.pickAndAttempt();
  }

  private pickAndAttempt(): void {
    if (this.finished) return;
    const endpoint = this.candidates.next(this.tried);
    if (!endpoint) {
      if (this.attempts === 0) this.fail(503, 'no healthy upstream');
      else this.failReset();
      return;
    }
    this.tried.add(endpoint.address);
    this.attempt(endpoint);
  }

  /** `replay`: the same attempt again after a stale keep-alive socket, not an Envoy retry. */
  private attempt(endpoint: Endpoint, replay = false): void {
    if (!replay) {
      if (this.attempts > 0) this.cb.onRetry?.(endpoint, this.lastReason);
      this.attempts++;
    }
    let req: http.ClientRequest;
    const headers = this.outgoingHeaders(endpoint);
    try {
      req = http.request({
        agent: this.settings.agent,
        host: endpoint.host,
        port: endpoint.port,
        method: this.head.method,
        path: this.head.path,
        headers,
        setHost: false,
        maxHeaderSize: MAX_RESPONSE_HEADERS_BYTES,
      });
      // Envoy's HTTP/1 codec writes no `connection` header on a keep-alive request (RequestEncoderImpl::encodeHeaders,
      // `source/common/http/http1/codec_impl.cc` @ v1.35.0; the client's was removed as hop-by-hop); Node's client
      // would add `Connection: keep-alive`. Removed, the connection is still kept (HTTP/1.1's default). An `expect`
      // makes Node write the head at once, and one the EPP set stays.
      if (headers.connection === undefined && !req.headersSent) req.removeHeader('connection');
    } catch (err) {
      // An invalid method, path or header: no endpoint would take it.
      this.fail(500, `invalid upstream request: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.current = req;
    this.currentEndpoint = endpoint;
    const stat = this.settings.pool.stat(endpoint);
    stat.inFlight++;
    let connected = false;
    let responded = false;
    let counted = true;
    const release = (): void => {
      if (counted) {
        counted = false;
        stat.inFlight--;
      }
    };
    const timer = setTimeout(() => {
      if (!connected) req.destroy(new ConnectTimeout(`connect timeout after ${this.settings.connectTimeoutMs} ms`));
    }, this.settings.connectTimeoutMs);
    const onConnected = (): void => {
      connected = true;
      clearTimeout(timer);
      this.settings.pool.markConnected(endpoint);
    };
    req.on('socket', (socket) => {
      if (socket.connecting) socket.once('connect', onConnected);
      else onConnected();
    });
    req.on('drain', () => {
      if (this.current === req) this.cb.onDrain();
    });
    req.on('response', (res) => {
      responded = true;
      clearTimeout(timer);
      if (res.rawHeaders.length / 2 > MAX_RESPONSE_HEADERS_COUNT && !this.finished) {
        // Envoy's codec fails on the 101st field, before the router sees any header: the connection is closed and the
        // stream reset with a protocol error, which is not a connect failure, so no retry (see envoyResetReason).
        req.destroy();
        release();
        this.lastReason = 'protocol error';
        this.failReset();
        return;
      }
      this.record = null;
      if (this.finished) {
        res.resume();
        release();
        return;
      }
      this.finished = true;
      res.once('close', release);
      this.cb.onResponse(res, endpoint, this.attempts);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      release();
      if (responded || this.finished || this.current !== req) return;
      const code = err.code ?? '';
      const reason = envoyResetReason(err, connected);
      this.lastReason = reason;
      if (!connected && (CONNECT_FAILURE_CODES.has(code) || err instanceof ConnectTimeout)) {
        this.settings.pool.markConnectFailure(endpoint);
        this.cb.onConnectFailure?.(endpoint, reason);
        this.current = undefined;
        this.replayInto(() => this.next());
        return;
      }
      if (req.reusedSocket && (STALE_SOCKET_CODES.has(code) || /socket hang up/.test(err.message)) && this.staleRetries < MAX_STALE_RETRIES && this.record !== null) {
        // The keep-alive connection was closed by the upstream just as we reused it; nothing reached the server.
        this.staleRetries++;
        this.current = undefined;
        this.replayInto(() => this.attempt(endpoint, true));
        return;
      }
      this.failReset();
    });
    if (this.record) for (const c of this.record) req.write(c);
    if (this.ended) this.endCurrent(req);
  }

  /**
   * The attempt's headers for `http.request`, by name in the order each first appears, a repeated name's values in
   * order (HTTP gives meaning only to the order within a name). An object rather than Node's flat array: with the
   * array Node writes the head at once, `Connection: keep-alive` included, before `removeHeader` can drop it.
   */
  private outgoingHeaders(endpoint: Endpoint): http.OutgoingHttpHeaders {
    const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
    const add = (n: string, v: string): void => {
      const had = out[n];
      out[n] = had === undefined ? v : [...(Array.isArray(had) ? had : [had]), v];
    };
    // HTTP/1.1 requires Host; a client that sent none (HTTP/1.0) gets the endpoint's address.
    if (!this.head.headers.has('host')) add('host', endpoint.address);
    const expectedTimeout = this.expectedTimeoutMs();
    const set = (n: string): boolean => n === ATTEMPT_COUNT_HEADER || (expectedTimeout !== undefined && n === EXPECTED_TIMEOUT_HEADER);
    // A client's Trailer goes on as Envoy's HCM leaves it, except on a request Node will not chunk (a Content-Length, or
    // a method it sends unchunked): Node refuses to write Trailer there (ERR_HTTP_TRAILER_INVALID), so it cannot be
    // carried.
    const unchunked = this.head.headers.has('content-length') || UNCHUNKED_METHODS.has(this.head.method);
    const skip = (n: string): boolean => set(n) || n.startsWith(':') || (unchunked && n === 'trailer');
    for (const [n, v] of this.head.headers.pairs) if (!skip(n)) add(n, v);
    // Set, not appended: Envoy overwrites whatever the client (or nobody) put there.
    add(ATTEMPT_COUNT_HEADER, String(this.attempts));
    if (expectedTimeout !== undefined) add(EXPECTED_TIMEOUT_HEADER, String(expectedTimeout));
    return out;
  }

  /** `EXPECTED_TIMEOUT_HEADER` for the current attempt: setTimeoutHeaders with no per-try timeout. */
  private expectedTimeoutMs(): number | undefined {
    const global = this.settings.routeTimeoutMs;
    if (global <= 0) return undefined;
    // decodeHeaders passes no elapsed time; doRetry the whole milliseconds since the request was complete, if it is.
    const elapsed = this.attempts > 1 && this.endedAt !== undefined ? Math.floor(performance.now() - this.endedAt) : 0;
    return elapsed >= global ? 1 : global - elapsed;
  }

  /** Starts the next attempt on a later tick (never re-entrantly from inside an 'error' handler). */
  private replayInto(start: () => void): void {
    setImmediate(() => {
      if (!this.finished) start();
    });
  }

  /**
   * Envoy's router's local reply for an attempt that got no response headers (`source/common/router/router.cc`
   * onUpstreamReset @ v1.35): "retried and the latest" only when a retry was made.
   */
  private failReset(): void {
    this.fail(503, `upstream connect error or disconnect/reset before headers. ${this.attempts > 1 ? 'retried and the latest ' : ''}reset reason: ${this.lastReason}`);
  }

  private fail(status: number, message: string): void {
    if (this.finished) return;
    this.finished = true;
    this.aborted = true;
    this.record = null;
    this.current = undefined;
    this.cb.onError(status, message);
  }
}
