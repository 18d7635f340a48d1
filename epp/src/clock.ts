/**
 * The clock the EPP measures durations, deadlines, TTLs and metric ages on: the system's monotonic clock
 * (`process.hrtime`, CLOCK_MONOTONIC, one clock for every thread of the process), read as milliseconds and anchored
 * to the wall clock once, so its values look like `Date.now()` ones (tests and logs compare them with it) but never
 * jump. The wall clock does: an NTP correction, a VM's live migration or resume, a container's clock being reset step
 * `Date.now()` by seconds or hours, and an age or deadline measured on it is then negative or huge (every pod judged
 * stale, a queued request expired at once or kept for the length of the step). Upstream measures these on monotonic
 * time: Go's `time.Now()` carries a monotonic reading that `time.Since`/`Sub` use (Go `time` package docs, "Monotonic
 * Clocks"), which GIE's flow control reads through k8s.io/utils/clock's `RealClock` (`time.Now`).
 *
 * Wall time (`Date.now()`) stays where a wall timestamp is the contract: log lines, certificates.
 */

const hrtimeMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** The wall-clock time at which the monotonic clock read 0, as seen when this thread loaded the module. */
let anchorMs = Date.now() - hrtimeMs();

/** Monotonic milliseconds on the scale of `Date.now()` (equal to it when the process started, if no step since). */
export function monotonicMs(): number {
  return anchorMs + hrtimeMs();
}

/** This thread's anchor, for a worker thread to adopt (`adoptClockAnchor`) so its readings compare with ours. */
export function clockAnchorMs(): number {
  return anchorMs;
}

/**
 * A worker thread adopts its parent's anchor: anchored on its own, at its own start, it would differ from the main
 * thread's by any wall-clock step (or NTP slew) in between, and its scrape times would not compare with the
 * scheduler's clock.
 */
export function adoptClockAnchor(ms: number): void {
  if (!Number.isFinite(ms)) throw new RangeError(`clock anchor must be a finite number, got ${ms}`);
  anchorMs = ms;
}
