/**
 * Request control: the `RequestDirector` the ext_proc handler calls, and the owner of each request's lifecycle (GIE's
 * `requestcontrol.Director`): parse the body and snapshot the pool → schedule → commit the pick (the pre-request
 * hooks, the in-flight count) → the response hooks at the response headers → release when the response ends. It knows
 * nothing of gRPC; the scheduler only schedules and knows nothing of it.
 */
import { isConditionalDecode, NO_CACHED_PREFIX_MESSAGE, pickHoldsCachedPrefix } from './conditional-decode';
import { endpointKey } from '../datastore/endpoint-key';
import type { Datastore } from '../datastore/datastore';
import { selectWeightedTarget, type ModelRewrites } from '../datastore/model-rewrites';
import type { EndpointSnapshot } from '../datastore/types';
import { rejectWith, type IncomingRequest, type ReleaseOutcome, type RequestDirector, type RouteDecision } from '../extproc/request-director';
import type { Endpoint } from '../datastore/types';
import { forgetFlowSeries, type EppCollectors } from '../metrics';
import { BoundedLabelValues, MAX_MODEL_LABELS, MAX_MODEL_LABEL_LENGTH, OTHER_LABEL } from '../bounded-label';
import type { Scheduler } from '../scheduling/scheduler';
import { CycleState } from '../scheduling/framework';
import { ENGINE_PRIORITY, REQUEST_FLOW_LABELS, SET_REQUEST_HEADERS, type Admitter, type PostResponse, type PrepareRequest, type PreRequest, type ResponseComplete, type SaturationDetector } from './hooks';
import { computeCeilings, StaticUsageLimitPolicy, UsageLimitPolicyPlugin } from '../scheduling/plugins/flow-control-policies';
import { DROPPED_NO_ENDPOINTS, DROPPED_REASON_HEADER, DROPPED_REASONS, FLOW_CONTROL_HEADER, FlowControlRejection, type FlowControlQueue, type FlowRejectionReason } from './flow-control';
import { FLOW_CONTROL_DEFAULTS, MAX_FLOW_PRIORITY } from '../config/flow-control-defaults';
import { FLOW_GC_INTERVAL_MS, FlowSeriesGc } from './flow-series-gc';
import { parseDuration } from '../config/duration';
import { SchedulingError, UPSTREAM_PREFILL_PROFILE, type LLMRequest, type SchedulingErrorReason, type SchedulingResult } from '../scheduling/types';
import { ResponseObserver, type UsageFormat } from './response-usage';
import { parseAnthropicRequest, parseGenerateRequest, parseOpenAiRequest, ParserRegistry, requestPath, unclaimedPathMessage, UNREAD_BODY, type ParserRef } from './request-parsers';
import type { BoundHistogram, HistogramSeries } from '../bound-histogram';
import type { ValueSeries } from '../bound-counter';
import type { Plugin } from '../scheduling/framework';
import { agentIdentityHeaders, firstHeaderValue } from '../scheduling/plugins/agent-identity';
import { scrapesLost, scrapeTimeoutsToLost } from '../scheduling/plugins/saturation-filter';
import type { ExtensionPoint } from '../scheduling/metrics-hooks';
import { withLeadingMember } from './leading-member';
import { issueResponseId, OwnerTags, ownerTagOf, responseIdInPath, withResponseId } from './response-owner';
import { isJsonContentType, promptHead, promptSlice, RequestBodyError, type OpenAiErrorOptions, type ParsedRequestBody } from '@kvroute/protocol/openai';

/**
 * Where a proxy may restrict the candidates (the Endpoint Picker protocol's subset hint, GIE proposal 004): request
 * metadata namespace `envoy.lb.subset_hint`, key `x-gateway-destination-endpoint-subset`, a list of `ip:port`.
 */
export const SUBSET_HINT_NAMESPACE = 'envoy.lb.subset_hint';
export const SUBSET_HINT_KEY = 'x-gateway-destination-endpoint-subset';

export { MAX_MODEL_LABELS, MAX_MODEL_LABEL_LENGTH };
/**
 * Distinct (`model_name`, `target_model_name`) pairs with series of their own; later pairs are counted under
 * ("other", "other"). Each name is bounded on its own (MAX_MODEL_LABELS), but a client also chooses the rewrite target
 * (`x-gateway-model-name-rewrite`), so without this the pairs, each with a counter and several histograms, could reach
 * 65 × 65.
 */
export const MAX_MODEL_SERIES = 64;
/**
 * Distinct `priority` label values taken from `x-kvroute-priority` (a client header accepting 2 × MAX_PRIORITY + 1
 * integers); later ones are counted as "other". Priorities of the configured InferenceObjectives and the default 0 are
 * always their own value: the operator chose them, and there are as many as the config lists and the pool's InferenceObjectives hold.
 */
export const MAX_PRIORITY_LABELS = 8;
/** Distinct `x-gateway-inference-fairness-id` values kept as `fairness_id` labels; later ones are counted as "other". */
export const MAX_FAIRNESS_LABELS = 64;
/**
 * Distinct (`fairness_id`, `priority`, `model_name`, `target_model_name`) label sets of the flow-control series; later
 * sets keep their (bounded) model pair with `fairness_id` and `priority` "other", so at most MAX_FLOW_LABEL_SETS + 65.
 * Each label is bounded on its own, but a client chooses all of them, and their product (65 × 9 × 65) at one
 * queue-duration histogram each could grow `/metrics` by ~150 MB (audit s46: ~4.4 KB a set).
 */
export const MAX_FLOW_LABEL_SETS = 128;
/**
 * Distinct label sets of llm-d's per-request families (`llm_d_epp_request_*`: the model pair, `fairness_id` and
 * `priority`); later sets keep their (bounded) model pair with `fairness_id` and `priority` "other", so at most this
 * + 65, as the flow-control series (a new model's traffic keeps its own series). A set carries some 150 lines (seven
 * histograms), ~29 KB of `/metrics`, so the bound is tighter than the flow-control series'.
 */
export const MAX_LLMD_LABEL_SETS = 32;
/** GIE's fairness id of a request without the header (`pkg/epp/metadata/consts.go` DefaultFairnessID @ v1.5.0). */
const DEFAULT_FAIRNESS_ID = 'default-flow';

/** GIE v1.5.0's `QueueOutcome` names (`flowcontrol/types/outcomes.go`), the histogram's `outcome` label. */
type GieQueueOutcome = 'Dispatched' | 'RejectedCapacity' | 'EvictedTTL' | 'EvictedContextCancelled' | 'EvictedOther';
const GIE_QUEUE_OUTCOMES: Readonly<Record<FlowRejectionReason, GieQueueOutcome>> = {
  'queue-full': 'RejectedCapacity',
  deadline: 'EvictedTTL',
  aborted: 'EvictedContextCancelled',
  shed: 'EvictedOther',
  closed: 'EvictedOther',
};

export interface RequestControlOptions {
  readonly datastore: Datastore;
  readonly scheduler: Scheduler;
  /** Request metrics; omitted in tests that do not look at them. */
  readonly metrics?: EppCollectors;
  /** Pool name for error messages. */
  readonly poolName?: string;
  /**
   * Ignore the proxy's subset hint, every ready endpoint being a candidate (GIE v1.5.0's
   * `--disable-endpoint-subset-filter`, `pkg/epp/requestcontrol/candidates.go`). @default false
   */
  readonly disableEndpointSubsetFilter?: boolean;
  /**
   * The InferencePool's `targetPorts` once discovery has read it: a subset-hint entry on one of them selects that
   * endpoint only. @default the ports of the endpoints the datastore holds (static and file discovery)
   */
  readonly poolTargetPorts?: () => readonly number[] | undefined;
  /** Put every scored candidate's score in the answer (`RouteDecision.endpointScores`; llm-d's `--emit-endpoint-scores`). */
  readonly emitEndpointScores?: boolean;
  /** Uniform [0, 1) for tie-breaks among equally loaded endpoints. @default Math.random */
  readonly random?: () => number;
  /** Monotonic seconds. @default performance-based */
  readonly monotonicSeconds?: () => number;
  /**
   * How often idle flows' flow-control series are collected, and how long a flow must have been idle (`FlowSeriesGc`).
   * For tests: like upstream's FlowGCTimeout, no config field sets it. @default FLOW_GC_INTERVAL_MS (5 minutes)
   */
  readonly flowGcIntervalMs?: number;
  /**
   * Where internal errors are reported: a scheduler failure before the request falls back to the least-loaded endpoint
   * (no `hook`), or a request-control plugin hook that threw (`hook` names it), after which the request goes on.
   */
  readonly onInternalError?: (error: Error, requestId: string, hook?: string) => void;
  /**
   * Priority by InferenceObjective name (`x-gateway-inference-objective`), whether or not flow control is on: the
   * pool's InferenceObjective resources, then the config's `flowControl.objectives`. @default `flowControl.objectives`
   * `priorities`, when given, lists the priorities the pool's InferenceObjectives hold: they are active priority levels
   * of a per-band usage-limit policy (`ceilingFor`), as llm-d-router v0.10.0 provisions a band for each.
   */
  readonly objectives?: { get(name: string): number | undefined; priorities?(): Iterable<number> };
  /**
   * The highest priority `x-kvroute-priority` may give a request; a higher value counts as this one. The header is the
   * client's unless the gateway sets or strips it, and GIE takes priorities only from the operator's InferenceObjectives
   * (v1.5.0 `requestcontrol/director.go` getInferenceObjective): by default a client may lower its own priority but not
   * raise it. @default FLOW_CONTROL_DEFAULTS.maxHeaderPriority (0)
   */
  readonly maxHeaderPriority?: number;
  /**
   * The pool's InferenceModelRewrite rules (GIE v1.5.0): a rule for the body's model forwards the request as one of
   * its weighted targets, over `x-gateway-model-name-rewrite`. Not applied with the passthrough parser (GIE mutates
   * only a parsed body). @default none
   */
  readonly modelRewrites?: ModelRewrites;
  /**
   * When set, a request that finds every endpoint saturated waits in this queue instead of getting a 429 at once
   * (`flow-control.ts`); it is scheduled again when dispatched: at every release of a request, and every `tickMs`.
   */
  readonly flowControl?: {
    readonly queue: FlowControlQueue;
    /** @default 50 (the scrape interval) */
    readonly tickMs?: number;
    /** Priority by InferenceObjective name (`x-gateway-inference-objective`); unlisted objectives are 0. */
    readonly objectives?: ReadonlyMap<string, number>;
    /**
     * The gateway's ext_proc `max_message_timeout` in ms. When set, a request that starts waiting asks the proxy to
     * hold its answer that long (`override_message_timeout`) and waits at most that long less a margin, so it ends
     * with the EPP's own answer (dispatched, or a 429 naming why) and never in Envoy failing it open at its 1 s
     * `message_timeout` onto the fallback policy. 0 / absent: the proxy's message timeout bounds the wait.
     */
    readonly maxMessageTimeoutMs?: number;
    /**
     * GIE's `flowControl` feature gate is named: every request passes GIE's queue (v1.5.0 `requestcontrol/admission.go`
     * FlowControlAdmissionController), so its enqueue and queue-duration histograms count every request, those that
     * never wait included (outcome NotYetFinalized, then Dispatched, at about 0 s). Without the gate kvroute records
     * only the requests that wait, and spares the rest the labelled observations.
     */
    readonly recordEveryRequest?: boolean;
    /**
     * A request without a fairness id waits as its session's flow, else as a flow of its own (issue 9's fairness across
     * sessions); false: in GIE's one `default-flow` (`FlowControlConfig.sessionFairness`). @default true
     */
    readonly sessionFairness?: boolean;
  };
}

/** A flow-control tick this late (or ten ticks, if longer) means the EPP itself was stopped or starved. */
export const STALL_GAP_MS = 1000;
/**
 * After such a stall, how long a request that finds every pod's metrics stale waits for fresh scrapes instead of a
 * 503: two of the default config's 1 s staleness thresholds, many scrape periods.
 */
export const RESUME_GRACE_MS = 2000;

/**
 * How much sooner than the proxy's extended message timer a waiting request's deadline falls: the override travels to
 * the proxy after the wait started, and the 429 back to it, so the margin covers two one-way trips on a busy node.
 */
export const MESSAGE_TIMEOUT_MARGIN_MS = 250;

/** Request header giving a request's flow-control priority: an integer, higher first, negative = sheddable (GIE's rule). */
export const PRIORITY_HEADER = 'x-kvroute-priority';
/** The range `x-kvroute-priority` accepts. */
export const MAX_PRIORITY = MAX_FLOW_PRIORITY;
/**
 * GIE's request headers naming the request's InferenceObjective and its fairness flow
 * (kubernetes-sigs/gateway-api-inference-extension `pkg/epp/metadata/consts.go`: `ObjectiveKey`, `FlowFairnessIDKey`).
 */
export const OBJECTIVE_HEADER = 'x-gateway-inference-objective';
/**
 * GIE's header naming the model the request is forwarded as (`pkg/epp/metadata/consts.go` ModelNameRewriteKey): the
 * body's `model` is replaced by it and it is the `target_model_name` of the request metrics (v1.5.0
 * `pkg/epp/handlers/request.go`, `pkg/epp/requestcontrol/director.go` mutateModel).
 */
export const MODEL_REWRITE_HEADER = 'x-gateway-model-name-rewrite';
export const FAIRNESS_ID_HEADER = 'x-gateway-inference-fairness-id';
/**
 * The same three as llm-d's router names them since v0.9.0 (`Rename EPP managed headers`, #1161), keeping GIE's as
 * deprecated aliases: llm-d-router v0.10.0 `pkg/epp/metadata/consts.go` (`ObjectiveKey`, `FlowFairnessIDKey`,
 * `ModelNameRewriteKey`, `headerAliases`).
 */
export const LLMD_OBJECTIVE_HEADER = 'x-llm-d-inference-objective';
export const LLMD_MODEL_REWRITE_HEADER = 'x-llm-d-model-name-rewrite';
export const LLMD_FAIRNESS_ID_HEADER = 'x-llm-d-inference-fairness-id';

// Each of the three is read under llm-d's name, else GIE's: the first name present wins, even when its value is empty,
// as llm-d-router v0.10.0's `GetLowerCaseHeaderValue` reads its aliases (`pkg/epp/metadata/consts.go`). Plain lookups,
// no helper taking a getter: they run on every request.

/**
 * llm-d's per-request flow-control queue TTL, a Go duration ("2s", "500ms"): a request may only ask to be shed sooner,
 * never later; the wait is the shorter of it and the configured default, and it sets one where the default is `0s`
 * (none). An unreadable or non-positive value is ignored. llm-d-router after v0.10.0: #2316 (the design: "a caller can
 * only ask to be shed sooner, never later"), #2649 (merged 2026-09-02: "The header cannot extend a finite configured
 * TTL"), `pkg/epp/metadata/consts.go` InferenceTTLHeaderKey, `requestcontrol/admission.go` Admit. kvroute still ends
 * the wait before the proxy's extended message timeout, as for the default.
 */
export const LLMD_TTL_HEADER = 'x-llm-d-inference-ttl';
/**
 * llm-d's response header carrying the time a request spent in flow control, integer milliseconds: set on the response
 * of every request flow control dispatched, 0 for one that did not wait; absent with flow control off (llm-d-router
 * #2490, after v0.10.0, `pkg/epp/metadata/consts.go` FlowQueueDurationHeaderKey; `handlers/response.go` generateResponseHeaders).
 */
export const LLMD_FLOW_QUEUE_DURATION_HEADER = 'x-llm-d-flow-queue-duration-ms';

/** The TTL `x-llm-d-inference-ttl` asks for, in milliseconds; undefined when absent, unreadable or not positive. */
export function requestTtlMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    const ms = parseDuration(value.trim());
    return ms > 0 && Number.isFinite(ms) ? ms : undefined;
  } catch {
    return undefined;
  }
}

