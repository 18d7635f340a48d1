/**
 * One `latency-scorer` listed in both profiles of a P/D config (llm-d-router v0.10.0's `disagg-profile-handler`, its
 * `deploy/config/pd-epp-config.yaml` shape): each profile's pick is tracked in the latency model from the predictions of
 * the profile that made it. The decode pick (the primary profile's) holds its sequence slot to the request's end; the
 * prefill pick counts as queued prefill work on its prefill pod from the commit to the response's start, as
 * llm-d-router v0.10.0's in-flight load producer holds a `prefill` profile's pick
 * (`pkg/epp/framework/plugins/requestcontrol/dataproducer/inflightload/producer.go`), so the picks after it see that
 * work at once instead of herding onto the same prefill pod until its next page.
 */
import { parseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { LatencyScorer } from '../src/scheduling/plugins/latency-scorer';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';

const DECODE = ['10.0.1.1:8000', '10.0.1.2:8000'];
const PREFILL = ['10.0.2.1:8000', '10.0.2.2:8000'];

function pdPool(): Datastore {
  const ds = new Datastore({ scrape: false });
  const add = (key: string, name: string, role: string) => {
    ds.upsertEndpoint({ key, name, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: { 'llm-d.ai/role': role } });
    ds.setMetrics(key, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
  };
  DECODE.forEach((k, i) => add(k, `decode-${i}`, 'decode'));
  PREFILL.forEach((k, i) => add(k, `prefill-${i}`, 'prefill'));
  return ds;
}

/** llm-d's P/D guide with one latency scorer, weight 5, in both profiles (or in the prefill profile alone). */
function pdWithLatencyScorer(prefillOnly = false, prefillProfile = 'prefill'): string {
  let config = LLMD_GUIDE_CONFIGS['pd-disaggregation'].replace('- type: max-score-picker\n', '- type: max-score-picker\n- type: latency-scorer\n');
  if (prefillProfile !== 'prefill') {
    config = config
      .replace('    deciders:\n', `    profiles: {prefill: ${prefillProfile}}\n    deciders:\n`)
      .replace('- type: disagg-headers-handler\n', `- type: disagg-headers-handler\n  parameters: {prefillProfile: ${prefillProfile}}\n`)
      .replace('- name: prefill\n', `- name: ${prefillProfile}\n`);
  }
  // After the prefix scorer in each profile (the latency scorer reads its match), before the picker.
  const picker = '  - pluginRef: max-score-picker\n';
  const scored = '  - pluginRef: latency-scorer\n    weight: 5\n' + picker;
  return prefillOnly ? config.replace(picker, scored) : config.replaceAll(picker, scored);
}

/** A streamed response's headers. */
const SSE = new Map([[':status', '200'], ['content-type', 'text/event-stream']]);

let seq = 0;
const completion = (prompt: string): IncomingRequest => ({
  requestId: `r${++seq}`,
  headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json']]),
  body: Buffer.from(JSON.stringify({ model: 'm', prompt })),
  filterMetadata: {},
});

type Routed = Extract<RouteDecision, { kind: 'route' }> & { prefill: string | undefined };
async function route(control: RequestControl, prompt: string): Promise<Routed> {
  const d = await control.route(completion(prompt));
  if (d.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(d)}`);
  return { ...d, prefill: d.setHeaders?.['x-prefiller-host-port'] || undefined };
}

describe('one latency-scorer in both profiles of a P/D config tracks each profile\'s pick (llm-d-router v0.10.0 disagg-profile-handler, inflightload/producer.go)', () => {
  let ds: Datastore;
  beforeEach(() => { ds = pdPool(); });
  afterEach(() => ds.stop());

  const setUp = (prefillOnly = false, prefillProfile = 'prefill') => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(pdWithLatencyScorer(prefillOnly, prefillProfile)));
    const scorer = scheduler.plugin('latency-scorer') as LatencyScorer;
    expect(scorer).toBeInstanceOf(LatencyScorer);
    const control = new RequestControl({ datastore: ds, scheduler });
    const pending = (key: string) => scorer.model.get(key)?.stats(Date.now()) ?? { pendingRequests: 0, pendingTokens: 0, trackedStarts: 0 };
    /** The prefill pick counted `n` times, in the scorer's model and in request control's in-flight count alike. */
    const prefillCounted = (d: Routed, n: number) => {
      expect(pending(d.prefill!)).toMatchObject({ pendingRequests: n, trackedStarts: n });
      expect(ds.activeRequests(d.prefill!)).toBe(n);
    };
    return { control, scorer, pending, prefillCounted };
  };

  test('the decode pick is tracked on its decode pod (slot and queued prefill), which it was not when the prefill profile scored last, and the prefill pick on its prefill pod', async () => {
    const { control, scorer, pending } = setUp();
    const d = await route(control, 'x'.repeat(4000));
    expect(DECODE).toContain(d.endpoint);
    expect(PREFILL).toContain(d.prefill);
    expect(pending(d.endpoint)).toMatchObject({ pendingRequests: 1, trackedStarts: 1 });
    expect(pending(d.prefill!)).toMatchObject({ pendingRequests: 1, trackedStarts: 1 });
    expect(pending(d.prefill!).pendingTokens).toBeGreaterThan(0);
    // The other pods carry nothing.
    for (const k of [...DECODE, ...PREFILL]) if (k !== d.endpoint && k !== d.prefill) expect(pending(k)).toMatchObject({ pendingRequests: 0 });
    expect(scorer.model.get(d.endpoint)).toBeDefined();
    control.release(d.ticket, 'completed');
    for (const k of [...DECODE, ...PREFILL]) expect(pending(k)).toMatchObject({ pendingRequests: 0, trackedStarts: 0 });
  });

  test('the prefill pick stops counting at the response\'s start, when request control\'s in-flight count of it ends: its headers when the EPP is shown no body; the decode pick at the end', async () => {
    const { control, pending, prefillCounted } = setUp();
    const d = await route(control, 'y'.repeat(4000));
    control.responseHeaders(d.ticket, SSE, {}, false);
    prefillCounted(d, 0);
    expect(pending(d.endpoint)).toMatchObject({ trackedStarts: 1 });
    control.release(d.ticket, 'completed');
    expect(pending(d.endpoint)).toMatchObject({ pendingRequests: 0, trackedStarts: 0 });
  });

  test('when the EPP is shown the response body the prefill pick ends at its first chunk, not at the headers, with request control\'s count', async () => {
    const { control, pending, prefillCounted } = setUp();
    const d = await route(control, 'u'.repeat(4000));
    control.responseHeaders(d.ticket, SSE, {}, true);
    prefillCounted(d, 1);
    control.responseBody(d.ticket, Buffer.from('data: {"choices":[]}\n\n'), false);
    prefillCounted(d, 0);
    control.responseBody(d.ticket, Buffer.from('data: [DONE]\n\n'), true);
    control.release(d.ticket, 'completed');
    expect(pending(d.endpoint)).toMatchObject({ pendingRequests: 0, trackedStarts: 0 });
  });

  test('a burst of distinct prompts spreads over the prefill pods, each pick seeing the queued prefill work of those before it', async () => {
    const { control } = setUp();
    const routed: Routed[] = [];
    for (let i = 0; i < 6; i++) routed.push(await route(control, `${i} `.repeat(2000)));
    // Pairs: each second pick goes where the first of its pair did not (the pods' pages show neither).
    for (let i = 0; i < 6; i += 2) expect(routed[i + 1]!.prefill).not.toBe(routed[i]!.prefill);
    expect(PREFILL.map((k) => routed.filter((d) => d.prefill === k).length)).toEqual([3, 3]);
    for (const d of routed) control.release(d.ticket, 'completed');
  });

  test('listed in the prefill profile alone, it tracks the prefill pick and leaves the decode pick, which it never scored, alone', async () => {
    const { control, pending } = setUp(true);
    const d = await route(control, 'z'.repeat(4000));
    expect(pending(d.prefill!)).toMatchObject({ pendingRequests: 1, trackedStarts: 1 });
    expect(pending(d.endpoint)).toMatchObject({ pendingRequests: 0, trackedStarts: 0 });
    control.release(d.ticket, 'cancelled');
    expect(pending(d.prefill!)).toMatchObject({ pendingRequests: 0, trackedStarts: 0 });
  });

  test('a pod serving both roles picked by both profiles carries both entries until the response starts', async () => {
    for (const k of [...DECODE, ...PREFILL]) ds.removeEndpoint(k);
    ds.upsertEndpoint({ key: '10.0.3.1:8000', name: 'both', namespace: 'ns', address: '10.0.3.1', port: 8000, labels: { 'llm-d.ai/role': 'both' } });
    ds.setMetrics('10.0.3.1:8000', { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    const { control, pending } = setUp();
    const d = await route(control, 'w'.repeat(4000));
    expect([d.endpoint, d.prefill]).toEqual(['10.0.3.1:8000', '10.0.3.1:8000']);
    expect(pending(d.endpoint)).toMatchObject({ pendingRequests: 2, trackedStarts: 2 });
    control.responseHeaders(d.ticket, SSE, {}, false);
    expect(pending(d.endpoint)).toMatchObject({ trackedStarts: 1 });
    control.release(d.ticket, 'completed');
    expect(pending(d.endpoint)).toMatchObject({ pendingRequests: 0, trackedStarts: 0 });
  });

  test('as request control\'s in-flight counts (upstream\'s constant `profilePrefill`), only a profile named `prefill` ends at the response\'s start: one named otherwise is held to the request\'s end', async () => {
    const { control, prefillCounted } = setUp(false, 'pf');
    const d = await route(control, 'v'.repeat(4000));
    expect(PREFILL).toContain(d.prefill);
    prefillCounted(d, 1);
    control.responseHeaders(d.ticket, SSE, {}, false);
    prefillCounted(d, 1);
    control.release(d.ticket, 'completed');
    prefillCounted(d, 0);
  });
});
