/**
 * The simulator's KV cache under memory pressure, through its real HTTP server and its real ZMQ KV-event publisher on
 * loopback, against vLLM v0.10.0: vllm/v1/core/sched/scheduler.py (`update_from_output`, walking `num_scheduled_tokens`
 * since vLLM #20739), vllm/v1/core/block_pool.py (`free_blocks`, `get_new_blocks` → `_maybe_evict_cached_block`),
 * vllm/v1/core/kv_cache_utils.py (`FreeKVCacheBlockQueue`) and vllm/v1/core/single_type_kv_cache_manager.py (`free`:
 * `reversed(req_blocks)`).
 */
import { decode } from '@msgpack/msgpack';
import { ManualClock } from '../src/clock';
import { startSimulator, type Simulator } from '../src/server';
import { http, waitFor, type HttpResult } from './helpers';
import { KvEventCollector } from './kv-event-collector';

const MODEL = 'Qwen/Qwen3-0.6B';
const tokensFrom = (start: number, n: number): number[] => Array.from({ length: n }, (_, i) => start + i);
/** A batch's events, decoded with @msgpack/msgpack alone (64-bit hashes as bigint, compared as strings). */
const eventsOf = (payload: Uint8Array): unknown[][] => (decode(payload, { useBigInt64: true }) as unknown[])[1] as unknown[][];

describe('KV pressure through HTTP and ZMQ (vLLM v0.10.0)', () => {
  let sim: Simulator;
  let clock: ManualClock;
  let sub: KvEventCollector;

  beforeEach(async () => {
    clock = new ManualClock();
    sim = await startSimulator({
      port: 0,
      clock,
      blockSize: 16,
      kvCacheBlocks: 16, // the null block + 15 that hold KV
      maxModelLen: 256,
      maxNumSeqs: 2,
      maxNumBatchedTokens: 512,
      prefixCachingHashAlgo: 'sha256_cbor_64bit',
      pythonHashSeed: '0',
      kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://127.0.0.1:*', topic: 'kv' },
    });
    sub = new KvEventCollector('kv');
    sub.sub.connect(sim.kvEvents!.endpoint);
    await sub.ready();
  });

  afterEach(async () => {
    await sub.close();
    await sim.close();
  });

  const post = (prompt: number[], maxTokens: number): Promise<HttpResult> =>
    http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: maxTokens });

  /** Every event published so far, in order. */
  const allEvents = (): unknown[][] => sub.got.flatMap((m) => eventsOf(m.payload));
  /** The hashes BlockStored reported for blocks holding these tokens. */
  const storedFor = (tokens: number[]): string[] => {
    const out: string[] = [];
    for (const e of allEvents()) {
      if (e[0] !== 'BlockStored') continue;
      const ids = e[3] as number[];
      if (ids.every((t, i) => t === tokens[i])) out.push(...(e[1] as unknown[]).map(String));
    }
    return out;
  };

  it('requests finishing in one step free their blocks in running order, so the earlier one\'s blocks are evicted first (update_from_output walks num_scheduled_tokens, scheduler.py @ v0.10.0)', async () => {
    const A = tokensFrom(1000, 32);
    const C = tokensFrom(2000, 32);
    const B = tokensFrom(3000, 32);
    // A and C are scheduled in one step (max-num-seqs 2) and decode side by side; B waits for a slot. When C finishes,
    // B is scheduled in the step that also schedules A's last decode, so A's last token and B's only token come from
    // one step: vLLM's update_from_output then frees A (scheduled first in that step, by the running loop) and B (by the
    // waiting loop, after it) in that order, and their freed blocks join the free queue in that order, each request's
    // tail first.
    const a = post(A, 3);
    await waitFor(() => sim.engine.stats().running === 1, 'A to be scheduled');
    const c = post(C, 2);
    await waitFor(() => sim.engine.stats().running === 2, 'C to be scheduled beside A');
    const b = post(B, 1);
    await waitFor(() => sim.engine.stats().waiting === 1, 'B to wait for a running slot');
    clock.runAll();
    const done = await Promise.all([a, c, b]);
    expect(done.map((r) => r.status)).toEqual([200, 200, 200]);
    await waitFor(() => storedFor(B).length === 2, 'B\'s BlockStored');
    const [a0, a1] = storedFor(A);
    const [c0, c1] = storedFor(C);
    const [b0, b1] = storedFor(B);
    expect(sim.engine.stats()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 1 });

    // The free queue now: 7 never-used blocks, C's 3 (its partial decode block, C1, C0), A's 3 (partial, A1, A0),
    // B's 2 (B1, B0). A 12-block prompt takes the first 12: the evictions are C1, C0 and A1, one BlockRemoved each.
    const before = sub.got.length;
    const flood = await (async () => {
      const r = post(tokensFrom(9000, 192), 1);
      await waitFor(() => sim.engine.stats().running === 1, 'the flood to be scheduled');
      clock.runAll();
      return r;
    })();
    expect(flood.status).toBe(200);
    await waitFor(() => sub.got.length > before, 'the flood\'s batch');
    const batch = sub.got.slice(before).flatMap((m) => eventsOf(m.payload));
    const removed = batch.filter((e) => e[0] === 'BlockRemoved').map((e) => String((e[1] as unknown[])[0]));
    expect(removed).toEqual([c1, c0, a1]);
    expect(new Set([a0, a1, b0, b1, c0, c1]).size).toBe(6);
    expect(removed).not.toContain(b1);
  });
});
