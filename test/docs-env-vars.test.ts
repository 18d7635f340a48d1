import * as fs from 'fs';
import * as path from 'path';
import { markdownFiles } from './support/markdown';
import { REPO } from './support/paths';

/**
 * Every environment variable the shipped code reads by name (`process.env.X`, `process.env['X']`, or `env.X` on an
 * environment passed in, as the EPP's flag parser takes it) is named in the project's Markdown, so a user can learn
 * what changes the programs' behaviour from outside their flags. Variables read by a computed name (a config's
 * `passwordEnv`, npm's `npm_config_<flag>`) are the config's or npm's, and named where those are described. The EPP's
 * micro-benchmarks (`epp/bench/`) document their `BENCH_*` knobs in their own file headers.
 */
const SOURCES = ['lib', 'main.ts', 'epp/src', 'sim/src', 'gateway/src', 'bench/src', 'protocol/src', 'tokenizer/src'];
/** Read but set by a tool, not a user: cdk8s-cli's output folder for the app it runs (`main.ts` creates it). */
const SET_BY_TOOLS = new Set(['CDK8S_OUTDIR']);

function sourceFiles(entry: string): string[] {
  const full = path.join(REPO, entry);
  if (!fs.existsSync(full)) return [];
  if (fs.statSync(full).isFile()) return [full];
  return fs.readdirSync(full, { withFileTypes: true }).flatMap((e) => {
    if (e.name === 'node_modules' || e.name === 'dist') return [];
    const child = path.join(entry, e.name);
    return e.isDirectory() ? sourceFiles(child) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path.join(REPO, child)] : [];
  });
}

describe('environment variables in the Markdown docs', () => {
  const read = new Map<string, string>();
  for (const file of SOURCES.flatMap(sourceFiles)) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\b(?:process\.)?env(?:\.([A-Z][A-Z0-9_]*)|\[\s*'([A-Z][A-Z0-9_]*)'\s*\])/g)) {
      read.set(m[1] ?? m[2]!, path.relative(REPO, file));
    }
  }
  const docs = markdownFiles().map((f) => fs.readFileSync(f, 'utf8')).join('\n');

  it('finds the variables the programs read', () => {
    expect([...read.keys()]).toEqual(expect.arrayContaining(['VLLM_API_KEY', 'PYTHONHASHSEED', 'NAMESPACE', 'POD_NAME']));
  });

  it('names each one', () => {
    const undocumented = [...read].filter(([name]) => !SET_BY_TOOLS.has(name) && !new RegExp(`\\b${name}\\b`).test(docs)).map(([name, file]) => `${name} (${file})`);
    expect(undocumented).toEqual([]);
  });
});
