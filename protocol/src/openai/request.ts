/**
 * Reads an OpenAI-style request body for routing: the model, and the input whose prefix decides cache affinity. It
 * covers every JSON inference endpoint vLLM serves (chat and text completions, responses, embeddings, pooling,
 * classification, score, rerank, tokenize), by the fields each one uses; a body it cannot read a prompt from is still
 * routed (by load), because vLLM, not the router, decides whether a request is valid. Only what no server could accept
 * is rejected: a body that is not JSON, or fields of the wrong type. Rejections name the field, as vLLM's errors do.
 * @see vllm-project/vllm: vllm/entrypoints/openai/protocol.py @ v0.10.0 (the request models and their field names)
 */
import { createHash } from 'node:crypto';
import { OpenAiApiError } from './errors';
import { JsonBodyTooDenseError, parseJsonBody, topLevelMemberTexts } from './json-body';
import { hasIntegralFloat, parsePythonJson, someJsonValue } from './python-json';

/** A body the router refuses: HTTP 400 with the OpenAI error fields (413 for one too dense to parse: `parseRequestBody`). */
export class RequestBodyError extends OpenAiApiError {
  constructor(message: string, param: string | null = null, code = 'invalid_request_body', status = 400) {
    super(status, message, { param, code });
    this.name = 'RequestBodyError';
  }
}

/** One chat message as the client sent it, with `content` kept as sent (string, parts or null). */
export interface ChatMessageInput {
  /** Absent in a message GIE still accepts (`role` is optional there); rendered as "". */
  readonly role?: string;
  readonly content: unknown;
  readonly [key: string]: unknown;
}

/** What the request asks the model to read, by its shape. */
export type PromptInput =
  /** Chat completions (and pooling/embeddings given `messages`): the template renders the messages. */
  | {
      readonly kind: 'chat';
      readonly messages: readonly ChatMessageInput[];
      /** `tools` as sent; the chat template renders them into the prompt. */
      readonly tools?: readonly unknown[];
      /** vLLM's `add_generation_prompt`. @default true */
      readonly addGenerationPrompt: boolean;
      /** vLLM's `continue_final_message`. @default false */
      readonly continueFinalMessage: boolean;
      /** vLLM's `chat_template_kwargs`, passed to the template. */
      readonly chatTemplateKwargs?: Readonly<Record<string, unknown>>;
      /** `documents` as sent (RAG templates such as Granite's and Command-R's render them into the prompt). */
      readonly documents?: readonly unknown[];
      /** vLLM's `chat_template` (0.10.0 takes it from any client): replaces the model's template. */
      readonly chatTemplate?: string;
      /**
       * vLLM's `add_special_tokens` when the body sets it (ChatCompletionRequest's default is false: the template
       * placed them); true adds the tokenizer's BOS in front of the rendered prompt.
       */
      readonly addSpecialTokens?: boolean;
      /**
       * The UTF-8 bytes llm-d-router's estimate token producer counts for the body this chat was read from, when that
       * body is not a chat: an Anthropic Messages body, counted from its own fields (`tokenizer/estimate.go`
       * messagesBytes @ v0.10.0), not from the chat it becomes (which adds roles and drops tool uses and thinking).
       */
      readonly estimateBytes?: number;
      /**
       * The value llm-d-router's estimate token producer marshals for the body this chat was read from, when that body
       * is a Responses one (`[{"instructions"}, {"tools"}, {"input"}]`, `tokenizer/estimate.go` estimateBytes L171-180
       * @ v0.10.0): its count is the Go JSON's bytes.
       */
      readonly estimateJson?: unknown;
      /**
       * A Responses body's `tools` as sent (any JSON, `[]` included): the approximate prefix scorer seeds the chain with
       * them, as llm-d-router v0.10.0 hashes them ahead of the input (estimate.go L176-178). Not `tools`: no template
       * renders them (vLLM 0.10.0's Responses endpoint takes tools only with Harmony).
       */
      readonly keyedTools?: unknown;
      /**
       * The messages hold items vLLM does not render as chat messages here (a Responses body's `function_call`,
       * `function_call_output`, `reasoning` items, each a turn of its JSON): the approximate scorer keys the text, the
       * precise one (which must render what vLLM renders) routes the request unkeyed.
       */
      readonly approximateOnly?: boolean;
    }
  /**
   * A text prompt (completions, embeddings, responses with a string `input`, score, rerank, …); `addSpecialTokens` when
   * the body sets vLLM's `add_special_tokens` (CompletionRequest's default is true: a BOS where the model has one).
   * `rest`: a batch's prompts after the first (`text`), absent for a single prompt (`batchPrompts`).
   */
  | { readonly kind: 'text'; readonly text: string; readonly addSpecialTokens?: boolean; readonly rest?: readonly string[] }
  /** A prompt of token ids (completions or embeddings given ids); `rest` as for a text batch. */
  | { readonly kind: 'tokens'; readonly tokens: readonly number[]; readonly rest?: readonly (readonly number[])[] }
  /** Nothing to read a prefix from: route by load alone. */
  | { readonly kind: 'none' };

