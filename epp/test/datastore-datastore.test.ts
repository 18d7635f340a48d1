import { waitFor } from '@kvroute/testkit';
import { Datastore, metricsAgeMs, metricsFresh, STUCK_GAUGES_MS, withoutStuckGauges } from '../src/datastore/datastore';
import { endpointKey } from '../src/datastore/endpoint-key';
import { monotonicMs } from '../src/clock';
import { FakeVllmServer } from '@kvroute/testkit';
import { modelServerRestarted, EMPTY_METRICS, endpointMetrics, type Endpoint, type EndpointMetrics } from '../src/datastore/types';

// The waits below are conditions with generous limits, not speed assertions; give them room on a shared machine.
jest.setTimeout(60_000);

function ep(address: string, port: number, name?: string, labels: Record<string, string> = {}): Endpoint {
  const key = endpointKey(address, port);
  return { key, name: name ?? key, namespace: name ? 'default' : '', address, port, labels };
}

describe('Datastore without scraping', () => {
  let ds: Datastore;
  beforeEach(() => {
    ds = new Datastore({ scrape: false });
  });
  afterEach(() => ds.stop());

  it('adds, replaces and removes endpoints with events', () => {
    const added: string[] = [];
    const removed: string[] = [];
    ds.on('endpointAdded', (e) => added.push(e.key)).on('endpointRemoved', (e) => removed.push(e.key));

    expect(ds.upsertEndpoint(ep('10.0.0.1', 8000, 'pod-a'))).toBe(true);
    expect(ds.upsertEndpoint(ep('10.0.0.2', 8000, 'pod-b'))).toBe(true);
    // Same pod, new labels: no event, the record is refreshed.
    expect(ds.upsertEndpoint(ep('10.0.0.1', 8000, 'pod-a', { role: 'decode' }))).toBe(false);
    expect(ds.get('10.0.0.1:8000')?.labels).toEqual({ role: 'decode' });
    expect(ds.readyCount).toBe(2);

    expect(ds.removeEndpoint('10.0.0.2:8000')).toBe(true);
    expect(ds.removeEndpoint('10.0.0.2:8000')).toBe(false);
    expect(added).toEqual(['10.0.0.1:8000', '10.0.0.2:8000']);
    expect(removed).toEqual(['10.0.0.2:8000']);
    expect(ds.readyCount).toBe(1);
  });

  it('treats a different pod at a known address as removal plus addition', () => {
    const events: string[] = [];
    ds.on('endpointAdded', (e) => events.push(`+${e.name}`)).on('endpointRemoved', (e) => events.push(`-${e.name}`));
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'old-pod'));
    ds.setMetrics('10.0.0.1:8000', { waitingQueueSize: 7, updateTime: 5 });
    expect(ds.upsertEndpoint(ep('10.0.0.1', 8000, 'new-pod'))).toBe(true);
    expect(events).toEqual(['+old-pod', '-old-pod', '+new-pod']);
    // The new pod's metrics start empty: the old pod's readings say nothing about it.
    expect(ds.metrics('10.0.0.1:8000')).toEqual(EMPTY_METRICS);
  });

  it('replaceEndpoints applies the difference', () => {
    ds.replaceEndpoints([ep('10.0.0.1', 8000, 'a'), ep('10.0.0.2', 8000, 'b')]);
    const result = ds.replaceEndpoints([ep('10.0.0.2', 8000, 'b'), ep('10.0.0.3', 8000, 'c')]);
    expect(result).toEqual({ added: ['10.0.0.3:8000'], removed: ['10.0.0.1:8000'] });
    expect(ds.endpoints().map((e) => e.key)).toEqual(['10.0.0.2:8000', '10.0.0.3:8000']);
    ds.clear();
    expect(ds.readyCount).toBe(0);
  });

  it('rejects endpoints whose key does not match the address', () => {
    expect(() => ds.upsertEndpoint({ ...ep('10.0.0.1', 8000), key: '10.0.0.1:9000' })).toThrow(/does not match/);
    expect(() => ds.upsertEndpoint({ ...ep('10.0.0.1', 8000), port: 0, key: '10.0.0.1:0' })).toThrow(/invalid port/);
    expect(ds.upsertEndpoint(ep('fd00::1', 8000))).toBe(true);
    expect(ds.has('[fd00::1]:8000')).toBe(true);
  });

  it('snapshots are frozen and do not change when the store does', () => {
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a', { role: 'decode' }));
    ds.setMetrics('10.0.0.1:8000', { waitingQueueSize: 1, kvCacheUsagePercent: 0.3, updateTime: 10 });
    ds.acquire('10.0.0.1:8000');
    const snap = ds.snapshot();

    ds.setMetrics('10.0.0.1:8000', { waitingQueueSize: 50 });
    ds.acquire('10.0.0.1:8000');
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a', { role: 'prefill' }));
    ds.upsertEndpoint(ep('10.0.0.2', 8000, 'b'));

    expect(snap).toHaveLength(1);
    const s = snap[0];
    expect(s?.metrics.waitingQueueSize).toBe(1);
    expect(s?.activeRequests).toBe(1);
    expect(s?.endpoint.labels.role).toBe('decode');
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s?.endpoint)).toBe(true);
    expect(Object.isFrozen(s?.endpoint.labels)).toBe(true);
    expect(Object.isFrozen(s?.metrics)).toBe(true);
    expect(() => {
      (s?.metrics as { waitingQueueSize: number }).waitingQueueSize = 3;
    }).toThrow(TypeError);

    const later = ds.snapshot();
    expect(later.map((x) => [x.endpoint.key, x.metrics.waitingQueueSize, x.activeRequests])).toEqual([
      ['10.0.0.1:8000', 50, 2],
      ['10.0.0.2:8000', 0, 0],
    ]);
  });

  it('counts in-flight requests and never goes negative', () => {
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a'));
    ds.acquire('10.0.0.1:8000');
    ds.acquire('10.0.0.1:8000');
    ds.release('10.0.0.1:8000');
    expect(ds.activeRequests('10.0.0.1:8000')).toBe(1);
    ds.release('10.0.0.1:8000');
    ds.release('10.0.0.1:8000');
    expect(ds.activeRequests('10.0.0.1:8000')).toBe(0);
  });

  it('counts the requests routed to a pod and ended on it since its last reading; a reading set by hand starts over, a failed scrape (same time) does not', () => {
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a'));
    ds.upsertEndpoint(ep('10.0.0.2', 8000, 'b'));
    ds.setMetrics('10.0.0.1:8000', { updateTime: 10 });
    ds.acquire('10.0.0.1:8000');
    ds.acquire('10.0.0.1:8000');
    ds.acquire('10.0.0.1:8000');
    ds.release('10.0.0.1:8000');
    // Routed 3, ended 1: the page's queue has moved by 2 of this EPP's requests.
    expect(ds.snapshot().map((s) => s.netPicksSinceScrape)).toEqual([2, 0]);
    ds.setMetrics('10.0.0.1:8000', { consecutiveFailures: 1 });
    expect(ds.snapshot()[0]?.netPicksSinceScrape).toBe(2);
    ds.setMetrics('10.0.0.1:8000', { updateTime: 60, consecutiveFailures: 0 });
    expect(ds.snapshot()[0]?.netPicksSinceScrape).toBe(0);
    // An end after the page (a request it counted as running) frees a slot: negative until a route takes it.
    ds.release('10.0.0.1:8000');
    expect(ds.snapshot().map((s) => [s.netPicksSinceScrape, s.activeRequests])).toEqual([[-1, 1], [0, 0]]);
    // A release with nothing in flight is ignored, as for the in-flight count.
    ds.release('10.0.0.2:8000');
    expect(ds.netPicksSinceScrape('10.0.0.2:8000')).toBe(0);
  });

  // Review 50 (M1): a page shows the server after its request went out, not as of its arrival; a worker's reading can
  // reach the routing thread after requests it cannot contain were routed.
  it('a page keeps what was routed after its request went out, and drops what was routed before', () => {
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a'));
    const key = '10.0.0.1:8000';
    // Page times on the store's own clock (monotonicMs, src/clock.ts), as its scrapers stamp them and as it stamps the
    // routes: Date.now() drifts from it by some milliseconds (NTP slew since the anchor), which the 5 ms below are not.
    const t = monotonicMs();
    ds.setMetrics(key, { updateTime: t - 50, requestTime: t - 55 });
    ds.acquire(key);
    ds.acquire(key);
    ds.acquire(key);
    // Requested before the three routes, applied after them: none of them is in it.
    ds.setMetrics(key, { updateTime: t - 10, requestTime: t - 15 });
    expect(ds.netPicksSinceScrape(key)).toBe(3);
    // Requested before them, stamped after them (the three were routed during its round trip): none of them is in it
    // either. The request's time decides, not the reading's.
    ds.setMetrics(key, { updateTime: monotonicMs() + 10, requestTime: t - 5 });
    expect(ds.netPicksSinceScrape(key)).toBe(3);
    // Requested after them: all of them are.
    ds.setMetrics(key, { updateTime: monotonicMs() + 10, requestTime: monotonicMs() + 5 });
    expect(ds.netPicksSinceScrape(key)).toBe(0);
  });

  it('keeps in-flight counts across a pod leaving and returning, since those requests are still running', () => {
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a'));
    ds.acquire('10.0.0.1:8000');
    ds.removeEndpoint('10.0.0.1:8000');
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a'));
    expect(ds.snapshot()[0]?.activeRequests).toBe(1);
    ds.release('10.0.0.1:8000');
    expect(ds.snapshot()[0]?.activeRequests).toBe(0);
  });

  // GIE v1.5.0 pkg/epp/datalayer/logger/logger.go L104-122: ready pods and the averages count fresh metrics only.
  it('counts as ready, and averages over, the endpoints whose metrics are at most the staleness threshold old', () => {
    expect(ds.poolStats(10_000, 2000)).toEqual({
      discoveredEndpoints: 0,
      readyEndpoints: 0,
      averageKvCacheUsage: undefined,
      averageWaitingQueue: undefined,
      averageRunningQueue: undefined,
    });
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a'));
    ds.upsertEndpoint(ep('10.0.0.2', 8000, 'b'));
    ds.upsertEndpoint(ep('10.0.0.3', 8000, 'c'));
    ds.upsertEndpoint(ep('10.0.0.4', 8000, 'd'));
    ds.setMetrics('10.0.0.1:8000', { waitingQueueSize: 4, runningQueueSize: 2, kvCacheUsagePercent: 0.2, updateTime: 9000 });
    ds.setMetrics('10.0.0.2:8000', { waitingQueueSize: 2, runningQueueSize: 6, kvCacheUsagePercent: 0.6, updateTime: 8000 });
    // Last scraped 2.5 s ago: hung or unreachable since; 'd' never answered.
    ds.setMetrics('10.0.0.3:8000', { waitingQueueSize: 30, runningQueueSize: 30, kvCacheUsagePercent: 1, updateTime: 7500 });
    const stats = ds.poolStats(10_000, 2000);
    expect(stats.discoveredEndpoints).toBe(4);
    expect(stats.readyEndpoints).toBe(2);
    expect(stats.averageWaitingQueue).toBe(3);
    expect(stats.averageRunningQueue).toBe(4);
    expect(stats.averageKvCacheUsage).toBeCloseTo(0.4, 10);
    expect(ds.poolStats(10_000, 3000).readyEndpoints).toBe(3);
    expect(ds.poolStats(20_000, 2000)).toMatchObject({ readyEndpoints: 0, averageWaitingQueue: undefined });
  });

  it('announces pool sync changes once per change', () => {
    const seen: boolean[] = [];
    ds.on('poolSyncChanged', (s) => seen.push(s));
    ds.setPoolSynced(true);
    ds.setPoolSynced(true);
    ds.setPoolSynced(false);
    expect(seen).toEqual([true, false]);
    expect(ds.poolSynced).toBe(false);
  });

  it('a throwing listener neither breaks the store nor other listeners', () => {
    const errors: unknown[] = [];
    const store = new Datastore({ scrape: false, onListenerError: (e) => errors.push(e) });
    const seen: string[] = [];
    store.on('endpointAdded', () => {
      throw new Error('boom');
    });
    store.on('endpointAdded', (e) => seen.push(e.key));
    expect(store.upsertEndpoint(ep('10.0.0.9', 8000))).toBe(true);
    expect(seen).toEqual(['10.0.0.9:8000']);
    expect(errors).toHaveLength(1);
    void store.stop();
  });

  it('off() detaches a listener', () => {
    const seen: string[] = [];
    const l = (e: Endpoint): void => {
      seen.push(e.key);
    };
    ds.on('endpointAdded', l);
    ds.off('endpointAdded', l);
    ds.upsertEndpoint(ep('10.0.0.1', 8000));
    expect(seen).toEqual([]);
  });
});

