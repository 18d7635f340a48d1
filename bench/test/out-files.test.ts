/**
 * A bench's results.json / report.html replace the previous ones whole or not at all (bench/src/out-files.ts): a run
 * killed mid-write, or two runs into one --out, must not leave a truncated JSON for `report` or a README reader.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeFileAtomic, writeJsonAtomic } from '../src/out-files';

describe('writeFileAtomic / writeJsonAtomic', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-out-files-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('replaces the file by a rename: a reader holding the old file (here a hard link to it) still reads the old content whole', () => {
    const file = path.join(dir, 'results.json');
    fs.writeFileSync(file, '{"old":true}\n');
    fs.linkSync(file, path.join(dir, 'held'));
    writeJsonAtomic(file, { new: [1, 2] });
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ new: [1, 2] });
    expect(fs.readFileSync(path.join(dir, 'held'), 'utf8')).toBe('{"old":true}\n');
    expect(fs.readdirSync(dir).sort()).toEqual(['held', 'results.json']);
  });

  // An in-place write goes through a symbolic link (inference-perf v0.6.1 local.py save_report: open(report_path, "w")),
  // which a rename over the link would not (review of session 69).
  test('a symbolic link (here to a file in another folder, through a second link) stays a link and its target gets the new content', () => {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-out-files-target-'));
    try {
      const target = path.join(elsewhere, 'published.json');
      fs.writeFileSync(target, '{"old":true}\n');
      fs.symlinkSync(target, path.join(dir, 'hop'));
      fs.symlinkSync('hop', path.join(dir, 'results.json'));
      writeJsonAtomic(path.join(dir, 'results.json'), { new: true });
      expect(fs.lstatSync(path.join(dir, 'results.json')).isSymbolicLink()).toBe(true);
      expect(fs.readFileSync(target, 'utf8')).toBe('{\n  "new": true\n}\n');
      expect(fs.readdirSync(elsewhere)).toEqual(['published.json']);
      expect(fs.readdirSync(dir).sort()).toEqual(['hop', 'results.json']);
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test('a value that cannot be serialized (its toJSON throws) leaves the old file as it was and no temp file', () => {
    const file = path.join(dir, 'results.json');
    fs.writeFileSync(file, '{"old":true}\n');
    expect(() => writeJsonAtomic(file, { cells: { toJSON: () => { throw new Error('broken cell'); } } })).toThrow('broken cell');
    expect(fs.readFileSync(file, 'utf8')).toBe('{"old":true}\n');
    expect(fs.readdirSync(dir)).toEqual(['results.json']);
  });

  test('a rename that fails (the target is a folder that is not empty) throws, leaves the target as it was and no temp file', () => {
    const target = path.join(dir, 'report.html');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'inside'), 'kept\n');
    expect(() => writeFileAtomic(target, '<html></html>\n')).toThrow();
    expect(fs.readFileSync(path.join(target, 'inside'), 'utf8')).toBe('kept\n');
    expect(fs.readdirSync(dir)).toEqual(['report.html']);
  });

  test('a folder that is missing fails the write without creating anything', () => {
    expect(() => writeFileAtomic(path.join(dir, 'missing', 'results.json'), '{}\n')).toThrow(/ENOENT/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
