/**
 * What `disagg-profile-handler` asks before running the prefill profile: whether this request, whose decode pod the
 * decode profile picked, is worth a separate prefill (llm-d-router v0.10.0
 * `pkg/epp/framework/plugins/scheduling/profilehandler/disagg/decider_plugin.go` deciderPlugin.disaggregate).
 */
import type { EndpointSnapshot } from '../datastore/types';
import type { CycleContext, Plugin } from './framework';

export interface PdDecider extends Plugin {
  /** True to run the prefill profile for this request, whose decode pick is `decodeTarget`. */
  disaggregate(cycle: CycleContext, decodeTarget: EndpointSnapshot): boolean;
}

export function isPdDecider(plugin: Plugin | undefined): plugin is PdDecider {
  return plugin !== undefined && typeof (plugin as Partial<PdDecider>).disaggregate === 'function';
}
