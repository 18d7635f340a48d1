import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderVllmMetrics } from '@kvroute/testkit';
import { parsePrometheusText, type MetricFamily } from '@kvroute/protocol/prometheus';
import { parseKeptLines } from '../src/datastore/kept-lines-parser';
import { extractVllmMetrics, VLLM_LATENCY_METRIC_NAMES, VLLM_METRIC_NAMES, VllmPageReader, wantedLines, type VllmMetricsReading, type VllmParseOptions } from '../src/datastore/vllm-metrics';

// The fast reader of a changed page's kept lines must build exactly what the strict parser builds, or decline.
const wanted = [...new Set([
  VLLM_METRIC_NAMES.waiting.name, VLLM_METRIC_NAMES.running.name, VLLM_METRIC_NAMES.cacheInfo.name,
  ...VLLM_METRIC_NAMES.kvUsage.map((s) => s.name), VLLM_LATENCY_METRIC_NAMES.timeToFirstToken, ...VLLM_LATENCY_METRIC_NAMES.interTokenLatency, VLLM_LATENCY_METRIC_NAMES.inferenceTime, VLLM_LATENCY_METRIC_NAMES.promptTokens,
  ...VLLM_LATENCY_METRIC_NAMES.prefixCache.flatMap((p) => [p.queries, p.hits]),
])];
const wantedSet = new Set(wanted);

/** Families as plain data, so the two parsers' outputs compare by content (NaN equals NaN under toEqual). */
function plain(families: ReadonlyMap<string, MetricFamily>): unknown {
  return [...families.values()].map((f) => ({
    name: f.name,
    type: f.type,
    samples: f.samples.map((s) => ({ name: s.name, labels: { ...s.labels }, value: s.value, timestampMs: s.timestampMs })),
  }));
}

/** The reading the strict parser gives, as the EPP read every changed page before the fast reader. */
function strictReading(page: string, options: VllmParseOptions = {}): VllmMetricsReading {
  const parsed = parsePrometheusText(wantedLines(page, wanted), { strict: false, families: wantedSet });
  return { ...extractVllmMetrics(parsed.families, options), issues: parsed.issues };
}

/** Checks one text both ways; returns whether the fast reader accepted it. */
function agree(text: string): boolean {
  const strict = parsePrometheusText(text, { strict: false, families: wantedSet });
  const fast = parseKeptLines(text, wantedSet);
  if (fast !== undefined) {
    expect(strict.issues).toEqual([]);
    expect(plain(fast)).toEqual(plain(strict.families));
  }
  return fast !== undefined;
}

const W = 'vllm:num_requests_waiting';
const R = 'vllm:num_requests_running';
const H = VLLM_LATENCY_METRIC_NAMES.timeToFirstToken;
const simPage = fs.readFileSync(path.join(__dirname, 'fixtures', 'sim-metrics-page.txt'), 'utf8');

