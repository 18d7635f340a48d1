/**
 * The ext_proc messages in `@grpc/proto-loader` object form (see PROTO_LOADER_OPTIONS in ../envoy/protos): only the
 * members this server reads or writes are typed. Builders keep the nesting (ProcessingResponse → BodyResponse →
 * CommonResponse → BodyMutation → StreamedBodyResponse) in one place.
 */
import { jsonToStruct, type JsonValue, type StructObject } from './protos';

export type BodyMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL' | 'FULL_DUPLEX_STREAMED';
export const BODY_MODES: readonly BodyMode[] = ['NONE', 'STREAMED', 'BUFFERED', 'BUFFERED_PARTIAL', 'FULL_DUPLEX_STREAMED'];

export function isBodyMode(v: unknown): v is BodyMode {
  return typeof v === 'string' && (BODY_MODES as readonly string[]).includes(v);
}

export interface HeaderValue {
  key?: string;
  value?: string;
  raw_value?: Buffer;
}

export interface HeaderMap {
  headers?: HeaderValue[];
}

export interface HttpHeaders {
  headers?: HeaderMap | null;
  end_of_stream?: boolean;
}

export interface HttpBody {
  body?: Buffer;
  end_of_stream?: boolean;
}

export interface HttpTrailers {
  trailers?: HeaderMap | null;
}

export type RequestKind =
  | 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';

export interface ProcessingRequest {
  /** The set member of the `request` oneof (proto-loader's `oneofs: true`). */
  request?: RequestKind;
  request_headers?: HttpHeaders | null;
  response_headers?: HttpHeaders | null;
  request_body?: HttpBody | null;
  response_body?: HttpBody | null;
  request_trailers?: HttpTrailers | null;
  response_trailers?: HttpTrailers | null;
  metadata_context?: { filter_metadata?: Record<string, StructObject> } | null;
  observability_mode?: boolean;
  protocol_config?: {
    request_body_mode?: string;
    response_body_mode?: string;
    send_body_without_waiting_for_header_response?: boolean;
  } | null;
}

export interface HeaderValueOption {
  header: { key: string; raw_value: Buffer };
  append_action: 'OVERWRITE_IF_EXISTS_OR_ADD';
}

export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}

export interface CommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: HeaderMutation;
  body_mutation?: { body?: Buffer; clear_body?: boolean; streamed_response?: { body: Buffer; end_of_stream: boolean } };
  clear_route_cache?: boolean;
}

export type Phase = 'request' | 'response';

/** A ProcessingResponse: exactly one oneof member plus optional dynamic metadata. */
export type ProcessingResponse = Record<string, unknown>;

/** Header values go out in `raw_value`, the field Envoy itself uses for ext_proc header values. */
export function headerMutation(headers: Readonly<Record<string, string>>): HeaderMutation {
  return {
    set_headers: Object.entries(headers).map(([key, value]) => ({
      header: { key: key.toLowerCase(), raw_value: Buffer.from(value, 'utf8') },
      append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
    })),
  };
}

export function headersResponse(phase: Phase, response: CommonResponse = {}, dynamicMetadata?: StructObject): ProcessingResponse {
  const msg: ProcessingResponse = { [`${phase}_headers`]: { response } };
  if (dynamicMetadata) msg.dynamic_metadata = dynamicMetadata;
  return msg;
}

export function bodyResponse(phase: Phase, response: CommonResponse = {}, dynamicMetadata?: StructObject): ProcessingResponse {
  const msg: ProcessingResponse = { [`${phase}_body`]: { response } };
  if (dynamicMetadata) msg.dynamic_metadata = dynamicMetadata;
  return msg;
}

export function streamedBodyChunk(phase: Phase, body: Buffer, endOfStream: boolean): ProcessingResponse {
  return bodyResponse(phase, { body_mutation: { streamed_response: { body, end_of_stream: endOfStream } } });
}

export function trailersResponse(phase: Phase): ProcessingResponse {
  return { [`${phase}_trailers`]: {} };
}

/**
 * A message that only asks Envoy to restart its message timer with `ms` (`override_message_timeout`, no response
 * member): Envoy honours it while it waits for an answer, once per answer, when 1 ms <= `ms` <= the filter's
 * `max_message_timeout` (`ext_proc.cc` onNewTimeout @ v1.35.0), and ignores it otherwise.
 */
