import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { flagFor, parseArgs, USAGE } from '../src/cli';
import { resolveOptions } from '../src/options';

/**
 * gateway/README.md against the gateway itself, as a user reads it: the "Flags" table names every flag `--help` prints
 * and no other, with `--help`'s default, and "Programmatic use" names every option `startGateway` takes (each flag's
 * option, plus `logger`). The programmatic list had stopped growing with the flags: `host`, `acceptHttp10`,
 * `connectionIdleTimeoutMs` and `routePrefixes` were options a flag sets that it did not name.
 */
const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');

function section(heading: string): string {
  const start = readme.indexOf(`\n## ${heading}\n`);
  expect(start).toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** `--help`'s flags, each with the default it prints (the text after "default", up to the next ';' or ')'). */
const helpFlags = (() => {
  const out = new Map<string, string | undefined>();
  const lines = USAGE.split('\n');
  lines.forEach((line, i) => {
    const m = /^ {2}(?:-h, )?--([a-z0-9-]+)/.exec(line);
    if (!m) return;
    // The entry: its line and the indented lines after it, up to the next flag.
    let text = line;
    for (let j = i + 1; j < lines.length && /^ {4,}\S/.test(lines[j]!); j++) text += ` ${lines[j]!.trim()}`;
    const def = /\(default:? ([^;)]*)/.exec(text)?.[1]?.trim();
    out.set(m[1]!, def);
  });
  return out;
})();

/** The option a flag sets: its camelCase name (`--accept-http-10` → `acceptHttp10`), checked against the CLI's map. */
const optionOf = (flag: string): string => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

describe('gateway/README.md against the gateway', () => {
  test('--help was read', () => {
    expect(helpFlags.size).toBeGreaterThan(30);
    expect(helpFlags.get('port')).toMatch(/^8080/);
  });

  test('the Flags table names every flag --help lists, and only those', () => {
    const rows = section('Flags').split('\n').filter((l) => l.startsWith('| `-'));
    const inTable = new Set(rows.flatMap((r) => [...r.split(' | ')[0]!.matchAll(/`--([a-z0-9-]+)/g)].map((m) => m[1]!)));
    expect([...helpFlags.keys()].filter((f) => !inTable.has(f))).toEqual([]);
    expect([...inTable].filter((f) => !helpFlags.has(f))).toEqual([]);
  });

  test('a default the Flags table states is the one the gateway runs with', () => {
    // What `kvroute-gateway --endpoints …` runs with: the CLI's options, resolved as startGateway resolves them.
    const cli = parseArgs(['--endpoints', '127.0.0.1:1']);
    if (cli.kind !== 'run') throw new Error('no run');
    const resolved = resolveOptions(cli.options) as unknown as Record<string, unknown>;
    const problems: string[] = [];
    let compared = 0;
    for (const row of section('Flags').split('\n').filter((l) => l.startsWith('| `--'))) {
      const [first, cell] = row.slice(2).split(' | ') as [string, string];
      const flag = /`--([a-z0-9-]+)/.exec(first)![1]!;
      // One value: in backticks, or a bare number not followed by a unit (the table says "8 MiB" for 8388608).
      const stated = /^`([^`]*)`/.exec(cell.trim())?.[1] ?? /^(\d+)(?![\d.]*\s*[KMG]i?B)/.exec(cell.trim())?.[1];
      const value = resolved[optionOf(flag)];
      // A default that depends on another flag ("`send` with full-duplex, `skip` with buffered") is not one value.
      if (/ with /.test(cell)) continue;
      if (stated === undefined || value === undefined || (typeof value === 'object' && !Array.isArray(value))) continue;
      // Lists as the flag takes them: comma-joined (a bypass rule as "METHOD /path").
      const actual = Array.isArray(value)
        ? value.map((v: unknown) => (typeof v === 'object' && v !== null && 'path' in v ? `${(v as { method?: string }).method ?? ''} ${(v as { path: string }).path}`.trim() : String(v))).join(',')
        : String(value);
      compared++;
      if (stated !== actual) problems.push(`--${flag}: README ${JSON.stringify(stated)}, runs with ${JSON.stringify(actual)}`);
    }
    expect(compared).toBeGreaterThan(20);
    expect(problems).toEqual([]);
  });

  test('Programmatic use names every option startGateway takes', () => {
    const snippet = /```ts\n([\s\S]*?)```/.exec(section('Programmatic use'))![1]!;
    const named = new Set(snippet.match(/[A-Za-z][A-Za-z0-9]*/g));
    const options = [...helpFlags.keys()].filter((f) => f !== 'help').map((f) => {
      const option = optionOf(f);
      // The name the CLI itself maps the flag to (cli.ts FLAGS), so a flag renamed apart from its option shows here.
      expect(flagFor(option)).toBe(`--${f}`);
      return option;
    });
    const missing = [...options, 'logger'].filter((o) => !named.has(o));
    expect(missing).toEqual([]);
  });
});
