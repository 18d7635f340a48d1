/**
 * The routing benchmark's results: their shape (what `results.json` holds), the terminal tables and the self-contained
 * HTML report (inline SVG from report.ts, no scripts or external assets).
 */
import { barChart, escape, pct, policyColour, secs, type ChartReference } from './report';
import { ladderHtmlSection } from './load-ladder-report';
import type { LadderReport } from './load-ladder';

/** What the symbols in the tables and charts stand for, shown where they appear. */
export const SYMBOLS = 'h*: the best hit rate any router can reach on a shared-prefix workload with unlimited cache (every group\'s prefix computed once); '
  + 'h_RR: the hit rate round robin reaches there; both are the analytic limits of the reference\'s §7 for G groups of P requests, '
  + 'S: shared-prefix tokens per request (whole blocks), Q: unique tokens per request, R: pods. '
  + 'best: the same requests replayed in order against one pod that never evicts. W: the working set in KV blocks. '
  + 'RR≈: round robin\'s expected hit rate with this finite capacity (LRU under the independent reference model).';
import type { WorkloadStats } from './routing-workloads';
import type { PoolCapacity, PreciseGoals, RampPlan, StageResult } from './poisson-ramp';

export type CapacityName = 'ample' | 'constrained';

export interface Bounds {
  /** §7.1 with the measured S and Q: best token hit rate, one replica, infinite cache. */
  readonly hStar: number;
  /** §7.2: random / round robin over R replicas, infinite cache. */
  readonly hRR: number;
  /** The shape they were computed for. */
  readonly P: number;
  readonly R: number;
  readonly S: number;
  readonly Q: number;
  readonly B: number;
}

export interface FiniteBounds {
  /** §7.3 estimates: the infinite-cache rates scaled by the share of prefixes a pod still holds. */
  readonly roundRobin: number;
  readonly affinity: number;
  /** Prefix working set and free capacity per pod they assume, in tokens. */
  readonly prefixWorkingSetTokens: number;
  readonly freeTokensPerPod: number;
}

export interface WorkloadReport {
  readonly name: string;
  readonly kind: 'shared-prefix' | 'multi-turn';
  readonly description: string;
  readonly stats: WorkloadStats;
  /** Closed loop: requests (or conversations) in flight. */
  readonly concurrency: number;
  /** Open loop: the Poisson arrival rate, requests per second (then `concurrency` only sized the ample cache). */
  readonly arrivalRate?: number;
  /** The oracle: the requests replayed in order against one simulated pod that never evicts. */
  readonly best: number | null;
  readonly bounds?: Bounds;
}

export interface RunRecord {
  readonly policy: string;
  readonly repeat: number;
  readonly requests: number;
  readonly succeeded: number;
  /** Succeeded without a content token, so without a TTFT (analysis.ts `ttftOf`); absent in runs recorded before session 67. */
  readonly noToken?: number;
  readonly hitRate: number;
  /** The clients' view (`PolicyResult.servedHitRate`); absent in runs recorded before it was measured. */
  readonly servedHitRate?: number | null;
  /** Prefix-cache lookups over prompt tokens (`PolicyResult.lookupsPerPromptToken`); absent in older runs. */
  readonly lookupsPerPromptToken?: number | null;
  readonly ttftP50: number | null;
  readonly ttftP90: number | null;
  /** Absent in runs recorded before it was measured. */
  readonly ttftP99?: number | null;
  readonly throughputRps: number;
  readonly wallSeconds: number;
  readonly balance: number;
  readonly perEndpoint: Record<string, number>;
  readonly failures: readonly { readonly status: number; readonly error: string }[];
  /** What an in-process director reports about its own decisions (e.g. the SGLang branches taken). */
  readonly director?: Record<string, unknown>;
  /** A precise EPP's own view, from its /metrics at the end of the run. */
  readonly precise?: PreciseRunStats;
  /** A ramp workload: TTFT per stage (a request belongs to the stage it was sent in). */
  readonly stages?: readonly StageResult[];
  /** EPP policies: candidate pods the saturation filter dropped, summed over requests and replicas. */
  readonly saturationExclusions?: number;
}

