import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { EndpointSnapshot } from '../../datastore/types';
import { CycleState, type CycleContext, type Filter, type Plugin, type PluginHandle } from '../framework';
import { referencedPlugin } from './plugin-reference';
import { definePlugin, parameters } from '../plugin';
import { PREFIX_MATCH, resolvePrefixProducer, type PrefixMatchRatios } from '../prefix-match';
import type { InFlightLoadProducer } from './inflight-load-producer';
import type { LatencyScorer } from './latency-scorer';
import { PredictedLatencyProducer, resolvePredictionProducer } from './predicted-latency-producer';

export type TtftSource = 'prefillThroughput' | 'latencyPredictor';

export interface PrefixCacheAffinityFilterParameters {
  /**
   * A candidate whose prefix-cache match ratio (matched ÷ total blocks of the prompt's window) is at least this is
   * "sticky"; at most 1; 0 or less turns the filter off. @default 0.8
   */
  affinityThreshold?: number;
  /** The chance, in [0, 1], of skipping the gate for a request (all candidates kept), to seed other pods' caches. @default 0 */
  explorationProbability?: number;
  /**
   * Keep every candidate when the best sticky one's time to first token exceeds the best other one's by more than this
   * many milliseconds; 0 always sticks. @default 18000
   */
  maxTTFTPenaltyMs?: number;
  /**
   * Where the gate reads each candidate's time to first token: `prefillThroughput`, the tokens in flight on it
   * (`inflight-load-producer`) ÷ `peakPrefillThroughput`; `latencyPredictor`, the config's `latency-scorer`'s
   * prediction. @default "prefillThroughput"
   */
  ttftSource?: TtftSource;
  /**
   * Prefill tokens a second one pod computes at most, for `prefillThroughput` (must be > 0 there while the gate is on).
   * Upstream's default is calibrated for Qwen 32B on 2× H100 (TP 2), vLLM 0.19. @default 15928
   */
  peakPrefillThroughput?: number;
  /**
   * The prefix scorer whose match decides stickiness (upstream: the prefix producer, approximate by default): a
   * `prefix-cache-scorer` or `precise-prefix-cache-scorer`. "": upstream's default producer, the approximate one
   * (`resolvePrefixProducer`), even beside a precise scorer; the loader adds one when the config has none. @default ""
   */
  prefixMatchInfoProducerName?: string;
  /**
   * The `latency-scorer` whose predictions `latencyPredictor` reads, or a `predicted-latency-producer` (upstream's
   * meaning: its TTFT is its latency-scorer's). "": the config's latency-scorer. @default ""
   */
  latencyPredictionInfoProducerName?: string;
  /** The `inflight-load-producer` that `prefillThroughput` reads. "": the config's one (the loader adds it when none is listed). @default "" */
  inFlightLoadProducerName?: string;
}

/** Upstream's defaults (`prefixcacheaffinity/plugin.go` DefaultConfig @ llm-d-router v0.10.0). */
export const PREFIX_CACHE_AFFINITY_DEFAULTS: Required<PrefixCacheAffinityFilterParameters> = {
  affinityThreshold: 0.8,
  explorationProbability: 0,
  maxTTFTPenaltyMs: 18000,
  ttftSource: 'prefillThroughput',
  peakPrefillThroughput: 15928,
  prefixMatchInfoProducerName: '',
  latencyPredictionInfoProducerName: '',
  inFlightLoadProducerName: '',
};

/**
 * Which candidates the filter keeps given each one's match ratio and a reader of their times to first token (ms; read
 * only when the load gate needs them): upstream's `Filter` after its exploration draw. `all` when none is sticky or the
 * gate breaks; else the sticky ones (ratio >= `affinityThreshold`).
 */
