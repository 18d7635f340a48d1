/**
 * Each pod's time to first token, learned online, for the `latency-scorer`:
 *
 *     TTFT(pod, request) = queue wait + own prefill + overhead
 *                        = c_pod · queued uncached tokens + c_pod · the request's uncached tokens + o_pod
 *
 * `c_pod` (seconds per uncached prompt token) and `o_pod` (fixed seconds per request) come from a decayed, robust
 * linear fit (`linear-fit.ts`) with a configured prior.
 *
 * ## Which observations are real
 * The obvious signal, "pick time → response headers through ext_proc", is not TTFT with vLLM's OpenAI server: for a
 * streaming request `create_chat_completion` returns a `StreamingResponse` around a generator that has not run yet
 * (vllm-project/vllm: vllm/entrypoints/openai/api_server.py, serving_chat.py @ v0.10.0), and Starlette's
 * `StreamingResponse.stream_response` sends `http.response.start` before it iterates the body (encode/starlette:
 * starlette/responses.py, 0.4x), so the headers leave before the request even reaches the engine's queue; for a
 * non-streaming request the headers follow the whole generation. kvroute's EnvoyFilter sends the EPP response headers
 * only (response body mode NONE), so the first body chunk is not seen either.
 *
 * What is real is what the engine itself measures and the EPP already scrapes, per pod (vLLM 0.10, v1 engine:
 * vllm/v1/metrics/loggers.py and vllm/v1/metrics/stats.py @ v0.10.0):
 * - `vllm:time_to_first_token_seconds` (histogram, observed when a request's first token is produced, from its arrival
 *   at the engine): its `_count` and `_sum` deltas between two scrapes give how many requests produced a first token in
 *   the interval and their mean TTFT;
 * - `vllm:prefix_cache_queries_total` / `vllm:prefix_cache_hits_total` (counters, in tokens, counted when the scheduler
 *   looks a waiting request up in the cache): queries − hits over the interval = the uncached tokens those requests
 *   had to prefill.
 * A scrape whose TTFT `_count` advanced gives one observation (y = the mean TTFT of its first tokens, weight = their
 * number) with x = what a prediction multiplies by the slope: the queued tokens the model counted ahead of those
 * requests at their picks (the mean over this EPP's picks they retire, below) plus their own uncached tokens per first
 * token. The work ahead belongs in x because a request admitted to run still waits for the prefills ahead of it:
 * vLLM's scheduler serves its running requests first in each step's token budget (vllm/v1/core/sched/scheduler.py @
 * v0.10.0), and the simulator prefills one request at a time; fitted against its own tokens alone, a pod under load
 * read TTFTs that grow with the queue, not with the prompt, and its slope fell to about 0 (session 44, a probe of
 * abandoning clients). Queries and first tokens are counted a prefill apart: the own part is every uncached token
 * counted since the previous observation (`promptBase`), so a request whose prefill spans several scrapes still
 * pairs its tokens with its first token (counting only the observation's own interval read 0 tokens for any TTFT over
 * one scrape interval). Intervals where the pod had requests waiting (`vllm:num_requests_waiting` > 0 at either end or
 * in between) are not fitted: a request waits there for a sequence slot or the step's token budget, which the slot
 * wait and the queue estimate cover only roughly. "In between" counts every page the datastore received, not only
 * those a scored request's snapshot carried: the model reads a pod's pages only as requests are scored, and the
 * datastore counts the pages that showed a queue (`EndpointMetrics.waitingPages`), so a burst that queued and drained
 * between two of the scorer's reads is not fitted as prefill cost either (metrics built outside a datastore have no
 * such count, and only the pages read are checked).
 *
 * ## Queued prefill work
 * Per pod, the uncached tokens of requests this EPP picked that have not produced a first token yet, oldest first: an
 * entry leaves when the scraped TTFT `_count` advances (vLLM's default scheduling is first come, first served, so the
 * oldest go first), when the response headers of a non-streaming error arrive (no token was produced), or after a
 * timeout (a safety net for pods that do not export the histogram): 4× the longer of its predicted TTFT and the mean
 * time the pod's recent picks took to leave (see `retireMeanMs`), capped by `pendingTimeout`. A non-streaming success's
 * headers (the generation is over) release it as a response's end does (below).
 *
 * A request whose response ended (`released`: completed, failed, or abandoned by its client, which vLLM aborts) is no
 * queued work from then on: its tokens stop counting at once. Its entry stays in the order for one more scrape, since
 * its first token, if it had one, may be in the next `_count` delta and must retire it rather than a request still
 * queued; a scrape after that one drops it (every first token produced before the release is counted by then). Without
 * this, a request abandoned before its first token (which vLLM never counts) held its place until its expiry, up to
 * `pendingTimeout` under load, and each one shifted the FCFS retirement by one, so a pod that had lost requests to
 * client timeouts looked busier than it was while its queue lasted.
 * Requests the scrape says are waiting beyond this EPP's own count the mean uncached tokens the pod's observations
 * show (or, before any, the request's own).
 *
 * ## A pod not observed for a while
 * A pod's line moves only with its own first tokens, and a pod the scorer avoids (its line said slow) produces none:
 * once slowed (a throttled GPU, a noisy neighbour), it kept its slow line after it recovered, decaying toward the prior
 * over minutes at the 60 s half-life, and the pool ran a pod short (session 44's probe: 2 of 112 requests reached the
 * recovered pod). So what the EPP has not seen for a while is assumed to be like the rest of the pool: from a sixth of
 * the half-life (10 s at the default) after a pod's last first token, its data is pulled toward the pool's reference
 * line (the median slope and median intercept of the pods observed within that time), a sixth of the half-life again
 * halving the distance, and its data lose weight as fast (`DecayedRobustLinearFit.pullToward`), so the pod's next first
 * tokens move the line more (and, against a line pulled from elsewhere, none counts as an outlier). The pod is then
 * tried again as its line nears the pool's, and its own first tokens correct the line either way; a pod still slow
 * costs a few requests per probe. The reference also takes
 * the configured prior's place in every pod's fit (same weight): a pod new in the pool starts on the pool's line, and a
 * faded pod's line goes to the pool's, not to a prior that may be far from the pool's hardware (which would herd
 * requests onto the pod or starve it). With no pod observed recently there is no reference: nothing is pulled and the
 * configured prior stands. The same idea as Peak-EWMA's decay of an idle endpoint's latency estimate toward zero
 * (tower-rs/tower: tower/src/load/peak_ewma.rs, `RttEstimate::decay`), toward the pool's line rather than zero.
 *
 * ## Waiting for a sequence slot
 * vLLM runs at most `--max-num-seqs` requests at once per engine (`SchedulerConfig.max_num_seqs`; the v1 scheduler
 * stops admitting from its waiting queue once `len(self.running) == self.max_num_running_reqs`, vllm/v1/core/sched/
 * scheduler.py @ v0.10.0). A request picked for a pod that already has that many in flight does not start its prefill
 * until one of them finishes, however few tokens it has to prefill; that wait is decode time, which the prefill line
 * above cannot see. So the prediction adds
 *
 *     slot wait = max(0, in flight − slots + 1) ÷ slots × the pod's mean inference seconds
 *
 * (with `slots` requests finishing, staggered, every `inference` seconds, one slot frees every `inference ÷ slots`):
 * - in flight: the larger of this EPP's own count for the pod (it moves with every pick, so a burst sees its own
 *   earlier picks at once) and the last scrape's running + waiting (other replicas' and other clients' requests);
 * - slots: `maxNumSeqs` (the pods' `--max-num-seqs`) per engine the pod's page shows (its gauges are summed over a
 *   data-parallel pod's engines); a pod once seen running more than that was told too little, and counts as having
 *   one slot more than the most it ran (its real limit is at least that, and unknown);
 * - inference seconds: the decayed mean of `vllm:request_inference_time_seconds` (`_sum`/`_count` deltas: the seconds
 *   each finished request spent RUNNING, vllm/v1/metrics/stats.py `FinishedRequestStats.inference_time`), the pool's
 *   mean for a pod with no finished request yet, and no slot wait at all before any pod has finished one.
 */
