import { Construct } from 'constructs';
import * as dr from '../imports/destinationrule-networking.istio.io';
import * as ef from '../imports/envoyfilter-networking.istio.io';
import { DecodePool } from './decode-pool';
import { EndpointPicker } from './endpoint-picker';
import { InferenceGateway, REQUEST_RECEIVE_UPLOAD_MARGIN } from './gateway';
import type { IstioSupport } from './istio';
import { checkDuration, checkInteger, checkOneOf, durationNanos, PropsError, toProtoDuration } from './validation';

/** Header and metadata key the EPP writes its pick under (GIE's `x-gateway-destination-endpoint`). */
export const DESTINATION_ENDPOINT_KEY = 'x-gateway-destination-endpoint';
/** Dynamic-metadata namespace Envoy's override_host policy reads the pick from. */
export const LB_METADATA_NAMESPACE = 'envoy.lb';
/** Where `override_host` writes the endpoint that served (EPP protocol "Destination Endpoint Served"). */
export const DESTINATION_ENDPOINT_SERVED_KEY = 'x-gateway-destination-endpoint-served';
/** Session header the consistent-hash backup hashes on. */
export const SESSION_HEADER = 'x-session-id';
/** The HTTP filter's name; per-route configs are keyed by it. */
export const EXT_PROC_FILTER_NAME = 'envoy.filters.http.ext_proc';

const ANY = 'type.googleapis.com/';
export const EXT_PROC_TYPE = `${ANY}envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor`;
export const EXT_PROC_PER_ROUTE_TYPE = `${ANY}envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute`;
export const OVERRIDE_HOST_TYPE = `${ANY}envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost`;
export const ROUND_ROBIN_TYPE = `${ANY}envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin`;
export const RING_HASH_TYPE = `${ANY}envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash`;

/**
 * Response trailers are sent to the EPP (vLLM sends none over HTTP/1.1, so nothing is ever sent) only to keep the
 * ext_proc stream open until the HTTP exchange ends, when Envoy destroys the filter: that is how the EPP learns a
 * response is over without response bodies flowing through it. Envoy >= 1.37 (Istio >= 1.29) closes the stream as
 * soon as no more processing is pending (#41425, `ext_proc_stream_close_optimization`, on by default;
 * `Filter::closeGrpcStreamIfLastRespReceived` and `ProcessorState::isLastResponseAfterHeaderResp` @ v1.37.0
 * 6d9bb7d9a8), which with trailers SKIP would be at the first response byte and leave the EPP's in-flight counts low.
 * On 1.35/1.36 the stream already lives until `Filter::onDestroy`; the setting is harmless there.
 *
 * Why response bodies NONE with trailers SEND, measured (`npm run bench:response-modes -w epp`, the real EPP driven
 * as Envoy drives it, 200-token SSE responses on average, one quiet 2-core machine; numbers in epp/README.md and
 * epp/bench/response-modes.json):
 * - response bodies FULL_DUPLEX_STREAMED, the other mode that sees each end: every token crosses the EPP twice
 *   (~415 messages and ~94 KB per response instead of 6 and 2 KB); at 1,000 streamed responses/s offered the EPP
 *   saturated at 74/s, at 6.6 CPU-seconds per 1,000 responses (about 6.7 cores at 1,000/s), and each token waited
 *   for it (p50 0.66 s once saturated);
 * - this mode: 1,000/s sustained at 0.52 CPU-seconds per 1,000 responses (about half a core), 0.4 ms added to the first
 *   byte at p50; the in-flight gauge tracked the open responses and returned to exactly 0;
 *   `gateway/test/in-flight.test.ts` proves the count per Envoy release, client aborts included;
 * - trailers SKIP on Envoy >= 1.37: no cheaper (the same 6 messages), but the in-flight count read 4 against 2,875 open
 *   responses.
 * Istio's native InferencePool routing (>= 1.28) configures response bodies FULL_DUPLEX_STREAMED itself (istio/istio
 * pilot/pkg/networking/core/route/route.go L521-545 @ 1.28.0 b8d1df5446, unchanged to 1.30.3), so it pays the first
 * cost; kvroute's EnvoyFilter cannot change that.
 */
