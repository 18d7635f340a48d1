import {
  PrometheusParseError,
  histogramSeries,
  parseGoFloat,
  parsePrometheusText,
  summarySeries,
  type MetricFamily,
} from '@kvroute/protocol/prometheus';
import { renderVllmMetrics } from '@kvroute/testkit';

function family(text: string, name: string): MetricFamily {
  const f = parsePrometheusText(text).families.get(name);
  if (!f) throw new Error(`no family ${name}`);
  return f;
}

describe('parsePrometheusText: the exposition format example', () => {
  // The example from the format's documentation, which exercises most of the grammar.
  const doc = [
    '# HELP http_requests_total The total number of HTTP requests.',
    '# TYPE http_requests_total counter',
    'http_requests_total{method="post",code="200"} 1027 1395066363000',
    'http_requests_total{method="post",code="400"}    3 1395066363000',
    '',
    '# Escaping in label values:',
    'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
    '',
    '# Minimalistic line:',
    'metric_without_timestamp_and_labels 12.47',
    '',
    '# A weird metric from before the epoch:',
    'something_weird{problem="division by zero"} +Inf -3982045',
    '',
    '# A histogram, which has a pretty complex representation in the text format:',
    '# HELP http_request_duration_seconds A histogram of the request duration.',
    '# TYPE http_request_duration_seconds histogram',
    'http_request_duration_seconds_bucket{le="0.05"} 24054',
    'http_request_duration_seconds_bucket{le="0.1"} 33444',
    'http_request_duration_seconds_bucket{le="0.2"} 100392',
    'http_request_duration_seconds_bucket{le="0.5"} 129389',
    'http_request_duration_seconds_bucket{le="1"} 133988',
    'http_request_duration_seconds_bucket{le="+Inf"} 144320',
    'http_request_duration_seconds_sum 53423',
    'http_request_duration_seconds_count 144320',
    '',
    '# Finally a summary, which has a complex representation, too:',
    '# HELP rpc_duration_seconds A summary of the RPC duration in seconds.',
    '# TYPE rpc_duration_seconds summary',
    'rpc_duration_seconds{quantile="0.01"} 3102',
    'rpc_duration_seconds{quantile="0.05"} 3272',
    'rpc_duration_seconds{quantile="0.5"} 4773',
    'rpc_duration_seconds{quantile="0.9"} 9001',
    'rpc_duration_seconds{quantile="0.99"} 76656',
    'rpc_duration_seconds_sum 1.7560473e+07',
    'rpc_duration_seconds_count 2693',
  ].join('\n');

  const parsed = parsePrometheusText(doc);

  it('finds every family with its type and help', () => {
    expect([...parsed.families.keys()].sort()).toEqual([
      'http_request_duration_seconds',
      'http_requests_total',
      'metric_without_timestamp_and_labels',
      'msdos_file_access_time_seconds',
      'rpc_duration_seconds',
      'something_weird',
    ]);
    expect(parsed.families.get('http_requests_total')?.type).toBe('counter');
    expect(parsed.families.get('http_requests_total')?.help).toBe('The total number of HTTP requests.');
    expect(parsed.families.get('metric_without_timestamp_and_labels')?.type).toBe('untyped');
    expect(parsed.issues).toEqual([]);
  });

  it('reads values, labels and timestamps', () => {
    const reqs = parsed.families.get('http_requests_total')?.samples ?? [];
    expect(reqs).toHaveLength(2);
    expect(reqs[1]).toEqual({ name: 'http_requests_total', labels: { method: 'post', code: '400' }, value: 3, timestampMs: 1395066363000 });
    const weird = parsed.families.get('something_weird')?.samples[0];
    expect(weird?.value).toBe(Infinity);
    expect(weird?.timestampMs).toBe(-3982045);
    expect(parsed.families.get('metric_without_timestamp_and_labels')?.samples[0]).toEqual({
      name: 'metric_without_timestamp_and_labels',
      labels: {},
      value: 12.47,
    });
  });

  it('unescapes backslashes, quotes and newlines in label values', () => {
    const s = parsed.families.get('msdos_file_access_time_seconds')?.samples[0];
    expect(s?.labels.path).toBe('C:\\DIR\\FILE.TXT');
    expect(s?.labels.error).toBe('Cannot find file:\n"FILE.TXT"');
    expect(s?.value).toBe(1.458255915e9);
  });

  it('groups histogram and summary samples under their family', () => {
    const h = histogramSeries(family(doc, 'http_request_duration_seconds'));
    expect(h).toHaveLength(1);
    expect(h[0]?.buckets.map((b) => b.le)).toEqual([0.05, 0.1, 0.2, 0.5, 1, Infinity]);
    expect(h[0]?.count).toBe(144320);
    expect(h[0]?.sum).toBe(53423);
    const s = summarySeries(family(doc, 'rpc_duration_seconds'));
    expect(s[0]?.quantiles.map((q) => q.quantile)).toEqual([0.01, 0.05, 0.5, 0.9, 0.99]);
    expect(s[0]?.sum).toBe(1.7560473e7);
    expect(s[0]?.count).toBe(2693);
  });
});

