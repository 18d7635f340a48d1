/**
 * What each pod's vLLM holds in its KV cache, built from the pods' own KV events: a dual-key index in the shape
 * llm-d-kv-cache converged on (llm-d/llm-d-kv-cache pkg/kvcache/kvblock @ v0.5.0, "decouple key handling"):
 *
 * - kvroute's own block key (`blockKey`, chained over token ids from a root per LoRA adapter) is what requests are
 *   looked up by. It is computed from the token ids in each `BlockStored` event, so it does not depend on the engine's
 *   hash algorithm: vLLM's `builtin` hash (the seed's) works, and `PYTHONHASHSEED` need not be aligned; only the
 *   tokenizer, the block size and the extra keys must match.
 * - A per-pod map from each engine block hash to that key resolves `BlockRemoved` events (which carry engine hashes
 *   only) and a `BlockStored` event's `parent_block_hash`.
 *
 * vLLM caches duplicate physical blocks of one hash and removes them one at a time (vllm/v1/core/block_pool.py
 * @ v0.10.0: `cached_block_hash_to_block` is `{hash: {block_id: block}}`), so holdings are counted, per tier: a
 * block leaves a pod's set only when its last copy is evicted. Entries per pod are bounded: beyond a pod's capacity
 * (its real KV capacity when known) the longest-unconfirmed keys go, because a pod cannot hold more blocks than it
 * has, so such entries can only be leftovers of lost events. All pods together are bounded by `maxEntries`, for the
 * EPP's memory: past it every pod keeps the same fraction of its capacity, its most recently stored or used blocks.
 * Either bound drops a chain from its tail: a stored block is kept just below its parent in recency (`storeKeyed`).
 * Speculative marks of blocks a pod lacks are bounded apart, by the same capacity (`speculate`): the reasoning above
 * holds for what the events confirmed only, and a mark must not push out a block the pod holds.
 */
import { KeyLru } from './key-lru';
import { startsChain } from './chain-start';
import { shareBudget, type BudgetShare } from '../scheduling/plugins/index-budget';
import { beginBlockKey, blockKey, endBlockKey, extendBlockKey, type PartialBlockKey } from '../scheduling/plugins/prefix-hash';
import { engineKeyOf } from './engine-hash';
import type { BlockRemoved, BlockStored } from '@kvroute/protocol/kv-events';

/**
 * A storage tier: the event's `medium` lower-cased, `gpu` when absent (as before vLLM 0.10.2). Any name is a tier, as in
 * llm-d-kv-cache (pkg/kvevents/pool.go: `defaultEventSourceDeviceTier`, `strings.ToLower(ev.DeviceTier)`): vLLM's
 * native offloading reports `CPU` (vllm/v1/kv_offload/mediums.py), and a KV connector passes on whatever its cache
 * reports (vllm/distributed/kv_transfer/kv_connector/v1/lmcache_connector.py copies LMCache's `medium`: `cpu`, a device
 * string, `CXL`). LMCache's events cover a chunk (256 tokens by default) under one hash, cut into blocks in `store`.
 */
export type Tier = string;

/**
 * A block's weight by the tier holding it (lower-case names). A tier not listed weighs 1, as in llm-d-kv-cache
 * (pkg/kvcache/kvblock_scorer.go, `fillMaxWeights`).
 */
export type TierWeights = ReadonlyMap<Tier, number>;

/** llm-d's defaults (llm-d/llm-d-kv-cache pkg/kvcache/backend.go: gpu 1.0, cpu 0.8). */
export const DEFAULT_TIER_WEIGHTS: TierWeights = new Map([['gpu', 1], ['cpu', 0.8]]);

/** Copies on GPU and on CPU are fields (the tiers vLLM reports itself; most entries hold nothing else). */
interface Holding extends TierCopies {
  /** Until when (ms) a speculative entry counts, when the pod holds no confirmed copy. */
  speculativeUntil: number;
}

/** `speculate`'s answer when its sweep dropped no other pod's marks. */
const NONE: readonly string[] = Object.freeze([]);

function copiesOf(h: TierCopies): number {
  let n = h.gpu + h.cpu;
  if (h.others !== undefined) for (const c of h.others.values()) n += c;
  return n;
}

interface PodState {
  /** Engine block hash → own key, for removals and parents (a chunk's last key, see `chunkKeys`). */
  readonly engineToKey: Map<string, number>;
  /**
   * Engine hash → own keys, for a hash that stands for several blocks: an event whose block_size is a multiple of the
   * configured one (an LMCache chunk, or vLLM at a larger --block-size), cut into blocks as llm-d-kv-cache @ 7be76e1
   * does (pool.go computes request keys at the canonical block size; `Index.Add` maps one engine key to many).
   */
  readonly chunkKeys: Map<string, readonly number[]>;
  /**
   * Engine hash → its engine block, for vLLM at a smaller --block-size than the config's (several engine blocks to one
   * configured block, llm-d's many:1): its copies by tier, the configured key hashed as far as it when it ends inside a
   * configured block (a later event may continue the chain from any engine block), and the configured blocks completed
   * through it.
   */
  readonly parts: Map<string, Part>;
  /** Own key → the configured block made of parts (many:1). */
  readonly splitBlocks: Map<number, SplitBlock>;
  /** Most engine blocks to one configured block seen on this pod (1 until a many:1 event): bounds `parts`. */
  splitRatio: number;
  /** `parts` beyond this start a pass over them (`trim`). */
  prunePartsAt: number;
  /** Stores and continuations of parts so far (`Part.usedAt`). */
  partClock: number;
  /** `engineToKey` beyond this (and its bound in `trim`) starts a pass over it. */
  pruneHashesAt: number;
  /** Passes over `engineToKey` so far (for the bound's tests). */
  hashPasses: number;
  /** KV-cache groups of this pod's vLLM that are not full attention (learned from `BlockStored`), whose events are skipped. */
  readonly otherGroups: Set<number>;
  /** Own keys this pod holds a copy of, least recently stored or used first (see `KeyLru` for why not a Map). */
  readonly keys: KeyLru;
  /**
   * Keys the pod holds only a speculative mark of (no copy), least recently marked or used first: bounded apart from
   * `keys`, by the same capacity, so that marking a request's new blocks never drops a block the pod's events said it
   * holds (see `speculate`).
   */
  readonly marks: KeyLru;
  /**
   * Keys indexed by parent recovery without an engine hash (the blocks before the recovered parent): a copy no event
   * named. A later `BlockStored` of one is that block cached again, not a second copy (see `storeKeyed`).
   */
  readonly unhashed: Set<number>;
  /** The pod's capacity, kept across `clearPod` (a pod's KV cache does not shrink when its events are lost). */
  readonly share: PodShare;
}

/** Copies of a block by tier, as vLLM reports them (`BlockStored` adds one, `BlockRemoved` takes one). */
interface TierCopies {
  gpu: number;
  cpu: number;
  /** Copies in any other tier (an offloading connector's), by name; undefined while there are none. */
  others: Map<Tier, number> | undefined;
}

/**
 * An engine block of a configured block (many:1). Its copies count per tier like a block's, except that a tier it was
 * never reported in reads -1 (`gpu`, `cpu`; absent from `others`), not 0: a configured block is held in a tier as many
 * times as its scarcest engine block that the tier reports (`splitCopies`). vLLM's OffloadingConnector names only the
 * last engine block of each offloaded group in its CPU events, so a configured block whose group is offloaded whole is
 * one CPU copy, where counting the unnamed parts as 0 would make it none (vllm/distributed/kv_transfer/kv_connector/v1/
 * offloading/scheduler.py `_get_block_hashes`: every `block_size_factor`-th hash, the last of each group).
 */
