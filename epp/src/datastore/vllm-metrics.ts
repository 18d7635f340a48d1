import { endpointMetrics, nextWaitingPages, type EndpointMetrics } from './types';
import { parseKeptLines } from './kept-lines-parser';
import { histogramSeries, parsePrometheusText, type MetricFamily, type ParseIssue, type PromSample } from '@kvroute/protocol/prometheus';

/**
 * Reading the model server's routing signals out of a `/metrics` page.
 *
 * Several series per family (vLLM labels engine metrics with `model_name` and `engine`; a data-parallel pod has one
 * `engine` per DP rank) are combined per pod, because the pod is what the EPP routes to:
 * - queue gauges (`num_requests_waiting`, `num_requests_running`) are **summed**: the pod's queue is every engine's queue;
 * - KV usage is the **mean** over the engines: a pod whose engines are half full has half its cache free, whichever
 *   engine its internal balancer picks (a DP pod's engines have equal caches, and the page does not give each one's);
 * - `num_gpu_blocks` is read **once**, the largest any engine's `cache_config_info` series carries: it is already the
 *   pod's capacity, since vLLM's front end adds its engines' blocks into its one `CacheConfig` ("Sum values from all
 *   engines in DP case", `vllm/v1/engine/utils.py` wait_for_engine_startup @ v0.10.0) and labels every engine's series
 *   with that config (`vllm/v1/metrics/loggers.py` PrometheusStatLogger.log_metrics_info); summing the series counted a
 *   DP pod N times over; `block_size` is the engines' common value.
 * Upstream takes the series with the newest timestamp instead; vLLM exports no timestamps, so that rule would just
 * keep an arbitrary engine. Timestamps are therefore ignored. NaN and other non-finite values count as absent.
 */

