/**
 * Envoy's API protos, loaded once from the copy `@grpc/grpc-js-xds` ships, plus the few members kvroute needs that this
 * snapshot predates (`FULL_DUPLEX_STREAMED`, `StreamedBodyResponse`, `protocol_config`, the `override_host` policy; as
 * envoyproxy/envoy defines them in api/envoy/{service,extensions/filters/http}/ext_proc/v3/*.proto and
 * api/envoy/extensions/load_balancing_policies/override_host/v3/override_host.proto @ v1.35.0). The additions are made by protobufjs reflection
 * on the loaded root, never by hand-written copies of whole proto files, so everything else stays exactly as the package
 * defines it (a test compares the patched root with a pristine load).
 *
 * The same module serves three users: the EPP's ext_proc server (gRPC package definition), the local gateway (its
 * client), and the cdk8s tests (`@kvroute/testkit`'s proto-JSON checker validates embedded Envoy config against `root`).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as protobuf from 'protobufjs';
import { fromJSON, type Options as ProtoLoaderOptions, type PackageDefinition } from '@grpc/proto-loader';

/** Entry files; their imports pull in `envoy.config.core.v3`, `google.protobuf`, `validate`, `udpa`, `xds`. */
export const ENVOY_PROTO_FILES: readonly string[] = Object.freeze([
  'envoy/service/ext_proc/v3/external_processor.proto',
  'envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto',
  'envoy/extensions/filters/http/ext_proc/v3/processing_mode.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/core/v3/base.proto',
  'envoy/config/core/v3/grpc_service.proto',
  'envoy/config/core/v3/extension.proto',
  'envoy/type/metadata/v3/metadata.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
]);

/**
 * Options for `@grpc/proto-loader`. Chosen so that objects read naturally next to Envoy's YAML/JSON config and survive
 * logging: proto field names (keepCase), 64-bit ints as strings (no precision loss, no Long objects), enums as their
 * names, defaults filled in (a missing `end_of_stream` reads as `false`, a missing `raw_value` as an empty Buffer), and
 * a virtual property naming the set member of each oneof (`request: 'request_body'`) so the stream state machine can
 * switch on it. `bytes` stay Buffers (the default), which is what body chunks should be.
 */
export const PROTO_LOADER_OPTIONS: ProtoLoaderOptions = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** The type URL Envoy expects in an `Any` for a message, e.g. in `typed_config`. */
export function typeUrl(fullName: string): string {
  return TYPE_URL_PREFIX + fullName.replace(/^\./, '');
}

/** The message name an `Any` type URL refers to: everything after the last `/` (any host prefix is allowed). */
export function typeNameFromUrl(url: string): string {
  const slash = url.lastIndexOf('/');
  return slash < 0 ? url : url.slice(slash + 1);
}

/** Resolves an `Any` type URL to a message type of `root`; undefined when it names nothing (or not a message). */
export function lookupTypeByUrl(root: protobuf.Root, url: string): protobuf.Type | undefined {
  const name = typeNameFromUrl(url);
  if (!name || url.indexOf('/') < 0) return undefined;
  const found = root.lookup(name.startsWith('.') ? name : '.' + name);
  return found instanceof protobuf.Type ? found : undefined;
}

/** Directories imports are resolved against, in order. */
export function envoyProtoIncludeDirs(): string[] {
  const xdsDir = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const dirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(xdsDir, 'deps', d));
  // googleapis in that package has no google/protobuf/*.proto; protobufjs bundles the well-known types, and ships
  // descriptor.proto (imported by validate/udpa annotations) in its own google/ folder.
  dirs.push(path.dirname(require.resolve('protobufjs/package.json')));
  for (const d of dirs) {
    if (!fs.existsSync(d)) throw new Error(`Envoy proto include dir missing: ${d}`);
  }
  return dirs;
}

/** Loads the package's protos without any additions (the baseline the tests compare against). */
export function loadPristineEnvoyRoot(extraFiles: readonly string[] = []): protobuf.Root {
  const dirs = envoyProtoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    if (path.isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    // protobufjs silently skips an import whose path resolves to null; a missing import must be loud instead.
    throw new Error(`proto import not found in ${dirs.join(', ')}: ${target}`);
  };
  root.loadSync([...ENVOY_PROTO_FILES, ...extraFiles], { keepCase: true });
  root.resolveAll();
  return root;
}

