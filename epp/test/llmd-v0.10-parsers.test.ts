/**
 * llm-d-router v0.10.0's request parsers, chosen per request by its path (`pkg/epp/handlers/parsers.go`
 * NewParserRegistry / Resolve, `handlers/server.go` getOrResolveParser), and the parsers kvroute runs of them
 * (`pkg/epp/framework/plugins/requesthandling/parsers/{openai,anthropic,vllmhttp,passthrough}` @ v0.10.0); GIE v1.5.0's
 * one parser for every path for a config in GIE's form. Each test names the upstream file it mirrors.
 */
import { createHash } from 'node:crypto';
import { RequestBodyError } from '@kvroute/protocol/openai';
import {
  matchPathSuffix,
  parseAnthropicRequest,
  parseGenerateRequest,
  parseOpenAiRequest,
  ParserRegistry,
  requestPath,
  UNREAD_BODY,
  type ParserRef,
} from '../src/requestcontrol/request-parsers';
import { ResponseObserver } from '../src/requestcontrol/response-usage';
import { GIE_DEFAULT_CONFIG, Harness, normalise, P, reqRaw, type Norm } from './gie-hermetic-harness';
import type { Json } from './extproc-harness';

const ref = (type: ParserRef['type'], name: string = type): ParserRef => ({ name, type });
const DEFAULT_REGISTRY = ParserRegistry.of([ref('openai-parser'), ref('anthropic-parser'), ref('vllmhttp-parser')]);

describe('request path (pkg/epp/framework/common/request/headers.go@v0.10.0 GetRequestPath, MatchPathSuffix; headers_test.go)', () => {
  test('GetRequestPath: :path, else x-original-path, else x-forwarded-path, its query cut off; else /v1/completions', () => {
    expect(requestPath(new Map([[':path', '/v1/messages?beta=true'], ['x-original-path', '/x']]))).toBe('/v1/messages');
    expect(requestPath(new Map([['x-original-path', '/inference/v1/generate'], ['x-forwarded-path', '/y']]))).toBe('/inference/v1/generate');
    expect(requestPath(new Map([['x-forwarded-path', '/v1/embeddings']]))).toBe('/v1/embeddings');
    expect(requestPath(new Map([[':path', '']]))).toBe('/v1/completions');
    expect(requestPath(new Map())).toBe('/v1/completions');
  });

  // headers_test.go TestMatchPathSuffix's table.
  test.each([
    ['chat/completions', 'chat/completions', true],
    ['/chat/completions', 'chat/completions', true],
    ['chat/completions', '/chat/completions', true],
    ['/chat/completions', '/chat/completions', true],
    ['/v1/chat/completions', 'chat/completions', true],
    ['/google.cloud.aiplatform.v1beta1.PredictionService/ChatCompletions', 'PredictionService/ChatCompletions', true],
    ['/v1/chat/completions', 'embeddings', false],
    ['/v1/chat/completions/', 'chat/completions', true],
    ['/v1/chat/completions', 'chat/completions/', true],
    // A plain string suffix, no segment boundary (strings.HasSuffix).
    ['/v1/xcompletions', 'completions', true],
  ])('MatchPathSuffix(%j, %j) = %j', (path, suffix, want) => {
    expect(matchPathSuffix(path, suffix)).toBe(want);
  });
});

describe('parser registry (pkg/epp/handlers/parsers.go@v0.10.0; parsers_test.go)', () => {
  // config/loader/defaults.go ensureParsers: openai, anthropic, vllmhttp; each parser's Claims().
  test.each([
    ['/v1/chat/completions', 'openai-parser'],
    ['/v1/completions', 'openai-parser'],
    ['/v1/embeddings', 'openai-parser'],
    ['/v1/responses', 'openai-parser'],
    ['/v1/conversations', 'openai-parser'],
    ['/v1/chat/completions/render', 'openai-parser'],
    ['/v1/completions/render', 'openai-parser'],
    ['/v1/images/generations', 'openai-parser'],
    ['/v1/messages', 'anthropic-parser'],
    ['/v1/messages/', 'anthropic-parser'], // parsers_test.go "path with trailing slash normalize match"
    ['/v1/messages/count_tokens', 'anthropic-parser'],
    ['/inference/v1/generate', 'vllmhttp-parser'],
    ['/unknown/path', undefined], // "no suffix match returns error"
    ['/v1/models', undefined],
    ['/v1/score', undefined],
    ['/tokenize', undefined],
  ])('the default parsers resolve %s to %s', (path, want) => {
    expect(DEFAULT_REGISTRY.resolve(path)?.type).toBe(want);
  });

  test('a parser claiming no paths is the fallback; a claim wins over it (TestParserRegistryWithPassthrough)', () => {
    const r = ParserRegistry.of([ref('openai-parser'), ref('passthrough-parser')]);
    expect(r.resolve('/v1/chat/completions')?.type).toBe('openai-parser');
    expect(r.resolve('/unknown/path')?.type).toBe('passthrough-parser');
  });

  test('the fallback ends the list: parsers after it are skipped (NewParserRegistry L60-63)', () => {
    const r = ParserRegistry.of([ref('passthrough-parser'), ref('openai-parser')]);
    expect(r.resolve('/v1/chat/completions')?.type).toBe('passthrough-parser');
    expect(r.parsers).toEqual([ref('passthrough-parser')]);
  });

  test('a second parser of a type is skipped, the first of it wins (TestParserRegistryDuplicateTypes)', () => {
    const r = ParserRegistry.of([ref('openai-parser', 'a'), ref('openai-parser', 'b')]);
    expect(r.resolve('/v1/completions')?.name).toBe('a');
    expect(r.parsers.map((p) => p.name)).toEqual(['a']);
  });

  test('GIE v1.5.0 (pkg/epp/handlers/server.go: one parser): every path goes to the one parser', () => {
    const r = ParserRegistry.everyPath(ref('openai-parser'));
    for (const path of ['/v1/chat/completions', '/unknown/path', '/v1/messages', '/inference/v1/generate']) expect(r.resolve(path)?.type).toBe('openai-parser');
  });
});

