/**
 * llm-d's stateless session token (`x-session-token`, llm-d-inference-scheduler pkg/plugins/scorer/session_affinity.go
 * @ v0.2.1..v0.8.0), signed: honoured by every replica holding the key with no store; forged, unsigned and expired
 * tokens ignored (treated as no token) and counted; key rotation through the previous key. Two replicas are two
 * independent schedulers and request controls whose own load would send a new session to different pods.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseEndpointPickerConfig } from '../src/config';
import { ConfigError } from '../src/config/errors';
import { SessionTokenSigner } from '../src/sessions/token';
import { Replica } from './replica';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-token-'));
const OLD_KEY = path.join(dir, 'old');
const NEW_KEY = path.join(dir, 'new');
const SHORT_KEY = path.join(dir, 'short');
fs.writeFileSync(OLD_KEY, `${'o'.repeat(48)}\n`);
fs.writeFileSync(NEW_KEY, 'n'.repeat(40));
fs.writeFileSync(SHORT_KEY, 'too short');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function config(signing: string): string {
  return `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-scorer
  parameters:
    tokenSigning: ${signing}
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: session-affinity-scorer
    weight: 10
  - pluginRef: queue-scorer
`;
}

const T0 = 1_800_000_000_000;

describe('signed x-session-token', () => {
  const replicas: Replica[] = [];
  const replica = async (signing: string, favourite: string, now: () => number = () => T0) => {
    const r = await Replica.start(config(signing), favourite, now);
    replicas.push(r);
    return r;
  };
  afterEach(async () => { for (const r of replicas.splice(0)) await r.stop(); });
  const tokenOf = (r: Replica): string => {
    const token = r.lastResponseHeaders?.['x-session-token'];
    if (token === undefined) throw new Error('no token on the response');
    return token;
  };
  const tokens = (r: Replica, outcome: string) => r.count('kvroute_epp_session_tokens_total', { outcome });

  it('is honoured by another replica holding the key, with no store', async () => {
    const a = await replica(`{keyFile: ${OLD_KEY}}`, 'p0');
    const b = await replica(`{keyFile: ${OLD_KEY}}`, 'p3');
    expect(await a.route(undefined)).toBe('p0');
    const token = tokenOf(a);
    // llm-d's readable first part (base64 of the namespaced pod name), then the expiry and the signature.
    expect(token.split('.')[0]).toBe(Buffer.from('ns/p0').toString('base64'));
    for (let i = 0; i < 5; i++) expect(await b.route(undefined, { 'x-session-token': token })).toBe('p0');
    expect(await tokens(b, 'valid')).toBe(5);
    expect(await b.route(undefined)).toBe('p3'); // B's own choice without a token
  });

  it('ignores a forged token (another pod under a copied signature) and counts it', async () => {
    const a = await replica(`{keyFile: ${OLD_KEY}}`, 'p0');
    const b = await replica(`{keyFile: ${OLD_KEY}}`, 'p3');
    await a.route(undefined);
    const [, expiry, signature] = tokenOf(a).split('.');
    const forged = `${Buffer.from('ns/p1').toString('base64')}.${expiry}.${signature}`;
    expect(await b.route(undefined, { 'x-session-token': forged })).toBe('p3');
    expect(await tokens(b, 'forged')).toBe(1);
    // A later expiry under the same signature is forged too: the expiry is signed.
    const extended = `${Buffer.from('ns/p0').toString('base64')}.${Number(expiry) + 86400}.${signature}`;
    expect(await b.route(undefined, { 'x-session-token': extended })).toBe('p3');
    expect(await tokens(b, 'forged')).toBe(2);
    // And a signer with another key cannot make one.
    const other = new SessionTokenSigner(Buffer.from('x'.repeat(32)), undefined, 3600).issue('ns/p1', T0 / 1000);
    expect(await b.route(undefined, { 'x-session-token': other })).toBe('p3');
    expect(await tokens(b, 'forged')).toBe(3);
  });

  it('ignores llm-d\'s unsigned token when signing is on (the steering the signature prevents), counted as malformed', async () => {
    const b = await replica(`{keyFile: ${OLD_KEY}}`, 'p3');
    expect(await b.route(undefined, { 'x-session-token': Buffer.from('ns/p1').toString('base64') })).toBe('p3');
    expect(await b.route(undefined, { 'x-session-token': 'x'.repeat(5000) })).toBe('p3');
    expect(await tokens(b, 'malformed')).toBe(2);
    // A fresh token for the pod that served it is set on the response.
    expect(tokenOf(b).startsWith(`${Buffer.from('ns/p3').toString('base64')}.`)).toBe(true);
  });

  it('ignores an expired token and counts it', async () => {
    let now = T0;
    const a = await replica(`{keyFile: ${OLD_KEY}, ttl: 1h}`, 'p0', () => now);
    const b = await replica(`{keyFile: ${OLD_KEY}, ttl: 1h}`, 'p3', () => now);
    await a.route(undefined);
    const token = tokenOf(a);
    now = T0 + 59 * 60_000;
    expect(await b.route(undefined, { 'x-session-token': token })).toBe('p0');
    now = T0 + 61 * 60_000;
    expect(await b.route(undefined, { 'x-session-token': token })).toBe('p3');
    expect(await tokens(b, 'expired')).toBe(1);
  });

  it('re-issues the token only when it is missing, for another pod, or past half its lifetime', async () => {
    let now = T0;
    const a = await replica(`{keyFile: ${OLD_KEY}, ttl: 1h}`, 'p0', () => now);
    await a.route(undefined);
    const token = tokenOf(a);
    now = T0 + 10 * 60_000;
    await a.route(undefined, { 'x-session-token': token });
    expect(a.lastResponseHeaders).toBeUndefined(); // same token still good: the client keeps it
    now = T0 + 31 * 60_000;
    await a.route(undefined, { 'x-session-token': token });
    const renewed = tokenOf(a);
    expect(renewed).not.toBe(token);
    expect(Number(renewed.split('.')[1])).toBe(Math.floor(now / 1000) + 3600);
  });

  it('rotates: a replica with the new key and the old one as previous honours old tokens and issues new ones past half their lifetime', async () => {
    let now = T0;
    const old = await replica(`{keyFile: ${OLD_KEY}, ttl: 1h}`, 'p0', () => now);
    const rotated = await replica(`{keyFile: ${NEW_KEY}, previousKeyFile: ${OLD_KEY}, ttl: 1h}`, 'p3', () => now);
    // Mid-rollout a replica one step behind (the new key still as its previous one) takes the new key's tokens as
    // they are, and the rotated one the old key's: no token is re-issued until half its lifetime (audit 29: it was
    // re-issued on every response, flipping between the keys).
    const behind = await replica(`{keyFile: ${OLD_KEY}, previousKeyFile: ${NEW_KEY}, ttl: 1h}`, 'p1', () => now);
    const newOnly = await replica(`{keyEnv: KVROUTE_TEST_TOKEN_KEY}`, 'p2').catch((e: Error) => e);
    expect(newOnly).toBeInstanceOf(Error);
    expect((newOnly as Error).message).toContain('tokenSigning.keyEnv: environment variable KVROUTE_TEST_TOKEN_KEY is not set');
    process.env.KVROUTE_TEST_TOKEN_KEY = 'n'.repeat(40);
    try {
      const fresh = await replica('{keyEnv: KVROUTE_TEST_TOKEN_KEY}', 'p2');
      await old.route(undefined);
      const oldToken = tokenOf(old);
      now = T0 + 10 * 60_000;
      expect(await rotated.route(undefined, { 'x-session-token': oldToken })).toBe('p0');
      expect(await tokens(rotated, 'valid')).toBe(1);
      expect(rotated.lastResponseHeaders).toBeUndefined();
      // The previous key is accepted, never issued: past half the token's lifetime the response carries one under the
      // new key...
      now = T0 + 31 * 60_000;
      expect(await rotated.route(undefined, { 'x-session-token': oldToken })).toBe('p0');
      const newToken = tokenOf(rotated);
      expect(await behind.route(undefined, { 'x-session-token': newToken })).toBe('p0');
      expect(behind.lastResponseHeaders).toBeUndefined();
      expect(await fresh.route(undefined, { 'x-session-token': newToken })).toBe('p0');
      // ...which a replica holding only the new key (the rotation done) honours, while it refuses old tokens.
      expect(await fresh.route(undefined, { 'x-session-token': oldToken })).toBe('p2');
      expect(await tokens(fresh, 'forged')).toBe(1);
    } finally {
      delete process.env.KVROUTE_TEST_TOKEN_KEY;
    }
  });

  it('a binary key file is used byte for byte: a short one is refused by its real length, and keys that differ only in bytes that are not UTF-8 sign differently (audit s36: the file was decoded as UTF-8 first)', async () => {
    const shortBinary = path.join(dir, 'short-binary');
    fs.writeFileSync(shortBinary, Buffer.alloc(11, 0xff));
    await expect(replica(`{keyFile: ${shortBinary}}`, 'p0')).rejects.toThrow('session token key must be at least 32 bytes, got 11');
    const [keyA, keyB] = [path.join(dir, 'binary-a'), path.join(dir, 'binary-b')];
    fs.writeFileSync(keyA, Buffer.alloc(32, 0x80));
    fs.writeFileSync(keyB, Buffer.alloc(32, 0x81));
    const a = await replica(`{keyFile: ${keyA}}`, 'p0');
    const b = await replica(`{keyFile: ${keyB}}`, 'p3');
    await a.route(undefined);
    expect(await b.route(undefined, { 'x-session-token': tokenOf(a) })).toBe('p3');
    expect(await tokens(b, 'forged')).toBe(1);
  });

  it('refuses to start with a short or unreadable key, naming the field', async () => {
    await expect(replica(`{keyFile: ${SHORT_KEY}}`, 'p0')).rejects.toThrow('session token key must be at least 32 bytes, got 9');
    await expect(replica(`{keyFile: ${path.join(dir, 'absent')}}`, 'p0')).rejects.toThrow(/tokenSigning.keyFile: cannot read/);
  });

  it.each([
    ['{}', 'plugins[0].parameters.tokenSigning.keyFile: the signing key is required: set keyFile (a mounted Secret) or keyEnv'],
    ['{keyFile: /a, keyEnv: B}', 'plugins[0].parameters.tokenSigning.keyEnv: set keyFile or keyEnv, not both'],
    ['{keyEnv: "1BAD"}', 'tokenSigning.keyEnv: must be an environment variable name'],
    ['{keyFile: /a, key: inline}', 'plugins[0].parameters.tokenSigning.key: unknown field; allowed: keyFile, keyEnv, previousKeyFile, previousKeyEnv, ttl'],
    ['{keyFile: /a, ttl: soon}', 'plugins[0].parameters.tokenSigning.ttl:'],
  ])('rejects tokenSigning %s naming the field', (signing, message) => {
    expect(() => parseEndpointPickerConfig(config(signing))).toThrow(ConfigError);
    expect(() => parseEndpointPickerConfig(config(signing))).toThrow(message);
  });
});
