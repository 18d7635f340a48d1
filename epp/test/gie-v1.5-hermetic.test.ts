/**
 * GIE v1.5.0's hermetic EPP integration cases (kubernetes-sigs/gateway-api-inference-extension @ v1.5.0:
 * test/integration/epp/hermetic_test.go TestFullDuplexStreamed_KubeInferenceObjectiveRequest, with common_tests.go
 * commonTestCases), ported case by case and run against kvroute's whole EPP (`startEpp`) over a real gRPC ext_proc
 * stream: GIE's default-config.yaml, its base resources (an InferencePool, five InferenceObjectives, one
 * InferenceModelRewrite) in a fake API server, pods whose `/metrics` report GIE's queue, KV and LoRA state.
 *
 * Each test names the upstream case. Where kvroute answers differently on purpose the test pins kvroute's answer and
 * names the epp/README.md passage ("Differences from GIE v1.5.0 and llm-d v0.8.0" unless said otherwise):
 * - error bodies are OpenAI's error JSON, not `inference error: <Code> - <message>` ("Error bodies");
 * - `content-length` is set only when the body is rewritten ("No re-serialization");
 * - the request's own headers are not echoed back as mutations (GIE's generateHeaders echoes every non-system header:
 *   `hi`, `x-request-id`), nor the response's, and no `x-went-into-resp-headers` ("Response headers");
 * - a saturated pool queues in flow control by default; `--flow-control=false` is GIE's legacy admission ("Saturation");
 * - a JSON response body is echoed chunk by chunk, not held to its end ("Response headers");
 * - no pods: 503, not 500 ("Body-less requests"); a body without `model` is routed ("Bodies GIE refuses are routed").
 */
import { Harness, P, llmBody, normalise, reqHeaderOnly, reqLLM, reqRaw, reqResponseOnly, type Mode, type Norm, type PodState } from './gie-hermetic-harness';

jest.setTimeout(60_000);

/** kvroute's answer to a routed request: GIE's ExpectRouteTo without the echoed request headers. */
function routeTo(endpoint: string, body: string, contentLength: boolean): Norm[] {
  return [
    { requestHeaders: { clearRouteCache: true, set: { 'x-gateway-destination-endpoint': endpoint, ...(contentLength ? { 'content-length': String(Buffer.byteLength(body)) } : {}) }, remove: [],
      metadata: { 'envoy.lb': { 'x-gateway-destination-endpoint': endpoint } } } },
    { requestBody: { body, eos: true } },
  ];
}

/**
 * kvroute's immediate response: status, OpenAI error code, JSON content type; a 503 for want of endpoints also names
 * llm-d-router's drop reason, as its hermetic fixtures expect since 645ba71e (#2462, test/integration/epp/common_tests.go).
 */
function reject(norm: Norm[], status: number, code: string): void {
  expect(norm).toHaveLength(1);
  const first = norm[0] as Extract<Norm, { immediate: unknown }>;
  expect(first.immediate.status).toBe(status);
  expect(JSON.parse(first.immediate.body).error.code).toBe(code);
  const dropped = code === 'no_ready_endpoints' ? { 'x-llm-d-request-dropped-reason': 'rejected-no-endpoints' } : {};
  expect(first.immediate.headers).toEqual({ 'content-type': 'application/json', ...dropped });
}

/** A sample line with its labels sorted by name. */
function sortedLabels(line: string): string {
  const m = /^([^{]+)\{([^}]*)\} (.*)$/.exec(line);
  if (!m) return line;
  const labels = m[2]!.match(/[a-z_]+="[^"]*"/g) ?? [];
  return `${m[1]}{${labels.sort().join(',')}} ${m[3]}`;
}

const requestTotal = (model: string, target: string, priority: number) =>
  `inference_objective_request_total{model_name="${model}",target_model_name="${target}",priority="${priority}"} 1`;

const PASSTHROUGH_CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
  - type: queue-scorer
  - type: kv-cache-utilization-scorer
  - type: passthrough-parser
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: queue-scorer
      - pluginRef: kv-cache-utilization-scorer
parser:
  pluginRef: passthrough-parser
featureGates:
  - enableLegacyMetrics
