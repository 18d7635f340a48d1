import type { BlockStored } from '@kvroute/protocol/kv-events';
import { BlockHasher, chainBlockHashes, type BlockHash } from '../src/block-hash';
import { KvCacheManager, type CacheHit, type KvSequence } from '../src/kv-cache';

/** Block size 4 throughout, so every count below can be checked by hand. */
const B = 4;
const hasher = new BlockHasher('sha256_cbor_64bit', '0');
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const hashes = (tokens: number[]): BlockHash[] => chainBlockHashes(hasher, tokens, B);

interface Seq extends KvSequence {
  numComputedTokens: number;
  numTokens: number;
}

function seq(id: string, tokens: number[], numTokens = tokens.length): Seq {
  return { id, tokens, numTokens, numComputedTokens: 0, hashes: hashes(tokens), loraId: null };
}

/** Schedules a waiting sequence as vLLM does: look up (num_tokens - 1), then allocate the rest in one step. */
function admit(kv: KvCacheManager, s: Seq): CacheHit | null {
  const hit = kv.findLongestCacheHit(s.hashes, s.numTokens - 1);
  const fresh = kv.allocateSlots(s, s.numTokens - hit.tokens, hit);
  if (!fresh) return null;
  s.numComputedTokens = s.numTokens;
  return hit;
}

/** One decode step: the token sampled last gets its slot. */
function decode(kv: KvCacheManager, s: Seq): boolean {
  s.numTokens++;
  const ok = kv.allocateSlots(s, 1) !== null;
  if (ok) s.numComputedTokens++;
  else s.numTokens--;
  return ok;
}

