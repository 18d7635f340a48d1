/**
 * Request control: the `RequestDirector` the ext_proc handler calls. It turns one complete request into a pick (parse
 * the body, snapshot the pool, run the scheduler), keeps the in-flight count of the chosen endpoint honest until the
 * response ends, and records the request metrics. It knows nothing of gRPC; the scheduler knows nothing of it.
 */
import type { Datastore } from '../datastore/datastore';
import type { EndpointSnapshot } from '../datastore/types';
import { rejectWith, type IncomingRequest, type ReleaseOutcome, type RequestDirector, type RouteDecision } from '../extproc/request-director';
import type { EppCollectors } from '../metrics';
import type { Scheduler } from '../scheduling/scheduler';
import { SchedulingError, type LLMRequest, type SchedulingResult } from '../scheduling/types';
import { parseRequestBody, RequestBodyError, type OpenAiErrorOptions } from '@kvroute/protocol/openai';

/**
 * Where a proxy may restrict the candidates (the Endpoint Picker protocol's subset hint, GIE proposal 004): request
 * metadata namespace `envoy.lb.subset_hint`, key `x-gateway-destination-endpoint-subset`, a list of `ip:port`.
 */
export const SUBSET_HINT_NAMESPACE = 'envoy.lb.subset_hint';
export const SUBSET_HINT_KEY = 'x-gateway-destination-endpoint-subset';

/** Distinct `model_name` label values kept before the rest are counted as "other": clients choose the model string. */
export const MAX_MODEL_LABELS = 64;

export interface DirectorOptions {
  readonly datastore: Datastore;
  readonly scheduler: Scheduler;
  /** Request metrics; omitted in tests that do not look at them. */
  readonly metrics?: EppCollectors;
  /** Pool name for error messages. */
  readonly poolName?: string;
  /** Uniform [0, 1) for tie-breaks among equally loaded endpoints. @default Math.random */
  readonly random?: () => number;
  /** Monotonic seconds. @default performance-based */
  readonly monotonicSeconds?: () => number;
  /** Where scheduler failures are reported before the request falls back to the least-loaded endpoint. */
  readonly onInternalError?: (error: Error, requestId: string) => void;
}

interface Ticket {
  readonly endpointKey: string;
  readonly request?: LLMRequest;
  readonly result?: SchedulingResult;
  readonly model?: string;
  readonly started: number;
}

/** Error codes in `inference_model_request_error_total`, as GIE names them. */
const ERROR_CODES: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  429: 'InferencePoolResourceExhausted',
  503: 'ServiceUnavailable',
};

export class SchedulingDirector implements RequestDirector {
  private readonly random: () => number;
  private readonly monotonicSeconds: () => number;
  private readonly modelLabels = new Set<string>();

  constructor(private readonly options: DirectorOptions) {
    this.random = options.random ?? Math.random;
    this.monotonicSeconds = options.monotonicSeconds ?? (() => performance.now() / 1000);
  }

