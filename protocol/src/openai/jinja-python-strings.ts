/**
 * jinja2's Python for @huggingface/jinja: Python's string methods and Python's printing of values.
 *
 * Python's `str.strip`, `lstrip` and `rstrip` for @huggingface/jinja's string methods, which ignore their argument and
 * trim JavaScript's whitespace (`String.prototype.trim`): `content.strip('\n')` there also strips spaces and tabs.
 * jinja2 calls the Python methods, so a chat template such as Qwen3's (`reasoning_content.strip('\n')`,
 * `content.split('</think>')[-1].lstrip('\n')`) renders an assistant turn with a space next to `</think>` differently
 * in kvroute than in vLLM. Likewise `title()` and `capitalize()`, which there upper-case a letter and keep the rest
 * (MiniCPM3's template prints an enum parameter's name with jinja2's `title` filter: `sortOrder` is `Sortorder`).
 * Checked against CPython by `protocol/test/vectors/python-strings.py`.
 *
 * @huggingface/jinja 0.5.11 exports no string class or hook; `pythonStringMethods` finds the class through a value
 * its public `Environment` holds and replaces those entries of its `builtins` map, once per package instance. The
 * caller passes its own loaded module, so this package needs no jinja.
 */

/** Python's `str.isspace()` characters: what `strip()` without an argument removes. */
const PYTHON_WHITESPACE = new Set([
  '\t', '\n', '\v', '\f', '\r', '\x1c', '\x1d', '\x1e', '\x1f', ' ', '\x85', '\xa0', '\u1680',
  '\u2000', '\u2001', '\u2002', '\u2003', '\u2004', '\u2005', '\u2006', '\u2007', '\u2008', '\u2009', '\u200a',
  '\u2028', '\u2029', '\u202f', '\u205f', '\u3000',
]);

/** Python's `s.split()` (no separator): runs of Python whitespace separate, none at either end; `maxsplit` as Python's. */
export function pythonSplitWhitespace(s: string, maxsplit = -1): string[] {
  const points = [...s];
  const out: string[] = [];
  let i = 0;
  const n = points.length;
  while (i < n) {
    while (i < n && PYTHON_WHITESPACE.has(points[i]!)) i++;
    if (i >= n) break;
    if (maxsplit >= 0 && out.length >= maxsplit) {
      // The rest, from here to the end, trailing whitespace included: CPython's split_whitespace.
      out.push(points.slice(i).join(''));
      break;
    }
    const start = i;
    while (i < n && !PYTHON_WHITESPACE.has(points[i]!)) i++;
    out.push(points.slice(start, i).join(''));
  }
  return out;
}

/** Python's `s.strip(chars)` / `lstrip` / `rstrip`: `chars` undefined or null strips whitespace. */
export function pythonStrip(s: string, side: 'both' | 'left' | 'right', chars?: string | null): string {
  const strip = chars === undefined || chars === null ? PYTHON_WHITESPACE : new Set(chars);
  // By code point, as Python iterates a str: a surrogate pair is one character.
  const points = [...s];
  let start = 0;
  let end = points.length;
  if (side !== 'right') while (start < end && strip.has(points[start]!)) start++;
  if (side !== 'left') while (end > start && strip.has(points[end - 1]!)) end--;
  return points.slice(start, end).join('');
}

const CASED = /\p{Cased}/u;
const CASE_IGNORABLE = /\p{Case_Ignorable}/u;

/**
 * Python's lower case of `points[i]` within `points` (CPython's `lower_ucs4`): a capital sigma is final (ς) after a
 * cased character and not before one, case-ignorable characters skipped (`handle_capital_sigma`).
 */
function pythonLowerAt(points: readonly string[], i: number): string {
  const c = points[i]!;
  if (c !== 'Σ') return c.toLowerCase();
  let before = i - 1;
  while (before >= 0 && CASE_IGNORABLE.test(points[before]!)) before--;
  if (before < 0 || !CASED.test(points[before]!)) return 'σ';
  let after = i + 1;
  while (after < points.length && CASE_IGNORABLE.test(points[after]!)) after++;
  return after === points.length || !CASED.test(points[after]!) ? 'ς' : 'σ';
}

