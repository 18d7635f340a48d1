/**
 * What the gateway does with each kind of answer the EPP can give, pinned to what Envoy's ext_proc filter does with it
 * (envoyproxy/envoy v1.35.0, 84305a6cb6; `EP` is `source/extensions/filters/http/ext_proc`): header mutations under
 * the default rules and limits, ImmediateResponse (headers, Content-Type, gRPC clients), dynamic metadata, body
 * mutations in BUFFERED mode, CONTINUE_AND_REPLACE, and what Envoy sends the EPP on every message. The EPP here is
 * the scripted ext_proc server answering on cue; upstreams are real HTTP servers on loopback.
 */
import {
  bodyResponse, destinationMetadata, headersResponse, structToJson, type ProcessingResponse,
} from '@kvroute/protocol/envoy';
import {
  collectLogs, completion, deadPort, destroyClientAgent, gateway, LOOPBACK, send, startUpstream, type Upstream,
} from './harness';
import { startScriptedExtProc, type MessageKind, type Script, type ScriptedExtProc } from './scripted-ext-proc';
import type { GatewayOptions } from '../src/options';

jest.setTimeout(30_000);

let ups: Upstream[];

beforeAll(async () => {
  ups = await Promise.all([startUpstream(), startUpstream()]);
});

afterAll(async () => {
  await Promise.all(ups.map((u) => u.close()));
  destroyClientAgent();
});

const json = { 'content-type': 'application/json' };
const raw = (v: string): Buffer => Buffer.from(v, 'utf8');

/** Runs `fn` against a gateway (the defaults: BUFFERED, failure_mode_allow) in front of a scripted EPP. */
async function withEpp(script: Script, fn: (port: number, epp: ScriptedExtProc, gw: Awaited<ReturnType<typeof gateway>>) => Promise<void>,
  extra: Partial<GatewayOptions> = {}): Promise<void> {
  const epp = await startScriptedExtProc(script);
  const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: epp.address, ...extra });
  try {
    await fn(gw.port, epp, gw);
  } finally {
    await gw.close();
    await epp.stop();
  }
}

function on(kind: MessageKind, answers: (plain: unknown) => readonly unknown[]): Script {
  return { respond: (k, _msg, plain) => (k === kind ? answers(plain) : undefined) };
}

