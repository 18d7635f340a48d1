import * as fs from 'node:fs';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import * as path from 'node:path';
import { ManualClock } from '../src/clock';
import { parseCli } from '../src/cli';
import { runtimeLoraUpdatingFromEnv, serverDevModeFromEnv } from '../src/options';
import { pythonUnquote, startSimulator, type Simulator } from '../src/server';
import { http, longText, metricValue, openStream, parsePrometheus, parseSse, waitFor } from './helpers';

const MODEL = 'Qwen/Qwen3-0.6B';

describe('OpenAI API over loopback', () => {
  let sim: Simulator;
  beforeAll(async () => {
    // 1000× faster than real time: a modelled 1 s TTFT takes 1 ms of wall time.
    sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: [MODEL, 'qwen'], podName: 'pod-a', enablePromptTokensDetails: true, simExtension: true });
  });
  afterAll(() => sim.close());

  // uvicorn (vLLM's server) acts on `Expect: 100-continue` only and serves a request with any other expectation as
  // usual (uvicorn protocols/http/httptools_impl.py on_header: `if name == b"expect" and value.lower() ==
  // b"100-continue"`), where Node answers 417 itself. kvroute's gateway forwards such an Expect, as Envoy does.
  it('serves a request with an Expect other than 100-continue, as uvicorn does (no 417)', async () => {
    const body = JSON.stringify({ model: MODEL, prompt: 'hi', max_tokens: 2 });
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = httpRequest(`${sim.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: 'x-custom' },
      }, (res: IncomingMessage) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(status).toBe(200);
  });

  // uvicorn protocols/http/httptools_impl.py on_header: `value.lower() == b"100-continue"`, the whole value.
  it('answers no 100 Continue to an Expect list holding 100-continue, as uvicorn compares the whole value', async () => {
    const body = JSON.stringify({ model: MODEL, prompt: 'hi', max_tokens: 2 });
    const socket = connect(Number(new URL(sim.url).port), '127.0.0.1');
    let out = '';
    socket.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    try {
      socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue, x-foo\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await waitFor(() => out.includes('\r\n\r\n'), 'the response head');
      expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    } finally {
      socket.destroy();
    }
  });

  // uvicorn picks httptools when it is installed (uvicorn[standard], as vLLM installs it), and neither its protocol
  // (uvicorn protocols/http/httptools_impl.py @ 0.35.0: on_url / on_header append, no size check; vLLM's
  // h11_max_incomplete_event_size applies to the h11 protocol only) nor httptools (parser.pyx @ v0.8.0, llhttp has no
  // head limit of its own) caps a request head. Node's server answers 431 past 16 KiB (--max-http-header-size), so a
  // request with a big header that Envoy lets through (up to 60 KiB) would fail on the simulator and not on vLLM.
  it('serves a request whose head is 48 KiB (over Node\'s 16 KiB default), as uvicorn with httptools does', async () => {
    const body = JSON.stringify({ model: MODEL, prompt: 'hi', max_tokens: 2 });
    const socket = connect(Number(new URL(sim.url).port), '127.0.0.1');
    let out = '';
    socket.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    try {
      socket.write(`POST /v1/completions?q=${'u'.repeat(16 * 1024)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n`
        + `X-Big: ${'a'.repeat(32 * 1024)}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await waitFor(() => out.includes('\r\n\r\n'), 'the response head');
      expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    } finally {
      socket.destroy();
    }
  });

  // uvicorn's httptools protocol answers a request its parser refuses with its own 400 and closes
  // (protocols/http/httptools_impl.py @ 0.35.0 data_received: HttpParserError → send_400_response("Invalid HTTP request
  // received."), the server state's default headers, date then server, first), where Node writes a bare 400.
  it('answers a request the parser refuses with uvicorn\'s 400 body and closes the connection', async () => {
    for (const request of ['GET /health HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n', 'get /health HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const socket = connect(Number(new URL(sim.url).port), '127.0.0.1');
      let out = '';
      socket.on('data', (d: Buffer) => { out += d.toString('latin1'); });
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.write(request);
      await closed;
      const [head, body] = out.split('\r\n\r\n');
      const lines = head!.split('\r\n');
      expect(lines[0]).toBe('HTTP/1.1 400 Bad Request');
      expect(lines.slice(1).map((l) => l.split(':')[0]!.toLowerCase())).toEqual(['date', 'server', 'content-type', 'content-length', 'connection']);
      expect(lines.slice(2)).toEqual(['server: uvicorn', 'content-type: text/plain; charset=utf-8', 'content-length: 30', 'connection: close']);
      expect(body).toBe('Invalid HTTP request received.');
    }
  });

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

  it('truncate_prompt_tokens keeps the prompt\'s last N tokens (serving_engine.py _normalize_prompt_{text,tokens}_to_input, tokenizer truncation_side "left" @ v0.10.0)', async () => {
    const ids = [785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13];
    const tail = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: ids.slice(-4), max_tokens: 1, echo: true });
    const cut = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: ids, max_tokens: 1, echo: true, truncate_prompt_tokens: 4 });
    expect(cut.status).toBe(200);
    expect(cut.json().usage.prompt_tokens).toBe(4);
    // A token-id prompt's echo is decoded from the kept tokens.
    expect(cut.json().choices[0].text).toBe(tail.json().choices[0].text);
    // A text prompt keeps its whole text as the echo; only its tokens are cut. Longer than the prompt: nothing is cut.
    const text = longText(200, 3);
    const whole = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: text, max_tokens: 1 })).json().usage.prompt_tokens;
    const cutText = (await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: text, max_tokens: 1, echo: true, truncate_prompt_tokens: 16 })).json();
    expect(cutText.usage.prompt_tokens).toBe(16);
    expect(cutText.choices[0].text.startsWith(text)).toBe(true);
    expect((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: text, max_tokens: 1, truncate_prompt_tokens: whole + 5 })).json().usage.prompt_tokens).toBe(whole);
    const chat = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: text }], max_tokens: 1, truncate_prompt_tokens: 8 });
    expect(chat.json().usage.prompt_tokens).toBe(8);
    // Field(ge=1): 0 is pydantic's greater_than_equal error, with its ctx.
    const zero = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', truncate_prompt_tokens: 0 });
    expect(zero.status).toBe(400);
    expect(zero.json().message).toBe("[{'type': 'greater_than_equal', 'loc': ('body', 'truncate_prompt_tokens'), 'msg': 'Input should be greater than or equal to 1', 'input': 0, 'ctx': {'ge': 1}}]");
  });

  // vLLM 0.10.0 appends a content part only `if parse_res:` (_parse_chat_message_content_parts, chat_utils.py): in the
  // "string" format an empty text part's parse result is "", dropped before the "\n" join; in the "openai" format it
  // is {'type': 'text', 'text': ''} and stays.
  it('empty text parts: dropped before the join in the "string" format, kept in the "openai" one (chat_utils.py `if parse_res:` @ v0.10.0)', async () => {
    const tokens = async (content: unknown, extra: Record<string, unknown> = {}) =>
      (await http(sim.url, 'POST', '/tokenize', { model: MODEL, messages: [{ role: 'user', content }], ...extra })).json().tokens;
    expect(await tokens([{ type: 'text', text: '' }, { type: 'text', text: 'b' }])).toEqual(await tokens('b'));
    expect(await tokens([{ type: 'text', text: 'a' }, { type: 'text', text: '' }, { type: 'text', text: 'b' }])).toEqual(await tokens('a\nb'));
    const openai = { chat_template: '{% for m in messages %}{% for p in m.content %}[{{ p.text }}]{% endfor %}{% endfor %}' };
    const rendered = async (text: string) => (await http(sim.url, 'POST', '/tokenize', { model: MODEL, prompt: text, add_special_tokens: false })).json().tokens;
    expect(await tokens([{ type: 'text', text: '' }, { type: 'text', text: 'b' }], openai)).toEqual(await rendered('[][b]'));
  });

  // vLLM 0.10.0: ChatCompletionRequest.documents is Optional[list[dict[str, str]]] (protocol.py), handed to the
  // template by serving_engine.py _preprocess_chat, whose chat_template_kwargs update the request's own arguments.
  it('chat: documents are validated as list[dict[str, str]]; chat_template_kwargs override the request\'s add_generation_prompt', async () => {
    const messages = [{ role: 'user', content: 'Summarize the manual.' }];
    const plain = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, max_tokens: 1, documents: [{ title: 'Manual', text: 'Press the red button.' }] });
    expect(plain.status).toBe(200);
    const bad = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, max_tokens: 1, documents: [{ title: 7 }] });
    expect(bad.status).toBe(400);
    expect(bad.json().message).toContain("'type': 'string_type', 'loc': ('body', 'documents', 0, 'title')");
    const withPrompt = (await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, max_tokens: 1 })).json().usage.prompt_tokens;
    const kwargs = await http(sim.url, 'POST', '/v1/chat/completions', {
      model: MODEL, messages, max_tokens: 1, add_generation_prompt: true, chat_template_kwargs: { add_generation_prompt: false },
    });
    // Qwen3's generation prompt is `<|im_start|>assistant\n`: three tokens fewer without it.
    expect(kwargs.json().usage.prompt_tokens).toBe(withPrompt - 3);
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
    // Chat chunks are dumped with exclude_unset: no "usage" key unless continuous_usage_stats (serving_chat.py @ v0.10.0).
    expect(events.slice(1, 4).every((e) => e.choices[0].finish_reason === null && !('usage' in e))).toBe(true);
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

  it('streaming completion without include_usage: every chunk has "usage": null, no usage chunk (serving_completion.py @ v0.10.0)', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'Hi', max_tokens: 3, stream: true });
    const { events, done } = parseSse(r.text);
    expect(done).toBe(true);
    expect(events.map((e) => e.choices[0].text)).toEqual(['The', ' quick', ' brown']);
    // Completion chunks are dumped with exclude_unset=False, so the unset usage is written as null.
    expect(events.every((e) => 'usage' in e && e.usage === null)).toBe(true);
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
    // vLLM 0.10's OutputProcessor.abort_requests drops a client-aborted request without stats.
    expect(metricValue(samples, 'vllm:request_success_total', { finished_reason: 'abort' })).toBe(0);
  });

  describe('errors (vLLM 0.10.0: flat {object:"error",message,type,param:null,code}; api_server.py, serving_engine.py @ v0.10.0)', () => {
    const expectError = async (path: string, body: unknown, status: number, type: string, message?: RegExp) => {
      const r = await http(sim.url, 'POST', path, body);
      expect(r.status).toBe(status);
      const e = r.json();
      expect(Object.keys(e)).toEqual(['object', 'message', 'type', 'param', 'code']);
      expect(e).toMatchObject({ object: 'error', type, param: null, code: status });
      if (message) expect(e.message).toMatch(message);
    };

    // protocol.py @ v0.10.0: `response_format: Optional[AnyResponseFormat]`, Union[ResponseFormat (type "text",
    // "json_object" or "json_schema"), StructuralTagResponseFormat (type "structural_tag", structures, triggers)]; when
    // neither member validates pydantic lists both members' errors.
    it('response_format is validated as the union vLLM types it', async () => {
      const chat = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 };
      const foo = await http(sim.url, 'POST', '/v1/chat/completions', { ...chat, response_format: { type: 'foo' } });
      expect(foo.status).toBe(400);
      expect(foo.json()).toEqual({
        object: 'error',
        message:
          "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'ResponseFormat', 'type'), 'msg': \"Input should be 'text', 'json_object' or 'json_schema'\", 'input': 'foo', 'ctx': {'expected': \"'text', 'json_object' or 'json_schema'\"}}, " +
          "{'type': 'literal_error', 'loc': ('body', 'response_format', 'StructuralTagResponseFormat', 'type'), 'msg': \"Input should be 'structural_tag'\", 'input': 'foo', 'ctx': {'expected': \"'structural_tag'\"}}, " +
          "{'type': 'missing', 'loc': ('body', 'response_format', 'StructuralTagResponseFormat', 'structures'), 'msg': 'Field required', 'input': {'type': 'foo'}}, " +
          "{'type': 'missing', 'loc': ('body', 'response_format', 'StructuralTagResponseFormat', 'triggers'), 'msg': 'Field required', 'input': {'type': 'foo'}}]",
        type: 'Bad Request',
        param: null,
        code: 400,
      });
      const str = await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 1, response_format: 'json' });
      expect(str.status).toBe(400);
      expect(str.json().message).toBe(
        "[{'type': 'model_type', 'loc': ('body', 'response_format', 'ResponseFormat'), 'msg': 'Input should be a valid dictionary or instance of ResponseFormat', 'input': 'json', 'ctx': {'class_name': 'ResponseFormat'}}, " +
          "{'type': 'model_type', 'loc': ('body', 'response_format', 'StructuralTagResponseFormat'), 'msg': 'Input should be a valid dictionary or instance of StructuralTagResponseFormat', 'input': 'json', 'ctx': {'class_name': 'StructuralTagResponseFormat'}}]",
      );
      for (const rf of [{ type: 'text' }, { type: 'json_object' }, { type: 'json_schema', json_schema: { name: 'x' } }, { type: 'structural_tag', structures: [], triggers: [] }, null]) {
        expect([rf, (await http(sim.url, 'POST', '/v1/chat/completions', { ...chat, response_format: rf })).status]).toEqual([rf, 200]);
      }
    });

    // api_server.py @ v0.10.0: `async def tokenize(request: TokenizeRequest, raw_request: Request)`, protocol.py's
    // `TokenizeRequest = Union[TokenizeCompletionRequest, TokenizeChatRequest]`. FastAPI validates the body against the
    // union; when no member validates, pydantic lists each member's errors in the union's order, each loc under the
    // member's class name, a missing field's error with the body as its input (as for response_format above). A body
    // one member takes is that member's, whatever the other's fields hold.
    describe('/tokenize validates its body as the TokenizeRequest union', () => {
      it.each([
        [
          {},
          "[{'type': 'missing', 'loc': ('body', 'TokenizeCompletionRequest', 'prompt'), 'msg': 'Field required', 'input': {}}, " +
            "{'type': 'missing', 'loc': ('body', 'TokenizeChatRequest', 'messages'), 'msg': 'Field required', 'input': {}}]",
        ],
        [
          { prompt: 5 },
          "[{'type': 'string_type', 'loc': ('body', 'TokenizeCompletionRequest', 'prompt'), 'msg': 'Input should be a valid string', 'input': 5}, " +
            "{'type': 'missing', 'loc': ('body', 'TokenizeChatRequest', 'messages'), 'msg': 'Field required', 'input': {'prompt': 5}}]",
        ],
        [
          { messages: 'hi' },
          "[{'type': 'missing', 'loc': ('body', 'TokenizeCompletionRequest', 'prompt'), 'msg': 'Field required', 'input': {'messages': 'hi'}}, " +
            "{'type': 'list_type', 'loc': ('body', 'TokenizeChatRequest', 'messages'), 'msg': 'Input should be a valid list', 'input': 'hi'}]",
        ],
        [
          { messages: [{ role: 'user', content: 'x' }], continue_final_message: true, add_generation_prompt: true },
          "[{'type': 'missing', 'loc': ('body', 'TokenizeCompletionRequest', 'prompt'), 'msg': 'Field required', 'input': {'messages': [{'role': 'user', 'content': 'x'}], 'continue_final_message': True, 'add_generation_prompt': True}}, " +
            "{'type': 'value_error', 'loc': ('body', 'TokenizeChatRequest'), 'msg': 'Value error, Cannot set both `continue_final_message` and `add_generation_prompt` to True.', 'input': {'messages': [{'role': 'user', 'content': 'x'}], 'continue_final_message': True, 'add_generation_prompt': True}, 'ctx': {'error': ValueError('Cannot set both `continue_final_message` and `add_generation_prompt` to True.')}}]",
        ],
      ])('%j: both members\' errors', async (body, message) => {
        await expectError('/tokenize', body, 400, 'Bad Request');
        expect((await http(sim.url, 'POST', '/tokenize', body)).json().message).toBe(message);
      });

      it('a body the completion member takes is tokenized as a prompt, whatever its messages hold (an ignored extra there)', async () => {
        const r = await http(sim.url, 'POST', '/tokenize', { prompt: 'Hello world', messages: 'not a list' });
        expect(r.status).toBe(200);
        expect(r.json().tokens).toEqual((await http(sim.url, 'POST', '/tokenize', { prompt: 'Hello world' })).json().tokens);
      });
    });

    // protocol.py @ v0.10.0: `skip_special_tokens: bool = True` (both requests), `parallel_tool_calls: Optional[bool] =
    // False` (chat), `guided_choice: Optional[list[str]]` (both): pydantic's error list as FastAPI's 400.
    it.each([
      ['/v1/chat/completions', 'skip_special_tokens', 'maybe', "[{'type': 'bool_parsing', 'loc': ('body', 'skip_special_tokens'), 'msg': 'Input should be a valid boolean, unable to interpret input', 'input': 'maybe'}]"],
      ['/v1/completions', 'skip_special_tokens', null, "[{'type': 'bool_type', 'loc': ('body', 'skip_special_tokens'), 'msg': 'Input should be a valid boolean', 'input': None}]"],
      ['/v1/chat/completions', 'parallel_tool_calls', 'x', "[{'type': 'bool_parsing', 'loc': ('body', 'parallel_tool_calls'), 'msg': 'Input should be a valid boolean, unable to interpret input', 'input': 'x'}]"],
      ['/v1/chat/completions', 'guided_choice', 5, "[{'type': 'list_type', 'loc': ('body', 'guided_choice'), 'msg': 'Input should be a valid list', 'input': 5}]"],
      ['/v1/completions', 'guided_choice', ['a', 1], "[{'type': 'string_type', 'loc': ('body', 'guided_choice', 1), 'msg': 'Input should be a valid string', 'input': 1}]"],
    ])('%s: %s = %j is a validation 400', async (path, field, value, message) => {
      const body = path === '/v1/completions' ? { prompt: 'hi', max_tokens: 1 } : { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 };
      const r = await http(sim.url, 'POST', path, { ...body, [field]: value });
      expect(r.json()).toEqual({ object: 'error', message, type: 'Bad Request', param: null, code: 400 });
    });

    // protocol.py @ v0.10.0 check_guided_decoding_count, a mode="before" model validator of both requests.
    it.each(['/v1/chat/completions', '/v1/completions'])('two kinds of guided decoding on %s are refused', async (path) => {
      const body = path === '/v1/completions' ? { prompt: 'hi', max_tokens: 1 } : { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 };
      const r = await http(sim.url, 'POST', path, { ...body, guided_json: { type: 'object' }, guided_regex: 'a+' });
      expect(r.status).toBe(400);
      expect(r.json().message).toMatch(/^\[\{'type': 'value_error', 'loc': \('body',\), 'msg': "Value error, You can only use one kind of guided decoding \('guided_json', 'guided_regex' or 'guided_choice'\)\."/);
      expect((await http(sim.url, 'POST', path, { ...body, guided_json: { type: 'object' }, guided_regex: null, guided_choice: ['a'] })).status).toBe(400);
      expect((await http(sim.url, 'POST', path, { ...body, guided_regex: 'a+', guided_json: null })).status).toBe(200);
    });

    // protocol.py @ v0.10.0 get_logits_processors, called first by to_sampling_params: without
    // --logits-processor-pattern, `elif processors: raise ValueError(...)`, answered create_error_response(str(e)).
    it.each([false, true])('logits_processors is refused without --logits-processor-pattern (stream %s): a JSON 400', async (stream) => {
      for (const body of [{ prompt: 'hi', max_tokens: 1 }, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }]) {
        const path = 'prompt' in body ? '/v1/completions' : '/v1/chat/completions';
        const r = await http(sim.url, 'POST', path, { ...body, stream, logits_processors: ['my.mod.Proc'] });
        expect(r.json()).toEqual({
          object: 'error',
          message: 'The `logits_processors` argument is not supported by this server. See --logits-processor-pattern engine argugment for more information.',
          type: 'BadRequestError',
          param: null,
          code: 400,
        });
        expect((await http(sim.url, 'POST', path, { ...body, stream, logits_processors: [] })).status).toBe(200);
      }
    });

    // vllm/v1/engine/processor.py @ v0.10.0 _validate_sampling_params: `if not params.allowed_token_ids: raise
    // ValueError("allowed_token_ids is not None and empty!")`; every id within model_config.get_vocab_size() (151936 for
    // Qwen3), else "allowed_token_ids contains out-of-vocab token id!". A processor check: a JSON 400 unless streamed.
    it.each([
      [[151936], 'allowed_token_ids contains out-of-vocab token id!'],
      [[-1], 'allowed_token_ids contains out-of-vocab token id!'],
      [[], 'allowed_token_ids is not None and empty!'],
    ])('allowed_token_ids %j is refused on completions (an ignored extra on chat, whose request model has no such field)', async (ids, message) => {
      const r = await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 1, allowed_token_ids: ids });
      expect(r.json()).toEqual({ object: 'error', message, type: 'BadRequestError', param: null, code: 400 });
      expect((await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, allowed_token_ids: ids })).status).toBe(200);
      expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 1, allowed_token_ids: [0, 151935] })).status).toBe(200);
    });

    // fastapi/routing.py get_request_handler: `json_body = await request.json()` is None for `null`, and
    // fastapi/dependencies/utils.py _validate_value_with_model_field answers a None value of the required body with
    // get_missing_field_error(loc=('body',)), the same 400 as an empty body (validation_exception_handler, api_server.py
    // @ v0.10.0).
    it.each(['/v1/completions', '/v1/chat/completions', '/tokenize', '/v1/responses'])("a JSON null body on %s is FastAPI's missing-body error, as an empty one", async (path) => {
      const empty = await http(sim.url, 'POST', path, '');
      const nul = await http(sim.url, 'POST', path, 'null');
      expect(nul.status).toBe(400);
      expect(nul.json()).toEqual({ object: 'error', message: "[{'type': 'missing', 'loc': ('body',), 'msg': 'Field required', 'input': None}]", type: 'Bad Request', param: null, code: 400 });
      expect(nul.json()).toEqual(empty.json());
    });

    // serving_engine.py:873-880 @ v0.10.0 (kwargs over the request's arguments), chat_utils.py:398-400 and 1292-1335
    // (a given template first; errors re-raised with the original as cause), transformers v4.53 render_jinja_template.
    it('a chat_template (the request\'s, or in chat_template_kwargs) replaces the model\'s; continue_final_message leaves the last turn open', async () => {
      const tokens = async (body: Record<string, unknown>) => (await http(sim.url, 'POST', '/tokenize', { model: MODEL, ...body })).json().tokens as number[];
      const messages = [{ role: 'user', content: 'tell me' }, { role: 'assistant', content: 'Once upon' }];
      const template = '{% for m in messages %}[{{ m.role }}: {{ m.content }}]{% endfor %}{% if add_generation_prompt %}[assistant:{% endif %}';
      const plain = await tokens({ prompt: '[user: tell me][assistant: Once upon][assistant:', add_special_tokens: false });
      expect(await tokens({ messages, chat_template: template })).toEqual(plain);
      expect(await tokens({ messages, chat_template_kwargs: { chat_template: template } })).toEqual(plain);
      // The kwarg wins over the request's own field, as the dict update does.
      expect(await tokens({ messages, chat_template: 'unused {{ messages }}', chat_template_kwargs: { chat_template: template } })).toEqual(plain);
      // Cut right after the final message's content.
      const open = await tokens({ prompt: '[user: tell me][assistant: Once upon', add_special_tokens: false });
      expect(await tokens({ messages, chat_template: template, add_generation_prompt: false, continue_final_message: true })).toEqual(open);
      // Qwen3's own template renders something else.
      expect(await tokens({ messages })).not.toEqual(plain);
    });
    // chat_utils.py @ v0.10.0 _detect_content_format / _resolve_chat_template_content_format: detected on
    // `request.chat_template or self.chat_template`; "openai" hands every content over as a list of text parts.
    it('a request\'s own template that loops over a message\'s content gets the content as parts ("openai" format); one in the kwargs is detected on Qwen3\'s', async () => {
      const tokens = async (body: Record<string, unknown>) => (await http(sim.url, 'POST', '/tokenize', { model: MODEL, ...body })).json().tokens as number[];
      const messages = [{ role: 'user', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] }, { role: 'assistant', content: 'three' }, { role: 'assistant', content: null }];
      const template = "{% for m in messages %}{% for p in m['content'] %}[{{ p['type'] }}:{{ p['text'] }}]{% endfor %}|{% endfor %}";
      expect(await tokens({ messages, chat_template: template })).toEqual(await tokens({ prompt: '[text:one][text:two]|[text:three]||', add_special_tokens: false }));
      // From the kwargs the template renders, but the format is Qwen3's ("string"): the loop runs over characters.
      const chars = await tokens({ messages, chat_template_kwargs: { chat_template: template } });
      expect(chars).not.toEqual(await tokens({ messages, chat_template: template }));
    });
    it('a chat template error is answered f"{e} {e.__cause__}" with the cause the same error (apply_hf_chat_template re-raises it); tokenize with return_dict escapes as a plain 500', async () => {
      await expectError('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }], chat_template_kwargs: { continue_final_message: true } }, 400, 'BadRequestError',
        /^continue_final_message and add_generation_prompt are not compatible\. .* continue_final_message and add_generation_prompt are not compatible\. /);
      const r = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }], chat_template_kwargs: { tokenize: true, return_dict: true } });
      expect(r.status).toBe(500);
      expect(r.text).toBe('Internal Server Error');
      // /tokenize catches every exception as HTTPException(500, str(e)) (api_server.py @ v0.10.0 L470-480): JSON.
      await expectError('/tokenize', { model: MODEL, messages: [{ role: 'user', content: 'x' }], chat_template_kwargs: { tokenize: true, return_dict: true } }, 500, 'Internal Server Error',
        /^Prompt has to be either a string or a list of token ids$/);
    });
    // chat_utils.py @ v0.10.0 _parse_chat_message_content (L1173-1215) and _postprocess_messages (L1216-1228);
    // serving_chat.py L183-184 (tool_dicts = [tool.model_dump() …]); protocol.py L173-181 (extra="allow").
    it('the template sees vLLM\'s conversation: unknown keys dropped, tool-call arguments parsed and printed by tojson, tools model_dump()ed', async () => {
      const tokens = async (body: Record<string, unknown>) => {
        const r = await http(sim.url, 'POST', '/tokenize', { model: MODEL, ...body });
        expect(r.status).toBe(200);
        return r.json().tokens as number[];
      };
      const call = (args: string) => ({ id: 'call_1', type: 'function', function: { name: 'weather', arguments: args } });
      const turn = (assistant: Record<string, unknown>) => [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: '', tool_calls: [call('{"city": "Paris", "days": 3}')], ...assistant },
        { role: 'tool', content: 'sunny', tool_call_id: 'call_1' },
      ];
      const reference = await tokens({ messages: turn({}) });
      // Qwen3's template renders an assistant's reasoning_content after the last user turn; vLLM never passes it on.
      expect(await tokens({ messages: turn({ reasoning_content: 'The user wants the weather.' }) })).toEqual(reference);
      // json.loads then json.dumps: compact or spaced arguments are the same prompt; other keys of a call are dropped.
      expect(await tokens({ messages: turn({ tool_calls: [{ ...call('{"city":"Paris",\n"days":3}'), index: 0 }] }) })).toEqual(reference);
      const text = (await http(sim.url, 'POST', '/tokenize', { model: MODEL, messages: turn({}), return_token_strs: true })).json();
      expect(text.token_strs.join('')).toContain('"arguments":Ġ{"city":Ġ"Paris",Ġ"days":Ġ3}}');
      // A tool as model_dump() writes it: type first, description and parameters null when absent.
      const tools = [{ function: { name: 'weather', parameters: { type: 'object' } }, type: 'function' }];
      const dumped = [{ type: 'function', function: { name: 'weather', description: null, parameters: { type: 'object' } } }];
      expect(await tokens({ messages: turn({}), tools })).toEqual(await tokens({ messages: turn({}), tools: dumped }));
    });
    // vLLM 0.10.0 reads the body with json.loads and keeps dict[str, Any] floats (protocol.py FunctionDefinition.parameters),
    // so a tool schema's 0.0 prints 0.0; transformers 4.53's tojson is json.dumps. Reference: real jinja2 over Qwen3's
    // template (tokenizer/test/vectors/tool-chats.py).
    it('a tool schema with 0.0 and 1e3, arguments with 1.0 and 1e-05: the prompt jinja2 renders from the body json.loads reads', async () => {
      const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'tokenizer', 'test', 'vectors', 'tool-chats.json'), 'utf8')) as { cases: { name: string; body: string; text: string }[] };
      const c = vectors.cases.find((x) => x.name.startsWith('tools whose schema holds floats'))!;
      // The body as the client wrote it (JSON.stringify would write 0.0 as 0): the vector's own text, model replaced.
      const raw = c.body.replace('"model": "Qwen/Qwen3-0.6B"', `"model": ${JSON.stringify(MODEL)}`);
      expect(raw).toContain('"minimum": 0.0');
      const chat = await http(sim.url, 'POST', '/tokenize', raw);
      expect(chat.status).toBe(200);
      const plain = await http(sim.url, 'POST', '/tokenize', { model: MODEL, prompt: c.text, add_special_tokens: false });
      expect(chat.json().tokens).toEqual(plain.json().tokens);
    });
    it('a tool call vLLM cannot read: arguments that are not JSON, or a call pydantic refuses, are a 400 from the conversation; a tool pydantic refuses is a request validation error', async () => {
      const messages = (toolCall: unknown) => [{ role: 'user', content: 'q' }, { role: 'assistant', content: '', tool_calls: [toolCall] }, { role: 'user', content: 'more' }];
      await expectError('/v1/chat/completions', { model: MODEL, messages: messages({ id: 'a', type: 'function', function: { name: 'f', arguments: '{"city": }' } }) }, 400, 'BadRequestError',
        /^Expecting value: line 1 column 10 \(char 9\) None$/);
      await expectError('/tokenize', { model: MODEL, messages: messages({ type: 'function', function: { name: 'f', arguments: '{}' } }) }, 400, 'BadRequestError',
        /^1 validation error for ValidatorIterator\n0\.id\n {2}Field required \[type=missing\] None$/);
      await expectError('/v1/chat/completions', { model: MODEL, messages: messages({}), tools: [{ type: 'function', function: { name: 5 } }] }, 400, 'Bad Request',
        /^\[\{'type': 'string_type', 'loc': \('body', 'tools', 0, 'function', 'name'\), 'msg': 'Input should be a valid string', 'input': 5\}\]$/);
    });
    // json.loads of a call's arguments raising RecursionError (a RuntimeError): serving_chat.py @ v0.10.0 catches
    // RuntimeError (400 with the text and "None"); serving_tokenization.py catches only (ValueError, TypeError,
    // TemplateError), so the tokenize route's handler (api_server.py) turns it into HTTPException(500, str(e)). A
    // ValueError (an integer of more than 4,300 digits) is a 400 on both.
    it('arguments json.loads raises RecursionError on: 400 from the chat route, 500 from /tokenize; a ValueError is 400 on both', async () => {
      const chat = (args: string) => [{ role: 'user', content: 'q' }, { role: 'assistant', content: '', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: args } }] }, { role: 'user', content: 'more' }];
      const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
      const recursion = 'maximum recursion depth exceeded while decoding a JSON array from a unicode string';
      await expectError('/v1/chat/completions', { model: MODEL, messages: chat(deep) }, 400, 'BadRequestError', new RegExp(`^${recursion} None$`));
      await expectError('/tokenize', { model: MODEL, messages: chat(deep) }, 500, 'Internal Server Error', new RegExp(`^${recursion}$`));
      const digits = `{"n": ${'9'.repeat(5000)}}`;
      await expectError('/v1/chat/completions', { model: MODEL, messages: chat(digits) }, 400, 'BadRequestError', /^Exceeds the limit \(4300 digits\)/);
      await expectError('/tokenize', { model: MODEL, messages: chat(digits) }, 400, 'BadRequestError', /^Exceeds the limit \(4300 digits\)/);
    });
    it('invalid JSON → 400 Bad Request (FastAPI json_invalid)', () => expectError('/v1/completions', '{"model":', 400, 'Bad Request', /json_invalid/));
    // fastapi/routing.py get_request_handler: loc ('body', e.pos), input {}, ctx {'error': e.msg}, Python's own msg and
    // position (CPython's json scanner; protocol/test/python-json.test.ts holds its vectors).
    it('invalid JSON: the message is FastAPI\'s, with Python\'s position and words', async () => {
      await expectError('/v1/completions', `{"model": "${MODEL}", "prompt": "x",}`, 400, 'Bad Request',
        new RegExp(`^\\[\\{'type': 'json_invalid', 'loc': \\('body', ${28 + MODEL.length}\\), 'msg': 'JSON decode error', 'input': \\{\\}, 'ctx': \\{'error': 'Expecting property name enclosed in double quotes'\\}\\}\\]$`));
      await expectError('/v1/chat/completions', '{"model": "😀", "messages": [}', 400, 'Bad Request', /'loc': \('body', 28\), .*'ctx': \{'error': 'Expecting value'\}/);
      await expectError('/v1/completions', '{"prompt": "a\\q"}', 400, 'Bad Request', /'ctx': \{'error': 'Invalid \\\\escape'\}/);
    });
    it('NaN and Infinity are JSON to Python: a body carrying them is read, not refused', async () => {
      const r = await http(sim.url, 'POST', '/v1/completions', `{"model": "${MODEL}", "prompt": "hi", "max_tokens": 2, "unknown_field": NaN, "other": -Infinity}`);
      expect(r.status).toBe(200);
      expect(r.json().usage.completion_tokens).toBe(2);
    });
    it('a body that is not UTF-8, or that json.loads raises on beyond syntax → 400 "There was an error parsing the body" (FastAPI\'s HTTPException, vLLM\'s http_exception_handler)', async () => {
      const res = await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ object: 'error', message: 'There was an error parsing the body', type: 'Bad Request', param: null, code: 400 });
      // json.loads raising RecursionError (nesting past CPython 3.12's C recursion budget) or ValueError (an integer of
      // more than 4,300 digits) gets the same answer, valid JSON to JavaScript or not.
      for (const body of [`{"model": "${MODEL}", "prompt": "hi", "x": ${'['.repeat(20_000)}${']'.repeat(20_000)}}`, '['.repeat(20_000), `{"model": "${MODEL}", "prompt": "hi", "x": ${'9'.repeat(5000)}}`]) {
        const r = await http(sim.url, 'POST', '/v1/completions', body);
        expect(r.status).toBe(400);
        expect(r.json()).toEqual({ object: 'error', message: 'There was an error parsing the body', type: 'Bad Request', param: null, code: 400 });
      }
      // A UTF-8 BOM is dropped, as json.loads decodes bytes with 'utf-8-sig'.
      const bom = await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ model: MODEL, prompt: 'hi', max_tokens: 1 }))]) });
      expect(bom.status).toBe(200);
    });
    it('non-object JSON → 400 Bad Request', () => expectError('/v1/chat/completions', '[1,2]', 400, 'Bad Request'));
    it('unknown model → 404 NotFoundError', () => expectError('/v1/completions', { model: 'gpt-4', prompt: 'x' }, 404, 'NotFoundError', /^The model `gpt-4` does not exist\.$/));
    it('model of the wrong type → 400', () => expectError('/v1/completions', { model: 7, prompt: 'x' }, 400, 'Bad Request', /'model'/));
    it('max_tokens "abc" → 400 naming the field', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 'abc' }, 400, 'Bad Request', /'max_tokens'/));
    it('max_tokens 0 → 400 BadRequestError from SamplingParams', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 0 }, 400, 'BadRequestError', /max_tokens must be at least 1, got 0/));
    it('stream "maybe" → 400', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', stream: 'maybe' }, 400, 'Bad Request', /'stream'/));
    it('messages not an array → 400', () => expectError('/v1/chat/completions', { model: MODEL, messages: 'hi' }, 400, 'Bad Request', /'messages'/));
    it('message without a role → 400', () => expectError('/v1/chat/completions', { model: MODEL, messages: [{ content: 'hi' }] }, 400, 'Bad Request', /'role'/));
    it('a message name or tool_call_id that is not a string → 400 (openai TypedDicts: name str, tool_call_id str)', async () => {
      await expectError('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi', name: 5 }] }, 400, 'Bad Request', /'loc': \('body', 'messages', 0, 'name'\)/);
      // /tokenize's body is the TokenizeRequest union: the chat member's error under its name, after the completion
      // member's missing prompt.
      await expectError('/tokenize', { model: MODEL, messages: [{ role: 'tool', content: 'r', tool_call_id: 7 }] }, 400, 'Bad Request', /^\[\{'type': 'missing', 'loc': \('body', 'TokenizeCompletionRequest', 'prompt'\).*'loc': \('body', 'TokenizeChatRequest', 'messages', 0, 'tool_call_id'\)/);
    });
    it('messages [] → 400 from the chat template, on /v1/chat/completions and /tokenize (vllm/entrypoints/chat_utils.py apply_hf_chat_template, serving_chat.py, serving_tokenization.py @ v0.10.0)', async () => {
      // transformers reads conversation[0]: IndexError, re-raised as ValueError(str(e)) from e, answered f"{e} {e.__cause__}".
      for (const stream of [false, true]) {
        await expectError('/v1/chat/completions', { model: MODEL, messages: [], stream }, 400, 'BadRequestError', /^list index out of range list index out of range$/);
      }
      await expectError('/tokenize', { model: MODEL, messages: [] }, 400, 'BadRequestError', /^list index out of range list index out of range$/);
    });
    it("cache_salt \"\" or not a string → 400 from check_cache_salt_support, a mode=\"before\" validator (protocol.py @ v0.10.0, vLLM #17045)", async () => {
      // pydantic writes the msg with double quotes, as Python's repr of a str holding single quotes.
      const msg = /^\[\{'type': 'value_error', 'loc': \('body',\), 'msg': "Value error, Parameter 'cache_salt' must be a non-empty string if provided\."/;
      await expectError('/v1/completions', { model: MODEL, prompt: 'x', cache_salt: '' }, 400, 'Bad Request', msg);
      await expectError('/v1/completions', { model: MODEL, prompt: 'x', cache_salt: 5, stream: true }, 400, 'Bad Request', msg);
      await expectError('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }], cache_salt: '' }, 400, 'Bad Request', msg);
      await expectError('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }], cache_salt: ['a'] }, 400, 'Bad Request', msg);
      // null is "not provided"; the tokenize requests have no cache_salt field at all (an ignored extra).
      expect((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 1, cache_salt: null })).status).toBe(200);
      expect((await http(sim.url, 'POST', '/tokenize', { model: MODEL, prompt: 'x', cache_salt: '' })).status).toBe(200);
    });
    it('V1 processor checks of the sampling parameters (vllm/v1/engine/processor.py _validate_params @ v0.10.0): 400, or 200 + an error event + [DONE] when streaming', async () => {
      const streamError = async (path: string, body: Record<string, unknown>, message: string) => {
        const r = await http(sim.url, 'POST', path, { model: MODEL, ...body, stream: true });
        expect(r.status).toBe(200);
        expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
        expect(parseSse(r.text)).toEqual({ events: [{ error: { object: 'error', message, type: 'BadRequestError', param: null, code: 400 } }], done: true });
        // Without stream the same check is a JSON 400.
        await expectError(path, { model: MODEL, ...body }, 400, 'BadRequestError', new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
      };
      const chat = { messages: [{ role: 'user', content: 'x' }] };
      await streamError('/v1/completions', { prompt: 'Hi', logprobs: 21, max_tokens: 1 }, 'Requested sample logprobs of 21, which is greater than max allowed: 20');
      await streamError('/v1/chat/completions', { ...chat, logprobs: true, top_logprobs: 21, max_tokens: 1 }, 'Requested sample logprobs of 21, which is greater than max allowed: 20');
      await streamError('/v1/chat/completions', { ...chat, best_of: 2, n: 2, max_tokens: 1 }, 'vLLM V1 does not yet support best_of.');
      // Completions stream only when best_of == n (serving_completion.py @ v0.10.0).
      await streamError('/v1/completions', { prompt: 'Hi', best_of: 2, n: 2, max_tokens: 1 }, 'vLLM V1 does not yet support best_of.');
      // best_of ≠ n with stream: SamplingParams' DELTA check, a JSON 400 before streaming (sampling_params.py @ 6eca337ce
      // lines 438-440).
      await expectError('/v1/completions', { model: MODEL, prompt: 'Hi', best_of: 2, stream: true }, 400, 'BadRequestError', /^best_of must equal n to use output_kind=DELTA$/);
      // _validate_logit_bias checks against the model's vocab_size, 151936.
      await streamError('/v1/completions', { prompt: 'Hi', logit_bias: { '151936': 1, '5': 2, '-1': 3 }, max_tokens: 1 }, 'token_id(s) [151936, -1] in logit_bias contain out-of-vocab token ids. Vocabulary size: 151936');
      expect((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'Hi', logit_bias: { '151935': 100 }, max_tokens: 1 })).status).toBe(200);
      // SamplingParams.from_optional's int(token) fails before the engine: always JSON.
      await expectError('/v1/completions', { model: MODEL, prompt: 'Hi', logit_bias: { abc: 1 }, stream: true }, 400, 'BadRequestError', /^invalid literal for int\(\) with base 10: 'abc'$/);
      await expectError('/v1/completions', { model: MODEL, prompt: 'Hi', logit_bias: { '5': 'x' } }, 400, 'Bad Request', /'logit_bias', '5'.*float_parsing|float_parsing.*'logit_bias', '5'/);
    });
    // CompletionRequest.prompt is Optional since prompt embeds (#17590); validate_prompt_and_prompt_embeds refuses
    // a body with neither (protocol.py @ v0.10.0), loc ('body',) as Python writes a one-element tuple.
    it('missing or null prompt → 400 from validate_prompt_and_prompt_embeds (protocol.py @ v0.10.0)', async () => {
      const msg = /^\[\{'type': 'value_error', 'loc': \('body',\), 'msg': 'Value error, At least one of `prompt` or `prompt_embeds` must be set\.'/;
      await expectError('/v1/completions', { model: MODEL }, 400, 'Bad Request', msg);
      await expectError('/v1/completions', { model: MODEL, prompt: null }, 400, 'Bad Request', msg);
    });
    it('logprobs -1 on completions → 400 from check_logprobs, before SamplingParams (protocol.py @ v0.10.0)', () =>
      expectError('/v1/completions', { model: MODEL, prompt: 'x', logprobs: -1 }, 400, 'Bad Request', /'msg': 'Value error, `logprobs` must be a positive value\.'/));
    it('stream_options without stream → 400', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', stream_options: { include_usage: true } }, 400, 'Bad Request', /stream=True/));
    it('tools without tool_choice ("auto") and no --enable-auto-tool-choice → 400', () =>
      expectError('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }] }, 400, 'BadRequestError', /--enable-auto-tool-choice/));
    it('temperature -1 → 400', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', temperature: -1 }, 400, 'BadRequestError', /temperature must be non-negative/));
    it('min_tokens above max_tokens → 400', () => expectError('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 2, min_tokens: 3 }, 400, 'BadRequestError', /min_tokens must be less than or equal to max_tokens=2/));
    it('token id out of the vocabulary → 400 (processor), or an error event when streaming', async () => {
      await expectError('/v1/completions', { model: MODEL, prompt: [1, 151669] }, 400, 'BadRequestError', /^Token id 151669 is out of vocabulary$/);
      await expectError('/v1/completions', { model: MODEL, prompt: [1, -2] }, 400, 'BadRequestError', /^Token id -2 is out of vocabulary$/);
      const r = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: [151700], stream: true });
      expect(r.status).toBe(200);
      const { events, done } = parseSse(r.text);
      expect(done).toBe(true);
      expect(events).toEqual([{ error: { object: 'error', message: 'Token id 151700 is out of vocabulary', type: 'BadRequestError', param: null, code: 400 } }]);
    });
    it('priority under the default fcfs policy: any integer is accepted and ignored, as V1\'s processor passes it on (vLLM #19057, before v0.10.0); a non-integer → 400', async () => {
      for (const priority of [3, -1, 0]) {
        expect((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', priority, max_tokens: 1 })).status).toBe(200);
      }
      const chat = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }], priority: 2, stream: true, max_tokens: 1 });
      expect(chat.status).toBe(200);
      expect(parseSse(chat.text).done).toBe(true);
      expect(parseSse(chat.text).events.some((e) => 'error' in (e as object))).toBe(false);
      await expectError('/v1/completions', { model: MODEL, prompt: 'x', priority: 'high' }, 400, 'Bad Request', /'priority'/);
    });
    it('a body that is not application/json → 400 Unsupported Media Type', async () => {
      const r = await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ model: MODEL, prompt: 'x' }) });
      expect(r.status).toBe(400);
      expect(await r.json()).toMatchObject({ object: 'error', type: 'Bad Request', code: 400, message: expect.stringMatching(/Only 'application\/json' is allowed/) });
    });
    it('prompt + max_tokens over max-model-len → 400 with vLLM\'s words', () =>
      expectError('/v1/completions', { model: MODEL, prompt: 'hello world', max_tokens: 40960 }, 400, 'BadRequestError', /^This model's maximum context length is 40960 tokens\. However, you requested 40962 tokens \(2 in the messages, 40960 in the completion\)\./));
    it('prompt alone over max-model-len → 400; completions default max_tokens is 16, chat\'s the room left', async () => {
      const small = await startSimulator({ port: 0, timeScale: 1000, maxModelLen: 64 });
      try {
        const r = await http(small.url, 'POST', '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: longText(100) }] });
        expect(r.status).toBe(400);
        // Chat answers f"{e} {e.__cause__}" (serving_chat.py @ 6eca337ce lines 207-209): a trailing " None".
        expect(r.json().message).toMatch(/in the messages, Please reduce the length of the messages\. None$/);
        // CompletionRequest.max_tokens defaults to 16, checked as such (protocol.py @ v0.10.0).
        const c = await http(small.url, 'POST', '/v1/completions', { model: MODEL, prompt: new Array(60).fill(785) });
        expect(c.status).toBe(400);
        expect(c.json().message).toMatch(/16 in the completion/);
        // Chat without max_tokens: the room left caps --default-max-tokens.
        const ok = await http(small.url, 'POST', '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: longText(20) }] });
        expect(ok.status).toBe(200);
        expect(ok.json().usage.total_tokens).toBeLessThanOrEqual(64);
      } finally {
        await small.close();
      }
    });
    // The simulator's own bound (vLLM has none), documented in sim/README.md's error table: a body over 32 MiB is read
    // to its end and refused with 413, nothing of it parsed.
    it('a body over 32 MiB → 413 Request Entity Too Large', async () => {
      const limit = 32 * 1024 * 1024;
      const head = `{"model":"${MODEL}","prompt":"`;
      const body = head + 'a'.repeat(limit + 1 - head.length - 2) + '"}';
      expect(Buffer.byteLength(body)).toBe(limit + 1);
      const r = await http(sim.url, 'POST', '/v1/completions', body);
      expect(r.status).toBe(413);
      expect(r.json()).toEqual({ object: 'error', message: `Request body exceeds ${limit} bytes.`, type: 'Request Entity Too Large', param: null, code: 413 });
    });
    // _validate_input refuses only `token_num + max_tokens > max_model_len` (serving_engine.py @ v0.10.0 lines 618-632):
    // a request that exactly fills the context is served, one token more is refused.
    it('prompt + max_tokens exactly max-model-len → 200; one more → 400 (serving_engine.py @ v0.10.0 _validate_input)', async () => {
      const small = await startSimulator({ port: 0, timeScale: 1000, maxModelLen: 64 });
      try {
        const fits = await http(small.url, 'POST', '/v1/completions', { model: MODEL, prompt: new Array(60).fill(785), max_tokens: 4 });
        expect(fits.status).toBe(200);
        expect(fits.json().usage.prompt_tokens).toBe(60);
        const over = await http(small.url, 'POST', '/v1/completions', { model: MODEL, prompt: new Array(60).fill(785), max_tokens: 5 });
        expect(over.status).toBe(400);
        expect(over.json().message).toMatch(/you requested 65 tokens \(60 in the messages, 5 in the completion\)/);
      } finally {
        await small.close();
      }
    });
    it('unknown route → 404, wrong method → 405, with Starlette\'s {"detail"} bodies', async () => {
      const nf = await http(sim.url, 'GET', '/v1/nope');
      expect(nf.status).toBe(404);
      expect(nf.json()).toEqual({ detail: 'Not Found' });
      const r = await http(sim.url, 'GET', '/v1/completions');
      expect(r.status).toBe(405);
      expect(r.json()).toEqual({ detail: 'Method Not Allowed' });
      expect(r.headers.allow).toBe('POST');
    });
    it('routes on the percent-decoded path, as uvicorn sets scope["path"] = urllib.parse.unquote(raw_path) (httptools_impl.py): %2F and %63 reach their routes, a malformed escape stays as sent (audit s36)', async () => {
      expect((await http(sim.url, 'GET', '/v1/model%73')).status).toBe(200);
      const chat = await http(sim.url, 'POST', '/v1/chat%2Fcompletions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
      expect(chat.status).toBe(200);
      expect(chat.json().object).toBe('chat.completion');
      expect((await http(sim.url, 'GET', '/v1/model%7')).status).toBe(404);
      expect(pythonUnquote('/a%2Fb%e2%82%ac%ZZ%ff')).toBe('/a/b€%ZZ\ufffd');
    });
    it('the other tasks\' routes exist and answer a generate model "The model does not support <API> API" with code 400 in the body and status 200, as vLLM 0.10.0 returns the ErrorResponse as the route\'s value (api_server.py; tests/entrypoints/openai/test_transcription_validation.py test_non_asr_model)', async () => {
      const apis: [string, string][] = [
        ['/v1/embeddings', 'Embeddings'], ['/pooling', 'Pooling'], ['/classify', 'Classification'], ['/score', 'Score'],
        ['/v1/score', 'Score'], ['/rerank', 'Rerank (Score)'], ['/v1/rerank', 'Rerank (Score)'], ['/v2/rerank', 'Rerank (Score)'],
      ];
      for (const [path, api] of apis) {
        const r = await http(sim.url, 'POST', path, { model: MODEL, input: 'hi' });
        expect({ path, status: r.status, body: r.json() }).toEqual({
          path, status: 200, body: { object: 'error', message: `The model does not support ${api} API`, type: 'BadRequestError', param: null, code: 400 },
        });
        expect((await http(sim.url, 'GET', path)).status).toBe(405);
      }
      // validate_json_request runs first on the JSON routes.
      const plain = await fetch(`${sim.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
      expect(plain.status).toBe(400);
      expect(await plain.text()).toContain("Only 'application/json' is allowed");
      // The audio routes read a form whose file is required before the handler.
      const empty = await fetch(`${sim.url}/v1/audio/transcriptions`, { method: 'POST', body: new FormData() });
      expect(empty.status).toBe(400);
      expect(((await empty.json()) as { message: string }).message).toContain("'loc': ('body', 'file'), 'msg': 'Field required'");
      const form = new FormData();
      form.append('file', new Blob([Buffer.from('RIFF')]), 'a.wav');
      form.append('model', MODEL);
      const audio = await fetch(`${sim.url}/v1/audio/translations`, { method: 'POST', body: form });
      expect(audio.status).toBe(200);
      expect(((await audio.json()) as { message: string; code: number })).toMatchObject({ message: 'The model does not support Translations API', code: 400 });
    });
  });
});

describe('queueing through HTTP with a manual clock', () => {
  it('max-num-seqs 1: the second request waits, shows in the gauges, and completes', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, maxNumSeqs: 1, simExtension: true });
    try {
      const body = { model: MODEL, prompt: longText(50), max_tokens: 3 };
      const a = http(sim.url, 'POST', '/v1/completions', body);
      const b = http(sim.url, 'POST', '/v1/completions', { ...body, prompt: longText(50, 3) });
      await waitFor(() => sim.engine.stats().waiting === 1, 'one running, one waiting');
      // vLLM 0.10.0 sets these gauges from the stats a step returns with request outputs (scheduler.py @ 6eca337ce
      // lines 909-912): a is still prefilling, no step has sampled a token, so they read as before any request.
      let samples = parsePrometheus((await http(sim.url, 'GET', '/metrics')).text);
      expect(metricValue(samples, 'vllm:num_requests_running')).toBe(0);
      expect(metricValue(samples, 'vllm:num_requests_waiting')).toBe(0);
      // a's first token: that step's stats show it running and b waiting.
      for (let i = 0; i < 1000 && metricValue(parsePrometheus((await http(sim.url, 'GET', '/metrics')).text), 'vllm:num_requests_running') === 0; i++) clock.advance(1);
      samples = parsePrometheus((await http(sim.url, 'GET', '/metrics')).text);
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

describe('--decode-prefill-interference over HTTP (vllm/v1/engine/core.py @ v0.10.0 L255-274)', () => {
  it('a batch of two prompts gets both first tokens at the end of their one step (on by default); the old model with it off', async () => {
    for (const interference of [undefined, false]) {
      const clock = new ManualClock();
      const sim = await startSimulator({ port: 0, clock, decodePrefillInterference: interference });
      try {
        expect(sim.engine.config.decodePrefillInterference).toBe(interference ?? true);
        const firsts: number[] = [];
        const t0 = clock.now();
        // Two 500-token prompts as one batch: vLLM schedules both in one step of 1,000 tokens (20 + 250 ms).
        const prompt = [Array.from({ length: 500 }, (_, i) => 1000 + i), Array.from({ length: 500 }, (_, i) => 3000 + i)];
        const done = http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 2, stream: true });
        await waitFor(() => sim.engine.stats().running === 2, 'both scheduled');
        for (let i = 0; i < 400 && firsts.length < 2; i++) {
          clock.advance(1);
          const ttftCount = metricValue(parsePrometheus((await http(sim.url, 'GET', '/metrics')).text), 'vllm:time_to_first_token_seconds_count');
          while (firsts.length < ttftCount) firsts.push(clock.now() - t0);
        }
        clock.runAll();
        expect((await done).status).toBe(200);
        expect(firsts).toEqual(interference === false ? [145, 270] : [270, 270]);
      } finally {
        await sim.close();
      }
    }
  });
});

describe('--scheduling-policy priority (vllm/v1/core/sched/scheduler.py, request_queue.py @ v0.10.0)', () => {
  it('long prefills queue as waiting requests, and the queue is served by priority (lower first), not arrival', async () => {
    const clock = new ManualClock();
    // sha256: vLLM 0.10.2's generation, whose engine returns the scheduler's stats every step (#22995), so the queue shows
    // in the gauges while a prefills (0.10.0 shows them only from a step that samples a token).
    const sim = await startSimulator({ port: 0, clock, schedulingPolicy: 'priority', simExtension: true, prefixCachingHashAlgo: 'sha256' });
    try {
      // Prompts longer than a step's token budget (2,048), so a step that schedules one has nothing left for the next.
      const body = (seed: number, priority: number) => ({ model: MODEL, prompt: longText(2100, seed), max_tokens: 1, priority });
      const a = http(sim.url, 'POST', '/v1/completions', body(1, 0));
      await waitFor(() => sim.engine.stats().running === 1, 'a running');
      const b = http(sim.url, 'POST', '/v1/completions', body(2, 5));
      await waitFor(() => sim.engine.stats().waiting === 1, 'b waiting');
      const c = http(sim.url, 'POST', '/v1/completions', body(3, 1));
      await waitFor(() => sim.engine.stats().waiting === 2, 'b and c waiting');
      // One prefill lane: b and c wait for it in vLLM's WAITING queue, visible to a router scraping the pod.
      const samples = parsePrometheus((await http(sim.url, 'GET', '/metrics')).text);
      expect(metricValue(samples, 'vllm:num_requests_running')).toBe(1);
      expect(metricValue(samples, 'vllm:num_requests_waiting')).toBe(2);
      clock.runAll();
      const [ra, rb, rc] = [(await a).json(), (await b).json(), (await c).json()];
      expect(ra.kvroute_sim.queue_time_s).toBe(0);
      // c arrived after b but is served first: it waits for a's prefill, b for a's and c's.
      expect(rc.kvroute_sim.queue_time_s).toBeGreaterThan(0);
      expect(rb.kvroute_sim.queue_time_s).toBeGreaterThan(rc.kvroute_sim.queue_time_s);
      expect(rb.kvroute_sim.ttft_s).toBeGreaterThan(rc.kvroute_sim.ttft_s);
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
    const sim = await startSimulator({ port: 0, timeScale: 1000, simExtension: true });
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

  // n > 1 without streaming: the parent's output is made when its last child finishes, with that child's
  // num_cached_tokens (vllm/v1/engine/parallel_sampling.py ParentRequest.get_outputs, output_processor.py @ v0.10.0);
  // the second child hits the blocks the first cached when it was scheduled.
  it('n = 2 on a cold cache: the count of the child that finished last, which hit its sibling\'s blocks', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, enablePromptTokensDetails: true, simExtension: true });
    try {
      for (const path of ['/v1/completions', '/v1/chat/completions']) {
        const body = path === '/v1/completions' ? { prompt: `${path} ${prompt}` } : { messages: [{ role: 'user', content: `${path} ${prompt}` }] };
        const r = (await http(sim.url, 'POST', path, { model: MODEL, ...body, n: 2, temperature: 1, max_tokens: 3 })).json();
        expect(r.usage.prompt_tokens_details).toEqual({ cached_tokens: cachedOf(r.usage.prompt_tokens) });
      }
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
      // Without include_usage no chunk carries a usage: completion chunks write it as null.
      const plain = parseSse((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 2, stream: true })).text);
      expect(plain.events.every((e) => e.usage === null)).toBe(true);
    } finally {
      await sim.close();
    }
  });
});

describe('request parameters and endpoints as vLLM 0.10.0 answers them (protocol.py, serving_*.py, api_server.py @ v0.10.0)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: [MODEL, 'qwen'] });
  });
  afterAll(() => sim.close());

  it('a request without model is served by the first served name; ids are 32 hex digits or X-Request-Id', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 2 });
    expect(r.status).toBe(200);
    expect(r.json().model).toBe(MODEL);
    expect(r.json().id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    // Exactly vLLM's members (CompletionResponse @ v0.10.0): kvroute_sim only with --sim-extension.
    expect(Object.keys(r.json())).toEqual(['id', 'object', 'created', 'model', 'choices', 'service_tier', 'system_fingerprint', 'usage', 'kv_transfer_params']);
    const h = await fetch(`${sim.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'abc' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }) });
    const body = (await h.json()) as any;
    expect(body.id).toBe('chatcmpl-abc');
    expect(body.choices[0].message).toEqual({ role: 'assistant', content: 'The', refusal: null, annotations: null, audio: null, function_call: null, tool_calls: [], reasoning_content: null });
    const b = await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 1, request_id: 'mine' });
    expect(b.json().id).toBe('chatcmpl-mine');
  });

  // serving_engine.py @ v0.10.0 `_base_request_id`: `raw_request.headers.get("X-Request-Id", default)`. Starlette's
  // Headers.get returns a present header's value even when empty, and the first of repeated ones.
  it.each([
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, request_id: 'body' }, 'chatcmpl-'],
    ['/v1/completions', { prompt: 'hi', max_tokens: 1 }, 'cmpl-'],
  ])('an empty X-Request-Id header on %s is the id as is: the bare prefix', async (path, body, prefix) => {
    const res = await fetch(sim.url + path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': '' }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { id: string }).id).toBe(prefix);
  });

  it('of repeated X-Request-Id headers the first is the id', async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const body = JSON.stringify({ prompt: 'hi', max_tokens: 1 });
      const socket = connect(sim.port, '127.0.0.1', () => {
        socket.write(`POST /v1/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\nx-request-id: one\r\nx-request-id: two\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      });
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString()));
      socket.on('end', () => resolve(text.slice(text.indexOf('\r\n\r\n') + 4)));
      socket.on('error', reject);
    });
    expect(JSON.parse(raw).id).toBe('cmpl-one');
  });

  it("pydantic's lax coercions: \"2\" is an int, \"yes\" a bool", async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: '2', stream: 'no' });
    expect(r.status).toBe(200);
    expect(r.json().usage.completion_tokens).toBe(2);
  });

  it('stop strings cut the filler (finish_reason "stop", stop_reason the string); stop_token_ids; min_tokens; echo', async () => {
    const s = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 8, stop: [' brown', 'zzz'] })).json();
    expect(s.choices[0]).toMatchObject({ text: 'The quick', finish_reason: 'stop', stop_reason: ' brown' });
    expect(s.usage.completion_tokens).toBe(3);
    const inc = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 8, stop: ' brown', include_stop_str_in_output: true })).json();
    expect(inc.choices[0].text).toBe('The quick brown');
    const min = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 8, stop: ['The'], min_tokens: 2 })).json();
    expect(min.choices[0].finish_reason).toBe('length');
    const quick = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 1 })).json();
    expect(quick.choices[0].text).toBe('The');
    const ids = (await http(sim.url, 'POST', '/tokenize', { prompt: ' quick', add_special_tokens: false })).json().tokens;
    const st = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 8, stop_token_ids: ids })).json();
    expect(st.choices[0]).toMatchObject({ text: 'The', finish_reason: 'stop', stop_reason: ids[0] });
    expect(st.usage.completion_tokens).toBe(2);
    const echo = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 2, echo: true })).json();
    expect(echo.choices[0].text).toBe('HiThe quick');
    // Streaming holds back len(stop) - 1 characters until the end (detokenizer.py @ v0.10.0).
    const sse = parseSse((await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 5, stop: ['fox'], stream: true })).text);
    expect(sse.events.map((e) => e.choices[0].text).join('')).toBe('The quick brown ');
    expect(sse.events.at(-1).choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: 'fox' });
  });

  it('min_tokens without max_tokens is checked against the room left, not --default-max-tokens (vllm/entrypoints/utils.py get_max_tokens @ v0.10.0)', async () => {
    const chat = await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], min_tokens: 20 });
    expect(chat.status).toBe(200);
    // The filler runs for max(--default-max-tokens, min_tokens) tokens.
    expect(chat.json().usage.completion_tokens).toBe(20);
    const comp = await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: null, min_tokens: 20 });
    expect(comp.status).toBe(200);
    expect(comp.json().usage.completion_tokens).toBe(20);
    // Beyond the room left it is still SamplingParams' 400, naming the max_tokens vLLM computed.
    const n = chat.json().usage.prompt_tokens;
    const over = await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], min_tokens: 40960 });
    expect(over.status).toBe(400);
    expect(over.json().message).toBe(`min_tokens must be less than or equal to max_tokens=${40960 - n}, got 40960.`);
  });

  it('completions echo with max_tokens 0: 200 with the prompt alone, one token generated (protocol.py echo_without_generation, serving_completion.py @ v0.10.0)', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi there', echo: true, max_tokens: 0 });
    expect(r.status).toBe(200);
    const b = r.json();
    expect(b.choices).toEqual([{ index: 0, text: 'hi there', logprobs: null, finish_reason: 'length', stop_reason: null, prompt_logprobs: null }]);
    expect(b.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 });
    const s = parseSse((await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi there', echo: true, max_tokens: 0, stream: true, stream_options: { include_usage: true } })).text);
    expect(s.done).toBe(true);
    expect(s.events).toHaveLength(2);
    expect(s.events[0].choices).toEqual([{ index: 0, text: 'hi there', logprobs: null, finish_reason: 'length', stop_reason: null }]);
    expect(s.events[1].usage).toEqual({ prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 });
    // Without echo, max_tokens 0 stays SamplingParams' 400.
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 0 })).status).toBe(400);
  });

  it('stream_options: include_usage defaults to true; continuous_usage_stats puts usage on every chunk', async () => {
    const r = parseSse((await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 2, stream: true, stream_options: { continuous_usage_stats: true } })).text);
    expect(r.events.map((e) => e.usage?.completion_tokens)).toEqual([0, 1, 2, 2]);
    expect(r.events.at(-1).choices).toEqual([]);
  });

  // protocol.py @ v0.10.0 StreamOptions `include_usage: Optional[bool] = True`: `{}` validates into a StreamOptions
  // model, truthy (pydantic's BaseModel defines neither __bool__ nor __len__), and serving_chat.py /
  // serving_completion.py @ v0.10.0 read `if stream_options: include_usage = stream_options.include_usage or ...`.
  it.each([
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }],
    ['/v1/completions', { prompt: 'hi' }],
  ])('stream_options: {} on %s ends the stream with the usage chunk (include_usage defaults to true)', async (path, body) => {
    const r = parseSse((await http(sim.url, 'POST', path, { ...body, max_tokens: 2, stream: true, stream_options: {} })).text);
    expect(r.done).toBe(true);
    expect(r.events.at(-1).choices).toEqual([]);
    expect(r.events.at(-1).usage).toMatchObject({ completion_tokens: 2 });
  });

  it('/ping, /load, /version, /detokenize, /tokenize return_token_strs, /v1/models permission', async () => {
    expect((await http(sim.url, 'GET', '/ping')).status).toBe(200);
    expect((await http(sim.url, 'POST', '/ping')).status).toBe(200);
    expect((await http(sim.url, 'GET', '/load')).json()).toEqual({ server_load: 0 });
    expect((await http(sim.url, 'GET', '/version')).json()).toEqual({ version: '0.10.0' });
    const t = (await http(sim.url, 'POST', '/tokenize', { prompt: 'Hello world', return_token_strs: true })).json();
    expect(t.token_strs).toEqual(['Hello', 'Ġworld']);
    expect((await http(sim.url, 'POST', '/detokenize', { tokens: t.tokens })).json()).toEqual({ prompt: 'Hello world' });
    const m = (await http(sim.url, 'GET', '/v1/models')).json();
    expect(m.data[0].permission[0]).toMatchObject({ object: 'model_permission', allow_sampling: true, organization: '*', group: null, is_blocking: false });
    expect(m.data[0].permission[0].id).toMatch(/^modelperm-[0-9a-f]{32}$/);
  });

  // vLLM v0.10.0 api_server.py `detokenize(request: DetokenizeRequest, raw_request)`: FastAPI validates the body before
  // serving_tokenization.py create_detokenize's `_check_model`, whose 404 comes before the tokenizer's OverflowError.
  it('/detokenize: a bad body is a 400 whatever the model; a valid one naming an unknown model is a 404, even out of range', async () => {
    const noTokens = await http(sim.url, 'POST', '/detokenize', { model: 'nope' });
    expect(noTokens.status).toBe(400);
    expect(noTokens.json().message).toContain("'loc': ('body', 'tokens'), 'msg': 'Field required'");
    const badToken = await http(sim.url, 'POST', '/detokenize', { model: 'nope', tokens: ['x'] });
    expect(badToken.status).toBe(400);
    expect(badToken.json().message).toContain("'type': 'int_parsing', 'loc': ('body', 'tokens', 0)");
    for (const tokens of [[1], [-1]]) {
      const r = await http(sim.url, 'POST', '/detokenize', { model: 'nope', tokens });
      expect([r.status, r.json().message]).toEqual([404, 'The model `nope` does not exist.']);
    }
  });

  it("HEAD is a 405 on GET routes (FastAPI APIRoutes; audit 39); CORS with vLLM's defaults (allow-origin *, preflight answered)", async () => {
    const head = await fetch(`${sim.url}/health`, { method: 'HEAD' });
    expect(head.status).toBe(405);
    const models = await fetch(`${sim.url}/v1/models`, { headers: { origin: 'http://example.test' } });
    expect(models.headers.get('access-control-allow-origin')).toBe('*');
    const pre = await fetch(`${sim.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'http://example.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(pre.status).toBe(200);
    expect(pre.headers.get('access-control-allow-methods')).toBe('DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT');
    expect(pre.headers.get('access-control-allow-headers')).toBe('content-type');
    const sse = await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 1, stream: true });
    // StreamingResponse sets only the media type.
    expect(sse.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(sse.headers['cache-control']).toBeUndefined();
  });

  // starlette/middleware/cors.py CORSMiddleware.send, which vLLM adds with allow_origins ["*"] (api_server.py @ v0.10.0
  // build_app): `if self.allow_all_origins and has_cookie: self.allow_explicit_origin(headers, origin)`, which sets the
  // request's Origin and adds `Vary: Origin`. A preflight is answered by preflight_response, which ignores cookies.
  it('CORS: a request with Origin and Cookie gets its origin echoed and Vary: Origin; without a cookie, * and no Vary', async () => {
    const withCookie = await fetch(`${sim.url}/v1/models`, { headers: { origin: 'https://ui.example', cookie: 'session=1' } });
    expect(withCookie.status).toBe(200);
    expect(withCookie.headers.get('access-control-allow-origin')).toBe('https://ui.example');
    expect(withCookie.headers.get('vary')).toBe('Origin');
    const chat = await fetch(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { origin: 'https://ui.example', cookie: 'a=b', 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
    });
    expect([chat.status, chat.headers.get('access-control-allow-origin'), chat.headers.get('vary')]).toEqual([200, 'https://ui.example', 'Origin']);
    const plain = await fetch(`${sim.url}/v1/models`, { headers: { origin: 'https://ui.example' } });
    expect([plain.headers.get('access-control-allow-origin'), plain.headers.get('vary')]).toEqual(['*', null]);
    const pre = await fetch(`${sim.url}/v1/models`, { method: 'OPTIONS', headers: { origin: 'https://ui.example', cookie: 'a=b', 'access-control-request-method': 'GET' } });
    expect([pre.status, pre.headers.get('access-control-allow-origin'), pre.headers.get('vary')]).toEqual([200, '*', null]);
  });

  it('vLLM 0.10.2 (a 0.10.2 hash algorithm) nests the error under "error" (#22099)', async () => {
    const s2 = await startSimulator({ port: 0, timeScale: 1000, prefixCachingHashAlgo: 'sha256_cbor' });
    try {
      const r = await http(s2.url, 'POST', '/v1/completions', { model: 'nope', prompt: 'x' });
      expect(r.status).toBe(404);
      expect(r.json()).toEqual({ error: { message: 'The model `nope` does not exist.', type: 'NotFoundError', param: null, code: 404 } });
      expect((await http(s2.url, 'GET', '/version')).json()).toEqual({ version: '0.10.2' });
    } finally {
      await s2.close();
    }
  });
});

describe('n > 1 and batched prompts: one engine request per choice (serving_completion.py, parallel_sampling.py @ v0.10.0)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: ['m'] });
  });
  afterAll(() => sim.close());

  it('completions: a batch of two prompts × n = 2 gives choices 0..3, prompt i·n + j; usage sums the prompts once', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: ['Hello', 'Good morning to you'], n: 2, max_tokens: 3 });
    expect(r.status).toBe(200);
    const b = r.json();
    expect(b.choices.map((c: any) => [c.index, c.text, c.finish_reason])).toEqual([
      [0, 'The quick brown', 'length'],
      [1, 'The quick brown', 'length'],
      [2, 'The quick brown', 'length'],
      [3, 'The quick brown', 'length'],
    ]);
    const p1 = (await http(sim.url, 'POST', '/tokenize', { prompt: 'Hello' })).json().count;
    const p2 = (await http(sim.url, 'POST', '/tokenize', { prompt: 'Good morning to you' })).json().count;
    expect(b.usage).toMatchObject({ prompt_tokens: p1 + p2, completion_tokens: 12, total_tokens: p1 + p2 + 12 });
    const s = parsePrometheus(await sim.metrics.metrics());
    // One n sample per parent (n = 2, twice), each child a finished request.
    expect(metricValue(s, 'vllm:request_params_n_count')).toBe(2);
    expect(metricValue(s, 'vllm:request_params_n_sum')).toBe(4);
    expect(metricValue(s, 'vllm:request_success_total', { finished_reason: 'length' })).toBe(4);
  });

  it('streaming chat with n = 2: a role chunk per choice, then each choice\'s tokens, then the summed usage', async () => {
    const r = await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], n: 2, max_tokens: 2, stream: true, stream_options: { include_usage: true } });
    const { events, done } = parseSse(r.text);
    expect(done).toBe(true);
    expect(events.slice(0, 2).map((e) => [e.choices[0].index, e.choices[0].delta])).toEqual([
      [0, { role: 'assistant', content: '' }],
      [1, { role: 'assistant', content: '' }],
    ]);
    for (const i of [0, 1]) {
      const mine = events.filter((e) => e.choices[0]?.index === i && 'content' in e.choices[0].delta && !('role' in e.choices[0].delta));
      expect(mine.map((e) => e.choices[0].delta.content)).toEqual(['The', ' quick']);
      expect(mine.at(-1).choices[0].finish_reason).toBe('length');
    }
    expect(events.at(-1).usage.completion_tokens).toBe(4);
  });

  it('n with greedy sampling is refused as vLLM refuses it', async () => {
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', n: 2, temperature: 0 });
    expect(r.status).toBe(400);
    expect(r.json().message).toBe('n must be 1 when using greedy sampling, got 2.');
  });
});

