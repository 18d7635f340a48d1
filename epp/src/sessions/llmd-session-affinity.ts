/**
 * llm-d-router v0.10.0's session-affinity parameters, shared by kvroute's `session-affinity-scorer` and
 * `session-affinity-filter` (as upstream shares them between its scorer and filter):
 *
 *   strategy: encoded_endpoint_header (default) | session_id
 *   encodedEndpointHeaderConfig: {header: x-session-token}
 *   sessionIdConfig: {sources: [{header: x-session-id} | {attribute: …}], evictionTtlSeconds: 300, evictionSweepSeconds: 10}
 *   profileName: ""
 *
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/util/sessionaffinity/header.go @ v0.10.0
 *   (EncodedEndpointHeaderConfig, DefaultHeader, NormalizeHeader, DecodePodName)
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/util/sessionaffinity/session_id.go @ v0.10.0
 *   (SessionIDConfig, SessionIDSource, ApplyDefaults, Validate)
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/scorer/sessionaffinity/session_affinity.go @ v0.10.0
 *   and filter/sessionaffinity/session_affinity.go @ v0.10.0 (the `parameters` struct, its defaults and validation)
 *
 * Parsed here with kvroute's strict reader (unknown fields refused, each error naming its field). Upstream applies
 * defaults and validation only to the block its strategy selects and ignores the other; so does this, except that the
 * ignored block must still be well-formed (its fields typed as upstream's struct decodes them).
 */
import { ConfigError, describeValue } from '../config/errors';
import { FieldReader } from '../config/fields';
import type { Endpoint } from '../datastore/types';
import { stateKey } from '../scheduling/framework';
import { AGENT_IDENTITY_ATTRIBUTE } from '../scheduling/plugins/agent-identity';
import { SESSION_ID_ATTRIBUTE_PREFIX } from '../scheduling/plugins/session-id-producer';
import type { LLMRequest } from '../scheduling/types';

export const STRATEGY_ENCODED_ENDPOINT_HEADER = 'encoded_endpoint_header';
export const STRATEGY_SESSION_ID = 'session_id';
export const SESSION_AFFINITY_STRATEGIES = [STRATEGY_ENCODED_ENDPOINT_HEADER, STRATEGY_SESSION_ID] as const;
export type SessionAffinityStrategy = (typeof SESSION_AFFINITY_STRATEGIES)[number];

/** `sessionutil.DefaultHeader` (header.go @ v0.10.0). */
export const DEFAULT_ENCODED_ENDPOINT_HEADER = 'x-session-token';
/** `sessionutil.DefaultSessionIDHeader` (session_id.go @ v0.10.0). */
export const DEFAULT_SESSION_ID_HEADER = 'x-session-id';
/** `defaultEvictionTTLSeconds` and `defaultEvictionSweepSeconds` (session_id.go @ v0.10.0). */
export const DEFAULT_EVICTION_TTL_SECONDS = 300;
export const DEFAULT_EVICTION_SWEEP_SECONDS = 10;

/** The profile names a kvroute session-affinity plugin accepts besides the config's own (single) profile's name. */
export const PRIMARY_PROFILE_ALIASES: readonly string[] = ['', 'decode'];

export interface EncodedEndpointHeaderConfig {
  /** Request and response header carrying base64("namespace/name"). Lower-cased and trimmed; empty means the default. @default "x-session-token" */
  header?: string;
}

/** One place a session id is read from: exactly one of `header` or `attribute`. */
export interface SessionIdSource {
  /** A request header name. */
  header?: string;
  /**
   * A request attribute published by a plugin: `agent-identity`, which the config's `agent-identity` plugins publish
   * (their headers are read in its place), or `SessionIDDataKey/<name>`, which the `session-id-producer` of that name
   * publishes (its header or cookie read in its place); with no such plugin in the config it is never set, as
   * upstream's. Any other attribute is refused: no kvroute plugin publishes it.
   */
  attribute?: string;
}

/**
 * Where a session plugin reads a session id: a request header (lower-case name), or a cookie of the `cookie` header (a
 * `session-id-producer`'s `cookieName`).
 */
export type SessionIdRead = string | { readonly cookie: string };

