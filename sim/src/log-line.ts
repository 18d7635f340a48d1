/**
 * One JSON log line on stderr, with the time it was written: vLLM's own lines carry theirs (`_FORMAT` =
 * "%(levelname)s %(asctime)s …" in vllm/logger.py), and the bench stack appends each process's stderr to one file
 * across restarts, where a line without a time cannot be placed beside the EPP's (which have `ts`).
 */
export function logLine(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields })}\n`);
}