/** The request's fairness id, under llm-d's name or GIE's. */
function fairnessIdOf(headers: Readonly<Record<string, string>>): string | undefined {
  return headers[LLMD_FAIRNESS_ID_HEADER] ?? headers[FAIRNESS_ID_HEADER];
}

/** A request that had a body to read: what it asked for and, unless the scheduler failed, its scheduling result. */
interface Scheduled {
  readonly request: LLMRequest;
  readonly result?: SchedulingResult;
  /** The model as a metric label. */
  readonly model: string;
  /** The body as received (the reference, not a copy): a pre-request hook may ask for an edit of it. */
  readonly body: Buffer;
}

/**
 * The request metrics' series of one `model_name` / `target_model_name` pair, each resolved (`child`) when first
 * used, exactly where `inc`/`observe` with a label object would have created it (so the exposition lists series in
 * the same order), then kept: a request builds no label object and no label key (epp/README.md, "Where the CPU goes",
 * sixth round). A counter series dropped by `reset()` is resolved again.
 */
class RequestSeries {
  private sizes: HistogramSeries | undefined;
  private duration: HistogramSeries | undefined;
  private running: ValueSeries | undefined;
  /** `inference_objective_request_total` by `priority` label. */
  private readonly totals = new Map<string, ValueSeries>();
  /** `inference_extension_scheduler_attempts_total{status="success"}` by pod: endpoints are frozen, so their labels are fixed. */
  private readonly attempts = new WeakMap<Endpoint, ValueSeries>();

  /** llm-d's per-request series of this pair by fairness id, then priority (RequestControl bounds how many). */
  readonly llmd = new Map<string, Map<string, LlmdRequestSeries>>();
  /** This pair's series once the llm-d sets are used up (fairness id and priority "other"). */
  llmdOther: LlmdRequestSeries | undefined;

  constructor(private readonly m: EppCollectors, readonly model: string, readonly targetModel: string) {}

  requestTotal(priority: string): ValueSeries {
    let series = this.totals.get(priority);
    if (series === undefined || series.detached) {
      series = this.m.requestTotal.child({ model_name: this.model, target_model_name: this.targetModel, priority });
      this.totals.set(priority, series);
    }
    return series;
  }

  requestSizes(): HistogramSeries {
    return (this.sizes ??= this.m.requestSizes.child({ model_name: this.model, target_model_name: this.targetModel }));
  }

  requestDuration(): HistogramSeries {
    return (this.duration ??= this.m.requestDuration.child({ model_name: this.model, target_model_name: this.targetModel }));
  }

  runningRequests(): ValueSeries {
    if (this.running === undefined || this.running.detached) this.running = this.m.runningRequests.child({ model_name: this.model });
    return this.running;
  }

  /** `pod_name` is the pod's, as GIE v1.5.0 records `metadata.PodName` (pkg/epp/metrics/metrics.go), not the endpoint's rank name. */
  attemptSucceeded(target: Endpoint): ValueSeries {
    let series = this.attempts.get(target);
    if (series === undefined || series.detached) {
      series = this.m.schedulerAttempts.child({ status: 'success', target_model_name: this.targetModel, pod_name: target.podName ?? target.name, namespace: target.namespace, port: String(target.port) });
      this.attempts.set(target, series);
    }
    return series;
  }
}

/** A histogram series resolved for one label set. */
interface Observer {
  observe(value: number): void;
}

/** A `BoundHistogram`'s series of `labels`, resolved at its first observation (see `LlmdRequestSeries.responseSeries`). */
class LazySeries implements Observer {
  private series: HistogramSeries | undefined;

  constructor(private readonly histogram: BoundHistogram<keyof LlmdLabels & string>, private readonly labels: LlmdLabels) {}

  observe(value: number): void {
    (this.series ??= this.histogram.child(this.labels)).observe(value);
  }
}

/** The labels of llm-d's per-request families: GIE's pair plus the request's fairness id and priority, bounded. */
interface LlmdLabels {
  readonly model_name: string;
  readonly target_model_name: string;
  readonly fairness_id: string;
  readonly priority: string;
}

/**
 * llm-d's per-request series of one label set (`llm_d_epp_request_*`; llm-d-router v0.10.0
 * `pkg/epp/metrics/metrics.go` writes each beside GIE's): resolved once per set, so a request updates them as it
 * updates GIE's, without building label objects.
 */
class LlmdRequestSeries {
  private totalSeries: ValueSeries | undefined;
  private runningSeries: ValueSeries | undefined;
  private sizesSeries: HistogramSeries | undefined;
  private durationSeries: HistogramSeries | undefined;
  private response: { sizes: Observer; input: Observer; output: Observer; cached: Observer; ntpot: Observer } | undefined;

  constructor(private readonly m: EppCollectors, readonly labels: LlmdLabels) {}

  /**
   * The response-side histograms (read only when response bodies reach the EPP), each resolved at its first
   * observation, as prom-client creates a labelled series: a set whose responses never had output tokens exports no
   * output-token series, and series appear in the order first observed.
   */
  responseSeries(): { sizes: Observer; input: Observer; output: Observer; cached: Observer; ntpot: Observer } {
    const m = this.m;
    const l = this.labels;
    return (this.response ??= {
      sizes: new LazySeries(m.llmdResponseSizes, l), input: new LazySeries(m.llmdInputTokens, l), output: new LazySeries(m.llmdOutputTokens, l),
      cached: new LazySeries(m.llmdCachedTokens, l), ntpot: new LazySeries(m.llmdNormalizedTimePerOutputToken, l),
    });
  }

  total(): ValueSeries {
    if (this.totalSeries === undefined || this.totalSeries.detached) this.totalSeries = this.m.llmdRequestTotal.child(this.labels);
    return this.totalSeries;
  }

  running(): ValueSeries {
    if (this.runningSeries === undefined || this.runningSeries.detached) this.runningSeries = this.m.llmdRunningRequests.child(this.labels);
    return this.runningSeries;
  }

  sizes(): HistogramSeries {
    return (this.sizesSeries ??= this.m.llmdRequestSizes.child(this.labels));
  }

  duration(): HistogramSeries {
    return (this.durationSeries ??= this.m.llmdRequestDuration.child(this.labels));
  }

  error(code: string): void {
    this.m.llmdRequestErrorTotal.inc({ ...this.labels, error_code: code });
  }
}

/**
 * What `route` hands the protocol handler and gets back at the response headers and at the end. A class, so every
 * ticket has one shape.
 */
class Ticket {
  /** The response body's reader, from the first response body chunk on (only when the proxy shows the body). */
  response: ResponseObserver | undefined = undefined;
  /** Whether the response is a `text/event-stream` (read at the response headers, for the body's reader). */
  eventStream: boolean | undefined = undefined;
  /** Bytes of the response body that came before its kind was known (whitespace only, see `sniffEventStream`). */
  unsniffedBytes = 0;
  /** Whether the response-end metrics were recorded. */
  responseRecorded = false;
  /**
   * Whose usage fields the response's body carries, as the request's parser reads them (`openai-parser` and
   * `vllmhttp-parser`: OpenAI's; `anthropic-parser`: Anthropic's); undefined when none is read (GIE's passthrough
   * parser, whose ParseResponse returns nothing; Anthropic's count_tokens, whose response upstream does not process).
   */
  usageFormat: UsageFormat | undefined = 'openai';
  /** A response header `status` other than "200" came: GIE counts the request as a `ModelServerError` at its end. */
  modelServerError = false;
  /** With flow control on, how long the request waited in it (ms, 0 when it did not): `x-llm-d-flow-queue-duration-ms`. */
  flowQueueMs: number | undefined = undefined;
  /** The EPP's time handling the response (its headers and body chunks, ms): `llm_d_epp_response_processing_duration_seconds`. */
  responseProcessingMs = 0;
  /** llm-d's per-request series (with metrics and a scheduled request). */
  llmd: LlmdRequestSeries | undefined = undefined;
  /**
   * The other profiles' picks counted in flight besides `target` (a P/D request's prefill pod), and `target` when its
   * profile is `prefill` (`targetHeld`), each released once: `early` ones at the response's start
   * (`releaseAtResponseStart`), the rest with the request (`release`).
   */
  others: ProfileHold[] | undefined = undefined;
  /** `target`'s count is among `others`, released with them: the primary profile is `prefill` (`acquireProfiles`). */
  targetHeld = false;
  /** Whether the response's start was seen (`releaseAtResponseStart`; only for a request with `others`). */
  responseStarted = false;

  constructor(
    /** Undefined for a response whose request this EPP never saw (`responseWithoutRequest`). */
    readonly target: Endpoint | undefined,
    /** Whether its body was read (a request routed by load without one has no response metrics of its own). */
    readonly bodyRead: boolean,
    /** The request as the post-response hooks see it, without its prompt (`retainedRequest`); only when a cycle picked it. */
    readonly request: LLMRequest | undefined,
    readonly started: number,
    /** After a model rewrite: puts the model the client asked for back where the server answers as the target. */
    readonly rewrite: ModelNameRestorer | undefined,
    /** The request metrics' series (with metrics and a scheduled request). */
    readonly series: RequestSeries | undefined,
  ) {}
}

/** A profile's pick counted in flight for a request (`Ticket.others`): a non-primary one, or a `prefill` primary. */
interface ProfileHold {
  readonly key: string;
  /** Its profile is upstream's `prefill`: released at the response's start rather than its end. */
  readonly early: boolean;
  /** Its route's event in the pod's unseen-queue ledger (`Datastore.acquire`): its end on the pod is seen late. */
  readonly routeId: number | undefined;
  released: boolean;
}

/** Whether a response body starting with `chunk` is an event stream; undefined while only whitespace has come. */
function sniffEventStream(chunk: Buffer): boolean | undefined {
  for (const byte of chunk) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue;
    return byte !== 0x7b /* { */ && byte !== 0x5b /* [ */;
  }
  return undefined;
}

/**
 * What a committed request keeps for its response: everything but the prompt. The prompt text (`prompt`, `input` and
 * the `promptHead` reader over the parsed body) is what a request holds most of, up to the body limit (8 MiB behind
 * kvroute's EnvoyFilter) and twice over for a chat body, and a request lives as long as its generation: kept, a few
 * hundred streamed 1 MiB prompts (or many clients' long RAG contexts) would hold the EPP's heap to their answers' end.
 * The scheduling cycle and the pre-request hooks have read it by the time the ticket exists; the post-response hooks
 * get the request with `prompt` empty and no `input` (hooks.ts says so).
 */
function retainedRequest(request: LLMRequest): LLMRequest {
  const { requestId, model, cacheSalt, headers, attributes } = request;
  const out: { -readonly [K in keyof LLMRequest]: LLMRequest[K] } = { requestId, model, prompt: '', headers };
  if (cacheSalt !== undefined) out.cacheSalt = cacheSalt;
  if (attributes !== undefined) out.attributes = attributes;
  return out;
}

/** What llm-d-router v0.10.0's director puts before an admitter's denial (`requestcontrol/director.go` HandleRequest). */
export const NOT_ADMITTED_PREFIX = 'request cannot be admitted: ';

/** GIE v1.5.0's and llm-d-router v0.10.0's message for a body without a model (`requestcontrol/director.go`). */
export const MODEL_NOT_FOUND_MESSAGE = 'model not found in request body';

/**
 * The `error_code` of `inference_objective_request_error_total` for each status an immediate response can have, as
 * GIE v1.5.0 names them (`pkg/common/error/error.go`: the code `BuildErrResponse` maps to that status).
 */
export const ERROR_CODES: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  // llm-d-router v0.10.0 pkg/common/error/error.go PreconditionFailed (the conditional-decode gate).
  412: 'PreconditionFailed',
  429: 'ResourceExhausted',
  500: 'Internal',
  503: 'ServiceUnavailable',
};

/** llm-d-router's drop reason on a 503 for want of endpoints (`requestcontrol/director.go` HandleRequest, #2462). */
const NO_ENDPOINTS_HEADERS: Readonly<Record<string, string>> = Object.freeze({ [DROPPED_REASON_HEADER]: DROPPED_NO_ENDPOINTS });
/** Its drop reason on a 429 for filters that drained the candidates (`scheduling/scheduler_profile.go` Run, #2462). */
const SATURATED_HEADERS: Readonly<Record<string, string>> = Object.freeze({ [DROPPED_REASON_HEADER]: DROPPED_REASONS['queue-full'] });

export class RequestControl implements RequestDirector {
  private readonly random: () => number;
  private readonly monotonicSeconds: () => number;
  /**
   * The request's model as a metric label: its own name for the first MAX_MODEL_LABELS names up to
   * MAX_MODEL_LABEL_LENGTH characters, then "other": every distinct value multiplies the series of every request metric.
   */
  private readonly modelLabels = new BoundedLabelValues(MAX_MODEL_LABELS);
  /** `fairness_id` label values taken from `x-gateway-inference-fairness-id` (see MAX_FAIRNESS_LABELS). */
  private readonly fairnessLabels = new BoundedLabelValues(MAX_FAIRNESS_LABELS);
  /** The flow-control series' label sets so far (see MAX_FLOW_LABEL_SETS). */
  private readonly flowLabelSets = new Set<string>();
  /** How many llm-d per-request label sets have their own labels (MAX_LLMD_LABEL_SETS). */
  private llmdSets = 0;
  /** llm-d's error series of requests that never got a request series, by label set (errors only: rare). */
  private readonly llmdErrorSeries = new Map<string, LlmdRequestSeries>();
  /** Resolved metric series, so a request builds no label key: plugin timings by plugin, scheduler attempts by model and pod. */
  private readonly pluginSeries = new Map<ExtensionPoint, Map<Plugin, HistogramSeries>>();
  /** Request metric series by `model_name`, then `target_model_name` (both bounded label values). */
  private readonly requestSeries = new Map<string, Map<string, RequestSeries>>();
  /** Pairs in `requestSeries`, ("other", "other") not counted: it stays reachable past the bound. */
  private requestSeriesPairs = 0;
  /** `priority` label values taken from `x-kvroute-priority` (see MAX_PRIORITY_LABELS). */
  private readonly headerPriorityLabels = new BoundedLabelValues(MAX_PRIORITY_LABELS);
  /** Requests whose body sets `priority` itself: no pre-request hook's engine priority is written over it. */
  private readonly clientPriorities = new WeakSet<LLMRequest>();
  /** With the passthrough parser: the rewrite target a request is labelled with, its body left as it came. */
  private readonly labelTargets = new WeakMap<LLMRequest, string>();
  /** Requests whose model the gateway rewrites (`x-gateway-model-name-rewrite`): the target's label and the new body. */
  private readonly rewrites = new WeakMap<LLMRequest, { readonly targetModel: string; readonly body: Buffer; readonly incoming: string; readonly target: string; readonly stream: boolean }>();
  /** Requests naming a stored response kvroute issued (response-owner.ts): the owner pod's tag. */
  private readonly responseOwners = new WeakMap<IncomingRequest, string>();
  /** /v1/responses requests the pod will store under an id of its own: the id kvroute sets names the pick. */
  private readonly unnamedResponses = new WeakSet<LLMRequest>();
  private readonly ownerTags = new OwnerTags();
  private readonly preparePlugins: readonly PrepareRequest[];
  private readonly admitters: readonly Admitter[];
  private readonly preRequestPlugins: readonly PreRequest[];
  /** `llm_d_epp_request_processing_duration_seconds` and `llm_d_epp_response_processing_duration_seconds`' one series each. */
  private requestProcessing: HistogramSeries | undefined;
  private responseProcessing: HistogramSeries | undefined;
  /** The headers of the config's `agent-identity` plugins (`agentIdentityHeaders`): a request's fairness id when no header names one. */
  private readonly agentHeaders: readonly string[];
  /** The pre-request plugins that follow a P/D response's start (`PreRequest.responseStarted`). */
  private readonly responseStartPlugins: readonly PreRequest[];
  private readonly postResponsePlugins: readonly PostResponse[];
  private readonly responseCompletePlugins: readonly ResponseComplete[];
  /** The config's `saturationDetector`, when it names one, and the usage-limit policy that says where it holds requests. */
  private readonly saturationDetector: SaturationDetector | undefined;
  /** Timed-out scrapes in a row that lose a pod's metrics, as the config's `saturation-filter` counts them (`scrapeTimeoutsToLost`). */
  private readonly scrapeTimeoutsToLost: number;
  private readonly usageLimitPolicy: UsageLimitPolicyPlugin;
  /**
   * The priority levels active whatever waits (`activePriorities`): 0, the config's `priorityBands` and its
   * `flowControl.objectives`.
   */
  private readonly configuredPriorities: ReadonlySet<number>;
  /** Asked by the flow-control queue before each release (`FlowControlQueue.dispatch`), with the releasing band's priority. */
  private readonly dispatchGate: ((priority: number) => boolean) | undefined;
  /** Dispatches the flow-control queue, when there is one, and notices this process's own stalls (`stalled`). */
  private readonly ticker: NodeJS.Timeout;
  /** Leases of the flows that have flow-control series, and their collection when idle (with metrics only). */
  private readonly flowSeriesGc: FlowSeriesGc | undefined;
  /** Monotonic seconds of the ticker's last run, and of the end of the last stall it noticed. */
  private lastTick = 0;
  /**
   * The parser each request's body is read with, by the request's path (`request-parsers.ts`): llm-d-router v0.10.0's
   * registry for a config in llm-d's form (`requestHandler.parsers`), GIE v1.5.0's one parser for every path otherwise.
   */
  private readonly parsers: ParserRegistry;
  /** Requests whose response carries usage in other than OpenAI's fields, or none to read (see `Ticket.usageFormat`). */
  private readonly usageFormats = new WeakMap<LLMRequest, UsageFormat | undefined>();
  private resumedAt = -Infinity;
  private stallGapSeconds = STALL_GAP_MS / 1000;