describe('ImmediateResponse: Filter::sendImmediateResponse (EP/ext_proc.cc @ v1.35.0 L1728-1763) and prepareLocalReply (source/common/http/utility.cc L709-781)', () => {
  const immediate = (ir: Record<string, unknown>): ProcessingResponse => ({ immediate_response: ir } as ProcessingResponse);

  it('applies its headers under the default rules: x-envoy-* is refused and counted, the rest set', async () => {
    await withEpp(on('request_headers', () => [immediate({
      status: { code: 429 },
      headers: { set_headers: [
        { header: { key: 'x-envoy-ratelimited', raw_value: raw('true') } },
        { header: { key: 'retry-after', raw_value: raw('3') } },
        { header: { key: 'content-type', raw_value: raw('application/json') }, append: { value: true } },
      ] },
      body: raw('{"error":"busy"}'),
      details: 'pool saturated',
    })]), async (port, _epp, gw) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(429);
      expect(r.body.toString()).toBe('{"error":"busy"}');
      expect(r.headers['x-envoy-ratelimited']).toBeUndefined();
      expect(r.headers['retry-after']).toBe('3');
      // The EPP's Content-Type is the only one: the local reply adds text/plain only when none was set, and `append`
      // on a header the (empty) map does not have is a set.
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['content-length']).toBe(String('{"error":"busy"}'.length));
      expect(gw.envoyStats()).toMatchObject({ rejected_header_mutations: 1, stream_msgs_received: 1 });
    });
  });

  it('without a body drops a Content-Type the EPP set; a status below 200 becomes 200; :status cannot be mutated', async () => {
    await withEpp(on('request_headers', () => [immediate({
      status: { code: 100 },
      headers: { set_headers: [
        { header: { key: 'content-type', raw_value: raw('application/json') } },
        { header: { key: ':status', raw_value: raw('503') } },
      ] },
    })]), async (port) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(0);
      expect(r.headers['content-type']).toBeUndefined();
    });
  });

  it('to a gRPC client: 200 with grpc-status (the EPP\'s grpc_status) and the body as a percent-encoded grpc-message', async () => {
    await withEpp(on('request_headers', () => [immediate({
      status: { code: 503 }, grpc_status: { status: 8 }, body: raw('slow down: 100% busy'),
    })]), async (port) => {
      const r = await send(port, { body: Buffer.alloc(5), headers: { 'content-type': 'application/grpc', te: 'trailers' } });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/grpc');
      expect(r.headers['grpc-status']).toBe('8');
      expect(r.headers['grpc-message']).toBe('slow down: 100%25 busy');
      expect(r.body.length).toBe(0);
    });
  });

  // Envoy v1.35 utility.cc prepareLocalReply drops a trailing newline only when the local reply is JSON-formatted
  // (`content_type == Headers::get().ContentTypeValues.Json && ...`); the default formatter (local_reply.cc
  // BodyFormatter) is text, as on Istio's gateways.
  it('to a gRPC client, a body ending in a newline keeps it, percent-encoded, in grpc-message (the default text local reply)', async () => {
    await withEpp(on('request_headers', () => [immediate({
      status: { code: 429 }, body: raw('slow down\n'),
    })]), async (port) => {
      const r = await send(port, { body: Buffer.alloc(5), headers: { 'content-type': 'application/grpc', te: 'trailers' } });
      expect(r.headers['grpc-status']).toBe('14');
      expect(r.headers['grpc-message']).toBe('slow down%0A');
    });
  });

  // MutationUtils::isValidHttpStatus only floors the code at 200, so Envoy's local reply takes 1000 and its HTTP/1 codec
  // writes the number (source/common/http/http1/codec_impl.cc ResponseEncoderImpl::encodeHeaders @ v1.35.0): a status
  // line no HTTP/1.1 client reads (RFC 9112 §4: status-code = 3DIGIT), which Node's http cannot write. A gRPC client
  // gets its usual 200 with grpc-status UNKNOWN (prepareLocalReply, Grpc::Utility::httpToGrpcStatus).
  it('a status of 1000 or more closes a plain client\'s connection (Envoy writes an unreadable status line), quietly and counted once; a gRPC client gets 200 with grpc-status UNKNOWN', async () => {
    const logs = collectLogs();
    await withEpp(on('request_headers', () => [immediate({ status: { code: 1000 }, body: raw('x') })]), async (port, _epp, gw) => {
      await expect(send(port, { body: completion(), headers: json })).rejects.toThrow();
      const grpcReply = await send(port, { body: Buffer.alloc(5), headers: { 'content-type': 'application/grpc' } });
      expect(grpcReply.status).toBe(200);
      expect(grpcReply.headers['grpc-status']).toBe('2');
      expect(grpcReply.headers['grpc-message']).toBe('x');
      expect(gw.stats().responsesByStatus).toEqual({ 200: 1 });
      expect(gw.envoyStats()).toMatchObject({ immediate_responses_sent: 2, stream_msgs_received: 2 });
      expect(logs.lines.map((l) => l.msg)).toEqual([]);
    }, { envoySemantics: '1.37', logger: logs });
  });

  it('a gRPC client of a failed EPP gets grpc-status UNKNOWN for the 500 (Grpc::Utility::httpToGrpcStatus)', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${await deadPort()}`, failureModeAllow: false });
    try {
      const r = await send(gw.port, { body: Buffer.alloc(5), headers: { 'content-type': 'application/grpc+proto' } });
      expect(r.status).toBe(200);
      expect(r.headers['grpc-status']).toBe('2');
      expect(r.headers['grpc-message']).toBeUndefined();
    } finally {
      await gw.close();
    }
  });
});

describe('header mutations on a live stream (EP/mutation_utils.cc @ v1.35.0)', () => {
  it('sets a header the EPP gave only as `value` to the empty string (raw_value is all Envoy reads, L156)', async () => {
    // Plain objects: the protocol package's typed builders only make raw_value headers.
    await withEpp(on('request_body', () => [{ request_body: { response: { header_mutation: { set_headers: [
      { header: { key: 'x-from-value', value: 'lost' } },
      { header: { key: 'x-from-raw', raw_value: raw('kept') } },
    ] } } } }]), async (port) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      // The upstream echoes the headers it received.
      expect(r.json().headers['x-from-value']).toBe('');
      expect(r.json().headers['x-from-raw']).toBe('kept');
    });
  });

  it('answers an empty 500 when an answer sets more than 100 headers, counting the rejection (responseHeaderSizeCheck L70-89)', async () => {
    const many = Array.from({ length: 101 }, (_, i) => ({ header: { key: `x-h${i}`, raw_value: raw('v') } }));
    await withEpp(on('request_headers', () => [{ request_headers: { response: { header_mutation: { set_headers: many } } } }]), async (port, _epp, gw) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(500);
      expect(r.body.length).toBe(0);
      // A refused answer still counts as received (onReceiveMessage L1641-1645).
      expect(gw.envoyStats()).toMatchObject({ rejected_header_mutations: 1, stream_msgs_received: 1 });
      // handleErrorResponse does not ask failure_mode_allow.
      expect(gw.stats().failClosed).toBe(0);
      expect(gw.stats().failOpens).toBe(0);
    });
  });
});

// source/extensions/filters/common/mutation_rules/mutation_rules.cc @ v1.35.0 Checker::isAllowed: without allow_envoy
// (kvroute's EnvoyFilter sets no mutation_rules) a name that starts with Http::Headers::get().prefix() is refused; that
// prefix is PrefixValue's "x-envoy" (source/common/http/headers.h @ v1.35.0, no dash; Istio sets no bootstrap
// header_prefix), so `x-envoyfoo` and `x-envoy` itself are refused and counted like `x-envoy-foo`.
describe('the x-envoy prefix of the default mutation rules is "x-envoy", without a dash (Checker::isAllowed)', () => {
  const setOnRequest = (name: string): Script => on('request_headers', () => [
    { request_headers: { response: { header_mutation: { set_headers: [{ header: { key: name, raw_value: raw('1') } }] } } } },
  ]);

  for (const name of ['x-envoy-foo', 'x-envoyfoo', 'x-envoy']) {
    it(`${name} is refused and counted`, async () => {
      await withEpp(setOnRequest(name), async (port, _epp, gw) => {
        const r = await send(port, { body: completion(), headers: json });
        expect(r.status).toBe(200);
        expect(r.json().headers[name]).toBeUndefined();
        expect(gw.envoyStats().rejected_header_mutations).toBe(1);
      });
    });
  }
});

describe('dynamic metadata (EP/ext_proc.cc @ v1.35.0 onReceiveMessage L1558-1615)', () => {
  it('is not taken from a message with no response member: that message is spurious and its pick is dropped', async () => {
    const pick = ups[1].address;
    await withEpp(on('request_headers', () => [{ dynamic_metadata: destinationMetadata('envoy.lb', 'x-gateway-destination-endpoint', pick) }]),
      async (port, _epp, gw) => {
        const ports: number[] = [];
        for (let i = 0; i < 4; i++) {
          const r = await send(port, { body: completion(`q${i}`), headers: json });
          expect(r.status).toBe(200);
          ports.push(r.json().port);
        }
        // failure_mode_allow: the fallback policy (round robin over both), never the dropped pick alone.
        expect(new Set(ports)).toEqual(new Set(ups.map((u) => u.port)));
        expect(gw.stats().picksHonoured).toBe(0);
        expect(gw.envoyStats()).toMatchObject({ spurious_msgs_received: 4, failure_mode_allowed: 4 });
      });
  });

  it('is taken from a spurious answer that has a response member (set before the state check), as Envoy does', async () => {
    const pick = ups[1].address;
    await withEpp(on('request_headers', () => [{ ...bodyResponse('request'), dynamic_metadata: destinationMetadata('envoy.lb', 'x-gateway-destination-endpoint', pick) }]),
      async (port, _epp, gw) => {
        const r = await send(port, { body: completion(), headers: json });
        expect(r.status).toBe(200);
        expect(r.json().port).toBe(ups[1].port);
        expect(gw.envoyStats()).toMatchObject({ spurious_msgs_received: 1 });
      });
  });
});

describe('envoy.lb forwarded back (metadata_options.forwarding_namespaces, as kvroute\'s EnvoyFilter sets it; Filter::addDynamicMetadata @ v1.35.0 L1347-1395)', () => {
  const lbOf = (m: { metadata_context?: { filter_metadata?: Record<string, unknown> } | null }) => {
    const ns = m.metadata_context?.filter_metadata?.['envoy.lb'] as Parameters<typeof structToJson>[0] | undefined;
    return ns === undefined ? undefined : structToJson(ns);
  };
  const picking = (pick: string): Script => on('request_body', (plain) => [{
    ...(plain as object), dynamic_metadata: destinationMetadata('envoy.lb', 'x-gateway-destination-endpoint', pick),
  }]);

  it('Envoy 1.35 (Istio 1.27, the default): the EPP gets its own pick back with the response, no served endpoint (override_host has no selected_host_key before 1.38)', async () => {
    await withEpp(picking(ups[1].address), async (port, epp) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      const messages = epp.streams.at(-1)?.messages ?? [];
      expect(messages.map((m) => m.request)).toEqual(['request_headers', 'request_body', 'response_headers']);
      // Nothing is in envoy.lb before the EPP answers, so nothing is forwarded with the request.
      expect(messages.slice(0, 2).map(lbOf)).toEqual([undefined, undefined]);
      expect(lbOf(messages[2]!)).toEqual({ 'x-gateway-destination-endpoint': ups[1].address });
    });
  });

  it('Envoy 1.38 (Istio 1.30, selected_host_key): the response headers carry the endpoint that served, the fallback\'s when the pick is not in the pool (EPP protocol "Destination Endpoint Served")', async () => {
    await withEpp(picking(ups[1].address), async (port, epp) => {
      expect((await send(port, { body: completion(), headers: json })).json().port).toBe(ups[1].port);
      expect(lbOf(epp.streams.at(-1)!.messages.find((m) => m.request === 'response_headers')!)).toEqual({
        'x-gateway-destination-endpoint': ups[1].address,
        'x-gateway-destination-endpoint-served': ups[1].address,
      });
    }, { envoySemantics: '1.38' });
    const gone = `${LOOPBACK}:${await deadPort()}`;
    await withEpp(picking(gone), async (port, epp) => {
      const served = (await send(port, { body: completion(), headers: json })).json().port as number;
      const address = ups.find((u) => u.port === served)!.address;
      expect(lbOf(epp.streams.at(-1)!.messages.find((m) => m.request === 'response_headers')!)).toEqual({
        'x-gateway-destination-endpoint': gone,
        'x-gateway-destination-endpoint-served': address,
      });
    }, { envoySemantics: '1.38' });
  });
});

describe('mode_override (EP/ext_proc.cc @ v1.35.0 onReceiveMessage L1520-1553)', () => {
  it('is ignored without allow_mode_override (kvroute\'s EnvoyFilter sets none): the response headers still go to the EPP', async () => {
    await withEpp(on('request_headers', (plain) => [{ ...(plain as object), mode_override: { response_header_mode: 'SKIP', response_trailer_mode: 'SKIP' } }]),
      async (port, epp, gw) => {
        const r = await send(port, { body: completion(), headers: json });
        expect(r.status).toBe(200);
        expect(epp.streams.at(-1)?.events).toContain('response_headers');
        expect(gw.envoyStats()).toMatchObject({ spurious_msgs_received: 0 });
      });
  });
});

describe('request header limits: the HCM defaults, 100 fields and 60 KiB (source/common/http/http1/codec_impl.cc @ v1.35.0 L571-578, L604-614)', () => {
  it('answers 431 to more than 100 header fields or more than 60 KiB of them, before any filter; 100 fields or 40 KiB pass', async () => {
    await withEpp({}, async (port, epp) => {
      const fields = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-f${i}`, 'v']));
      // Node's client sends content-type, host, connection and transfer-encoding besides: 96 more make 100.
      const ok = await send(port, { body: completion(), headers: { ...json, ...fields(96) } });
      expect(ok.status).toBe(200);
      const many = await send(port, { body: completion(), headers: { ...json, ...fields(97) } });
      expect(many.status).toBe(431);
      expect(many.body.toString()).toBe('Request Header Fields Too Large');
      expect(epp.streams.length).toBe(1);
      // 40 KiB passes the gateway (over Node's own 16 KiB default) and reaches the EPP; the test upstream, a Node server
      // with that default, may refuse it itself.
      await send(port, { body: completion(), headers: { ...json, 'x-big': 'v'.repeat(40 * 1024) } });
      expect(epp.streams.length).toBe(2);
      const big = await send(port, { body: completion(), headers: { ...json, 'x-big': 'v'.repeat(61 * 1024) } });
      expect(big.status).toBe(431);
      // Refused before any filter.
      expect(epp.streams.length).toBe(2);
    });
  });
});

