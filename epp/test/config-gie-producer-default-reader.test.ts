/**
 * GIE's group: one approx-prefix-cache-producer (any name) whose parameters every prefix-cache-scorer takes (GIE v1.5.0
 * has one match-info key). A reader naming no producer reads that producer's match, as in llm-d's group when the
 * default-named producer is listed (60a557c): it should not get a second, default-parameter scorer added.
 */
import { parseEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';

test('GIE group: one listed approx-prefix-cache-producer read by two scorers is what a no-hit-lru-scorer naming none reads', async () => {
  const parsed = parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  parameters:
    blockSize: 32
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
  const scheduler = buildScheduler(parsed);
  try {
    expect((scheduler.plugin('no-hit-lru-scorer') as unknown as { prefix?: { name: string } }).prefix?.name).toBe('prefix-a');
  } finally {
    await scheduler.plugins.close();
  }
});
