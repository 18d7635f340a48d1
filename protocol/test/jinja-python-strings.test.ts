import * as fs from 'fs';
import * as path from 'path';
import { parsePythonJson, pythonEquality, pythonJson, pythonSplitWhitespace, pythonStringMethods, pythonStrip, pythonTrimFilter, pythonValuePrinting } from '../src/openai';

// Reference values from CPython through real jinja2's sandbox (protocol/test/vectors/python-strings.py).
interface Case { s: string; method: 'strip' | 'lstrip' | 'rstrip'; chars: string | null; out: string }
// Read as Python wrote them: a float with an integral value (2.5e+300) stays a float (PythonFloat), as in a request.
const parsed = parsePythonJson(fs.readFileSync(path.join(__dirname, 'vectors', 'python-strings.json'), 'utf8'), { markIntegralFloats: true });
if (!parsed.ok) throw new Error('python-strings.json does not parse');
const vectors = parsed.value as {
  cases: Case[];
  trims: { s: string; chars: string | null; out: string }[];
  splits: { s: string; maxsplit: number | null; out: string }[];
  printing: { template: string; x: unknown; m?: unknown; out: string }[];
  casing: { template: string; s: string; out: string }[];
  equality: { template: string; a: unknown; b: unknown; m?: unknown; out: string }[];
};

type JinjaModule = typeof import('@huggingface/jinja', { with: { 'resolution-mode': 'import' } });
const jinja = require('@huggingface/jinja') as JinjaModule;
const render = (c: Case): string => new jinja.Template(`{{ s.${c.method}(${c.chars === null ? '' : 'c'}) }}`).render({ s: c.s, c: c.chars });

describe('Python str.strip / lstrip / rstrip in @huggingface/jinja templates (jinja2 calls the Python methods)', () => {
  test('unpatched, @huggingface/jinja 0.5.11 differs from jinja2 (it ignores the argument): the reason for the patch', () => {
    // Runs before the patch below: Jest gives each test file its own module registry.
    const wrong = vectors.cases.filter((c) => render(c) !== c.out);
    expect(wrong.length).toBeGreaterThan(50);
  });

  test.each(vectors.cases.map((c) => [`${JSON.stringify(c.s)}.${c.method}(${JSON.stringify(c.chars)})`, c] as const))('%s', (_name, c) => {
    pythonStringMethods(jinja);
    expect(render(c)).toBe(c.out);
    const side = c.method === 'strip' ? 'both' : c.method === 'lstrip' ? 'left' : 'right';
    expect(pythonStrip(c.s, side, c.chars)).toBe(c.out);
  });

  test.each(vectors.trims.map((c) => [`${JSON.stringify(c.s)} | trim${c.chars === null ? '' : `(${JSON.stringify(c.chars)})`}`, c] as const))('the trim filter, rewritten to strip: %s', (_name, c) => {
    pythonStringMethods(jinja);
    const template = new jinja.Template(c.chars === null ? '{{ s | trim }}' : '{{ s | trim(c) }}');
    pythonTrimFilter(template.parsed);
    expect(template.render({ s: c.s, c: c.chars })).toBe(c.out);
  });

  test.each(vectors.splits.map((c) => [`${JSON.stringify(c.s)}.split(None, ${c.maxsplit ?? -1})`, c] as const))('split without a separator: %s', (_name, c) => {
    pythonStringMethods(jinja);
    const template = c.maxsplit === null ? "{{ s.split() | join('|') }}" : "{{ s.split(none, m) | join('|') }}";
    expect(new jinja.Template(template).render({ s: c.s, m: c.maxsplit })).toBe(c.out);
    expect(pythonSplitWhitespace(c.s, c.maxsplit ?? -1).join('|')).toBe(c.out);
  });

  test('unpatched, @huggingface/jinja prints values unlike jinja2 (true, nothing for None, JSON for mappings): the reason for the printing patch', () => {
    // This file's earlier tests patched the string methods only; the printing patch comes in the next test.
    const wrong = vectors.printing.filter((c) => {
      try {
        return new jinja.Template(c.template).render({ x: c.x, m: c.m }) !== c.out;
      } catch {
        return true;
      }
    });
    expect(wrong.length).toBeGreaterThan(50);
  });

  test.each(vectors.printing.map((c) => [`${c.template} with x = ${JSON.stringify(c.x)}`, c] as const))('printing as jinja2 prints Python\'s values: %s', (_name, c) => {
    pythonStringMethods(jinja);
    pythonValuePrinting(jinja);
    pythonJson(jinja);
    const template = new jinja.Template(c.template);
    pythonTrimFilter(template.parsed);
    expect(template.render({ x: c.x, m: c.m })).toBe(c.out);
  });

  // jinja2/filters.py @ 3.1.6 do_title and do_capitalize; CPython's str.title() and str.capitalize().
  test.each(vectors.casing.map((c) => [`${c.template} with s = ${JSON.stringify(c.s).slice(0, 40)}`, c] as const))('title and capitalize as jinja2 and Python case: %s', (_name, c) => {
    pythonStringMethods(jinja);
    pythonValuePrinting(jinja);
    expect(new jinja.Template(c.template).render({ s: c.s })).toBe(c.out);
  });

  // jinja2 compiles `==`, `!=` and `in` to Python's operators (jinja2/compiler.py @ 3.1.6 visit_Compare).
  test.each(vectors.equality.map((c) => [`${c.template} with a = ${JSON.stringify(c.a)}, b = ${JSON.stringify(c.b)}`, c] as const))('comparisons as Python compares: %s', (_name, c) => {
    pythonValuePrinting(jinja);
    pythonJson(jinja);
    pythonEquality(jinja);
    expect(new jinja.Template(c.template).render({ a: c.a, b: c.b, m: c.m })).toBe(c.out);
  });

  test('a macro or a namespace keeps the package\'s own printing and refusals (jinja2\'s <Macro …> is not reproduced)', () => {
    pythonValuePrinting(jinja);
    expect(() => new jinja.Template('{% macro m() %}x{% endmacro %}{{ m | string }}').render({})).toThrow();
    // A separator with side effects is evaluated once (jinja2 gives 'a,b|1' too).
    expect(new jinja.Template("{% set ns = namespace(n=0) %}{% macro sep() %}{% set ns.n = ns.n + 1 %},{% endmacro %}{{ ['a', 'b'] | join(sep()) }}|{{ ns.n }}").render({})).toBe('a,b|1');
  });

  test('tojson is json.dumps: Python\'s numbers, and the same text as before for the rest', () => {
    pythonValuePrinting(jinja);
    pythonJson(jinja);
    expect(new jinja.Template('{{ x | tojson }}').render({ x: { a: true, b: null, c: [1.5, 'd'], e: 1e-5, i: 1e22 } })).toBe('{"a": true, "b": null, "c": [1.5, "d"], "e": 1e-05, "i": 10000000000000000000000}');
  });

  test('idempotent; other string methods are untouched; a non-string argument is a template error', () => {
    pythonStringMethods(jinja);
    pythonStringMethods(jinja);
    expect(new jinja.Template("{{ '\\n x \\n'.strip('\\n') }}|{{ 'ab'.upper() }}|{{ 'a,b'.split(',') | length }}|{{ 'a,,b'.split(',', 1) | join('/') }}").render({})).toBe(' x |AB|2|a/,b');
    expect(() => new jinja.Template('{{ s.strip(5) }}').render({ s: 'x' })).toThrow(/strip arg must be None or str/);
  });
});