type ChatInput = Extract<PromptInput, { kind: 'chat' }>;

export interface ParsedRequestBody {
  /** The `model` field; undefined when the body has none (vLLM then serves its default model) or it is "". */
  readonly model?: string;
  /** The body's `model` is the empty string (GIE v1.5.0 takes that as a model; llm-d-router v0.10.0 does not). */
  readonly emptyModel?: true;
  /** The input, structured, for routers that tokenize as the engine does. */
  readonly input: PromptInput;
  /**
   * The input as one string for text-based prefix matching: the prompt, or chat messages as ChatML turns (what GIE's
   * EPP hashes), a media part as a placeholder digested from its URL (`mediaPlaceholder`). Empty when the input is `none`;
   * a batch's first prompt (`input.rest` holds the others).
   */
  readonly prompt: string;
  /** Whether the response will be SSE (`stream: true`). */
  readonly stream: boolean;
  /** vLLM's `cache_salt`: prefix-cache entries are shared only between requests with the same salt. */
  readonly cacheSalt?: string;
  /** Present (true) when the body sets vLLM's `priority` itself: a router then leaves the field to the client. */
  readonly hasPriority?: true;
  /**
   * vLLM's `truncate_prompt_tokens` when it is a positive integer: the engine keeps only the prompt's last N tokens
   * (left truncation, `vllm/entrypoints/openai/serving_engine.py` @ v0.10.0), so only those are prefilled and cached.
   * Any other value is left for the engine to refuse.
   */
  readonly truncatePromptTokens?: number;
  /**
   * Present (true) when vLLM serves the request without looking its prompt up in the prefix cache: it asks for prompt
   * logprobs (`prompt_logprobs`, or `echo`, which vLLM turns into prompt logprobs of a completion's `logprobs` or a
   * chat's `top_logprobs`: `asksPromptLogprobs`), and `KVCacheManager.get_computed_blocks` then
   * returns no hit ("When the request requires prompt logprobs, we skip prefix caching", vllm/v1/core/kv_cache_manager.py
   * @ v0.10.0). Its prefill is whole on every pod; the blocks it computes are cached all the same.
   */
  readonly skipsPrefixCache?: true;
  /**
   * `/v1/responses` only: the stored response this request continues (`previous_response_id`), which lives in the
   * memory of the one vLLM server that stored it (`response_store`, serving_responses.py @ v0.10.0).
   */
  readonly previousResponseId?: string;
  /**
   * `/v1/responses` only, present (true) when the server will store the response (`store`, true by default) under an id
   * of its own: the body sets no `request_id`, whose value vLLM's ResponsesRequest otherwise takes as the response's id
   * (`request_id: str = Field(default_factory=lambda: f"resp_{random_uuid()}")`, protocol.py @ v0.10.0).
   */
  readonly storesUnnamedResponse?: true;
}

/**
 * The chat rendering upstream's EPP hashes (GIE `pkg/epp/util/request/body.go`): ChatML turns. Keeping the same
 * string makes prefix-index behaviour comparable with llm-d's, and every turn boundary lands on the same characters
 * in every request of a conversation, which is what lets turn N+1 match turn N's blocks. A turn's reasoning and tool
 * calls are in it (`turnReasoning`, `turnToolCalls`).
 */
function renderChatTurn(m: ChatMessageInput, i: number): string {
  return `<|im_start|>${m.role ?? ''}\n${turnReasoning(m)}${messageText(m.content, `messages[${i}].content`)}${turnToolCalls(m)}<|im_end|>\n`;
}

/**
 * `renderChatTurn`'s pieces, for the readers that cut the prompt without building it (`promptHead`, `promptSlice`) and
 * those that map a length of it back to the message's fields (the EPP's P/D decider): marker, role (1), newline,
 * reasoning, content (4), tool calls, end marker.
 */
export function chatTurnPieces(m: ChatMessageInput, i: number): string[] {
  return ['<|im_start|>', m.role ?? '', '\n', turnReasoning(m), messageText(m.content, `messages[${i}].content`), turnToolCalls(m), '<|im_end|>\n'];
}

/**
 * A message's `reasoning` (what an Anthropic `thinking` block becomes, epp's anthropic-parser) ahead of its content,
 * and its `tool_calls` (an Anthropic `tool_use`, or an OpenAI assistant's calls) after it, as chat templates render
 * them into the prompt (Qwen3's `<think>` and `<tool_call>`): two conversations that differ only in what a tool was
 * called with, or in the thinking replayed, share no block past it. llm-d-router v0.10.0's estimate keys an Anthropic
 * message's thinking text and each tool_use's id, name and input in block order (`tokenizer/estimate.go`
 * messagesBytes, L263-268); for an OpenAI chat it keys role and content only (appendChatMessage, L210-231), where
 * kvroute keys the calls too, as vLLM's template renders them.
 */
function turnReasoning(m: ChatMessageInput): string {
  return typeof m.reasoning === 'string' && m.reasoning !== '' ? `<think>${m.reasoning}</think>` : '';
}

