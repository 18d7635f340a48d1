/**
 * An online fit of `y = intercept + slope · x` (here: a pod's TTFT without queueing = fixed overhead + seconds per
 * uncached prompt token × uncached tokens) that is
 * - **decaying**: every observation's weight halves each `halfLifeMs`, so the fit follows a pod that slows down or
 *   speeds up (a co-tenant, thermal throttling, a different batch mix);
 * - **robust**: an observation far from the current line is down-weighted (Huber's weights, residual scale from a
 *   decayed mean absolute residual), so one GC pause or one request stuck behind a long prefill does not drag the line;
 *   a persistent change still wins, because the scale grows with persistent residuals and Huber never zeroes a weight;
 * - **anchored on a prior**: `priorWeight` pseudo-observations on the prior line (half at x = 0, half at `priorX`), which
 *   never decay. With no data the fit is the prior; with a few observations at one x only, the slope leans on the prior
 *   while the intercept follows the data; with plenty of data the prior's share becomes negligible.
 * The result is constrained to a non-negative slope and intercept (a negative cost per token is noise, not physics).
 *
 * Sufficient statistics only (five sums), O(1) per observation and per prediction.
 */
export interface LinearPrior {
  readonly intercept: number;
  readonly slope: number;
  /** Pseudo-observations the prior is worth (in units of observation weight). */
  readonly weight: number;
  /** Where the second half of the prior's weight sits on the x axis (a typical x), so the prior also pins the slope. */
  readonly x: number;
}

export interface LinearFitOptions {
  readonly prior: LinearPrior;
  /** Data weight halves every this many milliseconds. */
  readonly halfLifeMs: number;
  /** Huber's tuning constant in units of the residual scale. @default 2 */
  readonly huberK?: number;
}

export interface LinearEstimate {
  readonly intercept: number;
  readonly slope: number;
}

/** Scale of a residual: below this fraction of the predicted y, residuals count as noise, never as outliers. */
const MIN_RELATIVE_SCALE = 0.05;
/** The mean absolute residual of a normal sample is ~0.8 σ; this turns it into a σ-like scale. */
const MAD_TO_SIGMA = 1.25;

export class DecayedRobustLinearFit {
  private w = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  /** Decayed mean absolute residual (robust scale) and its weight. */
  private absResidual = 0;
  private absResidualWeight = 0;
  private lastMs: number | undefined;
  private cached: LinearEstimate | undefined;
  private cachedAnchor: LinearEstimate | undefined;
  private observations = 0;
  private readonly huberK: number;

  constructor(private readonly options: LinearFitOptions) {
    if (!(options.halfLifeMs > 0)) throw new RangeError(`halfLifeMs must be > 0, got ${options.halfLifeMs}`);
    const { prior } = options;
    if (!(prior.weight > 0) || !(prior.x > 0) || !(prior.slope >= 0) || !(prior.intercept >= 0)) {
      throw new RangeError('prior needs weight > 0, x > 0, slope >= 0 and intercept >= 0');
    }
    this.huberK = options.huberK ?? 2;
  }

  /** Observations taken so far (not decayed). */
  get count(): number {
    return this.observations;
  }

  /** The data's weight now, after decay (0 before any observation). */
  dataWeight(nowMs: number): number {
    return this.w * this.decayFactor(nowMs);
  }

  /** The data's weighted mean x, or undefined before any observation. */
  meanX(): number | undefined {
    return this.w > 0 ? this.sx / this.w : undefined;
  }

  /**
   * Adds an observation of weight `weight` (e.g. the number of requests an interval's mean stands for) at `nowMs`.
   * Returns the Huber weight it was given (1 = inlier).
   */
  observe(x: number, y: number, weight: number, nowMs: number): number {
    if (!Number.isFinite(x) || !Number.isFinite(y) || !(weight > 0)) return 0;
    this.decayTo(nowMs);
    const predicted = this.predictAt(x);
    const residual = y - predicted;
    const scale = Math.max(
      this.absResidualWeight > 0 ? (MAD_TO_SIGMA * this.absResidual) / this.absResidualWeight : 0,
      MIN_RELATIVE_SCALE * Math.max(predicted, 1e-6),
    );
    const huber = Math.abs(residual) <= this.huberK * scale ? 1 : (this.huberK * scale) / Math.abs(residual);
    // The scale learns from the residual clipped at 3 scales: an outlier raises it a little, a persistent shift
    // raises it each time until the line has moved.
    this.absResidual += weight * Math.min(Math.abs(residual), 3 * scale);
    this.absResidualWeight += weight;
    const w = weight * huber;
    this.w += w;
    this.sx += w * x;
    this.sy += w * y;
    this.sxx += w * x * x;
    this.sxy += w * x * y;
    this.observations++;
    this.cached = undefined;
    return huber;
  }

