import type { VllmGeneration } from './block-hash';
import { isDict, parsePythonJson, pydanticLaxBool, PythonFloat, pythonFloatRepr, pythonRefusesValidJson, RequestFieldError, templateMembersWithFloats, topLevelMemberTexts, vllmToolDicts } from '@kvroute/protocol/openai';
import type { ChatMessage } from './tokenizer';

/**
 * An error as vLLM's OpenAI server writes it.
 *
 * vLLM 0.10.0 (vllm/entrypoints/openai/protocol.py @ v0.10.0, `ErrorResponse`) writes a flat object,
 * `{"object":"error","message","type","param":null,"code":<HTTP status>}`; from 0.10.1 on (#22099, "Update OpenAI error
 * response to upstream format") it is `{"error":{"message","type","param":null,"code":<HTTP status>}}`. The simulated
 * release follows the hash algorithm (block-hash.ts, `generationOf`): 0.10.0 or 0.10.2.
 *
 * `type` is what vLLM puts there: `BadRequestError` / `NotFoundError` from the serving classes'
 * `create_error_response` (serving_engine.py), and the HTTP phrase (`Bad Request`, `Internal Server Error`, …) from the
 * app's handlers for request-validation errors and HTTPExceptions (api_server.py, `validation_exception_handler`,
 * `http_exception_handler`). `param` is always null in vLLM 0.10.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = defaultErrorType(status),
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The response body for the simulated vLLM release. */
  body(generation: VllmGeneration): Record<string, unknown> {
    if (generation === '0.10.0') return { object: 'error', message: this.message, type: this.type, param: null, code: this.status };
    return { error: { message: this.message, type: this.type, param: null, code: this.status } };
  }

  /**
   * The `data:` payload of an error met after a stream has started (serving_chat.py / serving_completion.py
   * `create_streaming_error_response` @ v0.10.0: `{"error": ErrorResponse.model_dump()}`; 0.10.2 dumps the
   * ErrorResponse itself, which already has the `error` key).
   */
  streamBody(generation: VllmGeneration): Record<string, unknown> {
    return generation === '0.10.0' ? { error: this.body(generation) } : this.body(generation);
  }
}

const HTTP_PHRASES: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Request Entity Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

export function httpPhrase(status: number): string {
  return HTTP_PHRASES[status] ?? 'Error';
}

function defaultErrorType(status: number): string {
  if (status === 400) return 'BadRequestError';
  if (status === 404) return 'NotFoundError';
  return httpPhrase(status);
}

/** A serving-class error: `create_error_response(message)`, 400 `BadRequestError` (serving_engine.py @ v0.10.0). */
export function badRequest(message: string): ApiError {
  return new ApiError(400, message, 'BadRequestError');
}

/**
 * An exception no vLLM handler catches (an AssertionError in a route, a TypeError or KeyError in a pydantic validator):
 * Starlette's ServerErrorMiddleware, outside the CORS middleware, answers a plain-text 500. The message is the
 * exception's, for routes that do catch it (/tokenize).
 */
export class PlainServerError extends Error {}

/**
 * A RequestValidationError raised by hand with `errors=[text]` (vLLM's `validate_json_request` and /detokenize's
 * `except OverflowError`, api_server.py @ 6eca337ce lines 317-323 and 510-511; the same in 61aa4b290): FastAPI's
 * ValidationException passes no args to Exception, so `str(exc)` is "", and `validation_exception_handler` (lines
 * 1485-1500) writes `f"{exc_str} {errors_str}"`, a space then the list's repr.
 */
export function handRaisedValidationError(text: string): ApiError {
  return new ApiError(400, ` [${pyStr(text)}]`, 'Bad Request');
}

/** Python's `repr()` of a JSON value (a dict's keys in their order). */
export function pyValueRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return pyStr(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pythonFloatRepr(v);
  if (typeof v === 'bigint') return String(v);
  if (v instanceof PythonFloat) return pythonFloatRepr(v.value);
  if (Array.isArray(v)) return `[${v.map(pyValueRepr).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyStr(k)}: ${pyValueRepr(x)}`).join(', ')}}`;
  return String(v);
}

/** Python's `str()` of a JSON value, as an f-string prints it: a str as itself, anything else as its repr. */
export function pyValueStr(v: unknown): string {
  return typeof v === 'string' ? v : pyValueRepr(v);
}

/**
 * A request-validation error, as FastAPI raises it for a body that is not JSON or does not fit the request model, and
 * vLLM's `validation_exception_handler` renders it: 400, type `Bad Request` (api_server.py @ v0.10.0). The message
 * imitates pydantic's error list (`[{'type': …, 'loc': ('body', …), 'msg': …, 'input': …}]`), naming the field.
 */
export function validationError(loc: readonly (string | number)[], type: string, msg: string, input?: unknown, ctx?: Readonly<Record<string, number | string | bigint>>): RequestValidationError {
  // pydantic's error dict holds the input itself, and str() of the list prints its full repr (no truncation: that is
  // only ValidationError.__str__'s input_value).
  const inputStr = input === undefined ? '' : `, 'input': ${pyValueRepr(input)}`;
  // pydantic adds the constraint to a constraint's error (`'ctx': {'ge': 1}` for greater_than_equal).
  const ctxStr = ctx === undefined ? '' : `, 'ctx': {${Object.entries(ctx).map(([k, v]) => `'${k}': ${typeof v === 'string' ? pyStr(v) : v}`).join(', ')}}`;
  // A ValueError raised in a validator keeps the exception itself as ctx.error (pydantic-core #753, "Preserve
  // exceptions in error context"), printed as its repr: `'ctx': {'error': ValueError('…')}`.
  const errorCtx = type === 'value_error' && ctx === undefined ? `, 'ctx': {'error': ValueError(${pyStr(msg.replace(/^Value error, /, ''))})}` : '';
  return new RequestValidationError([{ type, loc, rest: `'msg': ${pyStr(msg)}${inputStr}${ctxStr}${errorCtx}` }]);
}

/** One pydantic error of a request-validation 400: its type, its loc under ('body',), and the rest of its dict, written. */
interface PydanticErrorEntry {
  readonly type: string;
  readonly loc: readonly (string | number)[];
  readonly rest: string;
}

/**
 * A request-validation 400 (see {@link validationError}), which keeps its errors apart so that a union's members can
 * list theirs, each under the member's name ({@link underUnionMember}).
 */
export class RequestValidationError extends ApiError {
  constructor(readonly entries: readonly PydanticErrorEntry[]) {
    super(400, `[${entries.map(writeEntry).join(', ')}]`, 'Bad Request');
  }
}

function writeEntry(e: PydanticErrorEntry): string {
  // Python's tuple repr: a one-element tuple keeps its comma, ('body',).
  const parts = ['body', ...e.loc].map((p) => (typeof p === 'number' ? String(p) : `'${p}'`));
  const locStr = parts.length === 1 ? `(${parts[0]},)` : `(${parts.join(', ')})`;
  return `{'type': '${e.type}', 'loc': ${locStr}, ${e.rest}}`;
}

/** A union member's errors as pydantic reports them when no member validates: each loc under the member's class name. */
function underUnionMember(e: RequestValidationError, member: string): RequestValidationError {
  return new RequestValidationError(e.entries.map((entry) => ({ ...entry, loc: [member, ...entry.loc] })));
}

/** `Optional[Annotated[int, Field(ge=min)]]`: a lax int, then pydantic's greater_than_equal check on the sent value. */
function intAtLeast(min: number): (v: unknown, loc: Loc) => number {
  return (v, loc) => {
    const n = laxInt(v, loc);
    if (n < min) throw validationError(loc, 'greater_than_equal', `Input should be greater than or equal to ${min}`, v, { ge: min });
    return n;
  };
}

/**
 * Python's repr of a str: single quotes, or double quotes when the text has a single quote and no double one (so
 * `"Value error, Parameter 'cache_salt' must be …"` is written as Python writes it).
 */
export function pyStr(s: string): string {
  if (s.includes("'") && !s.includes('"')) return `"${pyEscape(s.replace(/\\/g, '\\\\'))}"`;
  return `'${pyEscape(s.replace(/\\/g, '\\\\').replace(/'/g, "\\'"))}'`;
}

/**
 * What Python's str repr escapes besides the quote and the backslash (Objects/unicodeobject.c unicode_repr): \t, \n,
 * \r, and every other character `str.isprintable()` refuses (categories Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs but the space)
 * as \xhh, \uhhhh or \Uhhhhhhhh. The Unicode tables are JavaScript's, which may be a version apart from CPython's.
 */