function pythonLower(points: readonly string[]): string {
  return points.map((_, i) => pythonLowerAt(points, i)).join('');
}

/** The Latin digraphs, whose titlecase (ǅ) is neither their uppercase (Ǆ) nor their lowercase (ǆ). */
const DIGRAPH_TITLECASE = new Map([...'ǄǅǆǇǈǉǊǋǌǱǲǳ'].map((c, i, all) => [c, all[i - (i % 3) + 1]!]));

/**
 * Python's titlecase of one character (`_PyUnicode_ToTitleFull`), which JavaScript has no method for: the uppercase,
 * but for the digraphs (ǅ), Georgian Mkhedruli (its own titlecase; the uppercase is Mtavruli), Greek letters with
 * ypogegrammeni (the uppercase spells the iota out, ΑΙ; the titlecase keeps it subscript, ᾼ) and characters whose
 * uppercase is several letters (ß is SS, its titlecase Ss; ﬁ, Fi). Checked against CPython for every such character.
 */
function pythonTitlecase(c: string): string {
  const digraph = DIGRAPH_TITLECASE.get(c);
  if (digraph !== undefined) return digraph;
  if (/[\u10D0-\u10FA\u10FD-\u10FF]/.test(c)) return c;
  const upper = [...c.toUpperCase()];
  if (upper.length === 1) return upper[0]!;
  if (/[\u1F80-\u1FFF]/.test(c) && upper[upper.length - 1] === 'Ι') {
    // One letter and the subscript compose where Unicode has the letter (ᾼ; not Ὰͅ); after a perispomeni they stay apart.
    const subscript = `${upper.slice(0, -1).join('')}\u0345`;
    return upper.length === 2 ? subscript.normalize('NFC') : subscript;
  }
  return upper[0]! + pythonLower(upper.slice(1));
}

/** Python's `str.capitalize()` (3.8 on): the first character titlecased, the rest lower-cased. */
export function pythonCapitalize(s: string): string {
  const points = [...s];
  return points.map((c, i) => (i === 0 ? pythonTitlecase(c) : pythonLowerAt(points, i))).join('');
}

/** Python's `str.title()`: a character after a cased one lower-cased, any other titlecased (CPython's `do_title`). */
export function pythonTitle(s: string): string {
  const points = [...s];
  return points.map((c, i) => (i > 0 && CASED.test(points[i - 1]!) ? pythonLowerAt(points, i) : pythonTitlecase(c))).join('');
}

/** jinja2's `_word_beginning_split_re`, `([-\s({\[<]+)`, with Python's `\s` (str.isspace()). */
const JINJA2_WORD_BEGINNING = new RegExp(`([-({[<${[...PYTHON_WHITESPACE].map((c) => `\\u{${c.codePointAt(0)!.toString(16)}}`).join('')}]+)`, 'u');

/**
 * jinja2's `title` filter (`do_title`, jinja2/filters.py @ 3.1.6): the text split at runs of `-`, whitespace and opening
 * brackets, each part's first character upper-cased and the rest lower-cased (`item[0].upper() + item[1:].lower()`),
 * so `sortOrder` is `Sortorder`. Not Python's `str.title()`, which starts a word after any character that is not cased.
 */
export function jinja2Title(s: string): string {
  return s.split(JINJA2_WORD_BEGINNING).filter((item) => item !== '').map((item) => {
    const [first, ...rest] = [...item];
    return first!.toUpperCase() + pythonLower(rest);
  }).join('');
}

interface JinjaModuleLike {
  readonly Environment: new () => { set(name: string, value: unknown): unknown; lookupVariable(name: string): unknown };
}

interface RuntimeValueLike {
  readonly value: unknown;
  readonly type: string;
}

const PATCHED = Symbol.for('kvroute.pythonStringMethods');

