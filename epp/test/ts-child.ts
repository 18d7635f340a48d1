import { spawn } from 'node:child_process';
import * as path from 'node:path';

/**
 * Runs `script` in a node process that loads TypeScript (from epp/, so `../src/...` requires resolve as in the tests),
 * under `ulimit -n fdLimit` when given; resolves to its exit code, stdout and stderr. For what must be measured in a
 * process of its own: a native library's process-wide state (libzmq's context) or the process's open-file limit.
 */
export function runTsChild(script: string, options: { fdLimit?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = ['--require', 'ts-node/register/transpile-only', '-e', script];
  const proc = options.fdLimit === undefined
    ? spawn(process.execPath, args, { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('/bin/sh', ['-c', `ulimit -n ${options.fdLimit} && exec "$0" "$@"`, process.execPath, ...args], { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve) => proc.once('close', (code) => resolve({ code, stdout, stderr })));
}
