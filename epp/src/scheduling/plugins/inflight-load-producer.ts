import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import type { ReleaseOutcome } from '../../extproc/request-director';
import { LatencyModel } from '../../latency/pod-latency-model';
import { REQUEST_FLOW_LABELS, type PostResponse, type PreRequest, type ResponseComplete, type ResponseInfo } from '../../requestcontrol/hooks';
import { CycleState, stateKey, type PluginHandle } from '../framework';
import type { GaugeSeries, InflightLoadSeries } from '../metrics-hooks';
import { definePlugin, parameters } from '../plugin';
import { PREFIX_MATCH, resolvePrefixProducer, uncachedPromptTokens, type PrefixMatchEstimate, type PrefixMatchRatios } from '../prefix-match';
import { UPSTREAM_PREFILL_PROFILE, type LLMRequest, type SchedulingResult } from '../types';

/**
 * A consumer's `inFlightLoadProducerName` (llm-d-router v0.10.0 active-request-scorer and concurrency-detector, which
 * Consume the producer's key): empty, or the name of an `inflight-load-producer` of the config.
 */
export function checkInFlightLoadProducerRef(consumer: string, ref: string | undefined, handle: PluginHandle | undefined): void {
  if (ref === undefined || ref === '' || handle === undefined) return;
  const plugin = handle.plugin?.(ref);
  const path = `${consumer}.parameters.inFlightLoadProducerName`;
  if (plugin === undefined) throw new ConfigError(path, `no plugin named ${JSON.stringify(ref)}`);
  if (plugin.type !== 'inflight-load-producer') throw new ConfigError(path, `${JSON.stringify(ref)} is a ${plugin.type}; name an inflight-load-producer`);
}

export interface InFlightLoadProducerParameters {
  /**
   * Upstream: add an estimate of each request's output tokens to the counter, held until the response ends. Only
   * `false` (upstream's default) here: kvroute does not read the request's own output cap (`max_tokens`,
   * `max_completion_tokens`, `max_output_tokens`) that bounds upstream's estimate. @default false
   */
  addEstimatedOutputTokens?: boolean;
  /** Upstream's output-to-input ratio for that estimate; checked (>= 0), unused while `addEstimatedOutputTokens` is false. @default 1.5 */
  outputRatio?: number;
  /** Upstream's cap on that estimate; checked (>= 0), unused. Absent: no cap. */
  maxEstimatedOutputTokens?: number;
  /**
   * The prefix scorer whose match discounts each pick's cached prefix (upstream: the prefix producer): a
   * `prefix-cache-scorer` or `precise-prefix-cache-scorer` of the config. "": upstream's default producer, the
   * approximate one (`resolvePrefixProducer`), even beside a precise scorer; a config without one discounts nothing, as
   * upstream's producer, reading the match only if some plugin makes it (an Optional key), counts the whole prompt then.
   * The primary pick reads the match its producer published in the cycle, any other pick the producer's match of it
   * alone. @default ""
   */
  prefixMatchInfoProducerName?: string;
  /**
   * Upstream: share the counts with the other EPP replicas through a cross-replica syncer. kvroute has none (the
   * loader refuses `dataLayer.crossReplicaSyncerPluginRef`), so, as upstream without a syncer, each replica counts its
   * own picks. @default true
   */
  syncCrossReplicaState?: boolean;
}

/** GIE's characters per token, for a prompt the approximate prefix scorer measured in characters. */
const CHARACTERS_PER_TOKEN = 4;

/** The labels of a request that did not come through request control (tests, the simulator): upstream's defaults. */
const UNLABELLED = { fairnessId: 'default-flow', priority: '0' } as const;

/**
 * One profile's pick a commit added (upstream's `addedTokensEntry`: PreRequest tracks every profile's first target,
 * so P/D adds the prefill pick as well as the decode pick).
 */
interface Held {
  readonly profile: string;
  readonly endpointKey: string;
  /**
   * Its entry in the pod's queue of pending prefills; undefined when an earlier profile's pick of the request is the
   * same pod, whose tokens count once there.
   */
  readonly id: string | undefined;
  readonly series: InflightLoadSeries;
  /** Whether it still counts in `llm_d_epp_inflight_requests`. */
  requestHeld: boolean;
}