/** A metric name with optional label matchers, as in the EPP's `-totalQueuedRequestsMetric` style flags. */
export interface MetricSpec {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface VllmMetricNames {
  readonly waiting: MetricSpec;
  readonly running: MetricSpec;
  /** Tried in order; the first family present supplies KV usage. */
  readonly kvUsage: readonly MetricSpec[];
  readonly cacheInfo: MetricSpec;
  /**
   * LoRA adapters running and waiting, as labels of one series per change (its value the time of the change). Read only
   * when set: vLLM never drops old series, so the family grows over a pod's life (the EPP sets it when a
   * `lora-affinity-scorer` or `lora-room-filter` is configured, `LORA_INFO_METRIC`).
   */
  readonly loraInfo?: MetricSpec;
}

/** vLLM's LoRA state family, which `lora-affinity-scorer` reads. */
export const LORA_INFO_METRIC: MetricSpec = Object.freeze({ name: 'vllm:lora_requests_info' });

export const VLLM_METRIC_NAMES: VllmMetricNames = Object.freeze({
  waiting: { name: 'vllm:num_requests_waiting' },
  running: { name: 'vllm:num_requests_running' },
  // vLLM 0.10 exports both; the old name is hidden from 0.11, and pre-0.9.2 servers only have the old one.
  kvUsage: [{ name: 'vllm:kv_cache_usage_perc' }, { name: 'vllm:gpu_cache_usage_perc' }],
  cacheInfo: { name: 'vllm:cache_config_info' },
});

/** What one page yielded. Absent fields were not found and must not overwrite earlier values. */
export interface VllmMetricsReading {
  readonly waitingQueueSize?: number;
  readonly runningQueueSize?: number;
  readonly kvCacheUsagePercent?: number;
  /** Which KV family supplied `kvCacheUsagePercent`. */
  readonly kvCacheMetric?: string;
  readonly blockSize?: number;
  readonly numGpuBlocks?: number;
  /** From the newest `vllm:lora_requests_info` series naming any adapter; absent when there is none. */
  readonly lora?: LoraInfo;
  /** The latency model's engine counters (see `VLLM_LATENCY_METRIC_NAMES`), summed over engines. */
  readonly firstTokenCount?: number;
  readonly firstTokenSecondsSum?: number;
  /** The inter-token histogram's `_count`/`_sum` (see `EndpointMetrics.interTokenCount`), summed over engines. */
  readonly interTokenCount?: number;
  readonly interTokenSecondsSum?: number;
  readonly inferenceCount?: number;
  readonly inferenceSecondsSum?: number;
  /** `vllm:request_prompt_tokens` `_count`/`_sum` (see `EndpointMetrics`), summed over engines. */
  readonly promptTokensCount?: number;
  readonly promptTokensSum?: number;
  readonly prefixCacheQueryTokens?: number;
  readonly prefixCacheHitTokens?: number;
  /** `process_start_time_seconds` (see `EndpointMetrics.processStartTime`); absent when the page has none. */
  readonly processStartTime?: number;
  /** Distinct `engine` label values seen on the load gauges (1 when unlabelled). */
  readonly engines: number;
  /** Lines of the wanted families that could not be parsed and were skipped. */
  readonly issues: readonly ParseIssue[];
}

export interface VllmParseOptions {
  readonly names?: VllmMetricNames;
  /** Only series whose `model_name` equals this count (series without the label always count). */
  readonly modelName?: string;
}

/** Parses a vLLM `/metrics` page. Malformed lines of the wanted families are skipped and reported in `issues` (the scraper then refuses the page). */
export function parseVllmMetrics(text: string, options: VllmParseOptions = {}): VllmMetricsReading {
  return parseWanted(wantedLines(text, wantedFamilies(options.names)), options, undefined, undefined, processStartTimeOf(text));
}

const START_TIME_BYTES = Buffer.from('process_start_time_seconds ', 'latin1');

/**
 * The value of the page's unlabelled `process_start_time_seconds` sample, as prometheus_client's process collector
 * renders it (`process_start_time_seconds 1.7532999905e+09`, no timestamp); undefined when the page has none or its
 * value is not a positive number. Read apart from the wanted families: it is one line, near the top of a vLLM page
 * (the default registry's collectors come first), and as a wanted family its name would share no prefix with `vllm:`,
 * which the line filter's first comparison relies on.
 */
export function processStartTimeOf(page: string | Buffer): number | undefined {
  // One implementation, on bytes: the scrapers read pages as bytes; a string page (tests, the fallback path) is encoded.
  const bytes = typeof page === 'string' ? Buffer.from(page, 'utf8') : page;
  let at = bytes.indexOf(START_TIME_BYTES);
  // A sample line starts with the name; `# HELP`/`# TYPE` lines name it after a space.
  while (at > 0 && bytes[at - 1] !== 10) at = bytes.indexOf(START_TIME_BYTES, at + 1);
  if (at < 0) return undefined;
  const from = at + START_TIME_BYTES.length;
  const nl = bytes.indexOf(10, from);
  const value = Number(bytes.toString('latin1', from, nl < 0 ? undefined : nl).trim().split(' ')[0]);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/** `reading` with the page's start time (the same object when it already has it). */
function withStartTime(reading: VllmMetricsReading, start: number | undefined): VllmMetricsReading {
  if (reading.processStartTime === start) return reading;
  const { processStartTime: _previous, ...rest } = reading;
  return start === undefined ? rest : { ...rest, processStartTime: start };
}

/** The families a page is read for: the routing gauges of `names` and the latency model's counters. */
function wantedFamilies(names: VllmMetricNames = VLLM_METRIC_NAMES): string[] {
  const wanted = new Set<string>([names.waiting.name, names.running.name, names.cacheInfo.name, ...names.kvUsage.map((s) => s.name)]);
  if (names.loraInfo !== undefined) wanted.add(names.loraInfo.name);
  for (const name of LATENCY_FAMILIES) wanted.add(name);
  return [...wanted];
}

const NO_ISSUES: readonly ParseIssue[] = Object.freeze([]);

/**
 * Reads the kept lines: by `parseKeptLines` when they have the plain shape prometheus_client renders (the families
 * the strict parser would build, built at a fraction of its cost), else, and wherever a reading could differ, by the
 * strict parser. `counts` (a reader's) learns which one read the lines.
 */
function parseWanted(kept: string, options: VllmParseOptions, wanted: ReadonlySet<string> = new Set(wantedFamilies(options.names)), counts?: { strictParses: number }, start?: number): VllmMetricsReading {
  // The reading is built once and completed in place: copying a ~15-field object twice (issues, then the start time)
  // was a fourteenth of a changed page's reading.
  const fast = parseKeptLines(kept, wanted);
  let out: MutableReading;
  if (fast !== undefined) {
    out = extractReading(fast, options);
    out.issues = NO_ISSUES;
  } else {
    if (counts !== undefined) counts.strictParses++;
    const parsed = parsePrometheusText(kept, { strict: false, families: wanted });
    out = extractReading(parsed.families, options);
    out.issues = parsed.issues;
  }
  if (start !== undefined) out.processStartTime = start;
  return out as VllmMetricsReading;
}

/**
 * Reads one endpoint's successive pages (a scraper owns one): the same as `parseVllmMetrics`, except that when the
 * lines the reading comes from (`wantedLines`: the wanted families' TYPE and sample lines, with the page's line
 * numbering) are exactly those of the previous page, the previous reading is returned without parsing them again.
 * An idle or steady pod's page changes in its process and HTTP families while its queue, KV and engine counters stay
 * put; parsing those lines was most of a scrape's CPU (epp/README.md, "Scraping at 256 pods").
 */
export class VllmPageReader {
  private readonly wanted: readonly string[];
  private readonly wantedSet: ReadonlySet<string>;
  private lastKept: string | undefined;
  private lastReading: VllmMetricsReading | undefined;
  /** readBytes: the kept lines' bytes of the last page and of the page being read (swapped after each read). */
  private keptBytes: Buffer = Buffer.alloc(0);
  private keptBytesLength = -1;
  private scratch: Buffer = Buffer.alloc(0);
  private byteTable: ByteNameTable | null | undefined;
  /** Pages read, of those how many reused the previous reading, and how many changed pages the strict parser read. */
  pages = 0;
  reused = 0;
  strictParses = 0;

  constructor(private readonly options: VllmParseOptions = {}) {
    this.wanted = wantedFamilies(options.names);
    this.wantedSet = new Set(this.wanted);
  }

  read(text: string): VllmMetricsReading {
    this.pages++;
    this.keptBytesLength = -1;
    const kept = wantedLines(text, this.wanted);
    const start = processStartTimeOf(text);
    if (kept === this.lastKept && this.lastReading !== undefined) {
      this.reused++;
      return (this.lastReading = withStartTime(this.lastReading, start));
    }
    const reading = parseWanted(kept, this.options, this.wantedSet, this, start);
    this.lastKept = kept;
    this.lastReading = reading;
    return reading;
  }

  /**
   * `read(page.toString('utf8'))` without decoding the page: the wanted lines are found in its bytes
   * (`wantedLineBytes`, byte for byte the UTF-8 of what `wantedLines` keeps of the decoded page), compared with the
   * previous page's, and only when they differ decoded and parsed. Decoding the whole ~20 KB page and scanning it as a
   * string cost the scrape thread ~23 µs per unchanged page, this ~14 when it came (the fourth round of
   * issue 11's work, `npm run bench:scrape-cost -w epp`, busy machine) and 11.7 in session 54's run (epp/README.md, "Session 54: the page
   * reader after the latency families").
   */
  readBytes(page: Buffer): VllmMetricsReading {
    const table = (this.byteTable ??= byteNameTable(this.wanted) ?? null);
    if (table === null) return this.read(page.toString('utf8'));
    this.pages++;
    // With headroom: a page's length moves by a few bytes as its values change, and the two buffers are swapped.
    if (this.scratch.length < page.length + 1) this.scratch = Buffer.allocUnsafeSlow(Math.max(8192, Math.ceil((page.length + 1) * 1.25)));
    const out = this.scratch;
    const n = writeWantedLineBytes(page, table, out);
    const start = processStartTimeOf(page);
    const prev = this.keptBytes;
    if (this.lastReading !== undefined && n === this.keptBytesLength && out.compare(prev, 0, n, 0, n) === 0) {
      this.reused++;
      return (this.lastReading = withStartTime(this.lastReading, start));
    }
    const kept = out.toString('utf8', 0, n);
    const reading = parseWanted(kept, this.options, this.wantedSet, this, start);
    this.scratch = prev;
    this.keptBytes = out;
    this.keptBytesLength = n;
    this.lastKept = kept;
    this.lastReading = reading;
    return reading;
  }
}

interface ByteNameTable {
  readonly prefix: Uint8Array;
  /** The wanted names' bytes by their first byte after the prefix (256 slots). */
  readonly byByte: readonly (readonly Uint8Array[] | undefined)[];
}

const byteNameTables = new WeakMap<readonly string[], ByteNameTable | undefined>();
const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const SUM_BYTES = ascii('_sum');
const COUNT_BYTES = ascii('_count');

/** `nameTable` as bytes; undefined when a wanted name is not ASCII (then the string path reads the page). */
function byteNameTable(wanted: readonly string[]): ByteNameTable | undefined {
  if (byteNameTables.has(wanted)) return byteNameTables.get(wanted);
  let table: ByteNameTable | undefined;
  if (wanted.every((name) => /^[\x21-\x7e]+$/.test(name))) {
    const { prefix, byChar } = nameTable(wanted);
    const byByte: (Uint8Array[] | undefined)[] = new Array<Uint8Array[] | undefined>(256).fill(undefined);
    for (const [c, names] of byChar) byByte[c] = names.map(ascii);
    table = { prefix: ascii(prefix), byByte };
  }
  byteNameTables.set(wanted, table);
  return table;
}

/** `wantedLines` over a page's bytes (see `writeWantedLineBytes`), into a new buffer; for tests and tools. */
export function wantedLineBytes(page: Buffer, wanted: readonly string[]): Buffer {
  const table = byteNameTable(wanted);
  if (table === undefined) throw new Error('wantedLineBytes: metric names must be ASCII');
  const out = Buffer.allocUnsafe(page.length + 1);
  return out.subarray(0, writeWantedLineBytes(page, table, out));
}

/**
 * `wantedLines` over a page's bytes: writes into `out` (at least `page.length + 1` bytes) exactly the UTF-8 bytes of
 * `wantedLines(page.toString('utf8'), wanted)` and returns their length. Lines end at 0x0A bytes, which UTF-8 never
 * uses inside a character, and every test `keepLine` makes is on ASCII characters, which a multi-byte character's
 * bytes (all ≥ 0x80) never equal, so each line gets the same verdict from its bytes as from its decoded text.
 */
function writeWantedLineBytes(buf: Buffer, table: ByteNameTable, out: Uint8Array): number {
  let w = 0;
  let runStart = -1;
  let blanked = 0;
  let start = 0;
  const n = buf.length;
  while (start <= n) {
    let end = buf.indexOf(10, start);
    if (end === -1) end = n;
    if (keepLineBytes(buf, start, end, table)) {
      if (runStart === -1) {
        for (; blanked > 0; blanked--) out[w++] = 10;
        blanked = 0;
        runStart = start;
      }
    } else {
      if (runStart !== -1) {
        // A byte loop: the kept runs are a few lines each, and Buffer#copy's argument handling cost more than copying.
        for (let i = runStart; i < start; i++) out[w++] = buf[i] as number;
        runStart = -1;
      }
      blanked++;
    }
    if (end === n) break;
    start = end + 1;
  }
  if (runStart !== -1) {
    for (let i = runStart; i < n; i++) out[w++] = buf[i] as number;
    out[w++] = 10;
  }
  return w;
}

/**
 * Where the metric name of a TYPE comment starting at `start` begins, or -1 when the line is another comment. Blanks
 * (spaces, tabs) may come before `TYPE`, must follow it, and may be several, as the strict parser and prometheus/common's
 * expfmt (text_parse.go @ v0.67.5 startComment) read them: the `# TYPE ` that prometheus_client writes, then
 * `#TYPE`, `# TYPE\t`, `# TYPE  name`. Most comments are `# HELP` lines and fail at their third byte.
 */
function typeNameAtBytes(b: Uint8Array, start: number, end: number): number {
  let i = start + 1;
  while (i < end && (b[i] === 32 || b[i] === 9)) i++;
  if (i + 4 >= end || b[i] !== 84 || b[i + 1] !== 89 || b[i + 2] !== 80 || b[i + 3] !== 69) return -1;
  i += 4;
  if (b[i] !== 32 && b[i] !== 9) return -1;
  while (i < end && (b[i] === 32 || b[i] === 9)) i++;
  return i;
}

/** `typeNameAtBytes` on a string's characters. */
function typeNameAt(s: string, start: number, end: number): number {
  let i = start + 1;
  while (i < end && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  if (i + 4 >= end || !s.startsWith('TYPE', i)) return -1;
  i += 4;
  if (s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 9) return -1;
  while (i < end && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  return i;
}

function bytesAt(b: Uint8Array, at: number, s: Uint8Array): boolean {
  if (at + s.length > b.length) return false;
  for (let i = 0; i < s.length; i++) if (b[at + i] !== s[i]) return false;
  return true;
}

function keepLineBytes(b: Uint8Array, start: number, end: number, table: ByteNameTable): boolean {
  if (start === end) return false;
  let nameAt = start;
  let sample = true;
  const c = b[start] as number;
  if (c === 35 /* # */) {
    nameAt = typeNameAtBytes(b, start, end);
    if (nameAt < 0) return false;
    sample = false;
  } else if (!isNameStart(c)) {
    return true; // garbage, for the parser to report
  }
  const prefix = table.prefix;
  if (!bytesAt(b, nameAt, prefix)) return false;
  const at = nameAt + prefix.length;
  if (at >= b.length) return false;
  const candidates = table.byByte[b[at] as number];
  if (candidates === undefined) return false;
  for (const name of candidates) {
    // What follows the name is checked before the name itself (the same verdict, in a cheaper order): a wanted
    // histogram's ~20 `_bucket` lines share its name, and each now fails on two bytes instead of after the whole name.
    const after = nameAt + name.length;
    const nameEnds = after >= end || !isNameChar(b[after] as number);
    if (!nameEnds) {
      if (!sample) continue;
      const sumFollows = bytesAt(b, after, SUM_BYTES) && (after + 4 >= end || !isNameChar(b[after + 4] as number));
      if (!sumFollows && !(bytesAt(b, after, COUNT_BYTES) && (after + 6 >= end || !isNameChar(b[after + 6] as number)))) continue;
    }
    if (bytesAt(b, nameAt, name)) return true;
  }
  return false;
}

/**
 * The page with every line the reading does not need blanked (kept empty, so issue line numbers stay the page's).
 * The EPP wants about ten of vLLM's ~50 families, a few hundred bytes of a ~20 KB page; the strict parser skips the
 * others correctly but still tokenizes each line's name, which made it most of a scrape's CPU at 256 pods. Kept:
 * `# TYPE` lines of wanted names (with any blanks around `TYPE`, as `typeNameAt` reads them), sample lines of wanted families (the name, then anything but a metric-name
 * character, or `_sum`/`_count` and then such a character), and lines that start with neither a metric-name character
 * nor `#` (garbage, for the parser to report). Dropped: other families' lines (including a wanted name's longer
 * cousins such as `_created` and `_total` families), comments and `# HELP` lines (the parser keeps help text, which
 * nothing here reads), and histogram `_bucket` lines: of `vllm:time_to_first_token_seconds` the latency model reads
 * `_count` and `_sum` only, and its ~20 bucket lines were a third of what was left to parse. Consecutive kept lines
 * are copied as one slice.
 */
export function wantedLines(text: string, wanted: readonly string[]): string {
  const { prefix, byChar } = nameTable(wanted);
  let out = '';
  let runStart = -1; // first kept line of the current run of kept lines
  let blanked = 0; // lines dropped since the last run
  let start = 0;
  const n = text.length;
  while (start <= n) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = n;
    if (keepLine(text, start, end, prefix, byChar)) {
      if (runStart === -1) {
        if (blanked > 0) out += '\n'.repeat(blanked);
        blanked = 0;
        runStart = start;
      }
    } else {
      if (runStart !== -1) {
        out += text.slice(runStart, start); // the run's lines with their line ends
        runStart = -1;
      }
      blanked++;
    }
    if (end === n) break;
    start = end + 1;
  }
  if (runStart !== -1) out += `${text.slice(runStart, n)}\n`;
  return out;
}

function keepLine(text: string, start: number, end: number, prefix: string, byChar: ReadonlyMap<number, readonly string[]>): boolean {
  if (start === end) return false;
  let nameAt = start;
  let sample = true;
  const c = text.charCodeAt(start);
  if (c === 35 /* # */) {
    nameAt = typeNameAt(text, start, end);
    if (nameAt < 0) return false; // a plain comment, HELP, or meta the parser ignores
    sample = false;
  } else if (!isNameStart(c)) {
    return true; // garbage, for the parser to report
  }
  if (!text.startsWith(prefix, nameAt)) return false;
  const candidates = byChar.get(text.charCodeAt(nameAt + prefix.length));
  if (candidates === undefined) return false;
  for (const name of candidates) {
    if (!text.startsWith(name, nameAt)) continue;
    const after = nameAt + name.length;
    if (after >= end || !isNameChar(text.charCodeAt(after))) return true;
    if (!sample) continue;
    if (text.startsWith('_sum', after) && (after + 4 >= end || !isNameChar(text.charCodeAt(after + 4)))) return true;
    if (text.startsWith('_count', after) && (after + 6 >= end || !isNameChar(text.charCodeAt(after + 6)))) return true;
  }
  return false;
}

interface NameTable {
  /** The wanted names' common prefix ('vllm:' for vLLM's): one comparison rejects most lines. */
  readonly prefix: string;
  /** The wanted names by their first character after the prefix: most `vllm:` lines of other families compare none. */
  readonly byChar: ReadonlyMap<number, readonly string[]>;
}

const nameTables = new WeakMap<readonly string[], NameTable>();

function nameTable(wanted: readonly string[]): NameTable {
  let table = nameTables.get(wanted);
  if (table === undefined) {
    let prefix = commonPrefix(wanted);
    // Every name needs a character after the prefix to be filed under.
    if (wanted.some((name) => name.length === prefix.length)) prefix = prefix.slice(0, -1);
    const byChar = new Map<number, string[]>();
    for (const name of wanted) {
      const c = name.charCodeAt(prefix.length);
      const list = byChar.get(c) ?? [];
      list.push(name);
      byChar.set(c, list);
    }
    table = { prefix, byChar };
    nameTables.set(wanted, table);
  }
  return table;
}

function commonPrefix(names: readonly string[]): string {
  let p = names[0] ?? '';
  for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
  return p;
}

function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57);
}

function isNameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58;
}

