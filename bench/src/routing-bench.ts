/**
 * `npm run bench:routing`: the public benchmark shapes (shared-prefix high-cache and low-cache sets, multi-turn chats)
 * through the real local request path — simulated vLLM pods, the gateway, and the EPP or an in-process ext_proc
 * director — once with ample KV capacity and once with capacity several times smaller than the working set, for every
 * policy in one invocation (fresh pods per run). Reports hit rate (and of the best any router could reach), TTFT
 * p50/p90, success rate, throughput and load balance per policy, ratios against round robin, the analytic bounds of
 * the reference notes, and the EPP's overhead (the same load through the gateway with and without ext_proc).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseEndpointPickerConfig } from '@kvroute/epp/config';
import { analyze, quantile, ttftOf, type PolicyResult } from './analysis';
import { decimal, directory, integer, listOf, oneOf, parseFlags, SWITCH, UsageError } from './cli-args';
import { cacheablePrefix, finiteCapacityHitRates, idealHitRate, roundRobinHitRate } from './bounds';
import { bestHitRate } from './oracle';
import { writeFileAtomic, writeJsonAtomic } from './out-files';
import {
  censoredTtft, idealSaturation, planRamp, preciseGoals, rampArrivals, stagePrompts, stageResults, UPSTREAM_RAMP, type RampPlan,
} from './poisson-ramp';
import { defaultOptions } from '@kvroute/sim';
import {
  DEFAULT_LADDER_OPTIONS, LADDER_WORKLOAD_NAMES, ISSUE_REFERENCE_DEFAULT, loadList, QUICK_LADDER_OVERRIDES, runLoadLadder, type LadderOptions, type LadderReport,
} from './load-ladder';
import { ladderCellTerminalTable, ladderGoalsTerminalTable } from './load-ladder-report';
import {
  APPROX_PREFIX_CONFIG, CACHE_MISS_ROUTINGS, CacheAwareDirector, CANDIDATE_POLICY_NAMES, DEFAULT_POLICY_NAMES, CountingDirector, OPT_IN_BASELINE_NAMES, POLICY_DESCRIPTIONS, POLICY_NAMES, RoundRobinDirector, SGLANG_DEFAULTS,
  routingPolicy, type CacheAwareOptions, type PolicyName,
} from './policies';
import { ENTRY, BENCH_DIR, runLogPaths, startProcess, type RunLogPaths, type Started } from './processes';
import {
  cellTerminalTable, overheadTerminalTable, routingHtmlReport, summaryTable,
  type Bounds, type CapacityName, type CellReport, type FiniteBounds, type OverheadReport, type OverheadVariant, type PolicySummary,
  type PreciseRunStats, type RoutingReport, type RunRecord, type WorkloadReport,
} from './routing-report';
import {
  buildChats, buildSharedPrefix, measureWorkload, poissonArrivals, SHARED_PREFIX_ORDERS, simTokenizer, sizedText, WORKLOAD_NAMES,
  type BenchWorkload, type TokenizerLike, type WorkloadName, type WorkloadStats,
} from './routing-workloads';
import { runWorkload, type RequestRecord } from './run';
import { DEFAULT_SIM, httpGet, prefixCacheCounters, simArgs, startStack, type RoutingPolicy, type SimulatorSettings } from './stack';
import { parsePrometheusText } from '@kvroute/protocol/prometheus';
import { rng, text, type RagPlan, type Workload } from './workload';

export interface SharedPrefixSize {
  readonly groups: number;
  readonly promptsPerGroup: number;
  readonly systemTokens: number;
  readonly questionTokens: number;
}

/**
 * The open-loop shared-prefix workload (`poisson-groups`): its shape, how often its prompts come back, and its load —
 * by default upstream's Poisson rate ramp up to the pool's capacity (`poisson-ramp.ts`), or with `rate` the earlier
 * fixed-rate form (the recorded runs before the ramp used `rate: 22, outputTokens: 128, passes: 1`).
 */
export interface PoissonSize extends SharedPrefixSize {
  /** Fixed-rate form: requests per second (Poisson) for the whole run. Absent: the ramp. */
  readonly rate?: number;
  /** max_tokens of each reply. */
  readonly outputTokens: number;
  /**
   * Fixed-rate form: times the G × P prompts are sent, in the same shuffled order each pass (inference-perf's
   * shared_prefix cycles through them). Ramp form: the ramp's requests, in units of G × P; each stage sends the list
   * from its first prompt, as inference-perf restarts its generator per stage (`poisson-ramp.ts` `stagePrompts`).
   */
  readonly passes: number;
  /** Ramp form: the most requests per wall-clock second the top may offer; simulated time slows down to keep under it. */
  readonly maxWallRps: number;
}

export interface ChatSize {
  readonly sessions: number;
  readonly turnsPerSession: number;
  readonly systemPrompts: number;
  readonly systemPromptWords: number;
  readonly userWords: number;
}

export interface OverheadOptions {
  readonly enabled: boolean;
  readonly requests: number;
  readonly concurrency: number;
  readonly reps: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
}

export const CAPACITY_NAMES: readonly CapacityName[] = ['ample', 'constrained'];

export interface RoutingBenchOptions {
  readonly quick: boolean;
  readonly pods: number;
  /**
   * EPP replicas for the EPP policies (`--epp-replicas`): each its own process, the gateway spreading ext_proc streams
   * over them (Istio's LEAST_REQUEST), sessions shared through a redis-server, precise replicas subscribed per pod.
   * Optional: 1 when absent.
   */
  readonly eppReplicas?: number;
  /** Requests in flight for the shared-prefix workloads. */
  readonly concurrency: number;
  /** Conversations in flight for the multi-turn workload. */
  readonly chatConcurrency: number;
  readonly workloads: readonly WorkloadName[];
  readonly capacities: readonly CapacityName[];
  readonly policies: readonly PolicyName[];
  /** Working set / per-pod capacity in the constrained runs. */
  readonly capacityRatio: number;
  readonly ampleBlocks?: number;
  readonly constrainedBlocks?: number;
  readonly seed: number;
  readonly outputTokens: number;
  readonly highCache: SharedPrefixSize;
  readonly lowCache: SharedPrefixSize;
  readonly poisson: PoissonSize;
  readonly chat: ChatSize;
  /** Simulator settings; `kvCacheBlocks` (and `maxModelLen` when the cache is small) are set per run. */
  readonly sim: SimulatorSettings;
  readonly repeats: number;
  readonly overhead: OverheadOptions;
  readonly sglang: Required<CacheAwareOptions>;
  /** One unmeasured run through the EPP and one through a director before the matrix. */
  readonly warmUp: boolean;
  readonly outDir: string;
  readonly quiet: boolean;
  /** The open-loop load ladder (issue 9, `load-ladder.ts`); runs after the matrix unless disabled. */
  readonly ladder: LadderOptions;
  /** `matrix`: the workload matrix and the overhead check only; `ladder`: the load ladder only. */
  readonly only?: 'matrix' | 'ladder';
}

export const ROUTING_SIM: SimulatorSettings = DEFAULT_SIM;

/**
 * The ladder's policies unless `--policies` names others: the matrix's (the default, the precise config, the
 * baselines) and the default issue 9's goals are measured against (`ISSUE_REFERENCE_DEFAULT`). The other candidates
 * are comparisons a session made once (33 by session 62); running them all took the ladder to about an hour and a half
 * on 2 cores.
 */
export const LADDER_DEFAULT_POLICIES: readonly PolicyName[] = [...DEFAULT_POLICY_NAMES, ISSUE_REFERENCE_DEFAULT];

