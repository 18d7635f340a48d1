/**
 * The context a chat template renders with, as vLLM 0.10.0 and transformers build it: `_preprocess_chat`
 * (vllm/entrypoints/openai/serving_engine.py) gathers the request's `add_generation_prompt`, `tools` and `documents`,
 * then updates them with `chat_template_kwargs`, so a kwarg of the same name wins; transformers' `apply_chat_template`
 * renders with the tokenizer's special-tokens map, those arguments and `messages`.
 */
export interface ChatTemplateContextInput {
  /** The special-tokens map (`bos_token`, `eos_token`, …) as the template may reference it. */
  readonly specialTokens: Readonly<Record<string, string>>;
  readonly messages: readonly unknown[];
  readonly addGenerationPrompt: boolean;
  readonly tools?: readonly unknown[];
  readonly documents?: readonly unknown[];
  /** vLLM's `chat_template_kwargs`. */
  readonly kwargs?: Readonly<Record<string, unknown>>;
}

export function chatTemplateContext(input: ChatTemplateContextInput): Record<string, unknown> {
  const context: Record<string, unknown> = { ...input.specialTokens, add_generation_prompt: input.addGenerationPrompt };
  if (input.tools !== undefined) context.tools = input.tools;
  if (input.documents !== undefined) context.documents = input.documents;
  for (const [k, v] of Object.entries(input.kwargs ?? {})) if (k !== 'messages') context[k] = v;
  context.messages = input.messages;
  return context;
}
