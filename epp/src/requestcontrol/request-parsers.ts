/**
 * The request parsers and the registry that picks one per request by its path, as llm-d-router v0.10.0 has them:
 *
 * - `pkg/epp/handlers/parsers.go` NewParserRegistry / Resolve: the configured parsers in order; a second parser of a
 *   type already listed is skipped; the first parser that claims no paths (`passthrough-parser`) is the fallback and
 *   ends the list; a request goes to the first parser one of whose claimed path suffixes its path ends with (each
 *   parser's claims in their order), else to the fallback, else nowhere: `"no parser registered matching path suffix
 *   for: <path>"`, which `handlers/server.go` (Process, RequestBody, L461-465) answers as a BadRequest, i.e. an
 *   ImmediateResponse 400 (`pkg/common/error/error.go` BuildErrResponse) counted in the request error metric with
 *   `error_code="BadRequest"`.
 * - `pkg/epp/framework/common/request/headers.go`: the path is `:path`, else `x-original-path`, else `x-forwarded-path`
 *   (its query cut off), else `/v1/completions`; `MatchPathSuffix` trims the path's trailing `/` and the claim's `/` on
 *   both ends, then tests a plain string suffix (no segment boundary: `/v1/xcompletions` ends with `completions`).
 * - The claims (`Claims()` of each parser @ v0.10.0): `parsers/openai/openai.go` L90-104, `parsers/anthropic/anthropic.go`
 *   L68-73, `parsers/vllmhttp/vllmhttp.go` L86-91, `parsers/passthrough/passthrough.go` L56-61 (none).
 *
 * GIE v1.5.0 has no registry: its one parser reads every request (`pkg/epp/handlers/parsers.go`, `server.go`); a
 * config in GIE's form gets that (`ParserRegistry.everyPath`).
 */
import {
  parseJsonBody,
  parseRequestBody,
  JsonBodyTooDenseError,
  promptOf,
  pythonJsonDumps,
  RequestBodyError,
  type ChatMessageInput,
  type ParsedRequestBody,
  type PromptInput,
} from '@kvroute/protocol/openai';
import { anthropicEstimateBytes } from '../scheduling/estimated-tokens';

/** The parser plugin types kvroute's EPP runs. */
export type ParserType = 'openai-parser' | 'passthrough-parser' | 'anthropic-parser' | 'vllmhttp-parser';

export const PARSER_TYPES: readonly ParserType[] = ['openai-parser', 'passthrough-parser', 'anthropic-parser', 'vllmhttp-parser'];

export function isParserType(type: string): type is ParserType {
  return (PARSER_TYPES as readonly string[]).includes(type);
}

/** Each parser type's claimed path suffixes, in upstream's order (see the module comment); none: the fallback. */
export const PARSER_CLAIMS: Readonly<Record<ParserType, readonly string[]>> = {
  'openai-parser': [
    'chat/completions', 'completions', 'embeddings', 'responses', 'conversations',
    'chat/completions/render', 'completions/render', 'images/generations',
  ],
  'anthropic-parser': ['messages', 'messages/count_tokens'],
  'vllmhttp-parser': ['inference/v1/generate'],
  'passthrough-parser': [],
};

/** llm-d-router v0.10.0 `pkg/epp/config/loader/defaults.go` ensureParsers: the parsers of a config that names none. */
export const LLMD_DEFAULT_PARSERS: readonly ParserType[] = ['openai-parser', 'anthropic-parser', 'vllmhttp-parser'];

/** `request.GetRequestPath` @ llm-d-router v0.10.0 (`pkg/epp/framework/common/request/headers.go` L23-40). */
export function requestPath(headers: ReadonlyMap<string, string>): string {
  for (const name of [':path', 'x-original-path', 'x-forwarded-path']) {
    const path = headers.get(name);
    if (path !== undefined && path !== '') {
      const q = path.indexOf('?');
      return q >= 0 ? path.slice(0, q) : path;
    }
  }
  return '/v1/completions';
}

/** `request.MatchPathSuffix` @ llm-d-router v0.10.0 (headers.go L43-47). */
export function matchPathSuffix(path: string, suffix: string): boolean {
  let p = path.trim();
  if (p.endsWith('/')) p = p.slice(0, -1);
  return p.endsWith(trimSlashes(suffix.trim()));
}

function trimSlashes(s: string): string {
  let from = 0;
  let to = s.length;
  while (from < to && s[from] === '/') from++;
  while (to > from && s[to - 1] === '/') to--;
  return s.slice(from, to);
}

/** A parser plugin of the config: its name and type. */
export interface ParserRef {
  readonly name: string;
  readonly type: ParserType;
}

export class ParserRegistry {
  private constructor(
    private readonly entries: readonly { readonly parser: ParserRef; readonly suffixes: readonly string[] }[],
    private readonly fallback: ParserRef | undefined,
    /** The parsers the registry kept, in order (upstream's `Parsers()`). */
    readonly parsers: readonly ParserRef[],
    /** llm-d-router's registry (a config in llm-d's form) rather than GIE v1.5.0's one parser for every path. */
    readonly registry: boolean,
  ) {}

