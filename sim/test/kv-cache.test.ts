import { chainBlockHashes } from '../src/block-hash';
import { KvCacheManager } from '../src/kv-cache';

/** Block size 4 throughout, so every count below can be checked by hand. */
const B = 4;
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const hashes = (tokens: number[]): string[] => chainBlockHashes(tokens, B);

/** Admits a sequence whose whole lifetime needs `maxSlots` KV slots, and caches its prompt blocks. */
function admit(kv: KvCacheManager, id: string, prompt: number[], maxSlots = prompt.length, all = prompt) {
  const alloc = kv.allocate(id, hashes(all), prompt.length, maxSlots);
  if (alloc) kv.commit(id, prompt.length);
  return alloc;
}

describe('block hashes', () => {
  it('hash full blocks only: 10 tokens at block size 4 give 2 hashes', () => {
    expect(hashes(range(1, 10))).toHaveLength(2);
    expect(hashes(range(1, 3))).toHaveLength(0);
  });

  it('chain: a block hash depends on every earlier token, not just its own', () => {
    const a = hashes([...range(1, 4), ...range(5, 8)]);
    const b = hashes([...range(101, 104), ...range(5, 8)]);
    expect(a[1]).not.toBe(b[1]);
    expect(hashes(range(1, 8))[0]).toBe(hashes(range(1, 4))[0]);
  });

  it('cache_salt changes the first block and therefore the whole chain', () => {
    const plain = chainBlockHashes(range(1, 8), B);
    const salted = chainBlockHashes(range(1, 8), B, 'tenant-a');
    expect(salted[0]).not.toBe(plain[0]);
    expect(salted[1]).not.toBe(plain[1]);
    expect(chainBlockHashes(range(1, 8), B, 'tenant-a')).toEqual(salted);
  });

  it('number[] and Uint32Array inputs hash identically', () => {
    const t = range(1, 40).map((x) => x * 4099);
    expect(chainBlockHashes(Uint32Array.from(t), B)).toEqual(chainBlockHashes(t, B));
  });
});

