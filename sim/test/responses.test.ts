/**
 * The Responses API as vLLM 0.10.0 serves it for a text model (sim/src/responses.ts): POST /v1/responses,
 * GET /v1/responses/{id}, POST /v1/responses/{id}/cancel, over loopback. Upstream:
 * vllm/entrypoints/openai/serving_responses.py, protocol.py (ResponsesRequest, ResponsesResponse) and api_server.py
 * @ v0.10.0 (see responses.ts for which stored text stands for v0.10.0).
 */
import { Subscriber } from 'zeromq';
import { decode } from '@msgpack/msgpack';
import { startSimulator, type Simulator } from '../src/server';
import { ResponseStore } from '../src/responses';
import { http, longText, metricValue, parsePrometheus, waitFor } from './helpers';

const MODEL = 'Qwen/Qwen3-0.6B';
const SYSTEM = `You answer from the manual. ${longText(80, 3)}`;
const QUESTION = `What does the appendix say? ${longText(60, 4)}`;

async function metric(sim: Simulator, name: string): Promise<number> {
  const page = await http(sim.url, 'GET', '/metrics');
  return metricValue(parsePrometheus(page.text), name, { model_name: MODEL, engine: '0' });
}

describe('POST /v1/responses (serving_responses.py @ v0.10.0)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, podName: 'pod-r', simExtension: true });
  });
  afterAll(() => sim.close());

  it('answers a ResponsesResponse: resp_ id, one output_text message, UsageInfo, the request fields echoed as from_request fills them', async () => {
    const r = await http(sim.url, 'POST', '/v1/responses', { model: MODEL, input: 'Say hello.', instructions: 'Be brief.', max_output_tokens: 4, metadata: { k: 'v' }, user: 'u1' });
    expect(r.status).toBe(200);
    const body = r.json();
    expect(body.id).toMatch(/^resp_[0-9a-f]{32}$/);
    expect(body.created_at).toBeGreaterThan(1.7e9);
    const { kvroute_sim: sim_, ...rest } = body;
    expect(sim_).toMatchObject({ pod: 'pod-r' });
    // Every field of ResponsesResponse, in its order (model_dump()).
    expect(Object.keys(rest)).toEqual([
      'id', 'created_at', 'instructions', 'metadata', 'model', 'object', 'output', 'parallel_tool_calls', 'temperature', 'tool_choice', 'tools', 'top_p', 'background',
      'max_output_tokens', 'max_tool_calls', 'previous_response_id', 'prompt', 'reasoning', 'service_tier', 'status', 'text', 'top_logprobs', 'truncation', 'usage', 'user',
    ]);
    expect(rest).toMatchObject({
      instructions: 'Be brief.',
      metadata: { k: 'v' },
      model: MODEL,
      object: 'response',
      parallel_tool_calls: true,
      temperature: 1,
      tool_choice: 'auto',
      tools: [],
      top_p: 1,
      background: false,
      max_output_tokens: 4,
      max_tool_calls: null,
      previous_response_id: null,
      prompt: null,
      reasoning: null,
      service_tier: 'auto',
      status: 'completed',
      text: null,
      top_logprobs: 0,
      truncation: 'disabled',
      user: 'u1',
    });
    expect(rest.output).toHaveLength(1);
    expect(rest.output[0]).toEqual({ id: expect.stringMatching(/^msg_[0-9a-f]{32}$/), content: [{ annotations: [], text: expect.any(String), type: 'output_text', logprobs: null }], role: 'assistant', status: 'completed', type: 'message' });
    expect(rest.usage).toEqual({ prompt_tokens: expect.any(Number), total_tokens: expect.any(Number), completion_tokens: 4, prompt_tokens_details: null });
    expect(rest.usage.total_tokens).toBe(rest.usage.prompt_tokens + 4);
  });

  it('prefills exactly the chat of instructions + input with the generation prompt: the same prompt_tokens, and the chat then hits every full block', async () => {
    const hitsBefore = await metric(sim, 'vllm:prefix_cache_hits_total');
    const resp = await http(sim.url, 'POST', '/v1/responses', { model: MODEL, instructions: SYSTEM, input: QUESTION, max_output_tokens: 2 });
    expect(resp.status).toBe(200);
    const chat = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: QUESTION }], max_tokens: 2 });
    const promptTokens = resp.json().usage.prompt_tokens;
    expect(chat.json().usage.prompt_tokens).toBe(promptTokens);
    // Every full block of the responses request's prompt is the chat's: same token ids, same block hashes.
    expect(chat.json().kvroute_sim.cached_tokens).toBe(Math.floor((promptTokens - 1) / 16) * 16);
    expect((await metric(sim, 'vllm:prefix_cache_hits_total')) - hitsBefore).toBe(chat.json().kvroute_sim.cached_tokens);
    // A list of input items is the same chat.
    const items = await http(sim.url, 'POST', '/v1/responses', { input: [{ role: 'system', content: SYSTEM }, { type: 'message', role: 'user', content: QUESTION }], max_output_tokens: 2 });
    expect(items.json().usage.prompt_tokens).toBe(promptTokens);
  });

  it('reads input_text parts as text parts (MM_PARSER_MAP["input_text"] in chat_utils.py), as the OpenAI SDK sends input items: the same prompt as the chat of text parts', async () => {
    const parts = [{ type: 'input_text', text: 'Look at this: ' }, { type: 'input_text', text: QUESTION }];
    const resp = await http(sim.url, 'POST', '/v1/responses', { instructions: SYSTEM, input: [{ role: 'user', content: parts }], max_output_tokens: 2 });
    expect(resp.status).toBe(200);
    const chat = await http(sim.url, 'POST', '/v1/chat/completions', {
      messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: parts.map((p) => ({ type: 'text', text: p.text })) }],
      max_tokens: 1,
    });
    expect(chat.status).toBe(200);
    expect(resp.json().usage.prompt_tokens).toBe(chat.json().usage.prompt_tokens);
    // Other part types are still not simulated.
    const image = await http(sim.url, 'POST', '/v1/responses', { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'http://x/y.png' }] }] });
    expect(image.status).toBe(501);
  });

  it('a part type vLLM 0.10.0\'s chat parser does not know (an earlier reply\'s output_text, before vLLM #29175) is the preprocessing 400, " None" and all', async () => {
    const reply = await http(sim.url, 'POST', '/v1/responses', {
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hello' }] }, { role: 'assistant', content: [{ type: 'output_text', text: 'Hi!' }] }, { role: 'user', content: 'Again?' }],
    });
    expect(reply.status).toBe(400);
    expect(reply.json()).toEqual({ object: 'error', message: 'Unknown part type: output_text None', type: 'BadRequestError', param: null, code: 400 });
    const untyped = await http(sim.url, 'POST', '/v1/responses', { input: [{ role: 'user', content: [{ text: 'no type' }] }] });
    expect(untyped.status).toBe(400);
    expect(untyped.json().message).toBe("Missing 'type' field in multimodal part. None");
  });

  it('counts as a request in vLLM\'s metrics: prompt and generation tokens, success by finish reason', async () => {
    const before = { prompt: await metric(sim, 'vllm:prompt_tokens_total'), gen: await metric(sim, 'vllm:generation_tokens_total'), queries: await metric(sim, 'vllm:prefix_cache_queries_total') };
    const r = await http(sim.url, 'POST', '/v1/responses', { input: longText(50, 9), max_output_tokens: 3 });
    const u = r.json().usage;
    expect((await metric(sim, 'vllm:prompt_tokens_total')) - before.prompt).toBe(u.prompt_tokens);
    expect((await metric(sim, 'vllm:generation_tokens_total')) - before.gen).toBe(3);
    expect((await metric(sim, 'vllm:prefix_cache_queries_total')) - before.queries).toBe(u.prompt_tokens);
  });

  it('previous_response_id (store defaults to true) prefixes the stored messages and output: the second request prefills the first\'s prompt + reply from cache', async () => {
    const first = (await http(sim.url, 'POST', '/v1/responses', { instructions: SYSTEM, input: `${QUESTION} first`, max_output_tokens: 20 })).json();
    const reply = first.output[0].content[0].text;
    const second = await http(sim.url, 'POST', '/v1/responses', { input: 'And then?', previous_response_id: first.id, max_output_tokens: 2 });
    expect(second.status).toBe(200);
    const b = second.json();
    expect(b.previous_response_id).toBe(first.id);
    // The conversation rendered as a chat: the first's messages, its reply as the assistant's, the new input.
    const chat = await http(sim.url, 'POST', '/v1/chat/completions', {
      messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: `${QUESTION} first` }, { role: 'assistant', content: reply }, { role: 'user', content: 'And then?' }],
      max_tokens: 1,
    });
    expect(b.usage.prompt_tokens).toBe(chat.json().usage.prompt_tokens);
    // The first prompt's full blocks are hits for the second.
    expect(b.kvroute_sim.cached_tokens).toBeGreaterThanOrEqual(Math.floor(first.usage.prompt_tokens / 16) * 16);
    // GET returns the stored response (without the simulator's extension member).
    const got = await http(sim.url, 'GET', `/v1/responses/${b.id}`);
    expect(got.status).toBe(200);
    const { kvroute_sim: _drop, ...stored } = b;
    expect(got.json()).toEqual(stored);
  });

  it('store: false keeps nothing: GET is a 404 and the id cannot be continued', async () => {
    const r = (await http(sim.url, 'POST', '/v1/responses', { input: 'x', store: false, max_output_tokens: 1 })).json();
    const got = await http(sim.url, 'GET', `/v1/responses/${r.id}`);
    expect(got.status).toBe(404);
    expect(got.json()).toEqual({ object: 'error', message: `Response with id '${r.id}' not found.`, type: 'invalid_request_error', param: null, code: 404 });
    expect((await http(sim.url, 'POST', '/v1/responses', { input: 'y', previous_response_id: r.id })).status).toBe(404);
    // `store: Optional[bool] = True`: an explicit null is None, which stores nothing either (`if request.store:`).
    const unset = (await http(sim.url, 'POST', '/v1/responses', { input: 'x', store: null, max_output_tokens: 1 })).json();
    expect((await http(sim.url, 'GET', `/v1/responses/${unset.id}`)).status).toBe(404);
  });

  it('cancel: a finished (synchronous) response is a 400; a background one is answered queued, cancels, and stays cancelled', async () => {
    const done = (await http(sim.url, 'POST', '/v1/responses', { input: 'x', max_output_tokens: 1 })).json();
    const c = await http(sim.url, 'POST', `/v1/responses/${done.id}/cancel`);
    expect(c.status).toBe(400);
    expect(c.json()).toEqual({ object: 'error', message: 'Cannot cancel a synchronous response.', type: 'invalid_request_error', param: null, code: 400 });
    // 200 tokens at 1 s each: only the cancel's abort ends the engine request within the wait below.
    const slow = await startSimulator({ port: 0, timeScale: 1, itlMs: 1000 });
    try {
      const q = await http(slow.url, 'POST', '/v1/responses', { input: 'bg', background: true, max_output_tokens: 200 });
      expect(q.status).toBe(200);
      expect(q.json()).toMatchObject({ status: 'queued', output: [], usage: null, background: true, max_output_tokens: 200 });
      const id = q.json().id;
      const cancelled = await http(slow.url, 'POST', `/v1/responses/${id}/cancel`);
      expect(cancelled.status).toBe(200);
      expect(cancelled.json()).toMatchObject({ id, status: 'cancelled' });
      await waitFor(() => slow.engine.stats().running === 0, 'the engine request to be aborted');
      expect((await http(slow.url, 'GET', `/v1/responses/${id}`)).json().status).toBe('cancelled');
      // A background response that finishes is stored completed.
      const q2 = (await http(slow.url, 'POST', '/v1/responses', { input: 'bg2', background: true, max_output_tokens: 2 })).json();
      await waitFor(async () => (await http(slow.url, 'GET', `/v1/responses/${q2.id}`)).json().status === 'completed', 'the background response to complete');
      const fin = (await http(slow.url, 'GET', `/v1/responses/${q2.id}`)).json();
      expect(fin.usage.completion_tokens).toBe(2);
      expect(fin.output[0].type).toBe('message');
      expect((await http(slow.url, 'POST', `/v1/responses/${q2.id}/cancel`)).status).toBe(400);
    } finally {
      await slow.close();
    }
  });

  it('a background request the engine refuses late is answered queued, then stored failed (_run_background_request)', async () => {
    // prompt + max_tokens beyond the KV cache's slots: the simulator's processor-time refusal (see lateErrorOf).
    const small = await startSimulator({ port: 0, maxModelLen: 1024, kvCacheBlocks: 64 });
    try {
      const q = await http(small.url, 'POST', '/v1/responses', { input: 'x', background: true, max_output_tokens: 1020 });
      expect(q.status).toBe(200);
      expect(q.json()).toMatchObject({ status: 'queued' });
      expect((await http(small.url, 'GET', `/v1/responses/${q.json().id}`)).json()).toMatchObject({ status: 'failed' });
    } finally {
      await small.close();
    }
  });

  it('stream: true is refused as 0.10.0 refuses it: NotImplementedError("Streaming responses are not supported"), a plain-text 500', async () => {
    const before = await metric(sim, 'vllm:prompt_tokens_total');
    const r = await http(sim.url, 'POST', '/v1/responses', { input: 'x', stream: true });
    expect(r.status).toBe(500);
    expect(r.text).toBe('Internal Server Error');
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    // Nothing reached the engine.
    expect(await metric(sim, 'vllm:prompt_tokens_total')).toBe(before);
  });

  it.each<[string, unknown, number, Record<string, unknown>]>([
    ['missing input', { model: MODEL }, 400, { message: `[{'type': 'missing', 'loc': ('body', 'input'), 'msg': 'Field required', 'input': {'model': '${MODEL}'}}]`, type: 'Bad Request' }],
    ['an unknown model', { model: 'nope', input: 'x' }, 404, { message: 'The model `nope` does not exist.', type: 'NotFoundError' }],
    ['a previous_response_id without resp_', { input: 'x', previous_response_id: 'abc' }, 400, { message: "Invalid 'response_id': 'abc'. Expected an ID that begins with 'resp'.", type: 'invalid_request_error' }],
    ['an unknown previous_response_id', { input: 'x', previous_response_id: 'resp_nope' }, 404, { message: "Response with id 'resp_nope' not found.", type: 'invalid_request_error' }],
    ['a prompt template (validate_prompt)', { input: 'x', prompt: { id: 'p' } }, 400, { type: 'Bad Request', message: expect.stringContaining('Value error, prompt template is not supported') }],
    ['background without store (validate_background)', { input: 'x', background: true, store: false }, 400, { type: 'Bad Request', message: expect.stringContaining('Value error, background can only be used when `store` is true') }],
    ['max_output_tokens 0 (SamplingParams)', { input: 'x', max_output_tokens: 0 }, 400, { message: 'max_tokens must be at least 1, got 0.', type: 'BadRequestError' }],
  ])('%s: the 0.10.0 error', async (_name, body, status, error) => {
    const r = await http(sim.url, 'POST', '/v1/responses', body);
    expect(r.status).toBe(status);
    expect(r.json()).toEqual({ object: 'error', param: null, code: status, ...error });
  });

  it('a missing model is no error (ResponsesRequest.model is Optional): the first served name answers', async () => {
    const r = await http(sim.url, 'POST', '/v1/responses', { input: 'x', max_output_tokens: 1 });
    expect(r.status).toBe(200);
    expect(r.json().model).toBe(MODEL);
  });

  it('GET and cancel check the id as vLLM does (resp_ prefix 400, unknown 404); the routes take only their methods', async () => {
    expect((await http(sim.url, 'GET', '/v1/responses/abc')).json()).toMatchObject({ code: 400, message: "Invalid 'response_id': 'abc'. Expected an ID that begins with 'resp'." });
    expect((await http(sim.url, 'POST', '/v1/responses/resp_x/cancel')).status).toBe(404);
    const wrong = await http(sim.url, 'POST', '/v1/responses/resp_x');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('GET');
    expect((await http(sim.url, 'GET', '/v1/responses')).status).toBe(405);
  });
});

