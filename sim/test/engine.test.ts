import type { BlockStored, KvEventBatch } from '@kvroute/protocol/kv-events';
import { ManualClock, type SimClock } from '../src/clock';
import { Engine, type EngineObserver, type RequestResult } from '../src/engine';
import { ENGINE_BASE as BASE } from './helpers';


const tokens = (n: number, seed = 1): number[] => Array.from({ length: n }, (_, i) => (seed * 100_003 + i * 7919) % 150_000);
const output = (n: number): number[] => Array.from({ length: n }, (_, i) => 1000 + i);

interface Tracked {
  result?: RequestResult;
  tokenTimes: number[];
  abort(): void;
}

function submit(engine: Engine, prompt: ArrayLike<number>, maxTokens: number, salt?: string, priority?: number): Tracked {
  const t: Tracked = { tokenTimes: [], abort: () => undefined };
  const h = engine.submit(
    { promptTokens: prompt, outputTokens: output(maxTokens), cacheSalt: salt, priority },
    {
      onToken: (_k, _id, at) => t.tokenTimes.push(at),
      onFinish: (r) => {
        t.result = r;
      },
    },
  );
  t.abort = () => h.abort();
  return t;
}

/** Prompts of the given lengths submitted at one instant (submitAll), `maxTokens` each; seeds from `seed`. */
function submitBurst(engine: Engine, lengths: readonly number[], maxTokens = 2, seed = 1): { burst: Tracked[]; handles: { abort(): void }[] } {
  const burst: Tracked[] = [];
  const handles = engine.submitAll(lengths.map((n, i) => {
    const t: Tracked = { tokenTimes: [], abort: () => undefined };
    burst.push(t);
    return { params: { promptTokens: tokens(n, seed + i), outputTokens: output(maxTokens) }, listener: { onToken: (_k: number, _id: number, at: number) => t.tokenTimes.push(at), onFinish: (r: RequestResult) => { t.result = r; } } };
  }));
  return { burst, handles };
}

const ttft = (t: Tracked): number => (t.result?.firstTokenMs as number) - (t.result?.arrivalMs as number);

