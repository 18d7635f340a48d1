/**
 * `poisson-groups` as llm-d measures precise against approximate prefix routing: a Poisson **rate ramp** in stages up
 * to a top rate set by the pool's capacity, over a fixed set of G × P prompts sent again and again.
 *
 * What upstream runs (llm-d/llm-d-benchmark `workload/profiles/inference-perf/guide_precise-prefix-cache-routing_1.yaml.in`
 * @ cde7227, the profile behind the "KV-cache wins you can see" numbers): inference-perf `shared_prefix`, 150 groups × 5 prompts,
 * Poisson load in stages — a warm-up of 15 QPS for 50 s, then 3, 10, 15, 20, 22, 25, 30, 35, 40, 43, 46, 49, 52, 55,
 * 57, 60 QPS for 20-38 s each. inference-perf's shared-prefix generator (kubernetes-sigs/inference-perf
 * `inference_perf/datagen/shared_prefix_datagen.py` @ v0.6.1, as at 3788ed5) shuffles the G × P prompts once; every
 * stage takes a fresh `get_data()` (`loadgen/load_generator.py` `run_stage`), which counts from 0, and request k of the
 * stage is prompt k mod G × P (`load_lazy_data`). So each stage walks the list again from its first prompt: the 750-request
 * warm-up sends every prompt once, the top stages (~1,500 requests) twice, and over ~17,000 requests every prompt comes
 * back about 20 times; the KV working set (the distinct prompts, ≈ 73% of the cluster's KV there) is revisited while
 * running sequences keep evicting it: the caches turn over many times.
 *
 * How it is scaled to 2 cores, decided from that shape and the pool, not from which policy wins:
 * - The stages are upstream's, as fractions of its top (3/60 … 60/60) with its relative durations, warm-up included,
 *   run as inference-perf runs them (`loadgen/load_generator.py` @ 3788ed5 `run_stage`): int(rate × duration) requests
 *   a stage, the next stage once they have all finished and the stage interval (1 s, scaled as the durations are) has
 *   passed. Before session 65 the ramp was one continuous stream, whose top stage got 104 of its 168 requests with the
 *   default seed and whose stages inherited each other's backlog.
 * - The ramp sends `passes` × G × P requests in all, and each stage sends the shuffled list from its first prompt, as
 *   inference-perf's stages do (`stagePrompts`). Upstream sends 22.8 × G × P; with fewer, a stage covers less of the
 *   list than upstream's does (with the defaults, 8 passes of 48 × 5, no stage reaches the list's end).
 * - The top is the pool's capacity for the best placement its KV allows: the saturation throughput of the pods, run
 *   by the simulator's own engine in virtual time, with the groups statically partitioned over them (the ideal
 *   affinity router) and every pod always given work (`idealSaturation`). Measured rather than written as
 *   pods × min(prefill lanes ÷ uncached prefill time, slots ÷ time a request holds one) because running sequences hold
 *   KV blocks beside the cached prefixes (at W/4 per pod, 16 running sequences of 70 blocks fill a pod), which such a
 *   formula cannot see; for the default workload the two agree within 4% (188 against 182 requests per simulated
 *   second, the measurement hitting 90.6%), while a round-robin placement of the same requests saturates at 19.6
 *   (11.9% hits): the KV is short enough that only a placement that keeps groups apart serves the top. The replay
 *   oracle's hit rate is not used: it assumes a cache that never evicts. At the top the best placement is at its limit
 *   (upstream's precise run stayed just below saturation at 60 QPS), and a policy that hits less does more prefill
 *   than the pods can serve: its queue grows, which is the regime where upstream's p90s separate.
 * - Simulated time runs slower or faster (`timeScale`) so that the top is at most `maxWallRps` requests per wall-clock
 *   second: what this machine's processes (client, gateway, EPP, pods) carry; TTFTs are reported in simulated time.
 */
import { Engine, ManualClock } from '@kvroute/sim';
import { quantile, ttftOf } from './analysis';
import type { BenchWorkload, TokenizerLike } from './routing-workloads';
import type { RequestRecord } from './run';
import type { SimulatorSettings } from './stack';

/** One stage of upstream's ladder: its rate as a fraction of the top, and its length in upstream's seconds. */
export interface RampStage {
  readonly fraction: number;
  readonly upstreamSeconds: number;
  /** Upstream's warm-up stage (seats the caches before the ladder). */
  readonly warmUp?: boolean;
}