describe('the response store (bounded, where vLLM\'s is not)', () => {
  const body = (id: string, text: string) => ({ body: { id, status: 'completed', output: [{ type: 'message', content: [{ text }] }] } });

  it('keeps at most its capacity of responses, the oldest forgotten first, a response and its messages together', () => {
    const store = new ResponseStore(3);
    for (let i = 0; i < 5; i++) {
      store.putMessages(`resp_${i}`, [{ role: 'user', content: `m${i}` }]);
      store.putResponse(`resp_${i}`, body(`resp_${i}`, `r${i}`));
    }
    expect(store.size).toBe(3);
    expect(store.getResponse('resp_1')).toBeUndefined();
    expect(store.getMessages('resp_1')).toBeUndefined();
    expect(store.getResponse('resp_4')?.body.id).toBe('resp_4');
    expect(store.getMessages('resp_2')).toEqual([{ role: 'user', content: 'm2' }]);
  });

  it('keeps at most maxChars characters of JSON: long conversations are forgotten by size, not only by count', () => {
    const store = new ResponseStore(10_000, 50_000);
    const long = 'x'.repeat(20_000);
    for (let i = 0; i < 5; i++) store.putMessages(`resp_${i}`, [{ role: 'user', content: long }]);
    expect(store.storedChars).toBeLessThanOrEqual(50_000);
    expect(store.getMessages('resp_4')).toBeDefined();
    expect(store.getMessages('resp_3')).toBeDefined();
    expect(store.getMessages('resp_2')).toBeUndefined();
    // An entry alone over the budget is still kept: its request is answered from it.
    const tiny = new ResponseStore(10, 10);
    tiny.putMessages('resp_big', [{ role: 'user', content: long }]);
    expect(tiny.getMessages('resp_big')).toBeDefined();
  });
});

