/**
 * The ext_proc HTTP filter, Envoy's `source/extensions/filters/http/ext_proc/ext_proc.cc`: one `Process` stream to
 * the EPP per request, carrying the request phase and the response phase (each a state machine of its own), the
 * `envoy.lb` dynamic metadata the router reads the pick from, and ImmediateResponse. When the stream fails while it is
 * open the failure policy decides between going on without the EPP and a local reply (onGrpcError only checks
 * `processing_complete_`, not whether an answer was owed: `ext_proc.cc` @ v1.35.0 L1648-1673). The stream is closed
 * the way Envoy closes it (END_STREAM + RST) when the exchange ends, or earlier where the release does
 * (`stream-lifetime.ts`).
 */
import { jsonToStruct, structToJson, type JsonValue, type ProcessingRequest } from '@kvroute/protocol/envoy';
import type { Downstream } from './downstream';
import type { Endpoint } from './endpoints';
import { EMPTY_BODY, type DecodedImmediateResponse, type DecodedProcessingResponse } from './ext-proc-answers';
import type { ExtProcCluster } from './ext-proc-cluster';
import type { ExtProcSession } from './extproc-client';
import type { Direction, FailureKind, FailurePolicy } from './failure-policy';
import { applyHeaderMutation, HeaderList, InvalidMutation, MutationCounts, type DecodedHeaderMutation, type MutationOptions, type MutationTarget } from './headers';
import type { ResolvedOptions } from './options';
import { RequestPhase } from './request-phase';
import { ResponsePhase } from './response-phase';
import type { ResponseFilter, ResponseRelay } from './response-relay';
import { LB_NAMESPACE, SERVED_HEADER, type Router } from './router';
import type { StatsCollector } from './stats';
import { closesAtResponseHeaders, isLastAnswer, responseNeedsNothing, type LifetimeModes } from './stream-lifetime';

/**
 * Where the client's body goes: through the filter, straight upstream, or nowhere. `drain`: its bytes are dropped but
 * its end (and trailers) still end the upstream request, as Envoy drains every chunk after a CONTINUE_AND_REPLACE
 * with a body mutation and lets the end of stream and the trailers continue (`ext_proc.cc` @ v1.35.0 Filter::onData,
 * `bodyReplaced()`).
 */
export type RequestBodyRoute = 'filter' | 'upstream' | 'drain' | 'discard';

/** What the filter asks of the exchange it sits in (Envoy's decoder/encoder filter callbacks). */
export interface FilterHost {
  readonly requestBodyRoute: RequestBodyRoute;
  requestBodyTo(route: RequestBodyRoute): void;
  /**
   * Starts the upstream request on the route (override_host, then the fallback policy), or answers 404 when no route
   * matches; later calls do nothing.
   */
  route(): void;
  /** The route cache is cleared: `route()` matches the route again on the headers as they are then. */
  clearRouteCache(): void;
  /**
   * Ends the exchange with a response of the gateway's own (Envoy's sendLocalReply); `grpcStatus` is the gRPC status
   * a gRPC client gets (default: mapped from `status`).
   */
  sendLocalReply(status: number, body: string | Buffer, headers?: HeaderList, grpcStatus?: number): void;
}

/** What the phases ask of the filter. */
export interface PhaseFilter {
  /** The stream is open (Envoy's `!processing_complete_`). */
  readonly active: boolean;
  send(msg: ProcessingRequest, direction: Direction): void;
  /** Applies a header mutation under Envoy's rules and counts what was refused; throws `InvalidMutation` (a 500). */
  mutate(list: HeaderList, mutation: DecodedHeaderMutation | null | undefined, target: MutationTarget, options?: MutationOptions): void;
  /** A request answer with `clear_route_cache` set; `withHeaderMutation`: it has one (else Envoy ignores the flag). */
  clearRouteCache(withHeaderMutation: boolean): void;
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
  /** Null once the EPP is out of this request (closed, failed, or ignored): Envoy's `processing_complete_`. */
  private session: ExtProcSession | null = null;
  /** Untyped dynamic metadata of the namespace `envoy.lb` (merged, as Envoy does); the router reads the pick here. */
  readonly lbMetadata: { [key: string]: JsonValue } = {};
  /** Whether the stream's dynamic metadata has the `envoy.lb` namespace at all (Envoy forwards only one it has). */
  private lbMetadataPresent = false;
  readonly request: RequestPhase;
  /** Null when nothing of the response goes to the EPP (headers and trailers SKIP, body NONE). */
  readonly response: ResponsePhase | null;
  private readonly lifetime: LifetimeModes;
  /** The answer being dispatched turned out spurious (Envoy does not count it as received). */
  private spuriousAnswer = false;

