import { parseDuration, type Duration } from '../../config/duration';
import type { EndpointMetrics, EndpointSnapshot } from '../../datastore/types';
import { stateKey, type CycleContext, type Filter, type Plugin, type PluginHandle } from '../framework';
import type { SchedulingErrorReason } from '../types';
import type { SaturationExclusionReason } from '../metrics-hooks';
import { FieldReader } from '../../config/fields';
import { definePlugin, parameters } from '../plugin';

export interface SaturationFilterParameters {
  /** Drop endpoints whose `vllm:num_requests_waiting` exceeds this. @default 5 */
  queueDepthThreshold?: number;
  /** Drop endpoints whose KV-cache usage (0..1) exceeds this. @default 0.8 */
  kvCacheUtilThreshold?: number;
  /** Drop endpoints whose last successful scrape is older than this (never scraped counts as stale). @default "200ms" */
  metricsStalenessThreshold?: Duration;
  /**
   * Drop endpoints with more than N scrapes in a row failed, even if the last good data is still fresh: a refused
   * connection fails fast, well before the data goes stale. Also how many timed-out scrapes in a row a pod's metrics
   * stay late rather than lost (`scrapesLost`).
   * @default 3
   */
  maxConsecutiveScrapeFailures?: number;
  /**
   * `filter`: every loaded pod is dropped, so prefix and session affinity never add to a loaded pod while another has
   * room. `admission` (kvroute's default config sets it, since 2026-11-30): GIE's saturation detector — loaded pods stay
   * candidates (the scorers weigh their load against what they cache; `LOADED_CANDIDATES` names them) until no pod has
   * room, when the cycle fails `saturated` as in `filter` mode. Pods with unreadable metrics are dropped in both
   * modes. @default "filter" when a config omits it (absent from rendered configs)
   */
  mode?: 'filter' | 'admission';
  /**
   * Whether a pod's queue is its scraped `vllm:num_requests_waiting` plus the requests this EPP routed to it after that
   * page's request went out, less those that ended on it since (`EndpointSnapshot.netPicksSinceScrape`). vLLM queues
   * every arriving request in WAITING until its next step schedules it, and an ended request frees a slot, so what was
   * routed after the page is queue the page cannot show yet: counted, a burst (a backlog read at once after an EPP
   * stall, a wave of new sessions) fills each pod one past the threshold and then waits in flow control for the next
   * pages instead of landing on the pods whole; requests that come and go between two pages do not pile up. At a
   * steady rate it adds well under one request (a pod taking 10 requests a second gets one every other 50 ms scrape).
   * A P/D request's prefill pick counts on its prefill pod (routed at the pick, ended when the response starts: the
   * datastore's in-flight accounting, `RequestControl` commit/release), and each EPP replica counts its own. `false` reads the page alone, as GIE's detector does (`saturationdetector/utilization/detector.go` @ v1.5.0
   * reads the scraped queue).
   * @default true (absent from rendered configs unless set)
   */
  countPicksSinceScrape?: boolean;
}

/**
 * How long past the staleness threshold a pod's metrics count as late rather than lost when no scrape of it failed
 * fast: a starved scrape worker catches up within it; a hung one, or one that never reported, does not, and requests
 * stop waiting for it (503). It bounds the wait for a pod whose scrapes keep timing out too, whatever the timeout.
 */
export const LATE_WINDOW_MS = 4000;

/** `maxConsecutiveScrapeFailures`'s default; also the count `scrapeTimeoutsToLost` gives a config without the filter. */
export const DEFAULT_MAX_CONSECUTIVE_SCRAPE_FAILURES = 3;

/**
 * The timed-out scrapes in a row after which a pod's metrics are lost, for the readers that have no such parameter of
 * their own (the `utilization-detector`'s `unreadable`, request control's check for a pool whose pods are all gone):
 * the `maxConsecutiveScrapeFailures` of the config's `saturation-filter`, so that a request the filter holds for
 * metrics it reads as late is not answered by request control as if they were lost (or the reverse); the largest when
 * several filters set it (a request waits because some filter read its pods as late, and the largest count says so
 * longest); the default without a filter.
 */
