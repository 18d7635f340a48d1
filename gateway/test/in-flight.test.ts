/**
 * In-flight accounting of kvroute's response mode (response body NONE, response trailers SEND: `lib/ext-proc.ts`)
 * through the gateway in every Envoy release's semantics, against the whole real EPP (`startEpp`: static discovery
 * scraping a vLLM `/metrics` page, the default scheduling config, request control, the exported
 * `inference_objective_running_requests` gauge and the datastore's per-endpoint count the scorers read).
 *
 * With response bodies NONE the EPP never sees a response end; it counts a request in flight until Envoy closes the
 * ext_proc stream. That is when the HTTP exchange ends on Envoy 1.35/1.36 (`Filter::onDestroy`,
 * source/extensions/filters/http/ext_proc/ext_proc.cc @ v1.35.0 L667-701, @ v1.36.0 L696-731), and on Envoy >= 1.37
 * only because response trailers SEND is still pending (`ProcessorState::isLastResponseAfterHeaderResp`,
 * processor_state.cc @ v1.37.0 L652-677; `Filter::closeGrpcStreamIfLastRespReceived` ext_proc.cc L1721-1772). The last
 * case shows what trailers SKIP would do there: the count drops to 0 at the first byte.
 */
import * as http from 'http';
import { parseArgs, startEpp, type Logger, type RunningEpp } from '@kvroute/epp';
import { FakeVllmServer } from '@kvroute/testkit';
import { ENVOY_SEMANTICS_VERSIONS } from '../src/envoy-semantics';
import { StreamingReply } from './clients';
import { completion, destroyClientAgent, gateway, LOOPBACK, startUpstream, waitFor, type Upstream } from './harness';

jest.setTimeout(60_000);

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const N = 6;

let up: Upstream;
let pod: FakeVllmServer;
let epp: RunningEpp;

beforeAll(async () => {
  // The EPP scrapes this vLLM page for the upstream (same address, another port: --model-server-metrics-port).
  pod = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
});

// A fresh upstream (its SSE gate holds no permits left over) and a fresh EPP (counts from 0) for every test.
beforeEach(async () => {
  up = await startUpstream();
  epp = await startEpp(parseArgs(['--endpoints', up.address, '--model-server-metrics-port', String(pod.port),
    '--host', LOOPBACK, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
    '--refresh-metrics-interval', '20ms', '--request-body-mode', 'buffered', '--response-body-mode', 'none',
    '--shutdown-grace-period', '1ms'])!, quiet);
  await waitFor(() => epp.datastore.snapshot().length === 1 && epp.datastore.snapshot()[0].metrics.updateTime > 0);
});

afterEach(async () => {
  await epp.stop();
  await up.close();
});

afterAll(async () => {
  await pod.close();
  destroyClientAgent();
});

/** The EPP's count, both ways it is kept: the exported gauge (its /metrics page) and the datastore's count. */
async function inFlight(): Promise<{ gauge: number; datastore: number }> {
  const page = await new Promise<string>((resolve, reject) => {
    http.get({ host: LOOPBACK, port: epp.metricsPort, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  let gauge = 0;
  for (const line of page.split('\n')) {
    if (line.startsWith('inference_objective_running_requests{') || line.startsWith('inference_objective_running_requests ')) {
      gauge += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  const datastore = epp.datastore.snapshot().reduce((a, s) => a + s.activeRequests, 0);
  return { gauge, datastore };
}

async function expectInFlight(n: number): Promise<void> {
  let last = { gauge: -1, datastore: -1 };
  await waitFor(async () => {
    last = await inFlight();
    return last.gauge === n && last.datastore === n;
  }).catch(() => undefined);
  expect(last).toEqual({ gauge: n, datastore: n });
}

/** Releases one more SSE event for each of `n` responses waiting at the upstream's gate. */
function nextEvent(n: number): void {
  for (let i = 0; i < n; i++) up.gate.open();
}

/** An SSE request the test can cut: resolves once the first event arrived. */
function abortable(port: number): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: LOOPBACK, port, method: 'POST', path: '/sse?n=3', headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      res.once('data', () => resolve(req));
    });
    req.on('error', (e) => reject(e));
    req.end(completion());
  });
}

describe.each(ENVOY_SEMANTICS_VERSIONS)('Envoy %s, response body NONE, response trailers SEND', (version) => {
  it(`${N} concurrent streaming responses are ${N} in flight until they end, then 0`, async () => {
    const gw = await gateway({ endpoints: [up.address], extProc: `${LOOPBACK}:${epp.grpcPort}`, envoySemantics: version });
    try {
      await expectInFlight(0);
      const replies = Array.from({ length: N }, () => new StreamingReply(gw.port, '/sse?n=3', completion()));
      await Promise.all(replies.map((r) => r.until('"i":0')));
      // Every client has its first byte and every response is still open at the upstream's gate.
      expect(replies.every((r) => !r.ended && r.status === 200)).toBe(true);
      await expectInFlight(N);
      nextEvent(N);
      await Promise.all(replies.map((r) => r.until('"i":1')));
      expect(replies.some((r) => r.ended)).toBe(false);
      // The EPP has no way to see a body's progress in this mode, so nothing may have been released meanwhile.
      expect(await inFlight()).toEqual({ gauge: N, datastore: N });
      nextEvent(N);
      await Promise.all(replies.map((r) => r.done));
      expect(replies.every((r) => r.ended && r.text.includes('[DONE]'))).toBe(true);
      await expectInFlight(0);
      expect(gw.stats().extProc.openStreams).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('a client that goes away mid-stream releases its request, the others stay counted', async () => {
    const gw = await gateway({ endpoints: [up.address], extProc: `${LOOPBACK}:${epp.grpcPort}`, envoySemantics: version });
    try {
      const replies = Array.from({ length: N - 1 }, () => new StreamingReply(gw.port, '/sse?n=3', completion()));
      const leaving = await abortable(gw.port);
      await Promise.all(replies.map((r) => r.until('"i":0')));
      await expectInFlight(N);
      leaving.destroy();
      await expectInFlight(N - 1);
      expect(replies.some((r) => r.ended)).toBe(false);
      // The aborted response's generator still waits at the gate: two events for each of the N.
      nextEvent(N);
      nextEvent(N);
      await Promise.all(replies.map((r) => r.done));
      await expectInFlight(0);
    } finally {
      await gw.close();
    }
  });
});

describe('what trailers SKIP would do on Envoy >= 1.37 (#41425, the stream-close optimization)', () => {
  it.each(['1.37', '1.38'] as const)('%s: the stream closes at the response headers and the count is 0 while the responses stream', async (version) => {
    const gw = await gateway({ endpoints: [up.address], extProc: `${LOOPBACK}:${epp.grpcPort}`, envoySemantics: version, responseTrailerMode: 'skip' });
    try {
      const replies = Array.from({ length: N }, () => new StreamingReply(gw.port, '/sse?n=2', completion()));
      await Promise.all(replies.map((r) => r.until('"i":0')));
      await expectInFlight(0);
      expect(replies.some((r) => r.ended)).toBe(false);
      nextEvent(N);
      await Promise.all(replies.map((r) => r.done));
      await expectInFlight(0);
    } finally {
      await gw.close();
    }
  });
});