describe('KvCacheManager (vllm/v1/core/block_pool.py, kv_cache_manager.py @ v0.10.0)', () => {
  it('reserves block 0 as the null block: idle usage is 1/num_blocks and only num_blocks - 1 hold KV', () => {
    const kv = new KvCacheManager(8, B);
    expect(kv.numFreeBlocks).toBe(7);
    expect(kv.numUsedBlocks).toBe(1);
    expect(kv.usage).toBeCloseTo(1 / 8);
    expect(admit(kv, seq('A', range(1, 28)))).not.toBeNull(); // 7 blocks: every usable one
    expect(kv.usage).toBe(1);
    expect(kv.blocksOf('A')).not.toContain(0);
    expect(admit(kv, seq('B', range(100, 101)))).toBeNull();
    kv.free('A');
    expect(kv.usage).toBeCloseTo(1 / 8);
  });

  it("vLLM 0.10.2's get_usage leaves the null block out: 0 when idle, 1 when full (vllm/v1/core/block_pool.py @ v0.10.2, #22995)", () => {
    const kv = new KvCacheManager(8, B, false, 'v0.10', true);
    expect(kv.usage).toBe(0);
    expect(admit(kv, seq('A', range(1, 15)))).not.toBeNull(); // 4 of the 7 usable blocks
    expect(kv.usage).toBeCloseTo(4 / 7);
    expect(admit(kv, seq('B', range(100, 111)))).not.toBeNull(); // the other 3
    expect(kv.usage).toBe(1);
    kv.free('A');
    kv.free('B');
    expect(kv.usage).toBe(0);
  });

  it('caches only full blocks and hits a shared prefix in tokens', () => {
    const kv = new KvCacheManager(9, B);
    // A: 10 prompt tokens → blocks [1-4][5-8][9,10,_,_]; only the first two are cached.
    expect(admit(kv, seq('A', range(1, 10)))?.tokens).toBe(0);
    expect(kv.numUsedBlocks).toBe(1 + 3);
    expect(kv.numCachedBlocks).toBe(2);
    // B shares tokens 1..10 then differs: the partial block [9,10] was never cached, so the hit is 8 tokens.
    const b = seq('B', [...range(1, 10), 77, 78]);
    expect(admit(kv, b)?.tokens).toBe(8);
    expect(kv.numUsedBlocks).toBe(1 + 4);
    expect(kv.numCachedBlocks).toBe(3); // B's [9,10,77,78]
  });

  it('always leaves the last token to compute: an exact 8-token repeat hits 4, a 9-token prompt 8', () => {
    const kv = new KvCacheManager(9, B);
    admit(kv, seq('A', range(1, 8)));
    kv.free('A');
    expect(admit(kv, seq('A2', range(1, 8)))?.tokens).toBe(4);
    expect(admit(kv, seq('A3', range(1, 9)))?.tokens).toBe(8);
  });

  it('hits only the longest consecutive run from the start', () => {
    const kv = new KvCacheManager(17, B);
    admit(kv, seq('A', range(1, 13))); // caches [1-4][5-8][9-12]
    // Same first block, different second block, identical third block: the third is chained to another parent.
    const probe = [...range(1, 4), 50, 51, 52, 53, ...range(9, 12), 99];
    expect(kv.findLongestCacheHit(hashes(probe), probe.length - 1).blockIds).toHaveLength(1);
    const probe2 = [0, 2, 3, 4, ...range(5, 12), 99];
    expect(kv.findLongestCacheHit(hashes(probe2), probe2.length - 1).tokens).toBe(0);
  });

  it('frees tail-first and evicts never-used blocks (id order), then the least recently freed, lazily', () => {
    const kv = new KvCacheManager(7, B, true);
    const a = seq('A', range(1, 12));
    const [a0, a1, a2] = a.hashes;
    admit(kv, a); // blocks 1, 2, 3
    expect(kv.blocksOf('A')).toEqual([1, 2, 3]);
    kv.takeEvents();
    kv.free('A');
    // No event at free time: the blocks keep their hashes.
    expect(kv.takeEvents()).toEqual([]);
    expect(kv.freeQueueKeys()).toEqual([null, null, null, a2.key, a1.key, a0.key]);
    expect(kv.usage).toBeCloseTo(1 / 7);

    admit(kv, seq('X', range(100, 107))); // 2 blocks: both never used
    expect(kv.evictions).toBe(0);
    expect(kv.takeEvents().map((e) => e.type)).toEqual(['BlockStored']);

    admit(kv, seq('Y', range(200, 211))); // 3: the last never-used block, then a2, then a1
    expect(kv.evictions).toBe(2);
    expect([kv.isCached(a0), kv.isCached(a1), kv.isCached(a2)]).toEqual([true, false, false]);
    // BlockRemoved per evicted block, in eviction order, before Y's BlockStored (same allocate_slots call).
    const events = kv.takeEvents();
    expect(events.map((e) => e.type)).toEqual(['BlockRemoved', 'BlockRemoved', 'BlockStored']);
    expect(events.slice(0, 2)).toEqual([
      { type: 'BlockRemoved', blockHashes: [a2.event.toString()] },
      { type: 'BlockRemoved', blockHashes: [a1.event.toString()] },
    ]);
  });

  it('a hit moves a free block out of the queue, so it is evicted after older free blocks', () => {
    const kv = new KvCacheManager(5, B);
    const p = range(1, 4);
    const q = range(11, 14);
    admit(kv, seq('P', p));
    admit(kv, seq('Q', q));
    kv.free('P');
    kv.free('Q');
    // Queue: [never, never, P, Q]. P2 hits P's block and takes a never-used one.
    admit(kv, seq('P2', [...p, 9]));
    kv.free('P2');
    expect(kv.freeQueueKeys()).toEqual([null, hashes(q)[0].key, null, hashes(p)[0].key]);
    admit(kv, seq('Z', range(300, 307))); // the never-used block, then Q's (least recently freed), not P's
    expect(kv.isCached(hashes(q)[0])).toBe(false);
    expect(kv.isCached(hashes(p)[0])).toBe(true);
  });

  it('never evicts blocks in use; a request that does not fit is refused and nothing changes', () => {
    const kv = new KvCacheManager(5, B);
    const a = range(1, 12);
    expect(admit(kv, seq('A', a))).not.toBeNull(); // 3 of 4 usable blocks
    expect(admit(kv, seq('B', range(50, 57)))).toBeNull(); // needs 2, 1 free
    expect(kv.numUsedBlocks).toBe(4);
    expect(kv.findLongestCacheHit(hashes([...a, 0]), 12).blockIds).toHaveLength(3);
    kv.free('A');
    expect(admit(kv, seq('B', range(50, 57)))?.tokens).toBe(0); // the never-used block and A's tail
    expect(kv.findLongestCacheHit(hashes([...a, 0]), 12).blockIds).toHaveLength(2);
  });

  it('counts hit blocks waiting in the free queue against the free blocks (get_num_blocks_to_allocate)', () => {
    const kv = new KvCacheManager(4, B);
    admit(kv, seq('A', range(1, 8)));
    kv.free('A'); // queue: [never, a1, a0]
    // B hits a0 and needs 2 new: 2 + 1 evictable hit = 3 = free. Fits exactly.
    expect(admit(kv, seq('B', [...range(1, 4), 60, 61, 62, 63, 64]))?.tokens).toBe(4);
    expect(kv.numFreeBlocks).toBe(0);
    kv.free('B');
    // C hits a0 and needs 3 new: 3 + 1 > 3 free. Refused.
    expect(admit(kv, seq('C', [...range(1, 4), ...range(70, 81)]))).toBeNull();
  });

  it('decode grows a sequence block by block and caches blocks its generated tokens fill', () => {
    const kv = new KvCacheManager(17, B, true);
    const all = range(1, 13); // 6 prompt tokens, 7 generated
    const t = seq('T1', all, 6);
    admit(kv, t); // [1-4] cached, [5,6] partial
    expect(kv.blocksOf('T1')).toHaveLength(2);
    // Generated tokens 7..12 get slots; token 13 is sampled last and never needs one.
    for (let n = 0; n < 6; n++) expect(decode(kv, t)).toBe(true);
    expect(kv.blocksOf('T1')).toHaveLength(3);
    expect(kv.numCachedBlocks).toBe(3);
    const stored = kv.takeEvents() as BlockStored[];
    // One BlockStored per cache_full_blocks call: the prompt's block, then each block the outputs complete.
    expect(stored.map((e) => e.tokenIds)).toEqual([range(1, 4), range(5, 8), range(9, 12)]);
    expect(stored.map((e) => e.parentBlockHash)).toEqual([null, t.hashes[0].event.toString(), t.hashes[1].event.toString()]);
    expect(stored.every((e) => e.blockSize === B && e.loraId === null)).toBe(true);
    kv.free('T1');
    const turn2 = [...all, 40, 41, 42];
    expect(kv.findLongestCacheHit(hashes(turn2), turn2.length - 1).blockIds).toHaveLength(3);
  });

  it('a hit is not stored again; the event covers only the newly full blocks and names the parent', () => {
    const kv = new KvCacheManager(17, B, true);
    admit(kv, seq('A', range(1, 9)));
    kv.free('A');
    kv.takeEvents();
    const b = seq('B', range(1, 17));
    expect(admit(kv, b)?.tokens).toBe(8);
    expect(kv.takeEvents()).toEqual([
      { type: 'BlockStored', blockHashes: b.hashes.slice(2, 4).map((h) => h.event.toString()), parentBlockHash: b.hashes[1].event.toString(), tokenIds: range(9, 16), blockSize: B, loraId: null },
    ]);
  });

  it('keeps duplicates: a block recomputed under the -1 rule is cached twice; lookups use the first; evictions remove one copy', () => {
    const kv = new KvCacheManager(9, B, true);
    const a = seq('A', range(1, 8));
    admit(kv, a); // blocks 1, 2
    kv.free('A'); // queue: [3..8, 2, 1]
    kv.takeEvents();
    // An identical 8-token prompt hits 4 (max hit = 7 tokens) and recomputes [5-8] into a new block.
    const b = seq('B', range(1, 8));
    expect(admit(kv, b)?.blockIds).toEqual([1]);
    expect(kv.blocksOf('B')).toEqual([1, 3]);
    expect(kv.copiesOf(a.hashes[1])).toBe(2);
    expect(kv.numCachedBlocks).toBe(3);
    expect(kv.numCachedHashes).toBe(2);
    // The copy gets its own BlockStored, with the same hash.
    expect(kv.takeEvents()).toEqual([
      { type: 'BlockStored', blockHashes: [a.hashes[1].event.toString()], parentBlockHash: a.hashes[0].event.toString(), tokenIds: range(5, 8), blockSize: B, loraId: null },
    ]);
    kv.free('B'); // queue: [4..8, 2, 3, 1]
    // A lookup finds the first copy cached (block 2).
    expect(kv.findLongestCacheHit(a.hashes, 8).blockIds).toEqual([1, 2]);
    // Take 5 never-used blocks, then block 2: one copy of the hash goes (BlockRemoved), the other (block 3) stays.
    admit(kv, seq('F', range(1000, 1023)));
    expect(kv.takeEvents().filter((e) => e.type === 'BlockRemoved')).toEqual([{ type: 'BlockRemoved', blockHashes: [a.hashes[1].event.toString()] }]);
    expect(kv.copiesOf(a.hashes[1])).toBe(1);
    expect(kv.findLongestCacheHit(a.hashes, 8).blockIds).toEqual([1, 3]);
  });

  it('reset_prefix_cache: refused while a block is in use; then drops every hash, AllBlocksCleared, no BlockRemoved later', () => {
    const kv = new KvCacheManager(6, B, true);
    const a = seq('A', range(1, 8));
    admit(kv, a);
    kv.takeEvents();
    expect(kv.resetPrefixCache()).toBe(false);
    expect(kv.takeEvents()).toEqual([]);
    kv.free('A');
    expect(kv.resetPrefixCache()).toBe(true);
    expect(kv.takeEvents()).toEqual([{ type: 'AllBlocksCleared' }]);
    expect(kv.numCachedBlocks).toBe(0);
    expect(kv.findLongestCacheHit(a.hashes, 8).tokens).toBe(0);
    admit(kv, seq('Z', range(100, 119))); // reuses every block, A's included
    expect(kv.takeEvents().map((e) => e.type)).toEqual(['BlockStored']);
  });

  it('reports lora_id on BlockStored', () => {
    const kv = new KvCacheManager(6, B, true);
    admit(kv, { ...seq('L', range(1, 4)), loraId: 3 });
    expect((kv.takeEvents()[0] as BlockStored).loraId).toBe(3);
  });

  it('queues no events unless enabled', () => {
    const kv = new KvCacheManager(6, B);
    admit(kv, seq('A', range(1, 8)));
    expect(kv.takeEvents()).toEqual([]);
  });
});
