/**
 * One HTTP request through the gateway, run the way Envoy's connection manager runs a stream through the route's
 * filter chain: the downstream (the client), the ext_proc filter unless the route bypasses it, the router with
 * override_host, and the response relay, each in its own module. This one connects them and owns only what spans
 * all of them: where the client's body goes, the stream's timeouts, the local reply that ends everything, and the
 * teardown when the client's connection is done.
 */
import type * as http from 'http';
import { Downstream } from './downstream';
import type { Endpoint } from './endpoints';
import { ExtProcFilter, type FilterContext, type FilterHost, type RequestBodyRoute } from './ext-proc-filter';
import type { ExtProcCluster } from './ext-proc-cluster';
import type { HeaderList } from './headers';
import type { ResolvedOptions } from './options';
import { ResponseRelay } from './response-relay';
import { Router, type RouterContext } from './router';
import { StreamTimeouts, type TimeoutExpiry } from './timeouts';

export interface ExchangeContext extends RouterContext, FilterContext {
  /** Null when the gateway runs without an EPP. */
  readonly extProc: ExtProcCluster | null;
  done(x: Exchange): void;
}

function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * The gateway's routes, the demo HTTPRoute's: the models route (the bypass rules, whose ExtProcPerRoute disables
 * ext_proc and which has no route timeout) and the inference route (the prefixes); `none` when neither matches.
 */
type GatewayRoute = 'models' | 'inference' | 'none';

/**
 * The route a request matches on its `:method` and `:path`: a bypass rule's (its exact path, and its method when it
 * names one, as the models route's method match), else the inference route when there are no prefixes or one matches
 * as Gateway API's PathPrefix does (the prefix, or it followed by "/"; a trailing "/" on the prefix is ignored).
 */
function matchRoute(opts: Pick<ResolvedOptions, 'extProcBypass' | 'routePrefixes'>, method: string, url: string): GatewayRoute {
  const path = pathOnly(url);
  if (opts.extProcBypass.some((r) => r.path === path && (r.method === undefined || r.method === method))) return 'models';
  if (opts.routePrefixes.length === 0) return 'inference';
  const matches = opts.routePrefixes.some((raw) => {
    const prefix = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
    return prefix === '/' || path === prefix || path.startsWith(`${prefix}/`);
  });
  return matches ? 'inference' : 'none';
}

export class Exchange implements FilterHost {
  private readonly downstream: Downstream;
  private readonly router: Router;
  private readonly relay: ResponseRelay;
  private filter: ExtProcFilter | null = null;
  private bodyRoute: RequestBodyRoute = 'upstream';
  private readonly timeouts: StreamTimeouts;
  /**
   * The route matched on the client's request headers (the HCM's cached route); undefined once the EPP cleared the
   * route cache, so the router matches again on the headers as they are then.
   */
  private cachedRoute: GatewayRoute | undefined;
  /**
   * The matched route's ExtProcPerRoute `disabled`, decided once on the client's headers: the filter merges per-route
   * config only at decodeHeaders (`ext_proc.cc` @ v1.35.0 Filter::mergePerRouteConfig, `route_config_merged_`).
   */
  private readonly bypassed: boolean;
  /** The route timeout of the route the router took (0: none). */
  private routeTimeoutMs = 0;
  /** The upstream response came from a retry (Envoy's router `is_retry_`). */
  private responseRetried = false;

