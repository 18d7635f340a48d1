/**
 * The `latency-scorer`'s llm-d-router v0.10.0 fields `latencyPredictionInfoProducerName` and
 * `prefixMatchInfoProducerName` (`pkg/epp/framework/plugins/scheduling/scorer/latency/plugin.go` Config and Factory @
 * v0.10.0: each keys the data the scorer reads, `LatencyPredictionInfoDataKey` and `PrefixCacheMatchInfoDataKey`,
 * `.WithNonEmptyProducerName(name)`; unnamed, the latency key's producer is `predicted-latency-producer`,
 * `predictedlatency/constants/constants.go`). Upstream's loader fails a named key no plugin produces
 * (`datalayer/data_graph.go` CreateMissingDataProducers: "no default producer found for missing data key").
 */
import { parseEndpointPickerConfig, resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import type { LatencyScorer } from '../src/scheduling/plugins/latency-scorer';
import type { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';
import { configErrorOf } from './config-error';

function endpoint(name: string): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: 1, kvCacheUsagePercent: 0.5, runningQueueSize: 1 },
    activeRequests: 0,
  };
}

const pods = [endpoint('a'), endpoint('b')];
const prompt = 'a shared document '.repeat(400);
const request = (id: string): LLMRequest => ({ requestId: id, model: 'm', prompt, headers: {}, attributes: new CycleState() });

/** llm-d-shaped: two approximate prefix scorers, two producers each reading one, and the latency-scorer with `scorerParameters`. */
function twoProducers(scorerParameters: string, names: [string, string] = ['pa', 'pb']): string {
  return `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
  name: px
- type: prefix-cache-scorer
  name: py
- type: predicted-latency-producer
  name: ${names[0]}
  parameters:
    prefixMatchInfoProducerName: px
- type: predicted-latency-producer
  name: ${names[1]}
  parameters:
    prefixMatchInfoProducerName: py
- type: latency-scorer
${scorerParameters}- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: ${names[0]}
  - pluginRef: ${names[1]}
  - pluginRef: latency-scorer
  - pluginRef: max-score-picker
`;
}

/** The prompt held on `a` by px's index and on `b` by py's, as their picks would have left it. */
function seed(scheduler: Scheduler): void {
  for (const [scorer, pod] of [['px', pods[0]!], ['py', pods[1]!]] as const) {
    const prefix = scheduler.plugin(scorer) as unknown as PrefixCacheScorer;
    const cycle = { request: request(`seed-${scorer}`), state: new CycleState() };
    prefix.matchRatios(cycle, [pod]);
    prefix.learnPick(cycle, pod);
  }
}

function scoresAndPick(config: string): { scores: number[]; pick: string } {
  const scheduler = buildScheduler(parseEndpointPickerConfig(config), { now: () => 1_000_000, random: () => 0.5 });
  seed(scheduler);
  const scorer = scheduler.plugin('latency-scorer') as LatencyScorer;
  const scores = scorer.score({ request: request('scored'), state: new CycleState() }, pods);
  const pick = scheduler.schedule(request('picked'), pods).target.endpoint.name;
  return { scores, pick };
}

