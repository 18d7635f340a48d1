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
  /** Pods with at most this many requests in flight count as idle and score 1 (llm-d v0.8.0). @default 0 */
  idleThreshold?: number;
  /** The most a busy pod (above `idleThreshold`) scores: busy pods are scaled into [0, maxBusyScore] (llm-d v0.8.0). @default 1 */
  maxBusyScore?: number;
}

/**
 * `active-request-scorer`: from the EPP's own in-flight count per endpoint (`EndpointSnapshot.activeRequests`), 1 for
 * a pod with at most `idleThreshold` in flight, else `(max − c) / max × maxBusyScore`; 1 everywhere when nothing is in
 * flight. Unlike scraped metrics it changes with every pick, so bursts spread before the next scrape shows them.
 * `max` is taken over the candidates, as llm-d-router v0.10.0's Score takes it over the endpoints it is given (v0.3.0
 * to v0.8.0 took it over every pod it tracked): a loaded pod a filter removed does not lower the others' scores.
 * @see llm-d/llm-d-inference-scheduler: pkg/plugins/scorer/active_request.go @ v0.3.0;
 *      pkg/epp/framework/plugins/scheduling/scorer/activerequest/active_request.go @ v0.8.0 (idleThreshold, maxBusyScore)
 *      and llm-d/llm-d-router @ v0.10.0 (the count read from `inflight-load-producer`'s InFlightLoad.Requests)
 */
export class ActiveRequestScorer implements Scorer {
  readonly type = 'active-request-scorer';

  constructor(
    readonly name: string,
    private readonly parameters: Required<ActiveRequestScorerParameters> = { requestTimeout: '2m', idleThreshold: 0, maxBusyScore: 1 },
  ) {}

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
    const { idleThreshold, maxBusyScore } = this.parameters;
    for (let i = 0; i < n; i++) {
      const count = Math.max(candidates[i]!.activeRequests, 0);
      out[i] = count <= idleThreshold ? 1 : ((max - count) / max) * maxBusyScore;
    }
  }
}

export const activeRequestScorer = definePlugin({
  type: 'active-request-scorer',
  kinds: ['scorer'],
  parameters: parameters<ActiveRequestScorerParameters>((fields) => ({
    requestTimeout: fields.duration('requestTimeout', '2m'),
    idleThreshold: fields.integer('idleThreshold', 0, 0),
    maxBusyScore: fields.number('maxBusyScore', 1, 0, 1),
  })),
  create: (name, resolved) => new ActiveRequestScorer(name, resolved),
});
