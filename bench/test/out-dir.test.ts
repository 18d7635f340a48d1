/**
 * The --out directory as a user gives it to the built CLI. bench/README.md: --out is where a command's results and
 * logs/ go, and "a bad value stops the command before anything starts, with a message naming the flag (exit status
 * 2)". inference-perf v0.6.1 (inference_perf/client/filestorage/local.py LocalStorageClient.save_report) makes
 * its report folder (os.makedirs exist_ok) and writes its own files, deleting nothing that was there.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { E2E_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { ENTRY } from '../src/processes';

jest.setTimeout(E2E_TEST_TIMEOUT_MS);

const MAIN = path.join(__dirname, '..', 'dist', 'main.js');
const built = [MAIN, ...Object.values(ENTRY)].every((f) => fs.existsSync(f));

interface Bench {
  readonly pid: number;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

function runBench(args: string[]): Bench {
  // Its own process group, so an interrupt reaches the bench and every child it started (a terminal's Ctrl-C).
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString('utf8'); });
  return { pid: child.pid!, stderr: () => stderr, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

/**
 * The files under `dir` whose text includes `needle`. The folder, or a file in it, may go between the listing and the
 * read (the bench empties its log folders while this polls: ENOENT at `scandir` failed a CI run): gone counts as none.
 */
function filesWith(dir: string, needle: string): string[] {
  const unlessGone = <T>(read: () => T, gone: T): T => {
    try {
      return read();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return gone;
      throw e;
    }
  };
  return unlessGone(() => fs.readdirSync(dir), [] as string[])
    .filter((f) => unlessGone(() => fs.readFileSync(path.join(dir, f), 'utf8'), '').includes(needle));
}

(built ? describe : describe.skip)('--out as a user gives it', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-out-dir-'));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  test('routing --out DIR empties the log folders the run writes and leaves the rest of DIR/logs (a home folder\'s own logs/)', async () => {
    const out = path.join(root, 'home');
    const runFolder = path.join(out, 'logs', 'high-cache-ample-r0');
    fs.mkdirSync(runFolder, { recursive: true });
    fs.writeFileSync(path.join(out, 'logs', 'mine.txt'), 'a user\'s own file\n');
    fs.writeFileSync(path.join(runFolder, 'round-robin-sim-0.log'), 'a line from an earlier run\n');
    // The smallest matrix there is, interrupted once its first process logs: only what happens before that matters.
    const bench = runBench(['routing', '--quick', '--only', 'matrix', '--workloads', 'high-cache', '--capacities', 'ample', '--policies', 'round-robin',
      '--no-warm-up', '--no-overhead', '--quiet', '--out', out]);
    try {
      await waitFor(() => filesWith(runFolder, 'kvroute harness: process started').length > 0, 'the run\'s first log line', { limitMs: 90_000, intervalMs: 50 });
    } finally {
      process.kill(-bench.pid, 'SIGINT');
      await bench.exited;
    }
    expect(fs.readFileSync(path.join(out, 'logs', 'mine.txt'), 'utf8')).toBe('a user\'s own file\n');
    expect(filesWith(runFolder, 'a line from an earlier run')).toEqual([]);
  });

  test.each([['routing', '--out'], ['lora', '--out'], ['hetero', '--out'], ['burst', '--out'], ['demo', '--out'], ['stack', '--log-dir']])(
    '%s %s FILE is a bad flag value: exit 2, a message naming the flag, no stack trace', async (command, flag) => {
      const file = path.join(root, `${command}-a-file`);
      fs.writeFileSync(file, '');
      const bench = runBench([command, flag, file]);
      expect(await bench.exited).toBe(2);
      expect(bench.stderr()).toBe(`kvroute-bench ${command}: ${flag}: ${file} exists and is not a directory\n`);
    });

  // A dangling symlink: fs.mkdirSync(out, { recursive: true }) fails on it, so it is refused with the flags too.
  test.each([['routing', '--out'], ['stack', '--log-dir']])('%s %s DANGLING-SYMLINK is a bad flag value: exit 2, a message naming the flag', async (command, flag) => {
    const link = path.join(root, `${command}-dangling`);
    fs.symlinkSync(path.join(root, `${command}-missing`), link);
    const bench = runBench([command, flag, link]);
    expect(await bench.exited).toBe(2);
    expect(bench.stderr()).toBe(`kvroute-bench ${command}: ${flag}: ${link} is a symlink that leads to no directory\n`);
  });
});
