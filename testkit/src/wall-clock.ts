/**
 * A wall clock a test can step, as an NTP correction, a VM's resume or a container's clock reset steps it: `Date.now`
 * reads the real time plus the step; monotonic clocks (`performance.now`, `process.hrtime`) are untouched. Installed
 * by the call; `reset` (after each test) takes the step back to 0, `restore` (after all) puts the real `Date.now` back.
 */
export interface SteppedWallClock {
  /** From now on `Date.now()` reads the real time plus `ms` (negative: behind it). */
  step(ms: number): void;
  reset(): void;
  restore(): void;
}

export function stepWallClock(): SteppedWallClock {
  const realNow = Date.now.bind(Date);
  let stepMs = 0;
  Date.now = () => realNow() + stepMs;
  return {
    step: (ms) => { stepMs = ms; },
    reset: () => { stepMs = 0; },
    restore: () => { Date.now = realNow; },
  };
}
