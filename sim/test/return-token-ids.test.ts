import { startSimulator, type Simulator } from '../src/server';
import { http, parseSse } from './helpers';

// vLLM 0.10.2's token id fields, from #22587 ("Add return_token_ids parameter to OpenAI API endpoints", 24f4d1a22,
// 2025-08-20), checked against vllm/entrypoints/openai/{protocol,serving_completion,serving_chat}.py @ 61aa4b290
// (≈ v0.10.2). vLLM 0.10.0 (6eca337ce) has none of them, and ignores `return_token_ids` as an extra field
// (`OpenAIBaseModel`: `model_config = ConfigDict(extra="allow")`, protocol.py @ 6eca337ce line 49).

const MODEL = 'Qwen/Qwen3-0.6B';
const PROMPT = 'The capital of France is';
const MESSAGES = [{ role: 'user', content: 'Hello there!' }];

// CompletionResponseChoice (protocol.py @ 61aa4b290 lines 1553-1567): token_ids between stop_reason and
// prompt_logprobs, prompt_token_ids last.
const COMPLETION_CHOICE_0102 = ['index', 'text', 'logprobs', 'finish_reason', 'stop_reason', 'token_ids', 'prompt_logprobs', 'prompt_token_ids'];
// ChatCompletionResponseChoice (lines 1765-1775) and ChatCompletionResponse (1778-1793).
const CHAT_CHOICE_0102 = ['index', 'message', 'logprobs', 'finish_reason', 'stop_reason', 'token_ids'];
const CHAT_BODY_0102 = ['id', 'object', 'created', 'model', 'choices', 'service_tier', 'system_fingerprint', 'usage', 'prompt_logprobs', 'prompt_token_ids', 'kv_transfer_params'];
// CompletionResponseStreamChoice (lines 1586-1601), dumped with exclude_unset=False (serving_completion.py line 463).
const COMPLETION_STREAM_CHOICE_0102 = ['index', 'text', 'logprobs', 'finish_reason', 'stop_reason', 'prompt_token_ids', 'token_ids'];