export interface PreciseRunStats {
  /** KV events received from the pods, and applied to the index. */
  readonly eventsReceived: number;
  readonly eventsApplied: number;
  readonly sequenceGaps: number;
  /** Prompt tokens the index predicted cached on the picked pod / prompt tokens scored: compare with `hitRate`. */
  readonly predictedHitRate: number | null;
}

export interface Ratios {
  readonly hitRate: number | null;
  readonly ttftP50: number | null;
  readonly ttftP90: number | null;
  readonly throughput: number | null;
}

export interface PolicySummary {
  readonly policy: string;
  readonly description: string;
  readonly runs: number;
  /** Medians over the repeats. */
  readonly successRate: number;
  readonly hitRate: number;
  readonly hitRateOfBest: number | null;
  /** Seconds of simulated time (client wall clock × time scale). */
  readonly ttftP50: number | null;
  readonly ttftP90: number | null;
  readonly ttftP99?: number | null;
  /** A ramp workload: TTFT p90 per stage (simulated seconds). */
  readonly stageP90s?: readonly (number | null)[];
  readonly throughputRps: number;
  /** Requests on the busiest pod / mean requests per pod (1 = perfectly even). */
  readonly balance: number;
  /** This policy over the baseline run in the same invocation (TTFT: lower is better). */
  readonly vsBaseline: Ratios;
}

export interface CellReport {
  readonly workload: string;
  readonly capacity: CapacityName;
  readonly kvCacheBlocksPerPod: number;
  readonly workingSetBlocks: number;
  readonly reusedBlocks: number;
  /** W / C: the working set over one pod's capacity. */
  readonly workingSetOverCapacity: number;
  readonly reusedOverCapacity: number;
  /** R·C / W: the cluster's capacity over the working set. */
  readonly clusterOverWorkingSet: number;
  readonly baseline: string;
  readonly best: number | null;
  readonly bounds?: Bounds;
  readonly finite?: FiniteBounds;
  readonly policies: readonly PolicySummary[];
  readonly runs: readonly RunRecord[];
  /** A ramp workload: the pool capacity its top was set from, the run's time scale and the stages offered. */
  readonly ramp?: { readonly capacity: PoolCapacity; readonly timeScale: number; readonly stages: RampPlan['stages'] };
  /** poisson-groups: issue 8's goals checked on this cell. */
  readonly goals?: PreciseGoals;
}

export interface OverheadVariant {
  readonly name: string;
  readonly description: string;
  /** Medians over the repetitions, in milliseconds of wall-clock time (time scale 1). */
  readonly ttftP50Ms: number | null;
  readonly ttftP90Ms: number | null;
  readonly throughputRps: number;
  readonly successRate: number;
  /** Against the gateway alone. */
  readonly deltaP50Ms: number | null;
  readonly deltaP90Ms: number | null;
  readonly throughputRatio: number | null;
  readonly perRep: readonly { readonly ttftP50Ms: number | null; readonly ttftP90Ms: number | null; readonly throughputRps: number }[];
}

export interface OverheadReport {
  readonly requests: number;
  readonly concurrency: number;
  readonly reps: number;
  readonly promptTokens: number;
  readonly outputTokens: number;
  readonly baseline: string;
  readonly variants: readonly OverheadVariant[];
}

export interface RoutingReport {
  readonly title: string;
  readonly date: string;
  readonly machine: string;
  readonly wallSeconds: number;
  readonly pods: number;
  readonly timeScale: number;
  readonly options: unknown;
  readonly workloads: readonly WorkloadReport[];
  readonly cells: readonly CellReport[];
  readonly overhead?: OverheadReport;
  /** The open-loop load ladder (issue 9), when it ran. */
  readonly ladder?: LadderReport;
  readonly policies: readonly { readonly name: string; readonly description: string }[];
  readonly notes: readonly string[];
}

