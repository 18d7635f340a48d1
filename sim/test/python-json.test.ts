import * as fs from 'fs';
import * as path from 'path';
import { parsePythonJson } from '../src/python-json';

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

// The expected results are CPython's json.loads (its C scanner, Modules/_json.c), from sim/test/vectors/python-json.py.
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