  /** `streamStartedAt`: when the request's head began to arrive (`performance.now()`), if the listener saw it. */
  constructor(
    private readonly ctx: ExchangeContext,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    private readonly streamStartedAt?: number,
  ) {
    this.downstream = new Downstream(req, res, ctx.stats, ctx.opts.http1EnableTrailers);
    this.router = new Router(ctx, {
      onResponse: (upstreamRes, endpoint, serviceTimeMs, retried) => {
        this.responseRetried = retried;
        this.onUpstreamResponse(upstreamRes, endpoint, serviceTimeMs);
      },
      onNoResponse: (status, message) => this.onNoUpstreamResponse(status, message),
      onDrain: () => this.downstream.resume('upstream'),
      onRequestComplete: () => this.timeouts.requestComplete(this.routeTimeoutMs),
    });
    this.relay = new ResponseRelay(this.downstream, () => this.timeouts.responseComplete(), ctx.opts.http1EnableTrailers,
      () => this.onUpstreamResetHeld());
    this.cachedRoute = matchRoute(ctx.opts, this.downstream.method, this.downstream.path);
    this.bypassed = this.cachedRoute === 'models';
    this.timeouts = new StreamTimeouts(ctx.opts, (e) => this.onTimeout(e));
  }

  start(): void {
    const { extProc } = this.ctx;
    const { downstream } = this;
    downstream.listen({
      activity: () => this.timeouts.activity(),
      responseHeaders: () => this.timeouts.responseHeaders(),
      data: (chunk) => this.onClientData(chunk),
      end: () => this.onClientEnd(),
      closed: (complete) => this.onClosed(complete),
    });
    this.timeouts.start(this.streamStartedAt);
    if (downstream.pathRejected) {
      // ConnectionManagerImpl::ActiveStream::decodeHeaders: a path that normalization refuses is answered 400 with an
      // empty body (`path_normalization_failed`) before the filter chain runs.
      this.sendLocalReply(400, '');
      return;
    }
    if (downstream.upgradeRejected && this.cachedRoute !== 'none') {
      // ConnectionManagerImpl::ActiveStream::decodeHeaders (`conn_manager_impl.cc` @ v1.35.0): an upgrade no config
      // allows, on a request a route matched (without one the router's 404 answers), gets 403 with an empty body
      // before any filter, details `upgrade_failed`, counted `downstream_rq_ws_on_non_ws_route`; and the connection
      // ends after it, "to avoid a class of HTTP/1.1 smuggling bugs" (`saw_connection_close_`).
      this.ctx.stats.upgradesRejected++;
      downstream.endConnectionAfterResponse();
      this.sendLocalReply(403, '');
      return;
    }
    if (!extProc || this.bypassed) {
      this.bodyRoute = 'upstream';
      this.route();
      return;
    }
    this.filter = new ExtProcFilter(this.ctx, extProc, { host: this, downstream, router: this.router, relay: this.relay });
    // Before the first message: a stream that fails at once fails open from here and reroutes the body itself.
    this.bodyRoute = downstream.hasBody ? 'filter' : 'discard';
    this.filter.start();
  }

  /** Ends the exchange at once (gateway shutdown). */
  abort(): void {
    this.downstream.reset();
  }

  get requestBodyRoute(): RequestBodyRoute {
    return this.bodyRoute;
  }

  requestBodyTo(route: RequestBodyRoute): void {
    this.bodyRoute = route;
  }

  clearRouteCache(): void {
    this.cachedRoute = undefined;
  }

  route(): void {
    // The router takes its route once: a clear after that changes nothing for this request.
    if (this.downstream.closed || this.router.routed) return;
    const { headers, method } = this.downstream;
    // A cleared cache is refilled by matching the route table on the headers as the filters left them
    // (ConnectionManagerImpl::ActiveStream::route → refreshCachedRoute, `conn_manager_impl.cc` @ v1.35.0).
    this.cachedRoute ??= matchRoute(this.ctx.opts, headers.get(':method') ?? method, headers.get(':path') ?? '/');
    if (this.cachedRoute === 'none') {
      // The router filter with no route: a 404 with an empty body, details `route_not_found`, counted `no_route`
      // (`source/common/router/router.cc` decodeHeaders @ v1.35.0).
      this.ctx.stats.routeNotFound++;
      this.sendLocalReply(404, '');
      return;
    }
    // The models route has no timeout, the inference route `--request-timeout-ms`; the router reads it off the route
    // it takes.
    this.routeTimeoutMs = this.cachedRoute === 'models' ? 0 : this.ctx.opts.requestTimeoutMs;
    this.router.route(headers, this.filter?.lbMetadata ?? {}, method, this.routeTimeoutMs);
  }

