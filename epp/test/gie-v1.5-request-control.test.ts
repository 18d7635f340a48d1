/**
 * Request control against GIE's Endpoint Picker at v1.5.0 (kubernetes-sigs/gateway-api-inference-extension, commit
 * df9f8909fe06fe2dfd4a6fc0bd0c01a0acabf849; llm-d-inference-scheduler v0.8.0 builds on it): the statuses of its
 * immediate responses and their `error_code` labels, the comma-separated fallback list, and the request metrics' labels.
 * Each test names the upstream file whose behaviour it pins.
 */
import { parseEndpointPickerConfig } from '../src/config';
import type { Datastore } from '../src/datastore/datastore';
import { staticPool } from './static-pool';
import type { IncomingRequest } from '../src/extproc/request-director';
import { createEppMetrics } from '../src/metrics';
import { RequestControl } from '../src/requestcontrol/request-control';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { startExtProcServer } from '../src/extproc/server';
import { collectingLogger, FakeEnvoy, POST_HEADERS, protocolConfig, readStreamedBody, requestBody } from './extproc-harness';

const pool = staticPool;

/** A POST of `body`, by default to the path whose API reads it (GIE's openai-parser refuses a chat sent to /v1/completions). */
const post = (body: unknown, headers: Record<string, string> = {}): IncomingRequest => ({
  requestId: 'r',
  headers: new Map([
    [':method', 'POST'],
    [':path', typeof body === 'object' && body !== null && 'messages' in body ? '/v1/chat/completions' : '/v1/completions'],
    ['content-type', 'application/json'],
    ...Object.entries(headers),
  ]),
  body: Buffer.from(JSON.stringify(body)),
  filterMetadata: {},
});
const get: IncomingRequest = { requestId: 'g', headers: new Map([[':method', 'GET'], [':path', '/v1/models']]), filterMetadata: {} };
const chat = { model: 'm', messages: [{ role: 'user', content: 'hello' }] };

const config = (plugins: string, profile: string) => parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
${plugins}
schedulingProfiles:
- name: default
  plugins:
