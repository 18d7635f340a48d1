import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { parseDuration, type Duration } from '../../config/duration';
import type { EndpointSnapshot } from '../../datastore/types';
import { stateKey, type CycleContext, type Filter, type PluginHandle, type PostCycle, type ProfileRunResult } from '../framework';
import { ConfigError, describeValue } from '../../config/errors';
import { FieldReader } from '../../config/fields';
import type { PostResponse, PrepareRequest, ResponseInfo } from '../../requestcontrol/hooks';
import type { Endpoint } from '../../datastore/types';
import { createBindingTable } from '../../sessions/bindings';
import {
  checkProfileName, decodeEncodedEndpoint, DEFAULT_ENCODED_ENDPOINT_HEADER, encodeEndpoint, hasUpstreamSessionAffinityFields,
  parseEncodedEndpointHeaderConfig, parseProfileName, parseSessionIdConfig, parseStrategy, refuseBothNames, TokenPod,
  sessionIdReads, sessionIdTtlMs, STRATEGY_ENCODED_ENDPOINT_HEADER, STRATEGY_SESSION_ID, type EncodedEndpointHeaderConfig,
  type SessionAffinityStrategy, type SessionIdConfig,
  bindsPickOf, readsAttributes, type SessionIdRead,
} from '../../sessions/llmd-session-affinity';
import { parseStoreAddress, RedisSessionStore, type SessionStoreRead } from '../../sessions/store';
import type { SessionAffinityOutcome } from '../metrics-hooks';
import { aliasOf, definePlugin, parameters } from '../plugin';
import { cookieValue, publishedAttributeReads } from './session-id-producer';
import { KV_LOADED_CANDIDATES, LOADED_CANDIDATES } from './saturation-filter';
import type { LLMRequest } from '../types';

/** Longer session ids are ignored (no binding): no client needs more, and hashing one costs CPU per request. */
export const MAX_SESSION_ID_LENGTH = 4096;

/**
 * Where session bindings are shared between EPP replicas (Redis or Valkey). Shaped like llm-d's Redis index config
 * (`indexerConfig.kvBlockIndexConfig.redisConfig.address`): an address, plus what a shared session table needs.
 */
export interface SessionStoreParameters {
  /**
   * `redis://host:port[/db]`, `rediss://…` (TLS), `valkey://…`, `valkeys://…` (TLS) or a bare `host:port`. A
   * user name may be given (`redis://epp@host:6379`); a password may not (use passwordFile or passwordEnv).
   */
  address: string;
  /**
   * Prefix of every key; the rest is the session id's fixed-length digest. Pools sharing one store need their own (the
   * cdk8s app renders `kvroute:session:<namespace>/<pool name>:`); a binding that names another namespace's pod is
   * read as none all the same (see `filter`). At most 334 characters. @default "kvroute:session:"
   */
  keyPrefix?: string;
  /** Longest a pick waits for the store before using the local binding instead (and counting it). @default "5ms" */
  timeout?: Duration;
  /**
   * Longest a pick waits for the store when this replica holds no binding of its own for the session (a new session,
   * or one another replica has served until now): falling back there means placing the session afresh, which moves a
   * session the store has bound elsewhere (audit 29, replicas F4), so it waits longer. A reply after `timeout` is
   * counted `late_hit` or `late_miss`. At least `timeout`, at most 500ms; keep it well under the gateway's ext_proc
   * message timeout (1s in the cdk8s app), which the whole pick must meet.
   * @default ten times `timeout`, at most 250ms
   */
  unboundTimeout?: Duration;
  /** A file holding the store's password, e.g. a mounted Secret key (read at start; trailing newline dropped). */
  passwordFile?: string;
  /** An environment variable holding the store's password (e.g. set from a Secret with `valueFrom`). */
  passwordEnv?: string;
  /** With TLS (`rediss://`, `valkeys://`): a PEM file with the CA of the store's certificate. @default system roots */
  caFile?: string;
  /**
   * Where a session this replica has no binding for goes while the store is down or refusing (not connected, an
   * error such as NOAUTH; a read that merely timed out is placed by the scorers, since the store is up and settles it):
   * - `rendezvous` (the default, also with soft stickiness): to the first candidate of a rendezvous-hash ranking by the
   *   session's key that is not over a saturation threshold, the same pod on every replica without their talking, so a
   *   session that alternates between replicas is not split between two pods for the whole outage (each replica
   *   pinning it where its own scores and its own approximate prefix index put it);
   * - `scorers`: the profile's scorers place it, as with no store. Right for precise prefix scoring, whose index every
   *   replica builds from the same KV events, so replicas agree on where a session's history is; the built-in precise
   *   configs with a store set it.
   * Sessions this replica has a binding for keep it either way.
   * @default "rendezvous"
   */
  unavailablePlacement?: 'rendezvous' | 'scorers';
}

