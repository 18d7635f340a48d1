import { BlockHasher, chainBlockHashes, type BlockHash } from '../src/block-hash';
import { KvCacheManager, type KvSequence } from '../src/kv-cache';

// vllm-project/vllm tests/v1/core/test_prefix_caching.py @ v0.10.0, replayed on KvCacheManager with the same expected
// values: make_kv_cache_config(16, 11), i.e. 11 blocks of 16 tokens, block 0 the null block.
const B = 16;
const hasher = new BlockHasher('sha256_cbor_64bit', '0');
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
interface Seq extends KvSequence { numComputedTokens: number; numTokens: number; tokens: number[]; hashes: BlockHash[] }
const seq = (id: string, tokens: number[]): Seq => ({ id, tokens, numTokens: tokens.length, numComputedTokens: 0, hashes: chainBlockHashes(hasher, tokens, B), loraId: null });

describe('vLLM tests/v1/core/test_prefix_caching.py @ v0.10.0', () => {
  it('test_evict: free order [10, 6, 5, 4, 3, 2, 1, 9, 8, 7]; req2 hits [1, 2] and gets block 10; 7 free', () => {
    const kv = new KvCacheManager(11, B);
    let last = 5 * 16 + 7;
    const r0 = seq('0', range(0, last));
    const h0 = kv.findLongestCacheHit(r0.hashes, r0.numTokens - 1);
    expect(h0.tokens).toBe(0);
    expect(kv.allocateSlots(r0, 5 * 16 + 7, h0)).toHaveLength(6);
    const r1 = seq('1', range(last, last + 3 * 16));
    expect(kv.allocateSlots(r1, 3 * 16, kv.findLongestCacheHit(r1.hashes, r1.numTokens - 1))).toHaveLength(3);
    last += 3 * 16;
    expect(kv.numFreeBlocks).toBe(1);
    expect([...kv.blocksOf('0'), ...kv.blocksOf('1')]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    kv.free('0');
    kv.free('1');
    expect(kv.numFreeBlocks).toBe(10);
    // free-queue order as hash keys: block 10 (never used), 6 (partial, no hash), 5..1, 9, 8, 7
    const key = (tokens: number[], i: number): string => chainBlockHashes(hasher, tokens, B)[i]!.key;
    const t0 = range(0, 5 * 16 + 7);
    const t1 = range(5 * 16 + 7, 5 * 16 + 7 + 48);
    expect(kv.freeQueueKeys()).toEqual([null, null, key(t0, 4), key(t0, 3), key(t0, 2), key(t0, 1), key(t0, 0), key(t1, 2), key(t1, 1), key(t1, 0)]);
    const r2 = seq('2', range(0, 2 * 16 + 3));
    const h2 = kv.findLongestCacheHit(r2.hashes, r2.numTokens - 1);
    expect(h2.blockIds).toEqual([1, 2]);
    expect(h2.tokens).toBe(32);
    expect(kv.allocateSlots(r2, 3, h2)).toEqual([10]);
    expect(kv.numFreeBlocks).toBe(7);
  });

  it('test_prefill_not_enough_free_blocks_with_computed_blocks: a refused allocation touches no hit block', () => {
    const kv = new KvCacheManager(11, B);
    const common = [0, 1, 2].flatMap((i) => Array<number>(16).fill(i));
    const r0 = seq('0', common);
    expect(kv.allocateSlots(r0, 48, kv.findLongestCacheHit(r0.hashes, 47))).not.toBeNull();
    const part0 = [...kv.blocksOf('0')];
    const r1 = seq('1', [...common, ...common]);
    const h1 = kv.findLongestCacheHit(r1.hashes, r1.numTokens - 1);
    expect(h1.blockIds).toEqual(part0);
    expect(h1.tokens).toBe(48);
    expect(kv.allocateSlots(r1, 48, h1)).not.toBeNull();
    const part1 = [...kv.blocksOf('1')];
    kv.free('1');
    const r2 = seq('2', Array<number>(32).fill(7));
    expect(kv.findLongestCacheHit(r2.hashes, 31).tokens).toBe(0);
    expect(kv.allocateSlots(r2, 32, kv.findLongestCacheHit(r2.hashes, 31))).not.toBeNull();
    expect(kv.numFreeBlocks).toBe(5);
    const r3 = seq('3', [...common, ...common, ...common]);
    const h3 = kv.findLongestCacheHit(r3.hashes, r3.numTokens - 1);
    expect(h3.blockIds).toEqual(part1);
    expect(h3.tokens).toBe(96);
    expect(kv.allocateSlots(r3, 48, h3)).toBeNull();
    expect(kv.numFreeBlocks).toBe(5);
    // Blocks 3-5 of req1 are still free and cached: req1 again hits all 6
    expect(kv.findLongestCacheHit(r1.hashes, r1.numTokens - 1).blockIds).toEqual(part1.slice(0, 5));
  });
});