export function stickyCandidates(
  ratios: ArrayLike<number>,
  ttftMs: () => ArrayLike<number>,
  p: Pick<Required<PrefixCacheAffinityFilterParameters>, 'affinityThreshold' | 'maxTTFTPenaltyMs'>,
): 'all' | 'sticky' {
  const n = ratios.length;
  let sticky = 0;
  for (let i = 0; i < n; i++) if (ratios[i]! >= p.affinityThreshold) sticky++;
  if (sticky === 0) return 'all';
  // No other candidate to compare with: upstream's gate needs a non-sticky one.
  if (sticky === n) return 'sticky';
  if (p.maxTTFTPenaltyMs > 0) {
    const ttft = ttftMs();
    // Upstream starts both minima at MaxFloat64 (no candidate with a reading): Infinity here, the same comparisons.
    let bestSticky = Infinity;
    let bestOther = Infinity;
    for (let i = 0; i < n; i++) {
      const t = ttft[i]!;
      if (ratios[i]! >= p.affinityThreshold) {
        if (t < bestSticky) bestSticky = t;
      } else if (t < bestOther) {
        bestOther = t;
      }
    }
    if (bestSticky - bestOther > p.maxTTFTPenaltyMs) return 'all';
  }
  return 'sticky';
}

/**
 * `prefix-cache-affinity-filter` (llm-d-router v0.10.0 `pkg/epp/framework/plugins/scheduling/filter/prefixcacheaffinity/
 * plugin.go`, README.md there): keeps only the "sticky" candidates, those whose prefix-cache match ratio
 * (`MatchBlocks ÷ TotalBlocks`) is at least `affinityThreshold`; keeps every candidate when none is sticky, for a request
 * drawn for exploration (`explorationProbability`), or when the load gate breaks: the best sticky candidate's time to
 * first token exceeds the best other one's by more than `maxTTFTPenaltyMs`. llm-d's answer to hot-spotting on shared
 * prefixes: affinity is decided here, and the scorers and picker after it spread the load within the sticky set (or
 * over everyone once the gate breaks). llm-d's predicted-latency guide lists it twice, at 0.99 and 0.8.
 *
 * **The match.** Upstream reads `PrefixCacheMatchInfo`, which its prefix producer writes on every candidate before
 * scheduling. kvroute's match is made by its prefix scorer, after the filters; so the filter asks the prefix scorer
 * `prefixMatchInfoProducerName` names (by default upstream's default producer, the approximate `prefix-cache-scorer`,
 * not a precise one, which publishes under its own name upstream: `resolvePrefixProducer`) for the ratio of each of its candidates (`matchRatios`: the approximate scorer's score, matched ÷ window blocks; the
 * precise one's tier-weighted match ÷ prompt blocks), in a cycle state of its own: the profile's state, and so what
 * the scorer records at post-cycle (its own run, over the candidates the filters left), are untouched.
 * The approximate scorer learns only from the picks of the profiles that list it, so each profile that lists this
 * filter must list it too (`weight: 0` learns without scoring). A config listing no approximate prefix scorer, with a
 * filter naming no producer, gets one from the loader, at weight 0 in the profiles listing the filter, as upstream's
 * data layer creates its default approximate producer for the filter (`addDefaultPrefixScorer` in `config/loader.ts`).
 *
 * **The load gate** (`maxTTFTPenaltyMs` > 0; compared only when some candidates are sticky and some not):
 * - `prefillThroughput`: TTFT ms = in-flight tokens ÷ `peakPrefillThroughput` × 1000, the tokens from the config's
 *   `inflight-load-producer` (upstream's `InFlightLoad.Tokens`: the uncached prompt tokens this EPP committed to the
 *   pod and the pod has not prefilled; see that plugin). The loader adds the producer when the config lists none, as
 *   upstream's data layer creates it.
 * - `latencyPredictor`: upstream reads the predicted-latency producer's TTFT (its XGBoost sidecars). kvroute has no such
 *   producer; its predictor is the `latency-scorer`'s online per-pod model (`src/latency/`), whose prediction for each
 *   candidate — queued prefill ahead of the request, the wait for a sequence slot, the request's own uncached prefill
 *   (by the same prefix match) and a fixed overhead — is the TTFT read here. The config must list a `latency-scorer`
 *   (refused naming `ttftSource` otherwise), in every profile that lists this filter (its commits feed its queue;
 *   `weight: 0` predicts without scoring).
 *
 * Relation to kvroute's own anti-herding: the `no-hit-lru-scorer` spreads *cold* prompts (no candidate holds any of
 * the prefix), the `session-load-scorer` spreads new sessions, and the `latency-scorer` trades a cache hit against queue
 * wait in its score; this filter acts on *warm* prompts, as a hard preference with a load escape, and composes with
 * them (list it before the scorers; within the sticky set the scorers decide).
 */
