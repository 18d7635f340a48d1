/**
 * The approximate `prefix-cache-scorer` against a reference model of upstream's approximate prefix producer and scorer,
 * written from their source:
 *
 * - llm-d-router v0.10.0 `pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix/indexer.go` (Add,
 *   Get, RemovePod: a golang-lru per pod sized at its first Add, and hashToPods), `plugin.go` (Produce,
 *   matchLongestPrefix, PreRequest, makeserver, GetBlockSize, resolveMaxBlocks), `prefixhash/hashing.go`
 *   (GetBlockHashes: blocks of blockSizeTokens pseudo-tokens of 4 bytes, the short last one too, chained on the
 *   previous block's hash, the first seeded with the target model and cache salt) and
 *   `scheduling/scorer/prefix/plugin.go` (Score: matchBlocks ÷ totalBlocks, blended with the match length);
 * - GIE v1.5.0 `approximateprefix/plugin.go` and `hashing.go`, where they differ: no 64-token floor, full blocks only,
 *   256 blocks at most, a batch hashed as one prompt.
 *
 * Both are driven with the same seeded random traffic (shared prefixes of random lengths, several models, LoRA
 * adapters and cache salts, picks on random pods, pods removed, LRU overflow, prompts shorter than a block and longer
 * than the window, chat and completion bodies, batches) and every candidate's score is compared after every step.
 *
 * Where kvroute differs from upstream on purpose (epp/README.md, "Differences from GIE v1.5.0 and llm-d v0.8.0"), the
 * model takes kvroute's side and says so: a pod's match is its own unbroken run of leading blocks (upstream counts every
 * leading block the pod holds until one no pod holds; the model computes both and checks upstream's is never less), a
 * chat is hashed as kvroute renders it (ChatML turns; upstream flattens roles and text), a batch is keyed prompt by
 * prompt under GIE's group too, and a pod that leaves is forgotten at once (upstream every 2 minutes). Pods' KV sizes
 * do not change during a run (upstream sizes a pod's LRU once, kvroute follows changes), and no prompt has more blocks
 * than a pod's LRU holds (upstream's Add then keeps the evicted blocks in hashToPods, see the last test).
 */
import { parseRequestBody } from '@kvroute/protocol/openai';
import { seededRandom } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, type CycleContext } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { PrefixCacheScorer, type PrefixCacheScorerParameters } from '../src/scheduling/plugins/prefix-cache-scorer';
import { PrefixBlockIndex } from '../src/scheduling/plugins/prefix-index';

// ---------------------------------------------------------------------------------------------------------------------
// The reference model.

interface ModelConfig {
  /** 'llmd': llm-d-router v0.10.0; 'gie': GIE v1.5.0. */
  readonly flavour: 'llmd' | 'gie';
  readonly autoTune: boolean;
  readonly blockSizeTokens: number;
  readonly maxPrefixTokensToMatch: number;
  readonly maxPrefixBlocksToMatch: number;
  readonly lruCapacityPerServer: number;
  /** llm-d-router v0.10.0 plugin.go minBlockSizeTokens (64; its tests lower it to 1); GIE v1.5.0 has none. */
  readonly minBlockSizeTokens: number;
  readonly matchLengthWeight: number;
  readonly matchLengthScaleTokens: number;
}

interface ModelPod {
  readonly id: string;
  /** vLLM's cache_config_info block_size and num_gpu_blocks (CacheBlockSize, CacheNumBlocks), 0 when not scraped. */
  readonly blockSize: number;
  readonly numGpuBlocks: number;
}

/** indexer.go: one golang-lru per pod (insertion order is recency here) and hashToPods. */
class ReferenceIndexer {
  readonly hashToPods = new Map<string, Set<string>>();
  readonly podToLRU = new Map<string, { readonly size: number; readonly keys: Map<string, true> }>();

  constructor(private readonly defaultLRUSize: number) {}

  /** indexer.go Add (lines 55-86): the LRU is sized at the pod's first Add; every hash then (re)joins hashToPods. */
  add(hashes: readonly string[], pod: { id: string; numOfGPUBlocks: number }): void {
    let lru = this.podToLRU.get(pod.id);
    if (lru === undefined) {
      lru = { size: pod.numOfGPUBlocks > 0 ? pod.numOfGPUBlocks : this.defaultLRUSize, keys: new Map() };
      this.podToLRU.set(pod.id, lru);
    }
    for (const hash of hashes) {
      // golang-lru Add: an existing key moves to the front; a new one is pushed and the oldest evicted past size.
      if (lru.keys.has(hash)) lru.keys.delete(hash);
      lru.keys.set(hash, true);
      if (lru.keys.size > lru.size) {
        const oldest = lru.keys.keys().next().value as string;
        lru.keys.delete(oldest);
        this.evicted(pod.id, oldest);
      }
    }
    for (const hash of hashes) {
      let pods = this.hashToPods.get(hash);
      if (pods === undefined) this.hashToPods.set(hash, (pods = new Set()));
      pods.add(pod.id);
    }
  }

