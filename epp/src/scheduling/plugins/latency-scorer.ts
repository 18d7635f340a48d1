import { parseDuration } from '../../config/duration';
import { ConfigError } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import { LatencyModel, type TtftPrediction } from '../../latency/pod-latency-model';
import type { PostResponse, PreRequest, ResponseInfo } from '../../requestcontrol/hooks';
import { stateKey, type CycleContext, type PluginHandle, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { PREFIX_MATCH, uncachedPromptTokens, type PrefixMatchEstimate } from '../prefix-match';
import type { LLMRequest, SchedulingResult } from '../types';

export interface LatencyScorerParameters {
  /**
   * Prefill milliseconds per uncached prompt token a pod is assumed to cost before its own data arrives. 0.2 ms ≈
   * 5,000 prefill tokens/s, a mid-size model on one GPU; kvroute's simulator defaults to 0.25.
   * @default 0.2
   */
  priorPrefillMsPerToken?: number;
  /** Fixed milliseconds per request before data arrives (scheduling, first decode step). @default 20 */
  priorOverheadMs?: number;
  /** How many requests' worth of evidence the prior is: more makes a pod's first observations move it less. @default 8 */
  priorWeight?: number;
  /** Observations lose half their weight every `halfLife`, so the model follows a pod that slows down. @default "60s" */
  halfLife?: string;
  /**
   * The longest a picked request counts as queued prefill work on its pod without its first token being seen
   * (normally it leaves at the next scrape that counts its first token, or at a non-streaming response's headers).
   * @default "30s"
   */
  pendingTimeout?: string;
  /**
   * Characters per token, to turn the approximate prefix index's characters (and, without any prefix scorer, the
   * prompt's length) into tokens: GIE's `averageCharactersPerToken` (pkg/epp/scheduling/framework/plugins/multi/prefix
   * /plugin.go), the usual figure for English text with a ~150k BPE vocabulary. Unused with the precise scorer.
   * @default 4
   */
  charactersPerToken?: number;
}

/** Per-candidate predictions of the last cycle, kept with the request so the pre-request hook can queue the pick. */
interface CyclePredictions {
  readonly byEndpoint: ReadonlyMap<string, TtftPrediction>;
}

/**
 * `latency-scorer`: predicts each candidate's time to first token for this request — queued prefill work ahead of it,
 * its own uncached prefill and a fixed overhead, from a per-pod model learned online (`epp/src/latency/`) — and scores
 * it as `best predicted TTFT ÷ this candidate's predicted TTFT`: 1 for the fastest candidate, 0.5 for one predicted to
 * take twice as long. The ratio keeps the score in (0, 1] whatever the absolute latencies, so it composes with the
 * other weighted scorers: at weight `w` a candidate twice as slow loses `w/2` points, ten times as slow `0.9·w`.
 *
 * Uncached tokens per candidate come from the prefix scorer of the same profile (`prefix-match.ts`): the precise
 * scorer's tokens, or the approximate scorer's characters ÷ `charactersPerToken`. List this scorer after the prefix
 * scorer in the profile; without a prefix match every candidate is charged the whole prompt, and only queues differ.
 *
 * Request hooks: at the commit (pre-request) the pick's uncached tokens join the pod's queued work, so the next
 * request sees them at once rather than at the next scrape (equal scores spread instead of herding); a non-streaming
 * response's headers (post-response) end the request's queued work, since they follow the whole generation. A
 * streaming response's headers say nothing: vLLM sends them before the request reaches its engine queue.
 *
 * Relation to upstream: GIE's predicted-latency plugin (type `slo-aware-routing`, later `predicted-latency-scorer`,
 * kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/multi/slo_aware_router/, used
 * by llm-d's "predicted latency based scheduling" guide) asks sidecar services for p90 TTFT/TPOT predictions from
 * XGBoost models trained on samples the EPP collects from streamed responses, and scores headroom against the
 * request's `x-slo-ttft-ms`/`x-slo-tpot-ms` headers; llm-d-inference-scheduler's `pd-slo-aware-scorer`
 * (pkg/plugins/scorer/pd_slo_aware_scorer.go, late 2025) wraps that router, with the same predictor sidecars
 * (`sidecars/latencypredictorasync`), for prefill/decode pairs. This plugin needs no sidecar and no response bodies: a
 * two-parameter linear model per pod fitted from the engine's own TTFT histogram and prefix-cache counters; it
 * predicts the mean TTFT, not p90, and reads no SLO headers (yet).
 */
export class LatencyScorer implements Scorer, PreRequest, PostResponse {
  readonly type = 'latency-scorer';
  readonly model: LatencyModel;
  private readonly predictionsKey = stateKey<CyclePredictions>('latency-scorer predictions');

  constructor(
    readonly name: string,
    private readonly parameters: Required<LatencyScorerParameters>,
    private readonly handle: PluginHandle,
  ) {
    this.model = new LatencyModel({
      priorSecondsPerToken: parameters.priorPrefillMsPerToken / 1000,
      priorOverheadSeconds: parameters.priorOverheadMs / 1000,
      priorWeight: parameters.priorWeight,
      halfLifeMs: parseDuration(parameters.halfLife),
      pendingTimeoutMs: parseDuration(parameters.pendingTimeout),
    });
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    const now = this.handle.now();
    const match = cycle.state.get(PREFIX_MATCH);
    const byEndpoint = new Map<string, TtftPrediction>();
    let best = Infinity;
    const predictions = candidates.map((candidate) => {
      const pod = this.model.pod(candidate.endpoint.key);
      pod.ingest(candidate.metrics, now);
      const prediction = pod.predict(this.uncachedTokens(cycle.request, match, candidate.endpoint.key), candidate.metrics, now);
      byEndpoint.set(candidate.endpoint.key, prediction);
      if (prediction.ttftSeconds < best) best = prediction.ttftSeconds;
      return prediction;
    });
    cycle.request.attributes?.set(this.predictionsKey, { byEndpoint });
    return predictions.map((p) => (p.ttftSeconds <= 0 ? 1 : best / p.ttftSeconds));
  }

  /** The request's prompt tokens the endpoint would have to prefill. */
  uncachedTokens(request: LLMRequest, match: PrefixMatchEstimate | undefined, endpointKey: string): number {
    return uncachedPromptTokens(request.prompt, match, endpointKey, this.parameters.charactersPerToken);
  }

  /** The predictions of the request's last scoring, by endpoint key (for logs and tests). */
  predictions(request: LLMRequest): ReadonlyMap<string, TtftPrediction> | undefined {
    return request.attributes?.get(this.predictionsKey)?.byEndpoint;
  }

  preRequest(request: LLMRequest, result: SchedulingResult): void {
    const key = result.target.endpoint.key;
    const prediction = this.predictions(request)?.get(key);
    if (prediction === undefined) return;
    this.model.pod(key).addPending(request.requestId, prediction.uncachedTokens, prediction.ttftSeconds, this.handle.now());
  }

  postResponse(request: LLMRequest, response: ResponseInfo, target: Endpoint): undefined {
    // Streaming (SSE) headers precede the prefill; any other response's headers follow the whole generation (or an error).
    const contentType = response.headers['content-type'] ?? '';
    if (!contentType.toLowerCase().startsWith('text/event-stream')) this.model.pod(target.key).finish(request.requestId);
    return undefined;
  }

  removeEndpoint(endpointKey: string): void {
    this.model.remove(endpointKey);
  }
}

function positive(fields: FieldReader, key: string, defaultValue: number): number {
  const value = fields.number(key, defaultValue, 0);
  if (value === 0) throw new ConfigError(fields.fieldPath(key), 'must be a number > 0, got 0');
  return value;
}

export const latencyScorer = definePlugin({
  type: 'latency-scorer',
  kinds: ['scorer', 'pre-request', 'post-response'],
  cycleState: { reads: ['prefix-match'] },
  parameters: parameters<LatencyScorerParameters>((fields) => ({
    priorPrefillMsPerToken: fields.number('priorPrefillMsPerToken', 0.2, 0),
    priorOverheadMs: fields.number('priorOverheadMs', 20, 0),
    priorWeight: positive(fields, 'priorWeight', 8),
    halfLife: fields.duration('halfLife', '60s'),
    pendingTimeout: fields.duration('pendingTimeout', '30s'),
    charactersPerToken: positive(fields, 'charactersPerToken', 4),
  })),
  create: (name, resolved, handle) => new LatencyScorer(name, resolved, handle),
});
