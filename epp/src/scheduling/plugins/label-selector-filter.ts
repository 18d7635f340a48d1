import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import { LabelVerdicts } from './by-label';
import { ConfigError, describeValue } from '../../config/errors';
import { isPlainObject } from '../../config/fields';
import type { CycleContext, Filter } from '../framework';
import { aliasOf, definePlugin, parameters } from '../plugin';

/** A Kubernetes set-based requirement (`metav1.LabelSelectorRequirement`). */
export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

/** The parameters are a Kubernetes `metav1.LabelSelector`, as llm-d decodes them. */
export interface LabelSelectorFilterParameters {
  /** Labels an endpoint's pod must carry with exactly these values. @default {} */
  matchLabels?: Record<string, string>;
  /** Set-based requirements, all of which must hold. @default [] */
  matchExpressions?: LabelSelectorRequirement[];
}

const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** A label name or value's characters (apimachinery validation.IsQualifiedName / IsValidLabelValue). */
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
/** A DNS-1123 subdomain, a key's optional prefix. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a label key, or undefined (apimachinery IsQualifiedName: `[prefix/]name`). */
function badLabelKey(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return 'a label key is a name with an optional prefix and one "/"';
  const name = parts[parts.length - 1]!;
  if (parts.length === 2 && (parts[0]!.length > 253 || !DNS_SUBDOMAIN.test(parts[0]!))) return 'a label key\'s prefix must be a DNS subdomain (lower-case alphanumerics, "-" and ".", at most 253 characters)';
  if (name.length > 63 || !LABEL_NAME.test(name)) return 'a label key\'s name must be at most 63 alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric';
  return undefined;
}

/** Whether `value` is a label value (apimachinery IsValidLabelValue: empty, or a name of at most 63 characters). */
function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && LABEL_NAME.test(value));
}

/**
 * `label-selector-filter` (and its deprecated name `by-label-selector`): keeps the endpoints whose pod labels match a
 * Kubernetes label selector, `matchLabels` and `matchExpressions` together; an empty selector keeps every endpoint
 * (`metav1.LabelSelectorAsSelector` of an empty selector is `labels.Everything()`). It may keep none.
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/filter/bylabel/selector.go @ v0.10.0
 *   (llm-d-inference-scheduler `by-label-selector` @ v0.8.0)
 */
export class LabelSelectorFilter implements Filter {
  /** An eligibility rule: when nothing matches, waiting will not help, so the request fails as 'no-endpoints'. */
  readonly emptyResultReason = 'no-endpoints' as const;
  private readonly verdicts = new LabelVerdicts();
  /** Bound once, so a cycle allocates no closure. */
  private readonly judge = (endpoint: Endpoint): boolean => this.matches(endpoint.labels);
  private readonly requirements: readonly { key: string; operator: LabelSelectorRequirement['operator']; values: ReadonlySet<string> }[];

  constructor(
    readonly name: string,
    parameters: Required<LabelSelectorFilterParameters>,
    readonly type: string = 'label-selector-filter',
  ) {
    // matchLabels k: v is the requirement k In (v) (LabelSelectorAsSelector).
    this.requirements = [
      ...Object.entries(parameters.matchLabels).map(([key, value]) => ({ key, operator: 'In' as const, values: new Set([value]) })),
      ...parameters.matchExpressions.map((r) => ({ key: r.key, operator: r.operator, values: new Set(r.values ?? []) })),
    ];
  }

  filter(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    return this.verdicts.keep(candidates, this.judge);
  }

  /** apimachinery labels.Requirement.Matches: NotIn and DoesNotExist hold for a pod without the label. */
  matches(labels: Readonly<Record<string, string>>): boolean {
    for (const r of this.requirements) {
      const value = Object.prototype.hasOwnProperty.call(labels, r.key) ? labels[r.key] : undefined;
      switch (r.operator) {
        case 'In': if (value === undefined || !r.values.has(value)) return false; break;
        case 'NotIn': if (value !== undefined && r.values.has(value)) return false; break;
        case 'Exists': if (value === undefined) return false; break;
        case 'DoesNotExist': if (value !== undefined) return false; break;
      }
    }
    return true;
  }
}

