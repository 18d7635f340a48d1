import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { ChatTemplateRefusal, parseRequestBody, type ChatMessageInput, type PromptInput } from '@kvroute/protocol/openai';
import { Tokenizer as RustTokenizer } from 'tokenizers';
import { templateTokenizerJson, writeTemplateTokenizer } from '@kvroute/testkit';
import { hasBundledTokenizer, MEMO_ENTRY_BYTES, memoEntryBytes, ModelTokenizer, piecewiseEncodingSafe, resolveTokenizerFiles, TokenizerNotFoundError } from '../src';

type TokenizersModule = typeof import('@huggingface/tokenizers', { with: { 'resolution-mode': 'import' } });
/** An independent implementation to agree with: Hugging Face's pure-JS port of the tokenizer. */
const { Tokenizer: JsTokenizer } = require('@huggingface/tokenizers') as TokenizersModule;

jest.setTimeout(60_000);
// `gc` for the memo's retention test (jest runs without --expose-gc).
v8.setFlagsFromString('--expose-gc');

const MODEL = 'Qwen/Qwen3-0.6B';
let tok: ModelTokenizer;
beforeAll(() => {
  tok = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
});

/** Deterministic text with the shapes that stress pre-tokenization: line breaks, indentation, punctuation, CJK, emoji. */
function text(seed: number, n: number): string {
  const words = ['cache', ' route', '\n', '\n\n', ' \n', '  indent', '\r\n', 'x.', '.\n', 'über', ' 数据', '🙂', '\t', '  \n\n  y', '123', ' ', "'s", 'Hello'];
  let x = seed >>> 0;
  let s = '';
  while (s.length < n) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    s += words[x % words.length];
  }
  return s;
}

