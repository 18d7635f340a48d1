import { performance } from 'node:perf_hooks';
import {
  pluginDefinition,
  resolvePluginParameters,
  validateEndpointPickerConfig,
  type EndpointPickerConfig,
  type PluginType,
  type SchedulingProfileSpec,
} from '../config';
import type { Endpoint, EndpointSnapshot } from '../datastore/types';
import {
  CycleState,
  doubleZeros,
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
  type Scorer,
} from './framework';
import { NOOP_SCHEDULING_METRICS, type ExtensionPoint, type SchedulingMetrics } from './metrics-hooks';
import { createPlugin, type ParameterSpec, type PluginDefinition, type PluginKind, type PluginKindInterfaces } from './plugin';
import { SchedulingError, UPSTREAM_PREFILL_PROFILE, type LLMRequest, type SchedulingResult } from './types';
import { LazyReadonlyMap } from './lazy-map';
import { isPickLearner, isUnlistedPickMarker, pdPrefixSource, type PickLearner, pickPrefixMatch, PREFIX_MATCH, type PrefixMatchEstimate, type PrefixMatchRatios, type UnlistedPickMarker } from './prefix-match';
import { isConditionalDecode, pickHoldsCachedPrefix } from '../requestcontrol/conditional-decode';
import { monotonicMs } from '../clock';

export interface PluginSetOptions {
  /**
   * The clock, in ms, of TTLs, deadlines and metric staleness (it must be the scrapers' clock: `updateTime` is read on
   * it). @default monotonicMs, which a wall-clock step does not move
   */
  readonly now?: () => number;
  /** The wall clock in ms, for timestamps that leave the EPP (signed session tokens). @default `now` if given, else Date.now */
  readonly wallNow?: () => number;
  /** Uniform [0, 1) source for tie-breaks and random picks. @default Math.random */
  readonly random?: () => number;
  /** Where scheduling metrics go. @default NOOP_SCHEDULING_METRICS */
  readonly metrics?: SchedulingMetrics;
  /** Where plugins log; each plugin's lines carry its name. @default silent */
  readonly logger?: PluginLogger;
  /** Replacement factories by type, for tests that need a misbehaving plugin. */
  readonly factories?: Partial<Record<PluginType, PluginDefinition['create']>>;
}

export interface SchedulerOptions extends PluginSetOptions {
  /** Monotonic seconds for timing plugin calls. @default performance.now() / 1000 */
  readonly monotonicSeconds?: () => number;
  /**
   * Called once per profile run that picked, with what decided it (`--v 3`): off by default, and when off the cycle
   * copies nothing.
   */
  readonly decisionLog?: (decision: SchedulingDecision) => void;
}

/** How many candidates a decision record lists: the picked ones and the best of the rest by total. */
export const DECISION_TOP_CANDIDATES = 8;

/**
 * One profile run's decision, for the operator asking why a request went where it did: each scorer's weight, and for
 * the picked endpoints and the best others by weighted total (at most `DECISION_TOP_CANDIDATES`), the total and each
 * scorer's score (as the scorer returned it, before the scheduler clamps it to [0, 1]), rounded to 1e-3.
 */
export interface SchedulingDecision {
  readonly requestId: string;
  readonly profile: string;
  /** Candidates left after the filters. */
  readonly candidates: number;
  readonly picked: readonly string[];
  readonly weights: Readonly<Record<string, number>>;
  readonly top: readonly { readonly endpoint: string; readonly total: number; readonly scores: Readonly<Record<string, number>> }[];
}

/**
 * Every plugin of one config, built once and kept as long as the EPP runs (the prefix index and session bindings live
 * in them), each with the kinds its definition declares. The scheduler takes the profile plugins, request control the
 * request hooks, the datastore's removals reach every plugin with per-endpoint state.
 */
