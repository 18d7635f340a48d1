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
   * first request, a session of one request so far at the learnt share of sessions that come back (so traffic whose
   * session ids name single requests stops weighing within seconds). 2 counts only sessions that came back, from the
   * start: a burst of new conversations is then placed before any of them counts.
   * @default 1
   */
  minRequests?: number;
  /**
   * Sessions added to the busiest candidate's count before normalizing: `1 − live / (max + headroom)`. 0 (the default)
   * is `1 − live / max`, where one session against none swings the full weight (more than a full prefix hit at the
   * default weights) while every count is small, as at the start of traffic.
   * @default 0
   */
  headroom?: number;
}

interface Tracked {
  readonly endpoint: string;
  readonly lastSeen: number;
  /** When the session's first request (while tracked) was picked. */
  readonly firstSeen: number;
  /** Requests the session sent while tracked. */
  readonly requests: number;
  /** Counted as not coming back (a single request, `dueMs` old): the halvings of the counts up to then; else -1. */
  lapsedAtHalving: number;
}

/** A tracked session in the activity order (`older` towards the least recently active), linked in place. */
interface SessionNode {
  readonly key: string;
  tracked: Tracked;
  older: SessionNode | undefined;
  newer: SessionNode | undefined;
}

/** A first request waiting to be judged: back within the due time, or lapsed. */
interface FirstRequest {
  readonly key: string;
  readonly tracked: Tracked;
}

/** Sessions judged (returned + lapsed) before both counts are halved, so the share follows a change of traffic. */
const RETURN_SHARE_WINDOW = 4096;
/**
 * Returns the share starts from, as if seen: 16 keeps the share above ~0.6 while the first few conversations of a fresh
 * EPP lapse before their users' first think time has been learnt, and still takes it under 0.1 once ~150 ids have not
 * come back (seconds of shared-prefix traffic with an id per request).
 */
const PRIOR_RETURNS = 16;
/** First-to-second-request gaps kept for the due time. */
const GAP_SAMPLES = 64;
/**
 * A single-request session counts as lapsed this long after its request at the least: the gap between an agent's
 * steps or a chat's turns is seconds (a response, then a think time); a shared-prefix set's users never come back.
 */
const MIN_DUE_MS = 5_000;

/**
 * `session-load-scorer` (kvroute, issue 9): places a session's first request knowing how many live sessions each pod
 * already carries, not only where this one request's prefix is cached. Each live session will send its next turns to
 * the same pod (hard affinity), so a pod's live sessions are its future queue.
 *
 * Scores `1 − live / max` per candidate (1 everywhere when none has any), for a request that carries a session id this
 * scorer has no live record of: a new session, one idle past `liveWindow`, or one re-pinned because its pod left or
 * saturated. `max` is the most sessions any candidate carries; `live` counts a candidate's sessions that came back (a
 * second request) at 1 and those of a single request so far at the share of sessions that come back, learnt: a
 * single-request session is judged lapsed when twice the 90th percentile of the recent first-to-second-request gaps
 * (at least 5 s, at most `liveWindow`) passes without a second, the share starting from 16 returns as if seen. Until
 * one lapses the share is 1 and the score
 * `(max − live) / max`; where every request carries an id of its own (each user of a shared-prefix set asks once) it
 * falls towards 0 within seconds and the scorer stops weighing those ids, which are no future queue.
 *
 * Every other request gets the same score on every candidate (1), so it changes nothing: sessionless requests follow
 * prefix and load, and a bound session is already narrowed to its pod by the session-affinity filter. Live sessions
 * and the return share are learned from the picks (post-cycle), per EPP replica.
 *
 * The nearest upstream plugin is llm-d's `no-hit-lru-scorer` (llm-d/llm-d-inference-scheduler
 * pkg/plugins/scorer/no_hit_lru.go, 2025): it spreads *cold requests* over the pods least recently given one and
 * scores every other request neutrally; this one spreads *new sessions* by the sessions each pod still carries.
 */
export class SessionLoadScorer implements Scorer, PostCycle {
  readonly type = 'session-load-scorer';
  /**
   * Session key → its node: its pod and last activity, in a list by activity linked through the nodes (`oldest` to
   * `newest`). The order is kept in the list, not in the Map's insertion order, because both ways of using a Map as an
   * LRU cost O(sessions tracked) in V8 (session 42): a refresh by `delete(key); set(key, …)` leaves a dead copy of the
   * key in its hash chain until the table rehashes, so one chatty session's lookups walked up to a table's worth of
   * them (26 µs a request at 65,536 tracked); and `keys().next()` for the oldest walks every hole deletions left at the
   * table's start (29 µs). A refresh now touches only the list; the Map sees one set per session and one delete.
   */
  private readonly sessions = new Map<string, SessionNode>();
  private oldest: SessionNode | undefined;
  private newest: SessionNode | undefined;
  /** Per endpoint: sessions that came back (a second request), and sessions of one request so far. */
  private readonly returning = new Map<string, number>();
  private readonly single = new Map<string, number>();
  private readonly windowMs: number;
  /** Single-request sessions in pick order, judged once `dueMs` old; `firstHead` is the next to judge. */
  private firstRequests: FirstRequest[] = [];
  private firstHead = 0;
  /** Sessions that came back, and sessions that lapsed, decayed together. */
  private returned = 0;
  private lapsedCount = 0;
  /** How many times the counts were halved: a lapse counted `k` halvings ago weighs 2^-k in `lapsedCount` now. */
  private halvings = 0;
  private readonly gaps: number[] = [];
  private gapAt = 0;
  private dueMs = MIN_DUE_MS;
  private readonly sessionKey = stateKey<string>('session-load-scorer session');

