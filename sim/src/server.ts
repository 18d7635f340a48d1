import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import { createSecureContext, type TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { RealtimeClock, type SimClock } from './clock';
import { generationOf, type VllmGeneration } from './block-hash';
import { Engine, type KvEventSink, type RequestHandle, type RequestListener, type RequestResult, type SubmitParams } from './engine';
import type { KvEventEncoding } from '@kvroute/protocol/kv-events';
import { ChatTemplateRefusal, truncatePromptIds, vllmConversation } from '@kvroute/protocol/openai';
import { KvEventPublisher } from './kv-publisher';
import { SimMetrics } from './metrics';
import {
  ApiError,
  badRequest,
  chatLogprobs,
  checkSampling,
  completionLogprobs,
  fillerLogprobs,
  handRaisedValidationError,
  laxInt,
  parseChatRequest,
  parseCompletionRequest,
  parseJsonBody,
  parseTokenizeRequest,
  pythonJsonLoads,
  requestObject,
  PlainServerError,
  unparseableBody,
  planOutput,
  type OutputPlan,
  processorError,
  promptLogprobs,
  strictStr,
  usage,
  validationError,
  type ChatPromptRequest,
  type ChatRequest,
  type CompletionRequest,
} from './openai';
import { pythonJsonDumps } from '@kvroute/protocol/openai';
import { parseRequiredCalls, requiredStreamDelta, toolOutput, type ToolOutput } from './tool-calls';
import { OptionError, resolveOptions, type SimulatorInput, type SimulatorOptions } from './options';
import { loadQwen3Tokenizer, type SimTokenizer } from './tokenizer';
import { ServedModels } from './served-models';
import { logLine } from './log-line';
import {
  constructInputMessages,
  invalidIdError,
  notFoundError,
  outputItems,
  parseResponsesRequest,
  responseBody,
  ResponseStore,
  RESPONSE_STORE_CAPACITY,
  type ResponsesRequest,
  type StoredResponse,
} from './responses';

export interface StartOptions extends SimulatorInput {
  /** Overrides the realtime clock (tests drive a ManualClock). */
  clock?: SimClock;
}

export interface Simulator {
  readonly port: number;
  readonly host: string;
  /** Base URL, e.g. http://127.0.0.1:43817 (https: with --ssl-certfile) */
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
/** `str(EngineDeadError())`: the message vLLM's dead engine raises with (vllm/v1/engine/exceptions.py @ v0.10.0). */
const ENGINE_DEAD_MESSAGE = 'EngineCore encountered an issue. See stack trace (above) for the root cause.';

export async function startSimulator(start: StartOptions = {}): Promise<Simulator> {
  const { clock: injectedClock, ...partial } = start;
  const options = resolveOptions(partial);
  // Read before anything is started, so a bad file stops the start as uvicorn's does, leaving nothing open.
  const tls = options.sslCertfile === null ? null : tlsServerOptions(options);
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
      enablePrefixCaching: options.enablePrefixCaching,
      generation,
      swapSpace: options.swapSpace,
      disableLogStats: options.disableLogStats,
      maxLoras: options.enableLora ? options.maxLoras : undefined,
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
        schedulingPolicy: options.schedulingPolicy,
        longPrefillTokenThreshold: options.longPrefillTokenThreshold,
        hashAlgo: options.prefixCachingHashAlgo,
        pythonHashSeed: options.pythonHashSeed,
        // Map-encoded events exist from vLLM #42892 on: reproduce that release's fields and LoRA hash key too.
        kvEventSchema: options.kvEventsEncoding === 'map' ? 'v0.26' : 'v0.10',
        enablePrefixCaching: options.enablePrefixCaching,
        maxLoras: options.enableLora ? options.maxLoras : undefined,
        decodePrefillInterference: options.decodePrefillInterference,
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
  const models = new ServedModels(options);
  /** uvicorn's `scope["scheme"]`, which Starlette's redirects build their URLs with. */
  const scheme = tls === null ? 'http' : 'https';
  /** The executor's `sleeping_tags` (POST /sleep, /wake_up): asleep while any is left. */
  let sleepingTags = new Set<string>();
  const inflight = new Set<Promise<void>>();
  let draining = false;

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const http = instrumentRequest(req, res);
    httpTimings.set(res, http);
    const done = handle(req, res, http).catch((e: unknown) => {
      if (e instanceof RouteError) {
        // Starlette's router answers unknown paths and methods itself, with FastAPI's default `{"detail": ...}` body.
        if (!res.headersSent) sendJson(res, e.status, { detail: e.message });
        return;
      }
      if (e instanceof PlainServerError) {
        if (!res.headersSent) {
          // The exception passed through the instrumentator's middleware before Starlette's ServerErrorMiddleware,
          // outside it, wrote this 500: it saw no response start (status 500, no Content-Length). It is outside the
          // CORS and X-Request-Id middlewares too, so neither adds its header.
          http.raised = true;
          res.removeHeader('access-control-allow-origin');
          res.removeHeader('vary');
          res.removeHeader('x-request-id');
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '21' });
          res.end('Internal Server Error');
        }
        return;
      }
      const err = e instanceof ApiError ? e : new ApiError(500, `Internal error: ${(e as Error)?.message ?? String(e)}`);
      if (!res.headersSent) sendJson(res, err.status, err.body(generation));
      else if (!res.writableEnded) res.end();
    });
    inflight.add(done);
    void done.finally(() => inflight.delete(done));
  };
  // uvicorn with httptools (vLLM's, http='auto' with uvicorn[standard]) caps no request head: its protocol appends URL
  // and header bytes as they come (uvicorn protocols/http/httptools_impl.py @ 0.35.0 on_url, on_header) and httptools
  // (llhttp) has no limit; vLLM's h11_max_incomplete_event_size (launcher.py serve_http) binds the h11 protocol only.
  // Node's server answers 431 past 16 KiB (--max-http-header-size), which Envoy's 60 KiB lets through: lifted.
  const headLimit = { maxHeaderSize: Number.MAX_SAFE_INTEGER };
  const server: HttpServer = tls === null ? createServer(headLimit, onRequest) : createHttpsServer({ ...tls, ...headLimit }, onRequest);
  // uvicorn's httptools protocol keeps every header field it parses (protocols/http/httptools_impl.py on_header appends
  // each, no count limit), within the head's size. Node keeps the first 1,000 fields and drops the rest silently (Node
  // 20), or answers 431 above 1,000 (Node >= 22.23.2, CVE-2026-58044, on the images' node:22): no limit here either.
  server.maxHeadersCount = 0;
  // A request the parser refuses gets uvicorn's own 400, whose connection then closes (protocols/http/httptools_impl.py
  // @ 0.35.0 data_received: httptools.HttpParserError → send_400_response: the server state's default headers, `date`
  // then `server: uvicorn`, a text/plain body, `connection: close`), where Node writes a bare 400, and that only if
  // nothing was written on the connection yet. Both parsers are llhttp, so they refuse the same heads. A refusal behind
  // a response still being written (a pipelined request) only closes the connection here.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const inFlight = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    const busy = inFlight != null && inFlight.headersSent && !inFlight.writableFinished;
    if (err.code?.startsWith('HPE_') && socket.writable && !busy) {
      const msg = 'Invalid HTTP request received.';
      socket.end(`HTTP/1.1 400 Bad Request\r\ndate: ${new Date().toUTCString()}\r\nserver: uvicorn\r\n`
        + `content-type: text/plain; charset=utf-8\r\ncontent-length: ${msg.length}\r\nconnection: close\r\n\r\n${msg}`);
      return;
    }
    // Node's own answer otherwise (its request timeout's 408 on a connection nothing was written on yet), then the close.
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && socket.writable && socket.bytesWritten === 0) {
      socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      return;
    }
    socket.destroy();
  });
  // uvicorn acts on `Expect: 100-continue` only and serves a request with any other expectation as usual (uvicorn
  // protocols/http/httptools_impl.py on_header; uvicorn[standard], which vLLM installs, runs httptools), where Node
  // would answer 417 itself.
  server.on('checkExpectation', onRequest);
  // uvicorn's on_header compares the whole value, `value.lower() == b"100-continue"`; Node would send 100 Continue for
  // any list holding it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.expect?.trim().toLowerCase() === '100-continue') res.writeContinue();
    onRequest(req, res);
  });
  if (tls !== null && options.sslCertReqs === 1) {
    // Python's CERT_OPTIONAL verifies a certificate the client chooses to send and aborts the handshake when it fails;
    // Node's rejectUnauthorized: false would serve that client, so its connection is dropped here, before any request.
    server.on('secureConnection', (socket: TLSSocket) => {
      if (!socket.authorized && Object.keys(socket.getPeerCertificate()).length > 0) socket.destroy();
    });
  }
  // uvicorn closes a connection idle for timeout_keep_alive seconds: vLLM's VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5 by default
  // (vllm/envs.py @ v0.10.0 L602-603; vllm/entrypoints/openai/api_server.py @ v0.10.0 L1832). Until audit 23 the sim
  // kept idle connections 65 s, so a client pooling them longer than 5 s never met the resets real vLLM gives it.
  // The timer below closes at N s, as uvicorn does. Node's own keep-alive close is off (keepAliveTimeout 0): it would
  // come 1 s late (its HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER, Node ≥ 20) and it makes every response announce
  // `Keep-Alive: timeout=N`, a header uvicorn (h11) never sends; clients that honour it (undici, which keeps an idle
  // socket for the hint less 2 s; an http.Agent whose own `timeout` is longer) would drop idle connections before the
  // server does, as they do not with vLLM.
  const keepAliveMs = options.timeoutKeepAlive * 1000;
  server.keepAliveTimeout = 0;
  server.headersTimeout = Math.max(66_000, keepAliveMs + 1000);
  // uvicorn's keep-alive timer: started when a connection's last response is sent, cancelled by its next request.
  const idle = new WeakMap<Socket, { open: number; timer: NodeJS.Timeout | null }>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    let st = idle.get(socket);
    if (st === undefined) {
      st = { open: 0, timer: null };
      idle.set(socket, st);
    }
    const state = st;
    if (state.timer !== null) clearTimeout(state.timer);
    state.timer = null;
    state.open++;
    res.once('close', () => {
      state.open--;
      if (state.open > 0 || socket.destroyed) return;
      state.timer = setTimeout(() => {
        state.timer = null;
        if (state.open === 0) socket.destroy();
      }, keepAliveMs);
      state.timer.unref();
    });
  });

  /**
   * prometheus-fastapi-instrumentator's middleware around one request (middleware.py @ v7.1.0 `__call__`): the timer
   * starts when the request reaches the app and stops when the app's call returns, i.e. once the response's last body
   * chunk was sent (or the client hung up), so a stream's duration covers the whole stream; the status and
   * Content-Length are those of `http.response.start`. vLLM's mount_metrics adds this middleware before CORSMiddleware
   * and the API-key middleware (build_app, api_server.py @ v0.10.0), so Starlette makes it the innermost of them: a
   * CORS preflight and an API-key 401 are answered outside it and never counted (`reached` stays false). Durations are
   * the simulator's own wall time plus its engine work's model time (httpDurationMs); see README "Metrics".
   */
  function instrumentRequest(req: IncomingMessage, res: ServerResponse): HttpTiming {
    const state: HttpTiming = { reached: false, raised: false, engine: null };
    const startWall = performance.now();
    let observed = false;
    const observe = (): void => {
      if (observed || !state.reached) return;
      observed = true;
      const method = req.method ?? 'GET';
      const handler = instrumentatorHandler(pythonUnquote((req.url ?? '/').split('?')[0]!), method);
      if (handler === null) return;
      const length = state.raised ? undefined : res.getHeader('content-length');
      // In a 'finish'/'close' listener: a throw here would end the process, where vLLM's middleware would lose one sample.
      try {
        metrics.observeHttp({
          method,
          handler,
          status: state.raised ? 500 : res.statusCode,
          // `int(info.request.headers.get("Content-Length", 0))`: the header alone, whatever the body was.
          requestBytes: Number(req.headers['content-length'] ?? 0) || 0,
          responseBytes: length === undefined ? 0 : Number(length) || 0,
          durationS: httpDurationMs(state, startWall) / 1000,
        });
      } catch {
        // A sample lost, the server kept.
      }
    };
    res.once('finish', observe);
    res.once('close', observe);
    return state;
  }

  /**
   * The request's duration as the simulated server would have taken it: the wall time it spent in the simulator's own
   * code (routing, JSON, tokenization, writing), which stands for vLLM's own, plus the *model* time of its engine work,
   * from its first submission to the engine to the finish of its last engine request (or to now, if it ended first: a
   * client that hung up, a background response), in place of the wall time that took. At --time-scale 1 this is the
   * wall time; under a ManualClock the engine's part is exactly the model time.
   */
  function httpDurationMs(t: HttpTiming, startWall: number): number {
    const wall = performance.now() - startWall;
    if (t.engine === null) return Math.max(wall, 0);
    const e = t.engine;
    const engineWall = Math.max((e.wallEnd ?? performance.now()) - e.wallStart, 0);
    const engineModel = (e.modelEnd ?? clock.now()) - Math.min(e.modelStart, e.firstArrivalMs);
    return Math.max(wall - engineWall + engineModel, 0);
  }

  /** `eng.submitAll`, noting the engine span of the HTTP request `res` answers (see httpDurationMs). */
  function submitTracked(res: ServerResponse, items: readonly { params: SubmitParams; listener: RequestListener }[]): RequestHandle[] {
    const t = httpTimings.get(res);
    if (t === undefined) return eng.submitAll(items);
    const first = t.engine === null;
    const span = (t.engine ??= { wallStart: performance.now(), modelStart: clock.now(), open: 0, wallEnd: null, modelEnd: null, firstArrivalMs: Infinity, lastFinishMs: -Infinity });
    span.open += items.length;
    span.wallEnd = null;
    span.modelEnd = null;
    const handles = eng.submitAll(
      items.map(({ params, listener }) => ({
        params,
        listener: {
          onToken: listener.onToken.bind(listener),
          onFinish: (result: RequestResult): void => {
            // The simulated instant it finished, not the clock when its (late-firing) timer ran: at a high
            // --time-scale a timer's few wall milliseconds of lateness would be seconds of model time.
            span.lastFinishMs = Math.max(span.lastFinishMs, result.finishedMs);
            span.firstArrivalMs = Math.min(span.firstArrivalMs, result.arrivalMs);
            if (--span.open === 0) {
              span.wallEnd = performance.now();
              span.modelEnd = span.lastFinishMs;
            }
            listener.onFinish(result);
          },
        },
      })),
    );
    // From here the engine's time is model time; submitAll's own work (hashing the prompt) was the server's.
    if (first && span.wallEnd === null) {
      span.wallStart = performance.now();
      span.modelStart = clock.now();
    }
    return handles;
  }

  /**
   * The `handler` label prometheus-fastapi-instrumentator gives a request, or null when it is excluded
   * (middleware.py @ v7.1.0 lines 132-136, 230-261; routing.py @ v7.1.0 `get_route_name`):
   * - the path template of the route that matches it FULLY (path and method): `/v1/chat/completions`,
   *   `/v1/responses/{response_id}`; `/metrics` for the `/metrics` Mount, which matches every method and longer path;
   * - a path no route matches fully (an unknown path, or a known one with another method: `_get_route_name` notes a
   *   PARTIAL match but then returns None) is retried with its trailing slash trimmed (added, when it has none), as
   *   Starlette's redirect_slashes would route it: a match there gives that template with the slash put back
   *   (`/v1/models/`);
   * - otherwise it is untemplated: `should_ignore_untemplated` defaults to False, so it counts, under handler `none`
   *   (`should_group_untemplated` defaults to True);
   * - excluded: any handler in which one of vLLM's `excluded_handlers` regexes is found (`re.search`), the path itself
   *   for an untemplated request, so `/metrics…`, `/health`, `/load`, `/ping`, `/version` (and e.g. `/healthz`) are
   *   never counted.
   */
  function instrumentatorHandler(path: string, method: string): string | null {
    let handler: string;
    let templated = true;
    const accepts = (p: string): boolean => routeOf(p)?.includes(method) === true;
    if (path.startsWith('/metrics')) handler = '/metrics';
    else if (accepts(path)) handler = routeTemplate(path);
    else if (path !== '/' && path.endsWith('/') && accepts(path.slice(0, -1))) handler = `${routeTemplate(path.slice(0, -1))}/`;
    else {
      handler = path;
      templated = false;
    }
    if (INSTRUMENTATOR_EXCLUDED_HANDLERS.some((pattern) => pattern.test(handler))) return null;
    return templated ? handler : 'none';
  }

  // The dev-mode routes exist only under VLLM_SERVER_DEV_MODE (`if envs.VLLM_SERVER_DEV_MODE:` around their
  // definitions, vllm/entrypoints/openai/api_server.py @ v0.10.0 lines 970-991; v0.10.2 lines 1050-1070): otherwise a
  // 404 from the router, whatever the method.
  // Likewise the LoRA routes under VLLM_ALLOW_RUNTIME_LORA_UPDATING (same file, after the profiler routes).
  const routeOf = (p: string): string[] | undefined =>
    (DEV_MODE_ROUTES.has(p) && !options.serverDevMode) || (RUNTIME_LORA_ROUTES.has(p) && !options.allowRuntimeLoraUpdating) ? undefined : ROUTES[p] ?? pathParamRoute(p);

  async function handle(req: IncomingMessage, res: ServerResponse, http: { reached: boolean }): Promise<void> {
    res.setHeader('x-kvroute-pod', options.podName);
    // uvicorn.Config's default server_header=True (vllm/entrypoints/launcher.py @ v0.10.0 builds it with defaults).
    res.setHeader('server', 'uvicorn');
    // vLLM's XRequestIdMiddleware (api_server.py @ v0.10.0): build_app adds it after the API-key middleware, so it
    // wraps that and CORS, and every response they or the routes start gets `X-Request-Id: request_headers.get(
    // "X-Request-Id", uuid.uuid4().hex)` appended: the request's header whenever it is present, even empty (Starlette's
    // Headers.get, the first of repeated ones), else a fresh uuid, drawn apart from the one a body's id takes.
    if (options.enableRequestIdHeaders) res.setHeader('x-request-id', req.headersDistinct['x-request-id']?.[0] ?? randomUUIDHex());
    // uvicorn routes on the percent-decoded path (`scope["path"] = urllib.parse.unquote(raw_path)`,
    // uvicorn/protocols/http/httptools_impl.py), so `/v1/chat%2Fcompletions` is the chat route; Envoy keeps `%2F`.
    const path = pythonUnquote((req.url ?? '/').split('?')[0]!);
    const method = req.method ?? 'GET';
    // vLLM's AuthenticationMiddleware (api_server.py @ v0.10.0): added after CORSMiddleware, so it wraps it and answers
    // first; it skips OPTIONS and every path not starting with "/v1" (health, metrics, tokenize), and compares the whole
    // header with "Bearer <key>". Its 401 carries no CORS header.
    if (options.apiKey && method !== 'OPTIONS' && path.startsWith('/v1') && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      sendJson(res, 401, { error: 'Unauthorized' });
      return;
    }
    // vLLM's CORSMiddleware with its defaults (--allowed-origins/methods/headers '*', no credentials; Starlette's
    // cors.py): a preflight is answered before routing, and any request with an Origin gets allow-origin *, or, when it
    // carries a Cookie header, its own Origin and `Vary: Origin` ("If request includes any cookie headers, then we must
    // respond with the specific origin instead of '*'", CORSMiddleware.send, allow_explicit_origin).
    if (req.headers.origin !== undefined) {
      if (method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
        const headers: Record<string, string> = {
          'access-control-allow-origin': '*',
          'access-control-allow-methods': 'DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT',
          'access-control-max-age': '600',
          'content-type': 'text/plain; charset=utf-8',
          'content-length': '2',
        };
        const asked = req.headers['access-control-request-headers'];
        if (typeof asked === 'string') headers['access-control-allow-headers'] = asked;
        res.writeHead(200, headers);
        res.end('OK');
        return;
      }
      if (req.headers.cookie !== undefined) {
        res.setHeader('access-control-allow-origin', req.headers.origin);
        res.setHeader('vary', 'Origin');
      } else {
        res.setHeader('access-control-allow-origin', '*');
      }
    }
    // Past the API-key and CORS middlewares: the instrumentator's middleware sees the request from here on.
    http.reached = true;
    const route = routeOf(path);
    // mount_metrics appends Mount("/metrics", make_asgi_app()) after every route, its path_regex replaced by
    // `^/metrics(?P<path>.*)$` ("Workaround for 307 Redirect for /metrics", vllm/entrypoints/openai/api_server.py @
    // v0.10.0 mount_metrics): it matches /metrics itself, /metrics/… and /metricsfoo, for every method (a Mount matches
    // FULL whatever the method). Starlette's router takes the first FULL match and falls back to a PARTIAL one (a route
    // of another method) only when none matches FULL, so only GET /metrics reaches the Instrumentator's route; HEAD,
    // POST or any other method on /metrics, and any method on the longer paths, is prometheus_client's ASGI app, which
    // negotiates.
    if (path.startsWith('/metrics') && !(path === '/metrics' && method === 'GET')) {
      await metricsMount(req, res);
      return;
    }
    if (!route) {
      // Starlette's Router with redirect_slashes (the default): a path no route matches that ends in "/" is answered
      // 307 to the path with its trailing slashes stripped when a route matches that (any method), the URL rebuilt
      // from the Host header and the query kept (starlette/routing.py Router.app, RedirectResponse).
      if (path.endsWith('/') && path !== '/') {
        const stripped = path.replace(/\/+$/, '');
        if (routeOf(stripped) !== undefined) {
          const query = (req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?')) : '';
          const host = req.headers.host ?? `${options.host}:${options.port}`;
          res.writeHead(307, { location: `${scheme}://${host}${stripped}${query}`, 'content-length': '0' });
          res.end();
          return;
        }
      }
      throw new RouteError(404, 'Not Found');
    }
    // vLLM's routes are FastAPI APIRoutes (router.get / router.post), whose methods are exactly the ones declared:
    // unlike Starlette's own Route, APIRoute adds no HEAD for GET (fastapi/routing.py APIRoute.__init__,
    // `self.methods = {method.upper() for method in methods}`), so HEAD on a GET route is a 405. The 405 is the first
    // PARTIAL match's (starlette/routing.py Router.app), whose `allow` lists that route's own methods: /ping is two
    // APIRoutes, POST registered first (decorators apply bottom-up), so its 405 allows POST.
    if (!route.includes(method)) {
      res.setHeader('allow', route[0]!);
      throw new RouteError(405, 'Method Not Allowed');
    }
    switch (path) {
      case '/health':
      case '/ping':
        // GET /health, and GET or POST /ping (SageMaker's name for it), answer 200 with an empty body
        // (vllm/entrypoints/openai/api_server.py @ v0.10.0).
        if (draining) throw new ApiError(503, 'Server is shutting down.');
        res.writeHead(200, { 'content-length': '0' });
        res.end();
        return;
      case '/load':
        // `server_load` counts requests in flight only with --enable-server-load-tracking, which vLLM leaves off, so
        // it stays 0 (api_server.py @ v0.10.0, `get_server_load_metrics`).
        sendJson(res, 200, { server_load: 0 });
        return;
      case '/metrics': {
        // mount_metrics (vllm/entrypoints/openai/api_server.py @ 6eca337ce lines 342-359; 61aa4b290 lines 370-383)
        // first has prometheus-fastapi-instrumentator expose GET /metrics, then appends Mount("/metrics",
        // make_asgi_app()). Starlette matches routes in order, so GET /metrics is the Instrumentator's handler
        // (instrumentation.py @ v7.1.0 lines 270-288: `Response(generate_latest(registry))` with CONTENT_TYPE_LATEST,
        // gzip only with should_gzip, which vLLM leaves False): the 0.0.4 text format, uncompressed, whatever Accept
        // and Accept-Encoding say. Every other method, and every longer path, reaches make_asgi_app (metricsMount).
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(await metrics.metrics());
        return;
      }
      case '/v1/models':
        sendJson(res, 200, modelsResponse(options, models));
        return;
      case '/version':
        // `{"version": VLLM_VERSION}`; the hash algorithm decides which release is simulated (block-hash.ts).
        sendJson(res, 200, { version: generation });
        return;
      case '/reset_prefix_cache': {
        // vLLM 0.10 serves this only with VLLM_SERVER_DEV_MODE=1 and answers 200 whether or not the reset happened
        // ("we currently do not check if the prefix cache is successfully reset in the API server";
        // vllm/entrypoints/openai/api_server.py @ v0.10.0). The engine refuses while any block but the null block
        // is in use, and logs a warning, as BlockPool.reset_prefix_cache does. The header tells which happened.
        // `?device=`: `Device[device_str.upper()]` (GPU or CPU, else KeyError), and AsyncLLM.reset_prefix_cache raises
        // ValueError("Not supported on CPU.") for CPU (vllm/v1/engine/async_llm.py @ v0.10.0, lines 559-563): either
        // error escapes the route, and Starlette's ServerErrorMiddleware, outside the CORS middleware, answers a
        // plain-text 500 without resetting anything. The last `device` counts (Starlette's query_params.get).
        const device = queryParams(req).getAll('device').at(-1);
        if (device !== undefined && device.toUpperCase() !== 'GPU') throw new PlainServerError(`device ${device}`);
        const ok = eng.resetPrefixCache();
        if (!ok) stderrLogger.warn('Failed to reset prefix cache because some blocks are not freed yet', { used_blocks: eng.stats().usedBlocks - 1 });
        res.writeHead(200, { 'content-length': '0', 'x-kvroute-prefix-cache-reset': ok ? 'done' : 'refused' });
        res.end();
        return;
      }
      case '/v1/load_lora_adapter':
      case '/v1/unload_lora_adapter': {
        // api_server.py @ v0.10.0: validate_json_request, the LoadLoRAAdapterRequest / UnloadLoRAAdapterRequest body
        // (`lora_name: str`, `lora_path: str`; `lora_int_id: Optional[int]`), then the text of the handler's success as
        // `Response(status_code=200, content=response)` (no media type, so no content-type), or its ErrorResponse as
        // JSON with its code as status.
        const body = await readJsonRequest(req);
        const name = requiredStr(body, 'lora_name');
        let text: string;
        if (path === '/v1/load_lora_adapter') {
          text = models.load(name, requiredStr(body, 'lora_path'));
        } else {
          if (body.lora_int_id !== undefined && body.lora_int_id !== null) laxInt(body.lora_int_id, ['lora_int_id']);
          text = models.unload(name);
        }
        res.writeHead(200, { 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      case '/server_info':
        // `{"vllm_config": str(raw_request.app.state.vllm_config)}` (api_server.py @ v0.10.0); see vllmConfigString.
        sendJson(res, 200, { vllm_config: vllmConfigString(options) });
        return;
      case '/sleep': {
        // `int(raw_request.query_params.get("level", "1"))`, a ValueError (Starlette's plain 500) for anything else,
        // then the executor's sleep (vllm/v1/executor/abstract.py @ v0.10.0 via executor_base.py): a warning if already
        // asleep, else every tag asleep. No weights or KV memory exist here, so only the state is kept; requests are
        // still served, as vLLM's API server does not refuse them either.
        const level = queryParams(req).get('level') ?? '1';
        if (!/^\s*[+-]?\d+(?:_\d+)*\s*$/.test(level)) throw new PlainServerError(`invalid literal for int() with base 10: '${level}'`);
        if (sleepingTags.size > 0) stderrLogger.warn('Executor is already sleeping.');
        else sleepingTags = new Set(['weights', 'kv_cache']);
        res.writeHead(200, { 'content-length': '0' });
        res.end();
        return;
      }
      case '/wake_up': {
        // `tags = query_params.getlist("tags")`, none meaning all; the executor's wake_up: a warning and nothing done
        // when not asleep or when a tag is not asleep, else those tags (all without tags) awake; awake when none is left.
        const tags = queryParams(req).getAll('tags');
        const unknown = tags.find((t) => !sleepingTags.has(t));
        if (sleepingTags.size === 0) stderrLogger.warn('Executor is not sleeping.');
        else if (unknown !== undefined) stderrLogger.warn(`Tag ${unknown} is not in sleeping tags`, { sleeping_tags: [...sleepingTags] });
        else if (tags.length === 0) sleepingTags.clear();
        else for (const t of tags) sleepingTags.delete(t);
        res.writeHead(200, { 'content-length': '0' });
        res.end();
        return;
      }
      case '/is_sleeping':
        sendJson(res, 200, { is_sleeping: sleepingTags.size > 0 });
        return;
      case '/tokenize': {
        const body = await readJsonRequest(req);
        let answer: unknown;
        try {
          answer = tokenizeResponse(body, tokenizer, options, models);
        } catch (e) {
          // vLLM's tokenize route (api_server.py @ v0.10.0 L470-480) turns any exception the handler lets out into
          // HTTPException(500, str(e)), a JSON 500; the chat route lets the same one out as a plain-text 500.
          if (e instanceof PlainServerError) throw new ApiError(500, e.message, 'Internal Server Error');
          throw e;
        }
        sendJson(res, 200, answer);
        return;
      }
      case '/detokenize': {
        const body = await readJsonRequest(req);
        sendJson(res, 200, detokenizeResponse(body, tokenizer, models));
        return;
      }
      case '/v1/embeddings':
      case '/pooling':
      case '/classify':
      case '/score':
      case '/v1/score':
      case '/rerank':
      case '/v1/rerank':
      case '/v2/rerank':
      case '/v1/audio/transcriptions':
      case '/v1/audio/translations': {
        // vLLM registers these whatever the model's task; for a generate model each handler is None and the route
        // returns create_error_response("The model does not support <API> API") (a BadRequestError, code 400) as its
        // value, which FastAPI serializes with status 200: the body says 400, the status does not (vLLM's own
        // tests/entrypoints/openai/test_transcription_validation.py test_non_asr_model reads `res.code == 400` off a
        // response its client did not raise for). FastAPI reads the body first: JSON through validate_json_request,
        // the audio ones as a form whose `file` is required (vllm/entrypoints/openai/api_server.py @ v0.10.0). The
        // request models' other field checks are not simulated.
        if (!path.startsWith('/v1/audio/')) {
          await readJsonRequest(req);
        } else if (!/\bname="file"/.test((await readBody(req)).toString('latin1'))) {
          throw validationError(['file'], 'missing', 'Field required');
        }
        sendJson(res, 200, new ApiError(400, `The model does not support ${UNSUPPORTED_TASK_ROUTES[path]} API`).body(generation));
        return;
      }
      case '/v1/responses':
        await createResponse(req, res);
        return;
      case '/invocations': {
        // SageMaker's route (api_server.py @ v0.10.0 `invocations`; the stored copies before and after 0.10.0 agree):
        // validate_json_request, then `body = await raw_request.json()` (no body parameter, so FastAPI reads nothing
        // first: the content type is checked before the JSON), a JSONDecodeError raised as HTTPException(400,
        // f"JSON decode error: {e}"); then `"messages" in body` picks ChatCompletionRequest + create_chat_completion,
        // else CompletionRequest + create_completion (task "generate"), and `request_model.model_validate(body)`
        // raises pydantic's ValidationError, which no vLLM handler catches (it is not FastAPI's RequestValidationError):
        // Starlette's plain-text 500. The chosen handler then answers exactly as its own route does.
        if (draining) throw new ApiError(503, 'Server is shutting down.');
        const body = await readInvocationsBody(req);
        let parsed: CompletionRequest | ChatRequest;
        try {
          parsed = 'messages' in body ? parseChatRequest(body, generation) : parseCompletionRequest(body, generation);
        } catch (e) {
          // The parsers' pydantic errors are the validation errors (400 'Bad Request'); model_validate lets them out.
          if (e instanceof ApiError && e.type === 'Bad Request') throw new PlainServerError(e.message);
          throw e;
        }
        await serveGeneration(parsed, req, res);
        return;
      }
      case '/v1/completions':
      case '/v1/chat/completions': {
        if (draining) throw new ApiError(503, 'Server is shutting down.');
        const body = await readJsonRequest(req);
        const parsed = path === '/v1/completions' ? parseCompletionRequest(body, generation) : parseChatRequest(body, generation);
        await serveGeneration(parsed, req, res);
        return;
      }
      default: {
        // `/v1/responses/{response_id}` (GET) and `/v1/responses/{response_id}/cancel` (POST), api_server.py @ v0.10.0.
        const cancel = CANCEL_RESPONSE_PATH.exec(path);
        if (cancel) {
          sendJson(res, 200, cancelResponse(cancel[1]!));
          return;
        }
        const retrieve = RETRIEVE_RESPONSE_PATH.exec(path);
        if (retrieve) {
          sendJson(res, 200, retrieveResponse(retrieve[1]!).body);
          return;
        }
      }
    }
  }

  /**
   * A request handled once the engine is closed (a shutdown's grace ran out while its body was still arriving): vLLM's
   * handlers check the engine right after the model, before any stream starts ("If the engine is dead, raise the
   * engine's DEAD_ERROR. This is required for the streaming case, where we return a success status before we actually
   * start generating text", `create_chat_completion` in serving_chat.py, `create_completion` in serving_completion.py,
   * `create_responses` in serving_responses.py @ v0.10.0: `if self.engine_client.errored: raise
   * self.engine_client.dead_error`; AsyncLLM is `errored` once shut down, its output handler cancelled), and the app's
   * handler for EngineDeadError answers a bare 500 (launcher.py `_add_shutdown_handlers`:
   * `Response(status_code=HTTPStatus.INTERNAL_SERVER_ERROR)`), streaming or not: no 200, no error event. The
   * completions route (and `/invocations` with a completion body, which calls that route) is the exception: it wraps
   * its handler in `except Exception as e: raise HTTPException(500, detail=str(e))` (api_server.py `create_completion`
   * @ v0.10.0, as in the vLLM copies stored from before and after it), so the app's HTTPException handler answers a
   * JSON 500 with EngineDeadError's message (`ENGINE_DEAD_MESSAGE`, vllm/v1/engine/exceptions.py).
   */
  function engineDead(res: ServerResponse): void {
    res.writeHead(500, { 'content-length': '0' });
    res.end();
  }

  /** The chat and completions routes' common tail: the model, the prompt, the engine and the answer. */
  async function serveGeneration(parsed: CompletionRequest | ChatRequest, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const model = models.resolve(parsed.model);
    if (eng.isClosed) {
      if (parsed.kind === 'completion') throw new ApiError(500, ENGINE_DEAD_MESSAGE, 'Internal Server Error');
      engineDead(res);
      return;
    }
    const prepared = prepare(parsed, model, tokenizer, options, options.enableAutoToolChoice);
    // `_base_request_id(raw_request, request.request_id)` (serving_engine.py @ v0.10.0): `default = default or
    // random_uuid()`, then `raw_request.headers.get("X-Request-Id", default)`: the header whenever it is present, even
    // empty (Starlette's Headers.get; the first of repeated ones), else the body's non-empty request_id, else a uuid.
    // Completions read the body's only from 0.10.2 (serving_completion.py @ 61aa4b290 line 120; 0.10.0 has
    // `_base_request_id(raw_request)`), so the parser leaves it undefined in 0.10.0 mode.
    const rid = req.headersDistinct['x-request-id']?.[0] ?? (parsed.requestId || randomUUIDHex());
    await generate(prepared, `${parsed.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${rid}`, res);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The Responses API (responses.ts): vllm/entrypoints/openai/serving_responses.py @ v0.10.0, text models only.
  // ---------------------------------------------------------------------------------------------------------------

  /** `response_store` and `msg_store`, bounded (RESPONSE_STORE_CAPACITY; vLLM's dicts grow without end). */
  const responseStore = new ResponseStore(RESPONSE_STORE_CAPACITY);
  /** `background_tasks`: how to abort a background response still running. */
  const backgroundAborts = new Map<string, () => void>();

  /** `retrieve_responses`: the id must begin with `resp_` (else 400), then be stored (else 404). */
  function retrieveResponse(id: string): StoredResponse {
    if (!id.startsWith('resp_')) throw invalidIdError(id);
    const stored = responseStore.getResponse(id);
    if (stored === undefined) throw notFoundError(id);
    return stored;
  }

  /**
   * `cancel_responses`: only a response still `queued` or `in_progress` (a background one that has not finished) is
   * cancelled: its status becomes `cancelled`, its task is cancelled (the engine request aborted) and the stored
   * response is returned. Anything else is a 400 "Cannot cancel a synchronous response." (create_error_response's
   * default status, err_type invalid_request_error), a completed background response included.
   */
  function cancelResponse(id: string): StoredResponse['body'] {
    const stored = retrieveResponse(id);
    if (stored.body.status !== 'queued' && stored.body.status !== 'in_progress') {
      throw new ApiError(400, 'Cannot cancel a synchronous response.', 'invalid_request_error');
    }
    stored.body.status = 'cancelled';
    backgroundAborts.get(id)?.();
    return stored.body;
  }

  /**
   * `create_responses` (serving_responses.py @ v0.10.0), in its order: the model (`_check_model`, 404); the previous
   * response (`resp_` prefix, else 400; stored, else 404); the input messages (`_construct_input_messages`); the prompt
   * (`_preprocess_chat`: the chat template with its generation prompt, exactly a chat request's prompt, so the same
   * tokens, blocks and KV events); the sampling parameters (`to_sampling_params`: max_tokens = min(max_output_tokens,
   * max_model_len - prompt), its checks a 400); `msg_store` when `store`; then background mode, the streaming refusal,
   * or the full response.
   */
  async function createResponse(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (draining) throw new ApiError(503, 'Server is shutting down.');
    const body = await readJsonRequest(req);
    const r = parseResponsesRequest(body, () => `resp_${randomUUIDHex()}`);
    const model = models.resolve(r.model);
    if (eng.isClosed) {
      engineDead(res);
      return;
    }
    let prev: { messages: Record<string, unknown>[]; response: StoredResponse } | undefined;
    if (r.previousResponseId !== null) {
      const response = retrieveResponse(r.previousResponseId);
      // `self.msg_store[prev_response.id]`: a KeyError (a plain 500) if the messages are gone, which the bounded store
      // can cause only when the response outlived them.
      const messages = responseStore.getMessages(response.body.id);
      if (messages === undefined) throw new PlainServerError(`KeyError: '${response.body.id}'`);
      prev = { messages, response };
    }
    const messages = constructInputMessages(r, prev);
    // The prompt is rendered as a chat of these messages with the generation prompt, by the chat route's own path.
    // ResponsesRequest has no max_tokens, so _validate_input checks the prompt alone (prompt >= max_model_len).
    const parsed = parseChatRequest({ messages }, generation);
    const chat: ChatRequest = { ...parsed, stream: false, priority: r.priority, requestId: r.requestId, sampling: { ...parsed.sampling, temperature: r.temperature, topP: r.topP } };
    const prepared = prepare(chat, model, tokenizer, options, options.enableAutoToolChoice);
    const pr = prepared.prompts[0]!;
    if (r.maxOutputTokens !== undefined) {
      // to_sampling_params: `max_tokens = min(self.max_output_tokens, default_max_tokens)`, then SamplingParams' checks.
      const maxTokens = Math.min(r.maxOutputTokens, options.maxModelLen - pr.tokens.length);
      checkSampling({ ...chat, maxTokens }, maxTokens);
      Object.assign(pr, { maxTokens, maxTokensParam: maxTokens, endsAtEos: false });
    }
    if (r.store) responseStore.putMessages(r.requestId, messages);
    const late = lateErrorOf(prepared);
    if (r.background) {
      const createdAt = Math.floor(Date.now() / 1000);
      const queued: StoredResponse = { body: responseBody(r, { model, createdAt, output: [], status: 'queued', usage: null, maxTokens: pr.maxTokensParam }) };
      responseStore.putResponse(r.requestId, queued);
      if (late) {
        // _run_background_request: an ErrorResponse marks the stored response failed, in the task, after the reply
        // went out as queued.
        sendJson(res, 200, queued.body);
        queued.body.status = 'failed';
        return;
      }
      const abort = runResponse(prepared, res, (result) => {
        backgroundAborts.delete(r.requestId);
        if (result.finishReason === 'abort') {
          const stored = responseStore.getResponse(r.requestId);
          if (stored !== undefined && stored.body.status !== 'completed' && stored.body.status !== 'cancelled') stored.body.status = 'failed';
          return;
        }
        storeUnlessCancelled(r.requestId, completedBody(r, model, createdAt, pr.maxTokensParam, result));
      });
      backgroundAborts.set(r.requestId, abort);
      sendJson(res, 200, queued.body);
      return;
    }
    // `raise NotImplementedError("Streaming responses are not supported")`, outside any try: Starlette's plain 500.
    // The engine request was created but never iterated, so nothing reached the engine.
    if (r.stream) throw new PlainServerError('Streaming responses are not supported');
    if (late) throw late;
    const createdAt = Math.floor(Date.now() / 1000);
    await new Promise<void>((resolve) => {
      const abort = runResponse(prepared, res, (result) => {
        if (result.finishReason === 'abort') {
          if (!res.headersSent && !res.destroyed) sendJson(res, 503, new ApiError(503, 'Request aborted: server is shutting down.').body(generation));
          resolve();
          return;
        }
        const answer = completedBody(r, model, createdAt, pr.maxTokensParam, result);
        if (r.store) storeUnlessCancelled(r.requestId, answer);
        sendJson(res, 200, options.simExtension ? { ...answer, kvroute_sim: simTiming(result, options.podName) } : answer);
        resolve();
      });
      // with_cancellation: a client that goes away cancels the handler, and with it the engine request.
      res.on('close', () => {
        if (!res.writableFinished) abort();
      });
    });
  }

  /** Stores a finished response: "If the response is already cancelled, don't update it." (responses_full_generator). */
  function storeUnlessCancelled(id: string, body: StoredResponse['body']): void {
    if (responseStore.getResponse(id)?.body.status !== 'cancelled') responseStore.putResponse(id, { body });
  }

  /** The completed `ResponsesResponse` of a finished request: its filler text as one output message, UsageInfo. */
  function completedBody(r: ResponsesRequest, model: string, createdAt: number, maxTokens: number, result: RequestResult & { text: string; promptTokens: number }): StoredResponse['body'] {
    const u = usage(result.promptTokens, result.completionTokens, result.cachedTokens, { details: options.enablePromptTokensDetails, stream: false });
    return responseBody(r, { model, createdAt, output: outputItems(result.text, `msg_${randomUUIDHex()}`), status: 'completed', usage: u, maxTokens });
  }

  /** Submits a prepared one-prompt chat (n = 1, FINAL_ONLY output) to the engine; returns its abort. */
  function runResponse(p: Prepared, res: ServerResponse, done: (r: RequestResult & { text: string; promptTokens: number }) => void): () => void {
    const pr = p.prompts[0]!;
    const { plan } = outputPlan(pr, p.req);
    const [handle] = submitTracked(res, [
      {
        params: engineParams(p, pr, plan, 1),
        listener: {
          onToken(): void {},
          onFinish(result: RequestResult): void {
            done({ ...result, text: plan.deltas.join(''), promptTokens: pr.tokens.length });
          },
        },
      },
    ]);
    return () => handle!.abort();
  }

  /**
   * prometheus_client's ASGI app (make_asgi_app, exposition.py 0.22 `_bake_output`), which vLLM mounts at /metrics and
   * which answers paths below it: OpenMetrics when Accept names it (`choose_encoder`), gzipped whenever
   * Accept-Encoding names gzip.
   */
  async function metricsMount(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const open = openMetricsAccepted(req.headers.accept);
    const text = open ? await metrics.openMetrics() : await metrics.metrics();
    const contentType = open ? metrics.openMetricsContentType : metrics.contentType;
    if (gzipAccepted(req.headers['accept-encoding'])) {
      res.writeHead(200, { 'content-type': contentType, 'content-encoding': 'gzip' });
      res.end(gzipSync(text));
    } else {
      res.writeHead(200, { 'content-type': contentType });
      res.end(text);
    }
  }

  /**
   * What a prompt generates: the filler text (or a named tool's guided arguments) cut by the request's stop conditions;
   * the filler's last token stands for EOS (see prepare): FINISHED_STOPPED, stop_reason None.
   */
  function outputPlan(pr: PreparedPrompt, req: Prepared['req']): { plan: OutputPlan; fillerTexts: readonly string[] } {
    const filler = pr.guided ? guidedTokens(pr.guided.subarray(0, pr.maxTokens), tokenizer) : tokenizer.filler(pr.maxTokens);
    const plan = planOutput(filler.ids, filler.texts, req);
    if (pr.endsAtEos && plan.finishReason === 'length') plan.finishReason = 'stop';
    return { plan, fillerTexts: filler.texts };
  }

  /** The engine request of one choice of `p` (of `parentN` siblings) answering prompt `pr` with `plan`. */
  function engineParams(p: Prepared, pr: PreparedPrompt, plan: OutputPlan, parentN: number): Parameters<Engine['submitAll']>[0][number]['params'] {
    // A LoRA adapter's lora_int_id is OpenAIServingModels' counter at its load.
    const lora = models.adapter(p.model);
    return {
      promptTokens: pr.tokens,
      outputTokens: plan.ids,
      cacheSalt: p.req.cacheSalt,
      loraId: lora?.intId ?? null,
      loraName: lora?.name ?? null,
      finishReason: plan.finishReason,
      maxTokensParam: pr.maxTokensParam,
      parentN,
      priority: p.req.priority,
      skipPrefixCache: p.req.sampling.promptLogprobs !== undefined,
    };
  }

  /**
   * Checks the V1 processor makes when a request reaches the engine (vllm/v1/engine/processor.py @ v0.10.0,
   * `_validate_model_input`), or null.
   */
  function lateErrorOf(p: Prepared): ApiError | null {
    const { req } = p;
    let lateError: ApiError | null = processorError(req);
    for (const pr of lateError ? [] : p.prompts) {
      if (pr.tokens.length === 0) lateError = badRequest('The decoder prompt cannot be empty');
      else {
        let maxId = 0;
        for (const t of pr.tokens) if (t > maxId) maxId = t;
        if (maxId > tokenizer.maxTokenId) lateError = badRequest(`Token id ${maxId} is out of vocabulary`);
        // vLLM checks only the largest id; a negative one would reach the GPU's embedding lookup and fail there.
        // The simulator refuses it the same way instead.
        const negative = pr.ids?.find((t) => t < 0);
        if (!lateError && negative !== undefined) lateError = badRequest(`Token id ${negative} is out of vocabulary`);
      }
      if (!lateError && pr.tokens.length + pr.maxTokens > eng.maxSequenceTokens) {
        // Only when --kv-cache-blocks is within a block of --max-model-len: the null block holds no KV
        // (Engine.maxSequenceTokens); vLLM would leave such a request waiting forever.
        lateError = badRequest(`prompt + max_tokens = ${pr.tokens.length + pr.maxTokens} tokens exceed the KV cache's ${eng.maxSequenceTokens - 1} slots.`);
      }
      if (lateError) break;
    }
    return lateError;
  }

  function generate(p: Prepared, id: string, res: ServerResponse): Promise<void> {
    const { req } = p;
    const isChat = req.kind === 'chat';
    // Checks the V1 processor makes when a request reaches the engine (vllm/v1/engine/processor.py @ v0.10.0,
    // `_validate_model_input`). AsyncLLM.generate is an async generator, so they run once the response has started:
    // a stream then gets 200 and an error event, a non-streaming request a 400.
    // A non-zero `priority` is no error under fcfs: V1's processor passes it on (vLLM #19057 removed its "V1 does not
    // support priority yet" before v0.10.0) and the fcfs queue ignores it. "Got priority N but Priority scheduling is
    // not enabled." is the V0 engine's.
    // The sampling parameters are checked first (`_validate_params`), then each prompt (`_validate_model_inputs`).
    const lateError = lateErrorOf(p);
    if (lateError) {
      // Completions are not streamed when best_of differs from n (serving_completion.py @ v0.10.0: `stream =
      // request.stream and (request.best_of is None or request.n == request.best_of)`): the error is then a JSON 400.
      const streamed = req.stream && (req.kind === 'chat' || req.sampling.bestOf === undefined || req.sampling.bestOf === req.n);
      if (!streamed) return Promise.reject(lateError);
      res.writeHead(200, SSE_HEADERS);
      // json.dumps with its default separators and ensure_ascii (create_streaming_error_response, serving_engine.py @
      // 6eca337ce lines 418-429, 61aa4b290 lines 454-464).
      res.end(`data: ${pythonJsonDumps(lateError.streamBody(generation))}\n\ndata: [DONE]\n\n`);
      return Promise.resolve();
    }
    const created = Math.floor(Date.now() / 1000);
    const role = isChat && !req.addGenerationPrompt ? req.messages[req.messages.length - 1].role : 'assistant';
    // n choices per prompt; choice i answers prompt floor(i / n) (serving_completion.py: `output.index + prompt_idx * n`).
    const n = req.n;
    const choices = p.prompts.flatMap((pr, pi) => {
      const { plan, fillerTexts } = outputPlan(pr, req);
      // echo: completions prepend the prompt's text; chat prepends the last message when its role is the reply's.
      let echoText = '';
      if (req.echo) {
        if (!isChat) echoText = pr.text;
        else if (req.messages[req.messages.length - 1].role === role) echoText = String(req.messages[req.messages.length - 1].content ?? '');
      }
      const lp = req.sampling.logprobs === undefined ? null : fillerLogprobs(plan.ids, fillerTexts, { ids: tokenizer.fillerIds, texts: tokenizer.fillerTexts }, req.sampling.logprobs, req.returnTokensAsTokenIds);
      return Array.from({ length: n }, () => ({ pi, pr, plan, echoText, lp, textSent: 0, promptIdsSent: false, result: null as RequestResult | null, finishedAs: 0, lastChunk: undefined as Record<string, unknown> | undefined, toolText: '', toolState: { nameReturned: false } }));
    });
    const k = req.sampling.logprobs ?? 0;
    // prompt_logprobs (explicit, or chat echo's top_logprobs): null in the response unless asked for.
    const promptLogprobsOf = (pr: PreparedPrompt): unknown =>
      req.sampling.promptLogprobs === undefined
        ? null
        : promptLogprobs(pr.tokens, (id) => tokenizer.decode([id]), { ids: tokenizer.fillerIds, texts: tokenizer.fillerTexts }, req.sampling.promptLogprobs);
    const logprobsOf = (c: (typeof choices)[number], from: number, to: number, offset: number): unknown =>
      c.lp === null ? null : isChat ? chatLogprobs(c.lp.slice(from, to), k) : completionLogprobs(c.lp.slice(from, to), k, offset);
    // vLLM 0.10.2's token id fields (#22587, 24f4d1a22), absent in 0.10.0 mode: protocol.py @ 61aa4b290 declares them
    // `Optional[list[int]] = None` (CompletionResponseChoice.token_ids / prompt_token_ids, lines 1565 and 1567;
    // CompletionResponseStreamChoice, 1600-1601; ChatCompletionResponseChoice.token_ids, 1775;
    // ChatCompletionResponse.prompt_token_ids, 1791; ChatCompletionResponseStreamChoice.token_ids, 1810;
    // ChatCompletionStreamResponse.prompt_token_ids, 1821). The serving classes fill them only with
    // `return_token_ids`: the engine prompt's ids (after truncate_prompt_tokens) and `as_list(output.token_ids)`, the
    // generated ids (a stop token included; never the echoed prompt's).
    const v2 = generation === '0.10.2';
    const promptIdsOf = (pr: PreparedPrompt): number[] | null => (req.returnTokenIds ? Array.from(pr.tokens) : null);
    const outputIdsOf = (ids: readonly number[]): number[] | null => (req.returnTokenIds ? [...ids] : null);
    const promptTokensTotal = isChat ? p.prompts[0].tokens.length : p.prompts.reduce((a, pr) => a + pr.tokens.length, 0);

    /**
     * A chat chunk's delta: the content, or with a named tool choice a DeltaToolCall carrying the text as arguments
     * (the first with a tool call id, type and name; serving_chat.py @ 6eca337ce lines 625-674), or with "required"
     * what extract_tool_call_required_streaming makes of it (null: no chunk).
     */
    const toolDelta = (c: (typeof choices)[number], i: number, text: string): Record<string, unknown> | null => {
      const tool = p.tool;
      if (tool === undefined) return { content: text };
      if (tool.kind === 'named') {
        const first = !c.toolState.nameReturned;
        c.toolState.nameReturned = true;
        return { tool_calls: [first ? { id: toolCallId(), type: 'function', index: i, function: { name: tool.name, arguments: text } } : { index: i, function: { arguments: text } }] };
      }
      const call = requiredStreamDelta(c.toolText, text, c.toolState, toolCallId);
      c.toolText += text;
      return call === null ? null : { tool_calls: [call] };
    };

    return new Promise<void>((resolve) => {
      const handles: RequestHandle[] = [];
      let open = choices.length;
      // The order the choices finished in (the engine reports a step's finishes in its running order).
      let finishedCount = 0;
      let firstEmitter = -1;
      const chunkBase = { id, object: isChat ? 'chat.completion.chunk' : 'text_completion', created, model: p.model };
      const generated = choices.map(() => 0);
      // A 0.10.2 completion stream puts the prompt's ids on each choice's first chunk whether or not return_token_ids
      // is set (serving_completion.py @ 61aa4b290 lines 398 and 406-410: `if not has_echoed[i]:
      // prompt_token_ids_to_return = prompt_token_ids`, no return_token_ids check), and null on the rest; vLLM #27561
      // (a4fc21895, 2025-10-27, after 0.10.2) made it depend on return_token_ids.
      const firstPromptIds = (c: (typeof choices)[number]): number[] | null => {
        if (c.promptIdsSent) return null;
        c.promptIdsSent = true;
        return Array.from(c.pr.tokens);
      };
      const continuous = (i: number): Record<string, unknown> => {
        const pt = choices[i].pr.tokens.length;
        const ct = generated[i];
        // Chat chunks are dumped with exclude_unset (only the fields set), completion chunks with everything, so their
        // usage carries prompt_tokens_details: null (serving_chat.py / serving_completion.py @ v0.10.0).
        return isChat
          ? { usage: { prompt_tokens: pt, total_tokens: pt + ct, completion_tokens: ct } }
          : { usage: { prompt_tokens: pt, total_tokens: pt + ct, completion_tokens: ct, prompt_tokens_details: null } };
      };
      // Completion chunks always carry "usage" (null unless continuous usage stats are on); chat chunks only with them.
      const usageOf = (i: number): Record<string, unknown> => (req.continuousUsage ? continuous(i) : isChat ? {} : { usage: null });
      if (req.stream) {
        res.writeHead(200, SSE_HEADERS);
        // Headers leave now so a proxy sees the response start; the body waits for the first token.
        res.flushHeaders();
      }
      const sse = (obj: unknown): void => {
        if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`);
      };
      const finishAll = (): void => {
        const results = choices.map((c) => c.result as RequestResult);
        const completion = results.reduce((a, r) => a + r.completionTokens, 0);
        // The cached tokens vLLM reports: the first output's (streaming) or the last prompt's (non-streaming), and of
        // its n children the one that finished last: with FINAL_ONLY output the parent's RequestOutput is made when its
        // last child finishes, with that child's num_cached_tokens (ParentRequest.get_outputs in
        // vllm/v1/engine/parallel_sampling.py, OutputProcessor.process_outputs @ v0.10.0); siblings hit each other's
        // blocks, so the children's counts differ.
        const lastPrompt = choices.filter((c) => c.pi === p.prompts.length - 1);
        const lastFinished = lastPrompt.reduce((a, c) => (c.finishedAs > a.finishedAs ? c : a), lastPrompt[0]!);
        const cachedFrom = req.stream ? results[Math.max(0, firstEmitter)] : (lastFinished.result as RequestResult);
        const u = usage(promptTokensTotal, completion, cachedFrom.cachedTokens, { details: options.enablePromptTokensDetails, stream: req.stream });
        if (req.stream) {
          if (req.includeUsage) sse({ ...chunkBase, choices: [], usage: u });
          if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
        } else if (results.some((r) => r.finishReason === 'abort')) {
          if (!res.headersSent && !res.destroyed) sendJson(res, 503, new ApiError(503, 'Request aborted: server is shutting down.').body(generation));
        } else {
          const timing = simTiming(results[0], options.podName);
          // "required": the reply parsed as tool calls, or pydantic's ValidationError (a ValueError) answered as a 400
          // by create_chat_completion (serving_chat.py @ 6eca337ce lines 1029-1048 and 284-290).
          const toolCalls = choices.map((c) => (isChat ? toolCallsOf(c.plan.deltas.join(''), p.tool) : []));
          const invalid = toolCalls.find((t): t is { error: string } => !Array.isArray(t));
          if (invalid) {
            sendJson(res, 400, badRequest(invalid.error).body(generation));
            resolve();
            return;
          }
          // Field order and defaults of ChatCompletionResponse / CompletionResponse (protocol.py @ v0.10.0), dumped
          // with model_dump(): every field, null when unset.
          const body = isChat
            ? {
                id,
                object: 'chat.completion',
                created,
                model: p.model,
                choices: choices.map((c, i) => ({
                  index: i,
                  message: { role, ...messageContent(c.echoText, c.plan.deltas.join(''), p.tool), refusal: null, annotations: null, audio: null, function_call: null, tool_calls: toolCalls[i], reasoning_content: null },
                  logprobs: logprobsOf(c, 0, c.plan.ids.length, 0),
                  finish_reason: results[i].finishReason,
                  stop_reason: c.plan.stopReason,
                  // serving_chat.py @ 61aa4b290 lines 1373-1374.
                  ...(v2 ? { token_ids: outputIdsOf(c.plan.ids) } : {}),
                })),
                service_tier: null,
                system_fingerprint: null,
                usage: u,
                prompt_logprobs: promptLogprobsOf(p.prompts[0]),
                // serving_chat.py @ 61aa4b290 lines 1416-1417: before kv_transfer_params, as protocol.py orders them.
                ...(v2 ? { prompt_token_ids: promptIdsOf(p.prompts[0]) } : {}),
                kv_transfer_params: null,
                ...(options.simExtension ? { kvroute_sim: timing } : {}),
              }
            : {
                id,
                object: 'text_completion',
                created,
                model: p.model,
                choices: choices.map((c, i) => ({
                  index: i,
                  text: p.echoOnly ? c.echoText : c.echoText + c.plan.deltas.join(''),
                  logprobs: logprobsOf(c, 0, c.plan.ids.length, 0),
                  finish_reason: results[i].finishReason,
                  stop_reason: c.plan.stopReason,
                  // 0.10.2: token_ids between stop_reason and prompt_logprobs, prompt_token_ids last (protocol.py @
                  // 61aa4b290 lines 1565-1567; serving_completion.py lines 571-574). With echo, token_ids are still
                  // only the generated ones (`as_list(output.token_ids)`).
                  ...(v2 ? { token_ids: outputIdsOf(c.plan.ids) } : {}),
                  prompt_logprobs: promptLogprobsOf(c.pr),
                  ...(v2 ? { prompt_token_ids: promptIdsOf(c.pr) } : {}),
                })),
                service_tier: null,
                system_fingerprint: null,
                usage: u,
                kv_transfer_params: null,
                ...(options.simExtension ? { kvroute_sim: timing } : {}),
              };
          sendJson(res, 200, body);
        }
        // One request_params_n / max_num_generation_tokens sample per parent of n > 1 (parallel_sampling.py @ v0.10.0).
        if (n > 1) {
          for (let pi = 0; pi < p.prompts.length; pi++) {
            const group = results.slice(pi * n, pi * n + n);
            if (group.every((r) => r.finishReason !== 'abort')) metrics.observeParentFinished(n, Math.max(...group.map((r) => r.completionTokens)));
          }
        }
        resolve();
      };

      // Every choice (the n children of each prompt) is handed to the engine at one instant (Engine.submitAll): vLLM
      // stamps a parent request's arrival_time once and copies it to each child (vllm/v1/engine/async_llm.py @
      // 6eca337ce lines 237-253). The prompts of a batch are separate requests there, stamped microseconds apart by the
      // API server, which model time does not count either.
      const submissions: Parameters<Engine['submitAll']>[0][number][] = [];
      choices.forEach((c, i) => {
        const listener = {
          onToken(k: number): void {
            if (!req.stream) {
              generated[i] = k + 1;
              return;
            }
            if (firstEmitter < 0) {
              firstEmitter = i;
              // vLLM sends the role in its own chunk per choice at the first output, then the echoed message if any.
              if (isChat) {
                // 0.10.2 sets prompt_token_ids on every role chunk (one per choice; serving_chat.py @ 61aa4b290 lines
                // 589-598), null without return_token_ids, and those chunks are dumped with exclude_unset (line 607),
                // so the key is there either way; it follows usage in ChatCompletionStreamResponse. Later chunks do
                // not set it, so they have no such key.
                const promptIds = v2 ? { prompt_token_ids: promptIdsOf(p.prompts[0]) } : {};
                for (let j = 0; j < choices.length; j++) sse({ ...chunkBase, choices: [{ index: j, delta: { role, content: '' }, logprobs: null, finish_reason: null }], ...(req.continuousUsage ? continuous(j) : {}), ...promptIds });
                if (c.echoText) for (let j = 0; j < choices.length; j++) sse({ ...chunkBase, choices: [{ index: j, delta: { content: c.echoText }, logprobs: null, finish_reason: null }], ...(req.continuousUsage ? continuous(j) : {}) });
              }
            }
            generated[i] = k + 1;
            const isLast = k === c.plan.ids.length - 1;
            const finish = isLast ? { finish_reason: c.plan.finishReason, stop_reason: c.plan.stopReason } : { finish_reason: null };
            let chunk: Record<string, unknown>;
            // 0.10.2: each chunk's token_ids are the ids it adds (null without return_token_ids).
            const ids = v2 ? { token_ids: outputIdsOf([c.plan.ids[k]]) } : {};
            if (isChat) {
              const delta = toolDelta(c, i, c.plan.deltas[k]);
              if (delta === null) {
                // No chunk for this token (serving_chat.py @ 6eca337ce lines 808-813: `if delta_message is None:
                // continue`), not even the finish one.
                if (isLast) c.lastChunk = undefined;
                return;
              }
              // 0.10.2 says "tool_calls" once a tool call was streamed (tools_streamed, serving_chat.py @ 61aa4b290
              // lines 1047-1052).
              const fin = isLast && p.tool && v2 ? { ...finish, finish_reason: 'tool_calls' } : finish;
              // Set explicitly on every content and finish chunk (serving_chat.py @ 61aa4b290 lines 986-992, 1054-1061),
              // so exclude_unset keeps a null.
              chunk = { ...chunkBase, choices: [{ index: i, delta, logprobs: logprobsOf(c, k, k + 1, 0), ...fin, ...ids }], ...usageOf(i) };
            } else {
              // echo with max_tokens 0: the one chunk carries the prompt alone (serving_completion.py @ v0.10.0).
              const text = p.echoOnly ? c.echoText : k === 0 ? c.echoText + c.plan.deltas[k] : c.plan.deltas[k];
              const lps = logprobsOf(c, k, k + 1, c.textSent);
              c.textSent += c.plan.deltas[k].length;
              chunk = { ...chunkBase, choices: [{ index: i, text, logprobs: lps, finish_reason: finish.finish_reason, stop_reason: isLast ? c.plan.stopReason : null, ...(v2 ? { prompt_token_ids: firstPromptIds(c), ...ids } : {}) }], ...usageOf(i) };
            }
            // The chunk carrying the last token is held back until onFinish (same simulated instant) so it can also
            // carry the request's model timing.
            if (isLast) c.lastChunk = chunk;
            else sse(chunk);
          },
          onFinish(r: RequestResult): void {
            c.result = r;
            c.finishedAs = ++finishedCount;
            if (req.stream) {
              if (r.finishReason === 'abort') {
                // Only seen on shutdown: a disconnected client reads nothing.
                const ids = v2 ? { token_ids: outputIdsOf([]) } : {};
                const choice = isChat
                  ? { index: i, delta: {}, logprobs: null, finish_reason: 'abort', ...ids }
                  : { index: i, text: '', logprobs: null, finish_reason: 'abort', stop_reason: null, ...(v2 ? { prompt_token_ids: firstPromptIds(c), ...ids } : {}) };
                c.lastChunk = { ...chunkBase, choices: [choice], ...usageOf(i) };
              }
              if (c.lastChunk !== undefined) sse(options.simExtension ? { ...c.lastChunk, kvroute_sim: simTiming(r, options.podName) } : c.lastChunk);
            }
            if (--open === 0) finishAll();
          },
        };
        submissions.push({ params: engineParams(p, c.pr, c.plan, n), listener });
      });
      try {
        handles.push(...submitTracked(res, submissions));
      } catch (e) {
        if (!req.stream) throw e;
        // The headers are out. vLLM's stream generators catch what the engine raises while they iterate it and end
        // the stream with the error as an event, then [DONE] (serving_chat.py chat_completion_stream_generator and
        // serving_completion.py completion_stream_generator @ v0.10.0: `except Exception as e: ... data =
        // self.create_streaming_error_response(str(e)); yield f"data: {data}\n\n"`, then `yield "data: [DONE]\n\n"`;
        // the chat one logs "Error in chat completion stream generator." with the traceback;
        // completion_stream_generator logs nothing). A closed engine does not get here: it is refused before the
        // stream starts, as vLLM refuses a dead one (`engineDead`).
        const message = (e as Error)?.message ?? String(e);
        if (isChat) logLine('error', 'Error in chat completion stream generator.', { error: (e as Error)?.stack ?? String(e) });
        if (!res.writableEnded && !res.destroyed) res.end(`data: ${pythonJsonDumps(badRequest(message).streamBody(generation))}\n\ndata: [DONE]\n\n`);
        resolve();
        return;
      }
      const abortAll = (): void => {
        for (const h of handles) h.abort();
      };
      res.on('close', () => {
        // The client went away before the end: free the slots and blocks of what still runs.
        if (open > 0) abortAll();
      });
      if (res.destroyed && open > 0) abortAll();
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
    url: `${scheme}://${urlHost === '0.0.0.0' ? '127.0.0.1' : urlHost}:${addr.port}`,
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

/**
 * The TLS side of vLLM's `--ssl-*` flags as uvicorn builds it (uvicorn/config.py create_ssl_context, from vLLM's
 * run_server → serve_http @ v0.10.0): `load_cert_chain(certfile, keyfile)` (without a key file, the key is read from
 * the certificate file; OpenSSL's PEM reader skips the blocks of the other kind, so the same file serves as both here),
 * `verify_mode = ssl.VerifyMode(cert_reqs)`, `load_verify_locations(ca_certs)` when given. A file that cannot be read or
 * a key that does not fit stops the start. With CERT_OPTIONAL a client certificate that fails verification ends the
 * connection right after the handshake (the server's `secureConnection` check), where Python ends the handshake itself.
 * Difference: without --ssl-ca-certs Node verifies client certificates against its bundled root CAs where uvicorn's
 * context has none.
 */
function tlsServerOptions(o: SimulatorOptions): HttpsServerOptions {
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new OptionError(flag, `cannot read ${JSON.stringify(path)}: ${(e as Error).message}`);
    }
  };
  const cert = read('--ssl-certfile', o.sslCertfile as string);
  const tls: HttpsServerOptions = {
    cert,
    key: o.sslKeyfile === null ? cert : read('--ssl-keyfile', o.sslKeyfile),
    ...(o.sslCaCerts === null ? {} : { ca: read('--ssl-ca-certs', o.sslCaCerts) }),
    requestCert: o.sslCertReqs !== 0,
    rejectUnauthorized: o.sslCertReqs === 2,
  };
  try {
    createSecureContext(tls);
  } catch (e) {
    const pair = o.sslKeyfile === null ? 'and no --ssl-keyfile (the key is then read from the certificate file)' : `and --ssl-keyfile ${JSON.stringify(o.sslKeyfile)}`;
    throw new OptionError('--ssl-certfile', `${JSON.stringify(o.sslCertfile)} ${pair}: ${(e as Error).message}`);
  }
  return tls;
}

/** Routes vLLM registers only when VLLM_SERVER_DEV_MODE is set (api_server.py @ v0.10.0). */
export const DEV_MODE_ROUTES: ReadonlySet<string> = new Set(['/server_info', '/reset_prefix_cache', '/sleep', '/wake_up', '/is_sleeping']);

/** Routes vLLM registers only when VLLM_ALLOW_RUNTIME_LORA_UPDATING is set. */
export const RUNTIME_LORA_ROUTES: ReadonlySet<string> = new Set(['/v1/load_lora_adapter', '/v1/unload_lora_adapter']);

/** Routes of the other tasks (pooling, scoring, speech), each with the API name its 400 gives for a generate model. */
const UNSUPPORTED_TASK_ROUTES: Record<string, string> = {
  '/v1/embeddings': 'Embeddings',
  '/pooling': 'Pooling',
  '/classify': 'Classification',
  '/score': 'Score',
  '/v1/score': 'Score',
  '/rerank': 'Rerank (Score)',
  '/v1/rerank': 'Rerank (Score)',
  '/v2/rerank': 'Rerank (Score)',
  '/v1/audio/transcriptions': 'Transcriptions',
  '/v1/audio/translations': 'Translations',
};

const ROUTES: Record<string, string[]> = {
  '/health': ['GET'],
  // The first method is the first APIRoute registered for the path, whose `allow` a 405 carries.
  '/ping': ['POST', 'GET'],
  '/load': ['GET'],
  '/metrics': ['GET'],
  '/v1/models': ['GET'],
  '/version': ['GET'],
  '/tokenize': ['POST'],
  '/detokenize': ['POST'],
  '/server_info': ['GET'],
  '/reset_prefix_cache': ['POST'],
  '/sleep': ['POST'],
  '/wake_up': ['POST'],
  '/is_sleeping': ['GET'],
  '/v1/load_lora_adapter': ['POST'],
  '/v1/unload_lora_adapter': ['POST'],
  '/v1/completions': ['POST'],
  '/v1/chat/completions': ['POST'],
  '/v1/responses': ['POST'],
  '/invocations': ['POST'],
  ...Object.fromEntries(Object.keys(UNSUPPORTED_TASK_ROUTES).map((path) => [path, ['POST']])),
};

/**
 * The routes with a path parameter (`{response_id}`, Starlette's `[^/]+`): GET /v1/responses/{response_id} and POST
 * /v1/responses/{response_id}/cancel (vllm/entrypoints/openai/api_server.py @ v0.10.0).
 */
function pathParamRoute(path: string): string[] | undefined {
  if (CANCEL_RESPONSE_PATH.test(path)) return ['POST'];
  if (RETRIEVE_RESPONSE_PATH.test(path)) return ['GET'];
  return undefined;
}

/** One HTTP request as the instrumentator's middleware sees it, and the span of its engine work. */
interface HttpTiming {
  /** Past the API-key and CORS middlewares, which vLLM adds outside the instrumentator's. */
  reached: boolean;
  /** Ended by an exception that Starlette's ServerErrorMiddleware, outside the instrumentator, answered. */
  raised: boolean;
  engine: { wallStart: number; modelStart: number; open: number; wallEnd: number | null; modelEnd: number | null; firstArrivalMs: number; lastFinishMs: number } | null;
}

/**
 * The HTTP exchange each response belongs to, so engine submissions can be charged to it (passed by its response, which
 * every submitting path holds; an AsyncLocalStorage would turn on promise hooks for the whole process).
 */
const httpTimings = new WeakMap<ServerResponse, HttpTiming>();

/** A served path's FastAPI path template: the path itself but for the `{response_id}` routes. */
function routeTemplate(path: string): string {
  if (CANCEL_RESPONSE_PATH.test(path)) return '/v1/responses/{response_id}/cancel';
  if (RETRIEVE_RESPONSE_PATH.test(path)) return '/v1/responses/{response_id}';
  return path;
}

/**
 * vLLM's `Instrumentator(excluded_handlers=[...])` in `mount_metrics` (vllm/entrypoints/openai/api_server.py @ v0.10.0;
 * the same list before and after it), compiled and searched as the instrumentator does (`re.compile`, `pattern.search`).
 */
const INSTRUMENTATOR_EXCLUDED_HANDLERS: readonly RegExp[] = ['/metrics', '/health', '/load', '/ping', '/version', '/server_info'].map((p) => new RegExp(p));

const CANCEL_RESPONSE_PATH = /^\/v1\/responses\/([^/]+)\/cancel$/;
const RETRIEVE_RESPONSE_PATH = /^\/v1\/responses\/([^/]+)$/;

/** Starlette's StreamingResponse(media_type="text/event-stream") adds only the charset. */
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8' };

/** An unknown path or method, answered by Starlette's router before any vLLM code runs. */
class RouteError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** `random_tool_call_id()` / 0.10.2's `make_tool_call_id()` by default: `chatcmpl-tool-` + 32 hex digits. */
function toolCallId(): string {
  return `chatcmpl-tool-${randomUUIDHex()}`;
}

/** The tokens of a guided reply with the text each adds (decoded as a prefix, so multi-byte characters stay whole). */
function guidedTokens(ids: Uint32Array, tokenizer: SimTokenizer): { ids: number[]; texts: string[] } {
  const texts: string[] = [];
  let before = '';
  for (let k = 0; k < ids.length; k++) {
    const upTo = tokenizer.decode(Array.from(ids.subarray(0, k + 1)));
    texts.push(upTo.slice(before.length));
    before = upTo;
  }
  return { ids: Array.from(ids), texts };
}

/**
 * A chat message's content: the reply, or "" when a tool choice shows it as tool calls (ChatMessage(content="",
 * tool_calls=…), serving_chat.py @ 6eca337ce lines 1014-1048); echo's text comes first either way.
 */
function messageContent(echoText: string, reply: string, tool: ToolOutput | undefined): { content: string } {
  return { content: echoText + (tool === undefined ? reply : '') };
}

/**
 * A non-streaming message's tool_calls: [] without a tool choice; a named tool's one call with the reply as its
 * arguments; "required"'s calls parsed from the reply, each `arguments` = `json.dumps(parameters, ensure_ascii=False)`
 * (serving_chat.py @ 6eca337ce lines 1014-1048), or the error when the reply does not parse.
 */
function toolCallsOf(reply: string, tool: ToolOutput | undefined): Record<string, unknown>[] | { error: string } {
  if (tool === undefined) return [];
  if (tool.kind === 'named') return [{ id: toolCallId(), type: 'function', function: { name: tool.name, arguments: reply } }];
  const parsed = parseRequiredCalls(reply);
  if ('error' in parsed) return parsed;
  return parsed.calls.map((c) => ({ id: toolCallId(), type: 'function', function: { name: c.name, arguments: pythonJsonDumps(c.parameters, false) } }));
}

/** vLLM's `random_uuid()`: a uuid4's 32 hex digits. */
function randomUUIDHex(): string {
  return randomUUID().replace(/-/g, '');
}

function tokenizeChat(req: ChatPromptRequest, tokenizer: SimTokenizer, addSpecialTokens = false, route: 'chat' | 'tokenize' = 'chat'): Uint32Array {
  if (req.messages.length === 0) {
    // transformers' apply_chat_template starts with `isinstance(conversation[0], (list, tuple)) or …`, an IndexError
    // on an empty list; vLLM's apply_hf_chat_template re-raises any template error as `ValueError(str(e)) from e`, and
    // both serving_chat.py and serving_tokenization.py answer `create_error_response(f"{e} {e.__cause__}")`
    // (vllm/entrypoints/chat_utils.py @ v0.10.0). @huggingface/jinja would render it without complaint.
    throw badRequest('list index out of range list index out of range');
  }
  let text: string;
  try {
    // vLLM's conversation: the fields it keeps of each message, tool calls validated and their arguments parsed
    // (parse_chat_messages, chat_utils.py @ v0.10.0), which can refuse the request as the template can.
    // In the "openai" content format (a request's own template that loops over a message's content) every content is a
    // list of text parts (chat_utils.py _parse_chat_message_content @ v0.10.0: a string one part, null none).
    const messages = tokenizer.contentFormat(req.chatTemplate) === 'openai'
      ? req.messages.map((m) => ({ ...m, content: (m.contentParts ?? [m.content]).map((text) => ({ type: 'text', text })) }))
      : req.messages;
    text = tokenizer.renderChat(vllmConversation(messages).messages, {
      addGenerationPrompt: req.addGenerationPrompt,
      continueFinalMessage: req.continueFinalMessage,
      tools: req.tools,
      templateKwargs: req.templateKwargs,
      ...(req.documents !== undefined ? { documents: req.documents } : {}),
      ...(req.chatTemplate !== undefined ? { chatTemplate: req.chatTemplate } : {}),
    });
  } catch (e) {
    // serving_chat.py @ v0.10.0: `create_error_response(f"{e} {e.__cause__}")`, the cause being the original error
    // for what apply_hf_chat_template re-raises; an AssertionError escapes as a plain-text 500 (ChatTemplateRefusal).
    if (e instanceof ChatTemplateRefusal) {
      if (e.response.status === 500) throw new PlainServerError(e.message);
      // serving_tokenization.py @ v0.10.0 catches only (ValueError, TypeError, jinja2.TemplateError): json.loads's
      // RecursionError on a call's arguments escapes to the route's 500 (serving_chat.py catches RuntimeError: 400).
      if (route === 'tokenize' && e.pythonException === 'RecursionError') throw new PlainServerError(e.message);
      throw badRequest(e.response.message);
    }
    throw badRequest(`${(e as Error).message} None`);
  }
  // vLLM tokenizes a rendered chat without adding special tokens: the template placed them.
  return tokenizer.encode(text, addSpecialTokens);
}

interface PreparedPrompt {
  tokens: Uint32Array;
  /** The ids as sent, for a token-id prompt. */
  ids?: readonly number[];
  /** The prompt's text (a token-id prompt decoded), for echo. */
  text: string;
  /** Tokens the filler reply runs for: get_max_tokens, or --default-max-tokens standing in for "until EOS". */
  maxTokens: number;
  /** SamplingParams.max_tokens as vLLM sets it, for `vllm:request_params_max_tokens`. */
  maxTokensParam: number;
  /** The reply ends at --default-max-tokens standing in for EOS: `stop` unless a stop condition ended it first. */
  endsAtEos: boolean;
  /** A tool choice's guided reply: its tokens, which replace the filler (the reply is at most maxTokens of them). */
  guided?: Uint32Array;
}

interface Prepared {
  req: CompletionRequest | ChatRequest;
  /** The name the response reports. */
  model: string;
  prompts: PreparedPrompt[];
  /** Completions `echo` with `max_tokens: 0`: one token is generated and counted, but only the prompt is shown. */
  echoOnly: boolean;
  /** A named tool_choice or "required": the reply is shown as tool calls (tool-calls.ts). */
  tool?: ToolOutput;
}

function prepare(req: CompletionRequest | ChatRequest, model: string, tokenizer: SimTokenizer, o: SimulatorOptions, autoTools: boolean): Prepared {
  if (req.kind === 'completion' && req.suffix !== undefined) throw badRequest('suffix is not currently supported');
  // Beam search (use_beam_search, protocol.py @ v0.10.0) answers differently from sampling: n beams ranked by
  // length_penalty, and a completion "stream" sent as one event. The filler cannot stand for it: refused, not ignored.
  if (req.useBeamSearch) throw new ApiError(501, 'use_beam_search is not simulated.', 'Not Implemented');
  // Completions merge echo's prompt logprobs into the choice's `logprobs` (serving_completion.py @ v0.10.0,
  // request_output_to_completion_response), which is not simulated; every other prompt_logprobs request is.
  if (req.kind === 'completion' && req.echo && req.sampling.logprobs !== undefined) {
    throw new ApiError(501, 'echo with logprobs (prompt logprobs merged into the choice\'s logprobs) is not simulated.', 'Not Implemented');
  }
  if (req.kind === 'chat' && req.toolChoice === 'auto' && !autoTools) {
    // serving_chat.py @ v0.10.0: tools without tool_choice mean "auto", which needs a tool parser.
    throw badRequest('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set');
  }
  const tool = req.kind === 'chat' ? toolOutput(req.toolChoice, req.tools) : undefined;
  if (req.kind === 'chat' && req.toolChoice === 'required' && tool === undefined) throw new ApiError(501, 'tool_choice "required" with an empty tools list is not simulated.', 'Not Implemented');
  if (tool?.kind === 'required' && req.stream && req.generation === '0.10.2') {
    // serving_chat.py @ 61aa4b290 lines 815-831 and 945-948 append each delta to previous_texts twice ("required" is
    // neither auto nor reasoning, so the else branch adds it again), and partial_json_parser then reads that text.
    throw new ApiError(501, 'tool_choice "required" with stream is not simulated in 0.10.2 mode.', 'Not Implemented');
  }
  // CompletionRequest.to_sampling_params @ v0.10.0: `echo_without_generation = self.echo and self.max_tokens == 0`.
  // With logprobs, echo implies prompt_logprobs, which were refused above.
  const echoOnly = req.kind === 'completion' && req.echo && req.maxTokens === 0;
  const inputs: PromptInputTokens[] =
    req.kind === 'chat'
      ? [{ tokens: tokenizeChat(req, tokenizer), text: '', specialTokens: false }]
      : req.prompts.map((pr) =>
          typeof pr === 'string' ? { tokens: tokenizer.encode(pr, true), text: pr, specialTokens: true } : { tokens: Uint32Array.from(pr, (t) => Math.max(0, t)), ids: pr, text: tokenizer.decode(pr.filter((t) => t >= 0 && t <= tokenizer.maxTokenId)), specialTokens: false },
        );
  // _preprocess_completion / _preprocess_chat tokenize and _validate_input checks every prompt of the request (a
  // completion batch: all of them) before create_completion builds the first prompt's SamplingParams (serving_completion.py,
  // read in the stored copy 2d5f987 from before v0.10.0): a batch with a prompt too long for the context is that
  // prompt's context-length error even when an earlier prompt's sampling check fails.
  const tokenized = inputs.map((input) => {
    // truncate_prompt_tokens -1 (0.10.2 only) keeps the last max_model_len tokens (serving_engine.py @ 61aa4b290 lines
    // 573-579 and 607-612); 0 (0.10.2 only, refused by SamplingParams below) is taken as no truncation here.
    const keep = req.truncatePromptTokens === undefined || req.truncatePromptTokens === 0 ? undefined : req.truncatePromptTokens < 0 ? o.maxModelLen : req.truncatePromptTokens;
    const t = truncated(input, keep, tokenizer);
    const tooLong = contextLengthError(t.tokens.length, req.maxTokens, o.maxModelLen, req.generation);
    // serving_chat.py @ 6eca337ce lines 207-209 (61aa4b290 line 252) answers the ValueError _preprocess_chat lets out
    // with `f"{e} {e.__cause__}"`, and _validate_input raises it without a cause: chat's message ends in " None".
    // Completions answer `str(e)` (serving_completion.py).
    if (tooLong !== undefined) throw badRequest(req.kind === 'chat' ? `${tooLong} None` : tooLong);
    return t;
  });
  const prompts = tokenized.map(({ tokens, text, ids }) => {
    const n = tokens.length;
    // get_max_tokens (vllm/entrypoints/utils.py @ v0.10.0): the smaller of the request's value and the room left,
    // which is what SamplingParams is checked against (so min_tokens up to the room left is valid without max_tokens).
    // echo with max_tokens 0 asks for one token (CompletionRequest.to_sampling_params, `echo_without_generation`).
    const room = o.maxModelLen - n;
    const maxTokensParam = echoOnly ? 1 : Math.min(room, req.maxTokens ?? room);
    checkSampling(req, maxTokensParam);
    // A request without max_tokens runs until EOS on vLLM, which filler never produces: --default-max-tokens stands
    // in for it, raised to min_tokens, which vLLM would honour before any EOS.
    const maxTokens = req.maxTokens === undefined ? Math.min(room, Math.max(o.defaultMaxTokens, req.minTokens)) : maxTokensParam;
    // Such a reply stands for one that stopped at EOS, so it finishes `stop` (stop_reason null): check_stop
    // (vllm/v1/core/sched/utils.py @ 6eca337ce lines 10-36) says FINISHED_LENGTH_CAPPED only when num_output_tokens >=
    // max_tokens (here the room left, get_max_tokens in vllm/entrypoints/utils.py @ 6eca337ce lines 285-297) or the
    // sequence fills max_model_len, and FINISHED_STOPPED, with no stop_reason, when the last token is EOS. A reply
    // capped by the room left is `length`, as on vLLM; so is one with ignore_eos, which vLLM runs to the end of the
    // context.
    const endsAtEos = req.maxTokens === undefined && !req.ignoreEos && maxTokens < room;
    if (tool?.text !== undefined) {
      // Guided decoding: the reply is the JSON, ended by EOS once complete (the EOS token vLLM would also count is
      // not, as for the filler), or cut at max_tokens (`length`).
      const guided = tokenizer.encode(tool.text, false);
      return { tokens, text, ids, maxTokens: Math.min(guided.length, maxTokensParam), maxTokensParam, endsAtEos: guided.length < maxTokensParam, guided };
    }
    return { tokens, text, ids, maxTokens, maxTokensParam, endsAtEos };
  });
  return { req, model, prompts, echoOnly, ...(tool ? { tool } : {}) };
}

/**
 * OpenAIServing._validate_input's context-length ValueError for a prompt of `n` tokens, or undefined.
 * 0.10.0 (serving_engine.py @ 6eca337ce lines 618-632): with max_tokens, prompt + max_tokens > max_model_len; without,
 * prompt >= max_model_len. 0.10.2 (vLLM #22803, da2705198; serving_engine.py @ 61aa4b290 lines 672-686): first prompt
 * >= max_model_len whether or not max_tokens is set, then prompt + max_tokens > max_model_len, in new words.
 */
export function contextLengthError(n: number, maxTokens: number | undefined, maxModelLen: number, generation: VllmGeneration): string | undefined {
  if (generation === '0.10.2') {
    if (n >= maxModelLen) {
      return `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${n} input tokens. Please reduce the length of the input messages.`;
    }
    if (maxTokens !== undefined && n + maxTokens > maxModelLen) {
      return `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokens}. This model's maximum context length is ${maxModelLen} tokens and your request has ${n} input tokens (${maxTokens} > ${maxModelLen} - ${n}).`;
    }
    return undefined;
  }
  if (maxTokens === undefined) {
    if (n >= maxModelLen) return `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${n} tokens in the messages, Please reduce the length of the messages.`;
  } else if (n + maxTokens > maxModelLen) {
    return `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${maxTokens + n} tokens (${n} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`;
  }
  return undefined;
}

/** A prompt's ids before truncation. */
export interface PromptInputTokens {
  tokens: Uint32Array;
  text: string;
  /** The ids as sent, for a token-id prompt. */
  ids?: readonly number[];
  /** Whether `tokens` is a text encoded with special tokens (the post-processor's, a BOS where the model has one). */
  specialTokens: boolean;
}

/**
 * `truncate_prompt_tokens`: the prompt's last `keep` tokens (vllm/entrypoints/openai/serving_engine.py @ v0.10.0). A
 * text prompt (and a rendered chat) is tokenized with `truncation=True, max_length=keep` by a tokenizer vLLM loads with
 * `truncation_side="left"` (vllm/transformers_utils/tokenizer.py), which keeps the post-processor's tokens (a BOS)
 * and cuts the text's own to the rest (`truncatePromptIds` in @kvroute/protocol); its echo text stays the whole prompt
 * (`_normalize_prompt_text_to_input`: `input_text = prompt`). A token-id prompt is sliced `prompt_ids[-keep:]` and its
 * text decoded from the slice (`_normalize_prompt_tokens_to_input`).
 */
export function truncated(
  input: PromptInputTokens,
  keep: number | undefined,
  tokenizer: Pick<SimTokenizer, 'decode' | 'maxTokenId' | 'postProcessorAdds'>,
): { tokens: Uint32Array; text: string; ids?: readonly number[] } {
  if (keep === undefined || input.tokens.length <= keep) return input;
  if (input.ids === undefined) return { tokens: truncatePromptIds(input.tokens, keep, input.specialTokens ? tokenizer.postProcessorAdds() : undefined), text: input.text };
  const tokens = input.tokens.slice(input.tokens.length - keep);
  const ids = input.ids.slice(input.ids.length - keep);
  return { tokens, ids, text: tokenizer.decode(ids.filter((t) => t >= 0 && t <= tokenizer.maxTokenId)) };
}

/**
 * POST /tokenize: TokenizeCompletionRequest or TokenizeChatRequest (serving_tokenization.py @ v0.10.0), parsed with
 * their own fields only (parseTokenizeRequest): none of the completion or chat requests' checks apply.
 */
function tokenizeResponse(body: Record<string, unknown>, tokenizer: SimTokenizer, o: SimulatorOptions, models: ServedModels): unknown {
  const req = parseTokenizeRequest(body);
  models.resolve(req.model);
  const tokens = Array.from(req.kind === 'chat' ? tokenizeChat(req, tokenizer, req.addSpecialTokens, 'tokenize') : tokenizer.encode(req.prompt, req.addSpecialTokens));
  return { count: tokens.length, max_model_len: o.maxModelLen, tokens, token_strs: req.returnTokenStrs ? tokens.map((t) => tokenizer.idToToken(t)) : null };
}

/** The request's query parameters, as Starlette's `request.query_params` reads them (everything after the first `?`). */
function queryParams(req: IncomingMessage): URLSearchParams {
  return new URLSearchParams((req.url ?? '').split('?').slice(1).join('?'));
}

/** A required `str` field of a request model: absent is pydantic's `missing`, anything but a string `string_type`. */
function requiredStr(body: Record<string, unknown>, key: string): string {
  if (body[key] === undefined) throw validationError([key], 'missing', 'Field required', body);
  return strictStr(body[key], [key]);
}

/**
 * POST /detokenize: `{tokens, model?}` → `{prompt}` (serving_tokenization.py @ v0.10.0). The route is
 * `detokenize(request: DetokenizeRequest, raw_request)` (api_server.py @ v0.10.0), so FastAPI validates the body
 * (`model: Optional[str]`, then `tokens: list[int]`, required) before create_detokenize's `_check_model` runs: a bad
 * body is a 400 whatever its model, and spends no LoRA id (ServedModels.resolve).
 */
function detokenizeResponse(body: Record<string, unknown>, tokenizer: SimTokenizer, models: ServedModels): unknown {
  const model = body.model === undefined || body.model === null ? undefined : strictStr(body.model, ['model']);
  if (body.tokens === undefined) throw validationError(['tokens'], 'missing', 'Field required', body);
  if (!Array.isArray(body.tokens)) throw validationError(['tokens'], 'list_type', 'Input should be a valid list', body.tokens);
  const ids = body.tokens.map((t, i) => laxInt(t, ['tokens', i]));
  models.resolve(model);
  // The tokenizer's OverflowError, raised in the handler after `_check_model`, which the route re-raises as
  // RequestValidationError(errors=[str(e)]).
  for (const t of ids) if (t < 0 || t > 0xffffffff) throw handRaisedValidationError('out of range integral type conversion attempted');
  return { prompt: tokenizer.decode(ids.filter((t) => t <= tokenizer.maxTokenId)) };
}

/** GET /v1/models: one ModelCard per served name, then the LoRA adapters (serving_models.py @ v0.10.0). */
function modelsResponse(o: SimulatorOptions, models: ServedModels): unknown {
  const created = Math.floor(Date.now() / 1000);
  const permission = () => [
    {
      id: `modelperm-${randomUUIDHex()}`,
      object: 'model_permission',
      created,
      allow_create_engine: false,
      allow_sampling: true,
      allow_logprobs: true,
      allow_search_indices: false,
      allow_view: true,
      allow_fine_tuning: false,
      organization: '*',
      group: null,
      is_blocking: false,
    },
  ];
  const card = (id: string, root: string, parent: string | null, maxModelLen: number | null) => ({
    id,
    object: 'model',
    created,
    owned_by: 'vllm',
    root,
    parent,
    max_model_len: maxModelLen,
    permission: permission(),
  });
  return {
    object: 'list',
    // LoRA cards have as parent their base_model_name when it is a served name, else the first served name
    // (show_available_models), no max_model_len, and the adapter's path as root (the name when --lora-modules gave
    // none).
    data: [
      ...o.servedModelNames.map((name) => card(name, o.model, null, o.maxModelLen)),
      ...models.loraAdapters().map((lora) => card(lora.name, lora.path, lora.baseModelName ?? o.servedModelNames[0], null)),
    ],
  };
}

/** The payload encoding on the wire: positional as the simulated vLLM release writes it, or vLLM #42892's maps. */
function wireEncoding(o: SimulatorOptions): KvEventEncoding {
  if (o.kvEventsEncoding === 'map') return 'map';
  return generationOf(o.prefixCachingHashAlgo) === '0.10.0' ? 'positional-v0.10.0' : 'positional-v0.10.2';
}

/**
 * `str(VllmConfig)` as GET /server_info shows it (VllmConfig.__str__, vllm/config.py @ v0.10.0), shortened: its fields
 * up to disable_custom_all_reduce as vLLM writes them, then the later ones the simulator has a value for; vLLM's string
 * has more between and after them (decoding, observability and compilation configs and the like).
 */
function vllmConfigString(o: SimulatorOptions): string {
  const pyBool = (b: boolean): string => (b ? 'True' : 'False');
  const served = o.servedModelNames.length === 1 ? o.servedModelNames[0] : `[${o.servedModelNames.map((n) => `'${n}'`).join(', ')}]`;
  return (
    `model='${o.model}', speculative_config=None, tokenizer='${o.model}', skip_tokenizer_init=False, ` +
    `tokenizer_mode=auto, revision=None, override_neuron_config={}, tokenizer_revision=None, trust_remote_code=False, ` +
    `dtype=torch.bfloat16, max_seq_len=${o.maxModelLen}, download_dir=None, load_format=auto, tensor_parallel_size=1, ` +
    `pipeline_parallel_size=1, disable_custom_all_reduce=False, quantization=None, enforce_eager=False, ` +
    `kv_cache_dtype=auto, device_config=cuda, seed=0, served_model_name=${served}, ` +
    `enable_prefix_caching=${pyBool(o.enablePrefixCaching)}, chunked_prefill_enabled=True, use_async_output_proc=True`
  );
}

/** vLLM-style warnings on stderr, one JSON line each (stdout carries only the lifecycle lines). */
const stderrLogger = {
  warn(msg: string, fields: Record<string, unknown> = {}): void {
    logLine('warn', msg, fields);
  },
};

/** Model-time view of one request (seconds), for harnesses that want it without wall-clock noise. */
function simTiming(r: RequestResult, pod: string): Record<string, unknown> {
  const s = (ms: number | null): number | null => (ms === null ? null : ms / 1000);
  return {
    pod,
    cached_tokens: r.cachedTokens,
    queue_time_s: r.admittedMs === null ? null : s(r.admittedMs - (r.queuedMs ?? r.admittedMs)),
    ttft_s: r.firstTokenMs === null ? null : s(r.firstTokenMs - r.arrivalMs),
    e2e_s: s(r.finishedMs - r.arrivalMs),
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Reads a JSON request body the way FastAPI and vLLM's `validate_json_request` dependency do
 * (api_server.py @ v0.10.0): the body is parsed as JSON when the content type is JSON or missing (a syntax error is a
 * 400 `json_invalid`), and then anything but `application/json` is refused with 400.
 */
async function readJsonRequest(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = await readBody(req);
  const ct = String(req.headers['content-type'] ?? '').toLowerCase();
  const media = ct.split(';', 1)[0].trim();
  const jsonish = ct === '' || media === 'application/json' || (media.startsWith('application/') && media.endsWith('+json'));
  let body: Record<string, unknown> | undefined;
  if (jsonish && raw.length > 0) body = parseJsonBody(decodeJsonBytes(raw));
  if (media !== 'application/json') throw handRaisedValidationError("Unsupported Media Type: Only 'application/json' is allowed");
  // An empty body, or `null` (fastapi/routing.py get_request_handler passes None on; fastapi/dependencies/utils.py
  // _validate_value_with_model_field: `if value is None: ... get_missing_field_error(loc=loc)`), with
  // fastapi/_compat.py get_missing_field_error's `error["input"] = None`.
  if (body === undefined) throw validationError([], 'missing', 'Field required', null);
  return body;
}

/**
 * `/invocations`' body: validate_json_request first (the route has no body parameter, so FastAPI parses nothing before
 * it), then Starlette's `Request.json()`, i.e. `json.loads(body)`. A JSONDecodeError is the route's
 * `HTTPException(400, f"JSON decode error: {e}")`, CPython's `str(e)`: `msg: line L column C (char P)`; anything else
 * json.loads raises (bytes that are not UTF-8, nesting or digits past Python's limits) escapes: a plain-text 500. A
 * body that is not an object cannot validate as a request model (or `"messages" in body` raises): a plain-text 500.
 */
async function readInvocationsBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = await readBody(req);
  const media = String(req.headers['content-type'] ?? '').toLowerCase().split(';', 1)[0];
  if (media !== 'application/json') throw handRaisedValidationError("Unsupported Media Type: Only 'application/json' is allowed");
  let text: string;
  try {
    text = UTF8_FATAL.decode(raw);
  } catch {
    throw new PlainServerError('UnicodeDecodeError');
  }
  const loaded = pythonJsonLoads(text);
  if (loaded.kind === 'unreadable') throw new PlainServerError('json.loads raised');
  if (loaded.kind === 'decode-error') {
    const chars = Array.from(text).slice(0, loaded.pos);
    const lastNewline = chars.lastIndexOf('\n');
    const line = chars.filter((c) => c === '\n').length + 1;
    const column = loaded.pos - lastNewline;
    throw new ApiError(400, `JSON decode error: ${loaded.msg}: line ${line} column ${column} (char ${loaded.pos})`, 'Bad Request');
  }
  const body = loaded.value;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new PlainServerError('not a request object');
  // The chat and completions parsers read the body as parseJsonBody leaves it (integral floats, long seeds).
  return requestObject(text, body as Record<string, unknown>);
}

/**
 * The text `json.loads(bytes)` decodes (Lib/json/__init__.py `detect_encoding`): UTF-8, a leading BOM dropped
 * ('utf-8-sig'). Bytes that are not UTF-8 raise UnicodeDecodeError, which FastAPI answers with
 * `HTTPException(400, "There was an error parsing the body")` (fastapi/routing.py `get_request_handler`) and vLLM's
 * `http_exception_handler` renders as a 400 `Bad Request` (api_server.py @ v0.10.0). Not followed: Python's UTF-16/32
 * detection (a body starting with NUL bytes or their BOMs) and 'surrogatepass' (encoded surrogates are refused here).
 */
function decodeJsonBytes(raw: Buffer): string {
  try {
    return UTF8_FATAL.decode(raw);
  } catch {
    throw unparseableBody();
  }
}

const UTF8_FATAL = new TextDecoder('utf-8', { fatal: true });

function readBody(req: IncomingMessage): Promise<Buffer> {
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
      if (tooLarge) reject(new ApiError(413, `Request body exceeds ${MAX_BODY_BYTES} bytes.`));
      else resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

/**
 * The names in a comma-separated header list, each before its `;` parameters and stripped, as prometheus_client reads
 * Accept and Accept-Encoding (exposition.py, 0.22: `accepted.split(';')[0].strip()`); repeated headers are one list.
 */
function listedNames(header: string | string[] | undefined): string[] {
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  return value.split(',').map((item) => item.split(';')[0].trim());
}

/**
 * prometheus_client's `gzip_accepted` (prometheus_client/exposition.py, 0.22): any listed coding named `gzip` in any
 * case. A q-value is not read, so `gzip;q=0` still gets gzip, as upstream.
 */
export function gzipAccepted(header: string | string[] | undefined): boolean {
  return listedNames(header).some((coding) => coding.toLowerCase() === 'gzip');
}

/**
 * prometheus_client's `choose_encoder` (exposition.py, 0.22): OpenMetrics when any listed media type is exactly
 * `application/openmetrics-text` (no wildcard, case as written).
 */
export function openMetricsAccepted(header: string | string[] | undefined): boolean {
  return listedNames(header).includes('application/openmetrics-text');
}

/** Python's `urllib.parse.unquote`: each run of `%XX` decoded as UTF-8 (invalid bytes as U+FFFD), malformed escapes kept. */
export function pythonUnquote(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}
