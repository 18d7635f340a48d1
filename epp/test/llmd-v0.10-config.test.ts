/**
 * llm-d-router v0.10.0's EndpointPickerConfig (apix/config/v1alpha1, pkg/epp/config/loader @ v0.10.0): what its
 * loader accepts, kvroute's loader accepts too, with the same meaning where kvroute has one.
 */
import {
  endpointPickerConfigNotes,
  featureGateEnabled,
  parseEndpointPickerConfig,
  renderEndpointPickerConfig,
} from '../src/config';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import { resolveFlowControl } from '../src/runner';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { configErrorOf } from './config-error';
import { LLMD_HELM_DEFAULT } from './upstream-configs';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const GIE = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';


describe('apiVersion (llm-d-router v0.10.0 apix/config/v1alpha1/zz_generated.register.go, pkg/epp/config/loader/configloader.go)', () => {
  test('llm-d.ai/v1alpha1 loads, keeps its group when rendered, and carries no deprecation note', () => {
    const config = parseEndpointPickerConfig(`${LLMD}plugins:\n- type: queue-scorer\n`);
    expect(config.apiVersion).toBe('llm-d.ai/v1alpha1');
    expect(endpointPickerConfigNotes(config)).toEqual([]);
    const rendered = renderEndpointPickerConfig(config);
    expect(rendered).toMatch(/^apiVersion: llm-d.ai\/v1alpha1$/m);
    expect(parseEndpointPickerConfig(rendered)).toEqual(config);
  });

  test('GIE\'s inference.networking.x-k8s.io/v1alpha1 still loads, with upstream\'s DEPRECATION note naming the replacement', () => {
    const config = parseEndpointPickerConfig(`${GIE}plugins:\n- type: queue-scorer\n`);
    expect(config.apiVersion).toBe('inference.networking.x-k8s.io/v1alpha1');
    expect(endpointPickerConfigNotes(config)).toEqual([
      'DEPRECATION: apiVersion inference.networking.x-k8s.io/v1alpha1/EndpointPickerConfig is deprecated (llm-d-router v0.10.0); replacement: llm-d.ai/v1alpha1/EndpointPickerConfig',
    ]);
  });

  test.each([
    ['another group', 'apiVersion: llm-d.ai/v1beta1\n', '"llm-d.ai/v1beta1"'],
    ['none', '', 'nothing'],
  ])('a wrong apiVersion (%s) names both allowed values', (_case, line, got) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(`${line}kind: EndpointPickerConfig\nplugins: []\n`)))
      .toBe(`apiVersion: must be "llm-d.ai/v1alpha1" or "inference.networking.x-k8s.io/v1alpha1", got ${got}`);
  });
});

describe('featureGates (llm-d-router v0.10.0 pkg/epp/config/loader/validation.go validateFeatureGates, configloader.go loadFeatureConfig, cmd/epp/runner/runner.go L752-753)', () => {
  const gates = (list: string) => `${LLMD}plugins: []\nfeatureGates: [${list}]\n`;

  test('name, name=true and name=false load and are kept as written; the registered gates flowControl and haPopulateNonLeaderDatastore are known', () => {
    const config = parseEndpointPickerConfig(gates('flowControl=true, haPopulateNonLeaderDatastore=false'));
    expect(config.featureGates).toEqual(['flowControl=true', 'haPopulateNonLeaderDatastore=false']);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config)).featureGates).toEqual(config.featureGates);
  });

  test('a gate\'s value: upstream\'s registered default, then each entry in order, a bare name meaning true and ParseBool\'s spellings after lower-casing', () => {
    const on = (list: string | undefined, gate: 'flowControl' | 'haPopulateNonLeaderDatastore') =>
      featureGateEnabled(parseEndpointPickerConfig(list === undefined ? `${LLMD}plugins: []\n` : gates(list)), gate);
    expect(on(undefined, 'flowControl')).toBe(false);
    expect(on(undefined, 'haPopulateNonLeaderDatastore')).toBe(true);
    expect(on('flowControl', 'flowControl')).toBe(true);
    expect(on('flowControl=false', 'flowControl')).toBe(false);
    expect(on('flowControl=TRUE', 'flowControl')).toBe(true);
    expect(on('"flowControl= 1 "', 'flowControl')).toBe(true);
    expect(on('flowControl, flowControl=F', 'flowControl')).toBe(false);
    expect(on('haPopulateNonLeaderDatastore=false', 'haPopulateNonLeaderDatastore')).toBe(false);
  });

  test('GIE v1.5.0\'s dataLayer and enableLegacyMetrics, which llm-d-router v0.10.0 no longer registers, still load', () => {
    expect(parseEndpointPickerConfig(gates('dataLayer, enableLegacyMetrics=false')).featureGates).toEqual(['dataLayer', 'enableLegacyMetrics=false']);
  });

  test.each([
    ['an unknown name', 'prepareDataPlugins=true', 'featureGates[0]: unknown feature gate "prepareDataPlugins"; known: flowControl, dataLayer, enableLegacyMetrics, haPopulateNonLeaderDatastore'],
    ['a value ParseBool refuses', 'flowControl=yes', 'featureGates[0]: "yes" is not a valid value for the feature gate flowControl; write flowControl, flowControl=true or flowControl=false'],
    ['an empty value', '"flowControl="', 'featureGates[0]: "" is not a valid value for the feature gate flowControl; write flowControl, flowControl=true or flowControl=false'],
  ])('%s is an error naming the entry', (_case, list, message) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(gates(list)))).toBe(message);
  });
});