  /** llm-d-router v0.10.0 `NewParserRegistry` (handlers/parsers.go L42-81) over the configured list. */
  static of(list: readonly ParserRef[]): ParserRegistry {
    const entries: { parser: ParserRef; suffixes: string[] }[] = [];
    const kept: ParserRef[] = [];
    const seen = new Set<ParserType>();
    let fallback: ParserRef | undefined;
    for (const parser of list) {
      const claims = PARSER_CLAIMS[parser.type];
      if (claims.length === 0) {
        fallback = parser;
        if (!seen.has(parser.type)) {
          seen.add(parser.type);
          kept.push(parser);
        }
        break;
      }
      if (seen.has(parser.type)) continue;
      seen.add(parser.type);
      kept.push(parser);
      entries.push({ parser, suffixes: claims.map((c) => trimSlashes(c.trim())) });
    }
    return new ParserRegistry(entries, fallback, kept, true);
  }

  /** GIE v1.5.0: one parser for every request, whatever its path (`handlers/server.go` NewStreamingServer's parser). */
  static everyPath(parser: ParserRef): ParserRegistry {
    return new ParserRegistry([], parser, [parser], false);
  }

  /** `Resolve` (handlers/parsers.go L89-102): the parser for a request path; undefined when none claims it. */
  resolve(path: string): ParserRef | undefined {
    for (const { parser, suffixes } of this.entries) {
      for (const suffix of suffixes) if (matchPathSuffix(path, suffix)) return parser;
    }
    return this.fallback;
  }
}

/** `Resolve`'s error text, which upstream answers with (a 400 carrying `inference error: BadRequest - <this>`). */
export function unclaimedPathMessage(path: string): string {
  return `no parser registered matching path suffix for: ${path}`;
}

/** A body forwarded as it came, not read (passthrough-parser, Anthropic's count_tokens): no model, no prompt. */
export const UNREAD_BODY: ParsedRequestBody = Object.freeze({ input: Object.freeze({ kind: 'none' as const }), prompt: '', stream: false });

// ---------------------------------------------------------------------------------------------------------------------
// JSON helpers

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The body as a JSON value, with kvroute's limits (`parseJsonBody`): a 413 for one too dense, a 400 for bad JSON. */
function jsonOf(body: Buffer, what: string): unknown {
  try {
    // A number out of float64's range is refused, as upstream's Go parsers refuse it.
    return parseJsonBody(body, undefined, undefined, { refuseOutOfRange: true });
  } catch (e) {
    if (e instanceof JsonBodyTooDenseError) throw new RequestBodyError(`request body has ${e.message}`, null, 'request_too_large', 413);
    throw new RequestBodyError(`${what}: ${(e as Error).message}`, null, 'invalid_json');
  }
}

/** A Go `string` field: absent or null is "", another type an unmarshal error. */
function goString(o: JsonObject, field: string, path: string, prefix: string): string {
  const v = o[field];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new RequestBodyError(`${prefix}: ${path}${field}: must be a string`, `${path}${field}`, 'invalid_type');
  return v;
}

// ---------------------------------------------------------------------------------------------------------------------
// anthropic-parser

/** Claude Code's per-request billing header, left out of the system prompt as vLLM and upstream leave it out. */
const ANTHROPIC_BILLING_HEADER_PREFIX = 'x-anthropic-billing-header';

/** `AnthropicContent` (framework/interface/requesthandling/types.go L710-731 @ v0.10.0): a string or content blocks. */
type AnthropicContent = string | readonly JsonObject[];

function anthropicContent(v: unknown, path: string, prefix: string): AnthropicContent {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    return v.map((block, i) => {
      const at = `${path}[${i}]`;
      if (block === null) return {};
      if (!isObject(block)) throw new RequestBodyError(`${prefix}: ${at}: a content block must be an object`, at, 'invalid_type');
      for (const f of ['type', 'text', 'id', 'name', 'tool_use_id', 'thinking']) goString(block, f, `${at}.`, prefix);
      if (block.source !== undefined && block.source !== null) {
        if (!isObject(block.source)) throw new RequestBodyError(`${prefix}: ${at}.source: must be an object`, `${at}.source`, 'invalid_type');
        // `AnthropicImageSource`: four strings (types.go L776-781 @ v0.10.0).
        for (const f of ['type', 'media_type', 'data', 'url']) goString(block.source, f, `${at}.source.`, prefix);
      }
      anthropicContent(block.content, `${at}.content`, prefix);
      return block;
    });
  }
  throw new RequestBodyError(`${prefix}: ${path}: anthropic content: must be a string or an array of content blocks`, path, 'invalid_type');
}

/** `anthropicSystemText` (dataproducer/tokenizer/tokenizer.go L456-467 @ v0.10.0). */
function systemText(content: AnthropicContent): string {
  if (typeof content === 'string') return content;
  let out = '';
  for (const b of content) {
    if (b.type === 'text' && typeof b.text === 'string' && b.text !== '' && !b.text.startsWith(ANTHROPIC_BILLING_HEADER_PREFIX)) out += b.text;
  }
  return out;
}

