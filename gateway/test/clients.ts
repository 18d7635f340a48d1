/**
 * A test client that sees a response as it arrives and how it ended: `until(text)` resolves once the body so far
 * contains `text`; `done` resolves when the response ended (`ended`) or the connection was cut (`reset`), and never
 * rejects. The request body can be given whole, or written piece by piece (`write`, `end`) after the headers went out
 * alone (`flushHeaders`), so a test can decide what the gateway has received when the EPP fails.
 */
import * as http from 'http';
import * as net from 'net';
import { LOOPBACK } from './harness';

export class StreamingReply {
  text = '';
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  ended = false;
  reset = false;
  readonly done: Promise<void>;
  private readonly req: http.ClientRequest;
  private waiters: { text: string; resolve: () => void }[] = [];

  /** `body` undefined: the body is written with `write`/`end` (chunked unless a content-length header is given). */
  constructor(port: number, path: string, body?: string | Buffer, headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' }) {
    let settle: () => void = () => undefined;
    this.done = new Promise((resolve) => {
      settle = resolve;
    });
    const cut = (): void => {
      if (this.ended) return;
      this.reset = true;
      settle();
      for (const w of this.waiters.splice(0)) w.resolve();
    };
    this.req = http.request({ host: LOOPBACK, port, method: 'POST', path, headers, agent: false }, (res) => {
      this.status = res.statusCode ?? 0;
      this.headers = res.headers;
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        this.text += c;
        this.check();
      });
      res.on('end', () => {
        this.ended = true;
        settle();
      });
      res.on('aborted', cut);
      res.on('error', cut);
    });
    this.req.on('error', cut);
    if (body !== undefined) this.req.end(body);
  }

  /** Sends the request headers now, before any body. */
  flushHeaders(): void {
    this.req.flushHeaders();
  }

  write(piece: Buffer | string): Promise<void> {
    return new Promise((resolve) => this.req.write(piece, () => resolve()));
  }

  end(): void {
    this.req.end();
  }

  /** Resolves once the body so far contains `text` (or the response was cut). */
  until(text: string): Promise<void> {
    if (this.text.includes(text) || this.reset) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ text, resolve });
    });
  }

  json(): Record<string, any> {
    return JSON.parse(this.text) as Record<string, any>;
  }

  private check(): void {
    for (const w of [...this.waiters]) {
      if (this.text.includes(w.text)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }
}

/** Raw bytes in; everything the gateway wrote until it closed the connection or `idleMs` passed without data. */
export function rawUntilIdle(port: number, request: string, idleMs = 1500): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, LOOPBACK, () => socket.write(request));
    let data = '';
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        socket.destroy();
        resolve(data);
      }, idleMs);
    };
    arm();
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      data += c;
      arm();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.on('error', reject);
  });
}

/** A raw connection to the gateway, once connected: everything it has received so far (latin1), and whether it closed. */
export interface RawConnection {
  readonly socket: net.Socket;
  received(): string;
  closed(): boolean;
}

export async function rawConnection(port: number): Promise<RawConnection> {
  const socket = net.connect(port, LOOPBACK);
  let data = '';
  let closed = false;
  socket.on('data', (d: Buffer) => { data += d.toString('latin1'); });
  socket.on('close', () => { closed = true; });
  try {
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  } catch (e) {
    socket.destroy();
    throw e;
  }
  return { socket, received: () => data, closed: () => closed };
}