  /** indexer.go makeEvictionFn. */
  private evicted(pod: string, hash: string): void {
    const pods = this.hashToPods.get(hash);
    if (pods === undefined) return;
    pods.delete(pod);
    if (pods.size === 0) this.hashToPods.delete(hash);
  }

  get(hash: string): ReadonlySet<string> {
    return this.hashToPods.get(hash) ?? new Set();
  }

  /** indexer.go RemovePod: each LRU key removed (firing the eviction callback), then the LRU. */
  removePod(pod: string): void {
    const lru = this.podToLRU.get(pod);
    if (lru === undefined) return;
    for (const hash of lru.keys.keys()) this.evicted(pod, hash);
    this.podToLRU.delete(pod);
  }

  /** Whether the pod's own LRU holds the hash (the entries kvroute's index keeps). */
  holds(pod: string, hash: string): boolean {
    return this.podToLRU.get(pod)?.keys.has(hash) === true;
  }
}

interface ModelRequest {
  readonly model: string;
  readonly cacheSalt?: string;
  /** The prompts as hashed (one, or a batch's). */
  readonly prompts: readonly string[];
}

interface ModelMatch {
  readonly perPromptHashes: readonly (readonly string[])[];
  readonly total: number;
  readonly blockSize: number;
  /** matchLongestPrefix summed over the prompts (plugin.go Produce). */
  readonly upstream: ReadonlyMap<string, number>;
  /** The same walk, each pod stopping at its own first missing block (kvroute's documented difference). */
  readonly unbroken: ReadonlyMap<string, number>;
}

class ReferenceApproxPrefix {
  readonly indexer: ReferenceIndexer;

  constructor(readonly config: ModelConfig) {
    this.indexer = new ReferenceIndexer(config.lruCapacityPerServer);
  }

  /** plugin.go GetBlockSize (lines 344-357): the first endpoint's block size under autoTune, raised to the floor. */
  blockSize(pods: readonly ModelPod[]): number {
    let blockSize = this.config.blockSizeTokens;
    if (this.config.autoTune && pods.length > 0 && pods[0]!.blockSize > 0) blockSize = pods[0]!.blockSize;
    return Math.max(blockSize, this.config.minBlockSizeTokens);
  }

  /** plugin.go resolveMaxBlocks (lines 367-375); GIE v1.5.0 PrepareRequestData (no "both 0 is unlimited"). */
  maxBlocks(blockSize: number): number {
    const { maxPrefixTokensToMatch, maxPrefixBlocksToMatch, flavour } = this.config;
    if (maxPrefixTokensToMatch > 0 && blockSize > 0) return Math.floor(maxPrefixTokensToMatch / blockSize);
    if (flavour === 'llmd' && maxPrefixBlocksToMatch === 0) return Number.MAX_SAFE_INTEGER;
    return maxPrefixBlocksToMatch;
  }

  /**
   * prefixhash/hashing.go computeBlockHashes over getKVCacheBlocksFromTokens (llm-d: the short last block too) or GIE
   * v1.5.0 hashing.go hashPrompt (full blocks only), a block being blockSize × 4 characters (the estimate's 4-byte
   * pseudo-tokens, GIE's averageCharactersPerToken). A hash is named by what it covers: the seed and the prompt up to
   * the block's end, which is what the chain makes equal.
   */
  hashes(request: ModelRequest, prompt: string, blockSize: number, maxBlocks: number): string[] {
    const chars = blockSize * 4;
    const seed = `${request.model}\u0000${request.cacheSalt ?? ''}`;
    const out: string[] = [];
    for (let start = 0; start < prompt.length && out.length < maxBlocks; start += chars) {
      const end = Math.min(start + chars, prompt.length);
      if (end - start < chars && this.config.flavour === 'gie') break;
      out.push(`${seed}\u0001${prompt.slice(0, end)}`);
    }
    return out;
  }

  /** plugin.go Produce (lines 228-254). */
  produce(request: ModelRequest, pods: readonly ModelPod[]): ModelMatch {
    const blockSize = this.blockSize(pods);
    const maxBlocks = this.maxBlocks(blockSize);
    const perPromptHashes = request.prompts.map((p) => this.hashes(request, p, blockSize, maxBlocks)).filter((h) => h.length > 0);
    const upstream = new Map<string, number>();
    const unbroken = new Map<string, number>();
    let total = 0;
    for (const hashes of perPromptHashes) {
      // matchLongestPrefix (lines 316-332): every holder of each block counts it, until a block no pod holds.
      for (const hash of hashes) {
        const holders = this.indexer.get(hash);
        if (holders.size === 0) break;
        for (const pod of holders) upstream.set(pod, (upstream.get(pod) ?? 0) + 1);
      }
      // kvroute's: each pod's own run of leading blocks.
      for (const pod of this.indexer.podToLRU.keys()) {
        let run = 0;
        while (run < hashes.length && this.indexer.get(hashes[run]!).has(pod)) run++;
        if (run > 0) unbroken.set(pod, (unbroken.get(pod) ?? 0) + run);
      }
      total += hashes.length;
    }
    return { perPromptHashes, total, blockSize, upstream, unbroken };
  }

