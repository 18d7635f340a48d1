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
  /** The event number of `times[0]`: events are numbered from 0 in the order they were added, across compactions. */
  private base = 0;

  /** Routes less ends after the last page's request. */
  get net(): number {
    return this.sum;
  }

  /** Counts a route; returns its event number (for `endedSince`). */
  routed(nowMs: number): number {
    const id = this.base + this.times.length;
    this.add(nowMs, 1);
    return id;
  }

  ended(nowMs: number): void {
    this.add(nowMs, -1);
  }

  /**
   * The request whose route was event `routeId` ended at a moment not known, at or before `nowMs` (a P/D request's
   * prefill, seen only when the response starts: a non-streamed response's start is its decode's end). Once a page
   * has counted the route, that page or a later one may already show it ended, so its end is counted only while the
   * route itself is still unseen (the two then net out): otherwise the late end would count it gone a second time,
   * and the pod look one request emptier than it is until the next page (review 51). The route's own event, not its
   * time, decides: a page whose request time equals the route's millisecond counted the route only if it arrived
   * after it.
   */
  endedSince(routeId: number, nowMs: number): void {
    if (routeId < this.base + this.head) return;
    this.ended(nowMs);
  }

  /** A page whose request went out at `requestTimeMs`: what happened at or before it is in the page. */
  pageRequestedAt(requestTimeMs: number): void {
    while (this.head < this.times.length && this.times[this.head]! <= requestTimeMs) this.dropOldest();
    this.compact();
  }

  /** A reading that stands for the server as of now (`Datastore.setMetrics`): nothing is unseen. */
  clear(): void {
    this.base += this.times.length;
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
      this.base += this.head;
      this.head = 0;
    }
  }
}