export function scrapeTimeoutsToLost(plugins: Iterable<Plugin>): number {
  let limit: number | undefined;
  for (const plugin of plugins) {
    if (plugin instanceof SaturationFilter) limit = Math.max(limit ?? 0, plugin.maxConsecutiveScrapeFailures);
  }
  return limit ?? DEFAULT_MAX_CONSECUTIVE_SCRAPE_FAILURES;
}

/**
 * Whether a pod's failed scrapes since its last good one say it is gone rather than late: one failed fast (a refused
 * or reset connection, an HTTP error, a page that is not a model server's), or `maxTimeouts` or more in a row timed
 * out. Fewer timeouts are what a pod too busy to answer within the scrape timeout, or an EPP too starved of CPU to read
 * the answer in time, looks like: the next scrapes usually succeed. GIE v1.5.0 makes no such difference and never
 * answers 503 for failed scrapes: a failed FetchMetrics stores nothing (`pkg/epp/backend/metrics/pod_metrics.go`
 * refreshMetrics), and the metrics' age makes the saturation detector count the pod as full, so flow control holds the
 * request (`saturationdetector/utilization/detector.go` Saturation). The one reading of `consecutiveFailures` for lost
 * metrics: the `saturation-filter`, the `utilization-detector`'s `unreadable` and request control's check for a pool
 * whose pods are all gone share it.
 */
export function scrapesLost(metrics: EndpointMetrics, maxTimeouts: number): boolean {
  const failures = metrics.consecutiveFailures;
  return failures > 0 && ((metrics.timedOutFailures ?? 0) < failures || failures >= maxTimeouts);
}

/**
 * Whether a pod's metrics are lost rather than only late: its scrapes since the last good one say it is gone
 * (`scrapesLost`: one failed fast, or `maxTimeouts` timed out in a row), or the last good one is older than the
 * staleness threshold plus LATE_WINDOW_MS (a stuck scraper, or scrapes that keep timing out), or none ever came and the
 * pod was discovered longer ago than that (a pod found moments ago, its first scrape on its way, is late: a pool scaled
 * from zero, or replaced whole, waits for it rather than answering 503). Shared with the `utilization-detector`'s
 * `unreadable`.
 */
export function metricsLost(candidate: EndpointSnapshot, now: number, stalenessMs: number, maxTimeouts: number): boolean {
  const { metrics } = candidate;
  if (scrapesLost(metrics, maxTimeouts)) return true;
  const since = metrics.updateTime > 0 ? metrics.updateTime : candidate.discoveredTime;
  return since === undefined || now - since > stalenessMs + LATE_WINDOW_MS;
}

/** One filter call's exclusions, in candidate order; `late` when one was a pod whose metrics are only late. */
type Exclusions = SaturationExclusionReason[] & { late?: boolean };

/**
 * The candidates the admission mode kept although they are over a threshold (queue or KV), by endpoint key; absent
 * when none is. Scorers that place requests with no affinity anywhere (`no-hit-lru-scorer`) rank these last: only a
 * request that has a reason to go to a loaded pod (its session, its prefix) should.
 */
export const LOADED_CANDIDATES = stateKey<ReadonlySet<string>>('saturation-filter loaded candidates');

/**
 * Of `LOADED_CANDIDATES`, those over the KV-cache threshold: pods whose running requests fill their KV cache, so that
 * more work there preempts requests and evicts cached prefixes (a long queue alone only delays). Absent when none is.
 */
export const KV_LOADED_CANDIDATES = stateKey<ReadonlySet<string>>('saturation-filter KV-loaded candidates');

/** What a later profile's saturation filter leaves in either set in place of an earlier profile's: nothing loaded. */
const NONE_LOADED: ReadonlySet<string> = new Set();

/** The parsed parameters: every field filled but `mode`, absent when not configured (so configs render unchanged). */
export type ResolvedSaturationFilterParameters = Omit<Required<SaturationFilterParameters>, 'mode' | 'countPicksSinceScrape'> & {
  readonly mode?: 'filter' | 'admission';
  readonly countPicksSinceScrape?: boolean;
};

