/**
 * llm-d-router v0.10.0's per-band usage limits and its probabilistic admitter, through request control:
 * - its two sample configs, `deploy/config/soft-reflective-ceiling-epp-config.yaml` and
 *   `deploy/config/probabilistic-admitter-epp-config.yaml`, load verbatim (copies in `fixtures/llm-d-router-v0.10.0/`,
 *   checked against upstream's blob ids) and build a scheduler;
 * - flow control holds a request of priority p while saturation ≥ the ceiling of p's rank among the active levels
 *   (`flowcontrol/controller/internal/processor.go` dispatchCycle: ComputeLimit once per cycle, bands highest first,
 *   stopping at the first whose ceiling is reached);
 * - the soft-reflective duty cycle lets the lower band through on 1 dispatch decision in round(s/(1−s));
 * - an admitter's denial is upstream's 500 (`requestcontrol/director.go` HandleRequest: errcommon.Internal,
 *   "request cannot be admitted: …").
 * Every clock follows jest's fake one where ticks are counted (the detector's staleness, the queue, the ticker).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { turns } from '@kvroute/testkit';
import { parseEndpointPickerConfig, renderEndpointPickerConfig, type EndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { createEppMetrics } from '../src/metrics';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import { NOT_ADMITTED_PREFIX, RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { PriorityHoldbackPolicy } from '../src/scheduling/plugins/priority-holdback-policy';
import { ProbabilisticAdmitter } from '../src/scheduling/plugins/probabilistic-admitter';
import { SoftReflectiveCeilingPolicy } from '../src/scheduling/plugins/soft-reflective-ceiling-policy';
import { configErrorOf } from './config-error';

const FIXTURES = path.join(__dirname, 'fixtures', 'llm-d-router-v0.10.0');
/** The upstream blob of each sample at v0.10.0 (`git ls-tree v0.10.0 deploy/config/<file>`). */
const UPSTREAM_BLOBS = {
  'soft-reflective-ceiling-epp-config.yaml': '282365311b181347b3c443aada177b2ef004ed76',
  'probabilistic-admitter-epp-config.yaml': '16726db18a93ac942e4c9896aa4cad8ff89aad20',
} as const;
const sample = (file: keyof typeof UPSTREAM_BLOBS) => fs.readFileSync(path.join(FIXTURES, file), 'utf8');

const T0 = 1_700_000_000_000;
const TICK_MS = 50;

/** Two pods whose metrics the test sets (not scraped). */
function pool(): Datastore {
  const ds = new Datastore({ scrape: false });
  for (let i = 0; i < 2; i++) {
    const address = `10.0.0.${i + 1}`;
    ds.upsertEndpoint({ key: `${address}:8000`, name: `p${i}`, namespace: 'ns', address, port: 8000, labels: {} });
  }
  return ds;
}

/** Every pod's waiting queue and KV usage, read now (a fresh scrape). */
function setLoad(ds: Datastore, waitingQueueSize: number, kvCacheUsagePercent = 0): void {
  for (const e of ds.endpoints()) ds.setMetrics(e.key, { waitingQueueSize, runningQueueSize: 0, kvCacheUsagePercent, updateTime: Date.now(), consecutiveFailures: 0 });
}

let seq = 0;
function chat(headers: Record<string, string> = {}): IncomingRequest {
  const id = `r${seq++}`;
  return {
    requestId: id,
    headers: new Map([[':method', 'POST'], [':path', '/v1/chat/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
    body: Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `hello ${id}` }] })),
    filterMetadata: {},
  };
}

/** A request's decision as it settles. */
function send(director: RequestControl, headers: Record<string, string> = {}): { readonly decision: () => RouteDecision | undefined; readonly done: Promise<RouteDecision> } {
  let decision: RouteDecision | undefined;
  const done = director.route(chat(headers)).then((d) => (decision = d));
  return { decision: () => decision, done };
}

const routed = (sent: readonly { decision: () => RouteDecision | undefined }[]) => sent.filter((s) => s.decision()?.kind === 'route').length;

