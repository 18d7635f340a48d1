import type { ParametersOf } from '../scheduling/plugin';
import type { Duration } from './duration';
import type { PluginDefinitions, PluginType } from './catalogue';

/**
 * The EPP's scheduling configuration: the same `EndpointPickerConfig` document GIE v0.5.1 and llm-d v0.2 load, so
 * their sample configs are valid here. The cdk8s constructs render it into the EPP's ConfigMap and the EPP loads it
 * at start-up; both go through `validateEndpointPickerConfig`.
 */

/**
 * The group kvroute renders its own configs with: GIE's, which llm-d-router v0.10.0 still decodes (as deprecated, see
 * `LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION`) and every GIE release reads.
 */
export const ENDPOINT_PICKER_CONFIG_API_VERSION = 'inference.networking.x-k8s.io/v1alpha1';
/**
 * llm-d-router's own group from v0.10.0 (`apix/config/v1alpha1/zz_generated.register.go` @ v0.10.0: GroupName
 * "llm-d.ai"); its loader (`pkg/epp/config/loader/configloader.go` @ v0.10.0) decodes GIE's group too and logs
 * "DEPRECATION: apiVersion inference.networking.x-k8s.io/v1alpha1/EndpointPickerConfig is deprecated".
 */
export const LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION = 'llm-d.ai/v1alpha1';
/** Every apiVersion the loader accepts; a config keeps the one it was written with. */
export const ENDPOINT_PICKER_CONFIG_API_VERSIONS = [LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION, ENDPOINT_PICKER_CONFIG_API_VERSION] as const;
export type EndpointPickerConfigApiVersion = (typeof ENDPOINT_PICKER_CONFIG_API_VERSIONS)[number];
export const ENDPOINT_PICKER_CONFIG_KIND = 'EndpointPickerConfig';

export interface EndpointPickerConfig {
  /** `inference.networking.x-k8s.io/v1alpha1` (GIE's, kvroute's default) or `llm-d.ai/v1alpha1` (llm-d-router v0.10.0+). */
  apiVersion: EndpointPickerConfigApiVersion;
  kind: typeof ENDPOINT_PICKER_CONFIG_KIND;
  /** Every plugin is instantiated once, whether or not a profile references it. */
  plugins: PluginSpec[];
  /**
   * The profiles the profile handler runs. Empty → one `default` profile with every filter, scorer and picker in
   * declaration order (GIE's later "phase two" defaulting).
   */
  schedulingProfiles: SchedulingProfileSpec[];
  /**
   * GIE's and llm-d-router's feature switches (`KNOWN_FEATURE_GATES`): `name`, `name=true` or `name=false`, a later
   * entry winning. kvroute runs flow control whether or not `flowControl` is on; on, it gives GIE's every-request flow
   * control series. The others change nothing here. Kept as given, only when given; read with `featureGateEnabled`.
   */
  featureGates?: string[];
  /** Flow control's settings (`FlowControlConfig`); kept only when given. */
  flowControl?: FlowControlConfig;
  /**
   * GIE v1.5.0's data layer (`apix/config/v1alpha1` DataLayerConfig): data sources (`metrics-data-source`,
   * `endpoint-notification-source`) and the extractors reading them (`core-metrics-extractor`, or llm-d's
   * `precise-prefix-cache-scorer` reading pod events). kvroute's datastore discovers and scrapes pods itself; the
   * references are checked and kept. Kept only when given.
   */
  dataLayer?: DataLayerConfig;
  /**
   * GIE v1.5.0's request parser (`ParserConfig`), which reads every request whatever its path: `openai-parser` (the
   * default) or `passthrough-parser` (bodies not read); `anthropic-parser` and `vllmhttp-parser` are accepted too. Only
   * in a config in GIE's form (GIE's group, no `requestHandler`); kept only when given.
   */
  parser?: PluginRefConfig;
  /**
   * GIE v1.5.0's pool saturation detector (`SaturationDetectorConfig`): a `utilization-detector` or
   * `concurrency-detector` plugin. When set, request control asks it before each cycle whether the pool is full, and
   * a full pool's requests wait in flow control. A config without the section but with a plugin named
   * `utilization-detector` uses that one, as GIE does; with neither, kvroute has no pool detector and load filters
   * (`saturation-filter`) decide, where GIE would add a default `utilization-detector`.
   */
  saturationDetector?: PluginRefConfig;
  /**
   * llm-d-router v0.10.0's `requestHandler: {parsers: [{pluginRef}]}`: the parsers a request's path picks from, first
   * claim first (`pkg/epp/handlers/parsers.go`; `requestcontrol/request-parsers.ts`), a path none claims answered 400.
   * In every config in llm-d's form (this section given, or llm-d's group): the list as upstream keeps it, or its
   * default (openai, anthropic and vllmhttp parsers). Never beside `parser`.
   */
  requestHandler?: { parsers: PluginRefConfig[] };
}