describe('vLLM 0.10.2 mode (sha256_cbor): return_token_ids and the token id fields (#22587 @ 61aa4b290)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: [MODEL], prefixCachingHashAlgo: 'sha256_cbor' });
  });
  afterAll(() => sim.close());

  const tokenize = async (body: unknown): Promise<number[]> => (await http(sim.url, 'POST', '/tokenize', body)).json().tokens;
  const detokenize = async (tokens: number[]): Promise<string> => (await http(sim.url, 'POST', '/detokenize', { tokens })).json().prompt;

  it('non-streaming completion: the choice has vLLM 0.10.2\'s keys in its order, token ids null by default', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 3 });
    expect(r.status).toBe(200);
    const b = r.json();
    expect(Object.keys(b.choices[0])).toEqual(COMPLETION_CHOICE_0102);
    expect(b.choices[0]).toEqual({ index: 0, text: 'The quick brown', logprobs: null, finish_reason: 'length', stop_reason: null, token_ids: null, prompt_logprobs: null, prompt_token_ids: null });
    // The body itself is unchanged (CompletionResponse has no new field).
    expect(Object.keys(b)).toEqual(['id', 'object', 'created', 'model', 'choices', 'service_tier', 'system_fingerprint', 'usage', 'kv_transfer_params']);
    // return_token_ids: false is the same as absent (serving_completion.py lines 571-574: `if request.return_token_ids`).
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 3, return_token_ids: false })).json().choices[0]).toMatchObject({ token_ids: null, prompt_token_ids: null });
  });

  it('non-streaming completion with return_token_ids: the prompt ids are /tokenize\'s, token_ids the generated ids', async () => {
    const b = (await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 3, return_token_ids: true })).json();
    const c = b.choices[0];
    expect(Object.keys(c)).toEqual(COMPLETION_CHOICE_0102);
    expect(c.prompt_token_ids).toEqual(await tokenize({ prompt: PROMPT }));
    expect(c.token_ids).toHaveLength(3);
    expect(await detokenize(c.token_ids)).toBe(c.text);
    expect(b.usage.prompt_tokens).toBe(c.prompt_token_ids.length);
    // A pydantic lax bool, like the other Optional[bool] fields.
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 3, return_token_ids: 'yes' })).json().choices[0].token_ids).toEqual(c.token_ids);
    const bad = await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, return_token_ids: 'maybe' });
    expect(bad.status).toBe(400);
    expect(bad.json().error.message).toBe("[{'type': 'bool_parsing', 'loc': ('body', 'return_token_ids'), 'msg': 'Input should be a valid boolean, unable to interpret input', 'input': 'maybe'}]");
  });

  it('with echo, token_ids are still only the generated ids; a stop token is among them; truncation shows in prompt_token_ids', async () => {
    const echo = (await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 2, echo: true, return_token_ids: true })).json().choices[0];
    expect(echo.text).toBe(`${PROMPT}The quick`);
    // serving_completion.py lines 573-574: `as_list(output.token_ids)`, not the echo's `[*prompt_token_ids, *output.token_ids]`.
    expect(await detokenize(echo.token_ids)).toBe('The quick');
    expect(echo.prompt_token_ids).toEqual(await tokenize({ prompt: PROMPT }));
    const stopId = (await tokenize({ prompt: ' quick', add_special_tokens: false }))[0];
    const st = (await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 8, stop_token_ids: [stopId], return_token_ids: true })).json();
    expect(st.choices[0].text).toBe('The');
    expect(st.choices[0].token_ids).toHaveLength(st.usage.completion_tokens);
    expect(st.choices[0].token_ids.at(-1)).toBe(stopId);
    const ids = await tokenize({ prompt: PROMPT });
    const cut = (await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 1, truncate_prompt_tokens: 2, return_token_ids: true })).json();
    expect(cut.choices[0].prompt_token_ids).toEqual(ids.slice(-2));
  });

  it('n = 2 over a batch of two prompts: each choice carries its own prompt\'s ids', async () => {
    const b = (await http(sim.url, 'POST', '/v1/completions', { prompt: ['Hello', PROMPT], n: 2, max_tokens: 2, return_token_ids: true })).json();
    const hello = await tokenize({ prompt: 'Hello' });
    const ids = await tokenize({ prompt: PROMPT });
    expect(b.choices.map((c: any) => c.prompt_token_ids)).toEqual([hello, hello, ids, ids]);
    const byIds = (await http(sim.url, 'POST', '/v1/completions', { prompt: [[785, 3974, 13876]], max_tokens: 1, return_token_ids: true })).json();
    expect(byIds.choices[0].prompt_token_ids).toEqual([785, 3974, 13876]);
    expect(new Set(b.choices.map((c: any) => JSON.stringify(c.token_ids))).size).toBe(1);
  });

  it('non-streaming chat: token_ids on the choice, prompt_token_ids before kv_transfer_params; null by default', async () => {
    const plain = (await http(sim.url, 'POST', '/v1/chat/completions', { messages: MESSAGES, max_tokens: 3 })).json();
    expect(Object.keys(plain)).toEqual(CHAT_BODY_0102);
    expect(Object.keys(plain.choices[0])).toEqual(CHAT_CHOICE_0102);
    expect(plain.choices[0].token_ids).toBeNull();
    expect(plain.prompt_token_ids).toBeNull();
    const b = (await http(sim.url, 'POST', '/v1/chat/completions', { messages: MESSAGES, max_tokens: 3, return_token_ids: true })).json();
    // serving_chat.py lines 1373-1374 and 1416-1417: the rendered chat's ids, and each choice's generated ids.
    expect(b.prompt_token_ids).toEqual(await tokenize({ messages: MESSAGES }));
    expect(b.prompt_token_ids).toHaveLength(b.usage.prompt_tokens);
    expect(await detokenize(b.choices[0].token_ids)).toBe(b.choices[0].message.content);
  });

  it('streaming completion: per-chunk token_ids; each choice\'s first chunk carries the prompt ids even without return_token_ids', async () => {
    const ids = await tokenize({ prompt: PROMPT });
    const plain = parseSse((await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 3, stream: true })).text);
    expect(plain.done).toBe(true);
    for (const e of plain.events) expect(Object.keys(e.choices[0])).toEqual(COMPLETION_STREAM_CHOICE_0102);
    // serving_completion.py @ 61aa4b290 lines 406-410 set prompt_token_ids_to_return on a choice's first chunk with no
    // return_token_ids check; vLLM #27561 (a4fc21895) fixed that after 0.10.2.
    expect(plain.events.map((e) => e.choices[0].prompt_token_ids)).toEqual([ids, null, null]);
    expect(plain.events.map((e) => e.choices[0].token_ids)).toEqual([null, null, null]);

    const r = parseSse((await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 3, stream: true, return_token_ids: true, stream_options: { include_usage: true } })).text);
    const chunks = r.events.filter((e) => e.choices.length > 0);
    expect(chunks).toHaveLength(3);
    expect(chunks.map((e) => e.choices[0].prompt_token_ids)).toEqual([ids, null, null]);
    // token_ids: the chunk's delta (`as_list(output.token_ids)` of a DELTA output, line 449).
    expect(chunks.every((e) => e.choices[0].token_ids.length === 1)).toBe(true);
    const streamed = chunks.flatMap((e) => e.choices[0].token_ids);
    const whole = (await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 3, return_token_ids: true })).json().choices[0].token_ids;
    expect(streamed).toEqual(whole);
    // The usage chunk (exclude_none) has no choices and no token fields.
    expect(Object.keys(r.events.at(-1))).toEqual(['id', 'object', 'created', 'model', 'choices', 'usage']);

    // n = 2: has_echoed is per choice, so each choice's first chunk has the ids.
    const two = parseSse((await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 2, n: 2, stream: true })).text).events;
    for (const i of [0, 1]) expect(two.filter((e) => e.choices[0].index === i).map((e) => e.choices[0].prompt_token_ids)).toEqual([ids, null]);
  });

  it('streaming chat: prompt_token_ids on each role chunk only, token_ids on every content chunk (null unless asked)', async () => {
    const ids = await tokenize({ messages: MESSAGES });
    const plain = parseSse((await http(sim.url, 'POST', '/v1/chat/completions', { messages: MESSAGES, max_tokens: 2, stream: true })).text).events;
    // Set explicitly (None) on the role chunk and each content/finish choice, and dumped with exclude_unset
    // (serving_chat.py lines 596-598, 607, 991-992, 1060-1061, 1081): the keys are there, null.
    expect(Object.keys(plain[0])).toEqual(['id', 'object', 'created', 'model', 'choices', 'prompt_token_ids']);
    expect(plain[0].prompt_token_ids).toBeNull();
    expect(Object.keys(plain[0].choices[0])).toEqual(['index', 'delta', 'logprobs', 'finish_reason']);
    expect(Object.keys(plain[1])).toEqual(['id', 'object', 'created', 'model', 'choices']);
    expect(Object.keys(plain[1].choices[0])).toEqual(['index', 'delta', 'logprobs', 'finish_reason', 'token_ids']);
    expect(Object.keys(plain[2].choices[0])).toEqual(['index', 'delta', 'logprobs', 'finish_reason', 'stop_reason', 'token_ids']);
    expect(plain.slice(1).map((e) => e.choices[0].token_ids)).toEqual([null, null]);

    const r = parseSse((await http(sim.url, 'POST', '/v1/chat/completions', { messages: MESSAGES, max_tokens: 3, n: 2, stream: true, return_token_ids: true, stream_options: { include_usage: true, continuous_usage_stats: true } })).text);
    expect(r.done).toBe(true);
    const roles = r.events.filter((e) => e.choices[0]?.delta?.role !== undefined);
    expect(roles).toHaveLength(2);
    // prompt_token_ids follows usage, as ChatCompletionStreamResponse declares them (protocol.py lines 1813-1821).
    for (const e of roles) {
      expect(Object.keys(e)).toEqual(['id', 'object', 'created', 'model', 'choices', 'usage', 'prompt_token_ids']);
      expect(e.prompt_token_ids).toEqual(ids);
    }
    for (const e of r.events.filter((x) => !roles.includes(x))) expect('prompt_token_ids' in e).toBe(false);
    const whole = (await http(sim.url, 'POST', '/v1/chat/completions', { messages: MESSAGES, max_tokens: 3, return_token_ids: true })).json().choices[0].token_ids;
    for (const i of [0, 1]) {
      const mine = r.events.filter((e) => e.choices[0]?.index === i && !('role' in e.choices[0].delta));
      expect(mine.flatMap((e) => e.choices[0].token_ids)).toEqual(whole);
    }
  });

  it('completions honour the body\'s request_id, as chat does; X-Request-Id still wins (serving_completion.py line 120)', async () => {
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 1, request_id: 'mine' })).json().id).toBe('cmpl-mine');
    const h = await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'hdr' }, body: JSON.stringify({ prompt: 'x', max_tokens: 1, request_id: 'mine' }) });
    expect(((await h.json()) as any).id).toBe('cmpl-hdr');
    // `request_id: str`: "" falls back to a uuid (`default or random_uuid()`); a number is pydantic's string_type.
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 1, request_id: '' })).json().id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    const bad = await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 1, request_id: 5 });
    expect(bad.status).toBe(400);
    expect(bad.json().error.message).toBe("[{'type': 'string_type', 'loc': ('body', 'request_id'), 'msg': 'Input should be a valid string', 'input': 5}]");
  });
});

