import * as fs from 'fs';
import * as path from 'path';
import {
  argumentsRenderLikePython, pythonJson, pythonValuePrinting, RequestFieldError, tojsonMatchesPython, vllmConversation, vllmToolDicts, type NormalizedChatMessage,
} from '../src/openai';
import { refusalOf } from './support/refusal';

// Reference values from real pydantic and CPython over vLLM 0.10.0's models (vllm/entrypoints/openai/protocol.py,
// chat_utils.py `_parse_chat_message_content` / `_postprocess_messages`): protocol/test/vectors/conversation.py.
interface Vectors {
  readonly arguments: { text: string; tojson: string }[];
  readonly bad_arguments: { text: string; error: string }[];
  readonly messages: { name: string; input: NormalizedChatMessage[]; output?: unknown[]; error?: string }[];
  readonly tools: { name: string; input: unknown[]; output?: unknown[]; tojson?: string[]; error?: { loc: (string | number)[]; type: string; msg: string } }[];
}
const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, 'vectors', 'conversation.json'), 'utf8')) as Vectors;

// The package is "type": "module" with a `require` condition pointing at a CommonJS build; a CommonJS file may use its
// typings only as types, so the value comes from require (as in the tokenizer and the simulator).
type JinjaModule = typeof import('@huggingface/jinja', { with: { 'resolution-mode': 'import' } });
const jinja = require('@huggingface/jinja') as JinjaModule;
const { Template } = jinja;
// As the EPP's tokenizer and the simulator load it: Python's printing and json.dumps (the claims below are about these).
pythonValuePrinting(jinja);
pythonJson(jinja);

/** @huggingface/jinja's `tojson`, as the EPP's and the simulator's templates print a value. */
const jsTojson = (value: unknown): string => new Template('{{ value | tojson }}').render({ value });

/** pydantic's ValidationError text without what kvroute leaves out: `input_value`/`input_type` and the doc links. */
const withoutPydanticDetails = (text: string): string => text
  .replace(/, input_value=.*?, input_type=\w+\]/g, ']')
  .replace(/\n {4}For further information visit \S+/g, '');

