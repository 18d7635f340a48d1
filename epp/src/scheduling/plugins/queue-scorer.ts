import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type Scorer } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/**
 * `queue-scorer`: `(max − q) / (max − min)` of the waiting queue over the candidates, 1 for all when they are equal.
 * Relative, so it only ranks: one waiting request against none already swings the full range.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/scorer/queue.go @ v0.5.1
 */
export class QueueScorer implements Scorer {
  readonly type = 'queue-scorer';

  constructor(readonly name: string) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(_cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const n = candidates.length;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const queue = candidates[i]!.metrics.waitingQueueSize;
      if (queue < min) min = queue;
      if (queue > max) max = queue;
    }
    const range = max - min;
    if (!(range > 0)) {
      out.fill(1, 0, n);
      return;
    }
    for (let i = 0; i < n; i++) out[i] = (max - candidates[i]!.metrics.waitingQueueSize) / range;
  }
}

export const queueScorer = definePlugin({
  type: 'queue-scorer',
  kinds: ['scorer'],
  parameters: NO_PARAMETERS,
  create: (name) => new QueueScorer(name),
});
