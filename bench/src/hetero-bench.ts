/**
 * `kvroute-bench hetero` (`npm run bench:hetero`): a heterogeneous pool, side by side in one invocation. Some pods run
 * slower than the others (every simulated time, overhead, prefill per token and time per output token, multiplied by
 * `--slowdown`: an older GPU generation in the same pool, or a card that throttles), clients send single-turn requests
 * that share one of a few system prompts (a RAG or assistant fleet) as open-loop Poisson arrivals, and each policy
 * routes the same arrivals. Identical pods (every other benchmark here) leave a per-pod latency model nothing to learn;
 * here what a pod costs differs, and a router that reads only hits and queue lengths sends the slow pods as much as it
 * sends the fast ones until their queues say otherwise.
 *
 * Reported per policy: TTFT p50/p90/p99 overall and on the slow pods, end-to-end p50, the share of requests each pod
 * served, errors and throughput.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseEndpointPickerConfig } from '@kvroute/epp/config';
import { ChatClient, sendAtArrivals, type ChatResult } from './client';
import { decimal, integer, listOf, parseFlags, SWITCH, UsageError, directory } from './cli-args';
import { failedText, noTokenCount, quantile } from './analysis';
import { routingPolicy, type PolicyName } from './policies';
import { SGLANG_DEFAULTS } from './policies/cache-aware';
import { secs } from './report';
import { poissonArrivals } from './routing-workloads';
import { writeJsonAtomic } from './out-files';
import { noteMachine, type MachineNote } from './machine';
import { BENCH_DIR } from './processes';
import { DEFAULT_SIM, startStack, type RoutingPolicy, type SimulatorSettings } from './stack';
import { rng, text, type ChatMessage } from './workload';

export const HETERO_POLICY_NAMES = ['kvroute', 'kvroute-precise', 'kvroute-prefix-first', 'kvroute-precise-prefix-first', 'kvroute-precise-latency4', 'kvroute-active2', 'kvroute-latency', 'kvroute-own-prefill2', 'kvroute-own-prefill2-peers', 'kvroute-slot-wait-sessions', 'kvroute-slot-wait-imbalanced', 'kvroute-slot-wait-avoidable', 'kvroute-latency2', 'kvroute-no-keep-holder', 'approx-prefix', 'sglang', 'least-request', 'round-robin'] as const satisfies readonly PolicyName[];
export type HeteroPolicyName = (typeof HETERO_POLICY_NAMES)[number];

export interface HeteroBenchOptions {
  readonly pods: number;
  /** How many of the pods (the last ones) run slower. */
  readonly slowPods: number;
  /** The slow pods' factor on every simulated time. */
  readonly slowdown: number;
  /** Poisson arrivals per second (simulated time). */
  readonly rate: number;
  readonly requests: number;
  /** Distinct system prompts the requests share, and their length in words. */
  readonly systemPrompts: number;
  readonly systemWords: number;
  readonly questionWords: number;
  readonly outputTokens: number;
  readonly seed: number;
  readonly timeScale: number;
  readonly policies: readonly HeteroPolicyName[];
  /** Your own EndpointPickerConfigs, run as further policies under their names after `policies`. */
  readonly configs: readonly ConfigPolicy[];
  readonly outDir: string;
}

export interface ConfigPolicy {
  readonly name: string;
  readonly configText: string;
}

export const DEFAULT_HETERO_OPTIONS: HeteroBenchOptions = {
  pods: 4, slowPods: 2, slowdown: 2.5, rate: 20, requests: 800, systemPrompts: 8, systemWords: 400, questionWords: 60, outputTokens: 48,
  seed: 1, timeScale: 1, policies: HETERO_POLICY_NAMES, configs: [], outDir: path.join(BENCH_DIR, 'out', 'hetero'),
};

export interface HeteroRequest {
  readonly atMs: number;
  readonly messages: readonly ChatMessage[];
}

