/**
 * The client's side of one exchange, as Envoy's HTTP connection manager presents it to the filter chain
 * (`source/common/http/conn_manager_impl.cc`, `conn_manager_utility.cc`): the request head turned into HTTP/2-style
 * headers and sanitized before any filter sees them, the request body as events, and the response written back,
 * including the gateway's own local replies (`source/common/http/filter_manager.cc`, sendLocalReply).
 */
import { randomUUID } from 'crypto';
import type * as http from 'http';
import { isValidRefererValue } from './envoy-url';
import { envoyRequestHeaderLines, HeaderList, REQUEST_HOP_BY_HOP, trailerList, trailerRecord } from './headers';
import { normalizePath } from './path-normalization';
import type { StatsCollector } from './stats';

/**
 * Why the client's body is not being read: the upstream socket is full (`upstream`), or the EPP stream is
 * (`grpc`). Reading resumes once no reason is left.
 */
export type RequestPause = 'upstream' | 'grpc';

/** The request headers Envoy removes from an edge request (`conn_manager_utility.cc` @ v1.35.0 L110, L319-352). */
const EDGE_STRIPPED = [
  'x-envoy-internal', 'x-envoy-decorator-operation', 'x-envoy-downstream-service-cluster', 'x-envoy-downstream-service-node',
  'x-envoy-original-path', 'x-envoy-original-host', 'x-envoy-retriable-status-codes', 'x-envoy-retriable-header-names',
  'x-envoy-retry-on', 'x-envoy-retry-grpc-on', 'x-envoy-max-retries', 'x-envoy-upstream-alt-stat-name',
  'x-envoy-upstream-rq-timeout-ms', 'x-envoy-upstream-rq-per-try-timeout-ms', 'x-envoy-upstream-rq-timeout-alt-response',
  'x-envoy-expected-rq-timeout-ms', 'x-envoy-force-trace', 'x-envoy-ip-tags', 'x-envoy-original-url',
  'x-envoy-hedge-on-per-try-timeout',
];

/**
 * The `server` header of every response, upstream or local: Istio gives gateway HCMs `server_name: istio-envoy` with
 * `server_header_transformation: OVERWRITE` (istio/istio `pilot/pkg/networking/core/httproute.go` @ 1.27.0
 * GetProxyHeadersFromProxyConfig L311-316, `accesslog.go` L37 EnvoyServerName), and Envoy writes it in
 * ActiveStream::encodeHeaders after the encoder filters (`source/common/http/conn_manager_impl.cc`), so the EPP
 * never sees it while the client always does.
 */
export const SERVER_NAME = 'istio-envoy';

export interface DownstreamEvents {
  /**
   * Bytes moved on this stream, either way: request headers, data or trailers in, response headers, data or trailers
   * out. Envoy resets the stream's idle timer at exactly these points (`source/common/http/conn_manager_impl.cc`
   * @ v1.35.0 L1435, L1517; `source/common/http/filter_manager.cc` decodeData L666, encodeHeaders L1254, encodeData
   * L1428, encodeTrailers L1502).
   */
  activity(): void;
  /** The response's headers are being written (Envoy's encodeHeaders). */
  responseHeaders(): void;
  data(chunk: Buffer): void;
  /** The body is complete; `Downstream.trailers` holds the client's trailers, if any. */
  end(): void;
  /** The client's connection is done with this response: `complete` when all of it was delivered. */
  closed(complete: boolean): void;
}

export class Downstream {
  readonly method: string;
  /** The request target as origin-form (`/path?query`), normalized as Istio's gateway HCM does (`normalizePath`). */
  readonly path: string;
  /** Envoy's path normalization refused the path: the request gets a 400 before any filter. */
  readonly pathRejected: boolean;
  /** What filters see and mutate: pseudo-headers first, no hop-by-hop headers. */
  readonly headers: HeaderList;
  readonly originalContentLength: string | undefined;
  readonly hasBody: boolean;
  /** The request is gRPC (Grpc::Common::hasGrpcContentType): local replies are gRPC's. */
  readonly isGrpcRequest: boolean;
  /**
   * An upgrade the Istio gateway's HCM has no upgrade config for: every type but `websocket` (and `h2c`, which the
   * HTTP/1 codec drops), answered 403 where a route matches (`Exchange.start`).
   */
  readonly upgradeRejected: boolean;
  private bodyEnded = false;
  /** The connection ends after this response whatever the client asked (Envoy's `saw_connection_close_`). */
  private closeAfterResponse = false;
  private bodyTrailers: HeaderList | null = null;
  private connectionDone = false;
  private headSent = false;
  private readonly pauses = new Set<RequestPause>();
  private onActivity: () => void = () => undefined;
  private onResponseHeaders: () => void = () => undefined;