/**
 * Makes `strip`, `lstrip`, `rstrip`, `split`, `title` and `capitalize` on the strings of `jinja` (a loaded
 * `@huggingface/jinja`) behave as Python's.
 * Idempotent.
 * @throws Error when the package's shape is not the one this was written against (a newer release): better to fail
 *   loudly at start-up than to render silently unlike vLLM.
 */
export function pythonStringMethods(jinja: JinjaModuleLike): void {
  const env = new jinja.Environment();
  env.set('kvrouteProbe', '');
  const sample = env.lookupVariable('kvrouteProbe') as RuntimeValueLike & { builtins?: Map<string, unknown> };
  const proto = Object.getPrototypeOf(sample) as Record<PropertyKey, unknown>;
  if ((proto as { [PATCHED]?: boolean })[PATCHED]) return;
  const descriptor = Object.getOwnPropertyDescriptor(proto, 'builtins');
  const strip = sample.builtins?.get('strip') as { constructor: unknown } | undefined;
  if (sample.type !== 'StringValue' || descriptor?.get === undefined || strip === undefined) {
    throw new Error('@huggingface/jinja: unexpected StringValue shape; pythonStringMethods needs updating for this release');
  }
  const StringValue = sample.constructor as new (value: string) => unknown;
  const FunctionValue = strip.constructor as new (fn: (args: RuntimeValueLike[], env?: unknown) => unknown) => unknown;
  // The array class, from a value the environment converts (the package exports none).
  env.set('kvrouteProbeArray', []);
  const ArrayValue = (env.lookupVariable('kvrouteProbeArray') as object).constructor as new (items: unknown[]) => unknown;
  const arrayOf = (items: unknown[]): unknown => new ArrayValue(items);
  const original = descriptor.get;
  const charsOf = (method: string, args: RuntimeValueLike[]): string | undefined => {
    const arg = args[0];
    if (arg === undefined || arg.type === 'NullValue' || arg.type === 'UndefinedValue') return undefined;
    if (arg.type !== 'StringValue') throw new Error(`${method} arg must be None or str`);
    return arg.value as string;
  };
  Object.defineProperty(proto, 'builtins', {
    configurable: true,
    get(this: RuntimeValueLike) {
      const map = original.call(this) as Map<string, unknown> & { [PATCHED]?: boolean };
      if (!map[PATCHED]) {
        const value = this.value as string;
        for (const [method, side] of [['strip', 'both'], ['lstrip', 'left'], ['rstrip', 'right']] as const) {
          map.set(method, new FunctionValue((args) => new StringValue(pythonStrip(value, side, charsOf(method, args)))));
        }
        // The package's title() upper-cases after JavaScript's word boundaries and keeps the rest; capitalize() keeps
        // the rest too. These also serve the `capitalize` filter, which the package reads from here.
        map.set('title', new FunctionValue(() => new StringValue(pythonTitle(value))));
        map.set('capitalize', new FunctionValue(() => new StringValue(pythonCapitalize(value))));
        // split() without a separator splits on Python's whitespace; with one, the package's own (already Python's).
        const split = map.get('split') as { value: (args: RuntimeValueLike[], env: unknown) => unknown } | undefined;
        if (split !== undefined) {
          map.set('split', new FunctionValue((args, env?: unknown) => {
            const sep = args[0];
            if (sep !== undefined && sep.type !== 'NullValue') return split.value(args, env);
            const maxsplit = args[1];
            if (maxsplit !== undefined && maxsplit.type !== 'IntegerValue') throw new Error('maxsplit argument must be a number');
            const parts = pythonSplitWhitespace(value, maxsplit === undefined ? -1 : (maxsplit.value as number));
            return arrayOf(parts.map((p) => new StringValue(p)));
          }));
        }
        map[PATCHED] = true;
      }
      return map;
    },
  });
  Object.defineProperty(proto, PATCHED, { value: true });
}

interface AstNodeLike {
  type?: unknown;
  [key: string]: unknown;
}

