/**
 * `npm run bench:cpu-budget -w epp -- [--endpoints 8,256] [--prompt 1024,16384] [--seconds 6]`: where the machine's CPU
 * goes per request, for the EPP and for the floor server driven by the same client, in alternating slices (as
 * `drivePaired`). On one machine the benchmark's processes share its cores: the client, the EPP's routing thread, its
 * other threads (the scrape worker, V8's and libuv's helpers), the 256 fake pods' metrics servers and the floor. A
 * ratio to the floor can only reach what that budget allows, so this prints, per slice kind, CPU µs per request of
 * each (from /proc, Linux; the routing thread is the task whose id is the process id) and how busy the machine was.
 * Also the idle cost: what scraping alone takes per second with nothing routed. Needs `npm run build`.
 *
 * With `KVROUTE_EPP_BASELINE=<checkout>/epp/dist/main.js`, instead: the scraping cost of that build and this one side by
 * side (`bench:ab` cannot show it: both EPPs scrape throughout, so each one's scraping loads the other's slices too).
 * Both run idle at once against the same metrics servers, and each one's CPU per completed scrape is read over the same
 * windows: the routing thread (what applying readings costs it) and the other threads (the scrape worker).
 * `--page-change-ms 20` makes each fake pod's page change every 20 ms instead of every second (rendered when scraped),
 * so nearly every scrape reads a changed page, as a busy pod's would.
 */
import * as os from 'os';
import { ExtProcClient, ImmediateResponse, pairedSideOrder, workload } from './extproc-client';
import { envNodeArgs, eppMetrics, forkTs, nextMessage, sleep, startEppProcess, stopChild } from './processes';
import { processCpu } from './proc-cpu';
import { machineTimes } from './replica-scaling';

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

function machineBusySeconds(): { busy: number; total: number } {
  const { busy, total } = machineTimes();
  return { busy: busy / 1000, total: total / 1000 };
}

interface Sample {
  requests: number;
  seconds: number;
  client: number;
  eppMain: number;
  eppOther: number;
  metricsServers: number;
  floor: number;
  machineBusy: number;
  machineTotal: number;
}

const empty = (): Sample => ({ requests: 0, seconds: 0, client: 0, eppMain: 0, eppOther: 0, metricsServers: 0, floor: 0, machineBusy: 0, machineTotal: 0 });

async function measure(pids: { epp: number; metrics: number; floor: number }, into: Sample, work: () => Promise<number>): Promise<void> {
  const e0 = processCpu(pids.epp);
  const m0 = processCpu(pids.metrics).all;
  const f0 = processCpu(pids.floor).all;
  const c0 = process.cpuUsage();
  const k0 = machineBusySeconds();
  const t0 = performance.now();
  into.requests += await work();
  into.seconds += (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const e1 = processCpu(pids.epp);
  const k1 = machineBusySeconds();
  into.client += (c.user + c.system) / 1e6;
  into.eppMain += e1.main - e0.main;
  into.eppOther += (e1.all - e1.main) - (e0.all - e0.main);
  into.metricsServers += processCpu(pids.metrics).all - m0;
  into.floor += processCpu(pids.floor).all - f0;
  into.machineBusy += k1.busy - k0.busy;
  into.machineTotal += k1.total - k0.total;
}

async function drive(client: ExtProcClient, bodies: Buffer[], ms: number, concurrency: number): Promise<number> {
  let done = 0;
  const deadline = performance.now() + ms;
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    for (let i = w; performance.now() < deadline; i += concurrency) {
      try {
        await client.exchange(bodies[i % bodies.length]!);
        done++;
      } catch (e) {
        if (!(e instanceof ImmediateResponse)) throw e;
      }
    }
  }));
  return done;
}

function row(label: string, s: Sample): string {
  const us = (x: number) => (s.requests === 0 ? '-' : ((x / s.requests) * 1e6).toFixed(0));
  const total = s.client + s.eppMain + s.eppOther + s.metricsServers + s.floor;
  return `| ${label} | ${(s.requests / s.seconds).toFixed(0)} | ${us(s.client)} | ${us(s.eppMain)} | ${us(s.eppOther)} | ${us(s.metricsServers)} | ${us(s.floor)} | ${us(total)} | ${(100 * s.machineBusy / s.machineTotal).toFixed(0)}% |`;
}

/**
 * Routing-thread CPU per request of two EPPs driven alternately by the same client (`rounds` slices each of `sliceMs`
 * at 16 in flight), net of each one's idle rate measured just before: unlike requests per second, CPU time per request
 * barely depends on how many other processes want the cores.
 */