export class PluginSet {
  constructor(
    /** The normalized config the plugins were built from. */
    readonly config: EndpointPickerConfig,
    private readonly entries: ReadonlyMap<string, { readonly plugin: Plugin; readonly kinds: readonly PluginKind[] }>,
  ) {}

  /** The plugin configured under `name` (for stats and tests). */
  get(name: string): Plugin | undefined {
    return this.entries.get(name)?.plugin;
  }

  /** Every plugin that declares `kind`, in config order. */
  ofKind<K extends PluginKind>(kind: K): PluginKindInterfaces[K][] {
    return [...this.entries.values()].filter((e) => e.kinds.includes(kind)).map((e) => e.plugin as unknown as PluginKindInterfaces[K]);
  }

  /** Whether the plugin named `name` declares `kind`. */
  has(name: string, kind: PluginKind): boolean {
    return this.entries.get(name)?.kinds.includes(kind) ?? false;
  }

  /** Tells plugins that follow the pool that an endpoint joined it. */
  addEndpoint(endpoint: Endpoint): void {
    for (const { plugin } of this.entries.values()) plugin.addEndpoint?.(endpoint);
  }

  /** Tells plugins holding per-endpoint state that an endpoint left the pool. */
  removeEndpoint(endpointKey: string): void {
    for (const { plugin } of this.entries.values()) plugin.removeEndpoint?.(endpointKey);
  }

  /** Tells plugins modelling an endpoint's cache that its model server restarted (see `Plugin.endpointRestarted`). */
  endpointRestarted(endpointKey: string, sinceMs: number): void {
    for (const { plugin } of this.entries.values()) plugin.endpointRestarted?.(endpointKey, sinceMs);
  }

  /** Lets plugins bring their gauges up to date with the pool's latest scrapes, as `/metrics` is rendered (`Plugin.refreshGauges`). */
  refreshGauges(endpoints: readonly EndpointSnapshot[]): void {
    for (const { plugin } of this.entries.values()) plugin.refreshGauges?.(endpoints);
  }

  /** Opens what plugins need before the EPP serves (sockets). */
  async start(): Promise<void> {
    for (const { plugin } of this.entries.values()) await plugin.start?.();
  }

  /** Whether every plugin with warm-up state (KV-event subscriptions) is warm; true when none has any. */
  warm(): boolean {
    return [...this.entries.values()].every(({ plugin }) => plugin.warm?.() ?? true);
  }

  /** Calls `listener` whenever some plugin's `warm()` may have changed. */
  onWarmChange(listener: () => void): void {
    for (const { plugin } of this.entries.values()) plugin.onWarmChange?.(listener);
  }

  /** Releases what plugins hold (sockets, timers) when the EPP stops. */
  async close(): Promise<void> {
    for (const { plugin } of this.entries.values()) await plugin.close?.();
  }
}

/**
 * Builds every plugin of a config (validated and normalized here too, so typed configs from code get the same checks
 * and defaults as YAML). Every plugin is instantiated once, referenced or not, as upstream does.
 * @throws ConfigError when the config is invalid.
 */
export function buildPlugins(config: EndpointPickerConfig, options: PluginSetOptions = {}): PluginSet {
  const normalized = validateEndpointPickerConfig(config);
  const logger = options.logger ?? SILENT_PLUGIN_LOGGER;
  const entries = new Map<string, { plugin: Plugin; kinds: readonly PluginKind[] }>();
  normalized.plugins.forEach((spec, index) => {
    const name = spec.name ?? spec.type;
    const handle: PluginHandle = {
      now: options.now ?? monotonicMs,
      wallNow: options.wallNow ?? options.now ?? Date.now,
      random: options.random ?? Math.random,
      metrics: options.metrics ?? NOOP_SCHEDULING_METRICS,
      logger: withPlugin(logger, name),
      plugin: (other) => entries.get(other)?.plugin,
      plugins: () => [...entries.values()].map((e) => e.plugin),
      profiles: () => normalized.schedulingProfiles,
    };
    const parameters = resolvePluginParameters(spec.type, spec.parameters, `plugins[${index}].parameters`);
    const definition = pluginDefinition(spec.type);
    (definition.parameters as ParameterSpec<object>).checkWithProfiles?.(
      parameters as Required<object>, normalized.schedulingProfiles.map((profile) => profile.name), `plugins[${index}].parameters`,
    );
    const create = options.factories?.[spec.type];
    const plugin = createPlugin(create ? { ...definition, create } : definition, name, parameters, handle);
    entries.set(name, { plugin, kinds: definition.kinds });
  });
  for (const { plugin } of entries.values()) plugin.resolveReferences?.();
  return new PluginSet(normalized, entries);
}

