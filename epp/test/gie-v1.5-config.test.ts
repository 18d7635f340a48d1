/**
 * Upstream's own EndpointPickerConfigs load in kvroute: GIE v1.5.0's Helm chart default (config/charts/epplib/
 * templates/_config.yaml, rendered with the chart's defaults) and llm-d-inference-scheduler v0.8.0's
 * deploy/config/epp-precise-prefix-cache-config.yaml and sim-epp-kvcache-config.yaml, verbatim; the sections and
 * plugin types they use are checked as upstream checks them (GIE apix/config/v1alpha1/endpointpickerconfig_types.go,
 * pkg/epp/config/loader/validation.go @ v1.5.0).
 */
import { parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { scrapeTarget } from '../src/runner';
import { buildScheduler } from '../src/scheduling/scheduler';

const GIE_HELM_DEFAULT = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: metrics-data-source
  parameters:
    scheme: "http"
    path: "/metrics"
    insecureSkipVerify: true
- type: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
`;

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
