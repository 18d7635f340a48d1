/**
 * The EPP benchmark's paired rounds (`epp-bench.ts`): per prompt size and scrape mode, the EPPs for every pool size
 * run at once and are driven with the floor in alternating slices, round after round, so every ratio (EPP ÷ floor,
 * 256 pods ÷ 8 pods) is taken from slices seconds apart instead of cells minutes apart.
 *
 * A round, for each EPP in `roundOrder` (rotated round by round):
 *   SIGCONT it and settle (`resumeEpp`, not measured: until its metrics are fresh again),
 *   its slice and the floor's slice, in the order `eppFirst` alternates round by round — each slice one phase at
 *   one request in flight, an unmeasured warm-up of `warmMs` at `concurrency` in flight, and one measured phase at
 *   `concurrency` in flight —,
 *   SIGSTOP it (`pauseEpp`).
 * The warm-up is there because a request rate is a steady-state measure and a paused EPP is not in its steady state when
 * it is continued: at 256 pods its first second of load after seconds without any ran ~20-30% slower than under
 * continuous load (V8 copied and promoted about ten times as much per scavenge then, and the rest of the routing
 * thread's work ran slower too; see epp/README.md, "Slices measured warm"), while the floor, with a heap of a few MB,
 * shows none of it. Both servers get the same warm-up; `warmMs` 0 measures the first moments after the pause, as
 * session 8's runs did.
 * So only one EPP runs at a time: the one being driven, or, during the floor slice paired with it, the same EPP idle
 * beside the floor, scraping. Each EPP's slices and the floor slices paired with them share one background (that
 * EPP's scraping and the metrics servers answering it), and an EPP not being driven loads nobody's slices.
 *
 * Per slice kind (an EPP's slices, the floor slices paired with it) it also reads, over the phase at `concurrency`
 * in flight, the CPU per request of the client (this process), the server (the EPP's routing thread and its other
 * threads; the floor process), the background (the idle EPP beside the floor), the metrics servers, and how busy the
 * machine was: on two cores the client and the server ping-pong, and a ratio can only reach what that allows.
 */
import { machineTimes } from './replica-scaling';
import { driveConcurrent, driveSerial, ExtProcClient, warmUp } from './extproc-client';
import { eppMetrics, pauseEpp, resumeEpp, type Epp } from './processes';
import { processCpu } from './proc-cpu';
import { eppFirst, roundOrder } from './round-stats';

/** CPU seconds over the phases at `concurrency` in flight of one slice kind, and the requests they answered. */
export interface CpuTally {
  requests: number;
  client: number;
  /** The server driven: the EPP's routing thread, or the whole floor process. */
  serverMain: number;
  /** The EPP's other threads (scrape worker, V8's and libuv's helpers); 0 for the floor. */
  serverOther: number;
  /** During floor slices, the idle EPP beside the floor (all its threads); 0 during EPP slices. */
  background: number;
  metricsServers: number;
  machineBusy: number;
  machineTotal: number;
}

/** What one server (an EPP, or the floor beside one EPP) answered over every round. */
export interface SideTally {
  /** Round trips at one request in flight, ms. */
  readonly serial: number[];
  /** Round trips at `concurrency` in flight, ms. */
  readonly concurrent: number[];
  concurrentSeconds: number;
  /** Requests/s at `concurrency` in flight, one per round, in round order. */
  readonly roundRps: number[];
  rejected: number;
  readonly cpu: CpuTally;
}

/** What was read from one EPP's own /metrics page around its slices (never around the floor's). */
export interface EppTally {
  /** Cumulative-histogram deltas of the scheduling duration over the EPP's slices: upper bound (s) → count. */
  buckets: [number, number][];
  scrapes: number;
  scrapeFailures: number;
  staleExclusions: number;
  scrapeFailureExclusions: number;
  /** Wall seconds of the EPP's slices (between the two reads of its page). */
  seconds: number;
  /** Routing-loop utilization × seconds, summed over its slices. */
  eluSeconds: number;
  maxRss: number;
  heapUsedAtMaxRss: number;
  refreshIntervalMs: number;
  /** Settle times after SIGCONT, ms. */
  readonly settleMs: number[];
  /** CPU seconds the EPP used while paused (from /proc, read once it shows stopped and before SIGCONT): 0 if the pause held. */
  cpuWhilePaused: number;
}

