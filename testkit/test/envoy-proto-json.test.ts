import * as protobuf from 'protobufjs';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import { checkEnvoyConfig, checkProtoJson, envoyRuleViolations, validateRules } from '../src/envoy-proto-json';

const EXT_PROC_FILTER = 'envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor';
const PER_ROUTE = 'envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute';
const CLUSTER = 'envoy.config.cluster.v3.Cluster';
const OVERRIDE_HOST_URL = 'type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost';

type Json = Record<string, any>;

const { root } = loadEnvoyApi();

function extProcConfig(): Json {
  return {
    grpc_service: {
      envoy_grpc: { cluster_name: 'outbound|9002||kvroute-epp.kvroute.svc.cluster.local', authority: 'kvroute-epp.kvroute.svc:9002' },
      timeout: '10s',
    },
    failure_mode_allow: false,
    processing_mode: {
      request_header_mode: 'SEND',
      request_body_mode: 'FULL_DUPLEX_STREAMED',
      request_trailer_mode: 'SEND',
      response_header_mode: 'SEND',
      response_body_mode: 'FULL_DUPLEX_STREAMED',
      response_trailer_mode: 'SEND',
    },
    message_timeout: '1000s',
    metadata_options: { receiving_namespaces: { untyped: ['envoy.lb'] } },
  };
}

function clusterMerge(): Json {
  return {
    lb_policy: 'CLUSTER_PROVIDED',
    load_balancing_policy: {
      policies: [{
        typed_extension_config: {
          name: 'envoy.load_balancing_policies.override_host',
          typed_config: {
            '@type': OVERRIDE_HOST_URL,
            override_host_sources: [{ metadata: { key: 'envoy.lb', path: [{ key: 'x-gateway-destination-endpoint' }] } }],
            fallback_policy: {
              policies: [{
                typed_extension_config: {
                  name: 'envoy.load_balancing_policies.round_robin',
                  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin' },
                },
              }],
            },
          },
        },
      }],
    },
  };
}

const OH = '$.load_balancing_policy.policies[0].typed_extension_config.typed_config';

describe('checkProtoJson on the configs kvroute writes', () => {
  it('accepts the ext_proc filter config', () => {
    expect(checkEnvoyConfig(root, EXT_PROC_FILTER, extProcConfig())).toEqual([]);
  });

  it('accepts the Cluster MERGE fragment with the override_host policy', () => {
    expect(checkEnvoyConfig(root, CLUSTER, clusterMerge(), { mergePatch: true })).toEqual([]);
  });

  it('treats a fragment as a whole Cluster unless told it is a MERGE patch', () => {
    expect(checkProtoJson(root, CLUSTER, clusterMerge())).toEqual(['$.name: name must be at least 1 character(s) long']);
    expect(checkProtoJson(root, CLUSTER, { ...clusterMerge(), name: 'outbound|8000||vllm.svc' })).toEqual([]);
  });

  it('accepts lowerCamel JSON names and the same config wrapped in an Any', () => {
    const camel = {
      grpcService: { envoyGrpc: { clusterName: 'epp' } },
      processingMode: { requestBodyMode: 'FULL_DUPLEX_STREAMED', requestTrailerMode: 'SEND' },
      messageTimeout: '1000s',
      metadataOptions: { receivingNamespaces: { untyped: ['envoy.lb'] } },
    };
    expect(checkEnvoyConfig(root, EXT_PROC_FILTER, camel)).toEqual([]);
    expect(checkEnvoyConfig(root, 'google.protobuf.Any', {
      '@type': `type.googleapis.com/${EXT_PROC_FILTER}`, ...extProcConfig(),
    })).toEqual([]);
  });
});

