/**
 * The prompt's length in tokens as llm-d-router v0.10.0's default token producer counts it without a tokenizer: its
 * estimate backend (`requestcontrol/dataproducer/tokenizer/estimate.go` produce) packs the request's bytes four to a
 * pseudo-token, rounded up (packBytes, align), and passes token ids through as they are. The prefix-based P/D decider
 * reads this count (`prefix_based_pd_decider.go` getUserInputLenInTokens: TokenizedPrompt.TokenCount()).
 */
import { chatTurnPieces } from '@kvroute/protocol/openai';
import type { LLMRequest } from './types';

/** estimate.go bytesPerToken. */
const BYTES_PER_TOKEN = 4;

const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/**
 * Bytes of Go's `json.Marshal` of a parsed JSON value: JSON.stringify's, but Go escapes `<`, `>` and `&` as `\u003c`
 * (six bytes for one) and U+2028, U+2029 as `\u2028` (six for three). Key order (Go sorts map keys) leaves the length alone.
 */
export function goJsonBytes(value: unknown): number {
  const json = JSON.stringify(value) ?? '';
  let extra = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x3c || c === 0x3e || c === 0x26) extra += 5;
    else if (c === 0x2028 || c === 0x2029) extra += 3;
  }
  return utf8Bytes(json) + extra;
}

/** A chat message's text bytes as appendChatMessage packs them: a string content, or its `text` blocks' text. */
function contentBytes(content: unknown): number {
  if (typeof content === 'string') return utf8Bytes(content);
  if (!Array.isArray(content)) return 0;
  let bytes = 0;
  for (const part of content) {
    const block = part as { type?: unknown; text?: unknown } | null;
    if (block !== null && typeof block === 'object' && block.type === 'text' && typeof block.text === 'string') bytes += utf8Bytes(block.text);
  }
  return bytes;
}

/**
 * Estimated prompt tokens: token ids counted as they are; a text prompt's UTF-8 bytes ÷ 4, rounded up; a batch, each
 * prompt's count summed (estimate.go estimateMultiStringCompletions packs each string on its own, and
 * `TokenizedPrompt.TokenCount` sums the prompts' lists, `framework/interface/requesthandling/types.go`); a chat's tools
 * (Go's JSON of them) and each message's role and text bytes ÷ 4, rounded up (chatCompletionsBytes, appendChatMessage:
 * no template, no separators). Multimodal parts, which upstream folds in as placeholder tokens, count nothing here
 * (the approximate index keys each as a short digest, not as upstream's placeholder tokens). A request without a structured input (built by a test) counts its prompt's
 * bytes. An Anthropic Messages body counts its own fields (`anthropicEstimateBytes`, estimate.go messagesBytes), not the
 * chat it is read into; a Responses body, Go's JSON of `[{instructions}, {tools}, {input}]` (estimate.go estimateBytes).
 */
export function estimatedPromptTokens(request: LLMRequest): number {
  const input = request.input;
  let bytes: number;
  switch (input?.kind) {
    case 'tokens': {
      let tokens = input.tokens.length;
      if (input.rest !== undefined) for (const ids of input.rest) tokens += ids.length;
      return tokens;
    }
    case 'none':
      return 0;
    case 'text':
      if (input.rest !== undefined) {
        let tokens = Math.ceil(utf8Bytes(input.text) / BYTES_PER_TOKEN);
        for (const text of input.rest) tokens += Math.ceil(utf8Bytes(text) / BYTES_PER_TOKEN);
        return tokens;
      }
      bytes = utf8Bytes(input.text);
      break;
    case 'chat':
      // An Anthropic Messages body: its own fields' bytes (anthropicEstimateBytes), counted when it was read.
      if (input.estimateBytes !== undefined) {
        bytes = input.estimateBytes;
        break;
      }
      // A Responses body: Go's JSON of its instructions, tools and input (estimate.go estimateBytes L171-180).
      if (input.estimateJson !== undefined) {
        bytes = goJsonBytes(input.estimateJson);
        break;
      }
      bytes = input.tools !== undefined && input.tools.length > 0 ? goJsonBytes(input.tools) : 0;
      for (const m of input.messages) bytes += utf8Bytes(m.role ?? '') + contentBytes(m.content);
      break;
    default:
      bytes = utf8Bytes(request.prompt);
  }
  return Math.ceil(bytes / BYTES_PER_TOKEN);
}

/** An Anthropic Messages body's fields as `anthropic-parser` decoded them (a null tool, message or block as `{}`). */
export interface AnthropicEstimateInput {
  readonly tools: readonly Readonly<Record<string, unknown>>[];
  /** `anthropicSystemText` of `system`. */
  readonly systemText: string;
  readonly messages: readonly { readonly role: string; readonly content: string | readonly Readonly<Record<string, unknown>>[] }[];
  /** `anthropicToolResultContent`'s text of a `tool_result` block. */
  readonly toolResultText: (block: Readonly<Record<string, unknown>>) => string;
  /**
   * The raw bytes of `messages[message].content[block].input` as the body carried them (upstream's json.RawMessage);
   * absent, or undefined for a block: the compact JSON of the parsed input.
   */
  readonly toolUseInputBytes?: (message: number, block: number) => number | undefined;
  /**
   * Bytes of Go's JSON of `tools[tool].input_schema` (a json.RawMessage: its raw bytes compacted, escapes as sent);
   * absent, or undefined for a tool: Go's JSON of the parsed schema.
   */
  readonly inputSchemaBytes?: (tool: number) => number | undefined;
}

