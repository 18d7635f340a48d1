import * as fs from 'node:fs';
import { sleep } from '@kvroute/testkit';
import { ExtProcClient, timedExchange, workload } from '../bench/extproc-client';
import { processCpu, processState } from '../bench/proc-cpu';
import { eppMetrics, forkTs, isPaused, nextMessage, pauseEpp, resumeEpp, SETTLE_SCRAPES_PER_POD, startEppProcess, stopChild, type Epp } from '../bench/processes';

// The EPP benchmark pauses the EPPs it is not driving (bench/paired-rounds.ts). Against the real kvroute-epp binary
// (dist/main.js: `npm test` builds it first) and real metrics servers in another process: a paused EPP does nothing
// at all, and after resumeEpp's settle it routes with every pod fresh, although the pause outlasted the default
// config's 1 s staleness threshold. Nothing here is about speed; the limit only bounds a hung run.
jest.setTimeout(120_000);

const PODS = 4;
const linux = fs.existsSync('/proc/self/stat');

let metricsServers: ReturnType<typeof forkTs> | undefined;
let epp: Epp | undefined;

afterAll(async () => {
  if (epp) await stopChild(epp.child); // continues it first if it is still paused
  if (metricsServers) {
    metricsServers.disconnect();
    await stopChild(metricsServers);
  }
});

(linux ? test : test.skip)('a paused EPP uses no CPU and scrapes nothing; resumed and settled, it routes with no pod stale', async () => {
  metricsServers = forkTs('metrics-servers.ts', [String(PODS)]);
  const { ports } = await nextMessage<{ ports: number[] }>(metricsServers, 'ports');
  epp = await startEppProcess(ports, 'worker');
  const pid = epp.child.pid!;

  await pauseEpp(epp);
  expect(isPaused(epp)).toBe(true);
  expect(processState(pid)).toBe('T'); // pauseEpp returns once the kernel shows it stopped
  const cpuAtPause = processCpu(pid).all;
  // Longer than the default config's metricsStalenessThreshold (1 s): every pod's metrics are stale on resume.
  await sleep(1500);
  expect(processState(pid)).toBe('T');
  expect(processCpu(pid).all).toBe(cpuAtPause);

  const settle = await resumeEpp(epp, PODS);
  expect(isPaused(epp)).toBe(false);
  expect(processState(pid)).not.toBe('T');
  expect(settle.scrapes).toBeGreaterThanOrEqual(SETTLE_SCRAPES_PER_POD * PODS);

  const before = await eppMetrics(epp);
  const client = new ExtProcClient(epp.grpcPort);
  const bodies = workload(2048, 8);
  let rejected = 0;
  const answered: number[] = [];
  try {
    for (let i = 0; i < 40; i++) await timedExchange(client, bodies[i % bodies.length]!, answered, () => { rejected++; });
  } finally {
    client.close();
  }
  const routed = answered.length;
  const after = await eppMetrics(epp);
  expect({ routed, rejected }).toEqual({ routed: 40, rejected: 0 });
  // Every request's scheduling cycle saw every pod fresh and healthy.
  expect(after.staleExclusions - before.staleExclusions).toBe(0);
  expect(after.scrapeFailureExclusions - before.scrapeFailureExclusions).toBe(0);
  const cycles = after.buckets[after.buckets.length - 1]![1] - (before.buckets[before.buckets.length - 1]?.[1] ?? 0);
  expect(cycles).toBe(40);
});