function withPlugin(logger: PluginLogger, plugin: string): PluginLogger {
  return {
    debug: (msg, fields) => logger.debug(msg, { plugin, ...fields }),
    info: (msg, fields) => logger.info(msg, { plugin, ...fields }),
    warn: (msg, fields) => logger.warn(msg, { plugin, ...fields }),
    error: (msg, fields) => logger.error(msg, { plugin, ...fields }),
  };
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
 * Picks the endpoint for each request by running the profiles of an EndpointPickerConfig. It only schedules: request
 * control owns the request's lifecycle (committing the pick, the request hooks, the release).
 */
export class Scheduler {
  private readonly profileNames: readonly string[];
  private readonly profileHandler: ProfileHandler;
  private readonly profiles: ReadonlyMap<string, SchedulerProfile>;
  /** The scorers' output and the weighted sums (see `scratchFor`). */
  private scratch = { scores: new Float64Array(0), sums: new Float64Array(0) };
  /** Each cycle's prefix match by profile, when the config has several profiles. */
  private readonly matchOf = new WeakMap<CycleContext, Map<string, PrefixMatchEstimate>>();
  /** The prefix scorer a P/D handler reads beyond its profiles (`ProfileHandler.consumesPrefixMatch`), else undefined. */
  private readonly pdPrefixSource: PrefixMatchRatios | undefined;
  /** The config's plugins that mark the primary and `prefill` picks of profiles not listing them (`markUnlistedPicks`). */
  private readonly unlistedPickMarkers: readonly UnlistedPickMarker[];

  constructor(
    /** The plugins of the config, shared with request control. */
    readonly plugins: PluginSet,
    private readonly metrics: SchedulingMetrics = NOOP_SCHEDULING_METRICS,
    private readonly monotonicSeconds: () => number = () => performance.now() / 1000,
    private readonly decisionLog?: (decision: SchedulingDecision) => void,
  ) {
    const [handler] = plugins.ofKind('profile-handler');
    if (handler === undefined) throw new Error('normalized config has no profile handler');
    this.profileHandler = handler;
    this.profiles = new Map(plugins.config.schedulingProfiles.map((spec) => [spec.name, resolveProfile(spec, plugins)]));
    this.profileNames = [...this.profiles.keys()];
    this.pdPrefixSource = handler.consumesPrefixMatch === true ? pdPrefixSource(plugins.ofKind('scorer')) : undefined;
    this.unlistedPickMarkers = plugins.ofKind('scorer').filter((p): p is Scorer & UnlistedPickMarker => isUnlistedPickMarker(p));
  }

  /** The normalized config the scheduler was built from. */
  get config(): EndpointPickerConfig {
    return this.plugins.config;
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
      const cycle: CycleContext = { request, state: new CycleState(), profile: undefined };
      // Post-cycle hooks (prefix-index learning, session bindings, speculative index entries) run once the cycle is
      // over, as upstream's run in PreRequest: with several profiles, after the last one, so that no profile scores
      // against what an earlier one just picked (upstream matches once before scheduling, approximateprefix/plugin.go
      // Produce, and records the picks in PreRequest); and a conditional decode (`Prefer: if-available`), which may yet
      // be refused 412 (request control's gate, on this cycle's result), only when the result says it will be forwarded.
      const conditional = isConditionalDecode(request.headers);
      const deferred: (() => void)[] | undefined = conditional || this.profileNames.length > 1 ? [] : undefined;
      const outcomes = this.runProfiles(cycle, candidates, deferred);
      const handler = this.profileHandler;
      const processStarted = this.monotonicSeconds();
      let primaryProfile: string;
      try {
        ({ primaryProfile } = handler.processResults(cycle, outcomes));
      } finally {
        this.observe('ProcessProfilesResults', handler, processStarted);
      }
      const outcome = outcomes.get(primaryProfile);
      if (outcome === undefined) throw new Error(`profile handler chose profile "${primaryProfile}", which did not run`);
      if (outcome instanceof SchedulingError) throw outcome;
      const target = outcome.targets[0]!;
      this.metrics.countPick(target.endpoint.key);
      // With one profile the state holds its match; with several, each profile's own, as each scorer published it.
      let prefixMatch = outcomes.size > 1 ? this.matchOf.get(cycle)?.get(primaryProfile) : cycle.state.get(PREFIX_MATCH);
      const source = this.pdPrefixSource;
      // A P/D primary profile that lists no prefix scorer: the source's match of the pick, as upstream's producer
      // puts PrefixCacheMatchInfo on every endpoint before scheduling (approximateprefix/plugin.go Produce).
      if (prefixMatch === undefined && source !== undefined) prefixMatch = pickPrefixMatch(cycle, source, target).state.get(PREFIX_MATCH);
      let profileTargets: Map<string, EndpointSnapshot> | undefined;
      if (outcomes.size > 1) {
        profileTargets = new Map();
        for (const [name, o] of outcomes) if (!(o instanceof SchedulingError)) profileTargets.set(name, o.targets[0]!);
      }
      const result: SchedulingResult = {
        target, targets: outcome.targets, profile: primaryProfile, scores: outcome.scores,
        ...(prefixMatch !== undefined ? { prefixMatch } : {}),
        ...(profileTargets !== undefined ? { profileTargets } : {}),
      };
      if (source !== undefined && isPickLearner(source)) {
        const learn = () => this.learnUnlistedPicks(cycle, source, target, outcomes, primaryProfile);
        if (deferred !== undefined) deferred.push(learn);
        else learn();
      }
      if (this.unlistedPickMarkers.length > 0) {
        const mark = () => this.markUnlistedPicks(cycle, outcomes, primaryProfile);
        // First, while the request still carries its prompt's token ids (a listed profile's post-cycle drops them).
        if (deferred !== undefined) deferred.unshift(mark);
        else mark();
      }
      if (deferred !== undefined && (!conditional || pickHoldsCachedPrefix(result))) for (const run of deferred) run();
      return result;
    } catch (error) {
      if (error instanceof SchedulingError) this.metrics.countSchedulingFailure(error.reason);
      throw error;
    } finally {
      this.metrics.observeSchedulingDuration(this.monotonicSeconds() - started);
    }
  }

  /** The plugin configured under `name` (for stats and tests). */
  plugin(name: string): Plugin | undefined {
    return this.plugins.get(name);
  }

  /**
   * The P/D prefix source records each profile's pick that its own post-cycle did not (a profile not listing it), with
   * the prompt's blocks as matched on the primary pick: upstream's approximate producer records the primary pick and
   * the prefill one in PreRequest, after the whole cycle (approximateprefix/plugin.go), one set of hashes for both.
   * The primary profile's pick is also observed by the prefix-match metrics there, as upstream's PreRequest observes it
   * whichever profiles list the scorer.
   */
  private learnUnlistedPicks(cycle: CycleContext, source: PickLearner, primary: EndpointSnapshot, outcomes: ReadonlyMap<string, ProfileOutcome>, primaryProfile: string): void {
    for (const [name, outcome] of outcomes) {
      if (outcome instanceof SchedulingError || this.profiles.get(name)!.postCycles.some((p) => (p as Plugin) === source)) continue;
      source.learnPick(pickPrefixMatch(cycle, source, primary), outcome.targets[0]!, name === primaryProfile);
    }
  }

  /**
   * The primary profile's pick and the `prefill` profile's, for each marker whose own post-cycle did not see them (a
   * profile not listing it): llm-d-router v0.10.0's precise producer speculates both in PreRequest, whichever profiles
   * list its scorer (`dataproducer/preciseprefixcache/prerequest.go` L148-188, `experimentalPrefillProfile`), so with
   * the precise scorer in one P/D profile only the other pick is marked too. No other profile's pick (an encode pod's).
   */
  private markUnlistedPicks(cycle: CycleContext, outcomes: ReadonlyMap<string, ProfileOutcome>, primaryProfile: string): void {
    const names = primaryProfile === UPSTREAM_PREFILL_PROFILE ? [primaryProfile] : [primaryProfile, UPSTREAM_PREFILL_PROFILE];
    for (const marker of this.unlistedPickMarkers) {
      for (const name of names) {
        const outcome = outcomes.get(name);
        if (outcome === undefined || outcome instanceof SchedulingError) continue;
        if (this.profiles.get(name)!.postCycles.some((p) => (p as Plugin) === marker)) continue;
        marker.markUnlistedPick(cycle, outcome.targets[0]!);
      }
    }
  }

  private runProfiles(cycle: CycleContext, candidates: readonly EndpointSnapshot[], deferred: (() => void)[] | undefined): Map<string, ProfileOutcome> {
    const outcomes = new Map<string, ProfileOutcome>();
    const handler = this.profileHandler;
    // A handler that keeps asking for profiles would spin forever; each profile running once per round bounds it.
    for (let round = 0; round <= this.profileNames.length; round++) {
      const started = this.monotonicSeconds();
      let next: readonly string[];
      try {
        next = handler.pickProfiles(cycle, this.profileNames, outcomes);
      } finally {
        this.observe('ProfilePicker', handler, started);
      }
      if (next.length === 0) return outcomes;
      for (const name of next) {
        const profile = this.profiles.get(name);
        if (profile === undefined) throw new Error(`profile handler asked for unknown profile "${name}"`);
        cycle.profile = name;
        outcomes.set(name, this.runProfile(profile, cycle, candidates, deferred));
        if (this.profileNames.length > 1) {
          // The prefix match each profile saw, kept apart: a later profile's scorer republishes over its own candidates.
          const match = cycle.state.get(PREFIX_MATCH);
          if (match !== undefined) {
            let byProfile = this.matchOf.get(cycle);
            if (byProfile === undefined) this.matchOf.set(cycle, (byProfile = new Map()));
            byProfile.set(name, match);
          }
        }
      }
    }
    throw new Error(`profile handler ${this.profileHandler.name} did not stop picking profiles`);
  }

  // Each plugin call is timed inline (start, call, observe in `finally`) rather than through a helper taking a closure:
  // a closure per plugin call per request was garbage and an indirection in the cycle's hottest function. The
  // observations are the same: every extension point and plugin, thrown or not.
  private runProfile(profile: SchedulerProfile, cycle: CycleContext, candidates: readonly EndpointSnapshot[], deferred?: (() => void)[]): ProfileOutcome {
    let remaining = candidates;
    for (const filter of profile.filters) {
      const before = remaining;
      const started = this.monotonicSeconds();
      try {
        remaining = filter.filter(cycle, before);
      } finally {
        this.observe('Filter', filter, started);
      }
      if (remaining.length === 0) {
        const reason = typeof filter.emptyResultReason === 'function' ? filter.emptyResultReason(cycle) : filter.emptyResultReason;
        return new SchedulingError(
          reason,
          `${filter.name} left none of ${before.length} candidate endpoint(s) (profile "${profile.name}")`,
        );
      }
    }

    const n = remaining.length;
    // The weighted sum is accumulated in a reused Float64Array (stores into a typed array measured about twice as fast
    // as into an array of doubles), then copied once into the result's own array: its scores are read after the cycle,
    // while the scratch is the next cycle's. The copy starts from `doubleZeros`, not a new Float64Array (see there).
    const { scores: scratch, sums } = this.scratchFor(n);
    sums.fill(0, 0, n);
    const scored: ArrayLike<number>[] | undefined = this.decisionLog !== undefined ? [] : undefined;
    for (const { scorer, weight } of profile.scorers) {
      const started = this.monotonicSeconds();
      if (scorer.scoreInto !== undefined) {
        scratch.fill(0, 0, n);
        try {
          scorer.scoreInto(cycle, remaining, scratch);
        } finally {
          this.observe('Scorer', scorer, started);
        }
        scored?.push(scratch.slice(0, n));
        // clampScore inlined, on one element kind: NaN and negatives count 0, above 1 counts 1. `Math.min` instead of
        // a second comparison: one branch fewer per candidate measured ~35% off this loop (a mix of scores as the
        // default scorers give them), which at 256 candidates and five scorers was the scheduler's largest cost.
        for (let i = 0; i < n; i++) {
          const score = scratch[i]!;
          sums[i] += (score > 0 ? Math.min(score, 1) : 0) * weight;
        }
      } else {
        let scores: ArrayLike<number>;
        try {
          scores = scorer.score(cycle, remaining);
        } finally {
          this.observe('Scorer', scorer, started);
        }
        for (let i = 0; i < n; i++) sums[i] += clampScore(scores[i]) * weight;
        scored?.push(Array.from(scores));
      }
    }
    const totals = doubleZeros(n);
    for (let i = 0; i < n; i++) totals[i] = sums[i]!;
    const picker = profile.picker;
    let targets: readonly EndpointSnapshot[];
    const pickStarted = this.monotonicSeconds();
    try {
      targets = picker.pickFromTotals !== undefined
        ? picker.pickFromTotals(cycle, remaining, totals)
        : picker.pick(cycle, remaining.map((endpoint, i) => ({ endpoint, score: totals[i]! })));
    } finally {
      this.observe('Picker', picker, pickStarted);
    }
    if (targets.length === 0) {
      return new SchedulingError('no-endpoints', `${profile.picker.name} picked nothing (profile "${profile.name}")`);
    }
    if (scored !== undefined) this.decisionLog!(decisionOf(cycle, profile, remaining, totals, targets, scored));
    const primaryName = this.profileHandler.primaryProfile;
    const result: ProfileRunResult = { targets, scores: new LazyScores(remaining, totals), profile: profile.name, primary: primaryName === undefined || primaryName === profile.name };
    if (deferred !== undefined) {
      // Run later over this profile's state as it is now: a later profile's plugins overwrite their keys.
      if (profile.postCycles.length > 0) {
        const later: CycleContext = { request: cycle.request, state: cycle.state.copy(), profile: profile.name };
        deferred.push(() => this.runPostCycles(profile, later, result));
      }
      return result;
    }
    this.runPostCycles(profile, cycle, result);
    return result;
  }

  private runPostCycles(profile: SchedulerProfile, cycle: CycleContext, result: ProfileRunResult): void {
    for (const plugin of profile.postCycles) {
      const started = this.monotonicSeconds();
      try {
        plugin.postCycle(cycle, result);
      } finally {
        this.observe('PostCycle', plugin, started);
      }
    }
  }

  /**
   * The scorers' shared output buffer and the sums, each at least `n` long: one pair per scheduler, grown to the
   * largest pool seen, so a cycle allocates no score arrays. Cycles are synchronous and never nest, and no scorer keeps `out` past its call.
   */
  private scratchFor(n: number): { readonly scores: Float64Array; readonly sums: Float64Array } {
    if (this.scratch.scores.length < n) {
      const length = Math.max(n, 2 * this.scratch.scores.length);
      this.scratch = { scores: new Float64Array(length), sums: new Float64Array(length) };
    }
    return this.scratch;
  }

  private observe(extensionPoint: ExtensionPoint, plugin: { readonly type: string; readonly name: string }, started: number): void {
    this.metrics.observePluginDuration(extensionPoint, plugin.type, plugin.name, this.monotonicSeconds() - started);
  }
}

