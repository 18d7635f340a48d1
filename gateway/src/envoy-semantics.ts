/**
 * What each Envoy release does with kvroute's ext_proc filter, as data: the gateway is started with one of these
 * (`--envoy-semantics`) and its failure policy, message timer and stream lifetime follow it. Every fact was read from
 * envoyproxy/envoy source at the tag named (commits: v1.35.0 84305a6cb6, v1.35.1 6e9539d036, v1.36.0 63ee0dc79d,
 * v1.37.0 6d9bb7d9a8, v1.38.0 f1dd21b16c); the Istio pins are istio/istio `istio.deps` → istio/proxy `WORKSPACE`.
 *
 * Facts that hold on every version are not in the table, they are in the code that uses them:
 * - the message timer is never started for a FULL_DUPLEX_STREAMED direction, headers message included
 *   (`source/extensions/filters/http/ext_proc/processor_state.cc` ProcessorState::onStartProcessorCall @ v1.35.0 L21-38,
 *   @ v1.38.0 L26-39: "Skip starting timer For FULL_DUPLEX_STREAMED body mode");
 * - a filter-level FULL_DUPLEX_STREAMED body mode requires the matching trailer mode SEND
 *   (`source/extensions/filters/http/ext_proc/config.cc` verifyProcessingModeConfig @ v1.35.0 L35-51, @ v1.38.0
 *   L36-52); per-route overrides are never validated (createRouteSpecificFilterConfigTyped @ v1.35.0 L123-128);
 * - FULL_DUPLEX_STREAMED drains every chunk once it is copied to the processor, so a fail-open after that goes on
 *   without those bytes (`ext_proc.cc` handleDataStreamedModeBase @ v1.35.0 L788-817, "just drain the data" L800-805;
 *   ProcessorState::clearAsyncState re-injects only the chunk queue, `processor_state.cc` @ v1.35.0 L539-549).
 */

export const ENVOY_SEMANTICS_VERSIONS = ['1.35.0', '1.35', '1.36', '1.37', '1.38'] as const;
export type EnvoySemanticsVersion = (typeof ENVOY_SEMANTICS_VERSIONS)[number];
/** Accepted as a name for the newest version the table describes. */
export const NEWEST = 'newest';

/**
 * The default: the Envoy of Istio 1.27.0 (01cfa86465, release/v1.35 at 1.35.1-dev, before the revert of #39740), which
 * the demo cluster profile targets.
 */
export const DEFAULT_ENVOY_SEMANTICS: EnvoySemanticsVersion = '1.35.0';