function pyEscape(s: string): string {
  return s.replace(/[\t\n\r]|(?! )[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/gu, (c) => {
    if (c === '\t') return '\\t';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    const cp = c.codePointAt(0)!;
    if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, '0')}`;
    if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, '0')}`;
    return `\\U${cp.toString(16).padStart(8, '0')}`;
  });
}

type Json = Record<string, unknown>;

/**
 * What FastAPI answers when `json.loads` raises something other than a JSONDecodeError (RecursionError on deep
 * nesting, ValueError on an integer past 4,300 digits) or the bytes are not UTF-8: `HTTPException(400, "There was an
 * error parsing the body")` (fastapi/routing.py `get_request_handler`), rendered by vLLM's `http_exception_handler`.
 */
export function unparseableBody(): ApiError {
  return new ApiError(400, 'There was an error parsing the body', 'Bad Request');
}

/** What Python's `json.loads(text)` does with a request body's text (`pythonJsonLoads`). */
export type PythonJsonLoads =
  | { readonly kind: 'value'; readonly value: unknown }
  /** A JSONDecodeError: CPython's message and character position. */
  | { readonly kind: 'decode-error'; readonly msg: string; readonly pos: number }
  /** Anything else json.loads raises: nesting or digits past Python's limits. */
  | { readonly kind: 'unreadable' };

/**
 * Python's `json.loads(text)`: `JSON.parse` reads every text it accepts as Python does, except what
 * `pythonRefusesValidJson` names; what it refuses is read again as Python reads it, which also takes `NaN` and
 * `Infinity` (python-json.ts).
 */
export function pythonJsonLoads(text: string): PythonJsonLoads {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const python = parsePythonJson(text);
    if (!python.ok) return 'unreadable' in python ? { kind: 'unreadable' } : { kind: 'decode-error', msg: python.msg, pos: python.pos };
    value = python.value;
  }
  return pythonRefusesValidJson(text) !== undefined ? { kind: 'unreadable' } : { kind: 'value', value };
}

/**
 * Parses a request body as FastAPI does before validating it: Python's `json.loads` (`pythonJsonLoads`), else a 400
 * `json_invalid` validation error at Python's position with Python's message (`{'type': 'json_invalid', 'loc':
 * ('body', e.pos), 'msg': 'JSON decode error', 'input': {}, 'ctx': {'error': e.msg}}`, fastapi/routing.py
 * `get_request_handler`); then `requestObject`. A JSON `null` is undefined, no body: FastAPI's body is then None, which
 * `_validate_value_with_model_field` reports as a missing required body, as for an empty one.
 */
export function parseJsonBody(raw: string): Json | undefined {
  const loaded = pythonJsonLoads(raw);
  if (loaded.kind === 'unreadable') throw unparseableBody();
  if (loaded.kind === 'decode-error') throw validationError([loaded.pos], 'json_invalid', 'JSON decode error', {}, { error: loaded.msg });
  const body = loaded.value;
  if (body === null) return undefined;
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw validationError([], 'model_attributes_type', 'Input should be a valid dictionary or object to extract fields from', body);
  }
  return requestObject(raw, body as Record<string, unknown>);
}

/**
 * The object `json.loads` read from `raw`, with what a JavaScript number loses kept as Python keeps it, for the request
 * parsers: a `seed` beyond 2^53 as its own digits, integral floats in `tools` and `chat_template_kwargs` as floats.
 */
export function requestObject(raw: string, o: Record<string, unknown>): Json {
  if (typeof o.seed === 'number' && Number.isInteger(o.seed) && !Number.isSafeInteger(o.seed)) {
    // A double cannot hold the integer Python reads (99999999999999999999): keep the body's own digits for the seed's
    // 64-bit range check (checkSeed).
    const text = topLevelMemberTexts(Buffer.from(raw, 'utf8'), SEED_MEMBER).get('seed');
    if (text !== undefined && /^-?\d+$/.test(text)) Object.defineProperty(o, SEED_LITERAL, { value: BigInt(text), enumerable: false });
  }
  if (Array.isArray(o.tools) || (typeof o.chat_template_kwargs === 'object' && o.chat_template_kwargs !== null)) {
    // Python's json.loads keeps `0.0` a float, and the template prints it so (PythonFloat in @kvroute/protocol).
    const marked = templateMembersWithFloats(Buffer.from(raw, 'utf8'));
    if (marked.tools !== undefined) o.tools = marked.tools;
    if (marked.chatTemplateKwargs !== undefined) o.chat_template_kwargs = marked.chatTemplateKwargs;
  }
  return o as Json;
}

/** Where parseJsonBody keeps the exact integer of a `seed` beyond 2^53. */
const SEED_LITERAL = Symbol('seed literal');
const SEED_MEMBER: ReadonlySet<string> = new Set(['seed']);

/** torch.iinfo(torch.long): `seed: Optional[int] = Field(None, ge=_LONG_INFO.min, le=_LONG_INFO.max)`. */
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

/**
 * `seed`'s bounds (protocol.py @ 6eca337ce lines 394 and 930; 61aa4b290 lines 423 and 978): a 64-bit signed integer,
 * else pydantic's `greater_than_equal` / `less_than_equal`. The value is otherwise ignored (the reply is filler).
 */
function checkSeed(body: Json): void {
  const v = body.seed;
  if (v === undefined || v === null) return;
  const n = laxInt(v, ['seed']);
  const literal = (body as Record<symbol, unknown>)[SEED_LITERAL] as bigint | undefined;
  const exact = literal ?? (typeof v === 'string' ? BigInt(v.trim().replace(/_/g, '')) : BigInt(n));
  const input = literal ?? v;
  if (exact < LONG_MIN) throw validationError(['seed'], 'greater_than_equal', `Input should be greater than or equal to ${LONG_MIN}`, input, { ge: LONG_MIN });
  if (exact > LONG_MAX) throw validationError(['seed'], 'less_than_equal', `Input should be less than or equal to ${LONG_MAX}`, input, { le: LONG_MAX });
}

// ---------------------------------------------------------------------------------------------------------------------
// Pydantic v2's lax ("python" mode) coercions, which FastAPI applies to the parsed JSON body: "5" and 5.0 are ints,
// "yes"/"true"/1 are booleans, 5 is a float; strings are never made from numbers.
// ---------------------------------------------------------------------------------------------------------------------

type Loc = readonly (string | number)[];

export function laxInt(v: unknown, loc: Loc): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v;
    if (Number.isFinite(v)) throw validationError(loc, 'int_from_float', 'Input should be a valid integer, got a number with a fractional part', v);
    throw validationError(loc, 'finite_number', 'Input should be a finite number', v);
  }
  if (typeof v === 'string') {
    const t = v.trim();
    if (/^[+-]?\d+(_\d+)*$/.test(t)) return Number(t.replace(/_/g, ''));
    throw validationError(loc, 'int_parsing', 'Input should be a valid integer, unable to parse string as an integer', v);
  }
  throw validationError(loc, 'int_type', 'Input should be a valid integer', v);
}

export function laxBool(v: unknown, loc: Loc): boolean {
  const b = pydanticLaxBool(v);
  if (b !== undefined) return b;
  if (typeof v === 'string') throw validationError(loc, 'bool_parsing', 'Input should be a valid boolean, unable to interpret input', v);
  throw validationError(loc, 'bool_type', 'Input should be a valid boolean', v);
}

export function laxFloat(v: unknown, loc: Loc): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const t = v.trim();
    if (t !== '' && Number.isFinite(Number(t))) return Number(t);
    throw validationError(loc, 'float_parsing', 'Input should be a valid number, unable to parse string as a number', v);
  }
  throw validationError(loc, 'float_type', 'Input should be a valid number', v);
}

export function strictStr(v: unknown, loc: Loc): string {
  if (typeof v === 'string') return v;
  throw validationError(loc, 'string_type', 'Input should be a valid string', v);
}

function dict(v: unknown, loc: Loc): Json {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Json;
  throw validationError(loc, 'dict_type', 'Input should be a valid dictionary', v);
}

function list(v: unknown, loc: Loc): unknown[] {
  if (Array.isArray(v)) return v;
  throw validationError(loc, 'list_type', 'Input should be a valid list', v);
}

/** `list[dict[str, str]]`, pydantic's checks in order: the list, each item a dict, each value a string. */
function documentList(v: unknown, loc: Loc): Record<string, string>[] {
  return list(v, loc).map((item, i) => {
    const d = dict(item, [...loc, i]);
    for (const [k, value] of Object.entries(d)) {
      if (typeof value !== 'string') throw validationError([...loc, i, k], 'string_type', 'Input should be a valid string', value);
    }
    return d as Record<string, string>;
  });
}

/** `Optional[X] = default`: absent or null gives the default. */
function opt<T>(body: Json, key: string, parse: (v: unknown, loc: Loc) => T, dflt: T): T {
  const v = body[key];
  return v === undefined || v === null ? dflt : parse(v, [key]);
}