describe('latency-scorer latencyPredictionInfoProducerName (llm-d-router v0.10.0 scorer/latency/plugin.go)', () => {
  test('the named producer\'s predictions decide the scores, not the other\'s', () => {
    // pa reads px (prompt on a: a predicted faster), pb reads py (prompt on b). No SLO: every headroom 0 − predicted,
    // nothing dispatched, so min-max over both: the faster 1.01, the slower 0.01 (scoreBucket).
    expect(scoresAndPick(twoProducers('  parameters:\n    latencyPredictionInfoProducerName: pa\n'))).toEqual({ scores: [1.01, 0.01], pick: 'a' });
    expect(scoresAndPick(twoProducers('  parameters:\n    latencyPredictionInfoProducerName: pb\n'))).toEqual({ scores: [0.01, 1.01], pick: 'b' });
  });

  test('unnamed among several: the producer named predicted-latency-producer, the default key\'s (LatencyPredictionInfoDataKey)', () => {
    expect(scoresAndPick(twoProducers('', ['other', 'predicted-latency-producer'])).pick).toBe('b');
    expect(scoresAndPick(twoProducers('', ['predicted-latency-producer', 'other'])).pick).toBe('a');
  });

  test('unnamed among several, none named predicted-latency-producer: refused, naming them', () => {
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(twoProducers('')))))
      .toBe('latency-scorer.parameters.latencyPredictionInfoProducerName: the config has several predicted-latency-producers (pa, pb) and none named '
        + '"predicted-latency-producer", the one llm-d-router v0.10.0\'s latency-scorer reads when it names none (upstream would add a default-configured one of that name): name the one to score');
  });

  test('a name that is no plugin, or no producer, is refused naming the field', () => {
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(twoProducers('  parameters:\n    latencyPredictionInfoProducerName: nope\n')))))
      .toBe('latency-scorer.parameters.latencyPredictionInfoProducerName: no plugin named "nope"');
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(twoProducers('  parameters:\n    latencyPredictionInfoProducerName: px\n')))))
      .toBe('latency-scorer.parameters.latencyPredictionInfoProducerName: "px" is a prefix-cache-scorer; name a predicted-latency-producer');
  });

  test('not a string: refused', () => {
    expect(configErrorOf(() => parseEndpointPickerConfig(twoProducers('  parameters:\n    latencyPredictionInfoProducerName: 3\n'))))
      .toBe('plugins[4].parameters.latencyPredictionInfoProducerName: must be a plugin name, got 3');
  });

  test('a producer predicting with another latency-scorer: each profile listing this one must list that scorer (its commits are the queue)', () => {
    const config = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: predicted-latency-producer
  parameters:
    latencyScorerName: model
- type: latency-scorer
  name: model
- type: latency-scorer
  parameters:
    latencyPredictionInfoProducerName: predicted-latency-producer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
  - pluginRef: latency-scorer
  - pluginRef: max-score-picker
`;
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(config)))).toMatch(
      /^schedulingProfiles\[0\]\.plugins: lists "latency-scorer" \(latency-scorer\), which scores the predictions of "predicted-latency-producer", made with "model", .*list "model" in profile "default" too/);
    expect(() => buildScheduler(parseEndpointPickerConfig(config.replace('  - pluginRef: max-score-picker\n', '  - pluginRef: model\n    weight: 0\n  - pluginRef: max-score-picker\n')))).not.toThrow();
  });
});

describe('latency-scorer prefixMatchInfoProducerName (llm-d-router v0.10.0 scorer/latency/plugin.go: the prefix match it reads without predictions)', () => {
  /** No producer: the scorer's own prediction. The profile lists py then px, so the match the profile publishes is px's. */
  const ownScore = (scorerParameters: string) => `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
  name: px
- type: prefix-cache-scorer
  name: py
- type: latency-scorer
${scorerParameters}- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: py
    weight: 0
  - pluginRef: px
    weight: 0
  - pluginRef: latency-scorer
  - pluginRef: max-score-picker
`;

  test('the scorer\'s own prediction reads the named producer\'s match, not the one its profile published', () => {
    const unnamed = scoresAndPick(ownScore(''));
    expect(unnamed.pick).toBe('a');
    expect(unnamed.scores[0]).toBe(1);
    const named = scoresAndPick(ownScore('  parameters:\n    prefixMatchInfoProducerName: py\n'));
    expect(named.pick).toBe('b');
    expect(named.scores[1]).toBe(1);
    expect(named.scores[0]).toBeLessThan(0.5);
  });

  test('a name that is no plugin, or no prefix scorer, is refused naming the field; not a string too', () => {
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(ownScore('  parameters:\n    prefixMatchInfoProducerName: nope\n')))))
      .toBe('latency-scorer.parameters.prefixMatchInfoProducerName: no plugin named "nope"');
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(ownScore('  parameters:\n    prefixMatchInfoProducerName: max-score-picker\n')))))
      .toBe('latency-scorer.parameters.prefixMatchInfoProducerName: "max-score-picker" is a max-score-picker; name a prefix-cache-scorer or precise-prefix-cache-scorer');
    expect(configErrorOf(() => parseEndpointPickerConfig(ownScore('  parameters:\n    prefixMatchInfoProducerName: [py]\n'))))
      .toMatch(/^plugins\[2\]\.parameters\.prefixMatchInfoProducerName: must be a plugin name, got /);
  });

  test('an approximate scorer its profile does not list (its index would never learn the profile\'s picks) is refused', () => {
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(ownScore('  parameters:\n    prefixMatchInfoProducerName: py\n').replace('  - pluginRef: py\n    weight: 0\n', ''))))).toMatch(
      /^schedulingProfiles\[0\]\.plugins: lists "latency-scorer" \(latency-scorer\), which reads the prefix match of "py", .*list "py" in profile "default" too/);
  });

  test('llm-d\'s producer form: naming an approx-prefix-cache-producer names the prefix-cache-scorer that does its work', () => {
    const config = parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  name: approx
- type: prefix-cache-scorer
  parameters:
    prefixMatchInfoProducerName: approx
- type: latency-scorer
  parameters:
    prefixMatchInfoProducerName: approx
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
  - pluginRef: latency-scorer
  - pluginRef: max-score-picker
`);
    const prefix = config.plugins.find((p) => p.type === 'prefix-cache-scorer')!;
    const latency = config.plugins.find((p) => p.type === 'latency-scorer')!;
    expect((latency.parameters as { prefixMatchInfoProducerName: string }).prefixMatchInfoProducerName).toBe(prefix.name);
    expect(() => buildScheduler(config)).not.toThrow();
  });
});

