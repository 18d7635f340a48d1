/**
 * A pod's own keys, least recently stored or used first: the KV block index drops from the oldest end when the pod
 * passes its capacity, and moves a key to the newest end each time it is stored again or a routed request uses it, or
 * just below its parent's key when its event names a held parent (`useBefore`).
 *
 * Why not a Map in insertion order (what it was until session 42): both of the ways to use one as an LRU cost
 * O(keys held) in V8. Moving a key by `delete(key); set(key, …)` leaves the deleted entry in the key's hash chain
 * until the table is rehashed, which happens only after about a table's worth of deletions, so a hot key (a shared
 * system prompt's blocks, touched by every routed request) grows a chain that every lookup of it walks: 213 µs a
 * request at 65,536 keys on the pod (`bench:hot-keys`; 42 µs now). And `keys().next()` for the oldest walks every
 * hole that deletions left at the table's start. Here the order is a doubly linked list through slots of typed arrays; the Map only finds a key's slot
 * and sees one `set` when a key arrives and one `delete` when it goes, never both for the same key on a move.
 *
 * Memory: the Map's entry as before (a key and a small-integer slot) plus 16 bytes a slot (the key as a float64, two
 * int32 links), the arrays growing by doubling and never shrinking below the most keys the pod held at once.
 */
const NONE = -1;

export class KeyLru {
  private readonly slotOf = new Map<number, number>();
  private keyAt: Float64Array;
  private olderAt: Int32Array;
  private newerAt: Int32Array;
  private oldestSlot = NONE;
  private newestSlot = NONE;
  /** Freed slots, chained through `newerAt`. */
  private freeSlot = NONE;
  /** Slots handed out so far (the arrays' used prefix). */
  private allocated = 0;

  constructor(initialSlots = 16) {
    this.keyAt = new Float64Array(initialSlots);
    this.olderAt = new Int32Array(initialSlots);
    this.newerAt = new Int32Array(initialSlots);
  }

  get size(): number {
    return this.slotOf.size;
  }

  has(key: number): boolean {
    return this.slotOf.has(key);
  }

  /** Makes `key` the most recently stored, adding it when absent. */
  use(key: number): void {
    const slot = this.slotOf.get(key);
    if (slot !== undefined) {
      this.moveToNewest(slot);
      return;
    }
    const fresh = this.takeSlot();
    this.keyAt[fresh] = key;
    this.slotOf.set(key, fresh);
    this.link(fresh);
  }

  /**
   * Puts `key` just before `newer` in the order (the next less recently used after it), adding it when absent; the most
   * recently used when `newer` is not held. The KV block index stores a block just before its parent, so that over
   * capacity a chain is dropped from its tail and a held block's parent is never dropped before it.
   */
  useBefore(key: number, newer: number): void {
    const anchor = this.slotOf.get(newer);
    if (anchor === undefined || key === newer) {
      this.use(key);
      return;
    }
    let slot = this.slotOf.get(key);
    if (slot !== undefined) {
      if (this.newerAt[slot] === anchor) return;
      this.unlink(slot);
    } else {
      slot = this.takeSlot();
      this.keyAt[slot] = key;
      this.slotOf.set(key, slot);
    }
    const older = this.olderAt[anchor]!;
    this.olderAt[slot] = older;
    this.newerAt[slot] = anchor;
    if (older !== NONE) this.newerAt[older] = slot;
    else this.oldestSlot = slot;
    this.olderAt[anchor] = slot;
  }

  /** Makes `key` the most recently used if it is held; false when it is not (nothing added). */
  refresh(key: number): boolean {
    const slot = this.slotOf.get(key);
    if (slot === undefined) return false;
    this.moveToNewest(slot);
    return true;
  }

  delete(key: number): boolean {
    const slot = this.slotOf.get(key);
    if (slot === undefined) return false;
    this.slotOf.delete(key);
    this.unlink(slot);
    this.newerAt[slot] = this.freeSlot;
    this.freeSlot = slot;
    return true;
  }

  /** The least recently stored or used key, or undefined when none is held. */
  oldest(): number | undefined {
    return this.oldestSlot === NONE ? undefined : this.keyAt[this.oldestSlot];
  }

  /** Every key, in no particular order. */
  keys(): IterableIterator<number> {
    return this.slotOf.keys();
  }

  /** Keys from the least recently stored or used (for tests and diagnostics). */
  keysOldestFirst(): number[] {
    const keys: number[] = [];
    for (let slot = this.oldestSlot; slot !== NONE; slot = this.newerAt[slot]!) keys.push(this.keyAt[slot]!);
    return keys;
  }

  private moveToNewest(slot: number): void {
    if (slot === this.newestSlot) return;
    this.unlink(slot);
    this.link(slot);
  }

  /** Appends `slot` at the newest end. */
  private link(slot: number): void {
    this.olderAt[slot] = this.newestSlot;
    this.newerAt[slot] = NONE;
    if (this.newestSlot !== NONE) this.newerAt[this.newestSlot] = slot;
    else this.oldestSlot = slot;
    this.newestSlot = slot;
  }

  private unlink(slot: number): void {
    const older = this.olderAt[slot]!;
    const newer = this.newerAt[slot]!;
    if (older !== NONE) this.newerAt[older] = newer;
    else this.oldestSlot = newer;
    if (newer !== NONE) this.olderAt[newer] = older;
    else this.newestSlot = older;
  }

  private takeSlot(): number {
    if (this.freeSlot !== NONE) {
      const slot = this.freeSlot;
      this.freeSlot = this.newerAt[slot]!;
      return slot;
    }
    if (this.allocated === this.keyAt.length) this.grow();
    return this.allocated++;
  }

  private grow(): void {
    const n = Math.max(16, 2 * this.keyAt.length);
    const keyAt = new Float64Array(n);
    keyAt.set(this.keyAt);
    const olderAt = new Int32Array(n);
    olderAt.set(this.olderAt);
    const newerAt = new Int32Array(n);
    newerAt.set(this.newerAt);
    this.keyAt = keyAt;
    this.olderAt = olderAt;
    this.newerAt = newerAt;
  }
}
