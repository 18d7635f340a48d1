import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { FakeVllmServer, renderVllmMetrics, waitFor } from '@kvroute/testkit';
import { budgetedInterval, nextAdaptiveInterval } from '../src/datastore/adaptive-interval';
import { Datastore, type ScrapeMode } from '../src/datastore/datastore';
import { ScrapeWorkerPool } from '../src/datastore/scrape-pool';
import { metricsUrl } from '../src/datastore/scraper';
import { EMPTY_METRICS, type Endpoint, type EndpointMetrics } from '../src/datastore/types';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig } from '../src/config';
import { stalenessWarnings } from '../src/runner';
import { monotonicMs } from '../src/clock';

// Every wait is a condition with a generous limit that only bounds a broken test; nothing here asserts speed.
jest.setTimeout(90_000);

const endpoint = (port: number, address = '127.0.0.1'): Endpoint => ({
  key: `${address}:${port}`,
  name: `pod-${port}`,
  namespace: '',
  address,
  port,
  labels: {},
});

/**
 * A vLLM metrics page served from its own thread, so it keeps answering while the test blocks the main thread. It
 * counts answered requests in shared memory and switches pages on request, acknowledging with the count at the
 * switch: every request counted after that saw the new page.
 */
class MetricsThread {
  private constructor(private readonly worker: Worker, readonly port: number, private readonly counter: Int32Array) {}

