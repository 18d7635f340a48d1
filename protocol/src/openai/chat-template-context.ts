/**
 * A chat template applied as vLLM 0.10.0 applies it, argument by argument:
 *
 * 1. `_preprocess_chat` (vllm/entrypoints/openai/serving_engine.py:873-880 @ v0.10.0) builds
 *    `dict(chat_template=…, add_generation_prompt=…, continue_final_message=…, tools=…, documents=…)` and then
 *    `.update(chat_template_kwargs)`, so a kwarg of the same name replaces the request's argument, `chat_template`
 *    included; the dict is spread into `apply_hf_chat_template(tokenizer=…, conversation=…, model_config=…, **…)`
 *    (serving_engine.py:890-895). The request's `chat_template` is accepted as is (`request.chat_template or
 *    self.chat_template`, serving_chat.py:195 and serving_tokenization.py:79; no `--trust-request-chat-template` flag
 *    exists in 0.10.0).
 * 2. `apply_hf_chat_template` (vllm/entrypoints/chat_utils.py:1292-1335 @ v0.10.0) takes `chat_template`, `tools`,
 *    `tokenize` (default False) and the deprecated `trust_remote_code` as its own parameters; a non-None
 *    `chat_template` is the template (`resolve_hf_chat_template`, chat_utils.py:398-400, "1st priority"). It calls
 *    transformers' `apply_chat_template(conversation, tools=…, chat_template=…, tokenize=…, **kwargs)` and re-raises
 *    any exception as `ValueError(str(e)) from e`.
 * 3. transformers' `apply_chat_template` (tokenization_utils_base.py @ v4.53, vLLM 0.10.0 requires >= 4.53.2) takes
 *    `documents`, `add_generation_prompt`, `continue_final_message`, `padding`, `truncation`, `max_length`,
 *    `return_tensors`, `return_dict`, `return_assistant_tokens_mask` and `tokenizer_kwargs` as parameters; everything
 *    else is `**kwargs`, merged over the special-tokens map. `render_jinja_template` (utils/chat_template_utils.py
 *    @ v4.53) renders with `messages`, `tools`, `documents`, `add_generation_prompt` and those kwargs, and for
 *    `continue_final_message` cuts the rendering right after the final message's content.
 *
 * So the consumed names never reach the template as variables, and some (`continue_final_message`, `chat_template`,
 * `tokenize` with `return_dict`) change the result or make vLLM refuse the request; `ChatTemplateRefusal` carries
 * what vLLM answers then.
 */

import { PythonFloat } from './python-json';

export interface ChatTemplateContextInput {
  /** The special-tokens map (`bos_token`, `eos_token`, …) as the template may reference it. */
  readonly specialTokens: Readonly<Record<string, string | readonly string[]>>;
  readonly messages: readonly unknown[];
  readonly addGenerationPrompt: boolean;
  /** The request's `continue_final_message`. @default false */
  readonly continueFinalMessage?: boolean;
  readonly tools?: readonly unknown[];
  readonly documents?: readonly unknown[];
  /** vLLM's `chat_template_kwargs`. */
  readonly kwargs?: Readonly<Record<string, unknown>>;
  /** The request's own `chat_template` field (an empty one counts as absent: `request.chat_template or …`). */
  readonly chatTemplate?: string;
}

/** The model's own template as tokenizer_config.json holds it: one text, or named texts. */
export type OwnChatTemplate = string | readonly { readonly name: string; readonly template: string }[];

/** Compiles a template text; the result renders it with a context. Errors thrown are template errors. */
export type CompileChatTemplate = (template: string) => (context: Record<string, unknown>) => string;

/**
 * A request vLLM 0.10.0 refuses while applying the chat template. `message` is the Python exception's text;
 * `response` is what vLLM answers: serving_chat.py:206-209 @ v0.10.0 returns 400 with `f"{e} {e.__cause__}"`, where
 * the cause is the original exception for everything apply_hf_chat_template wraps (so the text twice) and None for what
 * is raised outside it; an AssertionError is not caught at all (500).
 */
export class ChatTemplateRefusal extends Error {
  readonly response: { readonly status: 400 | 500; readonly message: string };