describe('requestHandler.parsers (llm-d-router v0.10.0 apix/config/v1alpha1/endpointpickerconfig_types.go RequestHandlerConfig, pkg/epp/handlers/parsers.go, config/loader/defaults.go ensureParsers)', () => {
  const withParsers = (list: string, plugins = '- type: queue-scorer\n') => `${LLMD}plugins:\n${plugins}requestHandler:\n  parsers: [${list}]\n`;
  const parsers = (yaml: string) => parseEndpointPickerConfig(yaml).requestHandler?.parsers.map((p) => p.pluginRef);

  test('the list is kept as requestHandler, in order; a type name not declared is added with its defaults; it renders back to itself', () => {
    const config = parseEndpointPickerConfig(withParsers('{pluginRef: vllmhttp-parser}, {pluginRef: openai-parser}, {pluginRef: anthropic-parser}'));
    expect(config.requestHandler).toEqual({ parsers: [{ pluginRef: 'vllmhttp-parser' }, { pluginRef: 'openai-parser' }, { pluginRef: 'anthropic-parser' }] });
    expect(config.plugins.map((p) => p.type)).toEqual(['queue-scorer', 'vllmhttp-parser', 'openai-parser', 'anthropic-parser', 'max-score-picker', 'single-profile-handler', 'utilization-detector']);
    expect('parser' in config).toBe(false);
    expect(endpointPickerConfigNotes(config)).toEqual([]);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    const declared = parseEndpointPickerConfig(withParsers('{pluginRef: mine}', '- type: openai-parser\n  name: mine\n'));
    expect(declared.requestHandler).toEqual({ parsers: [{ pluginRef: 'mine' }] });
  });

  // handlers/parsers.go NewParserRegistry L47-79: a second parser of a type is skipped, the first claiming no paths ends the list.
  test('what upstream\'s registry skips is dropped (a second of a type, anything after passthrough-parser)', () => {
    expect(parsers(withParsers('{pluginRef: a}, {pluginRef: b}', '- {type: openai-parser, name: a}\n- {type: openai-parser, name: b}\n'))).toEqual(['a']);
    expect(parsers(withParsers('{pluginRef: openai-parser}, {pluginRef: passthrough-parser}, {pluginRef: anthropic-parser}'))).toEqual(['openai-parser', 'passthrough-parser']);
  });

  // config/loader/defaults.go ensureParsers L250-256: no parsers → openai, anthropic and vllmhttp, registered as plugins.
  test.each([
    ['an empty list', withParsers('')],
    ['no requestHandler section, under llm-d\'s group', `${LLMD}plugins:\n- type: queue-scorer\n`],
  ])('%s is upstream\'s default: openai, anthropic and vllmhttp parsers', (_case, yaml) => {
    const config = parseEndpointPickerConfig(yaml);
    expect(config.requestHandler?.parsers).toEqual([{ pluginRef: 'openai-parser' }, { pluginRef: 'anthropic-parser' }, { pluginRef: 'vllmhttp-parser' }]);
    expect(config.plugins.filter((p) => p.type.endsWith('-parser')).map((p) => p.name)).toEqual(['openai-parser', 'anthropic-parser', 'vllmhttp-parser']);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
  });

  // GIE v1.5.0 config/loader/defaults.go ensureParser and handlers/server.go: one parser for every path; GIE's strict
  // decoding refuses requestHandler, so only a config without it is GIE's.
  test('a config in GIE\'s form (GIE\'s group, no requestHandler) keeps GIE\'s one parser for every path', () => {
    const none = parseEndpointPickerConfig(`${GIE}plugins:\n- type: queue-scorer\n`);
    expect(none.parser).toBeUndefined();
    expect(none.requestHandler).toBeUndefined();
    expect(none.plugins.some((p) => p.type.endsWith('-parser'))).toBe(false);
    const named = parseEndpointPickerConfig(`${GIE}plugins:\n- type: passthrough-parser\nparser: {pluginRef: passthrough-parser}\n`);
    expect(named.parser).toEqual({ pluginRef: 'passthrough-parser' });
    expect(named.requestHandler).toBeUndefined();
    // requestHandler under GIE's group: llm-d's form (only llm-d reads it).
    expect(parsers(`${GIE}plugins: []\nrequestHandler: {parsers: [{pluginRef: anthropic-parser}]}\n`)).toEqual(['anthropic-parser']);
  });

  // configloader.go LoadRawConfig L110-122: the deprecated top-level parser becomes requestHandler.parsers when that is empty.
  test('the top-level parser still loads, with upstream\'s DEPRECATION note; under llm-d\'s group it is the registry\'s one parser; both forms naming the same parser load', () => {
    const old = parseEndpointPickerConfig(`${LLMD}plugins:\n- type: openai-parser\nparser: {pluginRef: openai-parser}\n`);
    expect(old.requestHandler).toEqual({ parsers: [{ pluginRef: 'openai-parser' }] });
    expect(old.parser).toBeUndefined();
    expect(endpointPickerConfigNotes(old)).toEqual(['DEPRECATION: top-level parser is deprecated, use requestHandler.parsers instead (llm-d-router v0.9.0)']);
    expect(parsers(`${withParsers('{pluginRef: openai-parser}')}parser: {pluginRef: openai-parser}\n`)).toEqual(['openai-parser']);
  });

  test.each([
    ['a gRPC parser kvroute lacks', withParsers('{pluginRef: vllmgrpc-parser}'),
      'requestHandler.parsers[0].pluginRef: llm-d-router\'s vllmgrpc-parser is not supported: it reads gRPC (protobuf) request bodies, and kvroute\'s EPP reads HTTP JSON bodies (openai-parser, anthropic-parser, vllmhttp-parser) or none (passthrough-parser)'],
    ['a gRPC parser kvroute lacks, declared as a plugin', `${LLMD}plugins:\n- type: vertexai-parser\n`,
      'plugins[0].type: llm-d-router\'s vertexai-parser is not supported: it reads gRPC (protobuf) request bodies, and kvroute\'s EPP reads HTTP JSON bodies (openai-parser, anthropic-parser, vllmhttp-parser) or none (passthrough-parser)'],
    ['a plugin that is no parser', withParsers('{pluginRef: queue-scorer}'),
      'requestHandler.parsers[0].pluginRef: "queue-scorer" is a queue-scorer; allowed here: openai-parser, anthropic-parser, vllmhttp-parser, passthrough-parser'],
    ['both forms naming different parser types', `${withParsers('{pluginRef: passthrough-parser}')}parser: {pluginRef: openai-parser}\n`,
      'parser: names a openai-parser and requestHandler.parsers a passthrough-parser: give one (llm-d-router v0.9.0 moved the parser into requestHandler.parsers; upstream would silently use that one)'],
    ['the top-level parser beside a longer list', `${withParsers('{pluginRef: openai-parser}, {pluginRef: anthropic-parser}')}parser: {pluginRef: openai-parser}\n`,
      'parser: names a openai-parser and requestHandler.parsers lists openai-parser, anthropic-parser: give one (llm-d-router v0.9.0 moved the parser into requestHandler.parsers; upstream would silently use that one)'],
    ['an unknown requestHandler field', `${LLMD}plugins: []\nrequestHandler: {parser: x}\n`, 'requestHandler.parser: unknown field; allowed: parsers'],
  ])('%s is an error naming the field', (_case, yaml, message) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(yaml))).toBe(message);
  });
});

