/**
 * A pod whose /metrics scrape times out is late, not gone, until `maxConsecutiveScrapeFailures` timeouts in a row; a
 * scrape that fails fast (refused connection) says it is gone at once. Real scrapers (the default worker thread) of
 * real HTTP servers on loopback, the default scheduling config, and request control with flow control.
 *
 * Upstream for comparison, GIE v1.5.0: a failed scrape leaves a pod's metrics as they were
 * (`pkg/epp/backend/metrics/pod_metrics.go` refreshMetrics: nothing is stored when FetchMetrics fails), their age then
 * makes the utilization detector count the pod as full
 * (`pkg/epp/framework/plugins/flowcontrol/saturationdetector/utilization/detector.go` Saturation), and flow control
 * holds the request: it never answers 503 for failed scrapes. kvroute keeps its 503 for pods that are really gone
 * (refused connections, HTTP errors) and waits, as upstream does, for scrapes that only came too late.
 */
import { FakeVllmServer, sleep, waitFor } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { endpointKey } from '../src/datastore/endpoint-key';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import { RequestControl, RESUME_GRACE_MS } from '../src/requestcontrol/request-control';
import { DEFAULT_MAX_CONSECUTIVE_SCRAPE_FAILURES } from '../src/scheduling/plugins/saturation-filter';
import type { UtilizationDetector } from '../src/scheduling/plugins/utilization-detector';
import { buildScheduler } from '../src/scheduling/scheduler';

jest.setTimeout(30_000);

// Every scrape of a hanging pod fails at exactly this timeout: the server never answers, whatever the machine's speed.
const SCRAPE_TIMEOUT_MS = 600;
// Below the scrape timeout, so that one timed-out scrape leaves the pod's metrics stale; far above the 20 ms interval.
const STALENESS = '150ms';
const MAX_FAILURES = 3;

/** A completion request as the ext_proc stream hands it to request control. */
const incoming = (id: string): IncomingRequest => ({
  requestId: id,
  headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json']]),
  body: Buffer.from(JSON.stringify({ model: 'm', prompt: `hello ${id}` })),
  filterMetadata: {},
});

describe('request control over a pod whose scrapes time out (real scrapers, real HTTP servers)', () => {
  let pod: FakeVllmServer;
  let ds: Datastore;
  let director: RequestControl;
  let queue: FlowControlQueue;
  let key: string;

  beforeEach(async () => {
    pod = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    ds = new Datastore({ refreshIntervalMs: 20, scrapeTimeoutMs: SCRAPE_TIMEOUT_MS });
    key = endpointKey('127.0.0.1', pod.port);
    ds.upsertEndpoint({ key, name: 'pod-0', namespace: 'default', address: '127.0.0.1', port: pod.port, labels: {} });
    const config = defaultEndpointPickerConfig();
    for (const p of config.plugins) {
      if (p.type === 'saturation-filter') Object.assign(p.parameters!, { metricsStalenessThreshold: STALENESS, maxConsecutiveScrapeFailures: MAX_FAILURES });
    }
    const scheduler = buildScheduler(config, { now: () => Date.now() });
    // Ticks of 500 ms put the EPP's own stall threshold at 5 s (10 ticks), so a starved test machine is not read as an
    // EPP stall (which makes even a dead pool wait): what is tested is the answer to the pod, not the machine's speed.
    queue = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 20_000, maxDispatchPerCall: 4 });
    director = new RequestControl({ datastore: ds, scheduler, flowControl: { queue, tickMs: 500 } });
    await waitFor(() => (ds.metrics(key)?.updateTime ?? 0) > 0, 'the first scrape');
    // Past the start-up grace, in which a pool without fresh metrics is one not scraped yet and requests wait for it.
    await sleep(RESUME_GRACE_MS + 100);
  });

  afterEach(async () => {
    director.close();
    await ds.stop();
    await pod.close();
  });


  /** Resolves with the request's answer, or with 'held' once it waits in flow control and has no answer yet. */
  async function routeOrHeld(id: string): Promise<{ answer: Promise<RouteDecision>; held: boolean }> {
    const answer = director.route(incoming(id));
    let settled = false;
    void answer.then(() => { settled = true; });
    await waitFor(() => settled || queue.size > 0, 'an answer or a wait');
    return { answer, held: !settled };
  }

  it('(a) a pod whose /metrics answers slower than the scrape timeout once holds the request for the next scrape and then routes it, not 503', async () => {
    pod.mode = 'hang';
    await waitFor(() => (ds.metrics(key)?.consecutiveFailures ?? 0) >= 1, 'a timed-out scrape');
    const { answer, held } = await routeOrHeld('late');
    // The scrape in flight still times out (the second); the one after it reads the page. A machine that stalled a
    // whole scrape timeout between the first timeout and here would have hung a third: 600 ms is the margin.
    pod.mode = 'ok';
    expect(await answer).toMatchObject({ kind: 'route', endpoint: key });
    expect(held).toBe(true);
  });

  it(`(b) a pod whose /metrics keeps hanging is dropped after ${MAX_FAILURES} timeouts in a row: 503 when it is the only pod, also for a request that waited for it`, async () => {
    pod.mode = 'hang';
    await waitFor(() => (ds.metrics(key)?.consecutiveFailures ?? 0) >= 1, 'a timed-out scrape');
    const early = await routeOrHeld('early');
    // Held, unless the machine was slow enough that the pod had already timed out MAX_FAILURES times.
    expect(early.held || ds.metrics(key)!.consecutiveFailures >= MAX_FAILURES).toBe(true);
    // The wait is bounded by the timeouts (and by staleness + LATE_WINDOW_MS), not by the 20 s flow-control deadline.
    expect(await early.answer).toMatchObject({ kind: 'reject', status: 503 });
    expect(ds.metrics(key)!.consecutiveFailures).toBeGreaterThanOrEqual(MAX_FAILURES);
    const after = await director.route(incoming('after'));
    expect(after).toMatchObject({ kind: 'reject', status: 503 });
    expect(JSON.parse((after as { body: string }).body).error).toMatchObject({ code: 'no_ready_endpoints' });
  });

  it('(c) a pod that refuses connections is dropped as soon as its metrics are stale: 503 at once, never held', async () => {
    await pod.close();
    const stalenessMs = 150;
    await waitFor(() => {
      const m = ds.metrics(key)!;
      return m.consecutiveFailures >= 1 && Date.now() - m.updateTime > stalenessMs;
    }, 'refused scrapes, the last page stale');
    const { answer, held } = await routeOrHeld('refused');
    expect(held).toBe(false);
    expect(await answer).toMatchObject({ kind: 'reject', status: 503 });
  });
});

