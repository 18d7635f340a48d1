/**
 * An approximate prefix tree over raw request text, one per worker, as SGLang's cache-aware router keeps: a radix tree
 * on characters (no tokenizer in the router), whose size is the number of characters it holds, with least-recently-
 * used leaves evicted once it grows past a budget. "Approximate" because it records what the router sent, not what the
 * worker actually keeps: an eviction on the worker is invisible here.
 */

import { MinHeap } from '@kvroute/sim/min-heap';

interface TreeNode {
  /** The characters on the edge from the parent to this node ('' for the root). */
  edge: string;
  /** Children keyed by the first character of their edge. */
  readonly children: Map<string, TreeNode>;
  parent: TreeNode | undefined;
  /** Logical time of the last insert that passed through this node. */
  lastAccess: number;
}

function commonLength(edge: string, text: string, from: number): number {
  const n = Math.min(edge.length, text.length - from);
  let i = 0;
  while (i < n && edge.charCodeAt(i) === text.charCodeAt(from + i)) i++;
  return i;
}

export class ApproxPrefixTree {
  private readonly root: TreeNode = { edge: '', children: new Map(), parent: undefined, lastAccess: 0 };
  private chars = 0;
  private nodes = 0;
  private clock = 0;
  /** Characters evicted so far. */
  evictedChars = 0;

  /** Characters held (the "tree size" SGLang compares). */
  get size(): number {
    return this.chars;
  }

  /** Nodes besides the root. */
  get nodeCount(): number {
    return this.nodes;
  }

  /** Length of the longest prefix of `text` the tree holds, in characters. Does not count as an access. */
  matchLength(text: string): number {
    let node = this.root;
    let i = 0;
    // Each pass consumes at least one character or returns, so the loop runs at most text.length times.
    while (i < text.length) {
      const child = node.children.get(text[i]);
      if (!child) return i;
      const common = commonLength(child.edge, text, i);
      i += common;
      if (common < child.edge.length) return i;
      node = child;
    }
    return i;
  }

  /** Adds `text`, marking every node on its path as just used. */
  insert(text: string): void {
    const now = ++this.clock;
    let node = this.root;
    node.lastAccess = now;
    let i = 0;
    while (i < text.length) {
      const child = node.children.get(text[i]);
      if (!child) {
        const leaf: TreeNode = { edge: text.slice(i), children: new Map(), parent: node, lastAccess: now };
        node.children.set(text[i], leaf);
        this.chars += leaf.edge.length;
        this.nodes++;
        return;
      }
      const common = commonLength(child.edge, text, i);
      if (common < child.edge.length) {
        // Split the edge: node → mid (the shared part) → child (the rest). The character count is unchanged.
        const mid: TreeNode = { edge: child.edge.slice(0, common), children: new Map(), parent: node, lastAccess: now };
        child.edge = child.edge.slice(common);
        child.parent = mid;
        mid.children.set(child.edge[0], child);
        node.children.set(mid.edge[0], mid);
        this.nodes++;
        node = mid;
      } else {
        child.lastAccess = now;
        node = child;
      }
      i += common;
    }
  }

  /**
   * Evicts least-recently-used leaves (a parent left without children becomes a leaf in turn) until the tree holds at
   * most `maxChars` characters. Returns the characters removed.
   */
  evictTo(maxChars: number): number {
    if (this.chars <= maxChars) return 0;
    const heap = new MinHeap<TreeNode>((x, y) => x.lastAccess < y.lastAccess);
    const stack: TreeNode[] = [this.root];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n !== this.root && n.children.size === 0) heap.push(n);
      for (const c of n.children.values()) stack.push(c);
    }
    let removed = 0;
    // Every pass removes one node; the tree has `nodes` of them.
    while (this.chars > maxChars && heap.size > 0) {
      const leaf = heap.pop()!;
      const parent = leaf.parent!;
      parent.children.delete(leaf.edge[0]);
      leaf.parent = undefined;
      this.chars -= leaf.edge.length;
      removed += leaf.edge.length;
      this.nodes--;
      if (parent !== this.root && parent.children.size === 0) heap.push(parent);
    }
    this.evictedChars += removed;
    return removed;
  }
}
