/**
 * The certificate the EPP serves TLS with when `--secure-serving` is on and no `--cert-path` is given, as GIE's EPP
 * does (`pkg/epp/server/runserver.go` → `CreateSelfSignedTLSCertificate` in `internal/tls/tls.go`, imported as `tlsutil`, @
 * v1.5.0: organisation "Inference Ext", valid 3650 days there, ten calendar years here, server auth; its clients skip verification, e.g. the Istio DestinationRule of GIE's
 * `inferencepool` chart: `tls: {mode: SIMPLE, insecureSkipVerify: true}`).
 *
 * Node can make keys but not certificates, so the X.509 structure (RFC 5280) is written here in DER, a few fixed
 * fields, and signed with Node's crypto. The key is ECDSA P-256 rather than upstream's RSA 4096: Envoy accepts both,
 * and P-256 is generated in a millisecond where RSA 4096 takes a second of start-up. Verified in the tests by Node's
 * own X.509 parser and a TLS handshake.
 */
import * as crypto from 'crypto';

/** DER: tag, length, content. */
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    length = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, item: Buffer): Buffer => tlv(0xa0 | n, item);
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const bitString = (bytes: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), bytes]));
const octetString = (bytes: Buffer): Buffer => tlv(0x04, bytes);
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));

/** A non-negative INTEGER in DER's minimal form (X.690 §8.3.2): no redundant leading zero byte, one where the top bit is set. */
export function derInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const magnitude = bytes.subarray(start);
  return tlv(0x02, magnitude[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude);
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [a! * 40 + b!];
  for (const arc of rest) {
    const chunk: number[] = [];
    for (let v = arc; ; v = Math.floor(v / 128)) {
      chunk.unshift((v & 0x7f) | (chunk.length > 0 ? 0x80 : 0));
      if (v < 128) break;
    }
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));

export interface SelfSignedCertificate {
  /** PEM. */
  readonly cert: Buffer;
  /** PEM (PKCS#8). */
  readonly key: Buffer;
}

/** A fresh key and a certificate for it, valid from now for ten years. */
export function selfSignedCertificate(now: Date = new Date()): SelfSignedCertificate {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const name = sequence(set(sequence(oid('2.5.4.10'), utf8('Inference Ext'))));
  // RFC 5280 §4.1.2.2: a positive serial of at most 20 bytes.
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + 10);
  const extensions = sequence(
    // keyUsage (critical): digitalSignature.
    sequence(oid('2.5.29.15'), bool(true), octetString(tlv(0x03, Buffer.from([0x07, 0x80])))),
    // extKeyUsage: serverAuth.
    sequence(oid('2.5.29.37'), octetString(sequence(oid('1.3.6.1.5.5.7.3.1')))),
    // basicConstraints (critical): not a CA.
    sequence(oid('2.5.29.19'), bool(true), octetString(sequence())),
  );
  const tbs = sequence(
    explicit(0, derInteger(Buffer.from([2]))),
    derInteger(serial),
    ECDSA_WITH_SHA256,
    name,
    sequence(time(now), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, extensions),
  );
  const signature = crypto.sign('sha256', tbs, privateKey);
  const der = sequence(tbs, ECDSA_WITH_SHA256, bitString(signature));
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
  return { cert: Buffer.from(pem), key: Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string) };
}
