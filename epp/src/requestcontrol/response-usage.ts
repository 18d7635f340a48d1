/**
 * What a response body tells request control, as GIE reads it (v1.5.0
 * `pkg/epp/framework/plugins/requesthandling/parsers/openai/openai.go` ParseResponse, `pkg/epp/handlers/response.go`):
 * its size, and the token usage an OpenAI-style server reports: in the JSON body's `usage`, or, for a
 * `text/event-stream` response, in the `data: ` event carrying `usage` (vLLM sends it with
 * `stream_options.include_usage`), or the Responses API's `response.completed` event. Field names as upstream reads
 * them: `prompt_tokens`/`completion_tokens`, or the Responses API's `input_tokens`/`output_tokens`; cached prompt
 * tokens as each form's openai parser reads them (`CACHED_TOKENS_DETAILS`).
 *
 * A response to a request `anthropic-parser` read is read as llm-d-router v0.10.0's parser reads it
 * (`parsers/anthropic/anthropic.go` ParseResponse, extractUsage, extractUsageStreaming): the JSON body's `usage`
 * (`input_tokens`, `output_tokens`, `cache_read_input_tokens` as the cached prompt tokens), or the event stream's
 * `message_start` (`message.usage`: input and cached tokens) and `message_delta` (`usage.output_tokens`).
 *
 * Chunks are read as they pass and never held whole: an event stream keeps only its unfinished last line, a JSON body
 * is kept up to `MAX_JSON_BODY_BYTES` (a larger one is counted but its usage not read).
 */

import type { OpenAiParserForm } from './request-parsers';

/** Whose usage fields a response carries: an OpenAI-style server's, or the Anthropic Messages API's. */
export type UsageFormat = 'openai' | 'anthropic';

/** Token usage of one response. */
export interface ResponseUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Present when the server reported it. */
  readonly cachedPromptTokens?: number;
}

/** A non-streamed body larger than this is not parsed for usage (an embeddings response can be megabytes). */
export const MAX_JSON_BODY_BYTES = 4 * 1024 * 1024;
/** An event-stream line longer than this (no usage event is) is skipped rather than buffered. */
const MAX_SSE_LINE_BYTES = 256 * 1024;

/** Most lines end in the chunk they began in: no chunk end to try (shared, so reading a chunk allocates none). */
const NO_CUTS: readonly number[] = [];

export class ResponseObserver {
  /** Response body bytes seen. */
  bytes = 0;
  usage: ResponseUsage | undefined;
  private readonly parts: Buffer[] = [];
  private partBytes = 0;
  private overflow = false;
  /**
   * The unfinished last line, as the chunks that brought it: joined only when its end arrives, so a line cut into k
   * chunks costs O(its length), not a join and a search of all of it at each chunk (O(length × k): a 200 KB line, as
   * vLLM streams a completion's `echo`ed prompt, took 5 ms of the EPP's thread in 16 KiB chunks, 70 ms in 1 KiB ones).
   * GIE reads each chunk on its own, so each end between these parts may end a line (see `readLine`).
   */
  private pendingParts: string[] = [];
  private pendingLength = 0;
  private skippingLine = false;

  constructor(
    readonly streaming: boolean,
    readonly format: UsageFormat = 'openai',
    /** Whose openai parser reads an `openai` usage: the config's form (GIE's or llm-d's). */
    readonly form: OpenAiParserForm = 'gie',
  ) {}

  /** Reads one chunk; at `endOfStream` the usage is final. */
  push(chunk: Buffer, endOfStream: boolean): void {
    this.bytes += chunk.length;
    if (this.streaming) {
      this.readEvents(chunk.toString('utf8'), endOfStream);
      return;
    }
    if (!this.overflow) {
      if (this.partBytes + chunk.length > MAX_JSON_BODY_BYTES) {
        this.overflow = true;
        this.parts.length = 0;
      } else if (chunk.length > 0) {
        this.parts.push(Buffer.from(chunk));
        this.partBytes += chunk.length;
      }
    }
    if (endOfStream && !this.overflow && this.partBytes > 0) {
      const body = parseJson(Buffer.concat(this.parts, this.partBytes).toString('utf8'));
      this.usage = this.format === 'anthropic' ? anthropicUsageOf(body) : usageOf(body, this.form);
      this.parts.length = 0;
    }
  }

  private readEvents(text: string, endOfStream: boolean): void {
    if (!endOfStream && !text.includes('\n')) {
      // Still inside the line: kept as a piece (or dropped, past the longest line read).
      if (this.skippingLine || text.length === 0) return;
      this.pendingParts.push(text);
      this.pendingLength += text.length;
      if (this.pendingLength > MAX_SSE_LINE_BYTES) {
        this.skippingLine = true;
        this.pendingParts = [];
        this.pendingLength = 0;
      }
      return;
    }
    // Chunk ends inside the first line (the one the pending parts began): each a possible line end, tried when the
    // joined line is not an event.
    const parts = this.pendingParts;
    let cuts: readonly number[] = NO_CUTS;
    if (parts.length > 0) {
      const ends: number[] = [];
      let end = 0;
      for (const part of parts) ends.push((end += part.length));
      cuts = ends;
    }
    let data = parts.length === 0 ? text : parts.join('') + text;
    this.pendingParts = [];
    this.pendingLength = 0;
    for (;;) {
      const nl = data.indexOf('\n');
      if (nl < 0) break;
      const line = data.slice(0, nl);
      data = data.slice(nl + 1);
      if (this.skippingLine) {
        this.skippingLine = false;
        cuts = NO_CUTS;
        continue;
      }
      this.readLine(line, cuts);
      cuts = NO_CUTS;
    }
    if (endOfStream) {
      if (!this.skippingLine) this.readLine(data, cuts);
      return;
    }
    if (data.length > MAX_SSE_LINE_BYTES) {
      this.skippingLine = true;
    } else if (!this.skippingLine && data.length > 0) {
      // What is left follows this chunk's last line end, so no chunk ends inside it yet (`cuts` is spent).
      this.pendingParts = [data];
      this.pendingLength = data.length;
    }
  }

