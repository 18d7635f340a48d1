/**
 * `KVROUTE_EPP_BASELINE=<checkout>/epp/dist/main.js npm run bench:ab -w epp [-- --quick]`: this build's EPP against a
 * baseline build, paired in the same invocation. Per pool size and prompt size both binaries run side by side (worker
 * mode, the same metrics servers, the same flags as `epp-bench.ts`), and `drivePaired` alternates the same client
 * between them in short slices, so a shared machine's load falls on both alike and their ratio holds where two
 * benchmark runs minutes apart would not. Reported: requests/s at 16 in flight of each and the ratio, and the round
 * trip at one in flight. (CPU per request from /proc was tried and dropped: each process's scrape threads burn CPU by
 * the second, not by the request, and at 64-256 pods on a loaded machine they dominate it, idle rate subtracted or not.)
 * The absolute numbers are the machine's; read the ratio, and repeat runs on a busy machine.
 */
import * as os from 'os';
import { drivePaired, workload } from './extproc-client';
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

async function main(): Promise<void> {
  if (!BASELINE) throw new Error('KVROUTE_EPP_BASELINE: set it to the baseline build\'s epp/dist/main.js');
  console.log(`A/B on ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`A (baseline): ${BASELINE}\nB (this build): ${EPP_MAIN}\n${PHASE_SECONDS} s per phase and server, alternating slices\n`);
  const metricsServers = forkTs('metrics-servers.ts', [String(Math.max(...PODS))]);
  const rows: string[] = [];
  try {
    const { ports } = await nextMessage<{ ports: number[] }>(metricsServers, 'ports');
    for (const n of PODS) {
      const a = await startEppProcess(ports.slice(0, n), 'worker', { binary: BASELINE, eppArgs: A_ARGS, nodeArgs: A_NODE_ARGS });
      const b = await startEppProcess(ports.slice(0, n), 'worker', { eppArgs: B_ARGS, nodeArgs: B_NODE_ARGS });
      try {
        for (const bytes of PROMPTS) {
          const { epp: A, floor: B } = await drivePaired(a.grpcPort, b.grpcPort, workload(bytes, 256), PHASE_SECONDS, 16);
          const row = `| ${n} | ${bytes / 1024} KB | ${Math.round(A.rps)} | ${Math.round(B.rps)} | ${(B.rps / A.rps).toFixed(2)} | ${A.serialP50.toFixed(3)} / ${B.serialP50.toFixed(3)} ms | ${A.rejected} / ${B.rejected} |`;
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
  console.log('\n| endpoints | prompt | A req/s (16 in flight) | B req/s | B ÷ A | p50 at 1 in flight A / B | rejected A / B |\n|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
