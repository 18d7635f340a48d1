/**
 * Regression (review of session 67): prefix-cache-affinity-filter naming no prefixMatchInfoProducerName beside a
 * precise-prefix-cache-producer.
 *
 * Upstream (llm-d-router v0.10.0): filter/prefixcacheaffinity/plugin.go builds prefixMatchDataKey =
 * PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName("") = "PrefixCacheMatchInfoDataKey/approx-prefix-cache-producer"
 * (attribute/prefix/data_types.go) and Consumes() it; the precise producer publishes under its own name
 * (dataproducer/preciseprefixcache/producer.go), so datalayer/data_graph.go CreateMissingDataProducers builds the
 * default approx-prefix-cache-producer, which learns only from this EPP's picks. Filter: a candidate is sticky when
 * MatchBlocks/TotalBlocks of THAT key >= affinityThreshold; no sticky candidate → every candidate is kept.
 * A prompt a pod holds by its KV events but which this EPP never routed is therefore not sticky anywhere upstream: both
 * pods stay candidates.
 */
import type { BlockStored } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { ModelTokenizer, resolveTokenizerFiles } from '@kvroute/tokenizer';
import { endpointPickerConfigNotes, parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { rootKey } from '../src/scheduling/plugins/prefix-hash';
import { buildScheduler, type SchedulingDecision } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';

jest.setTimeout(60_000);

const MODEL = 'Qwen/Qwen3-0.6B';

const CONFIG = `apiVersion: llm-d.ai/v1alpha1
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
- type: prefix-cache-affinity-filter
  parameters:
    maxTTFTPenaltyMs: 0
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-affinity-filter
  - pluginRef: prefix-cache-scorer
    weight: 1
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: max-score-picker
`;

test('prefix-cache-affinity-filter without a producer name reads the default approximate producer, not the precise one: a KV-event-only hit keeps every candidate', async () => {
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
  const [a, b] = ['10.0.8.1:8000', '10.0.8.2:8000'];
  const now = Date.now();
  // a holds the prompt (KV events) but has a queue; b is idle.
  const snapshot = (key: string, waitingQueueSize: number): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, waitingQueueSize, updateTime: now }, activeRequests: 0,
  });
  const parsed = parseEndpointPickerConfig(CONFIG);
  // The default approximate producer the data layer creates (CreateMissingDataProducers), added by the loader as a
  // prefix-cache-scorer under upstream's producer name, the merged precise scorer holding "prefix-cache-scorer".
  expect(parsed.plugins.find((p) => p.name === 'approx-prefix-cache-producer')?.type).toBe('prefix-cache-scorer');
  expect(parsed.schedulingProfiles[0]!.plugins).toContainEqual({ pluginRef: 'approx-prefix-cache-producer', weight: 0 });
  expect(endpointPickerConfigNotes(parsed)).toContain(
    'plugins: added a prefix-cache-scorer named "approx-prefix-cache-producer" (weight 0 in profile default), which prefix-cache-affinity-filter '
      + '"prefix-cache-affinity-filter" reads, as llm-d-router v0.10.0\'s data layer adds its default approx-prefix-cache-producer',
  );
  const decisions: SchedulingDecision[] = [];
  const scheduler = buildScheduler(parsed, { now: () => now, random: () => 0, decisionLog: (d) => decisions.push(d) });
  try {
    const scorer = scheduler.plugin('prefix-cache-scorer') as PrecisePrefixCacheScorer;
    for (const key of [a, b]) scheduler.plugins.addEndpoint(snapshot(key, 0).endpoint);
    const held = 'Warm document: the handbook of the pumping station, chapter one, valves and gauges. '.repeat(8);
    const input = parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: held }] }))).input;
    const { ids } = (await tokenizer.promptTokens(input))!;
    const blocks = Math.floor(ids.length / 5);
    const stored: BlockStored = {
      type: 'BlockStored', blockHashes: Array.from({ length: blocks }, (_, i) => String(900 + i)), parentBlockHash: null,
      tokenIds: Array.from(ids.slice(0, blocks * 5)), blockSize: 5, loraId: null,
    };
    scorer.index.store(a, stored, rootKey(''));

    const request: LLMRequest = { requestId: 'r1', model: MODEL, prompt: '', input, headers: {}, attributes: new CycleState() };
    for (const p of scheduler.plugins.ofKind('prepare-request')) await p.prepareRequest(request, new AbortController().signal);
    const result = scheduler.schedule(request, [snapshot(a, 4), snapshot(b, 0)]);
    // Upstream: the approximate match is 0 on both pods (this EPP routed nothing yet): no sticky candidate, both kept.
    // Scores: prefix (precise) a = 1, b = 0; queue (max 4, min 0) a = 0, b = 1; totals a = 1·1 + 2·0 = 1, b = 0 + 2·1 = 2 → b.
    expect(decisions[0]!.candidates).toBe(2);
    expect(result.target.endpoint.key).toBe(b);
  } finally {
    await scheduler.plugins.close();
  }
});