import type { EndpointMetrics } from '../datastore/types';
import { DecayedRobustLinearFit, halfLifeDecay, type LinearEstimate } from './linear-fit';
import { PoolAnchoredLine, PoolReferenceLine } from './pool-anchored-line';
import { SortedStarts } from './sorted-starts';

/**
 * Own in-flight starts kept per pod at most: the slot wait reads the youngest `inFlight` of them, and a pod runs
 * `maxNumSeqs` × engines at once (1024 is vLLM 0.10's largest default), so this bounds memory, not what is read.
 */
export const MAX_TRACKED_STARTS = 8192;

export interface LatencyModelOptions {
  /** Prior seconds of prefill per uncached prompt token, before a pod's data arrives. */
  readonly priorSecondsPerToken: number;
  /** Prior fixed seconds per request (scheduling, the first decode step, detokenization). */
  readonly priorOverheadSeconds: number;
  /** How many requests' worth of evidence the prior is. */
  readonly priorWeight: number;
  /** Observations lose half their weight every this many milliseconds. */
  readonly halfLifeMs: number;
  /** The longest a picked request counts as queued prefill work on its pod. */
  readonly pendingTimeoutMs: number;
  /** Requests each engine of a pod runs at once (its `--max-num-seqs`) before new ones wait for a slot. @default 1024 */
  readonly maxNumSeqs?: number;
}

/**
 * The slots an EPP not told its pods' `--max-num-seqs` assumes: vLLM 0.10's largest default for the OpenAI server (1024
 * on GPUs of 70 GiB or more other than the A100, such as H100, H200 and MI300x; 256 on the rest: `_set_default_args_v1`,
 * vllm/engine/arg_utils.py @ v0.10.0), so it never predicts a wait the pods do not have.
 */
export const DEFAULT_MAX_NUM_SEQS = 1024;

export interface TtftPrediction {
  /** Predicted seconds to first token: queueSeconds + slotWaitSeconds + prefillSeconds + overheadSeconds. */
  readonly ttftSeconds: number;
  /** Queued prefill work ahead of the request. */
  readonly queueSeconds: number;
  /** Waiting for one of the pod's `--max-num-seqs` slots to free (see "Waiting for a sequence slot"). */
  readonly slotWaitSeconds: number;
  readonly prefillSeconds: number;
  readonly overheadSeconds: number;
  /** Uncached tokens ahead of the request on the pod. */
  readonly queuedTokens: number;
  /** The request's own uncached tokens. */
  readonly uncachedTokens: number;
}

/**
 * Before any request on the pool has finished, the mean request time is taken as this many times the age of the oldest
 * request running on the pod. None has finished, so each runs at least that long, and nothing says how much longer:
 * twice the age gives the oldest as long again still to run (a request seen running for t is as likely as not to run
 * another t when nothing bounds its length: the median of a scale-free remaining time). The age itself (session 55)
 * left it none, and a full holder's wait read a sixteenth of a request (session 56's probe: the oldest of 16 running
 * 2.1 s, with about 1.2 s still to run, a waiting request read 0.13 s and waited 1.5-1.7 s; bench/README.md, "Session
 * 56").
 */
const STARTUP_INFERENCE_AGES = 2;

