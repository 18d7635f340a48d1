import { seededRandom } from '@kvroute/testkit';
import { startSimulator, type Simulator } from '../src/server';
import { http, parseSse } from './helpers';

/**
 * A differential test of the simulator's OpenAI API against a reference model of vLLM v0.10.0's request handling for
 * the fields the EPP and the benchmarks read: which request is refused (status, error type and message), and for the
 * rest the response's id/object/model, the choices' finish_reason, `usage`, and the order and content of stream chunks.
 *
 * The reference, in the order vLLM 0.10.0 runs it:
 * 1. FastAPI/pydantic validation (api_server.py validation_exception_handler: 400, type "Bad Request"):
 *    `validate_stream_options` (protocol.py) refuses a non-empty `stream_options` without `stream: true`, and
 *    `check_logprobs` a chat's `top_logprobs` > 0 without `logprobs` and a completion's negative `logprobs`; pydantic
 *    runs mode="before" validators last-defined first, so chat's check_logprobs comes first, completions' second.
 * 2. `_check_model` (serving_engine.py): a model that is neither served nor empty is a 404 NotFoundError,
 *    "The model `X` does not exist.".
 * 3. `_preprocess_completion` / `_preprocess_chat` tokenize every prompt of the request (a completion batch: all of
 *    them) and `_validate_input` checks each against max_model_len with `max_completion_tokens or max_tokens` (chat)
 *    or `max_tokens` (completions, default 16, null = none): a BadRequestError whose message on chat ends in " None"
 *    (serving_chat.py answers `f"{e} {e.__cause__}"`).
 * 4. Then, prompt by prompt, `to_sampling_params(get_max_tokens(...))`: max_tokens = min(room left, the request's),
 *    and `SamplingParams.__post_init__` / `_verify_args` / `_verify_greedy_sampling` (sampling_params.py): n >= 1,
 *    max_tokens >= 1, min_tokens <= max_tokens, n == 1 when greedy; a JSON 400 even when streaming.
 * 5. The reply: with max_tokens the filler runs to it (`length`); without (chat, or a completion's null) the
 *    simulator's --default-max-tokens stands in for EOS (`stop`), raised to min_tokens and capped by the room left
 *    (`length` when the room capped it, or with ignore_eos), as sim/README.md documents.
 *    Usage (serving_completion.py / serving_chat.py): each prompt's tokens once, the sum of every choice's tokens.
 *    Streams: chat sends each choice's role chunk first (`{role: "assistant", content: ""}`), then one chunk per
 *    token, the last with finish_reason; completions one chunk per token, each with `"usage": null` (dumped with
 *    exclude_unset=False); `stream_options` (even `{}`) with include_usage not false ends with a usage chunk with
 *    `choices: []`; continuous_usage_stats puts the usage so far on every chunk; `data: [DONE]` last.
 *
 * Token counts come from the simulator's /tokenize, which other tests check against Qwen3's tokenizer.
 */

const MODEL = 'Qwen/Qwen3-0.6B';
const ALIAS = 'qwen-alias';
/** A --lora-modules adapter: a served model name of its own (serving_engine.py _check_model, _get_model_name). */
const LORA = 'sql-lora';
const MAX_MODEL_LEN = 160;
const DEFAULT_MAX_TOKENS = 16;

type Kind = 'chat' | 'completion';

/** The simulator's filler reply, token by token (read from a stream in beforeAll): the text the reference cuts. */
let FILLER: string[] = [];
/** Replies the reference ended at a stop string (per seed), so the draw is known to reach that rule. */
let stopHits = 0;

/**
 * A reply of `tokens` filler tokens under vLLM's stop-string rules (vllm/v1/engine/detokenizer.py @ v0.10.0,
 * BaseIncrementalDetokenizer.update, check_stop_strings, get_next_output_text): after each token past min_tokens, the
 * first stop string of the list found in the window that ends in the new text ends the reply, cut before it (after it
 * with include_stop_str_in_output); a stream holds back the last max(len(stop)) - 1 characters until the end.
 */
function stopped(tokens: number, stop: string[], minTokens: number, include: boolean): { tokens: number; text: string; deltas: string[]; stopReason: string | null } {
  let text = '';
  let cut: number | undefined;
  let stopReason: string | null = null;
  let k = 0;
  const texts: string[] = [];
  while (k < tokens) {
    const before = text.length;
    text += FILLER[k];
    texts.push(text);
    k++;
    if (stop.length > 0 && k > minTokens) {
      const hit = stop.map((st) => ({ st, at: text.indexOf(st, Math.max(0, before + 1 - st.length)) })).find((h) => h.at >= 0);
      if (hit !== undefined) {
        cut = include ? hit.at + hit.st.length : hit.at;
        stopReason = hit.st;
        break;
      }
    }
  }
  const full = cut === undefined ? text : text.slice(0, cut);
  const hold = include || stop.length === 0 ? 0 : Math.max(...stop.map((st) => st.length)) - 1;
  const deltas: string[] = [];
  let sent = 0;
  texts.forEach((t, i) => {
    const upTo = i === texts.length - 1 ? full.length : Math.min(full.length, Math.max(sent, t.length - hold));
    deltas.push(full.slice(sent, upTo));
    sent = upTo;
  });
  return { tokens: k, text: full, deltas, stopReason };
}

interface Outcome {
  status: number;
  /** An error's type and message, as the body has them. */
  error?: { type: string; message: string };
  /** A success: the fields the comparison reads. */
  ok?: {
    idPrefix: string;
    object: string;
    model: string;
    /** Per choice index: the number of tokens streamed or counted, and the finish reason. */
    choices: { index: number; finish: string | null; stopReason?: string | number | null; text?: string }[];
    usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
    /** Streams only: the per-choice chunk sequence summarised, the usage chunk, [DONE]. */
    stream?: { perChoice: Record<number, string[]>; usageChunk: unknown; done: boolean; continuous: boolean[] };
  };
}

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)];
}

