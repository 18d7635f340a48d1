/**
 * What the approximate `prefix-cache-scorer` keys a Responses API body (`/v1/responses`) on, against a reference model
 * of llm-d-router v0.10.0's estimate token producer, written from its source:
 *
 * - `pkg/epp/framework/plugins/requestcontrol/dataproducer/tokenizer/estimate.go` @ v0.10.0 estimateBytes (L171-180):
 *   `json.Marshal` of `[{"instructions": …}, {"tools": …}, {"input": …}]`, the first two only when the body has them
 *   (non-nil), the input always; packBytes (L316-326) packs those bytes four to a pseudo-token;
 * - `framework/interface/requesthandling/types.go` ResponsesRequest (L365-374): Input, Instructions and Tools are `any`,
 *   so `encoding/json` writes their objects with sorted keys; CacheSalt; `tokenizer/backend.go` CacheSaltFromBody and
 *   `prefixhash/hashing.go` computeBlockHashes (the chain seeded with the target model, then the salt);
 * - `approximateprefix/plugin.go` (L129-134): the approximate prefix producer consumes that TokenizedPrompt.
 *
 * The observable, as in llmd-v0.10-approx-prefix-bodies.test.ts: the match a request gets on the pod a previous request
 * was routed to, a whole match (score 1) exactly when upstream's byte stream, model and salt are the same. Seeded agent
 * loops (a user message, then function calls with their outputs, reasoning items, assistant messages), one random
 * change each. kvroute renders message items as ChatML turns (its documented rendering); a non-message item is keyed
 * by its JSON and the tools seed the chain. Not generated, each a deliberate difference: a message item's `type:
 * "message"` added or dropped, or its content sent as a string rather than `input_text` parts (upstream's JSON changes,
 * the ChatML turn vLLM renders does not), keys reordered (upstream sorts them), an empty `instructions` (upstream keys
 * `""`, vLLM renders no system message), and `previous_response_id` (kvroute keys nothing: the stored conversation
 * that vLLM puts ahead of the input is the storing pod's, and kvroute routes there; upstream keys the body as any other).
 */
import type { ParsedRequestBody } from '@kvroute/protocol/openai';
import { seededRandom } from '@kvroute/testkit';
import { parseOpenAiRequest } from '../src/requestcontrol/request-parsers';
import { estimatedChatTokensWithin, estimatedPromptTokens } from '../src/scheduling/estimated-tokens';
import { cycleOf, goMarshalAny, loadScorer, objects, pick, pod, words, type Json, type JsonObject } from './approx-prefix-reference';

// ---------------------------------------------------------------------------------------------------------------------
// The reference model.

/** estimate.go estimateBytes, the `body.Responses != nil` case (L171-180). */
function upstreamResponsesBytes(body: JsonObject): Buffer {
  const combined: Json[] = [];
  if (body.instructions !== undefined && body.instructions !== null) combined.push({ instructions: body.instructions });
  if (body.tools !== undefined && body.tools !== null) combined.push({ tools: body.tools });
  combined.push({ input: body.input ?? null });
  return Buffer.from(goMarshalAny(combined));
}

function upstreamKey(body: JsonObject): string {
  return JSON.stringify([body.model, typeof body.cache_salt === 'string' ? body.cache_salt : '', upstreamResponsesBytes(body).toString('base64')]);
}

// ---------------------------------------------------------------------------------------------------------------------
// Seeded agent loops and one random change each.

function responsesBody(random: () => number): JsonObject {
  const input: Json[] = [{ role: 'user', content: random() < 0.5 ? words(random, 6) : [{ type: 'input_text', text: words(random, 6) }] }];
  const turns = 1 + Math.floor(random() * 4);
  for (let t = 0; t < turns; t++) {
    if (random() < 0.4) input.push({ type: 'reasoning', id: `rs_${t}`, summary: [{ type: 'summary_text', text: words(random, 4) }] });
    if (random() < 0.75) {
      input.push({ type: 'function_call', call_id: `call_${t}`, name: pick(random, ['get_weather', 'search', 'read_file']), arguments: JSON.stringify({ q: words(random, 2), n: Math.floor(random() * 9) }) });
      input.push({ type: 'function_call_output', call_id: `call_${t}`, output: words(random, 4) });
    } else {
      input.push({ role: 'assistant', content: words(random, 5) });
      input.push({ role: 'user', content: words(random, 5) });
    }
  }
  const body: JsonObject = { model: pick(random, ['m-a', 'm-b']), input };
  if (random() < 0.6) body.instructions = words(random, 8);
  if (random() < 0.7) {
    const tools: Json[] = [];
    for (let i = 1 + Math.floor(random() * 2); i > 0; i--) {
      tools.push({ type: 'function', name: `tool_${i}`, description: words(random, 3), parameters: { type: 'object', properties: { q: { type: 'string' } } } });
    }
    body.tools = tools;
  }
  if (random() < 0.2) body.cache_salt = pick(random, ['s1', 's2']);
  return body;
}