describe('what Envoy sends on every message', () => {
  it('the request headers as Envoy\'s HCM leaves them for an edge request: X-Forwarded-Proto overwritten, TE kept as `trailers`, a fresh x-request-id, x-envoy-external-address, injected x-envoy-* stripped (conn_manager_utility.cc @ v1.35.0 L103-113, L152-155, L273-277, L297-352)', async () => {
    await withEpp({}, async (port, epp) => {
      const r = await send(port, { body: completion(), headers: {
        ...json, 'x-forwarded-proto': 'https', te: 'gzip, trailers', 'x-request-id': 'client-chosen', 'x-envoy-internal': 'true',
        'x-envoy-retry-on': '5xx', 'x-envoy-original-path': '/forged', 'x-envoy-custom': 'kept',
      } });
      expect(r.status).toBe(200);
      const headers = epp.streams.at(-1)?.messages[0]?.request_headers?.headers?.headers ?? [];
      const get = (k: string): string[] => headers.filter((h) => h.key === k).map((h) => Buffer.from(h.raw_value ?? '').toString());
      expect(get('x-forwarded-proto')).toEqual(['http']);
      expect(get('te')).toEqual(['trailers']);
      // An edge request (no internal addresses): a fresh x-request-id, the client's address, injected x-envoy-* gone.
      expect(get('x-request-id')).toHaveLength(1);
      expect(get('x-request-id')[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(get('x-envoy-external-address')).toEqual([LOOPBACK]);
      for (const h of ['x-envoy-internal', 'x-envoy-retry-on', 'x-envoy-original-path']) expect(get(h)).toEqual([]);
      expect(get('x-envoy-custom')).toEqual(['kept']);
      expect(r.json().headers['x-forwarded-proto']).toBe('http');
      expect(r.json().headers.te).toBe('trailers');
    });
  });

  // `source/common/http/conn_manager_utility.cc` @ v1.35.0 ConnectionManagerUtility::mutateRequestHeaders, before any
  // filter: "Sanitize referer field if exists": removed when repeated or when Utility::isValidRefererValue
  // (`source/common/http/utility.cc`, runtime guard http_allow_partial_urls_in_referer, on by default) refuses it: an
  // absolute URL as Utility::Url::initialize(value, false) takes it (http_parser_parse_url, nodejs/http-parser 2.9.4,
  // strict: `scheme://[userinfo@]host[:port][/path][?query][#fragment]`) without userinfo or a fragment, or a relative
  // reference with no `:` before its first `/` and only RFC 3986 query/fragment characters.
  it('removes a Referer that is neither an absolute URL without userinfo or fragment nor a relative reference, or a repeated one, before the EPP and the pod', async () => {
    await withEpp({}, async (port, epp) => {
      const seen = async (referer: string | string[]): Promise<{ epp: string[]; pod: unknown }> => {
        // Node's own types allow one Referer; its client writes an array as repeated lines all the same.
        const headers: Record<string, string | string[]> = { ...json, referer };
        const r = await send(port, { body: completion(), headers });
        expect(r.status).toBe(200);
        const sent = epp.streams.at(-1)?.messages[0]?.request_headers?.headers?.headers ?? [];
        return {
          epp: sent.filter((h) => h.key === 'referer').map((h) => Buffer.from(h.raw_value ?? '').toString()),
          pod: r.json().headers.referer,
        };
      };
      for (const kept of ['https://example.com/page', 'http://[::1]:80/x', 'http://host?q', '/relative/page', 'example.com/page',
        '../up?x=a:b', 'a/b:c', 'http://example.com/page#', 'http://@example.com/page']) {
        expect(await seen(kept)).toEqual({ epp: [kept], pod: kept });
      }
      for (const removed of ['not a url', 'http://user:pw@host.example:8080/p?q=1', 'https://host.example/p#f', 'http:///toto',
        'http://host:65536/', 'http://host_name/', 'android-app://com.example/', 'https://a.example/x y', 'http://[::1x]/',
        'a:b/c', '/page#f', '/x[1]', 'http://u@example.com/']) {
        expect([removed, await seen(removed)]).toEqual([removed, { epp: [], pod: undefined }]);
      }
      expect(await seen(['https://a.example/', 'https://b.example/'])).toEqual({ epp: [], pod: undefined });
    });
  });

  // Istio's gateway HCM: forward_client_cert_details SANITIZE_SET (istio/istio pilot/pkg/networking/core/gateway.go
  // @ 1.27.0 L707) and use_remote_address (L662, L684). Envoy: ConnectionManagerUtility::mutateXfccRequestHeader
  // ("When Sanitize is set, or the connection is not mutual TLS, remove the XFCC header") and Utility::appendXff
  // (`appendForwardedFor(…, ",")`), source/common/http/conn_manager_utility.cc and utility.cc.
  it('sanitizes the request as Istio\'s gateway HCM does (XFCC removed, XFF appended with ",")', async () => {
    await withEpp({}, async (port, epp) => {
      const r = await send(port, { body: completion(), headers: {
        ...json, 'x-forwarded-client-cert': 'By=spiffe://forged;Hash=abc', 'x-forwarded-for': '1.2.3.4',
      } });
      expect(r.status).toBe(200);
      const headers = epp.streams.at(-1)?.messages[0]?.request_headers?.headers?.headers ?? [];
      const get = (k: string): string[] => headers.filter((h) => h.key === k).map((h) => Buffer.from(h.raw_value ?? '').toString());
      expect(get('x-forwarded-client-cert')).toEqual([]);
      expect(get('x-forwarded-for')).toEqual([`1.2.3.4,${LOOPBACK}`]);
      expect(r.json().headers['x-forwarded-client-cert']).toBeUndefined();
      expect(r.json().headers['x-forwarded-for']).toBe(`1.2.3.4,${LOOPBACK}`);
      // Repeated lines are one header to Envoy's codec, folded with "," before the address is appended.
      const twice = await send(port, { body: completion(), headers: { ...json, 'x-forwarded-for': ['1.2.3.4', '5.6.7.8'] } });
      expect(twice.json().headers['x-forwarded-for']).toBe(`1.2.3.4,5.6.7.8,${LOOPBACK}`);
    });
  });

  // istio/istio pilot/pkg/networking/core/listener_builder.go @ 1.27.0 L333-339 (the same at 1.28.0-1.30.0): the mesh
  // default path normalization sets `normalize_path: true` (no merge_slashes, escaped slashes KEEP_UNCHANGED); Envoy
  // canonicalizes `:path` before route matching and any filter (ConnectionManagerUtility::maybeNormalizePath →
  // PathUtil::canonicalPath, source/common/http/path_utility.cc) and answers 400 when it cannot.
  it('normalizes dot segments like Istio\'s gateway HCM (normalize_path: true), before the EPP, the bypass and the pod', async () => {
    await withEpp({}, async (port, epp) => {
      const before = ups.map((u) => u.seen.length);
      const r = await send(port, { path: '/v1/chat/../completions?a=/../b', body: completion(), headers: json });
      expect(r.status).toBe(200);
      const headers = epp.streams.at(-1)?.messages[0]?.request_headers?.headers?.headers ?? [];
      const pathSeen = headers.find((h) => h.key === ':path');
      expect(Buffer.from(pathSeen?.raw_value ?? '').toString()).toBe('/v1/completions?a=/../b');
      expect(r.json().url).toBe('/v1/completions?a=/../b');
      // `//` stays (merge_slashes off), `%2F` stays (KEEP_UNCHANGED), `%2e%2E` is a dot segment.
      expect((await send(port, { path: '/v1//x/%2e%2E/a%2Fb/./c', body: completion(), headers: json })).json().url).toBe('/v1//a%2Fb/c');
      const streams = epp.streams.length;
      const m = await send(port, { method: 'GET', path: '/v1/./models' });
      expect(m.status).toBe(200);
      expect(m.json().url).toBe('/v1/models');
      expect(epp.streams).toHaveLength(streams); // the bypass matched the normalized path
      const bad = await send(port, { path: '/v1/%00', body: completion(), headers: json });
      expect(bad.status).toBe(400);
      expect(bad.body.length).toBe(0);
      expect(epp.streams).toHaveLength(streams);
      expect(ups.reduce((n, u, i) => n + u.seen.length - before[i], 0)).toBe(3);
    });
  });

  it('metadata_context on headers, body and trailers messages alike (Filter::addDynamicMetadata, L1347-1395)', async () => {
    await withEpp({}, async (port, epp) => {
      const r = await send(port, { body: [completion(), ''], headers: { ...json, 'transfer-encoding': 'chunked' }, trailers: { 'x-t': '1' } });
      expect(r.status).toBe(200);
      const messages = epp.streams.at(-1)?.messages ?? [];
      expect(messages.map((m) => m.request)).toEqual(['request_headers', 'request_body', 'request_trailers', 'response_headers']);
      for (const m of messages) expect(m.metadata_context).toEqual(expect.objectContaining({ filter_metadata: {} }));
      // protocol_config on the first message only (encodeProtocolConfig L965-977).
      expect(messages.map((m) => m.protocol_config != null)).toEqual([true, false, false, false]);
    }, { requestTrailerMode: 'send', http1EnableTrailers: true }); // trailers reach the filter only with enable_trailers
  });
});

describe('BUFFERED body answers (EP/processor_state.cc @ v1.35.0 handleBufferedBodyCallback L367-389)', () => {
  it.each([
    ['clear_body false', { clear_body: false }],
    ['an empty BodyMutation', {}],
    ['a streamed_response', { streamed_response: { body: raw('x'), end_of_stream: true } }],
  ])('%s against a non-zero Content-Length is a 500 (validateContentLength L468-484 compares with body())', async (_name, bodyMutation) => {
    await withEpp(on('request_body', () => [bodyResponse('request', { body_mutation: bodyMutation })]), async (port) => {
      const body = completion();
      const r = await send(port, { body, headers: { ...json, 'content-length': String(Buffer.byteLength(body)) } });
      expect(r.status).toBe(500);
      expect(r.body.length).toBe(0);
    });
  });

  it('a Content-Length the EPP sets without a body mutation goes upstream as set (validateContentLength L468-484 runs only with one)', async () => {
    await withEpp(on('request_body', () => [{ request_body: { response: { header_mutation: { set_headers: [
      { header: { key: 'content-length', raw_value: raw('5') } },
    ] } } } }]), async (port) => {
      const before = ups.map((u) => u.seen.length);
      const body = completion();
      await send(port, { body, headers: { ...json, 'content-length': String(Buffer.byteLength(body)) } });
      // The pod reads the five bytes the header announces and parses the rest as what follows on the connection (here
      // not a request: refused; a body that is one would be run as a second request, behind Envoy as here): the EPP's
      // error shows behind the gateway as it would behind Envoy, rather than being corrected away.
      const got = ups.flatMap((u, i) => u.seen.slice(before[i]));
      expect(got).toHaveLength(1);
      expect(got[0]?.headers['content-length']).toBe('5');
      expect(got[0]?.body.toString()).toBe(body.slice(0, 5));
    });
  });

  it('a chunked upload stays chunked upstream, mutated or not: Envoy adds no Content-Length', async () => {
    await withEpp(on('request_body', () => [bodyResponse('request', { body_mutation: { body: raw('{"replaced":true}') } })]), async (port) => {
      const r = await send(port, { body: [completion(), ''], headers: { ...json, 'transfer-encoding': 'chunked' } });
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ bodyBytes: '{"replaced":true}'.length });
      expect(r.json().headers['content-length']).toBeUndefined();
      expect(r.json().headers['transfer-encoding']).toBe('chunked');
    });
  });
});