/** The requests of one run, deterministic from the seed: arrival times, each request's system prompt and question. */
export function heteroWorkload(o: Pick<HeteroBenchOptions, 'rate' | 'requests' | 'systemPrompts' | 'systemWords' | 'questionWords' | 'seed'>): HeteroRequest[] {
  const random = rng(o.seed);
  const systems = Array.from({ length: o.systemPrompts }, (_, i) => `You are assistant ${i}. ${text(random, o.systemWords)}`);
  return poissonArrivals(o.requests, o.rate, o.seed + 1).map((atMs, i) => ({
    atMs,
    messages: [
      { role: 'system', content: systems[Math.floor(random() * systems.length)]! },
      { role: 'user', content: `Request ${i}: ${text(random, o.questionWords)}` },
    ],
  }));
}

/** Each pod's factor: the last `slowPods` run `slowdown` times slower. */
export function podSlowdown(o: Pick<HeteroBenchOptions, 'pods' | 'slowPods' | 'slowdown'>): number[] {
  return Array.from({ length: o.pods }, (_, i) => (i >= o.pods - o.slowPods ? o.slowdown : 1));
}

interface Latencies {
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
}

export interface HeteroPolicyResult {
  readonly policy: string;
  readonly ok: number;
  readonly errors: number;
  /** Successful requests whose stream carried no content token: counted in `ok`, left out of the TTFTs (`ttftOf`). */
  readonly noToken: number;
  /** TTFT of the successful requests with a first token, in simulated seconds: all of them, and those the slow pods served. */
  readonly ttft: Latencies;
  readonly slowTtft: Latencies;
  readonly e2eP50: number | null;
  /** Share of the successful requests each pod served, in pod order. */
  readonly share: readonly number[];
  /** Successful requests per simulated second, from the first arrival to the last response. */
  readonly throughput: number;
}

function latencies(xs: readonly number[]): Latencies {
  return { p50: quantile(xs, 0.5), p90: quantile(xs, 0.9), p99: quantile(xs, 0.99) };
}

/**
 * Summarizes one policy's run from what the clients saw. A successful request whose stream carried no content token is
 * a success without a TTFT, as in the other benchmarks (analysis.ts `ttftOf`).
 */
export function summarizeHeteroRun(policy: string, results: readonly ChatResult[], podAddresses: readonly string[], slowdown: readonly number[],
  timeScale: number, wallSeconds: number): HeteroPolicyResult {
  const ok = results.filter((r) => r.ok);
  const timed = ok.filter((r) => r.ttft !== undefined);
  const sim = (s: number) => s * timeScale;
  const podOf = (r: ChatResult) => (r.servedBy === undefined ? -1 : podAddresses.indexOf(r.servedBy));
  const counts = podAddresses.map(() => 0);
  for (const r of ok) if (podOf(r) >= 0) counts[podOf(r)]!++;
  return {
    policy,
    ok: ok.length,
    errors: results.length - ok.length,
    noToken: noTokenCount(results),
    ttft: latencies(timed.map((r) => sim(r.ttft!))),
    slowTtft: latencies(timed.filter((r) => (slowdown[podOf(r)] ?? 1) > 1).map((r) => sim(r.ttft!))),
    e2eP50: quantile(ok.map((r) => sim(r.e2e)), 0.5),
    share: counts.map((c) => (ok.length > 0 ? c / ok.length : 0)),
    throughput: wallSeconds > 0 ? ok.length / sim(wallSeconds) : 0,
  };
}

async function runPolicy(policy: RoutingPolicy, o: HeteroBenchOptions, requests: readonly HeteroRequest[]): Promise<HeteroPolicyResult> {
  const name = policy.name;
  const slowdown = podSlowdown(o);
  const sim: SimulatorSettings = { ...DEFAULT_SIM, timeScale: o.timeScale, podSlowdown: slowdown };
  const stack = await startStack({ pods: o.pods, sim, policy, logDir: path.join(o.outDir, 'logs') });
  const client = new ChatClient(stack.gatewayUrl, sim.model);
  try {
    const { results, wallSeconds } = await sendAtArrivals(requests, o.timeScale, (r) => client.chat(r.messages, o.outputTokens));
    return summarizeHeteroRun(name, results, stack.podAddresses, slowdown, o.timeScale, wallSeconds);
  } finally {
    client.close();
    await stack.stop();
  }
}

