import { Datastore } from '../src/datastore/datastore';

/**
 * A datastore of `n` decode pods 10.0.0.1..n:8000 (named p0..), not scraped: pod i has i waiting requests, nothing
 * running and 10% KV usage, its metrics fresh as of now. For request-control tests that need a pool but no scrapes.
 */
export function staticPool(n: number): Datastore {
  const ds = new Datastore({ scrape: false });
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
