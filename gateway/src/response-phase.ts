/**
 * The response direction of the ext_proc filter, Envoy's EncodingProcessorState
 * (`source/extensions/filters/http/ext_proc/processor_state.cc`):
 *
 * - with response header mode SEND, the upstream's status and headers go to the EPP, and the client gets them after
 *   the answer, mutated;
 * - with response body mode FULL_DUPLEX_STREAMED, every body chunk goes to the EPP as it arrives and is dropped (Envoy
 *   drains it), and what the EPP streams back is written to the client as it arrives; the end goes as an empty
 *   end_of_stream chunk, or as the upstream's trailers. The upstream is paused while too much is outstanding. (While
 *   the headers answer is pending the body waits; Envoy would already stream it to the EPP.)
 * - with body mode NONE the body goes straight to the client; with response trailer mode SEND the upstream's
 *   trailers, if it sends any, go to the EPP before the client gets them.
 */
import type { ProcessingRequest } from '@kvroute/protocol/envoy';
import { bodyReplacement, EMPTY_BODY, isReplace, streamedBody, type DecodedCommonResponse } from './ext-proc-answers';
import type { PhaseFilter } from './ext-proc-filter';
import type { ProcessingMessage } from './failure-policy';
import type { DecodedHeaderMutation, HeaderList } from './headers';
import type { ResponseFilter, ResponseRelay } from './response-relay';

/** Response bytes sent to the EPP but not yet echoed, above which the upstream response is paused. */
const ECHO_HIGH_WATER = 1024 * 1024;
const ECHO_LOW_WATER = 256 * 1024;

/** What the EPP owes next on the response. Steps only move forward. */
export type ResponseStep =
  /** Nothing yet: the upstream has not answered. */
  | 'upstream'
  | 'headers'
  /** FULL_DUPLEX_STREAMED: the streamed echo of the body, up to end_of_stream; NONE: the body is on its way. */
  | 'body'
  /** The trailers answer; the body is done. */
  | 'trailers'
  /** Nothing: the response is processed (or its body does not go through the EPP). */
  | 'complete';

/**
 * How much of the body has gone out to the EPP. Kept apart from the step because the upstream's body keeps going
 * out while the EPP answers, so the two move independently.
 */
type ResponseSent = 'body-open' | 'body-ended' | 'trailers';

export interface ResponsePhaseModes {
  /** response_header_mode SEND. */
  readonly headers: boolean;
  /** response_body_mode FULL_DUPLEX_STREAMED (else NONE). */
  readonly body: boolean;
  /** response_trailer_mode SEND. */
  readonly trailers: boolean;
}

export class ResponsePhase implements ResponseFilter {
  private step: ResponseStep = 'upstream';
  private sent: ResponseSent = 'body-open';
  /** Body bytes handed to the EPP and not (yet) streamed back. */
  private inFlight = 0;
  private headers: HeaderList | null = null;
  private noBody = false;
  private trailers: HeaderList | null = null;
  /** Envoy's `ProcessorState::bodyReceived` for the response. */
  bodyReceived = false;
  /** The EPP's last streamed body answer carried end_of_stream. */
  bodyEndOfStream = false;

  constructor(private readonly filter: PhaseFilter, private readonly relay: ResponseRelay, private readonly modes: ResponsePhaseModes) {}

  /** The response has no body (its headers ended the stream). */
  get hasNoBody(): boolean {
    return this.noBody;
  }

  /** The message whose answer the EPP owes now, if any. */
  owes(): ProcessingMessage | null {
    if (this.step === 'headers') return 'headers';
    if (this.modes.body && ((this.step === 'body' && this.sent !== 'body-open') || this.inFlight > 0)) return 'body';
    if (this.step === 'trailers') return 'trailers';
    return null;
  }

  headersReady(headers: HeaderList, noBody: boolean): void {
    this.headers = headers;
    this.noBody = noBody;
    if (!this.modes.headers) {
      // Header mode SKIP (body NONE): nothing to ask; the body goes straight to the client, trailers may follow.
      this.step = noBody ? 'complete' : 'body';
      this.relay.bodyTo('client');
      this.relay.writeHead();
      return;
    }
    this.step = 'headers';
    this.relay.pause('headers');
    this.send({ response_headers: { headers: headers.toHeaderMap(), end_of_stream: noBody } });
  }

  data(chunk: Buffer): void {
    this.bodyReceived = true;
    this.inFlight += chunk.length;
    this.send({ response_body: { body: chunk, end_of_stream: false } });
    if (this.inFlight > ECHO_HIGH_WATER) this.relay.pause('echo');
  }

  /**
   * The upstream's body, which went straight to the client (body mode NONE), is complete. True when its trailers go
   * to the EPP first (trailer mode SEND): the client's response then ends with the answer.
   */
  clientBodyEnded(trailers: HeaderList | null): boolean {
    if (this.step !== 'body' || this.modes.body) return false;
    if (!trailers || !this.modes.trailers || !this.filter.active) {
      this.step = 'complete';
      return false;
    }
    this.trailers = trailers;
    this.sent = 'trailers';
    this.step = 'trailers';
    this.send({ response_trailers: { trailers: trailers.toHeaderMap() } });
    return true;
  }

