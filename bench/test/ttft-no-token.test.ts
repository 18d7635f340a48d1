/**
 * A successful streamed response that carries no content token has no TTFT, as in inference-perf v0.6.1.
 *
 * Upstream: inference_perf/apis/streaming_parser.py @ v0.6.1 `parse_sse_stream` timestamps content-bearing chunks only
 * (role-only deltas and usage chunks excluded "so they don't corrupt downstream TPOT/TTFT/ITL"), and
 * inference_perf/reportgen/base.py @ v0.6.1 `summarize_requests` computes a TTFT only for a request with token times,
 * else `ttft_values.append(None)`, and filters the Nones out before the percentiles; the request still counts among the
 * successes. Before (found by review rev-iperf), kvroute counted such a request with its end-to-end time as its TTFT
 * (analyze, the load ladder, the ramp's censored TTFT), and the burst, hetero and LoRA benchmarks counted it as an error.
 */
import * as http from 'http';
import type { AddressInfo } from 'net';
import { analyze } from '../src/analysis';
import { summarizeBurstRound } from '../src/burst-bench';
import { ChatClient, type ChatResult } from '../src/client';
import { summarizeHeteroRun } from '../src/hetero-bench';
import { overloadSigns, summarizeRun } from '../src/load-ladder';
import { summarizeLoraRun } from '../src/lora-bench';
import { censoredTtft, planRamp, rampArrivals, stageResults, type PoolCapacity, type RampStage } from '../src/poisson-ramp';
import type { RequestRecord } from '../src/run';
import { rng } from '../src/workload';

let server: http.Server;
let url: string;
let contentChunks = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (o: unknown) => res.write(`data: ${JSON.stringify(o)}\n\n`);
      chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] });
      const n = contentChunks;
      let i = 0;
      const next = () => {
        if (i < n) {
          i++;
          chunk({ choices: [{ index: 0, delta: { content: 'x' } }] });
          setTimeout(next, 5);
          return;
        }
        // A long stretch before the end: the response's e2e is far longer than any TTFT.
        setTimeout(() => {
          chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
          chunk({ choices: [], usage: { prompt_tokens: 10, completion_tokens: n } });
          res.end('data: [DONE]\n\n');
        }, 300);
      };
      next();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

/** Four streamed responses with content, then one that succeeds with a role chunk and a usage chunk only. */
async function fourWithTokensAndOneWithout(): Promise<RequestRecord[]> {
  const client = new ChatClient(url, 'm');
  const records: RequestRecord[] = [];
  const send = async () => {
    const started = Date.now();
    const result = await client.chat([{ role: 'user', content: 'hi' }], 4);
    records.push({ kind: 'rag', stage: 0, messages: [], headers: {}, startedMs: started, endedMs: Date.now(), result });
  };
  contentChunks = 3;
  for (let i = 0; i < 4; i++) await send();
  contentChunks = 0;
  await send();
  client.close();
  return records;
}