  constructor(
    message: string,
    raised: 'wrapped' | 'direct' | 'uncaught',
    /**
     * The Python exception's class where a route's handling depends on it: serving_chat.py catches RuntimeError (so a
     * RecursionError is its 400), serving_tokenization.py @ v0.10.0 only `(ValueError, TypeError, TemplateError)`.
     */
    readonly pythonException?: 'RecursionError' | 'ValueError',
  ) {
    super(message);
    this.name = 'ChatTemplateRefusal';
    this.response = raised === 'uncaught'
      ? { status: 500, message: 'Internal Server Error' }
      : { status: 400, message: `${message} ${raised === 'wrapped' ? message : 'None'}` };
  }
}

/** Python's truthiness of a JSON value (`if x:`). */
export function pyTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (v instanceof PythonFloat) return v.value !== 0;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** Python's `type(x).__name__` for a JSON value. */
function pyTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (v instanceof PythonFloat) return 'float';
  if (typeof v === 'string') return 'str';
  return Array.isArray(v) ? 'list' : 'dict';
}

/** A JSON object as Python's dict: not an array, not a `PythonFloat`. */
export function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof PythonFloat);
}

/** What `for x in v` iterates for a JSON value (a dict's keys, a string's characters), or throws Python's TypeError. */
function pyIter(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') return [...v];
  if (isDict(v)) return Object.keys(v);
  throw new ChatTemplateRefusal(`'${pyTypeName(v)}' object is not iterable`, 'wrapped');
}

/** Python's str.isspace set, for str.strip() (JS trim() differs: it strips U+FEFF and keeps U+001C-U+001F, U+0085). */
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

function pyLstrip(s: string): string {
  let i = 0;
  while (i < s.length && PY_SPACE.test(s[i]!)) i++;
  return s.slice(i);
}

function pyStrip(s: string): string {
  const l = pyLstrip(s);
  let j = l.length;
  while (j > 0 && PY_SPACE.test(l[j - 1]!)) j--;
  return l.slice(0, j);
}

/** `f(a=…, **d)` with `a` in d: CPython's TypeError names the callee as `module.qualname()`. */
function duplicateKeyword(callee: string, key: string, raised: 'wrapped' | 'direct'): ChatTemplateRefusal {
  return new ChatTemplateRefusal(`${callee}() got multiple values for keyword argument '${key}'`, raised);
}

const NO_TEMPLATE = 'As of transformers v4.44, default chat template is no longer allowed, so you must provide a chat '
  + 'template if the tokenizer does not define one.';

/**
 * transformers' `get_chat_template(chat_template, tools)` (tokenization_utils_base.py @ v4.53) after vLLM's
 * `resolve_hf_chat_template` (chat_utils.py:390-438 @ v0.10.0): a given value is a template text, or the name of one of
 * the model's named templates; none means the model's own ("tool_use" when tools are given and the model has one,
 * else "default").
 */
function pickTemplate(given: unknown, own: OwnChatTemplate | undefined, tools: unknown): string {
  if (given !== null && given !== undefined) {
    // `chat_template in template_dict`, or lru_cache's key for _compile_jinja_template: both hash the value.
    if (Array.isArray(given)) throw new ChatTemplateRefusal("unhashable type: 'list'", 'wrapped');
    if (isDict(given)) throw new ChatTemplateRefusal("unhashable type: 'dict'", 'wrapped');
    if (typeof given !== 'string') throw new ChatTemplateRefusal("Can't compile non template nodes", 'wrapped');
    return namedOwnTemplate(own, given) ?? given;
  }
  const picked = ownTemplateFor(own, tools);
  if (picked !== undefined) return picked;
  // vLLM's resolver falls through to its own error when the tokenizer yields no template (raised outside the wrap).
  throw new ChatTemplateRefusal(NO_TEMPLATE, 'direct');
}

/** The model's named template `name` (transformers' `template_dict[name]`); none for a single-text template. */
export function namedOwnTemplate(own: OwnChatTemplate | undefined, name: string): string | undefined {
  return Array.isArray(own) ? own.find((t) => t.name === name)?.template : undefined;
}

