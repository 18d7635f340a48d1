/**
 * vLLM's `truncate_prompt_tokens` (vllm/entrypoints/openai/serving_engine.py @ v0.10.0), on ids already computed.
 *
 * A token-id prompt is sliced: `prompt_ids[-truncate_prompt_tokens:]` (`_normalize_prompt_tokens_to_input`). A text
 * prompt (and a rendered chat) is not: it is tokenized with `tokenizer(prompt, add_special_tokens=…, truncation=True,
 * max_length=truncate_prompt_tokens)` (`_normalize_prompt_text_to_input`) by a tokenizer vLLM loads with
 * `truncation_side="left"` for generate models (ModelConfig, vllm/config.py; `init_tokenizer_from_configs`). transformers'
 * fast tokenizer hands that to the Rust tokenizer as `TruncationParams { max_length, direction: Left, strategy:
 * LongestFirst, stride: 0 }` (tokenization_utils_fast.py `set_truncation_and_padding`), and the Rust `post_process`
 * (huggingface/tokenizers tokenizers/src/tokenizer/mod.rs) truncates the text's own tokens to
 * `max_length - post_processor.added_tokens(false)` *before* the post-processor adds its tokens, when
 * `add_special_tokens` is on and it adds any (`truncate_encodings`, tokenizers/src/utils/truncation.rs). So a BOS model
 * keeps its BOS and the text's last n − 1 tokens, where a plain slice would drop the BOS.
 *
 * n below the number of added tokens (1 on a model that adds a BOS and an EOS) is not reproduced: `max_length -
 * n_added_tokens` is a `usize` subtraction that underflows, and what the tokenizer then keeps depends on its build and
 * version (the `tokenizers` Node binding keeps the whole of one text and the last word of another). kvroute keeps the
 * whole encoding; such a prompt is shorter than any KV block either way.
 */

/** How many tokens a tokenizer's post-processor adds around a single sequence encoded with special tokens. */
export interface PostProcessorAdds {
  /** In front (Llama 3's BOS: 1; Qwen3: 0). */
  readonly front: number;
  /** Behind (an EOS or BERT's [SEP]: 1; Qwen3: 0). */
  readonly back: number;
}

/**
 * The ids vLLM keeps of a prompt of `ids` under `truncate_prompt_tokens` `keep` (undefined: no truncation). `added`
 * is what the post-processor put into `ids` (a text encoded with special tokens); leave it out for a token-id prompt,
 * or a text encoded without special tokens, which are cut plainly to their last `keep` ids.
 */
export function truncatePromptIds(ids: Uint32Array, keep: number | undefined, added?: PostProcessorAdds): Uint32Array {
  if (keep === undefined) return ids;
  const front = added?.front ?? 0;
  const back = added?.back ?? 0;
  const n = front + back;
  if (n === 0) return ids.length > keep ? ids.slice(ids.length - keep) : ids;
  // The usize underflow (see above): not reproduced.
  if (keep < n) return ids;
  const body = ids.subarray(front, ids.length - back);
  const room = keep - n;
  if (body.length <= room) return ids;
  const out = new Uint32Array(keep);
  out.set(ids.subarray(0, front), 0);
  out.set(body.subarray(body.length - room), front);
  out.set(ids.subarray(ids.length - back), front + room);
  return out;
}

/**
 * What the post-processor adds, from a probe text encoded with special tokens (`withSpecial`) and without
 * (`without`): the tokens before and after the text's own. The text's own ids are found where they first occur
 * whole; a probe whose own ids are empty leaves every added token in front.
 */
export function postProcessorAddsOf(withSpecial: ArrayLike<number>, without: ArrayLike<number>): PostProcessorAdds {
  const extra = withSpecial.length - without.length;
  if (extra <= 0) return { front: 0, back: 0 };
  if (without.length === 0) return { front: extra, back: 0 };
  for (let at = 0; at <= extra; at++) {
    let same = true;
    for (let i = 0; i < without.length && same; i++) same = withSpecial[at + i] === without[i];
    if (same) return { front: at, back: extra - at };
  }
  // The post-processor changed the text's own tokens (none of the stock ones do): count them as added in front.
  return { front: extra, back: 0 };
}
