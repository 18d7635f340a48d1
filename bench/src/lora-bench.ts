/**
 * `kvroute-bench lora` (`npm run bench:lora`): LoRA adapters through the local path, side by side in one invocation.
 * Simulated vLLM pods run `--enable-lora --max-loras N --lora-modules …` (vLLM 0.10's flags and scheduler rule: a
 * waiting request for one adapter more than `--max-loras` is skipped until a running adapter has no request left,
 * vllm/v1/core/sched/scheduler.py @ v0.10.0 lines 363-370), clients ask for the adapters by name with a skewed
 * popularity, and each policy routes the same open-loop Poisson arrivals:
 * - `kvroute`: what the manifests deploy for a pool with adapters, the default config plus `lora-room-filter`;
 * - `kvroute-room-only`: the same with the filter's affinity off (`spillWaiting: 0`), only its room rule;
 * - `kvroute-no-lora-filter`: the default config alone (LoRA-blind);
 * - `gie-lora-affinity`: GIE v1.5.0's default profile (queue 2, KV 2, prefix 3; pkg/epp/config/loader/defaults.go)
 *   plus its `lora-affinity-scorer` at the default weight 1, as a GIE user would add it;
 * - `round-robin`: the gateway alone.
 * Reported per policy: TTFT p50/p90/p99, end-to-end p50, errors, and how many distinct adapters each pod served.
 */
import * as fs from 'fs';
import * as path from 'path';
import { defaultEndpointPickerConfig, renderEndpointPickerConfig, withLoraRoomFilter } from '@kvroute/epp/config';
import { ChatClient, sendAtArrivals, type ChatResult } from './client';
import { decimal, integer, listOf, parseFlags, SWITCH, UsageError, directory } from './cli-args';
import { failedText, noTokenCount, quantile } from './analysis';
import { secs } from './report';
import { poissonArrivals } from './routing-workloads';
import { writeJsonAtomic } from './out-files';
import { noteMachine, type MachineNote } from './machine';
import { BENCH_DIR } from './processes';
import { DEFAULT_SIM, startStack, type RoutingPolicy, type SimulatorSettings } from './stack';
import { rng, text, type ChatMessage } from './workload';

export const LORA_POLICY_NAMES = ['kvroute', 'kvroute-room-only', 'kvroute-no-lora-filter', 'gie-lora-affinity', 'round-robin'] as const;
export type LoraPolicyName = (typeof LORA_POLICY_NAMES)[number];

export interface LoraBenchOptions {
  readonly pods: number;
  /** Adapters the pods serve (`--lora-modules`), named `adapter-0` … */
  readonly adapters: number;
  /** vLLM's `--max-loras` on every pod. */
  readonly maxLoras: number;
  /** Zipf exponent of the adapters' popularity: adapter i gets a share ∝ 1 / (i + 1)^s; 0 is uniform. */
  readonly skew: number;
  /** Poisson arrivals per second (simulated time). */
  readonly rate: number;
  readonly requests: number;
  /** `max_tokens` of every request: how long a request holds its adapter's slot. */
  readonly outputTokens: number;
  /**
   * Words of each adapter's own system prompt (shared by its requests; 0, the default, for none) and of each request's
   * question. A shared prompt lets prefix affinity keep each adapter on one pod whatever the LoRA rule, so the default
   * measures the LoRA rule alone.
   */
  readonly systemWords: number;
  readonly questionWords: number;
  readonly seed: number;
  readonly timeScale: number;
  readonly policies: readonly LoraPolicyName[];
  readonly outDir: string;
}

export const DEFAULT_LORA_OPTIONS: LoraBenchOptions = {
  pods: 4, adapters: 8, maxLoras: 2, skew: 1, rate: 16, requests: 600, outputTokens: 64, systemWords: 0, questionWords: 60,
  seed: 1, timeScale: 1, policies: LORA_POLICY_NAMES, outDir: path.join(BENCH_DIR, 'out', 'lora'),
};

