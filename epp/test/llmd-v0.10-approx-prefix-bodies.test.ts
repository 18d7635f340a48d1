/**
 * What the approximate `prefix-cache-scorer` keys a request body on, against a reference model of llm-d-router v0.10.0's
 * estimate token producer, written from its source:
 *
 * - `pkg/epp/framework/plugins/requestcontrol/dataproducer/tokenizer/estimate.go` @ v0.10.0: messagesBytes (L236-280,
 *   an Anthropic Messages body: the tools' JSON, the system text, then each message's role and its blocks in order:
 *   text, image placeholders, thinking text, a tool_use's id, name and raw input, a tool_result's text and images;
 *   redacted_thinking and unknown blocks nothing) and chatCompletionsBytes / appendChatMessage (L194-232, an OpenAI
 *   chat: the tools' JSON, then each message's role and its text or text, image, video and audio parts);
 * - `tokenizer/tokenizer.go` anthropicSystemText (L456-467: the billing header left out), anthropicToolResultContent
 *   (L594-609), `tokenizer/backend.go` CacheSaltFromBody, `prefixhash/hashing.go` computeBlockHashes (the chain seeded
 *   with the target model, then the salt);
 * - the Go types the bytes are marshalled from (`framework/interface/requesthandling/types.go`: `AnthropicTool` a
 *   struct whose fields are name, description, input_schema, strict, defer_loading; a chat's `Tools []any`, whose maps
 *   `encoding/json` writes with sorted keys).
 *
 * The observable is the match a request gets on the pod a previous request was routed to: a whole match (score 1) when
 * upstream's byte stream, model and salt are the same, less when they differ. The byte streams themselves are not
 * compared: kvroute renders ChatML turns and hashes UTF-16 code units, a documented difference (epp/README.md,
 * "Approximate prefix hashing"), so the model compares which pairs of requests upstream keys the same.
 *
 * Seeded random bodies, one random change each (a text, a thinking block, a tool call's input, name or id, a tool
 * result, an image, a tool, the salt, the model; and changes upstream ignores: redacted thinking, cache_control, the
 * billing header, sampling parameters, chat_template_kwargs). Where kvroute differs on purpose the model takes
 * kvroute's side and says so: an OpenAI assistant's `tool_calls` are keyed (vLLM's template renders them; upstream's
 * appendChatMessage reads role and content only). Not generated: a tool list whose keys are reordered (upstream sorts a
 * chat's tool keys, vLLM's template and kvroute keep them as sent), a tool_use without input (upstream hashes no bytes,
 * vLLM and kvroute render `{}`), and text blocks after a tool_result in a user message (vLLM and kvroute move the tool
 * results ahead, upstream keeps block order); each is noted where it would differ.
 */
import { createHash } from 'node:crypto';
import type { ParsedRequestBody } from '@kvroute/protocol/openai';
import { seededRandom } from '@kvroute/testkit';
import { parseAnthropicRequest, parseOpenAiRequest } from '../src/requestcontrol/request-parsers';
import { estimatedPromptTokens } from '../src/scheduling/estimated-tokens';
import { cycleOf, goMarshalAny, goString, loadScorer, objects, pick, pod, words, type Json, type JsonObject } from './approx-prefix-reference';

// ---------------------------------------------------------------------------------------------------------------------
// The reference model: the bytes llm-d-router v0.10.0's estimate backend packs into pseudo-tokens.

