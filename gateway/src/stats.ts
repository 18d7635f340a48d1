/** Counters the gateway keeps, returned by `stats()` and served as JSON at `GET /gateway/stats`. */
import type { EndpointPool } from './endpoints';
import { EnvoyExtProcStats } from './envoy-stats';
import type { ProcFailure } from './extproc-client';
import type { ExtProcClusterStats } from './ext-proc-cluster';
import { monotonicMs } from './clock';

/** Why a request went on without the EPP. `spurious`: the EPP answered out of order. */
export type FailOpenReason = ProcFailure | 'spurious';

/** Envoy's stream timeouts: HCM `request_timeout`, HCM `stream_idle_timeout`, route `timeout`. */
export type TimeoutKind = 'requestReceive' | 'idle' | 'route';

export interface EndpointStats {
  /** Responses this endpoint served. */
  readonly served: number;
  /** Requests whose honoured EPP pick named this endpoint first. */
  readonly picked: number;
  readonly connectFailures: number;
  readonly inFlight: number;
  /** Avoided by the fallback policies until a connect succeeds again or the ejection lapses. */
  readonly ejected: boolean;
}

export interface GatewayStats {
  readonly startedAt: string;
  /** Proxied requests received (the gateway's own /healthz and /gateway/stats not included). */
  readonly requests: number;
  readonly inFlight: number;
  /** Exchanges that finished with the whole response delivered. */
  readonly completed: number;
  /** Exchanges that ended early (client gone, upstream reset mid-response). */
  readonly aborted: number;
  /** Requests served by an endpoint from the EPP's pick list. */
  readonly picksHonoured: number;
  /** Requests whose pick named no endpoint of the pool (then routed by the fallback policy). */
  readonly picksIgnored: number;
  /** Requests routed by the fallback policy (no EPP configured or bypassed, no usable pick, EPP failed open). */
  readonly fallbacks: number;
  /** Requests the EPP let down that were served anyway (`failure_mode_allow`), by reason. */
  readonly failOpens: number;
  readonly failOpenReasons: Readonly<Record<FailOpenReason, number>>;
  /**
   * Fail-opens that went on without body bytes the EPP held (FULL_DUPLEX_STREAMED drains what it hands over), and how
   * many bytes were lost that way.
   */
  readonly lossyFailOpens: number;
  readonly failOpenBytesDropped: number;
  /** Requests answered 500/504 (or reset) because the EPP failed and the release's failure_mode_allow did not hold. */
  readonly failClosed: number;
  /** Requests ended by each of Envoy's stream timeouts. */
  readonly timeouts: Readonly<Record<TimeoutKind, number>>;
  /** ImmediateResponses from the EPP passed to the client. */
  readonly immediateResponses: number;
  /** Upstream attempts after the first (connect failures, stale keep-alive sockets). */
  readonly retries: number;
  readonly upstreamConnectFailures: number;
  /** Requests no route matched (`--route-prefixes`), answered 404 after the ext_proc filter: Envoy's `no_route`. */
  readonly routeNotFound: number;
  /** Header changes the EPP asked for that Envoy's default mutation rules (or HTTP/1.1) do not allow. */
  readonly rejectedHeaderMutations: number;
  readonly routeCacheClears: number;
  /**
   * Replies sent before the client's request was complete, each ending its connection (Envoy's
   * `downstream_rq_response_before_rq_complete`).
   */
  readonly responseBeforeRequestComplete: number;
  /** Upgrades refused with 403 (any type but websocket on a route: Envoy's `downstream_rq_ws_on_non_ws_route`). */
  readonly upgradesRejected: number;
  /** Status codes sent to clients. */
  readonly responsesByStatus: Readonly<Record<string, number>>;
  /** The subset of `responsesByStatus` that are errors (>= 400). */
  readonly errorsByStatus: Readonly<Record<string, number>>;
  readonly endpoints: Readonly<Record<string, EndpointStats>>;
  readonly extProc: {
    readonly target: string | null;
    /** The Envoy release the gateway behaves as. */
    readonly envoySemantics: string;
    readonly requestBodyMode: string;
    readonly requestTrailerMode: string;
    readonly responseHeaderMode: string;
    readonly responseBodyMode: string;
    readonly responseTrailerMode: string;
    readonly failureModeAllow: boolean;
    readonly streamsOpened: number;
    readonly openStreams: number;
    readonly messagesSent: number;
    readonly messagesReceived: number;
    /**
     * The EPP cluster: its load-balancing policy, outlier detection, and per replica the streams, failures and
     * ejections (null without an EPP).
     */
    readonly cluster: ExtProcClusterStats | null;
  };
  readonly fallbackPolicy: string;
}

