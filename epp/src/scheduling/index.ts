/** The scheduling framework, kvroute's plugins and the Scheduler built from an EndpointPickerConfig. */
export { Scheduler, buildScheduler, type SchedulerOptions } from './scheduler';
export {
  SchedulingError,
  type LLMRequest,
  type SchedulingResult,
  type SchedulingErrorReason,
} from './types';
export {
  CycleState,
  stateKey,
  implementedKinds,
  isEndpointRemovalAware,
  isFilter,
  isPicker,
  isPostCycle,
  isPostResponse,
  isPreRequest,
  isProfileHandler,
  isScorer,
  type CycleContext,
  type EndpointRemovalAware,
  type Filter,
  type Picker,
  type Plugin,
  type PluginHandle,
  type PostCycle,
  type PostResponse,
  type PreRequest,
  type ProfileHandler,
  type ProfileOutcome,
  type ProfileRunResult,
  type ResponseInfo,
  type ScoredEndpoint,
  type Scorer,
  type StateKey,
} from './framework';
export {
  NOOP_SCHEDULING_METRICS,
  type ExtensionPoint,
  type SaturationExclusionReason,
  type SchedulingMetrics,
  type SessionAffinityOutcome,
} from './metrics-hooks';
export { BUILTIN_PLUGIN_REGISTRY, type PluginFactory, type PluginRegistry } from './registry';
export { PrefixCacheScorer, type PrefixCacheStats } from './plugins/prefix-cache-scorer';
export { PrefixBlockIndex } from './plugins/prefix-index';
export { hashPromptBlocks } from './plugins/prefix-hash';
export { SessionAffinityFilter, SessionAffinityScorer, type SessionAffinityStats } from './plugins/session-affinity';
export { SaturationFilter, ByLabelFilter, ROLE_LABEL } from './plugins/filters';
