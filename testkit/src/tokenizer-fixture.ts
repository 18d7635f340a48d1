/**
 * A tokenizer whose post-processor adds special tokens around the text, for the places that must tell what vLLM's
 * tokenizer adds (a BOS in front, an EOS behind) from the text's own tokens. Qwen3, the tokenizer the repository ships,
 * adds none. Byte-level BPE with no merges: one token per character, so a test can count tokens by characters.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A piece of the post-processor's single-sequence template: `A` is the text, the others special tokens. */
export type TemplatePiece = '<s>' | '</s>' | 'A';

/**
 * `tokenizer.json` for a Llama-style `TemplateProcessing` post-processor of `single` (default: a BOS, then the text):
 * `<unk>` 0, `<s>` 1, `</s>` 2, then printable ASCII, `Ġ` (space) and `Ċ` (line break).
 */
export function templateTokenizerJson(single: readonly TemplatePiece[] = ['<s>', 'A']): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let c = 33; c < 127; c++) vocab[String.fromCharCode(c)] = Object.keys(vocab).length;
  vocab['Ġ'] = Object.keys(vocab).length;
  vocab['Ċ'] = Object.keys(vocab).length;
  const piece = (p: TemplatePiece) => (p === 'A' ? { Sequence: { id: 'A', type_id: 0 } } : { SpecialToken: { id: p, type_id: 0 } });
  const special = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: [special('<s>', 1), special('</s>', 2)],
    // Llama 3's pre-tokenizer, which kvroute encodes in pieces (`piecewiseEncodingSafe`).
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ] },
    decoder: null,
    post_processor: {
      type: 'TemplateProcessing', single: single.map(piece), pair: [...single.map(piece), { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] }, '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } },
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: false, vocab, merges: [] },
  };
}

/** Writes `tokenizer.json` (see `templateTokenizerJson`) and `tokenizer_config.json` (`config`) into `dir`. */
export function writeTemplateTokenizer(dir: string, single: readonly TemplatePiece[], config: Record<string, unknown>): { tokenizerJson: string; tokenizerConfigJson: string } {
  const tokenizerJson = path.join(dir, 'tokenizer.json');
  const tokenizerConfigJson = path.join(dir, 'tokenizer_config.json');
  fs.writeFileSync(tokenizerJson, JSON.stringify(templateTokenizerJson(single)));
  fs.writeFileSync(tokenizerConfigJson, JSON.stringify(config));
  return { tokenizerJson, tokenizerConfigJson };
}
