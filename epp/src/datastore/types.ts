/**
 * The datastore's view of the pool: the endpoints discovery found and the metrics the scraper last read from them.
 * Plugins see only immutable snapshots of these (one per candidate, taken once per request), never the live store.
 */

/** One model-server endpoint (a Ready decode pod, or a static address for local runs). */
export interface Endpoint {
  /** Stable key `address:port`, the value sent to Envoy as the pick. */
  readonly key: string;
  /**
   * The endpoint's name: `<pod>-rank-<i>` for the i-th of the pool's target ports, as GIE names endpoints since v1.1.0
   * (`createEndpointNamespacedName`, pkg/epp/datastore/datastore.go @ v1.5.0), and the key for static endpoints.
   */
  readonly name: string;
  /** Pod namespace ('' for static endpoints). */
  readonly namespace: string;
  /** Pod IP or host. */
  readonly address: string;
  /** The pool's target port (the routing sidecar, 8000, in a cluster). */
  readonly port: number;
  /** Pod labels (empty for static endpoints). */
  readonly labels: Readonly<Record<string, string>>;
  /** The pod it belongs to, when that is not `name` (discovered endpoints: every rank of one pod shares it). */
  readonly podName?: string;
  /**
   * Its target port's index in the pool's `targetPorts`: with data parallelism, the vLLM rank serving that port, whose
   * KV events name this rank and come from the publisher's port offset by it. 0 or unset for a single port.
   */
  readonly rank?: number;
  /**
   * Scrape `/metrics` on this port rather than the datastore's `metricsPort`. Set on every rank of a pool with several
   * target ports: each rank serves its own metrics, and GIE ignores `--model-server-metrics-port` there.
   */
  readonly metricsPort?: number;
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
  /**
   * The inter-token histogram's `_count`/`_sum`, summed over the pod's engines: output tokens after each request's first
   * and the seconds since the request's previous token (one sample per token: `IterationStats.update_from_output`,
   * vllm/v1/metrics/stats.py). `vllm:inter_token_latency_seconds` where the page has it (vLLM 0.10.2+), else
   * `vllm:time_per_output_token_seconds` (0.10.0/0.10.1; 0.10.2 still exports it, deprecated, with the same samples).
   * The TPOT model learns from it (`src/latency/pod-tpot-model.ts`). Absent when the page has neither family.
   */
  readonly interTokenCount?: number;
  readonly interTokenSecondsSum?: number;
  /**
   * `vllm:request_inference_time_seconds` `_count`/`_sum`, summed over the pod's engines: finished requests and the
   * seconds each spent RUNNING (scheduled until its last token), i.e. how long a request holds one of the engine's
   * `--max-num-seqs` slots. Absent when the page has no such family.
   */
  readonly inferenceCount?: number;
  readonly inferenceSecondsSum?: number;
  /**
   * `vllm:request_prompt_tokens` `_count`/`_sum`, summed over the pod's engines: finished requests and their prompt
   * tokens, from which the prefix index learns characters per token (`characters-per-token.ts`). Absent when the page
   * has no such family.
   */
  readonly promptTokensCount?: number;
  readonly promptTokensSum?: number;
  /**
   * vLLM engines behind the endpoint's one `/metrics` page (distinct `engine` labels on the load gauges, which are summed
   * over them): more than 1 for a pod whose one port fronts `--data-parallel-size` engines; absent before a page had
   * any load gauge.
   */
  readonly engines?: number;
  /** `vllm:prefix_cache_queries_total` / `vllm:prefix_cache_hits_total` (tokens; the `gpu_` names before 0.10). */
  readonly prefixCacheQueryTokens?: number;
  readonly prefixCacheHitTokens?: number;
  /** `vllm:lora_requests_info`: the adapters running and waiting, and `max_lora` (newest series naming any adapter). */
  readonly lora?: { readonly running: readonly string[]; readonly waiting: readonly string[]; readonly maxLora: number };
  /**
   * `process_start_time_seconds` of the page's last successful scrape: when the serving process started (seconds since
   * the epoch), which prometheus_client's default registry exports for a single-process server such as vLLM's one API
   * server (its multiprocess mode, with several API servers, does not). Absent when the page lacks it.
   */
  readonly processStartTime?: number;
  /** Wall-clock ms of the last successful scrape; 0 when never scraped. */
  readonly updateTime: number;
  /**
   * Wall-clock ms when the last successful scrape's request went out: the page shows the server at some moment between
   * this and `updateTime` (its arrival). What happened before it is in the page; what happened after `updateTime` is
   * not. Absent for metrics not read by a scraper.
   */
  readonly requestTime?: number;
  /**
   * Wall-clock ms of the last scrape whose load readings (running, waiting, KV usage, first tokens, prefix queries)
   * differed from the one before; absent before the first. With `updateTime`, tells a pod whose gauges stopped moving.
   */
  readonly changedTime?: number;
  /** Consecutive failed scrapes since the last success. */
  readonly consecutiveFailures: number;
  /**
   * How many of `consecutiveFailures` timed out (no whole page within the scrape timeout) rather than failed fast (a
   * refused or reset connection, an HTTP error, a page that is not a model server's): a pod too busy to answer in time,
   * or an EPP too starved to read the answer, looks like that, a pod that is gone does not (`scrapesLost`). Absent
   * (0) after a success and in metrics not read by a scraper.
   */
  readonly timedOutFailures?: number;
  /**
   * Successful pages so far that showed requests waiting (`vllm:num_requests_waiting` > 0), cumulative: a reader holding
   * two snapshots knows whether any page between them, read or not, showed a queue (the latency model skips such
   * intervals: `src/latency/pod-latency-model.ts`, "Which observations are real"). Absent before the first page and in
   * metrics built outside a datastore.
   */
  readonly waitingPages?: number;
}