  static async start(pages: string[]): Promise<MetricsThread> {
    const shared = new SharedArrayBuffer(4);
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      const http = require('node:http');
      const counter = new Int32Array(workerData.shared);
      let page = workerData.pages[0];
      const server = http.createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(page);
        Atomics.add(counter, 0, 1);
        Atomics.notify(counter, 0);
      });
      server.keepAliveTimeout = 60000;
      parentPort.on('message', (m) => {
        if (m.type === 'page') { page = workerData.pages[m.index]; parentPort.postMessage({ type: 'switched', at: Atomics.load(counter, 0) }); }
        if (m.type === 'close') { server.closeAllConnections(); server.close(() => parentPort.close()); }
      });
      server.listen(0, '127.0.0.1', () => parentPort.postMessage({ type: 'port', port: server.address().port }));
      `,
      { eval: true, workerData: { shared, pages } },
    );
    const port = await new Promise<number>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { port: number }) => resolve(m.port));
    });
    return new MetricsThread(worker, port, new Int32Array(shared));
  }

  get served(): number {
    return Atomics.load(this.counter, 0);
  }

  /** Switches to page `index`; resolves with the served count at the switch. */
  switchTo(index: number): Promise<number> {
    return new Promise((resolve) => {
      const onMessage = (m: { type: string; at: number }) => {
        if (m.type !== 'switched') return;
        this.worker.off('message', onMessage);
        resolve(m.at);
      };
      this.worker.on('message', onMessage);
      this.worker.postMessage({ type: 'page', index });
    });
  }

  /** Blocks this (the main) thread, without spinning, until `count` requests were answered. */
  blockUntilServed(count: number, limitMs = 60_000): void {
    const deadline = Date.now() + limitMs;
    for (let seen = this.served; seen < count; seen = this.served) {
      if (Date.now() > deadline) throw new Error(`the metrics thread answered only ${seen} of ${count} requests`);
      Atomics.wait(this.counter, 0, seen, 100);
    }
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.postMessage({ type: 'close' });
    await exited;
  }
}

const page = (waiting: number) => renderVllmMetrics({ engines: [{ waiting, running: 1, kvUsage: 0.25 }] });

describe('ScrapeWorkerPool: scraping off the routing thread', () => {
  it('keeps scraping and parsing while the main thread is blocked; the readings arrive when it unblocks', async () => {
    const server = await MetricsThread.start([page(1), page(7)]);
    const readings: EndpointMetrics[] = [];
    const pool = new ScrapeWorkerPool({
      intervalMs: 10,
      timeoutMs: 5000,
      insecureSkipVerify: true,
      onReading: (_id, metrics) => readings.push(metrics),
      onError: (err) => { throw err; },
    });
    try {
      pool.add(1, metricsUrl('127.0.0.1', server.port), EMPTY_METRICS);
      await waitFor(() => readings.some((m) => m.waitingQueueSize === 1), 'first reading');
      const at = await server.switchTo(1);
      // A worker sends its next request only after parsing the previous answer, so once two more requests were
      // answered after the switch, a page showing 7 has been fetched and parsed, all while this thread was blocked.
      server.blockUntilServed(at + 2);
      const unblocked = monotonicMs();
      await waitFor(() => readings.some((m) => m.waitingQueueSize === 7), 'the reading parsed during the block');
      const first = readings.find((m) => m.waitingQueueSize === 7) as EndpointMetrics;
      // Parsed (and stamped) before this thread could run again: on the routing thread it could not have been.
      expect(first.updateTime).toBeLessThanOrEqual(unblocked);
      expect(first.consecutiveFailures).toBe(0);
    } finally {
      await pool.stop();
      await server.close();
    }
  });

  it('the contrast: on the routing thread (event-loop mode) nothing is fetched while that thread is blocked', async () => {
    const server = await MetricsThread.start([page(1), page(7)]);
    const ds = new Datastore({ scrapeMode: 'event-loop', refreshIntervalMs: 10 });
    try {
      const ep = endpoint(server.port);
      ds.upsertEndpoint(ep);
      await waitFor(() => ds.metrics(ep.key)?.waitingQueueSize === 1, 'first reading');
      const at = await server.switchTo(1);
      // On a loaded machine the request in flight at the switch may be answered (with page 7) and read before this
      // thread gets to block; then the page was read before the block, which is not what is checked below.
      const readBeforeBlock = ds.metrics(ep.key)?.waitingQueueSize === 7;
      // At most the one request already in flight can be answered while this thread cannot issue the next.
      expect(() => server.blockUntilServed(at + 2, 2000)).toThrow(/answered only/);
      const unblocked = monotonicMs();
      await waitFor(() => ds.metrics(ep.key)?.waitingQueueSize === 7, 'the page after unblocking');
      if (!readBeforeBlock) expect(ds.metrics(ep.key)?.updateTime).toBeGreaterThanOrEqual(unblocked);
    } finally {
      await ds.stop();
      await server.close();
    }
  });

  it('reports a worker that dies and restarts it with its endpoints', async () => {
    const server = await FakeVllmServer.start({ engines: [{ waiting: 2, running: 0, kvUsage: 0.1 }] });
    const errors: Error[] = [];
    const ds = new Datastore({ refreshIntervalMs: 10, onScrapeWorkerError: (e) => errors.push(e) });
    try {
      const ep = endpoint(server.port);
      ds.upsertEndpoint(ep);
      await waitFor(() => ds.metrics(ep.key)?.waitingQueueSize === 2, 'first scrape');
      ds.crashScrapeWorker(0);
      await waitFor(() => errors.length === 1, 'the crash reported');
      expect(errors[0]?.message).toMatch(/scrape worker 0 \(1 endpoints\) died: scrape worker crash requested; restarting it/);
      await waitFor(() => ds.scrapeWorkerRestarts === 1, 'restart');
      server.page = { engines: [{ waiting: 9, running: 0, kvUsage: 0.1 }] };
      await waitFor(() => ds.metrics(ep.key)?.waitingQueueSize === 9, 'scraping resumed after the restart');
    } finally {
      await ds.stop();
      await server.close();
    }
  });

  it('reports timeouts, HTTP errors and pages without vLLM metrics per endpoint, the healthy one unaffected', async () => {
    const servers = await Promise.all([0, 1, 2, 3].map(() => FakeVllmServer.start({ engines: [{ waiting: 3, running: 0, kvUsage: 0.5 }] })));
    const [good, hang, error, html] = servers as [FakeVllmServer, FakeVllmServer, FakeVllmServer, FakeVllmServer];
    hang.mode = 'hang';
    error.mode = 'error';
    html.mode = 'not-metrics';
    const ds = new Datastore({ refreshIntervalMs: 20, scrapeTimeoutMs: 300 });
    try {
      for (const s of servers) ds.upsertEndpoint(endpoint(s.port));
      const key = (s: FakeVllmServer) => endpoint(s.port).key;
      await waitFor(() => (ds.metrics(key(hang))?.consecutiveFailures ?? 0) >= 2, 'timeouts counted');
      await waitFor(() => (ds.metrics(key(error))?.consecutiveFailures ?? 0) >= 2, 'HTTP errors counted');
      await waitFor(() => (ds.metrics(key(html))?.consecutiveFailures ?? 0) >= 2, 'unreadable pages counted');
      expect(ds.scrapeStatus(key(hang))?.lastError).toBe('timed out after 300 ms');
      // On a loaded 2-core CI machine a quick answer can still miss the 300 ms timeout now and then (seen once: the
      // 500 page reported as a timeout), so wait for each endpoint's own failure to be the latest one reported.
      const http500 = `HTTP 500 from http://${key(error)}/metrics`;
      await waitFor(() => ds.scrapeStatus(key(error))?.lastError === http500, 'the HTTP 500 reported');
      await waitFor(() => /^no readable model-server metrics \(1 malformed lines, first: line 1 /.test(ds.scrapeStatus(key(html))?.lastError ?? ''), 'the unreadable page reported');
      for (const s of [hang, error, html]) expect(ds.metrics(key(s))?.updateTime).toBe(0);
      await waitFor(() => ds.metrics(key(good))?.consecutiveFailures === 0 && ds.scrapeStatus(key(good))?.lastError === undefined, 'the healthy endpoint read');
      expect(ds.metrics(key(good))?.waitingQueueSize).toBe(3);
      expect(ds.scrapeCounts.failure).toBeGreaterThanOrEqual(6);
      expect(ds.scrapeCounts.success).toBeGreaterThanOrEqual(1);
    } finally {
      await ds.stop();
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('drops readings of a removed endpoint; a pod re-added at the key starts from nothing', async () => {
    const server = await FakeVllmServer.start({ engines: [{ waiting: 4, running: 0, kvUsage: 0.1 }] });
    const ds = new Datastore({ refreshIntervalMs: 10 });
    try {
      const ep = endpoint(server.port);
      ds.upsertEndpoint(ep);
      await waitFor(() => ds.metrics(ep.key)?.waitingQueueSize === 4, 'first scrape');
      ds.removeEndpoint(ep.key);
      expect(ds.metrics(ep.key)).toBeUndefined();
      ds.upsertEndpoint({ ...ep, name: 'another-pod' });
      expect(ds.metrics(ep.key)?.updateTime).toBe(0);
      await waitFor(() => (ds.metrics(ep.key)?.updateTime ?? 0) > 0, 'the new pod scraped');
    } finally {
      await ds.stop();
      await server.close();
    }
  });

  it('rejects bad options naming the allowed values', async () => {
    expect(() => new Datastore({ scrapeMode: 'threads' as ScrapeMode })).toThrow(/scrapeMode must be one of worker, adaptive, event-loop, got threads/);
    expect(() => new Datastore({ scrapeMode: 'adaptive', scrapeWorkers: 2 })).toThrow(/scrapeWorkers applies to scrapeMode worker only/);
    const pool = () => new ScrapeWorkerPool({ workers: 0, intervalMs: 10, timeoutMs: 10, insecureSkipVerify: true, onReading() {}, onError() {} });
    expect(pool).toThrow(/scrape workers must be an integer from 1 to 64, got 0/);
    const ok = new ScrapeWorkerPool({ intervalMs: 10, timeoutMs: 10, insecureSkipVerify: true, onReading() {}, onError() {} });
    try {
      expect(() => ok.add(1, 'ftp://127.0.0.1:1/metrics', EMPTY_METRICS)).toThrow(/unsupported metrics URL ftp:/);
    } finally {
      await ok.stop();
    }
  });
});

