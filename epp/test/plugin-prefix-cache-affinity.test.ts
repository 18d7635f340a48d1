/**
 * `prefix-cache-affinity-filter` and the `inflight-load-producer` it reads (llm-d-router v0.10.0
 * pkg/epp/framework/plugins/scheduling/filter/prefixcacheaffinity/, requestcontrol/dataproducer/inflightload/). The
 * decision tests mirror upstream's plugin_test.go case by case; the last ones run the real scheduler, whose prefix
 * scorer learns from its own picks.
 */
import { seededRandom } from '@kvroute/testkit';
import { ConfigError } from '../src/config/errors';
import { endpointPickerConfigNotes, parseEndpointPickerConfig, renderEndpointPickerConfig, resolvePluginParameters, validateEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, SILENT_PLUGIN_LOGGER, type CycleContext, type Plugin, type PluginHandle } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { createPlugin } from '../src/scheduling/plugin';
import { pluginDefinition } from '../src/config';
import { PREFIX_MATCH } from '../src/scheduling/prefix-match';
import { InFlightLoadProducer } from '../src/scheduling/plugins/inflight-load-producer';
import { PrefixCacheAffinityFilter, PREFIX_CACHE_AFFINITY_DEFAULTS, type PrefixCacheAffinityFilterParameters } from '../src/scheduling/plugins/prefix-cache-affinity-filter';
import type { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';
import type { LLMRequest, SchedulingResult } from '../src/scheduling/types';

const HEADER = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';

function pod(name: string, activeRequests = 0): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: 1 },
    activeRequests,
  };
}

const request = (prompt = 'p'): LLMRequest => ({ requestId: 'r', model: 'm', prompt, headers: {}, attributes: new CycleState() });

/**
 * Upstream's makeEndpoint: each endpoint's prefix match (out of 100 blocks), predicted TTFT (ms) and in-flight tokens,
 * served by stand-ins of the plugins the filter reads. Returns the filter's kept names and how often it read TTFTs.
 */
interface Endpoint { name: string; match: number; ttftMs?: number; tokens?: number }

function run(parameters: PrefixCacheAffinityFilterParameters, endpoints: readonly Endpoint[], random: () => number = () => 0.5) {
  const byKey = new Map(endpoints.map((e) => [`${e.name}:8000`, e]));
  const reads = { ttft: 0, tokens: 0, draws: 0 };
  const prefix = {
    type: 'prefix-cache-scorer', name: 'prefix-cache-scorer',
    matchRatios: (_: CycleContext, candidates: readonly EndpointSnapshot[]) => candidates.map((c) => byKey.get(c.endpoint.key)!.match / 100),
  };
  const latency = {
    type: 'latency-scorer', name: 'latency-scorer',
    predictTtftSeconds: (_r: LLMRequest, _m: unknown, candidates: readonly EndpointSnapshot[]) => {
      reads.ttft++;
      return Float64Array.from(candidates, (c) => (byKey.get(c.endpoint.key)!.ttftMs ?? 0) / 1000);
    },
  };
  const producer = {
    type: 'inflight-load-producer', name: 'inflight-load-producer', addReader: () => undefined,
    inFlightTokens: (c: EndpointSnapshot) => {
      reads.tokens++;
      return byKey.get(c.endpoint.key)!.tokens ?? 0;
    },
  };
  const plugins: Plugin[] = [prefix, latency, producer];
  const handle: PluginHandle = {
    now: () => 0, random: () => { reads.draws++; return random(); }, metrics: NOOP_SCHEDULING_METRICS, logger: SILENT_PLUGIN_LOGGER,
    plugin: (name) => plugins.find((p) => p.name === name), plugins: () => plugins, profiles: () => [],
  };
  const resolved = resolvePluginParameters('prefix-cache-affinity-filter', parameters);
  const filter = createPlugin(pluginDefinition('prefix-cache-affinity-filter'), 'test', resolved, handle) as PrefixCacheAffinityFilter;
  filter.resolveReferences();
  const kept = filter.filter({ request: request(), state: new CycleState() }, endpoints.map((e) => pod(e.name)));
  return { kept: kept.map((c) => c.endpoint.name), reads };
}