interface Part extends TierCopies, PartialBlockKey {
  // When the engine block ends inside a configured block (`length` > 0): that block's key hashed as far as here (the
  // lanes `a`, `b` and `length`) and what finishing it needs. Kept inline, not as an object of their own: a part is
  // one object, most of a many:1 entry's memory.
  a: number;
  b: number;
  /** Tokens of the configured block hashed as far as here; 0 when the engine block completes a configured one. */
  length: number;
  /** The chain's key before the configured block being filled: the last completed one, or the adapter's root. */
  base: number;
  /** Whether `base` is a root (the chain's start), which is no entry. */
  atStart: boolean;
  /** The extra keys of the chain's first configured block (its `cache_salt`), when `base` is the root. */
  extra: ArrayLike<number> | undefined;
  /** The configured block's engine block before this one, when this is not its first. */
  previous: Part | undefined;
  /**
   * The configured block this engine block completes (`length` 0), kept as long as the part, so that a later store of
   * the part (a tokenless offload) finds its block again; or, for an engine block ending inside a configured block, the
   * first configured block completed through it that the pod holds.
   */
  block: SplitBlock | undefined;
  /**
   * More configured blocks completed through this engine block and held, by key: continuations that share it (a
   * system prompt ending inside a configured block, or the first engine block, which nearly every prompt shares). A
   * block leaves when its key leaves the pod (`unlinkSplit`), so this is bounded by the pod's capacity.
   */
  moreBlocks: Map<number, SplitBlock> | undefined;
  /**
   * When the part was last stored or continued (the pod's `partClock`): the parts' cap forgets the least recently
   * first. A stamp, not the Map's order: moving a part by `delete(hash); set(hash, …)` left a dead copy in its hash
   * chain until a rehash, and a system prompt's last engine block, continued by every request, grew a chain each
   * lookup walked (80 µs an event at capacity 16,384, 41 µs now: `bench:hot-keys`; see `KeyLru`).
   */
  usedAt: number;
}

function blocksOfPart(p: Part): readonly SplitBlock[] {
  if (p.block === undefined) return [];
  return p.moreBlocks === undefined ? [p.block] : [p.block, ...p.moreBlocks.values()];
}

/** Records that `block` was completed through `p`, replacing an earlier record of the same key. */
function linkBlock(p: Part, block: SplitBlock): void {
  if (p.block === undefined || p.block.key === block.key) p.block = block;
  else (p.moreBlocks ??= new Map()).set(block.key, block);
}

/** Forgets that the block of `key` was completed through `p` (a carry: the completing part keeps its `block`). */
function unlinkBlock(p: Part, key: number): void {
  const more = p.moreBlocks;
  if (p.block?.key === key) {
    const next = more?.values().next().value;
    p.block = next;
    if (next !== undefined) more!.delete(next.key);
  } else if (more === undefined || !more.delete(key)) {
    return;
  }
  if (more !== undefined && more.size === 0) p.moreBlocks = undefined;
}

/** A configured block made of several engine blocks (many:1). */
interface SplitBlock {
  readonly key: number;
  /** Its engine blocks, in order, as last completed. */
  parts: readonly Part[];
}

/** A part's copies in `tier`; -1 when the tier never reported it. */
function partCopies(p: Part, tier: Tier): number {
  if (tier === 'gpu') return p.gpu;
  if (tier === 'cpu') return p.cpu;
  return p.others?.get(tier) ?? -1;
}

function addPartCopy(p: Part, tier: Tier): void {
  if (tier === 'gpu') p.gpu = Math.max(0, p.gpu) + 1;
  else if (tier === 'cpu') p.cpu = Math.max(0, p.cpu) + 1;
  else (p.others ??= new Map()).set(tier, Math.max(0, p.others.get(tier) ?? 0) + 1);
}

/** One copy leaves `tier`; false when the part held none there. A tier keeps its 0: it reported the part. */
function takePartCopy(p: Part, tier: Tier): boolean {
  const copies = partCopies(p, tier);
  if (copies <= 0) return false;
  if (tier === 'gpu') p.gpu--;
  else if (tier === 'cpu') p.cpu--;
  else p.others!.set(tier, copies - 1);
  return true;
}

function partHeld(p: Part): boolean {
  if (p.gpu > 0 || p.cpu > 0) return true;
  if (p.others !== undefined) for (const c of p.others.values()) if (c > 0) return true;
  return false;
}

/**
 * Copies of a configured block in `tier`: its scarcest part's among the parts the tier reported; none unless the tier
 * reported the part that ends it. vLLM's OffloadingConnector offloads groups of `block_size_factor` engine blocks from
 * the request's start and names each by its last; when groups are smaller than a configured block they tile it, so
 * the last group names its last part, and a block whose last part the tier never named is not whole there.
 */
function splitCopies(block: SplitBlock, tier: Tier): number {
  if (partCopies(block.parts[block.parts.length - 1]!, tier) < 0) return 0;
  let copies = -1;
  for (const p of block.parts) {
    const c = partCopies(p, tier);
    if (c >= 0 && (copies < 0 || c < copies)) copies = c;
  }
  return Math.max(0, copies);
}

function tierCopies(h: TierCopies, tier: Tier): number {
  if (tier === 'gpu') return h.gpu;
  if (tier === 'cpu') return h.cpu;
  return h.others?.get(tier) ?? 0;
}

interface PodShare extends BudgetShare {
  /** Blocks the pod can hold: its `num_gpu_blocks`, or the default until scraped. */
  wanted: number;
  /**
   * Its events have stored a copy on a tier other than GPU (CPU offloading): it holds more than `num_gpu_blocks`. Kept
   * across `clearPod`, as the share is (a reset does not stop a pod offloading).
   */
  offloads?: boolean;
}

/** Why a stored event (or part of it) was not indexed. */
export type StoreSkip = 'unknown-parent' | 'block-size-mismatch' | 'no-tokens' | 'other-group';

/**
 * The cache-spec kinds whose blocks hold the whole prefix (vLLM's `KVCacheSpecKind`, reported as `kv_cache_spec_kind`
 * since #40984; the names llm-d-kv-cache maps to full attention). A hybrid model's vLLM (#37688) sends every event
 * once per KV-cache group, the groups sharing one hash list: the sliding-window group drops blocks that left its
 * window while the full-attention group still holds them, and a Mamba group keeps state, not a prefix. Only the
 * full-attention group's events describe which prefixes a request can hit.
 */
export const FULL_ATTENTION_KINDS: ReadonlySet<string> = new Set(['full_attention', 'mla_attention', 'sink_full_attention']);

export interface StoreOutcome {
  readonly stored: number;
  readonly skipped?: StoreSkip;
  /**
   * Blocks of `stored` indexed by their engine hash alone, because the event's token ids could not key them (none,
   * or not `blockSize` per block): llm-d-kv-cache's way (`engine-hash.ts`). Such a block matches requests only through
   * the engine-hash chain, when the engine hashes with `sha256_cbor` and the configured seed.
   */
  readonly byEngineHash?: number;
  /**
   * The event's parent was unknown to this index and was found among the requests recently routed to the pod
   * (`noteRouted`): the pod's prefix through it was indexed too (see `recoverParent`).
   */
  readonly recoveredParent?: true;
}

