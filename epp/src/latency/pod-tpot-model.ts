/**
 * Each pod's time per output token (TPOT), learned online beside the TTFT model (`pod-latency-model.ts`), for the
 * `predicted-latency-producer`'s TPOT side:
 *
 *     TPOT(pod, batch) = i_pod + s_pod · batch
 *
 * where `batch` is the requests decoding together on one of the pod's engines: a decode step's time grows with the
 * sequences it carries (their KV reads), so each running request adds `s_pod` to every token's gap, and `i_pod` is the
 * step at batch 0 (weights, launch overhead). `i_pod` and `s_pod` come from a decayed, robust linear fit
 * (`linear-fit.ts`) with a prior, as the TTFT model's line does.
 *
 * ## The signal
 * vLLM observes, for every output token after a request's first, the seconds since that request's previous token
 * (`IterationStats.update_from_output`, vllm/v1/metrics/stats.py @ v0.10.0) into `vllm:time_per_output_token_seconds`;
 * 0.10.2 observes the same samples into `vllm:inter_token_latency_seconds` too (the old name deprecated). The scrape
 * keeps the histogram's `_count` and `_sum` (`EndpointMetrics.interTokenCount`/`interTokenSecondsSum`). Between two
 * scrapes whose `_count` advanced: y = Δsum ÷ Δcount, the mean gap between tokens in the interval; x = the batch over
 * the interval, the mean of `vllm:num_requests_running` at its two ends per engine (at least 1: a token gap means a
 * request was decoding); weight = Δcount (the tokens the mean stands for), at most `MAX_INTERVAL_TOKENS`, so one long
 * gap between scrapes cannot outweigh the rest. Counters that went back (a restarted server) start a new baseline.
 *
 * llm-d-router's predictor (v0.10.0, `predictedlatency/training.go` buildPredictionRequest) feeds its TPOT model the
 * endpoint's running requests (`NumRequestRunning`: the in-flight producer's request count, else the scraped
 * `RunningRequestsSize`), waiting requests, KV usage, input length and `NumTokensGenerated = 1`; the batch is the
 * feature that sets a decode step's cost, and the one kvroute can pair with a scraped mean.
 *
 * ## A prediction
 * For a candidate: i + s × (its batch with this request: the larger of this EPP's requests in flight on it and the last
 * scrape's running requests, per engine, plus 1), as the TTFT model's slot wait counts occupants (this EPP's count
 * moves with every pick, so a burst sees its own earlier picks at once).
 *
 * ## Before data, and a pod not observed for a while
 * The prior (`DEFAULT_TPOT_PRIOR`): 20 ms per token at batch 0 and 0.2 ms more per running request (a mid-size model
 * on one GPU: ~26 ms at a batch of 32; kvroute's simulator decodes every 20 ms), worth 256 output tokens. As in the TTFT
 * model, a pod whose histogram has not advanced for a sixth of the half-life is pulled toward the pool's line (the
 * median intercept and median slope of the pods observed within that time), which also takes the prior's place in
 * every pod's fit: a pod new to the pool starts on the pool's line, one avoided while slow drifts back to it.
 *
 * ## No histogram, no prediction
 * Until some pod's page has had the histogram (`reported`), `predictSeconds` returns undefined: the producer then
 * neutralizes TPOT as it did before this model (a pool whose servers export no inter-token histogram gets no TPOT from
 * a prior alone).
 */
import type { EndpointMetrics } from '../datastore/types';
import { DecayedRobustLinearFit, type LinearEstimate } from './linear-fit';
import { PoolAnchoredLine, PoolReferenceLine } from './pool-anchored-line';

export interface TpotModelOptions {
  /** Prior seconds per output token at batch 0. */
  readonly priorSeconds: number;
  /** Prior seconds each running request adds to every token's gap. */
  readonly priorSecondsPerRunning: number;
  /** How many output tokens' worth of evidence the prior is. */
  readonly priorWeight: number;
  /** Observations lose half their weight every this many milliseconds (the latency-scorer's `halfLife`). */
  readonly halfLifeMs: number;
}

/** The prior before any pod's data (see "Before data"). */
export const DEFAULT_TPOT_PRIOR = Object.freeze({ priorSeconds: 0.02, priorSecondsPerRunning: 0.0002, priorWeight: 256 });

/** The typical batch the prior's second pseudo-point sits at. */
const PRIOR_TYPICAL_BATCH = 32;
/** An interval stands for at most this many output tokens. */
export const MAX_INTERVAL_TOKENS = 4096;

interface TpotReading {
  readonly updateTime: number;
  readonly count: number | undefined;
  readonly sum: number | undefined;
  /** Running requests per engine. */
  readonly batch: number;
}

