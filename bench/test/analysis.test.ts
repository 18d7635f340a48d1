import { analyze, quantile } from '../src/analysis';
import { recountLine, type CellReport, type RunRecord } from '../src/routing-report';
import type { RequestRecord } from '../src/run';
import { buildWorkload, DEFAULT_WORKLOAD } from '../src/workload';
import { ChatClient } from '../src/client';
import { startSimulator } from '@kvroute/sim';

/** numpy.percentile(values, 100 q) with its default method ('linear'), written out independently of quantile(). */
function numpyPercentile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

function rec(partial: Partial<RequestRecord> & { servedBy?: string; ttft?: number; prompt?: number; cached?: number; ok?: boolean }): RequestRecord {
  return {
    kind: partial.kind ?? 'chat',
    sessionId: partial.sessionId,
    turn: partial.turn,
    messages: [],
    headers: {},
    startedMs: partial.startedMs ?? 0,
    endedMs: partial.endedMs ?? 1,
    result: {
      ok: partial.ok ?? true, status: partial.ok === false ? 0 : 200, servedBy: partial.servedBy, ttft: partial.ttft ?? 0.1,
      e2e: 1, reply: '', promptTokens: partial.prompt ?? 100, cachedTokens: partial.cached ?? 0,
    },
  };
}

