/**
 * A labelled Prometheus histogram for the scheduling hot path, registered on a prom-client Registry beside its
 * collectors and rendered by it like one of them.
 *
 * Why not prom-client's Histogram: every `observe(labels, v)` converts and validates the labels object, builds a hash
 * string from it and looks the series up by that string; its `labels()` children do the same on every call. The
 * scheduler times every plugin call of every cycle (about a dozen per request with the default config, GIE's
 * `plugin_duration` histograms), and profiles of the EPP under load put prom-client at 5-7% of the routing thread, most
 * of it there (epp/README.md, "Where the CPU goes"). Here a series is resolved once per label set (`child`), and an
 * observation is a bucket search and two additions on typed arrays. The exposition is the same as prom-client's: each
 * series' cumulative `_bucket` lines with `le` first (then `+Inf`), `_sum`, `_count`, byte for byte (a test compares).
 */
import type { Metric, Registry } from 'prom-client';

/**
 * A label set's series key: its values in the metric's label order, joined with U+0000 (which a label value cannot
 * contain in the exposition's escaping); a value that is not a string is refused, naming the metric and label.
 */
export function labelSetKey<L extends string>(metric: string, labelNames: readonly L[], labels: Readonly<Record<L, string>>): string {
  let key = '';
  for (const name of labelNames) {
    const value = labels[name];
    if (typeof value !== 'string') throw new Error(`${metric}: label ${name} must be a string, got ${String(value)}`);
    key += `${value}\u0000`;
  }
  return key;
}

/** Refuses a label the metric does not have (checked once per new series, not per update). */
export function checkLabelNames<L extends string>(metric: string, labelNames: readonly L[], labels: Readonly<Record<L, string>>): void {
  for (const name of Object.keys(labels)) {
    if (!labelNames.includes(name as L)) throw new Error(`${metric}: unknown label ${name} (labels: ${labelNames.join(', ')})`);
  }
}

export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: Float64Array, readonly labels: Readonly<Record<string, string>>) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`histogram value must be a finite number, got ${value}`);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

interface ExportedValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName: string;
}

export class BoundHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds: Float64Array;
  /** Series by label values joined with U+0000 (which a label value cannot contain in the exposition's escaping). */
  private readonly series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
    buckets: readonly number[],
    registry: Registry,
  ) {
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) {
      throw new Error(`${name}: buckets must be distinct finite numbers, got ${buckets.join(', ')}`);
    }
    this.bounds = Float64Array.from(sorted);
    // The Registry renders any collector with name, help, type, get() and reset(); its TypeScript type lists only its
    // own four classes.
    registry.registerMetric(this as unknown as Metric<string>);
  }

  /** The series of one label set, created at first use; keep it to observe without any lookup. */
  child(labels: Readonly<Record<L, string>>): HistogramSeries {
    const key = labelSetKey(this.name, this.labelNames, labels);
    let series = this.series.get(key);
    if (series === undefined) {
      checkLabelNames(this.name, this.labelNames, labels);
      series = new HistogramSeries(this.bounds, { ...labels });
      this.series.set(key, series);
    }
    return series;
  }

  observe(labels: Readonly<Record<L, string>>, value: number): void {
    this.child(labels).observe(value);
  }

  /** What the Registry renders (prom-client's `MetricObjectWithValues` shape). */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const values: ExportedValue[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.counts[i]!;
        values.push({ labels: { le: this.bounds[i]!, ...s.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /**
   * Drops the series whose labels `matches` (a collected flow's). Only for families observed by label set
   * (`observe`): a child handed out before would go on counting into a series no longer exported.
   */
  removeWhere(matches: (labels: Readonly<Record<string, string>>) => boolean): void {
    for (const [key, s] of this.series) if (matches(s.labels)) this.series.delete(key);
  }

  /** Zeroes every series (children handed out stay valid). */
  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
