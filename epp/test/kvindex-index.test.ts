import * as fs from 'fs';
import * as path from 'path';
import type { BlockRemoved, BlockStored } from '@kvroute/protocol/kv-events';
import type { KeyLru } from '../src/kvindex/key-lru';
import { KvBlockIndex } from '../src/kvindex/kv-block-index';
import { engineEventHashes, engineKeyOf, engineKeys, engineRoot } from '../src/kvindex/engine-hash';
import { blockKey, rootKey } from '../src/scheduling/plugins/prefix-hash';

const BS = 4;
const ROOT = rootKey('');
const tokens = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

/** The keys a request with these tokens looks up: the same chain the index computes from events. */
function requestKeys(ids: readonly number[], root = ROOT): number[] {
  const keys: number[] = [];
  let parent = root;
  for (let i = 0; i + BS <= ids.length; i += BS) keys.push((parent = blockKey(parent, ids, i, i + BS)));
  return keys;
}

function stored(hashes: string[], parent: string | null, ids: number[], extra: Partial<BlockStored> = {}): BlockStored {
  return { type: 'BlockStored', blockHashes: hashes, parentBlockHash: parent, tokenIds: ids, blockSize: BS, loraId: null, ...extra };
}
const removed = (hashes: string[], medium?: string): BlockRemoved => ({ type: 'BlockRemoved', blockHashes: hashes, ...(medium ? { medium } : {}) });
const pods = (...p: string[]) => new Set(p);

