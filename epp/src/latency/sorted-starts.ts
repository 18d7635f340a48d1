/**
 * The start times of the requests one EPP has in flight on one pod, earliest first, with O(log n) lookup by rank and by
 * request id. The slot wait reads them per candidate per request, so a full pod (hundreds of requests in flight at
 * vLLM's default `--max-num-seqs` 256) must cost a binary search there, not a walk over every entry.
 */
export class SortedStarts {
  /** Parallel arrays sorted by time; equal times keep the order they were added in. */
  private readonly times: number[] = [];
  private readonly ids: string[] = [];
  private readonly byId = new Map<string, number>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.times.length;
  }

  /** The latest start, -Infinity when empty. */
  latest(): number {
    return this.times.length === 0 ? -Infinity : this.times[this.times.length - 1]!;
  }

  /** The start of the entry of rank `index` (0: the earliest). */
  at(index: number): number {
    return this.times[index]!;
  }

  /** Adds (or moves) `id` at `startMs`; past `capacity` the earliest is dropped (only the youngest are ever read). */
  set(id: string, startMs: number): void {
    this.delete(id);
    const i = this.upperBound(startMs);
    if (i === this.times.length) {
      this.times.push(startMs);
      this.ids.push(id);
    } else {
      this.times.splice(i, 0, startMs);
      this.ids.splice(i, 0, id);
    }
    this.byId.set(id, startMs);
    if (this.times.length > this.capacity) {
      this.times.shift();
      this.byId.delete(this.ids.shift()!);
    }
  }

  delete(id: string): boolean {
    const startMs = this.byId.get(id);
    if (startMs === undefined) return false;
    this.byId.delete(id);
    for (let i = this.lowerBound(startMs); i < this.times.length && this.times[i] === startMs; i++) {
      if (this.ids[i] === id) {
        this.times.splice(i, 1);
        this.ids.splice(i, 1);
        return true;
      }
    }
    return true;
  }

  /** The first index whose time is ≥ `t`. */
  private lowerBound(t: number): number {
    let lo = 0;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.times[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first index whose time is > `t`. */
  private upperBound(t: number): number {
    let lo = 0;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.times[mid]! <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
