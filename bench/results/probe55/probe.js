#!/usr/bin/env node
// gen33 probe: one policy run (fresh pods + EPP/director + gateway via the bench's own startStack) of one scenario.
// Usage: node probe.js [--root <a built kvroute checkout, default this one>] --scenario rag|agent|mixed|ragsat --cap ample|tight --policy NAME --seed N
//        [--rate R] [--duration S] [--concurrency C] [--out results.jsonl] [--tag X]
// Appends one JSON line per run to --out. Plain JS; requires the built bench/dist of the copy.
'use strict';
const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');

const { values: a } = parseArgs({
  options: {
    root: { type: 'string', default: path.resolve(__dirname, '../../..') },
    scenario: { type: 'string' }, cap: { type: 'string', default: 'ample' }, policy: { type: 'string', default: 'kvroute' },
    seed: { type: 'string', default: '1' }, rate: { type: 'string' }, duration: { type: 'string', default: '25' },
    concurrency: { type: 'string', default: '24' }, out: { type: 'string', default: path.join(__dirname, 'results.jsonl') },
    tag: { type: 'string', default: '' }, blocks: { type: 'string' }, docs: { type: 'string', default: '8' }, zipf: { type: 'string', default: '0' },
    users: { type: 'string', default: '24' }, nsys: { type: 'string', default: '1' }, outtok: { type: 'string' }, onoff: { type: 'string', default: '' },
  },
});
const ROOT = a.root;
const B = (p) => require(path.join(ROOT, 'bench/dist', p));
const { startStack, DEFAULT_SIM, prefixCacheCounters, httpGet } = B('stack.js');
const { ChatClient } = B('client.js');
const { routingPolicy } = B('policies/index.js');
const { SGLANG_DEFAULTS } = B('policies/cache-aware.js');
const { simTokenizer } = B('routing-workloads.js');
const { rng, text } = B('workload.js');

const seed = Number(a.seed);
const scenario = a.scenario;
const duration = Number(a.duration);
const tok = simTokenizer();
const R = rng(seed * 7919 + 13);
const uni = (lo, hi) => lo + Math.floor(R() * (hi - lo + 1));
const expGap = (rate) => -Math.log(1 - R()) / rate * 1000;
/** Text of about `tokens` tokens (trimmed to the exact count's neighbourhood by word). */
function textTokens(tokens, prefix = '') {
  let t = prefix + text(R, Math.max(1, Math.round(tokens / 1.3)));
  // one correction step
  const n = tok.count(t);
  if (n < tokens) t += ' ' + text(R, Math.round((tokens - n) / 1.3));
  return t;
}
function zipfSampler(n, s) {
  const w = Array.from({ length: n }, (_, i) => 1 / Math.pow(i + 1, s));
  const tot = w.reduce((x, y) => x + y, 0);
  const cdf = []; let c = 0; for (const x of w) { c += x / tot; cdf.push(c); }
  return () => { const u = R(); const i = cdf.findIndex((v) => u <= v); return i < 0 ? n - 1 : i; };
}

// ---------- scenarios ----------
// Each returns { sim: {kvCacheBlocks, maxModelLen}, run(client, t0, rec) }.
const CAPS = {
  rag: { ample: 8192, tight: 768, maxModelLen: 4096 },
  ragsat: { ample: 8192, tight: 768, maxModelLen: 4096 },
  agent: { ample: 8192, tight: 1024, maxModelLen: 16384 },
  mixed: { ample: 8192, tight: 512, maxModelLen: 4096 },
  longdoc: { ample: 8192, tight: 1536, maxModelLen: 16384 },
  hotsys: { ample: 8192, tight: 1024, maxModelLen: 16384 },
  chatnosess: { ample: 8192, tight: 1024, maxModelLen: 16384 },
  llmdsp: { ample: 8192, tight: 1024, maxModelLen: 16384 },
  burst: { ample: 8192, tight: 1024, maxModelLen: 16384 },
};
// arrival times: Poisson at `rate`, or on/off bursts ('on,off' seconds; rate applies during on, 0 during off)
function arrivals(rate) {
  const ts = [];
  const [on, off] = a.onoff ? a.onoff.split(',').map(Number) : [0, 0];
  for (let t = expGap(rate); t < duration * 1000; t += expGap(rate)) {
    if (on > 0) { const cyc = (on + off) * 1000; const ph = t % cyc; if (ph >= on * 1000) { t += cyc - ph; if (t >= duration * 1000) break; } }
    ts.push(t);
  }
  return ts;
}