/** `json.Marshal` of a `json.RawMessage`: the bytes compacted, keys in wire order. */
function goMarshalRaw(v: Json): string {
  if (v === null || typeof v !== 'object') return typeof v === 'string' ? goString(v) : JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(goMarshalRaw).join(',')}]`;
  return `{${Object.keys(v).map((k) => `${goString(k)}:${goMarshalRaw(v[k]!)}`).join(',')}}`;
}

/** `json.Marshal([]AnthropicTool)` (types.go L686-692): the struct's fields in order, the empty ones omitted. */
function anthropicToolsJson(tools: readonly JsonObject[]): string {
  return `[${tools.map((t) => {
    const fields = [`"name":${goString(typeof t.name === 'string' ? t.name : '')}`];
    if (typeof t.description === 'string' && t.description !== '') fields.push(`"description":${goString(t.description)}`);
    if (t.input_schema !== undefined) fields.push(`"input_schema":${goMarshalRaw(t.input_schema)}`);
    if (typeof t.strict === 'boolean') fields.push(`"strict":${t.strict}`);
    if (typeof t.defer_loading === 'boolean') fields.push(`"defer_loading":${t.defer_loading}`);
    return `{${fields.join(',')}}`;
  }).join(',')}]`;
}

/**
 * appendMMAsset (estimate.go L285-303): aligned to 4 bytes, then placeholder pseudo-tokens of the content's hash. Here
 * 4 tokens of a SHA-256 prefix rather than the image estimator's count of xxhash tokens: the count and the hash depend
 * on the content alone, so which requests share the bytes is the same.
 */
function mmAsset(out: Buffer[], content: string, mm: boolean): void {
  if (!mm) return;
  const length = out.reduce((n, b) => n + b.length, 0);
  if (length % 4 !== 0) out.push(Buffer.alloc(4 - (length % 4)));
  const token = createHash('sha256').update(content).digest().subarray(0, 4);
  for (let i = 0; i < 4; i++) out.push(token);
}

/** anthropicImageToURL (tokenizer.go L647-662). */
function anthropicImageUrl(source: Json | undefined): string {
  if (source === null || typeof source !== 'object' || Array.isArray(source)) return '';
  const url = typeof source.url === 'string' ? source.url : '';
  if (source.type === 'url' || url !== '') return url;
  const data = typeof source.data === 'string' ? source.data : '';
  if (data === '') return '';
  return `data:${typeof source.media_type === 'string' && source.media_type !== '' ? source.media_type : 'image/jpeg'};base64,${data}`;
}

/**
 * estimate.go messagesBytes (L236-280). Without `mm`, multimodal placeholders are left out, as kvroute's token count
 * leaves them out (`estimated-tokens.ts`, documented).
 */
function upstreamMessagesBytes(body: JsonObject, mm = true): Buffer {
  const out: Buffer[] = [];
  const tools = (body.tools ?? []) as JsonObject[];
  if (tools.length > 0) out.push(Buffer.from(anthropicToolsJson(tools)));
  // anthropicSystemText (tokenizer.go L456-467).
  const system = body.system;
  if (typeof system === 'string') out.push(Buffer.from(system));
  else if (Array.isArray(system)) {
    for (const b of system as JsonObject[]) {
      if (b.type === 'text' && typeof b.text === 'string' && b.text !== '' && !b.text.startsWith('x-anthropic-billing-header')) out.push(Buffer.from(b.text));
    }
  }
  for (const m of body.messages as JsonObject[]) {
    if (typeof m.role === 'string') out.push(Buffer.from(m.role));
    if (typeof m.content === 'string' && m.content !== '') {
      out.push(Buffer.from(m.content));
      continue;
    }
    for (const b of (Array.isArray(m.content) ? m.content : []) as JsonObject[]) {
      switch (b.type) {
        case 'text':
          out.push(Buffer.from(b.text as string));
          break;
        case 'image': {
          const url = anthropicImageUrl(b.source);
          if (url !== '') mmAsset(out, url, mm);
          break;
        }
        case 'thinking':
          out.push(Buffer.from(b.thinking as string));
          break;
        case 'tool_use':
          // ID, name, then `Input json.RawMessage` as it came on the wire (the bodies here are JSON.stringify's).
          out.push(Buffer.from(b.id as string), Buffer.from(b.name as string), Buffer.from(JSON.stringify(b.input)));
          break;
        case 'tool_result': {
          // anthropicToolResultContent (tokenizer.go L594-609): text blocks joined by newlines, then the images.
          const content = b.content;
          if (typeof content === 'string') {
            out.push(Buffer.from(content));
          } else {
            const blocks = (content ?? []) as JsonObject[];
            out.push(Buffer.from(blocks.filter((x) => x.type === 'text').map((x) => x.text as string).join('\n')));
            for (const x of blocks) {
              if (x.type !== 'image') continue;
              const url = anthropicImageUrl(x.source);
              if (url !== '') mmAsset(out, url, mm);
            }
          }
          break;
        }
        // redacted_thinking and unknown blocks: nothing.
      }
    }
  }
  return Buffer.concat(out);
}

/**
 * estimate.go chatCompletionsBytes / appendChatMessage (L194-232); `mm` as for upstreamMessagesBytes, and `kvroute`:
 * the tool calls kvroute keys and upstream does not (for the keys; the token count is upstream's).
 */
function upstreamChatBytes(body: JsonObject, mm = true, kvroute = true): Buffer {
  const out: Buffer[] = [];
  const tools = (body.tools ?? []) as Json[];
  if (tools.length > 0) out.push(Buffer.from(goMarshalAny(tools)));
  for (const m of body.messages as JsonObject[]) {
    if (typeof m.role === 'string' && m.role !== '') out.push(Buffer.from(m.role));
    if (typeof m.content === 'string' && m.content !== '') {
      out.push(Buffer.from(m.content));
    } else {
      for (const p of (Array.isArray(m.content) ? m.content : []) as JsonObject[]) {
        if (p.type === 'text') out.push(Buffer.from(p.text as string));
        else if (p.type === 'image_url' || p.type === 'video_url') mmAsset(out, (p[p.type] as JsonObject).url as string, mm);
        else if (p.type === 'input_audio') mmAsset(out, `${(p.input_audio as JsonObject).data as string}${(p.input_audio as JsonObject).format as string}`, mm);
      }
    }
    // kvroute's side (see the module comment): an assistant's tool calls are keyed, as vLLM renders them.
    if (kvroute && Array.isArray(m.tool_calls) && m.tool_calls.length > 0) out.push(Buffer.from(`\u0000kvroute:${JSON.stringify(m.tool_calls)}`));
  }
  return Buffer.concat(out);
}

/** What upstream's chain is a function of: the target model, the salt (computeBlockHashes), and the bytes. */
function upstreamKey(api: 'messages' | 'chat', body: JsonObject): string {
  const bytes = api === 'messages' ? upstreamMessagesBytes(body) : upstreamChatBytes(body);
  return JSON.stringify([body.model, typeof body.cache_salt === 'string' ? body.cache_salt : '', bytes.toString('base64')]);
}

// ---------------------------------------------------------------------------------------------------------------------
// Random bodies and one random change each.

function anthropicBody(random: () => number): JsonObject {
  const tools: JsonObject[] = [];
  for (let i = Math.floor(random() * 3); i > 0; i--) {
    tools.push({ name: `tool_${i}`, description: words(random, 3), input_schema: { type: 'object', properties: { q: { type: 'string' } } } });
  }
  const messages: JsonObject[] = [];
  const turns = 2 + Math.floor(random() * 4);
  let call = 0;
  let pendingToolUse: string | undefined;
  for (let t = 0; t < turns; t++) {
    const user: Json[] = [];
    if (pendingToolUse !== undefined) {
      // Tool results first, as the Messages API wants them (and so block order and vLLM's order agree).
      user.push(random() < 0.5
        ? { type: 'tool_result', tool_use_id: pendingToolUse, content: words(random, 4) }
        : { type: 'tool_result', tool_use_id: pendingToolUse, content: [{ type: 'text', text: words(random, 2) }, { type: 'text', text: words(random, 2) }] });
      pendingToolUse = undefined;
    }
    if (random() < 0.3) user.push({ type: 'image', source: { type: 'url', url: `https://img.example/${Math.floor(random() * 5)}.png` } });
    user.push({ type: 'text', text: words(random, 6) });
    messages.push({ role: 'user', content: user.length === 1 && random() < 0.5 ? (user[0] as JsonObject).text as string : user });
    if (t === turns - 1) break;
    const assistant: Json[] = [];
    if (random() < 0.5) assistant.push({ type: 'thinking', thinking: words(random, 5), signature: 'sig' });
    if (random() < 0.2) assistant.push({ type: 'redacted_thinking', data: words(random, 2) });
    if (random() < 0.7) assistant.push({ type: 'text', text: words(random, 5) });
    if (random() < 0.6 || assistant.length === 0) {
      pendingToolUse = `toolu_${call++}`;
      assistant.push({ type: 'tool_use', id: pendingToolUse, name: pick(random, ['get_weather', 'search', 'read_file']), input: { q: words(random, 2), n: Math.floor(random() * 9) } });
    }
    messages.push({ role: 'assistant', content: assistant });
  }
  const body: JsonObject = { model: pick(random, ['claude-a', 'claude-b']), max_tokens: 64, messages };
  if (tools.length > 0) body.tools = tools;
  if (random() < 0.7) {
    body.system = random() < 0.5 ? words(random, 8) : [{ type: 'text', text: 'x-anthropic-billing-header: cc=1;' }, { type: 'text', text: words(random, 8) }];
  }
  if (random() < 0.2) body.cache_salt = pick(random, ['s1', 's2']);
  return body;
}

