export interface TokenizerFiles {
    /** `tokenizer.json` (the fast tokenizer: normalizer, pre-tokenizer, model, added tokens). */
    readonly tokenizerJson: string;
    /** `tokenizer_config.json` (the chat template and special-token names). */
    readonly tokenizerConfigJson: string;
    /** Where they were found, for logs. */
    readonly source: 'path' | 'hf-cache' | 'bundled';
}
export interface ResolveOptions {
    /** The model whose tokenizer is wanted, as vLLM names it (`Qwen/Qwen3-0.6B`). */
    readonly model: string;
    /** A folder holding `tokenizer.json` and `tokenizer_config.json`; searched first. */
    readonly path?: string;
    /**
     * The Hugging Face hub cache. @default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (the
     * huggingface_hub defaults vLLM downloads into)
     */
    readonly hubCache?: string;
}
export declare class TokenizerNotFoundError extends Error {
    constructor(model: string, tried: readonly string[]);
}
export declare function defaultHubCache(env?: NodeJS.ProcessEnv): string;
/** Finds the tokenizer files for a model: the explicit path, then the hub cache, then the bundled Qwen3 copy. */
export declare function resolveTokenizerFiles(options: ResolveOptions): TokenizerFiles;
