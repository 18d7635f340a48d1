/**
 * Upstream's own EndpointPickerConfigs load in kvroute: GIE v1.5.0's Helm chart default (config/charts/epplib/
 * templates/_config.yaml, rendered with the chart's defaults) and llm-d-inference-scheduler v0.8.0's
 * deploy/config/epp-precise-prefix-cache-config.yaml and sim-epp-kvcache-config.yaml, verbatim; the sections and
 * plugin types they use are checked as upstream checks them (GIE apix/config/v1alpha1/endpointpickerconfig_types.go,
 * pkg/epp/config/loader/validation.go @ v1.5.0).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { scrapeTarget } from '../src/runner';
import { buildScheduler } from '../src/scheduling/scheduler';
import { localTokenizerSource } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { GIE_HELM_DEFAULT } from './upstream-configs';

const LLMD_PRECISE = `# Sample EPP configuration with the precise-prefix-cache scorer.
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
  - type: tokenizer
    parameters:
      modelName: hf-repo/model-name           # set to the model used in the vLLM deployment
  - type: endpoint-notification-source
  - type: metrics-data-source
  - type: core-metrics-extractor
  - type: single-profile-handler
  - type: decode-filter
  - type: precise-prefix-cache-scorer
    parameters:
      tokenProcessorConfig:
        blockSize: 64                 # must match vLLM block size
        hashSeed: "42"                # must match vLLM PYTHONHASHSEED env var
      indexerConfig:
        tokenizersPoolConfig:
          modelName: hf-repo/model-name
        kvBlockIndexConfig:
          enableMetrics: true           # enable kv-block index metrics (prometheus)
  - type: kv-cache-utilization-scorer
  - type: queue-scorer
  - type: max-score-picker
dataLayer:
  sources:
    - pluginRef: metrics-data-source
      extractors:
        - pluginRef: core-metrics-extractor
    - pluginRef: endpoint-notification-source
      extractors:
        - pluginRef: precise-prefix-cache-scorer
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: decode-filter
      - pluginRef: tokenizer
      - pluginRef: precise-prefix-cache-scorer
        weight: 2.0
      - pluginRef: kv-cache-utilization-scorer
        weight: 1.0
      - pluginRef: queue-scorer
        weight: 1.0
      - pluginRef: max-score-picker
`;

const LLMD_SIM_KVCACHE = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    kvEventsConfig:
      zmqEndpoint: tcp://0.0.0.0:5557
    indexerConfig:
      tokenProcessorConfig:
        blockSize: 16                         # must match vLLM block size if not default (16)
        hashSeed: "42"                        # must match PYTHONHASHSEED in vLLM pods
      tokenizersPoolConfig:
        modelName: TinyLlama/TinyLlama-1.1B-Chat-v1.0  # replace value to use different model for tokenizer loading
        hf:
          tokenizersCacheDir: "/cache/tokenizers"
      kvBlockIndexConfig:
        enableMetrics: false                  # enable kv-block index metrics (prometheus)
        metricsLoggingInterval: 6000000000   # log kv-block metrics as well (1m in nanoseconds)
- type: decode-filter
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: max-score-picker
  - pluginRef: precise-prefix-cache-scorer
    weight: 10
`;

const FLAGS = { modelServerMetricsPath: '/flag-path', modelServerMetricsScheme: 'http', modelServerMetricsInsecureSkipVerify: false } as const;

describe('upstream EndpointPickerConfigs (GIE v1.5.0, llm-d v0.8.0)', () => {
  test('GIE v1.5.0 Helm chart default: metrics-data-source and core-metrics-extractor load, and the data source sets how pods are scraped', () => {
    const config = parseEndpointPickerConfig(GIE_HELM_DEFAULT);
    expect(config.plugins.map((p) => p.type)).toEqual(expect.arrayContaining(['metrics-data-source', 'core-metrics-extractor']));
    expect(scrapeTarget(config, FLAGS)).toEqual({ path: '/metrics', scheme: 'http', insecureSkipVerify: true });
    const https = parseEndpointPickerConfig(GIE_HELM_DEFAULT.replace('scheme: "http"', 'scheme: "https"').replace('path: "/metrics"', 'path: "/vllm/metrics"'));
    expect(scrapeTarget(https, FLAGS)).toEqual({ path: '/vllm/metrics', scheme: 'https', insecureSkipVerify: true });
    // Without the plugin the flags decide, as before.
    expect(scrapeTarget(parseEndpointPickerConfig(GIE_HELM_DEFAULT.replace(/- type: metrics-data-source[\s\S]*?insecureSkipVerify: true\n/, '')), FLAGS))
      .toEqual({ path: '/flag-path', scheme: 'http', insecureSkipVerify: false });
    expect(() => buildScheduler(config)).not.toThrow();
  });

  test('llm-d v0.8.0 precise config: the tokenizer scorer (zero scores), the data layer sections and their references load and round-trip', async () => {
    const config = parseEndpointPickerConfig(LLMD_PRECISE);
    expect(config.dataLayer).toEqual({
      sources: [
        { pluginRef: 'metrics-data-source', extractors: [{ pluginRef: 'core-metrics-extractor' }] },
        { pluginRef: 'endpoint-notification-source', extractors: [{ pluginRef: 'precise-prefix-cache-scorer' }] },
      ],
    });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    const scheduler = buildScheduler(config);
    const tokenizer = scheduler.plugin('tokenizer') as unknown as { score(c: unknown, e: readonly unknown[]): number[] };
    expect(tokenizer.score({}, [{}, {}, {}])).toEqual([0, 0, 0]);
    // The precise scorer starts looking for its (here fictional) model's tokenizer on the next turn; let it, then close.
    await new Promise((resolve) => setImmediate(resolve));
    await scheduler.plugins.close();
  });

  test('llm-d v0.8.0 sim-epp-kvcache config: tokenizersPoolConfig.hf.tokenizersCacheDir is the tokenizer cache directory', () => {
    const config = parseEndpointPickerConfig(LLMD_SIM_KVCACHE);
    const precise = config.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')!;
    expect((precise.parameters as { indexerConfig: { tokenizersPoolConfig: unknown } }).indexerConfig.tokenizersPoolConfig)
      .toEqual({ modelName: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', tokenizersCacheDir: '/cache/tokenizers' });
  });

  // llm-d-kv-cache v0.7.1 pkg/tokenization/pool_embedded.go Config: local, uds and hf tokenizer sources; llm-d v0.8.0
  // deploy/config/sim-epp-external-tokenizer-config.yaml uses uds (its prepareDataPlugins gate GIE itself refuses).
  test('llm-d-kv-cache v0.7.1 tokenizersPoolConfig: uds (accepted, tokenized in process) and local (a model\'s tokenizer.json, or a folder to search) load', () => {
    const withPool = (pool: string) => LLMD_SIM_KVCACHE.replace(/        hf:\n          tokenizersCacheDir: "\/cache\/tokenizers"\n/, pool);
    const uds = parseEndpointPickerConfig(withPool('        uds:\n          socketFile: "/tmp/tokenizer/tokenizer-uds.socket"\n'));
    const poolOf = (c: ReturnType<typeof parseEndpointPickerConfig>) =>
      (c.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')!.parameters as { indexerConfig: { tokenizersPoolConfig: unknown } }).indexerConfig.tokenizersPoolConfig;
    expect(poolOf(uds)).toEqual({ modelName: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', uds: { socketFile: '/tmp/tokenizer/tokenizer-uds.socket' } });
    const local = parseEndpointPickerConfig(withPool('        local:\n          autoDiscoveryDir: /mnt/models\n          modelTokenizerMap:\n            TinyLlama/TinyLlama-1.1B-Chat-v1.0: /mnt/models/tiny/tokenizer.json\n'));
    expect(poolOf(local)).toEqual({
      modelName: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
      local: { autoDiscoveryDir: '/mnt/models', modelTokenizerMap: { 'TinyLlama/TinyLlama-1.1B-Chat-v1.0': '/mnt/models/tiny/tokenizer.json' } },
    });
    expect(() => parseEndpointPickerConfig(withPool('        local:\n          autoDiscoveryTokenizerFileName: tok.json\n')))
      .toThrow(/local\.autoDiscoveryTokenizerFileName.*tokenizer\.json.*only, got "tok\.json"/);
    expect(() => parseEndpointPickerConfig(withPool('        local:\n          modelTokenizerMap: [a]\n')))
      .toThrow(/local\.modelTokenizerMap: must be a map of model name to the path of its tokenizer\.json/);
  });

  test('a block size only under indexerConfig (llm-d up to v0.4) is read with a warning that llm-d v0.8.0 ignores it; a uds tokenizer is named unused', async () => {
    const warnings: string[] = [];
    const logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (msg: string) => { warnings.push(msg); } };
    const nested = buildScheduler(parseEndpointPickerConfig(LLMD_SIM_KVCACHE), { logger });
    expect(warnings).toEqual([expect.stringMatching(/indexerConfig\.tokenProcessorConfig is read .* llm-d v0\.8\.0 ignores it/)]);
    await new Promise((resolve) => setImmediate(resolve)); // the tokenizer load it started
    await nested.plugins.close();
    warnings.length = 0;
    const topLevel = LLMD_SIM_KVCACHE
      .replace('    indexerConfig:\n      tokenProcessorConfig:\n', '    tokenProcessorConfig:\n')
      .replace('        hashSeed: "42"                        # must match PYTHONHASHSEED in vLLM pods\n', '      hashSeed: "42"\n    indexerConfig:\n')
      .replace('        blockSize: 16                         # must match vLLM block size if not default (16)\n', '      blockSize: 16\n')
      .replace('        hf:\n          tokenizersCacheDir: "/cache/tokenizers"\n', '        uds:\n          socketFile: /tmp/tok.sock\n');
    const top = buildScheduler(parseEndpointPickerConfig(topLevel), { logger });
    expect(warnings).toEqual([expect.stringMatching(/tokenizersPoolConfig\.uds .* is not used/)]);
    await new Promise((resolve) => setImmediate(resolve)); // the tokenizer load it started
    await top.plugins.close();
  });

  // llm-d-kv-cache v0.7.1 kvblock/in_memory.go: size 1e8 keys, podCacheSize 10 (pod, tier) entries per key.
  test('an llm-d index backend config (kvBlockIndexConfig beyond its metrics switches) loads and is named unused', async () => {
    const warnings: string[] = [];
    const logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (msg: string) => { warnings.push(msg); } };
    const config = (index: string) => `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    tokenProcessorConfig: { blockSize: 16 }
    indexerConfig:
      kvBlockIndexConfig: ${index}
      tokenizersPoolConfig: { modelName: m }
    kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0" }
- type: max-score-picker
`;
    const sized = buildScheduler(parseEndpointPickerConfig(config('{ inMemoryConfig: { size: 1000, podCacheSize: 10 } }')), { logger });
    expect(warnings).toEqual([expect.stringMatching(/kvBlockIndexConfig is not used: kvroute keeps its own in-memory index/)]);
    await new Promise((resolve) => setImmediate(resolve)); // the tokenizer load it started
    await sized.plugins.close();
    warnings.length = 0;
    const metricsOnly = buildScheduler(parseEndpointPickerConfig(config('{ enableMetrics: true, metricsLoggingInterval: 6000000000 }')), { logger });
    expect(warnings).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    await metricsOnly.plugins.close();
  });

  test('a local tokenizer is found where llm-d-kv-cache v0.7.1 would look: the map\'s file, else <autoDiscoveryDir>/<model>, else the folder as a Hugging Face cache', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-local-tok-'));
    try {
      fs.mkdirSync(path.join(dir, 'org', 'model'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'org', 'model', 'tokenizer.json'), '{}');
      expect(localTokenizerSource({ local: { modelTokenizerMap: { m: '/models/m/tokenizer.json' } } }, 'm')).toEqual({ path: '/models/m' });
      expect(localTokenizerSource({ local: { autoDiscoveryDir: dir } }, 'org/model')).toEqual({ path: path.join(dir, 'org', 'model') });
      fs.mkdirSync(path.join(dir, 'models--org--cached'), { recursive: true });
      expect(localTokenizerSource({ local: { autoDiscoveryDir: dir } }, 'org/cached')).toEqual({ hubCache: dir });
      // Not there at all: nothing, so the tokenizersCacheDir is looked in next (local first, as llm-d-kv-cache chains).
      expect(localTokenizerSource({ local: { autoDiscoveryDir: dir }, tokenizersCacheDir: '/hf' }, 'org/other')).toEqual({});
      expect(localTokenizerSource({ localTokenizerDir: '/mine', local: { autoDiscoveryDir: dir } }, 'org/model')).toEqual({ path: '/mine' });
      expect(localTokenizerSource({}, 'org/model')).toEqual({});
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // GIE v1.5.0: the parameters live on approx-prefix-cache-producer (requestcontrol/dataproducer/approximateprefix/
  // plugin.go); prefix-cache-scorer ignores its own (scorer/prefix/plugin.go); the loader makes a producer from the
  // scorer's only when none is listed (config/loader/configloader.go).
  test('GIE v1.5.0 approx-prefix-cache-producer + a prefix-cache-scorer without parameters: the producer\'s parameters are the scorer\'s', () => {
    const doc = (producer: string, scorer = '- type: prefix-cache-scorer\n') => `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
${producer}${scorer}- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: max-score-picker
`;
    const producer = '- type: approx-prefix-cache-producer\n  parameters:\n    blockSizeTokens: 32\n    maxPrefixBlocksToMatch: 64\n    lruCapacityPerServer: 1000\n';
    const config = parseEndpointPickerConfig(doc(producer));
    expect(config.plugins.map((p) => p.type)).toEqual(['prefix-cache-scorer', 'max-score-picker', 'single-profile-handler', 'utilization-detector']);
    expect(config.plugins[0]!.parameters).toMatchObject({ maxPrefixBlocksToMatch: 64, lruCapacityPerServer: 1000 });
    expect(config.schedulingProfiles[0]!.plugins[0]).toEqual({ pluginRef: 'prefix-cache-scorer', weight: 3 });
    expect(() => buildScheduler(config)).not.toThrow();
    // Without the producer the scorer's own parameters are read (GIE makes the producer from them): the same config.
    const direct = parseEndpointPickerConfig(doc('', '- type: prefix-cache-scorer\n  parameters:\n    blockSizeTokens: 32\n    maxPrefixBlocksToMatch: 64\n    lruCapacityPerServer: 1000\n'));
    expect(direct.plugins).toEqual(config.plugins);
    expect(() => parseEndpointPickerConfig(doc(producer, '- type: prefix-cache-scorer\n  parameters:\n    blockSizeTokens: 16\n')))
      .toThrow(/plugins\[1\]\.parameters\.blockSizeTokens: with an approx-prefix-cache-producer listed, GIE v1\.5\.0 ignores a prefix-cache-scorer's parameters/);
    expect(() => parseEndpointPickerConfig(doc(producer, '')))
      .toThrow(/plugins\[0\]: approx-prefix-cache-producer "approx-prefix-cache-producer" is read by no prefix-cache-scorer/);
    expect(() => parseEndpointPickerConfig(doc(producer + producer)))
      .toThrow(/plugins\[1\]: a second approx-prefix-cache-producer/);
  });

  test('GIE v1.5.0 validation.go: feature gates are the registered ones (dataLayer, enableLegacyMetrics, flowControl); others are errors naming them', () => {
    const gates = (list: string) => GIE_HELM_DEFAULT.replace('kind: EndpointPickerConfig\n', `kind: EndpointPickerConfig\nfeatureGates: [${list}]\n`);
    expect(parseEndpointPickerConfig(gates('dataLayer, enableLegacyMetrics, flowControl')).featureGates).toEqual(['dataLayer', 'enableLegacyMetrics', 'flowControl']);
    expect(() => parseEndpointPickerConfig(gates('prepareDataPlugins'))).toThrow(/featureGates\[0\].*unknown feature gate "prepareDataPlugins"; known: flowControl, dataLayer, enableLegacyMetrics/);
  });

  test('references in dataLayer and parser name a plugin of a fitting type; parameters kvroute cannot honour are errors naming the field', () => {
    const withParser = `${GIE_HELM_DEFAULT.replace('- type: core-metrics-extractor\n', '- type: core-metrics-extractor\n- type: openai-parser\n')}parser:\n  pluginRef: openai-parser\n`;
    expect(parseEndpointPickerConfig(withParser).parser).toEqual({ pluginRef: 'openai-parser' });
    expect(() => parseEndpointPickerConfig(`${GIE_HELM_DEFAULT}parser:\n  pluginRef: queue-scorer\n`))
      .toThrow(/parser\.pluginRef.*"queue-scorer" is a queue-scorer; allowed here: openai-parser/);
    expect(() => parseEndpointPickerConfig(`${GIE_HELM_DEFAULT}dataLayer:\n  sources:\n  - pluginRef: metrics-data-source\n    extractors:\n    - pluginRef: nope\n`))
      .toThrow(/dataLayer\.sources\[0\]\.extractors\[0\]\.pluginRef.*no plugin named "nope"/);
    expect(() => parseEndpointPickerConfig(GIE_HELM_DEFAULT.replace('scheme: "http"', 'scheme: "ftp"')))
      .toThrow(/plugins\[3\]\.parameters\.scheme.*must be http or https/);
    expect(() => parseEndpointPickerConfig(GIE_HELM_DEFAULT.replace('- type: core-metrics-extractor', '- type: core-metrics-extractor\n  parameters:\n    defaultEngine: sglang')))
      .toThrow(/defaultEngine.*vLLM's metrics only/);
    expect(() => parseEndpointPickerConfig(`${GIE_HELM_DEFAULT}saturationDetector:\n  pluginRef: queue-scorer\n`))
      .toThrow('saturationDetector.pluginRef: "queue-scorer" is a queue-scorer, not a saturation detector; detectors: concurrency-detector, utilization-detector');
  });
});