/** `anthropicImageToURL` (tokenizer.go L647-662): a URL, a data URI, or "" (dropped). */
function imageUrl(source: unknown): string {
  if (!isObject(source)) return '';
  const url = typeof source.url === 'string' ? source.url : '';
  if (source.type === 'url' || url !== '') return url;
  const data = typeof source.data === 'string' ? source.data : '';
  if (data === '') return '';
  const mediaType = typeof source.media_type === 'string' && source.media_type !== '' ? source.media_type : 'image/jpeg';
  return `data:${mediaType};base64,${data}`;
}

/** `anthropicToolResultContent` (tokenizer.go L594-609): text blocks joined with newlines, and the images. */
function toolResultContent(block: JsonObject): { text: string; images: JsonObject[] } {
  const content = block.content as AnthropicContent | undefined;
  if (typeof content === 'string' || content === undefined || content === null) return { text: content ?? '', images: [] };
  const parts: string[] = [];
  const images: JsonObject[] = [];
  for (const item of content) {
    if (item.type === 'text') parts.push(typeof item.text === 'string' ? item.text : '');
    else if (item.type === 'image') pushImage(images, item.source);
  }
  return { text: parts.join('\n'), images };
}

function pushImage(blocks: JsonObject[], source: unknown): void {
  const url = imageUrl(source);
  if (url !== '') blocks.push({ type: 'image_url', image_url: { url } });
}

/** `anthropicToolCall` / `pythonArguments` (tokenizer.go L544-572): an OpenAI function tool call. */
function toolCall(block: JsonObject): JsonObject {
  const input = block.input;
  const args = input === undefined || input === null || (isObject(input) && Object.keys(input).length === 0) ? '{}' : pythonJsonDumps(input);
  return {
    id: typeof block.id === 'string' && block.id !== '' ? block.id : 'call_0000000000',
    type: 'function',
    function: { name: typeof block.name === 'string' ? block.name : '', arguments: args },
  };
}

/** `appendAnthropicMessage` (tokenizer.go L472-527): one Anthropic message as the OpenAI chat messages vLLM builds. */
function appendMessage(out: ChatMessageInput[], role: string, content: AnthropicContent): void {
  if (typeof content === 'string') {
    // upstream tests `m.Content.Raw != ""`: an empty string falls through to the (empty) block list below.
    if (content !== '') {
      out.push({ role, content });
      return;
    }
  }
  const blocks: JsonObject[] = [];
  const toolCalls: JsonObject[] = [];
  let reasoning = '';
  for (const b of typeof content === 'string' ? [] : content) {
    switch (b.type) {
      case 'text':
        if (typeof b.text === 'string' && b.text !== '') blocks.push({ type: 'text', text: b.text });
        break;
      case 'image':
        pushImage(blocks, b.source);
        break;
      case 'thinking':
        reasoning += typeof b.thinking === 'string' ? b.thinking : '';
        break;
      case 'tool_use':
        toolCalls.push(toolCall(b));
        break;
      case 'tool_result': {
        const { text, images } = toolResultContent(b);
        if (role === 'user') {
          out.push({ role: 'tool', tool_call_id: typeof b.tool_use_id === 'string' ? b.tool_use_id : '', content: text });
          if (images.length > 0) out.push({ role: 'user', content: images });
        } else {
          blocks.push({ type: 'text', text: `Tool result: ${text}` });
        }
        break;
      }
      // redacted_thinking and unknown blocks contribute nothing.
    }
  }
  let messageContent: string | JsonObject[] | undefined;
  if (blocks.length === 1 && blocks[0]!.type === 'text') messageContent = blocks[0]!.text as string;
  else if (blocks.length > 0) messageContent = blocks;
  // A user message reduced to bare tool_results has no content of its own; its tool messages are already in.
  if (role === 'user' && messageContent === undefined) return;
  const message: { -readonly [K in keyof ChatMessageInput]: ChatMessageInput[K] } = { role, content: messageContent ?? null };
  if (reasoning !== '') message.reasoning = reasoning;
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  out.push(message);
}

/** `convertAnthropicTools` (tokenizer.go L614-640): OpenAI function tools. */
function convertTools(tools: readonly JsonObject[]): JsonObject[] {
  return tools.map((t) => {
    const schema = t.input_schema === undefined || t.input_schema === null ? { type: 'object' } : t.input_schema;
    const fn: JsonObject = { name: typeof t.name === 'string' ? t.name : '', parameters: schema };
    if (typeof t.description === 'string' && t.description !== '') fn.description = t.description;
    if (typeof t.strict === 'boolean') fn.strict = t.strict;
    if (typeof t.defer_loading === 'boolean') fn.defer_loading = t.defer_loading;
    return { type: 'function', function: fn };
  });
}

/**
 * `anthropic-parser`'s ParseRequest (`parsers/anthropic/anthropic.go` L84-126 @ v0.10.0): `…/messages/count_tokens` is
 * forwarded unread (a raw payload, response processing skipped); `…/messages` must be a JSON object whose
 * `MessagesRequest` decodes and has at least one message; `model` (a string) and `stream` (true) are read. The
 * prompt kvroute matches prefixes on is the chat vLLM serves a Messages request as, which is the chat upstream's
 * tokenizer renders for it (`dataproducer/tokenizer/tokenizer.go` MessagesToRenderChatRequest, L423-451): the system
 * prompt as a leading system message, then each message (tool results as tool messages, tool uses as tool calls,
 * images as image_url parts), read by the approximate prefix scorer as ChatML turns like any chat.
 * @throws RequestBodyError (400) with upstream's messages.
 */
