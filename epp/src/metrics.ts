import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import { EPP_METRICS, GIE_V1_0_ERROR_CODES, GIE_V1_0_REQUEST_METRICS, LLMD_INFLIGHT_LOAD_METRICS, LLMD_TWIN_METRICS, type EppMetricKey } from './config/metric-names';
import type { ExtensionPoint, PluginIdentity, SchedulingMetrics } from './scheduling/metrics-hooks';
import { BoundHistogram, type HistogramSeries } from './bound-histogram';
import { BoundCounter, type ValueSeries } from './bound-counter';
import { BoundedLabelValues, MAX_MODEL_LABELS, OTHER_LABEL } from './bounded-label';
import type { Endpoint } from './datastore/types';

/** Endpoint keys whose pick counter series `countPick` keeps resolved. */
const MAX_CACHED_PICK_SERIES = 16_384;

/**
 * Distinct (`fairness_id`, `priority`) label sets of the in-flight load gauges; later sets count as (`other`, `other`).
 * Request control bounds each label on its own (64 fairness ids besides `default-flow` and `other`, 8 header priorities
 * besides 0, `other` and the configured ones), but the gauges are per endpoint and producer too: at 256 pods their
 * product could reach ~170,000 series a family, this bound ~4,400.
 */
export const MAX_INFLIGHT_LABEL_SETS = 16;

/**
 * The EPP's Prometheus metrics on a prom-client Registry. Names, labels and buckets come from the table in
 * `config/metric-names.ts` (GIE v1.5.0's `inference_*` plus kvroute's `kvroute_epp_*`), so the manifests
 * and this module cannot disagree.
 */
export { EPP_METRICS, EPP_METRIC_NAMES, GIE_V1_0_REQUEST_METRICS, LLMD_INFLIGHT_LOAD_METRICS, LLMD_TWIN_METRICS, eppMetricSeriesNames } from './config/metric-names';

type Definitions = typeof EPP_METRICS;
type LabelsOf<K extends EppMetricKey> = Definitions[K]['labels'][number];
/**
 * The histograms observed on every request are `BoundHistogram`s (see there): the plugin durations about a dozen times
 * per request, the request's size, duration and scheduling time and the prefix match once each. prom-client's
 * `observe(labels, v)` cost ~1 µs unlabelled and ~2.3 µs with two labels (loaded 2-core machine), `BoundHistogram`'s a
 * bucket search; the exposition is the same (test/metrics-bound-histogram.test.ts). GIE's per-flow flow-control
 * histograms are among them so that a collected flow's series can be dropped (`forgetFlowSeries`).
 */
const HOT_HISTOGRAM_KEYS = [
  'pluginDuration',
  'requestSizes',
  'requestDuration',
  'schedulerE2eDuration',
  'prefixIndexerHitRatio',
  'prefixIndexerHitBytes',
  'llmdRequestSizes',
  'llmdRequestDuration',
  'llmdRequestProcessingDuration',
  'llmdResponseProcessingDuration',
  'llmdPrefixIndexerHitRatio',
  'llmdPrefixIndexerHitBytes',
  'gieFlowControlQueueDuration',
  'gieFlowControlEnqueueDuration',
  // The response side, observed once per response when response bodies reach the EPP (`--response-body-mode
  // full-duplex`): sizes, tokens and time per output token, GIE's and llm-d's twins, up to ten observations a request.
  'responseSizes',
  'inputTokens',
  'outputTokens',
  'promptCachedTokens',
  'normalizedTimePerOutputToken',
  'llmdResponseSizes',
  'llmdInputTokens',
  'llmdOutputTokens',
  'llmdCachedTokens',
  'llmdNormalizedTimePerOutputToken',
] as const satisfies readonly EppMetricKey[];
type HotHistogramKey = (typeof HOT_HISTOGRAM_KEYS)[number];
const HOT_HISTOGRAMS: ReadonlySet<EppMetricKey> = new Set(HOT_HISTOGRAM_KEYS);
/**
 * `BoundCounter`s (see there): the counters and gauges updated on every request, the ones labelled by pod, whose
 * series go when their pod leaves the pool (`forgetEndpoint`), and GIE's per-flow queue gauges, whose series go when
 * their flow is collected (`forgetFlowSeries`).
 */
