import type { KvCacheEvent } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { ModelTokenizer, resolveTokenizerFiles } from '@kvroute/tokenizer';
import { parseEndpointPickerConfig } from '../src/config';
import { startSubscribed } from './precise-subscribed-config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import type { LLMRequest } from '../src/scheduling/types';
import { blockKey, rootKey } from '../src/scheduling/plugins/prefix-hash';

jest.setTimeout(30_000);

const MODEL = 'Qwen/Qwen3-0.6B';

/**
 * llm-d-router v0.10.0's precise producer speculates in PreRequest, whichever scheduling profiles list its scorer: every
 * key of the request on the primary profile's pick and on the `prefill` profile's pick, one TTL for both
 * (`pkg/epp/framework/plugins/requestcontrol/dataproducer/preciseprefixcache/prerequest.go` L148-193,
 * `experimentalPrefillProfile = "prefill"`). With the precise scorer in one P/D profile only, kvroute marked only that
 * profile's pick (its post-cycle), so the decode pod of a disaggregated request looked cold to the P/D decider until
 * its own KV events came: a request right behind it with the same prompt was disaggregated again, its prefill sent to a
 * prefill pod while the decode pod was receiving that very KV. The scheduler is built from the config loader, KV events
 * come over real ZMQ through the scorer's subscriber, the TTL runs on an injected clock.
 */
describe('precise speculation of the picks of a profile not listing the scorer (llm-d-router v0.10.0 prerequest.go)', () => {
  const clock = { now: 0 };
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
  const [p1, d1] = ['10.0.77.1:8000', '10.0.77.2:8000'] as const;
  const roles: Record<string, string> = { [p1]: 'prefill', [d1]: 'decode' };
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: { 'llm-d.ai/role': roles[key]! } },
    metrics: { ...EMPTY_METRICS, updateTime: clock.now }, activeRequests: 0,
  });
  const inputOf = (text: string) => parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: text.repeat(40) }] }))).input;

  /** llm-d's P/D config shape (deploy/config/pd-epp-config.yaml) with the precise scorer in `listedIn` only. */
  const pdConfig = (listedIn: 'prefill' | 'decode') => {
    const precise = '\n    - pluginRef: precise-prefix-cache-scorer\n      weight: 2';
    return parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0", topicFilter: "kv@" }
    indexerConfig:
      tokenProcessorConfig: { blockSize: 16 }
      tokenizersPoolConfig: { modelName: "${MODEL}" }
    speculativeIndexing: true
    speculativeTTL: 2s
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: prefix-based-pd-decider
- type: prefix-based-pd-decider
  parameters:
    nonCachedTokens: 16
schedulingProfiles:
- name: prefill
  plugins:
    - pluginRef: prefill-filter
    - pluginRef: max-score-picker${listedIn === 'prefill' ? precise : ''}
    - pluginRef: queue-scorer
- name: decode
  plugins:
    - pluginRef: decode-filter
    - pluginRef: max-score-picker${listedIn === 'decode' ? precise : ''}
    - pluginRef: queue-scorer
`);
  };

  async function started(listedIn: 'prefill' | 'decode'): Promise<{ scheduler: Scheduler; scorer: PrecisePrefixCacheScorer; pub: TestKvEventPublisher; close: () => Promise<void> }> {
    const scheduler = buildScheduler(pdConfig(listedIn), { now: () => clock.now });
    return { scheduler, ...(await startSubscribed(scheduler, [p1, d1].map((key) => snapshot(key).endpoint))) };
  }

  let n = 0;
  async function schedule(scheduler: Scheduler, scorer: PrecisePrefixCacheScorer, text: string): Promise<{ decode: string; prefill: string | undefined }> {
    const request: LLMRequest = { requestId: `r${n++}`, model: MODEL, prompt: '', input: inputOf(text), headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    const result = scheduler.schedule(request, [snapshot(p1), snapshot(d1)]);
    return { decode: result.target.endpoint.key, prefill: result.profileTargets?.get('prefill')?.endpoint.key };
  }

  /** The blocks `pod` holds of `text`'s prompt, marked or stored, now. */
  function held(scorer: PrecisePrefixCacheScorer, pod: string, keys: readonly number[]): number {
    return scorer.index.longestPrefix(keys, new Set([pod]), clock.now).get(pod)?.blocks ?? 0;
  }

  /** The prompt's block keys, chained from the base model's root as the scorer cuts them (16-token blocks). */
  async function keysOf(text: string): Promise<readonly number[]> {
    const ids = [...(await tokenizer.promptTokens(inputOf(text)))!.ids];
    const keys: number[] = [];
    let parent = rootKey('');
    for (let i = 0; i + 16 <= ids.length; i += 16) keys.push((parent = blockKey(parent, ids, i, i + 16)));
    return keys;
  }

  test('precise scorer in the prefill profile only: the decode pick is marked, so the same prompt right behind it stays on decode; after the TTL only the decode pod\'s own BlockStored (KV received through the connector) keeps it there', async () => {
    const { scheduler, scorer, pub, close } = await started('prefill');
    try {
      clock.now = 10_000;
      const text = 'A fresh shared document. ';
      expect(await schedule(scheduler, scorer, text)).toEqual({ decode: d1, prefill: p1 });
      const keys = await keysOf(text);
      expect(keys.length).toBeGreaterThan(2);
      // Upstream marks both picks with every key of the request: the P/D decider finds the prompt on the decode pod.
      expect(held(scorer, p1, keys)).toBe(keys.length);
      clock.now = 10_500;
      expect(await schedule(scheduler, scorer, text)).toEqual({ decode: d1, prefill: undefined });
      expect(held(scorer, d1, keys)).toBe(keys.length);
      // The marks lapse 2 s after their pick; the decode pod has not reported the blocks yet.
      clock.now = 12_600;
      expect(held(scorer, d1, keys)).toBe(0);
      expect(await schedule(scheduler, scorer, text)).toEqual({ decode: d1, prefill: p1 });
      // vLLM on the decode pod caches the received blocks (`_update_waiting_for_remote_kv` → `cache_blocks`) and
      // publishes them: the same token ids, so the same keys.
      const ids = [...(await tokenizer.promptTokens(inputOf(text)))!.ids];
      const full = Math.floor(ids.length / 16);
      const stored: KvCacheEvent = { type: 'BlockStored', blockHashes: Array.from({ length: full }, (_, i) => String(7_700 + i)), parentBlockHash: null, tokenIds: ids.slice(0, full * 16), blockSize: 16, loraId: null };
      clock.now = 15_000;
      await pub.publish([stored], { topic: `kv@${d1}@${MODEL}`, encoding: 'positional-v0.10.0', seq: 0n });
      await waitFor(() => held(scorer, d1, keys) === keys.length, 'the decode pod\'s BlockStored to be applied');
      expect(await schedule(scheduler, scorer, text)).toEqual({ decode: d1, prefill: undefined });
    } finally {
      await close();
    }
  });

  test('precise scorer in the decode profile only: the prefill pick is marked too, with the same keys and TTL', async () => {
    const { scheduler, scorer, close } = await started('decode');
    try {
      clock.now = 40_000;
      const text = 'Another fresh document. ';
      expect(await schedule(scheduler, scorer, text)).toEqual({ decode: d1, prefill: p1 });
      const keys = await keysOf(text);
      expect(held(scorer, d1, keys)).toBe(keys.length);
      expect(held(scorer, p1, keys)).toBe(keys.length);
      clock.now = 42_001;
      expect(held(scorer, p1, keys)).toBe(0);
      expect(held(scorer, d1, keys)).toBe(0);
    } finally {
      await close();
    }
  });
});