export interface SessionAffinityFilterParameters {
  /**
   * Request headers that carry a session id, in priority order (the first present wins). The value is an opaque key,
   * so llm-d's `x-session-token` works too.
   * @default ["x-session-id", "x-session-token"]
   */
  headers?: string[];
  /** A binding expires after this long without a request of its session. @default "30m" */
  ttl?: Duration;
  /** Sessions remembered at most; the least recently used binding is dropped beyond it. @default 65536 */
  capacity?: number;
  /**
   * `hard` (the default): a session's requests go to its bound pod while that pod is a candidate (healthy, not
   * saturated); only health moves it. `soft` (issue 9's option): the bound pod is kept as a preference the scorers
   * weigh, not a filter — with the `latency-scorer` in the profile, whose prediction for a pod without the session's
   * history includes recomputing it, a session moves exactly when another pod's predicted time to first token, that
   * recomputation included, beats its own pod's queue. Needs a prefix scorer in the profile (it is what knows where the
   * history is cached); measured in bench/README.md ("The open-loop load ladder").
   * @default "hard"
   */
  stickiness?: 'hard' | 'soft';
  /**
   * Share bindings between EPP replicas through Redis or Valkey. Without it (the default) bindings live in this
   * replica's memory only. The in-memory table stays as the fallback when the store is slow or down.
   */
  sessionStore?: SessionStoreParameters;
  /**
   * llm-d-router v0.10.0's algorithm (filter/sessionaffinity/session_affinity.go @ v0.10.0): `session_id` (an opaque
   * client id bound to a pod: kvroute's behaviour, with `headers`, `ttl`, `capacity`, `stickiness`, `sessionStore`) or
   * `encoded_endpoint_header` (stateless: the request's `encodedEndpointHeaderConfig.header` carries base64
   * ("namespace/name") of a pod, kept alone while a candidate, and every response carries the token of its pod).
   * @default "session_id" when a kvroute session field (headers, ttl, capacity, stickiness, sessionStore) is set; else
   *   "encoded_endpoint_header", upstream's default (`defaultParameters`), a filter with no parameters included
   */
  strategy?: SessionAffinityStrategy;
  /** Upstream's config of `encoded_endpoint_header`: `header`. @default {header: "x-session-token"} */
  encodedEndpointHeaderConfig?: EncodedEndpointHeaderConfig;
  /**
   * Upstream's config of `session_id`: `sources` (headers, and the attributes `agent-identity` and `session-id-producer`
   * publish; any other attribute is refused) is `headers`,
   * `evictionTtlSeconds` is `ttl` (set one name of each, not both); `evictionSweepSeconds` is accepted (bindings expire
   * when read). Unset: upstream's defaults, [x-session-id] and 300 s.
   */
  sessionIdConfig?: SessionIdConfig;
  /**
   * Upstream's profile whose pick this instance binds (`session_id`) or writes the token of (`encoded_endpoint_header`:
   * none when it picked nothing): a profile of the config; empty or `decode` mean the primary profile's pick (the only
   * one with one profile; the decode profile's under `disagg-profile-handler`), the pod that served the response.
   * @default ""
   */
  profileName?: string;
}

/**
 * The parsed parameters. Configs in kvroute's names get `headers`, `ttl` and `capacity` filled (`sessionStore` and
 * `stickiness` absent when not configured); configs in upstream's names are kept as written: each absent field is
 * defaulted where it is used (`filterSettings`), so every config renders unchanged.
 */
export type ResolvedSessionAffinityFilterParameters = {
  readonly headers?: string[];
  readonly ttl?: Duration;
  readonly capacity?: number;
  readonly sessionStore?: SessionStoreParameters;
  /** Absent means hard (kept absent so configs that never set it render unchanged). */
  readonly stickiness?: 'hard' | 'soft';
  readonly strategy?: SessionAffinityStrategy;
  readonly encodedEndpointHeaderConfig?: EncodedEndpointHeaderConfig;
  readonly sessionIdConfig?: SessionIdConfig;
  readonly profileName?: string;
};

/** kvroute's defaults, for configs in kvroute's names. */
export const DEFAULT_SESSION_HEADERS: readonly string[] = ['x-session-id', 'x-session-token'];
export const DEFAULT_SESSION_TTL: Duration = '30m';
export const DEFAULT_SESSION_CAPACITY = 65536;

/** kvroute's own session fields: they configure the `session_id` strategy only. */
const KVROUTE_SESSION_FIELDS = ['headers', 'ttl', 'capacity', 'stickiness', 'sessionStore'] as const;

/** What a filter does, resolved from either naming. */
export interface SessionAffinityFilterSettings {
  readonly strategy: SessionAffinityStrategy;
  /** `encoded_endpoint_header`: the token's header. */
  readonly encodedHeader: string;
  /** `session_id`: the headers (or a producer's cookie) read, first non-empty wins; bindings' TTL and count. */
  readonly headers: readonly SessionIdRead[];
  readonly ttlMs: number;
  readonly capacity: number;
}

/** Whether resolved parameters use any of upstream's names (and so upstream's defaults for what they leave out). */
function usesUpstreamNames(p: ResolvedSessionAffinityFilterParameters): boolean {
  return p.strategy !== undefined || p.encodedEndpointHeaderConfig !== undefined || p.sessionIdConfig !== undefined || p.profileName !== undefined;
}

