import type { KvCacheEvent } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { ModelTokenizer, resolveTokenizerFiles } from '@kvroute/tokenizer';
import { startSubscribed, subscribedConfig } from './precise-subscribed-config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { blockKey, rootKey } from '../src/scheduling/plugins/prefix-hash';
import { KvBlockIndex } from '../src/kvindex/kv-block-index';

jest.setTimeout(30_000);

const MODEL = 'Qwen/Qwen3-0.6B';

/**
 * llm-d-router v0.10.0 keeps a pick's speculative entry apart from the pod's confirmed ones: PreRequest adds
 * `PodEntry{PodIdentifier, Speculative: true}` (no DeviceTier) to every key of the request
 * (`pkg/epp/framework/plugins/requestcontrol/dataproducer/preciseprefixcache/prerequest.go`), a `BlockRemoved` evicts
 * only `PodEntry{PodIdentifier, DeviceTier: <the event's medium>}` (`pkg/kvevents/pool.go` processEventBatch), and
 * `InMemoryIndex.Evict` removes exactly the entries given (`pkg/kvcache/kvblock/in_memory.go`
 * evictPodsFromRequestKey); the speculative entry goes when its TTL ends (prerequest.go buildSpeculativeCache). So a
 * block removed while a request routed to the pod is on its way still counts there until the TTL: that request will
 * store it again (vLLM recomputes what it evicted before the request ran). The scorer is built by the config loader,
 * events come over real ZMQ through its subscriber, the TTL runs on an injected clock.
 */
describe('a removal does not take a live speculative mark (llm-d-router v0.10.0 speculative entries)', () => {
  const clock = { now: 0 };
  let scheduler: Scheduler;
  let scorer: PrecisePrefixCacheScorer;
  let pub: TestKvEventPublisher;
  let close: () => Promise<void>;
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
  const [a, b] = ['10.0.31.1:8000', '10.0.31.2:8000'] as const;
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: clock.now }, activeRequests: 0,
  });
  const inputOf = (text: string) => parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: text.repeat(40) }] }))).input;

  beforeAll(async () => {
    scheduler = buildScheduler(subscribedConfig(`
        tokenizersPoolConfig: { modelName: "${MODEL}" }`, `
      speculativeIndexing: true
      speculativeTTL: 2s`), { now: () => clock.now });
    ({ scorer, pub, close } = await startSubscribed(scheduler, [a, b].map((key) => snapshot(key).endpoint)));
  });
  afterAll(() => close());

  let seq = 0n;
  let sentinel = 0;
  /** Publishes `events` as pod a's, then waits until a store after them (a block of its own) is applied. */
  async function publishApplied(events: KvCacheEvent[]): Promise<void> {
    const ids = Array.from({ length: 16 }, (_, i) => 900_000 + 16 * sentinel + i);
    const key = blockKey(rootKey(''), ids, 0, 16);
    await pub.publish([...events, { type: 'BlockStored', blockHashes: [String(9_000_000 + sentinel++)], parentBlockHash: null, tokenIds: ids, blockSize: 16, loraId: null }],
      { topic: `kv@${a}@${MODEL}`, encoding: 'positional-v0.10.0', seq: seq++ });
    await waitFor(() => scorer.index.longestPrefix([key], new Set([a]), clock.now).has(a), 'the batch to be applied');
  }

  async function tokensOf(text: string): Promise<number[]> {
    return [...(await tokenizer.promptTokens(inputOf(text)))!.ids];
  }
  const stored = (ids: number[], base: number): KvCacheEvent => {
    const n = Math.floor(ids.length / 16);
    return { type: 'BlockStored', blockHashes: Array.from({ length: n }, (_, i) => String(base + i)), parentBlockHash: null, tokenIds: ids.slice(0, n * 16), blockSize: 16, loraId: null };
  };
  const removed = (ids: number[], base: number): KvCacheEvent =>
    ({ type: 'BlockRemoved', blockHashes: Array.from({ length: Math.floor(ids.length / 16) }, (_, i) => String(base + i)) });

  /** Scores `text` on a and b; with `pick`, commits it to that pod (postCycle marks it). */
  async function score(text: string, pick?: string): Promise<number[]> {
    const request = { requestId: `${text}@${clock.now}`, model: MODEL, prompt: '', input: inputOf(text), headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    const cycle = { request, state: new CycleState() };
    const scores = scorer.score(cycle, [snapshot(a), snapshot(b)]);
    if (pick !== undefined) scorer.postCycle(cycle, { targets: [snapshot(pick)] } as unknown as Parameters<PrecisePrefixCacheScorer['postCycle']>[1]);
    return scores;
  }

  test('a prompt picked to a, stored by a\'s events and removed within the TTL, still scores a until the TTL ends', async () => {
    clock.now = 10_000;
    const ids = await tokensOf('New prompt text. ');
    expect(await score('New prompt text. ', a)).toEqual([0, 0]);
    clock.now = 10_300;
    await publishApplied([stored(ids, 100)]);
    expect(await score('New prompt text. ')).toEqual([1, 0]);
    // vLLM evicts the blocks (BlockRemoved, its medium GPU): upstream evicts the GPU entry, the speculative one stays.
    clock.now = 10_600;
    await publishApplied([removed(ids, 100)]);
    expect(await score('New prompt text. ')).toEqual([1, 0]);
    // The mark's TTL ends 2 s after the pick: nothing is left.
    clock.now = 12_001;
    expect(await score('New prompt text. ')).toEqual([0, 0]);
  });

  test('a prompt a holds wholly on GPU is marked on its pick too (upstream marks every key), so its removal before the request runs leaves a scoring until the TTL', async () => {
    clock.now = 20_000;
    const ids = await tokensOf('Hot prompt text. ');
    await publishApplied([stored(ids, 500)]);
    expect(await score('Hot prompt text. ', a)).toEqual([1, 0]);
    // The routed request waits in a's queue; another request's allocation evicts the free prefix meanwhile.
    clock.now = 20_500;
    await publishApplied([removed(ids, 500)]);
    expect(await score('Hot prompt text. ')).toEqual([1, 0]);
    clock.now = 22_001;
    expect(await score('Hot prompt text. ')).toEqual([0, 0]);
  });
});

