import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RealtimeClock, type SimClock } from './clock';
import { generationOf } from './block-hash';
import { Engine, type KvEventSink, type RequestHandle, type RequestResult } from './engine';
import type { KvEventEncoding } from '@kvroute/protocol/kv-events';
import { KvEventPublisher } from './kv-publisher';
import { SimMetrics } from './metrics';
import {
  ApiError,
  parseChatRequest,
  parseCompletionRequest,
  parseJsonBody,
  usage,
  type ChatRequest,
  type CompletionRequest,
} from './openai';
import { resolveOptions, type SimulatorInput, type SimulatorOptions } from './options';
import { loadQwen3Tokenizer, type SimTokenizer } from './tokenizer';

export interface StartOptions extends SimulatorInput {
  /** Overrides the realtime clock (tests drive a ManualClock). */
  clock?: SimClock;
}

export interface Simulator {
  readonly port: number;
  readonly host: string;
  /** Base URL, e.g. http://127.0.0.1:43817 */
  readonly url: string;
  readonly options: SimulatorOptions;
  readonly engine: Engine;
  readonly metrics: SimMetrics;
  /** The KV-event publisher, when `--kv-events-config` asks for `"publisher": "zmq"`. */
  readonly kvEvents: KvEventPublisher | null;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to
   * `graceMs` of wall time, aborts the rest, and resolves once the socket is closed.
   */
  close(opts?: { graceMs?: number }): Promise<void>;
}