const ratio = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`);
const ms = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${v.toFixed(1)} ms`);
const signedMs = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${v >= 0 ? '+' : ''}${v.toFixed(1)} ms`);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function cellTitle(c: CellReport): string {
  return `${c.workload} × ${c.capacity} KV (${c.kvCacheBlocksPerPod} blocks/pod; working set ${c.workingSetBlocks} blocks = `
    + `${c.workingSetOverCapacity.toFixed(1)}× one pod, reused part ${c.reusedBlocks} = ${c.reusedOverCapacity.toFixed(1)}×; `
    + `cluster holds ${c.clusterOverWorkingSet.toFixed(1)}× the working set)`;
}

export function boundsLine(c: CellReport): string {
  const parts = [`best (oracle replay, infinite cache) ${pct(c.best)}`];
  if (c.bounds) parts.push(`h* ${pct(c.bounds.hStar)}, h_RR ${pct(c.bounds.hRR)} (§7, R=${c.bounds.R}, S=${c.bounds.S.toFixed(0)}, Q=${c.bounds.Q.toFixed(0)}, P=${c.bounds.P})`);
  else parts.push('h*/h_RR: n/a (multi-turn; the oracle is the bound)');
  if (c.finite) parts.push(`finite capacity ≈ RR ${pct(c.finite.roundRobin)}, affinity ${pct(c.finite.affinity)} (§7.3, IRM estimate)`);
  return parts.join('; ');
}

/** How the ratio columns name the baseline. */
function baseLabel(c: CellReport): string {
  return c.baseline === 'round-robin' ? '×RR' : `×${c.baseline}`;
}

/** What the in-process directors said about their own decisions, e.g. which SGLang branch routed how many requests. */
export function directorLine(c: CellReport): string | undefined {
  const parts: string[] = [];
  for (const r of c.runs) {
    const decisions = (r.director as { decisions?: Record<string, number> } | undefined)?.decisions;
    if (decisions) parts.push(`${runLabel(c, r)}: `
      + Object.entries(decisions).map(([k, v]) => `${k} ${v}`).join(', '));
  }
  return parts.length > 0 ? `director decisions — ${parts.join('; ')}` : undefined;
}

/** What the precise EPP saw: events, and the hit rate it predicted against the one the pods counted. */
export function preciseLine(c: CellReport): string | undefined {
  const parts = c.runs.filter((r) => r.precise).map((r) => {
    const p = r.precise!;
    return `${runLabel(c, r)}: `
      + `${p.eventsApplied} of ${p.eventsReceived} KV events applied, ${p.sequenceGaps} gaps; predicted hit ${pct(p.predictedHitRate)} against the pods' ${pct(r.hitRate)}`
      + (recountedServedRate(r) !== undefined ? ` (the responses' ${pct(recountedServedRate(r)!)})` : '');
  });
  return parts.length > 0 ? `precise index — ${parts.join('; ')}` : undefined;
}

/** A run's name in a cell's notes: its policy, and its repeat when the policy ran more than once. */
function runLabel(c: CellReport, r: RunRecord): string {
  return `${r.policy}${c.runs.filter((x) => x.policy === r.policy).length > 1 ? ` (run ${r.repeat + 1})` : ''}`;
}

/**
 * The responses' hit rate when vLLM looked prompts up more than once (blocked or preempted requests are looked up again
 * at every step), else undefined: then the pods' counters are the whole story.
 */
function recountedServedRate(r: RunRecord): number | undefined {
  const recounted = r.lookupsPerPromptToken !== undefined && r.lookupsPerPromptToken !== null && r.lookupsPerPromptToken > RECOUNT_THRESHOLD;
  return recounted && r.servedHitRate !== undefined && r.servedHitRate !== null ? r.servedHitRate : undefined;
}

/** Lookups per prompt token above which the pods' counters no longer say what share of prompts was served cached. */
const RECOUNT_THRESHOLD = 1.05;

/**
 * Where the pods' counters counted prompts more than once (preemptions, requests blocked on KV), the hit rate the
 * responses report beside theirs: the table's hit rate is vLLM's metric, which then weighs a request by how often it
 * was looked up (vllm/v1/core/sched/scheduler.py @ v0.10.0 counts every lookup of a waiting request).
 */
export function recountLine(c: CellReport): string | undefined {
  const parts = c.runs.filter((r) => recountedServedRate(r) !== undefined).map((r) =>
    `${runLabel(c, r)}: pods ${pct(r.hitRate)}, responses ${pct(recountedServedRate(r)!)} (${r.lookupsPerPromptToken!.toFixed(1)} lookups per prompt token)`);
  return parts.length > 0 ? `hit rate recounted by the pods (blocked or preempted requests looked up again) — ${parts.join('; ')}` : undefined;
}

