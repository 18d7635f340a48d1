import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import { parseDuration, type Duration } from '../../config/duration';
import { ConfigError, describeValue } from '../../config/errors';
import { FieldReader } from '../../config/fields';
import type { PostResponse, ResponseInfo } from '../../requestcontrol/hooks';
import { readSecretBytes } from '../../sessions/store';
import { SESSION_TOKEN_HEADER, SessionTokenSigner } from '../../sessions/token';
import { stateKey, type CycleContext, type PluginHandle, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';
import type { LLMRequest } from '../types';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

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
   * any client can forge to pick its pod. With it only tokens an EPP holding the key issued are honoured.
   */
  tokenSigning?: TokenSigningParameters;
}

/** The parsed parameters: `tokenSigning` absent unless configured (so configs render unchanged). */
export interface ResolvedSessionAffinityScorerParameters {
  readonly tokenSigning?: TokenSigningParameters;
}

/** What a request's token says, once verified: the pod it names and when a response should renew it (unix seconds). */
interface PresentedToken {
  readonly pod?: string;
  /** Half the token's lifetime, or 0 when it was signed with the previous key (renewed at once onto the new key). */
  readonly renewAt?: number;
}

/** `namespace/name`, Go's NamespacedName string (so `/name` for static endpoints), as llm-d encodes it. */
function namespacedName(endpoint: Endpoint): string {
  return `${endpoint.namespace}/${endpoint.name}`;
}

/**
 * `session-affinity-scorer` (llm-d semantics): the request's `x-session-token` names a pod; that pod scores 1, all
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
 */
export class SessionAffinityScorer implements Scorer, PostResponse {
  readonly type = 'session-affinity-scorer';
  private signer: SessionTokenSigner | undefined;
  /** The pod a request's token validly names, computed once per request for the scorer and the response hook. */
  private readonly tokenKey = stateKey<PresentedToken>('session-affinity-scorer token');

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedSessionAffinityScorerParameters,
    private readonly handle: PluginHandle,
  ) {}

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
    const wanted = this.tokenPod(cycle.request).pod;
    return candidates.map((candidate) => (wanted !== undefined && namespacedName(candidate.endpoint) === wanted ? 1 : 0));
  }

  postResponse(request: LLMRequest, _response: ResponseInfo, target: Endpoint): Readonly<Record<string, string>> | undefined {
    const pod = namespacedName(target);
    if (this.parameters.tokenSigning === undefined) return { [SESSION_TOKEN_HEADER]: Buffer.from(pod, 'utf8').toString('base64') };
    const signer = this.requireSigner();
    const nowSeconds = Math.floor(this.handle.now() / 1000);
    const presented = this.tokenPod(request);
    if (presented.pod === pod && presented.renewAt !== undefined && nowSeconds < presented.renewAt) return undefined;
    return { [SESSION_TOKEN_HEADER]: signer.issue(pod, nowSeconds) };
  }

  /** The pod the request's token names, if it is valid; verified (and counted) once per request. */
  private tokenPod(request: LLMRequest): PresentedToken {
    const cached = request.attributes?.get(this.tokenKey);
    if (cached !== undefined) return cached;
    const token = request.headers[SESSION_TOKEN_HEADER];
    let result: PresentedToken = {};
    if (token !== undefined && token !== '') {
      if (this.parameters.tokenSigning === undefined) {
        if (BASE64.test(token)) result = { pod: Buffer.from(token, 'base64').toString('utf8') };
      } else {
        const signer = this.requireSigner();
        const check = signer.verify(token, Math.floor(this.handle.now() / 1000));
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
  kinds: ['scorer', 'post-response'],
  parameters: parameters<SessionAffinityScorerParameters>((fields) => {
    const tokenSigning = parseTokenSigning(fields);
    const resolved: ResolvedSessionAffinityScorerParameters = tokenSigning === undefined ? {} : { tokenSigning };
    return resolved as Required<SessionAffinityScorerParameters>;
  }),
  create: (name, resolved, handle) => new SessionAffinityScorer(name, resolved, handle),
});