describe('prefix-cache-affinity-filter parameters (upstream TestFactory_*)', () => {
  const resolve = (raw: object) => resolvePluginParameters('prefix-cache-affinity-filter', raw, 'p');

  it('defaults are upstream\'s DefaultConfig, and a partial config keeps the other defaults', () => {
    expect(resolve({})).toEqual({
      affinityThreshold: 0.8, explorationProbability: 0, maxTTFTPenaltyMs: 18000, ttftSource: 'prefillThroughput', peakPrefillThroughput: 15928,
      prefixMatchInfoProducerName: '', latencyPredictionInfoProducerName: '', inFlightLoadProducerName: '',
    });
    expect(resolve({ affinityThreshold: 0.95 })).toEqual({ ...PREFIX_CACHE_AFFINITY_DEFAULTS, affinityThreshold: 0.95 });
    expect(resolve({ explorationProbability: 0.05 })).toEqual({ ...PREFIX_CACHE_AFFINITY_DEFAULTS, explorationProbability: 0.05 });
    expect(resolve({ maxTTFTPenaltyMs: 10000 })).toEqual({ ...PREFIX_CACHE_AFFINITY_DEFAULTS, maxTTFTPenaltyMs: 10000 });
  });

  it.each([
    [{ affinityThreshold: 1.5 }, 'p.affinityThreshold: affinityThreshold must be <= 1.0, got 1.500000'],
    [{ explorationProbability: -0.1 }, 'p.explorationProbability: explorationProbability must be in [0, 1], got -0.100000'],
    [{ explorationProbability: 1.1 }, 'explorationProbability must be in [0, 1]'],
    [{ maxTTFTPenaltyMs: -1 }, 'maxTTFTPenaltyMs must be >= 0, got -1.000000'],
    [{ peakPrefillThroughput: -1 }, 'peakPrefillThroughput must be >= 0, got -1.000000'],
    [{ ttftSource: 'prefillThroughput', peakPrefillThroughput: 0 }, 'peakPrefillThroughput must be > 0 when ttftSource is prefillThroughput'],
    [{ peakPrefillThroughput: 0 }, 'peakPrefillThroughput must be > 0 when ttftSource is prefillThroughput'],
    [{ ttftSource: 'bogus' }, 'ttftSource must be "latencyPredictor" or "prefillThroughput", got "bogus"'],
    [{ ttftSource: '' }, 'ttftSource must be "latencyPredictor" or "prefillThroughput", got ""'],
    [{ affinityThreshold: 'high' }, 'p.affinityThreshold: must be a number, got "high"'],
  ])('%j is refused with upstream\'s message', (raw, message) => {
    expect(() => resolve(raw)).toThrow(ConfigError);
    expect(() => resolve(raw)).toThrow(message);
  });

  it('peakPrefillThroughput 0 is valid when the throughput source is unused (gate off, or the latency predictor)', () => {
    expect(resolve({ maxTTFTPenaltyMs: 0, ttftSource: 'prefillThroughput', peakPrefillThroughput: 0 }).peakPrefillThroughput).toBe(0);
    expect(resolve({ ttftSource: 'latencyPredictor', peakPrefillThroughput: 0 }).ttftSource).toBe('latencyPredictor');
  });

  it('a null field keeps its default, as Go\'s decoder leaves the field alone', () => {
    expect(resolve({ ttftSource: null, affinityThreshold: null })).toEqual(PREFIX_CACHE_AFFINITY_DEFAULTS);
  });
});

