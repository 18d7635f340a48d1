/**
 * Turns an OpenAI-style request body into what the scheduler needs: the model and the text whose prefix decides
 * cache affinity. Parsed once at the edge; every rejection names the offending field, as vLLM's own errors do.
 */

export class RequestBodyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RequestBodyError';
  }
}

export interface ParsedRequestBody {
  readonly model: string;
  /** The text the prefix scorer hashes. */
  readonly prompt: string;
  /** Whether the response will be SSE (`stream: true`). */
  readonly stream: boolean;
}

/**
 * The chat rendering upstream's EPP hashes (GIE `pkg/epp/util/request/body.go`): ChatML turns. Keeping the same
 * string makes prefix-index behaviour comparable with llm-d's, and every turn boundary lands on the same characters
 * in every request of a conversation, which is what lets turn N+1 match turn N's blocks.
 */
function renderChatTurn(role: string, content: string): string {
  return `<|im_start|>${role}\n${content}<|im_end|>\n`;
}

/** Text of a message's `content`: a string, or the `text` parts of an array of content parts (images are skipped). */
function messageText(content: unknown, path: string): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content.map((part, i) => {
      if (typeof part === 'string') return part;
      if (typeof part !== 'object' || part === null) {
        throw new RequestBodyError(`${path}[${i}]: a content part must be an object or a string`);
      }
      const p = part as Record<string, unknown>;
      // Non-text parts (image_url, input_audio, …) carry no prefix text; their position still separates the text.
      return typeof p.text === 'string' ? p.text : '';
    }).join('');
  }
  throw new RequestBodyError(`${path}: must be a string or an array of content parts`);
}

function chatPrompt(messages: unknown): string {
  if (!Array.isArray(messages)) throw new RequestBodyError('messages: must be an array');
  if (messages.length === 0) throw new RequestBodyError('messages: must not be empty');
  return messages.map((m, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new RequestBodyError(`messages[${i}]: must be an object`);
    const msg = m as Record<string, unknown>;
    if (typeof msg.role !== 'string' || msg.role === '') throw new RequestBodyError(`messages[${i}].role: must be a non-empty string`);
    return renderChatTurn(msg.role, messageText(msg.content, `messages[${i}].content`));
  }).join('');
}

function completionPrompt(prompt: unknown): string {
  if (typeof prompt === 'string') return prompt;
  if (Array.isArray(prompt) && prompt.length > 0) {
    // Token ids (one prompt) or a batch of prompts: hash a stable text form; a batch shares routing as one request.
    if (prompt.every((p) => typeof p === 'number' && Number.isInteger(p))) return prompt.join(' ');
    if (prompt.every((p) => typeof p === 'string')) return prompt.join('\n');
    if (prompt.every((p) => Array.isArray(p) && p.every((t) => typeof t === 'number'))) {
      return prompt.map((p) => (p as number[]).join(' ')).join('\n');
    }
  }
  throw new RequestBodyError('prompt: must be a string, an array of strings, or an array of token ids');
}

/**
 * Parses the request body. `messages` wins over `prompt` when both are present (chat endpoints ignore `prompt`).
 * @throws RequestBodyError for invalid JSON, a missing or non-string `model`, or neither `prompt` nor `messages`.
 */
export function parseRequestBody(body: Buffer): ParsedRequestBody {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new RequestBodyError(`request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new RequestBodyError('request body must be a JSON object');
  }
  const o = json as Record<string, unknown>;
  if (typeof o.model !== 'string' || o.model === '') {
    throw new RequestBodyError('model: must be a non-empty string naming the model to serve the request');
  }
  let prompt: string;
  if (o.messages !== undefined) prompt = chatPrompt(o.messages);
  else if (o.prompt !== undefined) prompt = completionPrompt(o.prompt);
  else throw new RequestBodyError('request body needs "prompt" (completions) or "messages" (chat completions)');
  return { model: o.model, prompt, stream: o.stream === true };
}
