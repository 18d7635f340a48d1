/**
 * One ext_proc `Process` stream = one HTTP request and its response. This is the per-stream state machine, kept free of
 * gRPC plumbing (it talks to a `StreamTransport`) so its rules read in one place:
 *
 * Request side, by request body mode:
 * - FULL_DUPLEX_STREAMED (what our EnvoyFilter configures): buffer body chunks until end_of_stream, or until trailers
 *   arrive; route; then send the HeadersResponse (destination header, director headers, clear_route_cache, dynamic
 *   metadata), then the body back as StreamedBodyResponse chunks of at most `maxChunkBytes`, the last one with
 *   end_of_stream unless trailers follow (those are then answered with a TrailersResponse). Envoy's order rule
 *   headers → body → trailers holds because nothing is sent before the whole request is in.
 * - BUFFERED / BUFFERED_PARTIAL: answer the headers with CONTINUE at once; route on the single body message; the
 *   mutations go in the BodyResponse (header mutations apply in that response only in buffered modes).
 * - NONE / STREAMED: Envoy will not show the body before it needs the header answer, so route on headers alone
 *   (`bodyWithheld`) and answer any streamed chunks with CONTINUE.
 * - Headers with end_of_stream (no body) are routed at once in every mode.
 *
 * Response side: headers → CONTINUE; in FULL_DUPLEX_STREAMED each body chunk is echoed unchanged (split at
 * `maxChunkBytes` if larger); in the other modes each body message gets a CONTINUE BodyResponse. The director's ticket is
 * released exactly once: 'completed' at the response's end of stream (headers or body with end_of_stream, or
 * trailers; with response body mode NONE, Envoy's half-close after the response headers); 'cancelled' when the stream
 * is cancelled or closed before that; 'error' when it fails on a protocol error. A half-close while the request is being
 * routed gives the request up at once (Envoy half-closes only when it is done with the stream) and ends the stream.
 *
 * Anything out of order (body before headers, a second request headers message, an empty oneof, undecodable bytes)
 * ends the stream with INVALID_ARGUMENT; Envoy then applies its failure mode. Nothing a peer sends can throw out of
 * this class.
 */
import { randomUUID } from 'crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { structToJson, type JsonValue, type StructObject } from '@kvroute/protocol/envoy';
import { openAiErrorJson } from '@kvroute/protocol/openai';
import { type IncomingRequest, type ReleaseOutcome, type RequestDirector, type RouteDecision } from './request-director';
import type { EncodedAnswers } from './encoded-answers';
import {
  bodyResponse,
  chunk,
  destinationMetadata,
  headerMapToMap,
  HeaderMapView,
  headerMutation,
  headersResponse,
  immediateResponse,
  messageTimeoutOverride,
  isBodyMode,
  streamedBodyChunk,
  trailersResponse,
  type BodyMode,
  type CommonResponse,
  type HttpBody,
  type HttpHeaders,
  type ProcessingRequest,
  type ProcessingResponse,
} from '@kvroute/protocol/envoy';

export interface ExtProcLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface StreamSettings {
  readonly director: RequestDirector;
  /** Used when the first message carries no `protocol_config` (Envoy older than that field, or not sending it). */
  readonly defaultRequestBodyMode: BodyMode;
  readonly defaultResponseBodyMode: BodyMode;
  readonly destinationHeader: string;
  readonly metadataNamespace: string;
  readonly maxChunkBytes: number;
  /** A larger request body gets a 413 local reply instead of being buffered. */
  readonly maxRequestBodyBytes: number;
  /** Whether Envoy's HttpStatus enum defines a code (Envoy rejects a local reply with any other). */
  readonly isValidHttpStatus: (code: number) => boolean;
  readonly logger: ExtProcLogger;
  /**
   * Pre-encoded answers for the common cases; only for a transport whose serializer passes a Buffer through as the
   * encoded message (`extProcServiceDefinition`'s does). Without it every answer is sent as a message object.
   */
  readonly encoded?: EncodedAnswers;
}

export interface StreamTransport {
  /** A message object, or (with `StreamSettings.encoded`) its encoding. */
  send(msg: ProcessingResponse | Buffer): void;
  /** Finish the gRPC stream with OK. */
  end(): void;
  /** Finish the gRPC stream with an error status. */
  fail(code: GrpcStatus, details: string): void;
}

/** What a deserializer yields instead of throwing, so a bad frame becomes a clean stream error with our own message. */
export class MalformedMessage {
  constructor(readonly error: Error) {}
}