/** An endpoint together with its metrics and the EPP's own in-flight count, frozen for one scheduling cycle. */
export interface EndpointSnapshot {
  readonly endpoint: Endpoint;
  readonly metrics: EndpointMetrics;
  /** Requests the EPP routed to this endpoint whose responses have not ended yet. */
  readonly activeRequests: number;
  /**
   * Wall-clock ms when the datastore added the endpoint (discovery found it). Tells a pod whose first scrape is still
   * on its way from one that was never read; absent in snapshots built outside a datastore.
   */
  readonly discoveredTime?: number;
  /**
   * Requests the EPP routed to this endpoint after its last page's request went out (`metrics.requestTime`), less those
   * that ended on it since (`since-scrape-ledger.ts`): how far the page's queue has moved by this EPP's own doing. vLLM
   * puts an arriving request in its WAITING queue until its next step schedules it, and an ended request frees a slot,
   * so a burst routed between two scrapes is queue the last page cannot see (`saturation-filter` adds it). Negative
   * when more ended than were routed. Absent (read as 0) in snapshots built outside a datastore.
   */
  readonly netPicksSinceScrape?: number;
}

/**
 * `m` as a frozen object of the one shape every metrics object has: all fields present in this order, the optional
 * ones `undefined` when absent. Every filter and scorer reads `candidate.metrics.*` for each candidate on each request;
 * objects built by spreading a structured-cloned worker reading got a hidden class of their own per pod (64 pods, 64
 * classes, measured with %HaveSameMap), which turned those reads megamorphic: V8's property lookups then go through
 * its stub cache, several times slower per read, and at 256 pods the scheduling cycle's per-candidate passes were most
 * of the difference between 256 and 8 pods. Build every EndpointMetrics with this.
 */
export function endpointMetrics(m: EndpointMetrics): EndpointMetrics {
  // Every key listed (the mapped type makes a new field of EndpointMetrics a compile error here until it is added).
  const shaped: { readonly [K in keyof Required<EndpointMetrics>]: EndpointMetrics[K] } = {
    waitingQueueSize: m.waitingQueueSize,
    runningQueueSize: m.runningQueueSize,
    kvCacheUsagePercent: m.kvCacheUsagePercent,
    blockSize: m.blockSize,
    numGpuBlocks: m.numGpuBlocks,
    firstTokenCount: m.firstTokenCount,
    firstTokenSecondsSum: m.firstTokenSecondsSum,
    interTokenCount: m.interTokenCount,
    interTokenSecondsSum: m.interTokenSecondsSum,
    inferenceCount: m.inferenceCount,
    inferenceSecondsSum: m.inferenceSecondsSum,
    promptTokensCount: m.promptTokensCount,
    promptTokensSum: m.promptTokensSum,
    engines: m.engines,
    prefixCacheQueryTokens: m.prefixCacheQueryTokens,
    prefixCacheHitTokens: m.prefixCacheHitTokens,
    lora: m.lora,
    processStartTime: m.processStartTime,
    updateTime: m.updateTime,
    requestTime: m.requestTime,
    changedTime: m.changedTime,
    consecutiveFailures: m.consecutiveFailures,
    timedOutFailures: m.timedOutFailures,
    waitingPages: m.waitingPages,
  };
  return Object.freeze(shaped);
}

