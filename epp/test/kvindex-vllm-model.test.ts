/**
 * The precise prefix index against a reference model of vLLM's KV cache, under long random event streams.
 *
 * Each endpoint (a pod, or one data-parallel rank of one) runs a small block pool as vLLM's does
 * (vllm/v1/core/block_pool.py and kv_cache_manager.py @ v0.10.0):
 * - a request's full prompt blocks are hashed in a chain (`hash_block_tokens`: parent hash, the block's tokens, its
 *   extra keys, the LoRA name first: kv_cache_utils.py `generate_block_hash_extra_keys`);
 * - its longest cached prefix is hit (`get_computed_blocks`, at most `num_tokens - 1` tokens, so a prompt of whole
 *   blocks recomputes its last one and caches a second copy of it, `cache_full_blocks` not de-duplicating);
 * - new blocks come from the head of the free queue, a cached one evicted with one `BlockRemoved` each
 *   (`_maybe_evict_cached_block`); the new full blocks are cached with one `BlockStored` naming the parent;
 * - generated tokens fill further blocks, cached with a `BlockStored` chained on the prompt's;
 * - a finished request's blocks go back to the free queue's tail in reverse (`KVCacheManager.free`), so its tail is
 *   evicted first;
 * - `reset_prefix_cache` succeeds only with no block in use, and sends `AllBlocksCleared`;
 * - each scheduler step's events are one `KVEventBatch`, numbered per publisher from 0 (a restarted vLLM numbers
 *   from 0 again, with an empty cache and an empty replay buffer), the newest batches kept for replay
 *   (vllm/distributed/kv_events.py `ZmqEventPublisher`).
 *
 * The batches go over real ZMQ on loopback (testkit's publisher, one per endpoint, bound at the socket and replay
 * ports + the rank as vLLM binds them) to a real precise scorer in per-pod mode with a replay port. After every batch
 * applied, random prompts are looked up in the scorer's index and compared with what the model's pool holds: the
 * longest cached prefix in full blocks, per endpoint.
 *
 * What epp/README.md ("Precise prefix-cache routing") allows to be approximate, and what is asserted instead:
 * - a gap the replay buffer no longer covers drops the endpoint's entries ("Lost events"), and stores chained on what
 *   was dropped are skipped (`unknown-parent`; no request is routed here, so no parent is recovered): from then until
 *   the endpoint's cache is emptied (reset or restart) the index may hold less than the pod, never more;
 * - with `maxIndexEntries` below the pods' capacities each keeps only its share: the index may hold less, never more.
 * Otherwise (gaps the replay repairs, duplicates, LoRA, DP ranks, resets, restarts) the answer must equal the model's.
 * Speculative marks are off (`speculativeIndexing: false`) and nothing is routed, so no entry is a guess.
 */
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { encodeEventBatch, liveFrames, type KvCacheEvent, type KvEventBatch, type KvEventEncoding } from '@kvroute/protocol/kv-events';
import { seededRandom, TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '../src/config';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { blockKey, rootKey } from '../src/scheduling/plugins/prefix-hash';

jest.setTimeout(240_000);

const MODEL = 'Qwen/Qwen3-0.6B';
const BS = 4;

/** A 64-bit block hash as vLLM's events carry it (an int), from the parent's, the tokens and the extra keys. */
function engineHash(parent: string | null, tokens: readonly number[], extra: readonly unknown[] | null): string {
  const digest = createHash('sha256').update(JSON.stringify([parent, tokens, extra])).digest();
  // Below 2^63, so that msgpack writes it as vLLM's int (hash_value is a Python int either way).
  return (digest.readBigUInt64BE(0) >> 1n).toString();
}

interface Block {
  readonly id: number;
  hash: string | undefined;
  refCnt: number;
}

interface Running {
  readonly blocks: Block[];
  readonly tokens: number[];
  readonly lora: string | undefined;
  /** The EPP's keys of the prompt (for `responseComplete`). */
  readonly keys: readonly number[];
}

/** One vLLM engine's block pool (one endpoint: a pod, or a DP rank of one). */
class PoolModel {
  readonly blocks: Block[] = [];
  /** Free blocks, the next evicted first (vLLM's FreeKVCacheBlockQueue). */
  free: Block[] = [];
  /** hash → block id → block (vLLM's `cached_block_hash_to_block`). */
  readonly cached = new Map<string, Map<number, Block>>();
  running: Running[] = [];
  events: KvCacheEvent[] = [];

  /** `bs`: the engine's --block-size, which may be a divisor or a multiple of the index's configured `BS`. */
  constructor(readonly numBlocks: number, readonly named: boolean, readonly bs = BS) {
    this.restart();
  }

  /** A new process: every block free and uncached (block 0 is vLLM's null block, never handed out). */
  restart(): void {
    this.blocks.length = 0;
    for (let id = 0; id < this.numBlocks; id++) this.blocks.push({ id, hash: undefined, refCnt: 0 });
    this.free = this.blocks.slice(1);
    this.cached.clear();
    this.running = [];
    this.events = [];
  }

  hashes(tokens: readonly number[], lora: string | undefined): string[] {
    const out: string[] = [];
    let parent: string | null = null;
    for (let i = 0; i + this.bs <= tokens.length; i += this.bs) {
      parent = engineHash(parent, tokens.slice(i, i + this.bs), lora !== undefined ? [lora] : null);
      out.push(parent);
    }
    return out;
  }

  /**
   * Leading full configured blocks (`BS` tokens) of the prompt this pool holds: its leading engine blocks held, in
   * whole configured blocks (what a request could hit, before vLLM's last-token rule).
   */
  held(tokens: readonly number[], lora: string | undefined): number {
    let n = 0;
    for (const h of this.hashes(tokens, lora)) {
      if (!this.cached.has(h)) break;
      n++;
    }
    return Math.floor((n * this.bs) / BS);
  }

  private touch(block: Block): void {
    if (block.refCnt === 0) this.free.splice(this.free.indexOf(block), 1);
    block.refCnt++;
  }

  private newBlock(): Block {
    const block = this.free.shift()!;
    if (block.hash !== undefined) {
      const copies = this.cached.get(block.hash)!;
      copies.delete(block.id);
      if (copies.size === 0) this.cached.delete(block.hash);
      this.events.push({ type: 'BlockRemoved', blockHashes: [block.hash] });
      block.hash = undefined;
    }
    block.refCnt = 1;
    return block;
  }

  private cacheFull(req: Running, from: number, to: number, hashes: readonly string[]): void {
    if (to <= from) return;
    for (let i = from; i < to; i++) {
      const block = req.blocks[i]!;
      block.hash = hashes[i]!;
      let copies = this.cached.get(block.hash);
      if (!copies) this.cached.set(block.hash, (copies = new Map()));
      copies.set(block.id, block);
    }
    this.events.push({
      type: 'BlockStored', blockHashes: hashes.slice(from, to), parentBlockHash: from === 0 ? null : hashes[from - 1]!,
      tokenIds: req.tokens.slice(from * this.bs, to * this.bs), blockSize: this.bs, loraId: null,
      ...(this.named ? { loraName: req.lora ?? null, extraKeys: hashes.slice(from, to).map(() => (req.lora !== undefined ? [req.lora] : null)) } : {}),
    });
  }

  /** Schedules a request (prompt + the tokens it will generate); false when the pool has no room for it now. */
  start(prompt: readonly number[], generated: readonly number[], lora: string | undefined, keys: readonly number[] = []): boolean {
    const all = [...prompt, ...generated];
    const promptHashes = this.hashes(prompt, lora);
    // get_computed_blocks: the longest cached prefix, within num_tokens - 1 tokens (the last is always recomputed).
    const maxHit = Math.floor((prompt.length - 1) / this.bs);
    const hit: Block[] = [];
    for (const h of promptHashes.slice(0, maxHit)) {
      const copies = this.cached.get(h);
      if (!copies) break;
      hit.push(copies.values().next().value!);
    }
    const needed = Math.ceil(all.length / this.bs) - hit.length;
    const freeAfterTouch = this.free.length - hit.filter((b) => b.refCnt === 0).length;
    if (needed > freeAfterTouch) return false;
    for (const b of hit) this.touch(b);
    const req: Running = { blocks: [...hit], tokens: all, lora, keys };
    for (let i = 0; i < needed; i++) req.blocks.push(this.newBlock());
    // The prompt's full blocks are cached at prefill, the generated ones as they fill (one event each step).
    this.cacheFull(req, hit.length, promptHashes.length, promptHashes);
    this.running.push(req);
    const allHashes = this.hashes(all, lora);
    this.cacheFull(req, promptHashes.length, allHashes.length, allHashes);
    return true;
  }

  /** The oldest running request finishes: its blocks go back to the free queue in reverse. */
  finish(index: number): void {
    const [req] = this.running.splice(index, 1);
    for (let i = req!.blocks.length - 1; i >= 0; i--) {
      const b = req!.blocks[i]!;
      b.refCnt--;
      if (b.refCnt === 0) this.free.push(b);
    }
  }

  /** reset_prefix_cache: only with no block in use (block_pool.py: `num_used_blocks != 1` fails it). */
  reset(): boolean {
    if (this.running.length > 0) return false;
    this.cached.clear();
    for (const b of this.blocks) b.hash = undefined;
    this.events.push({ type: 'AllBlocksCleared' });
    return true;
  }

  take(): KvCacheEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }
}

