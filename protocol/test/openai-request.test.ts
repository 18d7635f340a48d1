import { createHash } from 'node:crypto';
import { batchPrompts, isJsonContentType, parseRequestBody, promptHead, promptSlice, RequestBodyError } from '../src/openai/request';

const parse = (v: unknown) => parseRequestBody(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));

describe('OpenAI request bodies', () => {
  // llm-d-router v0.10.0 keys each prompt of a batch (requesthandling/types.go TokenizedPrompt.PerPromptTokens,
  // tokenizer/estimate.go estimateMultiStringCompletions); until session 65 only the first prompt was kept.
  test('completions: prompt as a string or token ids; a batch keeps every prompt, each of which vLLM prefills on its own (serving_engine.py @ v0.10.0 _tokenize_prompt_inputs)', () => {
    expect(parse({ model: 'm', prompt: 'hello' })).toEqual({ model: 'm', input: { kind: 'text', text: 'hello' }, prompt: 'hello', stream: false });
    expect(parse({ model: 'm', prompt: ['a', 'b', 'c'], stream: true })).toEqual({ model: 'm', input: { kind: 'text', text: 'a', rest: ['b', 'c'] }, prompt: 'a', stream: true });
    // A batch of one is a single prompt.
    expect(parse({ model: 'm', prompt: ['a'] }).input).toEqual({ kind: 'text', text: 'a' });
    expect(parse({ model: 'm', prompt: [1, 2, 3] })).toMatchObject({ input: { kind: 'tokens', tokens: [1, 2, 3] }, prompt: '1 2 3' });
    // lm-evaluation-harness's local-completions sends token-id batches: the ids are the prompt, not decimal text.
    expect(parse({ model: 'm', prompt: [[9707, 11, 1879, 0], [5, 6]] }).input).toEqual({ kind: 'tokens', tokens: [9707, 11, 1879, 0], rest: [[5, 6]] });
    expect(parse({ model: 'm', prompt: [[5, 6]] }).input).toEqual({ kind: 'tokens', tokens: [5, 6] });
  });

  test('batchPrompts: each prompt of a batch as an input of its own, add_special_tokens on each; any other input alone', () => {
    expect(batchPrompts(parse({ model: 'm', prompt: ['a', 'b'], add_special_tokens: false }).input))
      .toEqual([{ kind: 'text', text: 'a', addSpecialTokens: false }, { kind: 'text', text: 'b', addSpecialTokens: false }]);
    expect(batchPrompts(parse({ model: 'm', input: [[1, 2], [3]] }).input)).toEqual([{ kind: 'tokens', tokens: [1, 2] }, { kind: 'tokens', tokens: [3] }]);
    const single = parse({ model: 'm', prompt: 'a' }).input;
    expect(batchPrompts(single)).toEqual([single]);
    expect(batchPrompts(single)[0]).toBe(single);
  });

  test('add_special_tokens is read as vLLM\'s pydantic bool reads it ("false" and 0 are false)', () => {
    for (const [sent, read] of [['false', false], [0, false], ['no', false], [true, true], ['1', true]] as const) {
      expect(parse({ model: 'm', prompt: 'x', add_special_tokens: sent }).input).toEqual({ kind: 'text', text: 'x', addSpecialTokens: read });
      expect(parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], add_special_tokens: sent }).input).toMatchObject({ addSpecialTokens: read });
    }
  });

  test('prompt logprobs, which vLLM serves without a prefix-cache lookup (kv_cache_manager.py @ v0.10.0 get_computed_blocks), are marked', () => {
    expect(parse({ model: 'm', prompt: 'x', prompt_logprobs: 0 }).skipsPrefixCache).toBe(true);
    expect(parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], prompt_logprobs: 1 }).skipsPrefixCache).toBe(true);
    // echo becomes prompt logprobs of the request's logprobs count (to_sampling_params): a completion's `logprobs`, a
    // chat's `top_logprobs`, 0 when absent, so a chat's echo alone; an explicit null top_logprobs leaves them off.
    expect(parse({ model: 'm', prompt: 'x', echo: true, logprobs: 0 }).skipsPrefixCache).toBe(true);
    expect(parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], echo: true }).skipsPrefixCache).toBe(true);
    expect(parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], echo: true, top_logprobs: null }).skipsPrefixCache).toBeUndefined();
    expect(parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], echo: false }).skipsPrefixCache).toBeUndefined();
    expect(parse({ model: 'm', prompt: 'x', echo: true }).skipsPrefixCache).toBeUndefined();
    expect(parse({ model: 'm', prompt: 'x', logprobs: 2, prompt_logprobs: null }).skipsPrefixCache).toBeUndefined();
  });

  // An image is keyed by its URL, as GIE v1.5.0 approximateprefix/hashing.go (json.Marshal of the messages) and
  // llm-d-router v0.10.0 tokenizer/estimate.go appendMMAsset (placeholders hashed from the URL) key it; until
  // 2026-12-06 it was skipped.
  test('chat: messages rendered as ChatML turns, array content parts joined, an image as a placeholder digested from its URL', () => {
    const body = {
      model: 'm',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: [{ type: 'text', text: 'Look: ' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'what is it?' }] },
        { role: 'assistant', content: null, tool_calls: [] },
      ],
    };
    const image = `<|image_url:${createHash('sha256').update('x').digest('base64url').slice(0, 22)}|>`;
    expect(parse(body).prompt).toBe(`<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nLook: ${image}what is it?<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n`);
  });

  test('a conversation\'s next turn extends the previous turn\'s text, so their prefixes match', () => {
    const turn1 = parse({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }).prompt;
    const turn2 = parse({ model: 'm', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'more' }] }).prompt;
    expect(turn2.startsWith(turn1)).toBe(true);
  });

  test('chat: tools, add_generation_prompt, continue_final_message, chat_template_kwargs and cache_salt are kept for tokenization', () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: {} } }];
    const parsed = parse({
      model: 'm', messages: [{ role: 'user', content: 'x' }], tools, add_generation_prompt: false,
      continue_final_message: true, chat_template_kwargs: { enable_thinking: false }, cache_salt: 'tenant-a',
    });
    expect(parsed.input).toEqual({
      kind: 'chat', messages: [{ role: 'user', content: 'x' }], tools, addGenerationPrompt: false,
      continueFinalMessage: true, chatTemplateKwargs: { enable_thinking: false },
    });
    expect(parsed.cacheSalt).toBe('tenant-a');
    expect(parse({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).input).toMatchObject({ addGenerationPrompt: true, continueFinalMessage: false });
    // vLLM's pydantic model reads booleans in lax mode, so the EPP does too (audit s36: "yes", 1, "true" were 400s
    // from the EPP that vLLM serves).
    for (const [sent, read] of [['yes', true], [' TRUE ', true], [1, true], ['on', true], ['t', true], ['no', false], [0, false], ['off', false], ['F', false], ['0', false]] as const) {
      expect({ sent, input: parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], add_generation_prompt: sent, continue_final_message: sent }).input })
        .toMatchObject({ sent, input: { addGenerationPrompt: read, continueFinalMessage: read } });
    }
  });

  test('truncate_prompt_tokens is kept when it is a positive integer (vLLM\'s Field(ge=1)); any other value is left for the engine to refuse', () => {
    expect(parse({ model: 'm', prompt: 'x', truncate_prompt_tokens: 64 }).truncatePromptTokens).toBe(64);
    for (const bad of [0, -1, 2.5, '64', null]) expect(parse({ model: 'm', prompt: 'x', truncate_prompt_tokens: bad }).truncatePromptTokens).toBeUndefined();
    expect(parse({ model: 'm', prompt: 'x' }).truncatePromptTokens).toBeUndefined();
  });

  // Every JSON inference endpoint of vllm/entrypoints/openai/api_server.py @ v0.10.0 is routed by what it carries.
  test.each<[string, unknown, { kind: string; prompt: string }]>([
    ['/v1/embeddings (text)', { model: 'm', input: 'embed me' }, { kind: 'text', prompt: 'embed me' }],
    ['/v1/embeddings (batch)', { model: 'm', input: ['a', 'b'] }, { kind: 'text', prompt: 'a' }],
    ['/v1/embeddings (token ids)', { model: 'm', input: [5, 6] }, { kind: 'tokens', prompt: '5 6' }],
    ['/v1/embeddings (chat)', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, { kind: 'chat', prompt: '<|im_start|>user\nhi<|im_end|>\n' }],
    ['/v1/responses (text)', { model: 'm', input: 'tell me' }, { kind: 'text', prompt: 'tell me' }],
    // Items are only the Responses API's: read as it renders them (a chat with the generation prompt), path or not.
    ['/v1/responses (items)', { model: 'm', input: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'input_text', text: 'why?' }] }] },
      { kind: 'chat', prompt: '<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nwhy?<|im_end|>\n' }],
    ['/v1/score', { model: 'm', text_1: 'query', text_2: ['doc a', 'doc b'] }, { kind: 'text', prompt: 'query\ndoc a\ndoc b' }],
    ['/v1/rerank', { model: 'm', query: 'q', documents: ['d1', 'd2'] }, { kind: 'text', prompt: 'q\nd1\nd2' }],
    ['/detokenize (nothing to match)', { model: 'm', tokens: [1, 2] }, { kind: 'none', prompt: '' }],
  ])('routes %s by its input', (_endpoint, body, expected) => {
    const parsed = parse(body);
    expect(parsed.input.kind).toBe(expected.kind);
    expect(parsed.prompt).toBe(expected.prompt);
  });

  describe('with the request path: what that vLLM endpoint prefills', () => {
    const at = (path: string, v: unknown) => parseRequestBody(Buffer.from(JSON.stringify(v)), path);

    test('/v1/responses renders its input as a chat: instructions as a system message, a string input as the user\'s (serving_responses.py _construct_input_messages)', () => {
      expect(at('/v1/responses', { model: 'm', input: 'Hello, world!' }).input)
        .toEqual({ kind: 'chat', messages: [{ role: 'user', content: 'Hello, world!' }], addGenerationPrompt: true, continueFinalMessage: false, estimateJson: [{ input: 'Hello, world!' }] });
      expect(at('/v1/responses?x=1', { model: 'm', instructions: 'be brief', input: [{ role: 'user', content: [{ type: 'input_text', text: 'why?' }] }] }).input).toEqual({
        kind: 'chat',
        messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'input_text', text: 'why?' }] }],
        addGenerationPrompt: true,
        continueFinalMessage: false,
        estimateJson: [{ instructions: 'be brief' }, { input: [{ role: 'user', content: [{ type: 'input_text', text: 'why?' }] }] }],
      });
      // The same ids as the chat it is: the approximate scorer's text is the chat's ChatML too.
      expect(at('/v1/responses', { model: 'm', instructions: 'sys', input: 'hi' }).prompt)
        .toBe(parse({ model: 'm', messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'hi' }] }).prompt);
      // An empty instructions is no system message (`if request.instructions:`).
      expect(at('/v1/responses', { model: 'm', instructions: '', input: 'hi' }).input).toMatchObject({ messages: [{ role: 'user', content: 'hi' }] });
    });

    test('/v1/responses: a continued response has no input to key; an item that is no message is keyed by the approximate scorer only, as its JSON, and the tools as sent seed its chain (llm-d-router v0.10.0 tokenizer/estimate.go estimateBytes L171-180)', () => {
      expect(at('/v1/responses', { model: 'm', input: 'and then?', previous_response_id: 'resp_1' }).input).toEqual({ kind: 'none' });
      const item = { type: 'function_call_output', call_id: 'c', output: '42' };
      const tools = [{ type: 'function', name: 'f' }];
      expect(at('/v1/responses', { model: 'm', input: [item], tools }).input).toEqual({
        kind: 'chat', messages: [{ role: 'function_call_output', content: JSON.stringify(item) }], addGenerationPrompt: true, continueFinalMessage: false,
        estimateJson: [{ tools }, { input: [item] }], keyedTools: tools, approximateOnly: true,
      });
      expect(at('/v1/responses', { model: 'm', input: [item] }).prompt).toBe(`<|im_start|>function_call_output\n${JSON.stringify(item)}<|im_end|>\n`);
      // GIE types `input` as any: another shape is no error, and no input.
      expect(at('/v1/responses', { model: 'm', input: 5 }).input).toEqual({ kind: 'none' });
    });

    test('embeddings, pooling and classification render a chat without the generation prompt (serving_embedding.py @ v0.10.0)', () => {
      for (const path of ['/v1/embeddings', '/pooling', '/classify']) {
        expect(at(path, { model: 'm', messages: [{ role: 'user', content: 'x' }], add_generation_prompt: true, continue_final_message: true }).input)
          .toMatchObject({ kind: 'chat', addGenerationPrompt: false, continueFinalMessage: false });
      }
      expect(at('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] }).input).toMatchObject({ addGenerationPrompt: true });
    });

    test('/v1/responses reads only input and instructions: a reusable prompt\'s reference is no completion prompt', () => {
      expect(at('/v1/responses', { model: 'm', input: 'hi', prompt: { id: 'pmpt_1' } }).input).toMatchObject({ kind: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    });

    test('truncate_prompt_tokens and prompt logprobs count only on the generation endpoints: a pooling model truncates on the right (keeping the leading blocks), other endpoints have no prompt logprobs', () => {
      expect(at('/v1/completions', { model: 'm', prompt: 'x', truncate_prompt_tokens: 8, prompt_logprobs: 1 })).toMatchObject({ truncatePromptTokens: 8, skipsPrefixCache: true });
      const pooled = at('/v1/embeddings', { model: 'm', input: 'x', truncate_prompt_tokens: 8, prompt_logprobs: 1 });
      expect(pooled.truncatePromptTokens).toBeUndefined();
      expect(pooled.skipsPrefixCache).toBeUndefined();
      expect(at('/v1/responses', { model: 'm', input: 'x', prompt_logprobs: 1 }).skipsPrefixCache).toBeUndefined();
    });

    test('/tokenize prefills nothing; other paths, percent-encoded ones too, read as the fields say', () => {
      expect(at('/tokenize', { model: 'm', prompt: 'x' }).input).toEqual({ kind: 'none' });
      expect(at('/v1/completions', { model: 'm', prompt: 'x' }).input).toEqual({ kind: 'text', text: 'x' });
      expect(at('/v1%2Fresponses', { model: 'm', input: 'x' }).input).toMatchObject({ kind: 'chat' });
      expect(at('/v1/responses%zz', { model: 'm', input: 'x' }).input).toEqual({ kind: 'text', text: 'x' });
    });
  });

  test('a body without a model is routed: vLLM serves its default model then', () => {
    expect(parse({ prompt: 'x' })).toMatchObject({ prompt: 'x' });
    expect(parse({ prompt: 'x' }).model).toBeUndefined();
  });

  test('content types: JSON is read, multipart uploads are routed by load', () => {
    expect(isJsonContentType('application/json; charset=utf-8')).toBe(true);
    expect(isJsonContentType(undefined)).toBe(true);
    expect(isJsonContentType('multipart/form-data; boundary=x')).toBe(false);
  });

  test('a rejection carries OpenAI\'s error fields: status 400, the field as param, a string code', () => {
    let caught: unknown;
    try {
      parse({ model: 'm', messages: [{ role: 'user', content: 5 }] });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(RequestBodyError);
    expect((caught as RequestBodyError).status).toBe(400);
    expect((caught as RequestBodyError).toJSON()).toEqual({
      error: { message: 'messages[0].content: must be a string or an array of content parts', type: 'invalid_request_error', param: 'messages[0].content', code: 'invalid_type' },
    });
  });

  test.each<[unknown, RegExp]>([
    ['{not json', /^request body is not valid JSON/],
    [[1, 2], /must be a JSON object/],
    [{ model: 3, prompt: 'x' }, /^model: must be a string/],
    [{ model: 'm', prompt: 'x', cache_salt: 1 }, /^cache_salt: must be a string/],
    [{ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: {} }, /^tools: must be an array/],
    [{ model: 'm', messages: [{ role: 'user', content: 'x' }], add_generation_prompt: 'maybe' }, /^add_generation_prompt: must be a boolean/],
    [{ model: 'm', messages: [{ role: 'user', content: 'x' }], continue_final_message: 2 }, /^continue_final_message: must be a boolean/],
    [{ model: 'm', messages: [{ role: 'user', content: 'x' }], add_generation_prompt: [] }, /^add_generation_prompt: must be a boolean/],
    [{ model: 'm', prompt: 5 }, /^prompt: must be/],
    [{ model: 'm', prompt: [] }, /^prompt: must be/],
    [{ model: 'm', messages: 'hi' }, /^messages: must be an array/],
    [{ model: 'm', messages: [] }, /^messages: must not be empty/],
    [{ model: 'm', messages: [{ role: 5, content: 'x' }] }, /^messages\[0\]\.role: must be a string/],
    [{ model: 'm', messages: [{ role: 'user', content: 5 }] }, /^messages\[0\]\.content:/],
  ])('rejects %j', (body, message) => {
    expect(() => parse(body)).toThrow(RequestBodyError);
    expect(() => parse(body)).toThrow(message);
  });
});

describe('promptHead', () => {
  const bodies: unknown[] = [
    { model: 'm', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: [{ type: 'text', text: 'Look: ' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'what is it?' }] }, { role: 'assistant', content: null }] },
    { model: 'm', messages: [{ role: 'user', content: 'é😀'.repeat(40) }, { role: 'assistant', content: '' }, { role: 'tool', content: 'x'.repeat(300) }] },
    // A turn's reasoning and tool calls are in the prompt (renderChatTurn), so in its head and slices too.
    { model: 'm', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Calling.', reasoning: 'think first', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', content: 'done' }] },
    { model: 'm', prompt: 'a plain prompt '.repeat(20) },
    { model: 'm', prompt: ['one', 'two', 'three'] },
    { model: 'm', prompt: [1, 22, 333, 4444] },
    { model: 'm', input: [{ role: 'user', content: 'responses input' }] },
    { model: 'm', query: 'q', documents: ['d1', 'd2'] },
    { model: 'm' },
  ];

  test.each(bodies.map((b) => [JSON.stringify(b).slice(0, 60), b]))('%s: the first n characters of the parsed prompt, for every n', (_name, body) => {
    const parsed = parse(body);
    for (let n = 0; n <= parsed.prompt.length + 2; n++) expect(promptHead(parsed.input, n)).toBe(parsed.prompt.slice(0, n));
  });

  test.each(bodies.map((b) => [JSON.stringify(b).slice(0, 60), b]))('%s: promptSlice is the parsed prompt\'s characters [start, end), for every range', (_name, body) => {
    const parsed = parse(body);
    const L = parsed.prompt.length;
    for (let start = 0; start <= L + 1; start += 3) {
      for (let end = start; end <= L + 2; end += 5) expect(promptSlice(parsed.input, start, end)).toBe(parsed.prompt.slice(start, end));
    }
  });

  test('a long chat prompt: the head of a 200 KB conversation is its first characters', () => {
    const parsed = parse({ model: 'm', messages: [{ role: 'system', content: 'abc '.repeat(30_000) }, { role: 'user', content: 'xyz '.repeat(20_000) }] });
    expect(parsed.prompt.length).toBeGreaterThan(200_000);
    for (const n of [16_384, 119_990, 120_040, 200_000]) expect(promptHead(parsed.input, n)).toBe(parsed.prompt.slice(0, n));
  });

  // vLLM 0.10.0 ChatCompletionRequest.documents: Optional[list[dict[str, str]]], handed to the chat template.
  test('chat: documents are kept for the template; a documents that is not a list of objects is refused naming it', () => {
    const documents = [{ title: 'Manual', text: 'Press the red button.' }];
    expect(parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], documents }).input).toMatchObject({ kind: 'chat', documents });
    expect('documents' in parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], documents: null }).input).toBe(false);
    for (const bad of [{}, 'doc', [1], [['a']], [null]]) {
      expect(() => parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], documents: bad })).toThrow(/documents: must be an array of objects/);
    }
  });

  test('the parsed body has the same members in the same order whichever are present (built without spreads)', () => {
    const tools = [{ type: 'function' }];
    const shape = (v: unknown) => JSON.stringify(parse(v), (_k, x: unknown) => x);
    expect(shape({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools, chat_template_kwargs: { a: 1 }, cache_salt: 's', add_generation_prompt: false }))
      .toBe('{"model":"m","input":{"kind":"chat","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}],"addGenerationPrompt":false,"continueFinalMessage":false,"chatTemplateKwargs":{"a":1}},"prompt":"<|im_start|>user\\nx<|im_end|>\\n","stream":false,"cacheSalt":"s"}');
    expect(shape({ messages: [{ role: 'user', content: 'x' }], chat_template_kwargs: { a: 1 }, documents: [{ t: 'd' }] }))
      .toBe('{"input":{"kind":"chat","messages":[{"role":"user","content":"x"}],"addGenerationPrompt":true,"continueFinalMessage":false,"chatTemplateKwargs":{"a":1},"documents":[{"t":"d"}]},"prompt":"<|im_start|>user\\nx<|im_end|>\\n","stream":false}');
    expect(shape({ messages: [{ role: 'user', content: 'x' }] }))
      .toBe('{"input":{"kind":"chat","messages":[{"role":"user","content":"x"}],"addGenerationPrompt":true,"continueFinalMessage":false},"prompt":"<|im_start|>user\\nx<|im_end|>\\n","stream":false}');
    // An empty model is no model, flagged (GIE v1.5.0 takes "" as a model, llm-d-router v0.10.0 does not).
    expect(shape({ model: '', prompt: 'p', stream: true, tools: null, chat_template_kwargs: null })).toBe('{"input":{"kind":"text","text":"p"},"prompt":"p","stream":true,"emptyModel":true}');
    const parsed = parse({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(Object.keys(parsed)).toEqual(['model', 'input', 'prompt', 'stream']);
    expect('cacheSalt' in parsed).toBe(false);
    expect('tools' in parsed.input).toBe(false);
    expect('chatTemplateKwargs' in parsed.input).toBe(false);
  });

  test('GIE v1.5.0 accepts what its types allow (framework/interface/scheduling/types.go): a message without role (Role string, omitempty), an input of any shape (Input any), which has no prompt to match', () => {
    const chat = parse({ model: 'm', messages: [{ content: 'hi' }] });
    expect(chat.input).toMatchObject({ kind: 'chat' });
    expect(chat.prompt).toContain('hi');
    expect(parse({ model: 'm', input: 7 }).input).toEqual({ kind: 'none' });
    expect(parse({ model: 'm', input: { nested: true } }).input).toEqual({ kind: 'none' });
    expect(parse({ model: 'm', input: ['a', 'b'] }).input).toEqual({ kind: 'text', text: 'a', rest: ['b'] });
    // An item without a role is no message of the Responses API (serving_responses.py @ v0.10.0): nothing to match.
    expect(parse({ model: 'm', input: [{ content: 5 }] }).input).toEqual({ kind: 'none' });
  });

  test('/v1/responses: previous_response_id is read, and a response the pod stores under its own id (store true by default, no request_id) is marked (ResponsesRequest, protocol.py @ v0.10.0)', () => {
    const at = (v: unknown, path = '/v1/responses') => parseRequestBody(Buffer.from(JSON.stringify(v)), path);
    expect(at({ input: 'x' })).toMatchObject({ storesUnnamedResponse: true });
    expect(at({ input: 'x', previous_response_id: 'resp_a' })).toMatchObject({ previousResponseId: 'resp_a', storesUnnamedResponse: true });
    for (const store of [false, 'false', 0, null]) expect(at({ input: 'x', store }).storesUnnamedResponse).toBeUndefined();
    expect(at({ input: 'x', store: 'yes' }).storesUnnamedResponse).toBe(true);
    expect(at({ input: 'x', request_id: 'resp_mine' }).storesUnnamedResponse).toBeUndefined();
    // Only the Responses endpoint stores responses.
    expect(at({ input: 'x', previous_response_id: 'resp_a' }, '/v1/embeddings')).not.toHaveProperty('previousResponseId');
    expect(at({ prompt: 'x' }, '/v1/completions')).not.toHaveProperty('storesUnnamedResponse');
  });

  test('a Responses message item whose content is not text or parts is refused naming input[i].content, the field the client sent, with or without the path', () => {
    for (const path of [undefined, '/v1/responses']) {
      expect(() => parseRequestBody(Buffer.from(JSON.stringify({ model: 'm', input: [{ role: 'user', content: 'a' }, { role: 'user', content: 5 }] })), path))
        .toThrow(expect.objectContaining({ param: 'input[1].content' }));
    }
  });

  test('a chat body with several faults reports the first in the order the fields are checked: tools, kwargs, messages, the two flags', () => {
    const bad = { tools: {}, chat_template_kwargs: 1, messages: [{ role: 5 }], add_generation_prompt: 'x', continue_final_message: 'yy' };
    const first = (v: Record<string, unknown>) => { try { parse({ model: 'm', ...v }); return 'none'; } catch (e) { return (e as RequestBodyError).param; } };
    expect(first(bad)).toBe('tools');
    expect(first({ ...bad, tools: undefined })).toBe('chat_template_kwargs');
    expect(first({ ...bad, tools: undefined, chat_template_kwargs: undefined })).toBe('messages[0].role');
    expect(first({ ...bad, tools: undefined, chat_template_kwargs: undefined, messages: [{ role: 'u', content: [1] }] })).toBe('messages[0].content[0]');
    expect(first({ ...bad, tools: undefined, chat_template_kwargs: undefined, messages: [{ role: 'u', content: 'x' }] })).toBe('add_generation_prompt');
    expect(first({ ...bad, tools: undefined, chat_template_kwargs: undefined, messages: [{ role: 'u', content: 'x' }], add_generation_prompt: true })).toBe('continue_final_message');
  });

  test('isJsonContentType: the plain application/json fast path agrees with the general rule', () => {
    for (const ct of ['application/json', 'Application/JSON', 'application/json; charset=utf-8', ' application/json ', 'application/vnd.api+json', 'text/plain', 'multipart/form-data; boundary=x', '', undefined]) {
      const general = ct === undefined || ct === '' || ['application/json'].includes(ct.split(';')[0]!.trim().toLowerCase()) || ct.split(';')[0]!.trim().toLowerCase().endsWith('+json');
      expect(isJsonContentType(ct)).toBe(general);
    }
  });
});
