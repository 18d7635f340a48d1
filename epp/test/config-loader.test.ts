import {
  ConfigError,
  defaultEndpointPickerConfig,
  endpointPickerConfigNotes,
  prefixFirstEndpointPickerConfig,
  KNOWN_PLUGIN_TYPES,
  latencyEndpointPickerConfig,
  parseEndpointPickerConfig,
  preciseEndpointPickerConfig,
  withoutLatencyScorer,
  renderEndpointPickerConfig,
  resolvePluginParameters,
  validateEndpointPickerConfig,
  type EndpointPickerConfig,
} from '../src/config';
import { configErrorOf } from './config-error';
import { buildScheduler } from '../src/scheduling/scheduler';

const HEADER = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';


describe('llm-d v0.2.1 / GIE v0.5.1 sample configs load unchanged', () => {
  it('IS deploy/config/epp-config.yaml: decode-filter → prefix-cache-scorer (2) → max-score-picker', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
- type: single-profile-handler
- type: decode-filter
- type: prefix-cache-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: max-score-picker
`);
    expect(config).toEqual({
      apiVersion: 'inference.networking.x-k8s.io/v1alpha1',
      kind: 'EndpointPickerConfig',
      plugins: [
        { type: 'single-profile-handler', name: 'single-profile-handler' },
        { type: 'decode-filter', name: 'decode-filter' },
        {
          type: 'prefix-cache-scorer',
          name: 'prefix-cache-scorer',
          parameters: {
            mode: 'estimate',
            hashBlockSize: 64,
            maxPrefixBlocksToMatch: 256,
            maxPrefixTokensToMatch: 0,
            minBlockSizeTokens: 1,
            partialLastBlock: false,
            // No block size given: the pods' own, as GIE v1.5.0's autoTune takes it (64 characters until scraped).
            tuneBlockSize: true,
            autoTune: true,
            capacityFactor: 1,
            learnCharactersPerToken: false,
            lruCapacityPerServer: 31250,
            maxIndexEntries: 8_000_000,
            // llm-d-router v0.10.0's scorer parameters, at their defaults: the matched share alone.
            matchLengthWeight: 0,
            matchLengthScaleTokens: 8192,
          },
        },
        { type: 'max-score-picker', name: 'max-score-picker', parameters: { maxNumOfEndpoints: 1 } },
        // GIE's default detector (config/loader/defaults.go ensureSaturationDetector), as GIE v1.5.0 adds it.
        { type: 'utilization-detector', name: 'utilization-detector', parameters: { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessThreshold: '200ms', headroom: 0 } },
      ],
      schedulingProfiles: [
        {
          name: 'default',
          plugins: [
            { pluginRef: 'decode-filter' },
            { pluginRef: 'prefix-cache-scorer', weight: 2 },
            { pluginRef: 'max-score-picker' },
          ],
        },
      ],
      saturationDetector: { pluginRef: 'utilization-detector' },
    });
  });

  it('IS epp-prefix-estimate-config.yaml: prefix 2.0 + load-aware 1.0, weights written as reals', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
- type: single-profile-handler
- type: decode-filter
- type: prefix-cache-scorer
  parameters:
    mode: estimate
    hashBlockSize: 64
    maxPrefixBlocksToMatch: 256
    lruCapacityPerServer: 31250
- type: load-aware-scorer
  parameters:
    threshold: 128
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: prefix-cache-scorer
    weight: 2.0
  - pluginRef: load-aware-scorer
    weight: 1.0
  - pluginRef: max-score-picker
`);
    expect(config.schedulingProfiles[0]!.plugins).toEqual([
      { pluginRef: 'decode-filter' },
      { pluginRef: 'prefix-cache-scorer', weight: 2 },
      { pluginRef: 'load-aware-scorer', weight: 1 },
      { pluginRef: 'max-score-picker' },
    ]);
    expect(config.plugins[3]).toEqual({ type: 'load-aware-scorer', name: 'load-aware-scorer', parameters: { threshold: 128 } });
  });

  it('GIE chart v0.5.1 plugins-v2.yaml: queue 1 / kv-cache-scorer 1 / prefix 1 (the v0.5.1 kv scorer name)', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
- type: queue-scorer
- type: kv-cache-scorer
- type: prefix-cache-scorer
  parameters:
    hashBlockSize: 64
    maxPrefixBlocksToMatch: 256
    lruCapacityPerServer: 31250
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 1
  - pluginRef: kv-cache-scorer
    weight: 1
  - pluginRef: prefix-cache-scorer
    weight: 1
  - pluginRef: max-score-picker
`);
    expect(config.plugins.map((p) => p.type)).toEqual([
      'queue-scorer',
      'kv-cache-scorer',
      'prefix-cache-scorer',
      'max-score-picker',
      'single-profile-handler',
      'utilization-detector',
    ]);
  });

  it('GIE\'s later prefix-cache-scorer parameters (blockSize v1.1-v1.3 in characters; blockSizeTokens from v1.4; v1.5 maxPrefixTokensToMatch) map onto kvroute\'s', () => {
    const resolved = (parameters: string) => parseEndpointPickerConfig(`${HEADER}plugins:\n- type: prefix-cache-scorer\n  parameters: ${parameters}\n`)
      .plugins.find((p) => p.type === 'prefix-cache-scorer')!.parameters as { hashBlockSize: number; maxPrefixBlocksToMatch: number };
    // GIE v1.5.0 site-src/guides/epp-configuration/config-text.md's complete example.
    expect(resolved('{blockSizeTokens: 5, maxPrefixBlocksToMatch: 256, lruCapacityPerServer: 31250}')).toMatchObject({ hashBlockSize: 20, maxPrefixBlocksToMatch: 256 });
    // GIE v1.5.0 site-src/guides/troubleshooting.md.
    expect(resolved('{blockSize: 64}')).toMatchObject({ hashBlockSize: 64 });
    expect(resolved('{blockSize: 32, blockSizeTokens: 16}')).toMatchObject({ hashBlockSize: 64 });
    expect(resolved('{blockSizeTokens: 16, maxPrefixTokensToMatch: 2048, maxPrefixBlocksToMatch: 9}')).toMatchObject({ hashBlockSize: 64, maxPrefixBlocksToMatch: 128 });
    expect(resolved('{hashBlockSize: 64}')).toMatchObject({ hashBlockSize: 64, maxPrefixBlocksToMatch: 256 });
  });

  it('IS epp-prefix-cache-tracking-config.yaml (llm-d v0.2.1 precise mode, pkg/plugins/scorer/prefix_cache.go) loads as precise-prefix-cache-scorer under the same name', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
  - type: single-profile-handler
  - type: decode-filter
  - type: prefix-cache-scorer
    parameters:
      mode: cache_tracking
      indexerConfig:
        tokenProcessorConfig:
          blockSize: 64
          hashSeed: "42"
        kvBlockIndexConfig:
          enableMetrics: true
  - type: kv-cache-scorer
  - type: queue-scorer
  - type: max-score-picker
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: decode-filter
      - pluginRef: prefix-cache-scorer
        weight: 3.0
      - pluginRef: kv-cache-scorer
        weight: 1.0
      - pluginRef: queue-scorer
        weight: 1.0
      - pluginRef: max-score-picker
`);
    const scorer = config.plugins.find((p) => p.name === 'prefix-cache-scorer')!;
    expect(scorer.type).toBe('precise-prefix-cache-scorer');
    const parameters = scorer.parameters as { indexerConfig: { tokenProcessorConfig: { blockSize: number } } };
    expect(parameters.indexerConfig.tokenProcessorConfig.blockSize).toBe(64);
    expect(config.schedulingProfiles[0]!.plugins.find((r) => r.pluginRef === 'prefix-cache-scorer')!.weight).toBe(3);
    // Rendered, it loads back to the same value, as the precise type.
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    expect(configErrorOf(() => parseEndpointPickerConfig(`${HEADER}plugins:\n- type: prefix-cache-scorer\n  parameters: {mode: exact}\n`)))
      .toBe('plugins[0].parameters.mode: must be "estimate" or "cache_tracking" (llm-d v0.2\'s precise mode), got "exact"');
  });

  it('the llm-d v0.2.1 P/D sample (pd-profile-handler, prefill-header-handler) loads; starting it names the decode profile it lacks', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
- type: prefill-header-handler
- type: prefix-cache-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
- type: pd-profile-handler
`);
    expect(config.plugins.map((p) => p.type)).toEqual(expect.arrayContaining(['prefill-header-handler', 'pd-profile-handler']));
    expect(configErrorOf(() => buildScheduler(config))).toBe('plugins[5].parameters.decodeProfile: no scheduling profile named "decode"; profiles: default');
  });

  it('an unknown type is named with the known ones listed', () => {
    expect(configErrorOf(() => parseEndpointPickerConfig(`${HEADER}plugins:\n- type: encode-filer\n`)))
      .toBe(`plugins[0].type: unknown plugin type "encode-filer"; known types: ${KNOWN_PLUGIN_TYPES.join(', ')}`);
  });
});

describe('validation errors name the field and what is allowed', () => {
  const plugins = (yaml: string) => `${HEADER}plugins:\n${yaml}`;

  it.each([
    ['YAML syntax', `${HEADER}plugins: [\n`, /^invalid YAML: /],
    ['duplicate key', `${HEADER}kind: EndpointPickerConfig\nplugins: []\n`, /^invalid YAML: Map keys must be unique/],
    ['several documents', `${HEADER}plugins: []\n---\n${HEADER}plugins: []\n`, /^expected one YAML document, got several$/],
    ['empty file', '', /^empty document; expected an EndpointPickerConfig$/],
  ])('%s', (_case, yaml, pattern) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(yaml))).toMatch(pattern);
  });

  it.each<[string, string, string]>([
    ['not a map', '- just a list\n', 'must be a map, got a list'],
    ['wrong apiVersion', 'apiVersion: v1\nkind: EndpointPickerConfig\nplugins: []\n', 'apiVersion: must be "llm-d.ai/v1alpha1" or "inference.networking.x-k8s.io/v1alpha1", got "v1"'],
    ['wrong kind', 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: ConfigMap\nplugins: []\n', 'kind: must be "EndpointPickerConfig", got "ConfigMap"'],
    ['plugins not a list', `${HEADER}plugins: {type: queue-scorer}\n`, 'plugins: must be a list of plugins, got a map'],
    ['unknown top-level field', `${HEADER}plugins: []\nscorers: {}\n`, 'scorers: unknown field; allowed: apiVersion, kind, plugins, schedulingProfiles, featureGates, flowControl, dataLayer, parser, requestHandler, saturationDetector'],
    ['saturationDetector naming no plugin', `${HEADER}plugins: []\nsaturationDetector: {pluginRef: mine}\n`, 'saturationDetector.pluginRef: no plugin named "mine"; plugins are: max-score-picker, single-profile-handler'],
    ['unknown feature gate', `${HEADER}plugins: []\nfeatureGates: [flowControl, prepareDataPlugins]\n`, 'featureGates[1]: unknown feature gate "prepareDataPlugins"; known: flowControl, dataLayer, enableLegacyMetrics, haPopulateNonLeaderDatastore'],
    ['unknown flowControl field', `${HEADER}plugins: []\nflowControl: {maxBites: 1Gi}\n`, 'flowControl.maxBites: unknown field; allowed: objectives, priorityBands, defaultPriorityBand, defaultNegativePriorityBand, saturationDetector, enableEviction, usageLimitPolicyPluginRef, sessionFairness, enabled, maxRequests, maxQueued, maxBytes, maxQueuedBytes, defaultRequestTTL, dispatchPerTick, dispatchInterval, maxHeaderPriority'],
    ['zero flowControl.maxQueuedBytes', `${HEADER}plugins: []\nflowControl: {maxQueuedBytes: 0}\n`, 'flowControl.maxQueuedBytes: must be an integer >= 1, got 0'],
    ['zero flowControl.maxQueued', `${HEADER}plugins: []\nflowControl: {maxQueued: 0}\n`, 'flowControl.maxQueued: must be an integer >= 1, got 0'],
    ['bad flowControl.defaultRequestTTL', `${HEADER}plugins: []\nflowControl: {defaultRequestTTL: 30}\n`, 'flowControl.defaultRequestTTL: must be a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns), got 30'],
    ['objective priority that is not an integer', `${HEADER}plugins: []\nflowControl: {objectives: {batch: 1.5}}\n`, 'flowControl.objectives.batch: must be an integer, got 1.5'],
    ['header priority cap out of range', `${HEADER}plugins: []\nflowControl: {maxHeaderPriority: 101}\n`, 'flowControl.maxHeaderPriority: must be an integer between -100 and 100, got 101'],
    ['plugin without type', plugins('- name: x\n'), 'plugins[0].type: must be a non-empty string, got nothing'],
    ['unknown plugin field', plugins('- type: queue-scorer\n  weight: 2\n'), 'plugins[0].weight: unknown field; allowed: type, name, parameters'],
    [
      'non-integer block size',
      plugins('- type: queue-scorer\n- type: decode-filter\n- type: prefix-cache-scorer\n  parameters:\n    hashBlockSize: abc\n'),
      'plugins[2].parameters.hashBlockSize: must be an integer >= 1, got "abc"',
    ],
    ['zero block size', plugins('- type: prefix-cache-scorer\n  parameters: {hashBlockSize: 0}\n'), 'plugins[0].parameters.hashBlockSize: must be an integer >= 1, got 0'],
    ['fractional capacity', plugins('- type: prefix-cache-scorer\n  parameters: {lruCapacityPerServer: 1.5}\n'), 'plugins[0].parameters.lruCapacityPerServer: must be an integer >= 0, got 1.5'],
    ['unknown mode', plugins('- type: prefix-cache-scorer\n  parameters: {mode: exact}\n'), 'plugins[0].parameters.mode: must be "estimate" or "cache_tracking" (llm-d v0.2\'s precise mode), got "exact"'],
    [
      'unknown parameter',
      plugins('- type: prefix-cache-scorer\n  parameters: {blockChars: 16}\n'),
      'plugins[0].parameters.blockChars: unknown field; allowed: mode, hashBlockSize, blockSize, blockSizeTokens, maxPrefixTokensToMatch, maxPrefixBlocksToMatch, minBlockSizeTokens, partialLastBlock, autoTune, tuneBlockSize, capacityFactor, learnCharactersPerToken, lruCapacityPerServer, maxIndexEntries, matchLengthWeight, matchLengthScaleTokens',
    ],
    [
      'kvroute\'s hashBlockSize beside one of GIE\'s block sizes',
      plugins('- type: prefix-cache-scorer\n  parameters: {hashBlockSize: 64, blockSizeTokens: 16}\n'),
      'plugins[0].parameters.blockSizeTokens: give the block size once: hashBlockSize (characters) and GIE\'s blockSizeTokens are both set',
    ],
    ['zero index budget', plugins('- type: prefix-cache-scorer\n  parameters: {maxIndexEntries: 0}\n'), 'plugins[0].parameters.maxIndexEntries: must be an integer >= 1, got 0'],
    ['index budget as bytes', plugins('- type: prefix-cache-scorer\n  parameters: {maxIndexEntries: 256Mi}\n'), 'plugins[0].parameters.maxIndexEntries: must be an integer >= 1, got "256Mi"'],
    ['negative precise index budget', plugins('- type: precise-prefix-cache-scorer\n  parameters: {maxIndexEntries: -1}\n'), 'plugins[0].parameters.maxIndexEntries: must be an integer >= 1, got -1'],
    ['autoTune not a boolean', plugins('- type: prefix-cache-scorer\n  parameters: {autoTune: "yes"}\n'), 'plugins[0].parameters.autoTune: must be true or false, got "yes"'],
    ['parameters not a map', plugins('- type: max-score-picker\n  parameters: 3\n'), 'plugins[0].parameters: must be a map, got 3'],
    // GIE v1.5.0 pkg/epp/framework/plugins/scheduling/scorer/latency/plugin.go registers another latency-scorer.
    [
      "GIE v1.5.0's latency-scorer parameters",
      plugins('- type: latency-scorer\n  parameters: {ttftWeight: 0.8, tpotWeight: 0.2}\n'),
      "plugins[0].parameters.ttftWeight: is a parameter of GIE v1.5.0's latency-scorer (predicted-latency headroom from its predicted-latency-producer), which kvroute does not implement; kvroute's latency-scorer learns each pod's time to first token online and takes priorPrefillMsPerToken, priorOverheadMs, priorWeight, halfLife, pendingTimeout, charactersPerToken, maxNumSeqs, slotWait, sessionHeaders, ownPrefillWeight, fasterPodRatio, keepOneOffOnHolder, and llm-d-router v0.10.0's latencyPredictionInfoProducerName and prefixMatchInfoProducerName",
    ],
    ['picker count', plugins('- type: max-score-picker\n  parameters: {maxNumOfEndpoints: 0}\n'), 'plugins[0].parameters.maxNumOfEndpoints: must be an integer >= 1, got 0'],
    [
      'duration without unit',
      plugins('- type: session-affinity-filter\n  parameters: {ttl: "30"}\n'),
      'plugins[0].parameters.ttl: must be a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns), got "30" (a number without a unit)',
    ],
    [
      'duration as a number',
      plugins('- type: session-affinity-filter\n  parameters: {ttl: 120}\n'),
      'plugins[0].parameters.ttl: must be a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns), got 120',
    ],
    ['zero duration', plugins('- type: session-affinity-filter\n  parameters: {ttl: 0s}\n'), 'plugins[0].parameters.ttl: must be longer than 0, got "0s"'],
    ['empty header list', plugins('- type: session-affinity-filter\n  parameters: {headers: []}\n'), 'plugins[0].parameters.headers: must list at least 1 value(s)'],
    ['bad header', plugins('- type: session-affinity-filter\n  parameters: {headers: [x-a, 3]}\n'), 'plugins[0].parameters.headers[1]: must be a non-empty string, got 3'],
    ['KV threshold above 1', plugins('- type: saturation-filter\n  parameters: {kvCacheUtilThreshold: 80}\n'), 'plugins[0].parameters.kvCacheUtilThreshold: must be a number between 0 and 1, got 80'],
    ['by-label without label', plugins('- type: by-label\n  parameters: {validValues: [a]}\n'), 'plugins[0].parameters.label: must be a non-empty string, got nothing'],
    ['by-label boolean', plugins('- type: by-label\n  parameters: {label: a, allowsNoLabel: "yes"}\n'), 'plugins[0].parameters.allowsNoLabel: must be true or false, got "yes"'],
    // llm-d v0.8.0 pkg/plugins/filter/bylabel/filter.go refuses the same: the filter would keep no pod.
    ['by-label keeping nothing', plugins('- type: by-label\n  parameters: {label: a}\n'), "plugins[0].parameters.validValues: either 'validValues' must be non-empty or 'allowsNoLabel' must be true: the filter would keep no pod"],
    [
      'duplicate name (defaulted from type)',
      plugins('- type: queue-scorer\n- type: decode-filter\n- type: queue-scorer\n'),
      'plugins[2].name: duplicate plugin name "queue-scorer" (also plugins[0]); the name defaults to the type, so give one of them a distinct name',
    ],
    [
      'unresolved pluginRef',
      plugins('- type: queue-scorer\n- type: decode-filter\nschedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue\n'),
      'schedulingProfiles[0].plugins[0].pluginRef: no plugin named "queue"; plugins are: queue-scorer, decode-filter',
    ],
    [
      'two pickers',
      plugins('- type: max-score-picker\n- type: random-picker\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: max-score-picker\n  - pluginRef: random-picker\n'),
      'schedulingProfiles[0].plugins: at most one picker per profile, got max-score-picker, random-picker',
    ],
    [
      'two pickers in the defaulted profile',
      plugins('- type: max-score-picker\n- type: random-picker\n'),
      'schedulingProfiles (defaulted from plugins).plugins: at most one picker per profile, got max-score-picker, random-picker',
    ],
    [
      'a scorer that reads the prefix match listed before the prefix scorer that writes it (scorers run in order)',
      plugins('- type: prefill-priority\n- type: prefix-cache-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: prefill-priority\n  - pluginRef: prefix-cache-scorer\n'),
      'schedulingProfiles[0].plugins[0].pluginRef: "prefill-priority" reads the prefix-match that "prefix-cache-scorer" (plugins[1]) writes, and scorers run in the order listed: list "prefill-priority" after it',
    ],
    [
      'the same order in the profile defaulted from the plugin list, for the precise scorer and no-hit-lru',
      plugins('- type: no-hit-lru-scorer\n- type: precise-prefix-cache-scorer\n'),
      'schedulingProfiles (defaulted from plugins).plugins[0].pluginRef: "no-hit-lru-scorer" reads the prefix-match that "precise-prefix-cache-scorer" (plugins[1]) writes, and scorers run in the order listed: list "no-hit-lru-scorer" after it',
    ],
    [
      // scheduler_profile.go AddPlugins: "failed to set ... as picker, already have a registered picker plugin".
      'same picker twice in a profile',
      plugins('- type: queue-scorer\n- type: max-score-picker\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: max-score-picker\n  - pluginRef: queue-scorer\n  - pluginRef: max-score-picker\n'),
      'schedulingProfiles[0].plugins[2].pluginRef: "max-score-picker" is listed twice',
    ],
    [
      'weight on a profile handler listed in a profile',
      plugins('- type: single-profile-handler\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: single-profile-handler\n    weight: 2\n'),
      'schedulingProfiles[0].plugins[0].weight: only scorers take a weight; "single-profile-handler" is a single-profile-handler',
    ],
    [
      'weight on a filter',
      plugins('- type: decode-filter\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: decode-filter\n    weight: 1\n'),
      'schedulingProfiles[0].plugins[0].weight: only scorers take a weight; "decode-filter" is not a scorer',
    ],
    [
      'infinite weight',
      plugins('- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: queue-scorer\n    weight: .inf\n'),
      'schedulingProfiles[0].plugins[0].weight: must be a finite number, got Infinity',
    ],
    [
      'weight as a string',
      plugins('- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: queue-scorer\n    weight: "3"\n'),
      'schedulingProfiles[0].plugins[0].weight: must be a finite number, got "3"',
    ],
    [
      'unknown profile field',
      plugins('- type: queue-scorer\nschedulingProfiles:\n- name: p\n  filters: []\n  plugins: []\n'),
      'schedulingProfiles[0].filters: unknown field; allowed: name, plugins',
    ],
    [
      'duplicate profile',
      plugins('- type: queue-scorer\n- type: single-profile-handler\nschedulingProfiles:\n- name: p\n  plugins: []\n- name: p\n  plugins: []\n'),
      'schedulingProfiles[1].name: duplicate profile name "p"',
    ],
    [
      'two profile handlers',
      plugins('- type: single-profile-handler\n- type: single-profile-handler\n  name: other\n'),
      'plugins: exactly one profile handler allowed, got single-profile-handler, other',
    ],
    [
      'no handler and two profiles',
      plugins('- type: queue-scorer\nschedulingProfiles:\n- name: a\n  plugins: []\n- name: b\n  plugins: []\n'),
      'plugins: no profile handler, and 2 profiles: add one (single-profile-handler runs exactly one profile)',
    ],
    [
      'single-profile-handler with two profiles',
      plugins('- type: single-profile-handler\nschedulingProfiles:\n- name: a\n  plugins: []\n- name: b\n  plugins: []\n'),
      'schedulingProfiles: single-profile-handler runs exactly one profile, got 2: a, b',
    ],
  ])('%s', (_case, yaml, message) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(yaml))).toBe(message);
  });

  it('a profile without a picker reuses a declared picker, as GIE v1.5.0\'s loader does (config/loader/defaults.go), else gets max-score-picker', () => {
    const reused = parseEndpointPickerConfig(plugins('- type: random-picker\n  name: max-score-picker\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: queue-scorer\n'));
    expect(reused.schedulingProfiles[0]!.plugins.map((p) => p.pluginRef)).toEqual(['queue-scorer', 'max-score-picker']);
    expect(reused.plugins.filter((p) => p.type === 'max-score-picker')).toEqual([]);
    const declared = parseEndpointPickerConfig(plugins('- type: random-picker\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: queue-scorer\n'));
    expect(declared.schedulingProfiles[0]!.plugins.map((p) => p.pluginRef)).toEqual(['queue-scorer', 'random-picker']);
    const none = parseEndpointPickerConfig(plugins('- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: queue-scorer\n'));
    expect(none.schedulingProfiles[0]!.plugins.map((p) => p.pluginRef)).toEqual(['queue-scorer', 'max-score-picker']);
  });

  it('exposes the path and the problem separately', () => {
    try {
      parseEndpointPickerConfig(`${HEADER}plugins:\n- type: load-aware-scorer\n  parameters: {threshold: 1.5}\n`);
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).path).toBe('plugins[0].parameters.threshold');
      expect((error as ConfigError).problem).toBe('must be an integer (<= 0 means llm-d\'s default, 128), got 1.5');
    }
  });

  it('load-aware-scorer: a threshold <= 0 is llm-d\'s default 128 (loadaware/load_aware.go NewLoadAware @ v0.8.0)', () => {
    for (const threshold of [0, -5]) {
      const config = parseEndpointPickerConfig(`${HEADER}plugins:\n- type: load-aware-scorer\n  parameters: {threshold: ${threshold}}\n`);
      expect(config.plugins.find((p) => p.type === 'load-aware-scorer')?.parameters).toEqual({ threshold: 128 });
    }
  });
});

describe('phase-two defaults (GIE v1.0 loader)', () => {
  it('no profiles → a default profile with every filter, scorer and picker in order; a handler is added', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
- type: decode-filter
- type: session-affinity-scorer
- type: queue-scorer
  name: queue
- type: random-picker
`);
    expect(config.schedulingProfiles).toEqual([
      {
        name: 'default',
        plugins: [
          { pluginRef: 'decode-filter' },
          { pluginRef: 'session-affinity-scorer', weight: 1 },
          { pluginRef: 'queue', weight: 1 },
          { pluginRef: 'random-picker' },
        ],
      },
    ]);
    expect(config.plugins.map((p) => p.name)).toEqual([
      'decode-filter',
      'session-affinity-scorer',
      'queue',
      'random-picker',
      'single-profile-handler',
      'utilization-detector',
    ]);
  });

  it('a profile without a picker gets max-score-picker, reusing a declared one', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
- type: queue-scorer
- type: max-score-picker
  parameters: {maxNumOfEndpoints: 2}
schedulingProfiles:
- name: only
  plugins:
  - pluginRef: queue-scorer
`);
    expect(config.schedulingProfiles[0]!.plugins).toEqual([
      { pluginRef: 'queue-scorer', weight: 1 },
      { pluginRef: 'max-score-picker' },
    ]);
    expect(config.plugins.filter((p) => p.type === 'max-score-picker')).toEqual([
      { type: 'max-score-picker', name: 'max-score-picker', parameters: { maxNumOfEndpoints: 2 } },
    ]);
  });

  it('an empty plugin list still yields a runnable config', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins: []\n`);
    expect(config.plugins.map((p) => p.type)).toEqual(['max-score-picker', 'single-profile-handler', 'utilization-detector']);
    expect(config.schedulingProfiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'max-score-picker' }] }]);
  });

  it('fills parameter defaults, accepts fractional and zero weights, lower-cases session headers', () => {
    const config = validateEndpointPickerConfig({
      apiVersion: 'inference.networking.x-k8s.io/v1alpha1',
      kind: 'EndpointPickerConfig',
      plugins: [
        { type: 'session-affinity-filter', parameters: { headers: ['X-Session-ID'] } },
        { type: 'saturation-filter', parameters: null },
        { type: 'queue-scorer' },
        { type: 'kv-cache-utilization-scorer', name: 'kv' },
      ],
      schedulingProfiles: [
        {
          name: 'p',
          plugins: [
            { pluginRef: 'session-affinity-filter' },
            { pluginRef: 'queue-scorer', weight: 0.5 },
            { pluginRef: 'kv', weight: 0 },
          ],
        },
      ],
    });
    expect(config.plugins.slice(0, 2)).toEqual([
      {
        type: 'session-affinity-filter',
        name: 'session-affinity-filter',
        parameters: { headers: ['x-session-id'], ttl: '30m', capacity: 65536 },
      },
      {
        type: 'saturation-filter',
        name: 'saturation-filter',
        parameters: {
          queueDepthThreshold: 5,
          kvCacheUtilThreshold: 0.8,
          metricsStalenessThreshold: '200ms',
          maxConsecutiveScrapeFailures: 3,
        },
      },
    ]);
    expect(config.schedulingProfiles[0]!.plugins.map((ref) => ref.weight)).toEqual([undefined, 0.5, 0, undefined]);
  });
});

