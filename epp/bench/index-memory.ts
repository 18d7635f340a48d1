/**
 * `npm run bench:index-memory -w epp`: what the approximate prefix index (`prefix-cache-scorer`) and the precise one
 * cost in memory when full, for 8, 64 and 256 pods, against the EPP Deployment's memory limit.
 *
 * Each cell runs in its own `node --expose-gc` process: it builds the scorer from the shipped default parameters,
 * tells it about the pods (each candidate's scraped `num_gpu_blocks` and `block_size`, as the scorer sees them), then
 * records prompts on every pod until each holds its full capacity, and measures `process.memoryUsage()` after
 * `global.gc()` against a measurement taken before: V8 heap plus array buffers (the index's typed arrays live outside
 * the heap), and the process's RSS. Then, on the full index, it times recording prompts (each new block evicts one)
 * and matching prompts against all pods.
 *
 * Cells:
 * - `baseline`: the index of a git revision (`--baseline REV`, default the commit before this bench existed), loaded
 *   from `git show`, with its fixed `lruCapacityPerServer` (31,250) on every pod: the "before".
 * - `fixed`: this index with `autoTune: false`, so the same 31,250 entries a pod as the baseline (bytes per entry
 *   compare directly).
 * - `gpu-blocks`: this index sized from each pod's `num_gpu_blocks` (`--gpu-blocks`, default 40,000 and 400,000; see
 *   README "Prefix index memory" for why) under the default `maxIndexEntries`.
 * - `precise`: the precise scorer's `KvBlockIndex`, filled through `BlockStored` events (memory only), under its own
 *   default `maxIndexEntries`.
 * - `epp`: the whole EPP process (`startEpp`, default config, real scrapes of loopback vLLM `/metrics` stand-ins) with
 *   its prefix index filled to capacity: its RSS against the limit, idle and full (memory only).
 *
 * Memory numbers are deterministic up to allocator noise; the timings are medians on a shared machine and only their
 * ratios within one run mean anything. Prints a table and writes `bench/index-memory-results.json`.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { FakeVllmServer } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { DEFAULT_TIER_WEIGHTS, KvBlockIndex } from '../src/kvindex/kv-block-index';
import { startEpp } from '../src/runner';
import { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { rootKey } from '../src/scheduling/plugins/prefix-hash';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The revision whose index is the baseline: the one this bench was written against. */
const DEFAULT_BASELINE = '212c786';
/** `lib/endpoint-picker.ts`: the EPP container's memory limit (`memory`, default '1Gi'). */
const DEPLOYMENT_LIMIT_BYTES = 1024 ** 3;
const BLOCKS_PER_PROMPT = 64;
const SHARED_BLOCKS = 16;
const SHARED_PREFIXES = 64;

interface Cell {
  readonly impl: 'baseline' | 'fixed' | 'gpu-blocks' | 'precise' | 'epp';
  readonly pods: number;
  /** Each pod's `num_gpu_blocks` (read by `gpu-blocks` only). */
  readonly gpuBlocks: number;
}

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

