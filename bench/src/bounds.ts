/**
 * Analytic limits for shared-prefix workloads (shared/reference/peers-vllm-kv-workloads.md §7), in the notation there:
 * G groups, P requests per group, shared prefix S tokens, unique question Q tokens, block size B (only full blocks are
 * cacheable: S_b = B·⌊S/B⌋), R replicas, per-replica KV capacity C.
 */

export interface SharedPrefixShape {
  /** Requests per group. */
  readonly P: number;
  /** Shared prefix tokens. */
  readonly S: number;
  /** Unique tokens per request (question, and whatever else follows the shared prefix). */
  readonly Q: number;
  /** KV block size in tokens. */
  readonly B: number;
}

function check(shape: SharedPrefixShape): void {
  const { P, S, Q, B } = shape;
  if (!(P >= 1) || !(S >= 0) || !(Q >= 0) || !(B >= 1) || S + Q <= 0) {
    throw new RangeError(`need P >= 1, S >= 0, Q >= 0, S + Q > 0, B >= 1; got P=${P} S=${S} Q=${Q} B=${B}`);
  }
}

/** The cacheable part of the shared prefix: whole blocks only. */
export function cacheablePrefix(S: number, B: number): number {
  return B * Math.floor(S / B);
}

/** §7.1: best token hit rate (one replica, infinite cache, each group's prefix computed once): (P−1)·S_b / (P·(S+Q)). */
export function idealHitRate(shape: SharedPrefixShape): number {
  check(shape);
  const { P, S, Q, B } = shape;
  return ((P - 1) * cacheablePrefix(S, B)) / (P * (S + Q));
}

/** Expected distinct replicas that P uniformly random picks among R replicas visit: R·(1−(1−1/R)^P). */
export function expectedReplicasVisited(P: number, R: number): number {
  if (!(R >= 1)) throw new RangeError(`need R >= 1, got ${R}`);
  return R * (1 - (1 - 1 / R) ** P);
}

/** §7.2: random/round-robin with infinite cache: (P − R·(1−(1−1/R)^P))·S_b / (P·(S+Q)). */
export function roundRobinHitRate(shape: SharedPrefixShape, R: number): number {
  check(shape);
  const { P, S, Q, B } = shape;
  return ((P - expectedReplicasVisited(P, R)) * cacheablePrefix(S, B)) / (P * (S + Q));
}

export interface FiniteCapacityEstimate {
  /** Random/RR: each replica holds about C/W of the prefixes (independent reference model, LRU). */
  readonly roundRobin: number;
  /** An ideal affinity router: the cluster acts as one cache of R·C. */
  readonly affinity: number;
}

/**
 * §7.3, rough: with a prefix working set of W tokens and C tokens of free capacity per replica (capacity left after the
 * live requests), a replica still holds a prefix it has seen with probability about min(1, C/W) under RR (every
 * replica sees every group) and min(1, R·C/W) under an ideal affinity router (the cluster acts as one cache of R·C).
 * Applied to the repeat visits the infinite-cache rates count: RR ≈ h_RR·min(1, C/W), affinity ≈ h*·min(1, R·C/W).
 */
export function finiteCapacityHitRates(shape: SharedPrefixShape, R: number, W: number, C: number): FiniteCapacityEstimate {
  check(shape);
  if (!(W > 0) || !(C >= 0)) throw new RangeError(`need W > 0 and C >= 0, got W=${W} C=${C}`);
  return {
    roundRobin: roundRobinHitRate(shape, R) * Math.min(1, C / W),
    affinity: idealHitRate(shape) * Math.min(1, (R * C) / W),
  };
}

/** §7.1, multi-turn: a turn of t new tokens after a resident history of H tokens hits B·⌊H/B⌋ / (H + t). */
export function turnHitRate(H: number, t: number, B: number): number {
  if (!(H >= 0) || !(t >= 0) || !(B >= 1) || H + t <= 0) throw new RangeError(`need H, t >= 0, H + t > 0, B >= 1; got H=${H} t=${t} B=${B}`);
  return cacheablePrefix(H, B) / (H + t);
}
