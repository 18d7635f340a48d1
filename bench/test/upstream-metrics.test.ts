/**
 * Every summarizer's numbers recomputed from the upstream benchmarks' own definitions, on the same per-request records.
 *
 * The reference below is written from upstream's source, not from kvroute's:
 * - vLLM `vllm bench serve` (vllm-project/vllm vllm/benchmarks/serve.py @ 009e6d4 `calculate_metrics`, `benchmark`):
 *   only successful requests enter TTFT, and every one of them does (a 1-token reply too); `request_throughput =
 *   completed / dur_s`, `dur_s` running from before the first arrival's delay to the last answer, in the clock the rates
 *   and latencies are read in; percentiles are `np.percentile`'s linear ones.
 * - inference-perf (kubernetes-sigs/inference-perf inference_perf/reportgen/base.py @ v0.6.1 `summarize_requests`):
 *   a successful request without content tokens has no TTFT (filtered out before the percentiles) but counts as a
 *   success; a 429 is a failure ("429 - Rate Limit", `_HTTP_CODE_LABELS`).
 * - vLLM's prefix-cache hit rate: `vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total`, in tokens.
 *
 * The benchmarks read a simulated GPU at `timeScale` simulated seconds per wall second and report TTFTs in simulated
 * time; a throughput beside them is counted in the same clock, as vLLM counts both in one.
 */
import type { ChatResult } from '../src/client';
import { analyze } from '../src/analysis';
import { summarizeBurstPolicy, summarizeBurstRound } from '../src/burst-bench';
import { summarizeHeteroRun } from '../src/hetero-bench';
import { summarizeRun } from '../src/load-ladder';
import { summarizeLoraRun, type LoraRequest } from '../src/lora-bench';
import type { RequestRecord } from '../src/run';
import { poissonArrivals } from '../src/routing-workloads';
import { rng } from '../src/workload';

/** numpy's default `percentile` (linear between the closest ranks). */
function npPercentile(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo);
}

interface Reference {
  completed: number;
  failed: number;
  rejected429: number;
  noToken: number;
  ttftP50: number | null;
  ttftP90: number | null;
  ttftP99: number | null;
  /** Completed requests per second of the clock the TTFTs are read in. */
  requestThroughput: number;
}

/** vLLM's calculate_metrics with inference-perf's rule for a success without a content token. `wallSeconds` is dur_s on the wall clock. */
function reference(results: readonly ChatResult[], wallSeconds: number, timeScale: number): Reference {
  const ok = results.filter((r) => r.ok);
  const ttfts = ok.flatMap((r) => (r.ttft === undefined ? [] : [r.ttft * timeScale]));
  const durS = wallSeconds * timeScale;
  return {
    completed: ok.length,
    failed: results.length - ok.length,
    rejected429: results.filter((r) => r.status === 429).length,
    noToken: ok.filter((r) => r.ttft === undefined).length,
    ttftP50: npPercentile(ttfts, 50),
    ttftP90: npPercentile(ttfts, 90),
    ttftP99: npPercentile(ttfts, 99),
    requestThroughput: durS > 0 ? ok.length / durS : 0,
  };
}

/** Seeded records with every edge case: 1-token replies, streams without content, failures, 429s. */
function records(n: number, seed: number): RequestRecord[] {
  const random = rng(seed);
  const pods = ['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000'];
  return Array.from({ length: n }, (_, i): RequestRecord => {
    const startedMs = i * 37;
    const kind = random();
    const e2e = 0.05 + random() * 3;
    const servedBy = pods[Math.floor(random() * pods.length)]!;
    const promptTokens = 100 + Math.floor(random() * 900);
    const cachedTokens = Math.floor(random() * promptTokens);
    let result: ChatResult;
    if (kind < 0.08) result = { ok: false, status: 429, e2e: 0.002, reply: '', error: 'saturated' };
    else if (kind < 0.14) result = { ok: false, status: 0, e2e: e2e / 2, reply: '', error: 'socket hang up' };
    else if (kind < 0.18) result = { ok: false, status: 503, e2e: 0.01, reply: '', error: 'no healthy upstream', servedBy };
    // A success whose stream carried a role chunk and usage only: no TTFT.
    else if (kind < 0.23) result = { ok: true, status: 200, e2e, reply: '', servedBy, promptTokens, cachedTokens };
    // A 1-token reply: its first token is also its last.
    else if (kind < 0.3) result = { ok: true, status: 200, ttft: e2e, e2e, reply: 'x', servedBy, promptTokens, cachedTokens };
    else result = { ok: true, status: 200, ttft: e2e * random(), e2e, reply: 'xyz', servedBy, promptTokens, cachedTokens };
    return { kind: 'rag', messages: [], headers: {}, startedMs, endedMs: startedMs + result.e2e * 1000, result };
  });
}

const close = (actual: number | null, expected: number | null) => {
  if (expected === null) expect(actual).toBeNull();
  else expect(actual).toBeCloseTo(expected, 9);
};