describe('answer size', () => {
  it('takes a body answer of any size: Envoy\'s gRPC client has no receive limit by default (grpc_service.proto @ v1.35.0 L54-58)', async () => {
    // The gateway's own limits are set low, so its largest outgoing message is about 1 MiB; the answer is 2 MiB.
    const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
    await withEpp(on('request_body', () => [bodyResponse('request', { body_mutation: { body: big } })]), async (port, _epp, gw) => {
      const r = await send(port, { body: [completion(), ''], headers: { ...json, 'transfer-encoding': 'chunked' } });
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ bodyBytes: big.length });
      expect(gw.stats().failOpens).toBe(0);
      // The message timeout is the test's own: building and decoding 2 MiB took over the default second on a loaded CI
      // machine (the gateway then failed open with the original body), and this test is about size, not time.
    }, { requestBodyBufferLimitBytes: 1024, maxRequestBodyBytes: 1024, messageTimeoutMs: 30_000 });
  });
});

describe('CONTINUE_AND_REPLACE (EP/processor_state.cc @ v1.35.0 handleHeaderContinueAndReplace L174-212)', () => {
  it('on the request headers: the new body goes upstream without Content-Length (chunked)', async () => {
    await withEpp(on('request_headers', () => [headersResponse('request', { status: 'CONTINUE_AND_REPLACE', body_mutation: { body: raw('{"new":1}') } })]), async (port) => {
      const body = completion();
      const r = await send(port, { body, headers: { ...json, 'content-length': String(Buffer.byteLength(body)) } });
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ bodyBytes: '{"new":1}'.length });
      expect(r.json().headers['content-length']).toBeUndefined();
      expect(r.json().headers['transfer-encoding']).toBe('chunked');
    });
  });

  it('on the response headers: the client gets the new body chunked, without the upstream\'s Content-Length', async () => {
    await withEpp(on('response_headers', () => [headersResponse('response', { status: 'CONTINUE_AND_REPLACE', body_mutation: { body: raw('replaced') } })]), async (port) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('replaced');
      expect(r.headers['content-length']).toBeUndefined();
      expect(r.headers['transfer-encoding']).toBe('chunked');
    });
  });
});