/**
 * Rewrites a parsed template's `| trim` and `| trim(chars)` filters into `.strip()` / `.strip(chars)` calls, which
 * `pythonStringMethods` makes Python's: jinja2's `do_trim(value, chars=None)` is `str(value).strip(chars)`, while
 * @huggingface/jinja's `trim` filter is JavaScript's `trim()` (it keeps `\x1c`-`\x1f` and `\x85`, which Python strips,
 * and strips U+FEFF, which Python keeps). Llama 3's template trims every message. Mutates and returns `parsed`.
 */
export function pythonTrimFilter<T>(parsed: T): T {
  const seen = new Set<object>();
  const rewrite = (node: unknown): unknown => {
    if (typeof node !== 'object' || node === null || seen.has(node)) return node;
    seen.add(node);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) node[i] = rewrite(node[i]);
      return node;
    }
    const n = node as AstNodeLike;
    for (const key of Object.keys(n)) n[key] = rewrite(n[key]);
    if (n.type !== 'FilterExpression') return n;
    const filter = n.filter as AstNodeLike;
    const named = (f: AstNodeLike | undefined): boolean => f?.type === 'Identifier' && f.value === 'trim';
    const args = named(filter) ? [] : filter?.type === 'CallExpression' && named(filter.callee as AstNodeLike) ? filter.args : undefined;
    if (args === undefined) return n;
    // do_trim is str(value).strip(chars): a None, a number or a list is printed first (`| string`).
    const text = { type: 'FilterExpression', operand: n.operand, filter: { type: 'Identifier', value: 'string' } };
    return { type: 'CallExpression', callee: { type: 'MemberExpression', object: text, property: { type: 'Identifier', value: 'strip' }, computed: false }, args };
  };
  rewrite(parsed);
  return parsed;
}

/** Python's `str.isprintable()` is false for these (and true for the ASCII space): what `repr` escapes. */
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python's `repr(s)` of a str: single quotes unless the text holds one and no double quote; escapes as CPython's. */
export function pythonStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch !== ' ' && NOT_PRINTABLE.test(ch)) {
      const code = ch.codePointAt(0)!;
      out += code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : code < 0x10000 ? `\\u${code.toString(16).padStart(4, '0')}` : `\\U${code.toString(16).padStart(8, '0')}`;
    } else out += ch;
  }
  return out + quote;
}

/** Python's `repr(x)` of a float: the shortest round-trip digits, in exponent form below 1e-4 and from 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const abs = Math.abs(x);
  if (abs >= 1e-4 && abs < 1e16) {
    // JavaScript writes this range without an exponent too (it switches below 1e-6 and from 1e21).
    const fixed = String(x);
    return fixed.includes('.') ? fixed : `${fixed}.0`;
  }
  // JavaScript's exponential form has the same shortest digits: "1.5e-7" → Python's "1.5e-07".
  const [mantissa, exponent] = x.toExponential().split('e') as [string, string];
  const sign = exponent.startsWith('-') ? '-' : '+';
  const digits = exponent.replace(/^[-+]/, '');
  return `${mantissa}e${sign}${digits.padStart(2, '0')}`;
}

interface PrintableValue {
  readonly type: string;
  readonly value: unknown;
}

/** Python's `str(x)` of a jinja runtime value, as jinja2 prints it (`{{ x }}`, `| string`, `~`). */
function pythonStr(v: PrintableValue, fallback: (v: PrintableValue) => string): string {
  switch (v.type) {
    case 'StringValue':
      return v.value as string;
    case 'BooleanValue':
      return v.value ? 'True' : 'False';
    case 'NullValue':
      return 'None';
    case 'UndefinedValue':
      return '';
    case 'IntegerValue':
      // JavaScript writes integers from 1e21 with an exponent; Python's str() writes every digit.
      return Math.abs(v.value as number) < 1e21 ? String(v.value) : BigInt(v.value as number).toString();
    case 'FloatValue':
      return pythonFloatRepr(v.value as number);
    case 'ArrayValue':
      return `[${(v.value as PrintableValue[]).map((x) => pythonRepr(x, fallback)).join(', ')}]`;
    case 'TupleValue': {
      const items = (v.value as PrintableValue[]).map((x) => pythonRepr(x, fallback));
      return `(${items.join(', ')}${items.length === 1 ? ',' : ''})`;
    }
    case 'ObjectValue':
    case 'KeywordArgumentsValue':
      return `{${[...(v.value as Map<string, PrintableValue>)].map(([k, x]) => `${pythonStrRepr(k)}: ${pythonRepr(x, fallback)}`).join(', ')}}`;
    default:
      return fallback(v);
  }
}

