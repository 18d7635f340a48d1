export * from './types';
export { Datastore, metricsAgeMs, metricsFresh, type DatastoreEvents, type DatastoreOptions, type PoolStats } from './datastore';
export { endpointKey } from './endpoint-key';
export {
  DEFAULT_REFRESH_INTERVAL_MS,
  DEFAULT_SCRAPE_TIMEOUT_MS,
  MetricsScraper,
  metricsUrl,
  type MetricsScraperOptions,
  type ScrapeStatus,
} from './scraper';
export {
  VLLM_METRIC_NAMES,
  applyReading,
  extractVllmMetrics,
  hasLoadSignal,
  parseMetricSpec,
  parseVllmMetrics,
  type MetricSpec,
  type VllmMetricNames,
  type VllmMetricsReading,
  type VllmParseOptions,
} from './vllm-metrics';
export {
  PrometheusParseError,
  histogramSeries,
  labelKey,
  parseGoFloat,
  parsePrometheusText,
  summarySeries,
  type HistogramSeries,
  type MetricFamily,
  type MetricType,
  type ParseIssue,
  type ParseOptions,
  type ParsedExposition,
  type PromSample,
  type SummarySeries,
} from '@kvroute/protocol/prometheus';
export { EndpointSpecError, StaticDiscovery, parseEndpointList, type Discovery } from './static-discovery';
export {
  POOL_API_VERSIONS,
  PoolSpecError,
  isPodReady,
  labelSelectorString,
  parseInferencePool,
  podEndpoints,
  ACTIVE_PORTS_ANNOTATION,
  LEGACY_ACTIVE_PORTS_ANNOTATION,
  MAX_TARGET_PORTS,
  selectorMatches,
  type PodLike,
  type PoolApiVersion,
  type PoolSpec,
} from './inference-pool';
export { KubernetesDiscovery, type KubeConfigSource, type KubernetesDiscoveryOptions } from './kubernetes-discovery';
export { ModelRewriteStore, poolRefGroup, selectWeightedTarget, type ModelRewriteRule, type ModelRewriteTarget, type ModelRewrites } from './model-rewrites';
export { loadKubernetesClient, type KubernetesClientModule } from './k8s-client';