describe('KvCacheManager (vLLM v1 semantics)', () => {
  it('caches only full blocks and hits a shared prefix in tokens', () => {
    const kv = new KvCacheManager(8, B);
    // A: 10 prompt tokens → blocks [1-4][5-8][9,10,_,_]; only the first two are cacheable.
    const a = admit(kv, 'A', range(1, 10));
    expect(a).toEqual({ hitBlocks: 0, hitTokens: 0, hitBlockIds: [] });
    expect(kv.numUsedBlocks).toBe(3);
    expect(kv.numCachedBlocks).toBe(2);

    // B shares tokens 1..10 (all of A's prompt) then differs. The partial
    // block [9,10] was never cached, so the hit is 8 tokens, not 10.
    const b = admit(kv, 'B', [...range(1, 10), 77, 78]);
    expect(b?.hitTokens).toBe(8);
    // B reuses A's two blocks and allocates one new one: 3 + 1 in use.
    expect(kv.numUsedBlocks).toBe(4);
    expect(kv.usage).toBeCloseTo(4 / 8);
    // B's third block [9,10,77,78] is full, so B adds it to the cache.
    expect(kv.numCachedBlocks).toBe(3);
  });

  it('always leaves the last prompt token to compute: an exact 8-token repeat hits 4, not 8', () => {
    const kv = new KvCacheManager(8, B);
    admit(kv, 'A', range(1, 8));
    kv.free('A');
    expect(admit(kv, 'A2', range(1, 8))?.hitTokens).toBe(4);
    // The 9-token prompt may hit both blocks: floor((9-1)/4) = 2.
    expect(admit(kv, 'A3', range(1, 9))?.hitTokens).toBe(8);
  });

  it('hits only the longest consecutive run from the start', () => {
    const kv = new KvCacheManager(16, B);
    admit(kv, 'A', range(1, 13)); // caches [1-4][5-8][9-12]
    // Same first block, different second block, identical third block: the
    // third does not count — its hash is chained to a different parent.
    const probe = [...range(1, 4), 50, 51, 52, 53, ...range(9, 12), 99];
    expect(kv.peekHit(hashes(probe), probe.length)).toBe(1);
    // Different first block: nothing hits even though blocks 2-3 match tokenwise.
    const probe2 = [0, 2, 3, 4, ...range(5, 12), 99];
    expect(kv.peekHit(hashes(probe2), probe2.length)).toBe(0);
    // And the rule itself, on a hash list with a hole in it.
    const h = hashes(range(1, 12));
    expect(kv.longestCachedPrefix([h[0], 'not-cached', h[2]])).toBe(1);
  });

  it('frees a sequence tail-first and evicts never-used, then least-recently-freed blocks', () => {
    const kv = new KvCacheManager(6, B);
    const a = range(1, 12);
    const [a0, a1, a2] = hashes(a);
    admit(kv, 'A', a); // uses 3 of 6 blocks
    kv.free('A');
    // Free queue, next-to-evict first: three never-used blocks, then A's blocks with its tail first.
    expect(kv.freeQueueHashes()).toEqual([null, null, null, a2, a1, a0]);
    expect(kv.numFreeBlocks).toBe(6);
    expect(kv.usage).toBe(0);

    admit(kv, 'X', range(100, 107)); // needs 2 blocks: both come from the never-used ones
    expect(kv.evictions).toBe(0);
    expect(kv.freeQueueHashes()).toEqual([null, a2, a1, a0]);

    admit(kv, 'Y', range(200, 211)); // needs 3: the last never-used block, then a2, then a1
    expect(kv.evictions).toBe(2);
    expect([kv.isCached(a0), kv.isCached(a1), kv.isCached(a2)]).toEqual([true, false, false]);
    expect(kv.peekHit(hashes([...a, 5]), 13)).toBe(1);
  });

  it('a hit moves a free block out of the queue, so it is evicted later than older free blocks', () => {
    const kv = new KvCacheManager(4, B);
    const p = range(1, 4);
    const q = range(11, 14);
    admit(kv, 'P', p);
    admit(kv, 'Q', q);
    kv.free('P');
    kv.free('Q');
    // Queue: [never, never, P, Q]. Re-using P refreshes it behind Q.
    const p2 = [...p, 9];
    admit(kv, 'P2', p2); // hits P's block, allocates one never-used block
    kv.free('P2');
    expect(kv.freeQueueHashes()).toEqual([null, hashes(q)[0], null, hashes(p)[0]]);
    admit(kv, 'Z', range(300, 307)); // 2 blocks: the never-used one, then Q's (LRU), not P's
    expect(kv.isCached(hashes(q)[0])).toBe(false);
    expect(kv.isCached(hashes(p)[0])).toBe(true);
  });

  it('never evicts blocks of running sequences; a request that does not fit is refused, not crashed', () => {
    const kv = new KvCacheManager(4, B);
    const a = range(1, 12);
    expect(admit(kv, 'A', a)).not.toBeNull(); // 3 of 4 blocks, still running
    const before = kv.numCachedBlocks;
    // B needs 2 blocks; only 1 is free and A's cannot be taken.
    expect(admit(kv, 'B', range(50, 57))).toBeNull();
    expect(kv.numCachedBlocks).toBe(before);
    expect(kv.numUsedBlocks).toBe(3);
    expect(kv.peekHit(hashes([...a, 0]), 13)).toBe(3);
    kv.free('A');
    // Now B fits; it takes the never-used block and A's tail block.
    expect(admit(kv, 'B', range(50, 57))?.hitTokens).toBe(0);
    expect(kv.peekHit(hashes([...a, 0]), 13)).toBe(2);
  });

  it('counts blocks a hit takes out of the free queue as not free for the new blocks', () => {
    const kv = new KvCacheManager(3, B);
    admit(kv, 'A', range(1, 8));
    kv.free('A'); // queue: [never, a1, a0]
    // 3 blocks in all: hit a0 (1 block) and 2 new — but a new block may not be
    // taken from a0 itself. Free = 3, minus the hit = 2: fits exactly.
    const alloc = admit(kv, 'B', [...range(1, 4), 60, 61, 62, 63, 64]);
    expect(alloc?.hitTokens).toBe(4);
    expect(kv.numUsedBlocks).toBe(3);
  });

  it('reserves decode blocks at admission without counting them as used', () => {
    const kv = new KvCacheManager(4, B);
    // 4 prompt tokens + 9 generated: 12 slots (the last generated token never gets one) = 3 blocks.
    expect(kv.allocate('A', hashes(range(1, 13)), 4, 12)).not.toBeNull();
    expect(kv.numUsedBlocks).toBe(1);
    expect(kv.reservedBlocks).toBe(2);
    expect(kv.usage).toBeCloseTo(0.25);
    // Only 1 block is truly available to others.
    expect(kv.allocate('B', hashes(range(40, 47)), 8, 8)).toBeNull();
    expect(kv.allocate('C', hashes(range(40, 43)), 4, 4)).not.toBeNull();
    kv.grow('A', 5);
    expect(kv.numUsedBlocks).toBe(3);
    expect(kv.reservedBlocks).toBe(1);
    kv.free('A');
    expect(kv.reservedBlocks).toBe(0);
    expect(kv.numUsedBlocks).toBe(1);
  });

  it('caches blocks completed by generated tokens, so the next turn reuses prompt and reply', () => {
    const kv = new KvCacheManager(16, B);
    const prompt = range(1, 6);
    const reply = range(7, 13); // 7 generated tokens
    const all = [...prompt, ...reply];
    // Slots: 6 + 7 - 1 = 12 (token 13 is sampled last and never fed back).
    expect(kv.allocate('T1', chainBlockHashes(all, B, undefined, 12), 6, 12)).not.toBeNull();
    kv.commit('T1', 6); // prompt: one full block [1-4]
    expect(kv.numCachedBlocks).toBe(1);
    for (let k = 0; k < reply.length - 1; k++) {
      kv.grow('T1', 6 + k + 1);
      kv.commit('T1', 6 + k + 1);
    }
    // [5,6,7,8] and [9,10,11,12] were completed by generated tokens.
    expect(kv.numCachedBlocks).toBe(3);
    kv.free('T1');
    // Turn 2 = turn 1 prompt + reply + new user tokens.
    const turn2 = [...all, 40, 41, 42];
    expect(kv.peekHit(hashes(turn2), turn2.length)).toBe(3);
  });

  it('keeps one cache entry when the same block is recomputed, and frees the copy as anonymous', () => {
    const kv = new KvCacheManager(8, B);
    admit(kv, 'A', range(1, 8));
    kv.free('A');
    const cached = kv.numCachedBlocks;
    admit(kv, 'B', range(1, 8)); // hits 1 block, recomputes [5-8] into a new block
    expect(kv.numCachedBlocks).toBe(cached);
    kv.free('B');
    expect(kv.freeQueueHashes().filter((h) => h === null)).toHaveLength(8 - 2);
  });
});