/** llm-d's guide_precise-prefix-cache-routing_1 load stages, in fractions of its 60 QPS top. */
export const UPSTREAM_RAMP: readonly RampStage[] = [
  { fraction: 15 / 60, upstreamSeconds: 50, warmUp: true },
  ...([[3, 20], [10, 20], [15, 20], [20, 38], [22, 34], [25, 30], [30, 25], [35, 21], [40, 38], [43, 36], [46, 33], [49, 30],
    [52, 29], [55, 27], [57, 26], [60, 25]] as const).map(([qps, s]) => ({ fraction: qps / 60, upstreamSeconds: s })),
];

/**
 * inference-perf's pause between stages, in upstream's seconds: `LoadConfig.interval` (inference_perf/config.py @ 3788ed5,
 * default 1.0), slept after a stage's requests have all finished (loadgen/load_generator.py `mp_run`).
 */
export const UPSTREAM_STAGE_INTERVAL_SECONDS = 1;

/** The ramp's requests, at a top rate of 1 request/s (unit seconds), stage by stage. */
export interface RampArrivals {
  /** Each request's send time in unit seconds from the start of its stage. */
  readonly unitSeconds: readonly number[];
  /** The stage each request is sent in: stage 0's requests first, then stage 1's, and so on. */
  readonly stageOfRequest: readonly number[];
  /** Each stage's length, and the pause after a stage, in unit seconds: upstream's seconds scaled together. */
  readonly stageSeconds: readonly number[];
  readonly gapSeconds: number;
}

/**
 * The ramp as inference-perf runs a load's stages (inference_perf/loadgen/load_generator.py @ 3788ed5 `run_stage`):
 * each stage sends exactly `int(rate × duration)` requests, Poisson at its rate (exponential gaps from the stage's
 * start, as the `poisson` load type draws them), and the next stage starts once all of them have finished and the
 * stage interval has passed (`runWorkload`'s `stages`), so no stage inherits the one before's backlog. Upstream's
 * durations (and its 1 s interval) are scaled together so that the rates times the durations add up to `n`; the
 * stages then send that sum rounded down stage by stage, a few requests fewer than `n`. Deterministic from `random`.
 */
export function rampArrivals(n: number, stages: readonly RampStage[], random: () => number): RampArrivals {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`the ramp needs a positive whole number of requests, got ${n}`);
  const expected = stages.reduce((a, s) => a + s.fraction * s.upstreamSeconds, 0);
  const scale = n / expected;
  const unitSeconds: number[] = [];
  const stageOfRequest: number[] = [];
  stages.forEach((s, stage) => {
    const count = Math.floor(s.fraction * s.upstreamSeconds * scale);
    let t = 0;
    for (let k = 0; k < count; k++) {
      t -= Math.log(1 - random()) / s.fraction;
      unitSeconds.push(t);
      stageOfRequest.push(stage);
    }
  });
  return { unitSeconds, stageOfRequest, stageSeconds: stages.map((s) => s.upstreamSeconds * scale), gapSeconds: UPSTREAM_STAGE_INTERVAL_SECONDS * scale };
}

/**
 * The prompt each ramp request sends, as an index into the once-shuffled list of `prompts`: request k of every stage
 * sends prompt k mod `prompts`, because inference-perf starts a new `get_data()` generator, counting from 0, for each
 * stage (inference_perf/loadgen/load_generator.py @ v0.6.1 `run_stage`; datagen/shared_prefix_datagen.py `get_data`,
 * `load_lazy_data`).
 */
export function stagePrompts(stageOfRequest: readonly number[], prompts: number): number[] {
  const sentInStage = new Map<number, number>();
  return stageOfRequest.map((stage) => {
    const k = sentInStage.get(stage) ?? 0;
    sentInStage.set(stage, k + 1);
    return k % prompts;
  });
}

export interface PoolCapacity {
  /** Requests per simulated second the pool completes when every pod always has work waiting: the ramp's top. */
  readonly topRps: number;
  /** The pods' own token hit rate in that measurement: what the ideal placement reaches with this KV. */
  readonly hitRate: number;
  /** Requests each pod kept submitted (running or waiting). */
  readonly depthPerPod: number;
  /** Completions counted (the middle 60%, ramp-up and drain left out) and the simulated seconds they took. */
  readonly completions: number;
  readonly seconds: number;
}