describe('https scraping in every mode', () => {
  const hasOpenssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  let dir: string;
  let server: https.Server;
  let port: number;

  beforeAll(async () => {
    if (!hasOpenssl) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-scrape-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt'),
    ], { stdio: 'ignore' });
    server = https.createServer(
      { key: fs.readFileSync(path.join(dir, 'tls.key')), cert: fs.readFileSync(path.join(dir, 'tls.crt')) },
      (_req, res) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(page(5)),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    if (!hasOpenssl) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ['worker', 'adaptive', 'event-loop'] as const) {
    (hasOpenssl ? it : it.skip)(`${mode}: scrapes a self-signed pod by default, refuses it when verification is on`, async () => {
      const lax = new Datastore({ scrapeMode: mode, refreshIntervalMs: 20, metricsScheme: 'https' });
      const strict = new Datastore({ scrapeMode: mode, refreshIntervalMs: 20, metricsScheme: 'https', metricsInsecureSkipVerify: false });
      try {
        const ep = endpoint(port);
        lax.upsertEndpoint(ep);
        strict.upsertEndpoint(ep);
        await waitFor(() => lax.metrics(ep.key)?.waitingQueueSize === 5, 'https scrape');
        await waitFor(() => (strict.metrics(ep.key)?.consecutiveFailures ?? 0) >= 1, 'verification failure');
        expect(strict.scrapeStatus(ep.key)?.lastError).toMatch(/self[- ]signed certificate/i);
        expect(strict.metrics(ep.key)?.updateTime).toBe(0);
      } finally {
        await Promise.all([lax.stop(), strict.stop()]);
      }
    });
  }
});