  /**
   * Data that no longer describe the pod: each observation's y becomes `keep · y + (1 − keep) · line(x)` (the data's
   * own line moves that share of the way to `line`) and its weight is multiplied by `keep` (it is less evidence, so the
   * pod's next observations move the fit more). For a pod the EPP has stopped observing
   * (`pod-latency-model.ts`, "A pod not observed for a while"); pass `line` as the anchor to `estimate` too, or the
   * prior gains the share the data lose.
   */
  pullToward(line: LinearEstimate, keep: number): void {
    if (this.w === 0 || !(keep < 1)) return;
    const k = Math.max(0, keep);
    // Sufficient statistics of points on `line` at the data's own x: Σw·y = a·Σw + b·Σw·x, Σw·x·y = a·Σw·x + b·Σw·x².
    this.sy = k * (k * this.sy + (1 - k) * (line.intercept * this.w + line.slope * this.sx));
    this.sxy = k * (k * this.sxy + (1 - k) * (line.intercept * this.sx + line.slope * this.sxx));
    this.w *= k;
    this.sx *= k;
    this.sxx *= k;
    // The residual total stays while its weight fades: the scale grows by 1/keep, so the pod's next observations count
    // in full wherever they fall (against a line pulled from elsewhere, no residual is yet an outlier).
    this.absResidualWeight *= k;
    this.cached = undefined;
  }

  /**
   * The current line (prior and decayed data combined). `anchor`, when given, takes the prior's place (same weight, same
   * x): a pod's model anchors on the pool's line once the pool has one (`pod-latency-model.ts`).
   */
  estimate(nowMs?: number, anchor?: LinearEstimate): LinearEstimate {
    if (nowMs !== undefined) this.decayTo(nowMs);
    if (anchor !== this.cachedAnchor) {
      this.cached = undefined;
      this.cachedAnchor = anchor;
    }
    this.cached ??= this.solve(anchor ?? this.options.prior);
    return this.cached;
  }

  predictAt(x: number): number {
    const { intercept, slope } = this.estimate(undefined, this.cachedAnchor);
    return intercept + slope * x;
  }

  private decayFactor(nowMs: number): number {
    return halfLifeDecay(this.lastMs, nowMs, this.options.halfLifeMs);
  }

  private decayTo(nowMs: number): void {
    const f = this.decayFactor(nowMs);
    if (this.lastMs === undefined || nowMs > this.lastMs) this.lastMs = nowMs;
    if (f === 1) return;
    this.w *= f;
    this.sx *= f;
    this.sy *= f;
    this.sxx *= f;
    this.sxy *= f;
    this.absResidual *= f;
    this.absResidualWeight *= f;
    this.cached = undefined;
  }

  private solve(anchor: LinearEstimate): LinearEstimate {
    const prior = { ...this.options.prior, intercept: anchor.intercept, slope: anchor.slope };
    if (this.w === 0) return { intercept: prior.intercept, slope: prior.slope };
    const half = prior.weight / 2;
    const yAtX = prior.intercept + prior.slope * prior.x;
    // The prior's two pseudo-points: (0, intercept) and (x, intercept + slope·x), half the weight each.
    const w = this.w + prior.weight;
    const sx = this.sx + half * prior.x;
    const sy = this.sy + half * prior.intercept + half * yAtX;
    const sxx = this.sxx + half * prior.x * prior.x;
    const sxy = this.sxy + half * prior.x * yAtX;
    const varX = sxx - (sx * sx) / w;
    let slope = varX > 0 ? (sxy - (sx * sy) / w) / varX : prior.slope;
    let intercept = (sy - slope * sx) / w;
    if (slope < 0) {
      slope = 0;
      intercept = sy / w;
    }
    if (intercept < 0) {
      intercept = 0;
      slope = sxx > 0 ? Math.max(0, sxy / sxx) : prior.slope;
    }
    return { intercept, slope };
  }
}

/**
 * The factor a weight recorded at `fromMs` keeps at `nowMs` when it halves every `halfLifeMs`: 1 before any record
 * and for a clock that stepped back.
 */
export function halfLifeDecay(fromMs: number | undefined, nowMs: number, halfLifeMs: number): number {
  if (fromMs === undefined || nowMs <= fromMs) return 1;
  return Math.pow(0.5, (nowMs - fromMs) / halfLifeMs);
}