export function parseAnthropicRequest(body: Buffer, path: string): ParsedRequestBody {
  if (path.endsWith('/messages/count_tokens')) return UNREAD_BODY;
  if (!path.endsWith('/messages')) throw new RequestBodyError(`unsupported API endpoint: ${path}`, null, 'unsupported_path');
  const json = jsonOf(body, 'error unmarshaling request body');
  if (json !== null && !isObject(json)) throw new RequestBodyError('error unmarshaling request body: must be a JSON object', null, 'invalid_json');
  const o: JsonObject = json ?? {};
  const prefix = 'error parsing messages request';
  const rawMessages = o.messages;
  if (rawMessages !== undefined && rawMessages !== null && !Array.isArray(rawMessages)) {
    throw new RequestBodyError(`${prefix}: messages: must be an array`, 'messages', 'invalid_type');
  }
  const messages = ((rawMessages as unknown[] | null | undefined) ?? []).map((m, i) => {
    const at = `messages[${i}]`;
    if (m === null) return { role: '', content: '' as AnthropicContent };
    if (!isObject(m)) throw new RequestBodyError(`${prefix}: ${at}: must be an object`, at, 'invalid_type');
    return { role: goString(m, 'role', `${at}.`, prefix), content: anthropicContent(m.content, `${at}.content`, prefix) };
  });
  const system = anthropicContent(o.system, 'system', prefix);
  const rawTools = o.tools;
  if (rawTools !== undefined && rawTools !== null && !Array.isArray(rawTools)) throw new RequestBodyError(`${prefix}: tools: must be an array`, 'tools', 'invalid_type');
  const tools = ((rawTools as unknown[] | null | undefined) ?? []).map((t, i) => {
    const at = `tools[${i}]`;
    if (t === null) return {};
    if (!isObject(t)) throw new RequestBodyError(`${prefix}: ${at}: must be an object`, at, 'invalid_type');
    goString(t, 'name', `${at}.`, prefix);
    goString(t, 'description', `${at}.`, prefix);
    // `AnthropicTool.Strict`, `DeferLoading`: `*bool` (types.go L686-692 @ v0.10.0).
    for (const f of ['strict', 'defer_loading']) {
      if (t[f] !== undefined && t[f] !== null && typeof t[f] !== 'boolean') throw new RequestBodyError(`${prefix}: ${at}.${f}: must be a boolean`, `${at}.${f}`, 'invalid_type');
    }
    return t;
  });
  const cacheSalt = goString(o, 'cache_salt', '', prefix);
  if (messages.length === 0) throw new RequestBodyError('invalid messages request: must have at least one message', 'messages', 'invalid_value');

  const chat: ChatMessageInput[] = [];
  const sys = systemText(system);
  if (sys !== '') chat.push({ role: 'system', content: sys });
  for (const m of messages) {
    if (m.role === 'system') {
      // Not valid Anthropic input; tolerated the way vLLM does (tokenizer.go L434-442).
      const text = systemText(m.content);
      if (text !== '') chat.push({ role: 'system', content: text });
      continue;
    }
    appendMessage(chat, m.role, m.content);
  }
  // The prefix-based P/D decider's prompt length: upstream's estimate counts the Anthropic body's own fields.
  const hasToolUse = messages.some((m) => typeof m.content !== 'string' && m.content.some((b) => b.type === 'tool_use'));
  const raw = hasToolUse || tools.some((t) => t.input_schema !== undefined) ? anthropicRawBytes(body) : undefined;
  const estimateBytes = anthropicEstimateBytes({
    tools, systemText: sys, messages, toolResultText: (b) => toolResultContent(b).text,
    ...(raw !== undefined
      ? { toolUseInputBytes: (message: number, block: number) => raw.inputs.get(`${message}:${block}`), inputSchemaBytes: (tool: number) => raw.schemas.get(tool) }
      : {}),
  });
  const input: PromptInput = chat.length === 0
    ? { kind: 'none' }
    : { kind: 'chat', messages: chat, ...(tools.length > 0 ? { tools: convertTools(tools) } : {}), addGenerationPrompt: true, continueFinalMessage: false, estimateBytes };
  return parsedBody(o, input, cacheSalt);
}

/**
 * What upstream's estimate counts of the body's json.RawMessage fields: upstream decodes the body straight into
 * MessagesRequest (parsers/anthropic/anthropic.go ParseRequest @ llm-d-router v0.10.0), whose tool_use `Input` and
 * tool `InputSchema` keep the value's raw bytes (requesthandling/types.go L689, L767), spacing and `\u` escapes
 * included. estimate.go messagesBytes appends each `messages[i].content[j].input` as is (`inputs`, keyed `i:j`) and
 * packs json.Marshal of the tools, which compacts each `tools[k].input_schema` (`schemas`, `goCompactBytes`). A key
 * sent twice counts its last value, as Go and JSON.parse keep the last. Read only for a body JSON.parse has taken, so
 * the scan need not validate.
 */
