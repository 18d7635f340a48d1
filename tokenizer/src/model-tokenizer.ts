/**
 * A model's own tokenizer and chat template, applied to a request as vLLM applies them, so the token ids (and hence
 * the KV blocks) a router computes are the ones vLLM computes.
 *
 * The tokenizer is Hugging Face's own Rust implementation (npm `tokenizers`, the binding of the crate vLLM's fast
 * tokenizer wraps), chosen by measurement over the pure-JS port (`@huggingface/tokenizers`): on a 16 KB prompt it
 * encodes in ~6 ms against ~9 ms, and it does so on libuv's thread pool (~0.4 ms on the event loop) where the port
 * blocks the loop for the whole encode (71 ms at 128 KB). See tokenizer/README.md for the numbers.
 *
 * Encoding is memoized by piece. Text is cut where no token can span the cut: at special tokens (added tokens are
 * extracted before normalization and pre-tokenization, so no merge crosses them) and after a run of line breaks that
 * is followed by a non-space character, for the split patterns whose pre-token holding the run ends there (Llama 3's
 * and Qwen's, `piecewiseEncodingSafe`), so the pre-tokens, and with them the BPE merges, on both sides are those of
 * the whole text (checked against unsplit encoding in the tests); other tokenizers encode every text whole. A
 * conversation's next turn, or a RAG prompt over a known document, then only pays for its new paragraphs.
 */
import { LRUCache } from 'lru-cache';
import {
  applyChatTemplate, markReorderedMappings, namedOwnTemplate, ownTemplateFor, postProcessorAddsOf, pythonEquality, pythonStringMethods, truncatePromptIds, pythonJson, pythonTrimFilter, pythonValuePrinting, RequestFieldError, vllmConversation, vllmToolDicts,
  type ArgumentsRendering, type ChatMessageInput, type OwnChatTemplate, type PromptInput,
} from '@kvroute/protocol/openai';
import * as fs from 'node:fs';
import { Tokenizer } from 'tokenizers';
import { contentFormatOf, type ContentFormat } from './content-format';
import type { TokenizerFiles } from './resolve';

type JinjaModule = typeof import('@huggingface/jinja', { with: { 'resolution-mode': 'import' } });
// The package is "type": "module" with a `require` condition pointing at a CommonJS build; TypeScript lets a CommonJS
// file use its typings only as types, so the value comes from require.
const jinja = require('@huggingface/jinja') as JinjaModule;
const { Template } = jinja;
// jinja2 calls Python's str methods and prints Python's str() of values; @huggingface/jinja does neither
// (jinja-python-strings.ts in @kvroute/protocol).
pythonStringMethods(jinja);
pythonValuePrinting(jinja);
// jinja2's `==` and `in` are Python's: dicts and lists by value, no string equal to a number.
pythonEquality(jinja);
// vLLM keeps a tool schema's `0.0` a float and renders tojson with Python's json.dumps (jinja-python-json.ts).
pythonJson(jinja);
type Template = InstanceType<JinjaModule['Template']>;

type TokenJson = string | { content: string } | null;

interface TokenizerConfigJson {
  chat_template?: string | { name: string; template: string }[];
  bos_token?: TokenJson;
  eos_token?: TokenJson;
  unk_token?: TokenJson;
  sep_token?: TokenJson;
  pad_token?: TokenJson;
  cls_token?: TokenJson;
  mask_token?: TokenJson;
  additional_special_tokens?: TokenJson[] | null;
}

/** transformers' SPECIAL_TOKENS_ATTRIBUTES (tokenization_utils_base.py @ v4.53), the single-token ones. */
const SPECIAL_TOKEN_ATTRIBUTES = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

/** A chat message as the template sees it: `content` a string (vLLM's "string" content format). */
export interface TemplateMessage {
  role: string;
  /** A string in vLLM's "string" content format; a list of parts in its "openai" one (`content-format.ts`). */
  content: string | readonly unknown[];
  [key: string]: unknown;
}

export interface RenderOptions {
  /** @default true */
  readonly addGenerationPrompt?: boolean;
  /** @default false */
  readonly continueFinalMessage?: boolean;
  readonly tools?: readonly unknown[];
  /** vLLM's `chat_template_kwargs`, e.g. `{ enable_thinking: false }`. */
  readonly chatTemplateKwargs?: Readonly<Record<string, unknown>>;
  /** The request's `documents`, rendered by RAG templates. */
  readonly documents?: readonly unknown[];
  /** The request's `chat_template`: a template text, or the name of one of the model's named templates. */
  readonly chatTemplate?: string;
}