export interface EppUnderTest {
  readonly epp: Epp;
  readonly pods: number;
}

export interface GroupResult {
  /** Per EPP, in the order given. */
  readonly epps: { epp: SideTally; floor: SideTally; tally: EppTally }[];
}

const emptyCpu = (): CpuTally => ({ requests: 0, client: 0, serverMain: 0, serverOther: 0, background: 0, metricsServers: 0, machineBusy: 0, machineTotal: 0 });
const emptySide = (): SideTally => ({ serial: [], concurrent: [], concurrentSeconds: 0, roundRps: [], rejected: 0, cpu: emptyCpu() });
const emptyEpp = (): EppTally => ({ buckets: [], scrapes: 0, scrapeFailures: 0, staleExclusions: 0, scrapeFailureExclusions: 0, seconds: 0, eluSeconds: 0, maxRss: 0, heapUsedAtMaxRss: 0, refreshIntervalMs: NaN, settleMs: [], cpuWhilePaused: 0 });

interface CpuSnapshot {
  readonly client: NodeJS.CpuUsage;
  readonly server: { main: number; all: number };
  readonly background: number;
  readonly metrics: number;
  readonly machine: { busy: number; total: number };
}

function snapshot(pids: { server: number; background?: number; metrics: number }): CpuSnapshot {
  return {
    client: process.cpuUsage(),
    server: processCpu(pids.server),
    background: pids.background === undefined ? 0 : processCpu(pids.background).all,
    metrics: processCpu(pids.metrics).all,
    machine: machineTimes(),
  };
}

/**
 * One slice against one server: a phase at one request in flight, `warmMs` of unmeasured load at `concurrency` in
 * flight, then the measured phase at `concurrency` in flight, `sliceMs` each phase; CPU read around the last. `isEpp`: the server's main thread is a routing thread worth telling apart.
 */
async function slice(client: ExtProcClient, bodies: readonly Buffer[], sliceMs: number, warmMs: number, concurrency: number, side: SideTally, pids: { server: number; background?: number; metrics: number }, isEpp: boolean): Promise<void> {
  const reject = () => { side.rejected++; };
  await driveSerial(client, bodies, sliceMs, side.serial, reject);
  // Not timed, not in the CPU tally; an answer rejected here still counts as rejected.
  if (warmMs > 0) await driveConcurrent(client, bodies, warmMs, concurrency, [], reject);
  const answeredBefore = side.concurrent.length;
  const c0 = snapshot(pids);
  const seconds = await driveConcurrent(client, bodies, sliceMs, concurrency, side.concurrent, reject);
  const c1 = snapshot(pids);
  const answered = side.concurrent.length - answeredBefore;
  side.concurrentSeconds += seconds;
  side.roundRps.push(answered / seconds);
  const client1 = process.cpuUsage(c0.client);
  const cpu = side.cpu;
  cpu.requests += answered;
  cpu.client += (client1.user + client1.system) / 1e6;
  if (isEpp) {
    cpu.serverMain += c1.server.main - c0.server.main;
    cpu.serverOther += (c1.server.all - c1.server.main) - (c0.server.all - c0.server.main);
  } else {
    cpu.serverMain += c1.server.all - c0.server.all;
  }
  cpu.background += c1.background - c0.background;
  cpu.metricsServers += c1.metrics - c0.metrics;
  cpu.machineBusy += (c1.machine.busy - c0.machine.busy) / 1000;
  cpu.machineTotal += (c1.machine.total - c0.machine.total) / 1000;
}

function addBuckets(into: [number, number][], before: [number, number][], after: [number, number][]): [number, number][] {
  const delta = after.map(([le, c], i) => [le, c - (before[i]?.[1] ?? 0)] as [number, number]);
  if (into.length === 0) return delta;
  return delta.map(([le, c], i) => [le, c + (into[i]?.[1] ?? 0)] as [number, number]);
}

/**
 * Drives `epps` (all started, any state) and the floor in `rounds` paired rounds with `bodies`, `sliceMs` per phase
 * and slice; leaves every EPP paused. The caller measures nothing else meanwhile.
 */
