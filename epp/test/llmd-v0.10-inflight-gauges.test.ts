/**
 * llm-d-router v0.10.0's in-flight load gauges (`pkg/epp/framework/plugins/requestcontrol/dataproducer/inflightload/
 * metrics.go` registerMetrics, `producer.go` PreRequest, ResponseBody, OnEvicted): `llm_d_epp_inflight_requests` and
 * `llm_d_epp_inflight_tokens{endpoint_name,namespace,producer_name,fairness_id,priority}`, registered when an
 * `inflight-load-producer` is built, counted whenever one is listed (with no filter reading it too), +1 request and the
 * pick's uncached prompt tokens at the commit, released at kvroute's release points, 0 once the request ended.
 */
import { FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS, renderVllmMetrics, seededRandom } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { parseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { EMPTY_METRICS } from '../src/datastore/types';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { createEppMetrics, MAX_INFLIGHT_LABEL_SETS } from '../src/metrics';
import { FAIRNESS_ID_HEADER, RequestControl } from '../src/requestcontrol/request-control';
import { startEpp, type Logger } from '../src/runner';
import { buildScheduler } from '../src/scheduling/scheduler';
import { FakeEnvoy, POST_HEADERS, requestBody, requestHeaders, responseHeaders, setHeaders, waitFor, type EnvoyStream } from './extproc-harness';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';
import { staticPool } from './static-pool';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

const HELP_REQUESTS = '# HELP llm_d_epp_inflight_requests [ALPHA] Current number of in-flight requests per endpoint, as tracked by the in-flight load producer.';
const HELP_TOKENS = '# HELP llm_d_epp_inflight_tokens [ALPHA] Current number of in-flight tokens per endpoint (uncached prompt tokens, optionally plus estimated output), as tracked by the in-flight load producer.';

/** The value of one exposition line, `name{labels}`, or undefined when absent. */
function sample(page: string, series: string): number | undefined {
  const line = page.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** llm-d's least-busy example lists the producer with no filter reading it (test/coordinator/e2e/coordinator/configs_test.go @ v0.10.0). */
const LISTED_ALONE = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: inflight-load-producer
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`;

test('over ext_proc, /metrics shows the gauges rise at the pick and fall at kvroute\'s release points (streamed: the scrape counting its first token; non-streamed: its headers; a timeout), 0 once the request ended, and gone with the pod', async () => {
  const pod = await FakeVllmServer.start();
  const key = `127.0.0.1:${pod.port}`;
  const epp = await startEpp(parseArgs(['--endpoints', key, '--config-text', LISTED_ALONE, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1'])!, quiet);
  const envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
  const page = async (): Promise<string> => (await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`)).text();
  // A static endpoint is named by its key, in no namespace.
  const series = (family: 'requests' | 'tokens', fairness: string) =>
    `llm_d_epp_inflight_${family}{endpoint_name="${key}",namespace="",producer_name="inflight-load-producer",fairness_id="${fairness}",priority="0"}`;
  const read = async (fairness: string) => {
    const p = await page();
    return { requests: sample(p, series('requests', fairness)), tokens: sample(p, series('tokens', fairness)) };
  };
  const open: EnvoyStream[] = [];
  const pick = async (fairness: string): Promise<EnvoyStream> => {
    const s = envoy.open();
    open.push(s);
    s.send(requestHeaders({ ...POST_HEADERS, [FAIRNESS_ID_HEADER]: fairness }, false));
    // 20,000 characters, no prefix scorer: 5,000 uncached tokens (characters ÷ 4), which the producer's prior line
    // predicts at ~1 s to first token, so its timeout (4×) comes some 4 s after the pick.
    s.send(requestBody(JSON.stringify({ model: 'm', prompt: 'x'.repeat(20_000) }), true));
    expect(setHeaders((await s.next()).request_headers.response.header_mutation)['x-gateway-destination-endpoint']).toBe(key);
    // The body streamed back (full duplex), to its end: the next message is the answer to the response's headers.
    for (;;) if ((await s.next()).request_body.response.body_mutation.streamed_response.end_of_stream) break;
    return s;
  };
  const respond = async (s: EnvoyStream, contentType: string): Promise<void> => {
    s.send(responseHeaders({ ':status': '200', 'content-type': contentType }, false));
    expect((await s.next()).response_headers).toBeDefined();
  };
  const firstTokens = () => epp.datastore.snapshot()[0]!.metrics.firstTokenCount ?? 0;
  try {
    await waitFor(() => epp.datastore.snapshot().every((s) => s.metrics.updateTime > 0));
    // Registered with the producer, before anything is counted (upstream's factory registers them).
    const empty = await page();
    expect(empty).toContain(HELP_REQUESTS);
    expect(empty).toContain('# TYPE llm_d_epp_inflight_requests gauge');
    expect(empty).toContain(HELP_TOKENS);
    expect(empty).toContain('# TYPE llm_d_epp_inflight_tokens gauge');

    // Streamed: its headers come before the prefill and release nothing; the scrape counting its first token does.
    const streamed = await pick('tenant-a');
    expect(await read('tenant-a')).toEqual({ requests: 1, tokens: 5_000 });
    await respond(streamed, 'text/event-stream');
    expect(await read('tenant-a')).toEqual({ requests: 1, tokens: 5_000 });
    const before = firstTokens();
    pod.body = renderVllmMetrics().replace(/^(vllm:time_to_first_token_seconds_count\{[^}]*\}) (\S+)$/m, (_m, name: string, n: string) => `${name} ${Number(n) + 1}`);
    await waitFor(() => firstTokens() === before + 1);
    expect(await read('tenant-a')).toEqual({ requests: 1, tokens: 0 });
    // The exchange's end releases the request; the series stay, at 0.
    streamed.end();
    await waitFor(async () => (await read('tenant-a')).requests === 0);
    expect(await read('tenant-a')).toEqual({ requests: 0, tokens: 0 });

    // Non-streamed: its headers come after the generation and release its tokens; its end, the request.
    const plain = await pick('tenant-b');
    expect(await read('tenant-b')).toEqual({ requests: 1, tokens: 5_000 });
    await respond(plain, 'application/json');
    expect(await read('tenant-b')).toEqual({ requests: 1, tokens: 0 });
    plain.end();
    await waitFor(async () => (await read('tenant-b')).requests === 0);

    // No scrape counts its first token: the timeout releases its tokens (4× the longer of its predicted TTFT and the
    // time the pod's picks took to leave, here some 4 s); the request stays until its end.
    const waiting = await pick('tenant-c');
    expect(await read('tenant-c')).toEqual({ requests: 1, tokens: 5_000 });
    await waitFor(async () => (await read('tenant-c')).tokens === 0, 'the timeout', { limitMs: 40_000 });
    expect((await read('tenant-c')).requests).toBe(1);

    // The pod leaves with the request still held: its series go, and its end brings none back.
    expect(epp.datastore.removeEndpoint(key)).toBe(true);
    const gone = await page();
    expect(gone).not.toContain(`endpoint_name="${key}"`);
    expect(gone).toContain(HELP_REQUESTS);
    waiting.end();
    await new Promise((r) => setTimeout(r, 100));
    expect(await page()).not.toContain(`endpoint_name="${key}"`);
  } finally {
    // An open stream would hold the EPP's drain.
    for (const s of open) s.cancel();
    envoy.close();
    await epp.stop();
    await pod.close();
  }
}, INTEGRATION_TEST_TIMEOUT_MS);