describe('ModelTokenizer (npm tokenizers, the Rust crate vLLM\'s fast tokenizer wraps)', () => {
  test('the memo is bounded by heap bytes, not characters: prompts of many short unique lines stay within its budget', async () => {
    // Each line is a piece of its own (a cut after every line break): 20,000 pieces of 2-4 characters. Counted in
    // characters they fit a 1 MiB budget 13 times over, while each held ~320 bytes of heap (soak 40: 4.2 million
    // 8-character pieces took 1.3 GB within the old 32 Mi-character budget).
    const budget = 1024 * 1024;
    const t = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }), budget);
    let n = 0;
    for (let p = 0; p < 20; p++) {
      const prompt = Array.from({ length: 1000 }, () => `${(n++).toString(36)}\n`).join('');
      expect([...(await t.encode(prompt))]).toEqual([...(await t.encodeWhole(prompt))]);
    }
    const { entries, bytes } = t.memoStats();
    expect(bytes).toBeLessThanOrEqual(budget);
    expect(entries).toBeLessThanOrEqual(Math.floor(budget / MEMO_ENTRY_BYTES));
    expect(entries).toBeGreaterThan(0);
    expect(memoEntryBytes('ab\n', Uint32Array.of(1, 2))).toBe(MEMO_ENTRY_BYTES + 6 + 8);
  });

  test('a memoized piece does not keep the prompt it was cut from alive', async () => {
    // A shared 160 KB document followed by one new line: only the line is new to the memo. Kept as V8 cut it (a slice
    // of the prompt), each key held its whole prompt (soak 40: 159 KB a request); copied, ~100 bytes.
    const gc = vm.runInNewContext('gc') as () => void;
    const heapUsed = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
    const t = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
    const doc = Array.from({ length: 2000 }, (_, i) => `Paragraph ${i} of the shared document, ${'word '.repeat(8)}`).join('\n') + '\n';
    await t.encode(`${doc}A first question, so that the document is known.\n`);
    const before = heapUsed();
    const prompts = 150;
    for (let p = 0; p < prompts; p++) await t.encode(`${doc}Question ${String(p).padStart(6, '0')}: what does paragraph ${p} say?\n`);
    const perPrompt = (heapUsed() - before) / prompts;
    expect(t.memoStats().entries).toBeGreaterThan(prompts);
    expect(perPrompt).toBeLessThan(doc.length / 20);
  });

  test('memoized piecewise encoding equals encoding the whole text, for texts full of line breaks and whitespace', async () => {
    for (let seed = 1; seed <= 60; seed++) {
      const t = text(seed, 200 + seed * 37);
      expect({ seed, ids: [...(await tok.encode(t))] }).toEqual({ seed, ids: [...(await tok.encodeWhole(t))] });
    }
  });

  test('special tokens embedded in text are cut out exactly', async () => {
    const t = `${text(7, 300)}<|im_start|>user\n${text(8, 300)}<|im_end|>\n<|im_start|>assistant\n`;
    expect([...(await tok.encode(t))]).toEqual([...(await tok.encodeWhole(t))]);
  });

  // tokenizers' AddedVocabulary (added_vocabulary.rs, `AddedToken::get_pattern`): a token with `lstrip` matches with
  // the whitespace before it, line breaks included (RoBERTa's and ModernBERT's <mask>), so no piece may end there.
  test('a token with lstrip takes the line breaks before it: no cut between them', async () => {
    const files = resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' });
    const json = JSON.parse(fs.readFileSync(files.tokenizerJson, 'utf8')) as { added_tokens: { content: string; lstrip: boolean }[] };
    json.added_tokens.find((t) => t.content === '<|im_start|>')!.lstrip = true;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-lstrip-'));
    try {
      fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
      const t = ModelTokenizer.load({ ...files, tokenizerJson: path.join(dir, 'tokenizer.json') });
      for (const prompt of ['Hello\n\n<|im_start|>user', `${text(9, 200)}\n<|im_start|>a\n<|im_end|>\n\n<|im_start|>b`]) {
        expect([...(await t.encode(prompt, true))]).toEqual([...(await t.encodeWhole(prompt, true))]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a second request sharing paragraphs reuses them (same ids, whatever was cached)', async () => {
    const doc = `${text(11, 4000)}\nEnd of document.\n`;
    const a = await tok.encode(`${doc}Question one?`);
    const b = await tok.encode(`${doc}Question two?`);
    expect([...b]).toEqual([...(await tok.encodeWhole(`${doc}Question two?`))]);
    expect(a.length).toBeGreaterThan(100);
  });

  test('chat bodies: rendered with the model\'s template, tokenized as an independent implementation does; system prompt, turns, tools, kwargs', async () => {
    const files = resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' });
    const js = new JsTokenizer(JSON.parse(fs.readFileSync(files.tokenizerJson, 'utf8')), JSON.parse(fs.readFileSync(files.tokenizerConfigJson, 'utf8')));
    const tools = [{ type: 'function', function: { name: 'lookup', description: 'Look a word up', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }];
    const cases = [
      { messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'hi' }] },
      { messages: [{ role: 'user', content: [{ type: 'text', text: 'part one' }, { type: 'text', text: 'part two' }] }], chatTemplateKwargs: { enable_thinking: false } },
      { messages: [{ role: 'user', content: 'weather?' }], tools },
      { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: text(3, 2000) }] },
    ];
    for (const c of cases) {
      const ours = await tok.promptTokens({ kind: 'chat', messages: c.messages, addGenerationPrompt: true, continueFinalMessage: false, ...(c.tools ? { tools: c.tools } : {}), ...(c.chatTemplateKwargs ? { chatTemplateKwargs: c.chatTemplateKwargs } : {}) });
      // vLLM's "string" content format joins text parts with a line break.
      const messages = c.messages.map((m) => ({ ...m, content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('\n') }));
      const rendered = tok.renderChat(messages, { addGenerationPrompt: true, ...(c.tools ? { tools: c.tools } : {}), ...(c.chatTemplateKwargs ? { chatTemplateKwargs: c.chatTemplateKwargs } : {}) });
      expect(ours!.exact).toBe(true);
      expect([...ours!.ids]).toEqual(js.encode(rendered, { add_special_tokens: false }).ids);
    }
    // The template context transformers gives Qwen3 (vLLM's default add_generation_prompt, thinking on).
    expect(tok.renderChat([{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }])).toBe(
      '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n');
  });

  // serving_chat.py @ v0.10.0: `request.chat_template or self.chat_template`, parsed from the body by @kvroute/protocol.
  // A client's template is a program the EPP would run on its routing thread: such chats are routed unkeyed.
  test('a template the client sends (its chat_template, or one in chat_template_kwargs) is parsed but not rendered for keys; null in the kwargs brings the model\'s back', async () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'Hello world' }], chat_template: '{{ messages[0].content }}' };
    const parsed = parseRequestBody(Buffer.from(JSON.stringify(body)));
    expect(parsed.input).toMatchObject({ kind: 'chat', chatTemplate: '{{ messages[0].content }}' });
    expect(await tok.promptTokens(parsed.input)).toBeUndefined();
    // renderChat itself renders it, as vLLM would.
    expect(tok.renderChat([{ role: 'user', content: 'Hello world' }], { chatTemplate: '{{ messages[0].content }}' })).toBe('Hello world');
    // A loop of a million steps (seconds on @huggingface/jinja) is never run for a key.
    const loop = parseRequestBody(Buffer.from(JSON.stringify({ ...body, chat_template: undefined, chat_template_kwargs: { chat_template: '{% for i in range(1000000) %}{% endfor %}' } })));
    expect(await tok.promptTokens(loop.input)).toBeUndefined();
    // The kwarg wins over the field: null restores the model's template, which is keyed.
    const restored = parseRequestBody(Buffer.from(JSON.stringify({ ...body, chat_template_kwargs: { chat_template: null } })));
    expect([...(await tok.promptTokens(restored.input))!.ids]).toEqual([...(await tok.encodeWhole(tok.renderChat([{ role: 'user', content: 'Hello world' }]), false))]);
    // An empty one is absent (`or`): the model's template.
    const empty = parseRequestBody(Buffer.from(JSON.stringify({ ...body, chat_template: '' })));
    expect(empty.input).not.toHaveProperty('chatTemplate');
  });

  test('the template sees transformers\' special_tokens_map: only the tokens the config sets, additional_special_tokens included (tokenization_utils_base.py @ v4.53 `if attr_value:`)', () => {
    // Reference (tok-audit F8): transformers renders 'hi<|im_start|>' with Qwen3's tokenizer_config, whose bos_token is null.
    const template = "{% if bos_token is defined %}[bos defined:{{ bos_token }}]{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}"
      + "{{ additional_special_tokens[0] if additional_special_tokens is defined else '[no additional]' }}{{ eos_token }}";
    expect(tok.renderChat([{ role: 'user', content: 'hi' }], { chatTemplate: template })).toBe('hi<|im_start|><|im_end|>');
  });

  test('completions encode with special tokens (Qwen3 adds none); token-id prompts pass through; images make it inexact', async () => {
    expect([...(await tok.promptTokens({ kind: 'text', text: 'Hello world' }))!.ids]).toEqual([...(await tok.encodeWhole('Hello world', false))]);
    expect((await tok.promptTokens({ kind: 'tokens', tokens: [5, 6, 7] }))!.ids).toEqual(Uint32Array.of(5, 6, 7));
    expect(await tok.promptTokens({ kind: 'none' })).toBeUndefined();
    const withImage = await tok.promptTokens({ kind: 'chat', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'what?' }] }], addGenerationPrompt: true, continueFinalMessage: false });
    expect(withImage!.exact).toBe(false);
  });

  test('a chat with an image is cut where the first message carrying media starts: two images, or none, share only the conversation before it', async () => {
    const system = { role: 'system', content: `You describe pictures. ${'Be precise. '.repeat(30)}` };
    const withPicture = (url: string) => ({
      kind: 'chat' as const, addGenerationPrompt: true, continueFinalMessage: false,
      messages: [system, { role: 'user', content: [{ type: 'text', text: 'What is in this picture?' }, { type: 'image_url', image_url: { url } }] }],
    });
    const cat = await tok.promptTokens(withPicture('cat.png'));
    const dog = await tok.promptTokens(withPicture('dog.png'));
    const textOnly = await tok.promptTokens({ kind: 'chat', addGenerationPrompt: true, continueFinalMessage: false, messages: [system, { role: 'user', content: 'What is in this picture?' }] });
    expect(cat!.exact).toBe(false);
    // Exactly the rendering of the conversation up to the user turn's content (its role header included).
    const before = tok.renderChat([system, { role: 'user', content: '' }]);
    const prefix = before.slice(0, before.lastIndexOf('<|im_end|>'));
    expect([...cat!.ids]).toEqual([...(await tok.encodeWhole(prefix, false))]);
    expect([...dog!.ids]).toEqual([...cat!.ids]);
    expect(textOnly!.exact).toBe(true);
    expect(textOnly!.ids.length).toBeGreaterThan(cat!.ids.length);
    expect([...textOnly!.ids.slice(0, cat!.ids.length)]).toEqual([...cat!.ids]);
    // Refusal and thinking parts are text to vLLM (chat_utils.py _parse_chat_message_content_part @ v0.10.0): no cut.
    const refused = await tok.promptTokens({
      kind: 'chat', addGenerationPrompt: true, continueFinalMessage: false,
      messages: [system, { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot.' }, { type: 'thinking', thinking: 'Hmm.' }] }, { role: 'user', content: 'Why?' }],
    });
    expect(refused!.exact).toBe(true);
    const asText = await tok.promptTokens({
      kind: 'chat', addGenerationPrompt: true, continueFinalMessage: false,
      messages: [system, { role: 'assistant', content: 'I cannot.\nHmm.' }, { role: 'user', content: 'Why?' }],
    });
    expect([...refused!.ids]).toEqual([...asText!.ids]);
  });

  // vLLM 0.10.0 serving_engine.py _preprocess_chat: tools and documents go to the template, then chat_template_kwargs
  // update the same arguments (a kwarg named like one wins); transformers renders them all into the template's context.
  test('documents reach the template (RAG templates render them); chat_template_kwargs override the request\'s own fields', async () => {
    const files = resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-rag-tok-'));
    try {
      const config = JSON.parse(fs.readFileSync(files.tokenizerConfigJson, 'utf8')) as Record<string, unknown>;
      config.chat_template = '{% for d in documents or [] %}[{{ d.title }}: {{ d.text }}]{% endfor %}'
        + '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}';
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
      fs.copyFileSync(files.tokenizerJson, path.join(dir, 'tokenizer.json'));
      const rag = ModelTokenizer.load({ tokenizerJson: path.join(dir, 'tokenizer.json'), tokenizerConfigJson: path.join(dir, 'tokenizer_config.json'), source: 'path' });
      const messages = [{ role: 'user', content: 'Summarize.' }];
      const documents = [{ title: 'Manual', text: 'Press the red button.' }];
      expect(rag.renderChat(messages, { documents })).toBe('[Manual: Press the red button.]<user>Summarize.<assistant>');
      expect(rag.renderChat(messages, { documents, chatTemplateKwargs: { add_generation_prompt: false } })).toBe('[Manual: Press the red button.]<user>Summarize.');
      const ids = await rag.promptTokens({ kind: 'chat', messages, documents, addGenerationPrompt: true, continueFinalMessage: false });
      expect([...ids!.ids]).toEqual([...(await rag.encodeWhole('[Manual: Press the red button.]<user>Summarize.<assistant>', false))]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('continue_final_message leaves the last turn open, as transformers does', () => {
    const open = tok.renderChat([{ role: 'user', content: 'Write' }, { role: 'assistant', content: 'Once upon' }], { addGenerationPrompt: false, continueFinalMessage: true });
    expect(open.endsWith('Once upon')).toBe(true);
    const closed = tok.renderChat([{ role: 'user', content: 'Write' }, { role: 'assistant', content: 'Once upon' }], { addGenerationPrompt: false });
    expect(closed.endsWith('Once upon')).toBe(false);
  });

  // vLLM 0.10.0 serving_engine.py:873-880 builds `dict(chat_template=…, …)` then `.update(chat_template_kwargs)`;
  // chat_utils.py:398 (resolve_hf_chat_template, "1st priority") renders with a given template.
  test('a chat_template in chat_template_kwargs replaces the model\'s template (vLLM 0.10.0 _preprocess_chat + resolve_hf_chat_template); so does the request\'s own', async () => {
    const messages = [{ role: 'user', content: 'Hello there' }];
    const custom = '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}';
    expect(tok.renderChat(messages, { chatTemplateKwargs: { chat_template: custom } })).toBe('[user] Hello there\n[assistant]');
    expect(tok.renderChat(messages, { chatTemplate: custom })).toBe('[user] Hello there\n[assistant]');
    // A kwarg wins over the request's field; a null kwarg restores the model's own.
    expect(tok.renderChat(messages, { chatTemplate: 'request', chatTemplateKwargs: { chat_template: custom } })).toBe('[user] Hello there\n[assistant]');
    expect(tok.renderChat(messages, { chatTemplate: custom, chatTemplateKwargs: { chat_template: null } })).toBe('<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n');
  });

  // transformers v4.53 apply_chat_template binds these as parameters; render_jinja_template passes only **kwargs on.
  test('transformers\' own parameters among chat_template_kwargs are no template variables; continue_final_message as a kwarg cuts the turn (transformers v4.53 apply_chat_template, render_jinja_template)', async () => {
    const probe = '{{ tokenize is defined }}{{ continue_final_message is defined }}{{ return_dict is defined }}{{ padding is defined }}{{ chat_template is defined }}{{ trust_remote_code is defined }}|{{ enable_thinking }}';
    const messages = [{ role: 'user', content: 'hi' }];
    const out = tok.renderChat(messages, { chatTemplateKwargs: { chat_template: probe, tokenize: true, continue_final_message: false, return_dict: false, padding: false, trust_remote_code: true, enable_thinking: 'no' } });
    expect(out).toBe('FalseFalseFalseFalseFalseFalse|no'); // jinja2 prints Python's False
    // continue_final_message in the kwargs, with add_generation_prompt false: the final turn is left open (Qwen3 gives
    // the turn after the last query an empty think block).
    const story = [{ role: 'user', content: 'Write' }, { role: 'assistant', content: 'Once upon' }];
    const open = await tok.promptTokens({ kind: 'chat', messages: story, addGenerationPrompt: true, continueFinalMessage: false, chatTemplateKwargs: { continue_final_message: true, add_generation_prompt: false } });
    expect([...open!.ids]).toEqual([...(await tok.encodeWhole('<|im_start|>user\nWrite<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nOnce upon', false))]);
    // With the request's add_generation_prompt left at true, transformers refuses (vLLM answers 400): nothing is keyed,
    // the chat fails as an unrenderable one does.
    await expect(tok.promptTokens({ kind: 'chat', messages: story, addGenerationPrompt: true, continueFinalMessage: false, chatTemplateKwargs: { continue_final_message: true } }))
      .rejects.toThrow(/^continue_final_message and add_generation_prompt are not compatible/);
    // A template that drops the final message's text: transformers refuses rather than leaving the rendering whole.
    expect(() => tok.renderChat(story, { addGenerationPrompt: false, continueFinalMessage: true, chatTemplate: '{% for m in messages %}<{{ m.role }}>{% endfor %}' }))
      .toThrow(/^continue_final_message is set but the final message does not appear in the chat/);
  });

  test('a template that never renders the media message\'s content leaves no known prefix: nothing is keyed, rather than the whole text', async () => {
    const system = { role: 'system', content: `You describe pictures. ${'Be precise. '.repeat(30)}` };
    // The model's own template drops the users' content (a client's template is not rendered for keys at all).
    const files = resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-drop-tok-'));
    const config = JSON.parse(fs.readFileSync(files.tokenizerConfigJson, 'utf8')) as Record<string, unknown>;
    config.chat_template = '{% for m in messages %}<{{ m.role }}>{% if m.role != "user" %}{{ m.content }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}';
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    fs.copyFileSync(files.tokenizerJson, path.join(dir, 'tokenizer.json'));
    const dropping = ModelTokenizer.load({ tokenizerJson: path.join(dir, 'tokenizer.json'), tokenizerConfigJson: path.join(dir, 'tokenizer_config.json'), source: 'path' });
    const chat = (content: unknown) => ({
      kind: 'chat' as const, addGenerationPrompt: true, continueFinalMessage: false,
      messages: [system, { role: 'user', content }, { role: 'assistant', content: 'A cat.' }, { role: 'user', content: 'Sure?' }],
    });
    const withImage = await dropping.promptTokens(chat([{ type: 'image_url', image_url: { url: 'cat.png' } }, { type: 'text', text: 'What is it?' }]));
    expect(withImage!.exact).toBe(false);
    expect(withImage!.ids.length).toBe(0);
    // The same chat without the image renders (and keys) the whole text: the rendering does not show where it would end.
    const textOnly = await dropping.promptTokens(chat('What is it?'));
    expect(textOnly!.exact).toBe(true);
    expect(textOnly!.ids.length).toBeGreaterThan(50);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

// Reference prompts from real jinja2 and pydantic over Qwen3's template (tokenizer/test/vectors/tool-chats.py): the
// conversation vLLM 0.10.0 renders (chat_utils.py _parse_chat_message_content, _postprocess_messages) with its tool
// dicts (serving_chat.py: tool.model_dump()), in transformers 4.53's template environment.
describe('chats with tools and tool calls, keyed as vLLM renders them', () => {
  interface ToolChat { name: string; body: string; tools: unknown[]; messages: ChatMessageInput[]; text: string; exact: boolean; template?: string }
  const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, 'vectors', 'tool-chats.json'), 'utf8')) as { cases: ToolChat[] };
  /** The chat as the EPP reads it from the request body (a tool schema's `0.0` stays a float: PythonFloat). */
  const input = (c: ToolChat): PromptInput => parseRequestBody(Buffer.from(c.body, 'utf8')).input;
  /** Arguments kvroute does not claim to print as Python does in these (an integer past 2**53, a boolean through `| string`). */
  const inexact = (c: ToolChat) => !c.exact;
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
  /** Qwen3's tokenizer with `template` as its chat_template.jinja. */
  const withTemplate = (template: string): ModelTokenizer => {
    const bundled = resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-tok-'));
    dirs.push(dir);
    fs.copyFileSync(bundled.tokenizerJson, path.join(dir, 'tokenizer.json'));
    fs.copyFileSync(bundled.tokenizerConfigJson, path.join(dir, 'tokenizer_config.json'));
    fs.writeFileSync(path.join(dir, 'chat_template.jinja'), template);
    return ModelTokenizer.load(resolveTokenizerFiles({ model: 'acme/m', path: dir }));
  };

  test.each(vectors.cases.filter((c) => !inexact(c)).map((c) => [c.name, c] as const))('%s: the ids of the prompt jinja2 renders', async (_name, c) => {
    const ours = await (c.template ? withTemplate(c.template) : tok).promptTokens(input(c));
    expect(ours!.exact).toBe(true);
    expect([...ours!.ids]).toEqual([...(await tok.encodeWhole(c.text, false))]);
  });

  test.each(vectors.cases.filter(inexact).map((c) => [c.name, c] as const))('%s: inexact, the ids a prefix of vLLM\'s up to the line of that call', async (_name, c) => {
    const ours = await (c.template ? withTemplate(c.template) : tok).promptTokens(input(c));
    expect(ours!.exact).toBe(false);
    const full = [...(await tok.encodeWhole(c.text, false))];
    expect(ours!.ids.length).toBeGreaterThan(3);
    expect(full.slice(0, ours!.ids.length)).toEqual([...ours!.ids]);
  });

  test('Qwen3\'s inexact case is cut at the start of its call\'s line, after the reasoning and content before it', async () => {
    const c = vectors.cases.find((x) => x.name.startsWith('reasoning in the content') && !x.exact)!;
    const ours = await tok.promptTokens(input(c));
    // `: ` and `{` would be one token: the cut is where the line `{"name": "search", "arguments": …` starts.
    const start = c.text.lastIndexOf('<tool_call>\n{"name": "search"') + '<tool_call>\n'.length;
    expect([...ours!.ids]).toEqual([...(await tok.encodeWhole(c.text.slice(0, start), false))]);
  });

  test('a chat vLLM refuses for its tool calls throws ChatTemplateRefusal (the precise scorer keys nothing); a tool pydantic refuses keys nothing', async () => {
    const base = vectors.cases[0]!;
    const chat = (messages: unknown[], tools: unknown[]): PromptInput => parseRequestBody(Buffer.from(JSON.stringify({ messages, tools }))).input;
    const badArguments = [...base.messages.slice(0, 2), { role: 'assistant', content: '', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{"a": }' } }] }];
    await expect(tok.promptTokens(chat(badArguments, base.tools))).rejects.toThrow(ChatTemplateRefusal);
    await expect(tok.promptTokens(chat(base.messages, [{ function: { description: 'no name' } }]))).resolves.toBeUndefined();
  });
});

describe('finding the tokenizer files', () => {
  test('an explicit folder first, then the Hugging Face cache (refs/main names the snapshot), then the bundled Qwen3', () => {
    const bundled = resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' });
    expect(bundled.source).toBe('bundled');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-tok-'));
    try {
      const repo = path.join(dir, 'hub', 'models--acme--m1');
      const snapshot = path.join(repo, 'snapshots', 'abc123');
      fs.mkdirSync(snapshot, { recursive: true });
      fs.mkdirSync(path.join(repo, 'refs'));
      fs.writeFileSync(path.join(repo, 'refs', 'main'), 'abc123\n');
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(f === 'tokenizer.json' ? bundled.tokenizerJson : bundled.tokenizerConfigJson, path.join(snapshot, f));
      expect(resolveTokenizerFiles({ model: 'acme/m1', hubCache: path.join(dir, 'hub') })).toMatchObject({ source: 'hf-cache', tokenizerJson: path.join(snapshot, 'tokenizer.json') });
      expect(resolveTokenizerFiles({ model: 'acme/m1', path: snapshot, hubCache: '/nonexistent' }).source).toBe('path');
      expect(() => resolveTokenizerFiles({ model: 'acme/m2', path: dir, hubCache: path.join(dir, 'hub') })).toThrow(TokenizerNotFoundError);
      expect(() => resolveTokenizerFiles({ model: 'acme/m2', path: dir, hubCache: path.join(dir, 'hub') })).toThrow(/tried .*no tokenizer\.json.*Hugging Face cache.*bundled copy/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  test('hasBundledTokenizer (what synth checks) is what resolveTokenizerFiles finds with no folder and no cache', () => {
    for (const model of ['Qwen/Qwen3-0.6B', 'Qwen/Qwen3-8B', 'Qwen/Qwen3-1.7B-Base', 'Qwen/Qwen2.5-7B-Instruct', 'Qwen/Qwen3-8B-FP8', 'meta-llama/Llama-3.1-8B-Instruct', 'qwen/qwen3-8b']) {
      let found: boolean;
      try {
        found = resolveTokenizerFiles({ model, hubCache: '/nonexistent' }).source === 'bundled';
      } catch (e) {
        if (!(e instanceof TokenizerNotFoundError)) throw e;
        found = false;
      }
      expect({ model, bundled: hasBundledTokenizer(model) }).toEqual({ model, bundled: found });
    }
    expect(hasBundledTokenizer('Qwen/Qwen3-8B')).toBe(true);
    expect(hasBundledTokenizer('meta-llama/Llama-3.1-8B-Instruct')).toBe(false);
  });
  // transformers' PreTrainedTokenizerBase._from_pretrained (tokenization_utils_base.py; CHAT_TEMPLATE_FILE and
  // CHAT_TEMPLATE_DIR in utils/hub.py): chat_template.jinja and additional_chat_templates/<name>.jinja win over
  // tokenizer_config.json's template, which newer checkpoints no longer carry.
  test('chat_template.jinja replaces tokenizer_config.json\'s template; additional_chat_templates/<name>.jinja are named templates', async () => {
    const bundled = resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-tok-'));
    try {
      fs.copyFileSync(bundled.tokenizerJson, path.join(dir, 'tokenizer.json'));
      const config = JSON.parse(fs.readFileSync(bundled.tokenizerConfigJson, 'utf8')) as Record<string, unknown>;
      delete config.chat_template; // as transformers >= 4.47 saves it: the template in its own file
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
      const input: PromptInput = { kind: 'chat', messages: [{ role: 'user', content: 'Hello world' }], addGenerationPrompt: true, continueFinalMessage: false };
      const tools = [{ type: 'function', function: { name: 'f' } }];
      const ids = async (files: ReturnType<typeof resolveTokenizerFiles>, withTools = false) => {
        const t = ModelTokenizer.load(files);
        return [...(await t.promptTokens(withTools ? { ...input, tools } : input))!.ids];
      };
      const encoded = async (text: string) => [...(await tok.encodeWhole(text, false))];

      fs.writeFileSync(path.join(dir, 'chat_template.jinja'), '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}');
      const plain = resolveTokenizerFiles({ model: 'acme/m', path: dir });
      expect(plain.chatTemplateJinja).toBe(path.join(dir, 'chat_template.jinja'));
      expect(await ids(plain)).toEqual(await encoded('<user>Hello world'));

      fs.mkdirSync(path.join(dir, 'additional_chat_templates'));
      fs.writeFileSync(path.join(dir, 'additional_chat_templates', 'tool_use.jinja'), '{{ tools | length }} tools: {{ messages[0].content }}');
      const named = resolveTokenizerFiles({ model: 'acme/m', path: dir });
      expect([...named.additionalChatTemplates!.keys()]).toEqual(['tool_use']);
      expect(await ids(named)).toEqual(await encoded('<user>Hello world'));
      expect(await ids(named, true)).toEqual(await encoded('1 tools: Hello world'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Other models' own chat templates, rendered by real jinja2 in transformers 4.53's environment with vLLM 0.10.0's
// conversation and tools (tokenizer/test/vectors/model-templates.py), keyed here on Qwen3's tokenizer.json.
describe('models\' templates evaluated as jinja2 evaluates them', () => {
  const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, 'vectors', 'model-templates.json'), 'utf8')) as {
    cases: { name: string; template: string; file: boolean; body: string; text: string }[];
  };
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

  test.each(vectors.cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-model-template-'));
    dirs.push(dir);
    const files = { ...resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }), tokenizerConfigJson: path.join(dir, 'tokenizer_config.json') };
    fs.writeFileSync(files.tokenizerConfigJson, JSON.stringify({ bos_token: '<s>', eos_token: '</s>', ...(c.file ? {} : { chat_template: c.template }) }));
    if (c.file) fs.writeFileSync(path.join(dir, 'chat_template.jinja'), c.template);
    const t = ModelTokenizer.load(c.file ? { ...files, chatTemplateJinja: path.join(dir, 'chat_template.jinja') } : files);
    const keyed = await t.promptTokens(parseRequestBody(Buffer.from(c.body)).input);
    expect(keyed?.exact).toBe(true);
    expect([...keyed!.ids]).toEqual([...(await t.encodeWhole(c.text))]);
  });
});

/** Llama 3's pre-tokenizer (tokenizer.json of meta-llama/Meta-Llama-3-8B-Instruct), one kvroute encodes in pieces. */
const LLAMA3_PRE_TOKENIZER = { type: 'Sequence', pretokenizers: [
  { type: 'Split', pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false },
  { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
] };

describe('tokenizers whose pre-tokens do not end after a run of line breaks encode texts whole, as vLLM does', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
  /** The testkit's byte-level BPE with `preTokenizer` and one merge more. */
  const load = (preTokenizer: unknown, tokens: readonly string[], merges: readonly string[]): ModelTokenizer => {
    const json = templateTokenizerJson(['A']) as { pre_tokenizer: unknown; model: { vocab: Record<string, number>; merges: string[] } };
    json.pre_tokenizer = preTokenizer;
    for (const t of tokens) json.model.vocab[t] = Object.keys(json.model.vocab).length;
    json.model.merges = [...merges];
    expect(piecewiseEncodingSafe(json as never)).toBe(false);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-split-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), '{}');
    return ModelTokenizer.load({ tokenizerJson: path.join(dir, 'tokenizer.json'), tokenizerConfigJson: path.join(dir, 'tokenizer_config.json'), source: 'path' } as never);
  };
  const promptIds = async (t: ModelTokenizer, prompt: string) => [...(await t.promptTokens(parseRequestBody(Buffer.from(JSON.stringify({ prompt }))).input))!.ids];

  // tokenizers' ByteLevel with use_regex (pre_tokenizers/byte_level.rs, GPT-2's `\s+(?!\S)|\s+`), as GPT-2,
  // GPT-NeoX/Pythia and StarCoder use it: in "a\n\nb" the lookahead gives the last line break back, so the run is two
  // pre-tokens "\n", "\n" and "ĊĊ" never merges there; a piece cut after the run ends with "\n\n" and merges it.
  test('GPT-2\'s byte-level pattern: a paragraph break before text is two "Ċ" tokens', async () => {
    const t = load({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, ['ĊĊ'], ['Ċ Ċ']);
    const prompt = 'Hello.\n\nWorld';
    expect(await promptIds(t, prompt)).toEqual([...(await t.encodeWhole(prompt, true))]);
    expect(await t.encodeWhole('\n\n')).toHaveLength(1); // at the end of a piece, the run is one pre-token and merges
  });

  // o200k's pattern (tiktoken o200k_base, gpt-oss's tokenizer.json Split; Tekken's alike): ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
  // lets a punctuation run take the line breaks and the slashes after them: ":\n/usr" is ":\n/" and "usr".
  test('o200k\'s pattern (gpt-oss): ":\\n/usr" keeps its "/" with the line break before it', async () => {
    const O200K = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const t = load({ type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: O200K }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ] }, ['us', 'usr', '/usr'], ['u s', 'us r', '/ usr']);
    const prompt = 'Path:\n/usr';
    expect(await promptIds(t, prompt)).toEqual([...(await t.encodeWhole(prompt, true))]);
  });
});

describe('tokenizers that mark the start of each input encode texts whole (SentencePiece-style ▁, add_prefix_space)', () => {
  // vLLM encodes the whole prompt in one call; kvroute's pieces (cut after line breaks, around special tokens) would each
  // get the start mark. Minimal tokenizer.json files of each kind, read by the real tokenizers library.
  const chars = [...new Set('Hello World\nnext line\n\nlast<s>'.replace('<s>', ''))];
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
  const build = (normalizer: unknown, preTokenizer: unknown, byteLevel = false, bos = false): ModelTokenizer => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-sp-'));
    dirs.push(dir);
    const symbols = byteLevel ? ['Ġ', 'Ċ', ...chars.filter((c) => c !== ' ' && c !== '\n')] : ['▁', ...chars];
    const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1 };
    for (const c of symbols) vocab[c] ??= Object.keys(vocab).length;
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
      version: '1.0', truncation: null, padding: null,
      added_tokens: [{ id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
      normalizer, pre_tokenizer: preTokenizer, decoder: null,
      // A BOS in front of every input encoded with special tokens, as Llama's TemplateProcessing adds it.
      post_processor: bos ? {
        type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
      } : null,
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: false, vocab, merges: [] },
    }));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', chat_template: '{% for m in messages %}{{ m.content }}\n{% endfor %}' }));
    return ModelTokenizer.load({ tokenizerJson: path.join(dir, 'tokenizer.json'), tokenizerConfigJson: path.join(dir, 'tokenizer_config.json'), source: 'path' } as never);
  };
  const kinds: [string, ModelTokenizer][] = [
    ['Metaspace, prepend_scheme "first" (Mistral v0.3)', build(null, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false })],
    ['Metaspace, prepend_scheme "always"', build(null, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true })],
    ['a Prepend normalizer (Llama 2, Phi-3)', build({ type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] }, null)],
    ['ByteLevel with add_prefix_space', build(null, { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }, true)],
  ];
  const texts = ['Hello World\nnext line\n\nlast', 'Hello<s>World\nlast', '<s>Hello\nWorld'];

  test.each(kinds)('%s: the ids of the whole text, as vLLM encodes it, where pieces encoded apart would differ', async (_kind, tokenizer) => {
    for (const text of texts) {
      for (const special of [false, true]) expect([...await tokenizer.encode(text, special)]).toEqual([...await tokenizer.encodeWhole(text, special)]);
    }
    // The pieces the memoized path cuts this text into, each encoded on its own: every piece gains the start mark.
    const pieces = ['Hello World\n', 'next line\n\n', 'last'];
    const apart = (await Promise.all(pieces.map((p) => tokenizer.encodeWhole(p, false)))).flatMap((ids) => [...ids]);
    expect(apart).not.toEqual([...await tokenizer.encodeWhole(pieces.join(''), false)]);
  });

  // vLLM 0.10.0: CompletionRequest.add_special_tokens defaults to true, ChatCompletionRequest's to false; both are
  // passed to the tokenizer (serving_completion.py, serving_chat.py _preprocess_chat).
  test.each([
    ['Metaspace "first", encoded whole', build(null, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }, false, true)],
    ['Llama 3\'s Split and ByteLevel, encoded in pieces', build(null, LLAMA3_PRE_TOKENIZER, true, true)],
  ])('a request\'s add_special_tokens decides the BOS (%s)', async (_kind, tokenizer) => {
    const ids = async (body: Record<string, unknown>) => [...(await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(body))).input))!.ids];
    const whole = async (text: string, special: boolean) => [...await tokenizer.encodeWhole(text, special)];
    const prompt = 'Hello World\nnext line';
    expect(await ids({ prompt })).toEqual(await whole(prompt, true));
    expect((await ids({ prompt }))[0]).toBe(1);
    expect(await ids({ prompt, add_special_tokens: false })).toEqual(await whole(prompt, false));
    const chat = { messages: [{ role: 'user', content: 'Hello World' }] };
    expect(await ids(chat)).toEqual(await whole('Hello World\n', false));
    expect(await ids({ ...chat, add_special_tokens: true })).toEqual(await whole('Hello World\n', true));
  });

  test('which tokenizers are encoded in pieces: Qwen3\'s byte-level BPE is, the start-marking kinds are not', () => {
    const qwen = JSON.parse(fs.readFileSync(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }).tokenizerJson, 'utf8'));
    expect(piecewiseEncodingSafe(qwen)).toBe(true);
    expect(piecewiseEncodingSafe({ pre_tokenizer: LLAMA3_PRE_TOKENIZER })).toBe(true);
    // Metaspace splits at spaces only: "a\nb" is one pre-token, whose merges may span a cut after the line break.
    expect(piecewiseEncodingSafe({ pre_tokenizer: { type: 'Metaspace', prepend_scheme: 'never' } })).toBe(false);
    expect(piecewiseEncodingSafe({ pre_tokenizer: { type: 'Metaspace', add_prefix_space: true } })).toBe(false);
    expect(piecewiseEncodingSafe({ pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Metaspace', prepend_scheme: 'first' }] } })).toBe(false);
    expect(piecewiseEncodingSafe({ normalizer: { type: 'Prepend' } })).toBe(false);
    expect(piecewiseEncodingSafe({ pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true } })).toBe(false);
  });
});

