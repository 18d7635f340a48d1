/**
 * The EPP's Prometheus metrics, as facts the manifests need too (PrometheusRule expressions, dashboards). They live
 * here rather than in `epp/src/metrics.ts` so the cdk8s app can import them without prom-client; `metrics.ts`
 * defines the actual collectors from this table.
 *
 * Names, types, labels and buckets of the `inference_*` metrics match GIE's `pkg/epp/metrics/metrics.go` and
 * `pkg/epp/metrics/collectors/inference_pool.go` at v1.5.0 (commit df9f8909fe06fe2dfd4a6fc0bd0c01a0acabf849, the GIE
 * llm-d-inference-scheduler v0.8.0 builds on), so upstream dashboards and alerts work against kvroute. v1.1.0 renamed
 * v0.5.1-v1.0.x's `inference_model_*` family to `inference_objective_*` (exported under the old names too:
 * `GIE_V1_0_REQUEST_METRICS`), and later releases merged the scheduler and request-control plugin histograms into
 * `inference_extension_plugin_duration_seconds`. Families upstream has and kvroute has no data for
 * (TTFT/TPOT predictions, SLO violations, GIE's flow-control layer) are not exported. The
 * `kvroute_epp_*` metrics are kvroute's own.
 */

export type EppMetricType = 'counter' | 'gauge' | 'histogram';

export interface EppMetricDefinition {
  readonly name: string;
  readonly type: EppMetricType;
  readonly labels: readonly string[];
  readonly help: string;
  /** Histograms only: upper bounds of the buckets. */
  readonly buckets?: readonly number[];
}

/** The prefix indexer's hit ratio and hit length buckets (GIE v1.5.0 metrics.go; llm-d's twins use the same). */
const PREFIX_HIT_RATIO_BUCKETS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
const PREFIX_HIT_BYTES_BUCKETS = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
const SCHEDULING_LATENCY_BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];

/** GIE's bounds for the input and cached-token histograms (metrics.go @ v1.5.0 writes the same literal for both). */
const TOKEN_COUNT_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072, 262144, 524288, 1048576];

/** GIE v1.5.0's request-family buckets (`pkg/epp/metrics/metrics.go`), which llm-d's `llm_d_epp_request_*` twins share. */
const REQUEST_DURATION_BUCKETS = [
  0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180,
  240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
];
const REQUEST_SIZE_BUCKETS = [
  64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152,
  4194304, 8388608, 16777216, 33554432, 67108864, 134217728, 268435456, 536870912, 1073741824,
];
// 32778, not 32768: upstream's literal (metrics.go @ v1.5.0), kept so bucket bounds match series for series.
const RESPONSE_SIZE_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536];
const OUTPUT_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];
const NTPOT_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];

/** llm-d's per-request labels: GIE's model pair, then the request's flow-control fairness id and priority. */
const LLMD_REQUEST_LABELS = ['model_name', 'target_model_name', 'fairness_id', 'priority'] as const;

