import { LRUCache } from 'lru-cache';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import { parseDuration, type Duration } from '../../config/duration';
import { ConfigError, describeValue } from '../../config/errors';
import { FieldReader } from '../../config/fields';
import type { PostResponse, ResponseInfo } from '../../requestcontrol/hooks';
import {
  checkProfileName, decodeEncodedEndpoint, DEFAULT_ENCODED_ENDPOINT_HEADER, encodeEndpoint, parseEncodedEndpointHeaderConfig,
  parseProfileName, parseSessionIdConfig, parseStrategy, sessionIdReads, TokenPod, sessionIdTtlMs, STRATEGY_SESSION_ID,
  readsAttributes,
  type EncodedEndpointHeaderConfig, type SessionAffinityStrategy, type SessionIdConfig, type SessionIdRead,
  bindsPickOf,
} from '../../sessions/llmd-session-affinity';
import { createBindingTable } from '../../sessions/bindings';
import { readSecretBytes } from '../../sessions/store';
import { SessionTokenSigner } from '../../sessions/token';
import { stateKey, type CycleContext, type PluginHandle, type PostCycle, type ProfileRunResult, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { publishedAttributeReads } from './session-id-producer';
import type { LLMRequest } from '../types';
import { endpointIdentity, sessionIdKey, sessionKeyOf } from './session-affinity-filter';

/** Sessions the `session_id` strategy remembers at most (upstream's map is unbounded): the filter's default `capacity`. */
export const SESSION_ID_SCORER_CAPACITY = 65536;

/**
 * Where the signing keys come from: a file (a mounted Secret key) or an environment variable, never the config itself
 * (a ConfigMap). The key must hold at least 32 bytes.
 */
export interface TokenSigningParameters {
  /** File holding the signing key (trailing newline dropped). Exactly one of keyFile and keyEnv. */
  keyFile?: string;
  /** Environment variable holding the signing key. */
  keyEnv?: string;
  /** File holding the previous key, still accepted (never issued) during a rotation. */
  previousKeyFile?: string;
  /** Environment variable holding the previous key. */
  previousKeyEnv?: string;
  /** How long an issued token is honoured; a response re-issues it once half of that has passed. @default "24h" */
  ttl?: Duration;
}

export interface SessionAffinityScorerParameters {
  /**
   * Sign the tokens (kvroute's extension). Without it the token is llm-d's, unsigned: base64("namespace/pod"), which
   * any client can forge to pick its pod. With it only tokens an EPP holding the key issued are honoured. Only with the
   * `encoded_endpoint_header` strategy (`session_id` hands out no token).
   */
  tokenSigning?: TokenSigningParameters;
  /**
   * llm-d-router v0.10.0's algorithm (scorer/sessionaffinity/session_affinity.go): `encoded_endpoint_header` (the
   * client echoes the token the response carried) or `session_id` (an opaque client id bound to a pod server-side).
   * @default "encoded_endpoint_header"
   */
  strategy?: SessionAffinityStrategy;
  /** Upstream's config of `encoded_endpoint_header`: `header`. @default {header: "x-session-token"} */
  encodedEndpointHeaderConfig?: EncodedEndpointHeaderConfig;
  /** Upstream's config of `session_id`: `sources`, `evictionTtlSeconds`, `evictionSweepSeconds`. */
  sessionIdConfig?: SessionIdConfig;
  /**
   * Upstream's profile whose pick this instance binds (`session_id`) or writes the token of (`encoded_endpoint_header`:
   * none when it picked nothing): a profile of the config; empty or `decode` mean the primary profile's pick (the only
   * one with one profile; the decode profile's under `disagg-profile-handler`), the pod that served the response; any
   * other name is refused when the plugins are built. @default ""
   */
  profileName?: string;
}

/** The parsed parameters: each absent unless configured (so configs render unchanged). */
export interface ResolvedSessionAffinityScorerParameters {
  readonly tokenSigning?: TokenSigningParameters;
  readonly strategy?: SessionAffinityStrategy;
  readonly encodedEndpointHeaderConfig?: EncodedEndpointHeaderConfig;
  readonly sessionIdConfig?: SessionIdConfig;
  readonly profileName?: string;
}

/** What the `session_id` strategy's score saw, for its post-cycle binding (upstream's `boundPodPresence`). */
interface SessionIdChoice {
  readonly key: string;
  /** The endpoint the session was bound to (its `endpointIdentity`), if any. */
  readonly boundPod?: string;
  /** Whether that endpoint was among the candidates scored. */
  readonly present: boolean;
}

/** What a request's token says, once verified: the pod it names and when a response should renew it (unix seconds). */
interface PresentedToken {
  readonly pod?: string;
  /** Half the token's lifetime, or 0 when it was signed with the previous key (renewed at once onto the new key). */
  readonly renewAt?: number;
}

/**
 * `session-affinity-scorer` (llm-d semantics), with llm-d-router v0.10.0's two strategies
 * (pkg/epp/framework/plugins/scheduling/scorer/sessionaffinity/ @ v0.10.0: session_affinity.go,
 * encoded_endpoint_header.go, session_id_header.go):
 *
 * `encoded_endpoint_header` (the default): the request's `x-session-token` (or `encodedEndpointHeaderConfig.header`)
 * names a pod; that pod scores 1, all
 * others 0, and responses carry the token of the pod that served them. A soft preference: its weight decides whether
 * prefix and load scores can outvote it. A token that does not decode (or, when signing, does not verify) scores 0
 * everywhere.
 * - Unsigned (the default): llm-d's token, base64("namespace/pod"), set on every response; interoperates with llm-d's
 *   EPP. @see llm-d/llm-d-inference-scheduler: pkg/plugins/scorer/session_affinity.go @ v0.2.1 (unchanged to v0.8.0)
 * - Signed (`tokenSigning`): the same header, with an expiry and an HMAC (`src/sessions/token.ts`), honoured by every
 *   replica holding the key without any shared store. A response sets the header only when the request's token is
 *   missing, invalid, for another pod, past half its lifetime or signed with the previous key, so a session's token
 *   stays the same between renewals (as llm-d's later cookie form, `llm-d-session`, is set only when it differs:
 *   `ResponseReceived` in session_affinity.go at commit 0b592cd3, after v0.8.0).
 *
 * `session_id` (upstream's `SessionIDHeader`, util/sessionaffinity/session_id.go @ v0.10.0): the first non-empty of
 * `sessionIdConfig.sources`' headers is an opaque session id, bound server-side to the pod that served it, in the
 * session-affinity filter's table (keyed by the id's digest, `sessionKeyOf`; at most SESSION_ID_SCORER_CAPACITY
 * sessions, least recently used dropped; expiring `evictionTtlSeconds` after the binding was last refreshed). A binding
 * names the pod by `endpointIdentity` (namespace/name, upstream's `md.ID.String()`), not by address. Its bound
 * pod scores 1 while a candidate; an unbound session, or one whose pod is not a candidate, scores 0 everywhere. After
 * the pick a new session is bound, a session picked onto its pod refreshed, and one whose pod was not a candidate moved
 * to the pick; one whose pod was a candidate but lost the vote keeps its binding (upstream migrates only on a
 * confirmed absence). Nothing is written on the response.
 */
export class SessionAffinityScorer implements Scorer, PostResponse, PostCycle {
  readonly type = 'session-affinity-scorer';
  private signer: SessionTokenSigner | undefined;
  /** The pod a request's token validly names, computed once per request for the scorer and the response hook. */
  private readonly tokenKey = stateKey<PresentedToken>('session-affinity-scorer token');
  private readonly choiceKey = stateKey<SessionIdChoice>('session-affinity-scorer session_id choice');
  /** The pod an `encoded_endpoint_header` response token names (the served one, or a `profileName` profile's pick). */
  private readonly responsePod: TokenPod;
  private readonly strategy: SessionAffinityStrategy;
  /** The encoded_endpoint_header strategy's request and response header. */
  private readonly header: string;
  /** Where the session_id strategy reads a session id, in priority order, and its bindings (session key -> endpointIdentity). */
  private sessionReads: readonly SessionIdRead[];
  private readonly bindings: LRUCache<string, string> | undefined;

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedSessionAffinityScorerParameters,
    private readonly handle: PluginHandle,
  ) {
    this.strategy = parameters.strategy ?? 'encoded_endpoint_header';
    this.responsePod = new TokenPod('session-affinity-scorer', parameters.profileName);
    this.header = parameters.encodedEndpointHeaderConfig?.header ?? DEFAULT_ENCODED_ENDPOINT_HEADER;
    this.sessionReads = sessionIdReads(parameters.sessionIdConfig);
    this.bindings = this.strategy === STRATEGY_SESSION_ID
      ? createBindingTable(SESSION_ID_SCORER_CAPACITY, sessionIdTtlMs(parameters.sessionIdConfig), handle.now)
      : undefined;
  }

  /**
   * A `sessionIdConfig.sources` entry `{attribute: agent-identity}` reads the config's `agent-identity` plugins' headers
   * there; `{attribute: SessionIDDataKey/<name>}` the header or cookie of the `session-id-producer` named so.
   */
  resolveReferences(): void {
    const config = this.parameters.sessionIdConfig;
    if (this.strategy !== STRATEGY_SESSION_ID || !readsAttributes(config)) return;
    this.sessionReads = sessionIdReads(config, publishedAttributeReads(this.handle.plugins?.() ?? []));
  }

  /** Reads the signing keys; a missing or short key stops start-up with the field named. */
  async start(): Promise<void> {
    const signing = this.parameters.tokenSigning;
    if (signing === undefined) return;
    const key = readKey(signing.keyFile, signing.keyEnv, 'tokenSigning.keyFile', 'tokenSigning.keyEnv');
    if (key === undefined) throw new Error('session-affinity-scorer: tokenSigning needs keyFile or keyEnv');
    const previous = readKey(signing.previousKeyFile, signing.previousKeyEnv, 'tokenSigning.previousKeyFile', 'tokenSigning.previousKeyEnv');
    try {
      this.signer = new SessionTokenSigner(key, previous, Math.max(1, Math.floor(parseDuration(signing.ttl ?? '24h') / 1000)));
    } catch (e) {
      throw new Error(`session-affinity-scorer: ${(e as Error).message}`);
    }
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    if (this.bindings !== undefined) return this.scoreSessionId(cycle, candidates, this.bindings);
    const wanted = this.tokenPod(cycle.request).pod;
    return candidates.map((candidate) => (wanted !== undefined && endpointIdentity(candidate.endpoint) === wanted ? 1 : 0));
  }

  /** `session_id`: upstream's `Choose` (session_id.go @ v0.10.0). Reading a binding neither refreshes nor moves it. */
  private scoreSessionId(cycle: CycleContext, candidates: readonly EndpointSnapshot[], bindings: LRUCache<string, string>): number[] {
    const key = sessionKeyOf(cycle.request, this.sessionReads);
    if (key === undefined) return candidates.map(() => 0);
    const boundPod = bindings.get(key, { updateAgeOnGet: false });
    const present = boundPod !== undefined && candidates.some((candidate) => endpointIdentity(candidate.endpoint) === boundPod);
    cycle.state.set(this.choiceKey, { key, present, ...(boundPod !== undefined ? { boundPod } : {}) });
    return candidates.map((candidate) => (present && endpointIdentity(candidate.endpoint) === boundPod ? 1 : 0));
  }

  /**
   * `session_id`: upstream's `PreRequest` (session_id.go @ v0.10.0), the only place a binding changes.
   * `encoded_endpoint_header` with a `profileName` profile: that profile's pick, kept for the response (a profile that
   * picked nothing has no post-cycle call, so its request's response gets no token).
   */
  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const [target] = result.targets;
    if (target === undefined || !bindsPickOf(this.parameters.profileName, result)) return;
    if (this.bindings === undefined) {
      this.responsePod.keep(cycle.request, target.endpoint);
      return;
    }
    const choice = cycle.state.get(this.choiceKey);
    if (choice === undefined) return;
    // Bound to a candidate the picker passed over: kept (only a confirmed absence moves a session).
    const pick = endpointIdentity(target.endpoint);
    if (choice.boundPod !== undefined && choice.boundPod !== pick && choice.present) return;
    this.bindings.set(choice.key, pick);
  }

  /** The endpoint a session id is bound to under `session_id` (its `endpointIdentity`; for tests and stats). */
  boundEndpoint(sessionId: string): string | undefined {
    const key = sessionId === '' ? undefined : sessionIdKey(sessionId);
    return key === undefined ? undefined : this.bindings?.get(key, { updateAgeOnGet: false });
  }

  /**
   * `encoded_endpoint_header`: the token of the pod that served the response or, with a `profileName` profile (llm-d's
   * `prefill` instance), of that profile's pick, and none when it picked nothing (util/sessionaffinity/header.go
   * ResolvePodToWrite @ v0.10.0).
   */
  postResponse(request: LLMRequest, _response: ResponseInfo, target: Endpoint): Readonly<Record<string, string>> | undefined {
    // session_id: the client owns its id; nothing is written back (upstream's SessionIDHeader.ResponseHeader is a no-op).
    if (this.bindings !== undefined) return undefined;
    const written = this.responsePod.of(request, target);
    if (written === undefined) return undefined;
    const pod = endpointIdentity(written);
    if (this.parameters.tokenSigning === undefined) return { [this.header]: encodeEndpoint(pod) };
    const signer = this.requireSigner();
    const nowSeconds = Math.floor((this.handle.wallNow ?? this.handle.now)() / 1000);
    const presented = this.tokenPod(request);
    if (presented.pod === pod && presented.renewAt !== undefined && nowSeconds < presented.renewAt) return undefined;
    return { [this.header]: signer.issue(pod, nowSeconds) };
  }

  /** The pod the request's token names, if it is valid; verified (and counted) once per request. */
  private tokenPod(request: LLMRequest): PresentedToken {
    const cached = request.attributes?.get(this.tokenKey);
    if (cached !== undefined) return cached;
    const token = request.headers[this.header];
    let result: PresentedToken = {};
    if (token !== undefined && token !== '') {
      if (this.parameters.tokenSigning === undefined) {
        const pod = decodeEncodedEndpoint(token);
        if (pod !== undefined) result = { pod };
      } else {
        const signer = this.requireSigner();
        const check = signer.verify(token, Math.floor((this.handle.wallNow ?? this.handle.now)() / 1000));
        this.handle.metrics.countSessionToken(check.outcome);
        // Renewed past half its lifetime, whichever key signed it: during a rotation's rollout the replicas disagree on
        // which key is current, and renewing every previous-key token at once re-issued the token on every response,
        // flipping between the two keys (audit 29). A previous-key token still expires within `ttl`, before the
        // rotation's last step drops that key.
        if (check.outcome === 'valid') result = { pod: check.pod, renewAt: check.expiresAt - signer.ttl / 2 };
      }
    }
    request.attributes?.set(this.tokenKey, result);
    return result;
  }

  private requireSigner(): SessionTokenSigner {
    if (this.signer === undefined) throw new Error('session-affinity-scorer: tokenSigning keys not loaded (start() was not called)');
    return this.signer;
  }
}

