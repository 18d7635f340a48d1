/**
 * Every answered pre-dispatch rejection names its reason in llm-d-router's `x-llm-d-request-dropped-reason`, as
 * llm-d-router ebab687 does since 645ba71e ("fix(scheduling): return typed capacity rejection when filters drain
 * candidates", #2462): a profile whose filters drain a non-empty candidate set is a capacity rejection,
 * `ResourceExhausted` with `rejected-saturated` (`scheduling/scheduler_profile.go` Run), and the director's own
 * rejections for want of candidates, `ServiceUnavailable`, carry `rejected-no-endpoints` (`requestcontrol/director.go`
 * HandleRequest: "failed to find endpoint candidates", "screeners eliminated all endpoint candidates"). Before it the
 * drained profile's 429 came with no such header, and flow control's rejections were the only ones that had one.
 */
import { defaultEndpointPickerConfig, parseEndpointPickerConfig } from '../src/config';
import type { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest } from '../src/extproc/request-director';
import { DROPPED_REASON_HEADER } from '../src/requestcontrol/flow-control';
import { RequestControl, SUBSET_HINT_KEY, SUBSET_HINT_NAMESPACE } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { staticPool } from './static-pool';

const chat = (filterMetadata: IncomingRequest['filterMetadata'] = {}): IncomingRequest => ({
  requestId: 'r',
  headers: new Map([[':method', 'POST'], [':path', '/v1/chat/completions']]),
  body: Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] })),
  filterMetadata,
});

describe('x-llm-d-request-dropped-reason on scheduling and candidate rejections (llm-d-router #2462)', () => {
  let ds: Datastore;
  beforeEach(() => { ds = staticPool(3); });
  afterEach(() => ds.stop());

  test('filters that drain the candidates for load: 429 with rejected-saturated, as scheduler_profile.go Run answers it', async () => {
    for (const e of ds.endpoints()) ds.setMetrics(e.key, { waitingQueueSize: 500, kvCacheUsagePercent: 0.99, updateTime: Date.now() });
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()) });
    const d = await director.route(chat());
    expect(d).toMatchObject({ kind: 'reject', status: 429 });
    if (d.kind !== 'reject') return;
    expect(d.headers?.[DROPPED_REASON_HEADER]).toBe('rejected-saturated');
  });

  test('filters that leave none for a reason other than load (kvroute answers 503): rejected-no-endpoints, the reason upstream gives its 503s', async () => {
    // No pod has the decode role's label value the filter asks for.
    const config = parseEndpointPickerConfig(`
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: by-label
  parameters: { label: llm-d.ai/role, validValues: [decode] }
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: by-label
  - pluginRef: max-score-picker
`);
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config) });
    const d = await director.route(chat());
    expect(d).toMatchObject({ kind: 'reject', status: 503 });
    if (d.kind !== 'reject') return;
    expect(d.headers?.[DROPPED_REASON_HEADER]).toBe('rejected-no-endpoints');
  });

  // Not every 429 names a reason: llm-d-router's legacy admission (flow control off) drops a sheddable request on a
  // saturated pool with a bare ResourceExhausted, no Headers (pkg/epp/requestcontrol/admission.go
  // LegacyAdmissionController "system saturated, sheddable request dropped", unchanged by #2462, @ v0.10.0 and ebab687).
  test('flow control off, a sheddable request on a saturated pool: 429 without a dropped reason, as the legacy admission answers it', async () => {
    for (const e of ds.endpoints()) ds.setMetrics(e.key, { waitingQueueSize: 500, kvCacheUsagePercent: 0.99, updateTime: Date.now() });
    const config = parseEndpointPickerConfig(`
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: utilization-detector
- type: queue-scorer
- type: max-score-picker
saturationDetector:
  pluginRef: utilization-detector
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`);
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config) });
    const request = chat();
    (request.headers as Map<string, string>).set('x-kvroute-priority', '-1');
    const d = await director.route(request);
    expect(d).toMatchObject({ kind: 'reject', status: 429 });
    if (d.kind !== 'reject') return;
    expect(d.body).toContain('sheddable request dropped');
    expect(d.headers?.[DROPPED_REASON_HEADER]).toBeUndefined();
  });

  test('no candidate at all (an empty pool, a subset hint naming none of it): 503 with rejected-no-endpoints, as director.go answers "failed to find endpoint candidates"', async () => {
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()) });
    const hinted = await director.route(chat({ [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: ['10.0.0.9:8000'] } }));
    expect(hinted).toMatchObject({ kind: 'reject', status: 503 });
    if (hinted.kind === 'reject') expect(hinted.headers?.[DROPPED_REASON_HEADER]).toBe('rejected-no-endpoints');
    for (const e of ds.endpoints()) ds.removeEndpoint(e.key);
    const empty = await director.route(chat());
    expect(empty).toMatchObject({ kind: 'reject', status: 503 });
    if (empty.kind === 'reject') expect(empty.headers?.[DROPPED_REASON_HEADER]).toBe('rejected-no-endpoints');
  });
});