`;

// hermetic_test.go runs every case in Standard, Standalone-NoCRD and Standalone-WithCRD. kvroute has no standalone
// mode with an endpoint selector (README "Not supported": `endpoint-selector` discovery); its static `--endpoints` mode
// stands in for Standalone-NoCRD (no objectives: priority 0, as GIE's prio()). Standalone-WithCRD is Standard here.
describe.each<[Mode, (p: number) => number]>([['standard', (p) => p], ['standalone-nocrd', () => 0]])('%s', (mode, prio) => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });
  const start = async (...args: Parameters<typeof Harness.start>) => (h = await Harness.start(args[0], { mode, ...args[1] }));
  const metricLines = async () => (await h!.metrics()).split('\n');

  test('common: "select lower queue and kv cache"', async () => {
    await start([P(0, 3, 0.2), P(1, 0, 0.1), P(2, 10, 0.2)]);
    const got = (await h!.streamed(reqLLM('test1', 'my-model', 'my-model-12345'), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(1), llmBody('test1', 'my-model-12345'), true));
    const m = await metricLines();
    expect(m).toContain(requestTotal('my-model', 'my-model-12345', prio(2)));
    // GIE's pool label is --pool-name in every mode; kvroute's static mode names its pool "static".
    expect(m).toContain(`inference_pool_ready_pods{name="${mode === 'standard' ? 'vllm-qwen3-32b-pool' : 'epp-standalone'}"} 3`);
  });

  test('common: "select active lora, low queue"', async () => {
    await start([P(0, 0, 0.2, 'foo', 'bar'), P(1, 0, 0.1, 'foo', 'sql-lora-1fdg2'), P(2, 10, 0.2, 'foo', 'bar')]);
    const got = (await h!.streamed(reqLLM('test2', 'sql-lora', 'sql-lora-1fdg2'), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(1), llmBody('test2', 'sql-lora-1fdg2'), true));
    expect(await metricLines()).toContain(requestTotal('sql-lora', 'sql-lora-1fdg2', prio(2)));
  });

  // Both modes, as upstream runs them: standalone finds no pod for its selector.

  test('common+hermetic: "no backend pods available" (known: 503 no_ready_endpoints, GIE 500 Internal)', async () => {
    await start([]);
    reject((await h!.streamed(reqHeaderOnly({ 'content-type': 'application/json' }), 1)).map(normalise), 503, 'no_ready_endpoints');
  });

  test('common+hermetic: "request missing model field": 400 BadRequest, "model not found in request body", before any pod is looked up (director.go mutateModel)', async () => {
    await start([]);
    const none = (await h!.streamed(reqRaw({ 'content-type': 'application/json' }, '{"prompt":"hello world"}'), 1)).map(normalise);
    reject(none, 400, 'model_not_found');
    expect(JSON.parse((none[0] as Extract<Norm, { immediate: unknown }>).immediate.body).error.message).toBe('model not found in request body');
  });

  test('common+hermetic: "request missing model field", with a pod: 400 BadRequest as well', async () => {
    await start([P(0, 0, 0.1)]);
    reject((await h!.streamed(reqRaw({ 'content-type': 'application/json' }, '{"prompt":"hello world"}'), 1)).map(normalise), 400, 'model_not_found');
  });

  /**
   * A `sql-lora` request to a pool whose every pod is saturated: it waits in flow control (no answer within 1 s); with
   * `--flow-control=false` it is routed to pod `expected` as GIE routes it, and counted at sql-lora's priority.
   */
  const waitsElseRoutesAsGie = async (pods: PodState[], prompt: string, expected: number) => {
    await start(pods);
    expect(await h!.streamed(reqLLM(prompt, 'sql-lora', 'sql-lora-1fdg2'), 1, 1000)).toEqual([]);
    await h!.stop();
    await start(pods, { extraArgs: ['--flow-control=false'] });
    const got = (await h!.streamed(reqLLM(prompt, 'sql-lora', 'sql-lora-1fdg2'), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(expected), llmBody(prompt, 'sql-lora-1fdg2'), true));
    expect(await metricLines()).toContain(requestTotal('sql-lora', 'sql-lora-1fdg2', prio(2)));
  };

  test('hermetic: "select lora despite higher kv cache (affinity)" (known: every pod saturated, so it waits in flow control; --flow-control=false routes as GIE)', async () => {
    await waitsElseRoutesAsGie([P(0, 10, 0.2, 'foo', 'bar'), P(1, 10, 0.4, 'foo', 'sql-lora-1fdg2'), P(2, 10, 0.3, 'foo')], 'test3', 1);
  });

  test('hermetic: "passthrough parser success" (known: no content-length for an untouched body)', async () => {
    await start([P(0, 3, 0.2), P(1, 0, 0.1), P(2, 10, 0.2)], { configText: PASSTHROUGH_CONFIG });
    const got = (await h!.streamed(reqRaw({ hi: 'mom', 'x-request-id': 'test-request-id', 'x-gateway-inference-objective': 'my-model' }, 'passthrough-parser'), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(1), 'passthrough-parser', false));
    const m = await metricLines();
    expect(m).toContain(requestTotal('', '', prio(2)));
    expect(m).toContain(`inference_pool_ready_pods{name="${mode === 'standard' ? 'vllm-qwen3-32b-pool' : 'epp-standalone'}"} 3`);
  });

  test('hermetic: "do not shed requests by default" (known: waits in flow control by default; --flow-control=false routes as GIE)', async () => {
    await waitsElseRoutesAsGie([P(0, 6, 0.2, 'foo', 'bar', 'sql-lora-1fdg2'), P(1, 0, 0.85, 'foo'), P(2, 10, 0.9, 'foo')], 'test4', 0);
  });

  test('hermetic: "invalid json body" (known: 400 invalid_json as OpenAI error JSON)', async () => {
    await start([P(0, 0, 0.2, 'foo', 'bar')]);
    reject((await h!.streamed(reqRaw({ hi: 'mom' }, 'no healthy upstream'), 1)).map(normalise), 400, 'invalid_json');
  });

  test('hermetic: "split body across chunks"', async () => {
    await start([P(0, 4, 0.2, 'foo', 'bar', 'sql-lora-1fdg3'), P(1, 4, 0.85, 'foo', 'sql-lora-1fdg3')]);
    const got = (await h!.streamed(reqRaw({ hi: 'mom', 'x-gateway-inference-objective': 'sql-lora-sheddable', 'x-gateway-model-name-rewrite': 'sql-lora-1fdg3', 'x-request-id': 'test-request-id' },
      '{"max_tokens":100,"model":"sql-lo', 'ra-sheddable","prompt":"test6","temperature":0}'), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(0), llmBody('test6', 'sql-lora-1fdg3'), true));
    expect(await metricLines()).toContain(requestTotal('sql-lora-sheddable', 'sql-lora-1fdg3', prio(0)));
  });

  test('hermetic: "subsetting: select best from subset"', async () => {
    await start([P(0, 0, 0.2, 'foo'), P(1, 0, 0.1, 'foo', 'sql-lora-1fdg2'), P(2, 10, 0.2, 'foo')]);
    const got = (await h!.streamed(reqLLM('test2', 'sql-lora', 'sql-lora-1fdg2', [h!.endpoint(0), h!.endpoint(1), h!.endpoint(2)]), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(1), llmBody('test2', 'sql-lora-1fdg2'), true));
  });

  test('hermetic: "subsetting: partial match" (known: the subset\'s one pod is saturated, so it waits; --flow-control=false routes as GIE)', async () => {
    const pods = [P(0, 0, 0.2, 'foo'), P(1, 0, 0.1, 'foo', 'sql-lora-1fdg2'), P(2, 10, 0.2, 'foo')];
    await start(pods);
    expect(await h!.streamed(reqLLM('test2', 'sql-lora', 'sql-lora-1fdg2', [h!.endpoint(2)]), 1, 1000)).toEqual([]);
    await h!.stop();
    await start(pods, { extraArgs: ['--flow-control=false'] });
    const got = (await h!.streamed(reqLLM('test2', 'sql-lora', 'sql-lora-1fdg2', [h!.endpoint(2)]), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(2), llmBody('test2', 'sql-lora-1fdg2'), true));
  });

  test('hermetic: "subsetting: no pods match" (503 as GIE; OpenAI error JSON)', async () => {
    await start([P(0, 0, 0.2, 'foo'), P(1, 0, 0.1, 'foo', 'sql-lora-1fdg2')]);
    reject((await h!.streamed(reqLLM('test2', 'sql-lora', 'sql-lora-1fdg2', [`192.168.1.99:${h!.port}`]), 1)).map(normalise), 503, 'no_ready_endpoints');
  });

  test('hermetic: "passthrough: model not in objectives" (known: no content-length, the body is not rewritten)', async () => {
    await start([P(0, 4, 0.2, 'foo', 'bar', 'sql-lora-1fdg3')]);
    const got = (await h!.streamed(reqRaw({ hi: 'mom', 'x-gateway-inference-objective': 'direct-model', 'x-gateway-model-name-rewrite': 'direct-model', 'x-request-id': 'test-request-id' },
      '{"max_tokens":100,"model":"direct-', 'model","prompt":"test6","temperature":0}'), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(0), llmBody('test6', 'direct-model'), false));
    expect(await metricLines()).toContain(requestTotal('direct-model', 'direct-model', prio(2)));
  });

  if (mode === 'standard') test('hermetic: "rewrite request model" (requiresCRDs)', async () => {
    await start([P(0, 0, 0.1, 'foo', 'rewritten-model')]);
    const got = (await h!.streamed(reqLLM('test-rewrite', 'model-to-be-rewritten', 'model-to-be-rewritten'), 2)).map(normalise);
    expect(got).toEqual(routeTo(h!.endpoint(0), llmBody('test-rewrite', 'rewritten-model'), true));
    expect(await metricLines()).toContain(requestTotal('model-to-be-rewritten', 'rewritten-model', 0));
  });

  test('hermetic: "protocol: simple GET (header only)" (upstream expects no response at all, reading none; kvroute routes it, as GIE does)', async () => {
    await start([P(0, 0, 0, 'foo')]);
    const [got] = (await h!.streamed(reqHeaderOnly({ 'content-type': 'text/event-stream', status: '200' }), 1)).map(normalise);
    const rh = (got as Extract<Norm, { requestHeaders: unknown }>).requestHeaders;
    expect(rh.set['x-gateway-destination-endpoint']).toBe(h!.endpoint(0));
    expect(rh.set['x-request-id']).toMatch(/^[0-9a-f-]{36}$/); // none came: a generated one (GIE server.go does too)
  });

  const RESPONSE_JSON = '{"max_tokens":100,"model":"sql-lora-sheddable","prompt":"test6","temperature":0}';

  test('hermetic: "response buffering: multi-chunk JSON" (known: echoed chunk by chunk; no x-went-into-resp-headers nor echoed headers)', async () => {
    await start([P(0, 4, 0.2, 'sql-lora-1fdg3')]);
    const got = (await h!.streamed(reqResponseOnly({ 'content-type': 'application/json' }, '{"max_tokens":100,"model":"sql-lo', 'ra-sheddable","prompt":"test6","temperature":0}'), 3)).map(normalise);
    expect(got).toEqual([
      { responseHeaders: { set: {}, remove: [] } },
      { responseBody: { body: '{"max_tokens":100,"model":"sql-lo', eos: false } },
      { responseBody: { body: 'ra-sheddable","prompt":"test6","temperature":0}', eos: true } },
    ]);
  });

  test('hermetic: "response buffering: invalid JSON"', async () => {
    await start([P(0, 4, 0.2, 'sql-lora-1fdg3')]);
    const got = (await h!.streamed(reqResponseOnly({ 'content-type': 'application/json' }, 'no healthy upstream'), 2)).map(normalise);
    expect(got).toEqual([{ responseHeaders: { set: {}, remove: [] } }, { responseBody: { body: 'no healthy upstream', eos: true } }]);
  });

  test('hermetic: "response buffering: empty EOS chunk (JSON)" (known: two chunks echoed, the empty one ends the stream)', async () => {
    await start([P(0, 4, 0.2, 'sql-lora-1fdg3')]);
    const got = (await h!.streamed(reqResponseOnly({ 'content-type': 'application/json' }, RESPONSE_JSON, ''), 3)).map(normalise);
    expect(got).toEqual([{ responseHeaders: { set: {}, remove: [] } }, { responseBody: { body: RESPONSE_JSON, eos: false } }, { responseBody: { body: '', eos: true } }]);
  });

  test('hermetic: "response streaming: SSE token counting" (chunks echoed as GIE; input tokens counted with empty model labels)', async () => {
    await start([P(0, 4, 0.2, 'sql-lora-1fdg3')]);
    const usage = 'data: {"usage":{"prompt_tokens":7,"total_tokens":17,"completion_tokens":10}}\ndata: [DONE]';
    const got = (await h!.streamed(reqResponseOnly({ 'content-type': 'text/event-stream', status: '200' }, 'data: {}', usage, ''), 4)).map(normalise);
    expect(got).toEqual([
      { responseHeaders: { set: {}, remove: [] } },
      { responseBody: { body: 'data: {}', eos: false } },
      { responseBody: { body: usage, eos: false } },
      { responseBody: { body: '', eos: true } },
    ]);
    let m: string[] = [];
    for (let i = 0; i < 40 && !m.includes('inference_objective_input_tokens_count{model_name="",target_model_name=""} 1'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      m = await metricLines();
    }
    // GIE's wantMetrics, every sample (labels compared as sets: the text format does not order them).
    const les = ['1', '8', '16', '32', '64', '128', '256', '512', '1024', '2048', '4096', '8192', '16384', '32778', '65536', '131072', '262144', '524288', '1.048576e+06', '+Inf'];
    const want = [
      ...les.map((le) => `inference_objective_input_tokens_bucket{le="${le === '1.048576e+06' ? '1048576' : le}",model_name="",target_model_name=""} ${le === '1' ? 0 : 1}`),
      'inference_objective_input_tokens_sum{model_name="",target_model_name=""} 7',
      'inference_objective_input_tokens_count{model_name="",target_model_name=""} 1',
    ].map(sortedLabels);
    expect(m.filter((l) => l.startsWith('inference_objective_input_tokens_')).map(sortedLabels)).toEqual(want);
  });
});
