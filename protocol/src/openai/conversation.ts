/**
 * The messages and tools vLLM 0.10.0 hands a chat template, beside the content (which each caller normalizes itself):
 * what a precise prefix index must render to get vLLM's tokens, and what kvroute's simulator renders to be vLLM.
 *
 * - **Messages** (`_parse_chat_message_content`, vllm/entrypoints/chat_utils.py @ v0.10.0 L1173-1215): the template sees
 *   a new dict of `role` and `content`, then `tool_calls` (an assistant's, when present and not None), `tool_call_id`
 *   (a tool message's, when present) and `name` (when a string). Every other key a client sends (`reasoning_content`
 *   echoed back from an earlier answer, say, which Qwen3's template would render as a `<think>` block) is dropped.
 * - **Tool calls**: the request's validation (pydantic, `Iterable[ChatCompletionMessageToolCallParam]`, a lazy
 *   validator that runs when vLLM lists the calls) keeps only `id`, `function` (`arguments`, `name`) and `type`, in that
 *   order; `_postprocess_messages` (L1216-1228) then replaces each `arguments` string by `json.loads` of it, so a
 *   template's `arguments | tojson` prints Python's `json.dumps` of the parsed value, not the client's string.
 * - **Tools** (`tool_dicts = [tool.model_dump() for tool in request.tools]`, serving_chat.py @ v0.10.0 L183-184, over
 *   `ChatCompletionToolsParam` and `FunctionDefinition` in protocol.py L173-181, models with `extra="allow"`): `type`
 *   (default "function") and `function` first, `function` as `name`, `description`, `parameters` (None when absent),
 *   then the extra keys in the client's order.
 *
 * Checked against real pydantic 2.13 and CPython by `protocol/test/vectors/conversation.py`.
 */
import { ChatTemplateRefusal, isDict } from './chat-template-context';
import { hasIntegralFloat, jsonNumberTokens, LONE_SURROGATE, parsePythonJson, PythonFloat, pythonRefusesValidJson } from './python-json';

/** A chat message as the caller normalized it: its role and content, with the other keys the client sent. */
export interface NormalizedChatMessage {
  readonly role: string;
  readonly content: string | readonly unknown[];
  readonly [key: string]: unknown;
}

/** A validated tool call, as pydantic's TypedDict validation rebuilds it (`arguments` parsed by `vllmConversation`). */
export interface VllmToolCall {
  readonly id: string;
  readonly function: { readonly arguments: unknown; readonly name: string };
  readonly type: 'function';
}

/** `ConversationMessage` (chat_utils.py @ v0.10.0 L214-228): what the template sees of a message. */
export interface VllmConversationMessage {
  readonly role: string;
  readonly content: string | readonly unknown[];
  readonly tool_calls?: readonly VllmToolCall[];
  readonly tool_call_id?: unknown;
  readonly name?: string;
  readonly [key: string]: unknown;
}

export interface VllmConversation {
  readonly messages: VllmConversationMessage[];
  /**
   * The first tool call whose parsed arguments @huggingface/jinja may print unlike jinja2 (`argumentsRenderLikePython`):
   * its message and its place among the message's calls, or undefined. Exact token ids end before those arguments.
   */
  readonly inexact: { readonly message: number; readonly toolCall: number } | undefined;
}

/**
 * How a template prints tool-call arguments, as `ModelTokenizer` probes it:
 * - `json`: only through `tojson` (Qwen3's, Llama 3's), which @huggingface/jinja and jinja2 agree on for the values
 *   `tojsonMatchesPython` accepts;
 * - `items`: value by value (`arguments | items`, values printed with `| string`, as Qwen3-Coder's does), which meets
 *   Python's `str()`: `True`, `None`, `{'a': 1}` where JavaScript prints `true`, `null`, `[object Object]`, so only
 *   strings, integers and floats (`1.0` a `PythonFloat`) are taken to render alike;
 * - `opaque`: some other way (the whole mapping printed, `{{ arguments }}`: Python's repr `{'a': 1}`, JavaScript's
 *   JSON), where only arguments that are a JSON string render alike;
 * - `none`: not at all.
 */
export type ArgumentsRendering = 'json' | 'items' | 'opaque' | 'none';

