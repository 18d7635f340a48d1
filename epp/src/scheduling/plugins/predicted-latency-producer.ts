/**
 * `predicted-latency-producer`: llm-d-router v0.10.0's predicted-latency data producer
 * (`pkg/epp/framework/plugins/requestcontrol/dataproducer/predictedlatency/`: README.md, plugin.go, prediction.go,
 * dataproducer_hooks.go @ v0.10.0) on kvroute's online latency model instead of upstream's XGBoost sidecars.
 *
 * Per request it reads the SLO headers (`x-llm-d-slo-ttft-ms`, else the deprecated `x-slo-ttft-ms`; `x-llm-d-slo-tpot-ms`,
 * else `x-slo-tpot-ms`: `metadata.TTFTSLOHeaderKey`/`TPOTSLOHeaderKey` and their aliases, pkg/epp/metadata/consts.go; a
 * value Go's strconv.ParseFloat refuses counts 0, as parseSLOHeaders logs and goes on) and publishes, per candidate,
 * upstream's `LatencyPredictionInfo` (`attribute/latency/data_types.go`): predicted TTFT and TPOT in ms, their headrooms
 * and validity, and the requests in this producer's running queue for the endpoint (committed there as their primary
 * target, not yet ended).
 *
 * - TTFT: the config's `latency-scorer`'s prediction (`predictTtftSeconds`: queued prefill ahead, slot wait, the
 *   request's own uncached prefill by the prefix match, overhead), one model for scoring and for SLOs, learnt online
 *   from the pods' own TTFT histograms (`src/latency/`). That is with `streamingMode: true`. With `streamingMode:
 *   false` (the default, and what llm-d's chart config runs) upstream samples its "TTFT" at the end of the response, so
 *   the prediction it validates against `x-llm-d-slo-ttft-ms` is the request's end-to-end latency
 *   (requestcontrol_hooks.go ResponseBody @ v0.10.0, "In non-streaming mode, TTFT represents full e2e latency";
 *   README.md "Default Behavior"): this publishes `predictEndToEndSeconds` there, the time to first token plus the
 *   pod's mean time RUNNING (`vllm:request_inference_time_seconds`) less the request's own prefill. The scorer must be listed in each profile listing this
 *   producer: its commits are what count the prefill queued on each pod (`weight: 0` predicts without scoring).
 *   Headroom as validatePrediction computes it: `ttftHeadroom = SLO − predicted`, valid when `predicted < SLO`; with no
 *   TTFT SLO the SLO is 0, every prediction invalid with negative headroom (upstream's "no SLO" convention, which makes
 *   the tier filter keep everyone in the negative tier).
 * - TPOT: the same `latency-scorer`'s TPOT model (`predictTpotSeconds`, `src/latency/pod-tpot-model.ts`): per pod,
 *   seconds per output token = intercept + slope × the batch the request joins (the larger of this EPP's requests in
 *   flight there and the scrape's running requests, per engine, plus 1), learnt online from the pods' inter-token
 *   histograms (`vllm:inter_token_latency_seconds`, else `vllm:time_per_output_token_seconds`). Validity and headroom
 *   as validatePrediction and generatePredictions (prediction.go @ v0.10.0): with `streamingMode: true`, the buffered
 *   SLO is `tpotSLO × sloBufferFactor`, tightened to `podMinTPOTSLO × sloBufferFactor` when the tightest TPOT SLO among
 *   the requests this producer has running on the endpoint (upstream's running-request queue,
 *   running_request_tpot_slo_queue.go: every committed request with its TPOT SLO, 0 without one, until its response
 *   ends) is > 0; `tpotValid = tpot < buffered`, `tpotHeadroom = buffered − tpot` (no TPOT SLO: buffered 0, invalid,
 *   as for TTFT). With `streamingMode: false` (the default), and for an endpoint whose `endpointRoleLabel` label is
 *   `prefill`, TPOT is neutralized as upstream does: `tpotValid = true`, `tpotHeadroom = 0`, the predicted `tpot` still
 *   published. Upstream decides by the producer's `streamingMode`, not by the request's `stream` field, and so does this.
 *   kvroute only: until some pod's page has had the inter-token histogram there is no TPOT model, and TPOT is
 *   neutralized whatever the mode (`tpot = 0`), as before the model existed.
 * - The prefix match comes from the prefix scorer `prefixMatchInfoProducerName` names (else upstream's default producer,
 *   the approximate one), in the cycle's own state (it is published there for the
 *   `latency-scorer` after it). Upstream's producer consumes the prefix match info, so upstream's data layer creates an
 *   approximate prefix producer that learns every pick; kvroute's approximate scorer learns only from the picks of the
 *   profiles listing it, so this producer records its profile's pick into that scorer's index (post-cycle) when the
 *   profile does not list the scorer itself. That is what lets llm-d's guide list the `prefix-cache-affinity-filter`
 *   without the scorer in its profile.
 *
 * It runs as the first filter of its profile (it keeps every candidate), where upstream's director runs it as a
 * `DataProducer` before admission and scheduling. kvroute's admission runs before the cycle, so `latency-slo-admitter`
 * asks `predict` itself on the request's candidates (a cycle state of its own).
 */
