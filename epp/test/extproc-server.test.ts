import * as grpc from '@grpc/grpc-js';
import { structToJson } from '@kvroute/protocol/envoy';
import { startExtProcServer, type ExtProcServer } from '../src/extproc/server';
import {
  collectingLogger,
  FakeEnvoy,
  POST_HEADERS,
  protocolConfig,
  pseudoRandom,
  readStreamedBody,
  requestBody,
  requestHeaders,
  requestTrailers,
  responseBody,
  responseHeaders,
  responseTrailers,
  setHeaders,
  TestDirector,
  waitFor,
  type EnvoyStream,
  type Json,
} from './extproc-harness';

const MAX_CHUNK = 62_000;

let director: TestDirector;
let server: ExtProcServer;
let envoy: FakeEnvoy;
let logger: ReturnType<typeof collectingLogger>;

beforeEach(async () => {
  director = new TestDirector();
  logger = collectingLogger();
  server = await startExtProcServer({ director, host: '127.0.0.1', port: 0, logger });
  envoy = new FakeEnvoy(`127.0.0.1:${server.port}`);
});

afterEach(async () => {
  envoy.close();
  await server.stop();
});

function split(body: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) out.push(body.subarray(i, i + size));
  return out;
}

/** Response phase shared by several tests: headers → CONTINUE, one body chunk echoed, end. */
async function finishWithJsonResponse(s: EnvoyStream, body = '{"ok":true}'): Promise<void> {
  s.send(responseHeaders({ ':status': '200', 'content-type': 'application/json' }, false));
  const rh = await s.next();
  expect(rh.response).toBe('response_headers');
  expect(rh.response_headers.response).toEqual(expect.objectContaining({ status: 'CONTINUE', header_mutation: null, body_mutation: null }));
  s.send(responseBody(body, true));
  const echoed = await readStreamedBody(s, 'response_body');
  expect(Buffer.concat(echoed.chunks).toString()).toBe(body);
}

function expectRouted(msg: Json, endpoint: string): void {
  expect(msg.response).toBe('request_headers');
  const common = msg.request_headers.response;
  expect(common.status).toBe('CONTINUE');
  expect(common.clear_route_cache).toBe(true);
  expect(setHeaders(common.header_mutation)).toEqual(expect.objectContaining({
    'x-gateway-destination-endpoint': endpoint, 'x-picked-by': 'test',
  }));
  for (const h of common.header_mutation.set_headers) expect(h.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
  expect(structToJson(msg.dynamic_metadata)).toEqual({ 'envoy.lb': { 'x-gateway-destination-endpoint': endpoint } });
}

describe('FULL_DUPLEX_STREAMED request body', () => {
  it('routes after the whole body and returns a >1 MB body in ≤62,000-byte chunks, byte-identical and in order', async () => {
    const body = pseudoRandom(1_300_007);
    const s = envoy.open();
    s.send(requestHeaders({ ...POST_HEADERS, 'content-length': String(body.length) }, false,
      protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED')));
    const parts = split(body, 16_384);
    parts.forEach((p, i) => s.send(requestBody(p, i === parts.length - 1)));

    const routed = await s.next();
    expectRouted(routed, '10.0.0.1:8000');
    // An unmodified body leaves Content-Length alone.
    expect(Object.keys(setHeaders(routed.request_headers.response.header_mutation)).sort())
      .toEqual(['x-gateway-destination-endpoint', 'x-picked-by']);
    const { chunks, eos } = await readStreamedBody(s, 'request_body');
    expect(chunks.length).toBe(Math.ceil(body.length / MAX_CHUNK));
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(MAX_CHUNK);
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
    expect(eos.slice(0, -1).every((e) => !e)).toBe(true);
    expect(eos[eos.length - 1]).toBe(true);

    const req = director.requests[0];
    expect(req.requestId).toBe('req-1');
    expect(req.headers.get(':path')).toBe('/v1/completions');
    expect(req.body?.equals(body)).toBe(true);
    expect(req.bodyWithheld).toBeUndefined();

    expect(director.releases).toEqual([]);
    await finishWithJsonResponse(s);
    expect(director.releases).toEqual([{ ticket: { id: 1, endpoint: '10.0.0.1:8000' }, outcome: 'completed' }]);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
    expect(director.releases).toHaveLength(1);
  });

  it('uses FULL_DUPLEX_STREAMED by default when Envoy sends no protocol_config', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false));
    s.send(requestBody('{"model":"m",', false));
    s.send(requestBody('"prompt":"hi"}', true));
    expectRouted(await s.next(), '10.0.0.1:8000');
    const { chunks, eos } = await readStreamedBody(s, 'request_body');
    expect(Buffer.concat(chunks).toString()).toBe('{"model":"m","prompt":"hi"}');
    expect(eos).toEqual([true]);
    s.end();
    await s.status;
  });

  it('sends a replaced body with a matching Content-Length', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ...POST_HEADERS, 'x-test-action': 'rewrite', 'content-length': '200000' }, false));
    const body = pseudoRandom(200_000, 7);
    s.send(requestBody(body.subarray(0, 100_000), false));
    s.send(requestBody(body.subarray(100_000), true));
    const headers = await s.next();
    expectRouted(headers, '10.0.0.1:8000');
    const replacement = `{"rewritten":${body.length}}`;
    expect(setHeaders(headers.request_headers.response.header_mutation)['content-length']).toBe(String(replacement.length));
    const { chunks, eos } = await readStreamedBody(s, 'request_body');
    expect(Buffer.concat(chunks).toString()).toBe(replacement);
    expect(eos).toEqual([true]);
    s.end();
    await s.status;
  });

  it('routes when trailers arrive and answers them after the body', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false));
    s.send(requestBody('abc', false));
    s.send(requestBody('def', false));
    s.send(requestTrailers({ 'x-checksum': '1' }));
    expectRouted(await s.next(), '10.0.0.1:8000');
    const body = await readStreamedBody(s, 'request_body', 1);
    expect(body).toEqual({ chunks: [Buffer.from('abcdef')], eos: [false] });
    const trailers = await s.next();
    expect(trailers.response).toBe('request_trailers');
    expect(director.requests[0].body?.toString()).toBe('abcdef');
    await finishWithJsonResponse(s);
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
    s.end();
    await s.status;
  });
});

