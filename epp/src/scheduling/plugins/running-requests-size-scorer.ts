import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type Scorer } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';
import { fewestScoreHighest } from './queue-scorer';

/**
 * `running-requests-size-scorer`: `(max − r) / (max − min)` of the running requests (`vllm:num_requests_running`) over
 * the candidates, 1 for all when they are equal: the pod running the fewest scores 1, the most 0. `queue-scorer`'s
 * rule on the other queue: it spreads the batch where `queue-scorer` spreads the waiting line.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/scheduling/scorer/runningrequests/runningrequest.go @ v1.5.0
 *   (the same rule in llm-d/llm-d-router @ v0.10.0)
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
    fewestScoreHighest(out, n);
  }
}

export const runningRequestsSizeScorer = definePlugin({
  type: 'running-requests-size-scorer',
  kinds: ['scorer'],
  parameters: NO_PARAMETERS,
  create: (name) => new RunningRequestsSizeScorer(name),
});
