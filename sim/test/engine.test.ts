import { ManualClock, type SimClock } from '../src/clock';
import { Engine, type EngineConfig, type RequestResult } from '../src/engine';

/** Defaults from options.ts: 20 ms overhead, 0.25 ms per uncached token, 20 ms per output token. */
const BASE: EngineConfig = {
  blockSize: 16,
  kvCacheBlocks: 1024,
  maxNumSeqs: 8,
  ttftOverheadMs: 20,
  prefillMsPerToken: 0.25,
  itlMs: 20,
  prefillConcurrency: 1,
};

const tokens = (n: number, seed = 1): number[] => Array.from({ length: n }, (_, i) => (seed * 100_003 + i * 7919) % 150_000);
const output = (n: number): number[] => Array.from({ length: n }, (_, i) => 1000 + i);

interface Tracked {
  result?: RequestResult;
  tokenTimes: number[];
  abort(): void;
}

function submit(engine: Engine, prompt: ArrayLike<number>, maxTokens: number, salt?: string): Tracked {
  const t: Tracked = { tokenTimes: [], abort: () => undefined };
  const h = engine.submit(
    { promptTokens: prompt, outputTokens: output(maxTokens), cacheSalt: salt },
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
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 0 });
  });

  it('serializes prefills with --prefill-concurrency 1 and runs them side by side with 0', () => {
    for (const [lanes, expectSecond] of [
      [1, 20 + 2 * 250],
      [0, 20 + 250],
    ] as const) {
      const clock = new ManualClock();
      const engine = new Engine({ ...BASE, prefillConcurrency: lanes }, clock);
      const a = submit(engine, tokens(1000, 1), 1);
      const b = submit(engine, tokens(1000, 2), 1);
      clock.runAll();
      expect(ttft(a)).toBeCloseTo(20 + 250);
      expect(ttft(b)).toBeCloseTo(expectSecond);
    }
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
    // 10 blocks × 16 = 160 slots. Each request needs ceil((100 + 10 - 1) / 16) = 7 blocks.
    const engine = new Engine({ ...BASE, kvCacheBlocks: 10 }, clock);
    const a = submit(engine, tokens(100, 1), 10);
    const b = submit(engine, tokens(100, 2), 10);
    const c = submit(engine, tokens(20, 3), 2); // would fit, but FCFS keeps it behind b
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 2 });
    clock.runAll();
    expect(b.result?.finishReason).toBe('length');
    expect(b.result?.admittedMs).toBeCloseTo(a.result?.finishedMs as number);
    expect(c.result?.admittedMs).toBeCloseTo(a.result?.finishedMs as number);
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('rejects a sequence larger than the whole cache up front', () => {
    const engine = new Engine({ ...BASE, kvCacheBlocks: 4 }, new ManualClock());
    expect(() => submit(engine, tokens(60), 10)).toThrow(/exceeds the KV cache/);
    expect(() => submit(engine, tokens(60), 5)).not.toThrow(); // 64 slots exactly
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

  it('kv usage rises while running and returns to 0; blocks stay cached after', () => {
    const clock = new ManualClock();
    const engine = new Engine(BASE, clock);
    submit(engine, tokens(320), 17); // 320 prompt tokens = 20 blocks now; 320 + 16 = 336 slots = 21 blocks by the end
    expect(engine.stats().usedBlocks).toBe(20);
    clock.runAll();
    expect(engine.stats()).toMatchObject({ usedBlocks: 0, kvUsage: 0, reservedBlocks: 0 });
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
    expect(engine.peekCachedTokens(p, 'a')).toBe(192);
    expect(engine.peekCachedTokens(p, 'b')).toBe(0);
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
