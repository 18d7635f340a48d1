import type { AllBlocksCleared, BlockRemoved, BlockStored, KvCacheEvent } from '@kvroute/protocol/kv-events';
import { extraKeysFor, type BlockHash, type HashExtras } from './block-hash';

/**
 * Which vLLM's events the pool queues:
 * - `v0.10`: 0.10.x's `BlockStored(block_hashes, parent_block_hash, token_ids, block_size, lora_id)` and
 *   `BlockRemoved(block_hashes)` (vllm/v1/core/block_pool.py @ v0.10.0; `medium` is the encoder's, from 0.10.2);
 * - `v0.26`: a release after #42892, whose block pool also sets `lora_name` (#27577), one `extra_keys` entry per stored
 *   block (#33304, `None` for a block without any), `group_idx` (#37688) and `kv_cache_spec_kind` (#40984) on
 *   `BlockStored`, and `group_idx` on `BlockRemoved` (vllm/v1/core/block_pool.py `cache_full_blocks`,
 *   `_maybe_evict_cached_block`); one full-attention group, index 0, as the v0.26.0 capture of volcano-sh/kthena#1535
 *   shows.
 */
export type KvEventSchema = 'v0.10' | 'v0.26';

/**
 * vLLM v1's KV block pool and prefix cache for one attention group, as of v0.10.0:
 * vllm-project/vllm: vllm/v1/core/block_pool.py, vllm/v1/core/kv_cache_manager.py,
 * vllm/v1/core/single_type_kv_cache_manager.py (FullAttentionManager), vllm/v1/core/kv_cache_utils.py
 * (FreeKVCacheBlockQueue) @ v0.10.0.
 *
 * - **Null block.** Block 0 is taken out of the free queue at start-up and never returned (`BlockPool.__init__`), so
 *   `numBlocks` counts it (like `num_gpu_blocks`) but only `numBlocks - 1` blocks hold KV. The usage
 *   `1 - free / numBlocks` (`BlockPool.get_usage` @ v0.10.0) is 1/numBlocks when idle; from 0.10.2 on (vLLM #22995)
 *   it leaves the null block out, `1 - free / (numBlocks - 1)`, and reads 0 when idle.
 * - **Free queue.** A doubly linked list in eviction order: never-used blocks first (in id order), then freed blocks
 *   in the order they were freed; a request frees its blocks tail first (`free`: `reversed(req_blocks)`). A free block
 *   keeps its hash and can still be hit; a hit takes it out of the queue (`touch`).
 * - **Eviction is lazy.** A free block that still carries a hash loses it only when it is popped for reuse
 *   (`get_new_blocks` → `_maybe_evict_cached_block`), which is when `BlockRemoved` is emitted, one event per block.
 * - **Duplicates.** Caching does not de-duplicate: several physical blocks may carry the same hash
 *   (`cached_block_hash_to_block: {hash: {block_id: block}}`), a lookup takes the first one cached, and evicting one
 *   copy emits `BlockRemoved` for the hash while other copies stay cached.
 * - **Caching** (`cache_full_blocks`): when a step is scheduled, every block that the step's tokens fill is hashed
 *   into the cache, one `BlockStored` per call covering those blocks of one request, with the parent hash (null for a
 *   chain starting at block 0) and their tokens (prompt or generated).
 */
export interface KvSequence {
  readonly id: string;
  /** Tokens whose KV is computed or scheduled (vLLM `Request.num_computed_tokens`). */
  readonly numComputedTokens: number;
  /** Prompt + outputs so far (`Request.num_tokens`); only full blocks of these are cached. */
  readonly numTokens: number;
  /** `all_token_ids`; entries past `numTokens` are ignored. */
  readonly tokens: ArrayLike<number>;
  /** The chain hashes, covering at least every full block of the tokens to cache. */
  readonly hashes: readonly BlockHash[];
  /** The LoRA adapter's `lora_int_id` (what BlockStored's `lora_id` reports), or null. */
  readonly loraId: number | null;
  /** The LoRA adapter's name (what BlockStored's `lora_name` reports in the `v0.26` schema), or null. */
  readonly loraName?: string | null;
  /** What the blocks were hashed with beyond their tokens: reported per block as `extra_keys` in the `v0.26` schema. */
  readonly extras?: HashExtras;
}

