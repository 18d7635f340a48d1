/**
 * JSON text as Python's `json.loads` reads it, for the bodies `JSON.parse` refuses. FastAPI decodes a request body with
 * Starlette's `request.json()` (`json.loads(bytes)`), and turns a `JSONDecodeError` into the 400 vLLM returns
 * (`{'type': 'json_invalid', 'loc': ('body', e.pos), …, 'ctx': {'error': e.msg}}`: fastapi/routing.py
 * `get_request_handler`): so the error's message and position are Python's, and what Python accepts beyond JSON
 * (`NaN`, `Infinity`, `-Infinity`) is a body, not an error.
 *
 * Mirrors CPython 3.12's C scanner (Modules/_json.c: `scan_once_unicode`, `_parse_object_unicode`,
 * `_parse_array_unicode`, `scanstring_unicode`, `_match_number_unicode`) and Lib/json/decoder.py (`JSONDecoder.decode`,
 * `raw_decode`), the Python of vLLM 0.10.0's image (docker/Dockerfile `PYTHON_VERSION=3.12`). 3.13 words a trailing
 * comma differently ("Illegal trailing comma before end of object"); 3.11 and 3.12 agree. Positions are Python's: in
 * code points, not UTF-16 units. `protocol/test/vectors/python-json.py` generated the expected errors with CPython.
 */

export type PythonJsonResult =
  | { readonly ok: true; readonly value: unknown }
  /** A `JSONDecodeError`: FastAPI's 400 `json_invalid`. */
  | { readonly ok: false; readonly msg: string; readonly pos: number }
  /**
   * Another exception out of `json.loads` (RecursionError, ValueError), as Python words it (`str(e)`): FastAPI's 400
   * "There was an error parsing the body" for a request body; vLLM's 400 with this text for a tool call's arguments.
   */
  | { readonly ok: false; readonly unreadable: string };

/**
 * CPython 3.12's C recursion budget on Linux (`C_RECURSION_LIMIT`, Include/cpython/pystate.h: 10000 in 3.12.10; 1500
 * in 3.12.0), which `scan_once_unicode` spends one of per array or object it enters (`Py_EnterRecursiveCall`):
 * deeper bodies raise RecursionError. The server's own C frames take a few, so the exact depth is a little lower.
 */
export const PYTHON_MAX_NESTING = 10_000;
/** `sys.get_int_max_str_digits()`'s default (Python ≥ 3.11): a longer integer literal raises ValueError. */
export const PYTHON_INT_MAX_STR_DIGITS = 4300;

/** `str(e)` of the RecursionError `scan_once_unicode` raises entering one container too many (Modules/_json.c). */
export function pythonRecursionErrorText(container: 'array' | 'object'): string {
  return `maximum recursion depth exceeded while decoding a JSON ${container} from a unicode string`;
}

/** `str(e)` of the ValueError PyLong_FromString raises for an integer literal of `digits` digits past the limit. */
export function pythonIntDigitsErrorText(digits: number): string {
  return `Exceeds the limit (${PYTHON_INT_MAX_STR_DIGITS} digits) for integer string conversion: value has ${digits} digits; use sys.set_int_max_str_digits() to increase the limit`;
}

class DecodeError {
  constructor(readonly msg: string, readonly pos: number) {}
}

/** A Python exception out of json.loads that is not a JSONDecodeError. */
class Unreadable {
  constructor(readonly reason: string) {}
}

/** Python's StopIteration out of scan_once: "Expecting value" at `pos` once it reaches the top. */
class StopIteration {
  constructor(readonly pos: number) {}
}

const isWhitespace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/**
 * A Python float whose value is integral (`1.0`, `-0.0`, `1e3` in the JSON text): JavaScript's numbers cannot tell it
 * from the int `1`, and Python prints the two differently (`1.0`, `str()` and `json.dumps` alike), so a chat template
 * rendering it (a tool's `"minimum": 0.0`) gives other text, and other tokens, than vLLM's. Made by
 * `parsePythonJson(text, { markIntegralFloats: true })`; @huggingface/jinja patched by `pythonJson` renders
 * it as the package's float. Every other number stays a JavaScript number: floats that are not integral are floats to
 * the package too.
 */