// ---------------------------------------------------------------------------------------------------------------------
// Additions: a declarative description of every member kvroute needs beyond the package's snapshot. Members the package already has
// are verified (same number, type, label, oneof); missing ones are added; a conflicting definition throws, because it
// would mean the package moved on and this list needs review.

type Label = 'optional' | 'repeated';

interface FieldSpec {
  readonly name: string;
  readonly id: number;
  /** A scalar type name, or a fully-qualified message/enum name with a leading dot. */
  readonly type: string;
  readonly label?: Label;
  /** Key type for map fields. */
  readonly mapKey?: string;
  readonly oneof?: string;
  /** protoc-gen-validate rules in protobufjs's flattened option form, kept so `proto-json.ts` can enforce them. */
  readonly options?: Readonly<Record<string, unknown>>;
}

interface MessageSpec {
  readonly fullName: string;
  readonly fields: readonly FieldSpec[];
}

interface EnumSpec {
  readonly fullName: string;
  readonly values: Readonly<Record<string, number>>;
}

const EXT_PROC = 'envoy.service.ext_proc.v3';
const PROCESSING_MODE = 'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode';
const BODY_SEND_MODE = `.${PROCESSING_MODE}.BodySendMode`;
const OVERRIDE_HOST = 'envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost';

const ENUM_SPECS: readonly EnumSpec[] = [
  {
    fullName: `${PROCESSING_MODE}.BodySendMode`,
    values: { NONE: 0, STREAMED: 1, BUFFERED: 2, BUFFERED_PARTIAL: 3, FULL_DUPLEX_STREAMED: 4 },
  },
  { fullName: `${EXT_PROC}.CommonResponse.ResponseStatus`, values: { CONTINUE: 0, CONTINUE_AND_REPLACE: 1 } },
];

const DEFINED_ONLY = { '(validate.rules).enum.defined_only': true } as const;

