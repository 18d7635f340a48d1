/**
 * `grpc.health.v1.Health` (Check, List and Watch) with one process-wide status. Every service name gets that status, because
 * the probes in use ask under different names (`envoy.service.ext_proc.v3.ExternalProcessor` from Envoy's cluster
 * health check and llm-d manifests, `inference-extension` from the GIE chart) and all mean "can this EPP route?".
 * It starts NOT_SERVING: routing needs known endpoints, which the owner signals with `setServing(true)`.
 *
 * The one exception is a liveness service name (`liveness` unless configured): SERVING while the process answers at
 * all, so a Kubernetes liveness probe never restarts an EPP whose pool is merely empty (every decode pod still loading
 * its model), which would also wipe the prefix index it has learned.
 */
import type * as grpc from '@grpc/grpc-js';
import { HEALTH_SERVICE, loadEnvoyApi } from '@kvroute/protocol/envoy';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** The health service name that reports process liveness rather than readiness to route. */
export const LIVENESS_SERVICE = 'liveness';

export class HealthState {
  private serving: boolean;
  private readonly listeners = new Set<(status: ServingStatus) => void>();

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
    if (serving === this.serving) return;
    this.serving = serving;
    for (const fn of [...this.listeners]) fn(this.status);
  }

  /** Returns the unsubscribe function. */
  subscribe(fn: (status: ServingStatus) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get watchers(): number {
    return this.listeners.size;
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
  const watch: grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse> = (call) => {
    const service = call.request?.service;
    const send = (): void => {
      if (!call.destroyed && call.writable) call.write({ status: state.statusFor(service) });
    };
    const unsubscribe = state.subscribe(send);
    // 'cancelled' covers client cancellation and server shutdown; 'close' and 'error' catch anything else.
    call.on('cancelled', unsubscribe);
    call.on('close', unsubscribe);
    call.on('error', unsubscribe);
    send();
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
