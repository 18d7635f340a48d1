"use strict";
var __createBinding = (this && this.__createBinding) || (Object.create ? (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    var desc = Object.getOwnPropertyDescriptor(m, k);
    if (!desc || ("get" in desc ? !m.__esModule : desc.writable || desc.configurable)) {
      desc = { enumerable: true, get: function() { return m[k]; } };
    }
    Object.defineProperty(o, k2, desc);
}) : (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    o[k2] = m[k];
}));
var __setModuleDefault = (this && this.__setModuleDefault) || (Object.create ? (function(o, v) {
    Object.defineProperty(o, "default", { enumerable: true, value: v });
}) : function(o, v) {
    o["default"] = v;
});
var __importStar = (this && this.__importStar) || (function () {
    var ownKeys = function(o) {
        ownKeys = Object.getOwnPropertyNames || function (o) {
            var ar = [];
            for (var k in o) if (Object.prototype.hasOwnProperty.call(o, k)) ar[ar.length] = k;
            return ar;
        };
        return ownKeys(o);
    };
    return function (mod) {
        if (mod && mod.__esModule) return mod;
        var result = {};
        if (mod != null) for (var k = ownKeys(mod), i = 0; i < k.length; i++) if (k[i] !== "default") __createBinding(result, mod, k[i]);
        __setModuleDefault(result, mod);
        return result;
    };
})();
Object.defineProperty(exports, "__esModule", { value: true });
exports.ModelTokenizer = void 0;
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
 * is followed by a non-space character (every pre-tokenizer pattern that consumes a line break ends at it there, so
 * the pre-tokens, and with them the BPE merges, on both sides are those of the whole text; checked against unsplit
 * encoding in the tests). A conversation's next turn, or a RAG prompt over a known document, then only pays for
 * its new paragraphs.
 */