/** A request this EPP routed to a pod: its own keys, the root they chain from and the token ids they were made from. */
interface RoutedRequest {
  readonly pod: string;
  readonly root: number;
  readonly keys: readonly number[];
  readonly ids: ArrayLike<number>;
  /** Block positions (from 1) by their first token, made at the first recovery that looks at the request. */
  byFirstToken?: Map<number, number[]>;
}

/**
 * Requests remembered for `recoverParent`, across all pods: at most this many, the newest. Each holds references to the
 * request's keys and token ids (made for scoring anyway).
 */
const ROUTED_REQUESTS_KEPT = 256;
/**
 * And at most this many of their prompt tokens together (~16 MiB of ids, with their keys ~18 MiB): 256 long-context
 * prompts would otherwise hold hundreds of megabytes of the EPP's 1 GiB.
 */
const ROUTED_TOKENS_KEPT = 4 * 1024 * 1024;

/** A routed request's full blocks from the second on, by their first token (made once, at its first recovery). */
function positionsOf(routed: RoutedRequest, bs: number): Map<number, number[]> {
  if (routed.byFirstToken !== undefined) return routed.byFirstToken;
  const byFirstToken = new Map<number, number[]>();
  const blocks = Math.min(routed.keys.length, Math.floor(routed.ids.length / bs));
  for (let j = 1; j < blocks; j++) {
    const first = routed.ids[j * bs]!;
    const list = byFirstToken.get(first);
    if (list === undefined) byFirstToken.set(first, [j]);
    else list.push(j);
  }
  routed.byFirstToken = byFirstToken;
  return byFirstToken;
}

export interface PrefixMatch {
  /** Leading request blocks the pod holds without a gap. */
  readonly blocks: number;
  /** The same, each block weighted by the best tier it is held in. */
  readonly weight: number;
}

function tierOf(medium: string | null | undefined): Tier {
  return medium === undefined || medium === null || medium === '' ? 'gpu' : medium.toLowerCase();
}

function addCopy(h: TierCopies, tier: Tier): void {
  if (tier === 'gpu') h.gpu++;
  else if (tier === 'cpu') h.cpu++;
  else (h.others ??= new Map()).set(tier, (h.others.get(tier) ?? 0) + 1);
}

/** One copy leaves `tier`; a removal for a tier holding none is ignored. */
function takeCopy(h: TierCopies, tier: Tier): void {
  if (tier === 'gpu') {
    if (h.gpu > 0) h.gpu--;
  } else if (tier === 'cpu') {
    if (h.cpu > 0) h.cpu--;
  } else if (h.others !== undefined) {
    const copies = h.others.get(tier) ?? 0;
    if (copies > 1) h.others.set(tier, copies - 1);
    else if (h.others.delete(tier) && h.others.size === 0) h.others = undefined;
  }
}

export class KvBlockIndex {
  private readonly holders = new Map<number, Map<string, Holding>>();
  private readonly pods = new Map<string, PodState>();
  private readonly shares = new Map<string, PodShare>();
  /** When `sweepLapsedMarks` next drops every pod's lapsed marks, not only the picked pod's (its `now`, ms). */
  private lapsedSweepAt = Number.NEGATIVE_INFINITY;
  private readonly gpuWeight: number;
  private readonly cpuWeight: number;

  constructor(
    /**
     * Tokens per block; events with real token ids at a multiple of it are cut into blocks, at a divisor gathered
     * into blocks, at any other size skipped (and counted), never mis-keyed;
     * events whose token ids cannot be the blocks' (none on GPU, or not block_size per block) are keyed by engine hash.
     */
    readonly blockSize: number,
    /** Entries per pod until its real capacity is known. */
    private readonly defaultCapacity: number,
    private readonly weights: TierWeights = DEFAULT_TIER_WEIGHTS,
    /** Entries all pods together may hold; beyond, every pod's capacity is scaled alike (`index-budget.ts`). */
    readonly maxEntries: number = Number.POSITIVE_INFINITY,
  ) {
    this.gpuWeight = weights.get('gpu') ?? 1;
    this.cpuWeight = weights.get('cpu') ?? 1;
  }

  /** Pods with any entry. */
  get podCount(): number {
    return this.pods.size;
  }

  /** Requests recently routed, oldest first (`noteRouted`), and their prompt tokens together. */
  private readonly routed: RoutedRequest[] = [];
  private routedTokens = 0;
  /** (block, pod) entries, confirmed and speculative. */
  get size(): number {
    let n = 0;
    for (const pod of this.pods.values()) n += pod.keys.size + pod.marks.size;
    return n;
  }

  /** Engine blocks kept for one pod's configured blocks of several (many:1): for tests and the memory bound. */
  splitPartsOf(pod: string): number {
    return this.pods.get(pod)?.parts.size ?? 0;
  }

  /** Passes `trim` made over a pod's engine hashes, pruning those of dropped keys: for the bound's tests. */
  engineHashPassesOf(pod: string): number {
    return this.pods.get(pod)?.hashPasses ?? 0;
  }

  /** Configured blocks one engine block lists as completed through it or by it (many:1): for the memory bound's tests. */
  splitBlocksThrough(pod: string, hash: string): number {
    const part = this.pods.get(pod)?.parts.get(hash);
    return part === undefined ? 0 : blocksOfPart(part).length;
  }

  /** Entries held for one pod (blocks it holds a copy of, and speculative marks). */
  blocksOf(pod: string): number {
    const state = this.pods.get(pod);
    return state === undefined ? 0 : state.keys.size + state.marks.size;
  }

  /** The entries a pod may hold now (its capacity after the budget); undefined for an unknown pod. */
  capacityOf(pod: string): number | undefined {
    return this.shares.get(pod)?.capacity;
  }

  /** Makes a pod known with the default capacity, so it has its share of the budget before its first event. */
  addPod(pod: string): void {
    this.share(pod);
  }

  /**
   * Bounds a pod's entries by what it can hold (vLLM's `num_gpu_blocks` plus its CPU blocks), scaled down with every
   * other pod's while they add up to more than `maxEntries`.
   */
  setCapacity(pod: string, blocks: number): void {
    const share = this.share(pod);
    const wanted = Math.max(1, Math.floor(blocks));
    if (share.wanted === wanted) return;
    share.wanted = wanted;
    this.rebalance();
  }

