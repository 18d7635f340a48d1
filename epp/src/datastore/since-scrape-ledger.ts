/**
 * What a pod's last `/metrics` page cannot show yet: the requests this EPP routed to the pod after that page's request
 * went out, less the requests that ended on it since (`EndpointSnapshot.netPicksSinceScrape`). Kept as timed events so
 * that a page drops exactly what it may count: a page whose request went out at T shows the server at some moment
 * after T, so routes and ends at or before T are in it, and later ones are not (those during its round trip, or while
 * a worker's reading waits to reach the routing thread, are kept: counted once too often rather than missed).
 *
 * Ends count as well as routes because vLLM's queue gauge moves with both: a routed request waits in WAITING until a
 * step schedules it, and an ended one frees a running slot that the next waiting request (or the next routed one)
 * takes. Counting routes alone capped a pod at `queueDepthThreshold + 1` requests per scrape interval however fast it
 * served them (short requests, or a long interval at 256 pods).
 */

/** Events kept at most per pod: past it the oldest are dropped as if a page had counted them. */
export const MAX_LEDGER_EVENTS = 4096;

export class SinceScrapeLedger {
  private readonly times: number[] = [];
  private readonly signs: number[] = [];
  private head = 0;
  private sum = 0;

  /** Routes less ends after the last page's request. */
  get net(): number {
    return this.sum;
  }

  routed(nowMs: number): void {
    this.add(nowMs, 1);
  }

  ended(nowMs: number): void {
    this.add(nowMs, -1);
  }

  /** A page whose request went out at `requestTimeMs`: what happened at or before it is in the page. */
  pageRequestedAt(requestTimeMs: number): void {
    while (this.head < this.times.length && this.times[this.head]! <= requestTimeMs) this.dropOldest();
    this.compact();
  }

  /** A reading that stands for the server as of now (`Datastore.setMetrics`): nothing is unseen. */
  clear(): void {
    this.times.length = 0;
    this.signs.length = 0;
    this.head = 0;
    this.sum = 0;
  }

  private add(nowMs: number, sign: number): void {
    this.times.push(nowMs);
    this.signs.push(sign);
    this.sum += sign;
    if (this.times.length - this.head > MAX_LEDGER_EVENTS) {
      this.dropOldest();
      this.compact();
    }
  }

  private dropOldest(): void {
    this.sum -= this.signs[this.head]!;
    this.head++;
  }

  /** Reclaims the dropped prefix once it is most of the arrays (amortized O(1) per event). */
  private compact(): void {
    if (this.head === this.times.length) {
      this.clear();
      return;
    }
    if (this.head > 64 && this.head * 2 > this.times.length) {
      this.times.splice(0, this.head);
      this.signs.splice(0, this.head);
      this.head = 0;
    }
  }
}
