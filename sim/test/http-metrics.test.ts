import { request } from 'node:http';
import { ManualClock } from '../src/clock';
import { HTTP_HIGHR_BUCKETS, pythonFloatStr } from '../src/metrics';
import { startSimulator, type Simulator } from '../src/server';
import { http, metricValue, parsePrometheus, waitFor, type Sample } from './helpers';

/**
 * prometheus-fastapi-instrumentator's default http_* families on the simulator's page, as vLLM 0.10.0's mount_metrics
 * installs them: `Instrumentator(excluded_handlers=["/metrics", "/health", "/load", "/ping", "/version",
 * "/server_info"], registry=registry).add().instrument(app).expose(app, ...)` (vllm/entrypoints/openai/api_server.py
 * @ v0.10.0), with prometheus-fastapi-instrumentator v7.1.0 (vLLM requires >= 7.0.0; metrics.py, middleware.py,
 * routing.py @ v7.1.0).
 */

const MODEL = 'Qwen/Qwen3-0.6B';

async function page(sim: Simulator, path = '/metrics', accept?: string): Promise<string> {
  const r = await fetch(`${sim.url}${path}`, accept === undefined ? {} : { headers: { accept } });
  expect(r.status).toBe(200);
  return r.text();
}

function types(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
}

/** The samples of one http_* family (and its _created gauge) with these labels. */
function httpSamples(s: Sample[], prefix: string): Sample[] {
  return s.filter((x) => x.name.startsWith(prefix));
}

function requestsTotal(s: Sample[], labels: { handler: string; method: string; status: string }): number {
  const hit = s.filter((x) => x.name === 'http_requests_total' && x.labels.handler === labels.handler && x.labels.method === labels.method && x.labels.status === labels.status);
  return hit.length === 0 ? 0 : hit[0]!.value;
}