/**
 * `maxConsecutiveScrapeFailures` set away from its default (3) in a config the real loader reads: the filter, the
 * `utilization-detector`'s `unreadable` and request control's check for a pool whose pods are all gone count the same
 * timeouts as lost (`scrapeTimeoutsToLost`), where the other two used the default whatever the config said.
 */
describe('one count of timed-out scrapes from the loaded config (saturation-filter maxConsecutiveScrapeFailures: 5)', () => {
  const LIMIT = 5;
  const CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: saturation-filter
  parameters: {metricsStalenessThreshold: ${STALENESS}, maxConsecutiveScrapeFailures: ${LIMIT}}
- type: utilization-detector
  parameters: {metricsStalenessThreshold: ${STALENESS}}
- type: queue-scorer
- type: max-score-picker
saturationDetector: {pluginRef: utilization-detector}
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: saturation-filter
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`;
  let pod: FakeVllmServer;
  let ds: Datastore;
  let director: RequestControl;
  let queue: FlowControlQueue;
  let detector: UtilizationDetector;
  let key: string;

  beforeEach(async () => {
    pod = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    ds = new Datastore({ refreshIntervalMs: 20, scrapeTimeoutMs: SCRAPE_TIMEOUT_MS });
    key = endpointKey('127.0.0.1', pod.port);
    ds.upsertEndpoint({ key, name: 'pod-0', namespace: 'default', address: '127.0.0.1', port: pod.port, labels: {} });
    const scheduler = buildScheduler(parseEndpointPickerConfig(CONFIG), { now: () => Date.now() });
    detector = scheduler.plugins.get('utilization-detector') as UtilizationDetector;
    // A short deadline: the request waits out its time while the pod has timed out fewer than LIMIT times.
    queue = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 300, maxDispatchPerCall: 4 });
    director = new RequestControl({ datastore: ds, scheduler, flowControl: { queue, tickMs: 500 } });
    await waitFor(() => (ds.metrics(key)?.updateTime ?? 0) > 0, 'the first scrape');
    await sleep(RESUME_GRACE_MS + 100);
  });

  afterEach(async () => {
    director.close();
    await ds.stop();
    await pod.close();
  });

  const snapshot = () => ds.snapshot().find((c) => c.endpoint.key === key)!;

  it(`after ${DEFAULT_MAX_CONSECUTIVE_SCRAPE_FAILURES} timeouts (the default) the metrics are late for every reader: held, then 429 at its deadline, not 503; lost for all of them at ${LIMIT}`, async () => {
    pod.mode = 'hang';
    await waitFor(() => (ds.metrics(key)?.consecutiveFailures ?? 0) >= DEFAULT_MAX_CONSECUTIVE_SCRAPE_FAILURES, 'the default count of timeouts');
    // The next timeout is SCRAPE_TIMEOUT_MS away, the one that loses the metrics twice that: the deadline (300 ms) comes first.
    expect(detector.unreadable(snapshot())).toBe(false);
    const pending = director.route(incoming('late'));
    let settled = false;
    void pending.then(() => { settled = true; });
    await waitFor(() => settled || queue.size > 0, 'an answer or a wait');
    expect(settled).toBe(false);
    const answer = await pending;
    expect(ds.metrics(key)!.consecutiveFailures).toBeLessThan(LIMIT);
    expect(answer).toMatchObject({ kind: 'reject', status: 429 });

    await waitFor(() => (ds.metrics(key)?.consecutiveFailures ?? 0) >= LIMIT, `${LIMIT} timeouts`);
    expect(detector.unreadable(snapshot())).toBe(true);
    const lost = await director.route(incoming('lost'));
    expect(lost).toMatchObject({ kind: 'reject', status: 503 });
    expect(JSON.parse((lost as { body: string }).body).error).toMatchObject({ code: 'no_ready_endpoints' });
  });
});