export interface PluginRefConfig {
  /** The `name` of an entry in `plugins`. */
  pluginRef: string;
}

export interface DataLayerConfig {
  /** Data sources and their extractors. @default [] */
  sources: DataLayerSourceConfig[];
  /**
   * llm-d-router v0.10.0's `injectDefaults` (apix/config/v1alpha1 DataLayerConfig, #941): whether the default metrics
   * source is added when `sources` lists no `metrics-data-source`. `false` with none listed means pods' metrics are not
   * scraped at all (load-aware scorers then see every pod idle). Kept only when given. @default true
   */
  injectDefaults?: boolean;
  /**
   * llm-d-router v0.10.0's `discovery: {pluginRef}`: a `file-discovery` plugin supplies the pool's endpoints instead of
   * an InferencePool (`docs/discovery.md`); `--pool-name` is then optional (default "epp") and `--endpoints` refused.
   * Kept only when given.
   */
  discovery?: PluginRefConfig;
  /**
   * llm-d-router v0.10.0's `crossReplicaSyncInterval`: how often replicas publish state to a cross-replica syncer.
   * Checked as a duration and kept; kvroute has no such syncer (its replicas share sessions through the session store),
   * and upstream uses the interval only with `crossReplicaSyncerPluginRef`, which no v0.10.0 plugin satisfies.
   */
  crossReplicaSyncInterval?: string;
}

export interface DataLayerSourceConfig {
  /** A data source plugin: `metrics-data-source` or `endpoint-notification-source`. */
  pluginRef: string;
  /** Plugins reading this source: `core-metrics-extractor` for metrics; `precise-prefix-cache-scorer` for pod events. */
  extractors: PluginRefConfig[];
}

export interface SchedulingProfileSpec {
  /** Unique among profiles. */
  name: string;
  /**
   * The plugins this profile runs, by name. Filters run in the order listed; all scorers run and their weighted
   * scores are summed; at most one picker (defaults to `max-score-picker`).
   */
  plugins: SchedulingProfilePluginRef[];
}

export interface SchedulingProfilePluginRef {
  /** The `name` of an entry in `plugins` (which defaults to its `type`). */
  pluginRef: string;
  /**
   * Scorers only: the multiplier of this scorer's [0, 1] score in the profile's total. Any finite number >= 0 —
   * upstream declares an integer but llm-d samples write `3.0`, and fractional weights are harmless here.
   * @default 1
   */
  weight?: number;
}

/** The parameters each plugin type accepts, as its module declares them. */
export type PluginParametersByType = { [D in PluginDefinitions as D['type']]: ParametersOf<D> };

/** Parameters with every default filled in, as `validateEndpointPickerConfig` returns them and factories receive them. */
export type ResolvedPluginParameters<T extends PluginType> = Required<PluginParametersByType[T]>;

interface PluginSpecOf<T extends PluginType> {
  type: T;
  /** Unique among plugins; profiles reference it. @default the type */
  name?: string;
  /** Type-specific settings; unknown fields are errors. */
  parameters?: PluginParametersByType[T];
}

/** One plugin instance, discriminated on `type` so each type's `parameters` are checked. */
export type PluginSpec = { [T in PluginType]: PluginSpecOf<T> }[PluginType];

