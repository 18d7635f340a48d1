/**
 * `--api-key` as vLLM 0.10.0 has it: vllm/entrypoints/openai/api_server.py `AuthenticationMiddleware` (skip OPTIONS and
 * paths not starting with "/v1", else `Authorization` must equal "Bearer <key>", else 401 `{"error":"Unauthorized"}`),
 * added after CORSMiddleware so it runs before it and before routing.
 */
import * as net from 'node:net';
import { startSimulator, type Simulator } from '../src/server';

describe('--api-key: vLLM AuthenticationMiddleware (api_server.py @ v0.10.0)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, apiKey: 'sk-test' });
  });
  afterAll(() => sim.close());

  const chat = { model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
  const post = (path: string, headers: Record<string, string>, body: unknown = chat) =>
    fetch(sim.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  it('a /v1 request without the key, or with another, is a 401 with vLLM\'s body, and nothing is served', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong' }, { authorization: 'bearer sk-test' }, { authorization: 'sk-test' }, { authorization: 'Bearer sk-test2' }]) {
      const r = await post('/v1/chat/completions', headers);
      expect([r.status, r.headers.get('content-type'), await r.text()]).toEqual([401, 'application/json', '{"error":"Unauthorized"}']);
    }
    const metrics = await (await fetch(`${sim.url}/metrics`)).text();
    expect(metrics).toMatch(/^vllm:request_success_total\{[^}]*finished_reason="length"[^}]*\} 0\.0$/m);
  });

  it('the right key is served', async () => {
    const r = await post('/v1/chat/completions', { authorization: 'Bearer sk-test' });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { choices: { message: { role: string } }[] }).choices[0]!.message.role).toBe('assistant');
    expect((await fetch(`${sim.url}/v1/models`, { headers: { authorization: 'Bearer sk-test' } })).status).toBe(200);
  });

  it('the check runs before routing: any method and any path starting with /v1, known or not', async () => {
    expect((await fetch(`${sim.url}/v1/models`)).status).toBe(401);
    expect((await fetch(`${sim.url}/v1/models`, { method: 'DELETE' })).status).toBe(401);
    expect((await fetch(`${sim.url}/v1/nothing-here`)).status).toBe(401);
    expect((await fetch(`${sim.url}/v1foo`)).status).toBe(401);
    // Without the check the same requests are a 405 and 404s.
    const auth = { authorization: 'Bearer sk-test' };
    expect((await fetch(`${sim.url}/v1/models`, { method: 'DELETE', headers: auth })).status).toBe(405);
    expect((await fetch(`${sim.url}/v1/nothing-here`, { headers: auth })).status).toBe(404);
  });

  // uvicorn's httptools_impl.py on_header keeps every field; Node's server kept the first 1,000 (Node 20) or refused
  // the request with 431 (Node >= 22.23.2) unless maxHeadersCount is lifted (review rev-node22).
  it('a key sent after 1,200 other header fields is read, as uvicorn reads every field', async () => {
    const fields = Array.from({ length: 1200 }, (_, i) => `x-h${i}: 1\r\n`).join('');
    const body = JSON.stringify(chat);
    const head = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(new URL(sim.url).port), '127.0.0.1', () => socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${fields}`
        + `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nAuthorization: Bearer sk-test\r\nConnection: close\r\n\r\n${body}`));
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (c: string) => (data += c));
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
  });

  it('paths outside /v1 need no key: health, metrics, tokenize, version', async () => {
    expect((await fetch(`${sim.url}/health`)).status).toBe(200);
    expect((await fetch(`${sim.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${sim.url}/version`)).status).toBe(200);
    const tokenize = await post('/tokenize', {}, { model: 'Qwen/Qwen3-0.6B', prompt: 'hello' });
    expect(tokenize.status).toBe(200);
  });

  it('OPTIONS is never checked: a preflight gets CORS, a bare OPTIONS the router\'s 405; a 401 carries no CORS header', async () => {
    const preflight = await fetch(`${sim.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    expect([preflight.status, preflight.headers.get('access-control-allow-origin')]).toEqual([200, '*']);
    expect((await fetch(`${sim.url}/v1/models`, { method: 'OPTIONS' })).status).toBe(405);
    const denied = await post('/v1/chat/completions', { origin: 'https://app.example' });
    expect([denied.status, denied.headers.get('access-control-allow-origin')]).toEqual([401, null]);
    const served = await post('/v1/chat/completions', { origin: 'https://app.example', authorization: 'Bearer sk-test' });
    expect([served.status, served.headers.get('access-control-allow-origin')]).toEqual([200, '*']);
  });
});

describe('without --api-key nothing is checked', () => {
  it('a /v1 request without Authorization is served', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000 });
    try {
      expect((await fetch(`${sim.url}/v1/models`)).status).toBe(200);
    } finally {
      await sim.close();
    }
  });
});
