/**
 * Where a `BlockStored` event's blocks start their chain of kvroute block keys: which LoRA adapter's root, and which
 * `cache_salt` the first block was hashed with. Requests compute the same two from their `model` and `cache_salt`
 * (`precise-prefix-cache-scorer`'s `prepareRequest`), so both sides must read vLLM's extra keys alike.
 *
 * vLLM's extra keys of a block (vllm-project/vllm: vllm/v1/core/kv_cache_utils.py `generate_block_hash_extra_keys`,
 * read at main 001cabc1; the same order since v0.10.0) are, in order:
 *   `lora_extra_keys + mm_extra_keys + cache_salt_keys + prompt_embeds_keys`
 * - LoRA, on every block of a LoRA request: `[lora_request.lora_name]`, a string (vLLM >= #27577, which also added
 *   `lora_name` to `BlockStored`);
 *   `[lora_int_id]`, an int, before it (events report it as `lora_id` from #27728; vLLM 0.10.x failed on them), named here from the pool's `--lora-modules` order when configured;
 * - multimodal: one `(identifier, offset)` tuple per item in the block (vLLM >= #36708); before it the bare identifier
 *   string, which `BlockStored` carries from #33304 until #36708;
 * - `[cache_salt]`, a string, on the block that starts at token 0 only, and only when the salt is non-empty;
 * - prompt embeddings: a 32-byte SHA-256 digest per block.
 * `BlockStored` carries them per block in `extra_keys` since #33304 (vllm/v1/core/block_pool.py `cache_full_blocks`:
 * one entry per stored block, `None` for a block without any). So on the chain's first block the salt is the string
 * that follows the LoRA name, never the first string: taking the first string made every LoRA block "salted" with its
 * adapter's name, and no request for that adapter ever matched.
 */
import type { BlockStored } from '@kvroute/protocol/kv-events';

export interface ChainStart {
  /**
   * The adapter whose root the chain hangs from: `''` for the base model, the LoRA name, or, for a vLLM that reports
   * only `lora_id` (#27728 to #27577), unless `loraAdapters` names it, a name no request can carry, so such blocks never count for the base model (vLLM hashed
   * them with the LoRA id, so a base-model request cannot hit them) nor for an adapter the EPP cannot name.
   */
  readonly adapter: string;
  /** The first block's `cache_salt`, when the chain starts at token 0 and the event's extra keys carry one. */
  readonly cacheSalt?: string;
}

/** The adapter name for blocks whose LoRA vLLM reported by id only: NUL-prefixed, so no served model name equals it. */
export function unnamedLoraAdapter(loraId: number): string {
  return `\u0000lora-id:${loraId}`;
}

/**
 * Whether an event's blocks start a chain: no parent, or a parent of 0, which llm-d-kv-cache (pool.go @ v0.7.1) reads
 * as an unset uint64 and vLLM's hash_block_tokens as a falsy parent (kv_cache_utils.py @ v0.10.0).
 */
export function startsChain(event: Pick<BlockStored, 'parentBlockHash'>): boolean {
  return event.parentBlockHash === null || event.parentBlockHash === '0';
}

/**
 * @param loraAdapters the pool's adapter names in the order of its pods' `--lora-modules`, for events that name a LoRA
 *   by id only (vLLM from #27728 until #27577): vLLM numbers the adapters it loads at start-up 1, 2, … in that order
 *   (vllm/entrypoints/openai/serving_models.py @ v0.10.0: `init_static_loras` loads them one by one, and
 *   `load_lora_adapter` takes each `lora_int_id` from a counter starting at 0, `inc(1)` per load), so id i is the
 *   i-th name. An id beyond the list (an adapter loaded at run time, whose id depends on each pod's history) stays
 *   unnamed.
 */
export function chainStartOf(event: BlockStored, loraAdapters: readonly string[] = []): ChainStart {
  const loraName = event.loraName ?? null;
  const adapter = loraName !== null
    ? loraName
    : event.loraId !== null ? loraAdapters[event.loraId - 1] ?? unnamedLoraAdapter(event.loraId) : '';
  // Only a chain that starts at the first block (no parent) begins with the block the salt is on.
  if (!startsChain(event)) return { adapter };
  const first = event.extraKeys?.[0];
  if (!first || first.length === 0) return { adapter };
  // The LoRA key comes first when the request had an adapter: its name (or, before #27577, its int id).
  const skip = event.loraId !== null || loraName !== null ? 1 : 0;
  // Multimodal keys are tuples (arrays) and prompt-embedding digests bytes, so the salt is the one string left; read
  // from the end, because multimodal keys that were bare identifier strings (#33304 to #36708) come before it.
  for (let i = first.length - 1; i >= skip; i--) {
    const key = first[i];
    if (typeof key !== 'string') continue;
    // A bare multimodal identifier and no salt: the last string is the image's. The salt is on block 0 only, while an
    // item spanning blocks repeats its identifier in the next block's keys, so a string seen again is not the salt. An
    // image ending within block 0 cannot be told from a salt; its chain is then keyed apart (a miss, never a false hit).
    // Every block's keys start with the LoRA key, so only what follows it is compared: a salt equal to the adapter's
    // name is still the salt.
    if (event.extraKeys!.slice(1).some((keys) => keys?.slice(skip).includes(key) === true)) return { adapter };
    return { adapter, cacheSalt: key };
  }
  return { adapter };
}