/** The typical uncached prompt the prior assumes, in tokens: where the prior's second pseudo-point sits. */
const PRIOR_TYPICAL_TOKENS = 1024;
/** An interval stands for at most this many requests, so one long gap between scrapes cannot outweigh the rest. */
const MAX_INTERVAL_WEIGHT = 64;
/**
 * The scorer's cached line is refitted at most once per this fraction of the half-life (60 ms at the default 60 s), or
 * at once when an observation arrives: between two refits the data's weight decays by 0.07%, while a refit per pod per
 * millisecond (the scorer asks for every candidate of every request) was a `Math.pow` and a solve per candidate.
 */
const LINE_REFRESH_HALF_LIFE_FRACTION = 1 / 1000;
/**
 * A picked request counts as queued for 4× its predicted TTFT, or 4× the mean time the pod's recent picks took to
 * leave the queue (by the EPP's clock), whichever is longer, and at least this long, before it expires.
 */
const PENDING_MIN_MS = 500;
const PENDING_PREDICTION_FACTOR = 4;
/** The mean time to leave the queue weighs each retired pick 1/16. */
const RETIRE_MEAN_WINDOW = 16;

/** One scrape's counters (undefined: the page had no such family); one object per scrape, so no spreads. */
interface CounterReading {
  readonly updateTime: number;
  /** When the page's request went out (`EndpointMetrics.requestTime`; its arrival where unknown). */
  readonly requestTime: number;
  readonly waiting: number;
  /** `EndpointMetrics.waitingPages`: the pages so far that showed requests waiting, whether this model read them or not. */
  readonly waitingPages: number | undefined;
  readonly inferenceCount: number | undefined;
  readonly inferenceSecondsSum: number | undefined;
  readonly firstTokenCount: number | undefined;
  readonly firstTokenSecondsSum: number | undefined;
  readonly queryTokens: number | undefined;
  readonly hitTokens: number | undefined;
}

interface PendingPrefill {
  readonly requestId: string;
  readonly tokens: number;
  /** The uncached tokens the model counted ahead of it at its pick (the prediction's `queuedTokens`). */
  readonly ahead: number;
  readonly addedAt: number;
  readonly expiresAt: number;
  /** When its response ended (the EPP's clock); NaN while it is in flight. A released entry's tokens do not count. */
  releasedAt: number;
}

/** What the pod model learned from its scrapes, for logs and tests. */
export interface PodLatencyStats {
  /** Intervals fitted. */
  readonly observations: number;
  /** Intervals skipped because requests were waiting. */
  readonly skippedQueued: number;
  readonly estimate: LinearEstimate;
  readonly pendingRequests: number;
  readonly pendingTokens: number;
  /** The decayed mean seconds a finished request spent running on the pod; undefined before any finished. */
  readonly inferenceSeconds: number | undefined;
  /** The slots the slot wait assumes: `maxNumSeqs` per engine, or one more than the most a scrape showed running. */
  readonly slots: number;
  /** Requests this EPP sent to the pod whose start it keeps for the slot wait (until their response ends). */
  readonly trackedStarts: number;
  /** The latest of their starts (ms, the EPP's clock; a queued request's lies ahead), undefined with none. */
  readonly latestStartMs: number | undefined;
}

/**
 * A mean whose samples lose half their weight every `halfLifeMs`, so it follows a pod whose requests get longer
 * (longer outputs, a busier batch) as the line's fit does.
 */
class DecayedMean {
  private weight = 0;
  private total = 0;
  private atMs: number | undefined;

  constructor(private readonly halfLifeMs: number) {}

  observe(mean: number, weight: number, nowMs: number): void {
    this.decayTo(nowMs);
    this.weight += weight;
    this.total += mean * weight;
  }

  /** The mean now, undefined before any sample. */
  value(): number | undefined {
    return this.weight > 0 ? this.total / this.weight : undefined;
  }

  private decayTo(nowMs: number): void {
    const factor = halfLifeDecay(this.atMs, nowMs, this.halfLifeMs);
    this.weight *= factor;
    this.total *= factor;
    if (this.atMs === undefined || nowMs > this.atMs) this.atMs = nowMs;
  }
}

/**
 * The time constant of `PodLatencyModel.laneLoad`'s exponential weighting: a few dozen picks of a pod at the rates where
 * its prefills take a third of its time or more, and short enough to follow a load that moves within seconds.
 */
export const LANE_LOAD_WINDOW_MS = 2000;

