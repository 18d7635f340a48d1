/**
 * The EPP cluster: several EPP replicas behind one ext_proc filter, as Envoy sees the Istio-generated cluster
 * `outbound|9002||<epp service>` the filter's `grpc_service.envoy_grpc.cluster_name` names. Each ext_proc `Process`
 * stream is one request on that cluster, so each stream picks a host with the cluster's load balancer, and the
 * cluster's outlier detector watches what the streams report.
 *
 * Load balancing (which policy applies):
 * - Istio gives every outbound cluster `LEAST_REQUEST` unless a DestinationRule says otherwise
 *   (istio/istio `pilot/pkg/networking/core/cluster_traffic_policy.go` @ 011b88bb13, applySimpleDefaultLoadBalancer /
 *   defaultLBAlgorithm; `ROUND_ROBIN` only with a DestinationRule `simple: ROUND_ROBIN`, or Istio's old
 *   ENABLE_LEGACY_LB_ALGORITHM_DEFAULT). Envoy's own default (a cluster with no `lb_policy`) is ROUND_ROBIN, but Istio
 *   always sets one. kvroute's manifests put no DestinationRule on the EPP service, so `least-request` is the default.
 * - With equal weights Envoy's LEAST_REQUEST is the power of two choices over the hosts' active requests: `choice_count`
 *   (2) draws with replacement, the later draw replaces the candidate only with strictly fewer active requests
 *   (envoyproxy/envoy `source/extensions/load_balancing_policies/least_request/least_request_lb.cc`,
 *   unweightedHostPickNChoices, v1.35-v1.38). Active requests here are the host's open ext_proc streams.
 * - ROUND_ROBIN with equal weights walks the hosts in order (`RoundRobinLoadBalancer::unweightedHostPick`).
 * - Ejected hosts leave the healthy set the balancer draws from. With none healthy, Istio's DestinationRule outlier
 *   detection sets `healthy_panic_threshold` to `minHealthPercent` (0 by default, panic mode off), so the stream gets
 *   Envoy's "no healthy upstream" (UNAVAILABLE) and the ext_proc filter's failure_mode_allow decides.
 *
 * Outlier detection (envoyproxy/envoy `source/common/upstream/outlier_detection_impl.cc` and `.h`, main @ 00c7146d95,
 * the same logic since v1.20): off unless configured — Istio builds a cluster's `outlier_detection` only from a
 * DestinationRule's `trafficPolicy.outlierDetection` (applyOutlierDetection, same file as above). Modelled:
 * - results without split_external_local_origin_errors (Envoy's default, putResultNoLocalExternalSplit): a connect
 *   failure is a 503 (resultToHttpCode), a reset stream a connect failure too (the router reports
 *   LocalOriginConnectFailed on an upstream reset), a gRPC status its HTTP mapping (503 for UNAVAILABLE, 500 for
 *   INTERNAL, ...) when it comes without an answer before it (a trailers-only response), the first answer (the
 *   upstream's 200 response headers) a success that resets the counters; a status after the answer, in the trailers,
 *   is not reported (router.cc onUpstreamHeaders); UNAVAILABLE and CANCELLED, grpc-js's ends of a stream whose
 *   connection was lost or that the EPP reset (a grpc-js server's forceShutdown), are reported as the reset (503);
 * - `consecutive_5xx` (Envoy default 5, enforced 100%) and `consecutive_gateway_failure` (502/503/504; Envoy counts 5
 *   but enforces 0%, Istio enforces 100% when a DestinationRule sets consecutiveGatewayErrors: here 0 = not enforced);
 * - an ejection is refused (`ejections_overflow`) when `100 * (active ejections + 1) / hosts > max_ejection_percent`
 *   (default 10: with 2 or 3 replicas Envoy's defaults never eject one; ejectHost);
 * - an ejected host comes back on the first interval tick (default 10 s) at least `min(base_ejection_time × backoff,
 *   max_ejection_time)` after its ejection (checkHostForUneject; base 30 s, max 300 s); the backoff grows by one per
 *   ejection and shrinks by one per interval a healthy host spent unejected (onIntervalTimer); unejecting resets the
 *   consecutive counters;
 * - not modelled: success-rate and failure-percentage ejection (they need 5 hosts by default, and Istio sets
 *   enforcing_success_rate 0), ejection jitter (default 0).
 *
 * Retries: none. The ext_proc filter opens its stream with the Envoy gRPC async client, which asks the HTTP async
 * client not to buffer a stream's body for a retry (`source/common/grpc/async_client_impl.cc`, startRaw →
 * initialize(false)), and kvroute's EnvoyFilter sets no `grpc_service.retry_policy` (`lib/ext-proc.ts`): a stream that
 * fails on one replica is not tried on another; the filter's failure_mode_allow decides what the request does.
 */