describe('flowControl.saturationDetector (llm-d-router v0.10.0 endpointpickerconfig_types.go FlowControlConfig, configloader.go LoadRawConfig)', () => {
  const DETECTORS = '- type: concurrency-detector\n- type: utilization-detector\n';

  test('names the pool\'s detector as the top-level saturationDetector does, and is read into it', () => {
    const config = parseEndpointPickerConfig(`${LLMD}plugins:\n${DETECTORS}flowControl:\n  saturationDetector: {pluginRef: concurrency-detector}\n`);
    expect(config.saturationDetector).toEqual({ pluginRef: 'concurrency-detector' });
    expect(config.flowControl).not.toHaveProperty('saturationDetector');
    expect(endpointPickerConfigNotes(config)).toEqual([]);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config)).saturationDetector).toEqual({ pluginRef: 'concurrency-detector' });
  });

  test('the top-level one still loads with upstream\'s DEPRECATION note; both naming the same detector load', () => {
    const old = parseEndpointPickerConfig(`${LLMD}plugins:\n${DETECTORS}saturationDetector: {pluginRef: concurrency-detector}\n`);
    expect(old.saturationDetector).toEqual({ pluginRef: 'concurrency-detector' });
    expect(endpointPickerConfigNotes(old)).toEqual(['DEPRECATION: top-level saturationDetector is deprecated, use flowControl.saturationDetector instead (llm-d-router v0.9.0)']);
    const both = parseEndpointPickerConfig(`${LLMD}plugins:\n${DETECTORS}saturationDetector: {}\nflowControl:\n  saturationDetector: {pluginRef: utilization-detector}\n`);
    expect(both.saturationDetector).toEqual({ pluginRef: 'utilization-detector' });
  });

  test.each([
    ['both naming different detectors', `${LLMD}plugins:\n${DETECTORS}saturationDetector: {pluginRef: concurrency-detector}\nflowControl:\n  saturationDetector: {pluginRef: utilization-detector}\n`,
      'saturationDetector: names "concurrency-detector" and flowControl.saturationDetector names "utilization-detector": give one (llm-d-router v0.9.0 moved the section into flowControl; upstream would silently use flowControl\'s)'],
    ['a plugin that is no detector', `${LLMD}plugins:\n- type: queue-scorer\nflowControl:\n  saturationDetector: {pluginRef: queue-scorer}\n`,
      'flowControl.saturationDetector.pluginRef: "queue-scorer" is a queue-scorer, not a saturation detector; detectors: concurrency-detector, utilization-detector'],
  ])('%s is an error naming the field', (_case, yaml, message) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(yaml))).toBe(message);
  });
});

