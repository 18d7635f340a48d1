import { budgetScale, shareBudget } from './index-budget';

const NONE = -1;
/**
 * Buckets sized ahead of the entries at most (64 MiB, enough for 32M entries); past that, for capacities no budget
 * bounds, they grow as entries arrive.
 */
const PRESIZED_BUCKETS_MAX = 1 << 24;

/** One endpoint's part of the index: its capacity and the ends of its recency list. */
interface EndpointState {
  readonly key: string;
  /** Small integer standing for the endpoint in the entry arrays (reused after the endpoint leaves). */
  readonly id: number;
  /** Entries the endpoint should hold on its own: its KV capacity in index blocks, or the default. */
  wanted: number;
  /** Entries it may hold now: `wanted`, scaled down while the endpoints together want more than the budget. */
  capacity: number;
  size: number;
  /** Least recently used entry. */
  head: number;
  /** Most recently used entry. */
  tail: number;
}

export interface PrefixBlockIndexOptions {
  /** Entries an endpoint may hold until its own capacity is set (`setCapacity`). */
  readonly defaultCapacityPerEndpoint: number;
  /** Entries all endpoints together may hold. @default unbounded */
  readonly maxEntries?: number;
}

/**
 * Which endpoints (probably) hold which prompt blocks: the EPP's estimate of each vLLM pod's prefix cache, learnt
 * from its own picks. Each endpoint keeps its blocks in LRU order with a capacity (its real KV capacity when known),
 * standing in for vLLM's own eviction; the capacities together are bounded by a budget.
 *
 * Memory is what limits an EPP in front of hundreds of pods, so the index is one multimap of (block, endpoint)
 * entries in parallel typed arrays instead of JS Maps, Sets and arrays per block and per endpoint. An entry costs
 * 24 bytes (its 53-bit block key as a float64, its endpoint's id, its neighbours in the endpoint's recency list and
 * the next entry of its hash bucket) plus 2–4 bytes of bucket array, none of it on the V8 heap the garbage collector
 * walks; the Map-based index before it cost ~145 bytes (epp/bench/index-memory.ts measures both). Finding a block's
 * holders walks its bucket chain, so lookups do not depend on the pool size; a chain holds an entry per holder, so the
 * walk and `record` go from a block to the next along each endpoint's own recency list, which keeps a prompt's blocks
 * in order, and look a block up in its chain only where that list does not.
 *
 * When the endpoints' capacities add up to more than the budget, each is scaled down by the same factor
 * (`index-budget.ts`), and an endpoint over its new capacity loses its oldest entries. A global LRU would also cost
 * another 8 bytes an entry.
 */
export class PrefixBlockIndex {
  readonly defaultCapacityPerEndpoint: number;
  readonly maxEntries: number;

  // The entries, by slot: block key, endpoint id, recency list, bucket chain. Free slots are chained through `newer`.
  private keyAt = new Float64Array(16);
  private endpointAt = new Int32Array(16);
  private older = new Int32Array(16);
  private newer = new Int32Array(16);
  private chain = new Int32Array(16);
  /** Slots ever used; slots below it are live or on the free list. */
  private used = 0;
  private free = NONE;
  private entries = 0;
  /** Hash buckets (first slot of each chain), a power of two at least half as long as the entries: chains of 1–2. */
  private buckets = new Int32Array(16).fill(NONE);

  private readonly endpoints = new Map<string, EndpointState>();
  private readonly endpointById: (EndpointState | undefined)[] = [];
  private readonly freeIds: number[] = [];
  private wantedTotal = 0;
  /** Sum of the endpoints' capacities: the most entries the index can hold now, and so the most slots it needs. */
  private capacityTotal = 0;
  /** Per-endpoint scratch for `longestPrefixMatches`: how far each endpoint matched, offset by `generation`. */
  private reached = new Float64Array(16);
  private generation = 0;
  /** The `generation` the latest walk counted from, and how many walks there were (see `PrefixMatches`). */
  private walkBase = 0;
  private walks = 0;
  /** Bumped when an endpoint id is assigned or freed (`endpointsVersion`). */
  private idVersion = 0;

