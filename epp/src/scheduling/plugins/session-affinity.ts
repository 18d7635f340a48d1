import { parseDuration, type ResolvedPluginParameters } from '../../config';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import {
  stateKey,
  type CycleContext,
  type Filter,
  type PluginHandle,
  type PostCycle,
  type PostResponse,
  type ProfileRunResult,
  type ResponseInfo,
  type Scorer,
} from '../framework';
import type { SessionAffinityOutcome } from '../metrics-hooks';
import type { LLMRequest } from '../types';
import { BoundedTtlMap } from './bounded-ttl-map';

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
  private readonly bindings: BoundedTtlMap<string, string>;
  private readonly pendingKey = stateKey<PendingBinding>('session-affinity-filter pending binding');
  private readonly counts = { hit: 0, miss: 0, repin: 0 };

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedPluginParameters<'session-affinity-filter'>,
    private readonly handle: PluginHandle,
  ) {
    this.bindings = new BoundedTtlMap(parameters.capacity, parseDuration(parameters.ttl));
  }

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const sessionId = this.sessionIdOf(cycle.request);
    if (sessionId === undefined) return candidates;
    const boundKey = this.bindings.get(sessionId, this.handle.now());
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
    this.bindings.set(pending.sessionId, target.endpoint.key, this.handle.now());
    this.counts[pending.outcome]++;
    this.handle.metrics.countSessionAffinity(pending.outcome);
    this.handle.metrics.setSessionBindings(this.bindings.size);
  }

  /** The endpoint key a session is bound to now, if any. */
  boundEndpoint(sessionId: string): string | undefined {
    return this.bindings.get(sessionId, this.handle.now());
  }

  stats(): SessionAffinityStats {
    return { hits: this.counts.hit, misses: this.counts.miss, repins: this.counts.repin, bindings: this.bindings.size };
  }

  private sessionIdOf(request: LLMRequest): string | undefined {
    for (const header of this.parameters.headers) {
      const value = request.headers[header];
      if (value !== undefined && value !== '') return value;
    }
    return undefined;
  }
}

const SESSION_TOKEN_HEADER = 'x-session-token';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** `namespace/name`, Go's NamespacedName string (so `/name` for static endpoints), as llm-d encodes it. */
function namespacedName(endpoint: Endpoint): string {
  return `${endpoint.namespace}/${endpoint.name}`;
}

/**
 * `session-affinity-scorer` (llm-d v0.2 semantics): the request's `x-session-token` is base64("namespace/pod");
 * that pod scores 1, all others 0, and every response carries the token of the pod that served it. A soft
 * preference: its weight decides whether prefix and load scores can outvote it. An undecodable token scores 0
 * everywhere.
 */
export class SessionAffinityScorer implements Scorer, PostResponse {
  readonly type = 'session-affinity-scorer';

  constructor(readonly name: string) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    const token = cycle.request.headers[SESSION_TOKEN_HEADER];
    const wanted = token !== undefined && BASE64.test(token) ? Buffer.from(token, 'base64').toString('utf8') : undefined;
    return candidates.map((candidate) => (wanted !== undefined && namespacedName(candidate.endpoint) === wanted ? 1 : 0));
  }

  postResponse(_request: LLMRequest, _response: ResponseInfo, target: Endpoint): Readonly<Record<string, string>> {
    return { [SESSION_TOKEN_HEADER]: Buffer.from(namespacedName(target), 'utf8').toString('base64') };
  }
}