/** A non-Optional field with a default (`ignore_eos: bool = False`): absent gives the default, null is an error. */
function req<T>(body: Json, key: string, parse: (v: unknown, loc: Loc) => T, dflt: T): T {
  const v = body[key];
  return v === undefined ? dflt : parse(v, [key]);
}

// ---------------------------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------------------------

/** Sampling fields the simulator acts on (vllm/sampling_params.py @ v0.10.0). */
export interface StopParams {
  stop: string[];
  stopTokenIds: number[];
  includeStopStrInOutput: boolean;
  minTokens: number;
}

interface CommonRequest extends StopParams {
  /** As sent; undefined or "" means the first served name (serving_engine.py `_is_model_supported` @ v0.10.0). */
  model: string | undefined;
  /** max_completion_tokens or max_tokens, as sent. */
  maxTokens: number | undefined;
  n: number;
  stream: boolean;
  /** The final usage chunk: `stream_options` given with `include_usage` true or absent. */
  includeUsage: boolean;
  continuousUsage: boolean;
  /** A non-empty string when given (vLLM refuses "" and non-strings). */
  cacheSalt: string | undefined;
  /**
   * The keys of `logit_bias`, as sent. JavaScript lists integer-like keys first in ascending order, where Python keeps
   * the body's order; only the order of the ids in the out-of-vocabulary message can differ.
   */
  logitBiasKeys: string[];
  /** `priority` (protocol.py @ v0.10.0: an int, default 0, lower is handled earlier). */
  priority: number;
  /**
   * `allowed_token_ids` (completions: `Optional[list[int]]`): checked by the V1 processor (processorError), not applied
   * to the filler.
   */
  allowedTokenIds: number[] | undefined;
  /** `logits_processors` was given non-empty: refused by to_sampling_params (checkSampling). */
  logitsProcessors: boolean;
  /**
   * `return_tokens_as_token_ids` (both requests, `Optional[bool]`): logprob tokens as `token_id:N`. Unset, vLLM uses its
   * `--return-tokens-as-token-ids` flag, which the simulator does not take (vLLM's default, off).
   */
  returnTokensAsTokenIds: boolean;
  /**
   * `truncate_prompt_tokens` (protocol.py @ v0.10.0: `Optional[Annotated[int, Field(ge=1)]]` on both requests): keep
   * only the prompt's last N tokens. In 0.10.2 (#22761, 5b8077b8a; protocol.py @ 61aa4b290 lines 456 and 999) it is
   * `Field(ge=-1)`: -1 keeps the last max_model_len tokens (serving_engine.py @ 61aa4b290 lines 573-579), and 0 passes
   * pydantic to be refused by SamplingParams (checkSampling).
   */
  truncatePromptTokens: number | undefined;
  echo: boolean;
  /**
   * `return_token_ids` (vLLM 0.10.2 only, #22587 / 24f4d1a22: `Optional[bool] = None` on both requests, protocol.py
   * @ 61aa4b290 lines 589 and 1083): fill the responses' `token_ids` / `prompt_token_ids`. Always false in 0.10.0
   * mode, where the field does not exist and is an ignored extra (`OpenAIBaseModel`, `extra="allow"`).
   */
  returnTokenIds: boolean;
  /**
   * The body's `request_id` (`request_id: str`, a random uuid when absent): chat in both releases; completions only
   * from 0.10.2 (#21009 / 9fe98d425, after v0.10.0; serving_completion.py @ 61aa4b290 line 120:
   * `self._base_request_id(raw_request, request.request_id)`). Undefined in 0.10.0 completions, where it is an extra.
   */
  requestId: string | undefined;
  /**
   * `ignore_eos` (protocol.py @ v0.10.0: `bool = False`): the filler has no EOS either way, but a request that ignores
   * EOS and gives no `max_tokens` cannot stop at one on vLLM, so its reply ends `length`, not `stop` (see prepare).
   */
  ignoreEos: boolean;
  /**
   * `use_beam_search: bool = False` (both requests, protocol.py @ v0.10.0): vLLM then runs beam search
   * (`engine_client.beam_search`, `n` beams) and never streams a completion (`stream = request.stream and … and not
   * request.use_beam_search`, serving_completion.py: one event holding the whole response). Not simulated: 501.
   */
  useBeamSearch: boolean;
  /** Sampling values vLLM validates in SamplingParams._verify_args; the simulator checks them the same way. */
  sampling: SamplingChecks;
  /** The simulated release, whose checks differ in places (`truncate_prompt_tokens`, the context-length messages). */
  generation: VllmGeneration;
}

interface SamplingChecks {
  temperature: number | undefined;
  topP: number | undefined;
  topK: number | undefined;
  minP: number | undefined;
  presencePenalty: number;
  frequencyPenalty: number;
  repetitionPenalty: number | undefined;
  logprobs: number | undefined;
  promptLogprobs: number | undefined;
  bestOf: number | undefined;
}

export interface CompletionRequest extends CommonRequest {
  kind: 'completion';
  /** One or more prompts (a batch), each text or token ids. */
  prompts: (string | number[])[];
  /** `suffix`, which vLLM refuses. */
  suffix: string | undefined;
}

export interface ChatRequest extends CommonRequest {
  kind: 'chat';
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
  tools: unknown[] | undefined;
  toolChoice: unknown;
  templateKwargs: Record<string, unknown>;
  /** `documents` (vLLM 0.10.0 ChatCompletionRequest: Optional[list[dict[str, str]]]), handed to the chat template. */
  documents: Record<string, string>[] | undefined;
  /** `continue_final_message`: the last turn is left open (never with `add_generation_prompt`). */
  continueFinalMessage: boolean;
  /** `chat_template` (Optional[str]): replaces the model's template; vLLM 0.10.0 takes it from any client. */
  chatTemplate: string | undefined;
}

/** Qwen3's embedding table size (kept for callers; vLLM checks prompt ids against the tokenizer's largest id). */
export const VOCAB_SIZE = 151936;

function stopList(v: unknown, loc: Loc): string[] {
  if (typeof v === 'string') return [v];
  return list(v, loc).map((s, i) => strictStr(s, [...loc, i]));
}

function intList(v: unknown, loc: Loc): number[] {
  return list(v, loc).map((t, i) => laxInt(t, [...loc, i]));
}

function strList(v: unknown, loc: Loc): string[] {
  return list(v, loc).map((t, i) => strictStr(t, [...loc, i]));
}

/** Several errors of one validation, in pydantic's order, as FastAPI's error list prints them. */
function validationErrors(errors: readonly RequestValidationError[]): RequestValidationError {
  return new RequestValidationError(errors.flatMap((e) => e.entries));
}

/**
 * `response_format: Optional[AnyResponseFormat]`, `Union[ResponseFormat, StructuralTagResponseFormat]` (protocol.py @
 * v0.10.0): ResponseFormat's `type: Literal["text", "json_object", "json_schema"]`, or StructuralTagResponseFormat's
 * `type: Literal["structural_tag"]` with `structures: list[...]` and `triggers: list[str]`. When neither member
 * validates, pydantic reports the errors of both, each under its member's name. Only the members' own fields are
 * checked (not json_schema's or the structures' insides); the reply stays filler either way.
 */
function checkResponseFormat(v: unknown, loc: Loc): void {
  const member = (name: string): Loc => [...loc, name];
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw validationErrors(
      ['ResponseFormat', 'StructuralTagResponseFormat'].map((name) =>
        validationError(member(name), 'model_type', `Input should be a valid dictionary or instance of ${name}`, v, { class_name: name }),
      ),
    );
  }
  const o = v as Json;
  const literal = (at: Loc, allowed: readonly string[]): RequestValidationError | null => {
    if (o.type === undefined) return validationError([...at, 'type'], 'missing', 'Field required', o);
    if (typeof o.type === 'string' && allowed.includes(o.type)) return null;
    const expected = allowed.length === 1 ? `'${allowed[0]}'` : `${allowed.slice(0, -1).map((a) => `'${a}'`).join(', ')} or '${allowed.at(-1)}'`;
    return validationError([...at, 'type'], 'literal_error', `Input should be ${expected}`, o.type, { expected });
  };
  const plain = [literal(member('ResponseFormat'), ['text', 'json_object', 'json_schema'])].filter((e): e is RequestValidationError => e !== null);
  if (plain.length === 0) return;
  const tag = member('StructuralTagResponseFormat');
  const tagged = [literal(tag, ['structural_tag'])];
  for (const field of ['structures', 'triggers']) {
    if (o[field] === undefined) tagged.push(validationError([...tag, field], 'missing', 'Field required', o));
    else if (!Array.isArray(o[field])) tagged.push(validationError([...tag, field], 'list_type', 'Input should be a valid list', o[field]));
  }
  const tagErrors = tagged.filter((e): e is RequestValidationError => e !== null);
  if (tagErrors.length === 0) return;
  throw validationErrors([...plain, ...tagErrors]);
}

