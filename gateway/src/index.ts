/** Public API of `@kvroute/gateway`. */
export { startGateway, HEALTH_PATH, STATS_PATH, EXT_PROC_MEMBERS_PATH, type Gateway } from './gateway';
export {
  DEFAULTS,
  GatewayConfigError,
  envoyConfigRejection,
  resolveOptions,
  type GatewayLogger,
  type GatewayOptions,
  type ProcessingModeScope,
  type RequestBodyMode,
  type ResolvedOptions,
  type ResponseBodyMode,
  type ResponseHeaderMode,
  type TrailerMode,
} from './options';
export {
  DEFAULT_ENVOY_SEMANTICS,
  ENVOY_SEMANTICS_VERSIONS,
  envoySemantics,
  verifyProcessingModeConfig,
  type EnvoySemantics,
  type EnvoySemanticsVersion,
} from './envoy-semantics';
export type { EndpointStats, FailOpenReason, GatewayStats, TimeoutKind } from './stats';
export {
  EXT_PROC_LB_POLICIES,
  OUTLIER_DETECTION_DEFAULTS,
  grpcToHttpStatus,
  type EjectionType,
  type ExtProcClusterStats,
  type ExtProcHostStats,
  type ExtProcLbPolicy,
  type OutlierDetectionConfig,
} from './ext-proc-cluster';
export { parseArgs, CliError, USAGE, CLI_DEFAULT_PORT, flagFor, type CliCommand } from './cli';
export { DEFAULT_HCM_STAT_PREFIX, ENVOY_STATS_PATH, HCM_PREFIX_TAG, extProcSeriesName } from './envoy-stats';
export type { ExtProcCounter } from './envoy-semantics';
export { DESTINATION_HEADER, SERVED_HEADER, LB_NAMESPACE } from './router';
