/**
 * A SIGINT, SIGTERM or SIGHUP that reaches the bench's process alone (`kill <pid>`, a supervisor, a terminal's Ctrl-C
 * or hang-up: its children have process groups and sessions of their own) while its children are still starting. processes.ts: "always cleaned up — on
 * normal exit, on error, and on Ctrl-C"; bench/README.md: "SIGINT or SIGTERM stops every process it started". A child
 * is the bench's to kill from its spawn, not from its "listening" line.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { E2E_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { ENTRY } from '../src/processes';

jest.setTimeout(E2E_TEST_TIMEOUT_MS);

const DIST = path.join(__dirname, '..', 'dist');
const MAIN = path.join(DIST, 'main.js');
const built = [MAIN, path.join(DIST, 'processes.js'), ...Object.values(ENTRY)].every((f) => fs.existsSync(f));

/** Running: its /proc entry exists and is not a zombie (an orphan's exit waits for init to reap it). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Pids whose parent is `ppid` (field 4 of /proc/<pid>/stat), as `pgrep -P` finds them. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

interface Run {
  readonly pid: number;
  readonly output: { stdout: string; stderr: string };
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (b: Buffer) => { output.stdout += b.toString('utf8'); });
  child.stderr.on('data', (b: Buffer) => { output.stderr += b.toString('utf8'); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { pid: child.pid!, output, exited };
}

(built ? describe : describe.skip)('a signal while children are starting', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-process-signals-'));
  const leftovers: number[] = [];
  afterAll(() => {
    for (const pid of leftovers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // SIGHUP: a closed terminal hangs up the bench alone, whose death by the signal would skip its 'exit' hook.
  test.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)('%s kills the child that is listening and the one still starting, and counts both', async (signal) => {
    // Each child writes its pid to a file once running; `ready` then prints its "listening" line, `starting` never does.
    const child = (name: string, listens: boolean) => {
      const file = path.join(dir, `${signal}-${name}.js`);
      fs.writeFileSync(file, [
        `require('fs').writeFileSync(${JSON.stringify(path.join(dir, `${signal}-${name}.pid`))}, String(process.pid));`,
        listens ? "console.log(JSON.stringify({ event: 'listening', port: 1 }));" : '',
        'setInterval(() => undefined, 1000);',
      ].join('\n'));
      return file;
    };
    const driver = path.join(dir, `${signal}-driver.js`);
    fs.writeFileSync(driver, [
      `const { startProcess } = require(${JSON.stringify(path.join(DIST, 'processes.js'))});`,
      `startProcess('ready', ${JSON.stringify(child('ready', true))}, [])`,
      `  .then(() => startProcess('starting', ${JSON.stringify(child('starting', false))}, []));`,
    ].join('\n'));
    const pidFiles = ['ready', 'starting'].map((name) => path.join(dir, `${signal}-${name}.pid`));

    const bench = run([driver]);
    await waitFor(() => pidFiles.every((f) => fs.existsSync(f) && fs.readFileSync(f, 'utf8') !== ''), 'both children running', { limitMs: 30_000, intervalMs: 20 });
    const pids = pidFiles.map((f) => Number(fs.readFileSync(f, 'utf8')));
    leftovers.push(...pids);
    process.kill(bench.pid, signal);

    // The shell's status for the signal: 143, 130, 129.
    expect(await bench.exited).toEqual({ code: 128 + os.constants.signals[signal], signal: null });
    expect(bench.output.stderr).toBe(`\n${signal}: killed 2 child processes still running\n`);
    // It exits only once they have.
    expect(pids.filter(alive)).toEqual([]);
  });

  test('stack (npm start): SIGTERM while the pods start leaves no child running', async () => {
    const bench = run([MAIN, 'stack', '--pods', '2', '--port', '0', '--log-dir', path.join(dir, 'stack')]);
    let seen: number[] = [];
    await waitFor(() => (seen = childrenOf(bench.pid)).length > 0 || bench.output.stdout.includes('"event":"ready"'), 'its first child', { limitMs: 30_000, intervalMs: 10 });
    leftovers.push(...seen);
    process.kill(bench.pid, 'SIGTERM');
    expect(await bench.exited).toEqual({ code: 143, signal: null });
    expect(seen.filter(alive)).toEqual([]);
  });
});
