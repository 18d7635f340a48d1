import { EPP_METRICS, GIE_V1_0_REQUEST_METRICS } from '../src/config/metric-names';
import { createEppMetrics } from '../src/metrics';

// GIE wraps every help in metricsutil.HelpMsgWithStability(msg, ALPHA): "[ALPHA] " + msg (pkg/epp/metrics/metrics.go
// and its testdata/*_metric files @ v1.5.0 df9f890; v1.0.0 the same for the inference_model_* family).
describe('HELP lines as GIE v1.5.0 writes them', () => {
  test('every inference_* family\'s help carries GIE\'s "[ALPHA] " stability prefix; kvroute\'s own carry none', async () => {
    const text = await createEppMetrics().registry.metrics();
    const helps = new Map([...text.matchAll(/^# HELP (\S+) (.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    const gie = Object.values(EPP_METRICS).filter((d) => d.name.startsWith('inference_'));
    expect(gie.length).toBeGreaterThan(25);
    for (const d of [...gie, ...GIE_V1_0_REQUEST_METRICS]) expect(`${d.name}: ${helps.get(d.name)}`).toMatch(/^\S+: \[ALPHA\] /);
    for (const d of Object.values(EPP_METRICS).filter((x) => x.name.startsWith('kvroute_'))) expect(helps.get(d.name)).not.toMatch(/^\[ALPHA\]/);
    // Verbatim from GIE v1.5.0's testdata and metrics.go.
    expect(helps.get('inference_objective_request_error_total')).toBe('[ALPHA] Counter of inference objective requests errors broken out for each model and target model.');
    expect(helps.get('inference_pool_per_pod_queue_size')).toBe('[ALPHA] The total number of requests pending in the model server queue for each underlying pod.');
    expect(helps.get('inference_extension_flow_control_dispatch_cycle_duration_seconds')).toBe('[ALPHA] Distribution of time taken for each internal dispatch cycle in the Flow Control layer.');
    expect(helps.get('inference_extension_prefix_indexer_size')).toBe('[ALPHA] Size of the prefix indexer.');
  });
});

// Prometheus Operator labels every ServiceMonitor target with these (the EPP's own pod, service, …), and Prometheus
// renames a scraped label of the same name to `exported_<name>` (honor_labels false, the ServiceMonitor's default).
describe('no EPP metric label is one a ServiceMonitor target already carries', () => {
  const TARGET_LABELS = ['pod', 'service', 'container', 'endpoint', 'job', 'instance', 'namespace'];
  // GIE v1.5.0's own label set (metrics.go RecordSchedulerAttempt), kept as GIE exports it: its namespace is the pool's,
  // which is the EPP's own.
  const GIE_AS_IS = new Set(['inference_extension_scheduler_attempts_total:namespace']);
  test.each(Object.values(EPP_METRICS).map((m) => [m.name, m.labels] as const))('%s', (name, labels) => {
    const clashes = (labels as readonly string[]).filter((l) => TARGET_LABELS.includes(l) && !GIE_AS_IS.has(`${name}:${l}`));
    expect(clashes).toEqual([]);
  });
});
