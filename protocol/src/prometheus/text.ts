/**
 * A strict parser for the Prometheus text exposition format (version 0.0.4, what vLLM's prometheus_client serves).
 *
 * Written here because the npm parsers checked (parse-prometheus-text-format 1.1.1, prom2javascript 0.2.0,
 * exposition 1.2.0) each mishandle something vLLM output depends on: labelled histograms, `:` in metric names,
 * escaped quotes or commas in label values, an empty `# HELP`, or a last line without a newline.
 *
 * Grammar followed (prometheus.io "Exposition formats", text format details):
 * - lines end with `\n`; blank lines are ignored; blanks (space, tab) separate tokens; leading/trailing blanks are ignored;
 * - `# HELP <name> <docstring>` (escapes `\\`, `\n`), `# TYPE <name> <counter|gauge|histogram|summary|untyped>` (in
 *   any case, the rest of the line, as expfmt reads it; a gauge histogram is read as a histogram),
 *   any other `#` line is a comment; at most one HELP and one TYPE per name, and TYPE before the family's first sample;
 * - `<name>[{<label>="<value>"[,...][,]}] <value> [<timestamp ms>]` (the value may follow `}` without a blank, as
 *   prometheus/common's expfmt reads it); label values escape `\\`, `\"`, `\n`;
 *   values are Go floats including `NaN`, `+Inf`, `-Inf`; timestamps are integers.
 * - histogram `h` owns `h_bucket` (with `le`), `h_sum`, `h_count`; summary `s` owns `s` (with `quantile`), `s_sum`, `s_count`.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface PromSample {
  /** The sample's own name, e.g. `h_bucket` for a bucket of histogram `h`. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** Milliseconds since the epoch, when the line carried one. */
  readonly timestampMs?: number;
}

export interface MetricFamily {
  readonly name: string;
  readonly type: MetricType;
  readonly help?: string;
  readonly samples: readonly PromSample[];
}

export interface ParseIssue {
  /** 1-based line number. */
  readonly line: number;
  readonly message: string;
  readonly text: string;
}

export class PrometheusParseError extends Error {
  constructor(readonly issue: ParseIssue) {
    super(`line ${issue.line}: ${issue.message}: ${truncate(issue.text)}`);
    this.name = 'PrometheusParseError';
  }
}

export interface ParseOptions {
  /**
   * true (default): the first malformed line throws PrometheusParseError.
   * false: malformed lines are skipped and listed in `issues`, so one bad line does not cost the whole scrape.
   */
  readonly strict?: boolean;
  /**
   * Only keep these families. Lines of other families are read up to their name and skipped unchecked, which is
   * both cheaper (a vLLM scrape is mostly histogram buckets nobody here reads) and keeps an oddity in an unrelated
   * metric from failing the scrape.
   */
  readonly families?: ReadonlySet<string>;
}

export interface ParsedExposition {
  readonly families: ReadonlyMap<string, MetricFamily>;
  readonly issues: readonly ParseIssue[];
}

/** expfmt's type names, upper-cased, and the type each is read as here (a gauge histogram's series are a histogram's). */
const TYPE_NAMES: ReadonlyMap<string, MetricType> = new Map<string, MetricType>([
  ['COUNTER', 'counter'], ['GAUGE', 'gauge'], ['HISTOGRAM', 'histogram'], ['SUMMARY', 'summary'], ['UNTYPED', 'untyped'],
  ['GAUGE_HISTOGRAM', 'histogram'], ['GAUGEHISTOGRAM', 'histogram'],
]);

const CH_TAB = 9;
const CH_SPACE = 32;
const CH_QUOTE = 34;
const CH_HASH = 35;
const CH_COMMA = 44;
const CH_EQ = 61;
const CH_BACKSLASH = 92;
const CH_LBRACE = 123;
const CH_RBRACE = 125;

class LineError extends Error {}

interface FamilyBuilder {
  name: string;
  type: MetricType;
  /** Set when a `# TYPE` line declared the type (as opposed to an implicit untyped family). */
  typeDeclared: boolean;
  help?: string;
  samples: PromSample[];
}

