// Summarize results.jsonl into markdown tables: one row per scenario×cap×load×policy, mean over seeds (n = runs).
const fs = require('fs');
const rows = fs.readFileSync(process.argv[2] || '/work/briefs/gen33-repro/results.jsonl', 'utf8').trim().split('\n').map(JSON.parse);
const key = (r) => `${r.scenario}|${r.cap}|${r.tag || ''}|${r.rate ?? ''}`;
const cells = new Map();
for (const r of rows) { const k = key(r); if (!cells.has(k)) cells.set(k, new Map()); const m = cells.get(k); (m.get(r.policy) || m.set(r.policy, []).get(r.policy)).push(r); }
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f0 = (x) => (x == null || Number.isNaN(x) ? '-' : Math.round(x));
const f1 = (x) => (x == null || Number.isNaN(x) ? '-' : x.toFixed(1));
for (const [k, m] of cells) {
  const [sc, cap, tag, rate] = k.split('|');
  const any = [...m.values()][0][0];
  console.log(`\n### ${sc} × ${cap} (${any.blocks} blocks/pod)${tag ? ' ' + tag : ''}${rate ? ' rate ' + rate + ' req/s' : ''}\n`);
  const classes = [...new Set([...m.values()].flat().flatMap((r) => Object.keys(r.byClass || {})))];
  const extra = classes.length > 1 ? classes.map((c) => ` ${c} hit / p90`).join(' |') + ' |' : '';
  console.log(`| policy | runs | hit (resp) | hit (pods) | TTFT p50 | p90 | p99 | per-seed p90 | per-seed hit | 429 | 5xx/err | preempt | req/pod (seed 1) | sessions moved |${extra}`);
  console.log('|' + ' --- |'.repeat(14 + (classes.length > 1 ? classes.length : 0)));
  for (const [p, rs] of m) {
    const cls = classes.length > 1 ? classes.map((c) => ` ${f1(mean(rs.map((r) => r.byClass[c]?.hitResp ?? NaN)))}% / ${f0(mean(rs.map((r) => r.byClass[c]?.p90 ?? NaN)))} |`).join('') : '';
    const s1 = rs.find((r) => r.seed === 1) || rs[0];
    console.log(`| ${p} | ${rs.length} | ${f1(mean(rs.map((r) => r.hitResp)))}% | ${f1(mean(rs.map((r) => r.hitPods)))}% | ${f0(mean(rs.map((r) => r.p50)))} | ${f0(mean(rs.map((r) => r.p90)))} | ${f0(mean(rs.map((r) => r.p99)))} | ${rs.map((r) => f0(r.p90)).join(' / ')} | ${rs.map((r) => f1(r.hitResp)).join(' / ')} | ${rs.reduce((a, r) => a + r.s429, 0)} | ${rs.reduce((a, r) => a + r.s5xx + r.other, 0)}${rs.some((r) => r.hung) ? ' HUNG' : ''} | ${rs.reduce((a, r) => a + r.preemptions, 0)} | ${Object.values(s1.perPod).join('/')} | ${s1.sessions ? rs.map((r) => `${r.sessionsMoved}/${r.sessions}`).join(' ') : '-'} |${cls}`);
  }
}
