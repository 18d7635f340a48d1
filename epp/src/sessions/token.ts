/**
 * llm-d's stateless session token, signed. llm-d-inference-scheduler's `session-affinity-scorer` (v0.2.1 through
 * v0.8.0, `pkg/plugins/scorer/session_affinity.go`, later `pkg/epp/framework/plugins/scheduling/scorer/
 * sessionaffinity/`) sets `x-session-token: base64(namespace/pod)` on every response and scores the pod a request's
 * token names 1. Any client can therefore write the token of a pod of its choosing and steer its requests there (and
 * pile load onto one pod). kvroute keeps the header and the readable first part, and appends an expiry and an
 * HMAC-SHA256 over both, so only tokens an EPP issued are honoured, by every replica that holds the key, with no store:
 *
 *   <base64("namespace/pod")>.<expiry, unix seconds>.<base64url(HMAC-SHA256(key, "<first part>.<expiry>"))>
 *
 * A token that does not verify is treated as no token (the request is scored on prefix and load) and counted by
 * outcome. Rotation: tokens are issued with the current key and accepted under the current or the previous one.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { decodeEncodedEndpoint, encodeEndpoint } from './llmd-session-affinity';

export const SESSION_TOKEN_HEADER = 'x-session-token';
/** Longer header values are not tokens kvroute issued (a `namespace/pod` is at most 317 characters): not parsed. */
export const MAX_TOKEN_LENGTH = 1024;
/** Keys shorter than this are refused: HMAC-SHA256's strength needs key bytes (RFC 2104 recommends at least the output length). */
export const MIN_KEY_BYTES = 32;

export type TokenOutcome = 'valid' | 'expired' | 'forged' | 'malformed';

export type TokenCheck =
  /** `current`: signed with the current key (false: the previous one, so a response should hand out a fresh token). */
  | { readonly outcome: 'valid'; readonly pod: string; readonly expiresAt: number; readonly current: boolean }
  | { readonly outcome: Exclude<TokenOutcome, 'valid'> };

const BASE64URL = /^[A-Za-z0-9_-]+$/;

export class SessionTokenSigner {
  private readonly keys: readonly Buffer[];

  /**
   * @param key the signing key (issues and verifies)
   * @param previousKey a retired key still accepted, so tokens issued before a rotation keep working
   * @param ttlSeconds how long an issued token is honoured
   */
  constructor(key: Buffer, previousKey: Buffer | undefined, private readonly ttlSeconds: number) {
    for (const [name, k] of [['key', key], ['previous key', previousKey]] as const) {
      if (k !== undefined && k.length < MIN_KEY_BYTES) throw new Error(`session token ${name} must be at least ${MIN_KEY_BYTES} bytes, got ${k.length}`);
    }
    this.keys = previousKey === undefined ? [key] : [key, previousKey];
  }

  /** A token for `pod` (`namespace/name`) valid until `nowSeconds + ttl`. */
  issue(pod: string, nowSeconds: number): string {
    const body = `${encodeEndpoint(pod)}.${Math.floor(nowSeconds) + this.ttlSeconds}`;
    return `${body}.${mac(this.keys[0]!, body).toString('base64url')}`;
  }

  /** Checks a token's form, signature (any accepted key) and expiry, in that order. */
  verify(token: string, nowSeconds: number): TokenCheck {
    if (token.length > MAX_TOKEN_LENGTH) return { outcome: 'malformed' };
    const parts = token.split('.');
    if (parts.length !== 3) return { outcome: 'malformed' }; // an unsigned llm-d token has no dots
    const [encodedPod, expiry, signature] = parts as [string, string, string];
    // Its first part is llm-d's unsigned token (base64 "namespace/pod").
    const pod = decodeEncodedEndpoint(encodedPod);
    if (pod === undefined || !/^\d{1,12}$/.test(expiry) || !BASE64URL.test(signature)) return { outcome: 'malformed' };
    const given = Buffer.from(signature, 'base64url');
    const body = `${encodedPod}.${expiry}`;
    const signedWith = this.keys.findIndex((key) => {
      const expected = mac(key, body);
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
    if (signedWith < 0) return { outcome: 'forged' };
    const expiresAt = Number(expiry);
    if (expiresAt <= nowSeconds) return { outcome: 'expired' };
    return { outcome: 'valid', pod, expiresAt, current: signedWith === 0 };
  }

  get ttl(): number {
    return this.ttlSeconds;
  }
}

function mac(key: Buffer, body: string): Buffer {
  return createHmac('sha256', key).update(body).digest();
}
