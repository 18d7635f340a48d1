import type { ResolvedPluginParameters } from '../../config';
import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Scorer } from '../framework';

/**
 * Scorers of endpoint load, all in [0, 1] with 1 = least loaded. Formulas follow GIE v0.5.1 / llm-d so weights tuned
 * for them carry over.
 */

/**
 * `queue-scorer`: `(max − q) / (max − min)` of the waiting queue over the candidates, 1 for all when they are equal.
 * Relative, so it only ranks: one waiting request against none already swings the full range.
 */
export class QueueScorer implements Scorer {
  readonly type = 'queue-scorer';

  constructor(readonly name: string) {}

  score(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const candidate of candidates) {
      const queue = candidate.metrics.waitingQueueSize;
      if (queue < min) min = queue;
      if (queue > max) max = queue;
    }
    const range = max - min;
    return candidates.map((candidate) => (range > 0 ? (max - candidate.metrics.waitingQueueSize) / range : 1));
  }
}

/** `kv-cache-utilization-scorer` (alias `kv-cache-scorer`): `1 − KV usage`; absolute, not relative to the others. */
export class KvCacheUtilizationScorer implements Scorer {
  constructor(
    readonly name: string,
    /** The configured type, which may be the `kv-cache-scorer` alias. */
    readonly type: 'kv-cache-utilization-scorer' | 'kv-cache-scorer' = 'kv-cache-utilization-scorer',
  ) {}

  score(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return candidates.map((candidate) => 1 - Math.min(Math.max(candidate.metrics.kvCacheUsagePercent, 0), 1));
  }
}

/**
 * `load-aware-scorer` (llm-d): 0.5 for an empty queue, else `0.5 × (1 − min(q, threshold) / threshold)`. The top
 * half is left unused on purpose upstream (reserved for a "spare capacity" signal).
 */
export class LoadAwareScorer implements Scorer {
  readonly type = 'load-aware-scorer';

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedPluginParameters<'load-aware-scorer'>,
  ) {}

  score(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    const { threshold } = this.parameters;
    return candidates.map((candidate) => {
      const queue = Math.max(candidate.metrics.waitingQueueSize, 0);
      return queue === 0 ? 0.5 : 0.5 * (1 - Math.min(queue, threshold) / threshold);
    });
  }
}

/**
 * `active-request-scorer`: `(max − c) / max` of the EPP's own in-flight count per endpoint
 * (`EndpointSnapshot.activeRequests`), 1 when nothing is in flight anywhere. Unlike scraped metrics it changes with
 * every pick, so bursts spread before the next scrape shows them.
 */
export class ActiveRequestScorer implements Scorer {
  readonly type = 'active-request-scorer';

  constructor(readonly name: string) {}

  score(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    let max = 0;
    for (const candidate of candidates) max = Math.max(max, candidate.activeRequests);
    return candidates.map((candidate) => (max > 0 ? (max - Math.max(candidate.activeRequests, 0)) / max : 1));
  }
}
