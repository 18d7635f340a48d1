/**
 * The flow-control queue's deadlines, earliest first, so that expiring the due requests and arming the timer at the
 * next deadline cost O(log n) per waiting request instead of a pass over every waiter on every enqueue and dispatch
 * (which made filling a 1,024-request queue cost ~70 ms of the routing thread, and an 8,192-request one, a size GIE's
 * configs allow, 2.3 s: `npm run bench:flow-control -w epp`).
 *
 * Entries leave lazily: a request that is dispatched, aborted or shed is only marked `left` (its queue drops it at
 * once); its entry is skipped when it reaches the top, and the whole array is rebuilt from the live entries when the
 * dead ones outnumber them, so the heap never holds more than about twice the waiting requests.
 */
export interface DeadlineEntry {
  readonly deadlineMs: number;
  /** Tie-break: the order the entries arrived in. */
  readonly seq: number;
  /** Set when the request no longer waits. */
  left: boolean;
}

function earlier(a: DeadlineEntry, b: DeadlineEntry): boolean {
  return a.deadlineMs < b.deadlineMs || (a.deadlineMs === b.deadlineMs && a.seq < b.seq);
}

/** Rebuild once the array holds more than this many entries beyond twice the live ones. */
const SLACK = 32;

export class DeadlineHeap<E extends DeadlineEntry> {
  private entries: E[] = [];
  private live = 0;

  /** Requests still waiting (entries not marked `left`). */
  get size(): number {
    return this.live;
  }

  /** Entries held, the dead ones not yet dropped included (for tests of the bound). */
  get held(): number {
    return this.entries.length;
  }

  add(entry: E): void {
    this.live++;
    this.entries.push(entry);
    this.rise(this.entries.length - 1);
  }

  /** Marks `entry` as gone (idempotent); its slot is reclaimed later. */
  leave(entry: E): void {
    if (entry.left) return;
    entry.left = true;
    this.live--;
    if (this.entries.length > 2 * this.live + SLACK) this.rebuild();
  }

  /** The live entry with the earliest deadline, or undefined. */
  peek(): E | undefined {
    this.dropDeadTop();
    return this.entries[0];
  }

  /** Removes and returns every live entry whose deadline is at or before `nowMs`, earliest first, leaving each. */
  takeDue(nowMs: number): E[] {
    const due: E[] = [];
    for (let top = this.peek(); top !== undefined && top.deadlineMs <= nowMs; top = this.peek()) {
      this.removeTop();
      top.left = true;
      this.live--;
      due.push(top);
    }
    return due;
  }

  private dropDeadTop(): void {
    while (this.entries.length > 0 && this.entries[0]!.left) this.removeTop();
  }

  private removeTop(): void {
    const last = this.entries.pop()!;
    if (this.entries.length === 0) return;
    this.entries[0] = last;
    this.sink(0);
  }

  private rebuild(): void {
    this.entries = this.entries.filter((e) => !e.left);
    for (let i = (this.entries.length >> 1) - 1; i >= 0; i--) this.sink(i);
  }

  /** Moves the entry at `i` up to its place: the hole travels up while the parent is later. */
  private rise(i: number): void {
    const a = this.entries;
    const moving = a[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(moving, a[parent]!)) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = moving;
  }

  /** Moves the entry at `i` down to its place: the hole travels down to the earlier child while it is earlier. */
  private sink(i: number): void {
    const a = this.entries;
    const n = a.length;
    const moving = a[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && earlier(a[child + 1]!, a[child]!)) child++;
      if (!earlier(a[child]!, moving)) break;
      a[i] = a[child]!;
      i = child;
    }
    a[i] = moving;
  }
}
