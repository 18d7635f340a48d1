/**
 * A lean reader of `ProcessingRequest` bytes for an ext_proc server on its hot path. proto-loader's deserializer
 * decodes a message with protobufjs and then copies the whole tree into its object form (`toObject` with
 * `defaults: true`): every header becomes a second object with a fresh empty Buffer for a missing `raw_value`, and every
 * message gets every default member (`attributes`, `observability_mode`, ...). Each request's three messages cost
 * ~2.8 KB of garbage and ~1.5 µs that way (epp/README.md, "Where the CPU goes", sixth round).
 *
 * This reader decodes with the same protobufjs types and hands on the decoded messages of the members an ext_proc
 * server reads (`ProcessingRequest` in `ext-proc-messages.ts`): the `request` oneof's name, the headers' `key`,
 * `value` and `raw_value`, `end_of_stream`, a body as a Buffer (an empty one when absent), and `metadata_context`,
 * `protocol_config` and `observability_mode` in proto-loader's object form. A message with more than one member of the
 * oneof set, which no proxy sends, gets proto-loader's own object form, so the member `request` names is the one it
 * would name. Bytes that do not decode throw the same protobufjs error.
 */
import type * as protobuf from 'protobufjs';
import { loadEnvoyApi, PROTO_LOADER_OPTIONS, type EnvoyApi } from './protos';
import type { HttpBody, HttpHeaders, HttpTrailers, ProcessingRequest, RequestKind } from './ext-proc-messages';

/** The members of the `request` oneof in declaration order (the order proto-loader's `toObject` sets `request` in). */
const REQUEST_KINDS: readonly RequestKind[] = ['request_headers', 'response_headers', 'request_body', 'response_body', 'request_trailers', 'response_trailers'];

type Decoded = Record<string, unknown>;

const EMPTY_BODY = Buffer.alloc(0);

/** Reads `envoy.service.ext_proc.v3.ProcessingRequest` bytes; see the module comment for what it keeps. */
export function processingRequestReader(api: EnvoyApi = loadEnvoyApi()): (bytes: Buffer) => ProcessingRequest {
  const type = api.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
  const metadataType = api.lookupType('envoy.config.core.v3.Metadata');
  const protocolConfigType = api.lookupType('envoy.service.ext_proc.v3.ProtocolConfiguration');
  const objectForm = (t: protobuf.Type, m: unknown) => t.toObject(m as protobuf.Message, PROTO_LOADER_OPTIONS);
  return (bytes) => {
    const m = type.decode(bytes) as unknown as Decoded;
    let kind: RequestKind | undefined;
    let set = 0;
    for (const k of REQUEST_KINDS) {
      if (m[k] !== undefined && m[k] !== null) {
        kind = k;
        set++;
      }
    }
    if (set > 1) return objectForm(type, m) as ProcessingRequest;
    const out: ProcessingRequest = {
      metadata_context: m.metadata_context !== undefined && m.metadata_context !== null ? objectForm(metadataType, m.metadata_context) : null,
      observability_mode: m.observability_mode === true,
      protocol_config: m.protocol_config !== undefined && m.protocol_config !== null ? objectForm(protocolConfigType, m.protocol_config) : null,
    };
    switch (kind) {
      case 'request_headers':
      case 'response_headers': {
        // The decoded HttpHeaders: `headers` is a HeaderMap whose `headers` are HeaderValues (key, value, raw_value;
        // a missing raw_value reads as an empty array, which every reader treats as empty).
        const h = m[kind] as HttpHeaders;
        out[kind] = { headers: h.headers ?? null, end_of_stream: h.end_of_stream === true };
        break;
      }
      case 'request_body':
      case 'response_body': {
        const b = m[kind] as HttpBody;
        out[kind] = { body: Buffer.isBuffer(b.body) ? b.body : EMPTY_BODY, end_of_stream: b.end_of_stream === true };
        break;
      }
      case 'request_trailers':
      case 'response_trailers':
        out[kind] = { trailers: (m[kind] as HttpTrailers).trailers ?? null };
        break;
      case undefined:
        return out;
    }
    out.request = kind;
    return out;
  };
}
