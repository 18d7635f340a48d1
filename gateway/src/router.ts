/**
 * The router with the override_host load-balancing policy, as the EnvoyFilter configures the decode cluster
 * (Envoy's `source/common/router/router.cc` and `source/extensions/load_balancing_policies/override_host/`): the
 * upstream is the first endpoint of the EPP's pick, read from `envoy.lb` dynamic metadata and honoured only where it
 * names a pool member; later entries serve connect-failure retries; the fallback policy (round robin, or a ring hash
 * on a header) answers the attempts after them. The attempts themselves are `UpstreamCall`'s.
 */
import type * as http from 'http';
import type { JsonValue } from '@kvroute/protocol/envoy';
import { overrideHosts, type Endpoint, type EndpointPool, type FallbackPolicy } from './endpoints';
import { HeaderList, trailerRecord } from './headers';
import type { ResolvedOptions } from './options';
import type { StatsCollector } from './stats';
import { UpstreamCall, type CandidateSource } from './upstream';

/** The pick's key in `envoy.lb` metadata, and the request header the EPP also sets (clients may not). */
export const DESTINATION_HEADER = 'x-gateway-destination-endpoint';
/** Names the endpoint that actually served a response; only the gateway sets it. */
export const SERVED_HEADER = 'x-gateway-destination-endpoint-served';
/** The dynamic metadata namespace override_host reads. */
export const LB_NAMESPACE = 'envoy.lb';

export interface RouterContext {
  readonly opts: ResolvedOptions;
  readonly pool: EndpointPool;
  readonly fallback: FallbackPolicy;
  readonly agent: http.Agent;
  readonly stats: StatsCollector;
  warn(key: string, msg: string, fields?: Record<string, unknown>): void;
}

export interface RouterCallbacks {
  /**
   * `serviceTimeMs`: what the router writes as `x-envoy-upstream-service-time`, the milliseconds from the whole
   * request being with the router to the response headers; undefined for a response that came before that.
   * `retried`: the response came from a retry (Envoy's `is_retry_`, which words a later reset's local reply).
   */
  onResponse(res: http.IncomingMessage, endpoint: Endpoint, serviceTimeMs: number | undefined, retried: boolean): void;
  /** No endpoint produced a response; `status` is what the client gets. */
  onNoResponse(status: number, message: string): void;
  /** The upstream socket drained after `write` returned false. */
  onDrain(): void;
  /** The router has the whole request (Envoy's Filter::onRequestComplete, the end of the decoder chain). */
  onRequestComplete(): void;
}

/**
 * Where each attempt goes, as Envoy's override_host LB and its fallback answer the router's chooseHost for the first
 * attempt and each retry: the override_host entries first, one per attempt
 * (`source/extensions/load_balancing_policies/override_host/load_balancer.cc` getEndpoint → consumeNextHost, which no
 * retry host predicate checks: a repeated entry is tried again), then the fallback policy, whose order is computed
 * only if reached. The attempt budget itself is `UpstreamCall`'s.
 *
 * - With `previous_hosts` (round robin: Istio's DefaultPolicy) a retry takes a host not yet tried. Once every host
 *   was tried, each re-pick is rejected until `host_selection_retry_max_attempts` (5, `retry.go` L49) is spent and
 *   Envoy keeps the last pick anyway (LoadBalancerBase::chooseHost), so the attempt still happens on a tried host;
 *   here it goes round the order again.
 * - Without it (ring hash: Istio's DefaultConsistentHashPolicy) the ring answers every attempt afresh and, no
 *   predicate rejecting anything (ThreadAwareLoadBalancerBase::LoadBalancerImpl::chooseHost returns the first
 *   host), a keyed request gets the same host each time: the order is taken once, so an ejection the first failure
 *   caused does not move the retry. A request without a key draws a new random ring point each attempt.
 */
class Candidates implements CandidateSource {
  private fallbackOrder: Endpoint[] | undefined;
  private laps = 0;
  /** The override_host entries consumed so far: one per attempt, tried or not (no retry predicate applies to them). */
  private consumed = 0;

  constructor(
    private readonly picks: readonly Endpoint[],
    private readonly fallback: () => Endpoint[],
    private readonly previousHosts: boolean,
    private readonly keyed: boolean,
    /** The policy's own per-attempt pick (round robin's, whose cursor moves on every pick), when it has one. */
    private readonly pick?: (tried: ReadonlySet<string>) => Endpoint,
  ) {}

  next(tried: ReadonlySet<string>): Endpoint | undefined {
    if (this.consumed < this.picks.length) return this.picks[this.consumed++];
    if (this.pick !== undefined) return this.pick(tried);
    if (!this.previousHosts) {
      if (!this.keyed) return this.fallback()[0];
      this.fallbackOrder ??= this.fallback();
      return this.fallbackOrder[0];
    }
    this.fallbackOrder ??= this.fallback();
    for (const e of this.fallbackOrder) if (!tried.has(e.address)) return e;
    return this.fallbackOrder[this.laps++ % this.fallbackOrder.length];
  }
}