describe('parseKeptLines (the changed page fast path) against the strict parser', () => {
  // [case, text, whether the fast reader takes it]
  const cases: Array<[string, string, boolean]> = [
    ['the simulator page (kept lines)', wantedLines(simPage, wanted), true],
    ['the simulator page, whole', simPage, false], // HELP lines are the strict parser's
    ['the benchmark page (kept lines)', wantedLines(renderVllmMetrics({ modelName: 'm', engines: [{ waiting: 1, running: 2, kvUsage: 0.3, numGpuBlocks: 10 }, { waiting: 0, running: 1, kvUsage: 0.1, numGpuBlocks: 30 }], blockSize: 16 }), wanted), true],
    ['CRLF line ends', wantedLines(simPage.replace(/\n/g, '\r\n'), wanted), true],
    ['no final newline', `# TYPE ${W} gauge\n${W} 3.0`, true],
    ['labels in any order', `${W}{model_name="m",engine="1"} 3\n${W}{engine="0",model_name="m"} 4\n`, true],
    ['a trailing comma and empty braces', `${W}{engine="0",} 3\n${R}{} 4\n`, true],
    ['+Inf, -Inf, NaN in any case', `${W} +Inf\n${R} -inf\nvllm:kv_cache_usage_perc NaN\nvllm:gpu_cache_usage_perc nan\n`, true],
    ['exponents, signs, leading and trailing dots', `${W} 1.5e3\n${R} -2E-1\nvllm:kv_cache_usage_perc .5\nvllm:gpu_cache_usage_perc 5.\n${W}{engine="1"} +7\n`, true],
    ['an exponent as prometheus_client writes _created', `vllm:prefix_cache_queries_total 1.795968730029e+09\n`, true],
    ['missing families', `# TYPE ${R} gauge\n`, true],
    ['an empty page', '', true],
    ['only blank line ends', '\n\n\r\n', true],
    ['histogram _sum/_count and a valid bucket', `# TYPE ${H} histogram\n${H}_bucket{le="+Inf"} 3\n${H}_count 3\n${H}_sum 0.5\n`, true],
    ['_sum/_count of a gauge are not its samples', `# TYPE ${W} gauge\n${W} 1\n${W}_sum 4\n${W}_count 5\n`, true],
    ['a wanted name typed after another family', `# TYPE other gauge\nother 1\n# TYPE ${W} counter\n${W} 2\n`, true],
    ['a label named like an Object member', `${W}{constructor="x",toString="y",hasOwnProperty="z"} 1\n`, true],
    ['non-ASCII label values', `${W}{model_name="模型 é"} 4\n`, true],
    // Declined: the strict parser reads these (escapes, blanks, timestamps) or reports them (the rest).
    ['an escaped quote in a label value', `${W}{model_name="a\\"b"} 1\n`, false],
    ['an escaped backslash and newline', `${W}{model_name="a\\\\b\\nc"} 1\n`, false],
    ['a timestamp', `${W} 1 1700000000000\n`, false],
    ['blanks around labels', `${W}{ engine = "0" } 1\n`, false],
    ['a tab before the value', `${W}\t1\n`, false],
    ['trailing blanks', `${W} 1 \n`, false],
    ['leading blanks', `  ${W} 1\n`, false],
    ['a HELP line', `# HELP ${W} help\n${W} 1\n`, false],
    ['a duplicate label', `${W}{engine="0",engine="1"} 1\n`, false],
    ['a __proto__ label', `${W}{__proto__="x"} 1\n`, false],
    ['a second TYPE', `# TYPE ${W} gauge\n# TYPE ${W} gauge\n`, false],
    ['a TYPE after samples', `${W} 1\n# TYPE ${W} gauge\n`, false],
    ['an unknown type', `# TYPE ${W} bogus\n`, false],
    ['a histogram sample without a suffix', `# TYPE ${H} histogram\n${H} 1\n`, false],
    ['a bucket without le', `# TYPE ${H} histogram\n${H}_bucket 1\n`, false],
    ['a bucket with a bad le', `# TYPE ${H} histogram\n${H}_bucket{le="x"} 1\n`, false],
    ['a summary quantile without quantile', `# TYPE ${W} summary\n${W} 1\n`, false],
    ['a bad value', `${W} 1x\n`, false],
    ['hex and Go-only spellings', `${W} 0x10\n`, false],
    ['a lone dot', `${W} .\n`, false],
    ['a missing value', `${W}\n`, false],
    ['an unterminated label set', `${W}{engine="0" 1\n`, false],
    ['an unquoted label value', `${W}{engine=0} 1\n`, false],
    ['a label name starting with a digit', `${W}{0a="x"} 1\n`, false],
    ['a name followed by a non-ASCII character', `${W}é 1\n`, false],
    ['garbage', `} x\n`, false],
  ];

  it.each(cases)('%s: the same families, or declined', (_name, text, fast) => {
    expect(agree(text)).toBe(fast);
  });

  it.each(cases)('%s: the page reader reads what the strict parser reads, bytes or text', (_name, text) => {
    for (const modelName of [undefined, 'm', 'Qwen/Qwen3-0.6B']) {
      expect(new VllmPageReader({ modelName }).readBytes(Buffer.from(text))).toEqual(strictReading(text, { modelName }));
      expect(new VllmPageReader({ modelName }).read(text)).toEqual(strictReading(text, { modelName }));
    }
  });

  it('other families lines are skipped unchecked, as the strict parser skips them', () => {
    expect(agree('other_metric{bad label} x\n# TYPE other_metric bogus\n')).toBe(true);
  });

  it('random pages of vLLM-like fragments: same families whenever accepted, and both paths exercised', () => {
    // mulberry32: 32-bit arithmetic throughout (a float LCG loses its low bits past 2^53 and repeats itself).
    let seed = 4242;
    const rnd = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const names = [...wanted, `${H}_sum`, `${H}_count`, `${H}_bucket`, `${W}_sum`, `${W}_created`, 'vllm:other', 'process_cpu_seconds_total'];
    const labelSets = ['', '{engine="0",model_name="m"}', '{model_name="m",engine="1"}', '{le="+Inf"}', '{le="0.5",engine="0"}', '{quantile="0.9"}', '{block_size="16",num_gpu_blocks="100",engine="0"}', '{}', '{a="b",}', '{a="\\"x"}', '{a="1",a="2"}', '{ a="1"}'];
    const values = ['1.0', '0', '2.5e-3', '+Inf', '-Inf', 'NaN', '.5', '7.', '-1', '1 123', 'x', ''];
    const types = ['gauge', 'counter', 'histogram', 'summary', 'untyped', 'bogus'];
    const lineOf = (): string => {
      switch (rnd(8)) {
        case 0: return `# TYPE ${names[rnd(names.length)]} ${types[rnd(types.length)]}`;
        case 1: return rnd(4) === 0 ? ['', '\r', '# HELP x y', '} z'][rnd(4)] as string : '';
        default: return `${names[rnd(names.length)]}${labelSets[rnd(labelSets.length)]} ${values[rnd(values.length)]}${rnd(10) === 0 ? '\r' : ''}`;
      }
    };
    let accepted = 0;
    let declined = 0;
    const reader = new VllmPageReader({ modelName: 'm' });
    for (let p = 0; p < 1500; p++) {
      const lines = Array.from({ length: 1 + rnd(rnd(2) === 0 ? 4 : 16) }, lineOf);
      const text = p % 3 === 2 ? lines.join('\n') : `${lines.join('\n')}\n`;
      if (agree(text)) accepted++;
      else declined++;
      expect(reader.readBytes(Buffer.from(text))).toEqual(strictReading(text, { modelName: 'm' }));
    }
    expect(accepted).toBeGreaterThan(150);
    expect(declined).toBeGreaterThan(150);
  });

  it('the page reader counts the pages the strict parser read: none of the simulator page, one with an escape', () => {
    const reader = new VllmPageReader();
    reader.readBytes(Buffer.from(simPage));
    reader.readBytes(Buffer.from(simPage.replace(/^(vllm:num_requests_waiting\{.*\}) 0\.0$/m, '$1 3.0')));
    expect({ pages: reader.pages, reused: reader.reused, strictParses: reader.strictParses }).toEqual({ pages: 2, reused: 0, strictParses: 0 });
    const escaped = simPage.replace('model_name="Qwen/Qwen3-0.6B"', 'model_name="Qwen/\\"Qwen3\\""');
    expect(reader.readBytes(Buffer.from(escaped))).toEqual(strictReading(escaped));
    expect(reader.strictParses).toBe(1);
  });
});
