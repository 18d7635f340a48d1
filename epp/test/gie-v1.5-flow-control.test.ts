/**
 * GIE v1.5.0's saturation detectors and flow-control configuration, as its flow-control guide
 * (`site-src/guides/flow-control.md` @ v1.5.0) writes them: `utilization-detector` and `concurrency-detector`
 * (`pkg/epp/framework/plugins/flowcontrol/saturationdetector/{utilization,concurrency}`), the `saturationDetector`
 * section (`config/loader/defaults.go` ensureSaturationDetector), `flowControl.maxBytes`/`maxRequests`/
 * `priorityBands`/`defaultPriorityBand`/`usageLimitPolicyPluginRef` (`apix/config/v1alpha1` FlowControlConfig), the
 * fairness policies (`fairness/besthead.go`, `roundrobin.go`) and the dispatch gate (`controller/internal/processor.go`
 * dispatchCycle: saturation ≥ usage limit holds the queue) with legacy admission when flow control is off
 * (`requestcontrol/admission.go`: only sheddable requests are dropped).
 */
import * as http from 'http';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, renderEndpointPickerConfig, resolvePluginParameters } from '../src/config';
import { parseQuantity } from '../src/config/quantity';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { parseArgs } from '../src/cli';
import { FlowControlQueue, FlowControlRejection } from '../src/requestcontrol/flow-control';
import { resolveFlowControl, startEpp, stalenessWarnings, type Logger, type RunningEpp } from '../src/runner';
import { CycleState, SILENT_PLUGIN_LOGGER, type CycleContext, type PluginHandle } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { createPlugin } from '../src/scheduling/plugin';
import { ConcurrencyDetector, concurrencyDetector } from '../src/scheduling/plugins/concurrency-detector';
import { UtilizationDetector, utilizationDetector } from '../src/scheduling/plugins/utilization-detector';
import { FakeEnvoy, requestBody, requestHeaders, responseHeaders, setHeaders, waitFor, type EnvoyStream, type Json } from './extproc-harness';
import * as fs from 'fs';
import * as path from 'path';
import { FakeKubeApiServer, FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS, fakeObjective, fakePod, fakePoolV1, sleep, turns } from '@kvroute/testkit';
import { RESUME_GRACE_MS, RequestControl } from '../src/requestcontrol/request-control';
import { Datastore } from '../src/datastore/datastore';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { RouteDecision } from '../src/extproc/request-director';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const HEADER = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';
const SCORERS = `- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
`;
const PROFILE = `schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: kv-cache-utilization-scorer
  - pluginRef: prefix-cache-scorer
`;

/** The guide's "Tuning the Saturation Detector" example, with GIE's Helm scorers around it. */
const GUIDE_UTILIZATION = `${HEADER}featureGates:
  - "flowControl"
plugins:
${SCORERS}- type: utilization-detector
  parameters:
    queueDepthThreshold: 2 # Controls allowed size of queue on model servers (Default: 5)
    kvCacheUtilThreshold: 0.85 # Max KV-cache utilization allowed before saturation (Default: 0.8)
saturationDetector:
  pluginRef: utilization-detector
${PROFILE}`;

/** The guide's concurrency-detector example. */
const GUIDE_CONCURRENCY = `${HEADER}plugins:
${SCORERS}- type: concurrency-detector
  parameters:
    concurrencyMode: "requests"
    maxConcurrency: 110 # 100 active batch size + 10 buffered requests
saturationDetector:
  pluginRef: concurrency-detector
${PROFILE}`;

/** The guide's "Priority Bands and Capacity Config" example. */
const GUIDE_BANDS = `${HEADER}plugins:
${SCORERS}flowControl:
  maxBytes: 1000000000 # 1GB total HTTP payload capacity limit
  defaultRequestTTL: 30s # Fallback TTL if client doesn't specify one
  priorityBands:
    - priority: 100
      maxBytes: 500000000 # 500MB HTTP payload limit for Priority 100
      # Default: "global-strict-fairness-policy"
      fairnessPolicyRef: "global-strict-fairness-policy"
      # Default: "fcfs-ordering-policy"
      orderingPolicyRef: "fcfs-ordering-policy"
${PROFILE}`;