describe('llm-d-router v0.10.0\'s sample configs load verbatim and build a scheduler', () => {
  test.each(Object.entries(UPSTREAM_BLOBS))('%s is upstream\'s file byte for byte (blob %s)', (file, blob) => {
    const bytes = fs.readFileSync(path.join(FIXTURES, file));
    expect(createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex')).toBe(blob);
  });

  test('soft-reflective-ceiling-epp-config.yaml: the policy is flow control\'s usage limit, GIE\'s default detector added', () => {
    const config = parseEndpointPickerConfig(sample('soft-reflective-ceiling-epp-config.yaml'));
    expect(config.flowControl?.usageLimitPolicyPluginRef).toBe('soft-reflective-ceiling-policy');
    expect(config.saturationDetector).toEqual({ pluginRef: 'utilization-detector' });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    const scheduler = buildScheduler(config);
    expect(scheduler.plugins.get('soft-reflective-ceiling-policy')).toBeInstanceOf(SoftReflectiveCeilingPolicy);
    expect(scheduler.plugins.ofKind('scorer').map((p) => p.type).sort()).toEqual(['kv-cache-utilization-scorer', 'prefix-cache-scorer', 'queue-scorer']);
  });

  test('probabilistic-admitter-epp-config.yaml: the admitter with its defaults, the neutered detector from flowControl.saturationDetector', () => {
    const config = parseEndpointPickerConfig(sample('probabilistic-admitter-epp-config.yaml'));
    expect(config.plugins.find((p) => p.type === 'probabilistic-admitter')?.parameters).toEqual({ queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, power: 5, k: 300 });
    expect(config.saturationDetector).toEqual({ pluginRef: 'utilization-detector' });
    expect(config.plugins.find((p) => p.type === 'utilization-detector')?.parameters).toMatchObject({ queueDepthThreshold: 999999999, kvCacheUtilThreshold: 1 });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    const scheduler = buildScheduler(config);
    expect(scheduler.plugins.ofKind('admission')).toHaveLength(1);
    expect(scheduler.plugins.ofKind('admission')[0]).toBeInstanceOf(ProbabilisticAdmitter);
    expect(scheduler.plugins.ofKind('picker').map((p) => p.type)).toEqual(['random-picker']);
  });

  const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
  test('usageLimitPolicyPluginRef takes any of the three policies by name; another plugin or an undeclared name is refused', () => {
    const holdback = parseEndpointPickerConfig(`${LLMD}plugins:\n- type: queue-scorer\n- type: priority-holdback-policy\n  name: hb\n  parameters: {minCeiling: 0.4, domain: value}\nflowControl: {usageLimitPolicyPluginRef: hb}\n`);
    expect(holdback.plugins.find((p) => p.name === 'hb')?.parameters).toEqual({ shape: 'linear', domain: 'value', minCeiling: 0.4, maxCeiling: 1 });
    expect(buildScheduler(holdback).plugins.get('hb')).toBeInstanceOf(PriorityHoldbackPolicy);
    expect(configErrorOf(() => parseEndpointPickerConfig(`${LLMD}plugins:\n- type: queue-scorer\nflowControl: {usageLimitPolicyPluginRef: queue-scorer}\n`)))
      .toBe('flowControl.usageLimitPolicyPluginRef: "queue-scorer" is a queue-scorer, not a usage-limit policy (static-usage-limit-policy, priority-holdback-policy, soft-reflective-ceiling-policy)');
    // Only the static policy is injected under its type name (upstream's README: the others are "not framework-injected").
    expect(configErrorOf(() => parseEndpointPickerConfig(`${LLMD}plugins:\n- type: queue-scorer\nflowControl: {usageLimitPolicyPluginRef: soft-reflective-ceiling-policy}\n`)))
      .toBe('flowControl.usageLimitPolicyPluginRef: no plugin named "soft-reflective-ceiling-policy"; declare one of static-usage-limit-policy, priority-holdback-policy, soft-reflective-ceiling-policy in plugins');
    expect(configErrorOf(() => parseEndpointPickerConfig(sample('soft-reflective-ceiling-epp-config.yaml').replace('- type: soft-reflective-ceiling-policy', '- type: soft-reflective-ceiling-policy\n  parameters: {threshold: 0.5}'))))
      .toBe('plugins[3].parameters.threshold: unknown field; this plugin takes no parameters');
  });
});

describe('per-band usage limits in request control (processor.go dispatchCycle)', () => {
  let ds: Datastore;
  let director: RequestControl | undefined;

  beforeEach(() => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    ds = pool();
  });
  afterEach(() => {
    director?.close();
    director = undefined;
    ds.stop();
    jest.useRealTimers();
  });

  function start(config: EndpointPickerConfig, options: { objectives?: Map<string, number>; watched?: Map<string, number> } = {}): FlowControlQueue {
    // One release per dispatch call: each tick is then exactly one dispatch decision, as one upstream cycle.
    const queue = new FlowControlQueue({ maxQueued: 64, maxWaitMs: 60_000, maxDispatchPerCall: 1 });
    const watched = options.watched;
    director = new RequestControl({
      datastore: ds,
      scheduler: buildScheduler(config, { now: () => Date.now() }),
      monotonicSeconds: () => Date.now() / 1000,
      ...(watched !== undefined ? { objectives: { get: (name: string) => watched.get(name), priorities: () => watched.values() } } : {}),
      flowControl: { queue, tickMs: TICK_MS, ...(options.objectives !== undefined ? { objectives: options.objectives } : {}) },
    });
    return queue;
  }

  /** One ticker run (one dispatch call), the pods' metrics read fresh first, then the released requests' cycles. */
  async function tick(waiting: number, kv = 0): Promise<void> {
    setLoad(ds, waiting, kv);
    jest.advanceTimersByTime(TICK_MS);
    await turns(10);
  }

  const HOLDBACK = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: utilization-detector
  parameters: {queueDepthThreshold: 10, kvCacheUtilThreshold: 1.0, metricsStalenessThreshold: 1h}
- type: priority-holdback-policy
  name: holdback
  parameters: {minCeiling: 0.5}
flowControl:
  saturationDetector: {pluginRef: utilization-detector}
  usageLimitPolicyPluginRef: holdback
  objectives: {chat: 10}
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`;
  const CHAT = { 'x-gateway-inference-objective': 'chat' };

  test('priority-holdback: levels [10, 0] get ceilings [1.0, 0.5]; at saturation 0.6 the high band dispatches and the low band waits', async () => {
    const config = parseEndpointPickerConfig(HOLDBACK);
    const queue = start(config, { objectives: new Map([['chat', 10]]) });
    setLoad(ds, 6); // saturation max(6/10, 0) = 0.6 on both pods
    const plain = send(director!);
    await turns(10);
    expect({ plain: plain.decision(), waiting: queue.sizes() }).toEqual({ plain: undefined, waiting: new Map([[0, 1]]) });
    // The arrival shortcut, per band: nothing of priority 10 or higher waits and 0.6 is under its ceiling.
    const first = send(director!, CHAT);
    await turns(10);
    expect(first.decision()).toMatchObject({ kind: 'route' });
    // Full (1.0 ≥ every ceiling): the high band waits too; back at 0.6 the next dispatch releases it, not the low band.
    setLoad(ds, 10);
    const second = send(director!, CHAT);
    await turns(10);
    expect(queue.sizes()).toEqual(new Map([[10, 1], [0, 1]]));
    await tick(6);
    expect(second.decision()).toMatchObject({ kind: 'route' });
    for (let i = 0; i < 5; i++) await tick(6);
    expect({ plain: plain.decision(), waiting: queue.sizes() }).toEqual({ plain: undefined, waiting: new Map([[0, 1]]) });
    // Under the low band's ceiling (0.4 < 0.5): released.
    await tick(4);
    expect(plain.decision()).toMatchObject({ kind: 'route' });
    expect(queue.size).toBe(0);
  });

  test('priority-holdback: the active levels include the request\'s own and the queue\'s, and a single level is bypassed (maxCeiling)', async () => {
    // Without objectives: 0 is the only level for a priority-0 request, whose ceiling is then maxCeiling (1.0).
    const config = parseEndpointPickerConfig(HOLDBACK.replace('  objectives: {chat: 10}\n', ''));
    const queue = start(config);
    setLoad(ds, 6);
    const plain = send(director!);
    await turns(10);
    expect(plain.decision()).toMatchObject({ kind: 'route' });
    // A sheddable request (x-kvroute-priority lowers its own) makes levels [0, -1]: ceilings [1.0, 0.5], so it waits.
    const sheddable = send(director!, { 'x-kvroute-priority': '-1' });
    await turns(10);
    expect(queue.sizes()).toEqual(new Map([[-1, 1]]));
    await tick(6);
    expect(sheddable.decision()).toBeUndefined();
    await tick(4);
    expect(sheddable.decision()).toMatchObject({ kind: 'route' });
    // Back at 0.6, a -2 request waits (levels [0, -2]); while it waits the levels are [0, -1, -2] for a newcomer of -1,
    // ceilings [1.0, 0.75, 0.5], so that one goes at once, where with [0, -1] alone its ceiling was 0.5.
    setLoad(ds, 6);
    const lower = send(director!, { 'x-kvroute-priority': '-2' });
    await turns(10);
    const middle = send(director!, { 'x-kvroute-priority': '-1' });
    await turns(10);
    expect({ middle: middle.decision()?.kind, lower: lower.decision(), waiting: queue.sizes() }).toEqual({ middle: 'route', lower: undefined, waiting: new Map([[-2, 1]]) });
    await tick(4);
    expect(lower.decision()).toMatchObject({ kind: 'route' });
  });

  test('soft-reflective (the verbatim sample, InferenceObjectives chat=10 and the default 0): at saturation 0.8 the low band gets 1 dispatch decision in round(0.8/0.2) = 4, the high band every one', async () => {
    const config = parseEndpointPickerConfig(sample('soft-reflective-ceiling-epp-config.yaml'));
    const policy = buildScheduler(config).plugins.get('soft-reflective-ceiling-policy');
    expect(policy).toBeInstanceOf(SoftReflectiveCeilingPolicy);
    const queue = start(config, { watched: new Map([['chat', 10]]) });
    // GIE's default detector (queue 5, KV 0.8): max(4/5, 0) = 0.8 on both pods. Band 1's reflective ceiling is
    // 1 − 0.8 = 0.2 ≤ 0.8: it alternates with period 4.
    setLoad(ds, 4);
    const plain = [send(director!)]; // one decision (tick 1: closed): it waits
    await turns(10);
    for (let i = 0; i < 7; i++) plain.push(send(director!)); // behind it, without a decision
    const high = send(director!, CHAT); // tick 2: band 0's ceiling is 1.0 whatever the tick
    await turns(10);
    expect(high.decision()).toMatchObject({ kind: 'route' });
    expect(queue.size).toBe(8);
    const released: number[] = [];
    for (let i = 0; i < 12; i++) {
      await tick(4); // ticks 3..14: open on 4, 8, 12
      released.push(routed(plain));
    }
    expect(released).toEqual([0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]);
    expect(queue.size).toBe(5);
    // A newcomer of the high band meanwhile goes at once, every time.
    for (let i = 0; i < 3; i++) {
      const again = send(director!, CHAT);
      await turns(10);
      expect(again.decision()).toMatchObject({ kind: 'route' });
    }
    // Out of the alternating regime (0.4 < 1 − 0.4): every decision open; at 1.0 every one closed.
    await tick(10);
    expect(routed(plain)).toBe(3);
    for (let i = 0; i < 5; i++) await tick(2);
    expect(routed(plain)).toBe(8);
  });

  test('soft-reflective: a single active level (the sample as it stands, no objectives) is never gated below full saturation', async () => {
    const config = parseEndpointPickerConfig(sample('soft-reflective-ceiling-epp-config.yaml'));
    const queue = start(config);
    setLoad(ds, 4, 0.79); // max(4/5, 0.79/0.8) ≈ 0.99
    const first = send(director!);
    await turns(10);
    expect(first.decision()).toMatchObject({ kind: 'route' });
    setLoad(ds, 5); // 1.0
    const second = send(director!);
    await turns(10);
    expect(queue.size).toBe(1);
    await tick(4);
    expect(second.decision()).toMatchObject({ kind: 'route' });
  });
});

describe('probabilistic-admitter in request control (director.go runAdmissionPlugins)', () => {
  let ds: Datastore;
  let director: RequestControl | undefined;
  afterEach(() => {
    director?.close();
    director = undefined;
    ds.stop();
    jest.useRealTimers();
  });

  /** The verbatim sample, its random source replaying `draw`. */
  function start(draw: { value: number }, metrics?: ReturnType<typeof createEppMetrics>): FlowControlQueue {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    ds = pool();
    const config = parseEndpointPickerConfig(sample('probabilistic-admitter-epp-config.yaml'));
    const queue = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
    director = new RequestControl({
      datastore: ds,
      scheduler: buildScheduler(config, { now: () => Date.now(), random: () => draw.value }),
      monotonicSeconds: () => Date.now() / 1000,
      maxHeaderPriority: 0,
      flowControl: { queue, tickMs: TICK_MS },
      ...(metrics !== undefined ? { metrics: metrics.collectors } : {}),
    });
    return queue;
  }

  test('a sheddable request is denied with probability min(sat^5 · 300, 1): upstream\'s 500 and its message, counted Internal and timed at Admission', async () => {
    const metrics = createEppMetrics();
    const draw = { value: 0 };
    start(draw, metrics);
    setLoad(ds, 0, 0.16); // the admitter's sat: 0.16/0.8 = 0.2, prob ≈ 0.096; the neutered detector's 0.16
    const denied = await director!.route(chat({ 'x-kvroute-priority': '-1' }));
    expect(denied).toMatchObject({ kind: 'reject', status: 500 });
    const body = JSON.parse((denied as { body: string }).body) as { error: { message: string; code: string } };
    expect(body.error).toMatchObject({
      message: `${NOT_ADMITTED_PREFIX}inference error: ResourceExhausted - probabilistic-admitter: rejected, saturation=0.200 prob=0.10`,
      code: 'request_not_admitted',
    });
    expect(NOT_ADMITTED_PREFIX).toBe('request cannot be admitted: ');
    // Priority ≥ 0 always passes; a sheddable one passes on a draw above the probability.
    expect(await director!.route(chat())).toMatchObject({ kind: 'route' });
    draw.value = 0.5;
    expect(await director!.route(chat({ 'x-kvroute-priority': '-1' }))).toMatchObject({ kind: 'route' });
    draw.value = 0;
    setLoad(ds, 0, 0);
    expect(await director!.route(chat({ 'x-kvroute-priority': '-1' }))).toMatchObject({ kind: 'route' });
    const page = await metrics.registry.metrics();
    expect(page).toMatch(/inference_objective_request_error_total\{[^}]*error_code="Internal"[^}]*\} 1/);
    expect(page).toMatch(/inference_extension_plugin_duration_seconds_count\{extension_point="Admission",plugin_type="probabilistic-admitter",plugin_name="probabilistic-admitter"\} 4/);
  });

  test('asked once per request: admitted, then sent to the queue by a cycle that found every pod saturated, it is not asked again', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    ds = pool();
    // No pool detector (kvroute's saturation-filter detects): the request's cycle fails 'saturated' and it waits.
    const config = parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: probabilistic-admitter
- type: queue-scorer
- type: saturation-filter
  parameters: {queueDepthThreshold: 0, metricsStalenessThreshold: 1h}
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: saturation-filter
  - pluginRef: queue-scorer
`);
    expect(config.saturationDetector).toBeUndefined();
    const draw = { value: 0.5 };
    const queue = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
    director = new RequestControl({
      datastore: ds,
      scheduler: buildScheduler(config, { now: () => Date.now(), random: () => draw.value }),
      monotonicSeconds: () => Date.now() / 1000,
      flowControl: { queue, tickMs: TICK_MS },
    });
    setLoad(ds, 1); // the admitter's sat 1/5 = 0.2 (prob ≈ 0.096: a draw of 0.5 admits); the filter drops both pods
    const waiting = send(director, { 'x-kvroute-priority': '-1' });
    await turns(10);
    expect({ decision: waiting.decision(), waiting: queue.size }).toEqual({ decision: undefined, waiting: 1 });
    draw.value = 0; // asked again, it would be denied
    setLoad(ds, 0, 0.16); // room for the filter; the admitter's sat 0.16/0.8 = 0.2 still, where a draw of 0 denies
    jest.advanceTimersByTime(TICK_MS);
    await turns(10);
    expect(waiting.decision()).toMatchObject({ kind: 'route' });
  });

  test('the admitter runs after flow control: a request that waited is asked once it is dispatched, before its cycle', async () => {
    const draw = { value: 0 };
    const queue = start(draw);
    setLoad(ds, 0, 1.0); // the neutered detector's kvCacheUtilThreshold 1.0: saturated, the request waits
    const waiting = send(director!, { 'x-kvroute-priority': '-1' });
    await turns(10);
    expect({ decision: waiting.decision(), waiting: queue.size }).toEqual({ decision: undefined, waiting: 1 });
    setLoad(ds, 0, 0.16);
    jest.advanceTimersByTime(TICK_MS);
    await turns(10);
    expect(waiting.decision()).toMatchObject({ kind: 'reject', status: 500 });
    expect(queue.size).toBe(0);
  });
});