/**
 * The pool's saturation throughput under the ideal static placement, measured with the simulator's own engine
 * (`@kvroute/sim` `Engine`, the code every pod runs) in virtual time: one engine per pod with the run's settings, group
 * g's requests on pod g mod R (groups are equal, so this is the balanced partition an ideal affinity router keeps), each
 * pod's requests in send order with `depthPerPod` always submitted, so its prefill lane, its sequence slots and its KV
 * cache (prefixes and running sequences) are all as busy as they can be. Throughput is counted between the 20th and the
 * 80th percentile of completion times, as the load ladder counts its saturation. Deterministic; no process, no wall
 * clock, so it is the same whatever else runs on the machine.
 */
export function idealSaturation(w: BenchWorkload, tok: TokenizerLike, sim: SimulatorSettings, prefillLanes: number, pods: number,
  depthPerPod = 2 * sim.maxNumSeqs): PoolCapacity {
  if (!w.groupOf) throw new Error(`${w.name}: the ideal placement needs a shared-prefix workload`);
  const output = tok.reply(w.workload.options.maxTokens).ids;
  const tokens = new Map<readonly unknown[], number[]>();
  const tokensOf = (m: BenchWorkload['requests'][number]) => {
    let t = tokens.get(m);
    if (!t) tokens.set(m, (t = Array.from(tok.chatTokens(m))));
    return t;
  };
  const queues = Array.from({ length: pods }, () => [] as number[]);
  w.groupOf.forEach((g, i) => queues[g % pods].push(i));
  const clock = new ManualClock();
  let hits = 0;
  let queries = 0;
  const finished: number[] = [];
  const engines = queues.map(() => new Engine({
    blockSize: sim.blockSize, kvCacheBlocks: sim.kvCacheBlocks, maxNumSeqs: sim.maxNumSeqs, maxNumBatchedTokens: MAX_NUM_BATCHED_TOKENS,
    ttftOverheadMs: sim.ttftOverheadMs, prefillMsPerToken: sim.prefillMsPerToken, itlMs: sim.itlMs, prefillConcurrency: prefillLanes,
    hashAlgo: 'sha256',
  }, clock, { onPrefixQuery: (q) => { hits += q.hits; queries += q.queries; } }));
  const next = queues.map(() => 0);
  const submit = (pod: number): void => {
    const i = queues[pod][next[pod]++];
    if (i === undefined) return;
    engines[pod].submit({ promptTokens: tokensOf(w.requests[i]), outputTokens: output }, {
      onToken: () => undefined,
      // Outside the engine's own callback: the next request arrives at the same instant.
      onFinish: (r) => { finished.push(r.finishedMs); clock.setTimer(clock.now(), () => submit(pod)); },
    });
  };
  for (let pod = 0; pod < pods; pod++) for (let k = 0; k < depthPerPod; k++) submit(pod);
  clock.runAll(10_000_000);
  for (const e of engines) e.close();
  finished.sort((a, b) => a - b);
  const lo = Math.floor(finished.length * 0.2);
  const hi = Math.ceil(finished.length * 0.8) - 1;
  const seconds = (finished[hi] - finished[lo]) / 1000;
  if (!(seconds > 0)) throw new Error(`${w.name}: too few requests (${finished.length}) to measure the pool's saturation`);
  return { topRps: (hi - lo) / seconds, hitRate: queries > 0 ? hits / queries : 0, depthPerPod, completions: hi - lo, seconds };
}

/** The simulator's `--max-num-batched-tokens` default (vLLM 0.10's; sim/src/options.ts), which the stack does not override. */
const MAX_NUM_BATCHED_TOKENS = 2048;

/** The ramp as one run offers it. */
export interface RampPlan {
  readonly capacity: PoolCapacity;
  /** Simulated time speed-up of this run's pods (TTFTs are multiplied back). */
  readonly timeScale: number;
  readonly stages: readonly {
    readonly fraction: number; readonly rateRps: number; readonly seconds: number; readonly warmUp: boolean; readonly requests: number;
  }[];
  /** Send times in wall-clock ms from the start of each request's stage, and each request's stage. */
  readonly arrivalsMs: readonly number[];
  readonly stageOfRequest: readonly number[];
  /** Wall-clock ms from a stage's last answer to the next stage's start. */
  readonly stageGapMs: number;
}

