/**
 * The Responses API as vLLM 0.10.0 serves it for a text model (no Harmony, no tools): `POST /v1/responses`,
 * `GET /v1/responses/{id}`, `POST /v1/responses/{id}/cancel`.
 *
 * Sources. vLLM v0.10.0 (2025-07-24) is not in the stored index; the nearest stored text is the pre-Harmony
 * `vllm/entrypoints/openai/serving_responses.py` of early August 2025, which already has PR #22137 ("[Responses API]
 * Disable response store by default", merged 2025-08-03, after v0.10.0). What the simulator takes from it is what
 * that PR did not change: `create_responses`, `_construct_input_messages`, `responses_full_generator`,
 * `retrieve_responses`, `cancel_responses`, `_make_invalid_id_error`, `_make_not_found_error`; and from
 * `vllm/entrypoints/openai/protocol.py` `ResponsesRequest` (its fields, defaults and the two mode="before" validators)
 * and `ResponsesResponse.from_request`. `VLLM_ENABLE_RESPONSES_API_STORE` does not exist at v0.10.0 (#22137 added it):
 * `store` (default true) is honoured.
 */
import type { VllmGeneration } from './block-hash';
import { ApiError, laxBool, laxFloat, laxInt, strictStr, validationError } from './openai';

type Json = Record<string, unknown>;

/** `ResponsesRequest` (protocol.py @ v0.10.0) as the simulator reads it. */
export interface ResponsesRequest {
  model: string | undefined;
  /** A string, or the input items as sent (each becomes a chat message). */
  input: string | Json[];
  instructions: string | null;
  maxOutputTokens: number | undefined;
  previousResponseId: string | null;
  /** `store: Optional[bool] = True`. */
  store: boolean;
  background: boolean;
  stream: boolean;
  temperature: number | undefined;
  topP: number | undefined;
  /** `request_id`: the response's id, `resp_` + a uuid's hex unless the body sets it. */
  requestId: string;
  priority: number;
  /** The fields `from_request` echoes as sent. */
  echo: {
    metadata: unknown;
    parallel_tool_calls: unknown;
    tool_choice: unknown;
    tools: unknown;
    max_tool_calls: unknown;
    prompt: unknown;
    reasoning: unknown;
    service_tier: unknown;
    text: unknown;
    top_logprobs: number;
    truncation: unknown;
    user: unknown;
  };
}

function opt<T>(body: Json, key: string, parse: (v: unknown, loc: (string | number)[]) => T, dflt: T): T {
  const v = body[key];
  return v === undefined || v === null ? dflt : parse(v, [key]);
}

/** Python truthiness of a JSON value, as the mode="before" validators read the raw body (`data.get(...)`). */
function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/**
 * Reads a `/v1/responses` body as pydantic validates `ResponsesRequest` (protocol.py @ v0.10.0). Its mode="before"
 * validators run first, the last defined first: `validate_prompt` ("prompt template is not supported") then
 * `validate_background` ("background can only be used when `store` is true"). Then the fields; only the ones the
 * simulator uses are type-checked (`input` required, a string or a list of objects; `model`, `instructions`,
 * `previous_response_id` strings; `max_output_tokens`, `top_logprobs`, `priority` ints; `store`, `stream`, `background`
 * bools; `temperature`, `top_p` floats). The other fields are echoed as sent.
 */