describe('prefix-cache-affinity-filter decisions (upstream TestFilter_*)', () => {
  it('affinityThreshold 0 keeps every candidate', () => {
    expect(run({ affinityThreshold: 0 }, [{ name: 'a', match: 0, ttftMs: 10 }, { name: 'b', match: 90, ttftMs: 20 }]).kept).toEqual(['a', 'b']);
  });

  it('a single candidate always passes', () => {
    expect(run({}, [{ name: 'a', match: 90, ttftMs: 10 }]).kept).toEqual(['a']);
  });

  it('no sticky candidate keeps every candidate', () => {
    expect(run({}, [{ name: 'a', match: 10 }, { name: 'b', match: 20 }, { name: 'c', match: 50 }]).kept).toEqual(['a', 'b', 'c']);
  });

  it('narrows to the sticky candidates (ratio >= threshold; exactly the threshold is sticky)', () => {
    const p = { maxTTFTPenaltyMs: 5000, ttftSource: 'latencyPredictor' as const };
    expect(run(p, [{ name: 'a', match: 90, ttftMs: 100 }, { name: 'b', match: 85, ttftMs: 120 }, { name: 'c', match: 10, ttftMs: 50 }]).kept).toEqual(['a', 'b']);
    expect(run(p, [{ name: 'a', match: 80, ttftMs: 100 }, { name: 'b', match: 79, ttftMs: 100 }]).kept).toEqual(['a']);
  });

  it('latency predictor: a TTFT penalty over maxTTFTPenaltyMs breaks stickiness, one at it does not', () => {
    const p = { maxTTFTPenaltyMs: 100, ttftSource: 'latencyPredictor' as const };
    expect(run(p, [{ name: 'a', match: 90, ttftMs: 500 }, { name: 'b', match: 10, ttftMs: 50 }]).kept).toEqual(['a', 'b']);
    // 150 − 50 = 100 is not more than 100 (upstream's strict >).
    expect(run(p, [{ name: 'a', match: 90, ttftMs: 150 }, { name: 'b', match: 10, ttftMs: 50 }]).kept).toEqual(['a']);
  });

  it('the gate compares the best sticky against the best other candidate', () => {
    const p = { maxTTFTPenaltyMs: 100, ttftSource: 'latencyPredictor' as const };
    // Best sticky 120 (not a's 900) against best other 50: within 100.
    expect(run(p, [{ name: 'a', match: 90, ttftMs: 900 }, { name: 'b', match: 95, ttftMs: 120 }, { name: 'c', match: 0, ttftMs: 50 }, { name: 'd', match: 0, ttftMs: 400 }]).kept).toEqual(['a', 'b']);
  });

  it('prefill throughput: in-flight tokens ÷ peakPrefillThroughput × 1000 over the penalty breaks stickiness', () => {
    // 1000 tokens/s: tokens read as ms; a 500 ms, b 50 ms.
    const p = { maxTTFTPenaltyMs: 100, ttftSource: 'prefillThroughput' as const, peakPrefillThroughput: 1000 };
    const broken = run(p, [{ name: 'a', match: 90, ttftMs: 10, tokens: 500 }, { name: 'b', match: 10, ttftMs: 10, tokens: 50 }]);
    expect(broken.kept).toEqual(['a', 'b']);
    expect(broken.reads).toMatchObject({ tokens: 2, ttft: 0 });
  });

  it('prefill throughput within the penalty keeps the sticky candidate', () => {
    const p = { maxTTFTPenaltyMs: 1000, ttftSource: 'prefillThroughput' as const, peakPrefillThroughput: 1000 };
    expect(run(p, [{ name: 'a', match: 90, ttftMs: 10, tokens: 500 }, { name: 'b', match: 10, ttftMs: 10, tokens: 50 }]).kept).toEqual(['a']);
  });

  it('the default peak (15928 tokens/s) and penalty (18 s): about 287k in-flight tokens before the gate breaks', () => {
    expect(run({}, [{ name: 'a', match: 90, tokens: 286_000 }, { name: 'b', match: 0, tokens: 0 }]).kept).toEqual(['a']);
    expect(run({}, [{ name: 'a', match: 90, tokens: 288_000 }, { name: 'b', match: 0, tokens: 0 }]).kept).toEqual(['a', 'b']);
  });

  it('maxTTFTPenaltyMs 0 always sticks, and reads no load at all', () => {
    const p = { maxTTFTPenaltyMs: 0, ttftSource: 'prefillThroughput' as const, peakPrefillThroughput: 1000 };
    const { kept, reads } = run(p, [{ name: 'a', match: 90, ttftMs: 10, tokens: 5000 }, { name: 'b', match: 10, ttftMs: 10, tokens: 50 }]);
    expect(kept).toEqual(['a']);
    expect(reads).toMatchObject({ tokens: 0, ttft: 0 });
  });

  it('no load is read when every candidate is sticky or none is', () => {
    const p = { maxTTFTPenaltyMs: 1, ttftSource: 'latencyPredictor' as const };
    expect(run(p, [{ name: 'a', match: 90, ttftMs: 900 }, { name: 'b', match: 95, ttftMs: 1 }]).reads.ttft).toBe(0);
    expect(run(p, [{ name: 'a', match: 10, ttftMs: 900 }, { name: 'b', match: 5, ttftMs: 1 }]).reads.ttft).toBe(0);
  });

  it('explorationProbability 1 always skips the gate', () => {
    expect(run({ explorationProbability: 1 }, [{ name: 'a', match: 90, ttftMs: 100 }, { name: 'b', match: 10, ttftMs: 50 }]).kept).toEqual(['a', 'b']);
  });

  it('exploration with an injected draw: below the probability keeps all, at or above it narrows; 0 never draws', () => {
    const endpoints = [{ name: 'a', match: 90 }, { name: 'b', match: 10 }];
    expect(run({ explorationProbability: 0.3, maxTTFTPenaltyMs: 0 }, endpoints, () => 0.29).kept).toEqual(['a', 'b']);
    expect(run({ explorationProbability: 0.3, maxTTFTPenaltyMs: 0 }, endpoints, () => 0.3).kept).toEqual(['a']);
    expect(run({ maxTTFTPenaltyMs: 0 }, endpoints, () => 0).reads.draws).toBe(0);
  });

  it('a NaN ratio is not sticky (upstream reads NaN as 0)', () => {
    expect(run({ maxTTFTPenaltyMs: 0 }, [{ name: 'a', match: Number.NaN }, { name: 'b', match: 90 }]).kept).toEqual(['b']);
  });
});

