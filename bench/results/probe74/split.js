const r = require(process.argv[2]); r.sort((a, b) => a.startMs - b.startMs);
const pods = [...new Set(r.map((x) => x.servedBy))].sort();
const pct=(xs,p)=>{const s=[...xs].sort((a,b)=>a-b);return s.length?s[Math.min(s.length-1,Math.ceil(p*s.length)-1)]:null};
const full=[],free=[];
for (const x of r) {
  const inf = pods.map((p) => r.filter((y) => y.servedBy === p && y.startMs < x.startMs && y.startMs + y.e2e * 1000 > x.startMs).length);
  const mine = inf[pods.indexOf(x.servedBy)];
  (mine>=16?full:free).push(x.ttft*1000);
}
console.log(`free n=${free.length} p50=${pct(free,.5)?.toFixed(0)} p90=${pct(free,.9)?.toFixed(0)} | full n=${full.length} p50=${pct(full,.5)?.toFixed(0)} p90=${pct(full,.9)?.toFixed(0)}`);
