/**
 * Every plugin definition the EPP knows, one line per plugin module. The config catalogue, the config's TypeScript
 * types and the scheduler's registry are derived from this list, so adding a plugin is its module and one line here.
 * Only `definePlugin` results may be exported from this file (a test checks it).
 */
export { activeRequestScorer } from './active-request-scorer';
export { agentIdentity } from './agent-identity';
export { alwaysDisaggPdDecider } from './always-disagg-pd-decider';
export { byLabel } from './by-label';
export { concurrencyDetector } from './concurrency-detector';
export { decodeFilter } from './decode-filter';
export { destinationEndpointServedVerifier } from './destination-endpoint-served-verifier';
export { disaggHeadersHandler, prefillHeaderHandler } from './disagg-headers-handler';
export { disaggProfileHandler } from './disagg-profile-handler';
export { fcfsOrderingPolicy, globalStrictFairnessPolicy, roundRobinFairnessPolicy, staticUsageLimitPolicy } from './flow-control-policies';
export { headerBasedTestingFilter } from './header-based-testing-filter';
export { headerLabelAffinityScorer } from './header-label-affinity-scorer';
export { headerProfileHandler } from './header-profile-handler';
export { inflightLoadProducer } from './inflight-load-producer';
export { kvCacheUtilizationScorer, kvCacheScorer } from './kv-cache-utilization-scorer';
export { labelSelectorFilter, byLabelSelector } from './label-selector-filter';
export { latencyScorer } from './latency-scorer';
export { loadAwareScorer } from './load-aware-scorer';
export { latencySloAdmitter } from './latency-slo-admitter';
export { loraAffinityScorer } from './lora-affinity-scorer';
export { loraRoomFilter } from './lora-room-filter';
export { maxScorePicker } from './max-score-picker';
export { noHitLruScorer } from './no-hit-lru-scorer';
export { pdProfileHandler } from './pd-profile-handler';
export { predictedLatencyProducer } from './predicted-latency-producer';
export { prefillFilter } from './prefill-filter';
export { prefillPriority } from './prefill-priority';
export { prefixBasedPdDecider } from './prefix-based-pd-decider';
export { prefixCacheAffinityFilter } from './prefix-cache-affinity-filter';
export { prefixCacheScorer } from './prefix-cache-scorer';
export { priorityHoldbackPolicy } from './priority-holdback-policy';
export { probabilisticAdmitter } from './probabilistic-admitter';
export { precisePrefixCacheScorer } from './precise-prefix-cache-scorer';
export { queueScorer } from './queue-scorer';
export { randomPicker } from './random-picker';
export { sloHeadroomTierFilter } from './slo-headroom-tier-filter';
export { runningRequestsSizeScorer } from './running-requests-size-scorer';
export { saturationFilter } from './saturation-filter';
export { sessionAffinityFilter, multiclusterSessionAffinityFilter } from './session-affinity-filter';
export { sessionAffinityScorer } from './session-affinity-scorer';
export { sessionLoadScorer } from './session-load-scorer';
export { sessionIdProducer } from './session-id-producer';
export { singleProfileHandler } from './single-profile-handler';
export { softReflectiveCeilingPolicy } from './soft-reflective-ceiling-policy';
export { tokenizer } from './tokenizer';
export { tokenProducer } from './token-producer';
export { utilizationDetector } from './utilization-detector';
export { utilizationFilter } from './utilization-filter';
export { weightedRandomPicker } from './weighted-random-picker';
export { metricsDataSource, coreMetricsExtractor, endpointNotificationSource, fileDiscovery, openaiParser, passthroughParser, anthropicParser, vllmhttpParser } from './upstream-data-layer';