  end(trailers: HeaderList | null): void {
    this.bodyReceived = true;
    if (trailers) {
      this.trailers = trailers;
      this.sent = 'trailers';
      this.send({ response_trailers: { trailers: trailers.toHeaderMap() } });
    } else {
      this.sent = 'body-ended';
      this.send({ response_body: { body: EMPTY_BODY, end_of_stream: true } });
    }
  }

  onHeadersAnswer(common: DecodedCommonResponse): void {
    const headers = this.headers;
    if (this.step !== 'headers' || !headers) return this.filter.spurious('unexpected response headers answer');
    const replacing = isReplace(common.status);
    this.filter.mutate(headers, common.header_mutation, 'response', { replacingMessage: replacing, removeContentLength: this.modes.body });
    // CONTINUE_AND_REPLACE with a body_mutation present: the (empty) body so far, mutated, replaces the upstream's,
    // and Content-Length is removed, so the client gets it chunked (ProcessorState::handleHeaderContinueAndReplace,
    // `processor_state.cc` @ v1.35.0 L174-212). The response ends when the upstream's does: its later chunks are
    // drained (Filter::onData, `bodyReplaced()`), its end of stream and trailers go on to the client.
    const replacement = replacing && common.body_mutation ? bodyReplacement(common.body_mutation) ?? EMPTY_BODY : null;
    if (replacement) {
      this.step = 'complete';
      headers.remove('content-length');
      this.relay.writeHead();
      this.relay.writeClient(replacement);
      if (this.relay.upstreamEnded) {
        this.relay.bodyTo('discard');
        this.relay.endClient(this.relay.upstreamTrailers);
      } else {
        this.relay.bodyTo('drain');
      }
      this.relay.resume('headers');
      return;
    }
    const throughEpp = !replacing && !this.noBody && this.modes.body;
    // Body NONE with trailers SEND: the phase waits for the upstream's end, to send its trailers.
    this.step = throughEpp || (!replacing && !this.noBody && this.modes.trailers) ? 'body' : 'complete';
    this.relay.bodyTo(throughEpp ? 'filter' : 'client');
    this.relay.writeHead();
    this.relay.resume('headers');
  }

  onBodyAnswer(common: DecodedCommonResponse): void {
    if (this.step !== 'body' || !this.modes.body) return this.filter.spurious('unexpected response body answer');
    const streamed = streamedBody(common);
    if (!streamed) return this.filter.spurious('FULL_DUPLEX_STREAMED requires StreamedBodyResponse body answers');
    const body = streamed.body ?? EMPTY_BODY;
    this.inFlight = Math.max(0, this.inFlight - body.length);
    this.relay.writeClient(body);
    if (this.inFlight < ECHO_LOW_WATER) this.relay.resume('echo');
    if (!streamed.end_of_stream) return;
    this.bodyEndOfStream = true;
    this.step = this.sent === 'trailers' ? 'trailers' : 'complete';
    // The EPP ended the body early: the rest of the upstream's is not forwarded.
    if (!this.relay.upstreamEnded) this.relay.bodyTo('discard');
    if (this.sent !== 'trailers') this.relay.endClient(null);
  }

  onTrailersAnswer(mutation: DecodedHeaderMutation | null | undefined): void {
    const trailers = this.trailers;
    // FULL_DUPLEX_STREAMED: a trailers answer is taken in any state once the response is under way (as on the request).
    if (this.modes.body && this.step !== 'upstream' && this.step !== 'headers' && (this.sent !== 'trailers' || this.step === 'complete')) return;
    if (this.sent !== 'trailers' || this.step === 'complete' || !trailers) return this.filter.spurious('unexpected response trailers answer');
    this.step = 'complete';
    this.filter.mutate(trailers, mutation, 'trailers');
    this.relay.endClient(trailers);
  }

  /**
   * Hands the rest of the response straight to the client (Envoy's clearAsyncState + continueIfNecessary). Returns the
   * number of body bytes lost: those the EPP held in FULL_DUPLEX_STREAMED (Envoy drained them).
   */
  continueWithout(): number {
    if (this.step === 'upstream' || this.step === 'complete') return 0;
    const dropped = this.inFlight;
    this.inFlight = 0;
    const step = this.step;
    this.step = 'complete';
    if (!this.relay.clientResponseStarted) {
      this.relay.bodyTo('client');
      this.relay.writeHead();
      this.relay.resume('headers');
    } else if (this.relay.bodyRoute === 'filter') {
      this.relay.bodyTo('client');
      if (this.relay.upstreamEnded) this.relay.endClient(this.relay.upstreamTrailers);
    } else if (step === 'trailers') {
      // Trailers held for the EPP's answer continue as they are.
      this.relay.endClient(this.trailers);
    }
    this.relay.resume('echo');
    this.relay.resume('grpc');
    return dropped;
  }

  /** Lets go of every kept byte (the exchange is over). */
  drop(): void {
    this.inFlight = 0;
  }

  private send(msg: ProcessingRequest): void {
    this.filter.send(msg, 'response');
  }
}