function chatBody(random: () => number): JsonObject {
  const tools: Json[] = [];
  for (let i = Math.floor(random() * 3); i > 0; i--) {
    tools.push({ type: 'function', function: { name: `tool_${i}`, description: words(random, 3), parameters: { type: 'object', properties: { q: { type: 'string' } } } } });
  }
  const messages: JsonObject[] = [];
  if (random() < 0.5) messages.push({ role: 'system', content: words(random, 8) });
  const turns = 2 + Math.floor(random() * 4);
  for (let t = 0; t < turns; t++) {
    const parts: Json[] = [{ type: 'text', text: words(random, 6) }];
    if (random() < 0.3) parts.push({ type: 'image_url', image_url: { url: `https://img.example/${Math.floor(random() * 5)}.png` } });
    if (random() < 0.1) parts.push({ type: 'input_audio', input_audio: { data: `AAAA${Math.floor(random() * 3)}`, format: 'wav' } });
    messages.push({ role: 'user', content: parts.length === 1 && random() < 0.5 ? words(random, 6) : parts });
    if (t === turns - 1) break;
    if (random() < 0.4) {
      messages.push({ role: 'assistant', content: null, tool_calls: [{ id: `call_${t}`, type: 'function', function: { name: 'search', arguments: JSON.stringify({ q: words(random, 2) }) } }] });
      messages.push({ role: 'tool', tool_call_id: `call_${t}`, content: words(random, 3) });
    } else {
      messages.push({ role: 'assistant', content: words(random, 5) });
    }
  }
  const body: JsonObject = { model: pick(random, ['m-a', 'm-b']), messages };
  if (tools.length > 0) body.tools = tools;
  if (random() < 0.2) body.cache_salt = pick(random, ['s1', 's2']);
  return body;
}

