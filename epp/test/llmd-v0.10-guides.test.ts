/**
 * llm-d's deployment guides, as llm-d-router v0.10.0's own integration test loads them
 * (`test/integration/epp/wellknown_configs_test.go`): each config verbatim (`llmd-guides.ts`) loads and starts in
 * kvroute's EPP with the plugins upstream's test expects, by name. Upstream's data producers that kvroute folds into its
 * scorers (`approx-prefix-cache-producer`, a `token-producer` the guide does not list) are the exceptions, named below.
 */
import { parseEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';
import { configErrorOf } from './config-error';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';
import { LLMD_TIERED_PREFIX_CACHE_CPU_EXPECTED_PLUGINS } from './upstream-configs';

/** Upstream's expectedPlugins per case (name, type), from wellknown_configs_test.go @ v0.10.0. */
const UPSTREAM_EXPECTED: Record<string, [string, string][]> = {
  'optimized-baseline': [['queue-scorer', 'queue-scorer'], ['kv-cache-utilization-scorer', 'kv-cache-utilization-scorer'], ['no-hit-lru-scorer', 'no-hit-lru-scorer'], ['prefix-cache-scorer', 'prefix-cache-scorer'], ['approx-prefix-cache-producer', 'approx-prefix-cache-producer'], ['token-producer', 'token-producer']],
  'pd-disaggregation': [['disagg-headers-handler', 'disagg-headers-handler'], ['always-disagg-pd-decider', 'always-disagg-pd-decider'], ['disagg-profile-handler', 'disagg-profile-handler'], ['prefill-filter', 'by-label'], ['decode-filter', 'by-label'], ['prefix-cache-scorer', 'prefix-cache-scorer'], ['approx-prefix-cache-producer', 'approx-prefix-cache-producer'], ['token-producer', 'token-producer'], ['queue-scorer', 'queue-scorer'], ['kv-cache-utilization-scorer', 'kv-cache-utilization-scorer'], ['active-request-scorer', 'active-request-scorer'], ['max-score-picker', 'max-score-picker']],
  'wide-ep-lws': [['disagg-headers-handler', 'disagg-headers-handler'], ['always-disagg-pd-decider', 'always-disagg-pd-decider'], ['disagg-profile-handler', 'disagg-profile-handler'], ['prefill-filter', 'by-label'], ['decode-filter', 'by-label'], ['prefix-cache-scorer', 'prefix-cache-scorer'], ['approx-prefix-cache-producer', 'approx-prefix-cache-producer'], ['token-producer', 'token-producer'], ['queue-scorer', 'queue-scorer'], ['kv-cache-utilization-scorer', 'kv-cache-utilization-scorer'], ['active-request-scorer', 'active-request-scorer'], ['max-score-picker', 'max-score-picker']],
  'wide-ep-lws-experimental-dp-aware': [['token-producer', 'token-producer'], ['prefill-header-handler', 'disagg-headers-handler'], ['prefill-filter', 'by-label'], ['decode-filter', 'by-label'], ['prefix-cache-scorer', 'prefix-cache-scorer'], ['approx-prefix-cache-producer', 'approx-prefix-cache-producer'], ['active-request-scorer', 'active-request-scorer'], ['queue-scorer', 'queue-scorer'], ['pd-profile-handler', 'pd-profile-handler']],
  'flow-control': [['queue-scorer', 'queue-scorer'], ['kv-cache-utilization-scorer', 'kv-cache-utilization-scorer'], ['prefix-cache-scorer', 'prefix-cache-scorer'], ['approx-prefix-cache-producer', 'approx-prefix-cache-producer'], ['token-producer', 'token-producer'], ['round-robin-fairness-policy', 'round-robin-fairness-policy'], ['fcfs-ordering-policy', 'fcfs-ordering-policy'], ['concurrency-detector', 'concurrency-detector']],
  'payload-agnostic': [['passthrough-parser', 'passthrough-parser'], ['active-request-scorer', 'active-request-scorer'], ['session-affinity-scorer', 'session-affinity-scorer']],
  'tiered-prefix-cache-cpu': LLMD_TIERED_PREFIX_CACHE_CPU_EXPECTED_PLUGINS.map(([name, type]) => [name, type]),
};

/**
 * Upstream's auto-created producers, which kvroute's prefix scorer does the work of (`config/producer-form.ts`), and
 * the type names kvroute keeps where upstream's test reports the alias's target (`prefill-filter` and `decode-filter`
 * are upstream aliases of `by-label`, `prefill-header-handler` of `disagg-headers-handler`; kvroute keeps the written
 * type, which builds the same plugin).
 */
const FOLDED = new Set(['approx-prefix-cache-producer', 'token-producer']);
const SAME_PLUGIN: Record<string, string> = { 'prefill-filter': 'by-label', 'decode-filter': 'by-label', 'prefill-header-handler': 'disagg-headers-handler' };

describe('llm-d v0.10.0 well-known guide configs (wellknown_configs_test.go)', () => {
  test.each(Object.keys(UPSTREAM_EXPECTED))('%s loads verbatim and starts, with every plugin upstream expects', (guide) => {
    const config = parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS[guide as keyof typeof LLMD_GUIDE_CONFIGS]);
    const scheduler = buildScheduler(config);
    const written = new Set(LLMD_GUIDE_CONFIGS[guide as keyof typeof LLMD_GUIDE_CONFIGS].match(/type: ([a-z-]+)/g)!.map((t) => t.slice(6)));
    for (const [name, type] of UPSTREAM_EXPECTED[guide]!) {
      // Producers, listed or auto-created, become their scorers' parameters; an auto-created token-producer is not there.
      if (type === 'approx-prefix-cache-producer' || (FOLDED.has(name) && !written.has(name))) continue;
      const plugin = config.plugins.find((p) => p.name === name);
      expect(plugin).toBeDefined();
      expect(SAME_PLUGIN[plugin!.type] ?? plugin!.type).toBe(type);
      expect(scheduler.plugin(name)).toBeDefined();
    }
  });

  test('a scorer naming a producer kvroute lacks (deploy/config/epp-burst-prefix-cache-config.yaml) is refused naming that plugin\'s type', () => {
    expect(configErrorOf(() => parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: burst-prefix-cache-producer\n`
      + '- type: prefix-cache-scorer\n  parameters:\n    prefixMatchInfoProducerName: burst-prefix-cache-producer\n')))
      .toMatch(/^plugins\[1\]\.parameters\.prefixMatchInfoProducerName: "burst-prefix-cache-producer" is a burst-prefix-cache-producer \(plugins\[0\]\), not a producer/);
  });

  test('the deprecated data-parallel-profile-handler (deploy/config/dp-epp-config.yaml) is refused with upstream\'s own advice', () => {
    expect(configErrorOf(() => parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: data-parallel-profile-handler\n')))
      .toMatch(/^plugins\[0\]\.type: llm-d-router v0\.10\.0's plugin type "data-parallel-profile-handler" is not implemented in kvroute \(epp\/README\.md, "Not supported"\); deprecated in llm-d-router v0\.10\.0 \("use simple-profile-handler with Istio >= 1\.28\.1"/);
  });

  test('predicted-latency-slo loads verbatim and builds on kvroute\'s online latency model (no sidecar): every plugin it lists, by name', () => {
    // The guide lists its prefix-cache-scorer in no profile: its predicted-latency-producer reads that scorer and records
    // the profile's picks into it, as upstream's producer consuming the prefix match makes its data layer create an
    // approximate producer that learns every pick; so the two prefix-cache-affinity-filters' requirement is met.
    const text = LLMD_GUIDE_CONFIGS['predicted-latency-slo'];
    const config = parseEndpointPickerConfig(text);
    const scheduler = buildScheduler(config);
    for (const type of new Set(text.match(/type: ([a-z-]+)/g)!.map((t) => t.slice(6)))) {
      if (type === 'EndpointPickerConfig' || type === 'prefix-cache-affinity-filter') continue;
      expect(config.plugins.find((p) => p.type === type)).toBeDefined();
    }
    for (const name of ['predicted-latency-producer', 'strict-affinity-filter', 'loose-affinity-filter', 'slo-headroom-tier-filter', 'latency-slo-admitter', 'latency-scorer', 'weighted-random-picker']) {
      expect(scheduler.plugin(name)).toBeDefined();
    }
    expect(scheduler.plugin('predicted-latency-producer')!.type).toBe('predicted-latency-producer');
  });
});
