/**
 * `kvroute-bench burst` (`npm run bench:burst`): a burst of new conversations that share one cached system prompt,
 * side by side per policy in one invocation. One request warms a pod with the prompt; then every session sends its
 * first turn at once, and its next turns in later rounds, all at once again (an agent fleet fanning out, a class
 * opening the same assistant, a retry storm after an outage). With hard session affinity a session's first placement is
 * where its later turns go, so how a router spreads the burst decides every round's time to first token.
 *
 * The shape is session 29's independent check (gen29 F2): a router that prices only the prefix hit and a short prefill
 * per queued request put all 48 sessions on the pod that held the prompt, past its `--max-num-seqs` (16 in the
 * simulator the benchmarks run), so two thirds of every round waited for a whole decode there while three pods idled.
 *
 * Reported per policy: each round's TTFT p50 and p90 (the median over seeds), the hit rate vLLM reported, and the most
 * sessions one pod carried (its share of the burst).
 */
import * as fs from 'fs';
import * as path from 'path';
import { ChatClient, type ChatResult } from './client';
import { decimal, integer, listOf, parseFlags, SWITCH, directory } from './cli-args';
import { failedText, noTokenCount, quantile } from './analysis';
import { routingPolicy, type PolicyName } from './policies';
import { SGLANG_DEFAULTS } from './policies/cache-aware';
import { writeJsonAtomic } from './out-files';
import { noteMachine, type MachineNote } from './machine';
import { BENCH_DIR } from './processes';
import { secs } from './report';
import { DEFAULT_SIM, startStack, type SimulatorSettings } from './stack';
import { rng, text, type ChatMessage } from './workload';

export const BURST_POLICY_NAMES = ['kvroute', 'kvroute-untold', 'kvroute-precise', 'kvroute-precise-untold', 'kvroute-precise-latency4', 'kvroute-no-session-load', 'approx-prefix', 'sglang', 'session-hash', 'round-robin'] as const satisfies readonly PolicyName[];
export type BurstPolicyName = (typeof BURST_POLICY_NAMES)[number];

export interface BurstBenchOptions {
  readonly pods: number;
  /** Sessions in the burst. */
  readonly sessions: number;
  /** Turns each session sends, one per round, every session at once. */
  readonly rounds: number;
  readonly systemWords: number;
  readonly userWords: number;
  readonly outputTokens: number;
  /** The pods' `--max-num-seqs`. */
  readonly maxNumSeqs: number;
  /** Wall milliseconds between the warm-up's response and the burst (several scrapes), and between rounds. */
  readonly gapMs: number;
  readonly seeds: readonly number[];
  readonly timeScale: number;
  readonly policies: readonly BurstPolicyName[];
  readonly outDir: string;
}

export const DEFAULT_BURST_OPTIONS: BurstBenchOptions = {
  pods: 4, sessions: 48, rounds: 3, systemWords: 780, userWords: 60, outputTokens: 32, maxNumSeqs: DEFAULT_SIM.maxNumSeqs, gapMs: 1000,
  seeds: [1, 2, 3], timeScale: 1, policies: BURST_POLICY_NAMES, outDir: path.join(BENCH_DIR, 'out', 'burst'),
};

export interface BurstRound {
  readonly ok: number;
  readonly errors: number;
  /** Successful requests whose stream carried no content token: counted in `ok`, left out of the TTFTs (`ttftOf`). */
  readonly noToken: number;
  readonly ttftP50: number | null;
  readonly ttftP90: number | null;
  /** Cached ÷ prompt tokens, as the responses' usage reported them. */
  readonly hitRate: number | null;
  /** The sums behind `hitRate`, over the successful requests: the run's hit rate sums them over its rounds. */
  readonly promptTokens: number;
  readonly cachedTokens: number;
  /** Requests each pod served this round, in pod order. */
  readonly perPod: readonly number[];
}

export interface BurstRun {
  readonly seed: number;
  readonly rounds: readonly BurstRound[];
}

