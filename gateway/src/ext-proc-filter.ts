/**
 * The ext_proc HTTP filter, Envoy's `source/extensions/filters/http/ext_proc/ext_proc.cc`: one `Process` stream to
 * the EPP per request, carrying the request phase and the response phase (each a state machine of its own), the
 * `envoy.lb` dynamic metadata the router reads the pick from, and ImmediateResponse. When the stream fails the
 * failure policy decides between going on without the EPP and a local reply.
 */
import { structToJson, type JsonValue, type ProcessingRequest } from '@kvroute/protocol/envoy';
import type { Downstream } from './downstream';
import { EMPTY_BODY, type DecodedImmediateResponse, type DecodedProcessingResponse } from './ext-proc-answers';
import type { ExtProcClient, ExtProcSession, ProcFailure } from './extproc-client';
import type { Direction, FailurePolicy } from './failure-policy';
import { applyHeaderMutation, HeaderList, InvalidMutation, type DecodedHeaderMutation, type MutationTarget } from './headers';
import type { ResolvedOptions } from './options';
import { RequestPhase } from './request-phase';
import { ResponsePhase } from './response-phase';
import type { ResponseRelay } from './response-relay';
import { LB_NAMESPACE, type Router } from './router';
import type { StatsCollector } from './stats';

/** Where the client's body goes: through the filter, straight upstream, or nowhere. */
export type RequestBodyRoute = 'filter' | 'upstream' | 'discard';

/** What the filter asks of the exchange it sits in (Envoy's decoder/encoder filter callbacks). */
export interface FilterHost {
  readonly requestBodyRoute: RequestBodyRoute;
  requestBodyTo(route: RequestBodyRoute): void;
  /** Starts the upstream request (override_host, then the fallback policy); later calls do nothing. */
  route(): void;
  /** Ends the exchange with a response of the gateway's own (Envoy's sendLocalReply). */
  sendLocalReply(status: number, body: string | Buffer, headers?: HeaderList): void;
}

/** What the phases ask of the filter. */
export interface PhaseFilter {
  send(msg: ProcessingRequest, direction: Direction): void;
  mutate(list: HeaderList, mutation: DecodedHeaderMutation | null | undefined, target: MutationTarget, replacing?: boolean): void;
  countRouteCacheClear(): void;
  /** An answer out of order. */
  spurious(detail: string): void;
  /** An answer Envoy refuses to apply: a 500 local reply. */
  processingError(detail: string): void;
}

export interface FilterContext {
  readonly opts: ResolvedOptions;
  readonly stats: StatsCollector;
  readonly failurePolicy: FailurePolicy;
  /** `envoy.type.v3.StatusCode` name or number → HTTP status (0 when unknown). */
  statusCodeOf(code: string | number | undefined): number;
  warn(key: string, msg: string, fields?: Record<string, unknown>): void;
}

/** The parts of the exchange the filter works with. */
export interface FilterParts {
  readonly host: FilterHost;
  readonly downstream: Downstream;
  readonly router: Router;
  readonly relay: ResponseRelay;
}

export class ExtProcFilter implements PhaseFilter {
  /** Null once the EPP is out of this request (finished, failed, or ignored). */
  private session: ExtProcSession | null = null;
  /** Untyped dynamic metadata of the namespace `envoy.lb` (merged, as Envoy does); the router reads the pick here. */
  readonly lbMetadata: { [key: string]: JsonValue } = {};
  /** A body chunk has gone to the EPP: some Envoy releases treat a failure after that differently. */
  private bodySent = false;
  readonly request: RequestPhase;
  /** Null with response header mode SKIP: the EPP never sees the response. */
  readonly response: ResponsePhase | null;

  constructor(private readonly ctx: FilterContext, private readonly client: ExtProcClient, private readonly parts: FilterParts) {
    const { opts } = ctx;
    this.request = new RequestPhase(this, parts.host, parts.downstream, parts.router, {
      duplex: opts.processingMode === 'full-duplex',
      maxBodyBytes: opts.maxRequestBodyBytes,
    });
    this.response = opts.responseHeaderMode === 'send' ? new ResponsePhase(this, parts.relay, opts.responseBodyMode === 'full-duplex') : null;
  }

  get active(): boolean {
    return this.session !== null;
  }

  /** Opens the stream and sends the request headers (with `protocol_config`, as Envoy does on the first message). */
  start(): void {
    const { opts } = this.ctx;
    const { downstream } = this.parts;
    this.session = this.client.open({
      onMessage: (m) => this.onMessage(m),
      onFailure: (kind, detail) => this.onStreamFailure(kind, detail),
      owed: () => this.timedAnswerOwed(),
    });
    this.send({
      request_headers: { headers: downstream.headers.toHeaderMap(), end_of_stream: !downstream.hasBody },
      metadata_context: { filter_metadata: {} },
      protocol_config: {
        request_body_mode: opts.processingMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'BUFFERED',
        response_body_mode: opts.responseBodyMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'NONE',
        send_body_without_waiting_for_header_response: false,
      },
    }, 'request');
  }

  send(msg: ProcessingRequest, direction: Direction): void {
    const session = this.session;
    if (!session || !session.active) return;
    if (msg.request_body || msg.response_body) this.bodySent = true;
    if (session.send(msg)) return;
    if (!session.active) return;
    // The stream's buffer is full: hold back the side that produced the message until it drains.
    if (direction === 'request') this.parts.downstream.pause('grpc');
    else this.parts.relay.pause('grpc');
    session.onDrain(() => {
      this.parts.downstream.resume('grpc');
      this.parts.relay.resume('grpc');
    });
  }