export class PythonFloat {
  constructor(readonly value: number) {}

  /** `JSON.stringify` writes the number (error bodies echo an input value). */
  toJSON(): number {
    return this.value;
  }
}

export interface PythonJsonOptions {
  /** Integral floats as `PythonFloat` rather than numbers. @default false */
  readonly markIntegralFloats?: boolean;
}

/** Set for the duration of one synchronous `parsePythonJson` call. */
let markIntegralFloats = false;

/** Parses `text` as Python's `json.loads(str)` does, or gives its `JSONDecodeError` (msg, pos in code points). */
export function parsePythonJson(text: string, options: PythonJsonOptions = {}): PythonJsonResult {
  markIntegralFloats = options.markIntegralFloats === true;
  try {
    let idx = skipWhitespace(text, 0);
    let value: unknown;
    try {
      [value, idx] = scanOnce(text, idx, 0);
    } catch (e) {
      if (e instanceof StopIteration) throw new DecodeError('Expecting value', e.pos);
      throw e;
    }
    idx = skipWhitespace(text, idx);
    if (idx !== text.length) throw new DecodeError('Extra data', idx);
    return { ok: true, value };
  } catch (e) {
    if (e instanceof DecodeError) return { ok: false, msg: e.msg, pos: codePoints(text, e.pos) };
    if (e instanceof StopIteration) return { ok: false, msg: 'Expecting value', pos: codePoints(text, e.pos) };
    if (e instanceof Unreadable) return { ok: false, unreadable: e.reason };
    // Node's stack ends before Python's budget on the deepest bodies: Python raises RecursionError there too, or
    // (between the two depths) decodes further; read as the former.
    if (e instanceof RangeError) return { ok: false, unreadable: pythonRecursionErrorText('array') };
    throw e;
  } finally {
    markIntegralFloats = false;
  }
}

/**
 * The number tokens of the JSON `text` (one `JSON.parse` accepted), outside strings: each one's text and whether it is
 * written as a float (a fraction or an exponent). A scan without parsing.
 */
export function* jsonNumberTokens(text: string): Generator<{ readonly token: string; readonly float: boolean }> {
  const len = text.length;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      for (i++; i < len && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
      continue;
    }
    if (c !== 0x2d && !isDigit(c)) continue;
    let j = c === 0x2d ? i + 1 : i;
    while (j < len && isDigit(text.charCodeAt(j))) j++;
    let float = false;
    if (text.charCodeAt(j) === 0x2e) {
      float = true;
      for (j++; j < len && isDigit(text.charCodeAt(j)); j++);
    }
    const e = text.charCodeAt(j);
    if (e === 0x65 || e === 0x45) {
      float = true;
      j++;
      if (text.charCodeAt(j) === 0x2b || text.charCodeAt(j) === 0x2d) j++;
      while (j < len && isDigit(text.charCodeAt(j))) j++;
    }
    yield { token: text.slice(i, j), float };
    i = j - 1;
  }
}

/**
 * Whether the JSON `text` holds a number written as a float whose value is integral, outside strings: what
 * `PythonFloat` is for, so that only such texts are read twice.
 */
export function hasIntegralFloat(text: string): boolean {
  for (const { token, float } of jsonNumberTokens(text)) if (float && Number.isInteger(Number(token))) return true;
  return false;
}

/**
 * Whether `test` holds for `root` or any value in its arrays and objects (a `PythonFloat` is a value, not an object to
 * enter), iteratively: a parsed body can be nested deeper than the stack.
 */
export function someJsonValue(root: unknown, test: (value: unknown) => boolean): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (test(v)) return true;
    if (Array.isArray(v)) {
      for (const item of v) stack.push(item);
    } else if (typeof v === 'object' && v !== null && !(v instanceof PythonFloat)) {
      for (const key in v) stack.push((v as Record<string, unknown>)[key]);
    }
  }
  return false;
}

/** A UTF-16 surrogate without its pair: JavaScript's and Python's JSON write it differently. */
export const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Whether Python refuses a text `JSON.parse` accepted: nesting past PYTHON_MAX_NESTING or an integer literal of more
 * than PYTHON_INT_MAX_STR_DIGITS digits (both need a long text; shorter ones are not scanned). Returns Python's
 * exception text, or undefined.
 */
