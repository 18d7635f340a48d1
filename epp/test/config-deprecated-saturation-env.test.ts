import { parseArgs } from '../src/cli';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig } from '../src/config';
import { applyDeprecatedSaturationEnv } from '../src/config/deprecated-saturation-env';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { SaturationFilter } from '../src/scheduling/plugins/saturation-filter';

// GIE v1.4.0 cmd/epp/runner/runner.go applyDeprecatedSaturationConfig (L566-589): each SD_* variable that is set
// overrides the detector's config, a value that does not parse or is out of range giving the default; v1.0.0's
// pkg/epp/saturationdetector/config.go LoadConfigFromEnv read the same variables with the same rules.
describe('GIE v1.0-v1.4 SD_* saturation-detector variables', () => {
  const detector = (config = defaultEndpointPickerConfig()) => config.plugins.find((p) => p.type === 'saturation-filter')!.parameters as Record<string, unknown>;

  test('a set variable overrides the saturation filter\'s parameter, and the scheduler runs with it', () => {
    const { config, notes } = applyDeprecatedSaturationEnv(defaultEndpointPickerConfig(), {
      SD_QUEUE_DEPTH_THRESHOLD: '100', SD_KV_CACHE_UTIL_THRESHOLD: '0.95', SD_METRICS_STALENESS_THRESHOLD: '2s',
    });
    expect(detector(config)).toMatchObject({ queueDepthThreshold: 100, kvCacheUtilThreshold: 0.95, metricsStalenessThreshold: '2s' });
    expect(notes).toHaveLength(3);
    expect(notes[0]).toMatch(/^SD_QUEUE_DEPTH_THRESHOLD=100 sets queueDepthThreshold/);
    const filter = buildScheduler(config).plugin('saturation-filter') as SaturationFilter;
    expect(filter).toBeDefined();
    expect((filter as unknown as { parameters: { queueDepthThreshold: number } }).parameters.queueDepthThreshold).toBe(100);
  });

  test('unset variables change nothing; the config file\'s own values stay where no variable is set', () => {
    const base = parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: utilization-detector
  parameters: {queueDepthThreshold: 9, kvCacheUtilThreshold: 0.7}
- type: max-score-picker
saturationDetector: {pluginRef: utilization-detector}
`);
    expect(applyDeprecatedSaturationEnv(base, {})).toEqual({ config: base, notes: [] });
    const { config } = applyDeprecatedSaturationEnv(base, { SD_KV_CACHE_UTIL_THRESHOLD: '0.9' });
    expect(config.plugins[0]!.parameters).toMatchObject({ queueDepthThreshold: 9, kvCacheUtilThreshold: 0.9 });
  });

  test.each([
    ['SD_QUEUE_DEPTH_THRESHOLD', 'abc', 'queueDepthThreshold', 5],
    ['SD_QUEUE_DEPTH_THRESHOLD', '0', 'queueDepthThreshold', 5],
    ['SD_QUEUE_DEPTH_THRESHOLD', '2.5', 'queueDepthThreshold', 5],
    ['SD_KV_CACHE_UTIL_THRESHOLD', '1', 'kvCacheUtilThreshold', 0.8],
    ['SD_KV_CACHE_UTIL_THRESHOLD', '0', 'kvCacheUtilThreshold', 0.8],
    ['SD_KV_CACHE_UTIL_THRESHOLD', 'high', 'kvCacheUtilThreshold', 0.8],
    ['SD_METRICS_STALENESS_THRESHOLD', '200', 'metricsStalenessThreshold', '200ms'],
    ['SD_METRICS_STALENESS_THRESHOLD', '0s', 'metricsStalenessThreshold', '200ms'],
  ] as const)('%s=%j is not valid to GIE: its default %s %j', (name, value, key, expected) => {
    const { config, notes } = applyDeprecatedSaturationEnv(defaultEndpointPickerConfig(), { [name]: value });
    expect(detector(config)[key]).toBe(expected);
    expect(notes[0]).toMatch(/is not valid/);
  });

  test('parseArgs takes them from the environment', () => {
    expect(parseArgs(['--endpoints', '127.0.0.1:1'], { SD_QUEUE_DEPTH_THRESHOLD: '100', PATH: '/bin' })!.deprecatedSaturationEnv).toEqual({ SD_QUEUE_DEPTH_THRESHOLD: '100' });
    expect(parseArgs(['--endpoints', '127.0.0.1:1'], {})!.deprecatedSaturationEnv).toEqual({});
  });
});
