/**
 * The upstream side of the gateway: the endpoint pool (Envoy's cluster membership), the override_host reading of the
 * EPP's pick, and the two fallback policies the EnvoyFilter / DestinationRule can configure (round robin, ring hash
 * on a header). Written from the behaviour stated in Envoy's `override_host.proto` and the ring-hash docs, not from
 * Envoy's code.
 */
import { createHash } from 'crypto';
import { isIPv6 } from 'net';
import { monotonicMs } from './clock';

/** `ip:port`, `[ipv6]:port` or `hostname:port`, normalized to lower case with IPv6 in brackets. */
export interface Endpoint {
  /** The normalized `host:port` string, the identity used everywhere (stats, picks, the served header). */
  readonly address: string;
  /** Host as `http.request` wants it (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parses one endpoint address. Returns an error message instead of throwing so callers can name their own flag.
 * IPv6 must be bracketed (`[::1]:8000`), as in Envoy's override host values.
 */
export function parseEndpoint(raw: string): Endpoint | string {
  const s = raw.trim().toLowerCase();
  if (s === '') return 'empty address';
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') return `'${raw}' is not [ipv6]:port`;
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    if (!isIPv6(host)) return `'${raw}' has an invalid IPv6 address`;
  } else {
    const colon = s.lastIndexOf(':');
    if (colon <= 0) return `'${raw}' is not host:port`;
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(':')) return `'${raw}': IPv6 addresses must be bracketed, e.g. [::1]:8000`;
    const numeric = /^[\d.]+$/.test(host);
    if (numeric ? !IPV4.test(host) : !HOSTNAME.test(host)) return `'${raw}' has an invalid host`;
  }
  if (!/^\d{1,5}$/.test(portText)) return `'${raw}' has an invalid port`;
  const port = Number(portText);
  if (port < 1 || port > 65535) return `'${raw}' has a port outside 1..65535`;
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { address, host, port };
}

export interface EndpointHealth {
  /** Successful upstream responses (any status) served by this endpoint. */
  served: number;
  /** Times this endpoint was the first choice of an EPP pick that the gateway honoured. */
  picked: number;
  connectFailures: number;
  inFlight: number;
  /** Epoch ms until which fallback policies avoid this endpoint (passive health after a connect failure). */
  ejectedUntil: number;
}

/** The cluster: a fixed, ordered set of endpoints with passive health. */
export class EndpointPool {
  readonly endpoints: readonly Endpoint[];
  readonly health: ReadonlyMap<string, EndpointHealth>;
  private readonly byAddress = new Map<string, Endpoint>();

  constructor(endpoints: readonly Endpoint[], private readonly ejectMs: number, private readonly now: () => number = monotonicMs) {
    if (endpoints.length === 0) throw new Error('the endpoint pool is empty');
    const health = new Map<string, EndpointHealth>();
    for (const e of endpoints) {
      if (this.byAddress.has(e.address)) throw new Error(`endpoint ${e.address} is listed twice`);
      this.byAddress.set(e.address, e);
      health.set(e.address, { served: 0, picked: 0, connectFailures: 0, inFlight: 0, ejectedUntil: 0 });
    }
    this.endpoints = endpoints;
    this.health = health;
  }

  get size(): number {
    return this.endpoints.length;
  }

  get(address: string): Endpoint | undefined {
    return this.byAddress.get(address);
  }

  /** Resolves any spelling of an address (`10.0.0.1:8000`, `[::1]:80`) to a pool member, if it is one. */
  lookup(raw: string): Endpoint | undefined {
    const parsed = parseEndpoint(raw);
    return typeof parsed === 'string' ? undefined : this.byAddress.get(parsed.address);
  }

  /** The member whose address is exactly `address` (no normalization), as Envoy's host map is keyed. */
  exact(address: string): Endpoint | undefined {
    return this.byAddress.get(address);
  }

  isHealthy(e: Endpoint): boolean {
    return this.stat(e).ejectedUntil <= this.now();
  }

  markConnectFailure(e: Endpoint): void {
    const h = this.stat(e);
    h.connectFailures++;
    if (this.ejectMs > 0) h.ejectedUntil = this.now() + this.ejectMs;
  }