/** Each tool-call list's JSON, made once per parsed message (the prompt, its head and its slices read it). */
const toolCallsJson = new WeakMap<readonly unknown[], string>();

function turnToolCalls(m: ChatMessageInput): string {
  const calls = m.tool_calls;
  if (!Array.isArray(calls) || calls.length === 0) return '';
  let json = toolCallsJson.get(calls);
  if (json === undefined) toolCallsJson.set(calls, (json = `<tool_call>${JSON.stringify(calls)}</tool_call>`));
  return json;
}

/** Each media part's placeholder, digested once: the prompt, its head and its slices are all built from the same parts. */
const mediaPlaceholders = new WeakMap<object, string>();

/**
 * What a media part carries: the URL of an `image_url`, `video_url` or `audio_url` part (an object with `url`, or the
 * URL itself, as the Responses API's `input_image` sends it), an `input_audio`'s data and format; undefined for any
 * other part.
 */
function mediaContent(p: Record<string, unknown>): string | undefined {
  switch (p.type) {
    case 'image_url':
    case 'video_url':
    case 'audio_url':
    case 'input_image': {
      const v = p[p.type === 'input_image' ? 'image_url' : p.type];
      if (typeof v === 'string') return v;
      return typeof v === 'object' && v !== null && typeof (v as { url?: unknown }).url === 'string' ? (v as { url: string }).url : undefined;
    }
    case 'input_audio': {
      const a = p.input_audio;
      if (typeof a !== 'object' || a === null) return undefined;
      const { data, format } = a as { data?: unknown; format?: unknown };
      return `${typeof data === 'string' ? data : ''}${typeof format === 'string' ? format : ''}`;
    }
    default:
      return undefined;
  }
}

/**
 * A media part's stand-in in the prompt: its type and a digest of what it carries, so that chats differing only in an
 * image part ways at the image and the same image still matches, as upstream keys them: GIE v1.5.0
 * `approximateprefix/hashing.go` getUserInputBytes hashes `json.Marshal(Messages)`, image URLs included; llm-d-router
 * v0.10.0 `dataproducer/tokenizer/estimate.go` appendChatMessage → appendMMAsset puts placeholder tokens hashed from
 * the URL (an audio's data and format). A digest, not the URL: a data URI of megabytes would fill the prefix scorer's
 * window, leaving the text after it unkeyed.
 */
function mediaPlaceholder(p: Record<string, unknown>): string {
  const cached = mediaPlaceholders.get(p);
  if (cached !== undefined) return cached;
  const content = mediaContent(p);
  const placeholder = content === undefined || content === '' ? '' : `<|${p.type as string}:${createHash('sha256').update(content).digest('base64url').slice(0, 22)}|>`;
  mediaPlaceholders.set(p, placeholder);
  return placeholder;
}

/**
 * Text of a message's `content`: a string, or its content parts in order: `text` parts as their text, media parts as
 * their placeholders (`mediaPlaceholder`), other parts as nothing.
 */
function messageText(content: unknown, path: string): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content.map((part, i) => {
      if (typeof part === 'string') return part;
      if (typeof part !== 'object' || part === null) {
        throw new RequestBodyError(`${path}[${i}]: a content part must be an object or a string`, `${path}[${i}]`, 'invalid_type');
      }
      const p = part as Record<string, unknown>;
      return typeof p.text === 'string' ? p.text : mediaPlaceholder(p);
    }).join('');
  }
  throw new RequestBodyError(`${path}: must be a string or an array of content parts`, path, 'invalid_type');
}

/**
 * Checks each message and returns the parsed array itself: the messages are the parsed JSON's objects either way, and a
 * copy of the array was one more allocation per request (epp/README.md, "Where the CPU goes", sixth round).
 */
function chatMessages(messages: unknown): readonly ChatMessageInput[] {
  if (!Array.isArray(messages)) throw new RequestBodyError('messages: must be an array', 'messages', 'invalid_type');
  if (messages.length === 0) throw new RequestBodyError('messages: must not be empty', 'messages', 'invalid_value');
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      throw new RequestBodyError(`messages[${i}]: must be an object`, `messages[${i}]`, 'invalid_type');
    }
    const msg = m as Record<string, unknown>;
    // GIE v1.5.0 reads `role` as an optional string (`Message.Role`, json:"role,omitempty",
    // framework/interface/scheduling/types.go): absent is "", only another type is refused.
    if (msg.role !== undefined && typeof msg.role !== 'string') {
      throw new RequestBodyError(`messages[${i}].role: must be a string`, `messages[${i}].role`, 'invalid_type');
    }
    // A string is the common content: nothing to check.
    if (typeof msg.content !== 'string') messageText(msg.content, `messages[${i}].content`);
  }
  return messages as ChatMessageInput[];
}

function isTokenIds(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'number' && Number.isInteger(t));
}

