import type { Duration } from '../../config/duration';
import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Scorer } from '../framework';
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

  score(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    let max = 0;
    for (const candidate of candidates) max = Math.max(max, candidate.activeRequests);
    return candidates.map((candidate) => (max > 0 ? (max - Math.max(candidate.activeRequests, 0)) / max : 1));
  }
}

export const activeRequestScorer = definePlugin({
  type: 'active-request-scorer',
  kinds: ['scorer'],
  parameters: parameters<ActiveRequestScorerParameters>((fields) => ({ requestTimeout: fields.duration('requestTimeout', '2m') })),
  create: (name) => new ActiveRequestScorer(name),
});
