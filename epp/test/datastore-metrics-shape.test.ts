import * as v8 from 'node:v8';
import { FakeVllmServer, waitFor } from '@kvroute/testkit';
import { Datastore, type ScrapeMode } from '../src/datastore/datastore';
import { EMPTY_METRICS, endpointMetrics, type Endpoint, type EndpointMetrics } from '../src/datastore/types';

// V8's own answer to "do these objects share a hidden class": %HaveSameMap, enabled for code compiled from here on.
v8.setFlagsFromString('--allow-natives-syntax');
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

/** How many distinct hidden classes the objects have. */
function shapes(objects: readonly object[]): number {
  const representatives: object[] = [];
  for (const o of objects) if (!representatives.some((r) => haveSameMap(r, o))) representatives.push(o);
  return representatives.length;
}

const endpoint = (port: number): Endpoint => ({ key: `127.0.0.1:${port}`, name: `pod-${port}`, namespace: '', address: '127.0.0.1', port, labels: {} });

/**
 * Every filter and scorer reads `candidate.metrics.*` of every candidate on every request. When each pod's metrics
 * object had a hidden class of its own (spread from a structured-cloned worker reading: 64 pods gave 64 classes),
 * those reads went megamorphic and the scheduling cycle's per-candidate cost grew several-fold at 256 pods.
 */
describe('EndpointMetrics objects share one hidden class', () => {
  it.each<ScrapeMode>(['worker', 'event-loop'])('scraped in %s mode from pods with different pages, after failures and setMetrics', async (mode) => {
    const servers = await Promise.all(Array.from({ length: 6 }, (_, i) => FakeVllmServer.start({
      engines: [{ waiting: i, running: i % 3, kvUsage: i / 10, numGpuBlocks: 1000 * (i + 1) }],
      // Pages that differ in which optional families they carry.
      cacheConfigInfo: i % 2 === 0,
      gpuCacheUsage: i % 3 !== 0,
      processMetrics: i % 2 === 1,
    })));
    const ds = new Datastore({ refreshIntervalMs: 20, scrapeMode: mode });
    try {
      for (const s of servers) ds.upsertEndpoint(endpoint(s.port));
      await waitFor(() => ds.snapshot().every((s) => s.metrics.updateTime > 0), 'every pod scraped');
      // A failing pod: its metrics object is rebuilt with a failure count.
      servers[5]!.mode = 'error';
      await waitFor(() => (ds.metrics(endpoint(servers[5]!.port).key)?.consecutiveFailures ?? 0) > 0, 'a failed scrape');
      const scraped = ds.snapshot().map((s) => s.metrics);
      const set = (() => {
        ds.setMetrics(endpoint(servers[0]!.port).key, { waitingQueueSize: 9 });
        return ds.metrics(endpoint(servers[0]!.port).key)!;
      })();
      const all: EndpointMetrics[] = [...scraped, set, EMPTY_METRICS, endpointMetrics({ waitingQueueSize: 1, runningQueueSize: 2, kvCacheUsagePercent: 0.5, updateTime: 1, consecutiveFailures: 0, numGpuBlocks: 7 })];
      expect(new Set(scraped.map((m) => m.numGpuBlocks)).size).toBeGreaterThan(1); // really different pages
      expect(shapes(all)).toBe(1);
      expect(all.every((m) => Object.isFrozen(m))).toBe(true);
    } finally {
      await ds.stop();
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('keeps absent optional fields undefined, so readers that test for undefined see no change', () => {
    const m = endpointMetrics({ waitingQueueSize: 1, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: 5, consecutiveFailures: 0 });
    expect(m.numGpuBlocks).toBeUndefined();
    expect(m.firstTokenCount).toBeUndefined();
    expect(JSON.parse(JSON.stringify(m))).toEqual({ waitingQueueSize: 1, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: 5, consecutiveFailures: 0 });
  });
});
