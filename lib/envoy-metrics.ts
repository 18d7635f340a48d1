/**
 * The gateway Envoy's ext_proc counters as Prometheus sees them, and how the Istio gateway is made to export them.
 *
 * - Envoy's ext_proc filter counts under `http.<HCM stat_prefix>.ext_proc.<filter stat_prefix>` (`ALL_EXT_PROC_FILTER_STATS`
 *   and `FilterConfig::generateStats`, envoyproxy/envoy source/extensions/filters/http/ext_proc/ext_proc.h @ v1.35.0
 *   84305a6cb6 L37-53 … v1.38.0 f1dd21b16c L38-55, L358). Neither kvroute's EnvoyFilter nor Istio's native InferencePool
 *   filter (istio/istio pilot/pkg/xds/filters/filters.go `InferencePoolExtProc` @ 1.30.3) sets a filter `stat_prefix`.
 * - Istio names a Gateway's HTTP connection manager `outbound_0.0.0.0_<port>;` (pilot/pkg/networking/core/gateway.go
 *   L97-101 @ 1.27.0 … 1.30.0) and its bootstrap turns that into the tag `http_conn_manager_prefix`
 *   (tools/packaging/common/envoy_bootstrap.json @ 1.27.0 L83-86); Envoy's Prometheus output prefixes `envoy_`, turns
 *   `.` into `_` and adds no `_total` (source/server/admin/prometheus_stats.cc @ v1.35.0 L26-31, L358). Hence
 *   `envoy_http_ext_proc_failure_mode_allowed{http_conn_manager_prefix="outbound_0.0.0.0_80"}`; the gateway package
 *   serves the same names (`gateway/src/envoy-stats.ts`, checked against these by test/prometheus-rules.test.ts).
 * - Istio creates Envoy stats only for names on its inclusion list (pkg/bootstrap/config.go
 *   `requiredEnvoyStatsMatcherInclusionPrefixes` @ 1.27.0 L58: cluster_manager, listener_manager, server,
 *   cluster.xds-grpc, wasm), so the ext_proc counters exist only when the proxy config's `proxyStatsMatcher` asks for
 *   them (getStatsOptions L240-324). The gateway's istio-agent reads `proxy.istio.io/config` from its pod's annotations
 *   (pilot/cmd/pilot-agent/config/config.go ConstructProxyConfig L38-54), and Istio's gateway deployment controller
 *   copies a Gateway's `spec.infrastructure.annotations` onto the pod template (kube-gateway.yaml template annotations,
 *   deploymentcontroller.go extractInfrastructureAnnotations @ 1.27.0 L592-627; the same in 1.28, 1.29 and 1.30).
 */

/** The counters kvroute's rules read (Envoy's names, identical on 1.35 through 1.38). */
export const ENVOY_EXT_PROC_METRICS = {
  /** Streams opened to the EPP (one per request through the filter, unless opening failed at once). */
  streamsStarted: 'envoy_http_ext_proc_streams_started',
  /** gRPC errors on a stream (EPP unreachable, reset, …), fail open or not. */
  streamsFailed: 'envoy_http_ext_proc_streams_failed',
  /** Requests that went on without the EPP under `failure_mode_allow`: gRPC error, message timeout or spurious answer. */
  failureModeAllowed: 'envoy_http_ext_proc_failure_mode_allowed',
  /** The EPP did not answer within `message_timeout`, fail open or not. */
  messageTimeouts: 'envoy_http_ext_proc_message_timeouts',
} as const;

/**
 * `proxyStatsMatcher.inclusionRegexps` entry that makes Istio's gateway Envoy create the ext_proc counters. Envoy
 * matches the whole stat name, `http.outbound_0.0.0.0_80;.ext_proc.streams_started` for instance.
 */
export const EXT_PROC_STATS_INCLUSION_REGEX = 'http\\..*\\.ext_proc\\..*';

/**
 * The gateway pod's Envoy Prometheus port (container port 15090) and path, as Istio's gateway template declares it
 * (manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml @ 1.27.0 L112-114, the same through 1.30).
 */
export const ENVOY_PROM_PORT_NAME = 'http-envoy-prom';
export const ENVOY_PROM_PATH = '/stats/prometheus';