describe('Engine latency model (simulated time, ManualClock)', () => {
  it('TTFT = overhead + uncached × per-token; a repeat of a long prompt is ~40× faster', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    const prompt = tokens(4000);
    const cold = submit(engine, prompt, 4);
    clock.runAll();
    expect(cold.result?.cachedTokens).toBe(0);
    expect(ttft(cold)).toBeCloseTo(20 + 4000 * 0.25); // 1020 ms
    // Tokens every ITL after the first; e2e = TTFT + (n-1) × ITL.
    expect(cold.tokenTimes.map((t) => t - cold.tokenTimes[0])).toEqual([0, 20, 40, 60]);
    expect((cold.result?.finishedMs as number) - (cold.result?.arrivalMs as number)).toBeCloseTo(1020 + 60);

    const warm = submit(engine, prompt, 4);
    clock.runAll();
    // floor((4000 - 1) / 16) = 249 blocks = 3984 tokens hit; 16 left to prefill.
    expect(warm.result?.cachedTokens).toBe(3984);
    expect(ttft(warm)).toBeCloseTo(20 + 16 * 0.25); // 24 ms
    expect(ttft(cold) / ttft(warm)).toBeGreaterThan(40);
  });

  it('a request that wants prompt logprobs skips the prefix-cache lookup, uncounted, and prefills all of its prompt; its blocks are still cached (kv_cache_manager.py get_computed_blocks @ v0.10.0)', () => {
    const clock = new ManualClock();
    const { log, observer } = recorder(clock);
    const engine = new Engine(BASE, clock, observer);
    const prompt = tokens(400);
    submit(engine, prompt, 2);
    clock.runAll();
    const queries = log.queries.length;
    const t: Tracked = { tokenTimes: [] as number[], abort: () => undefined };
    engine.submit({ promptTokens: prompt, outputTokens: output(2), skipPrefixCache: true }, {
      onToken: (_k, _id, at) => t.tokenTimes.push(at),
      onFinish: (r) => { t.result = r; },
    });
    clock.runAll();
    expect(t.result?.cachedTokens).toBe(0);
    expect(ttft(t)).toBeCloseTo(20 + 400 * 0.25);
    expect(log.queries.length).toBe(queries);
    // The same prompt without prompt logprobs hits the blocks both requests cached.
    const after = submit(engine, prompt, 2);
    clock.runAll();
    expect(after.result?.cachedTokens).toBe(Math.floor(399 / 16) * 16);
    expect(log.queries.length).toBe(queries + 1);
  });

  it('queues beyond max-num-seqs and admits at the exact finish instant', () => {
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, maxNumSeqs: 1 }, clock);
    const a = submit(engine, tokens(400, 1), 5);
    const b = submit(engine, tokens(400, 2), 5);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 1 });
    clock.runAll();
    const aEnd = 20 + 100 + 4 * 20; // 200 ms
    expect(a.result?.finishedMs).toBeCloseTo(aEnd);
    expect(b.result?.admittedMs).toBeCloseTo(aEnd);
    expect(ttft(b)).toBeCloseTo(aEnd + 120);
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 1 }); // the null block
  });

  it('serializes prefills with --prefill-concurrency 1 and runs them side by side with 0', () => {
    // Submitted one after the other at one instant, the two are one step on one lane (the second joins the first's),
    // computed one after the other and sampled together at its end; with no lanes each prefills on its own.
    for (const [lanes, expectFirst, expectSecond] of [
      [1, 20 + 2 * 250, 20 + 2 * 250],
      [0, 20 + 250, 20 + 250],
    ] as const) {
      const clock = new ManualClock();
      const engine = new Engine({ ...BASE, prefillConcurrency: lanes }, clock);
      const a = submit(engine, tokens(1000, 1), 1);
      const b = submit(engine, tokens(1000, 2), 1);
      clock.runAll();
      expect(ttft(a)).toBeCloseTo(expectFirst);
      expect(ttft(b)).toBeCloseTo(expectSecond);
    }
  });

  it('a request submitted at the instant of a step that can schedule prefill joins that step, and both first tokens come at its end, as submitAll\'s burst has them (vllm/v1/engine/core.py @ v0.10.0 EngineCore.step: one schedule(), one execute_model(), then update_from_output())', () => {
    const clock = new ManualClock();
    const queued: number[] = [];
    const engine = new Engine(BASE, clock, { onAdmit: (i) => queued.push(i.queueMs) });
    const a = submit(engine, tokens(500, 1), 3);
    const b = submit(engine, tokens(500, 2), 3);
    clock.runAll();
    // One step of 1,000 tokens, 20 + 250 ms, as the burst of two 500-token prompts: not 145 for the first and 270 for
    // the second, which was in the step (queue time 0) but sampled as if in the next one.
    expect([a.tokenTimes, b.tokenTimes]).toEqual([[270, 290, 310], [270, 290, 310]]);
    expect(queued).toEqual([0, 0]);
    expect(b.result?.admittedMs).toBe(0);
  });

  it('a request that arrives while a step is in flight is taken in at its end, as vLLM\'s engine core reads new requests between forward passes (vllm/v1/engine/core.py @ v0.10.0 run_busy_loop): not waiting before, holding no blocks, queue time from then (audit s36)', () => {
    const clock = new ManualClock();
    const queued: number[] = [];
    const engine = new Engine({ ...BASE, prefillConcurrency: 1 }, clock, { onAdmit: (i) => queued.push(i.queueMs) });
    const a = submit(engine, tokens(1000, 1), 1);
    // b arrives while a's step is in flight (at the same instant it would join a's step, as below).
    clock.advance(1);
    const b = submit(engine, tokens(1000, 2), 1);
    // a runs and holds ceil(1000 / 16) = 63 blocks (plus the null block); b is still in the engine core's input queue.
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0, usedBlocks: 64 });
    clock.advance(248);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0 });
    // a's lane frees at 20 + 250 = 270; b is taken in and scheduled the overhead before, so its prefill starts as the
    // lane frees: it never waited in the scheduler.
    clock.advance(1);
    expect(engine.stats()).toMatchObject({ running: 2, waiting: 0, usedBlocks: 127 });
    clock.runAll();
    expect(queued).toEqual([0, 0]);
    expect(b.result?.admittedMs).toBe(250);
    expect(ttft(b)).toBeCloseTo(20 + 2 * 250 - 1);
    expect(ttft(a)).toBeCloseTo(20 + 250);
  });

  // vLLM v0.10.0 vllm/v1/engine/core.py: EngineCoreProc.run_busy_loop reads its input queue (_process_input_queue) only
  // between steps (_process_engine_step), and EngineCore.step is one synchronous schedule() → execute_model() →
  // update_from_output() whatever the batch holds (async scheduling is off by default). A decode-only forward pass is
  // a step like any other: a request arriving during it reaches Scheduler.add_request when it ends, and its prefill is
  // computed by the next forward pass. As at a lane's end, the request is taken in the overhead before the step ends.
  it('a request that arrives while a decode-only step is in flight is computed after that step (vllm/v1/engine/core.py @ v0.10.0 run_busy_loop, EngineCore.step; --itl-ms 100 > --ttft-overhead-ms 20)', () => {
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, itlMs: 100, ttftOverheadMs: 20 }, clock);
    // D: 100-token prompt, first token at 20 + 25 = 45, then decode-only steps 45→145, 145→245, ...
    const d = submit(engine, tokens(100, 1), 20);
    clock.advanceTo(150);
    expect(d.tokenTimes).toEqual([45, 145]);
    // P (1000 tokens, uncached) arrives at 150, 5 ms into the decode step 145→245: still in the input queue.
    const p = submit(engine, tokens(1000, 2), 1);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0, inputQueue: 1 });
    clock.runAll();
    expect(d.tokenTimes.slice(0, 3)).toEqual([45, 145, 245]);
    // Taken in at 245 − 20 = 225, so its prefill starts as the decode step ends: first token at 245 + 250 = 495, not
    // 20 + 250 = 270 after its arrival (a prefill computed at 170-420, inside D's decode step).
    expect(p.result?.queuedMs).toBe(225);
    expect(p.result?.firstTokenMs).toBe(495);
    expect(ttft(p)).toBe(345);
  });

  it('a request that arrives after a step\'s short last chunk is computed but before its decode ends waits for the step\'s end (vllm/v1/engine/core.py @ v0.10.0 EngineCore.step; --itl-ms 100 > --ttft-overhead-ms 20)', () => {
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, itlMs: 100, ttftOverheadMs: 20 }, clock);
    // D decodes: first token at 45, then 145, ...
    const d = submit(engine, tokens(100, 1), 20);
    clock.advanceTo(145);
    // P (2,087 tokens) arrives at the instant of D's step at 145 and joins it: a 2,047-token chunk (D's decode takes
    // one of the 2,048) computed 165 → 676.75, then its last 40 tokens in the step at 676.75 with D's decode, whose
    // lane frees at 686.75 while the step runs until 676.75 + 100 = 776.75.
    const p = submit(engine, tokens(2087, 2), 1);
    clock.advanceTo(700);
    expect(p.result).toBeUndefined();
    // Q arrives at 700: the lane is free, but the step holding D's decode is in flight until 776.75.
    const q = submit(engine, tokens(1000, 3), 1);
    expect(engine.stats()).toMatchObject({ running: 2, waiting: 0, inputQueue: 1 });
    clock.runAll();
    expect(p.result?.firstTokenMs).toBe(776.75);
    expect(d.tokenTimes.slice(0, 5)).toEqual([45, 145, 245, 676.75, 776.75]);
    // Taken in at 776.75 − 20, its prefill computed from 776.75: first token at 776.75 + 250, not at 700 + 20 + 250.
    expect(q.result?.queuedMs).toBe(756.75);
    expect(q.result?.firstTokenMs).toBe(1026.75);
  });

  it('a step schedules waiting requests while its token budget lasts (scheduler.py @ v0.10.0 `while self.waiting and token_budget > 0`): a burst of short prompts runs together, the one past the budget waits', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    const { burst, handles } = submitBurst(engine, [500, 500, 500, 500, 500, 500]);
    expect(handles).toHaveLength(6);
    // 2,048 tokens: four prompts take 2,000, the fifth gets the 48 left (a partial first chunk, as vLLM's
    // `min(num_new_tokens, token_budget)`), the sixth finds none.
    // Blocks: 4 × ceil(500 / 16) = 128, the fifth's 48 tokens 3 more, and the null block.
    expect(engine.stats()).toMatchObject({ running: 5, waiting: 1, usedBlocks: 132 });
    clock.runAll();
    expect(burst.slice(0, 5).map((t) => t.result?.admittedMs)).toEqual([0, 0, 0, 0, 0]);
    // The first step computes 2,048 tokens (20 + 512 ms) and all four whole prompts sample their first token at its
    // end (vllm/v1/engine/core.py @ v0.10.0 L255-274); the fifth's second chunk (its other 452 tokens) is scheduled
    // then, and the budget it leaves schedules the sixth (vLLM's second step): 532 + (452 + 500) × 0.25 = 770.
    expect(burst.slice(0, 5).map((t) => ttft(t))).toEqual([532, 532, 532, 532, 770]);
    expect(burst[5]!.result?.admittedMs).toBe(532);
    expect(ttft(burst[5]!)).toBe(770);
  });

  it('a decoding request\'s next token waits for the prefill chunk of its step: gaps of ~512 ms while an 8000-token prompt prefills in 2048-token chunks, itl again after (vllm/v1/engine/core.py @ v0.10.0 L255-274; scheduler.py L202-297, L331-507)', () => {
    for (const interference of [true, false]) {
      const clock = new ManualClock();
      const engine = new Engine({ ...BASE, decodePrefillInterference: interference }, clock);
      // D: 100 tokens, first token at 20 + 25 = 45, then every 20 ms: 45, 65, 85, 105, ...
      const d = submit(engine, tokens(100, 1), 60);
      clock.advanceTo(100);
      const p = submit(engine, tokens(8000, 2), 1);
      clock.runAll();
      // The long prompt's TTFT is the prefill cost model's, either way: 20 + 8000 × 0.25.
      expect(ttft(p)).toBe(2020);
      const gaps = d.tokenTimes.slice(1).map((t, i) => t - d.tokenTimes[i]);
      if (!interference) {
        expect(gaps).toEqual(new Array(59).fill(20));
        continue;
      }
      expect(d.tokenTimes.slice(0, 4)).toEqual([45, 65, 85, 105]);
      // P's chunks: 2047, 2047, 2047, 1859 tokens from 120 ms, since D runs before P (scheduled first) and its decode
      // token takes one of each step's 2048 (scheduler.py @ v0.10.0, the running loop's `min(num_new_tokens,
      // token_budget)`); each of D's tokens comes at the end of the step that computed one: 631.75, 1143.5, 1655.25,
      // then 2120 with P's first token.
      expect(d.tokenTimes.slice(4, 8)).toEqual([631.75, 1143.5, 1655.25, 2120]);
      expect(gaps.slice(3, 7)).toEqual([526.75, 511.75, 511.75, 464.75]);
      expect(p.result?.firstTokenMs).toBe(2120);
      // Back to itl once the prompt is computed.
      expect(gaps.slice(0, 3)).toEqual([20, 20, 20]);
      expect(gaps.slice(7)).toEqual(new Array(gaps.length - 7).fill(20));
    }
  });

  it('requests scheduled in one step get their first tokens at that step\'s end, together (vllm/v1/engine/core.py @ v0.10.0 L266-271)', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    const { burst } = submitBurst(engine, [500, 500], 3);
    clock.runAll();
    // One step of 1,000 tokens: 20 + 250 ms; the old model gave the first one 145 and the second 270.
    expect(burst.map((t) => t.tokenTimes[0])).toEqual([270, 270]);
    expect(burst.map((t) => t.tokenTimes)).toEqual([[270, 290, 310], [270, 290, 310]]);
  });

  it('--no-decode-prefill-interference (the pre-audit-23 model): a step\'s prefills run one after another on the lane', () => {
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, decodePrefillInterference: false }, clock);
    const { burst } = submitBurst(engine, [500, 500, 500, 500, 500, 500]);
    clock.runAll();
    // The i-th first token after 20 + (i + 1) × 125 ms.
    expect(burst.slice(0, 5).map((t) => ttft(t))).toEqual([145, 270, 395, 520, 645]);
    // The fifth's second chunk is a step when the lane reaches it, at 520 + 48 × 0.25 = 532.
    expect(burst[5]!.result?.admittedMs).toBe(532);
  });

  it('while a prefill step is in flight nothing is scheduled; at the next chunk of a long prompt the budget it leaves takes the waiting request (scheduler.py @ v0.10.0)', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    const long = submit(engine, tokens(3000, 1), 1);
    clock.advance(1);
    const short = submit(engine, tokens(100, 2), 1);
    // Not in the scheduler's waiting queue before the step in flight ends (vLLM's input queue).
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0 });
    // The long prompt's second chunk (952 tokens) is scheduled at 20 + 2,048 × 0.25 = 532; 1,096 tokens are left.
    clock.advance(530);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0 });
    clock.advance(1);
    expect(engine.stats()).toMatchObject({ running: 2, waiting: 0 });
    clock.runAll();
    expect(short.result?.admittedMs).toBe(532);
    // The long prompt's last chunk (952 tokens) and the short one (100) are one step, 532 → 532 + 1,052 × 0.25 = 795:
    // both first tokens come at its end (vllm/v1/engine/core.py @ v0.10.0 L255-274), the short one's from its arrival at 1.
    expect(ttft(long)).toBe(795);
    expect(ttft(short)).toBe(795 - 1);
  });

  it('a request taken in at a step boundary that the step\'s budget leaves behind counts as waiting (len(self.waiting) in make_stats), and its queue time runs from that boundary, not from its arrival (vllm/v1/metrics/stats.py @ v0.10.0 queued_time; audit s36)', () => {
    const clock = new ManualClock();
    const queued: number[] = [];
    const engine = new Engine(BASE, clock, { onAdmit: (i) => queued.push(i.queueMs) });
    submit(engine, tokens(3000, 1), 1);
    clock.advance(1);
    const second = submit(engine, tokens(3000, 2), 1);
    const third = submit(engine, tokens(100, 3), 1);
    clock.advance(530);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0 });
    // At 532 both are taken in: the first chunk's 952 tokens leave 1,096 of the budget, all for the second request.
    clock.advance(1);
    expect(engine.stats()).toMatchObject({ running: 2, waiting: 1 });
    clock.runAll();
    expect(second.result?.admittedMs).toBe(532);
    expect(third.result?.queuedMs).toBe(532);
    expect(queued[1]).toBe(0);
    expect(queued[2]).toBe(third.result!.admittedMs! - 532);
    expect(queued[2]).toBeGreaterThan(0);
  });

  it('decoding requests take one token each from the step\'s budget (scheduler.py @ v0.10.0, the running loop)', () => {
    const clock = new ManualClock();
    // A 64-token budget makes the two decode tokens matter.
    const engine = new Engine({ ...BASE, maxNumBatchedTokens: 64 }, clock);
    submit(engine, tokens(16, 1), 50);
    clock.advance(40);
    submit(engine, tokens(16, 2), 50);
    clock.advance(200);
    expect(engine.stats()).toMatchObject({ running: 2, waiting: 0 });
    // Both decode now; the lane is free. 64 − 2 = 62 tokens: the first prompt takes them all, the second waits.
    const { burst: all } = submitBurst(engine, [62, 10], 1, 10);
    expect(engine.stats()).toMatchObject({ running: 3, waiting: 1 });
    clock.runAll();
    expect(all[1]!.result?.admittedMs).toBeGreaterThan(all[0]!.result?.admittedMs as number);
  });

  it('a running request the step\'s budget does not reach waits for the next step (scheduler.py @ v0.10.0, the running loop\'s `while req_index < len(self.running) and token_budget > 0`)', () => {
    const clock = new ManualClock();
    // Two lanes, so B (2,000 tokens, at 12) is scheduled on the second while A (5,000) computes its first chunk, and
    // B's first token falls at A's next chunk step, 532 (20 + 2,048 × 0.25 and 12 + 20 + 2,000 × 0.25).
    const engine = new Engine({ ...BASE, prefillConcurrency: 2 }, clock);
    const a = submit(engine, tokens(5000, 1), 3);
    clock.advance(12);
    const b = submit(engine, tokens(2000, 2), 3);
    clock.runAll();
    // At 532 A, scheduled first, takes the whole 2,048-token budget: B's decode token is not scheduled, and waits for
    // the step after, at 1,044, where A's last 904 tokens leave room for it: B's second token at 1,044 + 904 × 0.25.
    expect(b.tokenTimes).toEqual([532, 1270, 1290]);
    expect(a.tokenTimes).toEqual([1270, 1290, 1310]);
  });

  it('--max-loras: a waiting request for one adapter too many is skipped and keeps its place, the requests behind it are scheduled (scheduler.py @ 6eca337ce lines 319-325, 363-370)', () => {
    for (const maxLoras of [1, 2]) {
      const clock = new ManualClock();
      const engine = new Engine({ ...BASE, prefillConcurrency: 0, maxLoras }, clock);
      const sub = (seed: number, loraId: number | null, maxTokens: number): Tracked => {
        const t: Tracked = { tokenTimes: [], abort: () => undefined };
        engine.submit(
          { promptTokens: tokens(100, seed), outputTokens: output(maxTokens), loraId, loraName: loraId === null ? null : `adapter-${loraId}` },
          { onToken: (_k, _id, at) => t.tokenTimes.push(at), onFinish: (r) => { t.result = r; } },
        );
        return t;
      };
      const a = sub(1, 1, 10);
      const b = sub(2, 2, 2); // a second adapter
      const c = sub(3, null, 2); // the base model
      const d = sub(4, 1, 2); // the adapter already running
      clock.runAll();
      expect([a, c, d].map((t) => t.result?.admittedMs)).toEqual([0, 0, 0]);
      if (maxLoras === 1) {
        // Adapter 2 waits until no running request uses adapter 1: d finishes first, a last.
        expect(b.result?.admittedMs).toBe(a.result?.finishedMs);
      } else {
        expect(b.result?.admittedMs).toBe(0);
      }
    }
  });

  it('the priority policy serves the waiting queue by (priority, arrival) and the fcfs policy by arrival (request_queue.py @ v0.10.0)', () => {
    for (const [policy, expected] of [['fcfs', ['a', 'b', 'c', 'd']], ['priority', ['a', 'c', 'd', 'b']]] as const) {
      const clock = new ManualClock();
      const engine = new Engine({ ...BASE, schedulingPolicy: policy }, clock);
      // Prompts of a whole step's budget (2,048 tokens), so each step schedules one and the order shows in the times.
      const tracked = ([['a', 0], ['b', 5], ['c', 1], ['d', 1]] as const).map(([name, priority], i) => ({ name, t: submit(engine, tokens(2048, i + 1), 1, undefined, priority) }));
      clock.runAll();
      const admitted = (x: (typeof tracked)[number]): number => x.t.result!.admittedMs as number;
      expect([...tracked].sort((x, y) => admitted(x) - admitted(y)).map((x) => x.name)).toEqual(expected);
    }
  });

  it('under KV pressure the priority policy preempts the running request with the largest (priority, arrival), the fcfs policy the last one (scheduler.py @ v0.10.0)', () => {
    // 5 usable blocks: two 32-token prompts take 2 each, and the 33rd token of each needs a third.
    for (const [policy, preempted] of [['fcfs', 'urgent'], ['priority', 'background']] as const) {
      const clock = new ManualClock();
      const engine = new Engine({ ...BASE, kvCacheBlocks: 6, prefillConcurrency: 0, schedulingPolicy: policy }, clock);
      const background = submit(engine, tokens(32, 1), 8, undefined, 9);
      const urgent = submit(engine, tokens(32, 2), 8, undefined, 0);
      clock.runAll();
      const counts = { background: background.result!.preemptions, urgent: urgent.result!.preemptions };
      expect(counts[preempted]).toBeGreaterThan(0);
      expect(counts[preempted === 'urgent' ? 'background' : 'urgent']).toBe(0);
      expect([background.result!.finishReason, urgent.result!.finishReason]).toEqual(['length', 'length']);
    }
  });

  it('under priority a request that preempts itself leaves the running requests after it to the next step, which follows at once (no stall)', () => {
    // 5 usable blocks: a 48-token request (3 blocks, priority 9) runs first, a 32-token one (2 blocks, priority 0)
    // after it. Both sample their first token in one step, and each next token needs a new block; none is free. The
    // first, served first, is itself the running request with the largest (priority, arrival), so it preempts itself.
    // Before the fix the step ended there, the second's token unserved and nothing left to wake the engine.
    for (const policy of ['fcfs', 'priority'] as const) {
      const clock = new ManualClock();
      const engine = new Engine({ ...BASE, kvCacheBlocks: 6, prefillMsPerToken: 0, prefillConcurrency: 0, schedulingPolicy: policy }, clock);
      const low = submit(engine, tokens(48, 1), 12, undefined, 9);
      const high = submit(engine, tokens(32, 2), 12, undefined, 0);
      clock.runAll();
      expect([low.result?.finishReason, high.result?.finishReason]).toEqual(['length', 'length']);
      expect(engine.stats()).toMatchObject({ running: 0, waiting: 0 });
    }
  });

  it('under priority the running requests after one that preempted itself wait for the next step, after the forward pass of this one (scheduler.py @ v0.10.0)', () => {
    // 4 usable blocks of 16, no prefill cost. X (priority 0) and R (priority 9), 1-token prompts, are scheduled at 0 ms
    // and sample a token every 20 ms; Y (priority 0, 1 token) arrives at 19 ms and runs after them (first token at 40).
    // Each holds 1 block, 1 is free. At 300 ms X and R each need a second block for their 17th token: X, first, takes
    // the last one; R, the running request with the largest (priority, arrival), preempts itself, which ends the
    // running loop (`if not can_schedule: break`) and, something being preempted, skips the waiting loop. Y is not
    // served in that step, which computes X's token until 320 ms; vLLM's next schedule() comes after that forward
    // pass and serves Y (its token at 340) and then looks R up again.
    const clock = new ManualClock();
    const { log, observer } = recorder(clock);
    const engine = new Engine({ ...BASE, kvCacheBlocks: 5, ttftOverheadMs: 0, prefillMsPerToken: 0, schedulingPolicy: 'priority' }, clock, observer);
    const [x, r] = [{ tokenTimes: [] as number[], result: undefined as RequestResult | undefined }, { tokenTimes: [] as number[], result: undefined as RequestResult | undefined }];
    engine.submitAll(([[x, 0], [r, 9]] as const).map(([t, priority], i) => ({
      params: { promptTokens: tokens(1, i + 1), outputTokens: output(18), priority },
      listener: { onToken: (_k: number, _id: number, at: number) => t.tokenTimes.push(at), onFinish: (res: RequestResult) => { t.result = res; } },
    })));
    clock.advanceTo(19);
    const y = submit(engine, tokens(1, 3), 18, undefined, 0);
    clock.runAll();
    expect(r.result).toMatchObject({ finishReason: 'length', preemptions: 1 });
    expect(x.tokenTimes.slice(14, 17)).toEqual([280, 300, 320]);
    // Before, a step of its own at 300 ms served Y (its token at 320) and looked R up, ahead of X's forward pass.
    expect(y.tokenTimes.slice(12, 15)).toEqual([280, 300, 340]);
    expect(log.queries.filter((q) => q.queries === 17).map((q) => q.at)[0]).toBe(320);
  });

  it('a request aborted during its prefill hands back the chunks not yet scheduled: the one in flight is computed first, as vLLM reads the abort between forward passes (core.py @ v0.10.0 run_busy_loop)', () => {
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, prefillConcurrency: 1 }, clock);
    const a = submit(engine, tokens(5000, 1), 1);
    clock.advance(1); // b arrives while a's step is in flight
    const b = submit(engine, tokens(1000, 2), 1);
    // a prefills from 20 to 1,270 ms in chunks of 2,048, 2,048 and 904 tokens; the first computes until 20 + 512 = 532.
    clock.advance(99);
    a.abort();
    expect(a.result?.finishReason).toBe('abort');
    clock.runAll();
    // b is scheduled in the step that starts when the chunk in flight is computed (at 532, its overhead paid from
    // 512), not at the abort (100) nor when a's whole prefill would have ended (1,270).
    expect(b.result?.admittedMs).toBe(512);
    expect(ttft(b)).toBeCloseTo(532 + 250 - 1);
  });

  it('a request leaving from behind another on its lane gives back only the chunk it has not scheduled: the lane stays busy with the ones ahead and its own chunk in flight', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    const { burst, handles } = submitBurst(engine, [500, 500, 500, 500, 500, 500]);
    clock.advance(100);
    // The first step holds four whole prompts and 48 tokens of the fifth (2,048 in all), computed from 20 to 532 ms;
    // the fifth was to prefill its other 452 tokens until 645. Leaving now frees the lane from 532, not from 100 nor
    // from 520, where its own prefill started.
    handles[4]!.abort();
    clock.runAll();
    expect(burst[4]!.result?.finishReason).toBe('abort');
    expect(burst[5]!.result?.admittedMs).toBe(512);
    expect(ttft(burst[5]!)).toBe(532 + 125);
  });

  it('a request that arrives at the instant of a step that can schedule prefill joins it (vLLM reads new requests before schedule(), core.py @ v0.10.0)', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    submit(engine, tokens(3000, 1), 1);
    // The long prompt's second chunk is scheduled at 20 + 2,048 × 0.25 = 532, leaving 1,096 tokens of budget.
    clock.advance(532);
    const b = submit(engine, tokens(100, 2), 1);
    expect(engine.stats()).toMatchObject({ running: 2, waiting: 0 });
    clock.runAll();
    expect(b.result?.admittedMs).toBe(532);
  });

  it('under priority a victim running before the request that needs its blocks leaves every later running request served in the same step', () => {
    // 6 usable blocks, all taken: A (40 tokens, 3 blocks, priority 9), B (32, 2) and C (16, 1), both priority 0, in
    // that running order, sample their first token in one step. A's next slot is in its last block; B's needs a new
    // block, so B preempts A (the largest (priority, arrival)), which runs before it; C's next token then takes one
    // of A's freed blocks in the same step, and its tokens keep the ITL's pace.
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, kvCacheBlocks: 7, prefillMsPerToken: 0, prefillConcurrency: 0, schedulingPolicy: 'priority' }, clock);
    const a = submit(engine, tokens(40, 1), 4, undefined, 9);
    const b = submit(engine, tokens(32, 2), 4, undefined, 0);
    const c = submit(engine, tokens(16, 3), 4, undefined, 0);
    clock.runAll();
    expect([a.result?.preemptions, b.result?.preemptions, c.result?.preemptions]).toEqual([1, 0, 0]);
    const gaps = c.tokenTimes.slice(1).map((t, i) => t - c.tokenTimes[i]!);
    expect(gaps).toEqual([20, 20, 20]);
    expect([a, b, c].map((t) => t.result?.finishReason)).toEqual(['length', 'length', 'length']);
  });

  it('a hit on blocks still being prefilled waits for them (unlimited lanes)', () => {
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, prefillConcurrency: 0 }, clock);
    const shared = tokens(2000);
    const a = submit(engine, shared, 1);
    clock.advance(1); // b arrives 1 ms later and hits a's blocks, whose KV is not ready yet
    const b = submit(engine, [...shared, 5, 6, 7], 1);
    clock.runAll();
    expect(b.result?.cachedTokens).toBe(2000);
    expect(b.result?.firstTokenMs).toBeCloseTo(a.result?.firstTokenMs as number);
  });

  it('a request that cannot get blocks waits (FCFS) instead of failing, then runs when blocks free up', () => {
    const clock = new ManualClock();
    // 10 blocks, 9 usable (block 0 is the null block). Each request needs ceil(100 / 16) = 7 blocks for its prompt
    // and no more while decoding (100 + 9 slots): the second does not fit until the first is done.
    const engine = new Engine({ ...BASE, kvCacheBlocks: 10 }, clock);
    const a = submit(engine, tokens(100, 1), 10);
    const b = submit(engine, tokens(100, 2), 10);
    const c = submit(engine, tokens(20, 3), 2); // would fit, but FCFS keeps it behind b
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 2 });
    clock.runAll();
    expect(b.result?.finishReason).toBe('length');
    expect(b.result?.admittedMs).toBeCloseTo(a.result?.finishedMs as number);
    // c fits the KV now and b's step has budget left (2,048 − 100 tokens): vLLM schedules both in that step.
    expect(c.result?.admittedMs).toBe(b.result?.admittedMs);
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('rejects a sequence larger than the usable cache up front (the null block holds no KV)', () => {
    const engine = new Engine({ ...BASE, kvCacheBlocks: 5 }, new ManualClock());
    expect(engine.maxSequenceTokens).toBe(4 * 16 + 1);
    expect(() => submit(engine, tokens(60), 10)).toThrow(/exceeds the KV cache/);
    expect(() => submit(engine, tokens(60), 5)).not.toThrow(); // 64 slots exactly: the 65th token needs none
  });

  it('caches generated blocks: the next turn (prompt + reply + more) hits them', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    const prompt = tokens(100);
    const turn1 = submit(engine, prompt, 40);
    clock.runAll();
    expect(turn1.result?.completionTokens).toBe(40);
    // 100 + 40 - 1 = 139 tokens got KV: 8 full blocks = 128 tokens.
    const turn2 = [...prompt, ...output(40), ...tokens(30, 9)];
    expect(engine.peekCachedTokens(turn2)).toBe(128);
    const t2 = submit(engine, turn2, 1);
    clock.runAll();
    expect(t2.result?.cachedTokens).toBe(128);
  });

  it('kv usage rises while running and returns to 1/num_blocks (the null block); blocks stay cached after', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    expect(engine.stats().kvUsage).toBeCloseTo(1 / 1024);
    submit(engine, tokens(320), 17); // 320 prompt tokens = 20 blocks now; 320 + 16 = 336 slots = 21 blocks by the end
    expect(engine.stats().usedBlocks).toBe(1 + 20);
    clock.runAll();
    expect(engine.stats()).toMatchObject({ usedBlocks: 1, kvUsage: 1 / 1024 });
    expect(engine.stats().cachedBlocks).toBe(21);
  });

  it('abort frees a running request and removes a waiting one', () => {
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, maxNumSeqs: 1 }, clock);
    const a = submit(engine, tokens(200, 1), 50);
    const b = submit(engine, tokens(200, 2), 50);
    const c = submit(engine, tokens(200, 3), 5);
    clock.advance(100); // a is past its first token
    b.abort();
    expect(b.result).toMatchObject({ finishReason: 'abort', admittedMs: null, completionTokens: 0 });
    a.abort();
    expect(a.result?.finishReason).toBe('abort');
    expect(a.result?.completionTokens).toBeGreaterThan(0);
    // c is admitted at the abort instant.
    expect(c.result).toBeUndefined();
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0 });
    clock.runAll();
    expect(c.result?.admittedMs).toBeCloseTo(100);
    expect(c.result?.finishReason).toBe('length');
  });

  it('cache_salt isolates otherwise identical prompts', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    const p = tokens(200);
    submit(engine, p, 1, 'a');
    clock.runAll();
    expect(engine.peekCachedTokens(p, { cacheSalt: 'a' })).toBe(192);
    expect(engine.peekCachedTokens(p, { cacheSalt: 'b' })).toBe(0);
    expect(engine.peekCachedTokens(p)).toBe(0);
  });

  it('reported times do not depend on when timers fire (late wake-up)', () => {
    // A clock whose timers only run when it jumps, and then all see the jumped-to time.
    let now = 0;
    const timers: { at: number; fn: () => void }[] = [];
    const lazy: SimClock = {
      now: () => now,
      setTimer(at, fn) {
        const t = { at, fn };
        timers.push(t);
        return () => timers.splice(timers.indexOf(t), 1);
      },
    };
    const engine = new Engine({ ...BASE, maxNumSeqs: 1 }, lazy);
    const a = submit(engine, tokens(400, 1), 3);
    const b = submit(engine, tokens(400, 2), 3);
    now = 10_000; // one wake-up, long after everything was due
    for (let due = timers.find((t) => t.at <= now); due; due = timers.find((t) => t.at <= now)) {
      timers.splice(timers.indexOf(due), 1);
      due.fn();
    }
    expect(a.result?.finishedMs).toBeCloseTo(20 + 100 + 40);
    expect(b.result?.admittedMs).toBeCloseTo(160);
    expect(b.result?.firstTokenMs).toBeCloseTo(160 + 120);
    expect(b.result?.finishedMs).toBeCloseTo(160 + 120 + 40);
  });
});