/**
 * validate_stream_options (a mode="before" model validator of both requests, protocol.py @ v0.10.0):
 * `data.get("stream_options") and not data.get("stream")`, Python truthiness of the values as sent, before any field is
 * parsed: `stream: "false"` (a non-empty string, then parsed False) passes it and the request is served without
 * streaming, `{}` passes, and a truthy non-object (`"x"`) without stream is refused here rather than as StreamOptions'
 * type error.
 */
function validateStreamOptions(body: Json): void {
  if (truthy(body.stream_options) && !truthy(body.stream)) {
    throw validationError([], 'value_error', 'Value error, Stream options can only be defined when `stream=True`.', body);
  }
}

/**
 * Python's `value < 0` / `value > 0` on a value as sent: a number or a bool (an int in Python) compares; a str, list or
 * dict raises TypeError, which pydantic v2 does not turn into a validation error: it escapes the validator, a plain 500.
 */
function pyComparable(v: unknown, op: '<' | '>'): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  const t = typeof v === 'string' ? 'str' : Array.isArray(v) ? 'list' : 'dict';
  throw new PlainServerError(`'${op}' not supported between instances of '${t}' and 'int'`);
}

/**
 * check_logprobs, a mode="before" model validator of both requests (protocol.py, read in the stored copy 0052bed, just
 * after v0.10.0, the same as the copies before it): every value as sent, with Python's comparisons and truthiness, so
 * `stream: "false"` counts as streaming and a chat's `logprobs: "false"` as set. Pydantic runs the before-validators
 * last-defined first, all before any field: on chat after check_guided_decoding_count and before
 * validate_stream_options, on completions after validate_stream_options and before check_guided_decoding_count.
 */
function checkLogprobs(body: Json, kind: 'chat' | 'completion'): void {
  const pl = body.prompt_logprobs;
  if (pl !== undefined && pl !== null) {
    if (truthy(body.stream) && pyComparable(pl, '>') > 0) throw validationError([], 'value_error', 'Value error, `prompt_logprobs` are not available when `stream=True`.', body);
    if (pyComparable(pl, '<') < 0) throw validationError([], 'value_error', 'Value error, `prompt_logprobs` must be a positive value.', body);
  }
  if (kind === 'chat') {
    const top = body.top_logprobs;
    if (top !== undefined && top !== null) {
      if (pyComparable(top, '<') < 0) throw validationError([], 'value_error', 'Value error, `top_logprobs` must be a positive value.', body);
      if (pyComparable(top, '>') > 0 && !truthy(body.logprobs)) throw validationError([], 'value_error', 'Value error, when using `top_logprobs`, `logprobs` must be set to true.', body);
    }
  } else {
    const lp = body.logprobs;
    if (lp !== undefined && lp !== null && pyComparable(lp, '<') < 0) throw validationError([], 'value_error', 'Value error, `logprobs` must be a positive value.', body);
  }
}

/**
 * check_guided_decoding_count (protocol.py @ v0.10.0), a mode="before" model validator of both requests, on the raw
 * body: more than one of guided_json, guided_regex and guided_choice given (not null) is refused.
 */
function checkGuidedDecodingCount(body: Json): void {
  const given = ['guided_json', 'guided_regex', 'guided_choice'].filter((k) => body[k] !== undefined && body[k] !== null);
  if (given.length > 1) {
    throw validationError([], 'value_error', "Value error, You can only use one kind of guided decoding ('guided_json', 'guided_regex' or 'guided_choice').", body);
  }
}

/**
 * check_cache_salt_support (protocol.py @ v0.10.0, vLLM #17045), a mode="before" model validator of both request
 * models. It reads the raw value, so a non-string is refused with this message rather than pydantic's string_type;
 * it is the last before-validator each model defines, and pydantic runs those last-defined first, so it precedes
 * every other check of the body.
 */
function checkCacheSalt(body: Json): void {
  const salt = body.cache_salt;
  if (salt !== undefined && salt !== null && (typeof salt !== 'string' || salt === '')) {
    throw validationError([], 'value_error', "Value error, Parameter 'cache_salt' must be a non-empty string if provided.", body);
  }
}

/**
 * `request_id` and `return_token_ids`, the last fields of both request models that the simulator reads (in this order
 * in protocol.py @ 61aa4b290). Completions have `request_id` only from 0.10.2, and neither model has
 * `return_token_ids` in 0.10.0: there they are extras, ignored without any check.
 */
function parseIdsFields(body: Json, kind: 'chat' | 'completion', generation: VllmGeneration): { requestId: string | undefined; returnTokenIds: boolean } {
  const v2 = generation === '0.10.2';
  const requestId = kind === 'chat' || v2 ? req(body, 'request_id', strictStr, undefined as string | undefined) : undefined;
  return { requestId, returnTokenIds: v2 ? opt(body, 'return_token_ids', laxBool, false) : false };
}

