/**
 * EndpointPickerConfigs shipped in llm-d-router v0.10.0 (llm-d/llm-d-router, tag v0.10.0) that no other test loads,
 * each verbatim with its file cited, run through the loader and scheduler builder `--config-file`/`--config-text` use.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { featureGateEnabled, KNOWN_PLUGIN_TYPES, parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';
import { configErrorOf } from './config-error';

/**
 * cmd/epp/runner/feature_gate_test.go @ v0.10.0: the configs TestHAPopulateNonLeaderDatastoreFeatureGate and
 * TestFlowControlFeatureGateAdmissionControlWiring give `opts.ConfigText`, verbatim. None has a `plugins` section, and
 * upstream loads each (`parseConfigurationPhaseOne` and `parseConfigurationPhaseTwo`: require.NoError): Go's json leaves
 * `Plugins` nil and the loader's defaults fill in a `default` profile with a max-score-picker and the single profile
 * handler (pkg/epp/config/loader/defaults.go ensureSchedulingLayer).
 */
const FEATURE_GATE_TEST_CONFIGS: readonly (readonly [name: string, yaml: string, flowControl: boolean, haPopulate: boolean])[] = [
  ['disabled via config', `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates:
- haPopulateNonLeaderDatastore=false
`, false, false],
  ['no featureGates stanza follows the registered default', `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
`, false, true],
  ['flowControl gate enabled wires the flow control admission controller', `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates:
- flowControl
`, true, true],
  ['flowControl=false restores the legacy admission controller', `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates:
- flowControl=false
`, false, true],
];

describe('cmd/epp/runner/feature_gate_test.go @ llm-d-router v0.10.0: configs without a plugins section', () => {
  test.each(FEATURE_GATE_TEST_CONFIGS)('"%s" loads, its gates as upstream reads them, and schedules with the defaults', (_name, yaml, flowControl, haPopulate) => {
    const config = parseEndpointPickerConfig(yaml);
    expect(featureGateEnabled(config, 'flowControl')).toBe(flowControl);
    expect(featureGateEnabled(config, 'haPopulateNonLeaderDatastore')).toBe(haPopulate);
    // What upstream's ensureSchedulingLayer makes of no plugins: one profile, picker only, the single handler.
    expect(config.schedulingProfiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'max-score-picker' }] }]);
    expect(config.plugins.map((p) => p.type)).toEqual(expect.arrayContaining(['max-score-picker', 'single-profile-handler']));
    // The same config as one writing `plugins: []`.
    const withEmptyList = parseEndpointPickerConfig(yaml.replace('kind: EndpointPickerConfig\n', 'kind: EndpointPickerConfig\nplugins: []\n'));
    expect(renderEndpointPickerConfig(config)).toBe(renderEndpointPickerConfig(withEmptyList));
    expect(() => buildScheduler(config)).not.toThrow();
  });

  test('a profile without a plugins list gets the picker too (apix/config/v1alpha1 SchedulingProfile.Plugins is a plain json list)', () => {
    const config = parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: default\n');
    expect(config.schedulingProfiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'max-score-picker' }] }]);
  });
});

/**
 * A reader of the prefix match naming `approx-prefix-cache-producer` when no plugin has that name. In llm-d-router
 * v0.10.0 each reader keys the match `PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName(name)`
 * (`framework/interface/plugin/datakey.go`), and that key's default producer name is `approx-prefix-cache-producer`
 * (`datalayer/attribute/prefix/data_types.go`), so naming it is the very key a reader naming none reads. For a reader
 * that `Consumes()` it Required (`scorer/nohitlru/no_hit_lru.go`, `filter/prefixcacheaffinity/plugin.go`,
 * `dataproducer/predictedlatency/dataproducer_hooks.go`, `scorer/latency/plugin.go`) the runner makes that producer
 * with its defaults (`datalayer/data_graph.go` CreateMissingDataProducers, `cmd/epp/runner/runner.go`
 * RegisterAsDefaultProducer); `inflightload/producer.go` reads it Optional and counts the whole prompt without it.
 */