const BOUND_COUNTER_KEYS = [
  'requestTotal',
  'runningRequests',
  'llmdRequestTotal',
  'llmdRunningRequests',
  'picks',
  'schedulerAttempts',
  'kvEvents',
  'kvEventGaps',
  'kvEventReplays',
  'kvIndexResets',
  'kvIndexBlocks',
  'llmdPrefixIndexerSize',
  'gieFlowControlQueueSize',
  'gieFlowControlQueueBytes',
] as const satisfies readonly EppMetricKey[];
type BoundCounterKey = (typeof BOUND_COUNTER_KEYS)[number];
const BOUND_COUNTERS: ReadonlySet<EppMetricKey> = new Set(BOUND_COUNTER_KEYS);
type CollectorOf<K extends EppMetricKey> = K extends HotHistogramKey
  ? BoundHistogram<LabelsOf<K>>
  : K extends BoundCounterKey
  ? BoundCounter<LabelsOf<K>>
  : Definitions[K]['type'] extends 'counter'
  ? Counter<LabelsOf<K>>
  : Definitions[K]['type'] extends 'gauge'
    ? Gauge<LabelsOf<K>>
    : Histogram<LabelsOf<K>>;

/** One prom-client collector per metric of the table, typed with its labels. */
export type EppCollectors = { readonly [K in EppMetricKey]: CollectorOf<K> };

export interface EppMetricsOptions {
  /** Where to register; a fresh Registry by default, so tests and several instances never collide. */
  readonly registry?: Registry;
  /** Also export Node process metrics (CPU, heap, event-loop lag). @default false */
  readonly collectDefaultMetrics?: boolean;
  /** Values of `inference_extension_info`. @default "unknown" */
  readonly commit?: string;
  readonly buildRef?: string;
}

export interface EppMetrics {
  readonly registry: Registry;
  /** For request control and the datastore: request counters, pool gauges and so on. */
  readonly collectors: EppCollectors;
  /** Hand this to `buildScheduler({ metrics })`. */
  readonly scheduling: SchedulingMetrics;
  /**
   * Drops the series labelled by an endpoint that left the pool: its picks, its scheduler attempts (`pod_name`,
   * `namespace` and `port` all its own), its KV-event families and its in-flight load gauges. Kept, a gauge such as
   * `kvroute_epp_kv_index_blocks` would go on reporting the index it no longer has, and every pod a rollout or an
   * autoscaler ever created would stay a series for the EPP's lifetime. (GIE v1.5.0 keeps its scheduler-attempt series,
   * llm-d-router v0.10.0 its in-flight gauges, at 0.) What was counted since the last
   * scrape of this page is lost with the series, and an endpoint that leaves and comes back between two scrapes reads
   * to `rate()` as a counter that never reset: both at most one scrape interval's worth.
   */
  forgetEndpoint(endpoint: Pick<Endpoint, 'key' | 'name' | 'namespace' | 'port' | 'podName'>): void;
}