describe('flow control\'s defaults under llm-d.ai/v1alpha1 (llm-d-router v0.10.0 flowcontrol/controller/config.go, flowcontrol/registry/config.go applyDefaults)', () => {
  test('an unset defaultRequestTTL is 60 s and every band holds at most 5000 requests unless set (0 is unset); GIE\'s group keeps kvroute\'s 30 s and no band request bound', () => {
    const llmd = resolveFlowControl(parseEndpointPickerConfig(`${LLMD}plugins: []
flowControl:
  priorityBands:
  - {priority: 5}
  - {priority: 1, maxRequests: 0}
  - {priority: 2, maxRequests: 7}
`));
    expect(llmd.maxWaitMs).toBe(60_000);
    // Upstream's default fairness too (llm-d-router v0.10.0 flowcontrol/registry/config.go DefaultFairnessPolicyRef).
    expect(llmd.defaultBand).toEqual({ maxBytes: 1_000_000_000, maxRequests: 5000, fairness: 'global-strict' });
    expect([5, 1, 2].map((p) => llmd.bands.get(p)?.maxRequests)).toEqual([5000, 5000, 7]);
    expect(resolveFlowControl(parseEndpointPickerConfig(`${LLMD}plugins: []\nflowControl: {defaultRequestTTL: 0s}\n`)).maxWaitMs).toBe(Infinity);
    // Without a flowControl section too (upstream's NewConfigFromAPI(nil) takes the same defaults).
    expect(resolveFlowControl(parseEndpointPickerConfig(`${LLMD}plugins: []\n`)).maxWaitMs).toBe(60_000);
    const gie = resolveFlowControl(parseEndpointPickerConfig('apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins: []\nflowControl:\n  priorityBands:\n  - {priority: 5}\n'));
    expect(gie.maxWaitMs).toBe(30_000);
    expect(gie.defaultBand).toEqual({ maxBytes: 1_000_000_000, fairness: 'global-strict' });
    expect(gie.bands.get(5)?.maxRequests).toBeUndefined();
  });

  test('a priority band without priority is level 0, as a plain Go int (apix/config/v1alpha1 PriorityBandConfig); two such are the same level twice', () => {
    const flow = resolveFlowControl(parseEndpointPickerConfig(`${LLMD}plugins: []\nflowControl:\n  priorityBands:\n  - {maxRequests: 3}\n`));
    expect(flow.bands.get(0)).toMatchObject({ maxRequests: 3 });
    expect(configErrorOf(() => parseEndpointPickerConfig(`${LLMD}plugins: []\nflowControl:\n  priorityBands:\n  - {maxRequests: 3}\n  - {maxBytes: 1k}\n`)))
      .toBe("flowControl.priorityBands[1].priority: priority 0 is also flowControl.priorityBands[0]'s; each level once");
  });
});