  constructor(
    readonly name: string,
    private readonly parameters: Required<Omit<SessionLoadScorerParameters, 'headroom'>> & Pick<SessionLoadScorerParameters, 'headroom'>,
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
    const known = this.sessions.get(key)?.tracked;
    // A live session is placed already (the affinity filter holds it to its pod): nothing to weigh.
    if (known !== undefined && candidates.some((c) => c.endpoint.key === known.endpoint)) {
      out.fill(1, 0, n);
      return;
    }
    // A session of one request so far weighs the share of such sessions that came back: 1 (every session counted, the
    // score being (max − live) ÷ max) until any is seen not to, ~0 where every request carries an id of its own.
    const share = this.returnShare();
    let max = 0;
    for (let i = 0; i < n; i++) {
      const key = candidates[i]!.endpoint.key;
      const returning = this.returning.get(key) ?? 0;
      const single = this.single.get(key) ?? 0;
      out[i] = returning + share * single;
      if (returning + single > max) max = returning + single;
    }
    const denominator = max + (this.parameters.headroom ?? 0);
    for (let i = 0; i < n; i++) out[i] = max > 0 ? 1 - out[i]! / denominator : 1;
  }

  /**
   * The share of sessions that come back: those that sent a second request over those judged (came back, or sent
   * nothing more within the due time), with `PRIOR_RETURNS` prior returns, so 1 until a session is seen not to come back.
   */
  returnShare(): number {
    return (this.returned + PRIOR_RETURNS) / (this.returned + this.lapsedCount + PRIOR_RETURNS);
  }

  /** What `returnShare` is computed from, and the due time a single request is judged at. */
  returnStats(): { returned: number; lapsed: number; dueMs: number } {
    return { returned: this.returned, lapsed: this.lapsedCount, dueMs: this.dueMs };
  }

