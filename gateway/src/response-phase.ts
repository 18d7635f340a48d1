/**
 * The response direction of the ext_proc filter, Envoy's EncodingProcessorState
 * (`source/extensions/filters/http/ext_proc/processor_state.cc`), with response header mode SEND:
 *
 * - the upstream's status and headers go to the EPP, and the client gets them after the answer, mutated;
 * - with response body mode FULL_DUPLEX_STREAMED, every body chunk goes to the EPP as it arrives, and what the EPP
 *   streams back is written to the client as it arrives; the end goes as an empty end_of_stream chunk, or as the
 *   upstream's trailers. Every byte sent is kept until the EPP has returned it, and the upstream is paused while
 *   too much is outstanding.
 */
import type { ProcessingRequest } from '@kvroute/protocol/envoy';
import { EchoTracker } from './echo-tracker';
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
  /** The streamed echo of the body, up to end_of_stream. */
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

export class ResponsePhase implements ResponseFilter {
  private step: ResponseStep = 'upstream';
  private sent: ResponseSent = 'body-open';
  private readonly echo = new EchoTracker();
  private headers: HeaderList | null = null;
  private noBody = false;
  private trailers: HeaderList | null = null;

  constructor(private readonly filter: PhaseFilter, private readonly relay: ResponseRelay, private readonly bodyThroughEpp: boolean) {}

  get processed(): boolean {
    return this.step === 'complete';
  }

  /** The message whose answer the EPP owes now, if any. */
  owes(): ProcessingMessage | null {
    if (this.step === 'headers') return 'headers';
    if ((this.step === 'body' && this.sent !== 'body-open') || this.echo.pending > 0) return 'body';
    if (this.step === 'trailers') return 'trailers';
    return null;
  }

  headersReady(headers: HeaderList, noBody: boolean): void {
    this.headers = headers;
    this.noBody = noBody;
    this.step = 'headers';
    this.relay.pause('headers');
    this.send({ response_headers: { headers: headers.toHeaderMap(), end_of_stream: noBody } });
  }

  data(chunk: Buffer): void {
    this.echo.push(chunk);
    this.send({ response_body: { body: chunk, end_of_stream: false } });
    if (this.echo.pending > ECHO_HIGH_WATER) this.relay.pause('echo');
  }

  end(trailers: HeaderList | null): void {
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
    this.filter.mutate(headers, common.header_mutation, 'response', replacing);
    const replacement = replacing ? bodyReplacement(common.body_mutation) : null;
    if (replacement) {
      this.step = 'complete';
      this.relay.bodyTo('discard');
      headers.set('content-length', String(replacement.length));
      this.relay.writeHead();
      this.relay.endClientWith(replacement);
      this.relay.resume('headers');
      return;
    }
    const throughEpp = !replacing && !this.noBody && this.bodyThroughEpp;
    this.step = throughEpp ? 'body' : 'complete';
    this.relay.bodyTo(throughEpp ? 'filter' : 'client');
    this.relay.writeHead();
    this.relay.resume('headers');
  }

  onBodyAnswer(common: DecodedCommonResponse): void {
    if (this.step !== 'body') return this.filter.spurious('unexpected response body answer');
    const streamed = streamedBody(common);
    if (!streamed) return this.filter.spurious('FULL_DUPLEX_STREAMED requires StreamedBodyResponse body answers');
    const body = streamed.body ?? EMPTY_BODY;
    this.echo.match(body);
    this.relay.writeClient(body);
    if (this.echo.pending < ECHO_LOW_WATER) this.relay.resume('echo');
    if (!streamed.end_of_stream) return;
    this.step = this.sent === 'trailers' ? 'trailers' : 'complete';
    // The EPP ended the body early: the rest of the upstream's is not forwarded.
    if (!this.relay.upstreamEnded) this.relay.bodyTo('discard');
    if (this.sent !== 'trailers') this.relay.endClient(null);
  }

  onTrailersAnswer(mutation: DecodedHeaderMutation | null | undefined): void {
    const trailers = this.trailers;
    if (this.sent !== 'trailers' || this.step === 'complete' || !trailers) return this.filter.spurious('unexpected response trailers answer');
    this.step = 'complete';
    this.filter.mutate(trailers, mutation, 'trailers');
    this.relay.endClient(trailers);
  }

  /**
   * Hands the rest of the response straight to the client, losing no byte. False when that is impossible (the EPP
   * had changed the body and died partway through returning it): the client has then been reset.
   */
  continueWithout(): boolean {
    if (this.step === 'upstream' || this.step === 'complete') return true;
    if (!this.relay.clientResponseStarted) {
      this.relay.bodyTo('client');
      this.relay.writeHead();
      this.relay.resume('headers');
    } else if (this.relay.bodyRoute === 'filter') {
      if (this.echo.diverged) {
        this.relay.resetClient();
        return false;
      }
      for (const b of this.echo.takeRemaining()) this.relay.writeClient(b);
      this.relay.bodyTo('client');
      if (this.relay.upstreamEnded) this.relay.endClient(this.relay.upstreamTrailers);
    }
    this.relay.resume('echo');
    this.relay.resume('grpc');
    return true;
  }

  /** Lets go of every kept byte (the exchange is over). */
  drop(): void {
    this.echo.clear();
  }

  private send(msg: ProcessingRequest): void {
    this.filter.send(msg, 'response');
  }
}
