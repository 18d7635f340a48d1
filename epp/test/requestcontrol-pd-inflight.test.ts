/**
 * A P/D request's prefill pick counted in flight, as llm-d-router v0.10.0's in-flight load producer counts it
 * (`pkg/epp/framework/plugins/requestcontrol/dataproducer/inflightload/producer.go`): PreRequest increments every
 * profile result's first target, the decode pod and the prefill pod; ResponseBody releases the `prefill` profile's
 * entry at the response's first body chunk (StartOfStream) and every entry still held at its end (EndOfStream, which
 * `handlers/server.go` also runs for a stream that ends early). Read by `active-request-scorer` (the datastore's
 * `activeRequests`) and by `saturation-filter`'s unseen queue (`netPicksSinceScrape`).
 */
import { parseEndpointPickerConfig } from '../src/config';
import { monotonicMs } from '../src/clock';
import { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { RequestControl } from '../src/requestcontrol/request-control';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';

const DECODE = ['10.0.1.1:8000', '10.0.1.2:8000'];
const PREFILL = ['10.0.2.1:8000', '10.0.2.2:8000'];

/** Two decode and two prefill pods (llm-d's role label), idle, not scraped: their pages set by hand, fresh. */
function pdPool(): Datastore {
  const ds = new Datastore({ scrape: false });
  const add = (key: string, name: string, role: string) => {
    const address = key.split(':')[0]!;
    ds.upsertEndpoint({ key, name, namespace: 'ns', address, port: 8000, labels: { 'llm-d.ai/role': role } });
    ds.setMetrics(key, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
  };
  DECODE.forEach((k, i) => add(k, `decode-${i}`, 'decode'));
  PREFILL.forEach((k, i) => add(k, `prefill-${i}`, 'prefill'));
  return ds;
}

let seq = 0;
const completion = (prompt = 'hello'): IncomingRequest => ({
  requestId: `r${++seq}`,
  headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json']]),
  body: Buffer.from(JSON.stringify({ model: 'm', prompt })),
  filterMetadata: {},
});

type Routed = Extract<RouteDecision, { kind: 'route' }>;
async function route(control: RequestControl, prompt?: string): Promise<Routed & { prefill: string | undefined }> {
  const d = await control.route(completion(prompt));
  if (d.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(d)}`);
  return { ...d, prefill: d.setHeaders?.['x-prefiller-host-port'] || undefined };
}

const counts = (ds: Datastore, keys: readonly string[]) => keys.map((k) => ds.activeRequests(k));
const unseen = (ds: Datastore, keys: readonly string[]) => keys.map((k) => ds.netPicksSinceScrape(k));

describe('a P/D request counts its prefill pod in flight (llm-d-router v0.10.0 inflightload/producer.go)', () => {
  let ds: Datastore;
  beforeEach(() => { ds = pdPool(); });
  afterEach(() => ds.stop());

  test.each(['completed', 'cancelled', 'error'] as const)('from the commit, on the prefill pod as on the decode pod, in activeRequests and the unseen queue; a request %s leaves no count on either', async (outcome) => {
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['pd-disaggregation'])) });
    const d = await route(control);
    expect(DECODE).toContain(d.endpoint);
    expect(PREFILL).toContain(d.prefill);
    expect(ds.activeRequests(d.endpoint)).toBe(1);
    expect(ds.activeRequests(d.prefill!)).toBe(1);
    expect(ds.netPicksSinceScrape(d.prefill!)).toBe(1);
    control.release(d.ticket, outcome);
    expect(counts(ds, [...DECODE, ...PREFILL])).toEqual([0, 0, 0, 0]);
    // Routed, then ended, both after the page: nothing left unseen.
    expect(unseen(ds, [...DECODE, ...PREFILL])).toEqual([0, 0, 0, 0]);
  });

  test('a burst of P/D requests spreads over the prefill pods by active-request-scorer in the prefill profile, each pick seeing those before it', async () => {
    const config = LLMD_GUIDE_CONFIGS['pd-disaggregation'].replace(
      '- name: prefill\n  plugins:\n  - pluginRef: prefill-filter\n',
      '- name: prefill\n  plugins:\n  - pluginRef: prefill-filter\n  - pluginRef: active-request-scorer\n    weight: 10\n',
    );
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(config)) });
    const routed = [];
    for (let i = 0; i < 4; i++) routed.push(await route(control, `burst ${i}`));
    expect(counts(ds, PREFILL)).toEqual([2, 2]);
    expect(routed.map((d) => d.prefill).sort()).toEqual([PREFILL[0], PREFILL[0], PREFILL[1], PREFILL[1]]);
    for (const d of routed) control.release(d.ticket, 'completed');
    expect(counts(ds, [...DECODE, ...PREFILL])).toEqual([0, 0, 0, 0]);
  });

  test('saturation-filter in the prefill profile counts the P/D picks its pages cannot show yet: a burst fills each prefill pod one past the threshold, the rest decode alone', async () => {
    const config = LLMD_GUIDE_CONFIGS['pd-disaggregation']
      .replace('- type: max-score-picker\n', '- type: max-score-picker\n- type: saturation-filter\n  parameters: {queueDepthThreshold: 0, metricsStalenessThreshold: 1m}\n')
      .replace('- name: prefill\n  plugins:\n  - pluginRef: prefill-filter\n', '- name: prefill\n  plugins:\n  - pluginRef: prefill-filter\n  - pluginRef: saturation-filter\n');
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(config)) });
    const routed = [];
    for (let i = 0; i < 4; i++) routed.push(await route(control, `burst ${i}`));
    expect(routed.map((d) => d.prefill)).toEqual([expect.any(String), expect.any(String), undefined, undefined]);
    expect(unseen(ds, PREFILL)).toEqual([1, 1]);
    for (const d of routed) control.release(d.ticket, 'completed');
    expect(counts(ds, [...DECODE, ...PREFILL])).toEqual([0, 0, 0, 0]);
  });

  test('the prefill pick is released at the response\'s start (upstream\'s StartOfStream): its headers when the EPP is shown no body, else its first body chunk; the decode pick at the end; neither twice', async () => {
    ds.removeEndpoint(PREFILL[1]!);
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['pd-disaggregation'])) });
    const a = await route(control, 'a');
    const b = await route(control, 'b');
    expect([a.prefill, b.prefill]).toEqual([PREFILL[0], PREFILL[0]]);
    expect(ds.activeRequests(PREFILL[0]!)).toBe(2);
    const decoding = () => ds.activeRequests(a.endpoint) + (a.endpoint === b.endpoint ? 0 : ds.activeRequests(b.endpoint));
    expect(decoding()).toBe(2);
    // a: response body mode NONE (kvroute's EnvoyFilter), a streamed response: its headers are the start the EPP sees.
    control.responseHeaders(a.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]), {}, false);
    expect(ds.activeRequests(PREFILL[0]!)).toBe(1);
    expect(decoding()).toBe(2);
    control.release(a.ticket, 'completed');
    expect(ds.activeRequests(PREFILL[0]!)).toBe(1); // b's, not released a second time by a's end
    expect(decoding()).toBe(1);
    // b: the EPP is shown the body: its headers release nothing, its first chunk releases the prefill pick.
    control.responseHeaders(b.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]), {}, true);
    expect(ds.activeRequests(PREFILL[0]!)).toBe(1);
    control.responseBody(b.ticket, Buffer.from('data: {"choices":[]}\n\n'), false);
    expect(ds.activeRequests(PREFILL[0]!)).toBe(0);
    expect(decoding()).toBe(1);
    control.responseBody(b.ticket, Buffer.from('data: [DONE]\n\n'), true);
    control.release(b.ticket, 'completed');
    expect(counts(ds, [...DECODE, ...PREFILL])).toEqual([0, 0, 0, 0]);
  });

  test('a non-streamed response\'s start is its decode\'s end: a page requested since the pick may already show the prefill gone, so the unseen queue does not count its end again (review 51)', async () => {
    ds.removeEndpoint(PREFILL[1]!);
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['pd-disaggregation'])) });
    const a = await route(control, 'a');
    expect(a.prefill).toBe(PREFILL[0]);
    expect(unseen(ds, [PREFILL[0]!])).toEqual([1]);
    // The prefill pod's page, requested after the pick and after its prefill ended: nothing of it left to show.
    await new Promise((r) => setTimeout(r, 5));
    // Read on the store's clock (monotonicMs, src/clock.ts), which stamped the pick: Date.now() may lag it by more than
    // the 5 ms, and the page would then seem requested before the pick.
    const requested = monotonicMs();
    ds.setMetrics(PREFILL[0]!, { waitingQueueSize: 0, runningQueueSize: 0, updateTime: requested, requestTime: requested });
    expect(unseen(ds, [PREFILL[0]!])).toEqual([0]);
    control.responseHeaders(a.ticket, new Map([[':status', '200'], ['content-type', 'application/json']]), {}, false);
    expect(ds.activeRequests(PREFILL[0]!)).toBe(0);
    expect(unseen(ds, [PREFILL[0]!])).toEqual([0]); // not -1: the pod is not one request emptier than its page
    // Without a page in between, the late end nets out the pick.
    const b = await route(control, 'b');
    expect(unseen(ds, [PREFILL[0]!])).toEqual([1]);
    control.responseHeaders(b.ticket, new Map([[':status', '200'], ['content-type', 'application/json']]), {}, false);
    expect(unseen(ds, [PREFILL[0]!])).toEqual([0]);
    control.release(a.ticket, 'completed');
    control.release(b.ticket, 'completed');
  });

  test('a pod picked by both profiles counts twice until the response starts, as upstream\'s per-profile entries', async () => {
    // One pod serving both roles (llm-d's role label "both").
    for (const k of [...DECODE, ...PREFILL]) ds.removeEndpoint(k);
    ds.upsertEndpoint({ key: '10.0.3.1:8000', name: 'both', namespace: 'ns', address: '10.0.3.1', port: 8000, labels: { 'llm-d.ai/role': 'both' } });
    ds.setMetrics('10.0.3.1:8000', { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['pd-disaggregation'])) });
    const d = await route(control);
    expect([d.endpoint, d.prefill]).toEqual(['10.0.3.1:8000', '10.0.3.1:8000']);
    expect(ds.activeRequests(d.endpoint)).toBe(2);
    control.responseHeaders(d.ticket, new Map([[':status', '200']]));
    expect(ds.activeRequests(d.endpoint)).toBe(1);
    control.release(d.ticket, 'cancelled');
    expect(ds.activeRequests(d.endpoint)).toBe(0);
  });

  test('as upstream (its constant `profilePrefill`), only a profile named `prefill` is released at the response\'s start: a prefill profile named otherwise is held to the request\'s end', async () => {
    const config = LLMD_GUIDE_CONFIGS['pd-disaggregation']
      .replace('    deciders:\n', '    profiles: {prefill: pf}\n    deciders:\n')
      .replace('- type: disagg-headers-handler\n', '- type: disagg-headers-handler\n  parameters: {prefillProfile: pf}\n')
      .replace('- name: prefill\n', '- name: pf\n');
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(config)) });
    const d = await route(control);
    expect(PREFILL).toContain(d.prefill);
    expect(ds.activeRequests(d.prefill!)).toBe(1);
    control.responseHeaders(d.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]), {}, false);
    control.responseBody(d.ticket, Buffer.from('data: {"choices":[]}\n\n'), false);
    expect(ds.activeRequests(d.prefill!)).toBe(1);
    control.release(d.ticket, 'completed');
    expect(counts(ds, [...DECODE, ...PREFILL])).toEqual([0, 0, 0, 0]);
  });

  test('a decode-only request (the decider said no prefill) counts its decode pod alone', async () => {
    const config = LLMD_GUIDE_CONFIGS['pd-disaggregation'].replace('- type: always-disagg-pd-decider\n', '- type: always-disagg-pd-decider\n- type: prefix-based-pd-decider\n  name: never\n')
      .replace('prefill: always-disagg-pd-decider', 'prefill: never');
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(config)) });
    const d = await route(control);
    expect(d.prefill).toBeUndefined();
    expect(counts(ds, PREFILL)).toEqual([0, 0]);
    expect(ds.activeRequests(d.endpoint)).toBe(1);
    control.release(d.ticket, 'completed');
    expect(ds.activeRequests(d.endpoint)).toBe(0);
  });
});

describe('a P/D request\'s prefill pick released at the response\'s start frees pool capacity for flow control at once', () => {
  let ds: Datastore;
  let control: RequestControl | undefined;
  beforeEach(() => { ds = pdPool(); });
  afterEach(() => { control?.close(); ds.stop(); });

  test('a request held by the pool detector (concurrency-detector) is dispatched when the prefill pick is released, not at the next tick', async () => {
    // One decode and one prefill pod, at most one request each: a P/D request in flight fills the pool (2 of 2).
    ds.removeEndpoint(DECODE[1]!);
    ds.removeEndpoint(PREFILL[1]!);
    const config = LLMD_GUIDE_CONFIGS['pd-disaggregation']
      .replace('- type: max-score-picker\n', '- type: max-score-picker\n- type: concurrency-detector\n  parameters: {maxConcurrency: 1}\n')
      .replace('schedulingProfiles:\n', 'saturationDetector:\n  pluginRef: concurrency-detector\nschedulingProfiles:\n');
    // A tick far away: only the request control's own wake-ups dispatch.
    const queue = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
    control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(config)), flowControl: { queue, tickMs: 60_000 } });
    const first = await route(control, 'first');
    expect([ds.activeRequests(DECODE[0]!), ds.activeRequests(PREFILL[0]!)]).toEqual([1, 1]);
    let second: RouteDecision | undefined;
    const pending = control.route(completion('second')).then((d) => { second = d; });
    await new Promise((r) => setTimeout(r, 20));
    expect(second).toBeUndefined(); // the pool is full: it waits
    // The response starts (headers, body mode NONE): the prefill pod's count ends, the pool has room (1 of 2).
    control.responseHeaders(first.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]), {}, false);
    expect(ds.activeRequests(PREFILL[0]!)).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(second?.kind).toBe('route');
    control.release(first.ticket, 'completed');
    await pending;
    if (second?.kind === 'route') control.release(second.ticket, 'completed');
  });
});