describe('BUFFERED request body', () => {
  it('answers the headers with CONTINUE at once and puts the mutations in the BodyResponse (mode from protocol_config)', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false, protocolConfig('BUFFERED', 'BUFFERED')));
    // Envoy waits for this answer before it sends the buffered body.
    const first = await s.next();
    expect(first.response).toBe('request_headers');
    expect(first.request_headers.response).toEqual(expect.objectContaining({ status: 'CONTINUE', header_mutation: null, clear_route_cache: false }));
    expect(first.dynamic_metadata).toBeNull();
    expect(director.requests).toHaveLength(0);

    s.send(requestBody('{"model":"m","prompt":"p"}', true));
    const answer = await s.next();
    expect(answer.response).toBe('request_body');
    const common = answer.request_body.response;
    expect(common.clear_route_cache).toBe(true);
    expect(setHeaders(common.header_mutation)).toEqual({ 'x-gateway-destination-endpoint': '10.0.0.1:8000', 'x-picked-by': 'test' });
    expect(common.body_mutation).toBeNull();
    expect(structToJson(answer.dynamic_metadata)).toEqual({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.1:8000' } });

    s.send(responseHeaders({ ':status': '200' }, false));
    expect((await s.next()).response).toBe('response_headers');
    s.send(responseBody('{"choices":[]}', true));
    const rb = await s.next();
    expect(rb.response).toBe('response_body');
    expect(rb.response_body.response).toEqual(expect.objectContaining({ status: 'CONTINUE', body_mutation: null }));
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });

  it('replaces a buffered body with body_mutation.body and a matching Content-Length', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ...POST_HEADERS, 'x-test-action': 'rewrite' }, false, protocolConfig('BUFFERED', 'NONE')));
    await s.next();
    s.send(requestBody('{"model":"m","prompt":"long"}', true));
    const common = (await s.next()).request_body.response;
    const replacement = '{"rewritten":29}';
    expect(common.body_mutation.body.toString()).toBe(replacement);
    expect(setHeaders(common.header_mutation)['content-length']).toBe(String(replacement.length));
    s.send(responseHeaders({ ':status': '200' }, false));
    expect((await s.next()).response).toBe('response_headers');
    // Response body mode NONE: Envoy sends no body; its half-close ends the request.
    expect(director.releases).toEqual([]);
    s.end();
    await s.status;
    await director.waitForReleases(1);
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
  });

  it('takes BUFFERED from the server default when Envoy sends no protocol_config', async () => {
    const other = await startExtProcServer({
      director, host: '127.0.0.1', port: 0, logger, defaultRequestBodyMode: 'BUFFERED', defaultResponseBodyMode: 'STREAMED',
    });
    const client = new FakeEnvoy(`127.0.0.1:${other.port}`);
    try {
      const s = client.open();
      s.send(requestHeaders(POST_HEADERS, false));
      expect((await s.next()).request_headers.response.header_mutation).toBeNull();
      s.send(requestBody('{}', true));
      expect(setHeaders((await s.next()).request_body.response.header_mutation)['x-gateway-destination-endpoint']).toBe('10.0.0.1:8000');
      s.send(responseHeaders({ ':status': '200' }, false));
      await s.next();
      // STREAMED response: one CONTINUE BodyResponse per chunk.
      s.send(responseBody('a', false));
      s.send(responseBody('b', true));
      expect((await s.next()).response_body.response.status).toBe('CONTINUE');
      expect((await s.next()).response_body.response.status).toBe('CONTINUE');
      expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
      s.end();
      await s.status;
    } finally {
      client.close();
      await other.stop();
    }
  });
});

