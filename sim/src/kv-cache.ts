/**
 * A KV block pool with prefix caching that follows vLLM v1's KVCacheManager /
 * BlockPool semantics (0.10.x):
 *
 * - Capacity is `numBlocks` blocks of `blockSize` token slots.
 * - Only full blocks are cached, keyed by a chained hash (see block-hash.ts).
 * - A lookup returns the longest *consecutive* run of cached blocks from the
 *   start, capped at floor((promptLen - 1) / blockSize) blocks because vLLM
 *   always recomputes at least the last prompt token.
 * - Blocks held by running requests are reference-counted and never evicted.
 * - A block whose count drops to 0 goes to the tail of a free queue but keeps
 *   its hash, so it can still be hit. New allocations pop from the head and
 *   only then drop the old hash: eviction is least-recently-freed first, and
 *   only ever among unreferenced blocks.
 * - A request frees its blocks in reverse order, so a sequence's tail is
 *   evicted before its (more shareable) head.
 * - Hitting a block that sits in the free queue takes it back out.
 *
 * Deliberate difference: vLLM admits a request when its *prompt* fits and
 * preempts running requests if decode later runs out of blocks. Here
 * admission also reserves the blocks its decode will need
 * (ceil((prompt + max_tokens - 1) / blockSize) in total), so preemption never
 * happens. Reserved-but-unallocated blocks are not counted as used, so
 * `usage` still matches vLLM's gauge (allocated / capacity).
 */

const NIL = -1;

export interface Allocation {
  /** Blocks found in the cache (consecutive from the start). */
  hitBlocks: number;
  /** hitBlocks × blockSize: vLLM's prefix-cache hit count in tokens. */
  hitTokens: number;
  /** Block ids of the hit, for callers that track per-block readiness. */
  hitBlockIds: readonly number[];
}

interface SeqBlocks {
  blocks: number[];
  hashes: readonly string[];
  /** Blocks whose hash has been registered (or found already cached). */
  committed: number;
  /** Blocks still promised to this sequence but not yet allocated. */
  reserved: number;
}