export interface PromptTokens {
  readonly ids: Uint32Array;
  /**
   * False when the request carries what the template renders into tokens kvroute cannot reproduce (images, audio, or
   * tool-call arguments jinja would print unlike Python): `ids` then end where the first message carrying such a thing
   * starts, the prefix that is the same blocks on vLLM.
   */
  readonly exact: boolean;
}

/** Stands in for the content of the first message kvroute cannot render, to find where the rendered prompt stops being known. */
const MEDIA_CUT = '\uE000kvroute-media-cut\uE000';

/**
 * Stands in for the arguments of the first tool call kvroute cannot render as vLLM does, and for mappings in the tools,
 * documents and `chat_template_kwargs` whose keys JavaScript orders unlike Python. Printable characters only, so
 * the marker reads the same through `tojson`, `| string` and Python's repr of the mapping (which escapes the private-use
 * characters the content marker is made of).
 */
const ARGUMENTS_CUT = '\u27E6kvroute-arguments-cut\u27E7';

/** A conversation whose one tool call's arguments are `args`, to see how a template prints them (`argumentsRendering`). */
function argumentsProbe(args: Record<string, unknown>): unknown[] {
  return [
    { role: 'user', content: 'kvroute_probe_question' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'kvroute_probe_call', function: { arguments: args, name: 'kvroute_probe_tool' }, type: 'function' }] },
  ];
}
const ARGUMENTS_PROBE_TOOL = { type: 'function', function: { name: 'kvroute_probe_tool', description: null, parameters: null } };
/**
 * Arguments whose `tojson` text is known and whose other printings differ from it even in JavaScript: a value left
 * `undefined` prints `null` through `tojson` and `undefined` when the mapping is printed whole.
 */
const JSON_PROBE = { kvroute_arg_b: true, kvroute_arg_n: null, kvroute_arg_o: { kvroute_arg_i: 1 }, kvroute_arg_u: undefined };
const JSON_PROBE_TEXT = ['"kvroute_arg_b": true', '"kvroute_arg_n": null', '"kvroute_arg_o": {"kvroute_arg_i": 1}', '"kvroute_arg_u": null'];
/** Arguments any template can print value by value. */
const ITEMS_PROBE = { kvroute_arg_s: 'kvroute_arg_sv', kvroute_arg_i: 7307 };

/**
 * The template a chat asks for: a `chat_template` kwarg (it wins, as vLLM's dict update makes it; `null` brings the
 * model's back), else the request's own field.
 */
function givenTemplate(input: Extract<PromptInput, { kind: 'chat' }>): unknown {
  const kwargs = input.chatTemplateKwargs;
  return kwargs !== undefined && Object.prototype.hasOwnProperty.call(kwargs, 'chat_template') ? kwargs.chat_template : input.chatTemplate;
}

function tokenText(t: string | { content: string } | null | undefined): string {
  if (t === null || t === undefined) return '';
  return typeof t === 'string' ? t : t.content;
}

/** What `piecewiseEncodingSafe` reads of a tokenizer.json. */
interface TokenizerJsonShape {
  readonly added_tokens?: AddedTokenJson[];
  readonly normalizer?: TokenizerStage | null;
  readonly pre_tokenizer?: TokenizerStage | null;
}

interface TokenizerStage {
  readonly type?: string;
  readonly pretokenizers?: readonly TokenizerStage[];
  readonly pattern?: { readonly Regex?: string; readonly String?: string };
  readonly behavior?: string;
  readonly invert?: boolean;
  readonly add_prefix_space?: boolean;
  /** Metaspace's (`always`, `first`, `never`): where it marks a word's start. */
  readonly prepend_scheme?: string;
}

/**
 * Split patterns under which the pre-token holding a run of line breaks ends at the run's end when a character that is
 * not whitespace follows: ` ?[^\s\p{L}\p{N}]+[\r\n]*` and `\s*[\r\n]+` take the whole run and nothing after it, and
 * no alternative tried before them starts with a line break. Llama 3's (`\p{N}{1,3}`) and Qwen2's, which Qwen2.5 and
 * Qwen3 keep (`\p{N}`). Not GPT-2's byte-level pattern (`\s+(?!\S)|\s+`, tokenizers' `pre_tokenizers/byte_level.rs`:
 * in "a\n\nb" the lookahead gives the last line break to a pre-token of its own, so "\n\n" is two pre-tokens in the
 * whole text and one at the end of a piece), nor o200k's (gpt-oss, Tekken: ` ?[^\s\p{L}\p{N}]+[\r\n/]*` takes the
 * slashes after the line breaks too).
 */
const CUT_SAFE_SPLIT_PATTERNS: ReadonlySet<string> = new Set([
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
]);

