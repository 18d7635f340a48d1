/**
 * Envoy's ext_proc filter counters, kept the way Envoy keeps them and served as the Istio gateway's Envoy serves them
 * at `/stats/prometheus` (port 15090), so a Prometheus scrapes this gateway with the same queries it runs against a
 * real one (kvroute's PrometheusRule pages on `failure_mode_allowed` and `message_timeouts`).
 *
 * Names and labels, from source:
 * - the filter's counters live under `http.<HCM stat_prefix>.ext_proc.<filter stat_prefix>` (`FilterConfig::generateStats`,
 *   `source/extensions/filters/http/ext_proc/ext_proc.h` @ v1.35.0, @ v1.38.0 L358); kvroute's EnvoyFilter and Istio's
 *   native InferencePool filter (istio/istio `pilot/pkg/xds/filters/filters.go` InferencePoolExtProc @ 1.30.3) set no
 *   filter `stat_prefix`;
 * - Istio names the gateway's HTTP connection manager `outbound_<bind>_<port>;` (`pilot/pkg/networking/core/gateway.go`
 *   MutableGatewayListener.build L97-101 @ 1.27.0 and 1.30.0, `util.DelimitedStatsPrefix` appends
 *   `constants.StatPrefixDelimiter` ";"; the listener is `0.0.0.0_80`, TrafficDirection OUTBOUND, listener.go L1125);
 * - Istio's bootstrap (`tools/packaging/common/envoy_bootstrap.json` @ 1.27.0 L83-86, `use_all_default_tags: false`)
 *   extracts that prefix as the tag `http_conn_manager_prefix` (without the ";"), so the tag-extracted name is
 *   `http.ext_proc.<counter>`;
 * - Envoy's Prometheus output is `envoy_` + the tag-extracted name with every character outside `[a-zA-Z0-9_]` made
 *   `_`, counters typed `counter` with no `_total` suffix and no HELP line, tags as labels
 *   (`source/server/admin/prometheus_stats.cc` @ v1.35.0 sanitizeName L26-31, metricName L358, `# TYPE` L204,
 *   formattedTags L310-316).
 * So: `envoy_http_ext_proc_failure_mode_allowed{http_conn_manager_prefix="outbound_0.0.0.0_80"} 3`.
 *
 * Which event counts where (`ext_proc.cc` @ v1.35.0; the same on later releases unless noted):
 * - `streams_started`: a stream opened without failing inline (openStream L613-620); a stream whose EPP cannot be
 *   reached fails later (connect refused) and still counts, as on Envoy with an endpoint that refuses;
 * - `streams_failed`: a gRPC error on the stream (onGrpcError L1650), fail open or not;
 * - `failure_mode_allowed`: the request went on without the EPP: gRPC error (L1659), message timeout (L1697) or a
 *   spurious answer (L1632) with `failure_mode_allow`; not the EPP's own clean close;
 * - `message_timeouts`: every message timeout (onMessageTimeout L1689), fail open or not;
 * - `streams_closed`: Envoy closed a live stream (closeStream L636), or the EPP closed it, or a gRPC error failed open
 *   through onGrpcClose (L1679);
 * - `stream_msgs_sent` / `stream_msgs_received`: messages either way; a spurious answer or an override of the message
 *   timeout is not "received" (L1619-1645, L1509-1511);
 * - `override_message_timeout_received` / `_ignored`: an override the filter honoured (1 ms <= it <= the configured
 *   `max_message_timeout`, a timer running, the first since the last message either way) or not (onNewTimeout
 *   L1326-1334, ProcessorState::restartMessageTimer); with `max_message_timeout` 0, Envoy's default, every one is ignored;
 * - `spurious_msgs_received`: every answer out of order, fail open or not (onReceiveMessage L1623);
 * - `rejected_header_mutations`: every header change Envoy's rules refuse, and every invalid or over-limit mutation
 *   before its 500 (`mutation_utils.cc` L70-196); not what only this HTTP/1.1 proxy refuses (`headers.ts`);
 * - `clear_route_cache_ignored`: `clear_route_cache` without a header mutation, on headers and body answers alike
 *   (`processor_state.cc` L648-655, called from handleHeadersResponse and handleBodyResponse);
 * - `immediate_responses_sent` (>= 1.37): every sendImmediateResponse, the EPP's and ext_proc's own error replies
 *   (`ext_proc.cc` @ v1.37.0 L2079); `server_half_closed` (>= 1.37): onGrpcError while open and onGrpcCloseWithStatus
 *   (L1966, L1996: a gRPC error that fails open counts twice, as there).
 * Counters whose cause the gateway never has (an upstream filter, an HTTP ext_proc service, a route-cache action
 * other than DEFAULT) are served as 0, as Envoy serves them.
 */
import type { EnvoySemantics, ExtProcCounter } from './envoy-semantics';

/** Envoy's Prometheus stats path (the admin endpoint Istio exposes on 15090). */
export const ENVOY_STATS_PATH = '/stats/prometheus';
/** The tag Istio's bootstrap extracts the HTTP connection manager's stat prefix into. */
export const HCM_PREFIX_TAG = 'http_conn_manager_prefix';
/** The stat prefix Istio gives the HTTP connection manager of a Gateway listener on port 80 (IPv4). */
export const DEFAULT_HCM_STAT_PREFIX = 'outbound_0.0.0.0_80';

/** `envoy_http_ext_proc_<counter>`: the series name of an ext_proc counter in Envoy's Prometheus output. */
export function extProcSeriesName(counter: ExtProcCounter): string {
  return `envoy_http_ext_proc_${counter}`;
}

export class EnvoyExtProcStats {
  private readonly counts = new Map<ExtProcCounter, number>();

  inc(counter: ExtProcCounter, by = 1): void {
    this.counts.set(counter, (this.counts.get(counter) ?? 0) + by);
  }

  get(counter: ExtProcCounter): number {
    return this.counts.get(counter) ?? 0;
  }
}

/** The counters the release has, with values: those counted here plus the ones the gateway's other parts own. */
export function extProcCounterValues(semantics: EnvoySemantics, counted: EnvoyExtProcStats,
  owned: Partial<Record<ExtProcCounter, number>>): Record<string, number> {
  return Object.fromEntries(semantics.extProcCounters.map((c) => [c, owned[c] ?? counted.get(c)]));
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Envoy's Prometheus text for the counters: one `# TYPE … counter` and one sample each, sorted by name. */
export function envoyPrometheusText(values: Record<string, number>, hcmStatPrefix: string): string {
  const labels = `{${HCM_PREFIX_TAG}="${escapeLabelValue(hcmStatPrefix)}"}`;
  return Object.keys(values).sort().map((c) => {
    const name = extProcSeriesName(c as ExtProcCounter);
    return `# TYPE ${name} counter\n${name}${labels} ${values[c]}\n`;
  }).join('');
}