export function pythonRefusesValidJson(text: string): string | undefined {
  if (text.length <= PYTHON_INT_MAX_STR_DIGITS) return undefined;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string (JSON.parse accepted it: every escape is well-formed).
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > PYTHON_MAX_NESTING) return pythonRecursionErrorText(c === 0x5b ? 'array' : 'object');
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if (isDigit(c)) {
      let end = i;
      while (end < text.length && isDigit(text.charCodeAt(end))) end++;
      const next = text[end];
      if (end - i > PYTHON_INT_MAX_STR_DIGITS && next !== '.' && next !== 'e' && next !== 'E') return pythonIntDigitsErrorText(end - i);
      // The rest of a number (fraction, exponent) holds no bracket or quote: the loop passes over it.
      i = end - 1;
    }
  }
  return undefined;
}

function skipWhitespace(s: string, idx: number): number {
  while (idx < s.length && isWhitespace(s.charCodeAt(idx))) idx++;
  return idx;
}

/** The code points in `s` before UTF-16 index `end` (Python's str indices). */
function codePoints(s: string, end: number): number {
  let n = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    // A high surrogate followed by a low one is one code point; lone surrogates count one each, as in Python.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** scan_once_unicode's named constants, by first character: the text and its value. */
const NAMED_CONSTANTS: ReadonlyMap<string, readonly [string, unknown]> = new Map<string, readonly [string, unknown]>([
  ['n', ['null', null]], ['t', ['true', true]], ['f', ['false', false]],
  ['N', ['NaN', NaN]], ['I', ['Infinity', Infinity]], ['-', ['-Infinity', -Infinity]],
]);

function scanOnce(s: string, idx: number, depth: number): [unknown, number] {
  if (idx >= s.length) throw new StopIteration(idx);
  const c = s[idx];
  switch (c) {
    case '"':
      return scanString(s, idx + 1);
    case '{':
      if (depth >= PYTHON_MAX_NESTING) throw new Unreadable(pythonRecursionErrorText('object'));
      return parseObject(s, idx + 1, depth + 1);
    case '[':
      if (depth >= PYTHON_MAX_NESTING) throw new Unreadable(pythonRecursionErrorText('array'));
      return parseArray(s, idx + 1, depth + 1);
  }
  // The named constants (a '-' not starting -Infinity is a number's sign).
  const named = c === undefined ? undefined : NAMED_CONSTANTS.get(c);
  if (named !== undefined && s.startsWith(named[0], idx)) return [named[1], idx + named[0].length];
  return matchNumber(s, idx);
}

function matchNumber(s: string, start: number): [number | PythonFloat, number] {
  const end = s.length;
  let idx = start;
  if (s.charCodeAt(idx) === 0x2d /* - */) {
    idx++;
    if (idx >= end) throw new StopIteration(start);
  }
  const first = s.charCodeAt(idx);
  if (first >= 0x31 && first <= 0x39) {
    idx++;
    while (idx < end && isDigit(s.charCodeAt(idx))) idx++;
  } else if (first === 0x30) {
    idx++;
  } else {
    throw new StopIteration(start);
  }
  // A fraction needs a digit after the point; an exponent without digits is backtracked (left as extra data).
  let isFloat = false;
  if (idx + 1 < end && s[idx] === '.' && isDigit(s.charCodeAt(idx + 1))) {
    isFloat = true;
    idx += 2;
    while (idx < end && isDigit(s.charCodeAt(idx))) idx++;
  }
  if (idx + 1 < end && (s[idx] === 'e' || s[idx] === 'E')) {
    const eStart = idx;
    idx++;
    if (idx + 1 < end && (s[idx] === '-' || s[idx] === '+')) idx++;
    while (idx < end && isDigit(s.charCodeAt(idx))) idx++;
    if (isDigit(s.charCodeAt(idx - 1))) isFloat = true;
    else idx = eStart;
  }
  // PyLong_FromString refuses an integer literal past sys.get_int_max_str_digits() (floats have no such limit).
  const digits = idx - start - (s[start] === '-' ? 1 : 0);
  if (!isFloat && digits > PYTHON_INT_MAX_STR_DIGITS) throw new Unreadable(pythonIntDigitsErrorText(digits));
  const value = Number(s.slice(start, idx));
  // `-0` is Python's int 0 (ints have no sign of zero); `-0.0` stays a negative zero.
  if (isFloat && markIntegralFloats && Number.isInteger(value)) return [new PythonFloat(value), idx];
  return [isFloat || value !== 0 ? value : 0, idx];
}

function parseObject(s: string, idx: number, depth: number): [Record<string, unknown>, number] {
  const obj: Record<string, unknown> = {};
  idx = skipWhitespace(s, idx);
  if (idx >= s.length || s[idx] !== '}') {
    for (;;) {
      if (idx >= s.length || s[idx] !== '"') throw new DecodeError('Expecting property name enclosed in double quotes', idx);
      let key: string;
      [key, idx] = scanString(s, idx + 1);
      idx = skipWhitespace(s, idx);
      if (idx >= s.length || s[idx] !== ':') throw new DecodeError("Expecting ':' delimiter", idx);
      idx = skipWhitespace(s, idx + 1);
      let value: unknown;
      [value, idx] = scanOnce(s, idx, depth);
      // A later duplicate wins, as in Python's dict.
      Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
      idx = skipWhitespace(s, idx);
      if (idx < s.length && s[idx] === '}') break;
      if (idx >= s.length || s[idx] !== ',') throw new DecodeError("Expecting ',' delimiter", idx);
      idx = skipWhitespace(s, idx + 1);
    }
  }
  return [obj, idx + 1];
}

function parseArray(s: string, idx: number, depth: number): [unknown[], number] {
  const arr: unknown[] = [];
  idx = skipWhitespace(s, idx);
  if (idx >= s.length || s[idx] !== ']') {
    for (;;) {
      let value: unknown;
      [value, idx] = scanOnce(s, idx, depth);
      arr.push(value);
      idx = skipWhitespace(s, idx);
      if (idx < s.length && s[idx] === ']') break;
      if (idx >= s.length || s[idx] !== ',') throw new DecodeError("Expecting ',' delimiter", idx);
      idx = skipWhitespace(s, idx + 1);
    }
  }
  return [arr, idx + 1];
}

const ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

function hex4(s: string, at: number): number | undefined {
  const digits = s.slice(at, at + 4);
  return /^[0-9a-fA-F]{4}$/.test(digits) ? parseInt(digits, 16) : undefined;
}

/** `scanstring_unicode` with strict=True: the string whose opening quote is at `end - 1`, and the index after it. */
function scanString(s: string, end: number): [string, number] {
  const begin = end - 1;
  const len = s.length;
  let out = '';
  for (;;) {
    let next = end;
    let c = 0;
    for (; next < len; next++) {
      c = s.charCodeAt(next);
      if (c === 0x22 || c === 0x5c) break;
      if (c <= 0x1f) throw new DecodeError('Invalid control character at', next);
    }
    if (next >= len || (c !== 0x22 && c !== 0x5c)) throw new DecodeError('Unterminated string starting at', begin);
    out += s.slice(end, next);
    next++;
    if (c === 0x22) return [out, next];
    if (next === len) throw new DecodeError('Unterminated string starting at', begin);
    const esc = s[next]!;
    if (esc !== 'u') {
      const decoded = ESCAPES[esc];
      if (decoded === undefined) throw new DecodeError('Invalid \\escape', next - 1);
      out += decoded;
      end = next + 1;
      continue;
    }
    next++;
    end = next + 4;
    if (end >= len) throw new DecodeError('Invalid \\uXXXX escape', next - 1);
    const unit = hex4(s, next);
    if (unit === undefined) throw new DecodeError('Invalid \\uXXXX escape', next - 1);
    let code = unit;
    // A high surrogate followed by an escaped low one is one code point; anything else stays a lone surrogate.
    if (unit >= 0xd800 && unit <= 0xdbff && end + 6 < len && s[end] === '\\' && s[end + 1] === 'u') {
      const low = hex4(s, end + 2);
      if (low === undefined) throw new DecodeError('Invalid \\uXXXX escape', end + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
        end += 6;
      }
    }
    out += String.fromCodePoint(code);
  }
}