describe('KvBlockIndex: the dual-key index (own keys from token ids, engine hashes for removals)', () => {
  test('stored blocks match a request with the same tokens, whatever the engine hashes are; chains continue through the parent', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 12);
    // Engine hashes are opaque (vLLM's builtin hash is not reproducible): any values work.
    expect(index.store('a', stored(['-17', '99'], null, ids.slice(0, 8)), ROOT)).toEqual({ stored: 2 });
    expect(index.store('a', stored(['123456789012345678901'], '99', ids.slice(8, 12)), ROOT)).toEqual({ stored: 1 });
    const m = index.longestPrefix(requestKeys(ids), pods('a', 'b'), 0);
    expect(m.get('a')).toEqual({ blocks: 3, weight: 3 });
    expect(m.has('b')).toBe(false);
    // A request diverging in block 2 matches two blocks.
    expect(index.longestPrefix(requestKeys([...ids.slice(0, 8), 0, 0, 0, 0]), pods('a'), 0).get('a')?.blocks).toBe(2);
  });

  // vLLM sends BlockStored once, when a block is first cached (vllm/v1/core/block_pool.py cache_full_blocks @ v0.10.0);
  // a prefix cached before this EPP subscribed is never sent again, and every block later stored on it names it.
  test('a parent never seen, continued by a request this EPP routed to the pod: keyed from that request, its prefix indexed, the parent removable', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 16); // 4 blocks; the pod cached blocks 0-1 before the EPP started ('h0', 'h1')
    const keys = requestKeys(ids);
    // Without a routed request the event is skipped, as before.
    expect(index.store('a', stored(['h2', 'h3'], 'h1', ids.slice(8, 16)), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
    // A request routed to another pod, or one whose tokens differ, recovers nothing.
    index.noteRouted('b', ROOT, keys, ids);
    index.noteRouted('a', ROOT, requestKeys([...ids.slice(0, 8), 0, ...ids.slice(9)]), [...ids.slice(0, 8), 0, ...ids.slice(9)]);
    expect(index.store('a', stored(['h2', 'h3'], 'h1', ids.slice(8, 16)), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
    index.noteRouted('a', ROOT, keys, ids);
    expect(index.store('a', stored(['h2', 'h3'], 'h1', ids.slice(8, 16)), ROOT)).toEqual({ stored: 2, recoveredParent: true });
    expect(index.longestPrefix(keys, pods('a', 'b'), 0).get('a')).toEqual({ blocks: 4, weight: 4 });
    expect(index.longestPrefix(keys, pods('b'), 0).has('b')).toBe(false);
    // The parent's engine hash is known now: later events chain on it, and its BlockRemoved takes it out.
    expect(index.store('a', stored(['h2b'], 'h1', [...ids.slice(8, 11), 99]), ROOT)).toEqual({ stored: 1 });
    index.remove('a', removed(['h1']));
    expect(index.longestPrefix(keys, pods('a'), 0).get('a')).toEqual({ blocks: 1, weight: 1 });
  });

  test('parent recovery remembers at most 4 Mi prompt tokens of routed requests: a long prompt pushes older ones out', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 16);
    index.noteRouted('a', ROOT, requestKeys(ids), ids);
    // 4 Mi tokens more (a Uint32Array, as the tokenizer gives them): the first request no longer fits beside it.
    const long = new Uint32Array(4 * 1024 * 1024);
    index.noteRouted('a', ROOT, [1, 2], long);
    expect(index.store('a', stored(['h2', 'h3'], 'h1', ids.slice(8, 16)), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
    // A prompt alone over the bound is not kept at all, and pushes nothing out.
    const index2 = new KvBlockIndex(BS, 1000);
    index2.noteRouted('a', ROOT, requestKeys(ids), ids);
    index2.noteRouted('a', ROOT, [1, 2], new Uint32Array(4 * 1024 * 1024 + 1));
    expect(index2.store('a', stored(['h2', 'h3'], 'h1', ids.slice(8, 16)), ROOT)).toEqual({ stored: 2, recoveredParent: true });
  });

  test('parent recovery: tokens the pod\'s requests put after two prefixes recover nothing; after one, they do; an event running past the prompt still matches; another adapter\'s request is not used', () => {
    const index = new KvBlockIndex(BS, 1000);
    const shared = [7, 7, 7, 7];
    const a = [...tokens(1, 4), ...shared, ...tokens(50, 4)];
    const b = [...tokens(20, 4), ...shared, ...tokens(60, 4)];
    index.noteRouted('a', ROOT, requestKeys(a), a);
    index.noteRouted('a', ROOT, requestKeys(b), b);
    // The shared block alone follows a's prefix in one request and b's in the other: which one the pod holds is unknown.
    expect(index.store('a', stored(['s1'], 's0', shared), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
    // With the block after it, only a fits.
    expect(index.store('a', stored(['x1', 'x2'], 'x0', a.slice(4, 12)), ROOT)).toEqual({ stored: 2, recoveredParent: true });
    expect(index.longestPrefix(requestKeys(a), pods('a'), 0).get('a')?.blocks).toBe(3);
    expect(index.longestPrefix(requestKeys(b), pods('a'), 0).has('a')).toBe(false);
    // Generated tokens past b's prompt: the event's blocks 2 and 3, b's block 2 only; the overlap decides.
    const index2 = new KvBlockIndex(BS, 1000);
    index2.noteRouted('a', ROOT, requestKeys(b), b);
    expect(index2.store('a', stored(['y2', 'y3'], 'y1', [...b.slice(8, 12), 5, 5, 5, 5]), ROOT)).toEqual({ stored: 2, recoveredParent: true });
    expect(index2.longestPrefix(requestKeys([...b, 5, 5, 5, 5]), pods('a'), 0).get('a')?.blocks).toBe(4);
    // A request for another adapter (another root) does not recover a base-model event's parent.
    const lora = rootKey('chat-lora');
    const index3 = new KvBlockIndex(BS, 1000);
    index3.noteRouted('a', lora, requestKeys(b, lora), b);
    expect(index3.store('a', stored(['z2'], 'z1', b.slice(8, 12)), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
    expect(index3.store('a', stored(['z2'], 'z1', b.slice(8, 12)), lora)).toEqual({ stored: 1, recoveredParent: true });
  });

  test('over a pod\'s capacity the least recently stored or used key goes, found without a walk of a table and moved without re-keying one', () => {
    // Both ways a Map used as an LRU costs O(the pod's entries) in V8: a new iterator per dropped key walks every hole
    // deletions left at the table's start (a helper's probe: 219 µs an 8-block event at 131,072 entries), and a move by
    // `delete(key); set(key, …)` leaves a dead copy in the key's hash chain until a rehash, so a hot prefix touched by
    // every request grew chains each lookup walks (`bench:hot-keys`: 213 µs a request at 65,536). `KeyLru` keeps the
    // order in a list.
    const index = new KvBlockIndex(BS, 1000);
    index.setCapacity('a', 300);
    index.store('a', stored(['warm'], null, tokens(1, BS)), ROOT);
    const lru = (index as unknown as { pods: Map<string, { keys: KeyLru }> }).pods.get('a')!.keys;
    const table = (lru as unknown as { slotOf: Map<number, number> }).slotOf;
    let walks = 0;
    for (const method of ['keys', 'values', 'entries', Symbol.iterator] as const) {
      const own = (table[method] as (...args: unknown[]) => unknown).bind(table);
      Object.defineProperty(table, method, { value: (...args: unknown[]) => { walks++; return own(...args); } });
    }
    let rekeyed = 0;
    const deleted = new Set<number>();
    const ownDelete = table.delete.bind(table);
    const ownSet = table.set.bind(table);
    Object.defineProperty(table, 'delete', { value: (key: number) => { deleted.add(key); return ownDelete(key); } });
    Object.defineProperty(table, 'set', { value: (key: number, slot: number) => { if (deleted.delete(key)) rekeyed++; return ownSet(key, slot); } });
    // What the pod must hold: its 300 least recently stored or touched keys, in that order.
    const reference = new Map<number, true>([[requestKeys(tokens(1, BS))[0]!, true]]);
    const refresh = (key: number) => {
      reference.delete(key);
      reference.set(key, true);
    };
    const system = tokens(5_000_000, 2 * BS);
    index.store('a', stored(['sys0', 'sys1'], null, system), ROOT);
    // A stored chain's head is its most recently used block, its tail the least (each block just below its parent).
    [...requestKeys(system)].reverse().forEach(refresh);
    const chains: number[][] = [];
    let evicted = 0;
    for (let i = 0; i < 3000; i++) {
      const ids = tokens(10 + i * 3 * BS, 3 * BS);
      index.store('a', stored([`x${i}a`, `x${i}b`, `x${i}c`], null, ids), ROOT);
      const chain = requestKeys(ids);
      [...chain].reverse().forEach(refresh);
      chains.push(chain);
      // A routed request matched an earlier chain's first two blocks, and every one the shared system prompt.
      const hit = chains[(i * 7919) % chains.length]!;
      index.touch('a', hit, 2);
      for (let b = 1; b >= 0; b--) if (reference.has(hit[b]!)) refresh(hit[b]!);
      index.touch('a', requestKeys(system), 2);
      for (let b = 1; b >= 0; b--) refresh(requestKeys(system)[b]!);
      while (reference.size > 300) {
        reference.delete(reference.keys().next().value!);
        evicted++;
      }
    }
    expect(evicted).toBeGreaterThan(8000);
    expect(walks).toBe(0);
    // The system prompt's keys were touched 3,000 times each and never left the table.
    expect(rekeyed).toBe(0);
    expect(lru.keysOldestFirst()).toEqual([...reference.keys()]);
    expect(new Set(lru.keys())).toEqual(new Set(reference.keys()));
    expect(index.blocksOf('a')).toBe(300);
  });

  test('over a pod\'s capacity the least recently used keys go first: a prefix a routed request matched (touch) outlives later ones', () => {
    const index = new KvBlockIndex(BS, 1000);
    index.setCapacity('a', 4);
    const hot = tokens(1, 8);
    expect(index.store('a', stored(['p0', 'p1'], null, hot), ROOT)).toEqual({ stored: 2 });
    expect(index.store('a', stored(['q0', 'q1'], null, tokens(100, 8)), ROOT)).toEqual({ stored: 2 });
    index.touch('a', requestKeys(hot), 2);
    expect(index.store('a', stored(['r0', 'r1'], null, tokens(200, 8)), ROOT)).toEqual({ stored: 2 });
    expect(index.longestPrefix(requestKeys(hot), pods('a'), 0).get('a')?.blocks).toBe(2);
    expect(index.longestPrefix(requestKeys(tokens(100, 8)), pods('a'), 0).has('a')).toBe(false);
    // Within a touched prefix the tail goes before the head, as vLLM frees a request's blocks in reverse: at capacity 3
    // the three-block prefix loses its last block to a new one, and still matches two.
    const tail = new KvBlockIndex(BS, 1000);
    tail.setCapacity('a', 3);
    const three = tokens(1, 12);
    tail.store('a', stored(['t0', 't1', 't2'], null, three), ROOT);
    tail.touch('a', requestKeys(three), 3);
    tail.store('a', stored(['n0'], null, tokens(300, 4)), ROOT);
    expect(tail.longestPrefix(requestKeys(three), pods('a'), 0).get('a')?.blocks).toBe(2);
    // Untouched, the first stored goes first.
    const plain = new KvBlockIndex(BS, 1000);
    plain.setCapacity('a', 4);
    plain.store('a', stored(['p0', 'p1'], null, hot), ROOT);
    plain.store('a', stored(['q0', 'q1'], null, tokens(100, 8)), ROOT);
    plain.store('a', stored(['r0', 'r1'], null, tokens(200, 8)), ROOT);
    expect(plain.longestPrefix(requestKeys(hot), pods('a'), 0).has('a')).toBe(false);
  });

  // vLLM frees a request's blocks in reverse, "so that the tail blocks are evicted first" (vllm/v1/core/
  // kv_cache_manager.py free @ v0.10.0), and a BlockStored names a parent the storing request holds (block_pool.py
  // cache_full_blocks): a chain's head is the last of it to go. Blocks are matched as a chain from the head, so a
  // dropped head leaves the rest of the chain costing entries and matching nothing.
  test('over capacity a chain goes from its tail: a stored or speculated chain longer than the pod\'s share keeps its head; a continuation never outlives its parent', () => {
    const long = tokens(1, 5 * BS);
    const stores = new KvBlockIndex(BS, 1000);
    stores.setCapacity('a', 3);
    stores.store('a', stored(['l0', 'l1', 'l2', 'l3', 'l4'], null, long), ROOT);
    expect(stores.blocksOf('a')).toBe(3);
    expect(stores.longestPrefix(requestKeys(long), pods('a'), 0).get('a')?.blocks).toBe(3);

    // Engine blocks of half the configured size (many:1), gathered into configured blocks: the same.
    const gathers = new KvBlockIndex(BS, 1000);
    gathers.setCapacity('a', 3);
    expect(gathers.store('a', stored(Array.from({ length: 10 }, (_, i) => `g${i}`), null, long, { blockSize: BS / 2 }), ROOT)).toEqual({ stored: 5 });
    expect(gathers.blocksOf('a')).toBe(3);
    expect(gathers.longestPrefix(requestKeys(long), pods('a'), 0).get('a')?.blocks).toBe(3);

    const speculates = new KvBlockIndex(BS, 1000);
    speculates.setCapacity('a', 3);
    speculates.speculate('a', requestKeys(long), 1000);
    expect(speculates.longestPrefix(requestKeys(long), pods('a'), 0).get('a')?.blocks).toBe(3);

    // A system prompt stored first, an unrelated prompt after it, then a continuation of the system prompt: over
    // capacity the continuation (the tail of the system prompt's chain) goes, not the system prompt under it.
    const system = tokens(100, 2 * BS);
    const continued = new KvBlockIndex(BS, 1000);
    continued.setCapacity('a', 4);
    continued.store('a', stored(['s0', 's1'], null, system), ROOT);
    continued.store('a', stored(['x0', 'x1'], null, tokens(200, 2 * BS)), ROOT);
    continued.store('a', stored(['u0', 'u1'], 's1', tokens(300, 2 * BS)), ROOT);
    expect(continued.blocksOf('a')).toBe(4);
    expect(continued.longestPrefix(requestKeys(system), pods('a'), 0).get('a')?.blocks).toBe(2);
    expect(continued.longestPrefix(requestKeys(tokens(200, 2 * BS)), pods('a'), 0).get('a')?.blocks).toBe(2);
  });

  test('an event whose parent was never seen cannot be keyed: skipped, not guessed; token ids that do not fit the block size key nothing, the engine hashes do', () => {
    const index = new KvBlockIndex(BS, 1000);
    expect(index.store('a', stored(['5'], '4', tokens(1, 4)), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
    expect(index.hasEngineHashKeys).toBe(false);
    // Real token ids at a block size that is no multiple of the config's (vLLM's --block-size differs): skipped, never
    // mis-keyed. (A multiple is cut into blocks: the chunk test below.)
    expect(index.store('a', stored(['6'], null, tokens(1, 6), { blockSize: 6 }), ROOT)).toEqual({ stored: 0, skipped: 'block-size-mismatch' });
    expect(index.hasEngineHashKeys).toBe(false);
    // Token ids that cannot be the block's (6 for one block of 4): a placeholder, keyed by engine hash.
    expect(index.store('a', stored(['5'], null, tokens(1, 6)), ROOT)).toEqual({ stored: 1, byEngineHash: 1 });
    expect(index.hasEngineHashKeys).toBe(true);
    // Never under kvroute's own keys: a request with those tokens does not match through them.
    expect(index.longestPrefix(requestKeys(tokens(1, 8)), pods('a'), 0).size).toBe(0);
    // A tokenless CPU offload of a block never seen on GPU moves nothing (vLLM's offload events carry no tokens).
    expect(index.store('a', stored(['77'], null, [], { medium: 'CPU' }), ROOT)).toEqual({ stored: 0, skipped: 'no-tokens' });
    // The engine chain is computed only while engine-keyed entries exist.
    index.clearPod('a');
    expect(index.hasEngineHashKeys).toBe(false);
  });

  test('the event\'s block_size is not trusted (llm-d-kv-cache v0.7.1 vllm_adapter.go/pool.go): token ids that cut into one configured block per hash are keyed, as llm-d\'s example event (64 tokens, 4 hashes, block_size 256) is', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 8);
    expect(index.store('a', stored(['1', '2'], null, ids, { blockSize: 256 }), ROOT)).toEqual({ stored: 2 });
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 2, weight: 2 });
    expect(index.hasEngineHashKeys).toBe(false);
  });

  test('a parent_block_hash of 0 starts the chain, as llm-d-kv-cache (pool.go @ v0.7.1) reads an unset uint64 and vLLM a falsy parent', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 8);
    expect(index.store('a', stored(['11', '12'], '0', ids), ROOT)).toEqual({ stored: 2 });
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.blocks).toBe(2);
  });

  test('an engine-keyed block stored again with its tokens moves to its own key, where BlockRemoved still reaches it', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 4);
    index.store('a', stored(['9'], null, []), ROOT);
    expect(index.hasEngineHashKeys).toBe(true);
    expect(index.store('a', stored(['9'], null, ids), ROOT)).toEqual({ stored: 1 });
    expect(index.hasEngineHashKeys).toBe(false);
    expect(index.blocksOf('a')).toBe(1);
    expect(index.remove('a', removed(['9']))).toBe(1);
    expect(index.blocksOf('a')).toBe(0);
  });

  test('a lapsed speculative mark under the own key does not hide the same block held under the engine key', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(50, 8);
    const root = engineRoot('');
    index.store('a', stored(engineEventHashes(ids, BS, root), null, []), ROOT);
    index.speculate('a', requestKeys(ids), 100);
    const at = (now: number) => index.longestPrefix(requestKeys(ids), pods('a'), now, engineKeys(ids, BS, root)).get('a');
    expect(at(50)).toEqual({ blocks: 2, weight: 2 });
    expect(at(200)).toEqual({ blocks: 2, weight: 2 });
  });

  test('hash-only events (llm-d-kv-cache\'s publisher: placeholder tokens, pool.go @ v0.4.0) match requests through the engine-hash chain, and leave by BlockRemoved', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(100, 12);
    const root = engineRoot('42');
    const hashes = engineEventHashes(ids, BS, root);
    expect(index.store('a', { type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: [1, 2, 3], blockSize: 256, loraId: null }, ROOT))
      .toEqual({ stored: 3, byEngineHash: 3 });
    // And with no tokens at all (an event of hashes alone).
    expect(index.store('b', { type: 'BlockStored', blockHashes: hashes.slice(0, 2), parentBlockHash: null, tokenIds: [], blockSize: BS, loraId: null }, ROOT))
      .toEqual({ stored: 2, byEngineHash: 2 });
    const m = index.longestPrefix(requestKeys(ids), pods('a', 'b'), 0, engineKeys(ids, BS, root));
    expect(m.get('a')).toEqual({ blocks: 3, weight: 3 });
    expect(m.get('b')).toEqual({ blocks: 2, weight: 2 });
    // Another seed is another chain: nothing matches.
    expect(index.longestPrefix(requestKeys(ids), pods('a', 'b'), 0, engineKeys(ids, BS, engineRoot('43'))).size).toBe(0);
    expect(index.remove('a', removed([hashes[1]!]))).toBe(1);
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0, engineKeys(ids, BS, root)).get('a')).toEqual({ blocks: 1, weight: 1 });
  });

  // A hybrid model's vLLM (group_idx #37688, kv_cache_spec_kind #40984) sends each event once per KV-cache group, the
  // groups sharing one hash list at their own block sizes (a coarser group's hashes are every k-th fine hash:
  // vllm/v1/core/block_pool.py cache_full_blocks, BlockHashListWithBlockSize). A sliding-window group evicts blocks that
  // left its window while the full-attention group keeps them; those removals must not take the prefix away.
  test('hybrid models: only full-attention groups are indexed; other groups\' stores and removals are skipped', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 12);
    const full = { groupIdx: 0, kvCacheSpecKind: 'full_attention' };
    expect(index.store('a', stored(['1', '2', '3'], null, ids, full), ROOT)).toEqual({ stored: 3 });
    // The sliding-window group at twice the block size: its one block carries the fine hash '2'.
    const window = { groupIdx: 1, kvCacheSpecKind: 'sliding_window', kvCacheSpecSlidingWindow: 8, blockSize: 2 * BS };
    expect(index.store('a', stored(['2'], null, ids.slice(0, 8), window), ROOT)).toEqual({ stored: 0, skipped: 'other-group' });
    expect(index.remove('a', { ...removed(['2']), groupIdx: 1 })).toBe(0);
    // A Mamba group at the full group's block size, then its removals.
    expect(index.store('a', stored(['1', '2', '3'], null, ids, { groupIdx: 2, kvCacheSpecKind: 'mamba' }), ROOT)).toEqual({ stored: 0, skipped: 'other-group' });
    expect(index.remove('a', { ...removed(['1', '2', '3']), groupIdx: 2 })).toBe(0);
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 3, weight: 3 });
    // The full group's own removals still apply.
    expect(index.remove('a', { ...removed(['3']), groupIdx: 0 })).toBe(1);
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.blocks).toBe(2);
  });

  test('duplicate physical copies (vllm block_pool.py @ v0.10.0 keeps them): a block leaves only with its last copy', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 4);
    index.store('a', stored(['7'], null, ids), ROOT);
    index.store('a', stored(['7'], null, ids), ROOT);
    index.remove('a', removed(['7']));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.blocks).toBe(1);
    index.remove('a', removed(['7']));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
  });

  test('tiers: CPU copies weigh 0.8, a block on GPU counts as GPU; a tokenless offload event moves a known block', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 8);
    index.store('a', stored(['1', '2'], null, ids, { medium: 'GPU' }), ROOT);
    index.store('a', { ...stored(['2'], null, [], { medium: 'CPU' }), blockSize: 0 }, ROOT);
    index.remove('a', removed(['2'], 'GPU'));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 2, weight: 1.8 });
  });

  test('tiers are any medium, lower-cased (llm-d-kv-cache pool.go @ 7be76e1): a connector tier\'s copy and its removal leave the GPU copy alone', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 8);
    index.store('a', stored(['1', '2'], null, ids, { medium: 'GPU' }), ROOT);
    // The connector stores the same blocks in its disk backend, then evicts them there: the GPU copies still count.
    index.store('a', stored(['1', '2'], null, ids, { medium: 'LocalDiskBackend' }), ROOT);
    index.remove('a', removed(['1', '2'], 'LocalDiskBackend'));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 2, weight: 2 });
    // A removal naming a tier that holds no copy takes none from another.
    index.remove('a', removed(['1'], 'LocalDiskBackend'));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.blocks).toBe(2);
    index.remove('a', removed(['1', '2']));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
  });

  test('weights (llm-d-kv-cache kvblock_scorer.go fillMaxWeights): a block counts its best tier, a tier not listed weighs 1, a tier weighted 0 keeps the chain', () => {
    const weights = new Map([['gpu', 1], ['cpu', 0.8], ['localdiskbackend', 0.5], ['remote', 0]]);
    const index = new KvBlockIndex(BS, 1000, weights);
    const ids = tokens(1, 16);
    // Block 0 on GPU and disk, block 1 on disk, block 2 on an unlisted tier, block 3 on a tier weighted 0.
    index.store('a', stored(['1'], null, ids.slice(0, 4), { medium: 'GPU' }), ROOT);
    index.store('a', stored(['1', '2'], null, ids.slice(0, 8), { medium: 'LocalDiskBackend' }), ROOT);
    index.store('a', stored(['3'], '2', ids.slice(8, 12), { medium: 'nvme' }), ROOT);
    index.store('a', stored(['4'], '3', ids.slice(12, 16), { medium: 'REMOTE' }), ROOT);
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 4, weight: 1 + 0.5 + 1 + 0 });
    // Best tier, not the first stored: a GPU weight below a tier's is beaten by it.
    const low = new KvBlockIndex(BS, 1000, new Map([['gpu', 0.5], ['cpu', 0.9]]));
    low.store('a', stored(['1'], null, ids.slice(0, 4), { medium: 'GPU' }), ROOT);
    low.store('a', stored(['1'], null, ids.slice(0, 4), { medium: 'CPU' }), ROOT);
    expect(low.longestPrefix(requestKeys(ids.slice(0, 4)), pods('a'), 0).get('a')).toEqual({ blocks: 1, weight: 0.9 });
  });

  test('a tokenless store in any tier but GPU adds a copy of blocks known by hash only (llm-d-kv-cache handleDeviceTierUpdate)', () => {
    const index = new KvBlockIndex(BS, 1000, new Map([['gpu', 1], ['disk', 0.25]]));
    const ids = tokens(1, 8);
    index.store('a', stored(['1', '2'], null, ids), ROOT);
    expect(index.store('a', stored(['2', '99'], null, [], { medium: 'DISK' }), ROOT)).toEqual({ stored: 1, skipped: 'no-tokens' });
    index.remove('a', removed(['2']));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 2, weight: 1.25 });
    expect(index.hasEngineHashKeys).toBe(false);
  });

  test('a tokenless offload of a block the pod\'s capacity already dropped stays within the capacity', () => {
    const index = new KvBlockIndex(BS, 1);
    index.store('a', stored(['1'], null, tokens(1, 4)), ROOT);
    index.store('a', stored(['2'], null, tokens(100, 4)), ROOT);
    expect(index.blocksOf('a')).toBe(1);
    // The dropped block's hash is still known (pruned lazily): its offload re-adds it, then the capacity holds.
    index.store('a', stored(['1'], null, [], { medium: 'CPU' }), ROOT);
    expect(index.blocksOf('a')).toBe(1);
  });

  test('one hash for several blocks (an LMCache chunk; vLLM at a larger --block-size) is cut into blocks, as llm-d-kv-cache @ 7be76e1 maps one engine key to many; its removal takes each', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 24);
    // Two chunks of 8 tokens (2 blocks each) under one hash each, as LMCache publishes them (medium cpu), then a third
    // chained on the second's hash.
    expect(index.store('a', stored(['c1', 'c2'], null, ids.slice(0, 16), { blockSize: 8, medium: 'cpu' }), ROOT)).toEqual({ stored: 4 });
    expect(index.store('a', stored(['c3'], 'c2', ids.slice(16, 24), { blockSize: 8, medium: 'cpu' }), ROOT)).toEqual({ stored: 2 });
    const all = index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')!;
    expect(all.blocks).toBe(6);
    expect(all.weight).toBeCloseTo(6 * 0.8, 12);
    // Their keys are the blocks' own: a request diverging inside the second chunk matches up to there.
    expect(index.longestPrefix(requestKeys([...ids.slice(0, 12), 0, 0, 0, 0]), pods('a'), 0).get('a')?.blocks).toBe(3);
    // The chunk's hash leaves with all its blocks, and only its tier's copies.
    index.store('a', stored(['g1', 'g2', 'g3', 'g4'], null, ids.slice(0, 16), { medium: 'GPU' }), ROOT);
    index.remove('a', removed(['c2'], 'cpu'));
    // Blocks 3-4 keep their GPU copies, 5-6 their CPU ones (the third chunk's).
    const afterC2 = index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')!;
    expect(afterC2.blocks).toBe(6);
    expect(afterC2.weight).toBeCloseTo(4 + 2 * 0.8, 12);
    index.remove('a', removed(['g1', 'g2', 'g3', 'g4']));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.blocks).toBe(2);
    index.remove('a', removed(['c1'], 'cpu'));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
    // A tokenless offload of a chunk hash adds a copy to each of its blocks.
    index.store('b', stored(['d1'], null, ids.slice(0, 8), { blockSize: 8 }), ROOT);
    index.store('b', stored(['d1'], null, [], { medium: 'disk' }), ROOT);
    index.remove('b', removed(['d1']));
    expect(index.longestPrefix(requestKeys(ids), pods('b'), 0).get('b')).toEqual({ blocks: 2, weight: 2 });
  });

  describe('engine blocks smaller than the configured ones (vLLM at --block-size 16 under a config of 64: llm-d-kv-cache @ 7be76e1\'s many:1)', () => {
    const half = { blockSize: BS / 2 };
    test('are gathered into configured blocks keyed as requests key them, across events and from a chain\'s start', () => {
      const index = new KvBlockIndex(BS, 1000);
      const ids = tokens(1, 12);
      // Three engine blocks of 2: one configured block, and half of the next carried.
      expect(index.store('a', stored(['e1', 'e2', 'e3'], null, ids.slice(0, 6), half), ROOT)).toEqual({ stored: 1 });
      expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 1, weight: 1 });
      // The next event continues from inside the second configured block (its parent e3 ends at token 6).
      expect(index.store('a', stored(['e4', 'e5', 'e6'], 'e3', ids.slice(6, 12), half), ROOT)).toEqual({ stored: 2 });
      expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 3, weight: 3 });
      // One engine block at a time (decode), each configured block completing every second event.
      const one = new KvBlockIndex(BS, 1000);
      let parent: string | null = null;
      for (let i = 0; i < 6; i++) {
        expect(one.store('a', stored([`d${i}`], parent, ids.slice(2 * i, 2 * i + 2), half), ROOT)).toEqual({ stored: i % 2 });
        parent = `d${i}`;
      }
      expect(one.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.blocks).toBe(3);
    });

    test('a continuation from inside a configured block (a shared prompt that ends mid-block) is keyed from the carried tokens', () => {
      const index = new KvBlockIndex(BS, 1000);
      const shared = tokens(1, 6);
      index.store('a', stored(['e1', 'e2', 'e3'], null, shared, half), ROOT);
      // Two users' prompts diverge after the shared 6 tokens: both continue from e3.
      const u1 = [...shared, 100, 101, 102, 103, 104, 105];
      const u2 = [...shared, 200, 201, 202, 203, 204, 205];
      index.store('a', stored(['x4', 'x5', 'x6'], 'e3', u1.slice(6), half), ROOT);
      index.store('a', stored(['y4', 'y5', 'y6'], 'e3', u2.slice(6), half), ROOT);
      expect(index.longestPrefix(requestKeys(u1), pods('a'), 0).get('a')?.blocks).toBe(3);
      expect(index.longestPrefix(requestKeys(u2), pods('a'), 0).get('a')?.blocks).toBe(3);
      // A third prompt that shares only the first 6 tokens matches the one configured block they fill.
      expect(index.longestPrefix(requestKeys([...shared, 7, 8, 9, 10]), pods('a'), 0).get('a')?.blocks).toBe(1);
    });

    test('the first part of a configured block to leave takes its copy, once; a part of no complete block takes nothing', () => {
      const index = new KvBlockIndex(BS, 1000);
      const ids = tokens(1, 10);
      index.store('a', stored(['e1', 'e2', 'e3', 'e4', 'e5'], null, ids, half), ROOT);
      expect(index.blocksOf('a')).toBe(2);
      // vLLM evicts the tail first: e5 completes no block, e4 ends the second.
      expect(index.remove('a', removed(['e5']))).toBe(0);
      expect(index.remove('a', removed(['e4']))).toBe(1);
      expect(index.blocksOf('a')).toBe(1);
      expect(index.remove('a', removed(['e3']))).toBe(0);
      // A middle part of the first block: the block cannot be hit whole any more.
      expect(index.remove('a', removed(['e1']))).toBe(1);
      expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
      expect(index.remove('a', removed(['e2']))).toBe(0);
      // A duplicate copy (vLLM caches one hash in two physical blocks) survives one copy's parts leaving, not both.
      index.store('b', stored(['f1', 'f2'], null, ids.slice(0, 4), half), ROOT);
      index.store('b', stored(['f1', 'f2'], null, ids.slice(0, 4), half), ROOT);
      index.remove('b', removed(['f1', 'f2']));
      expect(index.longestPrefix(requestKeys(ids), pods('b'), 0).get('b')?.blocks).toBe(1);
      index.remove('b', removed(['f1', 'f2']));
      expect(index.blocksOf('b')).toBe(0);
      expect(index.splitPartsOf('b')).toBe(0);
    });

    test('a block recomputed while a stale copy of one part is still cached keeps the new copy when the stale one leaves (vllm block_pool.py: copies per hash)', () => {
      const index = new KvBlockIndex(BS, 1000);
      const ids = tokens(1, 4);
      index.store('a', stored(['e1', 'e2'], null, ids, half), ROOT);
      // e1 is evicted (e2 stays cached, unreachable); the prompt comes again and both are computed anew.
      index.remove('a', removed(['e1']));
      expect(index.blocksOf('a')).toBe(0);
      index.store('a', stored(['e1', 'e2'], null, ids, half), ROOT);
      expect(index.blocksOf('a')).toBe(1);
      // The stale e2 copy is evicted: the new e1, e2 still make the block.
      index.remove('a', removed(['e2']));
      expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 1, weight: 1 });
    });

    test('tiers count apart (vLLM OffloadingConnector): a removal in one tier leaves the other\'s copy and the chain through it', () => {
      const ids = tokens(1, 8);
      // GPU evicts first (the usual order), then CPU: nothing is left.
      const a = new KvBlockIndex(BS, 1000);
      a.store('a', stored(['e1', 'e2'], null, ids.slice(0, 4), half), ROOT);
      a.store('a', stored(['e1', 'e2'], null, [], { medium: 'CPU' }), ROOT);
      a.remove('a', removed(['e2', 'e1']));
      expect(a.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.weight).toBeCloseTo(0.8, 12);
      a.remove('a', removed(['e2', 'e1'], 'CPU'));
      expect(a.blocksOf('a')).toBe(0);
      expect(a.splitPartsOf('a')).toBe(0);
      // CPU first, then GPU: nothing is left either.
      const b = new KvBlockIndex(BS, 1000);
      b.store('a', stored(['e1', 'e2'], null, ids.slice(0, 4), half), ROOT);
      b.store('a', stored(['e1', 'e2'], null, [], { medium: 'CPU' }), ROOT);
      b.remove('a', removed(['e2', 'e1'], 'CPU'));
      expect(b.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 1, weight: 1 });
      b.remove('a', removed(['e2', 'e1']));
      expect(b.blocksOf('a')).toBe(0);
      // The offloading connector names only each offloaded group's last block (offloading/scheduler.py): the configured
      // block is one CPU copy; its CPU removal leaves the GPU copy, and a GPU event continuing from it is keyed.
      const c = new KvBlockIndex(BS, 1000);
      c.store('a', stored(['e1', 'e2'], null, ids.slice(0, 4), half), ROOT);
      c.store('a', stored(['e2'], null, [], { medium: 'CPU' }), ROOT);
      c.remove('a', removed(['e1']));
      expect(c.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.weight).toBeCloseTo(0.8, 12);
      const d = new KvBlockIndex(BS, 1000);
      d.store('a', stored(['e1', 'e2'], null, ids.slice(0, 4), half), ROOT);
      d.store('a', stored(['e2'], null, [], { medium: 'CPU' }), ROOT);
      d.remove('a', removed(['e2'], 'CPU'));
      expect(d.store('a', stored(['e3', 'e4'], 'e2', ids.slice(4, 8), half), ROOT)).toEqual({ stored: 1 });
      expect(d.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')).toEqual({ blocks: 2, weight: 2 });
    });

    test('offloaded groups smaller than a configured block (OffloadingConnector block_size_factor 2 at 4 engine blocks a block): the block is on CPU once its last group is', () => {
      const quarter = { blockSize: 1 };
      const index = new KvBlockIndex(BS, 100);
      const ids = tokens(1, 4);
      index.store('a', stored(['q1', 'q2', 'q3', 'q4'], null, ids, quarter), ROOT);
      index.store('a', stored(['q2'], null, [], { medium: 'CPU' }), ROOT);
      index.remove('a', removed(['q4', 'q3', 'q2', 'q1']));
      // Half of the block offloaded is no CPU copy.
      expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
      const whole = new KvBlockIndex(BS, 100);
      whole.store('a', stored(['q1', 'q2', 'q3', 'q4'], null, ids, quarter), ROOT);
      whole.store('a', stored(['q2'], null, [], { medium: 'CPU' }), ROOT);
      whole.store('a', stored(['q4'], null, [], { medium: 'CPU' }), ROOT);
      whole.remove('a', removed(['q4', 'q3', 'q2', 'q1']));
      expect(whole.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.weight).toBeCloseTo(0.8, 12);
      // Its first group evicted from CPU: no longer whole there.
      whole.remove('a', removed(['q2'], 'CPU'));
      expect(whole.blocksOf('a')).toBe(0);
    });

    test('engine blocks whose removals were lost stay bounded by the pod\'s capacity, chain starts included', () => {
      const index = new KvBlockIndex(BS, 10);
      // 10,000 prompts of one engine block (a configured block never completes) and 10,000 of three.
      for (let i = 0; i < 10_000; i++) index.store('a', stored([`s${i}`], null, [i, i + 1], half), ROOT);
      for (let i = 0; i < 10_000; i++) index.store('a', stored([`t${i}a`, `t${i}b`, `t${i}c`], null, [i, 7, 7, 7, 9, 9], half), ROOT);
      expect(index.blocksOf('a')).toBeLessThanOrEqual(10);
      // At most 2 × capacity × 2 parts a block (or 64), pruned down to three quarters of that.
      expect(index.splitPartsOf('a')).toBeLessThanOrEqual(64);
      // The newest chain still continues.
      expect(index.store('a', stored(['t9999d'], 't9999c', [5, 5], half), ROOT)).toEqual({ stored: 1 });
      // A capacity lowered (the pod's real KV capacity scraped, or the budget shared by more pods) lowers the bound at once.
      const lowered = new KvBlockIndex(BS, 1000);
      for (let i = 0; i < 1_000; i++) lowered.store('a', stored([`s${i}`], null, [i, i + 1], half), ROOT);
      expect(lowered.splitPartsOf('a')).toBe(1_000);
      lowered.setCapacity('a', 10);
      expect(lowered.splitPartsOf('a')).toBeLessThanOrEqual(64);
    });

    test('a carry that many continuations share lists only the blocks the pod holds: removed or dropped by capacity, a block leaves it', () => {
      // One shared engine block ending inside a configured block (the first 16 tokens every prompt starts with, or a
      // system prompt's tail), then 20,000 users' continuations, each completing a configured block through it.
      const index = new KvBlockIndex(BS, 10);
      index.store('a', stored(['e1'], null, [1, 2], half), ROOT);
      let removedBlocks = 0;
      for (let i = 0; i < 20_000; i++) {
        index.store('a', stored([`x${i}`], 'e1', [10 + i, 3], half), ROOT);
        removedBlocks += index.remove('a', removed([`x${i}`]));
      }
      expect(removedBlocks).toBe(20_000);
      expect(index.splitBlocksThrough('a', 'e1')).toBe(0);
      expect(index.splitPartsOf('a')).toBe(1);
      // Their removals lost: the pod's capacity (10) drops the oldest, and the carry forgets them with it.
      for (let i = 0; i < 20_000; i++) index.store('a', stored([`y${i}`], 'e1', [10 + i, 4], half), ROOT);
      expect(index.blocksOf('a')).toBe(10);
      expect(index.splitBlocksThrough('a', 'e1')).toBe(10);
      // The ten it holds are still removed through the shared carry: vLLM evicting it leaves no block it was part of.
      expect(index.remove('a', removed(['e1']))).toBe(10);
      expect(index.blocksOf('a')).toBe(0);
    });

    test('a shared carry\'s removal takes every block completed through it; a block dropped and completed again is found through it again', () => {
      const index = new KvBlockIndex(BS, 1000);
      index.store('a', stored(['e1', 'e2', 'e3'], null, tokens(1, 6), half), ROOT);
      index.store('a', stored(['x4'], 'e3', [100, 101], half), ROOT);
      index.store('a', stored(['y4'], 'e3', [200, 201], half), ROOT);
      expect(index.blocksOf('a')).toBe(3);
      expect(index.splitBlocksThrough('a', 'e3')).toBe(2);
      expect(index.remove('a', removed(['e3']))).toBe(2);
      expect(index.blocksOf('a')).toBe(1);
      // x4 leaves on its own, then the same continuation is computed again (e3 as well): keyed and linked anew.
      index.remove('a', removed(['x4', 'y4']));
      index.store('a', stored(['e3'], 'e2', [5, 6], half), ROOT);
      index.store('a', stored(['x4'], 'e3', [100, 101], half), ROOT);
      expect(index.longestPrefix(requestKeys([...tokens(1, 6), 100, 101]), pods('a'), 0).get('a')?.blocks).toBe(2);
      expect(index.remove('a', removed(['e3']))).toBe(1);
      expect(index.longestPrefix(requestKeys([...tokens(1, 6), 100, 101]), pods('a'), 0).get('a')?.blocks).toBe(1);
    });

    test('a shared carry still reaches the block it lists next when the first leaves; a block brought back by a tokenless CPU store is reached through its carry again', () => {
      const index = new KvBlockIndex(BS, 100);
      index.store('a', stored(['e1'], null, [1, 2], half), ROOT);
      index.store('a', stored(['x'], 'e1', [3, 3], half), ROOT);
      index.store('a', stored(['y'], 'e1', [4, 4], half), ROOT);
      index.remove('a', removed(['x']));
      expect(index.splitBlocksThrough('a', 'e1')).toBe(1);
      index.remove('a', removed(['e1']));
      expect(index.longestPrefix(requestKeys([1, 2, 4, 4]), pods('a'), 0).has('a')).toBe(false);
      // Capacity 1: the block leaves for another, then both its engine blocks are offloaded (block_size_factor 1)
      // and name it again; the CPU eviction of its first part takes it.
      const cpu = new KvBlockIndex(BS, 1);
      cpu.store('a', stored(['e1', 'x'], null, [1, 2, 3, 3], half), ROOT);
      cpu.store('a', stored(['z1', 'z2'], null, [7, 7, 7, 7], half), ROOT);
      expect(cpu.longestPrefix(requestKeys([1, 2, 3, 3]), pods('a'), 0).has('a')).toBe(false);
      cpu.store('a', stored(['e1', 'x'], null, [], { medium: 'CPU' }), ROOT);
      expect(cpu.longestPrefix(requestKeys([1, 2, 3, 3]), pods('a'), 0).get('a')?.weight).toBeCloseTo(0.8, 12);
      cpu.remove('a', removed(['e1'], 'CPU'));
      expect(cpu.longestPrefix(requestKeys([1, 2, 3, 3]), pods('a'), 0).has('a')).toBe(false);
    });

    test('one configured key completed by several engine chains (the same tokens under other hashes: multimodal placeholders, a cache_salt the events do not carry) is the last chain\'s, and their parts stay bounded', () => {
      const ids = [1, 2, 3, 4];
      const held = (index: KvBlockIndex) => index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a');
      // Held throughout: evicting the earlier chain leaves the key to the later one.
      const a = new KvBlockIndex(BS, 100);
      a.store('a', stored(['a1', 'b1'], null, ids, half), ROOT);
      a.store('a', stored(['a2', 'b2'], null, ids, half), ROOT);
      a.remove('a', removed(['b1', 'a1']));
      expect(held(a)).toBe(true);
      a.remove('a', removed(['b2']));
      expect(held(a)).toBe(false);
      // Dropped by capacity in between: the later chain's block is a new one, and the earlier chain's eviction leaves it.
      const b = new KvBlockIndex(BS, 1);
      b.store('a', stored(['a1', 'b1'], null, ids, half), ROOT);
      b.store('a', stored(['z1', 'z2'], null, [9, 9, 9, 9], half), ROOT);
      b.store('a', stored(['a2', 'b2'], null, ids, half), ROOT);
      b.remove('a', removed(['b1']));
      expect(held(b)).toBe(true);
      b.remove('a', removed(['a2']));
      expect(held(b)).toBe(false);
      // 8,000 such chains whose removals are lost: the earlier chains' parts are pruned, within the cap (64); so with
      // the key dropped between chains (the carry evicted, the completing part's removal lost) and routed again.
      const c = new KvBlockIndex(BS, 10);
      for (let i = 0; i < 8_000; i++) c.store('a', stored([`a${i}`, `b${i}`], null, ids, half), ROOT);
      expect(c.splitPartsOf('a')).toBeLessThanOrEqual(64);
      c.remove('a', removed(['b7999']));
      expect(held(c)).toBe(false);
      const d = new KvBlockIndex(BS, 10);
      for (let i = 0; i < 8_000; i++) {
        d.store('a', stored([`a${i}`, `b${i}`], null, ids, half), ROOT);
        d.remove('a', removed([`a${i}`]));
        d.speculate('a', requestKeys(ids), 0);
      }
      expect(d.splitPartsOf('a')).toBeLessThanOrEqual(64);
      // Chains that share their first engine block (a prompt's head, then an image's placeholders under their own
      // hashes), every one held: the earlier chains' last engine blocks point at a held key and stay until the cap
      // needs room, so the pass pruning the engine hashes of dropped keys must not run on every store.
      const e = new KvBlockIndex(BS, 100);
      e.store('a', stored(['h1'], null, [1, 2], half), ROOT);
      for (let i = 0; i < 20_000; i++) e.store('a', stored([`i${i}`], 'h1', [3, 4], half), ROOT);
      expect(e.splitPartsOf('a')).toBeLessThanOrEqual(400);
      expect(e.engineHashPassesOf('a')).toBeLessThanOrEqual(200);
      // The same at four engine blocks a configured block: the bound scales with the ratio.
      const quarter = { blockSize: 1 };
      const f = new KvBlockIndex(BS, 100);
      f.store('a', stored(['q1', 'q2', 'q3'], null, [1, 2, 3], quarter), ROOT);
      for (let i = 0; i < 20_000; i++) f.store('a', stored([`j${i}`], 'q3', [4], quarter), ROOT);
      expect(f.splitPartsOf('a')).toBeLessThanOrEqual(800);
      expect(f.engineHashPassesOf('a')).toBeLessThanOrEqual(200);
    });

    test('an earlier chain of a key another chain took over stays continuable while vLLM holds it; its copies in other tiers leave with the takeover and come back when it takes the key back', () => {
      const ids = [1, 2, 3, 4];
      const index = new KvBlockIndex(BS, 1000);
      index.store('a', stored(['a1', 'b1'], null, ids, half), ROOT);
      index.store('a', stored(['b1'], null, [], { medium: 'CPU' }), ROOT);
      index.store('a', stored(['a2', 'b2'], null, ids, half), ROOT);
      // The key is the later chain's: never offloaded, so no CPU copy; a CPU event of the earlier chain moves nothing.
      index.store('a', stored(['b1'], null, [], { medium: 'CPU' }), ROOT);
      index.remove('a', removed(['b2']));
      expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
      // The same with the key dropped by capacity between the chains: the later chain's is a new block, which the
      // earlier chain's CPU event does not reach either.
      const dropped = new KvBlockIndex(BS, 1);
      dropped.store('a', stored(['a1', 'b1'], null, ids, half), ROOT);
      dropped.store('a', stored(['z1', 'z2'], null, [9, 9, 9, 9], half), ROOT);
      dropped.store('a', stored(['a2', 'b2'], null, ids, half), ROOT);
      dropped.store('a', stored(['b1'], null, [], { medium: 'CPU' }), ROOT);
      dropped.remove('a', removed(['b2']));
      expect(dropped.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
      // The earlier chain takes the key back (recomputed, or loaded back from CPU): its known CPU copy comes with it.
      const back = new KvBlockIndex(BS, 1000);
      back.store('a', stored(['a1', 'b1'], null, ids, half), ROOT);
      back.store('a', stored(['b1'], null, [], { medium: 'CPU' }), ROOT);
      back.store('a', stored(['a2', 'b2'], null, ids, half), ROOT);
      back.remove('a', removed(['b1', 'a1']));
      back.store('a', stored(['a1', 'b1'], null, ids, half), ROOT);
      back.remove('a', removed(['b1', 'a1', 'b2', 'a2']));
      expect(back.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.weight).toBeCloseTo(0.8, 12);
      // Unrelated held chains until a pass over the parts runs (past 64): the earlier chain's second turn is still
      // keyed from it.
      const more = new KvBlockIndex(BS, 1000);
      more.store('a', stored(['a1', 'b1'], null, ids, half), ROOT);
      more.store('a', stored(['a2', 'b2'], null, ids, half), ROOT);
      for (let i = 0; i < 40; i++) more.store('a', stored([`u${i}a`, `u${i}b`], null, [100 + i, 0, 0, 0], half), ROOT);
      expect(more.splitPartsOf('a')).toBe(84);
      expect(more.store('a', stored(['c1', 'c2'], 'b1', [5, 6, 7, 8], half), ROOT)).toEqual({ stored: 1 });
      expect(more.longestPrefix(requestKeys([...ids, 5, 6, 7, 8]), pods('a'), 0).get('a')?.blocks).toBe(2);
    });

    test('engine blocks of blocks the capacity dropped (their removals lost) are pruned before the cap: the completing part, and a carry whose base is gone unless a held block was completed through it', () => {
      // Capacity 40 at 2 parts a block: the cap is 160 parts. Chains of three engine blocks: a carry from the chain's
      // start, the part completing the block, and a carry on that block.
      const index = new KvBlockIndex(BS, 40);
      const counts: number[] = [];
      for (let i = 0; i < 45; i++) {
        index.store('a', stored([`c${i}a`, `c${i}b`, `c${i}c`], null, [i, 1, 2, 3, 4, 5], half), ROOT);
        counts.push(index.splitPartsOf('a'));
      }
      // Passes run when the parts double: at 3 (then past 64) and at 66 (then past 132), the blocks all held. At 135 the
      // capacity has dropped 5 chains' blocks: their completing parts and trailing carries go (10); their first carries
      // stay, as no block of theirs is held but a request may still continue them (the cap would take them first).
      expect(counts[21]).toBe(66);
      expect(index.blocksOf('a')).toBe(40);
      expect(counts[44]).toBe(125);
      expect(index.store('a', stored(['c0d'], 'c0c', [9, 9], half), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
      expect(index.store('a', stored(['c0z'], 'c0a', [9, 9], half), ROOT)).toEqual({ stored: 1 });
      // A carry whose base the capacity dropped stays while a block completed through it is held: vLLM's eviction of
      // the carry still takes that block.
      // (A chain goes from its tail, so its second block outlives its first only when used since on its own.)
      const one = new KvBlockIndex(BS, 2);
      one.store('a', stored(['e1', 'e2', 'e3', 'e4'], null, tokens(1, 8), half), ROOT);
      one.touch('a', [requestKeys(tokens(1, 8))[1]!], 1);
      one.setCapacity('a', 1);
      expect(one.blocksOf('a')).toBe(1);
      expect(one.longestPrefix(requestKeys(tokens(1, 8)).slice(1), pods('a'), 0).has('a')).toBe(true);
      expect(one.remove('a', removed(['e3']))).toBe(1);
      expect(one.blocksOf('a')).toBe(0);
    });

    test('past the cap, carries of no held block go first, least recently continued first: a hot prompt\'s parts stay, and its eviction still removes its blocks', () => {
      const index = new KvBlockIndex(BS, 10);
      const hot = tokens(1, 10);
      // A hot prompt of two configured blocks and a carry (h5), continued once.
      index.store('a', stored(['h1', 'h2', 'h3', 'h4', 'h5'], null, hot, half), ROOT);
      expect(index.store('a', stored(['u1'], 'h5', [100, 101], half), ROOT)).toEqual({ stored: 1 });
      // 70 short prompts whose removals are lost push the parts past the cap (64).
      for (let i = 0; i < 70; i++) index.store('a', stored([`s${i}`], null, [1000 + i, 0], half), ROOT);
      expect(index.splitPartsOf('a')).toBeLessThanOrEqual(64);
      // The hot prompt still continues, and its eviction removes all it made.
      expect(index.store('a', stored(['u2'], 'h5', [200, 201], half), ROOT)).toEqual({ stored: 1 });
      index.remove('a', removed(['u1', 'u2', 'h5', 'h4', 'h3', 'h2', 'h1']));
      expect(index.longestPrefix(requestKeys([...hot, 100, 101]), pods('a'), 0).has('a')).toBe(false);
      expect(index.blocksOf('a')).toBe(0);
      // Engine blocks of one token (4 to a configured block, cap 80): a carry continued since (a chat's short turns)
      // outlives the carries stored after it but not continued.
      const quarter = { blockSize: 1 };
      const chat = new KvBlockIndex(BS, 10);
      chat.store('a', stored(['q1'], null, [1], quarter), ROOT);
      for (let i = 0; i < 50; i++) chat.store('a', stored([`s${i}`], null, [1000 + i], quarter), ROOT);
      chat.store('a', stored(['q2'], 'q1', [2], quarter), ROOT);
      for (let i = 50; i < 80; i++) chat.store('a', stored([`s${i}`], null, [1000 + i], quarter), ROOT);
      expect(chat.splitPartsOf('a')).toBe(61);
      expect(chat.store('a', stored(['q2b'], 'q1', [3], quarter), ROOT)).toEqual({ stored: 0 });
      expect(chat.store('a', stored(['s0b'], 's0', [3], quarter), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
    });

    test('past the cap, a carry stored again (its removal lost, then recomputed) counts as recently stored: it outlives carries stored between its two stores', () => {
      // The parts' Map was moved by delete and set on a store of a known part as on a continuation; the stamp must be too.
      const quarter = { blockSize: 1 };
      const chat = new KvBlockIndex(BS, 10);
      chat.store('a', stored(['q1'], null, [1], quarter), ROOT);
      for (let i = 0; i < 50; i++) chat.store('a', stored([`s${i}`], null, [1000 + i], quarter), ROOT);
      expect(chat.store('a', stored(['q1'], null, [1], quarter), ROOT)).toEqual({ stored: 0 });
      for (let i = 50; i < 80; i++) chat.store('a', stored([`s${i}`], null, [1000 + i], quarter), ROOT);
      expect(chat.splitPartsOf('a')).toBeLessThanOrEqual(80);
      expect(chat.store('a', stored(['s0b'], 's0', [3], quarter), ROOT)).toEqual({ stored: 0, skipped: 'unknown-parent' });
      expect(chat.store('a', stored(['q2'], 'q1', [2], quarter), ROOT)).toEqual({ stored: 0 });
    });

    test('a continuation at another engine block size that would run past a configured block is skipped, never mis-keyed', () => {
      const index = new KvBlockIndex(BS, 1000);
      index.store('a', stored(['u1'], null, [1], { blockSize: 1 }), ROOT);
      expect(index.store('a', stored(['u2', 'u3'], 'u1', [2, 3, 4, 5], half), ROOT)).toEqual({ stored: 0, skipped: 'block-size-mismatch' });
    });

    test('the first configured block carries the cache salt even when its engine blocks arrive in two events; offloads and other tiers go through the completing part', () => {
      const index = new KvBlockIndex(BS, 1000);
      const ids = tokens(1, 4);
      const salt = [7, 7, 7];
      index.store('a', stored(['s1'], null, ids.slice(0, 2), half), ROOT, salt);
      index.store('a', stored(['s2'], 's1', ids.slice(2, 4), half), ROOT);
      const salted = blockKey(ROOT, ids, 0, BS, salt);
      expect(index.longestPrefix([salted], pods('a'), 0).get('a')).toEqual({ blocks: 1, weight: 1 });
      expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
      // A tokenless CPU offload of both parts: one CPU copy, through the part that completed the block.
      expect(index.store('a', stored(['s1', 's2'], null, [], { medium: 'CPU' }), ROOT)).toEqual({ stored: 2 });
      index.remove('a', removed(['s1']));
      expect(index.longestPrefix([salted], pods('a'), 0).get('a')?.weight).toBeCloseTo(0.8, 12);
    });

    test('an engine block size that does not divide the configured one is skipped, never mis-keyed', () => {
      const index = new KvBlockIndex(BS, 1000);
      expect(index.store('a', stored(['t1', 't2'], null, tokens(1, 6), { blockSize: 3 }), ROOT)).toEqual({ stored: 0, skipped: 'block-size-mismatch' });
      expect(index.blocksOf('a')).toBe(0);
    });
  });

  test('AllBlocksCleared, a restart or a removed pod drop every entry of that pod only', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 4);
    index.store('a', stored(['1'], null, ids), ROOT);
    index.store('b', stored(['1'], null, ids), ROOT);
    index.clearPod('a');
    const m = index.longestPrefix(requestKeys(ids), pods('a', 'b'), 0);
    expect([...m.keys()]).toEqual(['b']);
    expect(index.blocksOf('a')).toBe(0);
  });

  test('LoRA adapters and cache salts key apart from the base model', () => {
    const index = new KvBlockIndex(BS, 1000);
    const ids = tokens(1, 4);
    index.store('a', stored(['1'], null, ids, { loraName: 'sql' }), rootKey('sql'));
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).has('a')).toBe(false);
    expect(index.longestPrefix(requestKeys(ids, rootKey('sql')), pods('a'), 0).has('a')).toBe(true);
  });

  test('speculative entries count until they lapse, and a real store keeps the block after', () => {
    const index = new KvBlockIndex(BS, 1000);
    const keys = requestKeys(tokens(1, 8));
    index.speculate('a', keys, 1000);
    expect(index.longestPrefix(keys, pods('a'), 999).get('a')?.blocks).toBe(2);
    expect(index.longestPrefix(keys, pods('a'), 1001).has('a')).toBe(false);
    index.speculate('a', keys, 2000);
    index.store('a', stored(['1', '2'], null, tokens(1, 8)), ROOT);
    expect(index.longestPrefix(keys, pods('a'), 5000).get('a')?.blocks).toBe(2);
  });

  test('one key stored under many engine hashes (the same tokens, other hashes), each removed while another copy holds it: the pass over engine hashes runs as the map doubles, not on every store', () => {
    const index = new KvBlockIndex(BS, 100);
    const ids = tokens(1, 4);
    index.store('a', stored(['keep'], null, ids), ROOT);
    for (let i = 0; i < 20_000; i++) {
      index.store('a', stored([`h${i}`], null, ids), ROOT);
      index.remove('a', removed([`h${i}`]));
    }
    expect(index.longestPrefix(requestKeys(ids), pods('a'), 0).get('a')?.blocks).toBe(1);
    expect(index.engineHashPassesOf('a')).toBeLessThanOrEqual(20);
  });

  test('a pod never holds more entries than its capacity: the longest-unconfirmed go first', () => {
    const index = new KvBlockIndex(BS, 3);
    for (let i = 0; i < 5; i++) index.store('a', stored([`h${i}`], null, tokens(100 * i, 4)), ROOT);
    expect(index.blocksOf('a')).toBe(3);
    expect(index.longestPrefix(requestKeys(tokens(0, 4)), pods('a'), 0).has('a')).toBe(false);
    expect(index.longestPrefix(requestKeys(tokens(400, 4)), pods('a'), 0).has('a')).toBe(true);
    index.setCapacity('a', 1);
    expect(index.blocksOf('a')).toBe(1);
  });

  test('a pod keeps its capacity when its entries are cleared (AllBlocksCleared, a gap, a publisher restart)', () => {
    // Regression: clearing dropped the capacity with the entries, so a pod reverted to the 1M default for good (the
    // scorer sets a capacity again only when num_gpu_blocks changes).
    const index = new KvBlockIndex(BS, 1000);
    index.setCapacity('a', 2);
    index.store('a', stored(['1'], null, tokens(1, 4)), ROOT);
    index.clearPod('a');
    expect(index.blocksOf('a')).toBe(0);
    for (let i = 0; i < 5; i++) index.store('a', stored([`h${i}`], null, tokens(100 * i, 4)), ROOT);
    expect(index.blocksOf('a')).toBe(2);
    expect(index.capacityOf('a')).toBe(2);
    // A pod that left the pool loses its capacity and entries.
    index.removePod('a');
    expect(index.capacityOf('a')).toBeUndefined();
    expect(index.podCount).toBe(0);
  });

  test('all pods together stay within maxEntries: each keeps the same fraction of its capacity, its newest blocks', () => {
    const index = new KvBlockIndex(BS, 100, undefined, 12);
    index.addPod('c'); // known before its first event, with the default 100: the whole budget
    expect(index.capacityOf('c')).toBe(12);
    index.setCapacity('a', 20); // 120 wanted: a tenth each
    expect([index.capacityOf('a'), index.capacityOf('c')]).toEqual([2, 10]);
    index.removePod('c');
    index.setCapacity('a', 8);
    index.setCapacity('b', 16); // 24 wanted, 12 allowed: half each
    expect([index.capacityOf('a'), index.capacityOf('b')]).toEqual([4, 8]);
    for (let i = 0; i < 20; i++) {
      index.store('a', stored([`a${i}`], null, tokens(100 * i, 4)), ROOT);
      index.store('b', stored([`b${i}`], null, tokens(100 * i + 1, 4)), ROOT);
      expect(index.size).toBeLessThanOrEqual(12);
    }
    expect([index.blocksOf('a'), index.blocksOf('b')]).toEqual([4, 8]);
    expect(index.longestPrefix(requestKeys(tokens(1900, 4)), pods('a'), 0).has('a')).toBe(true);
    expect(index.longestPrefix(requestKeys(tokens(1500, 4)), pods('a'), 0).has('a')).toBe(false);
    // b leaves: a may hold its full 8 again.
    index.removePod('b');
    expect(index.capacityOf('a')).toBe(8);
    for (let i = 20; i < 30; i++) index.store('a', stored([`a${i}`], null, tokens(100 * i, 4)), ROOT);
    expect(index.size).toBe(8);
  });
});

