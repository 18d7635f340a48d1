/**
 * GIE v1.5.0's flow-control policy plugins, which a config's `flowControl` section refers to by name
 * (`priorityBands[].fairnessPolicyRef`, `orderingPolicyRef`, `usageLimitPolicyPluginRef`). They act at no scheduling
 * extension point: kvroute's flow-control queue (`src/requestcontrol/flow-control.ts`) does what they name.
 * - `global-strict-fairness-policy` (GIE's default): one FCFS order across a band's flows.
 * - `round-robin-fairness-policy`: flows take turns (kvroute's default when a band names none).
 * - `fcfs-ordering-policy`: first come first served within a flow, the only ordering kvroute has.
 * - `static-usage-limit-policy`: the saturation at which the pool counts as full (`threshold`, 1.0 by default).
 * GIE's `edf-ordering-policy` and `slo-deadline-ordering-policy` are not accepted: kvroute does not order by deadline.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/flowcontrol/{fairness,ordering,usagelimits} @ v1.5.0
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

export class UsageLimitPolicyPlugin extends FlowControlPolicy {
  constructor(name: string, readonly threshold: number) {
    super('static-usage-limit-policy', name);
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

/** `static-usage-limit-policy` (`usagelimits/usagelimitpolicy.go`): one fixed ceiling for every priority. */
export const staticUsageLimitPolicy = definePlugin({
  type: 'static-usage-limit-policy',
  kinds: [],
  parameters: parameters<StaticUsageLimitPolicyParameters>((fields) => {
    const threshold = fields.number('threshold', 1, 0);
    if (threshold === 0) throw new ConfigError(fields.fieldPath('threshold'), 'must be > 0 (0 would hold every request until its deadline), got 0');
    return { threshold };
  }),
  create: (name, resolved) => new UsageLimitPolicyPlugin(name, resolved.threshold),
});