/**
 * The first objects of a hidden class fix each field's representation (small integer, double, pointer); a later value
 * that does not fit (0.25 where 0 was, a number where `undefined` was) makes V8 deprecate the class for a more general
 * one and migrate older objects only when next touched, so for a while objects built before and after hold different
 * classes. Building two objects up front, every field `undefined` and then every field a double, takes each field to
 * the most general representation at once, so every EndpointMetrics the EPP keeps is built with the final class.
 */
function generalizeMetricsShape(): void {
  const nothing = undefined as unknown as number;
  endpointMetrics({ waitingQueueSize: nothing, runningQueueSize: nothing, kvCacheUsagePercent: nothing, updateTime: nothing, consecutiveFailures: nothing });
  endpointMetrics({
    waitingQueueSize: 0.5, runningQueueSize: 0.5, kvCacheUsagePercent: 0.5, blockSize: 0.5, numGpuBlocks: 0.5, firstTokenCount: 0.5,
    firstTokenSecondsSum: 0.5, interTokenCount: 0.5, interTokenSecondsSum: 0.5, inferenceCount: 0.5, inferenceSecondsSum: 0.5, promptTokensCount: 0.5, promptTokensSum: 0.5, engines: 0.5, prefixCacheQueryTokens: 0.5, prefixCacheHitTokens: 0.5, updateTime: 0.5, requestTime: 0.5, changedTime: 0.5, consecutiveFailures: 0.5, timedOutFailures: 0.5, waitingPages: 0.5,
    lora: { running: [], waiting: [], maxLora: 0 },
  });
}
generalizeMetricsShape();

/** `EndpointMetrics.waitingPages` after a new page showing `waiting` requests waiting, `prev` the metrics before it. */
export function nextWaitingPages(prev: EndpointMetrics, waiting: number): number {
  return (prev.waitingPages ?? 0) + (waiting > 0 ? 1 : 0);
}

export const EMPTY_METRICS: EndpointMetrics = endpointMetrics({
  waitingQueueSize: 0,
  runningQueueSize: 0,
  kvCacheUsagePercent: 0,
  updateTime: 0,
  consecutiveFailures: 0,
});

/**
 * Whether `next`, a new successful reading of the same endpoint as `previous`, shows its model server restarted.
 *
 * When both pages carry `process_start_time_seconds` (prometheus_client's process collector, in the default registry
 * vLLM's single API server uses: `get_prometheus_registry`, vllm/v1/metrics/prometheus.py), a restart is a start time
 * that changed, and nothing else is: the exact signal, which also tells a counter reset without a restart from one.
 * That reset exists: elastic-EP scale-up rebuilds the stat loggers in the running server (`AsyncLLM.scale_elastic_ep`,
 * vllm/v1/engine/async_llm.py: "This resets all the prometheus metrics") while every engine keeps its cache.
 *
 * Otherwise (several API servers share prometheus_client's multiprocess files, which export no process metrics), one of
 * the cumulative counters both readings carry went back. A counter only grows within one process, so Prometheus reads
 * any decrease as a reset (`rate()`'s counter-reset rule, prometheus/promql/functions.go); for vLLM a new process also
 * means an empty KV cache (GPU memory, and the CPU tier's process memory). vLLM's counters live in its API server
 * (`PrometheusStatLogger`, one series per engine from start-up), so they go back with that process, not with one
 * data-parallel engine; elastic-EP scale-up is then read as a restart. Only counts are compared (requests and tokens:
 * integers, so no float noise from summing `_sum`s).
 */
export function modelServerRestarted(previous: EndpointMetrics, next: EndpointMetrics): boolean {
  if (previous.updateTime === 0 || next.updateTime === 0 || next.updateTime === previous.updateTime) return false;
  if (previous.processStartTime !== undefined && next.processStartTime !== undefined) return next.processStartTime !== previous.processStartTime;
  return wentBack(previous.firstTokenCount, next.firstTokenCount)
    || wentBack(previous.inferenceCount, next.inferenceCount)
    || wentBack(previous.promptTokensCount, next.promptTokensCount)
    || wentBack(previous.prefixCacheQueryTokens, next.prefixCacheQueryTokens);
}

function wentBack(before: number | undefined, after: number | undefined): boolean {
  return before !== undefined && after !== undefined && after < before;
}
