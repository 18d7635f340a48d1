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

/**
 * A quantity that must be a whole number, as Kubernetes' `Quantity.AsInt64` requires (`1.5Mi` is, `1m` and `0.5` are
 * not): llm-d-router's byte sizes (`pkg/epp/server/options.go` Complete).
 */
export function parseWholeQuantity(value: string): number {
  if (!quantityValue(value).integral) throw new Error(`must be a whole number of bytes, got ${JSON.stringify(value)}`);
  return parseQuantity(value);
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
