/**
 * Test-side parts for the gateway tests (not a test file: jest only runs *.test.ts): real HTTP upstreams on loopback
 * that report which port served them (and can stream SSE on cue), a small real RequestDirector for the real EPP
 * ext_proc server, and an HTTP client. No mocks: everything talks over loopback sockets.
 */
import { createHash } from 'crypto';
import * as http from 'http';
import type { AddressInfo } from 'net';
import type { IncomingRequest, ReleaseOutcome, RequestDirector, RouteDecision } from '@kvroute/epp/extproc';
import { rejectWith } from '@kvroute/epp/extproc';
import { startExtProcServer, type ExtProcServer } from '@kvroute/epp/extproc';
import { startGateway, type Gateway } from '../src/gateway';
import type { GatewayOptions } from '../src/options';

export const LOOPBACK = '127.0.0.1';

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export { pseudoRandom, sleep, waitFor } from '@kvroute/testkit';


// ---------------------------------------------------------------------------------------------------------------------
// Upstreams

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly body: Buffer;
  readonly trailers: Record<string, string | undefined>;
}

/** A manual gate: the SSE upstream sends event i+1 only after `open()` was called i times. */
export class Gate {
  private permits = 0;
  private waiters: (() => void)[] = [];

  open(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.permits++;
  }

  wait(): Promise<void> {
    if (this.permits > 0) {
      this.permits--;
      return Promise.resolve();
    }
    return new Promise((r) => this.waiters.push(r));
  }
}

export interface Upstream {
  readonly port: number;
  readonly address: string;
  readonly seen: SeenRequest[];
  /** Gate for `/sse` responses: each event after the first waits for one `open()`. */
  readonly gate: Gate;
  close(): Promise<void>;
}

/**
 * Echo upstream. Every response names the port that served it. Paths:
 * - `/sse?n=N`: `text/event-stream`, N `data:` events (the first at once, each next after `gate.open()`), then
 *   `data: [DONE]`;
 * - anything else: JSON `{port, method, url, bodyBytes, sha256, headers}`; `?status=NNN` sets the status;
 *   `?trailers=1` answers chunked with a trailer; `?empty=1` answers chunked with no body at all (only the last
 *   chunk), with the trailer too when `trailers=1`.
 */
export async function startUpstream(port = 0): Promise<Upstream> {
  const seen: SeenRequest[] = [];
  const gate = new Gate();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const trailers = { ...req.trailers };
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body, trailers });
      const url = new URL(req.url ?? '/', 'http://x');
      const myPort = (server.address() as AddressInfo).port;
      if (url.pathname === '/sse') {
        const n = Number(url.searchParams.get('n') ?? '3');
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        void (async () => {
          for (let i = 0; i < n; i++) {
            if (i > 0) await gate.wait();
            if (res.destroyed) return;
            res.write(`data: {"port":${myPort},"i":${i}}\n\n`);
          }
          res.end('data: [DONE]\n\n');
        })();
        return;
      }
      const status = Number(url.searchParams.get('status') ?? '200');
      const out = Buffer.from(JSON.stringify({
        port: myPort, method: req.method, url: req.url, bodyBytes: body.length, sha256: sha256(body), headers: req.headers, trailers,
      }));
      if (url.searchParams.get('empty') === '1') {
        const withTrailer = url.searchParams.get('trailers') === '1';
        res.writeHead(status, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...(withTrailer ? { trailer: 'x-upstream-trailer' } : {}) });
        if (withTrailer) res.addTrailers({ 'x-upstream-trailer': 'done' });
        res.end();
        return;
      }
      if (url.searchParams.get('trailers') === '1') {
        res.writeHead(status, { 'content-type': 'application/json', trailer: 'x-upstream-trailer' });
        res.write(out);
        res.addTrailers({ 'x-upstream-trailer': 'done' });
        res.end();
        return;
      }
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': out.length });
      res.end(req.method === 'HEAD' ? undefined : out);
    });
  });
  // An Expect other than 100-continue is served like any request (as uvicorn does), not answered 417 as Node would.
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => server.emit('request', req, res));
  await new Promise<void>((resolve) => server.listen(port, LOOPBACK, resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    port: actual,
    address: `${LOOPBACK}:${actual}`,
    seen,
    gate,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** A loopback port with nothing listening (bound, then released). */
export async function deadPort(): Promise<number> {
  // Below Linux's ephemeral range (32768 and up), where other tests reserve ports by binding port 0 and bind them again
  // later: a port freed there could be one of theirs a moment later, and a server would answer the "dead" endpoint (a
  // CI run saw a 431 there).
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const s = http.createServer();
    const free = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, LOOPBACK, () => resolve(true));
    });
    if (!free) continue;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
  throw new Error('no free port below the ephemeral range');
}