/** Scales the unit ramp to a pool: the top at its capacity, time scale capped so the top is at most `maxWallRps` per wall second. */
export function planRamp(arrivals: RampArrivals, stages: readonly RampStage[], capacity: PoolCapacity, maxTimeScale: number,
  maxWallRps: number): RampPlan {
  const timeScale = Math.min(maxTimeScale, maxWallRps / capacity.topRps);
  const toWallMs = (unit: number) => ((unit / capacity.topRps) * 1000) / timeScale;
  return {
    capacity,
    timeScale,
    stages: stages.map((s, i) => ({
      fraction: s.fraction, rateRps: s.fraction * capacity.topRps, seconds: arrivals.stageSeconds[i]! / capacity.topRps, warmUp: s.warmUp === true,
      requests: arrivals.stageOfRequest.filter((x) => x === i).length,
    })),
    arrivalsMs: arrivals.unitSeconds.map(toWallMs),
    stageOfRequest: arrivals.stageOfRequest,
    stageGapMs: toWallMs(arrivals.gapSeconds),
  };
}

export interface StageResult {
  readonly fraction: number;
  readonly rateRps: number;
  readonly requests: number;
  readonly succeeded: number;
  /** Simulated seconds. */
  readonly ttftP50: number | null;
  readonly ttftP90: number | null;
}

/**
 * Wall seconds to a request's first token; a failed request counts the time it waited (a lower bound: its first token,
 * had it come, would have come later). Undefined for a successful request whose stream carried no content token: it was
 * not cut off before its first token, it has none, so it is left out as inference-perf leaves it out (`ttftOf`).
 */
export function censoredTtft(r: RequestRecord): number | undefined {
  return r.result.ok ? ttftOf(r) : (r.endedMs - r.startedMs) / 1000;
}

/**
 * TTFT per stage of one run (a request belongs to the stage it was sent in; failed ones count as `censoredTtft`,
 * successful ones without a first token not at all).
 */
export function stageResults(plan: RampPlan, records: readonly RequestRecord[]): StageResult[] {
  const byStage = plan.stages.map(() => ({ requests: 0, succeeded: 0, ttfts: [] as number[] }));
  for (const r of records) {
    if (r.stage === undefined) throw new Error('a ramp run\'s request without its stage');
    const s = byStage[r.stage]!;
    s.requests++;
    if (r.result.ok) s.succeeded++;
    const ttft = censoredTtft(r);
    if (ttft !== undefined) s.ttfts.push(ttft * plan.timeScale);
  }
  return plan.stages.map((st, i) => ({
    fraction: st.fraction, rateRps: st.rateRps, requests: byStage[i].requests, succeeded: byStage[i].succeeded,
    ttftP50: quantile(byStage[i].ttfts, 0.5), ttftP90: quantile(byStage[i].ttfts, 0.9),
  }));
}

/** Issue 8's goals for this workload, checked on one cell's policy summaries. */
export interface PreciseGoals {
  readonly hitRateOfBest: number | null;
  readonly hitRateGoalMet: boolean | null;
  /** Approximate (kvroute's default config) p90 / precise p90, and SGLang-style p90 / precise p90. */
  readonly p90VsApproximate: number | null;
  /** Upstream GIE's approximate config (`approx-prefix`) p90 / precise p90: reported, the goal names kvroute's own. */
  readonly p90VsApproxPrefix: number | null;
  readonly p90VsSglang: number | null;
  readonly p90GoalMet: boolean | null;
}

export function preciseGoals(policies: readonly { policy: string; hitRate: number; ttftP90: number | null }[], best: number | null): PreciseGoals | undefined {
  const find = (name: string) => policies.find((p) => p.policy === name);
  const precise = find('kvroute-precise');
  if (!precise) return undefined;
  const ratio = (other: string) => {
    const o = find(other);
    return o && o.ttftP90 !== null && precise.ttftP90 !== null && precise.ttftP90 > 0 ? o.ttftP90 / precise.ttftP90 : null;
  };
  const hitRateOfBest = best ? precise.hitRate / best : null;
  const p90VsApproximate = ratio('kvroute');
  const p90VsSglang = ratio('sglang');
  return {
    hitRateOfBest,
    hitRateGoalMet: hitRateOfBest === null ? null : hitRateOfBest >= 0.95,
    p90VsApproximate,
    p90VsApproxPrefix: ratio('approx-prefix'),
    p90VsSglang,
    p90GoalMet: p90VsApproximate === null || p90VsSglang === null ? null : p90VsApproximate >= 3 && p90VsSglang >= 3,
  };
}