  constructor(options: PrefixBlockIndexOptions) {
    const { defaultCapacityPerEndpoint, maxEntries = Number.POSITIVE_INFINITY } = options;
    if (!(Number.isInteger(defaultCapacityPerEndpoint) && defaultCapacityPerEndpoint >= 0)) {
      throw new RangeError(`defaultCapacityPerEndpoint must be a non-negative integer, got ${defaultCapacityPerEndpoint}`);
    }
    if (!(maxEntries === Number.POSITIVE_INFINITY || (Number.isInteger(maxEntries) && maxEntries >= 0))) {
      throw new RangeError(`maxEntries must be a non-negative integer or Infinity, got ${maxEntries}`);
    }
    this.defaultCapacityPerEndpoint = defaultCapacityPerEndpoint;
    this.maxEntries = maxEntries;
  }

  /** (block, endpoint) pairs held, summed over endpoints. */
  get size(): number {
    return this.entries;
  }

  get endpointCount(): number {
    return this.endpoints.size;
  }

  /** The factor every endpoint's capacity is scaled by to fit the budget: 1 while it fits. */
  get budgetScale(): number {
    return budgetScale(this.wantedTotal, this.maxEntries);
  }

  /** Bytes of the typed arrays holding the entries (their high-water mark, which the budget bounds). */
  get allocatedBytes(): number {
    return this.keyAt.byteLength + this.endpointAt.byteLength * 4 + this.buckets.byteLength;
  }

  /** The entries an endpoint may hold now (its capacity after the budget); undefined for an unknown endpoint. */
  capacityOf(endpointKey: string): number | undefined {
    return this.endpoints.get(endpointKey)?.capacity;
  }

  /**
   * Whether `endpointKey`'s entries fill its capacity, so that recording more evicts its least recent ones (as a prefill
   * on a vLLM whose cache is full evicts cached prefixes). False for an unknown endpoint or one with no capacity.
   */
  isFull(endpointKey: string): boolean {
    const state = this.endpoints.get(endpointKey);
    return state !== undefined && state.capacity > 0 && state.size >= state.capacity;
  }

  /**
   * Makes `endpointKey` known with the default capacity, so it has its share of the budget before its first pick.
   * Does nothing to a known endpoint.
   */
  addEndpoint(endpointKey: string): void {
    if (this.endpoints.has(endpointKey)) return;
    this.register(endpointKey, this.defaultCapacityPerEndpoint);
    this.rebalance();
  }

  /**
   * Sets how many entries `endpointKey` should hold on its own (undefined: the default). Shrinking evicts its least
   * recent entries; the budget may scale every endpoint's capacity, evicting theirs too.
   */
  setCapacity(endpointKey: string, entries: number | undefined): void {
    const wanted = entries === undefined ? this.defaultCapacityPerEndpoint : Math.max(0, Math.floor(entries));
    const state = this.endpoints.get(endpointKey);
    if (state === undefined) {
      this.register(endpointKey, wanted);
    } else {
      if (state.wanted === wanted) return;
      this.wantedTotal += wanted - state.wanted;
      state.wanted = wanted;
    }
    this.rebalance();
  }

  /**
   * Marks `blocks` as cached on `endpointKey`, in prompt order so the tail ends most recent — the head of a shared
   * prefix is refreshed by every request that shares it anyway. An unknown endpoint is added with the default
   * capacity.
   */
  record(endpointKey: string, blocks: readonly number[]): void {
    let state = this.endpoints.get(endpointKey);
    if (state === undefined) {
      state = this.register(endpointKey, this.defaultCapacityPerEndpoint);
      this.rebalance();
    }
    if (state.capacity === 0) return;
    // Where the endpoint already holds the prompt's blocks in order (it served this prefix before), the next block's
    // entry is the one after the previous block's in its recency list: taken from there before the move, it is found
    // without walking a bucket chain, which holds an entry for every endpoint holding that block (as the walk does).
    let next = NONE;
    for (const block of blocks) {
      const found = next !== NONE && this.keyAt[next] === block && this.endpointAt[next] === state.id ? next : this.find(block, state.id);
      if (found !== NONE) {
        next = this.newer[found]!;
        if (found !== state.tail) {
          this.unlinkRecency(state, found);
          this.appendRecency(state, found);
        }
        continue;
      }
      // An insertion may evict (and free) the slot `next` names: look the following block up in its bucket.
      next = NONE;
      if (state.size >= state.capacity) this.evict(state, state.head);
      const slot = this.allocate();
      this.keyAt[slot] = block;
      this.endpointAt[slot] = state.id;
      const bucket = this.bucketOf(block);
      this.chain[slot] = this.buckets[bucket]!;
      this.buckets[bucket] = slot;
      this.appendRecency(state, slot);
      state.size++;
      this.entries++;
      if (this.entries > 2 * this.buckets.length) this.rehash(this.buckets.length * 2);
    }
  }