export interface BurstPolicyResult {
  readonly policy: string;
  readonly runs: readonly BurstRun[];
  /** Per round, the median over seeds of TTFT p50 and p90 (simulated seconds). */
  readonly medianP50: readonly (number | null)[];
  readonly medianP90: readonly (number | null)[];
  /** The median over seeds of the whole run's hit rate. */
  readonly hitRate: number | null;
  /** The most sessions one pod carried in any seed's first round, as a share of the burst. */
  readonly maxPodShare: number;
  readonly errors: number;
  readonly noToken: number;
}

/** The sessions' turns, deterministic from the seed: one shared system prompt, then `rounds` questions per session. */
export function burstWorkload(o: Pick<BurstBenchOptions, 'sessions' | 'rounds' | 'systemWords' | 'userWords'>, seed: number): { system: string; turns: string[][] } {
  const random = rng(seed * 13 + 7);
  const system = `Shared system prompt. ${text(random, o.systemWords)}`;
  const turns = Array.from({ length: o.sessions }, (_, s) => Array.from({ length: o.rounds }, (_, r) => `Session ${s} round ${r}: ${text(random, o.userWords)}`));
  return { system, turns };
}

/**
 * One round's summary from what the clients saw (TTFT in simulated seconds). A successful request whose stream carried
 * no content token is a success without a TTFT, as in the other benchmarks (analysis.ts `ttftOf`).
 */
export function summarizeBurstRound(results: readonly ChatResult[], podAddresses: readonly string[], timeScale: number): BurstRound {
  const ok = results.filter((r) => r.ok);
  const perPod = podAddresses.map((a) => ok.filter((r) => r.servedBy === a).length);
  const prompt = ok.reduce((t, r) => t + (r.promptTokens ?? 0), 0);
  const cached = ok.reduce((t, r) => t + (r.cachedTokens ?? 0), 0);
  const ttfts = ok.flatMap((r) => (r.ttft === undefined ? [] : [r.ttft * timeScale]));
  return {
    ok: ok.length, errors: results.length - ok.length, noToken: noTokenCount(results), ttftP50: quantile(ttfts, 0.5), ttftP90: quantile(ttfts, 0.9),
    hitRate: prompt > 0 ? cached / prompt : null, promptTokens: prompt, cachedTokens: cached, perPod,
  };
}

function median(xs: readonly (number | null)[]): number | null {
  return quantile(xs.filter((x): x is number => x !== null), 0.5);
}

