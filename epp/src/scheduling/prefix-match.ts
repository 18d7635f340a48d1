/**
 * What a prefix scorer found for the request in this cycle, published in the cycle state for plugins that need a
 * per-endpoint cached length rather than a score (the `latency-scorer` turns it into uncached tokens). Each prefix
 * scorer publishes in its own unit: the approximate index hashes characters, the precise one tokens. When both run, a
 * match in tokens is kept over one in characters: it is what vLLM will actually find.
 */
import { stateKey, type CycleState } from './framework';

export interface PrefixMatchEstimate {
  /** `characters` for the approximate `prefix-cache-scorer`, `tokens` for the `precise-prefix-cache-scorer`. */
  readonly unit: 'characters' | 'tokens';
  /** The whole prompt's length in `unit` (matches cover at most the scorer's hashed leading part of it). */
  readonly promptLength: number;
  /** Endpoint key → length of the prompt's leading part the endpoint is believed to hold, in `unit`. */
  readonly cachedLength: ReadonlyMap<string, number>;
}

export const PREFIX_MATCH = stateKey<PrefixMatchEstimate>('prefix match per endpoint');

/** Publishes `match` unless a match in tokens is already there and this one is in characters. */
export function publishPrefixMatch(state: CycleState, match: PrefixMatchEstimate): void {
  const existing = state.get(PREFIX_MATCH);
  if (existing?.unit === 'tokens' && match.unit === 'characters') return;
  state.set(PREFIX_MATCH, match);
}