function words(n: number, seed: number): string {
  const ws = ['cache', 'route', 'prefix', 'block', 'token', 'model', 'pod', 'queue'];
  return Array.from({ length: n }, (_, i) => ws[(i * 5 + seed) % ws.length]).join(' ');
}

function randomRequest(rnd: () => number, i: number): { kind: Kind; body: Record<string, unknown> } {
  const kind: Kind = rnd() < 0.5 ? 'chat' : 'completion';
  const body: Record<string, unknown> = {};
  const model = pick(rnd, [MODEL, MODEL, ALIAS, LORA, undefined, '', 'nope']);
  if (model !== undefined) body.model = model;
  // Prompt lengths from a few tokens to past the context, so every context-length branch is drawn.
  const len = () => pick(rnd, [2, 5, 20, 60, 120, 140, 150, 158, 170]);
  if (kind === 'chat') {
    body.messages = [{ role: 'user', content: words(len(), i) }];
  } else {
    body.prompt = rnd() < 0.2 ? [words(len(), i), words(len(), i + 1)] : words(len(), i);
  }
  const mt = pick(rnd, ['absent', 'absent', 'absent', 'null', 0, -1, 1, 3, 8, 24, 40, 155, '7']);
  if (mt === 'null') body.max_tokens = null;
  else if (mt !== 'absent') body.max_tokens = mt;
  if (kind === 'chat' && rnd() < 0.3) body.max_completion_tokens = pick(rnd, [0, 2, 12, 150]);
  if (rnd() < 0.35) body.min_tokens = pick(rnd, [0, 2, 10, 20, 30]);
  if (rnd() < 0.4) body.n = pick(rnd, [0, 1, 2, 3]);
  if (rnd() < 0.3) body.temperature = pick(rnd, [0, 0.7]);
  if (rnd() < 0.2) body.ignore_eos = true;
  // `stream` as sent: validate_stream_options reads its truthiness, the field its pydantic lax bool.
  if (rnd() < 0.55) body.stream = pick(rnd, [true, true, true, 'true', 1]);
  else if (rnd() < 0.25) body.stream = pick(rnd, [false, 0, 'false', '0']);
  if (rnd() < 0.3) {
    const k = pick(rnd, [0, 5, 21, 21]);
    if (kind === 'chat') Object.assign(body, { logprobs: true, top_logprobs: k });
    else body.logprobs = k;
  }
  // Completions' echo: not with logprobs (the merged prompt logprobs are not simulated: 501), and streamed only with
  // max_tokens 0 (a streamed echo that generates is not modelled here; see the report of this test's review).
  if (kind === 'completion' && body.logprobs === undefined && rnd() < 0.2 && (!laxStream(body.stream) || body.max_tokens === 0)) body.echo = true;
  // Stop strings drawn from the filler's own text (so they are met, across token boundaries too) and one never met;
  // not with echo, whose prompt text the reference would have to place before the cut.
  if (body.echo === undefined && rnd() < 0.5) {
    const text = FILLER.slice(0, 30).join('');
    const slice = () => {
      const at = Math.floor(rnd() * (text.length - 10));
      return text.slice(at, at + 1 + Math.floor(rnd() * 8));
    };
    const nested = (): string[] => {
      // A stop string and one of its own suffixes end at the same token: which one wins is the list's order.
      let whole = slice();
      let suffix = '';
      for (let tries = 0; tries < 50; tries++) {
        whole = slice();
        if (whole.length < 2) continue;
        suffix = whole.slice(1 + Math.floor(rnd() * (whole.length - 1)));
        // Both first met at the same token (the suffix not met earlier on its own).
        if (text.indexOf(suffix) + suffix.length === text.indexOf(whole) + whole.length) break;
      }
      return rnd() < 0.5 ? [whole, suffix] : [suffix, whole];
    };
    const r = rnd();
    body.stop = r < 0.2 ? slice() : r < 0.5 ? nested() : Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => (rnd() < 0.15 ? 'zzz' : slice()));
    if (rnd() < 0.3) body.include_stop_str_in_output = true;
  }
  if (rnd() < 0.5) {
    body.stream_options = pick(rnd, [{}, { include_usage: true }, { include_usage: false }, { include_usage: true, continuous_usage_stats: true }, { continuous_usage_stats: true }, { include_usage: null }]);
  }
  // check_logprobs' own refusals: a chat's top_logprobs without logprobs, a completion's negative logprobs (every
  // twelfth request, drawing nothing, so the other draws stay as they were).
  if (i % 12 === 10) {
    if (kind === 'chat') {
      delete body.logprobs;
      body.top_logprobs = i % 24 === 10 ? 2 : 0;
    } else {
      body.logprobs = -1;
    }
  }
  return { kind, body };
}

/** Python's truthiness of a JSON value as sent. */
function pyTruthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** pydantic's lax bool for the values the generator sends. */
function laxStream(v: unknown): boolean {
  return v === true || v === 1 || v === 'true';
}

function laxInt(v: unknown): number {
  return typeof v === 'string' ? Number(v) : (v as number);
}

