/**
 * The bench's redis-server (bench/src/redis-process.ts) leaves nothing behind: its temporary directory goes with it
 * whether the stack stops it or the bench exits first (a signal, an error), and a run that starts many stores (one per
 * replicated stack) does not accumulate process exit listeners.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { E2E_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { REDIS_SERVER_BINARY, startRedisServer } from '../src/redis-process';
import { reservePort } from '../src/stack';

jest.setTimeout(E2E_TEST_TIMEOUT_MS);

const redis = spawnSync(REDIS_SERVER_BINARY, ['--version']).status === 0;
if (!redis && process.env.CI) throw new Error('the redis-server binary is required in CI (.ci/run installs the Debian package "redis-server")');
const COMPILED = path.join(__dirname, '..', 'dist', 'redis-process.js');

(redis ? describe : describe.skip)(`the bench's redis-server${redis ? '' : ' (skipped: no redis-server binary)'}`, () => {
  test('stopping removes its directory and its exit hook, start after start', async () => {
    const listeners = process.listenerCount('exit');
    for (let i = 0; i < 3; i++) {
      const server = await startRedisServer(await reservePort());
      try {
        expect(fs.statSync(server.dir).isDirectory()).toBe(true);
        expect(process.listenerCount('exit')).toBe(listeners + 1);
      } finally {
        await server.stop();
      }
      expect(fs.existsSync(server.dir)).toBe(false);
      expect(process.listenerCount('exit')).toBe(listeners);
    }
  });

  (fs.existsSync(COMPILED) ? test : test.skip)('a bench that exits without stopping it kills the server and removes its directory', async () => {
    // A child process of its own, so its temporary directory can be a fresh one (jest's process.env is not os.tmpdir()'s).
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-redis-process-test-'));
    const script = `require(${JSON.stringify(COMPILED)}).startRedisServer(Number(process.argv[1])).then((s) => { console.log(s.port); process.exit(0); });`;
    const port = await reservePort();
    const child = spawn(process.execPath, ['-e', script, String(port)], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(out.trim()).toBe(String(port));
    expect(fs.readdirSync(tmp)).toEqual([]);
    fs.rmdirSync(tmp);
    await waitFor(async () => !(await accepts(port)), 'the orphaned redis-server to be gone');
  });
});

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
