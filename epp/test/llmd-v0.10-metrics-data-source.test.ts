/**
 * llm-d-router v0.10.0's `metrics-data-source` parameters (`pkg/epp/framework/plugins/datalayer/source/metrics/
 * datasource.go` MetricsDataSourceFactory, README.md): GIE v1.5.0's `scheme`, `path`, `insecureSkipVerify`, plus
 * `port` (scrape podIP:port on every endpoint, `http.WithPortOverride`), `interval` (the scrape period, rounded to base
 * ticks by `pkg/epp/datalayer/runtime.go` Configure and `interval_dispatcher.go` periodTicks) and the TLS files
 * `caCertPath`, `clientCertPath`, `clientKeyPath`. llm-d-router decodes them strictly (StrictDecoder), so its own
 * README example, which sets `interval`, must load.
 */
import { FakeVllmServer, freePort, INTEGRATION_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { resolvePluginParameters } from '../src/config/parameters';
import { scrapeTarget, sourceIntervalMs, startEpp, type Logger, type RunningEpp } from '../src/runner';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The README's "Example Configuration" @ v0.10.0, verbatim, in a config. */
const README_EXAMPLE = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: metrics-data-source
  parameters:
    scheme: "http"
    path: "/metrics"
    insecureSkipVerify: true
    interval: "1s"
- type: core-metrics-extractor
- type: queue-scorer
dataLayer:
  sources:
  - pluginRef: metrics-data-source
    extractors:
    - pluginRef: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`;

const FLAGS = { modelServerMetricsPath: '/metrics', modelServerMetricsScheme: 'http', modelServerMetricsInsecureSkipVerify: true, refreshMetricsIntervalMs: 50 } as const;

describe('metrics-data-source: llm-d-router v0.10.0 datasource.go', () => {
  test('the README example loads, round-trips, and its interval is the scrape period', () => {
    const config = parseEndpointPickerConfig(README_EXAMPLE);
    expect(config.plugins.find((p) => p.type === 'metrics-data-source')?.parameters).toEqual({ scheme: 'http', path: '/metrics', insecureSkipVerify: true, interval: '1s' });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    expect(scrapeTarget(config, FLAGS)).toEqual({ path: '/metrics', scheme: 'http', insecureSkipVerify: true, intervalMs: 1000 });
    // Without the parameter the refresh interval stays the period, and nothing new is rendered.
    const plain = parseEndpointPickerConfig(README_EXAMPLE.replace('    interval: "1s"\n', ''));
    expect(scrapeTarget(plain, FLAGS)).toEqual({ path: '/metrics', scheme: 'http', insecureSkipVerify: true });
  });

  test.each([
    // [interval, --refresh-metrics-interval ms, period ms]: round(interval / tick) ticks, at least one.
    ['1s', 50, 1000],
    ['120ms', 50, 100], // 2.4 ticks → 2
    ['130ms', 50, 150], // 2.6 ticks → 3
    ['1s', 300, 900], // 3.33 ticks of the refresh interval
    ['100ms', 300, 100], // shorter than the refresh interval: the tick is lowered to it
    ['20ms', 100, 50], // ... but not below defaultRefreshInterval, 50ms
    ['+2s', 50, 2000], // time.ParseDuration takes a sign
  ])('interval %s with a %d ms refresh interval scrapes every %d ms (runtime.go Configure, periodTicks)', (interval, refresh, period) => {
    expect(sourceIntervalMs(interval, refresh)).toBe(period);
  });

  test('interval 0 is every base tick; a negative or unparseable one is refused with upstream\'s words', () => {
    expect(sourceIntervalMs('0s', 50)).toBeUndefined();
    expect(() => resolvePluginParameters('metrics-data-source', { interval: '-1s' })).toThrow('interval: interval must be non-negative, got "-1s"');
    expect(() => resolvePluginParameters('metrics-data-source', { interval: '1' })).toThrow('interval: invalid interval "1"');
  });

  test('port: 1-65535 with upstream\'s message; rendered only when given', () => {
    expect(resolvePluginParameters('metrics-data-source', { port: 9400 })).toEqual({ scheme: 'http', path: '/metrics', insecureSkipVerify: true, port: 9400 });
    expect(() => resolvePluginParameters('metrics-data-source', { port: 0 })).toThrow('port: invalid port 0: must be between 1 and 65535');
    expect(() => resolvePluginParameters('metrics-data-source', { port: 70000 })).toThrow('port: invalid port 70000: must be between 1 and 65535');
  });

  test('TLS files: ignored where upstream ignores them (http; a CA with insecureSkipVerify), refused by name where upstream would use them', () => {
    expect(() => resolvePluginParameters('metrics-data-source', { caCertPath: '/ca.pem', clientCertPath: '/c.pem', clientKeyPath: '/k.pem' })).not.toThrow();
    expect(() => resolvePluginParameters('metrics-data-source', { scheme: 'https', caCertPath: '/ca.pem' })).not.toThrow();
    expect(() => resolvePluginParameters('metrics-data-source', { scheme: 'https', insecureSkipVerify: false, caCertPath: '/ca.pem' })).toThrow('caCertPath: is not supported');
    expect(() => resolvePluginParameters('metrics-data-source', { scheme: 'https', clientCertPath: '/c.pem', clientKeyPath: '/k.pem' })).toThrow('clientCertPath: is not supported');
  });

  describe('port over a real scrape', () => {
    let epp: RunningEpp | undefined;
    let pod: FakeVllmServer | undefined;
    afterEach(async () => {
      await epp?.stop();
      await pod?.close();
    });

    test('the EPP scrapes the port the source names, not the endpoint\'s', async () => {
      pod = await FakeVllmServer.start();
      // The endpoint's own port has nothing listening: only the override reaches the metrics.
      const endpoint = `127.0.0.1:${await freePort()}`;
      const config = README_EXAMPLE.replace('    interval: "1s"\n', `    port: ${pod.port}\n`);
      epp = await startEpp(parseArgs(['--endpoints', endpoint, '--config-text', config, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1'], {})!, quiet);
      await waitFor(() => pod!.requests > 0);
    }, INTEGRATION_TEST_TIMEOUT_MS);
  });
});