// Upstream decodes the config with sigs.k8s.io/yaml over go-yaml v2 (YAML 1.1), which merges `<<: *anchor` into its
// mapping (llm-d-router v0.10.0 pkg/epp/config/loader/configloader.go decodeRawConfig, runtime.DecodeInto with the
// apimachinery YAML serializer); kvroute read `<<` as a literal key and refused the entry as lacking `type`. The decoder
// is strict (`serializer.EnableStrict`: sigs.k8s.io/yaml YAMLToJSONStrict), and go-yaml v2's strict decoder sets merged
// keys through the same setMapIndex as written ones, which refuses a key already in the map ("key "x" already set in
// map"; gopkg.in/yaml.v2 decode.go, go-yaml/yaml#410): an override of a merged key is refused upstream, not applied.
describe('YAML 1.1 merge keys', () => {
  it('merges an anchored mapping into the mappings that name it, beside keys of their own', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
- &prefix
  type: prefix-cache-scorer
  parameters: &params {blockSizeTokens: 32, maxPrefixBlocksToMatch: 128}
- name: prefix-long
  <<: *prefix
- type: prefix-cache-scorer
  name: prefix-lru
  parameters:
    <<: *params
    lruCapacityPerServer: 1000
- type: queue-scorer
`);
    const [first, second, third] = config.plugins;
    expect(second).toMatchObject({ type: 'prefix-cache-scorer', name: 'prefix-long' });
    // blockSizeTokens 32 is read as 128 characters (4 a token; the default is 64).
    expect(second!.parameters).toMatchObject({ hashBlockSize: 128, maxPrefixBlocksToMatch: 128 });
    expect(third!.parameters).toMatchObject({ hashBlockSize: 128, maxPrefixBlocksToMatch: 128, lruCapacityPerServer: 1000 });
    expect(first!.parameters).toMatchObject({ hashBlockSize: 128, maxPrefixBlocksToMatch: 128 });
  });

  it('refuses a key written beside `<<` that the merged mapping sets too, as upstream\'s strict decoder does (go-yaml v2: key already set in map)', () => {
    const override = `${HEADER}plugins:
- &prefix
  type: prefix-cache-scorer
  parameters: &params {blockSizeTokens: 32, maxPrefixBlocksToMatch: 128}
- type: prefix-cache-scorer
  name: prefix-long
  parameters:
    <<: *params
    maxPrefixBlocksToMatch: 512
`;
    expect(() => parseEndpointPickerConfig(override)).toThrow(/^invalid YAML: line 11: key "maxPrefixBlocksToMatch" already set in map/);
    // Written before the merge, it is refused all the same (go-yaml sets the merged key second).
    expect(() => parseEndpointPickerConfig(`${HEADER}plugins:\n- &q {type: queue-scorer, name: q}\n- name: q2\n  <<: *q\n`))
      .toThrow(/key "name" already set in map/);
  });

  it('refuses a key two merged mappings both set, as upstream\'s strict decoder does', () => {
    expect(() => parseEndpointPickerConfig(`${HEADER}plugins:
- &a {type: queue-scorer, name: a}
- &b {name: b}
- <<: [*b, *a]
`)).toThrow(/key "name" already set in map/);
  });

  it('still refuses a key written twice beside a merge', () => {
    expect(() => parseEndpointPickerConfig(`${HEADER}plugins:\n- type: queue-scorer\n  <<: {name: q}\n  type: queue-scorer\n`))
      .toThrow(/^invalid YAML: Map keys must be unique/);
  });
});

describe('round trip and normalization', () => {
  const samples: [string, EndpointPickerConfig][] = [
    ['the default config', defaultEndpointPickerConfig()],
    [
      'a config with renamed plugins and the kv-cache-scorer alias',
      parseEndpointPickerConfig(`${HEADER}plugins:
- type: kv-cache-scorer
  name: kv
- type: by-label
  name: gpu-a100
  parameters: {label: gpu, validValues: [a100], allowsNoLabel: true}
- type: load-aware-scorer
schedulingProfiles:
- name: main
  plugins:
  - pluginRef: gpu-a100
  - pluginRef: kv
    weight: 2.5
  - pluginRef: load-aware-scorer
`),
    ],
    // autoTune off: the rendered tuneBlockSize (false) must load again.
    ['a GIE-style config with autoTune off', parseEndpointPickerConfig(`${HEADER}plugins:\n- type: prefix-cache-scorer\n  parameters: {hashBlockSize: 64, autoTune: false}\n- type: queue-scorer\n`)],
  ];

  it.each(samples)('%s renders to YAML that loads back to the same value', (_name, config) => {
    const yaml = renderEndpointPickerConfig(config);
    expect(parseEndpointPickerConfig(yaml)).toEqual(config);
  });

  it.each(samples)('%s is a fixed point of validation', (_name, config) => {
    expect(validateEndpointPickerConfig(config)).toEqual(config);
  });

  it('renders names only where they differ from the type, without YAML aliases', () => {
    const yaml = renderEndpointPickerConfig(samples[1]![1]);
    expect(yaml).toContain('- name: kv\n    type: kv-cache-scorer\n');
    expect(yaml).toContain('- type: load-aware-scorer\n    parameters:\n      threshold: 128\n');
    expect(yaml).not.toMatch(/[&*]a\d/);
  });

  // The scheduler reads the normalized config again (buildScheduler validates what the loader returned), so every
  // plugin's resolved parameters must read back as themselves: a bare `token-producer` resolved to `modelName: ""`,
  // which the second read refused, so llm-d's data-parallel guide config loaded but could not start.
  const REQUIRED: Record<string, Record<string, unknown>> = {
    'by-label': { label: 'gpu', validValues: ['a100'] },
    'lora-room-filter': { adapters: ['a'] },
    'file-discovery': { path: '/etc/endpoints.yaml' },
    'priority-holdback-policy': { minCeiling: 0.5 },
    'session-id-producer': { headerName: 'x-session-id' },
    'utilization-filter': { conditions: [{ metric: 'waiting-queue', maxValue: 0 }] },
    'header-label-affinity-scorer': { headerName: 'x-preferred-zone', labelKey: 'topology.kubernetes.io/zone' },
  };
  it.each([...KNOWN_PLUGIN_TYPES])('%s: its resolved parameters read back unchanged', (type) => {
    const resolved = resolvePluginParameters(type, REQUIRED[type]);
    expect(resolvePluginParameters(type, structuredClone(resolved))).toEqual(resolved);
  });

  it('refuses to render an invalid config', () => {
    const invalid = { ...defaultEndpointPickerConfig(), schedulingProfiles: [{ name: 'x', plugins: [{ pluginRef: 'nope' }] }] };
    expect(() => renderEndpointPickerConfig(invalid)).toThrow(ConfigError);
  });

  it('does not modify its input', () => {
    const input: EndpointPickerConfig = {
      apiVersion: 'inference.networking.x-k8s.io/v1alpha1',
      kind: 'EndpointPickerConfig',
      plugins: [{ type: 'queue-scorer' }],
      schedulingProfiles: [],
    };
    const copy = structuredClone(input);
    validateEndpointPickerConfig(input);
    expect(input).toEqual(copy);
  });
});

describe('defaultEndpointPickerConfig', () => {
  const config = defaultEndpointPickerConfig();

  it('is KV-cache-aware routing with hard session affinity behind decode and saturation filters', () => {
    expect(config.schedulingProfiles).toEqual([
      {
        name: 'default',
        plugins: [
          { pluginRef: 'decode-filter' },
          { pluginRef: 'saturation-filter' },
          { pluginRef: 'session-affinity-filter' },
          { pluginRef: 'prefix-cache-scorer', weight: 3 },
          { pluginRef: 'no-hit-lru-scorer', weight: 4 },
          { pluginRef: 'queue-scorer', weight: 1 },
          { pluginRef: 'kv-cache-utilization-scorer', weight: 1 },
          { pluginRef: 'active-request-scorer', weight: 1 },
          { pluginRef: 'latency-scorer', weight: 4 },
          { pluginRef: 'session-load-scorer', weight: 4 },
          { pluginRef: 'max-score-picker' },
        ],
      },
    ]);
    expect(config.plugins.find((p) => p.type === 'latency-scorer')?.parameters).toMatchObject({
      priorPrefillMsPerToken: 0.2, priorOverheadMs: 20, priorWeight: 8, halfLife: '60s', pendingTimeout: '30s', charactersPerToken: 4,
    });
    // The default until 2026-11-30 is the same without the latency scorer (and the session-load scorer, which joined on
    // 2026-12-02); the latency config derives from it.
    expect(prefixFirstEndpointPickerConfig().schedulingProfiles[0]!.plugins).toEqual(config.schedulingProfiles[0]!.plugins.filter((r) => r.pluginRef !== 'latency-scorer' && r.pluginRef !== 'session-load-scorer'));
    expect(prefixFirstEndpointPickerConfig().plugins.map((p) => p.type)).not.toContain('latency-scorer');
    expect(prefixFirstEndpointPickerConfig().plugins.map((p) => p.type)).not.toContain('session-load-scorer');
    expect(config.plugins.find((p) => p.type === 'session-load-scorer')?.parameters).toEqual({
      headers: ['x-session-id', 'x-session-token'], liveWindow: '5m', capacity: 65536, minRequests: 1,
    });
    expect(config.plugins.find((p) => p.type === 'no-hit-lru-scorer')?.parameters).toEqual({
      prefixPluginType: 'prefix-cache-scorer', prefixPluginName: 'prefix-cache-scorer', lruSize: 1024,
    });
    expect(config.plugins.find((p) => p.type === 'prefix-cache-scorer')?.parameters).toEqual({
      mode: 'estimate',
      hashBlockSize: 64,
      maxPrefixBlocksToMatch: 256,
      maxPrefixTokensToMatch: 0,
      minBlockSizeTokens: 1,
      partialLastBlock: false,
      // kvroute's own fixed 64-character blocks, whatever the pods' block size.
      tuneBlockSize: false,
      autoTune: true,
      capacityFactor: 1,
      learnCharactersPerToken: false,
      lruCapacityPerServer: 31250,
      maxIndexEntries: 8_000_000,
      matchLengthWeight: 0,
      matchLengthScaleTokens: 8192,
    });
    expect(config.plugins.filter((p) => p.type === 'single-profile-handler')).toHaveLength(1);
  });

  it('returns a fresh object each time', () => {
    const first = defaultEndpointPickerConfig();
    first.plugins.pop();
    expect(defaultEndpointPickerConfig()).toEqual(config);
  });
});

describe('flowControl and featureGates (GIE\'s EndpointPickerConfig keys, apix/config/v1alpha1)', () => {
  const HEAD = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins: []\n';

  it('are absent from a config that does not name them, so rendered ConfigMaps stay as they were', () => {
    const config = parseEndpointPickerConfig(HEAD);
    expect('flowControl' in config).toBe(false);
    expect('featureGates' in config).toBe(false);
  });

  it('fills every flowControl default, keeps the objectives table, and renders back to the same value', () => {
    const config = parseEndpointPickerConfig(`${HEAD}featureGates: [flowControl]\nflowControl:\n  defaultRequestTTL: 2s\n  objectives: {batch: -1, chat: 10}\n`);
    expect(config.featureGates).toEqual(['flowControl']);
    expect(config.flowControl).toEqual({
      enabled: true, maxQueued: 1024, maxQueuedBytes: 134217728, defaultRequestTTL: '2s', dispatchPerTick: 4, dispatchInterval: '50ms', maxHeaderPriority: 0, objectives: { batch: -1, chat: 10 },
    });
    // Objective and band priorities are any integer, as GIE's InferenceObjective.spec.priority and PriorityBandConfig.Priority.
    const wide = parseEndpointPickerConfig(`${HEAD}flowControl:\n  objectives: {premium: 1000}\n  priorityBands: [{priority: 1000, maxRequests: 5}]\n`);
    expect(wide.flowControl).toMatchObject({ objectives: { premium: 1000 }, priorityBands: [{ priority: 1000, maxRequests: 5 }] });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
  });
});

// The precise config's saturation filter runs as GIE's detector (pkg/epp/saturationdetector IsSaturated @ v0.5): loaded
// pods stay candidates until none has room. Measured on llm-d's ramp (bench/README.md, poisson-groups).
describe('preciseEndpointPickerConfig', () => {
  const filterOf = (c: EndpointPickerConfig) => c.plugins.find((p) => p.type === 'saturation-filter')!;

  it('runs the saturation filter in admission mode, as the default config does (since 2026-11-30), and renders the mode', () => {
    const precise = preciseEndpointPickerConfig({ mode: 'central', zmqEndpoint: 'tcp://*:5557', blockSize: 16, modelName: 'Qwen/Qwen3-0.6B' });
    expect(filterOf(precise).parameters).toMatchObject({ mode: 'admission', queueDepthThreshold: 5, kvCacheUtilThreshold: 0.9 });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(precise))).toEqual(precise);
    expect(filterOf(defaultEndpointPickerConfig()).parameters).toMatchObject({ mode: 'admission' });
    expect(renderEndpointPickerConfig(defaultEndpointPickerConfig())).toMatch(/\n {6}mode: admission\n/);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(defaultEndpointPickerConfig()))).toEqual(defaultEndpointPickerConfig());
  });

  it('keeps the shape it was measured in: no no-hit-lru-scorer (nor in the latency config), which the default has', () => {
    const precise = preciseEndpointPickerConfig({ mode: 'central', zmqEndpoint: 'tcp://*:5557', blockSize: 16, modelName: 'Qwen/Qwen3-0.6B' });
    for (const c of [precise, latencyEndpointPickerConfig()]) {
      expect(c.plugins.map((p) => p.type)).not.toContain('no-hit-lru-scorer');
      expect(c.schedulingProfiles[0]!.plugins.map((r) => r.pluginRef)).not.toContain('no-hit-lru-scorer');
    }
    expect(defaultEndpointPickerConfig().plugins.map((p) => p.type)).toContain('no-hit-lru-scorer');
  });

  it('carries the default\'s latency scorer at 2, after the precise scorer whose matched tokens it reads (bench/README.md, bench:hetero and llm-d\'s ramp); withoutLatencyScorer gives the earlier form', () => {
    const precise = preciseEndpointPickerConfig({ mode: 'central', zmqEndpoint: 'tcp://*:5557', blockSize: 16, modelName: 'Qwen/Qwen3-0.6B' });
    const steps = precise.schedulingProfiles[0]!.plugins;
    const at = (ref: string) => steps.findIndex((r) => r.pluginRef === ref);
    expect(steps[at('latency-scorer')]).toEqual({ pluginRef: 'latency-scorer', weight: 2 });
    expect(steps[at('precise-prefix-cache-scorer')]).toEqual({ pluginRef: 'precise-prefix-cache-scorer', weight: 3 });
    expect(at('latency-scorer')).toBeGreaterThan(at('precise-prefix-cache-scorer'));
    expect(precise.plugins.find((p) => p.type === 'latency-scorer')).toEqual(defaultEndpointPickerConfig().plugins.find((p) => p.type === 'latency-scorer'));
    const earlier = withoutLatencyScorer(precise);
    expect(earlier.plugins.map((p) => p.type)).not.toContain('latency-scorer');
    expect(earlier.schedulingProfiles[0]!.plugins.map((r) => r.pluginRef)).toEqual(steps.map((r) => r.pluginRef).filter((r) => r !== 'latency-scorer'));
  });
});

describe('what upstream ignores without a word is skipped with a note, not refused', () => {
  // llm-d-router v0.10.0 pkg/epp/framework/interface/plugin/registry.go: a factory that takes its decoder as `_` ignores
  // its parameters (GIE v1.5.0's take json.RawMessage the same way); pkg/epp/scheduling/scheduler_profile.go AddPlugins
  // adds a profile's plugins by the interfaces they implement, so a profile handler listed there does nothing.
  test('parameters on a plugin that takes none; a profile handler or a data-layer plugin listed in a profile', () => {
    const c = parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- {type: queue-scorer, parameters: {threshold: 3}}\n- {type: single-profile-handler}\n- {type: metrics-data-source}\n` +
      'schedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: single-profile-handler\n  - pluginRef: queue-scorer\n  - pluginRef: metrics-data-source\n');
    expect(c.plugins[0]).toEqual({ type: 'queue-scorer', name: 'queue-scorer' });
    expect(c.schedulingProfiles[0]!.plugins.map((p) => p.pluginRef)).toEqual(['queue-scorer', 'max-score-picker']);
    expect(endpointPickerConfigNotes(c)).toEqual([
      'plugins[0].parameters: queue-scorer takes no parameters; ignored as upstream ignores them (threshold)',
      'schedulingProfiles[0].plugins[0].pluginRef: "single-profile-handler" is a single-profile-handler, which acts outside profiles (a profile holds filters, scorers and a picker); skipped as upstream skips it',
      'schedulingProfiles[0].plugins[2].pluginRef: "metrics-data-source" is a metrics-data-source, which acts outside profiles (a profile holds filters, scorers and a picker); skipped as upstream skips it',
    ]);
  });

  test('a scorer listed twice in a profile counts with its weights added, a filter listed twice filters once (AddPlugins appends each listing)', () => {
    const c = parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- {type: queue-scorer}\n- {type: decode-filter}\n- {type: kv-cache-utilization-scorer}\n' +
      'schedulingProfiles:\n- name: p\n  plugins:\n  - {pluginRef: decode-filter}\n  - {pluginRef: queue-scorer, weight: 2}\n  - {pluginRef: kv-cache-utilization-scorer}\n  - {pluginRef: queue-scorer, weight: 0.5}\n  - {pluginRef: decode-filter}\n');
    expect(c.schedulingProfiles[0]!.plugins).toEqual([
      { pluginRef: 'decode-filter' }, { pluginRef: 'queue-scorer', weight: 2.5 }, { pluginRef: 'kv-cache-utilization-scorer', weight: 1 }, { pluginRef: 'max-score-picker' },
    ]);
    expect(endpointPickerConfigNotes(c)).toEqual([
      'schedulingProfiles[0].plugins[3].pluginRef: "queue-scorer" is listed again: upstream scores it once per listing, so its weights add up (2.5)',
      'schedulingProfiles[0].plugins[4].pluginRef: "decode-filter" is listed again: upstream filters twice, which keeps what once does; kept once',
    ]);
  });
});
