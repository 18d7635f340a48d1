/**
 * CPU time from /proc (Linux), for the benchmarks that say where the machine's CPU goes per request: one task (thread)
 * or a whole process, user + system. Elsewhere (no /proc) the readers return 0 and the figures built on them are 0.
 */
import * as fs from 'fs';

/**
 * The fields of a /proc stat line after the command name (from field 3, the state, on), or undefined when unreadable.
 * The name is cut at the last `)`, since a command name may hold spaces and parentheses.
 */
function statFields(file: string): string[] | undefined {
  try {
    const stat = fs.readFileSync(file, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) of one task (thread) or process from its /proc stat line; 0 when unreadable. */
export function statSeconds(file: string): number {
  const fields = statFields(file);
  // utime and stime, fields 14 and 15, in clock ticks (100 a second on Linux).
  return fields === undefined ? 0 : (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The process's CPU seconds: its main (for the EPP, routing) thread, and all its threads together. */
export function processCpu(pid: number): { main: number; all: number } {
  return { main: statSeconds(`/proc/${pid}/task/${pid}/stat`), all: statSeconds(`/proc/${pid}/stat`) };
}

/**
 * The process's state letter from its /proc stat line (`R` running, `S` sleeping, `T` stopped by a signal, …);
 * undefined where there is no /proc or no such process.
 */
export function processState(pid: number): string | undefined {
  return statFields(`/proc/${pid}/stat`)?.[0];
}
