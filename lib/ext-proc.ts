import { Construct } from 'constructs';
import * as dr from '../imports/destinationrule-networking.istio.io';
import * as ef from '../imports/envoyfilter-networking.istio.io';
import { DecodePool } from './decode-pool';
import { EndpointPicker } from './endpoint-picker';
import { InferenceGateway } from './gateway';
import { checkDuration, checkInteger, toProtoDuration } from './validation';

/** Header and metadata key the EPP writes its pick under (GIE's `x-gateway-destination-endpoint`). */
export const DESTINATION_ENDPOINT_KEY = 'x-gateway-destination-endpoint';
/** Dynamic-metadata namespace Envoy's override_host policy reads the pick from. */
export const LB_METADATA_NAMESPACE = 'envoy.lb';
/** Session header the consistent-hash backup hashes on. */
export const SESSION_HEADER = 'x-session-id';

const ANY = 'type.googleapis.com/';
export const EXT_PROC_TYPE = `${ANY}envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor`;
export const EXT_PROC_PER_ROUTE_TYPE = `${ANY}envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute`;
export const OVERRIDE_HOST_TYPE = `${ANY}envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost`;
export const ROUND_ROBIN_TYPE = `${ANY}envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin`;
export const RING_HASH_TYPE = `${ANY}envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash`;

/** Props of {@link ExtProcRouting}. */
export interface ExtProcRoutingProps {
  readonly gateway: InferenceGateway;
  readonly endpointPicker: EndpointPicker;
  readonly decodePool: DecodePool;
  /**
   * Let requests through when the EPP is unreachable, errors at the gRPC level or times out. They then reach the
   * decode Service through the fallback policy (round robin, or the session hash). Picks the EPP answers with an
   * error status (400/429/503) are still returned to the client.
   * @default true
   */
  readonly failureModeAllow?: boolean;
  /**
   * How long Envoy waits for each EPP answer. The EPP answers the request headers only after the last body chunk
   * (it needs the prompt), so this bounds client upload time plus scheduling; on expiry Envoy fails open (or closed).
   * Istio's native integration uses 1000s, which turns an EPP hang into 16 minutes of client latency.
   * @default '10s'
   */
  readonly messageTimeout?: string;
  /**
   * Use a ring hash on `x-session-id` instead of round robin when the EPP gives no pick, and hash the same header
   * in the decode DestinationRule: sessions stay on one pod even while the EPP is down.
   * @default false
   */
  readonly consistentHashFallback?: boolean;
  /** Ring size of the consistent-hash backup (more entries spread load more evenly). @default 1024 */
  readonly minimumRingSize?: number;
}

/**
 * The Istio wiring that makes the EPP's pick take effect, as one EnvoyFilter plus the decode DestinationRule.
 *
 * Why this shape (deployment notes §2.7–2.8):
 * - ext_proc sits just before the router (not first: Istio's own filters, authn and stats, run before it) with the
 *   request body FULL_DUPLEX_STREAMED. The EPP must read the prompt to score prefixes; `request_body_mode: NONE`
 *   (as in public demos) means it never picks. Envoy requires trailer mode SEND with that body mode.
 * - The decode Service's cluster gets Envoy's `override_host` load-balancing policy reading the pick from dynamic
 *   metadata `envoy.lb` (set only by the EPP, unlike a header a client could forge). A pick that is not an endpoint
 *   of the Service is ignored, and with no pick (the EPP failed open) the fallback policy chooses, so requests are
 *   still served. An ORIGINAL_DST cluster would instead answer 503 whenever the EPP is down.
 * - The `/v1/models` route, when present, disables ext_proc: listing models needs no pick.
 */
export class ExtProcRouting extends Construct {
  public readonly envoyFilter: ef.EnvoyFilter;
  public readonly destinationRule: dr.DestinationRule;
  public readonly consistentHashFallback: boolean;

