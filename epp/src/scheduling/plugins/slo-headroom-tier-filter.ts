/**
 * `slo-headroom-tier-filter`: llm-d-router v0.10.0's SLO headroom tier filter
 * (`pkg/epp/framework/plugins/scheduling/filter/sloheadroomtier/{plugin.go,README.md}` @ v0.10.0). Splits the candidates
 * by the `predicted-latency-producer`'s headroom (SLO − predicted) published earlier in the same cycle: positive tier
 * when TTFT and TPOT headroom are both ≥ 0, negative otherwise (validity flags are not read: by convention an invalid
 * prediction has negative headroom). Both tiers present: the positive one, except with probability `epsilonExploreNeg`
 * the negative one (so overloaded endpoints get occasional traffic and their state is re-evaluated); one tier: that
 * tier; no predictions at all (`predictInProduce: false`): every candidate. A producer not run before it in the profile
 * is asked here (upstream runs its producers before every cycle). A candidate without a
 * prediction joins the negative tier. With no SLO header every headroom is 0 − predicted < 0: all negative, a no-op.
 * The draw is the plugin handle's random source (upstream draws `rand.Float64`), only when both tiers exist.
 */
import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Filter, PluginHandle } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { resolvePredictionProducer, type PredictedLatencyProducer } from './predicted-latency-producer';

export interface SloHeadroomTierFilterParameters {
  /** The chance, in [0, 1], of keeping the negative tier when both tiers have candidates. @default 0.01 */
  epsilonExploreNeg?: number;
  /** The `predicted-latency-producer` whose predictions it reads. "": the config's one. @default "" */
  latencyPredictionInfoProducerName?: string;
}

export class SloHeadroomTierFilter implements Filter {
  readonly type = 'slo-headroom-tier-filter';
  /** Never used: a non-empty list keeps at least one tier. */
  readonly emptyResultReason = 'no-endpoints' as const;
  private producer: PredictedLatencyProducer | undefined;

  constructor(readonly name: string, readonly parameters: Required<SloHeadroomTierFilterParameters>, private readonly handle: PluginHandle) {}

  resolveReferences(): void {
    const producer = resolvePredictionProducer(this.handle, this.name, this.parameters.latencyPredictionInfoProducerName);
    this.producer = producer;
    // Where this filter asks the producer itself (its profile does not list it), the producer's own check that the
    // latency-scorer sits in the profile does not run: the scorer counts each pod's queued prefill only from the picks of
    // the profiles listing it, so without it the predictions here would miss this EPP's own in-flight prefills.
    (this.handle.profiles?.() ?? []).forEach((profile, i) => {
      const refs = profile.plugins.map((r) => r.pluginRef);
      if (!refs.includes(this.name) || refs.includes(producer.name)) return;
      const latency = producer.latencyScorer();
      if (refs.includes(latency.name)) return;
      throw new ConfigError(`schedulingProfiles[${i}].plugins`, `lists ${JSON.stringify(this.name)} (slo-headroom-tier-filter), which asks ${JSON.stringify(producer.name)} for `
        + `predictions made with ${JSON.stringify(latency.name)}; that scorer counts the prefill queued on each pod only from the picks of the profiles that list it: `
        + `list it in profile ${JSON.stringify(profile.name)} too ({pluginRef: ${latency.name}, weight: 0} predicts without scoring)`);
    });
  }

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    if (candidates.length <= 1) return candidates;
    // Published by the producer earlier in this profile; a producer listed in no profile before this filter is asked
    // here (upstream's director runs every producer before the cycle, listed or not).
    const predictions = this.producer === undefined ? undefined
      : cycle.state.get(this.producer.predictionsKey) ?? this.producer.predict(cycle.request, candidates);
    const positive: EndpointSnapshot[] = [];
    const negative: EndpointSnapshot[] = [];
    const noPrediction: EndpointSnapshot[] = [];
    for (const c of candidates) {
      const info = predictions?.get(c.endpoint.key);
      if (info === undefined) noPrediction.push(c);
      else if (info.ttftHeadroom >= 0 && info.tpotHeadroom >= 0) positive.push(c);
      else negative.push(c);
    }
    if (positive.length === 0 && negative.length === 0) return candidates;
    negative.push(...noPrediction);
    if (positive.length > 0 && negative.length > 0) return this.handle.random() < this.parameters.epsilonExploreNeg ? negative : positive;
    return positive.length > 0 ? positive : negative;
  }
}

export const sloHeadroomTierFilter = definePlugin({
  type: 'slo-headroom-tier-filter',
  kinds: ['filter'],
  parameters: parameters<SloHeadroomTierFilterParameters>((fields: FieldReader) => {
    const raw = fields.raw('epsilonExploreNeg');
    let epsilonExploreNeg = 0.01;
    if (raw !== undefined && raw !== null) {
      if (typeof raw !== 'number' || !Number.isFinite(raw)) throw new ConfigError(fields.fieldPath('epsilonExploreNeg'), `must be a number, got ${describeValue(raw)}`);
      epsilonExploreNeg = raw;
    }
    // Factory's check and message (plugin.go @ v0.10.0).
    if (epsilonExploreNeg < 0 || epsilonExploreNeg > 1) {
      throw new ConfigError(fields.fieldPath('epsilonExploreNeg'), `epsilonExploreNeg must be in [0, 1], got ${epsilonExploreNeg.toFixed(6)}`);
    }
    const name = fields.raw('latencyPredictionInfoProducerName');
    if (name !== undefined && name !== null && typeof name !== 'string') {
      throw new ConfigError(fields.fieldPath('latencyPredictionInfoProducerName'), `must be a plugin name, got ${describeValue(name)}`);
    }
    return { epsilonExploreNeg, latencyPredictionInfoProducerName: (name as string | undefined | null) ?? '' };
  }),
  create: (name, resolved, handle) => new SloHeadroomTierFilter(name, resolved, handle),
});
