/**
 * The request direction of the ext_proc filter, Envoy's DecodingProcessorState
 * (`source/extensions/filters/http/ext_proc/processor_state.cc`). The headers go first; nothing goes upstream until
 * the EPP has answered them, because its answer carries the pick.
 *
 * - FULL_DUPLEX_STREAMED: each body chunk goes to the EPP as it arrives (the last one with end_of_stream, or the
 *   trailers after it) and is then dropped, as Envoy drains it (`ext_proc.cc` handleDataStreamedModeBase @ v1.35.0
 *   L800-805). The headers answer starts the upstream request, and the body the EPP streams back is what the upstream
 *   receives, chunked (Content-Length went when the stream opened). A fail-open therefore goes on without the bytes
 *   the EPP held: Envoy re-injects only its (empty) chunk queue (ProcessorState::clearAsyncState, `processor_state.cc`
 *   @ v1.35.0 L539-549).
 * - BUFFERED: the body is collected, as the filter manager buffers it (handleDataBufferedMode, StopIterationAndBuffer,
 *   `ext_proc.cc` @ v1.35.0 L761-786), up to the listener's buffer limit (413 above, before the EPP sees the body);
 *   once the headers answer is in, the whole body goes in one message; its answer carries the mutations, the pick and
 *   possibly a new body; the upstream gets an exact Content-Length (a mutated body that contradicts a Content-Length
 *   the EPP left in place is a 500, as in Envoy). A fail-open goes on with the whole body.
 * - CONTINUE_AND_REPLACE on the headers answer replaces the whole body, in either mode.
 */
import type { ProcessingRequest } from '@kvroute/protocol/envoy';
import type { Downstream } from './downstream';
import { bodyReplacement, EMPTY_BODY, isReplace, streamedBody, type DecodedBodyMutation, type DecodedCommonResponse } from './ext-proc-answers';
import type { FilterHost, PhaseFilter } from './ext-proc-filter';
import type { ProcessingMessage } from './failure-policy';
import type { DecodedHeaderMutation, HeaderList } from './headers';
import type { Router } from './router';

/** What the EPP owes next on the request. Steps only move forward. */
export type RequestStep =
  /** The headers answer (FULL_DUPLEX_STREAMED body chunks keep going out meanwhile). */
  | 'headers'
  /** The body: its streamed echo up to end_of_stream, or the one answer to the whole BUFFERED body. */
  | 'body'
  /** The trailers answer; the body is done (answered, or replaced by CONTINUE_AND_REPLACE). */
  | 'trailers'
  /** Nothing: the request is processed. */
  | 'complete';

/**
 * How much of the body has gone out to the EPP. Kept apart from the step because in FULL_DUPLEX_STREAMED the client
 * keeps sending while the EPP answers, so the two move independently.
 */
type RequestSent = 'body-open' | 'body-ended' | 'trailers';

export interface RequestPhaseOptions {
  /** FULL_DUPLEX_STREAMED (else BUFFERED). */
  readonly duplex: boolean;
  /** request_trailer_mode SEND. */
  readonly trailersThroughEpp: boolean;
  /**
   * BUFFERED: the listener's buffer limit, above which the filter manager answers 413 (requestDataTooLarge,
   * `source/common/http/filter_manager.cc` @ v1.35.0 L533-542). FULL_DUPLEX_STREAMED: the gateway's own cap.
   */
  readonly maxBodyBytes: number;
}

export class RequestPhase {
  private step: RequestStep = 'headers';
  private sent: RequestSent = 'body-open';
  /** FULL_DUPLEX_STREAMED: bytes handed to the EPP and not (yet) streamed back. */
  private inFlight = 0;
  /** The latest client chunk, held back so the last one can carry end_of_stream (saves a message per request). */
  private held: Buffer | null = null;
  /** The body so far (BUFFERED). */
  private buffered: Buffer[] = [];
  private received = 0;
  /** Envoy's `ProcessorState::bodyReceived`: the filter has seen body data (set on the first onData). */
  bodyReceived = false;
  /** The EPP's streamed body answer carried end_of_stream. */
  bodyEndOfStream = false;