/** A port p such that p … p + n − 1 are free on every one of `hosts` (below the ephemeral range). */
async function freePortBlock(n: number, hosts: readonly string[], random: () => number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20_000 + Math.floor(random() * 12_000);
    const servers: net.Server[] = [];
    let ok = true;
    for (const host of hosts) {
      for (let i = 0; i < n && ok; i++) {
        ok = await new Promise<boolean>((resolve) => {
          const server = net.createServer();
          server.once('error', () => resolve(false));
          server.listen(base + i, host, () => { servers.push(server); resolve(true); });
        });
      }
    }
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    if (ok) return base;
  }
  throw new Error(`no block of ${n} free ports`);
}

interface EndpointSim {
  readonly key: string;
  readonly address: string;
  readonly rank: number;
  readonly pool: PoolModel;
  readonly publisher: TestKvEventPublisher;
  readonly encoding: KvEventEncoding;
  readonly loras: readonly string[];
  seq: bigint;
  /** An unrepaired gap dropped the entries since the cache was last emptied: the index may hold less. */
  degraded: boolean;
  /**
   * A batch was lost and no later one has shown the gap yet: the EPP cannot know, and the endpoint is not compared
   * until its next batch (the gap's repair, or the drop of its entries) is applied.
   */
  pendingLoss: boolean;
  /**
   * A replay of this publisher failed: its replay socket is not asked again for 30 s (llm-d-router's replayCooldown),
   * so every gap meanwhile drops the entries; a publisher restart ends it (epp/README.md "Lost events").
   */
  coolingDown: boolean;
  /**
   * The index recovered a parent it never saw stored from a request routed here (`recoverParent`) since the pod's
   * cache was last emptied: the blocks before that parent were indexed without their engine hashes, so their eviction
   * cannot reach them (see epp/README.md, parent recovery): false hits there are the documented approximation.
   */
  recovered: boolean;
}

