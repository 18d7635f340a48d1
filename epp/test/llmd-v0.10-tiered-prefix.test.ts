/**
 * llm-d-router v0.10.0's named approximate prefix producers: each `approx-prefix-cache-producer` writes its match info
 * under a data key carrying its name (`pkg/epp/framework/interface/plugin/datakey.go` WithNonEmptyProducerName;
 * `requestcontrol/dataproducer/approximateprefix/plugin.go` newDataProducer), a `prefix-cache-scorer` reads the one its
 * `prefixMatchInfoProducerName` names, else the default-named `approx-prefix-cache-producer`
 * (`datalayer/attribute/prefix/data_types.go`), which the runner makes with its defaults when it is not listed
 * (`pkg/epp/datalayer/data_graph.go` CreateMissingDataProducers). Its guide config "tiered-prefix-cache-cpu"
 * (`test/integration/epp/wellknown_configs_test.go` @ v0.10.0) scores a GPU tier and a CPU tier so. In kvroute each
 * scorer holds its own index, built from the parameters of the producer it reads (`src/config/producer-form.ts`).
 */
import { endpointPickerConfigNotes, parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, type CycleContext } from '../src/scheduling/framework';
import type { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { buildScheduler } from '../src/scheduling/scheduler';
import { configErrorOf } from './config-error';
import { LLMD_APPROX_PRODUCER_README_NAMED, LLMD_TIERED_PREFIX_CACHE_CPU, LLMD_TIERED_PREFIX_CACHE_CPU_EXPECTED_PLUGINS } from './upstream-configs';

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const GIE = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';

const pod = (name: string): EndpointSnapshot => ({
  endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
  metrics: { ...EMPTY_METRICS, updateTime: Date.now() },
  activeRequests: 0,
});
const cycle = (prompt: string): CycleContext => ({ request: { requestId: 'r', model: 'm', prompt, headers: {} }, state: new CycleState() });
/** A prompt of `blocks` 64-character blocks (the scorers' block while the pods' own block size is unknown), from `seed`. */
// Blocks of llm-d-router v0.10.0's smallest size, 64 tokens (256 characters at its 4 a token), which its producers hash.
const prompt = (seed: string, blocks: number) => Array.from({ length: blocks }, (_, i) => `${seed} block ${i} `.padEnd(256, '.')).join('');
const parametersOf = (yaml: string, name: string) => parseEndpointPickerConfig(yaml).plugins.find((p) => p.name === name)?.parameters as Record<string, unknown> | undefined;

describe('llm-d-router v0.10.0 "tiered-prefix-cache-cpu" (test/integration/epp/wellknown_configs_test.go)', () => {
  test('loads verbatim: each upstream plugin is there by name and type, or is the producer whose parameters the scorer reading it carries', () => {
    const config = parseEndpointPickerConfig(LLMD_TIERED_PREFIX_CACHE_CPU);
    const byName = new Map(config.plugins.map((p) => [p.name, p]));
    const readBy: Record<string, string> = { 'approx-prefix-cache-producer': 'gpu-prefix-cache-scorer', 'cpu-prefix-cache-producer': 'cpu-prefix-cache-scorer' };
    for (const [name, type] of LLMD_TIERED_PREFIX_CACHE_CPU_EXPECTED_PLUGINS) {
      if (type === 'approx-prefix-cache-producer') {
        expect(byName.has(name)).toBe(false);
        expect(byName.get(readBy[name]!)!.type).toBe('prefix-cache-scorer');
      } else {
        expect([name, byName.get(name)?.type]).toEqual([name, type]);
      }
    }
    // The default producer's defaults (autoTune, 31,250 entries, llm-d's 128K-token window) and the CPU producer's own.
    expect(byName.get('gpu-prefix-cache-scorer')!.parameters).toMatchObject({ autoTune: true, lruCapacityPerServer: 31250, maxPrefixTokensToMatch: 131072, matchLengthWeight: 0 });
    expect(byName.get('cpu-prefix-cache-scorer')!.parameters).toMatchObject({ autoTune: false, tuneBlockSize: false, lruCapacityPerServer: 1000, maxPrefixTokensToMatch: 131072, matchLengthWeight: 0 });
    expect(config.schedulingProfiles[0]!.plugins.map((r) => [r.pluginRef, r.weight])).toEqual([
      ['queue-scorer', 2], ['kv-cache-utilization-scorer', 2], ['gpu-prefix-cache-scorer', 1], ['cpu-prefix-cache-scorer', 1], ['max-score-picker', undefined],
    ]);
    // The normalized form renders and loads back to itself.
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
  });

  test('builds two scorers with separate indexes of the producers\' sizes: the CPU one keeps 1,000 blocks a server and forgets the older prompt, the GPU one keeps both', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(LLMD_TIERED_PREFIX_CACHE_CPU));
    const gpu = scheduler.plugin('gpu-prefix-cache-scorer') as PrefixCacheScorer;
    const cpu = scheduler.plugin('cpu-prefix-cache-scorer') as PrefixCacheScorer;
    expect(gpu.type).toBe('prefix-cache-scorer');
    expect(cpu.type).toBe('prefix-cache-scorer');
    expect(gpu.index).not.toBe(cpu.index);
    const a = pod('a');
    const [first, second] = [prompt('first', 600), prompt('second', 600)];
    // Both prompts served by the one pod, through the scheduler (both scorers record every pick of the profile).
    expect(scheduler.schedule(cycle(first).request, [a]).target.endpoint.key).toBe('a:8000');
    scheduler.schedule(cycle(second).request, [a]);
    expect([gpu.index.capacityOf('a:8000'), cpu.index.capacityOf('a:8000')]).toEqual([31250, 1000]);
    expect([gpu.index.size, cpu.index.size]).toEqual([1200, 1000]);
    // The CPU index evicted the first prompt's oldest blocks, its head: it no longer matches at all there.
    expect([gpu.score(cycle(first), [a]), cpu.score(cycle(first), [a])]).toEqual([[1], [0]]);
    expect([gpu.score(cycle(second), [a]), cpu.score(cycle(second), [a])]).toEqual([[1], [1]]);
    // Weighted in the profile (queue 2, kv 2, gpu 1, cpu 1; b idle too): the first prompt lost the CPU share. (The second
    // is scheduled first: recording the first prompt again would evict the second's head from the CPU index.)
    const b = pod('b');
    const again = scheduler.schedule(cycle(second).request, [a, b]);
    expect(again.scores.get('a:8000')! - again.scores.get('b:8000')!).toBeCloseTo(2, 9);
    const { scores } = scheduler.schedule(cycle(first).request, [a, b]);
    expect(scores.get('a:8000')! - scores.get('b:8000')!).toBeCloseTo(1, 9);
  });
});

