/**
 * The Prometheus series vLLM 0.10 (V1 engine) exports, as families (counters with their `_total`, histograms by
 * base name). Labels on engine metrics: `model_name`, `engine`. Source: vllm-project/vllm vllm/v1/metrics/loggers.py
 * at 0.10.x (`PrometheusStatLogger`, `cache_config_info` included). The PrometheusRule may only query these and the
 * EPP's own metrics; a test enforces it.
 */
export const VLLM_METRICS = {
  numRequestsRunning: 'vllm:num_requests_running',
  numRequestsWaiting: 'vllm:num_requests_waiting',
  kvCacheUsagePerc: 'vllm:kv_cache_usage_perc',
  /** Deprecated alias of kv_cache_usage_perc, still exported by 0.10 (the EPP falls back to it). */
  gpuCacheUsagePerc: 'vllm:gpu_cache_usage_perc',
  /** Counted in tokens. */
  prefixCacheQueries: 'vllm:prefix_cache_queries_total',
  /** Counted in tokens. */
  prefixCacheHits: 'vllm:prefix_cache_hits_total',
  gpuPrefixCacheQueries: 'vllm:gpu_prefix_cache_queries_total',
  gpuPrefixCacheHits: 'vllm:gpu_prefix_cache_hits_total',
  numPreemptions: 'vllm:num_preemptions_total',
  promptTokens: 'vllm:prompt_tokens_total',
  generationTokens: 'vllm:generation_tokens_total',
  requestSuccess: 'vllm:request_success_total',
  timeToFirstToken: 'vllm:time_to_first_token_seconds',
  timePerOutputToken: 'vllm:time_per_output_token_seconds',
  e2eRequestLatency: 'vllm:e2e_request_latency_seconds',
  requestQueueTime: 'vllm:request_queue_time_seconds',
  requestInferenceTime: 'vllm:request_inference_time_seconds',
  requestPrefillTime: 'vllm:request_prefill_time_seconds',
  requestDecodeTime: 'vllm:request_decode_time_seconds',
  requestPromptTokens: 'vllm:request_prompt_tokens',
  requestGenerationTokens: 'vllm:request_generation_tokens',
  requestMaxNumGenerationTokens: 'vllm:request_max_num_generation_tokens',
  requestParamsMaxTokens: 'vllm:request_params_max_tokens',
  requestParamsN: 'vllm:request_params_n',
  iterationTokens: 'vllm:iteration_tokens_total',
  /** Info gauge (value 1) whose labels are the CacheConfig fields: block_size, num_gpu_blocks, gpu_memory_utilization, … */
  cacheConfigInfo: 'vllm:cache_config_info',
  loraRequestsInfo: 'vllm:lora_requests_info',
} as const;

/** The histogram families among {@link VLLM_METRICS}: queried through their `_bucket`, `_sum` and `_count` series. */
export const VLLM_HISTOGRAMS: readonly string[] = [
  VLLM_METRICS.timeToFirstToken, VLLM_METRICS.timePerOutputToken, VLLM_METRICS.e2eRequestLatency,
  VLLM_METRICS.requestQueueTime, VLLM_METRICS.requestInferenceTime, VLLM_METRICS.requestPrefillTime,
  VLLM_METRICS.requestDecodeTime, VLLM_METRICS.requestPromptTokens, VLLM_METRICS.requestGenerationTokens,
  VLLM_METRICS.requestMaxNumGenerationTokens, VLLM_METRICS.requestParamsMaxTokens, VLLM_METRICS.requestParamsN,
  VLLM_METRICS.iterationTokens,
];
