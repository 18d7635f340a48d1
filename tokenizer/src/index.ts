/** A model's tokenizer and chat template applied as vLLM applies them. */
export { ModelTokenizer, piecewiseEncodingSafe, memoEntryBytes, MEMO_ENTRY_BYTES, DEFAULT_MEMO_BYTES, type PromptTokens, type RenderOptions, type TemplateMessage } from './model-tokenizer';
export { resolveTokenizerFiles, defaultHubCache, TokenizerNotFoundError, type ResolveOptions, type TokenizerFiles } from './resolve';
export { BUNDLED_TOKENIZER_MODEL, hasBundledTokenizer } from './bundled';