type State =
  | 'request-headers'   // waiting for the first message
  | 'request-body'      // collecting the request body
  | 'routing'           // director.route pending; events queue up
  | 'forwarded'         // request answered; waiting for the response headers
  | 'response-body'     // response headers answered; body chunks or trailers may come
  | 'response-done'     // response ended; only Envoy's half-close is expected
  | 'closed';

type Event = { readonly kind: 'message'; readonly msg: ProcessingRequest | MalformedMessage } | { readonly kind: 'half-close' };

/** Where the routing answer goes, which depends on the message that triggered routing. */
type AnswerTo = 'headers' | 'body' | 'trailers';

const MAX_QUEUED_EVENTS = 1024;

/** Body parts kept as sent before a run of them is merged (`keepBodyPart`). */
export const MERGE_PARTS = 1024;
/** A run of `MERGE_PARTS` parts is merged when it holds fewer bytes than this (parts under 1 KiB on average). */
const MERGE_MAX_BYTES = MERGE_PARTS * 1024;

const NO_HEADERS: ReadonlyMap<string, string> = new Map();

class ProtocolError extends Error {}

export class ExtProcStream {
  private state: State = 'request-headers';
  private requestBodyMode: BodyMode;
  private responseBodyMode: BodyMode;
  /** Whether Envoy's protocol_config set the body modes (otherwise they are the configured defaults). */
  private modesAnnounced = false;
  /** The request headers, from the request headers message on (a stream's own empty map was garbage at once). */
  private headers: ReadonlyMap<string, string> = NO_HEADERS;
  private requestId = '';
  /** No `x-request-id` came with the request: the generated one is set on the request for the backend. */
  private requestIdGenerated = false;
  /** When the request headers arrived (`performance.now()`, ms). */
  private receivedAtMs = 0;
  private filterMetadata: Record<string, { [key: string]: JsonValue }> = {};
  private bodyParts: Buffer[] = [];
  private bodyBytes = 0;
  /** `bodyParts` before this index are merged runs of small parts (`keepBodyPart`); those after it arrived as sent. */
  private bodyPartsMerged = 0;
  /** Bytes in `bodyParts` from `bodyPartsMerged` on. */
  private bodyBytesUnmerged = 0;
  private bodyMessages = 0;
  /** BUFFERED_PARTIAL delivered only the first part of a larger body: it can be routed on but not replaced. */
  private partialBody = false;
  private readonly queue: Event[] = [];
  /** Created when the director first asks for the signal (`RequestDirector.decide`), or at `route`. */
  private abort: AbortController | undefined;
  private readonly signal = (): AbortSignal => {
    if (this.abort === undefined) {
      this.abort = new AbortController();
      if (this.state === 'closed' || this.abandoned) this.abort.abort();
    }
    return this.abort.signal;
  };
  private ticket: { value: unknown } | undefined;
  private released = false;
  private responseStarted = false;
  /** How the stream ended, for a decision that arrives after it did. */
  private closeOutcome: ReleaseOutcome = 'cancelled';
  /** Envoy answered the request itself before the EPP routed it (see `abandonRequest`). */
  private abandoned = false;

  constructor(private readonly settings: StreamSettings, private readonly io: StreamTransport) {
    this.requestBodyMode = settings.defaultRequestBodyMode;
    this.responseBodyMode = settings.defaultResponseBodyMode;
  }

  onMessage(msg: ProcessingRequest | MalformedMessage): void {
    this.dispatch({ kind: 'message', msg });
  }

  onHalfClose(): void {
    this.dispatch({ kind: 'half-close' });
  }

  /** The peer went away (RST_STREAM, deadline, connection loss). */
  onCancel(): void {
    if (this.state === 'closed') return;
    this.close('cancelled');
  }

  /** The transport failed underneath us. */
  onTransportError(err: Error): void {
    if (this.state === 'closed') return;
    this.settings.logger.warn('ext_proc stream transport error', { requestId: this.requestId, error: err.message });
    this.close('error');
  }

