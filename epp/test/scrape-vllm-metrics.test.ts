import { renderVllmMetrics } from '@kvroute/testkit';
import { EMPTY_METRICS } from '../src/datastore/types';
import { histogramSeries, parsePrometheusText } from '@kvroute/protocol/prometheus';
import { applyReading, extractVllmMetrics, hasLoadSignal, LORA_INFO_METRIC, parseMetricSpec, parseVllmMetrics, processStartTimeOf, VLLM_LATENCY_METRIC_NAMES, VLLM_METRIC_NAMES, VllmPageReader, wantedLineBytes, wantedLines } from '../src/datastore/vllm-metrics';
import * as fs from 'node:fs';
import * as path from 'node:path';

describe('parseVllmMetrics', () => {
  it('reads queue, KV usage and cache config from a single-engine page', () => {
    const r = parseVllmMetrics(renderVllmMetrics({ engines: [{ waiting: 3, running: 7, kvUsage: 0.42, numGpuBlocks: 27153 }], blockSize: 16 }));
    expect(r).toMatchObject({
      waitingQueueSize: 3,
      runningQueueSize: 7,
      kvCacheUsagePercent: 0.42,
      kvCacheMetric: 'vllm:kv_cache_usage_perc',
      blockSize: 16,
      numGpuBlocks: 27153,
      engines: 1,
    });
    expect(r.issues).toEqual([]);
  });

  it('sums queues and averages KV usage across engines, and reads the pod\'s blocks once (each engine\'s series carries the total, as vLLM renders them)', () => {
    const r = parseVllmMetrics(
      renderVllmMetrics({
        engines: [
          { waiting: 2, running: 5, kvUsage: 0.9, numGpuBlocks: 1000 },
          { waiting: 1, running: 4, kvUsage: 0.3, numGpuBlocks: 3000 },
        ],
      }),
    );
    expect(r.waitingQueueSize).toBe(3);
    expect(r.runningQueueSize).toBe(9);
    expect(r.kvCacheUsagePercent).toBeCloseTo(0.6, 10);
    expect(r.numGpuBlocks).toBe(4000);
    expect(r.engines).toBe(2);
  });

  // vLLM 0.10 with --data-parallel-size 2 behind one API server: the front end adds its engines' blocks into its one
  // CacheConfig (vllm/v1/engine/utils.py wait_for_engine_startup, "Sum values from all engines in DP case") and
  // PrometheusStatLogger.log_metrics_info labels each engine's cache_config_info series with that config
  // (vllm/v1/metrics/loggers.py): two engines of 1,000 blocks show 2,000 on both series.
  it('reads a data-parallel pod\'s num_gpu_blocks once: every engine\'s cache_config_info series carries the pod total', () => {
    const info = (engine: number): string => `vllm:cache_config_info{block_size="16",engine="${engine}",num_gpu_blocks="2000"} 1.0`;
    const r = parseVllmMetrics([
      '# TYPE vllm:num_requests_waiting gauge',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 0.0',
      'vllm:num_requests_waiting{engine="1",model_name="m"} 0.0',
      '# TYPE vllm:kv_cache_usage_perc gauge',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5',
      'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.1',
      '# TYPE vllm:cache_config_info gauge',
      info(0),
      info(1),
      '',
    ].join('\n'));
    expect({ engines: r.engines, numGpuBlocks: r.numGpuBlocks, blockSize: r.blockSize }).toEqual({ engines: 2, numGpuBlocks: 2000, blockSize: 16 });
    expect(r.kvCacheUsagePercent).toBeCloseTo(0.3, 10);
  });

  it('averages KV usage without cache_config_info too, and has no block count then', () => {
    const r = parseVllmMetrics(
      renderVllmMetrics({
        cacheConfigInfo: false,
        engines: [
          { waiting: 0, running: 0, kvUsage: 0.2 },
          { waiting: 0, running: 0, kvUsage: 0.6 },
        ],
      }),
    );
    expect(r.kvCacheUsagePercent).toBeCloseTo(0.4, 10);
    expect(r.blockSize).toBeUndefined();
    expect(r.numGpuBlocks).toBeUndefined();
  });

  it('falls back to vllm:gpu_cache_usage_perc when kv_cache_usage_perc is absent (pre-0.9.2 servers)', () => {
    const r = parseVllmMetrics(renderVllmMetrics({ kvCacheUsage: false, engines: [{ waiting: 0, running: 1, kvUsage: 0.66 }] }));
    expect(r.kvCacheUsagePercent).toBe(0.66);
    expect(r.kvCacheMetric).toBe('vllm:gpu_cache_usage_perc');
  });

  it('prefers kv_cache_usage_perc when both names are exported', () => {
    const text = [
      '# TYPE vllm:gpu_cache_usage_perc gauge',
      'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.1',
      '# TYPE vllm:kv_cache_usage_perc gauge',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2',
    ].join('\n');
    expect(parseVllmMetrics(text).kvCacheUsagePercent).toBe(0.2);
  });

  it('returns only what the page had (a partial page)', () => {
    const r = parseVllmMetrics('# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine="0",model_name="m"} 4.0\n');
    expect(r.waitingQueueSize).toBe(4);
    expect(r.runningQueueSize).toBeUndefined();
    expect(r.kvCacheUsagePercent).toBeUndefined();
    expect(hasLoadSignal(r)).toBe(true);
  });

  it('skips a malformed line of a wanted family and reads the others', () => {
    const text = [
      'vllm:num_requests_waiting{engine="0",model_name="m"} 2.0',
      'vllm:num_requests_waiting{engine="1",model_name="m" 9.0',
      'vllm:num_requests_running{engine="0",model_name="m"} 1.0',
    ].join('\n');
    const r = parseVllmMetrics(text);
    expect(r.waitingQueueSize).toBe(2);
    expect(r.runningQueueSize).toBe(1);
    expect(r.issues).toHaveLength(1);
    expect(r.issues[0]?.line).toBe(2);
  });

  it('reads the same as a full parse of the page: the line pre-filter only drops what the parser would skip', () => {
    const wanted = [
      'vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:cache_config_info', 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc',
      VLLM_LATENCY_METRIC_NAMES.timeToFirstToken, ...VLLM_LATENCY_METRIC_NAMES.interTokenLatency, VLLM_LATENCY_METRIC_NAMES.inferenceTime, VLLM_LATENCY_METRIC_NAMES.promptTokens, ...VLLM_LATENCY_METRIC_NAMES.prefixCache.flatMap((p) => [p.queries, p.hits]),
    ];
    const pages = [
      renderVllmMetrics({ engines: [{ waiting: 3, running: 7, kvUsage: 0.42, numGpuBlocks: 27153 }], blockSize: 16 }),
      renderVllmMetrics({ engines: [{ waiting: 1, running: 2, kvUsage: 0.5, numGpuBlocks: 100 }, { waiting: 4, running: 0, kvUsage: 0.1, numGpuBlocks: 300 }], kvCacheUsage: false, runningLoraAdapters: ['a'] }),
      // Comments, other families sharing the vllm: prefix and a wanted name's longer cousin, CRLF line ends.
      '# a comment\r\nvllm:num_requests_waiting_total 99\r\n# HELP vllm:num_requests_waiting q\r\n# TYPE vllm:num_requests_waiting gauge\r\nvllm:num_requests_waiting{engine="0"} 5.0\r\nvllm:other 1\r\n',
    ];
    for (const page of pages) {
      const full = parsePrometheusText(page, { strict: false, families: new Set(wanted) });
      const { issues, processStartTime, ...fast } = parseVllmMetrics(page);
      expect(fast).toEqual(extractVllmMetrics(full.families));
      expect(processStartTime).toBe(processStartTimeOf(page));
      expect(issues).toEqual(full.issues);
      // Line numbers stay the page's.
      expect(wantedLines(page, wanted).split('\n').length).toBeLessThanOrEqual(page.split('\n').length);
    }
    expect(parseVllmMetrics(pages[2] as string).waitingQueueSize).toBe(5);
    // The latency model's counters and histogram survive the pre-filter (renderVllmMetrics exports both).
    expect(parseVllmMetrics(pages[0] as string)).toMatchObject({ firstTokenCount: expect.any(Number), prefixCacheQueryTokens: expect.any(Number) });
  });

  // prometheus/common v0.67.5 expfmt/text_parse.go, which llm-d-router v0.10.0 reads pods with, takes the value right
  // after '}' (skipBlankTab, then readingValue): the line was an issue here and the family left unread.
  it('reads a value written right after the label set, on both readers, as expfmt does', () => {
    const page = '# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine="0",model_name="m"}4.0\nvllm:num_requests_running{}2\n';
    const r = parseVllmMetrics(page);
    expect(r).toMatchObject({ waitingQueueSize: 4, runningQueueSize: 2, issues: [] });
    expect(new VllmPageReader().readBytes(Buffer.from(page))).toMatchObject({ waitingQueueSize: 4, runningQueueSize: 2, issues: [] });
  });

  // prometheus/common v0.67.5 expfmt/text_parse.go parseFloat: strconv.ParseFloat's ErrRange is a parse error, so
  // llm-d-router v0.10.0 refuses the page; here the value read as Infinity and was dropped as absent without an issue.
  it('a value beyond the float range is a malformed line on both readers, not an absent value', () => {
    for (const v of ['1e400', '9'.repeat(310)]) {
      const page = `# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine="0"} ${v}\nvllm:num_requests_running{engine="0"} 2\n`;
      for (const r of [parseVllmMetrics(page), new VllmPageReader().readBytes(Buffer.from(page))]) {
        expect(r.waitingQueueSize).toBeUndefined();
        expect(r.issues).toEqual([expect.objectContaining({ line: 2, message: `invalid value "${v}"` })]);
      }
    }
  });

  // prometheus/common v0.67.5 expfmt/text_parse.go (GIE v1.6.0 / llm-d-router v0.10.0 read pods with it): startComment
  // skips blanks before the keyword and after it, and readingType takes the rest of the line in any case (ToUpper;
  // GAUGEHISTOGRAM too). The line pre-filter kept only '# TYPE <name>' written with single spaces, so the histogram's
  // TYPE line was dropped and its _count/_sum went unread; an upper-case type was an issue.
  it('reads a histogram whose TYPE line has other blanks around TYPE, or its type in another case, on both readers', () => {
    const samples = 'vllm:time_to_first_token_seconds_count{engine="0"} 3.0\nvllm:time_to_first_token_seconds_sum{engine="0"} 0.5\nvllm:num_requests_waiting{engine="0"} 1.0\n';
    const ttft = VLLM_LATENCY_METRIC_NAMES.timeToFirstToken;
    for (const type of [`#TYPE ${ttft} histogram`, `#\tTYPE ${ttft} histogram`, `#  TYPE ${ttft} histogram`, `# TYPE\t${ttft} histogram`, `# TYPE  ${ttft} histogram`, `# TYPE ${ttft} HISTOGRAM`, `# TYPE ${ttft} Histogram`, `# TYPE ${ttft} gaugehistogram`]) {
      const page = `${type}\n${samples}`;
      for (const r of [parseVllmMetrics(page), new VllmPageReader().readBytes(Buffer.from(page)), new VllmPageReader().read(page)]) {
        expect(r).toMatchObject({ firstTokenCount: 3, firstTokenSecondsSum: 0.5, waitingQueueSize: 1, issues: [] });
      }
    }
    // A type with a trailing blank is unknown there (the rest of the line, "histogram "): a malformed line here too.
    expect(parseVllmMetrics(`# TYPE ${ttft} histogram \n${samples}`).issues).toEqual([expect.objectContaining({ line: 1, message: 'unknown metric type "histogram "' })]);
    // Other comments stay dropped.
    expect(wantedLines(`#TYPEX ${ttft} histogram\n# HELP ${ttft} x\n#  ${ttft}\n`, [ttft])).toBe('');
  });

  // prometheus/common v0.67.5 expfmt/text_parse.go readingValue stores nothing and reports nothing for a histogram's
  // bare-named sample, so llm-d-router v0.10.0 reads such a page; here it was a malformed line, which refuses the page.
  it('skips a histogram sample without a suffix, as expfmt does, and reads the page', () => {
    const ttft = VLLM_LATENCY_METRIC_NAMES.timeToFirstToken;
    const page = `# TYPE ${ttft} histogram\n${ttft}{engine="0"} 9\n${ttft}_count{engine="0"} 3.0\n${ttft}_sum{engine="0"} 0.5\nvllm:num_requests_waiting 1\n`;
    for (const r of [parseVllmMetrics(page), new VllmPageReader().readBytes(Buffer.from(page))]) {
      expect(r).toMatchObject({ firstTokenCount: 3, firstTokenSecondsSum: 0.5, waitingQueueSize: 1, issues: [] });
    }
  });

  it('still reports garbage lines, with their line numbers, after the pre-filter', () => {
    const r = parseVllmMetrics('# HELP x y\nprocess_cpu_seconds_total 1\n<html>hello</html>\nvllm:num_requests_waiting 2\n');
    expect(r.waitingQueueSize).toBe(2);
    expect(r.issues).toEqual([expect.objectContaining({ line: 3, message: 'missing metric name' })]);
  });

  it('ignores NaN gauges and a page with no vLLM metrics has no load signal', () => {
    expect(parseVllmMetrics('vllm:num_requests_waiting NaN\n').waitingQueueSize).toBeUndefined();
    expect(hasLoadSignal(parseVllmMetrics('<html>hello</html>'))).toBe(false);
    expect(hasLoadSignal(parseVllmMetrics(''))).toBe(false);
  });

  it('clamps KV usage into 0..1', () => {
    expect(parseVllmMetrics('vllm:kv_cache_usage_perc 1.5').kvCacheUsagePercent).toBe(1);
  });

  it('filters by model_name when asked', () => {
    const text = [
      'vllm:num_requests_waiting{engine="0",model_name="a"} 2.0',
      'vllm:num_requests_waiting{engine="0",model_name="b"} 5.0',
    ].join('\n');
    expect(parseVllmMetrics(text).waitingQueueSize).toBe(7);
    expect(parseVllmMetrics(text, { modelName: 'b' }).waitingQueueSize).toBe(5);
  });

  it('reads other servers through metric specs with label matchers (TRT-LLM style)', () => {
    const text = [
      'nv_trt_llm_request_metrics{model="x",request_type="waiting"} 6',
      'nv_trt_llm_request_metrics{model="x",request_type="active"} 2',
      'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"} 0.5',
    ].join('\n');
    const r = parseVllmMetrics(text, {
      names: {
        ...VLLM_METRIC_NAMES,
        waiting: parseMetricSpec('nv_trt_llm_request_metrics{request_type=waiting}'),
        running: parseMetricSpec('nv_trt_llm_request_metrics{request_type="active"}'),
        kvUsage: [parseMetricSpec('nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}')],
      },
    });
    expect(r).toMatchObject({ waitingQueueSize: 6, runningQueueSize: 2, kvCacheUsagePercent: 0.5 });
  });
});