  /**
   * One event-stream line. A line joined across chunks (`cuts`) that is not an event is read again as the pieces the
   * chunks ended, as GIE v1.5.0 does (openai.go extractUsageStreaming splits each chunk at its newlines, so a chunk
   * ending without one ends its line): `data: {}` then `data: {"usage":…}` in the next chunk (its hermetic test's
   * stream) gives the usage, where the joined `data: {}data: {"usage":…}` parses as nothing. A line really cut by a
   * chunk is an event joined, and read as one.
   */
  private readLine(raw: string, cuts: readonly number[] = NO_CUTS): void {
    if (this.readEvent(raw) || cuts.length === 0) return;
    let from = 0;
    for (const cut of [...cuts, raw.length]) {
      if (cut > from) this.readEvent(raw.slice(from, cut));
      from = cut;
    }
  }

  /** Reads a `data:` line carrying usage; false when the line is a `data:` line with usage that is not JSON. */
  private readEvent(raw: string): boolean {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (!line.startsWith('data:') || !line.includes('"usage"')) return true;
    const event = parseJson(line.slice(5).trim());
    if (event === undefined) return false;
    if (this.format === 'anthropic') {
      this.usage = anthropicEventUsage(event, this.usage);
      return true;
    }
    // Responses API: `{"type":"response.completed","response":{"usage":{...}}}`.
    const nested = event.type === 'response.completed' && isObject(event.response) ? usageOf(event.response, this.form) : undefined;
    const usage = nested ?? usageOf(event, this.form);
    if (usage !== undefined) this.usage = usage;
    return true;
  }
}

type JsonObject = { [key: string]: unknown };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(text: string): JsonObject | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined;
}

/**
 * Where each form's openai parser reads the cached prompt tokens (`cached_tokens`), in order, a later field that has them
 * winning. llm-d-router v0.10.0 (`parsers/openai/openai.go` extractUsage, which `vllmhttp-parser` delegates to):
 * `prompt_tokens_details`, then the Responses API's `input_tokens_details` (vLLM's `/v1/responses` reports it).
 * GIE v1.5.0 reads `prompt_token_details` alone (its extractUsage); kvroute's GIE form also reads OpenAI's and vLLM's
 * `prompt_tokens_details`, ahead of it (epp/README.md, "Differences from GIE").
 */
const CACHED_TOKENS_DETAILS: Readonly<Record<OpenAiParserForm, readonly string[]>> = {
  llmd: ['prompt_tokens_details', 'input_tokens_details'],
  gie: ['prompt_token_details', 'prompt_tokens_details'],
};

function usageOf(body: JsonObject | undefined, form: OpenAiParserForm): ResponseUsage | undefined {
  const u = body?.usage;
  if (!isObject(u)) return undefined;
  const prompt = count(u.prompt_tokens) ?? count(u.input_tokens);
  const completion = count(u.completion_tokens) ?? count(u.output_tokens);
  if (prompt === undefined && completion === undefined) return undefined;
  let cached: number | undefined;
  for (const field of CACHED_TOKENS_DETAILS[form]) {
    const details = u[field];
    cached = (isObject(details) ? count(details.cached_tokens) : undefined) ?? cached;
  }
  return { promptTokens: prompt ?? 0, completionTokens: completion ?? 0, ...(cached !== undefined ? { cachedPromptTokens: cached } : {}) };
}

/** anthropic.go extractUsage @ llm-d-router v0.10.0 (L161-188): a JSON Messages response's `usage`. */
function anthropicUsageOf(body: JsonObject | undefined): ResponseUsage | undefined {
  const u = body?.usage;
  if (!isObject(u)) return undefined;
  const cached = count(u.cache_read_input_tokens);
  return { promptTokens: count(u.input_tokens) ?? 0, completionTokens: count(u.output_tokens) ?? 0, ...(cached !== undefined ? { cachedPromptTokens: cached } : {}) };
}

/**
 * anthropic.go extractUsageStreaming @ llm-d-router v0.10.0 (L205-258): `message_start` carries the input (and cached)
 * tokens in `message.usage`, `message_delta` the output tokens in `usage`. Upstream reads each chunk on its own and
 * records what each one carries; the two events come in separate chunks, so the counts it records are the input tokens
 * of the one and the output tokens of the other, which is the usage kept here across the stream.
 */
function anthropicEventUsage(event: JsonObject, sofar: ResponseUsage | undefined): ResponseUsage | undefined {
  if (event.type === 'message_start' && isObject(event.message) && isObject(event.message.usage)) {
    const u = event.message.usage;
    const cached = count(u.cache_read_input_tokens) ?? sofar?.cachedPromptTokens;
    return { promptTokens: count(u.input_tokens) ?? sofar?.promptTokens ?? 0, completionTokens: sofar?.completionTokens ?? 0, ...(cached !== undefined ? { cachedPromptTokens: cached } : {}) };
  }
  if (event.type === 'message_delta' && isObject(event.usage)) {
    const out = count(event.usage.output_tokens);
    const cached = sofar?.cachedPromptTokens;
    return { promptTokens: sofar?.promptTokens ?? 0, completionTokens: out ?? sofar?.completionTokens ?? 0, ...(cached !== undefined ? { cachedPromptTokens: cached } : {}) };
  }
  return sofar;
}