/** Fields shared by both endpoints; `logprobsKind` differs (chat: bool + top_logprobs, completions: int). */
function parseCommon(body: Json, kind: 'chat' | 'completion', generation: VllmGeneration): Omit<CommonRequest, 'requestId' | 'returnTokenIds'> {
  checkCacheSalt(body);
  const salt = body.cache_salt;
  const model = opt(body, 'model', strictStr, undefined as string | undefined);
  const stream = opt(body, 'stream', laxBool, false);
  const so = body.stream_options;
  let includeUsage = false;
  let continuousUsage = false;
  if (so !== undefined && so !== null) {
    // `stream_options: Optional[StreamOptions]`, a pydantic model: anything but an object is its model_type error.
    if (typeof so !== 'object' || Array.isArray(so)) {
      throw validationError(['stream_options'], 'model_type', 'Input should be a valid dictionary or instance of StreamOptions', so, { class_name: 'StreamOptions' });
    }
    const o = so as Json;
    // StreamOptions: include_usage defaults to True, continuous_usage_stats to False (protocol.py @ v0.10.0).
    const iu = o.include_usage === undefined || o.include_usage === null ? o.include_usage === undefined : laxBool(o.include_usage, ['stream_options', 'include_usage']);
    const cu = o.continuous_usage_stats === undefined || o.continuous_usage_stats === null ? false : laxBool(o.continuous_usage_stats, ['stream_options', 'continuous_usage_stats']);
    // The serving classes read `if stream_options:` of the parsed StreamOptions, a pydantic model, which is truthy
    // even when built from `{}` (serving_chat.py / serving_completion.py @ v0.10.0): its defaults apply then.
    includeUsage = iu;
    continuousUsage = iu && cu;
  }
  let logprobs: number | undefined;
  let promptLogprobs = opt(body, 'prompt_logprobs', laxInt, undefined as number | undefined);
  // ChatCompletionRequest `echo: bool = False`, CompletionRequest `echo: Optional[bool] = False` (protocol.py @
  // v0.10.0): null is pydantic's bool_type error on chat, and no echo on completions.
  const echo = (kind === 'chat' ? req : opt)(body, 'echo', laxBool, false);
  // check_logprobs ran before any field (checkLogprobs); echo's implied prompt logprobs come later, in
  // to_sampling_params, so a streamed chat echo with top_logprobs passes it.
  if (kind === 'chat') {
    const lp = opt(body, 'logprobs', laxBool, false);
    const top = opt(body, 'top_logprobs', laxInt, 0);
    // to_sampling_params: `logprobs=self.top_logprobs if self.logprobs else None`, and echo's prompt logprobs.
    logprobs = lp ? top : undefined;
    if (promptLogprobs === undefined && echo) promptLogprobs = top;
  } else {
    logprobs = opt(body, 'logprobs', laxInt, undefined as number | undefined);
  }
  if (kind === 'completion') {
    if (promptLogprobs === undefined && echo) promptLogprobs = logprobs;
  }
  const maxTokens = opt(body, 'max_tokens', laxInt, undefined as number | undefined);
  // Type-checked like vLLM, then ignored: the reply is filler.
  checkSeed(body);
  opt(body, 'user', strictStr, undefined);
  // Typed fields of both request models (protocol.py @ v0.10.0) that do not change the filler: pydantic's errors only.
  opt(body, 'response_format', checkResponseFormat, undefined);
  req(body, 'skip_special_tokens', laxBool, true);
  opt(body, 'guided_choice', strList, undefined);
  const ignoreEos = req(body, 'ignore_eos', laxBool, false);
  const useBeamSearch = req(body, 'use_beam_search', laxBool, false);
  req(body, 'length_penalty', laxFloat, 1);
  // More typed fields of both request models (protocol.py @ v0.10.0) that change nothing in the filler or that the
  // simulator does not take: pydantic's type errors only. `add_special_tokens: bool` (True for completions, False for
  // chat) adds no token to a Qwen3 prompt either way; guided decoding and KV transfer are not simulated.
  req(body, 'spaces_between_special_tokens', laxBool, true);
  req(body, 'add_special_tokens', laxBool, kind === 'completion');
  for (const key of ['guided_regex', 'guided_grammar', 'guided_decoding_backend', 'guided_whitespace_pattern']) opt(body, key, strictStr, undefined);
  opt(body, 'kv_transfer_params', dict, undefined);
  if (kind === 'chat') {
    // ChatCompletionRequest's own: `structural_tag: Optional[str]`, `mm_processor_kwargs: Optional[dict[str, Any]]`.
    opt(body, 'structural_tag', strictStr, undefined);
    opt(body, 'mm_processor_kwargs', dict, undefined);
  }
  // `logit_bias: Optional[dict[str, float]]`: the values are pydantic floats; the keys are turned into token ids only
  // by SamplingParams.from_optional (checkSampling), and range-checked by the V1 processor (processorError).
  const bias = opt(body, 'logit_bias', dict, undefined as Json | undefined);
  if (bias !== undefined) for (const [key, v] of Object.entries(bias)) laxFloat(v, ['logit_bias', key]);
  return {
    model,
    maxTokens,
    // ChatCompletionRequest `n: Optional[int] = 1` (null: one choice), CompletionRequest `n: int = 1` (null: int_type).
    n: (kind === 'chat' ? opt : req)(body, 'n', laxInt, 1),
    stream,
    includeUsage,
    continuousUsage,
    cacheSalt: salt === undefined || salt === null ? undefined : (salt as string),
    priority: req(body, 'priority', laxInt, 0),
    // CompletionRequest's field alone (protocol.py @ v0.10.0): ChatCompletionRequest has none, so there it is an extra.
    allowedTokenIds: kind === 'completion' ? opt(body, 'allowed_token_ids', intList, undefined as number[] | undefined) : undefined,
    logitsProcessors: opt(body, 'logits_processors', list, []).length > 0,
    returnTokensAsTokenIds: opt(body, 'return_tokens_as_token_ids', laxBool, false),
    truncatePromptTokens: opt(body, 'truncate_prompt_tokens', intAtLeast(generation === '0.10.2' ? -1 : 1), undefined as number | undefined),
    echo,
    logitBiasKeys: bias === undefined ? [] : Object.keys(bias),
    stop: opt(body, 'stop', stopList, []),
    stopTokenIds: opt(body, 'stop_token_ids', intList, []),
    includeStopStrInOutput: req(body, 'include_stop_str_in_output', laxBool, false),
    minTokens: req(body, 'min_tokens', laxInt, 0),
    ignoreEos,
    useBeamSearch,
    sampling: {
      temperature: opt(body, 'temperature', laxFloat, undefined as number | undefined),
      topP: opt(body, 'top_p', laxFloat, undefined as number | undefined),
      topK: opt(body, 'top_k', laxInt, undefined as number | undefined),
      minP: opt(body, 'min_p', laxFloat, undefined as number | undefined),
      presencePenalty: opt(body, 'presence_penalty', laxFloat, 0),
      frequencyPenalty: opt(body, 'frequency_penalty', laxFloat, 0),
      repetitionPenalty: opt(body, 'repetition_penalty', laxFloat, undefined as number | undefined),
      logprobs,
      promptLogprobs,
      bestOf: opt(body, 'best_of', laxInt, undefined as number | undefined),
    },
    generation,
  };
}

/** A completion request as the simulated release reads it (`generation`: 0.10.0 or 0.10.2, see block-hash.ts). */
export function parseCompletionRequest(body: Json, generation: VllmGeneration): CompletionRequest {
  checkCacheSalt(body);
  // validate_prompt_and_prompt_embeds (protocol.py @ v0.10.0): `prompt` is Optional since prompt embeds (#17590), and
  // this before-validator, defined just before check_cache_salt_support, runs right after it.
  const raw = body.prompt;
  if ((raw === undefined || raw === null) && (body.prompt_embeds === undefined || body.prompt_embeds === null)) {
    throw validationError([], 'value_error', 'Value error, At least one of `prompt` or `prompt_embeds` must be set.', body);
  }
  if (raw === undefined || raw === null) throw new ApiError(501, 'prompt_embeds are not simulated.', 'Not Implemented');
  validateStreamOptions(body);
  checkLogprobs(body, 'completion');
  checkGuidedDecodingCount(body);
  const common = parseCommon(body, 'completion', generation);
  // CompletionRequest.max_tokens defaults to 16 (protocol.py @ v0.10.0); an explicit null means "no limit".
  if (body.max_tokens === undefined) common.maxTokens = 16;
  const suffix = opt(body, 'suffix', strictStr, undefined as string | undefined);
  const fields = { ...common, suffix, ...parseIdsFields(body, 'completion', generation) };
  // Union[list[int], list[list[int]], str, list[str]] (protocol.py @ v0.10.0): one text, one list of ids, or a batch
  // of either; every prompt of a batch is its own request (serving_completion.py).
  if (typeof raw === 'string') return { kind: 'completion', ...fields, prompts: [raw] };
  if (Array.isArray(raw)) {
    if (raw.length === 0) throw badRequest('please provide at least one prompt');
    if (raw.every((x) => typeof x === 'string')) return { kind: 'completion', ...fields, prompts: raw as string[] };
    if (raw.every((x) => Array.isArray(x))) {
      return { kind: 'completion', ...fields, prompts: raw.map((x, i) => intList(x, ['prompt', i])) };
    }
    return { kind: 'completion', ...fields, prompts: [intList(raw, ['prompt'])] };
  }
  throw validationError(['prompt'], 'string_type', 'Input should be a valid string', raw);
}

/** A chat request as the simulated release reads it (`generation`: 0.10.0 or 0.10.2, see block-hash.ts). */
export function parseChatRequest(body: Json, generation: VllmGeneration): ChatRequest {
  checkCacheSalt(body);
  checkGenerationPrompt(body);
  // check_tool_usage is a mode="before" validator defined before check_generation_prompt and check_cache_salt_support,
  // after the stream_options, logprobs and guided-decoding ones: pydantic runs it before those and before any field.
  let toolChoice = checkToolUsage(body);
  checkGuidedDecodingCount(body);
  checkLogprobs(body, 'chat');
  validateStreamOptions(body);
  const common = parseCommon(body, 'chat', generation);
  // `parallel_tool_calls: Optional[bool] = False` (ChatCompletionRequest @ v0.10.0): type-checked, then not read.
  opt(body, 'parallel_tool_calls', laxBool, undefined);
  const mct = opt(body, 'max_completion_tokens', laxInt, undefined as number | undefined);
  const raw = body.messages;
  if (raw === undefined) throw validationError(['messages'], 'missing', 'Field required', body);
  const messages = list(raw, ['messages']).map((m, i) => normalizeMessage(m, i));
  const tools = toolDicts(opt(body, 'tools', list, undefined as unknown[] | undefined));
  if (toolChoice === undefined || toolChoice === null) toolChoice = 'none';
  // Both parsed true (continue_final_message alone, add_generation_prompt defaulting to True) passed
  // check_generation_prompt, which reads the raw values; the chat template then refuses the pair (a 400, see tokenizeChat).
  const addGenerationPrompt = req(body, 'add_generation_prompt', laxBool, true);
  const continueFinal = req(body, 'continue_final_message', laxBool, false);
  const ids = parseIdsFields(body, 'chat', generation);
  return {
    kind: 'chat',
    ...common,
    // get_max_tokens (vllm/entrypoints/utils.py @ v0.10.0): `max_completion_tokens or max_tokens`.
    maxTokens: mct || common.maxTokens,
    messages,
    addGenerationPrompt,
    tools: tools && tools.length > 0 ? tools : undefined,
    toolChoice,
    templateKwargs: opt(body, 'chat_template_kwargs', dict, {}),
    documents: opt(body, 'documents', documentList, undefined as Record<string, string>[] | undefined),
    continueFinalMessage: continueFinal,
    chatTemplate: opt(body, 'chat_template', strictStr, undefined as string | undefined),
    ...ids,
  };
}

/** The fields of a chat request that make its prompt (tokenizeChat in server.ts). */
export type ChatPromptRequest = Pick<ChatRequest, 'messages' | 'addGenerationPrompt' | 'continueFinalMessage' | 'tools' | 'templateKwargs' | 'documents' | 'chatTemplate'>;