/** How often each EPP policy's saturation filter kept a request from a pod (configs without the filter count 0). */
export function exclusionsLine(c: CellReport): string | undefined {
  const parts = c.runs.filter((r) => r.saturationExclusions !== undefined).map((r) => `${r.policy} ${r.saturationExclusions} (${(r.saturationExclusions! / Math.max(1, r.requests)).toFixed(2)} per request)`);
  return parts.length > 0 ? `saturation-filter exclusions — ${parts.join('; ')}` : undefined;
}

export function cellTerminalTable(c: CellReport): string {
  const x = baseLabel(c);
  const header = ['policy', 'success', 'hit rate', 'of best', `${x} hit`, 'TTFT p50', 'p90', 'p99', `${x} p50`, `${x} p90`, 'req/s', `${x} req/s`, 'balance'];
  const rows = c.policies.map((p) => [
    p.policy, pct(p.successRate), pct(p.hitRate), pct(p.hitRateOfBest), ratio(p.vsBaseline.hitRate), secs(p.ttftP50), secs(p.ttftP90), secs(p.ttftP99 ?? null),
    ratio(p.vsBaseline.ttftP50), ratio(p.vsBaseline.ttftP90), p.throughputRps.toFixed(1), ratio(p.vsBaseline.throughput), p.balance.toFixed(2),
  ]);
  return [cellTitle(c), rampLine(c), table(header, rows), boundsLine(c), directorLine(c), preciseLine(c), recountLine(c), exclusionsLine(c), stageTable(c), goalsLine(c)]
    .filter((l) => l !== undefined).join('\n');
}

/** How a ramp cell's load was set: the pool's capacity at the partitioned replay's hit rate, and the stages. */
export function rampLine(c: CellReport): string | undefined {
  if (!c.ramp) return undefined;
  const k = c.ramp.capacity;
  return `ramp: ${c.ramp.stages.length} Poisson stages (llm-d's ladder) from ${c.ramp.stages[1]?.rateRps.toFixed(1) ?? '?'} to ${k.topRps.toFixed(1)} req/s `
    + `(simulated), each of int(rate × duration) requests, the next started once they have all finished and a pause has passed (inference-perf's), warm-up at ${c.ramp.stages[0]?.rateRps.toFixed(1) ?? '?'}; top = the pool's saturation throughput under the ideal static `
    + `placement (group g on pod g mod R, simulator engine in virtual time, ${k.depthPerPod} requests submitted per pod; its hit rate ${pct(k.hitRate)}); `
    + `time scale ${c.ramp.timeScale.toFixed(3)}`;
}

/** TTFT p90 per ramp stage and policy: where each one saturates. */
export function stageTable(c: CellReport): string | undefined {
  if (!c.ramp || !c.policies.some((p) => p.stageP90s)) return undefined;
  const header = ['TTFT p90 by stage', ...c.ramp.stages.map((s, i) => (i === 0 && s.warmUp ? 'warm' : `${(s.fraction * 100).toFixed(0)}%`))];
  const rows = c.policies.map((p) => [p.policy, ...c.ramp!.stages.map((_, i) => secs(p.stageP90s?.[i] ?? null))]);
  return table(header, rows);
}

/** Issue 8's goals on this cell. */
export function goalsLine(c: CellReport): string | undefined {
  const g = c.goals;
  if (!g) return undefined;
  const met = (v: boolean | null) => (v === null ? 'n/a' : v ? 'met' : 'NOT met');
  return `issue 8 goals — precise hit rate ${pct(g.hitRateOfBest)} of the oracle's best (≥ 95%: ${met(g.hitRateGoalMet)}); `
    + `TTFT p90 kvroute (approximate) / precise ${ratio(g.p90VsApproximate)}, approx-prefix / precise ${ratio(g.p90VsApproxPrefix)}, `
    + `sglang / precise ${ratio(g.p90VsSglang)} (≥ 3× against approximate and sglang: ${met(g.p90GoalMet)})`;
}

