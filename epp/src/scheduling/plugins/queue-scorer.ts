import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Scorer } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/**
 * `queue-scorer`: `(max − q) / (max − min)` of the waiting queue over the candidates, 1 for all when they are equal.
 * Relative, so it only ranks: one waiting request against none already swings the full range.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/scorer/queue.go @ v0.5.1
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

export const queueScorer = definePlugin({
  type: 'queue-scorer',
  kinds: ['scorer'],
  parameters: NO_PARAMETERS,
  create: (name) => new QueueScorer(name),
});
