/**
 * The `adaptive` scrape mode: scrapers stay on the routing thread and the datastore lengthens their common interval
 * when scraping would take too much of that thread. Measured against the worker pool in the EPP benchmark; the
 * worker pool is the default (see DatastoreOptions.scrapeMode for why).
 *
 * Each window (a second) the controller sees how many scrapes finished, what they cost the loop synchronously
 * (decode + parse + apply, ScrapeStatus.lastCostMs) and the loop's utilization, and picks the interval at which the
 * pool's parsing takes `budget` of the loop. A saturated loop (utilization above `highUtilization`) backs off by half
 * again whatever the estimate says, since the HTTP side of a scrape costs the loop too and is not in the estimate.
 * Shrinking back is gradual (a quarter per window) so one quiet window does not swing it to the floor.
 */

export interface AdaptiveIntervalOptions {
  /** The configured `-refreshMetricsInterval`: the interval never goes below it. */
  readonly baseMs: number;
  /**
   * The interval never goes above it. Keep the saturation filter's `metricsStalenessThreshold` at least twice this,
   * or pods whose metrics are merely slow to refresh are dropped as stale. Default 400 ms (kvroute's default config
   * has a 1 s threshold).
   */
  readonly maxMs?: number;
  /** Share of the loop's time the pool's parsing may take. Default 0.2. */
  readonly budget?: number;
  /** Loop utilization (0..1) above which the interval backs off regardless of the estimate. Default 0.85. */
  readonly highUtilization?: number;
}

export interface LoopWindow {
  /** Endpoints being scraped. */
  readonly endpoints: number;
  /** Scrapes that finished in the window. */
  readonly scrapes: number;
  /** Their synchronous cost on the loop, summed, ms. */
  readonly scrapeCostMs: number;
  /** Event-loop utilization over the window, 0..1 (perf_hooks' eventLoopUtilization). */
  readonly utilization: number;
}

export const DEFAULT_ADAPTIVE_MAX_INTERVAL_MS = 400;

/**
 * `worker` mode's scrape budget: the most scrapes a second the EPP makes across the pool. Past `budget × interval`
 * pods every pod's period stretches so the total stays at the budget, up to the same 400 ms ceiling as `adaptive` mode
 * (beyond it, `budget × 0.4` pods, the budget gives way: staleness bounds are sized for that ceiling). Why a budget
 * at all: the worker threads take scraping off the routing loop, not off the machine; at 256 pods every 50 ms the
 * scraping CPU (5,120 HTTP exchanges and parses a second) competes with routing for the EPP's cores and, measured
 * (epp/README.md, "Scraping at 256 pods"), halved routing throughput against 8 pods. With a fixed budget the CPU
 * scraping takes no longer grows with the pool. Per-pod freshness does (256 ms at 256 pods and the default), which the
 * EPP's own in-flight counts bridge: they change with every pick, and the saturation filter adds to each page's queue
 * what was routed less what ended since it (`since-scrape-ledger.ts`), so a longer period neither hides a burst nor
 * caps a pod that serves its requests between two pages. 0 means no budget (every pod at the interval, GIE's
 * behaviour).
 */
export const DEFAULT_SCRAPE_BUDGET_PER_SECOND = 1000;

/** The period every pod is scraped at under a budget (see DEFAULT_SCRAPE_BUDGET_PER_SECOND). */
export function budgetedInterval(endpoints: number, baseMs: number, budgetPerSecond: number, maxMs: number = DEFAULT_ADAPTIVE_MAX_INTERVAL_MS): number {
  if (!(budgetPerSecond >= 0) || !Number.isFinite(budgetPerSecond)) throw new Error(`scrape budget must be a finite number >= 0, got ${budgetPerSecond}`);
  if (budgetPerSecond === 0 || endpoints === 0) return baseMs;
  const ceiling = Math.max(baseMs, maxMs);
  return Math.round(Math.min(ceiling, Math.max(baseMs, (endpoints * 1000) / budgetPerSecond)));
}

/** The interval for the next window, given the current one and what the last window showed. */
export function nextAdaptiveInterval(currentMs: number, window: LoopWindow, options: AdaptiveIntervalOptions): number {
  const base = options.baseMs;
  const max = Math.max(base, options.maxMs ?? DEFAULT_ADAPTIVE_MAX_INTERVAL_MS);
  const budget = options.budget ?? 0.2;
  const high = options.highUtilization ?? 0.85;
  if (!(budget > 0 && budget <= 1)) throw new Error(`budget must be in (0, 1], got ${budget}`);
  const meanCost = window.scrapes > 0 ? window.scrapeCostMs / window.scrapes : 0;
  let target = Math.max(base, (window.endpoints * meanCost) / budget);
  if (window.utilization > high) target = Math.max(target, currentMs * 1.5);
  else if (target < currentMs) target = Math.max(target, currentMs * 0.75);
  return Math.round(Math.min(max, Math.max(base, target)));
}
