/**
 * The ext_proc protocol handler: a gRPC server speaking Envoy's side of `envoy.service.ext_proc.v3`, which hands each
 * complete request to a `RequestDirector` and knows nothing of scheduling. The bench and the gateway's tests run it
 * with directors of their own.
 */
export {
  startExtProcServer,
  extProcServiceDefinition,
  extProcHandler,
  isValidEnvoyHttpStatus,
  streamSettings,
  EXT_PROC_SERVICE,
  DEFAULT_EXT_PROC_PORT,
  DEFAULT_HEALTH_PORT,
  DESTINATION_ENDPOINT_HEADER,
  DESTINATION_METADATA_NAMESPACE,
  MAX_STREAMED_CHUNK_BYTES,
  DEFAULT_MAX_REQUEST_BODY_BYTES,
  type ExtProcServer,
  type ExtProcServerOptions,
} from './server';
export { rejectWith, type IncomingRequest, type ReleaseOutcome, type RequestDirector, type RouteDecision } from './request-director';
export { HealthState, LIVENESS_SERVICE, healthServiceDefinition, healthImplementation, type ServingStatus } from './health';
export type { ExtProcLogger, StreamSettings } from './stream';
export { liftStreamResetLimit, nodeHonoursStreamResetLimit, streamResetLimitWarning, STREAM_RESET_BURST, STREAM_RESET_RATE } from './stream-reset-limit';
