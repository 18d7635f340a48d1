/**
 * `priority-holdback-policy`: llm-d-router v0.10.0's usage-limit policy that gates lower priorities at lower
 * saturations, holding capacity back for higher ones. The active priority levels (highest first) get ceilings spread
 * over [`minCeiling`, `maxCeiling`]: the highest `maxCeiling`, the lowest `minCeiling`, the ones between by rank
 * (`domain: rank`, equal steps) or by numerical priority (`domain: value`, proportional to the value's place between the
 * highest and lowest). With a single active level the holdback is bypassed (`maxCeiling`), so a pool serving one
 * priority stays work-conserving. Stateless: a pure function of the active levels (saturation is not read).
 * Named by `flowControl.usageLimitPolicyPluginRef`; flow control holds a request while the detector's saturation is at
 * or above its level's ceiling (request-control.ts `ceilingFor`).
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/flowcontrol/usagelimits/priorityholdback/{priority_holdback,config}.go and README.md @ v0.10.0
 */
import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import { definePlugin, parameters } from '../plugin';
import { UsageLimitPolicyPlugin } from './flow-control-policies';

export const PRIORITY_HOLDBACK_SHAPES = ['linear'] as const;
export const PRIORITY_HOLDBACK_DOMAINS = ['rank', 'value'] as const;

export interface PriorityHoldbackPolicyParameters {
  /** The interpolation curve across the ceiling range; upstream has only `linear`. @default "linear" */
  shape?: (typeof PRIORITY_HOLDBACK_SHAPES)[number];
  /** How levels map into the range: `rank` (equal steps by position) or `value` (by numerical priority). @default "rank" */
  domain?: (typeof PRIORITY_HOLDBACK_DOMAINS)[number];
  /** The lowest active priority's ceiling. Required; in [0.0, 1.0) and below `maxCeiling`. */
  minCeiling?: number;
  /** The highest active priority's ceiling; in (0.0, 1.0]. @default 1 */
  maxCeiling?: number;
}

/** Go's `%f`, as upstream's validation messages print a ceiling. */
function goFloat(value: number): string {
  return value.toFixed(6);
}

/** A number field, or undefined when absent (upstream's `*float64`); anything else is a type error. */
function optionalFloat(fields: FieldReader, key: string): number | undefined {
  const value = fields.raw(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(fields.fieldPath(key), `must be a number, got ${describeValue(value)}`);
  return value;
}

/** `computeLimitStepwiseSpread` (`domain: rank`): c_i = cMax − i·(cMax − cMin)/(N − 1). */
export function computeLimitStepwiseSpread(cMin: number, cMax: number, priorities: readonly number[], ceilings: number[]): void {
  const spread = cMax - cMin;
  const n = priorities.length - 1;
  for (let i = 0; i < priorities.length; i++) ceilings[i] = cMax - (i * spread) / n;
}

/**
 * `computeLimitLinearProportional` (`domain: value`): c_i = cMin + r_i·(cMax − cMin), r_i = (p_i − pMin)/(pMax − pMin);
 * every level `cMax` when all priorities are equal.
 */
export function computeLimitLinearProportional(cMin: number, cMax: number, priorities: readonly number[], ceilings: number[]): void {
  const pMin = priorities[priorities.length - 1]!;
  const pMax = priorities[0]!;
  const pRange = pMax - pMin;
  if (pRange === 0) {
    for (let i = 0; i < priorities.length; i++) ceilings[i] = cMax;
    return;
  }
  const spread = cMax - cMin;
  for (let i = 0; i < priorities.length; i++) ceilings[i] = cMin + ((priorities[i]! - pMin) / pRange) * spread;
}

export class PriorityHoldbackPolicy extends UsageLimitPolicyPlugin {
  private readonly spread: typeof computeLimitStepwiseSpread;

  constructor(name: string, readonly config: Required<PriorityHoldbackPolicyParameters>) {
    super('priority-holdback-policy', name);
    this.spread = config.domain === 'value' ? computeLimitLinearProportional : computeLimitStepwiseSpread;
  }

  computeLimit(_saturation: number, priorities: readonly number[], ceilings: number[]): void {
    if (priorities.length === 0) return;
    if (priorities.length === 1) {
      ceilings[0] = this.config.maxCeiling;
      return;
    }
    this.spread(this.config.minCeiling, this.config.maxCeiling, priorities, ceilings);
  }
}

export const priorityHoldbackPolicy = definePlugin({
  type: 'priority-holdback-policy',
  kinds: [],
  parameters: parameters<PriorityHoldbackPolicyParameters>((fields) => {
    const shape = fields.oneOf('shape', PRIORITY_HOLDBACK_SHAPES, 'linear');
    const domain = fields.oneOf('domain', PRIORITY_HOLDBACK_DOMAINS, 'rank');
    const min = optionalFloat(fields, 'minCeiling');
    // Upstream's checkRequired, before defaults and validation (config.go buildConfig).
    if (min === undefined) throw new ConfigError(fields.fieldPath('minCeiling'), 'is required');
    const maxCeiling = optionalFloat(fields, 'maxCeiling') ?? 1;
    if (min < 0 || min >= 1) throw new ConfigError(fields.fieldPath('minCeiling'), `must be in [0.0, 1.0), got ${goFloat(min)}`);
    if (maxCeiling <= 0 || maxCeiling > 1) throw new ConfigError(fields.fieldPath('maxCeiling'), `must be in (0.0, 1.0], got ${goFloat(maxCeiling)}`);
    if (min >= maxCeiling) {
      throw new ConfigError(fields.fieldPath('minCeiling'), `(${goFloat(min)}) must be strictly less than maxCeiling (${goFloat(maxCeiling)})`);
    }
    return { shape, domain, minCeiling: min, maxCeiling };
  }),
  create: (name, resolved) => new PriorityHoldbackPolicy(name, resolved),
});
