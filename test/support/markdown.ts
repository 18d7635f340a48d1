import * as fs from 'fs';
import * as path from 'path';
import { REPO } from './paths';

/** Folders whose Markdown is not the project's own (dependencies, output, vendored). */
const SKIP = new Set(['node_modules', 'dist', '.git', 'coverage', 'imports', 'schemas']);

/** Every Markdown file of the repository's own, under `dir`. */
export function markdownFiles(dir: string = REPO): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name) || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...markdownFiles(full));
    else if (entry.name.endsWith('.md')) out.push(full);
  }
  return out;
}