function anthropicRawBytes(body: Buffer): { inputs: Map<string, number>; schemas: Map<number, number> } {
  const out = new Map<string, number>();
  const schemas = new Map<number, number>();
  let pos = 0;
  const ws = (): void => {
    while (pos < body.length && (body[pos] === 0x20 || body[pos] === 0x09 || body[pos] === 0x0a || body[pos] === 0x0d)) pos++;
  };
  /** Past the string starting at `pos` (its opening quote). */
  const passString = (): void => {
    for (pos++; body[pos] !== 0x22; pos++) if (body[pos] === 0x5c) pos++;
    pos++;
  };
  /** Past a member's key at `pos`; returns it decoded (a key may be written with escapes). */
  const string = (): string => {
    const start = pos;
    passString();
    return JSON.parse(body.toString('utf8', start, pos)) as string;
  };
  /** Past the value starting at `pos`. */
  const skip = (): void => {
    let depth = 0;
    do {
      const c = body[pos]!;
      if (c === 0x22) {
        passString();
        continue;
      }
      if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) depth--;
      else if (depth === 0 && c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x2c && c !== 0x3a) {
        // A number or literal outside any container: to its end.
        while (pos < body.length && !' \t\n\r,}]'.includes(String.fromCharCode(body[pos]!))) pos++;
        return;
      }
      pos++;
    } while (depth > 0 && pos < body.length);
  };
  /** Each member of the object at `pos` (else the value is skipped): `member` is at its value and must pass it. */
  const object = (member: (key: string) => void): void => {
    ws();
    if (body[pos] !== 0x7b) return skip();
    pos++;
    for (ws(); body[pos] !== 0x7d; ws()) {
      if (body[pos] === 0x2c) {
        pos++;
        ws();
      }
      const key = string();
      ws();
      pos++; // ':'
      ws();
      member(key);
    }
    pos++;
  };
  /** Each element of the array at `pos` (else the value is skipped): `element` is at it and must pass it. */
  const array = (element: (index: number) => void): void => {
    ws();
    if (body[pos] !== 0x5b) return skip();
    pos++;
    let index = 0;
    for (ws(); body[pos] !== 0x5d; ws()) {
      if (body[pos] === 0x2c) {
        pos++;
        ws();
      }
      element(index++);
    }
    pos++;
  };
  object((key) => {
    if (key === 'tools') {
      schemas.clear();
      return array((k) => object((key) => {
        if (key !== 'input_schema') return skip();
        const start = pos;
        skip();
        schemas.set(k, goCompactBytes(body, start, pos));
      }));
    }
    if (key !== 'messages') return skip();
    out.clear();
    array((i) => object((key) => {
      if (key !== 'content') return skip();
      for (const k of [...out.keys()]) if (k.startsWith(`${i}:`)) out.delete(k);
      array((j) => object((key) => {
        if (key !== 'input') return skip();
        const start = pos;
        skip();
        out.set(`${i}:${j}`, pos - start);
      }));
    }));
  });
  return { inputs: out, schemas };
}

/**
 * Bytes of Go's json.Marshal of a json.RawMessage holding `body[start, end)` (encoding/json encode.go marshalerEncoder:
 * appendCompact with HTML escaping): whitespace outside strings dropped, strings kept as written but `<`, `>`, `&`
 * (one byte) and U+2028, U+2029 (three) written as six-byte `\u` escapes.
 */
function goCompactBytes(body: Buffer, start: number, end: number): number {
  let bytes = 0;
  let inString = false;
  for (let i = start; i < end; i++) {
    const c = body[i]!;
    if (!inString) {
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
      if (c === 0x22) inString = true;
      bytes++;
      continue;
    }
    if (c === 0x5c) {
      bytes += 2;
      i++;
    } else if (c === 0x22) {
      inString = false;
      bytes++;
    } else if (c === 0x3c || c === 0x3e || c === 0x26) {
      bytes += 6;
    } else if (c === 0xe2 && body[i + 1] === 0x80 && (body[i + 2] === 0xa8 || body[i + 2] === 0xa9)) {
      bytes += 6;
      i += 2;
    } else {
      bytes++;
    }
  }
  return bytes;
}