export class PodLatencyModel {
  readonly fit: DecayedRobustLinearFit;
  private readonly pending: PendingPrefill[] = [];
  /**
   * The sum of the tokens of `pending`'s entries still in flight, their number, and the earliest expiry, kept as they
   * change: `predict` runs per candidate per request.
   */
  private pendingTokens = 0;
  private inFlightPending = 0;
  private nextExpiry = Infinity;
  /** This EPP's prefill work committed to the pod, decayed (`laneLoad`), as of `laneLoadAtMs` (NaN: none yet). */
  private laneWork = 0;
  private laneLoadAtMs = Number.NaN;
  /**
   * The mean milliseconds (the EPP's clock) from a pick to the scrape that retired it, NaN before any. The expiry is a
   * safety net that must not fire while the pod is still working through its queue: a prediction from the pod's own
   * seconds can be short of that (before the pod's data arrive, or when the engine's clock and the EPP's differ, as a
   * time-scaled simulator's do), and an expired pick stops counting as queued work while it still waits.
   */
  private retireMeanMs = Number.NaN;
  /** The fitted line as of `lineAtMs` (NaN: none), for `predictSeconds` until `lineRefreshMs` later or new data. */
  private lineAtMs = Number.NaN;
  private readonly lineRefreshMs: number;
  private lineSlope = 0;
  private lineIntercept = 0;
  private last: CounterReading | undefined;
  /**
   * The prefix-cache counters at the last scrape that counted first tokens (or the first scrape), and whether any scrape
   * since showed requests waiting: an observation's own tokens are those counted since (see "Which observations are real").
   */
  private promptBase: { readonly queryTokens: number | undefined; readonly hitTokens: number | undefined; waited: boolean } | undefined;
  private skippedQueued = 0;
  private readonly inference: DecayedMean;
  /** The decayed mean uncached prompt of the pod's requests (the engine's counters), for requests waiting that are not ours. */
  private readonly ownPrompt: DecayedMean;
  /** The most requests any scrape showed running: the pod's slots are at least this many. */
  private maxRunning = 0;
  /**
   * When each request this EPP sent to the pod and still has in flight started running there, as predicted at its
   * pick (the pick's time plus its predicted slot wait: `vllm:request_inference_time_seconds`, the mean it is compared
   * with, counts running time only), earliest first. The slot
   * wait reads their ages, so a pod whose slots a burst filled at one instant frees its first slot after about a whole
   * inference, not a fraction of one (review 30 #3).
   */
  private readonly starts = new SortedStarts(MAX_TRACKED_STARTS);
  /** Engines behind the pod's page, as its last scrape showed (1 before any). */
  private engines = 1;
  private readonly maxNumSeqs: number;
  /**
   * The fitted line, pulled toward the pool's while no scrape counts first tokens on the pod (see "A pod not observed
   * for a while"; `pool-anchored-line.ts`).
   */
  readonly anchored: PoolAnchoredLine;

  /**
   * @param pool the pool's mean inference seconds, for a pod with no finished request of its own yet
   * @param reference the pool's reference line now (`LatencyModel.referenceLine`), undefined with no pod observed recently
   * @param inferenceObserved called when this pod's own mean inference seconds may have changed (`pool`'s cache)
   * @param prefillLeft called when a pending entry stops counting as queued prefill work, however it does (its first
   *   token scraped, released, finished, expired, or gone with the old process), with its name and tokens
   */
  constructor(
    private readonly options: LatencyModelOptions,
    private readonly pool?: () => number | undefined,
    reference?: (nowMs: number) => LinearEstimate | undefined,
    private readonly inferenceObserved?: () => void,
    private readonly prefillLeft?: (requestId: string, tokens: number) => void,
  ) {
    this.inference = new DecayedMean(options.halfLifeMs);
    this.ownPrompt = new DecayedMean(options.halfLifeMs);
    this.maxNumSeqs = options.maxNumSeqs ?? DEFAULT_MAX_NUM_SEQS;
    this.fit = new DecayedRobustLinearFit({
      prior: {
        intercept: options.priorOverheadSeconds,
        slope: options.priorSecondsPerToken,
        weight: options.priorWeight,
        x: PRIOR_TYPICAL_TOKENS,
      },
      halfLifeMs: options.halfLifeMs,
    });
    this.lineRefreshMs = options.halfLifeMs * LINE_REFRESH_HALF_LIFE_FRACTION;
    this.anchored = new PoolAnchoredLine(this.fit, options.halfLifeMs, reference);
  }