export function parsePrometheusText(text: string, options: ParseOptions = {}): ParsedExposition {
  const strict = options.strict ?? true;
  const wanted = options.families;
  const families = new Map<string, FamilyBuilder>();
  const issues: ParseIssue[] = [];

  let lineNo = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    lineNo++;
    const raw = text.slice(start, end);
    start = end + 1;
    try {
      parseLine(raw, families, wanted);
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      const issue: ParseIssue = { line: lineNo, message: err.message, text: raw };
      if (strict) throw new PrometheusParseError(issue);
      issues.push(issue);
    }
    if (end === text.length) break;
  }

  const out = new Map<string, MetricFamily>();
  for (const [name, fb] of families) {
    if (fb.samples.length === 0 && !fb.typeDeclared && fb.help === undefined) continue;
    out.set(name, Object.freeze({ name, type: fb.type, help: fb.help, samples: Object.freeze(fb.samples) }));
  }
  return { families: out, issues };
}

function parseLine(raw: string, families: Map<string, FamilyBuilder>, wanted: ReadonlySet<string> | undefined): void {
  // A trailing CR is tolerated: it only ever comes from a proxy rewriting line ends, never from a real token.
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  const cur = new Cursor(line);
  cur.skipBlanks();
  if (cur.atEnd()) return;
  if (cur.peek() === CH_HASH) {
    cur.pos++;
    parseMetaLine(cur, families, wanted);
    return;
  }
  parseSampleLine(cur, families, wanted);
}

function parseMetaLine(cur: Cursor, families: Map<string, FamilyBuilder>, wanted: ReadonlySet<string> | undefined): void {
  cur.skipBlanks();
  const keyword = cur.readWhile(isNotBlank);
  if (keyword !== 'HELP' && keyword !== 'TYPE') return; // a plain comment
  if (cur.skipBlanks() === 0) throw new LineError(`${keyword} without a metric name`);
  const name = cur.readWhile(isNameChar);
  if (!isValidMetricName(name)) throw new LineError(`invalid metric name in ${keyword} line`);
  const hadBlank = cur.skipBlanks() > 0;
  if (!cur.atEnd() && !hadBlank) throw new LineError(`invalid metric name in ${keyword} line`);
  if (wanted && !wanted.has(name)) return;

  if (keyword === 'HELP') {
    const fb = familyFor(families, name);
    if (fb.help !== undefined) throw new LineError(`second HELP line for ${name}`);
    // The docstring is everything after the single separator; the format allows it to be empty.
    fb.help = unescapeHelp(cur.rest().replace(/[ \t]+$/, ''));
    return;
  }

  // The type is the rest of the line, in any case, as prometheus/common's expfmt reads it (text_parse.go @ v0.67.5
  // readingType: strings.ToUpper of the rest, GAUGEHISTOGRAM and GAUGE_HISTOGRAM taken as gauge histograms, which it
  // groups as histograms): `HISTOGRAM` is a histogram, `gauge ` (a trailing blank) an unknown type. Nothing there
  // declares nothing, as there.
  const typeText = cur.rest();
  if (typeText === '') return;
  const type = TYPE_NAMES.get(typeText.toUpperCase());
  if (type === undefined) throw new LineError(`unknown metric type "${typeText}"`);
  const fb = familyFor(families, name);
  if (fb.typeDeclared) throw new LineError(`second TYPE line for ${name}`);
  if (fb.samples.length > 0) throw new LineError(`TYPE line for ${name} after its samples`);
  fb.type = type;
  fb.typeDeclared = true;
}

function parseSampleLine(cur: Cursor, families: Map<string, FamilyBuilder>, wanted: ReadonlySet<string> | undefined): void {
  const name = cur.readWhile(isNameChar);
  if (!isValidMetricName(name)) throw new LineError(name === '' ? 'missing metric name' : `invalid metric name "${name}"`);

  const owner = resolveFamily(families, name, wanted);
  if (owner === undefined) return;

  let blankBeforeValue = cur.skipBlanks() > 0;
  const labels: Record<string, string> = Object.create(null) as Record<string, string>;
  if (cur.peek() === CH_LBRACE) {
    cur.pos++;
    parseLabels(cur, labels);
    // The closing brace ends the token: the value may follow it directly, as prometheus/common's expfmt reads it
    // (text_parse.go @ v0.67.5: after '}' skipBlankTab, then readingValue), which is how GIE and llm-d read pods.
    cur.skipBlanks();
    blankBeforeValue = true;
  }
  if (!blankBeforeValue && !cur.atEnd()) throw new LineError('expected a blank before the value');
  const valueToken = cur.readWhile(isNotBlank);
  if (valueToken === '') throw new LineError('missing value');
  const value = parseGoFloat(valueToken);
  if (value === undefined) throw new LineError(`invalid value "${valueToken}"`);

  let timestampMs: number | undefined;
  if (cur.skipBlanks() > 0 && !cur.atEnd()) {
    const tsToken = cur.readWhile(isNotBlank);
    if (!/^[+-]?\d+$/.test(tsToken)) throw new LineError(`invalid timestamp "${tsToken}"`);
    timestampMs = Number(tsToken);
    cur.skipBlanks();
  }
  if (!cur.atEnd()) throw new LineError('unexpected text after the sample');

  const fb = owner.family ?? familyFor(families, name);
  if (!checkSampleShape(fb, name, labels)) return;
  // Null-prototype, so a label called `__proto__` stays an ordinary key.
  const frozenLabels = Object.freeze(labels);
  const sample: PromSample =
    timestampMs === undefined
      ? Object.freeze({ name, labels: frozenLabels, value })
      : Object.freeze({ name, labels: frozenLabels, value, timestampMs });
  fb.samples.push(sample);
}