/**
 * Whether encoding a text in pieces (cut after runs of line breaks and around special tokens, each piece memoized)
 * gives the ids vLLM gets by encoding it whole. Only where the cut is proven to be a pre-token boundary of the whole
 * text, so that no merge spans it: no normalizer, or NFC (a line break composes with nothing), and the pre-tokenizer
 * Llama 3's and Qwen's, a `Split` on one of `CUT_SAFE_SPLIT_PATTERNS` (Isolated) then `ByteLevel` without
 * `add_prefix_space` (which would prepend a space to every pre-token it is given, `pre_tokenizers/byte_level.rs`).
 * Every other tokenizer encodes every text whole: GPT-2's byte-level pattern and o200k's end their pre-tokens
 * elsewhere (`CUT_SAFE_SPLIT_PATTERNS`), and start-marking tokenizers (a `Prepend` normalizer, `Metaspace`) would
 * give every piece the mark the whole text has once.
 */
export function piecewiseEncodingSafe(json: TokenizerJsonShape): boolean {
  const normalizer = json.normalizer ?? null;
  if (normalizer !== null && normalizer.type !== 'NFC') return false;
  const stages = json.pre_tokenizer?.type === 'Sequence' ? json.pre_tokenizer.pretokenizers ?? [] : [];
  const [split, byteLevel] = stages;
  return stages.length === 2
    && split?.type === 'Split' && split.behavior === 'Isolated' && split.invert !== true
    && split.pattern?.Regex !== undefined && CUT_SAFE_SPLIT_PATTERNS.has(split.pattern.Regex)
    && byteLevel?.type === 'ByteLevel' && byteLevel.add_prefix_space !== true;
}

/** The safe cut: after a run of line breaks followed by a character that is not whitespace. */
const SAFE_CUT = /[\r\n]+(?=[^\s])/g;

/**
 * The safe cuts in `s`, but those an added token with `lstrip` starts at (`lstripStart`, a sticky pattern of them):
 * tokenizers' AddedVocabulary matches such a token with the whitespace before it (`AddedToken::get_pattern`,
 * added_vocabulary.rs), so in the whole text the run of line breaks belongs to the token.
 */
function lineBreakCuts(s: string, lstripStart: RegExp | undefined): number[] {
  const cuts: number[] = [];
  for (const m of s.matchAll(SAFE_CUT)) {
    const end = m.index! + m[0].length;
    if (lstripStart !== undefined) {
      lstripStart.lastIndex = end;
      if (lstripStart.test(s)) continue;
    }
    cuts.push(end);
  }
  return cuts;
}

function piecesOf(segment: string, lstripStart: RegExp | undefined): string[] {
  const pieces: string[] = [];
  let start = 0;
  for (const end of lineBreakCuts(segment, lstripStart)) {
    pieces.push(segment.slice(start, end));
    start = end;
  }
  if (start < segment.length) pieces.push(segment.slice(start));
  return pieces;
}

/** A regex source matching any of `texts` literally, longest first. */
function alternativesOf(texts: readonly string[]): string {
  return [...texts].sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
}

/**
 * A message's content as vLLM hands it to the template (`_parse_chat_message_content` and
 * `_parse_chat_message_content_parts`, vllm/entrypoints/chat_utils.py @ v0.10.0): in the "string" format its text parts
 * joined with "\n" (a null content ""); in the "openai" format a list, each text part `{'type': 'text', 'text': …}`, a
 * plain-string part as it is, a string content one text part, a null content []. A part whose parse result is empty is
 * dropped before the join (`if parse_res:`): in the "string" format a text part with text "", in both formats a ""
 * plain-string part; the "openai" format's `{'type': 'text', 'text': ''}` is a non-empty dict and stays. `exact` is
 * false when a part is media (or the content is neither), which kvroute cannot reproduce.
 */
function messageContent(content: unknown, format: ContentFormat): { content: string | unknown[]; exact: boolean } {
  if (typeof content === 'string') return { content: format === 'openai' ? [{ type: 'text', text: content }] : content, exact: true };
  if (content === null || content === undefined) return { content: format === 'openai' ? [] : '', exact: true };
  if (!Array.isArray(content)) return { content: String(content), exact: false };
  const texts: string[] = [];
  const parts: unknown[] = [];
  let exact = true;
  for (const part of content) {
    // vLLM 0.10.0 reads `text` / `input_text` parts' `text`, `refusal` parts' `refusal` and `thinking` parts' `thinking`
    // as text (`_parse_chat_message_content_part`); anything else is media.
    const p = part as { type?: unknown; text?: unknown; refusal?: unknown; thinking?: unknown } | null;
    let text: string | undefined;
    if (typeof part === 'string') {
      if (part === '') continue;
      texts.push(part);
      parts.push(part);
      continue;
    }
    if (p && typeof p === 'object' && p.type === 'refusal' && typeof p.refusal === 'string') text = p.refusal;
    else if (p && typeof p === 'object' && p.type === 'thinking' && typeof p.thinking === 'string') text = p.thinking;
    else if (p && typeof p === 'object' && typeof p.text === 'string') text = p.text;
    if (text === undefined) {
      exact = false;
      continue;
    }
    if (text !== '') texts.push(text);
    parts.push({ type: 'text', text });
  }
  return { content: format === 'openai' ? parts : texts.join('\n'), exact };
}