  /**
   * Learns from a scrape, once per scrape (`updateTime` identifies it): retires the pending requests that produced a
   * first token and fits the interval since the previous scrape. Counters that went down (a restarted pod) start a new
   * baseline without an observation.
   */
  ingest(metrics: EndpointMetrics, nowMs: number): void {
    if (metrics.updateTime === 0 || metrics.updateTime === this.last?.updateTime) return;
    const reading: CounterReading = {
      updateTime: metrics.updateTime,
      requestTime: metrics.requestTime ?? metrics.updateTime,
      waiting: metrics.waitingQueueSize,
      waitingPages: metrics.waitingPages,
      inferenceCount: metrics.inferenceCount,
      inferenceSecondsSum: metrics.inferenceSecondsSum,
      firstTokenCount: metrics.firstTokenCount,
      firstTokenSecondsSum: metrics.firstTokenSecondsSum,
      queryTokens: metrics.prefixCacheQueryTokens,
      hitTokens: metrics.prefixCacheHitTokens,
    };
    const previous = this.last;
    this.last = reading;
    if (metrics.runningQueueSize > this.maxRunning) this.maxRunning = metrics.runningQueueSize;
    if (metrics.engines !== undefined && metrics.engines >= 1) this.engines = metrics.engines;
    const base = this.promptBase;
    if (previous === undefined || base === undefined) {
      this.promptBase = promptBaseOf(reading);
      return;
    }
    // Released before the previous scrape's request went out: any first token they had was produced before their
    // release, so that page or an earlier one counted it (retiring them, or, FCFS, an older entry in their place), never
    // this one. Not by the page's arrival: a release while the page was on its way may follow a first token the page,
    // rendered earlier, did not count yet; this page counts it, and it must retire its own entry.
    if (this.inFlightPending < this.pending.length) {
      const countedBy = previous.requestTime;
      this.keepPending((p) => !(p.releasedAt <= countedBy));
    }
    const finished = delta(previous.inferenceCount, reading.inferenceCount);
    const inferenceSum = delta(previous.inferenceSecondsSum, reading.inferenceSecondsSum);
    if (finished !== undefined && finished > 0 && inferenceSum !== undefined) {
      this.inference.observe(inferenceSum / finished, Math.min(finished, MAX_INTERVAL_WEIGHT), nowMs);
      this.inferenceObserved?.();
    }
    // A page after the previous one this model read (this one included) showed requests waiting: the scorer reads only
    // the pages of the moments it scores, and a queue seen only on a page between two of them is a wait all the same.
    const waitedSince = reading.waiting > 0 || (delta(previous.waitingPages, reading.waitingPages) ?? 0) > 0;
    const firstTokens = delta(previous.firstTokenCount, reading.firstTokenCount);
    if (firstTokens === undefined || firstTokens <= 0) {
      // No first token yet: the tokens counted so far wait for theirs (a restarted pod's counters start a new base).
      const reset = firstTokens === undefined || delta(base.queryTokens, reading.queryTokens) === undefined || delta(base.hitTokens, reading.hitTokens) === undefined;
      if (reset) this.promptBase = promptBaseOf(reading);
      else if (waitedSince) base.waited = true;
      return;
    }
    this.promptBase = promptBaseOf(reading);
    this.anchored.observed(nowMs);
    // FCFS: the oldest picks produced these first tokens (some may be other clients'; they then retire ours early).
    let retiredCount = 0;
    let retiredAhead = 0;
    for (const retired of this.pending.splice(0, Math.min(firstTokens, this.pending.length))) {
      retiredCount++;
      retiredAhead += retired.ahead;
      if (!Number.isNaN(retired.releasedAt)) continue;
      this.pendingTokens -= retired.tokens;
      this.inFlightPending--;
      this.prefillLeft?.(retired.requestId, retired.tokens);
      const waitedMs = Math.max(0, nowMs - retired.addedAt);
      this.retireMeanMs = Number.isNaN(this.retireMeanMs) ? waitedMs : this.retireMeanMs + (waitedMs - this.retireMeanMs) / RETIRE_MEAN_WINDOW;
    }
    if (this.inFlightPending === 0) this.pendingTokens = 0;

    const ttftSum = delta(previous.firstTokenSecondsSum, reading.firstTokenSecondsSum);
    const queries = delta(base.queryTokens, reading.queryTokens);
    const hits = delta(base.hitTokens, reading.hitTokens);
    if (ttftSum === undefined || queries === undefined || hits === undefined) return;
    if (base.waited || previous.waiting > 0 || waitedSince) {
      this.skippedQueued++;
      return;
    }
    const uncachedPerRequest = Math.max(0, queries - hits) / firstTokens;
    const weight = Math.min(firstTokens, MAX_INTERVAL_WEIGHT);
    this.ownPrompt.observe(uncachedPerRequest, weight, nowMs);
    // x is what a prediction multiplies by the slope: the work the model counted ahead of these requests at their picks
    // (the mean over this EPP's picks they retired; others' requests are taken to have waited as long) plus their own.
    const aheadPerRequest = retiredCount > 0 ? retiredAhead / retiredCount : 0;
    this.fit.observe(aheadPerRequest + uncachedPerRequest, ttftSum / firstTokens, weight, nowMs);
    this.lineAtMs = Number.NaN;
  }

  /**
   * Counts a request this EPP committed to the pod as queued prefill work until its first token. `requestId` names this
   * one commit (`started`, `ended` and `finish` take the same name): the latency scorer adds a sequence number to
   * `x-request-id`, which clients may reuse.
   */
  addPending(requestId: string, uncachedTokens: number, predictedSeconds: number, nowMs: number, aheadTokens = 0): void {
    const expected = Number.isNaN(this.retireMeanMs) ? predictedSeconds * 1000 : Math.max(predictedSeconds * 1000, this.retireMeanMs);
    const lifetime = Math.min(this.options.pendingTimeoutMs, Math.max(PENDING_MIN_MS, PENDING_PREDICTION_FACTOR * expected));
    const tokens = Math.max(0, uncachedTokens);
    this.pending.push({ requestId, tokens, ahead: Math.max(0, aheadTokens), addedAt: nowMs, expiresAt: nowMs + lifetime, releasedAt: Number.NaN });
    this.pendingTokens += tokens;
    this.inFlightPending++;
    // Only a time and a prediction that are numbers: one NaN would stop the load from decaying, or poison it, for good.
    const seconds = Number.isFinite(nowMs) ? this.lineSeconds(tokens, nowMs) : Number.NaN;
    if (Number.isFinite(seconds)) {
      this.laneWork = this.laneWorkAt(nowMs) + seconds;
      this.laneLoadAtMs = nowMs;
    }
    if (nowMs + lifetime < this.nextExpiry) this.nextExpiry = nowMs + lifetime;
  }

  /** A request this EPP sent to the pod starts its life there (its age counts toward the slot wait until `ended`). */
  started(requestId: string, startMs: number): void {
    // A start that is not a time (a prediction gone NaN) would sort nowhere; the request then counts as scrape-only.
    if (!Number.isFinite(startMs)) {
      this.starts.delete(requestId);
      return;
    }
    this.starts.set(requestId, startMs);
  }

  /**
   * The request's response ended on the pod (completed, failed or cancelled): its age stops counting toward the slot
   * wait, and, if it is still queued prefill work here, it stops counting as such (see "Queued prefill work").
   */
  ended(requestId: string, nowMs: number): void {
    this.starts.delete(requestId);
    this.release(requestId, nowMs);
  }

