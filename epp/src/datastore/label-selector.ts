/**
 * Kubernetes label selectors in their string form, as `labels.Parse` reads them (k8s.io/apimachinery
 * `pkg/labels/selector.go`, the parser llm-d-router v0.10.0's `--endpoint-selector` goes through in
 * `pkg/epp/server/options.go` Complete): comma-separated requirements, each `key` (exists), `!key` (does not exist),
 * `key=value` / `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key>n` / `key<n` (integers). A
 * requirement on a value that is not equality or membership is true when the label is absent (`!=`, `notin`), as
 * upstream's `Requirement.Matches`. Keys and values are checked as Kubernetes label keys and values.
 */

export type LabelOperator = 'exists' | '!' | '=' | '==' | '!=' | 'in' | 'notin' | 'gt' | 'lt';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /** Sorted and distinct, as upstream's `sets.String.List()` leaves them. */
  readonly values: readonly string[];
}

export class LabelSelectorError extends Error {
  constructor(readonly selector: string, reason: string) {
    super(`invalid label selector ${JSON.stringify(selector)}: ${reason}`);
    this.name = 'LabelSelectorError';
  }
}

/** A parsed selector; `toString()` is its canonical form (requirements by key), which the API server reads back. */
export class LabelSelector {
  constructor(readonly requirements: readonly LabelRequirement[]) {}

  matches(labels: Readonly<Record<string, string>> | undefined): boolean {
    return this.requirements.every((r) => requirementMatches(r, labels ?? {}));
  }

  /** True for the empty selector, which matches every pod. */
  get empty(): boolean {
    return this.requirements.length === 0;
  }

  toString(): string {
    return this.requirements.map(requirementString).join(',');
  }
}

function requirementMatches(r: LabelRequirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  const value = has ? labels[r.key]! : undefined;
  switch (r.operator) {
    case 'exists':
      return has;
    case '!':
      return !has;
    case '=':
    case '==':
    case 'in':
      return has && r.values.includes(value!);
    case '!=':
    case 'notin':
      return !has || !r.values.includes(value!);
    case 'gt':
    case 'lt': {
      // Upstream (strconv.ParseInt(v, 10, 64)): a label value that is not a 64-bit integer does not match.
      const v = has ? int64(value!) : undefined;
      const bound = int64(r.values[0]!);
      if (v === undefined || bound === undefined) return false;
      return r.operator === 'gt' ? v > bound : v < bound;
    }
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** `strconv.ParseInt(text, 10, 64)`: the value, or undefined when it is not a decimal integer in int64's range. */
function int64(text: string): bigint | undefined {
  if (!/^[+-]?\d+$/.test(text)) return undefined;
  const v = BigInt(text);
  return v >= INT64_MIN && v <= INT64_MAX ? v : undefined;
}

function requirementString(r: LabelRequirement): string {
  switch (r.operator) {
    case 'exists':
      return r.key;
    case '!':
      return `!${r.key}`;
    case 'in':
    case 'notin':
      return `${r.key} ${r.operator} (${r.values.join(',')})`;
    case 'gt':
      return `${r.key}>${r.values[0]}`;
    case 'lt':
      return `${r.key}<${r.values[0]}`;
    default:
      return `${r.key}${r.operator}${r.values[0]}`;
  }
}

type Token =
  | { kind: 'ident'; text: string }
  | { kind: 'op'; text: '!' | '=' | '==' | '!=' | '>' | '<' | '(' | ')' | ',' };

/** upstream's isWhitespace: space, tab, CR and LF only (any other character is part of an identifier). */
const isWhitespace = (c: string): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';

/** Characters that end an identifier (upstream's lexer: whitespace, `!`, `=`, `,`, `(`, `)`, `<`, `>`). */
const SPECIAL = new Set(['!', '=', ',', '(', ')', '<', '>']);

function tokenize(text: string, fail: (reason: string) => never): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (isWhitespace(c)) {
      i++;
      continue;
    }
    if (c === '!' && text[i + 1] === '=') {
      out.push({ kind: 'op', text: '!=' });
      i += 2;
    } else if (c === '=' && text[i + 1] === '=') {
      out.push({ kind: 'op', text: '==' });
      i += 2;
    } else if (SPECIAL.has(c)) {
      out.push({ kind: 'op', text: c as '!' | '=' | '>' | '<' | '(' | ')' | ',' });
      i++;
    } else {
      let j = i;
      while (j < text.length && !SPECIAL.has(text[j]!) && !isWhitespace(text[j]!)) j++;
      out.push({ kind: 'ident', text: text.slice(i, j) });
      i = j;
    }
  }
  if (out.length > 10_000) fail('too many tokens');
  return out;
}

const NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A label key: `[prefix/]name`, the name 1-63 characters, the prefix a DNS subdomain of at most 253 (IsQualifiedName). */
function keyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) return `key ${JSON.stringify(key)}: its prefix must be a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    return `key ${JSON.stringify(key)}: a name of 1-63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric`;
  }
  return undefined;
}

/** A label value: empty, or at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric. */
function valueProblem(value: string): string | undefined {
  if (value.length > 63 || !NAME.test(value)) {
    return `value ${JSON.stringify(value)}: at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric`;
  }
  return undefined;
}

/** Parses a selector; the empty string is the selector that matches everything (`labels.Everything()`). */
export function parseLabelSelector(text: string): LabelSelector {
  const fail = (reason: string): never => {
    throw new LabelSelectorError(text, reason);
  };
  const tokens = tokenize(text, fail);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const isOp = (t: Token | undefined, op: string): boolean => t !== undefined && t.kind === 'op' && t.text === op;
  const ident = (what: string): string => {
    const t = tokens[pos];
    if (t === undefined || t.kind !== 'ident') fail(`found ${t === undefined ? 'end of string' : JSON.stringify(t.text)}, expected ${what}`);
    pos++;
    return (t as { text: string }).text;
  };
  /**
   * The values of `in (…)` / `notin (…)` after the '(', through the ')': upstream's parseValues and
   * parseIdentifiersList token for token, so `()` is the set {""} and `(a,,)` an error, as labels.Parse has them.
   */
  const valueSet = (): string[] => {
    const text = (t: Token | undefined): string => (t === undefined ? 'end of string' : JSON.stringify(t.text));
    if (isOp(peek(), ')')) {
      pos++;
      return [''];
    }
    if (peek()?.kind !== 'ident' && !isOp(peek(), ',')) fail(`found ${text(peek())}, expected ',', ')' or a value`);
    const list: string[] = [];
    for (;;) {
      const t = tokens[pos++];
      if (t?.kind === 'ident') {
        list.push(t.text);
        if (isOp(peek(), ',')) continue;
        if (isOp(peek(), ')')) break;
        fail(`found ${text(peek())}, expected ',' or ')'`);
      } else if (isOp(t, ',')) {
        if (list.length === 0) list.push(''); // "(,"
        if (isOp(peek(), ')')) {
          list.push(''); // ",)"
          break;
        }
        if (isOp(peek(), ',')) {
          pos++;
          list.push(''); // ",,"
        }
      } else {
        fail(`found ${text(t)}, expected ',' or a value`);
      }
    }
    pos++; // the ')'
    return list;
  };
  const requirements: LabelRequirement[] = [];
  while (pos < tokens.length) {
    let operator: LabelOperator | undefined;
    let values: string[] = [];
    if (isOp(peek(), '!')) {
      pos++;
      operator = '!';
    }
    const key = ident('a label key');
    const keyError = keyProblem(key);
    if (keyError !== undefined) fail(keyError);
    if (operator === undefined) {
      const t = peek();
      if (t === undefined || isOp(t, ',')) {
        operator = 'exists';
      } else if (t.kind === 'ident' && (t.text === 'in' || t.text === 'notin')) {
        pos++;
        operator = t.text;
        if (!isOp(peek(), '(')) fail(`found ${peek() === undefined ? 'end of string' : JSON.stringify((peek() as Token).text)}, expected '(' after ${operator}`);
        pos++;
        values = valueSet();
      } else if (t.kind === 'op' && (t.text === '=' || t.text === '==' || t.text === '!=' || t.text === '>' || t.text === '<')) {
        pos++;
        operator = t.text === '>' ? 'gt' : t.text === '<' ? 'lt' : t.text;
        // An exact value may be empty (`key=`), as upstream's parseExactValue allows.
        const v = peek();
        values = v !== undefined && v.kind === 'ident' ? [ident('a value')] : [''];
      } else {
        fail(`found ${JSON.stringify(t.text)}, expected one of '=', '==', '!=', 'in', 'notin', '>', '<', ',' or end of string`);
      }
    }
    for (const v of values) {
      const problem = valueProblem(v);
      if (problem !== undefined) fail(problem);
    }
    if ((operator === 'gt' || operator === 'lt') && int64(values[0]!) === undefined) {
      fail(`for '${operator === 'gt' ? '>' : '<'}', the value must be an integer, got ${JSON.stringify(values[0])}`);
    }
    requirements.push({ key, operator: operator!, values: [...new Set(values)].sort() });
    if (pos < tokens.length) {
      if (!isOp(peek(), ',')) fail(`found ${JSON.stringify((peek() as Token).text)}, expected ',' or end of string`);
      pos++;
      if (pos >= tokens.length) fail("found end of string, expected a requirement after ','");
    }
  }
  // Upstream sorts an internalSelector by key (stable for requirements on one key).
  return new LabelSelector(requirements.map((r, i) => ({ r, i })).sort((a, b) => (a.r.key < b.r.key ? -1 : a.r.key > b.r.key ? 1 : a.i - b.i)).map((x) => x.r));
}
