#!/usr/bin/python3
"""Golden vectors for protocol/test/python-json.test.ts: what CPython's json.loads says of each body (its C scanner,
Modules/_json.c), as FastAPI reports it in a json_invalid error (e.msg, e.pos), or the value it accepts.

vLLM 0.10.0's image runs Python 3.12 (docker/Dockerfile PYTHON_VERSION=3.12); 3.11 and 3.12 give the same messages
and positions (3.13 rewords trailing commas). The script records the interpreter that generated the file.

Run: /usr/bin/python3 protocol/test/vectors/python-json.py   (rewrites python-json.json beside this file)
"""
import json
import math
import os
import sys

CASES = [
    '', ' ', '{', '[', '}', ']', '{"a"', '{"a":', '{"a":1', '{"a":1,', '{"a":1,}', '[1,]', '[1 2]', '{"a" 1}',
    '{"a":1 "b":2}', "{'a':1}", '{a:1}', '{"a":tru}', '{"a":nul}', '{"a":-}', '{"a":-x}', '{"a":01}', '01',
    '{"a":1.}', '{"a":1.e5}', '{"a":1e}', '{"a":1e+}', '{"a":1e5x}', '1e5', '-0', '-0.5e-3', '{"a":.5}',
    '{"a":"x\ny"}', '{"a":"x\ty"}', '{"a":"\x1f"}', '{"a":"unterminated', '{"a":"x\\', '{"a":"\\q"}',
    '{"a":"\\u12"}', '{"a":"\\u12G4"}', '{"a":"\\u1234', '{"a":"\\ud83d\\u00e9"}', '{"a":"\\ud83d\\ude00"}',
    '{"a":"\\ud83d\\uZZZZ"}', '{"a":"\\ud83d"}', '{"a":"\\ude00"}', '{"a":"\\/\\b\\f\\n\\r\\t\\"\\\\"}',
    '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":Nan}', '{"a":-Inf}', '{"a":infinity}',
    '{"a":1} x', '{"a":1}\n\n', '\t{"a":[1,{"b":null}]} ', '{"a":1}{"b":2}', '[]', '{}', '[ ]', '{ }',
    '{"a":1,"a":2}', '{"😀":"é","x":}', '{"😀😀":1,}', '{"a":"😀"} 😀', 'true', 'nul', 'tru', 'fals',
    '{"model": "m", "messages": [{"role": "user", "content": "hi"}],}', '{"max_tokens": 5,, "x": 1}',
    '{"a":[1,2,3]', '{"a":{"b":{"c":1}}', '[[[[', '"just a string"', '"abc', '\u00a0{}', '{"a":1}\u00a0',
    '{"a":\u00a01}', '{"a":1}\x00', '{"a":12345678901234567890}', '{"a":1E400}', '{"a":-1E400}',
]


def case(text):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return {'text': text, 'error': {'msg': e.msg, 'pos': e.pos}}
    def encode(v):
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            return {'float': repr(v)}
        if isinstance(v, dict):
            return {'object': [[k, encode(x)] for k, x in v.items()]}
        if isinstance(v, list):
            return {'array': [encode(x) for x in v]}
        if isinstance(v, str):
            # Lone surrogates cannot go through JSON's UTF-8: write the UTF-16 code units.
            return {'str': list(v.encode('utf-16-be', 'surrogatepass'))}
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53:
            return {'bigint': str(v)}
        return {'plain': v}
    return {'text': text, 'value': encode(value)}


out = {'python': sys.version.split()[0], 'cases': [case(t) for t in CASES]}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'python-json.json'), 'w') as f:
    json.dump(out, f, indent=1, ensure_ascii=True)
    f.write('\n')
