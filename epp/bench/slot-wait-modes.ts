/**
 * `npm run bench:slot-wait-modes -w epp`: the CPU cost of request control's `decide()` + `release()` in process (as
 * `route-cost.ts`, without metrics) under the latency scorer's `slotWait: imbalanced`, `avoidable` and `hot-prefixes`,
 * on synthetic pools where no pod is full (vLLM's default 1024 slots), where pods are full and some have half their
 * slots free (4 slots, 0-6 requests a pod: the imbalanced rule fires under all three), and where pods are full and none
 * has half free (`busy`: 4 slots, 3-4 running, 0-1 waiting: `avoidable` and `hot-prefixes` look further). Every pod has
 * learnt its mean request time (checked before timing), so a full pod's wait is priced where the mode prices it. Each
 * request ends before the next starts, so `hot-prefixes` counts and uncounts its leading parts but never finds one hot
 * (a hot one costs a pass over the candidates, as `slotsImbalanced`'s). µs per request, the median of five alternating
 * repetitions (sessions 56 and 57; epp/README.md, "Waiting for a sequence slot").
 */
import * as os from 'os';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, withMaxNumSeqs, type EndpointPickerConfig } from '../src/config';
import { RequestControl } from '../src/requestcontrol/request-control';
import { LatencyScorer } from '../src/scheduling/plugins/latency-scorer';
import { buildScheduler } from '../src/scheduling/scheduler';
import { workload } from './extproc-client';
import { routeAndRelease } from './route-cost';
import { syntheticPool } from './synthetic-pool';

type Fill = 'none full' | 'full, some half free' | 'busy';

/**
 * The page's running and waiting requests for pod `j` (the synthetic pool's own for `none full`). Never more than 4
 * running: a pod seen running more than it was told counts as having one slot more than it ran.
 */
function occupancy(fill: Fill, j: number): { runningQueueSize?: number; waitingQueueSize?: number } {
  if (fill === 'busy') return { runningQueueSize: 3 + (j % 2), waitingQueueSize: 0 };
  if (fill === 'full, some half free') return { runningQueueSize: Math.min(4, j % 7), waitingQueueSize: Math.max(0, (j % 7) - 4) };
  return {};
}

function config(slotWait: (typeof MODES)[number], slots: number | undefined): EndpointPickerConfig {
  const base = slots === undefined ? defaultEndpointPickerConfig() : withMaxNumSeqs(defaultEndpointPickerConfig(), slots);
  return parseEndpointPickerConfig(JSON.stringify({
    ...base,
    plugins: base.plugins.map((p) => (p.type === 'latency-scorer' ? { ...p, parameters: { ...p.parameters, slotWait } } : p)),
  }));
}

async function cost(n: number, cfg: EndpointPickerConfig, fill: Fill, requests: number): Promise<number> {
  const busy = fill === 'busy';
  const ds = syntheticPool(n, { numGpuBlocks: 8192, blockSize: 16 });
  const scheduler = buildScheduler(cfg);
  const control = new RequestControl({ datastore: ds, scheduler });
  const bodies = workload(1024, 256);
  const keys = ds.endpoints().map((e) => e.key);
  const route = (i: number): Promise<void> => routeAndRelease(control, `r${i}`, bodies[Math.abs(i) % bodies.length]!);
  // Two pages, 8 requests finished between them (0.8 s each), each read by a request's scoring: every pod's model learns
  // its mean request time (a page no newer than the last one read teaches nothing; one older than the saturation
  // filter's 1 s staleness is not scored at all).
  const start = Date.now();
  keys.forEach((k, j) => ds.setMetrics(k, { updateTime: start - 300, inferenceCount: 0, inferenceSecondsSum: 0, ...occupancy(fill, j) }));
  await route(-2);
  for (const k of keys) ds.setMetrics(k, { updateTime: start - 200, inferenceCount: 8, inferenceSecondsSum: 6.4 });
  await route(-1);
  const latency = scheduler.plugin('latency-scorer') as LatencyScorer;
  const unlearnt = keys.filter((k) => latency.model.get(k)?.ownInferenceSeconds() === undefined);
  if (unlearnt.length > 0) throw new Error(`${unlearnt.length} of ${n} pods learnt no mean request time`);
  const t0 = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    if (i % 4 === 0) ds.setMetrics(keys[i % keys.length]!, { updateTime: Date.now(), waitingQueueSize: busy ? (i >> 2) % 2 : i % 3 });
    if (i % 200 === 0) for (const k of keys) ds.setMetrics(k, { updateTime: Date.now() });
    await route(i);
  }
  const t = process.cpuUsage(t0);
  await ds.stop();
  return (t.user + t.system) / requests;
}

const MODES = ['imbalanced', 'avoidable', 'hot-prefixes'] as const;

async function main(): Promise<void> {
  const requests = Number(process.env.SLOT_WAIT_MODES_REQUESTS ?? 4000);
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const fills: [Fill, number | undefined][] = [['none full', undefined], ['full, some half free', 4], ['busy', 4]];
  for (const [fill, slots] of fills) {
    for (const n of [8, 256]) {
      const configs = MODES.map((mode) => config(mode, slots));
      for (const cfg of configs) await cost(n, cfg, fill, 1000); // warm-up
      const runs: number[][] = MODES.map(() => []);
      for (let r = 0; r < 5; r++) for (let m = 0; m < MODES.length; m++) runs[m]!.push(await cost(n, configs[m]!, fill, requests));
      const median = (xs: number[]) => xs.sort((p, q) => p - q)[2]!;
      console.log(`${fill} (${slots ?? 1024} slots), ${n} pods, 1 KB: ${MODES.map((mode, m) => `${mode} ${median(runs[m]!).toFixed(1)} µs`).join(', ')} a request`);
    }
  }
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
