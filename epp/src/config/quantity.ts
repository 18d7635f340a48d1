/**
 * Kubernetes resource quantities as GIE's `flowControl` limits take them (`maxBytes: 1Gi`, `maxRequests: 1k`): a
 * number, or a string of a decimal number with an optional suffix, binary (Ki Mi Gi Ti Pi Ei), decimal SI (n u m k M
 * G T P E) or a decimal exponent (e3, E6). The value is rounded up to an integer, as `Quantity.Value()` does.
 * @see kubernetes/apimachinery: pkg/api/resource/quantity.go (ParseQuantity, Value)
 */

const BINARY: Readonly<Record<string, number>> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Readonly<Record<string, number>> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

/** What a quantity may look like, for error messages. */
export const QUANTITY_FORMAT_HINT = 'a Kubernetes quantity such as 100, "1k", "500M" or "1Gi"';

/**
 * The integer value of `value` (a number or a quantity string), rounded up.
 * @throws Error describing what was wrong; callers add the field path.
 */
export function parseQuantity(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`must be ${QUANTITY_FORMAT_HINT}, got ${value}`);
    const n = Math.ceil(value);
    if (!Number.isSafeInteger(n)) throw new Error(`is out of range, got ${value}`);
    return n;
  }
  if (typeof value !== 'string') throw new Error(`must be ${QUANTITY_FORMAT_HINT}, got ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
  const { exact, nearest, integral } = quantityValue(value);
  const result = integral ? nearest : Math.ceil(exact);
  if (!Number.isSafeInteger(result)) throw new Error(`is out of range, got ${JSON.stringify(value)}`);
  return result;
}

/** The decimal SI suffixes as powers of ten, for `parseWholeQuantity`'s exact arithmetic. */
const DECIMAL_EXPONENT: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * A quantity that must be a whole number, as Kubernetes' `Quantity.AsInt64` requires (`1.5Mi` is, `1m` and `0.5` are
 * not), exactly, as a bigint: llm-d-router's byte sizes (`pkg/epp/server/options.go` Complete) go up to Go's
 * math.MaxInt64, past what a number holds exactly; the caller bounds it.
 */
export function parseWholeQuantity(value: string): bigint {
  const match = QUANTITY.exec(value);
  if (match === null) throw new Error(`must be ${QUANTITY_FORMAT_HINT}, got ${JSON.stringify(value)}`);
  const number = match[1]!;
  const suffix = match[2] ?? '';
  const [whole, fraction = ''] = number.replace(/^[+-]/, '').split('.');
  const digits = `${whole}${fraction}`.replace(/^0+(?=\d)/, '');
  let mantissa = BigInt(digits) * (suffix in BINARY ? BigInt(BINARY[suffix]!) : 1n);
  const exponent = -fraction.length + (suffix in BINARY ? 0 : suffix in DECIMAL_EXPONENT ? DECIMAL_EXPONENT[suffix]! : Number(suffix.slice(1)));
  if (mantissa !== 0n) {
    if (exponent < 0) {
      // A power of ten longer than the mantissa cannot divide it (and 10^exponent stays small).
      const divisor = -exponent <= mantissa.toString().length ? 10n ** BigInt(-exponent) : 0n;
      if (divisor === 0n || mantissa % divisor !== 0n) throw new Error(`must be a whole number of bytes, got ${JSON.stringify(value)}`);
      mantissa /= divisor;
    } else {
      // Past 10^40 the size is out of any caller's range; the bound keeps 10^exponent small.
      mantissa *= 10n ** BigInt(Math.min(exponent, 40));
    }
  }
  return number.startsWith('-') ? -mantissa : mantissa;
}

function quantityValue(value: string): { exact: number; nearest: number; integral: boolean } {
  const match = QUANTITY.exec(value);
  if (match === null) throw new Error(`must be ${QUANTITY_FORMAT_HINT}, got ${JSON.stringify(value)}`);
  const number = Number(match[1]);
  const suffix = match[2] ?? '';
  let scale: number;
  if (suffix in BINARY) scale = BINARY[suffix]!;
  else if (suffix in DECIMAL) scale = DECIMAL[suffix]!;
  else scale = 10 ** Number(suffix.slice(1));
  const exact = number * scale;
  // 0.1k is 100.00000000000001 in binary floating point: what lies within rounding error of an integer is that integer.
  const nearest = Math.round(exact);
  return { exact, nearest, integral: Math.abs(exact - nearest) <= 4 * Number.EPSILON * Math.max(1, Math.abs(exact)) };
}
