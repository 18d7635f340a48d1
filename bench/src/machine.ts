import * as os from 'os';

/** The machine a benchmark ran on, as its report records it: compare ratios within one run on a shared machine. */
export interface MachineNote {
  readonly cpus: string;
  readonly node: string;
  readonly loadStart: number[];
  readonly loadEnd: number[];
}

/** Notes the machine at a benchmark's start: `summary` for its first log line, `finish()` for its report. */
export function noteMachine(): { readonly summary: string; finish(): MachineNote } {
  const list = os.cpus();
  const cpus = `${list.length} × ${list[0]?.model ?? '?'}`;
  const loadStart = os.loadavg();
  return {
    summary: `${cpus}, node ${process.version}, load ${loadStart.map((l) => l.toFixed(2)).join(' ')}`,
    finish: () => ({ cpus, node: process.version, loadStart, loadEnd: os.loadavg() }),
  };
}
