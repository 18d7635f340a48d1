/**
 * llm-d-router v0.10.0's `concurrency-detector` parameters
 * (`pkg/epp/framework/plugins/flowcontrol/saturationdetector/concurrency/config.go` apiConfig @ v0.10.0):
 * `maxConcurrency`, `headroom`, `concurrencyMode` (`requests`, `tokens`, `hybrid`), `maxTokenConcurrency` and
 * `inFlightLoadProducerName`, the `inflight-load-producer` whose InFlightLoad it reads (`detector.go` newDetector:
 * `InFlightLoadDataKey.WithNonEmptyProducerName`, Consumes). An llm-d config that names its producer must load, as
 * the same parameter does on `active-request-scorer` and `utilization-filter`.
 */
import { parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { resolvePluginParameters } from '../src/config/parameters';
import { buildScheduler } from '../src/scheduling/scheduler';

const config = (parameters: string): string => `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: inflight-load-producer
  name: load
- type: queue-scorer
- type: concurrency-detector
  parameters: ${parameters}
flowControl:
  saturationDetector:
    pluginRef: concurrency-detector
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`;

describe('concurrency-detector: llm-d-router v0.10.0 config.go apiConfig', () => {
  test('inFlightLoadProducerName names the inflight-load-producer it reads: the config loads, renders the name, and adds no default producer', () => {
    const parsed = parseEndpointPickerConfig(config('{maxConcurrency: 8, inFlightLoadProducerName: load}'));
    expect(parsed.plugins.find((p) => p.type === 'concurrency-detector')?.parameters).toEqual({ concurrencyMode: 'requests', maxConcurrency: 8, headroom: 0, inFlightLoadProducerName: 'load' });
    expect(parsed.plugins.filter((p) => p.type === 'inflight-load-producer').map((p) => p.name)).toEqual(['load']);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(parsed))).toEqual(parsed);
    expect(() => buildScheduler(parsed)).not.toThrow();
    // Unset or empty: upstream's default producer key; not rendered, so configs without it render unchanged.
    expect(resolvePluginParameters('concurrency-detector', { inFlightLoadProducerName: '' })).toEqual({ concurrencyMode: 'requests', maxConcurrency: 100, headroom: 0 });
  });

  test('a named producer must be an inflight-load-producer of the config, as on active-request-scorer', () => {
    expect(() => buildScheduler(parseEndpointPickerConfig(config('{inFlightLoadProducerName: nope}'))))
      .toThrow('concurrency-detector.parameters.inFlightLoadProducerName: no plugin named "nope"');
    expect(() => buildScheduler(parseEndpointPickerConfig(config('{inFlightLoadProducerName: queue-scorer}'))))
      .toThrow('"queue-scorer" is a queue-scorer; name an inflight-load-producer');
    // Go's decoder refuses a non-string into the string field.
    expect(() => resolvePluginParameters('concurrency-detector', { inFlightLoadProducerName: 3 })).toThrow('inFlightLoadProducerName: must be a plugin name, got 3');
  });

  test('hybrid mode (llm-d-router v0.10.0: the more constraining of the request and token ratios) is refused by name, as tokens mode is: both need upstream\'s token estimator', () => {
    expect(() => resolvePluginParameters('concurrency-detector', { concurrencyMode: 'hybrid' }))
      .toThrow('concurrencyMode: llm-d-router\'s "hybrid" mode is not supported');
    expect(() => resolvePluginParameters('concurrency-detector', { concurrencyMode: 'other' })).toThrow(/concurrencyMode: must be one of/);
  });
});
