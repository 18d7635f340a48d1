import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { decimal, directory, integer, listOf, oneOf, parseFlags, SWITCH, UsageError } from '../src/cli-args';

const FLAGS = {
  pods: integer(2, 16),
  seed: integer(0),
  scale: decimal(0, Infinity, { aboveMin: true }),
  ratio: decimal(0, 1),
  policy: oneOf(['a', 'b']),
  list: listOf(['x', 'y', 'z']),
  out: directory,
  quiet: SWITCH,
} as const;

const refusal = (argv: string[]): UsageError => {
  try {
    parseFlags(argv, FLAGS);
  } catch (e) {
    if (e instanceof UsageError) return e;
    throw e;
  }
  throw new Error(`no error for ${JSON.stringify(argv)}`);
};

describe('parseFlags', () => {
  test('both value forms, switches, and only the flags given', () => {
    expect(parseFlags(['--pods', '3', '--scale=0.5', '--quiet', '--list', 'z, x', '--out=o', '--policy', 'b'], FLAGS))
      .toEqual({ pods: 3, scale: 0.5, quiet: true, list: ['z', 'x'], out: path.resolve('o'), policy: 'b' });
    expect(parseFlags([], FLAGS)).toEqual({});
    expect(parseFlags(['--seed=0', '--ratio', '1'], FLAGS)).toEqual({ seed: 0, ratio: 1 });
  });

  test('--help and -h win over everything, bad flags included', () => {
    for (const argv of [['--help'], ['-h'], ['--pods', '3', '-h'], ['--typo', '--help'], ['--pods', '1', '--help'], ['--pods', '2', '--pods', '3', '-h']]) {
      expect(parseFlags(argv, FLAGS)).toBeUndefined();
    }
    // A value that happens to read "-h" is a value, not a request for help.
    expect(parseFlags(['--out=-h'], FLAGS)).toEqual({ out: path.resolve('-h') });
  });

  test.each<[string[], string]>([
    [['--nope'], 'unknown flag --nope; see --help'],
    [['-x'], 'unknown flag -x; see --help'],
    [['stray'], 'unexpected argument "stray"; flags start with -- (see --help)'],
    [['--', 'after'], 'unexpected argument "after"; flags start with -- (see --help)'],
    [['--quiet=yes'], '--quiet: takes no value'],
    [['--quiet', '--quiet'], '--quiet: given more than once'],
    [['--pods', '3', '--pods=4'], '--pods: given more than once'],
    [['--pods'], '--pods: must be an integer from 2 to 16, got nothing'],
    [['--pods', '--quiet'], '--pods: must be an integer from 2 to 16, got nothing'],
    [['--pods', '-3'], '--pods: must be an integer from 2 to 16, got nothing (if "-3" is the value, write --pods=-3)'],
    [['--pods=-3'], '--pods: must be an integer from 2 to 16, got "-3"'],
    [['--pods', '2.5'], '--pods: must be an integer from 2 to 16, got "2.5"'],
    [['--seed', 'x'], '--seed: must be an integer >= 0, got "x"'],
    [['--scale', '0'], '--scale: must be a number above 0, got "0"'],
    [['--scale', ' '], '--scale: must be a number above 0, got " "'],
    [['--ratio', '1.5'], '--ratio: must be a number from 0 to 1, got "1.5"'],
    [['--policy', 'c'], '--policy: must be one of a, b, got "c"'],
    [['--list'], '--list: expects a comma-separated list of x, y, z'],
    [['--list', ','], '--list: expects at least one of x, y, z'],
    [['--list', 'x,w'], '--list: unknown value "w"; known: x, y, z'],
    [['--list', 'x,x'], '--list: lists a value twice'],
    [['--out='], '--out: expects a directory'],
  ])('%j is refused: %s', (argv, message) => {
    expect(refusal(argv).message).toBe(message);
  });
});

