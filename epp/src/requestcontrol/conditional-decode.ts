/**
 * llm-d-router v0.10.0's conditional-decode gate (RFC 7240 `Prefer: if-available`; `pkg/common/routing/common.go`
 * IsConditionalDecode, `pkg/epp/requestcontrol/director.go` primaryEndpointHasCachedPrefix, #1288): its coordinator
 * marks a speculative early decode with this preference, and the EPP forwards it only when the endpoint it picked holds
 * at least one block of the prompt; otherwise it answers 412 Precondition Failed and the coordinator restarts the
 * pipeline at prefill. Upstream reads only its default approximate producer's match (a precise producer's never
 * reaches the gate, so every such request gets 412: its release note calls the optimisation "effectively disabled"
 * there); kvroute reads whichever prefix scorer ran, the precise one's match winning as everywhere else. With a P/D
 * handler the decode pick always has a match: its profile's, else the config's prefix scorer's (the scheduler's
 * `pdPrefixSource`; the loader adds one to a P/D config that has none, as upstream's data layer makes its approximate
 * producer for the handlers that consume its match).
 */
import type { SchedulingResult } from '../scheduling/types';

/** `Prefer` as Envoy passes it (lower-cased name). */
export const PREFER_HEADER = 'prefer';
export const PREFER_IF_AVAILABLE = 'if-available';
/** The message upstream's 412 carries. */
export const NO_CACHED_PREFIX_MESSAGE = 'no decode worker has the requested KV cache';

/**
 * Whether the request asks `Prefer: if-available`: the header is a comma-separated list of preferences, each with
 * optional `;` parameters; the bare token is matched case-insensitively, surrounding whitespace ignored.
 */
export function isConditionalDecode(headers: Readonly<Record<string, string>>): boolean {
  const value = headers[PREFER_HEADER];
  if (value === undefined) return false;
  return value.split(',').some((pref) => pref.split(';', 1)[0]!.trim().toLowerCase() === PREFER_IF_AVAILABLE);
}

/** Whether the picked endpoint holds at least one block of the prompt, by the cycle's prefix match (none: false). */
export function pickHoldsCachedPrefix(result: SchedulingResult): boolean {
  const match = result.prefixMatch;
  if (match === undefined) return false;
  const key = result.target.endpoint.key;
  const byCandidate = match.byCandidate;
  if (byCandidate !== undefined) {
    const i = byCandidate.candidates.indexOf(result.target);
    if (i !== -1) return byCandidate.cachedLength[i]! > 0;
  }
  return (match.cachedLength.get(key) ?? 0) > 0;
}