describe('GIE v1.5.0 flow-control configs load', () => {
  test('the guide\'s utilization-detector config: the detector is named, its parameters filled, and it renders back to itself', () => {
    const config = parseEndpointPickerConfig(GUIDE_UTILIZATION);
    expect(config.saturationDetector).toEqual({ pluginRef: 'utilization-detector' });
    expect(config.plugins.find((p) => p.type === 'utilization-detector')?.parameters)
      .toEqual({ queueDepthThreshold: 2, kvCacheUtilThreshold: 0.85, metricsStalenessThreshold: '200ms', headroom: 0 });
    // Without declared profiles, GIE's default profile takes every filter, the declared detector too
    // (`config/loader/defaults.go` ensureSchedulingLayer).
    const defaulted = parseEndpointPickerConfig(GUIDE_UTILIZATION.slice(0, GUIDE_UTILIZATION.indexOf('schedulingProfiles:')));
    expect(defaulted.schedulingProfiles[0]!.plugins.map((p) => p.pluginRef)).toContain('utilization-detector');
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
  });

  test('the guide\'s concurrency-detector config loads; GIE\'s tokens mode is refused by name', () => {
    const config = parseEndpointPickerConfig(GUIDE_CONCURRENCY);
    expect(config.saturationDetector).toEqual({ pluginRef: 'concurrency-detector' });
    expect(config.plugins.find((p) => p.type === 'concurrency-detector')?.parameters).toEqual({ concurrencyMode: 'requests', maxConcurrency: 110, headroom: 0 });
    expect(() => parseEndpointPickerConfig(GUIDE_CONCURRENCY.replace('"requests"', '"tokens"')))
      .toThrow('plugins[3].parameters.concurrencyMode: GIE\'s "tokens" mode is not supported');
  });

  test('the guide\'s priority bands: GIE\'s maxBytes becomes maxQueuedBytes, the band keeps its bounds and policies', () => {
    const config = parseEndpointPickerConfig(GUIDE_BANDS);
    expect(config.flowControl).toMatchObject({
      maxQueuedBytes: 1_000_000_000,
      defaultRequestTTL: '30s',
      priorityBands: [{ priority: 100, maxBytes: 500_000_000, fairnessPolicyRef: 'global-strict-fairness-policy', orderingPolicyRef: 'fcfs-ordering-policy' }],
    });
    expect(config.flowControl).not.toHaveProperty('maxBytes');
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    const settings = resolveFlowControl(config);
    expect(settings.maxQueuedBytes).toBe(1_000_000_000);
    expect(settings.bands).toEqual(new Map([[100, { maxBytes: 500_000_000, fairness: 'global-strict' }]]));
    // The levels it does not list take GIE's default policy too (registry/config.go DefaultFairnessPolicyRef).
    expect(settings.defaultBand).toEqual({ maxBytes: 1_000_000_000, fairness: 'global-strict' });
  });

  test('a plugin named utilization-detector is the detector without the section; an empty section adds one with its defaults, outside the defaulted profile', () => {
    const named = parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}- type: utilization-detector\n${PROFILE}`);
    expect(named.saturationDetector).toEqual({ pluginRef: 'utilization-detector' });
    const added = parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}saturationDetector: {}\n`);
    expect(added.saturationDetector).toEqual({ pluginRef: 'utilization-detector' });
    expect(added.plugins.find((p) => p.name === 'utilization-detector')?.parameters).toEqual({ queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessThreshold: '200ms', headroom: 0 });
    expect(added.schedulingProfiles[0]!.plugins.map((p) => p.pluginRef)).toEqual(['queue-scorer', 'kv-cache-utilization-scorer', 'prefix-cache-scorer', 'max-score-picker']);
    // Without either, GIE's default is added (config/loader/defaults.go ensureSaturationDetector), outside the profile;
    // a config detecting with kvroute's saturation-filter keeps that as its only detection.
    const defaulted = parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}`);
    expect(defaulted.saturationDetector).toEqual({ pluginRef: 'utilization-detector' });
    expect(defaulted.plugins.find((p) => p.name === 'utilization-detector')?.parameters).toEqual({ queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessThreshold: '200ms', headroom: 0 });
    expect(defaulted.schedulingProfiles[0]!.plugins.map((p) => p.pluginRef)).toEqual(['queue-scorer', 'kv-cache-utilization-scorer', 'prefix-cache-scorer', 'max-score-picker']);
    expect(parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}- type: saturation-filter\n`).saturationDetector).toBeUndefined();
  });

  test('defaultRequestTTL 0 is GIE\'s "no deadline"; maxRequests takes quantities; usageLimitPolicyPluginRef names a static policy', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}- type: static-usage-limit-policy\n  name: eighty\n  parameters: {threshold: 0.8}\n` +
      `flowControl:\n  defaultRequestTTL: 0\n  maxRequests: 2k\n  usageLimitPolicyPluginRef: eighty\n  defaultPriorityBand: {maxRequests: 10, fairnessPolicyRef: round-robin-fairness-policy}\n${PROFILE}`);
    expect(config.flowControl).toMatchObject({ defaultRequestTTL: '0s', maxQueued: 2000, usageLimitPolicyPluginRef: 'eighty', defaultPriorityBand: { maxRequests: 10, fairnessPolicyRef: 'round-robin-fairness-policy' } });
    const settings = resolveFlowControl(config);
    expect(settings.maxWaitMs).toBe(Infinity);
    expect(settings.defaultBand).toEqual({ maxRequests: 10, maxBytes: 1_000_000_000, fairness: 'round-robin' });
  });

  test.each([
    ['both names for one bound', 'flowControl: {maxBytes: 1Gi, maxQueuedBytes: 5}', 'flowControl.maxBytes: is GIE\'s name for maxQueuedBytes; give one of the two'],
    ['a quantity that is not one', 'flowControl: {maxRequests: lots}', 'flowControl.maxRequests: must be a Kubernetes quantity such as 100, "1k", "500M" or "1Gi", got "lots"'],
    ['a negative bound', 'flowControl: {priorityBands: [{priority: 1, maxRequests: -1}]}', 'flowControl.priorityBands[0].maxRequests: must not be negative, got -1'],
    ['a default band priority that is not one', 'flowControl: {defaultPriorityBand: {priority: junk}}', 'flowControl.defaultPriorityBand.priority: must be an integer'],
    ['a fairness ref naming an ordering policy', 'flowControl: {defaultPriorityBand: {fairnessPolicyRef: edf-ordering-policy}}', 'flowControl.defaultPriorityBand.fairnessPolicyRef: no plugin named "edf-ordering-policy"; give a plugin name or one of: global-strict-fairness-policy, round-robin-fairness-policy'],
    ['a misspelt band bound, listing the allowed keys', 'flowControl: {priorityBands: [{priority: 1, maxRequest: 5}]}', 'flowControl.priorityBands[0].maxRequest: unknown field; allowed: priority, maxRequests, maxBytes, fairnessPolicyRef, orderingPolicyRef'],
    ['one priority twice', 'flowControl: {priorityBands: [{priority: 1}, {priority: 1}]}', 'flowControl.priorityBands[1].priority: priority 1 is also flowControl.priorityBands[0]\'s'],
    ['an ordering kvroute lacks', 'flowControl: {priorityBands: [{priority: 1, orderingPolicyRef: edf-ordering-policy}]}', 'flowControl.priorityBands[0].orderingPolicyRef: GIE\'s edf-ordering-policy is not supported'],
    ['a fairness ref naming a scorer', 'flowControl: {defaultPriorityBand: {fairnessPolicyRef: queue-scorer}}', 'flowControl.defaultPriorityBand.fairnessPolicyRef: "queue-scorer" is a queue-scorer; allowed here: global-strict-fairness-policy, round-robin-fairness-policy'],
    ['a usage limit naming no plugin', 'flowControl: {usageLimitPolicyPluginRef: eighty}', 'flowControl.usageLimitPolicyPluginRef: no plugin named "eighty"'],
    ['a detector that is not one', 'saturationDetector: {pluginRef: prefix-cache-scorer}', 'saturationDetector.pluginRef: "prefix-cache-scorer" is a prefix-cache-scorer, not a saturation detector'],
  ])('refuses %s, naming the field', (_what, section, message) => {
    expect(() => parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}${section}\n${PROFILE}`)).toThrow(message);
  });

  test('GIE\'s unset values: empty references are defaults, 0 bounds are GIE\'s "no bound of its own", the default usage limit by its type name', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}saturationDetector: {pluginRef: ""}\n` +
      'flowControl:\n  maxRequests: 0\n  maxBytes: 0\n  usageLimitPolicyPluginRef: static-usage-limit-policy\n  defaultRequestTTL: 0m0s\n' +
      '  priorityBands: [{priority: 1, maxRequests: 0, maxBytes: 0, fairnessPolicyRef: "", orderingPolicyRef: ""}]\n' + PROFILE);
    expect(config.saturationDetector).toEqual({ pluginRef: 'utilization-detector' });
    expect(config.flowControl).toMatchObject({ maxQueued: 1024, maxQueuedBytes: 128 * 1024 * 1024, defaultRequestTTL: '0s', usageLimitPolicyPluginRef: 'static-usage-limit-policy', priorityBands: [{ priority: 1 }] });
    expect(resolveFlowControl(config).bands).toEqual(new Map([[1, { maxBytes: 1_000_000_000, fairness: 'global-strict' }]]));
    expect(resolveFlowControl(config).defaultBand).toEqual({ maxBytes: 1_000_000_000, fairness: 'global-strict' });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    // concurrency-detector's token bound is checked in requests mode too, and unused.
    expect(() => parseEndpointPickerConfig(GUIDE_CONCURRENCY.replace('maxConcurrency: 110', 'maxConcurrency: 110\n    maxTokenConcurrency: 5000'))).not.toThrow();
    expect(() => parseEndpointPickerConfig(GUIDE_CONCURRENCY.replace('maxConcurrency: 110', 'maxConcurrency: 110\n    maxTokenConcurrency: 0'))).toThrow('maxTokenConcurrency: must be an integer >= 1');
    expect(() => parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}flowControl: {maxBytes: 1e30}\n${PROFILE}`)).toThrow('flowControl.maxBytes: is out of range');
  });

  test.each([
    [{ kvCacheUtilThreshold: 0 }, 'kvCacheUtilThreshold: must be in (0.0, 1.0], got 0'],
    [{ kvCacheUtilThreshold: 1.2 }, 'kvCacheUtilThreshold: must be a number between 0 and 1'],
    [{ queueDepthThreshold: 0 }, 'queueDepthThreshold: must be an integer >= 1'],
    [{ headroom: -0.1 }, 'headroom: must be a number >= 0'],
    [{ metricsStalenessThreshold: '0s' }, 'metricsStalenessThreshold: must be longer than 0'],
  ])('utilization-detector refuses %j as GIE\'s validateConfig does', (parameters, message) => {
    expect(() => resolvePluginParameters('utilization-detector', parameters)).toThrow(message);
  });

  // GIE v1.5.0 handlers/request.go: a request without x-gateway-inference-fairness-id gets metadata.DefaultFairnessID
  // ("default-flow", metadata/consts.go): in a config written in GIE's terms, requests without one share that flow;
  // kvroute's own configs key them by session (flowControl.sessionFairness).
  test('sessionFairness: false (GIE\'s one default-flow) in a config written in GIE\'s terms, its flowControl keys or its gate; true in kvroute\'s own; either when given', () => {
    const sessionFairness = (text: string) => resolveFlowControl(parseEndpointPickerConfig(text)).sessionFairness;
    expect(parseEndpointPickerConfig(GUIDE_BANDS).flowControl?.sessionFairness).toBe(false);
    expect(sessionFairness(GUIDE_BANDS)).toBe(false);
    expect(sessionFairness(`${HEADER}plugins:\n${SCORERS}flowControl: {maxRequests: 10}\n${PROFILE}`)).toBe(false);
    expect(sessionFairness(`${HEADER}plugins:\n${SCORERS}flowControl: {usageLimitPolicyPluginRef: static-usage-limit-policy}\n${PROFILE}`)).toBe(false);
    // The gate alone, with or without a section of kvroute's keys.
    expect(sessionFairness(GUIDE_UTILIZATION)).toBe(false);
    expect(sessionFairness(GUIDE_UTILIZATION.replace('saturationDetector:', 'flowControl: {maxQueued: 10}\nsaturationDetector:'))).toBe(false);
    // kvroute's own: its default config, and a section of kvroute's keys only.
    expect(resolveFlowControl(defaultEndpointPickerConfig()).sessionFairness).toBe(true);
    const own = parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}flowControl: {maxQueued: 10, defaultRequestTTL: 5s}\n${PROFILE}`);
    expect(own.flowControl).not.toHaveProperty('sessionFairness');
    expect(resolveFlowControl(own).sessionFairness).toBe(true);
    // Given, it wins either way, and renders back.
    const chosen = parseEndpointPickerConfig(GUIDE_BANDS.replace('flowControl:', 'flowControl:\n  sessionFairness: true'));
    expect(resolveFlowControl(chosen).sessionFairness).toBe(true);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(chosen))).toEqual(chosen);
    expect(sessionFairness(GUIDE_UTILIZATION.replace('saturationDetector:', 'flowControl: {sessionFairness: true}\nsaturationDetector:'))).toBe(true);
    expect(() => parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}flowControl: {sessionFairness: 1}\n${PROFILE}`)).toThrow('flowControl.sessionFairness: must be true or false, got 1');
  });

  // GIE v1.5.0 flowcontrol/registry/config.go: DefaultFairnessPolicyRef = global-strict-fairness-policy, applied to a
  // band (and the default band template) that names none; kvroute's session fairness takes turns instead.
  test('a band that names no fairness policy is global-strict where sessionFairness is false (GIE\'s terms), round robin where it is true', () => {
    const bands = `flowControl:\n  priorityBands: [{priority: 5}, {priority: 6, fairnessPolicyRef: round-robin-fairness-policy}]\n`;
    const gie = resolveFlowControl(parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}${bands}${PROFILE}`));
    expect(gie.bands).toEqual(new Map([[5, { maxBytes: 1_000_000_000, fairness: 'global-strict' }], [6, { maxBytes: 1_000_000_000, fairness: 'round-robin' }]]));
    expect(gie.defaultBand.fairness).toBe('global-strict');
    expect(resolveFlowControl(parseEndpointPickerConfig(GUIDE_UTILIZATION)).defaultBand.fairness).toBe('global-strict');
    const sessions = resolveFlowControl(parseEndpointPickerConfig(`${HEADER}plugins:\n${SCORERS}${bands}  sessionFairness: true\n${PROFILE}`));
    expect(sessions.bands.get(5)!.fairness ?? 'round-robin').toBe('round-robin');
    expect(sessions.defaultBand.fairness ?? 'round-robin').toBe('round-robin');
    expect(resolveFlowControl(defaultEndpointPickerConfig()).defaultBand.fairness ?? 'round-robin').toBe('round-robin');
  });

  test('quantities as Kubernetes reads them, rounded up', () => {
    expect(parseQuantity(100)).toBe(100);
    expect(parseQuantity('1k')).toBe(1000);
    expect(parseQuantity('1Gi')).toBe(2 ** 30);
    expect(parseQuantity('500M')).toBe(500_000_000);
    expect(parseQuantity('1.5Ki')).toBe(1536);
    expect(parseQuantity('0.1k')).toBe(100);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity('1500m')).toBe(2);
    expect(parseQuantity('10000000000.3')).toBe(10_000_000_001);
    expect(parseQuantity('1.0000000001G')).toBe(1_000_000_001);
    expect(() => parseQuantity(1e30)).toThrow('is out of range');
    expect(() => parseQuantity(' 1Gi')).toThrow('must be a Kubernetes quantity');
    expect(() => parseQuantity('1 GB')).toThrow('must be a Kubernetes quantity');
    expect(() => parseQuantity(true)).toThrow('must be a Kubernetes quantity');
  });
});

const NOW = 1_700_000_000_000;
const handle: PluginHandle = { now: () => NOW, random: Math.random, metrics: NOOP_SCHEDULING_METRICS, logger: SILENT_PLUGIN_LOGGER };
const cycle: CycleContext = { request: { requestId: 'r', model: 'm', prompt: '', headers: {} }, state: new CycleState() };

function pod(name: string, metrics: Partial<EndpointMetrics>, activeRequests = 0): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: NOW, ...metrics },
    activeRequests,
  };
}
const names = (endpoints: readonly EndpointSnapshot[]) => endpoints.map((e) => e.endpoint.name);

function utilization(parameters: object = {}): UtilizationDetector {
  return createPlugin(utilizationDetector, 'u', resolvePluginParameters('utilization-detector', parameters), handle) as UtilizationDetector;
}

describe('utilization-detector (GIE v1.5.0 utilization/detector.go)', () => {
  test('pool saturation is the average of each pod\'s roofline max(queue ÷ threshold, KV ÷ threshold); stale or never-scraped pods count 1', () => {
    const d = utilization();
    // max(4/5, 0.2/0.8) = 0.8; max(0/5, 0.6/0.8) = 0.75; stale = 1; never scraped = 1.
    const pods = [pod('a', { waitingQueueSize: 4, kvCacheUsagePercent: 0.2 }), pod('b', { kvCacheUsagePercent: 0.6 })];
    expect(d.saturation(pods)).toBeCloseTo((0.8 + 0.75) / 2, 12);
    expect(d.saturation([...pods, pod('stale', {}, 0)].map((p, i) => (i === 2 ? { ...p, metrics: { ...p.metrics, updateTime: NOW - 201 } } : p))))
      .toBeCloseTo((0.8 + 0.75 + 1) / 3, 12);
    expect(d.saturation([pod('new', { updateTime: 0 })])).toBe(1);
    expect(d.saturation([])).toBe(1);
    // One pod far over its queue threshold saturates a pool of two idle ones on average: (3 + 0 + 0) / 3 = 1.
    expect(d.saturation([pod('hot', { waitingQueueSize: 15 }), pod('x', {}), pod('y', {})])).toBe(1);
  });

  test('as a filter: keeps fresh pods strictly below threshold × (1 + headroom), and all of them when none is', () => {
    const pods = [pod('ok', { waitingQueueSize: 4 }), pod('queue', { waitingQueueSize: 5 }), pod('kv', { kvCacheUsagePercent: 0.8 }), pod('stale', { updateTime: NOW - 1000 })];
    expect(names(utilization().filter(cycle, pods))).toEqual(['ok']);
    // headroom 0.2: queue limit 6, KV limit 0.96.
    expect(names(utilization({ headroom: 0.2 }).filter(cycle, pods))).toEqual(['ok', 'queue', 'kv']);
    const allFull = [pod('a', { waitingQueueSize: 9 }), pod('b', { kvCacheUsagePercent: 0.99 })];
    expect(utilization().filter(cycle, allFull)).toBe(allFull);
  });
});

describe('concurrency-detector (GIE v1.5.0 concurrency/detector.go), requests mode', () => {
  const d = (parameters: object = {}) => createPlugin(concurrencyDetector, 'c', resolvePluginParameters('concurrency-detector', parameters), handle) as ConcurrencyDetector;

  test('pool saturation is the requests in flight over the pool\'s total capacity, from the EPP\'s own accounting', () => {
    expect(d({ maxConcurrency: 4 }).saturation([pod('a', {}, 4), pod('b', {}, 2)])).toBe(0.75);
    expect(d({ maxConcurrency: 4 }).saturation([pod('a', {}, 4), pod('b', {}, 4)])).toBe(1);
    expect(d().saturation([])).toBe(1);
  });

  test('as a filter: keeps pods below ⌊max × (1 + headroom)⌋ in flight and does not fail open', () => {
    const pods = [pod('a', {}, 3), pod('b', {}, 4), pod('c', {}, 5)];
    expect(names(d({ maxConcurrency: 4 }).filter(cycle, pods))).toEqual(['a']);
    expect(names(d({ maxConcurrency: 4, headroom: 0.3 }).filter(cycle, pods))).toEqual(['a', 'b']); // limit ⌊5.2⌋ = 5
    expect(d({ maxConcurrency: 1 }).filter(cycle, pods)).toEqual([]);
  });
});

describe('flow-control queue: GIE v1.5.0 priority bands', () => {
  function queue(extra: Partial<ConstructorParameters<typeof FlowControlQueue>[0]> = {}) {
    let now = 0;
    const q = new FlowControlQueue({ maxQueued: 100, maxWaitMs: 1000, maxDispatchPerCall: 100, timers: false, now: () => now, ...extra });
    return { q, tick: (ms: number) => { now += ms; } };
  }

  test('a band\'s own bounds refuse a newcomer even while the queue as a whole has room (processor.go hasCapacity)', async () => {
    const { q } = queue({ bands: new Map([[5, { maxRequests: 1, maxBytes: 100 }]]) });
    const first = q.enqueue({ flow: 'a', priority: 5, bytes: 10 });
    await expect(q.enqueue({ flow: 'b', priority: 5, bytes: 10 })).rejects.toEqual(new FlowControlRejection('queue-full'));
    // Another level is not bound by band 5's limit.
    const other = q.enqueue({ flow: 'c', priority: 0, bytes: 10 });
    expect(q.dispatch(10)).toBe(2);
    await Promise.all([first, other]);
    await expect(q.enqueue({ flow: 'd', priority: 5, bytes: 101 })).rejects.toEqual(new FlowControlRejection('queue-full'));
  });

  test('global-strict fairness serves the band in one arrival order; round robin gives each flow a turn', async () => {
    for (const [fairness, expected] of [['global-strict', ['a1', 'a2', 'a3', 'b1']], ['round-robin', ['a1', 'b1', 'a2', 'a3']]] as const) {
      const { q, tick } = queue({ defaultBand: { fairness } });
      const order: string[] = [];
      const wait = (flow: string, id: string) => { tick(1); return q.enqueue({ flow, priority: 0 }).then(() => { order.push(id); }); };
      const all = [wait('a', 'a1'), wait('a', 'a2'), wait('a', 'a3'), wait('b', 'b1')];
      for (let i = 0; i < 4; i++) q.dispatch(1);
      await Promise.all(all);
      expect({ fairness, order }).toEqual({ fairness, order: expected });
    }
  });

  /**
   * Requests as request control drives them: each takes an arrival ticket once, and a released one that finds the pool
   * still full comes back with `retry` and its ticket. Resolves with the release order of `ids` over `rounds` batches
   * that all come back, then one that does not.
   */
  async function releaseOrder(fairness: 'global-strict' | 'round-robin', flows: readonly string[], rounds: number): Promise<string[]> {
    const { q } = queue({ defaultBand: { fairness }, maxDispatchPerCall: 4 });
    const order: string[] = [];
    let full = rounds;
    const waits = flows.map(async (flow, i) => {
      const arrival = q.arrivalTicket();
      for (let retry = false; ; retry = true) {
        await q.enqueue({ flow, priority: 0, arrival, retry });
        if (full > 0) continue; // dispatched into a full pool: back to its place
        order.push(`r${i + 1}`);
        return;
      }
    });
    for (let tick = 0; order.length < flows.length; tick++) {
      if (tick >= rounds) full = 0;
      q.dispatch(Infinity);
      for (let i = 0; i < 10; i++) await Promise.resolve();
      if (tick >= rounds) full = 0;
      else full--;
      if (tick > 50) break;
    }
    await Promise.all(waits);
    return order;
  }

  test('a batch released into a full pool comes back in its order, under either fairness (retries keep their place)', async () => {
    for (const fairness of ['global-strict', 'round-robin'] as const) {
      expect({ fairness, order: await releaseOrder(fairness, ['a', 'a', 'a'], 3) }).toEqual({ fairness, order: ['r1', 'r2', 'r3'] });
      expect({ fairness, order: await releaseOrder(fairness, ['a', 'b', 'c', 'd', 'e', 'f'], 2) }).toEqual({ fairness, order: ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'] });
    }
  });

  /**
   * The order requests are released in when `failed` dispatches of `perTick` (after `served` that succeed) all find the
   * pool full and every released request comes back as request control's waitLoop sends it (`retry`, its ticket), then
   * `late` requests arrive and the pool takes everything. Only microtask turns: no timers, no clock.
   */
  async function orderAfterFailedDispatches(
    fairness: 'global-strict' | 'round-robin', perTick: number, flows: readonly string[], served: number, failed: number, late: readonly string[] = [],
  ): Promise<string[]> {
    const { q } = queue({ defaultBand: { fairness }, maxDispatchPerCall: perTick });
    const order: string[] = [];
    let full = false;
    const waits: Promise<void>[] = [];
    const arrive = (flow: string, id: string) => waits.push((async () => {
      const arrival = q.arrivalTicket();
      for (let retry = false; ; retry = true) {
        await q.enqueue({ flow, priority: 0, arrival, retry });
        if (full) continue; // dispatched into a full pool: back to its place
        order.push(id);
        return;
      }
    })());
    flows.forEach((flow, i) => arrive(flow, `${flow}${i + 1}`));
    const settle = async () => { for (let i = 0; i < 10; i++) await Promise.resolve(); };
    for (let i = 0; i < served; i++) { q.dispatch(Infinity); await settle(); }
    full = true;
    for (let i = 0; i < failed; i++) { q.dispatch(Infinity); await settle(); }
    full = false;
    late.forEach((flow, i) => arrive(flow, `${flow}late${i + 1}`));
    for (let i = 0; order.length < flows.length + late.length && i < 1000; i++) { q.dispatch(Infinity); await settle(); }
    await Promise.all(waits);
    return order;
  }

  test('the release order does not depend on how many dispatches found the pool full: under round robin a flow with requests still waiting keeps its turn (audit 37 F1)', async () => {
    // A1 arrived first and A is first in the rotation; B and C each have one request. Before the fix, one failed
    // dispatch of one request sent A to the back (B1, C1, A1, …), two of two gave it back (the order oscillated with
    // the number of failed dispatches).
    const flows = ['A', 'A', 'A', 'A', 'B', 'C'];
    for (const perTick of [1, 2, 4]) {
      for (const failed of [1, 2, 3, 5]) {
        expect({ perTick, failed, order: await orderAfterFailedDispatches('round-robin', perTick, flows, 0, failed) })
          .toEqual({ perTick, failed, order: ['A1', 'B5', 'C6', 'A2', 'A3', 'A4'] });
      }
    }
    // A session (one flow, arrived first) among 20 anonymous requests (each its own flow), at the default 4 a tick: one
    // failed dispatch sent S1 behind all 20 of them.
    const session = ['S', 'S', 'S', ...Array.from({ length: 20 }, (_, i) => `X${i}-`)];
    const unfailed = await orderAfterFailedDispatches('round-robin', 4, session, 0, 0);
    expect(unfailed[0]).toBe('S1');
    for (const failed of [1, 3]) expect(await orderAfterFailedDispatches('round-robin', 4, session, 0, failed)).toEqual(unfailed);
    // Any mix of flows, dispatch sizes, dispatches that succeeded first (the rotation no longer in arrival order) and
    // late arrivals, under either fairness: the order is the one with no failed dispatch (a fixed seed).
    let seed = 37;
    const random = () => { seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648; return seed / 2_147_483_648; };
    for (let trial = 0; trial < 150; trial++) {
      const mix = Array.from({ length: 2 + Math.floor(random() * 10) }, () => 'ABCDE'[Math.floor(random() * random() * 5)]!);
      const late = Array.from({ length: Math.floor(random() * 3) }, () => 'ABF'[Math.floor(random() * 3)]!);
      const perTick = 1 + Math.floor(random() * 5);
      const served = Math.floor(random() * 3);
      for (const fairness of ['round-robin', 'global-strict'] as const) {
        const expected = await orderAfterFailedDispatches(fairness, perTick, mix, served, 0, late);
        for (const failed of [1, 2, 3]) {
          expect({ fairness, mix: mix.join(''), late: late.join(''), perTick, served, failed, order: await orderAfterFailedDispatches(fairness, perTick, mix, served, failed, late) })
            .toEqual({ fairness, mix: mix.join(''), late: late.join(''), perTick, served, failed, order: expected });
        }
      }
    }
  });

  test('dispatch releases nothing while the pool is full (head-of-line blocking, GIE processor.go dispatchCycle)', async () => {
    const { q } = queue();
    let ready = false;
    const waiting = q.enqueue({ flow: 'a', priority: 0 });
    expect(q.dispatch(Infinity, () => ready)).toBe(0);
    expect(q.size).toBe(1);
    ready = true;
    expect(q.dispatch(Infinity, () => ready)).toBe(1);
    await waiting;
  });

  test('a deadline beyond Node\'s longest timer does not spin the timer', async () => {
    const fired: number[] = [];
    const q = new FlowControlQueue({ maxQueued: 10, maxWaitMs: 3e9, maxDispatchPerCall: 1 });
    const original = q.expire.bind(q);
    q.expire = () => { fired.push(1); return original(); };
    const waiting = q.enqueue({ flow: 'a', priority: 0 }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(fired.length).toBeLessThanOrEqual(1);
    q.close();
    await waiting;
  });

  test('without a deadline (defaultRequestTTL 0) a request waits until dispatched or aborted', async () => {
    const { q, tick } = queue({ maxWaitMs: Infinity });
    const waiting = q.enqueue({ flow: 'a', priority: 0 });
    tick(1e9);
    expect(q.expire()).toBe(0);
    expect(q.dispatch(1)).toBe(1);
    await waiting;
  });
});

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('legacy admission and flow control read a pool of gone pods alike (audit 37 F2)', () => {
  const T0 = 1_700_000_000_000;
  const config = GUIDE_UTILIZATION.replace('kvCacheUtilThreshold: 0.85', 'kvCacheUtilThreshold: 0.85\n    metricsStalenessThreshold: 300ms');

  // Every clock follows jest's fake one (the detector's staleness, the stall detector, the queue): no real time passes.
  test.each([['off'], ['on']])('flow control %s: every scrape failing with the EPP running is not saturation, so a sheddable request is not dropped; just out of an EPP stall it is', async (mode) => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    const ds = new Datastore({ scrape: false });
    let director: RequestControl | undefined;
    try {
      for (let i = 0; i < 2; i++) {
        const address = `10.0.0.${i + 1}`;
        ds.upsertEndpoint({ key: `${address}:8000`, name: `p${i}`, namespace: 'ns', address, port: 8000, labels: {} });
        ds.setMetrics(`${address}:8000`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: T0, consecutiveFailures: 0 });
      }
      const scheduler = buildScheduler(parseEndpointPickerConfig(config), { now: () => Date.now() });
      const queue = mode === 'on' ? new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 }) : undefined;
      director = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000, ...(queue ? { flowControl: { queue, tickMs: 50 } } : {}) });
      // Past the start-up grace, the EPP running; then the pods go: every scrape fails, the pages go stale (1.0 each).
      jest.advanceTimersByTime(RESUME_GRACE_MS + 1_000);
      for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { consecutiveFailures: 2 });
      const sheddable = (id: string) => ({
        requestId: id,
        headers: new Map([[':method', 'POST'], ['content-type', 'application/json'], ['x-kvroute-priority', '-1']]),
        body: Buffer.from(JSON.stringify({ model: 'm', prompt: `hello ${id}` })),
        filterMetadata: {},
      });
      // Issue 11: unreachable, not busy. No saturation-filter in GIE's profile: the cycle routes (Envoy's connection to
      // the pod fails). Before the fix, flow control off answered 429 "sheddable request dropped" here.
      expect(await director.route(sheddable('gone'))).toMatchObject({ kind: 'route' });
      // Frozen for 15 s (SIGSTOP): no timer ran, so the stale pages may be the EPP's own. Saturated in both modes: the
      // sheddable request is dropped (legacy admission) or waits for fresh scrapes (flow control).
      jest.setSystemTime(Date.now() + 15_000);
      let after: RouteDecision | undefined;
      const pending = director.route(sheddable('after-stall')).then((d) => { after = d; });
      await turns(20);
      if (mode === 'off') expect(after).toMatchObject({ kind: 'reject', status: 429 });
      else expect({ after, waiting: queue!.size }).toEqual({ after: undefined, waiting: 1 });
      director.close();
      await pending;
    } finally {
      director?.close();
      ds.stop();
      jest.useRealTimers();
    }
  });
});

describe('a pool saturation detector in the running EPP', () => {
  let pods: FakeVllmServer[];
  let epp: RunningEpp;
  let envoy: FakeEnvoy;
  const streams: EnvoyStream[] = [];
  const keys = () => pods.map((p) => `127.0.0.1:${p.port}`);

  async function start(config: string, flags: string[] = [], env: Record<string, string> = {}): Promise<void> {
    pods = await Promise.all([0, 1].map(() => FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] })));
    epp = await startEpp(parseArgs(['--endpoints', keys().join(','), '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
      '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms', '--shutdown-grace-period', '1s', '--config-text', config, ...flags], env)!, quiet);
    envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    await waitFor(() => epp.datastore.snapshot().every((s) => s.metrics.updateTime > 0));
  }

  async function setWaiting(waiting: number): Promise<void> {
    for (const p of pods) p.page = { engines: [{ waiting, running: 4, kvUsage: 0.3 }] };
    await waitFor(() => epp.datastore.snapshot().every((s) => s.metrics.waitingQueueSize === waiting));
  }

  /** Sends one chat request; resolves with the routed endpoint or the immediate response's status. */
  function send(headers: Record<string, string> = {}): { stream: EnvoyStream; answer: Promise<{ endpoint?: string; status?: string }>; settled: () => boolean } {
    const stream = envoy.open();
    streams.push(stream);
    let done = false;
    stream.send(requestHeaders({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', ...headers }, false));
    stream.send(requestBody(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] }), true));
    const answer = stream.next().then((first: Json) => {
      done = true;
      return first.immediate_response
        ? { status: first.immediate_response.status.code as string }
        : { endpoint: setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint'] };
    });
    return { stream, answer, settled: () => done };
  }

  async function complete(stream: EnvoyStream): Promise<void> {
    stream.send(responseHeaders({ ':status': '200' }, false));
    for (;;) if ((await stream.next()).response_headers) break;
    stream.end();
  }

  afterEach(async () => {
    streams.length = 0;
    envoy?.close();
    await epp?.stop();
    await Promise.all((pods ?? []).map((p) => p.close()));
  });

  // Staleness far above the test's scrape period, so a busy CI machine's late scrape is not read as a full pod.
  const UTILIZATION = GUIDE_UTILIZATION.replace('kvCacheUtilThreshold: 0.85', 'kvCacheUtilThreshold: 0.85\n    metricsStalenessThreshold: 10s');

  test('flow control on: while the detector reads the pool full (waiting 3 ÷ threshold 2 on each pod) the request waits; it is routed once the queues drain', async () => {
    await start(UTILIZATION);
    await setWaiting(3);
    const r = send({ 'x-gateway-inference-fairness-id': 'tenant-a' });
    await waitFor(async () => (await sizeOf(epp)) === 1);
    expect(r.settled()).toBe(false);
    // GIE's own flow-control series, as its guide tells autoscalers to read them (metrics.go @ v1.5.0).
    const waiting = await metricsPage(epp);
    expect(waiting).toContain('inference_extension_flow_control_queue_size{fairness_id="tenant-a",priority="0",inference_pool="static",model_name="m",target_model_name="m"} 1');
    expect(waiting).toMatch(/inference_extension_flow_control_queue_bytes\{fairness_id="tenant-a",[^}]*\} [1-9]\d*/);
    expect(waiting).toContain('inference_extension_flow_control_pool_saturation{inference_pool="static"} 1.5');
    // The admission, timed: the request now waits, so its outcome is not yet final (processor.go enqueue @ v1.5.0).
    expect(waiting).toContain('inference_extension_flow_control_request_enqueue_duration_seconds_count{fairness_id="tenant-a",priority="0",outcome="NotYetFinalized"} 1');
    await setWaiting(1); // max(1/2, 0.3/0.85) = 0.5 on each pod
    expect(keys()).toContain((await r.answer).endpoint);
    const after = await metricsPage(epp);
    expect(after).toContain('inference_extension_flow_control_queue_size{fairness_id="tenant-a",priority="0",inference_pool="static",model_name="m",target_model_name="m"} 0');
    expect(after).toContain('inference_extension_flow_control_request_queue_duration_seconds_count{fairness_id="tenant-a",priority="0",outcome="Dispatched",inference_pool="static",model_name="m",target_model_name="m"} 1');
    // Dispatch cycles ran while it waited (the ticker's), each timed (processor.go dispatchCycle @ v1.5.0).
    expect(after).toMatch(/^inference_extension_flow_control_dispatch_cycle_duration_seconds_count [1-9]\d*$/m);
  });

  test('with GIE\'s flowControl gate named, a request that never waits is still counted as GIE counts every request through its queue (admission.go FlowControlAdmissionController @ v1.5.0): enqueued NotYetFinalized, then Dispatched; without the gate only waiting requests are', async () => {
    await start(UTILIZATION);
    const r = send({ 'x-gateway-inference-fairness-id': 'tenant-b' });
    expect(keys()).toContain((await r.answer).endpoint);
    await complete(r.stream);
    const page = await metricsPage(epp);
    expect(page).toContain('inference_extension_flow_control_request_enqueue_duration_seconds_count{fairness_id="tenant-b",priority="0",outcome="NotYetFinalized"} 1');
    expect(page).toContain('inference_extension_flow_control_request_queue_duration_seconds_count{fairness_id="tenant-b",priority="0",outcome="Dispatched",inference_pool="static",model_name="m",target_model_name="m"} 1');
    envoy.close();
    await epp.stop();
    await Promise.all(pods.map((p) => p.close()));
    // The same config without the gate: the request passes without a flow-control observation.
    await start(UTILIZATION.replace('featureGates:\n  - "flowControl"\n', ''));
    const quietRequest = send({ 'x-gateway-inference-fairness-id': 'tenant-b' });
    expect(keys()).toContain((await quietRequest.answer).endpoint);
    await complete(quietRequest.stream);
    expect(await metricsPage(epp)).not.toContain('inference_extension_flow_control_request_queue_duration_seconds_count{fairness_id="tenant-b"');
  });

  // GIE v1.5.0 cmd/epp/runner/runner.go applyDeprecatedEnvFeatureGate: ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER, read with
  // strconv.ParseBool (a value that does not parse is false), appends the flowControl gate to the config's featureGates.
  test.each([
    ['true', true], ['1', true], ['false', false], ['yes', false],
  ])('ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER=%s turns GIE\'s flowControl gate on (%s) as featureGates: [flowControl] does (GIE v1.5.0 runner.go applyDeprecatedEnvFeatureGate)', async (value, gated) => {
    await start(UTILIZATION.replace('featureGates:\n  - "flowControl"\n', ''), [], { ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER: value });
    const r = send({ 'x-gateway-inference-fairness-id': 'tenant-env' });
    expect(keys()).toContain((await r.answer).endpoint);
    await complete(r.stream);
    expect((await metricsPage(epp)).includes('inference_extension_flow_control_request_queue_duration_seconds_count{fairness_id="tenant-env",priority="0",outcome="Dispatched",inference_pool="static",model_name="m",target_model_name="m"} 1')).toBe(gated);
  });

  test('with the gate named, a request whose cycle finds every pod saturated (kvroute\'s saturation-filter) waits and is counted once, at the queue, not also as passing it', async () => {
    const config = `${HEADER}featureGates:\n  - "flowControl"\nplugins:\n${SCORERS}- type: saturation-filter\n  parameters:\n    mode: filter\n    queueDepthThreshold: 2\n    metricsStalenessThreshold: 10s\nschedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: saturation-filter\n  - pluginRef: queue-scorer\n  - pluginRef: kv-cache-utilization-scorer\n  - pluginRef: prefix-cache-scorer\n`;
    await start(config);
    await setWaiting(3);
    const r = send({ 'x-gateway-inference-fairness-id': 'tenant-c' });
    await waitFor(async () => (await sizeOf(epp)) === 1);
    await setWaiting(0);
    expect(keys()).toContain((await r.answer).endpoint);
    await complete(r.stream);
    const page = await metricsPage(epp);
    expect(page).toContain('inference_extension_flow_control_request_enqueue_duration_seconds_count{fairness_id="tenant-c",priority="0",outcome="NotYetFinalized"} 1');
    expect(page).toContain('inference_extension_flow_control_request_queue_duration_seconds_count{fairness_id="tenant-c",priority="0",outcome="Dispatched",inference_pool="static",model_name="m",target_model_name="m"} 1');
  });

  test('flow control off: GIE\'s legacy admission drops only sheddable requests while the pool is full', async () => {
    await start(UTILIZATION, ['--flow-control=false']);
    await setWaiting(3);
    expect(await send({ 'x-kvroute-priority': '-1' }).answer).toEqual({ status: 'TooManyRequests' });
    expect(keys()).toContain((await send().answer).endpoint);
    await setWaiting(1);
    expect(keys()).toContain((await send({ 'x-kvroute-priority': '-1' }).answer).endpoint);
  });

  test('pods whose scrapes all fail are unreachable, not busy: the detector does not hold the request (issue 11: no 429 for a gone pool)', async () => {
    await start(GUIDE_UTILIZATION.replace('kvCacheUtilThreshold: 0.85', 'kvCacheUtilThreshold: 0.85\n    metricsStalenessThreshold: 300ms') + 'flowControl: {defaultRequestTTL: 5s}\n');
    const addresses = keys();
    // Past the start-up grace, when a pool without fresh metrics may be the EPP's own stall (RESUME_GRACE_MS).
    await sleep(RESUME_GRACE_MS + 100);
    await Promise.all(pods.map((p) => p.close()));
    pods = [];
    // Stale pods count as full: the detector now reads the pool saturated.
    await waitFor(() => epp.datastore.snapshot().every((s) => s.metrics.consecutiveFailures > 0 && Date.now() - s.metrics.updateTime > 400));
    // No saturation-filter in GIE's profile: the cycle routes as upstream's fail-open filter would, and Envoy's
    // connection to the pod fails; it is not parked until its deadline to end in a 429.
    expect(addresses).toContain((await send().answer).endpoint);
  });

  test('priorities come from the pool\'s InferenceObjective resources: a sheddable objective is dropped while the pool is full (flow control off)', async () => {
    const api = await FakeKubeApiServer.start();
    const kubeconfig = api.writeKubeconfig();
    try {
      pods = [await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] })];
      api.upsertPool(fakePoolV1('pool', { app: 'vllm' }, pods[0]!.port));
      api.upsertPod(fakePod({ name: 'vllm-0', ip: '127.0.0.1', labels: { app: 'vllm' } }));
      api.upsertObjective(fakeObjective('batch', 'pool', -1));
      api.upsertObjective(fakeObjective('chat', 'pool', 5));
      epp = await startEpp(parseArgs(['--pool-name', 'pool', '--kubeconfig', kubeconfig, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
        '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms', '--shutdown-grace-period', '1s', '--config-text', UTILIZATION, '--flow-control=false'])!, quiet);
      envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
      await waitFor(() => epp.datastore.snapshot().length === 1 && epp.datastore.snapshot()[0]!.metrics.updateTime > 0);
      await setWaiting(3);
      const objective = (name: string) => ({ 'x-gateway-inference-objective': name });
      // Watched, not configured: the config lists no objectives.
      await waitFor(async () => (await send(objective('batch')).answer).status === 'TooManyRequests', 'objective watched');
      expect((await send(objective('chat')).answer).endpoint).toBe(`127.0.0.1:${pods[0]!.port}`);
      expect((await send(objective('unknown')).answer).endpoint).toBe(`127.0.0.1:${pods[0]!.port}`);
    } finally {
      await api.close();
      fs.rmSync(path.dirname(kubeconfig), { recursive: true, force: true });
    }
  });

  test('the usage-limit policy\'s threshold is where flow control holds the pool', async () => {
    await start(UTILIZATION.replace('saturationDetector:', '- type: static-usage-limit-policy\n  name: half\n  parameters: {threshold: 0.5}\nsaturationDetector:') +
      'flowControl: {usageLimitPolicyPluginRef: half}\n');
    await setWaiting(1); // max(1/2, 0.3/0.85) = 0.5 on each pod: at the limit
    const r = send();
    await waitFor(async () => (await sizeOf(epp)) === 1);
    expect(r.settled()).toBe(false);
    await setWaiting(0); // 0.3/0.85 ≈ 0.35
    expect(keys()).toContain((await r.answer).endpoint);
  });

  test('concurrency-detector reads no metrics: a pool whose scrapes all fail is still held at its in-flight limit', async () => {
    await start(GUIDE_CONCURRENCY.replace('maxConcurrency: 110', 'maxConcurrency: 1'));
    const addresses = keys();
    await Promise.all(pods.map((p) => p.close()));
    pods = [];
    await waitFor(() => epp.datastore.snapshot().every((s) => s.metrics.consecutiveFailures > 0));
    await sleep(RESUME_GRACE_MS + 100);
    const first = send();
    const second = send();
    expect(addresses).toContain((await first.answer).endpoint);
    expect(addresses).toContain((await second.answer).endpoint);
    const third = send();
    await waitFor(async () => (await sizeOf(epp)) === 1);
    expect(third.settled()).toBe(false);
    await complete(first.stream);
    expect(addresses).toContain((await third.answer).endpoint);
  });

  test('concurrency-detector: the third request waits while two are in flight on two pods of maxConcurrency 1, and goes when one ends', async () => {
    // Listed in the profile too, as a filter: the third request then goes to the pod that has room.
    await start(GUIDE_CONCURRENCY.replace('maxConcurrency: 110', 'maxConcurrency: 1').replace('  plugins:\n', '  plugins:\n  - pluginRef: concurrency-detector\n'));
    const first = send();
    const second = send();
    const routed = [(await first.answer).endpoint, (await second.answer).endpoint];
    expect(new Set(routed).size).toBe(2);
    const third = send();
    await waitFor(async () => (await sizeOf(epp)) === 1);
    expect(third.settled()).toBe(false);
    await complete(first.stream);
    expect((await third.answer).endpoint).toBe(routed[0]);
  });

  test('the detector\'s staleness threshold is held to the scrape period like the saturation filter\'s', () => {
    const config = parseEndpointPickerConfig(GUIDE_UTILIZATION);
    expect(stalenessWarnings(config, 'worker', 250)).toEqual([
      'utilization-detector utilization-detector metricsStalenessThreshold 200ms is under twice the scrape period (250 ms), so pods would be dropped as stale between scrapes; raise it to at least 500ms (the parameters of plugin "utilization-detector")',
    ]);
  });
});

function metricsPage(epp: RunningEpp): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${epp.metricsPort}/metrics`, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve(data));
    }).on('error', reject);
  });
}

