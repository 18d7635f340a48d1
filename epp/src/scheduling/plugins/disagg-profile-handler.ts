import { ConfigError } from '../../config/errors';
import { FieldReader } from '../../config/fields';
import type { LLMRequest } from '../types';
import { setRequestHeaders, type PreRequest } from '../../requestcontrol/hooks';
import type { CycleContext, PluginHandle, ProfileHandler, ProfileOutcome } from '../framework';
import { isPdDecider, type PdDecider } from '../pd-decider';
import { definePlugin, parameters } from '../plugin';
import { SchedulingError, type SchedulingResult } from '../types';

/**
 * The request header naming the prefill pod, which llm-d's routing sidecar beside the decode pod reads to send the
 * prompt there first (llm-d-router v0.10.0 `pkg/common/routing/common.go` PrefillEndpointHeader).
 */
export const PREFILLER_HOST_PORT_HEADER = 'x-prefiller-host-port';

export type StageOrder = 'decode-first' | 'prefill-first';

export interface DisaggProfileHandlerParameters {
  /**
   * `decode-first` picks the decode pod, then asks the prefill decider; `prefill-first` always picks a prefill pod,
   * then the decode pod, and takes no decider (upstream also reads `decode`/`prefill` and any case, `-` or `_`).
   * @default "decode-first"
   */
  stageOrder?: string;
  /** Profile names. @default {decode: "decode", prefill: "prefill", encode: "encode"} */
  profiles?: { decode?: string; prefill?: string; encode?: string };
  /**
   * Decider plugins, by name, declared before this plugin: `prefill` (a `prefix-based-pd-decider` or
   * `always-disagg-pd-decider`) turns P/D disaggregation on; `encode` (E/P/D) is not supported here.
   * @default {} (no disaggregation: decode only)
   */
  deciders?: { prefill?: string; encode?: string };
}

export interface Resolved {
  readonly stageOrder: StageOrder;
  readonly profiles: { readonly decode: string; readonly prefill: string; readonly encode: string };
  readonly deciders: { readonly prefill?: string };
}

/**
 * What a handler built on this one (`pd-profile-handler`) does differently: its type, where its decider reference sits
 * in the config, and which decision counter it feeds.
 */
export interface HandlerVariant {
  readonly type: 'disagg-profile-handler' | 'pd-profile-handler';
  /** The config path of the decider reference, below the plugin's name. */
  readonly deciderField: string;
  /** `llm_d_epp_disagg_decision_total` (disagg-profile-handler) or `llm_d_epp_pd_decision_total` (pd-profile-handler). */
  readonly countDecision: (handle: PluginHandle, name: string, type: string, model: string, decision: 'decode-only' | 'prefill-decode') => void;
  /**
   * Counts the decider's answer when it is given (`pd_profile_handler.go` Pick: prefill-decode before the prefill
   * profile runs, whatever it then picks; nothing when the config has no prefill profile), not the cycle's outcome
   * (`disagg_profile_handler.go`: prefill-decode only when the prefill profile picked a pod).
   */
  readonly countsDecisionAtPick?: boolean;
}

const DISAGG_VARIANT: HandlerVariant = {
  type: 'disagg-profile-handler',
  deciderField: 'deciders.prefill',
  countDecision: (handle, name, type, model, decision) => handle.metrics.countDisaggDecision(name, type, model, decision),
};

/** upstream's ParseStageOrder: case, `-` and `_` ignored. */
function parseStageOrder(value: string | undefined, path: string): StageOrder {
  switch ((value ?? '').toLowerCase().replace(/[-_]/g, '')) {
    case '':
    case 'decodefirst':
    case 'decode':
      return 'decode-first';
    case 'prefillfirst':
    case 'prefill':
      return 'prefill-first';
    default:
      throw new ConfigError(path, `invalid stage order ${JSON.stringify(value)}, must be "decode-first" or "prefill-first"`);
  }
}

/** The flat parameters v0.9.0 deprecated (legacyDisaggProfileHandlerParameters), read when no nested one is given. */
const LEGACY_FIELDS = ['decodeProfile', 'prefillProfile', 'encodeProfile', 'prefillDeciderPluginName', 'encodeDeciderPluginName', 'deciderPluginName'] as const;

