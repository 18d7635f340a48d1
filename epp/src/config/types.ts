import type { PluginType } from './catalogue';
import type { Duration } from './duration';

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

/** Plugins without parameters accept an absent or empty `parameters` map. */
export type NoParameters = Record<string, never>;

export interface PickerParameters {
  /**
   * How many endpoints the picker returns, best first. The first is the target; the others are reported in
   * `SchedulingResult.targets` for callers that want fallbacks.
   * @default 1
   */
  maxNumOfEndpoints?: number;
}

export interface PrefixCacheScorerParameters {
  /**
   * `estimate` builds the prefix index from kvroute's own routing history. llm-d's `cache_tracking` (the index fed by
   * vLLM KV events) is rejected with an explanation: kvroute does not consume KV events yet.
   * @default "estimate"
   */
  mode?: 'estimate';
  /** Characters per hashed block; 64 characters ≈ 16 tokens, vLLM's default block size. @default 64 */
  hashBlockSize?: number;
  /** Prompt blocks considered, from the start; longer prompts are truncated. @default 256 */
  maxPrefixBlocksToMatch?: number;
  /**
   * Block hashes remembered per endpoint (LRU). 31,250 ≈ (80 GB − 16 GB of weights) / 128 KB of KV per token
   * ≈ 500k tokens ≈ 2M characters ÷ 64 (GIE's sizing).
   * @default 31250
   */
  lruCapacityPerServer?: number;
}

export interface LoadAwareScorerParameters {
  /** Waiting-queue length at which the score reaches 0. @default 128 */
  threshold?: number;
}

export interface ActiveRequestScorerParameters {
  /**
   * Accepted so llm-d v0.3 configs load unchanged. kvroute's in-flight count lives in the datastore, which ends each
   * request when its stream ends, so the scorer does not use this timeout.
   * @default "2m"
   */
  requestTimeout?: Duration;
}

export interface SessionAffinityFilterParameters {
  /**
   * Request headers that carry a session id, in priority order (the first present wins). The value is an opaque key,
   * so llm-d's `x-session-token` works too.
   * @default ["x-session-id", "x-session-token"]
   */
  headers?: string[];
  /** A binding expires after this long without a request of its session. @default "30m" */
  ttl?: Duration;
  /** Sessions remembered at most; the least recently used binding is dropped beyond it. @default 65536 */
  capacity?: number;
}

export interface SaturationFilterParameters {
  /** Drop endpoints whose `vllm:num_requests_waiting` exceeds this. @default 5 */
  queueDepthThreshold?: number;
  /** Drop endpoints whose KV-cache usage (0..1) exceeds this. @default 0.8 */
  kvCacheUtilThreshold?: number;
  /** Drop endpoints whose last successful scrape is older than this (never scraped counts as stale). @default "200ms" */
  metricsStalenessThreshold?: Duration;
  /**
   * Drop endpoints whose last N scrapes in a row failed, even if the last good data is still fresh: a refused
   * connection fails fast, well before the data goes stale.
   * @default 3
   */
  maxConsecutiveScrapeFailures?: number;
}

export interface ByLabelFilterParameters {
  /** The pod label to test. */
  label: string;
  /** Label values that keep an endpoint. @default [] */
  validValues?: string[];
  /** Keep endpoints that do not have the label at all. @default false */
  allowsNoLabel?: boolean;
}

/** The parameters each plugin type accepts. */
export interface PluginParametersByType {
  'single-profile-handler': NoParameters;
  'max-score-picker': PickerParameters;
  'random-picker': PickerParameters;
  'prefix-cache-scorer': PrefixCacheScorerParameters;
  'queue-scorer': NoParameters;
  'kv-cache-utilization-scorer': NoParameters;
  'kv-cache-scorer': NoParameters;
  'load-aware-scorer': LoadAwareScorerParameters;
  'active-request-scorer': ActiveRequestScorerParameters;
  'session-affinity-scorer': NoParameters;
  'session-affinity-filter': SessionAffinityFilterParameters;
  'decode-filter': NoParameters;
  'prefill-filter': NoParameters;
  'by-label': ByLabelFilterParameters;
  'saturation-filter': SaturationFilterParameters;
}

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
