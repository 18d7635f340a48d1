/**
 * Test-side parts for the ext_proc tests: a gRPC client that plays Envoy over loopback with the patched protos, and a
 * small but real RequestDirector that picks from a fixed list and records what it was asked and released.
 * (Not a test file itself: jest only runs *.test.ts.)
 */
import * as grpc from '@grpc/grpc-js';
export { pseudoRandom, turns, waitFor } from '@kvroute/testkit';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import { rejectWith, type IncomingRequest, type ReleaseOutcome, type RequestDirector, type RouteDecision } from '../src/extproc/request-director';

export type Json = Record<string, any>;

const PROCESS_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';

/** A waitable FIFO; once closed, a wait past its last item fails at once (a test fails fast, not at its timeout). */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: { resolve: (v: T) => void; reject: (e: Error) => void }[] = [];
  private closed: Error | undefined;

  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w.resolve(v);
    else this.items.push(v);
  }

  close(reason: Error): void {
    this.closed = reason;
    for (const w of this.waiters.splice(0)) w.reject(reason);
  }

  next(): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    if (this.closed !== undefined) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  get size(): number {
    return this.items.length;
  }
}

export interface EnvoyStream {
  send(msg: Json): void;
  sendRaw(bytes: Buffer): void;
  next(): Promise<Json>;
  /** Unread responses so far. */
  pending(): number;
  end(): void;
  /** RST_STREAM, as Envoy resets a stream; nothing is sent after it. */
  cancel(): void;
  status: Promise<grpc.StatusObject>;
}

/** Plays Envoy's side of ext_proc. */
export class FakeEnvoy {
  private readonly client: grpc.Client;
  private readonly serialize: (v: unknown) => Buffer;
  private readonly deserialize: (b: Buffer) => unknown;

  constructor(address: string, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}) {
    this.client = new grpc.Client(address, creds, options);
    const def = loadEnvoyApi().packageDefinition['envoy.service.ext_proc.v3.ExternalProcessor'] as grpc.ServiceDefinition;
    this.serialize = def.Process.requestSerialize as (v: unknown) => Buffer;
    this.deserialize = def.Process.responseDeserialize;
  }

  open(): EnvoyStream {
    // Raw buffers on the wire so a test can also send bytes that are not a ProcessingRequest.
    const call = this.client.makeBidiStreamRequest<Buffer, Buffer>(PROCESS_PATH, (b) => b, (b) => b);
    const inbox = new Inbox<Json>();
    call.on('data', (b: Buffer) => inbox.push(this.deserialize(b) as Json));
    call.on('error', () => undefined); // the status promise reports it
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', (st: grpc.StatusObject) => {
      inbox.close(new Error(`the stream ended (${grpc.status[st.code]}: ${st.details}) with no further response`));
      resolve(st);
    }));
    // Envoy resets a stream it gives up on (RST_STREAM: the ext_proc filter's onDestroy -> resetStream), and the EPP
    // sees that whenever Envoy had sent anything. grpc-js 1.14.7 loses a cancel() made in the few microtasks after a
    // call starts: ResolvingCall creates its child call (the HTTP/2 stream) in `filterStack.sendMetadata(...).then(...)`
    // without checking that the call has ended since, and `cancelWithStatus` only reaches a child that exists
    // (build/src/resolving-call.js getConfig, cancelWithStatus). The stream is then opened and the queued message sent
    // after the cancel, and never reset: the EPP holds the request until the connection closes. So the reset waits one
    // turn of the event loop, by which the promise chain has run (or the call, still waiting for its channel, is dropped
    // before any stream exists); nothing is written after it, as Envoy writes nothing to a stream it reset.
    let cancelled = false;
    return {
      send: (msg) => {
        if (!cancelled) call.write(this.serialize(msg));
      },
      sendRaw: (bytes) => {
        if (!cancelled) call.write(bytes);
      },
      next: () => inbox.next(),
      pending: () => inbox.size,
      end: () => {
        if (!cancelled) call.end();
      },
      cancel: () => {
        cancelled = true;
        setImmediate(() => call.cancel());
      },
      status,
    };
  }

  /**
   * Resolves once the channel is connected. A stream opened before that waits in grpc-js for the channel, and one reset
   * meanwhile never reaches the EPP (no HTTP/2 stream is made for it), whatever it was sent.
   */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => this.client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.client.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// ProcessingRequest builders, as Envoy encodes them (header values in raw_value).

