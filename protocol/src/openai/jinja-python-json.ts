/**
 * Python's numbers and `json.dumps` for @huggingface/jinja, as transformers renders a chat template with jinja2.
 *
 * - **Floats with an integral value.** vLLM reads a request body with `json.loads`, and pydantic keeps a `dict[str, Any]`
 *   (a tool's `parameters`, `chat_template_kwargs`) as Python holds it, so `"minimum": 0.0` stays the float `0.0` and a
 *   template prints `0.0`, through `tojson` and `{{ }}` alike. `JSON.parse` gives the number `0`, which the package
 *   holds as an integer and prints `0`: the tools' text, and every token after it, would differ from vLLM's. Such
 *   values arrive as `PythonFloat` (`templateMembersWithFloats`), and `Environment.set` turns them into the package's
 *   float values.
 * - **`tojson`** is transformers' own filter (`tojson(x, ensure_ascii=False, indent=None, separators=None,
 *   sort_keys=False)` → `json.dumps(…)`, transformers/utils/chat_template_utils.py @ v4.53, vLLM 0.10.0's): floats as
 *   Python's `repr` (`1e-05`, `1e+16`, `1.0`, `NaN`, `Infinity`) where the package writes JavaScript's (`1e-5`,
 *   `10000000000000000`, `1`, `null`); keys sorted by code point where the package sorts by locale; `ensure_ascii`
 *   escaping what Python escapes (DEL included); an `indent` of 0 or a string as Python reads them. Checked against
 *   CPython and jinja2 by `protocol/test/vectors/python-floats.py`.
 */
import { PythonFloat, someJsonValue } from './python-json';
import { pythonIntText, pythonJsonFloat, pythonJsonString } from './python-json-dumps';

interface RuntimeValue {
  readonly type: string;
  readonly value: unknown;
  /** The package's Python truthiness (empty containers and strings, 0 and none are false). */
  __bool__(): { readonly value: boolean };
}

type RuntimeValueClass = new (value: unknown) => RuntimeValue;

interface EnvironmentLike {
  set(name: string, value: unknown): unknown;
  lookupVariable(name: string): unknown;
  declareVariable(name: string, value: unknown): unknown;
}

interface JinjaLike {
  readonly Environment: new () => EnvironmentLike;
  readonly Interpreter: {
    readonly prototype: {
      applyFilter(operand: RuntimeValue, filter: FilterNode, env: unknown): unknown;
      evaluateArguments(args: unknown[], env: unknown): [RuntimeValue[], Map<string, RuntimeValue>];
    };
  };
}

interface FilterNode {
  readonly type: string;
  readonly value?: unknown;
  readonly callee?: { readonly type: string; readonly value?: unknown };
  readonly args?: unknown[];
}

const PATCHED = Symbol.for('kvroute.pythonJson');

/** Python's ordering of str keys: by code point (UTF-16 order differs only between surrogates and U+E000-U+FFFF). */
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

interface DumpOptions {
  readonly ensureAscii: boolean;
  /** The indentation unit, or undefined for none (`indent=None`). */
  readonly indent: string | undefined;
  readonly itemSeparator: string;
  readonly keySeparator: string;
  readonly sortKeys: boolean;
}

/** Thrown where the value holds a kind this module does not write: the package's own `tojson` then answers. */
class NotDumpable {}

