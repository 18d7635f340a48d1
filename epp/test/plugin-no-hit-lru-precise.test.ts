/**
 * Regression (review of session 67): llm-d-router v0.10.0's own sample deploy/config/sim-epp-no-hit-lru.yaml, whose
 * no-hit-lru-scorer names no prefixMatchInfoProducerName beside a precise-prefix-cache-producer.
 *
 * Upstream (llm-d-router v0.10.0):
 * - scorer/nohitlru/no_hit_lru.go NewNoHitLRU: dk = PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName("") = the
 *   default key "PrefixCacheMatchInfoDataKey/approx-prefix-cache-producer" (attribute/prefix/data_types.go), which it
 *   Consumes() as Required.
 * - dataproducer/preciseprefixcache/producer.go publishes under "PrefixCacheMatchInfoDataKey/<its name>", another key.
 * - datalayer/data_graph.go CreateMissingDataProducers therefore builds the default approx-prefix-cache-producer
 *   (cmd/epp/runner/runner.go RegisterAsDefaultProducer), which learns only from this EPP's picks (PreRequest).
 * So the LRU scorer's coldness ("no endpoint reports MatchBlocks > 0", isColdRequest) is the approximate index's, not
 * the KV events': a prompt that a pod holds by its KV events but that this EPP never routed is cold upstream, and its
 * pick moves to the LRU's recent end (PreRequest), so the next cold request goes to the other pod.
 */
import type { BlockStored } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { ModelTokenizer, resolveTokenizerFiles } from '@kvroute/tokenizer';
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { rootKey } from '../src/scheduling/plugins/prefix-hash';
import { buildScheduler, type SchedulingDecision } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';

jest.setTimeout(60_000);

const MODEL = 'Qwen/Qwen3-0.6B';

// deploy/config/sim-epp-no-hit-lru.yaml @ llm-d-router v0.10.0 verbatim, plus the token-producer naming the model
// (as llm-d's precise guide lists it) so the precise index can key the prompt.
const SAMPLE = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: token-producer
  parameters:
    modelName: ${MODEL}
- type: precise-prefix-cache-producer
  parameters:
    tokenProcessorConfig:
      blockSizeTokens: 5
- type: prefix-cache-scorer
  parameters:
    prefixMatchInfoProducerName: precise-prefix-cache-producer
- type: no-hit-lru-scorer
  parameters:
    lruSize: 2048
- type: decode-filter
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: no-hit-lru-scorer
    weight: 1
`;

describe('no-hit-lru-scorer without a producer name beside a precise producer (llm-d-router v0.10.0 sim-epp-no-hit-lru.yaml)', () => {
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
  const [a, b] = ['10.0.9.1:8000', '10.0.9.2:8000'];
  const now = Date.now();
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: now }, activeRequests: 0,
  });

  test('a prompt held by KV events but never routed by this EPP is cold (upstream\'s approximate producer knows nothing of it), and its pick takes the LRU\'s recent end', async () => {
    const decisions: SchedulingDecision[] = [];
    const scheduler = buildScheduler(parseEndpointPickerConfig(SAMPLE), { now: () => now, random: () => 0, decisionLog: (d) => decisions.push(d) });
    const scorer = scheduler.plugin('prefix-cache-scorer') as PrecisePrefixCacheScorer;
    for (const key of [a, b]) scheduler.plugins.addEndpoint(snapshot(key).endpoint);
    const body = (content: string) => parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }] })));
    let n = 0;
    const send = async (content: string): Promise<{ target: string; lru: number[] }> => {
      const request: LLMRequest = { requestId: `r${++n}`, model: MODEL, prompt: '', input: body(content).input, headers: {}, attributes: new CycleState() };
      for (const p of scheduler.plugins.ofKind('prepare-request')) await p.prepareRequest(request, new AbortController().signal);
      const result = scheduler.schedule(request, [snapshot(a), snapshot(b)]);
      for (const p of scheduler.plugins.ofKind('pre-request')) p.preRequest(request, result);
      const d = decisions[decisions.length - 1]!;
      const lru = [a, b].map((k) => d.top.find((t) => t.endpoint === k)!.scores['no-hit-lru-scorer']!);
      return { target: result.target.endpoint.key, lru };
    };

    // Pod a holds the first prompt by its vLLM's KV events (another EPP replica sent it there, or it was warm).
    const held = 'Warm document: the handbook of the pumping station, chapter one, valves and gauges. '.repeat(8);
    const { ids } = (await tokenizer.promptTokens(body(held).input))!;
    const blocks = Math.floor(ids.length / 5);
    const stored: BlockStored = {
      type: 'BlockStored', blockHashes: Array.from({ length: blocks }, (_, i) => String(700 + i)), parentBlockHash: null,
      tokenIds: Array.from(ids.slice(0, blocks * 5)), blockSize: 5, loraId: null,
    };
    scorer.index.store(a, stored, rootKey(''));

    // Request 1: the precise scorer sends it to a (2 × 1 against 0). Upstream's no-hit-lru reads the default approximate
    // producer's match, which this EPP never fed: cold, so LRU ranks over the two never-used pods, in candidate order:
    // a = 1 − 0/(2−1) = 1, b = 1 − 1/(2−1) = 0; totals a = 2·1 + 1·1 = 3, b = 0 → a; PreRequest moves a to the LRU.
    const first = await send(held);

    // Request 2: a new prompt nobody holds, cold on both sides. Upstream: a is in the LRU (position 0), b never used:
    // b = 1 − 0/1 = 1, a = max(0, 1 − (1 + 0)/1) = 0; totals b = 1, a = 0 → b.
    const second = await send('Unrelated question about tide tables near the harbour mouth, please?');
    try {
      expect([first.target, second.target]).toEqual([a, b]);
      expect([first.lru, second.lru]).toEqual([[1, 0], [0, 1]]);
    } finally {
      await scheduler.plugins.close();
    }
  });

  // The approximate scorer the loader adds runs in the profile at weight 0 and publishes its match while the precise
  // (tokens) match keeps the cycle's slot: the LRU scorer reads that published match, not a second hash and lookup.
  test('the approximate match the no-hit-lru-scorer reads is computed once per scheduling cycle', async () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(SAMPLE), { now: () => now, random: () => 0 });
    try {
      const approx = scheduler.plugins.ofKind('scorer').find((p) => p.type === 'prefix-cache-scorer' && p.name !== 'prefix-cache-scorer') as unknown as Record<string, (...args: unknown[]) => unknown>;
      expect(approx).toBeDefined();
      let matches = 0;
      const original = approx['match']!.bind(approx);
      approx['match'] = (...args: unknown[]) => { matches++; return original(...args); };
      const pods = [snapshot(a), snapshot(b)];
      const content = 'a system prompt shared by many requests. '.repeat(20);
      const body = parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }] })));
      const request: LLMRequest = { requestId: 'r1', model: MODEL, prompt: content, input: body.input, headers: {}, attributes: new CycleState() };
      for (const p of scheduler.plugins.ofKind('prepare-request')) await p.prepareRequest(request, new AbortController().signal);
      for (const pod of pods) scheduler.plugins.addEndpoint(pod.endpoint);
      scheduler.schedule(request, pods);
      expect(matches).toBe(1);
    } finally {
      await scheduler.plugins.close();
    }
  });
});