  async route(req: IncomingRequest): Promise<RouteDecision> {
    const started = this.monotonicSeconds();
    const candidates = this.candidates(req);
    if (candidates.length === 0) {
      return this.reject(503, `no ready endpoint in pool ${this.options.poolName ?? ''}`.trim(), undefined, { code: 'no_ready_endpoints' });
    }

    // A request without a body (GET /v1/models) has no prompt to match: send it where it waits least.
    if (req.body === undefined) {
      const target = leastLoaded(candidates, this.random);
      this.options.datastore.acquire(target.endpoint.key);
      return { kind: 'route', endpoint: target.endpoint.key, ticket: { endpointKey: target.endpoint.key, started } satisfies Ticket };
    }

    let parsed;
    try {
      parsed = parseRequestBody(req.body);
    } catch (e) {
      if (e instanceof RequestBodyError) return this.reject(400, e.message, undefined, { param: e.param, code: e.code });
      throw e;
    }
    const request: LLMRequest = {
      requestId: req.requestId,
      model: parsed.model ?? '',
      prompt: parsed.prompt,
      headers: Object.fromEntries(req.headers),
    };

    const model = this.modelLabel(parsed.model ?? '');
    let result: SchedulingResult | undefined;
    let key: string;
    try {
      result = this.options.scheduler.schedule(request, candidates);
      this.options.scheduler.preRequest(request, result);
      key = result.target.endpoint.key;
    } catch (e) {
      if (e instanceof SchedulingError) {
        return e.reason === 'saturated'
          ? this.reject(429, `every endpoint is saturated: ${e.message}`, model, { code: 'pool_saturated' })
          : this.reject(503, e.message, model, { code: 'no_ready_endpoints' });
      }
      // A scheduler bug must not fail the request (the gateway runs with failure_mode_allow for the same reason):
      // count it, and send the request where it waits least, without cache affinity.
      this.options.onInternalError?.(e as Error, req.requestId);
      this.options.metrics?.requestErrorTotal.inc({ model_name: model, target_model_name: model, error_code: 'Internal' });
      result = undefined;
      key = leastLoaded(candidates, this.random).endpoint.key;
    }
    this.options.datastore.acquire(key);
    const m = this.options.metrics;
    if (m) {
      const labels = { model_name: model, target_model_name: model };
      m.requestTotal.inc(labels);
      m.requestSizes.observe(labels, req.body.length);
      m.runningRequests.inc({ model_name: model });
    }
    const ticket: Ticket = { endpointKey: key, request, result, model, started };
    return { kind: 'route', endpoint: key, ticket };
  }

  responseHeaders(ticket: unknown, headers: ReadonlyMap<string, string>): Readonly<Record<string, string>> | undefined {
    const t = ticket as Ticket;
    if (!t.request || !t.result) return undefined;
    const set = this.options.scheduler.postResponse(t.request, { headers: Object.fromEntries(headers) }, t.result.target.endpoint);
    return Object.keys(set).length > 0 ? set : undefined;
  }

  release(ticket: unknown, outcome: ReleaseOutcome): void {
    const t = ticket as Ticket;
    this.options.datastore.release(t.endpointKey);
    const m = this.options.metrics;
    if (m && t.model !== undefined) {
      m.runningRequests.dec({ model_name: t.model });
      if (outcome === 'completed') {
        m.requestDuration.observe({ model_name: t.model, target_model_name: t.model }, this.monotonicSeconds() - t.started);
      }
    }
  }

  /** The ready endpoints, narrowed to a proxy's subset hint when it sent one (an empty hint means none qualify). */
  private candidates(req: IncomingRequest): EndpointSnapshot[] {
    const all = this.options.datastore.snapshot();
    const hint = req.filterMetadata[SUBSET_HINT_NAMESPACE]?.[SUBSET_HINT_KEY];
    if (!Array.isArray(hint)) return all;
    // The hint lists ip:port, but ports are ignored as upstream does: the pool has one target port.
    const hosts = new Set(hint.filter((h): h is string => typeof h === 'string').map(hostOf));
    return all.filter((s) => hosts.has(s.endpoint.address));
  }

  /** The request's model as a metric label: its own name for the first MAX_MODEL_LABELS names, then "other". */
  private modelLabel(model: string): string {
    if (this.modelLabels.has(model)) return model;
    if (this.modelLabels.size >= MAX_MODEL_LABELS) return 'other';
    this.modelLabels.add(model);
    return model;
  }

  private reject(status: number, message: string, model: string | undefined, error: OpenAiErrorOptions): RouteDecision {
    const m = this.options.metrics;
    if (m) {
      const name = model ?? '';
      m.requestErrorTotal.inc({ model_name: name, target_model_name: name, error_code: ERROR_CODES[status] ?? String(status) });
    }
    return rejectWith(status, message, error);
  }
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

