/**
 * Simulated time, in milliseconds of *model* time (what a real GPU would
 * take). The engine only ever talks to this interface, so tests can drive it
 * with ManualClock and never wait on wall-clock time.
 */
export interface SimClock {
  now(): number;
  /** Runs `fn` once simulated time reaches `atMs`; returns a cancel function. */
  setTimer(atMs: number, fn: () => void): () => void;
}

/** Model time = wall time × timeScale, starting at 0 when created. */
export class RealtimeClock implements SimClock {
  private readonly origin: number;

  constructor(
    private readonly timeScale: number,
    private readonly wallNow: () => number = () => performance.now(),
  ) {
    if (!(timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${timeScale}`);
    this.origin = wallNow();
  }

  now(): number {
    return (this.wallNow() - this.origin) * this.timeScale;
  }

  setTimer(atMs: number, fn: () => void): () => void {
    const delay = Math.max(0, (atMs - this.now()) / this.timeScale);
    const t = setTimeout(fn, delay);
    return () => clearTimeout(t);
  }
}

/** A clock that moves only when told to; timers fire in time order during advance(). */
export class ManualClock implements SimClock {
  private t = 0;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void }[] = [];

  now(): number {
    return this.t;
  }

  setTimer(atMs: number, fn: () => void): () => void {
    const timer = { at: Math.max(atMs, this.t), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** Advances to `this.now() + ms`, firing due timers (including ones they schedule). */
  advance(ms: number): void {
    this.advanceTo(this.t + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      let next: { at: number; seq: number; fn: () => void } | undefined;
      for (const x of this.timers) {
        if (x.at <= target && (!next || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x;
      }
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = Math.max(this.t, target);
  }

  /** Runs until no timers remain (bounded, so a bug cannot hang a test). */
  runAll(maxSteps = 1_000_000): void {
    for (let i = 0; i < maxSteps && this.timers.length > 0; i++) {
      const at = Math.min(...this.timers.map((x) => x.at));
      this.advanceTo(at);
    }
  }

  get pendingTimers(): number {
    return this.timers.length;
  }
}