describe('wantedLines (the pre-filter)', () => {
  const page = renderVllmMetrics({ engines: [{ waiting: 3, running: 7, kvUsage: 0.42, numGpuBlocks: 27153 }], blockSize: 16 });
  const wanted = [
    'vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:cache_config_info', 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc',
    VLLM_LATENCY_METRIC_NAMES.timeToFirstToken, ...VLLM_LATENCY_METRIC_NAMES.prefixCache.flatMap((p) => [p.queries, p.hits]),
  ];

  it('keeps TYPE and sample lines of the wanted families only: no HELP, no histogram buckets, no longer cousins', () => {
    const kept = wantedLines(page, wanted).split('\n').filter((l) => l !== '');
    expect(kept.some((l) => l.startsWith('# HELP'))).toBe(false);
    expect(kept.some((l) => l.includes('_bucket'))).toBe(false);
    expect(kept.some((l) => l.includes('_created'))).toBe(false);
    expect(page).toContain('vllm:time_to_first_token_seconds_bucket');
    expect(kept).toEqual(expect.arrayContaining([
      '# TYPE vllm:time_to_first_token_seconds histogram',
      expect.stringMatching(/^vllm:time_to_first_token_seconds_count\{/),
      expect.stringMatching(/^vllm:time_to_first_token_seconds_sum\{/),
      expect.stringMatching(/^vllm:num_requests_waiting\{/),
    ]));
    // Every kept line sits at its own line number.
    const lines = page.split('\n');
    wantedLines(page, wanted).split('\n').forEach((l, i) => {
      if (l !== '') expect(lines[i]).toBe(l);
    });
  });

  it('keeps a wanted name followed by a malformed rest, and names that are prefixes of other wanted names', () => {
    expect(wantedLines('vllm:q=3\nvllm:q 1\nvllm:q9 2\nvllm:q_run 4\n', ['vllm:q', 'vllm:q_run'])).toBe('vllm:q=3\nvllm:q 1\n\nvllm:q_run 4\n');
    const names = { waiting: { name: 'q' }, running: { name: 'q_running' }, kvUsage: [{ name: 'kv' }], cacheInfo: { name: 'info' }, loraInfo: { name: 'lora' } };
    expect(parseVllmMetrics('q 2\nq_running 5\nkv 0.5\n', { names })).toMatchObject({ waitingQueueSize: 2, runningQueueSize: 5, kvCacheUsagePercent: 0.5 });
  });
});

describe('VllmPageReader', () => {
  const render = (waiting: number, cpu: number) =>
    renderVllmMetrics({ modelName: 'Qwen/Qwen3-0.6B', engines: [{ waiting, running: 7, kvUsage: 0.42, numGpuBlocks: 27153 }], blockSize: 16 }).replace(/^process_cpu_seconds_total .*$/m, `process_cpu_seconds_total ${cpu}`);

  it('reads what parseVllmMetrics reads, and reuses the reading while the wanted lines are unchanged', () => {
    const reader = new VllmPageReader({ modelName: 'Qwen/Qwen3-0.6B' });
    const first = reader.read(render(3, 1));
    expect(first).toEqual(parseVllmMetrics(render(3, 1), { modelName: 'Qwen/Qwen3-0.6B' }));
    // Only a process family moved: the same reading, not parsed again.
    const page2 = render(3, 2);
    expect(page2).not.toBe(render(3, 1));
    expect(reader.read(page2)).toBe(first);
    expect({ pages: reader.pages, reused: reader.reused }).toEqual({ pages: 2, reused: 1 });
    // A value the EPP reads moved: parsed again.
    const third = reader.read(render(5, 2));
    expect(third).not.toBe(first);
    expect(third).toEqual(parseVllmMetrics(render(5, 2), { modelName: 'Qwen/Qwen3-0.6B' }));
    expect(third.waitingQueueSize).toBe(5);
    expect(reader.reused).toBe(1);
  });

  it('reads the process start time (prometheus_client\'s process collector, vLLM\'s single API server: vllm/v1/metrics/prometheus.py @ v0.10.0) on every page, a reused reading included; the HELP and TYPE lines that name it are not its value', () => {
    const page = render(3, 1);
    expect(page).toMatch(/^# HELP process_start_time_seconds Start time/m);
    expect(processStartTimeOf(page)).toBe(1753299990.5);
    expect(processStartTimeOf(Buffer.from(page))).toBe(1753299990.5);
    for (const read of [(r: VllmPageReader, p: string) => r.read(p), (r: VllmPageReader, p: string) => r.readBytes(Buffer.from(p))]) {
      const reader = new VllmPageReader({ modelName: 'Qwen/Qwen3-0.6B' });
      const first = read(reader, page);
      expect(first.processStartTime).toBe(1753299990.5);
      expect(parseVllmMetrics(page).processStartTime).toBe(1753299990.5);
      // A restarted server whose routing families read the same: the reading is reused, with the new start time.
      const restarted = read(reader, page.replace(/^process_start_time_seconds .*$/m, 'process_start_time_seconds 1.7533e+09'));
      expect(restarted).toEqual({ ...first, processStartTime: 1.7533e9 });
      expect(reader.reused).toBe(1);
      // A page without it (several API servers: prometheus_client's multiprocess registry has no process collector).
      const multiprocess = read(reader, page.replace(/^process_start_time_seconds .*\n/m, ''));
      expect(multiprocess.processStartTime).toBeUndefined();
      expect(multiprocess).toEqual(parseVllmMetrics(page.replace(/^process_start_time_seconds .*\n/m, '')));
    }
    expect(processStartTimeOf('# HELP process_start_time_seconds x\n# TYPE process_start_time_seconds gauge\n')).toBeUndefined();
    expect(processStartTimeOf('process_start_time_seconds NaN\n')).toBeUndefined();
    expect(processStartTimeOf('process_start_time_seconds 1.7e+09')).toBe(1.7e9);
  });

  it('reuses nothing across differing pages of a sequence, and a malformed page is reported each time', () => {
    const reader = new VllmPageReader();
    const bad = 'vllm:num_requests_waiting{engine="1" 9.0\nvllm:num_requests_running 1\n';
    expect(reader.read(bad).issues).toHaveLength(1);
    expect(reader.read(bad).issues).toHaveLength(1);
    for (let w = 0; w < 5; w++) expect(reader.read(render(w, w)).waitingQueueSize).toBe(w);
    expect(reader.reused).toBe(1);
  });
});

describe('reading the page as bytes (VllmPageReader.readBytes, wantedLineBytes) against the string path', () => {
  // The simulator's page as it serves it after three requests (kvroute-sim, 2026-11-29): prometheus_client's rendering
  // with histogram buckets filled, 34 KB.
  const simPage = fs.readFileSync(path.join(__dirname, 'fixtures', 'sim-metrics-page.txt'), 'utf8');
  const wanted = [...new Set([
    VLLM_METRIC_NAMES.waiting.name, VLLM_METRIC_NAMES.running.name, VLLM_METRIC_NAMES.cacheInfo.name,
    ...VLLM_METRIC_NAMES.kvUsage.map((s) => s.name), VLLM_LATENCY_METRIC_NAMES.timeToFirstToken,
    ...VLLM_LATENCY_METRIC_NAMES.prefixCache.flatMap((p) => [p.queries, p.hits]),
  ])];
  const W = 'vllm:num_requests_waiting';
  const edgeCases: Array<[string, Buffer]> = [
    ['the simulator page', Buffer.from(simPage)],
    ['the benchmark page', Buffer.from(renderVllmMetrics({ modelName: 'm', engines: [{ waiting: 1, running: 2, kvUsage: 0.3, numGpuBlocks: 10 }, { waiting: 0, running: 1, kvUsage: 0.1, numGpuBlocks: 30 }], blockSize: 16 }))],
    ['CRLF line ends', Buffer.from(simPage.replace(/\n/g, '\r\n'))],
    ['no final newline', Buffer.from(`# TYPE ${W} gauge\n${W} 3.0`)],
    ['empty page', Buffer.alloc(0)],
    ['only newlines', Buffer.from('\n\n\n')],
    ['garbage and blank lines between kept runs', Buffer.from(`\n  ${W} 1\n${W} 2\n\n\n} x\n# HELP ${W} h\n#\n# TYPE\n# TYPE ${W}\n${W}_sum 4\n`)],
    ['non-ASCII in label values, HELP text and at a line start', Buffer.from(`# HELP ${W} é ünïcödé ✓\n${W}{model_name="模型"} 4\né${W} 5\n✓ x\n`)],
    ['a multi-byte character right after a wanted name', Buffer.from(`${W}é 3\n${W}✓{a="b"} 3\n${W}_counté 2\n`)],
    ['a byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${W} 7\n${W} 8\n`)])],
    ['invalid UTF-8 bytes', Buffer.concat([Buffer.from(`${W}{a="`), Buffer.from([0xff, 0xc3]), Buffer.from(`"} 1\n`), Buffer.from([0xc3, 0x0a]), Buffer.from(`${W} 2\n`)])],
    ['a name cut at the end of the page', Buffer.from(`${W} 1\nvllm:num_req`)],
    ['a prefix cut at the end of the page', Buffer.from(`${W} 1\nvll`)],
    ['longer cousins, buckets, _created, _sum/_count of gauges', Buffer.from(`${W}_total 1\n${W}_created 2\nvllm:time_to_first_token_seconds_bucket{le="1"} 3\nvllm:time_to_first_token_seconds_sum 4\nvllm:time_to_first_token_seconds_count 5\n${W}_sum 6\n${W}_count 7\n${W}_sum_x 8\n`)],
    ['tabs and spaces', Buffer.from(`${W}\t3\n\t${W} 4\n# TYPE  ${W} gauge\n#  TYPE ${W} gauge\n`)],
  ];

  it.each(edgeCases)('%s: the kept bytes are the UTF-8 of wantedLines, and the readings are equal', (_name, page) => {
    const text = page.toString('utf8');
    expect(wantedLineBytes(page, wanted).toString('utf8')).toBe(wantedLines(text, wanted));
    if (!page.includes(Buffer.from([0xff]))) expect(wantedLineBytes(page, wanted).equals(Buffer.from(wantedLines(text, wanted)))).toBe(true);
    for (const modelName of [undefined, 'Qwen/Qwen3-0.6B']) {
      const reading = new VllmPageReader({ modelName }).readBytes(page);
      expect(reading).toEqual(new VllmPageReader({ modelName }).read(text));
      expect(reading).toEqual(parseVllmMetrics(text, { modelName }));
    }
  });

  it('random pages of vLLM-like fragments: the same kept lines and readings as the string path', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; // 32-bit: a float product past 2^53 loses the low bits, and the pages repeated
      return (seed >>> 8) % n; // the high bits: an LCG's low bits cycle quickly
    };
    const names = [...wanted, 'vllm:num_requests', 'vllm:num_requests_waiting_x', 'vllm:other', 'process_cpu_seconds_total', 'vl', ''];
    const suffixes = ['', '_sum', '_count', '_bucket', '_total', '_created', 'é', '✓', '\r'];
    const rests = [' 1.0', '{engine="0",model_name="m"} 2.5', '{le="+Inf"} 3', ' NaN', '{engine="1"} 0.25', '=3', '{a="\\"é\\n"} 4', '', ' ', '{block_size="16",num_gpu_blocks="100"} 1.0'];
    const lineOf = (): string => {
      switch (rnd(6)) {
        case 0: return `# TYPE ${names[rnd(names.length)]}${suffixes[rnd(suffixes.length)]} ${['gauge', 'counter', 'histogram', 'bogus'][rnd(4)]}`;
        case 1: return `# HELP ${names[rnd(names.length)]} help é`;
        case 2: return ['', '#', '  x', '} y', '✓ z', '\r'][rnd(6)] as string;
        default: return `${names[rnd(names.length)]}${suffixes[rnd(suffixes.length)]}${rests[rnd(rests.length)]}`;
      }
    };
    const reader = { bytes: new VllmPageReader(), text: new VllmPageReader() };
    for (let p = 0; p < 400; p++) {
      const lines = Array.from({ length: 1 + rnd(30) }, lineOf);
      // Successive pages often repeat the previous one, so reuse is exercised on both paths.
      const text = p % 3 === 2 ? lines.join('\n') : `${lines.join('\n')}\n`;
      const page = Buffer.from(text);
      expect(wantedLineBytes(page, wanted).toString('utf8')).toBe(wantedLines(text, wanted));
      for (let repeat = 0; repeat < 1 + (p % 2); repeat++) expect(reader.bytes.readBytes(page)).toEqual(reader.text.read(text));
    }
    expect(reader.bytes.reused).toBe(reader.text.reused);
    expect(reader.bytes.reused).toBeGreaterThan(100);
  });

  it('reuses the reading while the wanted lines are unchanged, as read() does', () => {
    const reader = new VllmPageReader({ modelName: 'Qwen/Qwen3-0.6B' });
    const first = reader.readBytes(Buffer.from(simPage));
    const moved = simPage.replace(/^(vllm:gpu_prefix_cache_queries_created\{.*\}) .*$/m, '$1 99.5');
    expect(moved).not.toBe(simPage);
    expect(reader.readBytes(Buffer.from(moved))).toBe(first);
    const busier = simPage.replace(/^vllm:num_requests_waiting\{(.*)\} 0\.0$/m, 'vllm:num_requests_waiting{$1} 6.0');
    expect(busier).not.toBe(simPage);
    const third = reader.readBytes(Buffer.from(busier));
    expect(third.waitingQueueSize).toBe(6);
    expect({ pages: reader.pages, reused: reader.reused }).toEqual({ pages: 3, reused: 1 });
    // Mixing the two entry points never reuses a reading across them wrongly.
    expect(reader.read(simPage)).toEqual(first);
    expect(reader.readBytes(Buffer.from(busier))).toEqual(third);
  });

  it('metric names that are not ASCII fall back to the string path', () => {
    const names = { waiting: { name: 'ärger' }, running: { name: 'r' }, kvUsage: [{ name: 'kv' }], cacheInfo: { name: 'c' }, loraInfo: { name: 'l' } };
    const page = 'ärger 3\nr 1\n';
    expect(() => wantedLineBytes(Buffer.from(page), [names.waiting.name])).toThrow(/ASCII/);
    const reading = new VllmPageReader({ names }).readBytes(Buffer.from(page));
    expect(reading).toMatchObject({ runningQueueSize: 1 });
    expect(reading).toEqual(new VllmPageReader({ names }).read(page));
  });
});

describe('parseMetricSpec', () => {
  it('parses names and matchers', () => {
    expect(parseMetricSpec('vllm:num_requests_waiting')).toEqual({ name: 'vllm:num_requests_waiting' });
    expect(parseMetricSpec('m{a=b, c="d e"}')).toEqual({ name: 'm', labels: { a: 'b', c: 'd e' } });
    expect(parseMetricSpec('m{}')).toEqual({ name: 'm' });
  });

  it('rejects malformed specs', () => {
    expect(() => parseMetricSpec('1m')).toThrow(/invalid metric spec/);
    expect(() => parseMetricSpec('m{a}')).toThrow(/invalid label matcher "a"/);
  });
});

describe('applyReading', () => {
  it('replaces what was read, keeps the rest, stamps the time and ends the failure streak', () => {
    const prev = { ...EMPTY_METRICS, waitingQueueSize: 9, kvCacheUsagePercent: 0.5, blockSize: 16, consecutiveFailures: 4, updateTime: 1 };
    const next = applyReading(prev, { waitingQueueSize: 1, engines: 1 }, 1234);
    expect(next).toEqual({
      waitingQueueSize: 1,
      runningQueueSize: 0,
      kvCacheUsagePercent: 0.5,
      blockSize: 16,
      engines: 1,
      updateTime: 1234,
      changedTime: 1234,
      consecutiveFailures: 0,
      waitingPages: 1,
    });
    expect(Object.isFrozen(next)).toBe(true);
  });

  it('counts the pages that showed requests waiting (waitingPages, cumulative), for the latency model\'s skip of queued intervals', () => {
    const first = applyReading(EMPTY_METRICS, { waitingQueueSize: 0, runningQueueSize: 2, engines: 1 }, 1000);
    expect(first.waitingPages).toBe(0);
    const queued = applyReading(first, { waitingQueueSize: 3, runningQueueSize: 2, engines: 1 }, 2000);
    expect(queued.waitingPages).toBe(1);
    const drained = applyReading(queued, { waitingQueueSize: 0, runningQueueSize: 2, engines: 1 }, 3000);
    expect(drained.waitingPages).toBe(1);
    expect(applyReading(drained, { waitingQueueSize: 1, engines: 1 }, 4000).waitingPages).toBe(2);
  });

  it('stamps changedTime only when a load reading moved (running, waiting, KV, first tokens, prefix queries)', () => {
    const first = applyReading(EMPTY_METRICS, { waitingQueueSize: 6, runningQueueSize: 2, kvCacheUsagePercent: 0.4, engines: 1 }, 1000);
    expect(first.changedTime).toBe(1000);
    const same = applyReading(first, { waitingQueueSize: 6, runningQueueSize: 2, kvCacheUsagePercent: 0.4, engines: 1 }, 2000);
    expect(same).toMatchObject({ updateTime: 2000, changedTime: 1000 });
    expect(applyReading(same, { waitingQueueSize: 6, runningQueueSize: 2, kvCacheUsagePercent: 0.41, engines: 1 }, 3000).changedTime).toBe(3000);
    expect(applyReading(same, { waitingQueueSize: 6, runningQueueSize: 2, kvCacheUsagePercent: 0.4, firstTokenCount: 9, engines: 1 }, 3000).changedTime).toBe(3000);
  });
});

describe('vllm:lora_requests_info, as GIE v1.5.0\'s default data layer reads it (datalayer/extractor/metrics: loraspec.go getLatestMetric, extractor.go populateLoRAMetrics)', () => {
  // vLLM writes one series per change of its adapter sets, valued with the time of the change
  // (vllm/v1/metrics/loggers.py @ v0.10.0, gauge_lora_info ... set_to_current_time).
  const names = { ...VLLM_METRIC_NAMES, loraInfo: LORA_INFO_METRIC };
  const page = (...series: string[]) => ['# TYPE vllm:lora_requests_info gauge', ...series, 'vllm:num_requests_running 1', ''].join('\n');
  const busy = page(
    'vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora",waiting_lora_adapters=""} 1.7533e+09',
    'vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora, chat-lora,,sql-lora",waiting_lora_adapters="tool-lora"} 1.7534e+09',
  );

  it('takes the newest series; adapter names are trimmed, empty ones dropped, each kept once', () => {
    expect(parseVllmMetrics(busy, { names }).lora).toEqual({ running: ['sql-lora', 'chat-lora'], waiting: ['tool-lora'], maxLora: 4 });
    expect(new VllmPageReader({ names }).readBytes(Buffer.from(busy)).lora).toEqual({ running: ['sql-lora', 'chat-lora'], waiting: ['tool-lora'], maxLora: 4 });
  });

  it('the newest series with both lists empty is the state: the pod runs no adapter now', () => {
    const idle = page(
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora",waiting_lora_adapters=""} 1.7533e+09',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} 1.7535e+09',
    );
    expect(applyReading(EMPTY_METRICS, parseVllmMetrics(idle, { names }), 1).lora).toEqual({ running: [], waiting: [], maxLora: 4 });
  });

  it('a page without the family keeps the last state, a series without max_lora the last max_lora; not read unless asked for', () => {
    const first = applyReading(EMPTY_METRICS, parseVllmMetrics(busy, { names }), 1);
    expect(applyReading(first, parseVllmMetrics('vllm:num_requests_running 2\n', { names }), 2).lora).toEqual(first.lora);
    const noMax = page('vllm:lora_requests_info{running_lora_adapters="x",waiting_lora_adapters=""} 1.7536e+09');
    expect(applyReading(first, parseVllmMetrics(noMax, { names }), 3).lora).toEqual({ running: ['x'], waiting: [], maxLora: 4 });
    expect(parseVllmMetrics(busy).lora).toBeUndefined();
  });
});

describe('the inter-token histogram (the TPOT model\'s signal: vllm/v1/metrics/loggers.py)', () => {
  // prometheus_client's rendering of vLLM's PrometheusStatLogger histograms, two engines (data parallel), buckets cut.
  const family = (name: string, help: string, engines: Array<[count: number, sum: number]>) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} histogram`,
    ...engines.flatMap(([count, sum], engine) => [
      `${name}_bucket{engine="${engine}",le="0.01",model_name="Qwen/Qwen3-8B"} 0.0`,
      `${name}_bucket{engine="${engine}",le="+Inf",model_name="Qwen/Qwen3-8B"} ${count.toFixed(1)}`,
      `${name}_count{engine="${engine}",model_name="Qwen/Qwen3-8B"} ${count.toFixed(1)}`,
      `${name}_sum{engine="${engine}",model_name="Qwen/Qwen3-8B"} ${sum}`,
    ]),
    `# HELP ${name}_created ${help}`,
    `# TYPE ${name}_created gauge`,
    ...engines.map((_, engine) => `${name}_created{engine="${engine}",model_name="Qwen/Qwen3-8B"} 1.7532999905e+09`),
  ];
  const gauges = ['# HELP vllm:num_requests_running Number of requests in model execution batches.', '# TYPE vllm:num_requests_running gauge',
    'vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-8B"} 3.0', 'vllm:num_requests_running{engine="1",model_name="Qwen/Qwen3-8B"} 1.0'];
  // 0.10.0: the old name only (loggers.py @ v0.10.0, observed from time_per_output_tokens_iter).
  const v0100 = [...gauges, ...family('vllm:time_per_output_token_seconds', 'Histogram of time per output token in seconds.', [[120, 2.4], [30, 0.9]])].join('\n') + '\n';
  // 0.10.2+: both names, every sample observed into each ("Deprecated in 0.11 - Renamed as vllm:inter_token_latency_seconds").
  const v0102 = [...gauges,
    ...family('vllm:time_per_output_token_seconds', 'Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.', [[120, 2.4], [30, 0.9]]),
    ...family('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', [[120, 2.4], [30, 0.9]])].join('\n') + '\n';
  // Later servers hide the deprecated family: the new name only.
  const itlOnly = [...gauges, ...family('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', [[50, 1.5]])].join('\n') + '\n';

  it('0.10.0 page: vllm:time_per_output_token_seconds _count/_sum, summed over engines', () => {
    const r = parseVllmMetrics(v0100);
    expect(r.interTokenCount).toBe(150);
    expect(r.interTokenSecondsSum).toBeCloseTo(3.3, 9);
    expect(r.issues).toEqual([]);
  });

  it('0.10.2 page with both families: read once, from vllm:inter_token_latency_seconds (never counted twice)', () => {
    const r = parseVllmMetrics(v0102);
    expect(r.interTokenCount).toBe(150);
    expect(r.interTokenSecondsSum).toBeCloseTo(3.3, 9);
    expect(parseVllmMetrics(v0102.replace(/(vllm:inter_token_latency_seconds_count\{engine="0"[^}]*\}) 120\.0/, '$1 121.0')).interTokenCount).toBe(151);
  });

  it('a page with the new name only; a page with neither leaves the fields absent; applyReading carries them', () => {
    expect(parseVllmMetrics(itlOnly)).toMatchObject({ interTokenCount: 50, interTokenSecondsSum: 1.5 });
    const none = parseVllmMetrics(gauges.join('\n') + '\n');
    expect(none.interTokenCount).toBeUndefined();
    expect(none.interTokenSecondsSum).toBeUndefined();
    const m = applyReading(EMPTY_METRICS, parseVllmMetrics(itlOnly), 1000);
    expect(m).toMatchObject({ interTokenCount: 50, interTokenSecondsSum: 1.5, runningQueueSize: 4 });
    // A later page without the family does not pair the old counters with a new time.
    expect(applyReading(m, none, 2000).interTokenCount).toBeUndefined();
  });

  it('the page reader (fast path, bytes and text) reads what the strict parse reads', () => {
    for (const page of [v0100, v0102, itlOnly]) {
      const strict = parseVllmMetrics(page);
      expect(new VllmPageReader().readBytes(Buffer.from(page))).toMatchObject({ interTokenCount: strict.interTokenCount, interTokenSecondsSum: strict.interTokenSecondsSum });
      expect(new VllmPageReader().read(page)).toMatchObject({ interTokenCount: strict.interTokenCount, interTokenSecondsSum: strict.interTokenSecondsSum });
    }
  });

  it('the simulator\'s page (0.10.0 mode fixture) has the old family and is read from it', () => {
    const simPage = fs.readFileSync(path.join(__dirname, 'fixtures', 'sim-metrics-page.txt'), 'utf8');
    expect(parseVllmMetrics(simPage)).toMatchObject({ interTokenCount: 12 });
  });
});