/** Request bodies above this are refused; a 128 KB prompt is far below it. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

interface Prepared {
  req: CompletionRequest | ChatRequest;
  promptTokens: Uint32Array;
  maxTokens: number;
}

export async function startSimulator(start: StartOptions = {}): Promise<Simulator> {
  const { clock: injectedClock, ...partial } = start;
  const options = resolveOptions(partial);
  const tokenizer = loadQwen3Tokenizer();
  const clock = injectedClock ?? new RealtimeClock(options.timeScale);
  const generation = generationOf(options.prefixCachingHashAlgo);
  let engine: Engine | undefined;
  const metrics = new SimMetrics(
    {
      modelName: options.servedModelNames[0],
      blockSize: options.blockSize,
      kvCacheBlocks: options.kvCacheBlocks,
      maxModelLen: options.maxModelLen,
      gpuMemoryUtilization: options.gpuMemoryUtilization,
      prefixCachingHashAlgo: options.prefixCachingHashAlgo,
      generation,
    },
    () => (engine as Engine).stats(),
  );
  // EventPublisherFactory.create (vllm/distributed/kv_events.py @ v0.10.0): a ZMQ publisher whenever the config says
  // "zmq"; events are only produced when enable_kv_cache_events is true; with publisher "null" they are dropped.
  const kvConfig = options.kvEventsConfig;
  const kvEvents = kvConfig?.publisher === 'zmq' ? await KvEventPublisher.start(kvConfig, wireEncoding(options), stderrLogger) : null;
  let sink: KvEventSink | undefined;
  if (kvConfig?.enable_kv_cache_events) sink = kvEvents ? (batch) => kvEvents.publish(batch) : () => undefined;
  try {
    engine = new Engine(
      {
        blockSize: options.blockSize,
        kvCacheBlocks: options.kvCacheBlocks,
        maxNumSeqs: options.maxNumSeqs,
        maxNumBatchedTokens: options.maxNumBatchedTokens,
        ttftOverheadMs: options.ttftOverheadMs,
        prefillMsPerToken: options.prefillMsPerToken,
        itlMs: options.itlMs,
        prefillConcurrency: options.prefillConcurrency,
        hashAlgo: options.prefixCachingHashAlgo,
        pythonHashSeed: options.pythonHashSeed,
      },
      clock,
      metrics,
      sink,
    );
  } catch (e) {
    await kvEvents?.close(0);
    throw e;
  }
  const eng = engine;
  const acceptedModels = [...options.servedModelNames, ...options.loraModules];
  const inflight = new Set<Promise<void>>();
  let draining = false;

  const server = createServer((req, res) => {
    const done = handle(req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, `Internal error: ${(e as Error)?.message ?? String(e)}`);
      if (!res.headersSent) sendJson(res, err.status, err.toJSON());
      else if (!res.writableEnded) res.end();
    });
    inflight.add(done);
    void done.finally(() => inflight.delete(done));
  });
  // Benchmarks hold many concurrent keep-alive streams; Node's defaults would
  // drop idle sockets a gateway wants to reuse.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('x-kvroute-pod', options.podName);
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    const route = ROUTES[path];
    if (!route) throw new ApiError(404, `Route ${path} not found.`, null, 'not_found');
    if (!route.includes(method)) {
      res.setHeader('allow', route.join(', '));
      throw new ApiError(405, `Method ${method} not allowed on ${path}.`, null, 'method_not_allowed');
    }
    switch (path) {
      case '/health':
        if (draining) throw new ApiError(503, 'Server is shutting down.', null, 'service_unavailable');
        res.writeHead(200, { 'content-length': '0' });
        res.end();
        return;
      case '/metrics': {
        const text = await metrics.metrics();
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(text);
        return;
      }
      case '/v1/models':
        sendJson(res, 200, modelsResponse(options));
        return;
      case '/version':
        // The hash algorithm decides which vLLM's shapes are simulated (block-hash.ts, generationOf).
        sendJson(res, 200, { version: generation === '0.10.0' ? '0.10.1' : '0.10.2', simulator: 'kvroute-sim' });
        return;
      case '/reset_prefix_cache': {
        // vLLM 0.10 serves this only with VLLM_SERVER_DEV_MODE=1 and answers 200 whether or not the reset happened
        // ("we currently do not check if the prefix cache is successfully reset in the API server";
        // vllm/entrypoints/openai/api_server.py @ v0.10.0). The engine refuses while any block but the null block
        // is in use, and logs a warning, as BlockPool.reset_prefix_cache does. The header tells which happened.
        const ok = eng.resetPrefixCache();
        if (!ok) stderrLogger.warn('Failed to reset prefix cache because some blocks are not freed yet', { used_blocks: eng.stats().usedBlocks - 1 });
        res.writeHead(200, { 'content-length': '0', 'x-kvroute-prefix-cache-reset': ok ? 'done' : 'refused' });
        res.end();
        return;
      }
      case '/tokenize': {
        const body = parseJsonBody(await readBody(req));
        sendJson(res, 200, tokenizeResponse(body, tokenizer, options));
        return;
      }
      case '/v1/completions':
      case '/v1/chat/completions': {
        if (draining) throw new ApiError(503, 'Server is shutting down.', null, 'service_unavailable');
        const body = parseJsonBody(await readBody(req));
        const parsed =
          path === '/v1/completions'
            ? parseCompletionRequest(body, acceptedModels)
            : parseChatRequest(body, acceptedModels);
        const prepared = prepare(parsed, tokenizer, options);
        await generate(prepared, res);
        return;
      }
    }
  }

  function generate(p: Prepared, res: ServerResponse): Promise<void> {
    const { req } = p;
    if (p.promptTokens.length + p.maxTokens > eng.maxSequenceTokens) {
      // Only when --kv-cache-blocks is within a block of --max-model-len: the null block holds no KV (Engine.maxSequenceTokens).
      return Promise.reject(
        new ApiError(400, `prompt + max_tokens = ${p.promptTokens.length + p.maxTokens} tokens exceed the KV cache's ${eng.maxSequenceTokens - 1} slots.`, req.kind === 'chat' ? 'messages' : 'prompt', 'context_length_exceeded'),
      );
    }
    const created = Math.floor(Date.now() / 1000);
    const id = `${req.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const { ids: outputIds, texts: outputTexts } = tokenizer.filler(p.maxTokens);

    return new Promise<void>((resolve) => {
      let running: RequestHandle | undefined;
      let finished = false;
      const chunkBase = {
        id,
        object: req.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
        created,
        model: req.model,
      };
      const usageNull = req.includeUsage ? { usage: null } : {};
      if (req.stream) {
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
        });
        // Headers leave now so a proxy sees the response start; the body waits for the first token.
        res.flushHeaders();
      }
      const sse = (obj: unknown): void => {
        if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`);
      };

      // The chunk carrying the last token is held back until onFinish (same
      // simulated instant) so it can also carry the request's model timing.
      let lastChunk: Record<string, unknown> | undefined;
      const listener = {
        onToken(k: number): void {
          if (!req.stream) return;
          const isLast = k === p.maxTokens - 1;
          let chunk: Record<string, unknown>;
          if (req.kind === 'chat') {
            // vLLM sends the role in its own first chunk, at the first token.
            if (k === 0) {
              sse({ ...chunkBase, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], ...usageNull });
            }
            chunk = { ...chunkBase, choices: [{ index: 0, delta: { content: outputTexts[k] }, logprobs: null, finish_reason: isLast ? 'length' : null, ...(isLast ? { stop_reason: null } : {}) }], ...usageNull };
          } else {
            chunk = { ...chunkBase, choices: [{ index: 0, text: outputTexts[k], logprobs: null, finish_reason: isLast ? 'length' : null, stop_reason: null }], ...usageNull };
          }
          if (isLast) lastChunk = chunk;
          else sse(chunk);
        },
        onFinish(r: RequestResult): void {
          finished = true;
          const u = usage(r.promptTokens, r.completionTokens, r.cachedTokens, { details: options.enablePromptTokensDetails, stream: req.stream });
          const timing = simTiming(r, options.podName);
          if (req.stream) {
            if (r.finishReason === 'abort') {
              // Only seen on shutdown: a disconnected client reads nothing.
              const choice = req.kind === 'chat' ? { index: 0, delta: {}, logprobs: null, finish_reason: 'abort' } : { index: 0, text: '', logprobs: null, finish_reason: 'abort' };
              lastChunk = { ...chunkBase, choices: [choice], ...usageNull };
            }
            sse({ ...lastChunk, kvroute_sim: timing });
            if (req.includeUsage) sse({ ...chunkBase, choices: [], usage: u });
            if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
          } else if (r.finishReason === 'abort') {
            if (!res.headersSent && !res.destroyed) sendJson(res, 503, new ApiError(503, 'Request aborted: server is shutting down.', null, 'service_unavailable').toJSON());
          } else {
            const text = outputTexts.join('');
            const choice =
              req.kind === 'chat'
                ? { index: 0, message: { role: 'assistant', content: text, reasoning_content: null, tool_calls: [] }, logprobs: null, finish_reason: r.finishReason, stop_reason: null }
                : { index: 0, text, logprobs: null, finish_reason: r.finishReason, stop_reason: null, prompt_logprobs: null };
            sendJson(res, 200, {
              id,
              object: req.kind === 'chat' ? 'chat.completion' : 'text_completion',
              created,
              model: req.model,
              choices: [choice],
              usage: u,
              kvroute_sim: timing,
            });
          }
          resolve();
        },
      };
      res.on('close', () => {
        // The client went away before the end: free its slot and blocks.
        if (!finished) running?.abort();
      });
      // A LoRA adapter's lora_int_id is its 1-based position in --lora-modules (OpenAIServingModels' counter).
      const lora = options.loraModules.indexOf(req.model);
      running = eng.submit({ promptTokens: p.promptTokens, outputTokens: outputIds, cacheSalt: req.cacheSalt, loraId: lora >= 0 ? lora + 1 : null }, listener);
      if (res.destroyed && !finished) running.abort();
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;

  return {
    port: addr.port,
    host: options.host,
    url: `http://${urlHost === '0.0.0.0' ? '127.0.0.1' : urlHost}:${addr.port}`,
    options,
    engine: eng,
    metrics,
    kvEvents,
    close({ graceMs = 5000 } = {}) {
      closing ??= (async () => {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (inflight.size > 0) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            Promise.allSettled([...inflight]),
            new Promise<void>((resolve) => {
              timer = setTimeout(resolve, graceMs);
            }),
          ]);
          clearTimeout(timer);
        }
        eng.close();
        await Promise.allSettled([...inflight]);
        server.closeAllConnections();
        await closed;
        await kvEvents?.close();
      })();
      return closing;
    },
  };
}

const ROUTES: Record<string, string[]> = {
  '/health': ['GET'],
  '/metrics': ['GET'],
  '/v1/models': ['GET'],
  '/version': ['GET'],
  '/tokenize': ['POST'],
  '/reset_prefix_cache': ['POST'],
  '/v1/completions': ['POST'],
  '/v1/chat/completions': ['POST'],
};

function tokenizeRequest(req: CompletionRequest | ChatRequest, tokenizer: SimTokenizer): Uint32Array {
  if (req.kind === 'completion') {
    return typeof req.prompt === 'string' ? tokenizer.encode(req.prompt, true) : Uint32Array.from(req.prompt);
  }
  let text: string;
  try {
    text = tokenizer.renderChat(req.messages, {
      addGenerationPrompt: req.addGenerationPrompt,
      tools: req.tools,
      templateKwargs: req.templateKwargs,
    });
  } catch (e) {
    throw new ApiError(400, `Chat template error: ${(e as Error).message}`, 'messages', 'chat_template_error');
  }
  // vLLM tokenizes a rendered chat without adding special tokens: the template placed them.
  return tokenizer.encode(text, false);
}

function prepare(req: CompletionRequest | ChatRequest, tokenizer: SimTokenizer, o: SimulatorOptions): Prepared {
  const promptTokens = tokenizeRequest(req, tokenizer);
  const n = promptTokens.length;
  const param = req.kind === 'chat' ? 'messages' : 'prompt';
  if (n === 0) throw new ApiError(400, 'The prompt is empty after tokenization.', param, 'invalid_value');
  if (n >= o.maxModelLen) {
    throw new ApiError(
      400,
      `This model's maximum context length is ${o.maxModelLen} tokens. However, your request has ${n} input tokens. Please reduce the length of the input messages.`,
      param,
      'context_length_exceeded',
    );
  }
  const maxTokens = req.maxTokens ?? Math.min(o.defaultMaxTokens, o.maxModelLen - n);
  if (n + maxTokens > o.maxModelLen) {
    throw new ApiError(
      400,
      `This model's maximum context length is ${o.maxModelLen} tokens. However, you requested ${n + maxTokens} tokens (${n} in the ${param}, ${maxTokens} in the completion). Please reduce the length of the ${param} or completion.`,
      req.kind === 'chat' && req.maxTokens !== undefined ? 'max_tokens' : param,
      'context_length_exceeded',
    );
  }
  return { req, promptTokens, maxTokens };
}

function tokenizeResponse(body: Record<string, unknown>, tokenizer: SimTokenizer, o: SimulatorOptions): unknown {
  // vLLM's /tokenize takes the model optionally; checking it when given keeps typos loud.
  const names = [...o.servedModelNames, ...o.loraModules];
  const withModel = body.model === undefined || body.model === null ? { ...body, model: names[0] } : body;
  const req = withModel.messages !== undefined ? parseChatRequest(withModel, names) : parseCompletionRequest(withModel, names);
  const tokens = tokenizeRequest(req, tokenizer);
  return { count: tokens.length, max_model_len: o.maxModelLen, tokens: Array.from(tokens), token_strs: null };
}

function modelsResponse(o: SimulatorOptions): unknown {
  const created = Math.floor(Date.now() / 1000);
  const card = (id: string, root: string, parent: string | null) => ({ id, object: 'model', created, owned_by: 'vllm', root, parent, max_model_len: o.maxModelLen });
  return {
    object: 'list',
    // LoRA adapters follow the base model names, with the base as parent (vllm/entrypoints/openai/serving_models.py
    // @ v0.10.0; their root is the adapter path, which the simulator does not have, so it is the name).
    data: [...o.servedModelNames.map((name) => card(name, o.model, null)), ...o.loraModules.map((name) => card(name, name, o.servedModelNames[0]))],
  };
}

/** The payload encoding on the wire: positional as the simulated vLLM release writes it, or vLLM #42892's maps. */
function wireEncoding(o: SimulatorOptions): KvEventEncoding {
  if (o.kvEventsEncoding === 'map') return 'map';
  return generationOf(o.prefixCachingHashAlgo) === '0.10.0' ? 'positional-v0.10.0' : 'positional-v0.10.2';
}

/** vLLM-style warnings on stderr, one JSON line each (stdout carries only the lifecycle lines). */
const stderrLogger = {
  warn(msg: string, fields: Record<string, unknown> = {}): void {
    process.stderr.write(`${JSON.stringify({ level: 'warn', msg, ...fields })}\n`);
  },
};

/** Model-time view of one request (seconds), for harnesses that want it without wall-clock noise. */
function simTiming(r: RequestResult, pod: string): Record<string, unknown> {
  const s = (ms: number | null): number | null => (ms === null ? null : ms / 1000);
  return {
    pod,
    cached_tokens: r.cachedTokens,
    queue_time_s: r.admittedMs === null ? null : s(r.admittedMs - r.arrivalMs),
    ttft_s: r.firstTokenMs === null ? null : s(r.firstTokenMs - r.arrivalMs),
    e2e_s: s(r.finishedMs - r.arrivalMs),
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (tooLarge) reject(new ApiError(413, `Request body exceeds ${MAX_BODY_BYTES} bytes.`, null, 'request_too_large'));
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}
