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
  parameters: parameters<LoadAwareScorerParameters>((fields) => ({ threshold: fields.integer('threshold', 128, 1) })),
  create: (name, resolved) => new LoadAwareScorer(name, resolved),
});