/** Running requests per engine on the scrape. */
function batchOf(metrics: EndpointMetrics, running = metrics.runningQueueSize): number {
  const engines = metrics.engines !== undefined && metrics.engines >= 1 ? metrics.engines : 1;
  return Math.max(0, running) / engines;
}

export class PodTpotModel {
  readonly fit: DecayedRobustLinearFit;
  /** The fitted line, pulled toward the pool's while no scrape counts output tokens on the pod (`pool-anchored-line.ts`). */
  readonly anchored: PoolAnchoredLine;
  private last: TpotReading | undefined;

  constructor(options: TpotModelOptions, reference?: (nowMs: number) => LinearEstimate | undefined) {
    this.fit = new DecayedRobustLinearFit({
      prior: { intercept: options.priorSeconds, slope: options.priorSecondsPerRunning, weight: options.priorWeight, x: PRIOR_TYPICAL_BATCH },
      halfLifeMs: options.halfLifeMs,
    });
    this.anchored = new PoolAnchoredLine(this.fit, options.halfLifeMs, reference);
  }

  /** Learns from a scrape, once per scrape (`updateTime` identifies it): fits the interval since the previous one. */
  ingest(metrics: EndpointMetrics, nowMs: number): void {
    if (metrics.updateTime === 0 || metrics.updateTime === this.last?.updateTime) return;
    const reading: TpotReading = { updateTime: metrics.updateTime, count: metrics.interTokenCount, sum: metrics.interTokenSecondsSum, batch: batchOf(metrics) };
    const previous = this.last;
    this.last = reading;
    if (previous === undefined || previous.count === undefined || previous.sum === undefined || reading.count === undefined || reading.sum === undefined) return;
    const tokens = reading.count - previous.count;
    const seconds = reading.sum - previous.sum;
    if (!(tokens > 0) || !(seconds >= 0)) return;
    this.anchored.observed(nowMs);
    this.fit.observe(Math.max(1, (previous.batch + reading.batch) / 2), seconds / tokens, Math.min(tokens, MAX_INTERVAL_TOKENS), nowMs);
  }

  /** The pod's line now: seconds per token at batch 0 (`intercept`) and per running request (`slope`). */
  line(nowMs: number): LinearEstimate {
    return this.anchored.line(nowMs);
  }

  /** Predicted seconds per output token for a request joining the pod (see "A prediction"). */
  predictSeconds(metrics: EndpointMetrics, inFlight: number, nowMs: number): number {
    const { intercept, slope } = this.line(nowMs);
    return intercept + slope * (batchOf(metrics, Math.max(inFlight, metrics.runningQueueSize)) + 1);
  }
}

/** The pods' TPOT models, created on first sight. */
export class TpotModel {
  private readonly pods = new Map<string, PodTpotModel>();
  private everReported = false;
  private readonly reference: PoolReferenceLine;

  constructor(readonly options: TpotModelOptions) {
    this.reference = new PoolReferenceLine(options.halfLifeMs, () => this.anchoredLines());
  }

  private *anchoredLines(): Iterable<PoolAnchoredLine> {
    for (const pod of this.pods.values()) yield pod.anchored;
  }

  /** Whether any pod's page has had the inter-token histogram: before that there is no TPOT prediction at all. */
  get reported(): boolean {
    return this.everReported;
  }

  pod(endpointKey: string): PodTpotModel {
    let model = this.pods.get(endpointKey);
    if (model === undefined) {
      model = new PodTpotModel(this.options, (nowMs) => this.referenceLine(nowMs));
      this.pods.set(endpointKey, model);
    }
    return model;
  }

  get(endpointKey: string): PodTpotModel | undefined {
    return this.pods.get(endpointKey);
  }

  /** Learns from the endpoint's scrape (the latency-scorer calls this with the TTFT model's, once per new snapshot). */
  ingest(endpointKey: string, metrics: EndpointMetrics, nowMs: number): void {
    if (metrics.interTokenCount !== undefined) this.everReported = true;
    // A pool that never exported the histogram keeps no per-pod state for it.
    if (this.everReported) this.pod(endpointKey).ingest(metrics, nowMs);
  }

  /** Predicted seconds per output token on the endpoint, undefined while no pod has reported the histogram. */
  predictSeconds(endpointKey: string, metrics: EndpointMetrics, inFlight: number, nowMs: number): number | undefined {
    if (!this.everReported) return undefined;
    return this.pod(endpointKey).predictSeconds(metrics, inFlight, nowMs);
  }

  /** The median intercept and slope of the pods observed recently (each pod's own fit); undefined with none. */
  referenceLine(nowMs: number): LinearEstimate | undefined {
    return this.reference.at(nowMs);
  }

  remove(endpointKey: string): void {
    this.pods.delete(endpointKey);
  }
}