  /**
   * Indexes a `BlockStored` event: the keys of its blocks are computed from its token ids, chained on the key of its
   * parent (or `root` for a chain starting at the first block).
   */
  store(pod: string, event: BlockStored, root: number, extraForFirstBlock?: ArrayLike<number>): StoreOutcome {
    const state = this.pod(pod);
    const group = event.groupIdx ?? null;
    if (group !== null && event.kvCacheSpecKind !== undefined && event.kvCacheSpecKind !== null) {
      if (!FULL_ATTENTION_KINDS.has(event.kvCacheSpecKind)) {
        state.otherGroups.add(group);
        return { stored: 0, skipped: 'other-group' };
      }
      state.otherGroups.delete(group);
    } else if (group !== null && state.otherGroups.has(group)) {
      return { stored: 0, skipped: 'other-group' };
    }
    const tier = tierOf(event.medium);
    if (event.tokenIds.length === 0) {
      // Offload events carry no tokens (vLLM's OffloadingConnector): only blocks already known by hash gain a copy in
      // that tier, as llm-d-kv-cache's `handleDeviceTierUpdate` (pool.go @ v0.8.1) does, on every configured block an
      // engine hash covers (vLLM offloaded all its tokens; upstream's `GetRequestKey` copies only the last one). A GPU
      // store without tokens is a hash-only publisher's (llm-d-kv-cache v0.4.0's demo): indexed by engine hash.
      if (tier !== 'gpu') {
        let stored = 0;
        for (const hash of event.blockHashes) {
          const part = state.parts.get(hash);
          if (part !== undefined) {
            addPartCopy(part, tier);
            for (const block of this.blocksOfPartNow(state, part)) this.syncSplit(pod, state, block, tier, true);
            stored++;
            continue;
          }
          const key = state.engineToKey.get(hash);
          if (key === undefined) continue;
          for (const k of state.chunkKeys.get(hash) ?? [key]) this.add(pod, state, k, tier);
          stored++;
        }
        this.trim(pod, state);
        return stored === event.blockHashes.length ? { stored } : { stored, skipped: 'no-tokens' };
      }
      return this.storeByHash(pod, state, event.blockHashes, tier);
    }
    // The event's block_size is not trusted, as llm-d-kv-cache v0.7.1 does not (vllm_adapter.go: "consumed but not
    // stored"; pool.go re-cuts token_ids at the configured block size and indexes when that gives one key per hash).
    if (event.tokenIds.length !== event.blockHashes.length * this.blockSize) {
      // Real tokens at another block size. A multiple of the configured one (an LMCache chunk of 256 tokens under one
      // hash, or vLLM at a larger --block-size): each hash's tokens cut into blocks, as llm-d-kv-cache @ 7be76e1 does.
      // Anything else is skipped and counted, never mis-keyed (llm-d v0.7.1 skipped every such event).
      if (event.blockSize !== this.blockSize && event.tokenIds.length === event.blockHashes.length * event.blockSize) {
        if (event.blockSize > this.blockSize && event.blockSize % this.blockSize === 0) {
          return this.storeKeyed(pod, state, event, root, tier, event.blockSize / this.blockSize, extraForFirstBlock);
        }
        // A divisor of the configured size (vLLM's default --block-size 16 under a config of 64, as llm-d's guides
        // set): engine blocks are gathered into configured ones (llm-d-kv-cache @ 7be76e1's many:1).
        if (event.blockSize > 0 && event.blockSize < this.blockSize && this.blockSize % event.blockSize === 0) {
          return this.storeGathered(pod, state, event, root, tier, extraForFirstBlock);
        }
        return { stored: 0, skipped: 'block-size-mismatch' };
      }
      // Token ids that cannot be the blocks' own (placeholders, e.g. [1, 2, 3] with block_size 256): by engine hash.
      return this.storeByHash(pod, state, event.blockHashes, tier);
    }
    return this.storeKeyed(pod, state, event, root, tier, 1, extraForFirstBlock);
  }

  /**
   * Keys an event's blocks from its token ids, `perHash` configured blocks per engine hash (1 but for chunk events),
   * chained on the key of its parent (or `root` for a chain starting at the first block).
   */
  private storeKeyed(pod: string, state: PodState, event: BlockStored, root: number, tier: Tier, perHash: number, extraForFirstBlock?: ArrayLike<number>): StoreOutcome {
    // A parent of 0 is no parent (see startsChain).
    const chainStart = startsChain(event);
    let parent: number | undefined = chainStart ? root : state.engineToKey.get(event.parentBlockHash!);
    let recoveredParent = false;
    if (parent === undefined && perHash === 1) {
      parent = this.recoverParent(pod, state, event, root);
      recoveredParent = parent !== undefined;
    }
    if (parent === undefined) return { stored: 0, skipped: 'unknown-parent' };
    for (let h = 0; h < event.blockHashes.length; h++) {
      // Only a chunk needs its keys listed; a 1:1 event (every event vLLM sends) allocates nothing per block.
      const keys: number[] | undefined = perHash > 1 ? [] : undefined;
      for (let j = 0; j < perHash; j++) {
        const start = (h * perHash + j) * this.blockSize;
        const key = blockKey(parent, event.tokenIds, start, start + this.blockSize, chainStart && h === 0 && j === 0 ? extraForFirstBlock : undefined);
        // Just less recently used than its parent (the newest, when the chain starts here or the parent is not held):
        // over capacity the pod's chains then go from the tail and a block never outlives its parent, as in vLLM,
        // which frees a request's blocks in reverse "so that the tail blocks are evicted first"
        // (vllm/v1/core/kv_cache_manager.py `free` @ v0.10.0) and whose BlockStored names a parent the request holds.
        if (state.unhashed.size > 0 && state.unhashed.delete(key) && tier === 'gpu' && (this.holders.get(key)?.get(pod)?.gpu ?? 0) > 0) {
          // A block parent recovery indexed without its hash: vLLM stores a block only when it is not cached (a hit
          // sends nothing, block_pool.py `cache_full_blocks` @ v0.10.0), so the copy the recovery stood for was
          // evicted, its BlockRemoved naming a hash this index could not resolve, and this is the block cached again:
          // the one copy, now under a hash its next removal will find. Counted as a second, that removal left it held.
          state.keys.useBefore(key, parent);
        } else {
          this.add(pod, state, key, tier, parent);
        }
        keys?.push(key);
        parent = key;
      }
      const hash = event.blockHashes[h]!;
      // The same hash stored before by engine hash alone: its entry moves to the own key, or no BlockRemoved could
      // reach it.
      const previous = state.engineToKey.get(hash);
      if (previous !== undefined && previous < 0) this.drop(pod, state, previous);
      // A chunk's last key is its chain's tail: the next chunk's parent_block_hash resolves to it.
      state.engineToKey.set(hash, parent);
      if (keys !== undefined) state.chunkKeys.set(hash, keys);
      else state.chunkKeys.delete(hash);
    }
    this.trim(pod, state);
    return recoveredParent ? { stored: event.blockHashes.length * perHash, recoveredParent: true } : { stored: event.blockHashes.length * perHash };
  }

  /**
   * Remembers that `pod` was sent a request of these keys (chained from `root`, the adapter's) and token ids (the newest
   * `ROUTED_REQUESTS_KEPT`, within `ROUTED_TOKENS_KEPT` tokens), for `recoverParent`.
   */
  noteRouted(pod: string, root: number, keys: readonly number[], ids: ArrayLike<number>): void {
    if (keys.length < 2 || ids.length > ROUTED_TOKENS_KEPT) return;
    this.routed.push({ pod, root, keys, ids });
    this.routedTokens += ids.length;
    while (this.routed.length > ROUTED_REQUESTS_KEPT || this.routedTokens > ROUTED_TOKENS_KEPT) this.routedTokens -= this.routed.shift()!.ids.length;
  }