/**
 * `disagg-profile-handler` (llm-d-router v0.10.0 `pkg/epp/framework/plugins/scheduling/profilehandler/disagg/
 * disagg_profile_handler.go`): prefill/decode disaggregation. Decode-first (the default): the decode profile picks the
 * decode pod (the request's destination, the primary profile); then, when a prefill decider is configured and the
 * config has the prefill profile, the decider says whether this request gets a separate prefill, and if so the prefill
 * profile picks the prefill pod. Prefill-first: the prefill profile, then the decode profile, every request. As a
 * pre-request hook it names the prefill pod in `x-prefiller-host-port` (`ip:port`), which llm-d's routing sidecar in
 * the decode pod reads; a client's own value of that header is blanked when no prefill pod was picked, so a client
 * cannot send the prefill elsewhere. A decode profile that picks nothing fails the request with its own error; a
 * prefill profile that picks nothing leaves the request to decode alone. Each request's outcome is counted in
 * `llm_d_epp_disagg_decision_total` and its deprecated twin. E/P/D (`deciders.encode`) is refused: kvroute has no
 * encoder stage.
 */
export class DisaggCycle implements ProfileHandler {
  readonly type: HandlerVariant['type'];
  /** Its decider and the conditional-decode gate read the decode pick's prefix match (`disagg_profile_handler.go` Consumes). */
  readonly consumesPrefixMatch = true;
  private decider: PdDecider | undefined;

  constructor(readonly name: string, private readonly p: Resolved, private readonly handle: PluginHandle, private readonly variant: HandlerVariant = DISAGG_VARIANT) {
    this.type = variant.type;
  }

  /** The decode profile's pick is the destination (ProcessResults' PrimaryProfileName). */
  get primaryProfile(): string {
    return this.p.profiles.decode;
  }

  /** The prefill decider by name, in any position in the config (upstream builds a handler's deciders first). */
  resolveReferences(): void {
    const ref = this.p.deciders.prefill;
    if (ref === undefined) return;
    const plugin = this.handle.plugin?.(ref);
    const path = `${this.name}.parameters.${this.variant.deciderField}`;
    if (plugin === undefined) throw new ConfigError(path, `no plugin named ${JSON.stringify(ref)} (${this.variant.deciderField} plugin not found)`);
    if (!isPdDecider(plugin)) throw new ConfigError(path, `${JSON.stringify(ref)} is a ${plugin.type}, not a decider: prefix-based-pd-decider or always-disagg-pd-decider`);
    this.decider = plugin;
  }

  pickProfiles(cycle: CycleContext, profileNames: readonly string[], outcomes: ReadonlyMap<string, ProfileOutcome>): readonly string[] {
    const { decode, prefill } = this.p.profiles;
    const hasPrefill = profileNames.includes(prefill);
    if (this.p.stageOrder === 'prefill-first') {
      // Upstream's pickPrefillFirst: a decode profile that picked nothing ends the cycle uncounted.
      const decoded = outcomes.get(decode);
      if (decoded !== undefined) return decoded instanceof SchedulingError ? [] : this.decided(cycle, outcomes);
      if (hasPrefill && !outcomes.has(prefill)) return [prefill];
      return profileNames.includes(decode) ? [decode] : [];
    }
    const decoded = outcomes.get(decode);
    if (decoded === undefined) return profileNames.includes(decode) ? [decode] : [];
    if (decoded instanceof SchedulingError) return [];
    if (this.variant.countsDecisionAtPick === true) {
      // pd_profile_handler.go Pick: every profile ran (the prefill one too, whatever it picked, or the config has none):
      // nothing more, nothing counted; else the decider's answer, counted as given.
      if (!hasPrefill || outcomes.has(prefill)) return [];
      const split = this.decider?.disaggregate(cycle, decoded.targets[0]!) === true;
      this.variant.countDecision(this.handle, this.name, this.type, cycle.request.model || 'unknown', split ? 'prefill-decode' : 'decode-only');
      return split ? [prefill] : [];
    }
    // Asked once: declining ends the cycle below, so the handler is not asked again.
    if (hasPrefill && !outcomes.has(prefill) && this.decider?.disaggregate(cycle, decoded.targets[0]!) === true) return [prefill];
    return this.decided(cycle, outcomes);
  }

  /** The cycle is over: count what it decided (upstream's RecordDisaggDecision), then run nothing more. */
  private decided(cycle: CycleContext, outcomes: ReadonlyMap<string, ProfileOutcome>): readonly string[] {
    const prefill = outcomes.get(this.p.profiles.prefill);
    const used = prefill !== undefined && !(prefill instanceof SchedulingError);
    this.variant.countDecision(this.handle, this.name, this.type, cycle.request.model || 'unknown', used ? 'prefill-decode' : 'decode-only');
    return [];
  }

  processResults(_cycle: CycleContext, outcomes: ReadonlyMap<string, ProfileOutcome>): { readonly primaryProfile: string } {
    const decode = outcomes.get(this.p.profiles.decode);
    if (decode instanceof SchedulingError) throw decode;
    if (decode === undefined) throw new SchedulingError('no-endpoints', 'failed to find available decode workers');
    return { primaryProfile: this.p.profiles.decode };
  }

