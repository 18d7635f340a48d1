/**
 * Construction-time checks. Every message names the construct and the field, and says what is allowed, so a bad
 * cluster profile fails `cdk8s synth` with a sentence a platform engineer can act on.
 */

import { BlockList, isIP } from 'net';

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

/** RFC 1035 label: what Kubernetes requires of Service names (a DNS-1123 label that starts with a letter). */
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/**
 * A name that becomes a Service's (or a prefix of one): Kubernetes refuses Service names that are not DNS-1035 labels,
 * so `1pool-epp` fails at apply although `1pool` is a valid DNS-1123 label. `reason` ends the message: why this name
 * must be one.
 * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#rfc-1035-label-names
 */
export function checkDns1035Label(scope: string, field: string, value: string, maxLength = 63, reason = ', as Service names are'): string {
  if (typeof value !== 'string' || value.length > maxLength || !DNS_1035_LABEL.test(value)) {
    throw new PropsError(scope, field, `must be a DNS-1035 label (lower-case alphanumerics and '-', starting with a letter, at most ${maxLength} characters)${reason}`, value);
  }
  return value;
}

/** The DNS domain Kubernetes and Istio name Services under by default (kubelet's --cluster-domain, istiod's --domain). */
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/**
 * The cluster's DNS domain, which every in-cluster Service name `<name>.<namespace>.svc.<domain>` ends with: cluster DNS
 * answers only under it, and Istio names each Service's host and `outbound|<port>||<host>` cluster after it.
 */
