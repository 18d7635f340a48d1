/**
 * `probabilistic-admitter` against llm-d-router v0.10.0's own expectations
 * (`pkg/epp/framework/plugins/requestcontrol/admitter/probabilisticadmitter/plugin_test.go`); each test names the one it
 * mirrors. How request control answers a denial (500, upstream's director) is in `llmd-v0.10-usage-limits.test.ts`.
 */
import { resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { ProbabilisticAdmitter, type ProbabilisticAdmitterParameters } from '../src/scheduling/plugins/probabilistic-admitter';
import type { LLMRequest } from '../src/scheduling/types';
import { configErrorOf } from './config-error';

function endpoint(name: string, waitingQueueSize: number, kvCacheUsagePercent: number): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, waitingQueueSize, kvCacheUsagePercent },
    activeRequests: 0,
  };
}

const request: LLMRequest = { requestId: 'r', model: 'm', prompt: '', headers: {} };
const defaults = (): Required<ProbabilisticAdmitterParameters> => resolvePluginParameters('probabilistic-admitter', undefined);
const admitter = (random: () => number, params = defaults()) => new ProbabilisticAdmitter('pa', params, random);

describe('probabilistic-admitter parameters (plugin.go Factory)', () => {
  test('TestFactory_Defaults: queueDepthThreshold 5, kvCacheUtilThreshold 0.8, power 5, k 300', () => {
    expect(defaults()).toEqual({ queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, power: 5, k: 300 });
  });

  test('TestFactory: every parameter set', () => {
    expect(resolvePluginParameters('probabilistic-admitter', { queueDepthThreshold: 10, kvCacheUtilThreshold: 0.9, power: 3, k: 100 }))
      .toEqual({ queueDepthThreshold: 10, kvCacheUtilThreshold: 0.9, power: 3, k: 100 });
  });

  test.each([
    ['TestFactory_ZeroQueueDepthThreshold', { queueDepthThreshold: 0 }, 'parameters.queueDepthThreshold: must be > 0, got 0'],
    ['TestFactory_ZeroKVCacheUtilThreshold', { kvCacheUtilThreshold: 0 }, 'parameters.kvCacheUtilThreshold: must be > 0, got 0'],
    ['TestFactory_NegativePower', { power: -1 }, 'parameters.power: must be > 0, got -1'],
    ['TestFactory_ZeroPower', { power: 0 }, 'parameters.power: must be > 0, got 0'],
    ['TestFactory_NegativeK', { k: -1 }, 'parameters.k: must be > 0, got -1'],
    ['TestFactory_ZeroK', { k: 0 }, 'parameters.k: must be > 0, got 0'],
    ['a fraction for the integer queueDepthThreshold (Go\'s int fails to decode it)', { queueDepthThreshold: 2.5 }, 'parameters.queueDepthThreshold: must be an integer, got 2.5'],
    ['a string for k', { k: 'lots' }, 'parameters.k: must be a number, got "lots"'],
    ['an unknown field (upstream\'s strict decoder)', { threshold: 1 }, 'parameters.threshold: unknown field; allowed: queueDepthThreshold, kvCacheUtilThreshold, power, k'],
  ])('%s is refused, naming the field', (_name, raw, message) => {
    expect(configErrorOf(() => resolvePluginParameters('probabilistic-admitter', raw))).toBe(message);
  });
});