  constructor(
    private readonly filter: PhaseFilter,
    private readonly host: FilterHost,
    private readonly downstream: Downstream,
    private readonly router: Router,
    private readonly mode: RequestPhaseOptions,
  ) {}

  get processed(): boolean {
    return this.step === 'complete';
  }

  /** The message whose answer the EPP owes now, if any. */
  owes(): ProcessingMessage | null {
    if (this.step === 'headers') return 'headers';
    if ((this.step === 'body' && this.sent !== 'body-open') || this.inFlight > 0) return 'body';
    if (this.step === 'trailers') return 'trailers';
    return null;
  }

  /** A chunk of the client's body, while the body goes through the filter. */
  onClientData(chunk: Buffer): void {
    this.bodyReceived = true;
    this.received += chunk.length;
    if (this.received > this.mode.maxBodyBytes) {
      this.host.sendLocalReply(413, this.mode.duplex ? `request body exceeds ${this.mode.maxBodyBytes} bytes\n` : 'Payload Too Large');
      return;
    }
    if (!this.mode.duplex) {
      this.buffered.push(chunk);
      return;
    }
    if (this.held) this.sendChunk(this.held, false);
    this.held = chunk;
  }

  onClientEnd(): void {
    this.bodyReceived = true;
    if (!this.mode.duplex) {
      if (this.step !== 'headers') this.sendBufferedBody();
      return;
    }
    const trailers = this.downstream.trailers;
    if (trailers) {
      if (this.held) this.sendChunk(this.held, false);
      this.held = null;
      // With trailers SKIP (only at vhost scope: Envoy refuses it on the filter) the EPP never sees the body end.
      if (this.mode.trailersThroughEpp) this.sendTrailers(trailers);
    } else {
      const last = this.held ?? EMPTY_BODY;
      this.held = null;
      this.sendChunk(last, true);
    }
  }

  onHeadersAnswer(common: DecodedCommonResponse): void {
    if (this.step !== 'headers') return this.filter.spurious('unexpected request headers answer');
    const replacing = isReplace(common.status);
    this.applyHeaderMutation(common, replacing);
    if (replacing) return this.replaceBody(common.body_mutation);
    if (!this.downstream.hasBody) {
      this.step = 'complete';
      this.host.route();
      this.router.end(null);
      return;
    }
    this.step = 'body';
    if (this.mode.duplex) {
      // The body the EPP returns is what goes upstream; nothing more to do until it arrives.
      this.host.route();
      return;
    }
    if (this.downstream.ended) this.sendBufferedBody();
  }

  onBodyAnswer(common: DecodedCommonResponse): void {
    if (this.mode.duplex) return this.onStreamedBody(common);
    if (this.step !== 'body' || this.sent === 'body-open') return this.filter.spurious('unexpected request body answer');
    this.step = 'complete';
    const headers = this.downstream.headers;
    this.applyHeaderMutation(common, isReplace(common.status));
    const bm = common.body_mutation;
    if (bm) {
      // ProcessorState::validateContentLength (`processor_state.cc` @ v1.35.0 L468-484) runs for any body_mutation
      // that is present, and compares a numeric Content-Length with `body_mutation.body()`, which is empty unless the
      // mutation is a `body`: so `clear_body` (true or false), an empty BodyMutation or a `streamed_response` in
      // BUFFERED mode all fail against a non-zero Content-Length.
      const cl = headers.get('content-length');
      const mutatedLength = bm.mutation === 'body' ? (bm.body ?? EMPTY_BODY).length : 0;
      if (cl !== undefined && /^\d+$/.test(cl.trim()) && Number(cl.trim()) !== mutatedLength) {
        return this.filter.processingError('mismatch between content length and the length of the mutated body');
      }
    }
    const replacement = bodyReplacement(bm);
    const body = replacement ?? this.buffered[0] ?? EMPTY_BODY;
    this.buffered = [];
    const trailers = this.downstream.trailers;
    // Envoy leaves the headers as they are: a Content-Length that was there goes on as it is (the client's matches the
    // body; the EPP's was checked above when the body changed, and is forwarded unchecked when it did not, so a wrong
    // one reaches the pod as it would behind Envoy, audit 22 LOW-3); without one (a chunked upload, or the EPP
    // removed it) the upstream gets the body chunked, as does a body followed by trailers.
    if (trailers) headers.remove('content-length');
    if (trailers && this.mode.trailersThroughEpp) {
      // The trailers go to the EPP first, and the whole request waits for their answer: Envoy sends them from the body
      // answer without continuing the filter chain (ProcessorState::finalizeBodyResponse, `processor_state.cc`
      // @ v1.35.0), so the router sees nothing of the request until the trailers answer is in.
      this.buffered = [body];
      this.step = 'trailers';
      this.sendTrailers(trailers);
      return;
    }
    this.host.route();
    this.router.write(body);
    this.router.end(trailers);
  }

