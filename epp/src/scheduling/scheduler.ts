import { performance } from 'node:perf_hooks';
import {
  resolvePluginParameters,
  validateEndpointPickerConfig,
  type EndpointPickerConfig,
  type PluginType,
  type SchedulingProfileSpec,
} from '../config';
import type { Endpoint, EndpointSnapshot } from '../datastore/types';
import {
  CycleState,
  isEndpointRemovalAware,
  isFilter,
  isPicker,
  isPostCycle,
  isPostResponse,
  isPreRequest,
  isProfileHandler,
  isScorer,
  type CycleContext,
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
  type Scorer,
} from './framework';
import { NOOP_SCHEDULING_METRICS, type ExtensionPoint, type SchedulingMetrics } from './metrics-hooks';
import { BUILTIN_PLUGIN_REGISTRY, type PluginFactory, type PluginRegistry } from './registry';
import { SchedulingError, type LLMRequest, type SchedulingResult } from './types';

export interface SchedulerOptions {
  /** Wall clock in ms for TTLs and metric staleness. @default Date.now */
  readonly now?: () => number;
  /** Uniform [0, 1) source for tie-breaks and random picks. @default Math.random */
  readonly random?: () => number;
  /** Where scheduling metrics go. @default NOOP_SCHEDULING_METRICS */
  readonly metrics?: SchedulingMetrics;
  /** Monotonic seconds for timing plugin calls. @default performance.now() / 1000 */
  readonly monotonicSeconds?: () => number;
  /** Factories by plugin type. @default BUILTIN_PLUGIN_REGISTRY */
  readonly registry?: PluginRegistry;
}

interface WeightedScorer {
  readonly scorer: Scorer;
  readonly weight: number;
}

/** A profile resolved to plugin instances, in the order its config lists them. */
interface SchedulerProfile {
  readonly name: string;
  readonly filters: readonly Filter[];
  readonly scorers: readonly WeightedScorer[];
  readonly picker: Picker;
  readonly postCycles: readonly PostCycle[];
}

/** Keeps one misbehaving scorer from overriding the weights: NaN counts as 0, the rest is clamped to [0, 1]. */
function clampScore(score: number | undefined): number {
  if (score === undefined || !(score > 0)) return 0;
  return score > 1 ? 1 : score;
}

/**
 * Picks the endpoint for each request by running the profiles of an EndpointPickerConfig. Stateful plugins (the
 * prefix index, session bindings) live as long as the Scheduler, so build one per EPP process and keep it.
 */
export class Scheduler {
  private readonly profileNames: readonly string[];
  private readonly preRequestPlugins: readonly PreRequest[];
  private readonly postResponsePlugins: readonly PostResponse[];

  constructor(
    /** The normalized config the scheduler was built from. */
    readonly config: EndpointPickerConfig,
    private readonly plugins: ReadonlyMap<string, Plugin>,
    private readonly profileHandler: ProfileHandler,
    private readonly profiles: ReadonlyMap<string, SchedulerProfile>,
    private readonly metrics: SchedulingMetrics,
    private readonly monotonicSeconds: () => number,
  ) {
    this.profileNames = [...profiles.keys()];
    // Request hooks are attached globally, whether or not a profile references the plugin (as in GIE).
    this.preRequestPlugins = [...plugins.values()].filter(isPreRequest);
    this.postResponsePlugins = [...plugins.values()].filter(isPostResponse);
  }

  /**
   * Chooses the target for `request` among `candidates` (the ready endpoints, snapshotted once for this request).
   * @throws SchedulingError 'no-endpoints' when there are no candidates or an eligibility filter (e.g. roles) leaves
   *   none; 'saturated' when a load filter leaves none. Other errors are plugin bugs.
   */
  schedule(request: LLMRequest, candidates: readonly EndpointSnapshot[]): SchedulingResult {
    const started = this.monotonicSeconds();
    try {
      if (candidates.length === 0) throw new SchedulingError('no-endpoints', 'no ready endpoint in the pool');
      const cycle: CycleContext = { request, state: new CycleState() };
      const outcomes = this.runProfiles(cycle, candidates);
      const { primaryProfile } = this.timed('ProfileHandler', this.profileHandler.name, () =>
        this.profileHandler.processResults(cycle, outcomes),
      );
      const outcome = outcomes.get(primaryProfile);
      if (outcome === undefined) throw new Error(`profile handler chose profile "${primaryProfile}", which did not run`);
      if (outcome instanceof SchedulingError) throw outcome;
      const target = outcome.targets[0]!;
      this.metrics.countPick(target.endpoint.key);
      return { target, targets: outcome.targets, profile: primaryProfile, scores: outcome.scores };
    } catch (error) {
      if (error instanceof SchedulingError) this.metrics.countSchedulingFailure(error.reason);
      throw error;
    } finally {
      this.metrics.observeSchedulingDuration(this.monotonicSeconds() - started);
    }
  }

  /** Runs every PreRequest plugin; request control calls it just before forwarding to `result.target`. */
  preRequest(request: LLMRequest, result: SchedulingResult): void {
    for (const plugin of this.preRequestPlugins) {
      this.timed('PreRequest', plugin.name, () => plugin.preRequest(request, result));
    }
  }

