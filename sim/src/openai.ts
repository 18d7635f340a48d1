import type { ChatMessage } from './tokenizer';

/** An error rendered as OpenAI's `{"error": {message, type, param, code}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

interface CommonRequest {
  model: string;
  maxTokens: number | undefined;
  stream: boolean;
  includeUsage: boolean;
  cacheSalt: string | undefined;
}

export interface CompletionRequest extends CommonRequest {
  kind: 'completion';
  prompt: string | number[];
}

export interface ChatRequest extends CommonRequest {
  kind: 'chat';
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
  tools: unknown[] | undefined;
  templateKwargs: Record<string, unknown>;
}

/** Qwen3's embedding table size: any id below it is a valid prompt token. */
export const VOCAB_SIZE = 151936;

type Json = Record<string, unknown>;

export function parseJsonBody(raw: string): Json {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    throw new ApiError(400, `Invalid JSON body: ${(e as Error).message}`, null, 'invalid_json');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, 'The request body must be a JSON object.', null, 'invalid_json');
  }
  return body as Json;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function wrongType(param: string, expected: string, v: unknown): ApiError {
  return new ApiError(400, `'${param}' must be ${expected}, got ${typeName(v)}.`, param, 'invalid_type');
}

function optBool(body: Json, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw wrongType(key, 'a boolean', v);
  return v;
}

function optString(body: Json, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw wrongType(key, 'a string', v);
  return v;
}

function optObject(body: Json, key: string): Json | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw wrongType(key, 'an object', v);
  return v as Json;
}

function optPositiveInt(body: Json, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw wrongType(key, 'an integer', v);
  if (v < 1) throw new ApiError(400, `'${key}' must be at least 1, got ${v}.`, key, 'invalid_value');
  return v;
}

/**
 * Checks the model and the fields this simulator acts on. Sampling fields
 * (temperature, top_p, stop, seed, ...) are accepted and ignored: the reply is
 * filler whose length, not content, matters.
 */
function parseCommon(body: Json, servedNames: readonly string[]): CommonRequest {
  const model = body.model;
  if (model === undefined || model === null) {
    throw new ApiError(404, `No model given; this server serves ${servedNames.map((n) => `\`${n}\``).join(', ')}.`, 'model', 'model_not_found');
  }
  if (typeof model !== 'string') throw wrongType('model', 'a string', model);
  if (!servedNames.includes(model)) {
    throw new ApiError(404, `The model \`${model}\` does not exist.`, 'model', 'model_not_found');
  }
  const n = optPositiveInt(body, 'n');
  if (n !== undefined && n !== 1) throw new ApiError(400, "Only 'n' = 1 is supported by the simulator.", 'n', 'unsupported_value');
  const streamOptions = optObject(body, 'stream_options');
  let includeUsage = false;
  if (streamOptions) {
    const iu = streamOptions.include_usage;
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean') throw wrongType('stream_options.include_usage', 'a boolean', iu);
    includeUsage = iu === true;
  }
  const stream = optBool(body, 'stream') ?? false;
  return {
    model,
    maxTokens: optPositiveInt(body, 'max_tokens'),
    stream,
    includeUsage: stream && includeUsage,
    cacheSalt: optString(body, 'cache_salt'),
  };
}

export function parseCompletionRequest(body: Json, servedNames: readonly string[]): CompletionRequest {
  const common = parseCommon(body, servedNames);
  let prompt = body.prompt;
  if (prompt === undefined || prompt === null) throw new ApiError(400, "'prompt' is required.", 'prompt', 'missing_required_parameter');
  // A one-element batch is common in client libraries; larger batches are not simulated.
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) {
    prompt = prompt[0];
  }
  if (typeof prompt === 'string') {
    if (prompt.length === 0) throw new ApiError(400, "'prompt' must not be empty.", 'prompt', 'invalid_value');
    return { kind: 'completion', ...common, prompt };
  }
  if (Array.isArray(prompt)) {
    if (prompt.length === 0) throw new ApiError(400, "'prompt' must not be empty.", 'prompt', 'invalid_value');
    if (prompt.every((t) => typeof t === 'number')) {
      for (const t of prompt as number[]) {
        if (!Number.isInteger(t) || t < 0 || t >= VOCAB_SIZE) {
          throw new ApiError(400, `Token id ${t} in 'prompt' is outside [0, ${VOCAB_SIZE}).`, 'prompt', 'invalid_value');
        }
      }
      return { kind: 'completion', ...common, prompt: prompt as number[] };
    }
    throw new ApiError(400, "'prompt' must be a string, an array of token ids, or a one-element array of either; batches are not supported.", 'prompt', 'invalid_type');
  }
  throw wrongType('prompt', 'a string or an array of token ids', prompt);
}