/**
 * The model's own template a chat renders with when none is given (transformers' `get_chat_template(None, tools)`):
 * the single text, or of named ones "tool_use" when tools are given (`None` is none) and the model has it, else
 * "default"; undefined when there is none.
 */
export function ownTemplateFor(own: OwnChatTemplate | undefined, tools: unknown): string | undefined {
  if (typeof own === 'string') return own;
  return (tools !== null && tools !== undefined ? namedOwnTemplate(own, 'tool_use') : undefined) ?? namedOwnTemplate(own, 'default');
}

/**
 * transformers' `continue_final_message` cut (render_jinja_template, utils/chat_template_utils.py @ v4.53): the
 * rendering ends right after the final message's content, found from the right with Python's str.strip().
 */
export function cutAfterFinalMessage(rendered: string, messages: readonly unknown[]): string {
  const last = messages[messages.length - 1] as { content?: unknown } | undefined;
  let final: unknown = last?.content;
  if (Array.isArray(final)) {
    const block = [...final].reverse().find((b) => isDict(b) && 'text' in b) as { text: unknown } | undefined;
    if (!block) throw new ChatTemplateRefusal('continue_final_message is set but we could not find any text to continuein the final message!', 'wrapped');
    final = block.text;
  }
  const text = typeof final === 'string' ? final : '';
  const stripped = pyStrip(text);
  const at = rendered.lastIndexOf(stripped);
  if (at < 0) {
    throw new ChatTemplateRefusal(
      'continue_final_message is set but the final message does not appear in the chat after applying the chat '
      + 'template! This can happen if the chat template deletes portions of the final message. Please verify the chat '
      + 'template and final message in your chat to ensure they are compatible.',
      'wrapped',
    );
  }
  const lstripped = pyLstrip(text);
  // The template preserved the message's spacing (or it has none): cut after it; else after its stripped text.
  if (rendered.slice(at, at + lstripped.length) === text) return rendered.slice(0, at + lstripped.length);
  return rendered.slice(0, at + stripped.length);
}

/** The names apply_hf_chat_template (vLLM 0.10.0) binds itself besides those spread in. */
const VLLM_CALL_ARGS = new Set(['tokenizer', 'conversation', 'model_config']);
/** transformers v4.53 `apply_chat_template`'s parameters that only matter when tokenizing. */
const TOKENIZER_ARGS = ['padding', 'truncation', 'max_length', 'return_tensors', 'tokenizer_kwargs'];

/**
 * Renders a chat as vLLM 0.10.0 does (see the file comment for the steps), returning the prompt text. Throws
 * `ChatTemplateRefusal` where vLLM refuses the request; errors of `compile` or the render are template errors and are
 * rethrown as the refusal vLLM makes of them.
 *
 * Not reproduced: `tokenize` with `truncation`/`max_length`/`padding`/`return_tensors`/`tokenizer_kwargs` (the text is
 * returned untruncated and unpadded), and the processor's template vLLM prefers for multimodal models.
 */
