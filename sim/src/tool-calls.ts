/**
 * A named `tool_choice` and `tool_choice: "required"`, as vLLM answers them with guided decoding
 * (protocol.py `_get_guided_json_from_tool`, serving_chat.py `chat_completion_full_generator` and
 * `chat_completion_stream_generator` @ 6eca337ce; 61aa4b290 where noted). The simulated model writes the smallest
 * instance of the guiding JSON schema; its tokens are the reply (so `completion_tokens` counts them).
 */
import { pyStr } from './openai';
import { isDict, pythonJsonDumps } from '@kvroute/protocol/openai';

type Json = Record<string, unknown>;

/** What the guided reply is, and how the response shows it. */
export type ToolOutput =
  /** A named tool: `arguments` is the reply text (guided by the tool's parameters when they are a non-empty dict). */
  | { readonly kind: 'named'; readonly name: string; readonly text: string | undefined }
  /** "required": the reply is `[{"name": …, "parameters": …}]`, parsed into tool calls. */
  | { readonly kind: 'required'; readonly text: string };

/**
 * The guided reply for the request's tool choice, or undefined for none. For a named tool, `_get_guided_json_from_tool()
 * or self.guided_json` is the tool's `parameters`, so parameters that are None or `{}` (falsy) guide nothing and the
 * reply stays filler (`text` undefined). For "required" (protocol.py @ 6eca337ce lines 714-767) the schema is an array
 * of at least one `{name: enum [tool name], parameters: tool parameters or {"type": "object", "properties": {}}}`: the
 * simulated model calls the first tool.
 */
export function toolOutput(toolChoice: unknown, tools: readonly unknown[] | undefined): ToolOutput | undefined {
  const functionOf = (t: unknown): Json => (isDict(t) && isDict(t.function) ? t.function : {});
  if (isDict(toolChoice) && isDict(toolChoice.function)) {
    const name = String(toolChoice.function.name);
    const fn = (tools ?? []).map(functionOf).find((f) => f.name === name);
    const params = fn?.parameters;
    const guided = isDict(params) && Object.keys(params).length > 0;
    return { kind: 'named', name, text: guided ? pythonJsonDumps(schemaInstance(params, params)) : undefined };
  }
  if (toolChoice === 'required' && tools !== undefined && tools.length > 0) {
    const fn = functionOf(tools[0]);
    const params = isDict(fn.parameters) && Object.keys(fn.parameters).length > 0 ? fn.parameters : { type: 'object', properties: {} };
    return { kind: 'required', text: pythonJsonDumps([{ name: fn.name, parameters: schemaInstance(params, params) }]) };
  }
  return undefined;
}

/**
 * The smallest value a JSON schema admits, as the simulated model writes it: `const`, the first `enum`, the first of
 * `anyOf`/`oneOf`, `allOf` merged, a local `$ref` followed; an object with its required properties (each its own
 * smallest value), an empty array (or `minItems` smallest items), "" (or `minLength` "a"s), the minimum number or 0,
 * false, null.
 */
export function schemaInstance(schema: unknown, root: Json, depth = 0): unknown {
  if (!isDict(schema) || depth > 32) return {};
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if (typeof schema.$ref === 'string') {
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(schema.$ref);
    const defs = m ? root[m[1]] : undefined;
    return schemaInstance(isDict(defs) ? defs[m![2]] : undefined, root, depth + 1);
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = schema[key];
    if (Array.isArray(options) && options.length > 0) return schemaInstance({ ...schema, [key]: undefined, ...(options[0] as Json) }, root, depth + 1);
  }
  if (Array.isArray(schema.allOf)) return schemaInstance(Object.assign({}, schema, { allOf: undefined }, ...(schema.allOf as Json[])), root, depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      return 'a'.repeat(typeof schema.minLength === 'number' ? schema.minLength : 0);
    case 'integer':
    case 'number':
      return typeof schema.minimum === 'number' ? schema.minimum : 0;
    case 'boolean':
      return false;
    case 'null':
      return null;
    case 'array': {
      const n = typeof schema.minItems === 'number' ? schema.minItems : 0;
      return Array.from({ length: n }, () => schemaInstance(schema.items, root, depth + 1));
    }
    default: {
      const props = isDict(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? (schema.required as unknown[]).filter((k): k is string => typeof k === 'string') : [];
      const out: Json = {};
      for (const key of required) out[key] = schemaInstance(props[key], root, depth + 1);
      return out;
    }
  }
}

/**
 * `TypeAdapter(list[FunctionDefinition]).validate_json(content)` of a "required" reply (serving_chat.py @ 6eca337ce
 * lines 1029-1048): the calls, or, when the reply is not such JSON (cut by max_tokens or a stop string), the str() of
 * pydantic's ValidationError, which `create_chat_completion`'s `except ValueError` answers as a 400. The wording is
 * pydantic-core's (jiter) as pydantic 2.11 prints it, the release vLLM 0.10's images installed (`pydantic >= 2.10`).
 */
export function parseRequiredCalls(text: string): { calls: { name: string; parameters: unknown }[] } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: pydanticJsonInvalid(text) };
  }
  if (!Array.isArray(value) || !value.every((c) => isDict(c) && typeof c.name === 'string')) return { error: pydanticJsonInvalid(text) };
  return { calls: (value as Json[]).map((c) => ({ name: c.name as string, parameters: c.parameters ?? null })) };
}