export class KvCacheManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Cached blocks dropped to make room (a vLLM BlockRemoved each). */
  evictions = 0;

  private readonly refCnt: Int32Array;
  private readonly blockHash: (string | null)[];
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = NIL;
  private tail = NIL;
  private freeCount = 0;
  private reservedTotal = 0;
  private readonly hashToBlock = new Map<string, number>();
  private readonly seqs = new Map<string, SeqBlocks>();

  constructor(numBlocks: number, blockSize: number) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new RangeError(`numBlocks must be a positive integer, got ${numBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.refCnt = new Int32Array(numBlocks);
    this.blockHash = new Array<string | null>(numBlocks).fill(null);
    this.prev = new Int32Array(numBlocks).fill(NIL);
    this.next = new Int32Array(numBlocks).fill(NIL);
    for (let b = 0; b < numBlocks; b++) this.pushTail(b);
  }

  /** Blocks in the free queue (unreferenced; some still hold a cached hash). */
  get numFreeBlocks(): number {
    return this.freeCount;
  }

  /** Blocks referenced by at least one running sequence. */
  get numUsedBlocks(): number {
    return this.numBlocks - this.freeCount;
  }

  /** vLLM's kv_cache_usage_perc: used blocks / capacity, 0..1. */
  get usage(): number {
    return this.numUsedBlocks / this.numBlocks;
  }

  get numCachedBlocks(): number {
    return this.hashToBlock.size;
  }

  get reservedBlocks(): number {
    return this.reservedTotal;
  }

  isCached(hash: string): boolean {
    return this.hashToBlock.has(hash);
  }

  /** Free-queue order from next-to-evict to last, as block hashes (null = never cached). Test aid. */
  freeQueueHashes(): (string | null)[] {
    const out: (string | null)[] = [];
    for (let b = this.head; b !== NIL; b = this.next[b]) out.push(this.blockHash[b]);
    return out;
  }

  /** Number of blocks of `hashes` cached consecutively from the start, at most `maxBlocks`. */
  longestCachedPrefix(hashes: readonly string[], maxBlocks = hashes.length): number {
    const limit = Math.min(maxBlocks, hashes.length);
    let n = 0;
    while (n < limit && this.hashToBlock.has(hashes[n])) n++;
    return n;
  }

  /** The hit a prompt of `numPromptTokens` tokens would get now (no state change). */
  peekHit(hashes: readonly string[], numPromptTokens: number): number {
    return this.longestCachedPrefix(hashes, this.maxHitBlocks(numPromptTokens));
  }

  /**
   * Admits a sequence: takes its cache hit, allocates blocks for the whole
   * prompt and reserves the rest up to `maxSlots` token slots. Returns null
   * (and changes nothing) if the free pool cannot cover it; the caller keeps
   * the request waiting.
   *
   * `hashes` are the chained hashes of every full block the sequence will
   * ever contain (prompt and generated tokens).
   */
  allocate(seqId: string, hashes: readonly string[], numPromptTokens: number, maxSlots: number): Allocation | null {
    if (this.seqs.has(seqId)) throw new Error(`sequence ${seqId} already allocated`);
    if (numPromptTokens < 1) throw new RangeError('a sequence needs at least one prompt token');
    if (maxSlots < numPromptTokens) throw new RangeError('maxSlots must cover the prompt');
    const hitBlocks = this.peekHit(hashes, numPromptTokens);
    const promptBlocks = Math.ceil(numPromptTokens / this.blockSize);
    const totalBlocks = Math.ceil(maxSlots / this.blockSize);
    const hitIds: number[] = [];
    let hitsInFreeQueue = 0;
    for (let i = 0; i < hitBlocks; i++) {
      const b = this.hashToBlock.get(hashes[i]) as number;
      hitIds.push(b);
      if (this.refCnt[b] === 0) hitsInFreeQueue++;
    }
    // Hits parked in the free queue stop being free once touched, so they
    // cannot also pay for new blocks.
    const available = this.freeCount - hitsInFreeQueue - this.reservedTotal;
    if (available < totalBlocks - hitBlocks) return null;

    for (const b of hitIds) this.ref(b);
    const blocks = hitIds.slice();
    for (let i = hitBlocks; i < promptBlocks; i++) blocks.push(this.popFree());
    const seq: SeqBlocks = { blocks, hashes, committed: hitBlocks, reserved: totalBlocks - promptBlocks };
    this.reservedTotal += seq.reserved;
    this.seqs.set(seqId, seq);
    return { hitBlocks, hitTokens: hitBlocks * this.blockSize, hitBlockIds: hitIds };
  }

  /** Ensures slots for `numSlots` tokens, drawing on the sequence's reservation. */
  grow(seqId: string, numSlots: number): void {
    const seq = this.seq(seqId);
    const need = Math.ceil(numSlots / this.blockSize) - seq.blocks.length;
    if (need > seq.reserved) throw new Error(`sequence ${seqId} grew past its reservation`);
    for (let i = 0; i < need; i++) {
      seq.blocks.push(this.popFree());
      seq.reserved--;
      this.reservedTotal--;
    }
  }

  /**
   * Registers every block fully covered by the first `numComputedTokens`
   * tokens in the prefix cache (vLLM caches a block as soon as the step that
   * fills it is scheduled). Returns the ids of blocks newly registered.
   */
  commit(seqId: string, numComputedTokens: number): number[] {
    const seq = this.seq(seqId);
    const full = Math.min(Math.floor(numComputedTokens / this.blockSize), seq.blocks.length, seq.hashes.length);
    const added: number[] = [];
    for (; seq.committed < full; seq.committed++) {
      const hash = seq.hashes[seq.committed];
      const block = seq.blocks[seq.committed];
      // The same content may already be cached in another block (e.g. the
      // last prompt block, which the lookup cap forced us to recompute).
      // Keep the existing entry; this block simply stays anonymous.
      if (this.hashToBlock.has(hash)) continue;
      this.blockHash[block] = hash;
      this.hashToBlock.set(hash, block);
      added.push(block);
    }
    return added;
  }

  /** Releases a sequence; its blocks join the free queue tail-first. */
  free(seqId: string): void {
    const seq = this.seq(seqId);
    this.seqs.delete(seqId);
    this.reservedTotal -= seq.reserved;
    for (let i = seq.blocks.length - 1; i >= 0; i--) {
      const b = seq.blocks[i];
      if (--this.refCnt[b] === 0) this.pushTail(b);
    }
  }

  private maxHitBlocks(numPromptTokens: number): number {
    return Math.floor(Math.max(0, numPromptTokens - 1) / this.blockSize);
  }

  private seq(seqId: string): SeqBlocks {
    const seq = this.seqs.get(seqId);
    if (!seq) throw new Error(`unknown sequence ${seqId}`);
    return seq;
  }

  private ref(b: number): void {
    if (this.refCnt[b]++ === 0) this.unlink(b);
  }

  private popFree(): number {
    const b = this.head;
    if (b === NIL) throw new Error('KV block pool exhausted (reservation accounting bug)');
    this.unlink(b);
    const old = this.blockHash[b];
    if (old !== null) {
      this.blockHash[b] = null;
      if (this.hashToBlock.get(old) === b) this.hashToBlock.delete(old);
      this.evictions++;
    }
    this.refCnt[b] = 1;
    return b;
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
