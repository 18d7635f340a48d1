/**
 * Audit 27: the HTTP surface against vLLM 0.10.0 (6eca337ce) and 0.10.2 (61aa4b290). Each test names the upstream
 * file it mirrors.
 */
import { request as httpRequest } from 'node:http';
import { parseCli } from '../src/cli';
import { startSimulator, type Simulator } from '../src/server';
import { http, parseSse } from './helpers';

const MODEL = 'Qwen/Qwen3-0.6B';
const chat = (content = 'hi') => ({ messages: [{ role: 'user', content }] });
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] },
  },
};

describe('audit 27 (0.10.0 mode)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: [MODEL] });
  });
  afterAll(() => sim.close());

  it('F1: chat context-length errors end in " None" (serving_chat.py @ 6eca337ce lines 207-209: f"{e} {e.__cause__}"); completions do not (str(e))', async () => {
    const c = await http(sim.url, 'POST', '/v1/chat/completions', { ...chat(), max_tokens: 40960 });
    expect(c.status).toBe(400);
    expect(c.json().message).toMatch(/^This model's maximum context length is 40960 tokens\. However, you requested 409\d\d tokens \(\d+ in the messages, 40960 in the completion\)\. Please reduce the length of the messages or completion\. None$/);
    const p = await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 40960 });
    expect(p.json().message).toBe("This model's maximum context length is 40960 tokens. However, you requested 40961 tokens (1 in the messages, 40960 in the completion). Please reduce the length of the messages or completion.");
  });

  it('F4: GET /metrics is the Instrumentator route (api_server.py @ 6eca337ce lines 342-359, instrumentation.py @ v7.1.0): text 0.0.4, never gzip or OpenMetrics', async () => {
    const res = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const req = httpRequest(`${sim.url}/metrics`, {
        headers: { accept: 'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1', 'accept-encoding': 'gzip' },
      }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ headers: r.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.body.toString('utf8')).toContain('# TYPE vllm:num_requests_running gauge');
    // The mount below it (/metrics/…) is make_asgi_app, which negotiates, for any method.
    const mount = await fetch(`${sim.url}/metrics/x`, { method: 'POST', headers: { accept: 'application/openmetrics-text', 'accept-encoding': 'gzip' } });
    expect(mount.status).toBe(200);
    expect(mount.headers.get('content-type')).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(mount.headers.get('content-encoding')).toBe('gzip');
    // fetch inflates the body itself.
    expect((await mount.text()).endsWith('# EOF\n')).toBe(true);
    // The mount's path_regex is widened to ^/metrics(?P<path>.*)$, so POST /metrics is the mount's, not the GET
    // route's 405 (audit 39).
    expect((await http(sim.url, 'POST', '/metrics')).status).toBe(200);
  });

  describe('F5: tool_choice (protocol.py check_tool_usage @ 6eca337ce lines 832-890; serving_chat.py lines 625-700, 1014-1048)', () => {
    const body = (tool_choice: unknown, extra: Record<string, unknown> = {}) => ({ ...chat(), tools: [WEATHER], tool_choice, ...extra });
    const usageMsg = 'Correct usage: `{"type": "function", "function": {"name": "my_function"}}`';
    const refused = async (tool_choice: unknown, text: string) => {
      const r = await http(sim.url, 'POST', '/v1/chat/completions', body(tool_choice));
      expect(r.status).toBe(400);
      expect(r.json().type).toBe('Bad Request');
      // Python's repr of the msg: double quotes when it has a ' and no ", else single quotes with \' escaped.
      const msg = `Value error, ${text}`;
      const repr = msg.includes("'") && !msg.includes('"') ? `"${msg}"` : `'${msg.replace(/'/g, "\\'")}'`;
      expect(r.json().message).toContain(`'loc': ('body',), 'msg': ${repr}`);
    };

    it('named tool_choice validation: the exact messages of check_tool_usage', async () => {
      await refused({ type: 'function', function: { name: 'nope' } }, 'The tool specified in `tool_choice` does not match any of the specified `tools`');
      await refused({ type: 'function', function: 'x' }, `Invalid value for \`function\`: \`x\` in \`tool_choice\`! ${usageMsg}`);
      await refused({ type: 'function' }, `Invalid value for \`function\`: \`None\` in \`tool_choice\`! ${usageMsg}`);
      await refused({ type: 'function', function: {} }, `Expected field \`name\` in \`function\` in \`tool_choice\`! ${usageMsg}`);
      await refused({ type: 'function', function: { name: '' } }, `Invalid \`name\` in \`function\`: \`\` in \`tool_choice\`! ${usageMsg}`);
      await refused({ type: 'function', function: { name: 5 } }, `Invalid \`name\` in \`function\`: \`5\` in \`tool_choice\`! ${usageMsg}`);
      await refused(['a', 1], 'Invalid value for `tool_choice`: [\'a\', 1]! Only named tools, "none", "auto" or "required" are supported.');
      // A tool without function.name: check_tool_usage's KeyError escapes pydantic, Starlette's plain-text 500.
      const r = await http(sim.url, 'POST', '/v1/chat/completions', { ...chat(), tools: [{ type: 'function' }], tool_choice: { type: 'function', function: { name: 'x' } } });
      expect(r.status).toBe(500);
      expect(r.text).toBe('Internal Server Error');
    });

    it('named tool: content "" and one tool call whose arguments are the guided JSON; completion_tokens are its tokens', async () => {
      const r = await http(sim.url, 'POST', '/v1/chat/completions', body({ type: 'function', function: { name: 'get_weather' } }, { max_tokens: 100 }));
      expect(r.status).toBe(200);
      const choice = r.json().choices[0];
      expect(choice.message.content).toBe('');
      expect(choice.message.tool_calls).toEqual([{ id: expect.stringMatching(/^chatcmpl-tool-[0-9a-f]{32}$/), type: 'function', function: { name: 'get_weather', arguments: '{"city": "", "unit": "celsius"}' } }]);
      expect(choice.finish_reason).toBe('stop');
      const tokens = (await http(sim.url, 'POST', '/tokenize', { prompt: '{"city": "", "unit": "celsius"}', add_special_tokens: false })).json().count;
      expect(r.json().usage.completion_tokens).toBe(tokens);
      // Cut by max_tokens: the partial JSON is the arguments, finish_reason "length".
      const cut = (await http(sim.url, 'POST', '/v1/chat/completions', body({ type: 'function', function: { name: 'get_weather' } }, { max_tokens: 3 }))).json();
      expect(cut.choices[0].finish_reason).toBe('length');
      expect(cut.usage.completion_tokens).toBe(3);
      expect('{"city": "", "unit": "celsius"}'.startsWith(cut.choices[0].message.tool_calls[0].function.arguments)).toBe(true);
      // A tool without parameters guides nothing (`_get_guided_json_from_tool() or self.guided_json` is None): the
      // reply is the filler, still shown as the call's arguments.
      const free = (await http(sim.url, 'POST', '/v1/chat/completions', { ...chat(), tools: [{ type: 'function', function: { name: 'ping' } }], tool_choice: { type: 'function', function: { name: 'ping' } }, max_tokens: 2 })).json();
      expect(free.choices[0].message).toMatchObject({ content: '', tool_calls: [{ type: 'function', function: { name: 'ping', arguments: 'The quick' } }] });
    });

    it('named tool streaming: delta.tool_calls, the first with id, type and name, the rest arguments only', async () => {
      const r = await http(sim.url, 'POST', '/v1/chat/completions', body({ type: 'function', function: { name: 'get_weather' } }, { max_tokens: 100, stream: true }));
      const { events, done } = parseSse(r.text);
      expect(done).toBe(true);
      expect(events[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
      const calls = events.slice(1).map((e) => e.choices[0].delta.tool_calls[0]);
      expect(Object.keys(calls[0])).toEqual(['id', 'type', 'index', 'function']);
      expect(calls[0]).toMatchObject({ type: 'function', index: 0, function: { name: 'get_weather' } });
      expect(calls.slice(1).every((c) => Object.keys(c).join() === 'index,function' && Object.keys(c.function).join() === 'arguments')).toBe(true);
      expect(calls.map((c) => c.function.arguments).join('')).toBe('{"city": "", "unit": "celsius"}');
      expect(events.at(-1).choices[0].finish_reason).toBe('stop');
    });

    it('"required": tool calls parsed from [{"name", "parameters"}], arguments = json.dumps(parameters, ensure_ascii=False); cut short, pydantic\'s 400', async () => {
      const r = await http(sim.url, 'POST', '/v1/chat/completions', body('required', { max_tokens: 100 }));
      expect(r.status).toBe(200);
      const choice = r.json().choices[0];
      expect(choice.message.content).toBe('');
      expect(choice.message.tool_calls).toEqual([{ id: expect.stringMatching(/^chatcmpl-tool-[0-9a-f]{32}$/), type: 'function', function: { name: 'get_weather', arguments: '{"city": "", "unit": "celsius"}' } }]);
      const text = '[{"name": "get_weather", "parameters": {"city": "", "unit": "celsius"}}]';
      expect(r.json().usage.completion_tokens).toBe((await http(sim.url, 'POST', '/tokenize', { prompt: text, add_special_tokens: false })).json().count);
      const cut = await http(sim.url, 'POST', '/v1/chat/completions', body('required', { max_tokens: 2 }));
      expect(cut.status).toBe(400);
      expect(cut.json().type).toBe('BadRequestError');
      expect(cut.json().message).toMatch(/^1 validation error for list\[FunctionDefinition\]\n {2}Invalid JSON: EOF while parsing a string at line 1 column \d+ \[type=json_invalid, input_value='\[\{"[^']*', input_type=str\]\n {4}For further information visit https:\/\/errors\.pydantic\.dev\/2\.11\/v\/json_invalid$/);
    });

    it('"required" streaming: extract_tool_call_required_streaming\'s deltas (name once the parameters start, closing brackets filtered)', async () => {
      const r = await http(sim.url, 'POST', '/v1/chat/completions', body('required', { max_tokens: 100, stream: true }));
      const { events, done } = parseSse(r.text);
      expect(done).toBe(true);
      const calls = events.slice(1).map((e) => e.choices[0].delta.tool_calls[0]);
      expect(calls[0]).toMatchObject({ type: 'function', index: 0, function: { name: 'get_weather' } });
      expect(calls.slice(1).every((c) => c.function.name === null)).toBe(true);
      // The outer object's and the list's closing brackets are filtered out.
      expect(calls.map((c) => c.function.arguments).join('')).toBe('{"city": "", "unit": "celsius"}');
    });
  });

  it('F6: /tokenize takes TokenizeCompletionRequest / TokenizeChatRequest fields only; sampling fields are ignored extras (protocol.py @ 6eca337ce lines 1829-1909)', async () => {
    for (const extra of [{ stream_options: { include_usage: true }, truncate_prompt_tokens: 0 }, { logprobs: -1 }, { max_tokens: 'abc' }, { temperature: 'x' }]) {
      const r = await http(sim.url, 'POST', '/tokenize', { prompt: 'hi', ...extra });
      expect(r.status).toBe(200);
      expect(r.json().count).toBe(1);
    }
    const c = await http(sim.url, 'POST', '/tokenize', { ...chat(), top_logprobs: 3, tool_choice: { type: 'function', function: { name: 'x' } } });
    expect(c.status).toBe(200);
    // Its own fields are still checked: add_special_tokens is a bool, check_generation_prompt applies.
    expect((await http(sim.url, 'POST', '/tokenize', { prompt: 'hi', add_special_tokens: 'x' })).json().message).toContain("'add_special_tokens'");
    expect((await http(sim.url, 'POST', '/tokenize', { ...chat(), continue_final_message: true, add_generation_prompt: true })).json().message).toContain('Cannot set both');
  });

  it('F7: best_of ≠ n with stream → JSON 400 "best_of must equal n to use output_kind=DELTA" on both endpoints (sampling_params.py @ 6eca337ce lines 304-319, 438-440)', async () => {
    for (const [path, b] of [['/v1/chat/completions', chat()], ['/v1/completions', { prompt: 'hi' }]] as const) {
      const r = await http(sim.url, 'POST', path, { ...b, best_of: 2, stream: true });
      expect(r.status).toBe(400);
      expect(r.json()).toEqual({ object: 'error', message: 'best_of must equal n to use output_kind=DELTA', type: 'BadRequestError', param: null, code: 400 });
    }
    // __post_init__ refuses best_of < n before _verify_args (best_of -1 is not "at least 1" first).
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', best_of: -1 })).json().message).toBe('best_of must be greater than or equal to n, got n=1 and best_of=-1.');
    // Greedy sampling counts n = best_of.
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', best_of: 2, temperature: 0 })).json().message).toBe('n must be 1 when using greedy sampling, got 2.');
  });

  it("F8: hand-raised RequestValidationError messages are ' ' + the list's repr (api_server.py @ 6eca337ce lines 317-323, 510-511, 1485-1500)", async () => {
    const r = await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"prompt":"hi"}' });
    expect(await r.json()).toEqual({ object: 'error', message: ` ["Unsupported Media Type: Only 'application/json' is allowed"]`, type: 'Bad Request', param: null, code: 400 });
    const d = await http(sim.url, 'POST', '/detokenize', { tokens: [-1] });
    expect(d.status).toBe(400);
    expect(d.json().message).toBe(" ['out of range integral type conversion attempted']");
  });

  it('F9: seed is a 64-bit signed int (protocol.py @ 6eca337ce lines 394, 930: Field(ge=_LONG_INFO.min, le=_LONG_INFO.max))', async () => {
    const big = await http(sim.url, 'POST', '/v1/completions', '{"prompt":"hi","max_tokens":1,"seed":99999999999999999999}');
    expect(big.status).toBe(400);
    expect(big.json().message).toBe("[{'type': 'less_than_equal', 'loc': ('body', 'seed'), 'msg': 'Input should be less than or equal to 9223372036854775807', 'input': 99999999999999999999, 'ctx': {'le': 9223372036854775807}}]");
    const low = await http(sim.url, 'POST', '/v1/chat/completions', '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"seed":-9223372036854775809}');
    expect(low.json().message).toContain("'type': 'greater_than_equal', 'loc': ('body', 'seed')");
    for (const seed of ['9223372036854775807', '-9223372036854775808', '-1', '0']) {
      expect((await http(sim.url, 'POST', '/v1/completions', `{"prompt":"hi","max_tokens":1,"seed":${seed}}`)).status).toBe(200);
    }
  });

  it('F10: a stream error event is json.dumps with its default separators and ensure_ascii (serving_engine.py @ 6eca337ce lines 418-429)', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: [151700], stream: true });
    expect(r.text).toBe('data: {"error": {"object": "error", "message": "Token id 151700 is out of vocabulary", "type": "BadRequestError", "param": null, "code": 400}}\n\ndata: [DONE]\n\n');
  });

  it("F10: a trailing-slash path gets Starlette's redirect_slashes 307 to the path without it (starlette/routing.py Router.app)", async () => {
    for (const [method, path, to] of [['GET', '/v1/models/', '/v1/models'], ['POST', '/v1/chat/completions/', '/v1/chat/completions'], ['GET', '/health//?x=1', '/health?x=1']] as const) {
      const r = await fetch(`${sim.url}${path}`, { method, redirect: 'manual' });
      expect(r.status).toBe(307);
      expect(r.headers.get('location')).toBe(`${sim.url}${to}`);
    }
    expect((await http(sim.url, 'GET', '/nope/')).status).toBe(404);
  });
});