export interface VllmConversationOptions {
  /** How the template prints tool-call arguments. @default 'json' */
  readonly argumentsRendering?: ArgumentsRendering;
}

/**
 * A field pydantic refuses while validating the request (FastAPI's 400 before vLLM runs anything): `loc` from the
 * request body's root, pydantic's error `type` and `msg`, and its `ctx` where pydantic gives one.
 */
export class RequestFieldError extends Error {
  constructor(
    readonly loc: readonly (string | number)[],
    readonly type: string,
    readonly msg: string,
    readonly input: unknown,
    readonly ctx?: Readonly<Record<string, string>>,
  ) {
    super(`${loc.join('.')}: ${msg}`);
    this.name = 'RequestFieldError';
  }
}


/**
 * vLLM's `[tool.model_dump() for tool in request.tools]` (see the module comment).
 * @throws RequestFieldError for the first field pydantic refuses, `loc` starting at `tools`.
 */
export function vllmToolDicts(tools: readonly unknown[]): Record<string, unknown>[] {
  return tools.map((tool, i) => {
    const loc = ['tools', i];
    if (!isDict(tool)) throw new RequestFieldError(loc, 'model_type', 'Input should be a valid dictionary or instance of ChatCompletionToolsParam', tool);
    const type = tool.type === undefined ? 'function' : tool.type;
    if (type !== 'function') throw new RequestFieldError([...loc, 'type'], 'literal_error', "Input should be 'function'", tool.type, { expected: "'function'" });
    const fn = tool.function;
    if (fn === undefined) throw new RequestFieldError([...loc, 'function'], 'missing', 'Field required', tool);
    if (!isDict(fn)) throw new RequestFieldError([...loc, 'function'], 'model_type', 'Input should be a valid dictionary or instance of FunctionDefinition', fn);
    const floc = [...loc, 'function'];
    if (fn.name === undefined) throw new RequestFieldError([...floc, 'name'], 'missing', 'Field required', fn);
    if (typeof fn.name !== 'string') throw new RequestFieldError([...floc, 'name'], 'string_type', 'Input should be a valid string', fn.name);
    const description = fn.description ?? null;
    if (description !== null && typeof description !== 'string') throw new RequestFieldError([...floc, 'description'], 'string_type', 'Input should be a valid string', description);
    const parameters = fn.parameters ?? null;
    if (parameters !== null && !isDict(parameters)) throw new RequestFieldError([...floc, 'parameters'], 'dict_type', 'Input should be a valid dictionary', parameters);
    return { type, function: withExtras({ name: fn.name, description, parameters }, fn), ...extras({ type, function: fn }, tool) };
  });
}

/** `declared` followed by the keys of `sent` it does not declare, in the client's order (`extra="allow"`). */
function withExtras(declared: Record<string, unknown>, sent: Record<string, unknown>): Record<string, unknown> {
  return { ...declared, ...extras(declared, sent) };
}

function extras(declared: Record<string, unknown>, sent: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(sent)) if (!(key in declared)) out[key] = value;
  return out;
}

/**
 * The conversation vLLM 0.10.0 renders from normalized messages: each message's kept fields, its tool calls validated,
 * then every tool call's `arguments` parsed as Python's `json.loads` parses it (see the module comment).
 * @throws ChatTemplateRefusal where vLLM answers 400: a tool call pydantic refuses (its ValidationError's text without
 *   pydantic's `input_value` details and links) or arguments that are not JSON (`JSONDecodeError`'s text).
 */
export function vllmConversation(messages: readonly NormalizedChatMessage[], options: VllmConversationOptions = {}): VllmConversation {
  const rendering = options.argumentsRendering ?? 'json';
  const out = messages.map((m): VllmConversationMessage => {
    const message: Record<string, unknown> = { role: m.role, content: m.content };
    if (m.role === 'assistant' && m.tool_calls !== undefined && m.tool_calls !== null) message.tool_calls = validToolCalls(m.tool_calls);
    else if (m.role === 'tool' && 'tool_call_id' in m) message.tool_call_id = m.tool_call_id;
    if (typeof m.name === 'string') message.name = m.name;
    return message as VllmConversationMessage;
  });
  let inexact: VllmConversation['inexact'];
  out.forEach((message, index) => {
    const calls = message.tool_calls;
    if (message.role !== 'assistant' || calls === undefined) return;
    const parsed = calls.map((call, toolCall) => {
      const text = call.function.arguments as string;
      const value = pythonJsonLoads(text);
      if (inexact === undefined && rendering !== 'none' && !argumentsRenderLikePython(text, value, rendering)) inexact = { message: index, toolCall };
      return { ...call, function: { ...call.function, arguments: value } };
    });
    out[index] = { ...message, tool_calls: parsed };
  });
  return { messages: out, inexact };
}