  /**
   * `enableTrailers`: Http1ProtocolOptions.enable_trailers. Without it Envoy's HTTP/1 codec ignores the trailers it
   * parses (`source/common/http/http1/codec_impl.cc` @ v1.35.0 ConnectionImpl::onHeaderFieldImpl / onHeaderValueImpl:
   * "Ignore trailers."; BalsaParser skips them too), so the filters and the pod never see the client's.
   */
  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly stats: StatsCollector,
    private readonly enableTrailers: boolean,
  ) {
    this.method = req.method ?? 'GET';
    // A repeated inline header (Content-Type, User-Agent, Host, …) is one value joined with "," from here on, as in
    // Envoy's request map: the EPP, the route and the pod see it so (envoyRequestHeaderLines).
    const list = envoyRequestHeaderLines(HeaderList.fromRaw(req.rawHeaders));
    // A client's own `x-gateway-destination-endpoint` is kept, as Envoy keeps it (ConnectionManagerUtility removes only
    // its `x-envoy-*` list and XFCC): the EPP sees it, and its own `set_headers` overwrites it. It is never obeyed,
    // since the pick comes only from `envoy.lb` dynamic metadata, which only the EPP can set.
    this.originalContentLength = list.get('content-length');
    this.hasBody = list.has('transfer-encoding') || (this.originalContentLength !== undefined && this.originalContentLength !== '0');
    const contentType = list.get('content-type') ?? '';
    this.isGrpcRequest = contentType === 'application/grpc' || contentType.startsWith('application/grpc+');
    let authority = list.get('host') ?? '';
    let path = req.url ?? '/';
    if (/^https?:\/\//i.test(path)) {
      // Absolute-form request target (a client talking to us as a proxy): like Envoy's codec, the URL's host
      // becomes :authority and only path and query remain.
      try {
        const u = new URL(path);
        authority = u.host;
        path = `${u.pathname}${u.search}`;
      } catch {
        // leave it; the upstream will reject it
      }
    }
    // `normalize_path` is on in every HCM Istio builds unless the mesh says NONE (listener_builder.go @ 1.27.0
    // L333-339), and Envoy applies it before route matching and before any filter: the EPP, the bypass match and the
    // pod all see the normalized path (path-normalization.ts).
    const normalized = path.startsWith('/') ? normalizePath(path) : path;
    this.pathRejected = normalized === null;
    this.path = normalized ?? path;
    path = this.path;
    const headers = new HeaderList([
      [':authority', authority],
      [':path', path],
      [':method', this.method],
      [':scheme', 'http'],
    ]);
    // Expect goes only when it is `100-continue`, which the HCM answers itself (Node's server has sent the `100
    // Continue`) and removes "so it won't be handled again upstream" (ActiveStream::decodeHeaders,
    // `conn_manager_impl.cc` @ v1.35.0; proxy_100_continue is off); any other value goes on. HTTP2-Settings goes only
    // beside an `Upgrade: h2c` upgrade, which the HTTP/1 codec drops with it (ConnectionImpl::onHeadersCompleteImpl,
    // `http1/codec_impl.cc` @ v1.35.0: "Ignore h2c upgrade requests until we support them").
    const expect100 = list.getJoined('expect')?.toLowerCase() === '100-continue';
    // An upgrade request has an Upgrade header and the `upgrade` token in Connection (Utility::isUpgrade,
    // `source/common/http/utility.cc` @ v1.35.0); the codec drops an h2c one, so it is a plain request.
    const upgrade = list.getJoined('upgrade')?.toLowerCase();
    const isUpgrade = upgrade !== undefined
      && (list.getJoined('connection') ?? '').split(',').some((t) => t.trim().toLowerCase() === 'upgrade');
    const h2c = isUpgrade && upgrade === 'h2c';
    // Istio gives its gateway HCM one upgrade config, `websocket` (istio/istio `pilot/pkg/networking/core/
    // listener_builder.go` @ 1.29.6 L361-363, the same since 1.0), and HttpConnectionManagerConfig::
    // createUpgradeFilterChain matches the type case-insensitively against it: any other type is refused.
    this.upgradeRejected = isUpgrade && upgrade !== 'h2c' && upgrade !== 'websocket';
    for (const [n, v] of list.pairs) {
      if (n === 'host' || REQUEST_HOP_BY_HOP.has(n)) continue;
      if ((n === 'expect' && expect100) || (n === 'http2-settings' && h2c)) continue;
      headers.add(n, v);
    }
    // TE is kept as `trailers` when it lists that token, else removed (ConnectionManagerUtility::sanitizeTEHeader,
    // `source/common/http/conn_manager_utility.cc` @ v1.35.0 L297-317), so the EPP and the upstream see it as from
    // Envoy.
    const te = list.getJoined('te');
    if (te !== undefined && te.split(',').some((t) => t.trim() === 'trailers')) headers.add('te', 'trailers');
    // "Sanitize referer field if exists" (ConnectionManagerUtility::mutateRequestHeaders, `conn_manager_utility.cc`
    // @ v1.35.0): a repeated Referer, or one Utility::isValidRefererValue refuses (an absolute URL with userinfo or a
    // fragment, or a value that is neither an absolute URL nor a relative reference), is removed before any filter,
    // so neither the EPP nor the pod sees it.
    const referers = headers.pairs.filter(([n]) => n === 'referer');
    if (referers.length > 1 || (referers.length === 1 && !isValidRefererValue(referers[0][1]))) headers.remove('referer');
    const remote = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    // Envoy appends the peer's address with a bare "," (Utility::appendXff: `headers.appendForwardedFor(
    // remote_address.ip()->addressAsString(), ",")`, `source/common/http/utility.cc`, the same in every indexed
    // version), and its codec has already folded repeated X-Forwarded-For lines into one with "," (HeaderMapImpl::
    // insertByKey → appendToHeader). For a loopback peer Envoy appends its own local address instead
    // (ConnectionManagerUtility::mutateRequestHeaders, `isLoopbackAddress` → `appendXff(config.localAddress())`); the
    // gateway has no node address of its own and keeps the peer's, which is a loopback address as well.
    const xff = headers.getJoined('x-forwarded-for');
    if (remote) headers.set('x-forwarded-for', xff ? `${xff},${remote}` : remote);
    // The Istio gateway's HCM uses the remote address with no trusted hops (istio/istio
    // `pilot/pkg/networking/core/gateway.go` @ 01fc9e4e42: createGatewayHTTPFilterChainOpts `useRemoteAddress: true`,
    // buildGatewayConnectionManager `xffNumTrustedHops` 0 unless gatewayTopology.numTrustedProxies), so Envoy
    // overwrites whatever X-Forwarded-Proto the client sent with the connection's scheme (mutateXffRequestHeaders,
    // `conn_manager_utility.cc` @ v1.35.0 L152-155); this listener is plaintext.
    headers.set('x-forwarded-proto', 'http');
    // Every request is an edge request there: Istio sets no `internal_address_config` by default (gateway.go
    // buildGatewayConnectionManager, only with ENABLE_HCM_INTERNAL_NETWORKS), and since Envoy 1.33 the default one
    // trusts no address (DefaultInternalAddressConfig under the runtime guard `explicit_internal_address_config`,
    // `source/common/http/conn_manager_config.h` @ v1.35.0 L191-199, on by default). So Envoy strips the headers a
    // client must not inject (ConnectionManagerUtility::cleanInternalHeaders with edge_request, L110 and L319-352),
    // sets `x-envoy-external-address` to the client's address (L273-277), and gives the request a fresh
    // `x-request-id` whatever the client sent (`preserve_external_request_id` unset: UUIDRequestIDExtension::set,
    // `source/extensions/request_id/uuid/config.cc` @ v1.35.0 L14-44).
    for (const h of EDGE_STRIPPED) headers.remove(h);
    // Istio's gateway HCM has `forward_client_cert_details: SANITIZE_SET` (istio/istio
    // `pilot/pkg/networking/core/gateway.go` @ 1.27.0 buildGatewayConnectionManager L707), and on a connection without
    // a client certificate Envoy drops the client's XFCC whatever that setting is: "When Sanitize is set, or the
    // connection is not mutual TLS, remove the XFCC header" (ConnectionManagerUtility::mutateXfccRequestHeader,
    // `source/common/http/conn_manager_utility.cc`, called at the end of mutateRequestHeaders, before any filter).
    // This listener is plaintext, so a client can never hand the EPP or a pod a forged identity.
    headers.remove('x-forwarded-client-cert');
    if (remote) headers.set('x-envoy-external-address', remote);
    headers.set('x-request-id', randomUUID());
    this.headers = headers;
  }

  /** The client's body is complete. */
  get ended(): boolean {
    return this.bodyEnded;
  }

  /** The client's trailers, once the body is complete. */
  get trailers(): HeaderList | null {
    return this.bodyTrailers;
  }

  /** The client's connection is done with this exchange; nothing more reaches the client. */
  get closed(): boolean {
    return this.connectionDone;
  }

  get responseStarted(): boolean {
    return this.headSent;
  }

  /** Counts the exchange in flight until the client's connection is done with it, and starts the events. */
  listen(events: DownstreamEvents): void {
    const { stats } = this;
    stats.requests++;
    stats.inFlight++;
    this.onActivity = () => events.activity();
    this.onResponseHeaders = () => events.responseHeaders();
    this.req.on('error', () => undefined);
    this.res.on('error', () => undefined);
    this.res.on('close', () => {
      if (this.connectionDone) return;
      this.connectionDone = true;
      const complete = this.res.writableFinished;
      stats.inFlight--;
      if (complete) stats.completed++;
      else stats.aborted++;
      events.closed(complete);
    });
    this.req.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      this.onActivity();
      events.data(chunk);
    });
    this.req.on('end', () => {
      if (this.closed) return;
      this.onActivity();
      this.bodyEnded = true;
      this.bodyTrailers = this.enableTrailers ? trailerList(this.req.rawTrailers) : null;
      events.end();
    });
  }

  pause(reason: RequestPause): void {
    this.pauses.add(reason);
    this.req.pause();
  }

  resume(reason: RequestPause): void {
    if (!this.pauses.delete(reason)) return;
    if (this.pauses.size === 0 && !this.closed) this.req.resume();
  }

  /** Reads whatever the client still sends and throws it away (the response no longer depends on it). */
  discardBody(): void {
    this.pauses.clear();
    this.req.resume();
  }

  writeHead(status: number, headers: HeaderList): void {
    // A Date the response already carries (from the upstream or the EPP) is kept, not doubled.
    if (headers.has('date')) this.res.sendDate = false;
    headers.set('server', SERVER_NAME);
    // A pod answering before the upload is done ends the connection too (the same check in Envoy covers every response).
    this.closeIfRequestIncomplete(headers);
    this.omitKeepAlive();
    const chunkedHead = this.frameHeadResponse(status, headers);
    // A pod's Trailer goes on as Envoy's HCM leaves it, except on a response Node will not chunk (a Content-Length, no
    // body, an HTTP/1.0 client): Node refuses to write Trailer there (ERR_HTTP_TRAILER_INVALID), so it cannot be carried.
    const bodiless = this.method === 'HEAD' || status < 200 || status === 204 || status === 304;
    if (!chunkedHead && (headers.has('content-length') || bodiless || this.req.httpVersion !== '1.1')) headers.remove('trailer');
    this.onResponseHeaders();
    this.onActivity();
    this.headSent = true;
    this.stats.status(status);
    this.res.writeHead(status, headers.toRawArray());
    // Envoy's HTTP/1 codec writes the head to the connection as it encodes it (StreamEncoderImpl::encodeHeadersBase
    // ends with flushOutput() unless the stream ends there, source/common/http/http1/codec_impl.cc @ v1.35.0); Node
    // holds it until the first body byte, so a streaming response whose pod has not produced a token yet (a queued
    // request, a long prefill) showed the client nothing, and a pod dying then left it a reset with no status at all.
    this.res.flushHeaders();
  }

  /** False when the client's socket is full; `onceDrained` tells when to go on. */
  write(chunk: Buffer): boolean {
    this.onActivity();
    return this.res.write(chunk);
  }

  onceDrained(cb: () => void): void {
    this.res.once('drain', cb);
  }

  end(trailers: HeaderList | null): void {
    if (this.closed || this.res.writableEnded) return;
    this.onActivity();
    const record = trailerRecord(trailers);
    if (record) {
      try {
        this.res.addTrailers(record);
      } catch {
        // an invalid trailer is dropped
      }
    }
    this.res.end();
  }

  endWith(body: Buffer): void {
    this.onActivity();
    this.res.end(body);
  }

  /** Cuts the client's connection: the only way left to say the response is broken once it has started. */
  reset(): void {
    this.res.destroy();
  }

  /**
   * A response made by the gateway itself (errors, the EPP's ImmediateResponse). To a gRPC request (Content-Type
   * `application/grpc` or `application/grpc+…`, as Grpc::Common::isGrpcRequestHeaders reads the request's headers when
   * they arrive, `filter_manager.h` requestHeadersInitialized @ v1.35.0 L815-821) it is gRPC's trailers-only answer,
   * as Utility::prepareLocalReply builds it (`source/common/http/utility.cc` @ v1.35.0 L727-759): status 200,
   * Content-Type `application/grpc`, `grpc-status` (the one given, else the HTTP status mapped by
   * Grpc::Utility::httpToGrpcStatus, unless the headers already carry one), `grpc-message` the percent-encoded body,
   * and no body.
   */
  sendLocalReply(status: number, body: string | Buffer, extra?: HeaderList, grpcStatus?: number): void {
    if (this.responseStarted) {
      this.res.destroy();
      return;
    }
    let bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const headers = extra ?? new HeaderList(bytes.length > 0 ? [['content-type', 'text/plain']] : []);
    if (this.isGrpcRequest) {
      headers.set('content-type', 'application/grpc');
      if (!headers.has('grpc-status')) headers.set('grpc-status', String(grpcStatus ?? httpToGrpcStatus(status)));
      // A trailing newline is kept: prepareLocalReply drops one only when the local reply's content type is JSON
      // ("JsonFormatter adds a '\n' at the end", `content_type == ContentTypeValues.Json &&`), and the HCM's default
      // body formatter, which Istio's gateways keep, is text (`source/common/local_reply/local_reply.cc` BodyFormatter).
      if (bytes.length > 0 && this.method !== 'HEAD') headers.set('grpc-message', grpcPercentEncode(bytes));
      status = 200;
      bytes = Buffer.alloc(0);
    }
    if (status > 999) {
      // Only the EPP's ImmediateResponse can ask for such a status (MutationUtils::isValidHttpStatus only floors it at
      // 200). Envoy's HTTP/1 codec writes the number as it is (ResponseEncoderImpl::encodeHeaders,
      // `source/common/http/http1/codec_impl.cc` @ v1.35.0: `HTTP/1.1 1000 Unknown`), a status line no HTTP/1.1
      // client reads (RFC 9112 §4: status-code = 3DIGIT), and Node's http cannot write it at all: the client's
      // connection is closed instead, which is what a client makes of Envoy's line. Nothing was sent, nothing counted.
      this.res.destroy();
      return;
    }
    // Utility::prepareLocalReply sets Content-Length only for a body; the encoder adds `content-length: 0` to a
    // bodiless one except in answer to HEAD (frameHeadResponse).
    if (bytes.length > 0 || this.method !== 'HEAD') headers.set('content-length', String(bytes.length));
    else headers.remove('content-length');
    headers.set('server', SERVER_NAME);
    this.closeIfRequestIncomplete(headers);
    this.omitKeepAlive();
    this.frameHeadResponse(status, headers);
    this.onResponseHeaders();
    this.onActivity();
    this.headSent = true;
    this.stats.status(status);
    this.res.writeHead(status, headers.toRawArray());
    this.res.end(bytes);
  }

  /**
   * A response to HEAD without Content-Length says `transfer-encoding: chunked`, as the GET's would, and carries no
   * body: Envoy's HTTP/1 encoder writes it so (StreamEncoderImpl::encodeHeadersBase, `source/common/http/http1/
   * codec_impl.cc` @ v1.35.0, with is_response_to_head_request_: not for 1xx, 204, 304 or an HTTP/1.0 client), where
   * Node writes no framing header for HEAD. Node sends no body for HEAD, and no last chunk either. True when added.
   */
  private frameHeadResponse(status: number, headers: HeaderList): boolean {
    const chunked = this.method === 'HEAD' && !headers.has('content-length') && status >= 200 && status !== 204
      && status !== 304 && this.req.httpVersion === '1.1';
    if (chunked) headers.set('transfer-encoding', 'chunked');
    return chunked;
  }

  /**
   * A reply sent before the client's request is complete ends the HTTP/1.1 connection: Envoy does not wait for the
   * rest of an upload it no longer needs ("If we are destroying a stream before remote is complete and the connection
   * does not support multiplexing, we should disconnect", ActiveStream::encodeHeaders in
   * source/common/http/conn_manager_impl.cc @ v1.35.0: `Connection: close`, counted as
   * `downstream_rq_response_before_rq_complete`, the connection closed after the response).
   */
  private closeIfRequestIncomplete(headers: HeaderList): void {
    if (!this.requestComplete()) this.stats.responseBeforeRequestComplete++;
    else if (!this.closeAfterResponse) return;
    headers.set('connection', 'close');
    this.res.shouldKeepAlive = false;
  }

  /** Ends the connection after the response, whatever the client asked (Envoy's `saw_connection_close_`). */
  endConnectionAfterResponse(): void {
    this.closeAfterResponse = true;
  }

  /**
   * An HTTP/1.1 response on a connection that stays open carries no `connection` header from Envoy: the HTTP/1 codec
   * writes only the header map (`source/common/http/http1/codec_impl.cc` @ v1.35.0 ResponseEncoderImpl::encodeHeaders,
   * encodeHeadersBase), from which the HCM removed the upstream's (ConnectionManagerUtility::mutateResponseHeaders) and
   * to which it adds `connection: close` only when the connection is to close (ActiveStream::encodeHeaders: the
   * client's `Connection: close`, a drain, a reply before the request is complete). Node adds `Connection: keep-alive`
   * unless told the header is removed; when it closes the connection it says `Connection: close`, as Envoy does.
   * HTTP/1.0 (`--accept-http-10`) is left to Node, which answers keep-alive with `Connection: keep-alive` as Envoy does.
   */
  private omitKeepAlive(): void {
    if (this.res.shouldKeepAlive && this.req.httpVersion === '1.1') this.res.removeHeader('connection');
  }

  /**
   * Whether the client's request is all in. A request without a body is complete with its headers (Envoy's HTTP/1
   * codec hands such headers on with end_stream), though Node marks it complete only after the request handler ran.
   */
  private requestComplete(): boolean {
    if (this.bodyEnded || this.req.complete) return true;
    const { 'transfer-encoding': te, 'content-length': length } = this.req.headers;
    return te === undefined && (length === undefined || Number(length) === 0);
  }
}

/** Grpc::Utility::httpToGrpcStatus (`source/common/grpc/status.cc` @ v1.35.0 L6-26). */
export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400: return 13; // INTERNAL
    case 401: return 16; // UNAUTHENTICATED
    case 403: return 7; // PERMISSION_DENIED
    case 404: return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504: return 14; // UNAVAILABLE
    default: return 2; // UNKNOWN
  }
}

/**
 * `grpc-message` as Envoy writes it (Utility::PercentEncoding::encode with the reserved `%`,
 * `source/common/http/utility.cc` @ v1.35.0 L1238-1275): bytes below SP, from `~` up, and `%` become `%XX`.
 */
export function grpcPercentEncode(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += b < 0x20 || b >= 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  return out;
}