export function parseResponsesRequest(body: Json, newId: () => string): ResponsesRequest {
  // validate_prompt: `if data.get("prompt") is not None: raise ValueError(...)`.
  if (body.prompt !== undefined && body.prompt !== null) throw validationError([], 'value_error', 'Value error, prompt template is not supported', body);
  // validate_background: `if not data.get("background"): return data; if not data.get("store", True): raise`.
  if (truthy(body.background) && !truthy(body.store === undefined ? true : body.store)) {
    throw validationError([], 'value_error', 'Value error, background can only be used when `store` is true', body);
  }
  if (body.input === undefined) throw validationError(['input'], 'missing', 'Field required', body);
  let input: string | Json[];
  if (typeof body.input === 'string') input = body.input;
  else if (Array.isArray(body.input)) {
    input = body.input.map((item, i) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) throw validationError(['input', i], 'model_type', 'Input should be a valid dictionary or object', item);
      return item as Json;
    });
  } else throw validationError(['input', 'str'], 'string_type', 'Input should be a valid string', body.input);
  return {
    model: opt(body, 'model', strictStr, undefined as string | undefined),
    input,
    instructions: opt(body, 'instructions', strictStr, null as string | null),
    maxOutputTokens: opt(body, 'max_output_tokens', laxInt, undefined as number | undefined),
    previousResponseId: opt(body, 'previous_response_id', strictStr, null as string | null),
    // `Optional[bool] = True`: an explicit null is None, and `if request.store:` then stores nothing.
    store: body.store === null ? false : opt(body, 'store', laxBool, true),
    background: opt(body, 'background', laxBool, false),
    stream: opt(body, 'stream', laxBool, false),
    temperature: opt(body, 'temperature', laxFloat, undefined as number | undefined),
    topP: opt(body, 'top_p', laxFloat, undefined as number | undefined),
    requestId: body.request_id === undefined ? newId() : strictStr(body.request_id, ['request_id']),
    priority: body.priority === undefined ? 0 : laxInt(body.priority, ['priority']),
    echo: {
      metadata: body.metadata ?? null,
      // `parallel_tool_calls: Optional[bool] = True`, `tool_choice: ToolChoice = "auto"`, `tools: list[Tool] = []`,
      // `service_tier = "auto"`, `top_logprobs: Optional[int] = 0`, `truncation = "disabled"`.
      parallel_tool_calls: body.parallel_tool_calls ?? true,
      tool_choice: body.tool_choice ?? 'auto',
      tools: body.tools ?? [],
      max_tool_calls: body.max_tool_calls ?? null,
      prompt: null,
      reasoning: body.reasoning ?? null,
      service_tier: body.service_tier ?? 'auto',
      text: body.text ?? null,
      top_logprobs: opt(body, 'top_logprobs', laxInt, 0),
      truncation: body.truncation ?? 'disabled',
      user: body.user ?? null,
    },
  };
}

/** A chat message as `_construct_input_messages` builds it. */
export type InputMessage = Json;

/** A stored response: its body (as `ResponsesResponse.model_dump()`), mutable status. */
export interface StoredResponse {
  body: Json & { id: string; status: string; output: Json[] };
}

/**
 * `_construct_input_messages` (serving_responses.py @ v0.10.0): `instructions` as a system message when truthy, then the
 * previous response's stored input messages and each `output_text` of its output messages as an assistant message,
 * then a string `input` as a user message or the input items as they are.
 */
export function constructInputMessages(r: ResponsesRequest, prev: { messages: readonly InputMessage[]; response: StoredResponse } | undefined): InputMessage[] {
  const messages: InputMessage[] = [];
  if (r.instructions) messages.push({ role: 'system', content: r.instructions });
  if (prev !== undefined) {
    messages.push(...prev.messages);
    for (const item of prev.response.body.output) {
      // "NOTE: We skip the reasoning output."
      if (item.type !== 'message') continue;
      for (const content of item.content as { text: string }[]) messages.push({ role: 'assistant', content: content.text });
    }
  }
  if (typeof r.input === 'string') messages.push({ role: 'user', content: r.input });
  else for (const item of r.input) messages.push(inputTextAsText(item));
  return messages;
}

/**
 * An input item with its `input_text` parts as `text` parts: vLLM's chat parser reads an `input_text` part's `text` as
 * a `text` part's, and wraps it as `{'type': 'text', 'text': …}` in the "openai" content format
 * (`_parse_chat_message_content_part`, `MM_PARSER_MAP["input_text"]` in vllm/entrypoints/chat_utils.py: in the July
 * 2025 copies, beside the `input_image` of #20975, a follow-up of the Responses API's #20504 opened 2025-07-15, before
 * the v0.10.0 tag of 2025-07-24; not read from the tag itself). The chat route's reader simulates `text` parts only, so
 * they are renamed here; the rendered prompt is the same.
 */