export const DEFAULT_ROUTING_OPTIONS: RoutingBenchOptions = {
  quick: false,
  pods: 4,
  concurrency: 16,
  // Coprime with the 4 pods: with a multiple of the pod count, conversations advancing in lockstep would meet the same
  // pod turn after turn under round robin, a closed-loop artifact that flatters it.
  chatConcurrency: 7,
  workloads: WORKLOAD_NAMES,
  capacities: CAPACITY_NAMES,
  policies: DEFAULT_POLICY_NAMES,
  capacityRatio: 4,
  seed: 7,
  outputTokens: 16,
  // SGLang's generated-shared-prefix defaults (64 × 16, 2048 / 128 / 256) and GIE's high-cache set, scaled for 2 cores.
  highCache: { groups: 16, promptsPerGroup: 8, systemTokens: 1024, questionTokens: 64 },
  // GIE's low-cache set (system 256, question 2048), scaled the same way.
  lowCache: { groups: 16, promptsPerGroup: 8, systemTokens: 128, questionTokens: 1024 },
  // llm-d's precise-vs-approximate benchmark (150 groups × 5 users, 6,000-token contexts, Poisson arrivals ramped
  // 3 → 60 QPS, each prompt sent ~20 times) scaled to 2 cores (poisson-ramp.ts says how and why): 48 groups × 5,
  // 8 passes (1,920 requests, 1,911 sent by the ramp's stages; each stage sends the list from its first prompt, so the
  // stages of 6-173 requests send 173 of the 240 prompts), upstream's ramp up to the pool's prefill capacity. Replies of 16 tokens: in the
  // simulator each output token holds one of a pod's 16 sequence slots for 20 ms (a GPU batches decode), so upstream's
  // 1,000-token outputs scaled by the prompt (≈128) would make decode slots the pool's bottleneck, a regime in which a
  // cache hit barely shortens a request; upstream's pods are bound by prefill. At most 24 requests per wall second:
  // about what the fixed-rate form offered (22).
  poisson: { groups: 48, promptsPerGroup: 5, systemTokens: 1024, questionTokens: 64, outputTokens: 16, passes: 8, maxWallRps: 24 },
  // Conversations whose own history outgrows the shared system prompt, like vLLM's multi-turn generator and the
  // production-stack multi-round QA (shared prefix, then a longer per-user history).
  chat: { sessions: 16, turnsPerSession: 6, systemPrompts: 4, systemPromptWords: 300, userWords: 80 },
  sim: ROUTING_SIM,
  repeats: 1,
  overhead: { enabled: true, requests: 200, concurrency: 8, reps: 3, promptTokens: 256, outputTokens: 8 },
  // SGLang's thresholds, except the absolute imbalance threshold: 64 in-flight requests of difference can never occur
  // with the default 16 in flight over 4 pods, so it is 4 here, at every --concurrency (--sglang-abs-threshold sets it).
  sglang: { ...SGLANG_DEFAULTS, balanceAbsThreshold: 4 },
  warmUp: true,
  outDir: path.join(BENCH_DIR, 'out', 'routing'),
  quiet: false,
  ladder: { ...DEFAULT_LADDER_OPTIONS, policies: LADDER_DEFAULT_POLICIES, capacities: CAPACITY_NAMES },
};

/** `--quick`: the same matrix on small workloads (about 20 minutes on 2 cores at the default policies). */
export const QUICK_OVERRIDES: Partial<RoutingBenchOptions> = {
  quick: true,
  concurrency: 8,
  chatConcurrency: 5,
  highCache: { groups: 8, promptsPerGroup: 4, systemTokens: 512, questionTokens: 32 },
  lowCache: { groups: 8, promptsPerGroup: 4, systemTokens: 64, questionTokens: 512 },
  poisson: { groups: 24, promptsPerGroup: 4, systemTokens: 512, questionTokens: 32, outputTokens: 16, passes: 4, maxWallRps: 24 },
  chat: { sessions: 16, turnsPerSession: 3, systemPrompts: 2, systemPromptWords: 200, userWords: 60 },
  outputTokens: 8,
  overhead: { enabled: true, requests: 48, concurrency: 8, reps: 1, promptTokens: 256, outputTokens: 8 },
  ladder: { ...DEFAULT_LADDER_OPTIONS, policies: LADDER_DEFAULT_POLICIES, capacities: CAPACITY_NAMES, ...QUICK_LADDER_OVERRIDES },
};

// ---------------------------------------------------------------------------------------------------------------------
// Running

function log(o: RoutingBenchOptions, line: string): void {
  if (!o.quiet) process.stderr.write(`${line}\n`);
}

export function machineDescription(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.arch()}, node ${process.version}`;
}

/**
 * Requests in flight: the closed loop's setting, or for an open loop Little's law with each request taking its decode
 * time plus a second (sizes the ample cache and the finite-capacity estimate only).
 */
function concurrencyOf(w: BenchWorkload, o: RoutingBenchOptions): number {
  // A ramp's top is the pool's capacity: at most every sequence slot of every pod is busy.
  if (w.ramp) return o.pods * o.sim.maxNumSeqs;
  if (w.arrivalRate !== undefined) return Math.ceil(w.arrivalRate * ((w.workload.options.maxTokens * o.sim.itlMs) / 1000 + 1));
  return w.kind === 'multi-turn' ? o.chatConcurrency : o.concurrency;
}

export function buildBenchWorkload(name: WorkloadName, o: RoutingBenchOptions, tok: TokenizerLike): BenchWorkload {
  if (name === 'multi-turn') return buildChats({ seed: o.seed, ...o.chat, outputTokens: o.outputTokens }, tok);
  if (name === 'poisson-groups') {
    const { rate, passes, maxWallRps: _, ...size } = o.poisson;
    const list = buildSharedPrefix(name, { seed: o.seed, ...size }, tok);
    if (rate !== undefined) {
      // One stage: inference-perf's one get_data() generator cycles through the list.
      const w = cycled(list, passes);
      return {
        ...w,
        description: `${w.description}${passes > 1 ? `, sent ${passes} times over` : ''}, Poisson arrivals at ${rate} req/s (open loop)`,
        arrivalsMs: poissonArrivals(w.requests.length, rate, o.seed * 7919 + 4),
        arrivalRate: rate,
      };
    }
    // The stages send int(rate × duration) each, adding up to a few requests short of passes × G × P.
    const arrivals = rampArrivals(list.requests.length * passes, UPSTREAM_RAMP, rng(o.seed * 7919 + 5));
    const picks = stagePrompts(arrivals.stageOfRequest, list.requests.length);
    // No x-session-id: inference-perf's shared_prefix requests carry none, so a router sees only the prompt. With the
    // prompts coming back every stage, a session header would let kvroute's hard session affinity pin every user's
    // later requests to its first pod, and the benchmark would measure that instead of prefix routing.
    const rag = picks.map((i) => {
      const { headers: _, ...plan } = list.workload.rag[i]!;
      return plan;
    });
    return {
      ...list,
      workload: { ...list.workload, rag, totalRequests: rag.length, options: { ...list.workload.options, ragRequests: rag.length } },
      requests: picks.map((i) => list.requests[i]!),
      ...(list.groupOf ? { groupOf: picks.map((i) => list.groupOf![i]!) } : {}),
      description: `${list.description}, ${rag.length} requests, each stage sending the prompts from the first, `
        + `Poisson arrivals ramped in llm-d's ${UPSTREAM_RAMP.length} stages up to the pool's capacity `
        + `(open loop within a stage; each stage starts once the one before has finished)`,
      ramp: { arrivals, stages: UPSTREAM_RAMP },
    };
  }
  const size = name === 'high-cache' ? o.highCache : o.lowCache;
  return buildSharedPrefix(name, { seed: o.seed, ...size, outputTokens: o.outputTokens }, tok);
}

/**
 * The workload's prompts sent `passes` times, in the same order each pass, as inference-perf's shared_prefix cycles
 * through its list within one stage.
 */
function cycled(w: BenchWorkload, passes: number): BenchWorkload {
  if (passes === 1) return w;
  const repeat = <T>(xs: readonly T[]): T[] => Array.from({ length: passes }, () => xs).flat();
  const rag = repeat(w.workload.rag);
  return {
    ...w,
    workload: { ...w.workload, rag, totalRequests: rag.length, options: { ...w.workload.options, ragRequests: rag.length } },
    requests: repeat(w.requests),
    ...(w.groupOf ? { groupOf: repeat(w.groupOf) } : {}),
  };
}

/**
 * KV blocks per pod for each capacity: ample holds the whole working set on every pod; constrained is W / ratio. Each
 * capacity the options select must hold two of the workload's longest sequences.
 */
export function capacityBlocks(w: BenchWorkload, stats: WorkloadStats, o: RoutingBenchOptions): Record<CapacityName, number> {
  const B = o.sim.blockSize;
  const sequenceBlocks = Math.ceil(stats.maxSequenceTokens / B);
  const ample = o.ampleBlocks ?? Math.max(1024, Math.ceil(stats.workingSetBlocks * 1.25) + concurrencyOf(w, o) * sequenceBlocks);
  const constrained = o.constrainedBlocks ?? Math.ceil(stats.workingSetBlocks / o.capacityRatio);
  for (const [name, blocks] of [['ample', ample], ['constrained', constrained]] as const) {
    if (o.capacities.includes(name) && blocks < 2 * sequenceBlocks) {
      throw new Error(`${w.name}: ${name} KV capacity of ${blocks} blocks per pod cannot hold two of its longest sequences `
        + `(${stats.maxSequenceTokens} tokens = ${sequenceBlocks} blocks each); `
        + (name === 'constrained' && o.constrainedBlocks === undefined
          ? `the working set is ${stats.workingSetBlocks} blocks, so lower --capacity-ratio (${o.capacityRatio}) or make the workload larger`
          : `raise --${name}-blocks`));
    }
  }
  return { ample, constrained };
}

function simFor(o: RoutingBenchOptions, blocks: number, timeScale = o.sim.timeScale): SimulatorSettings {
  return { ...o.sim, timeScale, kvCacheBlocks: blocks, maxModelLen: Math.min(o.sim.maxModelLen, blocks * o.sim.blockSize) };
}

/**
 * A ramp workload's load for one KV capacity: the top at the pool's saturation throughput under the ideal static
 * placement, measured with the simulator's engine in virtual time (`poisson-ramp.ts`). Policy-independent: the same
 * for every policy of the cell.
 */
function rampPlanFor(w: BenchWorkload, blocks: number, o: RoutingBenchOptions, tok: TokenizerLike): RampPlan | undefined {
  if (!w.ramp) return undefined;
  const capacity = idealSaturation(w, tok, simFor(o, blocks), defaultOptions().prefillConcurrency, o.pods);
  return planRamp(w.ramp.arrivals, w.ramp.stages, capacity, o.sim.timeScale, o.poisson.maxWallRps);
}

function directorStats(director: unknown): Record<string, unknown> | undefined {
  if (director instanceof CacheAwareDirector) {
    return { decisions: { ...director.decisions }, treeChars: director.trees.map((t) => t.size), evictedChars: director.trees.map((t) => t.evictedChars) };
  }
  if (director instanceof CountingDirector) return { routed: [...director.routed] };
  return undefined;
}

/**
 * Candidate pods the saturation filter dropped over a run (`kvroute_epp_saturation_exclusions_total`, every replica):
 * each one is a request that could not go to that pod, wherever its prefix was.
 */
async function saturationExclusions(metricsPorts: readonly number[]): Promise<number> {
  let total = 0;
  for (const port of metricsPorts) {
    const families = parsePrometheusText(await httpGet(`http://127.0.0.1:${port}/metrics`)).families;
    for (const family of families.values()) {
      for (const sample of family.samples) if (sample.name === 'kvroute_epp_saturation_exclusions_total') total += sample.value;
    }
  }
  return total;
}

