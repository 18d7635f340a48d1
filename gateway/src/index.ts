/** Public API of `@kvroute/gateway`. */
export { startGateway, HEALTH_PATH, STATS_PATH, type Gateway } from './gateway';
export {
  DEFAULTS,
  GatewayConfigError,
  resolveOptions,
  type GatewayLogger,
  type GatewayOptions,
  type RequestBodyMode,
  type ResolvedOptions,
  type ResponseBodyMode,
  type ResponseHeaderMode,
} from './options';
export type { EndpointStats, FailOpenReason, GatewayStats } from './stats';
export { parseArgs, CliError, USAGE, CLI_DEFAULT_PORT, type CliCommand } from './cli';
export { DESTINATION_HEADER, SERVED_HEADER, LB_NAMESPACE } from './router';
