import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type PluginHandle, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { checkInFlightLoadProducerRef } from './inflight-load-producer';

export interface ActiveRequestScorerParameters {
  /**
   * Accepted so llm-d configs load unchanged: any string, unused (llm-d-router v0.10.0 deprecates it and ignores it, its
   * in-flight counts coming from `inflight-load-producer`; kvroute's live in the datastore, which ends each request when
   * its stream ends).
   * @default "2m"
   */
  requestTimeout?: string;
  /**
   * Pods with at most this many requests in flight count as idle and score 1 (llm-d v0.8.0). A negative value is taken
   * as 0, as upstream's NewActiveRequest does.
   * @default 0
   */
  idleThreshold?: number;
  /**
   * The most a busy pod (above `idleThreshold`) scores: busy pods are scaled into [0, maxBusyScore] (llm-d v0.8.0). A
   * value outside [0, 1] is ignored with a log line, 1 kept, as upstream does.
   * @default 1
   */
  maxBusyScore?: number;
  /**
   * llm-d-router v0.10.0's: the `inflight-load-producer` whose counts it reads ("": the default one). When set it must
   * name one in the config; the count read is the same either way (the datastore's, which the producer's stands for).
   * @default ""
   */
  inFlightLoadProducerName?: string;
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
    private readonly parameters: Required<ActiveRequestScorerParameters> = { requestTimeout: '2m', idleThreshold: 0, maxBusyScore: 1, inFlightLoadProducerName: '' },
    private readonly handle?: PluginHandle,
  ) {}

  resolveReferences(): void {
    checkInFlightLoadProducerRef(this.name, this.parameters.inFlightLoadProducerName, this.handle);
  }

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
  // llm-d-router v0.10.0 `scorer/activerequest/active_request.go` NewActiveRequest: falls back rather than refuses.
  parameters: parameters<ActiveRequestScorerParameters>((fields) => {
    const inFlightLoadProducerName = fields.goString('inFlightLoadProducerName', 'a plugin name');
    return {
      requestTimeout: fields.goString('requestTimeout') || '2m',
      idleThreshold: Math.max(0, fields.integer('idleThreshold', 0, Number.MIN_SAFE_INTEGER)),
      maxBusyScore: fields.number('maxBusyScore', 1, Number.NEGATIVE_INFINITY),
      // Rendered only when given, so configs that never set it render unchanged.
      ...(inFlightLoadProducerName !== '' ? { inFlightLoadProducerName } : {}),
    } as Required<ActiveRequestScorerParameters>;
  }),
  create: (name, resolved, handle) => {
    const { maxBusyScore } = resolved;
    if (!(maxBusyScore >= 0 && maxBusyScore <= 1)) {
      handle.logger.info('Ignoring out-of-range maxBusyScore; using default 1.0', { provided: maxBusyScore });
      return new ActiveRequestScorer(name, { ...resolved, maxBusyScore: 1 }, handle);
    }
    return new ActiveRequestScorer(name, resolved, handle);
  },
});
