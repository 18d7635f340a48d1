/**
 * The wall clock steps on real nodes (an NTP correction, a VM's live migration or resume, a container's clock being
 * reset); the EPP's durations must not. Upstream measures them on Go's monotonic clock (`time` package docs,
 * "Monotonic Clocks"). These tests step `Date.now()` only (timers and the monotonic clock run on) and expect no change.
 */
import { sleep, turns } from '@kvroute/testkit';
import { FlowControlQueue, FlowControlRejection } from '../src/requestcontrol/flow-control';

const HOUR_MS = 3_600_000;
const realNow = Date.now.bind(Date);
/** How far the test has stepped the wall clock (negative: back). */
let stepMs = 0;

beforeAll(() => {
  Date.now = () => realNow() + stepMs;
});

afterEach(() => {
  stepMs = 0;
});

afterAll(() => {
  Date.now = realNow;
});

const outcome = (p: Promise<void>): Promise<string> => p.then(() => 'dispatched', (e: unknown) => (e instanceof FlowControlRejection ? e.reason : String(e)));

// GIE v1.5.0 pkg/epp/flowcontrol/controller/controller.go: `enqueueTime := fc.clock.Now()` on clock.RealClock (Go's
// time.Now, with its monotonic reading), so a request's TTL runs on monotonic time.
describe('flow control deadlines (GIE v1.5.0 controller.go: TTL from clock.RealClock, monotonic)', () => {
  it('a wall-clock step forward of an hour does not expire the waiting requests at once', async () => {
    const q = new FlowControlQueue({ maxQueued: 8, maxWaitMs: 60_000, maxDispatchPerCall: 8 });
    try {
      const first = outcome(q.enqueue({ flow: 'a', priority: 0 }));
      stepMs = HOUR_MS;
      // The next arrival runs the queue's expiry: on the wall clock the first request was an hour past its deadline.
      const second = outcome(q.enqueue({ flow: 'b', priority: 0 }));
      await turns(5);
      expect(q.size).toBe(2);
      expect(q.dispatch(2)).toBe(2);
      expect(await first).toBe('dispatched');
      expect(await second).toBe('dispatched');
    } finally {
      q.close();
    }
  });

  it('a wall-clock step back of an hour does not keep a waiting request past its deadline', async () => {
    const q = new FlowControlQueue({ maxQueued: 8, maxWaitMs: 300, maxDispatchPerCall: 8 });
    try {
      const waiting = outcome(q.enqueue({ flow: 'a', priority: 0 }));
      stepMs = -HOUR_MS;
      // 300 ms of patience: on the wall clock the deadline moved an hour away and the request waited on.
      const result = await Promise.race([waiting, sleep(10_000).then(() => 'still waiting 10 s later')]);
      expect(result).toBe('deadline');
      expect(q.size).toBe(0);
    } finally {
      q.close();
    }
  });
});