  /**
   * The request is no queued prefill work on the pod from `nowMs` on, though its first token may not be counted yet:
   * its response ended (`ended`), or a non-streaming response's headers came (the generation is over; its first token,
   * if the scrape that counts it comes later, must retire this entry rather than a request still queued).
   */
  release(requestId: string, nowMs: number): void {
    if (this.inFlightPending === 0) return;
    // Newest first: a response that ends is more often a recent pick than the oldest of a long queue.
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const p = this.pending[i]!;
      if (p.requestId !== requestId) continue;
      if (Number.isNaN(p.releasedAt)) {
        p.releasedAt = nowMs;
        this.pendingTokens -= p.tokens;
        if (--this.inFlightPending === 0) this.pendingTokens = 0;
        this.prefillLeft?.(p.requestId, p.tokens);
      }
      return;
    }
  }

  /**
   * The pod's model server restarted (a scrape after `sinceMs` showed a new process): the prefills this EPP queued
   * there by then went with the old process (its requests failed), so they stop counting as queued work now rather than
   * at their expiry (up to `pendingTimeout`), which kept a restarted, idle pod looking busy. Picks after `sinceMs` may
   * be the new process's and stay.
   */
  restarted(sinceMs: number): void {
    this.keepPending((p) => p.addedAt > sinceMs);
  }

  /**
   * The request is no queued work on the pod and leaves the order at once: a response that failed without producing a
   * token (a non-streaming error's headers), so no scrape counts a first token for it.
   */
  finish(requestId: string): void {
    const i = this.pending.findIndex((p) => p.requestId === requestId);
    if (i < 0) return;
    const [finished] = this.pending.splice(i, 1);
    if (!Number.isNaN(finished!.releasedAt)) return;
    this.pendingTokens -= finished!.tokens;
    if (--this.inFlightPending === 0) this.pendingTokens = 0;
    this.prefillLeft?.(finished!.requestId, finished!.tokens);
  }

  /**
   * Predicts the TTFT of a request with `uncachedTokens` to prefill, given the pod's last scrape and `inFlight`, the
   * requests this EPP has in flight on it (`EndpointSnapshot.activeRequests`).
   */
  predict(uncachedTokens: number, metrics: EndpointMetrics, nowMs: number, inFlight = 0, slotWait = true): TtftPrediction {
    const { intercept, slope } = this.line(nowMs);
    const slots = slotWait ? this.slotWaitSeconds(metrics, inFlight, nowMs) : 0;
    return prediction(slope, intercept, this.queuedTokens(uncachedTokens, metrics, nowMs), uncachedTokens, slots);
  }

  /**
   * `predict(…).ttftSeconds` without the object, for the scorer's per-candidate path: the line is the one fitted at most
   * `halfLife / 1000` ago (or since the last observation), not refitted to this very millisecond.
   */
  predictSeconds(uncachedTokens: number, metrics: EndpointMetrics, nowMs: number, inFlight = 0, slotWait = true, ownPrefillWeight = 1): number {
    const slope = this.secondsPerToken(nowMs);
    // As `prediction()` sums it: queue wait + slot wait + own prefill + overhead (the own prefill `ownPrefillWeight`
    // times: the latency scorer's cost of the wait it adds for the requests queued behind it).
    return slope * this.queuedTokens(uncachedTokens, metrics, nowMs) + (slotWait ? this.slotWaitSeconds(metrics, inFlight, nowMs) : 0)
      + ownPrefillWeight * slope * Math.max(0, uncachedTokens) + this.lineIntercept;
  }

  /**
   * The line at `tokens` (fixed seconds + seconds per token × `tokens`): what the pod takes to prefill that many tokens
   * with nothing queued, as `predictSeconds` fits it.
   */
  lineSeconds(tokens: number, nowMs: number): number {
    return this.secondsPerToken(nowMs) * tokens + this.lineIntercept;
  }

  /** The line's prefill seconds per uncached token, as `predictSeconds` uses it (refitted at most every `halfLife / 1000`). */
  secondsPerToken(nowMs: number): number {
    // Written so that NaN (no line yet) refits; a clock that steps back keeps the line.
    if (!(nowMs - this.lineAtMs < this.lineRefreshMs)) {
      const { intercept, slope } = this.line(nowMs);
      this.lineSlope = slope;
      this.lineIntercept = intercept;
      this.lineAtMs = nowMs;
    }
    return this.lineSlope;
  }

  /**
   * The wait for a free sequence slot (see "Waiting for a sequence slot"); 0 while the pod has one. A request past
   * `occupants − slots` others must wait for that many slots to free and one more. The running requests' remaining
   * seconds: for this EPP's own (the oldest of those it has in flight, up to the slots), the mean inference less their
   * age, at least 0; for the rest (other clients, other replicas, known only from scrapes) spread evenly over one mean
   * inference, the staggered arrivals a pod without a burst has. The m-th slot to free is the m-th smallest of those,
   * and each round of `slots` beyond them a whole mean inference later. Never less than the staggered formula
   * (`(occupants − slots + 1) ÷ slots` inferences), which is also what memoryless run times give: a request past the
   * mean is a long generation, not one about to end (review 32). Before this EPP has seen any pod's
   * `vllm:request_inference_time_seconds` count advance between two of its scrapes (the first seconds of a new pool, or
   * of this EPP on a warm one: the mean is learnt from deltas), the mean is taken as twice the age of the oldest request
   * this EPP has running on the pod (`STARTUP_INFERENCE_AGES`); without one (only other clients' requests fill it) there
   * is no estimate and the wait counts as 0. Until session 55 it was 0 there too, and a burst at start-up piled onto a
   * prefix's holder for as long as its first requests ran (one hot system prompt: a pod idle while the holders' slots
   * were full, bench/README.md "Session 55"); session 55 took the age itself, a lower bound that left the oldest
   * request no time to run, so a full holder's wait read a sixteenth of a request while its slots stayed taken for a
   * second more (bench/README.md, "Session 56").
   */
  slotWaitSeconds(metrics: EndpointMetrics, inFlight: number, nowMs: number): number {
    const occupants = Math.max(inFlight, metrics.runningQueueSize + metrics.waitingQueueSize);
    const slots = this.slotCount();
    if (occupants < slots) return 0;
    const inference = this.inferenceSeconds() ?? this.startupInferenceSeconds(inFlight, nowMs);
    if (inference === undefined || !(inference > 0)) return 0;
    const releases = occupants - slots; // slots that must free before this request's, less one
    const staggered = ((releases + 1) / slots) * inference;
    if (this.starts.size === 0 || inFlight === 0) return staggered;
    const round = Math.floor(releases / slots);
    const m = releases - round * slots; // 0-based rank among the running requests' remaining times
    // The (m+1)-th smallest of two ascending sequences (k-th of two sorted arrays, by binary search: O(log slots) per
    // candidate however many requests the pod holds):
    // - own: the youngest `inFlight` entries' oldest `slots` (older ones are completions the EPP never saw), each
    //   `inference − age`, at least 0, ascending with their start;
    // - spread: `j ÷ spread × inference` for j = 1..spread, the slots the EPP has no age for.
    const counted = Math.min(inFlight, this.starts.size);
    const ownRunning = Math.min(counted, slots);
    const spread = slots - ownRunning;
    const first = this.starts.size - counted;
    const own = (t: number): number => (t >= ownRunning ? Infinity : Math.max(0, inference - Math.max(0, nowMs - this.starts.at(first + t)) / 1000));
    const even = (i: number): number => (i < 0 ? -Infinity : i >= spread ? Infinity : ((i + 1) / spread) * inference);
    const k = m + 1;
    // The smallest t (own values among the k smallest) with own(t) ≥ even(k − t − 1).
    let lo = Math.max(0, k - spread);
    let hi = Math.min(ownRunning, k);
    while (lo < hi) {
      const t = (lo + hi) >>> 1;
      if (own(t) >= even(k - t - 1)) hi = t;
      else lo = t + 1;
    }
    const kth = Math.max(lo > 0 ? own(lo - 1) : -Infinity, even(k - lo - 1));
    return Math.max(staggered, round * inference + kth);
  }

  /**
   * The mean request time before any is learnt: `STARTUP_INFERENCE_AGES` times the age of the oldest of this EPP's
   * `inFlight` requests on the pod (the youngest `inFlight` starts: older entries are completions it never saw), in
   * seconds; undefined with none.
   */
  private startupInferenceSeconds(inFlight: number, nowMs: number): number | undefined {
    const counted = Math.min(inFlight, this.starts.size);
    if (counted === 0) return undefined;
    return (STARTUP_INFERENCE_AGES * Math.max(0, nowMs - this.starts.at(this.starts.size - counted))) / 1000;
  }

  /** The mean seconds a request runs on this pod (the pool's before its first finished), undefined before any. */
  inferenceSeconds(): number | undefined {
    return this.inference.value() ?? this.pool?.();
  }

  /** The pod's own mean, without the pool's fallback. */
  ownInferenceSeconds(): number | undefined {
    return this.inference.value();
  }

  /**
   * The share of the pod's sequence slots taken (1: full, above 1: requests wait for a slot), from this EPP's own count
   * or the last scrape's running + waiting, whichever is higher, as `slotWaitSeconds` counts them.
   */
  slotShare(metrics: EndpointMetrics, inFlight: number): number {
    return Math.max(inFlight, metrics.runningQueueSize + metrics.waitingQueueSize) / this.slotCount();
  }

  /**
   * The share of the recent past (exponentially weighted over `LANE_LOAD_WINDOW_MS`) the pod spent prefilling this
   * EPP's picks, each counted at its pick as the line predicts it (fixed seconds + seconds per token × its uncached
   * tokens), whether or not its first token has come since: about 0.5 for a pod whose prefills of our picks take half
   * its time. Where the queued work (`queuedTokens`) says how long the next request waits now, this says how much of the
   * pod's time a stream of requests takes, which a queue that happens to be empty does not show. Only this EPP's picks:
   * another EPP replica's, or other clients' requests, are not seen.
   */
  laneLoad(nowMs: number): number {
    return this.laneWorkAt(nowMs) / (LANE_LOAD_WINDOW_MS / 1000);
  }

  private laneWorkAt(nowMs: number): number {
    if (!(nowMs > this.laneLoadAtMs)) return this.laneWork;
    return this.laneWork * Math.exp(-(nowMs - this.laneLoadAtMs) / LANE_LOAD_WINDOW_MS);
  }

  /** The pod's sequence slots: `maxNumSeqs` per engine, or one more than the most it was seen running when that is more. */
  slotCount(): number {
    const told = this.maxNumSeqs * this.engines;
    return this.maxRunning > told ? this.maxRunning + 1 : told;
  }

  /** The pod's fitted line now: seconds per uncached token (`slope`) and fixed seconds (`intercept`). */
  line(nowMs: number): LinearEstimate {
    return this.anchored.line(nowMs);
  }

  /**
   * The uncached prompt tokens of this EPP's picks on the pod still waiting for their first token (the queue's own part,
   * without the scrape's other waiting requests): what `inflight-load-producer` reports as in-flight tokens.
   */
  pendingPrefillTokens(nowMs: number): number {
    this.expire(nowMs);
    return this.pendingTokens;
  }

  /** Uncached tokens ahead of a request with `uncachedTokens` of its own, given the pod's last scrape. */
  queuedTokens(uncachedTokens: number, metrics: EndpointMetrics, nowMs: number): number {
    this.expire(nowMs);
    // Waiting requests beyond this EPP's own pending ones are someone else's; value them at the pod's typical prompt.
    const others = Math.max(0, metrics.waitingQueueSize - this.inFlightPending);
    return others === 0 ? this.pendingTokens : this.pendingTokens + others * (this.ownPrompt.value() ?? uncachedTokens);
  }

  stats(nowMs: number): PodLatencyStats {
    this.expire(nowMs);
    return {
      observations: this.fit.count,
      skippedQueued: this.skippedQueued,
      estimate: this.line(nowMs),
      pendingRequests: this.inFlightPending,
      pendingTokens: this.pendingTokens,
      inferenceSeconds: this.inferenceSeconds(),
      slots: this.slotCount(),
      trackedStarts: this.starts.size,
      latestStartMs: this.starts.size === 0 ? undefined : this.starts.latest(),
    };
  }

  /** Drops the entries past their expiry; a scan only once the earliest is due. */
  private expire(nowMs: number): void {
    if (nowMs < this.nextExpiry) return;
    this.keepPending((p) => p.expiresAt > nowMs);
  }

  /** Keeps the pending entries `keep` accepts, in order, with their token sum and earliest expiry. */
  private keepPending(keep: (p: PendingPrefill) => boolean): void {
    let kept = 0;
    let tokens = 0;
    let inFlight = 0;
    let next = Infinity;
    for (const p of this.pending) {
      if (!keep(p)) {
        if (Number.isNaN(p.releasedAt)) this.prefillLeft?.(p.requestId, p.tokens);
        continue;
      }
      this.pending[kept++] = p;
      if (Number.isNaN(p.releasedAt)) {
        tokens += p.tokens;
        inFlight++;
      }
      if (p.expiresAt < next) next = p.expiresAt;
    }
    this.pending.length = kept;
    // Recomputed from the kept entries, so rounding in the running sum never accumulates past a scan.
    this.pendingTokens = tokens;
    this.inFlightPending = inFlight;
    this.nextExpiry = next;
  }
}