/** Records every observer call with the simulated instant it happened at. */
function recorder(clock: ManualClock) {
  const log = { queries: [] as { at: number; queries: number; hits: number }[], preemptions: [] as number[] };
  const observer: EngineObserver = {
    onPrefixQuery: (q) => log.queries.push({ at: clock.now(), ...q }),
    onPreempt: () => log.preemptions.push(clock.now()),
  };
  return { log, observer };
}

describe('Engine scheduling like vLLM v0.10.0 (vllm/v1/core/sched/scheduler.py @ v0.10.0)', () => {
  it('refuses max_num_batched_tokens below max_num_seqs, as SchedulerConfig._verify_args (vllm/config.py @ v0.10.0) does', () => {
    // Accepted, a step budget of 1 token for 2 requests spun forever at one simulated instant once the first request
    // decoded (its not-yet-due token took the whole budget, the second request's wake-up came at the same instant).
    expect(() => new Engine({ ...BASE, maxNumSeqs: 2, maxNumBatchedTokens: 1 }, new ManualClock())).toThrow(
      new RangeError('max_num_batched_tokens (1) must be greater than or equal to max_num_seqs (2).'),
    );
    expect(() => new Engine({ ...BASE, maxNumSeqs: 2, maxNumBatchedTokens: 2 }, new ManualClock())).not.toThrow();
  });

  it('preempts the last running request when decode runs out of blocks; it waits at the front and resumes by re-hitting its blocks', () => {
    const clock = new ManualClock();
    const { log, observer } = recorder(clock);
    // 6 usable blocks. A and B: 32-token prompts, 40 tokens each → up to 32 + 39 = 71 slots = 5 blocks each.
    const engine = new Engine({ ...BASE, kvCacheBlocks: 7, prefillConcurrency: 0 }, clock, observer);
    const a = submit(engine, tokens(32, 1), 40);
    const b = submit(engine, tokens(32, 2), 40);
    expect(engine.stats()).toMatchObject({ running: 2, usedBlocks: 1 + 4 });
    // Both sample their first token at 20 + 32 × 0.25 = 28 ms and take a third block; token k comes at 28 + 20k.
    // Token 16 makes 49 tokens: each needs a fourth block, none is free: B (last in `running`) is preempted.
    clock.advanceTo(28 + 16 * 20 - 1);
    expect(engine.stats()).toMatchObject({ running: 2, waiting: 0, preemptions: 0 });
    clock.advanceTo(28 + 16 * 20);
    // The engine preempted B now; the observer hears of it only with B's next token (see the F4 test below).
    expect(log.preemptions).toEqual([]);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 1, preemptions: 1 });
    expect(b.tokenTimes).toHaveLength(17); // tokens 0..16 reached the client; the stream just pauses
    // B's prompt blocks keep their hashes in the free queue (no BlockRemoved at preemption).
    expect(engine.peekCachedTokens(tokens(32, 2).concat([0]))).toBe(32);
    clock.runAll();
    expect(a.result).toMatchObject({ finishReason: 'length', completionTokens: 40, preemptions: 0 });
    expect(b.result).toMatchObject({ finishReason: 'length', completionTokens: 40, preemptions: 1, cachedTokens: 0 });
    // B is scheduled again when A finishes (808 ms): it re-prefills 49 tokens less what it still hits.
    const aEnd = 28 + 39 * 20;
    expect(a.result?.finishedMs).toBe(aEnd);
    const resumed = log.queries.filter((q) => q.queries === 49);
    expect(resumed.at(-1)?.at).toBe(aEnd);
    const hit = resumed.at(-1)?.hits as number;
    expect(b.tokenTimes[17]).toBeCloseTo(aEnd + 20 + (49 - hit) * 0.25);
    expect(b.tokenTimes.slice(18).map((t, i) => t - b.tokenTimes[17 + i])).toEqual(new Array(22).fill(20));
    expect(log.preemptions).toEqual([b.tokenTimes[17]]);
  });

  it('reports a preemption with the preempted request\'s next token, not when it happens (scheduler.py @ 6eca337ce (v0.10.0) L267-269, L855-868; v1/metrics/stats.py L146-147)', () => {
    const clock = new ManualClock();
    const { log, observer } = recorder(clock);
    const tokensAt: number[] = [];
    observer.onToken = (t) => tokensAt.push(t.atMs);
    const engine = new Engine({ ...BASE, kvCacheBlocks: 7, prefillConcurrency: 0 }, clock, observer);
    submit(engine, tokens(32, 1), 40);
    const b = submit(engine, tokens(32, 2), 40);
    // B is preempted at 348 ms (test above) and scheduled again when A finishes at 808 ms.
    clock.advanceTo(800);
    expect(engine.stats()).toMatchObject({ waiting: 1, preemptions: 1 });
    expect(log.preemptions).toEqual([]);
    clock.runAll();
    // Once, at B's first token after it resumed: the PREEMPTED event rides on that EngineCoreOutput.
    expect(b.tokenTimes[17]).toBeGreaterThan(808);
    expect(log.preemptions).toEqual([b.tokenTimes[17]]);
    expect(tokensAt).toContain(b.tokenTimes[17]);
  });

  it('never reports the preemption of a request aborted while preempted (scheduler.py @ 6eca337ce (v0.10.0) L855-868: no output, no events)', () => {
    const clock = new ManualClock();
    const { log, observer } = recorder(clock);
    const engine = new Engine({ ...BASE, kvCacheBlocks: 7, prefillConcurrency: 0 }, clock, observer);
    const a = submit(engine, tokens(32, 1), 40);
    const b = submit(engine, tokens(32, 2), 40);
    clock.advanceTo(400);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 1, preemptions: 1 });
    b.abort();
    clock.runAll();
    expect(b.result).toMatchObject({ finishReason: 'abort', preemptions: 1, completionTokens: 17 });
    expect(a.result).toMatchObject({ finishReason: 'length', completionTokens: 40 });
    expect(log.preemptions).toEqual([]);
  });

  it('counts a waiting head that cannot get blocks again at every step, but not in a step that preempted', () => {
    const clock = new ManualClock();
    const { log, observer } = recorder(clock);
    const engine = new Engine({ ...BASE, kvCacheBlocks: 7, prefillConcurrency: 0 }, clock, observer);
    submit(engine, tokens(32, 1), 40);
    submit(engine, tokens(32, 2), 40);
    clock.runAll();
    // Two first lookups (32 tokens each), then B's retries with 49 tokens (prompt + 17 outputs) at each of A's steps
    // from the preemption (348 ms, not counted) to A's last token (808 ms, where it fits).
    expect(log.queries.slice(0, 2).map((q) => q.queries)).toEqual([32, 32]);
    const retries = log.queries.slice(2);
    expect(retries.every((q) => q.queries === 49)).toBe(true);
    expect(retries.map((q) => q.at)).toEqual(Array.from({ length: 23 }, (_, i) => 368 + 20 * i));
    expect(retries.map((q) => q.at)).not.toContain(348);
    // Its hits shrink as A's later blocks evict B's freed ones (tail first).
    expect(retries[0].hits).toBe(32);
    expect(retries.at(-1)?.hits).toBe(16);
  });

  it('records one IterationStats per step that sampled tokens, not one per token (vllm/v1/engine/async_llm.py @ v0.10.0, output_handler)', () => {
    const clock = new ManualClock();
    const iterations: { promptTokens: number; generationTokens: number }[] = [];
    const observer: EngineObserver = { onIterationTokens: (i) => iterations.push(i) };
    // Unlimited prefill lanes: two equal prompts submitted at one instant prefill side by side, so their tokens fall
    // on the same instants and share every step.
    const engine = new Engine({ ...BASE, prefillConcurrency: 0 }, clock, observer);
    const a = submit(engine, tokens(100, 1), 3);
    const b = submit(engine, tokens(100, 2), 3);
    clock.runAll();
    expect(a.result?.finishReason).toBe('length');
    expect(b.result?.finishReason).toBe('length');
    expect(a.tokenTimes).toEqual(b.tokenTimes);
    // Step 1: both prompts (counted whole at their first token) + 2 tokens; then 2 tokens a step.
    expect(iterations).toEqual([
      { promptTokens: 200, generationTokens: 2 },
      { promptTokens: 0, generationTokens: 2 },
      { promptTokens: 0, generationTokens: 2 },
    ]);
    // Steps that only scheduled a prefill chunk sampled nothing and record nothing: a prompt of three chunks is
    // still one sample at its first token.
    iterations.length = 0;
    submit(engine, tokens(5000, 3), 1);
    clock.runAll();
    expect(iterations).toEqual([{ promptTokens: 5000, generationTokens: 1 }]);
  });

  it('a request held back by max-num-seqs is not looked up (the check comes first)', () => {
    const clock = new ManualClock();
    const { log, observer } = recorder(clock);
    const engine = new Engine({ ...BASE, maxNumSeqs: 1 }, clock, observer);
    submit(engine, tokens(64, 1), 10);
    submit(engine, tokens(64, 2), 10);
    clock.runAll();
    expect(log.queries.map((q) => q.queries)).toEqual([64, 64]);
  });

  it('chunked prefill: a same-prefix request arriving mid-prefill hits the chunks scheduled so far and recomputes the rest (duplicate blocks)', () => {
    const clock = new ManualClock();
    const batches: KvEventBatch[] = [];
    // 64-token chunks (4 blocks); a 256-token prompt takes 4 chunks, scheduled at 0, 36, 52 and 68 ms.
    const engine = new Engine({ ...BASE, maxNumBatchedTokens: 64, prefillConcurrency: 0 }, clock, {}, (b) => batches.push(b));
    const prompt = tokens(256, 3);
    const a = submit(engine, prompt, 2);
    clock.advance(1);
    const b = submit(engine, [...prompt, ...tokens(16, 4)], 2);
    clock.runAll();
    expect(b.result?.cachedTokens).toBe(64);
    expect(a.result?.cachedTokens).toBe(0);
    const stored = new Map<string, number>();
    for (const batch of batches) for (const e of batch.events) if (e.type === 'BlockStored') for (const h of e.blockHashes) stored.set(h, (stored.get(h) ?? 0) + 1);
    const h = engine.kv;
    const hashes = [...stored.entries()];
    // Blocks 4..15 of the shared prompt were stored twice (A's chunks 1-3 and B's own prefill), blocks 0..3 once.
    expect(hashes.filter(([, n]) => n === 2)).toHaveLength(12);
    expect(hashes.filter(([, n]) => n === 1)).toHaveLength(4 + 1); // + B's own 17th block
    expect(h.numCachedBlocks).toBe(h.numCachedHashes + 12);
  });

  it('a prompt whose length is a multiple of the block size recomputes its last block into a duplicate', () => {
    const clock = new ManualClock();
    const batches: KvEventBatch[] = [];
    const engine = new Engine(BASE, clock, {}, (b) => batches.push(b));
    const prompt = tokens(64, 5);
    submit(engine, prompt, 1);
    clock.runAll();
    const second = submit(engine, prompt, 1);
    clock.runAll();
    expect(second.result?.cachedTokens).toBe(48);
    const stored = batches.flatMap((b) => b.events).filter((e): e is BlockStored => e.type === 'BlockStored');
    expect(stored).toHaveLength(2);
    expect(stored[1].blockHashes).toEqual([stored[0].blockHashes[3]]);
    expect(stored[1].parentBlockHash).toBe(stored[0].blockHashes[2]);
    expect(engine.kv.numCachedBlocks).toBe(5);
  });

  it('publishes one batch per step with events, in order, stamped with wall-clock seconds', () => {
    const clock = new ManualClock();
    const batches: KvEventBatch[] = [];
    const engine = new Engine({ ...BASE, kvCacheBlocks: 4, blockSize: 16 }, clock, {}, (b) => batches.push(b));
    const before = Date.now() / 1000;
    submit(engine, tokens(40, 6), 9); // 2 full prompt blocks; the outputs fill the third (48 tokens, all 3 usable blocks)
    clock.runAll();
    expect(batches.every((b) => b.events.length > 0 && b.dataParallelRank === 0)).toBe(true);
    expect(batches.every((b) => b.ts >= before - 1 && b.ts <= Date.now() / 1000 + 1)).toBe(true);
    const types = batches.map((b) => b.events.map((e) => (e.type === 'BlockStored' ? `S${e.blockHashes.length}` : e.type)).join(','));
    // Step 1: the prompt's two full blocks in one BlockStored; then the block the outputs complete.
    expect(types).toEqual(['S2', 'S1']);
    // A second prompt that needs the whole cache evicts both cached prompt blocks and the output block.
    batches.length = 0;
    submit(engine, tokens(48, 7), 1);
    clock.runAll();
    expect(batches.map((b) => b.events.map((e) => e.type))).toEqual([['BlockRemoved', 'BlockRemoved', 'BlockRemoved', 'BlockStored']]);
  });

  it('reset: refused while a request runs; on an idle engine AllBlocksCleared leaves with the next step', () => {
    const clock = new ManualClock();
    const batches: KvEventBatch[] = [];
    const engine = new Engine(BASE, clock, {}, (b) => batches.push(b));
    const prompt = tokens(40, 8);
    submit(engine, prompt, 3);
    expect(engine.resetPrefixCache()).toBe(false);
    clock.runAll();
    batches.length = 0;
    expect(engine.resetPrefixCache()).toBe(true);
    expect(batches).toEqual([]); // vLLM drains events only in schedule(), which an idle engine does not run
    expect(engine.peekCachedTokens(prompt)).toBe(0);
    submit(engine, tokens(20, 9), 1);
    expect(batches.map((b) => b.events.map((e) => e.type))).toEqual([['AllBlocksCleared', 'BlockStored']]);
  });

  it('--no-enable-prefix-caching: no lookup, no query counted, no hit, no BlockStored/BlockRemoved; a reset still clears', () => {
    // vllm/v1/core/kv_cache_manager.py @ v0.10.0 (6eca337ce) and v0.10.2 (61aa4b290): get_computed_blocks returns
    // (empty, 0) when not enable_caching, before the prefix-cache stats; allocate_slots returns before cache_blocks;
    // block_pool.py get_new_blocks skips _maybe_evict_cached_block; reset_prefix_cache still queues AllBlocksCleared.
    const run = (enablePrefixCaching: boolean | undefined) => {
      const clock = new ManualClock();
      const batches: KvEventBatch[] = [];
      const queries: { queries: number; hits: number }[] = [];
      // 4 blocks of 16 (3 usable): the later prompts reuse the blocks the first one filled.
      const engine = new Engine({ ...BASE, kvCacheBlocks: 4, enablePrefixCaching }, clock, { onPrefixQuery: (q) => queries.push(q) }, (b) => batches.push(b));
      const prompt = tokens(40, 12);
      submit(engine, prompt, 2);
      clock.runAll();
      const repeat = submit(engine, prompt, 2);
      clock.runAll();
      submit(engine, tokens(40, 13), 2);
      clock.runAll();
      const types = batches.flatMap((b) => b.events.map((e) => e.type));
      batches.length = 0;
      const reset = engine.resetPrefixCache();
      submit(engine, prompt, 1);
      return { engine, prompt, repeat, queries, types, reset, afterReset: batches.map((b) => b.events.map((e) => e.type)) };
    };

    const on = run(undefined); // the default, as vLLM V1's
    expect(on.repeat.result?.cachedTokens).toBe(32);
    // The third prompt evicts the first one's blocks; the reset leaves nothing for the fourth.
    expect(on.queries).toEqual([{ queries: 40, hits: 0 }, { queries: 40, hits: 32 }, { queries: 40, hits: 0 }, { queries: 40, hits: 0 }]);
    expect(on.types).toContain('BlockStored');
    expect(on.types).toContain('BlockRemoved');
    expect(on.afterReset).toEqual([['AllBlocksCleared', 'BlockStored']]);

    const off = run(false);
    expect(off.engine.kv.enableCaching).toBe(false);
    expect(off.repeat.result?.cachedTokens).toBe(0);
    // Every prompt token computed: TTFT = overhead + 40 × 0.25 ms, the repeat included.
    expect(ttft(off.repeat)).toBe(20 + 40 * 0.25);
    expect(off.queries).toEqual([]);
    expect(off.types).toEqual([]);
    expect(off.engine.kv.numCachedBlocks).toBe(0);
    expect(off.engine.kv.evictions).toBe(0);
    expect(off.engine.peekCachedTokens(off.prompt)).toBe(0);
    expect(off.reset).toBe(true);
    expect(off.afterReset).toEqual([['AllBlocksCleared']]);
  });

  it('LoRA adapters salt every block with their lora_int_id and report it in BlockStored', () => {
    const clock = new ManualClock();
    const batches: KvEventBatch[] = [];
    const engine = new Engine(BASE, clock, {}, (b) => batches.push(b));
    const prompt = tokens(40, 10);
    engine.submit({ promptTokens: prompt, outputTokens: output(1), loraId: 2 }, { onToken: () => undefined, onFinish: () => undefined });
    clock.runAll();
    expect(engine.peekCachedTokens(prompt, { loraId: 2 })).toBe(32);
    expect(engine.peekCachedTokens(prompt)).toBe(0);
    expect((batches[0].events[0] as BlockStored).loraId).toBe(2);
  });
});