describe('n > 1 siblings share one arrival: vLLM stamps the parent once (processor.py lines 245-246, async_llm.py lines 237-253 @ 6eca337ce)', () => {
  /** Each choice's [queue_time_s, ttft_s] from its last chunk (kvroute_sim), by index. */
  const timings = async (sim: Simulator, body: unknown): Promise<number[][]> => {
    const { events } = parseSse((await http(sim.url, 'POST', '/v1/completions', body)).text);
    const out: number[][] = [];
    for (const e of events) if (e.kvroute_sim) out[e.choices[0].index] = [e.kvroute_sim.queue_time_s, e.kvroute_sim.ttft_s];
    return out;
  };

  it('their queue times and TTFTs do not depend on --time-scale (nor on the CPU time of the first child\'s step)', async () => {
    const prompt = longText(600, 21);
    // 1. No prefill lanes: all four are scheduled in their arrival step; children 1-3 hit child 0's blocks, whose KV is
    // ready when child 0's prefill ends, so all four have child 0's TTFT, as on vLLM.
    const fast = await startSimulator({ port: 0, timeScale: 1e6, prefillConcurrency: 0, simExtension: true });
    try {
      const n = (await http(fast.url, 'POST', '/tokenize', { prompt })).json().count;
      const t = await timings(fast, { prompt, n: 4, max_tokens: 2, stream: true });
      expect(t).toHaveLength(4);
      for (const [queue, ttft] of t) {
        expect(queue).toBe(0);
        expect(ttft).toBeCloseTo(0.02 + n * 0.00025, 9);
      }
    } finally {
      await fast.close();
    }
    // 2. One prefill lane (the default) and a prompt longer than a step's budget (2,048 tokens): children 1-3 wait for
    // child 0's first chunk, by the same model time at a time scale of 1e6 as on a manual clock, which stands still
    // while the request is submitted.
    const body = { prompt: longText(2400, 22), n: 4, max_tokens: 2, stream: true };
    const clock = new ManualClock();
    const ref = await startSimulator({ port: 0, clock, simExtension: true });
    let expected: number[][];
    try {
      const pending = timings(ref, body);
      await waitFor(() => ref.engine.stats().running + ref.engine.stats().waiting === 4, 'four children queued');
      clock.runAll();
      expected = await pending;
    } finally {
      await ref.close();
    }
    expect(expected[1][0]).toBeGreaterThan(0);
    const scaled = await startSimulator({ port: 0, timeScale: 1e6, simExtension: true });
    try {
      const got = await timings(scaled, body);
      expect(got).toHaveLength(4);
      got.forEach(([queue, ttft], i) => {
        expect(queue).toBeCloseTo(expected[i][0], 9);
        expect(ttft).toBeCloseTo(expected[i][1], 9);
      });
    } finally {
      await scaled.close();
    }
  });
});