export class PrefixCacheAffinityFilter implements Filter {
  readonly type = 'prefix-cache-affinity-filter';
  /** Never used: the filter keeps at least one candidate of a non-empty list. */
  readonly emptyResultReason = 'no-endpoints' as const;
  private prefix: PrefixMatchRatios | undefined;
  private latency: LatencyScorer | undefined;
  /** The TTFT read is a non-streaming predicted-latency-producer's, its end-to-end prediction. */
  private endToEnd = false;
  private inFlight: InFlightLoadProducer | undefined;

  constructor(readonly name: string, readonly parameters: Required<PrefixCacheAffinityFilterParameters>, private readonly handle: PluginHandle) {}

  resolveReferences(): void {
    const plugins = [...(this.handle.plugins?.() ?? [])];
    const p = this.parameters;
    const prefix = resolvePrefixProducer(this.handle, `${this.name}.parameters.prefixMatchInfoProducerName`, p.prefixMatchInfoProducerName);
    if (prefix === undefined) {
      throw new ConfigError(`${this.name}.type`, 'reads the prefix match of upstream\'s default approximate producer, a prefix-cache-scorer, and the config has none: '
        + 'add one to each profile that lists this filter (weight 0 learns without scoring), or name a prefix scorer in prefixMatchInfoProducerName');
    }
    this.prefix = prefix;
    // The precise index learns from the pods' KV events; the approximate one only from its profiles' picks.
    // A profile may instead list a predicted-latency-producer that reads this scorer: it records the profile's picks into
    // the scorer's index, as upstream's producer consuming the prefix match makes its data layer create an approximate
    // producer that learns every pick (llm-d's predicted-latency guide lists no prefix scorer in its profile).
    if (prefix.type === 'prefix-cache-scorer') this.requireInMyProfiles(prefix, 'learns where prompts went only from the picks of the profiles that list it', 'learns without scoring', this.producersLearning(plugins, prefix));
    if (p.maxTTFTPenaltyMs <= 0) return;
    if (p.ttftSource === 'latencyPredictor') {
      const latency = this.reference(plugins, 'latencyPredictionInfoProducerName', (x) => x.type === 'latency-scorer', 'latency-scorer');
      if (latency === undefined) {
        throw new ConfigError(`${this.name}.parameters.ttftSource`, '"latencyPredictor" reads TTFT predictions, and the config has no latency-scorer, kvroute\'s predictor '
          + '(a predicted-latency-producer predicts with one too): add a latency-scorer, or use "prefillThroughput"');
      }
      // Upstream reads the LatencyPredictionInfo of its predicted-latency producer (the one named here, else the
      // default-named one the config lists): the producer's "TTFT", its latency-scorer's prediction of the time to the
      // first token, or of the whole request in non-streaming mode (prefixcacheaffinity/plugin.go reads info.TTFT();
      // predictedlatency/requestcontrol_hooks.go samples "TTFT" at end of stream there).
      const producer = latency instanceof PredictedLatencyProducer ? latency
        : p.latencyPredictionInfoProducerName === '' && plugins.some((x) => x instanceof PredictedLatencyProducer)
          ? resolvePredictionProducer(this.handle, this.name, '') : undefined;
      if (producer !== undefined) {
        this.latency = producer.latencyScorer();
        this.endToEnd = !producer.parameters.streamingMode;
        return;
      }
      if (latency.type !== 'latency-scorer') {
        throw new ConfigError(`${this.name}.parameters.latencyPredictionInfoProducerName`, `${JSON.stringify(latency.name)} is a ${latency.type}; name a latency-scorer or predicted-latency-producer`);
      }
      this.requireInMyProfiles(latency, 'counts the prefill queued on each pod only from the picks of the profiles that list it', 'predicts without scoring');
      this.latency = latency as LatencyScorer;
      return;
    }
    const producer = this.reference(plugins, 'inFlightLoadProducerName', (x) => x.type === 'inflight-load-producer', 'inflight-load-producer');
    if (producer === undefined) {
      throw new ConfigError(`${this.name}.parameters.ttftSource`, '"prefillThroughput" reads in-flight tokens, and the config has no inflight-load-producer: add one');
    }
    if (producer.type !== 'inflight-load-producer') {
      throw new ConfigError(`${this.name}.parameters.inFlightLoadProducerName`, `${JSON.stringify(producer.name)} is a ${producer.type}; name an inflight-load-producer`);
    }
    this.inFlight = producer as InFlightLoadProducer;
    this.inFlight.addReader();
  }