import type { ExtProcClient, ExtProcSession, SessionHandlers } from './extproc-client';
import { monotonicMs } from './clock';

export type ExtProcLbPolicy = 'least-request' | 'round-robin';
export const EXT_PROC_LB_POLICIES: readonly ExtProcLbPolicy[] = ['least-request', 'round-robin'];

/** Envoy's `OutlierDetection` fields the gateway models, with Envoy's defaults. */
export interface OutlierDetectionConfig {
  /** `consecutive_5xx` (enforced 100%); 0 = off. */
  readonly consecutive5xx: number;
  /** `consecutive_gateway_failure`, enforced 100% as Istio's consecutiveGatewayErrors does; 0 = not enforced (Envoy's default). */
  readonly consecutiveGatewayFailure: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  /** `max_ejection_time`: default the larger of 300 s and the base ejection time. */
  readonly maxEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
}

export const OUTLIER_DETECTION_DEFAULTS: OutlierDetectionConfig = Object.freeze({
  consecutive5xx: 5,
  consecutiveGatewayFailure: 0,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
});

export type EjectionType = 'consecutive_5xx' | 'consecutive_gateway_failure';

/** One EPP replica as the cluster sees it. */
export interface ExtProcHostStats {
  /** Streams this host was picked for. */
  readonly streams: number;
  /** Its streams open now (Envoy's `rq_active`, what LEAST_REQUEST compares). */
  readonly activeStreams: number;
  /** Streams that reported a 5xx result to the outlier detector (connect failure, reset, non-OK gRPC status). */
  readonly failures: number;
  readonly consecutive5xx: number;
  /** Times the outlier detector ejected it. */
  readonly ejections: number;
  readonly ejected: boolean;
  /** In the endpoint set (false after an EDS update removed it). */
  readonly member: boolean;
}

export interface ExtProcClusterStats {
  readonly lbPolicy: ExtProcLbPolicy;
  /** null when outlier detection is off (no DestinationRule outlierDetection). */
  readonly outlierDetection: OutlierDetectionConfig | null;
  readonly hosts: Readonly<Record<string, ExtProcHostStats>>;
  /** Envoy's `outlier_detection.*` cluster stats. */
  readonly ejectionsActive: number;
  readonly ejectionsEnforcedTotal: number;
  readonly ejectionsOverflow: number;
  readonly ejectionsDetected: Readonly<Record<EjectionType, number>>;
  /** Streams that found no healthy host (every replica ejected). */
  readonly noHealthyUpstream: number;
}

/** A channel's counters, as the gateway sums them into its stats. */
export type ExtProcCounters = Pick<ExtProcClient, 'streamsOpened' | 'streamsStarted' | 'streamsClosed' | 'messagesSent' | 'messagesReceived' | 'openSessions'>;
/** The counters a closed channel hands on (its open sessions are 0 by then). */
const COUNTERS = ['streamsOpened', 'streamsStarted', 'streamsClosed', 'messagesSent', 'messagesReceived'] as const;

/**
 * One host of the cluster as Envoy holds it: a HostImpl with its outlier monitor and its `rq_active`. A stream keeps
 * the Host it was opened on. EDS adding an address back makes a new Host (see `setMembers`), so what the streams of
 * the removed one report afterwards, and their ends, stay with the removed one.
 */
interface Host {
  readonly address: string;
  client: ExtProcClient;
  /** In the cluster's endpoint set (EDS): a host Istio removed (its pod not Ready) is never picked; never true again. */
  member: boolean;
  /** The address's stream and failure counts, kept across the Hosts EDS makes for it. */
  readonly totals: { streams: number; failures: number; ejections: number };
  active: number;
  consecutive5xx: number;
  consecutiveGateway: number;
  ejected: boolean;
  lastEjectionAt: number;
  lastUnejectionAt: number | null;
  backoff: number;
}

function newHost(address: string, client: ExtProcClient, totals: Host['totals']): Host {
  return {
    address, client, member: true, totals, active: 0, consecutive5xx: 0, consecutiveGateway: 0, ejected: false,
    lastEjectionAt: 0, lastUnejectionAt: null, backoff: 0,
  };
}