describe('prefix-cache-affinity-filter in a config', () => {
  const config = (filter: string, profile: string, extraPlugins = '') => `${HEADER}plugins:
- type: prefix-cache-affinity-filter${filter}
- type: prefix-cache-scorer
- type: active-request-scorer
- type: max-score-picker${extraPlugins}
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-affinity-filter${profile}
  - pluginRef: active-request-scorer
  - pluginRef: max-score-picker
`;
  const withScorer = '\n  - pluginRef: prefix-cache-scorer\n    weight: 0';

  it('the loader adds the inflight-load-producer its default gate reads (upstream\'s DAG creates it), and the rendered config loads back equal', () => {
    const parsed = parseEndpointPickerConfig(config('', withScorer));
    expect(parsed.plugins.filter((p) => p.type === 'inflight-load-producer')).toEqual([
      { type: 'inflight-load-producer', name: 'inflight-load-producer', parameters: { addEstimatedOutputTokens: false, outputRatio: 1.5, prefixMatchInfoProducerName: '', syncCrossReplicaState: true } },
    ]);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(parsed))).toEqual(parsed);
    expect(buildScheduler(parsed).plugin('inflight-load-producer')).toBeInstanceOf(InFlightLoadProducer);
  });

  it('no producer is added for a gate that is off or reads the latency predictor', () => {
    // queue-scorer for active-request-scorer, which reads the in-flight load itself (the loader adds the producer for it).
    const off = parseEndpointPickerConfig(config('\n  parameters: { maxTTFTPenaltyMs: 0 }', withScorer).replaceAll('active-request-scorer', 'queue-scorer'));
    expect(off.plugins.map((p) => p.type)).not.toContain('inflight-load-producer');
    expect(() => buildScheduler(off)).not.toThrow();
  });

  // llm-d-router v0.10.0: the filter Consumes PrefixCacheMatchInfo (prefixcacheaffinity/plugin.go), and the data layer
  // creates that key's default producer, approx-prefix-cache-producer with its defaults, when no plugin produces it
  // (datalayer/data_graph.go CreateMissingDataProducers; cmd/epp/runner/runner.go RegisterAsDefaultProducer), so the
  // filter's README example (filter/prefixcacheaffinity/README.md "Configuration") loads.
  it('without a prefix scorer, the loader adds one in the filter\'s profiles at weight 0, as upstream\'s data layer adds its default approx-prefix-cache-producer', () => {
    const readme = `${HEADER}plugins:
  - type: prefix-cache-affinity-filter
    name: prefix-affinity
    parameters:
      affinityThreshold: 0.80
      explorationProbability: 0.01
      maxTTFTPenaltyMs: 5000
      ttftSource: prefillThroughput
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: prefix-affinity
`;
    const parsed = parseEndpointPickerConfig(readme);
    expect(parsed.plugins.find((p) => p.type === 'prefix-cache-scorer')).toMatchObject({
      name: 'prefix-cache-scorer', parameters: { maxPrefixTokensToMatch: 131072, maxPrefixBlocksToMatch: 2048, minBlockSizeTokens: 64, partialLastBlock: true },
    });
    expect(parsed.schedulingProfiles[0]!.plugins).toContainEqual({ pluginRef: 'prefix-cache-scorer', weight: 0 });
    expect(endpointPickerConfigNotes(parsed)).toContain(
      'plugins: added a prefix-cache-scorer (weight 0 in profile default), which prefix-cache-affinity-filter "prefix-affinity" reads, '
        + 'as llm-d-router v0.10.0\'s data layer adds its default approx-prefix-cache-producer',
    );
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(parsed))).toEqual(parsed);
    // It learns the profile's picks, so a repeated prompt sticks to the pod that served it.
    const scheduler = buildScheduler(parsed, { now: () => 1_000_000, random: seededRandom(3) });
    const send = (prompt: string) => {
      const req = { ...request(prompt), requestId: prompt.slice(-8) };
      const result = scheduler.schedule(req, ['p0', 'p1', 'p2'].map((n) => pod(n)));
      for (const plugin of scheduler.plugins.ofKind('pre-request')) plugin.preRequest(req, result);
      return result.target.endpoint.name;
    };
    const prompt = `${'A long shared system prompt about routing. '.repeat(60)}question`;
    const first = send(prompt);
    for (let i = 0; i < 5; i++) expect(send(prompt)).toBe(first);
  });

  it('an approximate prefix scorer the filter\'s profile does not list is refused (it would never learn), naming the fix', () => {
    expect(() => buildScheduler(parseEndpointPickerConfig(config('', '')))).toThrow(
      'schedulingProfiles[0].plugins: lists "prefix-cache-affinity-filter" (prefix-cache-affinity-filter), which reads "prefix-cache-scorer", and "prefix-cache-scorer" '
        + 'learns where prompts went only from the picks of the profiles that list it: list it in profile "default" too ({pluginRef: prefix-cache-scorer, weight: 0} learns without scoring)',
    );
  });

  it('latencyPredictor needs a latency-scorer, in the filter\'s profiles', () => {
    const latency = '\n  parameters: { ttftSource: latencyPredictor, maxTTFTPenaltyMs: 5000 }';
    expect(() => buildScheduler(parseEndpointPickerConfig(config(latency, withScorer)))).toThrow(
      'prefix-cache-affinity-filter.parameters.ttftSource: "latencyPredictor" reads TTFT predictions, and the config has no latency-scorer',
    );
    expect(() => buildScheduler(parseEndpointPickerConfig(config(latency, withScorer, '\n- type: latency-scorer')))).toThrow(
      'which reads "latency-scorer", and "latency-scorer" counts the prefill queued on each pod only from the picks of the profiles that list it',
    );
    expect(() => buildScheduler(parseEndpointPickerConfig(config(latency, `${withScorer}\n  - pluginRef: latency-scorer\n    weight: 0`, '\n- type: latency-scorer')))).not.toThrow();
  });

  it('named references must exist and be of the right type', () => {
    expect(() => buildScheduler(parseEndpointPickerConfig(config('\n  parameters: { prefixMatchInfoProducerName: nope }', withScorer)))).toThrow(
      'prefix-cache-affinity-filter.parameters.prefixMatchInfoProducerName: no plugin named "nope"',
    );
    expect(() => buildScheduler(parseEndpointPickerConfig(config('\n  parameters: { prefixMatchInfoProducerName: active-request-scorer }', withScorer)))).toThrow(
      '"active-request-scorer" is a active-request-scorer; name a prefix-cache-scorer or precise-prefix-cache-scorer',
    );
  });

  it('a filter naming an approximate or precise producer reads the scorer it is merged into (producer-form.ts)', () => {
    // The scorer names the producer too: in llm-d's group a scorer naming none reads the default-named producer, and a
    // producer no scorer reads is refused (llm-d-router v0.10.0 `scheduling/scorer/prefix/plugin.go` New).
    const approx = parseEndpointPickerConfig(config('\n  parameters: { prefixMatchInfoProducerName: approx }', withScorer, '\n- type: approx-prefix-cache-producer\n  name: approx')
      .replace('- type: prefix-cache-scorer\n', '- type: prefix-cache-scorer\n  parameters: { prefixMatchInfoProducerName: approx }\n'));
    expect(approx.plugins.find((p) => p.type === 'prefix-cache-affinity-filter')?.parameters).toMatchObject({ prefixMatchInfoProducerName: 'prefix-cache-scorer' });
    expect(() => buildScheduler(approx)).not.toThrow();
    const precise = parseEndpointPickerConfig(config('\n  parameters: { prefixMatchInfoProducerName: kv-events }', withScorer,
      '\n- type: precise-prefix-cache-producer\n  name: kv-events\n  parameters: { kvEventsConfig: { discoverPods: false } }')
      .replace('- type: prefix-cache-scorer\n', '- type: prefix-cache-scorer\n  parameters: { prefixMatchInfoProducerName: kv-events }\n'));
    expect(precise.plugins.find((p) => p.type === 'prefix-cache-affinity-filter')?.parameters).toMatchObject({ prefixMatchInfoProducerName: 'prefix-cache-scorer' });
    expect(precise.plugins.find((p) => p.name === 'prefix-cache-scorer')?.type).toBe('precise-prefix-cache-scorer');
  });

  it('llm-d\'s two-gate form (strict 0.99, loose 0.8) loads, sharing one producer', () => {
    const parsed = parseEndpointPickerConfig(`${HEADER}plugins:
- type: prefix-cache-scorer
- name: strict-affinity-filter
  type: prefix-cache-affinity-filter
  parameters: { affinityThreshold: 0.99 }
- name: loose-affinity-filter
  type: prefix-cache-affinity-filter
  parameters: { affinityThreshold: 0.8 }
- type: queue-scorer
- type: weighted-random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: strict-affinity-filter
  - pluginRef: loose-affinity-filter
  - pluginRef: prefix-cache-scorer
    weight: 0
  - pluginRef: queue-scorer
  - pluginRef: weighted-random-picker
`);
    expect(parsed.plugins.filter((p) => p.type === 'inflight-load-producer')).toHaveLength(1);
    expect(() => buildScheduler(parsed)).not.toThrow();
  });
});

