/**
 * The EndpointPickerConfig: types, loader, renderer and kvroute's default. Imported both by the EPP and by the cdk8s
 * app (`@kvroute/epp/config`). It and the plugin modules it derives the catalogue from depend on nothing but `yaml` and
 * `lru-cache`, so the cdk8s app can load it.
 */
export {
  ENDPOINT_PICKER_CONFIG_API_VERSION,
  ENDPOINT_PICKER_CONFIG_API_VERSIONS,
  LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION,
  ENDPOINT_PICKER_CONFIG_KIND,
  type EndpointPickerConfigApiVersion,
  KNOWN_FEATURE_GATES,
  FEATURE_GATE_DEFAULTS,
  type FeatureGate,
  type EndpointPickerConfig,
  type FlowControlConfig,
  type PriorityBandConfig,
  type SchedulingProfileSpec,
  type SchedulingProfilePluginRef,
  type PluginSpec,
  type PluginSpecFor,
  type PluginParametersByType,
  type ResolvedPluginParameters,
} from './types';
export {
  KNOWN_PLUGIN_TYPES,
  PLUGIN_DEFINITIONS,
  PLUGIN_TYPE_ALIASES,
  isKnownPluginType,
  pluginDefinition,
  pluginKinds,
  pluginHasKind,
  type PluginDefinitions,
  type PluginKind,
  type PluginType,
} from './catalogue';
// Each plugin's parameter type, for configs written in TypeScript (the cdk8s app's).
export type { NoParameters } from '../scheduling/plugin';
export type { PickerParameters } from '../scheduling/plugins/max-score-picker';
export type { PrefixCacheScorerParameters } from '../scheduling/plugins/prefix-cache-scorer';
export type { PrecisePrefixCacheScorerParameters, KvEventsConfig, TokenProcessorConfig } from '../scheduling/plugins/precise-prefix-cache-scorer';
export type { LoadAwareScorerParameters } from '../scheduling/plugins/load-aware-scorer';
export type { ActiveRequestScorerParameters } from '../scheduling/plugins/active-request-scorer';
export type { SessionAffinityFilterParameters } from '../scheduling/plugins/session-affinity-filter';
export type { SaturationFilterParameters } from '../scheduling/plugins/saturation-filter';
export type { ByLabelFilterParameters } from '../scheduling/plugins/by-label';
export { ConfigError } from './errors';
export { FLOW_CONTROL_DEFAULTS, MAX_FLOW_PRIORITY } from './flow-control-defaults';
export { parseDuration, type Duration } from './duration';
export { resolvePluginParameters } from './parameters';
export {
  parseEndpointPickerConfig,
  validateEndpointPickerConfig,
  renderEndpointPickerConfig,
  endpointPickerConfigNotes,
  featureGateEnabled,
  DEFAULT_PROFILE_NAME,
  DEFAULT_SCORER_WEIGHT,
} from './loader';
export { defaultEndpointPickerConfig, latencyEndpointPickerConfig, prefixFirstEndpointPickerConfig, preciseEndpointPickerConfig, withLoraRoomFilter, withMaxNumSeqs, withoutLatencyScorer, withoutNoHitLru, withoutSessionLoad, withPrefillPriority, type PreciseDefaults } from './defaults';
export {
  EPP_METRICS,
  EPP_METRIC_NAMES,
  GIE_V1_0_REQUEST_METRICS,
  eppMetricSeriesNames,
  type EppMetricDefinition,
  type EppMetricKey,
  type EppMetricType,
} from './metric-names';
export { EPP_NODE_ARGS } from './runtime';
