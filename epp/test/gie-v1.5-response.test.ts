/**
 * The response side as GIE v1.5.0 reads it (kubernetes-sigs/gateway-api-inference-extension @ df9f890:
 * pkg/epp/handlers/server.go and response.go, pkg/epp/framework/plugins/requesthandling/parsers/openai/openai.go):
 * usage from a JSON body or from the event carrying it in a text/event-stream, and the response metrics recorded at the
 * response's end. Through a real gRPC ext_proc stream, with Envoy's full-duplex response body mode.
 */
import { defaultEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { startExtProcServer, type ExtProcServer } from '../src/extproc/server';
import { ExtProcStream } from '../src/extproc/stream';
import { createEppMetrics } from '../src/metrics';
import { RequestControl } from '../src/requestcontrol/request-control';
import { MAX_JSON_BODY_BYTES, ResponseObserver } from '../src/requestcontrol/response-usage';
import { buildScheduler } from '../src/scheduling/scheduler';
import { collectingLogger, FakeEnvoy, CHAT_POST_HEADERS, POST_HEADERS, protocolConfig, readStreamedBody, requestBody, requestHeaders, responseBody, responseHeaders, responseTrailers, waitFor } from './extproc-harness';

describe('ResponseObserver (openai.go ParseResponse)', () => {
  test('a JSON body: usage with the cached prompt tokens vLLM reports', () => {
    const o = new ResponseObserver(false);
    const body = Buffer.from(JSON.stringify({ object: 'chat.completion', usage: { prompt_tokens: 31, completion_tokens: 7, total_tokens: 38, prompt_tokens_details: { cached_tokens: 16 } } }));
    o.push(body.subarray(0, 20), false);
    o.push(body.subarray(20), true);
    expect(o.usage).toEqual({ promptTokens: 31, completionTokens: 7, cachedPromptTokens: 16 });
    expect(o.bytes).toBe(body.length);
  });

  test('an event stream: the usage event, split anywhere across chunks; [DONE] and events without usage are skipped', () => {
    const text = 'data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
      + 'data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n\n'
      + 'data: [DONE]\n\n';
    for (let cut = 1; cut < text.length; cut += 7) {
      const o = new ResponseObserver(true);
      o.push(Buffer.from(text.slice(0, cut)), false);
      o.push(Buffer.from(text.slice(cut)), false);
      o.push(Buffer.alloc(0), true);
      expect(o.usage).toEqual({ promptTokens: 12, completionTokens: 3 });
    }
  });

  // GIE v1.5.0 openai.go extractUsageStreaming reads each chunk on its own, line by line, so a chunk's end ends its
  // last line; its hermetic test "response streaming: SSE token counting" (test/integration/epp/hermetic_test.go) sends
  // `data: {}` and then `data: {"usage":…}\ndata: [DONE]` with no newline between them and counts 7 input tokens.
  test('a chunk ending without a newline: a line joined across the chunks that is not JSON is read as two lines, as GIE reads each chunk (hermetic_test.go "response streaming: SSE token counting")', () => {
    const o = new ResponseObserver(true);
    o.push(Buffer.from('data: {}'), false);
    o.push(Buffer.from('data: {"usage":{"prompt_tokens":7,"total_tokens":17,"completion_tokens":10}}\ndata: [DONE]'), false);
    o.push(Buffer.alloc(0), true);
    expect(o.usage).toEqual({ promptTokens: 7, completionTokens: 10 });
    // Over three chunks, the usage line cut by none of them.
    const three = new ResponseObserver(true);
    for (const c of ['data: {}', 'data: {"x":1}', 'data: {"usage":{"prompt_tokens":3,"completion_tokens":1}}']) three.push(Buffer.from(c), false);
    three.push(Buffer.alloc(0), true);
    expect(three.usage).toEqual({ promptTokens: 3, completionTokens: 1 });
    // A usage line really split by the chunks is still joined first.
    const split = new ResponseObserver(true);
    split.push(Buffer.from('data: {"usage":{"prompt_t'), false);
    split.push(Buffer.from('okens":5,"completion_tokens":2}}\n\n'), true);
    expect(split.usage).toEqual({ promptTokens: 5, completionTokens: 2 });
  });

  test('a long event cut into many chunks is searched once, not at every chunk: a line of k chunks costs O(its length), not O(length × k)', () => {
    // vLLM streams a completion's `echo`ed prompt in its first event (serving_completion.py completion_stream_generator,
    // `delta_text = prompt_text + output.text`), with the usage when `continuous_usage_stats` is on: one line as long
    // as the prompt, which Envoy forwards in pieces. Joining and searching all of it at each piece took 5 ms of the
    // EPP's thread for 200 KB in 16 KiB chunks, 70 ms in 1 KiB ones, 590 ms in 100-byte ones.
    const echoed = 'data: ' + JSON.stringify({ choices: [{ index: 0, text: 'x'.repeat(200_000) }], usage: { prompt_tokens: 50_000, completion_tokens: 1 } }) + '\n\n';
    const last = 'data: {"choices":[],"usage":{"prompt_tokens":50000,"completion_tokens":9}}\n\ndata: [DONE]\n\n';
    const chunks: Buffer[] = [];
    for (let i = 0; i < echoed.length; i += 100) chunks.push(Buffer.from(echoed.slice(i, i + 100)));
    // Characters the observer searched (String indexOf / includes receivers) while the long line came in.
    let searched = 0;
    const methods = ['indexOf', 'includes'] as const;
    const originals = methods.map((m) => String.prototype[m]);
    methods.forEach((m, i) => {
      const original = originals[i] as (this: string, ...args: unknown[]) => unknown;
      (String.prototype as unknown as Record<string, unknown>)[m] = function (this: string, ...args: unknown[]) {
        searched += this.length;
        return original.apply(this, args);
      };
    });
    const o = new ResponseObserver(true);
    try {
      for (const c of chunks) o.push(c, false);
    } finally {
      methods.forEach((m, i) => { (String.prototype as unknown as Record<string, unknown>)[m] = originals[i]; });
    }
    // Each piece once, then the joined line for its end and its usage (before: the whole line so far at each of its
    // 2,000 pieces, ~2 × 10^8 characters).
    expect(searched).toBeLessThanOrEqual(4 * echoed.length);
    expect(o.usage).toEqual({ promptTokens: 50_000, completionTokens: 1 });
    o.push(Buffer.from(last), true);
    expect(o.usage).toEqual({ promptTokens: 50_000, completionTokens: 9 });
    // The same line ending in the stream's last chunk, and one past the longest line read (skipped, the next one read).
    const atEnd = new ResponseObserver(true);
    for (const c of chunks) atEnd.push(c.subarray(0, c.length - (c === chunks[chunks.length - 1] ? 2 : 0)), false);
    atEnd.push(Buffer.alloc(0), true);
    expect(atEnd.usage).toEqual({ promptTokens: 50_000, completionTokens: 1 });
    const over = new ResponseObserver(true);
    const long = 'data: {"usage":{"prompt_tokens":1,"completion_tokens":1},"pad":"' + 'y'.repeat(300_000) + '"}\n';
    for (let i = 0; i < long.length; i += 1000) over.push(Buffer.from(long.slice(i, i + 1000)), false);
    over.push(Buffer.from(last), true);
    expect(over.usage).toEqual({ promptTokens: 50_000, completionTokens: 9 });
  });

  test('a line past the longest read, cut into chunks without a newline, is skipped, not buffered and read', () => {
    // The usage it carries must not be read (nor the line held whole): the usage before it stays, and the line after it
    // is read. Chunks of 1,000 characters: none holds a newline until the line's end.
    const before = 'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\n';
    const long = 'data: {"usage":{"prompt_tokens":1,"completion_tokens":1},"pad":"' + 'y'.repeat(300_000) + '"}\n';
    for (const after of ['', 'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n']) {
      const o = new ResponseObserver(true);
      o.push(Buffer.from(before), false);
      for (let i = 0; i < long.length; i += 1000) o.push(Buffer.from(long.slice(i, i + 1000)), false);
      o.push(Buffer.from(after + 'data: [DONE]\n\n'), true);
      expect(o.usage).toEqual(after === '' ? { promptTokens: 4, completionTokens: 2 } : { promptTokens: 7, completionTokens: 3 });
    }
  });

  test('the Responses API: input/output tokens, in the JSON body and in the response.completed event', () => {
    const json = new ResponseObserver(false);
    json.push(Buffer.from('{"object":"response","usage":{"input_tokens":9,"output_tokens":4,"total_tokens":13}}'), true);
    expect(json.usage).toEqual({ promptTokens: 9, completionTokens: 4 });
    const sse = new ResponseObserver(true);
    sse.push(Buffer.from('event: response.completed\ndata: {"type":"response.completed","response":{"object":"response","usage":{"input_tokens":5,"output_tokens":2}}}\n\n'), true);
    expect(sse.usage).toEqual({ promptTokens: 5, completionTokens: 2 });
  });

  test('a JSON body over the cap is counted, not parsed; a body without usage has none', () => {
    const big = new ResponseObserver(false);
    big.push(Buffer.alloc(MAX_JSON_BODY_BYTES + 1, 0x20), true);
    expect(big.usage).toBeUndefined();
    expect(big.bytes).toBe(MAX_JSON_BODY_BYTES + 1);
    const none = new ResponseObserver(false);
    none.push(Buffer.from('{"data":[]}'), true);
    expect(none.usage).toBeUndefined();
  });
});

describe('response metrics over a real ext_proc stream (response body FULL_DUPLEX_STREAMED)', () => {
  let server: ExtProcServer;
  let envoy: FakeEnvoy;
  let ds: Datastore;
  let metrics: ReturnType<typeof createEppMetrics>;

  beforeEach(async () => {
    ds = new Datastore({ scrape: false });
    ds.upsertEndpoint({ key: '10.0.0.1:8000', name: 'p0', namespace: 'ns', address: '10.0.0.1', port: 8000, labels: {} });
    const scraped = Date.now();
    ds.setMetrics('10.0.0.1:8000', { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: scraped, consecutiveFailures: 0 });
    metrics = createEppMetrics();
    // The plugins' clock stays at the scrape: a slow machine must not age the metrics past the saturation filter's 1 s.
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => scraped }), metrics: metrics.collectors });
    server = await startExtProcServer({ director, host: '127.0.0.1', port: 0, logger: collectingLogger() });
    envoy = new FakeEnvoy(`127.0.0.1:${server.port}`);
  });

  afterEach(async () => {
    envoy.close();
    await server.stop();
    ds.stop();
  });

  test('a streamed chat completion: response size, input, output and cached tokens and NTPOT are recorded at its end', async () => {
    const s = envoy.open();
    s.send({ ...requestHeaders(CHAT_POST_HEADERS, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
    s.send(requestBody(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }], stream: true }), true));
    expect((await s.next()).response).toBe('request_headers');
    await readStreamedBody(s, 'request_body');
    s.send(responseHeaders({ ':status': '200', 'content-type': 'text/event-stream' }, false));
    expect((await s.next()).response).toBe('response_headers');
    const events = [
      'data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"hi"}}]}\n\n',
      'data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":32}}}\n\ndata: [DONE]\n\n',
    ];
    s.send(responseBody(events[0], false));
    await readStreamedBody(s, 'response_body', 1);
    s.send(responseBody(events[1], true));
    await readStreamedBody(s, 'response_body');
    s.end();
    await s.status;
    const text = await metrics.registry.metrics();
    const bytes = Buffer.byteLength(events.join(''));
    expect(text).toMatch(new RegExp(`^inference_objective_response_sizes_sum\\{model_name="m",target_model_name="m"\\} ${bytes}$`, 'm'));
    expect(text).toMatch(/^inference_objective_input_tokens_sum\{model_name="m",target_model_name="m"\} 40$/m);
    expect(text).toMatch(/^inference_objective_output_tokens_sum\{model_name="m",target_model_name="m"\} 2$/m);
    expect(text).toMatch(/^inference_objective_prompt_cached_tokens_sum\{model_name="m",target_model_name="m"\} 32$/m);
    expect(text).toMatch(/^inference_objective_normalized_time_per_output_token_seconds_count\{model_name="m",target_model_name="m"\} 1$/m);
    expect(text).toMatch(/^inference_objective_request_duration_seconds_count\{model_name="m",target_model_name="m"\} 1$/m);
  });

  // GIE v1.5.0 handlers/server.go Process: `header.Key == "status" && value != "200"` sets ModelServerError, which the
  // stream's deferred RecordRequestErrCounter counts once. The literal key: Envoy's `:status` is not read.
  test('a response header status other than 200 counts the request as a ModelServerError once at its end; Envoy\'s :status alone does not', async () => {
    for (const [headers, expected] of [[{ ':status': '500', status: '500' }, 1], [{ ':status': '503' }, 1], [{ status: '200' }, 1]] as const) {
      const s = envoy.open();
      s.send({ ...requestHeaders(POST_HEADERS, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'NONE') });
      s.send(requestBody(JSON.stringify({ model: 'm', prompt: 'hello' }), true));
      expect((await s.next()).response).toBe('request_headers');
      await readStreamedBody(s, 'request_body');
      s.send(responseHeaders({ ...headers, 'content-type': 'application/json' }, true));
      expect((await s.next()).response).toBe('response_headers');
      s.end();
      await s.status;
      const text = await metrics.registry.metrics();
      expect(text).toMatch(new RegExp(`^inference_objective_request_error_total\\{model_name="m",target_model_name="m",error_code="ModelServerError"\\} ${expected}$`, 'm'));
    }
  });

  test('request duration and NTPOT count from the request headers, as GIE v1.5.0 (handlers/request.go sets RequestReceivedTimestamp in HandleRequestHeaders): a body that comes 400 ms later counts', async () => {
    const s = envoy.open();
    // The 400 ms start once the EPP has read the headers (the stream's beginRequest stamps them), not when this test
    // sent them: a process not scheduled between the two (a loaded CI machine) shortened the interval the EPP saw.
    const begun = jest.spyOn(ExtProcStream.prototype as unknown as { beginRequest: (...args: unknown[]) => void }, 'beginRequest');
    s.send({ ...requestHeaders(CHAT_POST_HEADERS, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
    try {
      await waitFor(() => begun.mock.calls.length === 1, 'the EPP to read the request headers');
    } finally {
      begun.mockRestore();
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
    s.send(requestBody(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] }), true));
    expect((await s.next()).response).toBe('request_headers');
    await readStreamedBody(s, 'request_body');
    s.send(responseHeaders({ ':status': '200', 'content-type': 'application/json' }, false));
    expect((await s.next()).response).toBe('response_headers');
    s.send(responseBody(JSON.stringify({ object: 'chat.completion', usage: { prompt_tokens: 5, completion_tokens: 2 } }), true));
    await readStreamedBody(s, 'response_body');
    s.end();
    await s.status;
    const text = await metrics.registry.metrics();
    const sum = (name: string) => Number(new RegExp(`^inference_objective_${name}_sum\\{model_name="m",target_model_name="m"\\} (\\S+)$`, 'm').exec(text)![1]);
    // A lower bound only, under the 400 ms the EPP waited between the headers and the body (Node's timers may fire a
    // millisecond early); counting from the body, as before, reads a few milliseconds.
    expect(sum('request_duration_seconds')).toBeGreaterThanOrEqual(0.39);
    expect(sum('normalized_time_per_output_token_seconds')).toBeGreaterThanOrEqual(0.19); // over 2 completion tokens
  });

  test('with response headers skipped (response_header_mode SKIP) the body says which reader: an event stream and a JSON body both record their usage, and their whole size, a leading whitespace-only chunk included', async () => {
    const bodies = [
      ['data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4}}\n\n', 'data: [DONE]\n\n'],
      ['{"object":"chat.completion",', '"usage":{"prompt_tokens":20,"completion_tokens":6}}'],
      [' \r\n\n', '{"object":"chat.completion","usage":{"prompt_tokens":9,"completion_tokens":5}}'],
    ];
    for (const [first, last] of bodies) {
      const s = envoy.open();
      s.send({ ...requestHeaders(CHAT_POST_HEADERS, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
      s.send(requestBody(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] }), true));
      expect((await s.next()).response).toBe('request_headers');
      await readStreamedBody(s, 'request_body');
      s.send(responseBody(first!, false));
      s.send(responseBody(last!, true));
      await readStreamedBody(s, 'response_body');
      s.end();
      await s.status;
    }
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^inference_objective_input_tokens_sum\{model_name="m",target_model_name="m"\} 40$/m);
    expect(text).toMatch(/^inference_objective_output_tokens_sum\{model_name="m",target_model_name="m"\} 15$/m);
    expect(text).toMatch(/^inference_objective_normalized_time_per_output_token_seconds_count\{model_name="m",target_model_name="m"\} 3$/m);
    const bytes = Buffer.byteLength(bodies.flat().join(''));
    expect(text).toMatch(new RegExp(`^inference_objective_response_sizes_sum\\{model_name="m",target_model_name="m"\\} ${bytes}$`, 'm'));
  });

  test('a stream that begins at the response headers (the request skipped) is answered, and its usage recorded with no model names (handlers/server.go handles response messages in any state; hermetic "SSE token counting")', async () => {
    const s = envoy.open();
    s.send(responseHeaders({ ':status': '200', 'content-type': 'text/event-stream' }, false));
    expect((await s.next()).response).toBe('response_headers');
    const chunk = 'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\ndata: [DONE]\n\n';
    s.send(responseBody(chunk, true));
    expect(Buffer.concat((await readStreamedBody(s, 'response_body')).chunks).toString()).toBe(chunk);
    s.end();
    await s.status;
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^inference_objective_input_tokens_sum\{model_name="",target_model_name=""\} 7$/m);
    expect(text).toMatch(/^inference_objective_output_tokens_sum\{model_name="",target_model_name=""\} 3$/m);
    // Nothing was counted in flight for it.
    expect(ds.snapshot()[0]!.activeRequests).toBe(0);
  });

  test('metrics.go RecordInputTokens / RecordOutputTokens observe counts above 0 only: an embeddings response adds no output_tokens observation; IncRunningRequests skips an empty model name', async () => {
    const s = envoy.open();
    s.send({ ...requestHeaders({ ...POST_HEADERS, ':path': '/v1/embeddings' }, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
    s.send(requestBody(JSON.stringify({ model: 'emb', input: 'hello' }), true));
    expect((await s.next()).response).toBe('request_headers');
    await readStreamedBody(s, 'request_body');
    s.send(responseHeaders({ ':status': '200', 'content-type': 'application/json' }, false));
    expect((await s.next()).response).toBe('response_headers');
    s.send(responseBody('{"object":"list","data":[],"usage":{"prompt_tokens":5,"total_tokens":5}}', true));
    await readStreamedBody(s, 'response_body');
    s.end();
    await s.status;
    const unnamed = envoy.open();
    unnamed.send({ ...requestHeaders(POST_HEADERS, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'NONE') });
    unnamed.send(requestBody(JSON.stringify({ model: '', prompt: 'hi' }), true));
    expect((await unnamed.next()).response).toBe('request_headers');
    await readStreamedBody(unnamed, 'request_body');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^inference_objective_input_tokens_count\{model_name="emb",target_model_name="emb"\} 1$/m);
    expect(text).not.toMatch(/^inference_objective_output_tokens_count\{model_name="emb"/m);
    expect(text).not.toMatch(/^inference_objective_running_requests\{model_name=""\}/m);
    unnamed.end();
    await unnamed.status;
  });

  test('after x-gateway-model-name-rewrite the server gets the target model and the client sees its own name back (handlers/server.go rewriteModelName)', async () => {
    const s = envoy.open();
    s.send({ ...requestHeaders({ ...POST_HEADERS, 'x-gateway-model-name-rewrite': 'm-v2' }, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
    s.send(requestBody(JSON.stringify({ model: 'm', prompt: 'héllo' }), true));
    const headers = await s.next();
    const set = Object.fromEntries((headers.request_headers.response.header_mutation.set_headers as { header: { key: string; raw_value: Buffer } }[])
      .map((h) => [h.header.key, h.header.raw_value.toString()]));
    const forwarded = Buffer.concat((await readStreamedBody(s, 'request_body')).chunks);
    expect(JSON.parse(forwarded.toString())).toEqual({ model: 'm-v2', prompt: 'héllo' });
    expect(set['content-length']).toBe(String(forwarded.length));
    s.send(responseHeaders({ ':status': '200', 'content-type': 'application/json' }, false));
    await s.next();
    // The second occurrence uses the spacing Python's json.dumps writes, left as it is (rewriteModelName restores it only
    // in a body with no compact one); the chunk ends inside "é" (2 bytes).
    const answer = Buffer.from('{"model":"m-v2","choices":[{"text":"é"}],"again":{"model": "m-v2"}}');
    const cut = answer.indexOf(Buffer.from('é')) + 1;
    s.send(responseBody(answer.subarray(0, cut), false));
    const first = await readStreamedBody(s, 'response_body', 1);
    s.send(responseBody(answer.subarray(cut), true));
    const rest = await readStreamedBody(s, 'response_body');
    expect(Buffer.concat([...first.chunks, ...rest.chunks]).toString()).toBe('{"model":"m","choices":[{"text":"é"}],"again":{"model": "m-v2"}}');
    s.end();
    await s.status;
  });

  // GIE v1.5.0 pkg/epp/requestcontrol/director.go HandleRequest -> repackage re-marshals the mutated body and sets
  // `reqCtx.RequestSize = len(requestBodyBytes)`; handlers/server.go records RecordRequestSizes(..., RequestSize) after
  // HandleRequest (director_test.go asserts len(RawBody) == RequestSize); llm-d-router v0.10.0 director.go repackage the
  // same. So request_sizes observes the body forwarded to the pod, whose length the EPP sets as content-length.
  // kvroute's own edits (here the response id a stored /v1/responses answer is named by) count too: they are in it.
  test.each<[string, Record<string, string>, Record<string, unknown>, string]>([
    ['a model rewrite (director.go repackage)', { ...POST_HEADERS, 'x-gateway-model-name-rewrite': 'a-much-longer-target-model' }, { model: 'm', prompt: 'hello' }, 'target_model_name="a-much-longer-target-model"'],
    ['kvroute\'s response id on a stored /v1/responses answer', { ...POST_HEADERS, ':path': '/v1/responses' }, { model: 'm', input: 'hello' }, 'target_model_name="m"'],
  ])('director.go repackage: request_sizes observes the forwarded body, the content-length the EPP sets, after %s', async (_, headers, body, target) => {
    const s = envoy.open();
    s.send({ ...requestHeaders(headers, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
    const received = JSON.stringify(body);
    s.send(requestBody(received, true));
    const answer = await s.next();
    const set = Object.fromEntries((answer.request_headers.response.header_mutation.set_headers as { header: { key: string; raw_value: Buffer } }[])
      .map((h) => [h.header.key, h.header.raw_value.toString()]));
    const forwarded = Buffer.concat((await readStreamedBody(s, 'request_body')).chunks);
    expect(forwarded.length).not.toBe(Buffer.byteLength(received));
    expect(set['content-length']).toBe(String(forwarded.length));
    s.cancel();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(new RegExp(`^inference_objective_request_sizes_count\\{model_name="m",${target}\\} 1$`, 'm'));
    const sum = new RegExp(`^inference_objective_request_sizes_sum\\{model_name="m",${target}\\} (\\d+)$`, 'm').exec(text)?.[1];
    expect(Number(sum)).toBe(forwarded.length);
  });

  /** A request rewritten from `m` to `m-v2`, answered by a response with these headers; the stream is at the response body. */
  const rewrittenUpTo = async (response: Record<string, string>, request: Record<string, unknown> = {}) => {
    const s = envoy.open();
    s.send({ ...requestHeaders({ ...POST_HEADERS, 'x-gateway-model-name-rewrite': 'm-v2' }, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED') });
    s.send(requestBody(JSON.stringify({ model: 'm', prompt: 'hello', ...request }), true));
    await s.next();
    expect(JSON.parse(Buffer.concat((await readStreamedBody(s, 'request_body')).chunks).toString()).model).toBe('m-v2');
    s.send(responseHeaders({ ':status': '200', ...response }, false));
    await s.next();
    return s;
  };

  // GIE v1.5.0 pkg/epp/handlers/server.go Process (ResponseBody): a non-streamed body is gathered to end_of_stream and
  // finishResponse runs rewriteModelName on all of it (handlers/response_test.go TestRewriteModelName), so where Envoy
  // cuts the chunks never decides what the client sees.
  test('server.go finishResponse rewrites the whole non-streamed body: the client gets its model name back when Envoy cuts the chunk inside it', async () => {
    const s = await rewrittenUpTo({ 'content-type': 'application/json' });
    const answer = Buffer.from('{"id":"cmpl-1","model":"m-v2","choices":[{"text":"hi"}]}');
    const cut = answer.indexOf(Buffer.from('m-v2')) + 2; // Envoy's chunk ends inside the name
    s.send(responseBody(answer.subarray(0, cut), false));
    s.send(responseBody(answer.subarray(cut), true));
    const got = await readStreamedBody(s, 'response_body');
    expect(Buffer.concat(got.chunks).toString()).toBe('{"id":"cmpl-1","model":"m","choices":[{"text":"hi"}]}');
    s.end();
    await s.status;
  });

  test('server.go finishResponse: a non-streamed body cut anywhere, or one byte per chunk, reaches the client as rewriteModelName of the whole body, byte for byte', async () => {
    const answer = Buffer.from('{"id":"c","model":"m-v2","x":"\"model\":\"","again":{"model": "m-v2"},"é":"m-v2"}');
    // rewriteModelName replaces the compact name and returns: the spaced one stays.
    const whole = '{"id":"c","model":"m","x":"\"model\":\"","again":{"model": "m-v2"},"é":"m-v2"}';
    const cuts: Buffer[][] = [];
    for (let at = 1; at < answer.length; at++) cuts.push([answer.subarray(0, at), answer.subarray(at)]);
    cuts.push([...answer].map((b) => Buffer.from([b])));
    for (const pieces of cuts) {
      const s = await rewrittenUpTo({ 'content-type': 'application/json' });
      pieces.forEach((p, i) => s.send(responseBody(p, i === pieces.length - 1)));
      const got = await readStreamedBody(s, 'response_body');
      expect(Buffer.concat(got.chunks).toString()).toBe(whole);
      s.end();
      await s.status;
    }
  });

  // GIE v1.5.0 server.go rewriteModelName replaces `"model":"<target>"` and returns when that changed the body; only a
  // body with none gets `"model": "<target>"` (a space after the colon) replaced.
  test('server.go rewriteModelName on a whole non-streamed body: with both spellings the compact one is restored and the spaced one left; with the spaced one alone, it is restored', async () => {
    const both = await rewrittenUpTo({ 'content-type': 'application/json' });
    both.send(responseBody('{"id":"c","model":"m-v2","again":{"model": "m-v2"}}', true));
    expect(Buffer.concat((await readStreamedBody(both, 'response_body')).chunks).toString()).toBe('{"id":"c","model":"m","again":{"model": "m-v2"}}');
    both.end();
    await both.status;
    const spaced = await rewrittenUpTo({ 'content-type': 'application/json' });
    const answer = Buffer.from('{"id": "c", "model": "m-v2", "again": {"model": "m-v2"}}');
    for (let at = 0; at < answer.length; at += 7) spaced.send(responseBody(answer.subarray(at, at + 7), at + 7 >= answer.length));
    expect(Buffer.concat((await readStreamedBody(spaced, 'response_body')).chunks).toString()).toBe('{"id": "c", "model": "m", "again": {"model": "m"}}');
    spaced.end();
    await spaced.status;
  });

  // The one case kvroute's bounded hold departs from the whole-body rewrite (ModelNameRestorer's comment): a spaced name
  // sent on before the chunk completing the body's first compact name is restored, where upstream would leave it.
  test('a non-streamed body whose spaced name comes in a chunk before its first compact name: the spaced one is restored (documented departure), the compact one too', async () => {
    const s = await rewrittenUpTo({ 'content-type': 'application/json' });
    s.send(responseBody('{"a":{"model": "m-v2"},', false));
    s.send(responseBody('"model":"m-v2","b":{"model": "m-v2"}}', true));
    expect(Buffer.concat((await readStreamedBody(s, 'response_body')).chunks).toString()).toBe('{"a":{"model": "m"},"model":"m","b":{"model": "m-v2"}}');
    s.end();
    await s.status;
  });

  // GIE v1.5.0 server.go Process (ResponseBody) runs rewriteModelName on each streamed chunk alone: the rule holds per chunk.
  test('server.go rewriteModelName per streamed chunk: a chunk with a compact name keeps its spaced ones, a chunk with spaced ones alone has them restored', async () => {
    const s = await rewrittenUpTo({ 'content-type': 'text/event-stream' });
    s.send(responseBody('data: {"model":"m-v2","x":{"model": "m-v2"}}\n\n', false));
    const first = await readStreamedBody(s, 'response_body', 1);
    expect(Buffer.concat(first.chunks).toString()).toBe('data: {"model":"m","x":{"model": "m-v2"}}\n\n');
    s.send(responseBody('data: {"model": "m-v2"}\n\n', true));
    const rest = await readStreamedBody(s, 'response_body');
    expect(Buffer.concat(rest.chunks).toString()).toBe('data: {"model": "m"}\n\n');
    s.end();
    await s.status;
  });

  // GIE v1.5.0 server.go ResponseTrailers: trailers end a non-streamed response (gRPC-style upstreams), finishResponse
  // answering its body (end_of_stream false) before the trailers.
  test('server.go ResponseTrailers finishes a non-streamed body: a name cut between chunks is restored, and the body\'s last byte, kept as a name\'s possible start, is sent before the trailers response', async () => {
    const s = await rewrittenUpTo({ 'content-type': 'application/json' });
    s.send(responseBody('{"id":"cmpl-1","model":"m-', false));
    s.send(responseBody('v2","text":"', false)); // ends with a quote: perhaps the start of "model":"m-v2"
    s.send(responseTrailers({ 'grpc-status': '0' }));
    const got = await readStreamedBody(s, 'response_body', 3);
    expect(got.chunks.map(String)).toEqual(['{"id":"cmpl-1",', '"model":"m","text":', '"']);
    expect(got.eos).toEqual([false, false, false]);
    expect((await s.next()).response).toBe('response_trailers');
    s.end();
    await s.status;
  });

  // GIE v1.5.0 server.go Process (ResponseBody): a streamed response (the request's `stream: true`, or a
  // text/event-stream content-type) is answered chunk by chunk, rewriteModelName run on each chunk alone, so a name
  // Envoy cuts between two chunks stays as the server wrote it there. kvroute holds no streamed chunk back either.
  test.each<[string, Record<string, string>, Record<string, unknown>]>([
    ['a text/event-stream response', { 'content-type': 'text/event-stream' }, {}],
    ['a request with stream: true (server.go "Request with stream=true with non-streaming response header")', { 'content-type': 'application/json' }, { stream: true }],
  ])('server.go rewrites a streamed body per chunk, each answered as it comes: %s', async (_, response, request) => {
    const s = await rewrittenUpTo(response, request);
    const event = Buffer.from('data: {"id":"c","model":"m-v2","choices":[]}\n\ndata: {"id":"c","model":"m-v2"}\n\n');
    const cut = event.lastIndexOf(Buffer.from('m-v2')) + 2;
    s.send(responseBody(event.subarray(0, cut), false));
    const first = await readStreamedBody(s, 'response_body', 1);
    expect(Buffer.concat(first.chunks).toString()).toBe('data: {"id":"c","model":"m","choices":[]}\n\ndata: {"id":"c","model":"m-');
    s.send(responseBody(event.subarray(cut), true));
    const rest = await readStreamedBody(s, 'response_body');
    expect(Buffer.concat(rest.chunks).toString()).toBe('v2"}\n\n');
    s.end();
    await s.status;
  });
});
