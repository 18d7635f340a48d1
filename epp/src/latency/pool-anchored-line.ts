/**
 * A pod's fitted line that follows the pool's while the pod is not observed, shared by the TTFT model
 * (`pod-latency-model.ts`, "A pod not observed for a while", where the reasons are) and the TPOT model
 * (`pod-tpot-model.ts`): from `staleAfterMs` after the pod's last observation its line is pulled toward the pool's
 * reference line, the distance halving every `staleAfterMs` again, and the reference takes the configured prior's place
 * in its fit; `PoolReferenceLine` is that reference, the median slope and median intercept of the pods observed
 * recently.
 */
import { halfLifeDecay, type DecayedRobustLinearFit, type LinearEstimate } from './linear-fit';

/** A pod is unobserved after this fraction of the half-life, and the pull halves the distance every such stretch. */
const STALE_HALF_LIFE_FRACTION = 1 / 6;
/** The pool's reference is recomputed at most once per this fraction of the half-life. */
const REFERENCE_REFRESH_HALF_LIFE_FRACTION = 1 / 1000;

export class PoolAnchoredLine {
  /** When the pod was last observed (the EPP's clock), undefined before any. */
  private lastObservedMs: number | undefined;
  /** How far the staleness pull has been applied: each stretch of time is applied once. */
  private pulledToMs = -Infinity;
  /** The pool's line the fit last anchored on (its prior's place), undefined: the configured prior. */
  private anchor: LinearEstimate | undefined;
  /** After this long without an observation the pod counts as unobserved, and the pull's half-life. */
  readonly staleAfterMs: number;

  /**
   * @param fit the pod's own fit, with its configured prior
   * @param reference the pool's reference line now (`PoolReferenceLine.at`), undefined with no pod observed recently
   */
  constructor(readonly fit: DecayedRobustLinearFit, halfLifeMs: number, private readonly reference?: (nowMs: number) => LinearEstimate | undefined) {
    this.staleAfterMs = halfLifeMs * STALE_HALF_LIFE_FRACTION;
  }

  /** The pod was observed now (a scrape counted what the model learns from), whether or not the interval is fitted. */
  observed(nowMs: number): void {
    this.lastObservedMs = nowMs;
  }

  /** Whether the pod was observed within `staleAfterMs` of `nowMs`. */
  observedSince(nowMs: number): boolean {
    return this.lastObservedMs !== undefined && nowMs - this.lastObservedMs <= this.staleAfterMs;
  }

  /** The pod's line now, pulled toward the pool's for the time it has gone unobserved. */
  line(nowMs: number): LinearEstimate {
    const reference = this.reference?.(nowMs);
    this.anchor = reference;
    if (reference !== undefined) {
      // Pulled from the later of the pod's going stale and the last pull: each stretch of time is applied once.
      const from = Math.max(this.pulledToMs, (this.lastObservedMs ?? -Infinity) + this.staleAfterMs);
      if (nowMs > from) {
        this.fit.pullToward(reference, halfLifeDecay(from, nowMs, this.staleAfterMs));
        this.pulledToMs = nowMs;
      }
    }
    return this.fit.estimate(nowMs, reference);
  }

  /** The pod's line on its own data and the anchor it last used, without pulling: for the pool's reference. */
  anchoredLine(nowMs: number): LinearEstimate {
    return this.fit.estimate(nowMs, this.anchor);
  }
}

/**
 * The pool's line for pods not observed for a while: the median slope and the median intercept of the pods observed
 * within their `staleAfterMs` that have data of their own, each pod's own fit; undefined with none. Recomputed at most
 * once per thousandth of the half-life.
 */
export class PoolReferenceLine {
  private reference: LinearEstimate | undefined;
  private atMs = Number.NaN;
  private readonly refreshMs: number;

  constructor(halfLifeMs: number, private readonly lines: () => Iterable<PoolAnchoredLine>) {
    this.refreshMs = halfLifeMs * REFERENCE_REFRESH_HALF_LIFE_FRACTION;
  }

  at(nowMs: number): LinearEstimate | undefined {
    if (nowMs - this.atMs < this.refreshMs) return this.reference;
    this.atMs = nowMs;
    const slopes: number[] = [];
    const intercepts: number[] = [];
    for (const line of this.lines()) {
      if (!line.observedSince(nowMs) || line.fit.dataWeight(nowMs) === 0) continue;
      const { slope, intercept } = line.anchoredLine(nowMs);
      slopes.push(slope);
      intercepts.push(intercept);
    }
    this.reference = slopes.length === 0 ? undefined : { slope: median(slopes), intercept: median(intercepts) };
    return this.reference;
  }
}

function median(values: number[]): number {
  values.sort((a, b) => a - b);
  const mid = values.length >>> 1;
  return values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}
