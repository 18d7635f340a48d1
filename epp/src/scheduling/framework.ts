import type { Endpoint, EndpointSnapshot } from '../datastore/types';
import type { SchedulingMetrics } from './metrics-hooks';
import type { LLMRequest, SchedulingError, SchedulingErrorReason } from './types';

/**
 * The scheduling framework's extension points, shaped like GIE's: a profile handler chooses profiles; each profile
 * runs filters in order, sums weighted scorer scores, lets its picker choose and then runs its post-cycle plugins.
 * Request-lifecycle hooks (PreRequest, PostResponse) belong to request control (`../requestcontrol/hooks.ts`). Plugins
 * see an `LLMRequest` and frozen endpoint snapshots, never gRPC or the live datastore. All calls are synchronous:
 * scheduling is CPU-only work.
 */

/** A typed slot in `CycleState`; plugins create their keys once, so two instances of a type never collide. */
export interface StateKey<T> {
  readonly description: string;
  /** Carries `T` for the compiler only; never set. */
  readonly valueType?: T;
}

export function stateKey<T>(description: string): StateKey<T> {
  return { description };
}

/** Per-request scratch space shared by the plugins and profiles of one scheduling call. */
export class CycleState {
  private readonly values = new Map<StateKey<unknown>, unknown>();

  get<T>(key: StateKey<T>): T | undefined {
    return this.values.get(key) as T | undefined;
  }

  set<T>(key: StateKey<T>, value: T): void {
    this.values.set(key, value);
  }

  /** A copy holding what this state holds now (a later `set` on either does not show in the other). */
  copy(): CycleState {
    const out = new CycleState();
    for (const [k, v] of this.values) out.values.set(k, v);
    return out;
  }
}

export interface CycleContext {
  readonly request: LLMRequest;
  readonly state: CycleState;
  /**
   * The name of the scheduling profile whose plugins run now, set by the scheduler before each profile: one plugin
   * instance listed in several profiles (a P/D config's prefill and decode) tells their cycles apart by it. Undefined
   * in a cycle a plugin builds for itself.
   */
  profile?: string;
}

export interface Plugin {
  /** The config `type` this instance was built from. */
  readonly type: string;
  /** The config `name`, unique in the config; labels metrics. */
  readonly name: string;
  /** Plugins that follow the pool (subscriptions per pod) implement this to learn of an endpoint that joined it. */
  addEndpoint?(endpoint: Endpoint): void;
  /** Plugins holding per-endpoint state implement this to forget an endpoint that left the pool. */
  removeEndpoint?(endpointKey: string): void;
  /**
   * Plugins that model what an endpoint's model server holds (its cached prefixes) implement this to forget it when the
   * server restarted behind the same endpoint (the datastore's `endpointRestarted`: a scrape read a new process start time, or its counters went back).
   * `sinceMs`: wall-clock ms of the reading before, after which what was learnt may be the new process's.
   */
  endpointRestarted?(endpointKey: string, sinceMs: number): void;
  /**
   * Plugins exporting gauges of what they derive from the pods' scrapes bring them up to date here: called as the EPP's
   * `/metrics` is rendered, with the pool's latest scrapes.
   */
  refreshGauges?(endpoints: readonly EndpointSnapshot[]): void;
  /** Plugins that name other plugins look them up here, once the whole config is built; throws ConfigError when wrong. */
  resolveReferences?(): void;
  /** Plugins that open sockets (a KV-event subscription) do it here, before the EPP serves; a failure stops start-up. */
  start?(): Promise<void>;
  /** Plugins holding sockets or timers release them here when the EPP stops. */
  close?(): void | Promise<void>;
  /**
   * Plugins whose routing data must warm up before their picks are worth making (the precise scorer's KV-event
   * subscriptions) say here whether it has; the EPP reports NOT_SERVING until every such plugin is warm, at start-up.
   */
  warm?(): boolean;
  /** Registers the function to call whenever `warm()` may have changed. */
  onWarmChange?(listener: () => void): void;
}

