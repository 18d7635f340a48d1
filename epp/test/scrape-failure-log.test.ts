/**
 * A model server whose metrics page cannot be read is said in the EPP's log, once per failing spell. Without it a pool
 * scraped at a wrong --model-server-metrics-path answered every request 503 ("saturation-filter left none of 2
 * candidate endpoint(s)") while the EPP logged nothing at any --v: failed scrapes were only counted, in a family with no
 * endpoint label. GIE v1.5.0 logs each failed scrape, at TRACE only (`pkg/epp/backend/metrics/pod_metrics.go`
 * refreshMetrics: "Failed to refresh metrics"); kvroute logs the state change instead, so a pod that keeps failing at
 * the 50 ms period does not write twenty lines a second.
 *
 * Real HTTP servers on loopback (FakeVllmServer); the EPP's own JSON logger writes into a stream the test reads. Every
 * wait is a condition with a generous limit; nothing asserts speed.
 */
import { PassThrough } from 'node:stream';
import { FakeVllmServer, waitFor } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { Datastore, SCRAPE_FAILURES_REPORTED } from '../src/datastore/datastore';
import { endpointKey } from '../src/datastore/endpoint-key';
import type { Endpoint } from '../src/datastore/types';
import { jsonLogger, startEpp, type RunningEpp } from '../src/runner';

jest.setTimeout(60_000);

function logLines(): { out: PassThrough; lines: () => Record<string, unknown>[] } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
  return { out, lines: () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('the EPP logs model servers whose metrics cannot be read (a wrong --model-server-metrics-path)', () => {
  const pods: FakeVllmServer[] = [];
  let epp: RunningEpp | undefined;
  afterEach(async () => {
    await epp?.stop();
    epp = undefined;
    await Promise.all(pods.splice(0).map((p) => p.close()));
  });

  test.each(['worker', 'event-loop'])('--metrics-scrape-mode %s: one warning per pod at --v 0, naming the pod and the HTTP 404, however many scrapes fail', async (mode) => {
    for (let i = 0; i < 2; i++) pods.push(await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] }));
    const keys = pods.map((p) => `127.0.0.1:${p.port}`);
    const log = logLines();
    epp = await startEpp(parseArgs(['--endpoints', keys.join(','), '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
      '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms', '--metrics-scrape-mode', mode, '--model-server-metrics-path', '/v1/metrics'], {})!, jsonLogger(0, log.out));
    const running = epp;
    // Many failed scrapes of each pod: the line is said once, not once per scrape.
    await waitFor(() => keys.every((k) => (running.datastore.scrapeStatus(k)?.failures ?? 0) >= 30), '30 failed scrapes of each pod');
    const failing = log.lines().filter((l) => l.level === 'warn' && String(l.msg).startsWith('model server metrics cannot be read'));
    expect(failing.map((l) => l.endpoint).sort()).toEqual([...keys].sort());
    for (const line of failing) {
      expect(line.error).toBe(`HTTP 404 from http://${String(line.endpoint)}/v1/metrics`);
      expect(line.failures).toBe(SCRAPE_FAILURES_REPORTED);
    }
  });
});

describe('Datastore: endpointScrapesFailing and endpointScrapesRecovered, once per failing spell', () => {
  let server: FakeVllmServer;
  let ds: Datastore | undefined;
  beforeEach(async () => { server = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] }); });
  afterEach(async () => {
    await ds?.stop();
    ds = undefined;
    await server.close();
  });

  function watch(store: Datastore): string[] {
    const events: string[] = [];
    store.on('endpointScrapesFailing', (ep, error, failures) => events.push(`failing ${ep.name} ${failures} ${error}`));
    store.on('endpointScrapesRecovered', (ep) => events.push(`recovered ${ep.name}`));
    return events;
  }

  const endpoint = (): Endpoint => ({ key: endpointKey('127.0.0.1', server.port), name: 'pod-a', namespace: 'ns', address: '127.0.0.1', port: server.port, labels: {} });
  /** Waits for `n` more scrapes of the endpoint. */
  const scrapes = async (store: Datastore, n: number) => {
    const from = store.scrapeStatus(endpoint().key)?.scrapes ?? 0;
    await waitFor(() => (store.scrapeStatus(endpoint().key)?.scrapes ?? 0) >= from + n, `${n} more scrapes`);
  };

  test('a pod whose scrapes fail, succeed and fail again within the recovery period is told failing once, and never recovered', async () => {
    ds = new Datastore({ scrapeMode: 'event-loop', refreshIntervalMs: 10, scrapeTimeoutMs: 5_000, scrapesRecoveredAfterMs: 3_600_000 });
    const events = watch(ds);
    ds.upsertEndpoint(endpoint());
    await scrapes(ds, 2);
    server.mode = 'error';
    await scrapes(ds, SCRAPE_FAILURES_REPORTED + 2);
    server.mode = 'ok';
    await scrapes(ds, 5);
    server.mode = 'error';
    await scrapes(ds, SCRAPE_FAILURES_REPORTED + 2);
    expect(events).toEqual([`failing pod-a ${SCRAPE_FAILURES_REPORTED} HTTP 500 from http://127.0.0.1:${server.port}/metrics`]);
  });

  test('told recovered once the scrapes succeed for the recovery period (0 here), and failing again after that', async () => {
    ds = new Datastore({ scrapeMode: 'worker', refreshIntervalMs: 10, scrapeTimeoutMs: 5_000, scrapesRecoveredAfterMs: 0 });
    const events = watch(ds);
    ds.upsertEndpoint(endpoint());
    await scrapes(ds, 2);
    expect(events).toEqual([]);
    server.mode = 'not-metrics';
    await waitFor(() => events.length === 1, 'the pod told failing');
    await scrapes(ds, 5);
    server.mode = 'ok';
    await waitFor(() => events.length === 2, 'the pod told recovered');
    await scrapes(ds, 5);
    server.mode = 'error';
    await waitFor(() => events.length === 3, 'the pod told failing again');
    expect(events).toEqual([
      `failing pod-a ${SCRAPE_FAILURES_REPORTED} no readable model-server metrics (1 malformed lines, first: line 1 missing metric name)`,
      'recovered pod-a',
      `failing pod-a ${SCRAPE_FAILURES_REPORTED} HTTP 500 from http://127.0.0.1:${server.port}/metrics`,
    ]);
  });
});
