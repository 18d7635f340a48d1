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

/** The decimal SI suffixes as powers of ten, for `quantityAsInt64`'s exact arithmetic. */
const DECIMAL_EXPONENT: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

const MAX_INT64 = 2n ** 63n - 1n;

/**
 * `value` as Kubernetes' `Quantity.AsInt64` gives it after `ParseQuantity`, exactly, as a bigint (llm-d-router's byte
 * sizes, `pkg/epp/server/options.go` Complete, go up to Go's math.MaxInt64, past what a number holds exactly), or
 * undefined where AsInt64 is false. That is wherever ParseQuantity left its int64 fast path for an inf.Dec, or gave an
 * int64Amount with a negative scale (k8s.io/apimachinery v0.35.7 `pkg/api/resource/quantity.go` ParseQuantity,
 * `amount.go` AsInt64): more than 18 digits (`9223372036854775807`); a binary suffix with a fraction (`1.5Mi`) or more
 * digits than it keeps exact (`15 - digits - exponent*3/10 - 1 < 0`: 11 for Ki, 8 Mi, 5 Gi, 2 Ti, none for Pi and Ei);
 * a negative scale, even for a whole number or zero (`1000m`, `1.0`, `0m`); a result past math.MaxInt64 (`10E`).
 * @throws Error when `value` is not a quantity.
 */
export function quantityAsInt64(value: string): bigint | undefined {
  const match = QUANTITY.exec(value);
  if (match === null) throw new Error(`must be ${QUANTITY_FORMAT_HINT}, got ${JSON.stringify(value)}`);
  const number = match[1]!;
  const suffix = match[2] ?? '';
  const [whole, fraction = ''] = number.replace(/^[+-]/, '').split('.');
  // parseQuantityString drops the leading zeros before counting digits.
  const num = whole!.replace(/^0+/, '') || '0';
  const sign = number.startsWith('-') ? -1n : 1n;
  if (suffix in BINARY) {
    const exponent = Math.log2(BINARY[suffix]!);
    if (fraction !== '' || 15 - num.length - Math.trunc((exponent * 3) / 10) - 1 < 0) return undefined;
    return sign * (BigInt(num) << BigInt(exponent));
  }
  if (num.length + fraction.length > 18) return undefined;
  const scale = (suffix in DECIMAL_EXPONENT ? DECIMAL_EXPONENT[suffix]! : Number(suffix.slice(1))) - fraction.length;
  if (scale < 0) return undefined;
  const mantissa = BigInt(num + fraction);
  if (mantissa === 0n) return 0n;
  // A non-zero mantissa times 10^19 or more is past math.MaxInt64; the bound keeps 10^scale small.
  if (scale > 18) return undefined;
  const result = mantissa * 10n ** BigInt(scale);
  return result > MAX_INT64 ? undefined : sign * result;
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
