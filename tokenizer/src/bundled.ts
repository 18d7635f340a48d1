/**
 * Which models' tokenizers ship inside this package (and so inside the EPP image): the Qwen3 family shares one tokenizer
 * and chat template across sizes, and kvroute ships it for its demo model. A module of its own so that the cdk8s app
 * can tell at synth whether a precise-scoring EPP needs the tokenizer mounted, without loading a tokenizer.
 */
export const BUNDLED_TOKENIZER_MODEL = /^Qwen\/Qwen3-[0-9.]+B(-Base)?$/;

/** Whether `model`'s tokenizer ships with kvroute (`resolveTokenizerFiles` finds it with no path and no cache). */
export function hasBundledTokenizer(model: string): boolean {
  return BUNDLED_TOKENIZER_MODEL.test(model);
}
