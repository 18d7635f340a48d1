/**
 * An SGLang-style cache-aware router as a `RequestDirector` (our own implementation of the policy the SGLang router
 * documents; see shared/reference/peers-vllm-kv-workloads.md §1.3):
 *
 * 1. Load = the router's own count of in-flight requests per worker. The system is imbalanced when
 *    `max − min > balanceAbsThreshold` and `max > balanceRelThreshold · min`; then the least-loaded worker gets the
 *    request (its text still goes into that worker's tree).
 * 2. Otherwise the request's text is matched against each worker's approximate prefix tree (raw characters, no
 *    tokenizer). If the longest match covers more than `cacheThreshold` of the text, that worker gets it; if not (a
 *    cache miss), the least-loaded worker does (`missRouting: 'least-load'`, the first of equal loads, as Rust's
 *    `min_by_key` picks): SGLang's code since sgl-project/sglang PR #14650 (merged 2025-12-08,
 *    sgl-model-gateway/src/policies/cache_aware.rs), although upstream's header comment still says "smallest tree".
 *    `missRouting: 'smallest-tree'` is the router before that change (`tree.get_smallest_tenant()`,
 *    sgl-router/src/policies/cache_aware.rs), which every run recorded before 2026-12-03 used.
 * 3. The text is inserted into the chosen worker's tree; trees over `maxTreeChars` lose their least-recently-used
 *    leaves.
 *
 * Differences from the SGLang router, on purpose: eviction runs synchronously after an insert instead of on a
 * background timer (deterministic, testable); one tree per worker instead of one multi-tenant tree (same matches);
 * the routing text is the chat rendered as ChatML (`parseRequestBody`, as the EPP hashes it) rather than SGLang's own
 * text extraction (message contents joined by spaces); ties between equally long matches, and between equally small
 * trees, go to the less loaded worker, where SGLang takes the first tenant in its map's order, whatever its load.
 */
import type { IncomingRequest, ReleaseOutcome, RequestDirector, RouteDecision } from '@kvroute/epp/extproc';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { ApproxPrefixTree } from './prefix-tree';
import { leastLoadedIndex, type Ticket } from './simple';

export interface CacheAwareOptions {
  /** Route to the best-matching worker only when matched chars / text chars exceeds this. @default 0.3 (SGLang) */
  readonly cacheThreshold?: number;
  /** @default 64 (SGLang) */
  readonly balanceAbsThreshold?: number;
  /** @default 1.5 (SGLang) */
  readonly balanceRelThreshold?: number;
  /** Per-worker tree budget in characters. @default 67108864 (SGLang's max_tree_size) */
  readonly maxTreeChars?: number;
  /**
   * Where a cache miss (match rate ≤ `cacheThreshold`) goes: the least-loaded worker (SGLang since PR #14650) or the
   * worker with the smallest tree (SGLang before it). @default 'least-load'
   */
  readonly missRouting?: CacheMissRouting;
}

export type CacheMissRouting = 'least-load' | 'smallest-tree';
export const CACHE_MISS_ROUTINGS: readonly CacheMissRouting[] = ['least-load', 'smallest-tree'];

export const SGLANG_DEFAULTS: Required<CacheAwareOptions> = {
  cacheThreshold: 0.3,
  balanceAbsThreshold: 64,
  balanceRelThreshold: 1.5,
  maxTreeChars: 67_108_864,
  missRouting: 'least-load',
};

/** The branch that decided: a cache miss is named by where it went (`missRouting`). */
export type CacheAwareBranch = 'imbalanced' | 'prefix-match' | CacheMissRouting;

export interface CacheAwareChoice {
  readonly index: number;
  readonly branch: CacheAwareBranch;
  /** Best match over all workers / text length (0 on the imbalanced branch, which does not look). */
  readonly matchRate: number;
}

/** SGLang's test: `max − min > abs` and `max > rel · min` over the workers' in-flight counts. */
export function isImbalancedLoad(load: readonly number[], abs: number, rel: number): boolean {
  if (load.length === 0) return false;
  const max = Math.max(...load);
  const min = Math.min(...load);
  return max - min > abs && max > rel * min;
}