const lru_cache_1 = require("lru-cache");
const fs = __importStar(require("node:fs"));
const tokenizers_1 = require("tokenizers");
// The package is "type": "module" with a `require` condition pointing at a CommonJS build; TypeScript lets a CommonJS
// file use its typings only as types, so the value comes from require.
const { Template } = require('@huggingface/jinja');
function tokenText(t) {
    if (t === null || t === undefined)
        return '';
    return typeof t === 'string' ? t : t.content;
}
/** The safe cut: after a run of line breaks followed by a character that is not whitespace. */
const SAFE_CUT = /[\r\n]+(?=[^\s])/g;
function piecesOf(segment) {
    const pieces = [];
    let start = 0;
    for (const m of segment.matchAll(SAFE_CUT)) {
        const end = m.index + m[0].length;
        pieces.push(segment.slice(start, end));
        start = end;
    }
    if (start < segment.length)
        pieces.push(segment.slice(start));
    return pieces;
}
/** vLLM's "string" content format: text parts joined with "\n", a null content as "". */
function messageContent(content) {
    if (typeof content === 'string')
        return { text: content, exact: true };
    if (content === null || content === undefined)
        return { text: '', exact: true };
    if (!Array.isArray(content))
        return { text: String(content), exact: false };
    const texts = [];
    let exact = true;
    for (const part of content) {
        if (typeof part === 'string')
            texts.push(part);
        else if (part && typeof part === 'object' && typeof part.text === 'string')
            texts.push(part.text);
        else
            exact = false;
    }
    return { text: texts.join('\n'), exact };
}
class ModelTokenizer {
    tokenizer;
    config;
    vocabSize;
    template;
    specialIds;
    specialSplit;
    memo;
    addedPrefix;
    constructor(tokenizer, config, addedTokens, memoChars) {
        this.tokenizer = tokenizer;
        this.config = config;
        this.vocabSize = tokenizer.getVocabSize(true);
        const chatTemplate = typeof config.chat_template === 'string'
            ? config.chat_template
            : config.chat_template?.find((t) => t.name === 'default')?.template;
        if (chatTemplate !== undefined)
            this.template = new Template(chatTemplate);
        // Only special tokens without lstrip/rstrip can be cut out verbatim; those flags make the tokenizer swallow
        // neighbouring whitespace.
        const splittable = addedTokens.filter((t) => t.special && !t.lstrip && !t.rstrip);
        this.specialIds = new Map(splittable.map((t) => [t.content, t.id]));
        if (splittable.length > 0) {
            const alternatives = splittable.map((t) => t.content).sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
            this.specialSplit = new RegExp(`(${alternatives.join('|')})`);
        }
        this.memo = new lru_cache_1.LRUCache({ maxSize: memoChars, sizeCalculation: (_ids, key) => Math.max(1, key.length) });
    }
    /**
     * Loads a tokenizer (the JSON parse and table build take ~0.4 s for Qwen3; share the instance).
     * @param memoChars characters of text whose token ids are remembered. @default 32 Mi
     */
    static load(files, memoChars = 32 * 1024 * 1024) {
        const config = JSON.parse(fs.readFileSync(files.tokenizerConfigJson, 'utf8'));
        const added = JSON.parse(fs.readFileSync(files.tokenizerJson, 'utf8')).added_tokens ?? [];
        return new ModelTokenizer(tokenizers_1.Tokenizer.fromFile(files.tokenizerJson), config, added, memoChars);
    }
    /**
     * Token ids of `text`. `addSpecialTokens` mirrors vLLM: true for /v1/completions prompts (a BOS where the model has
     * one), false for rendered chat prompts, whose template placed the special tokens.
     */
    async encode(text, addSpecialTokens = false) {
        const pieces = [];
        const segments = this.specialSplit ? text.split(this.specialSplit) : [text];
        for (const segment of segments) {
            if (segment.length === 0)
                continue;
            const special = this.specialIds.get(segment);
            if (special !== undefined)
                pieces.push({ text: segment, special });
            else
                for (const piece of piecesOf(segment))
                    pieces.push({ text: piece });
        }
        // Ids of this call's pieces, from the memo or encoded now; held here so a prompt larger than the memo still works.
        const known = new Map();
        const missing = [];
        for (const p of pieces) {
            if (p.special !== undefined || known.has(p.text))
                continue;
            const hit = this.memo.get(p.text);
            if (hit)
                known.set(p.text, hit);
            else if (!missing.includes(p.text))
                missing.push(p.text);
        }
        if (missing.length > 0) {
            // One call: the binding encodes a batch in parallel on its own threads.
            const encodings = await this.tokenizer.encodeBatch(missing, { addSpecialTokens: false });
            missing.forEach((piece, i) => {
                const ids = Uint32Array.from(encodings[i].getIds());
                known.set(piece, ids);
                this.memo.set(piece, ids);
            });
        }
        const prefix = addSpecialTokens ? await this.specialPrefix() : new Uint32Array(0);
        const parts = pieces.map((p) => (p.special !== undefined ? Uint32Array.of(p.special) : known.get(p.text)));
        const out = new Uint32Array(prefix.length + parts.reduce((n, p) => n + p.length, 0));
        out.set(prefix, 0);
        let at = prefix.length;
        for (const p of parts) {
            out.set(p, at);
            at += p.length;
        }
        return out;
    }
    /** Plain, unsplit encoding: the reference the memoized path must equal. */
    async encodeWhole(text, addSpecialTokens = false) {
        return Uint32Array.from((await this.tokenizer.encode(text, undefined, { addSpecialTokens })).getIds());
    }
    /** Renders the chat template as transformers' `apply_chat_template` does for vLLM. */
    renderChat(messages, options = {}) {
        if (!this.template)
            throw new Error('this tokenizer has no chat template');
        const continueFinal = options.continueFinalMessage ?? false;
        const context = {
            // transformers passes the special-tokens map; a template may reference any of them.
            bos_token: tokenText(this.config.bos_token),
            eos_token: tokenText(this.config.eos_token),
            pad_token: tokenText(this.config.pad_token),
            unk_token: tokenText(this.config.unk_token),
            ...(options.chatTemplateKwargs ?? {}),
            messages,
            add_generation_prompt: continueFinal ? false : options.addGenerationPrompt ?? true,
        };
        if (options.tools !== undefined)
            context.tools = options.tools;
        const rendered = this.template.render(context);
        if (!continueFinal)
            return rendered;
        // transformers cuts the rendering right after the final message's content, leaving the turn open.
        const final = messages[messages.length - 1]?.content ?? '';
        const at = rendered.lastIndexOf(final.trim());
        return at < 0 ? rendered : rendered.slice(0, at + final.trim().length);
    }
    /** The ids vLLM computes for a request's input: completions encode the prompt, chats render then encode. */
    async promptTokens(input) {
        switch (input.kind) {
            case 'text':
                return { ids: await this.encode(input.text, true), exact: true };
            case 'tokens':
                return { ids: Uint32Array.from(input.tokens), exact: true };
            case 'none':
                return undefined;
            case 'chat': {
                let exact = true;
                const messages = input.messages.map((m) => {
                    const content = messageContent(m.content);
                    exact &&= content.exact;
                    return { ...m, role: m.role, content: content.text };
                });
                const text = this.renderChat(messages, {
                    addGenerationPrompt: input.addGenerationPrompt,
                    continueFinalMessage: input.continueFinalMessage,
                    ...(input.tools ? { tools: input.tools } : {}),
                    ...(input.chatTemplateKwargs ? { chatTemplateKwargs: input.chatTemplateKwargs } : {}),
                });
                return { ids: await this.encode(text, false), exact };
            }
        }
    }
    /** What the post-processor adds in front of a single sequence (a BOS for Llama-style models, nothing for Qwen3). */
    specialPrefix() {
        this.addedPrefix ??= this.encodeWhole('', true);
        return this.addedPrefix;
    }
}
exports.ModelTokenizer = ModelTokenizer;
//# sourceMappingURL=model-tokenizer.js.map