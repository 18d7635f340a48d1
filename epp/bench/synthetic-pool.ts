/**
 * A datastore of `n` decode pods with seeded, plausible metrics and no scraping, for timing `RequestControl.route` in
 * process (`epp-bench.ts`'s in-process rows and `route-cost.ts`).
 */
import { Datastore } from '../src/datastore/datastore';
import { lcg } from './extproc-client';

/** `kvCapacity` adds `vllm:cache_config_info`'s values, which size the approximate index per pod (autoTune). */
export function syntheticPool(n: number, kvCapacity?: { readonly numGpuBlocks: number; readonly blockSize: number }): Datastore {
  const ds = new Datastore({ scrape: false });
  const rnd = lcg(n);
  for (let i = 0; i < n; i++) {
    const address = `10.${(i >> 8) & 255}.${i & 255}.7`;
    ds.upsertEndpoint({ key: `${address}:8000`, name: `decode-${i}`, namespace: 'llm-d', address, port: 8000, labels: { 'llm-d.ai/role': 'decode' } });
    ds.setMetrics(`${address}:8000`, {
      waitingQueueSize: Math.floor(rnd() * 4),
      runningQueueSize: Math.floor(rnd() * 16),
      kvCacheUsagePercent: rnd() * 0.8,
      ...(kvCapacity ?? {}),
      updateTime: Date.now(),
      consecutiveFailures: 0,
    });
  }
  return ds;
}
