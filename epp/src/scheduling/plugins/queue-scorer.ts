import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type Scorer } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/**
 * `queue-scorer`: `(max − q) / (max − min)` of the waiting queue over the candidates, 1 for all when they are equal.
 * Relative, so it only ranks: one waiting request against none already swings the full range.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/scorer/queue.go @ v0.5.1
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/scorer/queuedepth/queue.go @ v0.10.0 (the same rule)
 */
export class QueueScorer implements Scorer {
  readonly type = 'queue-scorer';

  constructor(readonly name: string) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(_cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const n = candidates.length;
    for (let i = 0; i < n; i++) out[i] = candidates[i]!.metrics.waitingQueueSize;
    fewestScoreHighest(out, n);
  }
}

/**
 * Turns the first `n` values of `out` into `(max − v) / (max − min)`, or 1 everywhere when they are all equal: the
 * lowest load scores 1, the highest 0 (`queue-scorer`, `running-requests-size-scorer`).
 */
export function fewestScoreHighest(out: Float64Array, n: number): void {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const v = out[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = max - min;
  if (!(range > 0)) {
    out.fill(1, 0, n);
    return;
  }
  for (let i = 0; i < n; i++) out[i] = (max - out[i]!) / range;
}

export const queueScorer = definePlugin({
  type: 'queue-scorer',
  kinds: ['scorer'],
  parameters: NO_PARAMETERS,
  create: (name) => new QueueScorer(name),
});