/** The extraction half of parseVllmMetrics, for callers that already hold parsed families. */
export function extractVllmMetrics(
  families: ReadonlyMap<string, MetricFamily>,
  options: VllmParseOptions = {},
): Omit<VllmMetricsReading, 'issues'> {
  return extractReading(families, options);
}

/** A reading while it is built: every field writable, `issues` set last. */
type MutableReading = { -readonly [K in keyof VllmMetricsReading]?: VllmMetricsReading[K] } & { engines: number };

function extractReading(families: ReadonlyMap<string, MetricFamily>, options: VllmParseOptions): MutableReading {
  const names = options.names ?? VLLM_METRIC_NAMES;
  const pick = (spec: MetricSpec): PromSample[] => selectSeries(families.get(spec.name), spec, options.modelName);

  const waiting = pick(names.waiting);
  const running = pick(names.running);
  let kv: PromSample[] = [];
  let kvCacheMetric: string | undefined;
  for (const spec of names.kvUsage) {
    kv = pick(spec);
    if (kv.length > 0) {
      kvCacheMetric = spec.name;
      break;
    }
  }

  const info = readCacheInfo(pick(names.cacheInfo));
  const engines = new Set<string>();
  for (const s of [...waiting, ...running, ...kv]) engines.add(s.labels.engine ?? '');

  const out: MutableReading = { engines: engines.size };
  if (waiting.length > 0) out.waitingQueueSize = sum(waiting);
  if (running.length > 0) out.runningQueueSize = sum(running);
  if (kv.length > 0) {
    out.kvCacheUsagePercent = clamp01(sum(kv) / kv.length);
    out.kvCacheMetric = kvCacheMetric;
  }
  if (info.blockSize !== undefined) out.blockSize = info.blockSize;
  if (info.numGpuBlocks !== undefined) out.numGpuBlocks = info.numGpuBlocks;
  const lora = names.loraInfo !== undefined ? readLoraInfo(pick(names.loraInfo)) : undefined;
  if (lora !== undefined) out.lora = lora;
  extractLatencyCounters(families, options.modelName, out);
  return out;
}

