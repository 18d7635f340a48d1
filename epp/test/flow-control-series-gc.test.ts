/**
 * Idle flows lose their flow-control series, as llm-d-router v0.10.0 garbage-collects them:
 * `pkg/epp/flowcontrol/registry/registry.go` gcFlows runs every FlowGCTimeout (`registry/config.go`
 * defaultFlowGCTimeout = 5 * time.Minute, not settable from the EPP's config), collects the flows idle at least that
 * long (`leasing.go` checkAndMarkForDeletion: no request of the flow in flow control, the lease being held from enqueue
 * to the final outcome) and calls `metrics.DeleteFlowControlFlowSeries(fairnessID, priority)` (`pkg/epp/metrics/metrics.go`:
 * the queue-duration, enqueue-duration, queue-size and queue-bytes series of that fairness_id and priority, in the
 * inference_extension_* and the llm_d_epp_* families; never the shared overflow id, "other").
 * Real request control, flow-control queue and metrics registry; the GC period is shortened through RequestControl's
 * internal `flowGcIntervalMs` (upstream's 5 minutes otherwise). Every wait is for a condition, with a control flow that
 * proves a GC cycle ran.
 */
import { turns, waitFor } from '@kvroute/testkit';
import { defaultEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { createEppMetrics, type EppMetrics } from '../src/metrics';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import { RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';

const T0 = 1_700_000_000_000;
const FAIRNESS_HEADER = 'x-gateway-inference-fairness-id';

describe('flow-control series of idle flows are collected (llm-d-router v0.10.0 flowcontrol/registry/registry.go gcFlows, metrics.go DeleteFlowControlFlowSeries)', () => {
  let ds: Datastore;
  let metrics: EppMetrics;
  let director: RequestControl | undefined;
  const setWaiting = (waiting: number) => {
    for (let i = 0; i < 2; i++) {
      ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: waiting, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: T0, consecutiveFailures: 0 });
    }
  };
  beforeEach(() => {
    ds = new Datastore({ scrape: false });
    for (let i = 0; i < 2; i++) {
      const address = `10.0.0.${i + 1}`;
      ds.upsertEndpoint({ key: `${address}:8000`, name: `p${i}`, namespace: 'ns', address, port: 8000, labels: {} });
    }
    setWaiting(0);
    metrics = createEppMetrics();
    // GIE's gate on: every request passes the queue and records its flow's series, as upstream's.
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 });
    const queue = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
    director = new RequestControl({
      datastore: ds, scheduler, metrics: metrics.collectors, poolName: 'pool', flowGcIntervalMs: 100,
      flowControl: { queue, tickMs: 5, recordEveryRequest: true },
    });
  });
  afterEach(() => {
    director?.close();
    director = undefined;
    ds.stop();
  });

  const incoming = (id: string, fairnessId: string): IncomingRequest => ({
    requestId: id,
    headers: new Map([[':method', 'POST'], ['content-type', 'application/json'], [FAIRNESS_HEADER, fairnessId]]),
    body: Buffer.from(JSON.stringify({ model: 'm', prompt: `hello ${id}` })),
    filterMetadata: {},
  });
  /** The flow-control series lines of one fairness id, both families. */
  const seriesOf = async (fairnessId: string) => (await metrics.registry.metrics()).split('\n')
    .filter((l) => /^(inference_extension|llm_d_epp)_flow_control_/.test(l) && l.includes(`fairness_id="${fairnessId}"`));
  const families = (lines: readonly string[]) => [...new Set(lines.map((l) => l.replace(/(_bucket|_sum|_count)?\{.*$/, '')))].sort();
  const PER_FLOW_FAMILIES = [
    'inference_extension_flow_control_request_enqueue_duration_seconds',
    'inference_extension_flow_control_request_queue_duration_seconds',
    'llm_d_epp_flow_control_request_enqueue_duration_seconds',
    'llm_d_epp_flow_control_request_queue_duration_seconds',
  ];

  it('a flow whose requests passed loses its series in both families once collected, and records them afresh when it comes back', async () => {
    expect((await director!.route(incoming('r1', 'tenant-1'))).kind).toBe('route');
    expect(families(await seriesOf('tenant-1'))).toEqual(PER_FLOW_FAMILIES);
    await waitFor(async () => (await seriesOf('tenant-1')).length === 0, 'tenant-1\'s series to be collected');
    expect((await director!.route(incoming('r2', 'tenant-1'))).kind).toBe('route');
    expect(families(await seriesOf('tenant-1'))).toEqual(PER_FLOW_FAMILIES);
  });

  it('a flow with a request waiting in the queue keeps its series (queue size 1) while an idle flow is collected; idle, it goes too', async () => {
    expect((await director!.route(incoming('idle-1', 'idle'))).kind).toBe('route');
    setWaiting(6); // past the default queueDepthThreshold of 5: every pod saturated, the next request waits
    const waiting = director!.route(incoming('w1', 'busy'));
    await turns(10);
    const queued = (lines: readonly string[]) => lines.filter((l) => /^(inference_extension|llm_d_epp)_flow_control_queue_size\{/.test(l));
    expect(queued(await seriesOf('busy'))).toHaveLength(2);
    // The idle flow's collection proves a GC cycle ran after a full period of its idleness, all of it with busy leased.
    await waitFor(async () => (await seriesOf('idle')).length === 0, 'the idle flow\'s series to be collected');
    expect(queued(await seriesOf('busy')).map((l) => l.split(' ').at(-1))).toEqual(['1', '1']);
    setWaiting(0);
    const decision: RouteDecision = await waiting;
    expect(decision.kind).toBe('route');
    await waitFor(async () => (await seriesOf('busy')).length === 0, 'busy\'s series to be collected once it is idle');
  });

  // llm-d-router v0.10.0 pkg/epp/metrics/cardinality_test.go TestDeleteFlowControlFlowSeriesPreservesOverflowSeries:
  // "A client can choose the overflow value itself as its fairness ID; GC of that flow must not delete the shared
  // overflow series that aggregates every capped-out tenant."
  it('the shared "other" series, chosen by a client as its fairness id, outlives a GC cycle that collects an idle flow', async () => {
    expect((await director!.route(incoming('o1', 'other'))).kind).toBe('route');
    expect((await director!.route(incoming('t1', 'tenant-1'))).kind).toBe('route');
    expect(families(await seriesOf('other'))).toEqual(PER_FLOW_FAMILIES);
    // tenant-1 went idle after "other" did: its collection proves a GC cycle ran with "other" idle a full period too.
    await waitFor(async () => (await seriesOf('tenant-1')).length === 0, 'tenant-1\'s series to be collected');
    expect(families(await seriesOf('other'))).toEqual(PER_FLOW_FAMILIES);
  });
});