describe('checkProtoJson rejects each kind of mistake with a path', () => {
  it('a typo in a field name', () => {
    const cfg = extProcConfig();
    cfg.failure_mode_alow = cfg.failure_mode_allow;
    delete cfg.failure_mode_allow;
    expect(checkProtoJson(root, EXT_PROC_FILTER, cfg)).toEqual([
      `$.failure_mode_alow: unknown field "failure_mode_alow" in ${EXT_PROC_FILTER} (did you mean "failure_mode_allow"?)`,
    ]);
    const nested = clusterMerge();
    nested.load_balancing_policy.policies[0].typed_extension_config.typed_config.override_host_sources[0].metadata.paht = [];
    expect(checkProtoJson(root, CLUSTER, nested, { mergePatch: true })).toEqual([
      expect.stringMatching(/^\$\.load_balancing_policy\.policies\[0\]\.typed_extension_config\.typed_config\.override_host_sources\[0\]\.metadata\.paht: unknown field "paht".*did you mean "path"/),
    ]);
  });

  it('a field given under both of its names', () => {
    const cfg = { ...extProcConfig(), messageTimeout: '5s' };
    expect(checkProtoJson(root, EXT_PROC_FILTER, cfg)).toEqual([
      '$.messageTimeout: field message_timeout is set twice (as "message_timeout" and "messageTimeout")',
    ]);
  });

  it('an invalid enum value', () => {
    const cfg = extProcConfig();
    cfg.processing_mode.request_body_mode = 'FULL_DUPLEX';
    const errors = checkProtoJson(root, EXT_PROC_FILTER, cfg);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^\$\.processing_mode\.request_body_mode: invalid value string "FULL_DUPLEX" for enum .*BodySendMode \(expected one of NONE, STREAMED, BUFFERED, BUFFERED_PARTIAL, FULL_DUPLEX_STREAMED\)$/);
    cfg.processing_mode.request_body_mode = 4;
    expect(checkProtoJson(root, EXT_PROC_FILTER, cfg)).toEqual([]);
    cfg.processing_mode.request_body_mode = 9;
    expect(checkProtoJson(root, EXT_PROC_FILTER, cfg)).toEqual([expect.stringMatching(/^\$\.processing_mode\.request_body_mode: invalid value number 9/)]);
  });

  it('an unresolvable or missing @type', () => {
    const bad = clusterMerge();
    bad.load_balancing_policy.policies[0].typed_extension_config.typed_config['@type'] += 'X';
    expect(checkProtoJson(root, CLUSTER, bad, { mergePatch: true })).toEqual([
      `${OH}["@type"]: cannot resolve type URL "${OVERRIDE_HOST_URL}X" to a known message`,
    ]);
    const missing = clusterMerge();
    delete missing.load_balancing_policy.policies[0].typed_extension_config.typed_config['@type'];
    expect(checkProtoJson(root, CLUSTER, missing, { mergePatch: true })).toEqual([
      `${OH}["@type"]: google.protobuf.Any needs an "@type" string`,
    ]);
  });

  it('two members of one oneof', () => {
    const cfg = extProcConfig();
    cfg.grpc_service.google_grpc = { target_uri: 'epp:9002', stat_prefix: 'epp' };
    expect(checkProtoJson(root, EXT_PROC_FILTER, cfg)).toEqual([
      '$.grpc_service: oneof target_specifier allows one member, but envoy_grpc and google_grpc are set',
    ]);
  });

  it('missing required members (message.required, repeated.min_items, string.min_len, required oneof)', () => {
    const cfg = extProcConfig();
    delete cfg.grpc_service;
    expect(checkProtoJson(root, EXT_PROC_FILTER, cfg)).toEqual(['$.grpc_service: grpc_service is required']);

    const noFallback = clusterMerge();
    delete noFallback.load_balancing_policy.policies[0].typed_extension_config.typed_config.fallback_policy;
    expect(checkProtoJson(root, CLUSTER, noFallback, { mergePatch: true })).toEqual([
      `${OH}.fallback_policy: fallback_policy is required`,
    ]);

    const noSources = clusterMerge();
    noSources.load_balancing_policy.policies[0].typed_extension_config.typed_config.override_host_sources = [];
    expect(checkProtoJson(root, CLUSTER, noSources, { mergePatch: true })).toEqual([
      `${OH}.override_host_sources: override_host_sources needs at least 1 item(s), has 0`,
    ]);

    const emptyKey = clusterMerge();
    const metadata = emptyKey.load_balancing_policy.policies[0].typed_extension_config.typed_config.override_host_sources[0].metadata;
    metadata.key = '';
    metadata.path = [{}];
    expect(checkProtoJson(root, CLUSTER, emptyKey, { mergePatch: true })).toEqual([
      `${OH}.override_host_sources[0].metadata.path[0]: oneof segment is required: set one of key`,
      `${OH}.override_host_sources[0].metadata.key: key must be at least 1 character(s) long`,
    ]);

    const noName = clusterMerge();
    delete noName.load_balancing_policy.policies[0].typed_extension_config.name;
    expect(checkProtoJson(root, CLUSTER, noName, { mergePatch: true })).toEqual([
      '$.load_balancing_policy.policies[0].typed_extension_config.name: name must be at least 1 character(s) long',
    ]);
  });

  it('FULL_DUPLEX_STREAMED without trailer mode SEND (Envoy semantic rule)', () => {
    const cfg = extProcConfig();
    delete cfg.processing_mode.request_trailer_mode;
    cfg.processing_mode.response_trailer_mode = 'SKIP';
    expect(checkProtoJson(root, EXT_PROC_FILTER, cfg)).toEqual([]);
    expect(envoyRuleViolations(root, EXT_PROC_FILTER, cfg)).toEqual([
      '$.processing_mode: request_body_mode FULL_DUPLEX_STREAMED requires request_trailer_mode SEND (got DEFAULT)',
      '$.processing_mode: response_body_mode FULL_DUPLEX_STREAMED requires response_trailer_mode SEND (got SKIP)',
    ]);
    expect(checkEnvoyConfig(root, EXT_PROC_FILTER, cfg)).toHaveLength(2);

    const perRoute = { overrides: { processing_mode: { requestBodyMode: 4, requestTrailerMode: 'DEFAULT' } } };
    expect(checkProtoJson(root, PER_ROUTE, perRoute)).toEqual([]);
    expect(envoyRuleViolations(root, PER_ROUTE, perRoute)).toEqual([
      '$.overrides.processing_mode: request_body_mode FULL_DUPLEX_STREAMED requires request_trailer_mode SEND (got DEFAULT)',
    ]);
    expect(envoyRuleViolations(root, PER_ROUTE, { overrides: { processing_mode: { request_body_mode: 4, request_trailer_mode: 1 } } }))
      .toEqual([]);
    // Found inside Any payloads too, which is where an EnvoyFilter carries the filter config.
    expect(envoyRuleViolations(root, 'google.protobuf.Any', { '@type': `type.googleapis.com/${EXT_PROC_FILTER}`, ...cfg }))
      .toHaveLength(2);
  });

  it('wrong scalar types', () => {
    const cfg = extProcConfig();
    cfg.failure_mode_allow = 'yes';
    cfg.metadata_options.receiving_namespaces.untyped = 'envoy.lb';
    cfg.grpc_service.envoy_grpc.cluster_name = 9002;
    expect(checkProtoJson(root, EXT_PROC_FILTER, cfg)).toEqual([
      '$.grpc_service.envoy_grpc.cluster_name: expected a string, got number 9002',
      '$.failure_mode_allow: expected true or false, got string "yes"',
      '$.metadata_options.receiving_namespaces.untyped: expected an array (repeated string), got string "envoy.lb"',
    ]);
    expect(checkProtoJson(root, CLUSTER, { per_connection_buffer_limit_bytes: -1 }, { mergePatch: true })).toEqual([
      '$.per_connection_buffer_limit_bytes: -1 is out of range for uint32',
    ]);
    expect(checkProtoJson(root, CLUSTER, { per_connection_buffer_limit_bytes: '32768' }, { mergePatch: true })).toEqual([]);
    expect(checkProtoJson(root, CLUSTER, { load_balancing_policy: [] }, { mergePatch: true })).toEqual([
      '$.load_balancing_policy: expected an object (envoy.config.cluster.v3.LoadBalancingPolicy), got an array',
    ]);
  });

  it('bad durations, including PGV duration bounds', () => {
    for (const bad of ['1000', '1000 s', '1.5m', '1.1234567891s', 1000]) {
      expect(checkProtoJson(root, EXT_PROC_FILTER, { ...extProcConfig(), message_timeout: bad })).toEqual([
        expect.stringMatching(/^\$\.message_timeout: expected a duration like "1\.5s"/),
      ]);
    }
    expect(checkProtoJson(root, EXT_PROC_FILTER, { ...extProcConfig(), message_timeout: '0.25s' })).toEqual([]);
    expect(checkProtoJson(root, EXT_PROC_FILTER, { ...extProcConfig(), message_timeout: '3600.000000001s' })).toEqual([
      '$.message_timeout: message_timeout must be at most 3600s',
    ]);
    expect(checkProtoJson(root, EXT_PROC_FILTER, { ...extProcConfig(), message_timeout: '-1s' })).toEqual([
      '$.message_timeout: message_timeout must be at least 0s',
    ]);
  });

  it('an unknown top-level type', () => {
    expect(checkProtoJson(root, 'envoy.nope.v3.Thing', {})).toEqual(['$: unknown message type envoy.nope.v3.Thing']);
  });
});

