/**
 * llm-d's router exports GIE's families twice, under their old names and as `llm_d_epp_*` (llm-d-router v0.10.0
 * `pkg/epp/metrics/llm_d_router_metrics.go`, `metrics.go` Register): the twins kvroute derives at scrape time carry
 * the same values and buckets, with llm-d's label renames and its rounded pool averages.
 */
import { defaultEndpointPickerConfig, parseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { createEppMetrics, LLMD_TWIN_METRICS } from '../src/metrics';
import { LLMD_FAIRNESS_ID_HEADER, MAX_LLMD_LABEL_SETS, PRIORITY_HEADER, RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';
import { staticPool } from './static-pool';

/** The value of one exposition line, `name{labels}`, or undefined when absent. */
function sample(page: string, series: string): number | undefined {
  const line = page.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('llm_d_epp_* twins (llm-d-router v0.10.0 llm_d_router_metrics.go)', () => {
  test('each twin repeats its source family: same series and values, llm-d\'s label names, pool averages rounded to two decimals (logger.go round2)', async () => {
    const { registry, collectors: c, scheduling } = createEppMetrics({ commit: 'abc', buildRef: 'v1' });
    c.poolAverageKvCacheUtilization.set({ name: 'pool' }, 0.123456);
    c.poolAverageQueueSize.set({ name: 'pool' }, 7 / 3);
    c.poolReadyPods.set({ name: 'pool' }, 3);
    c.poolPerPodQueueSize.set({ name: 'pool', model_server_pod: 'decode-0' }, 5);
    c.schedulerAttempts.inc({ status: 'success', target_model_name: 'm', pod_name: 'decode-0', namespace: 'ns', port: '8000' }, 2);
    c.gieFlowControlQueueSize.set({ fairness_id: 'a', priority: '0', inference_pool: 'pool', model_name: 'm', target_model_name: 'm' }, 4);
    c.modelRewriteDecisions.inc({ model_rewrite_name: 'r', model_name: 'm', target_model: 'm2' });
    scheduling.observeSchedulingDuration(0.0003);
    scheduling.observeSchedulingDuration(0.07);
    scheduling.observePluginDuration('Scorer', 'queue-scorer', 'queue-scorer', 0.0004);
    const page = await registry.metrics();
    expect(sample(page, 'inference_pool_average_kv_cache_utilization{name="pool"}')).toBe(0.123456);
    expect(sample(page, 'llm_d_epp_average_kv_cache_utilization{name="pool"}')).toBe(0.12);
    expect(sample(page, 'llm_d_epp_average_queue_size{name="pool"}')).toBe(2.33);
    expect(sample(page, 'llm_d_epp_ready_endpoints{name="pool"}')).toBe(3);
    expect(sample(page, 'llm_d_epp_per_endpoint_queue_size{name="pool",model_server_endpoint="decode-0"}')).toBe(5);
    expect(sample(page, 'llm_d_epp_scheduler_attempts_total{status="success",target_model_name="m",endpoint_name="decode-0",namespace="ns",port="8000"}')).toBe(2);
    expect(sample(page, 'llm_d_epp_flow_control_queue_size{fairness_id="a",priority="0",inference_pool="pool",model_name="m",target_model_name="m"}')).toBe(4);
    expect(sample(page, 'llm_d_epp_model_rewrite_decisions_total{model_rewrite_name="r",model_name="m",target_model="m2"}')).toBe(1);
    expect(sample(page, 'llm_d_epp_info{commit="abc",build_ref="v1"}')).toBe(1);
    // Histograms keep their buckets (llm-d's twins use GIE's: 0.0001 … 0.1 for scheduling).
    expect(sample(page, 'llm_d_epp_scheduler_e2e_duration_seconds_bucket{le="0.0005"}')).toBe(1);
    expect(sample(page, 'llm_d_epp_scheduler_e2e_duration_seconds_bucket{le="0.1"}')).toBe(2);
    expect(sample(page, 'llm_d_epp_scheduler_e2e_duration_seconds_count')).toBe(2);
    expect(sample(page, 'llm_d_epp_plugin_duration_seconds_count{extension_point="Scorer",plugin_type="queue-scorer",plugin_name="queue-scorer"}')).toBe(1);
    expect(page).toContain('# TYPE llm_d_epp_scheduler_e2e_duration_seconds histogram');
    expect(page).toContain('# HELP llm_d_epp_ready_endpoints [ALPHA] The number of ready endpoints in the inference server pool.');
    // Every twin is on the page, each under a name llm-d registers.
    for (const twin of LLMD_TWIN_METRICS) expect(page).toContain(`# TYPE ${twin.name} `);
  });

  test('the pool\'s standard deviations are llm-d\'s: sample (n − 1, at least 1) over the ready endpoints, two decimals (logger.go calculateSummary)', () => {
    const ds = new Datastore({ scrape: false });
    const now = Date.now();
    const pods = [
      { kv: 0.1, waiting: 0, running: 3 },
      { kv: 0.2, waiting: 2, running: 3 },
      { kv: 0.6, waiting: 7, running: 3 },
      { kv: 0.9, waiting: 100, running: 9, stale: true },
    ];
    pods.forEach((p, i) => {
      ds.upsertEndpoint({ key: `10.0.0.${i + 1}:8000`, name: `p${i}`, namespace: 'ns', address: `10.0.0.${i + 1}`, port: 8000, labels: {} });
      ds.setMetrics(`10.0.0.${i + 1}:8000`, { kvCacheUsagePercent: p.kv, waitingQueueSize: p.waiting, runningQueueSize: p.running, updateTime: p.stale ? now - 60_000 : now, consecutiveFailures: 0 });
    });
    try {
      const stats = ds.poolStats(now, 1_000);
      // waiting 0, 2, 7: mean 3, Σ(x − 3)² = 9 + 1 + 16 = 26, √(26 ÷ 2) = 3.61; kv 0.1, 0.2, 0.6: √(0.14 ÷ 2) = 0.26.
      expect(stats).toMatchObject({ readyEndpoints: 3, stdDevWaitingQueue: 3.61, stdDevKvCacheUsage: 0.26, stdDevRunningQueue: 0 });
      // Left with one endpoint: n − 1 is held at 1, so 0; none ready: undefined, as the averages.
      ds.removeEndpoint('10.0.0.1:8000');
      ds.removeEndpoint('10.0.0.2:8000');
      ds.removeEndpoint('10.0.0.3:8000');
      expect(ds.poolStats(now, Infinity)).toMatchObject({ readyEndpoints: 1, averageWaitingQueue: 100, stdDevWaitingQueue: 0 });
      expect(ds.poolStats(now, 1_000)).toMatchObject({ readyEndpoints: 0, stdDevWaitingQueue: undefined });
    } finally {
      ds.stop();
    }
  });
});

describe('llm_d_epp_prefix_indexer_* (llm-d-router v0.10.0 dataproducer/approximateprefix/metrics.go: written beside GIE\'s, labelled with the indexing plugin)', () => {
  test('each pick\'s prefix match and the index size, under the prefix scorer\'s name and type, with the values GIE\'s unlabelled families get', async () => {
    const ds = staticPool(2);
    const { registry, collectors, scheduling } = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { metrics: scheduling }), metrics: collectors });
    try {
      const prompt = 'The same long system prompt for every request. '.repeat(8);
      await routeCompletions(director, [prompt, prompt]);
      const page = await registry.metrics();
      const labels = 'plugin_name="prefix-cache-scorer",plugin_type="prefix-cache-scorer"';
      expect(sample(page, `llm_d_epp_prefix_indexer_hit_bytes_count{${labels}}`)).toBe(2);
      expect(sample(page, `llm_d_epp_prefix_indexer_hit_bytes_sum{${labels}}`)).toBe(sample(page, 'inference_extension_prefix_indexer_hit_bytes_sum'));
      expect(sample(page, `llm_d_epp_prefix_indexer_hit_ratio_sum{${labels}}`)).toBe(sample(page, 'inference_extension_prefix_indexer_hit_ratio_sum'));
      expect(sample(page, `llm_d_epp_prefix_indexer_size{${labels}}`)).toBe(sample(page, 'inference_extension_prefix_indexer_size'));
      expect(sample(page, `llm_d_epp_prefix_indexer_size{${labels}}`)).toBeGreaterThan(0);
      expect(page).toContain('# HELP llm_d_epp_prefix_indexer_hit_bytes [ALPHA] Length of the prefix match in number of bytes in the cache lookup.');
      // A registry reset drops the gauge's series, as prom-client's labelled gauges do; the next pick sets it again.
      registry.resetMetrics();
      expect(await registry.metrics()).not.toContain('llm_d_epp_prefix_indexer_size{');
      const d = await director.route({
        requestId: 'r2', headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json']]),
        body: Buffer.from(JSON.stringify({ model: 'm', prompt })), filterMetadata: {},
      });
      if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
      director.release(d.ticket, 'completed');
      expect(sample(await registry.metrics(), `llm_d_epp_prefix_indexer_size{${labels}}`)).toBeGreaterThan(0);
    } finally {
      director.close();
      ds.stop();
    }
  });
  test('a pick whose prompt hashes to no block is observed as 0 bytes matched and no ratio, as upstream observes every primary pick (GIE v1.5.0 and llm-d-router v0.10.0 approximateprefix/plugin.go PreRequest, metrics.go recordPrefixCacheMatch)', async () => {
    // Produce (PrepareRequestData in GIE v1.5.0) writes its state whatever the prompt hashed to, and PreRequest records
    // matchLen × blockSize × 4 of total × blockSize × 4 from it: hit_bytes gets a 0, hit_ratio nothing (total 0).
    const ds = staticPool(2);
    const { registry, collectors, scheduling } = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { metrics: scheduling }), metrics: collectors });
    try {
      await routeCompletions(director, ['Hi.', 'The same long system prompt for every request. '.repeat(8)]);
      const page = await registry.metrics();
      const labels = 'plugin_name="prefix-cache-scorer",plugin_type="prefix-cache-scorer"';
      expect(sample(page, 'inference_extension_prefix_indexer_hit_bytes_count')).toBe(2);
      expect(sample(page, 'inference_extension_prefix_indexer_hit_bytes_bucket{le="0"}')).toBe(2);
      expect(sample(page, `llm_d_epp_prefix_indexer_hit_bytes_count{${labels}}`)).toBe(2);
      // The ratio only where the prompt had blocks.
      expect(sample(page, 'inference_extension_prefix_indexer_hit_ratio_count')).toBe(1);
      expect(sample(page, `llm_d_epp_prefix_indexer_hit_ratio_count{${labels}}`)).toBe(1);
    } finally {
      director.close();
      ds.stop();
    }
  });
  test('a P/D request is observed once, at its primary (decode) pick, as upstream records only ProfileResults[PrimaryProfileName]\'s match (GIE v1.5.0 and llm-d-router v0.10.0 approximateprefix/plugin.go PreRequest)', async () => {
    // llm-d's P/D guide lists prefix-cache-scorer in both profiles. Upstream's PreRequest indexes the prompt on the
    // decode and the prefill pick but records one match, the decode target's: the first request 0 of its blocks, the
    // second all of them (the decode pod indexed by the first). Observed at each profile's pick, 2 requests were 4
    // observations, the prefill picks' matches among them.
    const ds = new Datastore({ scrape: false });
    for (const [key, role] of [['10.0.1.1:8000', 'decode'], ['10.0.2.1:8000', 'prefill']] as const) {
      ds.upsertEndpoint({ key, name: `${role}-0`, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: { 'llm-d.ai/role': role } });
      ds.setMetrics(key, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    }
    const { registry, collectors, scheduling } = createEppMetrics();
    const config = parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['pd-disaggregation']);
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config, { metrics: scheduling }), metrics: collectors });
    try {
      const prompt = 'The same long system prompt for every request. '.repeat(40);
      const routed = await routeCompletions(director, [prompt, prompt]);
      // Both disaggregated (the prefill pick is the one the decode pod is told of).
      expect(routed.map((d) => [d.endpoint, d.setHeaders?.['x-prefiller-host-port']])).toEqual([['10.0.1.1:8000', '10.0.2.1:8000'], ['10.0.1.1:8000', '10.0.2.1:8000']]);
      const page = await registry.metrics();
      const labels = 'plugin_name="prefix-cache-scorer",plugin_type="prefix-cache-scorer"';
      expect(sample(page, 'inference_extension_prefix_indexer_hit_bytes_count')).toBe(2);
      expect(sample(page, `llm_d_epp_prefix_indexer_hit_bytes_count{${labels}}`)).toBe(2);
      expect(sample(page, 'inference_extension_prefix_indexer_hit_ratio_count')).toBe(2);
      expect(sample(page, 'inference_extension_prefix_indexer_hit_ratio_sum')).toBe(1);
      expect(sample(page, 'inference_extension_prefix_indexer_hit_bytes_bucket{le="0"}')).toBe(1);
    } finally {
      director.close();
      ds.stop();
    }
  });

  test('a request is observed at its primary pick when only another profile lists the scorer (llm-d\'s wide-ep-lws-experimental-dp-aware guide: prefill only), as upstream\'s producer observes the primary pick whatever the profiles list', async () => {
    // Its prefix-based-pd-decider (nonCachedTokens 0) never disaggregates: the decode profile, which lists no prefix
    // scorer, picks alone. Upstream's approximate producer still matches and records every request (PreRequest); here
    // the scheduler records the decode pick in the scorer's index, and until session 77 observed nothing.
    const ds = new Datastore({ scrape: false });
    for (const [key, role] of [['10.0.1.1:8000', 'decode'], ['10.0.2.1:8000', 'prefill']] as const) {
      ds.upsertEndpoint({ key, name: `${role}-0`, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: { 'llm-d.ai/role': role } });
      ds.setMetrics(key, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    }
    const { registry, collectors, scheduling } = createEppMetrics();
    const config = parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['wide-ep-lws-experimental-dp-aware']);
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config, { metrics: scheduling }), metrics: collectors });
    try {
      const prompt = 'The same long system prompt for every request. '.repeat(40);
      const routed = await routeCompletions(director, [prompt, prompt]);
      expect(routed.map((d) => [d.endpoint, d.setHeaders?.['x-prefiller-host-port']])).toEqual([['10.0.1.1:8000', undefined], ['10.0.1.1:8000', undefined]]);
      const page = await registry.metrics();
      expect(sample(page, 'inference_extension_prefix_indexer_hit_bytes_count')).toBe(2);
      expect(sample(page, 'inference_extension_prefix_indexer_hit_ratio_count')).toBe(2);
      // The first 0 (nothing indexed), the second the whole prompt (the first's decode pick indexed).
      expect(sample(page, 'inference_extension_prefix_indexer_hit_ratio_sum')).toBe(1);
    } finally {
      director.close();
      ds.stop();
    }
  });
});