  /**
   * The own key of a `BlockStored`'s parent that this index never saw stored, from a request recently routed to the pod:
   * vLLM sends a block once, when it is first cached, and a hit sends nothing, so a prefix cached before this EPP
   * subscribed (an EPP restart, a replica that joined, a gap no replay covered) was never indexed, and every block
   * later stored on top of it names it as parent: without this, a hot system prompt or a long conversation stays
   * invisible for as long as it stays hot (llm-d-kv-cache skips such events too, `pkg/kvevents/pool.go`). The event's
   * tokens are a routed request's from its block `j` on (as far as both go): then the request's key `j - 1` is the
   * parent, and the pod holds blocks `0..j-1` (vLLM caches a block only on a cached parent,
   * vllm/v1/core/block_pool.py `cache_full_blocks`): they are indexed as stored, the parent under its engine hash (so
   * its BlockRemoved finds it), the blocks before it without one (no event will name them; the pod's capacity bound
   * ages them out). The tokens do not say which prefix they follow, so when the pod's recent requests put them after
   * two different prefixes (a shared document under two system prompts) nothing is recovered; a prefix no request
   * this EPP routed shows can still be taken for one that does. Only for events of the configured block size (1:1),
   * under the same adapter.
   */
  private recoverParent(pod: string, state: PodState, event: BlockStored, root: number): number | undefined {
    const bs = this.blockSize;
    const tokens = event.tokenIds;
    if (event.parentBlockHash === undefined || event.parentBlockHash === null || tokens.length < bs) return undefined;
    let found: { readonly routed: RoutedRequest; readonly j: number } | undefined;
    for (let back = this.routed.length - 1; back >= 0; back--) {
      const routed = this.routed[back]!;
      if (routed.pod !== pod || routed.root !== root) continue;
      for (const j of positionsOf(routed, bs).get(tokens[0]!) ?? []) {
        // Every token the event and the request share from block j on (the event may run on into generated tokens).
        const at = j * bs;
        const overlap = Math.min(tokens.length, routed.ids.length - at);
        let same = true;
        for (let k = 1; k < overlap && same; k++) same = routed.ids[at + k] === tokens[k];
        if (!same) continue;
        if (found !== undefined && routed.keys[j - 1] !== found.routed.keys[found.j - 1]) return undefined;
        found ??= { routed, j };
      }
    }
    if (found === undefined) return undefined;
    const { routed, j } = found;
    // The prefix's head last: the most recently used, as vLLM's free queue takes a request's blocks back tail first.
    for (let i = j - 1; i >= 0; i--) {
      const holding = this.holders.get(routed.keys[i]!)?.get(pod);
      if (holding === undefined || holding.gpu === 0) {
        this.add(pod, state, routed.keys[i]!, 'gpu');
        // The parent is mapped to its hash below; the blocks before it have none.
        if (i < j - 1) state.unhashed.add(routed.keys[i]!);
      } else {
        state.keys.use(routed.keys[i]!);
      }
    }
    state.engineToKey.set(event.parentBlockHash, routed.keys[j - 1]!);
    return routed.keys[j - 1];
  }

  /**
   * Keys an event of engine blocks smaller than the configured ones: every `blockSize / event.blockSize` engine blocks
   * make one configured block, keyed from their tokens once the last arrives, in this event or a later one chained on
   * it. llm-d-kv-cache @ 7be76e1 (pool.go, `Index.Add`) maps each engine key to the request key its position falls in
   * and keys only the event's own tokens from the parent's request key, so it keys right only events that start and end
   * on configured boundaries; a request continuing a prefix from inside a configured block (a shared system prompt that
   * is not a multiple of 64 tokens) is keyed from the carried tokens here.
   */
  private storeGathered(pod: string, state: PodState, event: BlockStored, root: number, tier: Tier, extraForFirstBlock?: ArrayLike<number>): StoreOutcome {
    const engineSize = event.blockSize;
    let base: number;
    let atStart: boolean;
    let previous: Part | undefined;
    let extra: ArrayLike<number> | undefined;
    let partial: PartialBlockKey;
    if (startsChain(event)) {
      base = root;
      atStart = true;
      extra = extraForFirstBlock;
      partial = beginBlockKey(base);
    } else {
      const parent = state.parts.get(event.parentBlockHash!);
      const key = state.engineToKey.get(event.parentBlockHash!);
      if (parent !== undefined) {
        // The one sign of use the events give an engine block (a hit sends none): the parts' cap forgets it last.
        parent.usedAt = ++state.partClock;
      }
      if (parent !== undefined && parent.length > 0) {
        ({ base, atStart, extra } = parent);
        previous = parent;
        partial = parent;
      } else if (key !== undefined && key >= 0) {
        base = key;
        atStart = false;
        partial = beginBlockKey(base);
      } else {
        return { stored: 0, skipped: 'unknown-parent' };
      }
    }
    // A chain continued at another engine block size could run past a configured block's end: never mis-keyed.
    if (partial.length % engineSize !== 0) {
      return { stored: 0, skipped: 'block-size-mismatch' };
    }
    const ratio = this.blockSize / engineSize;
    if (ratio > state.splitRatio) state.splitRatio = ratio;
    let stored = 0;
    for (let h = 0; h < event.blockHashes.length; h++) {
      const hash = event.blockHashes[h]!;
      const known = state.engineToKey.get(hash);
      if (known !== undefined && known < 0) this.drop(pod, state, known);
      let part = state.parts.get(hash);
      if (part !== undefined) {
        part.usedAt = ++state.partClock;
      } else {
        part = { gpu: -1, cpu: -1, others: undefined, a: 0, b: 0, length: 0, base: 0, atStart: false, extra: undefined, previous: undefined, block: undefined, moreBlocks: undefined, usedAt: ++state.partClock };
        state.parts.set(hash, part);
      }
      addPartCopy(part, tier);
      partial = extendBlockKey(partial, event.tokenIds, h * engineSize, (h + 1) * engineSize);
      if (partial.length < this.blockSize) {
        part.a = partial.a;
        part.b = partial.b;
        part.length = partial.length;
        part.base = base;
        part.atStart = atStart;
        part.extra = extra;
        part.previous = previous;
        previous = part;
        state.engineToKey.delete(hash);
        state.chunkKeys.delete(hash);
        continue;
      }
      // The configured block is complete: its parts are the carried ones (this event's or earlier) and this one.
      const key = endBlockKey(partial, atStart ? extra : undefined);
      const parts: Part[] = [part];
      for (let p = previous; p !== undefined; p = p.previous) parts.unshift(p);
      let block = state.splitBlocks.get(key) ?? (part.block?.key === key ? part.block : undefined);
      let otherChain = false;
      if (block === undefined) {
        block = { key, parts };
      } else if (block.parts !== parts) {
        // Completed again (a duplicate, or recomputed after an eviction): by these parts now. By another engine chain
        // (the same tokens under other hashes), the key is that chain's in every tier.
        otherChain = block.parts[block.parts.length - 1] !== part;
        this.unlinkSplit(block);
        block.parts = parts;
      }
      part.length = 0;
      part.previous = undefined;
      part.extra = undefined;
      part.block = block;
      state.chunkKeys.delete(hash);
      state.engineToKey.set(hash, key);
      // Just below its parent in recency, as `storeKeyed` keeps a chain (its tail goes first).
      this.syncSplit(pod, state, block, tier, true, base);
      if (otherChain) this.syncOtherTiers(pod, state, block, tier);
      if (state.keys.has(key)) this.linkSplit(state, block);
      stored++;
      base = key;
      atStart = false;
      extra = undefined;
      previous = undefined;
      partial = beginBlockKey(base);
    }
    this.trim(pod, state);
    return { stored };
  }

  /**
   * Brings a configured block's copies in `tier` to its parts' (`splitCopies`). Only a store may add copies: a removal
   * never brings back a block the pod's capacity dropped. A removal at `now` leaves a block that loses its last copy
   * its live speculative mark (see `remove`).
   */
  private syncSplit(pod: string, state: PodState, block: SplitBlock, tier: Tier, mayAdd: boolean, before?: number, now = Number.POSITIVE_INFINITY): number {
    const target = splitCopies(block, tier);
    const holding = this.holders.get(block.key)?.get(pod);
    let current = holding === undefined ? 0 : tierCopies(holding, tier);
    if (mayAdd) {
      for (; current < target; current++) this.add(pod, state, block.key, tier, before);
      if (state.splitBlocks.get(block.key) !== block && state.keys.has(block.key)) this.linkSplit(state, block);
      return 0;
    }
    if (holding === undefined) return 0;
    let taken = 0;
    for (; current > target; current--, taken++) takeCopy(holding, tier);
    if (taken > 0 && copiesOf(holding) === 0) {
      const until = holding.speculativeUntil;
      this.drop(pod, state, block.key);
      if (until > now && block.key >= 0) this.keepMark(pod, state, block.key, until);
    }
    return taken;
  }

