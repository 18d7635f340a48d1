import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { usage } from '../src/cli';

/**
 * epp/README.md's "Flags" section is what operators (and chart authors passing upstream's flags) read: every flag the
 * EPP's parser takes, by every spelling, is named there, every flag its table names is one the parser takes, and a
 * table row's default is the parser's (`--help` prints the same `(default …)`), so neither can drift from the other.
 */
describe('epp/README.md "Flags" against the CLI', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Flags');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const rows = section.split('\n').filter((l) => l.startsWith('| `-'));
  /** `--help`'s entries: every spelling of a flag, and its default when it prints one. */
  const flags = usage().split('\n')
    .map((line, i, lines) => {
      const m = /^ {2}(--\S.*?)(?: <\w+>)?$/.exec(line);
      if (!m) return undefined;
      const names = m[1]!.split(', ').map((n) => n.replace(/^--/, ''));
      const def = /\(default ([^)]*)\)$/.exec(lines[i + 1] ?? '');
      return { names, default: def?.[1] };
    })
    .filter((f): f is { names: string[]; default: string | undefined } => f !== undefined);
  const known = new Set(flags.flatMap((f) => f.names));

  test('the section and the usage were found', () => {
    expect(start).toBeGreaterThan(0);
    expect(rows.length).toBeGreaterThan(30);
    expect(flags.length).toBeGreaterThan(50);
  });

  test('every flag --help lists, in every spelling, is named in the section', () => {
    const named = new Set([...section.matchAll(/`-{1,2}([A-Za-z][A-Za-z0-9-]*)/g)].map((m) => m[1]!));
    // The table's "(`grpcPort`)" spelling of an alias, and its "/ `-path` / `-scheme`" shorthand after a full flag name.
    for (const m of section.matchAll(/\(`([A-Za-z][A-Za-z0-9]*)`\)/g)) named.add(m[1]!);
    for (const m of section.matchAll(/`--(model-server-metrics)-port` \/ `-path` \/ `-scheme`/g)) for (const s of ['path', 'scheme']) named.add(`${m[1]}-${s}`);
    // "the upstream camelCase spellings are accepted too": an alias that is its flag's name in camelCase needs no mention.
    const camel = (kebab: string) => kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const isCamelAlias = (name: string) => flags.some((f) => f.names.slice(1).includes(name) && camel(f.names[0]!) === name);
    const missing = [...known].filter((name) => name !== 'help' && name !== 'h' && !named.has(name) && !isCamelAlias(name));
    expect(missing).toEqual([]);
  });

  test('every flag the table names is one the EPP takes, and a default the table states is the parser\'s', () => {
    const problems: string[] = [];
    for (const row of rows) {
      const [first, defaultCell] = row.slice(2).split(' | ');
      const names = [...first!.matchAll(/`--([A-Za-z][A-Za-z0-9-]*)`/g)].map((m) => m[1]!);
      for (const name of names) {
        if (!known.has(name)) problems.push(`--${name}: not a flag of the EPP`);
      }
      const flag = flags.find((f) => f.names.includes(names[0]!));
      // Only where the parser prints a default and the row gives one value (not a list of several flags' defaults). A
      // help text may say more after the value ("1024, or flowControl.maxQueued", "134217728 = 128 MiB").
      const printed = flag?.default?.split(/,|:| = /)[0]!.trim();
      if (printed !== undefined && names.length === 1 && defaultCell!.trim() !== printed) {
        problems.push(`--${names[0]}: README default ${JSON.stringify(defaultCell!.trim())}, --help (default ${flag!.default})`);
      }
    }
    expect(problems).toEqual([]);
  });
});
