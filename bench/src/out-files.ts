/**
 * A bench's output files (results.json, report.html) replace the previous ones whole or not at all. Written in place,
 * a run killed mid-write, or two runs into one --out, would leave a truncated JSON that `report` and README readers
 * choke on; a temp file in the same folder renamed over the target (rename(2) replaces a name atomically within one
 * file system) leaves either the old file or the new one.
 */
import * as fs from 'fs';
import * as path from 'path';

/** Replaces `file` with `text` atomically; on any failure the old `file` stays as it was and no temp file is left. */
export function writeFileAtomic(file: string, text: string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(temp, text);
    fs.renameSync(temp, file);
  } catch (e) {
    fs.rmSync(temp, { force: true });
    throw e;
  }
}

/** `value` as indented JSON with a final newline, written as `writeFileAtomic` writes. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}
