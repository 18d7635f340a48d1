/**
 * `JSON.parse` for request bodies that may be far longer than V8's largest regular heap object.
 *
 * Why: V8 puts a string longer than its largest regular heap object (128 KiB on 64-bit builds; a string of two-byte
 * characters reaches it at half the length) in large-object space, a memory chunk of its own that is mapped, faulted
 * in page by page as it is written and unmapped again once a scavenge finds it dead. Decoding a 128 KiB body into one
 * string therefore cost ~120 µs under load (measured with `perf`: page faults, page clearing and TLB shootdowns on
 * unmap), against ~3-7 µs for 64 KiB: more than parsing it. A 128 KiB chat request is a few long strings in a little
 * structure, so the body is split at its structure into pieces each decoded and parsed on its own; no string as long
 * as the body is ever built. Bodies up to `WHOLE_PARSE_MAX_BYTES` take the plain path, unchanged.
 *
 * What it returns is what `JSON.parse(body.toString('utf8'))` returns, and it throws where that throws (a
 * `SyntaxError`; only the message's wording differs): pieces end at ASCII structural characters, where UTF-8 decoding
 * of the parts and of the whole agree, every piece goes through `JSON.parse`, and the structure between pieces
 * (braces, brackets, colons, commas, JSON whitespace) is checked here. Members keep `JSON.parse`'s semantics: a
 * repeated key keeps its first position and its last value, and `__proto__` is an own data property, never the
 * prototype. The differential test (`protocol/test/json-body.test.ts`) holds it to `JSON.parse` on generated documents
 * and on their corruptions.
 *
 * With `refuseOutOfRange` (the EPP's parsers, as GIE's are Go), a number out of float64's range, which `JSON.parse`
 * reads as ±Infinity (and Python's json, vLLM's, as inf), throws (a `SyntaxError`), as Go's encoding/json refuses it.
 *
 * One exception: a body over `WHOLE_PARSE_MAX_BYTES` nested deeper than `MAX_NESTING` throws (a `SyntaxError`) before
 * anything is parsed, where `JSON.parse` would spend about a microsecond a level on the routing thread (a 20 MB body
 * nested 10 M deep held every other request for 10 s and took 1.2 GB). Upstream refuses such a body too: GIE v1.5.0
 * parses with Go's `encoding/json` (`maxNestingDepth = 10000`, "exceeded max depth": a 400 there) and vLLM with
 * Python's `json` (`PYTHON_MAX_NESTING`). A body up to `WHOLE_PARSE_MAX_BYTES` is parsed whole as before: it nests at
 * most 30 K deep, which `JSON.parse` reads in milliseconds, and vLLM still refuses what passes 10,000. Such a body with
 * more than `MAX_JSON_VALUES` values throws `JsonBodyTooDenseError` unparsed, for the same reason (kvroute's own bound:
 * neither GIE nor vLLM has one; GIE parses each stream on its own goroutine).
 */
import { PYTHON_MAX_NESTING } from './python-json';

/** Containers nested deeper than this are refused (in a body over `WHOLE_PARSE_MAX_BYTES`); see the module comment. */
export const MAX_NESTING = PYTHON_MAX_NESTING;

/**
 * Values (commas and containers) a body over `WHOLE_PARSE_MAX_BYTES` may hold before it is refused unparsed
 * (`JsonBodyTooDenseError`). `JSON.parse` takes ~0.2 µs a number and ~0.5-0.8 µs an empty array on the routing thread:
 * under the 64 MiB body cap a flat body of tiny values (`[0,0,…]`, `[[],[],…]`) held every request for 7-16 s. Two
 * million bound that to about a second at worst, and pass any chat or completion a model can take except a token-id
 * prompt (or a batch of them) of about two million tokens or more (the body's own containers and member commas count).
 */
export const MAX_JSON_VALUES = 2_000_000;

/** A body over `WHOLE_PARSE_MAX_BYTES` with more than its budget of values (`MAX_JSON_VALUES`), refused unparsed. */
export class JsonBodyTooDenseError extends RangeError {
  constructor(readonly maxValues: number, at: number, length: number) {
    super(`more than ${maxValues} JSON values (at byte ${at} of ${length})`);
    this.name = 'JsonBodyTooDenseError';
  }
}

/**
 * Bodies and pieces up to this many bytes are decoded and parsed whole. Sixty KiB decodes to at most 120 KiB of
 * string storage even when one character outside Latin-1 makes V8 store the whole string two bytes a character, so
 * a piece never reaches large-object space.
 */
