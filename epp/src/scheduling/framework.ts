import type { PluginKind } from '../config';
import type { Endpoint, EndpointSnapshot } from '../datastore/types';
import type { SchedulingMetrics } from './metrics-hooks';
import type { LLMRequest, SchedulingError, SchedulingErrorReason, SchedulingResult } from './types';

/**
 * The scheduling framework's extension points, shaped like GIE's: a profile handler chooses profiles; each profile
 * runs filters in order, sums weighted scorer scores, lets its picker choose and then runs its post-cycle plugins.
 * Request-lifecycle hooks (PreRequest, PostResponse) are attached globally. Plugins see an `LLMRequest` and frozen
 * endpoint snapshots, never gRPC or the live datastore. All calls are synchronous: scheduling is CPU-only work.
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
}

export interface CycleContext {
  readonly request: LLMRequest;
  readonly state: CycleState;
}

export interface Plugin {
  /** The config `type` this instance was built from. */
  readonly type: string;
  /** The config `name`, unique in the config; labels metrics. */
  readonly name: string;
}

export interface Filter extends Plugin {
  /**
   * The error when this filter leaves no candidate: 'saturated' (429) for load-based filters, 'no-endpoints' (503)
   * for eligibility filters such as roles, since no amount of waiting makes a prefill pod decode.
   */
  readonly emptyResultReason: SchedulingErrorReason;
  /** Returns the candidates to keep, in their input order. */
  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[];
}

export interface Scorer extends Plugin {
  /** One score in [0, 1] per candidate, aligned with `candidates`; the framework clamps out-of-range values. */
  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): ArrayLike<number>;
}

export interface ScoredEndpoint {
  readonly endpoint: EndpointSnapshot;
  /** Sum of score × weight over the profile's scorers. */
  readonly score: number;
}

export interface Picker extends Plugin {
  /** The chosen endpoints, best first; empty only when `scored` is. */
  pick(cycle: CycleContext, scored: readonly ScoredEndpoint[]): readonly EndpointSnapshot[];
}

export interface ProfileRunResult {
  /** The picker's choice, best first (never empty). */
  readonly targets: readonly EndpointSnapshot[];
  /** Weighted total per surviving candidate, by endpoint key. */
  readonly scores: ReadonlyMap<string, number>;
}

export interface PostCycle extends Plugin {
  /** Runs after the profile's picker succeeded. */
  postCycle(cycle: CycleContext, result: ProfileRunResult): void;
}

/** A profile's run: its result, or why it could not pick. */
export type ProfileOutcome = ProfileRunResult | SchedulingError;

export interface ProfileHandler extends Plugin {
  /** The profiles to run next given the outcomes so far; an empty list ends the cycle. */
  pickProfiles(
    cycle: CycleContext,
    profileNames: readonly string[],
    outcomes: ReadonlyMap<string, ProfileOutcome>,
  ): readonly string[];
  /** Names the profile whose result is the request's destination, or throws the SchedulingError to report. */
  processResults(cycle: CycleContext, outcomes: ReadonlyMap<string, ProfileOutcome>): { readonly primaryProfile: string };
}

export interface PreRequest extends Plugin {
  /** Runs when the request is about to be sent to `result.target`. */
  preRequest(request: LLMRequest, result: SchedulingResult): void;
}

/** What request control knows when the target's response headers arrive. */
export interface ResponseInfo {
  /** Response headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface PostResponse extends Plugin {
  /** Runs at the target's response headers; returns headers to set on the response to the client, if any. */
  postResponse(request: LLMRequest, response: ResponseInfo, target: Endpoint): Readonly<Record<string, string>> | undefined;
}

/** Plugins holding per-endpoint state, told when an endpoint leaves the pool. */
export interface EndpointRemovalAware {
  removeEndpoint(endpointKey: string): void;
}

/** What a plugin factory gets besides its name and parameters; injectable so tests control time and chance. */
export interface PluginHandle {
  /** Wall-clock milliseconds, comparable with `EndpointMetrics.updateTime`. */
  readonly now: () => number;
  /** Uniform in [0, 1). */
  readonly random: () => number;
  readonly metrics: SchedulingMetrics;
}

function hasMethod(plugin: Plugin, method: string): boolean {
  return typeof (plugin as unknown as Record<string, unknown>)[method] === 'function';
}

export const isFilter = (p: Plugin): p is Filter => hasMethod(p, 'filter');
export const isScorer = (p: Plugin): p is Scorer => hasMethod(p, 'score');
export const isPicker = (p: Plugin): p is Picker => hasMethod(p, 'pick');
export const isPostCycle = (p: Plugin): p is PostCycle => hasMethod(p, 'postCycle');
export const isProfileHandler = (p: Plugin): p is ProfileHandler => hasMethod(p, 'pickProfiles');
export const isPreRequest = (p: Plugin): p is PreRequest => hasMethod(p, 'preRequest');
export const isPostResponse = (p: Plugin): p is PostResponse => hasMethod(p, 'postResponse');
export const isEndpointRemovalAware = (p: Plugin): p is Plugin & EndpointRemovalAware => hasMethod(p, 'removeEndpoint');

/** The config catalogue's kinds a built plugin actually implements, in catalogue order. */
export function implementedKinds(plugin: Plugin): PluginKind[] {
  const checks: [PluginKind, (p: Plugin) => boolean][] = [
    ['profile-handler', isProfileHandler],
    ['filter', isFilter],
    ['scorer', isScorer],
    ['picker', isPicker],
    ['post-cycle', isPostCycle],
    ['pre-request', isPreRequest],
    ['post-response', isPostResponse],
  ];
  return checks.filter(([, implemented]) => implemented(plugin)).map(([kind]) => kind);
}
