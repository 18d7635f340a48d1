/**
 * The best hit rate any router could reach on a recorded run: replay every request, in the order they were sent,
 * against one simulated pod whose KV cache never evicts. Every shared prefix is then computed exactly once, which is
 * the bound a perfect router with unlimited cache approaches. Using the simulator itself keeps the bound in the same
 * units and under the same cache rules (block size, full blocks only, cached replies) as the measured hit rate.
 */
import { ChatClient } from './client';
import { ENTRY, startProcess } from './processes';
import type { RequestRecord } from './run';
import { prefixCacheCounters, type SimulatorSettings } from './stack';

export async function bestHitRate(records: readonly RequestRecord[], sim: SimulatorSettings, maxTokens: number, logFile?: string): Promise<number> {
  const ordered = [...records].sort((a, b) => a.startedMs - b.startedMs);
  // Room for every token of every request, and a clock fast enough that the replay costs no time.
  const tokens = ordered.reduce((n, r) => n + (r.result.promptTokens ?? 8192) + maxTokens, 0);
  const blocks = Math.ceil(tokens / sim.blockSize) + 1024;
  const pod = await startProcess('oracle', ENTRY.sim, [
    '--host', '127.0.0.1', '--port', '0', '--model', sim.model, '--served-model-name', sim.model, '--pod-name', 'oracle',
    '--block-size', String(sim.blockSize), '--kv-cache-blocks', String(blocks), '--max-num-seqs', '1024',
    '--max-model-len', String(sim.maxModelLen), '--time-scale', '1000',
  ], { logFile });
  const address = `127.0.0.1:${pod.info.port as number}`;
  const client = new ChatClient(`http://${address}`, sim.model);
  try {
    for (const r of ordered) await client.chat(r.messages, maxTokens);
    const { hits, queries } = await prefixCacheCounters([address]);
    return queries > 0 ? hits / queries : 0;
  } finally {
    client.close();
    await pod.stop();
  }
}