  markConnected(e: Endpoint): void {
    this.stat(e).ejectedUntil = 0;
  }

  stat(e: Endpoint): EndpointHealth {
    return this.health.get(e.address) as EndpointHealth;
  }
}

/**
 * Envoy's override_host reading of a pick (`source/extensions/load_balancing_policies/override_host/load_balancer.cc`
 * @ v1.35): only a string value counts (a list or any other kind is ignored and the fallback policy picks,
 * getSelectedHostsFromMetadata); it is split on commas, blanks skipped and each entry trimmed (getSelectedHosts); an
 * entry counts only if it is exactly a pool member's address, as Envoy's host map is keyed (`address()->asString()`:
 * IPv6 lower-case in brackets; findHost), and entries that are not are passed over within the same attempt
 * (getEndpoint). Duplicates stay: each attempt consumes the next entry (consumeNextHost), so `a,a,b` retries `a`.
 * `given`: whether the EPP set any value at all, for the count of picks the gateway could not honour.
 */
export function overrideHosts(value: unknown, pool: EndpointPool): { hosts: Endpoint[]; given: boolean } {
  if (typeof value !== 'string') return { hosts: [], given: value !== undefined && value !== null };
  const hosts: Endpoint[] = [];
  let given = false;
  for (const part of value.split(',')) {
    const entry = part.trim();
    if (entry === '') continue;
    given = true;
    const e = pool.exact(entry);
    if (e) hosts.push(e);
  }
  return { hosts, given };
}

/** A fallback load-balancing policy: yields pool members in preference order for one request. */
export interface FallbackPolicy {
  readonly name: string;
  /**
   * Whether the route's retry policy carries Envoy's `previous_hosts` predicate, so that a retry avoids the hosts
   * already tried. Istio adds it to its default policy (DefaultPolicy) but not when the destination has a consistent
   * hash (DefaultConsistentHashPolicy: "When Consistent Hashing is enabled, we don't want to use other hosts during
   * retries", istio/istio `pilot/pkg/networking/core/route/retry/retry.go` @ 1.27.0 L33-57, chosen by `route.go`
   * L674-678, L696; the same through 1.30.0).
   */
  readonly previousHosts: boolean;
  /** Preference order for this request: every pool member exactly once, healthy ones first. */
  order(hashKey: string | undefined): Endpoint[];
  /**
   * One attempt's host, for a policy that advances on every pick (round robin): Envoy asks the load balancer afresh for
   * each attempt, retries included. Absent: the attempt takes from `order`.
   */
  pick?(tried: ReadonlySet<string>): Endpoint;
}

/**
 * A small seeded PRNG (mulberry32) giving uniform 32-bit values: Envoy draws a random ring point where this gateway
 * draws from a fixed seed, so that benchmark runs stay reproducible.
 */
export function seededRandom32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Istio's `host_selection_retry_max_attempts` beside the `previous_hosts` predicate (`retry.go` @ 1.27.0 L49). */
export const HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5;

/** The seed of a ring's keyless picks unless one is given. */
export const RING_HASH_DEFAULT_SEED = 0x6b76726f;

/** Healthy members first, keeping each group's order; everything is returned, so an all-ejected pool still serves. */
function healthyFirst(pool: EndpointPool, ordered: Endpoint[]): Endpoint[] {
  const healthy: Endpoint[] = [];
  const ejected: Endpoint[] = [];
  for (const e of ordered) (pool.isHealthy(e) ? healthy : ejected).push(e);
  return ejected.length === 0 ? healthy : healthy.concat(ejected);
}

/**
 * Round robin in pool order, starting with the first endpoint (Envoy starts each worker at a random index; this one
 * cursor, from 0, keeps runs reproducible); ejected endpoints are skipped while others remain.
 */
export class RoundRobin implements FallbackPolicy {
  readonly name = 'round_robin';
  readonly previousHosts = true;
  private next = 0;
  private cursor = 0;

  constructor(private readonly pool: EndpointPool) {}