describe('http_* families of prometheus-fastapi-instrumentator (metrics.py @ v7.1.0 default(), as vLLM 0.10.0 mount_metrics installs it)', () => {
  it("follow the vllm: families, in default()'s order, with its help texts verbatim (trailing spaces kept), types, label names and buckets (metrics.py @ v7.1.0 lines 616-777)", async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000 });
    try {
      const text = await page(sim);
      const t = types(text);
      const firstHttp = t.findIndex((x) => x.startsWith('http_'));
      // Every vllm: family comes before the first http_ one: AsyncLLM (built before build_app) registered them, and
      // Starlette creates the middleware, hence these, when the app starts.
      expect(t.slice(firstHttp)).toEqual([
        'http_requests_total counter',
        'http_request_size_bytes summary',
        'http_response_size_bytes summary',
        'http_request_duration_highr_seconds histogram',
        'http_request_duration_highr_seconds_created gauge',
        'http_request_duration_seconds histogram',
      ]);
      expect(t.slice(0, firstHttp).filter((x) => x.startsWith('vllm:')).length).toBeGreaterThan(20);
      expect(text).toContain('# HELP http_requests_total Total number of requests by method, status and handler.\n# TYPE http_requests_total counter\n');
      expect(text).toContain('# HELP http_request_size_bytes Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. \n');
      expect(text).toContain('# HELP http_response_size_bytes Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. \n');
      expect(text).toContain('# HELP http_request_duration_highr_seconds Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. \n');
      expect(text).toContain('# HELP http_request_duration_seconds Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. \n');
      // Before any request: the labelled families have no series (and no _created family); the unlabelled highr
      // histogram has its one series, at zero, with default()'s 21 bounds and +Inf.
      const s = parsePrometheus(text);
      expect(httpSamples(s, 'http_requests_')).toEqual([]);
      expect(httpSamples(s, 'http_request_size_bytes')).toEqual([]);
      expect(httpSamples(s, 'http_request_duration_seconds')).toEqual([]);
      const highr = s.filter((x) => x.name === 'http_request_duration_highr_seconds_bucket').map((x) => x.labels.le);
      expect(highr).toEqual([...HTTP_HIGHR_BUCKETS.map(pythonFloatStr), '+Inf']);
      expect(metricValue(s, 'http_request_duration_highr_seconds_count')).toBe(0);
      expect(text).toMatch(/\nhttp_request_duration_highr_seconds_created \d\.\d+e\+09\n/);
    } finally {
      await sim.close();
    }
  });

  it('counts every request that reaches a route under its path template; untemplated ones as handler "none"; vLLM\'s excluded handlers never (middleware.py, routing.py @ v7.1.0; excluded_handlers in api_server.py @ v0.10.0 mount_metrics)', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, serverDevMode: false });
    try {
      const completion = JSON.stringify({ model: MODEL, prompt: 'Hello', max_tokens: 2 });
      for (let i = 0; i < 3; i++) expect((await http(sim.url, 'POST', '/v1/completions', completion)).status).toBe(200);
      const chat = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
      for (let i = 0; i < 2; i++) expect((await http(sim.url, 'POST', '/v1/chat/completions', chat)).status).toBe(200);
      const models = await http(sim.url, 'GET', '/v1/models');
      expect(models.status).toBe(200);
      expect((await http(sim.url, 'POST', '/tokenize', { model: MODEL, prompt: 'Hello' })).status).toBe(200);
      // A path-parameter route counts under its template, whatever it answers.
      expect((await http(sim.url, 'GET', '/v1/responses/resp_unknown')).status).toBe(404);
      // 4xx from a route: the route's own template.
      expect((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 0 })).status).toBe(400);
      // No route matches: "none" (should_group_untemplated), whatever the status; a route of another method is only a
      // PARTIAL match, for which _get_route_name returns None too.
      expect((await http(sim.url, 'GET', '/nope')).status).toBe(404);
      expect((await http(sim.url, 'GET', '/v1/completions')).status).toBe(405);
      // POST /reset_prefix_cache is a route only with VLLM_SERVER_DEV_MODE.
      expect((await http(sim.url, 'POST', '/reset_prefix_cache')).status).toBe(404);
      // A trailing slash: get_route_name retries without it and puts it back, so the 307 counts as "/v1/models/".
      expect((await fetch(`${sim.url}/v1/models/`, { redirect: 'manual' })).status).toBe(307);
      // Excluded (re.search of "/metrics", "/health", "/load", "/ping", "/version", "/server_info" in the handler, the
      // raw path when untemplated): none of these count.
      for (const [method, path] of [['GET', '/health'], ['GET', '/ping'], ['POST', '/ping'], ['GET', '/load'], ['GET', '/version'], ['GET', '/metrics'], ['GET', '/metrics/'], ['HEAD', '/metrics'], ['GET', '/metricsx'], ['GET', '/healthz'], ['HEAD', '/health']] as const) {
        await fetch(`${sim.url}${path}`, { method });
      }
      const s = parsePrometheus(await page(sim));
      expect(requestsTotal(s, { handler: '/v1/completions', method: 'POST', status: '2xx' })).toBe(3);
      expect(requestsTotal(s, { handler: '/v1/completions', method: 'POST', status: '4xx' })).toBe(1);
      expect(requestsTotal(s, { handler: '/v1/chat/completions', method: 'POST', status: '2xx' })).toBe(2);
      expect(requestsTotal(s, { handler: '/v1/models', method: 'GET', status: '2xx' })).toBe(1);
      expect(requestsTotal(s, { handler: '/tokenize', method: 'POST', status: '2xx' })).toBe(1);
      expect(requestsTotal(s, { handler: '/v1/responses/{response_id}', method: 'GET', status: '4xx' })).toBe(1);
      expect(requestsTotal(s, { handler: 'none', method: 'GET', status: '4xx' })).toBe(2);
      expect(requestsTotal(s, { handler: 'none', method: 'POST', status: '4xx' })).toBe(1);
      expect(requestsTotal(s, { handler: '/v1/models/', method: 'GET', status: '3xx' })).toBe(1);
      // Nothing else: 3 + 1 + 2 + 1 + 1 + 1 + 3 + 1 requests, and no excluded handler among the labels.
      const total = s.filter((x) => x.name === 'http_requests_total');
      expect(total.reduce((a, x) => a + x.value, 0)).toBe(13);
      expect(total.map((x) => x.labels.handler).filter((h) => /metrics|health|ping|load|version/.test(h))).toEqual([]);
      // Sizes are the Content-Length headers: the request's as sent, the response's as the JSON route set it.
      expect(metricValue(s, 'http_request_size_bytes_count', { handler: '/v1/completions' })).toBe(4);
      expect(metricValue(s, 'http_request_size_bytes_sum', { handler: '/v1/completions' })).toBe(3 * Buffer.byteLength(completion) + Buffer.byteLength(JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: 0 })));
      expect(metricValue(s, 'http_request_size_bytes_sum', { handler: '/v1/models' })).toBe(0);
      expect(metricValue(s, 'http_response_size_bytes_sum', { handler: '/v1/models' })).toBe(Buffer.byteLength(models.text));
      // The durations: one highr sample per counted request, the lowr ones per method and handler.
      expect(metricValue(s, 'http_request_duration_highr_seconds_count')).toBe(13);
      expect(metricValue(s, 'http_request_duration_seconds_count', { handler: '/v1/completions', method: 'POST' })).toBe(4);
      expect(s.filter((x) => x.name === 'http_request_duration_seconds_bucket' && x.labels.handler === 'none' && x.labels.method === 'GET').map((x) => x.labels.le)).toEqual(['0.1', '0.5', '1.0', '+Inf']);
      // Each labelled series has a _created sample, its family written after the family as prometheus_client does.
      expect(s.filter((x) => x.name === 'http_requests_created')).toHaveLength(total.length);
    } finally {
      await sim.close();
    }
  });

  it("groups the status codes (should_group_status_codes=True): a plain-text 500 raised through the middleware counts 5xx with no Content-Length (middleware.py @ v7.1.0 lines 145, 176-204)", async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000 });
    try {
      // The Responses API refuses stream=true with NotImplementedError outside any handler: Starlette's plain 500.
      const r = await http(sim.url, 'POST', '/v1/responses', { model: MODEL, input: 'hi', stream: true });
      expect(r.status).toBe(500);
      expect(r.text).toBe('Internal Server Error');
      const s = parsePrometheus(await page(sim));
      expect(requestsTotal(s, { handler: '/v1/responses', method: 'POST', status: '5xx' })).toBe(1);
      expect(metricValue(s, 'http_response_size_bytes_sum', { handler: '/v1/responses' })).toBe(0);
    } finally {
      await sim.close();
    }
  });

  it('does not count what the API-key and CORS middlewares answer: vLLM adds them after mount_metrics, so they wrap the instrumentator (api_server.py @ v0.10.0 build_app)', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, apiKey: 'k' });
    try {
      expect((await http(sim.url, 'GET', '/v1/models')).status).toBe(401);
      const preflight = await fetch(`${sim.url}/v1/models`, { method: 'OPTIONS', headers: { origin: 'http://x', 'access-control-request-method': 'GET' } });
      expect(preflight.status).toBe(200);
      expect((await fetch(`${sim.url}/v1/models`, { headers: { authorization: 'Bearer k', origin: 'http://x' } })).status).toBe(200);
      const s = parsePrometheus(await page(sim));
      expect(s.filter((x) => x.name === 'http_requests_total').map((x) => [x.labels.handler, x.labels.method, x.labels.status, x.value])).toEqual([['/v1/models', 'GET', '2xx', 1]]);
    } finally {
      await sim.close();
    }
  });

  it('--disable-log-stats removes only the vllm: families: the instrumentator is mounted regardless (mount_metrics in build_app, api_server.py @ v0.10.0)', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, disableLogStats: true });
    try {
      expect((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'Hello', max_tokens: 2 })).status).toBe(200);
      const text = await page(sim);
      expect(text).not.toContain('vllm:');
      expect(types(text).filter((x) => x.startsWith('http_') && !x.includes('_created'))).toEqual([
        'http_requests_total counter',
        'http_request_size_bytes summary',
        'http_response_size_bytes summary',
        'http_request_duration_highr_seconds histogram',
        'http_request_duration_seconds histogram',
      ]);
      expect(requestsTotal(parsePrometheus(text), { handler: '/v1/completions', method: 'POST', status: '2xx' })).toBe(1);
    } finally {
      await sim.close();
    }
  });

  it('OpenMetrics (the /metrics/ mount): the counter family is http_requests, the summaries list _count, _sum, _created per series', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000 });
    try {
      await http(sim.url, 'GET', '/v1/models');
      const om = await page(sim, '/metrics/', 'application/openmetrics-text');
      expect(om).toMatch(/\n# TYPE http_requests counter\nhttp_requests_total\{handler="\/v1\/models",method="GET",status="2xx"\} 1\.0\nhttp_requests_created\{handler="\/v1\/models",method="GET",status="2xx"\} \d\.\d+e\+09\n/);
      expect(om).toMatch(/\n# TYPE http_response_size_bytes summary\nhttp_response_size_bytes_count\{handler="\/v1\/models"\} 1\.0\nhttp_response_size_bytes_sum\{handler="\/v1\/models"\} \d+\.0\nhttp_response_size_bytes_created\{handler="\/v1\/models"\} \d\.\d+e\+09\n/);
      expect(om.endsWith('\n# EOF\n')).toBe(true);
    } finally {
      await sim.close();
    }
  });
});