describe('parsePrometheusText: lexical details', () => {
  it('keeps commas, braces, equals signs and # inside quoted label values', () => {
    const f = family('m{a="x,y=z}",b="#not a comment",c="{}"} 1\n', 'm');
    expect(f.samples[0]?.labels).toEqual({ a: 'x,y=z}', b: '#not a comment', c: '{}' });
  });

  it('accepts a trailing comma, blanks around tokens and tabs', () => {
    const f = family('m { a = "1" ,\tb="2", } \t 5 \t 17 \n', 'm');
    expect(f.samples[0]).toEqual({ name: 'm', labels: { a: '1', b: '2' }, value: 5, timestampMs: 17 });
  });

  it('reads NaN and infinities in every case Go accepts', () => {
    const text = ['a NaN', 'b nan', 'c +Inf', 'd -Inf', 'e inf', 'f -infinity', 'g 1e-3', 'h .5', 'i -0', 'j 7.'].join('\n');
    const fams = parsePrometheusText(text).families;
    const v = (n: string): number | undefined => fams.get(n)?.samples[0]?.value;
    expect(v('a')).toBeNaN();
    expect(v('b')).toBeNaN();
    expect(v('c')).toBe(Infinity);
    expect(v('d')).toBe(-Infinity);
    expect(v('e')).toBe(Infinity);
    expect(v('f')).toBe(-Infinity);
    expect(v('g')).toBe(0.001);
    expect(v('h')).toBe(0.5);
    expect(Object.is(v('i'), -0)).toBe(true);
    expect(v('j')).toBe(7);
  });

  it('keeps colons in metric names (vLLM: prefix)', () => {
    expect(family('vllm:num_requests_waiting{engine="0"} 3.0', 'vllm:num_requests_waiting').samples[0]?.value).toBe(3);
  });

  it('parses the last line without a trailing newline, and CRLF line ends', () => {
    const fams = parsePrometheusText('# TYPE a gauge\r\na 1\r\nb 2').families;
    expect(fams.get('a')?.samples[0]?.value).toBe(1);
    expect(fams.get('b')?.samples[0]?.value).toBe(2);
  });

  it('accepts an empty HELP (prometheus_client writes "# HELP name " for undocumented metrics)', () => {
    const f = family('# HELP x \n# TYPE x gauge\nx 1\n', 'x');
    expect(f.help).toBe('');
    expect(f.type).toBe('gauge');
  });

  it('unescapes HELP text and ignores plain comments', () => {
    const f = family('# some comment\n# HELP x line one\\nline two \\\\ done\n#TYPE x counter\nx 1\n', 'x');
    expect(f.help).toBe('line one\nline two \\ done');
    // Like Go's parser, blanks after "#" are optional, so "#TYPE" is still metadata.
    expect(f.type).toBe('counter');
  });

  it('returns a family declared without samples', () => {
    const f = family('# HELP lonely nothing yet\n# TYPE lonely gauge\n', 'lonely');
    expect(f.samples).toEqual([]);
  });

  it('treats a label called __proto__ as an ordinary label', () => {
    const s = family('m{__proto__="x"} 1', 'm').samples[0];
    expect(s?.labels.__proto__).toBe('x');
    expect(Object.keys(s?.labels ?? {})).toEqual(['__proto__']);
  });

  it('freezes what it returns', () => {
    const f = family('m{a="1"} 1', 'm');
    expect(Object.isFrozen(f)).toBe(true);
    expect(Object.isFrozen(f.samples)).toBe(true);
    expect(Object.isFrozen(f.samples[0])).toBe(true);
    expect(Object.isFrozen(f.samples[0]?.labels)).toBe(true);
  });
});

