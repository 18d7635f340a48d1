/**
 * Label values a client chooses (model names, fairness ids) are bounded before they reach a metric: each distinct
 * value multiplies the series of every family it labels, and a client can send any number of them, of any length.
 */

/** The label value of whatever a bound turned away. */
export const OTHER_LABEL = 'other';
/** Distinct `model_name` label values kept before the rest are counted as "other": clients choose the model string. */
export const MAX_MODEL_LABELS = 64;
/** Longer model names are counted as "other" (real model ids are well under it: `meta-llama/Llama-3.1-405B-Instruct-FP8`). */
export const MAX_MODEL_LABEL_LENGTH = 128;

/** A client-chosen label: its own value for the first `maxValues` distinct values up to `maxLength` characters, then "other". */
export class BoundedLabelValues {
  private readonly kept = new Set<string>();

  constructor(private readonly maxValues: number, private readonly maxLength: number = MAX_MODEL_LABEL_LENGTH) {}

  label(value: string): string {
    if (value.length > this.maxLength) return OTHER_LABEL;
    if (this.kept.has(value)) return value;
    if (this.kept.size >= this.maxValues) return OTHER_LABEL;
    this.kept.add(value);
    return value;
  }
}