/** The adapters a pod's vLLM runs and queues, and how many it may hold at once. */
export interface LoraInfo {
  readonly running: readonly string[];
  readonly waiting: readonly string[];
  /** `max_lora`; absent when the series has none (the last value stands). */
  readonly maxLora?: number;
}

/**
 * vLLM writes one `vllm:lora_requests_info` series per change of its adapter sets, valued with the time of the change
 * (vllm/v1/metrics/loggers.py @ v0.10.0): the newest series is the state, empty lists included, as GIE v1.5.0's
 * default data layer reads it (`datalayer/extractor/metrics/loraspec.go` getLatestMetric, `extractor.go`
 * populateLoRAMetrics and addAdapters: names trimmed, empty ones dropped, each once).
 */
function readLoraInfo(series: PromSample[]): LoraInfo | undefined {
  let latest: PromSample | undefined;
  for (const s of series) if (latest === undefined || s.value > latest.value) latest = s;
  if (latest === undefined) return undefined;
  const list = (v: string | undefined) => [...new Set((v ?? '').split(',').map((a) => a.trim()).filter((a) => a !== ''))];
  const max = latest.labels.max_lora ? Number(latest.labels.max_lora) : Number.NaN;
  return {
    running: list(latest.labels.running_lora_adapters),
    waiting: list(latest.labels.waiting_lora_adapters),
    ...(Number.isInteger(max) ? { maxLora: max } : {}),
  };
}

