/**
 * Request-control extension points (GIE's `requestcontrol` plugins): they act on a request's lifecycle around the
 * scheduling cycle, not inside it, so request control runs them and the scheduler never sees them.
 */
import type { Endpoint, EndpointSnapshot } from '../datastore/types';
import type { ReleaseOutcome } from '../extproc/request-director';
import type { Plugin } from '../scheduling/framework';
import type { LLMRequest, SchedulingResult } from '../scheduling/types';
import { stateKey } from '../scheduling/framework';

/**
 * The engine priority request control writes as the forwarded body's first member, `"priority":N` (vLLM's field), when
 * a pre-request hook sets it on the request's attributes (`prefill-priority`); absent or 0 leaves the body as it is.
 */
export const ENGINE_PRIORITY = stateKey<number>('engine priority');

/**
 * Request headers a pre-request hook asks to set on the forwarded request (lower-case names, overwriting), as
 * llm-d-router's PreRequest plugins write `request.Headers` (`disagg-profile-handler`'s `x-prefiller-host-port`).
 */
export const SET_REQUEST_HEADERS = stateKey<Readonly<Record<string, string>>>('request headers to set');

/**
 * The request's flow-control fairness id and priority as metric labels, set by request control before the pre-request
 * hooks run, bounded as it bounds them for llm-d's per-request families (`default-flow` without a fairness id; the
 * InferenceObjective's priority, else `x-kvroute-priority`, else 0): llm-d-router v0.10.0's `inflight-load-producer`
 * labels its gauges with the request's `FairnessID` and `Objectives.Priority` (`inflightload/producer.go` PreRequest).
 */
export const REQUEST_FLOW_LABELS = stateKey<{ readonly fairnessId: string; readonly priority: string }>('request flow labels');

/**
 * Adds `headers` to the ones earlier pre-request hooks of this request asked for (a later hook's value for the same
 * name wins), as every llm-d PreRequest plugin writes into the one `request.Headers` map: `disagg-profile-handler` and
 * the deprecated `disagg-headers-handler` listed together both name the prefill pod, and neither may erase the other's.
 */
export function setRequestHeaders(request: LLMRequest, headers: Readonly<Record<string, string>>): void {
  const attributes = request.attributes;
  if (attributes === undefined) return;
  const earlier = attributes.get(SET_REQUEST_HEADERS);
  attributes.set(SET_REQUEST_HEADERS, earlier === undefined ? headers : { ...earlier, ...headers });
}

export interface PreRequest extends Plugin {
  /** Runs once the request is committed to `result.target`, before it is forwarded. */
  preRequest(request: LLMRequest, result: SchedulingResult): void;
  /**
   * kvroute's: the response of a request whose result held several profiles' picks (P/D) started, when request control
   * stops counting its `prefill` pick in flight (its first body chunk when the proxy shows the EPP the body, otherwise
   * its headers); once a request. `request` is retained as for `PostResponse` (no prompt).
   */
  responseStarted?(request: LLMRequest): void;
}