/**
 * Which strategy parameters select: `strategy`; else kvroute's session_id when a kvroute session field is set; else
 * upstream's default, encoded_endpoint_header (llm-d-router v0.10.0 filter/sessionaffinity/session_affinity.go
 * `defaultParameters`), as for a filter listed with no parameters.
 */
function strategyOf(p: ResolvedSessionAffinityFilterParameters): SessionAffinityStrategy {
  if (p.strategy !== undefined) return p.strategy;
  return KVROUTE_SESSION_FIELDS.some((key) => p[key] !== undefined) ? STRATEGY_SESSION_ID : STRATEGY_ENCODED_ENDPOINT_HEADER;
}

export function filterSettings(p: ResolvedSessionAffinityFilterParameters): SessionAffinityFilterSettings {
  const upstream = usesUpstreamNames(p);
  return {
    strategy: strategyOf(p),
    encodedHeader: p.encodedEndpointHeaderConfig?.header ?? DEFAULT_ENCODED_ENDPOINT_HEADER,
    headers: p.headers ?? (upstream ? sessionIdReads(p.sessionIdConfig) : [...DEFAULT_SESSION_HEADERS]),
    ttlMs: p.ttl !== undefined ? parseDuration(p.ttl) : upstream ? sessionIdTtlMs(p.sessionIdConfig) : parseDuration(DEFAULT_SESSION_TTL),
    capacity: p.capacity ?? DEFAULT_SESSION_CAPACITY,
  };
}

/**
 * `unboundTimeout`'s bounds: under half of the 1 s the store's connection waits for a reply before it is dropped
 * (`socketTimeoutMs`, so a long read ends as a timeout, not as a dropped connection) and of the cdk8s app's 1 s ext_proc
 * message timeout, which the whole pick must meet.
 */
export const MAX_UNBOUND_TIMEOUT_MS = 500;
export const DEFAULT_MAX_UNBOUND_TIMEOUT_MS = 250;

/** `unboundTimeout` in milliseconds: as configured, else ten times `timeout`, at most 250 ms (and never under `timeout`). */
export function unboundTimeoutMs(store: SessionStoreParameters): number {
  const timeoutMs = parseDuration(store.timeout ?? '5ms');
  return store.unboundTimeout !== undefined ? parseDuration(store.unboundTimeout) : Math.max(timeoutMs, Math.min(10 * timeoutMs, DEFAULT_MAX_UNBOUND_TIMEOUT_MS));
}

/**
 * The key prefix's longest form: keys stay bounded (prefix + 22-character digest). Room for the prefix the cdk8s app
 * renders, `kvroute:session:<namespace>/<pool name>:`, with Kubernetes' longest names (63 and 253 characters).
 */
export const MAX_KEY_PREFIX_LENGTH = 'kvroute:session:'.length + 63 + 1 + 253 + 1;

interface PendingBinding {
  readonly sessionId: string;
  readonly outcome: SessionAffinityOutcome;
  /** What the shared store answered for this request (undefined without a store). */
  readonly shared?: SessionStoreRead;
  /** The bound pod when it was a candidate (in soft mode the pick may still go elsewhere). */
  readonly boundKey?: string;
}

/** What `prepareRequest` read from the shared store, for `filter` to use in the synchronous cycle. */
interface SharedLookup {
  readonly sessionId: string;
  readonly read: SessionStoreRead;
}

const MISS: SessionStoreRead = { status: 'miss' };

/**
 * Whether a shared binding names a pod of another namespace than every candidate's: another pool's binding under the
 * same key (stacks sharing a store and a key prefix), not this pool's. A value without a namespace (a build before
 * 2026-11-30 stored the pod's name alone) is this pool's, re-pinned once.
 */
function isOtherPools(read: SessionStoreRead, candidates: readonly EndpointSnapshot[]): boolean {
  if (read.status !== 'hit' || candidates.length === 0) return false;
  const slash = read.value.indexOf('/');
  if (slash < 0) return false;
  const namespace = read.value.slice(0, slash);
  return !candidates.some((candidate) => candidate.endpoint.namespace === namespace);
}

/**
 * What a session binding names, in every table (the filter's, the scorer's `session_id`, the shared store): the
 * endpoint's `namespace/name`, as llm-d-router v0.10.0 binds a session to `md.ID.String()` and matches candidates by it
 * (util/sessionaffinity/session_id.go pickedPodName, Choose) and as llm-d's token names pods. Not its address:port,
 * which Kubernetes hands to a later pod (every vLLM pod serves one port), and which a pod re-created under its name
 * does not keep. Static endpoints have no pod name (their name is their address:port, in no namespace): there the
 * identity is `/address:port`.
 */
export function endpointIdentity(endpoint: { readonly namespace: string; readonly name: string }): string {
  return `${endpoint.namespace}/${endpoint.name}`;
}

export interface SessionAffinityStats {
  readonly hits: number;
  readonly misses: number;
  readonly repins: number;
  readonly bindings: number;
}