  /**
   * For each endpoint in `candidates` (every endpoint when omitted), how many blocks from the start of `blocks` it
   * holds without a gap; endpoints holding none are left out. Follows each endpoint holding the first block along its
   * own entries until its first gap (see `walk`). An endpoint's count does not depend on which others are asked for,
   * so the scheduler asks for all and reads its candidates' counts: building a set of 256 keys per request cost more
   * than the walk.
   */
  longestPrefixMatches(blocks: readonly number[], candidates?: ReadonlySet<string>): Map<string, number> {
    const matched = new Map<string, number>();
    const starters = this.walk(blocks, candidates);
    const base = this.walkBase;
    for (const state of starters) matched.set(state.key, this.reached[state.id]! - base);
    return matched;
  }

  /**
   * The same walk as `longestPrefixMatches` over every endpoint, answered without a Map: the matched endpoints' keys
   * and counts in two arrays, and each endpoint's count by its id (`idOf`) while this is the index's latest walk. The
   * prefix scorer reads its candidates' counts by id (a typed-array read each instead of a Map lookup by key: 256 a
   * request at 256 pods) and builds the keyed map only when something reads it.
   */
  matchPrefix(blocks: readonly number[]): PrefixMatches {
    const starters = this.walk(blocks, undefined);
    const base = this.walkBase;
    const keys: string[] = [];
    const ids: number[] = [];
    const counts: number[] = [];
    for (let j = 0; j < starters.length; j++) {
      const state = starters[j]!;
      keys.push(state.key);
      ids.push(state.id);
      counts.push(this.reached[state.id]! - base);
    }
    return new PrefixMatches(this, this.walks, base, keys, ids, counts);
  }

  /**
   * The id standing for `endpointKey` in the index (for `PrefixMatches.blocksOf`), -1 for an endpoint it does not know.
   * Ids are reused after an endpoint leaves: `endpointsVersion` changes whenever one is assigned or freed.
   */
  idOf(endpointKey: string): number {
    return this.endpoints.get(endpointKey)?.id ?? NONE;
  }

  /** One more than the largest id `idOf` can return now. */
  get idLimit(): number {
    return this.endpointById.length;
  }

  /** Changes whenever an endpoint joins or leaves the index, i.e. whenever an id from `idOf` may stand for another endpoint. */
  get endpointsVersion(): number {
    return this.idVersion;
  }

  /** @internal `PrefixMatches.blocksOf`: walk `walk`'s count for endpoint `id`. */
  blocksMatchedIn(walk: number, base: number, id: number): number {
    if (walk !== this.walks) throw new Error('PrefixMatches read after a later walk of the same index: read it before walking again');
    const reached = this.reached[id]! - base;
    return reached > 0 ? reached : 0;
  }