  private dispatch(ev: Event): void {
    if (this.state === 'closed') return;
    // Response headers while routing are Envoy's own local reply (the upstream cannot answer a request Envoy still
    // holds): handled at once, so a request waiting in flow control stops waiting (see `abandonRequest`).
    if (this.state === 'routing' && ev.kind === 'half-close') {
      // Envoy half-closes only once it is done with the stream: closeStream() (END_STREAM then RST_STREAM) and, with
      // `envoy.reloadable_features.ext_proc_graceful_grpc_close` (1.34+), halfCloseAndWaitForRemoteClose() (END_STREAM
      // alone, then up to `remote_close_timeout_milliseconds` for the processor to end the stream) both follow
      // `processing_complete_ = true`, after which Envoy ignores any answer (ext_proc.cc Filter::onDestroy,
      // closeStreamMaybeGraceful). So the request is given up now, as on a reset: a flow-control wait ends (queued, it
      // would otherwise be dispatched, scheduled and counted in flight for a request no pod will see), a decision still
      // pending is released unused when it comes, and the stream ends as Envoy waits for it to.
      this.abort?.abort();
      this.finish();
      return;
    }
    if (this.state === 'routing' && !isResponseHeaders(ev)) {
      if (this.queue.length >= MAX_QUEUED_EVENTS) {
        this.fail(GrpcStatus.RESOURCE_EXHAUSTED, 'too many messages while the request was being routed');
        return;
      }
      this.queue.push(ev);
      return;
    }
    try {
      this.handle(ev);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.fail(GrpcStatus.INVALID_ARGUMENT, err.message);
      } else {
        this.settings.logger.warn('ext_proc stream handler failed', { requestId: this.requestId, error: String(err) });
        this.fail(GrpcStatus.INTERNAL, 'internal error');
      }
    }
  }

  private drain(): void {
    while (this.queue.length > 0 && this.state !== 'routing' && this.state !== 'closed') {
      this.dispatch(this.queue.shift() as Event);
    }
  }

  private handle(ev: Event): void {
    if (ev.kind === 'half-close') return this.onPeerDone();
    const msg = ev.msg;
    if (msg instanceof MalformedMessage) throw new ProtocolError(`malformed ProcessingRequest: ${msg.error.message}`);
    switch (msg.request) {
      case 'request_headers': return this.onRequestHeaders(msg, msg.request_headers ?? {});
      case 'request_body': return this.onRequestBody(msg, msg.request_body ?? {});
      case 'request_trailers': return this.onRequestTrailers();
      case 'response_headers': return this.onResponseHeaders(msg, msg.response_headers ?? {});
      case 'response_body': return this.onResponseBody(msg, msg.response_body ?? {});
      case 'response_trailers': return this.onResponseTrailers(msg);
      default: throw new ProtocolError('ProcessingRequest has no request member set');
    }
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Request side

  private onRequestHeaders(msg: ProcessingRequest, h: HttpHeaders): void {
    if (this.state !== 'request-headers') throw new ProtocolError(`unexpected request_headers in state ${this.state}`);
    this.beginRequest(msg, headerMapToMap(h.headers));

    if (h.end_of_stream) return this.route('headers', undefined, false);
    switch (this.requestBodyMode) {
      case 'FULL_DUPLEX_STREAMED':
        this.state = 'request-body';
        return;
      case 'BUFFERED':
      case 'BUFFERED_PARTIAL':
        this.io.send(headersResponse('request'));
        this.state = 'request-body';
        return;
      case 'NONE':
      case 'STREAMED':
        return this.route('headers', undefined, true);
    }
  }

  /** The request's first message: its headers, or (request headers skipped) its body. */
  private beginRequest(msg: ProcessingRequest, headers: Map<string, string>): void {
    this.receivedAtMs = performance.now();
    // protocol_config is only ever sent on the first message of a stream, which this is.
    this.readProtocolConfig(msg);
    this.headers = headers;
    // GIE v1.5.0 `pkg/epp/handlers/server.go` (Process, RequestHeaders): a request without `x-request-id` gets a
    // generated UUID, which plugins key their per-request state on and which is set on the request Envoy forwards.
    const requestId = this.headers.get('x-request-id');
    this.requestIdGenerated = !requestId;
    this.requestId = requestId || randomUUID();
    Object.assign(this.filterMetadata, filterMetadataOf(msg));
  }

  private onRequestBody(msg: ProcessingRequest, b: HttpBody): void {
    const body = b.body ?? Buffer.alloc(0);
    if (this.state === 'request-headers') {
      // The proxy skips the request headers (request_header_mode SKIP): the body begins the request, with no headers,
      // as GIE v1.5.0 takes it (handlers/server.go gathers body chunks whatever came before and routes at their end).
      // A STREAMED body is routed on its first chunk, which is answered; the rest flows on.
      this.beginRequest(msg, new Map());
      this.state = 'request-body';
      if (this.requestBodyMode === 'STREAMED' || this.requestBodyMode === 'NONE') {
        return this.route('body', undefined, true);
      }
    }
    // The metadata of body messages counts too: GIE v1.5.0 reads it from every message (handlers/server.go,
    // `reqCtx.Request.Metadata = envoy.ExtractMetadataValues(req)`), so a subset hint sent with the body is honoured;
    // kvroute keeps what the headers message sent unless a later message names the same namespace.
    if (msg.metadata_context !== undefined) Object.assign(this.filterMetadata, filterMetadataOf(msg));
    if (this.requestStreamsOn()) {
      this.io.send(bodyResponse('request'));
      return;
    }
    if (this.state !== 'request-body') throw new ProtocolError(`unexpected request_body in state ${this.state}`);
    if (this.bodyBytes + body.length > this.settings.maxRequestBodyBytes) {
      return this.localReply(413, openAiErrorJson(413, `request body exceeds ${this.settings.maxRequestBodyBytes} bytes`, { code: 'request_too_large' }), {}, 'kvroute_body_too_large');
    }
    this.keepBodyPart(body);
    this.bodyMessages++;
    if (this.requestBodyMode === 'FULL_DUPLEX_STREAMED') {
      if (b.end_of_stream) this.route('body', this.takeBody(), false);
      return;
    }
    // Buffered modes deliver the body in one message; end_of_stream is false only when trailers follow (BUFFERED) or
    // when the body outgrew Envoy's buffer (BUFFERED_PARTIAL).
    this.partialBody = this.requestBodyMode === 'BUFFERED_PARTIAL' && !b.end_of_stream;
    this.route('body', this.takeBody(), false);
  }

  private onRequestTrailers(): void {
    if (this.state === 'request-body' && this.bodyMessages === 0) {
      // Headers, then trailers, and no body (an HTTP/2 or gRPC client): a request without a body, routed by load as one
      // whose headers end the stream. GIE v1.5.0 (handlers/server.go) routes only at a body's end of stream and would
      // wait for one that never comes; in a buffered mode Envoy sends the trailers when it holds no body
      // (`ext_proc.cc` onTrailers @ v1.35.0) and they are the answer owed.
      return this.route('trailers', undefined, false);
    }
    if (this.state === 'request-body' && this.requestBodyMode === 'FULL_DUPLEX_STREAMED') {
      return this.route('trailers', this.takeBody(), false);
    }
    if (this.state === 'forwarded' || this.requestStreamsOn()) {
      this.io.send(trailersResponse('request'));
      return;
    }
    throw new ProtocolError(`unexpected request_trailers in state ${this.state} (${this.requestBodyMode})`);
  }

  /**
   * Whether a request body or trailers may still come after routing: a STREAMED request body is routed on the headers
   * and flows on, even after the upstream began its response (an early answer), as Envoy keeps sending it.
   */
  private requestStreamsOn(): boolean {
    return this.requestBodyMode === 'STREAMED' && (this.state === 'forwarded' || this.state === 'response-body' || this.state === 'response-done');
  }

  /**
   * Keeps a body message's bytes until the body's end. Each part is a view that holds its whole gRPC message alive, about
   * 130 bytes beside the data, which the body cap does not count: a proxy forwarding a client's one-byte HTTP/2 DATA
   * frames one message each (Envoy's FULL_DUPLEX_STREAMED forwards data as it decodes it) would hold ~130× the cap. So
   * every `MERGE_PARTS` small parts (under `MERGE_MAX_BYTES` together) are copied into one buffer, each byte once;
   * runs of larger parts, whose overhead is already small beside their bytes, are kept as sent and never copied.
   */
  private keepBodyPart(body: Buffer): void {
    this.bodyParts.push(body);
    this.bodyBytes += body.length;
    this.bodyBytesUnmerged += body.length;
    if (this.bodyParts.length - this.bodyPartsMerged < MERGE_PARTS) return;
    if (this.bodyBytesUnmerged < MERGE_MAX_BYTES) {
      const merged = Buffer.concat(this.bodyParts.slice(this.bodyPartsMerged), this.bodyBytesUnmerged);
      this.bodyParts.length = this.bodyPartsMerged;
      this.bodyParts.push(merged);
    }
    this.bodyPartsMerged = this.bodyParts.length;
    this.bodyBytesUnmerged = 0;
  }

  private takeBody(): Buffer {
    const body = this.bodyParts.length === 1 ? this.bodyParts[0] : Buffer.concat(this.bodyParts, this.bodyBytes);
    this.bodyParts = [];
    this.bodyPartsMerged = 0;
    this.bodyBytesUnmerged = 0;
    return body;
  }

  private route(answer: AnswerTo, body: Buffer | undefined, bodyWithheld: boolean): void {
    this.state = 'routing';
    let extended = false;
    const req: IncomingRequest = {
      requestId: this.requestId,
      headers: this.headers,
      body,
      ...(bodyWithheld ? { bodyWithheld } : {}),
      receivedAtMs: this.receivedAtMs,
      filterMetadata: this.filterMetadata,
      // Envoy takes one override per owed answer (ProcessorState::restartMessageTimer @ v1.35.0), so one is sent.
      extendMessageTimeout: (ms: number): boolean => {
        if (extended || this.state !== 'routing' || !(ms >= 1)) return false;
        extended = true;
        this.io.send(messageTimeoutOverride(ms));
        return true;
      },
    };
    const director = this.settings.director;
    let decided: RouteDecision | PromiseLike<RouteDecision>;
    try {
      decided = director.decide ? director.decide(req, this.signal) : director.route(req, this.signal());
    } catch (err) {
      decided = Promise.reject(err);
    }
    if (!isPromiseLike(decided)) {
      // Decided without waiting: answer now, without a promise or a microtask hop.
      try {
        this.onDecision(answer, body, decided);
      } catch (err) {
        this.settings.logger.warn('ext_proc stream failed after routing', { requestId: this.requestId, error: String(err) });
        this.fail(GrpcStatus.INTERNAL, 'internal error');
      }
      return;
    }
    Promise.resolve(decided)
      .then(
        (decision) => this.onDecision(answer, body, decision),
        (err: unknown) => this.onDirectorError(err),
      )
      .catch((err: unknown) => {
        // Only a bug in this class gets here; an unhandled rejection would take the whole process down.
        this.settings.logger.warn('ext_proc stream failed after routing', { requestId: this.requestId, error: String(err) });
        this.fail(GrpcStatus.INTERNAL, 'internal error');
      });
  }

  private onDecision(answer: AnswerTo, original: Buffer | undefined, decision: RouteDecision): void {
    if (this.state === 'closed' || this.abandoned) {
      if (decision?.kind === 'route') this.safeRelease(decision.ticket, this.closeOutcome);
      return;
    }
    try {
      if (decision?.kind === 'reject') {
        const status = Number.isInteger(decision.status) ? decision.status : 500;
        this.localReply(status, decision.body, decision.headers ?? {}, 'kvroute_rejected');
        return;
      }
      if (decision?.kind !== 'route' || typeof decision.endpoint !== 'string' || decision.endpoint === '') {
        throw new Error('director returned an invalid decision');
      }
    } catch (err) {
      return this.onDirectorError(err);
    }
    try {
      this.forward(answer, original, decision);
    } catch (err) {
      // The request was never forwarded, so the director's reservation is void.
      this.safeRelease(decision.ticket, 'error');
      return this.onDirectorError(err);
    }
    this.ticket = { value: decision.ticket };
    this.state = 'forwarded';
    this.drain();
  }

  private onDirectorError(err: unknown): void {
    // After Envoy's own reply the request is given up: a late failure has nothing to answer.
    if (this.state === 'closed' || this.abandoned) return;
    this.settings.logger.warn('director failed', { requestId: this.requestId, error: err instanceof Error ? err.message : String(err) });
    this.localReply(500, openAiErrorJson(500, 'the endpoint picker failed to route the request', { code: 'internal_error' }), {}, 'kvroute_director_error');
  }

  /** Sends the routing answer in the shape the triggering message and body mode require. */
  private forward(answer: AnswerTo, original: Buffer | undefined, d: Extract<RouteDecision, { kind: 'route' }>): void {
    const replaced = d.body !== undefined && original !== undefined && !d.body.equals(original) ? d.body : undefined;
    if (replaced && this.partialBody) {
      throw new Error('cannot replace a partially buffered request body');
    }
    const encoded = this.settings.encoded;
    const plain = encoded !== undefined && !replaced && !this.requestIdGenerated && (d.setHeaders === undefined || isEmpty(d.setHeaders)) && d.endpointScores === undefined;
    if (plain && (answer === 'headers' || this.requestBodyMode === 'FULL_DUPLEX_STREAMED')) {
      // The common answer (only the pick): its bytes are the same for every request to this endpoint.
      this.io.send(encoded.routeTo(d.endpoint));
      if (answer !== 'headers') this.sendDuplexBody(answer, original);
      return;
    }
    const setHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(d.setHeaders ?? {})) setHeaders[k.toLowerCase()] = v;
    if (this.requestIdGenerated) setHeaders['x-request-id'] = this.requestId;
    setHeaders[this.settings.destinationHeader] = d.endpoint;
    // Envoy rejects a buffered body mutation whose Content-Length disagrees; in duplex mode the header answer goes out
    // before the body, so it has to carry the new length.
    if (replaced) setHeaders['content-length'] = String(replaced.length);
    const common: CommonResponse = { header_mutation: headerMutation(setHeaders), clear_route_cache: true };
    const metadata = destinationMetadata(this.settings.metadataNamespace, this.settings.destinationHeader, d.endpoint, d.endpointScores);

    if (answer === 'headers') {
      this.io.send(headersResponse('request', common, metadata));
      return;
    }
    if (answer === 'trailers' && this.requestBodyMode !== 'FULL_DUPLEX_STREAMED') {
      // A buffered request of headers and trailers only: the trailers answer cannot set request headers, so the pick
      // travels in the dynamic metadata alone (`envoy.lb`, which Envoy's override-host policy reads).
      this.io.send({ ...trailersResponse('request'), dynamic_metadata: metadata });
      return;
    }
    if (this.requestBodyMode === 'FULL_DUPLEX_STREAMED') {
      this.io.send(headersResponse('request', common, metadata));
      this.sendDuplexBody(answer, replaced ?? original);
      return;
    }
    if (replaced) common.body_mutation = { body: replaced };
    this.io.send(bodyResponse('request', common, metadata));
  }

  /** Full duplex, after the headers answer: the (possibly replaced) body streamed back, then the trailers answer. */
  private sendDuplexBody(answer: AnswerTo, body: Buffer | undefined): void {
    const out = body ?? Buffer.alloc(0);
    const trailersFollow = answer === 'trailers';
    // Headers followed directly by trailers had no body phase, so there is nothing to answer there.
    if (this.bodyMessages > 0 || out.length > 0) {
      if (out.length <= this.settings.maxChunkBytes) {
        this.io.send(streamedBodyChunk('request', out, !trailersFollow));
      } else {
        const pieces = chunk(out, this.settings.maxChunkBytes);
        pieces.forEach((p, i) => this.io.send(streamedBodyChunk('request', p, !trailersFollow && i === pieces.length - 1)));
      }
    }
    if (trailersFollow) this.io.send(trailersResponse('request'));
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Response side

  private onResponseHeaders(msg: ProcessingRequest, h: HttpHeaders): void {
    if (this.state === 'request-headers') this.beginWithoutRequest(msg);
    else if (this.state === 'request-body' || this.state === 'routing') this.abandonRequest();
    else if (this.state !== 'forwarded') throw new ProtocolError(`unexpected response_headers in state ${this.state}`);
    this.responseStarted = true;
    const set = this.responseHeadersToSet(msg, h);
    const encoded = this.settings.encoded;
    const names = set !== undefined ? Object.keys(set) : [];
    if (names.length === 0) {
      this.io.send(encoded !== undefined ? encoded.responseHeadersContinue : headersResponse('response', {}));
    } else if (names.length === 1 && encoded !== undefined) {
      // One header (flow control's queue time on every response): its answer's bytes come from a cache.
      this.io.send(encoded.responseHeadersSetting(names[0]!, set![names[0]!]!));
    } else {
      this.io.send(headersResponse('response', { header_mutation: headerMutation(set!) }));
    }
    if (h.end_of_stream) {
      this.responseDone();
    } else {
      this.state = 'response-body';
    }
  }

  /**
   * A stream whose first message is the response headers: the proxy skipped the request (`request_header_mode: SKIP`).
   * GIE v1.5.0 answers the response messages in any state (handlers/server.go), recording the response's usage with no
   * model names; so does kvroute, through the director's ticket for such a response when it has one.
   */
  private beginWithoutRequest(msg: ProcessingRequest): void {
    this.readProtocolConfig(msg);
    this.requestId = randomUUID();
    this.answerWithoutRequest();
  }

  /**
   * Response headers before the request was routed: Envoy's local reply (a 413 for a body over its buffer limit, a
   * route timeout while the request waited), which Envoy before 1.34 sent to the processor on the same stream (1.34 on
   * skip it: runtime guard `envoy.reloadable_features.skip_ext_proc_on_local_reply`, on by default, which an operator
   * can turn off). GIE v1.5.0 answers response messages in any state (handlers/server.go); so does kvroute:
   * the request is given up (a decision still pending is released unused when it comes, a flow-control wait ends,
   * request messages Envoy no longer waits on are dropped) and the response is answered as one without a request.
   */
  private abandonRequest(): void {
    this.abandoned = true;
    this.abort?.abort();
    this.cleanup();
    this.bodyBytes = 0;
    this.answerWithoutRequest();
  }

  /** From here on the response is answered as one without a request, through the director's ticket for it if any. */
  private answerWithoutRequest(): void {
    const director = this.settings.director;
    if (director.responseWithoutRequest !== undefined) {
      try {
        this.ticket = { value: director.responseWithoutRequest() };
      } catch (e) {
        this.settings.logger.warn('responseWithoutRequest failed', { error: (e as Error).message });
      }
    }
    this.state = 'forwarded';
  }

  /** The body modes of a stream's first message's `protocol_config`, when Envoy sent one. */
  private readProtocolConfig(msg: ProcessingRequest): void {
    const pc = msg.protocol_config;
    if (!pc) return;
    if (!isBodyMode(pc.request_body_mode) || !isBodyMode(pc.response_body_mode)) {
      throw new ProtocolError(`unsupported protocol_config body modes ${pc.request_body_mode}/${pc.response_body_mode}`);
    }
    this.requestBodyMode = pc.request_body_mode;
    this.responseBodyMode = pc.response_body_mode;
    this.modesAnnounced = true;
  }

  /** The director's response headers, if it has any to add; a failing hook never fails the response. */
  /** What the director's post-response hooks set on the client's response (undefined: nothing). */
  private responseHeadersToSet(msg: ProcessingRequest, h: HttpHeaders): Readonly<Record<string, string>> | undefined {
    const director = this.settings.director;
    const hook = director.responseHeaders;
    if (!hook || !this.ticket) return undefined;
    try {
      // The metadata Envoy forwards with this message, as GIE reads it at each message (`handlers/server.go` @ v1.5.0:
      // `reqCtx.Request.Metadata = envoy.ExtractMetadataValues(req)`), e.g. the endpoint that served the request.
      // A view: request control reads one header here, and only post-response plugins read them all.
      return hook.call(director, this.ticket.value, new HeaderMapView(h.headers), filterMetadataOf(msg), this.responseBodyMode !== 'NONE');
    } catch (e) {
      this.settings.logger.warn('response headers hook failed', { requestId: this.requestId, error: (e as Error).message });
      return undefined;
    }
  }

  private onResponseBody(msg: ProcessingRequest, b: HttpBody): void {
    this.beginResponseWithoutHeaders(msg);
    if (this.state !== 'response-body') throw new ProtocolError(`unexpected response_body in state ${this.state}`);
    if (this.responseBodyMode === 'NONE' && !this.modesAnnounced) {
      // No protocol_config said NONE: the default was a guess, and the body proves it wrong. GIE's only response mode
      // is full duplex, and it passes every chunk through without reading protocol_config (pkg/epp/handlers/server.go
      // @ v1.0.0, ResponseBody; its hermetic tests send bodies with no protocol_config), so answer as it does rather
      // than end the stream and cut the response off.
      this.responseBodyMode = 'FULL_DUPLEX_STREAMED';
    }
    const eos = b.end_of_stream === true;
    const replaced = this.responseBodyMode !== 'NONE' ? this.observeResponseBody(b.body ?? Buffer.alloc(0), eos) : undefined;
    switch (this.responseBodyMode) {
      case 'FULL_DUPLEX_STREAMED': {
        const pieces = chunk(replaced ?? b.body ?? Buffer.alloc(0), this.settings.maxChunkBytes);
        pieces.forEach((p, i) => this.io.send(streamedBodyChunk('response', p, eos && i === pieces.length - 1)));
        break;
      }
      case 'STREAMED':
      case 'BUFFERED':
      case 'BUFFERED_PARTIAL':
        this.io.send(bodyResponse('response'));
        break;
      case 'NONE':
        throw new ProtocolError('response_body received although protocol_config set response_body_mode NONE');
    }
    if (eos) this.responseDone();
  }

  /**
   * The director's view of the response body (usage, size), and the chunk it wants sent instead, if any (only full
   * duplex can replace a chunk). A failing hook never fails the response.
   */
  private observeResponseBody(chunk: Buffer, endOfStream: boolean): Buffer | undefined {
    const director = this.settings.director;
    if (!director.responseBody || !this.ticket) return undefined;
    try {
      return director.responseBody(this.ticket.value, chunk, endOfStream) ?? undefined;
    } catch (e) {
      this.settings.logger.warn('response body hook failed', { requestId: this.requestId, error: (e as Error).message });
      return undefined;
    }
  }

  /**
   * A response body or trailers with no response headers before them: the proxy skips response headers
   * (`response_header_mode: SKIP`, a mode Envoy sets apart from the body's; its ext_proc integration tests send such
   * sequences). The response is taken as begun here, and a stream that starts with it as one whose request the proxy
   * skipped too. kvroute's own behaviour: GIE v1.5.0 (handlers/server.go, updateStateAndSendIfNeeded) answers a body or
   * trailers only after response headers, so Envoy would wait out its message timeout there.
   */
  private beginResponseWithoutHeaders(msg: ProcessingRequest): void {
    if (this.state === 'request-headers') this.beginWithoutRequest(msg);
    if (this.state !== 'forwarded') return;
    this.responseStarted = true;
    this.state = 'response-body';
  }

  private onResponseTrailers(msg: ProcessingRequest): void {
    this.beginResponseWithoutHeaders(msg);
    if (this.state !== 'response-body') throw new ProtocolError(`unexpected response_trailers in state ${this.state}`);
    // Trailers end the response (gRPC-style upstreams): GIE v1.5.0 handlers/server.go finishes it there too, sending
    // what it still had of the body (end_of_stream false: the trailers end the stream) before the trailers response.
    const rest = this.responseBodyMode !== 'NONE' ? this.observeResponseBody(Buffer.alloc(0), true) : undefined;
    if (rest !== undefined && rest.length > 0 && this.responseBodyMode === 'FULL_DUPLEX_STREAMED') {
      for (const piece of chunk(rest, this.settings.maxChunkBytes)) this.io.send(streamedBodyChunk('response', piece, false));
    }
    this.io.send(trailersResponse('response'));
    this.responseDone();
  }

  private responseDone(): void {
    this.state = 'response-done';
    this.release('completed');
  }

  /**
   * Envoy half-closed: it has nothing more to send on this stream. Envoy closes the same way whether the HTTP stream
   * finished or was torn down (and a client reset also surfaces here as end-of-input), so a half-close only counts as
   * completion where the end of the response can never be observed: response body mode NONE after the response
   * headers. In every other mode the response's own end_of_stream has already released the ticket if it completed.
   */
  private onPeerDone(): void {
    const unobservableEnd = this.responseStarted && this.responseBodyMode === 'NONE';
    this.release(unobservableEnd ? 'completed' : 'cancelled');
    this.finish();
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Endings

  private localReply(status: number, body: string, headers: Readonly<Record<string, string>>, details: string): void {
    const code = this.settings.isValidHttpStatus(status) ? status : 500;
    this.io.send(immediateResponse(code, Buffer.from(body, 'utf8'), { ...headers, 'content-type': 'application/json' }, details));
    // Envoy stops processing this request after an immediate response; upstream servers end the stream here too.
    this.finish();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeOutcome = 'cancelled';
    this.release('cancelled');
    this.cleanup();
    try {
      this.io.end();
    } catch (err) {
      this.settings.logger.debug('ending ext_proc stream failed', { error: String(err) });
    }
  }

  private fail(code: GrpcStatus, details: string): void {
    if (this.state === 'closed') return;
    this.settings.logger.warn('ext_proc stream error', { requestId: this.requestId, code: GrpcStatus[code], details });
    this.close('error');
    try {
      this.io.fail(code, details);
    } catch (err) {
      this.settings.logger.debug('failing ext_proc stream failed', { error: String(err) });
    }
  }

  private close(outcome: ReleaseOutcome): void {
    this.state = 'closed';
    this.closeOutcome = outcome;
    this.abort?.abort();
    if (this.ticket && !this.released) this.release(outcome);
    this.cleanup();
  }

  private cleanup(): void {
    this.queue.length = 0;
    this.bodyParts = [];
    this.bodyPartsMerged = 0;
    this.bodyBytesUnmerged = 0;
  }

  private release(outcome: ReleaseOutcome): void {
    if (!this.ticket || this.released) return;
    this.released = true;
    this.safeRelease(this.ticket.value, outcome);
  }

  private safeRelease(ticket: unknown, outcome: ReleaseOutcome): void {
    try {
      this.settings.director.release(ticket, outcome);
    } catch (err) {
      this.settings.logger.warn('director.release threw', { requestId: this.requestId, outcome, error: String(err) });
    }
  }
}

function isEmpty(o: Readonly<Record<string, string>>): boolean {
  return Object.keys(o).length === 0;
}

function isPromiseLike(x: unknown): x is PromiseLike<RouteDecision> {
  return typeof (x as { then?: unknown } | null | undefined)?.then === 'function';
}

/** A message's `metadata_context.filter_metadata` as plain JSON, by namespace (empty when Envoy sent none). */
function filterMetadataOf(msg: ProcessingRequest): Record<string, { [key: string]: JsonValue }> {
  const out: Record<string, { [key: string]: JsonValue }> = {};
  const filterMetadata = msg.metadata_context?.filter_metadata;
  if (filterMetadata) for (const [ns, struct] of Object.entries(filterMetadata)) out[ns] = structToJson(struct as StructObject);
  return out;
}

function isResponseHeaders(ev: Event): boolean {
  return ev.kind === 'message' && !(ev.msg instanceof MalformedMessage) && ev.msg.request === 'response_headers';
}
