import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Filter } from '../framework';
import { definePlugin, parameters } from '../plugin';

export interface ByLabelFilterParameters {
  /** The pod label to test. */
  label: string;
  /** Label values that keep an endpoint. @default [] */
  validValues?: string[];
  /** Keep endpoints that do not have the label at all. @default false */
  allowsNoLabel?: boolean;
}

/** The pod label llm-d uses for an endpoint's role in prefill/decode disaggregation. */
export const ROLE_LABEL = 'llm-d.ai/role';

/**
 * `by-label`: keeps endpoints whose `label` has one of `validValues`, and, when `allowsNoLabel`, those without the
 * label. The role filters (`decode-filter`, `prefill-filter`) are fixed instances of it.
 * @see llm-d/llm-d-inference-scheduler: pkg/plugins/filter/by_label.go @ v0.2.1
 */
export class ByLabelFilter implements Filter {
  /** An eligibility rule: when nothing matches, waiting will not help, so the request fails as 'no-endpoints'. */
  readonly emptyResultReason = 'no-endpoints' as const;
  private readonly validValues: ReadonlySet<string>;

  constructor(
    readonly name: string,
    private readonly parameters: Required<ByLabelFilterParameters>,
    readonly type: string = 'by-label',
  ) {
    this.validValues = new Set(parameters.validValues);
  }

  filter(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const { label, allowsNoLabel } = this.parameters;
    const keeps = (candidate: EndpointSnapshot): boolean => {
      const value = candidate.endpoint.labels[label];
      return value === undefined ? allowsNoLabel : this.validValues.has(value);
    };
    // Usually every pod qualifies: hand the same (read-only) array on instead of copying it.
    return candidates.every(keeps) ? candidates : candidates.filter(keeps);
  }
}

export const byLabel = definePlugin({
  type: 'by-label',
  kinds: ['filter'],
  parameters: parameters<ByLabelFilterParameters>((fields) => ({
    label: fields.requiredString('label'),
    validValues: fields.stringList('validValues', []),
    allowsNoLabel: fields.boolean('allowsNoLabel', false),
  })),
  create: (name, resolved) => new ByLabelFilter(name, resolved),
});
