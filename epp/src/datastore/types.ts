/**
 * The datastore's view of the pool: the endpoints discovery found and the metrics the scraper last read from them.
 * Plugins see only immutable snapshots of these (one per candidate, taken once per request), never the live store.
 */

/** One model-server endpoint (a Ready decode pod, or a static address for local runs). */
export interface Endpoint {
  /** Stable key `address:port`, the value sent to Envoy as the pick. */
  readonly key: string;
  /** Pod name (or the key for static endpoints). */
  readonly name: string;
  /** Pod namespace ('' for static endpoints). */
  readonly namespace: string;
  /** Pod IP or host. */
  readonly address: string;
  /** The pool's target port (the routing sidecar, 8000, in a cluster). */
  readonly port: number;
  /** Pod labels (empty for static endpoints). */
  readonly labels: Readonly<Record<string, string>>;
}

/** What the scraper last read from an endpoint's `/metrics`. */
export interface EndpointMetrics {
  /** `vllm:num_requests_waiting`. */
  readonly waitingQueueSize: number;
  /** `vllm:num_requests_running`. */
  readonly runningQueueSize: number;
  /** `vllm:kv_cache_usage_perc` (fallback `vllm:gpu_cache_usage_perc`), 0..1. */
  readonly kvCacheUsagePercent: number;
  /** `vllm:cache_config_info{block_size}` when exported. */
  readonly blockSize?: number;
  /** `vllm:cache_config_info{num_gpu_blocks}` when exported. */
  readonly numGpuBlocks?: number;
  /**
   * Cumulative engine counters the latency model learns from (vLLM 0.10 v1: vllm/v1/metrics/loggers.py), summed over
   * the pod's engines; absent when the page has no such family. `vllm:time_to_first_token_seconds` `_count`/`_sum`.
   */
  readonly firstTokenCount?: number;
  readonly firstTokenSecondsSum?: number;
  /** `vllm:prefix_cache_queries_total` / `vllm:prefix_cache_hits_total` (tokens; the `gpu_` names before 0.10). */
  readonly prefixCacheQueryTokens?: number;
  readonly prefixCacheHitTokens?: number;
  /** Wall-clock ms of the last successful scrape; 0 when never scraped. */
  readonly updateTime: number;
  /** Consecutive failed scrapes since the last success. */
  readonly consecutiveFailures: number;
}

/** An endpoint together with its metrics and the EPP's own in-flight count, frozen for one scheduling cycle. */
export interface EndpointSnapshot {
  readonly endpoint: Endpoint;
  readonly metrics: EndpointMetrics;
  /** Requests the EPP routed to this endpoint whose responses have not ended yet. */
  readonly activeRequests: number;
}

export const EMPTY_METRICS: EndpointMetrics = Object.freeze({
  waitingQueueSize: 0,
  runningQueueSize: 0,
  kvCacheUsagePercent: 0,
  updateTime: 0,
  consecutiveFailures: 0,
});