export function parseChatRequest(body: Json, servedNames: readonly string[]): ChatRequest {
  const common = parseCommon(body, servedNames);
  // max_completion_tokens is OpenAI's newer name; vLLM prefers it when both are set.
  const mct = optPositiveInt(body, 'max_completion_tokens');
  const raw = body.messages;
  if (raw === undefined || raw === null) throw new ApiError(400, "'messages' is required.", 'messages', 'missing_required_parameter');
  if (!Array.isArray(raw)) throw wrongType('messages', 'an array', raw);
  if (raw.length === 0) throw new ApiError(400, "'messages' must not be empty.", 'messages', 'invalid_value');
  const messages = raw.map((m, i) => normalizeMessage(m, i));
  const tools = body.tools;
  if (tools !== undefined && tools !== null && !Array.isArray(tools)) throw wrongType('tools', 'an array', tools);
  return {
    kind: 'chat',
    ...common,
    maxTokens: mct ?? common.maxTokens,
    messages,
    addGenerationPrompt: optBool(body, 'add_generation_prompt') ?? true,
    tools: Array.isArray(tools) && tools.length > 0 ? tools : undefined,
    templateKwargs: optObject(body, 'chat_template_kwargs') ?? {},
  };
}

/**
 * Gives the template a string `content`, as vLLM does for templates that
 * expect plain strings (Qwen3's calls .startswith on it): text parts are
 * joined with "\n", and a null content (assistant tool calls) becomes "".
 */
function normalizeMessage(m: unknown, i: number): ChatMessage {
  const param = `messages[${i}]`;
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw wrongType(param, 'an object', m);
  const msg = m as Json;
  if (typeof msg.role !== 'string') throw wrongType(`${param}.role`, 'a string', msg.role);
  const c = msg.content;
  let content: string;
  if (c === undefined || c === null) {
    content = '';
  } else if (typeof c === 'string') {
    content = c;
  } else if (Array.isArray(c)) {
    const texts: string[] = [];
    c.forEach((part: unknown, j) => {
      const pp = `${param}.content[${j}]`;
      if (part === null || typeof part !== 'object') throw wrongType(pp, 'an object', part);
      const p = part as Json;
      if (p.type !== 'text') throw new ApiError(400, `Only text content parts are supported, got type ${JSON.stringify(p.type)}.`, pp, 'unsupported_value');
      if (typeof p.text !== 'string') throw wrongType(`${pp}.text`, 'a string', p.text);
      texts.push(p.text);
    });
    content = texts.join('\n');
  } else {
    throw wrongType(`${param}.content`, 'a string, an array of content parts, or null', c);
  }
  return { ...msg, role: msg.role, content };
}

export interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens: number } | null;
}

/**
 * `UsageInfo` as vLLM 0.10 serializes it. `prompt_tokens_details` is only filled when the server runs with
 * `--enable-prompt-tokens-details` and the request's `num_cached_tokens` is non-zero
 * (vllm/entrypoints/openai/serving_chat.py and serving_completion.py @ v0.10.0). Non-streaming responses are
 * `model_dump()`ed, so an unset field is `null`; the final usage chunk of a stream is dumped with `exclude_none`, so
 * the key is absent.
 */
export function usage(promptTokens: number, completionTokens: number, cachedTokens: number, opts: { details: boolean; stream: boolean }): Usage {
  const details = opts.details && cachedTokens > 0 ? { cached_tokens: cachedTokens } : null;
  const u: Usage = {
    prompt_tokens: promptTokens,
    total_tokens: promptTokens + completionTokens,
    completion_tokens: completionTokens,
  };
  if (details !== null || !opts.stream) u.prompt_tokens_details = details;
  return u;
}
