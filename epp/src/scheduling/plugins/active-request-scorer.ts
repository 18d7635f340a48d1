import type { Duration } from '../../config/duration';
import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';

export interface ActiveRequestScorerParameters {
  /**
   * Accepted so llm-d v0.3 configs load unchanged. kvroute's in-flight count lives in the datastore, which ends each
   * request when its stream ends, so the scorer does not use this timeout.
   * @default "2m"
   */
  requestTimeout?: Duration;
}

/**
 * `active-request-scorer`: `(max − c) / max` of the EPP's own in-flight count per endpoint
 * (`EndpointSnapshot.activeRequests`), 1 when nothing is in flight anywhere. Unlike scraped metrics it changes with
 * every pick, so bursts spread before the next scrape shows them.
 * @see llm-d/llm-d-inference-scheduler: pkg/plugins/scorer/active_request.go @ v0.3.0
 */
export class ActiveRequestScorer implements Scorer {
  readonly type = 'active-request-scorer';

  constructor(readonly name: string) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(_cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const n = candidates.length;
    let max = 0;
    for (let i = 0; i < n; i++) max = Math.max(max, candidates[i]!.activeRequests);
    if (!(max > 0)) {
      out.fill(1, 0, n);
      return;
    }
    for (let i = 0; i < n; i++) out[i] = (max - Math.max(candidates[i]!.activeRequests, 0)) / max;
  }
}

export const activeRequestScorer = definePlugin({
  type: 'active-request-scorer',
  kinds: ['scorer'],
  parameters: parameters<ActiveRequestScorerParameters>((fields) => ({ requestTimeout: fields.duration('requestTimeout', '2m') })),
  create: (name) => new ActiveRequestScorer(name),
});
