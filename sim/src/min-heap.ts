/** A binary min-heap ordered by `less`; the simulator's event queue and the bench's eviction order both use it. */
export class MinHeap<T> {
  private readonly a: T[] = [];

  constructor(private readonly less: (x: T, y: T) => boolean) {}

  get size(): number {
    return this.a.length;
  }

  peek(): T | undefined {
    return this.a[0];
  }

  push(item: T): void {
    const a = this.a;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): T | undefined {
    const top = this.a[0];
    if (top !== undefined) this.removeAt(0);
    return top;
  }

  /** Takes `item` (the same object) out of the heap; false if it is not there. */
  remove(item: T): boolean {
    const i = this.a.indexOf(item);
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  private removeAt(at: number): void {
    const a = this.a;
    const last = a.pop() as T;
    if (at === a.length) return;
    a[at] = last;
    // The moved item may belong above its new place or below it.
    let i = at;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
    if (i === at) {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m])) m = l;
        if (r < a.length && this.less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
  }
}