describe('latency-scorer producer names render as given', () => {
  test('given: kept, both; not given: absent (configs render unchanged)', () => {
    expect(resolvePluginParameters('latency-scorer', { latencyPredictionInfoProducerName: 'pa', prefixMatchInfoProducerName: 'px' }))
      .toMatchObject({ latencyPredictionInfoProducerName: 'pa', prefixMatchInfoProducerName: 'px' });
    const defaults = resolvePluginParameters('latency-scorer', undefined) as Record<string, unknown>;
    expect('latencyPredictionInfoProducerName' in defaults).toBe(false);
    expect('prefixMatchInfoProducerName' in defaults).toBe(false);
    const config = parseEndpointPickerConfig(twoProducers('  parameters:\n    latencyPredictionInfoProducerName: pa\n    prefixMatchInfoProducerName: px\n'));
    expect(config.plugins.find((p) => p.type === 'latency-scorer')!.parameters).toMatchObject({ latencyPredictionInfoProducerName: 'pa', prefixMatchInfoProducerName: 'px' });
  });
});

/**
 * The other readers of latency predictions, unnamed among several producers, read the default key's producer as the
 * scorer does: `slo-headroom-tier-filter` (`filter/sloheadroomtier/plugin.go`), `latency-slo-admitter`
 * (`admitter/latencyslo/plugin.go`) and `prefix-cache-affinity-filter` (`filter/prefixcacheaffinity/plugin.go`) @
 * llm-d-router v0.10.0 each key their read `LatencyPredictionInfoDataKey.WithNonEmptyProducerName(name)`.
 */
describe('readers of latency predictions, unnamed among several producers (llm-d-router v0.10.0)', () => {
  const READERS = `- type: slo-headroom-tier-filter
- type: latency-slo-admitter
- type: prefix-cache-affinity-filter
  parameters:
    prefixMatchInfoProducerName: px
    ttftSource: latencyPredictor
`;
  function withReaders(names: [string, string]): string {
    return twoProducers('', names).replace('- type: max-score-picker', `${READERS}- type: max-score-picker`)
      .replace('  - pluginRef: latency-scorer\n', '  - pluginRef: px\n  - pluginRef: slo-headroom-tier-filter\n  - pluginRef: prefix-cache-affinity-filter\n  - pluginRef: latency-scorer\n');
  }
  const producerOf = (scheduler: Scheduler, plugin: string): string => (scheduler.plugin(plugin) as unknown as { producer: { name: string } }).producer.name;

  test.each([
    [['other', 'predicted-latency-producer'] as [string, string]],
    [['predicted-latency-producer', 'other'] as [string, string]],
  ])('producers %j: the tier filter and the admitter read the one named predicted-latency-producer', (names) => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(withReaders(names)));
    expect(producerOf(scheduler, 'slo-headroom-tier-filter')).toBe('predicted-latency-producer');
    expect(producerOf(scheduler, 'latency-slo-admitter')).toBe('predicted-latency-producer');
  });

  test('the affinity filter\'s TTFT comes from the default-named producer, not the first one listed; with none of that name the choice is refused', () => {
    // Only the affinity filter reads predictions here. The default-named producer streams (its TTFT is the first
    // token's) and the other does not (end to end), which shows in the filter.
    const affinityOnly = (names: [string, string]): string => withReaders(names)
      .replace('- type: slo-headroom-tier-filter\n- type: latency-slo-admitter\n', '')
      .replace('  - pluginRef: slo-headroom-tier-filter\n', '')
      .replace(`  name: ${names[1]}\n  parameters:\n`, `  name: ${names[1]}\n  parameters:\n    streamingMode: ${names[1] === 'predicted-latency-producer'}\n`)
      .replace(`  name: ${names[0]}\n  parameters:\n`, `  name: ${names[0]}\n  parameters:\n    streamingMode: ${names[0] === 'predicted-latency-producer'}\n`);
    const endToEnd = (names: [string, string]): boolean => (buildScheduler(parseEndpointPickerConfig(affinityOnly(names))).plugin('prefix-cache-affinity-filter') as unknown as { endToEnd: boolean }).endToEnd;
    expect(endToEnd(['other', 'predicted-latency-producer'])).toBe(false);
    expect(endToEnd(['predicted-latency-producer', 'other'])).toBe(false);
    // The scorer names its producer, so the only choice left open is the filter's.
    const scorerNamed = affinityOnly(['pa', 'pb']).replace('- type: latency-scorer\n', '- type: latency-scorer\n  parameters:\n    latencyPredictionInfoProducerName: pa\n');
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(scorerNamed))))
      .toBe('prefix-cache-affinity-filter.parameters.latencyPredictionInfoProducerName: the config has several (pa, pb) and none named "predicted-latency-producer", '
        + 'the one llm-d-router v0.10.0 reads when a reader names none: name the one to read');
  });
});
