/**
 * The workload runner's two ways of offering load, against a real simulated pod over HTTP: closed loop (a fixed number
 * in flight, the next request waits for a free slot) and open loop (each request at its own arrival time, whatever is
 * still running), which is how vLLM's benchmark_serving.py `--request-rate` and llm-d's Poisson benchmarks load a server.
 */
import * as http from 'http';
import type { AddressInfo } from 'net';
import { ManualClock, startSimulator, type Simulator } from '@kvroute/sim';
import { waitFor } from '@kvroute/testkit';
import { ChatClient } from '../src/client';
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

// vLLM vllm/benchmarks/serve.py @ 009e6d4 `benchmark`: `aiohttp.TCPConnector(limit=max_concurrency or 0, ...)`, no
// connection cap without --max-concurrency (0 = unlimited in aiohttp), so each request goes out at its arrival time
// whatever is in flight, and no TTFT includes a wait for one of the client's own connections.
describe('open loop past 256 in flight, as vLLM serve.py\'s client offers it', () => {
  let pod: Simulator;
  let clock: ManualClock;
  beforeAll(async () => {
    // The pod's clock stands still until every request is in: nothing finishes, so no request can free a socket for
    // one queued behind it. (On the real clock each request held its connection ~10 s, and a loaded machine that took
    // longer than that to open 300 connections saw the first ones finish before the last arrived: peak 261.) 512
    // slots, so the pod itself never makes a request wait.
    clock = new ManualClock();
    pod = await startSimulator({ host: '127.0.0.1', port: 0, model: 'm', clock, itlMs: 500, maxNumSeqs: 512, ttftOverheadMs: 0, prefillMsPerToken: 0, prefillConcurrency: 512 });
  });
  afterAll(async () => {
    await pod?.close();
  });

  test('300 requests arriving at once are all in the server together, none waiting for a socket behind the others', async () => {
    const n = 300;
    const inPod = () => { const s = pod.engine.stats(); return s.running + s.waiting + s.inputQueue; };
    const run = runWorkload(singles(n, 20), { gatewayUrl: pod.url, model: 'm', concurrency: 1, arrivalsMs: Array.from({ length: n }, () => 0) });
    // Every arrival reaches the pod while none has finished (an open loop). A client that caps its connections (Node's
    // agent at 256, or the closed loop's one) leaves the rest queued behind requests that cannot end: this times out.
    await waitFor(() => inPod() === n, `all ${n} requests in the pod at once`, { limitMs: 30_000 });
    expect(inPod()).toBe(n);
    clock.runAll();
    const outcome = await run;
    expect(outcome.records).toHaveLength(n);
    expect(outcome.records.every((r) => r.result.ok)).toBe(true);
  });

  test('the client\'s timeout still bounds every request from its send: 300 to a server that never answers all fail within it', async () => {
    const server = http.createServer(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = new ChatClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'm', 2000);
    try {
      const results = await Promise.all(Array.from({ length: 300 }, () => client.chat([{ role: 'user', content: 'hi' }], 1)));
      expect(results.every((r) => !r.ok && /no response within 2000 ms/.test(r.error ?? ''))).toBe(true);
      // None waited for a socket before its timer started (one queued behind a capped agent fails after two timeouts);
      // the slack is opening 300 connections on a busy machine.
      expect(Math.max(...results.map((r) => r.e2e))).toBeLessThan(3.5);
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
