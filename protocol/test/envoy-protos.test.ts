import * as protobuf from 'protobufjs';
import { fromJSON, type MessageTypeDefinition, type ServiceDefinition } from '@grpc/proto-loader';
import {
  jsonToStruct,
  loadEnvoyApi,
  loadPristineEnvoyRoot,
  lookupTypeByUrl,
  PROTO_LOADER_OPTIONS,
  structToJson,
  typeNameFromUrl,
  typeUrl,
} from '@kvroute/protocol/envoy';

const EXT_PROC = 'envoy.service.ext_proc.v3';
const BODY_SEND_MODE = 'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode';
const OVERRIDE_HOST = 'envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost';

type Json = Record<string, any>;

function field(root: protobuf.Root, typeName: string, name: string): protobuf.Field {
  const f = root.lookupType(typeName).fields[name];
  if (!f) throw new Error(`${typeName}.${name} missing`);
  f.resolve();
  return f;
}

function typeOf(f: protobuf.Field): string {
  return f.resolvedType ? f.resolvedType.fullName.slice(1) : f.type;
}

/** Walks `nested` objects of a protobufjs JSON namespace by dotted name. */
function nsJson(json: Json, dotted: string): Json {
  let cur = json;
  for (const part of dotted.split('.')) {
    cur = cur.nested?.[part];
    if (!cur) throw new Error(`no ${dotted} in JSON`);
  }
  return cur;
}

