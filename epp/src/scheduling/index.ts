/** The scheduling framework, kvroute's plugins and the Scheduler built from an EndpointPickerConfig. */
export { Scheduler, PluginSet, buildPlugins, buildScheduler, type PluginSetOptions, type SchedulerOptions } from './scheduler';
export { SchedulingError, type LLMRequest, type SchedulingResult, type SchedulingErrorReason } from './types';
export {
  CycleState,
  stateKey,
  SILENT_PLUGIN_LOGGER,
  type CycleContext,
  type Filter,
  type Picker,
  type Plugin,
  type PluginHandle,
  type PluginLogger,
  type PostCycle,
  type ProfileHandler,
  type ProfileOutcome,
  type ProfileRunResult,
  type ScoredEndpoint,
  type Scorer,
  type StateKey,
} from './framework';
export {
  definePlugin,
  aliasOf,
  parameters,
  createPlugin,
  NO_PARAMETERS,
  PROFILE_KINDS,
  type ParameterSpec,
  type ParametersOf,
  type PluginDefinition,
  type PluginInstance,
  type PluginKind,
  type PluginKindInterfaces,
} from './plugin';
export {
  NOOP_SCHEDULING_METRICS,
  type ExtensionPoint,
  type SaturationExclusionReason,
  type SchedulingMetrics,
  type SessionAffinityOutcome,
} from './metrics-hooks';