describe('the adaptive interval', () => {
  const opts = { baseMs: 50, maxMs: 400 };
  it('stays at the configured interval while parsing fits the budget', () => {
    // 8 pods at 0.1 ms a page: 0.8 ms of parsing per pass, far under 20% of 50 ms.
    expect(nextAdaptiveInterval(50, { endpoints: 8, scrapes: 160, scrapeCostMs: 16, utilization: 0.1 }, opts)).toBe(50);
  });

  it('lengthens with pool size so parsing takes the budgeted share of the loop', () => {
    // 256 pods at 0.1 ms: 25.6 ms of parsing per pass; at 20% of the loop that is one pass every 128 ms.
    expect(nextAdaptiveInterval(50, { endpoints: 256, scrapes: 1000, scrapeCostMs: 100, utilization: 0.5 }, opts)).toBe(128);
  });

  it('backs off by half again on a saturated loop, up to the ceiling', () => {
    expect(nextAdaptiveInterval(128, { endpoints: 256, scrapes: 1000, scrapeCostMs: 100, utilization: 0.99 }, opts)).toBe(192);
    expect(nextAdaptiveInterval(350, { endpoints: 256, scrapes: 1000, scrapeCostMs: 100, utilization: 0.99 }, opts)).toBe(400);
  });

  it('comes back gradually, never below the configured interval', () => {
    expect(nextAdaptiveInterval(400, { endpoints: 8, scrapes: 100, scrapeCostMs: 10, utilization: 0.1 }, opts)).toBe(300);
    expect(nextAdaptiveInterval(60, { endpoints: 8, scrapes: 100, scrapeCostMs: 10, utilization: 0.1 }, opts)).toBe(50);
    expect(nextAdaptiveInterval(50, { endpoints: 0, scrapes: 0, scrapeCostMs: 0, utilization: 0 }, opts)).toBe(50);
  });

  it('a datastore in adaptive mode scrapes and reports its interval', async () => {
    const server = await FakeVllmServer.start({ engines: [{ waiting: 6, running: 0, kvUsage: 0.1 }] });
    const ds = new Datastore({ scrapeMode: 'adaptive', refreshIntervalMs: 25 });
    try {
      const ep = endpoint(server.port);
      ds.upsertEndpoint(ep);
      await waitFor(() => ds.metrics(ep.key)?.waitingQueueSize === 6, 'scrape');
      expect(ds.scrapeMode).toBe('adaptive');
      expect(ds.effectiveRefreshIntervalMs).toBeGreaterThanOrEqual(25);
      expect(ds.scrapeStatus(ep.key)?.lastCostMs).toBeGreaterThan(0);
    } finally {
      await ds.stop();
      await server.close();
    }
  });
});