/** Applies one random change to `body` (a copy); returns what it changed. */
function mutate(random: () => number, body: JsonObject, api: 'messages' | 'chat'): string {
  const all = objects(body);
  const where = (test: (o: JsonObject) => boolean) => all.filter(test);
  const kinds: [string, JsonObject[], (o: JsonObject) => void][] = [
    ['text', where((o) => o.type === 'text'), (o) => { o.text = `${o.text as string} more`; }],
    ['string content', where((o) => typeof o.content === 'string' && o.role !== undefined), (o) => { o.content = `${o.content as string}!`; }],
    ['image', where((o) => o.type === 'image' || o.type === 'image_url'), (o) => {
      const target = (o.type === 'image' ? o.source : o.image_url) as JsonObject;
      target.url = `${target.url as string}?v=2`;
    }],
    ['cache_control', where((o) => typeof o.type === 'string' && o.type !== 'object' && o.type !== 'string'), (o) => { o.cache_control = { type: 'ephemeral' }; }],
    ['sampling', [body], (o) => { o.temperature = 0.5; }],
    ['salt', [body], (o) => { o.cache_salt = `${typeof o.cache_salt === 'string' ? o.cache_salt : ''}z`; }],
    ['model', [body], (o) => { o.model = `${o.model as string}-lora`; }],
    ['tool description', where((o) => typeof o.description === 'string'), (o) => { o.description = `${o.description as string}.`; }],
  ];
  if (api === 'messages') {
    kinds.push(
      ['thinking', where((o) => o.type === 'thinking'), (o) => { o.thinking = `${o.thinking as string} hmm`; }],
      ['redacted thinking', where((o) => o.type === 'redacted_thinking'), (o) => { o.data = `${o.data as string}x`; }],
      ['tool_use input', where((o) => o.type === 'tool_use'), (o) => { (o.input as JsonObject).n = ((o.input as JsonObject).n as number) + 1; }],
      ['tool_use name', where((o) => o.type === 'tool_use'), (o) => { o.name = `${o.name as string}2`; }],
      ['tool_use id', where((o) => o.type === 'tool_use'), (o) => { o.id = `${o.id as string}b`; }],
      ['tool_result', where((o) => o.type === 'tool_result'), (o) => { o.content = typeof o.content === 'string' ? `${o.content} ok` : [...(o.content as Json[]), { type: 'text', text: 'ok' }]; }],
      ['billing header', where((o) => typeof o.text === 'string' && o.text.startsWith('x-anthropic-billing-header')), (o) => { o.text = 'x-anthropic-billing-header: cc=2;'; }],
      ['tool cache_control', where((o) => o.input_schema !== undefined), (o) => { o.cache_control = { type: 'ephemeral' }; }],
    );
  } else {
    kinds.push(
      ['tool_calls', where((o) => Array.isArray(o.tool_calls)), (o) => { (((o.tool_calls as JsonObject[])[0]!).function as JsonObject).arguments = '{"q": "other"}'; }],
      ['message name', where((o) => o.role === 'user'), (o) => { o.name = 'alice'; }],
      ['chat_template_kwargs', [body], (o) => { o.chat_template_kwargs = { enable_thinking: false }; }],
      ['add_generation_prompt', [body], (o) => { o.add_generation_prompt = false; }],
    );
  }
  const possible = kinds.filter(([, targets]) => targets.length > 0);
  const [name, targets, change] = pick(random, possible);
  change(pick(random, targets));
  return name;
}

