import { unexpectedFailures } from '../src/demo';
import type { RequestRecord } from '../src/run';

/** A record with only what the fault accounting reads. */
function record(startedMs: number, endedMs: number, ok: boolean): RequestRecord {
  return { kind: 'chat', messages: [], headers: {}, startedMs, endedMs, result: { ok } } as unknown as RequestRecord;
}

describe("the demo's fault accounting: which failures a pod kill explains", () => {
  const killedAt = 1000;
  const exitedAt = 1040;

  test('a request that connected while the killed process was still exiting was in flight on it', () => {
    const lateStarter = record(1020, 1050, false);
    expect(unexpectedFailures([lateStarter], killedAt, exitedAt)).toEqual([]);
    // With only the signal's time, the same request looks like it started after the kill.
    expect(unexpectedFailures([lateStarter], killedAt)).toEqual([lateStarter]);
  });

  test('failures that started after the process was gone, or ended before the signal, are not explained', () => {
    const afterExit = record(1041, 1100, false);
    const beforeKill = record(900, 990, false);
    const spanning = record(900, 1010, false);
    const served = record(1020, 1100, true);
    expect(unexpectedFailures([afterExit, beforeKill, spanning, served], killedAt, exitedAt)).toEqual([afterExit, beforeKill]);
    expect(unexpectedFailures([afterExit], undefined)).toEqual([afterExit]);
  });
});
