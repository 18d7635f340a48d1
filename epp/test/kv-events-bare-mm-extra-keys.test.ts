/**
 * A vLLM release that carries per-block `extra_keys` in `BlockStored` (#33304)
 * but still hashes a multimodal item as its bare identifier string (before #36708, merged 2026-03-20, which made it an
 * `(identifier, offset)` tuple) puts that string in the first block's extra keys. `chainStartOf` reads the last string
 * of block 0's extra keys as the request's `cache_salt`, so an unsalted multimodal prompt's blocks are indexed under
 * a "salt" that is the image's hash, and the same prompt sent again (the same token ids, no salt) never matches them.
 *
 * vllm-project/vllm: vllm/v1/core/kv_cache_utils.py `_gen_mm_extra_hash_keys` before #36708:
 *   `extra_keys.append(mm_feature.identifier)` (a str); after: `extra_keys.append((mm_feature.identifier, offset -
 *   start_token_idx))`; `generate_block_hash_extra_keys`: `lora_extra_keys + mm_extra_keys + cache_salt_keys +
 *   prompt_embeds_keys`, the salt only when `request.cache_salt` is set. #33304's description: "Image A blocks:
 *   extra_keys = [('uuid-A',), …]".
 */
import { encode } from '@msgpack/msgpack';
import { decodeEventBatch, liveFrames, type BlockStored } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { subscribedConfig } from './precise-subscribed-config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { chainStartOf } from '../src/kvindex/chain-start';

jest.setTimeout(60_000);

const MODEL = 'Qwen/Qwen3-0.6B';
const IMAGE_PAD = 151655; // Qwen-VL's image placeholder token (#33304's example)

/** 3 blocks of 16: a few text tokens, then the image's placeholders filling the rest of block 0 and block 1, then text. */
const TOKENS = [151644, 872, 198, 151652, ...Array.from({ length: 28 }, () => IMAGE_PAD), 151653, ...Array.from({ length: 15 }, (_, i) => 1000 + i)];

/**
 * A `BlockStored` batch exactly as msgspec writes it for a positional (array_like) release with `medium`, `lora_name`
 * and `extra_keys`: `[ts, [["BlockStored", hashes, parent, tokens, block_size, lora_id, medium, lora_name,
 * extra_keys]], dp_rank]`.
 */
function positionalBatch(extraKeys: unknown[], loraName: string | null = null): Uint8Array {
  const event = ['BlockStored', [7001, 7002, 7003], null, TOKENS, 16, null, 'GPU', loraName, extraKeys];
  return encode([Date.now() / 1000, [event], 0]);
}

// Block 0 and block 1 hold the image (offset 3, 30 placeholder-ish tokens); block 2 is text only.
const BARE_STRING_KEYS = [['mm-hash-of-image-A'], ['mm-hash-of-image-A'], null]; // before #36708
const TUPLE_KEYS = [[['mm-hash-of-image-A', 3]], [['mm-hash-of-image-A', -13]], null]; // from #36708