  /**
   * Sets `reached[id] - walkBase` to the leading blocks endpoint `id` holds, for every endpoint holding the first block
   * (of `candidates` when given), and returns those endpoints; ids not among them read ≤ 0.
   *
   * Each endpoint's blocks are followed along its own recency list: `record` appends a prompt's blocks in prompt order,
   * and a later prompt sharing a prefix moves those blocks to the tail in the same order, so the block after a matched
   * one is nearly always the next entry of that list (one comparison); only where it is not is the entry looked up in
   * its hash bucket. The walk before this visited, for every block, every entry in its bucket, holders or not: at 256
   * pods holding the same 16 KB prefix that was ~60,000 entries a request, most of the scheduling cycle.
   */
  private walk(blocks: readonly number[], candidates: ReadonlySet<string> | undefined): EndpointState[] {
    this.walks++;
    const starters: EndpointState[] = [];
    if (this.reached.length < this.endpointById.length) this.reached = new Float64Array(this.endpointById.length * 2);
    // Stale values from earlier walks are below base.
    const base = this.generation;
    this.walkBase = base;
    this.generation += blocks.length + 2;
    if (blocks.length === 0 || this.entries === 0) return starters;
    const first = blocks[0]!;
    const keyAt = this.keyAt;
    const newer = this.newer;
    for (let start = this.buckets[this.bucketOf(first)]!; start !== NONE; start = this.chain[start]!) {
      if (keyAt[start] !== first) continue;
      const state = this.endpointById[this.endpointAt[start]!]!;
      if (candidates !== undefined && !candidates.has(state.key)) continue;
      starters.push(state);
      let slot = start;
      let held = 1;
      while (held < blocks.length) {
        const block = blocks[held]!;
        const next = newer[slot]!;
        if (next !== NONE && keyAt[next] === block) {
          slot = next;
        } else {
          slot = this.find(block, state.id);
          if (slot === NONE) break;
        }
        held++;
      }
      this.reached[state.id] = base + held;
    }
    return starters;
  }

  /** Forgets every entry of `endpointKey` (its model server restarted) and keeps its place and capacity. */
  clearEndpoint(endpointKey: string): void {
    const state = this.endpoints.get(endpointKey);
    if (state === undefined) return;
    while (state.head !== NONE) this.evict(state, state.head);
  }

  /** Forgets an endpoint that left the pool (upstream lets its entries age out instead) and frees its share. */
  removeEndpoint(endpointKey: string): void {
    const state = this.endpoints.get(endpointKey);
    if (state === undefined) return;
    this.clearEndpoint(endpointKey);
    this.endpoints.delete(endpointKey);
    this.endpointById[state.id] = undefined;
    this.freeIds.push(state.id);
    this.idVersion++;
    this.wantedTotal -= state.wanted;
    this.rebalance();
  }

  /** Blocks held by one endpoint, least recent first (for tests and debugging). */
  blocksOf(endpointKey: string): number[] {
    const state = this.endpoints.get(endpointKey);
    const ordered: number[] = [];
    if (state === undefined) return ordered;
    for (let slot = state.head; slot !== NONE; slot = this.newer[slot]!) ordered.push(this.keyAt[slot]!);
    return ordered;
  }

  private register(endpointKey: string, wanted: number): EndpointState {
    const id = this.freeIds.pop() ?? this.endpointById.length;
    const state: EndpointState = { key: endpointKey, id, wanted, capacity: 0, size: 0, head: NONE, tail: NONE };
    this.endpoints.set(endpointKey, state);
    this.endpointById[id] = state;
    this.idVersion++;
    this.wantedTotal += wanted;
    return state;
  }

  /**
   * Recomputes every endpoint's capacity from the budget and evicts what no longer fits. The buckets are sized for the
   * new total here, when endpoints join or are sized (mostly at start, with an empty index), so that routing never
   * waits for a rehash of a full index.
   */
  private rebalance(): void {
    this.capacityTotal = shareBudget(this.endpoints.values(), this.maxEntries);
    for (const state of this.endpoints.values()) while (state.size > state.capacity) this.evict(state, state.head);
    let buckets = this.buckets.length;
    while (2 * buckets < this.capacityTotal && buckets < PRESIZED_BUCKETS_MAX) buckets *= 2;
    if (buckets > this.buckets.length) this.rehash(buckets);
  }

  private bucketOf(block: number): number {
    // Keys are 53-bit hashes whose low 32 bits are one full hash lane (prefix-hash.ts): ToUint32 keeps them.
    return (block >>> 0) & (this.buckets.length - 1);
  }