const MESSAGE_SPECS: readonly MessageSpec[] = [
  { fullName: `${EXT_PROC}.StreamedBodyResponse`, fields: [
    { name: 'body', id: 1, type: 'bytes' },
    { name: 'end_of_stream', id: 2, type: 'bool' },
  ] },
  { fullName: `${EXT_PROC}.BodyMutation`, fields: [
    { name: 'body', id: 1, type: 'bytes', oneof: 'mutation' },
    { name: 'clear_body', id: 2, type: 'bool', oneof: 'mutation' },
    { name: 'streamed_response', id: 3, type: `.${EXT_PROC}.StreamedBodyResponse`, oneof: 'mutation' },
  ] },
  { fullName: `${EXT_PROC}.ProtocolConfiguration`, fields: [
    { name: 'request_body_mode', id: 1, type: BODY_SEND_MODE, options: DEFINED_ONLY },
    { name: 'response_body_mode', id: 2, type: BODY_SEND_MODE, options: DEFINED_ONLY },
    { name: 'send_body_without_waiting_for_header_response', id: 3, type: 'bool' },
  ] },
  { fullName: `${EXT_PROC}.ProcessingRequest`, fields: [
    { name: 'request_headers', id: 2, type: `.${EXT_PROC}.HttpHeaders`, oneof: 'request' },
    { name: 'response_headers', id: 3, type: `.${EXT_PROC}.HttpHeaders`, oneof: 'request' },
    { name: 'request_body', id: 4, type: `.${EXT_PROC}.HttpBody`, oneof: 'request' },
    { name: 'response_body', id: 5, type: `.${EXT_PROC}.HttpBody`, oneof: 'request' },
    { name: 'request_trailers', id: 6, type: `.${EXT_PROC}.HttpTrailers`, oneof: 'request' },
    { name: 'response_trailers', id: 7, type: `.${EXT_PROC}.HttpTrailers`, oneof: 'request' },
    { name: 'metadata_context', id: 8, type: '.envoy.config.core.v3.Metadata' },
    { name: 'attributes', id: 9, type: '.google.protobuf.Struct', mapKey: 'string' },
    { name: 'observability_mode', id: 10, type: 'bool' },
    { name: 'protocol_config', id: 11, type: `.${EXT_PROC}.ProtocolConfiguration` },
  ] },
  { fullName: `${EXT_PROC}.ProcessingResponse`, fields: [
    { name: 'request_headers', id: 1, type: `.${EXT_PROC}.HeadersResponse`, oneof: 'response' },
    { name: 'response_headers', id: 2, type: `.${EXT_PROC}.HeadersResponse`, oneof: 'response' },
    { name: 'request_body', id: 3, type: `.${EXT_PROC}.BodyResponse`, oneof: 'response' },
    { name: 'response_body', id: 4, type: `.${EXT_PROC}.BodyResponse`, oneof: 'response' },
    { name: 'request_trailers', id: 5, type: `.${EXT_PROC}.TrailersResponse`, oneof: 'response' },
    { name: 'response_trailers', id: 6, type: `.${EXT_PROC}.TrailersResponse`, oneof: 'response' },
    { name: 'immediate_response', id: 7, type: `.${EXT_PROC}.ImmediateResponse`, oneof: 'response' },
    { name: 'dynamic_metadata', id: 8, type: '.google.protobuf.Struct' },
    { name: 'mode_override', id: 9, type: `.${PROCESSING_MODE}` },
    { name: 'override_message_timeout', id: 10, type: '.google.protobuf.Duration' },
  ] },
  { fullName: `${EXT_PROC}.HttpHeaders`, fields: [
    { name: 'headers', id: 1, type: '.envoy.config.core.v3.HeaderMap' },
    { name: 'attributes', id: 2, type: '.google.protobuf.Struct', mapKey: 'string' },
    { name: 'end_of_stream', id: 3, type: 'bool' },
  ] },
  { fullName: `${EXT_PROC}.HttpBody`, fields: [
    { name: 'body', id: 1, type: 'bytes' },
    { name: 'end_of_stream', id: 2, type: 'bool' },
  ] },
  { fullName: `${EXT_PROC}.HttpTrailers`, fields: [
    { name: 'trailers', id: 1, type: '.envoy.config.core.v3.HeaderMap' },
  ] },
  { fullName: `${EXT_PROC}.HeadersResponse`, fields: [
    { name: 'response', id: 1, type: `.${EXT_PROC}.CommonResponse` },
  ] },
  { fullName: `${EXT_PROC}.BodyResponse`, fields: [
    { name: 'response', id: 1, type: `.${EXT_PROC}.CommonResponse` },
  ] },
  { fullName: `${EXT_PROC}.TrailersResponse`, fields: [
    { name: 'header_mutation', id: 1, type: `.${EXT_PROC}.HeaderMutation` },
  ] },
  { fullName: `${EXT_PROC}.CommonResponse`, fields: [
    { name: 'status', id: 1, type: `.${EXT_PROC}.CommonResponse.ResponseStatus` },
    { name: 'header_mutation', id: 2, type: `.${EXT_PROC}.HeaderMutation` },
    { name: 'body_mutation', id: 3, type: `.${EXT_PROC}.BodyMutation` },
    { name: 'trailers', id: 4, type: '.envoy.config.core.v3.HeaderMap' },
    { name: 'clear_route_cache', id: 5, type: 'bool' },
  ] },
  { fullName: `${EXT_PROC}.ImmediateResponse`, fields: [
    { name: 'status', id: 1, type: '.envoy.type.v3.HttpStatus' },
    { name: 'headers', id: 2, type: `.${EXT_PROC}.HeaderMutation` },
    { name: 'body', id: 3, type: 'bytes' },
    { name: 'grpc_status', id: 4, type: `.${EXT_PROC}.GrpcStatus` },
    { name: 'details', id: 5, type: 'string' },
  ] },
  { fullName: `${EXT_PROC}.HeaderMutation`, fields: [
    { name: 'set_headers', id: 1, type: '.envoy.config.core.v3.HeaderValueOption', label: 'repeated' },
    { name: 'remove_headers', id: 2, type: 'string', label: 'repeated' },
  ] },
  // Per-route overrides; failure_mode_allow came with v1.35.0 (#40014), as Istio's native InferencePool routes use it.
  { fullName: 'envoy.extensions.filters.http.ext_proc.v3.ExtProcOverrides', fields: [
    { name: 'processing_mode', id: 1, type: `.${PROCESSING_MODE}` },
    { name: 'async_mode', id: 2, type: 'bool' },
    { name: 'grpc_service', id: 5, type: '.envoy.config.core.v3.GrpcService' },
    { name: 'failure_mode_allow', id: 8, type: '.google.protobuf.BoolValue' },
  ] },
  { fullName: 'envoy.config.core.v3.HeaderValue', fields: [
    { name: 'key', id: 1, type: 'string' },
    { name: 'value', id: 2, type: 'string' },
    { name: 'raw_value', id: 3, type: 'bytes' },
  ] },
  { fullName: 'envoy.type.metadata.v3.MetadataKey', fields: [
    { name: 'key', id: 1, type: 'string' },
    { name: 'path', id: 2, type: '.envoy.type.metadata.v3.MetadataKey.PathSegment', label: 'repeated' },
  ] },
  { fullName: 'envoy.config.cluster.v3.LoadBalancingPolicy', fields: [
    { name: 'policies', id: 1, type: '.envoy.config.cluster.v3.LoadBalancingPolicy.Policy', label: 'repeated' },
  ] },
  // OverrideHost must precede its nested OverrideHostSource, whose parent it is.
  { fullName: OVERRIDE_HOST, fields: [
    { name: 'override_host_sources', id: 1, type: `.${OVERRIDE_HOST}.OverrideHostSource`, label: 'repeated',
      options: { '(validate.rules).repeated.min_items': 1 } },
    { name: 'selected_host_key', id: 2, type: '.envoy.type.metadata.v3.MetadataKey' },
    { name: 'fallback_policy', id: 3, type: '.envoy.config.cluster.v3.LoadBalancingPolicy',
      options: { '(validate.rules).message.required': true } },
  ] },
  { fullName: `${OVERRIDE_HOST}.OverrideHostSource`, fields: [
    { name: 'header', id: 1, type: 'string',
      options: { '(validate.rules).string.well_known_regex': 'HTTP_HEADER_VALUE', '(validate.rules).string.strict': false } },
    { name: 'metadata', id: 2, type: '.envoy.type.metadata.v3.MetadataKey' },
  ] },
];

