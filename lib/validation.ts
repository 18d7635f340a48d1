/**
 * Construction-time checks. Every message names the construct and the field, and says what is allowed, so a bad
 * cluster profile fails `cdk8s synth` with a sentence a platform engineer can act on.
 */

import { isIP } from 'net';

export class PropsError extends Error {
  constructor(scope: string, field: string, requirement: string, got: unknown) {
    super(`${scope}.${field}: ${requirement}, got ${describe(got)}`);
    this.name = 'PropsError';
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** RFC 1123 label: what Kubernetes requires of Service and most object names. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 subdomain: ConfigMap, Deployment and CR names. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkDnsLabel(scope: string, field: string, value: string, maxLength = 63): string {
  if (typeof value !== 'string' || value.length > maxLength || !DNS_LABEL.test(value)) {
    throw new PropsError(scope, field, `must be a DNS-1123 label (lower-case alphanumerics and '-', at most ${maxLength} characters)`, value);
  }
  return value;
}

export function checkDnsSubdomain(scope: string, field: string, value: string): string {
  if (typeof value !== 'string' || value.length > 253 || !DNS_SUBDOMAIN.test(value)) {
    throw new PropsError(scope, field, "must be a DNS-1123 subdomain (lower-case alphanumerics, '-' and '.')", value);
  }
  return value;
}

export function checkInteger(scope: string, field: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new PropsError(scope, field, `must be an integer ${range}`, value);
  }
  return value;
}

/** A number in the half-open interval (min, max]. */
export function checkFraction(scope: string, field: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= min || value > max) {
    throw new PropsError(scope, field, `must be a number greater than ${min} and at most ${max}`, value);
  }
  return value;
}

export function checkOneOf<T extends string | number>(scope: string, field: string, value: T, allowed: readonly T[]): T {
  if (!allowed.includes(value)) {
    throw new PropsError(scope, field, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, value);
  }
  return value;
}

export function checkPort(scope: string, field: string, value: number): number {
  return checkInteger(scope, field, value, 1, 65535);
}

/** A container image reference with an explicit tag or digest: GitOps output must not float on `latest`. */
export function checkImage(scope: string, field: string, value: string): string {
  const pinned = /^[a-z0-9][a-z0-9._\-/:]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[a-f0-9]{64})$/;
  if (typeof value !== 'string' || !pinned.test(value) || /:latest$/.test(value)) {
    throw new PropsError(scope, field, 'must be an image reference with an explicit tag (not "latest") or digest', value);
  }
  return value;
}

/** Go-style duration as Envoy and Kubernetes write them: "10s", "1.5s", "500ms", "1000s", "30m". */
export function checkDuration(scope: string, field: string, value: string): string {
  if (typeof value !== 'string' || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(value)) {
    throw new PropsError(scope, field, 'must be a duration such as "500ms", "10s" or "5m"', value);
  }
  return value;
}

/** Envoy's proto3-JSON Duration accepts seconds only ("10s", "0.5s"); convert from the friendlier forms. */
export function toProtoDuration(duration: string): string {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let seconds = 0;
  for (const m of duration.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    seconds += Number(m[1]) * units[m[2]];
  }
  return `${Number(seconds.toFixed(9))}s`;
}

/** A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 alphanumerics, `-`, `_`, `.`. */
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * A non-empty label map with valid keys and values (what a selector's `matchLabels` accepts). Empty maps are refused:
 * as a selector they would select everything, which a caller should say on purpose, not by omission.
 * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
 */
export function checkLabels(scope: string, field: string, value: Readonly<Record<string, string>>): Record<string, string> {
  const requirement = 'must be a non-empty map of Kubernetes labels (keys `[prefix/]name`, values of at most 63 alphanumerics, \'-\', \'_\' or \'.\')';
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.keys(value).length === 0) {
    throw new PropsError(scope, field, requirement, value);
  }
  for (const [key, v] of Object.entries(value)) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    const keyOk = LABEL_NAME.test(name) && (prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix)));
    if (!keyOk || typeof v !== 'string' || (v !== '' && !LABEL_NAME.test(v))) {
      throw new PropsError(scope, field, requirement, value);
    }
  }
  return { ...value };
}

/** An IPv4 or IPv6 CIDR ("10.0.0.0/8", "fd00::/8"), as a NetworkPolicy `ipBlock` takes it. */
export function checkCidr(scope: string, field: string, value: string): string {
  const m = typeof value === 'string' ? /^([^/\s]+)\/(\d{1,3})$/.exec(value) : null;
  const family = m ? isIP(m[1]) : 0;
  const bits = m ? Number(m[2]) : NaN;
  if (!m || family === 0 || bits > (family === 4 ? 32 : 128)) {
    throw new PropsError(scope, field, 'must be an IPv4 or IPv6 CIDR such as "10.0.0.0/8" or "fd00::/64"', value);
  }
  return value;
}
