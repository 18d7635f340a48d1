import * as net from 'node:net';

/**
 * The one place tests wait. Every wait is a condition with a generous limit that only bounds a broken test; none
 * asserts anything about speed, so a loaded two-core machine passes the same tests as an idle one.
 */

/** Limit for `waitFor` when none is given: long enough for a busy CI machine, short enough to fail a hung test. */
export const DEFAULT_WAIT_LIMIT_MS = 20_000;

export interface WaitOptions {
  /** Give up (throw) after this long. @default DEFAULT_WAIT_LIMIT_MS */
  readonly limitMs?: number;
  /** Poll interval once the event-loop turns are used up. @default 5 */
  readonly intervalMs?: number;
}

/** Resolves after `n` turns of the event loop's check phase: lets I/O callbacks run without a wall-clock timer. */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/**
 * Waits until `cond` holds: first by yielding to the event loop (in-process servers answer within a few turns), then
 * by polling. Throws `timed out waiting for <what>` after the limit.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what = 'the condition',
  options: WaitOptions = {},
): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  // On the monotonic clock, as the timers it polls with: tests step Date.now (stepWallClock) while they wait, as a node's
  // clock steps, and a step forward read on Date.now ended the wait at its next poll.
  const deadline = performance.now() + (options.limitMs ?? DEFAULT_WAIT_LIMIT_MS);
  const interval = options.intervalMs ?? 5;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(interval);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Jest's per-test limit for tests that start real servers or processes. Jest's 5 s default is too short for a
 * two-core machine under load; these limits bound a hung test, they are not performance goals.
 */
export const E2E_TEST_TIMEOUT_MS = 120_000;
export const INTEGRATION_TEST_TIMEOUT_MS = 60_000;

/** A TCP port free on loopback right now (bound and released), for a peer that must be told its address up front. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