describe('http_request_duration_*: until the response\'s last body chunk, streaming included (should_exclude_streaming_duration=False; middleware.py @ v7.1.0 lines 130, 174-192)', () => {
  it("a stream's duration covers the whole stream, not the time to its response start; the engine's part is model time (a ManualClock)", async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, itlMs: 20, ttftOverheadMs: 20 });
    try {
      const url = new URL(sim.url);
      let body = '';
      const done = new Promise<void>((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path: '/v1/completions', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve());
        });
        req.on('error', reject);
        req.end(JSON.stringify({ model: MODEL, prompt: 'Hello', max_tokens: 60, stream: true }));
      });
      await waitFor(() => sim.engine.stats().running + sim.engine.stats().waiting === 1, 'the stream to reach the engine');
      clock.runAll();
      await done;
      expect(body.endsWith('data: [DONE]\n\n')).toBe(true);
      const s = parsePrometheus(await page(sim));
      const e2e = metricValue(s, 'vllm:e2e_request_latency_seconds_sum');
      const ttft = metricValue(s, 'vllm:time_to_first_token_seconds_sum');
      // 60 tokens at 20 ms: over a second of model time, its first token after a few tens of milliseconds.
      expect(e2e).toBeGreaterThan(1.2);
      expect(ttft).toBeLessThan(0.1);
      const duration = metricValue(s, 'http_request_duration_seconds_sum', { handler: '/v1/completions', method: 'POST' });
      // The model time of the engine work plus the server's own wall time (small, but a loaded CI machine is slow).
      expect(duration).toBeGreaterThanOrEqual(e2e);
      expect(duration).toBeLessThan(e2e + 1);
      // So it lands above the lowr 1.0 bound and the highr 1.0 bound, where a time-to-response-start would not.
      expect(metricValue(s, 'http_request_duration_seconds_bucket', { handler: '/v1/completions', method: 'POST', le: '1.0' })).toBe(0);
      expect(metricValue(s, 'http_request_duration_highr_seconds_bucket', { le: '1.0' })).toBe(0);
      // A stream has no Content-Length: its response size is 0.
      expect(metricValue(s, 'http_response_size_bytes_sum', { handler: '/v1/completions' })).toBe(0);
    } finally {
      await sim.close();
    }
  });

  it('a client that hangs up mid-stream is counted when the server notices, with the status already sent (2xx)', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, itlMs: 20, ttftOverheadMs: 20 });
    try {
      const url = new URL(sim.url);
      const req = request({ host: url.hostname, port: url.port, path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => res.resume());
      req.on('error', () => undefined);
      req.end(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 200, stream: true }));
      await waitFor(() => sim.engine.stats().running + sim.engine.stats().waiting === 1, 'the stream to reach the engine');
      clock.advance(500);
      req.destroy();
      await waitFor(() => sim.engine.stats().running === 0, 'the abort');
      const s = parsePrometheus(await page(sim));
      expect(requestsTotal(s, { handler: '/v1/chat/completions', method: 'POST', status: '2xx' })).toBe(1);
      const duration = metricValue(s, 'http_request_duration_seconds_sum', { handler: '/v1/chat/completions', method: 'POST' });
      // Half a second of model time had passed in the engine; the stream would have taken four.
      expect(duration).toBeGreaterThanOrEqual(0.45);
      expect(duration).toBeLessThan(1.5);
    } finally {
      await sim.close();
    }
  });
});
