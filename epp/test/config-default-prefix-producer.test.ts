/**
 * Which approximate prefix scorer a reader naming no producer reads when the config has several, none named after
 * upstream's default producer (llm-d-router v0.10.0: a reader's key is
 * `PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName("")`, `approx-prefix-cache-producer`, which named approximate
 * producers do not write: `approximateprefix/plugin.go` WithNonEmptyProducerName(name)). A reader that requires the
 * match (`no-hit-lru-scorer`: Consumes() Required) gets the default producer made for it
 * (`datalayer/data_graph.go` CreateMissingDataProducers); `inflight-load-producer` reads it Optional
 * (`inflightload/producer.go`): without it, it counts the whole prompt.
 */
import { endpointPickerConfigNotes, parseEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';

const config = (extra: string, profileExtra: string) => `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
  name: short-prefix
  parameters:
    blockSize: 64
- type: prefix-cache-scorer
  name: long-prefix
  parameters:
    blockSize: 256
${extra}
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: max-score-picker
  - pluginRef: short-prefix
    weight: 2
  - pluginRef: long-prefix
    weight: 1
${profileExtra}
`;

test('two named approximate prefix scorers beside active-request-scorer: the config loads, and the default inflight-load-producer reads no match (an Optional read) instead of refusing the config', async () => {
  const parsed = parseEndpointPickerConfig(config('- type: active-request-scorer', '  - pluginRef: active-request-scorer'));
  expect(parsed.plugins.filter((p) => p.type === 'inflight-load-producer')).toHaveLength(1);
  expect(parsed.plugins.filter((p) => p.type === 'prefix-cache-scorer').map((p) => p.name)).toEqual(['short-prefix', 'long-prefix']);
  const scheduler = buildScheduler(parsed);
  await scheduler.plugins.close();
});

test('two named approximate prefix scorers beside a no-hit-lru-scorer naming none: the loader adds the default producer\'s scorer at weight 0, which the LRU reads', async () => {
  const parsed = parseEndpointPickerConfig(config('- type: no-hit-lru-scorer', '  - pluginRef: no-hit-lru-scorer\n    weight: 1'));
  expect(parsed.plugins.filter((p) => p.type === 'prefix-cache-scorer').map((p) => p.name)).toEqual(['short-prefix', 'long-prefix', 'prefix-cache-scorer']);
  expect(parsed.schedulingProfiles[0]!.plugins.find((r) => r.pluginRef === 'prefix-cache-scorer')).toEqual({ pluginRef: 'prefix-cache-scorer', weight: 0 });
  expect(endpointPickerConfigNotes(parsed).join('\n')).toMatch(/added a prefix-cache-scorer \(weight 0 in profile default\), which no-hit-lru-scorer "no-hit-lru-scorer" reads/);
  const scheduler = buildScheduler(parsed);
  await scheduler.plugins.close();
});

// The default-named approx-prefix-cache-producer listed (llm-d's form) and merged into two scorers: readers naming no
// producer read it, as upstream's read its key; no default scorer is added (CreateMissingDataProducers makes one only
// when none produces the key).
test('a listed default-named approx-prefix-cache-producer read by two scorers is what a no-hit-lru-scorer naming none reads', () => {
  const parsed = parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  parameters:
    blockSizeTokens: 32
    maxPrefixTokensToMatch: 4096
- type: prefix-cache-scorer
  name: prefix-a
- type: prefix-cache-scorer
  name: prefix-b
- type: no-hit-lru-scorer
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: max-score-picker
  - pluginRef: prefix-a
    weight: 2
  - pluginRef: prefix-b
    weight: 1
  - pluginRef: no-hit-lru-scorer
    weight: 1
`);
  expect(parsed.plugins.filter((p) => p.type === 'prefix-cache-scorer').map((p) => p.name)).toEqual(['prefix-a', 'prefix-b']);
  expect(parsed.plugins.find((p) => p.type === 'no-hit-lru-scorer')!.parameters).toMatchObject({ prefixMatchInfoProducerName: 'prefix-a' });
});