describe('a reply without max_tokens ends at --default-max-tokens, standing in for EOS (check_stop, vllm/v1/core/sched/utils.py @ 6eca337ce lines 10-36)', () => {
  it('finishes "stop" (stop_reason null, request_success{stop}); "length" when it fills the context, ignores EOS, or has max_tokens', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, maxModelLen: 64, servedModelNames: ['m'] });
    try {
      const chat = (extra: Record<string, unknown>) => http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], ...extra });
      const completion = (extra: Record<string, unknown>) => http(sim.url, 'POST', '/v1/completions', extra);
      const choice = async (r: Promise<{ json(): any }>) => (await r).json().choices[0];
      // vLLM runs it until EOS (FINISHED_STOPPED, no stop_reason); the filler's 16th token stands for that EOS.
      const plain = (await chat({})).json();
      expect(plain.usage.completion_tokens).toBe(16);
      expect(plain.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: null });
      const sse = parseSse((await chat({ stream: true })).text);
      expect(sse.events.at(-1).choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: null });
      // Completions: max_tokens null means none (CompletionRequest.max_tokens defaults to 16, which caps: `length`).
      expect(await choice(completion({ prompt: new Array(40).fill(785), max_tokens: null }))).toMatchObject({ finish_reason: 'stop' });
      expect(await choice(completion({ prompt: 'hi' }))).toMatchObject({ finish_reason: 'length' });
      expect(await choice(chat({ max_tokens: 16 }))).toMatchObject({ finish_reason: 'length' });
      // ignore_eos: vLLM runs the reply to the end of the context, FINISHED_LENGTH_CAPPED.
      expect(await choice(chat({ ignore_eos: true }))).toMatchObject({ finish_reason: 'length' });
      // The room left (64 − prompt) at or below --default-max-tokens: the reply fills max_model_len, `length` on vLLM.
      const capped = (await completion({ prompt: new Array(56).fill(785), max_tokens: null })).json();
      expect(capped.usage.completion_tokens).toBe(8);
      expect(capped.choices[0].finish_reason).toBe('length');
      expect(await choice(completion({ prompt: new Array(48).fill(785), max_tokens: null }))).toMatchObject({ finish_reason: 'length' });
      const s = parsePrometheus(await sim.metrics.metrics());
      expect(metricValue(s, 'vllm:request_success_total', { finished_reason: 'stop' })).toBe(3);
      expect(metricValue(s, 'vllm:request_success_total', { finished_reason: 'length' })).toBe(5);
    } finally {
      await sim.close();
    }
  });
});

