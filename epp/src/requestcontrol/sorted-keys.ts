/**
 * A set of strings in Go's string order, with the next key after any given one in O(log n) (expected): round-robin
 * fairness picks the first flow after the one it served last among thousands of flows (kvroute keys each anonymous
 * session its own flow), and a flow joins or leaves the set at nearly every enqueue and dispatch. A treap: each node's
 * heap priority comes from a private generator, never from the keys, so no choice of keys unbalances it.
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

interface Node {
  readonly key: string;
  readonly weight: number;
  left: Node | undefined;
  right: Node | undefined;
}

export class SortedKeys {
  private root: Node | undefined;
  private count = 0;
  private seed = 0x2545f491;

  get size(): number {
    return this.count;
  }

  has(key: string): boolean {
    let node = this.root;
    while (node !== undefined) {
      const c = compareGoStrings(key, node.key);
      if (c === 0) return true;
      node = c < 0 ? node.left : node.right;
    }
    return false;
  }

  add(key: string): void {
    if (this.has(key)) return;
    const [below, above] = split(this.root, key, false);
    this.root = merge(merge(below, { key, weight: this.nextWeight(), left: undefined, right: undefined }), above);
    this.count++;
  }

  delete(key: string): boolean {
    if (!this.has(key)) return false;
    const [below, rest] = split(this.root, key, false);
    this.root = merge(below, split(rest, key, true)[1]);
    this.count--;
    return true;
  }

  /** The smallest key. */
  first(): string | undefined {
    let node = this.root;
    while (node?.left !== undefined) node = node.left;
    return node?.key;
  }

  /** The smallest key greater than `key` (which need not be in the set). */
  after(key: string): string | undefined {
    let best: string | undefined;
    let node = this.root;
    while (node !== undefined) {
      if (compareGoStrings(node.key, key) > 0) {
        best = node.key;
        node = node.left;
      } else {
        node = node.right;
      }
    }
    return best;
  }

  /** xorshift32. */
  private nextWeight(): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }
}

/** Splits `node` into the keys below `key` (with `key` itself when `inclusive`) and the rest. */
function split(node: Node | undefined, key: string, inclusive: boolean): [Node | undefined, Node | undefined] {
  if (node === undefined) return [undefined, undefined];
  const c = compareGoStrings(node.key, key);
  if (c < 0 || (inclusive && c === 0)) {
    const [below, above] = split(node.right, key, inclusive);
    node.right = below;
    return [node, above];
  }
  const [below, above] = split(node.left, key, inclusive);
  node.left = above;
  return [below, node];
}

/** Joins two treaps, every key of `a` below every key of `b`. */
function merge(a: Node | undefined, b: Node | undefined): Node | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (a.weight > b.weight) {
    a.right = merge(a.right, b);
    return a;
  }
  b.left = merge(a, b.left);
  return b;
}