  constructor(private readonly ctx: FilterContext, private readonly client: ExtProcCluster, private readonly parts: FilterParts) {
    const { opts } = ctx;
    this.lifetime = {
      requestFullDuplex: opts.processingMode === 'full-duplex',
      requestTrailersSend: opts.requestTrailerMode === 'send',
      responseHeadersSend: opts.responseHeaderMode === 'send',
      responseFullDuplex: opts.responseBodyMode === 'full-duplex',
      responseTrailersSend: opts.responseTrailerMode === 'send',
    };
    const m = this.lifetime;
    this.request = new RequestPhase(this, parts.host, parts.downstream, parts.router, {
      duplex: m.requestFullDuplex,
      trailersThroughEpp: m.requestTrailersSend,
      maxBodyBytes: m.requestFullDuplex ? opts.maxRequestBodyBytes : opts.requestBodyBufferLimitBytes,
    });
    this.response = responseNeedsNothing(m) ? null : new ResponsePhase(this, parts.relay, {
      headers: m.responseHeadersSend,
      body: m.responseFullDuplex,
      trailers: m.responseTrailersSend,
    });
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
      onFailure: (kind, detail, code) => this.onStreamFailure(kind, detail, code),
      owed: (direction) => this.timedAnswerOwed(direction),
    });
    // A stream refused at once (no healthy EPP host) fails before anything is sent, as inside Envoy's openStream
    // (`ext_proc.cc` @ v1.35.0 openStream L613-620): failing open, the request goes on untouched, its Content-Length kept, since
    // decodeHeaders drops it only while processing is not complete (L755-756); failing closed, the 500 comes now.
    if (this.session.failIfNotStarted()) return;
    this.send({
      request_headers: { headers: downstream.headers.toHeaderMap(), end_of_stream: !downstream.hasBody },
      protocol_config: {
        request_body_mode: opts.processingMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'BUFFERED',
        response_body_mode: opts.responseBodyMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'NONE',
        send_body_without_waiting_for_header_response: false,
      },
    }, 'request');
    // Envoy drops Content-Length once the headers went out in this mode: the EPP may change the body, and a fail-open
    // goes on without what it held (decodeHeaders, shouldRemoveContentLength, `ext_proc.cc` @ v1.35.0 L755-756).
    if (this.lifetime.requestFullDuplex) downstream.headers.remove('content-length');
  }

  send(msg: ProcessingRequest, direction: Direction): void {
    const session = this.session;
    if (!session || !session.active) return;
    // Envoy sets `metadata_context` on every message it builds, headers, body and trailers alike: the stream's dynamic
    // metadata of each forwarding namespace it has, here `envoy.lb` as kvroute's EnvoyFilter forwards it
    // (Filter::addDynamicMetadata, `*req.mutable_metadata_context() = forwarding_metadata`, called from
    // buildHeaderRequest, setupBodyChunk and sendTrailers, `ext_proc.cc` @ v1.35.0 L1347-1395, from L979, L1222 and
    // L1244). So the EPP gets its own pick back with the response, and the endpoint that served where the cluster
    // writes it (`recordSelectedHost`).
    msg.metadata_context ??= { filter_metadata: this.lbMetadataPresent ? { [LB_NAMESPACE]: jsonToStruct(this.lbMetadata) } : {} };
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

  mutate(list: HeaderList, mutation: DecodedHeaderMutation | null | undefined, target: MutationTarget, options: MutationOptions = {}): void {
    const counts = new MutationCounts();
    try {
      applyHeaderMutation(list, mutation, target, { ...options, counts });
    } finally {
      // Envoy counts a refusal even when the mutation then fails (mutation_utils.cc @ v1.35.0 L121-196).
      this.ctx.stats.rejectedHeaderMutations += counts.envoy + counts.proxy;
      this.ctx.stats.envoy.inc('rejected_header_mutations', counts.envoy);
    }
  }

  clearRouteCache(withHeaderMutation: boolean): void {
    this.ctx.stats.routeCacheClears++;
    // Envoy clears the route cache only beside a header mutation, and with route_cache_action DEFAULT (kvroute's
    // EnvoyFilter sets none) only when asked (DecodingProcessorState::clearRouteCache, `processor_state.cc` @ v1.35.0
    // L637-683). The router then matches the route again on the mutated headers.
    if (withHeaderMutation) this.parts.host.clearRouteCache();
    else this.ctx.stats.envoy.inc('clear_route_cache_ignored');
  }

  /** An answer out of order: the failure policy decides, as for a stream error (`ext_proc.cc` @ v1.35.0 L1620-1643). */
  spurious(detail: string): void {
    this.spuriousAnswer = true;
    // Every out-of-order answer counts, fail open or not (onReceiveMessage @ v1.35.0 L1623).
    this.ctx.stats.envoy.inc('spurious_msgs_received');
    // FAILED_PRECONDITION, the status Envoy's processing code uses for "spurious message".
    this.onStreamFailure('spurious', `spurious message: ${detail}`, 9);
  }

  /**
   * Envoy's handleErrorResponse (`ext_proc.cc` @ v1.35.0 L1452-1462): a 500 local reply whose ImmediateResponse has
   * no body, the message only in the response code details (access logs), so the client gets an empty 500.
   */
  processingError(detail: string): void {
    this.ctx.stats.envoy.inc('immediate_responses_sent');
    this.ctx.warn('processing-error', 'ext_proc answer refused; 500', { details: detail });
    this.closeStream();
    this.parts.router.abort();
    this.parts.host.sendLocalReply(500, EMPTY_BODY);
  }

  /** Envoy's closeStream(): END_STREAM + RST, and the EPP is out of this request. */
  closeStream(): void {
    this.session?.close();
    this.session = null;
  }

  /** The exchange is over, completed or not: Filter::onDestroy closes the stream the same way either way. */
  onDestroy(): void {
    this.closeStream();
  }

  /**
   * The upstream's response headers reach the filter (encodeHeaders): the response phase that is to see them, or null.
   * On Envoy >= 1.37 a stream with nothing left to do on the response is closed right here.
   */
  onResponseHeaders(): ResponseFilter | null {
    if (!this.session) return null;
    if (this.ctx.opts.envoySemantics.closesStreamAfterLastResponse && closesAtResponseHeaders(this.lifetime)) {
      this.closeStream();
      return null;
    }
    return this.response;
  }

  /** Lets go of every kept body byte. */
  dropBuffers(): void {
    this.request.drop();
    this.response?.drop();
  }

  /** Whether `direction`'s message timer should run: the EPP owes an answer there that the failure policy times. */
  private timedAnswerOwed(direction: Direction): boolean {
    if (!this.session) return false;
    const owes = direction === 'request' ? this.request.owes() : this.response?.owes() ?? null;
    return owes !== null && this.ctx.failurePolicy.timesOut(direction, owes);
  }

  private onMessage(msg: DecodedProcessingResponse): void {
    if (this.parts.downstream.closed || !this.session) return;
    // Envoy consumes such a message only to extend its timer, whatever else it carries (Filter::onReceiveMessage and
    // onNewTimeout, `ext_proc.cc` @ v1.35.0): honoured when 1 ms <= the duration <= max_message_timeout and the timer
    // runs; counted either way.
    if (msg.override_message_timeout) {
      const ms = durationMs(msg.override_message_timeout);
      const honoured = ms >= 1 && ms <= this.ctx.opts.maxMessageTimeoutMs && this.session.restartTimer(ms);
      this.ctx.stats.envoy.inc(honoured ? 'override_message_timeout_received' : 'override_message_timeout_ignored');
      return;
    }
    // Envoy takes dynamic metadata only from a message it can dispatch (setDecoderDynamicMetadata /
    // setEncoderDynamicMetadata in each case of the switch, `ext_proc.cc` @ v1.35.0 L1558-1615): a message with no
    // response member is spurious and its metadata (a pick included) is dropped.
    if (msg.response) this.mergeMetadata(msg);
    this.spuriousAnswer = false;
    try {
      this.dispatch(msg);
      if (!this.spuriousAnswer) this.ctx.stats.envoy.inc('stream_msgs_received');
    } catch (err) {
      // Envoy counts an answer it refuses to apply as received, then replies 500 (onReceiveMessage L1641-1645).
      this.ctx.stats.envoy.inc('stream_msgs_received');
      const detail = err instanceof Error ? err.message : String(err);
      if (!(err instanceof InvalidMutation)) this.ctx.warn('internal', 'gateway error while applying an ext_proc answer', { error: detail });
      this.processingError(detail);
      return;
    }
    // Envoy >= 1.37 closes the stream after the last answer it needs (closeGrpcStreamIfLastRespReceived).
    if (this.session && msg.response && this.ctx.opts.envoySemantics.closesStreamAfterLastResponse && isLastAnswer(msg.response, this.lifetime, {
      requestHasNoBody: !this.parts.downstream.hasBody,
      requestTrailersReceived: this.parts.downstream.trailers !== null,
      requestBodyEndOfStream: this.request.bodyEndOfStream,
      responseHasNoBody: this.response?.hasNoBody ?? false,
      responseCompleteWithoutTrailers: this.parts.relay.upstreamCompleteWithoutTrailers,
      responseBodyEndOfStream: this.response?.bodyEndOfStream ?? false,
    })) this.closeStream();
  }

  private dispatch(msg: DecodedProcessingResponse): void {
    const { request, response } = this;
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
  }

  private mergeMetadata(msg: DecodedProcessingResponse): void {
    if (!msg.dynamic_metadata?.fields) return;
    const ns = structToJson(msg.dynamic_metadata)[LB_NAMESPACE];
    if (ns && typeof ns === 'object' && !Array.isArray(ns)) {
      Object.assign(this.lbMetadata, ns);
      this.lbMetadataPresent = true;
    }
  }

  /**
   * The cluster chose `endpoint` for an attempt: with `selected_host_key` (Envoy >= 1.38, as kvroute's EnvoyFilter sets
   * it from Istio 1.30) `override_host` writes it into `envoy.lb` (OverrideHostLoadBalancer, `addSelectedHostKey`
   * @ v1.38.0), the last attempt's winning, and ext_proc forwards it with the response to the EPP.
   */
  recordSelectedHost(endpoint: Endpoint): void {
    if (!this.ctx.opts.envoySemantics.writesSelectedHostKey) return;
    this.lbMetadata[SERVED_HEADER] = endpoint.address;
    this.lbMetadataPresent = true;
  }

  /**
   * Filter::sendImmediateResponse (`ext_proc.cc` @ v1.35.0 L1728-1763) through the filter manager's local reply
   * (`source/common/http/utility.cc` prepareLocalReply @ v1.35.0 L709-781):
   * - the status: 200 when unset, and 200 for anything below 200 (MutationUtils::isValidHttpStatus);
   * - the headers: the mutation runs on a map holding only `:status`, under the filter's configured (default) rules,
   *   so `x-envoy…` and routing headers are refused and counted, and a failure is only logged; the local reply then
   *   sets `:status` itself, so the EPP cannot change it;
   * - then, with a body, Content-Length is the body's and Content-Type `text/plain` unless the EPP set one; without a
   *   body, both are removed;
   * - `details` go to the response code details only; `grpc_status` matters only for a gRPC request (the local
   *   reply is then gRPC's, see `Downstream.sendLocalReply`).
   */
  private onImmediateResponse(ir: DecodedImmediateResponse): void {
    this.ctx.stats.immediateResponses++;
    this.ctx.stats.envoy.inc('immediate_responses_sent');
    let status = this.ctx.statusCodeOf(ir.status?.code ?? undefined);
    if (!ir.status || status < 200) status = 200;
    const body = ir.body ?? EMPTY_BODY;
    const headers = new HeaderList([[':status', String(status)]]);
    try {
      this.mutate(headers, ir.headers, 'local-reply');
    } catch (err) {
      this.ctx.warn('immediate', 'ImmediateResponse header mutation failed', { error: String(err) });
    }
    headers.remove(':status');
    if (body.length > 0) {
      if (!headers.has('content-type')) headers.set('content-type', 'text/plain');
    } else {
      headers.remove('content-type');
    }
    this.closeStream();
    const grpcStatus = ir.grpc_status ? ir.grpc_status.status ?? 0 : undefined;
    this.parts.host.sendLocalReply(status, body, headers, grpcStatus);
  }

  /** The stream let the request down while open: a session failure (the session closed itself) or a spurious answer. */
  private onStreamFailure(kind: FailureKind, detail: string, grpcCode: number): void {
    if (this.parts.downstream.closed || !this.session) return;
    this.closeStream();
    const { opts, stats, warn } = this.ctx;
    const fullDuplexBodyReceived = (opts.processingMode === 'full-duplex' && this.request.bodyReceived)
      || (opts.responseBodyMode === 'full-duplex' && (this.response?.bodyReceived ?? false));
    const outcome = this.ctx.failurePolicy.onStreamFailure({ kind, detail, grpcCode, fullDuplexBodyReceived });
    countEnvoyFailure(stats, kind, outcome.action === 'fail-open');
    if (outcome.action === 'fail-closed') {
      stats.failClosed++;
      warn(`fail-closed:${kind}`, 'ext_proc failed; failing closed', { kind, detail, details: outcome.details });
      this.parts.router.abort();
      // The ImmediateResponse Envoy builds for these has a status and details but no body: the client gets an empty
      // 500 or 504, the details reach only the access log (`ext_proc.cc` @ v1.35.0 onGrpcError L1648-1673,
      // onMessageTimeout L1686-1713, handleErrorResponse L1452-1462).
      this.parts.host.sendLocalReply(outcome.status, EMPTY_BODY);
      return;
    }
    stats.failOpen(kind);
    warn(`fail-open:${kind}`, 'ext_proc failed; failing open', { kind, detail });
    // clearAsyncState on both directions, then continueIfNecessary.
    const dropped = this.request.continueWithout() + (this.response?.continueWithout() ?? 0);
    stats.dropped(dropped);
    this.parts.downstream.resume('grpc');
  }
}