export const WHOLE_PARSE_MAX_BYTES = 60 * 1024;

/**
 * Containers are split down to this depth (0 is the body itself) and parsed whole below it. Each split level reads its
 * container once more to delimit the children, so the levels bound the work to a few passes over the body and the
 * recursion to a few frames: a chat body is object → `messages` → message → content parts → part, and a body nested
 * thousands deep, which `JSON.parse` reads iteratively, must neither take seconds nor overflow the stack here.
 */
export const MAX_SPLIT_DEPTH = 4;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * Parses `body` as UTF-8 JSON exactly as `JSON.parse(body.toString('utf8'))` does; see the module comment.
 * @throws JsonBodyTooDenseError for a body over `wholeMaxBytes` with more than `maxValues` values, before parsing it.
 */
export function parseJsonBody(
  body: Buffer,
  wholeMaxBytes: number = WHOLE_PARSE_MAX_BYTES,
  maxValues: number = MAX_JSON_VALUES,
  options: JsonBodyOptions = {},
): unknown {
  const finite = options.refuseOutOfRange === true;
  if (body.length <= wholeMaxBytes) {
    const text = body.toString('utf8');
    const value: unknown = JSON.parse(text);
    return finite && MAY_OVERFLOW.test(text) ? refuseOutOfRange(value) : value;
  }
  const start = skipWhitespace(body, 0, body.length);
  const end = scanValue(body, start, body.length, maxValues, MAX_NESTING);
  if (skipWhitespace(body, end, body.length) !== body.length) fail(body, end, 'unexpected data after the JSON value');
  const parser = new PieceParser(body, wholeMaxBytes);
  const value = parser.value(start, end, 0);
  return finite && parser.mayOverflow ? refuseOutOfRange(value) : value;
}

export interface JsonBodyOptions {
  /**
   * Throw (a `SyntaxError`) where a number is out of float64's range, which `JSON.parse` reads as ±Infinity, as Go's
   * encoding/json refuses it: the EPP's parsers ask for this, as GIE's are Go. Off, such a number is ±Infinity, as
   * Python's json (vLLM) reads it. @default false
   */
  readonly refuseOutOfRange?: boolean;
}

/**
 * Text in which a number may be out of float64's range: a literal reaches 1.8e308 only with an exponent of three
 * digits or more, or with an integer part of over 200 digits (an exponent of at most 99 leaves 209 for it to make up).
 * A string holding such text matches too; the walk then finds nothing. Most bodies are never walked.
 */
const MAY_OVERFLOW = /[eE]\+?\d{3}|\d{20}/;

/**
 * Returns `value`, or throws (a `SyntaxError`) where it holds a number `JSON.parse` read as ±Infinity: one out of
 * float64's range, which Go's encoding/json refuses ("cannot unmarshal number 1e400 into Go value of type float64"), so
 * GIE v1.5.0 answers such a body 400 (`parsers/openai/openai.go` ParseRequest, `requestcontrol/director.go`
 * processRequestBody BadRequest). An underflow reads 0 in both. Walked without recursion: a body may nest 30 K deep.
 */
function refuseOutOfRange(value: unknown): unknown {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new SyntaxError('number out of range (beyond float64)');
    return value;
  }
  if (typeof value !== 'object' || value === null) return value;
  const pending: object[] = [value];
  for (let container = pending.pop(); container !== undefined; container = pending.pop()) {
    for (const item of Array.isArray(container) ? container : Object.values(container)) {
      if (typeof item === 'number') {
        if (!Number.isFinite(item)) throw new SyntaxError('number out of range (beyond float64)');
      } else if (typeof item === 'object' && item !== null) {
        pending.push(item);
      }
    }
  }
  return value;
}

class PieceParser {
  /** Whether a piece's text may hold a number out of float64's range (`MAY_OVERFLOW`). */
  mayOverflow = false;

  constructor(private readonly buf: Buffer, private readonly wholeMaxBytes: number) {}

  /** `JSON.parse` of `text`, noting whether it may hold a number out of range. */
  private parse(text: string): unknown {
    if (!this.mayOverflow && MAY_OVERFLOW.test(text)) this.mayOverflow = true;
    return JSON.parse(text);
  }

