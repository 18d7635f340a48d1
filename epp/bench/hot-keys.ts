/**
 * `npm run bench:hot-keys -w epp`: what reusing a key costs the EPP's recency-ordered tables as they grow. Three cases,
 * each at three table sizes, µs per operation, median of 5 runs (3 for the many:1 case):
 * - session-load-scorer: requests with unique session ids and, every other one, the same chatty session (an agent
 *   loop), at 1,024 / 8,192 / 65,536 sessions tracked (the default capacity);
 * - the KV block index: per request an 8-block `BlockStored` of a new chain and a routed touch of a shared 4-block
 *   system prompt, at 1,024 / 16,384 / 65,536 keys on the pod;
 * - the index's many:1 mode (64-token configured blocks, 16-token engine blocks): per event a 64-token continuation of a
 *   48-token system prompt that ends inside a configured block (its carry continued every time), at pod capacity
 *   256 / 2,048 / 16,384.
 * With `KVROUTE_EPP_BASELINE=<checkout>/epp/dist/main.js` the baseline build runs each case alternately in the same
 * invocation, and the table gives both and their ratio (session 42: a `Map` moved by `delete(key); set(key, …)`, whose
 * dead copies V8 keeps in the key's hash chain until a rehash, against the linked list and stamps that replaced it).
 */
import * as os from 'os';
import * as path from 'path';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Build {
  readonly SessionLoadScorer: Json;
  readonly CycleState: Json;
  readonly KvBlockIndex: Json;
  readonly rootKey: (model: string) => number;
  readonly blockKey: (parent: number, ids: ArrayLike<number>, from: number, to: number) => number;
}

function load(dist: string): Build {
  /* eslint-disable @typescript-eslint/no-require-imports */
  return {
    SessionLoadScorer: require(path.join(dist, 'scheduling/plugins/session-load-scorer')).SessionLoadScorer,
    CycleState: require(path.join(dist, 'scheduling/framework')).CycleState,
    KvBlockIndex: require(path.join(dist, 'kvindex/kv-block-index')).KvBlockIndex,
    rootKey: require(path.join(dist, 'scheduling/plugins/prefix-hash')).rootKey,
    blockKey: require(path.join(dist, 'scheduling/plugins/prefix-hash')).blockKey,
  };
  /* eslint-enable @typescript-eslint/no-require-imports */
}

const PODS = Array.from({ length: 16 }, (_, i) => ({ endpoint: { key: `p${i}:8000`, name: `p${i}`, address: `p${i}`, port: 8000, labels: {} }, metrics: {}, activeRequests: 0 }));

function sessionLoad(b: Build, tracked: number): number {
  let now = 1_700_000_000_000;
  const scorer = new b.SessionLoadScorer('s', { headers: ['x-session-id'], liveWindow: '5m', capacity: tracked, minRequests: 1 }, { now: () => now, logger: { debug() {}, info() {}, warn() {} } });
  const out = new Float64Array(PODS.length);
  let id = 0;
  const one = (session: string) => {
    const cycle = { request: { requestId: 'r', model: 'm', prompt: 'x', headers: { 'x-session-id': session } }, state: new b.CycleState() };
    scorer.scoreInto(cycle, PODS, out);
    scorer.postCycle(cycle, { targets: [PODS[0]] });
    now += 1;
  };
  for (let i = 0; i < 2 * tracked; i++) one(`u${id++}`);
  const ops = 50_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) one(i % 2 === 0 ? 'agent' : `u${id++}`);
  return Number(process.hrtime.bigint() - t0) / ops / 1_000;
}

function hotPrefix(b: Build, capacity: number): number {
  const bs = 16;
  const root = b.rootKey('');
  const index = new b.KvBlockIndex(bs, capacity);
  const system = Array.from({ length: 4 * bs }, (_, i) => i + 1);
  index.store('pod', { type: 'BlockStored', blockHashes: ['s0', 's1', 's2', 's3'], parentBlockHash: null, tokenIds: system, blockSize: bs, loraId: null }, root);
  const hot: number[] = [];
  let parent = root;
  for (let k = 0; k < 4; k++) hot.push((parent = b.blockKey(parent, system, k * bs, (k + 1) * bs)));
  let hash = 0;
  let token = 100_000;
  const one = () => {
    const ids = Array.from({ length: 8 * bs }, () => token++);
    index.store('pod', { type: 'BlockStored', blockHashes: Array.from({ length: 8 }, () => `h${hash++}`), parentBlockHash: 's3', tokenIds: ids, blockSize: bs, loraId: null }, root);
    index.touch('pod', hot, 4);
  };
  for (let i = 0; i < (2 * capacity) / 8; i++) one();
  const ops = 20_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) one();
  return Number(process.hrtime.bigint() - t0) / ops / 1_000;
}

function carriedPrefix(b: Build, capacity: number): number {
  const root = b.rootKey('');
  const index = new b.KvBlockIndex(64, capacity);
  let token = 100_000;
  let hash = 0;
  const prefix = Array.from({ length: 48 }, (_, i) => i + 1);
  index.store('pod', { type: 'BlockStored', blockHashes: ['p0', 'p1', 'p2'], parentBlockHash: null, tokenIds: prefix, blockSize: 16, loraId: null }, root);
  const one = () => {
    const ids = Array.from({ length: 64 }, () => token++);
    const hashes = [`c${hash++}`, `c${hash++}`, `c${hash++}`, `c${hash++}`];
    index.store('pod', { type: 'BlockStored', blockHashes: hashes, parentBlockHash: 'p2', tokenIds: ids, blockSize: 16, loraId: null }, root);
  };
  for (let i = 0; i < 3 * capacity; i++) one();
  const ops = 20_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) one();
  return Number(process.hrtime.bigint() - t0) / ops / 1_000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function main(): void {
  const current = load(path.join(__dirname, '..', 'dist'));
  const baselineMain = process.env.KVROUTE_EPP_BASELINE;
  const baseline = baselineMain ? load(path.dirname(baselineMain)) : undefined;
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (baseline) console.log(`baseline: ${baselineMain}`);
  console.log(`\n| case | size | µs |${baseline ? ' baseline µs | × baseline |' : ''}`);
  console.log(`|---|---:|---:|${baseline ? '---:|---:|' : ''}`);
  const cases: [string, (b: Build, n: number) => number, number[], number][] = [
    ['session-load-scorer, one chatty session (sessions tracked)', sessionLoad, [1_024, 8_192, 65_536], 5],
    ['KV index, hot 4-block prefix touched (keys on the pod)', hotPrefix, [1_024, 16_384, 65_536], 5],
    ['KV index many:1, carried system prompt (pod capacity)', carriedPrefix, [256, 2_048, 16_384], 3],
  ];
  for (const [name, run, sizes, runs] of cases) {
    for (const n of sizes) {
      const mine: number[] = [];
      const theirs: number[] = [];
      for (let r = 0; r < runs; r++) {
        mine.push(run(current, n));
        if (baseline) theirs.push(run(baseline, n));
      }
      const cells = [name, String(n), median(mine).toFixed(1)];
      if (baseline) cells.push(median(theirs).toFixed(1), (median(mine) / median(theirs)).toFixed(2));
      console.log(`| ${cells.join(' | ')} |`);
    }
  }
}

main();