export type TokenizeRequest =
  | { kind: 'completion'; model: string | undefined; prompt: string; addSpecialTokens: boolean; returnTokenStrs: boolean }
  | ({ kind: 'chat'; model: string | undefined; addSpecialTokens: boolean; returnTokenStrs: boolean } & ChatPromptRequest);

/**
 * POST /tokenize's body: `TokenizeRequest = Union[TokenizeCompletionRequest, TokenizeChatRequest]` (protocol.py @
 * 6eca337ce lines 1829-1909; the same fields at 61aa4b290), the type of the route's body parameter (api_server.py @
 * v0.10.0 `tokenize(request: TokenizeRequest, raw_request)`). Their only fields are `model`, `prompt` / `messages`,
 * `add_special_tokens` (True for a prompt, False for messages), `return_token_strs`, and for messages
 * `add_generation_prompt`, `continue_final_message`, `chat_template`, `chat_template_kwargs`, `mm_processor_kwargs` and
 * `tools`; their only validator is check_generation_prompt. Everything else (sampling fields, `stream_options`,
 * `tool_choice`, `documents`, …) is an ignored extra (`extra="allow"`), never checked, so a body one member takes is
 * that member's whatever the other member's fields hold. A body with `messages` is tried as the chat member first.
 * When neither member validates, pydantic lists the errors of both, in the union's order, each under its member's
 * class name (FastAPI prefixes ('body',)). Each member reports its first error only, as every request model here does.
 */
export function parseTokenizeRequest(body: Json): TokenizeRequest {
  const members = [
    { name: 'TokenizeCompletionRequest', parse: parseTokenizeCompletionRequest },
    { name: 'TokenizeChatRequest', parse: parseTokenizeChatRequest },
  ];
  const errors = new Map<string, RequestValidationError>();
  for (const member of body.messages === undefined ? members : [...members].reverse()) {
    try {
      return member.parse(body);
    } catch (e) {
      // Only a validation error means "this member does not fit"; anything else (a 501 for a content part the
      // simulator does not model) is answered as it is.
      if (!(e instanceof RequestValidationError)) throw e;
      errors.set(member.name, underUnionMember(e, member.name));
    }
  }
  throw validationErrors(members.map((m) => errors.get(m.name)!));
}

function parseTokenizeCompletionRequest(body: Json): TokenizeRequest {
  const model = opt(body, 'model', strictStr, undefined as string | undefined);
  if (body.prompt === undefined) throw validationError(['prompt'], 'missing', 'Field required', body);
  const prompt = strictStr(body.prompt, ['prompt']);
  const addSpecialTokens = req(body, 'add_special_tokens', laxBool, true);
  return { kind: 'completion', model, prompt, addSpecialTokens, returnTokenStrs: opt(body, 'return_token_strs', laxBool, false) };
}

/**
 * check_generation_prompt, a mode="before" validator of ChatCompletionRequest and TokenizeChatRequest (protocol.py @
 * v0.10.0): `data.get("continue_final_message") and data.get("add_generation_prompt")`, Python truthiness of the values
 * as sent, so `add_generation_prompt` absent (None) passes whatever its default, and "false" (a non-empty string) counts.
 * ChatCompletionRequest defines it after check_tool_usage and before check_cache_salt_support: it runs right after the
 * latter, before every other check.
 */
function checkGenerationPrompt(body: Json): void {
  if (truthy(body.continue_final_message) && truthy(body.add_generation_prompt)) {
    throw validationError([], 'value_error', 'Value error, Cannot set both `continue_final_message` and `add_generation_prompt` to True.', body);
  }
}

function parseTokenizeChatRequest(body: Json): TokenizeRequest {
  checkGenerationPrompt(body);
  // The fields in their declaration order, which is pydantic's order of checks.
  const model = opt(body, 'model', strictStr, undefined as string | undefined);
  if (body.messages === undefined) throw validationError(['messages'], 'missing', 'Field required', body);
  const messages = list(body.messages, ['messages']).map((m, i) => normalizeMessage(m, i));
  const addGenerationPrompt = req(body, 'add_generation_prompt', laxBool, true);
  const returnTokenStrs = opt(body, 'return_token_strs', laxBool, false);
  const continueFinalMessage = req(body, 'continue_final_message', laxBool, false);
  const addSpecialTokens = req(body, 'add_special_tokens', laxBool, false);
  const chatTemplate = opt(body, 'chat_template', strictStr, undefined as string | undefined);
  const templateKwargs = opt(body, 'chat_template_kwargs', dict, {});
  const tools = toolDicts(opt(body, 'tools', list, undefined as unknown[] | undefined));
  return {
    kind: 'chat',
    model,
    addSpecialTokens,
    returnTokenStrs,
    messages,
    addGenerationPrompt,
    continueFinalMessage,
    tools: tools && tools.length > 0 ? tools : undefined,
    templateKwargs,
    documents: undefined,
    chatTemplate,
  };
}

/** Python's truthiness of a JSON value. */
function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}


/**
 * check_tool_usage (protocol.py @ 6eca337ce lines 832-890; unchanged at 61aa4b290), on the raw body: tools without
 * tool_choice mean "auto"; a tool_choice needs tools; it is "auto", "required" or a dict naming one of the tools, with
 * its messages (pydantic's `Value error, …` at loc ('body',)). The tools are read raw (`tool["function"]["name"]`)
 * before pydantic validates them, so a tool without a function dict raises KeyError or TypeError there, which pydantic
 * does not catch: a plain-text 500. Returns the effective tool_choice (undefined when neither is given).
 */
function checkToolUsage(body: Json): unknown {
  let choice = body.tool_choice;
  if (choice === undefined && truthy(body.tools)) choice = 'auto';
  if (choice === 'none' || choice === undefined || choice === null) return choice;
  const refuse = (text: string): ApiError => validationError([], 'value_error', `Value error, ${text}`, body);
  if (body.tools === undefined || body.tools === null) throw refuse('When using `tool_choice`, `tools` must be set.');
  if (choice !== 'auto' && choice !== 'required' && !isDict(choice)) {
    throw refuse(`Invalid value for \`tool_choice\`: ${pyValueStr(choice)}! Only named tools, "none", "auto" or "required" are supported.`);
  }
  if (isDict(choice)) {
    const usage = 'Correct usage: `{"type": "function", "function": {"name": "my_function"}}`';
    const fn = choice.function;
    if (!isDict(fn)) throw refuse(`Invalid value for \`function\`: \`${pyValueStr(fn)}\` in \`tool_choice\`! ${usage}`);
    if (!('name' in fn)) throw refuse(`Expected field \`name\` in \`function\` in \`tool_choice\`! ${usage}`);
    const name = fn.name;
    if (typeof name !== 'string' || name.length === 0) throw refuse(`Invalid \`name\` in \`function\`: \`${pyValueStr(name)}\` in \`tool_choice\`! ${usage}`);
    // `for tool in data["tools"]: if tool["function"]["name"] == function_name` (a str tools value iterates its
    // characters, which cannot be indexed by a str either).
    if (!Array.isArray(body.tools) && !isDict(body.tools) && typeof body.tools !== 'string') throw new PlainServerError(`'${typeof body.tools}' object is not iterable`);
    const items: unknown[] = Array.isArray(body.tools) ? body.tools : isDict(body.tools) ? Object.keys(body.tools) : [...body.tools];
    let valid = false;
    for (const tool of items) {
      const f = isDict(tool) ? tool.function : undefined;
      if (!isDict(f) || !('name' in f)) throw new PlainServerError('a tool without function.name in check_tool_usage');
      if (f.name === name) {
        valid = true;
        break;
      }
    }
    if (!valid) throw refuse('The tool specified in `tool_choice` does not match any of the specified `tools`');
  }
  return choice;
}

/**
 * `tools` as the template gets them: `[tool.model_dump() for tool in request.tools]` (serving_chat.py @ v0.10.0), each
 * validated as `ChatCompletionToolsParam` when the request is (`vllmToolDicts` in @kvroute/protocol).
 */
function toolDicts(tools: unknown[] | undefined): Record<string, unknown>[] | undefined {
  if (tools === undefined) return undefined;
  try {
    return vllmToolDicts(tools);
  } catch (e) {
    if (e instanceof RequestFieldError) throw validationError(e.loc, e.type, e.msg, e.input, e.ctx);
    throw e;
  }
}

/**
 * Gives the template a string `content`, as vLLM does for templates in the "string" content format (Qwen3's calls
 * .startswith on it): text parts are joined with "\n" (empty ones dropped), and a null content (assistant tool calls) becomes "". The text
 * parts are kept as `contentParts` ([] for a null content) for a template in the "openai" format (`tokenizeChat`).
 */
