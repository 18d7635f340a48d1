/**
 * Python's `str.strip`, `lstrip` and `rstrip` for @huggingface/jinja's string methods, which ignore their argument and
 * trim JavaScript's whitespace (`String.prototype.trim`): `content.strip('\n')` there also strips spaces and tabs.
 * jinja2 calls the Python methods, so a chat template such as Qwen3's (`reasoning_content.strip('\n')`,
 * `content.split('</think>')[-1].lstrip('\n')`) renders an assistant turn with a space next to `</think>` differently
 * in kvroute than in vLLM. Checked against CPython by `protocol/test/vectors/python-strings.py`.
 *
 * @huggingface/jinja 0.5.11 exports no string class or hook; `pythonStringMethods` finds the class through a value
 * its public `Environment` holds and replaces the three entries of its `builtins` map, once per package instance. The
 * caller passes its own loaded module, so this package needs no jinja.
 */

/** Python's `str.isspace()` characters: what `strip()` without an argument removes. */
const PYTHON_WHITESPACE = new Set([
  '\t', '\n', '\v', '\f', '\r', '\x1c', '\x1d', '\x1e', '\x1f', ' ', '\x85', '\xa0', '\u1680',
  '\u2000', '\u2001', '\u2002', '\u2003', '\u2004', '\u2005', '\u2006', '\u2007', '\u2008', '\u2009', '\u200a',
  '\u2028', '\u2029', '\u202f', '\u205f', '\u3000',
]);

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

interface JinjaModuleLike {
  readonly Environment: new () => { set(name: string, value: unknown): unknown; lookupVariable(name: string): unknown };
}

interface RuntimeValueLike {
  readonly value: unknown;
  readonly type: string;
}

const PATCHED = Symbol.for('kvroute.pythonStringMethods');

/**
 * Makes `strip`, `lstrip` and `rstrip` on the strings of `jinja` (a loaded `@huggingface/jinja`) behave as Python's.
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
  const strip = sample.builtins?.get('strip') as { constructor: new (fn: (args: RuntimeValueLike[]) => unknown) => unknown } | undefined;
  if (sample.type !== 'StringValue' || descriptor?.get === undefined || strip === undefined) {
    throw new Error('@huggingface/jinja: unexpected StringValue shape; pythonStringMethods needs updating for this release');
  }
  const StringValue = sample.constructor as new (value: string) => unknown;
  const FunctionValue = strip.constructor;
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
        map[PATCHED] = true;
      }
      return map;
    },
  });
  Object.defineProperty(proto, PATCHED, { value: true });
}