describe('metrics freshness', () => {
  it('never-scraped metrics are infinitely old; fresh ones are within the threshold', () => {
    expect(metricsAgeMs(EMPTY_METRICS, 1000)).toBe(Infinity);
    expect(metricsFresh(EMPTY_METRICS, 200, 1000)).toBe(false);
    const m = { ...EMPTY_METRICS, updateTime: 900 };
    expect(metricsAgeMs(m, 1000)).toBe(100);
    expect(metricsFresh(m, 200, 1000)).toBe(true);
    expect(metricsFresh(m, 200, 1101)).toBe(false);
  });
});

// vLLM 0.10.0 returns the scheduler's stats only from a step that samples a token (vllm/v1/core/sched/scheduler.py @
// 6eca337ce lines 909-912): after aborts empty an engine its gauges stick until #22995 (0.10.2).
describe('stuck gauges (vLLM 0.10.0 after aborts)', () => {
  const stuckAt = (changedTime: number, updateTime: number) => ({ ...EMPTY_METRICS, waitingQueueSize: 6, runningQueueSize: 2, kvCacheUsagePercent: 0.7, changedTime, updateTime });

  it('work seen unchanged by successful scrapes for STUCK_GAUGES_MS reads as idle; anything else is kept as it is', () => {
    const now = 100_000;
    expect(withoutStuckGauges(stuckAt(now - STUCK_GAUGES_MS, now))).toMatchObject({ waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0 });
    const withLora = { ...stuckAt(now - STUCK_GAUGES_MS, now), lora: { running: ['sql-lora'], waiting: ['chat-lora'], maxLora: 2 } };
    expect(withoutStuckGauges(withLora).lora).toEqual({ running: [], waiting: [], maxLora: 2 });
    const recent = stuckAt(now - STUCK_GAUGES_MS + 1, now);
    expect(withoutStuckGauges(recent)).toBe(recent);
    // Not scraped successfully since it last moved (unreachable, or the scraper stalled): not stuck, old.
    const notScraped = stuckAt(now - 20_000, now - 20_000);
    expect(withoutStuckGauges(notScraped)).toBe(notScraped);
    const failing = { ...stuckAt(now - 20_000, now), consecutiveFailures: 2 };
    expect(withoutStuckGauges(failing)).toBe(failing);
    // An idle pod's constant usage (1/N in 0.10.0) is no stuck reading.
    const idle = { ...EMPTY_METRICS, kvCacheUsagePercent: 1 / 8192, changedTime: 0, updateTime: now };
    expect(withoutStuckGauges(idle)).toBe(idle);
  });

  it('the snapshot reads a stuck pod as idle only while this EPP has nothing in flight there', () => {
    const ds = new Datastore({ scrape: false });
    try {
      ds.upsertEndpoint(ep('10.0.0.1', 8000, 'pod-a'));
      const now = Date.now();
      ds.setMetrics('10.0.0.1:8000', stuckAt(now - 60_000, now));
      expect(ds.snapshot()[0]!.metrics).toMatchObject({ waitingQueueSize: 0, runningQueueSize: 0 });
      ds.acquire('10.0.0.1:8000');
      expect(ds.snapshot()[0]!.metrics).toMatchObject({ waitingQueueSize: 6, runningQueueSize: 2 });
      ds.release('10.0.0.1:8000');
      expect(ds.snapshot()[0]!.metrics.waitingQueueSize).toBe(0);
    } finally {
      ds.stop();
    }
  });
});