function conflict(what: string, detail: string): Error {
  return new Error(`@grpc/grpc-js-xds defines ${what} differently from envoy-api-additions.md: ${detail}`);
}

function ensureMessage(root: protobuf.Root, spec: MessageSpec, added: string[]): protobuf.Type {
  const dot = spec.fullName.lastIndexOf('.');
  const parentName = spec.fullName.slice(0, dot);
  const name = spec.fullName.slice(dot + 1);
  // define() walks existing namespaces and types and creates only the missing package levels.
  const parent = root.define(parentName);
  const existing = parent.get(name);
  if (existing && !(existing instanceof protobuf.Type)) throw conflict(spec.fullName, 'not a message');
  let type = existing as protobuf.Type | null;
  if (!type) {
    type = new protobuf.Type(name);
    parent.add(type);
    added.push(spec.fullName);
  }
  const created = !existing;
  for (const f of spec.fields) ensureField(type, spec.fullName, f, created ? null : added);
  return type;
}

function ensureField(type: protobuf.Type, typeName: string, spec: FieldSpec, added: string[] | null): void {
  const where = `${typeName}.${spec.name}`;
  const existing = type.fields[spec.name];
  if (existing) {
    existing.resolve();
    const actualType = existing.resolvedType ? existing.resolvedType.fullName : existing.type;
    const isMap = existing instanceof protobuf.MapField;
    if (existing.id !== spec.id) throw conflict(where, `number ${existing.id}, expected ${spec.id}`);
    if (actualType !== spec.type) throw conflict(where, `type ${actualType}, expected ${spec.type}`);
    if (existing.repeated !== (spec.label === 'repeated')) throw conflict(where, 'label differs');
    if (isMap !== (spec.mapKey !== undefined)) throw conflict(where, 'map-ness differs');
    if (isMap && (existing as protobuf.MapField).keyType !== spec.mapKey) throw conflict(where, 'map key differs');
    if ((existing.partOf?.name ?? undefined) !== spec.oneof) throw conflict(where, 'oneof membership differs');
    return;
  }
  const clash = type.fieldsById[spec.id];
  if (clash) throw conflict(where, `number ${spec.id} is taken by ${clash.name}`);
  if (type.isReservedId(spec.id) || type.isReservedName(spec.name)) throw conflict(where, 'number or name is reserved');
  const options = spec.options ? { ...spec.options } : undefined;
  if (spec.mapKey !== undefined) {
    type.add(new protobuf.MapField(spec.name, spec.id, spec.mapKey, spec.type, options));
  } else if (spec.oneof) {
    const field = new protobuf.Field(spec.name, spec.id, spec.type, spec.label, undefined, options);
    let oneof = type.oneofs?.[spec.oneof];
    if (!oneof) {
      oneof = new protobuf.OneOf(spec.oneof);
      type.add(oneof);
    }
    // OneOf.add also adds the field to the message.
    oneof.add(field);
  } else {
    type.add(new protobuf.Field(spec.name, spec.id, spec.type, spec.label, undefined, options));
  }
  added?.push(where);
}

