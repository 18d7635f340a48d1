/**
 * Audit 39: the HTTP surface against vLLM 0.10.0 (vllm/entrypoints/openai/api_server.py) and the FastAPI / Starlette
 * routing it runs on. Each test names the upstream code it mirrors.
 */
import { startSimulator, type Simulator } from '../src/server';
import { http, parseSse } from './helpers';

describe('audit 39: routing as FastAPI APIRoutes and the widened /metrics mount', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000 });
  });
  afterAll(() => sim.close());

  it('HEAD on a GET route is a 405 (fastapi/routing.py APIRoute.__init__ adds no HEAD, unlike starlette Route)', async () => {
    for (const path of ['/health', '/v1/models', '/version', '/load']) {
      const r = await fetch(sim.url + path, { method: 'HEAD' });
      expect([path, r.status, r.headers.get('allow')]).toEqual([path, 405, 'GET']);
    }
  });

  it("a 405's allow names the first route of the path only: /ping's POST route is registered first (bottom-up decorators)", async () => {
    const head = await fetch(`${sim.url}/ping`, { method: 'HEAD' });
    expect([head.status, head.headers.get('allow')]).toEqual([405, 'POST']);
    const put = await http(sim.url, 'PUT', '/ping');
    expect([put.status, put.headers.allow, put.text]).toEqual([405, 'POST', '{"detail":"Method Not Allowed"}']);
    expect((await http(sim.url, 'POST', '/ping')).status).toBe(200);
    expect((await http(sim.url, 'GET', '/ping')).status).toBe(200);
    const models = await http(sim.url, 'POST', '/v1/models');
    expect([models.status, models.headers.allow]).toEqual([405, 'GET']);
    const chat = await http(sim.url, 'GET', '/v1/chat/completions');
    expect([chat.status, chat.headers.allow]).toEqual([405, 'POST']);
  });

  it('the /metrics mount matches ^/metrics(?P<path>.*)$ for every method (api_server.py mount_metrics "Workaround for 307 Redirect")', async () => {
    const accept = { accept: 'application/openmetrics-text' };
    // GET /metrics is still the Instrumentator route: 0.0.4 whatever Accept says.
    const get = await fetch(`${sim.url}/metrics`, { headers: accept });
    expect(get.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    // Any other method on /metrics is the mount (the GET route only a partial match), which negotiates.
    const post = await fetch(`${sim.url}/metrics`, { method: 'POST', headers: accept });
    expect(post.status).toBe(200);
    expect(post.headers.get('content-type')).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect((await post.text()).endsWith('# EOF\n')).toBe(true);
    const head = await fetch(`${sim.url}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    // A longer path without the slash is the mount too, not a 404.
    const longer = await fetch(`${sim.url}/metricsfoo`);
    expect(longer.status).toBe(200);
    expect(await longer.text()).toContain('# TYPE vllm:num_requests_running gauge');
  });
});

describe("audit 39: POST /invocations, SageMaker's route (api_server.py @ v0.10.0 `invocations`)", () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000 });
  });
  afterAll(() => sim.close());

  it('a body with "messages" is a chat completion, any other a completion, answered as their own routes answer', async () => {
    const chat = await http(sim.url, 'POST', '/invocations', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(chat.status).toBe(200);
    expect(chat.json()).toMatchObject({ object: 'chat.completion', choices: [{ message: { role: 'assistant', content: 'The quick' } }], usage: { prompt_tokens: 9 } });
    expect(chat.json().id).toMatch(/^chatcmpl-/);
    const cmpl = await http(sim.url, 'POST', '/invocations', { prompt: 'hi', max_tokens: 2 });
    expect(cmpl.json()).toMatchObject({ object: 'text_completion', choices: [{ text: 'The quick' }] });
    const stream = parseSse((await http(sim.url, 'POST', '/invocations', { prompt: 'hi', max_tokens: 1, stream: true })).text);
    expect(stream.done).toBe(true);
    expect(stream.events[0].object).toBe('text_completion');
    // The serving class's own errors keep their shape.
    const unknown = await http(sim.url, 'POST', '/invocations', { model: 'x', prompt: 'hi' });
    expect([unknown.status, unknown.json().message]).toEqual([404, 'The model `x` does not exist.']);
  });

  it('JSON is read by the route: a JSONDecodeError is HTTPException(400, f"JSON decode error: {e}"), after the content-type check', async () => {
    const bad = await http(sim.url, 'POST', '/invocations', '{"a":\n1,}');
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({ object: 'error', message: 'JSON decode error: Expecting property name enclosed in double quotes: line 2 column 3 (char 8)', type: 'Bad Request', param: null, code: 400 });
    expect((await http(sim.url, 'POST', '/invocations', '')).json().message).toBe('JSON decode error: Expecting value: line 1 column 1 (char 0)');
    const plain = await fetch(`${sim.url}/invocations`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{' });
    expect(((await plain.json()) as { message: string }).message).toBe(` ["Unsupported Media Type: Only 'application/json' is allowed"]`);
  });

  it("model_validate's ValidationError is caught by no handler: Starlette's plain-text 500", async () => {
    for (const body of [{ prompt: 'hi', max_tokens: 'x' }, {}, [1], { messages: 'x' }]) {
      const r = await http(sim.url, 'POST', '/invocations', body);
      expect([r.status, r.text]).toEqual([500, 'Internal Server Error']);
    }
  });
});

describe("audit 39: a validation error's input is pydantic's, printed by str() of FastAPI's error list", () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000 });
  });
  afterAll(() => sim.close());

  it("a missing field's error carries the object it is missing from (pydantic's errors() always has 'input')", async () => {
    const r = await http(sim.url, 'POST', '/v1/chat/completions', { model: 'Qwen/Qwen3-0.6B' });
    expect(r.json().message).toBe("[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required', 'input': {'model': 'Qwen/Qwen3-0.6B'}}]");
    // No body at all: fastapi/_compat.py get_missing_field_error sets input None.
    const none = await fetch(`${sim.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    expect(((await none.json()) as { message: string }).message).toBe("[{'type': 'missing', 'loc': ('body',), 'msg': 'Field required', 'input': None}]");
  });

  it("a model validator's input is the whole body as Python's repr, untruncated, with Python's string escapes", async () => {
    const content = 'a line\nand a much longer second line that runs past sixty characters';
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: content, max_tokens: 1, stream_options: { include_usage: true } });
    expect(r.json().message).toBe(
      "[{'type': 'value_error', 'loc': ('body',), 'msg': 'Value error, Stream options can only be defined when `stream=True`.', " +
        "'input': {'prompt': 'a line\\nand a much longer second line that runs past sixty characters', 'max_tokens': 1, 'stream_options': {'include_usage': True}}, " +
        "'ctx': {'error': ValueError('Stream options can only be defined when `stream=True`.')}}]",
    );
  });
});
