import type { CycleContext, ProfileHandler, ProfileOutcome } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';
import { SchedulingError } from '../types';

/**
 * `single-profile-handler`: runs every profile once (the loader guarantees there is exactly one) and makes its
 * result primary, re-throwing the profile's SchedulingError when it could not pick.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/multi/... single_profile_handler.go @ v0.5.1
 */
export class SingleProfileHandler implements ProfileHandler {
  readonly type = 'single-profile-handler';

  constructor(readonly name: string) {}

  pickProfiles(
    _cycle: CycleContext,
    profileNames: readonly string[],
    outcomes: ReadonlyMap<string, ProfileOutcome>,
  ): readonly string[] {
    return outcomes.size === 0 ? profileNames : [];
  }

  processResults(_cycle: CycleContext, outcomes: ReadonlyMap<string, ProfileOutcome>): { readonly primaryProfile: string } {
    if (outcomes.size !== 1) {
      throw new Error(`single-profile-handler expects exactly one profile result, got ${outcomes.size}`);
    }
    const [[primaryProfile, outcome]] = outcomes;
    if (outcome instanceof SchedulingError) throw outcome;
    return { primaryProfile };
  }
}

export const singleProfileHandler = definePlugin({
  type: 'single-profile-handler',
  kinds: ['profile-handler'],
  parameters: NO_PARAMETERS,
  create: (name) => new SingleProfileHandler(name),
});