function mutate(random: () => number, body: JsonObject): string {
  const all = objects(body);
  const where = (test: (o: JsonObject) => boolean) => all.filter(test);
  const kinds: [string, JsonObject[], (o: JsonObject) => void][] = [
    ['message text', where((o) => typeof o.role === 'string' && typeof o.content === 'string'), (o) => { o.content = `${o.content as string}!`; }],
    ['input_text', where((o) => o.type === 'input_text'), (o) => { o.text = `${o.text as string} more`; }],
    ['function_call arguments', where((o) => o.type === 'function_call'), (o) => { o.arguments = (o.arguments as string).replace('"n":', '"n":1'); }],
    ['function_call name', where((o) => o.type === 'function_call'), (o) => { o.name = `${o.name as string}2`; }],
    ['function_call call_id', where((o) => o.type === 'function_call'), (o) => { o.call_id = `${o.call_id as string}b`; }],
    ['function_call_output', where((o) => o.type === 'function_call_output'), (o) => { o.output = `${o.output as string} ok`; }],
    ['reasoning summary', where((o) => o.type === 'summary_text'), (o) => { o.text = `${o.text as string} hmm`; }],
    ['instructions', [body], (o) => { o.instructions = `${typeof o.instructions === 'string' ? o.instructions : 'be'} brief`; }],
    ['tool description', where((o) => o.type === 'function' && typeof o.description === 'string'), (o) => { o.description = `${o.description as string}.`; }],
    ['tools added', [body].filter((o) => o.tools === undefined), (o) => { o.tools = [{ type: 'function', name: 'new_tool', parameters: { type: 'object' } }]; }],
    ['sampling', [body], (o) => { o.temperature = 0.5; o.max_output_tokens = 32; }],
    ['store', [body], (o) => { o.store = false; }],
    ['salt', [body], (o) => { o.cache_salt = `${typeof o.cache_salt === 'string' ? o.cache_salt : ''}z`; }],
    ['model', [body], (o) => { o.model = `${o.model as string}-lora`; }],
  ];
  const [name, targets, change] = pick(random, kinds.filter(([, targets]) => targets.length > 0));
  change(pick(random, targets));
  return name;
}

// ---------------------------------------------------------------------------------------------------------------------
// kvroute: the real parser and the real scorer.

function parse(body: JsonObject): ParsedRequestBody {
  return parseOpenAiRequest(Buffer.from(JSON.stringify(body)), new Map([[':path', '/v1/responses']]), 'llmd');
}

/** Routes `first` to pod A, then scores `second` on A and B. */
function scoreAfter(first: JsonObject, second: JsonObject): [number, number] {
  const scorer = loadScorer();
  const [podA, podB] = [pod('a'), pod('b')];
  const c = cycleOf(parse(first));
  scorer.score(c, [podA, podB]);
  scorer.postCycle(c, { targets: [podA], scores: new Map() });
  const [onA, onB] = scorer.score(cycleOf(parse(second)), [podA, podB]);
  return [onA!, onB!];
}