function dump(v: RuntimeValue, options: DumpOptions, depth: number): string {
  switch (v.type) {
    case 'NullValue':
    case 'UndefinedValue': // the package writes an undefined value as null (jinja2 would refuse it)
      return 'null';
    case 'BooleanValue':
      return v.value ? 'true' : 'false';
    case 'IntegerValue':
      return pythonIntText(v.value as number);
    case 'FloatValue':
      return pythonJsonFloat(v.value as number);
    case 'StringValue':
      return pythonJsonString(v.value as string, options.ensureAscii);
    case 'ArrayValue':
    case 'TupleValue':
      return container((v.value as RuntimeValue[]).map((item) => dump(item, options, depth + 1)), '[', ']', options, depth);
    case 'ObjectValue':
    case 'KeywordArgumentsValue': {
      let entries = [...(v.value as Map<string, RuntimeValue>)];
      if (options.sortKeys) entries = entries.sort(([a], [b]) => compareCodePoints(a, b));
      const items = entries.map(([k, x]) => `${pythonJsonString(k, options.ensureAscii)}${options.keySeparator}${dump(x, options, depth + 1)}`);
      return container(items, '{', '}', options, depth);
    }
    default:
      throw new NotDumpable();
  }
}

function container(items: string[], open: string, close: string, options: DumpOptions, depth: number): string {
  if (items.length === 0) return open + close;
  if (options.indent === undefined) return open + items.join(options.itemSeparator) + close;
  const inner = `\n${options.indent.repeat(depth + 1)}`;
  return `${open}${inner}${items.join(options.itemSeparator + inner)}\n${options.indent.repeat(depth)}${close}`;
}

/**
 * transformers' `tojson` arguments, positional or by name, as `json.dumps` reads them; undefined when one is of a kind
 * this module does not read (the package's filter then answers, with its own error).
 */
function dumpOptions(args: RuntimeValue[], kwargs: Map<string, RuntimeValue>): DumpOptions | undefined {
  const names = ['ensure_ascii', 'indent', 'separators', 'sort_keys'];
  const given = new Map<string, RuntimeValue>();
  args.forEach((a, i) => names[i] !== undefined && given.set(names[i]!, a));
  for (const [k, v] of kwargs) given.set(k, v);
  if ([...given.keys()].some((k) => !names.includes(k))) return undefined;
  // json.dumps reads `ensure_ascii` and `sort_keys` by truthiness (`if self.ensure_ascii`, `if _sort_keys`,
  // Lib/json/encoder.py; the C encoder's "p" arguments): sort_keys='yes' sorts, ensure_ascii='' does not escape.
  const flag = (name: string): boolean => {
    const v = given.get(name);
    return v !== undefined && v.__bool__().value;
  };
  const ensureAscii = flag('ensure_ascii');
  const sortKeys = flag('sort_keys');
  const indentArg = given.get('indent');
  let indent: string | undefined;
  // json.dumps: an int is that many spaces (0 and negatives: newlines without indentation), a bool an int (True one
  // space, False none: `' ' * indent`, `_make_iterencode`), a str is used as is; None is no indentation at all.
  if (indentArg === undefined || indentArg.type === 'NullValue' || indentArg.type === 'UndefinedValue') indent = undefined;
  else if (indentArg.type === 'IntegerValue') indent = ' '.repeat(Math.max(0, indentArg.value as number));
  else if (indentArg.type === 'BooleanValue') indent = indentArg.value === true ? ' ' : '';
  else if (indentArg.type === 'StringValue') indent = indentArg.value as string;
  else return undefined;
  const separatorsArg = given.get('separators');
  let itemSeparator = indent === undefined ? ', ' : ',';
  let keySeparator = ': ';
  if (separatorsArg !== undefined && separatorsArg.type !== 'NullValue') {
    const pair = separatorsArg.value as RuntimeValue[];
    if ((separatorsArg.type !== 'ArrayValue' && separatorsArg.type !== 'TupleValue') || pair.length !== 2 || pair.some((p) => p.type !== 'StringValue')) return undefined;
    itemSeparator = pair[0]!.value as string;
    keySeparator = pair[1]!.value as string;
  }
  return { ensureAscii, indent, itemSeparator, keySeparator, sortKeys };
}

/** Whether `root` holds a `PythonFloat` in its arrays and objects. */
function holdsPythonFloat(root: unknown): boolean {
  return someJsonValue(root, (v) => v instanceof PythonFloat);
}