describe('llm-d\'s predicted-latency guide (wellknown_configs_test.go "predicted-latency-slo" @ llm-d-router v0.10.0)', () => {
  // Without its predicted-latency-producer (and the tier filter and admitter that read it), the guide's prefix scorer
  // is in no profile; with it, verbatim, the producer records the profile's picks into that scorer (below).
  const without = (text: string, types: readonly string[]) => text.split('\n').filter((line) => !types.some((t) => line.endsWith(` ${t}`))).join('\n');
  const guide = without(LLMD_GUIDE_CONFIGS['predicted-latency-slo'], ['predicted-latency-producer', 'slo-headroom-tier-filter', 'latency-slo-admitter'])
    .replace('  parameters:\n    streamingMode: true\n', '');

  it('lists its prefix-cache-scorer in no profile (upstream\'s auto-created producer learns instead): refused, naming the fix', () => {
    expect(() => buildScheduler(parseEndpointPickerConfig(guide))).toThrow(
      'schedulingProfiles[0].plugins: lists "strict-affinity-filter" (prefix-cache-affinity-filter), which reads "prefix-cache-scorer"',
    );
  });

  /** Schedules a prompt over three idle pods and runs the pre-request hooks (the picks' recording), as request control does. */
  const sendTo = (scheduler: ReturnType<typeof buildScheduler>) => (prompt: string) => {
    const req = { ...request(prompt), requestId: prompt.slice(-8) };
    const result = scheduler.schedule(req, ['p0', 'p1', 'p2'].map((n) => pod(n)));
    for (const plugin of scheduler.plugins.ofKind('pre-request')) plugin.preRequest(req, result);
    return result.target.endpoint.name;
  };

  it('with the scorer listed at weight 0 the two gates load and route: the strict one first, then the loose one', () => {
    const fixed = guide.replace('  - pluginRef: latency-scorer\n', '  - pluginRef: prefix-cache-scorer\n    weight: 0\n  - pluginRef: latency-scorer\n');
    const scheduler = buildScheduler(parseEndpointPickerConfig(fixed), { now: () => 1_000_000, random: seededRandom(3) });
    expect(scheduler.config.plugins.filter((p) => p.type === 'inflight-load-producer')).toHaveLength(1);
    const send = sendTo(scheduler);
    const first = send(ask(0));
    for (let u = 1; u < 6; u++) expect(send(ask(u))).toBe(first);
  });

  it('verbatim, the predicted-latency-producer reads the prefix scorer and records the profile\'s picks into it: the gates stick', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['predicted-latency-slo']), { now: () => 1_000_000, random: seededRandom(3) });
    const send = sendTo(scheduler);
    const first = send(ask(0));
    for (let u = 1; u < 6; u++) expect(send(ask(u))).toBe(first);
    expect((scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer).stats().indexEntries).toBeGreaterThan(0);
  });
});