describe('a response body when the response mode was never announced (GIE v1.0.0 handlers/server.go passes it through)', () => {
  it('is streamed back in full duplex, the stream stays open and the request completes at its end_of_stream', async () => {
    // The CLI's default response mode is NONE (kvroute's EnvoyFilter), and this Envoy, like GIE's hermetic tests, sends
    // no protocol_config; before, the first chunk ended the stream with INVALID_ARGUMENT and cut the response off.
    const other = await startExtProcServer({ director, host: '127.0.0.1', port: 0, logger, defaultResponseBodyMode: 'NONE' });
    const client = new FakeEnvoy(`127.0.0.1:${other.port}`);
    try {
      const s = client.open();
      s.send(requestHeaders(POST_HEADERS, false));
      s.send(requestBody('{"model":"m","prompt":"p"}', true));
      expectRouted(await s.next(), '10.0.0.1:8000');
      await readStreamedBody(s, 'request_body');
      s.send(responseHeaders({ ':status': '200', 'content-type': 'text/event-stream' }, false));
      expect((await s.next()).response).toBe('response_headers');
      s.send(responseBody('data: {"choices":[]}\n\n', false));
      const first = await s.next();
      expect(first.response).toBe('response_body');
      const streamed = first.response_body.response.body_mutation.streamed_response;
      expect(streamed.body.toString()).toBe('data: {"choices":[]}\n\n');
      expect(streamed.end_of_stream).toBe(false);
      expect(director.releases).toEqual([]);
      s.send(responseBody('data: [DONE]\n\n', true));
      const last = await readStreamedBody(s, 'response_body');
      expect(Buffer.concat(last.chunks).toString()).toBe('data: [DONE]\n\n');
      expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
      s.end();
      expect((await s.status).code).toBe(grpc.status.OK);
    } finally {
      client.close();
      await other.stop();
    }
  });

  it('is still a protocol error when Envoy announced response_body_mode NONE', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false, protocolConfig('BUFFERED', 'NONE')));
    await s.next();
    s.send(requestBody('{"model":"m","prompt":"p"}', true));
    await s.next();
    s.send(responseHeaders({ ':status': '200' }, false));
    await s.next();
    s.send(responseBody('x', true));
    const status = await s.status;
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toContain('protocol_config set response_body_mode NONE');
  });
});