/** The precise EPP's counters at the end of a run (kvroute_epp_kv_* and kvroute_epp_precise_*). */
async function preciseStats(metricsPort: number): Promise<PreciseRunStats> {
  const families = parsePrometheusText(await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).families;
  const sum = (name: string, labels: Record<string, string> = {}) => {
    let total = 0;
    for (const family of families.values()) {
      for (const sample of family.samples) {
        if (sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) total += sample.value;
      }
    }
    return total;
  };
  const prompt = sum('kvroute_epp_precise_prompt_tokens_total');
  return {
    eventsReceived: sum('kvroute_epp_kv_events_total', { outcome: 'received' }),
    eventsApplied: sum('kvroute_epp_kv_events_total', { outcome: 'applied' }),
    sequenceGaps: sum('kvroute_epp_kv_event_gaps_total'),
    predictedHitRate: prompt > 0 ? sum('kvroute_epp_precise_predicted_hit_tokens_total') / prompt : null,
  };
}

function balanceOf(result: PolicyResult, pods: number): number {
  const counts = Object.values(result.perEndpoint);
  const mean = result.succeeded / pods;
  return mean > 0 ? Math.max(0, ...counts) / mean : 0;
}

interface RunOutput {
  readonly record: RunRecord;
  readonly records: RequestRecord[];
}

async function runOnce(w: BenchWorkload, capacity: CapacityName, blocks: number, policyName: PolicyName, repeat: number,
  o: RoutingBenchOptions, logPath: RunLogPaths, plan?: RampPlan): Promise<RunOutput> {
  const sim = simFor(o, blocks, plan?.timeScale);
  const arrivalsMs = plan?.arrivalsMs ?? w.arrivalsMs;
  const policy = routingPolicy(policyName, { seed: o.seed + repeat, sglang: o.sglang });
  const stack = await startStack({
    pods: o.pods, sim, policy, logDir: logPath(`${w.name}-${capacity}-r${repeat}`),
    ...(policy.kind === 'epp' && (o.eppReplicas ?? 1) > 1 ? { eppReplicas: o.eppReplicas } : {}),
  });
  try {
    const outcome = await runWorkload(w.workload, {
      gatewayUrl: stack.gatewayUrl, model: sim.model, concurrency: concurrencyOf(w, o), ...(arrivalsMs ? { arrivalsMs } : {}),
      ...(plan ? { stages: { ofRequest: plan.stageOfRequest, gapMs: plan.stageGapMs } } : {}),
    });
    const counters = await prefixCacheCounters(stack.podAddresses);
    // Every policy that binds the pods' KV events (the flag, not a list of names: a new precise candidate reports too).
    const precise = stack.epp && policy.kind === 'epp' && policy.precise === true ? await preciseStats(stack.epp.info.metricsPort as number) : undefined;
    const excluded = stack.epps.length > 0 ? await saturationExclusions(stack.eppPorts.map((p) => p.metrics)) : undefined;
    const result = analyze(policyName, outcome.records, counters, outcome.wallSeconds, null, sim.timeScale);
    // A ramp overloads every policy that hits less than the ideal placement, and a request still queued when the
    // client gives up (120 s without a byte) fails: its TTFT counts as at least the time it waited, so a policy's
    // percentiles cannot improve by losing its slowest requests. A successful request without a first token has no TTFT.
    const ttftOfRecord = plan ? censoredTtft : ttftOf;
    const ttfts = outcome.records.flatMap((r) => {
      const ttft = ttftOfRecord(r);
      return ttft === undefined ? [] : [ttft * sim.timeScale];
    });
    const record: RunRecord = {
      policy: policyName,
      repeat,
      requests: result.requests,
      succeeded: result.succeeded,
      noToken: result.noToken,
      hitRate: result.hitRate,
      servedHitRate: result.servedHitRate,
      lookupsPerPromptToken: result.lookupsPerPromptToken,
      ttftP50: plan ? quantile(ttfts, 0.5) : result.ttft.p50,
      ttftP90: plan ? quantile(ttfts, 0.9) : result.ttft.p90,
      ttftP99: quantile(ttfts, 0.99),
      throughputRps: result.throughputRps,
      wallSeconds: result.wallSeconds,
      balance: balanceOf(result, o.pods),
      perEndpoint: result.perEndpoint,
      failures: result.failures.slice(0, 5),
      director: directorStats(stack.director),
      ...(precise ? { precise } : {}),
      ...(excluded !== undefined ? { saturationExclusions: excluded } : {}),
      ...(plan ? { stages: stageResults(plan, outcome.records) } : {}),
    };
    return { record, records: outcome.records };
  } finally {
    await stack.stop();
  }
}

const median = (values: readonly number[]): number => quantile(values, 0.5) ?? 0;
function medianOrNull(values: readonly (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null);
  return v.length > 0 ? median(v) : null;
}
const over = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : null);

export function summarize(policies: readonly PolicyName[], runs: readonly RunRecord[], best: number | null, baseline: string): PolicySummary[] {
  const rows = policies.map((name) => {
    const mine = runs.filter((r) => r.policy === name);
    const hitRate = median(mine.map((r) => r.hitRate));
    return {
      policy: name,
      description: POLICY_DESCRIPTIONS[name],
      runs: mine.length,
      successRate: median(mine.map((r) => (r.requests > 0 ? r.succeeded / r.requests : 0))),
      hitRate,
      hitRateOfBest: best ? hitRate / best : null,
      ttftP50: medianOrNull(mine.map((r) => r.ttftP50)),
      ttftP90: medianOrNull(mine.map((r) => r.ttftP90)),
      ttftP99: medianOrNull(mine.map((r) => r.ttftP99 ?? null)),
      ...(mine[0]?.stages ? { stageP90s: mine[0].stages.map((_, i) => medianOrNull(mine.map((r) => r.stages?.[i]?.ttftP90 ?? null))) } : {}),
      throughputRps: median(mine.map((r) => r.throughputRps)),
      balance: median(mine.map((r) => r.balance)),
    };
  });
  const base = rows.find((r) => r.policy === baseline) ?? rows[0];
  return rows.map((r) => ({
    ...r,
    vsBaseline: {
      hitRate: over(r.hitRate, base.hitRate),
      ttftP50: over(r.ttftP50, base.ttftP50),
      ttftP90: over(r.ttftP90, base.ttftP90),
      throughput: over(r.throughputRps, base.throughputRps),
    },
  }));
}

