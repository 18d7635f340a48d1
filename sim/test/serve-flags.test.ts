/**
 * `vllm serve` flags of vLLM v0.10.0 that change what the server does, started as a deployment starts the simulator:
 * from a command line, over real HTTP on loopback (as api.test.ts). Cases from llm-d-inference-sim v0.10.2's
 * pkg/tests/http_server_test.go where vLLM v0.10.0 agrees with them.
 */
import { parseCli } from '../src/cli';
import { startSimulator, type Simulator } from '../src/server';
import { http } from './helpers';

const MODEL = 'Qwen/Qwen3-0.6B';

/** Starts the simulator from a `vllm serve` command line, on a free loopback port. */
async function startFromCli(argv: string[], extra: { serverDevMode?: boolean } = {}): Promise<Simulator> {
  const r = parseCli(argv);
  if (r.kind !== 'run') throw new Error('expected run');
  return startSimulator({ ...r.options, port: 0, host: '127.0.0.1', timeScale: 1000, ...extra });
}

function post(sim: Simulator, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(sim.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

const chat = { model: MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 5 };

// vLLM v0.10.0 vllm/entrypoints/openai/api_server.py: build_app adds XRequestIdMiddleware when
// args.enable_request_id_headers, after AuthenticationMiddleware (so it wraps it, and CORS); at each response's
// http.response.start it appends `X-Request-Id: request_headers.get("X-Request-Id", uuid.uuid4().hex)`. Starlette's
// ServerErrorMiddleware, outside every added middleware, writes its plain 500 without it. cli_args.py FrontendArgs
// `enable_request_id_headers: bool = False`, a BooleanOptionalAction. llm-d-inference-sim v0.10.2
// http_server_test.go Context("request ID headers") checks the same echo, stream and generated id.
describe('--enable-request-id-headers (api_server.py @ v0.10.0 XRequestIdMiddleware; llm-d-inference-sim http_server_test.go)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startFromCli([MODEL, '--enable-request-id-headers', '--api-key', 'k'], { serverDevMode: true });
  });
  afterAll(() => sim?.close());
  const auth = { authorization: 'Bearer k' };

  it("echoes the request's X-Request-Id on chat, streamed chat and completions; the body's id is built from it", async () => {
    const r = await post(sim, '/v1/chat/completions', chat, { ...auth, 'x-request-id': 'test-request-id-123' });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toBe('test-request-id-123');
    // serving_chat.py: f"chatcmpl-{self._base_request_id(raw_request, request.request_id)}", with or without the flag.
    expect(((await r.json()) as { id: string }).id).toBe('chatcmpl-test-request-id-123');

    const stream = await post(sim, '/v1/chat/completions', { ...chat, stream: true }, { ...auth, 'x-request-id': 'test-streaming-789' });
    expect(stream.headers.get('x-request-id')).toBe('test-streaming-789');
    await stream.text();

    const cmpl = await post(sim, '/v1/completions', { model: MODEL, prompt: 'Hello world', max_tokens: 5 }, { ...auth, 'x-request-id': 'text-request-111' });
    expect(cmpl.headers.get('x-request-id')).toBe('text-request-111');
    await cmpl.text();

    // Headers.get: a present header is the id even when empty.
    const empty = await post(sim, '/v1/completions', { model: MODEL, prompt: 'Hello world', max_tokens: 5 }, { ...auth, 'x-request-id': '' });
    expect(empty.headers.get('x-request-id')).toBe('');
    await empty.text();
  });

  it('generates a uuid4 hex when the request has none, on every response the middleware wraps: routes, 404s, the API-key 401, a CORS preflight', async () => {
    const generated = /^[0-9a-f]{32}$/;
    const r = await post(sim, '/v1/chat/completions', chat, auth);
    expect(r.headers.get('x-request-id')).toMatch(generated);
    // Drawn apart from the body's id (`random_uuid()` in _base_request_id).
    expect(((await r.json()) as { id: string }).id).not.toBe(`chatcmpl-${r.headers.get('x-request-id')}`);
    expect((await http(sim.url, 'GET', '/health')).headers['x-request-id']).toMatch(generated);
    expect((await http(sim.url, 'GET', '/no/such/path')).headers['x-request-id']).toMatch(generated);
    const unauthorized = await http(sim.url, 'GET', '/v1/models');
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers['x-request-id']).toMatch(generated);
    const preflight = await fetch(`${sim.url}/v1/models`, { method: 'OPTIONS', headers: { origin: 'http://a.example', 'access-control-request-method': 'GET' } });
    expect(preflight.status).toBe(200);
    expect(preflight.headers.get('x-request-id')).toMatch(generated);
  });

  it("not on Starlette's plain-text 500, which ServerErrorMiddleware writes outside it", async () => {
    const r = await http(sim.url, 'POST', '/sleep?level=x');
    expect(r.status).toBe(500);
    expect(r.text).toBe('Internal Server Error');
    expect(r.headers['x-request-id']).toBeUndefined();
  });
});

describe('without --enable-request-id-headers no X-Request-Id is sent (vLLM v0.10.0 default)', () => {
  it.each([[[MODEL]], [[MODEL, '--no-enable-request-id-headers']]])('%j: the request\'s id is not echoed in a header', async (argv) => {
    const sim = await startFromCli(argv);
    try {
      const r = await post(sim, '/v1/chat/completions', chat, { 'x-request-id': 'test-request-id-456' });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-request-id')).toBeNull();
      expect(((await r.json()) as { id: string }).id).toBe('chatcmpl-test-request-id-456');
    } finally {
      await sim.close();
    }
  });
});