describe('KV events of a responses request', () => {
  it('are the BlockStored events of the equivalent chat request (the same token ids and block hashes)', async () => {
    const hashesOf = async (path: string, body: unknown): Promise<string[]> => {
      const sim = await startSimulator({ port: 0, timeScale: 1000, pythonHashSeed: '42', kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://127.0.0.1:*' } });
      const sub = new Subscriber({ linger: 0 });
      const got: string[] = [];
      try {
        let handshaken = false;
        sub.events.on('handshake', () => { handshaken = true; });
        sub.connect(sim.kvEvents!.endpoint);
        sub.subscribe('');
        // ZMQ's slow joiner: the subscription leaves right after the handshake; the PUB's I/O thread applies it.
        await waitFor(() => handshaken, 'the SUB socket\'s handshake');
        await new Promise((r) => setTimeout(r, 300));
        const loop = (async () => {
          for await (const [, , payload] of sub) {
            const [, events] = decode(payload!, { useBigInt64: true }) as [unknown, unknown[][]];
            for (const e of events) if (e[0] === 'BlockStored') got.push(...(e[1] as unknown[]).map(String));
          }
        })().catch(() => undefined);
        expect((await http(sim.url, 'POST', path, body)).status).toBe(200);
        await waitFor(() => got.length >= 5, 'the BlockStored events');
        sub.close();
        await loop;
        return got;
      } finally {
        await sim.close();
      }
    };
    const viaResponses = await hashesOf('/v1/responses', { instructions: SYSTEM, input: QUESTION, max_output_tokens: 1 });
    const viaChat = await hashesOf('/v1/chat/completions', { messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: QUESTION }], max_tokens: 1 });
    expect(viaResponses.length).toBeGreaterThanOrEqual(5);
    expect(viaResponses).toEqual(viaChat);
  });
});