  /**
   * Brings a configured block's copies in every tier but `tier` to its parts' (another chain took the key over): the
   * earlier chain's copies leave, the new chain's known copies come (a chain that takes a key back from CPU).
   */
  private syncOtherTiers(pod: string, state: PodState, block: SplitBlock, tier: Tier): void {
    const holding = this.holders.get(block.key)?.get(pod);
    if (holding === undefined) return;
    const tiers = new Set<Tier>(['gpu', 'cpu', ...(holding.others?.keys() ?? [])]);
    for (const p of block.parts) for (const t of p.others?.keys() ?? []) tiers.add(t);
    for (const t of tiers) {
      if (t === tier || !state.keys.has(block.key)) continue;
      this.syncSplit(pod, state, block, t, false);
      if (state.keys.has(block.key)) this.syncSplit(pod, state, block, t, true);
    }
  }

  /**
   * A removed engine block of a configured one (many:1): one copy leaves its tier, and each configured block made
   * with it keeps as many copies there as its scarcest part (vLLM can no longer hit it whole once a part is gone). The
   * part is forgotten when no tier holds it.
   */
  private removePart(pod: string, state: PodState, hash: string, part: Part, tier: Tier, now: number): number {
    if (!takePartCopy(part, tier)) return 0;
    let removed = 0;
    for (const block of this.blocksOfPartNow(state, part)) removed += this.syncSplit(pod, state, block, tier, false, undefined, now);
    if (!partHeld(part)) this.forgetPart(state, hash, part);
    return removed;
  }

  /**
   * The configured blocks an event naming `part` changes: those it is still a part of. One configured key can be
   * completed by two engine chains (the same tokens under other hashes: a multimodal prompt's placeholders, a
   * `cache_salt` the events do not carry), and the later completion is the key's; the earlier chain's events no longer
   * move its copies.
   */
  private blocksOfPartNow(state: PodState, part: Part): SplitBlock[] {
    const blocks: SplitBlock[] = [];
    for (const block of blocksOfPart(part)) {
      const current = state.splitBlocks.get(block.key);
      if ((current === undefined || current === block) && block.parts.includes(part)) blocks.push(block);
    }
    return blocks;
  }

  /** Forgets an engine block: its hash resolves no more. */
  private forgetPart(state: PodState, hash: string, part: Part): void {
    state.parts.delete(hash);
    if (part.length === 0 && part.block !== undefined && state.engineToKey.get(hash) === part.block.key) {
      state.engineToKey.delete(hash);
    }
  }

  /** A configured block the pod holds: found by its key, and by the engine blocks it was completed through. */
  private linkSplit(state: PodState, block: SplitBlock): void {
    state.splitBlocks.set(block.key, block);
    for (const p of block.parts) linkBlock(p, block);
  }

  /**
   * The configured block's key left the pod: its carries forget it (the completing part keeps it, for a later store of
   * that part to bring it back), so what a shared carry lists stays bounded by what the pod holds.
   */
  private unlinkSplit(block: SplitBlock): void {
    const last = block.parts.length - 1;
    for (let i = 0; i < last; i++) unlinkBlock(block.parts[i]!, block.key);
  }

  /** Whether any block was indexed by engine hash alone: requests then compute the engine-hash chain too. */
  get hasEngineHashKeys(): boolean {
    return this.engineKeyed > 0;
  }

  /** (block, pod) entries held under an engine key (negative keys): requests compute the engine chain only while any. */
  private engineKeyed = 0;

  /** Each hash's known own key, else its engine key (`engineKeyOf`); malformed hashes are skipped. */
  private storeByHash(pod: string, state: PodState, hashes: readonly string[], tier: Tier): StoreOutcome {
    let stored = 0;
    let byEngineHash = 0;
    for (const hash of hashes) {
      let key = state.engineToKey.get(hash);
      if (key === undefined) {
        try {
          key = engineKeyOf(hash);
        } catch {
          continue;
        }
        state.engineToKey.set(hash, key);
        byEngineHash++;
      }
      this.add(pod, state, key, tier);
      stored++;
    }
    this.trim(pod, state);
    return byEngineHash > 0 ? { stored, byEngineHash } : { stored };
  }

  /**
   * Applies a `BlockRemoved` event: one copy of each block leaves the tier it names. Unknown hashes are ignored. A
   * block whose last copy leaves keeps its speculative mark while the mark is live at `now` (ms; by default none is):
   * the mark says a request routed there will store the block, which a removal of an earlier copy does not undo
   * (vLLM recomputes it), as upstream's `BlockRemoved` evicts only the tier's confirmed entry and leaves the pod's
   * `Speculative` entry to its TTL (llm-d-router v0.10.0 pkg/kvevents/pool.go, PodEntry{DeviceTier}; in_memory.go
   * evictPodsFromRequestKey removes the entries given, and prerequest.go's TTL cache the speculative one).
   */
  remove(pod: string, event: BlockRemoved, now = Number.POSITIVE_INFINITY): number {
    const state = this.pods.get(pod);
    if (!state) return 0;
    // A group known not to be full attention shares the full group's hashes: its removals are not the prefix's.
    if (event.groupIdx !== undefined && event.groupIdx !== null && state.otherGroups.has(event.groupIdx)) return 0;
    const tier = tierOf(event.medium);
    let removed = 0;
    for (const hash of event.blockHashes) {
      const part = state.parts.get(hash);
      if (part !== undefined) {
        removed += this.removePart(pod, state, hash, part, tier, now);
        continue;
      }
      const key = state.engineToKey.get(hash);
      if (key === undefined) continue;
      // A chunk's hash takes one copy from each of its blocks.
      const chunk = state.chunkKeys.get(hash);
      let gone = 0;
      for (const k of chunk ?? [key]) {
        const holding = this.holders.get(k)?.get(pod);
        if (!holding) {
          gone++;
          continue;
        }
        takeCopy(holding, tier);
        removed++;
        if (copiesOf(holding) === 0) {
          // The last copy is gone; a live speculative mark stays (as a mark only) until its TTL, a lapsed one goes.
          const until = holding.speculativeUntil;
          this.drop(pod, state, k);
          if (until > now && k >= 0) this.keepMark(pod, state, k, until);
          gone++;
        }
      }
      if (gone === (chunk?.length ?? 1)) {
        state.engineToKey.delete(hash);
        state.chunkKeys.delete(hash);
      }
    }
    return removed;
  }

