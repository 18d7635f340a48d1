/**
 * Renders a run as a table for the terminal and as one self-contained HTML page with inline SVG charts (no scripts,
 * no external assets), so the report can be attached to a pull request or opened from CI artifacts.
 */
import type { PolicyResult } from './analysis';

export interface TargetCheck {
  readonly name: string;
  readonly target: string;
  readonly actual: string;
  readonly met: boolean;
}

export interface ReportInput {
  readonly title: string;
  readonly subtitle: string;
  readonly results: readonly PolicyResult[];
  readonly bestHitRate: number | null;
  readonly targets: readonly TargetCheck[];
  readonly notes: readonly string[];
}

export const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);
export const secs = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v < 1 ? `${(v * 1000).toFixed(0)} ms` : `${v.toFixed(2)} s`);
export const times = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${v.toFixed(1)}×`);

export function terminalTable(results: readonly PolicyResult[], best: number | null): string {
  const header = ['policy', 'success', 'hit rate', 'of best', 'sticky', 'TTFT p50', 'p90', 'cached p50', 'uncached p50', 'speedup', 'req/s'];
  const rows = results.map((r) => [
    r.policy, pct(r.successRate), pct(r.hitRate), pct(r.hitRateOfBest), pct(r.requestStickiness), secs(r.ttft.p50),
    secs(r.ttft.p90), secs(r.ttftCached.p50), secs(r.ttftUncached.p50), times(r.cachedSpeedup), r.throughputRps.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '', `analytic best hit rate for this workload: ${pct(best)}`].join('\n');
}

export function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** One colour per policy, the same in every chart of a report: the policy's place in the run's list picks it. */
const POLICY_COLOURS = ['#2b6cb0', '#dd6b20', '#718096', '#38a169', '#805ad5', '#d53f8c', '#319795', '#b7791f'];

export function policyColour(policy: string, policies: readonly string[]): string {
  const i = policies.indexOf(policy);
  return POLICY_COLOURS[(i < 0 ? policies.length : i) % POLICY_COLOURS.length]!;
}

export interface ChartBar {
  readonly label: string;
  readonly value: number;
  /** The bar's fill (a policy's colour); `faded` draws it lighter, for a second bar of the same policy. */
  readonly colour: string;
  readonly faded?: boolean;
}

export interface ChartReference {
  readonly value: number;
  readonly label: string;
}

/** A horizontal bar chart; each `reference` draws a dashed line (e.g. the analytic best), labelled under the chart. */
export function barChart(title: string, bars: readonly ChartBar[], format: (v: number) => string, max: number,
  reference?: ChartReference | readonly ChartReference[]): string {
  const references = reference === undefined ? [] : Array.isArray(reference) ? reference as readonly ChartReference[] : [reference as ChartReference];
  const width = 680;
  const labelW = 210;
  const barH = 26;
  const height = 40 + bars.length * (barH + 8) + 20 + Math.max(0, references.length - 1) * 14;
  const scale = (v: number) => (max > 0 ? (v / max) * (width - labelW - 90) : 0);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="${escape(title)}">`,
    `<text x="0" y="18" font-size="15" font-weight="600">${escape(title)}</text>`];
  bars.forEach((b, i) => {
    const y = 36 + i * (barH + 8);
    parts.push(`<text x="${labelW - 8}" y="${y + barH * 0.68}" font-size="13" text-anchor="end">${escape(b.label)}</text>`);
    parts.push(`<rect x="${labelW}" y="${y}" width="${Math.max(1, scale(b.value)).toFixed(1)}" height="${barH}" fill="${b.colour}"${b.faded ? ' fill-opacity="0.45"' : ''}/>`);
    parts.push(`<text x="${labelW + scale(b.value) + 6}" y="${y + barH * 0.68}" font-size="13">${escape(format(b.value))}</text>`);
  });
  const dashes = ['5,4', '2,3', '9,3,2,3'];
  references.forEach((ref, i) => {
    const x = labelW + scale(ref.value);
    const y = height - 2 - (references.length - 1 - i) * 14;
    parts.push(`<line x1="${x}" y1="30" x2="${x}" y2="${y - 12}" stroke="#1a202c" stroke-dasharray="${dashes[i % dashes.length]}"/>`);
    parts.push(`<text x="${x}" y="${y}" font-size="12" text-anchor="middle">${escape(ref.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function htmlReport(input: ReportInput): string {
  const r = input.results;
  const policies = r.map((x) => x.policy);
  const bar = (x: PolicyResult, value: number, label = x.policy, faded = false): ChartBar => ({ label, value, colour: policyColour(x.policy, policies), faded });
  const maxTtft = Math.max(...r.flatMap((x) => [x.ttftCached.p50 ?? 0, x.ttftUncached.p50 ?? 0, x.ttft.p90 ?? 0]), 0.001);
  const charts = [
    barChart('Prefix-cache hit rate (pods\' own counters)', r.map((x) => bar(x, x.hitRate)), pct, 1,
      input.bestHitRate !== null ? { value: input.bestHitRate, label: `best ${pct(input.bestHitRate)}` } : undefined),
    barChart('Session stickiness (share of turns on the session\'s first pod)', r.map((x) => bar(x, x.requestStickiness)), pct, 1),
    barChart('TTFT p50, all requests', r.map((x) => bar(x, x.ttft.p50 ?? 0)), secs, maxTtft),
    barChart('TTFT p90, all requests', r.map((x) => bar(x, x.ttft.p90 ?? 0)), secs, maxTtft),
    barChart('TTFT p50, cached (≥50% of prompt, solid) vs uncached (<10%, light)', r.flatMap((x) => [
      bar(x, x.ttftCached.p50 ?? 0, `${x.policy} cached`),
      bar(x, x.ttftUncached.p50 ?? 0, `${x.policy} uncached`, true),
    ]), secs, maxTtft),
  ];
  const rows = r.map((x) => `<tr><td>${escape(x.policy)}</td><td>${x.succeeded}/${x.requests}${x.noToken > 0 ? ` (${x.noToken} without a token)` : ''}</td><td>${pct(x.hitRate)}</td><td>${pct(x.hitRateOfBest)}</td>`
    + `<td>${pct(x.requestStickiness)}</td><td>${pct(x.sessionsOnOnePod)}</td><td>${secs(x.ttft.p50)}</td><td>${secs(x.ttft.p90)}</td>`
    + `<td>${secs(x.ttftCached.p50)}</td><td>${secs(x.ttftUncached.p50)}</td><td>${times(x.cachedSpeedup)}</td><td>${x.throughputRps.toFixed(1)}</td></tr>`).join('\n');
  const targets = input.targets.map((t) => `<tr class="${t.met ? 'met' : 'missed'}"><td>${t.met ? '✔' : '✘'}</td><td>${escape(t.name)}</td><td>${escape(t.target)}</td><td>${escape(t.actual)}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(input.title)}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1a202c;max-width:1100px}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #cbd5e0;padding:.3rem .6rem;text-align:right}
td:first-child,th:first-child{text-align:left}table.targets td,table.targets th{text-align:left}tr.met td:first-child{color:#2f855a}tr.missed td:first-child{color:#c53030}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.note{color:#4a5568;font-size:.9rem}
</style></head><body>
<h1>${escape(input.title)}</h1>
<p>${escape(input.subtitle)}</p>
<h2>Targets</h2>
<table class="targets"><tr><th></th><th>target</th><th>wanted</th><th>measured</th></tr>
${targets}
</table>
<h2>Policies side by side</h2>
<table><tr><th>policy</th><th>succeeded</th><th>hit rate</th><th>of best</th><th>turn stickiness</th><th>sessions on one pod</th><th>TTFT p50</th><th>TTFT p90</th><th>cached p50</th><th>uncached p50</th><th>speedup</th><th>req/s</th></tr>
${rows}
</table>
<div class="charts">
${charts.join('\n')}
</div>
${input.notes.map((n) => `<p class="note">${escape(n)}</p>`).join('\n')}
</body></html>
`;
}