/**
 * pydantic's lazy `Iterable[ChatCompletionMessageToolCallParam]`, listed (`list(parsed_msg["tool_calls"])`): the first
 * item it refuses raises a ValidationError with every error of that item, fields in the TypedDict's order.
 */
function validToolCalls(value: unknown): VllmToolCall[] {
  // Python iterates a str by character and a dict by key; pydantic refused anything else that is not iterable.
  const items: unknown[] = Array.isArray(value) ? value : typeof value === 'string' ? [...value] : isDict(value) ? Object.keys(value) : [value];
  return items.map((item, i) => {
    const errors: string[] = [];
    const field = (loc: string, v: unknown, check: (v: unknown) => string | undefined): void => {
      const error = v === undefined ? 'Field required [type=missing]' : check(v);
      if (error !== undefined) errors.push(`${loc}\n  ${error}`);
    };
    const str = (v: unknown): string | undefined => (typeof v === 'string' ? undefined : 'Input should be a valid string [type=string_type]');
    if (!isDict(item)) {
      errors.push(`${i}\n  Input should be a valid dictionary [type=dict_type]`);
    } else {
      field(`${i}.id`, item.id, str);
      field(`${i}.function`, item.function, (fn) => {
        if (!isDict(fn)) return 'Input should be a valid dictionary [type=dict_type]';
        field(`${i}.function.arguments`, fn.arguments, str);
        field(`${i}.function.name`, fn.name, str);
        return undefined;
      });
      field(`${i}.type`, item.type, (v) => (v === 'function' ? undefined : "Input should be 'function' [type=literal_error]"));
    }
    if (errors.length > 0) {
      const count = `${errors.length} validation error${errors.length > 1 ? 's' : ''}`;
      throw new ChatTemplateRefusal(`${count} for ValidatorIterator\n${errors.join('\n')}`, 'direct');
    }
    const call = item as { id: string; function: { arguments: string; name: string } };
    return { id: call.id, function: { arguments: call.function.arguments, name: call.function.name }, type: 'function' };
  });
}

/** `json.loads(text)`, or vLLM's 400 with Python's exception text (`JSONDecodeError.__str__`). */
function pythonJsonLoads(text: string): unknown {
  let refused: string | undefined;
  try {
    const value: unknown = JSON.parse(text);
    refused = pythonRefusesValidJson(text);
    // Integral floats (`1.0`) are read again as Python holds them (PythonFloat): the template prints `1.0`.
    if (refused === undefined && !hasIntegralFloat(text)) return value;
  } catch {
    // JSON.parse refuses what Python accepts (NaN, Infinity) and words its errors differently.
  }
  const result = refused === undefined ? parsePythonJson(text, { markIntegralFloats: true }) : { ok: false as const, unreadable: refused };
  if (result.ok) return result.value;
  // RecursionError (a RuntimeError) and ValueError are both caught by serving_chat.py: 400 with Python's text.
  if ('unreadable' in result) throw new ChatTemplateRefusal(result.unreadable, 'direct', result.unreadable.startsWith('maximum recursion depth') ? 'RecursionError' : 'ValueError');
  // JSONDecodeError: "%s: line %d column %d (char %d)", lines and columns counted in code points from 1.
  const chars = [...text];
  const before = chars.slice(0, result.pos);
  const line = before.filter((c) => c === '\n').length + 1;
  const lastNewline = before.lastIndexOf('\n');
  const column = result.pos - lastNewline;
  throw new ChatTemplateRefusal(`${result.msg}: line ${line} column ${column} (char ${result.pos})`, 'direct');
}

/** An array index as V8 orders object keys: such keys come first whatever the order they were written in. */
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;