export class StatsCollector {
  readonly startedAt = new Date().toISOString();
  requests = 0;
  inFlight = 0;
  completed = 0;
  aborted = 0;
  picksHonoured = 0;
  picksIgnored = 0;
  fallbacks = 0;
  failOpens = 0;
  readonly failOpenReasons: Record<FailOpenReason, number> = { unavailable: 0, error: 0, timeout: 0, closed: 0, spurious: 0 };
  lossyFailOpens = 0;
  failOpenBytesDropped = 0;
  failClosed = 0;
  readonly timeouts: Record<TimeoutKind, number> = { requestReceive: 0, idle: 0, route: 0 };
  immediateResponses = 0;
  retries = 0;
  upstreamConnectFailures = 0;
  routeNotFound = 0;
  rejectedHeaderMutations = 0;
  routeCacheClears = 0;
  responseBeforeRequestComplete = 0;
  upgradesRejected = 0;
  readonly responsesByStatus: Record<string, number> = {};
  /** Envoy's own ext_proc counters, those the filter counts (`envoy-stats.ts`). */
  readonly envoy = new EnvoyExtProcStats();

  failOpen(reason: FailOpenReason): void {
    this.failOpens++;
    this.failOpenReasons[reason]++;
  }

  /** Body bytes a fail-open went on without. */
  dropped(bytes: number): void {
    if (bytes <= 0) return;
    this.lossyFailOpens++;
    this.failOpenBytesDropped += bytes;
  }

  status(code: number): void {
    const k = String(code);
    this.responsesByStatus[k] = (this.responsesByStatus[k] ?? 0) + 1;
  }

  snapshot(pool: EndpointPool, extProc: GatewayStats['extProc'], fallbackPolicy: string, now = monotonicMs()): GatewayStats {
    const endpoints: Record<string, EndpointStats> = {};
    for (const e of pool.endpoints) {
      const h = pool.stat(e);
      endpoints[e.address] = {
        served: h.served,
        picked: h.picked,
        connectFailures: h.connectFailures,
        inFlight: h.inFlight,
        ejected: h.ejectedUntil > now,
      };
    }
    const errorsByStatus: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.responsesByStatus)) if (Number(k) >= 400) errorsByStatus[k] = v;
    return {
      startedAt: this.startedAt,
      requests: this.requests,
      inFlight: this.inFlight,
      completed: this.completed,
      aborted: this.aborted,
      picksHonoured: this.picksHonoured,
      picksIgnored: this.picksIgnored,
      fallbacks: this.fallbacks,
      failOpens: this.failOpens,
      failOpenReasons: { ...this.failOpenReasons },
      lossyFailOpens: this.lossyFailOpens,
      failOpenBytesDropped: this.failOpenBytesDropped,
      failClosed: this.failClosed,
      timeouts: { ...this.timeouts },
      immediateResponses: this.immediateResponses,
      retries: this.retries,
      upstreamConnectFailures: this.upstreamConnectFailures,
      routeNotFound: this.routeNotFound,
      rejectedHeaderMutations: this.rejectedHeaderMutations,
      routeCacheClears: this.routeCacheClears,
      responseBeforeRequestComplete: this.responseBeforeRequestComplete,
      upgradesRejected: this.upgradesRejected,
      responsesByStatus: { ...this.responsesByStatus },
      errorsByStatus,
      endpoints,
      extProc,
      fallbackPolicy,
    };
  }
}