// vLLM takes a step's KV events at the end of schedule() up to v0.11.0 (vllm/v1/core/sched/scheduler.py @ v0.10.0,
// lines 578-581) and in update_from_output, after the step's forward pass, from #25875 on (@ 111faf111; v0.11.1, so
// every release that encodes events as maps, the simulator's 'v0.26' schema).
describe('When a step\'s KV events are published', () => {
  function publishes(schema: 'v0.10' | 'v0.26') {
    const clock = new ManualClock();
    const batches: { at: number; stored: number; removed: number }[] = [];
    const engine = new Engine({ ...BASE, kvCacheBlocks: 4096, kvEventSchema: schema }, clock, {}, (b: KvEventBatch) => batches.push({
      at: clock.now(),
      stored: b.events.reduce((n, e) => n + (e.type === 'BlockStored' ? e.blockHashes.length : 0), 0),
      removed: b.events.reduce((n, e) => n + (e.type === 'BlockRemoved' ? e.blockHashes.length : 0), 0),
    }));
    // 6,000 tokens in 2,048-token chunks: chunks end at 20 + 2048 × 0.25 = 532, 1,044, and the last (1,904) at 1,520.
    const t = submit(engine, tokens(6000), 2);
    clock.runAll();
    return { batches, firstToken: t.tokenTimes[0] };
  }

  it('up to v0.11.0: when the step is scheduled, so the last chunk\'s blocks are announced before they are computed', () => {
    const { batches, firstToken } = publishes('v0.10');
    expect(firstToken).toBe(1520);
    expect(batches.filter((b) => b.stored > 0).map((b) => [b.at, b.stored])).toEqual([[0, 128], [532, 128], [1044, 119]]);
  });

  it('from #25875 (map-encoded releases): when the step\'s work is computed, the last chunk\'s with the first token', () => {
    const { batches, firstToken } = publishes('v0.26');
    expect(firstToken).toBe(1520);
    expect(batches.filter((b) => b.stored > 0).map((b) => [b.at, b.stored])).toEqual([[532, 128], [1044, 128], [1520, 119]]);
    // In order, never before a batch queued earlier.
    expect(batches.map((b) => b.at)).toEqual([...batches.map((b) => b.at)].sort((a, b) => a - b));
  });
});
