import * as fs from 'fs';
import * as path from 'path';
import {
  ChatTemplateRefusal, RequestFieldError, tojsonMatchesPython, vllmConversation, vllmToolDicts, type NormalizedChatMessage,
} from '../src/openai';

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
const { Template } = require('@huggingface/jinja') as JinjaModule;

/** @huggingface/jinja's `tojson`, as the EPP's and the simulator's templates print a value. */
const jsTojson = (value: unknown): string => new Template('{{ value | tojson }}').render({ value });

/** pydantic's ValidationError text without what kvroute leaves out: `input_value`/`input_type` and the doc links. */
const withoutPydanticDetails = (text: string): string => text
  .replace(/, input_value=.*?, input_type=\w+\]/g, ']')
  .replace(/\n {4}For further information visit \S+/g, '');

function refusalOf(run: () => unknown): ChatTemplateRefusal {
  try {
    run();
  } catch (e) {
    if (e instanceof ChatTemplateRefusal) return e;
    throw e;
  }
  throw new Error('no refusal');
}

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

  /** What `tojsonMatchesPython` refuses although jinja would print it right: a lone array-index key keeps its place. */
  const CONSERVATIVE = ['{"k": {"10": 1}}'];

  test.each(vectors.arguments.map((c) => [c.text, c] as const))('arguments %j: parsed; when tojsonMatchesPython says so, jinja prints them as Python does', (_text, c) => {
    const messages = [{ role: 'user', content: 'q' }, { role: 'assistant', content: '', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: c.text } }] }];
    const { messages: out, inexactFrom } = vllmConversation(messages);
    const printed = jsTojson(out[1]!.tool_calls![0]!.function.arguments);
    // The claim the EPP keys on: "matches" means jinja's text is Python's (so jinja's differing means "does not").
    const matches = tojsonMatchesPython(c.text);
    if (matches) expect(printed).toBe(c.tojson);
    else expect(printed === c.tojson).toBe(CONSERVATIVE.includes(c.text));
    expect(inexactFrom).toBe(matches ? undefined : 1);
  });

  test('the vectors hold both kinds of arguments', () => {
    const matching = vectors.arguments.filter((c) => tojsonMatchesPython(c.text)).length;
    expect(matching).toBeGreaterThan(10);
    expect(vectors.arguments.length - matching).toBeGreaterThan(10);
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