import { parseGoFloat64 } from '@kvroute/protocol/prometheus';
import { DURATION_FORMAT_HINT } from '../../config/duration';
import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import { CycleState, stateKey, type CycleContext, type Filter, type Plugin, type PluginHandle, type PostCycle, type ProfileRunResult, type StateKey } from '../framework';
import { referencedPlugin } from './plugin-reference';
import { definePlugin, parameters } from '../plugin';
import { PREFIX_MATCH, resolvePrefixProducer, type PrefixMatchRatios } from '../prefix-match';
import type { PreRequest, ResponseComplete } from '../../requestcontrol/hooks';
import type { LLMRequest, SchedulingResult } from '../types';
import type { LatencyScorer } from './latency-scorer';

/** `metadata.TTFTSLOHeaderKey` and its deprecated alias, current name first (pkg/epp/metadata/consts.go @ v0.10.0). */
export const TTFT_SLO_HEADERS = ['x-llm-d-slo-ttft-ms', 'x-slo-ttft-ms'] as const;
/** `metadata.TPOTSLOHeaderKey` and its deprecated alias. */
export const TPOT_SLO_HEADERS = ['x-llm-d-slo-tpot-ms', 'x-slo-tpot-ms'] as const;

/** Upstream's `LatencyPredictionInfo` (`framework/plugins/datalayer/attribute/latency/data_types.go` @ v0.10.0). */
export interface LatencyPredictionInfo {
  readonly ttftValid: boolean;
  readonly tpotValid: boolean;
  /** ms; positive within the SLO, negative past it. */
  readonly ttftHeadroom: number;
  readonly tpotHeadroom: number;
  /** Predicted time to first token, ms. */
  readonly ttft: number;
  /** Predicted time per output token, ms: the latency-scorer's TPOT model; 0 before any pod reported the inter-token histogram. */
  readonly tpot: number;
  /**
   * Requests this producer saw committed to the endpoint as their primary target and not seen end: upstream's
   * running-request queue's size (`getEndpointRunningRequestCount`), which the latency-scorer's idle preference reads.
   */
  readonly dispatchedRequestCount: number;
}

/** `LatencyPredictionInfo.IsValid`: TTFT and TPOT both within their SLOs. */
export const isValidPrediction = (info: LatencyPredictionInfo): boolean => info.ttftValid && info.tpotValid;

/** One cycle's predictions, by endpoint key. */
export type LatencyPredictions = ReadonlyMap<string, LatencyPredictionInfo>;

