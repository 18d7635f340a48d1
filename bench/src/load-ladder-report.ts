/**
 * The load ladder's tables (terminal and markdown), its goals table and its HTML section: a table per workload ×
 * capacity and a chart of TTFT p90 against load per policy (inline SVG, a log-scale axis since p90s span orders of
 * magnitude between policies; no scripts or external assets, like report.ts's charts).
 */
import { failedText } from './analysis';
import { escape, pct, policyColour, secs } from './report';
import { DELAY_GROWTH_MAX, DELAY_SLOPE_MIN, KEPT_UP_MIN, type LadderCell, type LadderGoal, type LadderReport, type LadderRun } from './load-ladder';

const times = (v: number | null) => (v === null || !Number.isFinite(v) ? '–' : `${v.toFixed(1)}×`);
const loadText = (l: number) => `${Math.round(l * 100)}%`;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i <= 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function ladderCellTitle(c: LadderCell): string {
  return `${c.workload} × ${c.capacity} KV (${c.kvCacheBlocksPerPod} blocks/pod, working set ${c.workingSetBlocks} blocks; time scale ${c.timeScale}×); `
    + `saturation ${c.saturation.rateRps.toFixed(1)} req/s (${c.saturation.policy}, ${c.saturation.inFlight} in flight, hit ${pct(c.saturation.hitRate)})`;
}

const HEADER = ['load', 'policy', 'offered', 'TTFT p50', 'p90', 'p99', 'cached p50', 'uncached p50', 'unc/cached', 'hit', '429', 'failed', 'held', 'req/s', 'balance', 'kept up', 'delay×', 'slope', 'state'];

const ratio = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(2));

function row(r: LadderRun): string[] {
  return [loadText(r.load), r.policy, r.offeredRps.toFixed(1), secs(r.ttftP50), secs(r.ttftP90), secs(r.ttftP99), secs(r.cachedP50),
    secs(r.uncachedP50), times(r.cachedSpeedup), pct(r.hitRate), String(r.rejected429), failedText(r.failed, r.noToken ?? 0), String(r.heldBack), r.throughputRps.toFixed(1), r.balance.toFixed(2),
    ratio(r.keptUp), ratio(r.delayGrowth), r.delaySlope == null ? '–' : r.delaySlope.toFixed(3), r.overloaded ? 'overloaded' : 'steady'];
}

/** Rows grouped by load, policies in run-list order. */
function byLoad(c: LadderCell): LadderRun[] {
  return [...c.runs].sort((a, b) => a.load - b.load);
}

export function ladderCellTerminalTable(c: LadderCell): string {
  return [ladderCellTitle(c), table(HEADER, byLoad(c).map(row))].join('\n');
}

const mark = (met: boolean | null) => (met === null ? 'n/a' : met ? 'met' : 'MISSED');

export function ladderGoalsTerminalTable(r: LadderReport): string {
  const header = ['goal', ...r.candidates];
  const rows = r.goals.map((g) => [g.goal, ...r.candidates.map((k) => mark(g.results[k]?.met ?? null))]);
  const details = r.goals.flatMap((g) => r.candidates.map((k) => `  ${g.id} · ${k}: ${g.results[k]?.actual ?? '–'}`));
  return ['load ladder goals (issue 9), side by side', table(header, rows), ...details].join('\n');
}

/** Markdown: one table per cell, TTFT p90 per policy (rows) and load (columns), with hit rate and 429s. */
export function ladderMarkdown(r: LadderReport): string {
  const out: string[] = [];
  for (const c of r.cells) {
    out.push(`**${c.workload} × ${c.capacity}** (${c.kvCacheBlocksPerPod} blocks/pod; saturation μ = ${c.saturation.rateRps.toFixed(1)} req/s, ${c.saturation.policy})`, '');
    out.push(`| policy | ${r.loads.map((l) => `${loadText(l)} p50 / p90 / p99`).join(' | ')} | hit (mean) | unc/cached ≤80% (min) | 429s |`);
    out.push(`| --- | ${r.loads.map(() => '---:').join(' | ')} | ---: | ---: | ---: |`);
    for (const p of r.policies) {
      const runs = c.runs.filter((x) => x.policy === p);
      if (runs.length === 0) continue;
      const cellsText = r.loads.map((l) => {
        const x = runs.find((y) => Math.abs(y.load - l) < 1e-9);
        // An overloaded run's percentiles grow with the run's length: say so rather than pass them off as steady.
        return x ? `${secs(x.ttftP50)} / ${secs(x.ttftP90)} / ${secs(x.ttftP99)}${x.overloaded ? ' (overloaded)' : ''}` : '–';
      });
      const hit = runs.reduce((s, x) => s + x.hitRate, 0) / runs.length;
      const speedups = runs.filter((x) => x.load <= 0.8 + 1e-9 && x.cachedSpeedup !== null).map((x) => x.cachedSpeedup!);
      const rejected = runs.reduce((s, x) => s + x.rejected429, 0);
      out.push(`| ${p} | ${cellsText.join(' | ')} | ${pct(hit)} | ${speedups.length ? times(Math.min(...speedups)) : '–'} | ${rejected} |`);
    }
    out.push('');
  }
  out.push(`| goal | ${r.candidates.join(' | ')} |`, `| --- | ${r.candidates.map(() => '---').join(' | ')} |`);
  for (const g of r.goals) out.push(`| ${g.goal} | ${r.candidates.map((k) => `${mark(g.results[k]?.met ?? null)}: ${g.results[k]?.actual ?? '–'}`).join(' | ')} |`);
  return out.join('\n');
}