describe('a reader naming the default producer, approx-prefix-cache-producer, unlisted reads what naming none reads', () => {
  const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
  const NAMED = '  parameters:\n    prefixMatchInfoProducerName: approx-prefix-cache-producer\n';
  /** Each reader, the private field holding the prefix scorer it resolved, and what else it needs in the config. */
  const READERS: readonly (readonly [type: string, field: string, besides: string])[] = [
    ['no-hit-lru-scorer', 'prefix', ''],
    ['prefix-cache-affinity-filter', 'prefix', ''],
    ['predicted-latency-producer', 'prefix', '- type: latency-scorer\n'],
    ['inflight-load-producer', 'prefixScorer', ''],
    ['latency-scorer', 'prefixSource', ''],
  ];
  const resolved = (yaml: string, type: string, field: string): string | undefined => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(yaml));
    return (scheduler.plugin(type) as unknown as Record<string, { name: string } | undefined>)[field]?.name;
  };

  test.each(READERS)('%s beside the config\'s approximate prefix-cache-scorer reads that scorer, as naming none does', (type, field, besides) => {
    const named = `${LLMD}plugins:\n- type: prefix-cache-scorer\n  name: gpu\n${besides}- type: ${type}\n${NAMED}`;
    expect(resolved(named, type, field)).toBe('gpu');
    // Naming none reads the same scorer (the latency-scorer naming none reads its profile's match instead: kvroute's).
    if (type !== 'latency-scorer') expect(resolved(named.replace(NAMED, ''), type, field)).toBe('gpu');
  });

  test.each(READERS)('%s with no prefix scorer in the config: the loader adds the default one for a reader that requires it', (type, field, besides) => {
    const config = parseEndpointPickerConfig(`${LLMD}plugins:\n${besides}- type: ${type}\n${NAMED}`);
    const added = config.plugins.filter((p) => p.type === 'prefix-cache-scorer').map((p) => p.name);
    // inflight-load-producer reads the match Optional: upstream makes no producer for it, and it counts the whole prompt.
    expect(added).toEqual(type === 'inflight-load-producer' ? [] : ['prefix-cache-scorer']);
    expect(resolved(renderEndpointPickerConfig(config), type, field)).toBe(type === 'inflight-load-producer' ? undefined : 'prefix-cache-scorer');
  });

  test('another name no plugin has is still refused', () => {
    expect(() => buildScheduler(parseEndpointPickerConfig(`${LLMD}plugins:\n- type: prefix-cache-scorer\n- type: no-hit-lru-scorer\n${NAMED.replace('approx-prefix-cache-producer', 'gpu-producer')}`)))
      .toThrow('no-hit-lru-scorer.parameters.prefixMatchInfoProducerName: no plugin named "gpu-producer"');
  });
});

/**
 * Upstream samples naming a plugin type kvroute deliberately does not implement (epp/README.md, "Not supported"):
 * verbatim copies of llm-d-router v0.10.0's deploy/config files (fixtures/llm-d-router-v0.10.0/, blob ids checked) and
 * GIE v1.5.0's site-src/guides/troubleshooting.md predicted-latency example. Each is refused naming the type, the
 * upstream that has it and that kvroute does not implement it, rather than as a type never heard of.
 */
describe('upstream samples naming a plugin kvroute does not implement are refused saying so', () => {
  const FIXTURES = path.join(__dirname, 'fixtures', 'llm-d-router-v0.10.0');
  const SAMPLES: readonly (readonly [file: string, blob: string, index: number, type: string])[] = [
    ['sim-e-pd-epp-config.yaml', 'c0d5f967480e8511878bc202bf435fe374f62fac', 0, 'encode-filter'],
    ['epp-mm-embeddings-cache-config.yaml', '6b157f6235c37063e100f46da2aee0f48f47cc87', 4, 'mm-embeddings-cache-producer'],
    ['pd-topology-epp-config.yaml', '74e5625cb69dfb97b2a3f59bdb178b3c5c69ec73', 6, 'topology-extractor'],
    ['sim-epp-gpu-config.yaml', '7e9e499fe38b57ca3bd6bfc154bf98f9d45e3701', 0, 'dcgm-data-source'],
    ['sim-program-aware-config.yaml', '4d5920153979a8d4d398bd6610d2242b8e20c786', 0, 'program-aware-fairness'],
  ];

  test.each(SAMPLES)('deploy/config/%s @ llm-d-router v0.10.0 (blob %s) names plugins[%d] %s', (file, blob, index, type) => {
    const bytes = fs.readFileSync(path.join(FIXTURES, file));
    expect(createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex')).toBe(blob);
    expect(configErrorOf(() => parseEndpointPickerConfig(bytes.toString('utf8'))))
      .toBe(`plugins[${index}].type: llm-d-router v0.10.0's plugin type "${type}" is not implemented in kvroute (epp/README.md, "Not supported"); known types: ${KNOWN_PLUGIN_TYPES.join(', ')}`);
  });

  // site-src/guides/troubleshooting.md @ GIE v1.5.0: the custom-plugins.yaml of its Helm values, verbatim.
  const GIE_TROUBLESHOOTING_PREDICTED_LATENCY = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
  parameters:
    blockSize: 64 # Match your setup
    maxPrefixBlocksToMatch: 512 # Match your setup
    lruCapacityPerServer: 31250 # Match your setup
- type: predicted-latency-scorer
  parameters:
    # Include your latency predictor parameters here
    samplingMean: 1000.0
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: predicted-latency-scorer
featureGates:
- prepareDataPlugins
`;

  test('GIE v1.5.0 site-src/guides/troubleshooting.md: predicted-latency-scorer', () => {
    expect(configErrorOf(() => parseEndpointPickerConfig(GIE_TROUBLESHOOTING_PREDICTED_LATENCY)))
      .toMatch(/^plugins\[3\]\.type: GIE v1\.5\.0's plugin type "predicted-latency-scorer" is not implemented in kvroute \(epp\/README\.md, "Not supported"\); known types: /);
  });

  test('a type no upstream registers is still unknown', () => {
    expect(configErrorOf(() => parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: custom-scorer\n')))
      .toBe(`plugins[0].type: unknown plugin type "custom-scorer"; known types: ${KNOWN_PLUGIN_TYPES.join(', ')}`);
  });
});
