import type { PluginType, ResolvedPluginParameters } from '../config';
import type { Plugin, PluginHandle } from './framework';
import { ActiveRequestScorer, KvCacheUtilizationScorer, LoadAwareScorer, QueueScorer } from './plugins/load-scorers';
import { ByLabelFilter, createDecodeFilter, createPrefillFilter, SaturationFilter } from './plugins/filters';
import { MaxScorePicker, RandomPicker } from './plugins/pickers';
import { PrefixCacheScorer } from './plugins/prefix-cache-scorer';
import { SingleProfileHandler } from './plugins/profile-handlers';
import { SessionAffinityFilter, SessionAffinityScorer } from './plugins/session-affinity';

/** Builds one plugin instance from its config name, its parameters with defaults filled, and the shared handle. */
export type PluginFactory<T extends PluginType> = (
  name: string,
  parameters: ResolvedPluginParameters<T>,
  handle: PluginHandle,
) => Plugin;

/** One factory per type of the config catalogue; the mapped type makes a missing or extra type a compile error. */
export type PluginRegistry = { readonly [T in PluginType]: PluginFactory<T> };

export const BUILTIN_PLUGIN_REGISTRY: PluginRegistry = {
  'single-profile-handler': (name) => new SingleProfileHandler(name),
  'max-score-picker': (name, parameters, handle) => new MaxScorePicker(name, parameters, handle.random),
  'random-picker': (name, parameters, handle) => new RandomPicker(name, parameters, handle.random),
  'prefix-cache-scorer': (name, parameters, handle) => new PrefixCacheScorer(name, parameters, handle.metrics),
  'queue-scorer': (name) => new QueueScorer(name),
  'kv-cache-utilization-scorer': (name) => new KvCacheUtilizationScorer(name),
  'kv-cache-scorer': (name) => new KvCacheUtilizationScorer(name, 'kv-cache-scorer'),
  'load-aware-scorer': (name, parameters) => new LoadAwareScorer(name, parameters),
  'active-request-scorer': (name) => new ActiveRequestScorer(name),
  'session-affinity-scorer': (name) => new SessionAffinityScorer(name),
  'session-affinity-filter': (name, parameters, handle) => new SessionAffinityFilter(name, parameters, handle),
  'decode-filter': (name) => createDecodeFilter(name),
  'prefill-filter': (name) => createPrefillFilter(name),
  'by-label': (name, parameters) => new ByLabelFilter(name, parameters),
  'saturation-filter': (name, parameters, handle) => new SaturationFilter(name, parameters, handle),
};
