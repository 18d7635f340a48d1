/**
 * The one rule both prefix indexes (`prefix-index.ts`, `kvindex/kv-block-index.ts`) use to keep their entries within a
 * total: while the endpoints want no more than the budget, each gets what it wants; beyond, each gets the same
 * fraction of it (floored), so a pod with twice the KV cache keeps twice the entries and every pod keeps its most
 * recent ones. A global LRU instead would let busy pods evict the entries of quiet pods whose caches vLLM never
 * evicted (vLLM evicts only to make room for new blocks).
 */

/** An endpoint's share: `wanted` is what it would hold alone, `capacity` what it may hold now. */
export interface BudgetShare {
  readonly wanted: number;
  capacity: number;
}

/** Sets every share's capacity so that they add up to at most `budget`; returns their sum. */
export function shareBudget(shares: Iterable<BudgetShare>, budget: number): number {
  const all = [...shares];
  let wantedTotal = 0;
  for (const share of all) wantedTotal += share.wanted;
  const fits = wantedTotal <= budget;
  let sum = 0;
  for (const share of all) {
    share.capacity = fits ? share.wanted : Math.floor((share.wanted * budget) / wantedTotal);
    sum += share.capacity;
  }
  // Floating-point rounding could leave the floors a few entries over the budget; take them from the largest.
  while (sum > budget) {
    let largest = all[0]!;
    for (const share of all) if (share.capacity > largest.capacity) largest = share;
    largest.capacity--;
    sum--;
  }
  return sum;
}

/** The factor every capacity is scaled by: 1 while the wanted total fits the budget. */
export function budgetScale(wantedTotal: number, budget: number): number {
  return wantedTotal > budget ? budget / wantedTotal : 1;
}
