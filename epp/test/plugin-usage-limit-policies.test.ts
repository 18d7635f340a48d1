/**
 * The usage-limit policies a config's `flowControl.usageLimitPolicyPluginRef` names, against upstream's own test
 * expectations: `static-usage-limit-policy` (GIE v1.5.0 / llm-d-router v0.10.0 `usagelimits/usagelimitpolicy.go`),
 * `priority-holdback-policy` (llm-d-router v0.10.0 `usagelimits/priorityholdback/priority_holdback_test.go`) and
 * `soft-reflective-ceiling-policy` (`usagelimits/softreflectiveceiling/policy_test.go`). Each test names the upstream
 * test it mirrors. The policies' effect on dispatch is in `llmd-v0.10-usage-limits.test.ts`.
 */
import { resolvePluginParameters } from '../src/config';
import { computeCeilings, StaticUsageLimitPolicy, UsageLimitPolicyPlugin } from '../src/scheduling/plugins/flow-control-policies';
import {
  computeLimitLinearProportional,
  computeLimitStepwiseSpread,
  PriorityHoldbackPolicy,
  type PriorityHoldbackPolicyParameters,
} from '../src/scheduling/plugins/priority-holdback-policy';
import { SoftReflectiveCeilingPolicy } from '../src/scheduling/plugins/soft-reflective-ceiling-policy';
import { configErrorOf } from './config-error';

/** upstream's computeLimits helper: a framework-style buffer pre-filled with 1.0, sized to `priorities`. */
const limits = (policy: UsageLimitPolicyPlugin, saturation: number, priorities: readonly number[]) => computeCeilings(policy, saturation, priorities);

/** upstream's runSpread: a fill-style function on a fresh buffer. */
function runSpread(fn: typeof computeLimitStepwiseSpread, cMin: number, cMax: number, priorities: number[]): number[] {
  const ceilings = new Array<number>(priorities.length).fill(0);
  fn(cMin, cMax, priorities, ceilings);
  return ceilings;
}

function expectClose(actual: readonly number[], expected: readonly number[], digits = 9): void {
  expect(actual).toHaveLength(expected.length);
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, digits));
}

describe('static-usage-limit-policy', () => {
  test('one threshold for every priority (NewConstPolicy); 1.0 by default', () => {
    const policy = new StaticUsageLimitPolicy('s', 0.8);
    expect(limits(policy, 0.5, [10, 0, -5])).toEqual([0.8, 0.8, 0.8]);
    expect(resolvePluginParameters('static-usage-limit-policy', undefined)).toEqual({ threshold: 1 });
  });
});

