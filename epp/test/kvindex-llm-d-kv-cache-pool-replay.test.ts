/**
 * llm-d-kv-cache v0.8.1 pkg/kvevents/pool_test.go and pkg/kvcache/kvblock/index_test.go scenarios, replayed on
 * kvroute's KvBlockIndex with upstream's expected index states; the last case is kvroute's one deliberate difference.
 */
import type { BlockRemoved, BlockStored } from '@kvroute/protocol/kv-events';
import { KvBlockIndex } from '../src/kvindex/kv-block-index';
import { blockKey, rootKey } from '../src/scheduling/plugins/prefix-hash';

const CANON = 64;
const ROOT = rootKey('');
const makeTokens = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const makeEngineKeys = (n: number, base: number) => Array.from({ length: n }, (_, i) => String(base + i));
function requestKeys(ids: readonly number[], bs = CANON): number[] {
  const keys: number[] = [];
  let parent = ROOT;
  for (let i = 0; i + bs <= ids.length; i += bs) keys.push((parent = blockKey(parent, ids, i, i + bs)));
  return keys;
}
const stored = (hashes: string[], ids: number[], extra: Partial<BlockStored> = {}): BlockStored => ({
  type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: ids,
  blockSize: hashes.length > 0 && ids.length > 0 ? ids.length / hashes.length : 0, loraId: null, ...extra,
});
const removed = (hashes: string[], medium?: string): BlockRemoved => ({ type: 'BlockRemoved', blockHashes: hashes, ...(medium ? { medium } : {}) });
const pods = (...p: string[]) => new Set(p);
/** Whether the pod holds the key (a one-key lookup, as upstream's tests Lookup one canonical key). */
const holds = (index: KvBlockIndex, pod: string, key: number) => index.longestPrefix([key], pods(pod), 0).has(pod);
const weightAt = (index: KvBlockIndex, pod: string, key: number) => index.longestPrefix([key], pods(pod), 0).get(pod)?.weight;

describe('llm-d-kv-cache v0.8.1 pool_test.go replayed', () => {
  test('TestCanonicalWritePath_ManyToOne + TestCanonicalEviction_Eager: 8 engine blocks of 16 under 64; evicting engine key 0 drops canonical 0 only', () => {
    const index = new KvBlockIndex(CANON, 1000);
    const tokens = makeTokens(128);
    const ek = makeEngineKeys(8, 100);
    index.store('pod-a', stored(ek, tokens), ROOT);
    const ck = requestKeys(tokens);
    expect(ck).toHaveLength(2);
    for (const k of ck) expect(holds(index, 'pod-a', k)).toBe(true);
    index.remove('pod-a', removed([ek[0]!]));
    expect(holds(index, 'pod-a', ck[0]!)).toBe(false);
    expect(holds(index, 'pod-a', ck[1]!)).toBe(true);
  });

  test('TestCanonicalWritePath_OneToMany: 2 engine blocks of 128 under 64; evicting engine 0 drops canonical 0 and 1', () => {
    const index = new KvBlockIndex(CANON, 1000);
    const tokens = makeTokens(256);
    const ek = makeEngineKeys(2, 200);
    index.store('pod-b', stored(ek, tokens), ROOT);
    const ck = requestKeys(tokens);
    expect(ck).toHaveLength(4);
    for (const k of ck) expect(holds(index, 'pod-b', k)).toBe(true);
    index.remove('pod-b', removed([ek[0]!]));
    expect(holds(index, 'pod-b', ck[0]!)).toBe(false);
    expect(holds(index, 'pod-b', ck[1]!)).toBe(false);
    expect(holds(index, 'pod-b', ck[2]!)).toBe(true);
    expect(holds(index, 'pod-b', ck[3]!)).toBe(true);
  });

  test('TestCanonicalWritePath_CrossEngineScoring: engines at 16 and 32 storing the same tokens hold the same canonical keys', () => {
    const index = new KvBlockIndex(CANON, 1000);
    const tokens = makeTokens(128);
    index.store('pod-a', stored(makeEngineKeys(8, 100), tokens), ROOT);
    index.store('pod-b', stored(makeEngineKeys(4, 200), tokens), ROOT);
    const m = index.longestPrefix(requestKeys(tokens), pods('pod-a', 'pod-b'), 0);
    expect(m.get('pod-a')).toEqual({ blocks: 2, weight: 2 });
    expect(m.get('pod-b')).toEqual({ blocks: 2, weight: 2 });
  });

  test('TestBlockStoredEvent_EvictionOrderGPUThenCPU (block size 16 = canonical): GPU store, tokenless CPU offload, GPU evict keeps CPU, CPU evict clears', () => {
    const index = new KvBlockIndex(16, 1000);
    const tokens = makeTokens(64);
    const ek = makeEngineKeys(4, 700);
    index.store('pod-a', stored(ek, tokens), ROOT);
    index.store('pod-a', { ...stored(ek, [], { medium: 'CPU' }), blockSize: 16 }, ROOT);
    const ck = requestKeys(tokens, 16);
    expect(index.longestPrefix(ck, pods('pod-a'), 0).get('pod-a')).toEqual({ blocks: 4, weight: 4 });
    index.remove('pod-a', removed(ek));
    expect(index.longestPrefix(ck, pods('pod-a'), 0).get('pod-a')).toEqual({ blocks: 4, weight: 4 * 0.8 });
    index.remove('pod-a', removed(ek, 'CPU'));
    expect(index.longestPrefix(ck, pods('pod-a'), 0).has('pod-a')).toBe(false);
  });

  test('TestCanonicalWritePath_PartialBlockDrop: 48 tokens (3 engine blocks of 16) under 64 index nothing', () => {
    const index = new KvBlockIndex(CANON, 1000);
    index.store('pod-partial', stored(makeEngineKeys(3, 400), makeTokens(48)), ROOT);
    expect(index.blocksOf('pod-partial')).toBe(0);
  });

  // pool.go @ v0.8.1 handleDeviceTierUpdate resolves each engine key of a tokenless offload through
  // Index.GetRequestKey, which returns only the LAST request key the engine key maps to (in_memory.go GetRequestKey:
  // `rks[len(rks)-1]`); with 1:many (engine 128 under 64) upstream's CPU copy lands on canonical keys 1 and 3 only, and
  // once the GPU copies leave, canonical 0 is held nowhere and the pod scores nothing (kvblock_scorer.go). vLLM's
  // offload holds every token of both engine blocks on CPU, so kvroute copies every canonical key each engine key
  // stands for: the pod keeps 4 blocks at the CPU weight. Deliberate (epp/README.md, "Tiers").
  test('1:many tokenless CPU offload: every canonical key of each engine block gains the CPU copy (upstream v0.8.1 copies only the last, GetRequestKey)', () => {
    const index = new KvBlockIndex(CANON, 1000);
    const tokens = makeTokens(256);
    const ek = makeEngineKeys(2, 200);
    index.store('pod-b', stored(ek, tokens), ROOT);
    index.store('pod-b', { ...stored(ek, [], { medium: 'CPU' }), blockSize: 128 }, ROOT);
    index.remove('pod-b', removed(ek));
    const ck = requestKeys(tokens);
    expect(ck.map((k) => holds(index, 'pod-b', k))).toEqual([true, true, true, true]);
    expect(ck.map((k) => weightAt(index, 'pod-b', k))).toEqual([0.8, 0.8, 0.8, 0.8]);
    expect(index.longestPrefix(ck, pods('pod-b'), 0).get('pod-b')).toEqual({ blocks: 4, weight: 4 * 0.8 });
  });
});