/**
 * `session-affinity-filter` (kvroute's hard affinity): a request carrying a session id goes to the endpoint its
 * session is bound to whenever that endpoint is still a candidate — so placed after the saturation filter, a bound
 * endpoint that is gone or saturated is not, and the session is re-bound to whatever the profile picks, once, and
 * stays there. Bindings are made on the pick (post-cycle), refreshed on every hit, expire after `ttl` without
 * requests and are capped at `capacity` sessions (least recently used dropped). Requests without a session id pass
 * through untouched.
 *
 * Why hard rather than llm-d's weighted scorer: a weighted preference can be outvoted by prefix and load scores, so
 * a session would drift between pods exactly when its cache matters; here only health moves it.
 *
 * With `sessionStore` the bindings are shared by every EPP replica through Redis/Valkey (`src/sessions/store.ts`): the
 * binding is read before the cycle (`prepareRequest`, bounded by the store's `timeout`, or `unboundTimeout` for a session
 * this replica holds no binding for; `filter` is synchronous),
 * wins over this replica's own when present, and is written after the pick only when it changed. The local table
 * stays: it is what the filter uses whenever the store cannot answer in time.
 */
export class SessionAffinityFilter implements Filter, PostCycle, PrepareRequest, PostResponse {
  readonly type = 'session-affinity-filter';
  /** `settings`, replaced once by `resolveReferences` when an attribute source names where it is read. */
  private current: SessionAffinityFilterSettings;
  readonly emptyResultReason = 'saturated' as const;
  private readonly bindings: LRUCache<string, string>;
  private readonly pendingKey = stateKey<PendingBinding>('session-affinity-filter pending binding');
  private readonly sharedKey = stateKey<SharedLookup>('session-affinity-filter shared binding');
  /** The pod an `encoded_endpoint_header` response token names (the served one, or a `profileName` profile's pick). */
  private readonly responsePod: TokenPod;
  private readonly counts = { hit: 0, miss: 0, repin: 0 };
  /** The shared store, when `sessionStore` is configured. */
  readonly store: RedisSessionStore | undefined;
  /** How long a read for a session without a local binding may wait (`unboundTimeout`). */
  private readonly unboundTimeoutMs: number;

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedSessionAffinityFilterParameters,
    private readonly handle: PluginHandle,
  ) {
    this.current = filterSettings(parameters);
    this.responsePod = new TokenPod('session-affinity-filter', parameters.profileName);
    // A binding's TTL restarts on every set (each hit re-binds in postCycle); reads do not extend it.
    this.bindings = createBindingTable(this.settings.capacity, this.settings.ttlMs, () => handle.now());
    const store = parameters.sessionStore;
    this.unboundTimeoutMs = store === undefined ? 0 : unboundTimeoutMs(store);
    this.store = store === undefined ? undefined : new RedisSessionStore({
      address: store.address,
      keyPrefix: store.keyPrefix ?? 'kvroute:session:',
      timeoutMs: parseDuration(store.timeout ?? '5ms'),
      ttlMs: this.settings.ttlMs,
      ...(store.passwordFile !== undefined ? { passwordFile: store.passwordFile } : {}),
      ...(store.passwordEnv !== undefined ? { passwordEnv: store.passwordEnv } : {}),
      ...(store.caFile !== undefined ? { caFile: store.caFile } : {}),
    }, {
      read: (outcome) => handle.metrics.countSessionStore('read', outcome),
      write: (outcome) => handle.metrics.countSessionStore('write', outcome),
      connected: (up) => handle.metrics.setSessionStoreConnected(up),
      reconnect: (reason) => handle.metrics.countSessionStore('reconnect', reason),
      log: (level, message, fields) => handle.logger[level](message, fields),
    });
  }

  /** The parameters resolved from kvroute's or upstream's names (an attribute source's headers or cookie filled in). */
  get settings(): SessionAffinityFilterSettings {
    return this.current;
  }

  /**
   * A `sessionIdConfig.sources` entry `{attribute: agent-identity}` reads the headers of the config's `agent-identity`
   * plugins at its place in the list (llm-d-router v0.10.0's filter README: the attribute as a fallback after a header);
   * `{attribute: SessionIDDataKey/<name>}` the header or cookie of the `session-id-producer` named so.
   */
  resolveReferences(): void {
    const config = this.parameters.sessionIdConfig;
    if (this.current.strategy !== STRATEGY_SESSION_ID || !readsAttributes(config)) return;
    this.current = { ...this.current, headers: sessionIdReads(config, publishedAttributeReads(this.handle.plugins?.() ?? [])) };
  }

  async start(): Promise<void> {
    await this.store?.start();
  }

  async close(): Promise<void> {
    await this.store?.close();
  }

  /**
   * With a shared store: reads the session's binding before the (synchronous) cycle, bounded by the store's `timeout`
   * (`unboundTimeout` for a session this replica holds no binding of its own for).
   * GETEX restarts the binding's TTL in the same round trip, so a session in use stays bound on every replica. A
   * store that is slow or down answers "unavailable" and the cycle uses this replica's table.
   */
  /** Only a request with a session id, with a shared store to read, has anything to prepare. */
  preparesFor(request: LLMRequest): boolean {
    return this.store !== undefined && request.attributes !== undefined && this.sessionIdOf(request) !== undefined;
  }

  async prepareRequest(request: LLMRequest): Promise<void> {
    if (this.store === undefined) return;
    const sessionId = this.sessionIdOf(request);
    if (sessionId === undefined || request.attributes === undefined) return;
    // With no binding of its own the fall-back would place the session afresh, likely elsewhere than the store has it:
    // worth a longer wait (audit 29, replicas F4: sessions moved for one request at their first visit to a replica).
    const patience = this.bindings.has(sessionId) ? undefined : this.unboundTimeoutMs;
    request.attributes.set(this.sharedKey, { sessionId, read: await this.store.read(sessionId, patience) });
  }

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    if (this.settings.strategy === STRATEGY_ENCODED_ENDPOINT_HEADER) return this.filterEncoded(cycle, candidates);
    const lookup = cycle.request.attributes?.get(this.sharedKey);
    const sessionId = lookup?.sessionId ?? this.sessionIdOf(cycle.request);
    if (sessionId === undefined) return candidates;
    // A binding to a namespace none of the candidates is in is another pool's (another stack sharing the store and its
    // key prefix): read as none here, so this pool places the session and writes with NX, leaving that pool's binding
    // alone. A binding to a pod of this namespace that is gone or filtered out is this pool's, re-pinned as before.
    const shared = lookup !== undefined && isOtherPools(lookup.read, candidates) ? MISS : lookup?.read;
    // The shared binding wins when the store has one: another replica may have re-pinned the session since this one
    // last saw it. Otherwise (no store, no binding there, or the store unavailable) this replica's table decides.
    const boundPod = shared?.status === 'hit' ? shared.value : this.bindings.get(sessionId);
    let bound = boundPod === undefined ? undefined : candidates.find((candidate) => endpointIdentity(candidate.endpoint) === boundPod);
    const wasBound = boundPod !== undefined;
    const outcome: SessionAffinityOutcome = bound !== undefined ? 'hit' : wasBound ? 'repin' : 'miss';
    let hashed = false;
    if (bound === undefined && shared?.status === 'unavailable' && (shared.reason === 'unavailable' || shared.reason === 'error')
      && this.parameters.sessionStore?.unavailablePlacement !== 'scorers') {
      // No replica can learn where another put this session until the store is back: agree by hashing instead. (A read
      // that timed out, or found too many commands waiting, is left to the scorers: the store is up, the SET NX after the
      // pick lands or yields to an existing binding, and every replica follows the store from the session's next request.)
      bound = rendezvousPick(sessionId, candidates, roomyPredicate(cycle, candidates));
      hashed = bound !== undefined;
    }
    cycle.state.set(this.pendingKey, {
      sessionId, outcome, ...(shared !== undefined ? { shared } : {}), ...(bound !== undefined ? { boundKey: bound.endpoint.key } : {}),
    });
    // Soft: every candidate stays; the scorers (the latency scorer's recomputation cost, the prefix scorer's history)
    // decide whether the session's pod keeps it.
    // The rendezvous pick is kept in soft mode too: it is there so that replicas agree, which scores cannot make them.
    if (this.parameters.stickiness === 'soft' && !hashed) return candidates;
    // Hard holds while the bound pod is healthy and not saturated (issue 9). A saturation filter in admission mode keeps
    // a pod over a threshold among the candidates while others have room, so the filter before this one does not drop
    // it. One whose KV cache is over its threshold (`KV_LOADED_CANDIDATES`: its running requests fill the cache, so
    // more turns there preempt and evict the very histories affinity keeps there) is kept only as the scorers'
    // preference, as in soft mode, and the session may move to a pod with room. A long queue alone does not release it:
    // moving for queue length recomputes histories on a busy pool, which is how soft stickiness collapsed at 80% load.
    if (bound !== undefined && outcome === 'hit' && cycle.state.get(KV_LOADED_CANDIDATES)?.has(bound.endpoint.key) === true) return candidates;
    return bound !== undefined ? [bound] : candidates;
  }

  /**
   * `encoded_endpoint_header` (filter/sessionaffinity/encoded_endpoint_header.go @ v0.10.0): the pod the token names
   * alone when it is a candidate; otherwise (no token, not base64, a pod no longer a candidate) every candidate.
   */
  private filterEncoded(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const pod = decodeEncodedEndpoint(cycle.request.headers[this.settings.encodedHeader]);
    if (pod === undefined) return candidates;
    const pinned = candidates.find((candidate) => endpointIdentity(candidate.endpoint) === pod);
    return pinned !== undefined ? [pinned] : candidates;
  }

  /** Only `encoded_endpoint_header` writes at the response: under `session_id` (the default) request control skips it. */
  get handlesResponses(): boolean {
    return this.settings.strategy === STRATEGY_ENCODED_ENDPOINT_HEADER;
  }

  /**
   * `encoded_endpoint_header`: the response carries base64("namespace/name") of the pod that served it, for the client
   * to send back, or with a `profileName` profile (llm-d's `prefill` instance) that profile's pick, and nothing when it
   * picked none (`ResolvePodToWrite`, `WriteResponseHeader`, util/sessionaffinity/header.go @ v0.10.0). `session_id`:
   * nothing (the client owns its id).
   */
  postResponse(request: LLMRequest, _response: ResponseInfo, target: Endpoint): Readonly<Record<string, string>> | undefined {
    if (this.settings.strategy !== STRATEGY_ENCODED_ENDPOINT_HEADER) return undefined;
    const pod = this.responsePod.of(request, target);
    return pod === undefined ? undefined : { [this.settings.encodedHeader]: encodeEndpoint(endpointIdentity(pod)) };
  }

  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const [target] = result.targets;
    if (target === undefined || !bindsPickOf(this.parameters.profileName, result)) return;
    if (this.settings.strategy === STRATEGY_ENCODED_ENDPOINT_HEADER) {
      // Kept for the response when it is not the pod that serves it. A profile that picked nothing (a decode-only
      // request's prefill profile) has no post-cycle call, so that request's response gets no token.
      this.responsePod.keep(cycle.request, target.endpoint);
      return;
    }
    const pending = cycle.state.get(this.pendingKey);
    if (pending === undefined) return;
    // A bound session the scorers sent elsewhere moved (counted as a re-pin): soft mode, or hard mode off a loaded pod.
    const outcome: SessionAffinityOutcome = pending.outcome === 'hit' && pending.boundKey !== target.endpoint.key ? 'repin' : pending.outcome;
    this.bindings.set(pending.sessionId, endpointIdentity(target.endpoint));
    this.counts[outcome]++;
    this.handle.metrics.countSessionAffinity(outcome);
    this.handle.metrics.setSessionBindings(this.bindings.size);
    if (this.store !== undefined && pending.shared !== undefined && this.shouldWrite(pending.shared, outcome, target)) {
      // Only a re-pin away from the binding the store returned overwrites it. Every other write (a new session, a
      // local binding the store lacks, a choice made while the read timed out) is SET NX: whatever binding is
      // already there, made by another replica or simply not returned in time, stays, and this replica follows it
      // from the session's next request. Without NX, one slow read would move a session for every replica.
      this.store.write(pending.sessionId, endpointIdentity(target.endpoint), pending.shared.status !== 'hit');
    }
  }

  /**
   * Writes only change the shared binding: a hit the store already holds was refreshed by the read (GETEX), so the
   * steady state is one read and no write per request. Written: a new or re-pinned binding, and a local binding the
   * store lacks (made while it was down). After a read that failed, only a new binding is written (NX).
   */
  private shouldWrite(shared: SessionStoreRead, outcome: SessionAffinityOutcome, target: EndpointSnapshot): boolean {
    if (shared.status === 'unavailable') return outcome !== 'hit';
    return shared.status === 'miss' || shared.value !== endpointIdentity(target.endpoint);
  }

  /** The endpoint a session id is bound to now (its `endpointIdentity`), if any. */
  boundEndpoint(sessionId: string): string | undefined {
    const key = sessionId === '' ? undefined : sessionIdKey(sessionId);
    return key === undefined ? undefined : this.bindings.get(key);
  }

  stats(): SessionAffinityStats {
    return { hits: this.counts.hit, misses: this.counts.miss, repins: this.counts.repin, bindings: this.bindings.size };
  }

  /**
   * The session's key in the table: a SHA-256 digest of the id (22 base64url characters, 132 bits), so what is kept
   * per session is bounded whatever clients send (Envoy forwards headers up to 60 KiB), and ids cannot be chosen to
   * collide. Ids longer than MAX_SESSION_ID_LENGTH are not bound at all.
   */
  private sessionIdOf(request: LLMRequest): string | undefined {
    return sessionKeyOf(request, this.settings.headers);
  }

  /** Characters held by the table's keys and values (its memory grows with this, not with the ids clients send). */
  bindingCharacters(): number {
    let n = 0;
    for (const [key, value] of this.bindings.entries()) n += key.length + value.length;
    return n;
  }
}