  sendLocalReply(status: number, body: string | Buffer, headers?: HeaderList, grpcStatus?: number): void {
    if (this.downstream.closed) return;
    this.filter?.closeStream();
    this.router.abort();
    this.relay.abandon();
    this.bodyRoute = 'discard';
    this.filter?.dropBuffers();
    this.downstream.discardBody();
    this.downstream.sendLocalReply(status, body, headers, grpcStatus);
  }

  private onClientData(chunk: Buffer): void {
    switch (this.bodyRoute) {
      case 'filter':
        this.filter?.request.onClientData(chunk);
        return;
      case 'upstream':
        if (!this.router.write(chunk)) this.downstream.pause('upstream');
        return;
      case 'drain':
      case 'discard':
        return;
    }
  }

  private onClientEnd(): void {
    switch (this.bodyRoute) {
      case 'filter':
        this.filter?.request.onClientEnd();
        return;
      case 'upstream':
      case 'drain':
        this.router.end(this.downstream.trailers);
        return;
      case 'discard':
        return;
    }
  }

  private onUpstreamResponse(res: http.IncomingMessage, endpoint: Endpoint, serviceTimeMs: number | undefined): void {
    if (this.downstream.closed) {
      res.resume();
      return;
    }
    this.router.recordServedBy(endpoint);
    this.filter?.recordSelectedHost(endpoint);
    this.relay.start(res, endpoint, this.filter?.onResponseHeaders() ?? null, serviceTimeMs);
  }

  private onNoUpstreamResponse(status: number, message: string): void {
    if (this.downstream.closed) return;
    this.ctx.warn(`upstream:${status}`, 'no upstream response', { status, message });
    // As Envoy's router sends it: the text alone, no newline (`router.cc` onUpstreamReset, sendNoHealthyHosts).
    this.sendLocalReply(status, message);
  }

  /**
   * The pod's connection closed mid-response while the response head was still held on its way to the client (the
   * ext_proc filter waiting for the EPP's answer to response_headers). Envoy's router takes this as any upstream reset
   * (`Filter::onUpstreamReset`, no retry once the response started) and calls `sendLocalReply`, which the filter
   * manager sends straight to the codec when no non-1xx headers were encoded yet (`FilterManager::sendLocalReply`,
   * "Sending local reply with details {} directly to the encoder", source/common/http/filter_manager.cc @ v1.35.0):
   * the client gets a 503, not a reset connection (a reset is only for a response whose headers went out).
   */
  private onUpstreamResetHeld(): void {
    this.onNoUpstreamResponse(503, `upstream connect error or disconnect/reset before headers. ${this.responseRetried ? 'retried and the latest ' : ''}reset reason: connection termination`);
  }

  /** One of Envoy's stream timeouts expired: its local reply, or a reset once the response has started. */
  private onTimeout(e: TimeoutExpiry): void {
    if (this.downstream.closed) return;
    this.ctx.stats.timeouts[e.kind]++;
    this.ctx.warn(`timeout:${e.kind}`, 'stream timeout', { kind: e.kind, path: this.downstream.path });
    // maybeRequestTimeoutCode: 504 once the client's whole request is in, else 408; the route timeout is always 504.
    const status = e.kind === 'route' || this.downstream.ended || !this.downstream.hasBody ? 504 : 408;
    this.sendLocalReply(status, e.body);
  }

  private onClosed(complete: boolean): void {
    this.timeouts.clear();
    this.filter?.onDestroy();
    if (!complete || !this.relay.upstreamEnded) {
      this.router.abort();
      this.relay.abandon();
    }
    this.filter?.dropBuffers();
    this.ctx.done(this);
  }
}
