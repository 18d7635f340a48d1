import { parseDuration, type ResolvedPluginParameters } from '../../config';
import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Filter, PluginHandle } from '../framework';
import type { SaturationExclusionReason } from '../metrics-hooks';

/** The pod label llm-d uses for an endpoint's role in prefill/decode disaggregation. */
export const ROLE_LABEL = 'llm-d.ai/role';

/**
 * `by-label`: keeps endpoints whose `label` has one of `validValues`, and, when `allowsNoLabel`, those without the
 * label. The role filters are fixed instances of it.
 */
export class ByLabelFilter implements Filter {
  /** An eligibility rule: when nothing matches, waiting will not help, so the request fails as 'no-endpoints'. */
  readonly emptyResultReason = 'no-endpoints' as const;
  private readonly validValues: ReadonlySet<string>;

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedPluginParameters<'by-label'>,
    readonly type: 'by-label' | 'decode-filter' | 'prefill-filter' = 'by-label',
  ) {
    this.validValues = new Set(parameters.validValues);
  }

  filter(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const { label, allowsNoLabel } = this.parameters;
    return candidates.filter((candidate) => {
      const value = candidate.endpoint.labels[label];
      return value === undefined ? allowsNoLabel : this.validValues.has(value);
    });
  }
}

/** `decode-filter`: pods labelled `llm-d.ai/role` = decode or both, or unlabelled (a plain vLLM pod decodes). */
export function createDecodeFilter(name: string): ByLabelFilter {
  return new ByLabelFilter(name, { label: ROLE_LABEL, validValues: ['decode', 'both'], allowsNoLabel: true }, 'decode-filter');
}

/** `prefill-filter`: only pods labelled `llm-d.ai/role=prefill`. */
export function createPrefillFilter(name: string): ByLabelFilter {
  return new ByLabelFilter(name, { label: ROLE_LABEL, validValues: ['prefill'], allowsNoLabel: false }, 'prefill-filter');
}

/**
 * `saturation-filter`: drops endpoints that should not take more work now — waiting queue above
 * `queueDepthThreshold`, KV usage above `kvCacheUtilThreshold`, metrics older than `metricsStalenessThreshold`
 * (never scraped counts as stale: nothing says the pod can take work), or more than `maxConsecutiveScrapeFailures`
 * failed scrapes in a row.
 *
 * GIE applies the same thresholds as an all-or-nothing admission check; as a filter it also keeps prefix and session
 * affinity off an overloaded pod while others have room. When every endpoint is dropped the cycle fails with
 * 'saturated', which request control turns into 429 so clients back off — this includes every endpoint's metrics
 * going stale (e.g. a broken scraper), which is loud by design rather than routing blind.
 */
export class SaturationFilter implements Filter {
  readonly type = 'saturation-filter';
  readonly emptyResultReason = 'saturated' as const;
  private readonly stalenessMs: number;

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedPluginParameters<'saturation-filter'>,
    private readonly handle: PluginHandle,
  ) {
    this.stalenessMs = parseDuration(parameters.metricsStalenessThreshold);
  }

  filter(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const now = this.handle.now();
    return candidates.filter((candidate) => {
      const reason = this.exclusionReason(candidate, now);
      if (reason === undefined) return true;
      this.handle.metrics.countSaturationExclusion(reason);
      return false;
    });
  }

  /** Why `candidate` is excluded, checking the signals that make the others meaningless first. */
  exclusionReason(candidate: EndpointSnapshot, now: number): SaturationExclusionReason | undefined {
    const { metrics } = candidate;
    if (metrics.consecutiveFailures > this.parameters.maxConsecutiveScrapeFailures) return 'scrape_failures';
    if (metrics.updateTime <= 0 || now - metrics.updateTime > this.stalenessMs) return 'stale_metrics';
    if (metrics.waitingQueueSize > this.parameters.queueDepthThreshold) return 'queue';
    if (metrics.kvCacheUsagePercent > this.parameters.kvCacheUtilThreshold) return 'kv_cache';
    return undefined;
  }
}