describe('Envoy protos', () => {
  const api = loadEnvoyApi();
  const root = api.root;

  it('the package snapshot still lacks exactly what the reference says it lacks', () => {
    const pristine = loadPristineEnvoyRoot();
    expect(pristine.lookupEnum(BODY_SEND_MODE).values.FULL_DUPLEX_STREAMED).toBeUndefined();
    expect(pristine.lookup(`${EXT_PROC}.StreamedBodyResponse`)).toBeNull();
    expect(pristine.lookup(`${EXT_PROC}.ProtocolConfiguration`)).toBeNull();
    expect(pristine.lookupType(`${EXT_PROC}.BodyMutation`).fields.streamed_response).toBeUndefined();
    expect(pristine.lookupType(`${EXT_PROC}.ProcessingRequest`).fields.protocol_config).toBeUndefined();
    expect(pristine.lookup(OVERRIDE_HOST)).toBeNull();
    expect(api.added).toEqual([
      `${BODY_SEND_MODE}.FULL_DUPLEX_STREAMED`,
      `${EXT_PROC}.StreamedBodyResponse`,
      `${EXT_PROC}.BodyMutation.streamed_response`,
      `${EXT_PROC}.ProtocolConfiguration`,
      `${EXT_PROC}.ProcessingRequest.protocol_config`,
      'envoy.extensions.filters.http.ext_proc.v3.ExtProcOverrides.failure_mode_allow',
      OVERRIDE_HOST,
      `${OVERRIDE_HOST}.OverrideHostSource`,
    ]);
    expect(pristine.lookupType('envoy.extensions.filters.http.ext_proc.v3.ExtProcOverrides').fields.failure_mode_allow).toBeUndefined();
  });

  it('adds ExtProcOverrides.failure_mode_allow = 8 (Envoy v1.35.0, #40014), the per-route fail-open Istio sets', () => {
    const f = field(root, 'envoy.extensions.filters.http.ext_proc.v3.ExtProcOverrides', 'failure_mode_allow');
    expect([f.id, typeOf(f)]).toEqual([8, 'google.protobuf.BoolValue']);
  });

  it('adds FULL_DUPLEX_STREAMED = 4 next to the existing body modes', () => {
    expect(root.lookupEnum(BODY_SEND_MODE).values).toEqual({
      NONE: 0, STREAMED: 1, BUFFERED: 2, BUFFERED_PARTIAL: 3, FULL_DUPLEX_STREAMED: 4,
    });
  });

  it('adds StreamedBodyResponse and BodyMutation.streamed_response = 3 inside the mutation oneof', () => {
    const body = field(root, `${EXT_PROC}.StreamedBodyResponse`, 'body');
    const eos = field(root, `${EXT_PROC}.StreamedBodyResponse`, 'end_of_stream');
    expect([body.id, body.type, eos.id, eos.type]).toEqual([1, 'bytes', 2, 'bool']);
    expect(root.lookupType(`${EXT_PROC}.StreamedBodyResponse`).fieldsArray).toHaveLength(2);

    const sr = field(root, `${EXT_PROC}.BodyMutation`, 'streamed_response');
    expect(sr.id).toBe(3);
    expect(typeOf(sr)).toBe(`${EXT_PROC}.StreamedBodyResponse`);
    expect(sr.partOf?.name).toBe('mutation');
    expect(root.lookupType(`${EXT_PROC}.BodyMutation`).oneofs.mutation.oneof).toEqual(['body', 'clear_body', 'streamed_response']);
  });

  it('adds ProtocolConfiguration and ProcessingRequest.protocol_config = 11', () => {
    const t = `${EXT_PROC}.ProtocolConfiguration`;
    const req = field(root, t, 'request_body_mode');
    const res = field(root, t, 'response_body_mode');
    const wait = field(root, t, 'send_body_without_waiting_for_header_response');
    expect([req.id, typeOf(req), res.id, typeOf(res), wait.id, wait.type]).toEqual([
      1, BODY_SEND_MODE, 2, BODY_SEND_MODE, 3, 'bool',
    ]);
    const pc = field(root, `${EXT_PROC}.ProcessingRequest`, 'protocol_config');
    expect([pc.id, typeOf(pc), pc.partOf]).toEqual([11, t, null]);
  });

  it('adds OverrideHost with its validation rules', () => {
    const sources = field(root, OVERRIDE_HOST, 'override_host_sources');
    const selected = field(root, OVERRIDE_HOST, 'selected_host_key');
    const fallback = field(root, OVERRIDE_HOST, 'fallback_policy');
    expect([sources.id, sources.repeated, typeOf(sources)]).toEqual([1, true, `${OVERRIDE_HOST}.OverrideHostSource`]);
    expect([selected.id, typeOf(selected)]).toEqual([2, 'envoy.type.metadata.v3.MetadataKey']);
    expect([fallback.id, typeOf(fallback)]).toEqual([3, 'envoy.config.cluster.v3.LoadBalancingPolicy']);
    expect(sources.options).toEqual({ '(validate.rules).repeated.min_items': 1 });
    expect(fallback.options).toEqual({ '(validate.rules).message.required': true });
    const header = field(root, `${OVERRIDE_HOST}.OverrideHostSource`, 'header');
    const metadata = field(root, `${OVERRIDE_HOST}.OverrideHostSource`, 'metadata');
    expect([header.id, header.type, metadata.id, typeOf(metadata)]).toEqual([
      1, 'string', 2, 'envoy.type.metadata.v3.MetadataKey',
    ]);
  });

  it('leaves every other type, field, option and enum value exactly as the package defines them', () => {
    const pristine = loadPristineEnvoyRoot().toJSON() as Json;
    const patched = JSON.parse(JSON.stringify(root.toJSON())) as Json;
    expect(Object.keys(pristine.nested)).toEqual(expect.arrayContaining(['envoy', 'google', 'validate', 'udpa', 'xds']));

    // Strip exactly the reference doc's additions (and the health service, which is not an Envoy proto).
    delete patched.nested.grpc;
    delete nsJson(patched, 'envoy.extensions.load_balancing_policies').nested.override_host;
    delete nsJson(patched, BODY_SEND_MODE).values.FULL_DUPLEX_STREAMED;
    const extProc = nsJson(patched, EXT_PROC);
    delete extProc.nested.StreamedBodyResponse;
    delete extProc.nested.ProtocolConfiguration;
    delete extProc.nested.ProcessingRequest.fields.protocol_config;
    delete nsJson(patched, 'envoy.extensions.filters.http.ext_proc.v3.ExtProcOverrides').fields.failure_mode_allow;
    const bodyMutation = extProc.nested.BodyMutation;
    delete bodyMutation.fields.streamed_response;
    bodyMutation.oneofs.mutation.oneof = bodyMutation.oneofs.mutation.oneof.filter((n: string) => n !== 'streamed_response');

    expect(patched).toEqual(pristine);
  });

  it('gives proto-loader the same descriptors as the package for everything not touched', () => {
    const pristine = fromJSON(loadPristineEnvoyRoot().toJSON(), PROTO_LOADER_OPTIONS);
    const touched = new Set([
      `${EXT_PROC}.BodyMutation`, `${EXT_PROC}.ProcessingRequest`,
      'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode', BODY_SEND_MODE,
      'envoy.extensions.filters.http.ext_proc.v3.ExtProcOverrides',
    ]);
    const keys = Object.keys(pristine);
    expect(keys.length).toBeGreaterThan(150);
    for (const key of keys) {
      const before = pristine[key] as unknown as Json;
      const after = api.packageDefinition[key] as unknown as Json;
      expect(after).toBeDefined();
      if (touched.has(key)) continue;
      if ('type' in before) expect({ key, type: after.type }).toEqual({ key, type: before.type });
      else expect({ key, paths: Object.values(after).map((m: Json) => m.path) })
        .toEqual({ key, paths: Object.values(before).map((m: Json) => m.path) });
    }
  });

  it('hands the patched definitions to proto-loader', () => {
    const bodyMutation = api.packageDefinition[`${EXT_PROC}.BodyMutation`] as MessageTypeDefinition<object, object>;
    const desc = bodyMutation.type as unknown as { field: { name: string; number: number; oneofIndex?: number }[] };
    expect(desc.field.find((f) => f.name === 'streamed_response')).toMatchObject({ number: 3, oneofIndex: 0 });
    expect(api.packageDefinition[OVERRIDE_HOST]).toBeDefined();
    expect(api.packageDefinition['grpc.health.v1.Health']).toBeDefined();
  });

  it('round-trips a ProcessingResponse carrying a StreamedBodyResponse through the gRPC serializers', () => {
    const process = (api.packageDefinition[`${EXT_PROC}.ExternalProcessor`] as ServiceDefinition).Process;
    const chunk = Buffer.alloc(70_000);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + 7) & 0xff;
    const wire = process.responseSerialize({
      request_body: { response: { body_mutation: { streamed_response: { body: chunk, end_of_stream: true } } } },
      dynamic_metadata: jsonToStruct({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.1:8000', n: [1, true, null] } }),
    });
    // The independent protobufjs root decodes what the proto-loader serializer wrote.
    const viaRoot = root.lookupType(`${EXT_PROC}.ProcessingResponse`).decode(wire) as unknown as Json;
    expect(Buffer.from(viaRoot.request_body.response.body_mutation.streamed_response.body).equals(chunk)).toBe(true);
    expect(viaRoot.request_body.response.body_mutation.streamed_response.end_of_stream).toBe(true);

    const back = process.responseDeserialize(wire) as Json;
    expect(back.response).toBe('request_body');
    expect(back.request_body.response.body_mutation.mutation).toBe('streamed_response');
    expect(Buffer.isBuffer(back.request_body.response.body_mutation.streamed_response.body)).toBe(true);
    expect(back.request_body.response.body_mutation.streamed_response.body.equals(chunk)).toBe(true);
    // protobufjs's bundled Value has lowerCamel member names even with keepCase.
    expect(back.dynamic_metadata.fields['envoy.lb'].structValue.fields['x-gateway-destination-endpoint'].stringValue)
      .toBe('10.0.0.1:8000');
    expect(structToJson(back.dynamic_metadata)).toEqual({
      'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.1:8000', n: [1, true, null] },
    });

    // A pristine decoder sees field 3 as unknown: the addition is what makes the chunk readable at all.
    const pristine = loadPristineEnvoyRoot().lookupType(`${EXT_PROC}.ProcessingResponse`).decode(wire) as unknown as Json;
    expect(pristine.request_body.response.body_mutation.streamed_response).toBeUndefined();
  });

  it('round-trips protocol_config in a ProcessingRequest with enum names', () => {
    const process = (api.packageDefinition[`${EXT_PROC}.ExternalProcessor`] as ServiceDefinition).Process;
    const wire = process.requestSerialize({
      request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/models') }] }, end_of_stream: true },
      protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'BUFFERED' },
    });
    const back = process.requestDeserialize(wire) as Json;
    expect(back.request).toBe('request_headers');
    expect(back.protocol_config).toEqual({
      request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'BUFFERED', send_body_without_waiting_for_header_response: false,
    });
    expect(back.request_headers.headers.headers[0].raw_value.toString()).toBe('/v1/models');
  });

  it('maps type URLs to types', () => {
    expect(typeUrl(OVERRIDE_HOST)).toBe(`type.googleapis.com/${OVERRIDE_HOST}`);
    expect(typeNameFromUrl('example.com/a/b.C')).toBe('b.C');
    expect(lookupTypeByUrl(root, typeUrl(OVERRIDE_HOST))?.fullName).toBe(`.${OVERRIDE_HOST}`);
    expect(api.lookupTypeByUrl('type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin'))
      .toBeDefined();
    expect(lookupTypeByUrl(root, 'type.googleapis.com/envoy.nope.v3.Missing')).toBeUndefined();
    expect(lookupTypeByUrl(root, `type.googleapis.com/${BODY_SEND_MODE}`)).toBeUndefined();
    expect(lookupTypeByUrl(root, OVERRIDE_HOST)).toBeUndefined();
    expect(loadEnvoyApi()).toBe(api);
  });
});
