// Per 2 s window from the first request: the mean gap between the in-flight count of the pod each request went to and
// the least loaded pod's at its start (client-side, from records.json), and the window's TTFT p50 / p90 in ms.
// usage: node inflight-gap.js <records.json>
const r = require(require('path').resolve(process.argv[2])); r.sort((a, b) => a.startMs - b.startMs);
const pods = [...new Set(r.map((x) => x.servedBy))].sort(); const t0=r[0].startMs; const bins={};
for (const x of r) {
  const inf = pods.map((p) => r.filter((y) => y.servedBy === p && y.startMs < x.startMs && y.startMs + y.e2e * 1000 > x.startMs).length);
  const mine = inf[pods.indexOf(x.servedBy)], min = Math.min(...inf);
  const k=Math.floor((x.startMs-t0)/2000)*2; const b=(bins[k]=bins[k]||{n:0,gap:0,ttft:[]}); b.n++; b.gap+=mine-min; b.ttft.push(x.ttft*1000);
}
console.log(Object.entries(bins).map(([k,b])=>{const a=b.ttft.sort((p,q)=>p-q);return `${k}s gap${(b.gap/b.n).toFixed(1)} p50 ${Math.round(a[a.length>>1])} p90 ${Math.round(a[Math.floor(a.length*.9)])}`}).join(' | '));