const RESPONSE_TRAILER_MODE = 'SEND';

/**
 * How the request body reaches the EPP.
 * - `buffered`: Envoy buffers the whole body and sends it in one message (`BUFFERED`). The message timeout applies,
 *   and when the EPP fails or times out the request continues intact to the fallback policy (a real fail-open) on
 *   every Istio version. Bodies are limited by the listener's buffer (`requestBodyBufferLimitBytes`); larger ones
 *   get 413 from Envoy.
 * - `full-duplex`: chunks stream to the EPP as they arrive (`FULL_DUPLEX_STREAMED`, as Istio's native integration
 *   does). No body-size limit, but Envoy never starts the message timer in this mode (so only the gateway's
 *   `requestReceiveTimeout` bounds a hung EPP), and an EPP failure after the first body chunk is not a clean
 *   fail-open: Envoy 1.35 (Istio 1.27) forwards the request without the chunks it already handed over, Envoy >= 1.36
 *   (Istio >= 1.28) answers 500.
 */
export type RequestBodyMode = 'buffered' | 'full-duplex';

/** Istio's EnvoyFilter annotation naming the Services a filter calls, so gateways that filter clusters keep them. */
export const REFERENCED_SERVICES_ANNOTATION = 'envoyfilter.istio.io/referenced-services';

/** The annotation's value for the EPP's Service: `<namespace>/<hostname>`, the namespaced form Istio reads. */
export function eppServiceReference(endpointPicker: EndpointPicker): string {
  return `${endpointPicker.namespace}/${endpointPicker.serviceFqdn}`;
}

/** Props of {@link EppClusterReference}. */
export interface EppClusterReferenceProps {
  readonly gateway: InferenceGateway;
  readonly endpointPicker: EndpointPicker;
}

/**
 * For Istio's native InferencePool routing: an EnvoyFilter without patches whose only job is its
 * `envoyfilter.istio.io/referenced-services` annotation naming the EPP's Service. An istiod run with
 * `PILOT_FILTER_GATEWAY_CLUSTER_CONFIG=true` (off by default) sends a gateway only the clusters of its routes'
 * destinations (pilot/pkg/model/push_context.go `GatewayServices` @ 1.28.0 to 1.30.0), and the InferencePool's routes
 * name its shadow Service, never the EPP, so the gateway would get no `outbound|9002||<EPP>` cluster for the ext_proc
 * filter Istio itself writes, and would fail open on every request; the annotation adds the Service to those clusters
 * (pilot/pkg/model/envoyfilter.go, #55038). Istio validates an EnvoyFilter without configPatches as valid
 * (pkg/config/validation/envoyfilter/envoyfilter.go); with the flag off it changes nothing.
 */
export class EppClusterReference extends Construct {
  public readonly envoyFilter: ef.EnvoyFilter;

  constructor(scope: Construct, id: string, props: EppClusterReferenceProps) {
    super(scope, id);
    const { gateway, endpointPicker } = props;
    this.envoyFilter = new ef.EnvoyFilter(this, 'EnvoyFilter', {
      metadata: {
        name: `${endpointPicker.name}-cluster-reference`,
        namespace: gateway.namespace,
        annotations: { [REFERENCED_SERVICES_ANNOTATION]: eppServiceReference(endpointPicker) },
      },
      spec: {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: gateway.name }],
        configPatches: [],
      },
    });
  }
}

