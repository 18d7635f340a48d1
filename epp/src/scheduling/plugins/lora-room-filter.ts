import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Filter } from '../framework';
import { definePlugin, parameters } from '../plugin';

export interface LoraRoomFilterParameters {
  /**
   * Models served as base models, not LoRA adapters: their requests are never filtered, since vLLM schedules them
   * whatever adapters run. `KvAwareRouting` sets the pool's served model name.
   * @default [] (every request is taken for an adapter request)
   */
  baseModels?: string[];
}

/**
 * `lora-room-filter` (kvroute's own): for a LoRA adapter request, drops the pods that cannot start it now — pods whose
 * `vllm:lora_requests_info` shows `max_lora` adapters already running or waiting, none of them the request's. vLLM
 * schedules at most `--max-loras` adapters at once and skips a waiting request for one more until a running adapter
 * has no request left (vllm/v1/core/sched/scheduler.py @ v0.10.0 lines 363-370), so such a pod makes the request wait
 * behind another adapter's traffic. Kept: pods running the adapter, pods with room for one more, pods without LoRA
 * state. When no pod is left it keeps them all (the request waits wherever it goes, and the scorers choose where).
 *
 * A filter, not a weight: in kvroute's default config the no-hit LRU (weight 4) and the prefix scorer (3) would
 * outweigh GIE's `lora-affinity-scorer` (0 to 1) for exactly the requests that need it, new and cold adapter requests.
 * Among the pods kept, the default scorers decide. GIE v1.5.0 has no such filter (its LoRA affinity is the scorer);
 * its v0.3 scheduler had a LoRA affinity filter of the same intent.
 */
export class LoraRoomFilter implements Filter {
  readonly type = 'lora-room-filter';
  /** Not an eligibility rule: it never empties the candidates (see above). */
  readonly emptyResultReason = 'no-endpoints' as const;
  private readonly baseModels: ReadonlySet<string>;

  constructor(readonly name: string, parameters: Required<LoraRoomFilterParameters>) {
    this.baseModels = new Set(parameters.baseModels);
  }

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const model = cycle.request.model;
    if (this.baseModels.has(model)) return candidates;
    let kept: EndpointSnapshot[] | undefined;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      if (this.canStart(c, model)) {
        kept?.push(c);
      } else if (kept === undefined) {
        kept = candidates.slice(0, i);
      }
    }
    if (kept === undefined) return candidates;
    return kept.length > 0 ? kept : candidates;
  }

  private canStart(c: EndpointSnapshot, model: string): boolean {
    const lora = c.metrics.lora;
    if (lora === undefined) return true;
    return lora.running.includes(model) || lora.running.length + lora.waiting.length < lora.maxLora;
  }
}

export const loraRoomFilter = definePlugin({
  type: 'lora-room-filter',
  kinds: ['filter'],
  parameters: parameters<LoraRoomFilterParameters>((fields) => ({
    baseModels: fields.stringList('baseModels', []),
  })),
  create: (name, resolved) => new LoraRoomFilter(name, resolved),
});
