/**
 * Body bytes handed to the EPP, in order, until the EPP has returned them. Both filter phases keep one, so that when
 * the EPP fails at any point the exchange can go on with exactly the bytes the other side has not seen yet.
 */
export class EchoTracker {
  private queue: Buffer[] = [];
  private offset = 0;
  pending = 0;
  /** The EPP returned something other than what it was sent (it changed the body); nothing is kept any more. */
  diverged = false;

  push(b: Buffer): void {
    if (this.diverged || b.length === 0) return;
    this.queue.push(b);
    this.pending += b.length;
  }

  /** Consumes what the EPP returned; a difference marks the tracker diverged. */
  match(b: Buffer): void {
    if (this.diverged) return;
    let off = 0;
    while (off < b.length) {
      const q = this.queue[0];
      if (!q) return this.diverge();
      const n = Math.min(q.length - this.offset, b.length - off);
      if (q.compare(b, off, off + n, this.offset, this.offset + n) !== 0) return this.diverge();
      off += n;
      this.offset += n;
      this.pending -= n;
      if (this.offset === q.length) {
        this.queue.shift();
        this.offset = 0;
      }
    }
  }

  /** Everything sent but not yet returned; empties the tracker. */
  takeRemaining(): Buffer[] {
    const out = this.queue.map((q, i) => (i === 0 && this.offset > 0 ? q.subarray(this.offset) : q));
    this.clear();
    return out;
  }

  clear(): void {
    this.queue = [];
    this.offset = 0;
    this.pending = 0;
  }

  private diverge(): void {
    this.diverged = true;
    this.clear();
  }
}