function inputTextAsText(item: InputMessage): InputMessage {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return item;
  const content = (item as { content?: unknown }).content;
  if (!Array.isArray(content)) return item;
  for (const part of content) checkPartType(part);
  if (!content.some((p) => isInputText(p))) return item;
  return { ...item, content: content.map((p) => (isInputText(p) ? { ...(p as object), type: 'text' } : p)) } as InputMessage;
}

/**
 * The part types vLLM 0.10.0's chat parser knows (`MM_PARSER_MAP`, chat_utils.py in the July 2025 copies): text-like
 * ones are read as text, media ones parsed; the simulator reads `text` (and `input_text`, above) and answers the media
 * ones 501 through the chat route, as for chat.
 */
const KNOWN_PART_TYPES: ReadonlySet<string> = new Set(['text', 'thinking', 'input_text', 'input_image', 'image_url', 'image_embeds', 'image_pil', 'audio_url', 'input_audio', 'refusal', 'video_url']);

/**
 * Any other part type is `NotImplementedError(f"Unknown part type: {part_type}")` (`_parse_chat_message_content_part`),
 * which create_responses catches around `_preprocess_chat` (a RuntimeError) and answers
 * `create_error_response(f"{e} {e.__cause__}")`: a 400 whose message ends in " None" (serving_responses.py, the
 * August 2025 copy). An assistant's earlier reply sent back as an `output_text` part is such a part until vLLM #29175
 * (2025-11). A part without a type and without a media URL is chat_utils' ValueError, answered the same way.
 */
function checkPartType(part: unknown): void {
  if (typeof part !== 'object' || part === null || Array.isArray(part)) return;
  const p = part as Record<string, unknown>;
  const type = p.type;
  if (type === undefined || type === null) {
    if (p.image_url != null || p.audio_url != null || p.input_audio != null || p.video_url != null) return;
    throw new ApiError(400, "Missing 'type' field in multimodal part. None", 'BadRequestError');
  }
  if (typeof type !== 'string') throw new ApiError(400, "Invalid 'type' field in multimodal part. None", 'BadRequestError');
  if (!KNOWN_PART_TYPES.has(type)) throw new ApiError(400, `Unknown part type: ${type} None`, 'BadRequestError');
}

function isInputText(part: unknown): boolean {
  return typeof part === 'object' && part !== null && (part as { type?: unknown }).type === 'input_text';
}

/**
 * vLLM's `response_store` and `msg_store` (two dicts, never pruned: "this may cause a memory leak since we never remove
 * responses from the store", serving_responses.py @ v0.10.0). The simulator keeps a response and its input messages
 * as one entry, at most `capacity` entries and `maxChars` characters of their JSON between them (a 20k-token prompt's
 * messages took ~115 KiB of heap each, so a count alone let 10,000 of them grow past a gigabyte), and forgets the
 * oldest stored first; a forgotten id then answers as an unknown one (404).
 */
export class ResponseStore {
  private readonly entries = new Map<string, { response?: StoredResponse; messages?: InputMessage[]; chars: number }>();
  private chars = 0;

  constructor(readonly capacity: number, readonly maxChars: number = RESPONSE_STORE_MAX_CHARS) {}