/**
 * The weighted totals by endpoint key, as a Map built only when someone reads it: the cycle itself never does (the
 * picker reads the totals), and at 256 candidates building it for every request cost more than all the scorers but
 * the prefix one. Logs, tests and post-cycle plugins that read it get the same Map as before.
 */
class LazyScores extends LazyReadonlyMap<string, number> {
  constructor(
    private readonly candidates: readonly EndpointSnapshot[],
    private readonly totals: ArrayLike<number>,
  ) {
    super();
  }

  protected build(): Map<string, number> {
    return new Map(this.candidates.map((candidate, i) => [candidate.endpoint.key, this.totals[i]!]));
  }
}

const rounded = (x: number): number => Math.round(x * 1000) / 1000;

function decisionOf(
  cycle: CycleContext,
  profile: SchedulerProfile,
  candidates: readonly EndpointSnapshot[],
  totals: ArrayLike<number>,
  targets: readonly EndpointSnapshot[],
  scored: readonly ArrayLike<number>[],
): SchedulingDecision {
  const picked = new Set(targets.map((t) => t.endpoint.key));
  // The picked first, then the others by total (ties in candidate order).
  const order = Array.from(candidates.keys()).sort((a, b) => {
    const pa = picked.has(candidates[a]!.endpoint.key) ? 1 : 0;
    const pb = picked.has(candidates[b]!.endpoint.key) ? 1 : 0;
    return pb - pa || totals[b]! - totals[a]! || a - b;
  });
  const weights: Record<string, number> = {};
  for (const { scorer, weight } of profile.scorers) weights[scorer.name] = weight;
  return {
    requestId: cycle.request.requestId,
    profile: profile.name,
    candidates: candidates.length,
    picked: [...picked],
    weights,
    top: order.slice(0, Math.max(DECISION_TOP_CANDIDATES, picked.size)).map((i) => {
      const scores: Record<string, number> = {};
      profile.scorers.forEach(({ scorer }, k) => { scores[scorer.name] = rounded(Number(scored[k]![i])); });
      return { endpoint: candidates[i]!.endpoint.key, total: rounded(totals[i]!), scores };
    }),
  };
}