describe('response headers skipped (response_header_mode SKIP: the body comes first, as in Envoy\'s ext_proc integration tests; kvroute answers it, where GIE v1.5.0 sends body answers only after response headers)', () => {
  it('streams a response body that follows the routed request directly back and completes the request at its end_of_stream', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false, protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED')));
    s.send(requestBody('{"model":"m","prompt":"p"}', true));
    expectRouted(await s.next(), '10.0.0.1:8000');
    await readStreamedBody(s, 'request_body');
    s.send(responseBody('{"object":"text_completion",', false));
    s.send(responseBody('"choices":[]}', true));
    const echoed = await readStreamedBody(s, 'response_body');
    expect(Buffer.concat(echoed.chunks).toString()).toBe('{"object":"text_completion","choices":[]}');
    expect(echoed.eos).toEqual([false, true]);
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });

  it('answers a stream that starts with a response body (request and response headers skipped) without routing anything', async () => {
    const s = envoy.open();
    s.send({ ...responseBody('data: [DONE]\n\n', true), ...protocolConfig('NONE', 'FULL_DUPLEX_STREAMED') });
    const echoed = await readStreamedBody(s, 'response_body');
    expect(Buffer.concat(echoed.chunks).toString()).toBe('data: [DONE]\n\n');
    expect(director.requests).toHaveLength(0);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });

  it('ends a response whose headers and body were skipped at its trailers', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false, protocolConfig('FULL_DUPLEX_STREAMED', 'NONE')));
    s.send(requestBody('{"model":"m","prompt":"p"}', true));
    expectRouted(await s.next(), '10.0.0.1:8000');
    await readStreamedBody(s, 'request_body');
    s.send(responseTrailers({ 'grpc-status': '0' }));
    expect((await s.next()).response).toBe('response_trailers');
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });
});

describe('request headers skipped (request_header_mode SKIP: the body comes first; GIE v1.5.0 handlers/server.go gathers body chunks whatever came before and routes at their end)', () => {
  it('routes a FULL_DUPLEX_STREAMED body that begins the stream, with no headers and a generated request id', async () => {
    const s = envoy.open();
    s.send({ ...requestBody('{"model":"m",', false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
    s.send(requestBody('"prompt":"p"}', true));
    const routed = await s.next();
    expect(routed.response).toBe('request_headers');
    const set = setHeaders(routed.request_headers.response.header_mutation);
    expect(set['x-gateway-destination-endpoint']).toBe('10.0.0.1:8000');
    expect(set['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const { chunks } = await readStreamedBody(s, 'request_body');
    expect(Buffer.concat(chunks).toString()).toBe('{"model":"m","prompt":"p"}');
    expect(director.requests[0].headers.size).toBe(0);
    expect(director.requests[0].body?.toString()).toBe('{"model":"m","prompt":"p"}');
    await finishWithJsonResponse(s);
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });

  it('routes a STREAMED body on its first chunk (body withheld), answered in the body response; the rest flows on', async () => {
    const s = envoy.open();
    s.send({ ...requestBody('{"a":', false), ...protocolConfig('STREAMED', 'FULL_DUPLEX_STREAMED') });
    const routed = await s.next();
    expect(routed.response).toBe('request_body');
    expect(setHeaders(routed.request_body.response.header_mutation)['x-gateway-destination-endpoint']).toBe('10.0.0.1:8000');
    expect(director.requests[0].bodyWithheld).toBe(true);
    s.send(requestBody('1}', true));
    const rest = await s.next();
    expect(rest.response).toBe('request_body');
    expect(rest.request_body.response).toEqual(expect.objectContaining({ status: 'CONTINUE', header_mutation: null }));
    await finishWithJsonResponse(s);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });
});

describe('STREAMED request body', () => {
  it('routes on headers alone (bodyWithheld) and lets the chunks through with CONTINUE', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false, protocolConfig('STREAMED', 'FULL_DUPLEX_STREAMED')));
    expectRouted(await s.next(), '10.0.0.1:8000');
    expect(director.requests[0].body).toBeUndefined();
    expect(director.requests[0].bodyWithheld).toBe(true);
    s.send(requestBody('{"a":', false));
    s.send(requestBody('1}', true));
    for (let i = 0; i < 2; i++) {
      const m = await s.next();
      expect(m.response).toBe('request_body');
      expect(m.request_body.response).toEqual(expect.objectContaining({ status: 'CONTINUE', body_mutation: null }));
    }
    await finishWithJsonResponse(s);
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
    s.end();
    await s.status;
  });

  it('lets the rest of the body and its trailers through with CONTINUE after the upstream answered early', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false, protocolConfig('STREAMED', 'FULL_DUPLEX_STREAMED')));
    expectRouted(await s.next(), '10.0.0.1:8000');
    // The upstream answers (say 413) before the client finished sending; Envoy keeps forwarding the request's body.
    s.send(responseHeaders({ ':status': '413', 'content-type': 'application/json' }, false));
    expect((await s.next()).response).toBe('response_headers');
    s.send(requestBody('{"a":', false));
    const m = await s.next();
    expect(m.response).toBe('request_body');
    expect(m.request_body.response).toEqual(expect.objectContaining({ status: 'CONTINUE' }));
    s.send(responseBody('{"error":{}}', true));
    await readStreamedBody(s, 'response_body');
    s.send(requestTrailers({ 'x-end': '1' }));
    expect((await s.next()).response).toBe('request_trailers');
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });
});