  get size(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.response !== undefined) n++;
    return n;
  }

  /** The characters of JSON the store holds (messages and responses). */
  get storedChars(): number {
    return this.chars;
  }

  getResponse(id: string): StoredResponse | undefined {
    return this.entries.get(id)?.response;
  }

  getMessages(id: string): InputMessage[] | undefined {
    return this.entries.get(id)?.messages;
  }

  /** `msg_store[request.request_id] = messages`, written before the request runs. */
  putMessages(id: string, messages: InputMessage[]): void {
    this.put(id, { messages });
  }

  putResponse(id: string, r: StoredResponse): void {
    this.put(id, { response: r });
  }

  private put(id: string, part: { response?: StoredResponse; messages?: InputMessage[] }): void {
    const old = this.entries.get(id);
    const entry = { ...old, ...part, chars: 0 };
    entry.chars = (entry.messages === undefined ? 0 : JSON.stringify(entry.messages).length)
      + (entry.response === undefined ? 0 : JSON.stringify(entry.response.body).length);
    if (old !== undefined) {
      this.chars -= old.chars;
      this.entries.delete(id);
    }
    this.entries.set(id, entry);
    this.chars += entry.chars;
    // The newest entry stays even alone over the budget: the request that stored it is answered from it.
    while (this.entries.size > 1 && (this.entries.size > this.capacity || this.chars > this.maxChars)) {
      const [oldest, e] = this.entries.entries().next().value as [string, { chars: number }];
      this.entries.delete(oldest);
      this.chars -= e.chars;
    }
  }
}

/** How many responses the simulator's store keeps (see ResponseStore; vLLM's store is unbounded). */
export const RESPONSE_STORE_CAPACITY = 10_000;
/** The characters of JSON the simulator's store keeps: 64 Mi, some hundreds of MiB of heap at most. */
export const RESPONSE_STORE_MAX_CHARS = 64 * 1024 * 1024;

/** `_make_invalid_id_error`: create_error_response(err_type="invalid_request_error"), status 400. */
export function invalidIdError(id: string): ApiError {
  return new ApiError(400, `Invalid 'response_id': '${id}'. Expected an ID that begins with 'resp'.`, 'invalid_request_error');
}

/** `_make_not_found_error`: status 404, err_type "invalid_request_error". */
export function notFoundError(id: string): ApiError {
  return new ApiError(404, `Response with id '${id}' not found.`, 'invalid_request_error');
}

/**
 * `ResponsesResponse.from_request(...).model_dump()` (protocol.py @ v0.10.0): the fields in the model's order. The
 * sampling values echoed are SamplingParams' (`temperature`, `top_p`, `max_tokens`, `logprobs`), not the request's:
 * temperature and top_p default to 1.0, max_output_tokens is the max_tokens the engine ran with. `usage` is vLLM
 * 0.10.0's `UsageInfo` (prompt_tokens / total_tokens / completion_tokens / prompt_tokens_details), which this version
 * of the endpoint still used; the Responses API's `input_tokens` / `output_tokens` shape (`ResponseUsage`) came later.
 */
export function responseBody(
  r: ResponsesRequest,
  o: { model: string; createdAt: number; output: Json[]; status: string; usage: unknown; maxTokens: number },
): StoredResponse['body'] {
  return {
    id: r.requestId,
    created_at: o.createdAt,
    instructions: r.instructions,
    metadata: r.echo.metadata,
    model: o.model,
    object: 'response',
    output: o.output,
    parallel_tool_calls: r.echo.parallel_tool_calls,
    temperature: r.temperature ?? 1.0,
    tool_choice: r.echo.tool_choice,
    tools: r.echo.tools,
    top_p: r.topP ?? 1.0,
    background: r.background,
    max_output_tokens: o.maxTokens,
    max_tool_calls: r.echo.max_tool_calls,
    previous_response_id: r.previousResponseId,
    prompt: r.echo.prompt,
    reasoning: r.echo.reasoning,
    service_tier: r.echo.service_tier,
    status: o.status,
    text: r.echo.text,
    top_logprobs: r.echo.top_logprobs,
    truncation: r.echo.truncation,
    usage: o.usage,
    user: r.echo.user,
  };
}

/**
 * The output of `responses_full_generator` for a reply without reasoning: one `ResponseOutputMessage` (`msg_` + a uuid's
 * hex) holding one `ResponseOutputText` (annotations [], logprobs null), or nothing when the text is empty
 * (`if content:`). Field order as the openai SDK's models declare them.
 */
export function outputItems(text: string, msgId: string): Json[] {
  if (!text) return [];
  return [{ id: msgId, content: [{ annotations: [], text, type: 'output_text', logprobs: null }], role: 'assistant', status: 'completed', type: 'message' }];
}

export type { VllmGeneration };
