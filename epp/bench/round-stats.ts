/**
 * The pure part of the EPP benchmark's paired rounds (`epp-bench.ts`): the order servers are driven in within a round,
 * and the statistics of per-round ratios. Each ratio is taken within one round, from slices seconds apart, so a VM
 * whose speed drifts over minutes moves both sides of it alike; the spread over rounds says how far one round's
 * ratio can be trusted, and the median is what a verdict is read from (one slow slice cannot carry it).
 */

/** Median, quartiles and extremes of some per-round values (NaN fields when there are none). */
export interface Spread {
  readonly median: number;
  /** 25th and 75th percentiles, linear between ranks (numpy's default, R's type 7). */
  readonly q1: number;
  readonly q3: number;
  readonly min: number;
  readonly max: number;
  /** How many values (rounds) it was taken over. */
  readonly n: number;
}

/** The q-quantile of ascending `sorted` values, linear between the two nearest ranks; NaN when empty. */
export function quantileLinear(sorted: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile: q must be in [0, 1], got ${q}`);
  if (sorted.length === 0) return NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function spread(values: readonly number[]): Spread {
  for (const v of values) if (!Number.isFinite(v)) throw new Error(`spread: every value must be a finite number, got ${v}`);
  const s = [...values].sort((a, b) => a - b);
  return { median: quantileLinear(s, 0.5), q1: quantileLinear(s, 0.25), q3: quantileLinear(s, 0.75), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, n: s.length };
}

/** `a[i] ÷ b[i]` per round; the two must cover the same rounds. */
export function perRound(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new Error(`per-round ratio: ${a.length} rounds against ${b.length}`);
  return a.map((x, i) => x / b[i]!);
}

/**
 * The order the EPPs are driven in, in round `round`: `items` rotated by the round, so over a multiple of
 * `items.length` rounds each comes first, middle and last equally often (being first after the floor, or right after
 * the biggest pool's burst of scrapes, then favours none of them).
 */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  if (!Number.isInteger(round) || round < 0) throw new Error(`round must be an integer >= 0, got ${round}`);
  if (items.length === 0) return [];
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * Whether the EPP's slice comes before its paired floor slice, for EPP number `index` (its place in the configured
 * list, not in the round's order) in round `round`: alternating round by round, so over an even number of rounds each
 * EPP and the floor are first equally often (what precedes a slice, a settle or the other server's burst, is shared).
 */
export function eppFirst(round: number, index: number): boolean {
  return (round + index) % 2 === 0;
}

/** `x.xx (min–max)`, the short form the tables print. */
export function formatSpread(s: Spread, digits = 2): string {
  if (s.n === 0) return '-';
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** A spread rounded for results.json. */
export function roundedSpread(s: Spread, digits = 3): Spread {
  const r = (x: number) => +x.toFixed(digits);
  return { median: r(s.median), q1: r(s.q1), q3: r(s.q3), min: r(s.min), max: r(s.max), n: s.n };
}

/**
 * Where the rounds put a goal of the form "≥ threshold": `met` and `missed` when the whole interquartile range is on
 * one side, `straddles` when the threshold falls inside it (the median decides, but a rerun may well decide otherwise).
 */
export function verdict(s: Spread, threshold: number): 'met' | 'missed' | 'straddles' {
  if (s.q1 >= threshold) return 'met';
  if (s.q3 < threshold) return 'missed';
  return 'straddles';
}

/** The less favourable of two verdicts (missed, then straddles, then met): a goal judged on two ratios at once. */
export function worseVerdict(a: 'met' | 'missed' | 'straddles', b: 'met' | 'missed' | 'straddles'): 'met' | 'missed' | 'straddles' {
  const rank = { missed: 0, straddles: 1, met: 2 } as const;
  return rank[a] <= rank[b] ? a : b;
}