  /**
   * The plugin `field` names, else the config's one plugin `matches` accepts (the one named `defaultName` among
   * several); undefined when none matches. @throws ConfigError when the name is unknown or the choice ambiguous.
   */
  /** `field`'s plugin, else the config's one `matches` picks, the one named as its type among several (upstream's default). */
  private reference(plugins: readonly Plugin[], field: keyof PrefixCacheAffinityFilterParameters, matches: (plugin: Plugin) => boolean, defaultName?: string): Plugin | undefined {
    const found = plugins.find(matches);
    return referencedPlugin(this.handle, plugins, `${this.name}.parameters.${field}`, this.parameters[field] as string, matches, defaultName ?? found?.type);
  }


  /** The names of the config's predicted-latency-producers that read `prefix` (and record their profiles' picks in it). */
  private producersLearning(plugins: readonly Plugin[], prefix: Plugin): string[] {
    return plugins.filter((x) => x instanceof PredictedLatencyProducer && x.prefixScorer() === prefix).map((x) => x.name);
  }

  /** Every profile that lists this filter must list `plugin` too (or one of `alternatives`, which do its work there). */
  private requireInMyProfiles(plugin: Plugin, because: string, weightZero: string, alternatives: readonly string[] = []): void {
    (this.handle.profiles?.() ?? []).forEach((profile, i) => {
      const refs = profile.plugins.map((r) => r.pluginRef);
      if (!refs.includes(this.name) || refs.includes(plugin.name) || alternatives.some((a) => refs.includes(a))) return;
      throw new ConfigError(
        `schedulingProfiles[${i}].plugins`,
        `lists ${JSON.stringify(this.name)} (prefix-cache-affinity-filter), which reads ${JSON.stringify(plugin.name)}, and ${JSON.stringify(plugin.name)} ${because}: `
          + `list it in profile ${JSON.stringify(profile.name)} too ({pluginRef: ${plugin.name}, weight: 0} ${weightZero})`,
      );
    });
  }

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const p = this.parameters;
    if (candidates.length <= 1 || p.affinityThreshold <= 0 || this.prefix === undefined) return candidates;
    // Drawn only when exploring can happen: the random source is the pickers' too (upstream draws from its own).
    if (p.explorationProbability > 0 && this.handle.random() < p.explorationProbability) return candidates;
    const scratch: CycleContext = { request: cycle.request, state: new CycleState() };
    const ratios = this.prefix.matchRatios(scratch, candidates);
    if (stickyCandidates(ratios, () => this.ttftMs(scratch, candidates), p) === 'all') return candidates;
    const sticky: EndpointSnapshot[] = [];
    for (let i = 0; i < candidates.length; i++) if (ratios[i]! >= p.affinityThreshold) sticky.push(candidates[i]!);
    return sticky;
  }

  /** Each candidate's time to first token in ms, from `ttftSource`. */
  private ttftMs(scratch: CycleContext, candidates: readonly EndpointSnapshot[]): ArrayLike<number> {
    if (this.latency !== undefined) {
      const match = scratch.state.get(PREFIX_MATCH);
      const seconds = this.endToEnd
        ? this.latency.predictEndToEndSeconds(scratch.request, match, candidates)
        : this.latency.predictTtftSeconds(scratch.request, match, candidates);
      for (let i = 0; i < seconds.length; i++) seconds[i]! *= 1000;
      return seconds;
    }
    const out = new Float64Array(candidates.length);
    const inFlight = this.inFlight;
    if (inFlight === undefined) return out;
    const now = this.handle.now();
    const peak = this.parameters.peakPrefillThroughput;
    for (let i = 0; i < candidates.length; i++) out[i] = (inFlight.inFlightTokens(candidates[i]!, now) / peak) * 1000;
    return out;
  }
}

