import { applyChatTemplate, cutAfterFinalMessage, type ChatTemplateContextInput, type CompileChatTemplate } from '../src/openai/chat-template-context';
import { refusalOf } from './support/refusal';

/**
 * A stand-in for Jinja: the "template" names what it renders. `T:<name>` renders `<name>|` then every context variable
 * (sorted) as `key=json;`, so a test sees which template ran and exactly which variables it got.
 */
const compile: CompileChatTemplate = (template) => (context) => {
  const vars = Object.keys(context).sort().map((k) => `${k}=${JSON.stringify(context[k])};`).join('');
  return `${template}|${vars}`;
};

/** A ChatML-ish renderer for the continue_final_message cut. */
const chatml: CompileChatTemplate = () => (context) => {
  let out = '';
  for (const m of context.messages as { role: string; content: string }[]) out += `<s>${m.role}\n${m.content}</s>\n`;
  return context.add_generation_prompt ? `${out}<s>assistant\n` : out;
};

const base: ChatTemplateContextInput = {
  specialTokens: { bos_token: '', eos_token: '<eos>' },
  messages: [{ role: 'user', content: 'hi' }],
  addGenerationPrompt: true,
};

describe('applyChatTemplate: the arguments vLLM 0.10.0 (serving_engine.py _preprocess_chat, chat_utils.py apply_hf_chat_template) and transformers v4.53 apply_chat_template give the template', () => {
  test('a `chat_template` in chat_template_kwargs replaces the template (`_chat_template_kwargs.update(...)` then resolve_hf_chat_template\'s 1st priority, chat_utils.py:398 @ v0.10.0)', () => {
    expect(applyChatTemplate(base, 'OWN', compile).startsWith('OWN|')).toBe(true);
    expect(applyChatTemplate({ ...base, kwargs: { chat_template: 'KW' } }, 'OWN', compile).startsWith('KW|')).toBe(true);
    // The request's own field is used as sent (serving_chat.py:195 @ v0.10.0, no trust flag), a kwarg wins over it,
    // and a null kwarg sends the model's own back (resolve_hf_chat_template: None → the tokenizer's).
    expect(applyChatTemplate({ ...base, chatTemplate: 'REQ' }, 'OWN', compile).startsWith('REQ|')).toBe(true);
    expect(applyChatTemplate({ ...base, chatTemplate: 'REQ', kwargs: { chat_template: 'KW' } }, 'OWN', compile).startsWith('KW|')).toBe(true);
    expect(applyChatTemplate({ ...base, chatTemplate: 'REQ', kwargs: { chat_template: null } }, 'OWN', compile).startsWith('OWN|')).toBe(true);
    // `request.chat_template or self.chat_template`: an empty field is no template.
    expect(applyChatTemplate({ ...base, chatTemplate: '' }, 'OWN', compile).startsWith('OWN|')).toBe(true);
    // Named templates (transformers' get_chat_template): a name picks one, tools pick "tool_use", else "default".
    const named = [{ name: 'default', template: 'DEF' }, { name: 'tool_use', template: 'TOOLS' }, { name: 'rag', template: 'RAG' }];
    expect(applyChatTemplate(base, named, compile).startsWith('DEF|')).toBe(true);
    expect(applyChatTemplate({ ...base, tools: [] }, named, compile).startsWith('TOOLS|')).toBe(true);
    expect(applyChatTemplate({ ...base, kwargs: { chat_template: 'rag' } }, named, compile).startsWith('RAG|')).toBe(true);
    // Not a string: Python hashes it (lru_cache, `in template_dict`) or Jinja refuses to compile it; both wrapped.
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { chat_template: ['x'] } }, 'OWN', compile)).response)
      .toEqual({ status: 400, message: "unhashable type: 'list' unhashable type: 'list'" });
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { chat_template: 3 } }, 'OWN', compile)).message).toBe("Can't compile non template nodes");
    expect(refusalOf(() => applyChatTemplate(base, undefined, compile)).response.message).toMatch(/^As of transformers v4.44, default chat template is no longer allowed.* None$/);
  });

  test('transformers\' own parameters are consumed, not template variables; every other kwarg is one and wins over the special tokens (transformers v4.53 apply_chat_template / render_jinja_template)', () => {
    const out = applyChatTemplate({
      ...base,
      documents: [{ title: 't', text: 'x' }],
      kwargs: {
        enable_thinking: false, eos_token: '<E>', tokenize: true, continue_final_message: false, return_dict: false,
        return_assistant_tokens_mask: false, padding: false, truncation: false, max_length: 9, return_tensors: null,
        tokenizer_kwargs: {}, trust_remote_code: true, chat_template: 'KW',
      },
    }, 'OWN', compile);
    expect(out).toBe('KW|add_generation_prompt=true;bos_token="";documents=[{"title":"t","text":"x"}];enable_thinking=false;eos_token="<E>";messages=[{"role":"user","content":"hi"}];tools=null;');
    // add_generation_prompt, tools and documents reach the template with the kwarg's value.
    expect(applyChatTemplate({ ...base, tools: [{ a: 1 }], kwargs: { add_generation_prompt: false, tools: [{ b: 2 }], documents: null } }, 'OWN', compile))
      .toBe('OWN|add_generation_prompt=false;bos_token="";documents=null;eos_token="<eos>";messages=[{"role":"user","content":"hi"}];tools=[{"b":2}];');
    // A kwarg named __proto__ is a variable like any other.
    expect(applyChatTemplate({ ...base, kwargs: JSON.parse('{"__proto__": 1}') as Record<string, unknown> }, 'OWN', compile)).toContain('__proto__=1;');
  });

  test('what vLLM 0.10.0 refuses, with its answer (serving_chat.py:206-209: 400 `f"{e} {e.__cause__}"`; apply_hf_chat_template wraps with `from e`)', () => {
    // The request's add_generation_prompt defaults to true: continue_final_message as a kwarg alone is refused.
    const both = refusalOf(() => applyChatTemplate({ ...base, kwargs: { continue_final_message: true } }, 'OWN', chatml));
    expect(both.response.status).toBe(400);
    expect(both.message).toMatch(/^continue_final_message and add_generation_prompt are not compatible\./);
    expect(both.response.message).toBe(`${both.message} ${both.message}`);
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { return_dict: true } }, 'OWN', compile)).message)
      .toBe('`return_dict=True` is incompatible with `tokenize=False`, because there is no dict of tokenizer outputs to return.');
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { return_assistant_tokens_mask: 1 } }, 'OWN', compile)).message)
      .toBe('`return_assistant_tokens_mask=True` is incompatible with `return_dict=False`');
    // tokenize + return_dict: a BatchEncoding fails `_preprocess_chat`'s assert, which nothing catches.
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { tokenize: true, return_dict: true } }, 'OWN', compile)).response)
      .toEqual({ status: 500, message: 'Internal Server Error' });
    // Names the calls bind themselves: apply_hf_chat_template's (raised by the call, outside the wrap), then
    // render_jinja_template's and Template.render's (inside it).
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { x: 1, conversation: [] } }, 'OWN', compile)).response.message)
      .toBe("vllm.entrypoints.chat_utils.apply_hf_chat_template() got multiple values for keyword argument 'conversation' None");
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { messages: [] } }, 'OWN', compile)).message)
      .toBe("jinja2.environment.Template.render() got multiple values for keyword argument 'messages'");
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { conversations: [] } }, 'OWN', compile)).message)
      .toBe("transformers.utils.chat_template_utils.render_jinja_template() got multiple values for keyword argument 'conversations'");
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { tools: ['f'] } }, 'OWN', compile)).message).toMatch(/^Tools should either be a JSON schema/);
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { tools: 7 } }, 'OWN', compile)).message).toBe("'int' object is not iterable");
    expect(refusalOf(() => applyChatTemplate({ ...base, kwargs: { documents: ['d'] } }, 'OWN', compile)).message).toBe("Documents should be a list of dicts with 'title' and 'text' keys!");
    // A template error is wrapped too.
    expect(refusalOf(() => applyChatTemplate(base, 'OWN', () => () => { throw new Error('boom'); })).response.message).toBe('boom boom');
  });

  test('continue_final_message (request field or kwarg) cuts after the final message\'s content, as render_jinja_template (transformers v4.53) does', () => {
    const messages = [{ role: 'user', content: 'Write' }, { role: 'assistant', content: 'Once upon' }];
    const open = '<s>user\nWrite</s>\n<s>assistant\nOnce upon';
    expect(applyChatTemplate({ ...base, messages, addGenerationPrompt: false, continueFinalMessage: true }, 'OWN', chatml)).toBe(open);
    expect(applyChatTemplate({ ...base, messages, kwargs: { add_generation_prompt: false, continue_final_message: true } }, 'OWN', chatml)).toBe(open);
    // A kwarg false wins over the request's true.
    expect(applyChatTemplate({ ...base, messages, addGenerationPrompt: false, continueFinalMessage: true, kwargs: { continue_final_message: false } }, 'OWN', chatml))
      .toBe(`${open}</s>\n`);
    // Trailing spacing the template kept stays; spacing it trimmed is not restored; Python's whitespace, not JS's.
    expect(cutAfterFinalMessage('A: tail  </s>', [{ content: 'tail  ' }])).toBe('A: tail  ');
    expect(cutAfterFinalMessage('A: tail</s>', [{ content: 'tail  ' }])).toBe('A: tail');
    expect(cutAfterFinalMessage('A: tail\uFEFF</s>', [{ content: 'tail\uFEFF' }])).toBe('A: tail\uFEFF');
    expect(cutAfterFinalMessage('x tail y tail z', [{ content: 'tail' }])).toBe('x tail y tail');
    const gone = refusalOf(() => cutAfterFinalMessage('<s>assistant\n</s>', [{ content: 'Once upon' }]));
    expect(gone.message).toMatch(/^continue_final_message is set but the final message does not appear in the chat after applying the chat template!/);
  });
});