function ensureEnum(root: protobuf.Root, spec: EnumSpec, added: string[]): void {
  const e = root.lookupEnum(spec.fullName);
  for (const [name, id] of Object.entries(spec.values)) {
    const current = e.values[name];
    if (current === id) continue;
    if (current !== undefined) throw conflict(`${spec.fullName}.${name}`, `number ${current}, expected ${id}`);
    const taken = e.valuesById[id];
    if (taken !== undefined) throw conflict(`${spec.fullName}.${name}`, `number ${id} is taken by ${taken}`);
    e.add(name, id);
    added.push(`${spec.fullName}.${name}`);
  }
}

/**
 * Brings a pristine root up to the members kvroute needs beyond the package's snapshot. Returns what was added: full names of new
 * messages, `Message.field` for fields added to existing messages, `Enum.VALUE` for enum values.
 */
export function applyEnvoyApiAdditions(root: protobuf.Root): string[] {
  const added: string[] = [];
  for (const e of ENUM_SPECS) ensureEnum(root, e, added);
  // Field types are only looked up by resolveAll(), so a field may name a type declared later in the list; the call
  // also proves every reference resolves.
  for (const m of MESSAGE_SPECS) ensureMessage(root, m, added);
  root.resolveAll();
  return added;
}

// ---------------------------------------------------------------------------------------------------------------------
// grpc.health.v1: no installed package ships health.proto (grpc-js has none, grpc-js-xds's deps have none, proto-loader
// has none), so the messages, one enum and the service are declared by reflection. It is not an Envoy proto and is
// kept out of the pristine/patched comparison.

export const HEALTH_SERVICE = 'grpc.health.v1.Health';

export function addGrpcHealthProto(root: protobuf.Root): void {
  if (root.lookup(`.${HEALTH_SERVICE}`)) return;
  const ns = root.define('grpc.health.v1');
  const request = new protobuf.Type('HealthCheckRequest').add(new protobuf.Field('service', 1, 'string'));
  const response = new protobuf.Type('HealthCheckResponse')
    .add(new protobuf.Enum('ServingStatus', { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 }))
    .add(new protobuf.Field('status', 1, 'ServingStatus'));
  // List (grpc/grpc-proto grpc/health/v1/health.proto, 2024): every service the server knows and its status.
  const listRequest = new protobuf.Type('HealthListRequest');
  const listResponse = new protobuf.Type('HealthListResponse').add(new protobuf.MapField('statuses', 1, 'string', 'HealthCheckResponse'));
  const service = new protobuf.Service('Health')
    .add(new protobuf.Method('Check', 'rpc', 'HealthCheckRequest', 'HealthCheckResponse'))
    .add(new protobuf.Method('List', 'rpc', 'HealthListRequest', 'HealthListResponse'))
    .add(new protobuf.Method('Watch', 'rpc', 'HealthCheckRequest', 'HealthCheckResponse', false, true));
  ns.add(request).add(response).add(listRequest).add(listResponse).add(service);
  root.resolveAll();
}