/**
 * A key file as bytes: a text key (valid UTF-8) is trimmed of the newline Secrets and editors add, as before; any other
 * file is a binary key (`head -c 32 /dev/urandom`), used byte for byte. Decoding a binary key as UTF-8 would turn each
 * invalid byte into U+FFFD: an 11-byte key would pass the 32-byte check, and keys differing only in those bytes would sign alike.
 */
function readKeyFile(file: string, field: string): Buffer {
  const bytes = readSecretBytes(file, field);
  let key = bytes;
  try {
    key = Buffer.from(new TextDecoder('utf-8', { fatal: true }).decode(bytes).trim(), 'utf8');
  } catch {
    // not UTF-8: a binary key
  }
  if (key.length === 0) throw new Error(`${field}: ${file} is empty`);
  return key;
}

function readKey(file: string | undefined, env: string | undefined, fileField: string, envField: string): Buffer | undefined {
  if (file !== undefined) return readKeyFile(file, fileField);
  if (env === undefined) return undefined;
  const value = process.env[env];
  if (value === undefined || value === '') throw new Error(`${envField}: environment variable ${env} is not set`);
  return Buffer.from(value, 'utf8');
}

function parseTokenSigning(fields: FieldReader): TokenSigningParameters | undefined {
  const raw = fields.raw('tokenSigning');
  if (raw === undefined || raw === null) return undefined;
  const f = FieldReader.ofMap(raw, fields.fieldPath('tokenSigning'));
  const out: TokenSigningParameters = {};
  for (const [fileKey, envKey, required] of [['keyFile', 'keyEnv', true], ['previousKeyFile', 'previousKeyEnv', false]] as const) {
    const file = f.optionalString(fileKey);
    const env = f.optionalString(envKey);
    if (file !== undefined && env !== undefined) throw new ConfigError(f.fieldPath(envKey), `set ${fileKey} or ${envKey}, not both`);
    if (required && file === undefined && env === undefined) {
      throw new ConfigError(f.fieldPath(fileKey), `the signing key is required: set ${fileKey} (a mounted Secret) or ${envKey}`);
    }
    if (env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) {
      throw new ConfigError(f.fieldPath(envKey), `must be an environment variable name, got ${describeValue(env)}`);
    }
    if (file !== undefined) out[fileKey] = file;
    if (env !== undefined) out[envKey] = env;
  }
  out.ttl = f.duration('ttl', '24h');
  f.finish();
  return out;
}

