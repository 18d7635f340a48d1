/**
 * A reference model of how llm-d-router v0.10.0 (which GIE v1.6.0's EPP moved into) reads a pod's `/metrics` page,
 * for differential tests of kvroute's page reader. Not used by the EPP.
 *
 * - The parser is a line-for-line port of prometheus/common v0.67.5 `expfmt/text_parse.go` (the version both repos'
 *   go.mod name) as `NewTextParser(model.LegacyValidation).TextToMetricFamilies` runs it: its state machine over bytes,
 *   `parseFloat` (strconv.ParseFloat without `p`, `P`, `_`), `strconv.ParseInt` timestamps, summary/histogram
 *   grouping, and its one error: any parse error anywhere refuses the page.
 * - The page verdict is llm-d-router v0.10.0's: `source/metrics/datasource.go` parseMetrics returns the parser's error,
 *   `source/http/client.go` Get returns it and `source/http/datasource.go` Poll/Dispatch then runs no extractor, so a
 *   page with any error updates nothing.
 * - The extraction is `extractor/metrics/extractor.go`, `spec.go` and `loraspec.go` @ v0.10.0 with the default vLLM
 *   mapping (`mapping_registry.go`): the first matching series with the largest timestamp, `extractValue` (gauge or
 *   counter value, else 0), LoRA's series of largest value, cache info's labels by `strconv.Atoi`.
 */

export type GoType = 'COUNTER' | 'GAUGE' | 'SUMMARY' | 'UNTYPED' | 'HISTOGRAM' | 'GAUGE_HISTOGRAM';

export interface RefMetric {
  label: { name: string; value?: string }[];
  timestampMs?: number;
  gauge?: number;
  counter?: number;
  untyped?: number;
  summary?: { sampleCount?: number; sampleSum?: number; quantile: { quantile: number; value: number }[] };
  histogram?: { sampleCount?: number; sampleCountFloat?: number; sampleSum?: number; bucket: { upperBound: number; count: number }[] };
}

export interface RefFamily {
  name: string;
  help?: string;
  type?: GoType;
  metric: RefMetric[];
}

export interface RefParse {
  families: Map<string, RefFamily>;
  /** The ParseError's text, as Go formats it; undefined when the page parsed. */
  error?: string;
}

class Eof extends Error {}

const GO_TYPES: ReadonlySet<string> = new Set(['COUNTER', 'GAUGE', 'SUMMARY', 'UNTYPED', 'HISTOGRAM', 'GAUGE_HISTOGRAM']);

/** strconv.ParseFloat(s, 64) behind expfmt's parseFloat; undefined where Go returns an error (ErrRange included). */
export function goParseFloat(s: string): number | undefined {
  if (/[pP_]/.test(s)) return undefined;
  if (/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(s)) {
    const v = Number(s);
    return Number.isFinite(v) ? v : undefined; // overflow is ErrRange; underflow reads 0 without error
  }
  const m = /^([+-]?)(inf|infinity)$/i.exec(s);
  if (m) return m[1] === '-' ? -Infinity : Infinity;
  if (/^nan$/i.test(s)) return NaN;
  return undefined;
}

function goParseInt64(s: string): number | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const b = BigInt(s);
  if (b > 9223372036854775807n || b < -9223372036854775808n) return undefined;
  return Number(b);
}

/** strconv.Atoi. */
export function goAtoi(s: string): number | undefined {
  return goParseInt64(s);
}

