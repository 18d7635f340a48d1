import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type Scorer } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/**
 * `running-requests-size-scorer`: `(max − r) / (max − min)` of the running requests (`vllm:num_requests_running`) over
 * the candidates, 1 for all when they are equal: the pod running the fewest scores 1, the most 0. `queue-scorer`'s
 * rule on the other queue: it spreads the batch where `queue-scorer` spreads the waiting line.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/scheduling/scorer/runningrequests/runningrequest.go @ v1.5.0
 */
export class RunningRequestsSizeScorer implements Scorer {
  readonly type = 'running-requests-size-scorer';

  constructor(readonly name: string) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(_cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const n = candidates.length;
    for (let i = 0; i < n; i++) out[i] = candidates[i]!.metrics.runningQueueSize;
    fewestScoresHighest(out, n);
  }
}

/** Turns the first `n` values of `out` into (max − v) / (max − min), or 1 everywhere when they are all equal. */
function fewestScoresHighest(out: Float64Array, n: number): void {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    if (out[i]! < min) min = out[i]!;
    if (out[i]! > max) max = out[i]!;
  }
  const range = max - min;
  for (let i = 0; i < n; i++) out[i] = range > 0 ? (max - out[i]!) / range : 1;
}

export const runningRequestsSizeScorer = definePlugin({
  type: 'running-requests-size-scorer',
  kinds: ['scorer'],
  parameters: NO_PARAMETERS,
  create: (name) => new RunningRequestsSizeScorer(name),
});
