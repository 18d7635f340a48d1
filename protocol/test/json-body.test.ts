import { JsonBodyTooDenseError, MAX_JSON_VALUES, MAX_NESTING, MAX_SPLIT_DEPTH, parseJsonBody, topLevelMemberTexts, WHOLE_PARSE_MAX_BYTES } from '../src/openai/json-body';
import { parseRequestBody, RequestBodyError } from '../src/openai/request';

/** A seeded generator (LCG), so every document and corruption is the same on every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

// Characters that stress the splitter: quotes and backslashes (escaped in JSON), structural characters inside strings,
// multi-byte UTF-8 (two, three and four bytes), a character outside Latin-1 (V8 then stores two bytes a character).
const ALPHABET = ['a', 'b', ' ', '"', '\\', '{', '}', '[', ']', ',', ':', '\n', '\t', 'é', '中', '😀', 'ü', '\u2028', 'x'];

function randomString(rnd: () => number, maxLen: number): string {
  const n = Math.floor(rnd() * maxLen);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rnd() * ALPHABET.length)];
  return s;
}

const KEYS = ['model', 'messages', 'content', 'role', '__proto__', 'constructor', '0', '17', 'a"b', 'k\\', 'ключ'];

function randomValue(rnd: () => number, depth: number): unknown {
  const r = rnd();
  if (depth > 3 || r < 0.35) {
    const p = rnd();
    if (p < 0.55) return randomString(rnd, p < 0.1 ? 400 : 40);
    if (p < 0.7) return Math.floor(rnd() * 2e6) - 1e6 + (rnd() < 0.3 ? 0.25 : 0);
    if (p < 0.8) return rnd() < 0.5;
    if (p < 0.9) return null;
    return rnd() * 1e-9;
  }
  if (r < 0.65) return Array.from({ length: Math.floor(rnd() * 6) }, () => randomValue(rnd, depth + 1));
  return randomObject(rnd, depth + 1);
}

function randomObject(rnd: () => number, depth: number): Record<string, unknown> {
  // Built as source text below, so that repeated keys and __proto__ reach the parser as written.
  const members: Array<[string, unknown]> = [];
  const n = Math.floor(rnd() * 6);
  for (let i = 0; i < n; i++) members.push([KEYS[Math.floor(rnd() * KEYS.length)]!, randomValue(rnd, depth)]);
  return { [MEMBERS]: members } as unknown as Record<string, unknown>;
}
const MEMBERS = Symbol('members');

/** Source text with random JSON whitespace between tokens, repeated keys kept. */
function toSource(v: unknown, rnd: () => number): string {
  const ws = () => [' ', '', '\n', '\t', '\r\n', '  '][Math.floor(rnd() * 6)]!;
  if (Array.isArray(v)) return `[${ws()}${v.map((e) => toSource(e, rnd)).join(`${ws()},${ws()}`)}${ws()}]`;
  if (v !== null && typeof v === 'object') {
    const members = (v as Record<symbol, Array<[string, unknown]>>)[MEMBERS]!;
    return `{${ws()}${members.map(([k, e]) => `${JSON.stringify(k)}${ws()}:${ws()}${toSource(e, rnd)}`).join(`${ws()},${ws()}`)}${ws()}}`;
  }
  return JSON.stringify(v);
}