/**
 * A completion-style `prompt` or an embeddings-style `input`: a string, token ids, or a batch of either. vLLM serves a
 * batch as one engine request per prompt, each prefilled and cached on its own (`_tokenize_prompt_inputs`, each token
 * list taken as is: serving_engine.py @ v0.10.0), so every prompt of a batch is kept: the first as a single prompt is
 * (`text`, `tokens`, and the `prompt` string), the others in `rest`, each keyed on its own and the matches summed, as
 * llm-d-router v0.10.0 keys each prompt of a batch (`TokenizedPrompt.PerPromptTokens`, prefixhash/hashing.go
 * GetBlockHashes). A batch of one is a single prompt. Until session 37 a batch of strings was keyed as their joined
 * text, and a batch of token lists as the decimal text of its ids (lm-evaluation-harness's `local-completions` sends
 * that shape); until session 65 by its first prompt alone.
 */
function textOrTokens(value: unknown, field: string): PromptInput {
  if (typeof value === 'string') return { kind: 'text', text: value };
  if (isTokenIds(value)) return { kind: 'tokens', tokens: value };
  if (Array.isArray(value) && value.length > 0) {
    if (value.every((p) => typeof p === 'string')) {
      return value.length === 1 ? { kind: 'text', text: value[0] as string } : { kind: 'text', text: value[0] as string, rest: value.slice(1) as string[] };
    }
    if (value.every(isTokenIds)) {
      return value.length === 1 ? { kind: 'tokens', tokens: value[0] as number[] } : { kind: 'tokens', tokens: value[0] as number[], rest: value.slice(1) as number[][] };
    }
  }
  throw new RequestBodyError(`${field}: must be a string, an array of strings, or an array of token ids`, field, 'invalid_type');
}

function isTextOrTokens(value: unknown): boolean {
  if (typeof value === 'string' || isTokenIds(value)) return true;
  return Array.isArray(value) && value.length > 0 && (value.every((p) => typeof p === 'string') || value.every(isTokenIds));
}

function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

function optionalString(o: Record<string, unknown>, field: string): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new RequestBodyError(`${field}: must be a string`, field, 'invalid_type');
  return v;
}

const PYDANTIC_TRUE_STRINGS: ReadonlySet<string> = new Set(['1', 'on', 't', 'true', 'y', 'yes']);
const PYDANTIC_FALSE_STRINGS: ReadonlySet<string> = new Set(['0', 'off', 'f', 'false', 'n', 'no']);

/**
 * A `bool` field as pydantic v2 reads a JSON body in lax mode (FastAPI's, so vLLM's request models): true/false, the
 * numbers 0 and 1, and the strings above in any case around whitespace; undefined for anything else, which pydantic
 * refuses (pydantic-core src/input/input_json.rs `validate_bool`, `str_as_bool`).
 */
export function pydanticLaxBool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number' && (v === 0 || v === 1)) return v === 1;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (PYDANTIC_TRUE_STRINGS.has(t)) return true;
    if (PYDANTIC_FALSE_STRINGS.has(t)) return false;
  }
  return undefined;
}

/** A boolean member read as vLLM's pydantic model reads it: what vLLM accepts is not refused here (it decides). */
function optionalBoolean(o: Record<string, unknown>, field: string, fallback: boolean): boolean {
  const v = o[field];
  if (v === undefined || v === null) return fallback;
  const b = pydanticLaxBool(v);
  if (b === undefined) throw new RequestBodyError(`${field}: must be a boolean`, field, 'invalid_type');
  return b;
}

const TEMPLATE_MEMBERS: ReadonlySet<string> = new Set(['tools', 'chat_template_kwargs']);

/** Whether `root` holds a number with an integral value. */
function holdsInteger(root: unknown): boolean {
  return root !== undefined && someJsonValue(root, (v) => typeof v === 'number' && Number.isInteger(v));
}

/**
 * `tools` and `chat_template_kwargs` read again from the body with their integral floats kept (`PythonFloat`), for
 * those holding any: both reach the chat template as vLLM's pydantic models hold them (`dict[str, Any]` keeps Python's
 * floats), and a template prints `0.0` where `JSON.parse`'s value prints `0`. Absent members, or members without such
 * a float (nearly every request), are not returned: the plain parse stands.
 */
export function templateMembersWithFloats(body: Buffer): { tools?: unknown[]; chatTemplateKwargs?: Record<string, unknown> } {
  const out: { tools?: unknown[]; chatTemplateKwargs?: Record<string, unknown> } = {};
  for (const [name, text] of topLevelMemberTexts(body, TEMPLATE_MEMBERS)) {
    if (!hasIntegralFloat(text)) continue;
    const result = parsePythonJson(text, { markIntegralFloats: true });
    if (!result.ok) continue;
    const value = result.value;
    if (name === 'tools' && Array.isArray(value)) out.tools = value;
    else if (name === 'chat_template_kwargs' && typeof value === 'object' && value !== null && !Array.isArray(value)) out.chatTemplateKwargs = value as Record<string, unknown>;
  }
  return out;
}

/**
 * Picks the input by the fields present, most specific first; the endpoint's path is not needed. `promptOnly`: the
 * endpoint is a completion one, whose input is `prompt` whatever else the body holds (`ParseRequestOptions`).
 */