/**
 * `saturation-filter`: drops endpoints that should not take more work now — waiting queue above
 * `queueDepthThreshold`, KV usage above `kvCacheUtilThreshold`, metrics older than `metricsStalenessThreshold`
 * (never scraped counts as stale: nothing says the pod can take work), or more than `maxConsecutiveScrapeFailures`
 * failed scrapes in a row.
 *
 * GIE applies the same thresholds as an all-or-nothing admission check; as a filter it also keeps prefix and session
 * affinity off an overloaded pod while others have room. When every endpoint is dropped the cycle fails: with
 * 'saturated' (429, clients back off) when some endpoint was really loaded, with 'metrics-late' (flow control waits for
 * the next scrapes) when some were dropped only because their metrics are late (the scraper is behind, or fewer than
 * `maxConsecutiveScrapeFailures` scrapes in a row timed out), and with 'no-endpoints' (503) when all were dropped for
 * metrics that are lost (a scrape failed fast: refused, reset, an HTTP error; or the scrapes kept timing out: pods
 * gone), which is loud by design rather than routing blind.
 */
export class SaturationFilter implements Filter {
  readonly type = 'saturation-filter';
  private readonly excludedKey = stateKey<Exclusions>('saturation-filter exclusions');
  private readonly stalenessMs: number;

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedSaturationFilterParameters,
    private readonly handle: PluginHandle,
  ) {
    this.stalenessMs = parseDuration(parameters.metricsStalenessThreshold);
  }

  /** Its configured count, which the other readers of lost metrics share (`scrapeTimeoutsToLost`). */
  get maxConsecutiveScrapeFailures(): number {
    return this.parameters.maxConsecutiveScrapeFailures;
  }

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const now = this.handle.now();
    const excluded: Exclusions = [];
    cycle.state.set(this.excludedKey, excluded);
    // The cycle state is shared by a request's profiles: what an earlier profile's saturation filter published about its
    // candidates must not stand for this one's (the admission path below publishes this run's sets).
    if (cycle.state.get(LOADED_CANDIDATES) !== undefined) cycle.state.set(LOADED_CANDIDATES, NONE_LOADED);
    if (cycle.state.get(KV_LOADED_CANDIDATES) !== undefined) cycle.state.set(KV_LOADED_CANDIDATES, NONE_LOADED);
    if (this.parameters.mode === 'admission') return this.admissionMode(cycle, candidates, excluded, now);
    // Usually no pod is excluded: hand the same (read-only) array on, and copy only from the first exclusion.
    let kept: EndpointSnapshot[] | undefined;
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[i]!;
      const reason = this.exclusionReason(candidate, now);
      if (reason === undefined) {
        kept?.push(candidate);
        continue;
      }
      kept ??= candidates.slice(0, i);
      this.exclude(excluded, reason, candidate, now);
    }
    return kept ?? candidates;
  }

  /**
   * GIE's admission rule (`pkg/epp/saturationdetector/saturationdetector.go` IsSaturated @ v0.5: the pool is saturated
   * when NO pod has good capacity — fresh metrics, queue and KV usage within their thresholds): pods whose metrics
   * cannot be read are dropped; loaded pods are kept while at least one readable pod has room, and all dropped (the
   * cycle fails `saturated`, so flow control holds the request) when none has.
   */
  private admissionMode(cycle: CycleContext, candidates: readonly EndpointSnapshot[], excluded: Exclusions, now: number): readonly EndpointSnapshot[] {
    let readable: EndpointSnapshot[] | undefined;
    const loadReasons: SaturationExclusionReason[] = [];
    let loaded: Set<string> | undefined;
    let kvLoaded: Set<string> | undefined;
    let roomy = false;
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[i]!;
      const reason = this.exclusionReason(candidate, now);
      if (reason === 'scrape_failures' || reason === 'stale_metrics') {
        readable ??= candidates.slice(0, i);
        this.exclude(excluded, reason, candidate, now);
        continue;
      }
      readable?.push(candidate);
      if (reason === undefined) roomy = true;
      else {
        loadReasons.push(reason);
        (loaded ??= new Set()).add(candidate.endpoint.key);
        if (candidate.metrics.kvCacheUsagePercent > this.parameters.kvCacheUtilThreshold) (kvLoaded ??= new Set()).add(candidate.endpoint.key);
      }
    }
    if (roomy || loadReasons.length === 0) {
      if (loaded !== undefined) cycle.state.set(LOADED_CANDIDATES, loaded);
      if (kvLoaded !== undefined) cycle.state.set(KV_LOADED_CANDIDATES, kvLoaded);
      return readable ?? candidates;
    }
    for (const reason of loadReasons) {
      excluded.push(reason);
      this.handle.metrics.countSaturationExclusion(reason);
    }
    return [];
  }

  private exclude(excluded: Exclusions, reason: SaturationExclusionReason, candidate: EndpointSnapshot, now: number): void {
    excluded.push(reason);
    this.handle.metrics.countSaturationExclusion(reason);
    if (reason === 'stale_metrics' && !metricsLost(candidate, now, this.stalenessMs, this.parameters.maxConsecutiveScrapeFailures)) excluded.late = true;
  }

  /**
   * 429 only for real load (a queue or KV cache over its threshold somewhere): clients back off and retry. When every
   * candidate was dropped because its metrics cannot be read, it depends on why:
   * - some pod's metrics are only late: old, yet no scrape of it failed fast since its last good one and fewer than
   *   `maxConsecutiveScrapeFailures` timed out in a row, and not older than the staleness threshold plus
   *   LATE_WINDOW_MS. Old metrics without a failure mean the scraper itself is behind (its worker thread starved on a
   *   busy node); a timed-out scrape, that the pod answered too slowly or that the EPP, starved of CPU, read too late
   *   (both pass): 'metrics-late', and flow control holds the request for the next scrapes, as GIE's saturation
   *   detector counts a pod with stale metrics as full and its flow control waits (v1.5.0
   *   `saturationdetector/utilization/detector.go` Saturation; a failed scrape stores nothing,
   *   `backend/metrics/pod_metrics.go` refreshMetrics). Without flow control, 503. Past the window, or the timeouts,
   *   the scraper is stuck or the pod hung, not behind, and waiting would only hold the request to its deadline: 503
   *   then, as for a pod never scraped since it was discovered that long ago (one discovered within the window is
   *   late: its first scrape is on its way).
   * - every pod's scrapes fail fast (refused, reset, an HTTP error: pods gone): nothing says waiting helps, so 503, as
   *   upstream answers when it has no endpoint, and clients and Envoy treat it as unavailable.
   */
  readonly emptyResultReason = (cycle: CycleContext): SchedulingErrorReason => {
    const excluded = cycle.state.get(this.excludedKey) ?? [];
    if (excluded.some((r) => r === 'queue' || r === 'kv_cache')) return 'saturated';
    return excluded.late === true ? 'metrics-late' : 'no-endpoints';
  };

  /** Why `candidate` is excluded, checking the signals that make the others meaningless first. */
  exclusionReason(candidate: EndpointSnapshot, now: number): SaturationExclusionReason | undefined {
    const { metrics } = candidate;
    if (metrics.consecutiveFailures > this.parameters.maxConsecutiveScrapeFailures) return 'scrape_failures';
    if (metrics.updateTime <= 0 || now - metrics.updateTime > this.stalenessMs) return 'stale_metrics';
    const queued = this.parameters.countPicksSinceScrape === false ? metrics.waitingQueueSize : metrics.waitingQueueSize + (candidate.netPicksSinceScrape ?? 0);
    if (queued > this.parameters.queueDepthThreshold) return 'queue';
    if (metrics.kvCacheUsagePercent > this.parameters.kvCacheUtilThreshold) return 'kv_cache';
    return undefined;
  }
}

export const saturationFilter = definePlugin({
  type: 'saturation-filter',
  kinds: ['filter'],
  parameters: parameters<SaturationFilterParameters>((fields) => ({
    queueDepthThreshold: fields.integer('queueDepthThreshold', 5, 0),
    kvCacheUtilThreshold: fields.number('kvCacheUtilThreshold', 0.8, 0, 1),
    metricsStalenessThreshold: fields.duration('metricsStalenessThreshold', '200ms'),
    maxConsecutiveScrapeFailures: fields.integer('maxConsecutiveScrapeFailures', DEFAULT_MAX_CONSECUTIVE_SCRAPE_FAILURES, 0),
    ...parseMode(fields),
    ...(fields.has('countPicksSinceScrape') ? { countPicksSinceScrape: fields.boolean('countPicksSinceScrape', true) } : {}),
  }) as Required<SaturationFilterParameters>),
  create: (name, resolved, handle) => new SaturationFilter(name, resolved, handle),
});

function parseMode(fields: FieldReader): { mode?: 'filter' | 'admission' } {
  const mode = fields.optionalOneOf('mode', ['filter', 'admission'] as const);
  return mode === undefined ? {} : { mode };
}
