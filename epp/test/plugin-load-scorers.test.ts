import { parseEndpointPickerConfig, resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, SILENT_PLUGIN_LOGGER, type CycleContext } from '../src/scheduling/framework';
import { ActiveRequestScorer, activeRequestScorer } from '../src/scheduling/plugins/active-request-scorer';
import { buildScheduler } from '../src/scheduling/scheduler';
import { kvCacheScorer, KvCacheUtilizationScorer } from '../src/scheduling/plugins/kv-cache-utilization-scorer';
import { createPlugin } from '../src/scheduling/plugin';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { LoadAwareScorer } from '../src/scheduling/plugins/load-aware-scorer';
import { QueueScorer } from '../src/scheduling/plugins/queue-scorer';
import { LoraAffinityScorer } from '../src/scheduling/plugins/lora-affinity-scorer';
import { RunningRequestsSizeScorer } from '../src/scheduling/plugins/running-requests-size-scorer';

function pod(name: string, metrics: Partial<EndpointMetrics>, activeRequests = 0): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, ...metrics },
    activeRequests,
  };
}

const cycle: CycleContext = { request: { requestId: 'r', model: 'm', prompt: '', headers: {} }, state: new CycleState() };
const queues = (...sizes: number[]) => sizes.map((waitingQueueSize, i) => pod(`p${i}`, { waitingQueueSize }));

describe('queue-scorer: (max − q) / (max − min)', () => {
  const scorer = new QueueScorer('queue');

  it('maps the shortest queue to 1 and the longest to 0, linearly between', () => {
    expect(scorer.score(cycle, queues(0, 5, 10))).toEqual([1, 0.5, 0]);
    expect(scorer.score(cycle, queues(4, 6, 12))).toEqual([1, 0.75, 0]);
  });

  it('scores 1 everywhere when all queues are equal', () => {
    expect(scorer.score(cycle, queues(3, 3, 3))).toEqual([1, 1, 1]);
    expect(scorer.score(cycle, queues(7))).toEqual([1]);
  });
});

describe('running-requests-size-scorer (GIE v1.5.0 runningrequests/runningrequest.go): (max − r) / (max − min) of the running requests', () => {
  const scorer = new RunningRequestsSizeScorer('running');
  const running = (...sizes: number[]) => sizes.map((runningQueueSize, i) => pod(`p${i}`, { runningQueueSize, waitingQueueSize: 100 - i }));

  it('maps the fewest running to 1 and the most to 0, linearly between, whatever the waiting queues', () => {
    expect(scorer.score(cycle, running(2, 10, 6))).toEqual([1, 0, 0.5]);
  });

  it('scores 1 everywhere when all are equal, as GIE', () => {
    expect(scorer.score(cycle, running(4, 4))).toEqual([1, 1]);
  });

  it('is in the catalogue without parameters, so GIE\'s documented config loads', () => {
    expect(resolvePluginParameters('running-requests-size-scorer', undefined)).toEqual({});
    expect(() => resolvePluginParameters('running-requests-size-scorer', { x: 1 })).toThrow();
  });
});

describe('lora-affinity-scorer (GIE v1.5.0 loraaffinity/lora_affinity.go)', () => {
  const scorer = new LoraAffinityScorer('lora');
  const lora = (running: string[], waiting: string[], maxLora: number) => ({ lora: { running, waiting, maxLora } });
  const forModel = (model: string): CycleContext => ({ request: { requestId: 'r', model, prompt: '', headers: {} }, state: new CycleState() });

  it('1 where the adapter runs, 0.8 with room for another adapter, 0.6 where it only waits, else 0; 0 without LoRA state', () => {
    const pods = [
      pod('runs', lora(['sql-lora'], [], 2)),
      pod('room', lora(['a'], [], 2)),
      pod('waits', lora(['a'], ['sql-lora'], 2)),
      pod('full', lora(['a', 'b'], [], 2)),
      pod('off', {}),
    ];
    expect(scorer.score(forModel('sql-lora'), pods)).toEqual([1, 0.8, 0.6, 0, 0]);
  });
});

describe('kv-cache-utilization-scorer: 1 − usage', () => {
  it('is absolute, not relative to the other candidates', () => {
    const scorer = new KvCacheUtilizationScorer('kv');
    const pods = [0.2, 0.9, 0].map((kvCacheUsagePercent, i) => pod(`p${i}`, { kvCacheUsagePercent }));
    expect(scorer.score(cycle, pods)).toEqual([0.8, 1 - 0.9, 1]);
  });

  it('clamps usage outside 0..1', () => {
    const scorer = new KvCacheUtilizationScorer('kv');
    expect(scorer.score(cycle, [pod('a', { kvCacheUsagePercent: 1.2 }), pod('b', { kvCacheUsagePercent: -0.1 })])).toEqual([0, 1]);
  });

  it('keeps the configured type when built under the v0.5.1 alias', () => {
    const handle = { now: Date.now, random: Math.random, metrics: NOOP_SCHEDULING_METRICS, logger: SILENT_PLUGIN_LOGGER };
    expect(createPlugin(kvCacheScorer, 'kv', {}, handle).type).toBe('kv-cache-scorer');
    expect(createPlugin(kvCacheScorer, 'kv', {}, handle)).toBeInstanceOf(KvCacheUtilizationScorer);
  });
});

