import { analyze, quantile } from '../src/analysis';
import type { RequestRecord } from '../src/run';
import { buildWorkload, DEFAULT_WORKLOAD } from '../src/workload';

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
    expect(r.ttftCached).toEqual({ count: 2, p50: 0.04, p90: 0.048 });
    expect(r.ttftUncached).toEqual({ count: 2, p50: 0.2, p90: 0.24 });
    expect(r.cachedSpeedup).toBeCloseTo(5);
  });

  test('failures are counted and listed', () => {
    const r = analyze('x', [rec({}), rec({ ok: false })], { hits: 0, queries: 0 }, 1, null, 1);
    expect(r.successRate).toBe(0.5);
    expect(r.failures).toHaveLength(1);
  });

  test('quantile uses the nearest rank', () => {
    expect(quantile([5, 1, 3, 2, 4], 0.5)).toBe(3);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9)).toBe(9);
    expect(quantile([], 0.5)).toBeNull();
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