  constructor(private readonly options: RequestControlOptions) {
    this.random = options.random ?? Math.random;
    this.monotonicSeconds = options.monotonicSeconds ?? (() => performance.now() / 1000);
    // Request hooks are attached globally, whether or not a profile references the plugin (as in GIE).
    this.preparePlugins = options.scheduler.plugins.ofKind('prepare-request');
    this.parsers = parserRegistryOf(options.scheduler);
    this.admitters = options.scheduler.plugins.ofKind('admission');
    this.preRequestPlugins = options.scheduler.plugins.ofKind('pre-request');
    this.responseStartPlugins = this.preRequestPlugins.filter((plugin) => typeof plugin.responseStarted === 'function');
    this.postResponsePlugins = options.scheduler.plugins.ofKind('post-response').filter((plugin) => plugin.handlesResponses !== false);
    this.responseCompletePlugins = options.scheduler.plugins.ofKind('response-complete');
    const plugins = options.scheduler.plugins;
    // A test's stand-in scheduler may carry no config.
    const specs = (plugins.config as typeof plugins.config | undefined)?.plugins ?? [];
    this.agentHeaders = agentIdentityHeaders(specs.flatMap((p) => (p.type === 'agent-identity' && p.name !== undefined ? [plugins.get(p.name)!] : [])));
    ({ detector: this.saturationDetector, usageLimitPolicy: this.usageLimitPolicy } = saturationDetectorOf(options.scheduler));
    this.scrapeTimeoutsToLost = scrapeTimeoutsToLost(plugins.ofKind('filter'));
    this.configuredPriorities = new Set([
      0,
      ...(options.scheduler.config?.flowControl?.priorityBands ?? []).map((band) => band.priority),
      ...(options.flowControl?.objectives?.values() ?? []),
    ]);
    // With a pool detector the queue releases nothing while the pool (every ready pod, as GIE's dispatch cycle reads
    // it) is full; without one, a released request finds out from the filters and comes back in its place.
    // An empty pool releases its waiters, which are then answered 503 (issue 11: no pod is not load). A detector that
    // throws must not take the ticker down: the request goes on to the filters.
    this.dispatchGate = this.saturationDetector !== undefined
      ? (priority: number) => {
        const pool = this.options.datastore.snapshot();
        if (pool.length === 0) return true;
        try {
          // One release decision: the policy's ceilings computed once (a duty cycle's tick), as upstream's dispatch cycle.
          return !this.poolSaturated(pool, (saturation) => this.ceilingFor(priority, saturation));
        } catch (e) {
          this.options.onInternalError?.(e as Error, 'flow-control dispatch');
          return true;
        }
      }
      : undefined;
    const m = options.metrics;
    // llm-d-router v0.10.0's flow GC: an idle flow's series are dropped (flow-series-gc.ts).
    this.flowSeriesGc = m === undefined ? undefined
      : new FlowSeriesGc(options.flowGcIntervalMs ?? FLOW_GC_INTERVAL_MS, (fairnessId, priority) => forgetFlowSeries(m, fairnessId, priority), () => this.monotonicSeconds() * 1000);
    const flow = options.flowControl;
    // Scrapes, not only releases, free capacity (a pod's queue drains): retry the head of the queue every tick, paced.
    const tickMs = flow?.tickMs ?? 50;
    this.stallGapSeconds = Math.max(STALL_GAP_MS, 10 * tickMs) / 1000;
    this.lastTick = this.monotonicSeconds();
    // A process that just started has scraped nothing yet, exactly like one just out of a stall: the first requests
    // (Envoy sends them as soon as the port answers, before a readiness probe could remove a restarted container)
    // wait for the first scrapes instead of getting 503.
    this.resumedAt = this.lastTick;
    // The ticker runs with flow control off too: the stall it notices decides, in both modes, whether a pool whose
    // every scrape fails is gone (issue 11: not saturated) or only looks stale because this EPP was stopped
    // (`poolSaturated`). It once ran only with flow control, so without it the EPP read itself as stalled from one
    // second after start on, for good, and legacy admission dropped a sheddable request (429) for a pool of gone pods
    // that flow control let through to the cycle (audit 37 F2). Without a queue a tick is the two lines below.
    this.ticker = setInterval(() => {
      const now = this.monotonicSeconds();
      // The ticker did not run for a while: this process was stopped or starved (SIGSTOP, a long GC pause, a throttled
      // CPU), and every scraped page is as old as the stall.
      if (now - this.lastTick > this.stallGapSeconds) this.resumedAt = now;
      this.lastTick = now;
      this.dispatchCycle(Infinity);
    }, tickMs).unref();
  }

  /**
   * One dispatch of the flow-control queue: releases up to `capacity` waiters while the pool has room. Timed as GIE's
   * `inference_extension_flow_control_dispatch_cycle_duration_seconds` (`dispatchCycle` in
   * flowcontrol/controller/internal/processor.go @ v1.5.0) when something waits: an empty queue's call is a no-op at
   * every request's end, and observing those would only count requests.
   */
  private dispatchCycle(capacity: number): void {
    const queue = this.options.flowControl?.queue;
    if (queue === undefined) return;
    const m = this.options.metrics;
    if (m === undefined || queue.size === 0) {
      queue.dispatch(capacity, this.dispatchGate);
      return;
    }
    const started = this.monotonicSeconds();
    queue.dispatch(capacity, this.dispatchGate);
    m.gieFlowControlDispatchCycleDuration.observe(this.monotonicSeconds() - started);
  }

  /**
   * Whether the config's saturation detector reads the pool (these candidates) as full: at or above the usage limit,
   * GIE's dispatch gate (v1.5.0 `flowcontrol/controller/internal/processor.go` dispatchCycle: `saturation >=
   * usageLimit` holds the queue). `limit` is a number, or the ceiling for the saturation read (a per-band policy's,
   * `ceilingFor`). Always false without a detector: then load filters decide (`saturation-filter`).
   */
  private poolSaturated(candidates: readonly EndpointSnapshot[], limit: number | ((saturation: number) => number)): boolean {
    const detector = this.saturationDetector;
    if (detector === undefined) return false;
    const saturation = detector.saturation(candidates);
    if (saturation < (typeof limit === 'number' ? limit : limit(saturation))) return false;
    // A detector reading scraped metrics, and every pod's metrics lost (a scrape failed fast since the last good one,
    // or several timed out in a row, or the scraper is stuck: `unreadable`): the pods are unreachable (gone), not busy,
    // and waiting will not bring them (issue 11: 503, not 429). The cycle goes ahead, where a saturation-filter answers
    // 503 and otherwise the proxy's connection fails. Just out of an EPP stall, every page is merely old: then the
    // request waits for fresh scrapes. A detector counting the EPP's own requests in flight is never excused. The same
    // rule holds with flow control off: legacy admission then schedules such a request, sheddable or not, where GIE
    // v1.5.0 drops a sheddable one with 429 (`requestcontrol/admission.go` rejectIfSheddableAndSaturated;
    // `saturationdetector/utilization/detector.go` counts a stale pod as 1.0), as its flow control holds it; kvroute
    // keeps issue 11 in both modes.
    if (detector.readsMetrics !== true || this.stalled()) return true;
    return !this.everyPodUnreachable(candidates);
  }

  /**
   * The usage limit of a request of `priority` at `saturation`: the ceiling the config's usage-limit policy gives
   * `priority`'s rank among the active priority levels (llm-d-router v0.10.0 `controller/internal/processor.go`
   * dispatchCycle: `ComputeLimit(saturation, AllOrderedPriorityLevels(), ceilings)`, then `saturation >= ceilings[i]`
   * holds band i and every band below it). A static policy's is its threshold whatever the priority. `steady`: the
   * ceiling with a duty cycle counted open and none of its state advanced (`UsageLimitPolicyPlugin.steadyLimit`), for a
   * request the gate has just released; otherwise the call is one dispatch decision (a soft-reflective policy's tick).
   */
  private ceilingFor(priority: number, saturation: number, steady = false): number {
    const policy = this.usageLimitPolicy;
    if (policy instanceof StaticUsageLimitPolicy) return policy.threshold;
    const priorities = this.activePriorities(priority);
    return computeCeilings(policy, saturation, priorities, steady)[priorities.indexOf(priority)]!;
  }

  /**
   * The active priority levels, highest first: kvroute's stand-in for llm-d-router v0.10.0's
   * `registry.AllOrderedPriorityLevels()` (`flowcontrol/registry`: the configured `priorityBands`, priority 0, which
   * its config always provisions, the bands provisioned for the pool's InferenceObjectives, and bands provisioned on
   * demand until garbage-collected). Here: 0, the config's `priorityBands` and `flowControl.objectives`, the
   * priorities of the pool's InferenceObjectives when discovery watches them, the priorities with requests waiting in
   * the queue, and `own` (the request's). Upstream files a request whose band is not provisioned under priority 0;
   * kvroute keeps its priority (an `x-kvroute-priority` level, say) and counts it active while it is asked about.
   */
  private activePriorities(own: number): number[] {
    const levels = new Set(this.configuredPriorities);
    levels.add(own);
    const watched = this.options.objectives?.priorities?.();
    if (watched !== undefined) for (const p of watched) levels.add(p);
    const queue = this.options.flowControl?.queue;
    if (queue !== undefined && queue.size > 0) for (const p of queue.sizes().keys()) levels.add(p);
    return [...levels].sort((a, b) => b - a);
  }

  /**
   * Whether every candidate's metrics are lost (at least `failures` scrapes failed since the last good one and they say
   * the pod is gone, `scrapesLost`: one failed fast, or the config's saturation filter's count timed out in a row; or,
   * for a detector reading metrics, `unreadable`): the pods are gone, not busy. True for no candidates. Just out of a
   * stall of its own the EPP asks for two failures: the scrapes in flight while it was stopped time out as it resumes,
   * one failure each, on pods that are fine.
   */
  private everyPodUnreachable(candidates: readonly EndpointSnapshot[], failures = 1): boolean {
    const detector = this.saturationDetector;
    const unreadable = detector?.readsMetrics === true ? detector.unreadable : undefined;
    return candidates.every((c) => (c.metrics.consecutiveFailures >= failures && scrapesLost(c.metrics, this.scrapeTimeoutsToLost))
      || (failures === 1 && unreadable !== undefined && unreadable.call(detector, c)));
  }

  /**
   * Whether a cycle that failed for `reason` may succeed after a wait in the flow-control queue: the pool is loaded
   * ('saturated'); the scraper is behind ('metrics-late'); or this EPP just stalled, so that even failing scrapes may
   * be its own (timed out while it was stopped), not the pods'.
   */
  private waitHelps(reason: SchedulingErrorReason): boolean {
    return reason === 'saturated' || reason === 'metrics-late' || (reason === 'no-endpoints' && this.stalled());
  }

  /**
   * Whether this EPP is in or just out of a stall of its own: every pod's metrics then look stale only because nothing
   * ran to scrape them (and scrapes in flight timed out), and a request that finds no pod with fresh metrics waits (in
   * the flow-control queue) for the scrapes that follow, for up to RESUME_GRACE_MS, instead of a 503. Outside a stall a
   * pool whose scrapes all fail is answered 503 at once (issue 11); one whose scrapes are only late waits
   * ('metrics-late').
   */
  private stalled(): boolean {
    const now = this.monotonicSeconds();
    return now - this.lastTick > this.stallGapSeconds || now - this.resumedAt < RESUME_GRACE_MS / 1000;
  }

  /** Stops the ticker and rejects whatever still waits in the flow-control queue. */
  close(): void {
    clearInterval(this.ticker);
    this.flowSeriesGc?.close();
    this.options.flowControl?.queue.close();
  }

  async route(req: IncomingRequest, signal: AbortSignal = new AbortController().signal): Promise<RouteDecision> {
    return this.decide(req, () => signal);
  }

  /**
   * `route`, answered synchronously unless the request has to wait (request-preparing plugins such as tokenization, or
   * the flow-control queue when every pod is saturated): the ext_proc stream then needs no abort signal, promise or
   * microtask hop for it. `signal` is asked for only on the paths that wait. Timed from the request's headers to its
   * decision (`llm_d_epp_request_processing_duration_seconds`).
   */
  decide(req: IncomingRequest, signal: () => AbortSignal): RouteDecision | Promise<RouteDecision> {
    const decision = this.decideRequest(req, signal);
    const m = this.options.metrics;
    const receivedAtMs = req.receivedAtMs;
    if (m === undefined || receivedAtMs === undefined) return decision;
    // llm-d-router v0.10.0 handlers/server.go recordRequestProcessing: once per request, routed or refused, the wait
    // in flow control included.
    const series = (this.requestProcessing ??= m.llmdRequestProcessingDuration.child({}));
    const observe = (): void => series.observe(Math.max(0, performance.now() - receivedAtMs) / 1000);
    if (!(decision instanceof Promise)) {
      observe();
      return decision;
    }
    return decision.then((d) => {
      observe();
      return d;
    });
  }