export async function measureGroup(options: {
  readonly epps: readonly EppUnderTest[];
  readonly floorPort: number;
  readonly floorPid: number;
  readonly metricsPid: number;
  readonly bodies: readonly Buffer[];
  readonly rounds: number;
  readonly sliceMs: number;
  readonly concurrency: number;
  /** Unmeasured load at `concurrency` in flight before each slice's measured phase at `concurrency`, EPP and floor alike. */
  readonly warmMs: number;
  /** Called after each round with its number, for progress. */
  readonly onRound?: (round: number) => void;
}): Promise<GroupResult> {
  const { epps, bodies, rounds, sliceMs, concurrency, warmMs } = options;
  if (!(Number.isFinite(warmMs) && warmMs >= 0)) throw new Error(`warmMs must be a non-negative number of milliseconds, got ${warmMs}`);
  const result = epps.map(() => ({ epp: emptySide(), floor: emptySide(), tally: emptyEpp() }));
  const clients = epps.map((e) => new ExtProcClient(e.epp.grpcPort));
  const floorClient = new ExtProcClient(options.floorPort);
  /** CPU seconds of each EPP when it was last paused, to check that a pause held. */
  const atPause = epps.map(() => NaN);
  const pause = async (i: number) => {
    await pauseEpp(epps[i]!.epp); // returns once the kernel shows it stopped
    atPause[i] = processCpu(epps[i]!.epp.child.pid!).all;
  };
  const resume = async (i: number) => {
    const tally = result[i]!.tally;
    if (!Number.isNaN(atPause[i]!)) tally.cpuWhilePaused += processCpu(epps[i]!.epp.child.pid!).all - atPause[i]!;
    const settle = await resumeEpp(epps[i]!.epp, epps[i]!.pods);
    tally.settleMs.push(settle.ms);
  };
  try {
    for (let i = 0; i < epps.length; i++) await pause(i);
    // Warm-up, untimed, one EPP running at a time as in the rounds.
    await warmUp(floorClient, bodies);
    for (let i = 0; i < epps.length; i++) {
      await resume(i);
      await warmUp(clients[i]!, bodies);
      await pause(i);
    }
    // Settles of the warm-up are not the rounds'.
    for (const r of result) r.tally.settleMs.length = 0;
    const order = epps.map((_, i) => i);
    for (let round = 0; round < rounds; round++) {
      for (const i of roundOrder(order, round)) {
        const { epp } = epps[i]!;
        const r = result[i]!;
        await resume(i);
        const pid = epp.child.pid!;
        const eppSlice = async () => {
          const before = await eppMetrics(epp);
          const t0 = performance.now();
          await slice(clients[i]!, bodies, sliceMs, warmMs, concurrency, r.epp, { server: pid, metrics: options.metricsPid }, true);
          const after = await eppMetrics(epp);
          const seconds = (performance.now() - t0) / 1000;
          const t = r.tally;
          t.buckets = addBuckets(t.buckets, before.buckets, after.buckets);
          t.scrapes += after.scrapes - before.scrapes;
          t.scrapeFailures += after.scrapeFailures - before.scrapeFailures;
          t.staleExclusions += after.staleExclusions - before.staleExclusions;
          t.scrapeFailureExclusions += after.scrapeFailureExclusions - before.scrapeFailureExclusions;
          t.seconds += seconds;
          t.eluSeconds += after.elu * seconds;
          if (after.rss > t.maxRss) {
            t.maxRss = after.rss;
            t.heapUsedAtMaxRss = after.heapUsed;
          }
          t.refreshIntervalMs = after.refreshIntervalMs;
        };
        const floorSlice = () => slice(floorClient, bodies, sliceMs, warmMs, concurrency, r.floor, { server: options.floorPid, background: pid, metrics: options.metricsPid }, false);
        if (eppFirst(round, i)) {
          await eppSlice();
          await floorSlice();
        } else {
          await floorSlice();
          await eppSlice();
        }
        await pause(i);
      }
      options.onRound?.(round);
    }
  } finally {
    for (const c of clients) c.close();
    floorClient.close();
  }
  return { epps: result };
}
