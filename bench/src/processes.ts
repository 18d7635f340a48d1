/**
 * Child processes of the local stack (simulators, the EPP, the gateway): started from their built entry points on
 * free ports, awaited until they print their JSON "listening" line, and always cleaned up — on normal exit, on error,
 * and on Ctrl-C or SIGTERM, whether they are listening yet or still starting — so a demo never leaves servers behind.
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';

/** The bench package's own folder (its reports go to `out/` there). */
export const BENCH_DIR = path.resolve(__dirname, '..');

/** A workspace package's command-line entry point, as its package.json `bin` names it. */
function binOf(pkg: string): string {
  const manifest = require.resolve(`${pkg}/package.json`);
  const bin = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { bin: Record<string, string> }).bin;
  return path.join(path.dirname(manifest), Object.values(bin)[0]!);
}

/** Built entry points (`npm run build` produces them). */
export const ENTRY = {
  sim: binOf('@kvroute/sim'),
  epp: binOf('@kvroute/epp'),
  gateway: binOf('@kvroute/gateway'),
} as const;

/** A run's own log paths under its logs folder: `name` (a folder, or one log file) to the path of that entry. */
export type RunLogPaths = (name: string) => string;

/**
 * The paths of a run's own logs under `root` (the `logs/` of a command's --out). Each entry is removed the first time
 * the run names it, because the processes append to their logs (a pod restarted mid-run keeps one file) and a
 * previous run's lines would otherwise come first. Nothing else under `root` is touched: `--out ~` keeps whatever
 * ~/logs held, as inference-perf v0.6.1 (inference_perf/client/filestorage/local.py LocalStorageClient.save_report)
 * only makes its folder and writes its own files.
 */
export function runLogPaths(root: string): RunLogPaths {
  const named = new Set<string>();
  return (name) => {
    const entry = path.join(root, name);
    if (!named.has(name)) {
      named.add(name);
      fs.rmSync(entry, { recursive: true, force: true });
      fs.mkdirSync(root, { recursive: true });
    }
    return entry;
  };
}

export interface Started {
  readonly name: string;
  readonly child: ChildProcess;
  /** The parsed "listening" line. */
  readonly info: Record<string, unknown>;
  /** Where its stderr (its log) goes, if anywhere. */
  readonly logFile?: string;
  /** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once (the fault runs' "pod dies"). */
  kill(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but runs nothing (the fault runs' "EPP stalls": a GC pause, a starved CPU). */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  readonly exited: boolean;
}

const READY_TIMEOUT_MS = 120_000;

/**
 * Every child from its spawn until its exit, each with the promise of that exit: one still starting (not yet
 * "listening") is as much this process's to stop as one serving.
 */
const running = new Map<ChildProcess, Promise<void>>();
let hooked = false;
let interruptHandler: ((signal: NodeJS.Signals) => void) | undefined;

/**
 * Set once a signal is killing every child: a start those kills end is not a failure to report (its rejection would
 * race this process's exit with the signal's status, exit 1 from an unhandled or reported error).
 */
let killedBySignal = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const child of running.keys()) child.kill('SIGKILL');
  };
  process.on('exit', killAll);
  // SIGHUP too: the children have sessions of their own (see startProcess), so a closed terminal hangs up only this
  // process, whose death by the signal would skip the 'exit' hook and leave them running.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      const handler = interruptHandler;
      interruptHandler = undefined;
      if (handler) return handler(signal);
      // Those still running are killed outright (SIGKILL), and this process exits once they have, with the shell's
      // status for the signal (128 + its number). A child that already exited on its own is not counted.
      const alive = [...running.keys()].filter((child) => child.exitCode === null && child.signalCode === null).length;
      killedBySignal = true;
      killAll();
      process.stderr.write(`\n${signal}: killed ${alive} child process${alive === 1 ? '' : 'es'} still running\n`);
      void Promise.all(running.values()).then(() => process.exit(128 + os.constants.signals[signal]));
    });
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
async function stopChild(child: ChildProcess, exit: Promise<void>, graceMs: number): Promise<void> {
  child.kill('SIGTERM');
  // A paused process (`pause`) handles SIGTERM only once it runs again.
  child.kill('SIGCONT');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exit;
  clearTimeout(t);
}