/** True when the reading carries at least one load signal, i.e. the page was a model server's. */
export function hasLoadSignal(r: Omit<VllmMetricsReading, 'issues'>): boolean {
  return r.waitingQueueSize !== undefined || r.runningQueueSize !== undefined || r.kvCacheUsagePercent !== undefined;
}

/**
 * The metrics after a successful scrape: fields the page had replace the old ones, the rest are kept, the clock is
 * reset and the failure streak ends. `now` is when the page arrived, `requestTime` when its request went out.
 */
export function applyReading(prev: EndpointMetrics, r: Omit<VllmMetricsReading, 'issues'>, now: number, requestTime?: number): EndpointMetrics {
  const next: { -readonly [K in keyof EndpointMetrics]: EndpointMetrics[K] } = {
    waitingQueueSize: r.waitingQueueSize ?? prev.waitingQueueSize,
    runningQueueSize: r.runningQueueSize ?? prev.runningQueueSize,
    kvCacheUsagePercent: r.kvCacheUsagePercent ?? prev.kvCacheUsagePercent,
    updateTime: now,
    consecutiveFailures: 0,
  };
  if (requestTime !== undefined) next.requestTime = Math.min(requestTime, now);
  const blockSize = r.blockSize ?? prev.blockSize;
  const numGpuBlocks = r.numGpuBlocks ?? prev.numGpuBlocks;
  if (blockSize !== undefined) next.blockSize = blockSize;
  if (numGpuBlocks !== undefined) next.numGpuBlocks = numGpuBlocks;
  // A page without the family keeps the last state (GIE's extractor leaves the metrics as they were); a series without
  // max_lora keeps the last one.
  const lora = r.lora === undefined ? prev.lora : { running: r.lora.running, waiting: r.lora.waiting, maxLora: r.lora.maxLora ?? prev.lora?.maxLora ?? 0 };
  if (lora !== undefined) next.lora = lora;
  // Counters are cumulative: a page without them leaves them absent rather than pairing an old value with a new time.
  if (r.firstTokenCount !== undefined) next.firstTokenCount = r.firstTokenCount;
  if (r.firstTokenSecondsSum !== undefined) next.firstTokenSecondsSum = r.firstTokenSecondsSum;
  if (r.interTokenCount !== undefined) next.interTokenCount = r.interTokenCount;
  if (r.interTokenSecondsSum !== undefined) next.interTokenSecondsSum = r.interTokenSecondsSum;
  const engines = r.engines > 0 ? r.engines : prev.engines;
  if (engines !== undefined) next.engines = engines;
  if (r.inferenceCount !== undefined) next.inferenceCount = r.inferenceCount;
  if (r.inferenceSecondsSum !== undefined) next.inferenceSecondsSum = r.inferenceSecondsSum;
  if (r.promptTokensCount !== undefined) next.promptTokensCount = r.promptTokensCount;
  if (r.promptTokensSum !== undefined) next.promptTokensSum = r.promptTokensSum;
  if (r.prefixCacheQueryTokens !== undefined) next.prefixCacheQueryTokens = r.prefixCacheQueryTokens;
  if (r.prefixCacheHitTokens !== undefined) next.prefixCacheHitTokens = r.prefixCacheHitTokens;
  // Only this page's: an old start time beside a page without one would hide a restart the counters show.
  if (r.processStartTime !== undefined) next.processStartTime = r.processStartTime;
  const moved = prev.updateTime <= 0 || next.waitingQueueSize !== prev.waitingQueueSize || next.runningQueueSize !== prev.runningQueueSize
    || next.kvCacheUsagePercent !== prev.kvCacheUsagePercent || next.firstTokenCount !== prev.firstTokenCount
    || next.prefixCacheQueryTokens !== prev.prefixCacheQueryTokens;
  next.changedTime = moved ? now : prev.changedTime ?? now;
  next.waitingPages = nextWaitingPages(prev, next.waitingQueueSize);
  return endpointMetrics(next);
}

