import { startSimulator } from '@kvroute/sim';
import {
  idealSaturation, planRamp, preciseGoals, rampArrivals, stageResults, UPSTREAM_RAMP, type PoolCapacity, type RampStage,
} from '../src/poisson-ramp';
import { measureWorkload, type BenchWorkload, type TokenizerLike } from '../src/routing-workloads';
import { runWorkload, type RequestRecord } from '../src/run';
import { DEFAULT_SIM } from '../src/stack';
import { rng, type ChatMessage, type RagPlan, type Workload } from '../src/workload';

/** One token per character of the message contents; replies are n × token 1. */
const charTokenizer: TokenizerLike = {
  count: (t) => t.length,
  chatTokens: (messages) => Array.from(messages.map((m) => m.content).join(''), (c) => c.charCodeAt(0)),
  reply: (n) => ({ ids: Array(n).fill(1), text: 'x'.repeat(n) }),
};

function groupsWorkload(order: readonly [number, string][], maxTokens: number): BenchWorkload {
  const byText = new Map<string, ChatMessage[]>();
  const requests = order.map(([g, q]) => {
    const key = `${g}/${q}`;
    if (!byText.has(key)) byText.set(key, [{ role: 'system', content: String.fromCharCode(65 + g).repeat(8) }, { role: 'user', content: q }]);
    return byText.get(key)!;
  });
  return {
    name: 'poisson-groups',
    kind: 'shared-prefix',
    description: 'hand-made',
    workload: {
      options: { seed: 0, systemPrompts: 0, systemPromptWords: 0, sessions: 0, turnsPerSession: 0, userWords: 0, maxTokens, documents: 0, documentWords: 0, ragRequests: 0, questionWords: 0 },
      sessions: [],
      rag: [],
      totalRequests: requests.length,
    },
    groups: { G: Math.max(...order.map(([g]) => g)) + 1, P: 2 },
    requests,
    groupOf: order.map(([g]) => g),
  };
}