describe('llm_d_epp_request_processing_duration_seconds and llm_d_epp_response_processing_duration_seconds (llm_d_router_metrics.go, handlers/server.go @ v0.10.0)', () => {
  const post = (body: string, receivedAtMs?: number): IncomingRequest => ({
    requestId: 'r',
    headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json']]),
    body: Buffer.from(body),
    filterMetadata: {},
    ...(receivedAtMs !== undefined ? { receivedAtMs } : {}),
  });

  test('once per request from its headers to its decision, routed or refused; once per response that reached the EPP, however it ended; upstream\'s buckets and help', async () => {
    const ds = staticPool(2);
    const { registry, collectors } = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: collectors });
    try {
      // Headers 20 ms before the body was handed over: the upload counts, as upstream times from RequestReceivedTimestamp.
      const routed = await director.route(post(JSON.stringify({ model: 'm', prompt: 'hello' }), performance.now() - 20));
      if (routed.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(routed)}`);
      expect((await director.route(post('{bad json', performance.now()))).kind).toBe('reject');
      let page = await registry.metrics();
      expect(sample(page, 'llm_d_epp_request_processing_duration_seconds_count')).toBe(2);
      expect(sample(page, 'llm_d_epp_request_processing_duration_seconds_sum')).toBeGreaterThanOrEqual(0.02);
      expect(sample(page, 'llm_d_epp_request_processing_duration_seconds_bucket{le="0.0005"}')).toBeDefined();
      // No series before the first response, as upstream's unlabelled HistogramVec has none before WithLabelValues().
      expect(sample(page, 'llm_d_epp_response_processing_duration_seconds_count')).toBeUndefined();
      director.responseHeaders(routed.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]));
      director.release(routed.ticket, 'cancelled');
      page = await registry.metrics();
      expect(sample(page, 'llm_d_epp_response_processing_duration_seconds_count')).toBe(1);
      expect(sample(page, 'llm_d_epp_response_processing_duration_seconds_bucket{le="0.0001"}')).toBeDefined();
      expect(page).toContain('# HELP llm_d_epp_request_processing_duration_seconds [ALPHA] EPP request processing latency distribution in seconds, from request receipt until the request body has been handled, including admission control.');
      // A request whose transport does not say when its headers came is not timed.
      const untimed = await director.route(post(JSON.stringify({ model: 'm', prompt: 'hi' })));
      if (untimed.kind === 'route') director.release(untimed.ticket, 'completed');
      expect(sample(await registry.metrics(), 'llm_d_epp_request_processing_duration_seconds_count')).toBe(2);
    } finally {
      director.close();
      ds.stop();
    }
  });
});

describe('llm_d_epp_request_* (llm-d-router v0.10.0 metrics.go: each recorder writes GIE\'s family and llm-d\'s with fairness_id and priority)', () => {
  const post = (body: string, headers: Record<string, string>): IncomingRequest => ({
    requestId: 'r',
    headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
    body: Buffer.from(body),
    filterMetadata: {},
  });

  test('a request is counted, sized, running, timed and its response read under its fairness id and priority; an error under the same; no fairness id is default-flow', async () => {
    const ds = staticPool(2);
    const { registry, collectors } = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: collectors, maxHeaderPriority: 10 });
    try {
      const body = JSON.stringify({ model: 'm', prompt: 'hello' });
      const d = await director.route(post(body, { [LLMD_FAIRNESS_ID_HEADER]: 'tenant-a', [PRIORITY_HEADER]: '3' }));
      if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
      const set = 'model_name="m",target_model_name="m",fairness_id="tenant-a",priority="3"';
      let page = await registry.metrics();
      expect(sample(page, `llm_d_epp_request_total{${set}}`)).toBe(1);
      expect(sample(page, `llm_d_epp_request_running{${set}}`)).toBe(1);
      expect(sample(page, `llm_d_epp_request_size_bytes_sum{${set}}`)).toBe(body.length);
      director.responseHeaders(d.ticket, new Map([[':status', '200'], ['content-type', 'application/json']]));
      director.responseBody(d.ticket, Buffer.from('{"usage":{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}'), true);
      director.release(d.ticket, 'completed');
      page = await registry.metrics();
      expect(sample(page, `llm_d_epp_request_running{${set}}`)).toBe(0);
      expect(sample(page, `llm_d_epp_request_duration_seconds_count{${set}}`)).toBe(1);
      expect(sample(page, `llm_d_epp_request_input_tokens_sum{${set}}`)).toBe(5);
      expect(sample(page, `llm_d_epp_request_output_tokens_sum{${set}}`)).toBe(3);
      expect(sample(page, `llm_d_epp_request_cached_tokens_sum{${set}}`)).toBe(2);
      expect(sample(page, `llm_d_epp_request_ntpot_seconds_count{${set}}`)).toBe(1);
      expect(sample(page, `llm_d_epp_response_size_bytes_count{${set}}`)).toBe(1);
      // GIE's families as before, beside them.
      expect(sample(page, 'inference_objective_request_total{model_name="m",target_model_name="m",priority="3"}')).toBe(1);
      // An unreadable body: GIE's error with llm-d's labels from the request's headers (the model unread: "").
      expect(await director.route(post('{', { [LLMD_FAIRNESS_ID_HEADER]: 'tenant-a' }))).toMatchObject({ kind: 'reject', status: 400 });
      // No fairness id: llm-d's default flow (pkg/epp/metadata/consts.go DefaultFairnessID).
      const plain = await director.route(post(body, {}));
      if (plain.kind !== 'route') throw new Error('expected a route');
      director.release(plain.ticket, 'completed');
      page = await registry.metrics();
      expect(sample(page, 'llm_d_epp_request_error_total{model_name="",target_model_name="",fairness_id="tenant-a",priority="0",error_code="BadRequest"}')).toBe(1);
      expect(sample(page, 'inference_objective_request_error_total{model_name="",target_model_name="",error_code="BadRequest"}')).toBe(1);
      expect(sample(page, 'llm_d_epp_request_total{model_name="m",target_model_name="m",fairness_id="default-flow",priority="0"}')).toBe(1);
    } finally {
      director.close();
      ds.stop();
    }
  });

  test('a response-side series appears at its first observation, as prom-client creates a labelled series: a response without output tokens adds no output-token or NTPOT series (llm-d-router v0.10.0 metrics.go RecordOutputTokens observes counts above 0)', async () => {
    const ds = staticPool(2);
    const { registry, collectors } = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: collectors });
    try {
      const respond = async (usage: string) => {
        const d = await director.route(post(JSON.stringify({ model: 'm', prompt: 'hello' }), { [LLMD_FAIRNESS_ID_HEADER]: 'tenant-a' }));
        if (d.kind !== 'route') throw new Error('expected a route');
        director.responseHeaders(d.ticket, new Map([[':status', '200'], ['content-type', 'application/json']]));
        director.responseBody(d.ticket, Buffer.from(`{"usage":${usage}}`), true);
        director.release(d.ticket, 'completed');
      };
      const set = 'model_name="m",target_model_name="m",fairness_id="tenant-a",priority="0"';
      await respond('{"prompt_tokens":5,"completion_tokens":0}');
      let page = await registry.metrics();
      expect(sample(page, `llm_d_epp_request_input_tokens_count{${set}}`)).toBe(1);
      expect(sample(page, `llm_d_epp_response_size_bytes_count{${set}}`)).toBe(1);
      expect(page).not.toContain('llm_d_epp_request_output_tokens_count{');
      expect(page).not.toContain('llm_d_epp_request_ntpot_seconds_count{');
      expect(page).not.toContain('llm_d_epp_request_cached_tokens_count{');
      await respond('{"prompt_tokens":5,"completion_tokens":3}');
      page = await registry.metrics();
      expect(sample(page, `llm_d_epp_request_output_tokens_count{${set}}`)).toBe(1);
      expect(sample(page, `llm_d_epp_request_ntpot_seconds_count{${set}}`)).toBe(1);
      expect(sample(page, `llm_d_epp_request_input_tokens_count{${set}}`)).toBe(2);
    } finally {
      director.close();
      ds.stop();
    }
  });

  test('past MAX_LLMD_LABEL_SETS client-chosen sets, a new set keeps its model pair (a new model\'s traffic stays its own) with fairness id and priority "other"', async () => {
    const ds = staticPool(2);
    const { registry, collectors } = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: collectors });
    try {
      const route = async (model: string, fairness: string) => {
        const d = await director.route(post(JSON.stringify({ model, prompt: 'hello' }), { [LLMD_FAIRNESS_ID_HEADER]: fairness }));
        if (d.kind !== 'route') throw new Error('expected a route');
        director.release(d.ticket, 'completed');
      };
      for (let i = 0; i < MAX_LLMD_LABEL_SETS + 8; i++) await route('m', `tenant-${i}`);
      await route('new-model', 'tenant-0');
      const page = await registry.metrics();
      const totals = page.split('\n').filter((l) => l.startsWith('llm_d_epp_request_total{'));
      expect(totals.filter((l) => !l.includes('fairness_id="other"'))).toHaveLength(MAX_LLMD_LABEL_SETS);
      expect(sample(page, 'llm_d_epp_request_total{model_name="m",target_model_name="m",fairness_id="other",priority="other"}')).toBe(8);
      expect(sample(page, 'llm_d_epp_request_total{model_name="new-model",target_model_name="new-model",fairness_id="other",priority="other"}')).toBe(1);
    } finally {
      director.close();
      ds.stop();
    }
  });
});

/** Routes one /v1/completions request per prompt through `director`, each released as completed; returns the routes. */
async function routeCompletions(director: RequestControl, prompts: readonly string[]): Promise<Extract<RouteDecision, { kind: 'route' }>[]> {
  const routed: Extract<RouteDecision, { kind: 'route' }>[] = [];
  for (const [i, prompt] of prompts.entries()) {
    const d = await director.route({
      requestId: `r${i}`, headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json']]),
      body: Buffer.from(JSON.stringify({ model: 'm', prompt })), filterMetadata: {},
    });
    if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
    director.release(d.ticket, 'completed');
    routed.push(d);
  }
  return routed;
}