describe('LoRA adapters in /v1/models (serving_models.py @ v0.10.0)', () => {
  it('a card per adapter: root = its path, parent = the first served name, max_model_len null; usable as model', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: ['base'], enableLora: true, loraModules: ['sql', 'chat'], loraModulePaths: { sql: '/adapters/sql' } });
    try {
      const m = (await http(sim.url, 'GET', '/v1/models')).json();
      expect(m.data.map((c: any) => [c.id, c.root, c.parent, c.max_model_len])).toEqual([
        ['base', 'Qwen/Qwen3-0.6B', null, 40960],
        ['sql', '/adapters/sql', 'base', null],
        ['chat', 'chat', 'base', null],
      ]);
      const r = await http(sim.url, 'POST', '/v1/completions', { model: 'sql', prompt: 'x', max_tokens: 1 });
      expect(r.json().model).toBe('sql');
    } finally {
      await sim.close();
    }
  });
});

describe('--lora-modules base_model_name (serving_models.py @ v0.10.0 init_static_loras, load_lora_adapter, show_available_models)', () => {
  // LoRAModulePath.base_model_name is passed to load_lora_adapter, which keeps it when `self.is_base_model(...)`;
  // show_available_models writes `parent=lora.base_model_name if lora.base_model_name else self.base_model_paths[0].name`.
  it('a JSON item naming the second served name has it as parent; a name that is not served is ignored', async () => {
    const r = parseCli([
      'Qwen/Qwen3-0.6B', '--served-model-name', 'base-a', 'base-b', '--enable-lora', '--lora-modules',
      '{"name": "sql", "path": "/adapters/sql", "base_model_name": "base-b"}',
      '{"name": "chat", "path": "/adapters/chat", "base_model_name": "elsewhere"}',
    ]);
    if (r.kind !== 'run') throw new Error('expected run');
    expect(r.options.loraModuleBaseModels).toEqual({ sql: 'base-b', chat: 'elsewhere' });
    const sim = await startSimulator({ ...r.options, port: 0, host: '127.0.0.1', timeScale: 1000 });
    try {
      const cards = (await http(sim.url, 'GET', '/v1/models')).json().data as { id: string; root: string; parent: string | null }[];
      expect(cards.map((c) => [c.id, c.root, c.parent])).toEqual([
        ['base-a', MODEL, null],
        ['base-b', MODEL, null],
        ['sql', '/adapters/sql', 'base-b'],
        ['chat', '/adapters/chat', 'base-a'],
      ]);
    } finally {
      await sim.close();
    }
  });
});

