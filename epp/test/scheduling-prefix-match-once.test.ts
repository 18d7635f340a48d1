/**
 * Beside a precise scorer, the approximate prefix-cache-scorer the loader adds for a no-hit-lru-scorer naming no
 * producer (llm-d-router v0.10.0's deploy/config/sim-epp-no-hit-lru.yaml) runs in the profile at weight 0 and publishes
 * its match while the precise (tokens) match keeps the slot: the LRU scorer must read the approximate scorer's published
 * match, not hash and look up the prompt a second time.
 */
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';
import { parseRequestBody } from '@kvroute/protocol/openai';

jest.setTimeout(60_000);

const MODEL = 'Qwen/Qwen3-0.6B';
// llm-d-router v0.10.0 deploy/config/sim-epp-no-hit-lru.yaml, as plugin-no-hit-lru-precise.test.ts loads it.
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

test('the approximate match the no-hit-lru-scorer reads is computed once per scheduling cycle', async () => {
  const now = Date.now();
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: now }, activeRequests: 0,
  });
  const scheduler = buildScheduler(parseEndpointPickerConfig(CONFIG), { now: () => now, random: () => 0 });
  try {
    const approx = scheduler.plugins.ofKind('scorer').find((p) => p.type === 'prefix-cache-scorer' && p.name !== 'prefix-cache-scorer') as unknown as Record<string, (...a: unknown[]) => unknown>;
    expect(approx).toBeDefined();
    let matches = 0;
    const original = approx['match']!.bind(approx);
    approx['match'] = (...args: unknown[]) => { matches++; return original(...args); };
    const pods = [snapshot('10.0.0.1:8000'), snapshot('10.0.0.2:8000')];
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