export function createEppMetrics(options: EppMetricsOptions = {}): EppMetrics {
  const registry = options.registry ?? new Registry();
  const collectors = Object.fromEntries(
    Object.entries(EPP_METRICS).map(([key, definition]) => {
      const common = { name: definition.name, help: definition.help, labelNames: [...definition.labels], registers: [registry] };
      if (BOUND_COUNTERS.has(key as EppMetricKey) && (definition.type === 'counter' || definition.type === 'gauge')) {
        return [key, new BoundCounter(definition.name, definition.help, definition.labels, definition.type, registry)];
      }
      switch (definition.type) {
        case 'counter':
          return [key, new Counter(common)];
        case 'gauge':
          return [key, new Gauge(common)];
        case 'histogram':
          return HOT_HISTOGRAMS.has(key as EppMetricKey)
            ? [key, new BoundHistogram(definition.name, definition.help, definition.labels, definition.buckets, registry)]
            : [key, new Histogram({ ...common, buckets: [...definition.buckets] })];
      }
    }),
  ) as unknown as EppCollectors;

  for (const legacy of GIE_V1_0_REQUEST_METRICS) {
    registry.registerMetric(new RenamedFamily(legacy.name, legacy.help, collectors[legacy.source] as unknown as ExportedFamily, gieV1_0Labels) as unknown as Metric<string>);
  }
  for (const twin of LLMD_TWIN_METRICS) {
    const renames: Readonly<Record<string, string>> = 'labels' in twin ? twin.labels : {};
    const round2 = 'round2' in twin && twin.round2;
    const relabel = (labels: Record<string, string | number>): Record<string, string | number> => {
      const out: Record<string, string | number> = {};
      for (const [name, value] of Object.entries(labels)) out[renames[name] ?? name] = value;
      return out;
    };
    registry.registerMetric(new RenamedFamily(twin.name, twin.help, collectors[twin.source] as unknown as ExportedFamily, relabel,
      round2 ? (v) => Math.round(v * 100) / 100 : undefined) as unknown as Metric<string>);
  }
  if (options.collectDefaultMetrics === true) collectDefaultMetrics({ register: registry });
  collectors.info.set({ commit: options.commit ?? 'unknown', build_ref: options.buildRef ?? 'unknown' }, 1);

  // Each (extension point, plugin) series resolved once: the scheduler observes one per plugin call. A plugin name
  // is unique in a config, so it determines the type.
  const pluginSeries = new Map<ExtensionPoint, Map<string, HistogramSeries>>();
  const seriesOf = (extensionPoint: ExtensionPoint, pluginType: string, pluginName: string): HistogramSeries => {
    let byName = pluginSeries.get(extensionPoint);
    if (byName === undefined) pluginSeries.set(extensionPoint, (byName = new Map()));
    let series = byName.get(pluginName);
    if (series === undefined) {
      series = collectors.pluginDuration.child({ extension_point: extensionPoint, plugin_type: pluginType, plugin_name: pluginName });
      byName.set(pluginName, series);
    }
    return series;
  };
  // llm-d's prefix-indexer series of each indexing plugin, resolved once (a plugin name is unique in a config).
  const llmdPrefixSeries = new Map<string, { bytes: HistogramSeries; ratio: HistogramSeries }>();
  const llmdPrefixSeriesOf = (plugin: PluginIdentity): { bytes: HistogramSeries; ratio: HistogramSeries } => {
    let series = llmdPrefixSeries.get(plugin.name);
    if (series === undefined) {
      const labels = { plugin_name: plugin.name, plugin_type: plugin.type };
      series = { bytes: collectors.llmdPrefixIndexerHitBytes.child(labels), ratio: collectors.llmdPrefixIndexerHitRatio.child(labels) };
      llmdPrefixSeries.set(plugin.name, series);
    }
    return series;
  };
  // The prefix scorer sets its index size after every pick: its labelled series resolved once per plugin (again after a
  // registry reset dropped it), where prom-client's `set(labels, value)` built, sorted and hashed the label object on
  // every request (~0.5 µs).
  const llmdPrefixSizeSeries = new Map<string, ValueSeries>();
  const llmdPrefixSizeSeriesOf = (plugin: PluginIdentity): ValueSeries => {
    let series = llmdPrefixSizeSeries.get(plugin.name);
    if (series === undefined || series.detached) {
      series = collectors.llmdPrefixIndexerSize.child({ plugin_name: plugin.name, plugin_type: plugin.type });
      llmdPrefixSizeSeries.set(plugin.name, series);
    }
    return series;
  };
  // Unlabelled histograms have their one series from the start, as prom-client's do (zeros before the first request).
  const e2eDuration = collectors.schedulerE2eDuration.child({});
  const prefixHitBytes = collectors.prefixIndexerHitBytes.child({});
  const prefixHitRatio = collectors.prefixIndexerHitRatio.child({});
  // Each pick's counter series by endpoint key, resolved once: `picks.inc({ destination_endpoint })` built a label
  // object and a key string per request. Pods come and go, so the map starts over past a bound (the counters keep
  // their values); a series `reset()` dropped is resolved again.
  const pickSeries = new Map<string, ValueSeries>();
  const countPick = (endpointKey: string): void => {
    let series = pickSeries.get(endpointKey);
    if (series === undefined || series.detached) {
      if (pickSeries.size >= MAX_CACHED_PICK_SERIES) pickSeries.clear();
      series = collectors.picks.child({ destination_endpoint: endpointKey });
      pickSeries.set(endpointKey, series);
    }
    series.value++;
  };
  // llm-d-router v0.10.0's in-flight load gauges, registered by the first inflight-load-producer built.
  let inflight: { readonly requests: BoundCounter<string>; readonly tokens: BoundCounter<string> } | undefined;
  // Keyed by fairness id and priority joined with U+0000, which no header value holds.
  const inflightSets = new BoundedLabelValues(MAX_INFLIGHT_LABEL_SETS, Infinity);
  const registerInflightLoad = (): { readonly requests: BoundCounter<string>; readonly tokens: BoundCounter<string> } => {
    const { requests, tokens } = LLMD_INFLIGHT_LOAD_METRICS;
    return (inflight ??= {
      requests: new BoundCounter(requests.name, requests.help, requests.labels, requests.type, registry),
      tokens: new BoundCounter(tokens.name, tokens.help, tokens.labels, tokens.type, registry),
    });
  };
  // The model is the client's, bounded as every client label is.
  const disaggModels = new BoundedLabelValues(MAX_MODEL_LABELS);
  const disaggModel = (modelName: string) => disaggModels.label(modelName);
  const scheduling: SchedulingMetrics = {
    observeSchedulingDuration: (seconds) => e2eDuration.observe(seconds),
    observePluginDuration: (extensionPoint, pluginType, pluginName, seconds) => seriesOf(extensionPoint, pluginType, pluginName).observe(seconds),
    countPick,
    countSchedulingFailure: (reason) => collectors.schedulingFailures.inc({ reason }),
    countSessionAffinity: (outcome) => collectors.sessionAffinity.inc({ outcome }),
    setSessionBindings: (bindings) => collectors.sessionBindings.set(bindings),
    countSessionStore: (operation, outcome) => collectors.sessionStoreOperations.inc({ operation, outcome }),
    setSessionStoreConnected: (connected) => collectors.sessionStoreConnected.set(connected ? 1 : 0),
    countSessionToken: (outcome) => collectors.sessionTokens.inc({ outcome }),
    countSaturationExclusion: (reason) => collectors.saturationExclusions.inc({ reason }),
    countDisaggDecision: (pluginName, pluginType, modelName, decision) => {
      const model = disaggModel(modelName);
      collectors.llmdDisaggDecisions.inc({ plugin_name: pluginName, plugin_type: pluginType, model_name: model, decision_type: decision });
      collectors.schedulerDisaggDecisions.inc({ model_name: model, decision_type: decision });
    },
    countPdDecision: (pluginName, pluginType, modelName, decision) => {
      const model = disaggModel(modelName);
      collectors.llmdPdDecisions.inc({ plugin_name: pluginName, plugin_type: pluginType, model_name: model, decision_type: decision });
      collectors.schedulerPdDecisions.inc({ model_name: model, decision_type: decision });
    },
    setPrefixIndexerSize: (entries, plugin) => {
      collectors.prefixIndexerSize.set(entries);
      if (plugin !== undefined) llmdPrefixSizeSeriesOf(plugin).value = entries;
    },
    setPrefixCharactersPerToken: (charactersPerToken) => collectors.prefixCharactersPerToken.set(charactersPerToken),
    observePrefixMatch: (matchedCharacters, totalCharacters, plugin) => {
      prefixHitBytes.observe(matchedCharacters);
      if (totalCharacters > 0) prefixHitRatio.observe(matchedCharacters / totalCharacters);
      if (plugin === undefined) return;
      // llm-d-router v0.10.0 approximateprefix/metrics.go recordPrefixCacheMatch writes both, its own labelled.
      const series = llmdPrefixSeriesOf(plugin);
      series.bytes.observe(matchedCharacters);
      if (totalCharacters > 0) series.ratio.observe(matchedCharacters / totalCharacters);
    },
    countKvEvents: (pod, outcome, count) => { if (count > 0) collectors.kvEvents.inc({ model_server_pod: pod, outcome }, count); },
    countKvEventGap: (pod) => collectors.kvEventGaps.inc({ model_server_pod: pod }),
    countKvEventReplay: (pod, outcome) => collectors.kvEventReplays.inc({ model_server_pod: pod, outcome }),
    countKvIndexReset: (pod, reason) => collectors.kvIndexResets.inc({ model_server_pod: pod, reason }),
    setKvIndexBlocks: (pod, blocks) => collectors.kvIndexBlocks.set({ model_server_pod: pod }, blocks),
    observeTokenization: (seconds) => collectors.tokenizationDuration.observe(seconds),
    observePreciseMatch: (predicted, prompt) => {
      collectors.precisePredictedHitTokens.inc(predicted);
      collectors.precisePromptTokens.inc(prompt);
      if (prompt > 0) collectors.preciseHitRatio.observe(Math.min(1, predicted / prompt));
    },
    registerInflightLoad: () => void registerInflightLoad(),
    inflightLoadSeries: (producerName, endpointName, namespace, fairnessId, priority) => {
      const gauges = registerInflightLoad();
      const own = inflightSets.label(`${fairnessId}\u0000${priority}`) !== OTHER_LABEL;
      const labels = {
        endpoint_name: endpointName, namespace, producer_name: producerName,
        fairness_id: own ? fairnessId : OTHER_LABEL, priority: own ? priority : OTHER_LABEL,
      };
      return { requests: gauges.requests.child(labels), tokens: gauges.tokens.child(labels) };
    },
  };
  const forgetEndpoint: EppMetrics['forgetEndpoint'] = (endpoint) => {
    collectors.picks.removeWhere((l) => l.destination_endpoint === endpoint.key);
    pickSeries.delete(endpoint.key);
    const pod = endpoint.podName ?? endpoint.name;
    const port = String(endpoint.port);
    collectors.schedulerAttempts.removeWhere((l) => l.pod_name === pod && l.namespace === endpoint.namespace && l.port === port);
    const ofPod = (l: Readonly<Record<string, string>>): boolean => l.model_server_pod === endpoint.key;
    for (const family of [collectors.kvEvents, collectors.kvEventGaps, collectors.kvEventReplays, collectors.kvIndexResets, collectors.kvIndexBlocks]) {
      family.removeWhere(ofPod);
    }
    // A request still held there releases into its detached series, which is no longer exported.
    const ofEndpoint = (l: Readonly<Record<string, string>>): boolean => l.endpoint_name === endpoint.name && l.namespace === endpoint.namespace;
    inflight?.requests.removeWhere(ofEndpoint);
    inflight?.tokens.removeWhere(ofEndpoint);
  };
  return { registry, collectors, scheduling, forgetEndpoint };
}