describe('runtime LoRA updating: /v1/load_lora_adapter and /v1/unload_lora_adapter (api_server.py, serving_models.py @ v0.10.0)', () => {
  it('VLLM_ALLOW_RUNTIME_LORA_UPDATING is read as vllm/envs.py @ v0.10.0 does: "1" or "true" in any case, stripped', () => {
    for (const v of ['1', 'true', 'True', ' TRUE ']) expect(runtimeLoraUpdatingFromEnv(v)).toBe(true);
    for (const v of [undefined, '0', 'yes', 'on', '2', '']) expect(runtimeLoraUpdatingFromEnv(v)).toBe(false);
  });

  it('without the variable the routes do not exist (404)', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, enableLora: true, allowRuntimeLoraUpdating: false });
    try {
      expect((await http(sim.url, 'POST', '/v1/load_lora_adapter', { lora_name: 'sql', lora_path: '/a' })).status).toBe(404);
      expect((await http(sim.url, 'POST', '/v1/unload_lora_adapter', { lora_name: 'sql' })).status).toBe(404);
    } finally {
      await sim.close();
    }
  });

  it('loads an adapter (listed, served, in vllm:lora_requests_info), refuses a second load, unloads it, then 404s', async () => {
    const saved = process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING;
    // GIE's config/manifests/vllm/gpu-deployment.yaml @ v1.5.0 sets the variable to "true" with --enable-lora.
    process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING = 'True';
    const sim = await startSimulator({ port: 0, timeScale: 1000, servedModelNames: ['base'], enableLora: true, maxLoras: 2, loraModules: ['static'] });
    if (saved === undefined) delete process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING;
    else process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING = saved;
    try {
      const load = await http(sim.url, 'POST', '/v1/load_lora_adapter', { lora_name: 'sql', lora_path: '/adapters/sql' });
      expect(load.status).toBe(200);
      expect(load.text).toBe("Success: LoRA adapter 'sql' added successfully.");
      // Starlette's Response without a media type: no content-type.
      expect(load.headers['content-type']).toBeUndefined();
      const cards = (await http(sim.url, 'GET', '/v1/models')).json().data as { id: string; root: string; parent: string | null }[];
      expect(cards.map((c) => [c.id, c.root, c.parent])).toEqual([
        ['base', MODEL, null],
        ['static', 'static', 'base'],
        ['sql', '/adapters/sql', 'base'],
      ]);
      const gen = await http(sim.url, 'POST', '/v1/completions', { model: 'sql', prompt: 'hi', max_tokens: 2 });
      expect(gen.status).toBe(200);
      expect(gen.json().model).toBe('sql');
      const info = parsePrometheus((await http(sim.url, 'GET', '/metrics')).text).filter((s) => s.name === 'vllm:lora_requests_info');
      expect(info.some((s) => s.labels.running_lora_adapters === 'sql' && s.labels.max_lora === '2')).toBe(true);
      const again = await http(sim.url, 'POST', '/v1/load_lora_adapter', { lora_name: 'sql', lora_path: '/elsewhere' });
      expect(again.status).toBe(400);
      expect(again.json()).toEqual({ object: 'error', message: "The lora adapter 'sql' has already been loaded.", type: 'InvalidUserInput', param: null, code: 400 });
      const empty = await http(sim.url, 'POST', '/v1/load_lora_adapter', { lora_name: 'x', lora_path: '' });
      expect(empty.json()).toMatchObject({ message: "Both 'lora_name' and 'lora_path' must be provided.", type: 'InvalidUserInput', code: 400 });
      const missing = await http(sim.url, 'POST', '/v1/load_lora_adapter', { lora_name: 'x' });
      expect(missing.status).toBe(400);
      expect(missing.json().message).toContain("'type': 'missing', 'loc': ('body', 'lora_path')");
      const unload = await http(sim.url, 'POST', '/v1/unload_lora_adapter', { lora_name: 'sql', lora_int_id: 2 });
      expect(unload.status).toBe(200);
      expect(unload.text).toBe("Success: LoRA adapter 'sql' removed successfully.");
      expect((await http(sim.url, 'GET', '/v1/models')).json().data.map((c: { id: string }) => c.id)).toEqual(['base', 'static']);
      expect((await http(sim.url, 'POST', '/v1/completions', { model: 'sql', prompt: 'hi', max_tokens: 1 })).status).toBe(404);
      const unknown = await http(sim.url, 'POST', '/v1/unload_lora_adapter', { lora_name: 'sql' });
      expect(unknown.status).toBe(404);
      expect(unknown.json()).toEqual({ object: 'error', message: "The lora adapter 'sql' cannot be found.", type: 'NotFoundError', param: null, code: 404 });
      // A static adapter unloads the same way.
      expect((await http(sim.url, 'POST', '/v1/unload_lora_adapter', { lora_name: 'static' })).status).toBe(200);
    } finally {
      await sim.close();
    }
  });
});

