/**
 * The router with the override_host load-balancing policy, as the EnvoyFilter configures the decode cluster
 * (Envoy's `source/common/router/router.cc` and `source/extensions/load_balancing_policies/override_host/`): the
 * upstream is the first endpoint of the EPP's pick, read from `envoy.lb` dynamic metadata and honoured only where it
 * names a pool member; later entries serve connect-failure retries; the fallback policy (round robin, or a ring hash
 * on a header) orders everything after them. The attempts themselves are `UpstreamCall`'s.
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
  onResponse(res: http.IncomingMessage, endpoint: Endpoint): void;
  /** No endpoint produced a response; `status` is what the client gets. */
  onNoResponse(status: number, message: string): void;
  /** The upstream socket drained after `write` returned false. */
  onDrain(): void;
  /** The router has the whole request (Envoy's Filter::onRequestComplete, the end of the decoder chain). */
  onRequestComplete(): void;
}

/** The override_host candidates first (pick order), then the fallback policy's order, computed only if reached. */
class Candidates implements CandidateSource {
  private fallbackOrder: Endpoint[] | undefined;

  constructor(private readonly picks: readonly Endpoint[], private readonly fallback: () => Endpoint[]) {}

  next(tried: ReadonlySet<string>): Endpoint | undefined {
    for (const e of this.picks) if (!tried.has(e.address)) return e;
    this.fallbackOrder ??= this.fallback();
    for (const e of this.fallbackOrder) if (!tried.has(e.address)) return e;
    return undefined;
  }
}

export class Router {
  private call: UpstreamCall | null = null;
  private ended = false;
  private picks: readonly Endpoint[] = [];

  constructor(private readonly ctx: RouterContext, private readonly callbacks: RouterCallbacks) {}

  get routed(): boolean {
    return this.call !== null;
  }

  /**
   * Starts the upstream request for `headers` as they are now (after the EPP's mutations), once. `method` stands in
   * for a request that somehow lost its `:method`.
   */
  route(headers: HeaderList, lbMetadata: Readonly<Record<string, JsonValue>>, method: string): void {
    if (this.call) return;
    const { pool, fallback, opts, stats } = this.ctx;
    const { hosts, given } = overrideHosts(lbMetadata[DESTINATION_HEADER], pool);
    if (given && hosts.length === 0) stats.picksIgnored++;
    this.picks = hosts;
    const hashKey = opts.hashHeader ? headers.getJoined(opts.hashHeader) : undefined;
    const upstreamHeaders = new HeaderList(headers.pairs.filter(([n]) => !n.startsWith(':')));
    const authority = headers.get(':authority');
    if (authority) upstreamHeaders.pairs.unshift(['host', authority]);
    this.call = new UpstreamCall(
      { agent: this.ctx.agent, pool, connectTimeoutMs: opts.connectTimeoutMs, maxReplayBytes: opts.maxRequestBodyBytes * 2 },
      { method: headers.get(':method') ?? method, path: headers.get(':path') ?? '/', headers: upstreamHeaders },
      new Candidates(hosts, () => fallback.order(hashKey)),
      {
        onResponse: (res, endpoint) => this.callbacks.onResponse(res, endpoint),
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
