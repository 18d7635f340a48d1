/**
 * Go's integer parsing as the EPP's upstream flags do it (pflag's IntVar: `strconv.ParseInt(s, 0, 64)`; its IntSlice:
 * `strconv.Atoi`), so a value llm-d-router's EPP takes is taken here, and one it refuses as a parse error is refused
 * as one (go/src/strconv/atoi.go: ParseUint, ParseInt, underscoreOK).
 */
import { goUnderscoreOK as underscoreOK } from '@kvroute/protocol/prometheus';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * `strconv.ParseInt(raw, 0, 64)`: an optional sign, then decimal, `0x` hex, `0o` or a leading `0` octal, or `0b`
 * binary, with underscores only between digits (or after a base prefix); undefined where Go returns an error (syntax
 * or out of int64's range).
 */
export function parseGoInt(raw: string): number | undefined {
  const sign = raw.startsWith('-') || raw.startsWith('+') ? raw[0] : '';
  const s = raw.slice(sign.length);
  if (s.length === 0) return undefined;
  let base = 10;
  let digits = s;
  if (s[0] === '0') {
    const prefix = s[1]?.toLowerCase();
    if (s.length >= 3 && (prefix === 'b' || prefix === 'o' || prefix === 'x')) {
      base = prefix === 'b' ? 2 : prefix === 'o' ? 8 : 16;
      digits = s.slice(2);
    } else {
      base = 8;
      digits = s.slice(1);
    }
  }
  if (digits.includes('_') && !underscoreOK(s)) return undefined;
  const clean = digits.replace(/_/g, '');
  const valid = { 2: /^[01]*$/, 8: /^[0-7]*$/, 10: /^[0-9]+$/, 16: /^[0-9a-f]*$/i }[base]!;
  if (!valid.test(clean)) return undefined;
  return inInt64(sign, BigInt(clean === '' ? '0' : `${{ 2: '0b', 8: '0o', 10: '', 16: '0x' }[base]}${clean}`));
}

/** `strconv.Atoi(raw)`: an optional sign and decimal digits only; undefined where Go returns an error. */
export function parseGoAtoi(raw: string): number | undefined {
  const m = /^([+-]?)(\d+)$/.exec(raw);
  return m ? inInt64(m[1]!, BigInt(m[2]!)) : undefined;
}

function inInt64(sign: string, magnitude: bigint): number | undefined {
  const value = sign === '-' ? -magnitude : magnitude;
  return value < INT64_MIN || value > INT64_MAX ? undefined : Number(value);
}
