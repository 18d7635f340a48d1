/**
 * `pythonJsonDumps` against CPython 3.11's `json.dumps` (Lib/json/encoder.py), expected texts printed once by
 *   python3 -c 'import json; v = {...}; print(json.dumps(v)); print(json.dumps(json.dumps(v, ensure_ascii=False)))'
 * with the value below (the second line's JSON string decoded here).
 */
import { PythonFloat, pythonJsonDumps } from '../src/openai';

describe('pythonJsonDumps (CPython json.dumps, default separators)', () => {
  const value = {
    error: { object: 'error', message: 'caf\u00e9 \u2028 "q" \\ \n\t\u0001 \u007f \u{1F600}', type: 'BadRequestError', param: null, code: 400 },
    n: [1, 2.5, new PythonFloat(2), new PythonFloat(-0), 1e-7, 1e21, true, false, [], {}],
    skipped: undefined,
  };

  test('ensure_ascii (the default): every character outside " ".."~" escaped, DEL and astral pairs included', () => {
    expect(pythonJsonDumps(value)).toBe(
      '{"error": {"object": "error", "message": "caf\\u00e9 \\u2028 \\"q\\" \\\\ \\n\\t\\u0001 \\u007f \\ud83d\\ude00", "type": "BadRequestError", "param": null, "code": 400}, '
      + '"n": [1, 2.5, 2.0, -0.0, 1e-07, 1000000000000000000000, true, false, [], {}]}',
    );
  });

  test('ensure_ascii=False: only what JSON requires is escaped', () => {
    expect(pythonJsonDumps(value, false)).toBe(JSON.parse(
      '"{\\"error\\": {\\"object\\": \\"error\\", \\"message\\": \\"caf\\u00e9 \\u2028 \\\\\\"q\\\\\\" \\\\\\\\ \\\\n\\\\t\\\\u0001 \\u007f \\ud83d\\ude00\\", \\"type\\": \\"BadRequestError\\", \\"param\\": null, \\"code\\": 400}, '
      + '\\"n\\": [1, 2.5, 2.0, -0.0, 1e-07, 1000000000000000000000, true, false, [], {}]}"',
    ));
  });
});
