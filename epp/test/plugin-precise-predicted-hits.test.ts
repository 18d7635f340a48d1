/**
 * kvroute_epp_precise_predicted_hit_tokens_total counts the prefix-cache hits vLLM counts: whole engine
 * blocks only (vllm v0.10.0 kv_cache_manager.py get_computed_blocks; the block pool hashes whole blocks of the pod's
 * --block-size). With vLLM at a larger --block-size than the config's (1:many, which the index supports: an engine
 * block's tokens cut into configured blocks), a configured-block match that ends inside an engine block is not a hit.
 */
import type { BlockStored } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { rootKey } from '../src/scheduling/plugins/prefix-hash';

jest.setTimeout(60_000);

const MODEL = 'Qwen/Qwen3-0.6B';

test('a pod at --block-size 64 holding one engine block of another prompt: a request sharing its first 40 tokens is predicted 0 hit tokens, as vLLM hits none', async () => {
  const observed: [number, number][] = [];
  const scheduler = buildScheduler(parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
  - type: precise-prefix-cache-scorer
    parameters:
      kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0" }
      indexerConfig:
        tokenProcessorConfig: { blockSize: 16 }
        tokenizersPoolConfig: { modelName: "${MODEL}" }
  - type: max-score-picker
`), { metrics: { ...NOOP_SCHEDULING_METRICS, observePreciseMatch: (hit: number, prompt: number) => { observed.push([hit, prompt]); } } });
  const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
  const pod = '10.0.20.1:8000';
  const snapshot: EndpointSnapshot = {
    endpoint: { key: pod, name: pod, namespace: 'ns', address: '10.0.20.1', port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now(), blockSize: 64 }, activeRequests: 0,
  };
  scheduler.plugins.addEndpoint(snapshot.endpoint);
  const x = Array.from({ length: 64 }, (_, i) => 1000 + i);
  const stored: BlockStored = { type: 'BlockStored', blockHashes: ['777'], parentBlockHash: null, tokenIds: x, blockSize: 64, loraId: null };
  scorer.index.store(pod, stored, rootKey(''));
  // The first 40 tokens of x, then others: 100 tokens, whose first engine block (64) differs from x's.
  const y = [...x.slice(0, 40), ...Array.from({ length: 60 }, (_, i) => 5000 + i)];
  const request = {
    requestId: 'y', model: MODEL, prompt: '', headers: {}, attributes: new CycleState(),
    input: parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, prompt: y })), '/v1/completions').input,
  };
  await scorer.prepareRequest(request);
  const cycle = { request, state: new CycleState() };
  scorer.score(cycle, [snapshot]);
  scorer.postCycle(cycle, { targets: [snapshot] } as unknown as Parameters<PrecisePrefixCacheScorer['postCycle']>[1]);
  expect(observed).toEqual([[0, 100]]);
  await scheduler.plugins.close();
});