/**
 * `inflight-load-producer` (llm-d-router v0.10.0 `pkg/epp/framework/plugins/requestcontrol/dataproducer/inflightload/
 * producer.go`, its `InFlightLoad` attribute in `datalayer/attribute/concurrency/data_types.go`): the tokens this EPP
 * has committed to each endpoint and that the endpoint has not yet prefilled, for `prefix-cache-affinity-filter`'s
 * `prefillThroughput` load gate. The loader adds one when a plugin reads the default in-flight load (such a filter,
 * `utilization-filter` on `active-requests`, `active-request-scorer`, `concurrency-detector`,
 * `predicted-latency-producer`: upstream's `Consumes()`) and the config lists none, as upstream's data-layer DAG
 * creates a required producer.
 *
 * Upstream's count (with `addEstimatedOutputTokens: false`): at PreRequest, every profile's first target gets the
 * request's prompt tokens less the prefix that endpoint holds by the prefix producer's match
 * (`uncachedInputTokens`: (total − matched blocks) × block size, plus any tail past the matched window; the whole
 * tokenized prompt without a match); they are released at the response's first body chunk (`StartOfStream`: for
 * streaming, once the first token is out; for a non-streaming response, its one chunk, after the generation), or at
 * the end of the exchange, whichever comes first.
 *
 * Here the same tokens (the match of the producer `prefixMatchInfoProducerName` resolves to; without one, the prompt's
 * characters ÷ 4) are added at the commit and released at:
 * - a non-streaming response's headers (they come with its only body, after the generation: upstream's one chunk);
 * - the exchange's end (completed, failed, cancelled: upstream's `EndOfStream`);
 * - for a streaming response, the scrape whose `vllm:time_to_first_token_seconds` count shows the pod produced the
 *   request's first token, oldest pick first (vLLM's first come, first served): kvroute's EnvoyFilter shows the EPP no
 *   response body, so the first SSE chunk upstream waits for is not seen, and the headers come before the prefill;
 * - a timeout, as a safety net for pods that export no such histogram: 4× the larger of the pick's predicted time to
 *   first token and the time the pod's picks took to leave, at most 30 s (upstream's janitor reaps only requests whose
 *   stream died).
 * That is the latency model's own queue of pending prefills (`src/latency/pod-latency-model.ts`, "Queued prefill
 * work"), kept here apart from any `latency-scorer` so the gate works without one. Upstream's request count
 * (`InFlightLoad.Requests`) is kvroute's `EndpointSnapshot.activeRequests` (the datastore's, from the commit to the
 * exchange's end; a P/D request's prefill pick to the response's start, as upstream releases its `prefill` profile),
 * which `active-request-scorer` and `concurrency-detector` read.
 *
 * It counts whenever it is listed, as upstream's does, and exports upstream's gauges (`inflightload/metrics.go`,
 * registered when it is built): `llm_d_epp_inflight_requests`, +1 per profile pick at the commit, the `prefill`
 * profile's released at the response's start and the rest at the exchange's end (the same moments as the datastore's
 * count); `llm_d_epp_inflight_tokens`, the tokens above, released as above. Only a filter reading `inFlightTokens`
 * picks by them. While none reads them, each render of `/metrics` first reads the pods' latest scrapes and timeouts
 * (`refreshGauges`); while one does, its cycles read them, and the gauges show its last reading (a read between two of
 * its cycles could change what the next retires or expires first, and so its picks).
 */
export class InFlightLoadProducer implements PreRequest, PostResponse, ResponseComplete {
  readonly type = 'inflight-load-producer';
  /** Only its queue of pending prefills is used (and the line that sizes each entry's timeout). */
  private readonly model = new LatencyModel({
    priorSecondsPerToken: 0.0002,
    priorOverheadSeconds: 0.02,
    priorWeight: 8,
    halfLifeMs: 60_000,
    pendingTimeoutMs: 30_000,
  }, (endpointKey, id, tokens) => this.prefillLeft(endpointKey, id, tokens));
  private readonly trackedKey = stateKey<readonly Held[]>('inflight-load-producer tracked');
  /** The tokens series of each queue entry still counting, by pod, then entry name. */
  private readonly pendingSeries = new Map<string, Map<string, GaugeSeries>>();
  private committed = 0;
  private readers = 0;
  private prefixScorer: PrefixMatchRatios | undefined;