export interface PredictedLatencyProducerParameters {
  /** Deprecated upstream (mid-stream TPOT predictions were removed): accepted and ignored. @default 1000 */
  samplingMean?: number;
  /** Deprecated upstream: accepted and ignored. @default 0 */
  maxDecodeTokenSamplesForPrediction?: number;
  /** Multiplies the TPOT SLO and the endpoint's tightest running TPOT SLO (upstream applies it to TPOT only; used with `streamingMode: true`); > 0. @default 1 */
  sloBufferFactor?: number;
  /**
   * Upstream's per-request context TTL. kvroute keeps the context with the request itself: accepted, unused. Upstream's
   * field is a `time.Duration` decoded by encoding/json (plugin.go @ v0.10.0), which takes only a JSON integer of
   * nanoseconds (300000000000 is 5 minutes); kvroute takes that and, as its other durations, a Go duration string
   * ("5m"), which upstream's decoder refuses. Kept as given. @default "5m"
   */
  contextTTL?: string | number;
  /**
   * Upstream trains TTFT at the first chunk (true) or at EOS (false), and validates TPOT only when true (false: TPOT
   * neutralized, `tpotValid` true, headroom 0). kvroute's models learn from scrapes either way; this decides the TPOT
   * check, as upstream's, and what the published `ttft` is: the time to first token (true) or, as upstream's EOS
   * sample makes it, the end-to-end latency (false: `LatencyScorer.predictEndToEndSeconds`). @default false
   */
  streamingMode?: boolean;
  /** Label whose value `prefill` marks prefill endpoints, whose TPOT is neutralized as upstream's `hasPrefillRole`. "": none. @default "" */
  endpointRoleLabel?: string;
  /** false: publish no predictions (upstream's training-only mode): the tier filter keeps everyone, the admitter admits. @default true */
  predictInProduce?: boolean;
  /**
   * The prefix scorer whose match feeds the TTFT prediction. "": upstream's default producer, the approximate one
   * (`resolvePrefixProducer`), even beside a precise scorer; the loader adds one when the config has none. @default ""
   */
  prefixMatchInfoProducerName?: string;
  /** kvroute: the `latency-scorer` whose model predicts TTFT. "": the config's one. @default "" */
  latencyScorerName?: string;
}

const DEFAULTS: Required<PredictedLatencyProducerParameters> = {
  samplingMean: 1000,
  maxDecodeTokenSamplesForPrediction: 0,
  sloBufferFactor: 1,
  contextTTL: '5m',
  streamingMode: false,
  endpointRoleLabel: '',
  predictInProduce: true,
  prefixMatchInfoProducerName: '',
  latencyScorerName: '',
};

/**
 * Go's strconv.ParseFloat on a header value (parseFloatHeader in plugin.go): absent or not a float → 0 (upstream logs the
 * BadRequest and goes on with 0). The first of `names` present is read, even when its value is not a float
 * (metadata.GetLowerCaseHeaderValue stops at the first alias present).
 */
export function parseSloHeader(headers: Readonly<Record<string, string>>, names: readonly string[]): number {
  for (const name of names) {
    const value = headers[name];
    if (value === undefined) continue;
    return parseGoFloat64(value) ?? 0;
  }
  return 0;
}

/** The request's TTFT and TPOT SLOs in ms (0: none). */
export function sloOf(request: LLMRequest): { ttftSlo: number; tpotSlo: number } {
  return { ttftSlo: parseSloHeader(request.headers, TTFT_SLO_HEADERS), tpotSlo: parseSloHeader(request.headers, TPOT_SLO_HEADERS) };
}

/** One candidate's TPOT inputs to `predictionInfo`. */
export interface TpotInputs {
  /** Predicted ms per output token. */
  readonly tpotMs: number;
  /** The request's TPOT SLO, ms (0: none). */
  readonly tpotSlo: number;
  /** The tightest TPOT SLO among the requests running on the endpoint (0: none, or one without an SLO). */
  readonly podMinTpotSlo: number;
  readonly sloBufferFactor: number;
  /** false: TPOT neutralized (`streamingMode: false`, or a prefill endpoint). */
  readonly validate: boolean;
}

/**
 * validatePrediction and generatePredictions' neutralization (prediction.go @ v0.10.0) for one candidate:
 * `ttftOk = ttft < ttftSLO`, `ttftHeadroom = ttftSLO − ttft`; with `tpot.validate` (streaming mode, not a prefill
 * endpoint) `bufferedTPOT = tpotSLO × sloBufferFactor`, `min(…, podMinTPOTSLO × sloBufferFactor)` when podMinTPOTSLO
 * > 0, `tpotOk = tpot < bufferedTPOT`, `tpotHeadroom = bufferedTPOT − tpot`; otherwise (and without a TPOT model,
 * `tpot` undefined) `tpotOk = true`, headroom 0.
 */
