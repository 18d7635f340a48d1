import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type Scorer } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/**
 * `lora-affinity-scorer`: prefers pods that already run the request's LoRA adapter (its `model`), from each pod's
 * `vllm:lora_requests_info`: 1 when the adapter is running there, 0.8 when the pod has room for another adapter
 * (running + waiting adapters < `max_lora`), 0.6 when the adapter is only waiting there, else 0. A pod that exports no
 * LoRA state (LoRA off) scores 0, like every pod of such a pool.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/scheduling/scorer/loraaffinity/lora_affinity.go @ v1.5.0
 *   (the same rule in llm-d/llm-d-router @ v0.10.0)
 */
export class LoraAffinityScorer implements Scorer {
  readonly type = 'lora-affinity-scorer';

  constructor(readonly name: string) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const model = cycle.request.model;
    for (let i = 0; i < candidates.length; i++) {
      const lora = candidates[i]!.metrics.lora;
      if (lora === undefined) continue; // out is zero-filled
      if (lora.running.includes(model)) out[i] = 1;
      else if (lora.running.length + lora.waiting.length < lora.maxLora) out[i] = 0.8;
      else if (lora.waiting.includes(model)) out[i] = 0.6;
    }
  }
}

export const loraAffinityScorer = definePlugin({
  type: 'lora-affinity-scorer',
  kinds: ['scorer'],
  parameters: NO_PARAMETERS,
  create: (name) => new LoraAffinityScorer(name),
});