export interface SessionIdConfig {
  /** Where the session id is read from, in priority order; the first non-empty wins. @default [{header: x-session-id}] */
  sources?: SessionIdSource[];
  /** How long a binding survives unused, in seconds (0 means the default). @default 300 */
  evictionTtlSeconds?: number;
  /**
   * How often upstream sweeps expired bindings, in seconds (0 means the default). Accepted and checked; kvroute's
   * table checks a binding's expiry when it is read, so a binding expires exactly after `evictionTtlSeconds` and no
   * sweep is needed. @default 10
   */
  evictionSweepSeconds?: number;
}

/** The upstream parameter names, in the order they are read. */
export const UPSTREAM_SESSION_AFFINITY_FIELDS = ['strategy', 'encodedEndpointHeaderConfig', 'sessionIdConfig', 'profileName'] as const;

/** Whether any of llm-d-router v0.10.0's session-affinity parameter names is set. */
export function hasUpstreamSessionAffinityFields(fields: FieldReader): boolean {
  return UPSTREAM_SESSION_AFFINITY_FIELDS.some((key) => fields.has(key));
}

/** `NormalizeHeader` (header.go @ v0.10.0): lower-cased and trimmed, empty falling back to `fallback`. */
export function normalizeHeader(name: string | undefined, fallback: string): string {
  const header = (name ?? '').trim().toLowerCase();
  return header === '' ? fallback : header;
}

/** `strategy`, or undefined when absent (so configs that never set it render unchanged). */
export function parseStrategy(fields: FieldReader): SessionAffinityStrategy | undefined {
  return fields.optionalOneOf('strategy', SESSION_AFFINITY_STRATEGIES);
}

/** `profileName`: a string (empty allowed, as upstream's zero value); whether it names a profile is checked with the config (`checkProfileName`). */
export function parseProfileName(fields: FieldReader): string | undefined {
  const value = fields.raw('profileName');
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ConfigError(fields.fieldPath('profileName'), `must be a string, got ${describeValue(value)}`);
  return value;
}

/**
 * Refuses a `profileName` that names no profile of the config. Accepted: empty (upstream: "defaults to the primary
 * (decode) pod"), `decode`, and any scheduling profile's name (under `disagg-profile-handler` or `pd-profile-handler`,
 * `prefill` pins the prefill pick).
 * Upstream (`ResolvePodToWrite`, header.go @ v0.10.0) would write nothing for a profile that did not run.
 */
export function checkProfileName(profileName: string | undefined, profileNames: readonly string[], path: string): void {
  if (profileName === undefined || PRIMARY_PROFILE_ALIASES.includes(profileName) || profileNames.includes(profileName)) return;
  const accepted = [...PRIMARY_PROFILE_ALIASES.filter((n) => n !== ''), ...profileNames].map((n) => JSON.stringify(n)).join(', ');
  throw new ConfigError(
    path,
    `must be empty or name the profile this plugin pins (${accepted}), got ${JSON.stringify(profileName)}: the config has no such ` +
      'scheduling profile, so there is no pick it could pin',
  );
}

/**
 * Whether a profile's pick is the one a session plugin binds: the profile its `profileName` names, else the primary
 * profile's (llm-d-router v0.10.0 `sessionaffinity/session_id.go` pickedPodName, `header.go` ResolvePodToWrite: the
 * configured profile's result, else the primary's). With one profile every pick is the primary's.
 */
export function bindsPickOf(profileName: string | undefined, result: { readonly profile?: string; readonly primary?: boolean }): boolean {
  if (profileName !== undefined && !PRIMARY_PROFILE_ALIASES.includes(profileName)) return result.profile === undefined || result.profile === profileName;
  return result.primary !== false;
}

/**
 * The profile whose pick an `encoded_endpoint_header` instance writes on the response instead of the pod that served
 * it: a `profileName` other than empty or `decode` (llm-d-router v0.10.0 `header.go` ResolvePodToWrite: that profile's
 * first pick, and no header when it picked nothing, as a decode-only request's prefill profile). Undefined: the pod
 * that served the response, the primary profile's pick.
 */
export function scopedProfileName(profileName: string | undefined): string | undefined {
  return profileName === undefined || PRIMARY_PROFILE_ALIASES.includes(profileName) ? undefined : profileName;
}

