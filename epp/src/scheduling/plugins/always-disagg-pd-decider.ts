import type { PdDecider } from '../pd-decider';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/**
 * `always-disagg-pd-decider` (llm-d-router v0.10.0 `profilehandler/disagg/always_disagg_pd_decider.go`): every
 * request gets a separate prefill when the handler has a prefill profile.
 */
class AlwaysDisaggPdDecider implements PdDecider {
  readonly type = 'always-disagg-pd-decider';
  constructor(readonly name: string) {}
  disaggregate(): boolean {
    return true;
  }
}

export const alwaysDisaggPdDecider = definePlugin({
  type: 'always-disagg-pd-decider',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new AlwaysDisaggPdDecider(name),
});