  onTrailersAnswer(mutation: DecodedHeaderMutation | null | undefined): void {
    const trailers = this.downstream.trailers;
    // In FULL_DUPLEX_STREAMED Envoy takes a trailers answer in any state (ProcessorState::handleTrailersResponse,
    // `processor_state.cc` @ v1.35.0 L505-526): with no trailers sent it has nothing to apply, and is not spurious.
    if (this.mode.duplex && this.router.routed && (this.sent !== 'trailers' || this.step === 'complete')) return;
    if (this.sent !== 'trailers' || (this.mode.duplex ? this.step === 'complete' || !this.router.routed : this.step !== 'trailers') || !trailers) {
      return this.filter.spurious('unexpected request trailers answer');
    }
    this.step = 'complete';
    this.filter.mutate(trailers, mutation, 'trailers');
    if (!this.mode.duplex) {
      // BUFFERED: the request was held for this answer (onBodyAnswer); now it goes, body and trailers.
      const body = this.buffered[0] ?? EMPTY_BODY;
      this.buffered = [];
      this.host.route();
      this.router.write(body);
    }
    this.router.end(trailers);
  }

  /**
   * Goes on without the EPP from wherever the request is (Envoy's clearAsyncState + continueIfNecessary). Returns the
   * number of body bytes lost: in FULL_DUPLEX_STREAMED those the EPP held (drained by Envoy), 0 in BUFFERED.
   */
  continueWithout(): number {
    if (this.step === 'complete') return 0;
    this.step = 'complete';
    const { downstream, router } = this;
    const body = this.mode.duplex ? [] : this.buffered;
    const dropped = this.mode.duplex ? this.inFlight + (this.held?.length ?? 0) : 0;
    this.drop();
    if (this.host.requestBodyRoute === 'filter') this.host.requestBodyTo(downstream.hasBody ? 'upstream' : 'discard');
    this.host.route();
    for (const b of body) router.write(b);
    // Trailers the filter held (sent to the EPP, or waiting behind the body) continue with the end of the body.
    if (downstream.ended || !downstream.hasBody) router.end(downstream.trailers);
    return dropped;
  }

  /** Lets go of every kept byte (the exchange is over). */
  drop(): void {
    this.held = null;
    this.inFlight = 0;
    this.buffered = [];
  }