describe('checkProtoJson on the proto3 JSON mapping in general', () => {
  // A small test-only schema exercising types Envoy's configs above do not reach.
  const testRoot = new protobuf.Root();
  for (const f of ['google/protobuf/field_mask.proto', 'google/protobuf/timestamp.proto', 'google/protobuf/wrappers.proto',
    'google/protobuf/struct.proto', 'google/protobuf/empty.proto', 'google/protobuf/duration.proto', 'google/protobuf/any.proto']) {
    testRoot.addJSON(protobuf.common.get(f)!.nested!);
  }
  protobuf.parse(`
    syntax = "proto3";
    package t;
    import "google/protobuf/field_mask.proto";
    message M {
      int64 big = 1;
      uint64 ubig = 2;
      sint32 small = 3;
      double d = 4;
      float f = 5;
      bytes raw = 6;
      map<int32, string> by_id = 7;
      map<string, M> children = 8;
      google.protobuf.FieldMask mask = 9;
      google.protobuf.Timestamp at = 10;
      google.protobuf.Struct meta = 11;
      google.protobuf.Value anything = 12;
      google.protobuf.ListValue list = 13;
      google.protobuf.Empty nothing = 14;
      google.protobuf.BoolValue flag = 15;
      google.protobuf.BytesValue blob = 16;
      google.protobuf.Any extra = 17;
      string short_name = 18 [(validate.rules).string = {min_len: 2, max_len: 4}];
      string tag = 19 [(validate.rules).string.min_len = 1, (validate.rules).string.ignore_empty = true];
      repeated M items = 20 [(validate.rules).repeated = {max_items: 1}];
    }
  `, testRoot, { keepCase: true });
  testRoot.resolveAll();

  const ok = { short_name: 'abc' };

  it('accepts every JSON form the spec allows', () => {
    expect(checkProtoJson(testRoot, 't.M', {
      ...ok, big: '-9223372036854775808', ubig: 18446744073709551615n.toString(), small: -5, d: 'NaN', f: '1.5',
      raw: 'AAEC/w==', by_id: { '7': 'x', '-1': 'y' }, children: { a: { short_name: 'ab', tag: '' } },
      mask: 'foo.barBaz,qux', at: '2024-02-29T23:59:59.123456789+01:00', meta: { any: [1, { x: null }] },
      anything: null, list: [1, 'a', null], nothing: {}, flag: true, blob: 'AQ', items: [{ short_name: 'xyz' }],
      extra: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' },
    })).toEqual([]);
    expect(checkProtoJson(testRoot, 't.M', { ...ok, big: 12, raw: 'AAEC_w', d: 1e300, at: '1970-01-01T00:00:00Z' })).toEqual([]);
    expect(checkProtoJson(testRoot, 't.M', { ...ok, big: null, children: null, extra: { '@type': 'x/t.M', short_name: 'ok' } })).toEqual([]);
  });

  it('rejects values outside the mapping', () => {
    const errors = checkProtoJson(testRoot, 't.M', {
      ...ok, big: 2 ** 60, ubig: '-1', small: 1.5, d: 'fast', f: 1e39, raw: 'A', by_id: { x: 'y' },
      mask: 'foo_bar', at: '2023-02-29T00:00:00Z', list: {}, nothing: { a: 1 }, flag: 'true', blob: 1,
      extra: { '@type': 'type.googleapis.com/google.protobuf.Duration', seconds: 1 }, items: [null], meta: [],
    });
    expect(errors).toEqual([
      '$.big: number 1152921504606847000 loses precision as a JSON number; quote it (int64)',
      '$.ubig: -1 is out of range for uint64',
      '$.small: expected an integer (sint32), got number 1.5',
      '$.d: expected a number (double), got string "fast"',
      '$.f: 1e+39 is out of range for float',
      '$.raw: expected base64-encoded bytes, got string "A"',
      '$.by_id.x: expected an integer (int32) as a number or decimal string, got string "x"',
      '$.mask: field mask path "foo_bar" is not lowerCamel dotted',
      '$.at: string "2023-02-29T00:00:00Z" is not a valid timestamp',
      '$.list: expected an array (google.protobuf.ListValue), got an object',
      '$.nothing.a: google.protobuf.Empty has no fields',
      '$.flag: expected true or false, got string "true"',
      '$.blob: expected base64-encoded bytes, got number 1',
      '$.extra.seconds: unknown field "seconds" (an Any holding google.protobuf.Duration has only "value")',
      '$.extra: an Any holding google.protobuf.Duration needs "value"',
      '$.items[0]: repeated elements cannot be null',
      '$.meta: expected an object (google.protobuf.Struct), got an array',
    ]);
  });

  it('reads PGV rules from both option forms protobufjs produces, and after a JSON round trip', () => {
    const m = testRoot.lookupType('t.M');
    expect(validateRules(m.fields.short_name)).toEqual({ string: { min_len: 2, max_len: 4 } });
    expect(validateRules(m.fields.tag)).toEqual({ string: { min_len: 1, ignore_empty: true } });
    // Only the flattened `options` survive toJSON/fromJSON (which is what proto-loader hands grpc-js).
    const copy = protobuf.Root.fromJSON(testRoot.toJSON());
    expect(copy.lookupType('t.M').fields.short_name.parsedOptions).toBeFalsy();
    for (const r of [testRoot, copy]) {
      expect(checkProtoJson(r, 't.M', { short_name: 'a', tag: '', items: [ok, ok] })).toEqual([
        '$.short_name: short_name must be at least 2 character(s) long',
        '$.items: items allows at most 1 item(s), has 2',
      ]);
      expect(checkProtoJson(r, 't.M', { short_name: 'abcde' })).toEqual(['$.short_name: short_name must be at most 4 character(s) long']);
      expect(checkProtoJson(r, 't.M', {})).toEqual(['$.short_name: short_name must be at least 2 character(s) long']);
    }
    // Envoy's own protos, parsed from .proto files: both forms are present.
    const grpcService = root.lookupType(EXT_PROC_FILTER).fields.grpc_service;
    expect(grpcService.options).toEqual({ '(validate.rules).message.required': true });
    expect(grpcService.parsedOptions).toEqual([{ '(validate.rules)': { message: { required: true } } }]);
    expect(validateRules(grpcService)).toEqual({ message: { required: true } });
  });
});