  constructor(readonly name: string, readonly parameters: Required<InFlightLoadProducerParameters>, private readonly handle: PluginHandle) {
    handle.metrics.registerInflightLoad();
  }

  resolveReferences(): void {
    this.prefixScorer = resolvePrefixProducer(this.handle, `${this.name}.parameters.prefixMatchInfoProducerName`, this.parameters.prefixMatchInfoProducerName, true);
  }

  /** A filter reads the counts from now on (see `refreshGauges`). */
  addReader(): void {
    this.readers++;
  }

  /**
   * The uncached prompt tokens this EPP committed to `candidate`'s endpoint that it has not prefilled yet (upstream's
   * `InFlightLoad.Tokens`), as of the candidate's last scrape and now.
   */
  inFlightTokens(candidate: EndpointSnapshot, nowMs = this.handle.now()): number {
    const pod = this.model.get(candidate.endpoint.key);
    if (pod === undefined) return 0;
    pod.ingest(candidate.metrics, nowMs);
    return pod.pendingPrefillTokens(nowMs);
  }

  preRequest(request: LLMRequest, result: SchedulingResult): void {
    const now = this.handle.now();
    const { fairnessId, priority } = request.attributes?.get(REQUEST_FLOW_LABELS) ?? UNLABELLED;
    const picks = result.profileTargets ?? [[result.profile, result.target] as const];
    const held: Held[] = [];
    for (const [profile, target] of picks) {
      const { key, name, namespace } = target.endpoint;
      const series = this.handle.metrics.inflightLoadSeries(this.name, name, namespace, fairnessId, priority);
      series.requests.value++;
      let id: string | undefined;
      if (!held.some((h) => h.endpointKey === key)) {
        const tokens = uncachedPromptTokens(request, this.matchFor(request, result, target), key, CHARACTERS_PER_TOKEN);
        const pod = this.model.pod(key);
        // The pod's latest scrape first: it retires the picks whose first tokens it counted, before this one joins them.
        pod.ingest(target.metrics, now);
        id = `${request.requestId}#${++this.committed}`;
        pod.addPending(id, tokens, pod.predict(tokens, target.metrics, now).ttftSeconds, now);
        series.tokens.value += tokens;
        let pending = this.pendingSeries.get(key);
        if (pending === undefined) this.pendingSeries.set(key, (pending = new Map()));
        pending.set(id, series.tokens);
      }
      held.push({ profile, endpointKey: key, id, series, requestHeld: true });
    }
    request.attributes?.set(this.trackedKey, held);
  }

  /** A queue entry stopped counting (see `LatencyModel`'s `prefillLeft`): its tokens leave its gauge series. */
  private prefillLeft(endpointKey: string, id: string, tokens: number): void {
    const pending = this.pendingSeries.get(endpointKey);
    const series = pending?.get(id);
    if (series === undefined) return;
    series.value -= tokens;
    pending!.delete(id);
    if (pending!.size === 0) this.pendingSeries.delete(endpointKey);
  }

  /** The prefix match that discounts `target`'s prefill (see `prefixMatchInfoProducerName`). */
  private matchFor(request: LLMRequest, result: SchedulingResult, target: EndpointSnapshot): PrefixMatchEstimate | undefined {
    const source = this.prefixScorer;
    if (source === undefined) return undefined;
    if (target === result.target && result.prefixMatch?.producer === source.name) return result.prefixMatch;
    const scratch = { request, state: new CycleState() };
    source.matchRatios(scratch, [target]);
    return scratch.state.get(PREFIX_MATCH);
  }

  postResponse(request: LLMRequest, response: ResponseInfo): undefined {
    // Streaming (SSE) headers precede the prefill; any other response's headers follow the whole generation.
    const contentType = response.headers['content-type'] ?? '';
    if (contentType.toLowerCase().startsWith('text/event-stream')) return undefined;
    this.release(request, false);
    return undefined;
  }

  /** A P/D response started: the `prefill` profile's pick leaves `llm_d_epp_inflight_requests`, as upstream's StartOfStream releases it. */
  responseStarted(request: LLMRequest): void {
    for (const held of request.attributes?.get(this.trackedKey) ?? []) {
      if (held.profile === UPSTREAM_PREFILL_PROFILE) releaseRequest(held);
    }
  }