describe('priority-holdback-policy (priority_holdback_test.go)', () => {
  const build = (raw: object | undefined) => resolvePluginParameters('priority-holdback-policy', raw);
  const policy = (config: Required<PriorityHoldbackPolicyParameters>) => new PriorityHoldbackPolicy('p', config);

  // TestPolicyFactory
  test.each([
    ['valid rank domain config', { domain: 'rank', minCeiling: 0.5 }],
    ['valid value domain config', { domain: 'value', minCeiling: 0.3, maxCeiling: 0.9 }],
    ['valid config with explicit maxCeiling', { domain: 'rank', minCeiling: 0.2, maxCeiling: 0.8 }],
    ['defaults applied for shape and domain', { minCeiling: 0.5 }],
    ['explicit shape linear', { shape: 'linear', minCeiling: 0.5 }],
    ['minCeiling zero is valid', { minCeiling: 0.0 }],
  ])('TestPolicyFactory: %s loads', (_name, raw) => {
    expect(() => build(raw)).not.toThrow();
  });

  test.each([
    ['missing minCeiling', { domain: 'rank' }, 'parameters.minCeiling: is required'],
    ['empty config', {}, 'parameters.minCeiling: is required'],
    ['nil config', undefined, 'parameters.minCeiling: is required'],
    ['unsupported shape', { shape: 'sigmoid', minCeiling: 0.5 }, 'parameters.shape: must be "linear", got "sigmoid"'],
    ['unsupported domain', { domain: 'unknown', minCeiling: 0.5 }, 'parameters.domain: must be "rank" or "value", got "unknown"'],
    ['minCeiling negative', { minCeiling: -0.1 }, 'parameters.minCeiling: must be in [0.0, 1.0), got -0.100000'],
    ['minCeiling equals 1.0', { minCeiling: 1.0 }, 'parameters.minCeiling: must be in [0.0, 1.0), got 1.000000'],
    ['maxCeiling zero', { minCeiling: 0.5, maxCeiling: 0.0 }, 'parameters.maxCeiling: must be in (0.0, 1.0], got 0.000000'],
    ['maxCeiling exceeds 1.0', { minCeiling: 0.5, maxCeiling: 1.1 }, 'parameters.maxCeiling: must be in (0.0, 1.0], got 1.100000'],
    ['minCeiling equals maxCeiling', { minCeiling: 0.5, maxCeiling: 0.5 }, 'parameters.minCeiling: (0.500000) must be strictly less than maxCeiling (0.500000)'],
    ['minCeiling greater than maxCeiling', { minCeiling: 0.8, maxCeiling: 0.5 }, 'parameters.minCeiling: (0.800000) must be strictly less than maxCeiling (0.500000)'],
    ['a misspelt field (upstream\'s strict decoder)', { minCeiling: 0.5, maxCeil: 0.9 }, 'parameters.maxCeil: unknown field; allowed: shape, domain, minCeiling, maxCeiling'],
    ['a string for a ceiling', { minCeiling: '0.5' }, 'parameters.minCeiling: must be a number, got "0.5"'],
  ])('TestPolicyFactory: %s is refused, naming the field', (_name, raw, message) => {
    expect(configErrorOf(() => build(raw))).toBe(message);
  });

  // TestPolicyFactory_DefaultMaxCeiling, TestBuildConfig_ValidConfigs
  test.each([
    ['defaults for shape and domain', { minCeiling: 0.5 }, { shape: 'linear', domain: 'rank', minCeiling: 0.5, maxCeiling: 1 }],
    ['explicit rank domain', { domain: 'rank', minCeiling: 0.5 }, { shape: 'linear', domain: 'rank', minCeiling: 0.5, maxCeiling: 1 }],
    ['value domain with explicit maxCeiling', { domain: 'value', minCeiling: 0.3, maxCeiling: 0.9 }, { shape: 'linear', domain: 'value', minCeiling: 0.3, maxCeiling: 0.9 }],
    ['minCeiling at zero', { minCeiling: 0 }, { shape: 'linear', domain: 'rank', minCeiling: 0, maxCeiling: 1 }],
    ['explicit shape and domain', { shape: 'linear', domain: 'value', minCeiling: 0.4 }, { shape: 'linear', domain: 'value', minCeiling: 0.4, maxCeiling: 1 }],
  ])('TestBuildConfig_ValidConfigs: %s', (_name, raw, resolved) => {
    expect(build(raw)).toEqual(resolved);
  });

  test('TestComputeLimit_EmptyPriorities: nothing written', () => {
    expect(limits(policy(build({ minCeiling: 0.5 })), 0.5, [])).toEqual([]);
  });

  test.each([
    ['rank domain', 'rank', 1.0],
    ['value domain', 'value', 1.0],
    ['custom maxCeiling', 'rank', 0.9],
  ] as const)('TestComputeLimit_SinglePriority (%s): holdback bypassed with cMax', (_name, domain, cMax) => {
    expect(limits(policy(build({ domain, minCeiling: 0.5, maxCeiling: cMax })), 0.5, [10])).toEqual([cMax]);
  });

  test('stepwise spread (domain: rank): TestStepwiseSpread_{Two,Three,Four}Priorities, NarrowRange, BoundaryValues', () => {
    expectClose(runSpread(computeLimitStepwiseSpread, 0.5, 1.0, [100, 10]), [1.0, 0.5]);
    expectClose(runSpread(computeLimitStepwiseSpread, 0.5, 1.0, [100, 50, 10]), [1.0, 0.75, 0.5]);
    expectClose(runSpread(computeLimitStepwiseSpread, 0.5, 1.0, [100, 75, 50, 10]), [1.0, 0.8333333, 0.6666666, 0.5], 6);
    expectClose(runSpread(computeLimitStepwiseSpread, 0.8, 0.9, [10, 5, 1]), [0.9, 0.85, 0.8]);
    const boundary = runSpread(computeLimitStepwiseSpread, 0.0, 1.0, [10, 5, 1]);
    expect(boundary[0]).toBeCloseTo(1.0, 9);
    expect(boundary[2]).toBeCloseTo(0.0, 9);
  });

  test('TestStepwiseSpread_IgnoresNumericalValues and _MonotonicallyDecreasing', () => {
    expectClose(runSpread(computeLimitStepwiseSpread, 0.5, 1.0, [1000, 2, 1]), runSpread(computeLimitStepwiseSpread, 0.5, 1.0, [100, 50, 10]));
    const c = runSpread(computeLimitStepwiseSpread, 0.2, 0.9, [50, 40, 30, 20, 10]);
    for (let i = 1; i < c.length; i++) expect(c[i - 1]).toBeGreaterThan(c[i]!);
  });

  test('linear proportional (domain: value): TestLinearProportional_TwoPriorities, ThreePriorities_{EvenSpacing,SkewedLow}, SkewedDistribution', () => {
    expectClose(runSpread(computeLimitLinearProportional, 0.5, 1.0, [100, 10]), [1.0, 0.5]);
    expectClose(runSpread(computeLimitLinearProportional, 0.5, 1.0, [90, 50, 10]), [1.0, 0.75, 0.5]);
    expectClose(runSpread(computeLimitLinearProportional, 0.5, 1.0, [100, 50, 10]), [1.0, 0.7222222, 0.5], 6);
    expectClose(runSpread(computeLimitLinearProportional, 0.5, 1.0, [100, 2, 1]), [1.0, 0.505050, 0.5], 5);
  });

  test('linear proportional: TestLinearProportional_{Duplicate,TwoDuplicate}Priorities, NegativePriorities, BoundaryValues, MonotonicallyDecreasing', () => {
    expectClose(runSpread(computeLimitLinearProportional, 0.5, 1.0, [10, 10, 10]), [1.0, 1.0, 1.0]);
    expectClose(runSpread(computeLimitLinearProportional, 0.5, 1.0, [100, 10, 10]), [1.0, 0.5, 0.5]);
    const negative = runSpread(computeLimitLinearProportional, 0.5, 1.0, [10, -5, -20]);
    expect(negative[0]).toBeCloseTo(1.0, 9);
    expect(negative[2]).toBeCloseTo(0.5, 9);
    expect(negative[1]).toBeGreaterThan(negative[2]!);
    expect(negative[1]).toBeLessThan(negative[0]!);
    const boundary = runSpread(computeLimitLinearProportional, 0.0, 1.0, [10, 5, 1]);
    expect(boundary[0]).toBeCloseTo(1.0, 9);
    expect(boundary[2]).toBeCloseTo(0.0, 9);
    const c = runSpread(computeLimitLinearProportional, 0.2, 0.9, [50, 40, 30, 20, 10]);
    for (let i = 1; i < c.length; i++) expect(c[i - 1]).toBeGreaterThanOrEqual(c[i]!);
  });

  test('TestDomains_ConvergeOnEvenSpacing and _DivergeOnSkewedSpacing, through the policy (its domain chooses the spread)', () => {
    const rank = policy(build({ domain: 'rank', minCeiling: 0.5 }));
    const value = policy(build({ domain: 'value', minCeiling: 0.5 }));
    expectClose(limits(value, 0.3, [100, 55, 10]), limits(rank, 0.3, [100, 55, 10]));
    const r = limits(rank, 0.3, [100, 2, 1]);
    const v = limits(value, 0.3, [100, 2, 1]);
    expect(r[0]).toBeCloseTo(v[0]!, 9);
    expect(r[2]).toBeCloseTo(v[2]!, 9);
    expect(r[1]).toBeCloseTo(0.75, 9);
    expect(v[1]).toBeLessThan(0.51);
    expect(r[1]! - v[1]!).toBeGreaterThan(0.2);
  });

  test('stateless: the steady ceilings are the computed ones, whatever the saturation', () => {
    const p = policy(build({ minCeiling: 0.5 }));
    expect(computeCeilings(p, 0.9, [10, 0, -5], true)).toEqual(limits(p, 0.9, [10, 0, -5]));
    expect(limits(p, 0.1, [10, 0, -5])).toEqual(limits(p, 0.99, [10, 0, -5]));
  });
});

