/**
 * The request path with a working EPP: the real ext_proc server from epp/ with a small director, real upstreams.
 * Every case runs in both request body modes the gateway speaks, shaped as the EnvoyFilter shapes them: BUFFERED on
 * the filter, FULL_DUPLEX_STREAMED as the virtual host's ExtProcPerRoute (which Envoy 1.35.0 accepts beside
 * failure_mode_allow, unlike the same mode on the filter).
 */
import type { ExtProcServer } from '@kvroute/epp/extproc';
import type { Gateway } from '../src/gateway';
import type { RequestBodyMode } from '../src/options';
import { SERVED_HEADER } from '../src/router';
import {
  completion,
  destroyClientAgent,
  gateway,
  pseudoRandom,
  send,
  sha256,
  startEpp,
  startUpstream,
  TestDirector,
  waitFor,
  type Upstream,
} from './harness';

// Generous bounds for a shared, loaded machine (no test relies on them for timing).
jest.setTimeout(30_000);

let ups: Upstream[];
let director: TestDirector;
let epp: ExtProcServer;

beforeAll(async () => {
  ups = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
  director = new TestDirector(ups.map((u) => u.address));
  epp = await startEpp(director);
});

afterAll(async () => {
  await epp.stop();
  await Promise.all(ups.map((u) => u.close()));
  destroyClientAgent();
});