// ---------------------------------------------------------------------------------------------------------------------
// kvroute: the real parsers and the real scorer, as the loader builds it from a config in llm-d's group.

function parse(api: 'messages' | 'chat', body: JsonObject): ParsedRequestBody {
  const raw = Buffer.from(JSON.stringify(body));
  return api === 'messages'
    ? parseAnthropicRequest(raw, '/v1/messages')
    : parseOpenAiRequest(raw, new Map([[':path', '/v1/chat/completions']]), 'llmd');
}

interface Divergence {
  readonly seed: number;
  readonly change: string;
  readonly upstreamSame: boolean;
  readonly kvrouteScore: number;
}

/** Routes `a` to pod A, then scores `b` on A and B; compares A's score with whether upstream keys both the same. */
function run(api: 'messages' | 'chat', seed: number): Divergence | undefined {
  const random = seededRandom(seed);
  const a = api === 'messages' ? anthropicBody(random) : chatBody(random);
  const b = JSON.parse(JSON.stringify(a)) as JsonObject;
  const change = mutate(random, b, api);
  const upstreamSame = upstreamKey(api, a) === upstreamKey(api, b);
  const scorer = loadScorer();
  const [podA, podB] = [pod('a'), pod('b')];
  const first = cycleOf(parse(api, a));
  scorer.score(first, [podA, podB]);
  scorer.postCycle(first, { targets: [podA], scores: new Map() });
  const [onA, onB] = scorer.score(cycleOf(parse(api, b)), [podA, podB]);
  expect(onB).toBe(0);
  if (upstreamSame === (onA === 1)) return undefined;
  return { seed, change, upstreamSame, kvrouteScore: onA! };
}

