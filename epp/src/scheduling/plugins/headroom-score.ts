/**
 * llm-d-router v0.10.0's `latency-scorer` score (`pkg/epp/framework/plugins/scheduling/scorer/latency/plugin.go`
 * Score and scoreBucket @ v0.10.0) with its DefaultConfig (`ttftWeight` 0.8, `tpotWeight` 0.2,
 * `headroomSelectionStrategy: least`), over the `predicted-latency-producer`'s predictions: what kvroute's
 * `latency-scorer` scores when a producer predicts with it (llm-d's predicted-latency configs).
 */
import type { LatencyPredictionInfo } from './predicted-latency-producer';

/** plugin.go's `wMax` (minWeight 0): a bucket's scores are whole hundredths in [0.01, 1.01]. */
const W_MAX = 100;
/** plugin.go's `eps`: a headroom range at most this (ms) counts as none. */
const EPS = 1e-9;
/** DefaultConfig's TTFT and TPOT weights, normalized as normalizedWeights does (0.8 / 1.0, 0.2 / 1.0). */
const TTFT_WEIGHT = 0.8;
const TPOT_WEIGHT = 0.2;

/**
 * Score: every candidate 0, then one group scored by `scoreBucket`: the candidates with no negative headroom (a
 * candidate without a prediction among them) when there are any; else, all negative (every candidate without an SLO
 * header: headroom is 0 − predicted), the idle ones (no request dispatched there) when there are any; else the least
 * severe deficit bucket: TPOT negative only, then TTFT negative only, then both. `infos[i]` is candidate `i`'s
 * prediction. The weighted random picker never draws a candidate scored 0 while another scores more.
 */
export function headroomScoresInto(infos: readonly (LatencyPredictionInfo | undefined)[], out: Float64Array): void {
  const n = infos.length;
  out.fill(0, 0, n);
  const positive: number[] = [];
  const negative: number[] = [];
  for (let i = 0; i < n; i++) {
    const info = infos[i];
    if (info !== undefined && (info.ttftHeadroom < 0 || info.tpotHeadroom < 0)) negative.push(i);
    else positive.push(i);
  }
  if (positive.length > 0) return scoreBucket(infos, positive, out);
  const idle = negative.filter((i) => infos[i]!.dispatchedRequestCount === 0);
  if (idle.length > 0) return scoreBucket(infos, idle, out);
  const tpotOnly: number[] = [];
  const ttftOnly: number[] = [];
  const both: number[] = [];
  for (const i of negative) {
    const ttftNegative = infos[i]!.ttftHeadroom < 0;
    const tpotNegative = infos[i]!.tpotHeadroom < 0;
    if (ttftNegative && tpotNegative) both.push(i);
    else if (ttftNegative) ttftOnly.push(i);
    else if (tpotNegative) tpotOnly.push(i);
    else both.push(i);
  }
  scoreBucket(infos, tpotOnly.length > 0 ? tpotOnly : ttftOnly.length > 0 ? ttftOnly : both, out);
}

/**
 * scoreBucket with the `least` strategy (the default, and forced for negative headroom): |headroom| min-max normalized
 * within the bucket per dimension (0.5 for a dimension without range, whose weight then goes to the other one),
 * blended 0.8 TTFT / 0.2 TPOT, and `(int((1 − blend) × 100) + 1) ÷ 100`: the smallest |headroom| 1.01, the largest
 * 0.01. With no SLO, |headroom| is the prediction: the fastest candidate 1.01, the slowest 0.01.
 */
function scoreBucket(infos: readonly (LatencyPredictionInfo | undefined)[], bucket: readonly number[], out: Float64Array): void {
  const ttft = (i: number): number => Math.abs(infos[i]?.ttftHeadroom ?? 0);
  const tpot = (i: number): number => Math.abs(infos[i]?.tpotHeadroom ?? 0);
  // As plugin.go: from ±MaxFloat64, each bound moved by `<` / `>` alone, so a NaN headroom (an SLO header of "NaN",
  // which Go's ParseFloat takes) never becomes a bound (Math.min would make it one): a dimension whose headrooms are all
  // NaN keeps MaxFloat64 / -MaxFloat64, a range of -Inf, "no range", and gives its weight to the other dimension.
  let minTtft = Number.MAX_VALUE;
  let maxTtft = -Number.MAX_VALUE;
  let minTpot = Number.MAX_VALUE;
  let maxTpot = -Number.MAX_VALUE;
  for (const i of bucket) {
    if (ttft(i) < minTtft) minTtft = ttft(i);
    if (ttft(i) > maxTtft) maxTtft = ttft(i);
    if (tpot(i) < minTpot) minTpot = tpot(i);
    if (tpot(i) > maxTpot) maxTpot = tpot(i);
  }
  const ttftRange = maxTtft - minTtft;
  const tpotRange = maxTpot - minTpot;
  let alpha = TTFT_WEIGHT / (TTFT_WEIGHT + TPOT_WEIGHT);
  let beta = TPOT_WEIGHT / (TTFT_WEIGHT + TPOT_WEIGHT);
  if (ttftRange <= EPS && tpotRange > EPS) [alpha, beta] = [0, 1];
  else if (tpotRange <= EPS && ttftRange > EPS) [alpha, beta] = [1, 0];
  for (const i of bucket) {
    const nTtft = ttftRange > EPS ? (ttft(i) - minTtft) / ttftRange : 0.5;
    const nTpot = tpotRange > EPS ? (tpot(i) - minTpot) / tpotRange : 0.5;
    const combined = alpha * nTtft + beta * nTpot;
    // Go's int() truncates toward zero. An infinite headroom (x-llm-d-slo-ttft-ms: inf) makes the blend NaN, whose
    // int() Go leaves to the platform (amd64: MinInt64, which the profile's enforceScoreRange clamps to 0): NaN is kept,
    // and the profile counts it 0 (scheduler.ts clampScore), so every candidate scores 0 and the picker draws uniformly.
    out[i] = (Math.trunc((1 - combined) * W_MAX) + 1) / W_MAX;
  }
}