  constructor(scope: Construct, id: string, props: ExtProcRoutingProps) {
    super(scope, id);
    const S = 'ExtProcRouting';
    const { gateway, endpointPicker, decodePool } = props;
    const messageTimeout = toProtoDuration(checkDuration(S, 'messageTimeout', props.messageTimeout ?? '10s'));
    this.consistentHashFallback = props.consistentHashFallback ?? false;
    const ringSize = checkInteger(S, 'minimumRingSize', props.minimumRingSize ?? 1024, 64, 8_388_608);

    const extProcFilter = {
      name: 'envoy.filters.http.ext_proc',
      typed_config: {
        '@type': EXT_PROC_TYPE,
        grpc_service: {
          envoy_grpc: { cluster_name: endpointPicker.grpcClusterName },
          timeout: '10s',
        },
        failure_mode_allow: props.failureModeAllow ?? true,
        message_timeout: messageTimeout,
        processing_mode: {
          request_header_mode: 'SEND',
          request_body_mode: 'FULL_DUPLEX_STREAMED',
          request_trailer_mode: 'SEND',
          // Response headers and body let the EPP see when a request ends (in-flight counts, session bindings);
          // it passes them through unchanged.
          response_header_mode: 'SEND',
          response_body_mode: 'FULL_DUPLEX_STREAMED',
          response_trailer_mode: 'SEND',
        },
        metadata_options: {
          receiving_namespaces: { untyped: [LB_METADATA_NAMESPACE] },
        },
      },
    };

    const fallbackPolicy = this.consistentHashFallback
      ? { name: 'envoy.load_balancing_policies.ring_hash', typed_config: { '@type': RING_HASH_TYPE, minimum_ring_size: ringSize } }
      : { name: 'envoy.load_balancing_policies.round_robin', typed_config: { '@type': ROUND_ROBIN_TYPE } };

    const clusterPatch = {
      lb_policy: 'CLUSTER_PROVIDED',
      load_balancing_policy: {
        policies: [{
          typed_extension_config: {
            name: 'envoy.load_balancing_policies.override_host',
            typed_config: {
              '@type': OVERRIDE_HOST_TYPE,
              override_host_sources: [{
                metadata: { key: LB_METADATA_NAMESPACE, path: [{ key: DESTINATION_ENDPOINT_KEY }] },
              }],
              fallback_policy: { policies: [{ typed_extension_config: fallbackPolicy }] },
            },
          },
        }],
      },
    };

    const configPatches: ef.EnvoyFilterSpecConfigPatches[] = [
      {
        applyTo: ef.EnvoyFilterSpecConfigPatchesApplyTo.HTTP_UNDERSCORE_FILTER,
        match: {
          context: ef.EnvoyFilterSpecConfigPatchesMatchContext.GATEWAY,
          listener: {
            portNumber: gateway.port,
            filterChain: {
              filter: {
                name: 'envoy.filters.network.http_connection_manager',
                subFilter: { name: 'envoy.filters.http.router' },
              },
            },
          },
        },
        patch: { operation: ef.EnvoyFilterSpecConfigPatchesPatchOperation.INSERT_UNDERSCORE_BEFORE, value: extProcFilter },
      },
      {
        applyTo: ef.EnvoyFilterSpecConfigPatchesApplyTo.CLUSTER,
        match: {
          context: ef.EnvoyFilterSpecConfigPatchesMatchContext.GATEWAY,
          cluster: { service: decodePool.serviceFqdn, portNumber: decodePool.servicePort },
        },
        patch: { operation: ef.EnvoyFilterSpecConfigPatchesPatchOperation.MERGE, value: clusterPatch },
      },
    ];
    if (gateway.modelsRoute) {
      configPatches.push({
        applyTo: ef.EnvoyFilterSpecConfigPatchesApplyTo.HTTP_UNDERSCORE_ROUTE,
        match: {
          context: ef.EnvoyFilterSpecConfigPatchesMatchContext.GATEWAY,
          routeConfiguration: {
            vhost: { name: gateway.vhostName, route: { name: gateway.envoyRouteName(gateway.modelsRoute) } },
          },
        },
        patch: {
          operation: ef.EnvoyFilterSpecConfigPatchesPatchOperation.MERGE,
          value: {
            typed_per_filter_config: {
              'envoy.filters.http.ext_proc': { '@type': EXT_PROC_PER_ROUTE_TYPE, disabled: true },
            },
          },
        },
      });
    }

    this.envoyFilter = new ef.EnvoyFilter(this, 'EnvoyFilter', {
      metadata: { name: `${endpointPicker.name}-ext-proc`, namespace: gateway.namespace },
      spec: {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: gateway.name }],
        configPatches,
      },
    });

    this.destinationRule = new dr.DestinationRule(this, 'DecodeDestinationRule', {
      metadata: { name: decodePool.serviceName, namespace: decodePool.namespace },
      spec: {
        host: decodePool.serviceFqdn,
        trafficPolicy: {
          // What Envoy does without the EnvoyFilter (or if Istio drops the patch): still balanced, never a 503.
          loadBalancer: this.consistentHashFallback
            ? { consistentHash: { httpHeaderName: SESSION_HEADER, ringHash: { minimumRingSize: ringSize } } }
            : { simple: dr.DestinationRuleSpecTrafficPolicyLoadBalancerSimple.ROUND_UNDERSCORE_ROBIN },
        },
      },
    });
  }
}