  /**
   * Envoy's pick for one attempt: `hosts_to_use[rr_indexes_[source]++ % hosts_to_use.size()]`
   * (RoundRobinLoadBalancer::unweightedHostPick), so the cursor moves on every pick, a retry's included; under the
   * route's `previous_hosts` predicate a host this request already tried is picked again, up to
   * `host_selection_retry_max_attempts` (5, Istio's retry.go L49) more times, the last pick kept
   * (ZoneAwareLoadBalancerBase::chooseHost, `source/common/upstream/load_balancer_impl.cc`). So with one pod of two
   * down, every request tries it first and retries on the other, as Envoy does without outlier detection. The
   * hosts are the healthy ones (not ejected) while any is.
   */
  pick(tried: ReadonlySet<string>): Endpoint {
    const all = this.pool.endpoints;
    const healthy = all.filter((e) => this.pool.isHealthy(e));
    const hosts = healthy.length > 0 ? healthy : all;
    let host = hosts[this.cursor++ % hosts.length]!;
    for (let i = 0; i < HOST_SELECTION_RETRY_MAX_ATTEMPTS && tried.has(host.address); i++) host = hosts[this.cursor++ % hosts.length]!;
    return host;
  }

  order(): Endpoint[] {
    const n = this.pool.size;
    const eps = this.pool.endpoints;
    const start = this.next % n;
    // The rotation advances past ejected members, so it stays even among the healthy ones.
    let first = start;
    for (let i = 0; i < n; i++) {
      if (this.pool.isHealthy(eps[(start + i) % n])) {
        first = (start + i) % n;
        break;
      }
    }
    this.next = (first + 1) % n;
    const ordered: Endpoint[] = [];
    for (let i = 0; i < n; i++) ordered.push(eps[(first + i) % n]);
    return healthyFirst(this.pool, ordered);
  }
}

function hash32(text: string): number {
  return createHash('md5').update(text).digest().readUInt32BE(0);
}

/**
 * A consistent-hash ring in the manner of Envoy's ring_hash policy: each endpoint owns `ceil(minRingSize / n)`
 * points; a request hashes its key onto the ring and takes the first point at or after it, walking on (to the next
 * distinct endpoint) past ejected endpoints. A request without a key lands on a random ring point, as Envoy's
 * ThreadAwareLoadBalancerBase::LoadBalancerImpl::chooseHost does ("If there is no hash in the context, just choose a
 * random value (this effectively becomes the random LB…)": `const uint64_t h = hash ? hash.value() :
 * random_.random();`, `source/extensions/load_balancing_policies/common/thread_aware_lb_impl.cc`); the draw here is
 * from a seeded generator so that runs repeat. Retries keep to the same host (no `previous_hosts`, see
 * FallbackPolicy).
 */
export class RingHash implements FallbackPolicy {
  readonly name = 'ring_hash';
  readonly previousHosts = false;
  private readonly points: Uint32Array;
  private readonly owners: Uint16Array;
  private readonly random: () => number;

  constructor(private readonly pool: EndpointPool, minRingSize: number, seed: number = RING_HASH_DEFAULT_SEED) {
    const n = pool.size;
    const perHost = Math.max(1, Math.ceil(minRingSize / n));
    const entries: { h: number; i: number }[] = [];
    pool.endpoints.forEach((e, i) => {
      for (let k = 0; k < perHost; k++) entries.push({ h: hash32(`${e.address}_${k}`), i });
    });
    entries.sort((a, b) => a.h - b.h || a.i - b.i);
    this.points = Uint32Array.from(entries.map((x) => x.h));
    this.owners = Uint16Array.from(entries.map((x) => x.i));
    this.random = seededRandom32(seed);
  }

  order(hashKey: string | undefined): Endpoint[] {
    const h = hashKey === undefined ? this.random() : hash32(hashKey);
    // First point >= h (binary search), wrapping to 0.
    let lo = 0;
    let hi = this.points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    const seen = new Set<number>();
    const ordered: Endpoint[] = [];
    const total = this.points.length;
    for (let k = 0; k < total && seen.size < this.pool.size; k++) {
      const owner = this.owners[(lo + k) % total];
      if (seen.has(owner)) continue;
      seen.add(owner);
      ordered.push(this.pool.endpoints[owner]);
    }
    return healthyFirst(this.pool, ordered);
  }
}
