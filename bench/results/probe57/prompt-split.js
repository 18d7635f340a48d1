// Which pods served each prompt (the probe's `doc`: the hot system prompt's index) and when first, then every request
// slower than a threshold: its start (s from the first request), prompt, pod, TTFT, the client's count of requests in
// flight on each pod at its start, and of those carrying the same prompt (from records.json; session 57).
// usage: node prompt-split.js <records.json> [threshold ms, default 400]
const r = require(require('path').resolve(process.argv[2])); r.sort((a, b) => a.startMs - b.startMs);
const threshold = Number(process.argv[3] ?? 400) / 1000;
const pods = [...new Set(r.map((x) => x.servedBy))].sort(); const t0 = r[0].startMs;
const first = {};
for (const x of r) { const k = `pod ${pods.indexOf(x.servedBy)} / prompt ${x.doc}`; if (!(k in first)) first[k] = `${((x.startMs - t0) / 1000).toFixed(1)} s`; }
console.log('first served:', first);
const running = (x, same) => pods.map((p) => r.filter((y) => y.servedBy === p && (!same || y.doc === x.doc) && y.startMs < x.startMs && y.startMs + y.e2e * 1000 > x.startMs).length).join(',');
for (const x of r) {
  if (x.ttft < threshold) continue;
  console.log(`${((x.startMs - t0) / 1000).toFixed(2)} s prompt ${x.doc} pod ${pods.indexOf(x.servedBy)} ttft ${Math.round(x.ttft * 1000)} ms cached ${x.cached}/${x.prompt} in flight ${running(x, false)} same prompt ${running(x, true)}`);
}
