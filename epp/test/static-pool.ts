import { Datastore } from '../src/datastore/datastore';

/**
 * A pool whose pods are read again right after every pick, their gauges unchanged: what a test routes never piles up as
 * queue their pages miss (`EndpointSnapshot.netPicksSinceScrape`, which `saturation-filter` adds to the scraped queue), as
 * if requests came further apart than the 50 ms scrapes and each had started running by the next. For tests about
 * anything but load.
 */
class ReadAfterEveryPick extends Datastore {
  override acquire(key: string): number | undefined {
    const routeId = super.acquire(key);
    const read = this.metrics(key);
    if (read !== undefined && read.updateTime > 0) this.setMetrics(key, { updateTime: read.updateTime + 1 });
    return routeId;
  }
}

/**
 * A datastore of `n` decode pods 10.0.0.1..n:8000 (named p0..), not scraped: pod i has i waiting requests, nothing
 * running and 10% KV usage, its metrics fresh as of now and read again after every pick (`ReadAfterEveryPick`). For
 * request-control tests that need a pool but no scrapes.
 */
export function staticPool(n: number): Datastore {
  const ds = new ReadAfterEveryPick({ scrape: false });
  for (let i = 0; i < n; i++) {
    const address = `10.0.0.${i + 1}`;
    ds.upsertEndpoint({ key: `${address}:8000`, name: `p${i}`, namespace: 'ns', address, port: 8000, labels: {} });
    ds.setMetrics(`${address}:8000`, { waitingQueueSize: i, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
  }
  return ds;
}

/**
 * Marks every pod's metrics fresh as of now, as a scrape would: for tests whose work between routes (megabyte bodies
 * on a loaded CI machine) can outlast the saturation filter's staleness threshold (1 s in the default config).
 */
export function freshenMetrics(ds: Datastore): void {
  const updateTime = Date.now();
  for (const endpoint of ds.endpoints()) ds.setMetrics(endpoint.key, { updateTime });
}
