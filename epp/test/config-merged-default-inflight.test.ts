/**
 * llm-d's group: the default-named approx-prefix-cache-producer listed and read by two scorers (60a557c). The
 * inflight-load-producer the loader adds for active-request-scorer (CreateMissingDataProducers) reads the default
 * producer's match upstream (an Optional read of PrefixCacheMatchInfoDataKey/approx-prefix-cache-producer, which the
 * listed producer writes), so it should discount from the scorer that does that producer's work, as a listed
 * inflight-load-producer naming none is renamed to.
 */
import { parseEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';

const doc = (listed: boolean) => `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
- type: prefix-cache-scorer
  name: prefix-a
- type: prefix-cache-scorer
  name: prefix-b
- type: active-request-scorer
${listed ? '- type: inflight-load-producer\n' : ''}- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: max-score-picker
  - pluginRef: prefix-a
    weight: 2
  - pluginRef: prefix-b
    weight: 1
  - pluginRef: active-request-scorer
    weight: 1
`;

test.each([true, false])('listed inflight-load-producer: %s — it discounts by prefix-a, the scorer doing the default producer\'s work', async (listed) => {
  const scheduler = buildScheduler(parseEndpointPickerConfig(doc(listed)));
  try {
    const inflight = scheduler.plugin('inflight-load-producer') as unknown as { prefixScorer?: { name: string } };
    expect(inflight).toBeDefined();
    expect(inflight.prefixScorer?.name).toBe('prefix-a');
  } finally {
    await scheduler.plugins.close();
  }
});