/**
 * For a command whose normal end is Ctrl-C (the stack): the next SIGINT or SIGTERM calls `handler` instead of killing
 * every child and exiting 130 (143 for SIGTERM, 129 for SIGHUP), so the command can stop its processes gracefully and exit 0. A signal after that one
 * kills at once, as before.
 */
export function onNextInterrupt(handler: (signal: NodeJS.Signals) => void): void {
  hookExit();
  interruptHandler = handler;
}

export interface StartOptions {
  /** Where stderr (logs) goes; nothing is kept when omitted. */
  readonly logFile?: string;
  /**
   * How long a start may take to print "listening". It only bounds a start that hangs (a process that dies is reported
   * at its exit), so it is generous: a lone simulator took 16.5 s to start on a 2-core machine at load 15.
   * @default 120000
   */
  readonly readyTimeoutMs?: number;
}

/** Starts `node entry args`, resolves with the first stdout line that is a JSON object with event "listening". */
export function startProcess(name: string, entry: string, args: readonly string[], options: StartOptions = {}): Promise<Started> {
  if (!fs.existsSync(entry)) {
    return Promise.reject(new Error(`${name}: ${entry} does not exist; run \`npm run build\` first`));
  }
  hookExit();
  // A VLLM_API_KEY exported for real vLLM servers would make every simulated pod ask for it (as vLLM does), and this
  // harness's clients send none: the stack it starts is its own, so the key is not passed on (spawn skips undefined).
  // detached: a session and process group of its own, so a terminal's Ctrl-C reaches this process alone and each child
  // is stopped by the one SIGTERM this process sends, as the kubelet sends a pod's containers one SIGTERM. In this
  // process's group the child got the terminal's SIGINT and then that SIGTERM: a second signal, on which the EPP exits
  // 1 at once without draining (as upstream's SetupSignalHandler does, see epp/src/main.ts).
  const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VLLM_API_KEY: undefined }, detached: true });
  const log = options.logFile ? fs.createWriteStream(options.logFile, { flags: 'a' }) : undefined;
  // Logs are appended (a pod restarted by a fault run keeps one file), so each start is marked: a JSON line like the
  // processes' own, which says which run and which process the lines after it belong to.
  log?.write(`${JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'kvroute harness: process started', process: name, pid: child.pid, args })}\n`);
  const stderrTail: string[] = [];
  child.stderr!.on('data', (b: Buffer) => {
    log?.write(b);
    stderrTail.push(b.toString());
    if (stderrTail.length > 20) stderrTail.shift();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  // Its exit as this process waits for it: once its stderr has been read to the end ('close'; 'exit' can come first)
  // and its log ends with how it ended (a clean stop is status 0: did it drain, or was it killed?), written out before
  // anything that waited for it (a stop, then this process's exit) goes on.
  const exit = new Promise<void>((resolve) => child.once('close', (code, signal) => {
    exited = true;
    running.delete(child);
    if (!log) return resolve();
    log.once('error', () => resolve());
    log.end(`${JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'kvroute harness: process exited', process: name, pid: child.pid, code, signal })}\n`, () => resolve());
  }));
  running.set(child, exit);

  return new Promise<Started>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name}: not listening after ${options.readyTimeoutMs ?? READY_TIMEOUT_MS} ms\n${stderrTail.join('')}`));
    }, options.readyTimeoutMs ?? READY_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (killedBySignal) return;
      reject(new Error(`${name} exited (${signal ?? code}) before listening\n${stderrTail.join('')}`));
    });
    const lines = readline.createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (typeof msg === 'object' && msg !== null && (msg as { event?: string }).event === 'listening') {
        clearTimeout(timer);
        const started: Started = {
          name,
          child,
          info: msg as Record<string, unknown>,
          logFile: options.logFile,
          get exited() {
            return exited;
          },
          async stop(graceMs = 5000) {
            if (!exited) await stopChild(child, exit, graceMs);
          },
          async kill() {
            if (!exited) child.kill('SIGKILL');
            await exit;
          },
          pause() {
            if (!exited) child.kill('SIGSTOP');
          },
          resume() {
            if (!exited) child.kill('SIGCONT');
          },
        };
        resolve(started);
      }
    });
  });
}

/** Stops every process still running, started or still starting (in parallel). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map(([child, exit]) => stopChild(child, exit, 5000)));
}