/**
 * Drops the series of a flow the flow-control GC collected (`requestcontrol/flow-series-gc.ts`), as llm-d-router v0.10.0
 * `pkg/epp/metrics/metrics.go` DeleteFlowControlFlowSeries does: every series labelled with this `fairness_id` and
 * `priority` of the request queue-duration and enqueue-duration histograms and the queue size and bytes gauges. Their
 * `llm_d_epp_flow_control_*` twins are derived from these families at scrape time, so they go too.
 */
export function forgetFlowSeries(collectors: EppCollectors, fairnessId: string, priority: string): void {
  const ofFlow = (labels: Readonly<Record<string, string>>): boolean => labels.fairness_id === fairnessId && labels.priority === priority;
  collectors.gieFlowControlQueueDuration.removeWhere(ofFlow);
  collectors.gieFlowControlEnqueueDuration.removeWhere(ofFlow);
  collectors.gieFlowControlQueueSize.removeWhere(ofFlow);
  collectors.gieFlowControlQueueBytes.removeWhere(ofFlow);
}

/** What a registered collector's `get()` yields, as the Registry renders it. */
interface ExportedFamily {
  readonly name: string;
  readonly type: string;
  readonly aggregator: string;
  get(): Promise<{ values: readonly { labels: Record<string, string | number>; value: number; metricName?: string }[] }>;
}