  /** The pick: the session is live on its target from now. */
  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const key = cycle.state.get(this.sessionKey);
    const [target] = result.targets;
    // A session lives where its requests are sent: the primary profile's pick (not a P/D prefill pod's).
    if (key === undefined || target === undefined || result.primary === false) return;
    const now = this.handle.now();
    let node = this.sessions.get(key);
    const previous = node?.tracked;
    const requests = (previous?.requests ?? 0) + 1;
    if (previous !== undefined && requests === 2) this.cameBack(previous, now);
    // A new object each request: the judge queue tells a session that came back by its entry's object being replaced.
    const tracked: Tracked = { endpoint: target.endpoint.key, lastSeen: now, firstSeen: previous?.firstSeen ?? now, requests, lapsedAtHalving: -1 };
    if (node === undefined) {
      node = { key, tracked, older: undefined, newer: undefined };
      this.sessions.set(key, node);
    } else {
      this.uncount(node.tracked);
      node.tracked = tracked;
      this.unlink(node);
    }
    this.append(node);
    const counts = this.countsOf(tracked);
    if (counts !== undefined) counts.set(tracked.endpoint, (counts.get(tracked.endpoint) ?? 0) + 1);
    if (requests === 1) this.firstRequests.push({ key, tracked });
    while (this.sessions.size > this.parameters.capacity) this.forget(this.oldest!.key);
    this.compactFirstRequests();
  }

  /**
   * One compaction for the judge queue's two kinds of waste, each O(1) a pick amortized: the judged entries before
   * `firstHead` once they are over half the array, and the entries of sessions forgotten before their judgement
   * (evicted, their pod removed, come back), at most `capacity` of the rest being live, once the rest doubles past that.
   */
  private compactFirstRequests(): void {
    const queue = this.firstRequests;
    const waiting = queue.length - this.firstHead;
    if (waiting > 2 * this.parameters.capacity) {
      this.firstRequests = queue.slice(this.firstHead).filter((entry) => this.sessions.get(entry.key)?.tracked === entry.tracked);
      this.firstHead = 0;
    } else if (this.firstHead > 1024 && this.firstHead > waiting) {
      this.firstRequests = queue.slice(this.firstHead);
      this.firstHead = 0;
    }
  }

  /** A session's second request: one that came back (a lapsed one late), and its gap towards the due time. */
  private cameBack(first: Tracked, now: number): void {
    // What its lapse weighs now, after the halvings since.
    if (first.lapsedAtHalving >= 0) this.lapsedCount = Math.max(0, this.lapsedCount - 2 ** (first.lapsedAtHalving - this.halvings));
    this.returned++;
    this.decayReturnShare();
    const gap = now - first.firstSeen;
    if (this.gaps.length < GAP_SAMPLES) this.gaps.push(gap);
    else this.gaps[this.gapAt] = gap;
    this.gapAt = (this.gapAt + 1) % GAP_SAMPLES;
    // Twice the 90th percentile of the recent gaps: a chat whose users think for a minute is judged after two.
    const sorted = [...this.gaps].sort((a, b) => a - b);
    const p90 = sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))]!;
    this.dueMs = Math.min(this.windowMs, Math.max(MIN_DUE_MS, 2 * p90));
  }

  /** Judges the single-request sessions `dueMs` old: those still at one request lapsed. */
  private judge(now: number): void {
    const queue = this.firstRequests;
    while (this.firstHead < queue.length) {
      const { key, tracked } = queue[this.firstHead]!;
      if (now - tracked.firstSeen < this.dueMs) break;
      this.firstHead++;
      // Still the same single request (not forgotten, not come back since).
      if (this.sessions.get(key)?.tracked === tracked) {
        this.lapsedCount++;
        tracked.lapsedAtHalving = this.halvings;
        this.decayReturnShare();
      }
    }
  }

  private decayReturnShare(): void {
    if (this.returned + this.lapsedCount < RETURN_SHARE_WINDOW) return;
    this.returned /= 2;
    this.lapsedCount /= 2;
    this.halvings++;
  }

  /** Which per-endpoint count a tracked session is in, if any (`minRequests` leaves early ones out). */
  private countsOf(tracked: Tracked): Map<string, number> | undefined {
    if (tracked.requests < this.parameters.minRequests) return undefined;
    return tracked.requests >= 2 ? this.returning : this.single;
  }

  /** A pod that left the pool carries no sessions; its sessions are placed anew when they return. */
  removeEndpoint(endpointKey: string): void {
    for (const [key, node] of this.sessions) if (node.tracked.endpoint === endpointKey) this.forget(key);
    this.returning.delete(endpointKey);
    this.single.delete(endpointKey);
  }

  /** Live sessions per endpoint key, each counted once (the score weighs those of a single request at `returnShare`). */
  liveSessions(): ReadonlyMap<string, number> {
    this.expire(this.handle.now());
    const live = new Map(this.returning);
    for (const [key, n] of this.single) live.set(key, (live.get(key) ?? 0) + n);
    return new Map([...live].filter(([, n]) => n > 0));
  }

  /** Forgets sessions idle past the window: the least recently active first. */
  private expire(now: number): void {
    this.judge(now);
    for (let node = this.oldest; node !== undefined && now - node.tracked.lastSeen > this.windowMs; node = this.oldest) this.forget(node.key);
  }

  /** The tracked session keys, least recently active first (for tests and diagnostics). */
  keysByActivity(): string[] {
    const keys: string[] = [];
    for (let node = this.oldest; node !== undefined; node = node.newer) keys.push(node.key);
    return keys;
  }

  private append(node: SessionNode): void {
    node.older = this.newest;
    node.newer = undefined;
    if (this.newest !== undefined) this.newest.newer = node;
    else this.oldest = node;
    this.newest = node;
  }

  private unlink(node: SessionNode): void {
    if (node.older !== undefined) node.older.newer = node.newer;
    else this.oldest = node.newer;
    if (node.newer !== undefined) node.newer.older = node.older;
    else this.newest = node.older;
    node.older = undefined;
    node.newer = undefined;
  }

  private forget(key: string): void {
    const node = this.sessions.get(key);
    if (node === undefined) return;
    this.sessions.delete(key);
    this.unlink(node);
    this.uncount(node.tracked);
  }

  /** Takes a session out of its pod's count. */
  private uncount(tracked: Tracked): void {
    const counts = this.countsOf(tracked);
    if (counts === undefined) return;
    const n = (counts.get(tracked.endpoint) ?? 1) - 1;
    if (n > 0) counts.set(tracked.endpoint, n);
    else counts.delete(tracked.endpoint);
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
    // Written only when set, so configs and manifests that leave it out render as before.
    ...(fields.has('headroom') ? { headroom: fields.number('headroom', 0, 0, 1_000_000) } : {}),
    // headroom is optional in the resolved parameters too (absent = 0), so the cast only states that.
  }) as Required<SessionLoadScorerParameters>),
  create: (name, resolved, handle) => new SessionLoadScorer(name, resolved, handle),
});