/** pydantic's json_invalid ValidationError for a JSON text cut short (the only way the simulated reply is invalid). */
function pydanticJsonInvalid(text: string): string {
  const stack: string[] = [];
  let inString = false;
  let expectValue = true;
  let partialLiteral = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      expectValue = false;
    } else if (c === '[' || c === '{') {
      stack.push(c);
      expectValue = c === '[';
      partialLiteral = false;
    } else if (c === ']' || c === '}') {
      stack.pop();
      expectValue = false;
    } else if (c === ':' || c === ',') {
      expectValue = true;
      partialLiteral = false;
    } else if (/[a-z]/.test(c)) {
      partialLiteral = true;
      expectValue = false;
    } else if (/[-0-9.eE+]/.test(c)) {
      expectValue = false;
    }
  }
  const top = stack.at(-1);
  const what = inString ? 'a string' : partialLiteral || top === undefined || (expectValue && top === '{') || (expectValue && text.trimEnd().endsWith(',')) ? 'a value' : top === '[' ? 'a list' : 'an object';
  const column = [...text].length;
  const repr = pyStr(text);
  const shown = [...repr].length > 50 ? `${[...repr].slice(0, 25).join('')}...${[...repr].slice(-24).join('')}` : repr;
  return `1 validation error for list[FunctionDefinition]\n  Invalid JSON: EOF while parsing ${what} at line 1 column ${column} [type=json_invalid, input_value=${shown}, input_type=str]\n    For further information visit https://errors.pydantic.dev/2.11/v/json_invalid`;
}

/** `_bracket_level` (serving_chat.py @ 6eca337ce lines 299-310): `{` minus `}`, strings not excepted. */
function bracketLevel(s: string): number {
  let level = 0;
  for (const c of s) {
    if (c === '{') level++;
    else if (c === '}') level--;
  }
  return level;
}

/** `_filter_delta_text` (serving_chat.py @ 6eca337ce lines 312-337). */
function filterDeltaText(delta: string, previous: string): [string, boolean] {
  let level = bracketLevel(previous);
  let updated = '';
  let passedZero = false;
  for (const c of delta) {
    if (c === '{') {
      level++;
      passedZero = level === 0;
    } else if (c === '}') {
      level--;
      passedZero = level === 0;
    }
    if (level !== 0) updated += c;
    else if (c === ',') break;
  }
  return [updated, passedZero];
}

/**
 * One streamed delta of a "required" reply: `extract_tool_call_required_streaming` (serving_chat.py @ 6eca337ce lines
 * 339-414) for the reply the simulator writes (one call, `[{"name": …, "parameters": {…}}]`). partial_json_parser's
 * view of the text is reduced to what that shape needs: the call is complete enough once `"parameters":` is followed
 * by the object's `{`. Returns the DeltaToolCall (as `model_dump_json(exclude_unset=True)` writes it) or null.
 */
export function requiredStreamDelta(
  previous: string,
  delta: string,
  state: { nameReturned: boolean },
  newId: () => string,
): Record<string, unknown> | null {
  const current = previous + delta;
  if (current === '') return null;
  const parsedCall = /"name":\s*"((?:[^"\\]|\\.)*)"[\s\S]*"parameters":\s*\{/.exec(current);
  if (parsedCall === null) {
    state.nameReturned = false;
    return null;
  }
  if (!state.nameReturned) {
    const argsMatch = /.*"parameters":\s*(.*)/.exec(current);
    const [args] = filterDeltaText(argsMatch ? argsMatch[1] : '', previous);
    state.nameReturned = true;
    return { id: newId(), type: 'function', index: 0, function: { name: JSON.parse(`"${parsedCall[1]}"`) as string, arguments: args } };
  }
  const [text] = filterDeltaText(delta, previous);
  // DeltaFunctionCall(name=None, arguments=…): the name is set, to None, so exclude_unset keeps it.
  return text === '' ? null : { index: 0, function: { name: null, arguments: text } };
}