function readInput(o: Record<string, unknown>, body: Buffer | undefined, promptOnly: boolean): PromptInput {
  if (!promptOnly && o.messages !== undefined) {
    const tools = o.tools;
    if (tools !== undefined && tools !== null && !Array.isArray(tools)) {
      throw new RequestBodyError('tools: must be an array', 'tools', 'invalid_type');
    }
    const kwargs = o.chat_template_kwargs;
    if (kwargs !== undefined && kwargs !== null && (typeof kwargs !== 'object' || Array.isArray(kwargs))) {
      throw new RequestBodyError('chat_template_kwargs: must be an object', 'chat_template_kwargs', 'invalid_type');
    }
    // vLLM 0.10.0 types it `Optional[list[dict[str, str]]]` (ChatCompletionRequest, protocol.py) and hands it to the
    // template as `documents` (serving_engine.py `_preprocess_chat`).
    const documents = o.documents;
    if (documents !== undefined && documents !== null
      && (!Array.isArray(documents) || documents.some((d) => typeof d !== 'object' || d === null || Array.isArray(d)))) {
      throw new RequestBodyError('documents: must be an array of objects', 'documents', 'invalid_type');
    }
    // Checked in this order (the first error is the one reported); built without spreads, the members in this order.
    const messages = chatMessages(o.messages);
    const addGenerationPrompt = optionalBoolean(o, 'add_generation_prompt', true);
    const continueFinalMessage = optionalBoolean(o, 'continue_final_message', false);
    const chat: { -readonly [K in keyof ChatInput]: ChatInput[K] } = Array.isArray(tools)
      ? { kind: 'chat', messages, tools, addGenerationPrompt, continueFinalMessage }
      : { kind: 'chat', messages, addGenerationPrompt, continueFinalMessage };
    if (kwargs) chat.chatTemplateKwargs = kwargs as Record<string, unknown>;
    if (Array.isArray(documents)) chat.documents = documents;
    // Only a member whose plain parse holds an integer can have come from an integral float: a walk of the parsed
    // members (small) spares most bodies with tools the scan of the whole body (10 ms for a 3 MB chat).
    if (body !== undefined && (holdsInteger(chat.tools) || holdsInteger(chat.chatTemplateKwargs))) {
      const marked = templateMembersWithFloats(body);
      if (marked.tools !== undefined && chat.tools !== undefined) chat.tools = marked.tools;
      if (marked.chatTemplateKwargs !== undefined && chat.chatTemplateKwargs !== undefined) chat.chatTemplateKwargs = marked.chatTemplateKwargs;
    }
    // `Optional[str]` on ChatCompletionRequest (protocol.py @ v0.10.0); an empty one counts as absent there
    // (`request.chat_template or self.chat_template`, serving_chat.py).
    if (typeof o.chat_template === 'string' && o.chat_template !== '') chat.chatTemplate = o.chat_template;
    // A `bool` of vLLM's pydantic model: "false" and 0 are false there too.
    const addSpecialTokens = pydanticLaxBool(o.add_special_tokens);
    if (addSpecialTokens !== undefined) chat.addSpecialTokens = addSpecialTokens;
    return chat;
  }
  if (o.prompt !== undefined) {
    // serving_completion.py @ v0.10.0 tokenizes with `add_special_tokens=request.add_special_tokens`.
    const prompt = textOrTokens(o.prompt, 'prompt');
    const addSpecialTokens = pydanticLaxBool(o.add_special_tokens);
    return prompt.kind === 'text' && addSpecialTokens !== undefined ? { ...prompt, addSpecialTokens } : prompt;
  }
  // /v1/responses takes `input` as text or items; embeddings, pooling and classify take text or token ids. Items are
  // only the Responses API's, so they are read as that endpoint renders them, the path known or not.
  if (o.input !== undefined) {
    if (Array.isArray(o.input) && o.input.some((i) => typeof i === 'object' && i !== null && !Array.isArray(i))) return responsesChat(o);
    // GIE v1.5.0 types `input` as any (ResponsesRequest.Input, EmbeddingsRequest.Input): a shape that is not text or
    // token ids is still a request, routed without a prompt to match.
    return isTextOrTokens(o.input) ? textOrTokens(o.input, 'input') : { kind: 'none' };
  }
  // /v1/score: text_1 against text_2; /v1/rerank: query against documents. The shared part leads.
  const pair = [...strings(o.text_1), ...strings(o.query), ...strings(o.text_2), ...strings(o.documents)];
  if (pair.length > 0) return { kind: 'text', text: pair.join('\n') };
  return { kind: 'none' };
}

const NO_INPUT: PromptInput = { kind: 'none' };

/**
 * What a request path's vLLM endpoint does with the body's input, where it differs from what the body's fields alone
 * say (vllm/entrypoints/openai/api_server.py @ v0.10.0 routes): `/v1/responses` renders its `input` through the chat
 * template; embeddings, pooling and classification render a chat without the generation prompt; `/tokenize` and
 * `/detokenize` prefill nothing. The raw path is read as Starlette routes it: without its query, percent-decoded.
 */
