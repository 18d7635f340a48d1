/**
 * A real `redis-server` (Debian's package, which .ci/run installs) on a free loopback port, for the session-store tests
 * and benchmarks: no persistence (`--save '' --appendonly no`), its own temporary directory, killed on stop. It can be
 * stopped and started again on the same port (the store-down/store-back tests) and paused with SIGSTOP (a store that
 * accepts connections but never answers).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, waitFor } from '@kvroute/testkit';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

/** Whether the binary runs here. In CI its absence is an error (see `requireRedisServerInCi`). */
export const redisServerAvailable: boolean = spawnSync(REDIS_SERVER, ['--version']).status === 0;

/** Tests call this at load: outside CI a missing binary skips them (named so), in CI it fails the run. */
export function requireRedisServerInCi(): void {
  if (!redisServerAvailable && process.env.CI) {
    throw new Error('the redis-server binary is required in CI (.ci/run installs the Debian package "redis-server")');
  }
}

export class RedisServer {
  private child: ChildProcess | undefined;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-redis-'));
  private output = '';

  private constructor(readonly port: number) {}

  /** Starts one on a free loopback port; resolves when it answers PING. */
  static async start(extraArgs: readonly string[] = []): Promise<RedisServer> {
    const server = new RedisServer(await freePort());
    await server.startProcess(extraArgs);
    return server;
  }

  /** Starts one on a given port (a store that comes up after the EPP, on the address it was configured with). */
  static async startOn(port: number, extraArgs: readonly string[] = []): Promise<RedisServer> {
    const server = new RedisServer(port);
    await server.startProcess(extraArgs);
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** (Re)starts the process on the same port. */
  async startProcess(extraArgs: readonly string[] = []): Promise<void> {
    if (this.child !== undefined) throw new Error('redis-server is already running');
    const child = spawn(REDIS_SERVER, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir,
      '--protected-mode', 'no', ...extraArgs,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (chunk: Buffer) => { this.output = (this.output + chunk.toString()).slice(-4000); };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('exit', () => { if (this.child === child) this.child = undefined; });
    try {
      await waitFor(async () => {
        if (this.child !== child) throw new Error(`redis-server exited: ${this.output}`);
        // A server with --requirepass answers -NOAUTH: up all the same.
        const reply = await this.command('PING').catch(() => '');
        return reply === '+PONG' || reply.startsWith('-NOAUTH');
      }, `redis-server on port ${this.port} to answer PING`);
    } catch (e) {
      await this.kill(); // a process left running would keep jest from exiting
      throw e;
    }
  }

  /** Kills the process (SIGKILL: a crash, no goodbye to clients) and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  /** SIGSTOP: connections stay open and nothing is answered, like a store stuck in a long command or a GC pause. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.resume();
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** An array reply of bulk strings (KEYS, SCAN's keys) as a list. */
  async commandLines(...args: string[]): Promise<string[]> {
    const raw = await this.rawReply(args, (text) => {
      const lines = text.split('\r\n');
      if (!lines[0]!.startsWith('*')) return true;
      return lines.length >= 2 + 2 * Number(lines[0]!.slice(1));
    });
    const lines = raw.split('\r\n');
    if (!lines[0]!.startsWith('*')) throw new Error(`not an array reply: ${lines[0]}`);
    const n = Number(lines[0]!.slice(1));
    return Array.from({ length: n }, (_, i) => lines[2 + 2 * i]!);
  }

  /** A bulk string reply in full (INFO's many lines), where `command` returns its first line. */
  async bulk(...args: string[]): Promise<string> {
    const head = /^\$(\d+)\r\n/;
    const raw = await this.rawReply(args, (text) => {
      const m = head.exec(text);
      return m === null ? text.includes('\r\n') : Buffer.byteLength(text) >= m[0].length + Number(m[1]) + 2;
    });
    const m = head.exec(raw);
    if (m === null) throw new Error(`not a bulk reply: ${raw.split('\r\n')[0]}`);
    return Buffer.from(raw).subarray(m[0].length, m[0].length + Number(m[1])).toString();
  }

  private rawReply(args: string[], complete: (text: string) => boolean): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, '127.0.0.1');
      let reply = '';
      socket.setTimeout(5000, () => socket.destroy(new Error('redis-server did not answer within 5 s')));
      socket.on('connect', () => {
        socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
      });
      socket.on('data', (chunk) => {
        reply += chunk.toString();
        if (!complete(reply)) return;
        resolve(reply);
        socket.end();
      });
      socket.on('error', reject);
    });
  }

  /**
   * One command over a fresh connection in RESP (inline arguments), returning the first reply line; the tests'
   * independent view of the store, not through the client under test.
   */
  async command(...args: string[]): Promise<string> {
    // A bulk string ($n) is two lines; everything else one.
    const reply = await this.rawReply(args, (text) => {
      const lines = text.split('\r\n');
      if (lines.length < 2) return false;
      return !(lines[0]!.startsWith('$') && lines[0] !== '$-1') || lines.length >= 3;
    });
    const lines = reply.split('\r\n');
    return lines[0]!.startsWith('$') && lines[0] !== '$-1' ? lines[1]! : lines[0]!;
  }
}