/**
 * Parses `name` or `name{label="value",other=value}` (quotes optional), the syntax of the EPP's metric-name flags.
 */
export function parseMetricSpec(spec: string): MetricSpec {
  const m = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$/.exec(spec);
  if (!m) throw new Error(`invalid metric spec "${spec}": expected name or name{label=value,...}`);
  const name = m[1] as string;
  const body = m[2];
  if (body === undefined || body.trim() === '') return { name };
  const labels: Record<string, string> = {};
  for (const part of body.split(',')) {
    if (part.trim() === '') continue;
    const lm = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*(?:"([^"]*)"|([^"\s]*))\s*$/.exec(part);
    if (!lm) throw new Error(`invalid label matcher "${part.trim()}" in metric spec "${spec}"`);
    labels[lm[1] as string] = lm[2] ?? lm[3] ?? '';
  }
  return { name, labels };
}

function selectSeries(family: MetricFamily | undefined, spec: MetricSpec, modelName: string | undefined): PromSample[] {
  if (!family) return [];
  return family.samples.filter((s) => {
    // A histogram/summary family never carries a gauge reading; only samples named like the family count.
    if (s.name !== family.name) return false;
    if (!Number.isFinite(s.value)) return false;
    if (modelName !== undefined && s.labels.model_name !== undefined && s.labels.model_name !== modelName) return false;
    if (spec.labels) {
      for (const [k, v] of Object.entries(spec.labels)) if (s.labels[k] !== v) return false;
    }
    return true;
  });
}