describe('the worker mode\'s scrape budget', () => {
  it('stretches every pod\'s period past budget × interval pods, up to the ceiling; 0 means none', () => {
    expect([1, 50, 64, 256, 400, 1000].map((n) => budgetedInterval(n, 50, 1000))).toEqual([50, 50, 64, 256, 400, 400]);
    expect(budgetedInterval(256, 50, 0)).toBe(50);
    expect(budgetedInterval(256, 500, 1000)).toBe(500); // never below the configured interval
    expect(() => budgetedInterval(1, 50, -1)).toThrow(/scrape budget must be a finite number >= 0, got -1/);
    expect(() => new Datastore({ scrapeMode: 'adaptive', scrapeBudgetPerSecond: 10 })).toThrow(/scrapeBudgetPerSecond applies to scrapeMode worker only/);
  });

  it('the worker threads scrape at the budgeted period: each pod once per period, not every interval', async () => {
    const servers = await Promise.all(Array.from({ length: 4 }, () => FakeVllmServer.start({ engines: [{ waiting: 1, running: 0, kvUsage: 0.1 }] })));
    // 4 pods at 1 scrape a second in all: every pod every 4 s (the ceiling raised so the budget holds).
    const budgeted = new Datastore({ scrapeMode: 'worker', refreshIntervalMs: 20, scrapeBudgetPerSecond: 1, adaptiveMaxIntervalMs: 60_000 });
    try {
      for (const server of servers) budgeted.upsertEndpoint(endpoint(server.port));
      expect(budgeted.effectiveRefreshIntervalMs).toBe(4000);
      await waitFor(() => servers.every((s) => s.requests >= 1), 'every pod\'s first scrape');
      const after = servers.map((s) => s.requests);
      await new Promise((r) => setTimeout(r, 1000));
      // At 20 ms each pod would have been scraped dozens of times in that second; at 4 s, at most once more (a slow
      // machine can only make it fewer).
      servers.forEach((s, i) => expect(s.requests - after[i]!).toBeLessThanOrEqual(1));
      budgeted.removeEndpoint(endpoint(servers[0]!.port).key);
      expect(budgeted.effectiveRefreshIntervalMs).toBe(3000);
    } finally {
      await budgeted.stop();
    }
    // The contrast, same pods: without a budget the period is the interval.
    const unbudgeted = new Datastore({ scrapeMode: 'worker', refreshIntervalMs: 20, scrapeBudgetPerSecond: 0 });
    try {
      const before = servers.map((s) => s.requests);
      for (const server of servers) unbudgeted.upsertEndpoint(endpoint(server.port));
      expect(unbudgeted.effectiveRefreshIntervalMs).toBe(20);
      await waitFor(() => servers.every((s, i) => s.requests - before[i]! >= 10), 'ten scrapes of every pod');
    } finally {
      await unbudgeted.stop();
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});

describe('staleness bound vs scrape period', () => {
  it('the default config fits every mode at the default period', () => {
    for (const mode of ['worker', 'adaptive', 'event-loop'] as const) expect(stalenessWarnings(defaultEndpointPickerConfig(), mode, 50)).toEqual([]);
  });

  it('warns when a pod could age out between two scrapes, naming the parameter and the fix', () => {
    const config = defaultEndpointPickerConfig();
    const tight = {
      ...config,
      plugins: config.plugins.map((p) => (p.type === 'saturation-filter' ? { ...p, parameters: { ...p.parameters, metricsStalenessThreshold: '200ms' } } : p)),
    };
    expect(stalenessWarnings(tight, 'worker', 50)).toEqual([]);
    expect(stalenessWarnings(tight, 'adaptive', 50)).toEqual([expect.stringMatching(/metricsStalenessThreshold 200ms is under twice the longest scrape period \(400 ms; adaptive mode .*\), so pods .*at least 800ms \(the parameters of plugin "saturation-filter"\)$/)]);
    // The worker mode's scrape budget stretches the period to the same ceiling: the warning names the pool size from
    // which the stretched period exceeds half the threshold (pods × 1000 / budget > 100 ms: 100 pods at 1,000 a second).
    expect(stalenessWarnings(tight, 'worker', 50, 1000)).toEqual([expect.stringMatching(/longest scrape period \(400 ms; the scrape budget of 1000 scrapes a second stretches every pod's 50 ms period past 100 ms once the pool passes 100 pods\)/)]);
    expect(stalenessWarnings(tight, 'worker', 50, 500)).toEqual([expect.stringMatching(/once the pool passes 50 pods/)]);
    // A threshold under twice the configured period is short from the start, stretched or not.
    const tighter = { ...tight, plugins: tight.plugins.map((p) => (p.type === 'saturation-filter' ? { ...p, parameters: { ...p.parameters, metricsStalenessThreshold: '80ms' } } : p)) };
    expect(stalenessWarnings(tighter, 'worker', 50, 1000)).toEqual([expect.stringMatching(/under twice the scrape period \(50 ms, up to 400 ms\), so/)]);
    // A period at or over the ceiling is never stretched: the warning names the period itself.
    expect(stalenessWarnings(config, 'worker', 600, 1000)).toEqual([expect.stringMatching(/metricsStalenessThreshold 1s is under twice the scrape period \(600 ms\).*at least 1200ms/)]);
  });

  it('says how to set the staleness of the utilization-detector GIE\'s loader adds to a config that names no detector', () => {
    // GIE's three-scorer config as its guides ship it: no saturationDetector section, no detector plugin.
    const gie = parseEndpointPickerConfig([
      'apiVersion: inference.networking.x-k8s.io/v1alpha1',
      'kind: EndpointPickerConfig',
      'plugins:',
      '- type: queue-scorer',
      '- type: kv-cache-utilization-scorer',
      '- type: prefix-cache-scorer',
    ].join('\n'));
    expect(stalenessWarnings(gie, 'worker', 50, 1000)).toEqual([
      expect.stringMatching(/^utilization-detector utilization-detector metricsStalenessThreshold 200ms \(its default\) is under twice .*; the config names no saturation detector, so GIE's default one was added: declare `- type: utilization-detector` with `parameters: \{metricsStalenessThreshold: 800ms\}` to set it$/),
    ]);
    // Declared as the warning says, it is quiet.
    const declared = parseEndpointPickerConfig([
      'apiVersion: inference.networking.x-k8s.io/v1alpha1',
      'kind: EndpointPickerConfig',
      'plugins:',
      '- type: queue-scorer',
      '- type: utilization-detector',
      '  parameters: {metricsStalenessThreshold: 800ms}',
    ].join('\n'));
    expect(stalenessWarnings(declared, 'worker', 50, 1000)).toEqual([]);
  });
});