describe('routing outcomes', () => {
  it('routes a bodyless request at once', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models', 'x-request-id': 'models-1' }, true));
    expectRouted(await s.next(), '10.0.0.1:8000');
    expect(director.requests[0].body).toBeUndefined();
    expect(director.requests[0].requestId).toBe('models-1');
    s.send(responseHeaders({ ':status': '204' }, true));
    expect((await s.next()).response).toBe('response_headers');
    expect(director.releases.map((r) => r.outcome)).toEqual(['completed']);
    s.end();
    await s.status;
  });

  it('sets the x-request-id it generated on a request that came without one, as GIE v1.5.0 pkg/epp/handlers/server.go does; one that had it is left alone', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
    const msg = await s.next();
    expectRouted(msg, '10.0.0.1:8000');
    const set = setHeaders(msg.request_headers.response.header_mutation);
    expect(set['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(director.requests[0].requestId).toBe(set['x-request-id']);
    s.send(responseHeaders({ ':status': '200' }, true));
    await s.next();
    s.end();
    await s.status;

    const t = envoy.open();
    t.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models', 'x-request-id': 'given-1' }, true));
    const kept = await t.next();
    expect(setHeaders(kept.request_headers.response.header_mutation)['x-request-id']).toBeUndefined();
    t.send(responseHeaders({ ':status': '200' }, true));
    await t.next();
    t.end();
    await t.status;
  });

  it('turns a reject into an ImmediateResponse with the status and JSON body', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ...POST_HEADERS, 'x-test-action': 'reject' }, false));
    s.send(requestBody('{"model":"m"}', true));
    const msg = await s.next();
    expect(msg.response).toBe('immediate_response');
    const ir = msg.immediate_response;
    expect(ir.status.code).toBe('TooManyRequests');
    expect(setHeaders(ir.headers)).toEqual({ 'content-type': 'application/json' });
    expect(JSON.parse(ir.body.toString())).toEqual({
      error: { message: 'too many requests for the pool', type: 'rate_limit_error', param: null, code: null },
    });
    expect((await s.status).code).toBe(grpc.status.OK);
    expect(director.releases).toEqual([]);
  });

  it('answers 500 with an OpenAI-style error when the director throws', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ...POST_HEADERS, 'x-test-action': 'throw' }, true));
    const ir = (await s.next()).immediate_response;
    expect(ir.status.code).toBe('InternalServerError');
    expect(setHeaders(ir.headers)['content-type']).toBe('application/json');
    const err = JSON.parse(ir.body.toString()).error;
    expect(err).toEqual({ message: expect.any(String), type: 'server_error', param: null, code: 'internal_error' });
    expect((await s.status).code).toBe(grpc.status.OK);
    expect(logger.warnings.some((w) => w.includes('scheduler exploded'))).toBe(true);
  });

  it('passes header values sent in `value`, and the request metadata, to the director', async () => {
    const s = envoy.open();
    s.send({
      request_headers: { headers: { headers: [{ key: ':path', value: '/v1/chat/completions' }, { key: 'x-multi', value: 'a' }, { key: 'x-multi', raw_value: Buffer.from('b') }] }, end_of_stream: true },
      metadata_context: { filter_metadata: { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': { listValue: { values: [{ stringValue: '10.0.0.2:8000' }] } } } } } },
    });
    await s.next();
    const req = director.requests[0];
    expect(req.headers.get(':path')).toBe('/v1/chat/completions');
    // A repeated name: its last value, as GIE v1.5.0 handlers/request.go HandleRequestHeaders keeps it.
    expect(req.headers.get('x-multi')).toBe('b');
    expect(req.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(req.filterMetadata).toEqual({ 'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': ['10.0.0.2:8000'] } });
    s.end();
    await s.status;
  });
  it('reads the metadata of the body message too (GIE v1.5.0 handlers/server.go reads every message\'s): a subset hint sent with the body reaches the director', async () => {
    const s = envoy.open();
    s.send({ ...requestHeaders(POST_HEADERS, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'NONE') });
    s.send({
      ...requestBody(JSON.stringify({ model: 'm', prompt: 'hi' }), true),
      metadata_context: { filter_metadata: { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': { listValue: { values: [{ stringValue: '10.0.0.3:8000' }] } } } } } },
    });
    await s.next();
    expect(director.requests[0]!.filterMetadata).toEqual({ 'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': ['10.0.0.3:8000'] } });
    s.end();
    await s.status;
  });
});

describe('response phase', () => {
  it('passes SSE chunks through unchanged and releases once, at the end of the stream', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false));
    s.send(requestBody('{"model":"m","prompt":"p","stream":true}', true));
    expectRouted(await s.next(), '10.0.0.1:8000');
    await readStreamedBody(s, 'request_body');

    s.send(responseHeaders({ ':status': '200', 'content-type': 'text/event-stream' }, false));
    const rh = await s.next();
    expect(rh.response_headers.response.header_mutation).toBeNull();
    const events = [
      'data: {"choices":[{"text":"Hel"}]}\n\n',
      'data: {"choices":[{"text":"lo"}]}\n\n',
      'data: {"usage":{"prompt_tokens":3}}\n\ndata: [DONE]\n\n',
    ];
    for (let i = 0; i < events.length; i++) {
      const last = i === events.length - 1;
      s.send(responseBody(events[i], last));
      const echo = await readStreamedBody(s, 'response_body', 1);
      expect(echo.chunks[0].toString()).toBe(events[i]);
      expect(echo.eos).toEqual([last]);
      expect(director.releases).toHaveLength(last ? 1 : 0);
    }
    expect(director.releases[0].outcome).toBe('completed');
    s.end();
    await s.status;
    expect(director.releases).toHaveLength(1);
  });

  it('splits an oversized response chunk without changing its bytes', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
    await s.next();
    s.send(responseHeaders({ ':status': '200' }, false));
    await s.next();
    const big = pseudoRandom(150_000, 3);
    s.send(responseBody(big, true));
    const { chunks, eos } = await readStreamedBody(s, 'response_body');
    expect(chunks.map((c) => c.length)).toEqual([62_000, 62_000, 26_000]);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
    expect(eos).toEqual([false, false, true]);
    s.end();
    await s.status;
  });
});

