import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { parseDuration, type Duration } from '../../config/duration';
import type { EndpointSnapshot } from '../../datastore/types';
import { stateKey, type CycleContext, type Filter, type PluginHandle, type PostCycle, type ProfileRunResult } from '../framework';
import type { SessionAffinityOutcome } from '../metrics-hooks';
import { definePlugin, parameters } from '../plugin';
import type { LLMRequest } from '../types';

/** Longer session ids are ignored (no binding): no client needs more, and hashing one costs CPU per request. */
export const MAX_SESSION_ID_LENGTH = 4096;

export interface SessionAffinityFilterParameters {
  /**
   * Request headers that carry a session id, in priority order (the first present wins). The value is an opaque key,
   * so llm-d's `x-session-token` works too.
   * @default ["x-session-id", "x-session-token"]
   */
  headers?: string[];
  /** A binding expires after this long without a request of its session. @default "30m" */
  ttl?: Duration;
  /** Sessions remembered at most; the least recently used binding is dropped beyond it. @default 65536 */
  capacity?: number;
}

interface PendingBinding {
  readonly sessionId: string;
  readonly outcome: SessionAffinityOutcome;
}

export interface SessionAffinityStats {
  readonly hits: number;
  readonly misses: number;
  readonly repins: number;
  readonly bindings: number;
}

/**
 * `session-affinity-filter` (kvroute's hard affinity): a request carrying a session id goes to the endpoint its
 * session is bound to whenever that endpoint is still a candidate — so placed after the saturation filter, a bound
 * endpoint that is gone or saturated is not, and the session is re-bound to whatever the profile picks, once, and
 * stays there. Bindings are made on the pick (post-cycle), refreshed on every hit, expire after `ttl` without
 * requests and are capped at `capacity` sessions (least recently used dropped). Requests without a session id pass
 * through untouched.
 *
 * Why hard rather than llm-d's weighted scorer: a weighted preference can be outvoted by prefix and load scores, so
 * a session would drift between pods exactly when its cache matters; here only health moves it.
 */
export class SessionAffinityFilter implements Filter, PostCycle {
  readonly type = 'session-affinity-filter';
  readonly emptyResultReason = 'saturated' as const;
  private readonly bindings: LRUCache<string, string>;
  private readonly pendingKey = stateKey<PendingBinding>('session-affinity-filter pending binding');
  private readonly counts = { hit: 0, miss: 0, repin: 0 };

  constructor(
    readonly name: string,
    private readonly parameters: Required<SessionAffinityFilterParameters>,
    private readonly handle: PluginHandle,
  ) {
    // A binding's TTL restarts on every set (each hit re-binds in postCycle); reads do not extend it. The handle's
    // clock drives expiry so tests control time; ttlResolution 0 reads that clock on every check instead of caching
    // it behind a timer per call.
    this.bindings = new LRUCache<string, string>({
      max: parameters.capacity,
      ttl: parseDuration(parameters.ttl),
      ttlResolution: 0,
      ttlAutopurge: false,
      perf: { now: () => handle.now() },
    });
  }

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const sessionId = this.sessionIdOf(cycle.request);
    if (sessionId === undefined) return candidates;
    const boundKey = this.bindings.get(sessionId);
    if (boundKey !== undefined) {
      const bound = candidates.find((candidate) => candidate.endpoint.key === boundKey);
      if (bound !== undefined) {
        cycle.state.set(this.pendingKey, { sessionId, outcome: 'hit' });
        return [bound];
      }
    }
    cycle.state.set(this.pendingKey, { sessionId, outcome: boundKey === undefined ? 'miss' : 'repin' });
    return candidates;
  }

  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const pending = cycle.state.get(this.pendingKey);
    const [target] = result.targets;
    if (pending === undefined || target === undefined) return;
    this.bindings.set(pending.sessionId, target.endpoint.key);
    this.counts[pending.outcome]++;
    this.handle.metrics.countSessionAffinity(pending.outcome);
    this.handle.metrics.setSessionBindings(this.bindings.size);
  }

  /** The endpoint key a session id is bound to now, if any. */
  boundEndpoint(sessionId: string): string | undefined {
    const key = this.sessionIdOf({ requestId: '', model: '', prompt: '', headers: { [this.parameters.headers[0]!]: sessionId } });
    return key === undefined ? undefined : this.bindings.get(key);
  }

  stats(): SessionAffinityStats {
    return { hits: this.counts.hit, misses: this.counts.miss, repins: this.counts.repin, bindings: this.bindings.size };
  }

  /**
   * The session's key in the table: a SHA-256 digest of the id (22 base64url characters, 132 bits), so what is kept
   * per session is bounded whatever clients send (Envoy forwards headers up to 60 KiB), and ids cannot be chosen to
   * collide. Ids longer than MAX_SESSION_ID_LENGTH are not bound at all.
   */
  private sessionIdOf(request: LLMRequest): string | undefined {
    for (const header of this.parameters.headers) {
      const value = request.headers[header];
      if (value === undefined || value === '') continue;
      if (value.length > MAX_SESSION_ID_LENGTH) return undefined;
      return createHash('sha256').update(value).digest('base64url').slice(0, 22);
    }
    return undefined;
  }

  /** Characters held by the table's keys and values (its memory grows with this, not with the ids clients send). */
  bindingCharacters(): number {
    let n = 0;
    for (const [key, value] of this.bindings.entries()) n += key.length + value.length;
    return n;
  }
}

export const sessionAffinityFilter = definePlugin({
  type: 'session-affinity-filter',
  kinds: ['filter', 'post-cycle'],
  parameters: parameters<SessionAffinityFilterParameters>((fields) => ({
    // Lower-cased because request headers reach plugins with lower-case names.
    headers: fields.stringList('headers', ['x-session-id', 'x-session-token'], { minLength: 1 }).map((h) => h.toLowerCase()),
    ttl: fields.duration('ttl', '30m'),
    capacity: fields.integer('capacity', 65536, 1),
  })),
  create: (name, resolved, handle) => new SessionAffinityFilter(name, resolved, handle),
});