export function overheadTerminalTable(o: OverheadReport): string {
  const header = ['path', 'success', 'TTFT p50', 'p90', 'Δp50', 'Δp90', 'req/s', '×req/s'];
  const rows = o.variants.map((v) => [
    v.name, pct(v.successRate), ms(v.ttftP50Ms), ms(v.ttftP90Ms), signedMs(v.deltaP50Ms), signedMs(v.deltaP90Ms),
    v.throughputRps.toFixed(1), ratio(v.throughputRatio),
  ]);
  return [`EPP overhead: ${o.requests} unique ${o.promptTokens}-token prompts, ${o.outputTokens} output tokens, concurrency ${o.concurrency}, `
    + `median of ${o.reps} alternating repetitions, time scale 1 (wall-clock ms); Δ and × against ${o.baseline}`, table(header, rows)].join('\n');
}

/** One line per cell for a compact summary: each policy's hit rate and TTFT p50. */
export function summaryTable(cells: readonly CellReport[]): string {
  const policies = [...new Set(cells.flatMap((c) => c.policies.map((p) => p.policy)))];
  const header = ['workload × capacity', 'best', ...policies];
  const rows = cells.map((c) => [`${c.workload} × ${c.capacity}`, pct(c.best), ...policies.map((name) => {
    const p = c.policies.find((x) => x.policy === name);
    return p ? `${pct(p.hitRate)} / ${secs(p.ttftP50)}` : '–';
  })]);
  return ['hit rate / TTFT p50 per policy', table(header, rows)].join('\n');
}

function htmlCell(c: CellReport, policies: readonly string[]): string {
  const x = escape(baseLabel(c));
  const rows = c.policies.map((p) => `<tr><td>${escape(p.policy)}</td><td>${pct(p.successRate)}</td><td>${pct(p.hitRate)}</td><td>${pct(p.hitRateOfBest)}</td>`
    + `<td>${ratio(p.vsBaseline.hitRate)}</td><td>${secs(p.ttftP50)}</td><td>${secs(p.ttftP90)}</td><td>${ratio(p.vsBaseline.ttftP50)}</td>`
    + `<td>${ratio(p.vsBaseline.ttftP90)}</td><td>${p.throughputRps.toFixed(1)}</td><td>${ratio(p.vsBaseline.throughput)}</td><td>${p.balance.toFixed(2)}</td></tr>`).join('\n');
  const refs: ChartReference[] = [];
  if (c.best !== null) refs.push({ value: c.best, label: `best ${pct(c.best)}` });
  if (c.bounds) refs.push({ value: c.bounds.hRR, label: `h_RR ${pct(c.bounds.hRR)}` });
  if (c.finite) refs.push({ value: c.finite.roundRobin, label: `RR≈ ${pct(c.finite.roundRobin)} (finite)` });
  const maxTtft = Math.max(0.001, ...c.policies.map((p) => p.ttftP90 ?? 0));
  const bar = (policy: string, value: number) => ({ label: policy, value, colour: policyColour(policy, policies) });
  const charts = [
    barChart('Prefix-cache hit rate (pods\' counters)', c.policies.map((p) => bar(p.policy, p.hitRate)), pct, 1, refs),
    barChart('TTFT p50 (simulated time)', c.policies.map((p) => bar(p.policy, p.ttftP50 ?? 0)), secs, maxTtft),
    barChart('TTFT p90 (simulated time)', c.policies.map((p) => bar(p.policy, p.ttftP90 ?? 0)), secs, maxTtft),
  ];
  return `<h3>${escape(`${c.workload} × ${c.capacity} KV`)}</h3>
<p class="note">${escape(cellTitle(c))}</p>
<table><tr><th>policy</th><th>success</th><th>hit rate</th><th>of best</th><th>${x} hit</th><th>TTFT p50</th><th>TTFT p90</th><th>${x} p50</th><th>${x} p90</th><th>req/s</th><th>${x} req/s</th><th>balance</th></tr>
${rows}
</table>
<p class="note">${escape(boundsLine(c))}</p>
<p class="note">${escape(SYMBOLS)}</p>
${directorLine(c) ? `<p class="note">${escape(directorLine(c)!)}</p>` : ''}
${preciseLine(c) ? `<p class="note">${escape(preciseLine(c)!)}</p>` : ''}
${recountLine(c) ? `<p class="note">${escape(recountLine(c)!)}</p>` : ''}
${rampLine(c) ? `<p class="note">${escape(rampLine(c)!)}</p>` : ''}
${stageTable(c) ? `<pre>${escape(stageTable(c)!)}</pre>` : ''}
${goalsLine(c) ? `<p class="note">${escape(goalsLine(c)!)}</p>` : ''}
<div class="charts">
${charts.join('\n')}
</div>`;
}

