import { parseDuration, type Duration } from '../../config/duration';
import { ConfigError } from '../../config/errors';
import type { EndpointSnapshot } from '../../datastore/types';
import type { SaturationDetector } from '../../requestcontrol/hooks';
import type { CycleContext, Filter, PluginHandle } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { DEFAULT_MAX_CONSECUTIVE_SCRAPE_FAILURES, metricsLost, scrapeTimeoutsToLost } from './saturation-filter';

export interface UtilizationDetectorParameters {
  /** The ideal waiting queue (`vllm:num_requests_waiting`) of one pod; must be > 0. @default 5 */
  queueDepthThreshold?: number;
  /** The ideal KV-cache usage of one pod, a fraction in (0, 1]. @default 0.8 */
  kvCacheUtilThreshold?: number;
  /** Metrics older than this make a pod count as full (saturation 1) and leave the filter's list. @default "200ms" */
  metricsStalenessThreshold?: Duration;
  /** How far the filter lets one pod go above the ideal thresholds (0.2 = 20%); the pool average ignores it. @default 0 */
  headroom?: number;
}

/**
 * `utilization-detector`: GIE v1.5.0's default saturation detector, which is also a filter.
 * - **As the detector** (the config's `saturationDetector.pluginRef` names it): the pool's saturation is the average
 *   over the candidates of max(waiting ÷ `queueDepthThreshold`, KV usage ÷ `kvCacheUtilThreshold`), a pod with stale
 *   or no metrics counting 1. At 1.0 or above the pool is full: requests wait in flow control.
 * - **As a filter** (listed in a profile): keeps the pods with fresh metrics whose waiting queue is below
 *   `queueDepthThreshold × (1 + headroom)` and KV usage below `kvCacheUtilThreshold × (1 + headroom)`; when that keeps
 *   none it keeps them all (fail open), so the scorers pick the least bad.
 *
 * Unlike kvroute's `saturation-filter` it has no scrape-failure count: a pod whose scrapes fail leaves once its last
 * good reading is `metricsStalenessThreshold` old.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/flowcontrol/saturationdetector/utilization/detector.go, config.go @ v1.5.0
 */
export class UtilizationDetector implements Filter, SaturationDetector {
  readonly type = 'utilization-detector';
  readonly readsMetrics = true;
  /** Never reached: the filter fails open rather than leave no candidate. */
  readonly emptyResultReason = 'saturated' as const;
  private readonly stalenessMs: number;
  private readonly queueLimit: number;
  private readonly kvLimit: number;

  constructor(
    readonly name: string,
    private readonly parameters: Required<UtilizationDetectorParameters>,
    private readonly handle: PluginHandle,
  ) {
    this.stalenessMs = parseDuration(parameters.metricsStalenessThreshold);
    this.queueLimit = parameters.queueDepthThreshold * (1 + parameters.headroom);
    this.kvLimit = parameters.kvCacheUtilThreshold * (1 + parameters.headroom);
  }

  saturation(candidates: readonly EndpointSnapshot[]): number {
    if (candidates.length === 0) return 1;
    const now = this.handle.now();
    const { queueDepthThreshold, kvCacheUtilThreshold } = this.parameters;
    let total = 0;
    for (const { metrics } of candidates) {
      if (this.stale(metrics.updateTime, now)) {
        total += 1;
        continue;
      }
      // The roofline: a pod is as full as its most exhausted resource.
      total += Math.max(metrics.waitingQueueSize / queueDepthThreshold, metrics.kvCacheUsagePercent / kvCacheUtilThreshold);
    }
    return total / candidates.length;
  }

  filter(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const now = this.handle.now();
    let kept: EndpointSnapshot[] | undefined;
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[i]!;
      const { metrics } = candidate;
      const fits = !this.stale(metrics.updateTime, now) && metrics.waitingQueueSize < this.queueLimit && metrics.kvCacheUsagePercent < this.kvLimit;
      if (fits) kept?.push(candidate);
      else kept ??= candidates.slice(0, i);
    }
    if (kept === undefined) return candidates;
    return kept.length > 0 ? kept : candidates;
  }

  /** The config's count of timed-out scrapes that lose a pod's metrics (`scrapeTimeoutsToLost`), once every plugin is built. */
  private maxTimeouts = DEFAULT_MAX_CONSECUTIVE_SCRAPE_FAILURES;

  resolveReferences(): void {
    this.maxTimeouts = scrapeTimeoutsToLost(this.handle.plugins?.() ?? []);
  }

  /**
   * Lost, not late, as the `saturation-filter` reads it (`metricsLost`): a scrape failed fast since the last good one,
   * or as many timed out in a row as the config's `saturation-filter` allows (`scrapeTimeoutsToLost`: this detector,
   * as GIE's, has no such parameter), or the last good one (or, never scraped, the pod's discovery) is older than the
   * staleness threshold plus LATE_WINDOW_MS (a stuck scraper).
   */
  unreadable(candidate: EndpointSnapshot): boolean {
    return metricsLost(candidate, this.handle.now(), this.stalenessMs, this.maxTimeouts);
  }

  private stale(updateTime: number, now: number): boolean {
    return updateTime <= 0 || now - updateTime > this.stalenessMs;
  }
}

export const utilizationDetector = definePlugin({
  type: 'utilization-detector',
  kinds: ['filter', 'saturation-detector'],
  parameters: parameters<UtilizationDetectorParameters>((fields) => {
    const kvCacheUtilThreshold = fields.number('kvCacheUtilThreshold', 0.8, 0, 1);
    if (kvCacheUtilThreshold === 0) throw new ConfigError(fields.fieldPath('kvCacheUtilThreshold'), 'must be in (0.0, 1.0], got 0');
    return {
      queueDepthThreshold: fields.integer('queueDepthThreshold', 5, 1),
      kvCacheUtilThreshold,
      metricsStalenessThreshold: fields.duration('metricsStalenessThreshold', '200ms'),
      headroom: fields.number('headroom', 0, 0),
    };
  }),
  create: (name, resolved, handle) => new UtilizationDetector(name, resolved, handle),
});