describe('cancellation', () => {
  it('aborts a pending route and releases a late decision once as cancelled', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ...POST_HEADERS, 'x-test-action': 'hang' }, true));
    await director.waitForRequests(1);
    const signal = director.signals[0];
    expect(signal.aborted).toBe(false);
    s.cancel();
    expect((await s.status).code).toBe(grpc.status.CANCELLED);
    await director.waitForReleases(1);
    expect(signal.aborted).toBe(true);
    expect(director.releases).toEqual([{ ticket: expect.objectContaining({ id: 1 }), outcome: 'cancelled' }]);
    await waitFor(() => server.activeStreams() === 0);
    expect(director.releases).toHaveLength(1);
  });

  it('releases an in-flight request once as cancelled when the stream is cancelled mid-response', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, true));
    await s.next();
    s.send(responseHeaders({ ':status': '200', 'content-type': 'text/event-stream' }, false));
    await s.next();
    s.send(responseBody('data: {}\n\n', false));
    await s.next();
    s.cancel();
    await director.waitForReleases(1);
    expect(director.releases.map((r) => r.outcome)).toEqual(['cancelled']);
    await waitFor(() => server.activeStreams() === 0);
    expect(director.releases).toHaveLength(1);
  });
});

describe('a reset right behind the request\'s first messages (Envoy\'s ext_proc Filter::onDestroy -> closeStream/resetStream as soon as its downstream goes, envoy v1.35.0 ext_proc.cc, grpc_client_impl.h)', () => {
  /** A whole exchange on the shared connection: its channel is up, and (a barrier) every frame sent before it has reached the EPP. */
  async function exchange(): Promise<void> {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, true));
    expect((await s.next()).response).toBe('request_headers');
    s.send(responseHeaders({ ':status': '200' }, true));
    expect((await s.next()).response).toBe('response_headers');
    s.end();
    await s.status;
  }

  const cases: { name: string; send: (s: EnvoyStream) => void; routed: boolean }[] = [
    { name: 'headers that end the request, its route pending', send: (s) => s.send(requestHeaders({ ...POST_HEADERS, 'x-test-action': 'hang' }, true)), routed: true },
    { name: 'headers and part of a streamed body', send: (s) => {
      s.send(requestHeaders(POST_HEADERS, false, protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED')));
      s.send(requestBody('{"model":', false));
    }, routed: false },
  ];
  for (const c of cases) {
    it(`${c.name}, reset in the same turn: the EPP sees the reset and holds nothing`, async () => {
      await exchange(); // the channel is up: the call gets its HTTP/2 stream a few microtasks after it starts
      const s = envoy.open();
      c.send(s);
      s.cancel();
      expect((await s.status).code).toBe(grpc.status.CANCELLED);
      await exchange(); // its messages went out before this one's: the EPP has had the stream
      await waitFor(() => server.activeStreams() === 0, 'the EPP to close the reset stream');
      const hung = director.requests.findIndex((r) => r.headers.get('x-test-action') === 'hang');
      if (c.routed) {
        expect(hung).toBeGreaterThanOrEqual(0);
        expect(director.signals[hung]!.aborted).toBe(true);
        await director.waitForReleases(3);
        expect(director.releases.map((r) => r.outcome).sort()).toEqual(['cancelled', 'completed', 'completed']);
      } else {
        expect(hung).toBe(-1);
        expect(director.requests).toHaveLength(2); // the two exchanges
      }
    });
  }
});

