import { LRUCache } from 'lru-cache';

/**
 * A session binding table: session key -> the bound endpoint's `endpointIdentity` (namespace/name), at most `capacity`
 * sessions (least recently used dropped), each expiring `ttlMs` after it was last set (reads do not extend it). Shared by the session-affinity filter and the
 * session-affinity scorer's `session_id` strategy. The handle's clock drives expiry so tests control time;
 * ttlResolution 0 reads that clock on every check instead of caching it behind a timer per call, and an expired
 * binding is gone the moment it is read (no sweep needed).
 */
export function createBindingTable(capacity: number, ttlMs: number, now: () => number): LRUCache<string, string> {
  return new LRUCache<string, string>({
    max: capacity,
    ttl: ttlMs,
    ttlResolution: 0,
    ttlAutopurge: false,
    perf: { now },
  });
}
