import * as fs from 'fs';
import * as path from 'path';
import { markdownFiles } from './support/markdown';
import { REPO } from './support/paths';

/**
 * Every relative link in the repository's Markdown resolves: the file exists, and a `#fragment` names a heading of
 * the target (GitHub's anchor rule: lower case, punctuation other than `-` and `_` dropped, spaces to `-`, a `-N`
 * suffix for repeats). A results update once cut four sections out of epp/README.md and left links to them dangling;
 * this catches that, and renamed headings, before a reader does.
 */
const ROOT = REPO;

/** The text outside fenced code blocks (links and headings inside them are examples, not structure). */
function prose(text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '');
}

export function githubAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of prose(markdown).split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .replace(/<[^>]+>/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

describe('Markdown links', () => {
  it('computes anchors as GitHub does', () => {
    const anchors = githubAnchors('# Scraping at 256 pods\n## Soft session stickiness (`stickiness: soft`)\n### Replica scaling (issue 10)\n## Dup\n## Dup\n```\n# not a heading\n```\n');
    expect([...anchors]).toEqual(['scraping-at-256-pods', 'soft-session-stickiness-stickiness-soft', 'replica-scaling-issue-10', 'dup', 'dup-1']);
  });

  const files = markdownFiles(ROOT);
  it('finds the READMEs', () => {
    expect(files.map((f) => path.relative(ROOT, f))).toEqual(expect.arrayContaining(['README.md', 'epp/README.md', 'bench/README.md']));
  });

  it.each(files.map((f) => [path.relative(ROOT, f), f]))('%s: every relative link and anchor resolves', (_name, file) => {
    const text = prose(fs.readFileSync(file, 'utf8'));
    const broken: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target)) continue; // http:, https:, mailto:
      const [rel, fragment] = target.split('#') as [string, string | undefined];
      const resolved = rel === '' ? file : path.resolve(path.dirname(file), decodeURIComponent(rel));
      if (!fs.existsSync(resolved)) {
        broken.push(`${target}: no such file`);
        continue;
      }
      if (fragment === undefined || fragment === '' || !resolved.endsWith('.md')) continue;
      if (!githubAnchors(fs.readFileSync(resolved, 'utf8')).has(decodeURIComponent(fragment))) broken.push(`${target}: no such heading`);
    }
    expect(broken).toEqual([]);
  });
});

/**
 * The constructs' props cite README sections by their heading (`@see epp/README.md "Sessions across replicas"`), which
 * an IDE shows beside the prop; a renamed or never-written heading leaves the reader searching. Two did (session 77:
 * "Shared sessions", "Waiting for a sequence slot").
 */
describe('@see references from lib/ to README headings', () => {
  const libFiles = fs.readdirSync(path.join(ROOT, 'lib')).filter((f) => f.endsWith('.ts')).map((f) => path.join(ROOT, 'lib', f));
  const refs = libFiles.flatMap((file) =>
    [...fs.readFileSync(file, 'utf8').matchAll(/@see ((?:[\w-]+\/)*[\w-]+\.md) "([^"]+)"/g)].map((m) => ({ file: path.relative(ROOT, file), doc: m[1]!, heading: m[2]! })),
  );

  it('finds the references', () => {
    expect(refs.length).toBeGreaterThanOrEqual(5);
  });

  it('each names a heading of the file it cites (paths from the repository root)', () => {
    const headings = (doc: string): Set<string> =>
      new Set(prose(fs.readFileSync(path.join(ROOT, doc), 'utf8')).split('\n').flatMap((l) => /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(l)?.[1] ?? []));
    const broken = refs.filter((r) => !fs.existsSync(path.join(ROOT, r.doc)) || !headings(r.doc).has(r.heading)).map((r) => `${r.file}: ${r.doc} "${r.heading}"`);
    expect(broken).toEqual([]);
  });
});