/** The parsed body of a request these parsers read: its model (a non-empty string), prompt, stream flag and salt. */
function parsedBody(o: JsonObject, input: PromptInput, cacheSalt: string): ParsedRequestBody {
  const model = typeof o.model === 'string' && o.model !== '' ? o.model : undefined;
  const out: { -readonly [K in keyof ParsedRequestBody]: ParsedRequestBody[K] } = {
    ...(model !== undefined ? { model } : {}),
    input,
    prompt: promptOf(input),
    stream: o.stream === true,
  };
  if (cacheSalt !== '') out.cacheSalt = cacheSalt;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// vllmhttp-parser

const GENERATE_PATH_SUFFIX = 'inference/v1/generate';

/** `GenerateRequest.UnmarshalJSON`'s `features` (types.go L531-538 @ v0.10.0): decoded, so typed, though kvroute reads none of it. */
const GENERATE_FEATURES: GoType = {
  struct: {
    mm_hashes: { mapOf: { slice: 'string' } },
    mm_placeholders: { mapOf: { slice: { struct: { offset: 'int64', length: 'int64' } } } },
  },
};
const decodesGenerateFeatures = compileGoType(GENERATE_FEATURES);
const MAX_UINT32 = 0xffffffff;

/**
 * `vllmhttp-parser`'s ParseRequest (`parsers/vllmhttp/vllmhttp.go` L95-144 @ v0.10.0) for vLLM's
 * `/inference/v1/generate`: a JSON object whose `token_ids` (`GenerateRequest.UnmarshalJSON`, types.go L526-565) are
 * whole numbers in [0, 2^32) and not empty; `model` (a string), `stream` (true) and `cache_salt` read beside them. The
 * prompt is the token ids themselves (kind `tokens`, as a completion given ids): upstream's token producer takes them
 * as they are (`dataproducer/tokenizer/estimate.go` L114-118). Multimodal `features` (mm hashes and placeholders) are
 * not read: kvroute's prefix index keys text and token blocks only; they are type-checked, as upstream decodes them.
 * @throws RequestBodyError (400) with upstream's messages.
 */
export function parseGenerateRequest(body: Buffer, path: string): ParsedRequestBody {
  if (!path.endsWith(GENERATE_PATH_SUFFIX)) throw new RequestBodyError(`unsupported path: ${path}`, null, 'unsupported_path');
  const json = jsonOf(body, 'request body is not valid JSON');
  if (json !== null && !isObject(json)) throw new RequestBodyError('request body must be a JSON object', null, 'invalid_json');
  const o: JsonObject = json ?? {};
  const raw = o.token_ids;
  if (raw !== undefined && raw !== null && !Array.isArray(raw)) {
    throw new RequestBodyError('invalid generate request: token_ids: must be an array of token ids', 'token_ids', 'invalid_type');
  }
  const tokens = ((raw as unknown[] | null | undefined) ?? []).map((t, i) => {
    if (typeof t !== 'number') throw new RequestBodyError(`invalid generate request: token_ids[${i}]: must be a number`, `token_ids[${i}]`, 'invalid_type');
    if (t < 0 || t > MAX_UINT32 || !Number.isInteger(t)) throw new RequestBodyError(`invalid generate request: token_ids[${i}]: invalid value ${t}`, `token_ids[${i}]`, 'invalid_value');
    return t;
  });
  const cacheSalt = goString(o, 'cache_salt', '', 'invalid generate request');
  if (!decodesGenerateFeatures(o.features)) throw new RequestBodyError('invalid generate request: features: wrong type', 'features', 'invalid_type');
  if (tokens.length === 0) throw new RequestBodyError('invalid generate request: must have non-empty token_ids field', 'token_ids', 'invalid_value');
  const input: PromptInput = { kind: 'tokens', tokens };
  return parsedBody(o, input, cacheSalt);
}

// ---------------------------------------------------------------------------------------------------------------------
// openai-parser

/** The API upstream's openai-parser reads a body as (`determineAPITypeFromPath`, `parsers/openai/openai.go`). */
export type OpenAiApi = 'conversations' | 'responses' | 'chat/completions' | 'completions' | 'embeddings' | 'images/generations';

/** Which upstream's openai-parser a config runs: GIE v1.5.0's (every path) or llm-d-router v0.10.0's (its claims). */
export type OpenAiParserForm = 'gie' | 'llmd';

/**
 * `determineAPITypeFromPath` of each form, first match wins. llm-d-router v0.10.0: `request.MatchPathSuffix` on
 * `request.GetRequestPath` (query cut off, `requestPath`), with the render sub-paths and `images/generations`, anything
 * else `completions` (its registry sends this parser only the paths it claims). GIE v1.5.0 tests the path with a plain
 * `strings.HasSuffix`; kvroute departs from it in two ways, both for traffic vLLM serves: it cuts the query first (GIE
 * tests the path as sent, so a `/v1/chat/completions?api-version=1` chat was a completion there and refused), and a
 * path ending in none of GIE's five APIs (`/v1/score`, `/v1/rerank`, `/tokenize`, `/pooling`, `/v1/messages`), which GIE
 * reads as a completion and refuses without a `prompt`, is undefined: not checked, read by its fields.
 */
export function openAiApiOf(headers: ReadonlyMap<string, string>, form: OpenAiParserForm): OpenAiApi | undefined {
  if (form === 'gie') {
    const path = requestPath(headers);
    for (const api of ['conversations', 'responses', 'chat/completions', 'completions', 'embeddings'] as const) {
      if (path.endsWith(`/${api}`)) return api;
    }
    return undefined;
  }
  const path = requestPath(headers);
  const ends = (suffix: string): boolean => matchPathSuffix(path, suffix);
  if (ends('/conversations')) return 'conversations';
  if (ends('/responses')) return 'responses';
  if (ends('/chat/completions') || ends('/chat/completions/render')) return 'chat/completions';
  if (ends('/completions') || ends('/completions/render')) return 'completions';
  if (ends('/embeddings')) return 'embeddings';
  if (ends('/images/generations')) return 'images/generations';
  return 'completions';
}

/**
 * How Go's `encoding/json` decodes a member into the request struct upstream's `extractRequestBody` unmarshals: a
 * JSON null leaves any field as it is except one with its own `UnmarshalJSON` (`custom`, given the null too).
 */
type GoType =
  | 'string'
  | 'bool'
  /** `*int64`: a whole number. */
  | 'int64'
  /** `any`, `json.RawMessage`: anything. */
  | 'any'
  /** `map[string]any`. */
  | 'map'
  /** `map[string]T`. */
  | { readonly mapOf: GoType }
  | { readonly slice: GoType }
  /** A struct: an object whose listed members decode (unlisted ones are ignored). */
  | { readonly struct: Readonly<Record<string, GoType>> }
  | { readonly custom: (v: unknown) => boolean };

/** Whether a JSON value decodes into a `GoType`. */
type Decodes = (v: unknown) => boolean;

/**
 * `t` as a function, built once (module load) rather than walked as a description on every request: a chat of
 * thousands of messages is checked member by member with no allocation.
 */
function compileGoType(t: GoType): Decodes {
  if (typeof t === 'object' && 'custom' in t) {
    const custom = t.custom;
    return (v) => v === undefined || custom(v);
  }
  switch (t) {
    case 'any': return () => true;
    case 'string': return (v) => v === undefined || v === null || typeof v === 'string';
    case 'bool': return (v) => v === undefined || v === null || typeof v === 'boolean';
    case 'int64': return (v) => v === undefined || v === null || (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) <= 2 ** 63);
    case 'map': return (v) => v === undefined || v === null || isObject(v);
  }
  if ('mapOf' in t) {
    const element = compileGoType(t.mapOf);
    return (v) => {
      if (v === undefined || v === null) return true;
      if (!isObject(v)) return false;
      for (const k in v) if (!element(v[k])) return false;
      return true;
    };
  }
  if ('slice' in t) {
    const element = compileGoType(t.slice);
    return (v) => {
      if (v === undefined || v === null) return true;
      if (!Array.isArray(v)) return false;
      for (let i = 0; i < v.length; i++) if (!element(v[i])) return false;
      return true;
    };
  }
  const fields = Object.entries(t.struct).map(([k, ft]) => [k, compileGoType(ft)] as const);
  return (v) => {
    if (v === undefined || v === null) return true;
    if (!isObject(v)) return false;
    for (let i = 0; i < fields.length; i++) if (!fields[i]![1](v[fields[i]![0]])) return false;
    return true;
  };
}