function pythonRepr(v: PrintableValue, fallback: (v: PrintableValue) => string): string {
  if (v.type === 'UndefinedValue') return 'Undefined'; // jinja2's Undefined.__repr__
  return v.type === 'StringValue' ? pythonStrRepr(v.value as string) : pythonStr(v, fallback);
}

/** The value kinds `pythonStr` knows; any other (a macro, a namespace) keeps the package's own behaviour. */
const PRINTABLE_TYPES = new Set(['StringValue', 'BooleanValue', 'NullValue', 'UndefinedValue', 'IntegerValue', 'FloatValue', 'ArrayValue', 'TupleValue', 'ObjectValue', 'KeywordArgumentsValue']);

interface InterpreterLike {
  readonly prototype: {
    evaluate(node: unknown, env: unknown): PrintableValue;
    evaluateBlock(statements: readonly { type: string }[], env: unknown): unknown;
    applyFilter(operand: PrintableValue, filter: { type: string; value?: unknown; callee?: { type: string; value?: unknown }; args?: unknown[] }, env: unknown): unknown;
    evaluateArguments(args: unknown[], env: unknown): [PrintableValue[], Map<string, PrintableValue>];
    evaluateBinaryExpression(node: { operator: { value: string }; left: unknown; right: unknown }, env: unknown): unknown;
  };
}

/** The statements that print nothing themselves (their evaluation is not output): every other node is an expression. */
const STATEMENT_TYPES = new Set(['Program', 'If', 'For', 'Break', 'Continue', 'Set', 'Macro', 'Comment', 'FilterStatement', 'CallStatement']);

const PRINTING_PATCHED = Symbol.for('kvroute.pythonValuePrinting');

/**
 * Makes @huggingface/jinja print values as jinja2 prints Python's: `{{ x }}`, `x | string` and `a ~ b` give Python's
 * `str()` (`True`, `None`, `1e-05`, `{'a': [1, 'b']}`), where the package prints `true`, nothing, `0.00001` and JSON,
 * and refuses `none | string` and `mapping | string`. `tojson` is `pythonJson`'s (jinja-python-json.ts). A template printing a tool's
 * `description` (None when absent, vLLM's model_dump) or arguments value by value (`| string`) then renders as vLLM's.
 * Checked against jinja2 by `protocol/test/vectors/python-strings.py`. Idempotent.
 */