describe('vLLM 0.10.0 mode (builtin): no token id fields, return_token_ids and a completion request_id are ignored extras', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: [MODEL] });
  });
  afterAll(() => sim.close());

  it('bodies and chunks keep 0.10.0\'s keys whatever return_token_ids says (protocol.py @ 6eca337ce)', async () => {
    for (const extra of [{}, { return_token_ids: true }, { return_token_ids: 'maybe' }]) {
      const c = await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 2, ...extra });
      expect(c.status).toBe(200);
      expect(Object.keys(c.json().choices[0])).toEqual(['index', 'text', 'logprobs', 'finish_reason', 'stop_reason', 'prompt_logprobs']);
      const chat = (await http(sim.url, 'POST', '/v1/chat/completions', { messages: MESSAGES, max_tokens: 2, ...extra })).json();
      expect(Object.keys(chat)).toEqual(['id', 'object', 'created', 'model', 'choices', 'service_tier', 'system_fingerprint', 'usage', 'prompt_logprobs', 'kv_transfer_params']);
      expect(Object.keys(chat.choices[0])).toEqual(['index', 'message', 'logprobs', 'finish_reason', 'stop_reason']);
      const cs = parseSse((await http(sim.url, 'POST', '/v1/completions', { prompt: PROMPT, max_tokens: 2, stream: true, ...extra })).text).events;
      for (const e of cs) expect(Object.keys(e.choices[0])).toEqual(['index', 'text', 'logprobs', 'finish_reason', 'stop_reason']);
      const hs = parseSse((await http(sim.url, 'POST', '/v1/chat/completions', { messages: MESSAGES, max_tokens: 2, stream: true, ...extra })).text).events;
      expect(Object.keys(hs[0])).toEqual(['id', 'object', 'created', 'model', 'choices']);
      expect(Object.keys(hs[1].choices[0])).toEqual(['index', 'delta', 'logprobs', 'finish_reason']);
      expect(Object.keys(hs[2].choices[0])).toEqual(['index', 'delta', 'logprobs', 'finish_reason', 'stop_reason']);
    }
  });

  it('a completion\'s body request_id is not read (serving_completion.py @ 6eca337ce line 116: `_base_request_id(raw_request)`)', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 1, request_id: 'mine' });
    expect(r.json().id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    // Not a field of 0.10.0's CompletionRequest, so not even type-checked.
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 1, request_id: 5 })).status).toBe(200);
    // Chat's was already there in 0.10.0.
    expect((await http(sim.url, 'POST', '/v1/chat/completions', { messages: MESSAGES, max_tokens: 1, request_id: 'mine' })).json().id).toBe('chatcmpl-mine');
  });
});