  /** `decide`'s decision itself. */
  private decideRequest(req: IncomingRequest, signal: () => AbortSignal): RouteDecision | Promise<RouteDecision> {
    // The request's duration (and time per output token) counts from its headers when the transport says when they came,
    // as GIE v1.5.0's does (handlers/request.go, RequestReceivedTimestamp), so a slow upload shows in it. The transport
    // stamps in the process's clock, and its age is carried into this one's (a test's fake clock stays consistent).
    const now = this.monotonicSeconds();
    const started = req.receivedAtMs === undefined ? now : now - Math.max(0, performance.now() - req.receivedAtMs) / 1000;
    // The body is read before the candidates are looked up, as GIE v1.5.0's director parses before it admits and
    // locates (`HandleRequest`), so a malformed body is a 400 whether or not any pod is ready.
    const read = this.readBody(req);
    const parsed = read?.parsed;
    // A body forwarded as it came (passthrough-parser, Anthropic's count_tokens): GIE and llm-d rewrite only a parsed
    // payload (`ModelNameRewriter` of a PayloadMap).
    const unread = parsed === UNREAD_BODY;
    const rewriteHeader = req.headers.get(LLMD_MODEL_REWRITE_HEADER) ?? req.headers.get(MODEL_REWRITE_HEADER);
    if (parsed instanceof RequestBodyError) {
      // GIE labels the error with the incoming model it could not read ("") and the rewrite target, set from the
      // headers before the body (handlers/request.go, server.go's deferred error count).
      return this.reject(parsed.status, parsed.message, '', { param: parsed.param, code: parsed.code }, undefined, rewriteHeader ? this.modelLabel(rewriteHeader) : '', headerRecord(req.headers));
    }
    // A parsed body must name its model (GIE v1.5.0 director.go mutateModel: `bodyMap["model"].(string)` or 400; both
    // upstreams' hermetic test "request missing model field"). GIE's form refuses a body without one outright; llm-d's
    // refuses it only when no rewrite gives it one (v0.10.0 modelRewriteIfNeeded: TargetModelName still "" after the
    // rewrite header and InferenceModelRewrite rules, #1426). An empty name passes GIE's type check but not llm-d's.
    const parsedModel = parsed !== undefined && !unread ? parsed.model : undefined;
    if (parsed !== undefined && !unread && parsedModel === undefined && parsed.emptyModel !== true && !this.parsers.registry) {
      return this.modelNotFound(rewriteHeader, req.headers);
    }
    // The model the request is forwarded as: the header's, overridden by an InferenceModelRewrite rule for the body's
    // model, decided as the body is read, before any candidate is looked up (GIE v1.5.0 director.go mutateModel). In
    // llm-d's form a body without a model is looked up as "", which a rule matching every model covers.
    const targetModel = (parsed !== undefined && !unread ? this.drawModelRewrite(parsedModel ?? '') : undefined) ?? rewriteHeader;
    if (parsed !== undefined && !unread && parsedModel === undefined && !targetModel && this.parsers.registry) return this.modelNotFound(rewriteHeader, req.headers);
    // A request continuing, retrieving or cancelling a response kvroute named goes to the pod that stored it, the only
    // one that can answer it (response-owner.ts).
    const owner = ownerTagOf(parsed?.previousResponseId ?? responseIdInPath(req.headers.get(':path')));
    if (owner !== undefined) this.responseOwners.set(req, owner);
    // A request without a body (headers with end_of_stream, a GET) is held to the proxy's subset hint like any other:
    // the protocol's "the EPP MUST only select endpoints from the specified list", 503 when none qualifies
    // (docs/proposals/004-endpoint-picker-protocol "Endpoint Subset"), as GIE's reference picker now does at the
    // request headers (pkg/lwepp/handlers/request.go @ 84436a96, Unavailable "no pods available"). GIE v1.5.0 sent it to
    // a random pod of the whole pool whatever the hint, and answered 500 with no pod (GetRandomEndpoint).
    const candidates = this.candidates(req);
    if (candidates.length === 0) {
      // No candidate is ServiceUnavailable (503, "failed to find endpoint candidates", director.go HandleRequest), with
      // the drop reason llm-d-router gives it since 645ba71e (#2462): rejected-no-endpoints.
      const incoming = parsed !== undefined ? this.modelLabel(parsed.model ?? '') : undefined;
      return this.reject(503, `no ready endpoint in pool ${this.options.poolName ?? ''}`.trim(), incoming, { code: 'no_ready_endpoints' }, NO_ENDPOINTS_HEADERS,
        targetModel && parsed !== undefined ? this.modelLabel(targetModel) : incoming, headerRecord(req.headers));
    }
    // Without a body to read (GET /v1/models, a multipart upload) there is no prompt to match: route by load.
    if (parsed === undefined) return this.commit(leastLoaded(candidates, this.random).endpoint, undefined, started);

    // A target that is the body's own model is no rewrite: the body goes as it came, not re-serialized (a 64-bit `seed`
    // would lose digits in a JS number, and an 8 MiB prompt costs a parse and a stringify on the routing thread), as
    // llm-d-router skips RewriteModelName and the re-marshal since c51b75a1 (#2318, `director.go` modelRewriteIfNeeded).
    const rewriteTo = unread || targetModel === parsedModel ? undefined : targetModel;
    // The passthrough parser mutates nothing, but GIE still labels the request with the rewrite target it read from the
    // headers (handlers/request.go sets TargetModelName before the body).
    const passthroughTarget = unread ? rewriteHeader : undefined;
    const rewritten = rewriteTo ? rewriteModel(req.body!, rewriteTo) : undefined;
    const request: LLMRequest = {
      requestId: req.requestId,
      model: rewritten !== undefined ? rewriteTo! : parsed.model ?? '',
      prompt: parsed.prompt,
      promptHead: (maxChars: number) => promptHead(parsed.input, maxChars),
      promptSlice: (start: number, end: number) => promptSlice(parsed.input, start, end),
      input: parsed.input,
      ...(parsed.cacheSalt !== undefined ? { cacheSalt: parsed.cacheSalt } : {}),
      ...(parsed.truncatePromptTokens !== undefined ? { truncatePromptTokens: parsed.truncatePromptTokens } : {}),
      ...(parsed.skipsPrefixCache ? { skipsPrefixCache: true as const } : {}),
      headers: headerRecord(req.headers),
      attributes: new CycleState(),
    };
    const model = this.modelLabel(parsed.model ?? '');
    // Before anything can refuse the request, so its error series carry the rewrite target as every later one does.
    if (rewritten !== undefined) {
      this.rewrites.set(request, { targetModel: this.modelLabel(rewriteTo!), body: rewritten, incoming: parsed.model ?? '', target: rewriteTo!, stream: parsed.stream });
    }
    if (passthroughTarget) this.labelTargets.set(request, this.modelLabel(passthroughTarget));
    if (parsed.storesUnnamedResponse === true && !unread) this.unnamedResponses.add(request);
    if (read!.usage !== 'openai') this.usageFormats.set(request, read!.usage);
    // An unreadable x-kvroute-priority is refused whether or not the request would wait: refused only on the way into
    // the queue, the same request went through an idle pool (and past the requests waiting in a saturated one).
    if (this.queuePriority(request.headers) === undefined) {
      return this.reject(400, `${PRIORITY_HEADER} must be an integer between -${MAX_PRIORITY} and ${MAX_PRIORITY}`, model, { code: 'invalid_priority' }, undefined, this.targetOf(request, model), request.headers);
    }
    if (parsed.hasPriority === true) this.clientPriorities.add(request);
    // Without a request-preparing plugin that has work for this request (the default config's session filter has
    // none without a shared store) nothing waits before scheduling, and the snapshot above is still current.
    const preparing = this.preparePlugins.length > 0 ? this.preparing(request) : undefined;
    if (preparing !== undefined) return this.prepareAndSchedule(req, request, model, preparing, signal(), started);
    return this.scheduleNow(req, request, model, candidates, signal, started);
  }

  /**
   * The target an InferenceModelRewrite rule draws for `model`, counted as GIE counts the decision
   * (`inference_extension_model_rewrite_decisions_total`, director.go applyWeightedModelRewrite @ v1.5.0); undefined
   * when no rule applies.
   */
  private drawModelRewrite(model: string | undefined): string | undefined {
    if (model === undefined || this.options.modelRewrites === undefined) return undefined;
    const rule = this.options.modelRewrites.rule(model);
    if (rule === undefined) return undefined;
    const target = selectWeightedTarget(rule.targets, this.random);
    this.options.metrics?.modelRewriteDecisions.inc({ model_rewrite_name: rule.rewriteName, model_name: this.modelLabel(model), target_model: target });
    return target;
  }

  /** The request-preparing plugins with work for `request`; undefined when none. */
  private preparing(request: LLMRequest): PrepareRequest[] | undefined {
    let out: PrepareRequest[] | undefined;
    for (const plugin of this.preparePlugins) if (plugin.preparesFor?.(request) ?? true) (out ??= []).push(plugin);
    return out;
  }

  private async prepareAndSchedule(
    req: IncomingRequest,
    request: LLMRequest,
    model: string,
    plugins: readonly PrepareRequest[],
    signal: AbortSignal,
    started: number,
  ): Promise<RouteDecision> {
    await this.prepare(plugins, request, signal);
    // Envoy abandoned the stream while the request was being prepared (its message timeout fired and it failed open,
    // or the client left): the request is already on its way elsewhere or nowhere. Scheduling it would record a pick
    // in the prefix index and the session table and count it in flight, for a request no pod will see.
    if (signal.aborted) return abandoned();
    // Snapshot again after the await: requests routed meanwhile (a burst, or every request that arrived while this
    // one was tokenized) are in flight now, and a pick must count them, not the counts from before it waited.
    const current = this.candidates(req);
    if (current.length === 0) {
      return this.reject(503, `no ready endpoint in pool ${this.options.poolName ?? ''}`.trim(), model, { code: 'no_ready_endpoints' }, NO_ENDPOINTS_HEADERS, this.targetOf(request, model), request.headers);
    }
    return this.scheduleNow(req, request, model, current, () => signal, started);
  }

  /** Schedules among `current`; only a saturated pool with flow control on makes it wait (a promise). */
  private scheduleNow(
    req: IncomingRequest,
    request: LLMRequest,
    model: string,
    current: readonly EndpointSnapshot[],
    signal: () => AbortSignal,
    started: number,
  ): RouteDecision | Promise<RouteDecision> {
    const flowControl = this.options.flowControl;
    if (flowControl !== undefined && flowControl.queue.size > 0) {
      // Requests of this priority or higher are waiting: a newcomer takes its turn behind them rather than the
      // capacity they wait for, as every request passes GIE's queue in priority order (v1.5.0
      // requestcontrol/admission.go, FlowControlAdmissionController: "Strict Priority Preservation").
      const waiting = flowControl.queue.highestWaitingPriority();
      const mine = this.queuePriority(request.headers);
      if (waiting !== undefined && mine !== undefined && waiting >= mine) return this.waitForCapacity(req, request, model, signal(), started);
    }
    // Flow control holds the pool at the usage limit of the request's priority (a per-band policy's ceiling: one
    // dispatch decision, as the queue's gate takes); GIE's legacy admission reads the detector at 1.0
    // (`requestcontrol/admission.go`), the usage-limit policy being flow control's.
    const mine = flowControl !== undefined ? this.queuePriority(request.headers) ?? 0 : 0;
    if (this.poolSaturated(current, flowControl !== undefined ? (saturation) => this.ceilingFor(mine, saturation) : 1)) {
      if (flowControl !== undefined) return this.waitForCapacity(req, request, model, signal(), started);
      // Without flow control, GIE's legacy admission: a sheddable request is dropped, any other is scheduled anyway
      // (v1.5.0 `requestcontrol/admission.go` LegacyAdmissionController).
      const priority = this.queuePriority(request.headers);
      if (priority !== undefined && priority < 0) {
        return this.reject(429, 'the pool is saturated and the request is sheddable (system saturated, sheddable request dropped)', model, { code: 'pool_saturated' }, undefined, this.targetOf(request, model), request.headers);
      }
    }
    // With the gate named every request passes GIE's queue, whose capacity check refuses one that does not fit even when
    // it would be dispatched at once (`controller/internal/processor.go` enqueue: RejectedCapacity, 429).
    if (flowControl?.recordEveryRequest === true && !flowControl.queue.hasRoom(mine, req.body?.length ?? 0)) return this.passRefused(request, model);
    const denial = this.admissionDenial(request, current);
    if (denial !== undefined) return this.notAdmitted(denial, request, model);
    try {
      const result = this.options.scheduler.schedule(request, current);
      // Counted only once scheduled: a scheduling failure that waiting can fix goes on to the queue, counted there.
      if (flowControl?.recordEveryRequest === true) this.recordPassedQueue(request, model);
      if (isConditionalDecode(request.headers) && !pickHoldsCachedPrefix(result)) return this.conditionalDecodeRefused(request, model, result);
      return this.commit(result.target.endpoint, { request, result, model, body: req.body! }, started, flowControl !== undefined ? 0 : undefined);
    } catch (e) {
      if (e instanceof SchedulingError) {
        if (this.options.flowControl && this.waitHelps(e.reason)) {
          // The admitters have let it through already: they are not asked again after the wait.
          return this.waitForCapacity(req, request, model, signal(), started, true);
        }
        return this.schedulingFailed(e, model, this.targetOf(request, model), request.headers);
      }
      // A scheduler bug must not fail the request (the gateway runs with failure_mode_allow for the same reason):
      // count it, and send the request where it waits least, without cache affinity.
      this.options.onInternalError?.(e as Error, req.requestId);
      this.countError(model, this.targetOf(request, model), 'Internal', request.headers);
      // A conditional decode forwarded without a pick could land where nothing is cached, which it asked not to be.
      if (isConditionalDecode(request.headers)) return this.conditionalDecodeRefused(request, model);
      return this.commit(leastLoaded(current, this.random).endpoint, { request, model, body: req.body! }, started, flowControl !== undefined ? 0 : undefined);
    }
  }

  /**
   * A request that would pass the queue without waiting but does not fit its bounds (`hasRoom`): refused as a waiting
   * one is refused for room (`queue-full`), counted as GIE counts a capacity rejection at enqueue.
   */
  private passRefused(request: LLMRequest, model: string): RouteDecision {
    const m = this.options.metrics;
    if (m !== undefined) {
      const labels = this.gieFlowLabels(m, request, model);
      this.flowSeriesGc?.touch(labels.fairness_id, labels.priority);
      m.flowControlRejections.inc({ reason: 'queue-full' });
      m.gieFlowControlEnqueueDuration.observe({ fairness_id: labels.fairness_id, priority: labels.priority, outcome: 'RejectedCapacity' }, 0);
      const { fairness_id, priority, inference_pool, model_name, target_model_name } = labels;
      m.gieFlowControlQueueDuration.observe({ fairness_id, priority, outcome: 'RejectedCapacity', inference_pool, model_name, target_model_name }, 0);
    }
    const headers = { [FLOW_CONTROL_HEADER]: 'queue-full', [DROPPED_REASON_HEADER]: DROPPED_REASONS['queue-full'] };
    return this.reject(429, 'the request does not fit the flow-control queue\'s bounds (queue-full)', model, { code: 'pool_saturated' }, headers, this.targetOf(request, model), request.headers);
  }

  /** GIE's flow-control series for a request admitted without waiting: enqueued, then dispatched at once. */
  private recordPassedQueue(request: LLMRequest, model: string): void {
    const m = this.options.metrics;
    if (m === undefined) return;
    const labels = this.gieFlowLabels(m, request, model);
    this.flowSeriesGc?.touch(labels.fairness_id, labels.priority);
    m.gieFlowControlEnqueueDuration.observe({ fairness_id: labels.fairness_id, priority: labels.priority, outcome: 'NotYetFinalized' }, 0);
    const { fairness_id, priority, inference_pool, model_name, target_model_name } = labels;
    m.gieFlowControlQueueDuration.observe({ fairness_id, priority, outcome: 'Dispatched', inference_pool, model_name, target_model_name }, 0);
  }

  /**
   * The request's fairness id: its fairness-id header (llm-d's name or GIE's), else, with an `agent-identity` plugin in
   * the config, the agent session it names, as llm-d-router v0.10.0's director derives `FairnessID` from that plugin's
   * attribute when no header set one (`requestcontrol/director.go`).
   */
  private fairnessIdOf(headers: Readonly<Record<string, string>>): string | undefined {
    const explicit = fairnessIdOf(headers);
    if (nonEmpty(explicit) !== undefined || this.agentHeaders.length === 0) return explicit;
    return firstHeaderValue(headers, this.agentHeaders) ?? explicit;
  }

