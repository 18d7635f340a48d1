import type { PromptInput } from '@kvroute/protocol/openai';
import type { TokenizerFiles } from './resolve';
/** A chat message as the template sees it: `content` a string (vLLM's "string" content format). */
export interface TemplateMessage {
    role: string;
    content: string;
    [key: string]: unknown;
}
export interface RenderOptions {
    /** @default true */
    readonly addGenerationPrompt?: boolean;
    /** @default false */
    readonly continueFinalMessage?: boolean;
    readonly tools?: readonly unknown[];
    /** vLLM's `chat_template_kwargs`, e.g. `{ enable_thinking: false }`. */
    readonly chatTemplateKwargs?: Readonly<Record<string, unknown>>;
}
export interface PromptTokens {
    readonly ids: Uint32Array;
    /**
     * False when the request carries what the template renders into tokens kvroute cannot reproduce (images, audio):
     * the text around them is tokenized, but block boundaries after the first such part may differ from vLLM's.
     */
    readonly exact: boolean;
}
export declare class ModelTokenizer {
    private readonly tokenizer;
    private readonly config;
    readonly vocabSize: number;
    private readonly template?;
    private readonly specialIds;
    private readonly specialSplit?;
    private readonly memo;
    private addedPrefix?;
    private constructor();
    /**
     * Loads a tokenizer (the JSON parse and table build take ~0.4 s for Qwen3; share the instance).
     * @param memoChars characters of text whose token ids are remembered. @default 32 Mi
     */
    static load(files: TokenizerFiles, memoChars?: number): ModelTokenizer;
    /**
     * Token ids of `text`. `addSpecialTokens` mirrors vLLM: true for /v1/completions prompts (a BOS where the model has
     * one), false for rendered chat prompts, whose template placed the special tokens.
     */
    encode(text: string, addSpecialTokens?: boolean): Promise<Uint32Array>;
    /** Plain, unsplit encoding: the reference the memoized path must equal. */
    encodeWhole(text: string, addSpecialTokens?: boolean): Promise<Uint32Array>;
    /** Renders the chat template as transformers' `apply_chat_template` does for vLLM. */
    renderChat(messages: readonly TemplateMessage[], options?: RenderOptions): string;
    /** The ids vLLM computes for a request's input: completions encode the prompt, chats render then encode. */
    promptTokens(input: PromptInput): Promise<PromptTokens | undefined>;
    /** What the post-processor adds in front of a single sequence (a BOS for Llama-style models, nothing for Qwen3). */
    private specialPrefix;
}