/** GIE v1.0's labels for a v1.5 series: no `priority` (series that differ only in it are summed); v1.0's error codes. */
function gieV1_0Labels(labels: Record<string, string | number>): Record<string, string | number> {
  const { priority: _priority, ...rest } = labels;
  const code = rest['error_code'];
  if (typeof code === 'string' && GIE_V1_0_ERROR_CODES[code] !== undefined) rest['error_code'] = GIE_V1_0_ERROR_CODES[code];
  return rest;
}

/**
 * A family under another name, read from the family it mirrors when /metrics is rendered: the request path records
 * each value once, and the copy costs only at scrape time. Used for GIE v1.0's `inference_model_*` families
 * (`GIE_V1_0_REQUEST_METRICS`) and llm-d's `llm_d_epp_*` twins (`LLMD_TWIN_METRICS`). `relabel` maps a series'
 * labels; series it maps to the same labels are summed.
 */
class RenamedFamily {
  readonly type: string;
  readonly aggregator: string;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly source: ExportedFamily,
    private readonly relabel: (labels: Record<string, string | number>) => Record<string, string | number>,
    /** Applied to each value after summing (gauges only: llm-d rounds its pool averages). */
    private readonly mapValue?: (value: number) => number,
  ) {
    this.type = source.type;
    this.aggregator = source.aggregator;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName?: string }[] }> {
    const { values } = await this.source.get();
    const merged = new Map<string, { labels: Record<string, string | number>; value: number; metricName?: string }>();
    for (const v of values) {
      const labels = this.relabel(v.labels);
      const metricName = v.metricName === undefined ? undefined : this.name + v.metricName.slice(this.source.name.length);
      const key = `${metricName ?? ''}\u0000${JSON.stringify(labels)}`;
      const seen = merged.get(key);
      if (seen !== undefined) seen.value += v.value;
      else merged.set(key, metricName === undefined ? { labels, value: v.value } : { labels, value: v.value, metricName });
    }
    const out = [...merged.values()];
    if (this.mapValue !== undefined) for (const v of out) v.value = this.mapValue(v.value);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: out };
  }

  /** The Registry resets every collector on `resetMetrics()`; this one holds nothing of its own. */
  reset(): void {}
}