describe('soft-reflective-ceiling-policy (policy_test.go)', () => {
  const fresh = () => new SoftReflectiveCeilingPolicy('soft-reflective');

  test('TestFactory_EmptyConfigAccepted / _UnknownFieldRejected: no parameters but an empty map', () => {
    expect(resolvePluginParameters('soft-reflective-ceiling-policy', {})).toEqual({});
    expect(resolvePluginParameters('soft-reflective-ceiling-policy', undefined)).toEqual({});
    expect(configErrorOf(() => resolvePluginParameters('soft-reflective-ceiling-policy', { threshold: 0.5 })))
      .toBe('parameters.threshold: unknown field; this plugin takes no parameters');
  });

  test('TestComputeLimit_NoBands and _SingleBand', () => {
    expect(limits(fresh(), 0.9, [])).toEqual([]);
    const p = fresh();
    for (const sat of [0.0, 0.5, 0.99, 1.0]) expect(limits(p, sat, [100])).toEqual([1.0]);
  });

  test('TestComputeLimit_CriticalBandNeverGated', () => {
    const p = fresh();
    for (const sat of [0.0, 0.3, 0.5, 0.7, 0.99, 1.0, 1.5]) expect(limits(p, sat, [100, 0, -50])[0]).toBe(1.0);
  });

  test('TestComputeLimit_BelowCeilingAllOpen: at 0.3 with N=3 the reflective ceilings are [1, 0.85, 0.70]', () => {
    expect(limits(fresh(), 0.3, [100, 0, -50])).toEqual([1.0, 1.0, 1.0]);
  });

  test('TestComputeLimit_FullySaturated: every non-critical band closed at 1.0', () => {
    expect(limits(fresh(), 1.0, [100, 0, -50])).toEqual([1.0, 0.0, 0.0]);
  });

  test('TestComputeLimit_ReflectiveFormula: N=4 at 0.7, band 1 open (0.7667), bands 2 and 3 gated (0 or 1)', () => {
    const got = limits(fresh(), 0.7, [100, 50, 0, -50]);
    expect(got.slice(0, 2)).toEqual([1.0, 1.0]);
    for (const c of got.slice(2)) expect([0.0, 1.0]).toContain(c);
  });

  test('TestComputeLimit_Alternation: N=2 at 0.7, period round(0.7/0.3) = 2: closed, open, closed, …', () => {
    const p = fresh();
    for (const want of [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]) expect(limits(p, 0.7, [100, -50])).toEqual([1.0, want]);
  });

  test('TestComputeLimit_AlternationLongerPeriod: N=2 at 0.75, period 3: two closed, then open', () => {
    const p = fresh();
    for (const want of [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]) expect(limits(p, 0.75, [100, -50])[1]).toBe(want);
  });

  test('TestComputeLimit_GrowingPriorities', () => {
    const p = fresh();
    limits(p, 0.7, [100, -50]);
    const got = limits(p, 0.7, [100, 50, 0, -50]);
    expect(got).toHaveLength(4);
    expect(got[0]).toBe(1.0);
  });

  test('TestComputeLimit_NoStarvationUnderRisingSaturation: gated bands open on the same calls', () => {
    const p = fresh();
    const priorities = [100, 0, -50];
    for (let i = 0; i < 3; i++) limits(p, 0.6, priorities);
    let band1Open = 0;
    let band2Open = 0;
    for (let i = 0; i < 100; i++) {
      const got = limits(p, 0.7, priorities);
      if (got[1] === 1.0) band1Open++;
      if (got[2] === 1.0) band2Open++;
      if (got[2] === 1.0) expect(got[1]).toBe(1.0);
    }
    expect(band1Open).toBe(band2Open);
    expect(band2Open).toBeGreaterThan(0);
  });

  test('the tick advances only in the alternating regime: below it the policy is a pure function', () => {
    const p = fresh();
    for (let i = 0; i < 5; i++) expect(limits(p, 0.3, [100, -50])).toEqual([1.0, 1.0]);
    // The first call in the regime is tick 1: closed at period 2, as from a fresh policy.
    expect(limits(p, 0.7, [100, -50])).toEqual([1.0, 0.0]);
  });

  test('kvroute\'s steadyLimit: the alternating bands counted open, the tick left alone; closed only at full saturation', () => {
    const p = fresh();
    expect(limits(p, 0.7, [100, -50])).toEqual([1.0, 0.0]); // tick 1
    for (let i = 0; i < 3; i++) expect(computeCeilings(p, 0.7, [100, -50], true)).toEqual([1.0, 1.0]);
    expect(limits(p, 0.7, [100, -50])).toEqual([1.0, 1.0]); // tick 2: the steady calls did not advance it
    expect(computeCeilings(p, 1.0, [100, 0, -50], true)).toEqual([1.0, 0.0, 0.0]);
    expect(computeCeilings(p, 0.3, [100, 0, -50], true)).toEqual([1.0, 1.0, 1.0]);
    expect(computeCeilings(p, 0.9, [100], true)).toEqual([1.0]);
  });
});