// ---------------------------------------------------------------------------------------------------------------------

export interface EnvoyApi {
  /** The patched protobufjs root (with grpc.health.v1), keepCase field names, options and file names intact. */
  readonly root: protobuf.Root;
  /** For `@grpc/grpc-js`: built by proto-loader's `fromJSON` from `root` with `PROTO_LOADER_OPTIONS`. */
  readonly packageDefinition: PackageDefinition;
  /** What `applyEnvoyApiAdditions` added to the package's definitions. */
  readonly added: readonly string[];
  lookupType(fullName: string): protobuf.Type;
  lookupTypeByUrl(url: string): protobuf.Type | undefined;
}

const cache = new Map<string, EnvoyApi>();

/**
 * The patched Envoy API, built once per process (per set of extra files). `extraFiles` are further entry files
 * relative to the include dirs, e.g. `envoy/config/listener/v3/listener.proto` for a local gateway.
 */
export function loadEnvoyApi(extraFiles: readonly string[] = []): EnvoyApi {
  const key = [...extraFiles].sort().join('\n');
  const hit = cache.get(key);
  if (hit) return hit;
  const root = loadPristineEnvoyRoot(extraFiles);
  const added = Object.freeze(applyEnvoyApiAdditions(root));
  addGrpcHealthProto(root);
  const packageDefinition = fromJSON(root.toJSON(), PROTO_LOADER_OPTIONS);
  const api: EnvoyApi = {
    root,
    packageDefinition,
    added,
    lookupType: (fullName) => root.lookupType(fullName.replace(/^\./, '')),
    lookupTypeByUrl: (url) => lookupTypeByUrl(root, url),
  };
  cache.set(key, api);
  return api;
}

// ---------------------------------------------------------------------------------------------------------------------
// google.protobuf.Struct in proto-loader's object form. protobufjs bundles the well-known types with lowerCamel field
// names for Value (`stringValue`, `structValue`, ...), and no installed package ships struct.proto to load instead, so
// with keepCase these are the names on the wire objects (grpc-js-xds's generated types show the same). These helpers keep
// that quirk in one place.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** proto-loader object form of `google.protobuf.Value`. */
export interface StructValue {
  nullValue?: 'NULL_VALUE' | 0;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructObject;
  listValue?: { values?: StructValue[] };
  kind?: string;
}

/** proto-loader object form of `google.protobuf.Struct`. */
export interface StructObject {
  fields?: Record<string, StructValue>;
}

export function jsonToStructValue(value: JsonValue): StructValue {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(jsonToStructValue) } };
  return { structValue: jsonToStruct(value) };
}

export function jsonToStruct(obj: { [key: string]: JsonValue }): StructObject {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = jsonToStructValue(v);
  return { fields };
}

export function structValueToJson(v: StructValue | null | undefined): JsonValue {
  if (!v) return null;
  // With `oneofs: true` the decoded object names its member; hand-built objects have only the member set.
  const kind = v.kind ?? (['structValue', 'listValue', 'stringValue', 'numberValue', 'boolValue', 'nullValue'] as const)
    .find((k) => v[k] !== undefined && v[k] !== null);
  switch (kind) {
    case 'structValue': return structToJson(v.structValue);
    case 'listValue': return (v.listValue?.values ?? []).map(structValueToJson);
    case 'stringValue': return v.stringValue ?? '';
    case 'numberValue': return v.numberValue ?? 0;
    case 'boolValue': return v.boolValue ?? false;
    default: return null;
  }
}

export function structToJson(s: StructObject | null | undefined): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = structValueToJson(v);
  return out;
}