  /** plugin.go PreRequest (lines 258-300) and makeserver (302-313), for the primary profile's pick. */
  preRequest(match: ModelMatch, target: ModelPod): void {
    let numOfGPUBlocks = 31250;
    if (this.config.autoTune && target.numGpuBlocks > 0) numOfGPUBlocks = target.numGpuBlocks;
    else if (this.config.lruCapacityPerServer > 0) numOfGPUBlocks = this.config.lruCapacityPerServer;
    for (const hashes of match.perPromptHashes) this.indexer.add(hashes, { id: target.id, numOfGPUBlocks });
  }

  /** scheduling/scorer/prefix/plugin.go Score (lines 138-165), over a match count. */
  score(matchBlocks: number, match: ModelMatch): number {
    if (match.total === 0) return 0;
    const { matchLengthWeight, matchLengthScaleTokens } = this.config;
    const ratio = matchBlocks / match.total;
    let length = 0;
    if (matchLengthWeight > 0 && match.blockSize > 0) {
      const normalized = Math.min(1, (matchBlocks * match.blockSize) / matchLengthScaleTokens);
      length = normalized * normalized;
    }
    return matchLengthWeight * length + (1 - matchLengthWeight) * ratio;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The driver.


const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const GIE = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';

/** The scorer as kvroute's loader builds it from a config in `group` with `parameters`. */
function loadScorer(group: string, parameters: Record<string, unknown>): PrefixCacheScorer {
  const yaml = `${group}plugins:\n- type: prefix-cache-scorer\n  parameters: ${JSON.stringify(parameters)}\nschedulingProfiles:\n- name: default\n  plugins: [{pluginRef: prefix-cache-scorer}]\n`;
  const config = parseEndpointPickerConfig(yaml);
  const resolved = config.plugins.find((p) => p.type === 'prefix-cache-scorer')!.parameters as Required<PrefixCacheScorerParameters>;
  return new PrefixCacheScorer('prefix-cache-scorer', resolved, NOOP_SCHEDULING_METRICS);
}

function snapshot(pod: ModelPod): EndpointSnapshot {
  return {
    endpoint: { key: pod.id, name: pod.id, namespace: 'default', address: pod.id, port: 8000, labels: {} },
    metrics: pod.blockSize > 0 ? { ...EMPTY_METRICS, blockSize: pod.blockSize, numGpuBlocks: pod.numGpuBlocks } : EMPTY_METRICS,
    activeRequests: 0,
  };
}

const WORDS = ['alpha ', 'beta ', 'gamma ', 'delta ', 'eps ', 'zeta ', 'eta ', 'theta '];

function text(random: () => number, length: number): string {
  let out = '';
  while (out.length < length) out += WORDS[Math.floor(random() * WORDS.length)];
  return out.slice(0, length);
}

interface Scenario {
  readonly group: string;
  readonly parameters: Record<string, unknown>;
  readonly model: ModelConfig;
  /** Characters of a block at the pods' block size (for sizing prompts). */
  readonly blockChars: number;
  readonly pods: number;
  readonly podBlockSize: number;
  /** Each pod's num_gpu_blocks (its LRU size under autoTune). */
  readonly numGpuBlocks: number;
  /** Longest prompt, in blocks (kept within the LRU: see the header). */
  readonly maxPromptBlocks: number;
  readonly steps: number;
  readonly chat?: boolean;
  readonly batches?: boolean;
  /**
   * Prompts longer than the window: kvroute then records a few tail probes past it (epp/README.md: they count in the
   * pod's capacity), so the LRUs are made large enough that nothing is evicted and only the scores are compared.
   */
  readonly pastWindow?: boolean;
}

interface Outcome {
  /** Scores compared. */
  compared: number;
  /** Scores where upstream's count (every holder until a block no pod holds) exceeds the unbroken run. */
  upstreamCountsMore: number;
  /** Requests for which some pod matched. */
  hits: number;
  evictions: number;
  removals: number;
}

function run(s: Scenario, seed: number): Outcome {
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const scorer = loadScorer(s.group, s.parameters);
  const model = new ReferenceApproxPrefix(s.model);
  let nextPod = 0;
  const newPod = (): ModelPod => ({ id: `pod-${nextPod++}:8000`, blockSize: s.podBlockSize, numGpuBlocks: s.numGpuBlocks });
  let pods: ModelPod[] = Array.from({ length: s.pods }, newPod);
  const removed: ModelPod[] = [];
  // One snapshot object per pod while it stays, as the datastore hands out (the scorer caches by object identity).
  const snapshots = new Map<ModelPod, EndpointSnapshot>();
  const snapshotOf = (pod: ModelPod): EndpointSnapshot => {
    let snap = snapshots.get(pod);
    if (snap === undefined) snapshots.set(pod, (snap = snapshot(pod)));
    return snap;
  };
  const bases = Array.from({ length: 6 }, () => text(random, s.blockChars * s.maxPromptBlocks));
  const models = ['llama', 'llama-lora-a', 'qwen'];
  const outcome: Outcome = { compared: 0, upstreamCountsMore: 0, hits: 0, evictions: 0, removals: 0 };
  const capacityOf = (pod: ModelPod) => model.indexer.podToLRU.get(pod.id)?.size ?? 0;
  const promptOf = (): string => {
    const limit = s.blockChars * s.maxPromptBlocks;
    const shape = random();
    // Shorter than a block; a block's exact multiple; anything up to the limit.
    const length = shape < 0.1 ? 1 + Math.floor(random() * (s.blockChars - 1))
      : shape < 0.3 ? s.blockChars * (1 + Math.floor(random() * s.maxPromptBlocks))
        : 1 + Math.floor(random() * limit);
    const shared = Math.floor(random() * (length + 1));
    return (pick(bases).slice(0, shared) + text(random, length)).slice(0, length);
  };

  for (let step = 0; step < s.steps; step++) {
    // Pods leave and join now and then.
    if (random() < 0.02 && pods.length > 2) {
      const gone = pick(pods);
      pods = pods.filter((p) => p !== gone);
      scorer.removeEndpoint(gone.id);
      model.indexer.removePod(gone.id);
      snapshots.delete(gone);
      removed.push(gone);
      outcome.removals++;
    }
    // A new pod, or one that left coming back under its name (a pod restarted in place), in a random place.
    if (random() < 0.03) pods.splice(Math.floor(random() * (pods.length + 1)), 0, removed.length > 0 && random() < 0.5 ? removed.pop()! : newPod());

    const modelName = pick(models);
    const cacheSalt = random() < 0.15 ? pick(['s1', 's2']) : undefined;
    const batch = s.batches === true && random() < 0.3;
    const prompts = batch ? [promptOf(), promptOf()] : [promptOf()];
    let body: Record<string, unknown>;
    let path: string;
    if (s.chat === true && !batch && random() < 0.5) {
      // A conversation: turns of shared text, so chats share their leading turns.
      const turns = 1 + Math.floor(random() * 3);
      const messages = [{ role: 'system', content: pick(bases).slice(0, s.blockChars * 2) }];
      for (let t = 0; t < turns; t++) messages.push({ role: t % 2 === 0 ? 'user' : 'assistant', content: pick(bases).slice(0, Math.floor(random() * s.blockChars * 3)) });
      body = { model: modelName, messages };
      path = '/v1/chat/completions';
    } else {
      body = { model: modelName, prompt: batch ? prompts : prompts[0] };
      path = '/v1/completions';
    }
    if (cacheSalt !== undefined) body.cache_salt = cacheSalt;
    const parsed = parseRequestBody(Buffer.from(JSON.stringify(body)), path);
    // The model hashes what kvroute hashes for a chat (its ChatML turns: a documented difference) and each prompt of a
    // batch as its own (llm-d-router v0.10.0's GetBlockHashes; GIE v1.5.0 joins them, another documented difference).
    const hashed = batch ? prompts : [parsed.prompt];
    const request: ModelRequest = { model: modelName, prompts: hashed, ...(cacheSalt !== undefined ? { cacheSalt } : {}) };

    // Candidates: every pod, or a random subset in pool order (filters ran before the scorer).
    const candidates = random() < 0.3 ? pods.filter(() => random() < 0.6) : pods;
    if (candidates.length === 0) continue;
    // Upstream's producer sees the pool's endpoints; kvroute's scorer its candidates. The pods share one block size,
    // so the first of either gives the same (GetBlockSize reads endpoints[0]).
    const match = model.produce(request, pods);
    const cycle: CycleContext = {
      request: { requestId: `r${step}`, model: modelName, prompt: parsed.prompt, input: parsed.input, headers: {}, ...(cacheSalt !== undefined ? { cacheSalt } : {}) },
      state: new CycleState(),
    };
    const scores = scorer.score(cycle, candidates.map(snapshotOf));
    let hit = false;
    candidates.forEach((pod, i) => {
      const unbroken = match.unbroken.get(pod.id) ?? 0;
      const upstream = match.upstream.get(pod.id) ?? 0;
      const expected = model.score(unbroken, match);
      if (Math.abs(scores[i]! - expected) > 1e-12) {
        throw new Error(
          `step ${step} (seed ${seed}): ${pod.id} scored ${scores[i]} where the model gives ${expected} (${unbroken} of ${match.total} blocks of ${match.blockSize} tokens; `
            + `upstream's count ${upstream}); request ${JSON.stringify(body).slice(0, 200)}`,
        );
      }
      expect(upstream).toBeGreaterThanOrEqual(unbroken);
      if (upstream > unbroken) outcome.upstreamCountsMore++;
      if (unbroken > 0) hit = true;
      outcome.compared++;
    });
    if (hit) outcome.hits++;

    // The pick: a random candidate (the scores' best or not), recorded by both.
    const target = pick(candidates);
    const sizeBefore = model.indexer.podToLRU.get(target.id)?.keys.size ?? 0;
    const added = new Set(match.perPromptHashes.flat()).size;
    scorer.postCycle(cycle, { targets: [snapshotOf(target)], scores: new Map() });
    model.preRequest(match, target);
    if (sizeBefore + added > capacityOf(target)) outcome.evictions++;
    // Every LRU holds just what kvroute's index holds for the pod. and holds just what kvroute's index holds for the pod.
    if (s.pastWindow !== true) {
      for (const pod of pods) expect(scorer.index.blocksOf(pod.id).length).toBe(model.indexer.podToLRU.get(pod.id)?.keys.size ?? 0);
    }
  }
  return outcome;
}

// ---------------------------------------------------------------------------------------------------------------------

describe('prefix-cache-scorer against a reference model of llm-d-router v0.10.0 / GIE v1.5.0 approximate prefix matching', () => {
  // llm-d's group at its own defaults but for the 64-token floor, lowered as upstream's tests lower it
  // (plugin_test.go disableMinBlockSizeClamp), so small LRUs overflow within a few hundred requests.
  const llmd = (over: Partial<ModelConfig> = {}): ModelConfig => ({
    flavour: 'llmd', autoTune: true, blockSizeTokens: 16, maxPrefixTokensToMatch: 131072, maxPrefixBlocksToMatch: 2048,
    lruCapacityPerServer: 31250, minBlockSizeTokens: 1, matchLengthWeight: 0, matchLengthScaleTokens: 8192, ...over,
  });
  const gie = (over: Partial<ModelConfig> = {}): ModelConfig => ({
    flavour: 'gie', autoTune: true, blockSizeTokens: 16, maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 256,
    lruCapacityPerServer: 31250, minBlockSizeTokens: 1, matchLengthWeight: 0, matchLengthScaleTokens: 8192, ...over,
  });

  test.each([1, 2, 3])("llm-d's group, autoTune from the pods' 2-token blocks, LRUs of 40 blocks overflowing (seed %i)", (seed) => {
    const outcome = run({
      group: LLMD, parameters: { minBlockSizeTokens: 1 }, model: llmd(),
      blockChars: 8, pods: 4, podBlockSize: 2, numGpuBlocks: 40, maxPromptBlocks: 12, steps: 600, chat: true, batches: true,
    }, seed);
    // The traffic did what it is for: hits, evictions, removals, and gaps where upstream's count differs.
    expect(outcome.hits).toBeGreaterThan(100);
    expect(outcome.evictions).toBeGreaterThan(50);
    expect(outcome.removals).toBeGreaterThan(0);
  });

  test.each([4, 5])("llm-d's group, a token window of 24 tokens cutting prompts short, match length blended (seed %i)", (seed) => {
    const outcome = run({
      group: LLMD, parameters: { minBlockSizeTokens: 1, maxPrefixTokensToMatch: 24, matchLengthWeight: 0.4, matchLengthScaleTokens: 16, autoTune: false, blockSizeTokens: 4, lruCapacityPerServer: 30 },
      model: llmd({ maxPrefixTokensToMatch: 24, matchLengthWeight: 0.4, matchLengthScaleTokens: 16, autoTune: false, blockSizeTokens: 4, lruCapacityPerServer: 30 }),
      blockChars: 16, pods: 3, podBlockSize: 0, numGpuBlocks: 0, maxPromptBlocks: 6, steps: 400,
    }, seed);
    expect(outcome.hits).toBeGreaterThan(50);
    expect(outcome.evictions).toBeGreaterThan(20);
  });

  test.each([6, 7])("GIE's group: full blocks only, 256 blocks at most, LRUs from the pods' KV (seed %i)", (seed) => {
    const outcome = run({
      group: GIE, parameters: { blockSizeTokens: 2 }, model: gie({ blockSizeTokens: 2 }),
      blockChars: 8, pods: 4, podBlockSize: 2, numGpuBlocks: 50, maxPromptBlocks: 10, steps: 600, chat: true,
    }, seed);
    expect(outcome.hits).toBeGreaterThan(100);
    expect(outcome.evictions).toBeGreaterThan(50);
  });
  test.each([8, 9])("llm-d's group before the pods are scraped: blockSizeTokens and lruCapacityPerServer as configured (seed %i)", (seed) => {
    const outcome = run({
      group: LLMD, parameters: { minBlockSizeTokens: 1, blockSizeTokens: 2, lruCapacityPerServer: 40 }, model: llmd({ blockSizeTokens: 2, lruCapacityPerServer: 40 }),
      blockChars: 8, pods: 3, podBlockSize: 0, numGpuBlocks: 0, maxPromptBlocks: 12, steps: 500, chat: true, batches: true,
    }, seed);
    expect(outcome.hits).toBeGreaterThan(100);
    expect(outcome.evictions).toBeGreaterThan(50);
  });

  test("llm-d's group at its 64-token floor: the pods' 16-token blocks are hashed 64 at a time (seed 10)", () => {
    const outcome = run({
      group: LLMD, parameters: {}, model: llmd({ minBlockSizeTokens: 64 }),
      blockChars: 256, pods: 3, podBlockSize: 16, numGpuBlocks: 24, maxPromptBlocks: 6, steps: 300, batches: true,
    }, 10);
    expect(outcome.hits).toBeGreaterThan(50);
    expect(outcome.evictions).toBeGreaterThan(20);
  });

  test.each([
    ["llm-d's group, a 5-block token window", LLMD, { minBlockSizeTokens: 1, blockSizeTokens: 2, maxPrefixTokensToMatch: 10 }, { blockSizeTokens: 2, maxPrefixTokensToMatch: 10 }],
    ["GIE's group, a 5-block window", GIE, { blockSizeTokens: 2, maxPrefixBlocksToMatch: 5 }, { blockSizeTokens: 2, maxPrefixBlocksToMatch: 5 }],
  ] as const)('prompts past the window: %s (seed 11)', (_, group, parameters, over) => {
    const outcome = run({
      group, parameters: { ...parameters, autoTune: false, lruCapacityPerServer: 100000 },
      model: (group === GIE ? gie : llmd)({ ...over, autoTune: false, lruCapacityPerServer: 100000 }),
      blockChars: 8, pods: 3, podBlockSize: 0, numGpuBlocks: 0, maxPromptBlocks: 14, steps: 400, chat: true, pastWindow: true,
    }, 11);
    expect(outcome.hits).toBeGreaterThan(100);
  });

  // llm-d-router v0.10.0 approximateprefix/plugin.go resolveMaxBlocks (lines 367-375) and types.go ("Setting both caps
  // to 0 matches the whole prompt"); its plugin_test.go TestMaxPrefixBothCapsZeroMatchesEverything.
  test("llm-d's group with both caps 0 matches the whole prompt (seed 12)", () => {
    const outcome = run({
      group: LLMD, parameters: { minBlockSizeTokens: 1, blockSizeTokens: 2, autoTune: false, maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 0, lruCapacityPerServer: 2000 },
      model: llmd({ blockSizeTokens: 2, autoTune: false, maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 0, lruCapacityPerServer: 2000 }),
      blockChars: 8, pods: 3, podBlockSize: 0, numGpuBlocks: 0, maxPromptBlocks: 300, steps: 150, batches: true,
    }, 12);
    expect(outcome.hits).toBeGreaterThan(30);
  });
  test("both caps 0 hash past llm-d-router v0.10.0's default 2048 blocks: the whole prompt is the window", () => {
    const scorer = loadScorer(LLMD, { minBlockSizeTokens: 1, blockSizeTokens: 1, autoTune: false, maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 0, lruCapacityPerServer: 10000 });
    const [a, b] = [snapshot({ id: 'a:8000', blockSize: 0, numGpuBlocks: 0 }), snapshot({ id: 'b:8000', blockSize: 0, numGpuBlocks: 0 })];
    const cycleOf = (prompt: string): CycleContext => ({ request: { requestId: 'r', model: 'm', prompt, headers: {} }, state: new CycleState() });
    const random = seededRandom(99);
    const shared = text(random, 4 * 2500);
    const first = cycleOf(shared + text(random, 4 * 500));
    scorer.score(first, [a, b]);
    scorer.postCycle(first, { targets: [a], scores: new Map() });
    // 2500 of 3000 one-token blocks held: a cap at 2048 blocks would read a full match.
    expect(scorer.score(cycleOf(shared + 'X'.repeat(4 * 500)), [a, b])).toEqual([2500 / 3000, 0]);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Upstream's own table tests, ported. Its tests send token ids; llm-d-router v0.10.0's estimate packs a text prompt into
// pseudo-tokens of 4 bytes (tokenizer/estimate.go packBytes), which is what kvroute's characters are, so a token here
// is 4 characters of a completion's prompt.

/** A prompt of the given "token ids", 4 characters each. */
const tokens = (...ids: number[]): string => ids.map((id) => `${String(id).padStart(3, '0')};`).join('');

describe("llm-d-router v0.10.0 approximateprefix plugin_test.go and indexer_test.go, ported to kvroute's prefix-cache-scorer", () => {
  const podOf = (name: string, blockSize = 0, numGpuBlocks = 0) => snapshot({ id: `${name}:8000`, blockSize, numGpuBlocks });
  const request = (prompt: string | string[], model = 'test-model'): CycleContext => {
    const parsed = parseRequestBody(Buffer.from(JSON.stringify({ model, prompt })), '/v1/completions');
    return { request: { requestId: 'r', model, prompt: parsed.prompt, input: parsed.input, headers: {} }, state: new CycleState() };
  };
  /** Scores `prompt` on `pods`, then records it on `picked` (Produce, then PreRequest). */
  const route = (scorer: PrefixCacheScorer, prompt: string | string[], pods: EndpointSnapshot[], picked?: EndpointSnapshot): number[] => {
    const cycle = request(prompt);
    const scores = scorer.score(cycle, pods);
    if (picked !== undefined) scorer.postCycle(cycle, { targets: [picked], scores: new Map() });
    return scores;
  };
  /** disableMinBlockSizeClamp: the 64-token floor lowered to 1 for small blocks. */
  const small = (parameters: Record<string, unknown>) => loadScorer(LLMD, { minBlockSizeTokens: 1, ...parameters });
  const [pod1, pod2] = [podOf('pod1'), podOf('pod2')];

  test('TestProduce, TestPreRequest "Basic cache update", TestPrefixPluginMatchesSameTokens: 2 tokens at blockSize 1 are 2 blocks, none matched, then all held by the pick', () => {
    const scorer = small({ blockSizeTokens: 1 });
    expect(route(scorer, tokens(1, 2), [pod1, pod2], pod1)).toEqual([0, 0]);
    expect(scorer.index.blocksOf(pod1.endpoint.key)).toHaveLength(2);
    expect(route(scorer, tokens(1, 2), [pod1, pod2])).toEqual([1, 0]);
  });

  test('TestPreRequest "Respects LRUCapacityPerServer config": of three one-block prompts on an LRU of 2, the first is evicted', () => {
    const scorer = small({ autoTune: false, blockSizeTokens: 1, lruCapacityPerServer: 2 });
    for (const id of [1, 2, 3]) route(scorer, tokens(id), [pod1], pod1);
    expect([1, 2, 3].map((id) => route(scorer, tokens(id), [pod1])[0])).toEqual([0, 1, 1]);
  });

  test('TestPrefixPluginPartialPrefixMatch: [1, 3] after [1, 2] on pod1 matches 1 of 2 blocks there, none elsewhere', () => {
    const scorer = small({ blockSizeTokens: 1 });
    route(scorer, tokens(1, 2), [pod1, pod2], pod1);
    expect(route(scorer, tokens(1, 3), [pod1, pod2])).toEqual([0.5, 0]);
  });

  test('TestPrefixPluginPrefixGrowth: a prompt extending the last one matches its blocks of the longer total', () => {
    const scorer = small({ autoTune: false, blockSizeTokens: 2 });
    route(scorer, tokens(1, 2, 3, 4, 5, 6), [pod1], pod1);
    expect(route(scorer, tokens(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), [pod1])).toEqual([3 / 6]);
  });

  test("TestPrefixPluginAutoTune: the pod's 128-token blocks win over blockSizeTokens 256, and its 1000 GPU blocks over lruCapacityPerServer 1", () => {
    const scorer = loadScorer(LLMD, { autoTune: true, blockSizeTokens: 256, lruCapacityPerServer: 1 });
    const pod = podOf('pod-autotune', 128, 1000);
    const prompt = tokens(...Array.from({ length: 192 }, (_, i) => i + 1));
    route(scorer, prompt, [pod], pod);
    // 192 tokens at 128 a block: 2 blocks (the short last one hashed too).
    expect(scorer.index.blocksOf(pod.endpoint.key)).toHaveLength(2);
    expect(scorer.index.capacityOf(pod.endpoint.key)).toBe(1000);
  });

  test('TestMaxPrefixTokensToMatch and TestMaxPrefixBothCapsZeroMatchesEverything: 2 tokens cap at 2 blocks; 0 tokens fall back to 3 blocks; both 0 hash all 4', () => {
    // The blocks a 4-token prompt is hashed to: 1 ÷ the score of a prompt sharing its first block with one held. (Not
    // the entries recorded: past the window kvroute records a few tail probes too.)
    const blocksHashed = (parameters: Record<string, unknown>): number => {
      const scorer = small({ blockSizeTokens: 1, autoTune: false, ...parameters });
      route(scorer, tokens(1, 9, 9, 9), [pod1], pod1);
      return 1 / route(scorer, tokens(1, 2, 3, 4), [pod1])[0]!;
    };
    expect(blocksHashed({ maxPrefixTokensToMatch: 2 })).toBe(2);
    expect(blocksHashed({ maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 3 })).toBe(3);
    expect(blocksHashed({ maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 0 })).toBe(4);
  });

  test('TestGetBlockSize_*: a block size under 64 tokens, from the pod, the fallback or the config, is raised to 64; 128 passes', () => {
    // 512 tokens: 8 blocks of 64, 4 of 128.
    const prompt = tokens(...Array.from({ length: 512 }, (_, i) => i));
    const blocksHashed = (parameters: Record<string, unknown>, pod: EndpointSnapshot): number => {
      const scorer = loadScorer(LLMD, parameters);
      route(scorer, prompt, [pod], pod);
      return scorer.index.blocksOf(pod.endpoint.key).length;
    };
    expect(blocksHashed({ autoTune: true, blockSizeTokens: 16 }, podOf('p', 16, 100))).toBe(8);
    expect(blocksHashed({ autoTune: true, blockSizeTokens: 16 }, podOf('p', 128, 100))).toBe(4);
    expect(blocksHashed({ autoTune: false, blockSizeTokens: 32 }, podOf('p'))).toBe(8);
    expect(blocksHashed({ autoTune: true, blockSizeTokens: 16 }, podOf('p'))).toBe(8);
  });

  test('TestProduce_MultiPrompt, TestMultiPromptMatchAggregation, TestMultiPromptPartialMatch: a batch\'s prompts are hashed and matched one by one, summed', () => {
    const scorer = small({ blockSizeTokens: 1 });
    expect(route(scorer, [tokens(1, 2, 3), tokens(4, 5)], [pod1], pod1)).toEqual([0]);
    expect(scorer.index.blocksOf(pod1.endpoint.key)).toHaveLength(5);
    expect(route(scorer, [tokens(1, 2, 3), tokens(4, 5)], [pod1])).toEqual([5 / 5]);
    const other = small({ blockSizeTokens: 1 });
    route(other, [tokens(1, 2), tokens(3, 4)], [pod1], pod1);
    expect(route(other, [tokens(1, 2), tokens(5, 6)], [pod1])).toEqual([2 / 4]);
  });

  test("lruCapacityPerServer: 0 is upstream's default of 31250 (plugin.go makeserver: a size only when > 0, else defaultLRUCapacityPerServer)", () => {
    for (const group of [LLMD, GIE]) {
      const scorer = loadScorer(group, { autoTune: false, lruCapacityPerServer: 0 });
      route(scorer, tokens(...Array.from({ length: 300 }, (_, i) => i)), [pod1], pod1);
      expect(scorer.index.capacityOf(pod1.endpoint.key)).toBe(31250);
    }
  });

  test('indexer_test.go TestIndexer_AddAndGet: the pod\'s own size (2) wins over the default (3); a third block evicts the first', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 3 });
    index.setCapacity('server1', 2);
    index.record('server1', [1]);
    expect(index.blocksOf('server1')).toEqual([1]);
    index.record('server1', [2]);
    index.record('server1', [3]);
    expect(index.blocksOf('server1')).toEqual([2, 3]);
    expect(index.longestPrefixMatches([4])).toEqual(new Map());
  });

  test('indexer_test.go TestIndexer_RemovePodAndEviction: an eviction takes the block from its pod only; a removed pod holds nothing', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 10 });
    for (let h = 0; h < 10; h++) {
      index.record('server1', [h]);
      index.record('server2', [h]);
    }
    for (let h = 0; h < 10; h++) expect(index.longestPrefixMatches([h])).toEqual(new Map([['server1', 1], ['server2', 1]]));
    index.record('server1', [10]);
    expect(index.blocksOf('server1')).toHaveLength(10);
    expect(index.longestPrefixMatches([0])).toEqual(new Map([['server2', 1]]));
    index.removeEndpoint('server2');
    expect(index.longestPrefixMatches([0])).toEqual(new Map());
    for (let h = 1; h <= 10; h++) expect(index.longestPrefixMatches([h])).toEqual(new Map([['server1', 1]]));
    expect(index.size).toBe(10);
  });
});