export function applyChatTemplate(input: ChatTemplateContextInput, own: OwnChatTemplate | undefined, compile: CompileChatTemplate): string {
  // serving_engine.py:873-880: the request's arguments, then chat_template_kwargs over them (Map keeps dict order).
  const args = new Map<string, unknown>([
    ['chat_template', input.chatTemplate ? input.chatTemplate : null],
    ['add_generation_prompt', input.addGenerationPrompt],
    ['continue_final_message', input.continueFinalMessage ?? false],
    ['tools', input.tools ?? null],
    ['documents', input.documents ?? null],
  ]);
  for (const [k, v] of Object.entries(input.kwargs ?? {})) args.set(k, v);

  // apply_hf_chat_template(tokenizer=…, conversation=…, model_config=…, **_chat_template_kwargs): raised by the call
  // itself, outside the function's re-raise.
  for (const k of args.keys()) if (VLLM_CALL_ARGS.has(k)) throw duplicateKeyword('vllm.entrypoints.chat_utils.apply_hf_chat_template', k, 'direct');
  const take = (k: string, fallback: unknown = null): unknown => {
    const v = args.has(k) ? args.get(k) : fallback;
    args.delete(k);
    return v;
  };
  // apply_hf_chat_template's own parameters (trust_remote_code is accepted and dropped).
  const chatTemplate = take('chat_template');
  const tools = take('tools');
  const tokenize = take('tokenize', false);
  take('trust_remote_code');
  // transformers' apply_chat_template's parameters.
  const documents = take('documents');
  const addGenerationPrompt = take('add_generation_prompt', false);
  const continueFinal = take('continue_final_message', false);
  const returnDict = take('return_dict', false);
  const assistantMask = take('return_assistant_tokens_mask', false);
  for (const k of TOKENIZER_ARGS) take(k);

  if (pyTruthy(returnDict) && !pyTruthy(tokenize)) {
    throw new ChatTemplateRefusal('`return_dict=True` is incompatible with `tokenize=False`, because there is no dict of tokenizer outputs to return.', 'wrapped');
  }
  if (pyTruthy(assistantMask) && !pyTruthy(returnDict)) {
    throw new ChatTemplateRefusal('`return_assistant_tokens_mask=True` is incompatible with `return_dict=False`', 'wrapped');
  }
  const template = pickTemplate(chatTemplate, own, tools);
  if (pyTruthy(continueFinal)) {
    if (pyTruthy(addGenerationPrompt)) {
      throw new ChatTemplateRefusal(
        'continue_final_message and add_generation_prompt are not compatible. Use continue_final_message when you want '
        + 'the model to continue the final message, and add_generation_prompt when you want to add a header that will '
        + 'prompt it to start a new assistant message instead.',
        'wrapped',
      );
    }
    if (pyTruthy(assistantMask)) throw new ChatTemplateRefusal('continue_final_message is not compatible with return_assistant_tokens_mask.', 'wrapped');
  }
  // render_jinja_template(conversations=…, …, **template_kwargs).
  if (args.has('conversations')) throw duplicateKeyword('transformers.utils.chat_template_utils.render_jinja_template', 'conversations', 'wrapped');

  let render: (context: Record<string, unknown>) => string;
  try {
    render = compile(template);
  } catch (e) {
    throw new ChatTemplateRefusal((e as Error).message, 'wrapped');
  }
  // Tools must be JSON schemas (dicts) or functions; documents dicts.
  let toolSchemas: unknown[] | null = null;
  if (tools !== null && tools !== undefined) {
    toolSchemas = pyIter(tools);
    if (toolSchemas.some((t) => !isDict(t))) {
      throw new ChatTemplateRefusal('Tools should either be a JSON schema, or a callable function with type hints and a docstring suitable for auto-conversion to a schema.', 'wrapped');
    }
  }
  if (documents !== null && documents !== undefined && pyIter(documents).some((d) => !isDict(d))) {
    throw new ChatTemplateRefusal("Documents should be a list of dicts with 'title' and 'text' keys!", 'wrapped');
  }
  // compiled_template.render(messages=chat, tools=…, documents=…, add_generation_prompt=…, **kwargs).
  if (args.has('messages')) throw duplicateKeyword('jinja2.environment.Template.render', 'messages', 'wrapped');
  // A null-prototype object, so a kwarg named `__proto__` is a variable like any other.
  const context = Object.assign(Object.create(null) as Record<string, unknown>, input.specialTokens);
  for (const [k, v] of args) Object.defineProperty(context, k, { value: v, enumerable: true, writable: true, configurable: true });
  Object.assign(context, { messages: input.messages, tools: toolSchemas, documents, add_generation_prompt: addGenerationPrompt });

  let rendered: string;
  try {
    rendered = render(context);
  } catch (e) {
    throw new ChatTemplateRefusal((e as Error).message, 'wrapped');
  }
  if (pyTruthy(continueFinal)) rendered = cutAfterFinalMessage(rendered, input.messages);
  // tokenize=True returns ids (those of the text without special tokens); with return_dict a BatchEncoding, which
  // `_preprocess_chat`'s `assert is_list_of(request_prompt, int)` (serving_engine.py:923) rejects uncaught.
  if (pyTruthy(tokenize) && pyTruthy(returnDict)) throw new ChatTemplateRefusal('Prompt has to be either a string or a list of token ids', 'uncaught');
  return rendered;
}
