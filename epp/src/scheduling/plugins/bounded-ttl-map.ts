/**
 * A map with a capacity and a sliding time-to-live: an entry expires `ttlMs` after its last `set`, and beyond
 * `capacity` the least recently set entry is dropped. Every entry has the same TTL and `set` moves it to the end, so
 * insertion order is also expiry order: expired entries are always at the front and are swept there in amortized
 * O(1), keeping memory bounded by both limits without timers.
 */
export class BoundedTtlMap<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();

  constructor(
    readonly capacity: number,
    readonly ttlMs: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The live value, or undefined when absent or expired. */
  get(key: K, now: number): V | undefined {
    this.sweep(now);
    return this.entries.get(key)?.value;
  }

  /** Stores or refreshes `key`, restarting its TTL. */
  set(key: K, value: V, now: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: now + this.ttlMs });
    if (this.entries.size > this.capacity) {
      const leastRecent = this.entries.keys().next().value as K;
      this.entries.delete(leastRecent);
    }
    this.sweep(now);
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  private sweep(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) return;
      this.entries.delete(key);
    }
  }
}
