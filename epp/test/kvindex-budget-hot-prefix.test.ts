import type { BlockStored, KvCacheEvent } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { ModelTokenizer, resolveTokenizerFiles } from '@kvroute/tokenizer';
import { subscribedConfig } from './precise-subscribed-config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { Datastore } from '../src/datastore/datastore';
import { RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { blockKey, rootKey } from '../src/scheduling/plugins/prefix-hash';

jest.setTimeout(60_000);

const MODEL = 'Qwen/Qwen3-0.6B';
/** Blocks each of the two pods may keep: maxIndexEntries (2 × this) binds, maxBlocksPerPod (1,000,000) does not. */
const SHARE = 24;

/**
 * A pod whose index share is far below its KV cache (the total budget binding, as at 1,000 pods: ~500 of 8,192 blocks)
 * holds a shared system prompt, stored once when first cached (vLLM sends BlockStored once a block,
 * vllm/v1/core/block_pool.py cache_full_blocks @ v0.10.0), and then serves requests under it with unique suffixes,
 * each request's blocks more than the share. vLLM keeps the system prompt: every request hits it and frees its blocks
 * tail first (vllm/v1/core/kv_cache_manager.py free @ v0.10.0, "so that the tail blocks are evicted first"), so the
 * prompt's head is the last block its LRU free queue gives up. The index must keep it too: real ZMQ events, a real
 * subscriber, the scorer built by the config loader with kvroute's precise settings (speculativeIndexing on).
 */
describe('a budget-bound pod keeps the shared system prompt its requests hit (precise index trim order)', () => {
  let scheduler: Scheduler;
  let datastore: Datastore;
  let pub: TestKvEventPublisher;
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
  const pods = ['10.0.9.1:8000', '10.0.9.2:8000'];
  const [holder, other] = [pods[0]!, pods[1]!];
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now() },
    activeRequests: 0,
  });

  beforeAll(async () => {
    scheduler = buildScheduler(subscribedConfig(`
        tokenizersPoolConfig: { modelName: "${MODEL}" }`, `
      speculativeIndexing: true
      maxIndexEntries: ${2 * SHARE}`));
    await scheduler.plugins.start();
    datastore = new Datastore({ scrape: false });
    for (const key of pods) {
      scheduler.plugins.addEndpoint(snapshot(key).endpoint);
      datastore.upsertEndpoint(snapshot(key).endpoint);
      datastore.setMetrics(key, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: Date.now(), consecutiveFailures: 0 });
    }
    pub = new TestKvEventPublisher();
    pub.connect((scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer).subscriber.boundEndpoint!);
    await pub.waitSubscribed();
  });
  afterAll(async () => {
    pub.close();
    datastore.stop();
    await scheduler.plugins.close();
  });

  let seq = 0n;
  async function publish(events: KvCacheEvent[]): Promise<void> {
    await pub.publish(events, { topic: `kv@${holder}@${MODEL}`, encoding: 'positional-v0.10.0', seq: seq++ });
  }

  const chat = (question: string) => ({
    model: MODEL,
    messages: [{ role: 'system', content: `You answer questions about the shared manual. ${'Section text. '.repeat(80)}` }, { role: 'user', content: question }],
  });

  async function tokensOf(body: unknown): Promise<number[]> {
    return [...(await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(body))).input))!.ids];
  }

  function keysOf(ids: readonly number[]): number[] {
    const keys: number[] = [];
    for (let i = 0, parent = rootKey(''); (i + 1) * 16 <= ids.length; i++) keys.push((parent = blockKey(parent, ids, i * 16, (i + 1) * 16)));
    return keys;
  }

  test('after many unique suffixes, a request under the system prompt still scores its pod highest', async () => {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    expect(scorer.index.capacityOf(holder)).toBe(SHARE);
    // The system prompt's blocks: those every request below shares.
    const a = await tokensOf(chat('First?'));
    const b = await tokensOf(chat('Second?'));
    let shared = 0;
    while (a[shared] === b[shared]) shared++;
    const systemBlocks = Math.floor(shared / 16);
    const systemIds = a.slice(0, systemBlocks * 16);
    expect(systemBlocks).toBeLessThan(SHARE);
    const system: BlockStored = {
      type: 'BlockStored', blockHashes: Array.from({ length: systemBlocks }, (_, i) => String(100 + i)), parentBlockHash: null,
      tokenIds: systemIds, blockSize: 16, loraId: null,
    };
    await publish([system]);
    await waitFor(() => scorer.index.blocksOf(holder) === systemBlocks, 'the system prompt to be indexed');

    const control = new RequestControl({ datastore, scheduler });
    for (let r = 0; r < 6; r++) {
      const body = chat(`Question ${r}: ${`unique detail ${r} of this request. `.repeat(25)}`);
      const ids = await tokensOf(body);
      const keys = keysOf(ids);
      // Each request's blocks are more than the pod's share: it cannot keep them all, and must keep the head.
      expect(keys.length).toBeGreaterThan(SHARE);
      const d = await control.route({ requestId: `r${r}`, headers: new Map([['content-type', 'application/json'], [':path', '/v1/chat/completions']]), body: Buffer.from(JSON.stringify(body)), filterMetadata: {} });
      if (d.kind !== 'route') throw new Error(`rejected: ${d.body}`);
      expect(d.endpoint).toBe(holder);
      // The pod hits the system prompt and caches the rest (one event, its parent the prompt's last block).
      await publish([{
        type: 'BlockStored', blockHashes: keys.slice(systemBlocks).map((_, i) => String(1000 * (r + 1) + i)), parentBlockHash: system.blockHashes.at(-1)!,
        tokenIds: ids.slice(systemBlocks * 16, keys.length * 16), blockSize: 16, loraId: null,
      }]);
      // Applied once some block of it is held on GPU (a speculative mark counts only until its TTL: not at this `now`).
      const held = (): boolean => keys.slice(systemBlocks).some((k) => scorer.index.longestPrefix([k], new Set([holder]), Number.MAX_SAFE_INTEGER).has(holder));
      await waitFor(held, `request ${r}'s blocks to be applied`);
      control.release(d.ticket, 'completed');
    }

    // The pod's index kept the system prompt, whole: the next request under it scores there, and only there.
    const systemKeys = keysOf(systemIds);
    expect(scorer.index.longestPrefix(systemKeys, new Set(pods), Number.MAX_SAFE_INTEGER).get(holder)?.blocks).toBe(systemBlocks);
    const next = chat('One more question?');
    const d = await control.route({ requestId: 'next', headers: new Map([['content-type', 'application/json'], [':path', '/v1/chat/completions']]), body: Buffer.from(JSON.stringify(next)), filterMetadata: {} });
    if (d.kind !== 'route') throw new Error(`rejected: ${d.body}`);
    expect(d.endpoint).toBe(holder);
    expect(scorer.index.blocksOf(other)).toBe(0);
  });
  // Traffic this EPP did not route (another replica's, or clients of the pod's own): its events are all the index sees
  // of it, and each continuation's parent_block_hash is the system prompt's last block, which that request holds.
  test('with events alone (no pick touching the prompt), continuations go before the system prompt they continue', async () => {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    let otherSeq = 0n;
    const publishOther = (events: KvCacheEvent[]) => pub.publish(events, { topic: `kv@${other}@${MODEL}`, encoding: 'positional-v0.10.0', seq: otherSeq++ });
    const manual = (question: string) => ({
      model: MODEL,
      messages: [{ role: 'system', content: `You answer questions about the other manual. ${'Other text. '.repeat(80)}` }, { role: 'user', content: question }],
    });
    const a = await tokensOf(manual('First?'));
    const b = await tokensOf(manual('Second?'));
    let shared = 0;
    while (a[shared] === b[shared]) shared++;
    const systemBlocks = Math.floor(shared / 16);
    const systemIds = a.slice(0, systemBlocks * 16);
    expect(systemBlocks).toBeLessThan(SHARE);
    await publishOther([{ type: 'BlockStored', blockHashes: Array.from({ length: systemBlocks }, (_, i) => String(500 + i)), parentBlockHash: null, tokenIds: systemIds, blockSize: 16, loraId: null }]);
    for (let r = 0; r < 6; r++) {
      const ids = await tokensOf(manual(`Question ${r}: ${`another detail ${r} here. `.repeat(25)}`));
      const keys = keysOf(ids);
      expect(keys.length).toBeGreaterThan(SHARE);
      await publishOther([{
        type: 'BlockStored', blockHashes: keys.slice(systemBlocks).map((_, i) => String(50_000 + 1000 * r + i)), parentBlockHash: String(500 + systemBlocks - 1),
        tokenIds: ids.slice(systemBlocks * 16, keys.length * 16), blockSize: 16, loraId: null,
      }]);
    }
    // A one-block prompt last: once it is indexed (the newest block either way), every batch before it was applied.
    const marker = Array.from({ length: 16 }, (_, i) => 90_000 + i);
    await publishOther([{ type: 'BlockStored', blockHashes: ['999'], parentBlockHash: null, tokenIds: marker, blockSize: 16, loraId: null }]);
    await waitFor(() => scorer.index.longestPrefix(keysOf(marker), new Set([other]), Number.MAX_SAFE_INTEGER).has(other), 'the events to be applied');
    expect(scorer.index.longestPrefix(keysOf(systemIds), new Set(pods), Number.MAX_SAFE_INTEGER).get(other)?.blocks).toBe(systemBlocks);
  });
});
