const NONE = -1;

/**
 * One endpoint's blocks in recency order: a doubly linked list threaded through typed arrays (grown by doubling up
 * to the capacity) plus a Map from block key to slot, so touching, inserting and evicting are O(1). A Set used as an
 * LRU is not: V8 leaves a hole for every delete at its front, and finding the oldest entry scans them.
 */
class BlockLru {
  private readonly slotByBlock = new Map<number, number>();
  private blockAt = new Float64Array(16);
  private previous = new Int32Array(16);
  private following = new Int32Array(16);
  /** Least recently used slot. */
  private head = NONE;
  /** Most recently used slot. */
  private tail = NONE;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.slotByBlock.size;
  }

  /** Makes `block` the most recent if present; returns whether it was. */
  touch(block: number): boolean {
    const slot = this.slotByBlock.get(block);
    if (slot === undefined) return false;
    if (slot !== this.tail) {
      this.unlink(slot);
      this.append(slot);
    }
    return true;
  }

  /** Adds an absent `block` as the most recent; returns the block evicted to make room, if any. */
  insert(block: number): number | undefined {
    let slot: number;
    let evicted: number | undefined;
    if (this.slotByBlock.size < this.capacity) {
      slot = this.slotByBlock.size;
      if (slot === this.blockAt.length) this.grow();
    } else {
      slot = this.head;
      evicted = this.blockAt[slot]!;
      this.slotByBlock.delete(evicted);
      this.unlink(slot);
    }
    this.blockAt[slot] = block;
    this.slotByBlock.set(block, slot);
    this.append(slot);
    return evicted;
  }

  blocks(): IterableIterator<number> {
    return this.slotByBlock.keys();
  }

  /** Least recent first. */
  inRecencyOrder(): number[] {
    const ordered: number[] = [];
    for (let slot = this.head; slot !== NONE; slot = this.following[slot]!) ordered.push(this.blockAt[slot]!);
    return ordered;
  }

  private append(slot: number): void {
    this.previous[slot] = this.tail;
    this.following[slot] = NONE;
    if (this.tail === NONE) this.head = slot;
    else this.following[this.tail] = slot;
    this.tail = slot;
  }

  private unlink(slot: number): void {
    const before = this.previous[slot]!;
    const after = this.following[slot]!;
    if (before === NONE) this.head = after;
    else this.following[before] = after;
    if (after === NONE) this.tail = before;
    else this.previous[after] = before;
  }

  private grow(): void {
    const length = Math.min(this.blockAt.length * 2, this.capacity);
    const grown = <T extends Float64Array | Int32Array>(array: T, make: (n: number) => T): T => {
      const copy = make(length);
      copy.set(array);
      return copy;
    };
    this.blockAt = grown(this.blockAt, (n) => new Float64Array(n));
    this.previous = grown(this.previous, (n) => new Int32Array(n));
    this.following = grown(this.following, (n) => new Int32Array(n));
  }
}

/**
 * Which endpoints (probably) hold which prompt blocks: the EPP's estimate of each vLLM pod's prefix cache, learnt
 * from its own picks. Each endpoint keeps an LRU of block keys with a fixed capacity, standing in for vLLM's own
 * eviction; a reverse map from key to holders makes lookups independent of the pool size.
 */
export class PrefixBlockIndex {
  /** Block key → endpoints holding it. Arrays, not Sets: a block usually lives on one or two endpoints. */
  private readonly holdersByBlock = new Map<number, string[]>();
  private readonly blocksByEndpoint = new Map<string, BlockLru>();
  private entries = 0;

  constructor(readonly capacityPerEndpoint: number) {}

  /** (block, endpoint) pairs held, summed over endpoints. */
  get size(): number {
    return this.entries;
  }

  get endpointCount(): number {
    return this.blocksByEndpoint.size;
  }

  /**
   * Marks `blocks` as cached on `endpointKey`, in prompt order so the tail ends most recent — the head of a shared
   * prefix is refreshed by every request that shares it anyway.
   */
  record(endpointKey: string, blocks: readonly number[]): void {
    let lru = this.blocksByEndpoint.get(endpointKey);
    if (lru === undefined) {
      lru = new BlockLru(this.capacityPerEndpoint);
      this.blocksByEndpoint.set(endpointKey, lru);
    }
    for (const block of blocks) {
      if (lru.touch(block)) continue;
      const evicted = lru.insert(block);
      if (evicted !== undefined) this.dropHolder(evicted, endpointKey);
      const holders = this.holdersByBlock.get(block);
      if (holders === undefined) this.holdersByBlock.set(block, [endpointKey]);
      else holders.push(endpointKey);
      this.entries++;
    }
  }

  /**
   * For each endpoint in `candidates`, how many blocks from the start of `blocks` it holds without a gap. Walks the
   * blocks once, narrowing the set of endpoints still matching, and stops when none is left.
   */
  longestPrefixMatches(blocks: readonly number[], candidates: ReadonlySet<string>): Map<string, number> {
    const matched = new Map<string, number>();
    let stillMatching: string[] | undefined;
    for (let i = 0; i < blocks.length; i++) {
      const holders = this.holdersByBlock.get(blocks[i]!);
      if (holders === undefined) break;
      stillMatching =
        stillMatching === undefined
          ? holders.filter((endpoint) => candidates.has(endpoint))
          : stillMatching.filter((endpoint) => holders.includes(endpoint));
      if (stillMatching.length === 0) break;
      for (const endpoint of stillMatching) matched.set(endpoint, i + 1);
    }
    return matched;
  }

  /** Forgets an endpoint that left the pool (upstream lets its entries age out instead). */
  removeEndpoint(endpointKey: string): void {
    const lru = this.blocksByEndpoint.get(endpointKey);
    if (lru === undefined) return;
    for (const block of lru.blocks()) this.dropHolder(block, endpointKey);
    this.blocksByEndpoint.delete(endpointKey);
  }

  /** Blocks held by one endpoint, least recent first (for tests and debugging). */
  blocksOf(endpointKey: string): number[] {
    return this.blocksByEndpoint.get(endpointKey)?.inRecencyOrder() ?? [];
  }

  private dropHolder(block: number, endpointKey: string): void {
    const holders = this.holdersByBlock.get(block);
    if (holders === undefined) return;
    const at = holders.indexOf(endpointKey);
    if (at < 0) return;
    this.entries--;
    if (holders.length === 1) this.holdersByBlock.delete(block);
    else holders.splice(at, 1);
  }
}