  /**
   * Marks `keys` as about to be cached on `pod` (the request was just sent there), until `until` (ms): a burst of
   * requests with the same new prefix then follows the first before the pod's events arrive. A real store confirms an
   * entry; otherwise it lapses, and is dropped at the next marking at `now` of this pod or, at most a TTL later, at any
   * pick (`sweepLapsedMarks`, oldest marks first). Returns the other pods whose lapsed marks that sweep dropped: their
   * entry counts changed.
   *
   * A mark is held apart from the blocks the pod's events confirmed (`marks`, bounded by the same capacity), as
   * upstream keeps its speculative pod entries apart (llm-d-router v0.10.0 preciseprefixcache/prerequest.go: entries
   * with `Speculative: true`, evicted on their TTL), so marks never take a confirmed block's place. Until session 73
   * they shared the pod's one bound: on a pod at capacity (a busy vLLM's cache is always full) every request's new
   * blocks dropped as many of its oldest confirmed blocks, by the index's guess of vLLM's eviction order. vLLM evicts
   * only free blocks (block_pool.py `get_new_blocks` pops the free queue; a running request's blocks are not in it) and
   * says which in `BlockRemoved`; the guess took the blocks of long-running requests, which vLLM still held and never
   * stores again (a hit sends nothing), so they scored 0 there until evicted for real (`test/kvindex-vllm-model.test.ts`).
   *
   * The keys become the pod's most recently used tail first, the head last, as `touch` orders them: the capacity bound
   * then drops the request's tail before its head. Head first (as until session 72) made the request's first block its
   * least recently used, so a request longer than the pod's share lost the system prompt it had just matched, first
   * block first, and every later request under that prompt scored 0 there (`test/kvindex-budget-hot-prefix.test.ts`).
   * vLLM's free queue gives a request's blocks back in reverse, "so that the tail blocks are evicted first"
   * (vllm/v1/core/kv_cache_manager.py `free` @ v0.10.0).
   */
  speculate(pod: string, keys: readonly number[], until: number, now?: number): readonly string[] {
    const state = this.pod(pod);
    let swept = NONE;
    // Marks that lapsed go first, oldest first, as upstream evicts its speculative entries on their TTL: left to the
    // capacity bound alone, a pod kept a full share of stale marks for good once enough requests were routed there,
    // twice the entries (and memory) `maxIndexEntries` budgets. The picked pod's now, every pod's when a sweep is due.
    if (now !== undefined) {
      swept = this.sweepLapsedMarks(now, until, pod);
      this.dropLapsedMarks(pod, state, now);
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      let byPod = this.holders.get(key);
      if (!byPod) this.holders.set(key, (byPod = new Map()));
      const holding = byPod.get(pod);
      if (holding) holding.speculativeUntil = Math.max(holding.speculativeUntil, until);
      else byPod.set(pod, { gpu: 0, cpu: 0, others: undefined, speculativeUntil: until });
      // A block the pod holds is used (and marked, for a copy on a slower tier); one it lacks is marked only.
      if (state.keys.has(key)) state.keys.use(key);
      else state.marks.use(key);
    }
    this.trim(pod, state);
    return swept;
  }

  /**
   * Drops every pod's lapsed marks if a sweep is due at `now`, the next then due at `next` (`now` plus the TTL): not
   * only the picked pod's, since upstream's TTL cache expires them on its own (llm-d-router v0.10.0
   * preciseprefixcache/prerequest.go buildSpeculativeCache: `go cache.Start()`, OnEviction on EvictionReasonExpired),
   * whether or not the pod is picked again, and a pod no longer picked (saturated, filtered out, its sessions gone
   * elsewhere) kept its stale marks until its next pick (session 73). Called at every pick, by `speculate` (until
   * session 76 a pick wholly matched on GPU marked nothing and called it directly; session 74 swept only in
   * `speculate`, so a run of such picks left every other pod's lapsed marks in place). Returns the pods other than
   * `except` whose entries it dropped.
   */
  sweepLapsedMarks(now: number, next: number, except?: string): readonly string[] {
    if (now < this.lapsedSweepAt) return NONE;
    this.lapsedSweepAt = next;
    let swept: string[] | undefined;
    for (const [pod, state] of this.pods) {
      if (this.dropLapsedMarks(pod, state, now) > 0 && pod !== except) (swept ??= []).push(pod);
    }
    return swept ?? NONE;
  }

  /** Drops `pod`'s marks that lapsed by `now`, oldest first, up to the first still live; returns how many. */
  private dropLapsedMarks(pod: string, state: PodState, now: number): number {
    let dropped = 0;
    for (let key = state.marks.oldest(); key !== undefined; key = state.marks.oldest()) {
      const holding = this.holders.get(key)?.get(pod);
      if (holding !== undefined && (holding.speculativeUntil > now || holding.gpu > 0 || holding.cpu > 0)) break;
      this.drop(pod, state, key);
      dropped++;
    }
    return dropped;
  }

  /**
   * The first `count` of `keys` were just used on `pod` (a request routed there matched them, or ended there): they
   * become its most recently used, the first key last, so the capacity bound (`trim`) drops the tail before the head
   * and both after older keys. vLLM evicts by last use: a request's blocks go back to the free queue when it finishes
   * (vllm/v1/core/block_pool.py `free_blocks`), so a hot system prompt stored long ago is the last to go there, and
   * must not be the first to go here.
   */
  touch(pod: string, keys: readonly number[], count: number): void {
    const state = this.pods.get(pod);
    if (state === undefined) return;
    // Tail first, so the head (the prefix other requests share) is the most recently used: vLLM frees a request's
    // blocks in reverse, "so that the tail blocks are evicted first" (vllm/v1/core/kv_cache_manager.py `free`).
    for (let i = Math.min(count, keys.length) - 1; i >= 0; i--) {
      const key = keys[i]!;
      if (!state.keys.refresh(key)) state.marks.refresh(key);
    }
  }

  /** A pod left the pool: its entries and its share of the budget go. */
  removePod(pod: string): void {
    this.clearPod(pod);
    if (this.shares.delete(pod)) this.rebalance();
  }

  /**
   * Forgets every entry of a pod: `AllBlocksCleared`, a publisher restart or lost events. Its capacity stays: the
   * pod's vLLM has the same KV cache, and its `num_gpu_blocks` is not scraped anew.
   */
  clearPod(pod: string): void {
    const state = this.pods.get(pod);
    if (!state) return;
    for (const lru of [state.keys, state.marks]) {
      for (const key of lru.keys()) {
        const byPod = this.holders.get(key);
        if (byPod?.delete(pod) === true && key < 0) this.engineKeyed--;
        if (byPod?.size === 0) this.holders.delete(key);
      }
    }
    this.pods.delete(pod);
  }

  /**
   * For each candidate pod, the leading blocks of `keys` it holds without a gap, weighted by tier. Walks the keys once
   * and stops when no candidate still matches.
   */
  longestPrefix(keys: readonly number[], candidates: { has(pod: string): boolean }, now: number, engineKeys?: readonly number[]): Map<string, PrefixMatch> {
    const matches = new Map<string, PrefixMatch>();
    let alive: Map<string, number> | undefined; // pod → weight so far
    for (let i = 0; i < keys.length; i++) {
      // A block is held under kvroute's own key, or (hash-only events) under the engine's.
      const own = this.holders.get(keys[i]!);
      const engine = engineKeys !== undefined && i < engineKeys.length ? this.holders.get(engineKeys[i]!) : undefined;
      if (!own && !engine) break;
      const next = new Map<string, number>();
      const consider = alive
        ? [...alive.keys()]
        : [...new Set([...(own?.keys() ?? []), ...(engine?.keys() ?? [])])].filter((p) => candidates.has(p));
      for (const pod of consider) {
        // The better of the two entries: an own-key entry may be a lapsed speculative mark (not held) beside a real
        // engine-keyed one. A tier weighted 0 still holds the block: the chain goes on through it, as in llm-d.
        const w = Math.max(this.weightOf(own?.get(pod), now), this.weightOf(engine?.get(pod), now));
        if (w < 0) continue;
        const total = (alive?.get(pod) ?? 0) + w;
        next.set(pod, total);
        matches.set(pod, { blocks: i + 1, weight: total });
      }
      if (next.size === 0) break;
      alive = next;
    }
    return matches;
  }