describe('model server restarts (counters that went back)', () => {
  const reading = (updateTime: number, counters: Partial<EndpointMetrics> = {}): EndpointMetrics =>
    endpointMetrics({ ...EMPTY_METRICS, updateTime, ...counters });
  const counters = { firstTokenCount: 40, inferenceCount: 38, promptTokensCount: 38, prefixCacheQueryTokens: 52_000 };

  it('reads any count lower than at the reading before as a restart (Prometheus\'s counter-reset rule), equal or higher counts as none', () => {
    const before = reading(1_000, counters);
    expect(modelServerRestarted(before, reading(1_050, counters))).toBe(false);
    expect(modelServerRestarted(before, reading(1_050, { ...counters, firstTokenCount: 41, prefixCacheQueryTokens: 60_000 }))).toBe(false);
    for (const field of ['firstTokenCount', 'inferenceCount', 'promptTokensCount', 'prefixCacheQueryTokens'] as const) {
      expect([field, modelServerRestarted(before, reading(1_050, { ...counters, [field]: counters[field] - 1 }))]).toEqual([field, true]);
    }
    // A new process's first page: every count 0.
    expect(modelServerRestarted(before, reading(1_050, { firstTokenCount: 0, inferenceCount: 0, promptTokensCount: 0, prefixCacheQueryTokens: 0 }))).toBe(true);
  });

  it('with the process start time on both pages (prometheus_client\'s process collector), a restart is a new start time and nothing else: a counter reset in a running server (vLLM\'s elastic-EP scale-up, AsyncLLM.scale_elastic_ep, vllm/v1/engine/async_llm.py) is none', () => {
    const started = { ...counters, processStartTime: 1_753_299_990.5 };
    const before = reading(1_000, started);
    expect(modelServerRestarted(before, reading(1_050, started))).toBe(false);
    // Elastic-EP scale-up zeroes the counters; the process is the same.
    expect(modelServerRestarted(before, reading(1_050, { firstTokenCount: 0, inferenceCount: 0, promptTokensCount: 0, prefixCacheQueryTokens: 0, processStartTime: 1_753_299_990.5 }))).toBe(false);
    // A new process whose counters already passed the old ones between two scrapes: still a restart.
    expect(modelServerRestarted(before, reading(1_050, { ...counters, firstTokenCount: 90, processStartTime: 1_753_300_100.25 }))).toBe(true);
    // One page without it (a server moved to several API servers): the counters decide.
    expect(modelServerRestarted(before, reading(1_050, { ...counters, firstTokenCount: 0 }))).toBe(true);
    expect(modelServerRestarted(reading(1_000, counters), reading(1_050, { ...started, firstTokenCount: 41 }))).toBe(false);
  });

  it('compares only counts both readings carry, and only a new successful reading with the one before', () => {
    // A family missing from either page (--disable-log-stats, an older vLLM) says nothing.
    expect(modelServerRestarted(reading(1_000, counters), reading(1_050, { inferenceCount: 38 }))).toBe(false);
    expect(modelServerRestarted(reading(1_000, { inferenceCount: 38 }), reading(1_050, counters))).toBe(false);
    // The same reading again (a failed scrape keeps the last success's time) and the never-scraped EMPTY_METRICS.
    expect(modelServerRestarted(reading(1_000, counters), reading(1_000, { firstTokenCount: 0 }))).toBe(false);
    expect(modelServerRestarted(EMPTY_METRICS, reading(1_050, { firstTokenCount: 0 }))).toBe(false);
    // Sums (seconds) are not compared: only counts.
    expect(modelServerRestarted(reading(1_000, { firstTokenSecondsSum: 5 }), reading(1_050, { firstTokenSecondsSum: 4.99 }))).toBe(false);
  });

  it('emits endpointRestarted with the reading before\'s time, once per restart, and not for other endpoints', () => {
    const ds = new Datastore({ scrape: false });
    const restarts: [string, number][] = [];
    ds.on('endpointRestarted', (e, since) => restarts.push([e.key, since]));
    ds.upsertEndpoint(ep('10.0.0.1', 8000, 'a'));
    ds.upsertEndpoint(ep('10.0.0.2', 8000, 'b'));
    ds.setMetrics('10.0.0.1:8000', { updateTime: 1_000, ...counters });
    ds.setMetrics('10.0.0.2:8000', { updateTime: 1_000, ...counters });
    ds.setMetrics('10.0.0.1:8000', { updateTime: 1_050, firstTokenCount: 41 });
    expect(restarts).toEqual([]);
    ds.setMetrics('10.0.0.1:8000', { updateTime: 1_100, firstTokenCount: 0, inferenceCount: 0, promptTokensCount: 0, prefixCacheQueryTokens: 0 });
    ds.setMetrics('10.0.0.1:8000', { updateTime: 1_150, firstTokenCount: 1 });
    expect(restarts).toEqual([['10.0.0.1:8000', 1_050]]);
    // The new reading is stored before listeners hear of it.
    expect(ds.metrics('10.0.0.1:8000')?.firstTokenCount).toBe(1);
    void ds.stop();
  });
});