const isTokenIds = (v: unknown): boolean =>
  Array.isArray(v) && v.length > 0 && v.every((e) => typeof e === 'number' && Number.isInteger(e) && e >= 0 && e <= MAX_UINT32);

/**
 * GIE v1.5.0 `Prompt.UnmarshalJSON` (scheduling/types.go): a string, or an array read as `[]string` (nulls are "").
 * kvroute also takes what vLLM's completions take beside text, which GIE's type refuses (a 400 there): token ids, and a
 * batch of token-id lists (lm-eval's local-completions sends these).
 */
const GIE_PROMPT: GoType = {
  custom: (v) => typeof v === 'string'
    || (Array.isArray(v) && (v.every((e) => e === null || typeof e === 'string') || isTokenIds(v) || v.every(isTokenIds))),
};

/**
 * llm-d-router v0.10.0 `Prompt` / `EmbeddingsInput.UnmarshalJSON` (requesthandling/types.go `parseArrayInput`): a
 * string, or an array whose first element says it all: strings, or token ids (numbers that are uint32 values).
 */
const LLMD_PROMPT: GoType = {
  custom: (v) => {
    if (typeof v === 'string') return true;
    if (!Array.isArray(v)) return false;
    if (v.length === 0 || typeof v[0] === 'string') return v.every((e) => typeof e === 'string');
    return v.every((e) => typeof e === 'number' && Number.isInteger(e) && e >= 0 && e <= MAX_UINT32);
  },
};

/** `Prompt.IsEmpty` / `EmbeddingsInput.IsEmpty`: "" or no elements. */
function isEmptyPrompt(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
}

/** `ContentBlock` (the same in both forms): `type` and `text` strings, each media part an object of strings. */
const CONTENT_BLOCK: GoType = {
  struct: {
    type: 'string',
    text: 'string',
    image_url: { struct: { url: 'string' } },
    input_audio: { struct: { data: 'string', format: 'string' } },
    video_url: { struct: { url: 'string' } },
  },
};

const decodesContentBlocks = compileGoType({ slice: CONTENT_BLOCK });

/** `Content.UnmarshalJSON`: a string (null is ""), else `[]ContentBlock`, else "content format not supported". */
const CONTENT: GoType = { custom: (v) => v === null || typeof v === 'string' || (Array.isArray(v) && decodesContentBlocks(v)) };

/**
 * The request struct each API's body decodes into: GIE v1.5.0 `pkg/epp/framework/interface/scheduling/types.go`,
 * llm-d-router v0.10.0 `pkg/epp/framework/interface/requesthandling/types.go` (its `Message` adds `tool_calls`, its
 * `input` of embeddings is typed, and it has `ImagesGenerationsRequest`).
 */