describe('named approx-prefix-cache-producers under llm-d\'s group', () => {
  test('the README\'s two named producers: each scorer hashes with its own producer\'s block size', () => {
    const config = parseEndpointPickerConfig(LLMD_APPROX_PRODUCER_README_NAMED);
    expect(config.plugins.filter((p) => p.type === 'prefix-cache-scorer').map((p) => [p.name, (p.parameters as { hashBlockSize: number }).hashBlockSize]))
      .toEqual([['gpuPrefixScorer', 64], ['cpuPrefixScorer', 256]]);
    expect(config.plugins.some((p) => (p.type as string) === 'approx-prefix-cache-producer')).toBe(false);
    const scheduler = buildScheduler(config);
    expect((scheduler.plugin('gpuPrefixScorer') as PrefixCacheScorer).index).not.toBe((scheduler.plugin('cpuPrefixScorer') as PrefixCacheScorer).index);
  });

  test('a scorer naming none reads the default-named producer when it is listed, its own parameters (or the defaults) when not; naming the default unlisted, or naming it "", is the defaults', () => {
    const withDefault = `${LLMD}plugins:\n- {type: approx-prefix-cache-producer, parameters: {lruCapacityPerServer: 500}}\n- {type: prefix-cache-scorer}\n`;
    expect(parametersOf(withDefault, 'prefix-cache-scorer')).toMatchObject({ lruCapacityPerServer: 500 });
    expect(parametersOf(`${LLMD}plugins:\n- {type: prefix-cache-scorer, parameters: {lruCapacityPerServer: 700}}\n`, 'prefix-cache-scorer')).toMatchObject({ lruCapacityPerServer: 700 });
    const defaults = parametersOf(`${LLMD}plugins:\n- {type: prefix-cache-scorer}\n`, 'prefix-cache-scorer');
    expect(defaults).toMatchObject({ lruCapacityPerServer: 31250, autoTune: true });
    expect(parametersOf(`${LLMD}plugins:\n- {type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: approx-prefix-cache-producer}}\n`, 'prefix-cache-scorer')).toEqual(defaults);
    expect(parametersOf(`${LLMD}plugins:\n- {type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: ""}}\n`, 'prefix-cache-scorer')).toEqual(defaults);
    // "" reads the default-named producer when listed (DataKey.WithNonEmptyProducerName keeps the default).
    expect(parametersOf(withDefault.replace('{type: prefix-cache-scorer}', '{type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: ""}}'), 'prefix-cache-scorer'))
      .toMatchObject({ lruCapacityPerServer: 500 });
  });

  test('several scorers may read one producer (each gets its parameters); a scorer keeps its own match-length parameters', () => {
    const yaml = `${LLMD}plugins:
- {type: approx-prefix-cache-producer, name: p, parameters: {lruCapacityPerServer: 2000}}
- {type: prefix-cache-scorer, name: s1, parameters: {prefixMatchInfoProducerName: p}}
- {type: prefix-cache-scorer, name: s2, parameters: {prefixMatchInfoProducerName: p, matchLengthWeight: 0.5, matchLengthScaleTokens: 4096}}
`;
    expect(parametersOf(yaml, 's1')).toMatchObject({ lruCapacityPerServer: 2000, matchLengthWeight: 0, matchLengthScaleTokens: 8192 });
    expect(parametersOf(yaml, 's2')).toMatchObject({ lruCapacityPerServer: 2000, matchLengthWeight: 0.5, matchLengthScaleTokens: 4096 });
  });

  test('the precise merge leaves references to approximate producers alone: approximate and precise producers side by side', () => {
    const yaml = LLMD_TIERED_PREFIX_CACHE_CPU.replace('- type: queue-scorer\n', `- type: precise-prefix-cache-producer
  name: kv-events
  parameters: {kvEventsConfig: {discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0"}}
- type: prefix-cache-scorer
  name: precise-scorer
  parameters: {prefixMatchInfoProducerName: kv-events, matchLengthWeight: 0.25}
- type: queue-scorer
`);
    // Parsed, not built: building would start the precise scorer's subscription.
    const config = parseEndpointPickerConfig(yaml);
    expect(config.plugins.filter((p) => p.type.endsWith('prefix-cache-scorer')).map((p) => [p.name, p.type])).toEqual([
      ['precise-scorer', 'precise-prefix-cache-scorer'], ['gpu-prefix-cache-scorer', 'prefix-cache-scorer'], ['cpu-prefix-cache-scorer', 'prefix-cache-scorer'],
    ]);
    expect(config.plugins.find((p) => p.name === 'precise-scorer')!.parameters).toMatchObject({ matchLengthWeight: 0.25, matchLengthScaleTokens: 8192 });
    expect(config.plugins.find((p) => p.name === 'cpu-prefix-cache-scorer')!.parameters).toMatchObject({ lruCapacityPerServer: 1000 });
  });

  const TIERED = LLMD_TIERED_PREFIX_CACHE_CPU;
  test.each<[string, string, string]>([
    ['a reference to a name that is no producer', TIERED.replace('prefixMatchInfoProducerName: cpu-prefix-cache-producer', 'prefixMatchInfoProducerName: cpu-cache'),
      'plugins[5].parameters.prefixMatchInfoProducerName: no approx-prefix-cache-producer or precise-prefix-cache-producer named "cpu-cache"; '
        + 'approx-prefix-cache-producers: cpu-prefix-cache-producer; precise-prefix-cache-producers: (none) '
        + '(approx-prefix-cache-producer may also be named unlisted: llm-d-router v0.10.0 makes that one with its defaults)'],
    ['a reference to a plugin that is no producer', TIERED.replace('prefixMatchInfoProducerName: cpu-prefix-cache-producer', 'prefixMatchInfoProducerName: queue-scorer'),
      'plugins[5].parameters.prefixMatchInfoProducerName: "queue-scorer" is a queue-scorer (plugins[2]), not a producer kvroute\'s prefix scorer reads; '
        + 'approx-prefix-cache-producers: cpu-prefix-cache-producer; precise-prefix-cache-producers: (none)'],
    ['a reference to no plugin', TIERED.replace('prefixMatchInfoProducerName: cpu-prefix-cache-producer', 'prefixMatchInfoProducerName: nope'),
      'plugins[5].parameters.prefixMatchInfoProducerName: no approx-prefix-cache-producer or precise-prefix-cache-producer named "nope"; '
        + 'approx-prefix-cache-producers: cpu-prefix-cache-producer; precise-prefix-cache-producers: (none) '
        + '(approx-prefix-cache-producer may also be named unlisted: llm-d-router v0.10.0 makes that one with its defaults)'],
    ['a reference that is no string', TIERED.replace('prefixMatchInfoProducerName: cpu-prefix-cache-producer', 'prefixMatchInfoProducerName: [cpu-prefix-cache-producer]'),
      'plugins[5].parameters.prefixMatchInfoProducerName: must be the name of an approx-prefix-cache-producer or a precise-prefix-cache-producer plugin, got a list'],
    ['estimate parameters on a scorer that reads a producer', TIERED.replace('    prefixMatchInfoProducerName: cpu-prefix-cache-producer\n', '    prefixMatchInfoProducerName: cpu-prefix-cache-producer\n    lruCapacityPerServer: 50\n'),
      'plugins[5].parameters.lruCapacityPerServer: a prefix-cache-scorer reading approx-prefix-cache-producer "cpu-prefix-cache-producer" (plugins[1]) takes its estimate parameters (lruCapacityPerServer) '
        + 'from the producer; llm-d-router v0.10.0\'s scorer has only prefixMatchInfoProducerName, matchLengthWeight and matchLengthScaleTokens: set them on plugins[1] or drop them'],
    ['estimate parameters on a scorer naming the default producer unlisted', `${LLMD}plugins:\n- {type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: approx-prefix-cache-producer, autoTune: false}}\n`,
      'plugins[0].parameters.autoTune: a prefix-cache-scorer reading the default approx-prefix-cache-producer, made with its defaults takes its estimate parameters (autoTune) from the producer; '
        + 'llm-d-router v0.10.0\'s scorer has only prefixMatchInfoProducerName, matchLengthWeight and matchLengthScaleTokens: list an approx-prefix-cache-producer with them, or drop them'],
    ['a profile referencing a producer', TIERED.replace('  - pluginRef: queue-scorer\n', '  - pluginRef: cpu-prefix-cache-producer\n  - pluginRef: queue-scorer\n'),
      'schedulingProfiles[0].plugins[0].pluginRef: "cpu-prefix-cache-producer" is an approx-prefix-cache-producer, which runs before scheduling; reference the prefix-cache-scorer that reads it instead'],
    ['two producers of one name', TIERED.replace('- type: queue-scorer\n', '- type: approx-prefix-cache-producer\n  name: cpu-prefix-cache-producer\n- type: queue-scorer\n'),
      'plugins[2].name: duplicate plugin name "cpu-prefix-cache-producer" (also plugins[1]); the name defaults to the type, so give one of them a distinct name'],
    ['a producer named as a scorer', TIERED.replace('name: cpu-prefix-cache-producer\n', 'name: gpu-prefix-cache-scorer\n').replace('prefixMatchInfoProducerName: cpu-prefix-cache-producer', 'prefixMatchInfoProducerName: gpu-prefix-cache-scorer'),
      'plugins[4].name: duplicate plugin name "gpu-prefix-cache-scorer" (also plugins[1]); the name defaults to the type, so give one of them a distinct name'],
    ['a match-length parameter on the producer', TIERED.replace('    autoTune: false\n', '    autoTune: false\n    matchLengthWeight: 0.5\n'),
      'plugins[1].parameters.matchLengthWeight: is a prefix-cache-scorer parameter (llm-d-router v0.10.0 scheduling/scorer/prefix/plugin.go), not the approx-prefix-cache-producer\'s: set it on the scorer that reads this producer'],
    // Errors in a producer's parameters name the producer's field, not the scorer's that carries them after the merge.
    // (0 is upstream's default, approximateprefix/plugin.go makeserver; a negative size is no size.)
    ['a bad producer parameter', TIERED.replace('lruCapacityPerServer: 1000', 'lruCapacityPerServer: -1'),
      'plugins[1].parameters.lruCapacityPerServer: must be an integer >= 0, got -1'],
    ['an unknown producer parameter', TIERED.replace('lruCapacityPerServer: 1000', 'lruCapacity: 1000'),
      'plugins[1].parameters.lruCapacity: unknown field; allowed: mode, hashBlockSize, blockSize, blockSizeTokens, maxPrefixTokensToMatch, maxPrefixBlocksToMatch, minBlockSizeTokens, partialLastBlock, autoTune, tuneBlockSize, '
        + 'capacityFactor, learnCharactersPerToken, lruCapacityPerServer, maxIndexEntries, matchLengthWeight, matchLengthScaleTokens'],
    // And errors found after the producers are merged away name the plugins as written.
    ['a bad weight on the scorer after the producer', TIERED.replace('    prefixMatchInfoProducerName: cpu-prefix-cache-producer\n', '    prefixMatchInfoProducerName: cpu-prefix-cache-producer\n    matchLengthWeight: 2\n'),
      'plugins[5].parameters.matchLengthWeight: matchLengthWeight must be between 0.0 and 1.0, got 2.000000'],
    ['an unknown type after the producer', TIERED.replace('- type: queue-scorer\n', '- type: queue-scorr\n'),
      'plugins[2].type: unknown plugin type "queue-scorr"'],
  ])('%s is an error naming the field', (_case, yaml, message) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(yaml)).startsWith(message)).toBe(true);
  });

  it('a listed producer no scorer names is skipped with a note, as upstream runs it for nobody (a scorer naming none reads the default-named one)', () => {
    const config = parseEndpointPickerConfig(TIERED.replace('  parameters:\n    prefixMatchInfoProducerName: cpu-prefix-cache-producer\n', ''));
    expect(config.plugins.some((p) => p.name === 'cpu-prefix-cache-producer')).toBe(false);
    expect(endpointPickerConfigNotes(config)).toContain(
      'plugins[1]: approx-prefix-cache-producer "cpu-prefix-cache-producer" is read by no prefix-cache-scorer and was skipped (a prefix-cache-scorer naming no producer '
        + 'reads the one named approx-prefix-cache-producer, llm-d-router v0.10.0\'s default; to score from this one, set its parameters.prefixMatchInfoProducerName: cpu-prefix-cache-producer)',
    );
    // Both scorers now read the default producer: the defaults' capacity, not the skipped producer's 1,000.
    for (const name of ['gpu-prefix-cache-scorer', 'cpu-prefix-cache-scorer']) {
      expect(config.plugins.find((p) => p.name === name)!.parameters).toMatchObject({ lruCapacityPerServer: 31250 });
    }
  });
});