export class Router {
  private call: UpstreamCall | null = null;
  private ended = false;
  private picks: readonly Endpoint[] = [];
  /** performance.now() when the router had the whole request (Envoy's downstream_request_complete_time_). */
  private requestCompleteAt: number | undefined;

  constructor(private readonly ctx: RouterContext, private readonly callbacks: RouterCallbacks) {}

  get routed(): boolean {
    return this.call !== null;
  }

  /**
   * Starts the upstream request for `headers` as they are now (after the EPP's mutations), once. `method` stands in
   * for a request that somehow lost its `:method`. `routeTimeoutMs`: the matched route's `timeout` (0: none).
   */
  route(headers: HeaderList, lbMetadata: Readonly<Record<string, JsonValue>>, method: string, routeTimeoutMs: number): void {
    if (this.call) return;
    const { pool, fallback, opts, stats } = this.ctx;
    const { hosts, given } = overrideHosts(lbMetadata[DESTINATION_HEADER], pool);
    if (given && hosts.length === 0) stats.picksIgnored++;
    this.picks = hosts;
    const hashKey = opts.hashHeader ? headers.getJoined(opts.hashHeader) : undefined;
    // The route's request_headers_to_remove, which Envoy's router applies after ext_proc (`requestHeadersToRemove`).
    const removed = opts.requestHeadersToRemove;
    const upstreamHeaders = new HeaderList(headers.pairs.filter(([n]) => !n.startsWith(':') && !removed.includes(n)));
    const authority = headers.get(':authority');
    if (authority) upstreamHeaders.pairs.unshift(['host', authority]);
    this.call = new UpstreamCall(
      {
        agent: this.ctx.agent,
        pool,
        connectTimeoutMs: opts.connectTimeoutMs,
        // Envoy's router keeps a request body for a retry up to the connection buffer limit, then abandons the retry
        // (Router::Filter::decodeData: `retry_or_shadow_abandoned` past `decoderBufferLimit()`, router.cc @ v1.35.0).
        maxReplayBytes: opts.requestBodyBufferLimitBytes,
        maxRetries: opts.maxRetries,
        retryBackOffBaseMs: opts.retryBackOffBaseMs,
        routeTimeoutMs,
      },
      { method: headers.get(':method') ?? method, path: headers.get(':path') ?? '/', headers: upstreamHeaders },
      new Candidates(hosts, () => fallback.order(hashKey), fallback.previousHosts, hashKey !== undefined,
        fallback.pick !== undefined ? (tried) => fallback.pick!(tried) : undefined),
      {
        onResponse: (res, endpoint, attempts) => {
          // Filter::onUpstreamHeaders (`source/common/router/router.cc`): "Only send upstream service time if we
          // received the complete request and this is not a premature response"; Istio leaves the router's
          // suppress_envoy_headers off on gateways (listener_builder.go @ 1.27.0 L440-442, SuppressDebugHeaders false).
          const at = this.requestCompleteAt;
          this.callbacks.onResponse(res, endpoint, at === undefined ? undefined : Math.floor(performance.now() - at), attempts > 1);
        },
        onError: (status, message) => this.callbacks.onNoResponse(status, message),
        onDrain: () => this.callbacks.onDrain(),
        onRetry: () => {
          stats.retries++;
        },
        onConnectFailure: (endpoint, reason) => {
          stats.upstreamConnectFailures++;
          this.ctx.warn(`connect:${endpoint.address}`, 'upstream connect failure', { endpoint: endpoint.address, reason });
        },
      },
    );
    this.call.start();
  }

  /** Request body bytes; false means wait for `onDrain`. Before routing there is nowhere to write, so true. */
  write(chunk: Buffer): boolean {
    return this.call ? this.call.write(chunk) : true;
  }

  /** Ends the request body, once; trailers go out only on a chunked body. */
  end(trailers: HeaderList | null): void {
    if (this.ended || !this.call) return;
    this.ended = true;
    this.requestCompleteAt = performance.now();
    this.call.end(trailerRecord(trailers));
    this.callbacks.onRequestComplete();
  }

  abort(): void {
    this.call?.abort();
  }

  /** Counts who served the response: an endpoint the EPP picked (honoured) or the fallback policy's. */
  recordServedBy(endpoint: Endpoint): void {
    const { pool, stats } = this.ctx;
    pool.stat(endpoint).served++;
    if (this.picks.includes(endpoint)) {
      stats.picksHonoured++;
      if (this.picks[0] === endpoint) pool.stat(endpoint).picked++;
    } else {
      stats.fallbacks++;
    }
  }
}