describe('flowControl.defaultNegativePriorityBand and enableEviction (llm-d-router v0.10.0 endpointpickerconfig_types.go, flowcontrol/registry/registry.go provisionPriorityBandLocked)', () => {
  test('defaultNegativePriorityBand is kept and bounds every unlisted level below 0; other unlisted levels take defaultPriorityBand, listed ones their own', async () => {
    const config = parseEndpointPickerConfig(`${LLMD}plugins: []
flowControl:
  defaultPriorityBand: {maxRequests: 5}
  defaultNegativePriorityBand: {maxRequests: 1, maxBytes: 1k}
  priorityBands:
  - {priority: -5, maxRequests: 3}
`);
    expect(config.flowControl!.defaultNegativePriorityBand).toEqual({ maxRequests: 1, maxBytes: 1000 });
    const flow = resolveFlowControl(config);
    expect(flow.defaultNegativeBand).toEqual({ maxRequests: 1, maxBytes: 1000, fairness: 'global-strict' });
    expect(flow.bands.get(-5)).toMatchObject({ maxRequests: 3 });
    expect(flow.bands.get(0)).toBeUndefined();
    const queue = new FlowControlQueue({ maxQueued: 100, maxQueuedBytes: 1_000_000, maxWaitMs: 60_000, maxDispatchPerCall: 1, bands: flow.bands, defaultBand: flow.defaultBand, defaultNegativeBand: flow.defaultNegativeBand });
    const settle = (priority: number) => queue.enqueue({ flow: 'f', priority }).then(() => 'dispatched', (e: { reason?: string }) => e.reason);
    const waiting = [settle(-2)];
    expect(await settle(-2)).toBe('queue-full'); // -2's band (the negative template) holds one
    waiting.push(settle(-3), settle(0), settle(0)); // -3 has its own band; 0 takes defaultPriorityBand's 5
    expect(queue.sizes()).toEqual(new Map([[-2, 1], [-3, 1], [0, 2]]));
    queue.close();
    expect(await Promise.all(waiting)).toEqual(['closed', 'closed', 'closed', 'closed']);
  });

  test('enableEviction: false (upstream\'s default) loads and changes nothing; true is refused, as kvroute does not evict', () => {
    expect(parseEndpointPickerConfig(`${LLMD}plugins: []\nflowControl: {enableEviction: false}\n`).flowControl).not.toHaveProperty('enableEviction');
    expect(configErrorOf(() => parseEndpointPickerConfig(`${LLMD}plugins: []\nflowControl: {enableEviction: true}\n`)))
      .toBe('flowControl.enableEviction: true is not supported: kvroute never terminates a request it has dispatched; a sheddable request is refused or displaced only while it waits. Remove it or set false');
    expect(configErrorOf(() => parseEndpointPickerConfig(`${LLMD}plugins: []\nflowControl: {enableEviction: "yes"}\n`)))
      .toBe('flowControl.enableEviction: must be true or false, got "yes"');
  });
});

describe('core-metrics-extractor engineLabelKey (llm-d-router v0.10.0 pkg/epp/framework/plugins/datalayer/extractor/metrics/mapping_registry.go)', () => {
  test('defaults to llm-d.ai/engine-type, v0.10.0\'s DefaultEngineTypeLabelKey; a configured key is kept', () => {
    const params = (yaml: string) => parseEndpointPickerConfig(yaml).plugins.find((p) => p.type === 'core-metrics-extractor')?.parameters;
    expect(params(`${LLMD}plugins:\n- type: core-metrics-extractor\n- type: queue-scorer\n`)).toEqual({ defaultEngine: 'vllm', engineLabelKey: 'llm-d.ai/engine-type' });
    expect(params(`${GIE}plugins:\n- type: core-metrics-extractor\n  parameters:\n    engineLabelKey: inference.networking.k8s.io/engine-type\n- type: queue-scorer\n`))
      .toEqual({ defaultEngine: 'vllm', engineLabelKey: 'inference.networking.k8s.io/engine-type' });
  });
});

describe('llm-d-router v0.10.0\'s Helm chart configs (config/charts/routerlib/templates/_config.yaml, rendered with the chart\'s defaults)', () => {
  test.each([
    ['default-plugins.yaml (vllm over http: no parsers section): GIE v1.5.0\'s chart default under llm-d\'s group', LLMD_HELM_DEFAULT, ['queue-scorer', 'kv-cache-utilization-scorer', 'prefix-cache-scorer']],
    // The chart's payload-agnostic.yaml is the guide's config (wellknown_configs_test.go "payload-agnostic").
    ['payload-agnostic.yaml', LLMD_GUIDE_CONFIGS['payload-agnostic'], ['active-request-scorer', 'session-affinity-scorer']],
  ])('%s loads and builds a scheduler with its scorers', (_name, text, scorers) => {
    const config = parseEndpointPickerConfig(text);
    expect(config.apiVersion).toBe('llm-d.ai/v1alpha1');
    const scheduler = buildScheduler(config);
    expect(scheduler.plugins.ofKind('scorer').map((p) => p.type).sort()).toEqual([...scorers].sort());
  });
});

