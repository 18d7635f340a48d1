import type { ParametersOf } from '../scheduling/plugin';
import type { Duration } from './duration';
import type { PluginDefinitions, PluginType } from './catalogue';

/**
 * The EPP's scheduling configuration: the same `EndpointPickerConfig` document GIE v0.5.1 and llm-d v0.2 load, so
 * their sample configs are valid here. The cdk8s constructs render it into the EPP's ConfigMap and the EPP loads it
 * at start-up; both go through `validateEndpointPickerConfig`.
 */

export const ENDPOINT_PICKER_CONFIG_API_VERSION = 'inference.networking.x-k8s.io/v1alpha1';
export const ENDPOINT_PICKER_CONFIG_KIND = 'EndpointPickerConfig';

export interface EndpointPickerConfig {
  apiVersion: typeof ENDPOINT_PICKER_CONFIG_API_VERSION;
  kind: typeof ENDPOINT_PICKER_CONFIG_KIND;
  /** Every plugin is instantiated once, whether or not a profile references it. */
  plugins: PluginSpec[];
  /**
   * The profiles the profile handler runs. Empty → one `default` profile with every filter, scorer and picker in
   * declaration order (GIE's later "phase two" defaulting).
   */
  schedulingProfiles: SchedulingProfileSpec[];
  /**
   * GIE's experimental-feature switches. kvroute knows `flowControl` only, which it runs by default, so listing it
   * changes nothing; it is accepted so GIE configs load. Kept only when given.
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
  /** GIE v1.5.0's request parser (`ParserConfig`): kvroute parses OpenAI bodies only (`openai-parser`). Kept only when given. */
  parser?: PluginRefConfig;
}

export interface PluginRefConfig {
  /** The `name` of an entry in `plugins`. */
  pluginRef: string;
}

export interface DataLayerConfig {
  sources: DataLayerSourceConfig[];
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
 * overall (`limits.maxBytes`), kvroute in requests (`maxQueued`) and body bytes overall (`maxQueuedBytes`), and reads
 * priorities from a table here because it does not watch InferenceObjectives.
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
   * Priority by InferenceObjective name, as the request's `x-gateway-inference-objective` header names it (GIE's
   * `InferenceObjective.spec.priority`; negative = sheddable). An objective not listed has priority 0.
   */
  objectives?: Record<string, number>;
}

/**
 * The gates GIE v1.5.0 registers (`cmd/epp/runner/runner.go`: `dataLayer`, `enableLegacyMetrics`, `flowControl`); any
 * other name is an error there and here. kvroute runs flow control by default and always has its data layer, so
 * naming a gate changes nothing.
 */
export const KNOWN_FEATURE_GATES = ['flowControl', 'dataLayer', 'enableLegacyMetrics'] as const;