export interface Filter extends Plugin {
  /**
   * The error when this filter leaves no candidate: 'saturated' (429) for load-based filters, 'no-endpoints' (503)
   * for eligibility filters such as roles, since no amount of waiting makes a prefill pod decode.
   */
  readonly emptyResultReason: SchedulingErrorReason | ((cycle: CycleContext) => SchedulingErrorReason);
  /** Returns the candidates to keep, in their input order. */
  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[];
}

export interface Scorer extends Plugin {
  /** One score in [0, 1] per candidate, aligned with `candidates`; the framework clamps out-of-range values. */
  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): ArrayLike<number>;
  /**
   * Optional: the scores `score` returns, written into `out` instead of a new array. `out` is zero-filled and at
   * least `candidates.length` long (longer ones are scratch reused across cycles: write only `[0, candidates.length)`);
   * entries left untouched score 0. The scheduler calls it when present: at 256 candidates an array per scorer per
   * request was a good part of the cycle's garbage, and reading every scorer's scores from one Float64Array keeps the
   * scheduler's totals loop on one element kind (arrays of small integers, doubles and holes made it polymorphic).
   */
  scoreInto?(cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void;
}

/** The template `doubleZeros` copies from, grown to the longest length asked for. */
let zerosTemplate: number[] = [];

/**
 * A new array of `length` zeros that V8 keeps as unboxed doubles (PACKED_DOUBLE_ELEMENTS, kept by its copies), so a
 * cycle's totals start as doubles and adding a fractional score never converts the array from small integers. Copied
 * (`slice`) from one template: at 256 that is ~4x cheaper than `new Float64Array(256)`, whose backing store V8 keeps
 * outside the heap and its garbage collector tracks apart.
 */
export function doubleZeros(length: number): number[] {
  if (zerosTemplate.length < length) {
    // Filled with a fraction first, so the template's elements are doubles before they are zeros.
    zerosTemplate = Array.from({ length: Math.max(length, 2 * zerosTemplate.length) }, () => 0.5).fill(0);
  }
  return zerosTemplate.slice(0, length);
}

/** `score` for a scorer that implements `scoreInto`: the same scores as a plain array (tests and callers outside the cycle). */
export function scoresFromInto(
  scorer: Required<Pick<Scorer, 'scoreInto'>>,
  cycle: CycleContext,
  candidates: readonly EndpointSnapshot[],
): number[] {
  const out = new Float64Array(candidates.length);
  scorer.scoreInto(cycle, candidates, out);
  return Array.from(out);
}

export interface ScoredEndpoint {
  readonly endpoint: EndpointSnapshot;
  /** Sum of score × weight over the profile's scorers. */
  readonly score: number;
}

export interface Picker extends Plugin {
  /** The chosen endpoints, best first; empty only when `scored` is. */
  pick(cycle: CycleContext, scored: readonly ScoredEndpoint[]): readonly EndpointSnapshot[];
  /**
   * Optional: the same choice as `pick` (same draws from the random source) from the candidates and their totals
   * side by side, so the scheduler need not build one `ScoredEndpoint` per candidate per request (256 objects a
   * request at 256 pods). The scheduler calls it when present, `pick` otherwise.
   */
  pickFromTotals?(cycle: CycleContext, candidates: readonly EndpointSnapshot[], totals: ArrayLike<number>): readonly EndpointSnapshot[];
}

export interface ProfileRunResult {
  /** The picker's choice, best first (never empty). */
  readonly targets: readonly EndpointSnapshot[];
  /** Weighted total per surviving candidate, by endpoint key. */
  readonly scores: ReadonlyMap<string, number>;
  /** The profile that ran. */
  readonly profile?: string;
  /**
   * Whether it is the profile whose pick is the request's destination, as far as the handler says before the cycle
   * ends (`ProfileHandler.primaryProfile`; every profile when the handler names none). Session plugins bind only its
   * pick, as upstream's bind in PreRequest from the primary profile's result.
   */
  readonly primary?: boolean;
}

