/**
 * Which approximate prefix scorer a reader naming no producer reads (llm-d-router v0.10.0: a reader's key is
 * `PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName("")`, `approx-prefix-cache-producer`, which named approximate
 * producers do not write: `approximateprefix/plugin.go` WithNonEmptyProducerName(name)).
 * - Several scorers, none named after the default producer: a reader that requires the match (`no-hit-lru-scorer`:
 *   Consumes() Required) gets the default producer made for it (`datalayer/data_graph.go` CreateMissingDataProducers);
 *   `inflight-load-producer` reads it Optional (`inflightload/producer.go`): without it, it counts the whole prompt.
 * - The default-named producer listed (llm-d's group; GIE's group, which llm-d-router v0.10.0 decodes with the same
 *   loader, names its one producer by its type) and merged into scorers: every reader naming none reads it through
 *   the first of them, the loader's own `inflight-load-producer` included, and no default scorer is added.
 */
import { endpointPickerConfigNotes, parseEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';

const API_VERSIONS = { gie: 'inference.networking.x-k8s.io/v1alpha1', llmd: 'llm-d.ai/v1alpha1' } as const;

/**
 * Two approximate scorers, `prefix-a` (weight 2) and `prefix-b` (weight 1), each with `scorerParameters` when given,
 * after `producer` (a plugin entry, when given) and before `plugins`, whose `refs` join the default profile.
 */
function twoScorers(o: { group: keyof typeof API_VERSIONS; producer?: string; scorerParameters?: string; plugins: string[]; refs: string[] }): string {
  const scorer = (name: string) => `- type: prefix-cache-scorer\n  name: ${name}\n${o.scorerParameters !== undefined ? `  parameters: ${o.scorerParameters}\n` : ''}`;
  return `apiVersion: ${API_VERSIONS[o.group]}
kind: EndpointPickerConfig
plugins:
${o.producer ?? ''}${scorer('prefix-a')}${scorer('prefix-b')}${o.plugins.map((p) => `${p}\n`).join('')}- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: max-score-picker
  - pluginRef: prefix-a
    weight: 2
  - pluginRef: prefix-b
    weight: 1
${o.refs.map((r) => `  - pluginRef: ${r}\n    weight: 1\n`).join('')}`;
}

const scorerNames = (config: ReturnType<typeof parseEndpointPickerConfig>) => config.plugins.filter((p) => p.type === 'prefix-cache-scorer').map((p) => p.name);

test('two named approximate prefix scorers beside active-request-scorer: the config loads, and the default inflight-load-producer reads no match (an Optional read) instead of refusing the config', async () => {
  const parsed = parseEndpointPickerConfig(twoScorers({ group: 'gie', scorerParameters: '{ blockSize: 64 }', plugins: ['- type: active-request-scorer'], refs: ['active-request-scorer'] }));
  expect(parsed.plugins.filter((p) => p.type === 'inflight-load-producer')).toHaveLength(1);
  expect(scorerNames(parsed)).toEqual(['prefix-a', 'prefix-b']);
  const scheduler = buildScheduler(parsed);
  await scheduler.plugins.close();
});

test('two named approximate prefix scorers beside a no-hit-lru-scorer naming none: the loader adds the default producer\'s scorer at weight 0, which the LRU reads', async () => {
  const parsed = parseEndpointPickerConfig(twoScorers({ group: 'gie', scorerParameters: '{ blockSize: 64 }', plugins: ['- type: no-hit-lru-scorer'], refs: ['no-hit-lru-scorer'] }));
  expect(scorerNames(parsed)).toEqual(['prefix-a', 'prefix-b', 'prefix-cache-scorer']);
  expect(parsed.schedulingProfiles[0]!.plugins.find((r) => r.pluginRef === 'prefix-cache-scorer')).toEqual({ pluginRef: 'prefix-cache-scorer', weight: 0 });
  expect(endpointPickerConfigNotes(parsed).join('\n')).toMatch(/added a prefix-cache-scorer \(weight 0 in profile default\), which no-hit-lru-scorer "no-hit-lru-scorer" reads/);
  const scheduler = buildScheduler(parsed);
  await scheduler.plugins.close();
});

test('a listed default-named approx-prefix-cache-producer read by two scorers is what a no-hit-lru-scorer naming none reads', () => {
  const parsed = parseEndpointPickerConfig(twoScorers({
    group: 'llmd',
    producer: '- type: approx-prefix-cache-producer\n  parameters:\n    blockSizeTokens: 32\n    maxPrefixTokensToMatch: 4096\n',
    plugins: ['- type: no-hit-lru-scorer'], refs: ['no-hit-lru-scorer'],
  }));
  expect(scorerNames(parsed)).toEqual(['prefix-a', 'prefix-b']);
  expect(parsed.plugins.find((p) => p.type === 'no-hit-lru-scorer')!.parameters).toMatchObject({ prefixMatchInfoProducerName: 'prefix-a' });
});

test('GIE group: one listed approx-prefix-cache-producer read by two scorers is what a no-hit-lru-scorer naming none reads', async () => {
  const parsed = parseEndpointPickerConfig(twoScorers({
    group: 'gie', producer: '- type: approx-prefix-cache-producer\n  parameters:\n    blockSize: 32\n', plugins: ['- type: no-hit-lru-scorer'], refs: ['no-hit-lru-scorer'],
  }));
  expect(scorerNames(parsed)).toEqual(['prefix-a', 'prefix-b']);
  const scheduler = buildScheduler(parsed);
  try {
    expect((scheduler.plugin('no-hit-lru-scorer') as unknown as { prefix?: { name: string } }).prefix?.name).toBe('prefix-a');
  } finally {
    await scheduler.plugins.close();
  }
});

test.each([true, false])('the default-named producer merged into two scorers, an inflight-load-producer listed: %s — it discounts by prefix-a, the scorer doing the default producer\'s work', async (listed) => {
  const scheduler = buildScheduler(parseEndpointPickerConfig(twoScorers({
    group: 'llmd', producer: '- type: approx-prefix-cache-producer\n',
    plugins: ['- type: active-request-scorer', ...(listed ? ['- type: inflight-load-producer'] : [])], refs: ['active-request-scorer'],
  })));
  try {
    const inflight = scheduler.plugin('inflight-load-producer') as unknown as { prefixScorer?: { name: string } };
    expect(inflight).toBeDefined();
    expect(inflight.prefixScorer?.name).toBe('prefix-a');
  } finally {
    await scheduler.plugins.close();
  }
});

// A reader's parameters that are not a map, or a producer name that is not a string, are refused whether or not the
// default producer is listed and merged (llm-d-router v0.10.0 decodes every plugin's parameters strictly:
// plugin/registry.go StrictDecoder); the merge's renaming of readers naming no producer must not mask them.
describe('malformed reader parameters beside a merged default producer', () => {
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
  const withoutProducer = (text: string) => text.replace('- type: approx-prefix-cache-producer\n', '');

  test.each(['[1]', '"lruSize"', '7'])('a no-hit-lru-scorer whose parameters are not a map (%s) is refused, merged producer or not', (p) => {
    expect(() => parseEndpointPickerConfig(withoutProducer(doc(p)))).toThrow();
    expect(() => parseEndpointPickerConfig(doc(p))).toThrow();
  });

  test('a no-hit-lru-scorer whose prefixMatchInfoProducerName is not a string is refused, merged producer or not', () => {
    const bad = doc('{ prefixMatchInfoProducerName: 5 }');
    expect(() => parseEndpointPickerConfig(withoutProducer(bad))).toThrow(/prefixMatchInfoProducerName/);
    expect(() => parseEndpointPickerConfig(bad)).toThrow(/prefixMatchInfoProducerName/);
  });
});