/** The reference model: vLLM v0.10.0 as the simulator stands in for it (see the comment above). */
function reference(kind: Kind, body: Record<string, unknown>, promptTokens: number[]): Outcome {
  const stream = laxStream(body.stream);
  const so = body.stream_options as Record<string, unknown> | undefined;
  // Step 1's mode="before" validators run last-defined first (pydantic v2 wraps each around the previous one):
  // ChatCompletionRequest's check_logprobs before its validate_stream_options, CompletionRequest's after it.
  const checkLogprobs = (): Outcome | undefined => {
    const refuse = (message: string): Outcome => ({ status: 400, error: { type: 'Bad Request', message } });
    if (kind === 'chat') {
      const top = body.top_logprobs as number | undefined;
      if (top !== undefined && top > 0 && !pyTruthy(body.logprobs)) return refuse('when using `top_logprobs`, `logprobs` must be set to true.');
    } else if (typeof body.logprobs === 'number' && body.logprobs < 0) {
      return refuse('`logprobs` must be a positive value.');
    }
    return undefined;
  };
  const chatLogprobs = kind === 'chat' ? checkLogprobs() : undefined;
  if (chatLogprobs !== undefined) return chatLogprobs;
  if (pyTruthy(so) && !pyTruthy(body.stream)) {
    return { status: 400, error: { type: 'Bad Request', message: 'Stream options can only be defined when `stream=True`.' } };
  }
  const completionLogprobs = kind === 'completion' ? checkLogprobs() : undefined;
  if (completionLogprobs !== undefined) return completionLogprobs;
  const model = body.model as string | undefined;
  if (model !== undefined && model !== '' && model !== MODEL && model !== ALIAS && model !== LORA) {
    return { status: 404, error: { type: 'NotFoundError', message: `The model \`${model}\` does not exist.` } };
  }
  const bad = (message: string): Outcome => ({ status: 400, error: { type: 'BadRequestError', message } });
  let maxTokens: number | undefined;
  if (kind === 'chat') {
    // protocol.py ChatCompletionRequest.max_tokens has no default; `max_completion_tokens or max_tokens`.
    const mct = body.max_completion_tokens === undefined || body.max_completion_tokens === null ? undefined : laxInt(body.max_completion_tokens);
    const mtRaw = body.max_tokens === undefined || body.max_tokens === null ? undefined : laxInt(body.max_tokens);
    maxTokens = mct || mtRaw;
  } else {
    maxTokens = body.max_tokens === undefined ? 16 : body.max_tokens === null ? undefined : laxInt(body.max_tokens);
  }
  // Step 3: every prompt's context check before any sampling parameter.
  for (const n of promptTokens) {
    let msg: string | undefined;
    if (maxTokens === undefined) {
      if (n >= MAX_MODEL_LEN) msg = `This model's maximum context length is ${MAX_MODEL_LEN} tokens. However, you requested ${n} tokens in the messages, Please reduce the length of the messages.`;
    } else if (n + maxTokens > MAX_MODEL_LEN) {
      msg = `This model's maximum context length is ${MAX_MODEL_LEN} tokens. However, you requested ${maxTokens + n} tokens (${n} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`;
    }
    if (msg !== undefined) return bad(kind === 'chat' ? `${msg} None` : msg);
  }
  const n = body.n === undefined ? 1 : laxInt(body.n);
  const minTokens = body.min_tokens === undefined ? 0 : laxInt(body.min_tokens);
  const temperature = body.temperature as number | undefined;
  const gens: { tokens: number; finish: string; text: string; deltas: string[]; stopReason: string | null }[] = [];
  const stopList = body.stop === undefined ? [] : typeof body.stop === 'string' ? [body.stop] : (body.stop as string[]);
  const prompts = kind === 'chat' ? [''] : typeof body.prompt === 'string' ? [body.prompt] : (body.prompt as string[]);
  for (const [pi, p] of promptTokens.entries()) {
    const room = MAX_MODEL_LEN - p;
    const param = Math.min(room, maxTokens ?? room);
    if (n < 1) return bad(`n must be at least 1, got ${n}.`);
    const echoOnly = body.echo === true && maxTokens === 0;
    if (!echoOnly && param < 1) return bad(`max_tokens must be at least 1, got ${param}.`);
    if (minTokens > (echoOnly ? 1 : param)) return bad(`min_tokens must be less than or equal to max_tokens=${echoOnly ? 1 : param}, got ${minTokens}.`);
    if (temperature !== undefined && temperature < 1e-5 && n > 1) return bad(`n must be 1 when using greedy sampling, got ${n}.`);
    // CompletionRequest.to_sampling_params: `echo_without_generation = self.echo and self.max_tokens == 0` asks the
    // engine for one token, which usage counts (the reply shows the prompt alone).
    const echo = body.echo === true ? prompts[pi] : '';
    if (body.echo === true && maxTokens === 0) {
      gens.push({ tokens: 1, finish: 'length', text: echo, deltas: [echo], stopReason: null });
      continue;
    }
    const budget = maxTokens !== undefined ? param : Math.min(room, Math.max(DEFAULT_MAX_TOKENS, minTokens));
    const finish = maxTokens !== undefined || body.ignore_eos === true || budget >= room ? 'length' : 'stop';
    const r = stopped(budget, stopList, minTokens, body.include_stop_str_in_output === true);
    r.deltas[0] = echo + r.deltas[0];
    if (r.stopReason !== null) stopHits++;
    gens.push({ tokens: r.tokens, finish: r.stopReason !== null ? 'stop' : finish, text: echo + r.text, deltas: r.deltas, stopReason: r.stopReason });
  }
  // The V1 processor (vllm/v1/engine/processor.py _validate_logprobs, max_logprobs 20) runs in AsyncLLM.add_request,
  // inside the generator the route iterates: a 400 before a non-streaming reply, an error event once a stream began.
  const k = kind === 'chat' ? (body.logprobs === true ? laxInt(body.top_logprobs) : undefined) : (body.logprobs as number | undefined);
  if (k !== undefined && k > 20) {
    const error = { type: 'BadRequestError', message: `Requested sample logprobs of ${k}, which is greater than max allowed: 20` };
    return stream ? { status: 200, error } : { status: 400, error };
  }
  const choices = promptTokens.flatMap((_, pi) =>
    Array.from({ length: n }, (_, j) => ({ index: pi * n + j, finish: gens[pi].finish, ...(stream ? {} : { stopReason: gens[pi].stopReason, text: gens[pi].text }) })),
  );
  const promptSum = promptTokens.reduce((a, b) => a + b, 0);
  const completionSum = gens.reduce((a, g) => a + g.tokens * n, 0);
  const usage = { prompt_tokens: promptSum, completion_tokens: completionSum, total_tokens: promptSum + completionSum };
  const ok: NonNullable<Outcome['ok']> = {
    idPrefix: kind === 'chat' ? 'chatcmpl-' : 'cmpl-',
    object: kind === 'chat' ? (stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion',
    model: model === undefined || model === '' ? MODEL : model,
    choices,
    usage: stream ? null : usage,
  };
  if (stream) {
    // StreamOptions.include_usage defaults to True; `if stream_options:` is true for any parsed StreamOptions.
    const includeUsage = so !== undefined && (so.include_usage === undefined ? true : so.include_usage === true);
    const continuous = includeUsage && so?.continuous_usage_stats === true;
    const perChoice: Record<number, string[]> = {};
    const cont: boolean[] = [];
    promptTokens.forEach((p, pi) => {
      for (let j = 0; j < n; j++) {
        const idx = pi * n + j;
        const seq: string[] = [];
        // Chat's role chunk, with usage so far (0 completion tokens) under continuous usage.
        if (kind === 'chat') seq.push(`role${continuous ? `:${p}/0` : ''}`);
        for (let k = 1; k <= gens[pi].tokens; k++) {
          const fin = k === gens[pi].tokens ? gens[pi].finish : '-';
          seq.push(`tok:${fin}${continuous ? `:${p}/${k}` : ''}:${JSON.stringify(gens[pi].deltas[k - 1])}`);
        }
        perChoice[idx] = seq;
      }
    });
    cont.push(continuous);
    ok.stream = { perChoice, usageChunk: includeUsage ? usage : undefined, done: true, continuous: cont };
  }
  return { status: 200, ok };
}

/**
 * The id and created of a body or chunk: `cmpl-` / `chatcmpl-` + random_uuid()'s 32 hex digits (no X-Request-Id
 * here), and `int(time.time())`.
 */
function checkIdCreated(kind: Kind, r: { id: unknown; created: unknown }): void {
  const re = kind === 'chat' ? /^chatcmpl-[0-9a-f]{32}$/ : /^cmpl-[0-9a-f]{32}$/;
  if (typeof r.id !== 'string' || !re.test(r.id)) throw new Error(`bad id ${String(r.id)}`);
  const now = Date.now() / 1000;
  if (!Number.isInteger(r.created) || Math.abs((r.created as number) - now) > 120) throw new Error(`bad created ${String(r.created)}`);
}

/** What the simulator answered, summarised as the reference model's outcome is. */
function observed(kind: Kind, body: Record<string, unknown>, status: number, text: string): Outcome {
  if (status !== 200) {
    const e = JSON.parse(text) as { type: string; message: string };
    return { status, error: { type: e.type, message: normaliseValidation(e.message) } };
  }
  if (!laxStream(body.stream)) {
    const r = JSON.parse(text);
    if (r.object === 'error') return { status, error: { type: r.type, message: r.message } };
    checkIdCreated(kind, r);
    return {
      status,
      ok: {
        idPrefix: r.id.startsWith('chatcmpl-') ? 'chatcmpl-' : r.id.startsWith('cmpl-') ? 'cmpl-' : r.id,
        object: r.object,
        model: r.model,
        choices: r.choices.map((c: any) => ({ index: c.index, finish: c.finish_reason, stopReason: c.stop_reason, text: kind === 'chat' ? c.message.content : c.text })),
        usage: r.usage === null ? null : { prompt_tokens: r.usage.prompt_tokens, completion_tokens: r.usage.completion_tokens, total_tokens: r.usage.total_tokens },
      },
    };
  }
  const { events, done } = parseSse(text);
  if (events.length > 0 && events[0].error !== undefined) {
    if (events.length !== 1 || !done) throw new Error('an error event not alone before [DONE]');
    return { status, error: { type: events[0].error.type, message: events[0].error.message } };
  }
  const perChoice: Record<number, string[]> = {};
  const finishes: Record<number, string | null> = {};
  let usageChunk: unknown;
  let sawContinuous = false;
  let id: string | undefined;
  let object: string | undefined;
  let model: string | undefined;
  let created: number | undefined;
  for (const ev of events) {
    checkIdCreated(kind, ev);
    created ??= ev.created;
    if (ev.created !== created) throw new Error('chunks with different created');
    id ??= ev.id;
    object ??= ev.object;
    model ??= ev.model;
    if (ev.id !== id || ev.object !== object || ev.model !== model) throw new Error(`a chunk's id/object/model differ: ${JSON.stringify(ev)}`);
    if (ev.choices.length === 0) {
      usageChunk = { prompt_tokens: ev.usage.prompt_tokens, completion_tokens: ev.usage.completion_tokens, total_tokens: ev.usage.total_tokens };
      if (ev.usage.prompt_tokens_details !== undefined) throw new Error('usage chunk has prompt_tokens_details');
      continue;
    }
    if (kind === 'completion' && !('usage' in ev)) throw new Error('completion chunk without a usage key');
    if (kind === 'chat' && 'usage' in ev && ev.usage === null) throw new Error('chat chunk with usage null');
    for (const c of ev.choices) {
      const u = ev.usage ? `:${ev.usage.prompt_tokens}/${ev.usage.completion_tokens}` : '';
      if (ev.usage) sawContinuous = true;
      if (ev.usage && ev.usage.total_tokens !== ev.usage.prompt_tokens + ev.usage.completion_tokens) throw new Error('bad total');
      const seq = (perChoice[c.index] ??= []);
      if (kind === 'chat' && c.delta?.role !== undefined) {
        if (c.delta.role !== 'assistant' || c.delta.content !== '') throw new Error(`role chunk ${JSON.stringify(c)}`);
        seq.push(`role${u}`);
        continue;
      }
      seq.push(`tok:${c.finish_reason ?? '-'}${u}:${JSON.stringify(kind === 'chat' ? c.delta.content : c.text)}`);
      finishes[c.index] = c.finish_reason;
    }
  }
  const choices = Object.keys(perChoice).map(Number).sort((a, b) => a - b).map((index) => ({ index, finish: finishes[index] ?? null }));
  return {
    status,
    ok: {
      idPrefix: id?.startsWith('chatcmpl-') ? 'chatcmpl-' : id?.startsWith('cmpl-') ? 'cmpl-' : String(id),
      object: String(object),
      model: String(model),
      choices,
      usage: null,
      stream: { perChoice, usageChunk, done, continuous: [sawContinuous] },
    },
  };
}

/** FastAPI's validation message is str() of pydantic's error list; the reference keeps the validator's own words. */
function normaliseValidation(message: string): string {
  const m = /'msg': 'Value error, ((?:[^'\\]|\\.)*)'/.exec(message);
  return m ? m[1] : message;
}