describe('the post-processor\'s added tokens (a BOS in front, an EOS behind)', () => {
  // Byte-level tokenizers with Llama-3-style TemplateProcessing (BOS), and one that also closes with an EOS (as
  // BERT-style processors close with [SEP]); both are encoded in pieces. The reference is the Rust tokenizer itself.
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
  const build = (single: readonly ('<s>' | '</s>' | 'A')[]): { tokenizer: ModelTokenizer; json: string } => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-post-'));
    dirs.push(dir);
    writeTemplateTokenizer(dir, single, { bos_token: '<s>', eos_token: '</s>', chat_template: '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}' });
    const json = path.join(dir, 'tokenizer.json');
    return { tokenizer: ModelTokenizer.load({ tokenizerJson: json, tokenizerConfigJson: path.join(dir, 'tokenizer_config.json'), source: 'path' } as never), json };
  };
  const bos = build(['<s>', 'A']);
  const bosEos = build(['<s>', 'A', '</s>']);

  test('a text encoded with special tokens in pieces gets them where post_process puts them: the BOS in front, the EOS behind', async () => {
    expect(await bos.tokenizer.addedTokens()).toEqual({ front: Uint32Array.of(1), back: new Uint32Array(0) });
    expect(await bosEos.tokenizer.addedTokens()).toEqual({ front: Uint32Array.of(1), back: Uint32Array.of(2) });
    expect(await tok.addedTokens()).toEqual({ front: new Uint32Array(0), back: new Uint32Array(0) });
    for (const text of ['Hello\nWorld\n\nlast', 'a<s>b\nc', '']) {
      for (const { tokenizer } of [bos, bosEos]) expect([...await tokenizer.encode(text, true)]).toEqual([...await tokenizer.encodeWhole(text, true)]);
    }
    expect([...await bosEos.tokenizer.encode('Hi\nthere', true)]).toEqual([1, ...await bosEos.tokenizer.encode('Hi\nthere', false), 2]);
  });

  // vLLM 0.10.0 tokenizes a text prompt (and a rendered chat) with `truncation=True, max_length=truncate_prompt_tokens`
  // on a tokenizer loaded with truncation_side "left" (serving_engine.py _normalize_prompt_text_to_input); transformers
  // hands that to the Rust tokenizer (tokenization_utils_fast.py set_truncation_and_padding), whose post_process
  // truncates the text's tokens to max_length minus the post-processor's tokens, then adds them (tokenizers
  // tokenizer/mod.rs, utils/truncation.rs). The reference here is that Rust code, through its Node binding.
  test.each([
    ['BOS', bos],
    ['BOS and EOS', bosEos],
  ])('truncate_prompt_tokens keeps what the Rust tokenizer keeps with left truncation (%s): the BOS and the text\'s last n - 1 tokens', async (_kind, { tokenizer, json }) => {
    const rust = (n: number, special: boolean) => {
      const t = RustTokenizer.fromFile(json);
      t.setTruncation(n, { direction: 'left' });
      return (text: string) => t.encode(text, undefined, { addSpecialTokens: special }).then((e) => e.getIds());
    };
    const ids = async (body: Record<string, unknown>, n: number) =>
      [...(await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify({ ...body, truncate_prompt_tokens: n }))).input, { truncatePromptTokens: n }))!.ids];
    const prompt = 'Hello\nWorld\n\nlast line';
    const chat = { messages: [{ role: 'user', content: 'Hello World' }] };
    const rendered = 'user: Hello World\n';
    // From n = the post-processor's tokens: below that the Rust subtraction underflows (truncation.ts).
    const added = await tokenizer.addedTokens();
    for (let n = added.front.length + added.back.length; n <= prompt.length + 3; n++) {
      expect(await ids({ prompt }, n)).toEqual(await rust(n, true)(prompt));
      expect(await ids({ prompt, add_special_tokens: false }, n)).toEqual(await rust(n, false)(prompt));
      expect(await ids(chat, n)).toEqual(await rust(n, false)(rendered));
      expect(await ids({ ...chat, add_special_tokens: true }, n)).toEqual(await rust(n, true)(rendered));
    }
    // The auditor's case: BOS + the last 3 of "abcdef" (a slice kept "cdef" and lost the BOS).
    if (_kind === 'BOS') expect(await ids({ prompt: 'abcdef' }, 4)).toEqual([1, ...(await tokenizer.encode('def'))]);
    // Token ids are sliced as sent (`prompt_ids[-n:]`), a leading 1 or not.
    expect(await ids({ prompt: [1, 70, 71, 72, 73] }, 3)).toEqual([71, 72, 73]);
  });

  test('truncate_prompt_tokens on Qwen3 (no post-processor tokens) is the plain left slice', async () => {
    const prompt = 'Summarize the following.\n\nThe quick brown fox jumps over the lazy dog.';
    const whole = [...(await tok.promptTokens(parseRequestBody(Buffer.from(JSON.stringify({ prompt }))).input))!.ids];
    for (const n of [1, 5, whole.length - 1, whole.length, whole.length + 4]) {
      const input = parseRequestBody(Buffer.from(JSON.stringify({ prompt, truncate_prompt_tokens: n }))).input;
      expect([...(await tok.promptTokens(input, { truncatePromptTokens: n }))!.ids]).toEqual(whole.slice(Math.max(0, whole.length - n)));
    }
  });
});

