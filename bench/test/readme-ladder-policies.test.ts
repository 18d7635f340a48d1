/**
 * Which policies `npm run bench:routing` runs by default, as a reader learns it from `--help` and from bench/README.md's
 * "Policies" table, against the lists the command parses (`parseRoutingArgs([])`): the matrix's `policies` and the
 * ladder's `ladder.policies`. Since session 62 the ladder runs the matrix's policies and `ISSUE_REFERENCE_DEFAULT`, no
 * longer every candidate, and both texts kept the old list for sessions after: `--help` said the ladder ran "all, the
 * candidates included", and the table that `kvroute-latency` was a candidate "the ladder runs".
 */
import * as fs from 'fs';
import * as path from 'path';
import { POLICY_NAMES } from '../src/policies';
import { parseRoutingArgs, ROUTING_USAGE } from '../src/routing-bench';

const README = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
const defaults = parseRoutingArgs([])!;
const matrix = new Set<string>(defaults.policies);
const ladder = new Set<string>(defaults.ladder.policies);

/** The policy names in a text, longest first so that `kvroute-precise` is not read inside `kvroute-precise-64`. */
function policiesIn(text: string): string[] {
  const names = [...POLICY_NAMES].sort((a, b) => b.length - a.length);
  const found: string[] = [];
  let rest = text;
  for (const name of names) {
    const re = new RegExp(`(?<![\\w-])${name.replace(/[-]/g, '\\-')}(?![\\w-])`, 'g');
    if (re.test(rest)) found.push(name);
    rest = rest.replace(re, '');
  }
  return found.sort();
}

describe('the ladder\'s default policies, as --help and bench/README.md state them', () => {
  test('the ladder runs more than the matrix, and not every policy', () => {
    expect([...matrix].every((p) => ladder.has(p))).toBe(true);
    expect(ladder.size).toBeGreaterThan(matrix.size);
    expect(ladder.size).toBeLessThan(POLICY_NAMES.length);
  });

  test('--help: what it says the ladder runs by default is the list the command parses', () => {
    // Every line of the usage that says what the ladder runs ("The ladder runs …", "the ladder also runs …").
    const claims = ROUTING_USAGE.split('\n').filter((l) => /\bladder (also )?runs\b/i.test(l));
    expect(claims.length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const line of claims) {
      const said = line.slice(line.search(/\bladder (also )?runs\b/i));
      // "(default: all …)" after it is a claim that the ladder runs every policy.
      if (/\(default:? all\b/.test(said) && ladder.size !== POLICY_NAMES.length) problems.push(`says every policy: ${line.trim()}`);
      // A policy it names must be one the ladder runs by default.
      const named = policiesIn(said);
      for (const p of named) if (!ladder.has(p)) problems.push(`names ${p}, which the ladder does not run by default: ${line.trim()}`);
    }
    expect(problems).toEqual([]);
  });

  test('bench/README.md "Policies": a row that says whether the matrix or the ladder runs it by default says so truly', () => {
    const start = README.indexOf('\n### Policies');
    const section = README.slice(start, README.indexOf('\n### ', start + 1));
    const rows = section.split('\n').filter((l) => l.startsWith('| `'));
    expect(rows.length).toBeGreaterThan(30);
    const problems: string[] = [];
    let claims = 0;
    for (const row of rows) {
      const [first, ...rest] = row.slice(2).split(' | ');
      const names = [...first!.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]!);
      const text = rest.join(' | ');
      const check = (claim: RegExp, holds: (p: string) => boolean, what: string) => {
        if (!claim.test(text)) return;
        claims++;
        for (const p of names) if (!holds(p)) problems.push(`${p}: ${what}`);
      };
      check(/the ladder runs it/, (p) => ladder.has(p), 'says the ladder runs it by default; it does not');
      check(/not in the matrix's default list/, (p) => !matrix.has(p), 'says the matrix does not run it by default; it does');
      check(/in neither the matrix's nor the ladder's default list/, (p) => !matrix.has(p) && !ladder.has(p), 'says neither runs it by default');
    }
    expect(claims).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  test('bench/README.md and README.md: the ladder\'s list beyond the matrix\'s names the policy the command adds', () => {
    const extra = [...ladder].filter((p) => !matrix.has(p));
    const bench = /through the matrix's\s+policies \([^)]*\) and `([a-z0-9-]+)`/.exec(README);
    const root = /the load ladder about \d+ minutes over its default policies \(the matrix's and `([a-z0-9-]+)`/
      .exec(fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8'));
    expect([bench?.[1], root?.[1]]).toEqual([extra.join(','), extra.join(',')]);
  });
});