/** What request control knows when the target's response headers arrive. */
export interface ResponseInfo {
  /** Response headers, lower-case names (`:status` included). */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The dynamic metadata Envoy forwarded with the response headers (`metadata_context.filter_metadata`), by namespace:
   * GIE's `Response.ReqMetadata` (v1.5.0 `requestcontrol/director.go`), e.g. `envoy.lb` holding the endpoint that served.
   */
  readonly metadata: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

export interface PostResponse extends Plugin {
  /**
   * Runs at the target's response headers; returns headers to set on the response to the client, if any. `request`
   * is the scheduled request without its prompt: `prompt` is empty and `input` and `promptHead` absent, since a
   * request lives as long as its generation and its prompt can be megabytes (request-control.ts `retainedRequest`);
   * its id, model, headers, salt and `attributes` are as the cycle saw them.
   */
  postResponse(request: LLMRequest, response: ResponseInfo, target: Endpoint): Readonly<Record<string, string>> | undefined;
  /**
   * False when this instance's parameters leave it nothing to do at the response (a plugin whose kind is fixed by its
   * type, but whose work there depends on a mode): request control then does not call or time it. @default true
   */
  readonly handlesResponses?: boolean;
}

export interface ResponseComplete extends Plugin {
  /**
   * Runs once when the request's exchange with its target ends: the response's end, an error, or the proxy closing the
   * stream (the client went away), as `outcome` says. GIE v1.5.0's `ResponseComplete` extension point
   * (`pkg/epp/framework/interface/requestcontrol/plugins.go`), which GIE delivers as the `ResponseBody` hook's
   * end-of-stream call, also on a cancelled stream; its `inflightload` producer counts requests in flight between that
   * and `PreRequest`, as `lora-room-filter` does here. kvroute runs it from the stream's end, since with its EnvoyFilter
   * no response body reaches the EPP. `request` is retained as for `PostResponse` (no prompt).
   */
  responseComplete(request: LLMRequest, target: Endpoint, outcome: ReleaseOutcome): void;
}
export interface PrepareRequest extends Plugin {
  /**
   * Runs before the scheduling cycle, asynchronously (GIE's data-preparation plugins): e.g. tokenizing the prompt so
   * the synchronous scorers can look its blocks up. Results go into `request.attributes`. Throwing is logged and the
   * request is scheduled without that data. `signal` aborts when the proxy's stream goes away.
   */
  prepareRequest(request: LLMRequest, signal: AbortSignal): Promise<void>;
  /**
   * Optional: false when `prepareRequest` has nothing to do for this request (e.g. the session filter without a shared
   * store). Request control then neither calls it nor waits for it: with no plugin to wait for, the request is routed
   * synchronously, without a promise or an abort signal. Absent means always prepare.
   */
  preparesFor?(request: LLMRequest): boolean;
}

/**
 * llm-d-router v0.10.0's `Admitter` (`pkg/epp/framework/interface/requestcontrol/plugins.go`, extension point
 * `Admission`): the director runs every admitter after flow control has let the request through and the data
 * producers have run, on the request's candidates, just before the scheduling cycle (`requestcontrol/director.go`
 * HandleRequest → runAdmissionPlugins); the first denial ends the request. Request control runs them once per request,
 * right before its first cycle (a request re-queued after a cycle found the pool full is not asked again), and answers a
 * denial as upstream does: 500 (`errcommon.Internal`), `request cannot be admitted: <the denial>`.
 */
export interface Admitter extends Plugin {
  /**
   * Undefined admits the request; a string denies it, the text upstream's `Admit` error reads (its `Error()`).
   * `priority` is the request's flow-control priority (upstream's `request.Objectives.Priority`: the InferenceObjective's,
   * here also `x-kvroute-priority`'s); `candidates` the endpoints it may go to.
   */
  admit(request: LLMRequest, priority: number, candidates: readonly EndpointSnapshot[]): string | undefined;
}

/**
 * GIE v1.5.0's saturation detector (`pkg/epp/framework/interface/flowcontrol/plugins.go` `SaturationDetector`): how
 * full the pool is. Request control reads it before each scheduling cycle when the config's `saturationDetector`
 * section names the plugin: at or above the usage limit (1.0 unless a `static-usage-limit-policy` says otherwise) the
 * request waits in flow control, or, with flow control off, a sheddable one (priority < 0) is answered 429
 * (`requestcontrol/admission.go` `rejectIfSheddableAndSaturated`).
 */
export interface SaturationDetector extends Plugin {
  /** 0 = idle, 1.0 = at capacity, above 1 = over it; 1.0 for an empty candidate list. */
  saturation(candidates: readonly EndpointSnapshot[]): number;
  /**
   * True when the reading comes from scraped metrics (stale pods count as full): request control then does not hold
   * requests for a pool whose every scrape fails, which is gone rather than busy.
   */
  readonly readsMetrics?: boolean;
  /**
   * Whether `candidate`'s metrics are lost rather than late: a scrape failed fast since the last good one, or several
   * timed out in a row, or none came for longer than waiting for the next can help. Request control holds no request
   * for a pool of such pods.
   * @default the scrapes since the last good one say the pod is gone (`scrapesLost` with the config's
   * `maxConsecutiveScrapeFailures`, `scrapeTimeoutsToLost`)
   */
  unreadable?(candidate: EndpointSnapshot): boolean;
}