/** Props of {@link ExtProcRouting}. */
export interface ExtProcRoutingProps {
  readonly gateway: InferenceGateway;
  readonly endpointPicker: EndpointPicker;
  readonly decodePool: DecodePool;
  /** The Istio the gateway runs; decides the filter's shape (see `istioSupport`). */
  readonly istio: IstioSupport;
  /**
   * How the request body reaches the EPP; see {@link RequestBodyMode}.
   * @default 'buffered' (the only mode with a working timeout and an intact fail-open on every Istio version)
   */
  readonly requestBodyMode?: RequestBodyMode;
  /**
   * `buffered` only: the gateway listener's `per_connection_buffer_limit_bytes`, which caps the body Envoy buffers for
   * the EPP (Envoy's default is 1 MiB; larger bodies get 413). It applies to every connection of the gateway listener.
   * @default 8388608 (8 MiB: a 128k-token prompt is about 0.5 MB of text; base64 images need more)
   * @see https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/listener/v3/listener.proto
   */
  readonly requestBodyBufferLimitBytes?: number;
  /**
   * Let requests through when the EPP is unreachable, errors at the gRPC level or times out. They then reach the
   * decode Service through the fallback policy (round robin, or the session hash). Picks the EPP answers with an
   * error status (400/429/503) are still returned to the client. In `full-duplex` mode this holds only until the
   * first body chunk reached the EPP (see {@link RequestBodyMode}).
   * @default true
   */
  readonly failureModeAllow?: boolean;
  /**
   * `buffered` only: how long Envoy waits for each EPP answer (after the whole body arrived) before failing open, or
   * answering 504 when `failureModeAllow` is false. Envoy skips this timer in `full-duplex` mode. At most 1h (the
   * proto's bound).
   * @default '1s'
   */
  readonly messageTimeout?: string;
  /**
   * `buffered` only: Envoy's `max_message_timeout`, the longest the EPP may ask Envoy to wait for an answer it holds
   * back in flow control (every pod saturated). The EPP asks once per request, with `override_message_timeout`, only
   * when it starts such a wait, and ends the wait 250 ms before it with its own answer (a pick, or a 429 saying why).
   * A hung or stopped EPP cannot ask, so it still fails open at `messageTimeout`. `'0s'` turns it off: Envoy then
   * ignores every override, and a wait longer than `messageTimeout` ends in a fail-open onto the fallback policy.
   * At most 1h (the proto's bound); not below `messageTimeout`; below the gateway's `idleTimeout` and more than
   * {@link REQUEST_RECEIVE_UPLOAD_MARGIN} below its `requestReceiveTimeout` (unless those are off), which keep running
   * while the EPP holds the request: a longer hold would end in Envoy's 504.
   * @default '30s' (the EPP's flow-control TTL, `flowControl.defaultRequestTTL`)
   * @see https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/ext_proc/v3/ext_proc.proto
   */
  readonly maxMessageTimeout?: string;
  /**
   * Use a ring hash on `x-session-id` instead of round robin when the EPP gives no pick, and hash the same header
   * in the decode DestinationRule: sessions stay on one pod even while the EPP is down.
   * @default false
   */
  readonly consistentHashFallback?: boolean;
  /**
   * Ring size of the consistent-hash backup (more entries spread load more evenly); set only with
   * `consistentHashFallback: true`.
   * @default 1024
   * @see https://istio.io/latest/docs/reference/config/networking/destination-rule/#LoadBalancerSettings-ConsistentHashLB-RingHash
   */
  readonly minimumRingSize?: number;
  /**
   * Outlier detection on the gateway's EPP cluster (a DestinationRule for the EPP Service), made only when the
   * EndpointPicker runs more than one replica: a replica whose connection fails (killed, OOM, node lost) is ejected on
   * its first gateway error, so from the second request on the gateway's Envoy sends streams to the other replicas
   * instead of failing open on it until Kubernetes' endpoint update arrives. `false` makes none. Settings given with
   * one replica are refused (nothing would use them); every setting is checked whatever the replica count.
   * @default { consecutiveGatewayErrors: 1, interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 50 } with replicas > 1
   * @see https://istio.io/latest/docs/reference/config/networking/destination-rule/#OutlierDetection
   */
  readonly eppOutlierDetection?: EppOutlierDetection | false;
}

/**
 * A duration Istio takes in a DestinationRule's outlier detection (`interval`, `baseEjectionTime`): at least 1ms, in
 * whole milliseconds. The CRD refuses less (`duration(self) >= duration('1ms')`, networking.istio.io DestinationRule @
 * 1.27.0) and istiod's validation refuses both (pkg/config/validation validateOutlierDetection → agent.ValidateDuration:
 * "duration must be greater than 1ms", "only durations to ms precision are supported").
 */
