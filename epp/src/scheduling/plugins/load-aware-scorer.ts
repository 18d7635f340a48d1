import { ConfigError, describeValue } from '../../config/errors';
import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';

export interface LoadAwareScorerParameters {
  /** Waiting-queue length at which the score reaches 0. @default 128 */
  threshold?: number;
}

/**
 * `load-aware-scorer` (llm-d): 0.5 for an empty queue, else `0.5 × (1 − min(q, threshold) / threshold)`. The top
 * half is left unused on purpose upstream (reserved for a "spare capacity" signal).
 * @see llm-d/llm-d-inference-scheduler: pkg/plugins/scorer/load_aware.go @ v0.2.1
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/scorer/loadaware/load_aware.go @ v0.10.0 (unchanged)
 */
export class LoadAwareScorer implements Scorer {
  readonly type = 'load-aware-scorer';

  constructor(
    readonly name: string,
    private readonly parameters: Required<LoadAwareScorerParameters>,
  ) {}

  score(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    const { threshold } = this.parameters;
    return candidates.map((candidate) => {
      const queue = Math.max(candidate.metrics.waitingQueueSize, 0);
      return queue === 0 ? 0.5 : 0.5 * (1 - Math.min(queue, threshold) / threshold);
    });
  }
}

export const loadAwareScorer = definePlugin({
  type: 'load-aware-scorer',
  kinds: ['scorer'],
  parameters: parameters<LoadAwareScorerParameters>((fields) => {
    // llm-d replaces a threshold <= 0 by its default (`loadaware/load_aware.go` NewLoadAware @ v0.8.0), with a log
    // line; here the normalized config states the 128 that runs.
    const raw = fields.raw('threshold') ?? 128;
    if (typeof raw !== 'number' || !Number.isSafeInteger(raw)) {
      throw new ConfigError(fields.fieldPath('threshold'), `must be an integer (<= 0 means llm-d's default, 128), got ${describeValue(raw)}`);
    }
    return { threshold: raw <= 0 ? 128 : raw };
  }),
  create: (name, resolved) => new LoadAwareScorer(name, resolved),
});
