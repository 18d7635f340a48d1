import { ManualClock } from '../src/clock';
import { startSimulator, type Simulator } from '../src/server';
import { http, longText, metricValue, openStream, parsePrometheus, parseSse, waitFor } from './helpers';

const MODEL = 'Qwen/Qwen3-0.6B';

describe('OpenAI API over loopback', () => {
  let sim: Simulator;
  beforeAll(async () => {
    // 1000× faster than real time: a modelled 1 s TTFT takes 1 ms of wall time.
    sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: [MODEL, 'qwen'], podName: 'pod-a', enablePromptTokensDetails: true });
  });
  afterAll(() => sim.close());

  it('GET /health and /v1/models', async () => {
    const h = await http(sim.url, 'GET', '/health');
    expect(h.status).toBe(200);
    const m = await http(sim.url, 'GET', '/v1/models');
    expect(m.status).toBe(200);
    expect(m.json()).toMatchObject({
      object: 'list',
      data: [
        { id: MODEL, object: 'model', root: MODEL, max_model_len: 40960 },
        { id: 'qwen', object: 'model' },
      ],
    });
  });

  it('non-streaming completion with usage; a repeated prompt reports cached tokens', async () => {
    const prompt = longText(600, 1);
    const first = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 5 });
    expect(first.status).toBe(200);
    expect(first.headers['x-kvroute-pod']).toBe('pod-a');
    const a = first.json();
    expect(a).toMatchObject({ object: 'text_completion', model: MODEL });
    expect(a.id).toMatch(/^cmpl-/);
    expect(a.choices).toEqual([
      { index: 0, text: 'The quick brown fox jumps', logprobs: null, finish_reason: 'length', stop_reason: null, prompt_logprobs: null },
    ]);
    const n = a.usage.prompt_tokens;
    expect(n).toBeGreaterThan(500);
    // Nothing cached: vLLM leaves prompt_tokens_details unset even with the flag, and model_dump() writes null.
    expect(a.usage).toEqual({ prompt_tokens: n, completion_tokens: 5, total_tokens: n + 5, prompt_tokens_details: null });

    const b = (await http(sim.url, 'POST', '/v1/completions', { model: 'qwen', prompt, max_tokens: 5 })).json();
    // Every full block but the one holding the last prompt token.
    expect(b.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((n - 1) / 16) * 16);
    expect(b.kvroute_sim.cached_tokens).toBe(b.usage.prompt_tokens_details.cached_tokens);
  });

  it('accepts a prompt of token ids', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: [785, 3974, 13876], max_tokens: 2 });
    expect(r.status).toBe(200);
    expect(r.json().usage.prompt_tokens).toBe(3);
  });

  it('streaming chat: role chunk, one chunk per token, usage chunk, [DONE]', async () => {
    const r = await http(sim.url, 'POST', '/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: 'Hello!' }],
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
    const { events, done } = parseSse(r.text);
    expect(done).toBe(true);
    expect(events[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const content = events.slice(1, 5).map((e) => e.choices[0].delta.content);
    expect(content).toEqual(['The', ' quick', ' brown', ' fox']);
    expect(events.slice(1, 4).every((e) => e.choices[0].finish_reason === null && e.usage === null)).toBe(true);
    expect(events[4].choices[0].finish_reason).toBe('length');
    expect(events[4].kvroute_sim.ttft_s).toBeGreaterThan(0);
    const last = events[5];
    expect(last.choices).toEqual([]);
    // <|im_start|> user \n Hello ! <|im_end|> \n <|im_start|> assistant \n = 10 tokens
    // Nothing cached: the final usage chunk is dumped with exclude_none, so the key is absent.
    expect(last.usage).toEqual({ prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 });
    expect(events).toHaveLength(6);
    for (const e of events) expect(e).toMatchObject({ object: 'chat.completion.chunk', model: MODEL });
  });

  it('streaming completion without include_usage sends no usage', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'Hi', max_tokens: 3, stream: true });
    const { events, done } = parseSse(r.text);
    expect(done).toBe(true);
    expect(events.map((e) => e.choices[0].text)).toEqual(['The', ' quick', ' brown']);
    expect(events.every((e) => !('usage' in e))).toBe(true);
  });

  it('non-streaming chat; the next turn reuses the blocks of the previous prompt and reply', async () => {
    const system = { role: 'system', content: longText(300, 2) };
    const user1 = { role: 'user', content: 'Summarize the document.' };
    const t1 = (await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages: [system, user1], max_tokens: 48 })).json();
    expect(t1.object).toBe('chat.completion');
    expect(t1.choices[0].message.role).toBe('assistant');
    const replyText: string = t1.choices[0].message.content;
    const p1 = t1.usage.prompt_tokens;

    const t2 = (
      await http(sim.url, 'POST', '/v1/chat/completions', {
        model: MODEL,
        messages: [system, user1, { role: 'assistant', content: replyText }, { role: 'user', content: 'Shorter, please.' }],
        max_tokens: 8,
      })
    ).json();
    // Everything that had KV at the end of turn 1 (prompt + reply minus its last token), in full blocks.
    expect(t2.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((p1 + 48 - 1) / 16) * 16);
    expect(t2.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(p1);
  });

  it('POST /tokenize counts like the completion path', async () => {
    const r = (await http(sim.url, 'POST', '/tokenize', { model: MODEL, messages: [{ role: 'user', content: 'Hello!' }] })).json();
    expect(r).toMatchObject({ count: 10, max_model_len: 40960 });
    expect(r.tokens.slice(0, 1)).toEqual([151644]);
  });

  it('client disconnect mid-stream aborts the request and frees its slot', async () => {
    const stream = await openStream(sim.url, '/v1/completions', { model: MODEL, prompt: 'Tell me a long story', max_tokens: 30_000, stream: true });
    expect(stream.first).toContain('data: ');
    expect(sim.engine.stats().running).toBe(1);
    stream.hangUp();
    await waitFor(() => sim.engine.stats().running === 0, 'the aborted request to be freed');
    const samples = parsePrometheus(await sim.metrics.metrics());
    expect(metricValue(samples, 'vllm:request_success_total', { finished_reason: 'abort' })).toBe(1);
  });

  describe('errors', () => {
    const expectError = async (path: string, body: unknown, status: number, param?: string | null, code?: string) => {
      const r = await http(sim.url, 'POST', path, body);
      expect(r.status).toBe(status);
      const e = r.json().error;
      expect(Object.keys(e).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(typeof e.message).toBe('string');
      expect(e.type).toBe('invalid_request_error');
      if (param !== undefined) expect(e.param).toBe(param);
      if (code !== undefined) expect(e.code).toBe(code);
    };

    it('invalid JSON → 400', () => expectError('/v1/completions', '{"model":', 400, null, 'invalid_json'));
    it('non-object JSON → 400', () => expectError('/v1/chat/completions', '[1,2]', 400, null, 'invalid_json'));
    it('unknown model → 404', () => expectError('/v1/completions', { model: 'gpt-4', prompt: 'x' }, 404, 'model', 'model_not_found'));
    it('missing model → 404', () => expectError('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] }, 404, 'model', 'model_not_found'));
    it('model of the wrong type → 400', () => expectError('/v1/completions', { model: 7, prompt: 'x' }, 400, 'model'));
    it('max_tokens as a string → 400', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: '5' }, 400, 'max_tokens', 'invalid_type'));
    it('max_tokens 0 → 400', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 0 }, 400, 'max_tokens'));
    it('stream as a string → 400', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', stream: 'yes' }, 400, 'stream'));
    it('messages not an array → 400', () => expectError('/v1/chat/completions', { model: MODEL, messages: 'hi' }, 400, 'messages'));
    it('message without a role → 400', () => expectError('/v1/chat/completions', { model: MODEL, messages: [{ content: 'hi' }] }, 400, 'messages[0].role'));
    it('missing prompt → 400', () => expectError('/v1/completions', { model: MODEL }, 400, 'prompt'));
    it('token id out of range → 400', () => expectError('/v1/completions', { model: MODEL, prompt: [1, -2] }, 400, 'prompt'));
    it('prompt + max_tokens over max-model-len → 400', () =>
      expectError('/v1/completions', { model: MODEL, prompt: 'hello world', max_tokens: 40960 }, 400, 'prompt', 'context_length_exceeded'));
    it('prompt alone over max-model-len → 400', async () => {
      const small = await startSimulator({ port: 0, timeScale: 1000, maxModelLen: 64 });
      try {
        const r = await http(small.url, 'POST', '/v1/completions', { model: MODEL, prompt: longText(100) });
        expect(r.status).toBe(400);
        expect(r.json().error.code).toBe('context_length_exceeded');
        // Without max_tokens the default shrinks to the room left, like vLLM.
        const ok = await http(small.url, 'POST', '/v1/completions', { model: MODEL, prompt: longText(40) });
        expect(ok.status).toBe(200);
        expect(ok.json().usage.total_tokens).toBeLessThanOrEqual(64);
      } finally {
        await small.close();
      }
    });
    it('unknown route → 404, wrong method → 405', async () => {
      expect((await http(sim.url, 'GET', '/v1/nope')).status).toBe(404);
      const r = await http(sim.url, 'GET', '/v1/completions');
      expect(r.status).toBe(405);
      expect(r.headers.allow).toBe('POST');
    });
  });
});

