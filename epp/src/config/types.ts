import type { ParametersOf } from '../scheduling/plugin';
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
