import { parseGoFloat, type MetricFamily, type MetricType, type PromSample } from '@kvroute/protocol/prometheus';

/**
 * A fast reader of the lines `wantedLines` keeps of a vLLM page, for the scrape worker's changed pages.
 *
 * The strict parser (`parsePrometheusText` in `@kvroute/protocol/prometheus`) cost ~60 µs for the ~21 kept lines of a
 * changed page, most of it in its per-line cursor, per-token slices, regular expressions and frozen records; a busy
 * pod's page changes on most scrapes (epp/README.md, "The fifth round"). This reader accepts only the plain shape
 * prometheus_client renders — `# TYPE <name> <type>` and `<name>[{<label>="<value>",...}] <value>`, single spaces, no
 * escapes, no timestamps — and builds exactly the families the strict parser builds from such lines (the same family
 * resolution: histogram and summary suffixes, implicit untyped families, the `families` filter; the same sample
 * shapes). Anything else, and everything the strict parser would report as an issue, returns `undefined`, and the
 * caller runs the strict parser: escaped label values, blanks around tokens, timestamps, HELP or other comments,
 * duplicate labels or TYPE lines, a TYPE after its samples, a histogram sample without a suffix or a bucket without a
 * valid `le`, garbage. So where a reading could differ the strict parser reads the page, and what this returns is what
 * `parsePrometheusText(text, { strict: false, families: wanted })` returns with no issues (equivalence tests in
 * `test/scrape-kept-lines-parser.test.ts`), except that nothing is frozen and `help` is never set (no HELP line is
 * accepted).
 */
export function parseKeptLines(text: string, wanted: ReadonlySet<string>): Map<string, MetricFamily> | undefined {
  const families = new Map<string, Builder>();
  const n = text.length;
  let start = 0;
  while (start < n) {
    // The kept lines keep the page's numbering: most of them are empty, and are stepped over without a search.
    if (text.charCodeAt(start) === 10) {
      start++;
      continue;
    }
    let end = text.indexOf('\n', start);
    if (end === -1) end = n;
    const next = end + 1;
    if (end > start && text.charCodeAt(end - 1) === 13 /* \r */) end--; // a CR before the LF, as the strict parser tolerates
    if (end > start && !(text.charCodeAt(start) === 35 ? typeLine(text, start, end, families, wanted) : sampleLine(text, start, end, families, wanted))) {
      return undefined;
    }
    start = next;
  }
  return families as Map<string, MetricFamily>;
}

interface Builder {
  name: string;
  type: MetricType;
  typeDeclared: boolean;
  samples: PromSample[];
}

const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** `# TYPE <name> <type>`, exactly; false for any other comment or shape. */
function typeLine(s: string, start: number, end: number, families: Map<string, Builder>, wanted: ReadonlySet<string>): boolean {
  if (!s.startsWith('# TYPE ', start)) return false;
  const nameAt = start + 7;
  const nameEnd = nameCharsEnd(s, nameAt, end);
  if (nameEnd === nameAt || isDigit(s.charCodeAt(nameAt)) || nameEnd >= end || s.charCodeAt(nameEnd) !== 32) return false;
  const name = s.slice(nameAt, nameEnd);
  if (!wanted.has(name)) return true; // the strict parser skips another family's TYPE line unchecked
  const type = s.slice(nameEnd + 1, end);
  if (!TYPES.has(type)) return false;
  const fb = families.get(name);
  if (fb !== undefined) {
    if (fb.typeDeclared || fb.samples.length > 0) return false; // a second TYPE, or a TYPE after samples: an issue
    fb.type = type as MetricType;
    fb.typeDeclared = true;
  } else {
    families.set(name, { name, type: type as MetricType, typeDeclared: true, samples: [] });
  }
  return true;
}