export function pythonValuePrinting(jinja: JinjaModuleLike & { readonly Interpreter: InterpreterLike }): void {
  const proto = jinja.Interpreter.prototype as InterpreterLike['prototype'] & { [PRINTING_PATCHED]?: boolean };
  if (proto[PRINTING_PATCHED]) return;
  const env = new jinja.Environment();
  env.set('kvrouteProbe', '');
  const StringValue = (env.lookupVariable('kvrouteProbe') as object).constructor as new (value: string) => unknown;
  // JavaScript's undefined is the package's UndefinedValue, whose own toString writes "undefined".
  const samples: unknown[] = [true, null, [], {}, 1.5, 7, undefined];
  for (const [i, sample] of samples.entries()) {
    env.set(`kvrouteProbe${i}`, sample);
    const valueProto = Object.getPrototypeOf(env.lookupVariable(`kvrouteProbe${i}`)) as { toString(this: PrintableValue): string };
    // A subclass pythonStr does not know (none today) keeps this prototype's own printing.
    const original = valueProto.toString;
    Object.defineProperty(valueProto, 'toString', {
      configurable: true,
      writable: true,
      value(this: PrintableValue) {
        return pythonStr(this, (v) => original.call(v));
      },
    });
  }
  proto.evaluateBlock = function (this: InterpreterLike['prototype'], statements, environment) {
    // The package prints nothing for a None; jinja2 prints "None". A statement's own value (a `set` gives None) is not
    // output, so only expressions print it.
    let result = '';
    for (const statement of statements) {
      const value = this.evaluate(statement, environment);
      if (value.type === 'UndefinedValue') continue;
      if (value.type === 'NullValue') {
        if (!STATEMENT_TYPES.has(statement.type)) result += 'None';
        continue;
      }
      result += String(value);
    }
    return new StringValue(result);
  };
  const applyFilter = proto.applyFilter;
  proto.applyFilter = function (this: InterpreterLike['prototype'], operand, filter, environment) {
    if (!PRINTABLE_TYPES.has(operand.type)) return applyFilter.call(this, operand, filter, environment);
    if (filter.type === 'Identifier' && filter.value === 'string') return new StringValue(String(operand));
    // jinja2's title filter is not str.title() (`jinja2Title`); its capitalize filter is str.capitalize(); both of the
    // value's str(). The package reads both from the string's methods, and refuses other values.
    if (filter.type === 'Identifier' && filter.value === 'title') return new StringValue(jinja2Title(String(operand)));
    if (filter.type === 'Identifier' && filter.value === 'capitalize') return new StringValue(pythonCapitalize(String(operand)));
    // join: jinja2's do_join writes each item's str() (the package writes the JavaScript value: `true`, ``).
    const name = filter.type === 'Identifier' ? filter.value : filter.type === 'CallExpression' && filter.callee?.type === 'Identifier' ? filter.callee.value : undefined;
    if (name === 'join' && (operand.type === 'ArrayValue' || operand.type === 'TupleValue')) {
      let separator = '';
      if (filter.type === 'CallExpression') {
        // join(d, attribute=…) is the package's; decided on the nodes, so the arguments are evaluated once.
        const argNodes = (filter.args ?? []) as { type?: string }[];
        if (argNodes.length > 1 || argNodes.some((a) => a.type === 'KeywordArgumentExpression')) return applyFilter.call(this, operand, filter, environment);
        const [args] = this.evaluateArguments(argNodes, environment);
        if (args[0] !== undefined) separator = String(args[0]);
      }
      return new StringValue((operand.value as PrintableValue[]).map((x) => String(x)).join(separator));
    }
    return applyFilter.call(this, operand, filter, environment);
  };
  const evaluateBinaryExpression = proto.evaluateBinaryExpression;
  proto.evaluateBinaryExpression = function (this: InterpreterLike['prototype'], node, environment) {
    if (node.operator.value !== '~') return evaluateBinaryExpression.call(this, node, environment);
    const left = this.evaluate(node.left, environment);
    const right = this.evaluate(node.right, environment);
    // A macro or a namespace: the package's own `~` (its JavaScript text), without evaluating the operands again.
    if (!PRINTABLE_TYPES.has(left.type) || !PRINTABLE_TYPES.has(right.type)) return new StringValue(String(left.value) + String(right.value));
    return new StringValue(String(left) + String(right));
  };
  Object.defineProperty(proto, PRINTING_PATCHED, { value: true });
}

/** Kinds Python compares as numbers: `bool` is an `int` (True == 1), and an int equals the float of its value. */
const NUMERIC_TYPES = new Set(['BooleanValue', 'IntegerValue', 'FloatValue']);
const SEQUENCE_TYPES = new Set(['ArrayValue', 'TupleValue']);
const MAPPING_TYPES = new Set(['ObjectValue', 'KeywordArgumentsValue']);

/**
 * Python's `a == b` of two jinja runtime values, as jinja2 compiles `==` (Python's operator): numbers by value (a bool
 * is 0 or 1), strings by text, a string never equal to a number ('1' == 1 is False), lists and tuples item by item
 * (a list never equal to a tuple), dicts by their keys and values whatever the order, None only to None, an undefined
 * value only to another (jinja2's `Undefined.__eq__`). Anything else (a macro, a namespace) only to itself.
 */