test('a successful response without content tokens is left out of the TTFT percentiles and counted apart, as inference-perf does', async () => {
  const measured = await fourWithTokensAndOneWithout();
  expect(measured.every((r) => r.result.ok)).toBe(true);
  expect(measured[4]!.result.ttft).toBeUndefined();

  // No percentile may reach past the four first tokens: the fifth's end is no first token. Its end is put 1 s past the
  // latest first token, so that a percentile read from it shows whatever the machine's speed (a busy CI machine
  // delayed a first token past the server's 300 ms stretch).
  const latestFirstToken = Math.max(...measured.slice(0, 4).map((x) => x.result.ttft!));
  const tokenless = measured[4]!;
  const records = [...measured.slice(0, 4), { ...tokenless, endedMs: tokenless.startedMs + (latestFirstToken + 1) * 1000, result: { ...tokenless.result, e2e: latestFirstToken + 1 } }];

  const r = analyze('p', records, { hits: 0, queries: 0 }, 1, null, 1);
  // inference-perf: TTFT values of the four streamed responses only; all five succeeded.
  expect(r.succeeded).toBe(5);
  expect(r.noToken).toBe(1);
  expect(r.ttft.count).toBe(4);
  expect(r.ttft.p90!).toBeLessThanOrEqual(latestFirstToken);
  expect(r.ttftUncached.count).toBe(4);

  // The load ladder's rung: p99 over the same four, the tokenless success counted apart from the failures.
  const rung = summarizeRun('p', 0.5, 1, records, { hits: 0, queries: 0 }, 1, 1, 1);
  expect(rung).toMatchObject({ succeeded: 5, failed: 0, noToken: 1 });
  expect(rung.ttftP99!).toBeLessThanOrEqual(latestFirstToken);

  // The ramp: a request that finished without a token was not cut off before its first token; it has none.
  expect(censoredTtft(records[4]!)).toBeUndefined();
  const stages: RampStage[] = [{ fraction: 1, upstreamSeconds: 1 }];
  const capacity: PoolCapacity = { topRps: 5, hitRate: 0, depthPerPod: 1, completions: 5, seconds: 1 };
  const [stage] = stageResults(planRamp(rampArrivals(5, stages, rng(1)), stages, capacity, 1, 1e9), records);
  expect(stage).toMatchObject({ requests: 5, succeeded: 5 });
  expect(stage!.ttftP90!).toBeLessThanOrEqual(latestFirstToken);
});

test('the load ladder\'s delay to first token leaves a tokenless success out rather than reading its end as a late token', () => {
  // Eight arrivals 100 ms apart, each answered 10 ms after it was sent; the last succeeds after 10 s without a token.
  const scheduledMs = Array.from({ length: 8 }, (_, i) => i * 100);
  const records: RequestRecord[] = scheduledMs.map((t, i) => ({
    kind: 'rag', messages: [], headers: {}, startedMs: t, endedMs: t + (i === 7 ? 10_000 : 10),
    result: i === 7 ? { ok: true, status: 200, e2e: 10, reply: '' } : { ok: true, status: 200, ttft: 0.01, e2e: 0.01, reply: 'x' },
  }));
  expect(overloadSigns(records, scheduledMs, 1).delayGrowth).toBeCloseTo(1, 9);
});

test('burst, hetero and LoRA count a tokenless success as a success without a TTFT, not as an error', () => {
  const pods = ['a:1', 'b:1'];
  const withToken = (servedBy: string, ttft: number): ChatResult => ({ ok: true, status: 200, servedBy, ttft, e2e: 1, reply: 'x', promptTokens: 10, cachedTokens: 0 });
  const noToken: ChatResult = { ok: true, status: 200, servedBy: 'b:1', e2e: 3, reply: '', promptTokens: 10, cachedTokens: 0 };
  const failed: ChatResult = { ok: false, status: 503, e2e: 0, reply: '' };
  const results = [withToken('a:1', 0.1), withToken('a:1', 0.3), noToken, failed];

  const round = summarizeBurstRound(results, pods, 1);
  expect(round).toMatchObject({ ok: 3, errors: 1, noToken: 1, perPod: [2, 1] });
  expect(round.ttftP50).toBeCloseTo(0.2, 12);

  const hetero = summarizeHeteroRun('p', results, pods, [1, 2], 1, 1);
  expect(hetero).toMatchObject({ ok: 3, errors: 1, noToken: 1, share: [2 / 3, 1 / 3] });
  expect(hetero.ttft.p50).toBeCloseTo(0.2, 12);
  expect(hetero.slowTtft.p50).toBeNull();
  // End to end over every success, as inference-perf's request latency is.
  expect(hetero.e2eP50).toBe(1);

  const lora = summarizeLoraRun('kvroute', results.map(() => ({ adapter: 'x', atMs: 0, messages: [] })), results, pods, 1, 1);
  expect(lora).toMatchObject({ ok: 3, errors: 1, noToken: 1 });
  expect(lora.ttft.p50).toBeCloseTo(0.2, 12);
});