function checkIstioDuration(scope: string, field: string, value: string): string {
  const ns = durationNanos(checkDuration(scope, field, value));
  if (ns < 1_000_000n || ns % 1_000_000n !== 0n) {
    throw new PropsError(scope, field, 'must be a duration of at least 1ms in whole milliseconds, such as "500ms", "1s" or "1.5s" (Istio refuses shorter or finer ones in a DestinationRule)', value);
  }
  return value;
}

/**
 * The `max_message_timeout` the EnvoyFilter sets and the EPP is told (`--ext-proc-max-message-timeout`), as a
 * duration, or undefined when overrides are off (`'0s'`, or `full-duplex`, where Envoy runs no message timer).
 * `KvAwareRouting` resolves it for the EndpointPicker before the ExtProcRouting exists; both call this.
 */
export function resolveMaxMessageTimeout(props: Pick<ExtProcRoutingProps, 'maxMessageTimeout' | 'messageTimeout'>, requestBodyMode: RequestBodyMode): string | undefined {
  const S = 'ExtProcRouting';
  const value = checkDuration(S, 'maxMessageTimeout', props.maxMessageTimeout ?? '30s');
  // Compared in exact nanoseconds: "0.3s" and "300ms" are equal.
  const ns = durationNanos(value);
  if (requestBodyMode !== 'buffered' || ns === 0n) return undefined;
  const messageTimeout = durationNanos(checkDuration(S, 'messageTimeout', props.messageTimeout ?? '1s'));
  if (ns > durationNanos('1h') || ns < messageTimeout) {
    throw new PropsError(S, 'maxMessageTimeout', `must be "0s" (off) or between messageTimeout (${props.messageTimeout ?? '1s'}) and 1h`, value);
  }
  return value;
}

/**
 * The gateway's own timers must outlast the longest hold the EPP may take (`max_message_timeout`; it answers 250 ms
 * before), or Envoy ends every such wait with its 504 instead of the EPP's pick or 429. Envoy's HCM `request_timeout`
 * keeps running while ext_proc holds the buffered request: it "is disarmed when the last byte of the request is sent
 * upstream (i.e. all decoding filters have processed the request)" (http_connection_manager.proto field 28, Envoy
 * 58fce3a7c8 = go-control-plane 197b96a9c7, Istio 1.27.0's pin). Its `stream_idle_timeout` is reset only by a header,
 * data or trailer event on the stream, and none moves while the EPP holds the request.
 */
function checkGatewayOutlastsHold(gateway: InferenceGateway, maxMessageTimeout: string): void {
  const S = 'ExtProcRouting';
  const hold = durationNanos(maxMessageTimeout);
  const receive = durationNanos(gateway.requestReceiveTimeout);
  if (receive !== 0n && receive <= hold + durationNanos(REQUEST_RECEIVE_UPLOAD_MARGIN)) {
    throw new PropsError(S, 'maxMessageTimeout', `must be more than ${REQUEST_RECEIVE_UPLOAD_MARGIN} (the client's upload) below the gateway's requestReceiveTimeout ("${gateway.requestReceiveTimeout}"), which keeps running while the EPP holds the request and would answer 504 before the EPP's pick or 429; raise gateway.requestReceiveTimeout ("0s" turns it off) or lower extProc.maxMessageTimeout`, maxMessageTimeout);
  }
  const idle = durationNanos(gateway.idleTimeout);
  if (idle !== 0n && idle <= hold) {
    throw new PropsError(S, 'maxMessageTimeout', `must be below the gateway's idleTimeout ("${gateway.idleTimeout}"): no byte moves while the EPP holds the request, so the idle timeout would answer 504 before the EPP's pick or 429; raise gateway.idleTimeout ("0s" turns it off) or lower extProc.maxMessageTimeout`, maxMessageTimeout);
  }
}

