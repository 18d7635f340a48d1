import { parseDuration, type Duration } from '../../config/duration';
import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, PluginHandle, PostCycle, ProfileRunResult, Scorer } from '../framework';
import { scoresFromInto, stateKey } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { sessionKeyOf } from './session-affinity-filter';

export interface SessionLoadScorerParameters {
  /**
   * Request headers that carry a session id, first present wins; the session-affinity filter's list, so both agree on
   * what a session is. @default ["x-session-id", "x-session-token"]
   */
  headers?: string[];
  /**
   * A session counts as live on its pod while its last request is at most this old: long enough to span a user's
   * think time between turns (each live session will come back), short enough that abandoned conversations stop
   * weighing on their pod. @default "5m"
   */
  liveWindow?: Duration;
  /** Sessions tracked at most; the least recently active are forgotten beyond it (about 100 bytes each). @default 65536 */
  capacity?: number;
  /**
   * Requests a session must have sent before it counts on its pod. 1 (the default) counts every session from its
   * first request. 2 counts only sessions that came back: traffic whose session ids name single requests (each user of
   * a shared-prefix set, one question each) then weighs nothing, and prefix locality places it, while conversations
   * that do return count from their second turn.
   * @default 1
   */
  minRequests?: number;
}

interface Tracked {
  readonly endpoint: string;
  readonly lastSeen: number;
  /** Requests the session sent while tracked. */
  readonly requests: number;
}

/**
 * `session-load-scorer` (kvroute, issue 9): places a session's first request knowing how many live sessions each pod
 * already carries, not only where this one request's prefix is cached. Each live session will send its next turns to
 * the same pod (hard affinity), so a pod's live sessions are its future queue.
 *
 * Scores `(max − live) / max` of the live sessions per candidate (1 everywhere when none has any), for a request that
 * carries a session id this scorer has no live record of: a new session, one idle past `liveWindow`, or one re-pinned
 * because its pod left or saturated. Every other request gets the same score on every candidate (1), so it changes
 * nothing: sessionless requests follow prefix and load, and a bound session is already narrowed to its pod by the
 * session-affinity filter. Live sessions are learned from the picks (post-cycle), per EPP replica.
 *
 * The nearest upstream plugin is llm-d's `no-hit-lru-scorer` (llm-d/llm-d-inference-scheduler
 * pkg/plugins/scorer/no_hit_lru.go, 2025): it spreads *cold requests* over the pods least recently given one and
 * scores every other request neutrally; this one spreads *new sessions* by the sessions each pod still carries.
 */
export class SessionLoadScorer implements Scorer, PostCycle {
  readonly type = 'session-load-scorer';
  /** Session key → its pod and last activity, oldest activity first (Map order: a refresh moves it to the end). */
  private readonly sessions = new Map<string, Tracked>();
  private readonly live = new Map<string, number>();
  private readonly windowMs: number;
  private readonly sessionKey = stateKey<string>('session-load-scorer session');

  constructor(
    readonly name: string,
    private readonly parameters: Required<SessionLoadScorerParameters>,
    private readonly handle: PluginHandle,
  ) {
    this.windowMs = parseDuration(parameters.liveWindow);
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  /** Into the scheduler's buffer: a request it has nothing to weigh for costs one fill, not an array per request. */
  scoreInto(cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const n = candidates.length;
    const key = sessionKeyOf(cycle.request, this.parameters.headers);
    if (key === undefined) {
      out.fill(1, 0, n);
      return;
    }
    cycle.state.set(this.sessionKey, key);
    this.expire(this.handle.now());
    const known = this.sessions.get(key);
    // A live session is placed already (the affinity filter holds it to its pod): nothing to weigh.
    if (known !== undefined && candidates.some((c) => c.endpoint.key === known.endpoint)) {
      out.fill(1, 0, n);
      return;
    }
    let max = 0;
    for (let i = 0; i < n; i++) {
      const live = this.live.get(candidates[i]!.endpoint.key) ?? 0;
      out[i] = live;
      if (live > max) max = live;
    }
    for (let i = 0; i < n; i++) out[i] = max > 0 ? (max - out[i]!) / max : 1;
  }

  /** The pick: the session is live on its target from now. */
  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const key = cycle.state.get(this.sessionKey);
    const [target] = result.targets;
    if (key === undefined || target === undefined) return;
    const requests = (this.sessions.get(key)?.requests ?? 0) + 1;
    this.forget(key);
    this.sessions.set(key, { endpoint: target.endpoint.key, lastSeen: this.handle.now(), requests });
    if (requests >= this.parameters.minRequests) this.live.set(target.endpoint.key, (this.live.get(target.endpoint.key) ?? 0) + 1);
    while (this.sessions.size > this.parameters.capacity) this.forget(this.sessions.keys().next().value!);
  }

  /** A pod that left the pool carries no sessions; its sessions are placed anew when they return. */
  removeEndpoint(endpointKey: string): void {
    for (const [key, tracked] of this.sessions) if (tracked.endpoint === endpointKey) this.forget(key);
    this.live.delete(endpointKey);
  }

  /** Live sessions per endpoint key, as the next score would count them. */
  liveSessions(): ReadonlyMap<string, number> {
    this.expire(this.handle.now());
    return new Map([...this.live].filter(([, n]) => n > 0));
  }

  /** Forgets sessions idle past the window: the oldest activity is first in the map. */
  private expire(now: number): void {
    for (const [key, tracked] of this.sessions) {
      if (now - tracked.lastSeen <= this.windowMs) break;
      this.forget(key);
    }
  }

  private forget(key: string): void {
    const tracked = this.sessions.get(key);
    if (tracked === undefined) return;
    this.sessions.delete(key);
    if (tracked.requests < this.parameters.minRequests) return;
    const n = (this.live.get(tracked.endpoint) ?? 1) - 1;
    if (n > 0) this.live.set(tracked.endpoint, n);
    else this.live.delete(tracked.endpoint);
  }
}

export const sessionLoadScorer = definePlugin({
  type: 'session-load-scorer',
  kinds: ['scorer', 'post-cycle'],
  parameters: parameters<SessionLoadScorerParameters>((fields) => ({
    // Lower-cased because request headers reach plugins with lower-case names.
    headers: fields.stringList('headers', ['x-session-id', 'x-session-token'], { minLength: 1 }).map((h) => h.toLowerCase()),
    liveWindow: fields.duration('liveWindow', '5m'),
    capacity: fields.integer('capacity', 65536, 1),
    minRequests: fields.integer('minRequests', 1, 1, 1000),
  })),
  create: (name, resolved, handle) => new SessionLoadScorer(name, resolved, handle),
});