  private onStreamedBody(common: DecodedCommonResponse): void {
    if (this.step !== 'body' || !this.router.routed) return this.filter.spurious('unexpected request body answer');
    const streamed = streamedBody(common);
    if (!streamed) return this.filter.spurious('FULL_DUPLEX_STREAMED requires StreamedBodyResponse body answers');
    const body = streamed.body ?? EMPTY_BODY;
    this.inFlight = Math.max(0, this.inFlight - body.length);
    this.router.write(body);
    // handleBodyResponse clears the route cache for every body answer (`processor_state.cc` @ v1.35.0 L354);
    // a streamed body answer's header_mutation is never applied but still counts as one there.
    if (common.clear_route_cache) this.filter.clearRouteCache(common.header_mutation != null);
    if (!streamed.end_of_stream) return;
    this.bodyEndOfStream = true;
    this.step = this.sent === 'trailers' ? 'trailers' : 'complete';
    if (!this.downstream.ended) {
      // The EPP ended the body early: the rest of the client's is not forwarded.
      this.host.requestBodyTo('discard');
      this.held = null;
    }
    if (this.sent !== 'trailers') this.router.end(null);
  }

  /**
   * CONTINUE_AND_REPLACE on the headers (ProcessorState::handleHeaderContinueAndReplace, `processor_state.cc`
   * @ v1.35.0 L174-212): with a body_mutation present, the body so far (BUFFERED: what the filter manager holds;
   * FULL_DUPLEX_STREAMED: nothing, it was drained) is mutated and replaces the client's entirely, and Content-Length
   * is removed, so the upstream gets it chunked. The upstream request is not ended there: the rest of the client's
   * body is drained chunk by chunk as it arrives (Filter::onData, `bodyReplaced()`), and the client's end of stream,
   * with its trailers (`send_trailers_` is now false, so they continue), ends the upstream request.
   */
  private replaceBody(bm: DecodedBodyMutation | null | undefined): void {
    this.step = this.sent === 'trailers' ? 'trailers' : 'complete';
    if (bm) {
      const replacement = bodyReplacement(bm) ?? (this.mode.duplex ? EMPTY_BODY : Buffer.concat(this.buffered));
      this.drop();
      this.downstream.headers.remove('content-length');
      this.host.route();
      this.router.write(replacement);
      if (this.downstream.ended || !this.downstream.hasBody) {
        this.host.requestBodyTo('discard');
        this.router.end(this.downstream.trailers);
      } else {
        this.host.requestBodyTo('drain');
      }
      return;
    }
    // No body mutation: the rest of the client's body passes through untouched (in FULL_DUPLEX_STREAMED, what the
    // EPP already had is gone, as above).
    const body = this.mode.duplex ? [] : this.buffered;
    this.drop();
    this.host.requestBodyTo('upstream');
    this.host.route();
    for (const b of body) this.router.write(b);
    if (this.downstream.ended) this.router.end(this.downstream.trailers);
  }

  private applyHeaderMutation(common: DecodedCommonResponse, replacing: boolean): void {
    this.filter.mutate(this.downstream.headers, common.header_mutation, 'request', { replacingMessage: replacing, removeContentLength: this.mode.duplex });
    // In FULL_DUPLEX_STREAMED a Content-Length the EPP sets is skipped (MutationUtils::applyHeaderMutations with
    // remove_content_length, `mutation_utils.cc` @ v1.35.0 L150-153): the body stays chunked.
    if (this.mode.duplex) this.downstream.headers.remove('content-length');
    if (common.clear_route_cache) this.filter.clearRouteCache(common.header_mutation != null);
  }

  private sendChunk(chunk: Buffer, endOfStream: boolean): void {
    this.inFlight += chunk.length;
    if (endOfStream) this.sent = 'body-ended';
    this.send({ request_body: { body: chunk, end_of_stream: endOfStream } });
  }

  private sendTrailers(trailers: HeaderList): void {
    this.sent = 'trailers';
    this.send({ request_trailers: { trailers: trailers.toHeaderMap() } });
  }

  private sendBufferedBody(): void {
    const body = this.buffered.length === 1 ? this.buffered[0] : Buffer.concat(this.buffered);
    this.buffered = [body];
    this.sent = 'body-ended';
    this.send({ request_body: { body, end_of_stream: this.downstream.trailers === null } });
  }

  private send(msg: ProcessingRequest): void {
    this.filter.send(msg, 'request');
  }
}