/** gRPC status → HTTP status, as Envoy's Grpc::Utility::grpcToHttpStatus maps it for the router's outlier reports. */
export function grpcToHttpStatus(code: number): number {
  switch (code) {
    case 0: return 200;
    case 1: return 499;
    case 3: case 9: case 11: return 400;
    case 4: return 504;
    case 5: return 404;
    case 6: case 10: return 409;
    case 7: return 403;
    case 8: return 429;
    case 12: return 501;
    case 14: return 503;
    case 16: return 401;
    default: return 500; // UNKNOWN, INTERNAL, DATA_LOSS
  }
}

const GRPC_CANCELLED = 1;
const GRPC_UNAVAILABLE = 14;

function isGatewayError(http: number): boolean {
  return http === 502 || http === 503 || http === 504;
}

export interface ExtProcClusterOptions {
  readonly lbPolicy: ExtProcLbPolicy;
  readonly outlierDetection: OutlierDetectionConfig | null;
  /** For tests: a seeded source in [0, 1). */
  readonly random?: () => number;
  readonly now?: () => number;
  /**
   * A new channel for a host EDS removed, made when the old one starts draining: Envoy builds a new host with its own
   * connection pool when the host is added back, which connects on demand, where the old grpc-js channel may still
   * wait out its reconnect backoff and fail calls meanwhile.
   */
  readonly newClient?: (address: string) => ExtProcClient;
  /** Told of every ejection and unejection (the gateway logs them). */
  readonly onEjection?: (address: string, ejected: boolean, type?: EjectionType) => void;
}

export class ExtProcCluster {
  private readonly hosts: Host[];
  /**
   * Channels of hosts EDS replaced, kept while their streams run: each closes when its last stream ends (Envoy drains
   * and deletes a removed host's connection pools), its counters then added to `retiredCounters`. Kept until the
   * cluster closed, a replica that left and came back again and again held one more channel and connection each time.
   */
  private readonly retired = new Set<ExtProcClient>();
  /** The counters of the replaced channels that closed, so the totals the gateway reports never go back. */
  private readonly retiredCounters: ExtProcCounters = { streamsOpened: 0, streamsStarted: 0, streamsClosed: 0, messagesSent: 0, messagesReceived: 0, openSessions: 0 };
  private rr = 0;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout | undefined;
  private ejectionsActive = 0;
  private ejectionsEnforcedTotal = 0;
  private ejectionsOverflow = 0;
  private noHealthyUpstream = 0;
  private readonly detected: Record<EjectionType, number> = { consecutive_5xx: 0, consecutive_gateway_failure: 0 };

  constructor(clients: readonly { address: string; client: ExtProcClient }[], private readonly options: ExtProcClusterOptions) {
    if (clients.length === 0) throw new Error('the EPP cluster has no hosts');
    this.hosts = clients.map(({ address, client }) => newHost(address, client, { streams: 0, failures: 0, ejections: 0 }));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? monotonicMs;
    // Envoy's interval timer (armIntervalTimer); unref'd so an idle gateway can exit.
    if (options.outlierDetection) {
      this.timer = setInterval(() => this.onInterval(), options.outlierDetection.intervalMs);
      this.timer.unref();
    }
  }

  /** Every open channel, those of replaced hosts still draining included. */
  get clients(): readonly ExtProcClient[] {
    return [...this.hosts.map((h) => h.client), ...this.retired];
  }

  /** The counters of every channel the cluster had, closed ones included (the gateway sums them). */
  get counters(): readonly ExtProcCounters[] {
    return [...this.clients, this.retiredCounters];
  }