type EngineEndpoint = 'responses' | 'pooling' | 'no-prefill' | 'other';

function engineEndpoint(rawPath: string): EngineEndpoint {
  const q = rawPath.indexOf('?');
  let path = q >= 0 ? rawPath.slice(0, q) : rawPath;
  if (path.includes('%')) {
    try {
      path = decodeURIComponent(path);
    } catch {
      return 'other';
    }
  }
  switch (path) {
    case '/v1/responses':
      return 'responses';
    case '/v1/embeddings':
    case '/pooling':
    case '/classify':
      return 'pooling';
    case '/tokenize':
    case '/detokenize':
      return 'no-prefill';
    default:
      return 'other';
  }
}

/**
 * The chat vLLM's Responses endpoint renders: `instructions` as a leading system message, then a string `input` as one
 * user message, or the input items as messages, rendered with the server's chat template and its generation prompt
 * (`OpenAIServingResponses._construct_input_messages` then `_preprocess_chat`, serving_responses.py; the endpoint's
 * first version, before `_construct_input_messages`, rendered the same without `instructions`). A request continuing a
 * stored response (`previous_response_id`) is prefixed with that conversation, which only the pod that stored it knows:
 * it has no input here (llm-d-router v0.10.0 keys its body as any other; kvroute routes it to the pod that stored the
 * response when it named it). An item that is not a message (a function call, its output, a reasoning item) is keyed
 * as a turn of its JSON for the approximate scorer only (`approximateOnly`), and the tools as sent seed its chain
 * (`keyedTools`): llm-d-router v0.10.0 hashes Go's JSON of the instructions, the tools, then the input
 * (`tokenizer/estimate.go` estimateBytes L171-180), so an agent loop's turns share blocks there. Tools are not rendered
 * (vLLM refuses them on this endpoint without Harmony).
 */
function responsesChat(o: Record<string, unknown>): PromptInput {
  if (o.previous_response_id !== undefined && o.previous_response_id !== null) return NO_INPUT;
  const messages: ChatMessageInput[] = [];
  let approximateOnly = false;
  if (typeof o.instructions === 'string' && o.instructions !== '') messages.push({ role: 'system', content: o.instructions });
  if (typeof o.input === 'string') {
    messages.push({ role: 'user', content: o.input });
  } else if (Array.isArray(o.input)) {
    const items = o.input as unknown[];
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (typeof item !== 'object' || item === null || Array.isArray(item)) return NO_INPUT;
      const message = item as Record<string, unknown>;
      const isMessage = typeof message.role === 'string' && (message.type === undefined || message.type === 'message');
      if (!isMessage) {
        // An item of another type (a function call, its output, a reasoning item): a turn of the item's JSON, every
        // field of it, so an agent loop's next turn matches this one's blocks and two loops whose calls differ
        // (arguments, call id, output) share none past the call, as llm-d-router v0.10.0 keys the input's JSON
        // (estimate.go L179). An item with neither a role nor a type is no item vLLM serves: nothing to key, as before.
        if (typeof message.type !== 'string' || message.type === 'message') return NO_INPUT;
        messages.push({ role: message.type, content: JSON.stringify(message) });
        approximateOnly = true;
        continue;
      }
      // Checked here, where a bad content can be named by the field the client sent (the chat's reader names messages[i]).
      messageText(message.content, `input[${i}].content`);
      messages.push(message as ChatMessageInput);
    }
  } else {
    return NO_INPUT;
  }
  if (messages.length === 0) return NO_INPUT;
  const estimateJson: Record<string, unknown>[] = [];
  if (o.instructions !== undefined && o.instructions !== null) estimateJson.push({ instructions: o.instructions });
  const hasTools = o.tools !== undefined && o.tools !== null;
  if (hasTools) estimateJson.push({ tools: o.tools });
  estimateJson.push({ input: o.input });
  return {
    kind: 'chat', messages, addGenerationPrompt: true, continueFinalMessage: false, estimateJson,
    ...(hasTools ? { keyedTools: o.tools } : {}),
    ...(approximateOnly ? { approximateOnly } : {}),
  };
}

/** The input as `endpoint` prefills it (see `engineEndpoint`); the fields' reading where it agrees. */
function endpointInput(o: Record<string, unknown>, body: Buffer, endpoint: EngineEndpoint, promptOnly: boolean): PromptInput {
  switch (endpoint) {
    case 'responses':
      // Only `input` and `instructions` are read: its other members are the Responses API's (a `prompt` there is a
      // reusable prompt's reference, not a completion prompt, `ResponsesRequest.prompt` in protocol.py).
      return responsesChat(o);
    case 'pooling': {
      // "In embedding requests, we are not generating tokens, so there is no need to append extra tokens to the input"
      // (serving_embedding.py, serving_pooling.py, serving_classification.py @ v0.10.0: `add_generation_prompt=False,
      // continue_final_message=False` whatever the body says).
      const input = readInput(o, body, promptOnly);
      return input.kind === 'chat' ? { ...input, addGenerationPrompt: false, continueFinalMessage: false } : input;
    }
    case 'no-prefill':
      readInput(o, body, promptOnly);
      return NO_INPUT;
    case 'other':
      return readInput(o, body, promptOnly);
  }
}