interface Scenario {
  readonly seed: number;
  readonly steps: number;
  /** Pods, each with its ranks, LoRA adapters and wire encoding. */
  readonly pods: readonly { readonly ranks: number; readonly loras: readonly string[]; readonly encoding: KvEventEncoding; readonly engineBlockSize?: number }[];
  readonly numBlocks: number;
  readonly maxIndexEntries?: number;
  /**
   * Each request is routed through the scorer as the EPP routes it: the pick records it (`recordPick`: the matched
   * blocks touched, every key marked speculatively, the request noted for parent recovery) and its end touches its
   * blocks (`responseComplete`). The index is then read without the marks (at a time past every mark's TTL).
   */
  readonly route?: boolean;
}

interface Disagreement {
  step: number;
  endpoint: string;
  prompt: string;
  lora: string | undefined;
  index: number;
  model: number;
  degraded: boolean;
}

async function runScenario(s: Scenario): Promise<{ disagreements: Disagreement[]; checks: number; log: string[] }> {
  const random = seededRandom(s.seed);
  const hosts = s.pods.map((_, i) => `127.0.0.${i + 2}`);
  const maxRanks = Math.max(...s.pods.map((p) => p.ranks));
  // Ports from Math.random, not the scenario's generator: a busy port must not change the stream.
  const socketPort = await freePortBlock(2 * maxRanks, hosts, Math.random);
  const replayPort = socketPort + maxRanks;
  const scheduler: Scheduler = buildScheduler(parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
  - type: precise-prefix-cache-scorer
    parameters:
      kvEventsConfig: { discoverPods: true, topicFilter: "kv@", podDiscoveryConfig: { socketPort: ${socketPort}, replaySocketPort: ${replayPort} } }
      indexerConfig:
        tokenProcessorConfig: { blockSize: ${BS} }
      speculativeIndexing: ${s.route === true}
      maxBlocksPerPod: ${s.numBlocks * Math.max(1, ...s.pods.map((p) => (p.engineBlockSize ?? BS) / BS))}${s.maxIndexEntries !== undefined ? `\n      maxIndexEntries: ${s.maxIndexEntries}` : ''}
  - type: max-score-picker
`));
  await scheduler.plugins.start();
  const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
  const applied = new Map<string, number>();
  const log: string[] = [];
  const inner = scorer as unknown as { applyBatch(endpoint: string, batch: KvEventBatch, model: string | undefined): void; reset(endpoint: string, reason: string): void };
  const applyBatch = inner.applyBatch.bind(scorer);
  inner.applyBatch = (endpoint, batch, model) => {
    applyBatch(endpoint, batch, model);
    applied.set(endpoint, batch.ts);
  };
  const reset = inner.reset.bind(scorer);
  inner.reset = (endpoint, reason) => {
    log.push(`reset ${endpoint} ${reason}`);
    reset(endpoint, reason);
  };
  const endpoints: EndpointSim[] = [];
  const recovering = scorer.index as unknown as { recoverParent(pod: string, state: unknown, event: unknown, root: number): number | undefined };
  const recoverParent = recovering.recoverParent.bind(scorer.index);
  recovering.recoverParent = (pod, state, event, root) => {
    const parent = recoverParent(pod, state, event, root);
    const e = endpoints.find((x) => x.key === pod);
    if (parent !== undefined && e !== undefined) e.recovered = true;
    return parent;
  };
  let ts = 1;
  try {
    for (let p = 0; p < s.pods.length; p++) {
      const pod = s.pods[p]!;
      for (let rank = 0; rank < pod.ranks; rank++) {
        const address = hosts[p]!;
        const key = `${address}:${8000 + rank}`;
        const publisher = new TestKvEventPublisher(`kv@${key}@${MODEL}`);
        await publisher.pub.bind(`tcp://${address}:${socketPort + rank}`);
        await publisher.router.bind(`tcp://${address}:${replayPort + rank}`);
        endpoints.push({ key, address, rank, pool: new PoolModel(s.numBlocks, pod.encoding === 'map', pod.engineBlockSize), publisher, encoding: pod.encoding, loras: pod.loras, seq: 0n, degraded: false, pendingLoss: false, coolingDown: false, recovered: false });
      }
    }
    for (const e of endpoints) {
      scheduler.plugins.addEndpoint({ key: e.key, name: e.key, namespace: 'ns', address: e.address, port: 8000 + e.rank, labels: {}, ...(e.rank > 0 ? { rank: e.rank } : {}) });
    }
    for (const e of endpoints) await e.publisher.waitSubscribed();
    await waitFor(() => scorer.warm(), 'every subscription to warm up');

    // Prompts share system prompts and continue earlier conversations, so prefixes are shared and hit.
    const systems = [8, 10, 13, 4].map((n) => Array.from({ length: n }, () => Math.floor(random() * 6)));
    const history: { tokens: number[]; lora: string | undefined }[] = [];
    const keysOf = (tokens: readonly number[], lora: string | undefined): number[] => {
      const keys: number[] = [];
      let parent = rootKey(lora ?? '');
      for (let i = 0; i + BS <= tokens.length; i += BS) keys.push((parent = blockKey(parent, tokens, i, i + BS)));
      return keys;
    };
    const routing = scorer as unknown as {
      recordPick(pod: string, blocks: { keys: number[]; ids: number[]; root: number; promptTokens: number }, match: { blocks: number; weight: number } | undefined): void;
      handle: { now(): number };
    };
    /** The EPP's pick of `e` for the prompt, as postCycle records it. */
    const routeTo = (e: EndpointSim, tokens: number[], lora: string | undefined): number[] => {
      const keys = keysOf(tokens, lora);
      if (s.route !== true) return keys;
      const match = scorer.index.longestPrefix(keys, { has: (pod) => pod === e.key }, routing.handle.now()).get(e.key);
      routing.recordPick(e.key, { keys, ids: tokens, root: rootKey(lora ?? ''), promptTokens: tokens.length }, match);
      return keys;
    };
    const finish = (e: EndpointSim, i: number): void => {
      const req = e.pool.running[i]!;
      e.pool.finish(i);
      // responseComplete: the request's blocks are the pod's most recently used, the head last.
      if (s.route === true) scorer.index.touch(e.key, req.keys, req.keys.length);
    };
    const prompt = (e: EndpointSim): { tokens: number[]; lora: string | undefined } => {
      const lora = e.loras.length > 0 && random() < 0.4 ? e.loras[Math.floor(random() * e.loras.length)] : undefined;
      const past = history.filter((h) => h.lora === lora);
      const base = past.length > 0 && random() < 0.35 ? past[Math.floor(random() * past.length)]!.tokens : systems[Math.floor(random() * systems.length)]!;
      const user = Array.from({ length: 1 + Math.floor(random() * 9) }, () => Math.floor(random() * 6));
      return { tokens: [...base, ...user], lora };
    };

    const disagreements: Disagreement[] = [];
    let checks = 0;
    for (let step = 0; step < s.steps; step++) {
      // One scheduler step on one endpoint: finish some requests, start some, now and then a reset or a restart.
      const e = endpoints[Math.floor(random() * endpoints.length)]!;
      const pool = e.pool;
      const roll = random();
      let restarted = false;
      if (roll < 0.01 && e.seq >= 2n) {
        // A new vLLM process: an empty cache, batches numbered from 0, an empty replay buffer (the same sockets stand
        // for the new process's, which the subscriber cannot tell apart).
        pool.restart();
        e.seq = 0n;
        e.publisher.buffer.length = 0;
        e.degraded = false;
        e.coolingDown = false;
        e.recovered = false;
        restarted = true;
        log.push(`step ${step}: restart ${e.key}`);
      } else if (roll < 0.03) {
        while (pool.running.length > 0) finish(e, 0);
        if (pool.reset()) {
          e.degraded = false;
          e.recovered = false;
          log.push(`step ${step}: reset_prefix_cache ${e.key}`);
        }
      }
      if (!restarted) {
        while (pool.running.length > 0 && random() < 0.5) finish(e, Math.floor(random() * pool.running.length));
        const starts = 1 + Math.floor(random() * 2);
        for (let i = 0; i < starts; i++) {
          const { tokens, lora } = prompt(e);
          const generated = Array.from({ length: Math.floor(random() * 7) }, () => Math.floor(random() * 6));
          const keys = routeTo(e, tokens, lora);
          if (pool.start(tokens, generated, lora, keys)) history.push({ tokens: [...tokens, ...generated], lora });
        }
      }
      const events = pool.take();
      if (events.length === 0 && !restarted) continue;
      const batchTs = ts++;
      const lossRoll = random();
      const seq = e.seq++;
      // Lost on the wire (vLLM's PUB drops past its high-water mark), kept in the replay buffer: the replay repairs it.
      // Rarely the buffer no longer covers it either (it moved on): the entries are dropped.
      const lost = lossRoll < 0.06 && seq > 0n;
      const unrepairable = lost && (lossRoll < 0.015 || e.coolingDown);
      const batch = { ts: batchTs, events, dataParallelRank: e.rank };
      const payload = encodeEventBatch(batch, e.encoding);
      // vLLM keeps every batch in its replay buffer (a deque of `buffer_steps`, 10,000 by default) as it sends it.
      if (unrepairable) e.publisher.buffer.length = 0; // the buffer moved on past the lost batch
      else e.publisher.buffer.push([seq, payload]);
      if (lost) {
        // A lost batch's events still happened in the pod; the next batch shows the gap.
        log.push(`step ${step}: ${e.key} seq ${seq} lost${unrepairable ? ' (unrepairable)' : ''}`);
        if (unrepairable) e.degraded = e.coolingDown = true;
        e.pendingLoss = true;
        continue;
      }
      await e.publisher.pub.send(liveFrames(e.publisher.topic, seq, payload));
      await waitFor(() => applied.get(e.key) === batchTs, `${e.key} batch ${seq} (step ${step}) to be applied`);
      e.pendingLoss = false;
      // Compare every endpoint on prompts near what was served, and on the history's prompts.
      for (let q = 0; q < 12; q++) {
        const { tokens, lora } = q < 6 || history.length === 0 ? prompt(e) : history[Math.floor(random() * history.length)]!;
        // Read at a time past every speculative mark: what the pods' events confirmed.
        const found = scorer.index.longestPrefix(keysOf(tokens, lora), { has: () => true }, Number.MAX_SAFE_INTEGER);
        for (const other of endpoints) {
          if (other.pendingLoss) continue;
          // Without marks, entries are configured blocks the pool holds: never more than its blocks' worth.
          if (!s.route && s.maxIndexEntries === undefined) expect(scorer.index.blocksOf(other.key)).toBeLessThanOrEqual(other.pool.cached.size * Math.max(1, other.pool.bs / BS));
          // An engine block of several configured blocks (1:many) is hit whole or not at all; the index's match may end
          // inside one (the request shares its first configured blocks with another chain's), which the scorer rounds
          // down to whole engine blocks where it predicts hits (`predictedHitTokens`). Compared rounded so.
          const perEngine = Math.max(1, other.pool.bs / BS);
          const index = Math.floor((found.get(other.key)?.blocks ?? 0) / perEngine) * perEngine;
          const model = other.pool.held(tokens, lora);
          // Lost entries (a gap no replay covered) and the budget make the index hold less, never more; a recovered
          // prefix may hold more (its evictions unseen), so such an endpoint is compared no further.
          if (other.recovered) continue;
          const bounded = other.degraded || s.maxIndexEntries !== undefined;
          if (bounded ? index > model : index !== model) {
            disagreements.push({ step, endpoint: other.key, prompt: tokens.join(','), lora, index, model, degraded: other.degraded });
          } else {
            checks++;
          }
        }
      }
    }
    return { disagreements, checks, log };
  } finally {
    for (const e of endpoints) e.publisher.close();
    await scheduler.plugins.close();
  }
}

