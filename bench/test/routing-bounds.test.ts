/**
 * The §7 formulas against the numbers the reference notes computed (shared/reference/peers-vllm-kv-workloads.md §7).
 */
import {
  cacheablePrefix, expectedReplicasVisited, finiteCapacityHitRates, idealHitRate, roundRobinHitRate, turnHitRate,
} from '../src/bounds';

const B = 16;

describe('h* and h_RR (§7.1, §7.2)', () => {
  test.each([
    // [name, S, Q, P, R, h*, h_RR]
    ['SGLang GSP defaults, R=8', 2048, 128, 16, 8, 0.882, 0.526],
    ['SGLang GSP defaults, R=4', 2048, 128, 16, 4, 0.882, 0.708],
    ['GIE high-cache, R=8', 2048, 256, 16, 8, 0.833, 0.497],
    ['GIE low-cache, R=8', 256, 2048, 16, 8, 0.104, 0.062],
    ['llm-d precise guide, one pass of P=5, R=8', 6000, 1200, 5, 8, 0.667, 0.184],
    ['llm-d-benchmark shared_prefix_synthetic, R=4', 2048, 256, 32, 4, 0.861, 0.778],
  ])('%s', (_name, S, Q, P, R, hStar, hRR) => {
    expect(idealHitRate({ P, S, Q, B })).toBeCloseTo(hStar, 3);
    expect(roundRobinHitRate({ P, S, Q, B }, R)).toBeCloseTo(hRR, 3);
  });

  test('only whole blocks of the prefix count', () => {
    expect(cacheablePrefix(2048, 16)).toBe(2048);
    expect(cacheablePrefix(2050, 16)).toBe(2048);
    expect(cacheablePrefix(15, 16)).toBe(0);
    expect(idealHitRate({ P: 4, S: 15, Q: 10, B: 16 })).toBe(0);
  });

  test('round robin reaches the ideal with one replica and loses more as R grows toward P', () => {
    const shape = { P: 8, S: 1024, Q: 64, B };
    expect(roundRobinHitRate(shape, 1)).toBeCloseTo(idealHitRate(shape), 12);
    expect(roundRobinHitRate(shape, 2)).toBeGreaterThan(roundRobinHitRate(shape, 4));
    expect(roundRobinHitRate(shape, 4)).toBeGreaterThan(roundRobinHitRate(shape, 8));
    expect(expectedReplicasVisited(16, 8)).toBeCloseTo(8 * (1 - (7 / 8) ** 16), 12);
  });

  test('bad shapes are refused', () => {
    expect(() => idealHitRate({ P: 0, S: 1, Q: 1, B })).toThrow(RangeError);
    expect(() => roundRobinHitRate({ P: 2, S: 0, Q: 0, B }, 4)).toThrow(RangeError);
    expect(() => expectedReplicasVisited(2, 0)).toThrow(RangeError);
  });
});

describe('finite capacity (§7.3)', () => {
  // The reference's LRU simulation: G=150 groups, P=50, R=8, capacity per replica in groups; its table gives
  // RR 0.163 / 0.123 / 0.066 and affinity 0.980 / 0.980 / 0.517 for 25 / 19 / 10 groups, as per-request prefix hit
  // rates. With S ≫ Q the token rates equal those.
  const shape = { P: 50, S: 1_000_000, Q: 0, B: 1 };
  test.each([
    [25, 0.163, 0.98],
    [19, 0.123, 0.98],
    [10, 0.066, 0.517],
  ])('capacity for %i groups per replica', (k, rr, affinity) => {
    const est = finiteCapacityHitRates(shape, 8, 150, k);
    expect(est.affinity).toBeCloseTo(affinity, 1);
    expect(Math.abs(est.affinity - affinity)).toBeLessThan(0.02);
    // The estimate counts first visits to a replica as misses, which the table's k/G does not: within 0.03.
    expect(Math.abs(est.roundRobin - rr)).toBeLessThan(0.03);
  });

  test('never above the infinite-cache rates, and equal to them once everything fits', () => {
    const s = { P: 8, S: 1024, Q: 64, B };
    const fits = finiteCapacityHitRates(s, 4, 16 * 1024, 16 * 1024);
    expect(fits.roundRobin).toBeCloseTo(roundRobinHitRate(s, 4), 12);
    expect(fits.affinity).toBeCloseTo(idealHitRate(s), 12);
    const tight = finiteCapacityHitRates(s, 4, 16 * 1024, 4 * 1024);
    expect(tight.roundRobin).toBeCloseTo(roundRobinHitRate(s, 4) / 4, 12);
    expect(tight.affinity).toBeCloseTo(idealHitRate(s), 12); // R·C = W: the affinity router still holds every prefix
  });
});

test('multi-turn: a resident history hits its whole blocks', () => {
  expect(turnHitRate(1000, 200, 16)).toBeCloseTo(992 / 1200, 12);
  expect(turnHitRate(0, 10, 16)).toBe(0);
  expect(() => turnHitRate(0, 0, 16)).toThrow(RangeError);
});