describe('inflight-load-producer parameters (upstream InFlightLoadProducerFactory)', () => {
  const resolve = (raw: object) => resolvePluginParameters('inflight-load-producer', raw, 'p');

  it('upstream\'s parameters are checked with its messages; addEstimatedOutputTokens true is refused with the reason', () => {
    expect(resolve({ outputRatio: 2, maxEstimatedOutputTokens: 100, syncCrossReplicaState: false })).toMatchObject({ outputRatio: 2, maxEstimatedOutputTokens: 100, syncCrossReplicaState: false });
    expect(() => resolve({ outputRatio: -1 })).toThrow('p.outputRatio: outputRatio must be non-negative, got -1');
    expect(() => resolve({ maxEstimatedOutputTokens: -1 })).toThrow('maxEstimatedOutputTokens must be non-negative, got -1');
    expect(() => resolve({ addEstimatedOutputTokens: true })).toThrow("p.addEstimatedOutputTokens: true is not supported: upstream bounds the output estimate by the request's own max_tokens");
    expect(() => resolve({ bogus: 1 })).toThrow(ConfigError);
  });

  it('llm-d\'s least-busy coordinator config lists it beside active-request-scorer and loads (test/coordinator/e2e/coordinator/configs_test.go @ v0.10.0)', () => {
    const parsed = parseEndpointPickerConfig(`${HEADER}plugins:
- type: openai-parser
- type: vllmhttp-parser
- type: inflight-load-producer
- type: active-request-scorer
- type: max-score-picker
- type: single-profile-handler
requestHandler:
  parsers:
  - pluginRef: openai-parser
  - pluginRef: vllmhttp-parser
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: active-request-scorer
  - pluginRef: max-score-picker
`);
    const producer = buildScheduler(parsed).plugin('inflight-load-producer') as InFlightLoadProducer;
    // No filter reads it, and it counts all the same, as upstream's does (its gauges: llmd-v0.10-inflight-gauges.test.ts).
    const target = pod('a');
    producer.preRequest({ ...request('x'.repeat(400)), requestId: 'r' }, { target, profile: 'default', scores: new Map() });
    expect(producer.inFlightTokens(target)).toBe(100);
  });
});

describe('inflight-load-producer counts', () => {
  function producer(now: { t: number }, reader = true) {
    // The prefix-cache-scorer is the default producer the load producer reads (llm-d-router v0.10.0
    // inflightload/producer.go: PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName("")); without one it discounts nothing.
    const config = validateEndpointPickerConfig({ apiVersion: 'llm-d.ai/v1alpha1', kind: 'EndpointPickerConfig', plugins: [{ type: 'inflight-load-producer' }, { type: 'prefix-cache-scorer' }, { type: 'max-score-picker' }] });
    const scheduler = buildScheduler(config, { now: () => now.t });
    const p = scheduler.plugin('inflight-load-producer') as InFlightLoadProducer;
    if (reader) p.addReader();
    return p;
  }
  const commit = (p: InFlightLoadProducer, target: EndpointSnapshot, prompt: string, cached = 0, id = 'r') => {
    const req: LLMRequest = { ...request(prompt), requestId: id };
    const result: SchedulingResult = {
      target, profile: 'default', scores: new Map(),
      prefixMatch: { producer: 'prefix-cache-scorer', unit: 'characters', promptLength: prompt.length, cachedLength: new Map([[target.endpoint.key, cached]]) },
    };
    p.preRequest(req, result);
    return req;
  };

  it('adds the pick\'s uncached prompt tokens at the commit (characters ÷ 4 past the cached prefix)', () => {
    const now = { t: 1000 };
    const p = producer(now);
    const a = pod('a');
    commit(p, a, 'x'.repeat(4000), 1000);
    expect(p.inFlightTokens(a)).toBe(750);
    commit(p, a, 'x'.repeat(400), 0, 'r2');
    expect(p.inFlightTokens(a)).toBe(850);
    expect(p.inFlightTokens(pod('b'))).toBe(0);
  });

  it('counts with no plugin reading it, as upstream\'s counts whenever it is listed (llm-d-router v0.10.0 inflightload/producer.go PreRequest)', () => {
    const p = producer({ t: 1000 }, false);
    commit(p, pod('a'), 'x'.repeat(4000));
    expect(p.inFlightTokens(pod('a'))).toBe(1000);
  });

  it('releases at a non-streaming response\'s headers and at the exchange\'s end, not at streaming headers', () => {
    const now = { t: 1000 };
    const p = producer(now);
    const a = pod('a');
    const streamed = commit(p, a, 'x'.repeat(400), 0, 's');
    const plain = commit(p, a, 'x'.repeat(800), 0, 'n');
    p.postResponse(streamed, { headers: { ':status': '200', 'content-type': 'text/event-stream' }, metadata: {} });
    expect(p.inFlightTokens(a)).toBe(300);
    p.postResponse(plain, { headers: { ':status': '200', 'content-type': 'application/json' }, metadata: {} });
    expect(p.inFlightTokens(a)).toBe(100);
    p.responseComplete(streamed, a.endpoint, 'completed');
    expect(p.inFlightTokens(a)).toBe(0);
  });

  it('releases a streamed pick once a scrape counts its first token (oldest first)', () => {
    const now = { t: 1000 };
    const p = producer(now);
    const scraped = (firstTokenCount: number, t: number): EndpointSnapshot => ({ ...pod('a'), metrics: { ...EMPTY_METRICS, updateTime: t, requestTime: t, firstTokenCount } });
    p.inFlightTokens(scraped(5, 900));
    commit(p, scraped(5, 900), 'x'.repeat(400), 0, 'first');
    commit(p, scraped(5, 900), 'x'.repeat(800), 0, 'second');
    expect(p.inFlightTokens(scraped(5, 900))).toBe(300);
    now.t = 1200;
    expect(p.inFlightTokens(scraped(6, 1100))).toBe(200);
    expect(p.inFlightTokens(scraped(7, 1150))).toBe(0);
  });

  // Its queue is the latency model's (pod-latency-model.ts `restarted`): the prefills committed to a pod before its model
  // server restarted went with the old process (their requests failed), so they stop counting at the restart rather
  // than at their timeout (up to 30 s), which kept a restarted, idle pod looking loaded to the affinity filter's gate.
  it('drops the tokens committed to a pod before its model server restarted, keeps those committed after, and leaves other pods alone', () => {
    const now = { t: 1000 };
    const config = validateEndpointPickerConfig({ apiVersion: 'llm-d.ai/v1alpha1', kind: 'EndpointPickerConfig', plugins: [{ type: 'inflight-load-producer' }, { type: 'prefix-cache-scorer' }, { type: 'max-score-picker' }] });
    const scheduler = buildScheduler(config, { now: () => now.t });
    const p = scheduler.plugin('inflight-load-producer') as InFlightLoadProducer;
    p.addReader();
    const [a, b] = [pod('a'), pod('b')];
    commit(p, a, 'x'.repeat(4000), 0, 'old');
    commit(p, b, 'x'.repeat(400), 0, 'other');
    now.t = 1100;
    commit(p, a, 'x'.repeat(400), 0, 'new');
    expect(p.inFlightTokens(a)).toBe(1100);
    scheduler.plugins.endpointRestarted('a:8000', 1050);
    expect(p.inFlightTokens(a)).toBe(100);
    expect(p.inFlightTokens(b)).toBe(100);
  });
});