/**
 * TTFT p90 against offered load, one line per policy, log-scale y axis (decades labelled): how each policy's tail
 * grows as arrivals approach the pool's saturation rate.
 */
export function p90LoadChart(c: LadderCell, policies: readonly string[], loads: readonly number[]): string {
  const width = 680;
  const height = 360;
  const left = 64;
  const right = 170;
  const top = 34;
  const bottom = 44;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const values = c.runs.map((r) => r.ttftP90).filter((v): v is number => v !== null && v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values, 0.01))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, lo * 10))));
  const xMin = Math.min(...loads);
  const xMax = Math.max(...loads);
  const x = (l: number) => left + (xMax > xMin ? ((l - xMin) / (xMax - xMin)) * plotW : plotW / 2);
  const y = (v: number) => top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const title = `TTFT p90 against load — ${c.workload} × ${c.capacity} KV`;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="${escape(title)}">`,
    `<text x="0" y="18" font-size="15" font-weight="600">${escape(title)}</text>`,
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#a0aec0"/>`];
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    parts.push(`<line x1="${left}" y1="${y(d).toFixed(1)}" x2="${left + plotW}" y2="${y(d).toFixed(1)}" stroke="#e2e8f0"/>`);
    parts.push(`<text x="${left - 6}" y="${(y(d) + 4).toFixed(1)}" font-size="12" text-anchor="end">${escape(secs(d))}</text>`);
  }
  for (const l of loads) {
    parts.push(`<line x1="${x(l).toFixed(1)}" y1="${top + plotH}" x2="${x(l).toFixed(1)}" y2="${top + plotH + 5}" stroke="#1a202c"/>`);
    parts.push(`<text x="${x(l).toFixed(1)}" y="${top + plotH + 18}" font-size="12" text-anchor="middle">${loadText(l)}</text>`);
  }
  parts.push(`<text x="${left + plotW / 2}" y="${height - 6}" font-size="12" text-anchor="middle">offered load, share of the saturation rate (${c.saturation.rateRps.toFixed(1)} req/s)</text>`);
  policies.forEach((p, i) => {
    const pts = c.runs.filter((r) => r.policy === p && r.ttftP90 !== null && r.ttftP90 > 0).sort((a, b) => a.load - b.load);
    if (pts.length === 0) return;
    const colour = policyColour(p, policies);
    const dash = i >= 8 ? ' stroke-dasharray="6,3"' : '';
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2"${dash} points="${pts.map((r) => `${x(r.load).toFixed(1)},${y(r.ttftP90!).toFixed(1)}`).join(' ')}"/>`);
    for (const r of pts) parts.push(`<circle cx="${x(r.load).toFixed(1)}" cy="${y(r.ttftP90!).toFixed(1)}" r="3" fill="${colour}"><title>${escape(`${p} at ${loadText(r.load)}: ${secs(r.ttftP90)}`)}</title></circle>`);
    const ly = top + 8 + i * 18;
    parts.push(`<line x1="${left + plotW + 12}" y1="${ly}" x2="${left + plotW + 32}" y2="${ly}" stroke="${colour}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${left + plotW + 38}" y="${ly + 4}" font-size="12">${escape(p)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function htmlGoals(r: LadderReport): string {
  const rows = r.goals.map((g: LadderGoal) => `<tr><td>${escape(g.goal)}</td>${r.candidates.map((k) => {
    const res = g.results[k];
    return `<td class="${res?.met === true ? 'met' : res?.met === false ? 'missed' : ''}">${escape(mark(res?.met ?? null))}: ${escape(res?.actual ?? '–')}</td>`;
  }).join('')}</tr>`).join('\n');
  return `<table class="goals"><tr><th>goal</th>${r.candidates.map((k) => `<th>${escape(k)}</th>`).join('')}</tr>\n${rows}\n</table>`;
}

export function ladderHtmlSection(r: LadderReport): string {
  const cells = r.cells.map((c) => {
    const rows = byLoad(c).map((x) => `<tr>${row(x).map((v) => `<td>${escape(v)}</td>`).join('')}</tr>`).join('\n');
    return `<h3>${escape(`${c.workload} × ${c.capacity} KV`)}</h3>
<p class="note">${escape(`${c.description}. ${ladderCellTitle(c)}`)}</p>
<div class="charts">${p90LoadChart(c, r.policies, r.loads)}</div>
<table><tr>${HEADER.map((h) => `<th>${escape(h)}</th>`).join('')}</tr>
${rows}
</table>`;
  }).join('\n');
  return `<h2>Open-loop load ladder</h2>
<p class="note">${escape(`Poisson arrivals at ${r.loads.map(loadText).join(', ')} of each workload × capacity's saturation rate (the throughput the pool sustains under the named policy with every pod's queue never empty), fresh pods per run (TTFTs and rates in simulated time; each workload's time scale is in its heading). Offered and req/s: requests per simulated second. unc/cached: uncached TTFT p50 over cached TTFT p50 (≥50% vs <10% of the prompt cached). 429: answered 429 by the EPP's saturation filter. kept up: requests served over arrivals offered in the run's steady window; delay×: median delay from arrival to first token of the last quarter of arrivals over the second quarter's; slope: those delays' least-squares slope against the arrival time from the second quarter on; overloaded: kept up < ${KEPT_UP_MIN}, or delay× > ${DELAY_GROWTH_MAX} with a slope above ${DELAY_SLOPE_MIN}, the policy could not sustain the load and its percentiles grow with the run's length.`)}</p>
<h3>Goals (issue 9)</h3>
${htmlGoals(r)}
${cells}`;
}
