/**
 * `latency-slo-admitter`: llm-d-router v0.10.0's latency SLO admitter
 * (`pkg/epp/framework/plugins/requestcontrol/admitter/latencyslo/{plugin.go,README.md}` @ v0.10.0), at the `Admission`
 * extension point (`requestcontrol/hooks.ts` `Admitter`). Only a sheddable request (priority < 0) carrying an SLO
 * (`x-llm-d-slo-ttft-ms` or `x-llm-d-slo-tpot-ms` > 0, or their deprecated `x-slo-*` aliases) can be denied, and only
 * when every one of these fails: some candidate has a valid prediction (TTFT and TPOT within the SLOs), some candidate
 * is idle (`vllm:num_requests_running` 0), some candidate is cold (KV-cache usage < 2%: its predictions may be
 * unreliable). No prediction at all (`predictInProduce: false`) admits (fail-open). A denial is answered as for
 * `probabilistic-admitter`: 500, `request cannot be admitted: no valid endpoint available to serve the request`
 * (upstream's director wraps the admitter's error as Internal).
 *
 * Upstream's director runs the producer's `Produce` before admission and the admitter reads its endpoint attributes;
 * kvroute admits before the scheduling cycle, so the admitter asks the `predicted-latency-producer` to predict the
 * request's candidates itself (in a cycle state of its own; only for a sheddable request with an SLO).
 */
import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { EndpointSnapshot } from '../../datastore/types';
import type { Admitter } from '../../requestcontrol/hooks';
import type { PluginHandle } from '../framework';
import { definePlugin, parameters } from '../plugin';
import type { LLMRequest } from '../types';
import { isValidPrediction, resolvePredictionProducer, sloOf, type PredictedLatencyProducer } from './predicted-latency-producer';

export interface LatencySloAdmitterParameters {
  /** The `predicted-latency-producer` whose predictions it reads. "": the config's one. @default "" */
  latencyPredictionInfoProducerName?: string;
}

/** KV-cache usage below which an endpoint is cold (plugin.go: `KVCacheUsagePercent < 0.02`). */
export const COLD_KV_CACHE_USAGE = 0.02;

export class LatencySloAdmitter implements Admitter {
  readonly type = 'latency-slo-admitter';
  private producer: PredictedLatencyProducer | undefined;

  constructor(readonly name: string, readonly parameters: Required<LatencySloAdmitterParameters>, private readonly handle: PluginHandle) {}

  resolveReferences(): void {
    this.producer = resolvePredictionProducer(this.handle, this.name, this.parameters.latencyPredictionInfoProducerName);
  }

  admit(request: LLMRequest, priority: number, candidates: readonly EndpointSnapshot[]): string | undefined {
    if (priority >= 0) return undefined;
    const { ttftSlo, tpotSlo } = sloOf(request);
    if (!(ttftSlo > 0 || tpotSlo > 0)) return undefined;
    const predictions = this.producer?.predict(request, candidates);
    let hasValid = false;
    let hasCold = false;
    let hasIdle = false;
    let hasPredictions = false;
    for (const c of candidates) {
      if (c.metrics.kvCacheUsagePercent < COLD_KV_CACHE_USAGE) hasCold = true;
      if (c.metrics.runningQueueSize === 0) hasIdle = true;
      const info = predictions?.get(c.endpoint.key);
      if (info === undefined) continue;
      hasPredictions = true;
      if (isValidPrediction(info)) hasValid = true;
    }
    if (!hasPredictions) return undefined;
    if (!hasValid && !hasIdle && !hasCold) return 'no valid endpoint available to serve the request';
    return undefined;
  }
}

export const latencySloAdmitter = definePlugin({
  type: 'latency-slo-admitter',
  kinds: ['admission'],
  parameters: parameters<LatencySloAdmitterParameters>((fields: FieldReader) => {
    const name = fields.raw('latencyPredictionInfoProducerName');
    if (name !== undefined && name !== null && typeof name !== 'string') {
      throw new ConfigError(fields.fieldPath('latencyPredictionInfoProducerName'), `must be a plugin name, got ${describeValue(name)}`);
    }
    return { latencyPredictionInfoProducerName: (name as string | undefined | null) ?? '' };
  }),
  create: (name, resolved, handle) => new LatencySloAdmitter(name, resolved, handle),
});