/** The reference's branches, as a request's outcome names it. */
function category(o: Outcome): string {
  if (o.error !== undefined) {
    const m = o.error.message;
    const what = m.startsWith('Stream options') ? 'stream-options' : m.startsWith('when using') || m.startsWith('`logprobs`') ? 'check-logprobs' : m.startsWith('The model') ? 'model' : m.startsWith("This model's maximum") ? 'context'
      : m.startsWith('Requested sample logprobs') ? 'logprobs' : 'sampling';
    return `${o.status}:${what}`;
  }
  const s = o.ok!.stream;
  if (s === undefined) return `200:${o.ok!.choices.some((c) => c.finish === 'stop') ? 'stop' : 'length'}`;
  return `200:stream${s.usageChunk !== undefined ? '+usage' : ''}${s.continuous[0] ? '+continuous' : ''}`;
}

const CATEGORIES = ['400:stream-options', '400:check-logprobs', '404:model', '400:context', '400:sampling', '400:logprobs', '200:logprobs', '200:stop', '200:length', '200:stream', '200:stream+usage', '200:stream+usage+continuous'];

describe('the OpenAI API against a reference model of vLLM v0.10.0 (seeded random requests over real HTTP)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1e6, servedModelNames: [MODEL, ALIAS], maxModelLen: MAX_MODEL_LEN, kvCacheBlocks: 64, defaultMaxTokens: DEFAULT_MAX_TOKENS, enableLora: true, maxLoras: 2, loraModules: [LORA] });
    const r = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: MAX_MODEL_LEN - 1, stream: true });
    FILLER = parseSse(r.text).events.map((e) => e.choices[0].text as string);
    expect(FILLER).toHaveLength(MAX_MODEL_LEN - 1);
  });
  afterAll(() => sim.close());

  const tokenCache = new Map<string, number>();
  async function promptTokens(kind: Kind, body: Record<string, unknown>): Promise<number[]> {
    const inputs: Record<string, unknown>[] =
      kind === 'chat' ? [{ messages: body.messages }] : (Array.isArray(body.prompt) ? (body.prompt as string[]) : [body.prompt as string]).map((p) => ({ prompt: p }));
    const out: number[] = [];
    for (const input of inputs) {
      const key = JSON.stringify(input);
      let n = tokenCache.get(key);
      if (n === undefined) {
        const r = await http(sim.url, 'POST', '/tokenize', { model: MODEL, ...input });
        expect(r.status).toBe(200);
        n = r.json<{ count: number }>().count;
        tokenCache.set(key, n);
      }
      out.push(n);
    }
    return out;
  }

  // serving_completion.py create_completion (stored copy 2d5f987, before v0.10.0): `_preprocess_completion` tokenizes and
  // `_validate_input` checks every prompt of a batch before the loop that builds each prompt's SamplingParams, so the
  // second prompt's context-length error wins over the first prompt's `n` or `max_tokens` refusal. The simulator
  // checked the batch prompt by prompt and answered the first prompt's sampling error.
  it('answers a batch with a prompt too long for the context with its context-length error before any sampling check', async () => {
    const long = words(158, 0);
    const [short, longTokens] = await promptTokens('completion', { prompt: ['model prefix', long] });
    expect(short).toBeLessThan(10);
    for (const extra of [{ n: 0 }, { min_tokens: 9 }, { n: 2, temperature: 0 }]) {
      const r = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: ['model prefix', long], max_tokens: 8, ...extra });
      expect([r.status, r.json().message]).toEqual([
        400,
        `This model's maximum context length is ${MAX_MODEL_LEN} tokens. However, you requested ${longTokens + 8} tokens (${longTokens} in the messages, 8 in the completion). Please reduce the length of the messages or completion.`,
      ]);
    }
  });

  // protocol.py @ v0.10.0 (and every stored copy before and after it): validate_stream_options and
  // check_generation_prompt are mode="before" model validators that read the body as sent, `data.get(...)` with
  // Python's truthiness, before any field is parsed. The simulator applied both to the parsed, defaulted values.
  describe('mode="before" validators read the raw body', () => {
    const messages = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'ok' }];
    const refused = (name: string) => new RegExp(`^\\[\\{'type': 'value_error', 'loc': \\('body',\\), 'msg': 'Value error, ${name}`);

    it('validate_stream_options: a stream given as a non-empty string that parses false is served without streaming', async () => {
      for (const [path, body] of [
        ['/v1/chat/completions', { messages }],
        ['/v1/completions', { prompt: 'hi' }],
      ] as const) {
        for (const stream of ['false', '0', 'off']) {
          const r = await http(sim.url, 'POST', path, { model: MODEL, ...body, max_tokens: 2, stream, stream_options: { include_usage: true } });
          expect([r.status, r.headers['content-type']]).toEqual([200, 'application/json']);
          expect(r.json().usage.completion_tokens).toBe(2);
        }
        // 0 and false are falsy as sent: refused, as before.
        for (const stream of [0, false]) {
          const r = await http(sim.url, 'POST', path, { model: MODEL, ...body, stream, stream_options: { include_usage: true } });
          expect([r.status, r.json().message]).toEqual([400, expect.stringMatching(refused('Stream options can only be defined when `stream=True`\\.'))]);
        }
      }
    });

    it('validate_stream_options: a truthy non-object stream_options without stream is the validator\'s error; with stream, StreamOptions\' model_type', async () => {
      const without = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hi', stream_options: 'x' });
      expect([without.status, without.json().message]).toEqual([400, expect.stringMatching(refused('Stream options can only be defined when `stream=True`\\.'))]);
      const streamed = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hi', stream: true, stream_options: 'x' });
      expect([streamed.status, streamed.json().message]).toEqual([
        400,
        "[{'type': 'model_type', 'loc': ('body', 'stream_options'), 'msg': 'Input should be a valid dictionary or instance of StreamOptions', 'input': 'x', 'ctx': {'class_name': 'StreamOptions'}}]",
      ]);
    });

    it('check_generation_prompt: continue_final_message alone passes it, and the chat template refuses the default add_generation_prompt', async () => {
      // apply_hf_chat_template re-raises transformers' ValueError, which serving_chat.py answers `f"{e} {e.__cause__}"`:
      // the message twice, as for the same pair given in chat_template_kwargs (api.test.ts).
      const r = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, continue_final_message: true, max_tokens: 2 });
      expect([r.status, r.json().type]).toEqual([400, 'BadRequestError']);
      expect(r.json().message).toMatch(/^continue_final_message and add_generation_prompt are not compatible\. .* continue_final_message and add_generation_prompt are not compatible\. /);
    });

    it('check_logprobs: a chat echo\'s implied prompt logprobs do not refuse a stream; stream and logprobs are read as sent', async () => {
      // to_sampling_params sets prompt_logprobs = top_logprobs for echo after validation; check_logprobs reads only
      // the body's own prompt_logprobs.
      const echoed = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, echo: true, stream: true, logprobs: true, top_logprobs: 2, max_tokens: 2 });
      expect(echoed.status).toBe(200);
      const { events, done } = parseSse(echoed.text);
      expect(done).toBe(true);
      expect(events.filter((e) => e.error !== undefined)).toEqual([]);
      expect(events.filter((e) => e.choices[0]?.finish_reason === 'length')).toHaveLength(1);
      // `data.get("stream") and prompt_logprobs > 0`: "false" is truthy as sent.
      for (const [path, body] of [['/v1/chat/completions', { messages }], ['/v1/completions', { prompt: 'hi' }]] as const) {
        const r = await http(sim.url, 'POST', path, { model: MODEL, ...body, stream: 'false', prompt_logprobs: 1, max_tokens: 2 });
        expect([r.status, r.json().message]).toEqual([400, expect.stringMatching(refused('`prompt_logprobs` are not available when `stream=True`\\.'))]);
      }
      // `top_logprobs > 0 and not data.get("logprobs")`: "false" is truthy as sent, and then parses False: no logprobs.
      const r = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, logprobs: 'false', top_logprobs: 2, max_tokens: 2 });
      expect([r.status, r.json().choices[0].logprobs]).toEqual([200, null]);
    });

    // Pydantic v2 wraps each mode="before" model validator around the previous one, so the last defined runs first, and
    // all of them before any field (protocol.py, stored copy 0052bed just after v0.10.0: ChatCompletionRequest defines
    // validate_stream_options, check_logprobs, check_guided_decoding_count, check_tool_usage, …; CompletionRequest
    // check_guided_decoding_count, check_logprobs, validate_stream_options, validate_prompt_and_prompt_embeds, …).
    it('check_logprobs runs in its place among the validators, before any field, on the values as sent', async () => {
      const chat = (extra: Record<string, unknown>) => http(sim.url, 'POST', '/v1/chat/completions', { messages, max_tokens: 2, ...extra });
      const completion = (extra: Record<string, unknown>) => http(sim.url, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 2, ...extra });
      const topNeedsLogprobs = refused('when using `top_logprobs`, `logprobs` must be set to true\\.');
      // Chat: check_logprobs before validate_stream_options, and before the `model` field's string_type.
      let r = await chat({ model: MODEL, stream_options: { include_usage: true }, top_logprobs: 2 });
      expect([r.status, r.json().message]).toEqual([400, expect.stringMatching(topNeedsLogprobs)]);
      r = await chat({ model: 5, top_logprobs: 2 });
      expect([r.status, r.json().message]).toEqual([400, expect.stringMatching(topNeedsLogprobs)]);
      // A fractional value is compared as sent (-0.5 < 0) before pydantic's int_from_float.
      r = await chat({ model: MODEL, prompt_logprobs: -0.5 });
      expect([r.status, r.json().message]).toEqual([400, expect.stringMatching(refused('`prompt_logprobs` must be a positive value\\.'))]);
      // Completions: validate_stream_options before check_logprobs, check_logprobs before check_guided_decoding_count.
      r = await completion({ model: MODEL, stream_options: { include_usage: true }, logprobs: -1 });
      expect([r.status, r.json().message]).toEqual([400, expect.stringMatching(refused('Stream options can only be defined when `stream=True`\\.'))]);
      r = await completion({ model: MODEL, logprobs: -1, guided_regex: 'a', guided_choice: ['a'] });
      expect([r.status, r.json().message]).toEqual([400, expect.stringMatching(refused('`logprobs` must be a positive value\\.'))]);
      r = await completion({ model: MODEL, logprobs: -1.5 });
      expect([r.status, r.json().message]).toEqual([400, expect.stringMatching(refused('`logprobs` must be a positive value\\.'))]);
      // `prompt_logprobs < 0` on a str is Python's TypeError, which pydantic v2 lets out of the validator: a plain 500.
      r = await completion({ model: MODEL, prompt_logprobs: '1' });
      expect([r.status, r.text]).toEqual([500, 'Internal Server Error']);
      // What vLLM serves is still served: ints, bools (ints to Python) and null.
      for (const extra of [{ logprobs: true, top_logprobs: true }, { logprobs: true, top_logprobs: 0 }, { prompt_logprobs: null, top_logprobs: null }]) {
        expect((await chat({ model: MODEL, ...extra })).status).toBe(200);
      }
      expect((await completion({ model: MODEL, logprobs: 0, prompt_logprobs: 0 })).status).toBe(200);
    });

    it('check_generation_prompt: values truthy as sent are refused even when they parse false', async () => {
      for (const extra of [{ continue_final_message: true, add_generation_prompt: 'false' }, { continue_final_message: 'no', add_generation_prompt: true }]) {
        const r = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, max_tokens: 2, ...extra });
        expect([r.status, r.json().type, r.json().message]).toEqual([400, 'Bad Request', expect.stringMatching(refused('Cannot set both `continue_final_message` and `add_generation_prompt` to True\\.'))]);
      }
    });
  });

  // protocol.py (the stored copies around v0.10.0): CompletionRequest has `n: int = 1` and `echo: Optional[bool] =
  // False`, ChatCompletionRequest `n: Optional[int] = 1` and `echo: bool = False`; the simulator read both fields the
  // same way on both routes (n null accepted, echo null refused).
  it('n and echo null are read as each request model types them', async () => {
    const messages = [{ role: 'user', content: 'hi' }];
    const completionN = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: 2, n: null });
    expect([completionN.status, completionN.json().message]).toEqual([400, "[{'type': 'int_type', 'loc': ('body', 'n'), 'msg': 'Input should be a valid integer', 'input': None}]"]);
    const chatN = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, max_tokens: 2, n: null });
    expect([chatN.status, chatN.json().choices.length]).toEqual([200, 1]);
    const completionEcho = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: 2, echo: null });
    expect([completionEcho.status, completionEcho.json().usage.completion_tokens]).toEqual([200, 2]);
    expect(completionEcho.json().choices[0].text.startsWith('hi')).toBe(false);
    const chatEcho = await http(sim.url, 'POST', '/v1/chat/completions', { model: MODEL, messages, max_tokens: 2, echo: null });
    expect([chatEcho.status, chatEcho.json().message]).toEqual([400, "[{'type': 'bool_type', 'loc': ('body', 'echo'), 'msg': 'Input should be a valid boolean', 'input': None}]"]);
  });

  // protocol.py @ v0.10.0: both request models type `use_beam_search: bool = False` and `length_penalty: float = 1.0`,
  // and with use_beam_search the routes run engine_client.beam_search (serving_completion.py also never streams it,
  // answering a stream with one event). The simulator ignored both fields as extras, answering sampled filler.
  it('use_beam_search is typed and, when true, refused as not simulated (after the model check)', async () => {
    const messages = [{ role: 'user', content: 'hi' }];
    for (const [path, body] of [['/v1/chat/completions', { messages }], ['/v1/completions', { prompt: 'hi' }]] as const) {
      for (const v of [true, 'yes', 1]) {
        const r = await http(sim.url, 'POST', path, { model: MODEL, ...body, max_tokens: 2, use_beam_search: v, stream: true });
        expect([r.status, r.json().type]).toEqual([501, 'Not Implemented']);
      }
      const off = await http(sim.url, 'POST', path, { model: MODEL, ...body, max_tokens: 2, use_beam_search: false });
      expect(off.status).toBe(200);
      const unknown = await http(sim.url, 'POST', path, { model: 'nope', ...body, use_beam_search: true });
      expect(unknown.status).toBe(404);
      const typed = await http(sim.url, 'POST', path, { model: MODEL, ...body, use_beam_search: 'x' });
      expect([typed.status, typed.json().message]).toEqual([400, "[{'type': 'bool_parsing', 'loc': ('body', 'use_beam_search'), 'msg': 'Input should be a valid boolean, unable to interpret input', 'input': 'x'}]"]);
      const penalty = await http(sim.url, 'POST', path, { model: MODEL, ...body, length_penalty: 'x' });
      expect([penalty.status, penalty.json().message]).toEqual([400, "[{'type': 'float_parsing', 'loc': ('body', 'length_penalty'), 'msg': 'Input should be a valid number, unable to parse string as a number', 'input': 'x'}]"]);
    }
  });

  // protocol.py @ v0.10.0 types these fields on both request models (structural_tag and mm_processor_kwargs on chat
  // only); the simulator took them as untyped extras.
  it('typed fields the simulator does not act on are still type-checked', async () => {
    const messages = [{ role: 'user', content: 'hi' }];
    const typeError = (field: string, type: string, msg: string) => `[{'type': '${type}', 'loc': ('body', '${field}'), 'msg': '${msg}', 'input': 12.5}]`;
    const cases: [string, string, string][] = [
      ['spaces_between_special_tokens', 'bool_type', 'Input should be a valid boolean'],
      ['add_special_tokens', 'bool_type', 'Input should be a valid boolean'],
      ['guided_regex', 'string_type', 'Input should be a valid string'],
      ['guided_grammar', 'string_type', 'Input should be a valid string'],
      ['guided_decoding_backend', 'string_type', 'Input should be a valid string'],
      ['guided_whitespace_pattern', 'string_type', 'Input should be a valid string'],
      ['kv_transfer_params', 'dict_type', 'Input should be a valid dictionary'],
    ];
    for (const [path, body, extra] of [
      ['/v1/chat/completions', { messages }, [['structural_tag', 'string_type', 'Input should be a valid string'], ['mm_processor_kwargs', 'dict_type', 'Input should be a valid dictionary']]],
      ['/v1/completions', { prompt: 'hi' }, []],
    ] as const) {
      for (const [field, type, msg] of [...cases, ...extra]) {
        const r = await http(sim.url, 'POST', path, { model: MODEL, ...body, max_tokens: 2, [field]: 12.5 });
        expect([path, r.status, r.json().message]).toEqual([path, 400, typeError(field, type, msg)]);
      }
      // Valid values are served.
      const ok = await http(sim.url, 'POST', path, { model: MODEL, ...body, max_tokens: 2, spaces_between_special_tokens: false, add_special_tokens: 'true', kv_transfer_params: {} });
      expect(ok.status).toBe(200);
    }
    // A completion has no structural_tag field: an ignored extra.
    expect((await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: 2, structural_tag: 12.5 })).status).toBe(200);
  });

  // vllm/v1/engine/detokenizer.py check_stop_strings (the same in every stored copy around v0.10.0, and in V0's
  // StopChecker): `for stop_str in stop: … if stop_index == -1: continue … return stop_str, stop_index`, the first of
  // the list found in the window wins. The simulator took the one found earliest in the text.
  it('two stop strings found at one token: the first of the list wins, as check_stop_strings iterates the list', async () => {
    const filler = await http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: 6 });
    const text: string = filler.json().choices[0].text;
    expect(text.startsWith('The quick brown fox')).toBe(true);
    for (const [path, body] of [['/v1/completions', { prompt: 'hi' }], ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }]] as const) {
      const first = await http(sim.url, 'POST', path, { model: MODEL, ...body, max_tokens: 10, stop: ['fox', 'brown fox'] });
      const c1 = first.json().choices[0];
      expect([c1.finish_reason, c1.stop_reason, c1.text ?? c1.message.content]).toEqual(['stop', 'fox', 'The quick brown ']);
      expect(first.json().usage.completion_tokens).toBe(4);
      const second = await http(sim.url, 'POST', path, { model: MODEL, ...body, max_tokens: 10, stop: ['brown fox', 'fox'] });
      const c2 = second.json().choices[0];
      expect([c2.finish_reason, c2.stop_reason, c2.text ?? c2.message.content]).toEqual(['stop', 'brown fox', 'The quick ']);
    }
  });

  for (const seed of (process.env.DIFF_SEEDS ? process.env.DIFF_SEEDS.split(",").map(Number) : [1, 2, 3])) {
    it(`agrees on every outcome of 150 requests (seed ${seed})`, async () => {
      const rnd = seededRandom(seed);
      const diffs: string[] = [];
      const drawn = new Set<string>();
      stopHits = 0;
      for (let i = 0; i < 150; i++) {
        const { kind, body } = randomRequest(rnd, i);
        const tokens = await promptTokens(kind, body);
        const want = reference(kind, body, tokens);
        const res = await http(sim.url, 'POST', kind === 'chat' ? '/v1/chat/completions' : '/v1/completions', body);
        let got: Outcome;
        try {
          got = observed(kind, body, res.status, res.text);
        } catch (e) {
          diffs.push(`#${i} ${kind} ${JSON.stringify(body)}: ${(e as Error).message}`);
          continue;
        }
        drawn.add(category(want));
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          const [w, g] = [JSON.stringify(want), JSON.stringify(got)];
          let at = 0;
          while (at < w.length && w[at] === g[at]) at++;
          const body_ = JSON.stringify({ ...body, ...(kind === 'chat' ? { messages: '…' } : { prompt: '…' }) });
          diffs.push(`#${i} ${kind} ${body_} tokens=${tokens}\n  want …${w.slice(Math.max(0, at - 150), at + 150)}\n  got  …${g.slice(Math.max(0, at - 150), at + 150)}`);
        }
      }
      expect(diffs).toEqual([]);
      // The draw reaches every branch of the reference, so a change to any of them is compared.
      expect([...drawn].sort()).toEqual([...CATEGORIES].sort());
      expect(stopHits).toBeGreaterThan(3);
    });
  }
});
