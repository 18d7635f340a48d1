/**
 * GIE v1.5.0's flow-control policy plugins, which a config's `flowControl` section refers to by name
 * (`priorityBands[].fairnessPolicyRef`, `orderingPolicyRef`, `usageLimitPolicyPluginRef`). They act at no scheduling
 * extension point: kvroute's flow-control queue (`src/requestcontrol/flow-control.ts`) does what they name.
 * - `global-strict-fairness-policy` (GIE's default): one FCFS order across a band's flows.
 * - `round-robin-fairness-policy`: flows take turns (kvroute's default when a band names none).
 * - `fcfs-ordering-policy`: first come first served within a flow, the only ordering kvroute has.
 * - `static-usage-limit-policy`: the saturation at which the pool counts as full (`threshold`, 1.0 by default), one
 *   ceiling for every priority. Its per-band siblings `priority-holdback-policy` and `soft-reflective-ceiling-policy`
 *   (llm-d-router v0.10.0) have modules of their own; all three are `UsageLimitPolicyPlugin`s.
 * GIE's `edf-ordering-policy` and `slo-deadline-ordering-policy` are not accepted: kvroute does not order by deadline.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/flowcontrol/{fairness,ordering,usagelimits} @ v1.5.0
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/flowcontrol/usagelimits/usagelimitpolicy.go @ v0.10.0
 */
import { ConfigError } from '../../config/errors';
import type { FairnessPolicy } from '../../requestcontrol/flow-control';
import { definePlugin, NO_PARAMETERS, parameters } from '../plugin';

/** A policy plugin: its name and type, and what the queue should do. */
export class FlowControlPolicy {
  constructor(readonly type: string, readonly name: string) {}
}

export class FairnessPolicyPlugin extends FlowControlPolicy {
  constructor(type: string, name: string, readonly fairness: FairnessPolicy) {
    super(type, name);
  }
}

/**
 * llm-d-router v0.10.0's `UsageLimitPolicy` (`pkg/epp/framework/interface/flowcontrol/plugins.go`): the saturation
 * ceiling of every active priority level at once. Flow control holds a request of priority p while the detector's
 * saturation is at or above the ceiling of p's rank among the active levels (request-control.ts `ceilingFor`).
 */
export abstract class UsageLimitPolicyPlugin extends FlowControlPolicy {
  /**
   * Upstream's `ComputeLimit`: writes the ceiling of `priorities[i]` (the active levels, highest first) into
   * `ceilings[i]`, which the caller pre-fills with 1.0 (no gating), so an entry left unwritten fails open. Ceilings are
   * monotonically non-increasing down the list, since dispatch stops at the first band whose ceiling is reached.
   * Called once per dispatch decision (upstream: once per dispatch cycle, which releases at most one request), which
   * is the time base of a policy with a duty cycle (`soft-reflective-ceiling-policy`).
   */
  abstract computeLimit(saturation: number, priorities: readonly number[], ceilings: number[]): void;

  /**
   * The ceilings with any duty cycle counted open and no state advanced: what a request the gate has just released
   * re-checks against (request-control.ts `waitLoop`), so that a release on an open tick is not taken back by the
   * closed tick that follows. kvroute's own (upstream never re-checks a dispatched request); a stateless policy's are
   * its `computeLimit`'s.
   */
  steadyLimit(saturation: number, priorities: readonly number[], ceilings: number[]): void {
    this.computeLimit(saturation, priorities, ceilings);
  }
}

/** Upstream's framework buffer: one ceiling per priority, each pre-filled with 1.0, then the policy's. */
export function computeCeilings(policy: UsageLimitPolicyPlugin, saturation: number, priorities: readonly number[], steady = false): number[] {
  const ceilings = new Array<number>(priorities.length).fill(1);
  if (steady) policy.steadyLimit(saturation, priorities, ceilings);
  else policy.computeLimit(saturation, priorities, ceilings);
  return ceilings;
}

/** `static-usage-limit-policy`: `threshold` for every priority (upstream's `NewConstPolicy`). */
export class StaticUsageLimitPolicy extends UsageLimitPolicyPlugin {
  constructor(name: string, readonly threshold: number) {
    super('static-usage-limit-policy', name);
  }

  computeLimit(_saturation: number, _priorities: readonly number[], ceilings: number[]): void {
    ceilings.fill(this.threshold);
  }
}

/** `global-strict-fairness-policy` (`fairness/besthead.go`): the band's oldest request first, whatever its flow. */
export const globalStrictFairnessPolicy = definePlugin({
  type: 'global-strict-fairness-policy',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new FairnessPolicyPlugin('global-strict-fairness-policy', name, 'global-strict'),
});

/** `round-robin-fairness-policy` (`fairness/roundrobin.go`): each flow of the band in turn. */
export const roundRobinFairnessPolicy = definePlugin({
  type: 'round-robin-fairness-policy',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new FairnessPolicyPlugin('round-robin-fairness-policy', name, 'round-robin'),
});

/** `fcfs-ordering-policy` (`ordering/fcfs.go`): a flow's requests in arrival order. */
export const fcfsOrderingPolicy = definePlugin({
  type: 'fcfs-ordering-policy',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new FlowControlPolicy('fcfs-ordering-policy', name),
});

export interface StaticUsageLimitPolicyParameters {
  /**
   * The pool saturation (the detector's reading) at which dispatch stops, for every priority; 1.0 is the detector's
   * own "full". Must be > 0. @default 1
   */
  threshold?: number;
}

/**
 * `static-usage-limit-policy` (GIE v1.5.0 and llm-d-router v0.10.0 `usagelimits/usagelimitpolicy.go`): one fixed
 * ceiling for every priority.
 */
export const staticUsageLimitPolicy = definePlugin({
  type: 'static-usage-limit-policy',
  kinds: [],
  parameters: parameters<StaticUsageLimitPolicyParameters>((fields) => {
    const threshold = fields.number('threshold', 1, 0);
    if (threshold === 0) throw new ConfigError(fields.fieldPath('threshold'), 'must be > 0 (0 would hold every request until its deadline), got 0');
    return { threshold };
  }),
  create: (name, resolved) => new StaticUsageLimitPolicy(name, resolved.threshold),
});