export class CacheAwareDirector implements RequestDirector {
  readonly endpoints: readonly string[];
  readonly options: Required<CacheAwareOptions>;
  readonly trees: readonly ApproxPrefixTree[];
  /** How many requests each branch decided. */
  readonly decisions: Record<CacheAwareBranch, number> = { imbalanced: 0, 'prefix-match': 0, 'least-load': 0, 'smallest-tree': 0 };
  private readonly load: number[];

  constructor(endpoints: readonly string[], options: CacheAwareOptions = {}) {
    if (endpoints.length === 0) throw new Error('a director needs at least one endpoint');
    this.endpoints = [...endpoints];
    this.options = { ...SGLANG_DEFAULTS, ...options };
    const o = this.options;
    if (!(o.cacheThreshold >= 0 && o.cacheThreshold <= 1)) throw new Error(`cacheThreshold must be in [0, 1], got ${o.cacheThreshold}`);
    if (!(o.balanceAbsThreshold >= 0)) throw new Error(`balanceAbsThreshold must be >= 0, got ${o.balanceAbsThreshold}`);
    if (!(o.balanceRelThreshold >= 1)) throw new Error(`balanceRelThreshold must be >= 1, got ${o.balanceRelThreshold}`);
    if (!(o.maxTreeChars >= 1)) throw new Error(`maxTreeChars must be >= 1, got ${o.maxTreeChars}`);
    if (!CACHE_MISS_ROUTINGS.includes(o.missRouting)) throw new Error(`missRouting must be one of ${CACHE_MISS_ROUTINGS.join(', ')}, got ${String(o.missRouting)}`);
    this.trees = endpoints.map(() => new ApproxPrefixTree());
    this.load = endpoints.map(() => 0);
  }

  /** In-flight requests per worker, in endpoint order. */
  get inFlight(): readonly number[] {
    return this.load;
  }

  /** True when the current loads count as imbalanced under the two thresholds. */
  isImbalanced(): boolean {
    return isImbalancedLoad(this.load, this.options.balanceAbsThreshold, this.options.balanceRelThreshold);
  }

  /**
   * Picks a worker for `text`, inserts the text into its tree and counts the request in flight (the caller releases
   * it with `done`). Ties go to the less loaded worker, then the earlier one.
   */
  choose(text: string): CacheAwareChoice {
    let index: number;
    let branch: CacheAwareBranch;
    let matchRate = 0;
    if (this.isImbalanced()) {
      index = leastLoadedIndex(this.load);
      branch = 'imbalanced';
    } else {
      let best = 0;
      let bestLen = -1;
      this.trees.forEach((t, i) => {
        const m = t.matchLength(text);
        if (m > bestLen || (m === bestLen && this.load[i] < this.load[best])) {
          best = i;
          bestLen = m;
        }
      });
      matchRate = text.length > 0 ? bestLen / text.length : 0;
      if (matchRate > this.options.cacheThreshold) {
        index = best;
        branch = 'prefix-match';
      } else if (this.options.missRouting === 'least-load') {
        index = leastLoadedIndex(this.load);
        branch = 'least-load';
      } else {
        index = 0;
        this.trees.forEach((t, i) => {
          const s = this.trees[index].size;
          if (t.size < s || (t.size === s && this.load[i] < this.load[index])) index = i;
        });
        branch = 'smallest-tree';
      }
    }
    const tree = this.trees[index];
    tree.insert(text);
    if (tree.size > this.options.maxTreeChars) tree.evictTo(this.options.maxTreeChars);
    this.load[index]++;
    this.decisions[branch]++;
    return { index, branch, matchRate };
  }

  /** Ends a request counted by `choose`. */
  done(index: number): void {
    if (this.load[index] > 0) this.load[index]--;
  }

  async route(req: IncomingRequest, _signal?: AbortSignal): Promise<RouteDecision> {
    let text = '';
    if (req.body !== undefined) {
      try {
        text = parseRequestBody(req.body).prompt;
      } catch {
        text = ''; // not an OpenAI body: nothing to match, so it is routed as a cache miss
      }
    }
    const { index } = this.choose(text);
    const ticket: Ticket = { index };
    return { kind: 'route', endpoint: this.endpoints[index], ticket };
  }

  release(ticket: unknown, _outcome: ReleaseOutcome): void {
    this.done((ticket as Ticket).index);
  }
}