describe('load-aware-scorer (llm-d): 0.5 at an empty queue, else 0.5 × (1 − min(q, t) / t)', () => {
  it('uses the default threshold of 128', () => {
    const scorer = new LoadAwareScorer('load', resolvePluginParameters('load-aware-scorer', undefined));
    expect(scorer.score(cycle, queues(0, 1, 64, 128, 500))).toEqual([0.5, 0.5 * (127 / 128), 0.25, 0, 0]);
  });

  it('honours a configured threshold', () => {
    const scorer = new LoadAwareScorer('load', resolvePluginParameters('load-aware-scorer', { threshold: 10 }));
    expect(scorer.score(cycle, queues(5, 10))).toEqual([0.25, 0]);
  });
});

describe('active-request-scorer: (max − c) / max of the EPP in-flight count', () => {
  const scorer = new ActiveRequestScorer('active');

  it('maps no in-flight requests to 1 and the busiest endpoint to 0', () => {
    const pods = [0, 2, 4].map((active, i) => pod(`p${i}`, {}, active));
    expect(scorer.score(cycle, pods)).toEqual([1, 0.5, 0]);
  });

  it('scores 1 everywhere when nothing is in flight', () => {
    expect(scorer.score(cycle, [pod('a', {}, 0), pod('b', {}, 0)])).toEqual([1, 1]);
  });

  it('is relative to the busiest, not to the least busy', () => {
    expect(scorer.score(cycle, [pod('a', {}, 3), pod('b', {}, 4)])).toEqual([0.25, 0]);
  });

  it('llm-d v0.8.0 idleThreshold and maxBusyScore (scorer/activerequest/active_request.go): idle pods 1, busy ones scaled into [0, maxBusyScore]', () => {
    const tuned = new ActiveRequestScorer('active', resolvePluginParameters('active-request-scorer', { requestTimeout: '2m', idleThreshold: 1, maxBusyScore: 0.5 }));
    // 0 and 1 in flight are idle; 2 of max 4 scores (4 − 2) / 4 × 0.5; the busiest 0.
    expect(tuned.score(cycle, [0, 1, 2, 4].map((active, i) => pod(`p${i}`, {}, active)))).toEqual([1, 1, 0.25, 0]);
  });

  it('falls back where llm-d-router v0.10.0 NewActiveRequest falls back (scorer/activerequest/active_request.go): idleThreshold < 0 is 0, maxBusyScore outside [0, 1] is 1 with a log line, any requestTimeout string is ignored', () => {
    expect(resolvePluginParameters('active-request-scorer', { idleThreshold: -3, requestTimeout: 'two minutes' })).toMatchObject({ idleThreshold: 0, requestTimeout: 'two minutes' });
    const logged: string[] = [];
    const logger = { ...SILENT_PLUGIN_LOGGER, info: (message: string, fields?: Record<string, unknown>) => { logged.push(`${message} ${JSON.stringify(fields)}`); } };
    const handle = { now: Date.now, random: Math.random, metrics: NOOP_SCHEDULING_METRICS, logger };
    const out = createPlugin(activeRequestScorer, 'active', { maxBusyScore: 1.5 }, handle) as ActiveRequestScorer;
    expect(out.score(cycle, [0, 2, 4].map((active, i) => pod(`p${i}`, {}, active)))).toEqual([1, 0.5, 0]);
    expect(logged).toEqual(['Ignoring out-of-range maxBusyScore; using default 1.0 {"provided":1.5}']);
    // Go's decoder refuses what its plain string and int fields cannot hold.
    expect(() => resolvePluginParameters('active-request-scorer', { requestTimeout: 120 })).toThrow('requestTimeout: must be a string, got 120');
    expect(() => resolvePluginParameters('active-request-scorer', { idleThreshold: 0.5 })).toThrow(/idleThreshold: must be an integer/);
  });

  it('inFlightLoadProducerName (llm-d-router v0.10.0) must name an inflight-load-producer of the config', () => {
    const config = (name: string): string => [
      'apiVersion: llm-d.ai/v1alpha1',
      'kind: EndpointPickerConfig',
      'plugins:',
      '- type: inflight-load-producer',
      '  name: load',
      '- type: queue-scorer',
      '- type: active-request-scorer',
      `  parameters: {inFlightLoadProducerName: ${name}}`,
      'schedulingProfiles:',
      '- name: default',
      '  plugins:',
      '  - pluginRef: active-request-scorer',
      '  - pluginRef: queue-scorer',
      '',
    ].join('\n');
    expect(() => buildScheduler(parseEndpointPickerConfig(config('load')))).not.toThrow();
    expect(() => buildScheduler(parseEndpointPickerConfig(config('nope')))).toThrow('active-request-scorer.parameters.inFlightLoadProducerName: no plugin named "nope"');
    expect(() => buildScheduler(parseEndpointPickerConfig(config('queue-scorer')))).toThrow('"queue-scorer" is a queue-scorer; name an inflight-load-producer');
  });
});
