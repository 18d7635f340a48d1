#!/usr/bin/env node
// Session 60: how often a policy sends a request to a pod that got another one shortly before, from the probe's
// per-request records (../probe55/run.sh writes them to /tmp/probe55-logs/<run>/records.json).
// usage: node collisions.js <records.json or its run folder>...   (WINDOW_MS, default 60; WARM_MS, default 3000)
// Per run, over the requests that succeeded after the first WARM_MS: how many landed on a pod with an arrival in the
// last WINDOW_MS ("after another"), how many of those while some other pod had none ("another was free"), and TTFT
// p50 / p90 with and without such an arrival.
const fs = require('fs');
const path = require('path');
const windowMs = Number(process.env.WINDOW_MS ?? 60);
const warmMs = Number(process.env.WARM_MS ?? 3000);
const quantile = (xs, q) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(q * (s.length - 1))];
};
for (const arg of process.argv.slice(2)) {
  const file = fs.statSync(arg).isDirectory() ? path.join(arg, 'records.json') : arg;
  const records = JSON.parse(fs.readFileSync(file, 'utf8')).filter((r) => r.ok).sort((a, b) => a.startMs - b.startMs);
  const pods = [...new Set(records.map((r) => r.servedBy))];
  const lastArrival = new Map();
  let after = 0;
  let free = 0;
  const ttft = { after: [], alone: [] };
  for (const r of records) {
    const recent = (pod) => lastArrival.has(pod) && r.startMs - lastArrival.get(pod) < windowMs;
    if (r.startMs >= warmMs) {
      const hit = recent(r.servedBy);
      if (hit) {
        after++;
        if (pods.some((p) => !recent(p))) free++;
      }
      (hit ? ttft.after : ttft.alone).push(r.ttft * 1000);
    }
    lastArrival.set(r.servedBy, r.startMs);
  }
  const n = ttft.after.length + ttft.alone.length;
  const fmt = (xs) => `${quantile(xs, 0.5).toFixed(0)} / ${quantile(xs, 0.9).toFixed(0)} ms (${xs.length})`;
  console.log(`${arg}: ${n} requests; after another within ${windowMs} ms: ${after} (${free} while another pod was free); `
    + `TTFT p50 / p90 after another ${fmt(ttft.after)}, otherwise ${fmt(ttft.alone)}`);
}
