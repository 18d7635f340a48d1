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
