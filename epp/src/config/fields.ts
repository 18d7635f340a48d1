import { ConfigError, describeValue } from './errors';
import { DURATION_FORMAT_HINT, parseDuration, type Duration } from './duration';

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads the fields of one map strictly: every accessor checks type and range and names the field on error, and
 * `finish()` rejects fields nobody asked for, with the list of allowed ones. This is how the loader matches
 * upstream's strict decoding.
 */
export class FieldReader {
  private readonly allowed: string[] = [];

  private constructor(
    private readonly fields: Readonly<Record<string, unknown>>,
    readonly path: string,
    /**
     * False for an absent map read as empty: what upstream's StrictDecoder hands a factory as nil. A null one (YAML's
     * `parameters:` with nothing after it) is given: Go decodes JSON null into a json.RawMessage as the bytes `null`,
     * which make a decoder (encoding/json, golang/go#40495).
     */
    readonly given = true,
  ) {}

  /** `null`/absent become an empty map because YAML writes `parameters:` with nothing after it as null. */
  static ofOptionalMap(value: unknown, path: string): FieldReader {
    if (value === undefined || value === null) return new FieldReader({}, path, value !== undefined);
    return FieldReader.ofMap(value, path);
  }

  static ofMap(value: unknown, path: string): FieldReader {
    if (!isPlainObject(value)) throw new ConfigError(path, `must be a map, got ${describeValue(value)}`);
    return new FieldReader(value, path);
  }

  fieldPath(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  /** The raw value, registering the key as allowed. */
  raw(key: string): unknown {
    if (!this.allowed.includes(key)) this.allowed.push(key);
    return this.fields[key];
  }

  has(key: string): boolean {
    return this.fields[key] !== undefined && this.fields[key] !== null;
  }

  requiredString(key: string): string {
    const value = this.raw(key);
    if (typeof value !== 'string' || value.length === 0) {
      throw new ConfigError(this.fieldPath(key), `must be a non-empty string, got ${describeValue(value)}`);
    }
    return value;
  }

  optionalString(key: string): string | undefined {
    const value = this.raw(key);
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || value.length === 0) {
      throw new ConfigError(this.fieldPath(key), `must be a non-empty string, got ${describeValue(value)}`);
    }
    return value;
  }

  /**
   * A string as Go's decoder reads one into a plain `string` field: absent or null is "" (upstream's "unset, use the
   * default"), any string is kept as given, anything else is refused as not `what`.
   */
  goString(key: string, what = 'a string'): string {
    const value = this.raw(key);
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') throw new ConfigError(this.fieldPath(key), `must be ${what}, got ${describeValue(value)}`);
    return value;
  }

  constant<T extends string>(key: string, expected: T): T {
    const value = this.raw(key);
    if (value !== expected) {
      throw new ConfigError(this.fieldPath(key), `must be ${JSON.stringify(expected)}, got ${describeValue(value)}`);
    }
    return expected;
  }

  integer(key: string, defaultValue: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.raw(key);
    if (value === undefined || value === null) return defaultValue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      const range = max !== Number.MAX_SAFE_INTEGER ? ` between ${min} and ${max}` : min > Number.MIN_SAFE_INTEGER ? ` >= ${min}` : '';
      throw new ConfigError(this.fieldPath(key), `must be an integer${range}, got ${describeValue(value)}`);
    }
    return value;
  }

  number(key: string, defaultValue: number, min: number, max = Number.POSITIVE_INFINITY): number {
    const value = this.raw(key);
    if (value === undefined || value === null) return defaultValue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      const range = max !== Number.POSITIVE_INFINITY ? ` between ${min} and ${max}` : min !== Number.NEGATIVE_INFINITY ? ` >= ${min}` : '';
      throw new ConfigError(this.fieldPath(key), `must be a ${range === '' ? 'finite ' : ''}number${range}, got ${describeValue(value)}`);
    }
    return value;
  }

  /** One of `allowed` (strings), else `defaultValue`; the error lists every allowed value. */
  oneOf<T extends string>(key: string, allowed: readonly T[], defaultValue: T): T {
    return this.optionalOneOf(key, allowed) ?? defaultValue;
  }

  /** One of `allowed` (strings), or undefined when absent (so a config that never set it renders unchanged). */
  optionalOneOf<T extends string>(key: string, allowed: readonly T[]): T | undefined {
    const value = this.raw(key);
    if (value === undefined || value === null) return undefined;
    if (!(allowed as readonly unknown[]).includes(value)) {
      const quoted = allowed.map((a) => JSON.stringify(a));
      const list = quoted.length <= 2 ? quoted.join(' or ') : `one of ${quoted.join(', ')}`;
      throw new ConfigError(this.fieldPath(key), `must be ${list}, got ${describeValue(value)}`);
    }
    return value as T;
  }

  boolean(key: string, defaultValue: boolean): boolean {
    const value = this.raw(key);
    if (value === undefined || value === null) return defaultValue;
    if (typeof value !== 'boolean') {
      throw new ConfigError(this.fieldPath(key), `must be true or false, got ${describeValue(value)}`);
    }
    return value;
  }

  /** A positive Go-style duration string; the string is kept (not converted) so the config renders back unchanged. */
  duration(key: string, defaultValue: Duration): Duration {
    const value = this.raw(key);
    if (value === undefined || value === null) return defaultValue;
    if (typeof value !== 'string') {
      throw new ConfigError(this.fieldPath(key), `must be ${DURATION_FORMAT_HINT}, got ${describeValue(value)}`);
    }
    let milliseconds: number;
    try {
      milliseconds = parseDuration(value);
    } catch (error) {
      throw new ConfigError(this.fieldPath(key), (error as Error).message);
    }
    if (milliseconds <= 0) throw new ConfigError(this.fieldPath(key), `must be longer than 0, got ${JSON.stringify(value)}`);
    return value;
  }

  /** A list of strings; with `allowEmpty`, "" is a value like any other (a Go `[]string` field takes it). */
  stringList(key: string, defaultValue: readonly string[], options: { minLength?: number; allowEmpty?: boolean } = {}): string[] {
    const value = this.raw(key);
    if (value === undefined || value === null) return [...defaultValue];
    const path = this.fieldPath(key);
    if (!Array.isArray(value)) throw new ConfigError(path, `must be a list of strings, got ${describeValue(value)}`);
    value.forEach((item, index) => {
      if (typeof item !== 'string' || (item.length === 0 && options.allowEmpty !== true)) {
        throw new ConfigError(`${path}[${index}]`, `must be a ${options.allowEmpty === true ? '' : 'non-empty '}string, got ${describeValue(item)}`);
      }
    });
    const minLength = options.minLength ?? 0;
    if (value.length < minLength) throw new ConfigError(path, `must list at least ${minLength} value(s)`);
    return [...(value as string[])];
  }

  /** Rejects every field that no accessor read. */
  finish(): void {
    for (const key of Object.keys(this.fields)) {
      if (this.allowed.includes(key)) continue;
      const allowed = this.allowed.length === 0 ? 'this plugin takes no parameters' : `allowed: ${this.allowed.join(', ')}`;
      throw new ConfigError(this.fieldPath(key), `unknown field; ${allowed}`);
    }
  }
}