export interface LoraRequest {
  readonly adapter: string;
  readonly atMs: number;
  readonly messages: readonly ChatMessage[];
}

/** The requests of one run, deterministic from the seed: arrival times, adapters drawn by popularity, their prompts. */
export function loraWorkload(o: Pick<LoraBenchOptions, 'adapters' | 'skew' | 'rate' | 'requests' | 'systemWords' | 'questionWords' | 'seed'>): LoraRequest[] {
  const random = rng(o.seed);
  const names = adapterNames(o.adapters);
  const systems = names.map((name) => `You are the ${name} assistant. ${text(random, o.systemWords)}`);
  const messages = (a: number, question: string): ChatMessage[] => [
    ...(o.systemWords > 0 ? [{ role: 'system' as const, content: systems[a]! }] : []),
    { role: 'user' as const, content: question },
  ];
  const weights = names.map((_, i) => 1 / (i + 1) ** o.skew);
  const total = weights.reduce((a, b) => a + b, 0);
  const arrivals = poissonArrivals(o.requests, o.rate, o.seed + 1);
  return arrivals.map((atMs, i) => {
    let pick = random() * total;
    let a = 0;
    while (a < names.length - 1 && pick >= weights[a]!) pick -= weights[a++]!;
    return { adapter: names[a]!, atMs, messages: messages(a, `Request ${i}: ${text(random, o.questionWords)}`) };
  });
}

export function adapterNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `adapter-${i}`);
}

/** The EPP config (or gateway policy) each benchmark policy runs. */
export function loraPolicy(name: LoraPolicyName, adapters: readonly string[]): RoutingPolicy {
  switch (name) {
    case 'kvroute':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(withLoraRoomFilter(defaultEndpointPickerConfig(), adapters)) };
    case 'kvroute-room-only': {
      const config = withLoraRoomFilter(defaultEndpointPickerConfig(), adapters);
      return {
        kind: 'epp', name,
        configText: renderEndpointPickerConfig({
          ...config,
          plugins: config.plugins.map((p) => (p.type === 'lora-room-filter' ? { ...p, parameters: { adapters: [...adapters], spillWaiting: 0 } } : p)),
        }),
      };
    }
    case 'kvroute-no-lora-filter':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(defaultEndpointPickerConfig()) };
    case 'gie-lora-affinity':
      return {
        kind: 'epp', name, configText: `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: lora-affinity-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: lora-affinity-scorer
    weight: 1
  - pluginRef: max-score-picker
`,
      };
    case 'round-robin':
      return { kind: 'round-robin', name };
  }
}

export interface LoraPolicyResult {
  readonly policy: LoraPolicyName;
  readonly ok: number;
  readonly errors: number;
  /** Successful requests whose stream carried no content token: counted in `ok`, left out of the TTFTs (`ttftOf`). */
  readonly noToken: number;
  /** TTFT (of those with a first token) and end-to-end latency of the successful requests, in simulated seconds. */
  readonly ttft: { readonly p50: number | null; readonly p90: number | null; readonly p99: number | null };
  readonly e2eP50: number | null;
  /** Distinct adapters each pod served, in pod order. */
  readonly adaptersPerPod: readonly number[];
  /** Successful requests per simulated second, from the start of the arrivals (the first is sent at once) to the last response. */
  readonly throughput: number;
}

/**
 * Summarizes one policy's run from what the clients saw. A successful request whose stream carried no content token is
 * a success without a TTFT, as in the other benchmarks (analysis.ts `ttftOf`).
 */
