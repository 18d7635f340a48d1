/**
 * A bench's output files (results.json, report.html) replace the previous ones whole or not at all. Written in place,
 * a run killed mid-write, or two runs into one --out, would leave a truncated JSON that `report` and README readers
 * choke on; a temp file in the same folder renamed over the target (rename(2) replaces a name atomically within one
 * file system) leaves either the old file or the new one.
 */
import * as fs from 'fs';
import * as path from 'path';

/**
 * Replaces `file` with `text` atomically; on any failure the old `file` stays as it was and no temp file is left. A
 * `file` that is a symbolic link keeps being one: the file it points to is replaced (a rename over the link would put a
 * plain file in its place and leave the link's target with the previous run, where an in-place write, as
 * inference-perf v0.6.1's LocalStorageClient.save_report does, writes through it).
 */
export function writeFileAtomic(file: string, text: string): void {
  file = linkTarget(file);
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(temp, text);
    fs.renameSync(temp, file);
  } catch (e) {
    fs.rmSync(temp, { force: true });
    throw e;
  }
}

/** The file a chain of symbolic links at `file` ends at (itself when it is none, or missing); a dangling one's target. */
function linkTarget(file: string): string {
  for (let hops = 0; hops < 40; hops++) {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(file);
    } catch {
      return file;
    }
    if (!stat.isSymbolicLink()) return file;
    file = path.resolve(path.dirname(file), fs.readlinkSync(file));
  }
  // A loop of links (the kernel would say ELOOP): replaced like a plain file.
  return file;
}

/** `value` as indented JSON with a final newline, written as `writeFileAtomic` writes. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}