describe('analysis of a run', () => {
  test('stickiness counts turns on the session\'s first pod and sessions that never moved', () => {
    const records = [
      rec({ sessionId: 'a', turn: 0, servedBy: 'p1' }), rec({ sessionId: 'a', turn: 1, servedBy: 'p1' }), rec({ sessionId: 'a', turn: 2, servedBy: 'p1' }),
      rec({ sessionId: 'b', turn: 0, servedBy: 'p2' }), rec({ sessionId: 'b', turn: 1, servedBy: 'p3' }), rec({ sessionId: 'b', turn: 2, servedBy: 'p3' }),
      rec({ kind: 'rag', servedBy: 'p4' }),
    ];
    const r = analyze('x', records, { hits: 30, queries: 100 }, 2, 0.6, 1);
    expect(r.requestStickiness).toBeCloseTo(4 / 6);
    expect(r.sessionsOnOnePod).toBe(0.5);
    expect(r.sessionMoves).toEqual({ b: 1 });
    expect(r.hitRate).toBe(0.3);
    expect(r.hitRateOfBest).toBeCloseTo(0.5);
    expect(r.perEndpoint).toEqual({ p1: 3, p2: 1, p3: 2, p4: 1 });
  });

  test('TTFT is split by the cached share of the prompt and scaled back to simulated time', () => {
    const records = [
      rec({ ttft: 0.01, prompt: 1000, cached: 900 }), rec({ ttft: 0.012, prompt: 1000, cached: 800 }),
      rec({ ttft: 0.05, prompt: 1000, cached: 0 }), rec({ ttft: 0.06, prompt: 1000, cached: 50 }),
      rec({ ttft: 0.03, prompt: 1000, cached: 300 }),
    ];
    const r = analyze('x', records, { hits: 0, queries: 0 }, 1, null, 4);
    // Linear between the two (numpy's percentile): p50 is their mean, p90 nine tenths of the way up.
    expect(r.ttftCached.count).toBe(2);
    expect(r.ttftCached.p50).toBeCloseTo(0.044, 12);
    expect(r.ttftCached.p90).toBeCloseTo(0.0472, 12);
    expect(r.ttftUncached.count).toBe(2);
    expect(r.ttftUncached.p50).toBeCloseTo(0.22, 12);
    expect(r.ttftUncached.p90).toBeCloseTo(0.236, 12);
    expect(r.cachedSpeedup).toBeCloseTo(5);
  });

  test('the hit rate the responses report beside the pods\' counters: vLLM 0.10 looks a blocked or preempted request up again at every step (scheduler.py @ v0.10.0)', () => {
    // Two requests of 1,000 prompt tokens, 500 and 700 cached as their responses say; the pods counted the second one's
    // lookup four times over (preempted), all of it missing but for the cached part the last time.
    const records = [rec({ prompt: 1000, cached: 500 }), rec({ prompt: 1000, cached: 700 }), rec({ ok: false, prompt: 1000, cached: 0 })];
    const r = analyze('x', records, { hits: 1200, queries: 5000 }, 1, null, 1);
    expect(r.hitRate).toBeCloseTo(0.24);
    expect(r.servedHitRate).toBeCloseTo(0.6);
    expect(r.lookupsPerPromptToken).toBeCloseTo(2.5);
    // No response reports cached tokens: no served rate.
    const bare = { ...rec({}), result: { ...rec({}).result, cachedTokens: undefined } };
    expect(analyze('x', [bare], { hits: 0, queries: 100 }, 1, null, 1).servedHitRate).toBeNull();
  });

  test('a cell whose pods recounted lookups says so, with the responses\' hit rate; one without says nothing', () => {
    const run = (policy: string, hitRate: number, servedHitRate: number | null, lookupsPerPromptToken: number | null): RunRecord => ({
      policy, repeat: 0, requests: 10, succeeded: 10, hitRate, servedHitRate, lookupsPerPromptToken, ttftP50: 0.1, ttftP90: 0.2,
      throughputRps: 1, wallSeconds: 10, balance: 1, perEndpoint: {}, failures: [],
    });
    const cell = (runs: RunRecord[]) => ({ runs } as unknown as CellReport);
    expect(recountLine(cell([run('kvroute-precise', 0.621, 0.557, 8.8), run('kvroute', 0.939, 0.93, 1.0)])))
      .toBe('hit rate recounted by the pods (blocked or preempted requests looked up again) — kvroute-precise: pods 62.1%, responses 55.7% (8.8 lookups per prompt token)');
    expect(recountLine(cell([run('kvroute', 0.939, 0.93, 1.01), run('old', 0.5, null, null)]))).toBeUndefined();
  });

  test('failures are counted and listed', () => {
    const r = analyze('x', [rec({}), rec({ ok: false })], { hits: 0, queries: 0 }, 1, null, 1);
    expect(r.successRate).toBe(0.5);
    expect(r.failures).toHaveLength(1);
  });

  // vLLM vllm/benchmarks/serve.py @ 009e6d4 calculate_metrics (np.percentile, np.median) and inference-perf
  // inference_perf/reportgen/base.py @ 3788ed5 summarize (np.percentile): numpy's default, linear between the two
  // closest ranks.
  test('quantile is numpy\'s percentile (linear), as vLLM serve.py calculate_metrics and inference-perf reportgen summarize report', () => {
    // Four uncached TTFTs (a cached/uncached split of a short run often has this few): numpy's median is 475 ms.
    expect(quantile([0.4, 0.45, 0.5, 0.52], 0.5)).toBeCloseTo(numpyPercentile([0.4, 0.45, 0.5, 0.52], 0.5), 9);
    expect(quantile([0.4, 0.45, 0.5, 0.52], 0.5)).toBeCloseTo(0.475, 9);
    const ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(quantile(ten, 0.9)).toBeCloseTo(numpyPercentile(ten, 0.9), 9);
    expect(quantile(ten, 0.9)).toBeCloseTo(9.1, 9);
    expect(quantile([5, 1, 3, 2, 4], 0.5)).toBe(3);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNull();
  });

  test('analyze(): TTFT p50 / p90 are numpy\'s percentile over the successful requests, timed over HTTP from a simulated pod', async () => {
    const pod = await startSimulator({ host: '127.0.0.1', port: 0, model: 'm', itlMs: 5 });
    try {
      const client = new ChatClient(pod.url, 'm');
      const results = [];
      for (let i = 0; i < 6; i++) results.push(await client.chat([{ role: 'user', content: `q${i} ${'word '.repeat(20 * (i + 1))}` }], 2));
      client.close();
      const records: RequestRecord[] = results.map((result, i) => ({ kind: 'rag', document: i, messages: [], headers: {}, startedMs: 0, endedMs: 1, result }));
      const r = analyze('x', records, { hits: 0, queries: 0 }, 1, null, 1);
      const ttfts = results.map((x) => x.ttft!);
      expect(r.ttft.p50).toBeCloseTo(numpyPercentile(ttfts, 0.5), 9);
      expect(r.ttft.p90).toBeCloseTo(numpyPercentile(ttfts, 0.9), 9);
    } finally {
      await pod.close();
    }
  });
});

describe('workloads', () => {
  test('are deterministic from the seed, and sessions share system prompts', () => {
    const a = buildWorkload(DEFAULT_WORKLOAD);
    const b = buildWorkload(DEFAULT_WORKLOAD);
    expect(a).toEqual(b);
    expect(buildWorkload({ ...DEFAULT_WORKLOAD, seed: 8 }).sessions[0].system).not.toBe(a.sessions[0].system);
    expect(new Set(a.sessions.map((s) => s.system)).size).toBe(DEFAULT_WORKLOAD.systemPrompts);
    expect(new Set(a.sessions.map((s) => s.sessionId)).size).toBe(DEFAULT_WORKLOAD.sessions);
    expect(a.totalRequests).toBe(DEFAULT_WORKLOAD.sessions * DEFAULT_WORKLOAD.turnsPerSession + DEFAULT_WORKLOAD.ragRequests);
  });
});