describe('llm-d\'s ramp (guide_precise-prefix-cache-routing_1)', () => {
  test('upstream\'s stages: a warm-up at 15 QPS, then 3 → 60 QPS in 16 steps, as fractions of the top', () => {
    expect(UPSTREAM_RAMP).toHaveLength(17);
    expect(UPSTREAM_RAMP[0]).toEqual({ fraction: 0.25, upstreamSeconds: 50, warmUp: true });
    expect(UPSTREAM_RAMP[1]!.fraction).toBeCloseTo(0.05, 12);
    expect(UPSTREAM_RAMP[16]).toEqual({ fraction: 1, upstreamSeconds: 25 });
    // Upstream offers 750 + 16,334 requests over 502 s.
    expect(UPSTREAM_RAMP.reduce((a, s) => a + s.fraction * 60 * s.upstreamSeconds, 0)).toBeCloseTo(17_084, 6);
  });

  // inference-perf inference_perf/loadgen/load_generator.py @ 3788ed5 run_stage: num_requests = int(rate * duration).
  test('arrivals: int(rate × duration) in each stage, Poisson at the stage\'s rate from its start, deterministic from the seed', () => {
    const stages: RampStage[] = [{ fraction: 0.1, upstreamSeconds: 100 }, { fraction: 1, upstreamSeconds: 100 }];
    const a = rampArrivals(22_000, stages, rng(3));
    // Scaled so that rate × duration adds up to n: 0.1·100 + 1·100 = 110 at scale 1 → ×200, stages of 20,000 s.
    expect(a.stageSeconds[0]).toBeCloseTo(20_000, 6);
    expect(a.gapSeconds).toBeCloseTo(200, 6);
    expect(a.stageOfRequest.filter((x) => x === 0)).toHaveLength(2_000);
    expect(a.stageOfRequest.filter((x) => x === 1)).toHaveLength(20_000);
    expect(a.stageOfRequest.every((x, i) => i === 0 || x >= a.stageOfRequest[i - 1]!)).toBe(true);
    // Within a stage, in order from its start at its rate: 2,000 at 0.1 span about 20,000 s (± 3·√2,000 gaps of 10 s).
    const first = a.unitSeconds.slice(0, 2_000);
    expect(first.every((t, i) => t > 0 && (i === 0 || t >= first[i - 1]!))).toBe(true);
    expect(Math.abs(first[1_999]! - 20_000)).toBeLessThan(3 * Math.sqrt(2_000) * 10);
    expect(a.unitSeconds[2_000]).toBeLessThan(first[1_999]!);
    expect(rampArrivals(50, stages, rng(3))).toEqual(rampArrivals(50, stages, rng(3)));
    expect(rampArrivals(50, stages, rng(4)).unitSeconds).not.toEqual(rampArrivals(50, stages, rng(3)).unitSeconds);
    expect(() => rampArrivals(0, stages, rng(1))).toThrow(/positive whole number of requests/);
  });

  test('each stage offers int(rate × duration) requests: the 60 QPS top is not cut short (routing-bench\'s default: seed 7, 1,920 requests)', () => {
    const n = 1920;
    const { stageOfRequest } = rampArrivals(n, UPSTREAM_RAMP, rng(7 * 7919 + 5));
    const counts = UPSTREAM_RAMP.map((_, i) => stageOfRequest.filter((x) => x === i).length);
    const scale = n / UPSTREAM_RAMP.reduce((a, s) => a + s.fraction * s.upstreamSeconds, 0);
    UPSTREAM_RAMP.forEach((s, i) => expect(counts[i]).toBe(Math.floor(s.fraction * s.upstreamSeconds * scale)));
    // The one continuous stream this replaced left the top stage 104 of its 168.
    expect(counts[16]).toBe(168);
    expect(stageOfRequest.length).toBeLessThanOrEqual(n);
    expect(stageOfRequest.length).toBeGreaterThan(n - UPSTREAM_RAMP.length);
  });

  test('the plan puts the top at the pool\'s capacity and slows simulated time to keep the top within the wall budget', () => {
    const arrivals = rampArrivals(1000, UPSTREAM_RAMP, rng(1));
    const capacity: PoolCapacity = { topRps: 180, hitRate: 0.9, depthPerPod: 32, completions: 100, seconds: 1 };
    const plan = planRamp(arrivals, UPSTREAM_RAMP, capacity, 1, 24);
    expect(plan.timeScale).toBeCloseTo(24 / capacity.topRps, 12);
    expect(plan.stages[16]!.rateRps).toBeCloseTo(capacity.topRps, 12);
    expect(plan.stages[1]!.rateRps).toBeCloseTo(0.05 * capacity.topRps, 12);
    expect(plan.stages.reduce((a, st) => a + st.requests, 0)).toBe(arrivals.unitSeconds.length);
    // Wall-clock arrivals from the stage's start: unit seconds / top (simulated seconds) / time scale; the pause too.
    expect(plan.arrivalsMs[10]).toBeCloseTo((arrivals.unitSeconds[10]! / capacity.topRps) * 1000 / plan.timeScale, 9);
    expect(plan.stageGapMs).toBeCloseTo((arrivals.gapSeconds / capacity.topRps) * 1000 / plan.timeScale, 9);
    expect(plan.stageOfRequest[0]).toBe(0);
    expect(plan.stageOfRequest[plan.stageOfRequest.length - 1]).toBe(16);
    // A pool the machine can drive in real time keeps the configured time scale.
    expect(planRamp(arrivals, UPSTREAM_RAMP, capacity, 1, 10_000).timeScale).toBe(1);
  });

  // inference-perf load_generator.py @ 3788ed5: run_stage waits `while finished_requests_counter.value < num_requests`,
  // then mp_run sleeps `self.stageInterval` before the next stage.
  test('a stage starts once the previous stage\'s requests have all finished and the pause has passed: no backlog carried over', async () => {
    // One sequence slot, 3 tokens × 100 ms each: the pod serves about 3 requests/s; the ramp offers 20/s.
    const pod = await startSimulator({ host: '127.0.0.1', port: 0, model: 'm', itlMs: 100, maxNumSeqs: 1, ttftOverheadMs: 0, prefillMsPerToken: 0 });
    try {
      const stages = [{ fraction: 1, upstreamSeconds: 1 }, { fraction: 1, upstreamSeconds: 1 }];
      const arrivals = rampArrivals(12, stages, rng(1));
      const plan = planRamp(arrivals, stages, { topRps: 20, hitRate: 0, depthPerPod: 1, completions: 1, seconds: 1 }, 1, 100);
      expect(plan.stages.map((st) => st.requests)).toEqual([6, 6]);
      const singles: Workload = {
        options: { seed: 0, systemPrompts: 0, systemPromptWords: 0, sessions: 0, turnsPerSession: 0, userWords: 0, maxTokens: 3, documents: 0, documentWords: 0, ragRequests: 12, questionWords: 0 },
        sessions: [],
        rag: Array.from({ length: 12 }, (_, i): RagPlan => ({ kind: 'rag', document: i, messages: [{ role: 'user', content: `Question ${i}` }] })),
        totalRequests: 12,
      };
      const outcome = await runWorkload(singles, {
        gatewayUrl: pod.url, model: 'm', concurrency: 1, arrivalsMs: plan.arrivalsMs, stages: { ofRequest: plan.stageOfRequest, gapMs: plan.stageGapMs },
      });
      expect(outcome.records.every((r) => r.result.ok)).toBe(true);
      expect(outcome.records.map((r) => r.stage)).toEqual(outcome.records.map((r) => plan.stageOfRequest[r.document!]));
      const firstEnded = Math.max(...outcome.records.filter((r) => r.stage === 0).map((r) => r.endedMs));
      const secondSent = Math.min(...outcome.records.filter((r) => r.stage === 1).map((r) => r.startedMs));
      // Upstream's 1 s pause scaled as its 1 s stages are: 6 unit seconds at a top of 20/s, 300 ms (timers may fire a
      // millisecond early).
      expect(plan.stageGapMs).toBeCloseTo(300, 9);
      expect(secondSent).toBeGreaterThanOrEqual(firstEnded + 299);
    } finally {
      await pod.close();
    }
  });
});