describe.each([1, 0.127, 2])('at time scale %p', (timeScale) => {
  const rs = records(400, 17);
  const results = rs.map((r) => r.result);
  const wallSeconds = 16.5;
  const ref = reference(results, wallSeconds, timeScale);
  const counters = { hits: 31_337, queries: 77_001 };

  test('analyze (matrix, demo): successes, TTFT percentiles, request throughput and hit rate as vLLM and inference-perf define them', () => {
    expect(ref.noToken).toBeGreaterThan(0);
    expect(ref.rejected429).toBeGreaterThan(0);
    const a = analyze('p', rs, counters, wallSeconds, null, timeScale);
    expect(a.succeeded).toBe(ref.completed);
    expect(a.requests - a.succeeded).toBe(ref.failed);
    expect(a.noToken).toBe(ref.noToken);
    close(a.ttft.p50, ref.ttftP50);
    close(a.ttft.p90, ref.ttftP90);
    close(a.throughputRps, ref.requestThroughput);
    close(a.hitRate, counters.hits / counters.queries);
  });

  test('the load ladder\'s rung: 429s apart from the other failures, TTFT p99 and throughput in one clock', () => {
    const run = summarizeRun('p', 0.8, 10, rs, counters, wallSeconds, timeScale, 3);
    expect(run.rejected429).toBe(ref.rejected429);
    expect(run.failed).toBe(ref.failed - ref.rejected429);
    expect(run.noToken).toBe(ref.noToken);
    close(run.ttftP50, ref.ttftP50);
    close(run.ttftP90, ref.ttftP90);
    close(run.ttftP99, ref.ttftP99);
    close(run.throughputRps, ref.requestThroughput);
  });

  test('hetero and LoRA: TTFT percentiles and throughput', () => {
    const pods = ['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000'];
    const h = summarizeHeteroRun('p', results, pods, [1, 1, 2], timeScale, wallSeconds);
    expect(h.ok).toBe(ref.completed);
    expect(h.errors).toBe(ref.failed);
    close(h.ttft.p50, ref.ttftP50);
    close(h.ttft.p90, ref.ttftP90);
    close(h.ttft.p99, ref.ttftP99);
    close(h.throughput, ref.requestThroughput);
    const requests = results.map((): LoraRequest => ({ adapter: 'a', atMs: 0, messages: [] }));
    const l = summarizeLoraRun('kvroute', requests, results, pods, timeScale, wallSeconds);
    expect(l.ok).toBe(ref.completed);
    close(l.ttft.p99, ref.ttftP99);
    close(l.throughput, ref.requestThroughput);
  });
});

test('an empty cell reports no percentiles and no throughput rather than zeros read as fast', () => {
  const a = analyze('p', [], { hits: 0, queries: 0 }, 0, null, 1);
  expect(a).toMatchObject({ requests: 0, succeeded: 0, throughputRps: 0, hitRate: 0 });
  expect(a.ttft.p50).toBeNull();
  expect(a.cachedSpeedup).toBeNull();
  const run = summarizeRun('p', 0.3, 1, [], { hits: 0, queries: 0 }, 0, 1, 4);
  expect(run).toMatchObject({ requests: 0, succeeded: 0, rejected429: 0, failed: 0, throughputRps: 0, keptUp: null, overloaded: false });
  expect(run.ttftP90).toBeNull();
});

test('bench:burst\'s hit rate is the whole run\'s cached tokens over its prompt tokens (inference-perf v0.6.1 summarize_prompt_token_usage, vLLM\'s token ratio), not the mean of its rounds\' rates', () => {
  const pods = ['a:1', 'b:1'];
  const reply = (promptTokens: number, cachedTokens: number): ChatResult => ({ ok: true, status: 200, servedBy: 'a:1', ttft: 0.1, e2e: 0.2, reply: 'x', promptTokens, cachedTokens });
  // Round 0: short prompts, half cached; round 1: the history makes them four times longer, nearly all cached.
  const rounds = [
    [reply(100, 50), reply(100, 50), { ok: false, status: 429, e2e: 0, reply: '' }],
    [reply(400, 390), reply(400, 390), reply(400, 0)],
  ].map((results) => summarizeBurstRound(results, pods, 1));
  const sent = [[100, 50], [100, 50], [400, 390], [400, 390], [400, 0]];
  const whole = sent.reduce((t, [, c]) => t + c!, 0) / sent.reduce((t, [p]) => t + p!, 0);
  const result = summarizeBurstPolicy('p', [{ seed: 1, rounds }], 2);
  expect(result.hitRate).toBeCloseTo(whole, 12);
});

test('Poisson arrivals as vLLM get_request draws them at burstiness 1: exponential gaps of mean 1/rate, summed, the first after its own gap, rescaled so the last is at n / rate', () => {
  // vllm/benchmarks/serve.py @ 009e6d4 get_request: delay_ts = cumsum(gamma(shape=1, scale=1/rate)), then × (n/rate) / delay_ts[-1].
  const n = 500;
  const rate = 7.5;
  const random = rng(3);
  const delays: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) delays.push((t += -Math.log(1 - random()) / rate));
  const expected = delays.map((d) => (d * (n / rate)) / delays[n - 1]! * 1000);
  const got = poissonArrivals(n, rate, 3);
  got.forEach((ms, i) => expect(ms).toBeCloseTo(expected[i]!, 6));
  expect(got[0]).toBeGreaterThan(0);
  // The labelled rate: n arrivals over n / rate seconds, a mean gap of 1 / rate.
  expect(got[n - 1]! / 1000).toBeCloseTo(n / rate, 9);
  expect((got[n - 1]! - 0) / n / 1000).toBeCloseTo(1 / rate, 9);
});