/** A prediction from its parts: queue wait, own prefill and overhead, each at the pod's line, and the slot wait. */
export function prediction(slope: number, intercept: number, queuedTokens: number, uncachedTokens: number, slotWaitSeconds = 0): TtftPrediction {
  const own = Math.max(0, uncachedTokens);
  const queueSeconds = slope * queuedTokens;
  const prefillSeconds = slope * own;
  return {
    ttftSeconds: queueSeconds + slotWaitSeconds + prefillSeconds + intercept,
    queueSeconds,
    slotWaitSeconds,
    prefillSeconds,
    overheadSeconds: intercept,
    queuedTokens,
    uncachedTokens: own,
  };
}

function promptBaseOf(reading: CounterReading): { queryTokens: number | undefined; hitTokens: number | undefined; waited: boolean } {
  return { queryTokens: reading.queryTokens, hitTokens: reading.hitTokens, waited: reading.waiting > 0 };
}

function delta(before: number | undefined, after: number | undefined): number | undefined {
  if (before === undefined || after === undefined || after < before) return undefined;
  return after - before;
}

/** The pods' models, created on first sight with the shared options. */
export class LatencyModel {
  private readonly pods = new Map<string, PodLatencyModel>();
  private readonly reference: PoolReferenceLine;
  /**
   * `poolInferenceSeconds`, kept until a pod observes finished requests or leaves: a pod with none finished asks for it
   * on every slot wait of a full pod, and recomputing it walked every pod (at 256 pods with most of them full and none
   * finished yet, most of a request's routing CPU: 157-158 against 41-47 µs; epp/README.md, "Waiting for a sequence
   * slot"). A mean's decay scales its weight and total alike, so it changes only when observed.
   */
  private poolInference: number | undefined;
  private poolInferenceStale = true;