describe('histogram totals: series paired by their labels, as histogramSeries groups them', () => {
  const TTFT = VLLM_LATENCY_METRIC_NAMES.timeToFirstToken;
  /** The totals by protocol's histogramSeries, the grouping the reader matches: its reference. */
  const reference = (page: string, model?: string): { count: number; sum: number } | undefined => {
    const family = parsePrometheusText(page, { strict: false }).families.get(TTFT);
    if (family === undefined) return undefined;
    const series = histogramSeries(family).filter((h) => (model === undefined || h.labels.model_name === undefined || h.labels.model_name === model)
      && Number.isFinite(h.count) && Number.isFinite(h.sum));
    return series.length === 0 ? undefined : { count: series.reduce((t, h) => t + h.count!, 0), sum: series.reduce((t, h) => t + h.sum!, 0) };
  };
  const read = (page: string, model?: string) => {
    const r = parseVllmMetrics(page, model === undefined ? {} : { modelName: model });
    return r.firstTokenCount === undefined ? undefined : { count: r.firstTokenCount, sum: r.firstTokenSecondsSum };
  };
  const head = `# TYPE ${TTFT} histogram\n`;

  it.each([
    ['two engines', `${TTFT}_count{engine="0",model_name="m"} 4\n${TTFT}_sum{engine="0",model_name="m"} 0.5\n${TTFT}_count{engine="1",model_name="m"} 6\n${TTFT}_sum{engine="1",model_name="m"} 0.25\n`],
    ['a series\'s _sum and _count with their labels in another order', `${TTFT}_sum{model_name="m",engine="0"} 0.5\n${TTFT}_count{engine="0",model_name="m"} 4\n`],
    ['a series with a _count and no _sum left out', `${TTFT}_count{engine="0",model_name="m"} 4\n${TTFT}_sum{engine="0",model_name="m"} 0.5\n${TTFT}_count{engine="1",model_name="m"} 6\n`],
    ['a series with one label more is another series', `${TTFT}_count{engine="0",model_name="m"} 4\n${TTFT}_sum{engine="0",model_name="m"} 0.5\n${TTFT}_count{engine="0",model_name="m",x="1"} 6\n${TTFT}_sum{engine="0",model_name="m",x="1"} 1\n`],
    ['buckets and an le on a _count', `${TTFT}_bucket{engine="0",le="1",model_name="m"} 3\n${TTFT}_count{engine="0",model_name="m"} 4\n${TTFT}_sum{engine="0",le="2",model_name="m"} 0.5\n`],
    ['a NaN sum', `${TTFT}_count{engine="0",model_name="m"} 4\n${TTFT}_sum{engine="0",model_name="m"} NaN\n`],
    ['the last of two _count samples of one series', `${TTFT}_count{engine="0",model_name="m"} 4\n${TTFT}_count{engine="0",model_name="m"} 5\n${TTFT}_sum{engine="0",model_name="m"} 0.5\n`],
  ])('%s', (_name, body) => {
    const page = head + body;
    expect(read(page)).toEqual(reference(page));
  });

  it('another model\'s series left out when a model is named', () => {
    const page = `${head}${TTFT}_count{model_name="m"} 4\n${TTFT}_sum{model_name="m"} 0.5\n${TTFT}_count{model_name="other"} 6\n${TTFT}_sum{model_name="other"} 1\n`;
    expect(read(page, 'm')).toEqual({ count: 4, sum: 0.5 });
    expect(read(page, 'm')).toEqual(reference(page, 'm'));
    expect(read(page)).toEqual({ count: 10, sum: 1.5 });
  });

  it('past 32 series the same totals, in the same order (the grouping path for hostile pages)', () => {
    const lines = Array.from({ length: 40 }, (_, i) => `${TTFT}_count{engine="${i}"} ${i + 1}\n${TTFT}_sum{engine="${i}"} ${0.1 * (i + 1)}\n`);
    const page = head + lines.join('');
    expect(read(page)).toEqual(reference(page));
    expect(read(page)!.count).toBe(820);
  });
});