export function heteroTable(results: readonly HeteroPolicyResult[]): string {
  const base = results.find((r) => r.policy === 'kvroute')?.ttft.p90 ?? null;
  const pct = (x: number) => `${Math.round(100 * x)}%`;
  const rows = results.map((r) => `| ${r.policy} | ${secs(r.ttft.p50)} / ${secs(r.ttft.p90)} / ${secs(r.ttft.p99)} | ${base !== null && r.ttft.p90 !== null && base > 0 ? `${(r.ttft.p90 / base).toFixed(2)}×` : '–'} | ${secs(r.slowTtft.p50)} / ${secs(r.slowTtft.p90)} | ${secs(r.e2eP50)} | ${r.share.map(pct).join(', ')} | ${r.throughput.toFixed(1)} | ${failedText(r.errors, r.noToken)} |`);
  return [
    '| policy | TTFT p50 / p90 / p99 | p90 ÷ kvroute\'s | slow pods\' TTFT p50 / p90 | e2e p50 | requests per pod | req/s | errors |',
    '| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |',
    ...rows,
  ].join('\n');
}

export interface HeteroReport {
  readonly options: HeteroBenchOptions;
  readonly podSlowdown: readonly number[];
  readonly machine: MachineNote;
  readonly started: string;
  readonly results: readonly HeteroPolicyResult[];
}

export async function runHeteroBench(o: HeteroBenchOptions, log: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<HeteroReport> {
  fs.mkdirSync(o.outDir, { recursive: true });
  const requests = heteroWorkload(o);
  const machine = noteMachine();
  const started = new Date().toISOString();
  const slowdown = podSlowdown(o);
  log(`hetero: ${o.pods} pods, times × ${slowdown.join(', ')}; ${o.requests} requests at ${o.rate}/s, ${o.systemPrompts} system prompts of ${o.systemWords} words, ${o.outputTokens} output tokens; ${machine.summary}`);
  const results: HeteroPolicyResult[] = [];
  const policies: RoutingPolicy[] = [
    ...o.policies.map((name) => routingPolicy(name, { seed: o.seed, sglang: SGLANG_DEFAULTS })),
    ...o.configs.map((c): RoutingPolicy => ({ kind: 'epp', name: c.name, configText: c.configText })),
  ];
  for (const policy of policies) {
    const name = policy.name;
    const r = await runPolicy(policy, o, requests);
    log(`  ${name}: TTFT p50 ${secs(r.ttft.p50)}, p90 ${secs(r.ttft.p90)}, p99 ${secs(r.ttft.p99)}; slow pods p90 ${secs(r.slowTtft.p90)}; ${r.errors} errors${r.noToken > 0 ? `, ${r.noToken} without a token` : ''}; per pod ${r.share.map((x) => `${Math.round(100 * x)}%`).join(', ')}`);
    results.push(r);
  }
  const report: HeteroReport = { options: o, podSlowdown: slowdown, machine: machine.finish(), started, results };
  writeJsonAtomic(path.join(o.outDir, 'hetero-results.json'), report);
  log(heteroTable(results));
  return report;
}

export const HETERO_USAGE = `Usage: npm run bench:hetero -- [flags]

A heterogeneous pool (some pods slower) through simulated pods, the EPP and the gateway: each policy routes the same
Poisson arrivals. Policies: ${HETERO_POLICY_NAMES.join(', ')}.

  --pods N             decode pods (default ${DEFAULT_HETERO_OPTIONS.pods})
  --slow-pods N        how many of them (the last) run slower (default ${DEFAULT_HETERO_OPTIONS.slowPods})
  --slowdown X         the slow pods' factor on every simulated time (default ${DEFAULT_HETERO_OPTIONS.slowdown})
  --rate R             arrivals per simulated second (default ${DEFAULT_HETERO_OPTIONS.rate})
  --requests N         requests per policy (default ${DEFAULT_HETERO_OPTIONS.requests})
  --system-prompts N   distinct system prompts the requests share (default ${DEFAULT_HETERO_OPTIONS.systemPrompts})
  --system-words N     words of each system prompt (default ${DEFAULT_HETERO_OPTIONS.systemWords})
  --question-words N   words of each request's question (default ${DEFAULT_HETERO_OPTIONS.questionWords})
  --output-tokens N    max_tokens of every request (default ${DEFAULT_HETERO_OPTIONS.outputTokens})
  --seed N             workload seed (default ${DEFAULT_HETERO_OPTIONS.seed})
  --time-scale X       simulated seconds per wall second (default ${DEFAULT_HETERO_OPTIONS.timeScale})
  --policies a,b       policies to run, in order (default all; with --configs, none unless named here)
  --configs n=F,…      run each EndpointPickerConfig file F through the EPP, named n, after the policies
  --out DIR            where hetero-results.json and the logs go (default bench/out/hetero)
  --quick              a short run: 200 requests`;

const HETERO_FLAGS = {
  pods: integer(1, 64), 'slow-pods': integer(0, 64), slowdown: decimal(1, 100), rate: decimal(0, 10_000, { aboveMin: true }),
  requests: integer(1, 1_000_000), 'system-prompts': integer(1, 10_000), 'system-words': integer(0, 100_000), 'question-words': integer(1, 100_000),
  'output-tokens': integer(1, 4096), seed: integer(0), 'time-scale': decimal(0, 100, { aboveMin: true }), policies: listOf(HETERO_POLICY_NAMES),
  configs: configFiles, out: directory, quick: SWITCH,
} as const;

/** `name=path,…`: each file read and validated as an EndpointPickerConfig now, so a bad one stops the run before it starts. */
function configFiles(flag: string, raw: string | undefined): ConfigPolicy[] {
  const items = (raw ?? '').split(',').filter((x) => x.trim() !== '');
  if (items.length === 0) throw new UsageError(`${flag}: expected name=file[,name=file…], got ${JSON.stringify(raw ?? '')}`);
  const seen = new Set<string>(HETERO_POLICY_NAMES);
  return items.map((item) => {
    const eq = item.indexOf('=');
    const name = item.slice(0, eq).trim();
    const file = item.slice(eq + 1).trim();
    if (eq <= 0 || file === '') throw new UsageError(`${flag}: expected name=file, got ${JSON.stringify(item)}`);
    // The name names the policy's log files too.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new UsageError(`${flag}: a name is letters, digits, '.', '_' and '-', got ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new UsageError(`${flag}: the name ${JSON.stringify(name)} is taken (a policy's or another config's)`);
    seen.add(name);
    let configText: string;
    try {
      configText = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`${flag}: cannot read ${file}: ${(e as Error).message}`);
    }
    try {
      parseEndpointPickerConfig(configText);
    } catch (e) {
      throw new UsageError(`${flag}: ${file} is not a valid EndpointPickerConfig: ${(e as Error).message}`);
    }
    return { name, configText };
  });
}