export interface EnvoySemantics {
  readonly version: EnvoySemanticsVersion;
  /** The Envoy releases this stands for. */
  readonly envoy: string;
  /** The Istio releases whose proxy pins such an Envoy. */
  readonly istio: string;
  /**
   * A filter-level FULL_DUPLEX_STREAMED body mode (either direction) beside `failure_mode_allow: true` is refused
   * (the listener is NACKed). `config.cc` verifyProcessingModeConfig @ v1.35.0 L53-62, added by #39740 (4861b2057a),
   * reverted on release/v1.35 by #40757 (e9741858f6) before v1.35.1; not in v1.36.0 (63ee0dc79d L15-56).
   */
  readonly rejectsFullDuplexWithFailOpen: boolean;
  /**
   * What `failure_mode_allow: true` does once a FULL_DUPLEX_STREAMED direction has received a body chunk:
   * - `lossy-fail-open` (1.35): onGrpcError → onGrpcClose → clearAsyncState: the request goes on, without the chunks
   *   already drained (`ext_proc.cc` @ v1.35.0 onGrpcError L1648-1673, onGrpcClose L1675-1684; the spurious-message
   *   path reads the filter-level `failure_mode_allow` the same way, L1626);
   * - `local-reply` (>= 1.36, #41276 3efa4cfa48): `Filter::failureModeAllow()` is false once a FULL_DUPLEX_STREAMED
   *   direction has `bodyReceived()` (`ext_proc.cc` @ v1.36.0 L1008-1016, set on the first onData L924;
   *   `ProcessorState::canFailOpen` @ v1.37.0 `processor_state.cc` L703-705), so onGrpcError (L1687-1713), the message
   *   timeout (L1728-) and spurious messages (L1666) answer `status_on_error` (500), or reset the client's stream when
   *   the response has started (`source/common/http/filter_manager.cc` DownstreamFilterManager::sendLocalReply
   *   @ v1.35.0 L1048-1057).
   */
  readonly afterFullDuplexBody: 'lossy-fail-open' | 'local-reply';
  /**
   * The ext_proc stream is closed (END_STREAM + RST) as soon as no more answers are needed, instead of when the HTTP
   * exchange ends (`Filter::onDestroy`, `ext_proc.cc` @ v1.35.0 L667-701, @ v1.36.0 L696-731): #41425 (d79d44d935),
   * runtime guard `ext_proc_stream_close_optimization` (default on), `Filter::closeGrpcStreamIfLastRespReceived`
   * @ v1.37.0 L1721-1772 and `encodeHeaders` L1373-1377; the rules are in `stream-lifetime.ts`.
   */
  readonly closesStreamAfterLastResponse: boolean;
  /**
   * The ext_proc filter's counters, in the order of `ALL_EXT_PROC_FILTER_STATS`
   * (`source/extensions/filters/http/ext_proc/ext_proc.h` @ v1.35.0 L37-53, @ v1.36.0 L39-54, @ v1.37.0 and v1.38.0
   * L38-55): 1.36 dropped `send_immediate_resp_upstream_ignored`, 1.37 added `immediate_responses_sent` and
   * `server_half_closed`. `envoy-stats.ts` serves them as Envoy's Prometheus endpoint does.
   */
  readonly extProcCounters: readonly ExtProcCounter[];
  /**
   * The cluster's `override_host` policy writes the endpoint it chose into the request's dynamic metadata
   * (`selected_host_key: envoy.lb / x-gateway-destination-endpoint-served`), which ext_proc's `forwarding_namespaces`
   * then sends to the EPP: the field exists from v1.38.0 (envoyproxy/envoy a7589bb142, 2026-03-04; go-control-plane
   * `envoy/v1.38.0` has it, `envoy/v1.37.0` does not), and kvroute's EnvoyFilter sets it from Istio 1.30
   * (`lib/istio.ts` reportsServedEndpoint), as Istio 1.30 does on its own InferencePool clusters.
   */
  readonly writesSelectedHostKey: boolean;
}

/** Every counter any release's ext_proc filter has (see `EnvoySemantics.extProcCounters`). */
export type ExtProcCounter =
  | 'streams_started' | 'stream_msgs_sent' | 'stream_msgs_received' | 'spurious_msgs_received' | 'streams_closed'
  | 'streams_failed' | 'failure_mode_allowed' | 'message_timeouts' | 'rejected_header_mutations'
  | 'override_message_timeout_received' | 'override_message_timeout_ignored' | 'clear_route_cache_ignored'
  | 'clear_route_cache_disabled' | 'clear_route_cache_upstream_ignored' | 'send_immediate_resp_upstream_ignored'
  | 'http_not_ok_resp_received' | 'immediate_responses_sent' | 'server_half_closed';

const COUNTERS_1_35: readonly ExtProcCounter[] = [
  'streams_started', 'stream_msgs_sent', 'stream_msgs_received', 'spurious_msgs_received', 'streams_closed',
  'streams_failed', 'failure_mode_allowed', 'message_timeouts', 'rejected_header_mutations',
  'override_message_timeout_received', 'override_message_timeout_ignored', 'clear_route_cache_ignored',
  'clear_route_cache_disabled', 'clear_route_cache_upstream_ignored', 'send_immediate_resp_upstream_ignored',
  'http_not_ok_resp_received',
];
const COUNTERS_1_36 = COUNTERS_1_35.filter((c) => c !== 'send_immediate_resp_upstream_ignored');
const COUNTERS_1_37: readonly ExtProcCounter[] = [...COUNTERS_1_36, 'immediate_responses_sent', 'server_half_closed'];