/** A policy's runs over the seeds, reduced to the medians the table shows. */
export function summarizeBurstPolicy(policy: string, runs: readonly BurstRun[], sessions: number): BurstPolicyResult {
  const rounds = Math.max(0, ...runs.map((r) => r.rounds.length));
  // The whole run's cached tokens over its prompt tokens, as vLLM counts a hit rate and inference-perf v0.6.1 reports the
  // responses' one (reportgen/base.py `summarize_prompt_token_usage`: cached total ÷ prompt total). Not the mean of the
  // rounds' rates: later rounds carry the history, so their prompts are longer and more of them cached.
  const hitOf = (run: BurstRun) => {
    const prompt = run.rounds.reduce((t, r) => t + r.promptTokens, 0);
    return prompt > 0 ? run.rounds.reduce((t, r) => t + r.cachedTokens, 0) / prompt : null;
  };
  return {
    policy,
    runs,
    medianP50: Array.from({ length: rounds }, (_, i) => median(runs.map((r) => r.rounds[i]?.ttftP50 ?? null))),
    medianP90: Array.from({ length: rounds }, (_, i) => median(runs.map((r) => r.rounds[i]?.ttftP90 ?? null))),
    hitRate: median(runs.map(hitOf)),
    maxPodShare: Math.max(0, ...runs.map((r) => Math.max(0, ...(r.rounds[0]?.perPod ?? [0])) / sessions)),
    errors: runs.reduce((t, r) => t + r.rounds.reduce((u, x) => u + x.errors, 0), 0),
    noToken: runs.reduce((t, r) => t + r.rounds.reduce((u, x) => u + x.noToken, 0), 0),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runOnce(name: BurstPolicyName, o: BurstBenchOptions, seed: number): Promise<BurstRun> {
  const policy = routingPolicy(name, { seed, sglang: SGLANG_DEFAULTS });
  const sim: SimulatorSettings = { ...DEFAULT_SIM, timeScale: o.timeScale, maxNumSeqs: o.maxNumSeqs };
  const stack = await startStack({ pods: o.pods, sim, policy, logDir: path.join(o.outDir, 'logs') });
  const client = new ChatClient(stack.gatewayUrl, sim.model);
  try {
    const { system, turns } = burstWorkload(o, seed);
    const warm = await client.chat([{ role: 'system', content: system }, { role: 'user', content: 'warm up' }], o.outputTokens);
    if (!warm.ok) throw new Error(`${name}: the warm-up request failed (${warm.status} ${warm.error ?? ''})`);
    await sleep(o.gapMs);
    const histories: ChatMessage[][] = turns.map(() => [{ role: 'system', content: system }]);
    const rounds: BurstRound[] = [];
    for (let round = 0; round < o.rounds; round++) {
      const results = await Promise.all(histories.map((h, s) => {
        h.push({ role: 'user', content: turns[s]![round]! });
        return client.chat(h.slice(), o.outputTokens, { 'x-session-id': `burst-${seed}-${s}` });
      }));
      results.forEach((r, s) => histories[s]!.push({ role: 'assistant', content: r.ok ? r.reply : '' }));
      rounds.push(summarizeBurstRound(results, stack.podAddresses, o.timeScale));
      if (round + 1 < o.rounds) await sleep(o.gapMs);
    }
    return { seed, rounds };
  } finally {
    client.close();
    await stack.stop();
  }
}

export function burstTable(results: readonly BurstPolicyResult[], rounds: number): string {
  const pct = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)}%`);
  const header = Array.from({ length: rounds }, (_, i) => `round ${i} p50 / p90`);
  return [
    `| policy | ${header.join(' | ')} | hit rate | most sessions on one pod | errors |`,
    `| --- | ${header.map(() => '---:').join(' | ')} | ---: | ---: | ---: |`,
    ...results.map((r) => `| ${r.policy} | ${Array.from({ length: rounds }, (_, i) => `${secs(r.medianP50[i] ?? null)} / ${secs(r.medianP90[i] ?? null)}`).join(' | ')} | ${pct(r.hitRate)} | ${Math.round(100 * r.maxPodShare)}% | ${failedText(r.errors, r.noToken)} |`),
  ].join('\n');
}

export interface BurstReport {
  readonly options: BurstBenchOptions;
  readonly machine: MachineNote;
  readonly started: string;
  readonly results: readonly BurstPolicyResult[];
}

export async function runBurstBench(o: BurstBenchOptions, log: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<BurstReport> {
  fs.mkdirSync(o.outDir, { recursive: true });
  const machine = noteMachine();
  const started = new Date().toISOString();
  log(`burst: ${o.pods} pods (--max-num-seqs ${o.maxNumSeqs}), ${o.sessions} new sessions at once on one ${o.systemWords}-word system prompt, ${o.rounds} rounds, seeds ${o.seeds.join(', ')}; ${machine.summary}`);
  const runs = new Map<BurstPolicyName, BurstRun[]>(o.policies.map((p) => [p, []]));
  // Seeds outermost, so a machine that slows down during the invocation weighs on every policy alike.
  for (const seed of o.seeds) {
    for (const name of o.policies) {
      const run = await runOnce(name, o, seed);
      runs.get(name)!.push(run);
      log(`  ${name} seed ${seed}: ${run.rounds.map((r, i) => `round ${i} p90 ${secs(r.ttftP90)} [${r.perPod.join(',')}]`).join('; ')}`);
    }
  }
  const results = o.policies.map((name) => summarizeBurstPolicy(name, runs.get(name)!, o.sessions));
  const report: BurstReport = { options: o, machine: machine.finish(), started, results };
  writeJsonAtomic(path.join(o.outDir, 'burst-results.json'), report);
  log(burstTable(results, o.rounds));
  return report;
}

export const BURST_USAGE = `Usage: npm run bench:burst -- [flags]

A burst of new conversations sharing one cached system prompt, all at once, through simulated pods, the EPP and the
gateway; each session's later turns follow in rounds, all at once again. Policies: ${BURST_POLICY_NAMES.join(', ')}.

  --pods N             decode pods (default ${DEFAULT_BURST_OPTIONS.pods})
  --sessions N         sessions in the burst (default ${DEFAULT_BURST_OPTIONS.sessions})
  --rounds N           turns per session, one round each (default ${DEFAULT_BURST_OPTIONS.rounds})
  --system-words N     words of the shared system prompt (default ${DEFAULT_BURST_OPTIONS.systemWords})
  --user-words N       words of each turn (default ${DEFAULT_BURST_OPTIONS.userWords})
  --output-tokens N    max_tokens of every request (default ${DEFAULT_BURST_OPTIONS.outputTokens})
  --max-num-seqs N     the pods' --max-num-seqs, told to the EPP as the cdk8s app tells it (default ${DEFAULT_BURST_OPTIONS.maxNumSeqs})
  --gap-ms N           wall milliseconds after the warm-up and between rounds (default ${DEFAULT_BURST_OPTIONS.gapMs})
  --seeds a,b          workload seeds; the table shows medians over them (default ${DEFAULT_BURST_OPTIONS.seeds.join(',')})
  --time-scale X       simulated seconds per wall second (default ${DEFAULT_BURST_OPTIONS.timeScale})
  --policies a,b       policies to run, in order (default all)
  --out DIR            where burst-results.json and the logs go (default bench/out/burst)
  --quick              a short run: 16 sessions, 2 rounds, one seed`;

const BURST_FLAGS = {
  pods: integer(1, 64), sessions: integer(1, 4096), rounds: integer(1, 100), 'system-words': integer(0, 100_000), 'user-words': integer(1, 100_000),
  'output-tokens': integer(1, 4096), 'max-num-seqs': integer(1, 65536), 'gap-ms': integer(0, 600_000), seeds: seedList,
  'time-scale': decimal(0, 100, { aboveMin: true }), policies: listOf(BURST_POLICY_NAMES), out: directory, quick: SWITCH,
} as const;

function seedList(flag: string, raw: string | undefined): number[] {
  const seeds = (raw ?? '').split(',').map((s) => s.trim());
  return seeds.map((s) => integer(0)(flag, s));
}

/** Parses the flags; undefined means `--help`. Throws a UsageError naming the flag on anything invalid. */
export function parseBurstArgs(argv: readonly string[]): BurstBenchOptions | undefined {
  const f = parseFlags(argv, BURST_FLAGS);
  if (!f) return undefined;
  const d = DEFAULT_BURST_OPTIONS;
  return {
    pods: f.pods ?? d.pods,
    sessions: f.sessions ?? (f.quick ? 16 : d.sessions),
    rounds: f.rounds ?? (f.quick ? 2 : d.rounds),
    systemWords: f['system-words'] ?? d.systemWords,
    userWords: f['user-words'] ?? d.userWords,
    outputTokens: f['output-tokens'] ?? d.outputTokens,
    maxNumSeqs: f['max-num-seqs'] ?? d.maxNumSeqs,
    gapMs: f['gap-ms'] ?? d.gapMs,
    seeds: f.seeds ?? (f.quick ? [1] : d.seeds),
    timeScale: f['time-scale'] ?? d.timeScale,
    policies: f.policies ?? d.policies,
    outDir: f.out ?? d.outDir,
  };
}

/** `kvroute-bench burst`: parses the flags, runs, and returns the exit status. */
export async function burstCommand(argv: readonly string[]): Promise<number> {
  const options = parseBurstArgs(argv);
  if (!options) {
    process.stdout.write(`${BURST_USAGE}\n`);
    return 0;
  }
  await runBurstBench(options);
  return 0;
}