const body = (j: unknown) => Buffer.from(JSON.stringify(j));
const errorOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof RequestBodyError) return `${e.status} ${e.message}`;
    throw e;
  }
  throw new Error('no error');
};

describe('anthropic-parser ParseRequest (parsers/anthropic/anthropic.go@v0.10.0 L84-126; anthropic_test.go)', () => {
  test('simple text messages: model, stream and the chat vLLM serves (system first) as the prompt', () => {
    const parsed = parseAnthropicRequest(body({
      model: 'claude-sonnet-4-6', max_tokens: 1024, stream: true, system: 'Be brief.',
      messages: [{ role: 'user', content: 'Hello' }, { role: 'assistant', content: 'Hi' }, { role: 'user', content: 'Bye' }],
    }), '/v1/messages');
    expect(parsed.model).toBe('claude-sonnet-4-6');
    expect(parsed.stream).toBe(true);
    // estimateBytes: upstream's estimate of the body itself (estimate.go messagesBytes): "Be brief." + "user" "Hello" + "assistant" "Hi" + "user" "Bye".
    expect(parsed.input).toEqual({ kind: 'chat', addGenerationPrompt: true, continueFinalMessage: false, estimateBytes: 36, messages: [
      { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }, { role: 'assistant', content: 'Hi' }, { role: 'user', content: 'Bye' },
    ] });
    expect(parsed.prompt).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n');
  });

  // dataproducer/tokenizer/tokenizer.go@v0.10.0 MessagesToRenderChatRequest, anthropicSystemText, appendAnthropicMessage.
  test('system blocks joined (the billing header dropped); tool uses as tool calls, user tool results as tool messages, images as image_url parts', () => {
    const parsed = parseAnthropicRequest(body({
      model: 'm',
      system: [{ type: 'text', text: 'x-anthropic-billing-header: cc_version=1' }, { type: 'text', text: 'You are ' }, { type: 'text', text: 'helpful.' }],
      tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
      cache_salt: 'tenant-a',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }] },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'Call it.' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'Sunny' }, { type: 'text', text: '21C' }] }] },
      ],
    }), '/v1/messages');
    expect(parsed.cacheSalt).toBe('tenant-a');
    expect(parsed.input).toEqual({
      // Upstream's estimate of the body's own fields (estimate.go messagesBytes), the image counting nothing here.
      kind: 'chat', addGenerationPrompt: true, continueFinalMessage: false, estimateBytes: 222,
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, description: 'Weather' } }],
      messages: [
        { role: 'system', content: 'You are helpful.' },
        { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] },
        { role: 'assistant', content: null, reasoning: 'Call it.', tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
        { role: 'tool', tool_call_id: 'toolu_1', content: 'Sunny\n21C' },
      ],
    });
    // The image keyed by its data URI's digest (tokenizer/estimate.go messagesBytes → appendMMAsset @ v0.10.0).
    const image = `<|image_url:${createHash('sha256').update('data:image/png;base64,AAAA').digest('base64url').slice(0, 22)}|>`;
    // The thinking and the tool call are in the assistant's turn, as upstream's estimate hashes them (messagesBytes).
    const call = '[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\": \\"Paris\\"}"}}]';
    expect(parsed.prompt).toBe(`<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWeather in Paris?${image}<|im_end|>\n<|im_start|>assistant\n<think>Call it.</think><tool_call>${call}</tool_call><|im_end|>\n<|im_start|>tool\nSunny\n21C<|im_end|>\n`);
  });

  test.each([
    ['empty messages array', '/v1/messages', { model: 'm', max_tokens: 1, messages: [] }, '400 invalid messages request: must have at least one message'],
    ['missing messages field', '/v1/messages', { model: 'm', max_tokens: 1 }, '400 invalid messages request: must have at least one message'],
    ['nil body', '/v1/messages', null, '400 invalid messages request: must have at least one message'],
    ['unsupported path', '/v1/chat/completions', { messages: [{ role: 'user', content: 'Hello' }] }, '400 unsupported API endpoint: /v1/chat/completions'],
    // Resolve trims the trailing slash, ParseRequest does not (strings.HasSuffix(path, "/messages")).
    ['a trailing slash', '/v1/messages/', { messages: [{ role: 'user', content: 'Hello' }] }, '400 unsupported API endpoint: /v1/messages/'],
    ['a message role of another type', '/v1/messages', { messages: [{ role: 5, content: 'Hello' }] }, '400 error parsing messages request: messages[0].role: must be a string'],
    ['content neither text nor blocks', '/v1/messages', { messages: [{ role: 'user', content: 5 }] }, '400 error parsing messages request: messages[0].content: anthropic content: must be a string or an array of content blocks'],
  ])('%s is refused', (_case, path, json, message) => {
    expect(errorOf(() => parseAnthropicRequest(body(json), path))).toBe(message);
  });

  test('count_tokens is forwarded unread, whatever its body (TestAnthropicParser_ParseRequest_CountTokens)', () => {
    expect(parseAnthropicRequest(Buffer.from('not json'), '/v1/messages/count_tokens')).toBe(UNREAD_BODY);
    expect(parseAnthropicRequest(Buffer.alloc(0), '/v1/messages/count_tokens')).toBe(UNREAD_BODY);
  });
});