interface CacheInfo {
  blockSize?: number;
  numGpuBlocks?: number;
}

function readCacheInfo(series: PromSample[]): CacheInfo {
  const info: CacheInfo = {};
  for (const s of series) {
    const bs = parsePositiveInt(s.labels.block_size);
    if (bs !== undefined && info.blockSize === undefined) info.blockSize = bs;
    // Every engine's series carries the pod's total (see the top of this file): the largest, never the sum.
    const blocks = parsePositiveInt(s.labels.num_gpu_blocks);
    if (blocks !== undefined) info.numGpuBlocks = Math.max(blocks, info.numGpuBlocks ?? 0);
  }
  return info;
}

function parsePositiveInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return n > 0 && Number.isSafeInteger(n) ? n : undefined;
}

function sum(samples: PromSample[]): number {
  let t = 0;
  for (const s of samples) t += s.value;
  return t;
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

// ---- The latency model's engine counters (epp/src/latency/); kept apart from the routing gauges above. ----

/**
 * The engine counters the latency model learns TTFT from, as vLLM 0.10's v1 engine exposes them
 * (vllm-project/vllm: vllm/v1/metrics/loggers.py @ v0.10.0; prometheus_client appends `_total` to counter names).
 * Prefix-cache queries and hits are read as a pair from one generation of names: `vllm:prefix_cache_*` since 0.10, the
 * `vllm:gpu_prefix_cache_*` names before (deprecated in 0.10, still exported).
 */
export const VLLM_LATENCY_METRIC_NAMES = Object.freeze({
  timeToFirstToken: 'vllm:time_to_first_token_seconds',
  /**
   * The gap before each output token after a request's first, newest name first: vLLM 0.10.2 added
   * `vllm:inter_token_latency_seconds` and observes every sample into both it and the deprecated
   * `vllm:time_per_output_token_seconds` (`PrometheusStatLogger.record`: `for itl in inter_token_latencies_iter`, both
   * `.observe(itl)`, vllm/v1/metrics/loggers.py, "Deprecated in 0.11"); 0.10.0 has only the old name, observed from
   * `time_per_output_tokens_iter` with the same meaning (loggers.py @ v0.10.0). A page is read from the first family it
   * has, never both (that would count each token twice).
   */
  interTokenLatency: Object.freeze(['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds']),
  /** Seconds each finished request spent RUNNING (`FinishedRequestStats.inference_time`, vllm/v1/metrics/stats.py). */
  inferenceTime: 'vllm:request_inference_time_seconds',
  /**
   * Prompt tokens of each finished request (`FinishedRequestStats.num_prompt_tokens`): the prefix index's characters per
   * token (`characters-per-token.ts`), not the latency model, reads it.
   */
  promptTokens: 'vllm:request_prompt_tokens',
  prefixCache: Object.freeze([
    Object.freeze({ queries: 'vllm:prefix_cache_queries_total', hits: 'vllm:prefix_cache_hits_total' }),
    Object.freeze({ queries: 'vllm:gpu_prefix_cache_queries_total', hits: 'vllm:gpu_prefix_cache_hits_total' }),
  ]),
});

const LATENCY_FAMILIES: readonly string[] = [
  VLLM_LATENCY_METRIC_NAMES.timeToFirstToken,
  ...VLLM_LATENCY_METRIC_NAMES.interTokenLatency,
  VLLM_LATENCY_METRIC_NAMES.inferenceTime,
  VLLM_LATENCY_METRIC_NAMES.promptTokens,
  ...VLLM_LATENCY_METRIC_NAMES.prefixCache.flatMap((p) => [p.queries, p.hits]),
];

type LatencyCounters = Pick<VllmMetricsReading, 'firstTokenCount' | 'firstTokenSecondsSum' | 'interTokenCount' | 'interTokenSecondsSum' | 'inferenceCount' | 'inferenceSecondsSum' | 'promptTokensCount' | 'promptTokensSum' | 'prefixCacheQueryTokens' | 'prefixCacheHitTokens'>;

/**
 * A histogram family's `_count` and `_sum` summed over the series (label sets without `le`, as `histogramSeries` groups
 * them) that `keep` accepts and that have both, finite; undefined when there are none. A page's family holds a series
 * or a few (one per engine and model) and the kept lines no buckets, so series are told apart by comparing their
 * labels, not by `histogramSeries`' sorted label keys (a seventh of a changed page's reading); past
 * `LINEAR_SERIES_LIMIT` series `histogramSeries` groups them, so a hostile page costs linear time. Same sums, added in
 * the same order (the series' first appearance).
 */
function histogramTotals(family: MetricFamily | undefined, keep: (labels: Readonly<Record<string, string>>) => boolean): { count: number; sum: number } | undefined {
  if (family === undefined || family.type !== 'histogram') return undefined;
  const countName = `${family.name}_count`;
  const sumName = `${family.name}_sum`;
  let groups: { labels: Readonly<Record<string, string>>; count?: number; sum?: number }[] = [];
  for (const s of family.samples) {
    let g = groups.find((x) => sameLabelsBesidesLe(x.labels, s.labels));
    if (g === undefined) {
      if (groups.length === LINEAR_SERIES_LIMIT) {
        groups = histogramSeries(family);
        break;
      }
      g = { labels: withoutLe(s.labels) };
      groups.push(g);
    }
    if (s.name === sumName) g.sum = s.value;
    else if (s.name === countName) g.count = s.value;
  }
  let count = 0;
  let sum = 0;
  let any = false;
  for (const g of groups) {
    if (!Number.isFinite(g.count) || !Number.isFinite(g.sum) || !keep(g.labels)) continue;
    count += g.count as number;
    sum += g.sum as number;
    any = true;
  }
  return any ? { count, sum } : undefined;
}

const LINEAR_SERIES_LIMIT = 32;

function withoutLe(labels: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  if (labels.le === undefined) return labels;
  const { le: _le, ...rest } = labels;
  return rest;
}

/** Whether two label sets are the same once `le` is left out of both. */
function sameLabelsBesidesLe(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  let n = 0;
  for (const k in a) {
    if (k === 'le') continue;
    if (b[k] !== a[k]) return false;
    n++;
  }
  for (const k in b) if (k !== 'le') n--;
  return n === 0;
}

/** The latency model's counters, written into `out`. */
function extractLatencyCounters(families: ReadonlyMap<string, MetricFamily>, modelName: string | undefined, out: { -readonly [K in keyof LatencyCounters]?: LatencyCounters[K] }): void {
  const forModel = (labels: Readonly<Record<string, string>>) =>
    modelName === undefined || labels.model_name === undefined || labels.model_name === modelName;
  const ttft = histogramTotals(families.get(VLLM_LATENCY_METRIC_NAMES.timeToFirstToken), forModel);
  if (ttft !== undefined) {
    out.firstTokenCount = ttft.count;
    out.firstTokenSecondsSum = ttft.sum;
  }
  for (const name of VLLM_LATENCY_METRIC_NAMES.interTokenLatency) {
    const itl = histogramTotals(families.get(name), forModel);
    if (itl === undefined) continue;
    out.interTokenCount = itl.count;
    out.interTokenSecondsSum = itl.sum;
    break;
  }
  const inference = histogramTotals(families.get(VLLM_LATENCY_METRIC_NAMES.inferenceTime), forModel);
  if (inference !== undefined) {
    out.inferenceCount = inference.count;
    out.inferenceSecondsSum = inference.sum;
  }
  const prompts = histogramTotals(families.get(VLLM_LATENCY_METRIC_NAMES.promptTokens), forModel);
  if (prompts !== undefined) {
    out.promptTokensCount = prompts.count;
    out.promptTokensSum = prompts.sum;
  }
  for (const pair of VLLM_LATENCY_METRIC_NAMES.prefixCache) {
    const queries = selectSeries(families.get(pair.queries), { name: pair.queries }, modelName);
    const hits = selectSeries(families.get(pair.hits), { name: pair.hits }, modelName);
    if (queries.length > 0 && hits.length > 0) {
      out.prefixCacheQueryTokens = sum(queries);
      out.prefixCacheHitTokens = sum(hits);
      break;
    }
  }
}