describe('FULL_DUPLEX_STREAMED trailers answers (EP/processor_state.cc @ v1.35.0 handleTrailersResponse L505-526)', () => {
  it('takes a trailers answer nothing asked for yet: not spurious, the request goes on', async () => {
    await withEpp({
      respond: (kind, _msg, plain) => (kind === 'request_body' ? [plain, { request_trailers: {} }] : undefined),
    }, async (port, _epp, gw) => {
      const body = completion();
      const r = await send(port, { body, headers: json });
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ bodyBytes: Buffer.byteLength(body) });
      expect(gw.envoyStats()).toMatchObject({ spurious_msgs_received: 0 });
      expect(gw.stats().failClosed).toBe(0);
    }, { envoySemantics: '1.36', processingMode: 'full-duplex' });
  });
});

describe('clear_route_cache (EP/processor_state.cc @ v1.35.0 DecodingProcessorState::clearRouteCache L637-683)', () => {
  const setPath = (path: string): { set_headers: unknown[] } => ({ set_headers: [{ header: { key: ':path', raw_value: raw(path) } }] });
  /** A request-headers answer that sets `:path`, with or without clear_route_cache. */
  const pathRewrite = (path: string, clear: boolean): Script => on('request_headers', () => [
    { request_headers: { response: { header_mutation: setPath(path), clear_route_cache: clear } } },
  ]);
  const seen = (): number => ups.reduce((n, u) => n + u.seen.length, 0);

  // With route_cache_action DEFAULT (kvroute's EnvoyFilter sets none) a request answer with a header mutation and
  // clear_route_cache calls downstreamCallbacks()->clearRouteCache(), so the router matches again on the mutated headers
  // (HCM ActiveStream::route → refreshCachedRoute); without the flag the route the HCM matched at decodeHeaders stays.
  it('without clear_route_cache the cached route stays: a /v1 request rewritten to /other still goes upstream', async () => {
    await withEpp(pathRewrite('/other', false), async (port) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(r.json().url).toBe('/other');
    }, { routePrefixes: ['/v1'] });
  });

  it('with clear_route_cache a /v1 request rewritten to /other matches no route: 404 route_not_found, nothing upstream', async () => {
    await withEpp(pathRewrite('/other', true), async (port, _epp, gw) => {
      const before = seen();
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(404);
      expect(r.body.length).toBe(0);
      expect(seen()).toBe(before);
      expect(gw.stats().routeNotFound).toBe(1);
    }, { routePrefixes: ['/v1'] });
  });

  it('with clear_route_cache a request outside the route rewritten into /v1 is routed upstream', async () => {
    await withEpp(pathRewrite('/v1/completions', true), async (port, _epp, gw) => {
      const r = await send(port, { path: '/legacy/completions', body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(r.json().url).toBe('/v1/completions');
      expect(gw.stats().routeNotFound).toBe(0);
    }, { routePrefixes: ['/v1'] });
  });

  it('a BUFFERED body answer with a :path mutation and clear_route_cache re-matches too (handleBodyResponse clears before the router runs)', async () => {
    await withEpp(on('request_body', () => [
      { request_body: { response: { header_mutation: setPath('/other'), clear_route_cache: true } } },
    ]), async (port, _epp, gw) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(404);
      expect(gw.stats().routeNotFound).toBe(1);
    }, { routePrefixes: ['/v1'] });
  });

  it('clear_route_cache without a header mutation clears nothing: a later :path mutation without it keeps the cached route', async () => {
    await withEpp({
      respond: (kind) => {
        if (kind === 'request_headers') return [{ request_headers: { response: { clear_route_cache: true } } }];
        if (kind === 'request_body') return [{ request_body: { response: { header_mutation: setPath('/other') } } }];
        return undefined;
      },
    }, async (port, _epp, gw) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(r.json().url).toBe('/other');
      expect(gw.envoyStats().clear_route_cache_ignored).toBe(1);
    }, { routePrefixes: ['/v1'] });
  });

  // The re-matched route is the router's, with its own timeout (none on the models route); the ExtProcPerRoute
  // `disabled` of the models route is not looked at again: the filter merges per-route config once, at decodeHeaders
  // (EP/ext_proc.cc @ v1.35.0 Filter::mergePerRouteConfig, route_config_merged_), so the EPP still sees the response.
  it('a request re-matched onto the models route takes its (absent) route timeout and stays with the EPP', async () => {
    await withEpp(pathRewrite('/v1/models', true), async (port, epp) => {
      const r = await send(port, { method: 'GET', path: '/v1/chat', headers: json });
      expect(r.status).toBe(200);
      expect(r.json().url).toBe('/v1/models');
      expect(r.json().headers['x-envoy-expected-rq-timeout-ms']).toBeUndefined();
      expect(epp.streams[0].events).toContain('response_headers');
    }, { routePrefixes: ['/v1'], extProcBypass: ['GET /v1/models'], requestTimeoutMs: 30_000 });
  });

  // EncodingProcessorState does not override ProcessorState::clearRouteCache, a no-op (EP/processor_state.h @ v1.35.0):
  // on a response answer the flag does nothing and is not counted.
  it('is a no-op on a response answer, even beside a header mutation', async () => {
    await withEpp(on('response_headers', () => [
      { response_headers: { response: { header_mutation: { set_headers: [{ header: { key: 'x-seen', raw_value: raw('1') } }] }, clear_route_cache: true } } },
    ]), async (port, _epp, gw) => {
      const r = await send(port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(r.headers['x-seen']).toBe('1');
      expect(gw.envoyStats().clear_route_cache_ignored).toBe(0);
      expect(gw.stats().routeCacheClears).toBe(0);
    });
  });

  it('a streamed (FULL_DUPLEX_STREAMED) body answer without a header mutation counts clear_route_cache_ignored', async () => {
    await withEpp({
      respond: (kind, msg) => {
        if (kind !== 'request_body') return undefined;
        const b = msg.request_body ?? {};
        return [{ request_body: { response: { clear_route_cache: true, body_mutation: { streamed_response: { body: b.body, end_of_stream: b.end_of_stream } } } } }];
      },
    }, async (port, _epp, gw) => {
      const body = completion();
      const r = await send(port, { body, headers: json });
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ bodyBytes: Buffer.byteLength(body) });
      expect(gw.envoyStats().clear_route_cache_ignored).toBeGreaterThanOrEqual(1);
    }, { envoySemantics: '1.36', processingMode: 'full-duplex' });
  });
});