export function predictionInfo(ttftMs: number, ttftSlo: number, dispatchedRequestCount: number, tpot?: TpotInputs): LatencyPredictionInfo {
  const ttftValid = ttftMs < ttftSlo;
  const ttftHeadroom = ttftSlo - ttftMs;
  if (tpot === undefined || !tpot.validate) {
    return { ttftValid, tpotValid: true, ttftHeadroom, tpotHeadroom: 0, ttft: ttftMs, tpot: tpot?.tpotMs ?? 0, dispatchedRequestCount };
  }
  let buffered = tpot.tpotSlo * tpot.sloBufferFactor;
  if (tpot.podMinTpotSlo > 0) buffered = Math.min(buffered, tpot.podMinTpotSlo * tpot.sloBufferFactor);
  return { ttftValid, tpotValid: tpot.tpotMs < buffered, ttftHeadroom, tpotHeadroom: buffered - tpot.tpotMs, ttft: ttftMs, tpot: tpot.tpotMs, dispatchedRequestCount };
}

/** hasPrefillRole (prediction.go @ v0.10.0): the endpoint's `roleLabel` label is `prefill`. */
export function hasPrefillRole(roleLabel: string, endpoint: Endpoint): boolean {
  return roleLabel !== '' && endpoint.labels[roleLabel] === 'prefill';
}

export class PredictedLatencyProducer implements Filter, PostCycle, PreRequest, ResponseComplete {
  readonly type = 'predicted-latency-producer';
  readonly emptyResultReason = 'no-endpoints' as const;
  /** Where this producer's predictions are published in a cycle's state (`LatencyPredictionInfoDataKey` with its name). */
  readonly predictionsKey: StateKey<LatencyPredictions>;
  private prefix: PrefixMatchRatios | undefined;
  private latency: LatencyScorer | undefined;
  /** Profiles that list the prefix scorer themselves: it learns their picks on its own. */
  private profilesLearning = new Set<string>();
  private resolved = false;
  /**
   * Upstream's running-request TPOT SLO queues (running_request_tpot_slo_queue.go, filled in PreRequest, emptied at
   * EOS): endpoint key → this producer's committed requests there (one entry per commit) → their TPOT SLO, ms.
   */
  private readonly running = new Map<string, RunningTpotSlos>();
  private readonly trackedKey = stateKey<{ readonly endpointKey: string; readonly id: number }>('predicted-latency-producer running');
  private commits = 0;

  constructor(readonly name: string, readonly parameters: Required<PredictedLatencyProducerParameters>, private readonly handle: PluginHandle) {
    this.predictionsKey = stateKey<LatencyPredictions>(`predicted-latency-producer ${name}`);
  }

  resolveReferences(): void {
    if (this.resolved) return;
    this.resolved = true;
    const plugins = [...(this.handle.plugins?.() ?? [])];
    const p = this.parameters;
    this.prefix = resolvePrefixProducer(this.handle, `${this.name}.parameters.prefixMatchInfoProducerName`, p.prefixMatchInfoProducerName);
    const latency = this.reference(plugins, p.latencyScorerName, 'latencyScorerName', (x) => x.type === 'latency-scorer');
    if (latency === undefined) {
      throw new ConfigError(`${this.name}.type`, 'predicts TTFT with kvroute\'s latency-scorer (its online per-pod model, in place of upstream\'s XGBoost sidecars), '
        + 'and the config has none: add a latency-scorer to each profile that lists this producer (weight 0 predicts without scoring)');
    }
    if (latency.type !== 'latency-scorer') {
      throw new ConfigError(`${this.name}.parameters.latencyScorerName`, `${JSON.stringify(latency.name)} is a ${latency.type}; name a latency-scorer`);
    }
    this.latency = latency as LatencyScorer;
    this.latency.wantTpot();
    this.latency.servePredictions(this);
    (this.handle.profiles?.() ?? []).forEach((profile, i) => {
      const refs = profile.plugins.map((r) => r.pluginRef);
      if (!refs.includes(this.name)) return;
      if (this.prefix !== undefined && refs.includes(this.prefix.name)) this.profilesLearning.add(profile.name);
      if (refs.includes(latency.name)) return;
      throw new ConfigError(`schedulingProfiles[${i}].plugins`, `lists ${JSON.stringify(this.name)} (predicted-latency-producer), which predicts with ${JSON.stringify(latency.name)}, `
        + `and ${JSON.stringify(latency.name)} counts the prefill queued on each pod only from the picks of the profiles that list it: `
        + `list it in profile ${JSON.stringify(profile.name)} too ({pluginRef: ${latency.name}, weight: 0} predicts without scoring)`);
    });
  }

