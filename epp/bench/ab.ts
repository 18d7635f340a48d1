/**
 * `KVROUTE_EPP_BASELINE=<checkout>/epp/dist/main.js npm run bench:ab -w epp [-- --quick]`: this build's EPP against a
 * baseline build, paired in the same invocation. Per pool size and prompt size both binaries run side by side (worker
 * mode, the same metrics servers, the same flags as `epp-bench.ts`), and `drivePaired` alternates the same client
 * between them in paired rounds (KVROUTE_AB_ROUNDS, 4 by default, even), so a shared machine's load falls on both alike
 * and their ratio holds where two benchmark runs minutes apart would not. As in `paired-rounds.ts`, which side goes
 * first alternates round by round (A B, B A, …) and each slice is a phase at one request in flight, an unmeasured
 * warm-up at 16 in flight (KVROUTE_AB_WARM_MS, 200 ms with --quick, else 1000) and the measured phase at 16 in flight.
 * (Before, A always went first and only the start was warmed: an A/A run of one build read B ÷ A 1.04-2.09.)
 *
 * Reported per cell: requests/s at 16 in flight of each (pooled over the rounds), B ÷ A as the median of the per-round
 * ratios with their min–max (`round-stats.ts`: each ratio comes from two slices seconds apart, and one disturbed round
 * cannot carry a median as it can a pooled ratio; the min–max is the noise to read it against), and the round trip at
 * one in flight. (CPU per request from /proc was tried and dropped: each process's scrape threads burn CPU by the
 * second, not by the request, and at 64-256 pods on a loaded machine they dominate it, idle rate subtracted or not.)
 * The absolute numbers are the machine's; read the ratio against its spread, and run the same build on both sides
 * (A/A, `KVROUTE_EPP_BASELINE=$PWD/epp/dist/main.js`) to see what noise alone reads on the machine.
 */
import * as os from 'os';
import { drivePaired, workload } from './extproc-client';
import { formatSpread, perRound, spread } from './round-stats';
import { envArgs, envNodeArgs, EPP_MAIN, forkTs, nextMessage, startEppProcess, stopChild } from './processes';

const QUICK = process.argv.includes('--quick');
const BASELINE = process.env.KVROUTE_EPP_BASELINE;
/** Extra EPP flags for A and for B (space-separated), e.g. the same build with a different scrape budget. */
const A_ARGS = envArgs('KVROUTE_AB_A_ARGS');
const B_ARGS = envArgs('KVROUTE_AB_B_ARGS');
/**
 * Node flags for A and for B (space-separated; empty for none), e.g. a larger young generation for one of them. Unset,
 * each runs with the flags the EPP is deployed with (`EPP_NODE_ARGS`).
 */
const A_NODE_ARGS = envNodeArgs('KVROUTE_AB_A_NODE_ARGS');
const B_NODE_ARGS = envNodeArgs('KVROUTE_AB_B_NODE_ARGS');
const PODS_ENV = process.env.BENCH_ENDPOINTS?.split(',').map(Number);
const PROMPTS_ENV = process.env.BENCH_PROMPTS?.split(',').map(Number);
const PODS = PODS_ENV ?? (QUICK ? [8, 256] : [8, 64, 256]);
const PROMPTS = PROMPTS_ENV ?? (QUICK ? [1024] : [1024, 16 * 1024, 128 * 1024]);
const PHASE_SECONDS = QUICK ? 1 : 3;
const ROUNDS = Number(process.env.KVROUTE_AB_ROUNDS ?? 4);
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 2 && ROUNDS % 2 === 0 && ROUNDS <= 100)) throw new Error(`KVROUTE_AB_ROUNDS: must be an even integer 2-100 (each side first as often), got ${process.env.KVROUTE_AB_ROUNDS}`);
const WARM_MS = Number(process.env.KVROUTE_AB_WARM_MS ?? (QUICK ? 200 : 1000));
if (!(Number.isInteger(WARM_MS) && WARM_MS >= 0 && WARM_MS <= 60_000)) throw new Error(`KVROUTE_AB_WARM_MS: must be an integer 0-60000 (milliseconds), got ${process.env.KVROUTE_AB_WARM_MS}`);

async function main(): Promise<void> {
  if (!BASELINE) throw new Error('KVROUTE_EPP_BASELINE: set it to the baseline build\'s epp/dist/main.js');
  console.log(`A/B on ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`A (baseline): ${BASELINE}\nB (this build): ${EPP_MAIN}\n${PHASE_SECONDS} s per phase and server in ${ROUNDS} paired rounds, A first in even rounds and B in odd ones, ${WARM_MS} ms of unmeasured load before each measured slice\n`);
  const metricsServers = forkTs('metrics-servers.ts', [String(Math.max(...PODS))]);
  const rows: string[] = [];
  try {
    const { ports } = await nextMessage<{ ports: number[] }>(metricsServers, 'ports');
    for (const n of PODS) {
      const a = await startEppProcess(ports.slice(0, n), 'worker', { binary: BASELINE, eppArgs: A_ARGS, nodeArgs: A_NODE_ARGS });
      const b = await startEppProcess(ports.slice(0, n), 'worker', { eppArgs: B_ARGS, nodeArgs: B_NODE_ARGS });
      try {
        for (const bytes of PROMPTS) {
          const { epp: A, floor: B } = await drivePaired(a.grpcPort, b.grpcPort, workload(bytes, 256), PHASE_SECONDS, 16, { rounds: ROUNDS, warmMs: WARM_MS });
          // A round in which A answered nothing (all rejected) has no ratio; the rejected column shows it.
          const ratio = spread(perRound(B.roundRps, A.roundRps).filter(Number.isFinite));
          const row = `| ${n} | ${bytes / 1024} KB | ${Math.round(A.rps)} | ${Math.round(B.rps)} | ${formatSpread(ratio)} | ${A.serialP50.toFixed(3)} / ${B.serialP50.toFixed(3)} ms | ${A.rejected} / ${B.rejected} |`;
          console.log(row);
          rows.push(row);
        }
      } finally {
        await Promise.all([stopChild(a.child), stopChild(b.child)]);
      }
    }
  } finally {
    metricsServers.disconnect();
    await stopChild(metricsServers);
  }
  console.log('\n| endpoints | prompt | A req/s (16 in flight) | B req/s | B ÷ A, median of rounds (min–max) | p50 at 1 in flight A / B | rejected A / B |\n|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