async function routingCostAb(a: { child: { pid?: number }; grpcPort: number }, b: { child: { pid?: number }; grpcPort: number }, bytes: number, idleMainPerSecond: [number, number]): Promise<string> {
  const bodies = workload(bytes, 256);
  const eps = [a, b];
  const clients = eps.map((e) => new ExtProcClient(e.grpcPort));
  const acc = eps.map(() => ({ requests: 0, main: 0, seconds: 0 }));
  try {
    for (const c of clients) await drive(c, bodies, 500, 16); // warm-up
    for (let r = 0; r < 6; r++) {
      // A B, B A, …: either side first every round would measure it right after the other's burst (extproc-client.ts).
      for (const i of pairedSideOrder(r)) {
        const pid = eps[i]!.child.pid!;
        const m0 = processCpu(pid).main;
        const t0 = performance.now();
        acc[i]!.requests += await drive(clients[i]!, bodies, 1000, 16);
        acc[i]!.seconds += (performance.now() - t0) / 1000;
        acc[i]!.main += processCpu(pid).main - m0;
      }
    }
  } finally {
    for (const c of clients) c.close();
  }
  const us = acc.map((x, i) => ((x.main - idleMainPerSecond[i]! * x.seconds) / x.requests) * 1e6);
  const rps = acc.map((x) => x.requests / x.seconds);
  return `| ${bytes / 1024} KB | ${rps[0]!.toFixed(0)} / ${rps[1]!.toFixed(0)} | ${us[0]!.toFixed(0)} / ${us[1]!.toFixed(0)} (${(us[1]! / us[0]!).toFixed(2)}) |`;
}

/** The metrics servers' arguments: the pool, and `--page-change-ms` when given (busy pods). */
function metricsServerArgs(podCounts: number[]): string[] {
  const changeMs = flag('page-change-ms', '');
  return changeMs === '' ? [String(Math.max(...podCounts))] : [String(Math.max(...podCounts)), changeMs];
}