describe('logprobs of the filler (serving_chat.py _create_chat_logprobs, serving_completion.py _create_completion_logprobs @ v0.10.0)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000 });
  });
  afterAll(() => sim.close());

  // protocol.py @ v0.10.0 `return_tokens_as_token_ids: Optional[bool]` on both requests; serving_chat.py
  // _create_chat_logprobs and serving_completion.py _create_completion_logprobs pass it to _get_decoded_token
  // (serving_engine.py @ v0.10.0), which returns f"token_id:{token_id}" for the sampled token and every alternative.
  it('return_tokens_as_token_ids names every logprob token token_id:<id> (chat and completions, streamed or not)', async () => {
    const chat = (await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 2, logprobs: true, top_logprobs: 2, return_tokens_as_token_ids: true })).json();
    const content = chat.choices[0].logprobs.content as { token: string; bytes: number[]; top_logprobs: { token: string }[] }[];
    expect(content).toHaveLength(2);
    for (const c of content) {
      expect(c.token).toMatch(/^token_id:\d+$/);
      expect(c.bytes).toEqual(Array.from(Buffer.from(c.token)));
      expect(c.top_logprobs.map((t) => t.token)).toEqual([c.token, expect.stringMatching(/^token_id:\d+$/)]);
      expect(c.top_logprobs[1]!.token).not.toBe(c.token);
    }
    const cmpl = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 2, logprobs: 1, return_tokens_as_token_ids: 'true' })).json();
    const lp = cmpl.choices[0].logprobs;
    expect(lp.tokens).toEqual([expect.stringMatching(/^token_id:\d+$/), expect.stringMatching(/^token_id:\d+$/)]);
    // _create_completion_logprobs advances text_offset by len(token), the token_id string's.
    expect(lp.text_offset).toEqual([0, lp.tokens[0].length]);
    expect(Object.keys(lp.top_logprobs[0])[0]).toBe(lp.tokens[0]);
    const streamed = parseSse((await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 2, logprobs: 0, stream: true, return_tokens_as_token_ids: true })).text);
    expect(streamed.events.map((e) => e.choices[0].logprobs.tokens[0])).toEqual(lp.tokens);
    // false (or absent): the text, as before.
    const plain = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'x', max_tokens: 2, logprobs: 0, return_tokens_as_token_ids: false })).json();
    expect(plain.choices[0].logprobs.tokens.join('')).toBe(plain.choices[0].text);
  });

  it('chat: each token logprob 0.0 with its bytes, top_logprobs = the token then other words at -9999.0', async () => {
    const b = (await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 2, logprobs: true, top_logprobs: 2 })).json();
    const content = b.choices[0].logprobs.content;
    expect(content).toHaveLength(2);
    expect(content[0]).toEqual({
      token: 'The',
      logprob: 0,
      bytes: [84, 104, 101],
      top_logprobs: [
        { token: 'The', logprob: 0, bytes: [84, 104, 101] },
        { token: ' quick', logprob: -9999, bytes: Array.from(Buffer.from(' quick')) },
      ],
    });
    const plain = (await http(sim.url, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 1, logprobs: true })).json();
    expect(plain.choices[0].logprobs.content[0].top_logprobs).toEqual([]);
  });

  it('completions: text_offset, token_logprobs, tokens, top_logprobs; streamed per chunk with running offsets', async () => {
    const b = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 3, logprobs: 1 })).json();
    expect(b.choices[0].logprobs).toEqual({
      text_offset: [0, 3, 9],
      token_logprobs: [0, 0, 0],
      tokens: ['The', ' quick', ' brown'],
      top_logprobs: [{ The: 0 }, { ' quick': 0 }, { ' brown': 0 }],
    });
    const { events } = parseSse((await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 3, logprobs: 0, stream: true })).text);
    expect(events.map((e) => e.choices[0].logprobs.text_offset)).toEqual([[0], [3], [9]]);
  });

  it('prompt_logprobs (serving_completion.py / serving_chat.py clamp_prompt_logprobs @ v0.10.0): null first, then the prompt\'s token and the top k; chat echo implies them (top_logprobs defaults to 0)', async () => {
    const tok = (await http(sim.url, 'POST', '/tokenize', { prompt: 'Hello there world' })).json().tokens as number[];
    const c = (await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hello there world', max_tokens: 1, prompt_logprobs: 2 })).json();
    const pl = c.choices[0].prompt_logprobs;
    expect(pl).toHaveLength(tok.length);
    expect(pl[0]).toBeNull();
    for (let i = 1; i < tok.length; i++) {
      expect(Object.keys(pl[i])).toHaveLength(2);
      expect(pl[i][String(tok[i])]).toMatchObject({ logprob: 0, rank: 1 });
      expect(Object.values(pl[i]).map((e: any) => e.rank).sort()).toEqual([1, 2]);
    }
    // Chat echo of the last assistant message: vLLM's ChatCompletionRequest sets prompt_logprobs = top_logprobs (0).
    const chat = (await http(sim.url, 'POST', '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Hel' }], echo: true, add_generation_prompt: false, continue_final_message: true, max_tokens: 2,
    }));
    expect(chat.status).toBe(200);
    const body = chat.json();
    expect(body.choices[0].message.content.startsWith('Hel')).toBe(true);
    expect(body.prompt_logprobs[0]).toBeNull();
    expect(body.prompt_logprobs.length).toBe(body.usage.prompt_tokens);
    expect(Object.keys(body.prompt_logprobs[1])).toHaveLength(1);
    // Without them the member is null.
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', max_tokens: 1 })).json().choices[0].prompt_logprobs).toBeNull();
  });

  it('completions echo with logprobs (prompt logprobs merged into the choice\'s logprobs) is not simulated (501); over 20 logprobs is vLLM\'s 400', async () => {
    expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', echo: true, logprobs: 1 })).status).toBe(501);
    const r = await http(sim.url, 'POST', '/v1/completions', { prompt: 'Hi', logprobs: 21 });
    expect(r.status).toBe(400);
    expect(r.json().message).toBe('Requested sample logprobs of 21, which is greater than max allowed: 20');
  });
});