/** Deterministic 53-bit keys, like the index's block hashes. */
function keys(seed: number): () => number {
  let x = seed >>> 0 || 1;
  const next32 = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  return () => (next32() >>> 11) * 2 ** 32 + next32();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The index API both the baseline and the current index offer. */
interface AnyIndex {
  readonly size: number;
  record(endpointKey: string, blocks: readonly number[]): void;
  longestPrefixMatches(blocks: readonly number[], candidates: ReadonlySet<string>): Map<string, number>;
  blocksOf(endpointKey: string): number[];
}

function loadBaseline(revision: string): new (capacity: number) => AnyIndex {
  const source = execFileSync('git', ['show', `${revision}:epp/src/scheduling/plugins/prefix-index.ts`], {
    cwd: __dirname,
    encoding: 'utf8',
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-index-baseline-'));
  const file = path.join(dir, 'prefix-index.ts');
  fs.writeFileSync(file, source);
  return (require(file) as { PrefixBlockIndex: new (capacity: number) => AnyIndex }).PrefixBlockIndex;
}

function memory(): { heap: number; arrayBuffers: number; rss: number } {
  const gc = (global as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

/**
 * The precise index (`precise-prefix-cache-scorer`'s `KvBlockIndex`) filled the way vLLM fills it: `BlockStored` events
 * of 16-token blocks with vLLM's decimal engine hashes, one chain of 64 blocks per prompt, the first 16 blocks shared.
 */
function runPreciseCell(cell: Cell, blockSize: number): Json {
  const podKeys = Array.from({ length: cell.pods }, (_, i) => `10.0.${i >> 8}.${i & 255}:8000`);
  const nextToken = keys(5);
  const sharedTokens = Array.from({ length: SHARED_PREFIXES }, () => Array.from({ length: SHARED_BLOCKS * blockSize }, () => nextToken() % 151_000));
  const tokenIds = new Array<number>(BLOCKS_PER_PROMPT * blockSize);
  const root = rootKey('');
  const before = memory();
  const parameters = resolvePluginParameters('precise-prefix-cache-scorer', {});
  const index = new KvBlockIndex(blockSize, parameters.maxBlocksPerPod, DEFAULT_TIER_WEIGHTS, parameters.maxIndexEntries);
  for (const pod of podKeys) index.addPod(pod);
  for (const pod of podKeys) index.setCapacity(pod, cell.gpuBlocks);
  let hash = 1_000_000_000_000_000_000n;
  let choose = 1;
  const started = process.hrtime.bigint();
  for (const pod of podKeys) {
    const capacity = index.capacityOf(pod)!;
    const sharedSeen = new Set<number>();
    let held = 0;
    while (held < capacity) {
      const family = (choose = (choose * 48271) % 2147483647) % SHARED_PREFIXES;
      const prefix = sharedTokens[family]!;
      for (let i = 0; i < prefix.length; i++) tokenIds[i] = prefix[i]!;
      for (let i = prefix.length; i < tokenIds.length; i++) tokenIds[i] = nextToken() % 151_000;
      // vLLM hashes a block from its parent and tokens: equal prefixes get equal engine hashes on every pod.
      const blockHashes = Array.from({ length: BLOCKS_PER_PROMPT }, (_, b) =>
        String(b < SHARED_BLOCKS ? BigInt(family * 1000 + b) : (hash += 1n)));
      index.store(pod, { type: 'BlockStored', blockHashes, parentBlockHash: null, tokenIds, blockSize, loraId: null }, root);
      held += BLOCKS_PER_PROMPT - SHARED_BLOCKS + (sharedSeen.has(family) ? 0 : SHARED_BLOCKS);
      sharedSeen.add(family);
    }
  }
  const fillSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = memory();
  const entries = index.size;
  const indexBytes = after.heap - before.heap + (after.arrayBuffers - before.arrayBuffers);
  return {
    impl: cell.impl,
    pods: cell.pods,
    numGpuBlocks: cell.gpuBlocks,
    capacityPerPod: index.capacityOf(podKeys[0]!),
    entries,
    indexBytes,
    bytesPerEntry: indexBytes / entries,
    heapBytes: after.heap,
    arrayBufferBytes: after.arrayBuffers,
    rssBytes: after.rss,
    rssUnderLimit: after.rss < DEPLOYMENT_LIMIT_BYTES,
    fillSeconds,
  };
}

/**
 * The whole EPP (`startEpp` with its default config, gRPC, health and metrics servers, scraping every pod's /metrics
 * from a loopback vLLM stand-in), its prefix index filled to the budget: the process's RSS is what the Deployment's
 * limit meets. The stand-ins (tiny HTTP servers) live in the same process.
 */
async function runEppCell(cell: Cell, blockSize: number): Promise<Json> {
  const servers = await Promise.all(Array.from({ length: cell.pods }, () =>
    FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1, numGpuBlocks: cell.gpuBlocks }], blockSize })));
  const options = parseArgs(['--endpoints', servers.map((s) => `127.0.0.1:${s.port}`).join(','), '--grpc-port', '0',
    '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '1s'])!;
  const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
  const epp = await startEpp(options, silent);
  const deadline = Date.now() + 60_000;
  while (!epp.datastore.snapshot().every((s) => s.metrics.numGpuBlocks !== undefined)) {
    if (Date.now() > deadline) throw new Error('the EPP did not scrape every pod within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const scorer = epp.scheduler.plugins.get('prefix-cache-scorer') as PrefixCacheScorer;
  // One scheduling cycle's worth of scoring: the scorer reads every candidate's scraped cache_config_info.
  scorer.score({ request: { requestId: 'r', model: 'm', prompt: 'x', headers: {} }, state: new CycleState() }, epp.datastore.snapshot());
  const podKeys = servers.map((s) => `127.0.0.1:${s.port}`);
  const idle = memory();
  const prompt = new Array<number>(BLOCKS_PER_PROMPT);
  const nextKey = keys(11);
  for (const pod of podKeys) {
    const capacity = scorer.index.capacityOf(pod) ?? 0;
    let held = 0;
    while (held < capacity) {
      // Unique blocks only: the worst case for memory (no entry shares a block key with another pod's).
      for (let i = 0; i < BLOCKS_PER_PROMPT; i++) prompt[i] = nextKey();
      scorer.index.record(pod, prompt);
      held += BLOCKS_PER_PROMPT;
    }
  }
  const full = memory();
  await epp.stop();
  await Promise.all(servers.map((s) => s.close()));
  return {
    impl: cell.impl,
    pods: cell.pods,
    numGpuBlocks: cell.gpuBlocks,
    capacityPerPod: scorer.index.capacityOf(podKeys[0]!),
    entries: scorer.index.size,
    indexBytes: full.heap - idle.heap + (full.arrayBuffers - idle.arrayBuffers),
    bytesPerEntry: (full.heap - idle.heap + (full.arrayBuffers - idle.arrayBuffers)) / scorer.index.size,
    idleRssBytes: idle.rss,
    heapBytes: full.heap,
    arrayBufferBytes: full.arrayBuffers,
    rssBytes: full.rss,
    rssUnderLimit: full.rss < DEPLOYMENT_LIMIT_BYTES,
  };
}

function runCell(cell: Cell, blockSize: number, baseline: string): Json | Promise<Json> {
  if (cell.impl === 'precise') return runPreciseCell(cell, blockSize);
  if (cell.impl === 'epp') return runEppCell(cell, blockSize);
  const { gpuBlocks } = cell;
  const podKeys = Array.from({ length: cell.pods }, (_, i) => `10.0.${i >> 8}.${i & 255}:8000`);
  // Shared system-prompt chains, generated before the first measurement so they are not counted.
  const nextShared = keys(7);
  const shared = Array.from({ length: SHARED_PREFIXES }, () => Array.from({ length: SHARED_BLOCKS }, nextShared));
  const prompt = new Array<number>(BLOCKS_PER_PROMPT);
  const BaselineIndex = cell.impl === 'baseline' ? loadBaseline(baseline) : undefined;
  const before = memory();

  let index: AnyIndex;
  let capacityOf: (key: string) => number;
  let scorer: PrefixCacheScorer | undefined;
  if (BaselineIndex !== undefined) {
    index = new BaselineIndex(31250);
    capacityOf = () => 31250;
  } else {
    const parameters = resolvePluginParameters('prefix-cache-scorer', cell.impl === 'fixed' ? { autoTune: false } : {});
    scorer = new PrefixCacheScorer('prefix-cache-scorer', parameters, NOOP_SCHEDULING_METRICS);
    const candidates: EndpointSnapshot[] = podKeys.map((key) => ({
      endpoint: { key, name: key, namespace: '', address: key.split(':')[0]!, port: 8000, labels: {} },
      metrics: { ...EMPTY_METRICS, numGpuBlocks: gpuBlocks, blockSize },
      activeRequests: 0,
    }));
    for (const candidate of candidates) scorer.addEndpoint(candidate.endpoint);
    // One scheduling cycle: the scorer reads every candidate's cache_config_info as in production.
    scorer.score({ request: { requestId: 'r', model: 'm', prompt: 'x', headers: {} }, state: new CycleState() }, candidates);
    const current = scorer.index;
    index = current;
    capacityOf = (key) => current.capacityOf(key) ?? 0;
  }

  // Fill every pod to its capacity: 16 blocks of a shared prefix, then 48 blocks of its own, per prompt.
  const nextKey = keys(11);
  let choose = 1;
  const started = process.hrtime.bigint();
  for (const pod of podKeys) {
    const capacity = capacityOf(pod);
    const sharedSeen = new Set<number>();
    let held = 0;
    while (held < capacity) {
      const family = (choose = (choose * 48271) % 2147483647) % SHARED_PREFIXES;
      const prefix = shared[family]!;
      for (let i = 0; i < SHARED_BLOCKS; i++) prompt[i] = prefix[i]!;
      for (let i = SHARED_BLOCKS; i < BLOCKS_PER_PROMPT; i++) prompt[i] = nextKey();
      index.record(pod, prompt);
      held += BLOCKS_PER_PROMPT - SHARED_BLOCKS + (sharedSeen.has(family) ? 0 : SHARED_BLOCKS);
      sharedSeen.add(family);
    }
  }
  const fillSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = memory();
  const entries = index.size;
  const indexBytes = after.heap - before.heap + (after.arrayBuffers - before.arrayBuffers);

  // Timings on the full index: matching a recent prompt of a random pod against all pods, and recording new prompts.
  const all = new Set(podKeys);
  const lookups: number[] = [];
  const probes = podKeys.slice(0, Math.min(64, podKeys.length)).map((pod) => index.blocksOf(pod).slice(-BLOCKS_PER_PROMPT));
  for (let round = 0; round < 20; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 100; i++) index.longestPrefixMatches(probes[(round * 100 + i) % probes.length]!, all);
    lookups.push(Number(process.hrtime.bigint() - t0) / 100);
  }
  const records: number[] = [];
  for (let round = 0; round < 20; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 100; i++) {
      for (let b = 0; b < BLOCKS_PER_PROMPT; b++) prompt[b] = nextKey();
      index.record(podKeys[(round * 100 + i) % podKeys.length]!, prompt);
    }
    records.push(Number(process.hrtime.bigint() - t0) / (100 * BLOCKS_PER_PROMPT));
  }
  const hit = index.longestPrefixMatches(probes[0]!, all).get(podKeys[0]!) ?? 0;
  return {
    impl: cell.impl,
    pods: cell.pods,
    numGpuBlocks: cell.impl === 'gpu-blocks' ? gpuBlocks : null,
    capacityPerPod: capacityOf(podKeys[0]!),
    entries,
    indexBytes,
    bytesPerEntry: indexBytes / entries,
    heapBytes: after.heap,
    arrayBufferBytes: after.arrayBuffers,
    rssBytes: after.rss,
    rssUnderLimit: after.rss < DEPLOYMENT_LIMIT_BYTES,
    fillSeconds,
    lookupMedianUs: median(lookups) / 1000,
    recordMedianNsPerBlock: median(records),
    /** Sanity: a pod's most recent prompt matches in full on it. */
    probeMatchedBlocks: hit,
  };
}

function table(rows: Json[]): string {
  const mb = (bytes: number) => (bytes / 1024 ** 2).toFixed(0);
  const lines = [
    '| index | pods | num_gpu_blocks | entries/pod | entries | index MiB | bytes/entry | RSS MiB | RSS < 1 GiB | match µs (p50) | record ns/block (p50) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.impl} | ${r.pods} | ${r.numGpuBlocks ?? '–'} | ${r.capacityPerPod} | ${r.entries} | ${mb(r.indexBytes)} | ${r.bytesPerEntry.toFixed(1)} | ` +
        `${mb(r.rssBytes)} | ${r.rssUnderLimit ? 'yes' : '**no**'} | ${r.lookupMedianUs?.toFixed(1) ?? '–'} | ${r.recordMedianNsPerBlock?.toFixed(0) ?? '–'} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const gpuBlocks = (argument('gpu-blocks') ?? '40000,400000').split(',').map(Number);
  const blockSize = Number(argument('block-size') ?? 16);
  const baseline = argument('baseline') ?? DEFAULT_BASELINE;
  const child = argument('child');
  if (child !== undefined) {
    const [impl, pods, blocks] = child.split(':') as [Cell['impl'], string, string];
    const row = await runCell({ impl, pods: Number(pods), gpuBlocks: Number(blocks) }, blockSize, baseline);
    process.stdout.write(JSON.stringify(row));
    return;
  }
  const podCounts = (argument('pods') ?? '8,64,256').split(',').map(Number);
  const impls = (argument('impls') ?? 'baseline,fixed,gpu-blocks,precise,epp').split(',') as Cell['impl'][];
  const rows: Json[] = [];
  const cells: Cell[] = [];
  for (const impl of impls) {
    for (const blocks of impl === 'gpu-blocks' || impl === 'precise' || impl === 'epp' ? gpuBlocks : [0]) {
      for (const pods of podCounts) cells.push({ impl, pods, gpuBlocks: blocks });
    }
  }
  for (const { impl, pods, gpuBlocks: blocks } of cells) {
    const run = spawnSync(
      process.execPath,
      ['--expose-gc', '--max-old-space-size=4096', '-r', 'ts-node/register/transpile-only', __filename,
        '--child', `${impl}:${pods}:${blocks}`, '--block-size', String(blockSize), '--baseline', baseline],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    if (run.status !== 0) throw new Error(`cell ${impl}:${pods} failed:\n${run.stderr}`);
    const row = JSON.parse(run.stdout) as Json;
    rows.push(row);
    process.stderr.write(`${impl}${blocks > 0 ? ` (${blocks})` : ''} × ${pods} pods: ${(row.indexBytes / 1024 ** 2).toFixed(0)} MiB, ${row.bytesPerEntry.toFixed(1)} B/entry\n`);
  }
  const cpus = os.cpus();
  const results = {
    date: new Date().toISOString(),
    machine: { cpu: cpus[0]?.model, cores: cpus.length, memoryBytes: os.totalmem(), node: process.version, platform: `${os.platform()} ${os.release()}` },
    assumptions: {
      numGpuBlocks: gpuBlocks,
      numGpuBlocksWhy: 'Qwen3-0.6B on an 80 GB H100 at 0.9 utilization: ~66 GiB of KV ÷ 112 KiB a token (28 layers × 8 KV heads × 128 × 2 × bf16) ≈ 620k tokens ≈ 39k blocks of 16; 400k: a 10× larger cache, where the budget binds',
      blockSizeTokens: blockSize,
      deploymentMemoryLimitBytes: DEPLOYMENT_LIMIT_BYTES,
      prompt: `${BLOCKS_PER_PROMPT} blocks: ${SHARED_BLOCKS} from one of ${SHARED_PREFIXES} shared prefixes, the rest unique`,
      baseline,
    },
    rows,
  };
  const out = path.join(__dirname, 'index-memory-results.json');
  fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${table(rows)}\n\nmachine: ${results.machine.cpu} × ${results.machine.cores}, node ${results.machine.node}; wrote ${out}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