/**
 * Which family a sample named `name` belongs to: its own (declared or implicit), or the histogram/summary whose
 * suffixed series it is. `undefined` when the caller filtered that family out.
 */
function resolveFamily(
  families: Map<string, FamilyBuilder>,
  name: string,
  wanted: ReadonlySet<string> | undefined,
): { family?: FamilyBuilder } | undefined {
  const exact = families.get(name);
  if (exact) return { family: exact };
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const fb = families.get(base);
    if (fb && (fb.type === 'histogram' || (fb.type === 'summary' && suffix !== '_bucket'))) return { family: fb };
  }
  if (wanted && !wanted.has(name)) return undefined;
  return {};
}

/**
 * Whether a histogram's or summary's sample is one of its series. prometheus/common's expfmt (text_parse.go @ v0.67.5
 * readingValue) stores nothing, and reports nothing, for a histogram sample that is neither a `_bucket` with `le` nor
 * `_sum`/`_count` (the family's bare name, a bucket without `le`), or a summary's bare-named sample without `quantile`:
 * such a line is skipped here too, not an issue. An `le` or `quantile` that is not a float is its parse error.
 */
function checkSampleShape(fb: FamilyBuilder, name: string, labels: Record<string, string>): boolean {
  if (fb.type === 'histogram') {
    if (name === fb.name) return false;
    if (name.endsWith('_bucket')) {
      const le = labels.le;
      if (le === undefined) return false;
      if (parseGoFloat(le) === undefined) throw new LineError(`bucket of ${fb.name} has invalid le="${le}"`);
    }
  } else if (fb.type === 'summary' && name === fb.name) {
    const q = labels.quantile;
    if (q === undefined) return false;
    if (parseGoFloat(q) === undefined) throw new LineError(`summary ${fb.name} has invalid quantile="${q}"`);
  }
  return true;
}

function parseLabels(cur: Cursor, labels: Record<string, string>): void {
  for (;;) {
    cur.skipBlanks();
    if (cur.atEnd()) throw new LineError('unterminated label set');
    if (cur.peek() === CH_RBRACE) {
      cur.pos++;
      return;
    }
    const labelName = cur.readWhile(isLabelNameChar);
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(labelName)) {
      throw new LineError(labelName === '' ? 'missing label name' : `invalid label name "${labelName}"`);
    }
    cur.skipBlanks();
    if (cur.peek() !== CH_EQ) throw new LineError(`expected "=" after label ${labelName}`);
    cur.pos++;
    cur.skipBlanks();
    if (cur.peek() !== CH_QUOTE) throw new LineError(`expected a quoted value for label ${labelName}`);
    cur.pos++;
    const value = readLabelValue(cur, labelName);
    if (Object.prototype.hasOwnProperty.call(labels, labelName)) throw new LineError(`duplicate label ${labelName}`);
    labels[labelName] = value;
    cur.skipBlanks();
    const c = cur.peek();
    if (c === CH_COMMA) {
      cur.pos++;
      continue;
    }
    if (c === CH_RBRACE) {
      cur.pos++;
      return;
    }
    throw new LineError(cur.atEnd() ? 'unterminated label set' : `expected "," or "}" after label ${labelName}`);
  }
}

function readLabelValue(cur: Cursor, labelName: string): string {
  const s = cur.s;
  let out = '';
  let runStart = cur.pos;
  for (let i = cur.pos; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === CH_QUOTE) {
      out += s.slice(runStart, i);
      cur.pos = i + 1;
      return out;
    }
    if (c === CH_BACKSLASH) {
      out += s.slice(runStart, i);
      const next = s[i + 1];
      if (next === '\\') out += '\\';
      else if (next === '"') out += '"';
      else if (next === 'n') out += '\n';
      else throw new LineError(`invalid escape "\\${next ?? ''}" in label ${labelName}`);
      i++;
      runStart = i + 1;
    }
  }
  throw new LineError(`unterminated value of label ${labelName}`);
}

