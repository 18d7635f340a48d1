import { ManualClock } from '../src/clock';
import { Engine, type EngineConfig, type RequestResult } from '../src/engine';
import { ENGINE_BASE as BASE } from './helpers';

const tokens = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => (seed * 100_003 + i * 7919) % 150_000);

interface Tracked { result?: RequestResult; firstToken?: number }

function submit(engine: Engine, prompt: number[], t: Tracked = {}): Tracked {
  engine.submit({ promptTokens: prompt, outputTokens: [1000, 1001] }, {
    onToken: (k, _id, at) => { if (k === 0) t.firstToken = at; },
    onFinish: (r) => { t.result = r; },
  });
  return t;
}

/** A 2,000-token uncached prompt at 0 ms and a 200-token one at `arrival` ms (100 by default), on one pod. */
function longThenShort(config: EngineConfig, arrival = 100): { long: Tracked; short: Tracked } {
  const clock = new ManualClock();
  const engine = new Engine(config, clock);
  const long = submit(engine, tokens(2000, 1));
  const short: Tracked = {};
  clock.setTimer(arrival, () => submit(engine, tokens(200, 2), short));
  clock.runAll();
  return { long, short };
}

// vllm/v1/core/sched/scheduler.py @ v0.10.0, schedule(): `if 0 < long_prefill_token_threshold < num_new_tokens:
// num_new_tokens = long_prefill_token_threshold`, in the running loop and the waiting loop alike.
describe('--long-prefill-token-threshold (vLLM v0.10.0 SchedulerConfig.long_prefill_token_threshold)', () => {
  it('off (0, the default): the short prompt waits for the whole long prefill, as one 2,000-token step', () => {
    const { long, short } = longThenShort(BASE);
    // The long prompt is one chunk: 20 + 2,000 × 0.25 = 520. The short one arrived during that step; it is taken in
    // the overhead before the lane frees (500) and prefills when it does: 520 + 50 = 570, a TTFT of 470 ms.
    expect(long.firstToken).toBe(520);
    expect(short.firstToken).toBe(570);
    expect(short.result?.admittedMs).toBe(500);
  });

  it('256: the long prompt is computed 256 tokens a step, and the short one joins the step after its arrival', () => {
    const { long, short } = longThenShort({ ...BASE, longPrefillTokenThreshold: 256 });
    // Steps of the long prompt: [20, 84] and [84, 148]; the short one arrives during the second, is taken in at its
    // end, and shares the third with the long prompt's chunk [148, 212]: its own prefill after the overhead and that
    // chunk, [212, 262], and its first token at the step's end, 262 (TTFT 162 ms against 470 without the cap).
    expect(short.firstToken).toBe(262);
    expect(short.result?.admittedMs).toBe(148);
    // The long prompt's 8 chunks (7 × 256 + 208 tokens, 500 ms of lane time) now carry the short one's 50 ms too: the
    // lane never idles, so its first token comes at 20 + 500 + 50 = 570 instead of 520.
    expect(long.firstToken).toBe(570);
    expect(long.result?.cachedTokens).toBe(0);
  });

  it('a cap at or above the prompt changes nothing, and 0 or below means no cap', () => {
    const off = longThenShort(BASE);
    for (const threshold of [2000, 4096, 0, -5]) {
      const run = longThenShort({ ...BASE, longPrefillTokenThreshold: threshold });
      expect([run.long.firstToken, run.short.firstToken]).toEqual([off.long.firstToken, off.short.firstToken]);
    }
  });

  it('the cap also splits a prompt that arrives alone (each chunk one step), without changing its lane time', () => {
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, longPrefillTokenThreshold: 500 }, clock);
    const t = submit(engine, tokens(2000, 3));
    clock.runAll();
    // 4 chunks of 500 tokens, back to back on the lane: 20 + 4 × 125 = 520, as without the cap.
    expect(t.firstToken).toBe(520);
  });

  it('a lane between two chunks of one prompt takes a waiting request only at that prompt\'s next step, whenever it arrived', () => {
    // vLLM takes a request that arrives during a step at the step's end. The long prompt's second step is [84, 148]:
    // arriving at 100, 128 or 147, the short prompt is scheduled in the step at 148 beside the long one's third chunk
    // (first token 262, as above). The lane's admission window (its last overhead before it frees) is for a lane whose
    // prefill ends: opened here by whatever event fell into [128, 148), it let the short prompt jump the long one's
    // chunk (first token 198 arriving at 128, ahead of 262 arriving at 100) or idle the lane (147: long prompt at 589).
    for (const arrival of [100, 128, 130, 147]) {
      const { long, short } = longThenShort({ ...BASE, longPrefillTokenThreshold: 256 }, arrival);
      expect([arrival, short.result?.admittedMs, short.firstToken, long.firstToken]).toEqual([arrival, 148, 262, 570]);
    }
  });

  it('the first chunk\'s lane is no different: a request arriving during it joins the second step', () => {
    // The long prompt's first step is [20, 84]; arriving at 30 or 70 the short prompt is taken at 84 and computed after
    // the long one's second chunk, [148, 198], its first token at that step's end.
    for (const arrival of [30, 70]) {
      const { long, short } = longThenShort({ ...BASE, longPrefillTokenThreshold: 256 }, arrival);
      expect([arrival, short.result?.admittedMs, short.firstToken, long.firstToken]).toEqual([arrival, 84, 198, 570]);
    }
  });

  it('the lane frees after the last chunk as after a prefill held whole: the next request is taken the overhead before', () => {
    // Alone, the 2,000-token prompt's last chunk (208 tokens) is [468, 520]. A short prompt arriving at 470 is taken at
    // 500 and prefills when the lane frees, [520, 570], as without the cap (the first test: admitted at 500, 570).
    for (const threshold of [0, 256]) {
      const { long, short } = longThenShort({ ...BASE, longPrefillTokenThreshold: threshold }, 470);
      expect([threshold, short.result?.admittedMs, short.firstToken, long.firstToken]).toEqual([threshold, 500, 570, 520]);
    }
  });

  it('the running requests share the step\'s budget in their order, a decode token and a chunk alike, and the waiting request gets what they leave (scheduler.py @ v0.10.0, the running loop)', () => {
    // max-num-batched-tokens 300. A (2,000 tokens) takes 256 a step; B (600, at 30) is scheduled at 84 with the 44
    // tokens A's chunk leaves, and as a running request keeps getting 44 a step behind A's 256 (vLLM's
    // `min(num_new_tokens, token_budget)`), then 92 beside A's last 208 at 534. At 609 A decodes (1 token), B takes
    // its last 244, and C (600 tokens, at 540) the 55 left; each step one batch: A's first token 609, B's 683.75, and
    // C's after its chunks of 256, 256 and 33, at 820. (Before the running loop shared the budget, B took 256 a step
    // beside A's, a step of 512 tokens over a 300-token budget, and C was scheduled at 554.)
    const clock = new ManualClock();
    const engine = new Engine({ ...BASE, maxNumBatchedTokens: 300, longPrefillTokenThreshold: 256 }, clock);
    const a = submit(engine, tokens(2000, 1));
    const b: Tracked = {};
    const c: Tracked = {};
    clock.setTimer(30, () => submit(engine, tokens(600, 2), b));
    clock.setTimer(540, () => submit(engine, tokens(600, 3), c));
    clock.runAll();
    expect([b.result?.admittedMs, c.result?.admittedMs]).toEqual([84, 609]);
    expect([a.firstToken, b.firstToken, c.firstToken]).toEqual([609, 683.75, 820]);
  });

  it('with two lanes, a request taken in at one lane\'s step does not go ahead of the other lane\'s next chunk', () => {
    // A (1,500 tokens) on lane 0 from 0 ms, B (700) on lane 1 from 10 ms; C (100 tokens, at 50) is taken at A's second
    // step, 84, whose chunk is [84, 148] on lane 0. Lane 1's next step is B's at 94: C queued on lane 1 would be
    // computed [104, 129] ahead of B's chunk, idling lane 1 over [94, 104] and putting B's chunks 35 ms later. On lane
    // 0 it follows A's chunk, [148, 173], its first token at that step's end; B's first token is as if C never came.
    const cfg = { ...BASE, prefillConcurrency: 2, longPrefillTokenThreshold: 256 };
    const run = (withC: boolean) => {
      const clock = new ManualClock();
      const engine = new Engine(cfg, clock);
      submit(engine, tokens(1500, 1));
      const b: Tracked = {};
      const c: Tracked = {};
      clock.setTimer(10, () => submit(engine, tokens(700, 2), b));
      if (withC) clock.setTimer(50, () => submit(engine, tokens(100, 3), c));
      clock.runAll();
      return { b: b.firstToken, c: c.firstToken, cAdmitted: c.result?.admittedMs };
    };
    const alone = run(false);
    expect(run(true)).toEqual({ b: alone.b, c: 173, cAdmitted: 84 });
  });

  it('refuses a non-integer threshold', () => {
    expect(() => new Engine({ ...BASE, longPrefillTokenThreshold: 1.5 }, new ManualClock())).toThrow(/longPrefillTokenThreshold/);
  });
});
