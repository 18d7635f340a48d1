/**
 * The wall clock steps on real nodes (an NTP correction, a VM's live migration or resume, a container's clock jump);
 * Envoy's timers and outlier ejections do not move with it: they are measured on `TimeSource::monotonicTime()`
 * (envoy/common/time.h; the ext_proc message timer is an Event::Timer, processor_state.cc @ v1.35.0; ejection in
 * source/common/upstream/outlier_detection_impl.cc `host_monitors_[host]->eject(time_source_.monotonicTime())`).
 * These tests step `Date.now()` (only it: timers and `performance.now()` run on) and expect the gateway not to notice.
 */
import type { ExtProcServer } from '@kvroute/epp/extproc';
import { stepWallClock, type SteppedWallClock } from '@kvroute/testkit';
import {
  completion,
  deadPort,
  destroyClientAgent,
  gateway,
  LOOPBACK,
  send,
  sleep,
  startEpp,
  startUpstream,
  TestDirector,
  waitFor,
  type Upstream,
} from './harness';

jest.setTimeout(60_000);

const HOUR_MS = 3_600_000;
const json = { 'content-type': 'application/json' };
let wall: SteppedWallClock;

beforeAll(() => {
  wall = stepWallClock();
});

afterEach(() => {
  wall.reset();
});

afterAll(() => {
  wall.restore();
});

let ups: Upstream[];
let director: TestDirector;
let epp: ExtProcServer;

beforeAll(async () => {
  ups = await Promise.all([startUpstream(), startUpstream()]);
  director = new TestDirector(ups.map((u) => u.address));
  epp = await startEpp(director);
});

afterAll(async () => {
  await epp.stop();
  await Promise.all(ups.map((u) => u.close()));
  destroyClientAgent();
});

describe('a wall-clock step does not move the gateway\'s timers', () => {
  it('the ext_proc message timeout still fires after the wall clock steps back an hour mid-wait (Envoy: Event::Timer on monotonic time)', async () => {
    // message_timeout 1 s, failure_mode_allow false: Envoy answers an empty 504 when the timer fires
    // (ext_proc.cc onMessageTimeout @ v1.35.0). Timed on Date.now, the step back made the wait an hour longer.
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, messageTimeoutMs: 1000, failureModeAllow: false });
    try {
      const seen = director.requests.length;
      const reply = send(gw.port, { body: completion(), headers: { ...json, 'x-test-action': 'hang' } });
      // The headers message is out and its timer running: now the node's clock steps back.
      await waitFor(() => director.requests.length > seen, 'the EPP got the request');
      wall.step(-HOUR_MS);
      const outcome = await Promise.race([reply.then((r) => r.status), sleep(15_000).then(() => 'still waiting 15 s later')]);
      expect(outcome).toBe(504);
      expect(gw.envoyStats()).toMatchObject({ message_timeouts: 1 });
    } finally {
      await gw.close();
    }
  });

  it('an ejected EPP replica is taken back after its ejection time though the wall clock stepped back an hour (outlier_detection_impl.cc: monotonic)', async () => {
    const dead = `${LOOPBACK}:${await deadPort()}`;
    const gw = await gateway({
      endpoints: ups.map((u) => u.address), extProc: [dead],
      extProcOutlierDetection: { consecutive5xx: 1, maxEjectionPercent: 100, baseEjectionTimeMs: 200, intervalMs: 50 },
    });
    try {
      expect((await send(gw.port, { body: completion(), headers: json })).status).toBe(200);
      expect(gw.stats().extProc.cluster!.hosts[dead]).toMatchObject({ ejected: true, ejections: 1 });
      wall.step(-HOUR_MS);
      // 200 ms of ejection: an interval tick after it unejects the host. On Date.now it stayed out for the hour.
      await waitFor(() => !gw.stats().extProc.cluster!.hosts[dead].ejected, 'the replica unejected', { limitMs: 15_000 });
    } finally {
      await gw.close();
    }
  });

  it('a fallback endpoint avoided after a connect failure comes back after ejectMs though the wall clock stepped back an hour', async () => {
    const down = `${LOOPBACK}:${await deadPort()}`;
    const gw = await gateway({ endpoints: [down, ups[0].address], extProc: `${LOOPBACK}:${await deadPort()}`, ejectMs: 200 });
    try {
      // Round robin starts at the dead endpoint: the connect fails, the retry goes to the live one, the dead one is avoided.
      await waitFor(async () => {
        await send(gw.port, { body: completion(), headers: json });
        return gw.stats().endpoints[down]?.ejected === true;
      }, 'the dead endpoint avoided', { limitMs: 15_000 });
      wall.step(-HOUR_MS);
      await waitFor(() => gw.stats().endpoints[down]?.ejected === false, 'the dead endpoint back in rotation', { limitMs: 15_000 });
    } finally {
      await gw.close();
    }
  });
});