describe('Envoy\'s local reply before the request was answered (sent to the processor by Envoy before 1.34, or with skip_ext_proc_on_local_reply off; GIE v1.5.0 handlers/server.go answers response messages in any state)', () => {
  for (const mode of ['BUFFERED', 'FULL_DUPLEX_STREAMED']) {
    it(`${mode}: response headers while the body is still coming (a 413 over Envoy's buffer limit) are answered and nothing is routed`, async () => {
      const s = envoy.open();
      s.send(requestHeaders(POST_HEADERS, false, protocolConfig(mode, 'NONE')));
      if (mode === 'BUFFERED') expect((await s.next()).response).toBe('request_headers'); // CONTINUE at once
      if (mode === 'FULL_DUPLEX_STREAMED') s.send(requestBody('{"model":"m","pro', false));
      s.send(responseHeaders({ ':status': '413', 'content-type': 'text/plain' }, false));
      const answer = await s.next();
      expect(answer.response).toBe('response_headers');
      expect(answer.response_headers.response.status).toBe('CONTINUE');
      s.end(); // response body mode NONE: Envoy sends no body

      expect((await s.status).code).toBe(grpc.status.OK);
      expect(director.requests).toHaveLength(0);
    });
  }

  it('response headers while the request waits to be routed (a route timeout during a flow-control wait) end the wait; the pick that follows is released unused and never sent', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ...POST_HEADERS, 'x-test-action': 'hang' }, false, protocolConfig('FULL_DUPLEX_STREAMED', 'NONE')));
    s.send(requestBody('{"model":"m","prompt":"p"}', true));
    await director.waitForRequests(1);
    s.send(responseHeaders({ ':status': '504' }, true));
    const answer = await s.next();
    expect(answer.response).toBe('response_headers');
    await director.waitForReleases(1);
    expect(director.signals[0]!.aborted).toBe(true);
    expect(director.releases.map((r) => r.outcome)).toEqual(['cancelled']);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
    // Nothing but the response headers' answer was sent: no request answer for a request Envoy already ended.
    expect(s.pending()).toBe(0);
  });

  it('a decision that fails after Envoy\'s own reply answers nothing: the stream still owes only the response', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ...POST_HEADERS, 'x-test-action': 'hang-then-throw' }, false, protocolConfig('FULL_DUPLEX_STREAMED', 'NONE')));
    s.send(requestBody('{"model":"m","prompt":"p"}', true));
    await director.waitForRequests(1);
    s.send(responseHeaders({ ':status': '504' }, true));
    expect((await s.next()).response).toBe('response_headers');
    await waitFor(() => director.signals[0]!.aborted);
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
    expect(s.pending()).toBe(0); // no immediate_response after the answer
  });
});

