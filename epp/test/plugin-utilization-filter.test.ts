/**
 * `utilization-filter`, mirroring llm-d-router v0.10.0 pkg/epp/framework/plugins/scheduling/filter/utilization/
 * (filter.go; filter_test.go TestUtilizationFilter_Filter and TestNewUtilizationFilter_InvalidParameters case by case;
 * README.md's configuration example), registered there by cmd/epp/runner/runner.go registerInTreePlugins.
 */
import { parseEndpointPickerConfig, renderEndpointPickerConfig, resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, SILENT_PLUGIN_LOGGER, type CycleContext, type PluginHandle } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { buildScheduler } from '../src/scheduling/scheduler';
import { UtilizationFilter, type UtilizationFilterParameters } from '../src/scheduling/plugins/utilization-filter';

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const handle: PluginHandle = { now: () => 1, random: Math.random, metrics: NOOP_SCHEDULING_METRICS, logger: SILENT_PLUGIN_LOGGER };
const cycle: CycleContext = { request: { requestId: 'r', model: 'm', prompt: '', headers: {} }, state: new CycleState() };

function pod(name: string, metrics: Partial<EndpointMetrics> = {}, activeRequests = 0): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: 1, ...metrics },
    activeRequests,
  };
}

const filter = (raw: UtilizationFilterParameters) =>
  new UtilizationFilter('f', resolvePluginParameters('utilization-filter', raw, 'f.parameters') as Required<UtilizationFilterParameters>, handle);
const kept = (raw: UtilizationFilterParameters, pods: EndpointSnapshot[]) => filter(raw).filter(cycle, pods).map((p) => p.endpoint.name);

describe('utilization-filter (llm-d-router v0.10.0 filter/utilization/filter.go)', () => {
  test('README.md example loads and runs', () => {
    const yaml = `${LLMD}plugins:
  - type: utilization-filter
    name: drop-overloaded-endpoints
    parameters:
      conditions:
        - metric: running-requests
          maxValue: 40
        - metric: waiting-queue
          maxValue: 0
        - metric: kv-cache-utilization
          maxValue: 0.8
      fallbackOnEmpty: true
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: drop-overloaded-endpoints
`;
    const config = parseEndpointPickerConfig(yaml);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    const scheduler = buildScheduler(config);
    const pods = [pod('queued', { waitingQueueSize: 1 }), pod('idle'), pod('full', { kvCacheUsagePercent: 0.9 })];
    for (let i = 0; i < 5; i++) expect(scheduler.schedule({ requestId: `r${i}`, model: 'm', prompt: 'p', headers: {}, attributes: new CycleState() }, pods).target.endpoint.name).toBe('idle');
  });

  // filter_test.go TestUtilizationFilter_Filter
  test('each metric keeps endpoints at or below maxValue', () => {
    expect(kept({ conditions: [{ metric: 'active-requests', maxValue: 2 }] }, [pod('a', {}, 1), pod('b', {}, 2), pod('c', {}, 3)])).toEqual(['a', 'b']);
    expect(kept({ conditions: [{ metric: 'running-requests', maxValue: 2 }] }, [pod('a', { runningQueueSize: 2 }), pod('b', { runningQueueSize: 3 })])).toEqual(['a']);
    expect(kept({ conditions: [{ metric: 'waiting-queue', maxValue: 0 }] }, [pod('a'), pod('b', { waitingQueueSize: 1 })])).toEqual(['a']);
    expect(kept({ conditions: [{ metric: 'kv-cache-utilization', maxValue: 0.5 }] }, [pod('a', { kvCacheUsagePercent: 0.5 }), pod('b', { kvCacheUsagePercent: 0.51 })])).toEqual(['a']);
  });

  test('multiple conditions drop endpoints exceeding any cap; EPP-tracked and model-server metrics mix', () => {
    const conditions: UtilizationFilterParameters['conditions'] = [{ metric: 'active-requests', maxValue: 5 }, { metric: 'waiting-queue', maxValue: 0 }];
    expect(kept({ conditions }, [pod('ok', {}, 5), pod('busy', {}, 6), pod('queued', { waitingQueueSize: 2 }, 0)])).toEqual(['ok']);
  });

  test('all filtered out: empty without fallback (a 429 here), the candidates unchanged with fallbackOnEmpty', () => {
    const pods = [pod('a', { waitingQueueSize: 1 }), pod('b', { waitingQueueSize: 2 })];
    expect(kept({ conditions: [{ metric: 'waiting-queue', maxValue: 0 }] }, pods)).toEqual([]);
    expect(filter({ conditions: [{ metric: 'waiting-queue', maxValue: 0 }] }).emptyResultReason).toBe('saturated');
    expect(kept({ conditions: [{ metric: 'waiting-queue', maxValue: 0 }], fallbackOnEmpty: true }, pods)).toEqual(['a', 'b']);
  });

  // filter_test.go TestNewUtilizationFilter_InvalidParameters, with upstream's messages (NewUtilizationFilter).
  test.each<[string, unknown, string]>([
    ['no conditions', {}, 'p.conditions: utilization filter requires at least one condition'],
    ['an empty list', { conditions: [] }, 'p.conditions: utilization filter requires at least one condition'],
    ['missing metric', { conditions: [{ maxValue: 1 }] }, 'p.conditions[0].metric: utilization filter condition metric must be one of "active-requests", "running-requests", "waiting-queue", "kv-cache-utilization", got ""'],
    ['unknown metric', { conditions: [{ metric: 'unknown', maxValue: 1 }] }, 'p.conditions[0].metric: utilization filter condition metric must be one of "active-requests", "running-requests", "waiting-queue", "kv-cache-utilization", got "unknown"'],
    ['missing maxValue', { conditions: [{ metric: 'active-requests' }] }, 'p.conditions[0].maxValue: utilization filter condition for "active-requests" requires maxValue'],
    ['negative maxValue', { conditions: [{ metric: 'active-requests', maxValue: -1 }] }, 'p.conditions[0].maxValue: utilization filter condition for "active-requests" requires a non-negative maxValue, got -1'],
    ['kv-cache maxValue above 1', { conditions: [{ metric: 'kv-cache-utilization', maxValue: 80 }] }, 'p.conditions[0].maxValue: utilization filter maxValue for "kv-cache-utilization" is a fraction and must be at most 1, got 80'],
    ['an unknown condition key (upstream decodes strictly)', { conditions: [{ metric: 'waiting-queue', maxValue: 1, max: 2 }] }, 'p.conditions[0].max'],
  ])('%s is refused', (_what, raw, message) => {
    expect(() => resolvePluginParameters('utilization-filter', raw, 'p')).toThrow(message);
  });

  test('inFlightLoadProducerName, read for active-requests, must name an inflight-load-producer', () => {
    const config = (name: string) => parseEndpointPickerConfig(`${LLMD}plugins:
- type: utilization-filter
  parameters: { conditions: [{ metric: active-requests, maxValue: 4 }], inFlightLoadProducerName: ${name} }
- type: inflight-load-producer
  name: load
- type: queue-scorer
`);
    expect(() => buildScheduler(config('load'))).not.toThrow();
    expect(() => buildScheduler(config('nope'))).toThrow('utilization-filter.parameters.inFlightLoadProducerName: no plugin named "nope"');
    expect(() => buildScheduler(config('queue-scorer'))).toThrow('"queue-scorer" is a queue-scorer; name an inflight-load-producer');
  });
});
