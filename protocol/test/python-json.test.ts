import * as fs from 'fs';
import * as path from 'path';
import { parsePythonJson, PYTHON_INT_MAX_STR_DIGITS, PYTHON_MAX_NESTING, pythonRefusesValidJson } from '../src/openai/python-json';

type Encoded =
  | { float: string }
  | { object: [string, Encoded][] }
  | { array: Encoded[] }
  | { str: number[] }
  | { bigint: string }
  | { plain: unknown };

interface Case {
  readonly text: string;
  readonly error?: { msg: string; pos: number };
  readonly value?: Encoded;
}

const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, 'vectors', 'python-json.json'), 'utf8')) as { python: string; cases: Case[] };

function decode(e: Encoded): unknown {
  if ('float' in e) return e.float === 'nan' ? NaN : e.float === 'inf' ? Infinity : -Infinity;
  if ('object' in e) return Object.fromEntries(e.object.map(([k, v]) => [k, decode(v)]));
  if ('array' in e) return e.array.map(decode);
  if ('str' in e) {
    let s = '';
    for (let i = 0; i < e.str.length; i += 2) s += String.fromCharCode((e.str[i]! << 8) | e.str[i + 1]!);
    return s;
  }
  if ('bigint' in e) return Number(e.bigint);
  return e.plain;
}

// The expected results are CPython's json.loads (its C scanner, Modules/_json.c), from protocol/test/vectors/python-json.py.
describe(`bodies as Python's json.loads reads them (CPython ${vectors.python}; vLLM 0.10.0's image runs 3.12, same messages)`, () => {
  test.each(vectors.cases.map((c) => [JSON.stringify(c.text), c] as const))('%s', (_name, c) => {
    const got = parsePythonJson(c.text);
    if (c.error !== undefined) {
      expect(got).toEqual({ ok: false, msg: c.error.msg, pos: c.error.pos });
    } else {
      expect(got.ok).toBe(true);
      if (got.ok) expect(got.value).toEqual(decode(c.value!));
    }
  });

  test('every body JSON.parse accepts among the vectors, Python accepts with the same value', () => {
    for (const c of vectors.cases) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(c.text);
      } catch {
        continue;
      }
      expect(c.error).toBeUndefined();
      // Except the sign of an integer zero: JSON.parse('-0') is -0, Python's int is 0 (no body field cares).
      if (c.text === '-0') continue;
      expect(parsePythonJson(c.text)).toEqual({ ok: true, value: parsed });
    }
  });
});

// Exceptions out of json.loads other than JSONDecodeError, which FastAPI answers 400 "There was an error parsing the
// body": RecursionError past CPython 3.12's C recursion budget (Include/cpython/pystate.h C_RECURSION_LIMIT, 10000 on
// Linux in 3.12.10; one per array or object scan_once_unicode enters), ValueError for an integer literal past
// sys.get_int_max_str_digits() (4300, Python >= 3.11; /usr/bin/python3 here raises both, at its own 3.11 depth).
describe('what Python refuses beyond syntax', () => {
  const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

  test('nesting: up to PYTHON_MAX_NESTING levels read, deeper refused (valid or not), in both paths', () => {
    expect(pythonRefusesValidJson(nested(PYTHON_MAX_NESTING))).toBeUndefined();
    // Python's words (CPython 3.11 and 3.12: "while decoding a JSON array|object from a unicode string").
    expect(pythonRefusesValidJson(nested(PYTHON_MAX_NESTING + 1))).toBe('maximum recursion depth exceeded while decoding a JSON array from a unicode string');
    expect(pythonRefusesValidJson(`${'{"a":'.repeat(PYTHON_MAX_NESTING + 1)}1${'}'.repeat(PYTHON_MAX_NESTING + 1)}`)).toBe('maximum recursion depth exceeded while decoding a JSON object from a unicode string');
    expect(pythonRefusesValidJson(`{"a": "${'['.repeat(20_000)}"}`)).toBeUndefined(); // brackets inside a string
    expect(parsePythonJson(`${nested(PYTHON_MAX_NESTING + 1).slice(0, -1)}`)).toEqual({ ok: false, unreadable: 'maximum recursion depth exceeded while decoding a JSON array from a unicode string' });
    expect(parsePythonJson('['.repeat(100_000))).toEqual({ ok: false, unreadable: 'maximum recursion depth exceeded while decoding a JSON array from a unicode string' });
    // Shallow enough, an invalid body is still a decode error with its position.
    expect(parsePythonJson(`${'['.repeat(50)}}`)).toEqual({ ok: false, msg: 'Expecting value', pos: 50 });
  });

  test('integer literals of more than 4300 digits are refused, floats of any length read', () => {
    const digits = (n: number) => '7'.repeat(n);
    expect(pythonRefusesValidJson(`{"a": ${digits(PYTHON_INT_MAX_STR_DIGITS)}}`)).toBeUndefined();
    // Python's words (CPython 3.11.2 here: "… value has 5000 digits; use sys.set_int_max_str_digits() …").
    const refused = 'Exceeds the limit (4300 digits) for integer string conversion: value has 4301 digits; use sys.set_int_max_str_digits() to increase the limit';
    expect(pythonRefusesValidJson(`{"a": ${digits(PYTHON_INT_MAX_STR_DIGITS + 1)}}`)).toBe(refused);
    expect(pythonRefusesValidJson(`{"a": -${digits(PYTHON_INT_MAX_STR_DIGITS + 1)}}`)).toBe(refused);
    expect(pythonRefusesValidJson(`{"a": ${digits(5000)}.5, "b": ${digits(5000)}e2, "c": "${digits(5000)}"}`)).toBeUndefined();
    expect(parsePythonJson(`{"a": NaN, "b": ${digits(PYTHON_INT_MAX_STR_DIGITS + 1)}}`)).toEqual({ ok: false, unreadable: refused });
    expect(parsePythonJson(`{"a": NaN, "b": -${digits(PYTHON_INT_MAX_STR_DIGITS)}}`).ok).toBe(true);
  });
});