/**
 * Four pods behind the real scheduler: the filter, the approximate prefix scorer at weight 0 (it learns, scoring
 * nothing) and the active-request scorer, which spreads whatever the filter leaves. `send` commits the pick as request
 * control does (pre-request hooks, the datastore's in-flight count); `finish` ends the exchange.
 */
class Pool {
  readonly scheduler: Scheduler;
  readonly active = new Map<string, number>();
  readonly observed: { hits: number; total: number }[] = [];
  private seq = 0;

  /**
   * The scorer cuts prompts into GIE's 64-character blocks (`minBlockSizeTokens: 1`, `partialLastBlock: false`) so the
   * arithmetic below counts in the pods' 16-token blocks; llm-d's own 64-token cut is `llmd-v0.10-config.test.ts`'s.
   */
  constructor(filter: string, readonly names = ['p0', 'p1', 'p2', 'p3'], scorerParameters = '') {
    this.scheduler = buildScheduler(parseEndpointPickerConfig(`${HEADER}plugins:
- type: prefix-cache-affinity-filter
  parameters: ${filter}
- type: prefix-cache-scorer
  parameters: { minBlockSizeTokens: 1, partialLastBlock: false${scorerParameters} }
- type: active-request-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-affinity-filter
  - pluginRef: prefix-cache-scorer
    weight: 0
  - pluginRef: active-request-scorer
  - pluginRef: max-score-picker
`), {
      now: () => 1_000_000, random: seededRandom(7),
      metrics: { ...NOOP_SCHEDULING_METRICS, observePrefixMatch: (hits, total) => this.observed.push({ hits, total }) },
    });
  }

  send(prompt: string): { name: string; request: LLMRequest; result: SchedulingResult } {
    const req: LLMRequest = { requestId: `r${this.seq++}`, model: 'm', prompt, headers: {}, attributes: new CycleState() };
    const result = this.scheduler.schedule(req, this.names.map((n) => pod(n, this.active.get(n) ?? 0)));
    for (const plugin of this.scheduler.plugins.ofKind('pre-request')) plugin.preRequest(req, result);
    const name = result.target.endpoint.name;
    this.active.set(name, (this.active.get(name) ?? 0) + 1);
    return { name, request: req, result };
  }

  finish(sent: { name: string; request: LLMRequest; result: SchedulingResult }): void {
    for (const plugin of this.scheduler.plugins.ofKind('response-complete')) plugin.responseComplete(sent.request, sent.result.target.endpoint, 'completed');
    this.active.set(sent.name, this.active.get(sent.name)! - 1);
  }

  tokens(name: string): number {
    return (this.scheduler.plugin('inflight-load-producer') as InFlightLoadProducer).inFlightTokens(pod(name));
  }
}

/** A 1,600-character shared system prompt (25 blocks of 64) and a short question (under a block: never hashed). */
const SHARED = 'Answer questions about the shared document. '.repeat(40).slice(0, 1600);
const ask = (u: number) => `${SHARED}user ${String(u).padStart(3, '0')}: why?`;