function requestStruct(api: OpenAiApi, form: OpenAiParserForm): GoType {
  switch (api) {
    case 'conversations':
      return { struct: { items: { slice: { struct: { type: 'string', role: 'string', content: 'any' } } }, metadata: 'map', cache_salt: 'string' } };
    case 'responses':
      return { struct: { input: 'any', instructions: 'any', tools: 'any', cache_salt: 'string' } };
    case 'chat/completions': {
      const message: GoType = { struct: form === 'gie' ? { role: 'string', content: CONTENT } : { role: 'string', content: CONTENT, tool_calls: { slice: 'any' } } };
      return {
        struct: {
          messages: { slice: message },
          tools: { slice: 'any' },
          documents: { slice: 'any' },
          chat_template: 'string',
          return_assistant_tokens_mask: 'bool',
          continue_final_message: 'bool',
          add_generation_prompt: 'bool',
          chat_template_kwargs: 'map',
          cache_salt: 'string',
        },
      };
    }
    case 'completions':
      return { struct: { prompt: form === 'gie' ? GIE_PROMPT : LLMD_PROMPT, cache_salt: 'string' } };
    case 'embeddings':
      return { struct: { input: form === 'gie' ? 'any' : LLMD_PROMPT, cache_salt: 'string' } };
    case 'images/generations':
      return { struct: { prompt: 'string', n: 'int64', size: 'string', num_inference_steps: 'int64' } };
  }
}

/**
 * `extractRequestBody` (`parsers/openai/openai.go`, GIE v1.5.0 and llm-d-router v0.10.0): the body must decode into
 * its API's request struct and have the API's required member, else the parser fails and `requestcontrol/director.go`
 * answers a BadRequest (400) with its message. The differences of llm-d's copy: `input` of embeddings must not be
 * empty (`EmbeddingsInput.IsEmpty`), and `images/generations` needs a non-empty `prompt`.
 */
const OPENAI_APIS: readonly OpenAiApi[] = ['conversations', 'responses', 'chat/completions', 'completions', 'embeddings', 'images/generations'];

/** Each form's request structs, compiled once. */
const DECODES_REQUEST: Readonly<Record<OpenAiParserForm, Readonly<Record<OpenAiApi, Decodes>>>> = {
  gie: Object.fromEntries(OPENAI_APIS.map((api) => [api, compileGoType(requestStruct(api, 'gie'))])) as Record<OpenAiApi, Decodes>,
  llmd: Object.fromEntries(OPENAI_APIS.map((api) => [api, compileGoType(requestStruct(api, 'llmd'))])) as Record<OpenAiApi, Decodes>,
};

function requiredMissing(o: JsonObject, api: OpenAiApi, form: OpenAiParserForm): RequestBodyError | undefined {
  const ok = DECODES_REQUEST[form][api](o);
  switch (api) {
    case 'conversations':
      if (ok && Array.isArray(o.items) && o.items.length > 0) return undefined;
      return new RequestBodyError('invalid conversations request: must have items field', 'items');
    case 'responses':
      if (ok && o.input !== undefined && o.input !== null) return undefined;
      return new RequestBodyError('invalid responses request: must have input field', 'input');
    case 'chat/completions':
      if (ok && Array.isArray(o.messages) && o.messages.length > 0) return undefined;
      return new RequestBodyError('invalid chat completions request: must have valid messages field', 'messages');
    case 'completions':
      if (ok && !isEmptyPrompt(o.prompt)) return undefined;
      return new RequestBodyError('invalid completions request: must have prompt field', 'prompt');
    case 'embeddings':
      if (ok && (form === 'gie' ? o.input !== undefined && o.input !== null : !isEmptyPrompt(o.input))) return undefined;
      return new RequestBodyError('invalid embeddings request: must have input field', 'input');
    case 'images/generations':
      if (ok && typeof o.prompt === 'string' && o.prompt !== '') return undefined;
      return new RequestBodyError('invalid images generations request: must have prompt field', 'prompt');
  }
}

/**
 * `openai-parser`'s ParseRequest (`parsers/openai/openai.go` @ GIE v1.5.0 / llm-d-router v0.10.0): the path decides
 * the API (`openAiApiOf`), whose required member the body must have (`requiredMissing`); then the body is read as
 * kvroute reads OpenAI bodies (`parseRequestBody`), a completion endpoint's input being its `prompt` as upstream reads
 * `CompletionsRequest.Prompt` there.
 * @throws RequestBodyError (400) with upstream's messages, or `parseRequestBody`'s.
 */
export function parseOpenAiRequest(body: Buffer, headers: ReadonlyMap<string, string>, form: OpenAiParserForm): ParsedRequestBody {
  const api = openAiApiOf(headers, form);
  if (api === undefined) return parseRequestBody(body, headers.get(':path'), { refuseOutOfRange: true });
  return parseRequestBody(body, headers.get(':path'), {
    refuseOutOfRange: true,
    check: (o) => {
      const missing = requiredMissing(o, api, form);
      if (missing !== undefined) throw missing;
    },
    promptOnly: api === 'completions' || api === 'images/generations',
  });
}