describe('parsePrometheusText: histograms with labels', () => {
  const text = [
    '# HELP h latency',
    '# TYPE h histogram',
    'h_bucket{engine="0",le="0.1",model_name="m"} 1.0',
    'h_bucket{engine="0",le="1.0",model_name="m"} 3.0',
    'h_bucket{engine="0",le="+Inf",model_name="m"} 4.0',
    'h_count{engine="0",model_name="m"} 4.0',
    'h_sum{engine="0",model_name="m"} 2.5',
    'h_bucket{engine="1",le="0.1",model_name="m"} 0.0',
    'h_bucket{engine="1",le="1.0",model_name="m"} 7.0',
    'h_bucket{engine="1",le="+Inf",model_name="m"} 9.0',
    'h_count{engine="1",model_name="m"} 9.0',
    'h_sum{engine="1",model_name="m"} 11.0',
  ].join('\n');

  it('keeps one series per label set, with its own buckets, count and sum', () => {
    const series = histogramSeries(family(text, 'h'));
    expect(series).toEqual([
      {
        labels: { engine: '0', model_name: 'm' },
        buckets: [
          { le: 0.1, count: 1 },
          { le: 1, count: 3 },
          { le: Infinity, count: 4 },
        ],
        count: 4,
        sum: 2.5,
      },
      {
        labels: { engine: '1', model_name: 'm' },
        buckets: [
          { le: 0.1, count: 0 },
          { le: 1, count: 7 },
          { le: Infinity, count: 9 },
        ],
        count: 9,
        sum: 11,
      },
    ]);
  });

  it('does not attach _bucket samples to a summary or suffixed samples to a gauge', () => {
    const fams = parsePrometheusText('# TYPE s summary\ns_bucket 1\n# TYPE g gauge\ng_sum 2\n').families;
    expect(fams.get('s_bucket')?.type).toBe('untyped');
    expect(fams.get('g_sum')?.type).toBe('untyped');
    expect(fams.get('g')?.samples).toEqual([]);
  });
});

describe('parsePrometheusText: a value right after the label set', () => {
  // prometheus/common v0.67.5 expfmt/text_parse.go: after '}' (startLabelName / startLabelValue) skipBlankTab reads on
  // and readingValue takes what follows, blank or not; GIE v1.6.0 / llm-d-router v0.10.0 read pods with it.
  it('reads m{a="1"}1 and m{}2 as expfmt does', () => {
    const fams = parsePrometheusText('m{a="1"}1\nm{}2 3\n').families;
    expect(fams.get('m')?.samples).toEqual([{ name: 'm', labels: { a: '1' }, value: 1 }, { name: 'm', labels: {}, value: 2, timestampMs: 3 }]);
  });
});

describe('parsePrometheusText: TYPE lines as expfmt reads them', () => {
  // prometheus/common v0.67.5 expfmt/text_parse.go readingType: the rest of the line, upper-cased, one of COUNTER, GAUGE,
  // SUMMARY, UNTYPED, HISTOGRAM, GAUGE_HISTOGRAM or GAUGEHISTOGRAM (a gauge histogram, grouped as a histogram).
  it('takes the type in any case, a gauge histogram as a histogram, and nothing after the name as no type', () => {
    const fams = parsePrometheusText('# TYPE a GAUGE\na 1\n# TYPE h Histogram\nh_count 2\n# TYPE g gauge_histogram\ng_sum 3\n# TYPE u\nu 4\n').families;
    expect([...fams.values()].map((f) => [f.name, f.type])).toEqual([['a', 'gauge'], ['h', 'histogram'], ['g', 'histogram'], ['u', 'untyped']]);
  });
  it('refuses a type with a trailing blank, which expfmt reads as an unknown type', () => {
    expect(() => parsePrometheusText('# TYPE m gauge \nm 1\n')).toThrow(/unknown metric type "gauge "/);
  });
});

describe('parsePrometheusText: samples a histogram or summary has no place for', () => {
  // prometheus/common v0.67.5 expfmt/text_parse.go readingValue stores a histogram sample's value only as a bucket
  // (with le), _sum or _count, a summary's only with quantile, _sum or _count, and reports nothing for the others.
  it('skips them without an issue, as expfmt does', () => {
    const r = parsePrometheusText('# TYPE h histogram\nh 1\nh_bucket{a="1"} 2\nh_count 3\n# TYPE s summary\ns 4\ns_sum 5\n', { strict: false });
    expect(r.issues).toEqual([]);
    expect(r.families.get('h')?.samples.map((x) => [x.name, x.value])).toEqual([['h_count', 3]]);
    expect(r.families.get('s')?.samples.map((x) => [x.name, x.value])).toEqual([['s_sum', 5]]);
  });
});