  /** The value in [start, end), which `scanValue` delimited, `depth` containers down from the body. */
  value(start: number, end: number, depth: number): unknown {
    const { buf } = this;
    if (end - start > this.wholeMaxBytes && depth <= MAX_SPLIT_DEPTH) {
      if (buf[start] === OPEN_BRACE) return this.object(start, end, depth);
      if (buf[start] === OPEN_BRACKET) return this.array(start, end, depth);
      // A single string (or number) this long is a long string whichever way it is parsed.
    }
    return this.parse(buf.toString('utf8', start, end));
  }

  /**
   * An object: its members in runs of at most `wholeMaxBytes`, each run parsed as one small object, and a member whose
   * value alone is longer parsed on its own (recursively). Runs keep the number of `JSON.parse` calls proportional to
   * the body's size over the limit, not to its member count.
   */
  private object(start: number, end: number, depth: number): Record<string, unknown> {
    const { buf } = this;
    const out: Record<string, unknown> = {};
    let i = skipWhitespace(buf, start + 1, end);
    if (buf[i] === CLOSE_BRACE) return closes(buf, i, end, out);
    let runStart = i;
    for (;;) {
      if (buf[i] !== QUOTE) fail(buf, i, 'expected a member name');
      const keyEnd = scanString(buf, i, end);
      const keyStart = i;
      i = skipWhitespace(buf, keyEnd, end);
      if (buf[i] !== COLON) fail(buf, i, 'expected a colon after the member name');
      const valueStart = skipWhitespace(buf, i + 1, end);
      const valueEnd = scanValue(buf, valueStart, end);
      // A member too long for a run is parsed on its own: its name, then its value (split further if it is long).
      const long = valueEnd - keyStart > this.wholeMaxBytes;
      const after = skipWhitespace(buf, valueEnd, end);
      const last = buf[after] === CLOSE_BRACE;
      if (!last && buf[after] !== COMMA) fail(buf, after, 'expected a comma or a closing brace');
      if (long) {
        // The run before this member, then the member itself.
        if (keyStart > runStart) this.assignRun(out, runStart, lastComma(buf, runStart, keyStart));
        define(out, JSON.parse(buf.toString('utf8', keyStart, keyEnd)) as string, this.value(valueStart, valueEnd, depth + 1));
        runStart = skipWhitespace(buf, after + 1, end);
      } else if (valueEnd - runStart > this.wholeMaxBytes && keyStart > runStart) {
        // This member would make the run too long: the run ends before it.
        this.assignRun(out, runStart, lastComma(buf, runStart, keyStart));
        runStart = keyStart;
      }
      if (last) {
        if (runStart < after) this.assignRun(out, runStart, valueEnd);
        return closes(buf, after, end, out);
      }
      i = skipWhitespace(buf, after + 1, end);
    }
  }

  private array(start: number, end: number, depth: number): unknown[] {
    const { buf } = this;
    const out: unknown[] = [];
    let i = skipWhitespace(buf, start + 1, end);
    if (buf[i] === CLOSE_BRACKET) return closes(buf, i, end, out);
    let runStart = i;
    for (;;) {
      const valueEnd = scanValue(buf, i, end);
      const long = valueEnd - i > this.wholeMaxBytes;
      const after = skipWhitespace(buf, valueEnd, end);
      const last = buf[after] === CLOSE_BRACKET;
      if (!last && buf[after] !== COMMA) fail(buf, after, 'expected a comma or a closing bracket');
      if (long) {
        if (i > runStart) this.pushRun(out, runStart, lastComma(buf, runStart, i));
        out.push(this.value(i, valueEnd, depth + 1));
        runStart = skipWhitespace(buf, after + 1, end);
      } else if (valueEnd - runStart > this.wholeMaxBytes && i > runStart) {
        this.pushRun(out, runStart, lastComma(buf, runStart, i));
        runStart = i;
      }
      if (last) {
        if (runStart < after) this.pushRun(out, runStart, valueEnd);
        return closes(buf, after, end, out);
      }
      i = skipWhitespace(buf, after + 1, end);
    }
  }

  /** Members in [start, end) (no trailing comma), parsed as one object and copied in order. */
  private assignRun(out: Record<string, unknown>, start: number, end: number): void {
    const run = this.parse(`{${this.buf.toString('utf8', start, end)}}`) as Record<string, unknown>;
    for (const key of Object.keys(run)) define(out, key, run[key]);
  }

  private pushRun(out: unknown[], start: number, end: number): void {
    const run = this.parse(`[${this.buf.toString('utf8', start, end)}]`) as unknown[];
    for (const v of run) out.push(v);
  }
}

