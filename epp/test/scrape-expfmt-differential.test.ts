import * as fs from 'node:fs';
import * as path from 'node:path';
import { refParse, refRead, type RefFamily } from './expfmt-reference';
import { LORA_INFO_METRIC, VLLM_METRIC_NAMES, VllmPageReader, type VllmMetricsReading } from '../src/datastore/vllm-metrics';
import { seededRandom } from '@kvroute/testkit';

/**
 * kvroute's page reader against a reference model of how llm-d-router v0.10.0 (GIE v1.6.0's EPP) reads a pod's page:
 * prometheus/common v0.67.5's expfmt TextParser, ported in `expfmt-reference.ts`, and upstream's metrics extractor.
 * Seeded pages: the simulator's vLLM v0.10.0 page (`fixtures/sim-metrics-page.txt`) with random values and LoRA series,
 * mutated by the cases the text format leaves open. Where upstream reads the page, kvroute must read it without an
 * issue and read the same values family by family; where upstream refuses it, kvroute must refuse it too (an issue,
 * which the scraper turns into a failed scrape) unless the mutation is one of the documented leniencies below.
 * Each page is read by a fresh reader's byte and string paths, and by one reader across the whole sequence, half of
 * whose pages repeat the one before (its unchanged-page path).
 */

const simPage = fs.readFileSync(path.join(__dirname, 'fixtures', 'sim-metrics-page.txt'), 'utf8');
const names = { ...VLLM_METRIC_NAMES, loraInfo: LORA_INFO_METRIC };
const W = 'vllm:num_requests_waiting';
const TTFT = 'vllm:time_to_first_token_seconds';
const PROMPT = 'vllm:request_prompt_tokens';

function setValue(page: string, series: string, value: string): string {
  const at = page.indexOf(`\n${series}{`);
  if (at < 0) throw new Error(`no ${series}`);
  const end = page.indexOf('\n', at + 1);
  const line = page.slice(at + 1, end);
  return `${page.slice(0, at + 1)}${line.slice(0, line.lastIndexOf(' '))} ${value}${page.slice(end)}`;
}

/** A page of one engine, as vLLM v0.10.0 writes it, with random values and 0-3 LoRA series. */
function basePage(r: () => number): string {
  const int = (n: number) => Math.floor(r() * n);
  let p = simPage;
  p = setValue(p, W, `${int(50)}.0`);
  p = setValue(p, 'vllm:num_requests_running', `${int(50)}.0`);
  p = setValue(p, 'vllm:kv_cache_usage_perc', String(r()));
  p = setValue(p, `${TTFT}_count`, `${int(1000)}.0`);
  p = setValue(p, `${TTFT}_sum`, String(r() * 100));
  p = setValue(p, `${PROMPT}_count`, `${int(1000)}.0`);
  p = setValue(p, `${PROMPT}_sum`, `${int(100000)}.0`);
  p = p.replace('num_gpu_blocks="8192"', `num_gpu_blocks="${1 + int(100000)}"`).replace('block_size="16"', `block_size="${[16, 32, 64][int(3)]}"`);
  const loras = int(4);
  if (loras > 0) {
    p += '# HELP vllm:lora_requests_info Running stats on lora requests.\n# TYPE vllm:lora_requests_info gauge\n';
    for (let i = 0; i < loras; i++) {
      p += `vllm:lora_requests_info{max_lora="${1 + int(4)}",running_lora_adapters="${['', 'a', 'a,b', ' b , c '][int(4)]}",waiting_lora_adapters="${['', 'd', 'a,d'][int(3)]}"} ${(1.7e9 + int(1e6)).toExponential()}\n`;
    }
  }
  return p;
}

const waitingLine = (p: string) => {
  const at = p.indexOf(`\n${W}{`) + 1;
  return [at, p.indexOf('\n', at)] as const;
};
const onWaiting = (f: (line: string) => string) => (p: string) => {
  const [a, b] = waitingLine(p);
  return p.slice(0, a) + f(p.slice(a, b)) + p.slice(b);
};

/**
 * The mutations. `lenient`: upstream refuses the page and kvroute reads it, deliberately (epp/README.md,
 * "Endpoints and metrics", the scraped families): lines of families kvroute does not read are never checked (the
 * line filter that makes a scrape cheap drops them unread), and CR line ends, a last line without its newline and
 * blanks after a value are tolerated.
 */