describe('vllmhttp-parser ParseRequest (parsers/vllmhttp/vllmhttp.go@v0.10.0 L95-144, types.go GenerateRequest.UnmarshalJSON; vllmhttp_test.go)', () => {
  test('token_ids are the prompt, as they are; model, stream and cache_salt beside them', () => {
    const parsed = parseGenerateRequest(body({ model: 'm', token_ids: [1, 2, 3], cache_salt: 's', stream: true, sampling_params: { max_tokens: 5 } }), '/inference/v1/generate');
    expect(parsed).toEqual({ model: 'm', input: { kind: 'tokens', tokens: [1, 2, 3] }, prompt: '1 2 3', stream: true, cacheSalt: 's' });
  });

  test.each([
    ['missing token_ids', { model: 'm' }, '400 invalid generate request: must have non-empty token_ids field'],
    ['empty token_ids', { token_ids: [] }, '400 invalid generate request: must have non-empty token_ids field'],
    ['a negative token id', { token_ids: [1, 2, -1] }, '400 invalid generate request: token_ids[2]: invalid value -1'],
    ['a fractional token id', { token_ids: [1.5] }, '400 invalid generate request: token_ids[0]: invalid value 1.5'],
    ['a token id past uint32', { token_ids: [4294967296] }, '400 invalid generate request: token_ids[0]: invalid value 4294967296'],
  ])('%s is refused (GenerateErrorPaths)', (_case, json, message) => {
    expect(errorOf(() => parseGenerateRequest(body(json), '/inference/v1/generate'))).toBe(message);
  });

  test('another path is refused (TestVllmHTTPParser_RejectsNonGeneratePaths)', () => {
    expect(errorOf(() => parseGenerateRequest(body({ token_ids: [1] }), '/v1/completions'))).toBe('400 unsupported path: /v1/completions');
  });
});

