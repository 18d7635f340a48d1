import * as fs from 'fs';
import * as path from 'path';
import { hasIntegralFloat, parseRequestBody, pythonJson, PythonFloat, pythonStringMethods, pythonValuePrinting, topLevelMemberTexts, type PromptInput } from '../src/openai';

// Reference values from CPython's json and real jinja2 in transformers' environment (protocol/test/vectors/python-floats.py).
interface Case {
  readonly body: string;
  readonly template: string;
  readonly out: string | null;
  readonly error: string | null;
}
const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, 'vectors', 'python-floats.json'), 'utf8')) as { cases: Case[] };

type JinjaModule = typeof import('@huggingface/jinja', { with: { 'resolution-mode': 'import' } });
const jinja = require('@huggingface/jinja') as JinjaModule;

/** The variables vLLM hands the template for this body: `tools` and the kwargs, as kvroute reads them from the body. */
function context(body: string): Record<string, unknown> {
  const input = parseRequestBody(Buffer.from(body, 'utf8')).input as Extract<PromptInput, { kind: 'chat' }>;
  return { tools: input.tools ?? null, ...(input.chatTemplateKwargs ?? {}) };
}

function render(c: Case, variables: Record<string, unknown>): string | Error {
  try {
    return new jinja.Template(c.template).render(variables);
  } catch (e) {
    return e as Error;
  }
}

describe('Python floats and json.dumps in chat templates (vLLM 0.10.0: json.loads, pydantic dict[str, Any], transformers 4.53 tojson)', () => {
  test('unpatched, and from JSON.parse alone, @huggingface/jinja 0.5.11 renders most of these bodies unlike vLLM: the reason for the patch', () => {
    const wrong = vectors.cases.filter((c) => render(c, JSON.parse(c.body).tools === undefined ? {} : { tools: JSON.parse(c.body).tools, ...(JSON.parse(c.body).chat_template_kwargs ?? {}) }) !== c.out);
    expect(vectors.cases.length).toBe(459);
    expect(wrong.length).toBeGreaterThan(200);
  });

  test('patched, with the floats read as Python reads them, every one of the 459 renders is jinja2\'s', () => {
    pythonStringMethods(jinja);
    pythonValuePrinting(jinja);
    pythonJson(jinja);
    const mismatches = vectors.cases
      .map((c) => ({ c, got: render(c, context(c.body)) }))
      .filter(({ c, got }) => got !== c.out)
      .map(({ c, got }) => `${c.template}\n  body ${c.body.slice(0, 200)}\n  want ${c.out}\n  got  ${got instanceof Error ? `${got.name}: ${got.message}` : got}`);
    expect(mismatches).toEqual([]);
  });

  test('patched but from JSON.parse alone (0.0 read as 0), most renders still differ: the floats must be read as Python reads them', () => {
    const wrong = vectors.cases.filter((c) => {
      const plain = JSON.parse(c.body) as { tools?: unknown; chat_template_kwargs?: Record<string, unknown> };
      return render(c, { tools: plain.tools ?? null, ...(plain.chat_template_kwargs ?? {}) }) !== c.out;
    });
    expect(wrong.length).toBeGreaterThan(200);
  });

  test('bodies without such a float are read once: the plain parse stands, numbers stay numbers', () => {
    const body = '{"messages": [{"role": "user", "content": "1.0"}], "tools": [{"function": {"name": "f", "parameters": {"minimum": 0.5, "n": 3}}}], "chat_template_kwargs": {"k": 2}}';
    const input = parseRequestBody(Buffer.from(body)).input as Extract<PromptInput, { kind: 'chat' }>;
    expect(input.tools).toEqual([{ function: { name: 'f', parameters: { minimum: 0.5, n: 3 } } }]);
    expect(input.chatTemplateKwargs).toEqual({ k: 2 });
  });

  test('hasIntegralFloat: number tokens outside strings, escaped quotes included', () => {
    expect(hasIntegralFloat('{"a": 1.0}')).toBe(true);
    expect(hasIntegralFloat('[2e3]')).toBe(true);
    expect(hasIntegralFloat('[-0.0]')).toBe(true);
    expect(hasIntegralFloat('[1.5, 2, 1e-5, 1e400]')).toBe(false); // 1e400 is infinite, not integral
    expect(hasIntegralFloat('{"a": "1.0", "b\\"": "x \\" 2.0"}')).toBe(false);
    expect(hasIntegralFloat('{"a\\\\": 3.0}')).toBe(true);
  });

  test('topLevelMemberTexts: the last of a repeated member, escaped names decoded, nothing below the top level', () => {
    const body = Buffer.from('{"tools": [1], "x": {"tools": 2}, "tool\\u0073" : [ 3.0 ] , "chat_template_kwargs": {"k": 1.0}}');
    expect([...topLevelMemberTexts(body, new Set(['tools', 'chat_template_kwargs']))]).toEqual([['tools', '[ 3.0 ]'], ['chat_template_kwargs', '{"k": 1.0}']]);
    const input = parseRequestBody(Buffer.from('{"messages": [{"role": "user", "content": "x"}], "tools": [{"function": {"name": "f", "parameters": {"m": 0.0, "n": 0}}}]}')).input as Extract<PromptInput, { kind: 'chat' }>;
    const parameters = (input.tools![0] as { function: { parameters: Record<string, unknown> } }).function.parameters;
    expect(parameters.m).toEqual(new PythonFloat(0));
    expect(parameters.n).toBe(0);
  });
});
