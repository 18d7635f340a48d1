import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import type { PostResponse, ResponseInfo } from '../../requestcontrol/hooks';
import type { CycleContext, Scorer } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';
import type { LLMRequest } from '../types';

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
 * @see llm-d/llm-d-inference-scheduler: pkg/plugins/scorer/session_affinity.go @ v0.2.1
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

export const sessionAffinityScorer = definePlugin({
  type: 'session-affinity-scorer',
  kinds: ['scorer', 'post-response'],
  parameters: NO_PARAMETERS,
  create: (name) => new SessionAffinityScorer(name),
});
