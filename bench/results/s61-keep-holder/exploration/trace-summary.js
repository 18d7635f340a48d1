const fs=require('fs');
const lines=fs.readFileSync(process.argv[2],'utf8').trim().split('\n').map(JSON.parse);
const t0=lines[0].t, t1=lines[lines.length-1].t; const B=8;
const buckets=Array.from({length:B},()=>({n:0,held:0,moved:0,rep:0,movedKvFull:0,gains:[],ratio:[],destKv:[],holderKv:[],cold:0}));
for (const l of lines){ const b=buckets[Math.min(B-1,Math.floor((l.t-t0)/(t1-t0+1)*B))]; b.n++;
  const h=l.p[l.holder], k=l.p[l.pick];
  if (h[0] >= l.maxU) { b.cold++; continue; }
  b.held++;
  if (k[0] > h[0]) { b.moved++; if (l.rep) b.rep++; b.gains.push(h[2]-k[2]); b.ratio.push(k[2]/h[2]); b.destKv.push(k[3]); b.holderKv.push(h[3]); if (k[3]>0.9) b.movedKvFull++; }
}
const med=a=>a.length? a.slice().sort((x,y)=>x-y)[Math.floor(a.length/2)]:NaN;
for (const b of buckets) console.log(`n ${b.n} cold ${(b.cold/b.n*100).toFixed(0)}% held ${b.held} moved ${b.moved} (${(b.moved/b.held*100).toFixed(0)}%) rep ${b.rep} kvFullDest ${b.movedKvFull} gain ${med(b.gains).toFixed(2)} ratio ${med(b.ratio).toFixed(2)} destKv ${med(b.destKv).toFixed(2)} holderKv ${med(b.holderKv).toFixed(2)}`);