async function scrapeCostAb(baseline: string, podCounts: number[], seconds: number, prompts: number[]): Promise<void> {
  console.log(`idle scraping, A (baseline) ${baseline} vs B (this build); pages change every ${flag('page-change-ms', '1000')} ms`);
  const metricsServers = forkTs('metrics-servers.ts', metricsServerArgs(podCounts));
  const rows: string[] = [];
  const routing: string[] = [];
  try {
    const { ports } = await nextMessage<{ ports: number[] }>(metricsServers, 'ports');
    for (const n of podCounts) {
      const a = await startEppProcess(ports.slice(0, n), 'worker', { binary: baseline, nodeArgs: envNodeArgs('BENCH_NODE_ARGS') });
      const b = await startEppProcess(ports.slice(0, n), 'worker', { nodeArgs: envNodeArgs('BENCH_NODE_ARGS') });
      try {
        await sleep(1000);
        const before = await Promise.all([a, b].map(async (e) => ({ cpu: processCpu(e.child.pid!), scrapes: (await eppMetrics(e)).scrapes })));
        const t0 = performance.now();
        await sleep(seconds * 1000);
        const after = await Promise.all([a, b].map(async (e) => ({ cpu: processCpu(e.child.pid!), scrapes: (await eppMetrics(e)).scrapes })));
        const s = (performance.now() - t0) / 1000;
        const cells = [0, 1].map((i) => {
          const scrapes = after[i]!.scrapes - before[i]!.scrapes;
          const main = after[i]!.cpu.main - before[i]!.cpu.main;
          const other = (after[i]!.cpu.all - after[i]!.cpu.main) - (before[i]!.cpu.all - before[i]!.cpu.main);
          return { perSecond: scrapes / s, mainUs: (main / scrapes) * 1e6, otherUs: (other / scrapes) * 1e6, otherMsPerS: (other / s) * 1000 };
        });
        const [A, B] = cells as [typeof cells[0], typeof cells[0]];
        rows.push(`| ${n} | ${A.perSecond.toFixed(0)} / ${B.perSecond.toFixed(0)} | ${A.otherUs.toFixed(0)} / ${B.otherUs.toFixed(0)} (${(B.otherUs / A.otherUs).toFixed(2)}) | ${A.otherMsPerS.toFixed(0)} / ${B.otherMsPerS.toFixed(0)} | ${A.mainUs.toFixed(1)} / ${B.mainUs.toFixed(1)} |`);
        console.log(rows[rows.length - 1]);
        const idleMain = [0, 1].map((i) => (after[i]!.cpu.main - before[i]!.cpu.main) / s) as [number, number];
        for (const bytes of prompts) {
          routing.push(`| ${n} ${await routingCostAb(a, b, bytes, idleMain)}`);
          console.log(routing[routing.length - 1]);
        }
      } finally {
        await Promise.all([stopChild(a.child), stopChild(b.child)]);
      }
    }
  } finally {
    metricsServers.disconnect();
    await stopChild(metricsServers);
  }
  console.log('\n| pods | scrapes/s A / B | other threads µs per scrape A / B (B ÷ A) | other threads ms of CPU a second A / B | routing thread µs per scrape A / B |\n|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
  console.log('\nRouting thread CPU per request at 16 in flight, net of its idle rate (6 alternating 1 s slices each):\n\n| pods | prompt | req/s A / B | µs per request A / B (B ÷ A) |\n|---:|---:|---:|---:|');
  for (const r of routing) console.log(r);
}

async function main(): Promise<void> {
  const baseline = process.env.KVROUTE_EPP_BASELINE;
  if (baseline !== undefined) {
    console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    return scrapeCostAb(baseline, flag('endpoints', '8,256').split(',').map(Number), Number(flag('seconds', '6')), flag('prompt', '1024,16384').split(',').map(Number));
  }
  const podCounts = flag('endpoints', '8,256').split(',').map(Number);
  const prompts = flag('prompt', '1024,16384').split(',').map(Number);
  const seconds = Number(flag('seconds', '6'));
  // Even, so that the EPP and the floor each go first in half of the rounds (pairedSideOrder).
  const rounds = 4;
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const metricsServers = forkTs('metrics-servers.ts', metricsServerArgs(podCounts));
  // The floor under the same Node flags as the EPPs (as deployed, or BENCH_NODE_ARGS), as in epp-bench.ts.
  const floorServer = forkTs('floor-server.ts', [], envNodeArgs('BENCH_NODE_ARGS'));
  const rows: string[] = [];
  try {
    const { ports } = await nextMessage<{ ports: number[] }>(metricsServers, 'ports');
    const { port: floorPort } = await nextMessage<{ port: number }>(floorServer, 'port');
    for (const n of podCounts) {
      const epp = await startEppProcess(ports.slice(0, n), 'worker', { nodeArgs: envNodeArgs('BENCH_NODE_ARGS') });
      const pids = { epp: epp.child.pid!, metrics: metricsServers.pid!, floor: floorServer.pid! };
      try {
        const idle = empty();
        await measure(pids, idle, async () => {
          await sleep(2000);
          return 0;
        });
        const per = (x: number) => ((x / idle.seconds) * 1000).toFixed(0);
        rows.push(`| ${n} pods idle (ms of CPU a second) | - | ${per(idle.client)} | ${per(idle.eppMain)} | ${per(idle.eppOther)} | ${per(idle.metricsServers)} | ${per(idle.floor)} | ${per(idle.client + idle.eppMain + idle.eppOther + idle.metricsServers + idle.floor)} | ${(100 * idle.machineBusy / idle.machineTotal).toFixed(0)}% |`);
        console.log(rows[rows.length - 1]);
        for (const bytes of prompts) {
          const bodies = workload(bytes, 256);
          const clients = { epp: new ExtProcClient(epp.grpcPort), floor: new ExtProcClient(floorPort) };
          const acc = { epp: empty(), floor: empty() };
          try {
            for (const k of ['epp', 'floor'] as const) await drive(clients[k], bodies, 500, 16); // warm-up
            for (let r = 0; r < rounds; r++) {
              for (const k of pairedSideOrder(r).map((i) => (['epp', 'floor'] as const)[i])) {
                await measure(pids, acc[k], () => drive(clients[k], bodies, (seconds * 1000) / rounds, 16));
              }
            }
          } finally {
            clients.epp.close();
            clients.floor.close();
          }
          for (const k of ['epp', 'floor'] as const) {
            rows.push(row(`${n} pods, ${bytes / 1024} KB, ${k}`, acc[k]));
            console.log(rows[rows.length - 1]);
          }
        }
      } finally {
        await stopChild(epp.child);
      }
    }
  } finally {
    metricsServers.disconnect();
    floorServer.disconnect();
    await Promise.all([stopChild(metricsServers), stopChild(floorServer)]);
  }
  console.log('\nCPU µs per request (idle rows: ms of CPU per second), 16 in flight:\n');
  console.log('| slice | req/s | client | EPP routing thread | EPP other threads | metrics servers | floor | all | machine busy |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