describe.each<RequestBodyMode>(['full-duplex', 'buffered'])('processing mode %s', (mode) => {
  let gw: Gateway;

  beforeAll(async () => {
    gw = await gateway({
      endpoints: ups.map((u) => u.address),
      extProc: `127.0.0.1:${epp.port}`,
      processingMode: mode,
      processingModeScope: mode === 'full-duplex' ? 'vhost' : 'filter',
      // The trailer tests below need the HTTP/1 codec's enable_trailers, off in Envoy and Istio (http1-codec.test.ts).
      http1EnableTrailers: true,
    });
  });

  afterAll(async () => {
    await gw.close();
  });

  beforeEach(() => {
    for (const u of ups) u.seen.length = 0;
    director.requests.length = 0;
  });

  it('routes each request to the endpoint the EPP picked and names it in x-gateway-destination-endpoint-served', async () => {
    for (const target of [ups[2], ups[0], ups[1], ups[2]]) {
      const r = await send(gw.port, { body: completion(), headers: { 'content-type': 'application/json', 'x-test-pick': target.address } });
      expect(r.status).toBe(200);
      expect(r.json().port).toBe(target.port);
      expect(r.headers['x-gateway-destination-endpoint-served']).toBe(target.address);
    }
    const s = gw.stats();
    expect(s.picksHonoured).toBeGreaterThanOrEqual(4);
    expect(s.endpoints[ups[2].address].picked).toBeGreaterThanOrEqual(2);
  });

  it('sends Envoy-shaped request headers to the EPP (pseudo-headers, generated x-request-id) and applies its header mutations', async () => {
    const r = await send(gw.port, {
      path: '/v1/completions?x=1',
      body: completion(),
      headers: { 'content-type': 'application/json', host: 'llm-d.demo.local', 'x-custom': 'a' },
    });
    expect(r.status).toBe(200);
    const seenByEpp = director.requests[0];
    expect(seenByEpp.headers.get(':method')).toBe('POST');
    expect(seenByEpp.headers.get(':path')).toBe('/v1/completions?x=1');
    expect(seenByEpp.headers.get(':authority')).toBe('llm-d.demo.local');
    expect(seenByEpp.headers.get(':scheme')).toBe('http');
    expect(seenByEpp.headers.get('x-custom')).toBe('a');
    const requestId = seenByEpp.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(seenByEpp.body?.toString()).toBe(completion());

    const upstreamSaw = r.json().headers as Record<string, string>;
    // Mutations from the EPP: the director's header, the EPP's own destination header.
    expect(upstreamSaw['x-picked-by']).toBe('test-director');
    expect(upstreamSaw['x-test-seen-bytes']).toBe(String(Buffer.byteLength(completion())));
    expect(upstreamSaw['x-gateway-destination-endpoint']).toBe(r.headers['x-gateway-destination-endpoint-served']);
    expect(upstreamSaw['x-request-id']).toBe(requestId);
    expect(upstreamSaw.host).toBe('llm-d.demo.local');
  });

  // The HTTPRoute's RequestHeaderModifier (lib/gateway.ts): Istio's route request_headers_to_remove, applied by Envoy's
  // router after ext_proc (Router::Filter::decodeHeaders → finalizeRequestHeaders @ v1.35.0).
  it('removes the routing sidecar\'s prefill headers after the EPP saw them, before the pod: a client cannot steer the sidecar', async () => {
    const r = await send(gw.port, {
      body: completion(),
      headers: { 'content-type': 'application/json', 'x-prefiller-host-port': '127.0.0.1:1', 'X-Prefiller-Url': 'http://169.254.169.254/', 'x-custom': 'kept' },
    });
    expect(r.status).toBe(200);
    expect(director.requests[0]!.headers.get('x-prefiller-host-port')).toBe('127.0.0.1:1');
    expect(director.requests[0]!.headers.get('x-prefiller-url')).toBe('http://169.254.169.254/');
    const upstreamSaw = r.json().headers as Record<string, string>;
    expect(upstreamSaw).not.toHaveProperty('x-prefiller-host-port');
    expect(upstreamSaw).not.toHaveProperty('x-prefiller-url');
    expect(upstreamSaw['x-custom']).toBe('kept');
  });

  it('turns an absolute-form request target into :authority and an origin-form :path', async () => {
    const r = await send(gw.port, { path: 'http://llm-d.demo.local/v1/completions?a=b', body: completion(), headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(200);
    expect(director.requests[0].headers.get(':authority')).toBe('llm-d.demo.local');
    expect(director.requests[0].headers.get(':path')).toBe('/v1/completions?a=b');
    expect(r.json()).toMatchObject({ url: '/v1/completions?a=b', headers: { host: 'llm-d.demo.local' } });
  });

  it('delivers a request body over 1 MB byte-identical to the upstream', async () => {
    const body = pseudoRandom(1_300_007, 7);
    const pieces = [];
    for (let i = 0; i < body.length; i += 50_000) pieces.push(body.subarray(i, i + 50_000));
    // Chunked from the client (no content-length) ...
    const r1 = await send(gw.port, { body: pieces, headers: { 'content-type': 'application/octet-stream', 'x-test-pick': ups[1].address } });
    expect(r1.status).toBe(200);
    expect(r1.json()).toMatchObject({ port: ups[1].port, bodyBytes: body.length, sha256: sha256(body) });
    // ... and with a content-length.
    const r2 = await send(gw.port, { body, headers: { 'content-length': String(body.length), 'x-test-pick': ups[0].address } });
    expect(r2.json()).toMatchObject({ port: ups[0].port, bodyBytes: body.length, sha256: sha256(body) });
    expect(director.requests.map((q) => q.body?.length)).toEqual([body.length, body.length]);
  });

  it('forwards a body the EPP replaced, with a correct length', async () => {
    const original = completion('rewrite me');
    const r = await send(gw.port, { body: original, headers: { 'content-type': 'application/json', 'x-test-action': 'rewrite', 'content-length': String(original.length) } });
    expect(r.status).toBe(200);
    const expected = Buffer.from(`{"rewritten":${original.length}}`);
    expect(r.json()).toMatchObject({ bodyBytes: expected.length, sha256: sha256(expected) });
    const seen = ups.flatMap((u) => u.seen)[0];
    if (mode === 'buffered') expect(seen.headers['content-length']).toBe(String(expected.length));
    // FULL_DUPLEX_STREAMED: Envoy drops Content-Length (the EPP may change the body), so it travels chunked.
    else expect(seen.headers['transfer-encoding']).toBe('chunked');
  });

  it('passes an ImmediateResponse (429 with a JSON body) to the client without calling any upstream', async () => {
    const r = await send(gw.port, { body: completion(), headers: { 'content-type': 'application/json', 'x-test-action': 'reject' } });
    expect(r.status).toBe(429);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.json().error).toEqual({ message: 'too many requests for the pool', code: null, param: null, type: 'rate_limit_error' });
    expect(r.headers['x-gateway-destination-endpoint-served']).toBeUndefined();
    expect(ups.every((u) => u.seen.length === 0)).toBe(true);
    expect(gw.stats().immediateResponses).toBeGreaterThanOrEqual(1);
  });

  it('turns a director failure (EPP 500 ImmediateResponse) into a 500 for the client', async () => {
    const r = await send(gw.port, { body: completion(), headers: { 'content-type': 'application/json', 'x-test-action': 'throw' } });
    expect(r.status).toBe(500);
    expect(r.json().error.type).toBe('server_error');
  });

  it('ignores a pick outside the pool and routes by the fallback policy instead', async () => {
    const before = gw.stats();
    const r = await send(gw.port, { body: completion(), headers: { 'content-type': 'application/json', 'x-test-pick': '10.9.9.9:8000' } });
    expect(r.status).toBe(200);
    expect(ups.map((u) => u.port)).toContain(r.json().port);
    const after = gw.stats();
    expect(after.picksIgnored).toBe(before.picksIgnored + 1);
    expect(after.fallbacks).toBe(before.fallbacks + 1);
  });

  it('uses the first pool member of a comma-separated pick and skips entries outside the pool', async () => {
    const r = await send(gw.port, {
      body: completion(),
      headers: { 'content-type': 'application/json', 'x-test-pick': `10.9.9.9:8000,${ups[1].address},${ups[0].address}` },
    });
    expect(r.json().port).toBe(ups[1].port);
  });

  // Updated: this test used to assert that the gateway strips the client's header before the EPP sees it. Envoy does
  // not (ConnectionManagerUtility removes only its x-envoy-* list and XFCC, source/common/http/conn_manager_utility.cc;
  // kvroute's manifests add no request_headers_to_remove), so the EPP now sees it, as it would behind Istio. It is
  // still never obeyed, and the EPP's set_headers (append unset) overwrites it on the way to the pod.
  it('passes a client-sent x-gateway-destination-endpoint to the EPP as Envoy does, and never obeys it', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await send(gw.port, {
        body: completion(),
        headers: { 'content-type': 'application/json', 'x-gateway-destination-endpoint': ups[0].address, 'x-test-pick': ups[2].address },
      });
      expect(r.json().port).toBe(ups[2].port);
    }
    expect(director.requests).toHaveLength(3);
    for (const q of director.requests) expect(q.headers.has('x-gateway-destination-endpoint')).toBe(true);
    // Upstream sees only the EPP's value.
    for (const s of ups[2].seen) expect(s.headers['x-gateway-destination-endpoint']).toBe(ups[2].address);
  });

  // istio/istio pilot/pkg/networking/core/httproute.go @ 1.27.0 L311-316 (ServerName istio-envoy, OVERWRITE;
  // SuppressDebugHeaders false) with listener_builder.go L440-442 (the router filter); Envoy: conn_manager_impl.cc
  // ActiveStream::encodeHeaders (server) and router.cc Filter::onUpstreamHeaders (x-envoy-upstream-service-time).
  it('answers with the headers Istio\'s gateway Envoy adds: server istio-envoy on every response, x-envoy-upstream-service-time on upstream ones', async () => {
    const r = await send(gw.port, { body: completion(), headers: { 'content-type': 'application/json', 'x-test-pick': ups[1].address } });
    expect(r.status).toBe(200);
    expect(r.headers.server).toBe('istio-envoy');
    expect(r.headers['x-envoy-upstream-service-time']).toMatch(/^\d+$/);
    const local = await send(gw.port, { body: completion(), headers: { 'content-type': 'application/json', 'x-test-action': 'reject' } });
    expect(local.status).toBe(429);
    expect(local.headers.server).toBe('istio-envoy');
    expect(local.headers['x-envoy-upstream-service-time']).toBeUndefined();
  });

  it('routes a bodyless GET through the EPP (headers with end_of_stream) and bypasses it for GET /v1/models', async () => {
    const r = await send(gw.port, { method: 'GET', path: '/v1/whatever', headers: { 'x-test-pick': ups[1].address } });
    expect(r.json()).toMatchObject({ port: ups[1].port, method: 'GET' });
    expect(director.requests).toHaveLength(1);
    expect(director.requests[0].body).toBeUndefined();

    const before = gw.stats().fallbacks;
    const m = await send(gw.port, { method: 'GET', path: '/v1/models' });
    expect(m.status).toBe(200);
    expect(director.requests).toHaveLength(1);
    expect(gw.stats().fallbacks).toBe(before + 1);
  });

  it('matches the HTTPRoute\'s /v1 prefix by default: another path (or /v1beta) is Envoy\'s 404 route_not_found after the EPP saw it, no pod reached (router.cc decodeHeaders @ v1.35.0)', async () => {
    const routed = await gateway({
      endpoints: ups.map((u) => u.address),
      extProc: `127.0.0.1:${epp.port}`,
      processingMode: mode,
      processingModeScope: mode === 'full-duplex' ? 'vhost' : 'filter',
      routePrefixes: undefined,
    });
    try {
      for (const path of ['/health', '/metrics', '/v1beta/completions', '/']) {
        const r = await send(routed.port, { method: 'POST', path, headers: { 'content-type': 'application/json', 'x-test-pick': ups[1].address }, body: completion() });
        expect(r.status).toBe(404);
        expect(r.body.length).toBe(0);
      }
      expect(ups.every((u) => u.seen.length === 0)).toBe(true);
      expect(director.requests).toHaveLength(4); // the ext_proc filter runs before the router finds no route
      expect(routed.stats().routeNotFound).toBe(4);
      for (const path of ['/v1', '/v1/completions', '/v1/models']) {
        expect((await send(routed.port, { method: path === '/v1/models' ? 'GET' : 'POST', path, headers: { 'content-type': 'application/json', 'x-test-pick': ups[1].address }, ...(path === '/v1/models' ? {} : { body: completion() }) })).status).toBe(200);
      }
      expect(routed.stats().routeNotFound).toBe(4);
    } finally {
      await routed.close();
    }
    // A bypass rule is a route for its method only (the models route matches GET): POST to that path finds none.
    const bypass = await gateway({ endpoints: ups.map((u) => u.address), extProc: `127.0.0.1:${epp.port}`, processingMode: mode, processingModeScope: mode === 'full-duplex' ? 'vhost' : 'filter', routePrefixes: undefined, extProcBypass: ['GET /ping'] });
    try {
      expect((await send(bypass.port, { method: 'GET', path: '/ping' })).status).toBe(200);
      expect((await send(bypass.port, { method: 'POST', path: '/ping', headers: { 'content-type': 'application/json' }, body: completion() })).status).toBe(404);
    } finally {
      await bypass.close();
    }
  });

  it('forwards request trailers (through the EPP in full-duplex, request_trailer_mode SEND; straight on in buffered, SKIP)', async () => {
    const r = await send(gw.port, {
      body: ['{"model":"m",', '"prompt":"x"}'],
      headers: { 'content-type': 'application/json', trailer: 'x-client-trailer', 'x-test-pick': ups[0].address },
      trailers: { 'x-client-trailer': 'abc' },
    });
    expect(r.status).toBe(200);
    expect(r.json().port).toBe(ups[0].port);
    expect(r.json().trailers).toEqual({ 'x-client-trailer': 'abc' });
    expect(r.json().bodyBytes).toBe(Buffer.byteLength('{"model":"m","prompt":"x"}'));
  });

  it('passes response trailers (response_trailer_mode SEND: through the EPP) and a HEAD response', async () => {
    const r = await send(gw.port, { method: 'GET', path: '/t?trailers=1', headers: { 'x-test-pick': ups[1].address } });
    expect(r.status).toBe(200);
    expect(r.trailers).toEqual({ 'x-upstream-trailer': 'done' });
    const h = await send(gw.port, { method: 'HEAD', path: '/h', headers: { 'x-test-pick': ups[1].address } });
    expect(h.status).toBe(200);
    expect(h.body.length).toBe(0);
    // The upstream's own status and head, not one the client's end wrote before the EPP answered the headers: a HEAD
    // response is complete at its headers, and Envoy relays it once the response_headers answer arrives.
    expect(h.headers['content-type']).toBe('application/json');
    expect(h.headers[SERVED_HEADER]).toBe(ups[1].address);
    for (const status of [405, 204, 304]) {
      const r = await send(gw.port, { method: status === 405 ? 'HEAD' : 'GET', path: `/h?status=${status}`, headers: { 'x-test-pick': ups[1].address } });
      expect({ status: r.status, served: r.headers[SERVED_HEADER] }).toEqual({ status, served: ups[1].address });
    }
  });

  it('relays an empty chunked response (the last chunk alone), with and without a trailer, and the EPP sees its end', async () => {
    const released = director.releases.length;
    const plain = await send(gw.port, { method: 'GET', path: '/e?empty=1', headers: { 'x-test-pick': ups[2].address } });
    expect({ status: plain.status, bytes: plain.body.length, type: plain.headers['content-type'], served: plain.headers[SERVED_HEADER] })
      .toEqual({ status: 200, bytes: 0, type: 'application/json', served: ups[2].address });
    const trailed = await send(gw.port, { method: 'GET', path: '/e?empty=1&trailers=1', headers: { 'x-test-pick': ups[2].address } });
    expect({ status: trailed.status, bytes: trailed.body.length, trailers: trailed.trailers }).toEqual({ status: 200, bytes: 0, trailers: { 'x-upstream-trailer': 'done' } });
    await waitFor(() => director.releases.length >= released + 2, 'both releases');
    expect(director.releases.slice(released).map((r) => r.outcome)).toEqual(['completed', 'completed']);
  });

  it('lets the EPP see the end of every response (tickets released as completed)', async () => {
    const settled = async (): Promise<void> => {
      // The EPP releases when it sees each response's end of stream, just after the client does.
      await waitFor(() => director.releases.length >= director.seq, 'every ticket released');
      expect(director.releases).toHaveLength(director.seq);
    };
    await settled();
    const releasesBefore = director.releases.length;
    await Promise.all([1, 2, 3, 4, 5].map(() => send(gw.port, { body: completion() })));
    await settled();
    const mine = director.releases.slice(releasesBefore);
    expect(mine).toHaveLength(5);
    expect(mine.every((x) => x.outcome === 'completed')).toBe(true);
    const s = gw.stats();
    expect(s.failOpens).toBe(0);
    expect(s.errorsByStatus['503']).toBeUndefined();
  });
});
