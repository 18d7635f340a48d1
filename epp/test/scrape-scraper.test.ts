import { waitFor } from '@kvroute/testkit';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MetricsScraper, metricsUrl } from '../src/datastore/scraper';
import { FakeVllmServer } from '@kvroute/testkit';
import type { EndpointMetrics } from '../src/datastore/types';
import { monotonicMs } from '../src/clock';

/** Polls waitFor `cond` holds; the generous limit only bounds a broken test, it asserts nothing about speed. */
// The waits below are conditions with generous limits, not speed assertions; give them room on a shared machine.
jest.setTimeout(60_000);

describe('MetricsScraper against a real vLLM-format server', () => {
  let server: FakeVllmServer;
  const scrapers: MetricsScraper[] = [];
  const make = (opts: ConstructorParameters<typeof MetricsScraper>[1] = {}): MetricsScraper => {
    const s = new MetricsScraper(metricsUrl(server.address, server.port), opts);
    scrapers.push(s);
    return s;
  };

  beforeEach(async () => {
    server = await FakeVllmServer.start({
      engines: [
        { waiting: 2, running: 3, kvUsage: 0.5, numGpuBlocks: 100 },
        { waiting: 1, running: 1, kvUsage: 0.1, numGpuBlocks: 300 },
      ],
      blockSize: 32,
    });
  });

  afterEach(async () => {
    await Promise.all(scrapers.splice(0).map((s) => s.stop()));
    await server.close();
  });

  it('a single scrape fills every field', async () => {
    const s = make();
    const before = monotonicMs();
    expect(await s.scrapeOnce()).toBe(true);
    expect(s.metrics).toMatchObject({
      waitingQueueSize: 3,
      runningQueueSize: 4,
      blockSize: 32,
      numGpuBlocks: 400,
      consecutiveFailures: 0,
    });
    // The engines' mean: vLLM's page gives each engine's series the pod's total blocks, not the engine's own.
    expect(s.metrics.kvCacheUsagePercent).toBeCloseTo(0.3, 10);
    expect(s.metrics.updateTime).toBeGreaterThanOrEqual(before);
    expect(s.status).toMatchObject({ scrapes: 1, failures: 0, lastError: undefined });
  });

  it('follows the server while running, and reports each update', async () => {
    const seen: EndpointMetrics[] = [];
    const s = make({ intervalMs: 10, onUpdate: (m) => seen.push(m) });
    s.start();
    await waitFor(() => s.metrics.waitingQueueSize === 3, 'first scrape');
    server.page = { engines: [{ waiting: 11, running: 0, kvUsage: 0.9 }] };
    await waitFor(() => s.metrics.waitingQueueSize === 11, 'new value');
    expect(s.metrics.kvCacheUsagePercent).toBe(0.9);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(server.requests).toBeGreaterThanOrEqual(2);
  });

  it('failures keep the last values and count up; the first good scrape resets', async () => {
    const s = make({ intervalMs: 10 });
    s.start();
    await waitFor(() => s.metrics.updateTime > 0, 'first scrape');

    server.mode = 'error';
    // A scrape already in flight may still succeed; the streak starts at the first failure.
    await waitFor(() => s.metrics.consecutiveFailures >= 1, 'first failure');
    const good = s.metrics;
    await waitFor(() => s.metrics.consecutiveFailures >= 3, 'three failures');
    expect(s.metrics.waitingQueueSize).toBe(good.waitingQueueSize);
    expect(s.metrics.kvCacheUsagePercent).toBe(good.kvCacheUsagePercent);
    expect(s.metrics.updateTime).toBe(good.updateTime);
    expect(s.status.lastError).toMatch(/HTTP 500/);

    server.mode = 'ok';
    server.page = { engines: [{ waiting: 0, running: 0, kvUsage: 0 }] };
    await waitFor(() => s.metrics.consecutiveFailures === 0, 'recovery');
    expect(s.metrics.waitingQueueSize).toBe(0);
    expect(s.metrics.updateTime).toBeGreaterThan(good.updateTime);
    expect(s.status.lastError).toBeUndefined();
  });

  it('a page without model-server metrics counts as a failure', async () => {
    server.mode = 'not-metrics';
    const s = make();
    expect(await s.scrapeOnce()).toBe(false);
    expect(s.metrics.consecutiveFailures).toBe(1);
    expect(s.metrics.updateTime).toBe(0);
    expect(s.status.lastError).toMatch(/model-server metrics/);
  });

  it('a reset connection counts as a failure', async () => {
    server.mode = 'reset';
    const s = make();
    expect(await s.scrapeOnce()).toBe(false);
    expect(s.metrics.consecutiveFailures).toBe(1);
  });

  it('a hung server times out, and ticks meanwhile are skipped rather than stacked', async () => {
    server.mode = 'hang';
    const s = make({ intervalMs: 5, timeoutMs: 300 });
    s.start();
    await waitFor(() => s.metrics.consecutiveFailures >= 1, 'timeout');
    expect(s.status.lastError).toMatch(/timed out after 300 ms/);
    expect(s.status.skippedTicks).toBeGreaterThan(0);
    // One request per scrape, none overlapping: far fewer requests than ticks.
    expect(server.requests).toBeLessThanOrEqual(s.status.scrapes + 1);
  });

  // GIE v1.5.0 pkg/epp/backend/metrics/pod_metrics.go refreshMetrics stores nothing for a failed scrape, whatever the
  // failure; kvroute tells a timeout (late) from a fast failure (gone): saturation-filter.ts scrapesLost.
  it('counts the failures that timed out apart (timedOutFailures): a hung page is one, a reset connection, an HTTP error or a page that is not metrics is not; a good scrape clears it', async () => {
    const s = make({ timeoutMs: 200 });
    server.mode = 'hang';
    expect(await s.scrapeOnce()).toBe(false);
    expect(s.metrics).toMatchObject({ consecutiveFailures: 1, timedOutFailures: 1 });
    for (const mode of ['reset', 'error', 'not-metrics'] as const) {
      server.mode = mode;
      expect(await s.scrapeOnce()).toBe(false);
    }
    expect(s.metrics).toMatchObject({ consecutiveFailures: 4, timedOutFailures: 1 });
    server.mode = 'ok';
    expect(await s.scrapeOnce()).toBe(true);
    expect(s.metrics.consecutiveFailures).toBe(0);
    expect(s.metrics.timedOutFailures ?? 0).toBe(0);
  });

  // llm-d-router v0.10.0 (GIE v1.6.0's EPP): source/metrics/datasource.go parseMetrics returns expfmt's
  // TextToMetricFamilies error, source/http/client.go Get passes it on, and source/http/datasource.go Poll/Dispatch
  // then runs no extractor, so the page updates nothing; prometheus/common v0.67.5 expfmt/text_parse.go errors on the
  // unterminated label set.
  it('a page with a malformed line of a family it reads fails the scrape and updates nothing, as upstream refuses the page', async () => {
    const s = make();
    expect(await s.scrapeOnce()).toBe(true);
    const good = s.metrics;
    server.body = [
      '# TYPE vllm:num_requests_waiting gauge',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 8.0',
      '# TYPE vllm:num_requests_running gauge',
      'vllm:num_requests_running{engine="0",model_name="m" 9.0',
      '',
    ].join('\n');
    expect(await s.scrapeOnce()).toBe(false);
    expect(s.metrics).toMatchObject({ waitingQueueSize: good.waitingQueueSize, runningQueueSize: good.runningQueueSize, updateTime: good.updateTime, consecutiveFailures: 1 });
    expect(s.status.lastError).toMatch(/malformed metrics page \(1 malformed lines, first: line 4 /);
    expect(s.status.lastIssues).toBe(1);
    // The same lines well formed are read.
    server.body = server.body.replace('"m" 9.0', '"m"} 9.0');
    expect(await s.scrapeOnce()).toBe(true);
    expect(s.metrics).toMatchObject({ waitingQueueSize: 8, runningQueueSize: 9, consecutiveFailures: 0 });
  });

  it('partial pages update only what they carry', async () => {
    const s = make();
    expect(await s.scrapeOnce()).toBe(true);
    server.body = '# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine="0",model_name="m"} 8.0\n';
    expect(await s.scrapeOnce()).toBe(true);
    expect(s.metrics.waitingQueueSize).toBe(8);
    expect(s.metrics.runningQueueSize).toBe(4);
    expect(s.metrics.numGpuBlocks).toBe(400);
  });

  it('stop() aborts a scrape in flight and nothing is reported afterwards', async () => {
    server.mode = 'hang';
    const updates: EndpointMetrics[] = [];
    const s = make({ intervalMs: 5, timeoutMs: 60_000, onUpdate: (m) => updates.push(m) });
    s.start();
    await waitFor(() => server.requests === 1, 'request reached the server');
    await s.stop();
    expect(s.running).toBe(false);
    expect(updates).toEqual([]);
    expect(s.metrics.consecutiveFailures).toBe(0);
  });

  it('notes when the page\'s request went out: before the server read it, as updateTime is after the page arrived', async () => {
    let receivedAt = 0;
    let answeredAt = 0;
    const slow = http.createServer((_req, res) => {
      receivedAt = monotonicMs();
      setTimeout(() => {
        answeredAt = monotonicMs();
        res.end('vllm:num_requests_waiting 1\n');
      }, 30);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
    try {
      const s = new MetricsScraper(metricsUrl('127.0.0.1', (slow.address() as AddressInfo).port));
      scrapers.push(s);
      expect(await s.scrapeOnce()).toBe(true);
      expect(s.metrics.requestTime).toBeLessThanOrEqual(receivedAt);
      expect(s.metrics.updateTime).toBeGreaterThanOrEqual(answeredAt);
      expect(answeredAt).toBeGreaterThan(receivedAt); // the interval the page may show is not empty
    } finally {
      slow.closeAllConnections();
      await new Promise<void>((r) => slow.close(() => r()));
    }
  });

  it('uses one kept-alive connection for successive scrapes', async () => {
    const sockets = new Set<unknown>();
    const counting = http.createServer((req, res) => {
      sockets.add(req.socket);
      res.end('vllm:num_requests_waiting 1\n');
    });
    await new Promise<void>((r) => counting.listen(0, '127.0.0.1', () => r()));
    try {
      const s = new MetricsScraper(metricsUrl('127.0.0.1', (counting.address() as AddressInfo).port));
      scrapers.push(s);
      for (let i = 0; i < 5; i++) expect(await s.scrapeOnce()).toBe(true);
      expect(sockets.size).toBe(1);
    } finally {
      counting.closeAllConnections();
      await new Promise<void>((r) => counting.close(() => r()));
    }
  });

  it('retries once on a fresh connection when a kept-alive one was closed under it', async () => {
    // The second request on any connection is dropped unanswered, as by a pod that closed its idle keep-alive socket
    // just as the scrape was written; a new connection is answered. Without the retry every second scrape fails.
    const perSocket = new Map<unknown, number>();
    let droppedAt = 0;
    let answeredAt = 0;
    const closing = http.createServer((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (n >= 2) {
        droppedAt = monotonicMs();
        req.socket.destroy();
        return;
      }
      answeredAt = monotonicMs();
      res.end('vllm:num_requests_waiting 2\n');
    });
    await new Promise<void>((r) => closing.listen(0, '127.0.0.1', () => r()));
    try {
      const s = new MetricsScraper(metricsUrl('127.0.0.1', (closing.address() as AddressInfo).port));
      scrapers.push(s);
      for (let i = 0; i < 3; i++) expect(await s.scrapeOnce()).toBe(true);
      expect(s.status.failures).toBe(0);
      expect(perSocket.size).toBe(3); // each scrape after the first met a dropped connection and reconnected
      // The page is the retry's: its request went out after the dropped one was read.
      expect(s.metrics.requestTime).toBeGreaterThanOrEqual(droppedAt);
      expect(s.metrics.requestTime).toBeLessThanOrEqual(answeredAt);
    } finally {
      closing.closeAllConnections();
      await new Promise<void>((r) => closing.close(() => r()));
    }
  });

  it('a page over maxBodyBytes fails the scrape, and the next scrape connects afresh', async () => {
    const s = make({ maxBodyBytes: 100 });
    expect(await s.scrapeOnce()).toBe(false);
    expect(s.status.lastError).toMatch(/page larger than 100 bytes/);
    server.body = 'vllm:num_requests_waiting 4\n';
    expect(await s.scrapeOnce()).toBe(true);
    expect(s.metrics.waitingQueueSize).toBe(4);
  });

  it('rejects bad options', () => {
    expect(() => new MetricsScraper('ftp://x/metrics')).toThrow(/unsupported/);
    expect(() => new MetricsScraper('http://127.0.0.1:1/metrics', { intervalMs: 0 })).toThrow(/intervalMs/);
  });
});

describe('metricsUrl', () => {
  it('brackets IPv6 hosts and normalises the path', () => {
    expect(metricsUrl('10.0.0.5', 8000)).toBe('http://10.0.0.5:8000/metrics');
    expect(metricsUrl('fd00::5', 8000, { path: 'stats', scheme: 'https' })).toBe('https://[fd00::5]:8000/stats');
  });
});

describe('MetricsScraper over IPv6 loopback', () => {
  it('scrapes [::1]', async () => {
    let server: FakeVllmServer;
    try {
      server = await FakeVllmServer.start({ engines: [{ waiting: 5, running: 0, kvUsage: 0 }] }, '::1');
    } catch {
      // No IPv6 loopback in this sandbox; nothing to test.
      return;
    }
    const s = new MetricsScraper(metricsUrl('::1', server.port));
    try {
      expect(await s.scrapeOnce()).toBe(true);
      expect(s.metrics.waitingQueueSize).toBe(5);
    } finally {
      await s.stop();
      await server.close();
    }
  });
});