/**
 * The prompt as one string. A chat prompt is built by concatenation, not `join`: V8 keeps it as a rope until its
 * characters are first read, so a reader that needs only its length or its head (`promptHead`) never pays for copying
 * every character. For a prompt over ~128 KB that copy is a fresh large-object allocation, which cost more than the
 * whole JSON parse (epp/README.md, "Where the CPU goes", fourth round).
 */
function promptText(input: PromptInput): string {
  switch (input.kind) {
    case 'chat': {
      let out = '';
      const { messages } = input;
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]!;
        out += renderChatTurn(m, i);
      }
      return out;
    }
    case 'text':
      return input.text;
    case 'tokens':
      return input.tokens.join(' ');
    case 'none':
      return '';
  }
}

/** Whether `input` is a batch of several prompts (`rest`), which `batchPrompts` splits. */
export function isBatch(input: PromptInput): boolean {
  return (input.kind === 'text' || input.kind === 'tokens') && input.rest !== undefined;
}

/**
 * Each prompt of `input` as an input of its own, in order: a batch's (`rest`), which vLLM serves as one engine request
 * per prompt, each prefilled and cached on its own; any other input is one prompt, returned as is.
 */
export function batchPrompts(input: PromptInput): readonly PromptInput[] {
  if (input.kind === 'text' && input.rest !== undefined) {
    const { addSpecialTokens } = input;
    return [input.text, ...input.rest].map((text): PromptInput => (addSpecialTokens === undefined ? { kind: 'text', text } : { kind: 'text', text, addSpecialTokens }));
  }
  if (input.kind === 'tokens' && input.rest !== undefined) return [input.tokens, ...input.rest].map((tokens): PromptInput => ({ kind: 'tokens', tokens }));
  return [input];
}

/**
 * The `prompt` string `parseRequestBody` returns for `input` (chat messages as ChatML turns), for readers of other
 * request formats that hand routers the same structured input (epp's anthropic-parser builds a chat from an Anthropic
 * Messages body).
 */
export function promptOf(input: PromptInput): string {
  return promptText(input);
}

/**
 * Characters `[start, end)` of the `prompt` that `parseRequestBody` returns for `input`, built from only the pieces they
 * come from: reading a few blocks past a prefix window (the approximate prefix scorer's tail probes) must not flatten a
 * long chat prompt's rope, a large-object copy for prompts over ~128 KB (see `promptText`).
 */
export function promptSlice(input: PromptInput, start: number, end: number): string {
  const from = Math.max(0, Math.floor(start));
  const to = Math.max(from, Math.floor(end));
  switch (input.kind) {
    case 'chat': {
      let out = '';
      let at = 0;
      const { messages } = input;
      for (let i = 0; i < messages.length && at < to; i++) {
        const m = messages[i]!;
        const pieces = chatTurnPieces(m, i);
        for (const piece of pieces) {
          const next = at + piece.length;
          if (next > from && at < to) out += piece.slice(Math.max(0, from - at), Math.min(piece.length, to - at));
          at = next;
          if (at >= to) break;
        }
      }
      return out;
    }
    case 'text':
      return input.text.slice(from, to);
    case 'tokens':
    case 'none':
      return promptText(input).slice(from, to);
  }
}

/**
 * The first `maxChars` characters of the `prompt` that `parseRequestBody` returns for `input` (all of it when
 * shorter), built from only the pieces they come from and without reading the rest: a prefix scorer hashes at most
 * `maxPrefixBlocksToMatch` blocks, 16 K characters by default, of prompts that can be far longer.
 */
export function promptHead(input: PromptInput, maxChars: number): string {
  const limit = Math.max(0, Math.floor(maxChars));
  switch (input.kind) {
    case 'chat': {
      let out = '';
      const { messages } = input;
      for (let i = 0; i < messages.length && out.length < limit; i++) {
        const m = messages[i]!;
        // The pieces of renderChatTurn, each cut to the room left: a cut content string is a slice, not a copy.
        const pieces = chatTurnPieces(m, i);
        for (const piece of pieces) {
          const room = limit - out.length;
          if (room <= 0) break;
          out += piece.length <= room ? piece : piece.slice(0, room);
        }
      }
      return out;
    }
    case 'text':
      return input.text.length <= limit ? input.text : input.text.slice(0, limit);
    case 'tokens':
    case 'none': {
      const text = promptText(input);
      return text.length <= limit ? text : text.slice(0, limit);
    }
  }
}

/** What a router that reads bodies by its own rules adds to `parseRequestBody`'s reading. */
export interface ParseRequestOptions {
  /**
   * Called with the body's JSON object before any member is read, so that what it throws is the answer: epp's
   * openai-parser refuses there what upstream's openai-parser refuses, with upstream's messages.
   */
  readonly check?: (body: Readonly<Record<string, unknown>>) => void;
  /**
   * The path is a completion endpoint, which reads `prompt` (upstream's openai-parser decodes a CompletionsRequest
   * there, and vLLM's CompletionRequest has no `messages`): a stray `messages` member is not the input.
   */
  readonly promptOnly?: boolean;
  /** A number out of float64's range is invalid JSON, as in Go (`JsonBodyOptions.refuseOutOfRange`). @default false */
  readonly refuseOutOfRange?: boolean;
}

