/**
 * A reader's parameters that are not a map, or a producer name that is not a string, are refused whether or not the
 * default approx-prefix-cache-producer is listed and merged (llm-d-router v0.10.0 decodes every plugin's parameters
 * strictly: plugin/registry.go StrictDecoder); the merge's renaming of readers naming no producer must not mask them.
 */
import { parseEndpointPickerConfig } from '../src/config';
const doc = (params: string) => `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
- type: prefix-cache-scorer
- type: no-hit-lru-scorer
  parameters: ${params}
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: no-hit-lru-scorer
    weight: 1
`;
test.each(['[1]', '"lruSize"', '7'])('a no-hit-lru-scorer whose parameters are not a map (%s) is refused, merged producer or not', (p) => {
  expect(() => parseEndpointPickerConfig(doc(p).replace('- type: approx-prefix-cache-producer\n', ''))).toThrow();
  expect(() => parseEndpointPickerConfig(doc(p))).toThrow();
});

test('a no-hit-lru-scorer whose prefixMatchInfoProducerName is not a string is refused, merged producer or not', () => {
  const bad = doc('{ prefixMatchInfoProducerName: 5 }');
  expect(() => parseEndpointPickerConfig(bad.replace('- type: approx-prefix-cache-producer\n', ''))).toThrow(/prefixMatchInfoProducerName/);
  expect(() => parseEndpointPickerConfig(bad)).toThrow(/prefixMatchInfoProducerName/);
});
