/**
 * A read-only Map whose entries are built on the first read. The scheduling cycle publishes per-endpoint values by
 * candidate position (typed arrays); the keyed Maps that logs, tests and some plugins read cost more to build at 256
 * candidates than the cycle's own work, so they are built only for the readers that ask.
 */
export abstract class LazyReadonlyMap<K, V> implements ReadonlyMap<K, V> {
  private map: Map<K, V> | undefined;

  /** Builds the entries, once. */
  protected abstract build(): Map<K, V>;

  private get built(): Map<K, V> {
    this.map ??= this.build();
    return this.map;
  }

  get size(): number { return this.built.size; }
  get(key: K): V | undefined { return this.built.get(key); }
  has(key: K): boolean { return this.built.has(key); }
  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    this.built.forEach((v, k) => fn.call(thisArg, v, k, this));
  }
  entries(): MapIterator<[K, V]> { return this.built.entries(); }
  keys(): MapIterator<K> { return this.built.keys(); }
  values(): MapIterator<V> { return this.built.values(); }
  [Symbol.iterator](): MapIterator<[K, V]> { return this.built[Symbol.iterator](); }
}