  mutate(list: HeaderList, mutation: DecodedHeaderMutation | null | undefined, target: MutationTarget, replacing = false): void {
    this.ctx.stats.rejectedHeaderMutations += applyHeaderMutation(list, mutation, target, replacing);
  }

  countRouteCacheClear(): void {
    // Every route leads to the same cluster, so re-matching would change nothing; it is only counted.
    this.ctx.stats.routeCacheClears++;
  }

  /** Envoy ignores the processor for the rest of the request after an answer out of order, whatever the failure mode. */
  spurious(detail: string): void {
    if (!this.session) return;
    this.session.cancel();
    this.session = null;
    this.ctx.stats.failOpen('spurious');
    this.ctx.warn('spurious', 'spurious ext_proc message; ignoring the EPP for this request', { detail });
    this.continueWithout();
  }

  processingError(detail: string): void {
    this.finish();
    this.parts.router.abort();
    this.parts.host.sendLocalReply(500, `ext_proc_error: ${detail}\n`);
  }

  /** Half-closes the stream: the EPP is done with this request. */
  finish(): void {
    this.session?.finish();
    this.session = null;
  }

  /** The exchange is over: half-close after a complete one (the EPP's "response over"), reset otherwise. */
  end(complete: boolean): void {
    if (!this.session) return;
    if (complete) this.session.finish();
    else this.session.cancel();
    this.session = null;
  }

  /** Lets go of every kept body byte. */
  dropBuffers(): void {
    this.request.drop();
    this.response?.drop();
  }

  /** Whether the message timer should run: the EPP owes an answer the failure policy times. */
  private timedAnswerOwed(): boolean {
    if (!this.session) return false;
    const policy = this.ctx.failurePolicy;
    const request = this.request.owes();
    if (request && policy.timesOut('request', request)) return true;
    const response = this.response?.owes() ?? null;
    return response !== null && policy.timesOut('response', response);
  }

  private onMessage(msg: DecodedProcessingResponse): void {
    if (this.parts.downstream.closed || !this.session) return;
    // Envoy consumes such a message only to extend its timer (which our EnvoyFilter does not allow), nothing else.
    if (msg.override_message_timeout) return;
    this.mergeMetadata(msg);
    const { request, response } = this;
    try {
      switch (msg.response) {
        case 'request_headers': return request.onHeadersAnswer(msg.request_headers?.response ?? {});
        case 'request_body': return request.onBodyAnswer(msg.request_body?.response ?? {});
        case 'request_trailers': return request.onTrailersAnswer(msg.request_trailers?.header_mutation);
        case 'response_headers':
          if (!response) return this.spurious('unexpected response headers answer');
          return response.onHeadersAnswer(msg.response_headers?.response ?? {});
        case 'response_body':
          if (!response) return this.spurious('unexpected response body answer');
          return response.onBodyAnswer(msg.response_body?.response ?? {});
        case 'response_trailers':
          if (!response) return this.spurious('unexpected response trailers answer');
          return response.onTrailersAnswer(msg.response_trailers?.header_mutation);
        case 'immediate_response': return this.onImmediateResponse(msg.immediate_response ?? {});
        default: return this.spurious('ProcessingResponse with no response member');
      }
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      if (!(err instanceof InvalidMutation)) this.ctx.warn('internal', 'gateway error while applying an ext_proc answer', { error: detail });
      this.processingError(detail);
    }
  }

  private mergeMetadata(msg: DecodedProcessingResponse): void {
    if (!msg.dynamic_metadata?.fields) return;
    const ns = structToJson(msg.dynamic_metadata)[LB_NAMESPACE];
    if (ns && typeof ns === 'object' && !Array.isArray(ns)) Object.assign(this.lbMetadata, ns);
  }

  private onImmediateResponse(ir: DecodedImmediateResponse): void {
    this.ctx.stats.immediateResponses++;
    let status = this.ctx.statusCodeOf(ir.status?.code ?? undefined);
    // Envoy: no status means 200, and a status below 200 is not allowed for a local reply.
    if (!ir.status || status < 200) status = 200;
    const body = ir.body ?? EMPTY_BODY;
    const headers = new HeaderList(body.length > 0 ? [['content-type', 'text/plain']] : []);
    try {
      this.mutate(headers, ir.headers, 'local-reply');
    } catch (err) {
      this.ctx.warn('immediate', 'ImmediateResponse header mutation failed', { error: String(err) });
    }
    this.finish();
    this.parts.host.sendLocalReply(status, body, headers);
  }

  /** The session failed (it has already cancelled itself). */
  private onStreamFailure(kind: ProcFailure, detail: string): void {
    if (this.parts.downstream.closed || !this.session) return;
    this.session = null;
    if (this.request.processed && (this.response?.processed ?? true)) return;
    const { stats, warn } = this.ctx;
    const outcome = this.ctx.failurePolicy.onStreamFailure({ kind, detail, bodySent: this.bodySent });
    if (outcome.action === 'fail-closed') {
      stats.failClosed++;
      warn(`fail-closed:${kind}`, 'ext_proc failed; failing closed', { kind, detail });
      this.parts.router.abort();
      this.parts.host.sendLocalReply(outcome.status, `${outcome.details}\n`);
      return;
    }
    stats.failOpen(kind);
    warn(`fail-open:${kind}`, 'ext_proc failed; failing open', { kind, detail });
    this.continueWithout();
  }

  /** Goes on without the EPP from wherever the exchange is, losing no body byte. */
  private continueWithout(): void {
    if (this.parts.downstream.closed) return;
    if (!this.request.continueWithout()) return;
    if (this.response && !this.response.continueWithout()) return;
    this.parts.downstream.resume('grpc');
  }
}
