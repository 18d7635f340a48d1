/**
 * Two whole EPPs (`startEpp`, as `main.ts` runs it: config text, static endpoints, scrapers, ext_proc over real gRPC)
 * in front of the same four simulated vLLM pods, sharing nothing but what their config names:
 * - a real `redis-server` (`sessionStore`): sessions first routed by A are routed by B to the same pods, and B's
 *   /metrics shows the store's hits;
 * - a signing key and no store (`tokenSigning`): the `x-session-token` A sets on a response steers B.
 * The pods are equal, so without sharing B would place each new session by a random tie-break: 24 sessions all
 * landing where A put them is what sharing makes certain and chance does not (0.25^24).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { FakeVllmServer, E2E_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { FakeEnvoy, requestBody, requestHeaders, responseBody, responseHeaders, setHeaders, waitFor } from './extproc-harness';
import { RedisServer, redisServerAvailable, requireRedisServerInCi } from './redis-server';

requireRedisServerInCi();

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** One chat request as Envoy sends it with a full-duplex filter; the pick and the response headers the EPP set. */
async function send(envoy: FakeEnvoy, content: string, headers: Record<string, string>): Promise<{ endpoint: string; set: Record<string, string> }> {
  const s = envoy.open();
  try {
    const base = { ':method': 'POST', ':path': '/v1/chat/completions', ':authority': 'kvroute.test', 'content-type': 'application/json', ...headers };
    s.send(requestHeaders(base, false));
    s.send(requestBody(Buffer.from(JSON.stringify({ model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content }] })), true));
    const first = await s.next();
    if (first.immediate_response) throw new Error(`rejected: ${first.immediate_response.body.toString()}`);
    const endpoint = setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint']!;
    for (;;) {
      const m = await s.next();
      if (m.request_body.response.body_mutation.streamed_response.end_of_stream) break;
    }
    s.send(responseHeaders({ ':status': '200', 'content-type': 'application/json' }, false));
    const set = setHeaders((await s.next()).response_headers.response?.header_mutation);
    s.send(responseBody('{"choices":[]}', true));
    await s.next();
    return { endpoint, set };
  } finally {
    s.end();
  }
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
}

describe('two EPPs sharing sessions', () => {
  // Two EPP starts (each ~5 s under load, its scrape worker loading TypeScript) and a redis-server: 17-22 s alone on a
  // loaded core, once past the 60 s integration limit in a full loaded run.
  jest.setTimeout(E2E_TEST_TIMEOUT_MS);
  let pods: FakeVllmServer[];
  const epps: RunningEpp[] = [];
  const envoys: FakeEnvoy[] = [];

  beforeEach(async () => {
    pods = await Promise.all([0, 1, 2, 3].map(() => FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] })));
  });
  afterEach(async () => {
    for (const e of envoys.splice(0)) e.close();
    for (const e of epps.splice(0)) await e.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  async function start(configText: string): Promise<FakeEnvoy> {
    const options = parseArgs(['--endpoints', pods.map((p) => `127.0.0.1:${p.port}`).join(','), '--grpc-port', '0',
      '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms',
      '--response-body-mode', 'full-duplex', '--config-text', configText])!;
    const epp = await startEpp(options, quiet);
    epps.push(epp);
    await waitFor(() => epp.datastore.snapshot().length === 4 && epp.datastore.snapshot().every((s) => s.metrics.updateTime > 0), 'every pod scraped');
    const envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    envoys.push(envoy);
    return envoy;
  }

  (redisServerAvailable ? it : it.skip)(
    redisServerAvailable ? 'through a real redis-server: B routes every session where A put it' : 'through a real redis-server (skipped: no redis-server binary; apt-get install redis-server)',
    async () => {
      const redis = await RedisServer.start();
      try {
        const config = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-filter
  parameters: {sessionStore: {address: "${redis.url}", timeout: 1s}}   # generous: the test asserts sharing, not speed
- type: queue-scorer
- type: random-picker
`;
        const a = await start(config);
        const b = await start(config);
        await waitFor(async () => /kvroute_epp_session_store_connected 1/.test(await scrape(epps[1]!.metricsPort)), 'B connected to the store');
        const placed = new Map<string, string>();
        for (let i = 0; i < 24; i++) placed.set(`session-${i}`, (await send(a, `hello ${i}`, { 'x-session-id': `session-${i}` })).endpoint);
        expect(new Set(placed.values()).size).toBeGreaterThan(1); // A spread them: B cannot match by always picking one pod
        await waitFor(async () => (await redis.command('DBSIZE')) === ':24', 'the 24 bindings in the store');
        for (const [session, endpoint] of placed) expect((await send(b, 'next turn', { 'x-session-id': session })).endpoint).toBe(endpoint);
        expect(await scrape(epps[1]!.metricsPort)).toContain('kvroute_epp_session_store_operations_total{operation="read",outcome="hit"} 24');
      } finally {
        for (const e of epps.splice(0)) await e.stop();
        await redis.stop();
      }
    },
  );

  it('through a signed x-session-token and no store: B follows the token A issued; a forged one is ignored', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-e2e-token-'));
    try {
      fs.writeFileSync(path.join(dir, 'key'), 'k'.repeat(32));
      const config = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-scorer
  parameters: {tokenSigning: {keyFile: ${path.join(dir, 'key')}}}
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: session-affinity-scorer
    weight: 10
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`;
      const a = await start(config);
      const b = await start(config);
      const first = await send(a, 'hello', {});
      const token = first.set['x-session-token'];
      expect(token).toBeDefined();
      for (let i = 0; i < 10; i++) expect((await send(b, `turn ${i}`, { 'x-session-token': token! })).endpoint).toBe(first.endpoint);
      const forged = `${Buffer.from(`/${first.endpoint}`).toString('base64')}.${token!.split('.')[1]}.AAAA`;
      await send(b, 'forged', { 'x-session-token': forged });
      expect(await scrape(epps[1]!.metricsPort)).toContain('kvroute_epp_session_tokens_total{outcome="forged"} 1');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