const isBlankOrTab = (b: number) => b === 32 || b === 9;
const isValidLabelNameStart = (b: number) => (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || b === 95 || b === 34;
// utf8.ValidString(string(b)) of a byte is always true: string(byte) is the rune's UTF-8.
const isValidLabelNameContinuation = (b: number, quoted: boolean) => isValidLabelNameStart(b) || (b >= 48 && b <= 57) || quoted;
const isValidMetricNameStart = (b: number) => isValidLabelNameStart(b) || b === 58;
const isValidMetricNameContinuation = (b: number, quoted: boolean) => isValidLabelNameContinuation(b, quoted) || b === 58;
const legacyMetricName = (s: string) => /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(s);
const legacyLabelName = (s: string) => /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(s);
const isCount = (n: string) => n.length > 6 && n.endsWith('_count');
const isSum = (n: string) => n.length > 4 && n.endsWith('_sum');
const isBucket = (n: string) => n.length > 7 && n.endsWith('_bucket');
const summaryMetricName = (n: string) => (isCount(n) ? n.slice(0, -6) : isSum(n) ? n.slice(0, -4) : n);
const histogramMetricName = (n: string) => (isCount(n) ? n.slice(0, -6) : isSum(n) ? n.slice(0, -4) : isBucket(n) ? n.slice(0, -7) : n);
const utf8 = new TextDecoder('utf-8', { fatal: true });

type StateFn = (() => StateFn) | null;

/** `NewTextParser(model.LegacyValidation).TextToMetricFamilies(page)`. */
export function refParse(page: Buffer | string): RefParse {
  const buf = typeof page === 'string' ? Buffer.from(page, 'utf8') : page;
  let pos = 0;
  let err: Error | undefined;
  let lineCount = 0;
  // Read through byte(): TypeScript would narrow the variable across the calls that move it.
  let currentByte = 0;
  const byte = (): number => currentByte;
  let token: number[] = [];
  const families = new Map<string, RefFamily>();
  let currentMF: RefFamily | undefined;
  let currentMetric: RefMetric = { label: [] };
  let currentLabelPair: { name: string; value?: string } = { name: '' };
  let currentLabelPairs: { name: string; value?: string }[] | undefined;
  let currentLabels: Map<string, string> = new Map();
  const summaries = new Map<string, RefMetric>();
  const histograms = new Map<string, RefMetric>();
  let currentQuantile = NaN;
  let currentBucket = NaN;
  let isSummaryCount = false;
  let isSummarySum = false;
  let isHistogramCount = false;
  let isHistogramSum = false;
  let insideBraces = false;
  let insideBracesPresent = false;

  const tokenString = () => Buffer.from(token).toString('latin1');
  const tokenUtf8 = () => Buffer.from(token).toString('utf8');
  const readByte = (): void => {
    if (pos >= buf.length) {
      currentByte = 0;
      err = new Eof();
      return;
    }
    currentByte = buf[pos++] as number;
  };
  const parseError = (msg: string) => {
    err = new Error(`text format parsing error in line ${lineCount}: ${msg}`);
  };
  const skipBlankTab = () => {
    for (;;) {
      readByte();
      if (err || !isBlankOrTab(currentByte)) return;
    }
  };
  const skipBlankTabIfCurrentBlankTab = () => {
    if (isBlankOrTab(currentByte)) skipBlankTab();
  };
  const readTokenUntilWhitespace = () => {
    token = [];
    while (!err && !isBlankOrTab(currentByte) && currentByte !== 10) {
      token.push(currentByte);
      readByte();
    }
  };
  /** The byte after a backslash, as expfmt unescapes it (\\, \n, \"): pushed, or false after the parse error. */
  const pushEscaped = (): boolean => {
    if (currentByte === 92) token.push(92);
    else if (currentByte === 110) token.push(10);
    else if (currentByte === 34) token.push(34);
    else {
      parseError(`invalid escape sequence '\\${String.fromCharCode(currentByte)}'`);
      return false;
    }
    return true;
  };
  const readTokenUntilNewline = (escapes: boolean) => {
    token = [];
    let escaped = false;
    while (!err) {
      if (escapes && escaped) {
        if (!pushEscaped()) return;
        escaped = false;
      } else if (currentByte === 10) return;
      else if (currentByte === 92) escaped = true;
      else token.push(currentByte);
      readByte();
    }
  };
  const readQuotable = (start: (b: number) => boolean, cont: (b: number, q: boolean) => boolean, stop: number, what: string) => {
    token = [];
    let quoted = false;
    let escaped = false;
    if (!start(currentByte)) return;
    while (!err) {
      if (escaped) {
        if (!pushEscaped()) return;
        escaped = false;
      } else if (currentByte === 34) {
        quoted = !quoted;
        if (!quoted) {
          readByte();
          return;
        }
      } else if (currentByte === 10) {
        parseError(`${what} contains unescaped new-line`);
        return;
      } else if (currentByte === 92) escaped = true;
      else token.push(currentByte);
      readByte();
      if (!cont(currentByte, quoted) || (!quoted && currentByte === stop)) return;
    }
  };
  const readTokenAsMetricName = () => readQuotable(isValidMetricNameStart, isValidMetricNameContinuation, 32, 'metric name');
  const readTokenAsLabelName = () => readQuotable(isValidLabelNameStart, isValidLabelNameContinuation, 61, 'label name');
  const readTokenAsLabelValue = () => {
    token = [];
    let escaped = false;
    for (;;) {
      readByte();
      if (err) return;
      if (escaped) {
        if (currentByte === 34 || currentByte === 92) token.push(currentByte);
        else if (currentByte === 110) token.push(10);
        else {
          parseError(`invalid escape sequence '\\${String.fromCharCode(currentByte)}'`);
          currentLabelPairs = undefined;
          return;
        }
        escaped = false;
        continue;
      }
      if (currentByte === 34) return;
      if (currentByte === 10) {
        parseError('label value contains unescaped new-line');
        return;
      }
      if (currentByte === 92) escaped = true;
      else token.push(currentByte);
    }
  };
  const setOrCreateCurrentMF = () => {
    isSummaryCount = isSummarySum = isHistogramCount = isHistogramSum = false;
    const name = tokenUtf8();
    if (!legacyMetricName(name)) {
      parseError(`invalid metric name "${name}"`);
      return;
    }
    currentMF = families.get(name);
    if (currentMF) return;
    currentMF = families.get(summaryMetricName(name));
    if (currentMF && currentMF.type === 'SUMMARY') {
      isSummaryCount = isCount(name);
      isSummarySum = isSum(name);
      return;
    }
    currentMF = families.get(histogramMetricName(name));
    if (currentMF && (currentMF.type === 'HISTOGRAM' || currentMF.type === 'GAUGE_HISTOGRAM')) {
      isHistogramCount = isCount(name);
      isHistogramSum = isSum(name);
      return;
    }
    currentMF = { name, metric: [] };
    families.set(name, currentMF);
  };
  const mf = (): RefFamily => currentMF as RefFamily; // Go would panic on nil where this is reached
  const isHist = (t: GoType | undefined) => t === 'HISTOGRAM' || t === 'GAUGE_HISTOGRAM';
  const signature = () => [...currentLabels.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}\xff${v}`).join('\xfe');

  const startOfLine = (): StateFn => {
    lineCount++;
    insideBraces = false;
    insideBracesPresent = false;
    skipBlankTab();
    if (err) {
      if (err instanceof Eof) err = undefined;
      return null;
    }
    if (currentByte === 35) return startComment;
    if (currentByte === 10) return startOfLine;
    if (currentByte === 123) {
      insideBraces = true;
      return readingLabels;
    }
    return readingMetricName;
  };
  const startComment = (): StateFn => {
    skipBlankTab();
    if (err) return null;
    if (currentByte === 10) return startOfLine;
    readTokenUntilWhitespace();
    if (err) return null;
    if (currentByte === 10) return startOfLine;
    const keyword = tokenString();
    if (keyword !== 'HELP' && keyword !== 'TYPE') {
      while (currentByte !== 10) {
        readByte();
        if (err) return null;
      }
      return startOfLine;
    }
    skipBlankTab();
    if (err) return null;
    readTokenAsMetricName();
    if (err) return null;
    if (currentByte === 10) return startOfLine;
    if (!isBlankOrTab(currentByte)) {
      parseError('invalid metric name in comment');
      return null;
    }
    setOrCreateCurrentMF();
    if (err) return null;
    skipBlankTab();
    if (err) return null;
    if (byte() === 10) return startOfLine;
    return keyword === 'HELP' ? readingHelp : readingType;
  };
  const readingMetricName = (): StateFn => {
    readTokenAsMetricName();
    if (err) return null;
    if (token.length === 0) {
      parseError('invalid metric name');
      return null;
    }
    setOrCreateCurrentMF();
    if (err) return null;
    if (mf().type === undefined) mf().type = 'UNTYPED';
    currentMetric = { label: [] };
    skipBlankTabIfCurrentBlankTab();
    if (err) return null;
    return readingLabels;
  };
  const readingLabels = (): StateFn => {
    const t = currentMF?.type;
    if (t === 'SUMMARY' || isHist(t)) {
      currentLabels = new Map([['__name__', mf().name]]);
      currentQuantile = NaN;
      currentBucket = NaN;
    }
    if (currentByte !== 123) return readingValue;
    return startLabelName;
  };
  const startLabelName = (): StateFn => {
    skipBlankTab();
    if (err) return null;
    if (currentByte === 125) {
      currentMetric.label.push(...(currentLabelPairs ?? []));
      currentLabelPairs = undefined;
      skipBlankTab();
      if (err) return null;
      return readingValue;
    }
    readTokenAsLabelName();
    if (err) return null;
    if (token.length === 0) {
      parseError(`invalid label name for metric "${currentMF?.name ?? ''}"`);
      return null;
    }
    skipBlankTabIfCurrentBlankTab();
    if (err) return null;
    if (currentByte !== 61) {
      if (insideBraces) {
        if (insideBracesPresent) {
          parseError('multiple metric names');
          return null;
        }
        if (currentByte === 44 || currentByte === 125) {
          setOrCreateCurrentMF();
          if (err) {
            if (currentByte === 125) currentLabelPairs = undefined;
            return null;
          }
          if (mf().type === undefined) mf().type = 'UNTYPED';
          currentMetric = { label: [] };
          if (currentByte === 44) {
            insideBracesPresent = true;
            return startLabelName;
          }
          currentMetric.label.push(...(currentLabelPairs ?? []));
          currentLabelPairs = undefined;
          skipBlankTab();
          if (err) return null;
          return readingValue;
        }
        parseError('unexpected end of metric name');
        return null;
      }
      parseError("expected '=' after label name");
      currentLabelPairs = undefined;
      return null;
    }
    currentLabelPair = { name: tokenUtf8() };
    if (currentLabelPair.name === '__name__') {
      parseError('label name "__name__" is reserved');
      currentLabelPairs = undefined;
      return null;
    }
    if (!legacyLabelName(currentLabelPair.name)) {
      parseError(`invalid label name "${currentLabelPair.name}"`);
      currentLabelPairs = undefined;
      return null;
    }
    const t = currentMF?.type;
    if ((t !== 'SUMMARY' || currentLabelPair.name !== 'quantile') && (!isHist(t) || currentLabelPair.name !== 'le')) {
      (currentLabelPairs ??= []).push(currentLabelPair);
    }
    const seen = new Set<string>();
    for (const l of currentLabelPairs ?? []) {
      if (seen.has(l.name)) {
        parseError('duplicate label names');
        currentLabelPairs = undefined;
        return null;
      }
      seen.add(l.name);
    }
    return startLabelValue;
  };
  const startLabelValue = (): StateFn => {
    skipBlankTab();
    if (err) return null;
    if (currentByte !== 34) {
      parseError("expected '\"' at start of label value");
      return null;
    }
    readTokenAsLabelValue();
    if (err) return null;
    let value: string;
    try {
      value = utf8.decode(Buffer.from(token));
    } catch {
      parseError('invalid label value');
      return null;
    }
    currentLabelPair.value = value;
    const t = currentMF?.type;
    if (t === 'SUMMARY') {
      if (currentLabelPair.name === 'quantile') {
        const q = goParseFloat(value);
        if (q === undefined) {
          parseError(`expected float as value for 'quantile' label, got "${value}"`);
          currentLabelPairs = undefined;
          return null;
        }
        currentQuantile = q;
      } else currentLabels.set(currentLabelPair.name, value);
    }
    if (isHist(t)) {
      if (currentLabelPair.name === 'le') {
        const b = goParseFloat(value);
        if (b === undefined) {
          parseError(`expected float as value for 'le' label, got "${value}"`);
          return null;
        }
        currentBucket = b;
      } else currentLabels.set(currentLabelPair.name, value);
    }
    skipBlankTab();
    if (err) return null;
    if (byte() === 44) return startLabelName;
    if (byte() === 125) {
      if (currentMF === undefined) {
        parseError('invalid metric name');
        return null;
      }
      currentMetric.label.push(...(currentLabelPairs ?? []));
      currentLabelPairs = undefined;
      skipBlankTab();
      if (err) return null;
      return readingValue;
    }
    parseError(`unexpected end of label value "${value}"`);
    currentLabelPairs = undefined;
    return null;
  };
  const readingValue = (): StateFn => {
    const f = mf();
    if (f.type === 'SUMMARY') {
      const sig = signature();
      const s = summaries.get(sig);
      if (s) currentMetric = s;
      else {
        summaries.set(sig, currentMetric);
        f.metric.push(currentMetric);
      }
    } else if (isHist(f.type)) {
      const sig = signature();
      const h = histograms.get(sig);
      if (h) currentMetric = h;
      else {
        histograms.set(sig, currentMetric);
        f.metric.push(currentMetric);
      }
    } else f.metric.push(currentMetric);
    readTokenUntilWhitespace();
    if (err) return null;
    const value = goParseFloat(tokenString());
    if (value === undefined) {
      parseError(`expected float as value, got "${tokenString()}"`);
      return null;
    }
    switch (f.type) {
      case 'COUNTER':
        currentMetric.counter = value;
        break;
      case 'GAUGE':
        currentMetric.gauge = value;
        break;
      case 'UNTYPED':
        currentMetric.untyped = value;
        break;
      case 'SUMMARY': {
        const s = (currentMetric.summary ??= { quantile: [] });
        if (isSummaryCount) s.sampleCount = uint64(value);
        else if (isSummarySum) s.sampleSum = value;
        else if (!Number.isNaN(currentQuantile)) s.quantile.push({ quantile: currentQuantile, value });
        break;
      }
      default: {
        const h = (currentMetric.histogram ??= { bucket: [] });
        const integral = value >= 0 && Number.isInteger(value) && value < 2 ** 64;
        if (isHistogramCount) {
          if (integral) h.sampleCount = value;
          else if (value < 0) {
            parseError(`negative count for histogram "${f.name}"`);
            return null;
          } else h.sampleCountFloat = value;
        } else if (isHistogramSum) h.sampleSum = value;
        else if (!Number.isNaN(currentBucket)) {
          if (!integral && value < 0) {
            parseError(`negative bucket population for histogram "${f.name}"`);
            return null;
          }
          h.bucket.push({ upperBound: currentBucket, count: value });
        }
      }
    }
    if (currentByte === 10) return startOfLine;
    return startTimestamp;
  };
  const startTimestamp = (): StateFn => {
    skipBlankTab();
    if (err) return null;
    readTokenUntilWhitespace();
    if (err) return null;
    const ts = goParseInt64(tokenString());
    if (ts === undefined) {
      parseError(`expected integer as timestamp, got "${tokenString()}"`);
      return null;
    }
    currentMetric.timestampMs = ts;
    readTokenUntilNewline(false);
    if (err) return null;
    if (token.length > 0) {
      parseError(`spurious string after timestamp: "${tokenString()}"`);
      return null;
    }
    return startOfLine;
  };
  const readingHelp = (): StateFn => {
    if (mf().help !== undefined) {
      parseError(`second HELP line for metric name "${mf().name}"`);
      return null;
    }
    readTokenUntilNewline(true);
    if (err) return null;
    mf().help = tokenUtf8();
    return startOfLine;
  };
  const readingType = (): StateFn => {
    if (mf().type !== undefined) {
      parseError(`second TYPE line for metric name "${mf().name}", or TYPE reported after samples`);
      return null;
    }
    readTokenUntilNewline(false);
    if (err) return null;
    const typ = tokenString().toUpperCase();
    if (GO_TYPES.has(typ)) mf().type = typ as GoType;
    else if (typ === 'GAUGEHISTOGRAM') mf().type = 'GAUGE_HISTOGRAM';
    else {
      parseError(`unknown metric type "${tokenString()}"`);
      return null;
    }
    return startOfLine;
  };

  for (let next: StateFn = startOfLine; next !== null; ) next = next();
  for (const [k, f] of families) if (f.metric.length === 0) families.delete(k);
  if (err instanceof Eof) parseError('unexpected end of input stream');
  return err === undefined ? { families } : { families, error: err.message };
}

function uint64(v: number): number {
  return Math.trunc(v);
}

/** `extractValue` (spec.go): a gauge's or counter's value, else 0. */
export function extractValue(m: RefMetric | undefined): number {
  if (m === undefined) return 0;
  if (m.gauge !== undefined) return m.gauge;
  if (m.counter !== undefined) return m.counter;
  return 0;
}

const labelOf = (m: RefMetric, name: string) => m.label.find((l) => l.name === name)?.value;

/** `Spec.getLatestMetric` (spec.go): the first matching series of the largest timestamp (0 when absent), above -1. */
export function getLatestMetric(families: Map<string, RefFamily>, name: string, labels: Record<string, string> = {}): RefMetric | undefined {
  const f = families.get(name);
  if (f === undefined || f.metric.length === 0) return undefined;
  let latest: RefMetric | undefined;
  let recent = -1;
  for (const m of f.metric) {
    if (!Object.entries(labels).every(([k, v]) => labelOf(m, k) === v)) continue;
    const ts = m.timestampMs ?? 0;
    if (ts > recent) {
      recent = ts;
      latest = m;
    }
  }
  return latest;
}

/** `LoRASpec.getLatestMetric` (loraspec.go): the first series of the largest value above -1. */
export function getLatestLoraMetric(families: Map<string, RefFamily>, name: string): RefMetric | undefined {
  const f = families.get(name);
  if (f === undefined) return undefined;
  let latest: RefMetric | undefined;
  let recent = -1;
  for (const m of f.metric) {
    const v = extractValue(m);
    if (v > recent) {
      recent = v;
      latest = m;
    }
  }
  return latest;
}

export interface RefReading {
  /** Refused: the page updates nothing. */
  error?: string;
  waiting?: number;
  running?: number;
  kvUsage?: number;
  blockSize?: number;
  numGpuBlocks?: number;
  lora?: { running: string[]; waiting: string[]; maxLora?: number };
}

/** What llm-d-router v0.10.0's metrics extractor takes from a page with the default (vLLM) mapping. */
export function refRead(page: Buffer | string): RefReading {
  const { families, error } = refParse(page);
  if (error !== undefined) return { error };
  const out: RefReading = {};
  const w = getLatestMetric(families, 'vllm:num_requests_waiting');
  if (w) out.waiting = extractValue(w);
  const r = getLatestMetric(families, 'vllm:num_requests_running');
  if (r) out.running = extractValue(r);
  const kv = getLatestMetric(families, 'vllm:kv_cache_usage_perc');
  if (kv) out.kvUsage = extractValue(kv);
  const info = getLatestMetric(families, 'vllm:cache_config_info');
  if (info) {
    const bs = labelOf(info, 'block_size');
    if (bs) out.blockSize = goAtoi(bs);
    const nb = labelOf(info, 'num_gpu_blocks');
    if (nb) out.numGpuBlocks = goAtoi(nb);
  }
  const lora = getLatestLoraMetric(families, 'vllm:lora_requests_info');
  if (lora) {
    const list = (v: string | undefined) => [...new Set((v ?? '').split(',').map((a) => a.trim()).filter((a) => a !== ''))];
    const max = labelOf(lora, 'max_lora');
    out.lora = { running: list(labelOf(lora, 'running_lora_adapters')), waiting: list(labelOf(lora, 'waiting_lora_adapters')), ...(max ? { maxLora: goAtoi(max) } : {}) };
  }
  return out;
}