function boundsFor(w: BenchWorkload, stats: WorkloadStats, o: RoutingBenchOptions): Bounds | undefined {
  if (w.kind !== 'shared-prefix' || !w.groups || stats.sharedPrefixTokens === undefined || stats.uniqueTokens === undefined) return undefined;
  const shape = { P: w.groups.P, S: stats.sharedPrefixTokens, Q: stats.uniqueTokens, B: o.sim.blockSize };
  return { ...shape, R: o.pods, hStar: idealHitRate(shape), hRR: roundRobinHitRate(shape, o.pods) };
}

function finiteFor(w: BenchWorkload, bounds: Bounds | undefined, blocks: number, o: RoutingBenchOptions): FiniteBounds | undefined {
  if (!bounds || !w.groups) return undefined;
  const prefixWorkingSetTokens = w.groups.G * cacheablePrefix(bounds.S, bounds.B);
  // Live tokens per pod: its share of the requests in flight, each holding its question and reply.
  const live = Math.ceil(concurrencyOf(w, o) / o.pods) * (bounds.Q + w.workload.options.maxTokens);
  const freeTokensPerPod = Math.max(0, blocks * bounds.B - live);
  if (freeTokensPerPod >= prefixWorkingSetTokens) return undefined; // not capacity-bound: the infinite-cache bounds apply
  const est = finiteCapacityHitRates(bounds, bounds.R, prefixWorkingSetTokens, freeTokensPerPod);
  return { ...est, prefixWorkingSetTokens, freeTokensPerPod };
}

/** The first `n` requests' worth of a workload (whole sessions for chats). */
function truncated(w: Workload, n: number): Workload {
  if (w.sessions.length > 0) {
    const sessions = w.sessions.slice(0, Math.max(1, Math.ceil(n / Math.max(1, w.options.turnsPerSession))));
    return { ...w, sessions, rag: [], totalRequests: sessions.length * w.options.turnsPerSession };
  }
  const rag = w.rag.slice(0, n);
  return { ...w, rag, totalRequests: rag.length };
}

/**
 * Not measured: the first processes of an invocation start on a cold file cache, and this process's client and
 * ext_proc code is not compiled yet. One short run through the EPP and one through an in-process director pay for it.
 */