describe("a chat's tools, which the template renders into the prompt (llm-d-router v0.10.0 tokenizer/estimate.go chatCompletionsBytes hashes their JSON ahead of the messages)", () => {
  const chat = (tools?: unknown[]): CycleContext => {
    const body = { model: 'm', messages: [{ role: 'system', content: 'You are a careful assistant. '.repeat(20) }, { role: 'user', content: 'What now?' }], ...(tools !== undefined ? { tools } : {}) };
    const parsed = parseRequestBody(Buffer.from(JSON.stringify(body)), '/v1/chat/completions');
    return { request: { requestId: 'r', model: 'm', prompt: parsed.prompt, input: parsed.input, headers: {} }, state: new CycleState() };
  };
  const tool = (name: string) => ({ type: 'function', function: { name, description: `Calls ${name}.`, parameters: { type: 'object', properties: { q: { type: 'string' } } } } });
  const [a, b] = [snapshot({ id: 'a:8000', blockSize: 0, numGpuBlocks: 0 }), snapshot({ id: 'b:8000', blockSize: 0, numGpuBlocks: 0 })];

  test.each([['GIE\'s group', GIE], ['llm-d\'s group', LLMD]])('%s: the same messages with other tools are another prompt; with the same tools, or none after none, the same', (_, group) => {
    const scorer = loadScorer(group, {});
    const served = (context: CycleContext): number[] => {
      const scores = scorer.score(context, [a, b]);
      scorer.postCycle(context, { targets: [a], scores: new Map() });
      return scores;
    };
    expect(served(chat([tool('search')]))).toEqual([0, 0]);
    // vLLM renders other tools into the prompt, so pod a holds none of this one's blocks: no hit may be predicted.
    expect(scorer.score(chat([tool('calendar')]), [a, b])).toEqual([0, 0]);
    expect(scorer.score(chat(), [a, b])).toEqual([0, 0]);
    expect(scorer.score(chat([tool('search')]), [a, b])).toEqual([1, 0]);
    served(chat());
    expect(scorer.score(chat(), [a, b])).toEqual([1, 0]);
    expect(scorer.score(chat([]), [a, b])).toEqual([1, 0]);
  });
});