  /** Opens a `Process` stream on the host the load balancer picks. Never throws. */
  open(handlers: SessionHandlers): ExtProcSession {
    const host = this.pick();
    if (!host) {
      this.noHealthyUpstream++;
      // The router's local reply "no healthy upstream" (503) reaches the gRPC client as UNAVAILABLE; no host, so
      // nothing for the outlier detector.
      return this.hosts[0].client.refuse(handlers, 'no healthy upstream');
    }
    host.totals.streams++;
    host.active++;
    let answered = false;
    let ended = false;
    return host.client.open({
      owed: (direction) => handlers.owed(direction),
      onMessage: (msg) => {
        if (!answered) {
          answered = true;
          this.putResult(host, 200);
        }
        handlers.onMessage(msg);
      },
      onFailure: (kind, detail, code) => {
        // Envoy's router reports a gRPC stream at its response headers (router.cc Filter::onUpstreamHeaders): a
        // trailers-only response (no answer before it) as its grpc-status's HTTP mapping, headers without grpc-status
        // (those of the first answer, reported above) as 200. A grpc-status in the trailers after them is not reported
        // ("does not handle the case when an error grpc-status is sent as a trailer"); a reset stream is, before or
        // after the headers (onUpstreamReset: LocalOriginConnectFailed, a 503). grpc-js gives no way to tell the EPP's
        // status from a reset, so the two statuses grpc-js ends a lost stream with count as the reset: UNAVAILABLE (the
        // connection lost or refused) and CANCELLED (RST_STREAM CANCEL from the EPP, as a grpc-js server's
        // forceShutdown resets its open streams; the gateway's own cancellations are never reported here). An EPP
        // sending grpc-status CANCELLED or, after an answer, UNAVAILABLE is counted as a reset too. Until session 76
        // every status was reported by its mapping: an answered stream the EPP ended with DEADLINE_EXCEEDED was a 504
        // gateway failure, and a stream reset by a replica shutting down a 499, a success resetting the counters.
        // 'timeout' is the filter's own timer: Envoy resets the stream locally, which the router does not report.
        if (kind === 'timeout') {
          // not reported
        } else if (code === GRPC_UNAVAILABLE || code === GRPC_CANCELLED) {
          this.putResult(host, 503);
        } else if (!answered) {
          this.putResult(host, grpcToHttpStatus(code));
        }
        handlers.onFailure(kind, detail, code);
      },
      onEnd: () => {
        if (ended) return;
        ended = true;
        host.active--;
      },
    });
  }