describe('parsePrometheusText: errors', () => {
  const bad: Array<[string, string, RegExp]> = [
    ['unterminated label value', 'm{a="x} 1', /unterminated value of label a/],
    ['unterminated label set', 'm{a="x" 1', /expected "," or "}"/],
    ['missing value', 'm{a="x"}', /missing value/],
    ['bad value', 'm 12abc', /invalid value "12abc"/],
    ['bad timestamp', 'm 1 1.5', /invalid timestamp "1.5"/],
    ['extra token', 'm 1 2 3', /unexpected text after the sample/],
    ['bad escape', 'm{a="\\t"} 1', /invalid escape/],
    ['unquoted label value', 'm{a=x} 1', /expected a quoted value/],
    ['duplicate label', 'm{a="1",a="2"} 1', /duplicate label a/],
    ['bad label name', 'm{1a="1"} 1', /missing label name|invalid label name/],
    ['bad metric name', '1m 1', /invalid metric name "1m"/],
    ['second TYPE', '# TYPE m gauge\n# TYPE m counter\nm 1', /second TYPE line for m/],
    ['second HELP', '# HELP m a\n# HELP m b\nm 1', /second HELP line for m/],
    ['TYPE after samples', 'm 1\n# TYPE m gauge', /TYPE line for m after its samples/],
    ['unknown type', '# TYPE m gauges', /unknown metric type "gauges"/],
    ['TYPE without name', '# TYPE', /TYPE without a metric name/],
    ['bucket with an le that is not a float', '# TYPE h histogram\nh_bucket{le="x"} 1', /has invalid le="x"/],
    ['summary quantile that is not a float', '# TYPE s summary\ns{quantile="x"} 1', /has invalid quantile="x"/],
  ];

  it.each(bad)('strict mode rejects %s', (_what, text, message) => {
    expect(() => parsePrometheusText(text)).toThrow(PrometheusParseError);
    expect(() => parsePrometheusText(text)).toThrow(message);
  });

  it('names the line number of the first bad line', () => {
    try {
      parsePrometheusText('a 1\nb 2\nc{x="1" 3\nd 4');
      throw new Error('should have thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(PrometheusParseError);
      expect((err as PrometheusParseError).issue.line).toBe(3);
      expect((err as PrometheusParseError).message).toMatch(/^line 3: /);
    }
  });

  it('lenient mode skips bad lines, reports them and keeps the rest', () => {
    const r = parsePrometheusText('a 1\nb{x="1" 2\nc 3\nd nope\n', { strict: false });
    expect([...r.families.keys()]).toEqual(['a', 'c']);
    expect(r.issues.map((i) => i.line)).toEqual([2, 4]);
  });

  it('a family filter leaves other families unread, including their malformed lines', () => {
    const r = parsePrometheusText('junk{{{ 1\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\nwanted 2\n', {
      families: new Set(['wanted']),
    });
    expect([...r.families.keys()]).toEqual(['wanted']);
    expect(r.issues).toEqual([]);
  });
});

describe('parsePrometheusText on a vLLM 0.10 page', () => {
  const page = renderVllmMetrics({
    engines: [
      { waiting: 2, running: 5, kvUsage: 0.25 },
      { waiting: 1, running: 4, kvUsage: 0.75 },
    ],
    runningLoraAdapters: ['sql-lora', 'chat-lora'],
  });

  it('parses every line strictly', () => {
    const r = parsePrometheusText(page);
    expect(r.issues).toEqual([]);
    expect(r.families.get('vllm:num_requests_waiting')?.samples.map((s) => s.value)).toEqual([2, 1]);
    expect(r.families.get('vllm:prompt_tokens_total')?.type).toBe('counter');
    expect(r.families.get('vllm:prompt_tokens_created')?.type).toBe('gauge');
    expect(r.families.get('http_request_size_bytes')?.type).toBe('summary');
  });

  it('keeps per-engine histogram series apart', () => {
    const ttft = histogramSeries(family(page, 'vllm:time_to_first_token_seconds'));
    expect(ttft.map((s) => s.labels.engine)).toEqual(['0', '1']);
    for (const s of ttft) {
      expect(s.buckets).toHaveLength(23);
      expect(s.buckets[s.buckets.length - 1]).toEqual({ le: Infinity, count: 3 });
      expect(s.count).toBe(3);
    }
  });

  it('keeps comma lists in label values whole', () => {
    const lora = family(page, 'vllm:lora_requests_info').samples[0];
    expect(lora?.labels.running_lora_adapters).toBe('sql-lora,chat-lora');
    expect(lora?.labels.waiting_lora_adapters).toBe('');
  });
});

describe('parseGoFloat', () => {
  it('rejects what Go would reject', () => {
    for (const t of ['', '+', '1e', 'e5', '0x10', '1_000', 'Infinit', '--1', '1.2.3']) expect(parseGoFloat(t)).toBeUndefined();
  });

  // strconv.ParseFloat returns ±Inf with ErrRange past the float range, and expfmt's parseFloat (prometheus/common
  // v0.67.5 expfmt/text_parse.go) passes the error on: the line is malformed. An underflow is 0 without an error.
  it('refuses a decimal beyond the float range, as Go does, and reads an underflow as 0', () => {
    for (const t of ['1e400', '-1e400', '1.8e308', '9'.repeat(310)]) expect(parseGoFloat(t)).toBeUndefined();
    expect(parseGoFloat('1.7976931348623157e308')).toBe(Number.MAX_VALUE);
    expect(parseGoFloat('1e-400')).toBe(0);
    expect(parseGoFloat('+Inf')).toBe(Infinity);
  });
});
