/**
 * The root package.json scripts that run the bench (`npm start`, `npm run demo`, `npm run bench:*`), as npm runs them.
 * npm (v7+, @npmcli/run-script lib/signal-manager.js: SIGINT and SIGTERM are forwarded to the script's process) signals
 * only the process it spawned, `sh -c "<script>"`; dash, Debian's sh, dies of the signal and leaves its child running.
 * With `exec`, that process is the bench itself, so bench/README.md's "SIGINT or SIGTERM stops every process it started
 * and exits 0 once they have all exited" holds through npm too (`kill <npm's pid>`, a supervisor, a CI step's timeout).
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { E2E_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { ENTRY } from '../src/processes';

jest.setTimeout(E2E_TEST_TIMEOUT_MS);

const ROOT = path.join(__dirname, '..', '..');
const MAIN = path.join(__dirname, '..', 'dist', 'main.js');
const built = [MAIN, ...Object.values(ENTRY)].every((f) => fs.existsSync(f));
const SCRIPTS = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

describe('the root scripts that run the bench', () => {
  const benchScripts = Object.entries(SCRIPTS).filter(([, command]) => command.includes('bench/dist/main.js'));

  test('are start, demo and every bench:* script', () => {
    expect(benchScripts.map(([name]) => name).sort()).toEqual(['bench:burst', 'bench:hetero', 'bench:lora', 'bench:routing', 'demo', 'start']);
  });

  test.each(benchScripts)('%s replaces npm\'s shell with the bench (exec), so npm\'s forwarded signal reaches it', (_name, command) => {
    expect(command).toMatch(/&& exec node bench\/dist\/main\.js \w+$/);
  });
});

(built ? describe : describe.skip)('npm start, then SIGTERM to npm', () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-npm-start-'));
  const started: number[] = [];
  afterAll(() => {
    for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  test('stops every process the stack started, and npm exits 0 once they have exited', async () => {
    // npm's own variables from an enclosing `npm test` would make the inner npm and the bench think they are nested.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
    // The smallest stack: one pod, the EPP, the gateway on any free port.
    const npm = spawn('npm', ['start', '--', '--pods', '1', '--port', '0', '--log-dir', logDir], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    npm.stdout.on('data', (b: Buffer) => { stdout += b.toString('utf8'); });
    npm.stderr.resume();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm.once('exit', (code, signal) => resolve({ code, signal })));
    await waitFor(() => stdout.includes('"event":"ready"') || npm.exitCode !== null, 'the ready line', { limitMs: 90_000, intervalMs: 50 });
    const line = stdout.split('\n').find((l) => l.includes('"event":"ready"'));
    expect(line).toBeDefined();
    const ready = JSON.parse(line!) as { processes: { name: string; pid: number }[] };
    started.push(...ready.processes.map((p) => p.pid));
    expect(ready.processes.map((p) => p.name)).toEqual(['sim-0', 'epp', 'gateway']);

    npm.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(stdout).toContain('SIGTERM: stopping 3 processes\nstopped\n');
    // The bench returns only once every child has exited; the wait only bounds a broken run.
    await waitFor(() => ready.processes.every((p) => !alive(p.pid)), 'every process to exit', { limitMs: 10_000, intervalMs: 50 }).catch(() => undefined);
    expect(ready.processes.filter((p) => alive(p.pid)).map((p) => p.name)).toEqual([]);
  });
});