/** A protobuf Duration in whole milliseconds, as Envoy's DurationUtil::durationToMilliseconds truncates it; NaN when invalid. */
function durationMs(d: { seconds?: string | number | null; nanos?: number | null }): number {
  const seconds = Number(d.seconds ?? 0);
  const nanos = Number(d.nanos ?? 0);
  if (!Number.isFinite(seconds) || !Number.isInteger(nanos) || nanos < -999_999_999 || nanos > 999_999_999) return NaN;
  return seconds * 1000 + Math.trunc(nanos / 1e6);
}

/**
 * Envoy's ext_proc counters for a stream that let the request down (`envoy-stats.ts` has the sources): onGrpcError,
 * onGrpcClose(WithStatus), onMessageTimeout and the spurious branch of onReceiveMessage. The close of a live stream is
 * counted by the session itself (`streams_closed` from closeStream).
 */
function countEnvoyFailure(stats: StatsCollector, kind: FailureKind, failOpen: boolean): void {
  const envoy = stats.envoy;
  switch (kind) {
    case 'unavailable':
    case 'error':
      envoy.inc('streams_failed');
      envoy.inc('server_half_closed');
      // failure_mode_allow: onGrpcError → onGrpcClose, which counts the close (and, from 1.37, the half-close again).
      if (failOpen) {
        envoy.inc('streams_closed');
        envoy.inc('server_half_closed');
        envoy.inc('failure_mode_allowed');
      } else {
        envoy.inc('immediate_responses_sent');
      }
      return;
    case 'closed':
      envoy.inc('streams_closed');
      envoy.inc('server_half_closed');
      return;
    case 'timeout':
      envoy.inc('message_timeouts');
      envoy.inc(failOpen ? 'failure_mode_allowed' : 'immediate_responses_sent');
      return;
    case 'spurious':
      if (failOpen) envoy.inc('failure_mode_allowed');
      else envoy.inc('immediate_responses_sent');
      return;
  }
}
