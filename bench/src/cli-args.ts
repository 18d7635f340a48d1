/**
 * Flag parsing for the bench commands, on `node:util` `parseArgs` in strict mode: an unknown flag, a stray argument,
 * a value given to a switch or a flag given twice is refused, and so is a value that fails its flag's check. Every
 * refusal is a `UsageError` whose message starts with the flag it is about; `main.ts` prints it and exits with status 2.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Checks a flag's text and turns it into its value, or throws a `UsageError` naming `flag`. `raw` is undefined when
 * the flag was given without a value, so the message can say what the flag expects.
 */
export type ValueParser<T> = (flag: string, raw: string | undefined) => T;

/** A flag that takes no value. */
export const SWITCH: 'switch' = 'switch';

/** Flags by name without the leading dashes. `--help` and `-h` are always accepted. */
export type FlagTable = Readonly<Record<string, ValueParser<unknown> | typeof SWITCH>>;

/** The flags that were given: a switch as `true`, a value flag as its parser's result. */
export type FlagValues<T extends FlagTable> = { -readonly [K in keyof T]?: T[K] extends ValueParser<infer V> ? V : true };

/**
 * Parses `argv` (without node and the script). Undefined means `--help` or `-h`, which wins over any other flag.
 * Run through npm (`npm start --pods=2`, without the `--` that hands flags on), a flag never arrives: npm keeps it as
 * its own config and exports it as `npm_config_<name>` (npm 7+), so `env` is read for this table's flags and each one
 * npm kept is named to `warn`.
 */
export function parseFlags<T extends FlagTable>(argv: readonly string[], table: T, env: NodeJS.ProcessEnv = process.env, warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): FlagValues<T> | undefined {
  // Every flag collects all its occurrences, so a repeated one can be refused instead of the last silently winning.
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple: true }> = { help: { type: 'boolean', short: 'h', multiple: true } };
  for (const [name, spec] of Object.entries(table)) options[name] = { type: spec === SWITCH ? 'boolean' : 'string', multiple: true };
  let given: Record<string, (string | boolean)[] | undefined>;
  try {
    given = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as typeof given;
  } catch (e) {
    // A lenient pass finds a --help the strict one never reached (`--typo --help` should still show the help).
    const tokens = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true }).tokens;
    if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return undefined;
    throw usageError(e, argv, table, env);
  }
  if (given.help) return undefined;
  for (const name of npmKeptFlags(table, env)) {
    const example = table[name] === SWITCH ? `--${name}` : `--${name} <value>`;
    if (given[name] === undefined) warn(`warning: npm kept --${name} as its own setting, so this command did not get it; put the command's flags after "--": npm ${npmScript(env)} -- ${example}`);
  }
  const values: Record<string, unknown> = {};
  for (const [name, occurrences] of Object.entries(given)) {
    const spec = table[name];
    const flag = `--${name}`;
    if (!occurrences || spec === undefined) continue;
    if (occurrences.length > 1) throw new UsageError(`${flag}: given more than once`);
    values[name] = spec === SWITCH ? true : spec(flag, occurrences[0] as string);
  }
  return values as FlagValues<T>;
}

/**
 * Whether one of the root package's scripts that run these commands (`npm start`, `npm run demo`, `npm run
 * bench:routing`…) started this process: npm names the script's command line in `npm_lifecycle_script`. Not a process
 * some other script started (the tests, under `npm test`, inherit npm's variables too).
 */
function ranByNpmScript(env: NodeJS.ProcessEnv): boolean {
  return env.npm_lifecycle_event !== undefined && (env.npm_lifecycle_script ?? '').includes('bench/dist/main.js');
}

/**
 * This table's flags that npm took as its own config (see `parseFlags`); none when npm's script did not run this.
 * npm reads `--no-x` as x set to false and exports `npm_config_x` (empty). Not seen: `--quiet`, which npm reads as its
 * own `--loglevel warn`, and `--only`, an npm setting whose unknown values npm drops: both need the `--`.
 */
function npmKeptFlags(table: FlagTable, env: NodeJS.ProcessEnv): string[] {
  if (!ranByNpmScript(env)) return [];
  const exported = (name: string) => env[`npm_config_${name.replace(/-/g, '_')}`] !== undefined;
  return Object.keys(table).filter((name) => exported(name) || (name.startsWith('no-') && exported(name.slice(3))));
}

/** How the user ran this through npm: `start`, or `run <script>`. */
function npmScript(env: NodeJS.ProcessEnv): string {
  const script = env.npm_lifecycle_event ?? 'run <script>';
  return ['start', 'test', 'stop', 'restart'].includes(script) ? script : `run ${script}`;
}