describe('token-producer (llm-d-router v0.10.0 pkg/epp/framework/plugins/requestcontrol/dataproducer/tokenizer) and its precise sample (deploy/config/epp-precise-prefix-cache-config.yaml)', () => {
  // That sample's pipeline: token-producer -> precise-prefix-cache-producer -> prefix-cache-scorer, the producer also
  // named as an extractor of endpoint-notification-source.
  const PRECISE = `${LLMD}plugins:
  - type: token-producer
    parameters:
      modelName: hf-repo/model-name
      vllm:
        url: http://localhost:8000
  - type: endpoint-notification-source
  - type: metrics-data-source
  - type: core-metrics-extractor
  - type: single-profile-handler
  - type: decode-filter
  - type: precise-prefix-cache-producer
    parameters:
      tokenProcessorConfig:
        blockSize: 64
      indexerConfig:
        kvBlockIndexConfig:
          enableMetrics: true
  - type: prefix-cache-scorer
    parameters:
      prefixMatchInfoProducerName: precise-prefix-cache-producer
  - type: queue-scorer
  - type: max-score-picker
dataLayer:
  sources:
    - pluginRef: metrics-data-source
      extractors:
        - pluginRef: core-metrics-extractor
    - pluginRef: endpoint-notification-source
      extractors:
        - pluginRef: precise-prefix-cache-producer
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: decode-filter
      - pluginRef: prefix-cache-scorer
        weight: 2.0
      - pluginRef: queue-scorer
        weight: 1.0
      - pluginRef: max-score-picker
`;

  test('loads: the precise scorer tokenizes with the token-producer\'s model, and the extractor reference follows the merged producer', () => {
    // Parsed, not built: building would load the model's tokenizer (a native addon) in the background.
    const c = parseEndpointPickerConfig(PRECISE);
    const scorer = c.plugins.find((p) => p.name === 'prefix-cache-scorer')!;
    expect(scorer.type).toBe('precise-prefix-cache-scorer');
    expect((scorer.parameters as { indexerConfig: { tokenizersPoolConfig: { modelName: string } } }).indexerConfig.tokenizersPoolConfig.modelName).toBe('hf-repo/model-name');
    expect(c.dataLayer!.sources[1]).toEqual({ pluginRef: 'endpoint-notification-source', extractors: [{ pluginRef: 'prefix-cache-scorer' }] });
    expect(c.plugins.find((p) => p.type === 'token-producer')!.parameters).toEqual({ modelName: 'hf-repo/model-name', vllm: { url: 'http://localhost:8000' }, udsTokenizerConfig: {}, estimate: {} });
  });

  test('a model the precise producer names itself wins over the token-producer\'s', () => {
    const c = parseEndpointPickerConfig(PRECISE.replace('        kvBlockIndexConfig:\n', '        tokenizersPoolConfig: {modelName: own/model}\n        kvBlockIndexConfig:\n'));
    expect((c.plugins.find((p) => p.name === 'prefix-cache-scorer')!.parameters as { indexerConfig: { tokenizersPoolConfig: { modelName: string } } }).indexerConfig.tokenizersPoolConfig.modelName).toBe('own/model');
  });

  test.each([
    ['url: http://localhost:8000', 'url: http://localhost:8000/', 'plugins[0].parameters.vllm.url: must be an http:// base URL without a trailing slash'],
    ['url: http://localhost:8000', 'url: https://vllm:8000', 'plugins[0].parameters.vllm.url: must be an http:// base URL'],
    ['url: http://localhost:8000', 'timeout: 5', 'plugins[0].parameters.vllm.timeout: must be'],
    ['url: http://localhost:8000', 'grpc: {}', 'plugins[0].parameters.vllm.grpc: unknown field'],
  ])('a token-producer with %s replaced by %s is refused: %s', (from, to, message) => {
    expect(() => parseEndpointPickerConfig(PRECISE.replace(from, to))).toThrow(message);
  });
});

