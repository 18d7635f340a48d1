/**
 * What the EPP answers, as the gateway reads it: `ProcessingResponse` the way @grpc/proto-loader decodes it
 * (PROTO_LOADER_OPTIONS: keepCase, enums as names, defaults, oneof discriminators), only the members the gateway
 * reads, and the few readings of a `CommonResponse` both filter phases share.
 */
import type { HeaderMap, StructObject } from '@kvroute/protocol/envoy';
import type { DecodedHeaderMutation } from './headers';

export interface DecodedBodyMutation {
  mutation?: 'body' | 'clear_body' | 'streamed_response';
  body?: Buffer;
  clear_body?: boolean;
  streamed_response?: DecodedStreamedBody | null;
}

export interface DecodedStreamedBody {
  body?: Buffer;
  end_of_stream?: boolean;
}

export interface DecodedCommonResponse {
  status?: string | number;
  header_mutation?: DecodedHeaderMutation | null;
  body_mutation?: DecodedBodyMutation | null;
  trailers?: HeaderMap | null;
  clear_route_cache?: boolean;
}

export interface DecodedImmediateResponse {
  /** `envoy.type.v3.HttpStatus`; `code` is the StatusCode enum name, or a number the enum does not define. */
  status?: { code?: string | number } | null;
  headers?: DecodedHeaderMutation | null;
  body?: Buffer;
  /** `envoy.service.ext_proc.v3.GrpcStatus`: the gRPC status a gRPC client gets. */
  grpc_status?: { status?: number } | null;
  details?: string;
}

export type ResponseKind =
  | 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers'
  | 'immediate_response';

export interface DecodedProcessingResponse {
  response?: ResponseKind;
  request_headers?: { response?: DecodedCommonResponse | null } | null;
  response_headers?: { response?: DecodedCommonResponse | null } | null;
  request_body?: { response?: DecodedCommonResponse | null } | null;
  response_body?: { response?: DecodedCommonResponse | null } | null;
  request_trailers?: { header_mutation?: DecodedHeaderMutation | null } | null;
  response_trailers?: { header_mutation?: DecodedHeaderMutation | null } | null;
  immediate_response?: DecodedImmediateResponse | null;
  dynamic_metadata?: StructObject | null;
  override_message_timeout?: { seconds?: string | number; nanos?: number } | null;
}

export const EMPTY_BODY = Buffer.alloc(0);

/** `CommonResponse.status` CONTINUE_AND_REPLACE (the enum name, or its number from a newer proto). */
export function isReplace(status: string | number | undefined): boolean {
  return status === 'CONTINUE_AND_REPLACE' || status === 1;
}

/** The whole body a `body` or `clear_body` mutation sets; null when the answer leaves the body alone. */
export function bodyReplacement(bm: DecodedBodyMutation | null | undefined): Buffer | null {
  if (bm?.mutation === 'body') return bm.body ?? EMPTY_BODY;
  if (bm?.mutation === 'clear_body' && bm.clear_body) return EMPTY_BODY;
  return null;
}

/** The FULL_DUPLEX_STREAMED chunk of a body answer; null when the answer is not a StreamedBodyResponse. */
export function streamedBody(common: DecodedCommonResponse): DecodedStreamedBody | null {
  const bm = common.body_mutation;
  return bm?.mutation === 'streamed_response' ? bm.streamed_response ?? null : null;
}