  /** GIE's flow-control labels for a request; every label a client chooses is bounded. */
  private gieFlowLabels(m: EppCollectors | undefined, request: LLMRequest, model: string) {
    // The (model, target) pair as the request series bound it (MAX_MODEL_SERIES): a client chooses the target too.
    const pair = m !== undefined ? this.seriesOf(m, model, this.rewrites.get(request)?.targetModel ?? model) : undefined;
    const labels = {
      fairness_id: this.fairnessLabel(this.fairnessIdOf(request.headers)),
      priority: this.priorityLabel(request.headers),
      inference_pool: this.options.poolName ?? '',
      model_name: pair?.model ?? model,
      target_model_name: pair?.targetModel ?? model,
    };
    // The set as a whole is bounded too (MAX_FLOW_LABEL_SETS).
    const set = JSON.stringify([labels.fairness_id, labels.priority, labels.model_name, labels.target_model_name]);
    if (this.flowLabelSets.has(set)) return labels;
    // Past the bound only the client's flow labels collapse: the (model, target) pair is bounded already (65), and
    // autoscalers read the queue per model.
    if (this.flowLabelSets.size >= MAX_FLOW_LABEL_SETS) return { ...labels, fairness_id: OTHER_LABEL, priority: OTHER_LABEL };
    this.flowLabelSets.add(set);
    return labels;
  }

  /**
   * Every endpoint was saturated: wait in the flow-control queue, then schedule again when dispatched (with fresh
   * snapshots); still saturated → wait again, keeping the original deadline. A 429 only when the queue refuses or
   * drops the request, with `x-kvroute-flow-control` naming why (queue-full, deadline, shed, aborted, closed).
   */
  private async waitForCapacity(
    req: IncomingRequest,
    request: LLMRequest,
    model: string,
    signal: AbortSignal,
    started: number,
    admissionRan = false,
  ): Promise<RouteDecision> {
    const flowControl = this.options.flowControl!;
    const queue = flowControl.queue;
    const headers = request.headers;
    const priority = this.queuePriority(headers);
    if (priority === undefined) {
      return this.reject(400, `${PRIORITY_HEADER} must be an integer between -${MAX_PRIORITY} and ${MAX_PRIORITY}`, model, { code: 'invalid_priority' }, undefined, this.targetOf(request, model), request.headers);
    }
    // Fair across flows: GIE's fairness id when the gateway sets one; without one, GIE's one `default-flow`
    // (v1.5.0 `handlers/request.go`), or with kvroute's session fairness the session (a session's requests share one
    // turn), else the request alone. An empty header names nothing (GIE maps it to its default flow too).
    const flow = nonEmpty(this.fairnessIdOf(headers))
      ?? (flowControl.sessionFairness === false ? DEFAULT_FAIRNESS_ID : nonEmpty(headers['x-session-id']) ?? nonEmpty(headers['x-session-token']) ?? `request:${request.requestId}`);
    const arrivalMs = queue.nowMs();
    const arrival = queue.arrivalTicket();
    // Infinity when `defaultRequestTTL` is 0 (GIE: wait until the client or the proxy gives up); llm-d's per-request
    // TTL header can only shorten it (a client must not hold a queue slot past the operator's bound).
    let deadlineMs = arrivalMs + Math.min(requestTtlMs(headers[LLMD_TTL_HEADER]) ?? Infinity, queue.maxWaitMs);
    const proxyMaxMs = flowControl.maxMessageTimeoutMs ?? 0;
    if (proxyMaxMs > 0 && req.extendMessageTimeout) {
      // The EPP's deadline falls a margin before the proxy's extended timer, so the EPP's 429 wins the race.
      deadlineMs = Math.min(deadlineMs, arrivalMs + Math.max(1, proxyMaxMs - MESSAGE_TIMEOUT_MARGIN_MS));
      req.extendMessageTimeout(Math.min(proxyMaxMs, deadlineMs - arrivalMs + MESSAGE_TIMEOUT_MARGIN_MS));
    }
    const waitStarted = this.monotonicSeconds();
    const m = this.options.metrics;
    // GIE v1.5.0's flow-control series (`pkg/epp/metrics/metrics.go`, set around `EnqueueAndWait` in
    // `flowcontrol/controller/controller.go` and at finalization in `internal/item.go`), which its guide tells
    // autoscalers to read; every label a client chooses is bounded.
    const bytes = req.body?.length ?? 0;
    const gieLabels = this.gieFlowLabels(m, request, model);
    // The flow's series stay while it waits: collected, the gauges' increments would be gone before their decrements.
    const releaseFlow = this.flowSeriesGc?.lease(gieLabels.fairness_id, gieLabels.priority);
    m?.gieFlowControlQueueSize.inc(gieLabels);
    m?.gieFlowControlQueueBytes.inc(gieLabels, bytes);
    // Every way out of the wait takes the request off the gauges once, thrown errors included.
    let left = false;
    const leave = () => {
      if (left || m === undefined) return;
      left = true;
      m.gieFlowControlQueueSize.dec(gieLabels);
      m.gieFlowControlQueueBytes.dec(gieLabels, bytes);
    };
    /** Takes the request out of the queue's accounting; returns how long it waited, in seconds. */
    const waited = (outcome: 'dispatched' | 'rejected', gieOutcome: GieQueueOutcome): number => {
      const seconds = this.monotonicSeconds() - waitStarted;
      leave();
      if (m === undefined) return seconds;
      m.flowControlWait.observe({ outcome }, seconds);
      const { fairness_id, priority: priorityLabel, inference_pool, model_name, target_model_name } = gieLabels;
      m.gieFlowControlQueueDuration.observe({ fairness_id, priority: priorityLabel, outcome: gieOutcome, inference_pool, model_name, target_model_name }, seconds);
      return seconds;
    };
    // GIE's enqueue duration: the admission step, outcome "NotYetFinalized" for a request now waiting (its final state
    // comes later) or the refusal's (flowcontrol/controller/internal/processor.go `enqueue` @ v1.5.0).
    const admitted = m === undefined ? undefined : (enqueueStarted: number) => (refused: FlowRejectionReason | undefined) => {
      const outcome = refused === undefined ? 'NotYetFinalized' : refused === 'queue-full' ? 'RejectedCapacity' : 'RejectedOther';
      m.gieFlowControlEnqueueDuration.observe({ fairness_id: gieLabels.fairness_id, priority: gieLabels.priority, outcome }, this.monotonicSeconds() - enqueueStarted);
    };
    try {
      // Narrowed to some of the pool by the proxy's subset hint: it waits for room on those pods, apart from the
      // pool-wide flows, so that it cannot hold them up while other pods have room (FlowRequest.narrowed).
      const narrowed = this.isNarrowed(this.candidates(req));
      return await this.waitLoop(req, request, model, signal, started, { flow, priority, deadlineMs, arrival, bytes, admitted, narrowed, admissionRan }, waited);
    } finally {
      leave();
      releaseFlow?.();
    }
  }

  /** `waitForCapacity`'s loop: wait, then schedule when dispatched; back to the queue while the pool is full. */
  private async waitLoop(
    req: IncomingRequest,
    request: LLMRequest,
    model: string,
    signal: AbortSignal,
    started: number,
    wait: {
      readonly flow: string; readonly priority: number; readonly deadlineMs: number; readonly arrival: number; readonly bytes: number;
      readonly narrowed: boolean;
      /** The admitters have already let the request through (before a cycle that sent it here). */
      readonly admissionRan: boolean;
      readonly admitted: ((enqueueStarted: number) => (refused: FlowRejectionReason | undefined) => void) | undefined;
    },
    waited: (outcome: 'dispatched' | 'rejected', gieOutcome: GieQueueOutcome) => number,
  ): Promise<RouteDecision> {
    const queue = this.options.flowControl!.queue;
    const m = this.options.metrics;
    const { flow, priority, deadlineMs, arrival, bytes, admitted } = wait;
    let narrowed = wait.narrowed;
    // The admitters run once, before the first cycle; a request re-queued after a cycle is not asked again.
    let admissionRan = wait.admissionRan;
    for (let retry = false; ; retry = true) {
      try {
        // What the request holds while it waits is its body (the stream keeps it to send on) and the prompt parsed from it.
        // The admission is timed once: a retry (dispatched into a pool still full) is the same request going back.
        await queue.enqueue({ flow, priority, deadlineMs, signal, retry, arrival, bytes, narrowed, ...(admitted && !retry ? { admitted: admitted(this.monotonicSeconds()) } : {}) });
      } catch (e) {
        if (!(e instanceof FlowControlRejection)) throw e;
        m?.flowControlRejections.inc({ reason: e.reason });
        waited('rejected', GIE_QUEUE_OUTCOMES[e.reason]);
        // Nobody is listening for an answer to an abandoned stream; GIE v1.5.0 still counts it, as the
        // ServiceUnavailable its admission returns for EvictedContextCancelled (requestcontrol/admission.go
        // translateFlowControlOutcome, handlers/server.go's deferred RecordRequestErrCounter).
        if (e.reason === 'aborted') return this.abandonedWhileQueued(model, request);
        // Waited out its deadline while every pod's scrapes failed (it waited because the EPP had just stalled or
        // started, when failures may be its own): the pods are gone, not busy, and a retry into them will not help.
        // 503, as to a dead pool at once (issue 11). GIE v1.5.0 answers every queue TTL eviction 503
        // (`requestcontrol/admission.go` translateFlowControlOutcome); llm-d-router now answers 429 while the pool has
        // endpoints and 503 when it has none (`translateFlowControlError`), the split kvroute makes here.
        if (e.reason === 'deadline' && this.everyPodUnreachable(this.candidates(req), this.stalled() ? 2 : 1)) {
          return this.reject(503, 'no endpoint could be reached while the request waited (every pod\'s metrics unreachable)', model,
            { code: 'no_ready_endpoints' }, { [FLOW_CONTROL_HEADER]: e.reason, [DROPPED_REASON_HEADER]: DROPPED_NO_ENDPOINTS }, this.targetOf(request, model), request.headers);
        }
        const headers = { [FLOW_CONTROL_HEADER]: e.reason, [DROPPED_REASON_HEADER]: DROPPED_REASONS[e.reason] };
        // This EPP is stopping: another replica, or this one restarted, can take the request (llm-d-router answers a
        // flow controller no longer running 503 for the same reason).
        if (e.reason === 'closed') return this.reject(503, 'the endpoint picker is shutting down', model, { code: 'service_unavailable' }, headers, this.targetOf(request, model), request.headers);
        return this.reject(429, `every endpoint is saturated and the request could not wait (${e.reason})`, model, { code: 'pool_saturated' }, headers, this.targetOf(request, model), request.headers);
      }
      if (signal.aborted) {
        m?.flowControlRejections.inc({ reason: 'aborted' });
        waited('rejected', 'EvictedContextCancelled');
        return this.abandonedWhileQueued(model, request);
      }
      const candidates = this.candidates(req);
      narrowed = this.isNarrowed(candidates);
      if (candidates.length === 0) {
        waited('rejected', 'Dispatched');
        return this.reject(503, `no ready endpoint in pool ${this.options.poolName ?? ''}`.trim(), model, { code: 'no_ready_endpoints' }, NO_ENDPOINTS_HEADERS, this.targetOf(request, model), request.headers);
      }
      // The pool detector still reads full (a race with the gate that released it): back to its place, as below.
      // Against the steady ceiling: a soft-reflective policy's gate released it on an open tick, and the tick after
      // is most often closed, which would send every such release back, forever.
      if (this.poolSaturated(candidates, (saturation) => this.ceilingFor(priority, saturation, true))) continue;
      if (!admissionRan) {
        admissionRan = true;
        const denial = this.admissionDenial(request, candidates);
        if (denial !== undefined) {
          waited('rejected', 'Dispatched');
          return this.notAdmitted(denial, request, model);
        }
      }
      try {
        const result = this.options.scheduler.schedule(request, candidates);
        const seconds = waited('dispatched', 'Dispatched');
        if (isConditionalDecode(request.headers) && !pickHoldsCachedPrefix(result)) return this.conditionalDecodeRefused(request, model, result);
        return this.commit(result.target.endpoint, { request, result, model, body: req.body! }, started, Math.floor(seconds * 1000));
      } catch (e) {
        // Still saturated: back to the head of its flow, with its original deadline.
        if (e instanceof SchedulingError && this.waitHelps(e.reason)) continue;
        const seconds = waited('rejected', 'Dispatched');
        if (e instanceof SchedulingError) return this.schedulingFailed(e, model, this.targetOf(request, model), request.headers);
        this.options.onInternalError?.(e as Error, req.requestId);
        if (isConditionalDecode(request.headers)) return this.conditionalDecodeRefused(request, model);
        return this.commit(leastLoaded(candidates, this.random).endpoint, { request, model, body: req.body! }, started, Math.floor(seconds * 1000));
      }
    }
  }

  /**
   * The first admitter's denial of `request` among `candidates`, or undefined when every admitter admits it (or there
   * is none): llm-d-router v0.10.0's runAdmissionPlugins (`requestcontrol/director.go`), each call timed under the
   * `Admission` extension point as upstream times it. An admitter that throws is reported and counts as admitting,
   * as every request-control hook's failure lets the request go on.
   */
  private admissionDenial(request: LLMRequest, candidates: readonly EndpointSnapshot[]): string | undefined {
    if (this.admitters.length === 0) return undefined;
    const m = this.options.metrics;
    const priority = this.queuePriority(request.headers) ?? 0;
    for (const plugin of this.admitters) {
      const before = m !== undefined ? this.monotonicSeconds() : 0;
      let denial: string | undefined;
      try {
        denial = plugin.admit(request, priority, candidates);
      } catch (e) {
        this.options.onInternalError?.(e as Error, request.requestId, `${plugin.name} admission`);
      }
      if (m !== undefined) this.pluginTiming(m, 'Admission', plugin).observe(this.monotonicSeconds() - before);
      if (denial !== undefined) return denial;
    }
    return undefined;
  }

  /**
   * An admitter denied the request: 500, as llm-d-router v0.10.0's director answers it (HandleRequest wraps the
   * admitter's error as `errcommon.Internal`, "request cannot be admitted: %w"; `director_test.go` "denied request by
   * admit request plugin" expects Internal), counted `Internal`. Upstream's body is that error's text,
   * `inference error: Internal - request cannot be admitted: …`; kvroute's OpenAI error carries the message after the
   * code, as for its other mirrored answers.
   */
  private notAdmitted(denial: string, request: LLMRequest, model: string): RouteDecision {
    return this.reject(500, `${NOT_ADMITTED_PREFIX}${denial}`, model, { code: 'request_not_admitted' }, undefined, this.targetOf(request, model), request.headers);
  }

  /**
   * The scheduler found no endpoint among candidates that exist. GIE answers any scheduling failure ResourceExhausted
   * (429, "failed to find target endpoint"; v1.5.0 `pkg/epp/requestcontrol/director.go` HandleRequest); kvroute keeps
   * 429 for real load only ('saturated': clients back off and retry) and answers 503 when what emptied the set is not
   * load (no endpoint has the role, every pod's metrics unreadable because the pods are gone): waiting will not help, and
   * clients and Envoy treat 503 as unavailable (issue 11; the reasons are the filters', `scheduling/types.ts`). Both
   * count a failed `inference_extension_scheduler_attempts_total` as upstream does. Each names its reason in
   * `x-llm-d-request-dropped-reason`, as llm-d-router does since 645ba71e (#2462, after v0.10.0): filters draining the
   * candidates are a capacity rejection, `rejected-saturated` (`scheduling/scheduler_profile.go` Run), and kvroute's 503
   * carries the reason upstream gives its 503s for want of endpoints, `rejected-no-endpoints` (`director.go`).
   */
  private schedulingFailed(e: SchedulingError, model: string, target: string, requestHeaders: Readonly<Record<string, string>>): RouteDecision {
    this.options.metrics?.schedulerAttempts.inc({ status: 'failure', target_model_name: target, pod_name: '', namespace: '', port: '' });
    return e.reason === 'saturated'
      ? this.reject(429, `every endpoint is saturated: ${e.message}`, model, { code: 'pool_saturated' }, SATURATED_HEADERS, target, requestHeaders)
      : this.reject(503, e.message, model, { code: 'no_ready_endpoints' }, NO_ENDPOINTS_HEADERS, target, requestHeaders);
  }

