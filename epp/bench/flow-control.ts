/**
 * `npm run bench:flow-control -w epp`: what the flow-control queue costs the routing thread as it fills and drains,
 * per waiting-queue size (`flowControl.maxQueued`): a saturated pool's flood enqueues `n` requests over 1,000 sessions
 * (each enqueue expires what is due and re-arms the deadline timer, as in the EPP), then dispatch releases them 4 at a
 * time (`dispatchPerTick`'s default, each call expiring and re-arming too). µs per request, median of 5 runs. With
 * `KVROUTE_EPP_BASELINE=<checkout>/epp/dist/main.js` the baseline build's queue runs alternately in the same invocation
 * and the table gives both and their ratio (session 42: the scan over every waiter on each enqueue and dispatch against
 * the deadline heap that replaced it).
 */
import * as os from 'os';
import * as path from 'path';
import { FlowControlQueue as CurrentQueue } from '../src/requestcontrol/flow-control';

type QueueClass = typeof CurrentQueue;

const SIZES = (process.env.BENCH_FLOW_SIZES ?? '1024,8192,32768').split(',').map(Number);
for (const n of SIZES) if (!(Number.isInteger(n) && n >= 1)) throw new Error(`BENCH_FLOW_SIZES: each size must be a positive integer, got ${n}`);
const RUNS = 5;

/** µs per request to fill a queue of `n` and to drain it. */
function once(Queue: QueueClass, n: number): { fill: number; drain: number } {
  let now = 1_000_000;
  const q = new Queue({ maxQueued: n, maxWaitMs: 30_000, maxDispatchPerCall: 4, now: () => now });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    now += 0.01;
    q.enqueue({ flow: `s${i % 1_000}`, priority: 0, bytes: 1_024 }).catch(() => undefined);
  }
  const t1 = process.hrtime.bigint();
  while (q.size > 0) q.dispatch(4);
  const t2 = process.hrtime.bigint();
  q.close();
  return { fill: Number(t1 - t0) / 1_000 / n, drain: Number(t2 - t1) / 1_000 / n };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function main(): void {
  const baselineMain = process.env.KVROUTE_EPP_BASELINE;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Baseline = baselineMain ? (require(path.join(path.dirname(baselineMain), 'requestcontrol', 'flow-control.js')) as { FlowControlQueue: QueueClass }).FlowControlQueue : undefined;
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (Baseline) console.log(`baseline: ${baselineMain}`);
  console.log(`\n| waiting | fill µs/request | drain µs/request |${Baseline ? ' baseline fill | baseline drain | fill × baseline | drain × baseline |' : ''}`);
  console.log(`|---:|---:|---:|${Baseline ? '---:|---:|---:|---:|' : ''}`);
  for (const n of SIZES) {
    once(CurrentQueue, Math.min(n, 1_024)); // warm-up
    if (Baseline) once(Baseline, Math.min(n, 1_024));
    const current: { fill: number; drain: number }[] = [];
    const base: { fill: number; drain: number }[] = [];
    for (let r = 0; r < RUNS; r++) {
      current.push(once(CurrentQueue, n));
      if (Baseline) base.push(once(Baseline, n));
    }
    const f = median(current.map((x) => x.fill));
    const d = median(current.map((x) => x.drain));
    const cells = [`${n}`, f.toFixed(2), d.toFixed(2)];
    if (Baseline) {
      const bf = median(base.map((x) => x.fill));
      const bd = median(base.map((x) => x.drain));
      cells.push(bf.toFixed(2), bd.toFixed(2), (f / bf).toFixed(3), (d / bd).toFixed(3));
    }
    console.log(`| ${cells.join(' | ')} |`);
  }
}

main();