export interface CacheHit {
  /** Cached blocks, consecutive from block 0 (the first copy of each hash). */
  readonly blockIds: readonly number[];
  /** blockIds.length × blockSize. */
  readonly tokens: number;
}

const NIL = -1;
export const NULL_BLOCK = 0;

interface SeqBlocks {
  blocks: number[];
  /** Blocks already cached (`num_cached_block`). */
  numCached: number;
}

export class KvCacheManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Cached blocks whose hash was dropped to reuse them (a BlockRemoved each). */
  evictions = 0;

  private readonly refCnt: Int32Array;
  private readonly blockHash: (BlockHash | null)[];
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = NIL;
  private tail = NIL;
  private freeCount = 0;
  /** hash key → block ids carrying it, in caching order (a Set keeps insertion order, like vLLM's dict). */
  private readonly cached = new Map<string, Set<number>>();
  private readonly seqs = new Map<string, SeqBlocks>();
  private events: KvCacheEvent[] = [];

  /**
   * @param numBlocks all blocks including the null block (vLLM's `num_gpu_blocks`); at least 2.
   * @param enableEvents queue KV events for {@link takeEvents} (vLLM's `enable_kv_cache_events`).
   * @param eventSchema the vLLM release whose event fields to fill.
   * @param usageWithoutNullBlock compute {@link usage} as vLLM 0.10.2 does, leaving the null block out (#22995).
   * @param enableCaching vLLM's `enable_caching` (`--enable-prefix-caching`, the default): off, blocks are allocated
   *   and freed but never hashed into the cache, so nothing is hit and no BlockStored / BlockRemoved is queued
   *   (`KVCacheManager.allocate_slots` returns before `cache_blocks`, `BlockPool.get_new_blocks` skips
   *   `_maybe_evict_cached_block`; vllm/v1/core/kv_cache_manager.py and block_pool.py @ v0.10.0, the same in v0.10.2).
   *   A reset still succeeds when idle and queues `AllBlocksCleared` (`BlockPool.reset_prefix_cache` does not look at it).
   */
  constructor(
    numBlocks: number,
    blockSize: number,
    private readonly enableEvents = false,
    private readonly eventSchema: KvEventSchema = 'v0.10',
    private readonly usageWithoutNullBlock = false,
    readonly enableCaching = true,
  ) {
    if (!Number.isInteger(numBlocks) || numBlocks < 2) throw new RangeError(`numBlocks must be an integer >= 2 (one is the null block), got ${numBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.refCnt = new Int32Array(numBlocks);
    this.blockHash = new Array<BlockHash | null>(numBlocks).fill(null);
    this.prev = new Int32Array(numBlocks).fill(NIL);
    this.next = new Int32Array(numBlocks).fill(NIL);
    // FreeKVCacheBlockQueue(blocks) holds every block in id order; BlockPool then pops block 0 as the null block.
    for (let b = 1; b < numBlocks; b++) this.pushTail(b);
  }

  /** Blocks in the free queue (unreferenced; some still carry a cached hash). */
  get numFreeBlocks(): number {
    return this.freeCount;
  }

  /** Blocks referenced by a request, plus the null block. */
  get numUsedBlocks(): number {
    return this.numBlocks - this.freeCount;
  }

  /**
   * `BlockPool.get_usage()`, the value of `vllm:kv_cache_usage_perc`: 1 - free / num_gpu_blocks (v0.10.0), or
   * 1 - free / (num_gpu_blocks - 1), 0 when that is 0 (v0.10.2: vllm/v1/core/block_pool.py, vLLM #22995).
   */
  get usage(): number {
    if (!this.usageWithoutNullBlock) return 1 - this.freeCount / this.numBlocks;
    const total = this.numBlocks - 1;
    return total === 0 ? 0 : 1 - this.freeCount / total;
  }

  /** Physical blocks that carry a cached hash (duplicates counted). */
  get numCachedBlocks(): number {
    let n = 0;
    for (const ids of this.cached.values()) n += ids.size;
    return n;
  }

  /** Distinct cached hashes. */
  get numCachedHashes(): number {
    return this.cached.size;
  }

  /** Physical copies of a hash in the cache. */
  copiesOf(hash: BlockHash): number {
    return this.cached.get(hash.key)?.size ?? 0;
  }

  isCached(hash: BlockHash): boolean {
    return this.cached.has(hash.key);
  }

  /** Free-queue order from next-to-evict to last, as hash keys (null = no hash). Test aid. */
  freeQueueKeys(): (string | null)[] {
    const out: (string | null)[] = [];
    for (let b = this.head; b !== NIL; b = this.next[b]) out.push(this.blockHash[b]?.key ?? null);
    return out;
  }

  /** Block ids of a running sequence. Test aid. */
  blocksOf(seqId: string): readonly number[] {
    return this.seqs.get(seqId)?.blocks ?? [];
  }

  /**
   * The longest run of cached blocks from block 0, at most `maxLength` tokens (`find_longest_cache_hit`; the caller
   * passes `num_tokens - 1`, so the last token is always recomputed). No state change.
   */
  findLongestCacheHit(hashes: readonly BlockHash[], maxLength: number): CacheHit {
    const maxBlocks = Math.min(hashes.length, Math.floor(Math.max(0, maxLength) / this.blockSize));
    const blockIds: number[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const ids = this.cached.get(hashes[i].key);
      if (!ids) break;
      blockIds.push(ids.values().next().value as number); // get_cached_block: the first block in the dict
    }
    return { blockIds, tokens: blockIds.length * this.blockSize };
  }

  /**
   * `KVCacheManager.allocate_slots`: makes room for `numNewTokens` more tokens of `seq` (after `hit`, the prefix-cache
   * hit of a request being scheduled from the waiting queue), then caches every block those tokens fill. Returns the
   * newly allocated block ids, or null, changing nothing, when the free queue cannot cover them: the caller waits or
   * preempts.
   */
  allocateSlots(seq: KvSequence, numNewTokens: number, hit?: CacheHit): number[] | null {
    if (numNewTokens <= 0) throw new RangeError('numNewTokens must be greater than 0');
    const hitIds = hit?.blockIds ?? [];
    if (!this.enableCaching && hitIds.length > 0) throw new Error('Computed blocks should be empty when prefix caching is disabled');
    const existing = this.seqs.get(seq.id);
    if (existing && hitIds.length > 0) throw new Error(`sequence ${seq.id} already has blocks; a prefix hit is only taken when it is scheduled from waiting`);
    const numComputed = seq.numComputedTokens + hitIds.length * this.blockSize;
    const needSlots = numComputed + numNewTokens;
    const numRequired = Math.ceil(needSlots / this.blockSize);
    const numNew = Math.max(0, numRequired - hitIds.length - (existing?.blocks.length ?? 0));
    // A hit block waiting in the free queue stops being free once touched, so it counts against the free blocks too.
    let evictableHits = 0;
    for (const b of hitIds) if (this.refCnt[b] === 0) evictableHits++;
    if (numNew + evictableHits > this.freeCount) return null;

    for (const b of hitIds) this.touch(b);
    const entry: SeqBlocks = existing ?? { blocks: [], numCached: 0 };
    if (!existing) {
      // save_new_computed_blocks: hit blocks are already cached and are not stored again.
      entry.blocks.push(...hitIds);
      entry.numCached = hitIds.length;
      this.seqs.set(seq.id, entry);
    }
    const fresh = this.getNewBlocks(numNew);
    entry.blocks.push(...fresh);
    // Prefix caching disabled: nothing is cached (`if not self.enable_caching ...: return`).
    if (!this.enableCaching) return fresh;
    // Cache up to the computed + new tokens, but never past num_tokens (tokens that exist).
    this.cacheFullBlocks(seq, entry, Math.floor(Math.min(needSlots, seq.numTokens) / this.blockSize));
    return fresh;
  }

  /** `free`: the sequence's blocks join the free queue, tail block first, keeping their hashes. */
  free(seqId: string): void {
    const entry = this.seqs.get(seqId);
    if (!entry) return;
    this.seqs.delete(seqId);
    for (let i = entry.blocks.length - 1; i >= 0; i--) {
      const b = entry.blocks[i];
      if (--this.refCnt[b] === 0) this.pushTail(b);
    }
  }

  /**
   * `BlockPool.reset_prefix_cache`: drops every hash and queues `AllBlocksCleared`, but only when no block except the
   * null block is in use; otherwise changes nothing and returns false.
   */
  resetPrefixCache(): boolean {
    if (this.numUsedBlocks !== 1) return false;
    this.cached.clear();
    this.blockHash.fill(null);
    if (this.enableEvents) this.events.push({ type: 'AllBlocksCleared' } satisfies AllBlocksCleared);
    return true;
  }

  /** `take_events`: every event since the last call, in order. */
  takeEvents(): KvCacheEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  private cacheFullBlocks(seq: KvSequence, entry: SeqBlocks, numFull: number): void {
    const from = entry.numCached;
    if (numFull <= from) return;
    if (seq.hashes.length < numFull) throw new Error(`sequence ${seq.id}: ${numFull} full blocks but only ${seq.hashes.length} hashes`);
    const stored: string[] = [];
    for (let i = from; i < numFull; i++) {
      const b = entry.blocks[i];
      const h = seq.hashes[i];
      if (this.blockHash[b] !== null) throw new Error(`block ${b} is already cached`);
      this.blockHash[b] = h;
      let ids = this.cached.get(h.key);
      if (!ids) this.cached.set(h.key, (ids = new Set()));
      ids.add(b); // no de-duplication: an identical block cached elsewhere stays, this one is added after it
      stored.push(h.event.toString());
    }
    entry.numCached = numFull;
    if (this.enableEvents) {
      const tokenIds: number[] = [];
      for (let t = from * this.blockSize; t < numFull * this.blockSize; t++) tokenIds.push(seq.tokens[t]);
      const event: BlockStored = {
        type: 'BlockStored',
        blockHashes: stored,
        // The hash on the previous block of this request; None for a chain that starts at block 0.
        parentBlockHash: from === 0 ? null : (this.blockHash[entry.blocks[from - 1]] as BlockHash).event.toString(),
        tokenIds,
        blockSize: this.blockSize,
        loraId: seq.loraId,
      };
      if (this.eventSchema === 'v0.26') {
        const extraKeys: (readonly unknown[] | null)[] = [];
        for (let i = from; i < numFull; i++) extraKeys.push(extraKeysFor(i * this.blockSize, seq.extras ?? {}));
        this.events.push({ ...event, medium: 'GPU', loraName: seq.loraName ?? null, extraKeys, groupIdx: 0, kvCacheSpecKind: 'full_attention' });
      } else {
        this.events.push(event);
      }
    }
  }

  private getNewBlocks(n: number): number[] {
    if (n > this.freeCount) throw new Error(`cannot get ${n} free blocks from the pool`);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.head;
      this.unlink(b);
      if (this.enableCaching) this.maybeEvict(b);
      this.refCnt[b] = 1;
      out.push(b);
    }
    return out;
  }

  private maybeEvict(b: number): void {
    const h = this.blockHash[b];
    if (h === null) return;
    this.blockHash[b] = null;
    const ids = this.cached.get(h.key);
    if (!ids) return;
    ids.delete(b);
    if (ids.size === 0) this.cached.delete(h.key);
    this.evictions++;
    if (this.enableEvents) {
      const removed: BlockRemoved = { type: 'BlockRemoved', blockHashes: [h.event.toString()] };
      this.events.push(this.eventSchema === 'v0.26' ? { ...removed, medium: 'GPU', groupIdx: 0 } : removed);
    }
  }

  private touch(b: number): void {
    if (this.refCnt[b] === 0) this.unlink(b);
    this.refCnt[b]++;
  }

  private pushTail(b: number): void {
    this.prev[b] = this.tail;
    this.next[b] = NIL;
    if (this.tail === NIL) this.head = b;
    else this.next[this.tail] = b;
    this.tail = b;
    this.freeCount++;
  }

  private unlink(b: number): void {
    const p = this.prev[b];
    const n = this.next[b];
    if (p === NIL) this.head = n;
    else this.next[p] = n;
    if (n === NIL) this.tail = p;
    else this.prev[n] = p;
    this.prev[b] = NIL;
    this.next[b] = NIL;
    this.freeCount--;
  }
}
