import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { contentFormatOf } from '../src/content-format';
import { ModelTokenizer, resolveTokenizerFiles } from '../src';

const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, 'vectors', 'content-format.json'), 'utf8')) as {
  jinja2: string;
  cases: { name: string; template: string; format: 'string' | 'openai' }[];
};

// Expected formats from vLLM 0.10.0's own detection (chat_utils.py L238-365) run on real jinja2, restated in
// tokenizer/test/vectors/content-format.py.
describe(`the chat template content format vLLM 0.10.0 detects (_detect_content_format; jinja2 ${vectors.jinja2})`, () => {
  test.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(contentFormatOf(c.template)).toBe(c.format);
  });
});

describe('chats rendered in the detected format', () => {
  const MODEL = 'Qwen/Qwen3-0.6B';
  const files = resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' });
  let dir: string;
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A tokenizer with Qwen3's vocabulary and `template` as its own chat template. */
  function withTemplate(template: string): ModelTokenizer {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-format-tok-'));
    const config = JSON.parse(fs.readFileSync(files.tokenizerConfigJson, 'utf8')) as Record<string, unknown>;
    config.chat_template = template;
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    fs.copyFileSync(files.tokenizerJson, path.join(dir, 'tokenizer.json'));
    return ModelTokenizer.load({ tokenizerJson: path.join(dir, 'tokenizer.json'), tokenizerConfigJson: path.join(dir, 'tokenizer_config.json'), source: 'path' });
  }

  // vllm/entrypoints/chat_utils.py @ v0.10.0 _parse_chat_message_content: in the "openai" format a string content is
  // one text part, text parts are {'type': 'text', 'text': …}, a null content is [].
  test('a template that loops over the parts gets parts: a string content is one text part, a null content none', async () => {
    const tok = withTemplate("{% for m in messages %}<{{ m.role }}>{% if m.content is string %}S:{{ m.content }}{% else %}{% for p in m.content %}[{{ p.type }}:{{ p.text }}]{% endfor %}{% endif %}{% endfor %}");
    expect(tok.contentFormat()).toBe('openai');
    const input = {
      kind: 'chat' as const, addGenerationPrompt: true, continueFinalMessage: false,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'What is' }, { type: 'input_text', text: 'two plus two?' }] },
        { role: 'assistant', content: null },
      ],
    };
    const ids = await tok.promptTokens(input);
    expect([...ids!.ids]).toEqual([...(await tok.encodeWhole('<system>[text:Be brief.]<user>[text:What is][text:two plus two?]<assistant>', false))]);
    // The same chat under a template that reads content as a string: text parts joined by "\n", null as "".
    const plain = withTemplate('{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}');
    expect(plain.contentFormat()).toBe('string');
    expect([...(await plain.promptTokens(input))!.ids]).toEqual([...(await plain.encodeWhole('<system>Be brief.<user>What is\ntwo plus two?<assistant>', false))]);
  });

  test('an image part in the "openai" format: the ids end where the message carrying it starts', async () => {
    const tok = withTemplate("{% for m in messages %}<{{ m.role }}>{% for p in m['content'] %}{% if p.type == 'text' %}{{ p.text }}{% else %}<img>{% endif %}{% endfor %}{% endfor %}");
    const system = `You describe pictures. ${'Be precise. '.repeat(30)}`;
    const withImage = await tok.promptTokens({
      kind: 'chat', addGenerationPrompt: true, continueFinalMessage: false,
      messages: [{ role: 'system', content: system }, { role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'What?' }] }],
    });
    expect(withImage!.exact).toBe(false);
    expect([...withImage!.ids]).toEqual([...(await tok.encodeWhole(`<system>${system}<user>`, false))]);
  });
});
