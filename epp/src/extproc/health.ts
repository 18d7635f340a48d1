/**
 * `grpc.health.v1.Health` (Check and List; Watch answers UNIMPLEMENTED, below) with one process-wide status. Every service name gets that status, because
 * the probes in use ask under different names (`envoy.service.ext_proc.v3.ExternalProcessor` from Envoy's cluster
 * health check and llm-d manifests, `inference-extension` from the GIE chart) and all mean "can this EPP route?".
 * It starts NOT_SERVING: routing needs known endpoints, which the owner signals with `setServing(true)`.
 *
 * The one exception is a liveness service name (`liveness` unless configured): SERVING while the process answers at
 * all, so a Kubernetes liveness probe never restarts an EPP whose pool is merely empty (every decode pod still loading
 * its model), which would also wipe the prefix index it has learned.
 */
import * as grpc from '@grpc/grpc-js';
import { HEALTH_SERVICE, loadEnvoyApi } from '@kvroute/protocol/envoy';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** The health service name that reports process liveness rather than readiness to route. */
export const LIVENESS_SERVICE = 'liveness';

export class HealthState {
  private serving: boolean;

  constructor(initiallyServing = false, private readonly livenessServices: readonly string[] = [LIVENESS_SERVICE]) {
    this.serving = initiallyServing;
  }

  /** The liveness service names (SERVING while the process answers). */
  get livenessNames(): readonly string[] {
    return this.livenessServices;
  }

  /** The status reported for a health `service` name: readiness for every name but the liveness ones. */
  statusFor(service: string | undefined): ServingStatus {
    return service !== undefined && this.livenessServices.includes(service) ? 'SERVING' : this.status;
  }

  get status(): ServingStatus {
    return this.serving ? 'SERVING' : 'NOT_SERVING';
  }

  setServing(serving: boolean): void {
    this.serving = serving;
  }
}

export function healthServiceDefinition(): grpc.ServiceDefinition {
  return loadEnvoyApi().packageDefinition[HEALTH_SERVICE] as grpc.ServiceDefinition;
}

interface HealthCheckRequest {
  service?: string;
}

interface HealthCheckResponse {
  status: ServingStatus;
}

export function healthImplementation(state: HealthState): grpc.UntypedServiceImplementation {
  const check: grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
    callback(null, { status: state.statusFor(call.request?.service) });
  };
  // UNIMPLEMENTED, as the EPP's own health service upstream answers Watch (GIE v1.5.0 and llm-d-router v0.10.0
  // cmd/epp/runner/health.go: `status.Error(codes.Unimplemented, "Watch is not implemented")`), which this service
  // mirrors on both ports. A Watch is a call that never ends on its own: grpc-js's tryShutdown, like grpc-go's
  // GracefulStop, waits for every open call, and grpc-go's health.Server (v1.82.1 health/server.go, what upstream
  // registers on the ext_proc port with --health-checking) only pushes NOT_SERVING on Shutdown, never ending the
  // stream, so one watcher on the ext_proc port held the drain for the whole --shutdown-grace-period. Kubernetes'
  // gRPC probes and Envoy's gRPC health checker use Check; a client-side health-checking gRPC client that gets
  // UNIMPLEMENTED treats the server as healthy (grpc-go v1.82.1 health/client.go), as it would with upstream's EPP.
  const watch: grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse> = (call) => {
    call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'Watch is not implemented', metadata: new grpc.Metadata() } as Partial<grpc.StatusObject>);
  };
  // GIE v1.5.0's List (cmd/epp/runner/health.go) names the ext_proc service; kvroute adds its liveness names.
  const list: grpc.handleUnaryCall<Record<string, never>, { statuses: Record<string, HealthCheckResponse> }> = (_call, callback) => {
    const statuses: Record<string, HealthCheckResponse> = { [EXT_PROC_HEALTH_NAME]: { status: state.status } };
    for (const name of state.livenessNames) statuses[name] = { status: state.statusFor(name) };
    callback(null, { statuses });
  };
  return { Check: check, List: list, Watch: watch };
}

/** The service name Envoy's cluster health check and GIE's List use for the EPP. */
export const EXT_PROC_HEALTH_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';