test('many:1 (vLLM\'s 16-token blocks under 64-token configured ones): a removed engine block leaves the configured block\'s live mark, as upstream\'s Evict of an engine key leaves each request key\'s speculative entry (in_memory.go Evict, EngineKey)', () => {
  const index = new KvBlockIndex(64, 1000);
  const ids = Array.from({ length: 128 }, (_, i) => i + 1);
  const keys = [blockKey(rootKey(''), ids, 0, 64)];
  keys.push(blockKey(keys[0]!, ids, 64, 128));
  const hashes = Array.from({ length: 8 }, (_, i) => String(700 + i));
  index.speculate('pod', keys, 1_000, 0);
  index.store('pod', { type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: ids, blockSize: 16, loraId: null }, rootKey(''));
  const at = (now: number) => index.longestPrefix(keys, new Set(['pod']), now).get('pod')?.blocks ?? 0;
  expect(at(2_000)).toBe(2);
  // The first configured block's first engine block goes: vLLM can no longer hit it whole, but the request routed
  // there at 0 ms will store it again, so its mark counts until 1,000 ms.
  index.remove('pod', { type: 'BlockRemoved', blockHashes: [hashes[0]!] }, 500);
  expect(at(500)).toBe(2);
  expect(at(1_000)).toBe(0);
  // A removal after the mark's TTL takes the block at once, as before.
  index.remove('pod', { type: 'BlockRemoved', blockHashes: [hashes[4]!] }, 1_500);
  expect(index.longestPrefix([keys[1]!], new Set(['pod']), 1_500).has('pod')).toBe(false);
});