export const EPP_METRICS = {
  requestTotal: {
    name: 'inference_objective_request_total',
    type: 'counter',
    labels: ['model_name', 'target_model_name', 'priority'],
    help: '[ALPHA] Counter of inference objective requests broken out for each model and target model.',
  },
  requestErrorTotal: {
    name: 'inference_objective_request_error_total',
    type: 'counter',
    labels: ['model_name', 'target_model_name', 'error_code'],
    help: '[ALPHA] Counter of inference objective requests errors broken out for each model and target model.',
  },
  requestDuration: {
    name: 'inference_objective_request_duration_seconds',
    type: 'histogram',
    labels: ['model_name', 'target_model_name'],
    help: '[ALPHA] Inference objective response latency distribution in seconds for each model and target model.',
    buckets: REQUEST_DURATION_BUCKETS,
  },
  requestSizes: {
    name: 'inference_objective_request_sizes',
    type: 'histogram',
    labels: ['model_name', 'target_model_name'],
    help: '[ALPHA] Inference objective requests size distribution in bytes for each model and target model.',
    buckets: REQUEST_SIZE_BUCKETS,
  },
  responseSizes: {
    name: 'inference_objective_response_sizes',
    type: 'histogram',
    labels: ['model_name', 'target_model_name'],
    help: '[ALPHA] Inference objective responses size distribution in bytes for each model and target model.',
    buckets: RESPONSE_SIZE_BUCKETS,
  },
  inputTokens: {
    name: 'inference_objective_input_tokens',
    type: 'histogram',
    labels: ['model_name', 'target_model_name'],
    help: '[ALPHA] Inference objective input token count distribution for requests in each model.',
    buckets: TOKEN_COUNT_BUCKETS,
  },
  outputTokens: {
    name: 'inference_objective_output_tokens',
    type: 'histogram',
    labels: ['model_name', 'target_model_name'],
    help: '[ALPHA] Inference objective output token count distribution for requests in each model.',
    buckets: OUTPUT_TOKEN_BUCKETS,
  },
  promptCachedTokens: {
    name: 'inference_objective_prompt_cached_tokens',
    type: 'histogram',
    labels: ['model_name', 'target_model_name'],
    help: '[ALPHA] Inference objective prompt cached token count distribution for requests in each model.',
    buckets: TOKEN_COUNT_BUCKETS,
  },
  normalizedTimePerOutputToken: {
    name: 'inference_objective_normalized_time_per_output_token_seconds',
    type: 'histogram',
    labels: ['model_name', 'target_model_name'],
    help: '[ALPHA] Inference objective latency divided by number of output tokens in seconds for each model and target model.',
    buckets: NTPOT_BUCKETS,
  },
  runningRequests: {
    name: 'inference_objective_running_requests',
    type: 'gauge',
    labels: ['model_name'],
    help: '[ALPHA] Inference objective number of running requests in each model.',
  },
  // llm-d's per-request twins (llm-d-router v0.10.0 `pkg/epp/metrics/llm_d_router_metrics.go`): GIE's families with
  // the request's flow-control `fairness_id` (`default-flow` without one) and `priority`, recorded beside them as
  // llm-d's recorders write both (`metrics.go` RecordRequestCounter and the rest). Same buckets as GIE's.
  llmdRequestTotal: {
    name: 'llm_d_epp_request_total',
    type: 'counter',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] Total number of processed requests.',
  },
  llmdRequestErrorTotal: {
    name: 'llm_d_epp_request_error_total',
    type: 'counter',
    labels: ['model_name', 'target_model_name', 'fairness_id', 'priority', 'error_code'],
    help: '[ALPHA] Total number of request errors.',
  },
  llmdRequestDuration: {
    name: 'llm_d_epp_request_duration_seconds',
    type: 'histogram',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] End-to-end request latency distribution in seconds.',
    buckets: REQUEST_DURATION_BUCKETS,
  },
  llmdRequestSizes: {
    name: 'llm_d_epp_request_size_bytes',
    type: 'histogram',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] Incoming request body size distribution in bytes.',
    buckets: REQUEST_SIZE_BUCKETS,
  },
  llmdResponseSizes: {
    name: 'llm_d_epp_response_size_bytes',
    type: 'histogram',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] Outgoing response body size distribution in bytes.',
    buckets: RESPONSE_SIZE_BUCKETS,
  },
  llmdInputTokens: {
    name: 'llm_d_epp_request_input_tokens',
    type: 'histogram',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] Input token count distribution per request.',
    buckets: TOKEN_COUNT_BUCKETS,
  },
  llmdOutputTokens: {
    name: 'llm_d_epp_request_output_tokens',
    type: 'histogram',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] Output token count distribution per request.',
    buckets: OUTPUT_TOKEN_BUCKETS,
  },
  llmdCachedTokens: {
    name: 'llm_d_epp_request_cached_tokens',
    type: 'histogram',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] Distribution of prompt tokens read from cache per request, as reported by the model server in the response.',
    buckets: TOKEN_COUNT_BUCKETS,
  },
  llmdRunningRequests: {
    name: 'llm_d_epp_request_running',
    type: 'gauge',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] Current number of active running requests.',
  },
  llmdNormalizedTimePerOutputToken: {
    name: 'llm_d_epp_request_ntpot_seconds',
    type: 'histogram',
    labels: LLMD_REQUEST_LABELS,
    help: '[ALPHA] Normalized time per output token in seconds (end-to-end latency divided by output token count).',
    buckets: NTPOT_BUCKETS,
  },
  // llm-d-router v0.10.0 pkg/epp/metrics/llm_d_router_metrics.go llmdRequestProcessingLatency: the EPP's own overhead
  // per request, from its headers until its body is handled (routed, refused, or after its wait in flow control), once
  // per request (handlers/server.go recordRequestProcessing).
  llmdRequestProcessingDuration: {
    name: 'llm_d_epp_request_processing_duration_seconds',
    type: 'histogram',
    labels: [],
    help: '[ALPHA] EPP request processing latency distribution in seconds, from request receipt until the request body has been handled, including admission control.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  },
  // llm_d_router_metrics.go llmdResponseProcessingLatency: the EPP's time in the response phase, once per request that
  // reached it (handlers/server.go). kvroute's is the sum of its handlers' time for the response headers and each body
  // chunk, streamed or not: it never holds a non-streamed body back, where upstream counts from its headers to its end.
  llmdResponseProcessingDuration: {
    name: 'llm_d_epp_response_processing_duration_seconds',
    type: 'histogram',
    labels: [],
    help: '[ALPHA] EPP response processing latency distribution in seconds: the sum of per-chunk handler time for a streamed response, or the interval from response headers to completion for a non-streaming response.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  },
  poolAverageKvCacheUtilization: {
    name: 'inference_pool_average_kv_cache_utilization',
    type: 'gauge',
    labels: ['name'],
    help: '[ALPHA] The average kv cache utilization for an inference server pool.',
  },
  poolAverageQueueSize: {
    name: 'inference_pool_average_queue_size',
    type: 'gauge',
    labels: ['name'],
    help: '[ALPHA] The average number of requests pending in the model server queue.',
  },
  poolAverageRunningRequests: {
    name: 'inference_pool_average_running_requests',
    type: 'gauge',
    labels: ['name'],
    help: '[ALPHA] The average number of running requests across model servers in the pool.',
  },
  poolReadyPods: {
    name: 'inference_pool_ready_pods',
    type: 'gauge',
    labels: ['name'],
    help: '[ALPHA] The number of ready pods in the inference server pool.',
  },
  // llm-d's router added these three beside its averages (v0.10.0 `pkg/epp/metrics/llm_d_router_metrics.go`); their
  // averages, ready count and the other `llm_d_epp_*` names are LLMD_TWIN_METRICS, derived at scrape time.
  poolStdDevKvCacheUtilization: {
    name: 'llm_d_epp_std_dev_kv_cache_utilization',
    type: 'gauge',
    labels: ['name'],
    help: '[ALPHA] The standard deviation kv cache utilization for an inference server pool.',
  },
  poolStdDevQueueSize: {
    name: 'llm_d_epp_std_dev_queue_size',
    type: 'gauge',
    labels: ['name'],
    help: '[ALPHA] The standard deviation number of requests pending in the model server queue.',
  },
  poolStdDevRunningRequests: {
    name: 'llm_d_epp_std_dev_running_requests',
    type: 'gauge',
    labels: ['name'],
    help: '[ALPHA] The standard deviation number of running requests across model servers in the pool.',
  },
  poolPerPodQueueSize: {
    name: 'inference_pool_per_pod_queue_size',
    type: 'gauge',
    labels: ['name', 'model_server_pod'],
    help: '[ALPHA] The total number of requests pending in the model server queue for each underlying pod.',
  },
  schedulerE2eDuration: {
    name: 'inference_extension_scheduler_e2e_duration_seconds',
    type: 'histogram',
    labels: [],
    help: '[ALPHA] End-to-end scheduling latency distribution in seconds.',
    buckets: SCHEDULING_LATENCY_BUCKETS,
  },
  schedulerAttempts: {
    name: 'inference_extension_scheduler_attempts_total',
    type: 'counter',
    // status: success or failure; the pod's name, namespace and port on success, empty on failure (GIE v1.5.0
    // metrics.go RecordSchedulerAttempt).
    labels: ['status', 'target_model_name', 'pod_name', 'namespace', 'port'],
    help: '[ALPHA] Total number of scheduling attempts.',
  },
  pluginDuration: {
    name: 'inference_extension_plugin_duration_seconds',
    type: 'histogram',
    // extension_point as GIE v1.5.0 names them (ProfilePicker, Filter, Scorer, Picker, ProcessProfilesResults,
    // PreRequest, ResponseReceived; PostCycle is kvroute's own), plugin_type the config type, plugin_name its name.
    labels: ['extension_point', 'plugin_type', 'plugin_name'],
    help: '[ALPHA] Plugin processing latency distribution in seconds for each extension point, plugin type and plugin name.',
    buckets: SCHEDULING_LATENCY_BUCKETS,
  },
  prefixIndexerSize: {
    name: 'inference_extension_prefix_indexer_size',
    type: 'gauge',
    labels: [],
    help: '[ALPHA] Size of the prefix indexer.',
  },
  prefixIndexerHitRatio: {
    name: 'inference_extension_prefix_indexer_hit_ratio',
    type: 'histogram',
    labels: [],
    help: '[ALPHA] Ratio of prefix length matched to total prefix length in the cache lookup.',
    buckets: PREFIX_HIT_RATIO_BUCKETS,
  },
  prefixIndexerHitBytes: {
    name: 'inference_extension_prefix_indexer_hit_bytes',
    type: 'histogram',
    labels: [],
    // Upstream's help (GIE v1.5.0 pkg/epp/metrics/metrics.go prefixCacheHitLength). kvroute's approximate index hashes
    // characters and observes characters; for ASCII prompts characters and bytes coincide.
    help: '[ALPHA] Length of the prefix match in number of bytes in the cache lookup.',
    buckets: PREFIX_HIT_BYTES_BUCKETS,
  },
  // llm-d-router v0.10.0's own prefix-indexer families (dataproducer/approximateprefix/metrics.go), written beside GIE's
  // by the plugin that indexes (there the approximate producer; here the approximate prefix scorer, which does that
  // work), labelled with its name and type.
  llmdPrefixIndexerSize: {
    name: 'llm_d_epp_prefix_indexer_size',
    type: 'gauge',
    labels: ['plugin_name', 'plugin_type'],
    help: '[ALPHA] Size of the prefix indexer.',
  },
  llmdPrefixIndexerHitRatio: {
    name: 'llm_d_epp_prefix_indexer_hit_ratio',
    type: 'histogram',
    labels: ['plugin_name', 'plugin_type'],
    help: '[ALPHA] Ratio of prefix length matched to total prefix length in the cache lookup.',
    buckets: PREFIX_HIT_RATIO_BUCKETS,
  },
  llmdPrefixIndexerHitBytes: {
    name: 'llm_d_epp_prefix_indexer_hit_bytes',
    type: 'histogram',
    labels: ['plugin_name', 'plugin_type'],
    help: '[ALPHA] Length of the prefix match in number of bytes in the cache lookup.',
    buckets: PREFIX_HIT_BYTES_BUCKETS,
  },
  modelRewriteDecisions: {
    name: 'inference_extension_model_rewrite_decisions_total',
    type: 'counter',
    // Once per request an InferenceModelRewrite rule applies to, when its body is read (GIE v1.5.0 director.go
    // applyWeightedModelRewrite): the resource, the body's model (bounded as the request families bound it) and the
    // drawn target.
    labels: ['model_rewrite_name', 'model_name', 'target_model'],
    help: '[ALPHA] Total number of inference model rewrite decisions.',
  },
  info: {
    name: 'inference_extension_info',
    type: 'gauge',
    labels: ['commit', 'build_ref'],
    help: '[ALPHA] General information of the current build of Inference Extension.',
  },
  picks: {
    name: 'kvroute_epp_picks_total',
    type: 'counter',
    // Not `endpoint`: Prometheus Operator sets that target label (the scrape port name) and would rename ours.
    labels: ['destination_endpoint'],
    help: 'Requests the scheduler routed to each endpoint (address:port).',
  },
  modelServerScrapes: {
    name: 'kvroute_epp_model_server_scrapes_total',
    type: 'counter',
    labels: ['outcome'],
    help: 'Model-server /metrics scrapes finished: outcome="success" or "failure" (timeout, HTTP error, unreadable page). Over time, against pods / refresh interval, it shows whether scraping keeps up.',
  },
  metricsRefreshInterval: {
    name: 'kvroute_epp_metrics_refresh_interval_seconds',
    type: 'gauge',
    labels: ['mode'],
    help: 'The interval each pod is scraped at: --refresh-metrics-interval, or longer where --metrics-scrape-mode=adaptive lengthened it; mode is the scrape mode.',
  },
  scrapeWorkerRestarts: {
    name: 'kvroute_epp_scrape_worker_restarts_total',
    type: 'counter',
    labels: [],
    help: 'Scrape worker threads restarted after dying (each is also logged as an error).',
  },
  eventLoopUtilization: {
    name: 'kvroute_epp_event_loop_utilization',
    type: 'gauge',
    labels: [],
    help: 'Share of time the routing thread\'s event loop was busy since the previous scrape of this page (0..1).',
  },
  schedulingFailures: {
    name: 'kvroute_epp_scheduling_failures_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Scheduling cycles that picked nothing: reason="no-endpoints" (503), "saturated" (429) or "metrics-late" (no pod loaded, some dropped only for metrics at most 4 s past the staleness threshold whose scrapes have not failed fast nor timed out maxConsecutiveScrapeFailures times in a row: waits in flow control, else 503).',
  },
  sessionAffinity: {
    name: 'kvroute_epp_session_affinity_total',
    type: 'counter',
    labels: ['outcome'],
    help: 'Requests carrying a session id: outcome="hit" (sent to the bound endpoint), "miss" (new or expired session, bound now) or "repin" (bound endpoint gone or saturated, re-bound).',
  },
  prefixCharactersPerToken: {
    name: 'kvroute_epp_prefix_characters_per_token',
    type: 'gauge',
    labels: [],
    help: 'Characters of prompt text per vLLM prompt token, learnt from the requests routed and the pods\' vllm:request_prompt_tokens (4 until learnt); the approximate prefix index sizes pods with it when learnCharactersPerToken is set, else with 4.',
  },
  sessionBindings: {
    name: 'kvroute_epp_session_affinity_bindings',
    type: 'gauge',
    labels: [],
    help: 'Live session bindings held by the session-affinity filter.',
  },
  sessionStoreOperations: {
    name: 'kvroute_epp_session_store_operations_total',
    type: 'counter',
    labels: ['operation', 'outcome'],
    help: 'Shared session store (Redis/Valkey) calls: operation="read" outcome="hit", "miss", "late_hit", "late_miss" (answered after timeout, within unboundTimeout), or "timeout", "error", "unavailable" (each a pick that fell back to the local bindings); operation="write" outcome="ok", "exists" (SET NX kept a binding already there), "error" (counted when the store answers), "unavailable" or "dropped" (too many commands pending); operation="reconnect" outcome="readonly" (the store refused a command with READONLY, as a primary demoted by a failover does: the connection was dropped to reach the new primary).',
  },
  sessionStoreConnected: {
    name: 'kvroute_epp_session_store_connected',
    type: 'gauge',
    labels: [],
    help: '1 while the shared session store is connected; 0 while picks fall back to the local bindings, or when no store is configured.',
  },
  sessionTokens: {
    name: 'kvroute_epp_session_tokens_total',
    type: 'counter',
    labels: ['outcome'],
    help: 'Signed x-session-token headers received: outcome="valid", "expired", "forged" (signature matches no accepted key; unsigned llm-d tokens count here when they have the form) or "malformed"; all but valid are ignored.',
  },
  flowControlQueueSize: {
    name: 'kvroute_epp_flow_control_queue_size',
    type: 'gauge',
    labels: [],
    help: 'Requests waiting in the flow-control queue for a pod with capacity (read at each scrape of this page).',
  },
  flowControlQueueBytes: {
    name: 'kvroute_epp_flow_control_queue_bytes',
    type: 'gauge',
    labels: [],
    help: 'Request body bytes the requests waiting in the flow-control queue hold, bounded by flowControl.maxQueuedBytes (read at each scrape of this page).',
  },
  flowControlWait: {
    name: 'kvroute_epp_flow_control_wait_seconds',
    type: 'histogram',
    labels: ['outcome'],
    help: 'How long a request waited in the flow-control queue: outcome="dispatched" (then scheduled) or "rejected" (then refused).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  },
  flowControlRejections: {
    name: 'kvroute_epp_flow_control_rejections_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Requests flow control refused (429 with x-kvroute-flow-control): reason="queue-full", "deadline", "shed", or, with nothing answered, "aborted" (the stream went away first) and "closed" (the EPP stopped with the request still waiting, after its ext_proc server had stopped).',
  },
  gieFlowControlQueueSize: {
    name: 'inference_extension_flow_control_queue_size',
    type: 'gauge',
    labels: ['fairness_id', 'priority', 'inference_pool', 'model_name', 'target_model_name'],
    help: '[ALPHA] Current number of requests actively held in the Flow Control queue.',
  },
  gieFlowControlQueueBytes: {
    name: 'inference_extension_flow_control_queue_bytes',
    type: 'gauge',
    labels: ['fairness_id', 'priority', 'inference_pool', 'model_name', 'target_model_name'],
    help: '[ALPHA] Current total size in bytes of requests actively held in the Flow Control queue.',
  },
  gieFlowControlQueueDuration: {
    name: 'inference_extension_flow_control_request_queue_duration_seconds',
    type: 'histogram',
    labels: ['fairness_id', 'priority', 'outcome', 'inference_pool', 'model_name', 'target_model_name'],
    help: '[ALPHA] Distribution of total time requests spend in the Flow Control layer (from enqueue to final outcome).',
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
  },
  gieFlowControlDispatchCycleDuration: {
    name: 'inference_extension_flow_control_dispatch_cycle_duration_seconds',
    type: 'histogram',
    labels: [],
    help: '[ALPHA] Distribution of time taken for each internal dispatch cycle in the Flow Control layer.',
    buckets: [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],
  },
  gieFlowControlEnqueueDuration: {
    name: 'inference_extension_flow_control_request_enqueue_duration_seconds',
    type: 'histogram',
    labels: ['fairness_id', 'priority', 'outcome'],
    help: '[ALPHA] Distribution of time taken to enqueue requests into the Flow Control layer.',
    buckets: [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],
  },
  gieFlowControlPoolSaturation: {
    name: 'inference_extension_flow_control_pool_saturation',
    type: 'gauge',
    labels: ['inference_pool'],
    help: '[ALPHA] Current saturation level of the inference pool (0.0 = empty, 1.0 = fully saturated).',
  },
  // llm-d-router v0.10.0 pkg/epp/framework/plugins/scheduling/profilehandler/disagg/metrics.go: the decision of every
  // request a disagg-profile-handler scheduled, under llm-d's name and its deprecated scheduler-subsystem twin.
  llmdDisaggDecisions: {
    name: 'llm_d_epp_disagg_decision_total',
    type: 'counter',
    labels: ['plugin_name', 'plugin_type', 'model_name', 'decision_type'],
    help: '[ALPHA] Total number of disaggregation routing decisions made',
  },
  schedulerDisaggDecisions: {
    name: 'llm_d_inference_scheduler_disagg_decision_total',
    type: 'counter',
    labels: ['model_name', 'decision_type'],
    help: '[ALPHA] [Deprecated: Use llm_d_epp_disagg_decision_total] Total number of disaggregation routing decisions made',
  },
  // The same file's counters for the deprecated pd-profile-handler (RecordPDDecision), which counts there instead.
  llmdPdDecisions: {
    name: 'llm_d_epp_pd_decision_total',
    type: 'counter',
    labels: ['plugin_name', 'plugin_type', 'model_name', 'decision_type'],
    help: '[ALPHA] Total number of P/D disaggregation decisions made',
  },
  schedulerPdDecisions: {
    name: 'llm_d_inference_scheduler_pd_decision_total',
    type: 'counter',
    labels: ['model_name', 'decision_type'],
    help: '[ALPHA] [Deprecated: Use llm_d_epp_pd_decision_total] Total number of P/D disaggregation decisions made',
  },
  saturationExclusions: {
    name: 'kvroute_epp_saturation_exclusions_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Endpoints the saturation filter excluded from a cycle: reason="queue", "kv_cache", "stale_metrics" or "scrape_failures".',
  },
  // The decode pod is `model_server_pod`, GIE's name (inference_pool_per_pod_queue_size), not `pod`: Prometheus
  // Operator gives every ServiceMonitor target a `pod` label (the EPP's), which would rename a scraped `pod` to
  // `exported_pod`.
  kvEvents: {
    name: 'kvroute_epp_kv_events_total',
    type: 'counter',
    labels: ['model_server_pod', 'outcome'],
    help: 'vLLM KV events by pod: outcome="received", "applied", "indexed_by_engine_hash" (a BlockStored whose token ids could not key its blocks, indexed by engine hash), "skipped_*" (not indexable, e.g. an unknown parent) or "dropped_*" (malformed, bad topic, unknown pod, unknown event type or field, or "dropped_connection": a dialled publisher dropped for a protocol error and dialled again).',
  },
  kvEventGaps: {
    name: 'kvroute_epp_kv_event_gaps_total',
    type: 'counter',
    labels: ['model_server_pod'],
    help: 'Sequence gaps seen in a pod\'s KV-event stream (batches lost between the publisher and the EPP).',
  },
  kvEventReplays: {
    name: 'kvroute_epp_kv_event_replays_total',
    type: 'counter',
    labels: ['model_server_pod', 'outcome'],
    help: 'Replays asked of a pod\'s replay socket: outcome="repaired" (the gap was covered) or "failed".',
  },
  kvIndexResets: {
    name: 'kvroute_epp_kv_index_resets_total',
    type: 'counter',
    labels: ['model_server_pod', 'reason'],
    help: 'Times a pod\'s entries in the precise index were dropped: reason="gap", "publisher_restart" (its KV events\' sequence stepped back) or "pod_restart" (its metrics showed a new process first); a pod that leaves the pool takes its series with it.',
  },
  kvIndexBlocks: {
    name: 'kvroute_epp_kv_index_blocks',
    type: 'gauge',
    labels: ['model_server_pod'],
    help: 'KV blocks the precise index believes each pod holds (confirmed and speculative).',
  },
  tokenizationDuration: {
    name: 'kvroute_epp_tokenization_duration_seconds',
    type: 'histogram',
    labels: [],
    help: 'Time to tokenize a request the way vLLM does, for precise prefix scoring.',
    buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
  },
  preciseHitRatio: {
    name: 'kvroute_epp_precise_predicted_hit_ratio',
    type: 'histogram',
    labels: [],
    help: 'Share of a picked request\'s prompt tokens its pod will count as prefix-cache hits by the precise index (whole blocks, never the last token, as vLLM counts them; compare with vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total).',
    buckets: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1],
  },
  precisePredictedHitTokens: {
    name: 'kvroute_epp_precise_predicted_hit_tokens_total',
    type: 'counter',
    labels: [],
    help: 'Prompt tokens the picked pods will count as prefix-cache hits by the precise index (its matched whole blocks, without the prompt\'s last token, as vLLM counts vllm:prefix_cache_hits_total); over kvroute_epp_precise_prompt_tokens_total it is the predicted hit rate, in the units of vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total.',
  },
  precisePromptTokens: {
    name: 'kvroute_epp_precise_prompt_tokens_total',
    type: 'counter',
    labels: [],
    help: 'Prompt tokens of the requests the precise index scored, every one of them, as vLLM counts vllm:prefix_cache_queries_total.',
  },
} as const satisfies Readonly<Record<string, EppMetricDefinition>>;

export type EppMetricKey = keyof typeof EPP_METRICS;

/** llm-d-router v0.10.0's labels of the in-flight load gauges (`dataproducer/inflightload/metrics.go`), in its order. */
const LLMD_INFLIGHT_LABELS = ['endpoint_name', 'namespace', 'producer_name', 'fairness_id', 'priority'] as const;

/**
 * llm-d-router v0.10.0's in-flight load gauges (`pkg/epp/framework/plugins/requestcontrol/dataproducer/inflightload/
 * metrics.go`: subsystem `llm_d_epp`, help with its `[ALPHA]` stability): what each `inflight-load-producer` holds per
 * endpoint, by the request's fairness id and priority. Registered when a producer is built, as upstream's factory
 * registers them (`registerMetrics`), not with the families above: a config without one has neither.
 */
export const LLMD_INFLIGHT_LOAD_METRICS = {
  requests: {
    name: 'llm_d_epp_inflight_requests',
    type: 'gauge',
    labels: LLMD_INFLIGHT_LABELS,
    help: '[ALPHA] Current number of in-flight requests per endpoint, as tracked by the in-flight load producer.',
  },
  tokens: {
    name: 'llm_d_epp_inflight_tokens',
    type: 'gauge',
    labels: LLMD_INFLIGHT_LABELS,
    help: '[ALPHA] Current number of in-flight tokens per endpoint (uncached prompt tokens, optionally plus estimated output), as tracked by the in-flight load producer.',
  },
} as const satisfies Readonly<Record<string, EppMetricDefinition>>;

/** Metric key → metric name, for code and manifests that reference the metrics by name. */
export const EPP_METRIC_NAMES: { readonly [K in EppMetricKey]: (typeof EPP_METRICS)[K]['name'] } = Object.fromEntries(
  Object.entries(EPP_METRICS).map(([key, definition]) => [key, definition.name]),
) as { readonly [K in EppMetricKey]: (typeof EPP_METRICS)[K]['name'] };

/**
 * Every series name the EPP's /metrics can expose (histograms as `_bucket`, `_sum`, `_count`), for checking the
 * names PromQL expressions use.
 */
export function eppMetricSeriesNames(): string[] {
  return [...Object.values(EPP_METRICS), ...Object.values(LLMD_INFLIGHT_LOAD_METRICS)].flatMap((definition: EppMetricDefinition) =>
    definition.type === 'histogram'
      ? [`${definition.name}_bucket`, `${definition.name}_sum`, `${definition.name}_count`]
      : [definition.name],
  );
}

/**
 * GIE v0.5.1-v1.0.x's names for the per-request families (`pkg/epp/metrics/metrics.go`: subsystem `inference_model`;
 * v1.1.0 renamed it `inference_objective`). The EPP exports each of these as well, derived at scrape time from the
 * family it mirrors (`source`), so dashboards, alerts and checkers written against v0.5-v1.0 find their series:
 * - same buckets and labels, except that `request_total` has no `priority` label (it came later): series that differ
 *   only in priority are summed;
 * - `request_error_total`'s `error_code` 429 is v1.0's `InferencePoolResourceExhausted` (`pkg/epp/util/error/error.go`
 *   @ v1.0.0), not v1.5's `ResourceExhausted`.
 * v1.0 has no `prompt_cached_tokens` family, so none is mirrored for it.
 */
export const GIE_V1_0_REQUEST_METRICS = [
  { source: 'requestTotal', name: 'inference_model_request_total', help: '[ALPHA] Counter of inference model requests broken out for each model and target model.' },
  { source: 'requestErrorTotal', name: 'inference_model_request_error_total', help: '[ALPHA] Counter of inference model requests errors broken out for each model and target model.' },
  { source: 'requestDuration', name: 'inference_model_request_duration_seconds', help: '[ALPHA] Inference model response latency distribution in seconds for each model and target model.' },
  { source: 'requestSizes', name: 'inference_model_request_sizes', help: '[ALPHA] Inference model requests size distribution in bytes for each model and target model.' },
  { source: 'responseSizes', name: 'inference_model_response_sizes', help: '[ALPHA] Inference model responses size distribution in bytes for each model and target model.' },
  { source: 'inputTokens', name: 'inference_model_input_tokens', help: '[ALPHA] Inference model input token count distribution for requests in each model.' },
  { source: 'outputTokens', name: 'inference_model_output_tokens', help: '[ALPHA] Inference model output token count distribution for requests in each model.' },
  { source: 'runningRequests', name: 'inference_model_running_requests', help: '[ALPHA] Inference model number of running requests in each model.' },
  { source: 'normalizedTimePerOutputToken', name: 'inference_model_normalized_time_per_output_token_seconds', help: '[ALPHA] Inference model latency divided by number of output tokens in seconds for each model and target model.' },
] as const satisfies readonly { readonly source: EppMetricKey; readonly name: string; readonly help: string }[];

/** v1.0's `error_code` where it differs from the one kvroute records (GIE v1.5's). */
export const GIE_V1_0_ERROR_CODES: Readonly<Record<string, string>> = { ResourceExhausted: 'InferencePoolResourceExhausted' };

/**
 * llm-d's router (v0.9.0+) exports each of GIE's families twice: under its old name and under `llm_d_epp_*`, which
 * its docs tell new dashboards and alerts to use (llm-d-router v0.10.0 `pkg/epp/metrics/llm_d_router_metrics.go`,
 * `metrics.go` Register, `docs/metrics.md`). The EPP exports these twins too, derived at scrape time from the family
 * each mirrors (`source`), with the same buckets; `labels` renames a label where llm-d renamed it, `round2` rounds
 * as llm-d's pool summary does (`pkg/epp/datalayer/logger/logger.go` round2).
 * The per-request twins add `fairness_id` and `priority` labels, so they are recorded (`llmdRequestTotal` and the rest
 * in EPP_METRICS), not derived. Not exported: the families llm-d added for features kvroute has not
 * (`request_ttft_seconds` and the streaming TPOT/ITL, which need response bodies; eviction's revocations;
 * `flow_control_requests_total`, `flow_control_stale_endpoints`, the data-layer errors).
 */
export const LLMD_TWIN_METRICS = [
  { source: 'poolAverageKvCacheUtilization', name: 'llm_d_epp_average_kv_cache_utilization', help: '[ALPHA] The average kv cache utilization for an inference server pool.', round2: true },
  { source: 'poolAverageQueueSize', name: 'llm_d_epp_average_queue_size', help: '[ALPHA] The average number of requests pending in the model server queue.', round2: true },
  { source: 'poolAverageRunningRequests', name: 'llm_d_epp_average_running_requests', help: '[ALPHA] The average number of running requests across model servers in the pool.', round2: true },
  { source: 'poolReadyPods', name: 'llm_d_epp_ready_endpoints', help: '[ALPHA] The number of ready endpoints in the inference server pool.' },
  { source: 'poolPerPodQueueSize', name: 'llm_d_epp_per_endpoint_queue_size', help: '[ALPHA] The total number of requests pending in the model server queue for each underlying endpoint.', labels: { model_server_pod: 'model_server_endpoint' } },
  { source: 'schedulerE2eDuration', name: 'llm_d_epp_scheduler_e2e_duration_seconds', help: '[ALPHA] End-to-end scheduling latency distribution in seconds.' },
  { source: 'schedulerAttempts', name: 'llm_d_epp_scheduler_attempts_total', help: '[ALPHA] Total number of scheduling attempts.', labels: { pod_name: 'endpoint_name' } },
  { source: 'pluginDuration', name: 'llm_d_epp_plugin_duration_seconds', help: '[ALPHA] Plugin processing latency distribution in seconds for each extension point, plugin type and plugin name.' },
  { source: 'modelRewriteDecisions', name: 'llm_d_epp_model_rewrite_decisions_total', help: '[ALPHA] Total number of inference model rewrite decisions.' },
  { source: 'info', name: 'llm_d_epp_info', help: '[ALPHA] General information of the current build of Inference Extension.' },
  { source: 'gieFlowControlQueueDuration', name: 'llm_d_epp_flow_control_request_queue_duration_seconds', help: '[ALPHA] Distribution of total time requests spend in the Flow Control layer (from enqueue to final outcome).' },
  { source: 'gieFlowControlDispatchCycleDuration', name: 'llm_d_epp_flow_control_dispatch_cycle_duration_seconds', help: '[ALPHA] Distribution of time taken for each internal dispatch cycle in the Flow Control layer.' },
  { source: 'gieFlowControlEnqueueDuration', name: 'llm_d_epp_flow_control_request_enqueue_duration_seconds', help: '[ALPHA] Distribution of time taken to enqueue requests into the Flow Control layer.' },
  { source: 'gieFlowControlQueueSize', name: 'llm_d_epp_flow_control_queue_size', help: '[ALPHA] Current number of requests actively held in the Flow Control queue.' },
  { source: 'gieFlowControlQueueBytes', name: 'llm_d_epp_flow_control_queue_bytes', help: '[ALPHA] Current total size in bytes of requests actively held in the Flow Control queue.' },
  { source: 'gieFlowControlPoolSaturation', name: 'llm_d_epp_flow_control_pool_saturation', help: '[ALPHA] Pool saturation signal gating Flow Control dispatch. 1.0 is the gating set point; values above 1.0 indicate the magnitude of oversubscription past it. An empty pool reads as 1.0. With the default utilization detector, endpoints with missing or stale metrics score as fully saturated (fail-closed; see flow_control_stale_endpoints).' },
] as const satisfies readonly { readonly source: EppMetricKey; readonly name: string; readonly help: string; readonly labels?: Readonly<Record<string, string>>; readonly round2?: boolean }[];