  /** @param prefillLeft a pod's `prefillLeft` (see `PodLatencyModel`), with the pod's endpoint key */
  constructor(readonly options: LatencyModelOptions, private readonly prefillLeft?: (endpointKey: string, requestId: string, tokens: number) => void) {
    this.reference = new PoolReferenceLine(options.halfLifeMs, () => this.anchoredLines());
  }

  private *anchoredLines(): Iterable<PoolAnchoredLine> {
    for (const pod of this.pods.values()) yield pod.anchored;
  }

  pod(endpointKey: string): PodLatencyModel {
    let model = this.pods.get(endpointKey);
    if (model === undefined) {
      const prefillLeft = this.prefillLeft;
      model = new PodLatencyModel(this.options, () => this.poolInferenceSeconds(), (nowMs) => this.referenceLine(nowMs), () => {
        this.poolInferenceStale = true;
      }, prefillLeft === undefined ? undefined : (requestId, tokens) => prefillLeft(endpointKey, requestId, tokens));
      this.pods.set(endpointKey, model);
    }
    return model;
  }

  /**
   * The pool's line for pods the EPP has not observed for a while (see "A pod not observed for a while"): the median
   * slope and the median intercept of the pods a scrape counted first tokens on within their `staleAfterMs`, each
   * pod's own fit; undefined with none. Recomputed at most once per line refresh interval.
   */
  referenceLine(nowMs: number): LinearEstimate | undefined {
    return this.reference.at(nowMs);
  }

  /** The mean of the pods' own mean inference seconds, undefined before any pod finished a request. */
  poolInferenceSeconds(): number | undefined {
    if (!this.poolInferenceStale) return this.poolInference;
    let total = 0;
    let count = 0;
    for (const pod of this.pods.values()) {
      const own = pod.ownInferenceSeconds();
      if (own !== undefined) {
        total += own;
        count++;
      }
    }
    this.poolInference = count === 0 ? undefined : total / count;
    this.poolInferenceStale = false;
    return this.poolInference;
  }

  has(endpointKey: string): boolean {
    return this.pods.has(endpointKey);
  }

  /**
   * The pod's model if it has one, never creating it: for the response path, where a request can end on a pod that
   * already left the pool (a terminating pod drains its requests after its endpoint is gone) and must not bring its
   * model back for good.
   */
  get(endpointKey: string): PodLatencyModel | undefined {
    return this.pods.get(endpointKey);
  }

  remove(endpointKey: string): void {
    this.pods.delete(endpointKey);
    this.poolInferenceStale = true;
  }

  get size(): number {
    return this.pods.size;
  }
}