let seq = 0;
const completion = (prompt: string, headers: Record<string, string> = {}): IncomingRequest => ({
  requestId: `r${++seq}`,
  headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
  body: Buffer.from(JSON.stringify({ model: 'm', prompt })),
  filterMetadata: {},
});
type Routed = Extract<RouteDecision, { kind: 'route' }>;
async function route(control: RequestControl, prompt: string, headers?: Record<string, string>): Promise<Routed> {
  const d = await control.route(completion(prompt, headers));
  if (d.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(d)}`);
  return d;
}

describe('inflight-load-producer gauges through request control', () => {
  test('a P/D request: the prefill pick\'s request is released at the response\'s start, the decode pick\'s at its end (producer.go ResponseBody: the `prefill` profile in full at StartOfStream)', async () => {
    const ds = new Datastore({ scrape: false });
    const add = (key: string, name: string, role: string) => {
      ds.upsertEndpoint({ key, name, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: { 'llm-d.ai/role': role } });
      ds.setMetrics(key, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    };
    add('10.0.1.1:8000', 'decode-0', 'decode');
    add('10.0.2.1:8000', 'prefill-0', 'prefill');
    const metrics = createEppMetrics();
    const config = LLMD_GUIDE_CONFIGS['pd-disaggregation'].replace('- type: max-score-picker\n', '- type: max-score-picker\n- type: inflight-load-producer\n');
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(config), { metrics: metrics.scheduling }), metrics: metrics.collectors });
    const requests = async (name: string) => sample(await metrics.registry.metrics(),
      `llm_d_epp_inflight_requests{endpoint_name="${name}",namespace="ns",producer_name="inflight-load-producer",fairness_id="default-flow",priority="0"}`);
    try {
      const d = await route(control, 'y'.repeat(400));
      expect(d.setHeaders?.['x-prefiller-host-port']).toBe('10.0.2.1:8000');
      expect([await requests('decode-0'), await requests('prefill-0')]).toEqual([1, 1]);
      control.responseHeaders(d.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]), {}, false);
      expect([await requests('decode-0'), await requests('prefill-0')]).toEqual([1, 0]);
      control.release(d.ticket, 'completed');
      expect([await requests('decode-0'), await requests('prefill-0')]).toEqual([0, 0]);
    } finally {
      control.close();
      ds.stop();
    }
  });

  // llm-d-router v0.10.0 inflightload/producer.go ResponseBody releases, at StartOfStream, the entry of whichever pick
  // ran under the profile named `prefill`; header-profile-handler (profilehandler/headerprofile/header_profile_handler.go)
  // runs the one profile EPP-Profile names, so a request sent to `prefill` alone has its only (primary) pick there.
  test('EPP-Profile: prefill (header-profile-handler): the primary pick under `prefill` is released at the response\'s start, in the gauge and the datastore\'s activeRequests', async () => {
    const ds = new Datastore({ scrape: false });
    ds.upsertEndpoint({ key: '10.0.0.1:8000', name: 'p0', namespace: 'ns', address: '10.0.0.1', port: 8000, labels: {} });
    ds.setMetrics('10.0.0.1:8000', { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    const config = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: header-profile-handler
- type: inflight-load-producer
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: decode
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
- name: prefill
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`;
    const metrics = createEppMetrics();
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(config), { metrics: metrics.scheduling }), metrics: metrics.collectors });
    const counts = async () => [
      sample(await metrics.registry.metrics(), 'llm_d_epp_inflight_requests{endpoint_name="p0",namespace="ns",producer_name="inflight-load-producer",fairness_id="default-flow",priority="0"}'),
      ds.activeRequests('10.0.0.1:8000'),
    ];
    try {
      const prefill = await route(control, 'hello', { 'epp-profile': 'prefill' });
      expect(await counts()).toEqual([1, 1]);
      control.responseHeaders(prefill.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]), {}, false);
      expect(await counts()).toEqual([0, 0]);
      control.release(prefill.ticket, 'completed');
      expect(await counts()).toEqual([0, 0]);
      // Sent to `decode`, it counts to its end.
      const decode = await route(control, 'hello', { 'epp-profile': 'decode' });
      control.responseHeaders(decode.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]), {}, false);
      expect(await counts()).toEqual([1, 1]);
      control.release(decode.ticket, 'completed');
      expect(await counts()).toEqual([0, 0]);
    } finally {
      control.close();
      ds.stop();
    }
  });

  test(`a flood of fairness ids is bounded: the first ${MAX_INFLIGHT_LABEL_SETS} (fairness_id, priority) sets keep their labels, later ones count as other`, async () => {
    const ds = staticPool(1);
    const metrics = createEppMetrics();
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(LISTED_ALONE), { metrics: metrics.scheduling }), metrics: metrics.collectors });
    try {
      const routed = [];
      for (let i = 0; i < 3 * MAX_INFLIGHT_LABEL_SETS; i++) routed.push(await route(control, `flood ${i}`, { [FAIRNESS_ID_HEADER]: `tenant-${i}` }));
      const lines = (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('llm_d_epp_inflight_requests{'));
      expect(lines).toHaveLength(MAX_INFLIGHT_LABEL_SETS + 1);
      expect(sample(lines.join('\n'), 'llm_d_epp_inflight_requests{endpoint_name="p0",namespace="ns",producer_name="inflight-load-producer",fairness_id="other",priority="other"}'))
        .toBe(2 * MAX_INFLIGHT_LABEL_SETS);
      for (const d of routed) control.release(d.ticket, 'completed');
      const after = (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('llm_d_epp_inflight_'));
      expect(after.every((l) => l.endsWith(' 0'))).toBe(true);
    } finally {
      control.close();
      ds.stop();
    }
  });

  test('counting while no filter reads it changes no pick: the same requests go to the same pods with and without the producer listed', async () => {
    const base = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: queue-scorer
- type: active-request-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: queue-scorer
  - pluginRef: active-request-scorer
  - pluginRef: max-score-picker
`;
    // Its discount asks the prefix scorer for the pick's match: that read must not move a pick either.
    const listed = base.replace('- type: max-score-picker\n', '- type: max-score-picker\n- type: inflight-load-producer\n  parameters: { prefixMatchInfoProducerName: prefix-cache-scorer }\n');
    const picks = async (text: string): Promise<string[]> => {
      const ds = staticPool(4);
      const random = seededRandom(11);
      const control = new RequestControl({ datastore: ds, random, scheduler: buildScheduler(parseEndpointPickerConfig(text), { random, now: () => 1_000_000 }) });
      try {
        const out: string[] = [];
        const held: Routed[] = [];
        for (let i = 0; i < 80; i++) {
          const d = await route(control, `${'shared system prompt '.repeat(10 + (i % 3) * 7)}question ${i % 11}`);
          out.push(d.endpoint);
          held.push(d);
          // Responses end out of order, some streamed, some not.
          if (i % 3 === 2) {
            const done = held.splice(i % 2, 1)[0]!;
            control.responseHeaders(done.ticket, new Map([[':status', '200'], ['content-type', i % 2 === 0 ? 'text/event-stream' : 'application/json']]), {}, false);
            control.release(done.ticket, 'completed');
          }
        }
        return out;
      } finally {
        control.close();
        ds.stop();
      }
    };
    const without = await picks(base);
    expect(new Set(without).size).toBeGreaterThan(1);
    expect(await picks(listed)).toEqual(without);
  });
});

/**
 * llm-d-router v0.10.0 datalayer/data_graph.go CreateMissingDataProducers builds a key's default producer
 * (cmd/epp/runner/runner.go RegisterAsDefaultProducer: inflight-load-producer for InFlightLoadDataKey) when a listed
 * plugin's Consumes() requires it and nothing listed produces it: utilization-filter with an active-requests condition
 * (filter/utilization/filter.go), active-request-scorer (scorer/activerequest/active_request.go), concurrency-detector
 * (flowcontrol/saturationdetector/concurrency/detector.go), predicted-latency-producer (dataproducer/predictedlatency/
 * dataproducer_hooks.go). Its factory registers the gauges (inflightload/metrics.go registerMetrics).
 */
describe('the default inflight-load-producer, built for a plugin consuming the in-flight load with none listed', () => {
  const config = (reader: string, ref = reader) => `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
${reader}
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
${ref === '' ? '' : `  - pluginRef: ${ref}\n`}  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`;
  const UTILIZATION = '- type: utilization-filter\n  parameters:\n    conditions:\n    - metric: active-requests\n      maxValue: 4';
  test.each<[string, string, string]>([
    ['utilization-filter (active-requests)', UTILIZATION, 'utilization-filter'],
    ['active-request-scorer', '- type: active-request-scorer', 'active-request-scorer'],
    ['concurrency-detector', '- type: concurrency-detector', 'concurrency-detector'],
    ['predicted-latency-producer', '- type: predicted-latency-producer\n- type: latency-scorer', 'latency-scorer'],
  ])('%s: added to the rendered config, its gauges registered', async (_, reader, ref) => {
    const parsed = parseEndpointPickerConfig(config(reader, ref));
    expect(parsed.plugins.filter((p) => p.type === 'inflight-load-producer').map((p) => p.name)).toEqual(['inflight-load-producer']);
    const metrics = createEppMetrics();
    buildScheduler(parsed, { metrics: metrics.scheduling });
    expect(await metrics.registry.metrics()).toContain('# TYPE llm_d_epp_inflight_requests gauge');
  });

  test('not for a utilization-filter without an active-requests condition (upstream consumes the key only then), nor when a producer is named', () => {
    const other = config('- type: utilization-filter\n  parameters:\n    conditions:\n    - metric: waiting-queue\n      maxValue: 4', 'utilization-filter');
    expect(parseEndpointPickerConfig(other).plugins.map((p) => p.type)).not.toContain('inflight-load-producer');
    const named = config('- type: inflight-load-producer\n  name: mine\n- type: active-request-scorer\n  parameters: { inFlightLoadProducerName: mine }', 'active-request-scorer');
    expect(parseEndpointPickerConfig(named).plugins.filter((p) => p.type === 'inflight-load-producer').map((p) => p.name)).toEqual(['mine']);
  });

  test('picks are those of the same config without it (the filters and scorers read the datastore\'s count)', () => {
    const parsed = parseEndpointPickerConfig(config(`${UTILIZATION}\n- type: active-request-scorer`, 'utilization-filter\n  - pluginRef: active-request-scorer'));
    const without = { ...parsed, plugins: parsed.plugins.filter((p) => p.type !== 'inflight-load-producer') };
    const random = seededRandom(7);
    const pods = Array.from({ length: 4 }, (_, i) => ({
      endpoint: { key: `p${i}:8000`, name: `p${i}`, namespace: 'ns', address: `p${i}`, port: 8000, labels: {} },
      metrics: { ...EMPTY_METRICS, updateTime: 1 },
      activeRequests: 0,
    }));
    // The same tie-breaks on both sides.
    const a = buildScheduler(parsed, { random: seededRandom(3), now: () => 1_000_000 });
    const b = buildScheduler(without, { random: seededRandom(3), now: () => 1_000_000 });
    const picked = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const pool = pods.map((p) => ({ ...p, activeRequests: Math.floor(random() * 6), metrics: { ...p.metrics, waitingQueueSize: Math.floor(random() * 3) } }));
      const request = { requestId: `r${i}`, model: 'm', prompt: `prompt ${i}`, headers: {} };
      const pick = (s: ReturnType<typeof buildScheduler>) => { try { return s.schedule(request, pool).target.endpoint.name; } catch (e) { return String(e); } };
      const fromA = pick(a);
      picked.add(fromA);
      expect(fromA).toBe(pick(b));
    }
    expect(picked.size).toBeGreaterThan(1);
  });
});