describe('Datastore with real scrapers', () => {
  const servers: FakeVllmServer[] = [];
  let ds: Datastore;

  beforeEach(() => {
    // No endpoint here hangs, so a generous timeout keeps a slow CI machine from reporting a quick answer as a failure.
    ds = new Datastore({ refreshIntervalMs: 10, scrapeTimeoutMs: 5_000 });
  });
  afterEach(async () => {
    await ds.stop();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  async function vllm(waiting: number, kv: number): Promise<Endpoint> {
    const s = await FakeVllmServer.start({ engines: [{ waiting, running: 1, kvUsage: kv }] });
    servers.push(s);
    return ep(s.address, s.port, `pod-${s.port}`);
  }

  it('scrapes each endpoint it holds', async () => {
    const a = await vllm(3, 0.25);
    const b = await vllm(0, 0.75);
    ds.replaceEndpoints([a, b]);
    await waitFor(() => ds.snapshot().every((s) => s.metrics.updateTime > 0), 'both scraped');
    const byKey = new Map(ds.snapshot().map((s) => [s.endpoint.key, s.metrics]));
    expect(byKey.get(a.key)).toMatchObject({ waitingQueueSize: 3, kvCacheUsagePercent: 0.25, runningQueueSize: 1 });
    expect(byKey.get(b.key)).toMatchObject({ waitingQueueSize: 0, kvCacheUsagePercent: 0.75 });
    expect(ds.poolStats()).toMatchObject({ readyEndpoints: 2, averageWaitingQueue: 1.5, averageKvCacheUsage: 0.5 });
    expect(ds.scrapeStatus(a.key)?.failures).toBe(0);
  });

  it('an endpoint whose scrapes fail goes stale and comes back when it answers', async () => {
    const a = await vllm(1, 0.1);
    const server = servers[0] as FakeVllmServer;
    ds.upsertEndpoint(a);
    await waitFor(() => (ds.metrics(a.key)?.updateTime ?? 0) > 0, 'first scrape');
    expect(metricsFresh(ds.metrics(a.key) ?? EMPTY_METRICS, 5_000)).toBe(true);

    server.mode = 'error';
    await waitFor(() => (ds.metrics(a.key)?.consecutiveFailures ?? 0) >= 3, 'failures');
    const stale = ds.metrics(a.key) ?? EMPTY_METRICS;
    await waitFor(() => !metricsFresh(stale, 50), 'metrics to age');
    // updateTime froze at the last success, so the pod ages out of any staleness filter.
    expect(metricsFresh(ds.metrics(a.key) ?? EMPTY_METRICS, 50)).toBe(false);

    server.mode = 'ok';
    await waitFor(() => ds.metrics(a.key)?.consecutiveFailures === 0, 'recovery');
    expect(metricsFresh(ds.metrics(a.key) ?? EMPTY_METRICS, 5_000)).toBe(true);
  });

  it.each(['worker', 'event-loop'] as const)('reads a scraped pod\'s new process start time as its model server restarting, and counters reset in the same process as none (%s mode)', async (scrapeMode) => {
    const local = new Datastore({ refreshIntervalMs: 10, scrapeTimeoutMs: 5_000, scrapeMode });
    try {
      const a = await vllm(0, 0.1);
      const server = servers[0] as FakeVllmServer;
      const restarts: number[] = [];
      local.on('endpointRestarted', (_e, since) => restarts.push(since));
      local.upsertEndpoint(a);
      await waitFor(() => (local.metrics(a.key)?.firstTokenCount ?? 0) > 0, 'a scrape with counts');
      const page = await (await fetch(`http://${server.address}:${server.port}/metrics`)).text();
      expect(local.metrics(a.key)?.processStartTime).toBe(1753299990.5);
      // Every cumulative count back at 0 in the same process (vLLM's elastic-EP scale-up rebuilds its stat loggers): no restart.
      const reset = page.replace(/^(vllm:[a-z_:]+(?:_count|_total))(\{[^}]*\})? \S+$/gm, '$1$2 0.0');
      server.body = reset;
      await waitFor(() => local.metrics(a.key)?.firstTokenCount === 0, 'a scrape of the reset counters');
      expect(restarts).toEqual([]);
      // The same page from a new process.
      server.body = reset.replace(/^process_start_time_seconds .*$/m, 'process_start_time_seconds 1.7533e+09');
      await waitFor(() => restarts.length > 0, 'the restart');
      await new Promise((r) => setTimeout(r, 100));
      expect(restarts).toHaveLength(1);
      expect(local.metrics(a.key)?.processStartTime).toBe(1.7533e9);
    } finally {
      await local.stop();
    }
  });

  it('stops scraping an endpoint once it is removed', async () => {
    const a = await vllm(1, 0.1);
    const server = servers[0] as FakeVllmServer;
    ds.upsertEndpoint(a);
    await waitFor(() => server.requests > 0, 'a scrape');
    ds.removeEndpoint(a.key);
    // The worker thread hears of the removal on its next turn; a starved one can first run a tick that was due (at 10 ms,
    // one is always due), so a scrape sent then lands after the removal. A barrier rather than a fixed settle (a worker
    // starved past a fixed 200 ms sent its last scrape of `a` into the window that must stay quiet): the one scrape
    // worker takes its messages in order, so once a pod added after the removal has been scraped twice, the removal was
    // handled and a scrape of `a` sent before it, written before b's first, has reached its server. Then none may
    // follow: twenty intervals without a request.
    const b = await vllm(0, 0.1);
    const laterServer = servers[1] as FakeVllmServer;
    ds.upsertEndpoint(b);
    await waitFor(() => laterServer.requests >= 2, 'a pod added after the removal scraped twice');
    const after = server.requests;
    await new Promise((r) => setTimeout(r, 200));
    expect(server.requests).toBe(after);
  });

  it('scrapes metricsPort instead of the endpoint port when set', async () => {
    const metricsServer = await FakeVllmServer.start({ engines: [{ waiting: 9, running: 0, kvUsage: 0 }] });
    servers.push(metricsServer);
    const store = new Datastore({ refreshIntervalMs: 10, metricsPort: metricsServer.port });
    try {
      // Port 1 would refuse; the store must go to metricsPort.
      const target = ep('127.0.0.1', 1, 'pod-x');
      store.upsertEndpoint(target);
      await waitFor(() => store.metrics(target.key)?.waitingQueueSize === 9, 'scrape via metricsPort');
    } finally {
      await store.stop();
    }
  });

  it('refuses changes after stop()', async () => {
    await ds.stop();
    expect(() => ds.upsertEndpoint(ep('10.0.0.1', 8000))).toThrow(/stopped/);
  });
});
