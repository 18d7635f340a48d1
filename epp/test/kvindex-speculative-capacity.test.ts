import { KvBlockIndex } from '../src/kvindex/kv-block-index';
import { blockFixtures, ROOT, tokens } from './kvindex-block-fixtures';

const BS = 4;
const { requestKeys, stored, removed } = blockFixtures(BS);

/**
 * A vLLM with 5 KV blocks (4 usable: block 0 is the null block, vllm/v1/core/block_pool.py @ v0.10.0) and an index
 * capacity of its 4. A long request L holds 2 blocks (running: vLLM cannot evict them, they are not in its free queue);
 * a finished request F left 2 cached blocks in the free queue. The EPP routes a request N of 2 new blocks there and
 * marks them speculatively (kvroute's precise config sets `speculativeIndexing: true`). vLLM then takes F's blocks
 * from the head of its free queue (`get_new_blocks`), removes them (`BlockRemoved`) and stores N's. L's blocks are
 * never sent again (a hit sends nothing), so an index that dropped them keeps the pod scoring 0 for L's prefix for as
 * long as vLLM holds it. Found by `kvindex-vllm-model.test.ts` (routed seeds): until session 73 marks shared the pod's
 * capacity with the confirmed blocks and pushed out its oldest, L's. Upstream keeps speculative entries apart from
 * confirmed ones (llm-d-router v0.10.0 preciseprefixcache/prerequest.go: `PodEntry{Speculative: true}`, evicted by
 * their TTL), and its index has no per-pod bound that marks could push confirmed entries out of.
 */
test('speculative marks on a pod at capacity do not drop the blocks its events said it holds (a running request\'s, which vLLM cannot evict)', () => {
  const index = new KvBlockIndex(BS, 4);
  const L = tokens(100, 2 * BS);
  const F = tokens(200, 2 * BS);
  const N = tokens(300, 2 * BS);
  index.store('pod', stored(['l0', 'l1'], L), ROOT);
  index.store('pod', stored(['f0', 'f1'], F), ROOT);
  // F finished: vLLM's free queue now holds F1, F0 (its tail first); L's blocks are in use.
  index.touch('pod', requestKeys(F), 2);
  // The pick of N marks its blocks until the pod's events arrive.
  index.speculate('pod', requestKeys(N), 1_000);
  const held = (ids: number[], now = 0) => index.longestPrefix(requestKeys(ids), { has: () => true }, now).get('pod')?.blocks ?? 0;
  expect(held(L)).toBe(2);
  expect(held(N)).toBe(2); // the marks count until their TTL
  // vLLM's events for N's step: F's blocks evicted from the free queue's head, N's stored.
  index.remove('pod', removed(['f1']));
  index.remove('pod', removed(['f0']));
  index.store('pod', stored(['n0', 'n1'], N), ROOT);
  // What the pod holds: L and N, read past every mark's TTL.
  expect([held(L, 2_000), held(F, 2_000), held(N, 2_000)]).toEqual([2, 0, 2]);
  expect(index.blocksOf('pod')).toBe(4);
});

test('marks are bounded by the pod\'s capacity among themselves: a later request\'s marks push out older marks, the tail first', () => {
  const index = new KvBlockIndex(BS, 4);
  const held = tokens(100, 4 * BS);
  index.store('pod', stored(['h0', 'h1', 'h2', 'h3'], held), ROOT);
  const first = tokens(200, 3 * BS);
  const second = tokens(300, 3 * BS);
  index.speculate('pod', requestKeys(first), 1_000);
  index.speculate('pod', requestKeys(second), 1_000);
  const at = (ids: number[]) => index.longestPrefix(requestKeys(ids), { has: () => true }, 0).get('pod')?.blocks ?? 0;
  expect([at(held), at(second), at(first)]).toEqual([4, 3, 1]);
  expect(index.blocksOf('pod')).toBe(8);
});

test('marks that lapsed are dropped at the pod\'s next marking, so a pod does not keep a full share of stale marks beside its blocks (upstream evicts speculative entries on their TTL, llm-d-router v0.10.0 preciseprefixcache/prerequest.go)', () => {
  const index = new KvBlockIndex(BS, 4);
  index.store('pod', stored(['h0', 'h1', 'h2', 'h3'], tokens(100, 4 * BS)), ROOT);
  // Requests routed at 0 ms whose blocks vLLM never stored (they hit, or were aborted): marks until 1,000 ms.
  index.speculate('pod', requestKeys(tokens(200, 4 * BS)), 1_000, 0);
  expect(index.blocksOf('pod')).toBe(8);
  // A request routed at 5,000 ms: the lapsed marks go, its own stay until their TTL.
  const later = tokens(300, 1 * BS);
  index.speculate('pod', requestKeys(later), 6_000, 5_000);
  expect(index.blocksOf('pod')).toBe(5);
  expect(index.longestPrefix(requestKeys(later), { has: () => true }, 5_000).get('pod')?.blocks).toBe(1);
  // Marks still live are kept: a request at 5,500 ms leaves the one marked at 5,000.
  index.speculate('pod', requestKeys(tokens(400, 1 * BS)), 6_500, 5_500);
  expect(index.blocksOf('pod')).toBe(6);
});

test('marks that lapsed on a pod no longer picked are dropped too, at another pod\'s pick a TTL on, as upstream\'s TTL cache expires them on its own (llm-d-router v0.10.0 preciseprefixcache/prerequest.go buildSpeculativeCache: go cache.Start())', () => {
  const index = new KvBlockIndex(BS, 4);
  // Routed at 0 ms to a, at 200 ms to c; TTL 1,000 ms. Neither pod is picked again (saturated, or its sessions moved).
  index.speculate('a', requestKeys(tokens(100, 4 * BS)), 1_000, 0);
  index.speculate('c', requestKeys(tokens(200, 2 * BS)), 1_200, 200);
  expect([index.blocksOf('a'), index.blocksOf('c')]).toEqual([4, 2]);
  // A pick of b at 1,100 ms: a's marks lapsed at 1,000 and go; c's are live until 1,200 and stay.
  // It names the other pods whose entries it dropped (their gauges follow, precise-prefix-cache-scorer.ts recordPick).
  expect(index.speculate('b', requestKeys(tokens(300, 1 * BS)), 2_100, 1_100)).toEqual(['a']);
  expect([index.blocksOf('a'), index.blocksOf('c'), index.blocksOf('b')]).toEqual([0, 2, 1]);
  expect(index.size).toBe(3);
});
