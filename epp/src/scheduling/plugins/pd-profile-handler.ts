import { ConfigError } from '../../config/errors';
import { definePlugin, parameters } from '../plugin';
import { DisaggCycle, type HandlerVariant, type Resolved } from './disagg-profile-handler';

export interface PdProfileHandlerParameters {
  /** The decode profile's name. @default "decode" */
  decodeProfile?: string;
  /** The prefill profile's name. @default "prefill" */
  prefillProfile?: string;
  /**
   * The decider plugin's name (a `prefix-based-pd-decider` or `always-disagg-pd-decider` in the config's plugins).
   * @default "prefix-based-pd-decider"
   */
  deciderPluginName?: string;
  /**
   * Upstream's data-parallel mode (route every rank through this port, naming the rank in `x-data-parallel-host-port`),
   * deprecated there as not needed with Istio >= 1.28.1. Only 0 (off) is accepted. @default 0
   */
  primaryPort?: number;
  /**
   * The prefix producer whose match upstream's handler consumes: when set, it must name one in the config (an
   * `approx-prefix-cache-producer`, a `precise-prefix-cache-producer` or a `precise-prefix-cache-scorer`; under llm-d's
   * group also `approx-prefix-cache-producer` unlisted, which upstream makes), else the config is refused as upstream
   * refuses it. kvroute's decider reads the decode profile's prefix match either way. @default "" (the default producer)
   */
  prefixMatchInfoProducerName?: string;
  /** Deprecated upstream, where it was never used: `prefixPluginName` when that is empty. Checked, unused. */
  prefixPluginType?: string;
  /**
   * Deprecated upstream, where it was never used, but a plugin reference there: when set (else `prefixPluginType`), it
   * must name a plugin of the config as written, or the config is refused, as upstream's loader refuses it. Checked, unused.
   */
  prefixPluginName?: string;
}

const PD_VARIANT: HandlerVariant = {
  type: 'pd-profile-handler',
  deciderField: 'deciderPluginName',
  countDecision: (handle, name, type, model, decision) => handle.metrics.countPdDecision(name, type, model, decision),
  countsDecisionAtPick: true,
};

/**
 * `pd-profile-handler` (llm-d-router v0.10.0 `pkg/epp/framework/plugins/scheduling/profilehandler/disagg/
 * pd_profile_handler.go`, deprecated there for `disagg-profile-handler`): decode-first P/D with the decider named by
 * `deciderPluginName`. The decode profile picks the destination; when the decider says so for that pick, the prefill
 * profile picks a prefill pod. Unlike `disagg-profile-handler` it does not name the prefill pod in a header: llm-d's
 * data-parallel guide lists `prefill-header-handler` beside it for that (`test/integration/epp/wellknown_configs_test.go`
 * "wide-ep-lws-experimental-dp-aware"). Its decisions are counted in `llm_d_epp_pd_decision_total` and the deprecated
 * `llm_d_inference_scheduler_pd_decision_total` (`metrics.go` RecordPDDecision). A non-zero `primaryPort` (data
 * parallelism through one port) is refused: upstream deprecates it as not needed with Istio >= 1.28.1, and kvroute
 * routes to the rank's own port.
 */
export const pdProfileHandler = definePlugin({
  type: 'pd-profile-handler',
  kinds: ['profile-handler'],
  parameters: parameters<PdProfileHandlerParameters>((fields) => {
    const decode = fields.optionalString('decodeProfile') ?? 'decode';
    const prefill = fields.optionalString('prefillProfile') ?? 'prefill';
    const rawDecider = fields.raw('deciderPluginName');
    // Upstream's factory: an empty name is "decider plugin name is not defined"; absent is the default.
    if (rawDecider === '') throw new ConfigError(fields.fieldPath('deciderPluginName'), 'decider plugin name is not defined');
    const decider = fields.optionalString('deciderPluginName') ?? 'prefix-based-pd-decider';
    const primaryPort = fields.integer('primaryPort', 0, 0, 65535);
    if (primaryPort !== 0) {
      throw new ConfigError(
        fields.fieldPath('primaryPort'),
        `data parallelism through one primary port (${primaryPort}) is not supported: upstream deprecates it (not needed with Istio >= 1.28.1); list every rank's port in the InferencePool's targetPorts and drop primaryPort`,
      );
    }
    // Named producers were checked against the config's plugins before validation (`producer-form.ts`
    // checkPdHandlerReferences); "" is no name, as upstream's WithNonEmptyProducerName keeps the default.
    fields.goString('prefixMatchInfoProducerName', 'a plugin name');
    for (const unused of ['prefixPluginType', 'prefixPluginName']) fields.goString(unused);
    // Resolved in the parameters' own shape, so the normalized config reads back as it was written.
    return { decodeProfile: decode, prefillProfile: prefill, deciderPluginName: decider, primaryPort } as Required<PdProfileHandlerParameters>;
  }, (resolved, profileNames, path) => {
    if (!profileNames.includes(resolved.decodeProfile)) {
      throw new ConfigError(`${path}.decodeProfile`, `no scheduling profile named ${JSON.stringify(resolved.decodeProfile)}; profiles: ${profileNames.join(', ')}`);
    }
  }),
  create: (name, p, handle) => {
    const resolved: Resolved = {
      stageOrder: 'decode-first',
      profiles: { decode: p.decodeProfile, prefill: p.prefillProfile, encode: 'encode' },
      deciders: { prefill: p.deciderPluginName },
    };
    return new DisaggCycle(name, resolved, handle, PD_VARIANT);
  },
});