/** Parses the flags; undefined means `--help`. Throws a UsageError naming the flag on anything invalid. */
export function parseHeteroArgs(argv: readonly string[]): HeteroBenchOptions | undefined {
  const f = parseFlags(argv, HETERO_FLAGS);
  if (!f) return undefined;
  const d = DEFAULT_HETERO_OPTIONS;
  const o: HeteroBenchOptions = {
    pods: f.pods ?? d.pods,
    slowPods: f['slow-pods'] ?? d.slowPods,
    slowdown: f.slowdown ?? d.slowdown,
    rate: f.rate ?? d.rate,
    requests: f.requests ?? (f.quick ? 200 : d.requests),
    systemPrompts: f['system-prompts'] ?? d.systemPrompts,
    systemWords: f['system-words'] ?? d.systemWords,
    questionWords: f['question-words'] ?? d.questionWords,
    outputTokens: f['output-tokens'] ?? d.outputTokens,
    seed: f.seed ?? d.seed,
    timeScale: f['time-scale'] ?? d.timeScale,
    policies: f.policies ?? (f.configs !== undefined ? [] : d.policies),
    configs: f.configs ?? d.configs,
    outDir: f.out ?? d.outDir,
  };
  if (o.slowPods > o.pods) throw new UsageError(`--slow-pods: at most --pods (${o.pods}), got ${o.slowPods}${f['slow-pods'] === undefined ? ' (the default)' : ''}`);
  return o;
}

/** `kvroute-bench hetero`: parses the flags, runs, and returns the exit status. */
export async function heteroCommand(argv: readonly string[]): Promise<number> {
  const options = parseHeteroArgs(argv);
  if (!options) {
    process.stdout.write(`${HETERO_USAGE}\n`);
    return 0;
  }
  await runHeteroBench(options);
  return 0;
}