/** `JSON.parse`'s result, or the fact that it threw. */
function reference(text: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

/** Deep equality that also compares key order and which objects have an own `__proto__` (toEqual does not). */
function expectSame(actual: unknown, expected: unknown): void {
  expect(JSON.stringify(actual)).toBe(JSON.stringify(expected));
  expect(actual).toEqual(expected);
  const protos = (v: unknown, out: string[] = []): string[] => {
    if (v !== null && typeof v === 'object') {
      out.push(`${Object.getPrototypeOf(v) === (Array.isArray(v) ? Array.prototype : Object.prototype)}:${Object.prototype.hasOwnProperty.call(v, '__proto__')}`);
      for (const e of Object.values(v as object)) protos(e, out);
    }
    return out;
  };
  expect(protos(actual)).toEqual(protos(expected));
}

/** What `run` returns, and the length of every string Buffer#toString decoded while it ran. */
function withDecodedLengths<T>(run: () => T): { result: T; decoded: number[] } {
  const decoded: number[] = [];
  const toString = Buffer.prototype.toString;
  const spy = jest.spyOn(Buffer.prototype, 'toString').mockImplementation(function (this: Buffer, ...args: unknown[]) {
    const s = (toString as (...a: unknown[]) => string).apply(this, args);
    decoded.push(s.length);
    return s;
  });
  try {
    return { result: run(), decoded };
  } finally {
    spy.mockRestore();
  }
}

describe('parseJsonBody: JSON.parse for bodies longer than V8 regular heap objects', () => {
  // Small limits split even small documents at every level, so the pieces' seams are exercised thousands of times.
  const limits = [1, 8, 40, 200];

  test('equals JSON.parse on generated documents (strings with escapes, multi-byte UTF-8, repeated keys, __proto__)', () => {
    const rnd = lcg(1);
    let checked = 0;
    for (let doc = 0; doc < 400; doc++) {
      const root = rnd() < 0.8 ? randomObject(rnd, 0) : randomValue(rnd, 0);
      const source = Buffer.from(`${rnd() < 0.3 ? ' \n' : ''}${toSource(root, rnd)}${rnd() < 0.3 ? '\r\n ' : ''}`);
      const ref = reference(source);
      expect(ref.ok).toBe(true);
      for (const limit of limits) {
        expectSame(parseJsonBody(source, limit), (ref as { value: unknown }).value);
        checked++;
      }
    }
    expect(checked).toBe(400 * limits.length);
  });

  test('throws exactly where JSON.parse throws, on corrupted documents (a byte deleted, inserted or replaced, or cut short)', () => {
    const rnd = lcg(2);
    const insertable = ['"', '\\', ',', ':', '{', '}', '[', ']', ' ', 'x', '0', '\u00e9', '\n'];
    let invalid = 0;
    for (let doc = 0; doc < 400; doc++) {
      const text = toSource(randomObject(rnd, 0), rnd);
      for (let k = 0; k < 6; k++) {
        const bytes = Buffer.from(text);
        const at = Math.floor(rnd() * bytes.length);
        const op = Math.floor(rnd() * 4);
        const piece = Buffer.from(insertable[Math.floor(rnd() * insertable.length)]!);
        const corrupted = op === 0 ? Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)])
          : op === 1 ? Buffer.concat([bytes.subarray(0, at), piece, bytes.subarray(at)])
            : op === 2 ? Buffer.concat([bytes.subarray(0, at), piece, bytes.subarray(at + 1)])
              : bytes.subarray(0, at);
        const ref = reference(corrupted);
        if (!ref.ok) invalid++;
        for (const limit of limits) {
          if (ref.ok) expectSame(parseJsonBody(corrupted, limit), ref.value);
          else expect(() => parseJsonBody(corrupted, limit)).toThrow(SyntaxError);
        }
      }
    }
    // The corruptions must produce plenty of invalid documents, or the test proves little.
    expect(invalid).toBeGreaterThan(1000);
  });

  test('invalid UTF-8 decodes as JSON.parse(body.toString()) decodes it (replacement characters), split or not', () => {
    const bad = Buffer.concat([Buffer.from('{"a":"x'), Buffer.from([0xe4, 0xb8]), Buffer.from('","b":["'), Buffer.from([0xff, 0xf0, 0x9f]), Buffer.from('"]}')]);
    for (const limit of limits) expectSame(parseJsonBody(bad, limit), JSON.parse(bad.toString('utf8')));
  });

  test('a 128 KiB chat request is decoded piece by piece, never whole: no piece longer than the limit or its longest string', () => {
    const decodedLengths = (body: Buffer) => {
      const { result, decoded } = withDecodedLengths(() => parseRequestBody(body));
      return { parsed: result, decoded };
    };
    // Three turns of ~44 KiB: every piece fits the limit.
    const turn = 'word '.repeat(9 * 1024);
    const messages = [{ role: 'system', content: turn }, { role: 'user', content: `${turn}?` }, { role: 'assistant', content: `${turn}!` }];
    const body = Buffer.from(JSON.stringify({ model: 'm', messages, stream: true }));
    expect(body.length).toBeGreaterThan(128 * 1024);
    const small = decodedLengths(body);
    expect(small.decoded.length).toBeGreaterThan(1);
    expect(Math.max(...small.decoded)).toBeLessThanOrEqual(WHOLE_PARSE_MAX_BYTES);
    expect(small.parsed.model).toBe('m');
    expect(small.parsed.stream).toBe(true);
    // Compared as text: a failing toEqual would print the whole prompt.
    const contents = (parsed: ReturnType<typeof parseRequestBody>) => JSON.stringify(parsed.input.kind === 'chat' ? parsed.input.messages.map((m) => [m.role, m.content]) : parsed.input);
    expect(contents(small.parsed) === JSON.stringify(messages.map((m) => [m.role, m.content]))).toBe(true);
    // The benchmark's shape: a 115 KiB system prompt and a 13 KiB question. The long string is one piece (the parsed
    // value is that string anyway), the body as a whole never.
    const system = 'word '.repeat(23 * 1024);
    const question = 'ask '.repeat(3 * 1024);
    const bench = Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'system', content: system }, { role: 'user', content: question }] }));
    const large = decodedLengths(bench);
    expect(Math.max(...large.decoded)).toBe(JSON.stringify(system).length);
    expect(contents(large.parsed) === JSON.stringify([['system', system], ['user', question]])).toBe(true);
  });

  test('many small members or elements are parsed in runs, not one JSON.parse each', () => {
    const body = Buffer.from(JSON.stringify({ logit_bias: Object.fromEntries(Array.from({ length: 20000 }, (_, i) => [String(i), i % 7])), stop: Array.from({ length: 20000 }, (_, i) => `s${i}`) }));
    expect(body.length).toBeGreaterThan(4 * WHOLE_PARSE_MAX_BYTES);
    const parse = jest.spyOn(JSON, 'parse');
    let value: unknown;
    try {
      value = parseJsonBody(body);
    } finally {
      parse.mockRestore();
    }
    expectSame(value, JSON.parse(body.toString('utf8')));
    expect(parse.mock.calls.length).toBeLessThan(20);
  });

  test('a body nested thousands deep is parsed as JSON.parse parses it: split only to MAX_SPLIT_DEPTH, no stack overflow, a few passes', () => {
    const deep = (levels: number, inner: string) => Buffer.from(`${'['.repeat(levels)}${inner}${']'.repeat(levels)}`);
    // Large at every level, so every level would be split without the depth bound: 10,000 frames deep (the most
    // MAX_NESTING lets through), and a pass over the body per level (quadratic).
    const cases = [deep(MAX_NESTING, JSON.stringify('x'.repeat(70_000))), deep(1_000, `[${'0,'.repeat(40_000)}0]`)];
    for (const body of cases) {
      const { result: value, decoded } = withDecodedLengths(() => parseJsonBody(body));
      // Compared level by level (JSON.stringify and toEqual recurse, and overflow at this depth).
      const unwrap = (v: unknown): [number, string] => {
        let levels = 0;
        while (Array.isArray(v) && v.length === 1 && Array.isArray(v[0])) { v = v[0]; levels++; }
        return [levels, JSON.stringify(v)];
      };
      const [gotLevels, gotLeaf] = unwrap(value);
      const [wantLevels, wantLeaf] = unwrap(JSON.parse(body.toString('utf8')));
      expect(gotLevels).toBe(wantLevels);
      expect(gotLeaf === wantLeaf).toBe(true);
      // The container at MAX_SPLIT_DEPTH + 1 is read whole, in one piece: everything below the split levels.
      expect(decoded).toHaveLength(1);
      expect(decoded[0]).toBe(body.length - 2 * (MAX_SPLIT_DEPTH + 1));
    }
  });

  test('a long body nested deeper than MAX_NESTING (10,000: Go encoding/json\'s and Python json\'s limit) is refused before any parse: a 400', () => {
    expect(MAX_NESTING).toBe(10_000);
    const deep = (levels: number, open: string, close: string) =>
      Buffer.from(`{"model":"m","prompt":"${'p'.repeat(WHOLE_PARSE_MAX_BYTES)}","x":${open.repeat(levels - 1)}0${close.repeat(levels - 1)}}`);
    // The body's object is level 1: MAX_NESTING levels in all are read, one more is not.
    expect((parseJsonBody(deep(MAX_NESTING, '[', ']')) as { model: string }).model).toBe('m');
    expect(() => parseJsonBody(deep(MAX_NESTING + 1, '[', ']'))).toThrow(/containers nested deeper than 10000 at byte \d+/);
    expect(() => parseJsonBody(deep(MAX_NESTING + 1, '{"a":', '}'))).toThrow(/containers nested deeper than 10000/);
    // Refused where the nesting passes the limit, without reading on: a body nested millions deep costs no more.
    let err: unknown;
    try {
      parseRequestBody(deep(2_000_000, '[', ']'), '/v1/completions');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RequestBodyError);
    expect((err as RequestBodyError).status).toBe(400);
    expect((err as RequestBodyError).code).toBe('invalid_json');
    // The 10,001st container: the body's object, then the 10,000th bracket of `x` (which starts after the prompt).
    const at = `{"model":"m","prompt":"${'p'.repeat(WHOLE_PARSE_MAX_BYTES)}","x":`.length + MAX_NESTING - 1;
    expect((err as Error).message).toMatch(new RegExp(`^request body is not valid JSON: containers nested deeper than 10000 at byte ${at} of`));
  });

  test('a short body nested deeper than MAX_NESTING is parsed whole as before, and reading its members again does not refuse it', () => {
    // JSON.parse reads a body up to WHOLE_PARSE_MAX_BYTES at any depth; `tools` holding an integer makes the chat parser
    // read the top-level members again (templateMembersWithFloats → topLevelMemberTexts), which walks every member.
    const deep = `${'['.repeat(MAX_NESTING + 1)}${']'.repeat(MAX_NESTING + 1)}`;
    const chat = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', minProperties: 1 } } }] });
    const body = Buffer.from(`${chat.slice(0, -1)},"x":${deep}}`);
    expect(body.length).toBeLessThanOrEqual(WHOLE_PARSE_MAX_BYTES);
    const parsed = parseRequestBody(body, '/v1/chat/completions');
    expect(parsed.model).toBe('m');
    expect(topLevelMemberTexts(body, new Set(['tools'])).get('tools')).toBe(JSON.stringify(JSON.parse(chat).tools));
  });

  test('with refuseOutOfRange (the EPP\'s parsers), a number out of float64\'s range (JSON.parse reads ±Infinity) is refused, short body or long, as Go\'s encoding/json refuses it: a 400 (GIE v1.5.0 parsers/openai/openai.go ParseRequest json.Unmarshal, director.go processRequestBody BadRequest); without it, ±Infinity, as Python\'s json (vLLM) reads it', () => {
    const finite = { refuseOutOfRange: true };
    for (const text of ['{"model":"m","prompt":"p","max_tokens":1e400}', '{"model":"m","prompt":"p","temperature":-1e309}', `{"model":"m","prompt":"p","n":[${'9'.repeat(400)}]}`, `{"model":"m","prompt":"p","x":2${'0'.repeat(209)}e99}`, '{"model":"m","prompt":"p","x":0.5e0309}']) {
      expect(() => parseJsonBody(Buffer.from(text), undefined, undefined, finite)).toThrow(/number out of range/);
      const long = Buffer.from(text.replace('"p"', `"${'p'.repeat(WHOLE_PARSE_MAX_BYTES)}"`));
      expect(() => parseJsonBody(long, undefined, undefined, finite)).toThrow(/number out of range/);
      expect(parseJsonBody(Buffer.from(text))).toEqual(JSON.parse(text));
      expect(parseJsonBody(long)).toEqual(JSON.parse(long.toString('utf8')));
      let err: unknown;
      try {
        parseRequestBody(Buffer.from(text), '/v1/completions', finite);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RequestBodyError);
      expect((err as RequestBodyError).status).toBe(400);
      expect((err as RequestBodyError).code).toBe('invalid_json');
    }
    // The largest doubles, and an underflow to 0 (Go's strconv.ParseFloat reports only overflow), are read.
    expect(parseJsonBody(Buffer.from('[1.7976931348623157e308,-1.7976931348623157e308,1e-400]'), undefined, undefined, finite)).toEqual([1.7976931348623157e308, -1.7976931348623157e308, 0]);
  });

  test('a long body with more values than its budget (commas and containers) is refused before any parse; a short one is parsed whole', () => {
    const body = (values: string) => Buffer.from(`{"model":"m","prompt":"${'p'.repeat(WHOLE_PARSE_MAX_BYTES)}","x":[${values}]}`);
    // Commas: two between the members, then those of `x`; containers: the body's object and `x`. 10 in all here.
    const six = body('0,0,0,0,0,0,0');
    expect(parseJsonBody(six, WHOLE_PARSE_MAX_BYTES, 10)).toEqual(JSON.parse(six.toString('utf8')));
    expect(() => parseJsonBody(body('0,0,0,0,0,0,0,0'), WHOLE_PARSE_MAX_BYTES, 10)).toThrow(JsonBodyTooDenseError);
    expect(() => parseJsonBody(body('[],[],[],[],[],[]'), WHOLE_PARSE_MAX_BYTES, 10)).toThrow(/^more than 10 JSON values \(at byte \d+ of \d+\)$/);
    // Within one string, commas and brackets are text.
    expect((parseJsonBody(Buffer.from(`{"prompt":"${',[{'.repeat(WHOLE_PARSE_MAX_BYTES)}"}`), WHOLE_PARSE_MAX_BYTES, 10) as { prompt: string }).prompt).toHaveLength(3 * WHOLE_PARSE_MAX_BYTES);
    // A body parsed whole is not counted.
    const short = Buffer.from(`[${'0,'.repeat(100)}0]`);
    expect(parseJsonBody(short, WHOLE_PARSE_MAX_BYTES, 10)).toHaveLength(101);
  });

  test('a request body of more than MAX_JSON_VALUES values is a 413 request_too_large, refused where the budget runs out', () => {
    expect(MAX_JSON_VALUES).toBe(2_000_000);
    // A token-id prompt of MAX_JSON_VALUES + 1 ids: 4 MB, which JSON.parse would take the best part of a second to read.
    const head = '{"model":"m","prompt":[';
    const dense = Buffer.from(`${head}${'0,'.repeat(MAX_JSON_VALUES)}0]}`);
    let err: unknown;
    try {
      parseRequestBody(dense, '/v1/completions');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RequestBodyError);
    expect([(err as RequestBodyError).status, (err as RequestBodyError).code]).toEqual([413, 'request_too_large']);
    // The body's object, `prompt`'s array and the comma between the members leave MAX_JSON_VALUES - 3 commas of ids.
    const at = head.length + 2 * (MAX_JSON_VALUES - 3) + 1;
    expect((err as Error).message).toBe(`request body has more than ${MAX_JSON_VALUES} JSON values (at byte ${at} of ${dense.length})`);
  });

  test('a member whose name and value together pass the limit is parsed on its own, never in a run longer than the limit', () => {
    const name = 'k'.repeat(40 * 1024);
    const body = Buffer.from(JSON.stringify({ a: 1, [name]: 'v'.repeat(40 * 1024), b: [2], c: 'w'.repeat(30 * 1024) }));
    const { result: value, decoded } = withDecodedLengths(() => parseJsonBody(body));
    expectSame(value, JSON.parse(body.toString('utf8')));
    expect(Math.max(...decoded)).toBeLessThanOrEqual(WHOLE_PARSE_MAX_BYTES);
  });

  test('errors name the byte where the structure broke; request bodies still say "not valid JSON"', () => {
    const long = 'x'.repeat(WHOLE_PARSE_MAX_BYTES);
    expect(() => parseJsonBody(Buffer.from(`{"a":"${long}" "b":1}`))).toThrow(/expected a comma or a closing brace at byte \d+/);
    expect(() => parseJsonBody(Buffer.from(`{"a":"${long}"`))).toThrow(/unterminated/);
    expect(() => parseJsonBody(Buffer.from(`["${long}",]`))).toThrow(/expected a value/);
    expect(() => parseRequestBody(Buffer.from(`{"messages":[{"role":"user","content":"${long}"}],}`))).toThrow(/^request body is not valid JSON: /);
  });
});