export function checkClusterDomain(scope: string, value: string | undefined): string {
  return checkDnsSubdomain(scope, 'clusterDomain', value ?? DEFAULT_CLUSTER_DOMAIN);
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

/**
 * An image reference as the kubelet parses it (github.com/distribution/reference regexp.go: an optional registry host
 * with port, then lower-case path components joined by single `/`; no scheme), so a pasted `https://` or a trailing
 * `/` on a registry fails here rather than as `InvalidImageName` on every node.
 */
const IMAGE_DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IMAGE_HOST = `(?:${IMAGE_DOMAIN_COMPONENT}(?:\\.${IMAGE_DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const IMAGE_PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const IMAGE_NAME = `(?:${IMAGE_HOST}/)?${IMAGE_PATH_COMPONENT}(?:/${IMAGE_PATH_COMPONENT})*`;
const IMAGE_REFERENCE = new RegExp(`^${IMAGE_NAME}(?::(?<tag>[\\w][\\w.-]{0,127}))?(?:@(?<digest>sha256:[a-f0-9]{64}))?$`);

/** A container image reference with an explicit tag or digest: GitOps output must not float on `latest`. */
export function checkImage(scope: string, field: string, value: string): string {
  const parts = typeof value === 'string' ? IMAGE_REFERENCE.exec(value)?.groups : undefined;
  if (parts === undefined || (parts.tag === undefined && parts.digest === undefined) || (parts.digest === undefined && parts.tag === 'latest')) {
    throw new PropsError(scope, field, 'must be an image reference with an explicit tag (not "latest") or digest: [host[:port]/]path, lower-case path components joined by single "/", no scheme', value);
  }
  return value;
}

/**
 * Go-style duration as Envoy and Kubernetes write them: "10s", "1.5s", "500ms", "1000s", "30m". Durations that go into
 * an HTTPRoute or a Prometheus Operator object take the stricter {@link checkGatewayApiDuration} and
 * {@link checkPrometheusDuration}.
 */
export function checkDuration(scope: string, field: string, value: string): string {
  if (typeof value !== 'string' || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(value)) {
    throw new PropsError(scope, field, 'must be a duration such as "500ms", "10s" or "5m"', value);
  }
  return value;
}

const UNIT_NS: Readonly<Record<string, bigint>> = { ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };

/**
 * A duration {@link checkDuration} accepted (`30s`, `1m30s`, `1500ms`, `0.3s`), in whole nanoseconds (the precision of
 * Envoy's and protobuf's Duration). Each part's digits are read as written, as decimal, and rounded half up to the
 * nanosecond: no binary fraction creeps in (in floating point `1.005s` read as 1.005 × 1000 ms is 1004.9999999999999),
 * and `0.3s` and `300ms` are the same 300,000,000 ns, which a comparison of two timeouts relies on.
 */
export function durationNanos(duration: string): bigint {
  let ns = 0n;
  for (const m of duration.matchAll(/(\d+)(?:\.(\d+))?(ms|s|m|h)/g)) {
    const fraction = m[2] ?? '';
    const scale = 10n ** BigInt(fraction.length);
    // The part's value × scale, exactly; then × the unit's nanoseconds ÷ scale, rounded half up.
    const scaled = BigInt(m[1]!) * scale + BigInt(fraction === '' ? '0' : fraction);
    ns += (2n * scaled * UNIT_NS[m[3]!]! + scale) / (2n * scale);
  }
  return ns;
}

/** A duration {@link checkDuration} accepted, in milliseconds ({@link durationNanos} ÷ 10⁶: exact below 2⁵³ ns, about 104 days). */
export function durationMs(duration: string): number {
  return Number(durationNanos(duration)) / 1e6;
}

/** Gateway API's Duration (GEP-2257), which the HTTPRoute CRD enforces on `timeouts.request` and `backendRequest`. */
const GATEWAY_API_DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

/**
 * A duration an HTTPRoute's `timeouts` take: 1 to 4 parts, each a whole number of at most 5 digits and a unit `h`, `m`,
 * `s` or `ms`. No fractions: "1.5s" passes {@link checkDuration} but the API server refuses it in an HTTPRoute.
 * @see https://gateway-api.sigs.k8s.io/geps/gep-2257/
 */
export function checkGatewayApiDuration(scope: string, field: string, value: string): string {
  if (typeof value !== 'string' || !GATEWAY_API_DURATION.test(value)) {
    throw new PropsError(scope, field, 'must be a Gateway API duration (1 to 4 parts, each a whole number of at most 5 digits with unit h, m, s or ms, such as "0s", "300s", "1500ms" or "1h30m")', value);
  }
  return value;
}

/**
 * The Prometheus Operator CRDs' Duration (`interval`, `scrapeTimeout`, a rule's `for`), `^(0|(([0-9]+)y)?…(([0-9]+)ms)?)$`
 * in PodMonitor, ServiceMonitor and PrometheusRule v0.84.0, taken here with the units kvroute scales (h, m, s, ms): whole
 * numbers, each unit at most once, in that order.
 */
const PROMETHEUS_DURATION = /^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$/;

/**
 * A duration a Prometheus Operator monitor or rule takes: whole numbers with units in the order h, m, s, ms ("15s",
 * "1m30s", "500ms"). "7.5s" passes {@link checkDuration} but the API server refuses it in a PodMonitor.
 * @see https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.Duration
 */
export function checkPrometheusDuration(scope: string, field: string, value: string): string {
  if (typeof value !== 'string' || value === '' || !PROMETHEUS_DURATION.test(value)) {
    throw new PropsError(scope, field, 'must be a Prometheus Operator duration (whole numbers with units in the order h, m, s, ms, each at most once, such as "15s", "1m30s" or "500ms")', value);
  }
  return value;
}

/**
 * A Gateway API Hostname, as a listener or an HTTPRoute takes it: a lower-case DNS name, optionally with a `*.` wildcard
 * as its first label; never an IP address (the Gateway API refuses them: a listener matches on the Host header's name).
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#hostname
 */
export function checkGatewayHostname(scope: string, field: string, value: string): string {
  const hostname = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  if (typeof value !== 'string' || value.length > 253 || !hostname.test(value) || isIP(value) !== 0) {
    throw new PropsError(scope, field, 'must be a Gateway API hostname (a lower-case DNS name such as "llm.example.com", optionally with a "*." wildcard prefix; not an IP address; at most 253 characters)', value);
  }
  return value;
}

/**
 * A Kubernetes resource quantity, not negative: the API server's grammar (a number, then a binary suffix Ki to Ei, a
 * decimal suffix n, u, m, k, M to E, or an exponent of whole digits), as apimachinery's ParseQuantity reads it.
 * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
 */
export function checkQuantity(scope: string, field: string, value: string): string {
  // An explicit '+' is the API server's too (`+1`); a '-' is refused, as no resource here can be negative. The exponent
  // is whole digits: the CRDs' OpenAPI `quantity` pattern would take `1e1.5`, but these quantities go into core objects,
  // which the API server decodes with ParseQuantity (k8s.io/apimachinery pkg/api/resource/quantity.go
  // parseQuantityString: a '.' after the exponent's digits is ErrFormatWrong), refusing the whole Deployment.
  const quantity = /^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][-+]?[0-9]+))?$/;
  if (typeof value !== 'string' || !quantity.test(value)) {
    throw new PropsError(scope, field, 'must be a Kubernetes quantity that is not negative, such as "500m", "4", "32Gi" or "1.5G"', value);
  }
  return value;
}

/**
 * Envoy's proto3-JSON Duration accepts seconds only ("10s", "0.5s", at most 9 decimals); the friendlier forms are
 * converted through {@link durationNanos}, so the decimals written are exactly the duration's.
 */
export function toProtoDuration(duration: string): string {
  const ns = durationNanos(duration);
  const seconds = ns / 1_000_000_000n;
  const nanos = ns % 1_000_000_000n;
  return nanos === 0n ? `${seconds}s` : `${seconds}.${nanos.toString().padStart(9, '0').replace(/0+$/, '')}s`;
}

/** A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 alphanumerics, `-`, `_`, `.`. */
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * A non-empty label map with valid keys and values (what a selector's `matchLabels` accepts). Empty maps are refused:
 * as a selector they would select everything, which a caller should say on purpose, not by omission. With
 * `allowEmpty`, for maps that select nothing by being empty (an object's own labels, a pod's `nodeSelector`).
 * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
 */
export function checkLabels(scope: string, field: string, value: Readonly<Record<string, string>>, options: { readonly allowEmpty?: boolean } = {}): Record<string, string> {
  const allowEmpty = options.allowEmpty ?? false;
  const requirement = `must be a ${allowEmpty ? '' : 'non-empty '}map of Kubernetes labels (keys \`[prefix/]name\`, values of at most 63 alphanumerics, '-', '_' or '.')`;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || (!allowEmpty && Object.keys(value).length === 0)) {
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

/** A CIDR's address, its family (4 or 6) and its prefix length; undefined for anything else. */
function parseCidr(value: string): { address: string; family: 4 | 6; bits: number } | undefined {
  // No IPv6 zone ("fe80::%eth0"): Node's isIP takes one, the API server's CIDR parser (k8s.io/utils/net
  // ParseCIDRSloppy, as Go's net.ParseCIDR) refuses it, and with it the whole NetworkPolicy.
  const m = typeof value === 'string' ? /^([^/\s%]+)\/(\d{1,3})$/.exec(value) : null;
  const family = m ? isIP(m[1]!) : 0;
  const bits = m ? Number(m[2]) : NaN;
  if (!m || (family !== 4 && family !== 6) || bits > (family === 4 ? 32 : 128)) return undefined;
  return { address: m[1]!, family, bits };
}

/** An IPv4 or IPv6 CIDR ("10.0.0.0/8", "fd00::/8"), as a NetworkPolicy `ipBlock` takes it. */
export function checkCidr(scope: string, field: string, value: string): string {
  if (parseCidr(value) === undefined) {
    throw new PropsError(scope, field, 'must be an IPv4 or IPv6 CIDR such as "10.0.0.0/8" or "fd00::/64"', value);
  }
  return value;
}

/**
 * A NetworkPolicy ipBlock's `except` ranges, each a strict subset of `cidr`: the same address family, a longer prefix,
 * inside it. The API server refuses the whole policy otherwise (kubernetes pkg/apis/networking/validation/validation.go
 * ValidateIPBlock, "must be a strict subset of `cidr`"). `field` is the ipBlock's; errors name `<field>.except[j]`.
 */
export function checkCidrExcept(scope: string, field: string, cidr: string, except: readonly string[]): string[] {
  const block = parseCidr(checkCidr(scope, `${field}.cidr`, cidr))!;
  const type = block.family === 4 ? 'ipv4' : 'ipv6';
  const inside = new BlockList();
  inside.addSubnet(block.address, block.bits, type);
  return except.map((e, j) => {
    const path = `${field}.except[${j}]`;
    const range = parseCidr(checkCidr(scope, path, e))!;
    // With a longer prefix the range lies inside the block exactly when its address does (ValidateIPBlock checks the
    // range's network address, which differs from the written one past the range's prefix only).
    if (range.family !== block.family || range.bits <= block.bits || !inside.check(range.address, type)) {
      throw new PropsError(scope, path, `must be a strict subset of cidr ${JSON.stringify(cidr)} (the same address family, a longer prefix, inside it), as the API server requires of an ipBlock`, e);
    }
    return e;
  });
}