  private find(block: number, id: number): number {
    for (let slot = this.buckets[this.bucketOf(block)]!; slot !== NONE; slot = this.chain[slot]!) {
      if (this.keyAt[slot] === block && this.endpointAt[slot] === id) return slot;
    }
    return NONE;
  }

  private evict(state: EndpointState, slot: number): void {
    this.unlinkRecency(state, slot);
    const bucket = this.bucketOf(this.keyAt[slot]!);
    let at = this.buckets[bucket]!;
    if (at === slot) {
      this.buckets[bucket] = this.chain[slot]!;
    } else {
      while (this.chain[at] !== slot) at = this.chain[at]!;
      this.chain[at] = this.chain[slot]!;
    }
    this.newer[slot] = this.free;
    this.endpointAt[slot] = NONE;
    this.free = slot;
    state.size--;
    this.entries--;
  }

  private allocate(): number {
    if (this.free !== NONE) {
      const slot = this.free;
      this.free = this.newer[slot]!;
      return slot;
    }
    if (this.used === this.keyAt.length) this.grow();
    return this.used++;
  }

  /**
   * Doubles the entry arrays, but never past the capacities' sum (the entries cannot outnumber it), so a full index
   * has no unused slots beyond those a shrunk capacity left behind.
   */
  private grow(): void {
    const length = Math.max(this.keyAt.length + 1, Math.min(this.keyAt.length * 2, this.capacityTotal));
    const grown = <T extends Float64Array | Int32Array>(array: T, make: (n: number) => T): T => {
      const copy = make(length);
      copy.set(array);
      return copy;
    };
    this.keyAt = grown(this.keyAt, (n) => new Float64Array(n));
    this.endpointAt = grown(this.endpointAt, (n) => new Int32Array(n));
    this.older = grown(this.older, (n) => new Int32Array(n));
    this.newer = grown(this.newer, (n) => new Int32Array(n));
    this.chain = grown(this.chain, (n) => new Int32Array(n));
  }

  /** Rebuilds the buckets, walking the slots in memory order (free slots have no endpoint). */
  private rehash(length: number): void {
    this.buckets = new Int32Array(length).fill(NONE);
    for (let slot = 0; slot < this.used; slot++) {
      if (this.endpointAt[slot] === NONE) continue;
      const bucket = this.bucketOf(this.keyAt[slot]!);
      this.chain[slot] = this.buckets[bucket]!;
      this.buckets[bucket] = slot;
    }
  }

  private appendRecency(state: EndpointState, slot: number): void {
    this.older[slot] = state.tail;
    this.newer[slot] = NONE;
    if (state.tail === NONE) state.head = slot;
    else this.newer[state.tail] = slot;
    state.tail = slot;
  }

  private unlinkRecency(state: EndpointState, slot: number): void {
    const before = this.older[slot]!;
    const after = this.newer[slot]!;
    if (before === NONE) state.head = after;
    else this.newer[before] = after;
    if (after === NONE) state.tail = before;
    else this.older[after] = before;
  }
}

/**
 * One `PrefixBlockIndex.matchPrefix` walk: every endpoint holding the prompt's first block with its count of leading
 * blocks (`keys`, `counts`), and `blocksOf(id)` for any endpoint id, valid until the index walks again (reading it
 * later throws rather than answer for another prompt).
 */
export class PrefixMatches {
  constructor(
    private readonly index: PrefixBlockIndex,
    private readonly walk: number,
    private readonly base: number,
    /** Keys of the endpoints holding at least the first block. */
    readonly keys: readonly string[],
    /** Their ids (`PrefixBlockIndex.idOf`) at the time of the walk. */
    readonly ids: readonly number[],
    /** `counts[j]`: leading blocks `keys[j]` holds (≥ 1). */
    readonly counts: readonly number[],
  ) {}

  /** Endpoints holding at least the first block. */
  get size(): number {
    return this.keys.length;
  }

  /** Leading blocks the endpoint with index id `id` holds (0 for none; `id` from `PrefixBlockIndex.idOf`, ≥ 0). */
  blocksOf(id: number): number {
    return this.index.blocksMatchedIn(this.walk, this.base, id);
  }
}