${profile}
`);

describe('request control as GIE v1.5.0 answers', () => {
  let ds: Datastore;
  afterEach(() => ds.stop());

  test('director.go HandleRequest: a scheduling failure among existing candidates counts a failed scheduler attempt; kvroute answers it 503 when no pod can serve it (GIE: 429 for every failure), 429 only for load', async () => {
    ds = pool(2);
    // No pod has llm-d's prefill role, so the filter leaves none: GIE's director answers 429 ResourceExhausted; kvroute
    // 503 ServiceUnavailable, as waiting will not give a pod the role (a deliberate difference, epp/README.md).
    const scheduler = buildScheduler(config('- type: prefill-filter\n- type: queue-scorer', '  - pluginRef: prefill-filter\n  - pluginRef: queue-scorer'));
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler, metrics: metrics.collectors });
    const d = await director.route(post(chat));
    expect(d).toMatchObject({ kind: 'reject', status: 503 });
    const errors = await metrics.registry.getSingleMetricAsString('inference_objective_request_error_total');
    expect(errors).toContain('inference_objective_request_error_total{model_name="m",target_model_name="m",error_code="ServiceUnavailable"} 1');
    const attempts = await metrics.registry.getSingleMetricAsString('inference_extension_scheduler_attempts_total');
    expect(attempts).toContain('inference_extension_scheduler_attempts_total{status="failure",target_model_name="m",pod_name="",namespace="",port=""} 1');
  });

  test('director.go HandleRequest parses before it locates: a malformed body is 400 with no pod ready; error series carry the incoming model and the rewrite target (server.go\'s deferred count)', async () => {
    ds = pool(0);
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer')), metrics: metrics.collectors });
    const bad: IncomingRequest = { ...post(chat, { 'x-gateway-model-name-rewrite': 'tgt' }), body: Buffer.from('{"model": ') };
    expect(await director.route(bad)).toMatchObject({ kind: 'reject', status: 400 });
    expect(await director.route(post(chat, { 'x-gateway-model-name-rewrite': 'tgt' }))).toMatchObject({ kind: 'reject', status: 503 });
    const errors = await metrics.registry.getSingleMetricAsString('inference_objective_request_error_total');
    expect(errors).toContain('inference_objective_request_error_total{model_name="",target_model_name="tgt",error_code="BadRequest"} 1');
    expect(errors).toContain('inference_objective_request_error_total{model_name="m",target_model_name="tgt",error_code="ServiceUnavailable"} 1');
    // kvroute's own 400 (an unreadable x-kvroute-priority) comes after the body is read: the rewrite target labels it too.
    director.close();
    ds = pool(2);
    const withPods = new RequestControl({ datastore: ds, scheduler: buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer')), metrics: metrics.collectors });
    expect(await withPods.route(post(chat, { 'x-gateway-model-name-rewrite': 'tgt', 'x-kvroute-priority': 'urgent' }))).toMatchObject({ kind: 'reject', status: 400 });
    withPods.close();
    expect(await metrics.registry.getSingleMetricAsString('inference_objective_request_error_total'))
      .toContain('inference_objective_request_error_total{model_name="m",target_model_name="tgt",error_code="BadRequest"} 1');
  });

  test('parsers/passthrough (the hermetic "passthrough parser success" config): the body is not read, the request is scheduled and counted with no model, and forwarded untouched', async () => {
    ds = pool(2);
    const metrics = createEppMetrics();
    const cfg = parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: passthrough-parser
- type: queue-scorer
parser:
  pluginRef: passthrough-parser
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`);
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(cfg), metrics: metrics.collectors });
    const raw: IncomingRequest = { ...post(chat, { 'x-gateway-model-name-rewrite': 'tgt' }), body: Buffer.from('passthrough-parser') };
    const d = await director.route(raw);
    expect(d.kind).toBe('route');
    if (d.kind !== 'route') return;
    expect(d.body).toBeUndefined();
    // Its ParseResponse returns nothing: the response's size counts, its usage does not.
    director.responseHeaders(d.ticket, new Map([[':status', '200'], ['content-type', 'application/json']]));
    director.responseBody(d.ticket, Buffer.from('{"usage":{"prompt_tokens":7,"completion_tokens":3}}'), true);
    director.release(d.ticket, 'completed');
    // The rewrite header labels the request (GIE reads it at the headers), though nothing is rewritten.
    expect(await metrics.registry.getSingleMetricAsString('inference_objective_request_total')).toContain('inference_objective_request_total{model_name="",target_model_name="tgt",priority="0"} 1');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^inference_objective_response_sizes_count\{model_name="",target_model_name="tgt"\} 1$/m);
    expect(text).not.toMatch(/^inference_objective_input_tokens_count\{/m);
  });

  test('parsers/openai/openai.go parses every body whatever its content-type: JSON sent as a form (curl -d) is read (rewritten, counted), malformed JSON as text is 400; what cannot be JSON (a multipart upload) is routed by load', async () => {
    ds = pool(2);
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer')), metrics: metrics.collectors });
    const as = (contentType: string, body: string, headers: Record<string, string> = {}): IncomingRequest => {
      const req = post(chat, headers);
      return { ...req, headers: new Map([...req.headers, ['content-type', contentType]]), body: Buffer.from(body) };
    };
    const form = await director.route(as('application/x-www-form-urlencoded', JSON.stringify(chat), { 'x-gateway-model-name-rewrite': 'tgt' }));
    expect(form.kind).toBe('route');
    if (form.kind === 'route') {
      expect(JSON.parse(form.body!.toString()).model).toBe('tgt');
      director.release(form.ticket, 'completed');
    }
    expect(await metrics.registry.getSingleMetricAsString('inference_objective_request_total')).toContain('model_name="m",target_model_name="tgt"');
    expect(await director.route(as('text/plain', '{"model": "m", '))).toMatchObject({ kind: 'reject', status: 400 });
    const upload = await director.route(as('multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nRIFF...\r\n--x--'));
    expect(upload.kind).toBe('route');
  });

  test('director.go HandleRequest: no candidate at all is ServiceUnavailable (503), a body-less request too (GIE pkg/lwepp/handlers/request.go @ 84436a96; v1.5.0 answered it Internal, 500)', async () => {
    ds = pool(0);
    const metrics = createEppMetrics();
    const scheduler = buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer'));
    const director = new RequestControl({ datastore: ds, scheduler, metrics: metrics.collectors });
    expect(await director.route(post(chat))).toMatchObject({ kind: 'reject', status: 503 });
    expect(await director.route(get)).toMatchObject({ kind: 'reject', status: 503 });
    const errors = await metrics.registry.getSingleMetricAsString('inference_objective_request_error_total');
    expect(errors).toContain('model_name="m",target_model_name="m",error_code="ServiceUnavailable"} 1');
    expect(errors).toContain('model_name="",target_model_name="",error_code="ServiceUnavailable"} 1');
    expect(errors).not.toContain('error_code="Internal"');
  });

  test('director.go prepareRequest: a picker returning several endpoints names them all, comma-separated, best first; only the first is in flight', async () => {
    ds = pool(3);
    const scheduler = buildScheduler(config(
      '- type: queue-scorer\n- type: max-score-picker\n  parameters:\n    maxNumOfEndpoints: 2',
      '  - pluginRef: queue-scorer\n  - pluginRef: max-score-picker',
    ));
    const director = new RequestControl({ datastore: ds, scheduler });
    const d = await director.route(post(chat));
    // Queues 0, 1, 2: the queue scorer ranks 10.0.0.1 then 10.0.0.2.
    expect(d).toMatchObject({ kind: 'route', endpoint: '10.0.0.1:8000,10.0.0.2:8000' });
    expect(ds.activeRequests('10.0.0.1:8000')).toBe(1);
    expect(ds.activeRequests('10.0.0.2:8000')).toBe(0);
    if (d.kind === 'route') director.release(d.ticket, 'completed');
  });

  test('candidates.go Locate: with --disable-endpoint-subset-filter the subset hint is ignored; without it an empty hint leaves no candidate (503)', async () => {
    ds = pool(2);
    const scheduler = buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer'));
    const empty: IncomingRequest = { ...post(chat), filterMetadata: { 'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': [] } } };
    expect(await new RequestControl({ datastore: ds, scheduler }).route(empty)).toMatchObject({ kind: 'reject', status: 503 });
    const ignoring = new RequestControl({ datastore: ds, scheduler, disableEndpointSubsetFilter: true });
    const d = await ignoring.route(empty);
    expect(d).toMatchObject({ kind: 'route', endpoint: '10.0.0.1:8000' });
    if (d.kind === 'route') ignoring.release(d.ticket, 'completed');
  });

  test('a request without a body is held to the subset hint too, 503 when none qualifies or no pod is ready (EPP protocol "Endpoint Subset" MUST; GIE pkg/lwepp/handlers/request.go @ 84436a96; v1.5.0 ignored the hint and answered 500)', async () => {
    ds = pool(2);
    const scheduler = buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer'));
    const director = new RequestControl({ datastore: ds, scheduler });
    const hinted = (subset: string[]): IncomingRequest => ({ ...get, filterMetadata: { 'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': subset } } });
    // The hinted pod is picked every time, though the other is as idle.
    for (let i = 0; i < 4; i++) {
      const d = await director.route(hinted(['10.0.0.2:8000']));
      expect(d).toMatchObject({ kind: 'route', endpoint: '10.0.0.2:8000' });
      if (d.kind === 'route') director.release(d.ticket, 'completed');
    }
    for (const subset of [[], ['10.9.9.9:8000']]) {
      expect(await director.route(hinted(subset))).toMatchObject({ kind: 'reject', status: 503 });
    }
    // Without a hint any pod of the pool.
    const free = await director.route(get);
    expect(free.kind === 'route' && ['10.0.0.1:8000', '10.0.0.2:8000'].includes(free.endpoint)).toBe(true);
    if (free.kind === 'route') director.release(free.ticket, 'completed');
    ds.stop();
    ds = pool(0);
    expect(await new RequestControl({ datastore: ds, scheduler }).route(get)).toMatchObject({ kind: 'reject', status: 503 });
  });

  test('request.go/director.go mutateModel: x-gateway-model-name-rewrite replaces the body\'s model and is the target_model_name', async () => {
    ds = pool(1);
    const metrics = createEppMetrics();
    const scheduler = buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer'));
    const director = new RequestControl({ datastore: ds, scheduler, metrics: metrics.collectors });
    const d = await director.route(post({ ...chat, model: 'food-review', temperature: 0 }, { 'x-gateway-model-name-rewrite': 'food-review-v2' }));
    expect(d.kind).toBe('route');
    if (d.kind !== 'route') return;
    expect(JSON.parse(d.body!.toString())).toEqual({ ...chat, model: 'food-review-v2', temperature: 0 });
    director.release(d.ticket, 'completed');
    const text = await metrics.registry.metrics();
    expect(text).toContain('inference_objective_request_total{model_name="food-review",target_model_name="food-review-v2",priority="0"} 1');
    expect(text).toContain('inference_objective_request_duration_seconds_count{model_name="food-review",target_model_name="food-review-v2"} 1');
    // Without the header the body is passed on as it came, byte for byte.
    const plain = await director.route(post(chat));
    expect(plain).toMatchObject({ kind: 'route' });
    expect(plain.kind === 'route' && plain.body).toBeFalsy();
  });

  test('metrics.go RecordSchedulerAttempt: pod_name is the endpoint\'s pod (metadata.PodName), not its rank name', async () => {
    ds = pool(0);
    ds.upsertEndpoint({ key: '10.0.0.9:8001', name: 'dp-rank-1', podName: 'dp', rank: 1, namespace: 'ns', address: '10.0.0.9', port: 8001, labels: {} });
    ds.setMetrics('10.0.0.9:8001', { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer')), metrics: metrics.collectors });
    const d = await director.route(post(chat));
    if (d.kind !== 'route') throw new Error('not routed');
    director.release(d.ticket, 'completed');
    const attempts = await metrics.registry.getSingleMetricAsString('inference_extension_scheduler_attempts_total');
    expect(attempts).toContain('inference_extension_scheduler_attempts_total{status="success",target_model_name="m",pod_name="dp",namespace="ns",port="8001"} 1');
  });

  test('director.go runPreRequestPlugins / runResponseHeaderPlugins: request hooks are timed by extension point; a plugin with both has both series', async () => {
    ds = pool(1);
    const metrics = createEppMetrics();
    const scheduler = buildScheduler(config('- type: latency-scorer', '  - pluginRef: latency-scorer'));
    const director = new RequestControl({ datastore: ds, scheduler, metrics: metrics.collectors });
    for (let i = 0; i < 2; i++) {
      const d = await director.route(post(chat));
      if (d.kind !== 'route') throw new Error('not routed');
      director.responseHeaders(d.ticket, new Map([[':status', '200'], ['content-type', 'application/json']]));
      director.release(d.ticket, 'completed');
    }
    const text = await metrics.registry.getSingleMetricAsString('inference_extension_plugin_duration_seconds');
    expect(text).toContain('inference_extension_plugin_duration_seconds_count{extension_point="PreRequest",plugin_type="latency-scorer",plugin_name="latency-scorer"} 2');
    expect(text).toContain('inference_extension_plugin_duration_seconds_count{extension_point="ResponseReceived",plugin_type="latency-scorer",plugin_name="latency-scorer"} 2');
    // llm-d-router v0.10.0 handlers/server.go times each parse as extension point RequestParsing.
    expect(text).toMatch(/inference_extension_plugin_duration_seconds_count\{extension_point="RequestParsing",plugin_type="openai-parser",plugin_name="[^"]+"\} 2/);
    const attempts = await metrics.registry.getSingleMetricAsString('inference_extension_scheduler_attempts_total');
    expect(attempts).toContain('inference_extension_scheduler_attempts_total{status="success",target_model_name="m",pod_name="p0",namespace="ns",port="8000"} 2');
  });

  test('metrics.go RecordRequestCounter: requests are counted with the priority of their InferenceObjective (0 without one)', async () => {
    ds = pool(2);
    const metrics = createEppMetrics();
    const scheduler = buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer'));
    const queue = new FlowControlQueue({ maxQueued: 4, maxWaitMs: 1000, maxDispatchPerCall: 1 });
    const director = new RequestControl({
      datastore: ds,
      scheduler,
      metrics: metrics.collectors,
      flowControl: { queue, objectives: new Map([['critical', 5]]) },
    });
    try {
      for (const headers of [{}, { 'x-gateway-inference-objective': 'critical' }] as Record<string, string>[]) {
        const d = await director.route(post(chat, headers));
        if (d.kind === 'route') director.release(d.ticket, 'completed');
      }
      const text = await metrics.registry.getSingleMetricAsString('inference_objective_request_total');
      expect(text).toContain('inference_objective_request_total{model_name="m",target_model_name="m",priority="0"} 1');
      expect(text).toContain('inference_objective_request_total{model_name="m",target_model_name="m",priority="5"} 1');
    } finally {
      director.close();
    }
  });
});

describe('request headers as GIE v1.5.0 reads them off a real ext_proc stream', () => {
  // GIE v1.5.0 pkg/epp/handlers/request.go HandleRequestHeaders sets `reqCtx.Request.Headers[header.Key]` (and
  // TargetModelName, ObjectiveKey, FairnessID) once per header entry, so of a header Envoy sends twice the last value
  // is the one read; llm-d-router v0.10.0 handlers/request.go fills its map the same way. Envoy hands ext_proc a
  // repeated custom header as separate entries.
  test('handlers/request.go HandleRequestHeaders: of a header sent twice the last value is read: the body is rewritten to the last x-gateway-model-name-rewrite, the priority is the last objective\'s', async () => {
    const ds = pool(1);
    const metrics = createEppMetrics();
    const director = new RequestControl({
      datastore: ds,
      scheduler: buildScheduler(config('- type: queue-scorer', '  - pluginRef: queue-scorer')),
      metrics: metrics.collectors,
      objectives: new Map([['low', 1], ['critical', 5]]),
    });
    const server = await startExtProcServer({ director, host: '127.0.0.1', port: 0, logger: collectingLogger() });
    const envoy = new FakeEnvoy(`127.0.0.1:${server.port}`);
    try {
      const entries: [string, string][] = [
        ...Object.entries(POST_HEADERS),
        ['x-gateway-model-name-rewrite', 'first-target'], ['x-gateway-model-name-rewrite', 'm-v2'],
        ['x-gateway-inference-objective', 'low'], ['x-gateway-inference-objective', 'critical'],
      ];
      const s = envoy.open();
      s.send({ request_headers: { headers: { headers: entries.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) }, end_of_stream: false }, ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
      s.send(requestBody(JSON.stringify({ model: 'm', prompt: 'hello' }), true));
      expect((await s.next()).response).toBe('request_headers');
      expect(JSON.parse(Buffer.concat((await readStreamedBody(s, 'request_body')).chunks).toString()).model).toBe('m-v2');
      s.cancel();
      const text = await metrics.registry.getSingleMetricAsString('inference_objective_request_total');
      expect(text).toContain('inference_objective_request_total{model_name="m",target_model_name="m-v2",priority="5"} 1');
    } finally {
      envoy.close();
      await server.stop();
      director.close();
      ds.stop();
    }
  });
});