/** The text whose encodings with and without special tokens show what the post-processor adds around a text. */
const ADDED_PROBE = 'a';

/** Compiled templates kept: the model's own and the few a client sends as `chat_template`. */
const COMPILED_TEMPLATES = 16;

/**
 * What one memo entry costs besides its text and ids: the `Uint32Array` object, the key string's header and the LRU's
 * bookkeeping. Measured on Node 20.20.2: 4.2 million 8-character pieces (a prompt of short unique lines, each line a
 * piece) held ~320 bytes of heap each, so a budget counted in characters alone (8 apiece) let them take 1.3 GB.
 */
export const MEMO_ENTRY_BYTES = 320;

/** The memo's estimate of an entry's heap bytes: the overhead, the key (2 bytes a character at most), 4 bytes an id. */
export function memoEntryBytes(key: string, ids: Uint32Array): number {
  return MEMO_ENTRY_BYTES + 2 * key.length + 4 * ids.length;
}

/**
 * `s` as a string of its own. A piece is cut out of the prompt (`split`, `slice`), and V8 makes a cut of 13 characters
 * or more a slice that points into the whole prompt: kept as a memo key it would keep that prompt alive, so a
 * conversation's new turn or a question after a known document held its whole prompt (soak 40: 159 KB a request for
 * a 50-character piece). The JSON round trip copies the characters, lone surrogates included.
 */
