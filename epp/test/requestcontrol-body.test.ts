import { parseRequestBody, RequestBodyError } from '../src/requestcontrol/openai-request';

const parse = (v: unknown) => parseRequestBody(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));

describe('OpenAI request bodies', () => {
  test('completions: prompt as a string, strings or token ids', () => {
    expect(parse({ model: 'm', prompt: 'hello' })).toEqual({ model: 'm', prompt: 'hello', stream: false });
    expect(parse({ model: 'm', prompt: ['a', 'b'], stream: true })).toEqual({ model: 'm', prompt: 'a\nb', stream: true });
    expect(parse({ model: 'm', prompt: [1, 2, 3] }).prompt).toBe('1 2 3');
  });

  test('chat: messages rendered as ChatML turns, array content parts joined, images skipped', () => {
    const body = {
      model: 'm',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: [{ type: 'text', text: 'Look: ' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'what is it?' }] },
        { role: 'assistant', content: null, tool_calls: [] },
      ],
    };
    expect(parse(body).prompt).toBe('<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nLook: what is it?<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n');
  });

  test('a conversation\'s next turn extends the previous turn\'s text, so their prefixes match', () => {
    const turn1 = parse({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }).prompt;
    const turn2 = parse({ model: 'm', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'more' }] }).prompt;
    expect(turn2.startsWith(turn1)).toBe(true);
  });

  test.each<[unknown, RegExp]>([
    ['{not json', /^request body is not valid JSON/],
    [[1, 2], /must be a JSON object/],
    [{ prompt: 'x' }, /^model: must be a non-empty string/],
    [{ model: 3, prompt: 'x' }, /^model:/],
    [{ model: 'm' }, /needs "prompt" \(completions\) or "messages" \(chat completions\)/],
    [{ model: 'm', prompt: 5 }, /^prompt: must be/],
    [{ model: 'm', prompt: [] }, /^prompt: must be/],
    [{ model: 'm', messages: 'hi' }, /^messages: must be an array/],
    [{ model: 'm', messages: [] }, /^messages: must not be empty/],
    [{ model: 'm', messages: [{ content: 'x' }] }, /^messages\[0\]\.role:/],
    [{ model: 'm', messages: [{ role: 'user', content: 5 }] }, /^messages\[0\]\.content:/],
  ])('rejects %j', (body, message) => {
    expect(() => parse(body)).toThrow(RequestBodyError);
    expect(() => parse(body)).toThrow(message);
  });
});
