/**
 * The wall clock steps on real nodes (an NTP correction, a VM's live migration or resume, a container's clock being
 * reset); the EPP's durations must not. Upstream measures them on Go's monotonic clock (`time` package docs,
 * "Monotonic Clocks"). These tests step `Date.now()` only (timers and the monotonic clock run on) and expect no change.
 */
import { FakeVllmServer, sleep, stepWallClock, turns, waitFor, type SteppedWallClock } from '@kvroute/testkit';
import { adoptClockAnchor, clockAnchorMs, monotonicMs } from '../src/clock';
import { defaultEndpointPickerConfig } from '../src/config';
import { Datastore, metricsFresh } from '../src/datastore/datastore';
import { endpointKey } from '../src/datastore/endpoint-key';
import type { IncomingRequest } from '../src/extproc/request-director';
import { FlowControlQueue, FlowControlRejection } from '../src/requestcontrol/flow-control';
import { RequestControl, RESUME_GRACE_MS } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';

const HOUR_MS = 3_600_000;
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

const outcome = (p: Promise<void>): Promise<string> => p.then(() => 'dispatched', (e: unknown) => (e instanceof FlowControlRejection ? e.reason : String(e)));

// GIE v1.5.0 pkg/epp/flowcontrol/controller/controller.go: `enqueueTime := fc.clock.Now()` on clock.RealClock (Go's
// time.Now, with its monotonic reading), so a request's TTL runs on monotonic time.
describe('flow control deadlines (GIE v1.5.0 controller.go: TTL from clock.RealClock, monotonic)', () => {
  it('a wall-clock step forward of an hour does not expire the waiting requests at once', async () => {
    const q = new FlowControlQueue({ maxQueued: 8, maxWaitMs: 60_000, maxDispatchPerCall: 8 });
    try {
      const first = outcome(q.enqueue({ flow: 'a', priority: 0 }));
      wall.step(HOUR_MS);
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
      wall.step(-HOUR_MS);
      // 300 ms of patience: on the wall clock the deadline moved an hour away and the request waited on.
      const result = await Promise.race([waiting, sleep(10_000).then(() => 'still waiting 10 s later')]);
      expect(result).toBe('deadline');
      expect(q.size).toBe(0);
    } finally {
      q.close();
    }
  });
});

/** A completion request as the ext_proc stream hands it to request control. */
const incoming = (id: string): IncomingRequest => ({
  requestId: id,
  headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json']]),
  body: Buffer.from(JSON.stringify({ model: 'm', prompt: `hello ${id}` })),
  filterMetadata: {},
});

// GIE v1.5.0 stamps a pod's metrics with `time.Now()` (pkg/epp/backend/metrics/pod_metrics.go) and judges their age
// with `time.Since(UpdateTime)` (saturationdetector/utilization/detector.go): Go's monotonic reading, so a wall-clock
// step changes no age. Real scrapers (the default worker thread) of a real HTTP server, the default scheduler clock.
describe('metric staleness (GIE v1.5.0: time.Since on the metrics\' UpdateTime, monotonic)', () => {
  let pod: FakeVllmServer;
  let ds: Datastore;
  let director: RequestControl;
  let key: string;

  async function start(staleness: string): Promise<void> {
    pod = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    // One scrape at start, the next a minute later: what a request sees is the age of that one page.
    ds = new Datastore({ refreshIntervalMs: 60_000 });
    key = endpointKey('127.0.0.1', pod.port);
    ds.upsertEndpoint({ key, name: 'pod-0', namespace: 'default', address: '127.0.0.1', port: pod.port, labels: {} });
    const config = defaultEndpointPickerConfig();
    for (const p of config.plugins) {
      if (p.type === 'saturation-filter' || p.type === 'utilization-detector') Object.assign(p.parameters ??= {}, { metricsStalenessThreshold: staleness });
    }
    director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config) });
    await waitFor(() => (ds.metrics(key)?.updateTime ?? 0) > 0, 'the first scrape');
  }

  afterEach(async () => {
    director.close();
    await ds.stop();
    await pod.close();
  });

  it('a step forward of an hour does not make a pod scraped a moment ago stale (no 503)', async () => {
    await start('30s');
    expect(await director.route(incoming('before'))).toMatchObject({ kind: 'route', endpoint: key });
    wall.step(HOUR_MS);
    // On the wall clock the page was an hour old: every pod stale, the request refused with a 503.
    expect(await director.route(incoming('after'))).toMatchObject({ kind: 'route', endpoint: key });
    expect(metricsFresh(ds.metrics(key)!, 30_000)).toBe(true);
  });

  it('a step back of an hour does not keep a page older than the threshold fresh', async () => {
    await start('150ms');
    await sleep(RESUME_GRACE_MS + 300);
    expect(metricsFresh(ds.metrics(key)!, 150)).toBe(false);
    const before = await director.route(incoming('before'));
    expect(ds.poolStats(undefined, 150).readyEndpoints).toBe(0);
    wall.step(-HOUR_MS);
    // On the wall clock the page was an hour in the future: fresh, and routed on, for the next hour.
    expect(metricsFresh(ds.metrics(key)!, 150)).toBe(false);
    // GIE's inference_pool_ready_pods (the pool's gauge): the pod is not ready on a stale page.
    expect(ds.poolStats(undefined, 150).readyEndpoints).toBe(0);
    const after = await director.route(incoming('after'));
    // Without flow control a pool whose only page is stale answers 503 (the saturation filter keeps no pod), as before the step.
    expect(before).toMatchObject({ kind: 'reject', status: 503 });
    expect(after).toMatchObject({ kind: 'reject', status: 503 });
  });
});

// The scrapes of the default `worker` mode are timed in worker threads, on their own copy of clock.ts, and compared on
// the main thread (staleness, the since-scrape ledger, the latency models' intervals). A worker anchored on its own at
// its start (a restart after a crash, or a pool that grew) would read a step of the wall clock since the main thread's
// start into every page's age: the monotonic clock's point (Go's one monotonic reading per process, `time` package
// docs, "Monotonic Clocks") is that no thread of the process sees the step.
describe('scrape workers stamp their pages on the main thread\'s clock (clock.ts adoptClockAnchor)', () => {
  it('a worker started after the wall clock stepped back an hour since the main thread\'s start: its page is a moment old, not an hour', async () => {
    const anchor = clockAnchorMs();
    const pod = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    // The main thread anchored before the step: its clock reads an hour past the wall clock a thread anchors on now.
    adoptClockAnchor(anchor + HOUR_MS);
    const ds = new Datastore({ refreshIntervalMs: 60_000, scrapeMode: 'worker' });
    try {
      const key = endpointKey('127.0.0.1', pod.port);
      ds.upsertEndpoint({ key, name: 'pod-0', namespace: 'default', address: '127.0.0.1', port: pod.port, labels: {} });
      await waitFor(() => (ds.metrics(key)?.updateTime ?? 0) > 0, 'the first scrape');
      const age = monotonicMs() - ds.metrics(key)!.updateTime;
      expect(age).toBeGreaterThanOrEqual(0);
      expect(age).toBeLessThan(HOUR_MS / 2);
      expect(metricsFresh(ds.metrics(key)!, 30_000)).toBe(true);
    } finally {
      await ds.stop();
      await pod.close();
      adoptClockAnchor(anchor);
    }
  });
});
