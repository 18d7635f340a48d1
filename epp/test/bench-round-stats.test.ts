import { eppFirst, formatSpread, perRound, quantileLinear, roundOrder, spread, verdict, worseVerdict } from '../bench/round-stats';

// The EPP benchmark's paired rounds (bench/paired-rounds.ts): the order servers are driven in and the statistics the
// per-round ratios are reported and judged by. Pure logic; nothing here measures anything.

describe('roundOrder', () => {
  test('rotates the pool sizes round by round, so over three rounds each comes first, middle and last once', () => {
    const rounds = [0, 1, 2].map((r) => roundOrder([8, 64, 256], r));
    expect(rounds).toEqual([[8, 64, 256], [64, 256, 8], [256, 8, 64]]);
    for (const n of [8, 64, 256]) expect(rounds.map((o) => o.indexOf(n)).sort()).toEqual([0, 1, 2]);
    expect(roundOrder([8, 64, 256], 3)).toEqual([8, 64, 256]);
  });

  test('leaves the list given untouched and takes one or none', () => {
    const pools = [8, 256];
    expect(roundOrder(pools, 1)).toEqual([256, 8]);
    expect(pools).toEqual([8, 256]);
    expect(roundOrder([4], 5)).toEqual([4]);
    expect(roundOrder([], 2)).toEqual([]);
  });

  test('names a round that is not a whole number', () => {
    expect(() => roundOrder([8], -1)).toThrow('round must be an integer >= 0, got -1');
    expect(() => roundOrder([8], 1.5)).toThrow('round must be an integer >= 0, got 1.5');
  });
});

describe('eppFirst', () => {
  test('over an even number of rounds each EPP comes before its floor slice as often as after', () => {
    for (const index of [0, 1, 2]) {
      const first = Array.from({ length: 6 }, (_, round) => eppFirst(round, index));
      expect(first.filter(Boolean)).toHaveLength(3);
      // Alternating, not three in a row: a drift within the group falls on both orders alike.
      for (let r = 1; r < 6; r++) expect(first[r]).toBe(!first[r - 1]);
    }
  });

  test('EPPs next to each other in the list start their rounds differently', () => {
    expect(eppFirst(0, 0)).toBe(true);
    expect(eppFirst(0, 1)).toBe(false);
    expect(eppFirst(0, 2)).toBe(true);
  });
});

describe('spread', () => {
  test('median, quartiles (linear between ranks) and extremes', () => {
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, q1: 1.75, q3: 3.25, min: 1, max: 4, n: 4 });
    expect(spread([0.9, 1.1, 0.7, 1.0, 0.95])).toEqual({ median: 0.95, q1: 0.9, q3: 1.0, min: 0.7, max: 1.1, n: 5 });
    expect(spread([2])).toEqual({ median: 2, q1: 2, q3: 2, min: 2, max: 2, n: 1 });
  });

  test('one slow round moves the median less than the pooled mean', () => {
    const ratios = [0.95, 0.97, 0.93, 0.96, 0.94, 0.3];
    const s = spread(ratios);
    expect(s.median).toBeCloseTo(0.945, 10);
    const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
    expect(mean).toBeLessThan(0.9);
    expect(s.min).toBe(0.3);
  });

  test('none gives NaN, a non-number is refused by name', () => {
    const s = spread([]);
    expect(s.n).toBe(0);
    expect(s.median).toBeNaN();
    expect(formatSpread(s)).toBe('-');
    expect(() => spread([1, NaN])).toThrow('spread: every value must be a finite number, got NaN');
    expect(() => spread([1, Infinity])).toThrow('got Infinity');
  });

  test('quantileLinear checks q and interpolates', () => {
    expect(quantileLinear([10, 20], 0.5)).toBe(15);
    expect(quantileLinear([10, 20, 30], 1)).toBe(30);
    expect(quantileLinear([], 0.5)).toBeNaN();
    expect(() => quantileLinear([1], 1.5)).toThrow('quantile: q must be in [0, 1], got 1.5');
  });
});

describe('perRound', () => {
  test('divides round by round and refuses rounds that do not line up', () => {
    expect(perRound([900, 1000, 1100], [1000, 1000, 1000])).toEqual([0.9, 1, 1.1]);
    expect(() => perRound([1, 2], [1])).toThrow('per-round ratio: 2 rounds against 1');
  });

  test('a drift that slows both sides of each round alike leaves every per-round ratio alone', () => {
    // The machine slows by half over the group; the 256-pod EPP is 0.9 of the 8-pod one throughout.
    const speed = [1, 0.9, 0.8, 0.7, 0.6, 0.5];
    const at8 = speed.map((s) => 2000 * s);
    const at256 = speed.map((s) => 1800 * s);
    const s = spread(perRound(at256, at8));
    expect(s.min).toBeCloseTo(0.9, 10);
    expect(s.max).toBeCloseTo(0.9, 10);
    // Two cells measured at the two ends of that drift, as before the pairing, read 0.45 instead.
    expect(at256[5]! / at8[0]!).toBeCloseTo(0.45, 10);
  });
});

describe('verdict', () => {
  test('met or missed when the interquartile range is on one side of the goal, straddles when it holds it', () => {
    expect(verdict(spread([0.92, 0.95, 0.97, 1.0]), 0.9)).toBe('met');
    expect(verdict(spread([0.6, 0.62, 0.65, 0.7]), 0.8)).toBe('missed');
    expect(verdict(spread([0.8, 0.88, 0.93, 1.0]), 0.9)).toBe('straddles');
    // The threshold itself counts as met, as the goals' ≥ does.
    expect(verdict(spread([0.9, 0.9, 0.9]), 0.9)).toBe('met');
  });

  test('a goal judged on two ratios takes the less favourable verdict of the two', () => {
    expect(worseVerdict('met', 'met')).toBe('met');
    expect(worseVerdict('met', 'straddles')).toBe('straddles');
    expect(worseVerdict('straddles', 'met')).toBe('straddles');
    expect(worseVerdict('straddles', 'missed')).toBe('missed');
    expect(worseVerdict('met', 'missed')).toBe('missed');
  });

  test('formatSpread prints the median and the range', () => {
    expect(formatSpread(spread([0.8, 1.0, 0.9]))).toBe('0.90 (0.80–1.00)');
  });
});