/**
 * The pod an `encoded_endpoint_header` response token names, as upstream's `ResolvePodToWrite` chooses it
 * (util/sessionaffinity/header.go @ v0.10.0): the pod that served the response, or with a `profileName` profile
 * (llm-d's `prefill` instance) that profile's pick, kept at its post-cycle, and none when it picked nothing (a profile
 * that picked nothing has no post-cycle call). One per plugin instance: the pick is kept under its own key.
 */
export class TokenPod {
  private readonly scoped: boolean;
  private readonly pickKey;

  constructor(owner: string, profileName: string | undefined) {
    this.scoped = scopedProfileName(profileName) !== undefined;
    this.pickKey = stateKey<Endpoint>(`${owner} profile pick`);
  }

  /** At the profile's post-cycle: keeps its pick for the response, when the token names that profile's. */
  keep(request: LLMRequest, pick: Endpoint): void {
    if (this.scoped) request.attributes?.set(this.pickKey, pick);
  }

  /** At the response: the pod its token names (`target`, the one that served it, unless scoped), if any. */
  of(request: LLMRequest, target: Endpoint): Endpoint | undefined {
    return this.scoped ? request.attributes?.get(this.pickKey) : target;
  }
}

/** `encodedEndpointHeaderConfig`, or undefined when absent. `header: ""` is upstream's zero value: the default. */
export function parseEncodedEndpointHeaderConfig(fields: FieldReader): EncodedEndpointHeaderConfig | undefined {
  const raw = fields.raw('encodedEndpointHeaderConfig');
  if (raw === undefined || raw === null) return undefined;
  const f = FieldReader.ofMap(raw, fields.fieldPath('encodedEndpointHeaderConfig'));
  const header = f.raw('header');
  if (header !== undefined && header !== null && typeof header !== 'string') {
    throw new ConfigError(f.fieldPath('header'), `must be a header name, got ${describeValue(header)}`);
  }
  f.finish();
  return { header: normalizeHeader(header ?? undefined, DEFAULT_ENCODED_ENDPOINT_HEADER) };
}

/**
 * `sessionIdConfig`, or undefined when absent, kept as written (defaults are applied where it is used:
 * `sessionIdHeaders`, `sessionIdTtlMs`, so a config renders unchanged). `selected`: the strategy is `session_id`, so
 * upstream validates it (`Validate`); otherwise only the shape is checked.
 */
export function parseSessionIdConfig(fields: FieldReader, selected: boolean): SessionIdConfig | undefined {
  const raw = fields.raw('sessionIdConfig');
  if (raw === undefined || raw === null) return undefined;
  const f = FieldReader.ofMap(raw, fields.fieldPath('sessionIdConfig'));
  const sources = parseSources(f, selected);
  // Upstream decodes float64s and treats 0 as unset (ApplyDefaults); a negative value fails Validate.
  const seconds = (key: 'evictionTtlSeconds' | 'evictionSweepSeconds', fallback: number): number | undefined => {
    const value = f.raw(key);
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || (selected && value < 0)) {
      throw new ConfigError(f.fieldPath(key), `must be a number of seconds > 0 (0 means ${fallback}), got ${describeValue(value)}`);
    }
    return value;
  };
  const evictionTtlSeconds = seconds('evictionTtlSeconds', DEFAULT_EVICTION_TTL_SECONDS);
  const evictionSweepSeconds = seconds('evictionSweepSeconds', DEFAULT_EVICTION_SWEEP_SECONDS);
  f.finish();
  return {
    ...(sources !== undefined ? { sources } : {}),
    ...(evictionTtlSeconds !== undefined ? { evictionTtlSeconds } : {}),
    ...(evictionSweepSeconds !== undefined ? { evictionSweepSeconds } : {}),
  };
}