/** The spec of one given type, e.g. `PluginSpecFor<'prefix-cache-scorer'>`. */
export type PluginSpecFor<T extends PluginType> = PluginSpecOf<T>;

/**
 * The EPP's flow control (issue 9): the bounded queue a request waits in when every candidate is saturated, instead of
 * an immediate 429. kvroute turns it on by default. The key and `defaultRequestTTL` are GIE's (`apix/config/v1alpha1/
 * endpointpickerconfig_types.go`, `FlowControlConfig`, late 2025); GIE bounds its queue in bytes per priority band and
 * overall (`limits.maxBytes`), kvroute in requests (`maxQueued`) and body bytes overall (`maxQueuedBytes`); the
 * `objectives` table gives priorities where the cluster has no InferenceObjective of that name (static pools).
 */
export interface FlowControlConfig {
  /** kvroute's switch: false answers 429 at once when every pod is saturated. `--flow-control` overrides it. @default true */
  enabled?: boolean;
  /** Requests that may wait at once, all priorities together. `--flow-control-max-queued`. @default 1024 */
  maxQueued?: number;
  /**
   * Request body bytes that may wait at once, all priorities together (GIE's global `limits.maxBytes`, here an integer).
   * `--flow-control-max-queued-bytes`. @default 134217728 (128 MiB)
   */
  maxQueuedBytes?: number;
  /** How long a request may wait before a 429 (GIE's name). `--flow-control-max-wait`. @default "30s" */
  defaultRequestTTL?: Duration;
  /** Most waiting requests released per dispatch tick (pacing). `--flow-control-dispatch-per-tick`. @default 4 */
  dispatchPerTick?: number;
  /** How often waiting requests are retried. `--flow-control-dispatch-interval`. @default "50ms" */
  dispatchInterval?: Duration;
  /**
   * kvroute's: the highest priority `x-kvroute-priority` may give a request (an integer in ±100); a higher value counts
   * as this one. The header comes from the client unless the gateway sets or strips it, so the default lets a client
   * lower its own priority (mark itself sheddable) but not raise it; raise this where the gateway sets the header.
   * `--flow-control-max-header-priority`. @default 0
   */
  maxHeaderPriority?: number;
  /**
   * Priority by InferenceObjective name, as the request's `x-gateway-inference-objective` header names it (GIE's
   * `InferenceObjective.spec.priority`; negative = sheddable). A watched InferenceObjective of the same name wins; an
   * objective found in neither has priority 0.
   */
  objectives?: Record<string, number>;
  /**
   * kvroute's: a request without a fairness id (`x-gateway-inference-fairness-id`, llm-d's alias, an agent identity)
   * is its session's flow (`x-session-id`, `x-session-token`), else a flow of its own — issue 9's fairness across
   * sessions; and a band that names no fairness policy takes turns (round robin). false: GIE v1.5.0's, every such
   * request in one flow, `default-flow` (`handlers/request.go`, `metadata/consts.go` DefaultFairnessID), and such a
   * band global-strict (`flowcontrol/registry/config.go` DefaultFairnessPolicyRef). @default true, false in a config written in GIE's terms: one whose
   * `flowControl` has GIE's (or llm-d-router's) keys (`maxRequests`, `maxBytes`, `priorityBands`,
   * `defaultPriorityBand`, `defaultNegativePriorityBand`, `usageLimitPolicyPluginRef`, `saturationDetector`,
   * `enableEviction`: the loader then writes false), or that turns GIE's `flowControl` feature gate on.
   */
  sessionFairness?: boolean;
  /** GIE's name for `maxQueued`, a quantity (`100`, `"1k"`); read into `maxQueued` (give one of the two). */
  maxRequests?: number | string;
  /** GIE's name for `maxQueuedBytes`, a quantity (`"1Gi"`, `500000000`); read into `maxQueuedBytes` (give one of the two). */
  maxBytes?: number | string;
  /** Bounds and fairness of given priority levels (GIE v1.5.0's `priorityBands`); priorities must be distinct. */
  priorityBands?: PriorityBandConfig[];
  /** Bounds and fairness of every priority level `priorityBands` does not list (GIE's `defaultPriorityBand`). */
  defaultPriorityBand?: Omit<PriorityBandConfig, 'priority'> & { priority?: number };
  /**
   * Bounds and fairness of every level below 0 that `priorityBands` does not list (llm-d-router v0.10.0
   * `defaultNegativePriorityBand`, `apix/config/v1alpha1/endpointpickerconfig_types.go`); without it they take
   * `defaultPriorityBand`.
   */
  defaultNegativePriorityBand?: Omit<PriorityBandConfig, 'priority'> & { priority?: number };
  /**
   * A usage-limit policy plugin: the detector's saturation at which flow control holds each priority (GIE's
   * `usageLimitPolicyPluginRef`): a `static-usage-limit-policy` (one threshold), or llm-d-router v0.10.0's per-band
   * `priority-holdback-policy` or `soft-reflective-ceiling-policy`. @default a static 1.0
   */
  usageLimitPolicyPluginRef?: string;
  /**
   * llm-d-router v0.9.0+'s place for the pool's saturation detector: the same as the top-level `saturationDetector`,
   * into which the loader reads it (both naming different detectors is an error). Never in a validated config.
   */
  saturationDetector?: PluginRefConfig;
  /**
   * llm-d-router v0.10.0's in-flight eviction of sheddable requests. kvroute does not evict dispatched requests: only
   * `false` (upstream's default) is accepted. Never in a validated config.
   */
  enableEviction?: false;
}