describe('a directory flag (--out, --log-dir): refused before anything starts when it cannot be a directory', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-cli-dir-'));
  const file = path.join(root, 'a-file');
  fs.writeFileSync(file, '');
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  test('one that exists, or one whose nearest existing ancestor is a directory, is taken (made later by the command)', () => {
    expect(parseFlags(['--out', root], FLAGS)).toEqual({ out: root });
    expect(parseFlags(['--out', path.join(root, 'new', 'deeper')], FLAGS)).toEqual({ out: path.join(root, 'new', 'deeper') });
  });

  test('an existing file is refused, naming the flag (mkdir would fail with EEXIST mid-command)', () => {
    expect(refusal(['--out', file]).message).toBe(`--out: ${file} exists and is not a directory`);
  });

  test('a path under a file cannot be made: refused, naming the flag and the file', () => {
    expect(refusal(['--out', path.join(file, 'sub')]).message).toBe(`--out: cannot make ${path.join(file, 'sub')}: ${file} is not a directory`);
  });

  // fs.existsSync follows a symlink, so a dangling one looked absent and the check took its parent, while the command's
  // fs.mkdirSync(out, { recursive: true }) then fails on it (ENOENT or EEXIST, by Node version) mid-command.
  test('a dangling symlink, or a path under one, is refused, naming the flag and the link', () => {
    const link = path.join(root, 'dangling');
    fs.symlinkSync(path.join(root, 'missing-target'), link);
    expect(() => fs.mkdirSync(link, { recursive: true })).toThrow(/ENOENT|EEXIST/);
    expect(refusal(['--out', link]).message).toBe(`--out: ${link} is a symlink that leads to no directory`);
    expect(refusal(['--out', path.join(link, 'sub')]).message).toBe(`--out: cannot make ${path.join(link, 'sub')}: ${link} is a symlink that leads to no directory`);
    const toFile = path.join(root, 'to-file');
    fs.symlinkSync(file, toFile);
    expect(refusal(['--out', toFile]).message).toBe(`--out: ${toFile} is a symlink that leads to no directory`);
  });

  test('a symlink to a directory is taken, as is a path under it', () => {
    const link = path.join(root, 'to-root');
    fs.symlinkSync(root, link);
    expect(parseFlags(['--out', link], FLAGS)).toEqual({ out: link });
    expect(parseFlags(['--out', path.join(link, 'new')], FLAGS)).toEqual({ out: path.join(link, 'new') });
  });
});

describe('flags npm kept for itself (`npm start --pods=2`, without "--")', () => {
  const npmStart = { npm_lifecycle_event: 'start', npm_lifecycle_script: 'npm run build && node bench/dist/main.js stack' };

  test('a flag npm exported as npm_config_<name> is named in a warning; one that arrived after "--" is not', () => {
    const warnings: string[] = [];
    expect(parseFlags([], FLAGS, { ...npmStart, npm_config_pods: '2' }, (l) => warnings.push(l))).toEqual({});
    expect(warnings).toEqual(['warning: npm kept --pods as its own setting, so this command did not get it; put the command\'s flags after "--": npm start -- --pods <value>']);
    warnings.length = 0;
    expect(parseFlags(['--pods', '3'], FLAGS, { ...npmStart, npm_config_pods: '2' }, (l) => warnings.push(l))).toEqual({ pods: 3 });
    expect(warnings).toEqual([]);
  });

  test('--no-x reaches npm as x (npm_config_x, empty); a switch is suggested without a value', () => {
    const table = { 'no-ladder': SWITCH, quick: SWITCH, pods: integer(2, 16) } as const;
    const warnings: string[] = [];
    expect(parseFlags([], table, { ...npmStart, npm_config_ladder: '', npm_config_quick: 'true' }, (l) => warnings.push(l))).toEqual({});
    expect(warnings).toEqual([
      'warning: npm kept --no-ladder as its own setting, so this command did not get it; put the command\'s flags after "--": npm start -- --no-ladder',
      'warning: npm kept --quick as its own setting, so this command did not get it; put the command\'s flags after "--": npm start -- --quick',
    ]);
  });

  test('the value npm handed on alone is refused with the "--" hint; a script other than start is named with run', () => {
    const env = { npm_lifecycle_event: 'bench:routing', npm_lifecycle_script: 'npm run build && node bench/dist/main.js routing', npm_config_pods: '' };
    expect(() => parseFlags(['2'], FLAGS, env, () => undefined))
      .toThrow('unexpected argument "2"; through npm, put the command\'s flags after "--" (npm run bench:routing -- --flag value), or npm keeps them for itself');
  });

  test('a process another script started (a test under npm test): no warning, the plain message', () => {
    const warnings: string[] = [];
    const env = { npm_lifecycle_event: 'test', npm_lifecycle_script: 'npm run typecheck && jest', npm_config_pods: '2' };
    expect(parseFlags([], FLAGS, env, (l) => warnings.push(l))).toEqual({});
    expect(warnings).toEqual([]);
    expect(() => parseFlags(['2'], FLAGS, env)).toThrow('unexpected argument "2"; flags start with -- (see --help)');
  });
});
