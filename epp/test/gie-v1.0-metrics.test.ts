import { createEppMetrics, EPP_METRICS, GIE_V1_0_REQUEST_METRICS } from '../src/metrics';

/** The series lines of `family` in an exposition, without HELP/TYPE. */
const series = (text: string, family: string) => text.split('\n').filter((l) => l.startsWith(family) && !l.startsWith('#'));

describe('GIE v0.5.1-v1.0.x inference_model_* families (pkg/epp/metrics/metrics.go @ v1.0.0), mirrored from inference_objective_*', () => {
  it('count what the v1.5 families count: priority summed away, 429 as InferencePoolResourceExhausted, histograms renamed series by series', async () => {
    const { registry, collectors } = createEppMetrics();
    collectors.requestTotal.child({ model_name: 'm', target_model_name: 't', priority: '0' }).value += 2;
    collectors.requestTotal.child({ model_name: 'm', target_model_name: 't', priority: '5' }).value += 1;
    collectors.requestErrorTotal.inc({ model_name: 'm', target_model_name: 'm', error_code: 'ResourceExhausted' });
    collectors.requestErrorTotal.inc({ model_name: 'm', target_model_name: 'm', error_code: 'BadRequest' });
    collectors.requestSizes.child({ model_name: 'm', target_model_name: 't' }).observe(100);
    collectors.runningRequests.child({ model_name: 'm' }).value = 4;
    const text = await registry.metrics();

    expect(text).toContain('# TYPE inference_model_request_total counter');
    expect(series(text, 'inference_model_request_total')).toEqual(['inference_model_request_total{model_name="m",target_model_name="t"} 3']);
    expect(series(text, 'inference_model_request_error_total').sort()).toEqual([
      'inference_model_request_error_total{model_name="m",target_model_name="m",error_code="BadRequest"} 1',
      'inference_model_request_error_total{model_name="m",target_model_name="m",error_code="InferencePoolResourceExhausted"} 1',
    ]);
    // The v1.5 family keeps its own names and labels.
    expect(series(text, 'inference_objective_request_error_total')).toContain(
      'inference_objective_request_error_total{model_name="m",target_model_name="m",error_code="ResourceExhausted"} 1');
    expect(text).toContain('# TYPE inference_model_request_sizes histogram');
    const sizes = series(text, 'inference_model_request_sizes');
    const objectiveSizes = series(text, 'inference_objective_request_sizes');
    expect(sizes).toEqual(objectiveSizes.map((l) => l.replace('inference_objective_request_sizes', 'inference_model_request_sizes')));
    expect(sizes).toContain('inference_model_request_sizes_bucket{le="128",model_name="m",target_model_name="t"} 1');
    expect(sizes).toContain('inference_model_request_sizes_count{model_name="m",target_model_name="t"} 1');
    expect(series(text, 'inference_model_running_requests')).toEqual(['inference_model_running_requests{model_name="m"} 4']);
  });

  it('cover v1.0\'s nine request families, each with its mirror\'s type and labels (less priority)', async () => {
    expect(GIE_V1_0_REQUEST_METRICS.map((m) => m.name.replace('inference_model_', ''))).toEqual([
      'request_total', 'request_error_total', 'request_duration_seconds', 'request_sizes', 'response_sizes', 'input_tokens', 'output_tokens',
      'running_requests', 'normalized_time_per_output_token_seconds',
    ]);
    const { registry } = createEppMetrics();
    const json = await registry.getMetricsAsJSON();
    for (const legacy of GIE_V1_0_REQUEST_METRICS) {
      const family = json.find((m) => m.name === legacy.name);
      expect(family?.type).toBe(EPP_METRICS[legacy.source].type);
      expect(family?.name.replace('inference_model_', 'inference_objective_')).toBe(EPP_METRICS[legacy.source].name);
    }
  });
});