  /** The profile whose pick is the prefill pod. */
  protected get prefillProfile(): string {
    return this.p.profiles.prefill;
  }
}

/**
 * `disagg-profile-handler` itself: the cycle above, and as a pre-request hook the prefill pod's name for the routing
 * sidecar (`pd-profile-handler` runs the same cycle without it).
 */
class DisaggProfileHandler extends DisaggCycle implements PreRequest {
  preRequest(request: LLMRequest, result: SchedulingResult): void {
    const prefill = result.profileTargets?.get(this.prefillProfile);
    if (prefill !== undefined) setRequestHeaders(request, { [PREFILLER_HOST_PORT_HEADER]: prefill.endpoint.key });
    else if (request.headers[PREFILLER_HOST_PORT_HEADER] !== undefined) setRequestHeaders(request, { [PREFILLER_HOST_PORT_HEADER]: '' });
  }
}

function optionalName(fields: FieldReader, key: string): string | undefined {
  return fields.raw(key) == null ? undefined : fields.requiredString(key);
}

export const disaggProfileHandler = definePlugin({
  type: 'disagg-profile-handler',
  kinds: ['profile-handler', 'pre-request'],
  parameters: parameters<DisaggProfileHandlerParameters>((fields) => {
    const legacy = LEGACY_FIELDS.filter((k) => fields.has(k));
    const nested = (['profiles', 'deciders'] as const).filter((k) => fields.has(k));
    if (legacy.length > 0 && nested.length > 0) {
      throw new ConfigError(fields.fieldPath(legacy[0]!), `use one format exclusively: either nested profiles/deciders (${nested.join(', ')}) or the deprecated flat fields (${legacy.join(', ')})`);
    }
    // A plain Go string upstream: "" (or absent) is decode-first there too.
    const stageOrder = parseStageOrder(fields.goString('stageOrder'), fields.fieldPath('stageOrder'));
    let decode: string | undefined;
    let prefill: string | undefined;
    let encode: string | undefined;
    let prefillDecider: string | undefined;
    let encodeDecider: string | undefined;
    let encodePath = fields.fieldPath('deciders.encode');
    if (legacy.length > 0) {
      decode = optionalName(fields, 'decodeProfile');
      prefill = optionalName(fields, 'prefillProfile');
      encode = optionalName(fields, 'encodeProfile');
      // toDisaggParams: prefillDeciderPluginName wins over deciderPluginName.
      prefillDecider = optionalName(fields, 'prefillDeciderPluginName') ?? optionalName(fields, 'deciderPluginName');
      encodeDecider = optionalName(fields, 'encodeDeciderPluginName');
      encodePath = fields.fieldPath('encodeDeciderPluginName');
    } else {
      const profiles = FieldReader.ofOptionalMap(fields.raw('profiles'), fields.fieldPath('profiles'));
      decode = optionalName(profiles, 'decode');
      prefill = optionalName(profiles, 'prefill');
      encode = optionalName(profiles, 'encode');
      profiles.finish();
      const deciders = FieldReader.ofOptionalMap(fields.raw('deciders'), fields.fieldPath('deciders'));
      prefillDecider = optionalName(deciders, 'prefill');
      encodeDecider = optionalName(deciders, 'encode');
      deciders.finish();
    }
    for (const k of LEGACY_FIELDS) fields.raw(k);
    if (encodeDecider !== undefined) {
      throw new ConfigError(encodePath, 'encode disaggregation (E/P/D) is not supported: kvroute schedules decode and prefill only; drop the encode decider');
    }
    if (stageOrder === 'prefill-first' && prefillDecider !== undefined) {
      throw new ConfigError(fields.fieldPath('stageOrder'), 'prefill decider is not supported in prefill-first stage order');
    }
    const resolved: Resolved = {
      stageOrder,
      profiles: { decode: decode ?? 'decode', prefill: prefill ?? 'prefill', encode: encode ?? 'encode' },
      deciders: prefillDecider !== undefined ? { prefill: prefillDecider } : {},
    };
    return resolved as unknown as Required<DisaggProfileHandlerParameters>;
  }, (resolved, profileNames, path) => {
    const decode = (resolved as unknown as Resolved).profiles.decode;
    // Upstream would fail every request ("failed to find available decode workers"); refused at start-up instead.
    if (!profileNames.includes(decode)) {
      throw new ConfigError(`${path}.profiles.decode`, `no scheduling profile named ${JSON.stringify(decode)}; profiles: ${profileNames.join(', ')}`);
    }
  }),
  create: (name, p, handle) => new DisaggProfileHandler(name, p as unknown as Resolved, handle),
});