export function pythonEquals(a: PrintableValue, b: PrintableValue): boolean {
  if (NUMERIC_TYPES.has(a.type) && NUMERIC_TYPES.has(b.type)) return Number(a.value) === Number(b.value);
  if (SEQUENCE_TYPES.has(a.type) && SEQUENCE_TYPES.has(b.type)) {
    const x = a.value as PrintableValue[];
    const y = b.value as PrintableValue[];
    return a.type === b.type && x.length === y.length && x.every((item, i) => pythonEquals(item, y[i]!));
  }
  if (MAPPING_TYPES.has(a.type) && MAPPING_TYPES.has(b.type)) {
    const x = a.value as Map<string, PrintableValue>;
    const y = b.value as Map<string, PrintableValue>;
    return x.size === y.size && [...x].every(([k, v]) => y.has(k) && pythonEquals(v, y.get(k)!));
  }
  if (a.type !== b.type) return false;
  if (a.type === 'NullValue' || a.type === 'UndefinedValue') return true;
  return a.type === 'StringValue' ? a.value === b.value : a === b || a.value === b.value;
}

/**
 * Python's `item in container`: a list or tuple holds an item equal to it, a string the substring, a dict the key (its
 * keys are strings: no other value is one), an undefined value nothing (jinja2's Undefined iterates as empty).
 * @throws Error where Python raises TypeError (a number or None as the container, a non-string in a string).
 */
function pythonContains(container: PrintableValue, item: PrintableValue): boolean {
  if (SEQUENCE_TYPES.has(container.type)) return (container.value as PrintableValue[]).some((x) => pythonEquals(item, x));
  if (MAPPING_TYPES.has(container.type)) return item.type === 'StringValue' && (container.value as Map<string, unknown>).has(item.value as string);
  if (container.type === 'UndefinedValue') return false;
  if (container.type === 'StringValue') {
    if (item.type !== 'StringValue') throw new Error("'in <string>' requires string as left operand");
    return (container.value as string).includes(item.value as string);
  }
  throw new Error(`argument of type ${container.type} is not iterable`);
}

const EQUALITY_PATCHED = Symbol.for('kvroute.pythonEquality');

/**
 * Makes @huggingface/jinja's `==`, `!=`, `in` and `not in` Python's (`pythonEquals`, `pythonContains`): the package compares
 * with JavaScript's loose `==` (so '1' == 1, and two dicts only when they are the same object) and finds list members
 * by identity. Mistral v0.3's and Mistral-Nemo's templates print the tools before the last user turn with
 * `message == user_messages[-1]`, which jinja2 also finds true for an earlier turn equal to it. Checked against jinja2
 * by `protocol/test/vectors/python-strings.py`. Idempotent.
 */
export function pythonEquality(jinja: JinjaModuleLike & { readonly Interpreter: InterpreterLike }): void {
  const proto = jinja.Interpreter.prototype as InterpreterLike['prototype'] & { [EQUALITY_PATCHED]?: boolean };
  if (proto[EQUALITY_PATCHED]) return;
  const env = new jinja.Environment();
  env.set('kvrouteProbe', true);
  const BooleanValue = (env.lookupVariable('kvrouteProbe') as object).constructor as new (value: boolean) => unknown;
  const evaluateBinaryExpression = proto.evaluateBinaryExpression;
  proto.evaluateBinaryExpression = function (this: InterpreterLike['prototype'], node, environment) {
    const operator = node.operator.value;
    if (operator !== '==' && operator !== '!=' && operator !== 'in' && operator !== 'not in') return evaluateBinaryExpression.call(this, node, environment);
    const left = this.evaluate(node.left, environment);
    const right = this.evaluate(node.right, environment);
    if (operator === '==' || operator === '!=') return new BooleanValue(pythonEquals(left, right) === (operator === '=='));
    return new BooleanValue(pythonContains(right, left) === (operator === 'in'));
  };
  Object.defineProperty(proto, EQUALITY_PATCHED, { value: true });
}
