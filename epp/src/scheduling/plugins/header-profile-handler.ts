import type { CycleContext, PluginHandle, ProfileHandler, ProfileOutcome } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { SchedulingError } from '../types';

export interface HeaderProfileHandlerParameters {
  /** The request header naming the profile to run; matched case-insensitively, as header names are. @default "EPP-Profile" */
  headerName?: string;
  /** The profile run when the header is missing or blank and several are configured. @default "decode" */
  defaultProfile?: string;
}

/**
 * `header-profile-handler`: runs exactly one profile, the one the request's `headerName` header names (trimmed,
 * matched verbatim); with one profile configured, that one whatever the header; with the header missing or blank,
 * `defaultProfile`. A header naming no configured profile (or a `defaultProfile` that is not one) runs none, and the
 * request fails with the reason logged, as upstream logs it. Upstream's scheduler then answers "failed to run any
 * scheduler profile", a 429 its README calls misleading; kvroute answers 503 ('no-endpoints'), since waiting in the
 * flow-control queue, which kvroute's 429 reason ('saturated') asks for, cannot fix a header.
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/profilehandler/headerprofile/header_profile_handler.go, README.md @ v0.10.0
 */
export class HeaderProfileHandler implements ProfileHandler {
  readonly type = 'header-profile-handler';
  private readonly headerName: string;
  private readonly defaultProfile: string;

  constructor(readonly name: string, parameters: Required<HeaderProfileHandlerParameters>, private readonly handle: PluginHandle) {
    // Upstream's NewHeaderProfileHandler: trimmed, the header name lower-cased, blank ones defaulted.
    this.headerName = parameters.headerName.trim().toLowerCase() || 'epp-profile';
    this.defaultProfile = parameters.defaultProfile.trim() || 'decode';
  }

  pickProfiles(cycle: CycleContext, profileNames: readonly string[], outcomes: ReadonlyMap<string, ProfileOutcome>): readonly string[] {
    if (outcomes.size > 0) return [];
    if (profileNames.length === 1) return profileNames;
    const named = this.profileHeader(cycle);
    const resolved = named === '' ? this.defaultProfile : named;
    if (profileNames.includes(resolved)) return [resolved];
    this.handle.logger.info('no scheduling profile selected for request', {
      error: named === ''
        ? `header profile handler: defaultProfile ${JSON.stringify(this.defaultProfile)} is not a configured scheduling profile`
        : `header profile handler: no scheduling profile configured for ${JSON.stringify(this.headerName)} header value ${JSON.stringify(named)}`,
      resolvedProfileName: resolved,
      registeredProfiles: [...profileNames].sort(),
    });
    return [];
  }

  processResults(cycle: CycleContext, outcomes: ReadonlyMap<string, ProfileOutcome>): { readonly primaryProfile: string } {
    // Upstream's scheduler's words for a cycle that ran no profile (scheduling/scheduler.go Schedule); the reason is logged.
    if (outcomes.size === 0) throw new SchedulingError('no-endpoints', `failed to run any scheduler profile for request ${cycle.request.requestId}`);
    if (outcomes.size > 1) throw new Error(`header profile handler is intended to run a single profile per request, got ${outcomes.size}`);
    const [[primaryProfile, outcome]] = outcomes;
    if (outcome instanceof SchedulingError) throw outcome;
    return { primaryProfile };
  }

  private profileHeader(cycle: CycleContext): string {
    return (cycle.request.headers[this.headerName] ?? '').trim();
  }
}

export const headerProfileHandler = definePlugin({
  type: 'header-profile-handler',
  kinds: ['profile-handler'],
  parameters: parameters<HeaderProfileHandlerParameters>((fields) => ({
    headerName: fields.goString('headerName'),
    defaultProfile: fields.goString('defaultProfile'),
  })),
  create: (name, resolved, handle) => new HeaderProfileHandler(name, resolved, handle),
});
