import { seededRandom } from '@kvroute/testkit';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BoundCounter } from '../src/bound-counter';
import { BoundHistogram } from '../src/bound-histogram';
import { createEppMetrics, EPP_METRICS } from '../src/metrics';

const BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01];

describe('BoundHistogram (the plugin-duration histograms)', () => {
  it('renders exactly what prom-client\'s Histogram renders for the same observations', async () => {
    const random = seededRandom(17);
    const theirs = new Registry();
    const ours = new Registry();
    const reference = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['plugin_type', 'plugin_name'], buckets: BUCKETS, registers: [theirs] });
    const bound = new BoundHistogram('x_seconds', 'h', ['plugin_type', 'plugin_name'], BUCKETS, ours);
    const labelSets = ['Filter', 'Scorer', 'Picker'].flatMap((t) => ['a', 'b-c', 'q"uote'].map((n) => ({ plugin_type: t, plugin_name: n })));
    for (let i = 0; i < 5000; i++) {
      const labels = labelSets[Math.floor(random() * labelSets.length)]!;
      // Values on the bounds too: a value equal to a bound belongs to that bucket in both.
      const value = random() < 0.2 ? BUCKETS[Math.floor(random() * BUCKETS.length)]! : random() * random() * 0.02;
      reference.observe(labels, value);
      if (i % 2 === 0) bound.observe(labels, value);
      else bound.child(labels).observe(value);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('names the label it rejects', () => {
    const bound = new BoundHistogram('y_seconds', 'h', ['plugin_type'], BUCKETS, new Registry());
    expect(() => bound.child({ plugin_type: 'Filter', other: 'x' } as unknown as Record<'plugin_type', string>)).toThrow('y_seconds: unknown label other (labels: plugin_type)');
    expect(() => bound.observe({ plugin_type: 'Filter' }, Number.NaN)).toThrow('histogram value must be a finite number');
  });

  it('serves the EPP\'s scheduler plugin durations on its registry page', async () => {
    const metrics = createEppMetrics();
    metrics.scheduling.observePluginDuration('Scorer', 'prefix-cache-scorer', 'prefix-cache-scorer', 0.0003);
    metrics.scheduling.observePluginDuration('Scorer', 'prefix-cache-scorer', 'prefix-cache-scorer', 0.003);
    metrics.scheduling.observePluginDuration('PreRequest', 'session-affinity-filter', 'session-affinity-filter', 0.0001);
    const text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE inference_extension_plugin_duration_seconds histogram');
    expect(text).toMatch(/^inference_extension_plugin_duration_seconds_count\{extension_point="Scorer",plugin_type="prefix-cache-scorer",plugin_name="prefix-cache-scorer"\} 2$/m);
    expect(text).toMatch(/^inference_extension_plugin_duration_seconds_count\{extension_point="PreRequest",plugin_type="session-affinity-filter",plugin_name="session-affinity-filter"\} 1$/m);
  });

  it('renders the per-request histograms (sizes, durations, scheduling, prefix match) as prom-client did, before and after observations', async () => {
    const keys = ['requestSizes', 'requestDuration', 'schedulerE2eDuration', 'prefixIndexerHitRatio', 'prefixIndexerHitBytes'] as const;
    const theirs = new Registry();
    const reference = Object.fromEntries(keys.map((k) => {
      const d = EPP_METRICS[k];
      return [k, new Histogram({ name: d.name, help: d.help, labelNames: [...d.labels], buckets: [...d.buckets], registers: [theirs] })];
    })) as Record<(typeof keys)[number], Histogram<string>>;
    const metrics = createEppMetrics();
    const page = async (r: Registry) => Promise.all(keys.map((k) => r.getSingleMetricAsString(EPP_METRICS[k].name)));
    // Unlabelled histograms show their zero series before the first request, labelled ones nothing.
    expect(await page(metrics.registry)).toEqual(await page(theirs));
    const random = seededRandom(5);
    for (let i = 0; i < 2000; i++) {
      const model = random() < 0.5 ? 'qwen' : 'llama "3"';
      const labels = { model_name: model, target_model_name: model };
      const bytes = Math.floor(random() * 200_000);
      const seconds = random() * random() * 3;
      metrics.collectors.requestSizes.observe(labels, bytes);
      reference.requestSizes.observe(labels, bytes);
      metrics.collectors.requestDuration.observe(labels, seconds);
      reference.requestDuration.observe(labels, seconds);
      metrics.scheduling.observeSchedulingDuration(seconds / 1000);
      reference.schedulerE2eDuration.observe(seconds / 1000);
      const total = Math.floor(random() * 50_000);
      const matched = Math.floor(random() * total);
      metrics.scheduling.observePrefixMatch(matched, total);
      reference.prefixIndexerHitBytes.observe(matched);
      if (total > 0) reference.prefixIndexerHitRatio.observe(matched / total);
    }
    expect(await page(metrics.registry)).toEqual(await page(theirs));
  });
});

describe('BoundCounter (the per-request counters and gauge)', () => {
  it('renders what prom-client\'s Counter and Gauge render for the same updates, and the EPP registers its three', async () => {
    const random = seededRandom(23);
    const theirs = new Registry();
    const ours = new Registry();
    const refCounter = new Counter({ name: 'c_total', help: 'h', labelNames: ['model_name', 'target_model_name'], registers: [theirs] });
    const refGauge = new Gauge({ name: 'g', help: 'h', labelNames: ['model_name'], registers: [theirs] });
    const counter = new BoundCounter('c_total', 'h', ['model_name', 'target_model_name'], 'counter', ours);
    const gauge = new BoundCounter('g', 'h', ['model_name'], 'gauge', ours);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    const models = ['qwen', 'llama "3"', 'a\\b', 'x\ny'];
    for (let i = 0; i < 3000; i++) {
      const m = models[Math.floor(random() * models.length)]!;
      counter.inc({ model_name: m, target_model_name: m });
      refCounter.inc({ model_name: m, target_model_name: m });
      if (random() < 0.6) {
        gauge.inc({ model_name: m });
        refGauge.inc({ model_name: m });
      } else {
        gauge.dec({ model_name: m });
        refGauge.dec({ model_name: m });
      }
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(() => counter.inc({ model_name: 'q', target_model_name: 'q' }, -1)).toThrow('c_total: a counter cannot decrease');
    expect(() => counter.dec({ model_name: 'q', target_model_name: 'q' })).toThrow('cannot decrease');
    expect(() => gauge.child({ model_name: 'q', other: 'x' } as unknown as Record<'model_name', string>)).toThrow('g: unknown label other (labels: model_name)');

    const metrics = createEppMetrics();
    metrics.collectors.requestTotal.inc({ model_name: 'm', target_model_name: 'm', priority: '0' });
    metrics.collectors.runningRequests.inc({ model_name: 'm' });
    metrics.scheduling.countPick('10.0.0.1:8000');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^# TYPE inference_objective_request_total counter$/m);
    expect(text).toMatch(/^inference_objective_request_total\{model_name="m",target_model_name="m",priority="0"\} 1$/m);
    expect(text).toMatch(/^# TYPE inference_objective_running_requests gauge$/m);
    expect(text).toMatch(/^inference_objective_running_requests\{model_name="m"\} 1$/m);
    expect(text).toMatch(/^kvroute_epp_picks_total\{destination_endpoint="10.0.0.1:8000"\} 1$/m);
  });
});