/**
 * The bytes llm-d-router v0.10.0's estimate backend packs for an Anthropic Messages body (`requestcontrol/dataproducer/
 * tokenizer/estimate.go` messagesBytes): Go's JSON of `tools` as `[]AnthropicTool` (name, description when not empty,
 * input_schema when sent, its raw JSON compacted (`inputSchemaBytes`), strict and defer_loading when booleans; other fields dropped), the system text, then each
 * message's role and its text: a string content, or its blocks' `text`, `thinking`, a `tool_use`'s id, name and input
 * (its raw JSON as the body carried it, `toolUseInputBytes`; the compact JSON of the parsed value without it), a `tool_result`'s text. Images count nothing here, as multimodal parts
 * count nothing in `estimatedPromptTokens`.
 */
export function anthropicEstimateBytes(body: AnthropicEstimateInput): number {
  let bytes = 0;
  if (body.tools.length > 0) {
    // A raw schema's bytes stand in for those of its parsed value (a JSON value's text is the same inside the array).
    body.tools.forEach((t, k) => {
      const raw = t.input_schema !== undefined ? body.inputSchemaBytes?.(k) : undefined;
      if (raw !== undefined) bytes += raw - goJsonBytes(t.input_schema);
    });
    bytes += goJsonBytes(body.tools.map((t) => ({
      name: typeof t.name === 'string' ? t.name : '',
      ...(typeof t.description === 'string' && t.description !== '' ? { description: t.description } : {}),
      ...(t.input_schema !== undefined ? { input_schema: t.input_schema } : {}),
      ...(typeof t.strict === 'boolean' ? { strict: t.strict } : {}),
      ...(typeof t.defer_loading === 'boolean' ? { defer_loading: t.defer_loading } : {}),
    })));
  }
  bytes += utf8Bytes(body.systemText);
  const str = (v: unknown): number => (typeof v === 'string' ? utf8Bytes(v) : 0);
  body.messages.forEach((m, i) => {
    bytes += utf8Bytes(m.role);
    if (typeof m.content === 'string') {
      bytes += utf8Bytes(m.content);
      return;
    }
    m.content.forEach((b, j) => {
      switch (b.type) {
        case 'text': bytes += str(b.text); break;
        case 'thinking': bytes += str(b.thinking); break;
        case 'tool_use':
          bytes += str(b.id) + str(b.name) + (b.input === undefined ? 0 : body.toolUseInputBytes?.(i, j) ?? utf8Bytes(JSON.stringify(b.input)));
          break;
        case 'tool_result': bytes += utf8Bytes(body.toolResultText(b)); break;
      }
    });
  });
  return bytes;
}

/**
 * The estimate's whole pseudo-tokens (as `estimatedPromptTokens` counts them) among the first `chars` characters of an
 * OpenAI chat's prompt text, the ChatML turns the approximate prefix scorer hashes (`chatTurnPieces`); undefined for
 * any other request. The text holds what the estimate does not count (turn markers, reasoning, tool calls:
 * appendChatMessage reads role and content only), so a cached length of it is mapped back piece by piece, not as a
 * share: its tools (packed first upstream) once any of it is held, each role and content as far as it is held. A
 * conversation whose history carries an 8 KB tool call otherwise counted a decode pod holding the previous turn as
 * holding a fifth of the prompt, where upstream's blocks, over role and content alone, hold nearly all of it.
 */
export function estimatedChatTokensWithin(request: LLMRequest, chars: number): number | undefined {
  const input = request.input;
  // An Anthropic or Responses body's estimate counts its own fields, not the chat's role and content bytes.
  if (input === undefined || input.kind !== 'chat' || input.estimateBytes !== undefined || input.estimateJson !== undefined) return undefined;
  if (chars <= 0) return 0;
  let bytes = input.tools !== undefined && input.tools.length > 0 ? goJsonBytes(input.tools) : 0;
  let at = 0;
  for (let i = 0; i < input.messages.length && at < chars; i++) {
    const m = input.messages[i]!;
    const pieces = chatTurnPieces(m, i);
    for (let p = 0; p < pieces.length && at < chars; p++) {
      const piece = pieces[p]!;
      const room = chars - at;
      if (p === 1) {
        bytes += utf8Bytes(room >= piece.length ? piece : piece.slice(0, room));
      } else if (p === 4) {
        const whole = contentBytes(m.content);
        if (room >= piece.length) bytes += whole;
        // A cut string is counted to the cut; a cut list of parts (its media as placeholders) by its held share.
        else bytes += typeof m.content === 'string' ? utf8Bytes(piece.slice(0, room)) : Math.floor((whole * room) / piece.length);
      }
      at += piece.length;
    }
  }
  return Math.floor(bytes / BYTES_PER_TOKEN);
}