/**
 * The text of the named members of the body's top-level object, for a body `JSON.parse` accepted: the last occurrence of
 * each (a repeated key keeps its last value, as in `JSON.parse` and Python's dict). Names are compared decoded, so an
 * escaped name (`"tool\u0073"`) is found too. Used to read a few members again with another parser without decoding
 * the whole body as one string.
 */
export function topLevelMemberTexts(body: Buffer, names: ReadonlySet<string>): Map<string, string> {
  const found = new Map<string, string>();
  const end = body.length;
  let i = skipWhitespace(body, 0, end);
  if (body[i] !== OPEN_BRACE) return found;
  i = skipWhitespace(body, i + 1, end);
  while (i < end && body[i] === QUOTE) {
    const keyEnd = scanString(body, i, end);
    const raw = body.toString('utf8', i + 1, keyEnd - 1);
    const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
    const valueStart = skipWhitespace(body, skipWhitespace(body, keyEnd, end) + 1, end);
    const valueEnd = scanValue(body, valueStart, end);
    if (names.has(key)) found.set(key, body.toString('utf8', valueStart, valueEnd));
    i = skipWhitespace(body, valueEnd, end);
    if (body[i] !== COMMA) break;
    i = skipWhitespace(body, i + 1, end);
  }
  return found;
}

/** An own enumerable data property, as `JSON.parse` creates (plain assignment would set the prototype for `__proto__`). */
function define(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
  else out[key] = value;
}

/** `value` when the container's closing character at `at` is the last byte of [.., end); else a syntax error. */
function closes<T>(buf: Buffer, at: number, end: number, value: T): T {
  if (at + 1 !== end) fail(buf, at + 1, 'unexpected data after the closing character');
  return value;
}

/** The end of the run of members or elements that stops before `next`: the comma before it, found from the right. */
function lastComma(buf: Buffer, runStart: number, next: number): number {
  let j = next - 1;
  while (j > runStart && buf[j] !== COMMA) j--;
  return j;
}

/** The index after the JSON whitespace (space, tab, line feed, carriage return) from `i`. */
export function skipWhitespace(buf: Buffer, i: number, end: number = buf.length): number {
  while (i < end) {
    const c = buf[i]!;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
    i++;
  }
  return i;
}

/**
 * The index after the value that starts at `i`: a string through its closing quote, an object or array through its
 * matching closing character (strings inside skipped whole), anything else up to the next structural character or
 * whitespace. It delimits only; `JSON.parse` validates what it delimits. The budgets (`maxValues`, `maxDepth`) are
 * checked only where `parseJsonBody` scans a long body whole: the scans within a value it let through, and
 * `topLevelMemberTexts` on a body `JSON.parse` already read (of any length), must not refuse what was accepted.
 */
function scanValue(buf: Buffer, i: number, end: number, maxValues = Infinity, maxDepth = Infinity): number {
  if (i >= end) fail(buf, i, 'expected a value');
  const c = buf[i]!;
  if (c === QUOTE) return scanString(buf, i, end);
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    // Commas and containers: about the values `JSON.parse` would build (a member's name and value count once).
    let values = 0;
    for (let j = i; j < end; j++) {
      const b = buf[j]!;
      if (b === QUOTE) j = scanString(buf, j, end) - 1;
      else if (b === COMMA) {
        if (++values > maxValues) throw new JsonBodyTooDenseError(maxValues, j, buf.length);
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        if (++depth > maxDepth) fail(buf, j, `containers nested deeper than ${maxDepth}`);
        if (++values > maxValues) throw new JsonBodyTooDenseError(maxValues, j, buf.length);
      } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        if (--depth === 0) return j + 1;
      }
    }
    fail(buf, end, 'unterminated object or array');
  }
  let j = i;
  while (j < end) {
    const b = buf[j]!;
    if (b === COMMA || b === CLOSE_BRACE || b === CLOSE_BRACKET || b === COLON || b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) break;
    j++;
  }
  if (j === i) fail(buf, i, 'expected a value');
  return j;
}

/** The index after the string whose opening quote is at `i`: the first quote preceded by an even run of backslashes. */
function scanString(buf: Buffer, i: number, end: number): number {
  let q = i;
  for (;;) {
    q = buf.indexOf(QUOTE, q + 1);
    if (q < 0 || q >= end) fail(buf, end, 'unterminated string');
    let backslashes = 0;
    while (buf[q - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
  }
}

function fail(buf: Buffer, at: number, what: string): never {
  throw new SyntaxError(`${what} at byte ${at} of ${buf.length}`);
}
