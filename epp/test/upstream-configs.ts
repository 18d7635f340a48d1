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