describe('audit 27 (0.10.2 mode: a 0.10.2 hash algorithm)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, prefixCachingHashAlgo: 'sha256_cbor', maxModelLen: 64 });
  });
  afterAll(() => sim.close());

  it("F2: serving_engine.py @ 61aa4b290 lines 672-686 (#22803): prompt >= max_model_len first, then the 'max_tokens' … too large message; chat adds ' None'", async () => {
    const over = await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 64 });
    expect(over.json()).toEqual({ error: { message: "'max_tokens' or 'max_completion_tokens' is too large: 64. This model's maximum context length is 64 tokens and your request has 1 input tokens (64 > 64 - 1).", type: 'BadRequestError', param: null, code: 400 } });
    // The boundary is the same `>`: 1 + 63 fills the context exactly and is served (#22803 kept `>`, lines 679-686).
    const fits = await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 63 });
    expect(fits.status).toBe(200);
    expect(fits.json().usage.prompt_tokens).toBe(1);
    const long = await http(sim.url, 'POST', '/v1/completions', { prompt: new Array(64).fill(785), max_tokens: 1 });
    expect(long.json().error.message).toBe("This model's maximum context length is 64 tokens. However, your request has 64 input tokens. Please reduce the length of the input messages.");
    const c = await http(sim.url, 'POST', '/v1/chat/completions', { ...chat(), max_tokens: 64 });
    expect(c.json().error.message).toMatch(/^'max_tokens' or 'max_completion_tokens' is too large: 64\. This model's maximum context length is 64 tokens and your request has \d+ input tokens \(64 > 64 - \d+\)\. None$/);
  });

  it('F9: truncate_prompt_tokens -1 keeps the last max_model_len tokens, 0 is SamplingParams\' 400 (protocol.py @ 61aa4b290 line 456, sampling_params.py lines 418-423)', async () => {
    const ids = new Array(70).fill(785);
    // -1 truncates to max_model_len, which _validate_input then refuses (prompt >= max_model_len).
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: ids, max_tokens: 1, truncate_prompt_tokens: -1 })).json().error.message).toMatch(/your request has 64 input tokens/);
    const ok = await http(sim.url, 'POST', '/v1/completions', { prompt: [1, 2, 3], max_tokens: 1, truncate_prompt_tokens: -1 });
    expect(ok.status).toBe(200);
    expect(ok.json().usage.prompt_tokens).toBe(3);
    const zero = await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 1, truncate_prompt_tokens: 0 });
    expect(zero.json().error.message).toBe('truncate_prompt_tokens must be an integer >= 1 or -1, got 0');
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 1, truncate_prompt_tokens: -2 })).json().error.message).toContain("'ge': -1");
  });

  it('F10: a 0.10.2 stream error event is json.dumps of the ErrorResponse (serving_engine.py @ 61aa4b290 lines 454-464)', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: [151700], stream: true, max_tokens: 1 });
    expect(r.text).toBe('data: {"error": {"message": "Token id 151700 is out of vocabulary", "type": "BadRequestError", "param": null, "code": 400}}\n\ndata: [DONE]\n\n');
  });

  it('F5: a streamed named tool call finishes "tool_calls" in 0.10.2 (tools_streamed, serving_chat.py @ 61aa4b290 lines 1047-1052)', async () => {
    const s2 = await startSimulator({ port: 0, timeScale: 1000, prefixCachingHashAlgo: 'sha256_cbor' });
    try {
      const r = await http(s2.url, 'POST', '/v1/chat/completions', { ...chat(), tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 40, stream: true });
      const { events } = parseSse(r.text);
      expect(events.at(-1).choices[0].finish_reason).toBe('tool_calls');
      expect(events.slice(1).map((e) => e.choices[0].delta.tool_calls[0].function.arguments).join('')).toBe('{"city": "", "unit": "celsius"}');
      // "required" streaming is not simulated in 0.10.2 mode (its previous_texts get each delta twice).
      expect((await http(s2.url, 'POST', '/v1/chat/completions', { ...chat(), tools: [WEATHER], tool_choice: 'required', stream: true })).status).toBe(501);
    } finally {
      await s2.close();
    }
  });
});

describe('F10: --served-model-name is nargs="+" (vllm/engine/arg_utils.py @ 6eca337ce lines 211-219)', () => {
  it('takes several space-separated names, and still the comma form', () => {
    const opts = (argv: string[]) => {
      const r = parseCli(argv);
      if (r.kind !== 'run') throw new Error('help');
      return r.options;
    };
    expect(opts(['--served-model-name', 'a', 'b', '--port', '0'])).toMatchObject({ model: 'Qwen/Qwen3-0.6B', servedModelNames: ['a', 'b'] });
    expect(opts(['--served-model-name', 'a,b'])).toMatchObject({ servedModelNames: ['a', 'b'] });
  });
});