export function ownCopy(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

/** The memo's default budget, in estimated heap bytes (`memoEntryBytes`). */
export const DEFAULT_MEMO_BYTES = 64 * 1024 * 1024;

export class ModelTokenizer {
  readonly vocabSize: number;
  private readonly ownTemplate?: OwnChatTemplate;
  private readonly compiled = new LRUCache<string, Template>({ max: COMPILED_TEMPLATES });
  /** The content format of each of the model's own templates, by text (detected once). */
  private readonly formats = new Map<string, ContentFormat>();
  /** How each of the model's own templates prints tool-call arguments, by text (probed once). */
  private readonly renderings = new Map<string, ArgumentsRendering>();
  private readonly specialIds: ReadonlyMap<string, number>;
  private readonly specialSplit?: RegExp;
  /** The added tokens with `lstrip`, sticky: no piece ends where one starts (`lineBreakCuts`). */
  private readonly lstripStart?: RegExp;
  private readonly memo: LRUCache<string, Uint32Array>;
  private added?: Promise<{ readonly front: Uint32Array; readonly back: Uint32Array }>;

  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly config: TokenizerConfigJson,
    addedTokens: readonly AddedTokenJson[],
    memoBytes: number,
    /** Whether `encode` may encode a text in pieces (see `piecewiseEncodingSafe`); else every text is encoded whole. */
    private readonly piecewise: boolean,
  ) {
    this.vocabSize = tokenizer.getVocabSize(true);
    // transformers keeps named templates by name and picks one per call ("tool_use" with tools, else "default").
    if (config.chat_template !== undefined && config.chat_template !== null) this.ownTemplate = config.chat_template;
    // Only special tokens without lstrip/rstrip can be cut out verbatim; those flags make the tokenizer swallow
    // neighbouring whitespace.
    const splittable = addedTokens.filter((t) => t.special && !t.lstrip && !t.rstrip);
    this.specialIds = new Map(splittable.map((t) => [t.content, t.id]));
    if (splittable.length > 0) this.specialSplit = new RegExp(`(${alternativesOf(splittable.map((t) => t.content))})`);
    const lstrip = addedTokens.filter((t) => t.lstrip);
    if (lstrip.length > 0) this.lstripStart = new RegExp(alternativesOf(lstrip.map((t) => t.content)), 'y');
    // Sized by estimated heap bytes, not characters: a short piece costs far more than its text (MEMO_ENTRY_BYTES).
    this.memo = new LRUCache<string, Uint32Array>({ maxSize: memoBytes, sizeCalculation: (ids, key) => memoEntryBytes(key, ids) });
  }

  /**
   * Loads a tokenizer (the JSON parse and table build take ~0.4 s for Qwen3; share the instance).
   * @param memoBytes estimated heap bytes (`memoEntryBytes`) of the remembered pieces and their token ids. @default 64 MiB
   */
  static load(files: TokenizerFiles, memoBytes = DEFAULT_MEMO_BYTES): ModelTokenizer {
    const config = JSON.parse(fs.readFileSync(files.tokenizerConfigJson, 'utf8')) as TokenizerConfigJson;
    // Template files take priority over tokenizer_config.json's: chat_template.jinja is the "default" template,
    // additional_chat_templates/<name>.jinja the named ones; one default alone is the template, else they are named
    // templates (transformers' PreTrainedTokenizerBase._from_pretrained, tokenization_utils_base.py).
    const templates: { name: string; template: string }[] = [];
    if (files.chatTemplateJinja !== undefined) templates.push({ name: 'default', template: fs.readFileSync(files.chatTemplateJinja, 'utf8') });
    for (const [name, file] of files.additionalChatTemplates ?? []) templates.push({ name, template: fs.readFileSync(file, 'utf8') });
    if (templates.length === 1 && templates[0]!.name === 'default') config.chat_template = templates[0]!.template;
    else if (templates.length > 0) config.chat_template = templates;
    const json = JSON.parse(fs.readFileSync(files.tokenizerJson, 'utf8')) as TokenizerJsonShape;
    return new ModelTokenizer(Tokenizer.fromFile(files.tokenizerJson), config, json.added_tokens ?? [], memoBytes, piecewiseEncodingSafe(json));
  }

  /** The memo's entries and their estimated heap bytes (`memoEntryBytes`), at most the budget `load` was given. */
  memoStats(): { readonly entries: number; readonly bytes: number } {
    return { entries: this.memo.size, bytes: this.memo.calculatedSize };
  }

  /**
   * Token ids of `text`. `addSpecialTokens` mirrors vLLM: true for /v1/completions prompts (a BOS where the model has
   * one), false for rendered chat prompts, whose template placed the special tokens.
   */
  async encode(text: string, addSpecialTokens = false): Promise<Uint32Array> {
    if (!this.piecewise) return this.encodeWhole(text, addSpecialTokens);
    const pieces: { text: string; special?: number }[] = [];
    const segments = this.specialSplit ? text.split(this.specialSplit) : [text];
    for (const segment of segments) {
      if (segment.length === 0) continue;
      const special = this.specialIds.get(segment);
      if (special !== undefined) pieces.push({ text: segment, special });
      else for (const piece of piecesOf(segment, this.lstripStart)) pieces.push({ text: piece });
    }
    // Ids of this call's pieces, from the memo or encoded now; held here so a prompt larger than the memo still works.
    const known = new Map<string, Uint32Array>();
    const missing: string[] = [];
    for (const p of pieces) {
      if (p.special !== undefined || known.has(p.text)) continue;
      const hit = this.memo.get(p.text);
      if (hit) known.set(p.text, hit);
      else if (!missing.includes(p.text)) missing.push(p.text);
    }
    if (missing.length > 0) {
      // One call: the binding encodes a batch in parallel on its own threads.
      const encodings = await this.tokenizer.encodeBatch(missing, { addSpecialTokens: false });
      missing.forEach((piece, i) => {
        const ids = Uint32Array.from(encodings[i]!.getIds());
        known.set(piece, ids);
        this.memo.set(ownCopy(piece), ids);
      });
    }
    const added = addSpecialTokens ? await this.addedTokens() : undefined;
    const parts = pieces.map((p) => (p.special !== undefined ? Uint32Array.of(p.special) : known.get(p.text)!));
    // The post-processor's tokens go around the whole text, as `post_process` adds them (Llama's BOS in front, an EOS
    // or [SEP] behind).
    if (added) {
      parts.unshift(added.front);
      parts.push(added.back);
    }
    const out = new Uint32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Plain, unsplit encoding: the reference the memoized path must equal. */
  async encodeWhole(text: string, addSpecialTokens = false): Promise<Uint32Array> {
    return Uint32Array.from((await this.tokenizer.encode(text, undefined, { addSpecialTokens })).getIds());
  }

  /**
   * Renders the chat template as vLLM 0.10.0 has transformers' `apply_chat_template` do it (`applyChatTemplate` in
   * @kvroute/protocol: `chat_template_kwargs` over the request's arguments, a `chat_template` among them replacing the
   * template, transformers' own parameters kept out of the template's variables). Throws `ChatTemplateRefusal` for a
   * chat vLLM refuses, which callers treat as any unrenderable chat.
   */
  renderChat(messages: readonly TemplateMessage[], options: RenderOptions = {}): string {
    return applyChatTemplate({
      // transformers passes the special-tokens map; a template may reference any of them.
      specialTokens: this.specialTokens(),
      messages,
      addGenerationPrompt: options.addGenerationPrompt ?? true,
      continueFinalMessage: options.continueFinalMessage ?? false,
      ...(options.tools !== undefined ? { tools: options.tools } : {}),
      ...(options.documents !== undefined ? { documents: options.documents } : {}),
      ...(options.chatTemplateKwargs !== undefined ? { kwargs: options.chatTemplateKwargs } : {}),
      ...(options.chatTemplate !== undefined ? { chatTemplate: options.chatTemplate } : {}),
    }, this.ownTemplate, (text) => {
      const compiled = this.compiledTemplate(text);
      return (context) => compiled.render(context);
    });
  }

  /**
   * The special-tokens map transformers passes to a template: `apply_chat_template` renders with
   * `{**self.special_tokens_map, **kwargs}`, and `special_tokens_map` holds only the attributes that are set (`if
   * attr_value:`), `additional_special_tokens` among them (tokenization_utils_base.py @ v4.53). So a template sees no
   * `bos_token` at all where the config's is null (Qwen3's), not an empty string: `bos_token is defined` is false there.
   */
  private specialTokens(): Record<string, string | string[]> {
    const map: Record<string, string | string[]> = {};
    for (const attr of SPECIAL_TOKEN_ATTRIBUTES) {
      const text = tokenText(this.config[attr]);
      if (text !== '') map[attr] = text;
    }
    const additional = (this.config.additional_special_tokens ?? []).map(tokenText).filter((t) => t !== '');
    if (additional.length > 0) map.additional_special_tokens = additional;
    return map;
  }

  private compiledTemplate(text: string): Template {
    let template = this.compiled.get(text);
    if (!template) {
      // jinja2's lexer reads "\r\n" and "\r" in a template's source as "\n" (lexer.py `tokeniter`); @huggingface/jinja
      // keeps them, and a template saved with CRLF line endings would print them.
      template = new Template(text.replace(/\r\n?/g, '\n'));
      // jinja2's trim filter is Python's str.strip (jinja-python-strings.ts).
      pythonTrimFilter(template.parsed);
      this.compiled.set(text, template);
    }
    return template;
  }

  /**
   * How the template this chat renders with prints tool-call arguments (`ArgumentsRendering` in @kvroute/protocol),
   * found once per template by rendering probe calls: `json` when arguments holding a boolean, a null, a nested mapping
   * and an undefined value all appear as `tojson` prints them; else, from arguments of a string and an integer, `none`
   * when neither appears, `opaque` when the mapping appears whole (JSON, or `[object …]`) or the template fails, and
   * `items` when the values appear on their own.
   */
  private argumentsRendering(input: Extract<PromptInput, { kind: 'chat' }>): ArgumentsRendering {
    const given = givenTemplate(input);
    const text = typeof given === 'string' ? namedOwnTemplate(this.ownTemplate, given) : ownTemplateFor(this.ownTemplate, input.tools);
    if (text === undefined) return 'opaque';
    let rendering = this.renderings.get(text);
    if (rendering === undefined) {
      const render = (args: Record<string, unknown>): string | undefined => {
        try {
          return this.compiledTemplate(text).render({
            messages: argumentsProbe(args), tools: [ARGUMENTS_PROBE_TOOL], add_generation_prompt: false, ...this.specialTokens(),
          });
        } catch {
          return undefined;
        }
      };
      const json = render(JSON_PROBE);
      if (json !== undefined && JSON_PROBE_TEXT.every((fragment) => json.includes(fragment))) {
        rendering = 'json';
      } else {
        const items = render(ITEMS_PROBE);
        if (items === undefined) rendering = 'opaque';
        else if (!items.includes('kvroute_arg_')) rendering = 'none';
        else if (items.includes('{"kvroute_arg_') || items.includes('[object') || !items.includes('kvroute_arg_sv') || !items.includes('7307')) rendering = 'opaque';
        else rendering = 'items';
      }
      this.renderings.set(text, rendering);
    }
    return rendering;
  }

  /**
   * Whether the chat's template would come from the client: a `chat_template` kwarg (it wins, as vLLM's dict update
   * makes it; `null` brings the model's back) or else the request's own field, unless it names one of the model's
   * named templates (`OwnChatTemplate`).
   */
  private isClientTemplate(input: Extract<PromptInput, { kind: 'chat' }>): boolean {
    const given = givenTemplate(input);
    if (given === undefined || given === null) return false;
    return !(typeof given === 'string' && namedOwnTemplate(this.ownTemplate, given) !== undefined);
  }

  /**
   * The content format vLLM detects from the template the model's own chat renders with (`resolve_hf_chat_template`:
   * the tokenizer's, "tool_use" of named ones when tools are given; `_detect_content_format`, content-format.ts), once
   * per template. vLLM prefers a multimodal model's processor template (chat_template.json) when there are no tools;
   * kvroute reads the tokenizer's only.
   */
  contentFormat(tools?: readonly unknown[]): ContentFormat {
    const text = ownTemplateFor(this.ownTemplate, tools);
    if (text === undefined) return 'string';
    let format = this.formats.get(text);
    if (format === undefined) {
      try {
        format = contentFormatOf(this.compiledTemplate(text));
      } catch {
        format = 'string'; // a template that does not compile: vLLM's default when its AST cannot be had
      }
      this.formats.set(text, format);
    }
    return format;
  }

  /**
   * The ids vLLM computes for a request's input: completions encode the prompt, chats render then encode.
   * `truncatePromptTokens` (the request's `truncate_prompt_tokens`) keeps what vLLM keeps (`truncatePromptIds`): a text
   * truncated by the tokenizer, which keeps the post-processor's tokens (a BOS), token ids sliced.
   */
  async promptTokens(input: PromptInput, options: { readonly truncatePromptTokens?: number } = {}): Promise<PromptTokens | undefined> {
    const keep = options.truncatePromptTokens;
    const encoded = async (text: string, addSpecialTokens: boolean): Promise<Uint32Array> => {
      const ids = await this.encode(text, addSpecialTokens);
      if (keep === undefined) return ids;
      const added = addSpecialTokens ? await this.addedTokens() : undefined;
      return truncatePromptIds(ids, keep, added && { front: added.front.length, back: added.back.length });
    };
    switch (input.kind) {
      case 'text':
        // vLLM's `add_special_tokens`, true unless the request says otherwise (CompletionRequest @ v0.10.0).
        return { ids: await encoded(input.text, input.addSpecialTokens ?? true), exact: true };
      case 'tokens':
        return { ids: truncatePromptIds(Uint32Array.from(input.tokens), keep), exact: true };
      case 'none':
        return undefined;
      case 'chat': {
        // A template the client sent (the request's `chat_template`, or one in its kwargs that names none of the
        // model's) is not rendered here: the EPP renders on its routing thread, and a template is a program (a
        // 50-byte loop renders for seconds), so one request could stall routing for the whole pool. vLLM renders it
        // in its own server, in jinja2's sandbox. Such a chat is routed unkeyed, by load.
        if (this.isClientTemplate(input)) return undefined;
        // A Responses body's function calls, their outputs or reasoning items: which prompt vLLM 0.10.0 renders from
        // them is not modelled here (`approximateOnly`, only the approximate scorer keys their text): routed unkeyed.
        if (input.approximateOnly === true) return undefined;
        let tools: Record<string, unknown>[] | undefined;
        try {
          tools = input.tools ? vllmToolDicts(input.tools) : undefined;
        } catch (e) {
          // A tool vLLM's request validation refuses: the request gets a 400 there, and nothing here to key.
          if (e instanceof RequestFieldError) return undefined;
          throw e;
        }
        const format = this.contentFormat(input.tools);
        let cutAt: number | undefined;
        const normalized = input.messages.map((m: ChatMessageInput, i) => {
          const content = messageContent(m.content, format);
          if (!content.exact) cutAt ??= i;
          return { ...m, role: m.role ?? '', content: content.content };
        });
        // vLLM's conversation (the fields it keeps, tool calls with their arguments parsed; throws ChatTemplateRefusal
        // where vLLM refuses the chat), and the first tool call whose arguments jinja would print unlike Python.
        const conversation = vllmConversation(normalized, { argumentsRendering: this.argumentsRendering(input) });
        const inexactCall = conversation.inexact !== undefined && (cutAt === undefined || conversation.inexact.message < cutAt) ? conversation.inexact : undefined;
        // What kvroute cannot render as vLLM does renders as a marker the ids are cut at. Media: the first message
        // carrying it gets the marker as its content; vLLM puts an image or audio part's placeholder tokens where kvroute
        // cannot reproduce them (before the message's text in the "string" content format, `_get_full_multimodal_text_prompt`
        // in vllm/entrypoints/chat_utils.py @ v0.10.0; where the template puts the part in the "openai" one), and hashes
        // the media into the blocks from there on. Tool-call arguments jinja would print unlike Python: that call's
        // arguments become the marker, so the message's content and reasoning before them still render as vLLM's do
        // (Qwen3's template moves a <think> block of the content in front of it), and the ids end at the start of the
        // marker's line. Both markers stay when both occur (a later message's rendering can change an earlier one's:
        // Qwen3 finds the last user query by content); the ids end at the first. Later calls' arguments are emptied, so
        // a value the template cannot print (a null through `| string`) cannot fail the render after the cut.
        // Mappings in the tools, documents and kwargs' values with array-index keys ("10" before "zeta" in JavaScript,
        // in the JSON's order in vLLM's dicts: `markReorderedMappings`) become the arguments' marker mapping, which the
        // ids end before as well. The kwargs themselves are the template's variables, whose order nothing prints.
        const reorderedMarker = { [ARGUMENTS_CUT]: ARGUMENTS_CUT };
        let reordered = false;
        const inPythonOrder = <T>(value: T): T => {
          const marked = markReorderedMappings(value, reorderedMarker);
          reordered ||= marked.marked;
          return marked.value as T;
        };
        const templateTools = inPythonOrder(tools);
        const documents = inPythonOrder(input.documents);
        const kwargs = input.chatTemplateKwargs && Object.fromEntries(Object.entries(input.chatTemplateKwargs).map(([k, v]) => [k, inPythonOrder(v)]));
        const exact = cutAt === undefined && inexactCall === undefined && !reordered;
        const messages: TemplateMessage[] = conversation.messages.map((m, i) => {
          let message: TemplateMessage = m;
          if (i === cutAt) message = { ...message, content: format === 'openai' ? [{ type: 'text', text: MEDIA_CUT }] : MEDIA_CUT };
          if (inexactCall !== undefined && i >= inexactCall.message && m.tool_calls !== undefined) {
            const calls = m.tool_calls.map((call, j) => {
              if (i === inexactCall.message && j < inexactCall.toolCall) return call;
              // A mapping, so a template that iterates `arguments | items` prints the marker too.
              const args = i === inexactCall.message && j === inexactCall.toolCall ? { [ARGUMENTS_CUT]: ARGUMENTS_CUT } : {};
              return { ...call, function: { ...call.function, arguments: args } };
            });
            message = { ...message, tool_calls: calls };
          }
          return message;
        });
        let text = this.renderChat(messages, {
          addGenerationPrompt: input.addGenerationPrompt,
          continueFinalMessage: input.continueFinalMessage,
          ...(templateTools ? { tools: templateTools } : {}),
          ...(kwargs ? { chatTemplateKwargs: kwargs } : {}),
          ...(documents ? { documents } : {}),
          ...(input.chatTemplate !== undefined ? { chatTemplate: input.chatTemplate } : {}),
        });
        if (!exact) {
          const media = text.indexOf(MEDIA_CUT);
          const args = text.indexOf(ARGUMENTS_CUT);
          // A template that never renders that message's content (or transforms it) leaves no place to cut at: where
          // the message starts, and so which prefix is the pods', is unknown, and keying the whole text would key blocks
          // no pod holds (vLLM puts the media placeholders in that content, so its prompt differs from the message on).
          // Nothing is keyed; the chat stays inexact.
          if (media < 0 && args < 0) return { ids: new Uint32Array(0), exact };
          // Inside a tool call the cut falls mid-line, where the tokens of what follows in vLLM's text may merge with
          // the last characters here (`: ` and `{` are one token): back to the last place no token spans.
          text = args >= 0 && (media < 0 || args < media) ? text.slice(0, this.safeCutBefore(text, args)) : text.slice(0, media);
        }
        // ChatCompletionRequest's `add_special_tokens` (false unless the request sets it): serving_chat.py @ v0.10.0
        // tokenizes the rendered prompt with it.
        return { ids: await encoded(text, input.addSpecialTokens ?? false), exact };
      }
    }
  }

  /**
   * The last position before `cut` where no token can span, whatever text follows `cut`: after a special token, or
   * after a run of line breaks followed by a character that is not whitespace nor a token with lstrip (the cuts
   * `encode` splits at).
   */
  private safeCutBefore(text: string, cut: number): number {
    const head = text.slice(0, cut);
    let best = 0;
    for (const end of lineBreakCuts(head, this.lstripStart)) best = Math.max(best, end);
    if (this.specialSplit) {
      const global = new RegExp(this.specialSplit.source, 'g');
      for (const m of head.matchAll(global)) best = Math.max(best, m.index! + m[0].length);
    }
    return best;
  }

  /**
   * The tokens the post-processor adds around a single sequence encoded with special tokens, in front (a BOS for
   * Llama-style models) and behind (an EOS, BERT's [SEP]); none for Qwen3. Read off a probe text encoded with and
   * without them (`postProcessorAddsOf`).
   */
  async addedTokens(): Promise<{ readonly front: Uint32Array; readonly back: Uint32Array }> {
    this.added ??= (async () => {
      const [withSpecial, without] = await Promise.all([this.encodeWhole(ADDED_PROBE, true), this.encodeWhole(ADDED_PROBE, false)]);
      const { front, back } = postProcessorAddsOf(withSpecial, without);
      return { front: withSpecial.slice(0, front), back: withSpecial.slice(withSpecial.length - back) };
    })();
    return this.added;
  }
}