describe('approximate prefix keys of /v1/responses bodies vs llm-d-router v0.10.0 tokenizer/estimate.go estimateBytes L171-180 (reference model)', () => {
  test('300 seeded agent loops, one change each: a whole match exactly when upstream keys both alike', () => {
    const divergences: { seed: number; change: string; upstreamSame: boolean; kvrouteScore: number }[] = [];
    const changes = new Map<string, number>();
    for (let seed = 1; seed <= 300; seed++) {
      const random = seededRandom(seed);
      const a = responsesBody(random);
      const b = JSON.parse(JSON.stringify(a)) as JsonObject;
      const change = mutate(random, b);
      changes.set(change, (changes.get(change) ?? 0) + 1);
      const upstreamSame = upstreamKey(a) === upstreamKey(b);
      const [onA, onB] = scoreAfter(a, b);
      expect(onB).toBe(0);
      if (upstreamSame !== (onA === 1)) divergences.push({ seed, change, upstreamSame, kvrouteScore: onA });
    }
    expect(divergences).toEqual([]);
    expect([...changes.keys()].sort()).toEqual([
      'function_call arguments', 'function_call call_id', 'function_call name', 'function_call_output', 'input_text', 'instructions',
      'message text', 'model', 'reasoning summary', 'salt', 'sampling', 'store', 'tool description', 'tools added',
    ]);
  });

  test('an agent loop\'s turn N+1 matches every whole block of turn N on the pod that served it (upstream\'s JSON of turn N is a prefix of turn N+1\'s but for its closing brackets)', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const turnN = responsesBody(seededRandom(seed));
      const next = JSON.parse(JSON.stringify(turnN)) as JsonObject;
      (next.input as Json[]).push(
        { type: 'function_call', call_id: 'call_next', name: 'search', arguments: '{"q":"more"}' },
        { type: 'function_call_output', call_id: 'call_next', output: 'found it' },
      );
      const bytesN = upstreamResponsesBytes(turnN);
      const bytesNext = upstreamResponsesBytes(next);
      // Upstream: turn N's bytes up to its input's last item are turn N+1's first bytes.
      expect(bytesNext.subarray(0, bytesN.length - 3).equals(bytesN.subarray(0, bytesN.length - 3))).toBe(true);
      const promptN = parse(turnN).prompt;
      const promptNext = parse(next).prompt;
      expect(promptNext.startsWith(promptN)).toBe(true);
      const [onA, onB] = scoreAfter(turnN, next);
      expect(onB).toBe(0);
      // 4-token blocks of 4 characters per token: 16 characters a block, the last one partial.
      expect(onA).toBeCloseTo(Math.floor(promptN.length / 16) / Math.ceil(promptNext.length / 16), 6);
    }
  });

  test('two agent loops that differ only in a tool call\'s arguments share no block past the call', () => {
    const body = (city: string): JsonObject => ({
      model: 'm', instructions: 'You are a weather agent.', tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object' } }],
      input: [
        { role: 'user', content: 'What is the weather where I am going, and what should I pack for the whole week ahead of us?' },
        { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: JSON.stringify({ city }) },
        { type: 'function_call_output', call_id: 'call_1', output: 'Sunny, 25 degrees, light wind from the west all week long.' },
      ],
    });
    expect(upstreamKey(body('Paris'))).not.toBe(upstreamKey(body('Rome')));
    expect(scoreAfter(body('Paris'), body('Paris'))).toEqual([1, 0]);
    const [onA] = scoreAfter(body('Paris'), body('Rome'));
    expect(onA).toBeGreaterThan(0);
    expect(onA).toBeLessThan(1);
    // Other tools: upstream hashes them ahead of the input, so nothing is shared.
    const otherTools = { ...body('Paris'), tools: [{ type: 'function', name: 'get_forecast', parameters: { type: 'object' } }] };
    expect(scoreAfter(body('Paris'), otherTools)).toEqual([0, 0]);
  });

  test('the P/D decider\'s prompt tokens are Go\'s JSON of [{instructions}, {tools}, {input}] ÷ 4, rounded up (estimate.go estimateBytes, packBytes)', () => {
    const wrong: { seed: number; upstream: number; kvroute: number }[] = [];
    for (let seed = 1; seed <= 300; seed++) {
      const body = responsesBody(seededRandom(seed));
      const upstream = Math.ceil(upstreamResponsesBytes(body).length / 4);
      const kvroute = estimatedPromptTokens(cycleOf(parse(body)).request);
      if (kvroute !== upstream) wrong.push({ seed, upstream, kvroute });
    }
    expect(wrong).toEqual([]);
  });

  test('the P/D decider counts a wholly cached /v1/responses prompt as wholly cached: its held text is not mapped to a chat\'s role and content bytes, which are not what the estimate counts here', () => {
    const short: { seed: number; tokens: number; cached: number }[] = [];
    for (let seed = 1; seed <= 100; seed++) {
      const request = cycleOf(parse(responsesBody(seededRandom(seed)))).request;
      const tokens = estimatedPromptTokens(request);
      // prefix-based-pd-decider's cachedTokensOf: the chat mapping when it answers, else the held share of the tokens.
      const cached = Math.min(estimatedChatTokensWithin(request, request.prompt.length) ?? tokens, tokens);
      if (cached !== tokens) short.push({ seed, tokens, cached });
    }
    expect(short).toEqual([]);
  });

  test('previous_response_id: no keys (a documented difference: vLLM prefixes the stored conversation, which only the storing pod has)', () => {
    const body: JsonObject = { model: 'm', previous_response_id: 'resp_1', input: [{ type: 'function_call_output', call_id: 'call_1', output: 'ok' }] };
    expect(parse(body).input).toEqual({ kind: 'none' });
    expect(scoreAfter(body, body)).toEqual([0, 0]);
  });
});