// vLLM 0.10.0 appends a content part only `if parse_res:` (_parse_chat_message_content_parts,
// vllm/entrypoints/chat_utils.py), and _parse_chat_message_content_part returns a plain-string part as it is and, in
// the "string" format, a text part's bare text: an empty one is dropped before the "\n" join. In the "openai" format a
// text part becomes {'type': 'text', 'text': ''}, a non-empty dict, and stays; a "" plain-string part is still dropped.
// Expected renders agree with a jinja2 render of vLLM's conversation (tok-audit F10, ref2.json).
describe('empty content parts are dropped as vLLM drops them', () => {
  const ids = async (t: ModelTokenizer, content: unknown) =>
    [...(await t.promptTokens(parseRequestBody(Buffer.from(JSON.stringify({ messages: [{ role: 'user', content }] }))).input))!.ids];

  test.each([
    ['an empty text part first', [{ type: 'text', text: '' }, { type: 'text', text: 'b' }], 'b'],
    ['an empty text part between two', [{ type: 'text', text: 'a' }, { type: 'text', text: '' }, { type: 'text', text: 'b' }], 'a\nb'],
    ['an empty plain-string part', ['a', '', 'b'], 'a\nb'],
    ['an empty refusal part', [{ type: 'refusal', refusal: '' }, { type: 'text', text: 'b' }], 'b'],
    ['only an empty text part', [{ type: 'text', text: '' }], ''],
  ])('"string" format (Qwen3): %s', async (_case, content, joined) => {
    expect(await ids(tok, content)).toEqual([...await tok.encode(`<|im_start|>user\n${joined}<|im_end|>\n<|im_start|>assistant\n`)]);
  });

  test('"openai" format: an empty text part stays (wrapped), an empty plain-string part is dropped', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-openai-format-'));
    try {
      const template = '{% for m in messages %}{% for p in m.content %}{% if p is string %}<{{ p }}>{% else %}[{{ p.text }}]{% endif %}{% endfor %}{% endfor %}';
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: template }));
      const t = ModelTokenizer.load({ tokenizerJson: resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }).tokenizerJson, tokenizerConfigJson: path.join(dir, 'tokenizer_config.json'), source: 'path' } as never);
      expect(t.contentFormat()).toBe('openai');
      expect(await ids(t, [{ type: 'text', text: '' }, { type: 'text', text: 'b' }])).toEqual([...await t.encode('[][b]')]);
      expect(await ids(t, ['a', '', 'b'])).toEqual([...await t.encode('<a><b>')]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