/** Builds the plugins of a config and a Scheduler over them. @throws ConfigError when the config is invalid. */
export function buildScheduler(config: EndpointPickerConfig, options: SchedulerOptions = {}): Scheduler {
  return new Scheduler(buildPlugins(config, options), options.metrics, options.monotonicSeconds, options.decisionLog);
}

/** A profile's references resolved to instances, each placed by the kinds its definition declares. */
function resolveProfile(spec: SchedulingProfileSpec, plugins: PluginSet): SchedulerProfile {
  const refs = spec.plugins.map((ref) => ({ name: ref.pluginRef, plugin: plugins.get(ref.pluginRef)!, weight: ref.weight ?? 1 }));
  const ofKind = <K extends PluginKind>(kind: K) => refs.filter((ref) => plugins.has(ref.name, kind));
  const [picker] = ofKind('picker');
  if (picker === undefined) throw new Error(`normalized profile "${spec.name}" has no picker`);
  return {
    name: spec.name,
    filters: ofKind('filter').map((ref) => ref.plugin as Filter),
    scorers: ofKind('scorer').map((ref) => ({ scorer: ref.plugin as Scorer, weight: ref.weight })),
    picker: picker.plugin as Picker,
    postCycles: ofKind('post-cycle').map((ref) => ref.plugin as PostCycle),
  };
}
