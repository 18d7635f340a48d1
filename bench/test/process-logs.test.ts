/** The harness's process logs: appended across restarts, each start marked (a new user's trial, session 40). */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startProcess } from '../src/processes';

describe('startProcess log files', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-process-logs-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('appends each start\'s stderr after a JSON marker naming the process, its pid and arguments', async () => {
    const entry = path.join(dir, 'entry.js');
    fs.writeFileSync(entry, [
      "process.stderr.write(JSON.stringify({ msg: 'hello', run: process.argv[2] }) + '\\n');",
      "console.log(JSON.stringify({ event: 'listening', port: 1 }));",
      'setInterval(() => undefined, 1000);',
    ].join('\n'));
    const logFile = path.join(dir, 'p.log');
    const pids: number[] = [];
    for (const run of ['first', 'second']) {
      const p = await startProcess('probe', entry, [run], { logFile });
      pids.push(p.child.pid!);
      // The hello line is written before "listening", but reaches the file through a pipe: wait for it.
      for (let i = 0; i < 100 && !fs.readFileSync(logFile, 'utf8').includes(`"run":"${run}"`); i++) await new Promise((r) => setTimeout(r, 20));
      await p.stop();
    }
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    // Each run also ends with how it ended: this entry has no SIGTERM handler, so stop() ends it by the signal.
    expect(lines).toEqual([
      expect.objectContaining({ msg: 'kvroute harness: process started', process: 'probe', pid: pids[0], args: ['first'] }),
      { msg: 'hello', run: 'first' },
      expect.objectContaining({ msg: 'kvroute harness: process exited', process: 'probe', pid: pids[0], code: null, signal: 'SIGTERM' }),
      expect.objectContaining({ msg: 'kvroute harness: process started', process: 'probe', pid: pids[1], args: ['second'] }),
      { msg: 'hello', run: 'second' },
      expect.objectContaining({ msg: 'kvroute harness: process exited', process: 'probe', pid: pids[1], code: null, signal: 'SIGTERM' }),
    ]);
    expect(typeof lines[0]!.ts).toBe('string');
  });
});
