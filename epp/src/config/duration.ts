/**
 * Go-style durations ("30m", "1h30m", "1.5s", "200ms"), the format llm-d and GIE use in plugin parameters, so configs
 * written for them keep their meaning here.
 */

/** A Go `time.ParseDuration` string: one or more `<decimal><unit>` terms, units h, m, s, ms, us (µs), ns. */
export type Duration = string;

const MILLISECONDS_PER_UNIT: Readonly<Record<string, number>> = {
  h: 3_600_000,
  m: 60_000,
  s: 1_000,
  ms: 1,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign, accepted by Go
  'μs': 1e-3, // U+03BC Greek mu, accepted by Go
  ns: 1e-6,
};

const TERM = /(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|μs|ns)/y;

export const DURATION_FORMAT_HINT = 'a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns)';

/**
 * Parses a Go-style duration into milliseconds (fractional for sub-millisecond units).
 * Negative durations are rejected because every kvroute parameter is a timeout or an age; "0" is accepted as in Go.
 * @throws Error whose message says what was expected; callers prefix it with the field path.
 */
export function parseDuration(text: string): number {
  if (text === '0') return 0;
  if (text.length === 0) throw new Error(`must be ${DURATION_FORMAT_HINT}, got ""`);
  if (text.startsWith('-')) throw new Error(`must not be negative, got ${JSON.stringify(text)}`);
  let total = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < text.length) {
    const at = TERM.lastIndex;
    const match = TERM.exec(text);
    if (match === null) {
      const rest = text.slice(at);
      const problem = /^[\d.]+$/.test(rest) ? 'a number without a unit' : `unexpected ${JSON.stringify(rest)}`;
      throw new Error(`must be ${DURATION_FORMAT_HINT}, got ${JSON.stringify(text)} (${problem})`);
    }
    total += Number(match[1]) * MILLISECONDS_PER_UNIT[match[2]!]!;
  }
  return total;
}