describe('vLLM 0.10.0 conversation messages (chat_utils.py _parse_chat_message_content, _postprocess_messages)', () => {
  test.each(vectors.messages.filter((c) => c.output !== undefined).map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(vllmConversation(c.input).messages).toStrictEqual(c.output);
  });

  test.each(vectors.messages.filter((c) => c.error !== undefined).map((c) => [c.name, c] as const))('refused: %s', (_name, c) => {
    const refusal = refusalOf(() => vllmConversation(c.input));
    expect(refusal.response).toStrictEqual({ status: 400, message: withoutPydanticDetails(c.error!) });
  });

  test.each(vectors.bad_arguments.map((c) => [c.text, c] as const))('arguments %j: JSONDecodeError as vLLM words it', (_text, c) => {
    const messages = [{ role: 'assistant', content: '', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: c.text } }] }];
    expect(refusalOf(() => vllmConversation(messages)).response).toStrictEqual({ status: 400, message: c.error });
  });

  /**
   * What `tojsonMatchesPython` refuses although jinja would print it right: a lone array-index key keeps its place;
   * text JSON.parse refuses (NaN, Infinity) and lone surrogates, which the patched tojson writes as Python does.
   */
  const CONSERVATIVE = ['{"k": {"10": 1}}', '{"x": NaN}', '{"x": -Infinity}', '{"s": "\\ud800"}'];

  test.each(vectors.arguments.map((c) => [c.text, c] as const))('arguments %j: parsed; when tojsonMatchesPython says so, jinja prints them as Python does', (_text, c) => {
    const messages = [{ role: 'user', content: 'q' }, { role: 'assistant', content: '', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: c.text } }] }];
    const { messages: out, inexact } = vllmConversation(messages);
    const printed = jsTojson(out[1]!.tool_calls![0]!.function.arguments);
    // The claim the EPP keys on: "matches" means jinja's text is Python's (so jinja's differing means "does not").
    const matches = tojsonMatchesPython(c.text);
    if (matches) expect(printed).toBe(c.tojson);
    else expect(printed === c.tojson).toBe(CONSERVATIVE.includes(c.text));
    expect(inexact).toEqual(matches ? undefined : { message: 1, toolCall: 0 });
  });

  test('a template that prints arguments other than as JSON (| items, | string): only strings, integers and floats are exact; the first such call is named', () => {
    const chat = (...args: string[]) => [{ role: 'user', content: 'q' }, { role: 'assistant', content: '', tool_calls: args.map((a, i) => ({ id: `c${i}`, type: 'function', function: { name: 'f', arguments: a } })) }];
    const notJson = { argumentsRendering: 'items' as const };
    expect(vllmConversation(chat('{"path": "/tmp", "n": 3}'), notJson).inexact).toBeUndefined();
    // Floats print as Python's str() (1.0 kept a float: PythonFloat); integers past 2**53 are not what Python holds.
    expect(vllmConversation(chat('{"f": 2.5, "g": 1.0, "h": 1e-05}'), notJson).inexact).toBeUndefined();
    expect(vllmConversation(chat('{"ok": "yes"}', '{"n": 9007199254740993}'), notJson).inexact).toEqual({ message: 1, toolCall: 1 });
    // Python's str(True) is "True", str(None) "None", str({'a': 1}) "{'a': 1}": kvroute does not claim them.
    for (const args of ['{"all": true}', '{"x": null}', '{"o": {"a": 1}}', '{"l": [1]}']) {
      expect(vllmConversation(chat('{"ok": "yes"}', args), notJson).inexact).toEqual({ message: 1, toolCall: 1 });
      expect(vllmConversation(chat('{"ok": "yes"}', args)).inexact).toBeUndefined();
    }
    expect(argumentsRenderLikePython('"text"', 'text', 'items')).toBe(true);
    // Printed whole ({{ arguments }}: Python's repr, JavaScript's JSON), only a string argument renders alike.
    expect(argumentsRenderLikePython('{"a": "b"}', { a: 'b' }, 'opaque')).toBe(false);
    expect(argumentsRenderLikePython('"text"', 'text', 'opaque')).toBe(true);
    // A template that never prints arguments: nothing in them can make the prompt differ.
    expect(vllmConversation(chat('{"all": true, "f": 1.0}'), { argumentsRendering: 'none' }).inexact).toBeUndefined();
  });

  test('arguments json.loads raises on beyond syntax: vLLM\'s 400 with Python\'s RecursionError or ValueError text (serving_chat.py catches RuntimeError and ValueError)', () => {
    const call = (args: string) => [{ role: 'assistant', content: '', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: args } }] }];
    expect(refusalOf(() => vllmConversation(call(`${'['.repeat(20_000)}${']'.repeat(20_000)}`))).response)
      .toStrictEqual({ status: 400, message: 'maximum recursion depth exceeded while decoding a JSON array from a unicode string None' });
    expect(refusalOf(() => vllmConversation(call(`{"n": ${'9'.repeat(5000)}}`))).response)
      .toStrictEqual({ status: 400, message: 'Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit None' });
  });

  test('arguments nested past 64 levels are inexact, not a stack overflow (Python\'s json.loads reads 10,000)', () => {
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    expect(tojsonMatchesPython(deep)).toBe(false);
    expect(tojsonMatchesPython(`${'['.repeat(64)}${']'.repeat(64)}`)).toBe(true);
    expect(tojsonMatchesPython(`${'['.repeat(65)}${']'.repeat(65)}`)).toBe(false);
  });

  test('the vectors hold both kinds of arguments', () => {
    const matching = vectors.arguments.filter((c) => tojsonMatchesPython(c.text)).length;
    expect(matching).toBeGreaterThan(10);
    expect(vectors.arguments.length - matching).toBeGreaterThan(4);
  });
});

describe('vLLM 0.10.0 tool dicts ([tool.model_dump() for tool in request.tools], serving_chat.py)', () => {
  test.each(vectors.tools.filter((c) => c.output !== undefined).map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const dumped = vllmToolDicts(c.input);
    expect(dumped).toStrictEqual(c.output);
    expect(dumped.map(jsTojson)).toStrictEqual(c.tojson);
  });

  test.each(vectors.tools.filter((c) => c.error !== undefined).map((c) => [c.name, c] as const))('refused: %s', (_name, c) => {
    let error: unknown;
    try {
      vllmToolDicts(c.input);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RequestFieldError);
    const { loc, type, msg } = error as RequestFieldError;
    expect({ loc, type, msg }).toStrictEqual(c.error);
  });
});
