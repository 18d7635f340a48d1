/**
 * When Envoy closes the ext_proc stream before the HTTP exchange ends. Up to 1.36 it never does: the stream is closed
 * in `Filter::onDestroy`, when the exchange ends, completed or reset (`ext_proc.cc` @ v1.35.0 L667-701, @ v1.36.0
 * L696-731). From 1.37 (#41425, runtime guard `ext_proc_stream_close_optimization`, on by default) it is closed as soon
 * as no more answers are needed, by the rules below (`ext_proc.cc` @ v1.37.0 6d9bb7d9a8
 * `Filter::closeGrpcStreamIfLastRespReceived` L1721-1772, called after every answer L1923; the same at v1.38.0
 * f1dd21b16c L1733-1784, L1936). Either way the close is `closeStream()`: END_STREAM, then RST_STREAM at once
 * (`source/extensions/filters/common/ext_proc/grpc_client_impl.h` ProcessorStreamImpl::close @ v1.35.0 L133-146).
 */
import type { ResponseKind } from './ext-proc-answers';

/** The filter's configuration, per direction, as the rules read it. */
export interface LifetimeModes {
  readonly requestFullDuplex: boolean;
  readonly requestTrailersSend: boolean;
  readonly responseHeadersSend: boolean;
  readonly responseFullDuplex: boolean;
  readonly responseTrailersSend: boolean;
}

/** What the exchange looks like when the answer has been applied. */
export interface LifetimeState {
  /** The request has no body (headers with end_of_stream). */
  readonly requestHasNoBody: boolean;
  /** The client's trailers have arrived. */
  readonly requestTrailersReceived: boolean;
  /** The EPP's streamed request body answer carried end_of_stream. */
  readonly requestBodyEndOfStream: boolean;
  /** The response has no body (headers with end_of_stream). */
  readonly responseHasNoBody: boolean;
  /** The whole upstream response is in (`completeBodyAvailable`), and it had no trailers. */
  readonly responseCompleteWithoutTrailers: boolean;
  /** The EPP's streamed response body answer carried end_of_stream. */
  readonly responseBodyEndOfStream: boolean;
}

/**
 * `ProcessorState::noExternalProcess` for the response direction (`processor_state.h` @ v1.37.0 L735-738): response
 * headers SKIP, trailers SKIP, body NONE. The request-side rules apply only then.
 */
export function responseNeedsNothing(m: LifetimeModes): boolean {
  return !m.responseHeadersSend && !m.responseTrailersSend && !m.responseFullDuplex;
}

/** Whether `answer`, just applied, was the last one the filter needs (Envoy >= 1.37). */
export function isLastAnswer(answer: ResponseKind, m: LifetimeModes, s: LifetimeState): boolean {
  switch (answer) {
    case 'request_headers':
      // isLastResponseAfterHeaderResp (`processor_state.cc` @ v1.37.0 L652-677): a body-less request is done.
      return responseNeedsNothing(m) && s.requestHasNoBody;
    case 'request_body':
      // isLastResponseAfterBodyResp (L679-693) with eosSeenInBody (`ext_proc.cc` L1692-1716): only a streamed
      // end_of_stream counts ("TODO: skip stream closing optimization for BUFFERED"), or trailers Envoy keeps itself.
      return responseNeedsNothing(m)
        && (m.requestFullDuplex ? s.requestBodyEndOfStream : !m.requestTrailersSend && s.requestTrailersReceived);
    case 'request_trailers':
      return responseNeedsNothing(m);
    case 'response_headers':
      // isLastResponseAfterHeaderResp: no body; or body NONE with trailers SKIP; or body NONE with trailers SEND
      // when the whole body is already in and no trailers came (a response still streaming keeps the stream open).
      if (s.responseHasNoBody) return true;
      if (m.responseFullDuplex) return false;
      return !m.responseTrailersSend || s.responseCompleteWithoutTrailers;
    case 'response_body':
      return s.responseBodyEndOfStream;
    case 'response_trailers':
      return true;
    default:
      return false;
  }
}

/**
 * With nothing to do on the response, the stream is closed the moment the upstream's response headers reach the
 * filter (`Filter::encodeHeaders` @ v1.37.0 L1373-1377, outside the runtime guard).
 */
export function closesAtResponseHeaders(m: LifetimeModes): boolean {
  return responseNeedsNothing(m);
}
