import { Registry } from 'prom-client';
import { defaultEndpointPickerConfig, EPP_METRIC_NAMES as CONFIG_METRIC_NAMES } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { createEppMetrics, EPP_METRIC_NAMES, EPP_METRICS, eppMetricSeriesNames, GIE_V1_0_REQUEST_METRICS, LLMD_TWIN_METRICS } from '../src/metrics';
import { buildScheduler } from '../src/scheduling/scheduler';

const NOW = 1_700_000_000_000;

function pod(name: string, waitingQueueSize = 0): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: NOW, waitingQueueSize },
    activeRequests: 0,
  };
}

/** The value of one series in the text exposition, or undefined when absent. */
async function sample(registry: Registry, series: string): Promise<number | undefined> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('EPP metrics', () => {
  it('defines the GIE v1.5.0 metric names the manifests and dashboards rely on', () => {
    const names = Object.values(EPP_METRIC_NAMES);
    for (const name of [
      'inference_objective_request_total',
      'inference_objective_request_error_total',
      'inference_objective_request_duration_seconds',
      'inference_objective_running_requests',
      'inference_pool_ready_pods',
      'inference_pool_average_kv_cache_utilization',
      'inference_pool_average_queue_size',
      'inference_extension_scheduler_e2e_duration_seconds',
      'inference_extension_plugin_duration_seconds',
      'inference_extension_prefix_indexer_size',
      'inference_extension_prefix_indexer_hit_ratio',
      'inference_extension_info',
      'kvroute_epp_picks_total',
      'kvroute_epp_session_affinity_total',
    ]) {
      expect(names).toContain(name);
    }
    expect(EPP_METRICS.requestErrorTotal.labels).toEqual(['model_name', 'target_model_name', 'error_code']);
    expect(EPP_METRICS.pluginDuration.labels).toEqual(['extension_point', 'plugin_type', 'plugin_name']);
    expect(CONFIG_METRIC_NAMES).toBe(EPP_METRIC_NAMES);
  });

  it('registers every named metric, GIE v1.0\'s inference_model_* mirrors and llm-d\'s llm_d_epp_* twins, on its own registry', async () => {
    const first = createEppMetrics();
    const second = createEppMetrics({ registry: new Registry() });
    expect(first.registry).not.toBe(second.registry);
    const registered = (await first.registry.getMetricsAsJSON()).map((metric) => metric.name).sort();
    expect(registered).toEqual([...Object.values(EPP_METRIC_NAMES), ...GIE_V1_0_REQUEST_METRICS.map((m) => m.name), ...LLMD_TWIN_METRICS.map((m) => m.name)].sort());
  });

  it('lists exposition series names, histograms with their suffixes', () => {
    const series = eppMetricSeriesNames();
    expect(series).toContain('inference_objective_request_total');
    expect(series).toContain('inference_objective_request_duration_seconds_bucket');
    expect(series).toContain('inference_extension_scheduler_e2e_duration_seconds_count');
    expect(series).not.toContain('inference_objective_request_duration_seconds');
  });

  it('publishes build info', async () => {
    const { registry } = createEppMetrics({ commit: 'abc123', buildRef: 'v0.1.0' });
    expect(await sample(registry, 'inference_extension_info{commit="abc123",build_ref="v0.1.0"}')).toBe(1);
  });

  it('records what the default scheduler does', async () => {
    const { registry, scheduling } = createEppMetrics();
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => NOW, random: () => 0, metrics: scheduling });
    const prompt = 'x'.repeat(64 * 4);
    const headers = { 'x-session-id': 's1' };
    scheduler.schedule({ requestId: '1', model: 'm', prompt, headers }, [pod('a')]);
    scheduler.schedule({ requestId: '2', model: 'm', prompt, headers }, [pod('a')]);
    expect(() => scheduler.schedule({ requestId: '3', model: 'm', prompt, headers: {} }, [pod('a', 99)])).toThrow();

    expect(await sample(registry, 'kvroute_epp_picks_total{destination_endpoint="a:8000"}')).toBe(2);
    expect(await sample(registry, 'kvroute_epp_session_affinity_total{outcome="miss"}')).toBe(1);
    expect(await sample(registry, 'kvroute_epp_session_affinity_total{outcome="hit"}')).toBe(1);
    expect(await sample(registry, 'kvroute_epp_session_affinity_bindings')).toBe(1);
    expect(await sample(registry, 'kvroute_epp_scheduling_failures_total{reason="saturated"}')).toBe(1);
    expect(await sample(registry, 'kvroute_epp_saturation_exclusions_total{reason="queue"}')).toBe(1);
    expect(await sample(registry, 'inference_extension_prefix_indexer_size')).toBe(4);
    expect(await sample(registry, 'inference_extension_prefix_indexer_hit_ratio_count')).toBe(2);
    expect(await sample(registry, 'inference_extension_prefix_indexer_hit_ratio_sum')).toBe(1);
    expect(await sample(registry, 'inference_extension_scheduler_e2e_duration_seconds_count')).toBe(3);
    expect(
      await sample(registry, 'inference_extension_plugin_duration_seconds_count{extension_point="Scorer",plugin_type="prefix-cache-scorer",plugin_name="prefix-cache-scorer"}'),
    ).toBe(2);
    // The profile handler is timed under GIE v1.5.0's names for its two calls (pkg/epp/scheduling/scheduler.go): its
    // pick runs until it returns no profile (twice per cycle here), its results once.
    expect(
      await sample(registry, 'inference_extension_plugin_duration_seconds_count{extension_point="ProfilePicker",plugin_type="single-profile-handler",plugin_name="single-profile-handler"}'),
    ).toBe(6);
    expect(
      await sample(registry, 'inference_extension_plugin_duration_seconds_count{extension_point="ProcessProfilesResults",plugin_type="single-profile-handler",plugin_name="single-profile-handler"}'),
    ).toBe(3);
  });

  it('times request hooks into the same histogram as GIE v1.5.0, by extension point', async () => {
    const { registry, scheduling } = createEppMetrics();
    scheduling.observePluginDuration('ResponseReceived', 'session-affinity-scorer', 'sessions', 0.0001);
    expect(
      await sample(
        registry,
        'inference_extension_plugin_duration_seconds_count{extension_point="ResponseReceived",plugin_type="session-affinity-scorer",plugin_name="sessions"}',
      ),
    ).toBe(1);
  });
});