describe('probabilistic-admitter decisions (plugin.go Admit)', () => {
  test('TestProtectedTiersAlwaysAdmitted: priority 0 and 100 pass even at a draw of 0 on a full pod', () => {
    const a = admitter(() => 0);
    for (const priority of [0, 100]) expect(a.admit(request, priority, [endpoint('pod-0', 100, 0)])).toBeUndefined();
  });

  test('TestDroppableRejectedAtHighSaturation: QD 100 over 5 is 20, prob 1', () => {
    expect(admitter(() => 0).admit(request, -1, [endpoint('pod-0', 100, 0)])).toBeDefined();
  });

  test('TestDroppableAdmittedAtZeroSaturation', () => {
    expect(admitter(() => 0).admit(request, -1, [endpoint('pod-0', 0, 0)])).toBeUndefined();
  });

  test('TestNilMetricsTreatedAsSaturated: a candidate without metrics counts 1.0', () => {
    const stale = { ...endpoint('stale', 0, 0), metrics: undefined as unknown as EndpointMetrics };
    expect(admitter(() => 0).admit(request, -1, [stale])).toBeDefined();
    expect(admitter(() => 0).computeSaturation([stale, endpoint('idle', 0, 0)])).toBe(0.5);
  });

  test('TestNoPods: no candidates admits', () => {
    expect(admitter(() => 0).admit(request, -1, [])).toBeUndefined();
  });

  test('TestMultiplePodsSaturationAveraging: max(10/5, 0) = 2 and 0 average 1.0, prob 1', () => {
    const a = admitter(() => 0);
    const pods = [endpoint('pod-a', 10, 0), endpoint('pod-b', 0, 0)];
    expect(a.computeSaturation(pods)).toBe(1);
    expect(a.admit(request, -1, pods)).toBeDefined();
  });

  test('TestQuinticProperty: sat 0.272/0.8 = 0.34, 0.34^5 · 300 ≈ 1.36, so even a draw of 0.999 is denied', () => {
    expect(Math.min(Math.pow(0.272 / 0.8, 5) * 300, 1)).toBeGreaterThanOrEqual(0.99);
    expect(admitter(() => 0.999).admit(request, -1, [endpoint('pod-0', 0, 0.272)])).toBeDefined();
  });

  test('TestErrorTypeIsStructured: the denial is a ResourceExhausted error\'s text, with upstream\'s %.3f and %.2f', () => {
    expect(admitter(() => 0).admit(request, -1, [endpoint('pod-0', 5, 0.8)]))
      .toBe('inference error: ResourceExhausted - probabilistic-admitter: rejected, saturation=1.000 prob=1.00');
  });

  test('TestProbabilisticShedding: sat 0.16/0.8 = 0.2, prob 0.2^5 · 300 ≈ 0.096: a draw of 0.9 admits, 0 denies', () => {
    const pods = [endpoint('pod-0', 0, 0.16)];
    expect(admitter(() => 0.9).admit(request, -1, pods)).toBeUndefined();
    expect(admitter(() => 0).admit(request, -1, pods)).toBe('inference error: ResourceExhausted - probabilistic-admitter: rejected, saturation=0.200 prob=0.10');
    // The draw is compared with the probability itself: just under it denies, at it admits.
    const prob = Math.pow(0.2, 5) * 300;
    expect(admitter(() => prob - 1e-9).admit(request, -1, pods)).toBeDefined();
    expect(admitter(() => prob + 1e-9).admit(request, -1, pods)).toBeUndefined();
  });

  test('the README\'s shedding curve with the defaults, read from the plugin\'s own denials: ~2.3% at 0.15, ~9.6% at 0.20, ~73% at 0.30, all from (1/300)^(1/5) ≈ 0.3196', () => {
    // The probability the plugin computes at a saturation `sat` (KV usage sat · 0.8), from its denial message.
    const shedAt = (sat: number) => Number(/prob=([\d.]+)$/.exec(admitter(() => 0).admit(request, -1, [endpoint('pod-0', 0, sat * 0.8)]) ?? 'prob=0')![1]);
    expect(shedAt(0.15)).toBe(0.02);
    expect(shedAt(0.2)).toBe(0.1);
    expect(shedAt(0.3)).toBe(0.73);
    // Every draw is denied at 0.32 (prob 1), not at 0.318 (prob ≈ 0.97).
    expect(admitter(() => 0.9999).admit(request, -1, [endpoint('pod-0', 0, 0.32 * 0.8)])).toBeDefined();
    expect(admitter(() => 0.99).admit(request, -1, [endpoint('pod-0', 0, 0.318 * 0.8)])).toBeUndefined();
  });
});