/** Requests waiting in the EPP's flow-control queue, from its /metrics page. */
async function sizeOf(epp: RunningEpp): Promise<number> {
  const page = await metricsPage(epp);
  return page.split('\n').filter((l) => l.startsWith('kvroute_epp_flow_control_queue_size ')).reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/**
 * GIE v1.5.0's fairness through a running EPP, with GIE's own unit tests as the specification (reviewer rev-flow's
 * tests): `pkg/epp/framework/plugins/flowcontrol/fairness/roundrobin_test.go` TestRoundRobin_Pick_Logic ("Expected
 * order is based on sorted FlowKeys: flow1, flow2, flow3", the band's keys given unsorted "to test sorting").
 */
describe('GIE v1.5.0 fairness through ext_proc, a GIE config with the flowControl gate', () => {
  let pods: FakeVllmServer[] = [];
  let epp: RunningEpp | undefined;
  let envoy: FakeEnvoy | undefined;
  const keys = () => pods.map((p) => `127.0.0.1:${p.port}`);

  const CONFIG = `${HEADER}featureGates:
  - "flowControl"
plugins:
- type: queue-scorer
- type: utilization-detector
  parameters:
    queueDepthThreshold: 2
    kvCacheUtilThreshold: 0.85
    metricsStalenessThreshold: 10s
saturationDetector:
  pluginRef: utilization-detector
flowControl:
  dispatchPerTick: 1
  dispatchInterval: 100ms
  priorityBands:
    - priority: 0
      fairnessPolicyRef: round-robin-fairness-policy
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`;

  afterEach(async () => {
    envoy?.close();
    await epp?.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  async function setWaiting(waiting: number): Promise<void> {
    for (const p of pods) p.page = { engines: [{ waiting, running: 4, kvUsage: 0.3 }] };
    await waitFor(() => epp!.datastore.snapshot().every((s) => s.metrics.waitingQueueSize === waiting));
  }

  async function start(config: string = CONFIG): Promise<void> {
    pods = await Promise.all([0, 1].map(() => FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] })));
    epp = await startEpp(parseArgs(['--endpoints', keys().join(','), '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
      '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms', '--shutdown-grace-period', '1s', '--config-text', config])!, quiet);
    envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    await waitFor(() => epp!.datastore.snapshot().every((s) => s.metrics.updateTime > 0));
    await setWaiting(3); // saturation 1.5: every request waits
  }

  /** Sends requests one at a time (each waiting before the next is sent); resolves with the labels in routed order once the pool drains. */
  async function routedOrder(requests: readonly (readonly [label: string, fairnessId: string | undefined])[]): Promise<string[]> {
    const order: string[] = [];
    const answers: Promise<void>[] = [];
    let sent = 0;
    for (const [label, fairnessId] of requests) {
      const stream: EnvoyStream = envoy!.open();
      stream.send(requestHeaders({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', ...(fairnessId !== undefined ? { 'x-gateway-inference-fairness-id': fairnessId } : {}) }, false));
      stream.send(requestBody(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `hello ${label}` }] }), true));
      answers.push(stream.next().then((first: Json) => {
        expect(first.immediate_response).toBeUndefined();
        expect(keys()).toContain(setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint']);
        order.push(label);
      }));
      sent++;
      const expected = sent;
      await waitFor(async () => (await sizeOf(epp!)) === expected);
    }
    await setWaiting(1); // saturation 0.5: the queue drains, one request a tick
    await Promise.all(answers);
    return order;
  }

  test('round-robin-fairness-policy: requests of flows flow3, flow1, flow2 (arriving in that order) are routed flow1, flow2, flow3, flow2, flow3, flow3 (roundrobin.go Pick: sorted flow keys)', async () => {
    await start();
    const order = await routedOrder([['flow3', 'flow3'], ['flow3', 'flow3'], ['flow3', 'flow3'], ['flow1', 'flow1'], ['flow2', 'flow2'], ['flow2', 'flow2']]);
    expect(order).toEqual(['flow1', 'flow2', 'flow3', 'flow2', 'flow3', 'flow3']);
  });

  // GIE v1.5.0 handlers/request.go: a request without a fairness-id header gets FairnessID = metadata.DefaultFairnessID
  // ("default-flow", metadata/consts.go), so all such requests are ONE flow, and round robin alternates it with each
  // named tenant's flow. (kvroute made each such request its own flow, so a named tenant waited behind every
  // anonymous request queued before it.)
  test('requests without a fairness id share GIE\'s one "default-flow": a tenant\'s requests alternate with them instead of waiting behind all of them (handlers/request.go DefaultFairnessID)', async () => {
    await start();
    const order = await routedOrder([['anon1', undefined], ['anon2', undefined], ['anon3', undefined], ['zeta1', 'zeta'], ['zeta2', 'zeta']]);
    // Sorted keys [default-flow, zeta]: default-flow, zeta, default-flow, zeta, default-flow.
    expect(order).toEqual(['anon1', 'zeta1', 'anon2', 'zeta2', 'anon3']);
  });

  // GIE v1.5.0 apix/config/v1alpha1/endpointpickerconfig_types.go PriorityBandConfig.FairnessPolicyRef: "If omitted,
  // the system default ("global-strict-fairness-policy") is used" (flowcontrol/registry/config.go
  // DefaultFairnessPolicyRef = GlobalStrictFairnessPolicyType; besthead.go: the band behaves "as if all requests were
  // in one global queue"). (kvroute gave an omitted reference round robin.)
  test('a GIE config that names no fairness policy serves the band in one arrival order (global-strict, registry/config.go DefaultFairnessPolicyRef)', async () => {
    await start(CONFIG.replace('      fairnessPolicyRef: round-robin-fairness-policy\n', '      maxRequests: 100\n'));
    const order = await routedOrder([['a1', 'a'], ['a2', 'a'], ['a3', 'a'], ['b1', 'b']]);
    expect(order).toEqual(['a1', 'a2', 'a3', 'b1']);
  });
});
