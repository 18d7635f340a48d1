/**
 * Python's `json.dumps` text of numbers, strings and plain JSON values: what transformers' `tojson` writes inside a chat
 * template (`jinja-python-json.ts`) and what vLLM writes itself (a stream's error event, "required" tool-call
 * arguments).
 */
import { LONE_SURROGATE, PythonFloat } from './python-json';
import { pythonFloatRepr } from './jinja-python-strings';

/** Python's `str(int)`: JavaScript writes integers from 1e21 with an exponent. */
export function pythonIntText(n: number): string {
  return Math.abs(n) < 1e21 ? String(n) : BigInt(n).toString();
}

/** `json.dumps` of a float (`float.__repr__`, with JavaScript's names for what JSON lacks, as Python writes them). */
export function pythonJsonFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  return pythonFloatRepr(x);
}

/** No lone surrogate: `String.prototype.isWellFormed` (Node 20; native, twice as fast as the pattern) where present. */
function wellFormed(s: string): boolean {
  const native = (s as string & { isWellFormed?: () => boolean }).isWellFormed;
  return native !== undefined ? native.call(s) : !LONE_SURROGATE.test(s);
}
const NOT_PRINTABLE_ASCII = /[\u007f-\uffff]/g;

/** Python's `json.encoder` string escaping: `ensure_ascii` escapes everything outside ' '..'~' (DEL too). */
export function pythonJsonString(s: string, ensureAscii: boolean): string {
  // JSON.stringify escapes what Python's encoder does (the quote, the backslash, \b \f \n \r \t, other controls as
  // lowercase \u00XX) and, unlike it, lone surrogates: a native pass for every string without one (a tool result of
  // a million characters took 50 ms character by character, 2 ms this way).
  if (wellFormed(s)) {
    const json = JSON.stringify(s);
    return ensureAscii ? json.replace(NOT_PRINTABLE_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : json;
  }
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c < 0x20 || (ensureAscii && c > 0x7e)) out += `\\u${c.toString(16).padStart(4, '0')}`;
    // Without ensure_ascii a lone surrogate is written as it is (JSON.stringify would escape it).
    else out += s[i];
  }
  return `${out}"`;
}

/**
 * `json.dumps(value)` of a plain JSON value with Python's defaults (separators `", "` and `": "`, `ensure_ascii`
 * unless `ensureAscii` is false, keys in their order): integral numbers print as ints, a `PythonFloat` and other
 * numbers as floats (`float.__repr__`). CPython's Lib/json/encoder.py; undefined members are left out as
 * `JSON.stringify` leaves them.
 */
export function pythonJsonDumps(value: unknown, ensureAscii = true): string {
  if (value === null || value === undefined) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (value instanceof PythonFloat) return pythonJsonFloat(value.value);
  if (typeof value === 'number') return Number.isInteger(value) ? pythonIntText(value) : pythonJsonFloat(value);
  if (typeof value === 'string') return pythonJsonString(value, ensureAscii);
  if (Array.isArray(value)) return `[${value.map((v) => pythonJsonDumps(v, ensureAscii)).join(', ')}]`;
  if (typeof value === 'object') {
    const items: string[] = [];
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== undefined) items.push(`${pythonJsonString(k, ensureAscii)}: ${pythonJsonDumps(v, ensureAscii)}`);
    }
    return `{${items.join(', ')}}`;
  }
  return 'null';
}