export const sessionAffinityScorer = definePlugin({
  type: 'session-affinity-scorer',
  kinds: ['scorer', 'post-response', 'post-cycle'],
  parameters: parameters<SessionAffinityScorerParameters>((fields) => {
    const tokenSigning = parseTokenSigning(fields);
    // llm-d-router v0.10.0's names (scorer/sessionaffinity/session_affinity.go `parameters`).
    const strategy = parseStrategy(fields);
    const encodedEndpointHeaderConfig = parseEncodedEndpointHeaderConfig(fields);
    const sessionIdConfig = parseSessionIdConfig(fields, strategy === STRATEGY_SESSION_ID);
    const profileName = parseProfileName(fields);
    if (tokenSigning !== undefined && strategy === STRATEGY_SESSION_ID) {
      throw new ConfigError(
        fields.fieldPath('tokenSigning'),
        'signs the encoded_endpoint_header strategy\'s token; strategy: session_id hands out no token: drop tokenSigning or use strategy: encoded_endpoint_header',
      );
    }
    const resolved: ResolvedSessionAffinityScorerParameters = {
      ...(tokenSigning !== undefined ? { tokenSigning } : {}),
      ...(strategy !== undefined ? { strategy } : {}),
      ...(encodedEndpointHeaderConfig !== undefined ? { encodedEndpointHeaderConfig } : {}),
      ...(sessionIdConfig !== undefined ? { sessionIdConfig } : {}),
      ...(profileName !== undefined ? { profileName } : {}),
    };
    return resolved as Required<SessionAffinityScorerParameters>;
  }, (resolved, profileNames, path) => checkProfileName(resolved.profileName, profileNames, `${path}.profileName`)),
  create: (name, resolved, handle) => new SessionAffinityScorer(name, resolved, handle),
});