function ragCorpus() {
  const sys = 'You are a helpful assistant. Answer the question using only the document provided. Be concise and cite the passage you used.';
  const docs = Array.from({ length: 40 }, (_, i) => textTokens(uni(1500, 3000), `Document ${i} (seed ${seed}).\n`));
  // popularity rank -> document: a seeded shuffle so popular docs are not just the first ones
  const order = docs.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(R() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
  const zipf = zipfSampler(40, 1.1);
  const next = () => {
    const d = order[zipf()];
    return { cls: 'rag', doc: d, maxTokens: 48, messages: [{ role: 'system', content: sys }, { role: 'user', content: `${docs[d]}\n\nQuestion: ${textTokens(uni(30, 80))}?` }] };
  };
  return next;
}

async function openLoop(items, client, rec) {
  const t0 = Date.now();
  await Promise.all(items.map(async (it) => {
    const wait = t0 + it.atMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await rec(it, () => client.chat(it.messages, it.maxTokens, it.headers || {}));
  }));
}

const scenarios = {
  // Long shared documents (4-8K tokens) reused by one-off questions, no session id. --docs N, --zipf s (0 = uniform)
  longdoc: () => {
    const nd = Number(a.docs);
    const sys = 'You are a helpful assistant. Answer using only the document provided.';
    const docs = Array.from({ length: nd }, (_, i) => textTokens(uni(4000, 8000), `Document ${i} (seed ${seed}).\n`));
    const pick = Number(a.zipf) > 0 ? zipfSampler(nd, Number(a.zipf)) : () => uni(0, nd - 1);
    const items = arrivals(Number(a.rate)).map((t) => { const d = pick(); return { cls: 'doc', doc: d, atMs: t, maxTokens: 64,
      messages: [{ role: 'system', content: sys }, { role: 'user', content: `${docs[d]}\n\nQuestion: ${textTokens(uni(50, 150))}?` }] }; });
    return (client, rec) => openLoop(items, client, rec);
  },
  // One system prompt (~1,500 tokens) for all traffic, unique questions 100-300 tokens, 128 output, no session id.
  hotsys: () => {
    const syss = Array.from({ length: Number(a.nsys) }, (_, i) => textTokens(1500, `You are support assistant ${i} of ACME Corp. Policies follow.\n`));
    const items = arrivals(Number(a.rate)).map((t) => { const k = uni(0, syss.length - 1); return { cls: 'hot', doc: k, atMs: t, maxTokens: Number(a.outtok || 128),
      messages: [{ role: 'system', content: syss[k] }, { role: 'user', content: textTokens(uni(100, 300)) }] }; });
    return (client, rec) => openLoop(items, client, rec);
  },
  // Multi-turn chats WITHOUT session header: --users U concurrent users, 4 system prompts of ~600 tokens,
  // 10 turns of 50-150 tokens, 100 output, think 0.5-2 s. Users start over the first 5 s; a finished user is replaced.
  chatnosess: () => {
    const syss = Array.from({ length: 4 }, (_, i) => textTokens(600, `Assistant persona ${i}.\n`));
    const U = Number(a.users);
    let uid = 0;
    const mk = () => { const u = uid++; return { id: `u${seed}-${u}`, sys: syss[u % 4], turns: Array.from({ length: 10 }, () => textTokens(uni(50, 150), `User ${u}: `)), thinks: Array.from({ length: 10 }, () => uni(500, 2000)) }; };
    return async (client, rec) => {
      const end = Date.now() + duration * 1000;
      await Promise.all(Array.from({ length: U }, async (_, slot) => {
        await new Promise((r) => setTimeout(r, uni(0, 5000)));
        while (Date.now() < end) {
          const c = mk();
          const hist = [{ role: 'system', content: c.sys }];
          for (let k = 0; k < 10 && Date.now() < end; k++) {
            hist.push({ role: 'user', content: c.turns[k] });
            const it = { cls: k === 0 ? 'chat0' : 'chat', session: c.id, step: k, maxTokens: 100, messages: [...hist] };
            const res = await rec(it, () => client.chat(it.messages, it.maxTokens, {}));
            hist.push({ role: 'assistant', content: res.reply || '' });
            await new Promise((r) => setTimeout(r, c.thinks[k]));
          }
        }
      }));
    };
  },
  // llm-d-benchmark's shared_prefix_synthetic (inference-perf): 32 groups x 32 prompts, system 2048, question 256, output 256,
  // shuffled, Poisson at --rate, no session id.
  llmdsp: () => {
    const G = 32, P = 32;
    const prompts = [];
    for (let g = 0; g < G; g++) { const sp = textTokens(2048, `Group ${g} seed ${seed}. `); for (let p = 0; p < P; p++) prompts.push({ g, text: sp + ' ' + textTokens(256) }); }
    for (let i = prompts.length - 1; i > 0; i--) { const j = Math.floor(R() * (i + 1)); [prompts[i], prompts[j]] = [prompts[j], prompts[i]]; }
    const items = arrivals(Number(a.rate)).map((t, i) => ({ cls: 'sp', doc: prompts[i % prompts.length].g, atMs: t, maxTokens: 256,
      messages: [{ role: 'user', content: prompts[i % prompts.length].text }] }));
    return (client, rec) => openLoop(items, client, rec);
  },
  // Bursty mixed: 60% short unique prompts (100-300 tokens, 64 out), 40% one of 6 long prefixes (3,000 tokens) + question; use --onoff.
  burst: () => {
    const pre = Array.from({ length: 6 }, (_, i) => textTokens(3000, `Context pack ${i}.\n`));
    const items = arrivals(Number(a.rate)).map((t) => (R() < 0.6
      ? { cls: 'short', atMs: t, maxTokens: 64, messages: [{ role: 'user', content: textTokens(uni(100, 300), `Q${t.toFixed(2)}: `) }] }
      : (() => { const p = uni(0, 5); return { cls: 'long', doc: p, atMs: t, maxTokens: 64, messages: [{ role: 'system', content: pre[p] }, { role: 'user', content: textTokens(uni(30, 80)) }] }; })()));
    return (client, rec) => openLoop(items, client, rec);
  },
  // closed loop under whatever policy, to measure saturation throughput
  ragsat: () => {
    const next = ragCorpus();
    return async (client, rec) => {
      const end = Date.now() + duration * 1000;
      await Promise.all(Array.from({ length: Number(a.concurrency) }, async () => {
        while (Date.now() < end) { const it = next(); await rec(it, () => client.chat(it.messages, it.maxTokens, {})); }
      }));
    };
  },
  rag: () => {
    const next = ragCorpus();
    const rate = Number(a.rate);
    const items = [];
    for (let t = expGap(rate); t < duration * 1000; t += expGap(rate)) items.push({ ...next(), atMs: t });
    return (client, rec) => openLoop(items, client, rec);
  },
  agent: () => {
    const systems = Array.from({ length: 3 }, (_, i) => textTokens(800, `System prompt ${i}: you are an autonomous agent with tools.\n`));
    const sessions = Array.from({ length: 16 }, (_, s) => ({
      id: `agent-${seed}-${s}`, sys: systems[s % 3], steps: uni(12, 20), startMs: uni(0, 2000),
      task: textTokens(uni(60, 120), `Task ${s}: `),
      tools: Array.from({ length: 20 }, () => textTokens(uni(100, 400), 'Tool result: ')),
      outs: Array.from({ length: 20 }, () => uni(30, 80)), thinks: Array.from({ length: 20 }, () => uni(100, 300)),
    }));
    return async (client, rec) => {
      await Promise.all(sessions.map(async (s) => {
        await new Promise((r) => setTimeout(r, s.startMs));
        const hist = [{ role: 'system', content: s.sys }, { role: 'user', content: s.task }];
        for (let k = 0; k < s.steps; k++) {
          const it = { cls: 'agent', session: s.id, step: k, maxTokens: s.outs[k], messages: [...hist], headers: { 'x-session-id': s.id } };
          const res = await rec(it, () => client.chat(it.messages, it.maxTokens, it.headers));
          hist.push({ role: 'assistant', content: res.reply || '' });
          hist.push({ role: 'user', content: s.tools[k] });
          await new Promise((r) => setTimeout(r, s.thinks[k]));
        }
      }));
    };
  },
  mixed: () => {
    const chatSys = Array.from({ length: 2 }, (_, i) => textTokens(300, `Chat system prompt ${i}.\n`));
    const chats = Array.from({ length: 10 }, (_, c) => ({
      id: `chat-${seed}-${c}`, sys: chatSys[c % 2], startMs: uni(0, 3000),
      turns: Array.from({ length: 8 }, () => textTokens(uni(40, 80))),
    }));
    const prefixes = Array.from({ length: 4 }, (_, i) => textTokens(1200, `Shared context ${i}.\n`));
    const rate = Number(a.rate);
    const items = [];
    for (let t = expGap(rate); t < duration * 1000; t += expGap(rate)) {
      if (R() < 0.1) items.push({ cls: 'cold', atMs: t, maxTokens: 32, messages: [{ role: 'user', content: textTokens(2000, `Cold ${t.toFixed(3)}: `) }] });
      else {
        const p = uni(0, 3);
        items.push({ cls: 'shared', prefix: p, atMs: t, maxTokens: 32, messages: [{ role: 'system', content: prefixes[p] }, { role: 'user', content: textTokens(uni(30, 80)) }] });
      }
    }
    return async (client, rec) => {
      await Promise.all([
        openLoop(items, client, rec),
        ...chats.map(async (c) => {
          await new Promise((r) => setTimeout(r, c.startMs));
          const hist = [{ role: 'system', content: c.sys }];
          for (let k = 0; k < 8; k++) {
            hist.push({ role: 'user', content: c.turns[k] });
            const it = { cls: 'chat', session: c.id, step: k, maxTokens: 40, messages: [...hist], headers: { 'x-session-id': c.id } };
            const res = await rec(it, () => client.chat(it.messages, it.maxTokens, it.headers));
            hist.push({ role: 'assistant', content: res.reply || '' });
            if (k < 7) await new Promise((r) => setTimeout(r, 2000));
          }
        }),
      ]);
    };
  },
};

function pct(xs, p) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}
async function podCounter(addresses, name) {
  let v = 0;
  for (const ad of addresses) {
    try {
      const t = await httpGet(`http://${ad}/metrics`);
      for (const line of t.split('\n')) if (line.startsWith(name)) v += Number(line.trim().split(/\s+/).pop());
    } catch { /* dead pod */ }
  }
  return v;
}