describe('queueing through HTTP with a manual clock', () => {
  it('max-num-seqs 1: the second request waits, shows in the gauges, and completes', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, maxNumSeqs: 1 });
    try {
      const body = { model: MODEL, prompt: longText(50), max_tokens: 3 };
      const a = http(sim.url, 'POST', '/v1/completions', body);
      const b = http(sim.url, 'POST', '/v1/completions', { ...body, prompt: longText(50, 3) });
      await waitFor(() => sim.engine.stats().waiting === 1, 'one running, one waiting');
      let samples = parsePrometheus((await http(sim.url, 'GET', '/metrics')).text);
      expect(metricValue(samples, 'vllm:num_requests_running')).toBe(1);
      expect(metricValue(samples, 'vllm:num_requests_waiting')).toBe(1);
      expect(metricValue(samples, 'vllm:kv_cache_usage_perc')).toBeGreaterThan(0);
      clock.runAll();
      const [ra, rb] = [(await a).json(), (await b).json()];
      // b queued for exactly a's e2e time, in model seconds.
      expect(rb.kvroute_sim.queue_time_s).toBeCloseTo(ra.kvroute_sim.e2e_s, 9);
      samples = parsePrometheus((await http(sim.url, 'GET', '/metrics')).text);
      expect(metricValue(samples, 'vllm:num_requests_waiting')).toBe(0);
      expect(metricValue(samples, 'vllm:kv_cache_usage_perc')).toBe(1 / 8192); // only the null block
    } finally {
      await sim.close();
    }
  });
});