describe('an unsalted multimodal prompt\'s first block, as vLLM between #33304 and #36708 publishes it', () => {
  test('the decoder and chainStartOf: the bare multimodal identifier is not a cache_salt', () => {
    const decoded = decodeEventBatch(positionalBatch(BARE_STRING_KEYS)).events[0] as BlockStored;
    expect(decoded.extraKeys).toEqual(BARE_STRING_KEYS);
    // The request set no cache_salt, so vLLM put none in the keys (cache_salt_keys = []).
    expect(chainStartOf(decoded).cacheSalt).toBeUndefined();
  });

  test('a salt after a bare identifier that the next block repeats is still the salt', () => {
    const decoded = decodeEventBatch(positionalBatch([['mm-hash-of-image-A', 'tenant-1'], ['mm-hash-of-image-A'], null])).events[0] as BlockStored;
    expect(chainStartOf(decoded).cacheSalt).toBe('tenant-1');
  });

  // vLLM >= #27577 (kv_cache_utils.py `_gen_lora_extra_hash_keys`: `[lora_request.lora_name]`, which
  // `generate_block_hash_extra_keys` puts first in every block's keys) repeats the LoRA name on each block, so only the
  // keys after it can repeat a multimodal identifier: a salt equal to the adapter's name is still the salt.
  test('a LoRA request whose cache_salt equals its adapter\'s name: the LoRA key every block starts with is not a repeat of the salt', () => {
    const salted = decodeEventBatch(positionalBatch([['tenant-a', 'tenant-a'], ['tenant-a'], ['tenant-a']], 'tenant-a')).events[0] as BlockStored;
    expect(chainStartOf(salted)).toEqual({ adapter: 'tenant-a', cacheSalt: 'tenant-a' });
    // The bare identifier that the next block repeats after its LoRA key is still no salt.
    const unsalted = decodeEventBatch(positionalBatch([['tenant-a', 'mm-hash-of-image-A'], ['tenant-a', 'mm-hash-of-image-A'], ['tenant-a']], 'tenant-a')).events[0] as BlockStored;
    expect(chainStartOf(unsalted)).toEqual({ adapter: 'tenant-a' });
  });

  test('control: the same blocks with #36708\'s tuple keys read no salt', () => {
    const decoded = decodeEventBatch(positionalBatch(TUPLE_KEYS)).events[0] as BlockStored;
    expect(chainStartOf(decoded).cacheSalt).toBeUndefined();
  });
});

describe('end to end: the same token ids sent again score the pod that stored them (real ZMQ socket)', () => {
  let scheduler: Scheduler;
  let pub: TestKvEventPublisher;
  const pods = ['10.0.0.1:8000', '10.0.0.2:8000'];
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now() },
    activeRequests: 0,
  });
  let seq = 0n;

  beforeAll(async () => {
    scheduler = buildScheduler(subscribedConfig(`
        tokenizersPoolConfig: { modelName: "${MODEL}" }`, '\n      speculativeIndexing: false'));
    await scheduler.plugins.start();
    for (const key of pods) scheduler.plugins.addEndpoint(snapshot(key).endpoint);
    pub = new TestKvEventPublisher();
    pub.connect((scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer).subscriber.boundEndpoint!);
    await pub.waitSubscribed();
  });
  afterAll(async () => {
    pub.close();
    await scheduler.plugins.close();
  });

  async function send(pod: string, payload: Uint8Array): Promise<void> {
    await pub.pub.send(liveFrames(`kv@${pod}@${MODEL}`, seq, payload));
    seq++;
  }

  async function scores(): Promise<number[]> {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const body = { model: MODEL, prompt: TOKENS, max_tokens: 1 };
    const parsed = parseRequestBody(Buffer.from(JSON.stringify(body)), '/v1/completions');
    const request = { requestId: 'r', model: MODEL, prompt: '', input: parsed.input, headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    return scorer.score({ request, state: new CycleState() }, pods.map(snapshot));
  }

  test('control (vLLM >= #36708, tuple keys, pod 2): the repeated prompt scores the pod in full', async () => {
    seq = 0n;
    await send(pods[1]!, positionalBatch(TUPLE_KEYS));
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    await waitFor(() => scorer.index.blocksOf(pods[1]!) === 3, 'pod 2\'s blocks to be indexed');
    expect(await scores()).toEqual([0, 1]);
  });

  test('vLLM between #33304 and #36708 (bare identifier, pod 1): the repeated prompt scores the pod in full too', async () => {
    // A second pod's own sequence starts at 0 as well.
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    await pub.pub.send(liveFrames(`kv@${pods[0]}@${MODEL}`, 0n, positionalBatch(BARE_STRING_KEYS)));
    await waitFor(() => scorer.index.blocksOf(pods[0]!) === 3, 'pod 1\'s blocks to be indexed');
    // vLLM would hit all three blocks on either pod for this exact request (same tokens, same image, no salt).
    expect(await scores()).toEqual([1, 1]);
  });
});