async function main() {
  const caps = CAPS[scenario];
  const blocks = a.blocks ? Number(a.blocks) : caps[a.cap];
  const sim = { ...DEFAULT_SIM, kvCacheBlocks: blocks, maxModelLen: caps.maxModelLen };
  // Extra probe-only candidates: kvroute's default with one scorer weight changed (e.g. kvroute@session-load-scorer=8).
  let policy;
  if (a.policy.includes('~')) {
    // kvroute~latency-scorer.slotWait=all~@active-request-scorer=3 : several changes; '.' = plugin parameter, '@' = profile weight
    const [base, ...changes] = a.policy.split('~');
    const { validateEndpointPickerConfig } = require(path.join(ROOT, 'epp/dist/config/index.js'));
    const tweak = (c0) => {
      let c = c0;
      for (const ch of changes) {
        if (ch.startsWith('@')) {
          const [ref, w] = ch.slice(1).split('=');
          c = { ...c, schedulingProfiles: c.schedulingProfiles.map((pr) => ({ ...pr, plugins: pr.plugins.map((r) => (r.pluginRef === ref ? { ...r, weight: Number(w) } : r)) })) };
        } else {
          const tp = ch.slice(0, ch.indexOf('.')); const [param, v] = ch.slice(ch.indexOf('.') + 1).split('=');
          const val = v === 'true' ? true : v === 'false' ? false : (isNaN(Number(v)) ? v : Number(v));
          c = { ...c, plugins: c.plugins.map((pl) => (pl.type === tp ? { ...pl, parameters: { ...pl.parameters, [param]: val } } : pl)) };
        }
      }
      return validateEndpointPickerConfig(c);
    };
    policy = { ...routingPolicy(base, { seed, sglang: SGLANG_DEFAULTS }), name: a.policy.replace(/[~@.=]/g, '_'), configTransform: tweak };
  } else if (a.policy.includes('#')) {
    // kvroute#capacityFactor=2: the default config with one prefix-cache-scorer parameter changed
    const [base, change] = a.policy.split('#');
    const [param, v] = change.split('=');
    const { validateEndpointPickerConfig } = require(path.join(ROOT, 'epp/dist/config/index.js'));
    const tweak = (c) => validateEndpointPickerConfig({ ...c, plugins: c.plugins.map((pl) => (pl.type === 'prefix-cache-scorer' ? { ...pl, parameters: { ...pl.parameters, [param]: v === 'true' ? true : v === 'false' ? false : Number(v) } } : pl)) });
    policy = { ...routingPolicy(base, { seed, sglang: SGLANG_DEFAULTS }), name: a.policy.replace(/[#=]/g, '_'), configTransform: tweak };
  } else if (a.policy.includes('@')) {
    const [base, change] = a.policy.split('@');
    const [ref, w] = change.split('=');
    const { validateEndpointPickerConfig } = require(path.join(ROOT, 'epp/dist/config/index.js'));
    const reweight = (c) => validateEndpointPickerConfig({ ...c, schedulingProfiles: c.schedulingProfiles.map((pr) => ({ ...pr,
      plugins: pr.plugins.map((r) => (r.pluginRef === ref ? { ...r, weight: Number(w) } : r)) })) });
    policy = { ...routingPolicy(base, { seed, sglang: SGLANG_DEFAULTS }), name: a.policy.replace(/[@=]/g, '_'), configTransform: reweight };
  } else policy = routingPolicy(a.policy, { seed, sglang: { ...SGLANG_DEFAULTS, balanceAbsThreshold: 4 } });
  const logDir = path.join('/tmp/probe55-logs', `${scenario}-${a.cap}-${a.policy.replace(/[@#=%.~]/g, '_')}-s${seed}${a.tag ? '-' + a.tag : ''}`);
  const driver = scenarios[scenario]();
  const stack = await startStack({ pods: 4, sim, policy, logDir });
  fs.writeFileSync('/tmp/probe55-logs/current-pids', [process.pid, ...stack.pods.map((p) => p.child.pid), ...stack.epps.map((p) => p.child.pid), stack.gateway.child.pid].join(' ') + '\n');
  const client = new ChatClient(stack.gatewayUrl, sim.model, 90_000);
  const recs = [];
  const t0 = Date.now();
  const rec = async (it, send) => {
    const start = Date.now() - t0;
    const r = await send();
    recs.push({ cls: it.cls, session: it.session, step: it.step, doc: it.doc, startMs: start, ok: r.ok, status: r.status, ttft: r.ttft, e2e: r.e2e,
      servedBy: r.servedBy, prompt: r.promptTokens, cached: r.cachedTokens, error: r.ok ? undefined : (r.error || '').slice(0, 120) });
    return r;
  };
  let hung = false;
  const HARD = (duration + 120) * 1000;
  await Promise.race([driver(client, rec), new Promise((r) => setTimeout(() => { hung = true; r(); }, HARD))]);
  const wall = (Date.now() - t0) / 1000;
  const counters = await prefixCacheCounters(stack.podAddresses);
  const preempt = await podCounter(stack.podAddresses, 'vllm:num_preemptions_total');
  let eppMetrics;
  if (stack.eppPorts.length > 0) {
    try { eppMetrics = await httpGet(`http://127.0.0.1:${stack.eppPorts[0].metrics}/metrics`); } catch (e) { eppMetrics = `ERR ${e.message}`; }
    fs.writeFileSync(path.join(logDir, 'epp-metrics.txt'), eppMetrics);
  }
  client.close();
  await stack.stop();
  const summarize = (rs) => {
    const ok = rs.filter((r) => r.ok);
    const ttfts = ok.map((r) => r.ttft * 1000).filter((x) => Number.isFinite(x));
    const prompt = ok.reduce((s, r) => s + (r.prompt || 0), 0);
    const cached = ok.reduce((s, r) => s + (r.cached || 0), 0);
    return { n: rs.length, ok: ok.length, s429: rs.filter((r) => r.status === 429).length, s5xx: rs.filter((r) => r.status >= 500).length,
      other: rs.filter((r) => !r.ok && r.status !== 429 && r.status < 500).length,
      hitResp: prompt ? +(cached / prompt * 100).toFixed(1) : null, promptTokens: prompt,
      p50: pct(ttfts, 0.5), p90: pct(ttfts, 0.9), p99: pct(ttfts, 0.99) };
  };
  const perPod = {};
  stack.podAddresses.forEach((ad, i) => { perPod[i] = recs.filter((r) => r.servedBy === ad).length; });
  const byClass = {};
  for (const c of [...new Set(recs.map((r) => r.cls))]) byClass[c] = summarize(recs.filter((r) => r.cls === c));
  // session stickiness: distinct pods per session
  const sess = {};
  for (const r of recs) if (r.session) (sess[r.session] ||= new Set()).add(r.servedBy);
  const sessions = Object.values(sess);
  const out = {
    scenario, cap: a.cap, blocks, policy: a.policy, seed, rate: a.rate ? Number(a.rate) : null, tag: a.tag, wall: +wall.toFixed(1), hung,
    ...summarize(recs), reqPerSec: +(recs.filter((r) => r.ok).length / wall).toFixed(2),
    hitPods: counters.queries ? +(counters.hits / counters.queries * 100).toFixed(1) : null, lookupsPerPromptTok: +(counters.queries / Math.max(1, summarize(recs).promptTokens)).toFixed(2),
    preemptions: preempt, perPod, byClass,
    sessionsMoved: sessions.filter((s) => s.size > 1).length, sessions: sessions.length,
    errors: [...new Set(recs.filter((r) => !r.ok).map((r) => `${r.status} ${r.error}`))].slice(0, 5),
  };
  fs.appendFileSync(a.out, JSON.stringify(out) + '\n');
  fs.writeFileSync(path.join(logDir, 'records.json'), JSON.stringify(recs));
  const f = (x) => (x == null ? '-' : Math.round(x));
  console.log(`${scenario}/${a.cap}/${a.policy}/s${seed} rate=${a.rate ?? '-'} n=${out.n} ok=${out.ok} 429=${out.s429} 5xx=${out.s5xx} hitResp=${out.hitResp}% hitPods=${out.hitPods}% p50/p90/p99=${f(out.p50)}/${f(out.p90)}/${f(out.p99)} req/s=${out.reqPerSec} pre=${preempt} pods=${JSON.stringify(perPod)} moved=${out.sessionsMoved}/${out.sessions} wall=${out.wall}${hung ? ' HUNG' : ''}`);
  process.exit(0);
}
main().catch((e) => { console.error('FAILED', e); process.exit(1); });