function sampleLine(s: string, start: number, end: number, families: Map<string, Builder>, wanted: ReadonlySet<string>): boolean {
  const c0 = s.charCodeAt(start);
  if (!isNameChar(c0) || isDigit(c0)) return false;
  let i = nameCharsEnd(s, start, end);
  const name = s.slice(start, i);
  // Which family owns the sample, as the strict parser's resolveFamily decides.
  let fb = families.get(name);
  if (fb === undefined) {
    fb = suffixOwner(families, name);
    if (fb === undefined && !wanted.has(name)) return true; // another family's line: skipped unchecked, as there
  }
  // A plain object (a null-prototype one is a slow dictionary in V8); `__proto__` is left to the strict parser.
  const labels: Record<string, string> = {};
  let c = i < end ? s.charCodeAt(i) : -1;
  if (c === 123 /* { */) {
    i++;
    for (;;) {
      if (i >= end) return false;
      if (s.charCodeAt(i) === 125 /* } */) {
        i++;
        break;
      }
      const labelAt = i;
      while (i < end && isLabelNameChar(s.charCodeAt(i))) i++;
      if (i === labelAt || isDigit(s.charCodeAt(labelAt))) return false;
      const label = s.slice(labelAt, i);
      if (s.charCodeAt(i) !== 61 /* = */ || s.charCodeAt(i + 1) !== 34 /* " */) return false;
      const valueAt = i + 2;
      const quote = s.indexOf('"', valueAt);
      if (quote === -1 || quote >= end) return false;
      const value = s.slice(valueAt, quote);
      if (value.includes('\\')) return false; // an escape: the strict parser decodes it
      if (label === '__proto__' || Object.prototype.hasOwnProperty.call(labels, label)) return false; // a duplicate label: an issue
      labels[label] = value;
      i = quote + 1;
      const sep = i < end ? s.charCodeAt(i) : -1;
      if (sep === 44 /* , */) i++;
      else if (sep !== 125) return false;
    }
    c = i < end ? s.charCodeAt(i) : -1;
  }
  if (c !== 32) return false;
  const valueAt = i + 1;
  if (valueAt >= end) return false;
  // A blank after the value (a timestamp, trailing blanks) or inside it: left to the strict parser.
  for (let j = valueAt; j < end; j++) {
    const b = s.charCodeAt(j);
    if (b === 32 || b === 9) return false;
  }
  const value = readValue(s.slice(valueAt, end));
  if (value === undefined) return false;
  if (fb === undefined) {
    fb = { name, type: 'untyped', typeDeclared: false, samples: [] };
    families.set(name, fb);
  }
  if (!sampleShapeOk(fb, name, labels)) return false;
  fb.samples.push({ name, labels, value });
  return true;
}

/**
 * `parseGoFloat`, with the common case first: digits with at most one `.` and at least one digit (`0.0`, `27153`,
 * `.5`), which `Number` reads exactly as the strict parser's decimal form does (beyond the float range, no value
 * either); anything else (signs, exponents,
 * `NaN`, `+Inf`) goes to `parseGoFloat`.
 */
function readValue(token: string): number | undefined {
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if (c === 46 && dots === 0) dots++;
    else return parseGoFloat(token);
  }
  if (digits === 0) return parseGoFloat(token);
  const v = Number(token);
  return Number.isFinite(v) ? v : undefined; // a 310-digit integer overflows: parseGoFloat's range error
}

/** The histogram or summary whose `_bucket`/`_sum`/`_count` series `name` is, as the strict parser resolves it. */
function suffixOwner(families: Map<string, Builder>, name: string): Builder | undefined {
  for (const suffix of SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const fb = families.get(name.slice(0, -suffix.length));
    if (fb !== undefined && (fb.type === 'histogram' || (fb.type === 'summary' && suffix !== '_bucket'))) return fb;
  }
  return undefined;
}

const SUFFIXES = ['_bucket', '_sum', '_count'] as const;

/** The strict parser's checkSampleShape, as a verdict instead of an issue. */
function sampleShapeOk(fb: Builder, name: string, labels: Record<string, string>): boolean {
  if (fb.type === 'histogram') {
    if (name === fb.name) return false;
    if (name.endsWith('_bucket')) {
      const le = labels.le;
      if (le === undefined || parseGoFloat(le) === undefined) return false;
    }
  } else if (fb.type === 'summary' && name === fb.name) {
    const q = labels.quantile;
    if (q === undefined || parseGoFloat(q) === undefined) return false;
  }
  return true;
}

function nameCharsEnd(s: string, i: number, end: number): number {
  while (i < end && isNameChar(s.charCodeAt(i))) i++;
  return i;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isNameChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 58;
}
function isLabelNameChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95;
}