  /** The latency-scorer whose model this producer's TTFT is (resolving references first): for the affinity filter's gate. */
  latencyScorer(): LatencyScorer {
    this.resolveReferences();
    return this.latency!;
  }

  /** The prefix scorer this producer reads (resolving references first if they are not yet): for the affinity filter's check. */
  prefixScorer(): Plugin | undefined {
    this.resolveReferences();
    return this.prefix;
  }

  private reference(plugins: readonly Plugin[], named: string, field: string, matches: (plugin: Plugin) => boolean): Plugin | undefined {
    return referencedPlugin(this.handle, plugins, `${this.name}.parameters.${field}`, named, matches);
  }


  /**
   * Each candidate's prediction for `request` (Produce + generatePredictions), with the prefix match computed into
   * `state` (and published there as PREFIX_MATCH); undefined when `predictInProduce` is false.
   */
  predict(request: LLMRequest, candidates: readonly EndpointSnapshot[], state: CycleState = new CycleState()): LatencyPredictions | undefined {
    if (!this.parameters.predictInProduce) return undefined;
    this.resolveReferences();
    if (this.prefix !== undefined) this.prefix.matchRatios({ request, state }, candidates);
    const { streamingMode, endpointRoleLabel, sloBufferFactor } = this.parameters;
    // Upstream's "TTFT" is sampled at the first chunk in streaming mode and at the end of the response otherwise
    // (requestcontrol_hooks.go ResponseBody @ v0.10.0: "In non-streaming mode, TTFT represents full e2e latency").
    const seconds = streamingMode
      ? this.latency!.predictTtftSeconds(request, state.get(PREFIX_MATCH), candidates)
      : this.latency!.predictEndToEndSeconds(request, state.get(PREFIX_MATCH), candidates);
    const tpotSeconds = this.latency!.predictTpotSeconds(candidates);
    const { ttftSlo, tpotSlo } = sloOf(request);
    const out = new Map<string, LatencyPredictionInfo>();
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      const validate = streamingMode && !hasPrefillRole(endpointRoleLabel, c.endpoint);
      const tpot: TpotInputs | undefined = tpotSeconds === undefined ? undefined : {
        tpotMs: tpotSeconds[i]! * 1000, tpotSlo, sloBufferFactor, validate,
        podMinTpotSlo: validate ? this.endpointMinTpotSlo(c.endpoint.key) : 0,
      };
      // getEndpointRunningRequestCount (plugin.go @ v0.10.0), the size of this producer's running queue there: the
      // requests committed with the endpoint as their primary target (a P/D request's prefill pick is not one) whose
      // TPOT SLO the queue took (requestPriorityQueue.Add refuses a negative one), until their response ends.
      out.set(c.endpoint.key, predictionInfo(seconds[i]! * 1000, ttftSlo, this.running.get(c.endpoint.key)?.size ?? 0, tpot));
    }
    return out;
  }

  /** getEndpointMinTPOTSLO (plugin.go @ v0.10.0): the tightest TPOT SLO among the requests running there, 0 with none. */
  endpointMinTpotSlo(endpointKey: string): number {
    return this.running.get(endpointKey)?.min() ?? 0;
  }

  /**
   * PreRequest (requestcontrol_hooks.go @ v0.10.0): the request joins its primary target's running queue with its TPOT
   * SLO (0 without one; a negative one is not added, as requestPriorityQueue.Add refuses it).
   */
  preRequest(request: LLMRequest, result: SchedulingResult): void {
    const attributes = request.attributes;
    if (attributes === undefined) return;
    const { tpotSlo } = sloOf(request);
    if (tpotSlo < 0) return;
    const endpointKey = result.target.endpoint.key;
    const id = ++this.commits;
    let slos = this.running.get(endpointKey);
    if (slos === undefined) this.running.set(endpointKey, (slos = new RunningTpotSlos()));
    slos.add(id, tpotSlo);
    attributes.set(this.trackedKey, { endpointKey, id });
  }

  /** The response ended (upstream: ResponseBody at EOS, or the context's TTL): the request leaves its queue. */
  responseComplete(request: LLMRequest, _target: Endpoint): void {
    const tracked = request.attributes?.get(this.trackedKey);
    if (tracked === undefined) return;
    const slos = this.running.get(tracked.endpointKey);
    if (slos === undefined) return;
    slos.remove(tracked.id);
    if (slos.size === 0) this.running.delete(tracked.endpointKey);
  }

  /** Produces this cycle's predictions and keeps every candidate. */
  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const predictions = this.predict(cycle.request, candidates, cycle.state);
    if (predictions !== undefined) cycle.state.set(this.predictionsKey, predictions);
    return candidates;
  }

  /**
   * The approximate prefix scorer learns this profile's pick, as upstream's auto-created prefix producer would. With
   * `predictInProduce: false` the filter matched nothing: the pick alone is matched here, in a cycle state of its own
   * (upstream's prefix producer learns every pick whatever the predicted-latency producer predicts).
   */
  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const prefix = this.prefix as (PrefixMatchRatios & { learnPick?: (c: CycleContext, t: EndpointSnapshot) => void }) | undefined;
    const [target] = result.targets;
    if (prefix?.learnPick === undefined || target === undefined) return;
    if (result.profile !== undefined && this.profilesLearning.has(result.profile)) return;
    let matched = cycle;
    if (!this.parameters.predictInProduce) {
      matched = { request: cycle.request, state: new CycleState() };
      prefix.matchRatios(matched, [target]);
    }
    prefix.learnPick(matched, target);
  }
}