describe('anthropic-parser ParseResponse (parsers/anthropic/anthropic.go@v0.10.0 L138-258; anthropic_test.go)', () => {
  const read = (streaming: boolean, ...chunks: string[]) => {
    const o = new ResponseObserver(streaming, 'anthropic');
    chunks.forEach((c, i) => o.push(Buffer.from(c), i === chunks.length - 1));
    return o.usage;
  };

  test.each([
    ['standard usage', '{"id":"msg_1","usage":{"input_tokens":10,"output_tokens":20}}', { promptTokens: 10, completionTokens: 20 }],
    ['usage with cache tokens', '{"usage":{"input_tokens":100,"output_tokens":50,"cache_read_input_tokens":80}}', { promptTokens: 100, completionTokens: 50, cachedPromptTokens: 80 }],
    ['missing usage field', '{"id":"msg_1"}', undefined],
    ['invalid JSON', '{not json', undefined],
    // An OpenAI-shaped usage is not Anthropic's: its cached tokens are not read.
    ['OpenAI\'s cached-token field', '{"usage":{"input_tokens":5,"output_tokens":1,"prompt_tokens_details":{"cached_tokens":4}}}', { promptTokens: 5, completionTokens: 1 }],
  ])('JSON: %s', (_case, text, want) => {
    expect(read(false, text)).toEqual(want);
  });

  test.each([
    ['message_start then message_delta, in chunks of their own', [
      'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_123","usage":{"input_tokens":25}}}\n\n',
      'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Hello"}}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}\n\n',
      'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ], { promptTokens: 25, completionTokens: 15 }],
    ['stream with cache tokens', [
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":100,"cache_read_input_tokens":80}}}\n\nevent: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":50}}',
    ], { promptTokens: 100, completionTokens: 50, cachedPromptTokens: 80 }],
    ['content delta without usage', ['event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Hello"}}'], undefined],
    ['message_stop without usage', ['event: message_stop\ndata: {"type":"message_stop"}'], undefined],
  ])('stream: %s', (_case, chunks, want) => {
    expect(read(true, ...chunks)).toEqual(want);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Through ext_proc: kvroute's whole EPP and a gRPC client playing Envoy.

const LLMD_DEFAULT = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
`;

const hraw = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });
const responseMessages = (headers: Record<string, string>, ...chunks: string[]): Json[] => [
  { response_headers: { headers: hraw(headers) } },
  ...chunks.map((c, i) => ({ response_body: { body: Buffer.from(c), end_of_stream: i === chunks.length - 1 } })),
];
const routedTo = (norm: Norm[]): string | undefined => {
  const first = norm[0] as Extract<Norm, { requestHeaders: unknown }> | undefined;
  return first?.requestHeaders?.set['x-gateway-destination-endpoint'];
};

describe('openai-parser ParseResponse cached tokens (parsers/openai/openai.go@v0.10.0 extractUsage: prompt_tokens_details, then the Responses API\'s input_tokens_details)', () => {
  const read = (form: 'llmd' | 'gie', streaming: boolean, text: string) => {
    const o = new ResponseObserver(streaming, 'openai', form);
    o.push(Buffer.from(text), true);
    return o.usage?.cachedPromptTokens;
  };
  const RESPONSES_JSON = '{"object":"response","usage":{"input_tokens":31,"input_tokens_details":{"cached_tokens":16},"output_tokens":5,"total_tokens":36}}';
  const RESPONSES_STREAM = 'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":32},"output_tokens":3}}}\n\n';

  test('llm-d\'s form reads input_tokens_details, from a JSON body and from the stream\'s response.completed (extractUsageStreaming -> extractUsage)', () => {
    expect(read('llmd', false, RESPONSES_JSON)).toBe(16);
    expect(read('llmd', true, RESPONSES_STREAM)).toBe(32);
    // Both present: upstream's loop reads them in order, the later (input_tokens_details) overwriting.
    expect(read('llmd', false, '{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":2},"input_tokens_details":{"cached_tokens":5}}}')).toBe(5);
    expect(read('llmd', false, '{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":2}}}')).toBe(2);
    // GIE v1.5.0's spelling, which llm-d-router v0.10.0 does not read.
    expect(read('llmd', false, '{"usage":{"prompt_tokens":9,"prompt_token_details":{"cached_tokens":2}}}')).toBeUndefined();
  });

  test('GIE\'s form does not (GIE v1.5.0 openai.go extractUsage reads prompt_token_details; kvroute\'s GIE form prompt_tokens_details too)', () => {
    expect(read('gie', false, RESPONSES_JSON)).toBeUndefined();
    expect(read('gie', true, RESPONSES_STREAM)).toBeUndefined();
    expect(read('gie', false, '{"usage":{"prompt_tokens":9,"prompt_token_details":{"cached_tokens":2}}}')).toBe(2);
    expect(read('gie', false, '{"usage":{"prompt_tokens":9,"prompt_token_details":{"cached_tokens":2},"prompt_tokens_details":{"cached_tokens":4}}}')).toBe(4);
  });
});

describe('llm-d\'s form through ext_proc: cached tokens from input_tokens_details are recorded (openai.go@v0.10.0 extractUsage; vllmhttp.go ParseResponse delegates to it)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start([P(0, 0, 0.1)], { mode: 'standalone-nocrd', configText: LLMD_DEFAULT });
  });
  afterAll(async () => h.stop());

  test('/v1/responses, non-streamed: usage.input_tokens_details.cached_tokens is recorded as prompt_cached_tokens', async () => {
    const request = JSON.stringify({ model: 'resp-m', input: 'Hello there' });
    const out = (await h.streamed([
      ...reqRaw({ ':path': '/v1/responses', 'content-type': 'application/json', 'x-request-id': 'responses' }, request),
      ...responseMessages({ ':status': '200', 'content-type': 'application/json' },
        '{"id":"resp_1","object":"response","usage":{"input_tokens":31,"input_tokens_details":{"cached_tokens":16},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":36}}'),
    ], 4)).map(normalise);
    expect(routedTo(out)).toBe(h.endpoint(0));
    const page = await h.metrics();
    expect(page).toContain('inference_objective_input_tokens_sum{model_name="resp-m",target_model_name="resp-m"} 31');
    expect(page).toContain('inference_objective_prompt_cached_tokens_sum{model_name="resp-m",target_model_name="resp-m"} 16');
  });

  test('/inference/v1/generate (vllmhttp-parser): usage.input_tokens_details.cached_tokens is recorded', async () => {
    const request = JSON.stringify({ model: 'gen-m', token_ids: [1, 2, 3] });
    const out = (await h.streamed([
      ...reqRaw({ ':path': '/inference/v1/generate', 'content-type': 'application/json', 'x-request-id': 'gen' }, request),
      ...responseMessages({ ':status': '200', 'content-type': 'application/json' },
        '{"usage":{"input_tokens":3,"input_tokens_details":{"cached_tokens":2},"output_tokens":4}}'),
    ], 4)).map(normalise);
    expect(routedTo(out)).toBe(h.endpoint(0));
    expect(await h.metrics()).toContain('inference_objective_prompt_cached_tokens_sum{model_name="gen-m",target_model_name="gen-m"} 2');
  });

  test('/v1/responses, streamed: the response.completed event\'s usage.input_tokens_details.cached_tokens is recorded', async () => {
    const request = JSON.stringify({ model: 'resp-s', input: 'Hello there', stream: true });
    const out = (await h.streamed([
      ...reqRaw({ ':path': '/v1/responses', 'content-type': 'application/json', 'x-request-id': 'responses-stream' }, request),
      ...responseMessages({ ':status': '200', 'content-type': 'text/event-stream' },
        'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_2"}}\n\n',
        'event: response.completed\ndata: {"type":"response.completed","response":{"id":"resp_2","usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":32},"output_tokens":3,"total_tokens":43}}}\n\n'),
    ], 5)).map(normalise);
    expect(routedTo(out)).toBe(h.endpoint(0));
    const page = await h.metrics();
    expect(page).toContain('inference_objective_input_tokens_sum{model_name="resp-s",target_model_name="resp-s"} 40');
    expect(page).toContain('inference_objective_prompt_cached_tokens_sum{model_name="resp-s",target_model_name="resp-s"} 32');
  });
});

describe('parsers by path through ext_proc (handlers/server.go@v0.10.0 L206-225 getOrResolveParser, L461-465; pkg/common/error/error.go BuildErrResponse)', () => {
  describe('llm-d\'s form: no parsers named is openai, anthropic and vllmhttp (config/loader/defaults.go ensureParsers)', () => {
    let h: Harness;
    beforeAll(async () => {
      h = await Harness.start([P(0, 0, 0.1), P(1, 0, 0.1)], { mode: 'standalone-nocrd', configText: LLMD_DEFAULT });
    });
    afterAll(async () => h.stop());

    test('a body on a path no parser claims: 400, upstream\'s message, counted as BadRequest with no model', async () => {
      const out = (await h.streamed(reqRaw({ ':path': '/v1/score?x=1', 'x-request-id': 'unclaimed' }, JSON.stringify({ model: 'm', text_1: 'a', text_2: 'b' })), 1)).map(normalise);
      expect(out).toHaveLength(1);
      const reply = (out[0] as Extract<Norm, { immediate: unknown }>).immediate;
      expect(reply.status).toBe(400);
      expect(JSON.parse(reply.body).error).toMatchObject({ message: 'no parser registered matching path suffix for: /v1/score', code: 'unsupported_path' });
      const page = await h.metrics();
      expect(page).toContain('inference_objective_request_error_total{model_name="",target_model_name="",error_code="BadRequest"} 1');
      expect(page).toMatch(/llm_d_epp_request_error_total\{[^}]*error_code="BadRequest"[^}]*\} 1/);
    });

    test('a request without a body on such a path is routed (upstream resolves the parser at the body\'s end)', async () => {
      const out = (await h.streamed([{ request_headers: { headers: { headers: [{ key: ':path', value: '/v1/models' }, { key: ':method', value: 'GET' }] }, end_of_stream: true } }], 1)).map(normalise);
      expect(routedTo(out)).toMatch(/^127\.0\.0\.[12]:\d+$/);
    });

    test('/v1/messages is read by anthropic-parser: routed, counted under its model, its event stream\'s usage read as Anthropic\'s', async () => {
      const request = JSON.stringify({ model: 'claude-x', max_tokens: 64, stream: true, system: 'S', messages: [{ role: 'user', content: 'Hello' }] });
      const out = (await h.streamed([
        ...reqRaw({ ':path': '/v1/messages', 'content-type': 'application/json', 'x-request-id': 'anthropic' }, request),
        ...responseMessages({ ':status': '200', 'content-type': 'text/event-stream' },
          'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":16}}}\n\n',
          'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}\n\n',
          'event: message_stop\ndata: {"type":"message_stop"}\n\n'),
      ], 6)).map(normalise);
      expect(routedTo(out)).toMatch(/^127\.0\.0\.[12]:\d+$/);
      expect(out[1]).toEqual({ requestBody: { body: request, eos: true } });
      const page = await h.metrics();
      expect(page).toContain('inference_objective_request_total{model_name="claude-x",target_model_name="claude-x",priority="0"} 1');
      expect(page).toContain('inference_objective_input_tokens_sum{model_name="claude-x",target_model_name="claude-x"} 25');
      expect(page).toContain('inference_objective_output_tokens_sum{model_name="claude-x",target_model_name="claude-x"} 15');
      expect(page).toContain('inference_objective_prompt_cached_tokens_sum{model_name="claude-x",target_model_name="claude-x"} 16');
    });

    test('/v1/messages with no message is refused by anthropic-parser (400)', async () => {
      const out = (await h.streamed(reqRaw({ ':path': '/v1/messages', 'x-request-id': 'empty' }, JSON.stringify({ model: 'claude-x', messages: [] })), 1)).map(normalise);
      const reply = (out[0] as Extract<Norm, { immediate: unknown }>).immediate;
      expect(reply.status).toBe(400);
      expect(JSON.parse(reply.body).error.message).toBe('invalid messages request: must have at least one message');
    });

    test('/inference/v1/generate is read by vllmhttp-parser: routed, counted under its model', async () => {
      const request = JSON.stringify({ model: 'gen-m', token_ids: [1, 2, 3], sampling_params: { max_tokens: 4 } });
      const out = (await h.streamed(reqRaw({ ':path': '/inference/v1/generate', 'x-request-id': 'generate' }, request), 2)).map(normalise);
      expect(routedTo(out)).toMatch(/^127\.0\.0\.[12]:\d+$/);
      expect(await h.metrics()).toContain('inference_objective_request_total{model_name="gen-m",target_model_name="gen-m",priority="0"} 1');
    });
  });

  // GIE v1.5.0 parsers/openai/openai.go determineAPITypeFromPath reads a path it does not know as a completion, which
  // needs a prompt (extractRequestBody); kvroute reads it by its fields, as vLLM serves it (openAiApiOf).
  test('GIE\'s form (GIE v1.5.0 test/integration/epp/testdata/default-config.yaml): the one parser reads every path; one of none of GIE\'s five APIs is read by its fields, not refused', async () => {
    const h = await Harness.start([P(0, 0, 0.1)], { mode: 'standalone-nocrd', configText: GIE_DEFAULT_CONFIG });
    try {
      const out = (await h.streamed(reqRaw({ ':path': '/v1/score', 'x-request-id': 'gie' }, JSON.stringify({ model: 'm', text_1: 'a', text_2: 'b' })), 2)).map(normalise);
      expect(routedTo(out)).toBe(h.endpoint(0));
      expect(await h.metrics()).not.toContain('error_code="BadRequest"');
    } finally {
      await h.stop();
    }
  });
});

const statusOf = (out: Norm[]): number | 'routed' => {
  const first = out[0] as Norm | undefined;
  return first !== undefined && 'immediate' in first ? first.immediate.status : 'routed';
};

/** Both upstreams' `extractRequestBody` (parsers/openai/openai.go): each API's required member, its message on a 400. */
const REQUIRED: [string, string, unknown, string][] = [
  ['chat/completions without messages (a prompt instead)', '/v1/chat/completions', { model: 'm', prompt: 'hello' }, 'invalid chat completions request: must have valid messages field'],
  ['chat/completions with no input at all', '/v1/chat/completions', { model: 'm' }, 'invalid chat completions request: must have valid messages field'],
  ['chat/completions with an empty messages array', '/v1/chat/completions', { model: 'm', messages: [] }, 'invalid chat completions request: must have valid messages field'],
  ['chat/completions whose messages are not an array', '/v1/chat/completions', { model: 'm', messages: 'hi' }, 'invalid chat completions request: must have valid messages field'],
  ['completions without a prompt', '/v1/completions', { model: 'm', max_tokens: 4 }, 'invalid completions request: must have prompt field'],
  ['completions with an empty prompt', '/v1/completions', { model: 'm', prompt: '' }, 'invalid completions request: must have prompt field'],
  ['completions with a null prompt (Prompt.UnmarshalJSON refuses it)', '/v1/completions', { model: 'm', prompt: null }, 'invalid completions request: must have prompt field'],
  ['completions with an empty prompt array', '/v1/completions', { model: 'm', prompt: [] }, 'invalid completions request: must have prompt field'],
  ['completions whose prompt is a number', '/v1/completions', { model: 'm', prompt: 5 }, 'invalid completions request: must have prompt field'],
  ['a chat sent to completions (messages, no prompt)', '/v1/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, 'invalid completions request: must have prompt field'],
  ['responses without input', '/v1/responses', { model: 'm', instructions: 'be brief' }, 'invalid responses request: must have input field'],
  ['responses with a null input', '/v1/responses', { model: 'm', input: null }, 'invalid responses request: must have input field'],
  ['embeddings without input', '/v1/embeddings', { model: 'm' }, 'invalid embeddings request: must have input field'],
  ['conversations without items', '/v1/conversations', { model: 'm', metadata: {} }, 'invalid conversations request: must have items field'],
  ['conversations with an empty items array', '/v1/conversations', { items: [] }, 'invalid conversations request: must have items field'],
];

/** llm-d-router v0.10.0's copy only (requesthandling/types.go `EmbeddingsInput`, `parseArrayInput`; openai.go images/generations). */
const REQUIRED_LLMD: [string, string, unknown, string][] = [
  ['embeddings with an empty input (EmbeddingsInput.IsEmpty)', '/v1/embeddings', { model: 'm', input: '' }, 'invalid embeddings request: must have input field'],
  ['embeddings whose input is a batch of token lists (parseArrayInput: unsupported array element type)', '/v1/embeddings', { model: 'm', input: [[1, 2]] }, 'invalid embeddings request: must have input field'],
  ['images/generations with an empty prompt', '/v1/images/generations', { model: 'm', prompt: '' }, 'invalid images generations request: must have prompt field'],
  ['chat/completions/render without messages', '/v1/chat/completions/render', { model: 'm', prompt: 'x' }, 'invalid chat completions request: must have valid messages field'],
  ['completions whose prompt mixes strings and token ids', '/v1/completions', { model: 'm', prompt: ['a', 1] }, 'invalid completions request: must have prompt field'],
];

/** GIE v1.5.0's copy only (scheduling/types.go: `Prompt` is a string or `[]string`). */
const REQUIRED_GIE: [string, string, unknown, string][] = [
  ['completions whose prompt mixes strings and token ids', '/v1/completions', { model: 'm', prompt: ['a', 1] }, 'invalid completions request: must have prompt field'],
];

/** Bodies each form routes where the other refuses them, and controls both route. */
const ROUTED: [string, string, unknown][] = [
  ['a chat', '/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }],
  ['a completion with a batch of prompts', '/v1/completions', { model: 'm', prompt: ['a', 'b'] }],
  ['a completion with a stray messages member', '/v1/completions', { model: 'm', prompt: 'a', messages: 'not read' }],
  ['a response with a string input', '/v1/responses', { model: 'm', input: 'hi' }],
  ['a conversation with an item', '/v1/conversations', { model: 'm', items: [{ type: 'message', role: 'user', content: 'hi' }] }],
];
const ROUTED_LLMD: [string, string, unknown][] = [
  ['a completion given token ids', '/v1/completions', { model: 'm', prompt: [1, 2, 3] }],
  ['a chat on a path with a query (cut off by GetRequestPath)', '/v1/chat/completions?x=1', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }],
];
const ROUTED_GIE: [string, string, unknown][] = [
  ['embeddings with an empty input (GIE tests Input != nil)', '/v1/embeddings', { model: 'm', input: '' }],
  // kvroute's departures from GIE v1.5.0 in its form, for traffic vLLM serves (openAiApiOf, GIE_PROMPT): GIE refuses each.
  ['images/generations given a prompt (a path of none of GIE\'s five APIs: read by its fields)', '/v1/images/generations', { model: 'm', prompt: 'a cat' }],
  ['a completion given token ids (GIE\'s Prompt reads []string only)', '/v1/completions', { model: 'm', prompt: [1, 2, 3] }],
  ['a completion given a batch of token-id lists', '/v1/completions', { model: 'm', prompt: [[1, 2], [3]] }],
  ['a chat on a path with a query (GIE tests the path as sent: a completion there)', '/v1/chat/completions?api-version=1', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }],
  ['a chat on /v1/messages (a completion in GIE)', '/v1/messages', { model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }],
  ['a score request (a completion without prompt in GIE)', '/v1/score', { model: 'm', text_1: 'a', text_2: 'b' }],
];

describe.each([
  ['llm-d-router v0.10.0', LLMD_DEFAULT, [...REQUIRED, ...REQUIRED_LLMD], [...ROUTED, ...ROUTED_LLMD]],
  ['GIE v1.5.0', GIE_DEFAULT_CONFIG, [...REQUIRED, ...REQUIRED_GIE], [...ROUTED, ...ROUTED_GIE]],
] as const)('openai-parser extractRequestBody (%s parsers/openai/openai.go determineAPITypeFromPath; requestcontrol/director.go processRequestBody: BadRequest)', (_form, configText, refused, routed) => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start([P(0, 0, 0.1), P(1, 0, 0.1)], { mode: 'standalone-nocrd', configText });
  });
  afterAll(async () => h.stop());

  test.each(refused as [string, string, unknown, string][])('%s: 400 with upstream\'s message', async (_case, path, request, message) => {
    const out = (await h.streamed(reqRaw({ ':path': path, 'content-type': 'application/json', 'x-request-id': 'req' }, JSON.stringify(request)), 1)).map(normalise);
    expect(statusOf(out)).toBe(400);
    expect(JSON.parse((out[0] as Extract<Norm, { immediate: unknown }>).immediate.body).error.message).toBe(message);
  });

  test.each(routed as [string, string, unknown][])('%s: routed', async (_case, path, request) => {
    const out = (await h.streamed(reqRaw({ ':path': path, 'content-type': 'application/json', 'x-request-id': 'req' }, JSON.stringify(request)), 2)).map(normalise);
    expect(statusOf(out)).toBe('routed');
  });

  test('a request without a body is routed by load on any path', async () => {
    const out = (await h.streamed([{ request_headers: { headers: { headers: [{ key: ':path', value: '/v1/chat/completions' }, { key: ':method', value: 'GET' }] }, end_of_stream: true } }], 1)).map(normalise);
    expect(routedTo(out)).toMatch(/^127\.0\.0\.[12]:\d+$/);
  });
});

// GIE v1.5.0 / llm-d-router v0.10.0 openai.go ParseRequest: json.Unmarshal into map[string]any fails on a number out
// of float64's range, and director.go processRequestBody answers BadRequest; JSON.parse would read ±Infinity.
test.each(['gie', 'llmd'] as const)('openai-parser (%s): a number out of float64\'s range is a 400, on a known path or not', (form) => {
  for (const path of ['/v1/completions', '/v1/chat/completions', '/v1/score']) {
    const text = path.includes('chat') ? '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}' : '{"model":"m","prompt":"p","temperature":-1e309}';
    let err: unknown;
    try {
      parseOpenAiRequest(Buffer.from(text), new Map([[':path', path]]), form);
    } catch (e) {
      err = e;
    }
    expect((err as { status?: number } | undefined)?.status).toBe(400);
  }
  expect(parseOpenAiRequest(Buffer.from('{"model":"m","prompt":"p","temperature":1e308}'), new Map([[':path', '/v1/completions']]), form).model).toBe('m');
});

// GIE v1.5.0 and llm-d-router v0.10.0 openai.go extractRequestBody decode a CompletionsRequest on a completion path and
// key its `Prompt` (approximateprefix/hashing.go; tokenizer/estimate.go estimateBytes): a stray `messages` is not read.
test.each(['gie', 'llmd'] as const)('openai-parser (%s): /v1/completions with a stray messages member is keyed on its prompt', (form) => {
  const parsed = parseOpenAiRequest(body({ model: 'm', prompt: 'the document', messages: [{ role: 'user', content: 'unrelated' }] }), new Map([[':path', '/v1/completions']]), form);
  expect(parsed.input).toEqual({ kind: 'text', text: 'the document' });
  expect(parsed.prompt).toBe('the document');
});

/**
 * A member of the wrong JSON type makes upstream's `json.Unmarshal` into the API's request struct fail, and
 * extractRequestBody answers its required-member message (400): GIE v1.5.0
 * `pkg/epp/framework/interface/scheduling/types.go`, llm-d-router v0.10.0
 * `pkg/epp/framework/interface/requesthandling/types.go` (`ContentBlock.Text`/`Type` strings, `Content.UnmarshalJSON`
 * "content format not supported", `ChatCompletionsRequest.ChatTemplate` a string, its flags bools, …).
 */
const CHAT_INVALID = 'invalid chat completions request: must have valid messages field';
const chatWith = (extra: Record<string, unknown>, content: unknown = 'hi') => ({ model: 'm', messages: [{ role: 'user', content }], ...extra });
const WRONG_TYPES: [string, string, unknown, string][] = [
  ['a content part whose text is a number (ContentBlock.Text string)', '/v1/chat/completions', chatWith({}, [{ type: 'text', text: 5 }]), CHAT_INVALID],
  ['a content part whose type is a number (ContentBlock.Type string)', '/v1/chat/completions', chatWith({}, [{ type: 5, text: 'hi' }]), CHAT_INVALID],
  ['an image_url part whose image_url is a string (ImageBlock struct)', '/v1/chat/completions', chatWith({}, [{ type: 'image_url', image_url: 'https://x/cat.png' }]), CHAT_INVALID],
  ['an image_url whose url is a number (ImageBlock.URL string)', '/v1/chat/completions', chatWith({}, [{ type: 'image_url', image_url: { url: 5 } }]), CHAT_INVALID],
  ['an input_audio whose data is a number (AudioBlock.Data string)', '/v1/chat/completions', chatWith({}, [{ type: 'input_audio', input_audio: { data: 5, format: 'wav' } }]), CHAT_INVALID],
  ['a video_url whose url is an array (VideoBlock.URL string)', '/v1/chat/completions', chatWith({}, [{ type: 'video_url', video_url: { url: [] } }]), CHAT_INVALID],
  ['content that is a number (Content.UnmarshalJSON)', '/v1/chat/completions', chatWith({}, 5), CHAT_INVALID],
  ['a role that is a number (Message.Role string)', '/v1/chat/completions', { model: 'm', messages: [{ role: 7, content: 'hi' }] }, CHAT_INVALID],
  ['a chat_template that is not a string (ChatCompletionsRequest.ChatTemplate string)', '/v1/chat/completions', chatWith({ chat_template: 5 }), CHAT_INVALID],
  ['add_generation_prompt given as a string (AddGenerationPrompt bool)', '/v1/chat/completions', chatWith({ add_generation_prompt: 'true' }), CHAT_INVALID],
  ['continue_final_message given as 1 (ContinueFinalMessage bool)', '/v1/chat/completions', chatWith({ continue_final_message: 1 }), CHAT_INVALID],
  ['return_assistant_tokens_mask given as a string (bool)', '/v1/chat/completions', chatWith({ return_assistant_tokens_mask: 'no' }), CHAT_INVALID],
  ['documents that are an object (Documents []any)', '/v1/chat/completions', chatWith({ documents: { a: 1 } }), CHAT_INVALID],
  ['chat_template_kwargs that are an array (map[string]any)', '/v1/chat/completions', chatWith({ chat_template_kwargs: [] }), CHAT_INVALID],
  ['a chat cache_salt that is a number (CacheSalt string)', '/v1/chat/completions', chatWith({ cache_salt: 5 }), CHAT_INVALID],
  ['a completion cache_salt that is a number', '/v1/completions', { model: 'm', prompt: 'hi', cache_salt: 5 }, 'invalid completions request: must have prompt field'],
  ['a response cache_salt that is a number', '/v1/responses', { model: 'm', input: 'hi', cache_salt: true }, 'invalid responses request: must have input field'],
  ['a conversation item whose role is a number (ConversationItem.Role string)', '/v1/conversations', { model: 'm', items: [{ type: 'message', role: 1, content: 'hi' }] }, 'invalid conversations request: must have items field'],
  ['conversation metadata that is an array (map[string]any)', '/v1/conversations', { model: 'm', items: [{ role: 'user', content: 'hi' }], metadata: [] }, 'invalid conversations request: must have items field'],
  ['an embeddings cache_salt that is a number', '/v1/embeddings', { model: 'm', input: 'hi', cache_salt: 1 }, 'invalid embeddings request: must have input field'],
];
const WRONG_TYPES_LLMD: [string, string, unknown, string][] = [
  ['tool_calls that are an object (llm-d Message.ToolCalls []any)', '/v1/chat/completions', { model: 'm', messages: [{ role: 'assistant', content: 'x', tool_calls: {} }] }, CHAT_INVALID],
  ['images/generations whose n is not whole (N *int64)', '/v1/images/generations', { model: 'm', prompt: 'a cat', n: 1.5 }, 'invalid images generations request: must have prompt field'],
  ['images/generations whose size is a number (Size string)', '/v1/images/generations', { model: 'm', prompt: 'a cat', size: 1024 }, 'invalid images generations request: must have prompt field'],
];

describe.each([
  ['llm-d-router v0.10.0', 'llmd', [...WRONG_TYPES, ...WRONG_TYPES_LLMD]],
  ['GIE v1.5.0', 'gie', WRONG_TYPES],
] as const)('openai-parser: a member of the wrong type is 400 as upstream\'s json.Unmarshal fails (%s request structs)', (_form, form, cases) => {
  test.each(cases as [string, string, unknown, string][])('%s', (_case, path, request, message) => {
    expect(errorOf(() => parseOpenAiRequest(body(request), new Map([[':path', path]]), form))).toBe(`400 ${message}`);
  });

  test('the right types, null where upstream takes null, and members upstream does not read are accepted', () => {
    const chat = {
      model: 'm', chat_template: null, add_generation_prompt: true, documents: [{ title: 't', text: 'x' }], cache_salt: 's',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: 'https://x/cat.png' } }] }, { role: 'assistant', content: null }],
    };
    expect(parseOpenAiRequest(body(chat), new Map([[':path', '/v1/chat/completions']]), form).model).toBe('m');
    // GIE v1.5.0's Message has no tool_calls: a wrongly typed one is not its concern (vLLM's).
    if (form === 'gie') expect(parseOpenAiRequest(body({ model: 'm', messages: [{ role: 'assistant', content: 'x', tool_calls: {} }] }), new Map([[':path', '/v1/chat/completions']]), form).model).toBe('m');
  });
});

// anthropic-parser ParseRequest (parsers/anthropic/anthropic.go@v0.10.0): json.Unmarshal into MessagesRequest fails on a
// wrongly typed AnthropicTool.Strict / DeferLoading (*bool) or AnthropicImageSource member (strings), types.go L686-781.
test.each([
  ['a tool whose strict is not a boolean', { model: 'c', max_tokens: 8, tools: [{ name: 't', input_schema: { type: 'object' }, strict: 'yes' }], messages: [{ role: 'user', content: 'hi' }] }, 'tools[0].strict'],
  ['a tool whose defer_loading is not a boolean', { model: 'c', max_tokens: 8, tools: [{ name: 't', defer_loading: 1 }], messages: [{ role: 'user', content: 'hi' }] }, 'tools[0].defer_loading'],
  ['an image source whose data is not a string', { model: 'c', max_tokens: 8, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 5 } }, { type: 'text', text: 'hi' }] }] }, 'messages[0].content[0].source.data'],
  ['an image source whose url is not a string', { model: 'c', max_tokens: 8, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: {} } }] }] }, 'messages[0].content[0].source.url'],
])('anthropic-parser: %s is 400 (error parsing messages request)', (_case, request, param) => {
  expect(errorOf(() => parseAnthropicRequest(body(request), '/v1/messages'))).toMatch(/^400 error parsing messages request: /);
  try {
    parseAnthropicRequest(body(request), '/v1/messages');
  } catch (e) {
    expect((e as RequestBodyError).param).toBe(param);
  }
});

// vllmhttp-parser (parsers/vllmhttp/vllmhttp.go@v0.10.0 parseGenerateRequest): GenerateRequest.UnmarshalJSON decodes
// `features` into typed maps, so a wrongly typed one fails ("invalid generate request: …").
test.each([
  ['features that are an array', { token_ids: [1], features: [] }],
  ['mm_hashes whose hashes are numbers', { token_ids: [1], features: { mm_hashes: { image: [1] } } }],
  ['a placeholder whose offset is a string', { token_ids: [1], features: { mm_placeholders: { image: [{ offset: '0', length: 4 }] } } }],
])('vllmhttp-parser: %s is 400', (_case, request) => {
  expect(errorOf(() => parseGenerateRequest(body(request), '/inference/v1/generate'))).toMatch(/^400 invalid generate request: /);
});

test('vllmhttp-parser: well-typed features are accepted (and not read)', () => {
  const parsed = parseGenerateRequest(body({ token_ids: [1, 2], features: { mm_hashes: { image: ['h'] }, mm_placeholders: { image: [{ offset: 0, length: 2 }] } } }), '/inference/v1/generate');
  expect(parsed.input).toEqual({ kind: 'tokens', tokens: [1, 2] });
});