export function messageTimeoutOverride(ms: number): ProcessingResponse {
  const whole = Math.max(0, Math.floor(ms));
  return { override_message_timeout: { seconds: Math.floor(whole / 1000), nanos: (whole % 1000) * 1_000_000 } };
}

export function immediateResponse(status: number, body: Buffer, headers: Readonly<Record<string, string>>, details: string): ProcessingResponse {
  return {
    immediate_response: {
      status: { code: status },
      headers: headerMutation(headers),
      body,
      details,
    },
  };
}

/** `{ <namespace>: { <key>: <value> } }`, or `{ <key>: <value> }` when the namespace is empty (as upstream does). */
export function destinationMetadata(namespace: string, key: string, endpoint: string, scores?: Readonly<Record<string, number>>): StructObject {
  // llm-d-router v0.10.0 `pkg/epp/handlers/request.go` generateMetadata: with --emit-endpoint-scores, every scored
  // endpoint's score beside the pick, under `<key>-scores` (metadata.DestinationEndpointScoresKey).
  const fields: Record<string, JsonValue> = scores !== undefined && Object.keys(scores).length > 0 ? { [key]: endpoint, [`${key}-scores`]: { ...scores } } : { [key]: endpoint };
  return namespace ? jsonToStruct({ [namespace]: fields }) : jsonToStruct(fields);
}

/**
 * Splits a body into pieces of at most `max` bytes without copying (subarray views). An empty body yields one empty
 * piece, so a stream that had a body phase still gets a terminating chunk.
 */
export function chunk(body: Buffer, max: number): Buffer[] {
  if (body.length === 0) return [body];
  const out: Buffer[] = [];
  for (let off = 0; off < body.length; off += max) out.push(body.subarray(off, Math.min(off + max, body.length)));
  return out;
}

/**
 * The value `headerMapToMap(map).get(name)` has, read without building the map: only the matching header's value is
 * decoded. `name` matches a header whose lower-cased name it equals (so an upper-case `name` matches nothing, as in the
 * map).
 */
export function headerValue(map: HeaderMap | null | undefined, name: string): string | undefined {
  const headers = map?.headers;
  if (headers === undefined) return undefined;
  // From the end: the last entry of the name is its value.
  for (let i = headers.length - 1; i >= 0; i--) {
    const h = headers[i]!;
    // toLowerCase returns the same string when there is nothing to lower (Envoy sends lower-case names).
    if (h.key && h.key.toLowerCase() === name) return headerText(h);
  }
  return undefined;
}

/**
 * `headerMapToMap(map)` as a `ReadonlyMap` built only when more than `get`/`has` is asked of it: a reader of one or two
 * headers (request control reads the response's `content-type`) decodes only those.
 */
export class HeaderMapView implements ReadonlyMap<string, string> {
  private built: Map<string, string> | undefined;

  constructor(private readonly map: HeaderMap | null | undefined) {}

  get(name: string): string | undefined {
    return this.built !== undefined ? this.built.get(name) : headerValue(this.map, name);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  get size(): number {
    return this.all().size;
  }

  forEach(callback: (value: string, key: string, map: ReadonlyMap<string, string>) => void, thisArg?: unknown): void {
    this.all().forEach((value, key) => callback.call(thisArg, value, key, this));
  }

  entries(): MapIterator<[string, string]> {
    return this.all().entries();
  }

  keys(): MapIterator<string> {
    return this.all().keys();
  }

  values(): MapIterator<string> {
    return this.all().values();
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.all()[Symbol.iterator]();
  }

  private all(): Map<string, string> {
    return (this.built ??= headerMapToMap(this.map));
  }
}

/** A header's value: its `raw_value` bytes as UTF-8 when Envoy sent them, else `value` (Envoy sets one or the other). */
function headerText(h: HeaderValue): string {
  return h.raw_value && h.raw_value.length > 0 ? h.raw_value.toString('utf8') : (h.value ?? '');
}

/**
 * Lower-case name → value, preferring `raw_value`. Of a name Envoy sends more than once (a repeated custom header comes
 * as separate entries), the last value: GIE v1.5.0 `pkg/epp/handlers/request.go` HandleRequestHeaders and
 * `response.go` HandleResponseHeaders set their header map once per entry, and read the rewrite target, objective and
 * fairness id from it, as llm-d-router v0.10.0's do; joined, `a,b` would name a model or objective neither sent.
 */
export function headerMapToMap(map: HeaderMap | null | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of map?.headers ?? []) {
    if (h.key) out.set(h.key.toLowerCase(), headerText(h));
  }
  return out;
}