/**
 * One endpoint's running-request TPOT SLOs (upstream's requestPriorityQueue, a min-heap peeked per prediction): the
 * minimum is kept and recomputed only after the request holding it leaves, so a prediction reads it in O(1).
 */
class RunningTpotSlos {
  private readonly slos = new Map<number, number>();
  /** The minimum of `slos`; NaN when it must be recomputed. */
  private cachedMin = Infinity;

  get size(): number {
    return this.slos.size;
  }

  add(id: number, slo: number): void {
    this.slos.set(id, slo);
    if (slo < this.cachedMin) this.cachedMin = slo;
  }

  remove(id: number): void {
    const slo = this.slos.get(id);
    if (slo === undefined) return;
    this.slos.delete(id);
    if (slo === this.cachedMin) this.cachedMin = Number.NaN;
  }

  /** The tightest SLO, 0 with none (getEndpointMinTPOTSLO's empty queue). */
  min(): number {
    if (this.slos.size === 0) return 0;
    if (Number.isNaN(this.cachedMin)) {
      let min = Infinity;
      for (const slo of this.slos.values()) if (slo < min) min = slo;
      this.cachedMin = min;
    }
    return this.cachedMin;
  }
}

/**
 * The producer name llm-d-router v0.10.0's `LatencyPredictionInfoDataKey` carries when a reader names none
 * (`latencyproducerconstants.LatencyDataProviderPluginType`, `predictedlatency/constants/constants.go`): among several
 * producers, the one a reader without `latencyPredictionInfoProducerName` reads.
 */
export const DEFAULT_PREDICTION_PRODUCER = 'predicted-latency-producer';

/**
 * The producer `named` ("" → the config's one, or among several the one named `predicted-latency-producer`, whose key
 * upstream's readers read when they name none) for a reader `owner`. @throws ConfigError when there is none, the
 * name is not one, or several with none of the default name leave the choice open.
 */
export function resolvePredictionProducer(handle: PluginHandle, owner: string, named: string): PredictedLatencyProducer {
  const plugins = [...(handle.plugins?.() ?? [])];
  const path = `${owner}.parameters.latencyPredictionInfoProducerName`;
  if (named !== '') {
    const plugin = handle.plugin?.(named) ?? plugins.find((x) => x.name === named);
    if (plugin === undefined) throw new ConfigError(path, `no plugin named ${JSON.stringify(named)}`);
    if (!(plugin instanceof PredictedLatencyProducer)) throw new ConfigError(path, `${JSON.stringify(named)} is a ${plugin.type}; name a predicted-latency-producer`);
    return plugin;
  }
  const found = plugins.filter((x): x is PredictedLatencyProducer => x instanceof PredictedLatencyProducer);
  if (found.length === 0) throw new ConfigError(`${owner}.type`, 'reads the latency predictions of a predicted-latency-producer, and the config has none: add one');
  if (found.length === 1) return found[0]!;
  const byDefault = found.find((x) => x.name === DEFAULT_PREDICTION_PRODUCER);
  if (byDefault !== undefined) return byDefault;
  throw new ConfigError(path, `the config has several (${found.map((x) => x.name).join(', ')}) and none named ${JSON.stringify(DEFAULT_PREDICTION_PRODUCER)}, `
    + 'the one llm-d-router v0.10.0 reads when a reader names none: name the one to read');
}