function normalizeMessage(m: unknown, i: number): ChatMessage {
  const loc = ['messages', i];
  const msg = dict(m, loc);
  if (msg.role === undefined) throw validationError([...loc, 'role'], 'missing', 'Field required', msg);
  const role = strictStr(msg.role, [...loc, 'role']);
  // Every message TypedDict types `name` as str and `tool_call_id` as (Optional) str: pydantic refuses others (the
  // union's first error only, as for the other fields here).
  if (msg.name !== undefined) strictStr(msg.name, [...loc, 'name']);
  if (msg.tool_call_id !== undefined && msg.tool_call_id !== null) strictStr(msg.tool_call_id, [...loc, 'tool_call_id']);
  const c = msg.content;
  let content: string;
  let contentParts: string[] | undefined;
  if (c === undefined || c === null) {
    content = '';
    contentParts = [];
  } else if (typeof c === 'string') {
    content = c;
  } else if (Array.isArray(c)) {
    const texts: string[] = [];
    c.forEach((part: unknown, j) => {
      const pl = [...loc, 'content', j];
      const p = dict(part, pl);
      if (p.type !== 'text') throw new ApiError(501, `Only text content parts are simulated, got type ${JSON.stringify(p.type)} in messages[${i}].content[${j}].`, 'Not Implemented');
      texts.push(strictStr(p.text, [...pl, 'text']));
    });
    // vLLM 0.10.0 drops a part whose parse result is empty (`if parse_res:` in _parse_chat_message_content_parts,
    // chat_utils.py): in the "string" format that is a text part with text "", which is not joined; the "openai"
    // format wraps it into a non-empty dict, which stays.
    content = texts.filter((t) => t !== '').join('\n');
    contentParts = texts;
  } else {
    throw validationError([...loc, 'content'], 'string_type', 'Input should be a valid string', c);
  }
  return { ...msg, role, content, ...(contentParts !== undefined ? { contentParts } : {}) };
}

/**
 * `SamplingParams.from_optional` and `_verify_args` (vllm/sampling_params.py @ v0.10.0), in their order, with their
 * messages. They run in `to_sampling_params`, before the engine sees the request, so vLLM answers each with a JSON 400
 * BadRequestError even when streaming. `maxTokens` is the value vLLM passes (`get_max_tokens`), not the filler's length.
 */
export function checkSampling(r: CommonRequest, maxTokens: number): void {
  const s = r.sampling;
  // get_logits_processors (protocol.py @ v0.10.0), first in to_sampling_params: without --logits-processor-pattern
  // (which the simulator does not take) any processor is refused, in vLLM's words (its typo included).
  if (r.logitsProcessors) {
    throw badRequest('The `logits_processors` argument is not supported by this server. See --logits-processor-pattern engine argugment for more information.');
  }
  // from_optional: `{int(token): … for token, bias in logit_bias.items()}`; Python's int() takes surrounding
  // whitespace, a sign and single underscores between digits.
  for (const key of r.logitBiasKeys) {
    if (!/^\s*[+-]?\d+(_\d+)*\s*$/.test(key)) throw badRequest(`invalid literal for int() with base 10: ${pyStr(key)}`);
  }
  // __post_init__ (sampling_params.py @ 6eca337ce lines 304-319, the same at 61aa4b290): a non-zero best_of below n
  // is refused before _verify_args; otherwise n becomes best_of and `_real_n` the request's n.
  let n = r.n;
  let realN: number | undefined;
  if (s.bestOf !== undefined && s.bestOf !== 0) {
    if (s.bestOf < n) throw badRequest(`best_of must be greater than or equal to n, got n=${n} and best_of=${s.bestOf}.`);
    realN = n;
    n = s.bestOf;
  }
  if (n < 1) throw badRequest(`n must be at least 1, got ${n}.`);
  if (s.bestOf !== undefined) {
    if (s.bestOf < 1) throw badRequest(`best_of must be at least 1, got ${s.bestOf}`);
    if (s.bestOf < n) throw badRequest(`best_of must be greater than or equal to n, got n=${n} and best_of=${s.bestOf}.`);
  }
  if (!(s.presencePenalty >= -2 && s.presencePenalty <= 2)) throw badRequest(`presence_penalty must be in [-2, 2], got ${s.presencePenalty}.`);
  if (!(s.frequencyPenalty >= -2 && s.frequencyPenalty <= 2)) throw badRequest(`frequency_penalty must be in [-2, 2], got ${s.frequencyPenalty}.`);
  if (s.repetitionPenalty !== undefined && s.repetitionPenalty <= 0) throw badRequest(`repetition_penalty must be greater than zero, got ${s.repetitionPenalty}.`);
  if (s.temperature !== undefined && s.temperature < 0) throw badRequest(`temperature must be non-negative, got ${s.temperature}.`);
  if (s.topP !== undefined && !(s.topP > 0 && s.topP <= 1)) throw badRequest(`top_p must be in (0, 1], got ${s.topP}.`);
  if (s.topK !== undefined && s.topK < -1) throw badRequest(`top_k must be 0 (disable), or at least 1, got ${s.topK}.`);
  if (s.minP !== undefined && !(s.minP >= 0 && s.minP <= 1)) throw badRequest(`min_p must be in [0, 1], got ${s.minP}.`);
  if (maxTokens < 1) throw badRequest(`max_tokens must be at least 1, got ${maxTokens}.`);
  if (r.minTokens < 0) throw badRequest(`min_tokens must be greater than or equal to 0, got ${r.minTokens}.`);
  if (r.minTokens > maxTokens) throw badRequest(`min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${r.minTokens}.`);
  if (s.logprobs !== undefined && s.logprobs < 0) throw badRequest(`logprobs must be non-negative, got ${s.logprobs}.`);
  if (s.promptLogprobs !== undefined && s.promptLogprobs < 0) throw badRequest(`prompt_logprobs must be non-negative, got ${s.promptLogprobs}.`);
  // sampling_params.py @ 61aa4b290 lines 418-423 (0.10.2 mode; 0.10.0's pydantic Field(ge=1) refuses these before).
  const t = r.truncatePromptTokens;
  if (r.generation === '0.10.2' && t !== undefined && (t === 0 || t < -1)) throw badRequest(`truncate_prompt_tokens must be an integer >= 1 or -1, got ${t}`);
  if (r.stop.some((x) => x.length === 0)) throw badRequest('stop cannot contain an empty string.');
  // The last check of _verify_args (sampling_params.py @ 6eca337ce lines 438-440, 61aa4b290 lines 435-437): a stream
  // is RequestOutputKind.DELTA (to_sampling_params, protocol.py @ 6eca337ce lines 690 and 1160), so best_of other
  // than n is refused before the stream starts, a JSON 400 on both endpoints.
  if (r.stream && s.bestOf !== undefined && s.bestOf !== realN) throw badRequest('best_of must equal n to use output_kind=DELTA');
  // _verify_greedy_sampling, after _verify_args: a temperature below _SAMPLING_EPS (1e-5) is greedy, which cannot give
  // n > 1 different outputs; n is best_of's when set.
  if (s.temperature !== undefined && s.temperature < 1e-5 && n > 1) throw badRequest(`n must be 1 when using greedy sampling, got ${n}.`);
}

/**
 * The V1 processor's checks of the sampling parameters (vllm/v1/engine/processor.py @ v0.10.0, `_validate_params`:
 * `_validate_logprobs`, `_validate_logit_bias`, `_validate_supported_sampling_params`), in their order, with their
 * messages. They run in `AsyncLLM.add_request`, inside the `generate()` async generator, so only once a streaming
 * response has begun: the caller answers a stream with 200 and an error event, anything else with a 400.
 */
export function processorError(r: CommonRequest, maxLogprobs = 20, vocabSize = VOCAB_SIZE): ApiError | null {
  const s = r.sampling;
  // `if params.logprobs and params.logprobs > max_logprobs` (0 and None pass).
  if (s.logprobs !== undefined && s.logprobs > maxLogprobs) return badRequest(`Requested sample logprobs of ${s.logprobs}, which is greater than max allowed: ${maxLogprobs}`);
  if (s.promptLogprobs !== undefined && s.promptLogprobs > maxLogprobs) {
    return badRequest(`Requested prompt logprobs of ${s.promptLogprobs}, which is greater than max allowed: ${maxLogprobs}`);
  }
  // _validate_logit_bias: against model_config.get_vocab_size() (the embedding table, 151936 for Qwen3), not the
  // tokenizer's largest id. Python's dict keeps one entry per int, so "1" and "01" are one id.
  const ids = [...new Set(r.logitBiasKeys.map((k) => Number(k.trim().replace(/_/g, ''))))];
  const invalid = ids.filter((t) => t < 0 || t >= vocabSize);
  if (invalid.length > 0) return badRequest(`token_id(s) [${invalid.join(', ')}] in logit_bias contain out-of-vocab token ids. Vocabulary size: ${vocabSize}`);
  // _validate_sampling_params, after the logit bias: `allowed_token_ids` must be non-empty and within the same
  // `model_config.get_vocab_size()` (later releases check `len(tokenizer)`).
  if (r.allowedTokenIds !== undefined) {
    if (r.allowedTokenIds.length === 0) return badRequest('allowed_token_ids is not None and empty!');
    if (!r.allowedTokenIds.every((t) => t >= 0 && t < vocabSize)) return badRequest('allowed_token_ids contains out-of-vocab token id!');
  }
  if (s.bestOf !== undefined && s.bestOf > 1) return badRequest('vLLM V1 does not yet support best_of.');
  return null;
}

