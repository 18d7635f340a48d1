// For each request: in-flight count on the chosen pod vs the least-loaded pod at its start (from records: startMs, e2e).
const r = require(process.argv[2]); r.sort((a, b) => a.startMs - b.startMs);
const pods = [...new Set(r.map((x) => x.servedBy))].sort();
let over16 = 0, gap = 0, n = 0; const hist = {};
for (const x of r) {
  const inf = pods.map((p) => r.filter((y) => y.servedBy === p && y.startMs < x.startMs && y.startMs + y.e2e * 1000 > x.startMs).length);
  const mine = inf[pods.indexOf(x.servedBy)], min = Math.min(...inf);
  if (mine >= 16) over16++;
  gap += mine - min; n++;
  const k = Math.min(mine - min, 10); hist[k] = (hist[k] || 0) + 1;
}
console.log(`requests=${n} chosen pod already had >=16 in flight: ${over16} (${(100 * over16 / n).toFixed(1)}%); mean (chosen - least) in-flight gap ${(gap / n).toFixed(2)}; hist gap->count ${JSON.stringify(hist)}`);
