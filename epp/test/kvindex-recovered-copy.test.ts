import { KvBlockIndex } from '../src/kvindex/kv-block-index';
import { blockFixtures, ROOT, tokens } from './kvindex-block-fixtures';

const BS = 4;
const { requestKeys, stored, removed } = blockFixtures(BS);

/**
 * Parent recovery (`recoverParent`, an EPP that subscribed after the pod cached a prefix) indexes the prefix's blocks
 * before the recovered parent without their engine hashes: no event named them to this index. vLLM stores a block
 * only when it is not cached (a hit sends nothing; vllm/v1/core/block_pool.py `cache_full_blocks` @ v0.10.0 caches
 * the request's blocks past its hit), so a later `BlockStored` of such a block means vLLM evicted the copy the
 * recovery stood for (its `BlockRemoved` named a hash this index could not resolve) and cached it again: one copy,
 * not a second. Counted as a second (until session 73), the block's next `BlockRemoved` left it held, and the pod
 * scored for a prefix it no longer had, until the capacity bound aged it out.
 */
test('a block indexed by parent recovery and later stored by its own event is one copy: its next removal takes it out', () => {
  const index = new KvBlockIndex(BS, 100);
  const ids = tokens(1, 4 * BS);
  const keys = requestKeys(ids);
  index.noteRouted('pod', ROOT, keys, ids);
  // vLLM held blocks 0..2 before this index subscribed; the request's block 3 is stored on block 2.
  expect(index.store('pod', { ...stored(['h3'], ids.slice(3 * BS)), parentBlockHash: 'h2' }, ROOT)).toEqual({ stored: 1, recoveredParent: true });
  const held = () => index.longestPrefix(keys, { has: () => true }, 0).get('pod')?.blocks ?? 0;
  expect(held()).toBe(4);
  // vLLM evicts the chain's tail first, then block 0 (whose hash this index never learnt: ignored), and caches
  // block 0 again for a later request.
  index.remove('pod', removed(['h3']));
  index.remove('pod', removed(['h2']));
  index.remove('pod', removed(['h1']));
  index.remove('pod', removed(['h0']));
  index.store('pod', stored(['h0'], ids.slice(0, BS)), ROOT);
  // Block 1 is still indexed: its removal named a hash this index never learnt (the approximation recovery costs).
  expect(held()).toBe(2);
  // Evicted again, now by a hash the index knows: the pod holds none of the prompt.
  index.remove('pod', removed(['h0']));
  expect(held()).toBe(0);
});
