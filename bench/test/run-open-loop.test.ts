/**
 * The workload runner's two ways of offering load, against a real simulated pod over HTTP: closed loop (a fixed number
 * in flight, the next request waits for a free slot) and open loop (each request at its own arrival time, whatever is
 * still running), which is how vLLM's benchmark_serving.py `--request-rate` and llm-d's Poisson benchmarks load a server.
 */
import { startSimulator, type Simulator } from '@kvroute/sim';
import { runWorkload } from '../src/run';
import type { RagPlan, Workload } from '../src/workload';

jest.setTimeout(60_000);

function singles(n: number, maxTokens: number): Workload {
  const rag: RagPlan[] = Array.from({ length: n }, (_, i) => ({ kind: 'rag', document: i, messages: [{ role: 'user', content: `Question ${i}: what is ${i} + ${i}?` }] }));
  return {
    options: { seed: 0, systemPrompts: 0, systemPromptWords: 0, sessions: 0, turnsPerSession: 0, userWords: 0, maxTokens, documents: 0, documentWords: 0, ragRequests: n, questionWords: 0 },
    sessions: [],
    rag,
    totalRequests: n,
  };
}

describe('runWorkload', () => {
  let pod: Simulator;
  beforeAll(async () => {
    // Every request decodes 10 tokens × 100 ms: a second each, far longer than the arrival gaps below.
    pod = await startSimulator({ host: '127.0.0.1', port: 0, model: 'm', itlMs: 100, maxNumSeqs: 64 });
  });
  afterAll(async () => {
    await pod?.close();
  });

  test('open loop: every request is sent at its arrival time, while the earlier ones still run', async () => {
    const arrivalsMs = [0, 50, 100, 150];
    const outcome = await runWorkload(singles(4, 10), { gatewayUrl: pod.url, model: 'm', concurrency: 1, arrivalsMs });
    expect(outcome.records.every((r) => r.result.ok)).toBe(true);
    const byDocument = [...outcome.records].sort((a, b) => (a.document ?? 0) - (b.document ?? 0));
    // Sent in arrival order, none after the first had finished (concurrency 1 would have serialized them).
    for (let i = 1; i < byDocument.length; i++) expect(byDocument[i]!.startedMs).toBeGreaterThanOrEqual(byDocument[i - 1]!.startedMs);
    expect(Math.max(...byDocument.map((r) => r.startedMs))).toBeLessThan(byDocument[0]!.endedMs);
    // (Node's timers may fire a millisecond before Date.now() reaches the target.)
    expect(byDocument[3]!.startedMs).toBeGreaterThanOrEqual(149);
  });

  test('closed loop with one slot: each request waits for the one before it', async () => {
    const outcome = await runWorkload(singles(3, 2), { gatewayUrl: pod.url, model: 'm', concurrency: 1 });
    const byStart = [...outcome.records].sort((a, b) => a.startedMs - b.startedMs);
    for (let i = 1; i < byStart.length; i++) expect(byStart[i]!.startedMs).toBeGreaterThanOrEqual(byStart[i - 1]!.endedMs);
  });

  test('open loop refuses arrival times that do not match the requests, and chat sessions', async () => {
    await expect(runWorkload(singles(2, 1), { gatewayUrl: pod.url, model: 'm', concurrency: 1, arrivalsMs: [0] })).rejects.toThrow('1 arrival times for 2 requests');
    const chats: Workload = { ...singles(0, 1), sessions: [{ kind: 'chat', sessionId: 's', system: 'sys', userTurns: ['hi'] }], totalRequests: 1 };
    await expect(runWorkload(chats, { gatewayUrl: pod.url, model: 'm', concurrency: 1, arrivalsMs: [] })).rejects.toThrow('open-loop arrivals are for single requests');
  });
});
