/**
 * Audit 39: the HTTP surface against vLLM 0.10.0 (vllm/entrypoints/openai/api_server.py) and the FastAPI / Starlette
 * routing it runs on. Each test names the upstream code it mirrors.
 */
import { startSimulator, type Simulator } from '../src/server';
import { http } from './helpers';

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