describe('the pool\'s capacity: saturation under the ideal static placement, the simulator\'s engine in virtual time', () => {
  // Four groups of 8-token system prompts, 3 questions each, 5 passes; blocks of 4 tokens, 10-token replies.
  const order: [number, string][] = [];
  for (let pass = 0; pass < 5; pass++) for (const q of ['q1', 'q2', 'q3']) for (let g = 0; g < 4; g++) order.push([g, q]);
  const w = groupsWorkload(order, 10);
  const sim = { ...DEFAULT_SIM, blockSize: 4, maxNumSeqs: 2, kvCacheBlocks: 400 };

  test('with room for everything, the slots bind: pods × max-num-seqs per request\'s time, and every repeat hits', () => {
    const c = idealSaturation(w, charTokenizer, sim, 1, 2);
    // A request holds a slot for about the overhead, a few tokens of prefill and nine more tokens after its first:
    // 20 + ~2 + 9 × 20 ms; the prefill lane (≤ 2.5 ms a request) is nowhere near busy.
    const slotBound = (2 * 2 * 1000) / (20 + 9 * 20);
    expect(c.topRps).toBeGreaterThan(0.9 * slotBound);
    expect(c.topRps).toBeLessThan(1.15 * slotBound);
    expect(c.hitRate).toBeCloseTo(measureWorkload(w, charTokenizer, 4).replayHitRate, 1);
    expect(c.depthPerPod).toBe(4);
    expect(idealSaturation(w, charTokenizer, sim, 1, 2)).toEqual(c);
  });

  test('a KV cache that cannot hold the running sequences beside the prefixes serves fewer requests and hits less', () => {
    const roomy = idealSaturation(w, charTokenizer, sim, 1, 2);
    // 7 blocks: one running sequence of 5 blocks at a time, and little room left for the other groups' prefixes.
    const tight = idealSaturation(w, charTokenizer, { ...sim, kvCacheBlocks: 7 }, 1, 2);
    expect(tight.topRps).toBeLessThan(0.7 * roomy.topRps);
    expect(tight.hitRate).toBeLessThan(roomy.hitRate);
  });
});

describe('per-stage results and the goals', () => {
  test('a request belongs to the stage it was sent in', () => {
    const stages: RampStage[] = [{ fraction: 0.5, upstreamSeconds: 1 }, { fraction: 1, upstreamSeconds: 1 }];
    const capacity: PoolCapacity = { topRps: 3, hitRate: 0, depthPerPod: 1, completions: 10, seconds: 1 };
    const plan = planRamp(rampArrivals(6, stages, rng(1)), stages, capacity, 1, 1e9);
    const rec = (stage: number, ttft: number, ok = true): RequestRecord => ({
      kind: 'rag', stage, messages: [], headers: {}, startedMs: 0, endedMs: 1,
      result: { ok, status: ok ? 200 : 503, ttft, e2e: ttft } as unknown as RequestRecord['result'],
    });
    const r = stageResults(plan, [rec(0, 0.1), rec(0, 0.3), rec(1, 2), rec(1, 4, false)]);
    expect(r.map((s) => s.requests)).toEqual([2, 2]);
    expect(r.map((s) => s.succeeded)).toEqual([2, 1]);
    // numpy's percentile: linear between 0.1 and 0.3 s; the failed request counts the 1 ms it waited.
    expect(r[0]!.ttftP90).toBeCloseTo(0.28, 12);
    expect(r[1]!.ttftP90).toBeCloseTo(0.001 + 0.9 * (2 - 0.001), 12);
  });

  test('issue 8: precise within 95% of the best hit rate, p90 at least 3× better than approximate kvroute and sglang', () => {
    const row = (policy: string, hitRate: number, ttftP90: number) => ({ policy, hitRate, ttftP90 });
    const met = preciseGoals([row('kvroute-precise', 0.9, 0.5), row('kvroute', 0.6, 2), row('approx-prefix', 0.7, 1), row('sglang', 0.7, 1.5)], 0.94)!;
    expect(met.hitRateOfBest).toBeCloseTo(0.9 / 0.94, 12);
    expect(met.hitRateGoalMet).toBe(true);
    expect(met.p90VsApproximate).toBeCloseTo(4, 12);
    expect(met.p90VsApproxPrefix).toBeCloseTo(2, 12);
    expect(met.p90VsSglang).toBeCloseTo(3, 12);
    expect(met.p90GoalMet).toBe(true);
    const notMet = preciseGoals([row('kvroute-precise', 0.8, 0.5), row('kvroute', 0.6, 2), row('sglang', 0.7, 1.4)], 0.94)!;
    expect(notMet.hitRateGoalMet).toBe(false);
    expect(notMet.p90GoalMet).toBe(false);
    expect(preciseGoals([row('kvroute-precise', 0.8, 0.5)], null)).toMatchObject({ hitRateGoalMet: null, p90GoalMet: null });
    expect(preciseGoals([row('kvroute', 0.8, 0.5)], 0.9)).toBeUndefined();
  });
});