// ---------------------------------------------------------------------------------------------------------------------
// The EPP side

export interface Release {
  readonly ticket: unknown;
  readonly outcome: ReleaseOutcome;
}

/**
 * Picks round robin from `endpoints`. Request headers steer it:
 * - `x-test-pick: <value>`: answer exactly this endpoint value (may be outside the pool, or a comma list);
 * - `x-test-action: reject` → 429 ImmediateResponse; `hang` → never answers (until the stream goes away);
 *   `rewrite` → replaces the body with `{"rewritten":<original length>}`; `throw` → director error (500).
 */
export class TestDirector implements RequestDirector {
  readonly requests: IncomingRequest[] = [];
  readonly releases: Release[] = [];
  private next = 0;
  /** Route decisions (tickets) handed out so far. */
  seq = 0;

  constructor(public endpoints: readonly string[]) {}

  async route(req: IncomingRequest, signal: AbortSignal): Promise<RouteDecision> {
    this.requests.push(req);
    const action = req.headers.get('x-test-action');
    if (action === 'reject') return rejectWith(429, 'too many requests for the pool');
    if (action === 'throw') throw new Error('scheduler exploded');
    if (action === 'hang') {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    }
    // Flow control's shape: ask for more time (override_message_timeout), then answer late.
    if (action === 'extend') {
      req.extendMessageTimeout?.(Number(req.headers.get('x-test-extend-ms')));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Number(req.headers.get('x-test-answer-after-ms')));
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
      if (signal.aborted) return rejectWith(499, 'abandoned');
    }
    const endpoint = req.headers.get('x-test-pick') ?? this.endpoints[this.next++ % this.endpoints.length];
    const ticket = { id: ++this.seq, endpoint };
    const setHeaders = { 'x-picked-by': 'test-director', 'x-test-seen-bytes': String(req.body?.length ?? 0) };
    if (action === 'rewrite' && req.body) {
      return { kind: 'route', endpoint, ticket, setHeaders, body: Buffer.from(`{"rewritten":${req.body.length}}`) };
    }
    return { kind: 'route', endpoint, ticket, setHeaders };
  }

  release(ticket: unknown, outcome: ReleaseOutcome): void {
    this.releases.push({ ticket, outcome });
  }
}

export const silentLogger = { debug: (): void => undefined, warn: (): void => undefined };

export async function startEpp(director: RequestDirector, port = 0): Promise<ExtProcServer> {
  return startExtProcServer({ director, host: LOOPBACK, port, logger: silentLogger });
}

// ---------------------------------------------------------------------------------------------------------------------
// Gateway and client

export interface CollectedLogs {
  readonly lines: { msg: string; fields?: Record<string, unknown> }[];
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export function collectLogs(): CollectedLogs {
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  return { lines, warn: (msg, fields) => lines.push({ msg, fields }) };
}

/**
 * A gateway for a test. Its route matches every path unless the test names `routePrefixes`: the tests send short paths
 * (`/t`, `/h`); the route match itself (`/v1` by default, 404 elsewhere) is tested in routing.test.ts.
 */
export async function gateway(options: Partial<GatewayOptions> & Pick<GatewayOptions, 'endpoints'>): Promise<Gateway> {
  return startGateway({ logger: collectLogs(), shutdownGraceMs: 0, routePrefixes: [], ...options });
}

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly trailers: Record<string, string | undefined>;
  json(): Record<string, any>;
}

export interface RequestSpec {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: http.OutgoingHttpHeaders;
  /** A whole body, or pieces written one by one (chunked when no content-length header is given). */
  readonly body?: Buffer | string | readonly (Buffer | string)[];
  readonly trailers?: Record<string, string>;
}

const clientAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function send(port: number, spec: RequestSpec = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: LOOPBACK,
      port,
      method: spec.method ?? 'POST',
      path: spec.path ?? '/v1/completions',
      headers: spec.headers ?? { 'content-type': 'application/json' },
      agent: clientAgent,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          trailers: { ...res.trailers },
          json: () => JSON.parse(body.toString('utf8')) as Record<string, any>,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = spec.body;
    if (spec.trailers) req.addTrailers(spec.trailers);
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else {
      for (const piece of body) req.write(piece);
      req.end();
    }
  });
}

/** A JSON completion request body. */
export function completion(prompt = 'hello', extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'm', prompt, max_tokens: 4, ...extra });
}

export function destroyClientAgent(): void {
  clientAgent.destroy();
}