  /** Runs every PostResponse plugin at the target's response headers; returns the headers they want set. */
  postResponse(request: LLMRequest, response: ResponseInfo, target: Endpoint): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const plugin of this.postResponsePlugins) {
      const added = this.timed('PostResponse', plugin.name, () => plugin.postResponse(request, response, target));
      if (added !== undefined) Object.assign(headers, added);
    }
    return headers;
  }

  /** Tells stateful plugins an endpoint left the pool, so e.g. the prefix index stops crediting it. */
  removeEndpoint(endpointKey: string): void {
    for (const plugin of this.plugins.values()) {
      if (isEndpointRemovalAware(plugin)) plugin.removeEndpoint(endpointKey);
    }
  }

  /** The plugin instance configured under `name` (for stats and tests). */
  plugin(name: string): Plugin | undefined {
    return this.plugins.get(name);
  }

  private runProfiles(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): Map<string, ProfileOutcome> {
    const outcomes = new Map<string, ProfileOutcome>();
    // A handler that keeps asking for profiles would spin forever; each profile running once per round bounds it.
    for (let round = 0; round <= this.profileNames.length; round++) {
      const next = this.timed('ProfileHandler', this.profileHandler.name, () =>
        this.profileHandler.pickProfiles(cycle, this.profileNames, outcomes),
      );
      if (next.length === 0) return outcomes;
      for (const name of next) {
        const profile = this.profiles.get(name);
        if (profile === undefined) throw new Error(`profile handler asked for unknown profile "${name}"`);
        outcomes.set(name, this.runProfile(profile, cycle, candidates));
      }
    }
    throw new Error(`profile handler ${this.profileHandler.name} did not stop picking profiles`);
  }

  private runProfile(profile: SchedulerProfile, cycle: CycleContext, candidates: readonly EndpointSnapshot[]): ProfileOutcome {
    let remaining = candidates;
    for (const filter of profile.filters) {
      const before = remaining;
      remaining = this.timed('Filter', filter.name, () => filter.filter(cycle, before));
      if (remaining.length === 0) {
        return new SchedulingError(
          filter.emptyResultReason,
          `${filter.name} left none of ${before.length} candidate endpoint(s) (profile "${profile.name}")`,
        );
      }
    }

    const totals = new Float64Array(remaining.length);
    for (const { scorer, weight } of profile.scorers) {
      const scores = this.timed('Scorer', scorer.name, () => scorer.score(cycle, remaining));
      for (let i = 0; i < totals.length; i++) totals[i] += clampScore(scores[i]) * weight;
    }
    const scored = remaining.map((endpoint, i) => ({ endpoint, score: totals[i]! }));

    const targets = this.timed('Picker', profile.picker.name, () => profile.picker.pick(cycle, scored));
    if (targets.length === 0) {
      return new SchedulingError('no-endpoints', `${profile.picker.name} picked nothing (profile "${profile.name}")`);
    }
    const result: ProfileRunResult = {
      targets,
      scores: new Map(scored.map(({ endpoint, score }) => [endpoint.endpoint.key, score])),
    };
    for (const plugin of profile.postCycles) {
      this.timed('PostCycle', plugin.name, () => plugin.postCycle(cycle, result));
    }
    return result;
  }

  private timed<T>(extensionPoint: ExtensionPoint, pluginName: string, call: () => T): T {
    const started = this.monotonicSeconds();
    try {
      return call();
    } finally {
      this.metrics.observePluginDuration(extensionPoint, pluginName, this.monotonicSeconds() - started);
    }
  }
}

/**
 * Builds a Scheduler from a config (validated and normalized here too, so typed configs from code get the same
 * checks and defaults as YAML). Every plugin is instantiated once, referenced or not.
 * @throws ConfigError when the config is invalid.
 */
export function buildScheduler(config: EndpointPickerConfig, options: SchedulerOptions = {}): Scheduler {
  const normalized = validateEndpointPickerConfig(config);
  const metrics = options.metrics ?? NOOP_SCHEDULING_METRICS;
  const handle: PluginHandle = { now: options.now ?? Date.now, random: options.random ?? Math.random, metrics };
  const registry = options.registry ?? BUILTIN_PLUGIN_REGISTRY;

  const plugins = new Map<string, Plugin>();
  normalized.plugins.forEach((spec, index) => {
    const name = spec.name ?? spec.type;
    const parameters = resolvePluginParameters(spec.type, spec.parameters, `plugins[${index}].parameters`);
    const factory = registry[spec.type] as PluginFactory<PluginType>;
    plugins.set(name, factory(name, parameters, handle));
  });

  const handler = [...plugins.values()].find(isProfileHandler);
  if (handler === undefined) throw new Error('normalized config has no profile handler');
  const profiles = new Map(normalized.schedulingProfiles.map((spec) => [spec.name, resolveProfile(spec, plugins)]));
  const monotonicSeconds = options.monotonicSeconds ?? (() => performance.now() / 1000);
  return new Scheduler(normalized, plugins, handler, profiles, metrics, monotonicSeconds);
}

function resolveProfile(spec: SchedulingProfileSpec, plugins: ReadonlyMap<string, Plugin>): SchedulerProfile {
  const referenced = spec.plugins.map((ref) => ({ plugin: plugins.get(ref.pluginRef)!, weight: ref.weight ?? 1 }));
  const picker = referenced.map((ref) => ref.plugin).find(isPicker);
  if (picker === undefined) throw new Error(`normalized profile "${spec.name}" has no picker`);
  return {
    name: spec.name,
    filters: referenced.map((ref) => ref.plugin).filter(isFilter),
    scorers: referenced.flatMap(({ plugin, weight }) => (isScorer(plugin) ? [{ scorer: plugin, weight }] : [])),
    picker,
    postCycles: referenced.map((ref) => ref.plugin).filter(isPostCycle),
  };
}