describe('POST /reset_prefix_cache and the other dev-mode routes, as in vLLM 0.10 (VLLM_SERVER_DEV_MODE)', () => {
  // vllm/entrypoints/openai/api_server.py @ 6eca337ce (v0.10.0) lines 970-991: the route is defined only under
  // `if envs.VLLM_SERVER_DEV_MODE:`; vllm/envs.py: bool(int(os.getenv("VLLM_SERVER_DEV_MODE", "0"))).
  const withDevMode = async <T>(value: string | undefined, f: () => Promise<T>): Promise<T> => {
    const saved = process.env.VLLM_SERVER_DEV_MODE;
    if (value === undefined) delete process.env.VLLM_SERVER_DEV_MODE;
    else process.env.VLLM_SERVER_DEV_MODE = value;
    try {
      return await f();
    } finally {
      if (saved === undefined) delete process.env.VLLM_SERVER_DEV_MODE;
      else process.env.VLLM_SERVER_DEV_MODE = saved;
    }
  };

  it.each([[undefined], ['0'], ['00']])('VLLM_SERVER_DEV_MODE=%s: no such route, 404 for every method', async (value) => {
    const sim = await withDevMode(value, () => startSimulator({ port: 0 }));
    try {
      expect(sim.options.serverDevMode).toBe(false);
      for (const method of ['POST', 'GET']) {
        const r = await http(sim.url, method, '/reset_prefix_cache');
        expect(r.status).toBe(404);
        expect(r.json()).toEqual({ detail: 'Not Found' });
      }
    } finally {
      await sim.close();
    }
  });

  it('VLLM_SERVER_DEV_MODE=1: resets; ?device=CPU is the 500 of AsyncLLM\'s "Not supported on CPU." and resets nothing', async () => {
    const clock = new ManualClock();
    const sim = await withDevMode('1', () => startSimulator({ port: 0, clock }));
    try {
      expect(sim.options.serverDevMode).toBe(true);
      const prompt = Array.from({ length: 40 }, (_, i) => 1000 + i);
      const r = http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: 1 });
      await waitFor(() => sim.engine.stats().running + sim.engine.stats().waiting > 0, 'the request to reach the engine');
      clock.runAll();
      expect((await r).status).toBe(200);
      expect(sim.engine.peekCachedTokens(prompt)).toBe(32);
      // vllm/v1/engine/async_llm.py @ 6eca337ce lines 559-563: `if device == Device.CPU: raise ValueError(...)`; an
      // unknown name is a KeyError from `Device[device_str.upper()]`. Neither is handled: Starlette's plain 500.
      for (const q of ['?device=CPU', '?device=cpu', '?device=tpu', '?device=', '?device=gpu&device=CPU']) {
        const bad = await http(sim.url, 'POST', `/reset_prefix_cache${q}`);
        expect([q, bad.status, bad.headers['content-type'], bad.text]).toEqual([q, 500, 'text/plain; charset=utf-8', 'Internal Server Error']);
      }
      expect(sim.engine.peekCachedTokens(prompt)).toBe(32);
      expect((await http(sim.url, 'GET', '/reset_prefix_cache')).status).toBe(405);
      const ok = await http(sim.url, 'POST', '/reset_prefix_cache?device=gpu');
      expect(ok.status).toBe(200);
      expect(ok.text).toBe('');
      expect(ok.headers['x-kvroute-prefix-cache-reset']).toBe('done');
      expect(sim.engine.peekCachedTokens(prompt)).toBe(0);
      expect((await http(sim.url, 'POST', '/reset_prefix_cache')).status).toBe(200);
    } finally {
      await sim.close();
    }
  });

  // api_server.py @ v0.10.0, the `if envs.VLLM_SERVER_DEV_MODE:` block: GET /server_info (`{"vllm_config":
  // str(vllm_config)}`), POST /sleep (`?level=`, int()), POST /wake_up (`?tags=`, getlist), GET /is_sleeping
  // (`{"is_sleeping": ...}`); the executor keeps sleeping_tags (vllm/executor/executor_base.py @ v0.10.0 sleep, wake_up).
  it('the other dev-mode routes: /server_info, /sleep, /wake_up (by tags), /is_sleeping; 404 without dev mode', async () => {
    const off = await startSimulator({ port: 0, timeScale: 1000, serverDevMode: false });
    try {
      for (const [method, path] of [['GET', '/server_info'], ['POST', '/sleep'], ['POST', '/wake_up'], ['GET', '/is_sleeping']]) {
        expect([path, (await http(off.url, method!, path!)).status]).toEqual([path, 404]);
      }
    } finally {
      await off.close();
    }
    const sim = await startSimulator({ port: 0, timeScale: 1000, serverDevMode: true });
    try {
      const info = await http(sim.url, 'GET', '/server_info');
      expect(info.status).toBe(200);
      expect(info.json().vllm_config).toMatch(/^model='Qwen\/Qwen3-0\.6B', speculative_config=None, tokenizer='Qwen\/Qwen3-0\.6B', .*max_seq_len=40960, /);
      const sleeping = async (): Promise<boolean> => (await http(sim.url, 'GET', '/is_sleeping')).json().is_sleeping;
      expect(await sleeping()).toBe(false);
      expect((await http(sim.url, 'POST', '/wake_up')).status).toBe(200);
      expect((await http(sim.url, 'POST', '/sleep?level=x')).status).toBe(500);
      expect(await sleeping()).toBe(false);
      const slept = await http(sim.url, 'POST', '/sleep?level=2');
      expect([slept.status, slept.text]).toEqual([200, '']);
      expect(await sleeping()).toBe(true);
      // A tag that is not asleep: a warning, nothing woken.
      expect((await http(sim.url, 'POST', '/wake_up?tags=weights&tags=other')).status).toBe(200);
      expect(await sleeping()).toBe(true);
      expect((await http(sim.url, 'POST', '/wake_up?tags=weights')).status).toBe(200);
      expect(await sleeping()).toBe(true);
      expect((await http(sim.url, 'POST', '/wake_up?tags=kv_cache')).status).toBe(200);
      expect(await sleeping()).toBe(false);
      expect((await http(sim.url, 'POST', '/sleep')).status).toBe(200);
      // vLLM's API server does not refuse requests while asleep.
      expect((await http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 1 })).status).toBe(200);
      expect((await http(sim.url, 'POST', '/wake_up')).status).toBe(200);
      expect(await sleeping()).toBe(false);
      expect((await http(sim.url, 'GET', '/sleep')).status).toBe(405);
    } finally {
      await sim.close();
    }
  });

  it('a value Python\'s int() refuses stops the start, as vLLM\'s API server fails to import; serverDevMode overrides the env', async () => {
    await withDevMode('true', async () => {
      await expect(startSimulator({ port: 0 })).rejects.toThrow(/^VLLM_SERVER_DEV_MODE: expected an integer/);
      const sim = await startSimulator({ port: 0, serverDevMode: true });
      try {
        expect((await http(sim.url, 'POST', '/reset_prefix_cache')).status).toBe(200);
      } finally {
        await sim.close();
      }
    });
    expect([' 1 ', '+2', '1_0', '-1'].map(serverDevModeFromEnv)).toEqual([true, true, true, true]);
    expect(['0', '00', '-0', '0_0'].map(serverDevModeFromEnv)).toEqual([false, false, false, false]);
    expect(serverDevModeFromEnv(undefined)).toBe(false);
    for (const v of ['', 'yes', '1.0', '1__0']) expect(() => serverDevModeFromEnv(v)).toThrow(/VLLM_SERVER_DEV_MODE/);
  });
});

