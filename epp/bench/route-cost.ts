/**
 * `npm run bench:route-cost -w epp`: the mean CPU cost of request control's `decide()` + `release()` in process (the
 * default config, metrics on a real prom-client registry as the EPP has them), per pool size and prompt size, with the
 * metrics kept fresh; the median of three alternating repetitions with and without the metrics. A quick, scraper-free view of the per-request work `profile-epp.ts` finds; in µs per request.
 */
import * as os from 'os';
import { defaultEndpointPickerConfig } from '../src/config';
import type { IncomingRequest } from '../src/extproc/request-director';
import { createEppMetrics } from '../src/metrics';
import { RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { workload } from './extproc-client';
import { syntheticPool } from './synthetic-pool';


const abortSignal = (): AbortSignal => new AbortController().signal;

/** The request headers of the in-process routing loops (a chat completion). */
const ROUTE_HEADERS = new Map([[':method', 'POST'], [':path', '/v1/chat/completions'], ['content-type', 'application/json']]);

/**
 * One request through request control, as the ext_proc stream asks (`decide`, the signal built only on a path that
 * waits: `route()`'s default AbortController per request was ~5% of this loop at 256 pods, a cost the EPP does not
 * pay), then released as completed; throws unless it was routed.
 */
export async function routeAndRelease(control: RequestControl, requestId: string, body: Buffer): Promise<void> {
  const req: IncomingRequest = { requestId, headers: ROUTE_HEADERS, body, filterMetadata: {} };
  const decided = control.decide(req, abortSignal);
  const d = decided instanceof Promise ? await decided : decided;
  if (d.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(d).slice(0, 200)}`);
  control.release(d.ticket, 'completed');
}

export async function routeCost(n: number, bytes: number, requests: number, withMetrics: boolean): Promise<number> {
  const ds = syntheticPool(n, { numGpuBlocks: 8192, blockSize: 16 });
  const metrics = withMetrics ? createEppMetrics() : undefined;
  const scheduler = buildScheduler(defaultEndpointPickerConfig(), metrics ? { metrics: metrics.scheduling } : {});
  const control = new RequestControl({ datastore: ds, scheduler, ...(metrics ? { metrics: metrics.collectors } : {}) });
  const bodies = workload(bytes, 256);
  const keys = ds.endpoints().map((e) => e.key);
  const t0 = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    // A scrape's worth of change every few requests, as with the workers' batches, outside the timed part.
    if (i % 4 === 0) ds.setMetrics(keys[i % keys.length]!, { updateTime: Date.now(), waitingQueueSize: i % 3 });
    if (i % 200 === 0) for (const k of keys) ds.setMetrics(k, { updateTime: Date.now() });
    await routeAndRelease(control, `r${i}`, bodies[i % bodies.length]!);
  }
  const t = process.cpuUsage(t0);
  await ds.stop();
  // The whole loop's CPU (the metrics updates between requests are a small part of it), per request.
  return (t.user + t.system) / requests;
}

async function main(): Promise<void> {
  const requests = Number(process.env.ROUTE_COST_REQUESTS ?? 4000);
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const bytes of [1024, 16 * 1024]) {
    for (const n of [8, 256]) {
      await routeCost(n, bytes, 1000, true); // warm-up
      // Alternating repetitions, medians: a shared machine's load comes and goes.
      const withM: number[] = [];
      const without: number[] = [];
      for (let r = 0; r < 3; r++) {
        withM.push(await routeCost(n, bytes, requests, true));
        without.push(await routeCost(n, bytes, requests, false));
      }
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
      console.log(`${n} pods, ${bytes / 1024} KB: ${median(withM).toFixed(1)} µs CPU per route (${median(without).toFixed(1)} without metrics)`);
    }
  }
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