/** The outlier-detection settings kvroute exposes for the EPP cluster (Istio's `OutlierDetection` fields). */
export interface EppOutlierDetection {
  /** Consecutive 502/503/504 or connection failures that eject a replica. @default 1 */
  readonly consecutiveGatewayErrors?: number;
  /** How often ejections are reviewed and ejected replicas returned; at least 1ms, in whole milliseconds (Istio's). @default '1s' */
  readonly interval?: string;
  /**
   * Minimum ejection time; Envoy multiplies it by the number of times the replica was ejected. At least 1ms, in whole
   * milliseconds (Istio's).
   * @default '10s'
   */
  readonly baseEjectionTime?: string;
  /**
   * The most replicas ejected at once, in percent. Envoy's default (10) never ejects one of 2-9 replicas.
   * @default 50
   */
  readonly maxEjectionPercent?: number;
}

/**
 * The Istio wiring that makes the EPP's pick take effect, as one EnvoyFilter plus the decode DestinationRule. Its
 * shape follows the Istio version (the README's support matrix):
 * - ext_proc sits just before the router (Istio's own filters, authn and stats, run before it). The EPP must read the
 *   prompt to score prefixes, so the request body goes to it: BUFFERED by default, which keeps `message_timeout` and
 *   an intact fail-open on every version; FULL_DUPLEX_STREAMED on request. FULL_DUPLEX is configured per virtual host
 *   (`ExtProcPerRoute` overrides under a filter that sends nothing), the shape Istio's native integration uses,
 *   because Envoy 1.35.0 (Istio 1.27.0) NACKs a filter-level FULL_DUPLEX body beside `failure_mode_allow`.
 * - Response headers go to the EPP (session tokens, the time of the first byte); response bodies do not, so an EPP
 *   restart never touches a generation already streaming (with FULL_DUPLEX response bodies, Envoy >= 1.36 resets
 *   every streaming response whose EPP dies, and 1.35 drops the chunks the EPP held). Response trailers SEND keeps
 *   the stream open until the exchange ends, so the EPP still sees each request end (see RESPONSE_TRAILER_MODE,
 *   which also gives the measured cost of the alternatives: full-duplex response bodies take 5-8x the EPP's CPU per
 *   response and delay every token; trailers SKIP on Envoy >= 1.37 leaves the in-flight counts at 0).
 * - The decode Service's cluster gets Envoy's `override_host` load-balancing policy reading the pick from dynamic
 *   metadata `envoy.lb` (set only by the EPP, unlike a header a client could forge). A pick that is not an endpoint
 *   of the Service is ignored, and with no pick (the EPP failed open) the fallback policy chooses, so requests are
 *   still served. An ORIGINAL_DST cluster would instead answer 503 whenever the EPP is down.
 * - The EPP learns which endpoint served (the EPP protocol's "Destination Endpoint Served", which GIE's conformance test
 *   GatewayDestinationEndpointServed checks) from Istio 1.30 on: the cluster's `override_host` writes it into `envoy.lb`
 *   (`selected_host_key`, Envoy >= 1.38) and ext_proc forwards that namespace with the response headers. Earlier
 *   Envoys have no such field, so there the EPP is told nothing (the forwarded `envoy.lb` holds its own pick only).
 * - The DestinationRule turns locality load balancing off for the decode host: Envoy rejects `load_balancing_policy`
 *   beside `common_lb_config.locality_weighted_lb_config` (source/common/upstream/upstream_impl.cc
 *   `ClusterInfoImpl::configureLbPolicies` @ v1.35.1), which Istio adds for a DestinationRule `localityLbSetting` with
 *   `distribute` or failover, a Service `trafficDistribution: PreferClose`, or istiod's
 *   `ENABLE_LOCALITY_WEIGHTED_LB_CONFIG` (pilot/pkg/networking/core/cluster_traffic_policy.go
 *   `applyLocalityLoadBalancer` @ 1.27.0), and a MERGE patch cannot remove it. A DestinationRule setting wins over the
 *   Service's and the mesh's; do not add another DestinationRule for this host.
 * - The `/v1/models` route, when present, disables ext_proc: listing models needs no pick.
 */