const TABLE: Readonly<Record<EnvoySemanticsVersion, EnvoySemantics>> = {
  '1.35.0': {
    version: '1.35.0',
    envoy: 'v1.35.0 and release/v1.35 before e9741858f6 (1.35.1-dev)',
    istio: '1.27.0',
    rejectsFullDuplexWithFailOpen: true,
    afterFullDuplexBody: 'lossy-fail-open',
    closesStreamAfterLastResponse: false,
    extProcCounters: COUNTERS_1_35,
    writesSelectedHostKey: false,
  },
  '1.35': {
    version: '1.35',
    envoy: 'v1.35.1 and later 1.35.x',
    istio: '1.27.1 - 1.27.x',
    rejectsFullDuplexWithFailOpen: false,
    afterFullDuplexBody: 'lossy-fail-open',
    closesStreamAfterLastResponse: false,
    extProcCounters: COUNTERS_1_35,
    writesSelectedHostKey: false,
  },
  '1.36': {
    version: '1.36',
    envoy: 'v1.36.x',
    istio: '1.28.x',
    rejectsFullDuplexWithFailOpen: false,
    afterFullDuplexBody: 'local-reply',
    closesStreamAfterLastResponse: false,
    extProcCounters: COUNTERS_1_36,
    writesSelectedHostKey: false,
  },
  '1.37': {
    version: '1.37',
    envoy: 'v1.37.x',
    istio: '1.29.x',
    rejectsFullDuplexWithFailOpen: false,
    afterFullDuplexBody: 'local-reply',
    closesStreamAfterLastResponse: true,
    extProcCounters: COUNTERS_1_37,
    writesSelectedHostKey: false,
  },
  '1.38': {
    version: '1.38',
    envoy: 'v1.38.x (newest release read)',
    istio: '1.30.x',
    rejectsFullDuplexWithFailOpen: false,
    afterFullDuplexBody: 'local-reply',
    closesStreamAfterLastResponse: true,
    extProcCounters: COUNTERS_1_37,
    writesSelectedHostKey: true,
  },
};

/** The semantics of `version` (`newest` = the newest in the table); a string naming the choices otherwise. */
export function envoySemantics(version: string): EnvoySemantics | string {
  const v = version === NEWEST ? ENVOY_SEMANTICS_VERSIONS[ENVOY_SEMANTICS_VERSIONS.length - 1] : version;
  const found = (TABLE as Record<string, EnvoySemantics | undefined>)[v];
  return found ?? `must be one of ${[...ENVOY_SEMANTICS_VERSIONS, NEWEST].join(', ')} (got ${JSON.stringify(version)})`;
}

/** The ext_proc `processing_mode` and `failure_mode_allow` as the filter would be configured. */
export interface ExtProcFilterConfig {
  readonly requestBodyMode: 'FULL_DUPLEX_STREAMED' | 'BUFFERED';
  readonly requestTrailerMode: 'SEND' | 'SKIP';
  readonly responseBodyMode: 'FULL_DUPLEX_STREAMED' | 'NONE';
  readonly responseTrailerMode: 'SEND' | 'SKIP';
  readonly failureModeAllow: boolean;
  /**
   * `filter`: the processing mode is the filter's own (validated); `vhost`: it is an `ExtProcPerRoute` override on
   * the virtual host, under a filter that sends nothing, which Envoy never validates.
   */
  readonly scope: 'filter' | 'vhost';
}

export interface ConfigRejection {
  /** The option the rejection is about. */
  readonly option: 'processingMode' | 'responseBodyMode';
  /** Envoy's own error text. */
  readonly message: string;
}

/**
 * Envoy's `verifyProcessingModeConfig` for this release, in its order (`config.cc` @ v1.35.0 L35-62): the reason the
 * listener would be NACKed, or null when Envoy accepts the filter.
 */
export function verifyProcessingModeConfig(c: ExtProcFilterConfig, semantics: EnvoySemantics): ConfigRejection | null {
  if (c.scope === 'vhost') return null;
  const fdRequest = c.requestBodyMode === 'FULL_DUPLEX_STREAMED';
  const fdResponse = c.responseBodyMode === 'FULL_DUPLEX_STREAMED';
  if (fdRequest && c.requestTrailerMode !== 'SEND') {
    return {
      option: 'processingMode',
      message: 'If the ext_proc filter has the request_body_mode set to FULL_DUPLEX_STREAMED, then the request_trailer_mode has to be set to SEND',
    };
  }
  if (fdResponse && c.responseTrailerMode !== 'SEND') {
    return {
      option: 'responseBodyMode',
      message: 'If the ext_proc filter has the response_body_mode set to FULL_DUPLEX_STREAMED, then the response_trailer_mode has to be set to SEND',
    };
  }
  if (semantics.rejectsFullDuplexWithFailOpen && (fdRequest || fdResponse) && c.failureModeAllow) {
    return {
      option: fdRequest ? 'processingMode' : 'responseBodyMode',
      message: 'If the ext_proc filter has either the request_body_mode or the response_body_mode set to FULL_DUPLEX_STREAMED, then the failure_mode_allow has to be left as false',
    };
  }
  return null;
}