describe("the approximate prefix window of llm-d's form (llm-d-router v0.10.0 approximateprefix/types.go defaultMaxPrefixTokens, #1548)", () => {
  const pod = (name: string): EndpointSnapshot => ({
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now() },
    activeRequests: 0,
  });
  const PLUGINS = 'plugins:\n- {type: prefix-cache-scorer}\nschedulingProfiles:\n- name: default\n  plugins: [{pluginRef: prefix-cache-scorer}]\n';
  const windowOf = (head: string, extra = '') => {
    const c = parseEndpointPickerConfig(`${head}${PLUGINS.replace('{type: prefix-cache-scorer}', `{type: prefix-cache-scorer${extra}}`)}`);
    return c.plugins.find((p) => p.type === 'prefix-cache-scorer')!.parameters as { maxPrefixTokensToMatch: number; maxPrefixBlocksToMatch: number };
  };

  test("llm-d's group matches up to 131072 tokens where the config sets no token window; GIE's keeps its 256 blocks; a token window set is kept", () => {
    // Blocks of at least 64 tokens there (approximateprefix/plugin.go minBlockSizeTokens): 131072 / 64 = 2048 blocks.
    expect(windowOf(LLMD)).toMatchObject({ maxPrefixTokensToMatch: 131072, maxPrefixBlocksToMatch: 2048, minBlockSizeTokens: 64, partialLastBlock: true });
    expect(windowOf(GIE)).toMatchObject({ maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 256, minBlockSizeTokens: 1, partialLastBlock: false });
    expect(windowOf(LLMD, ', parameters: {maxPrefixTokensToMatch: 4096}')).toMatchObject({ maxPrefixTokensToMatch: 4096, maxPrefixBlocksToMatch: 64 });
    // approximateprefix/plugin.go resolveMaxBlocks @ v0.10.0: the token window wins whenever positive, its default
    // included, so a block cap alone changes nothing there; it applies under maxPrefixTokensToMatch: 0, by default
    // v0.10.0's 2048 blocks (types.go defaultMaxPrefixBlocks).
    expect(windowOf(LLMD, ', parameters: {maxPrefixBlocksToMatch: 64}')).toMatchObject({ maxPrefixTokensToMatch: 131072, maxPrefixBlocksToMatch: 2048 });
    expect(windowOf(LLMD, ', parameters: {maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 64}')).toMatchObject({ maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 64 });
    expect(windowOf(LLMD, ', parameters: {maxPrefixTokensToMatch: 0}')).toMatchObject({ maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 2048 });
    expect(windowOf(GIE, ', parameters: {maxPrefixBlocksToMatch: 64}')).toMatchObject({ maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 64 });
    // The block cap that changes nothing is said so in the config's notes (the window it reads is the token one).
    const blocksOnly = parseEndpointPickerConfig(`${LLMD}${PLUGINS.replace('{type: prefix-cache-scorer}', '{type: prefix-cache-scorer, parameters: {maxPrefixBlocksToMatch: 64}}')}`);
    expect(endpointPickerConfigNotes(blocksOnly)).toContain('prefix-cache-scorer "prefix-cache-scorer": maxPrefixBlocksToMatch (64) is not used: llm-d-router v0.10.0 reads it only '
      + 'when maxPrefixTokensToMatch is 0, and that defaults to 131072 tokens; set maxPrefixTokensToMatch: 0 to cap the match by blocks');
    expect(endpointPickerConfigNotes(parseEndpointPickerConfig(`${LLMD}${PLUGINS}`)).join('\n')).not.toContain('maxPrefixBlocksToMatch');
    // Through the producer, as llm-d's samples write it.
    const c = parseEndpointPickerConfig(`${LLMD}plugins:\n- {type: approx-prefix-cache-producer, parameters: {lruCapacityPerServer: 31250}}\n${PLUGINS.slice('plugins:\n'.length)}`);
    expect(c.plugins.find((p) => p.type === 'prefix-cache-scorer')!.parameters).toMatchObject({ maxPrefixTokensToMatch: 131072 });
  });

  test('two pods holding prompts that share their first 8K tokens: past GIE\'s window only the 128K one scores the pod holding the request\'s longer prefix higher', () => {
    const shared = Array.from({ length: 800 }, (_, i) => `shared document line ${i} `.padEnd(40, '.')).join(''); // 32,000 characters
    const tails = { a: ' question about apples '.repeat(40), b: ' question about bridges '.repeat(40) };
    const matched = (head: string) => {
      const scheduler = buildScheduler(parseEndpointPickerConfig(`${head}${PLUGINS}`));
      const [a, b] = [pod('a'), pod('b')];
      const req = (prompt: string) => ({ requestId: 'r', model: 'm', prompt, headers: {} });
      scheduler.schedule(req(shared + tails.a), [a]);
      scheduler.schedule(req(shared + tails.b), [b]);
      // The prefix score (the cached length past the window is known to kvroute's tail probes, but scores stop there).
      const { scores } = scheduler.schedule(req(shared + tails.a), [a, b]);
      return [scores.get('a:8000')!, scores.get('b:8000')!];
    };
    const [llmdA, llmdB] = matched(LLMD);
    expect(llmdA).toBeGreaterThan(llmdB);
    const [gieA, gieB] = matched(GIE);
    expect(gieA).toBe(gieB);
  });
  // llm-d-router v0.10.0 cuts a prompt into blocks of at least 64 tokens (approximateprefix/plugin.go GetBlockSize,
  // minBlockSizeTokens) and hashes the short last block too (prefixhash/hashing.go getKVCacheBlocksFromTokens), its
  // tokens the estimate's 4 bytes each (dataproducer/tokenizer/estimate.go packBytes); GIE v1.5.0 hashes full blocks of
  // the pods' size (16 tokens, 64 characters) only (approximateprefix/hashing.go).
  const scoresAfter = (head: string, served: string, asked: string, blockSize = 16) => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(`${head}${PLUGINS}`));
    const tuned = (name: string): EndpointSnapshot => ({ ...pod(name), metrics: { ...pod(name).metrics, blockSize } });
    const [a, b] = [tuned('a'), tuned('b')];
    const req = (prompt: string) => ({ requestId: 'r', model: 'm', prompt, headers: {} });
    scheduler.schedule(req(served), [a]);
    const { scores } = scheduler.schedule(req(asked), [a, b]);
    return [scores.get('a:8000')!, scores.get('b:8000')!];
  };

  test("llm-d's group matches a repeated prompt shorter than one block on the pod that served it; GIE's hashes no block of it", () => {
    const short = 'What is the capital of France?'; // 30 characters: under GIE's 64, under llm-d's 256
    expect(scoresAfter(LLMD, short, short)).toEqual([1, 0]);
    expect(scoresAfter(GIE, short, short)).toEqual([0, 0]);
  });

  test("llm-d's group scores in blocks of 64 tokens even when the pods' blocks are 16: a shared 200-character head is no shared block there", () => {
    const head = 'h'.repeat(200);
    const [x, y] = [`${head}${'x'.repeat(312)}`, `${head}${'y'.repeat(312)}`]; // 512 characters: two blocks of 256
    expect(scoresAfter(LLMD, x, y)).toEqual([0, 0]);
    // GIE: three of eight 64-character blocks are shared.
    expect(scoresAfter(GIE, x, y)).toEqual([3 / 8, 0]);
    // A larger block size of the pods' is kept (only smaller ones are raised): 128 tokens, one block of 512 characters.
    expect(scoresAfter(LLMD, x, x, 128)).toEqual([1, 0]);
  });

  test("under llm-d's cut a pod keeps one index entry a KV block of its own, as upstream's makeserver sizes it (NumOfGPUBlocks entries), whatever the hashed block", () => {
    const entriesOf = (head: string) => {
      const scheduler = buildScheduler(parseEndpointPickerConfig(`${head}${PLUGINS}`));
      const tuned: EndpointSnapshot = { ...pod('a'), metrics: { ...pod('a').metrics, blockSize: 16, numGpuBlocks: 1000 } };
      scheduler.schedule({ requestId: 'r', model: 'm', prompt: 'x'.repeat(1000), headers: {} }, [tuned]);
      return (scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer).index.capacityOf('a:8000');
    };
    expect(entriesOf(LLMD)).toBe(1000);
    expect(entriesOf(GIE)).toBe(1000);
  });

  test("llm-d's deprecated blockSize counts tokens, mapped into blockSizeTokens with upstream's deprecation note (approximateprefix/plugin.go ApproxPrefixCacheFactory, #1068); GIE's v1.1-v1.3 one counts characters", () => {
    const scorerOf = (head: string, parameters: string) => parseEndpointPickerConfig(`${head}${PLUGINS.replace('{type: prefix-cache-scorer}', `{type: prefix-cache-scorer, parameters: ${parameters}}`)}`);
    const llmd = scorerOf(LLMD, '{blockSize: 128}');
    expect(llmd.plugins.find((p) => p.type === 'prefix-cache-scorer')!.parameters).toMatchObject({ hashBlockSize: 512 });
    expect(endpointPickerConfigNotes(llmd).join('\n')).toContain("'blockSize' is deprecated; use 'blockSizeTokens' instead");
    expect(endpointPickerConfigNotes(llmd).join('\n')).not.toContain('minimum of 64');
    // A blockSizeTokens set otherwise than its default wins, as upstream keeps it.
    expect(scorerOf(LLMD, '{blockSize: 128, blockSizeTokens: 96}').plugins.find((p) => p.type === 'prefix-cache-scorer')!.parameters).toMatchObject({ hashBlockSize: 384 });
    expect(scorerOf(GIE, '{blockSize: 128}').plugins.find((p) => p.type === 'prefix-cache-scorer')!.parameters).toMatchObject({ hashBlockSize: 128 });
  });

  test("a block size under llm-d's 64 tokens is raised with a note, as upstream overrides it with a warning (approximateprefix/plugin.go newDataProducer)", () => {
    const config = parseEndpointPickerConfig(`${LLMD}${PLUGINS.replace('{type: prefix-cache-scorer}', '{type: prefix-cache-scorer, parameters: {blockSizeTokens: 16}}')}`);
    expect(endpointPickerConfigNotes(config).join('\n')).toContain('the configured block size (16 tokens) is below llm-d-router v0.10.0\'s minimum of 64 and is raised to it');
    expect(endpointPickerConfigNotes(parseEndpointPickerConfig(`${LLMD}${PLUGINS}`)).join('\n')).not.toContain('minimum of 64');
  });
});
