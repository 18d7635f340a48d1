/**
 * What the shared session store costs a pick: request control's whole `route()` (parse the body, the prepare step that
 * reads the binding from a real `redis-server` on loopback, the cycle, the commit) for requests carrying a session id,
 * against the same with the in-memory table only, in one invocation, interleaved in rounds so machine noise hits both
 * alike. Shapes: returning sessions (1,000 sessions round-robin: one GETEX per pick, no write) and new sessions (every
 * pick a miss: a GETEX and a background SET), one pick at a time (the latency a request sees) and 16 in flight.
 *
 *   npm run bench:session-store -w epp [-- --quick]
 *
 * Goal (issue 10): the store adds at most 0.5 ms to a pick's p99 on loopback. Writes epp/bench/session-store-results.json.
 * `measureSessionStore` is the measurement itself, also run by `npm run bench -w epp -- --only replicas`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Replica } from '../test/replica';
import { RedisServer } from '../test/redis-server';

const FILTER = (store: string) => `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-filter
  parameters:
    ttl: 30m
${store}
- type: prefix-cache-scorer
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: session-affinity-filter
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: queue-scorer
`;

interface Cell {
  readonly mode: 'memory' | 'redis';
  readonly shape: 'returning' | 'new';
  readonly inFlight: number;
  readonly samples: number[];
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

let fresh = 0;
async function run(replica: Replica, shape: Cell['shape'], inFlight: number, n: number, out: number[]): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < n) {
      const i = next++;
      const session = shape === 'returning' ? `user-${i % 1000}` : `new-${fresh++}`;
      const t = process.hrtime.bigint();
      await replica.route(session);
      out.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }));
}

export interface SessionStoreRow {
  readonly shape: Cell['shape'];
  readonly inFlight: number;
  readonly memoryP50: number;
  readonly memoryP99: number;
  readonly redisP50: number;
  readonly redisP99: number;
  readonly addedP50: number;
  readonly addedP99: number;
}

export interface SessionStoreResult {
  readonly machine: string;
  readonly rounds: number;
  readonly perRound: number;
  /** Store reads that fell back to the local bindings during the run. */
  readonly fallbacks: number;
  readonly rows: SessionStoreRow[];
  /** The markdown table and notes printed by the tool. */
  readonly report: string[];
}

/**
 * The measurement: a real `redis-server` on loopback, one replica with the in-memory table and one with the shared
 * store, `rounds` interleaved rounds of `perRound` picks per cell; ms per pick.
 */
export async function measureSessionStore({ rounds, perRound }: { rounds: number; perRound: number }): Promise<SessionStoreResult> {
  const redis = await RedisServer.start();
  const memory = await Replica.start(FILTER(''), 'p0');
  const shared = await Replica.start(FILTER(`    sessionStore: {address: "${redis.url}", timeout: 5ms}`), 'p0');
  try {
    for (let i = 0; i < 200 && !(await shared.connected()); i++) await new Promise((r) => setTimeout(r, 10));
    if (!(await shared.connected())) throw new Error('the store did not connect');
    const cells: Cell[] = [];
    for (const shape of ['returning', 'new'] as const) {
      for (const inFlight of [1, 16]) {
        for (const mode of ['memory', 'redis'] as const) cells.push({ mode, shape, inFlight, samples: [] });
      }
    }
    const replicaOf = (mode: Cell['mode']) => (mode === 'memory' ? memory : shared);
    for (const cell of cells) await run(replicaOf(cell.mode), cell.shape, cell.inFlight, 1000, []); // warm-up
    for (let r = 0; r < rounds; r++) {
      // Alternate which mode runs first in each round.
      for (const cell of r % 2 === 0 ? cells : [...cells].reverse()) {
        await run(replicaOf(cell.mode), cell.shape, cell.inFlight, perRound, cell.samples);
      }
    }
    const fallbacks = await shared.fallbacks();
    const cpus = os.cpus();
    const machine = `${cpus.length} × ${cpus[0]?.model ?? 'unknown'}, node ${process.version}, ${os.platform()} ${os.release()}`;
    const report: string[] = [];
    report.push(`machine: ${machine}; redis-server on loopback; shared with other work, so compare within this run`);
    report.push(`${rounds} rounds × ${perRound} picks per cell, interleaved; ms per pick (request control's route())`);
    report.push('| sessions | in flight | memory p50 | memory p99 | redis p50 | redis p99 | added p50 | added p99 |');
    report.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    const rows: SessionStoreRow[] = [];
    for (const shape of ['returning', 'new'] as const) {
      for (const inFlight of [1, 16]) {
        const [m, s] = (['memory', 'redis'] as const).map((mode) =>
          cells.find((c) => c.mode === mode && c.shape === shape && c.inFlight === inFlight)!.samples.sort((a, b) => a - b));
        const row = {
          shape, inFlight,
          memoryP50: quantile(m!, 0.5), memoryP99: quantile(m!, 0.99),
          redisP50: quantile(s!, 0.5), redisP99: quantile(s!, 0.99),
        };
        rows.push({ ...row, addedP50: row.redisP50 - row.memoryP50, addedP99: row.redisP99 - row.memoryP99 });
        const f = (x: number) => x.toFixed(3);
        report.push(`| ${shape} | ${inFlight} | ${f(row.memoryP50)} | ${f(row.memoryP99)} | ${f(row.redisP50)} | ${f(row.redisP99)} | ${f(row.redisP50 - row.memoryP50)} | ${f(row.redisP99 - row.memoryP99)} |`);
      }
    }
    report.push(`store reads that fell back to local bindings during the run: ${fallbacks}`);
    return { machine, rounds, perRound, fallbacks, rows, report };
  } finally {
    await memory.stop();
    await shared.stop();
    await redis.stop();
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const { machine, rounds, perRound, fallbacks, rows, report } = await measureSessionStore({ rounds: quick ? 2 : 6, perRound: quick ? 1000 : 3000 });
  for (const line of report) console.log(line);
  fs.writeFileSync(path.join(__dirname, 'session-store-results.json'), `${JSON.stringify({ date: new Date().toISOString(), machine, rounds, perRound, fallbacks, rows }, null, 2)}\n`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