describe('shutdown', () => {
  it('close() drains for the grace period, then ends in-flight streams with finish_reason "abort"', async () => {
    const clock = new ManualClock(); // never advanced: the request cannot finish by itself
    const sim = await startSimulator({ port: 0, clock });
    const pending = http(sim.url, 'POST', '/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
      stream: true,
    });
    await waitFor(() => sim.engine.stats().running === 1, 'the request to be admitted');
    await sim.close({ graceMs: 20 });
    const r = await pending;
    expect(r.status).toBe(200);
    const { events, done } = parseSse(r.text);
    expect(done).toBe(true);
    expect(events.at(-1).choices[0].finish_reason).toBe('abort');
    expect(sim.engine.stats()).toMatchObject({ running: 0, usedBlocks: 1 });
  });
});

describe('usage.prompt_tokens_details (vllm/entrypoints/openai/serving_chat.py, serving_completion.py @ v0.10.0)', () => {
  const prompt = longText(200, 7);
  const cachedOf = (n: number) => Math.floor((n - 1) / 16) * 16;

  it('without --enable-prompt-tokens-details (the default): null in non-streaming bodies, absent from the final usage chunk', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000 });
    try {
      expect(sim.options.enablePromptTokensDetails).toBe(false);
      for (let i = 0; i < 2; i++) {
        const c = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 2 })).json();
        expect(c.usage).toHaveProperty('prompt_tokens_details', null);
        const chat = (await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: prompt }], max_tokens: 2 })).json();
        expect(chat.usage).toHaveProperty('prompt_tokens_details', null);
        for (const path of ['/v1/completions', '/v1/chat/completions']) {
          const body = path === '/v1/completions' ? { prompt } : { messages: [{ role: 'user', content: prompt }] };
          const r = await http(sim.url, 'POST', path, { model: MODEL, ...body, max_tokens: 2, stream: true, stream_options: { include_usage: true } });
          const final = parseSse(r.text).events.at(-1);
          expect(final.choices).toEqual([]);
          expect(Object.keys(final.usage).sort()).toEqual(['completion_tokens', 'prompt_tokens', 'total_tokens']);
        }
      }
      // The cache works all the same; the extension field still reports it.
      const again = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 2 })).json();
      expect(again.kvroute_sim.cached_tokens).toBe(cachedOf(again.usage.prompt_tokens));
    } finally {
      await sim.close();
    }
  });

  it('with the flag: {cached_tokens} once something is cached, in both endpoints, streaming only in the final usage chunk', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, enablePromptTokensDetails: true });
    try {
      const first = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 2 })).json();
      expect(first.usage.prompt_tokens_details).toBeNull();
      const n = first.usage.prompt_tokens;
      const second = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 2 })).json();
      expect(second.usage.prompt_tokens_details).toEqual({ cached_tokens: cachedOf(n) });
      const r = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 3, stream: true, stream_options: { include_usage: true } });
      const { events } = parseSse(r.text);
      expect(events.slice(0, -1).every((e) => e.usage === null)).toBe(true);
      expect(events.at(-1).usage).toEqual({ prompt_tokens: n, completion_tokens: 3, total_tokens: n + 3, prompt_tokens_details: { cached_tokens: cachedOf(n) } });
      // Without include_usage there is no usage anywhere.
      const plain = parseSse((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 2, stream: true })).text);
      expect(plain.events.every((e) => !('usage' in e))).toBe(true);
    } finally {
      await sim.close();
    }
  });
});
