/**
 * Pre-encoded ext_proc answers that are the same bytes for every request: the request-headers answer that names a
 * pod (the destination header, `clear_route_cache` and the `envoy.lb` dynamic metadata, when the director sets no
 * other header), and the CONTINUE answer to response headers. Building and encoding the headers answer took
 * `headerMutation`, a nested google.protobuf.Struct and protobufjs's `fromObject` + `encode` on every request; here it
 * is one Map lookup, and grpc-js writes the bytes as they are (the service's serializer passes a Buffer through, see
 * `extProcServiceDefinition`). The bytes are the serializer's own output for the same message, computed once.
 */
import { destinationMetadata, headerMutation, headersResponse, type ProcessingResponse } from '@kvroute/protocol/envoy';

/** Distinct picks kept; a pool larger than this (or churning pods) starts over rather than growing without bound. */
export const MAX_ENCODED_DESTINATIONS = 4096;
/** Distinct one-header response answers kept (`x-llm-d-flow-queue-duration-ms: 0`, a few hundred other waits). */
export const MAX_ENCODED_RESPONSE_HEADERS = 1024;

export class EncodedAnswers {
  private readonly destinations = new Map<string, Buffer>();
  private readonly oneHeaderResponses = new Map<string, Buffer>();
  /** `response_headers` → CONTINUE with no mutation. */
  readonly responseHeadersContinue: Buffer;

  constructor(
    private readonly serialize: (msg: ProcessingResponse) => Buffer,
    private readonly destinationHeader: string,
    private readonly metadataNamespace: string,
  ) {
    this.responseHeadersContinue = serialize(headersResponse('response', {}));
  }

  /**
   * The response-headers answer setting one header: with flow control on, every response carries
   * `x-llm-d-flow-queue-duration-ms`, `0` for nearly all of them, so its answer is encoded once like the pick's.
   */
  responseHeadersSetting(name: string, value: string): Buffer {
    const key = `${name}\u0000${value}`;
    let bytes = this.oneHeaderResponses.get(key);
    if (bytes === undefined) {
      if (this.oneHeaderResponses.size >= MAX_ENCODED_RESPONSE_HEADERS) this.oneHeaderResponses.clear();
      bytes = this.serialize(headersResponse('response', { header_mutation: headerMutation({ [name]: value }) }));
      this.oneHeaderResponses.set(key, bytes);
    }
    return bytes;
  }

  /** Endpoints whose answer is cached. */
  get size(): number {
    return this.destinations.size;
  }

  /** The request-headers answer routing to `endpoint`, exactly as `ExtProcStream` builds it without extra headers. */
  routeTo(endpoint: string): Buffer {
    let bytes = this.destinations.get(endpoint);
    if (bytes === undefined) {
      if (this.destinations.size >= MAX_ENCODED_DESTINATIONS) this.destinations.clear();
      bytes = this.serialize(EncodedAnswers.routeMessage(endpoint, this.destinationHeader, this.metadataNamespace));
      this.destinations.set(endpoint, bytes);
    }
    return bytes;
  }

  /** The message `routeTo` encodes. */
  static routeMessage(endpoint: string, destinationHeader: string, metadataNamespace: string): ProcessingResponse {
    return headersResponse(
      'request',
      { header_mutation: headerMutation({ [destinationHeader]: endpoint }), clear_route_cache: true },
      destinationMetadata(metadataNamespace, destinationHeader, endpoint),
    );
  }
}