  /** A parsed body without a model that nothing names one for: 400, as both upstreams answer it. */
  private modelNotFound(rewriteHeader: string | undefined, headers: ReadonlyMap<string, string>): RouteDecision {
    return this.reject(400, MODEL_NOT_FOUND_MESSAGE, '', { param: 'model', code: 'model_not_found' }, undefined, rewriteHeader ? this.modelLabel(rewriteHeader) : '', headerRecord(headers));
  }

  /**
   * `Prefer: if-available` and the pick holds none of the prompt: 412, error code PreconditionFailed, as llm-d-router
   * v0.10.0's director answers it (`conditional-decode.ts`). Not a scheduling failure: the cycle picked.
   */
  private conditionalDecodeRefused(request: LLMRequest, model: string, result?: SchedulingResult): RouteDecision {
    // The cycle did pick: counted a successful scheduler attempt, as upstream's Schedule records one before its gate
    // (llm-d-router v0.10.0 scheduler.go RecordSchedulerAttempt, then director.go's conditional-decode check).
    const m = this.options.metrics;
    if (m !== undefined && result !== undefined) this.seriesOf(m, model, this.targetOf(request, model)).attemptSucceeded(result.target.endpoint).value++;
    return this.reject(412, NO_CACHED_PREFIX_MESSAGE, model, { code: 'no_cached_prefix' }, undefined, this.targetOf(request, model), request.headers);
  }

  /** A request whose proxy gave up while it waited in flow control: counted as GIE v1.5.0 counts it, not answered. */
  private abandonedWhileQueued(model: string, request: LLMRequest): RouteDecision {
    this.countError(model, this.targetOf(request, model), 'ServiceUnavailable', request.headers);
    return abandoned();
  }

  /** The `target_model_name` label of a request: its rewrite target's, else its model's. */
  private targetOf(request: LLMRequest, model: string): string {
    return this.rewrites.get(request)?.targetModel ?? this.labelTargets.get(request) ?? model;
  }

  /**
   * Runs the request-preparing plugins (tokenization for precise prefix scoring) side by side. One that fails is
   * reported and the request is scheduled without its data, as if that plugin knew nothing of it.
   */
  private async prepare(plugins: readonly PrepareRequest[], request: LLMRequest, signal: AbortSignal): Promise<void> {
    const m = this.options.metrics;
    await Promise.all(plugins.map(async (plugin) => {
      const before = m !== undefined ? this.monotonicSeconds() : 0;
      try {
        await plugin.prepareRequest(request, signal);
      } catch (e) {
        this.options.onInternalError?.(e as Error, request.requestId, `${plugin.name} prepare-request`);
      }
      // llm-d-router v0.10.0 requestcontrol/plugin_executor.go times each data producer as extension point
      // DataProducer; kvroute's prepare-request hooks do that work (tokenizing for the precise scorer).
      if (m !== undefined) this.pluginTiming(m, 'DataProducer', plugin).observe(this.monotonicSeconds() - before);
    }));
  }

  /**
   * The parsed body, and whose usage fields its response carries; undefined when there is none to read; the error when
   * it cannot be read. The parser is the one the config's registry resolves the request's path to
   * (`request-parsers.ts`): a path no parser claims is a 400 (llm-d-router v0.10.0 `handlers/server.go` L461-465), only
   * for a request with a body, as upstream resolves the parser at the body's end. GIE v1.5.0's openai parser parses every
   * body whatever its content-type (`parsers/openai/openai.go`), so a JSON body sent as a form (`curl -d`'s default) or
   * as text is read too; kvroute's leaves alone only what cannot be JSON under another content-type (a multipart upload,
   * raw audio): those are routed by load.
   */
  private readBody(req: IncomingRequest): { parsed: ParsedRequestBody | RequestBodyError; usage: UsageFormat | undefined } | undefined {
    if (req.body === undefined) return undefined;
    // Retrieving or cancelling a stored response (`/v1/responses/{id}[/cancel]`): vLLM reads no body there, and such a
    // request is routed as one without a body, to the pod that stored the response when kvroute named it, never held
    // back by that pod's load (a cancel is how a client frees it). kvroute's own routing, ahead of the parser registry.
    if (responseIdInPath(req.headers.get(':path')) !== undefined) return undefined;
    const path = requestPath(req.headers);
    const parser = this.parsers.resolve(path);
    if (parser === undefined) return { parsed: new RequestBodyError(unclaimedPathMessage(path), null, 'unsupported_path'), usage: undefined };
    const m = this.options.metrics;
    if (m === undefined) return this.parseWith(parser, req.body, req.headers, path);
    // llm-d-router v0.10.0 handlers/server.go times each parse as extension point RequestParsing.
    const before = this.monotonicSeconds();
    try {
      return this.parseWith(parser, req.body, req.headers, path);
    } finally {
      this.pluginTiming(m, 'RequestParsing', parser as unknown as Plugin).observe(this.monotonicSeconds() - before);
    }
  }

  /** `readBody` with the parser its registry resolved for the request's path. */
  private parseWith(parser: ParserRef, body: Buffer, headers: ReadonlyMap<string, string>, path: string): { parsed: ParsedRequestBody | RequestBodyError; usage: UsageFormat | undefined } | undefined {
    try {
      switch (parser.type) {
        case 'passthrough-parser':
          // The passthrough parser returns the raw payload: no model, no prompt, no validation; its ParseResponse nothing.
          return { parsed: UNREAD_BODY, usage: undefined };
        case 'anthropic-parser': {
          const parsed = parseAnthropicRequest(body, path);
          // count_tokens: forwarded unread and its response not processed (anthropic.go SkipResponseProcessing).
          return { parsed, usage: parsed === UNREAD_BODY ? undefined : 'anthropic' };
        }
        case 'vllmhttp-parser':
          // Its ParseResponse is the openai parser's (vllmhttp.go L104-106).
          return { parsed: parseGenerateRequest(body, path), usage: 'openai' };
        case 'openai-parser':
          if (!isJsonContentType(headers.get('content-type')) && !looksLikeJson(body)) return undefined;
          // The path says which API upstream's parser reads the body as, and which vLLM endpoint reads it, and so what
          // it prefills (`/v1/responses` renders a chat).
          return { parsed: parseOpenAiRequest(body, headers, this.parsers.registry ? 'llmd' : 'gie'), usage: 'openai' };
      }
    } catch (e) {
      if (e instanceof RequestBodyError) return { parsed: e, usage: undefined };
      throw e;
    }
  }

  /**
   * Commits the request to `target`: the pre-request hooks learn the pick (only for a scheduled request), the
   * datastore counts it (and the other profiles' picks: a P/D request's prefill pod) in flight until `release` (a pick
   * under the `prefill` profile until the response's start: `acquireProfiles`), and the
   * request metrics count it.
   */
  private commit(target: Endpoint, scheduled: Scheduled | undefined, started: number, flowQueueMs?: number): RouteDecision {
    const m = this.options.metrics;
    const result = scheduled?.result;
    const rewrite = scheduled !== undefined ? this.rewrites.get(scheduled.request) : undefined;
    // The body the pod gets when it is not the one received: rewritten model, engine priority, or both.
    let body = rewrite?.body;
    const targetModel = rewrite?.targetModel ?? (scheduled !== undefined ? this.labelTargets.get(scheduled.request) : undefined) ?? scheduled?.model ?? '';
    const series = m !== undefined && scheduled !== undefined ? this.seriesOf(m, scheduled.model, targetModel) : undefined;
    if (result !== undefined) {
      const headers = scheduled!.request.headers;
      scheduled!.request.attributes?.set(REQUEST_FLOW_LABELS, { fairnessId: this.fairnessLabel(this.fairnessIdOf(headers)), priority: this.priorityLabel(headers) });
      for (const plugin of this.preRequestPlugins) {
        const before = m !== undefined ? this.monotonicSeconds() : 0;
        try {
          plugin.preRequest(scheduled!.request, result);
        } catch (e) {
          // One plugin's bug must neither move the pick nor leave the hooks that already ran without their request's
          // end (response-complete runs for every committed request): reported, and the commit goes on.
          this.options.onInternalError?.(e as Error, scheduled!.request.requestId, `${plugin.name} pre-request`);
        }
        // GIE v1.5.0 `pkg/epp/requestcontrol/director.go` runPreRequestPlugins times each call the same way.
        if (m !== undefined) this.pluginTiming(m, 'PreRequest', plugin).observe(this.monotonicSeconds() - before);
      }
      if (series !== undefined) series.attemptSucceeded(target).value++;
      const priority = scheduled!.request.attributes?.get(ENGINE_PRIORITY);
      if (priority !== undefined && priority !== 0 && !this.clientPriorities.has(scheduled!.request)) {
        body = withPriority(body ?? scheduled!.body, priority) ?? body;
      }
    }
    // The response the pod will store is named after it, so that what continues it can be routed back there.
    if (scheduled !== undefined && this.unnamedResponses.has(scheduled.request)) {
      body = withResponseId(body ?? scheduled.body, issueResponseId(target.key, (key) => this.ownerTags.of(key))) ?? body;
    }
    const { others, targetHeld } = this.acquireProfiles(target, result);
    let llmd: LlmdRequestSeries | undefined;
    if (series !== undefined) {
      const priority = this.priorityLabel(scheduled!.request.headers);
      // The body the pod gets, whose length the stream sets as content-length: GIE v1.5.0 director.go repackage sets
      // RequestSize to the forwarded (re-marshalled) body's length before handlers/server.go records it (llm-d-router
      // v0.10.0 the same). kvroute's own edits (engine priority, a response id) are counted, being in what it forwards.
      // An unedited body goes byte for byte and counts as received, where GIE counts its re-marshalled (compact) form.
      const size = (body ?? scheduled!.body).length;
      series.requestTotal(priority).value++;
      series.requestSizes().observe(size);
      // GIE v1.5.0 metrics.go IncRunningRequests skips an empty model name.
      if (series.model !== '') series.runningRequests().value++;
      // llm-d's twins, written beside GIE's as llm-d-router v0.10.0's recorders write both.
      llmd = this.llmdSeriesFor(m!, series, scheduled!.request.headers, priority);
      llmd.total().value++;
      llmd.sizes().observe(size);
      if (series.model !== '') llmd.running().value++;
    }
    const ticket = new Ticket(
      target,
      scheduled !== undefined,
      scheduled !== undefined && result !== undefined ? retainedRequest(scheduled.request) : undefined,
      started,
      rewrite !== undefined && rewrite.incoming !== '' && rewrite.incoming !== rewrite.target ? new ModelNameRestorer(rewrite.target, rewrite.incoming, rewrite.stream) : undefined,
      series,
    );
    ticket.usageFormat = scheduled !== undefined ? (this.usageFormats.has(scheduled.request) ? this.usageFormats.get(scheduled.request) : 'openai') : 'openai';
    ticket.flowQueueMs = flowQueueMs;
    ticket.llmd = llmd;
    ticket.others = others;
    ticket.targetHeld = targetHeld;
    // A picker asked for several endpoints (max-score-picker's maxNumOfEndpoints) names them all, best first, as one
    // comma-separated value Envoy tries in order on retries: GIE v1.5.0 `pkg/epp/requestcontrol/director.go`
    // prepareRequest joins the primary profile's targets with ","; the first is the one counted in flight.
    const targets = result?.targets;
    const endpoint = targets !== undefined && targets.length > 1 ? targets.map((t) => t.endpoint.key).join(',') : target.key;
    // llm-d-router v0.10.0 `requestcontrol/director.go` prepareRequest: every endpoint the primary profile scored
    // (its ScoredCandidates), by `ip:port`, when the EPP runs with --emit-endpoint-scores.
    const endpointScores = this.options.emitEndpointScores === true && result !== undefined && result.scores.size > 0 ? Object.fromEntries(result.scores) : undefined;
    const setHeaders = scheduled?.request.attributes?.get(SET_REQUEST_HEADERS);
    let decision: RouteDecision = body !== undefined ? { kind: 'route', endpoint, ticket, body } : { kind: 'route', endpoint, ticket };
    if (setHeaders !== undefined) decision = { ...decision, setHeaders };
    return endpointScores !== undefined ? { ...decision, endpointScores } : decision;
  }

  /**
   * Counts in flight (the datastore's `activeRequests`, and its unseen queue, `netPicksSinceScrape`) `target` and the
   * first pick of every other profile: a P/D request's prefill pod, besides its decode pod. llm-d-router v0.10.0
   * `pkg/epp/framework/plugins/requestcontrol/dataproducer/inflightload/producer.go` PreRequest increments the request
   * counter of every profile result's first target endpoint, which `active-request-scorer` and `concurrency-detector`
   * read; a pod picked by two profiles counts twice, as there. Each pick under the profile named `prefill` is held to
   * be released at the response's start, `target` included (`targetHeld`: `header-profile-handler` running `prefill`
   * alone), as upstream's ResponseBody releases that profile's entry whichever profile is primary.
   */
  private acquireProfiles(target: Endpoint, result: SchedulingResult | undefined): { others: ProfileHold[] | undefined; targetHeld: boolean } {
    const targetRouteId = this.options.datastore.acquire(target.key);
    let others: ProfileHold[] | undefined;
    const targetHeld = result?.profile === UPSTREAM_PREFILL_PROFILE;
    if (targetHeld) others = [{ key: target.key, early: true, routeId: targetRouteId, released: false }];
    for (const [profile, pick] of result?.profileTargets ?? []) {
      if (profile === result!.profile) continue;
      const routeId = this.options.datastore.acquire(pick.endpoint.key);
      (others ??= []).push({ key: pick.endpoint.key, early: profile === UPSTREAM_PREFILL_PROFILE, routeId, released: false });
    }
    return { others, targetHeld };
  }

  /**
   * The response started: the `prefill` profile's pick is no longer counted in flight (the decode pod's is, until the
   * request ends). llm-d-router v0.10.0 `inflightload/producer.go` ResponseBody releases the `prefill` profile's entry
   * in full at the response's first body chunk (StartOfStream: "the prefill worker has finished and handed off"); that
   * chunk is a streamed response's first event, and a non-streamed one's whole body at its end (`handlers/server.go`
   * hands the director a non-streamed body only once complete). Here it is the first body chunk when the proxy shows
   * the EPP the body, and otherwise (kvroute's EnvoyFilter: response body mode NONE) the response headers: a
   * non-streamed response's come with its body; a streamed one's come before its first event, after the prefill pod
   * answered with llm-d's routing sidecar's default connector (v0.10.0 `pkg/sidecar/proxy/connector_nixlv2.go` reads
   * the prefill response before it sends the decode request), but possibly before with the connectors that send both
   * at once (`connector_sglang.go`, `connector_p2p.go`, `connector_mooncake.go`).
   */
  private releaseAtResponseStart(t: Ticket): void {
    if (t.others === undefined || t.responseStarted) return;
    t.responseStarted = true;
    const ended = this.releaseOtherProfiles(t, true);
    // The plugins that count the same picks their own way (the latency scorer's prefill pick) end them at the same moment.
    const request = t.request;
    if (request !== undefined) {
      for (const plugin of this.responseStartPlugins) {
        try {
          plugin.responseStarted!(request);
        } catch (e) {
          this.options.onInternalError?.(e as Error, request.requestId, `${plugin.name} response-start`);
        }
      }
    }
    // A count ended as a request's end ends one (`release`): the pool may have room for the oldest waiter now, which
    // would otherwise wait for the next request's end or the next tick (upstream's dispatch loop polls every 1 ms).
    if (ended) this.dispatchCycle(1);
  }

  /**
   * Ends the counts `acquireOtherProfiles` took that are still held (`early` ones only, with `onlyEarly`); whether it
   * ended any.
   */
  private releaseOtherProfiles(t: Ticket, onlyEarly: boolean): boolean {
    if (t.others === undefined) return false;
    let ended = false;
    for (const hold of t.others) {
      if (hold.released || (onlyEarly && !hold.early)) continue;
      hold.released = true;
      ended = true;
      // The prefill ended on its pod before the EPP sees the response start (a non-streamed response's start is its
      // decode's end), so a page that has counted the pick may already show it gone (`SinceScrapeLedger.endedSince`).
      this.options.datastore.release(hold.key, hold.routeId);
    }
    return ended;
  }