function unescapeHelp(s: string): string {
  if (!s.includes('\\')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\' && i + 1 < s.length) {
      const next = s[i + 1];
      if (next === '\\') {
        out += '\\';
        i++;
        continue;
      }
      if (next === 'n') {
        out += '\n';
        i++;
        continue;
      }
    }
    out += ch;
  }
  return out;
}

const DECIMAL_FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * expfmt's parseFloat (prometheus/common v0.67.5 expfmt/text_parse.go): a value with `p`, `P` or `_` is refused ("unsupported
 * character in float"), anything else is Go's strconv.ParseFloat ({@link parseGoFloat64}): decimals, exponents, NaN
 * and ±Inf in any case. A decimal beyond the float range (1e400) is no value: Go answers ±Inf with ErrRange, which
 * expfmt returns as the error that refuses the page; an underflow reads 0, as in Go. Plain decimals, what exporters
 * emit, are read first.
 */
export function parseGoFloat(token: string): number | undefined {
  if (DECIMAL_FLOAT.test(token)) {
    const v = Number(token);
    return Number.isFinite(v) ? v : undefined;
  }
  return /[pP_]/.test(token) ? undefined : parseGoFloat64(token);
}

const GO_DECIMAL = /^([0-9_]*)(?:\.([0-9_]*))?(?:[eE]([+-]?[0-9][0-9_]*))?$/;
const GO_HEX = /^0[xX]([0-9a-fA-F_]*)(?:\.([0-9a-fA-F_]*))?[pP]([+-]?[0-9][0-9_]*)$/;

/**
 * `strconv.ParseFloat(s, 64)` (Go's src/strconv/atof.go): the value, or undefined where Go returns an error. Go takes
 * its float literals: decimal, or hexadecimal with a `p` exponent (`0x1.8p9`), digits optionally separated by single
 * underscores (atoi.go underscoreOK: `1_000.5`, not `1__0`, `_1` or `1_`), `inf`/`infinity` with an optional sign and
 * `nan` without one, in any case (`special`: `+nan` is a syntax error); a value beyond float64's range (`1e400`) is an
 * error (ErrRange), not ±Inf; no spaces.
 */
export function parseGoFloat64(s: string): number | undefined {
  const sign = s[0] === '-' ? -1 : 1;
  const body = s[0] === '-' || s[0] === '+' ? s.slice(1) : s;
  const special = body.toLowerCase();
  if (special === 'inf' || special === 'infinity') return sign * Infinity;
  if (s.toLowerCase() === 'nan') return NaN;
  const hex = GO_HEX.exec(body);
  const decimal = hex === null ? GO_DECIMAL.exec(body) : null;
  const parts = hex ?? decimal;
  if (parts === null) return undefined;
  const [, whole = '', fraction = '', exponent] = parts;
  if (!/[0-9a-fA-F]/.test(whole + fraction)) return undefined;
  if (s.includes('_') && !goUnderscoreOK(body)) return undefined;
  // readFloat stops accumulating an exponent past 10000 (the value is then 0 or out of range either way).
  let exp = 0;
  if (exponent !== undefined) {
    for (const c of exponent.replace(/^[+-]/, '').replace(/_/g, '')) if (exp < 10000) exp = exp * 10 + Number(c);
    if (exponent.startsWith('-')) exp = -exp;
  }
  let value: number;
  if (hex !== null) {
    const digits = (whole + fraction).replace(/_/g, '');
    value = Number(BigInt(`0x${digits}`));
    // Scaled in steps, so that 2^k itself never overflows or underflows before the product does.
    for (let k = exp - 4 * fraction.replace(/_/g, '').length; k !== 0 && value !== 0 && Number.isFinite(value);) {
      const step = Math.max(-1000, Math.min(1000, k));
      value *= 2 ** step;
      k -= step;
    }
  } else {
    value = Number(`${whole.replace(/_/g, '') || '0'}.${fraction.replace(/_/g, '') || '0'}e${exp}`);
  }
  return Number.isFinite(value) ? sign * value : undefined;
}

/**
 * Go's underscoreOK (src/strconv/atoi.go), on a literal without its sign: underscores only between digits, a base
 * prefix (`0b`, `0o`, `0x`) counting as a digit. Shared by this ParseFloat port and the EPP's integer flags
 * (epp/src/config/go-strconv.ts).
 */
