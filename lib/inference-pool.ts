import { Construct } from 'constructs';
import * as v1alpha2 from '../imports/inferencepool-inference.networking.x-k8s.io';
import * as v1 from '../imports/inferencepoolv1-inference.networking.k8s.io';
import { DecodePool } from './decode-pool';
import { EndpointPicker } from './endpoint-picker';
import { checkOneOf } from './validation';

/** What the gateway does when the EPP cannot answer. */
export type PoolFailureMode = 'FailOpen' | 'FailClose';

/** Props of {@link InferencePool}. */
export interface InferencePoolProps {
  /** The pods the pool selects (its labels) and their port (the routing sidecar). */
  readonly decodePool: DecodePool;
  /** The EPP that serves this pool; its `poolName`, namespace and API group name and place the pool. */
  readonly endpointPicker: EndpointPicker;
  /**
   * Recorded for gateways that read the pool natively (Istio >= 1.28 with the inference extension on, InferencePool
   * v1: `KvAwareRouting`'s `native` routing, which it refuses on 1.27); with kvroute's EnvoyFilter the same intent is
   * `failure_mode_allow` plus the round-robin fallback, and `KvAwareRouting` keeps the two in agreement.
   * @default 'FailOpen'
   * @see https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api-inference-extension/
   */
  readonly failureMode?: PoolFailureMode;
}

/**
 * The InferencePool the EPP reads to discover endpoints: selector = decode pod labels, target port = the sidecar,
 * extension ref = the EPP Service's gRPC port. Without it the EPP never becomes ready. The API version follows the
 * EPP's `poolApiGroup`: v1alpha2 for `inference.networking.x-k8s.io`, v1 for `inference.networking.k8s.io`.
 */
export class InferencePool extends Construct {
  public readonly name: string;
  public readonly apiVersion: string;

  constructor(scope: Construct, id: string, props: InferencePoolProps) {
    super(scope, id);
    const { decodePool, endpointPicker } = props;
    const failureMode = checkOneOf('InferencePool', 'failureMode', props.failureMode ?? 'FailOpen', ['FailOpen', 'FailClose'] as const);
    this.name = endpointPicker.poolName;
    const metadata = { name: this.name, namespace: endpointPicker.namespace };
    if (endpointPicker.poolApiGroup === 'inference.networking.k8s.io') {
      const pool = new v1.InferencePool(this, 'Resource', {
        metadata,
        spec: {
          selector: { matchLabels: { ...decodePool.podLabels } },
          targetPorts: [{ number: decodePool.servicePort }],
          endpointPickerRef: {
            group: '',
            kind: 'Service',
            name: endpointPicker.serviceName,
            port: { number: endpointPicker.grpcPort },
            failureMode: failureMode === 'FailOpen'
              ? v1.InferencePoolSpecEndpointPickerRefFailureMode.FAIL_OPEN
              : v1.InferencePoolSpecEndpointPickerRefFailureMode.FAIL_CLOSE,
          },
        },
      });
      this.apiVersion = pool.apiVersion;
    } else {
      const pool = new v1alpha2.InferencePool(this, 'Resource', {
        metadata,
        spec: {
          selector: { ...decodePool.podLabels },
          targetPortNumber: decodePool.servicePort,
          extensionRef: {
            group: '',
            kind: 'Service',
            name: endpointPicker.serviceName,
            portNumber: endpointPicker.grpcPort,
            failureMode: failureMode === 'FailOpen'
              ? v1alpha2.InferencePoolSpecExtensionRefFailureMode.FAIL_OPEN
              : v1alpha2.InferencePoolSpecExtensionRefFailureMode.FAIL_CLOSE,
          },
        },
      });
      this.apiVersion = pool.apiVersion;
    }
  }
}