  stats(): ExtProcClusterStats {
    const hosts: Record<string, ExtProcHostStats> = {};
    for (const h of this.hosts) {
      hosts[h.address] = {
        streams: h.totals.streams, activeStreams: h.active, failures: h.totals.failures, consecutive5xx: h.consecutive5xx,
        ejections: h.totals.ejections, ejected: h.ejected, member: h.member,
      };
    }
    return {
      lbPolicy: this.options.lbPolicy,
      outlierDetection: this.options.outlierDetection,
      hosts,
      ejectionsActive: this.ejectionsActive,
      ejectionsEnforcedTotal: this.ejectionsEnforcedTotal,
      ejectionsOverflow: this.ejectionsOverflow,
      ejectionsDetected: { ...this.detected },
      noHealthyUpstream: this.noHealthyUpstream,
    };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.clients) c.close();
  }

  /**
   * The cluster's membership as Istio's EDS pushes it: the EPP Service's ready endpoints. A host that leaves (its pod
   * died or is not Ready) is not picked; its open streams go on, and its channel closes after them. One that joins again is a new host to Envoy, with a
   * fresh outlier monitor (DetectorImpl's member update callback erases a removed host's monitor and adds a new one),
   * so an ejection it had is gone. Returns the addresses it does not know (the configured EPP addresses are the only
   * ones; they are the Service's possible endpoints).
   */
  setMembers(addresses: readonly string[]): string[] {
    const known = new Set(this.hosts.map((h) => h.address));
    const unknown = addresses.filter((a) => !known.has(a));
    if (unknown.length > 0) return unknown;
    const wanted = new Set(addresses);
    for (let i = 0; i < this.hosts.length; i++) {
      const h = this.hosts[i];
      const member = wanted.has(h.address);
      if (member === h.member) continue;
      if (member) {
        // Back in the set, it is a new host to Envoy (BaseDynamicClusterImpl::updateDynamicHostList matches the
        // addresses EDS sends only against hosts still in the cluster), with a new outlier monitor (the detector's
        // member update callback adds one) and its own rq_active. The removed Host stays with the streams opened on it:
        // what they report is dropped, as Envoy's DetectorImpl::onConsecutiveErrorWorker ignores a host no longer in
        // host_monitors_, and their ends do not count against the new host's active requests (LEAST_REQUEST). One Host
        // for both (until session 76), a stream opened before the removal and failing after the return counted
        // against the returned replica (with consecutiveGatewayErrors 1, ejected it), and its open streams made P2C
        // pass it over.
        this.hosts[i] = newHost(h.address, h.client, h.totals);
        continue;
      }
      // Removed: its monitor leaves the detector (an ejection it had no longer counts against max_ejection_percent).
      h.member = false;
      if (h.ejected) {
        h.ejected = false;
        this.ejectionsActive--;
      }
      // Envoy drains and deletes a host's connection pools when EDS removes it, not when it comes back
      // (cluster_manager_impl.cc ThreadLocalClusterManagerImpl::removeHosts: "purge any connection pools for hosts that
      // got deleted" → drainConnPools → DrainAndDelete): its streams go on and its connection closes after the last.
      // The host's next channel is made now and stays unconnected until a stream is opened on it, which is not before
      // EDS adds the host back (a removed host is never picked), so that host starts with no reconnect backoff of the
      // old channel's. Replaced only on its return (until session 75), a removed replica's connection stayed open as
      // long as it stayed out.
      if (this.options.newClient) {
        const old = h.client;
        this.retired.add(old);
        h.client = this.options.newClient(h.address);
        old.closeWhenIdle(() => {
          if (!this.retired.delete(old)) return;
          for (const k of COUNTERS) this.retiredCounters[k] += old[k];
        });
      }
    }
    return [];
  }

  /** Runs the interval's uneject pass now (tests drive a fake clock with it). */
  tick(): void {
    this.onInterval();
  }

  private pick(): Host | undefined {
    const healthy = this.hosts.filter((h) => h.member && !h.ejected);
    if (healthy.length === 0) return undefined;
    if (healthy.length === 1) return healthy[0];
    if (this.options.lbPolicy === 'round-robin') return healthy[this.rr++ % healthy.length];
    // P2C: two draws with replacement; the second wins only with strictly fewer active requests.
    let candidate = healthy[Math.floor(this.random() * healthy.length)];
    const sampled = healthy[Math.floor(this.random() * healthy.length)];
    if (sampled.active < candidate.active) candidate = sampled;
    return candidate;
  }

  /** DetectorHostMonitorImpl::putHttpResponseCode. */
  private putResult(h: Host, http: number): void {
    if (http >= 500) h.totals.failures++;
    const od = this.options.outlierDetection;
    // A host EDS removed has no outlier monitor any more: what its last streams report is dropped.
    if (!od || !h.member) return;
    if (http >= 500) {
      if (isGatewayError(http)) {
        if (++h.consecutiveGateway === od.consecutiveGatewayFailure) this.onConsecutiveError(h, 'consecutive_gateway_failure');
      } else {
        h.consecutiveGateway = 0;
      }
      if (++h.consecutive5xx === od.consecutive5xx) this.onConsecutiveError(h, 'consecutive_5xx');
    } else {
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
    }
  }

  /** DetectorImpl::onConsecutiveErrorWorker: detect, try to eject, reset that counter. */
  private onConsecutiveError(h: Host, type: EjectionType): void {
    if (h.ejected) return;
    this.detected[type]++;
    this.eject(h, type);
    if (type === 'consecutive_5xx') h.consecutive5xx = 0;
    else h.consecutiveGateway = 0;
  }

  /** DetectorImpl::ejectHost. */
  private eject(h: Host, type: EjectionType): void {
    const od = this.options.outlierDetection!;
    const maxPercent = Math.min(100, od.maxEjectionPercent);
    const ejectedPercent = (100 * (this.ejectionsActive + 1)) / this.hosts.filter((x) => x.member).length;
    if (ejectedPercent > maxPercent) {
      this.ejectionsOverflow++;
      return;
    }
    this.ejectionsActive++;
    this.ejectionsEnforcedTotal++;
    h.ejected = true;
    h.totals.ejections++;
    h.lastEjectionAt = this.now();
    if (h.backoff * od.baseEjectionTimeMs < od.maxEjectionTimeMs + od.baseEjectionTimeMs) h.backoff++;
    this.options.onEjection?.(h.address, true, type);
  }

  /** DetectorImpl::onIntervalTimer: uneject what served its time; shrink the backoff of hosts that stayed healthy. */
  private onInterval(): void {
    const od = this.options.outlierDetection;
    if (!od) return;
    const now = this.now();
    for (const h of this.hosts) {
      if (h.ejected && Math.min(od.baseEjectionTimeMs * h.backoff, od.maxEjectionTimeMs) <= now - h.lastEjectionAt) {
        this.ejectionsActive--;
        h.ejected = false;
        h.consecutive5xx = 0;
        h.consecutiveGateway = 0;
        h.lastUnejectionAt = now;
        this.options.onEjection?.(h.address, false);
      }
    }
    for (const h of this.hosts) {
      if (!h.ejected && h.lastUnejectionAt !== null && now - h.lastUnejectionAt >= od.intervalMs && h.backoff > 0) h.backoff--;
    }
  }
}
