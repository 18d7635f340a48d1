/**
 * Issue 10's scaling question, as a section of `npm run bench -w epp` (alone: `-- --only replicas`): requests per
 * second through 1, 2 and 4 EPP replicas, each the real binary scraping the same pool, with the client spreading its
 * ext_proc streams over the replicas round robin as Envoy's cluster does over the EPP Service's endpoints (Istio's
 * default ROUND_ROBIN load balancer for the ext_proc cluster; a stream's messages all go to the replica it opened on).
 * All replicas run for the whole section (a replica not driven still scrapes, as it would in a cluster), and the
 * replica counts are driven in alternating slices so a shared machine's load falls on each alike. Reported as ratios
 * to one replica within the run, with the CPU the replicas and the client used per request and how busy the machine
 * was: on a machine with fewer cores than client + replicas, more replicas cannot add throughput.
 */
import * as fs from 'fs';
import * as os from 'os';
import { ExtProcClient, ImmediateResponse } from './extproc-client';
import { startEppProcess, stopChild, type Epp } from './processes';

export interface ReplicaRow {
  readonly replicas: number;
  readonly rps: number;
  /** rps ÷ the one-replica rps of the same run. */
  readonly ratioToOne: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU ms all EPP replicas (routing and scrape threads) used per request answered. */
  readonly eppCpuMsPerRequest: number;
  /** CPU ms the client (this process) used per request. */
  readonly clientCpuMsPerRequest: number;
  /** Share of every core of the machine that was busy (anyone's work, other engineers' too), 0–1. */
  readonly machineBusy: number;
  readonly rejected: number;
}

/** Seconds of CPU (user + system) a process has used, from /proc (Linux); NaN elsewhere. */
export function processCpuSeconds(pid: number | undefined): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the stat line, in clock ticks (100 a second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Busy and total CPU time of every core since boot, in ms (`os.cpus()`). */
export function machineTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    const all = t.user + t.nice + t.sys + t.idle + t.irq;
    total += all;
    busy += all - t.idle;
  }
  return { busy, total };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/**
 * Starts max(`counts`) replicas on `ports`' pool and drives `counts` of them in `rounds` alternating slices of
 * `sliceMs` at `concurrency` in flight with `bodies`.
 */
export async function measureReplicaScaling(options: {
  readonly ports: readonly number[];
  readonly bodies: readonly Buffer[];
  readonly counts: readonly number[];
  readonly rounds: number;
  readonly sliceMs: number;
  readonly concurrency: number;
}): Promise<ReplicaRow[]> {
  const { ports, bodies, counts, rounds, sliceMs, concurrency } = options;
  const epps: Epp[] = [];
  try {
    for (let i = 0; i < Math.max(...counts); i++) epps.push(await startEppProcess([...ports], 'worker'));
    const clients = epps.map((e) => new ExtProcClient(e.grpcPort));
    const totals = new Map(counts.map((n) => [n, { done: 0, rejected: 0, seconds: 0, eppCpu: 0, clientCpu: 0, busy: 0, cores: 0, latencies: [] as number[] }]));
    let next = 0;
    const drive = async (n: number, ms: number, into?: number[]): Promise<{ done: number; rejected: number }> => {
      let done = 0;
      let rejected = 0;
      const deadline = performance.now() + ms;
      await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
        for (let i = w; performance.now() < deadline; i += concurrency) {
          // Round robin over the driven replicas, one stream at a time, as Envoy's cluster spreads new streams.
          const client = clients[next++ % n]!;
          try {
            const ms = await client.exchange(bodies[i % bodies.length]!);
            into?.push(ms);
            done++;
          } catch (e) {
            if (!(e instanceof ImmediateResponse)) throw e;
            rejected++;
          }
        }
      }));
      return { done, rejected };
    };
    for (const n of counts) await drive(n, Math.min(500, sliceMs)); // warm-up: connections, JIT, the prefix index
    for (let round = 0; round < rounds; round++) {
      for (const n of round % 2 === 0 ? counts : [...counts].reverse()) {
        const t = totals.get(n)!;
        const cpu0 = epps.map((e) => processCpuSeconds(e.child.pid));
        const client0 = process.cpuUsage();
        const m0 = machineTimes();
        const t0 = performance.now();
        const { done, rejected } = await drive(n, sliceMs, t.latencies);
        t.seconds += (performance.now() - t0) / 1000;
        const m1 = machineTimes();
        const client1 = process.cpuUsage(client0);
        t.eppCpu += epps.reduce((sum, e, i) => sum + processCpuSeconds(e.child.pid) - cpu0[i]!, 0);
        t.clientCpu += (client1.user + client1.system) / 1e6;
        t.busy += m1.busy - m0.busy;
        t.cores += m1.total - m0.total;
        t.done += done;
        t.rejected += rejected;
      }
    }
    for (const c of clients) c.close();
    const one = totals.get(counts[0]!)!;
    const oneRps = one.done / one.seconds;
    return counts.map((n) => {
      const t = totals.get(n)!;
      const lat = t.latencies.sort((a, b) => a - b);
      const rps = t.done / t.seconds;
      return {
        replicas: n,
        rps: Math.round(rps),
        ratioToOne: +(rps / oneRps).toFixed(2),
        p50Ms: +quantile(lat, 0.5).toFixed(3),
        p99Ms: +quantile(lat, 0.99).toFixed(3),
        eppCpuMsPerRequest: +((t.eppCpu * 1000) / Math.max(1, t.done)).toFixed(3),
        clientCpuMsPerRequest: +((t.clientCpu * 1000) / Math.max(1, t.done)).toFixed(3),
        machineBusy: +(t.busy / Math.max(1, t.cores)).toFixed(2),
        rejected: t.rejected,
      };
    });
  } finally {
    await Promise.all(epps.map((e) => stopChild(e.child)));
  }
}