/**
 * Parses a JSON request body. `messages` wins over `prompt` (chat endpoints ignore `prompt`) unless
 * `options.promptOnly`, `prompt` over `input`. With the request's `path` (its `:path`), the input is what that vLLM
 * endpoint prefills (`endpointInput`); without it, what the fields say.
 * @throws RequestBodyError for a body that is not a JSON object or a field of the wrong type (400), or one over 60 KiB
 *   with more than `MAX_JSON_VALUES` values (413 `request_too_large`, refused unparsed); whatever `options.check` throws.
 */
export function parseRequestBody(body: Buffer, path?: string, options?: ParseRequestOptions): ParsedRequestBody {
  let json: unknown;
  try {
    json = parseJsonBody(body, undefined, undefined, { refuseOutOfRange: options?.refuseOutOfRange === true });
  } catch (e) {
    if (e instanceof JsonBodyTooDenseError) throw new RequestBodyError(`request body has ${e.message}`, null, 'request_too_large', 413);
    throw new RequestBodyError(`request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new RequestBodyError('request body must be a JSON object', null, 'invalid_json');
  }
  const o = json as Record<string, unknown>;
  options?.check?.(o);
  const promptOnly = options?.promptOnly === true;
  const model = optionalString(o, 'model');
  const cacheSalt = optionalString(o, 'cache_salt');
  const endpoint = path === undefined ? 'other' : engineEndpoint(path);
  const input = endpointInput(o, body, endpoint, promptOnly);
  const prompt = promptText(input);
  const stream = o.stream === true;
  // The same members in the same order as ever, built without object spreads (each one a generic copy).
  const out: { -readonly [K in keyof ParsedRequestBody]: ParsedRequestBody[K] } = model !== undefined && model !== ''
    ? { model, input, prompt, stream }
    : { input, prompt, stream };
  if (cacheSalt !== undefined) out.cacheSalt = cacheSalt;
  if (model === '') out.emptyModel = true;
  if (o.priority !== undefined) out.hasPriority = true;
  const truncate = o.truncate_prompt_tokens;
  // A pooling model's tokenizer truncates on the right (`truncation_side = "right"` unless the task is generate or
  // draft, ModelConfig in vllm/config.py @ v0.10.0): it keeps the prompt's first tokens, whose blocks are the
  // untruncated prompt's leading ones, so such a request is keyed whole.
  if (typeof truncate === 'number' && Number.isInteger(truncate) && truncate >= 1 && endpoint === 'other') out.truncatePromptTokens = truncate;
  // Only the generation endpoints have prompt logprobs (a stray field elsewhere is ignored by vLLM).
  if (endpoint === 'other' && asksPromptLogprobs(o, promptOnly)) out.skipsPrefixCache = true;
  if (endpoint === 'responses') {
    if (typeof o.previous_response_id === 'string') out.previousResponseId = o.previous_response_id;
    // `store: Optional[bool] = True`: a null is None, which stores nothing (`if request.store:`).
    if (o.request_id === undefined && o.store !== null && pydanticLaxBool(o.store) !== false) out.storesUnnamedResponse = true;
  }
  return out;
}

/**
 * Whether vLLM computes prompt logprobs for the body: `prompt_logprobs` set, or else `echo` with the request's logprobs
 * count: a completion's `logprobs` (`CompletionRequest.to_sampling_params`), a chat's `top_logprobs`, which is 0 when
 * absent, so a chat's `echo` alone asks for them (`ChatCompletionRequest.to_sampling_params`: `if prompt_logprobs is
 * None and self.echo: prompt_logprobs = self.top_logprobs`, `top_logprobs: Optional[int] = 0`; protocol.py @ v0.10.0).
 */
function asksPromptLogprobs(o: Record<string, unknown>, promptOnly: boolean): boolean {
  if (o.prompt_logprobs !== undefined && o.prompt_logprobs !== null) return true;
  if (pydanticLaxBool(o.echo) !== true) return false;
  if (!promptOnly && o.messages !== undefined) return o.top_logprobs !== null;
  return o.prompt !== undefined && o.logprobs !== undefined && o.logprobs !== null;
}

/**
 * Whether a `content-type` names JSON (absent, `application/json`, `*+json`). The EPP reads these bodies, and bodies of
 * other types that open with `{` or `[` (GIE reads every body); the rest (multipart audio uploads) route by load.
 */
export function isJsonContentType(contentType: string | undefined): boolean {
  // What every OpenAI client sends, answered without splitting and lower-casing a copy.
  if (contentType === undefined || contentType === '' || contentType === 'application/json') return true;
  const mime = contentType.split(';')[0]!.trim().toLowerCase();
  return mime === 'application/json' || mime.endsWith('+json');
}
