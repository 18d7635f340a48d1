/** What a tokenizer's post-processor adds around a text (huggingface/tokenizers `PostProcessor::process`). */

/** How many tokens a tokenizer's post-processor adds around a single sequence encoded with special tokens. */
export interface PostProcessorAdds {
  /** In front (Llama 3's BOS: 1; Qwen3: 0). */
  readonly front: number;
  /** Behind (an EOS or BERT's [SEP]: 1; Qwen3: 0). */
  readonly back: number;
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
