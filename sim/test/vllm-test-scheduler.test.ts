import type { BlockStored, KvEventBatch } from '@kvroute/protocol/kv-events';
import { ManualClock } from '../src/clock';
import { Engine, type EngineConfig } from '../src/engine';
import { ENGINE_BASE as BASE } from './helpers';

// Scenarios of vllm-project/vllm tests/v1/core/test_scheduler.py @ v0.10.0, replayed on the simulator's engine.

const tokens = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => (seed * 100_003 + i * 7919) % 150_000);

/**
 * Each prompt's chunk sizes, step by step: the tokens of its blocks each step's KV-event batch stores (one batch per
 * scheduler step; each prompt's ids are its own). With chunk ends on block boundaries these are vLLM's
 * `num_scheduled_tokens` per request per step.
 */
function chunksOf(batches: readonly KvEventBatch[], prompts: readonly number[][]): number[][] {
  const owner = new Map<number, number>();
  prompts.forEach((p, i) => p.forEach((t) => owner.set(t, i)));
  const chunks = prompts.map(() => [] as number[]);
  for (const b of batches) {
    const row = prompts.map(() => 0);
    for (const e of b.events) {
      if (e.type !== 'BlockStored') continue;
      const who = owner.get((e as BlockStored).tokenIds[0]!);
      if (who !== undefined) row[who] += (e as BlockStored).tokenIds.length;
    }
    row.forEach((n, i) => { if (n > 0) chunks[i].push(n); });
  }
  return chunks;
}

describe('vLLM tests/v1/core/test_scheduler.py @ v0.10.0', () => {
  // max_num_batched_tokens=1024, long_prefill_token_threshold=400, three 800-token requests. The running loop of
  // Scheduler.schedule() (vllm/v1/core/sched/scheduler.py @ v0.10.0) caps each running request at the threshold, then
  // at what the step's budget has left, and subtracts what it scheduled, decode tokens too: step 1 (waiting loop)
  // 400, 400, 224; step 2 (all running) 400, 400, 224; step 3 1, 1 and the third's 800 − 224 − 224 = 352.
  const config: EngineConfig = { ...BASE, maxNumBatchedTokens: 1024, longPrefillTokenThreshold: 400 };

  it('test_schedule_concurrent_partial_requests: the running requests share the step budget (400/400/224 twice, then 1/1/352)', () => {
    const clock = new ManualClock();
    const batches: KvEventBatch[] = [];
    const engine = new Engine(config, clock, {}, (b) => batches.push(b));
    const prompts = [1, 2, 3].map((seed) => tokens(800, seed));
    const first: number[] = [];
    engine.submitAll(prompts.map((p, i) => ({
      params: { promptTokens: p, outputTokens: [1000, 1001] },
      listener: { onToken: (k: number, _id: number, at: number) => { if (k === 0) first[i] = at; }, onFinish: () => {} },
    })));
    clock.runAll();
    expect(chunksOf(batches, prompts)).toEqual([[400, 400], [400, 400], [224, 224, 352]]);
    // On the simulator's cost model (20 ms overhead, 0.25 ms a token, one batch per step): step 1 is [20, 276], step 2
    // (1,024 tokens) [276, 532], when the first two are computed; step 3 computes the third's 352 beside their decode
    // tokens, [532, 620]. (Before the running loop shared the budget the third took 400 in step 2: 576, 576, 620.)
    expect(first).toEqual([532, 532, 620]);
  });
});