const MUTATIONS: Array<{ name: string; lenient?: boolean; apply: (p: string) => string }> = [
  { name: 'CRLF line ends', lenient: true, apply: (p) => p.replace(/\n/g, '\r\n') },
  { name: 'no final newline', lenient: true, apply: (p) => p.replace(/\n$/, '') },
  { name: 'a blank after the waiting value', lenient: true, apply: onWaiting((l) => `${l} `) },
  { name: 'a timestamp and a blank', lenient: true, apply: onWaiting((l) => `${l} 1700000000000 `) },
  { name: 'a bad HELP escape in another family', lenient: true, apply: (p) => p.replace('# HELP vllm:num_preemptions_created Cumulative', '# HELP vllm:num_preemptions_created \\tCumulative') },
  { name: 'a second HELP of another family', lenient: true, apply: (p) => `${p}# HELP vllm:num_preemptions_created again\n` },
  { name: 'garbage in another family', lenient: true, apply: (p) => `${p}vllm:foo{ 1\n` },
  { name: '1e400 in another family', lenient: true, apply: (p) => setValue(p, 'vllm:num_preemptions_created', '1e400') },
  { name: 'a timestamp', apply: onWaiting((l) => `${l} 1700000000000`) },
  { name: 'tabs between tokens', apply: onWaiting((l) => l.replace(/\} /, '}\t')) },
  { name: 'blanks inside the label set', apply: onWaiting((l) => l.replace('{', ' { ').replace(/,/g, ' , ').replace(/="/g, ' = "').replace('}', ' , } ')) },
  { name: 'the value right after }', apply: onWaiting((l) => l.replace('} ', '}')) },
  { name: 'leading blanks', apply: onWaiting((l) => `  ${l}`) },
  { name: 'escapes in a label value', apply: onWaiting((l) => l.replace('model_name="Qwen/Qwen3-0.6B"', 'model_name="Q\\"w\\\\e\\nn"')) },
  { name: '} , # in a label value', apply: onWaiting((l) => l.replace('model_name="Qwen/Qwen3-0.6B"', 'model_name="a}b,c#d"')) },
  { name: 'an exponent', apply: onWaiting((l) => l.replace(/ (\d+)\.0$/, ' $1e0')) },
  { name: 'a signed value', apply: onWaiting((l) => l.replace(/ (\d+)\.0$/, ' +$1')) },
  { name: 'a hex value', apply: onWaiting((l) => l.replace(/ (\d+)\.0$/, ' 0x$1')) },
  { name: 'an underscore value', apply: onWaiting((l) => l.replace(/ (\d+)\.0$/, ' 1_0')) },
  { name: 'a value beyond the float range', apply: onWaiting((l) => l.replace(/ (\d+)\.0$/, ' 1e400')) },
  { name: 'an unterminated label set', apply: onWaiting((l) => l.replace('}', '')) },
  { name: 'a duplicate label', apply: onWaiting((l) => l.replace('{engine="0"', '{engine="0",engine="1"')) },
  { name: 'a bad escape', apply: onWaiting((l) => l.replace('model_name="', 'model_name="\\t')) },
  { name: '#TYPE', apply: (p) => p.replace(`# TYPE ${TTFT} histogram`, `#TYPE ${TTFT} histogram`) },
  { name: '# TYPE<tab>name', apply: (p) => p.replace(`# TYPE ${TTFT} histogram`, `# TYPE\t${TTFT} histogram`) },
  { name: 'two blanks after TYPE', apply: (p) => p.replace(`# TYPE ${PROMPT} histogram`, `# TYPE  ${PROMPT} histogram`) },
  { name: 'an upper-case type', apply: (p) => p.replace(`# TYPE ${TTFT} histogram`, `# TYPE ${TTFT} HISTOGRAM`) },
  { name: 'gaugehistogram', apply: (p) => p.replace(`# TYPE ${PROMPT} histogram`, `# TYPE ${PROMPT} gaugehistogram`) },
  { name: 'a blank after the type', apply: (p) => p.replace(`# TYPE ${W} gauge`, `# TYPE ${W} gauge `) },
  { name: 'an unknown type', apply: (p) => p.replace(`# TYPE ${W} gauge`, `# TYPE ${W} gauges`) },
  { name: 'TYPE after the samples', apply: (p) => p.replace(/(# TYPE vllm:num_requests_waiting gauge\n)(vllm:num_requests_waiting[^\n]*\n)/, '$2$1') },
  { name: 'a second TYPE block', apply: (p) => `${p}# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="1"} 5.0\n` },
  { name: '# EOF', apply: (p) => `${p}# EOF\n` },
  { name: 'a histogram sample without a suffix', apply: (p) => p.replace(`\n${TTFT}_count{`, `\n${TTFT}{engine="0"} 7\n${TTFT}_count{`) },
  { name: 'a longer family named like a wanted one', apply: (p) => `${p}# TYPE ${W}_by_reason gauge\n${W}_by_reason{reason="x"} 9.0\n${W}_total 4\n` },
  { name: 'a plain comment', apply: (p) => `# a comment # TYPE ${W} counter\n${p}` },
  { name: 'blank lines', apply: (p) => `\n \n${p.replace(`# TYPE ${W}`, `\n\t\n# TYPE ${W}`)}` },
];

interface Values {
  waiting?: number;
  running?: number;
  kv?: number;
  blockSize?: number;
  numGpuBlocks?: number;
  lora?: { running: string[]; waiting: string[]; maxLora?: number };
  ttft?: [number | undefined, number | undefined];
  prompt?: [number | undefined, number | undefined];
}

/** The one engine's histogram `_count` and `_sum`, as expfmt groups them. */
function histogramOf(f: RefFamily | undefined): [number | undefined, number | undefined] | undefined {
  const h = f?.metric[0]?.histogram;
  if (h === undefined) return undefined;
  return [h.sampleCount ?? h.sampleCountFloat, h.sampleSum];
}

function reference(page: string): { error?: string; values: Values } {
  const read = refRead(page);
  if (read.error !== undefined) return { error: read.error, values: {} };
  const fams = refParse(page).families;
  const { error: _e, ...values } = read;
  return { values: { waiting: values.waiting, running: values.running, kv: values.kvUsage, blockSize: values.blockSize, numGpuBlocks: values.numGpuBlocks, lora: values.lora, ttft: histogramOf(fams.get(TTFT)), prompt: histogramOf(fams.get(PROMPT)) } };
}

function ours(r: VllmMetricsReading): Values {
  return {
    waiting: r.waitingQueueSize,
    running: r.runningQueueSize,
    kv: r.kvCacheMetric === 'vllm:kv_cache_usage_perc' ? r.kvCacheUsagePercent : undefined,
    blockSize: r.blockSize,
    numGpuBlocks: r.numGpuBlocks,
    lora: r.lora === undefined ? undefined : { running: [...r.lora.running], waiting: [...r.lora.waiting], ...(r.lora.maxLora !== undefined ? { maxLora: r.lora.maxLora } : {}) },
    ttft: r.firstTokenCount === undefined ? undefined : [r.firstTokenCount, r.firstTokenSecondsSum],
    prompt: r.promptTokensCount === undefined ? undefined : [r.promptTokensCount, r.promptTokensSum],
  };
}

describe('the page reader against a model of expfmt and llm-d-router v0.10.0 extraction', () => {
  it('seeded vLLM pages, mutated: the same values where upstream reads the page, refused where it refuses it (bar the documented leniencies)', () => {
    const r = seededRandom(76);
    const sequence = new VllmPageReader({ names });
    const seen = new Map<string, { agreed: number; refusedBoth: number; lenient: number }>();
    let previous: string | undefined;
    let previousApplied: typeof MUTATIONS = [];
    let mutated = 0;
    for (let i = 0; i < 260; i++) {
      let page: string;
      let applied: typeof MUTATIONS = [];
      if (previous !== undefined && r() < 0.5) {
        page = previous; // unchanged: the sequence reader reuses its reading
        applied = previousApplied;
      } else {
        page = basePage(r);
        const count = r() < 0.2 ? 0 : r() < 0.8 ? 1 : 2;
        for (let k = 0; k < count; k++) {
          // The first in turn, so each is met; a second at random, to meet them in pairs.
          const m = MUTATIONS[k === 0 ? mutated++ % MUTATIONS.length : Math.floor(r() * MUTATIONS.length)] as (typeof MUTATIONS)[number];
          if (applied.includes(m)) continue;
          applied.push(m);
          page = m.apply(page);
        }
      }
      previous = page;
      previousApplied = applied;
      const ref = reference(page);
      const readings = [new VllmPageReader({ names }).readBytes(Buffer.from(page)), new VllmPageReader({ names }).read(page), sequence.readBytes(Buffer.from(page))];
      const key = applied.map((m) => m.name).join(' + ') || 'none';
      const tally = seen.get(key) ?? { agreed: 0, refusedBoth: 0, lenient: 0 };
      seen.set(key, tally);
      for (const reading of readings) {
        const what = `page ${i} (${key})`;
        if (ref.error === undefined) {
          expect({ what, issues: reading.issues.map((x) => x.message) }).toEqual({ what, issues: [] });
          expect({ what, values: ours(reading) }).toEqual({ what, values: ref.values });
        } else if (reading.issues.length === 0) {
          expect({ what, upstream: ref.error, lenient: applied.some((m) => m.lenient) }).toEqual({ what, upstream: ref.error, lenient: true });
        }
      }
      if (ref.error === undefined) tally.agreed++;
      else if ((readings[0] as VllmMetricsReading).issues.length > 0) tally.refusedBoth++;
      else tally.lenient++;
    }
    if (process.env.SHOW_TALLY) console.log([...seen].map(([k, t]) => `${k}: ${JSON.stringify(t)}`).join("\n"));
    // Both paths and every kind of outcome were exercised.
    expect(sequence.reused).toBeGreaterThan(60);
    expect(sequence.strictParses).toBeGreaterThan(20);
    const totals = [...seen.values()].reduce((a, t) => ({ agreed: a.agreed + t.agreed, refusedBoth: a.refusedBoth + t.refusedBoth, lenient: a.lenient + t.lenient }), { agreed: 0, refusedBoth: 0, lenient: 0 });
    expect(totals.agreed).toBeGreaterThan(60);
    expect(totals.refusedBoth).toBeGreaterThan(5);
    expect(totals.lenient).toBeGreaterThan(5);
    for (const m of MUTATIONS) expect([m.name, [...seen.keys()].some((k) => k.split(' + ').includes(m.name))]).toEqual([m.name, true]);
  });
});
