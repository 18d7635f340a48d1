/** A model's tokenizer and chat template applied as vLLM applies them. */
export { ModelTokenizer, piecewiseEncodingSafe, type PromptTokens, type RenderOptions, type TemplateMessage } from './model-tokenizer';
export { resolveTokenizerFiles, defaultHubCache, TokenizerNotFoundError, type ResolveOptions, type TokenizerFiles } from './resolve';