/** `%f` of Go's fmt, as upstream's messages print numbers. */
const goFloat = (x: number): string => x.toFixed(6);

function numberField(fields: FieldReader, key: keyof PrefixCacheAffinityFilterParameters): number {
  const value = fields.raw(key);
  if (value === undefined || value === null) return PREFIX_CACHE_AFFINITY_DEFAULTS[key] as number;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(fields.fieldPath(key), `must be a number, got ${describeValue(value)}`);
  return value;
}

export const prefixCacheAffinityFilter = definePlugin({
  type: 'prefix-cache-affinity-filter',
  kinds: ['filter'],
  parameters: parameters<PrefixCacheAffinityFilterParameters>((fields) => {
    const affinityThreshold = numberField(fields, 'affinityThreshold');
    const explorationProbability = numberField(fields, 'explorationProbability');
    const maxTTFTPenaltyMs = numberField(fields, 'maxTTFTPenaltyMs');
    const peakPrefillThroughput = numberField(fields, 'peakPrefillThroughput');
    const rawSource = fields.raw('ttftSource');
    // Upstream's checks and messages, in its order (Config.validate).
    if (affinityThreshold > 1) throw new ConfigError(fields.fieldPath('affinityThreshold'), `affinityThreshold must be <= 1.0, got ${goFloat(affinityThreshold)}`);
    if (explorationProbability < 0 || explorationProbability > 1) {
      throw new ConfigError(fields.fieldPath('explorationProbability'), `explorationProbability must be in [0, 1], got ${goFloat(explorationProbability)}`);
    }
    if (maxTTFTPenaltyMs < 0) throw new ConfigError(fields.fieldPath('maxTTFTPenaltyMs'), `maxTTFTPenaltyMs must be >= 0, got ${goFloat(maxTTFTPenaltyMs)}`);
    if (peakPrefillThroughput < 0) throw new ConfigError(fields.fieldPath('peakPrefillThroughput'), `peakPrefillThroughput must be >= 0, got ${goFloat(peakPrefillThroughput)}`);
    // null keeps the default, as Go's decoder leaves a string field alone for null; "" is refused, as upstream refuses it.
    const ttftSource = rawSource === undefined || rawSource === null ? PREFIX_CACHE_AFFINITY_DEFAULTS.ttftSource : rawSource;
    if (ttftSource !== 'latencyPredictor' && ttftSource !== 'prefillThroughput') {
      throw new ConfigError(fields.fieldPath('ttftSource'), `ttftSource must be "latencyPredictor" or "prefillThroughput", got ${typeof ttftSource === 'string' ? JSON.stringify(ttftSource) : describeValue(ttftSource)}`);
    }
    if (ttftSource === 'prefillThroughput' && maxTTFTPenaltyMs > 0 && peakPrefillThroughput === 0) {
      throw new ConfigError(fields.fieldPath('peakPrefillThroughput'), 'peakPrefillThroughput must be > 0 when ttftSource is prefillThroughput');
    }
    return {
      affinityThreshold,
      explorationProbability,
      maxTTFTPenaltyMs,
      ttftSource,
      peakPrefillThroughput,
      prefixMatchInfoProducerName: fields.goString('prefixMatchInfoProducerName', 'a plugin name'),
      latencyPredictionInfoProducerName: fields.goString('latencyPredictionInfoProducerName', 'a plugin name'),
      inFlightLoadProducerName: fields.goString('inFlightLoadProducerName', 'a plugin name'),
    };
  }),
  create: (name, resolved, handle) => new PrefixCacheAffinityFilter(name, resolved, handle),
});
