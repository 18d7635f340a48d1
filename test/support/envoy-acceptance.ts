/**
 * What an Istio release's proxy would refuse in kvroute's Istio objects: the checks Envoy's config validation and
 * Istio's translation apply that no schema states, by version, each citing the source it mirrors. The proto-level
 * checks (fields, enums, PGV rules) are `@kvroute/testkit`'s proto-JSON checker; this adds the semantic rules.
 */
import type { IstioSupport } from '../../lib/istio';
import type { Manifest } from './manifests';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const EXT_PROC = 'envoy.filters.http.ext_proc';

interface ProcessingMode {
  request_body_mode?: string;
  response_body_mode?: string;
  request_trailer_mode?: string;
  response_trailer_mode?: string;
}

/** Every EnvoyFilter patch value of `applyTo`. */
function patches(manifests: readonly Manifest[], applyTo: string): Json[] {
  return manifests
    .filter((m) => m.kind === 'EnvoyFilter')
    .flatMap((f) => (f.spec.configPatches as Json[]).filter((p) => p.applyTo === applyTo));
}

/**
 * The reasons `istio`'s proxy would NACK or Istio would break the objects; empty when everything loads.
 */
export function envoyRejections(istio: IstioSupport, manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];

  for (const p of patches(manifests, 'HTTP_FILTER')) {
    const filter = p.patch.value as Json;
    if (filter.name !== EXT_PROC) continue;
    const cfg = filter.typed_config as Json;
    const mode = (cfg.processing_mode ?? {}) as ProcessingMode;
    const fullDuplex = mode.request_body_mode === 'FULL_DUPLEX_STREAMED' || mode.response_body_mode === 'FULL_DUPLEX_STREAMED';
    // envoyproxy/envoy source/extensions/filters/http/ext_proc/config.cc verifyProcessingModeConfig @ v1.35.0 L53-62.
    if (istio.rejectsFilterLevelFullDuplexWithFailOpen && fullDuplex && cfg.failure_mode_allow === true) {
      problems.push('ext_proc: If the ext_proc filter has either the request_body_mode or the response_body_mode set to '
        + 'FULL_DUPLEX_STREAMED, then the failure_mode_allow has to be left as false');
    }
    // config.cc verifyProcessingModeConfig @ v1.35.0 L35-51 and @ main 6806efb84e L36-54 (every version).
    for (const dir of ['request', 'response'] as const) {
      if (mode[`${dir}_body_mode`] === 'FULL_DUPLEX_STREAMED' && mode[`${dir}_trailer_mode`] !== 'SEND') {
        problems.push(`ext_proc: If the ext_proc filter has the ${dir}_body_mode set to FULL_DUPLEX_STREAMED, then the ${dir}_trailer_mode has to be set to SEND`);
      }
    }
  }

  // Per-route overrides are not validated by Envoy (config.cc createRouteSpecificFilterConfigTyped), so their
  // FULL_DUPLEX contract is checked here: without trailers SEND a trailer-carrying request would hang the exchange.
  for (const applyTo of ['VIRTUAL_HOST', 'HTTP_ROUTE']) {
    for (const p of patches(manifests, applyTo)) {
      const perRoute = ((p.patch.value as Json).typed_per_filter_config ?? {})[EXT_PROC] as Json | undefined;
      const mode = perRoute?.overrides?.processing_mode as ProcessingMode | undefined;
      if (!mode) continue;
      for (const dir of ['request', 'response'] as const) {
        if (mode[`${dir}_body_mode`] === 'FULL_DUPLEX_STREAMED' && mode[`${dir}_trailer_mode`] !== 'SEND') {
          problems.push(`ExtProcPerRoute: ${dir}_body_mode FULL_DUPLEX_STREAMED without ${dir}_trailer_mode SEND`);
        }
      }
    }
  }

  // OverrideHost.selected_host_key exists from Envoy 1.38 (envoyproxy/envoy a7589bb142; go-control-plane envoy/v1.38.0),
  // and istiod (go-control-plane envoy/v1.36.1-0.20260108 at Istio 1.29.0) cannot even parse it before Istio 1.30.
  for (const p of patches(manifests, 'CLUSTER')) {
    for (const policy of ((p.patch.value as Json).load_balancing_policy?.policies ?? []) as Json[]) {
      if (policy.typed_extension_config?.typed_config?.selected_host_key !== undefined && !istio.reportsServedEndpoint) {
        problems.push(`cluster ${p.match.cluster?.service as string}: OverrideHost has no field selected_host_key before Envoy 1.38 (Istio 1.30)`);
      }
    }
  }

  // source/common/upstream/upstream_impl.cc ClusterInfoImpl::configureLbPolicies @ v1.35.1 L1463-1471: a cluster with
  // load_balancing_policy may not carry locality_weighted_lb_config, which Istio adds for the host when its
  // DestinationRule's localityLbSetting distributes or fails over (pilot cluster_traffic_policy.go
  // applyLocalityLoadBalancer @ 1.27.0 L308-324), or when no DestinationRule turns locality load balancing off and the
  // Service asks for trafficDistribution. kvroute's objects must disable it for every patched host.
  for (const p of patches(manifests, 'CLUSTER')) {
    if ((p.patch.value as Json).load_balancing_policy === undefined) continue;
    const host = p.match.cluster?.service as string;
    const rules = manifests.filter((m) => m.kind === 'DestinationRule' && m.spec.host === host);
    if (rules.length !== 1) {
      problems.push(`cluster ${host}: override_host needs exactly one DestinationRule for the host, found ${rules.length}`);
      continue;
    }
    const locality = rules[0]!.spec.trafficPolicy?.loadBalancer?.localityLbSetting as Json | undefined;
    if (locality?.enabled !== false) {
      problems.push(`cluster ${host}: load_balancing_policy cannot be combined with partial fields (zone_aware_lb_config, `
        + 'locality_weighted_lb_config, consistent_hashing_lb_config) of common_lb_config; the DestinationRule must set localityLbSetting.enabled: false');
    }
    if (locality?.distribute !== undefined || locality?.failover !== undefined || locality?.failoverPriority !== undefined) {
      problems.push(`cluster ${host}: a localityLbSetting with distribute or failover makes Istio add locality_weighted_lb_config`);
    }
  }

  // Route-level request_body_buffer_limit only bounds ext_proc's buffer from Envoy 1.37 (Istio 1.29), #42607.
  for (const p of patches(manifests, 'HTTP_ROUTE')) {
    if ((p.patch.value as Json).request_body_buffer_limit !== undefined && !istio.routeRequestBodyBufferLimit) {
      problems.push(`route request_body_buffer_limit has no effect on ext_proc before Istio 1.29 (Envoy 1.37)`);
    }
  }

  // Native routing: Istio reads one InferencePool API per release (pilot gvk resources.gen.go @ tag), and a route to a
  // pool of another API group is not an InferencePool backend to it (conversion.go normalizeReference).
  for (const route of manifests.filter((m) => m.kind === 'HTTPRoute')) {
    for (const rule of route.spec.rules as Json[]) {
      for (const ref of (rule.backendRefs ?? []) as Json[]) {
        if (ref.kind !== 'InferencePool') continue;
        if (!istio.nativeInferencePool) problems.push(`HTTPRoute ${route.metadata.name}: native InferencePool routing needs Istio >= 1.28`);
        if (ref.group !== istio.inferencePoolApiGroup) {
          problems.push(`HTTPRoute ${route.metadata.name}: Istio ${istio.version} routes to InferencePools of ${istio.inferencePoolApiGroup}, not ${ref.group}`);
        }
        const pool = manifests.find((m) => m.kind === 'InferencePool' && m.metadata.name === ref.name);
        if (!pool || !pool.apiVersion.startsWith(`${istio.inferencePoolApiGroup}/`)) {
          problems.push(`HTTPRoute ${route.metadata.name}: no InferencePool ${ref.name} of ${istio.inferencePoolApiGroup}`);
        }
        // Istio inserts its own envoy.filters.http.ext_proc on such gateways (listener_builder.go L408-413): a second
        // filter of that name from an EnvoyFilter would collide.
        if (patches(manifests, 'HTTP_FILTER').some((p) => (p.patch.value as Json).name === EXT_PROC)) {
          problems.push(`HTTPRoute ${route.metadata.name}: an ext_proc EnvoyFilter on a gateway Istio already wires natively`);
        }
      }
    }
  }
  return problems;
}