export interface PostCycle extends Plugin {
  /**
   * Runs after the profile's picker succeeded: right after the profile in a single-profile config; with several
   * profiles once every profile ran (so a later profile does not score against an earlier one's pick, as upstream's
   * producers record picks in PreRequest), with the cycle state as this profile left it; for a conditional decode
   * (`Prefer: if-available`) only when it will be forwarded.
   */
  postCycle(cycle: CycleContext, result: ProfileRunResult): void;
}

/** A profile's run: its result, or why it could not pick. */
export type ProfileOutcome = ProfileRunResult | SchedulingError;

export interface ProfileHandler extends Plugin {
  /** The profile whose pick is the destination whenever it runs (P/D: the decode profile); undefined when it varies. */
  readonly primaryProfile?: string;
  /**
   * Reads the primary pick's prefix match whatever its profile lists (P/D: the decider, and the conditional-decode gate
   * after the cycle), as llm-d-router v0.10.0's P/D handlers `Consumes()` PrefixCacheMatchInfo: the scheduler then
   * matches the primary pick by the config's prefix scorer when its profile published no match, and has that scorer
   * record the picks of the profiles that do not list it (`pdPrefixSource`).
   */
  readonly consumesPrefixMatch?: boolean;
  /** The profiles to run next given the outcomes so far; an empty list ends the cycle. */
  pickProfiles(
    cycle: CycleContext,
    profileNames: readonly string[],
    outcomes: ReadonlyMap<string, ProfileOutcome>,
  ): readonly string[];
  /** Names the profile whose result is the request's destination, or throws the SchedulingError to report. */
  processResults(cycle: CycleContext, outcomes: ReadonlyMap<string, ProfileOutcome>): { readonly primaryProfile: string };
}

/** Where plugins log: structured fields, JSON lines in the EPP. */
export interface PluginLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const ignore = (): void => undefined;

/** For tests and tools that do not read plugin logs. */
export const SILENT_PLUGIN_LOGGER: PluginLogger = Object.freeze({ debug: ignore, info: ignore, warn: ignore, error: ignore });

/** What a plugin factory gets besides its name and parameters; injectable so tests control time and chance. */
export interface PluginHandle {
  /**
   * Milliseconds on the EPP's monotonic clock (`monotonicMs`, src/clock.ts), comparable with `EndpointMetrics.updateTime`
   * and every other time the EPP keeps for itself; a wall-clock step does not move it.
   */
  readonly now: () => number;
  /**
   * Wall-clock milliseconds, for timestamps others read (a signed session token's issue time, checked by other replicas
   * and held by clients). Absent (handles built by hand in tests): `now`.
   */
  readonly wallNow?: () => number;
  /** Uniform in [0, 1). */
  readonly random: () => number;
  readonly metrics: SchedulingMetrics;
  /** The EPP's logger, with the plugin's name in every line. */
  readonly logger: PluginLogger;
  /**
   * A plugin of the same config, by name (llm-d-router's `Handle.Plugin`: a plugin that names another, as
   * `disagg-profile-handler` names its decider, finds it here). Complete once every plugin is built: call it from
   * `resolveReferences`, not the constructor (upstream builds such dependencies first, whatever the config's order).
   */
  readonly plugin?: (name: string) => Plugin | undefined;
  /** Every plugin of the config, in its order (same completeness rule as `plugin`). */
  readonly plugins?: () => Iterable<Plugin>;
  /**
   * The config's scheduling profiles, each with the names of the plugins it lists in order, for a plugin whose work
   * needs another in the same profile (`prefix-cache-affinity-filter` reads a prefix scorer that learns only from the
   * picks of the profiles listing it).
   */
  readonly profiles?: () => readonly { readonly name: string; readonly plugins: readonly { readonly pluginRef: string }[] }[];
}