/**
 * Patches `jinja` (a loaded @huggingface/jinja) so that a `PythonFloat` anywhere in a template's variables becomes the
 * package's float value (printed `1.0`), and `tojson` writes what transformers' `json.dumps` writes. Idempotent.
 */
export function pythonJson(jinja: JinjaLike): void {
  const envProto = jinja.Environment.prototype as EnvironmentLike & { [PATCHED]?: boolean };
  if (envProto[PATCHED]) return;
  // The package's value classes, found through values its public Environment holds (it exports none of them).
  const probe = new jinja.Environment();
  let probes = 0;
  const classOf = (sample: unknown): RuntimeValueClass => {
    const name = `kvrouteProbe${probes++}`;
    probe.set(name, sample);
    return (probe.lookupVariable(name) as object).constructor as RuntimeValueClass;
  };
  const FloatValue = classOf(1.5);
  const StringValue = classOf('');
  const ArrayValue = classOf([]);
  const ObjectValue = classOf({});
  const set = envProto.set;
  /** The package's conversion of a value without floats to mark, through a scratch environment. */
  const packageValue = (value: unknown): unknown => {
    const scratch = new jinja.Environment();
    set.call(scratch, 'v', value);
    return scratch.lookupVariable('v');
  };
  const convert = (value: unknown): unknown => {
    if (value instanceof PythonFloat) return new FloatValue(value.value);
    if (!holdsPythonFloat(value)) return packageValue(value);
    if (Array.isArray(value)) return new ArrayValue(value.map(convert));
    return new ObjectValue(new Map(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, convert(v)])));
  };
  envProto.set = function (this: EnvironmentLike, name: string, value: unknown) {
    if (!holdsPythonFloat(value)) return set.call(this, name, value);
    return this.declareVariable(name, convert(value));
  };

  // jinja2's `odd` and `even` tests are `value % 2 == 1` and `value % 2 == 0`, floats included (Python's modulo); the
  // package's throw on a float, which a schema's 2.0 now is.
  const tests = (jinja.Environment as unknown as { TESTS?: Map<string, (operand: RuntimeValue) => boolean> }).TESTS;
  if (tests !== undefined) {
    // Python's `x % 2` takes the divisor's sign: a negative remainder gains 2 (so -5e-324 % 2 is 2.0, as in Python).
    const pythonMod2 = (operand: RuntimeValue): number | undefined => {
      if (operand.type !== 'IntegerValue' && operand.type !== 'FloatValue') return undefined;
      const r = (operand.value as number) % 2;
      return r < 0 ? r + 2 : r;
    };
    for (const [name, remainder] of [['odd', 1], ['even', 0]] as const) {
      const original = tests.get(name);
      if (original === undefined) continue;
      tests.set(name, (operand) => {
        const mod = pythonMod2(operand);
        return mod === undefined ? original(operand) : mod === remainder;
      });
    }
  }

  const interpreterProto = jinja.Interpreter.prototype;
  const applyFilter = interpreterProto.applyFilter;
  interpreterProto.applyFilter = function (this: JinjaLike['Interpreter']['prototype'], operand, filter, environment) {
    const name = filter.type === 'Identifier' ? filter.value : filter.type === 'CallExpression' && filter.callee?.type === 'Identifier' ? filter.callee.value : undefined;
    if (name !== 'tojson') return applyFilter.call(this, operand, filter, environment);
    const [args, kwargs] = filter.type === 'CallExpression' ? this.evaluateArguments(filter.args ?? [], environment) : [[], new Map<string, RuntimeValue>()];
    const options = dumpOptions(args, kwargs);
    if (options !== undefined) {
      try {
        return new StringValue(dump(operand, options, 0));
      } catch (e) {
        if (!(e instanceof NotDumpable)) throw e;
      }
    }
    return applyFilter.call(this, operand, filter, environment);
  };
  Object.defineProperty(envProto, PATCHED, { value: true });
}