export const labelSelectorFilter = definePlugin({
  type: 'label-selector-filter',
  kinds: ['filter'],
  parameters: parameters<LabelSelectorFilterParameters>((fields) => {
    const rawLabels = fields.raw('matchLabels');
    const matchLabels: Record<string, string> = {};
    if (rawLabels !== undefined && rawLabels !== null) {
      if (!isPlainObject(rawLabels)) throw new ConfigError(fields.fieldPath('matchLabels'), `must be a map of label to value, got ${describeValue(rawLabels)}`);
      for (const [key, value] of Object.entries(rawLabels)) {
        const bad = badLabelKey(key);
        if (bad !== undefined) throw new ConfigError(fields.fieldPath(`matchLabels.${key}`), `${JSON.stringify(key)}: ${bad}`);
        if (typeof value !== 'string') throw new ConfigError(fields.fieldPath(`matchLabels.${key}`), `must be a string, got ${describeValue(value)}`);
        if (!isLabelValue(value)) throw new ConfigError(fields.fieldPath(`matchLabels.${key}`), `${JSON.stringify(value)} is not a label value (at most 63 alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric)`);
        matchLabels[key] = value;
      }
    }
    const rawExpressions = fields.raw('matchExpressions');
    const matchExpressions: LabelSelectorRequirement[] = [];
    if (rawExpressions !== undefined && rawExpressions !== null) {
      if (!Array.isArray(rawExpressions)) throw new ConfigError(fields.fieldPath('matchExpressions'), `must be a list, got ${describeValue(rawExpressions)}`);
      rawExpressions.forEach((item, i) => {
        const path = fields.fieldPath(`matchExpressions[${i}]`);
        if (!isPlainObject(item)) throw new ConfigError(path, `must be a map with key, operator and values, got ${describeValue(item)}`);
        const unknown = Object.keys(item).filter((k) => !['key', 'operator', 'values'].includes(k));
        if (unknown.length > 0) throw new ConfigError(`${path}.${unknown[0]}`, 'unknown field: a requirement has key, operator and values');
        const { key, operator, values } = item;
        if (typeof key !== 'string' || key === '') throw new ConfigError(`${path}.key`, `must be a non-empty string, got ${describeValue(key)}`);
        const bad = badLabelKey(key);
        if (bad !== undefined) throw new ConfigError(`${path}.key`, `${JSON.stringify(key)}: ${bad}`);
        if (typeof operator !== 'string' || !(OPERATORS as readonly string[]).includes(operator)) {
          // apimachinery's message: "is not a valid label selector operator".
          throw new ConfigError(`${path}.operator`, `${JSON.stringify(operator)} is not a valid label selector operator: must be one of ${OPERATORS.join(', ')}`);
        }
        const list = values === undefined || values === null ? [] : values;
        if (!Array.isArray(list) || list.some((v) => typeof v !== 'string')) throw new ConfigError(`${path}.values`, `must be a list of strings, got ${describeValue(values)}`);
        // labels.NewRequirement: In and NotIn need values, Exists and DoesNotExist take none.
        if ((operator === 'In' || operator === 'NotIn') && list.length === 0) throw new ConfigError(`${path}.values`, `must be non-empty for operator ${operator}`);
        if ((operator === 'Exists' || operator === 'DoesNotExist') && list.length > 0) throw new ConfigError(`${path}.values`, `must be empty for operator ${operator}`);
        const badValue = (list as string[]).find((v) => !isLabelValue(v));
        if (badValue !== undefined) throw new ConfigError(`${path}.values`, `${JSON.stringify(badValue)} is not a label value (at most 63 alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric)`);
        matchExpressions.push({ key, operator: operator as LabelSelectorRequirement['operator'], values: list as string[] });
      });
    }
    return { matchLabels, matchExpressions };
  }),
  create: (name, resolved) => new LabelSelectorFilter(name, resolved),
});

/** llm-d's name for it, deprecated since llm-d-router v0.9.0 and still loaded by v0.10.0 (`ByLabelSelectorType`, removal planned for v0.11.0). */
export const byLabelSelector = aliasOf('by-label-selector', labelSelectorFilter);
