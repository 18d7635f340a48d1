/**
 * The seam between the ext_proc protocol handler and whatever decides where a request goes. The protocol handler knows
 * gRPC, Envoy's message order and body modes; the director knows models, endpoints and scheduling. Neither sees the
 * other's concerns: the director gets one complete request and answers once; the handler tells it when the response
 * is over so in-flight counts stay honest.
 */
import type { JsonValue } from '@kvroute/protocol/envoy';
import { openAiErrorJson, type OpenAiErrorOptions } from '@kvroute/protocol/openai';

export interface IncomingRequest {
  /** `x-request-id` when the proxy sent one, otherwise a generated UUID. */
  readonly requestId: string;
  /** Request headers including HTTP/2 pseudo-headers (`:method`, `:path`, ...): lower-case names, values taken from
   *  `raw_value` (UTF-8) or `value`; of a repeated name the last value, as GIE v1.5.0 reads it (`headerMapToMap`). */
  readonly headers: ReadonlyMap<string, string>;
  /**
   * The whole request body, byte-exact. Undefined when the request has none (the headers message had end_of_stream)
   * or when the proxy's request body mode does not deliver it before routing (see `bodyWithheld`).
   */
  readonly body?: Buffer;
  /** True when the request does have a body but the body mode (NONE or STREAMED) forces routing on headers alone. */
  readonly bodyWithheld?: boolean;
  /**
   * When the request's headers arrived (`performance.now()`, ms): its duration and time per output token count from
   * there, as GIE v1.5.0 counts them (`pkg/epp/handlers/request.go` sets `RequestReceivedTimestamp` in
   * HandleRequestHeaders), the body's upload included. Absent: from routing.
   */
  readonly receivedAtMs?: number;
  /** The request's untyped dynamic metadata as Envoy forwarded it (`metadata_context.filter_metadata`), by namespace;
   *  e.g. `envoy.lb` → `{ "x-gateway-destination-endpoint-subset": [...] }` when the proxy sends a subset hint. */
  readonly filterMetadata: Readonly<Record<string, { [key: string]: JsonValue }>>;
  /**
   * Asks the proxy to wait up to `ms` from now for this request's routing answer instead of its `message_timeout`
   * (Envoy's `override_message_timeout`; honoured once per answer, only within the filter's `max_message_timeout`).
   * Returns false when nothing was sent (already asked, or the answer is no longer owed). Absent where the transport
   * has no such message.
   */
  extendMessageTimeout?(ms: number): boolean;
}

export type RouteDecision =
  | {
      readonly kind: 'route';
      /** `ip:port` (IPv6 in brackets), or a comma-separated list tried in order on retries. Sent unchanged as the
       *  `x-gateway-destination-endpoint` header and as `envoy.lb` dynamic metadata. */
      readonly endpoint: string;
      /** Extra request headers to set (overwriting). */
      readonly setHeaders?: Readonly<Record<string, string>>;
      /** A replacement body. Undefined (or the same bytes) leaves the original untouched: it is never re-serialized.
       *  Only applies when the request body was delivered (`IncomingRequest.body` set); ignored otherwise. */
      readonly body?: Buffer;
      /** Opaque to the handler; handed back to `release` exactly once. */
      readonly ticket: unknown;
      /**
       * Every scored candidate's final score by `ip:port`, sent beside the pick in the `envoy.lb` metadata as
       * `x-gateway-destination-endpoint-scores` (llm-d's `--emit-endpoint-scores`); absent unless asked for.
       */
      readonly endpointScores?: Readonly<Record<string, number>>;
    }
  | {
      readonly kind: 'reject';
      /** HTTP status of the local reply (a status Envoy's HttpStatus enum defines; others become 500). */
      readonly status: number;
      /** Response body, normally `openAiErrorJson(...)`. Sent with `content-type: application/json`. */
      readonly body: string;
      readonly headers?: Readonly<Record<string, string>>;
    };

export type ReleaseOutcome = 'completed' | 'cancelled' | 'error';

export interface RequestDirector {
  /**
   * Decides where one request goes. `signal` aborts when the proxy's stream goes away before the answer is needed; a
   * director may ignore it, but a `route` decision resolved after the abort is released as 'cancelled' right away.
   * Throwing (or rejecting) yields a 500 local reply.
   */
  route(req: IncomingRequest, signal: AbortSignal): Promise<RouteDecision>;
  /**
   * Optional, used instead of `route` when present: the same decision, answered synchronously when the director need
   * not wait (the common case), else as a promise. `signal` creates the stream's abort signal on first call (already
   * aborted if the stream has gone): a director that only waits sometimes asks for it only then. Saves the abort
   * controller, the promise and its microtask hops on every request routed without waiting.
   */
  decide?(req: IncomingRequest, signal: () => AbortSignal): RouteDecision | Promise<RouteDecision>;
  /**
   * Called exactly once per `route` decision: 'completed' when the response reached its end of stream, 'cancelled'
   * when the proxy dropped the stream first (client gone, timeout), 'error' when the stream failed on a protocol error.
   */
  release(ticket: unknown, outcome: ReleaseOutcome): void;
  /**
   * Optional: called once with the upstream's response headers (lower-case names, `:status` included) for a routed
   * request; the headers it returns are set on the response to the client (e.g. a session token naming the pod).
   * Throwing is logged and ignored: a response already under way is never failed for it.
   */
  responseHeaders?(
    ticket: unknown,
    headers: ReadonlyMap<string, string>,
    /** The response headers message's `metadata_context.filter_metadata`, by namespace (empty when Envoy sent none). */
    metadata?: Readonly<Record<string, { [key: string]: JsonValue }>>,
    /**
     * Whether the proxy will show the EPP this response's body (`responseBody`): its response body mode is not NONE.
     * Absent: not known, taken as not.
     */
    bodyShown?: boolean,
  ): Readonly<Record<string, string>> | undefined;
  /**
   * Optional: called with each response body chunk of a routed request the proxy shows the EPP (response body mode
   * other than NONE), in order; `endOfStream` on the last (a chunk with end_of_stream, or the response trailers, then
   * with an empty chunk). For what upstream reads there: usage and sizes (GIE v1.5.0 `pkg/epp/handlers/response.go`).
   * The chunk is the proxy's buffer; keep no reference past the call. Returning a buffer sends it in the chunk's place
   * (in full-duplex mode, the only one where the EPP answers with the body; e.g. the client's model name put back
   * after a model rewrite); at the trailers, one returned is sent before the trailers response. Throwing is logged and
   * ignored.
   */
  responseBody?(ticket: unknown, chunk: Buffer, endOfStream: boolean): Buffer | undefined | void;
  /**
   * Optional: a ticket for a response whose request the EPP never saw, the stream beginning at the response headers
   * (Envoy with `request_header_mode: SKIP`, or GIE's hermetic response-only cases: GIE v1.5.0 handlers/server.go
   * handles the response messages in any state). It is handed to the response hooks and to `release` like a routed
   * request's; nothing was counted in flight for it.
   */
  responseWithoutRequest?(): unknown;
}

/** A reject decision with an OpenAI-shaped body (`@kvroute/protocol/openai`), as every kvroute component answers. */
export function rejectWith(status: number, message: string, options: OpenAiErrorOptions = {}): RouteDecision {
  return { kind: 'reject', status, body: openAiErrorJson(status, message, options) };
}