  responseComplete(request: LLMRequest, _target: Endpoint, _outcome?: ReleaseOutcome): void {
    this.release(request, true);
    for (const held of request.attributes?.get(this.trackedKey) ?? []) releaseRequest(held);
  }

  /** Its tokens stop counting on every pod it was added to; `ended`: the exchange is over (the entry may go). */
  private release(request: LLMRequest, ended: boolean): void {
    const tracked = request.attributes?.get(this.trackedKey);
    if (tracked === undefined) return;
    const now = this.handle.now();
    for (const { endpointKey, id } of tracked) {
      if (id === undefined) continue;
      const pod = this.model.get(endpointKey);
      if (ended) pod?.ended(id, now);
      else pod?.release(id, now);
    }
  }

  /**
   * Reads the pods' latest scrapes and timeouts into the queues, so the gauges show them, while no filter reads the
   * counts (see the class comment); only the pods holding entries that still count.
   */
  refreshGauges(endpoints: readonly EndpointSnapshot[]): void {
    if (this.readers > 0 || this.pendingSeries.size === 0) return;
    const now = this.handle.now();
    for (const { endpoint, metrics } of endpoints) {
      if (!this.pendingSeries.has(endpoint.key)) continue;
      const pod = this.model.get(endpoint.key)!;
      pod.ingest(metrics, now);
      pod.pendingPrefillTokens(now);
    }
  }

  endpointRestarted(endpointKey: string, sinceMs: number): void {
    this.model.get(endpointKey)?.restarted(sinceMs);
  }

  /** Its queue goes; its gauge series go with the endpoint's others (`EppMetrics.forgetEndpoint`). */
  removeEndpoint(endpointKey: string): void {
    this.model.remove(endpointKey);
    this.pendingSeries.delete(endpointKey);
  }
}

/** The pick stops counting in `llm_d_epp_inflight_requests` (once). */
function releaseRequest(held: Held): void {
  if (!held.requestHeld) return;
  held.requestHeld = false;
  held.series.requests.value--;
}

function nonNegative(fields: FieldReader, key: string): number | undefined {
  const value = fields.raw(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(fields.fieldPath(key), `must be a number, got ${describeValue(value)}`);
  // Upstream's messages (producer.go InFlightLoadProducerFactory).
  if (value < 0) throw new ConfigError(fields.fieldPath(key), `${key} must be non-negative, got ${value}`);
  return value;
}

export const inflightLoadProducer = definePlugin({
  type: 'inflight-load-producer',
  kinds: ['pre-request', 'post-response', 'response-complete'],
  parameters: parameters<InFlightLoadProducerParameters>((fields) => {
    const addEstimatedOutputTokens = fields.boolean('addEstimatedOutputTokens', false);
    if (addEstimatedOutputTokens) {
      throw new ConfigError(fields.fieldPath('addEstimatedOutputTokens'), 'true is not supported: upstream bounds the output estimate by the request\'s own max_tokens '
        + '(max_completion_tokens, max_output_tokens), which kvroute does not read; kvroute counts the uncached prompt tokens only (upstream\'s default, false)');
    }
    const outputRatio = nonNegative(fields, 'outputRatio') ?? 1.5;
    const maxEstimatedOutputTokens = nonNegative(fields, 'maxEstimatedOutputTokens');
    if (maxEstimatedOutputTokens !== undefined && !Number.isInteger(maxEstimatedOutputTokens)) {
      throw new ConfigError(fields.fieldPath('maxEstimatedOutputTokens'), `must be an integer, got ${maxEstimatedOutputTokens}`);
    }
    const producer = fields.goString('prefixMatchInfoProducerName', 'a plugin name');
    return {
      addEstimatedOutputTokens,
      outputRatio,
      ...(maxEstimatedOutputTokens !== undefined ? { maxEstimatedOutputTokens } : {}),
      prefixMatchInfoProducerName: producer,
      syncCrossReplicaState: fields.boolean('syncCrossReplicaState', true),
    } as Required<InFlightLoadProducerParameters>;
  }),
  create: (name, resolved, handle) => new InFlightLoadProducer(name, resolved, handle),
});