export function summarizeLoraRun(policy: LoraPolicyName, requests: readonly LoraRequest[], results: readonly ChatResult[], podAddresses: readonly string[],
  timeScale: number, wallSeconds: number): LoraPolicyResult {
  const ok = results.filter((r) => r.ok);
  const sim = (s: number) => s * timeScale;
  const ttfts = ok.flatMap((r) => (r.ttft === undefined ? [] : [sim(r.ttft)]));
  const served = podAddresses.map(() => new Set<string>());
  results.forEach((r, i) => {
    const pod = r.servedBy === undefined ? -1 : podAddresses.indexOf(r.servedBy);
    if (r.ok && pod >= 0) served[pod]!.add(requests[i]!.adapter);
  });
  return {
    policy,
    ok: ok.length,
    errors: results.length - ok.length,
    noToken: noTokenCount(results),
    ttft: { p50: quantile(ttfts, 0.5), p90: quantile(ttfts, 0.9), p99: quantile(ttfts, 0.99) },
    e2eP50: quantile(ok.map((r) => sim(r.e2e)), 0.5),
    adaptersPerPod: served.map((s) => s.size),
    throughput: wallSeconds > 0 ? ok.length / sim(wallSeconds) : 0,
  };
}

async function runPolicy(name: LoraPolicyName, o: LoraBenchOptions, requests: readonly LoraRequest[]): Promise<LoraPolicyResult> {
  const adapters = adapterNames(o.adapters);
  const sim: SimulatorSettings = { ...DEFAULT_SIM, timeScale: o.timeScale, lora: { adapters, maxLoras: o.maxLoras } };
  const stack = await startStack({ pods: o.pods, sim, policy: loraPolicy(name, adapters), logDir: path.join(o.outDir, 'logs') });
  const clients = new Map(adapters.map((a) => [a, new ChatClient(stack.gatewayUrl, a)]));
  try {
    const { results, wallSeconds } = await sendAtArrivals(requests, o.timeScale, (r) => clients.get(r.adapter)!.chat(r.messages, o.outputTokens));
    return summarizeLoraRun(name, requests, results, stack.podAddresses, o.timeScale, wallSeconds);
  } finally {
    for (const c of clients.values()) c.close();
    await stack.stop();
  }
}

export function loraTable(results: readonly LoraPolicyResult[]): string {
  const base = results.find((r) => r.policy === 'kvroute')?.ttft.p90 ?? null;
  const rows = results.map((r) => `| ${r.policy} | ${secs(r.ttft.p50)} / ${secs(r.ttft.p90)} / ${secs(r.ttft.p99)} | ${base !== null && r.ttft.p90 !== null && base > 0 ? `${(r.ttft.p90 / base).toFixed(2)}×` : '–'} | ${secs(r.e2eP50)} | ${r.throughput.toFixed(1)} | ${failedText(r.errors, r.noToken)} | ${r.adaptersPerPod.join(', ')} |`);
  return ['| policy | TTFT p50 / p90 / p99 | p90 ÷ kvroute\'s | e2e p50 | req/s | errors | adapters per pod |', '| --- | ---: | ---: | ---: | ---: | ---: | --- |', ...rows].join('\n');
}

export interface LoraReport {
  readonly options: LoraBenchOptions;
  readonly machine: MachineNote;
  readonly started: string;
  readonly results: readonly LoraPolicyResult[];
}