describe('GIE\'s group keeps GIE v1.5.0\'s one unnamed producer (datalayer/attribute/prefix/data_types.go: one PrefixCacheMatchInfoKey; scorer/prefix/plugin.go ignores its parameters)', () => {
  const GIE_TIERED = LLMD_TIERED_PREFIX_CACHE_CPU.replace(LLMD, GIE);

  test.each<[string, string, string]>([
    ['the tiered config: its scorer naming the producer', GIE_TIERED,
      'plugins[5].parameters.prefixMatchInfoProducerName: producer names are llm-d-router v0.10.0\'s (apiVersion: llm-d.ai/v1alpha1); GIE v1.5.0\'s prefix-cache-scorer reads the one approx-prefix-cache-producer and ignores its parameters: drop it, or write the config in llm-d\'s group'],
    ['two producers', GIE_TIERED.replace('- type: queue-scorer\n', '- type: approx-prefix-cache-producer\n  name: gpu\n- type: queue-scorer\n'),
      'plugins[2]: a second approx-prefix-cache-producer: GIE v1.5.0\'s prefix-cache-scorer reads the one producer; several, each named by a scorer\'s prefixMatchInfoProducerName, are llm-d-router v0.10.0\'s (apiVersion: llm-d.ai/v1alpha1)'],
    ['naming the default producer unlisted', `${GIE}plugins:\n- {type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: approx-prefix-cache-producer}}\n`,
      'plugins[0].parameters.prefixMatchInfoProducerName: no approx-prefix-cache-producer or precise-prefix-cache-producer named "approx-prefix-cache-producer"; approx-prefix-cache-producers: (none); precise-prefix-cache-producers: (none)'],
  ])('%s is refused', (_case, yaml, message) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(yaml))).toBe(message);
  });

  test('one custom-named producer is still read by every scorer, which naming none there means', () => {
    const yaml = `${GIE}plugins:\n- {type: approx-prefix-cache-producer, name: mine, parameters: {lruCapacityPerServer: 500}}\n- {type: prefix-cache-scorer, name: a}\n- {type: prefix-cache-scorer, name: b}\n`;
    expect([parametersOf(yaml, 'a'), parametersOf(yaml, 'b')]).toEqual([expect.objectContaining({ lruCapacityPerServer: 500, maxPrefixTokensToMatch: 0 }), expect.objectContaining({ lruCapacityPerServer: 500 })]);
    // Under llm-d's group the same producer is read by no scorer (they read the default-named one): skipped, with a note.
    const llmd = parseEndpointPickerConfig(yaml.replace(GIE, LLMD));
    expect(endpointPickerConfigNotes(llmd).some((n) => n.startsWith('plugins[0]: approx-prefix-cache-producer "mine" is read by no prefix-cache-scorer and was skipped'))).toBe(true);
    expect(llmd.plugins.find((p) => p.name === 'a')!.parameters).toMatchObject({ lruCapacityPerServer: 31250 });
  });
});