async function warmUp(w: BenchWorkload, blocks: number, o: RoutingBenchOptions, logPath: RunLogPaths): Promise<void> {
  for (const name of ['kvroute', 'sglang'] as const) {
    const sim = simFor(o, blocks);
    const stack = await startStack({ pods: o.pods, sim, policy: routingPolicy(name, { seed: o.seed, sglang: o.sglang }), logDir: logPath('warm-up') });
    try {
      await runWorkload(truncated(w.workload, 16), { gatewayUrl: stack.gatewayUrl, model: sim.model, concurrency: concurrencyOf(w, o) });
    } finally {
      await stack.stop();
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// EPP overhead: one set of pods, the gateway started fresh for each path, unique prompts so that no path gains or
// loses cache hits, alternating order across repetitions.

interface OverheadPath {
  readonly name: string;
  readonly description: string;
  readonly policy: () => RoutingPolicy;
}

const OVERHEAD_PATHS: readonly OverheadPath[] = [
  { name: 'gateway round-robin', description: 'the gateway alone (no ext_proc)', policy: () => ({ kind: 'round-robin', name: 'overhead-rr' }) },
  { name: 'gateway + kvroute EPP', description: 'ext_proc to the EPP process, built-in config', policy: () => ({ kind: 'epp', name: 'overhead-kvroute' }) },
  {
    name: 'gateway + ext_proc RR director',
    description: 'ext_proc to a round-robin director in the benchmark process (the protocol cost without scheduling)',
    policy: () => ({ kind: 'director', name: 'overhead-director', director: (endpoints) => new RoundRobinDirector(endpoints) }),
  },
];

function overheadWorkload(bases: readonly string[], tag: string, outputTokens: number): Workload {
  const rag: RagPlan[] = bases.map((b, i) => ({
    kind: 'rag',
    document: i,
    // A distinct first block per request and per run: nothing is ever served from cache.
    messages: [{ role: 'user', content: `Run ${tag}, request ${i}. ${b}` }],
  }));
  return {
    options: { seed: 0, systemPrompts: 0, systemPromptWords: 0, sessions: 0, turnsPerSession: 0, userWords: 0, maxTokens: outputTokens, documents: 0, documentWords: 0, ragRequests: rag.length, questionWords: 0 },
    sessions: [],
    rag,
    totalRequests: rag.length,
  };
}

async function measureOverhead(o: RoutingBenchOptions, tok: TokenizerLike, logPath: RunLogPaths): Promise<OverheadReport> {
  const ov = o.overhead;
  const sim: SimulatorSettings = { ...o.sim, timeScale: 1, kvCacheBlocks: 4096 };
  const random = rng(o.seed + 1000);
  const bases = Array.from({ length: ov.requests }, () => sizedText(random, ov.promptTokens, '', tok.count));
  const warm = Array.from({ length: 8 }, () => text(random, 40));
  const logDir = logPath('overhead');
  fs.mkdirSync(logDir, { recursive: true });
  const pods: Started[] = await Promise.all(Array.from({ length: o.pods }, (_, i) =>
    startProcess(`sim-${i}`, ENTRY.sim, simArgs(sim, `decode-${i}`), { logFile: path.join(logDir, `sim-${i}.log`) })));
  const results = new Map<string, PolicyResult[]>(OVERHEAD_PATHS.map((p) => [p.name, []]));
  try {
    for (let rep = 0; rep < ov.reps; rep++) {
      // Rotate the order so that no path always runs first (or last, on a warmer machine).
      const order = OVERHEAD_PATHS.map((_, i) => OVERHEAD_PATHS[(i + rep) % OVERHEAD_PATHS.length]);
      for (const [k, p] of order.entries()) {
        const stack = await startStack({ pods: o.pods, sim, policy: p.policy(), logDir, existingPods: pods });
        try {
          // Warm-up: connections, JIT and the EPP's first scrapes; not measured.
          await runWorkload(overheadWorkload(warm, `warm-${rep}-${k}`, ov.outputTokens), { gatewayUrl: stack.gatewayUrl, model: sim.model, concurrency: 4 });
          const outcome = await runWorkload(overheadWorkload(bases, `${rep}-${k}`, ov.outputTokens), { gatewayUrl: stack.gatewayUrl, model: sim.model, concurrency: ov.concurrency });
          const r = analyze(p.name, outcome.records, { hits: 0, queries: 0 }, outcome.wallSeconds, null, 1);
          results.get(p.name)!.push(r);
          log(o, `overhead rep ${rep + 1}/${ov.reps}: ${p.name.padEnd(32)} TTFT p50 ${((r.ttft.p50 ?? 0) * 1000).toFixed(1)} ms, `
            + `p90 ${((r.ttft.p90 ?? 0) * 1000).toFixed(1)} ms, ${r.throughputRps.toFixed(1)} req/s, ok ${r.succeeded}/${r.requests}`);
        } finally {
          await stack.stop();
        }
      }
    }
  } finally {
    await Promise.all(pods.map((p) => p.stop()));
  }
  const toMs = (v: number | null) => (v === null ? null : v * 1000);
  const variants = OVERHEAD_PATHS.map((p) => {
    const rs = results.get(p.name)!;
    return {
      name: p.name,
      description: p.description,
      ttftP50Ms: toMs(medianOrNull(rs.map((r) => r.ttft.p50))),
      ttftP90Ms: toMs(medianOrNull(rs.map((r) => r.ttft.p90))),
      throughputRps: median(rs.map((r) => r.throughputRps)),
      successRate: median(rs.map((r) => r.successRate)),
      perRep: rs.map((r) => ({ ttftP50Ms: toMs(r.ttft.p50), ttftP90Ms: toMs(r.ttft.p90), throughputRps: r.throughputRps })),
    };
  });
  const base = variants[0];
  const diff = (a: number | null, b: number | null) => (a !== null && b !== null ? a - b : null);
  return {
    requests: ov.requests,
    concurrency: ov.concurrency,
    reps: ov.reps,
    promptTokens: ov.promptTokens,
    outputTokens: ov.outputTokens,
    baseline: base.name,
    variants: variants.map((v): OverheadVariant => ({
      ...v,
      deltaP50Ms: diff(v.ttftP50Ms, base.ttftP50Ms),
      deltaP90Ms: diff(v.ttftP90Ms, base.ttftP90Ms),
      throughputRatio: over(v.throughputRps, base.throughputRps),
    })),
  };
}

// ---------------------------------------------------------------------------------------------------------------------

export async function runRoutingBench(o: RoutingBenchOptions): Promise<RoutingReport> {
  const t0 = Date.now();
  // The upstream config must load with kvroute's strict loader before anything starts.
  try {
    parseEndpointPickerConfig(APPROX_PREFIX_CONFIG);
  } catch (e) {
    throw new Error(`the approx-prefix EPP config does not load: ${(e as Error).message}`);
  }
  fs.mkdirSync(o.outDir, { recursive: true });
  const logPath = runLogPaths(path.join(o.outDir, 'logs'));
  const machine = machineDescription();
  const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  log(o, `routing benchmark on ${machine}; load average ${loadAtStart}`);

  const tok = simTokenizer();
  const matrix = o.only !== 'ladder';
  const benchWorkloads = matrix ? o.workloads.map((name) => buildBenchWorkload(name, o, tok)) : [];
  const stats = new Map(benchWorkloads.map((w) => [w.name, measureWorkload(w, tok, o.sim.blockSize)]));
  const blocks = new Map(benchWorkloads.map((w) => [w.name, capacityBlocks(w, stats.get(w.name)!, o)]));
  const baseline = o.policies.includes('round-robin') ? 'round-robin' : o.policies[0];
  const totalRuns = benchWorkloads.length * o.capacities.length * o.repeats * o.policies.length;

  if (o.warmUp && benchWorkloads.length > 0) {
    log(o, 'warming up (not measured)');
    await warmUp(benchWorkloads[0], blocks.get(benchWorkloads[0].name)!.ample, o, logPath);
  }

  const workloadReports: WorkloadReport[] = [];
  const cells: CellReport[] = [];
  let done = 0;
  let cellIndex = 0;
  const plans = new Map<string, RampPlan>();
  for (const w of benchWorkloads) {
    const st = stats.get(w.name)!;
    const bounds = boundsFor(w, st, o);
    let best: number | null = null;
    let bestFrom: RequestRecord[] | undefined;
    const workloadCells: { capacity: CapacityName; runs: RunRecord[] }[] = [];
    for (const capacity of o.capacities) {
      const kv = blocks.get(w.name)![capacity];
      const plan = rampPlanFor(w, kv, o, tok);
      if (plan) plans.set(`${w.name}/${capacity}`, plan);
      if (plan) {
        const c = plan.capacity;
        log(o, `${w.name} × ${capacity}: ramp top ${c.topRps.toFixed(1)} req/s (the pool's saturation under the ideal static placement, `
          + `${(c.hitRate * 100).toFixed(1)}% hit rate), time scale ${plan.timeScale.toFixed(3)}, `
          + `${plan.arrivalsMs.length} requests in stages of ${plan.stages.reduce((a, st) => a + st.seconds / plan.timeScale, 0).toFixed(0)} s wall `
          + `(each stage's drain and a ${(plan.stageGapMs / 1000).toFixed(2)} s pause after it not counted)`);
      }
      const runs: RunRecord[] = [];
      for (let repeat = 0; repeat < o.repeats; repeat++) {
        const order = o.policies.map((_, i) => o.policies[(i + cellIndex + repeat) % o.policies.length]);
        for (const policy of order) {
          const started = Date.now();
          const { record, records } = await runOnce(w, capacity, kv, policy, repeat, o, logPath, plan);
          runs.push(record);
          done++;
          if (!bestFrom || (record.succeeded === record.requests && bestFrom.some((r) => !r.result.ok))) bestFrom = records;
          log(o, `[${done}/${totalRuns}] ${`${w.name} × ${capacity}`.padEnd(26)} ${policy.padEnd(14)} hit ${(record.hitRate * 100).toFixed(1).padStart(5)}%  `
            + `TTFT p50 ${((record.ttftP50 ?? 0) * 1000).toFixed(0).padStart(5)} ms  ok ${record.succeeded}/${record.requests}${record.noToken ? ` (${record.noToken} without a token)` : ''}  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        }
      }
      workloadCells.push({ capacity, runs });
      cellIndex++;
    }
    // The best any router could reach on these requests (every policy sends the same ones: chat replies are the
    // simulator's deterministic filler), from a run in which every request succeeded when there is one.
    if (bestFrom) {
      best = await bestHitRate(bestFrom, o.sim, w.workload.options.maxTokens, logPath(`${w.name}-oracle.log`));
    }
    workloadReports.push({
      name: w.name, kind: w.kind, description: w.description, stats: st, concurrency: concurrencyOf(w, o),
      ...(w.arrivalRate !== undefined ? { arrivalRate: w.arrivalRate } : {}), best, bounds,
    });
    for (const { capacity, runs } of workloadCells) {
      const kv = blocks.get(w.name)![capacity];
      const plan = plans.get(`${w.name}/${capacity}`);
      const policies = summarize(o.policies, runs, best, baseline);
      const goals = w.name === 'poisson-groups' ? preciseGoals(policies, best) : undefined;
      const cell: CellReport = {
        workload: w.name,
        capacity,
        kvCacheBlocksPerPod: kv,
        workingSetBlocks: st.workingSetBlocks,
        reusedBlocks: st.reusedBlocks,
        workingSetOverCapacity: st.workingSetBlocks / kv,
        reusedOverCapacity: st.reusedBlocks / kv,
        clusterOverWorkingSet: (o.pods * kv) / st.workingSetBlocks,
        baseline,
        best,
        bounds,
        finite: finiteFor(w, bounds, kv, o),
        policies,
        runs,
        ...(plan ? { ramp: { capacity: plan.capacity, timeScale: plan.timeScale, stages: plan.stages } } : {}),
        ...(goals ? { goals } : {}),
      };
      cells.push(cell);
      if (!o.quiet) process.stdout.write(`\n${cellTerminalTable(cell)}\n`);
    }
  }

  let overhead: OverheadReport | undefined;
  if (o.overhead.enabled && matrix) {
    overhead = await measureOverhead(o, tok, logPath);
    if (!o.quiet) process.stdout.write(`\n${overheadTerminalTable(overhead)}\n`);
  }

  let ladder: LadderReport | undefined;
  if (o.only === 'ladder' || (o.ladder.enabled && o.only !== 'matrix')) {
    ladder = await runLoadLadder(o.ladder, {
      pods: o.pods, seed: o.seed, capacityRatio: o.capacityRatio, sim: o.sim, sglang: o.sglang, logPath, log: (line) => log(o, line),
    }, tok);
    if (!o.quiet) {
      for (const c of ladder.cells) process.stdout.write(`\n${ladderCellTerminalTable(c)}\n`);
      process.stdout.write(`\n${ladderGoalsTerminalTable(ladder)}\n`);
    }
  }

  const wallSeconds = (Date.now() - t0) / 1000;
  const report: RoutingReport = {
    title: 'kvroute routing benchmark',
    date: new Date().toISOString(),
    machine: `${machine}; load average at start ${loadAtStart}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    wallSeconds,
    pods: o.pods,
    timeScale: o.sim.timeScale,
    options: o,
    workloads: workloadReports,
    cells,
    overhead,
    ...(ladder ? { ladder } : {}),
    policies: [...new Set([...(matrix ? o.policies : []), ...(ladder ? o.ladder.policies : [])])].map((p) => ({ name: p, description: POLICY_DESCRIPTIONS[p] })),
    notes: [
      'Hit rate: the pods\' own vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total (tokens), summed over the pods, fresh pods for every run. '
        + 'Best: the same requests replayed in send order against one simulated pod that never evicts (the bound a perfect router with unlimited cache approaches); '
        + '"of best" is hit rate / best. h* and h_RR are the §7 formulas with S and Q measured in tokens (chat template included); they assume infinite cache '
        + 'and random arrival order, so they are shown for the shared-prefix workloads only. The finite-capacity estimates (§7.3) assume LRU under the '
        + 'independent reference model with the prefix working set G·S_b against the capacity a pod has left after its share of live requests.',
      `TTFT: first streamed token as the client measured it, multiplied by the time scale (${o.sim.timeScale}) to read as simulated-GPU time; real `
        + 'per-request overheads (gateway, ext_proc, the client) are multiplied too. Medians over repeats (repeats: ' + o.repeats + '). '
        + 'Throughput (req/s): successful requests per simulated second (wall seconds × the run\'s time scale, the clock the TTFTs and the ramp\'s rates are read in), '
        + 'from the run\'s start to its last answer, as vLLM\'s request_throughput; a closed loop keeps a fixed number of requests in flight, an open loop sends at the arrival times. '
        + 'Balance: requests on the busiest pod over the mean per pod.',
      `Working set: distinct full KV blocks of every prompt and reply, deduplicated by prefix; "reused" counts blocks more than one request uses. `
        + `Constrained capacity is the working set / ${o.capacityRatio} per pod; ample holds the whole working set (plus live requests) on every pod.`,
      `The SGLang-style director uses cache_threshold ${o.sglang.cacheThreshold}, balance_rel_threshold ${o.sglang.balanceRelThreshold}, `
        + `balance_abs_threshold ${o.sglang.balanceAbsThreshold} (SGLang: 64, which a difference of in-flight requests never reaches at the default 16 in flight over 4 pods; the benchmark defaults to 4 at every --concurrency and pod count), max tree ${o.sglang.maxTreeChars} chars per worker, `
        + `cache misses to the ${o.sglang.missRouting === 'least-load' ? 'least-loaded worker (SGLang since PR #14650)' : 'smallest tree (SGLang before PR #14650)'}.`,
      'Directors (sglang, random, least-request, the overhead RR director) run in the benchmark process behind the EPP\'s own ext_proc server; the EPP '
        + 'policies run as a separate process; round-robin and session-hash are the gateway alone. Every run starts fresh pods, gateway and router.',
    ],
  };
  writeJsonAtomic(path.join(o.outDir, 'results.json'), report);
  writeFileAtomic(path.join(o.outDir, 'report.html'), routingHtmlReport(report));
  if (!o.quiet) {
    if (cells.length > 0) process.stdout.write(`\n${summaryTable(cells)}\n`);
    process.stdout.write(`\nmachine: ${report.machine}\nwall time: ${wallSeconds.toFixed(0)} s\n`);
    process.stdout.write(`written ${path.relative(process.cwd(), path.join(o.outDir, 'results.json'))} and report.html\n`);
  }
  return report;
}

// ---------------------------------------------------------------------------------------------------------------------
// CLI

export const ROUTING_USAGE = `Usage: npm run bench:routing -- [flags]

Runs every workload × KV capacity × policy through simulated vLLM pods, the gateway and the EPP (or an in-process
ext_proc director), fresh pods per run, then the EPP overhead check, then the open-loop load ladder. Prints a table per
workload × capacity and writes results.json and report.html to --out. On 2 cores the matrix takes about 15 minutes
without poisson-groups, whose ramp adds 3-13 minutes per policy and capacity (a policy that saturates early drains
its backlog at its own pace), and the ladder about 23 (its default policies: the matrix's and the default of issue 9's
goals, kvroute-prefix-first; about 2.3 minutes each; --only picks one). --quick is no smoke test: about 20 minutes for the matrix and about
12 for the ladder (measured 2026-12-06); --only and --policies shorten it.

General
  --quick                      small workloads, one overhead repetition (other flags still apply)
  --pods N                     simulated vLLM pods, R (default ${DEFAULT_ROUTING_OPTIONS.pods})
  --epp-replicas N             EPP replicas for the EPP policies (default 1; more share sessions through a
                               redis-server on loopback, precise replicas subscribe to every pod)
  --workloads a,b              of ${WORKLOAD_NAMES.join(', ')} (default all)
  --capacities a,b             of ${CAPACITY_NAMES.join(', ')} (default both)
  --policies a,b               of ${POLICY_NAMES.join(', ')} (default all but the candidates ${CANDIDATE_POLICY_NAMES.join(', ')} and the opt-in baseline ${OPT_IN_BASELINE_NAMES.join(', ')}; the ladder also runs ${ISSUE_REFERENCE_DEFAULT}, the default of issue 9's goals; a list given replaces both defaults)
  --repeats N                  runs per policy and cell; medians are reported (default ${DEFAULT_ROUTING_OPTIONS.repeats})
  --concurrency N              requests in flight, shared-prefix workloads (default ${DEFAULT_ROUTING_OPTIONS.concurrency}; quick ${QUICK_OVERRIDES.concurrency})
  --chat-concurrency N         conversations in flight, multi-turn (default ${DEFAULT_ROUTING_OPTIONS.chatConcurrency}; quick ${QUICK_OVERRIDES.chatConcurrency})
  --seed N                     workload seed (default ${DEFAULT_ROUTING_OPTIONS.seed})
  --out DIR                    where results.json, report.html and logs/ go (default bench/out/routing)
  --no-warm-up                 skip the unmeasured warm-up runs before the matrix
  --quiet                      no progress or tables
  --only matrix|ladder         run only the workload matrix (and the overhead check), or only the load ladder
  -h, --help                   this help

KV capacity (blocks of ${ROUTING_SIM.blockSize} tokens per pod)
  --capacity-ratio X           constrained runs: working set / per-pod capacity (default ${DEFAULT_ROUTING_OPTIONS.capacityRatio}; 3-6 is the regime of interest)
  --ample-blocks N             override the ample capacity (default: 1.25 × working set + live requests, at least 1024)
  --constrained-blocks N       override the constrained capacity (default: working set / ratio)
  --time-scale X               simulated time runs X times faster than wall-clock (default ${ROUTING_SIM.timeScale})
  --max-num-seqs N             vLLM's --max-num-seqs on every pod (default ${ROUTING_SIM.maxNumSeqs})

Workloads (tokens of the simulator's Qwen3 tokenizer)
  --groups N --prompts-per-group N --system-tokens N --question-tokens N
                               high-cache shared-prefix set (default ${DEFAULT_ROUTING_OPTIONS.highCache.groups} × ${DEFAULT_ROUTING_OPTIONS.highCache.promptsPerGroup}, ${DEFAULT_ROUTING_OPTIONS.highCache.systemTokens} / ${DEFAULT_ROUTING_OPTIONS.highCache.questionTokens})
  --low-groups N --low-prompts-per-group N --low-system-tokens N --low-question-tokens N
                               low-cache set (default ${DEFAULT_ROUTING_OPTIONS.lowCache.groups} × ${DEFAULT_ROUTING_OPTIONS.lowCache.promptsPerGroup}, ${DEFAULT_ROUTING_OPTIONS.lowCache.systemTokens} / ${DEFAULT_ROUTING_OPTIONS.lowCache.questionTokens})
  --poisson-groups N --poisson-prompts-per-group N --poisson-system-tokens N --poisson-question-tokens N
  --poisson-output-tokens N --poisson-passes N
                               poisson-groups set, N × G × P requests (default ${DEFAULT_ROUTING_OPTIONS.poisson.groups} × ${DEFAULT_ROUTING_OPTIONS.poisson.promptsPerGroup}, ${DEFAULT_ROUTING_OPTIONS.poisson.systemTokens} / ${DEFAULT_ROUTING_OPTIONS.poisson.questionTokens}, output ${DEFAULT_ROUTING_OPTIONS.poisson.outputTokens}, ${DEFAULT_ROUTING_OPTIONS.poisson.passes} passes),
                               open loop: llm-d's Poisson ramp up to the pool's capacity, each stage sending the
                               prompts from the first as inference-perf's do (see bench/README.md)
  --poisson-max-wall-rps X     the ramp's top in wall-clock requests/s at most (simulated time slows; default ${DEFAULT_ROUTING_OPTIONS.poisson.maxWallRps})
  --rate X                     poisson-groups at a fixed X requests/s instead of the ramp (the earlier form; the recorded
                               fixed-rate runs used --rate 22 --poisson-output-tokens 128 --poisson-passes 1)
  --sessions N --turns N --system-prompts N --system-words N --user-words N
                               multi-turn chats (default ${DEFAULT_ROUTING_OPTIONS.chat.sessions} × ${DEFAULT_ROUTING_OPTIONS.chat.turnsPerSession} turns, ${DEFAULT_ROUTING_OPTIONS.chat.systemPrompts} system prompts of ${DEFAULT_ROUTING_OPTIONS.chat.systemPromptWords} words)
  --output-tokens N            max_tokens of every reply but poisson-groups' (default ${DEFAULT_ROUTING_OPTIONS.outputTokens})

EPP overhead
  --overhead-requests N        unique prompts per path and repetition (default ${DEFAULT_ROUTING_OPTIONS.overhead.requests})
  --overhead-concurrency N     (default ${DEFAULT_ROUTING_OPTIONS.overhead.concurrency})
  --overhead-reps N            alternating repetitions; medians are reported (default ${DEFAULT_ROUTING_OPTIONS.overhead.reps})
  --no-overhead                skip it

Open-loop load ladder (issue 9; after the matrix, or alone with --only ladder)
  --no-ladder                  skip it
  --ladder-loads a,b           fractions of the measured saturation rate (default ${DEFAULT_LADDER_OPTIONS.loads.join(',')})
  --ladder-saturation-policy P the policy the saturation rate is measured under (default ${DEFAULT_LADDER_OPTIONS.saturationPolicy}, the
                               product's default config; round-robin for a load the baseline itself sustains)
  --ladder-workloads a,b       of ${LADDER_WORKLOAD_NAMES.join(', ')} (default both)
  --ladder-time-scale X        the ladder's simulated-time speed-up, both workloads (default interactive ${DEFAULT_LADDER_OPTIONS.timeScale.interactive}, shared-prefix ${DEFAULT_LADDER_OPTIONS.timeScale['shared-prefix']})
  --ladder-sessions N --ladder-turns N --ladder-requests N --ladder-think-ms X
                               interactive: conversations, their most turns, requests per run, think time (default
                               ${DEFAULT_LADDER_OPTIONS.interactive.sessions}, ${DEFAULT_LADDER_OPTIONS.interactive.turnsPerSession}, ${DEFAULT_LADDER_OPTIONS.interactive.requests}, ${DEFAULT_LADDER_OPTIONS.interactive.thinkMs} ms mean)
  --ladder-groups N --ladder-prompts-per-group N
                               shared-prefix groups (default ${DEFAULT_LADDER_OPTIONS.sharedPrefix.groups} × ${DEFAULT_LADDER_OPTIONS.sharedPrefix.promptsPerGroup})
  --ladder-shared-prefix-order O
                               ${SHARED_PREFIX_ORDERS.join(' or ')}: groups start evenly over the run, or every prompt shuffled
                               as SGLang's benchmark sends them and ladder runs before session 53 did (default ${DEFAULT_LADDER_OPTIONS.sharedPrefixOrder})
  The ladder runs --policies (default: ${LADDER_DEFAULT_POLICIES.join(', ')}; every policy until session 62) and --capacities.

SGLang-style director
  --sglang-abs-threshold N     balance_abs_threshold (default ${DEFAULT_ROUTING_OPTIONS.sglang.balanceAbsThreshold}; SGLang's 64 never triggers at this concurrency)
  --sglang-rel-threshold X     balance_rel_threshold, >= 1 (default ${DEFAULT_ROUTING_OPTIONS.sglang.balanceRelThreshold})
  --sglang-cache-threshold X   cache_threshold, 0..1 (default ${DEFAULT_ROUTING_OPTIONS.sglang.cacheThreshold})
  --sglang-max-tree-chars N    per-worker tree budget (default ${DEFAULT_ROUTING_OPTIONS.sglang.maxTreeChars})
  --sglang-miss-routing M      where a cache miss goes: least-load (SGLang since PR #14650, the default) or
                               smallest-tree (SGLang before it; runs recorded before 2026-12-03)`;

const COUNT = integer(1, 1024);
const TOKENS = integer(1, 8192);
const WORDS = integer(1, 4096);

const ROUTING_FLAGS = {
  quick: SWITCH, quiet: SWITCH, 'no-overhead': SWITCH, 'no-warm-up': SWITCH,
  pods: integer(2, 16),
  'epp-replicas': integer(1, 8),
  workloads: listOf(WORKLOAD_NAMES), capacities: listOf(CAPACITY_NAMES), policies: listOf(POLICY_NAMES),
  repeats: integer(1, 20), concurrency: integer(1, 256), 'chat-concurrency': integer(1, 256), seed: integer(0, 2 ** 31 - 1),
  out: directory,
  'capacity-ratio': decimal(1, 100, { aboveMin: true }), 'ample-blocks': integer(16, 1 << 24), 'constrained-blocks': integer(16, 1 << 24),
  'time-scale': decimal(0, 100, { aboveMin: true }), 'max-num-seqs': integer(1, 1024),
  groups: COUNT, 'prompts-per-group': COUNT, 'system-tokens': TOKENS, 'question-tokens': TOKENS,
  'low-groups': COUNT, 'low-prompts-per-group': COUNT, 'low-system-tokens': TOKENS, 'low-question-tokens': TOKENS,
  'poisson-groups': COUNT, 'poisson-prompts-per-group': COUNT, 'poisson-system-tokens': TOKENS, 'poisson-question-tokens': TOKENS,
  rate: decimal(0, 1000, { aboveMin: true }), 'poisson-output-tokens': integer(1, 1024), 'poisson-passes': integer(1, 100),
  'poisson-max-wall-rps': decimal(0, 1000, { aboveMin: true }),
  sessions: COUNT, turns: COUNT, 'system-prompts': COUNT, 'system-words': WORDS, 'user-words': WORDS,
  'output-tokens': integer(1, 1024),
  'overhead-requests': integer(1, 10000), 'overhead-concurrency': integer(1, 256), 'overhead-reps': integer(1, 20),
  'sglang-abs-threshold': integer(0, 1 << 20), 'sglang-rel-threshold': decimal(1, 1000), 'sglang-cache-threshold': decimal(0, 1),
  'sglang-max-tree-chars': integer(1, 2 ** 31 - 1), 'sglang-miss-routing': oneOf(CACHE_MISS_ROUTINGS),
  only: oneOf(['matrix', 'ladder'] as const), 'no-ladder': SWITCH,
  'ladder-loads': loadList, 'ladder-workloads': listOf(LADDER_WORKLOAD_NAMES), 'ladder-time-scale': decimal(0, 100, { aboveMin: true }),
  'ladder-sessions': COUNT, 'ladder-turns': COUNT, 'ladder-requests': integer(1, 100_000), 'ladder-think-ms': decimal(0, 600_000),
  'ladder-groups': COUNT, 'ladder-prompts-per-group': integer(2, 1024), 'ladder-saturation-policy': oneOf(POLICY_NAMES),
  'ladder-shared-prefix-order': oneOf(SHARED_PREFIX_ORDERS),
} as const;

/** Parses the flags; undefined means `--help`. Throws a UsageError naming the flag on anything invalid. */
export function parseRoutingArgs(argv: readonly string[]): RoutingBenchOptions | undefined {
  const f = parseFlags(argv, ROUTING_FLAGS);
  if (!f) return undefined;
  // --quick only changes defaults: every other flag applies on top of it, wherever it stands.
  const d: RoutingBenchOptions = f.quick ? { ...DEFAULT_ROUTING_OPTIONS, ...QUICK_OVERRIDES } : DEFAULT_ROUTING_OPTIONS;
  const o: RoutingBenchOptions = {
    ...d,
    quiet: f.quiet ?? d.quiet,
    warmUp: f['no-warm-up'] ? false : d.warmUp,
    pods: f.pods ?? d.pods,
    ...(f['epp-replicas'] !== undefined ? { eppReplicas: f['epp-replicas'] } : {}),
    workloads: f.workloads ?? d.workloads,
    capacities: f.capacities ?? d.capacities,
    policies: f.policies ?? d.policies,
    repeats: f.repeats ?? d.repeats,
    concurrency: f.concurrency ?? d.concurrency,
    chatConcurrency: f['chat-concurrency'] ?? d.chatConcurrency,
    seed: f.seed ?? d.seed,
    outDir: f.out ?? d.outDir,
    capacityRatio: f['capacity-ratio'] ?? d.capacityRatio,
    ampleBlocks: f['ample-blocks'] ?? d.ampleBlocks,
    constrainedBlocks: f['constrained-blocks'] ?? d.constrainedBlocks,
    sim: { ...d.sim, timeScale: f['time-scale'] ?? d.sim.timeScale, maxNumSeqs: f['max-num-seqs'] ?? d.sim.maxNumSeqs },
    highCache: {
      groups: f.groups ?? d.highCache.groups,
      promptsPerGroup: f['prompts-per-group'] ?? d.highCache.promptsPerGroup,
      systemTokens: f['system-tokens'] ?? d.highCache.systemTokens,
      questionTokens: f['question-tokens'] ?? d.highCache.questionTokens,
    },
    lowCache: {
      groups: f['low-groups'] ?? d.lowCache.groups,
      promptsPerGroup: f['low-prompts-per-group'] ?? d.lowCache.promptsPerGroup,
      systemTokens: f['low-system-tokens'] ?? d.lowCache.systemTokens,
      questionTokens: f['low-question-tokens'] ?? d.lowCache.questionTokens,
    },
    poisson: {
      groups: f['poisson-groups'] ?? d.poisson.groups,
      promptsPerGroup: f['poisson-prompts-per-group'] ?? d.poisson.promptsPerGroup,
      systemTokens: f['poisson-system-tokens'] ?? d.poisson.systemTokens,
      questionTokens: f['poisson-question-tokens'] ?? d.poisson.questionTokens,
      ...(f.rate !== undefined ? { rate: f.rate } : d.poisson.rate !== undefined ? { rate: d.poisson.rate } : {}),
      outputTokens: f['poisson-output-tokens'] ?? d.poisson.outputTokens,
      passes: f['poisson-passes'] ?? d.poisson.passes,
      maxWallRps: f['poisson-max-wall-rps'] ?? d.poisson.maxWallRps,
    },
    chat: {
      sessions: f.sessions ?? d.chat.sessions,
      turnsPerSession: f.turns ?? d.chat.turnsPerSession,
      systemPrompts: f['system-prompts'] ?? d.chat.systemPrompts,
      systemPromptWords: f['system-words'] ?? d.chat.systemPromptWords,
      userWords: f['user-words'] ?? d.chat.userWords,
    },
    outputTokens: f['output-tokens'] ?? d.outputTokens,
    overhead: {
      ...d.overhead,
      enabled: f['no-overhead'] ? false : d.overhead.enabled,
      requests: f['overhead-requests'] ?? d.overhead.requests,
      concurrency: f['overhead-concurrency'] ?? d.overhead.concurrency,
      reps: f['overhead-reps'] ?? d.overhead.reps,
    },
    sglang: {
      ...d.sglang,
      balanceAbsThreshold: f['sglang-abs-threshold'] ?? d.sglang.balanceAbsThreshold,
      balanceRelThreshold: f['sglang-rel-threshold'] ?? d.sglang.balanceRelThreshold,
      cacheThreshold: f['sglang-cache-threshold'] ?? d.sglang.cacheThreshold,
      maxTreeChars: f['sglang-max-tree-chars'] ?? d.sglang.maxTreeChars,
      missRouting: f['sglang-miss-routing'] ?? d.sglang.missRouting,
    },
  };
  if (f.only === 'matrix' && f['no-ladder']) throw new UsageError('--no-ladder: redundant with --only matrix (give one)');
  if (f.only === 'ladder' && f['no-ladder']) throw new UsageError('--no-ladder: contradicts --only ladder');
  const withLadder: RoutingBenchOptions = {
    ...o,
    ...(f.only ? { only: f.only } : {}),
    ladder: {
      ...d.ladder,
      enabled: f['no-ladder'] ? false : d.ladder.enabled,
      policies: f.policies ?? d.ladder.policies,
      capacities: f.capacities ?? d.ladder.capacities,
      loads: f['ladder-loads'] ?? d.ladder.loads,
      workloads: f['ladder-workloads'] ?? d.ladder.workloads,
      saturationPolicy: f['ladder-saturation-policy'] ?? d.ladder.saturationPolicy,
      sharedPrefixOrder: f['ladder-shared-prefix-order'] ?? d.ladder.sharedPrefixOrder,
      timeScale: f['ladder-time-scale'] !== undefined ? { interactive: f['ladder-time-scale'], 'shared-prefix': f['ladder-time-scale'] } : d.ladder.timeScale,
      interactive: {
        ...d.ladder.interactive,
        sessions: f['ladder-sessions'] ?? d.ladder.interactive.sessions,
        turnsPerSession: f['ladder-turns'] ?? d.ladder.interactive.turnsPerSession,
        requests: f['ladder-requests'] ?? d.ladder.interactive.requests,
        thinkMs: f['ladder-think-ms'] ?? d.ladder.interactive.thinkMs,
      },
      sharedPrefix: {
        ...d.ladder.sharedPrefix,
        groups: f['ladder-groups'] ?? d.ladder.sharedPrefix.groups,
        promptsPerGroup: f['ladder-prompts-per-group'] ?? d.ladder.sharedPrefix.promptsPerGroup,
      },
    },
  };
  const li = withLadder.ladder.interactive;
  if (li.requests > li.sessions * li.turnsPerSession) {
    throw new UsageError(`--ladder-requests: at most --ladder-sessions × --ladder-turns (${li.sessions} × ${li.turnsPerSession} = ${li.sessions * li.turnsPerSession}), got ${li.requests}`);
  }
  if (o.ampleBlocks !== undefined && o.constrainedBlocks !== undefined && o.ampleBlocks <= o.constrainedBlocks) {
    throw new UsageError(`--ample-blocks (${o.ampleBlocks}) must be larger than --constrained-blocks (${o.constrainedBlocks})`);
  }
  for (const [flag, v] of [['--prompts-per-group', o.highCache.promptsPerGroup], ['--low-prompts-per-group', o.lowCache.promptsPerGroup],
    ['--poisson-prompts-per-group', o.poisson.promptsPerGroup]] as const) {
    if (v < 2) throw new UsageError(`${flag}: must be at least 2 (a group of one shares nothing), got ${v}`);
  }
  return withLadder;
}

/**
 * The matrix and ladder cells in which a policy had requests and not one succeeded, over all its runs there (e.g. the
 * EPP refused its config, or every request was a 5xx), as `<workload> × <capacity>: <policy>` (`ladder ` before a
 * ladder cell). A broken build shows here: its numbers are no measurement. A policy with any success is not listed.
 */
export function cellsWithoutSuccess(report: RoutingReport): string[] {
  const none = (runs: readonly { readonly requests: number; readonly succeeded: number }[]) =>
    runs.length > 0 && runs.some((r) => r.requests > 0) && runs.every((r) => r.succeeded === 0);
  const policiesWithout = (runs: readonly { readonly policy: string; readonly requests: number; readonly succeeded: number }[]) =>
    [...new Set(runs.map((r) => r.policy))].filter((p) => none(runs.filter((r) => r.policy === p)));
  return [
    ...report.cells.flatMap((c) => policiesWithout(c.runs).map((p) => `${c.workload} × ${c.capacity}: ${p}`)),
    ...(report.ladder?.cells ?? []).flatMap((c) => policiesWithout(c.runs).map((p) => `ladder ${c.workload} × ${c.capacity}: ${p}`)),
  ];
}

/**
 * The exit status of a run whose reports are written: 1, naming the cells on stderr, when some policy had no request
 * succeed in a cell (so a CI job running `npm run bench:routing` fails on a broken build), else 0.
 */
export function routingExitStatus(report: RoutingReport, stderr: (line: string) => void): number {
  const failed = cellsWithoutSuccess(report);
  if (failed.length === 0) return 0;
  stderr(`kvroute-bench routing: every request failed in ${failed.length} cell${failed.length === 1 ? '' : 's'}: ${failed.join('; ')}\n`);
  return 1;
}

/** `kvroute-bench routing`: parses the flags, runs, and returns the exit status. */
export async function routingCommand(argv: readonly string[]): Promise<number> {
  const options = parseRoutingArgs(argv);
  if (!options) {
    process.stdout.write(`${ROUTING_USAGE}\n`);
    return 0;
  }
  const report = await runRoutingBench(options);
  return routingExitStatus(report, (line) => process.stderr.write(line));
}