  /** The GPU tier's weight, which a speculative mark weighs. */
  get gpuTierWeight(): number {
    return this.gpuWeight;
  }

  /**
   * The weight of the best tier holding the block (llm-d-kv-cache kvblock_scorer.go `fillMaxWeights`: the maximum over
   * the pod's entries); a live speculative mark counts as GPU; -1 when the pod holds no copy.
   */
  private weightOf(h: Holding | undefined, now: number): number {
    if (h === undefined) return -1;
    let w = h.gpu > 0 || h.speculativeUntil > now ? this.gpuWeight : -1;
    if (h.cpu > 0 && this.cpuWeight > w) w = this.cpuWeight;
    if (h.others !== undefined) {
      for (const [tier, copies] of h.others) {
        const tw = this.weights.get(tier) ?? 1;
        if (copies > 0 && tw > w) w = tw;
      }
    }
    return w;
  }

  private pod(pod: string): PodState {
    let state = this.pods.get(pod);
    if (!state) {
      state = { engineToKey: new Map(), chunkKeys: new Map(), parts: new Map(), splitBlocks: new Map(), splitRatio: 1, prunePartsAt: 0, partClock: 0, pruneHashesAt: 0, hashPasses: 0, otherGroups: new Set(), keys: new KeyLru(), marks: new KeyLru(), unhashed: new Set(), share: this.share(pod) };
      this.pods.set(pod, state);
    }
    return state;
  }

  private share(pod: string): PodShare {
    let share = this.shares.get(pod);
    if (!share) {
      this.shares.set(pod, (share = { wanted: this.defaultCapacity, capacity: 0 }));
      this.rebalance();
    }
    return share;
  }

  private rebalance(): void {
    shareBudget(this.shares.values(), this.maxEntries);
    for (const [pod, state] of this.pods) this.trim(pod, state);
  }

  /** Adds a copy of `key`; its recency just below `before`'s when given and held by the pod (`KeyLru.useBefore`). */
  private add(pod: string, state: PodState, key: number, tier: Tier, before?: number): void {
    let byPod = this.holders.get(key);
    if (!byPod) this.holders.set(key, (byPod = new Map()));
    let holding = byPod.get(pod);
    if (holding === undefined) {
      byPod.set(pod, (holding = { gpu: 0, cpu: 0, others: undefined, speculativeUntil: 0 }));
      if (key < 0) this.engineKeyed++;
    }
    addCopy(holding, tier);
    if (tier !== 'gpu') state.share.offloads = true;
    // A marked block the pod's events now confirm.
    if (state.marks.size > 0) state.marks.delete(key);
    if (before === undefined) state.keys.use(key);
    else state.keys.useBefore(key, before);
  }

  /**
   * Whether the pod's events have stored blocks on a tier other than GPU (CPU offloading, LMCache): its blocks then
   * outnumber its `num_gpu_blocks`, which must not bound its entries (`PrecisePrefixCacheScorer.learnCapacity`).
   */
  offloads(pod: string): boolean {
    return this.shares.get(pod)?.offloads ?? false;
  }

  /** Holds `key` on `pod` as a speculative mark only, until `until` (its copies are gone). */
  private keepMark(pod: string, state: PodState, key: number, until: number): void {
    let byPod = this.holders.get(key);
    if (!byPod) this.holders.set(key, (byPod = new Map()));
    byPod.set(pod, { gpu: 0, cpu: 0, others: undefined, speculativeUntil: until });
    state.marks.use(key);
  }

  private drop(pod: string, state: PodState, key: number): void {
    const byPod = this.holders.get(key);
    if (byPod?.delete(pod) === true && key < 0) this.engineKeyed--;
    if (byPod?.size === 0) this.holders.delete(key);
    if (!state.keys.delete(key)) state.marks.delete(key);
    if (state.unhashed.size > 0) state.unhashed.delete(key);
    if (state.splitBlocks.size > 0) {
      const block = state.splitBlocks.get(key);
      if (block !== undefined) {
        state.splitBlocks.delete(key);
        this.unlinkSplit(block);
      }
    }
  }

  private trim(pod: string, state: PodState): void {
    const { capacity } = state.share;
    while (state.keys.size > capacity) this.drop(pod, state, state.keys.oldest()!);
    // Marks only push out older marks: a pod cannot be about to store more blocks than it has.
    while (state.marks.size > capacity) this.drop(pod, state, state.marks.oldest()!);
    // Engine hashes of dropped keys are found no more; prune them lazily when the map outgrows what can point at held
    // keys: a hash per key (1:1), and the completing parts of many:1 blocks, the current chains' and earlier ones' (at
    // most the parts' cap), which a pass cannot prune.
    // A pass that frees little (one key stored under many hashes, each removal leaving it held) waits for the map to
    // double before the next, so its cost stays spread over the stores that grew it.
    if (state.engineToKey.size > Math.max(state.pruneHashesAt, 2 * capacity + (state.splitRatio > 1 ? Math.max(64, 2 * capacity * state.splitRatio) : 0))) {
      state.hashPasses++;
      for (const [hash, key] of state.engineToKey) {
        if (state.keys.has(key)) continue;
        state.engineToKey.delete(hash);
        state.chunkKeys.delete(hash);
      }
      state.pruneHashesAt = 2 * state.engineToKey.size;
    }
    // The engine blocks of configured blocks (many:1) leave with their BlockRemoved; those whose events were lost are
    // bounded here. A pass runs when `parts` has doubled since the last one (or reached its cap), so its cost is
    // spread over the stores that grew it. First go the completing parts of blocks the pod no longer holds, and the
    // carries of no held block whose base is gone (a block completed through one could not be matched: a request's
    // chain stops at the dropped base). Past the cap, down to three quarters of it, go the parts that hold no block the
    // pod holds: carries through which no held block was completed (a request's tail inside a configured block, or the
    // carry of blocks since dropped) and completing parts of a key another engine chain completed since
    // (`blocksOfPartNow`; vLLM may still hold them, and continue them), least recently stored or continued first. What
    // is left is the parts of held blocks as last completed: at most `capacity` blocks of `splitRatio` parts, half the
    // cap, so a part the index needs to remove a held block is never forgotten.
    const cap = Math.max(64, 2 * capacity * state.splitRatio);
    // A lowered capacity (the budget shared by more pods) lowers the cap at once.
    if (state.prunePartsAt > cap) state.prunePartsAt = cap;
    if (state.parts.size > state.prunePartsAt) {
      for (const [hash, part] of state.parts) {
        const block = part.block;
        const stale = part.length > 0
          ? block === undefined && !part.atStart && !state.keys.has(part.base)
          : block === undefined || !state.keys.has(block.key);
        if (stale) this.forgetPart(state, hash, part);
      }
      if (state.parts.size > cap) {
        const spare: { hash: string; part: Part }[] = [];
        for (const [hash, part] of state.parts) {
          const block = part.block;
          const holdsNone = block === undefined
            || (part.length === 0 && (state.splitBlocks.get(block.key) !== block || block.parts[block.parts.length - 1] !== part));
          if (holdsNone) spare.push({ hash, part });
        }
        spare.sort((x, y) => x.part.usedAt - y.part.usedAt);
        for (const { hash, part } of spare) {
          if (state.parts.size <= (3 * cap) / 4) break;
          this.forgetPart(state, hash, part);
        }
      }
      state.prunePartsAt = state.parts.size <= cap ? Math.min(cap, Math.max(64, 2 * state.parts.size)) : 2 * state.parts.size;
    }
  }
}