describe('approximate prefix keys of request bodies vs llm-d-router v0.10.0 tokenizer/estimate.go (reference model)', () => {
  test.each(['messages', 'chat'] as const)('%s: 300 seeded bodies, one change each: a whole match exactly when upstream keys both alike', (api) => {
    const divergences: Divergence[] = [];
    const changes = new Map<string, number>();
    for (let seed = 1; seed <= 300; seed++) {
      const d = run(api, seed);
      if (d !== undefined) divergences.push(d);
      const random = seededRandom(seed);
      const body = api === 'messages' ? anthropicBody(random) : chatBody(random);
      const name = mutate(random, body, api);
      changes.set(name, (changes.get(name) ?? 0) + 1);
    }
    expect(divergences).toEqual([]);
    // Every kind of change was drawn.
    expect([...changes.keys()].sort()).toEqual(api === 'messages'
      ? ['billing header', 'cache_control', 'image', 'model', 'redacted thinking', 'salt', 'sampling', 'string content', 'text', 'thinking', 'tool cache_control', 'tool description', 'tool_result', 'tool_use id', 'tool_use input', 'tool_use name']
      : ['add_generation_prompt', 'cache_control', 'chat_template_kwargs', 'image', 'message name', 'model', 'salt', 'sampling', 'string content', 'text', 'tool description', 'tool_calls']);
  });

  test.each(['messages', 'chat'] as const)('%s: the P/D decider\'s prompt tokens are upstream\'s packed bytes ÷ 4, rounded up (estimate.go packBytes; multimodal placeholders left out)', (api) => {
    const wrong: { seed: number; upstream: number; kvroute: number }[] = [];
    for (let seed = 1; seed <= 300; seed++) {
      const body = api === 'messages' ? anthropicBody(seededRandom(seed)) : chatBody(seededRandom(seed));
      const bytes = api === 'messages' ? upstreamMessagesBytes(body, false) : upstreamChatBytes(body, false, false);
      const upstream = Math.ceil(bytes.length / 4);
      const kvroute = estimatedPromptTokens(cycleOf(parse(api, body)).request);
      if (kvroute !== upstream) wrong.push({ seed, upstream, kvroute });
    }
    expect(wrong).toEqual([]);
  });

  test('an Anthropic conversation that differs only in what a tool was called with shares no block past the call (estimate.go messagesBytes L265-268)', () => {
    const body = (city: string): JsonObject => ({
      model: 'claude', max_tokens: 8, messages: [
        { role: 'user', content: 'What is the weather?' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'I should call the tool.' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'Sunny' }, { type: 'text', text: 'And tomorrow?' }] },
      ],
    });
    expect(upstreamKey('messages', body('Paris'))).not.toBe(upstreamKey('messages', body('Rome')));
    const scorer = loadScorer();
    const [podA, podB] = [pod('a'), pod('b')];
    const first = cycleOf(parse('messages', body('Paris')));
    scorer.score(first, [podA, podB]);
    scorer.postCycle(first, { targets: [podA], scores: new Map() });
    expect(scorer.score(cycleOf(parse('messages', body('Paris'))), [podA, podB])).toEqual([1, 0]);
    const [onA] = scorer.score(cycleOf(parse('messages', body('Rome'))), [podA, podB]);
    expect(onA).toBeGreaterThan(0);
    expect(onA).toBeLessThan(1);
  });
});