export async function runLoraBench(o: LoraBenchOptions, log: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<LoraReport> {
  fs.mkdirSync(o.outDir, { recursive: true });
  const requests = loraWorkload(o);
  const machine = noteMachine();
  const started = new Date().toISOString();
  log(`lora: ${o.pods} pods × --max-loras ${o.maxLoras}, ${o.adapters} adapters (skew ${o.skew}), ${o.requests} requests at ${o.rate}/s, ${o.outputTokens} output tokens; ${machine.summary}`);
  const results: LoraPolicyResult[] = [];
  for (const name of o.policies) {
    const r = await runPolicy(name, o, requests);
    log(`  ${name}: TTFT p50 ${secs(r.ttft.p50)}, p90 ${secs(r.ttft.p90)}, p99 ${secs(r.ttft.p99)}; ${r.errors} errors${r.noToken > 0 ? `, ${r.noToken} without a token` : ''}; adapters per pod ${r.adaptersPerPod.join(', ')}`);
    results.push(r);
  }
  const report: LoraReport = { options: o, machine: machine.finish(), started, results };
  writeJsonAtomic(path.join(o.outDir, 'lora-results.json'), report);
  log(loraTable(results));
  return report;
}

export const LORA_USAGE = `Usage: npm run bench:lora -- [flags]

LoRA adapters through simulated pods, the EPP and the gateway: each policy routes the same Poisson arrivals.
Policies: ${LORA_POLICY_NAMES.join(', ')}.

  --pods N             decode pods (default ${DEFAULT_LORA_OPTIONS.pods})
  --adapters N         LoRA adapters every pod serves (default ${DEFAULT_LORA_OPTIONS.adapters})
  --max-loras N        vLLM's --max-loras on every pod (default ${DEFAULT_LORA_OPTIONS.maxLoras})
  --skew S             Zipf exponent of the adapters' popularity, 0 uniform (default ${DEFAULT_LORA_OPTIONS.skew})
  --rate R             arrivals per simulated second (default ${DEFAULT_LORA_OPTIONS.rate})
  --requests N         requests per policy (default ${DEFAULT_LORA_OPTIONS.requests})
  --output-tokens N    max_tokens of every request (default ${DEFAULT_LORA_OPTIONS.outputTokens})
  --system-words N     words of each adapter's system prompt, 0 for none (default ${DEFAULT_LORA_OPTIONS.systemWords})
  --question-words N   words of each request's question (default ${DEFAULT_LORA_OPTIONS.questionWords})
  --seed N             workload seed (default ${DEFAULT_LORA_OPTIONS.seed})
  --time-scale X       simulated seconds per wall second (default ${DEFAULT_LORA_OPTIONS.timeScale})
  --policies a,b       policies to run, in order (default all)
  --out DIR            where lora-results.json and the logs go (default bench/out/lora)
  --quick              a short run: 200 requests`;

const LORA_FLAGS = {
  pods: integer(1, 64), adapters: integer(1, 256), 'max-loras': integer(1, 256), skew: decimal(0, 10), rate: decimal(0, 10_000, { aboveMin: true }),
  requests: integer(1, 1_000_000), 'output-tokens': integer(1, 4096), 'system-words': integer(0, 100_000), 'question-words': integer(1, 100_000),
  seed: integer(0), 'time-scale': decimal(0, 100, { aboveMin: true }), policies: listOf(LORA_POLICY_NAMES), out: directory, quick: SWITCH,
} as const;

/** Parses the flags; undefined means `--help`. Throws a UsageError naming the flag on anything invalid. */
export function parseLoraArgs(argv: readonly string[]): LoraBenchOptions | undefined {
  const f = parseFlags(argv, LORA_FLAGS);
  if (!f) return undefined;
  const d = DEFAULT_LORA_OPTIONS;
  const o: LoraBenchOptions = {
    pods: f.pods ?? d.pods,
    adapters: f.adapters ?? d.adapters,
    maxLoras: f['max-loras'] ?? d.maxLoras,
    skew: f.skew ?? d.skew,
    rate: f.rate ?? d.rate,
    requests: f.requests ?? (f.quick ? 200 : d.requests),
    outputTokens: f['output-tokens'] ?? d.outputTokens,
    systemWords: f['system-words'] ?? d.systemWords,
    questionWords: f['question-words'] ?? d.questionWords,
    seed: f.seed ?? d.seed,
    timeScale: f['time-scale'] ?? d.timeScale,
    policies: f.policies ?? d.policies,
    outDir: f.out ?? d.outDir,
  };
  if (o.maxLoras > o.adapters) throw new UsageError(`--max-loras: at most --adapters (${o.adapters}), or no adapter ever waits for a slot; got ${o.maxLoras}`);
  return o;
}

/** `kvroute-bench lora`: parses the flags, runs, and returns the exit status. */
export async function loraCommand(argv: readonly string[]): Promise<number> {
  const options = parseLoraArgs(argv);
  if (!options) {
    process.stdout.write(`${LORA_USAGE}\n`);
    return 0;
  }
  await runLoraBench(options);
  return 0;
}