const POOL: Scenario['pods'] = [
  // vLLM 0.10.0's wire, no LoRA; and a newer vLLM (map-encoded events with lora_name and extra_keys) with two
  // data-parallel ranks, each its own block pool and publisher (port + rank), serving two LoRA adapters.
  { ranks: 1, loras: [], encoding: 'positional-v0.10.0' },
  { ranks: 2, loras: ['lora-a', 'lora-b'], encoding: 'map' },
];

async function expectAgreement(scenario: Scenario): Promise<void> {
  const { disagreements, checks, log } = await runScenario(scenario);
  // The first disagreements and the stream's notable steps, when any, in the failure message.
  expect({ disagreements: disagreements.slice(0, 5), log: disagreements.length > 0 ? log.slice(-20) : [] }).toEqual({ disagreements: [], log: [] });
  // Enough comparisons were made for the run to mean something (skipped ones, pending or recovered, are not counted).
  expect(checks).toBeGreaterThan(2_000);
}

describe('the precise index against a model of vLLM\'s block pool (block_pool.py / kv_cache_manager.py @ v0.10.0), over real ZMQ', () => {
  test.each([1, 2, 3])('seed %d: after every batch the index answers each endpoint\'s longest cached prefix as its pool holds it', async (seed) => {
    await expectAgreement({ seed, steps: 400, numBlocks: 24, pods: POOL });
  });

  // Routed through the EPP: each pick marks its request's blocks (speculativeIndexing), touches what it matched, and
  // the request's end touches its blocks. Until session 73 the marks shared the pod's capacity with the blocks its
  // events confirmed and pushed out the oldest, which vLLM still held when a running request used them (seed 11 from
  // step 14, seed 12 from step 11; test/kvindex-speculative-capacity.test.ts).
  test.each([11, 12, 13])('seed %d, routed: what the events confirmed equals the pool', async (seed) => {
    await expectAgreement({ seed, steps: 400, numBlocks: 24, pods: POOL, route: true });
  });

  test.each([
    { seed: 21, route: false },
    { seed: 22, route: true },
  ])('seed $seed under maxIndexEntries (routed: $route): each pod keeps its share, never more than its pool holds', async ({ seed, route }) => {
    await expectAgreement({ seed, steps: 400, numBlocks: 24, pods: POOL, route, maxIndexEntries: 30 });
  });

  // vLLM at another --block-size than the index's: 2 under 4 (gathered, many:1) and 8 under 4 (cut, 1:many).
  test.each([31, 32])('seed %d, engine block sizes 2 and 8 under a configured 4: configured blocks held as the pools hold them', async (seed) => {
    await expectAgreement({
      seed, steps: 400, numBlocks: 24,
      pods: [
        { ranks: 1, loras: [], encoding: 'positional-v0.10.0', engineBlockSize: 2 },
        { ranks: 1, loras: ['lora-a'], encoding: 'map', engineBlockSize: 8 },
      ],
    });
  });
  test.each([33])('seed %d, engine block sizes 2 and 8, routed', async (seed) => {
    await expectAgreement({
      seed, steps: 400, numBlocks: 24, route: true,
      pods: [
        { ranks: 1, loras: ['lora-a'], encoding: 'map', engineBlockSize: 2 },
        { ranks: 1, loras: [], encoding: 'positional-v0.10.0', engineBlockSize: 8 },
      ],
    });
  });
});
