/**
 * waitFor's limit is measured on the monotonic clock, as the timers it polls with are: tests step `Date.now` (the
 * wall clock, `stepWallClock`) while a wait is under way, as a node's clock steps under NTP, and neither the wait nor
 * its limit may move with it.
 */
import { sleep, stepWallClock, waitFor } from '../src';

const HOUR_MS = 3_600_000;

/** A condition that counts its calls, and resolves once waitFor is past its event-loop turns (its limit set). */
function counted(holds: () => boolean): { cond: () => boolean; polling: () => Promise<void> } {
  let calls = 0;
  return {
    cond: () => {
      calls++;
      return holds();
    },
    // waitFor's first 200 calls are its setImmediate turns; the 202nd is a poll, after it computed its limit.
    polling: async () => {
      while (calls < 202) await sleep(5);
    },
  };
}

describe('waitFor and a stepped wall clock', () => {
  const wall = stepWallClock();
  afterEach(() => wall.reset());
  afterAll(() => wall.restore());

  it('a step forward of an hour during the wait does not end it as timed out', async () => {
    let ready = false;
    const c = counted(() => ready);
    const done = waitFor(c.cond, 'the condition set after the step', { limitMs: 10_000 });
    await c.polling();
    wall.step(HOUR_MS);
    // Polls after the step, then the condition holds.
    await sleep(100);
    ready = true;
    await expect(done).resolves.toBeUndefined();
  });

  it('a step back of an hour during the wait does not keep it waiting past its limit', async () => {
    const c = counted(() => false);
    const done = waitFor(c.cond, 'a condition that never holds', { limitMs: 500 });
    await c.polling();
    wall.step(-HOUR_MS);
    const outcome = await Promise.race([done.then(() => 'resolved', (e: Error) => e.message), sleep(10_000).then(() => 'still waiting 10 s later')]);
    expect(outcome).toBe('timed out waiting for a condition that never holds');
  });
});