// ---------------------------------------------------------------------------------------------------------------------
// Stop conditions on the filler reply
// ---------------------------------------------------------------------------------------------------------------------

export interface OutputPlan {
  /** Token ids the request will generate (its engine length). */
  ids: number[];
  /** Text each token adds to the reply as vLLM streams it (already cut at a stop string). */
  deltas: string[];
  finishReason: 'length' | 'stop';
  stopReason: string | number | null;
}

/**
 * Applies vLLM's stop rules to the filler reply: a token in `stop_token_ids` ends it (its text is left out unless
 * `include_stop_str_in_output`), and so does a stop string in the text, which is cut there (kept with
 * `include_stop_str_in_output`); neither is checked before `min_tokens` tokens (vllm/v1/core/sched/utils.py
 * `check_stop`, vllm/v1/engine/detokenizer.py `update` / `check_stop_strings` and `get_next_output_text` @ v0.10.0).
 * While streaming, vLLM holds back the last `max(len(stop)) - 1` characters until the end so it never sends a stop
 * string's start, which the `deltas` reproduce. The tokens stay counted as generated.
 */
export function planOutput(ids: readonly number[], texts: readonly string[], p: StopParams): OutputPlan {
  const outIds: number[] = [];
  let text = '';
  let finishReason: 'length' | 'stop' = 'length';
  let stopReason: string | number | null = null;
  let cut: number | null = null;
  for (let k = 0; k < ids.length; k++) {
    outIds.push(ids[k]);
    const numOut = k + 1;
    if (numOut >= p.minTokens && p.stopTokenIds.includes(ids[k])) {
      if (p.includeStopStrInOutput) text += texts[k];
      finishReason = 'stop';
      stopReason = ids[k];
      break;
    }
    const before = text.length;
    text += texts[k];
    if (numOut > p.minTokens && p.stop.length > 0) {
      // check_stop_strings returns the first stop string of the list found in its window, not the one found earliest
      // in the text: with ["fox", "brown fox"] the token " fox" stops at "fox" (the text kept up to "brown ").
      let best: { at: number; s: string } | null = null;
      for (const s of p.stop) {
        // Only a stop string that ends in the new characters counts (the search window of check_stop_strings).
        const from = Math.max(0, before - s.length + 1);
        const at = text.indexOf(s, from);
        if (at >= 0) {
          best = { at, s };
          break;
        }
      }
      if (best) {
        cut = p.includeStopStrInOutput ? best.at + best.s.length : best.at;
        finishReason = 'stop';
        stopReason = best.s;
        break;
      }
    }
  }
  const full = cut === null ? text : text.slice(0, cut);
  // The streamed deltas: each token releases the text up to its end, minus the held-back tail, and the last releases
  // the rest.
  const hold = p.includeStopStrInOutput || p.stop.length === 0 ? 0 : Math.max(...p.stop.map((s) => s.length)) - 1;
  const deltas: string[] = [];
  let sent = 0;
  let acc = 0;
  for (let k = 0; k < outIds.length; k++) {
    const last = k === outIds.length - 1;
    acc += k < texts.length ? texts[k].length : 0;
    const upTo = last ? full.length : Math.min(full.length, Math.max(sent, acc - hold));
    deltas.push(full.slice(sent, upTo));
    sent = upTo;
  }
  return { ids: outIds, deltas, finishReason, stopReason };
}

// ---------------------------------------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------------------------
// Logprobs of the filler
// ---------------------------------------------------------------------------------------------------------------------

/** One sampled token's logprobs: the token first, then the alternatives, as the V1 sampler's dict orders them. */
export interface TokenLogprobs {
  token: string;
  logprob: number;
  top: { token: string; logprob: number }[];
}

/**
 * The filler is what the simulated model is certain of, so each sampled token has logprob 0.0 (probability 1) and the
 * alternatives, other filler words, have vLLM's clamp of -inf, -9999.0. The V1 sampler returns the `k` best tokens
 * (the sampled one among them, first) or only the sampled token when `k` is 0 (vllm/v1/sample/sampler.py,
 * serving_chat.py `_create_chat_logprobs`, serving_completion.py `_create_completion_logprobs` @ v0.10.0).
 */
export function fillerLogprobs(
  ids: readonly number[],
  texts: readonly string[],
  vocab: { ids: readonly number[]; texts: readonly string[] },
  k: number,
  asTokenIds = false,
): TokenLogprobs[] {
  // `return_tokens_as_token_ids`: OpenAIServing._get_decoded_token (serving_engine.py @ v0.10.0) names the sampled
  // token and each alternative `token_id:{token_id}` instead of its text (so also in chat's `bytes` and in completions'
  // text offsets, which advance by the token's length).
  const name = (id: number, text: string): string => (asTokenIds ? `token_id:${id}` : text);
  return ids.map((id, i) => {
    const token = name(id, texts[i] ?? '');
    const top = [{ token, logprob: 0 }];
    for (let j = 0; top.length < k && j < vocab.ids.length; j++) {
      if (vocab.ids[j] !== id) top.push({ token: name(vocab.ids[j]!, vocab.texts[j]!), logprob: -9999 });
    }
    return { token, logprob: 0, top };
  });
}

/** One prompt position's logprobs as vLLM serializes them: token id → `Logprob` (vllm/sequence.py @ v0.10.0). */
export type PromptLogprobEntry = Record<string, { logprob: number; rank: number; decoded_token: string }>;

/**
 * `prompt_logprobs` as vLLM 0.10.0 returns them (`clamp_prompt_logprobs` over the engine's PromptLogprobs,
 * vllm/entrypoints/openai/serving_chat.py, serving_completion.py): null for the first prompt token, which nothing
 * predicts, then per token a map of token id → {logprob, rank, decoded_token} holding the prompt's own token and the
 * top `k`. Values are those of a model certain of the prompt, as the filler's are: the prompt's token at rank 1 with
 * logprob 0.0, the other `k − 1` at vLLM's clamp of -inf, -9999.0. JSON objects list integer keys in ascending order,
 * where Python keeps the prompt's token first.
 */
export function promptLogprobs(
  ids: ArrayLike<number>,
  decode: (id: number) => string,
  vocab: { ids: readonly number[]; texts: readonly string[] },
  k: number,
): (PromptLogprobEntry | null)[] {
  const out: (PromptLogprobEntry | null)[] = [null];
  for (let i = 1; i < ids.length; i++) {
    const id = ids[i]!;
    const entry: PromptLogprobEntry = { [String(id)]: { logprob: 0, rank: 1, decoded_token: decode(id) } };
    let rank = 2;
    for (let j = 0; rank <= k && j < vocab.ids.length; j++) {
      if (vocab.ids[j] === id) continue;
      entry[String(vocab.ids[j])] = { logprob: -9999, rank: rank++, decoded_token: vocab.texts[j]! };
    }
    out.push(entry);
  }
  return out;
}

/** `ChatCompletionLogProbs` for some tokens (bytes are the token's UTF-8). */
export function chatLogprobs(entries: readonly TokenLogprobs[], k: number): Record<string, unknown> {
  const bytes = (t: string): number[] => Array.from(Buffer.from(t, 'utf8'));
  return {
    content: entries.map((e) => ({
      token: e.token,
      logprob: e.logprob,
      bytes: bytes(e.token),
      top_logprobs: k > 0 ? e.top.slice(0, k).map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytes(t.token) })) : [],
    })),
  };
}

/** `CompletionLogProbs` for some tokens, text offsets counted from `offset`. */
export function completionLogprobs(entries: readonly TokenLogprobs[], k: number, offset: number): Record<string, unknown> {
  const textOffset: number[] = [];
  let at = offset;
  for (const e of entries) {
    textOffset.push(at);
    at += e.token.length;
  }
  return {
    text_offset: textOffset,
    token_logprobs: entries.map((e) => e.logprob),
    tokens: entries.map((e) => e.token),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top.slice(0, k + 1).map((t) => [t.token, t.logprob]))),
  };
}