/** A number field, any finite value (Go decodes into float64/int; a string fails). */
function numberField(fields: FieldReader, key: keyof PredictedLatencyProducerParameters, integer = false): number {
  const value = fields.raw(key);
  if (value === undefined || value === null) return DEFAULTS[key] as number;
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new ConfigError(fields.fieldPath(key), `must be ${integer ? 'an integer' : 'a number'}, got ${describeValue(value)}`);
  }
  return value;
}

/**
 * `contextTTL`: what upstream's `time.Duration` field decodes, a JSON integer of nanoseconds (any int64: encoding/json
 * refuses a fraction), or a positive Go duration string as kvroute's other durations take.
 */
function contextTtlField(fields: FieldReader): string | number {
  const value = fields.raw('contextTTL');
  if (typeof value !== 'number') return fields.duration('contextTTL', DEFAULTS.contextTTL as string);
  if (!Number.isInteger(value) || Math.abs(value) > 2 ** 63) {
    throw new ConfigError(fields.fieldPath('contextTTL'), `must be an integer number of nanoseconds (Go's time.Duration) or ${DURATION_FORMAT_HINT}, got ${describeValue(value)}`);
  }
  return value;
}

/** Upstream Config fields kvroute cannot honour, refused by name with the reason. */
function refuseUnsupported(fields: FieldReader): void {
  if (fields.boolean('useEncoderCacheFeatures', false)) {
    throw new ConfigError(fields.fieldPath('useEncoderCacheFeatures'), 'true is not supported: kvroute has no multimodal encoder-cache producer, and its TTFT model takes no encoder features');
  }
  if (fields.goString('encoderCacheMatchInfoProducerName') !== '') {
    throw new ConfigError(fields.fieldPath('encoderCacheMatchInfoProducerName'), 'is not supported: kvroute has no multimodal encoder-cache producer');
  }
  if (fields.goString('inFlightLoadProducerName') !== '') {
    throw new ConfigError(fields.fieldPath('inFlightLoadProducerName'), 'is not supported: kvroute\'s TTFT model (the latency-scorer) counts the prefill in flight on each pod itself and reads no inflight-load-producer');
  }
}

export const predictedLatencyProducer = definePlugin({
  type: 'predicted-latency-producer',
  kinds: ['filter', 'post-cycle', 'pre-request', 'response-complete'],
  cycleState: { writes: ['prefix-match'] },
  parameters: parameters<PredictedLatencyProducerParameters>((fields) => {
    refuseUnsupported(fields);
    const sloBufferFactor = numberField(fields, 'sloBufferFactor');
    // Config.validate's check and message (plugin.go @ v0.10.0).
    if (sloBufferFactor <= 0) throw new ConfigError(fields.fieldPath('sloBufferFactor'), `sloBufferFactor must be > 0, got ${sloBufferFactor.toFixed(6)}`);
    return {
      samplingMean: numberField(fields, 'samplingMean'),
      maxDecodeTokenSamplesForPrediction: numberField(fields, 'maxDecodeTokenSamplesForPrediction', true),
      sloBufferFactor,
      contextTTL: contextTtlField(fields),
      streamingMode: fields.boolean('streamingMode', DEFAULTS.streamingMode),
      endpointRoleLabel: fields.goString('endpointRoleLabel'),
      predictInProduce: fields.boolean('predictInProduce', DEFAULTS.predictInProduce),
      prefixMatchInfoProducerName: fields.goString('prefixMatchInfoProducerName'),
      latencyScorerName: fields.goString('latencyScorerName'),
    };
  }),
  create: (name, resolved, handle) => new PredictedLatencyProducer(name, resolved, handle),
});
