/**
 * A real `redis-server` (Debian's package; `.ci/run` installs it) on a free loopback port, for stacks whose EPP replicas
 * share session bindings (`sessionStore` in their config). Nothing persisted (`--save '' --appendonly no`, its own
 * temporary directory), bound to 127.0.0.1 only, killed with the stack.
 */
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

export const REDIS_SERVER_BINARY = process.env.REDIS_SERVER ?? 'redis-server';

export interface RedisProcess {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`, the EPP config's `sessionStore.address`. */
  readonly url: string;
  /** Its own temporary directory (its `--dir`), removed when it stops or this process exits. */
  readonly dir: string;
  /** The redis-server process: `npm start` lists it with the others and stops the stack when it dies. */
  readonly child: ChildProcess;
  /** Where its output goes, if anywhere. */
  readonly logFile?: string;
  stop(): Promise<void>;
}

/** One PING on a fresh connection: resolves true on +PONG, false on anything else or an error. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (b: Buffer) => {
      reply += b.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** Starts redis-server on `port`; resolves once it answers PING. Throws a clear error when the binary is missing. */
export async function startRedisServer(port: number, logFile?: string, readyTimeoutMs = 15_000): Promise<RedisProcess> {
  if (spawnSync(REDIS_SERVER_BINARY, ['--version']).status !== 0) {
    throw new Error(`a shared session store needs the ${REDIS_SERVER_BINARY} binary (Debian package "redis-server"; .ci/run installs it)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-bench-redis-'));
  // detached, as processes.ts's children: a terminal's Ctrl-C reaches the bench alone, which stops the server itself.
  const child: ChildProcess = spawn(REDIS_SERVER_BINARY, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no',
  ], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : undefined;
  // Appended like the other processes' logs, so each start is marked (redis-server's own lines are plain text).
  log?.write(`# ${new Date().toISOString()} kvroute harness: redis-server started on port ${port} (pid ${child.pid})\n`);
  child.stdout!.on('data', (b: Buffer) => log?.write(b));
  child.stderr!.on('data', (b: Buffer) => log?.write(b));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    log?.end();
    resolve();
  }));
  // A bench that exits without stopping the stack (a signal, an error) still kills the server and removes its directory;
  // the hook is removed on stop, so a run that starts many stores does not pile up exit listeners.
  const onProcessExit = () => {
    if (!exited) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onProcessExit);
  const stop = async () => {
    process.removeListener('exit', onProcessExit);
    if (!exited) child.kill('SIGKILL');
    await exit;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exited) throw new Error(`redis-server on port ${port} exited before answering PING${logFile ? ` (see ${logFile})` : ''}`);
    if (await ping(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server on port ${port} did not answer PING within ${readyTimeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, url: `redis://127.0.0.1:${port}`, dir, child, ...(logFile ? { logFile } : {}), stop };
}