/**
 * Whether the value `json.loads(text)` gives (integral floats as `PythonFloat`), rendered by @huggingface/jinja's
 * `tojson` as `pythonJson` patches it, reads as transformers' `tojson` (`json.dumps(x, ensure_ascii=False)`,
 * transformers/utils/chat_template_utils.py @ v4.53) renders the Python value. Separators, escapes, integers up to 2^53
 * and floats agree (Python's `repr`: `1.0`, `1e-05`, `1e+16`). They part on integers past 2^53 (a double cannot hold
 * them), on keys V8 moves to the front (array indices) and on lone surrogates; text that is not JSON to JavaScript
 * (`NaN`, `Infinity`), which the patched filter prints as Python does, is taken as inexact all the same.
 */
export function tojsonMatchesPython(text: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  if (!plainKeysAndStrings(value)) return false;
  // Integers past 2**53: a double is not the int Python holds. Floats print as Python's repr (`1e400` as Infinity).
  for (const { token, float } of jsonNumberTokens(text)) if (!float && !Number.isSafeInteger(Number(token))) return false;
  return true;
}

/**
 * Containers nested deeper than this are taken as inexact: @huggingface/jinja's `tojson` recurses (JavaScript's stack),
 * and Python's `json.dumps` gives up at its recursion limit, so such a value renders alike in neither.
 */
const MAX_EXACT_DEPTH = 64;

/** Strings without lone surrogates and keys V8 keeps in place, at every depth up to MAX_EXACT_DEPTH (iteratively). */
function plainKeysAndStrings(root: unknown): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value: root, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (typeof value === 'string') {
      if (LONE_SURROGATE.test(value)) return false;
    } else if (Array.isArray(value) || isDict(value)) {
      if (depth >= MAX_EXACT_DEPTH) return false;
      const entries = Array.isArray(value) ? value.map((v) => ['', v] as const) : Object.entries(value);
      for (const [key, v] of entries) {
        if (!Array.isArray(value) && (ARRAY_INDEX.test(key) || LONE_SURROGATE.test(key))) return false;
        stack.push({ value: v, depth: depth + 1 });
      }
    }
  }
  return true;
}

/**
 * `value` (a request's tools, documents or a `chat_template_kwargs` value) with every mapping in it that holds an
 * array-index key replaced by `marker`, and whether one was. vLLM reads the body with `json.loads`, whose dicts keep
 * the JSON's key order, which `tojson` and `| items` print; JavaScript lists such keys first ("10", "2", then "zeta").
 * A mapping nested deeper than MAX_EXACT_DEPTH is replaced too. Unchanged parts are the same objects.
 */
export function markReorderedMappings(value: unknown, marker: unknown, depth = 0): { value: unknown; marked: boolean } {
  const isContainer = Array.isArray(value) || isDict(value);
  if (!isContainer) return { value, marked: false };
  if (depth >= MAX_EXACT_DEPTH || (isDict(value) && Object.keys(value).some((k) => ARRAY_INDEX.test(k)))) return { value: marker, marked: true };
  let marked = false;
  const mark = (v: unknown): unknown => {
    const inner = markReorderedMappings(v, marker, depth + 1);
    marked ||= inner.marked;
    return inner.value;
  };
  const copy = Array.isArray(value) ? value.map(mark) : Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, mark(v)]));
  return marked ? { value: copy, marked } : { value, marked };
}

/**
 * Whether a template that prints arguments as `rendering` says (`ArgumentsRendering`) renders the parsed `value` of
 * the arguments `text` as jinja2 renders Python's: through `tojson`, when `tojsonMatchesPython`; value by value, for a
 * mapping of strings, safe integers and floats under keys V8 keeps in place (their `str()` as `pythonValuePrinting`
 * prints it); some other way, only a string.
 */
export function argumentsRenderLikePython(text: string, value: unknown, rendering: Exclude<ArgumentsRendering, 'none'>): boolean {
  if (!tojsonMatchesPython(text)) return false;
  if (rendering === 'json' || typeof value === 'string') return true;
  if (rendering === 'opaque' || !isDict(value)) return false;
  // Printed one by one with Python's str() (pythonValuePrinting): strings, integers a double holds, and floats.
  return Object.values(value).every((v) => typeof v === 'string' || v instanceof PythonFloat || (typeof v === 'number' && (Number.isSafeInteger(v) || !Number.isInteger(v))));
}
