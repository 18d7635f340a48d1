/**
 * Upstream Helm charts' default EndpointPickerConfig, rendered with the chart's defaults: GIE v1.5.0's
 * (config/charts/epplib/templates/_config.yaml). llm-d-router v0.10.0's `default-plugins.yaml`
 * (config/charts/routerlib/templates/_config.yaml, vllm over http, so no parsers section) is the same document under
 * its own group, `llm-d.ai/v1alpha1`.
 */
export const GIE_HELM_DEFAULT = `apiVersion: inference.networking.x-k8s.io/v1alpha1
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

export const LLMD_HELM_DEFAULT = GIE_HELM_DEFAULT.replace('apiVersion: inference.networking.x-k8s.io/v1alpha1', 'apiVersion: llm-d.ai/v1alpha1');

/**
 * llm-d-router v0.10.0's well-lit-path guide config "tiered-prefix-cache-cpu", as its own integration test carries it
 * (test/integration/epp/wellknown_configs_test.go @ v0.10.0, wellKnownConfigs["tiered-prefix-cache-cpu"].yaml; verbatim
 * but for the Go raw string's leading newline). Two approximate prefix scorers: one reading the default producer (made
 * with its defaults, as the GPU's cache), one reading `cpu-prefix-cache-producer` (1,000 blocks a server, as the CPU
 * tier's).
 */
export const LLMD_TIERED_PREFIX_CACHE_CPU = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: token-producer
- type: approx-prefix-cache-producer
  name: cpu-prefix-cache-producer
  parameters:
    autoTune: false
    lruCapacityPerServer: 1000
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
  name: gpu-prefix-cache-scorer
- type: prefix-cache-scorer
  name: cpu-prefix-cache-scorer
  parameters:
    prefixMatchInfoProducerName: cpu-prefix-cache-producer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2.0
  - pluginRef: gpu-prefix-cache-scorer
    weight: 1.0
  - pluginRef: cpu-prefix-cache-scorer
    weight: 1.0
`;

/**
 * The same test's expected plugins for that config (name, type), in its order: the default producer is made by the
 * runner (`pkg/epp/datalayer/data_graph.go` CreateMissingDataProducers) because gpu-prefix-cache-scorer reads it.
 */
export const LLMD_TIERED_PREFIX_CACHE_CPU_EXPECTED_PLUGINS: readonly (readonly [name: string, type: string])[] = [
  ['token-producer', 'token-producer'],
  ['approx-prefix-cache-producer', 'approx-prefix-cache-producer'], // "this one is auto configured."
  ['cpu-prefix-cache-producer', 'approx-prefix-cache-producer'], // "this one is configured manually."
  ['queue-scorer', 'queue-scorer'],
  ['kv-cache-utilization-scorer', 'kv-cache-utilization-scorer'],
  ['gpu-prefix-cache-scorer', 'prefix-cache-scorer'],
  ['cpu-prefix-cache-scorer', 'prefix-cache-scorer'],
];

/**
 * llm-d-router v0.10.0's approximate producer README example of "multiple named instances (e.g., for tiered caching
 * with different parameters)" (pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix/README.md @
 * v0.10.0): its `plugins` list verbatim, under llm-d's group header (the README shows the list alone).
 */
export const LLMD_APPROX_PRODUCER_README_NAMED = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
  - name: gpuPrefixProducer
    type: approx-prefix-cache-producer
    parameters:
      blockSizeTokens: 16
  - name: cpuPrefixProducer
    type: approx-prefix-cache-producer
    parameters:
      blockSizeTokens: 64
  - name: gpuPrefixScorer
    type: prefix-cache-scorer
    parameters:
      prefixMatchInfoProducerName: gpuPrefixProducer
  - name: cpuPrefixScorer
    type: prefix-cache-scorer
    parameters:
      prefixMatchInfoProducerName: cpuPrefixProducer
`;