/** A session's key in a table (`sessionIdKey`) for the id the request carries where `reads` say (`sessionHeaderValue`). */
export function sessionKeyOf(request: LLMRequest, reads: readonly SessionIdRead[]): string | undefined {
  const value = sessionHeaderValue(request, reads);
  return value === undefined ? undefined : sessionIdKey(value);
}

/**
 * A session id's key in a table: a SHA-256 digest of the id (22 base64url characters, 132 bits), so what is kept per
 * session is bounded whatever clients send (Envoy forwards headers up to 60 KiB), and ids cannot be chosen to collide.
 * Ids longer than MAX_SESSION_ID_LENGTH have no key (are not bound).
 */
export function sessionIdKey(value: string): string | undefined {
  if (value.length > MAX_SESSION_ID_LENGTH) return undefined;
  // One request asks several times (the affinity filter's prepare step and filter, session-load-scorer): the last
  // id's digest is kept, so it is computed once per request. Comparing ids costs far less than hashing one.
  if (value !== lastSessionId) {
    lastSessionKey = createHash('sha256').update(value).digest('base64url').slice(0, 22);
    lastSessionId = value;
  }
  return lastSessionKey;
}

let lastSessionId: string | undefined;
let lastSessionKey: string | undefined;

/**
 * The session id as sent: the first non-empty of the headers `reads` name, or of the cookie one names (trimmed, as
 * llm-d-router v0.10.0's `session-id-producer` trims it: producer.go extract).
 */