export function routingHtmlReport(r: RoutingReport): string {
  const workloads = r.workloads.map((w) => `<tr><td>${escape(w.name)}</td><td class="shape">${escape(w.description)}</td><td>${w.stats.requests}</td>`
    + `<td>${w.stats.meanPromptTokens.toFixed(0)}</td><td>${w.stats.sharedPrefixTokens !== undefined ? `${w.stats.sharedPrefixTokens.toFixed(0)} / ${(w.stats.uniqueTokens ?? 0).toFixed(0)}` : '–'}</td><td>${w.stats.workingSetBlocks}</td><td>${w.stats.reusedBlocks}</td>`
    + `<td>${w.arrivalRate !== undefined ? `${w.arrivalRate} req/s` : w.concurrency}</td><td>${pct(w.best)}</td><td>${pct(w.stats.replayHitRate)}</td><td>${w.bounds ? pct(w.bounds.hStar) : 'n/a'}</td>`
    + `<td>${w.bounds ? pct(w.bounds.hRR) : 'n/a'}</td></tr>`);
  const overhead = r.overhead ? `<h2>EPP overhead</h2>
<p class="note">${escape(`${r.overhead.requests} unique ${r.overhead.promptTokens}-token prompts (no prefix sharing, so routing cannot change the cache), ${r.overhead.outputTokens} output tokens, concurrency ${r.overhead.concurrency}, median of ${r.overhead.reps} alternating repetitions, time scale 1: the milliseconds are wall-clock. Δ and × against ${r.overhead.baseline}.`)}</p>
<table><tr><th>path</th><th>success</th><th>TTFT p50</th><th>TTFT p90</th><th>Δp50</th><th>Δp90</th><th>req/s</th><th>×req/s</th></tr>
${r.overhead.variants.map((v) => `<tr><td title="${escape(v.description)}">${escape(v.name)}</td><td>${pct(v.successRate)}</td><td>${ms(v.ttftP50Ms)}</td><td>${ms(v.ttftP90Ms)}</td><td>${signedMs(v.deltaP50Ms)}</td><td>${signedMs(v.deltaP90Ms)}</td><td>${v.throughputRps.toFixed(1)}</td><td>${ratio(v.throughputRatio)}</td></tr>`).join('\n')}
</table>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(r.title)}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1a202c;max-width:1200px}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #cbd5e0;padding:.3rem .6rem;text-align:right}
td:first-child,th:first-child{text-align:left}td.shape{text-align:left;min-width:14rem}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.note{color:#4a5568;font-size:.9rem}
table.goals td{text-align:left}td.met{color:#2f855a}td.missed{color:#c53030}
</style></head><body>
<h1>${escape(r.title)}</h1>
<p>${escape(`${r.date}; machine: ${r.machine}; ${r.pods} simulated pods; time scale ${r.timeScale}×; wall time ${r.wallSeconds.toFixed(0)} s.`)}</p>
<h2>Workloads</h2>
<table><tr><th>workload</th><th>shape</th><th>requests</th><th>mean prompt</th><th>S / Q</th><th title="working set: distinct KV blocks">W blocks</th><th>reused</th><th title="closed loop: requests in flight; open loop: arrival rate">load</th><th title="oracle: replay against one pod that never evicts">best</th><th title="the same replay computed in this process">replay</th><th>h*</th><th>h_RR</th></tr>
${workloads.join('\n')}
</table>
<p class="note">${escape(SYMBOLS)}</p>
<h2>Policies</h2>
<ul>${r.policies.map((p) => `<li><b>${escape(p.name)}</b>: ${escape(p.description)}</li>`).join('')}</ul>
${r.cells.length > 0 ? '<h2>Results per workload × capacity</h2>' : ''}
${r.cells.map((c) => htmlCell(c, r.policies.map((p) => p.name))).join('\n')}
${overhead}
${r.ladder ? ladderHtmlSection(r.ladder) : ''}
<h2>Notes</h2>
${r.notes.map((n) => `<p class="note">${escape(n)}</p>`).join('\n')}
</body></html>
`;
}