describe('a request of headers and trailers, no body (an HTTP/2 or gRPC client)', () => {
  it('FULL_DUPLEX_STREAMED: routed by load as one without a body, answered with the headers and trailers only', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false, protocolConfig('FULL_DUPLEX_STREAMED', 'NONE')));
    s.send(requestTrailers({ 'grpc-timeout': '1S' }));
    expectRouted(await s.next(), '10.0.0.1:8000');
    const trailers = await s.next();
    expect(trailers.response).toBe('request_trailers');
    expect(director.requests[0]!.body).toBeUndefined();
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
    expect(s.pending()).toBe(0); // no body chunk: there was no body phase
  });

  it('BUFFERED: Envoy sends the trailers when it holds no body; their answer carries the pick in the dynamic metadata', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false, protocolConfig('BUFFERED', 'NONE')));
    expect((await s.next()).response).toBe('request_headers');
    s.send(requestTrailers({ 'x-end': '1' }));
    const answer = await s.next();
    expect(answer.response).toBe('request_trailers');
    expect(structToJson(answer.dynamic_metadata)).toEqual({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.1:8000' } });
    expect(director.requests[0]!.body).toBeUndefined();
    s.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });
});

describe('malformed and unexpected messages', () => {
  async function expectInvalid(s: EnvoyStream, detail: RegExp): Promise<void> {
    const st = await s.status;
    expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(st.details).toMatch(detail);
  }

  it('fails a stream that sends garbage bytes and keeps serving the next one', async () => {
    const bad = envoy.open();
    // Field 2 (request_headers), length 64, then only one byte.
    bad.sendRaw(Buffer.from([0x12, 0x40, 0x01]));
    await expectInvalid(bad, /malformed ProcessingRequest/);

    const good = envoy.open();
    good.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
    expectRouted(await good.next(), '10.0.0.1:8000');
    good.end();
    expect((await good.status).code).toBe(grpc.status.OK);
    await waitFor(() => server.activeStreams() === 0);
  });

  it('rejects request trailers before the headers', async () => {
    const s = envoy.open();
    s.send(requestTrailers({ 'x-end': '1' }));
    await expectInvalid(s, /unexpected request_trailers in state request-headers/);
  });

  it('rejects a message with no oneof member', async () => {
    const s = envoy.open();
    s.send({ observability_mode: false });
    await expectInvalid(s, /no request member/);
  });

  it('rejects a second request headers message and releases the routed request as an error', async () => {
    const s = envoy.open();
    s.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
    await s.next();
    s.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
    await expectInvalid(s, /unexpected request_headers/);
    expect(director.releases.map((r) => r.outcome)).toEqual(['error']);
    await waitFor(() => server.activeStreams() === 0);
  });

  it('rejects response trailers before the request was routed', async () => {
    const s = envoy.open();
    s.send(requestHeaders(POST_HEADERS, false));
    s.send(responseTrailers({ 'x-end': '1' }));
    await expectInvalid(s, /unexpected response_trailers in state request-body/);
    expect(director.requests).toHaveLength(0);
  });

  it('answers 413 when the request body exceeds the limit', async () => {
    const small = await startExtProcServer({ director, host: '127.0.0.1', port: 0, logger, maxRequestBodyBytes: 1000 });
    const client = new FakeEnvoy(`127.0.0.1:${small.port}`);
    try {
      const s = client.open();
      s.send(requestHeaders(POST_HEADERS, false));
      s.send(requestBody(pseudoRandom(600), false));
      s.send(requestBody(pseudoRandom(600), true));
      const ir = (await s.next()).immediate_response;
      expect(ir.status.code).toBe('PayloadTooLarge');
      expect(JSON.parse(ir.body.toString()).error).toMatchObject({ code: 'request_too_large', type: 'invalid_request_error' });
      expect((await s.status).code).toBe(grpc.status.OK);
      expect(director.requests).toHaveLength(0);
    } finally {
      client.close();
      await small.stop();
    }
  });
});