function parseSources(f: FieldReader, selected: boolean): SessionIdSource[] | undefined {
  const raw = f.raw('sources');
  const path = f.fieldPath('sources');
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) throw new ConfigError(path, `must be a list of {header} or {attribute}, got ${describeValue(raw)}`);
  if (raw.length === 0) return undefined; // upstream: an empty list is unset (ApplyDefaults)
  return raw.map((item, index) => {
    const s = FieldReader.ofMap(item, `${path}[${index}]`);
    const header = s.raw('header');
    const attribute = s.raw('attribute');
    for (const [key, value] of [['header', header], ['attribute', attribute]] as const) {
      if (value !== undefined && value !== null && typeof value !== 'string') {
        throw new ConfigError(s.fieldPath(key), `must be a string, got ${describeValue(value)}`);
      }
    }
    s.finish();
    const hasHeader = typeof header === 'string' && header !== '';
    const hasAttribute = typeof attribute === 'string' && attribute !== '';
    if (selected && hasHeader === hasAttribute) {
      throw new ConfigError(`${path}[${index}]`, 'exactly one of header or attribute must be set');
    }
    if (selected && hasAttribute && !isPublishedAttribute(attribute as string)) {
      throw new ConfigError(
        s.fieldPath('attribute'),
        `only ${JSON.stringify(AGENT_IDENTITY_ATTRIBUTE)} (by the agent-identity plugin) and ${JSON.stringify(`${SESSION_ID_ATTRIBUTE_PREFIX}<name>`)} ` +
          `(by the session-id-producer of that name) are published, so ${JSON.stringify(attribute)} would never ` +
          'be set: read the session id from a request header instead ({header: <name>})',
      );
    }
    if (hasHeader) return { header: normalizeHeader(header as string, DEFAULT_SESSION_ID_HEADER) };
    return hasAttribute ? { attribute: attribute as string } : {};
  });
}

/** Whether an attribute is one a kvroute plugin publishes (`SessionIdSource.attribute`). */
function isPublishedAttribute(attribute: string): boolean {
  return attribute === AGENT_IDENTITY_ATTRIBUTE || (attribute.startsWith(SESSION_ID_ATTRIBUTE_PREFIX) && attribute.length > SESSION_ID_ATTRIBUTE_PREFIX.length);
}

/**
 * Where a selected `sessionIdConfig`'s sources read, in order: upstream's default (`x-session-id`) when unset; an
 * attribute source stands for `attributeReads(attribute)`, where the config's plugins publishing it read (none without
 * one: upstream's attribute is then never set).
 */
export function sessionIdReads(config: SessionIdConfig | undefined, attributeReads: (attribute: string) => readonly SessionIdRead[] = () => []): SessionIdRead[] {
  const sources = config?.sources ?? [{ header: DEFAULT_SESSION_ID_HEADER }];
  return sources.flatMap((s) => (s.header !== undefined ? [s.header] : s.attribute !== undefined ? [...attributeReads(s.attribute)] : []));
}

/** Whether a selected `sessionIdConfig` reads a request attribute (where it is read from is known once plugins are built). */
export function readsAttributes(config: SessionIdConfig | undefined): boolean {
  return config?.sources?.some((s) => s.attribute !== undefined) ?? false;
}

/** A selected `sessionIdConfig`'s TTL in milliseconds (upstream's default 300 s when unset or 0). */
export function sessionIdTtlMs(config: SessionIdConfig | undefined): number {
  const seconds = config?.evictionTtlSeconds;
  return Math.max(1, Math.round((seconds === undefined || seconds === 0 ? DEFAULT_EVICTION_TTL_SECONDS : seconds) * 1000));
}

/**
 * Refuses a config that names one setting twice, in kvroute's name and in upstream's: the error names both fields.
 */
export function refuseBothNames(fields: FieldReader, kvrouteKey: string, upstreamPath: string, upstreamSet: boolean): void {
  if (!upstreamSet || !fields.has(kvrouteKey)) return;
  throw new ConfigError(
    fields.fieldPath(kvrouteKey),
    `set either ${kvrouteKey} (kvroute's name) or ${upstreamPath} (llm-d-router v0.10.0's name for the same setting), not both`,
  );
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * `DecodePodName` (header.go @ v0.10.0): the `namespace/name` an unsigned token encodes (Go's StdEncoding: padded,
 * standard alphabet), or undefined when the token is empty or not base64.
 */
export function decodeEncodedEndpoint(token: string | undefined): string | undefined {
  if (token === undefined || token === '' || !BASE64.test(token)) return undefined;
  return Buffer.from(token, 'base64').toString('utf8');
}

/** The token `WriteResponseHeader` (header.go @ v0.10.0) sets: base64 of the pod's `namespace/name`. */
export function encodeEndpoint(namespacedName: string): string {
  return Buffer.from(namespacedName, 'utf8').toString('base64');
}