export function goUnderscoreOK(s: string): boolean {
  let saw = '^';
  let i = 0;
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && 'box'.includes(s[1]!.toLowerCase())) {
    i = 2;
    saw = '0';
    hex = s[1]!.toLowerCase() === 'x';
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    if ((c >= '0' && c <= '9') || (hex && /[a-f]/i.test(c))) {
      saw = '0';
      continue;
    }
    if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

export function isValidMetricName(name: string): boolean {
  return /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name);
}

function familyFor(families: Map<string, FamilyBuilder>, name: string): FamilyBuilder {
  let fb = families.get(name);
  if (!fb) {
    fb = { name, type: 'untyped', typeDeclared: false, samples: [] };
    families.set(name, fb);
  }
  return fb;
}

function isBlank(c: number): boolean {
  return c === CH_SPACE || c === CH_TAB;
}
function isNotBlank(c: number): boolean {
  return c !== CH_SPACE && c !== CH_TAB;
}
function isNameChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 58;
}
function isLabelNameChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95;
}

class Cursor {
  pos = 0;
  constructor(readonly s: string) {}
  atEnd(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): number {
    return this.pos < this.s.length ? this.s.charCodeAt(this.pos) : -1;
  }
  skipBlanks(): number {
    const from = this.pos;
    while (this.pos < this.s.length && isBlank(this.s.charCodeAt(this.pos))) this.pos++;
    return this.pos - from;
  }
  readWhile(pred: (c: number) => boolean): string {
    const from = this.pos;
    while (this.pos < this.s.length && pred(this.s.charCodeAt(this.pos))) this.pos++;
    return this.s.slice(from, this.pos);
  }
  rest(): string {
    const r = this.s.slice(this.pos);
    this.pos = this.s.length;
    return r;
  }
}

function truncate(s: string): string {
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

// ---------------------------------------------------------------------------------------------------------------
// Views over families whose series span several samples.

export interface HistogramSeries {
  /** The series' labels without `le`. */
  readonly labels: Readonly<Record<string, string>>;
  /** Cumulative buckets sorted by upper bound; the last is `+Inf` when the exporter sent it. */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  readonly sum?: number;
  readonly count?: number;
}

export interface SummarySeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly quantiles: readonly { readonly quantile: number; readonly value: number }[];
  readonly sum?: number;
  readonly count?: number;
}

/** Groups a histogram family's `_bucket`/`_sum`/`_count` samples into one record per label set. */
export function histogramSeries(family: MetricFamily): HistogramSeries[] {
  if (family.type !== 'histogram') throw new Error(`${family.name} is a ${family.type}, not a histogram`);
  const groups = new Map<string, { labels: Record<string, string>; buckets: { le: number; count: number }[]; sum?: number; count?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = labelKey(rest);
    let g = groups.get(key);
    if (!g) {
      g = { labels: rest, buckets: [] };
      groups.set(key, g);
    }
    if (s.name === `${family.name}_bucket`) g.buckets.push({ le: parseGoFloat(le ?? '') ?? NaN, count: s.value });
    else if (s.name === `${family.name}_sum`) g.sum = s.value;
    else if (s.name === `${family.name}_count`) g.count = s.value;
  }
  return [...groups.values()].map((g) => {
    g.buckets.sort((a, b) => a.le - b.le);
    return Object.freeze({ ...g, labels: Object.freeze(g.labels), buckets: Object.freeze(g.buckets) });
  });
}

/** Groups a summary family's quantile, `_sum` and `_count` samples into one record per label set. */
export function summarySeries(family: MetricFamily): SummarySeries[] {
  if (family.type !== 'summary') throw new Error(`${family.name} is a ${family.type}, not a summary`);
  const groups = new Map<string, { labels: Record<string, string>; quantiles: { quantile: number; value: number }[]; sum?: number; count?: number }>();
  for (const s of family.samples) {
    const { quantile, ...rest } = s.labels;
    const key = labelKey(rest);
    let g = groups.get(key);
    if (!g) {
      g = { labels: rest, quantiles: [] };
      groups.set(key, g);
    }
    if (s.name === family.name) g.quantiles.push({ quantile: parseGoFloat(quantile ?? '') ?? NaN, value: s.value });
    else if (s.name === `${family.name}_sum`) g.sum = s.value;
    else if (s.name === `${family.name}_count`) g.count = s.value;
  }
  return [...groups.values()].map((g) => {
    g.quantiles.sort((a, b) => a.quantile - b.quantile);
    return Object.freeze({ ...g, labels: Object.freeze(g.labels), quantiles: Object.freeze(g.quantiles) });
  });
}

/** A canonical string for a label set, independent of label order. */
export function labelKey(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',');
}