function headerMap(headers: Record<string, string>): Json {
  return { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
}

export function requestHeaders(headers: Record<string, string>, endOfStream: boolean, extra: Json = {}): Json {
  return { request_headers: { headers: headerMap(headers), end_of_stream: endOfStream }, ...extra };
}

export function requestBody(body: Buffer | string, endOfStream: boolean): Json {
  return { request_body: { body: Buffer.from(body), end_of_stream: endOfStream } };
}

export function requestTrailers(trailers: Record<string, string>): Json {
  return { request_trailers: { trailers: headerMap(trailers) } };
}

export function responseHeaders(headers: Record<string, string>, endOfStream: boolean): Json {
  return { response_headers: { headers: headerMap(headers), end_of_stream: endOfStream } };
}

export function responseBody(body: Buffer | string, endOfStream: boolean): Json {
  return { response_body: { body: Buffer.from(body), end_of_stream: endOfStream } };
}

export function responseTrailers(trailers: Record<string, string>): Json {
  return { response_trailers: { trailers: headerMap(trailers) } };
}

export function protocolConfig(request: string, response: string): Json {
  return { protocol_config: { request_body_mode: request, response_body_mode: response } };
}

export const POST_HEADERS = {
  ':method': 'POST', ':path': '/v1/completions', ':authority': 'gateway', ':scheme': 'http',
  'content-type': 'application/json', 'x-request-id': 'req-1',
};

/** POST_HEADERS for a chat: upstream's openai-parser reads the API from the path and refuses a chat on /v1/completions. */
export const CHAT_POST_HEADERS = { ...POST_HEADERS, ':path': '/v1/chat/completions' };

/** `set_headers` of a HeaderMutation as a plain record. */
export function setHeaders(mutation: Json | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of mutation?.set_headers ?? []) {
    out[h.header.key] = h.header.raw_value.length > 0 ? h.header.raw_value.toString() : h.header.value;
  }
  return out;
}

/** Reads StreamedBodyResponse chunks of `phase` until one has end_of_stream (or `stopAfter` chunks). */
export async function readStreamedBody(s: EnvoyStream, phase: 'request_body' | 'response_body', stopAfter = Infinity): Promise<{ chunks: Buffer[]; eos: boolean[] }> {
  const chunks: Buffer[] = [];
  const eos: boolean[] = [];
  while (chunks.length < stopAfter) {
    const msg = await s.next();
    if (msg.response !== phase) throw new Error(`expected ${phase}, got ${msg.response}`);
    const sr = msg[phase].response.body_mutation.streamed_response;
    chunks.push(sr.body);
    eos.push(sr.end_of_stream);
    if (sr.end_of_stream) break;
  }
  return { chunks, eos };
}

// ---------------------------------------------------------------------------------------------------------------------

export interface Release {
  readonly ticket: unknown;
  readonly outcome: ReleaseOutcome;
}

/**
 * Picks endpoints round-robin from a fixed list. The `x-test-action` request header selects other behaviour:
 * `reject` (429), `throw`, `hang` (answers only after its signal aborts), `hang-then-throw` (fails once it aborts),
 * `rewrite` (replaces the body).
 */
export class TestDirector implements RequestDirector {
  readonly requests: IncomingRequest[] = [];
  readonly signals: AbortSignal[] = [];
  readonly releases: Release[] = [];
  private nextIndex = 0;
  private ticketSeq = 0;
  private readonly releaseWaiters: { n: number; resolve: () => void }[] = [];
  private readonly requestWaiters: { n: number; resolve: () => void }[] = [];

  constructor(readonly endpoints: readonly string[] = ['10.0.0.1:8000', '10.0.0.2:8000']) {}

  async route(req: IncomingRequest, signal: AbortSignal): Promise<RouteDecision> {
    this.requests.push(req);
    this.signals.push(signal);
    this.notify(this.requestWaiters, this.requests.length);
    const action = req.headers.get('x-test-action');
    if (action === 'reject') return rejectWith(429, 'too many requests for the pool');
    if (action === 'throw') throw new Error('scheduler exploded');
    if (action === 'hang' || action === 'hang-then-throw') {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      if (action === 'hang-then-throw') throw new Error('aborted');
    }
    const endpoint = this.endpoints[this.nextIndex++ % this.endpoints.length];
    const ticket = { id: ++this.ticketSeq, endpoint };
    if (action === 'rewrite' && req.body) {
      return { kind: 'route', endpoint, ticket, setHeaders: { 'x-picked-by': 'test' }, body: Buffer.from(`{"rewritten":${req.body.length}}`) };
    }
    return { kind: 'route', endpoint, ticket, setHeaders: { 'x-picked-by': 'test' } };
  }

  release(ticket: unknown, outcome: ReleaseOutcome): void {
    this.releases.push({ ticket, outcome });
    this.notify(this.releaseWaiters, this.releases.length);
  }

  waitForReleases(n: number): Promise<void> {
    return this.waitFor(this.releaseWaiters, this.releases.length, n);
  }

  waitForRequests(n: number): Promise<void> {
    return this.waitFor(this.requestWaiters, this.requests.length, n);
  }

  private waitFor(list: { n: number; resolve: () => void }[], have: number, n: number): Promise<void> {
    if (have >= n) return Promise.resolve();
    return new Promise((resolve) => list.push({ n, resolve }));
  }

  private notify(list: { n: number; resolve: () => void }[], have: number): void {
    for (const w of [...list]) {
      if (have >= w.n) {
        list.splice(list.indexOf(w), 1);
        w.resolve();
      }
    }
  }
}

/** Collects the server's warnings instead of printing them. */
export function collectingLogger(): { warnings: string[]; debug(): void; warn(msg: string, fields?: Record<string, unknown>): void } {
  const warnings: string[] = [];
  return {
    warnings,
    debug: () => undefined,
    warn: (msg, fields) => {
      warnings.push(fields ? `${msg} ${JSON.stringify(fields)}` : msg);
    },
  };
}