  /**
   * The request metrics' series of a `model_name` / `target_model_name` pair: its own for the first MAX_MODEL_SERIES
   * pairs, then ("other", "other"). The series carries the labels every later metric of the request uses.
   */
  private seriesOf(m: EppCollectors, model: string, targetModel: string): RequestSeries {
    const existing = this.requestSeries.get(model)?.get(targetModel);
    if (existing !== undefined) return existing;
    const isOther = model === OTHER_LABEL && targetModel === OTHER_LABEL;
    if (!isOther && this.requestSeriesPairs >= MAX_MODEL_SERIES) return this.seriesOf(m, OTHER_LABEL, OTHER_LABEL);
    let byTarget = this.requestSeries.get(model);
    if (byTarget === undefined) this.requestSeries.set(model, (byTarget = new Map()));
    const series = new RequestSeries(m, model, targetModel);
    byTarget.set(targetModel, series);
    if (!isOther) this.requestSeriesPairs++;
    return series;
  }

  /** The timing series of a request-control plugin at an extension point (latency-scorer has two). */
  private pluginTiming(m: EppCollectors, point: ExtensionPoint, plugin: Plugin): HistogramSeries {
    let byPlugin = this.pluginSeries.get(point);
    if (byPlugin === undefined) this.pluginSeries.set(point, (byPlugin = new Map()));
    let series = byPlugin.get(plugin);
    if (series === undefined) {
      series = m.pluginDuration.child({ extension_point: point, plugin_type: plugin.type, plugin_name: plugin.name });
      byPlugin.set(plugin, series);
    }
    return series;
  }

  /**
   * A request's flow-control priority: a listed objective's, as GIE's InferenceObjective sets it; otherwise kvroute's
   * own header; else 0. Undefined when the header is not a valid priority.
   */
  private queuePriority(headers: Readonly<Record<string, string>>): number | undefined {
    return this.objectivePriority(headers) ?? this.headerPriority(headers[PRIORITY_HEADER]);
  }

  /** `x-kvroute-priority`'s value capped at `maxHeaderPriority`: 0 when absent, undefined when unreadable. */
  private headerPriority(value: string | undefined): number | undefined {
    // Absent, a request has GIE's default 0 whatever the cap (a negative cap must not make every request sheddable).
    if (value === undefined) return 0;
    const priority = parsePriority(value);
    return priority === undefined ? undefined : Math.min(priority, this.options.maxHeaderPriority ?? FLOW_CONTROL_DEFAULTS.maxHeaderPriority);
  }

  /** The priority of the request's InferenceObjective (`x-gateway-inference-objective`) when it is known. */
  private objectivePriority(headers: Readonly<Record<string, string>>): number | undefined {
    const objective = headers[LLMD_OBJECTIVE_HEADER] ?? headers[OBJECTIVE_HEADER];
    return objective !== undefined ? (this.options.objectives ?? this.options.flowControl?.objectives)?.get(objective) : undefined;
  }

  /**
   * The `priority` label of `inference_objective_request_total`: the priority of the request's InferenceObjective
   * (`x-gateway-inference-objective`, listed in the config's `flowControl.objectives`), else `x-kvroute-priority`, else
   * 0, GIE's default for a request without an objective (v1.5.0 `pkg/epp/requestcontrol/director.go`).
   */
  private priorityLabel(headers: Readonly<Record<string, string>>): string {
    const objectivePriority = this.objectivePriority(headers);
    if (objectivePriority !== undefined) return String(objectivePriority);
    const fromHeader = this.headerPriority(headers[PRIORITY_HEADER]) ?? 0;
    const label = String(fromHeader);
    // The client picks this one: the default 0 and the first MAX_PRIORITY_LABELS other values, then "other".
    return fromHeader === 0 ? label : this.headerPriorityLabels.label(label);
  }

  /**
   * A ticket for a response whose request never came through this EPP (the proxy skipped the request): its size and
   * usage are recorded with empty model names, as GIE v1.5.0 records them (`HandleResponseBody` with no incoming model).
   */
  responseWithoutRequest(): unknown {
    const ticket = new Ticket(undefined, true, undefined, this.monotonicSeconds(), undefined, undefined);
    // Read by the parser of a request without headers, whose path is `/v1/completions` (llm-d-router v0.10.0
    // `handlers/response.go` getOrResolveParser, `request.GetRequestPath`; GIE v1.5.0: its one parser).
    ticket.usageFormat = usageFormatOf(this.parsers.resolve(requestPath(NO_HEADERS)));
    return ticket;
  }

  /** The post-response hooks, at the target's response headers; what they return is set on the client's response. */
  responseHeaders(ticket: unknown, headers: ReadonlyMap<string, string>, metadata: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {}, bodyShown = false): Readonly<Record<string, string>> | undefined {
    const t = ticket as Ticket;
    if (this.options.metrics === undefined) return this.handleResponseHeaders(t, headers, metadata, bodyShown);
    const before = performance.now();
    try {
      return this.handleResponseHeaders(t, headers, metadata, bodyShown);
    } finally {
      t.responseProcessingMs += performance.now() - before;
    }
  }

  private handleResponseHeaders(t: Ticket, headers: ReadonlyMap<string, string>, metadata: Readonly<Record<string, Readonly<Record<string, unknown>>>>, bodyShown: boolean): Readonly<Record<string, string>> | undefined {
    const { target, request } = t;
    // Without the body, the response's start the EPP sees is its headers (`releaseAtResponseStart`).
    if (!bodyShown) this.releaseAtResponseStart(t);
    // GIE v1.5.0 handlers/server.go (Process, ResponseHeaders): a header named `status` (literally: Envoy sends the
    // `:status` pseudo-header, which it does not read) other than "200" makes the request a ModelServerError, counted
    // once when the stream ends (the deferred RecordRequestErrCounter).
    const status = headers.get('status');
    if (status !== undefined && status !== '200') t.modelServerError = true;
    // GIE v1.5.0 handlers/server.go: a `text/event-stream` response is read as a stream of events. The reader itself is
    // made at the first body chunk: with kvroute's EnvoyFilter (response body mode NONE) none ever comes.
    const contentType = headers.get('content-type');
    const eventStream = contentType !== undefined && contentType.toLowerCase().includes('text/event-stream');
    if (t.bodyRead && this.options.metrics !== undefined) t.eventStream = eventStream;
    // GIE v1.5.0 handlers/server.go: such a response is streamed (`modelServerStreaming`), whatever the request said.
    if (eventStream && t.rewrite !== undefined) t.rewrite.streamed = true;
    const set: Record<string, string> = {};
    if (t.flowQueueMs !== undefined) set[LLMD_FLOW_QUEUE_DURATION_HEADER] = String(t.flowQueueMs);
    if (request === undefined || target === undefined || this.postResponsePlugins.length === 0) return Object.keys(set).length > 0 ? set : undefined;
    const response = { headers: Object.fromEntries(headers), metadata };
    const m = this.options.metrics;
    for (const plugin of this.postResponsePlugins) {
      const before = this.monotonicSeconds();
      Object.assign(set, plugin.postResponse(request, response, target));
      // GIE v1.5.0 times response-header plugins as extension point ResponseReceived (director.go runResponseHeaderPlugins).
      if (m !== undefined) this.pluginTiming(m, 'ResponseReceived', plugin).observe(this.monotonicSeconds() - before);
    }
    return Object.keys(set).length > 0 ? set : undefined;
  }

  /**
   * A response body chunk (only when the proxy sends the body to the EPP). At its end the response's size and token
   * usage are recorded as GIE v1.5.0 records them (`pkg/epp/handlers/response.go` HandleResponseBody):
   * `inference_objective_response_sizes`, `_input_tokens`, `_output_tokens`, `_prompt_cached_tokens` and
   * `_normalized_time_per_output_token_seconds` (time from the request to the response's end, per output token).
   */
  responseBody(ticket: unknown, chunk: Buffer, endOfStream: boolean): Buffer | undefined {
    const t = ticket as Ticket;
    const before = this.options.metrics !== undefined ? performance.now() : 0;
    this.releaseAtResponseStart(t);
    this.observeResponse(t, chunk, endOfStream);
    // GIE v1.5.0 handlers/server.go rewriteModelName: the client sees the model name it asked for, not the rewritten one.
    const out = t.rewrite?.restore(chunk, endOfStream);
    if (this.options.metrics !== undefined) t.responseProcessingMs += performance.now() - before;
    return out;
  }

  private observeResponse(t: Ticket, chunk: Buffer, endOfStream: boolean): void {
    // No response headers came (the proxy skips them: response_header_mode SKIP), so no content-type: GIE v1.5.0 reads
    // the request's `stream` field (handlers/server.go), which kvroute does not keep past the pick; the body says the
    // same, as an event stream starts with a field or a comment (`data:`, `event:`, `:`) and a JSON body with `{`.
    if (t.eventStream === undefined && t.bodyRead && this.options.metrics !== undefined && !t.responseRecorded) {
      t.eventStream = sniffEventStream(chunk) ?? (endOfStream ? false : undefined);
      // Leading whitespace changes neither reader's result, but it is part of the response's size.
      if (t.eventStream === undefined) t.unsniffedBytes += chunk.length;
    }
    if (t.eventStream === undefined || t.responseRecorded) return;
    const observer = (t.response ??= new ResponseObserver(t.eventStream, t.usageFormat ?? 'openai', this.parsers.registry ? 'llmd' : 'gie'));
    observer.bytes += t.unsniffedBytes;
    t.unsniffedBytes = 0;
    observer.push(chunk, endOfStream);
    if (!endOfStream) return;
    t.responseRecorded = true;
    const m = this.options.metrics!;
    // The request's series holds its bounded labels (a pair past MAX_MODEL_SERIES is ("other", "other")).
    const labels = { model_name: t.series?.model ?? '', target_model_name: t.series?.targetModel ?? '' };
    // llm-d's twins; a response whose request this EPP never saw is in the default flow at priority 0.
    const llmd = (t.llmd ?? new LlmdRequestSeries(m, { ...labels, fairness_id: DEFAULT_FAIRNESS_ID, priority: '0' })).responseSeries();
    m.responseSizes.observe(labels, observer.bytes);
    llmd.sizes.observe(observer.bytes);
    const usage = t.usageFormat !== undefined ? observer.usage : undefined;
    if (usage === undefined) return;
    // GIE v1.5.0 metrics.go RecordInputTokens / RecordOutputTokens observe counts above 0 only (an embeddings response
    // has no output tokens: no observation); llm-d v0.10.0's twins the same.
    if (usage.promptTokens > 0) {
      m.inputTokens.observe(labels, usage.promptTokens);
      llmd.input.observe(usage.promptTokens);
    }
    if (usage.completionTokens > 0) {
      m.outputTokens.observe(labels, usage.completionTokens);
      llmd.output.observe(usage.completionTokens);
    }
    if (usage.cachedPromptTokens !== undefined) {
      m.promptCachedTokens.observe(labels, usage.cachedPromptTokens);
      llmd.cached.observe(usage.cachedPromptTokens);
    }
    const elapsed = this.monotonicSeconds() - t.started;
    if (usage.completionTokens > 0 && elapsed > 0) {
      m.normalizedTimePerOutputToken.observe(labels, elapsed / usage.completionTokens);
      llmd.ntpot.observe(elapsed / usage.completionTokens);
    }
  }

  release(ticket: unknown, outcome: ReleaseOutcome): void {
    const { target, started, series, request, modelServerError, llmd, responseProcessingMs } = ticket as Ticket;
    // Once per request whose response reached the EPP, however it ended (handlers/server.go's deferred record).
    const m = this.options.metrics;
    if (responseProcessingMs > 0 && m !== undefined) (this.responseProcessing ??= m.llmdResponseProcessingDuration.child({})).observe(responseProcessingMs / 1000);
    if (modelServerError && series !== undefined) {
      m?.requestErrorTotal.inc({ model_name: series.model, target_model_name: series.targetModel, error_code: 'ModelServerError' });
      llmd?.error('ModelServerError');
    }
    // A response seen without its request: nothing was counted in flight for it.
    if (target === undefined) return;
    if (!(ticket as Ticket).targetHeld) this.options.datastore.release(target.key);
    // However it ended (completed, cancelled, failed), as upstream's EndOfStream, run for every ending by the
    // deferred cleanup in `handlers/server.go`, releases every profile's entry still held.
    this.releaseOtherProfiles(ticket as Ticket, false);
    if (request !== undefined) {
      for (const plugin of this.responseCompletePlugins) {
        const before = this.monotonicSeconds();
        try {
          plugin.responseComplete(request, target, outcome);
        } catch (e) {
          // A plugin's bug must not keep the request in flight or the queue waiting.
          this.options.onInternalError?.(e as Error, request.requestId, `${plugin.name} response-complete`);
        }
        if (m !== undefined) this.pluginTiming(m, 'ResponseStreaming', plugin).observe(this.monotonicSeconds() - before);
      }
    }
    // A request ended: one slot may be free for the oldest waiter.
    this.dispatchCycle(1);
    if (series !== undefined) {
      const seconds = this.monotonicSeconds() - started;
      if (series.model !== '') series.runningRequests().value--;
      if (outcome === 'completed') series.requestDuration().observe(seconds);
      if (llmd !== undefined) {
        if (series.model !== '') llmd.running().value--;
        if (outcome === 'completed') llmd.duration().observe(seconds);
      }
    }
  }

  /**
   * Whether `candidates` (from `candidates(req)`) leave out some of the pool's ready endpoints: the subset hint, or a
   * stored response's owner (`candidates`), narrowed them.
   */
  private isNarrowed(candidates: readonly EndpointSnapshot[]): boolean {
    return candidates.length < this.options.datastore.snapshot().length;
  }

  /**
   * The endpoints this request may go to: those within the proxy's subset hint (`hinted`), narrowed to the pod that
   * stored the response the request names (a Responses API continuation, retrieval or cancel: `response-owner.ts`)
   * while that pod is among them; otherwise all of them.
   */
  private candidates(req: IncomingRequest): readonly EndpointSnapshot[] {
    const hinted = this.hinted(req);
    const owner = this.responseOwners.get(req);
    if (owner === undefined) return hinted;
    // The pod that stored the response, when it is still a candidate; without it every pod answers 404 alike.
    const owned = hinted.filter((s) => this.ownerTags.of(s.endpoint.key) === owner);
    return owned.length > 0 ? owned : hinted;
  }

  /**
   * The ready endpoints, narrowed to a proxy's subset hint when it sent one (an empty hint means none qualify). The
   * hint is a list of `ip:port` (GIE v1.5.0 `candidates.go` reads a list only), or one comma-separated string, which
   * GIE's reference EPP reads too since v1.6.0 (lwepp `handleRequestHeaders`, #2935: what Envoy's header-to-metadata
   * rules produce). An entry whose port is one of the pool's (its `targetPorts`, `poolTargetPorts`; without discovery
   * of a pool, the endpoints' ports) selects only the endpoint at its `ip:port`, none when that pod does not serve the
   * port (lwepp's port-aware matching for data-parallel ranks, #2963; the protocol's "Endpoint Subset": only endpoints
   * from the list); a bare IP, or a port not the pool's, every endpoint at its IP: v1.5.0 matches IPs only, so a hint
   * whose port is not the pool's still selects the pod.
   */
  private hinted(req: IncomingRequest): readonly EndpointSnapshot[] {
    const all = this.options.datastore.snapshot();
    if (this.options.disableEndpointSubsetFilter === true) return all;
    const hint = req.filterMetadata[SUBSET_HINT_NAMESPACE]?.[SUBSET_HINT_KEY];
    let entries: string[];
    if (Array.isArray(hint)) entries = hint.filter((h): h is string => typeof h === 'string').flatMap((h) => h.split(','));
    else if (typeof hint === 'string') entries = hint.split(',');
    else return all;
    const ports = new Set(this.options.poolTargetPorts?.() ?? all.map((s) => s.endpoint.port));
    const exact = new Set<string>();
    const hosts = new Set<string>();
    for (const raw of entries) {
      const entry = raw.trim();
      if (entry === '') continue;
      const host = hostOf(entry);
      const port = host === entry ? undefined : portOf(entry);
      if (port !== undefined && ports.has(port)) exact.add(endpointKey(host, port));
      else hosts.add(host);
    }
    return all.filter((s) => exact.has(s.endpoint.key) || hosts.has(s.endpoint.address));
  }