describe('the engine-hash chain against vLLM\'s own (python3-cbor2 + hashlib reference vectors, sim/test/vectors/block-hash.py)', () => {
  // vLLM 0.10.2's sha256_cbor (kv_cache_utils.py @ 82dfb12e5), which llm-d-kv-cache v0.4.0's ChunkedTokenDatabase
  // reproduces; the vectors were generated once with Debian's python3-cbor2 and are the simulator's too.
  const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, '../../sim/test/vectors/block-hash.json'), 'utf8')) as {
    cases: { name: string; seed: string; tokens: number[]; block_size: number; lora_int_id: number | null; cache_salt: string | null; '0.10.2': { none_hash: string; blocks: { event: string }[] } }[];
  };
  const plain = vectors.cases.filter((c) => c.lora_int_id === null && !c.cache_salt && !('mm' in c) && !('prompt_embeds' in c));

  test.each(plain.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const root = engineRoot(c.seed);
    expect(root.toString('hex')).toBe(c['0.10.2'].none_hash);
    const expected = c['0.10.2'].blocks.map((b) => b.event);
    expect(engineEventHashes(c.tokens, c.block_size, root)).toEqual(expected);
    expect(engineKeys(c.tokens, c.block_size, root)).toEqual(expected.map(engineKeyOf));
  });

  test('the vectors hold such cases', () => {
    expect(plain.length).toBeGreaterThanOrEqual(4);
  });

  test('event hashes as bytes (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0) key the same as their integer', () => {
    const n = 16300212363532267629n;
    expect(engineKeyOf(`x:${'ab'.repeat(24)}${n.toString(16).padStart(16, '0')}`)).toBe(engineKeyOf(n.toString()));
    expect(engineKeyOf('1')).toBeLessThan(0);
  });
});