/**
 * One priority level's settings (GIE v1.5.0 `PriorityBandConfig`). The limits count waiting requests (GIE's registry
 * counts the requests its queues hold, `flowcontrol/registry`); omitted means no bound of the band's own, the global
 * `maxQueued` and `maxQueuedBytes` still apply.
 */
export interface PriorityBandConfig {
  /** The priority level (higher is served first; negative is sheddable). */
  priority: number;
  /** Requests that may wait at this level at once; a quantity, rendered as an integer. */
  maxRequests?: number | string;
  /** Request body bytes that may wait at this level at once; a quantity, rendered as an integer. */
  maxBytes?: number | string;
  /**
   * How the level's flows share it: the name of a `global-strict-fairness-policy` or `round-robin-fairness-policy`
   * plugin, or either type name. @default global-strict (GIE's), round robin where `sessionFairness` is true
   */
  fairnessPolicyRef?: string;
  /** Order within a flow: `fcfs-ordering-policy` (by name or type), the only one kvroute has. @default FCFS */
  orderingPolicyRef?: string;
}

/**
 * The gates kvroute accepts in `featureGates`: llm-d-router v0.10.0 registers `flowControl` (default off) and
 * `haPopulateNonLeaderDatastore` (default on) (`cmd/epp/runner/runner.go` @ v0.10.0 L752-753); GIE v1.5.0 registered
 * `dataLayer`, `enableLegacyMetrics` and `flowControl` (`cmd/epp/runner/runner.go` @ v1.5.0). llm-d-router dropped
 * `dataLayer` (v0.9.0 still registers it) and `enableLegacyMetrics`; kvroute keeps accepting them, so older configs
 * load. Any other name is an error, there and here. An entry is a name, `name=true` or `name=false`.
 */
export const KNOWN_FEATURE_GATES = ['flowControl', 'dataLayer', 'enableLegacyMetrics', 'haPopulateNonLeaderDatastore'] as const;
export type FeatureGate = (typeof KNOWN_FEATURE_GATES)[number];

/**
 * Each gate's value when the config does not set it: upstream's registered defaults (llm-d-router v0.10.0
 * `cmd/epp/runner/runner.go` L752-753 for the first two; GIE v1.5.0 registered the last two off).
 */
export const FEATURE_GATE_DEFAULTS: Readonly<Record<FeatureGate, boolean>> = {
  flowControl: false,
  haPopulateNonLeaderDatastore: true,
  dataLayer: false,
  enableLegacyMetrics: false,
};
