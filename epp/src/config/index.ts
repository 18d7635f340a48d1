/**
 * The EndpointPickerConfig: types, loader, renderer and kvroute's default. Imported both by the EPP and by the cdk8s
 * app (`../epp/src/config`), so it depends on nothing but `yaml`.
 */
export {
  ENDPOINT_PICKER_CONFIG_API_VERSION,
  ENDPOINT_PICKER_CONFIG_KIND,
  type EndpointPickerConfig,
  type SchedulingProfileSpec,
  type SchedulingProfilePluginRef,
  type PluginSpec,
  type PluginSpecFor,
  type PluginParametersByType,
  type ResolvedPluginParameters,
  type NoParameters,
  type PickerParameters,
  type PrefixCacheScorerParameters,
  type LoadAwareScorerParameters,
  type ActiveRequestScorerParameters,
  type SessionAffinityFilterParameters,
  type SaturationFilterParameters,
  type ByLabelFilterParameters,
} from './types';
export {
  KNOWN_PLUGIN_TYPES,
  PLUGIN_TYPE_ALIASES,
  isKnownPluginType,
  pluginKinds,
  pluginHasKind,
  type PluginKind,
  type PluginType,
} from './catalogue';
export { ConfigError } from './errors';
export { parseDuration, type Duration } from './duration';
export { resolvePluginParameters } from './parameters';
export {
  parseEndpointPickerConfig,
  validateEndpointPickerConfig,
  renderEndpointPickerConfig,
  DEFAULT_PROFILE_NAME,
  DEFAULT_SCORER_WEIGHT,
} from './loader';
export { defaultEndpointPickerConfig } from './defaults';
export {
  EPP_METRICS,
  EPP_METRIC_NAMES,
  eppMetricSeriesNames,
  type EppMetricDefinition,
  type EppMetricKey,
  type EppMetricType,
} from './metric-names';