export function sessionHeaderValue(request: LLMRequest, reads: readonly SessionIdRead[]): string | undefined {
  for (const read of reads) {
    // Trimmed, as llm-d-router v0.10.0 reads a session id from a header or a producer's header or cookie
    // (util/sessionaffinity/session_id.go resolveSessionID, dataproducer/sessionid/producer.go extract: TrimSpace).
    const value = (typeof read === 'string' ? request.headers[read] : cookieValue(request.headers.cookie, read.cookie))?.trim();
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

/**
 * Whether a candidate is not over a saturation threshold (`LOADED_CANDIDATES`, published by a saturation filter in
 * admission mode); undefined when none is over.
 */
function roomyPredicate(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): ((c: EndpointSnapshot) => boolean) | undefined {
  const loaded = cycle.state.get(LOADED_CANDIDATES);
  if (loaded === undefined || loaded.size === 0 || candidates.every((c) => loaded.has(c.endpoint.key))) return undefined;
  return (c) => !loaded.has(c.endpoint.key);
}

/**
 * Rendezvous (highest random weight) hashing: the candidates ranked by their identity hashed with the session's key,
 * and the first of the ranking that `acceptable` accepts (the first, without it or when it accepts none). Every
 * replica ranks the pods the same whatever order it lists them in, so two replicas whose saturation readings differ
 * still agree unless they differ about the very pod the session ranks first; a pod that leaves moves only the sessions
 * it had won. FNV-1a over the UTF-16 code units, then murmur3's 32-bit finalizer to spread the bits; equal weights are
 * ordered by identity.
 */
export function rendezvousPick(sessionKey: string, candidates: readonly EndpointSnapshot[], acceptable?: (c: EndpointSnapshot) => boolean): EndpointSnapshot | undefined {
  const ranked = candidates
    .map((candidate) => {
      const identity = endpointIdentity(candidate.endpoint);
      return { candidate, identity, weight: rendezvousWeight(sessionKey, identity) };
    })
    .sort((a, b) => b.weight - a.weight || (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));
  return (acceptable === undefined ? undefined : ranked.find((r) => acceptable(r.candidate)))?.candidate ?? ranked[0]?.candidate;
}

function rendezvousWeight(sessionKey: string, identity: string): number {
  let h = 0x811c9dc5;
  const text = `${sessionKey}\u0000${identity}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export const sessionAffinityFilter = definePlugin({
  type: 'session-affinity-filter',
  kinds: ['filter', 'post-cycle', 'prepare-request', 'post-response'],
  parameters: parameters<SessionAffinityFilterParameters>((fields) => {
    const upstream = hasUpstreamSessionAffinityFields(fields);
    const kvrouteFields = KVROUTE_SESSION_FIELDS.filter((key) => fields.has(key));
    // llm-d-router v0.10.0's names (filter/sessionaffinity/session_affinity.go `parameters`).
    const explicitStrategy = parseStrategy(fields);
    // Upstream's default strategy unless a kvroute session field asks for kvroute's bindings (kvroute's own configs
    // set `headers`, `ttl` and `capacity`). Until 2026-12-06 a filter with no parameters was kvroute's session_id.
    const strategy = explicitStrategy ?? (kvrouteFields.length === 0 ? STRATEGY_ENCODED_ENDPOINT_HEADER : STRATEGY_SESSION_ID);
    const encodedEndpointHeaderConfig = parseEncodedEndpointHeaderConfig(fields);
    const sessionIdConfig = parseSessionIdConfig(fields, strategy === STRATEGY_SESSION_ID);
    const profileName = parseProfileName(fields);
    const upstreamResolved = {
      ...optional('strategy', explicitStrategy),
      ...optional('encodedEndpointHeaderConfig', encodedEndpointHeaderConfig),
      ...optional('sessionIdConfig', sessionIdConfig),
      ...optional('profileName', profileName),
    };
    if (strategy === STRATEGY_ENCODED_ENDPOINT_HEADER) {
      const [misplaced] = kvrouteFields;
      if (misplaced !== undefined) {
        throw new ConfigError(
          fields.fieldPath(misplaced),
          'configures kvroute\'s session bindings, which only strategy session_id keeps; strategy encoded_endpoint_header is stateless (the token names the pod)',
        );
      }
      for (const key of KVROUTE_SESSION_FIELDS) fields.raw(key);
      return upstreamResolved as Required<SessionAffinityFilterParameters>;
    }
    // session_id: kvroute's names or upstream's for each setting, not both.
    refuseBothNames(fields, 'headers', 'sessionIdConfig.sources', sessionIdConfig?.sources !== undefined);
    refuseBothNames(fields, 'ttl', 'sessionIdConfig.evictionTtlSeconds', sessionIdConfig?.evictionTtlSeconds !== undefined);
    const resolved: ResolvedSessionAffinityFilterParameters = {
      // Lower-cased because request headers reach plugins with lower-case names. Filled only for configs in kvroute's
      // names (upstream's defaults differ: filterSettings applies them).
      ...optional('headers', upstream && !fields.has('headers') ? undefined
        : fields.stringList('headers', DEFAULT_SESSION_HEADERS, { minLength: 1 }).map((h) => h.toLowerCase())),
      ...optional('ttl', upstream && !fields.has('ttl') ? undefined : fields.duration('ttl', DEFAULT_SESSION_TTL)),
      ...optional('capacity', upstream && !fields.has('capacity') ? undefined : fields.integer('capacity', DEFAULT_SESSION_CAPACITY, 1)),
      ...optional('stickiness', parseStickiness(fields)),
      ...optional('sessionStore', parseSessionStore(fields)),
      ...upstreamResolved,
    };
    return resolved as Required<SessionAffinityFilterParameters>;
  }, (resolved, profileNames, path) => checkProfileName(resolved.profileName, profileNames, `${path}.profileName`)),
  create: (name, resolved, handle) => new SessionAffinityFilter(name, resolved, handle),
});

/**
 * llm-d-router v0.10.0's `multicluster-session-affinity-filter` (filter/sessionaffinity/multicluster.go
 * MultiClusterFactory): this filter under another type, built by the same factory from the same parameters and
 * delegating every extension point to it ("cluster identity comes from discovery, so it delegates to this filter
 * unchanged", the filter's README).
 */
export const multiclusterSessionAffinityFilter = aliasOf('multicluster-session-affinity-filter', sessionAffinityFilter);

function parseStickiness(fields: FieldReader): 'hard' | 'soft' | undefined {
  return fields.optionalOneOf('stickiness', ['hard', 'soft'] as const);
}

/** `sessionStore`: strict, every problem named by its field path; files and variables are read at start, not here. */
function parseSessionStore(fields: FieldReader): SessionStoreParameters | undefined {
  const raw = fields.raw('sessionStore');
  if (raw === undefined || raw === null) return undefined;
  const f = FieldReader.ofMap(raw, fields.fieldPath('sessionStore'));
  const address = f.requiredString('address');
  try {
    parseStoreAddress(address);
  } catch (e) {
    throw new ConfigError(f.fieldPath('address'), (e as Error).message);
  }
  const keyPrefix = f.optionalString('keyPrefix') ?? 'kvroute:session:';
  if (keyPrefix.length > MAX_KEY_PREFIX_LENGTH || /[\s]/.test(keyPrefix)) {
    throw new ConfigError(f.fieldPath('keyPrefix'), `must be at most ${MAX_KEY_PREFIX_LENGTH} characters without spaces, got ${describeValue(keyPrefix)}`);
  }
  const timeout = f.duration('timeout', '5ms');
  if (parseDuration(timeout) > 1000) {
    throw new ConfigError(f.fieldPath('timeout'), `must be at most 1s (a pick waits this long for a slow store), got ${JSON.stringify(timeout)}`);
  }
  const unboundTimeout = f.raw('unboundTimeout') == null ? undefined : f.duration('unboundTimeout', timeout);
  if (unboundTimeout !== undefined && (parseDuration(unboundTimeout) < parseDuration(timeout) || parseDuration(unboundTimeout) > MAX_UNBOUND_TIMEOUT_MS)) {
    throw new ConfigError(f.fieldPath('unboundTimeout'), `must be at least timeout (${timeout}) and at most ${MAX_UNBOUND_TIMEOUT_MS}ms, got ${JSON.stringify(unboundTimeout)}`);
  }
  const passwordFile = f.optionalString('passwordFile');
  const passwordEnv = f.optionalString('passwordEnv');
  if (passwordFile !== undefined && passwordEnv !== undefined) {
    throw new ConfigError(f.fieldPath('passwordEnv'), 'set passwordFile or passwordEnv, not both');
  }
  if (passwordEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(passwordEnv)) {
    throw new ConfigError(f.fieldPath('passwordEnv'), `must be an environment variable name, got ${describeValue(passwordEnv)}`);
  }
  const caFile = f.optionalString('caFile');
  if (caFile !== undefined && !parseStoreAddress(address).tls) {
    throw new ConfigError(f.fieldPath('caFile'), 'applies to TLS addresses only (rediss:// or valkeys://)');
  }
  const unavailablePlacement = f.oneOf('unavailablePlacement', ['rendezvous', 'scorers'] as const, 'rendezvous');
  f.finish();
  return {
    address,
    keyPrefix,
    timeout,
    ...(unboundTimeout !== undefined ? { unboundTimeout } : {}),
    ...(passwordFile !== undefined ? { passwordFile } : {}),
    ...(passwordEnv !== undefined ? { passwordEnv } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    unavailablePlacement,
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