  /** The `fairness_id` label: GIE's `default-flow` without the header, the header's value for the first MAX_FAIRNESS_LABELS, then "other". */
  private fairnessLabel(id: string | undefined): string {
    if (id === undefined || id === '') return DEFAULT_FAIRNESS_ID;
    return this.fairnessLabels.label(id);
  }

  /** The pool detector's reading over every ready pod, for `inference_extension_flow_control_pool_saturation`; undefined without one. */
  poolSaturation(): number | undefined {
    return this.saturationDetector?.saturation(this.options.datastore.snapshot());
  }

  private modelLabel(model: string): string {
    return this.modelLabels.label(model);
  }

  /**
   * Counts a failed request in GIE's error family and llm-d's twin (llm-d-router v0.10.0 `pkg/epp/metrics/metrics.go`
   * RecordRequestErrCounter writes both); `model` and `target` are the series' labels.
   */
  private countError(model: string, target: string, code: string, requestHeaders: Readonly<Record<string, string>> | undefined): void {
    const m = this.options.metrics;
    if (m === undefined) return;
    m.requestErrorTotal.inc({ model_name: model, target_model_name: target, error_code: code });
    this.llmdErrorSeriesOf(m, requestHeaders, model, target).error(code);
  }

  /**
   * llm-d's per-request series of a scheduled request: its (bounded) model pair's, by `fairness_id` as the flow-control
   * series take it (`default-flow` without one) and `priority` as `inference_objective_request_total`'s. Past
   * MAX_LLMD_LABEL_SETS sets, a new set keeps its model pair with fairness id and priority "other". Nested maps, no key
   * string: this runs on every request.
   */
  private llmdSeriesFor(m: EppCollectors, series: RequestSeries, headers: Readonly<Record<string, string>>, priority: string): LlmdRequestSeries {
    const fairness = this.fairnessLabel(this.fairnessIdOf(headers));
    let byPriority = series.llmd.get(fairness);
    const known = byPriority?.get(priority);
    if (known !== undefined) return known;
    if (this.llmdSets >= MAX_LLMD_LABEL_SETS) {
      return (series.llmdOther ??= new LlmdRequestSeries(m, { model_name: series.model, target_model_name: series.targetModel, fairness_id: OTHER_LABEL, priority: OTHER_LABEL }));
    }
    this.llmdSets++;
    if (byPriority === undefined) series.llmd.set(fairness, (byPriority = new Map()));
    const created = new LlmdRequestSeries(m, { model_name: series.model, target_model_name: series.targetModel, fairness_id: fairness, priority });
    byPriority.set(priority, created);
    return created;
  }

  /**
   * llm-d's series for a request that failed before it had a request series (its error only), bounded as
   * `llmdSeriesFor` bounds them.
   */
  private llmdErrorSeriesOf(m: EppCollectors, headers: Readonly<Record<string, string>> | undefined, model: string, targetModel: string): LlmdRequestSeries {
    const fairness = this.fairnessLabel(headers !== undefined ? this.fairnessIdOf(headers) : undefined);
    const priority = headers !== undefined ? this.priorityLabel(headers) : '0';
    const bounded = this.llmdSets >= MAX_LLMD_LABEL_SETS;
    const labels = { model_name: model, target_model_name: targetModel, fairness_id: bounded ? OTHER_LABEL : fairness, priority: bounded ? OTHER_LABEL : priority };
    const key = JSON.stringify([labels.model_name, labels.target_model_name, labels.fairness_id, labels.priority]);
    let series = this.llmdErrorSeries.get(key);
    if (series === undefined) {
      // The error table's own keys beyond the bound are one per (model, target) label pair, which modelLabel bounds.
      if (!bounded) this.llmdSets++;
      this.llmdErrorSeries.set(key, (series = new LlmdRequestSeries(m, labels)));
    }
    return series;
  }

  /** `model` and `target` are the error series' labels: the incoming model and the rewrite target (else the model). */
  private reject(
    status: number,
    message: string,
    model: string | undefined,
    error: OpenAiErrorOptions,
    headers?: Readonly<Record<string, string>>,
    target: string | undefined = model,
    /** The request's headers, for llm-d's `fairness_id` and `priority` labels. */
    requestHeaders?: Readonly<Record<string, string>>,
  ): RouteDecision {
    this.countError(model ?? '', target ?? '', ERROR_CODES[status] ?? String(status), requestHeaders);
    const decision = rejectWith(status, message, error);
    return headers === undefined || decision.kind !== 'reject' ? decision : { ...decision, headers };
  }
}

/**
 * `Object.fromEntries(headers)`, without its iterator's entry arrays: a plain assignment per header, except for a header
 * named `__proto__`, which only `fromEntries` (a data property, not the prototype) gets right.
 */
function headerRecord(headers: ReadonlyMap<string, string>): Record<string, string> {
  if (headers.has('__proto__')) return Object.fromEntries(headers);
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

/**
 * The answer for a request whose stream is gone: the stream handler drops whatever a closed stream is answered, so
 * this only has to be a decision that commits nothing (no pick, nothing in flight).
 */
function abandoned(): RouteDecision {
  return rejectWith(499, 'the proxy abandoned the request before it was routed', { code: 'client_closed_request' });
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** The `x-kvroute-priority` value: 0 when absent, undefined when it is not an integer in ±MAX_PRIORITY. */
function parsePriority(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return 0;
  if (!/^\s*[+-]?\d+\s*$/.test(value)) return undefined;
  const n = Number(value);
  return Math.abs(n) <= MAX_PRIORITY ? n : undefined;
}

/**
 * The body with its `model` replaced, or undefined when it is not a JSON object. Only this path re-serializes a body
 * (GIE re-marshals every body, `director.go` repackage); the stream sets the new Content-Length.
 */
function rewriteModel(body: Buffer, model: string): Buffer | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return Buffer.from(JSON.stringify({ ...(value as Record<string, unknown>), model }));
}

/**
 * The body with `"priority":N` as its first member (prefill-priority.ts), or undefined when it does not start with an
 * object. Nothing is parsed or copied twice. Only called for bodies without a `priority` of their own, so the edited
 * body never repeats a member name.
 */
export function withPriority(body: Buffer, priority: number): Buffer | undefined {
  return withLeadingMember(body, 'priority', String(priority));
}

const QUOTE = 0x22;

/** Where `pattern` starts in `body`, left to right, without overlaps: the places Go's bytes.ReplaceAll replaces. */
function occurrences(body: Buffer, pattern: Buffer): number[] {
  const found: number[] = [];
  for (let at = body.indexOf(pattern); at >= 0; at = body.indexOf(pattern, at + pattern.length)) found.push(at);
  return found;
}

/**
 * Puts the client's model name back into the response of a request whose model the gateway rewrote, byte by byte (a
 * chunk may end inside a UTF-8 character), as GIE v1.5.0 `pkg/epp/handlers/server.go` rewriteModelName does: every
 * `"model":"<target>"` becomes the incoming name; only a body holding none of those gets every `"model": "<target>"`
 * (a space after the colon) restored instead, as upstream returns once the compact replacement changed anything.
 * Upstream runs it on each chunk of a streamed response, and on the whole of a non-streamed one, which it holds to its
 * end (`finishResponse`). Here a streamed chunk is rewritten alone too (the rule applied per chunk), so a name cut
 * between two chunks of an event stream stays as the server wrote it, as upstream leaves it. A non-streamed body is not
 * held whole: only its end that may begin a name the next chunk finishes (shorter than the longer pattern) is kept
 * back, and sent with that chunk, or at the body's end; once a compact name was seen, no spaced one is restored. So the
 * client gets the bytes upstream's whole-body rewrite gives, wherever Envoy cut the chunks, with memory bounded by the
 * name's length rather than the body's (an embeddings response can be megabytes), and the rest of each chunk sent on as
 * it comes; except in one case, where parity would need the body held whole: a spaced name sent on in a chunk before
 * the one that completes the body's first compact name is restored, where upstream's whole-body rewrite leaves it.
 */
class ModelNameRestorer {
  /** Each pattern and its replacement: the compact one, then the spaced one. */
  private readonly patterns: readonly (readonly [from: Buffer, to: Buffer])[];
  private readonly longest: number;
  /** The end of the non-streamed body so far that may begin a pattern: sent with the next chunk. */
  private held: Buffer | undefined = undefined;
  /** The non-streamed body so far holds a compact name: its spaced ones are no longer restored. */
  private compactSeen = false;

  constructor(
    target: string,
    incoming: string,
    /**
     * Whether the response is streamed, as upstream's `modelServerStreaming`: the request said `stream: true`, or the
     * response headers' content-type is an event stream.
     */
    public streamed: boolean,
  ) {
    this.patterns = [':', ': '].map((sep) => [Buffer.from(`"model"${sep}${JSON.stringify(target)}`), Buffer.from(`"model"${sep}${JSON.stringify(incoming)}`)] as const);
    this.longest = Math.max(...this.patterns.map(([from]) => from.length));
  }

  /** What to send in the chunk's place; undefined: the chunk as it came. */
  restore(chunk: Buffer, endOfStream: boolean): Buffer | undefined {
    const body = this.held !== undefined ? Buffer.concat([this.held, chunk]) : chunk;
    // Upstream's rule: the compact names, or else (none in the body; for a streamed response, in the chunk) the spaced ones.
    const [compactFrom] = this.patterns[0]!;
    const compactAt = occurrences(body, compactFrom);
    const compact = compactAt.length > 0 || (!this.streamed && this.compactSeen);
    if (!this.streamed && compactAt.length > 0) this.compactSeen = true;
    const [from, to] = this.patterns[compact ? 0 : 1]!;
    const parts: Buffer[] = [];
    let end = 0; // past the last pattern replaced
    for (const at of compact ? compactAt : occurrences(body, from)) {
      parts.push(body.subarray(end, at), to);
      end = at + from.length;
    }
    const cut = this.streamed || endOfStream ? body.length : this.heldFrom(body, end);
    // A copy: the chunk is the proxy's buffer, not to be kept past the call.
    this.held = cut < body.length ? Buffer.from(body.subarray(cut)) : undefined;
    if (parts.length === 0 && body === chunk && cut === body.length) return undefined;
    parts.push(body.subarray(end, cut));
    return Buffer.concat(parts);
  }

  /**
   * Where the body's end that may begin a pattern starts: the first quote at or past `from` (the last replaced
   * pattern's end, so none is cut) whose bytes to the end are a pattern's proper prefix; the body's length when none
   * is. Being the longest such end, it holds every name that spans the cut, which the next chunk then completes.
   */
  private heldFrom(body: Buffer, from: number): number {
    for (let at = body.indexOf(QUOTE, Math.max(from, body.length - this.longest + 1)); at >= 0; at = body.indexOf(QUOTE, at + 1)) {
      const rest = body.length - at;
      if (this.patterns.some(([pattern]) => rest < pattern.length && body.compare(pattern, 0, rest, at) === 0)) return at;
    }
    return body.length;
  }
}

const NO_HEADERS: ReadonlyMap<string, string> = new Map();

/** Whose usage fields a parser reads from a response (undefined: none, or no parser). */
function usageFormatOf(parser: ParserRef | undefined): UsageFormat | undefined {
  switch (parser?.type) {
    case 'openai-parser':
    case 'vllmhttp-parser':
      return 'openai';
    case 'anthropic-parser':
      return 'anthropic';
    default:
      return undefined;
  }
}

/**
 * The parser registry of the config (`request-parsers.ts`): llm-d-router v0.10.0's, over `requestHandler.parsers`, for
 * a config in llm-d's form (the loader writes that section for one); else GIE v1.5.0's one parser for every path, the
 * config's `parser` or `openai-parser` (GIE v1.5.0 `config/loader/defaults.go` ensureParser).
 */
function parserRegistryOf(scheduler: Scheduler): ParserRegistry {
  // `config?.`: test doubles of the scheduler may carry none.
  const config = scheduler.plugins.config as Scheduler['plugins']['config'] | undefined;
  const refOf = (name: string): ParserRef => {
    const type = scheduler.plugins.get(name)?.type;
    if (type !== 'openai-parser' && type !== 'passthrough-parser' && type !== 'anthropic-parser' && type !== 'vllmhttp-parser') {
      throw new Error(`parser ${JSON.stringify(name)} is a ${String(type)}, not a parser`);
    }
    return { name, type };
  };
  const list = config?.requestHandler?.parsers;
  if (list !== undefined && list.length > 0) return ParserRegistry.of(list.map((p) => refOf(p.pluginRef)));
  const single = config?.parser?.pluginRef;
  return ParserRegistry.everyPath(single !== undefined ? refOf(single) : { name: 'openai-parser', type: 'openai-parser' });
}

/** Whether a body's first non-blank byte opens a JSON object or array. */
function looksLikeJson(body: Buffer): boolean {
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    return c === 0x7b || c === 0x5b;
  }
  return false;
}

/** An `ip:port` entry as an endpoint key (IPv6 hosts bracketed), or undefined when the port is not a port. */
function portOf(hostPort: string): number | undefined {
  const port = Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? port : undefined;
}

function hostOf(hostPort: string): string {
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(hostPort);
  if (bracket) return bracket[1];
  const i = hostPort.lastIndexOf(':');
  return i > 0 && hostPort.indexOf(':') === i ? hostPort.slice(0, i) : hostPort;
}

/** Fewest requests queued, running and in flight from this EPP; ties broken at random so idle pools spread. */
export function leastLoaded(candidates: readonly EndpointSnapshot[], random: () => number): EndpointSnapshot {
  const load = (s: EndpointSnapshot) => s.metrics.waitingQueueSize + s.metrics.runningQueueSize + s.activeRequests;
  let best: EndpointSnapshot[] = [];
  let bestLoad = Infinity;
  for (const s of candidates) {
    const l = load(s);
    if (l < bestLoad) {
      best = [s];
      bestLoad = l;
    } else if (l === bestLoad) {
      best.push(s);
    }
  }
  return best[Math.min(best.length - 1, Math.floor(random() * best.length))];
}


/** GIE v1.5.0's and llm-d-router v0.10.0's default usage limit (`usagelimits.DefaultPolicy()`: a static 1.0). */
const DEFAULT_USAGE_LIMIT_POLICY = new StaticUsageLimitPolicy('static-usage-limit-policy', 1);

/**
 * The pool detector the config's `saturationDetector` names, and the usage-limit policy that
 * `flowControl.usageLimitPolicyPluginRef` names (static, priority-holdback or soft-reflective), else a static 1.0 (GIE
 * v1.5.0 `flowcontrol/config.go`: the default policy's threshold).
 */
function saturationDetectorOf(scheduler: Scheduler): { detector: SaturationDetector | undefined; usageLimitPolicy: UsageLimitPolicyPlugin } {
  // `config?.`: test doubles of the scheduler may carry none.
  const ref = scheduler.config?.saturationDetector?.pluginRef;
  const detector = ref !== undefined ? (scheduler.plugins.get(ref) as SaturationDetector | undefined) : undefined;
  const limitRef = scheduler.config?.flowControl?.usageLimitPolicyPluginRef;
  const policy = limitRef !== undefined ? scheduler.plugins.get(limitRef) : undefined;
  return { detector, usageLimitPolicy: policy instanceof UsageLimitPolicyPlugin ? policy : DEFAULT_USAGE_LIMIT_POLICY };
}