/** One GET over a fresh connection, with Node's raw response headers (hop-by-hop ones included) and the socket. */
function rawGet(base: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base + path);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: 'GET', agent }, (res: IncomingMessage) => {
      const socket = res.socket;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, socket }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe("uvicorn's connection behaviour (vllm/entrypoints/openai/api_server.py @ v0.10.0 L1832, vllm/envs.py L602-603, launcher.py)", () => {
  it('answers with `server: uvicorn` (server_header=True) on every response, and keeps idle connections 5 s by default (VLLM_HTTP_TIMEOUT_KEEP_ALIVE)', async () => {
    const saved = process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE;
    delete process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE;
    const sim = await startSimulator({ port: 0, timeScale: 1000 });
    try {
      for (const path of ['/health', '/v1/models', '/nope']) {
        const r = await rawGet(sim.url, path);
        expect(r.headers.server).toBe('uvicorn');
        // uvicorn (h11) announces no idle timeout: no Keep-Alive header, whatever the timeout.
        expect(r.headers['keep-alive']).toBeUndefined();
        r.socket.destroy();
      }
      const c = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: 2 });
      expect(c.headers.server).toBe('uvicorn');
    } finally {
      if (saved !== undefined) process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE = saved;
      await sim.close();
    }
  });

  it('--timeout-keep-alive N closes a connection idle for N seconds, wall time (generous bounds)', async () => {
    const sim = await startSimulator({ port: 0, timeScale: 1000, timeoutKeepAlive: 1 });
    try {
      // A bare TCP client, which keeps the connection until the server closes it (Node's Agent would drop it itself).
      const url = new URL(sim.url);
      const socket = connect(Number(url.port), url.hostname);
      let text = '';
      let idleFrom = 0;
      const closed = new Promise<number>((resolve) => socket.once('end', () => resolve(Date.now())));
      socket.on('data', (d: Buffer) => {
        text += d.toString('utf8');
        if (idleFrom === 0 && text.includes('\r\n\r\n')) idleFrom = Date.now();
      });
      socket.write('GET /health HTTP/1.1\r\nHost: sim\r\n\r\n');
      const closedAt = await closed;
      socket.destroy();
      expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(text.toLowerCase()).not.toContain('keep-alive: timeout');
      // Closed by the server (the simulator's uvicorn-like timer: Node's own idle close is off), not before its timeout;
      // a slow machine only makes it later.
      expect(closedAt - idleFrom).toBeGreaterThanOrEqual(900);
      expect(closedAt - idleFrom).toBeLessThan(10_000);
    } finally {
      await sim.close();
    }
  }, 15_000);
});
