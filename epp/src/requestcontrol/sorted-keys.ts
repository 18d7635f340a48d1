/**
 * A set of strings in Go's string order, with the next key after any given one by binary search: round-robin fairness
 * picks the first flow after the one it served last, and a flow joins or leaves the set at nearly every enqueue and
 * dispatch. A sorted array: the set holds only flows with requests waiting, at most the queue's `maxQueued` (1024 by
 * default), where moving entries on insert and delete is cheap and a balanced tree would only add code.
 */

/**
 * Go's `strings.Compare`: by UTF-8 bytes, which is code-point order. JavaScript compares UTF-16 units, which differs
 * where a surrogate pair (a code point above U+FFFF) meets a unit in U+E000-U+FFFF: the pair's unit is smaller, its
 * code point larger.
 */
export function compareGoStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      const xPair = x <= 0xdfff;
      const yPair = y <= 0xdfff;
      if (xPair !== yPair) return xPair ? 1 : -1;
    }
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

export class SortedKeys {
  private readonly keys: string[] = [];

  get size(): number {
    return this.keys.length;
  }

  has(key: string): boolean {
    const i = this.lowerBound(key);
    return i < this.keys.length && this.keys[i] === key;
  }

  add(key: string): void {
    const i = this.lowerBound(key);
    if (this.keys[i] !== key) this.keys.splice(i, 0, key);
  }

  delete(key: string): boolean {
    const i = this.lowerBound(key);
    if (this.keys[i] !== key) return false;
    this.keys.splice(i, 1);
    return true;
  }

  /** The smallest key. */
  first(): string | undefined {
    return this.keys[0];
  }

  /** The smallest key greater than `key` (which need not be in the set). */
  after(key: string): string | undefined {
    const i = this.lowerBound(key);
    return this.keys[this.keys[i] === key ? i + 1 : i];
  }

  /** The index of the first key not below `key`. */
  private lowerBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareGoStrings(this.keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