/** parseArgs' own errors, rephrased to start with the flag (the codes are its API; the message only quotes the flag). */
function usageError(e: unknown, argv: readonly string[], table: FlagTable, env: NodeJS.ProcessEnv): unknown {
  const code = (e as { code?: string }).code;
  const quoted = /'([^']*)'/.exec((e as Error).message)?.[1] ?? '';
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown flag ${quoted}; see --help`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      // `npm start --pods 2` hands on only "2": npm took --pods for itself.
      if (ranByNpmScript(env)) {
        return new UsageError(`unexpected argument ${JSON.stringify(quoted)}; through npm, put the command's flags after "--" (npm ${npmScript(env)} -- --flag value), or npm keeps them for itself`);
      }
      return new UsageError(`unexpected argument ${JSON.stringify(quoted)}; flags start with -- (see --help)`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag = /--[^\s,]+/.exec(quoted)?.[0] ?? quoted; // quoted as "--port <value>" or "-h, --help"
      const spec = table[flag.replace(/^-+/, '')];
      if (spec === undefined || spec === SWITCH) return new UsageError(`${flag}: takes no value`);
      try {
        spec(flag, undefined);
      } catch (missing) {
        // Strict parseArgs never takes a separate word that starts with a dash as a value: say how to pass "-1".
        const next = argv.find((a, i) => argv[i - 1] === flag && a.startsWith('-') && !a.startsWith('--'));
        if (next === undefined || !(missing instanceof UsageError)) return missing;
        return new UsageError(`${missing.message} (if ${JSON.stringify(next)} is the value, write ${flag}=${next})`);
      }
      return new UsageError(`${flag}: missing value`);
    }
    default:
      return e;
  }
}

const shown = (raw: string | undefined): string => (raw === undefined ? 'nothing' : JSON.stringify(raw));

/** An integer in [min, max]; without a max the message says ">= min". */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): ValueParser<number> {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
  return (flag, raw) => {
    const v = raw !== undefined && /^[+-]?\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(v >= min && v <= max)) throw new UsageError(`${flag}: must be an integer ${range}, got ${shown(raw)}`);
    return v;
  };
}

/** A finite number in [min, max], or (min, max] with `aboveMin`. */
export function decimal(min: number, max = Infinity, { aboveMin = false } = {}): ValueParser<number> {
  const low = aboveMin ? `above ${min}` : max === Infinity ? `>= ${min}` : `from ${min}`;
  const high = max === Infinity ? '' : aboveMin ? ` and at most ${max}` : ` to ${max}`;
  return (flag, raw) => {
    const v = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
    if (!Number.isFinite(v) || (aboveMin ? v <= min : v < min) || v > max) {
      throw new UsageError(`${flag}: must be a number ${low}${high}, got ${shown(raw)}`);
    }
    return v;
  };
}

/** One of `known`. */
export function oneOf<T extends string>(known: readonly T[]): ValueParser<T> {
  return (flag, raw) => {
    if (raw === undefined || !(known as readonly string[]).includes(raw)) {
      throw new UsageError(`${flag}: must be one of ${known.join(', ')}, got ${shown(raw)}`);
    }
    return raw as T;
  };
}

/** A comma-separated, non-empty subset of `known` without repeats, in the order given. */
export function listOf<T extends string>(known: readonly T[]): ValueParser<T[]> {
  return (flag, raw) => {
    if (raw === undefined) throw new UsageError(`${flag}: expects a comma-separated list of ${known.join(', ')}`);
    const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new UsageError(`${flag}: expects at least one of ${known.join(', ')}`);
    for (const item of items) {
      if (!(known as readonly string[]).includes(item)) throw new UsageError(`${flag}: unknown value "${item}"; known: ${known.join(', ')}`);
    }
    if (new Set(items).size !== items.length) throw new UsageError(`${flag}: lists a value twice`);
    return items as T[];
  };
}

/**
 * A directory, resolved against the working directory: one that exists, or one the command can make later because
 * its nearest existing ancestor is a directory. Anything else would fail only at the command's mkdir, mid-command.
 * The walk looks at entries themselves (lstat), so a symlink is an existing entry, taken only when it leads to a
 * directory: a dangling one is no place mkdir can make (fs.existsSync, which follows it, would call it absent).
 */
export const directory: ValueParser<string> = (flag, raw) => {
  if (raw === undefined || raw === '') throw new UsageError(`${flag}: expects a directory`);
  const dir = path.resolve(raw);
  let existing = dir;
  let entry = entryAt(existing);
  while (entry === undefined) {
    existing = path.dirname(existing);
    entry = entryAt(existing);
  }
  if (entry.isSymbolicLink() ? !leadsToDirectory(existing) : !entry.isDirectory()) {
    const reason = entry.isSymbolicLink() ? 'is a symlink that leads to no directory' : existing === dir ? 'exists and is not a directory' : 'is not a directory';
    throw new UsageError(existing === dir ? `${flag}: ${dir} ${reason}` : `${flag}: cannot make ${dir}: ${existing} ${reason}`);
  }
  return dir;
};

/** The entry at `p` itself, a symlink not followed; undefined on any error, as fs.existsSync treats one as absence. */
function entryAt(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/** Whether the symlink at `p` ends at a directory: a dangling link, or a loop, does not. */
function leadsToDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