describe('prefix-cache-affinity-filter end to end (buildScheduler, the prefix scorer learning real picks)', () => {
  // 1,000 tokens/s: in-flight tokens read as ms. A cold pick of ask(u) is 1,614 characters ≈ 403.5 tokens; a pick on
  // a pod holding the prefix, 14 characters ≈ 3.5 tokens.
  const GATE = '{ peakPrefillThroughput: 1000, maxTTFTPenaltyMs: 500 }';

  it('a shared prefix goes to its holder while the holder\'s in-flight load is modest, and spreads when the gate breaks', () => {
    const pool = new Pool(GATE);
    const picks = Array.from({ length: 60 }, (_, u) => pool.send(ask(u)).name);
    const holder = picks[0]!;
    // The gate reads the holder's tokens before each request: 403.5 + 3.5·k after its first pick and k more, within
    // 500 ms of the idle pods' 0 up to k = 27, so it takes requests 0-28 (29 picks) though its requests in flight are
    // by far the most (the active-request scorer alone would have spread from the second request on); at 501.5 the
    // gate breaks.
    const firstOther = picks.findIndex((p) => p !== holder);
    expect(firstOther).toBe(29);
    expect(pool.tokens(holder)).toBeCloseTo(403.5 + 28 * 3.5, 6);
    // Then a second pod takes the prefix (a cold prefill, 403.5) and the two holders share it while the best of them
    // stays within 500 ms of the idle pods; then a third, and so on: the load spreads.
    expect(new Set(picks).size).toBeGreaterThanOrEqual(3);
    for (const name of new Set(picks)) expect(pool.tokens(name)).toBeLessThanOrEqual(500 + 403.5 + 3.5);
  });

  it('once the load is gone, the prefix goes back to the pods holding it', () => {
    const pool = new Pool(GATE);
    const sent = Array.from({ length: 40 }, (_, u) => pool.send(ask(u)));
    const holders = new Set(sent.map((s) => s.name));
    expect(holders.size).toBeGreaterThanOrEqual(2);
    for (const s of sent) pool.finish(s);
    for (const name of pool.names) expect(pool.tokens(name)).toBe(0);
    const after = Array.from({ length: 8 }, (_, u) => pool.send(ask(100 + u)).name);
    for (const name of after) expect(holders).toContain(name);
    // A prompt no pod holds is placed by load alone (no sticky candidate: every pod kept).
    const cold = pool.send(`${'A different system prompt entirely. '.repeat(50)}q?`);
    expect(pool.names.filter((n) => !holders.has(n))).toContain(cold.name);
  });

  it('maxTTFTPenaltyMs 0 always sticks: every request of the prefix goes to its holder', () => {
    const pool = new Pool('{ maxTTFTPenaltyMs: 0 }');
    const picks = Array.from({ length: 40 }, (_, u) => pool.send(ask(u)).name);
    expect(new Set(picks).size).toBe(1);
  });

  it('stickiness reads the match ratio, not the scorer\'s match-length blend (upstream\'s filter reads MatchBlocks ÷ TotalBlocks)', () => {
    // 25 of 25 blocks held: ratio 1, sticky upstream whatever the scorer's matchLengthWeight. The blend at weight 0.5
    // (400 tokens of an 8192 scale) is 0.5·(400/8192)² + 0.5·1 ≈ 0.501, under the 0.8 threshold.
    const pool = new Pool('{ maxTTFTPenaltyMs: 0 }', undefined, ', matchLengthWeight: 0.5');
    const picks = Array.from({ length: 40 }, (_, u) => pool.send(ask(u)).name);
    expect(new Set(picks).size).toBe(1);
  });

  it('the prefix scorer records its own run, once per pick, over the candidates the filter left', () => {
    const pool = new Pool(GATE);
    const first = pool.send(ask(0));
    const second = pool.send(ask(1));
    const scorer = pool.scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer;
    expect(scorer.stats().picks).toBe(2);
    // One observation per pick: 0 of 25 blocks, then all 25 (the holder), in characters.
    expect(pool.observed).toEqual([{ hits: 0, total: 1600 }, { hits: 1600, total: 1600 }]);
    // The profile's match is the scorer's own: over the one candidate the filter kept.
    expect(second.name).toBe(first.name);
    expect(second.result.prefixMatch?.byCandidate?.candidates.map((c) => c.endpoint.name)).toEqual([first.name]);
  });
});

describe('prefix-cache-affinity-filter with a precise scorer outside its profile', () => {
  it('the filter\'s match is made in a state of its own: the profile publishes no prefix match it did not make', () => {
    // A stand-in for the precise scorer (its index is fed by KV events, so it need not be in the profile): it publishes
    // its match in the state it is given, as the real one does.
    const stand: Plugin & { matchRatios: (cycle: CycleContext, candidates: readonly EndpointSnapshot[]) => number[] } & Record<string, unknown> = {
      type: 'precise-prefix-cache-scorer', name: 'precise-prefix-cache-scorer',
      score: () => [], postCycle: () => undefined, prepareRequest: async () => undefined, responseComplete: () => undefined,
      matchRatios: (cycle, candidates) => {
        cycle.state.set(PREFIX_MATCH, { unit: 'tokens', promptLength: 100, cachedLength: new Map([['p1:8000', 100]]) });
        return candidates.map((c) => (c.endpoint.name === 'p1' ? 1 : 0));
      },
    };
    // Named: a filter naming none reads upstream's default approximate producer instead (plugin-prefix-cache-affinity-precise.test.ts).
    const scheduler = buildScheduler(parseEndpointPickerConfig(`${HEADER}plugins:
- type: prefix-cache-affinity-filter
  parameters: { maxTTFTPenaltyMs: 0, prefixMatchInfoProducerName: precise-prefix-cache-scorer }
- type: precise-prefix-cache-scorer
  parameters: { kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0" } }
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-affinity-filter
  - pluginRef: max-score-picker
`), { factories: { 'precise-prefix-cache-scorer': () => stand as never } });
    const result = scheduler.schedule(request('x'), ['p0', 'p1', 'p2'].map((n) => pod(n)));
    expect(result.target.endpoint.name).toBe('p1');
    expect(result.prefixMatch).toBeUndefined();
  });
});