export class ExtProcRouting extends Construct {
  public readonly envoyFilter: ef.EnvoyFilter;
  public readonly destinationRule: dr.DestinationRule;
  /** The EPP cluster's outlier detection; only with more than one EPP replica. */
  public readonly eppDestinationRule?: dr.DestinationRule;
  public readonly consistentHashFallback: boolean;
  public readonly requestBodyMode: RequestBodyMode;
  /** Envoy's `max_message_timeout`; undefined when the EPP may not ask for more time. */
  public readonly maxMessageTimeout?: string;

  constructor(scope: Construct, id: string, props: ExtProcRoutingProps) {
    super(scope, id);
    const S = 'ExtProcRouting';
    const { gateway, endpointPicker, decodePool, istio } = props;
    this.requestBodyMode = checkOneOf(S, 'requestBodyMode', props.requestBodyMode ?? 'buffered', ['buffered', 'full-duplex'] as const);
    const messageTimeout = toProtoDuration(checkDuration(S, 'messageTimeout', props.messageTimeout ?? '1s'));
    // Envoy's ext_proc proto bounds it (ext_proc.proto `message_timeout` (validate.rules).duration lte 3600s @ v1.35.0),
    // in full-duplex too, where the timer never runs: a longer one fails the filter's config and the gateway refuses
    // the listener update.
    if (durationNanos(props.messageTimeout ?? '1s') > durationNanos('1h')) {
      throw new PropsError(S, 'messageTimeout', 'must be at most 1h (Envoy\'s bound for the ext_proc filter\'s message_timeout; a longer one is refused with the whole listener)', props.messageTimeout);
    }
    const bufferLimit = checkInteger(S, 'requestBodyBufferLimitBytes', props.requestBodyBufferLimitBytes ?? 8 * 1024 * 1024, 1024 * 1024, 1024 * 1024 * 1024);
    const failureModeAllow = props.failureModeAllow ?? true;
    this.consistentHashFallback = props.consistentHashFallback ?? false;
    const ringSize = checkInteger(S, 'minimumRingSize', props.minimumRingSize ?? 1024, 64, 8_388_608);
    if (props.minimumRingSize !== undefined && !this.consistentHashFallback) {
      throw new PropsError(S, 'minimumRingSize', 'applies only with consistentHashFallback: true (the round-robin fallback has no ring)', props.minimumRingSize);
    }
    if (endpointPicker.requestBodyMode !== this.requestBodyMode) {
      throw new PropsError(S, 'requestBodyMode', `must be the mode the EndpointPicker assumes ("${endpointPicker.requestBodyMode}"); pass the same to both`, this.requestBodyMode);
    }
    if (endpointPicker.responseBodyMode !== 'none') {
      throw new PropsError(S, 'endpointPicker', `must assume response bodies "none" (its responseBodyMode), as this filter sends none to it; got "${endpointPicker.responseBodyMode}"`, endpointPicker.responseBodyMode);
    }
    this.maxMessageTimeout = resolveMaxMessageTimeout(props, this.requestBodyMode);
    if (endpointPicker.extProcMaxMessageTimeout !== this.maxMessageTimeout) {
      throw new PropsError(S, 'maxMessageTimeout', `must be what the EndpointPicker is told (extProcMaxMessageTimeout "${endpointPicker.extProcMaxMessageTimeout ?? 'unset'}"); pass the same to both`, this.maxMessageTimeout ?? 'unset');
    }
    if (this.maxMessageTimeout !== undefined) checkGatewayOutlastsHold(gateway, this.maxMessageTimeout);

    const processingMode = this.requestBodyMode === 'buffered'
      ? {
          request_header_mode: 'SEND',
          request_body_mode: 'BUFFERED',
          request_trailer_mode: 'SKIP',
          response_header_mode: 'SEND',
          response_body_mode: 'NONE',
          response_trailer_mode: RESPONSE_TRAILER_MODE,
        }
      : {
          // Sends nothing by itself: the virtual host's ExtProcPerRoute turns on the full-duplex mode below.
          request_header_mode: 'SKIP',
          request_body_mode: 'NONE',
          request_trailer_mode: 'SKIP',
          response_header_mode: 'SKIP',
          response_body_mode: 'NONE',
          response_trailer_mode: 'SKIP',
        };
    const extProcFilter = {
      name: EXT_PROC_FILTER_NAME,
      typed_config: {
        '@type': EXT_PROC_TYPE,
        grpc_service: { envoy_grpc: { cluster_name: endpointPicker.grpcClusterName } },
        failure_mode_allow: failureModeAllow,
        message_timeout: messageTimeout,
        ...(this.maxMessageTimeout ? { max_message_timeout: toProtoDuration(this.maxMessageTimeout) } : {}),
        processing_mode: processingMode,
        // Receives the EPP's pick into `envoy.lb`; forwards `envoy.lb` back with every later message, so the response's
        // carry the endpoint that served where the cluster writes it (below), as Istio's own InferencePool filter does
        // (pilot/pkg/xds/filters/filters.go `InferencePoolExtProc` @ 1.27.0 to 1.30.0).
        metadata_options: {
          receiving_namespaces: { untyped: [LB_METADATA_NAMESPACE] },
          forwarding_namespaces: { untyped: [LB_METADATA_NAMESPACE] },
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
              // The endpoint that served, for the EPP (`IstioSupport.reportsServedEndpoint`: Istio >= 1.30 only).
              ...(istio.reportsServedEndpoint
                ? { selected_host_key: { key: LB_METADATA_NAMESPACE, path: [{ key: DESTINATION_ENDPOINT_SERVED_KEY }] } }
                : {}),
              fallback_policy: { policies: [{ typed_extension_config: fallbackPolicy }] },
            },
          },
        }],
      },
    };

    const listener = { portNumber: gateway.port };
    const configPatches: ef.EnvoyFilterSpecConfigPatches[] = [
      {
        applyTo: ef.EnvoyFilterSpecConfigPatchesApplyTo.HTTP_UNDERSCORE_FILTER,
        match: {
          context: ef.EnvoyFilterSpecConfigPatchesMatchContext.GATEWAY,
          listener: {
            ...listener,
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
    if (this.requestBodyMode === 'buffered') {
      configPatches.push({
        applyTo: ef.EnvoyFilterSpecConfigPatchesApplyTo.LISTENER,
        match: { context: ef.EnvoyFilterSpecConfigPatchesMatchContext.GATEWAY, listener },
        patch: { operation: ef.EnvoyFilterSpecConfigPatchesPatchOperation.MERGE, value: { per_connection_buffer_limit_bytes: bufferLimit } },
      });
    } else {
      // Per-route modes replace the filter's whole processing mode and nothing validates them, so every field is set,
      // trailers SEND included, as the FULL_DUPLEX_STREAMED contract requires (processing_mode.proto).
      configPatches.push({
        applyTo: ef.EnvoyFilterSpecConfigPatchesApplyTo.VIRTUAL_UNDERSCORE_HOST,
        match: {
          context: ef.EnvoyFilterSpecConfigPatchesMatchContext.GATEWAY,
          routeConfiguration: { vhost: { name: gateway.vhostName } },
        },
        patch: {
          operation: ef.EnvoyFilterSpecConfigPatchesPatchOperation.MERGE,
          value: {
            typed_per_filter_config: {
              [EXT_PROC_FILTER_NAME]: {
                '@type': EXT_PROC_PER_ROUTE_TYPE,
                overrides: {
                  failure_mode_allow: failureModeAllow,
                  processing_mode: {
                    request_header_mode: 'SEND',
                    request_body_mode: 'FULL_DUPLEX_STREAMED',
                    request_trailer_mode: 'SEND',
                    response_header_mode: 'SEND',
                    response_body_mode: 'NONE',
                    response_trailer_mode: RESPONSE_TRAILER_MODE,
                  },
                },
              },
            },
          },
        },
      });
    }
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
          value: { typed_per_filter_config: { [EXT_PROC_FILTER_NAME]: { '@type': EXT_PROC_PER_ROUTE_TYPE, disabled: true } } },
        },
      });
    }

    this.envoyFilter = new ef.EnvoyFilter(this, 'EnvoyFilter', {
      metadata: {
        name: `${endpointPicker.name}-ext-proc`,
        namespace: gateway.namespace,
        annotations: {
          'kvroute.dev/istio-version': istio.version,
          'kvroute.dev/envoy-line': istio.envoyLine,
          // The EPP's Service is no route's destination, so istiod running with PILOT_FILTER_GATEWAY_CLUSTER_CONFIG=true
          // (off by default) would send the gateway no `outbound|9002||<EPP>` cluster and every request would fail open;
          // this annotation opts the Service in for gateways this filter applies to (istio/istio
          // pilot/pkg/model/envoyfilter.go convertToEnvoyFilterWrapper and push_context.go extraServicesForProxy,
          // #55038, in 1.27.0 to 1.30.0). Namespaced form: `<namespace>/<hostname>`.
          [REFERENCED_SERVICES_ANNOTATION]: eppServiceReference(endpointPicker),
        },
      },
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
          loadBalancer: {
            ...(this.consistentHashFallback
              ? { consistentHash: { httpHeaderName: SESSION_HEADER, ringHash: { minimumRingSize: ringSize } } }
              : { simple: dr.DestinationRuleSpecTrafficPolicyLoadBalancerSimple.ROUND_UNDERSCORE_ROBIN }),
            // Keeps Istio from adding locality_weighted_lb_config, which Envoy refuses beside override_host.
            localityLbSetting: { enabled: false },
          },
        },
      },
    });

    // Several active EPP replicas (README "Running more than one EPP replica"): the gateway's Envoy balances ext_proc
    // streams over the EPP Service's endpoints (Istio's default LEAST_REQUEST) and never retries a failed stream on
    // another replica (the ext_proc filter's gRPC stream has no retry policy here), so each stream sent to a dead
    // replica fails open. Envoy's connect failures count as gateway errors (503) when local-origin errors are not
    // split (outlier_detection_impl.cc, Envoy 1.35), and Istio maps consecutiveGatewayErrors to
    // consecutive_gateway_failure with enforcement 100 (pilot/pkg/networking/core/cluster_traffic_policy.go
    // applyOutlierDetection, 1.27). consecutive5xxErrors is turned off: the EPP's answers are gRPC OK even when they
    // carry an immediate 429/503 for the client, and a deliberate gRPC error is not a dead replica. Not verified
    // against a running Envoy here (there is none); the local gateway models the same detector (gateway/README.md).
    const detection = props.eppOutlierDetection;
    // Checked whether or not it is used, so a bad value fails synth now rather than on the day the EPP is scaled out.
    const d = detection === false ? undefined : detection ?? {};
    const outlierDetection = d && {
      consecutiveGatewayErrors: checkInteger(S, 'eppOutlierDetection.consecutiveGatewayErrors', d.consecutiveGatewayErrors ?? 1, 1, 100),
      consecutive5XxErrors: 0,
      interval: toProtoDuration(checkIstioDuration(S, 'eppOutlierDetection.interval', d.interval ?? '1s')),
      baseEjectionTime: toProtoDuration(checkIstioDuration(S, 'eppOutlierDetection.baseEjectionTime', d.baseEjectionTime ?? '10s')),
      maxEjectionPercent: checkInteger(S, 'eppOutlierDetection.maxEjectionPercent', d.maxEjectionPercent ?? 50, 1, 100),
    };
    // With one replica there is no other to send streams to, and no DestinationRule is made: settings given for it would
    // be silently dropped.
    if (endpointPicker.replicas === 1 && detection !== undefined && detection !== false) {
      throw new PropsError(S, 'eppOutlierDetection', 'applies only with more than one EPP replica (endpointPicker.replicas > 1): with one there is no other replica to eject it for, and no DestinationRule is made; leave it unset or false', detection);
    }
    if (endpointPicker.replicas > 1 && outlierDetection) {
      this.eppDestinationRule = new dr.DestinationRule(this, 'EppDestinationRule', {
        metadata: { name: endpointPicker.serviceName, namespace: endpointPicker.namespace },
        spec: {
          host: endpointPicker.serviceFqdn,
          trafficPolicy: { outlierDetection },
        },
      });
    }
  }
}
