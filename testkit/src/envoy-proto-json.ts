/**
 * A strict proto3-JSON checker for Envoy config. The cdk8s tests use it to prove that the Envoy config embedded in our
 * EnvoyFilters would be accepted by Envoy's own JSON parser and its protoc-gen-validate (PGV) checks, without running
 * Envoy. It checks; it never converts.
 *
 * What it enforces:
 * - proto3 JSON mapping: field names as the proto name (snake_case) or the lowerCamel JSON name, unknown fields
 *   rejected, scalars by type (64-bit ints as number or decimal string, bytes as base64), enums by name or defined
 *   number, repeated as arrays, maps as objects, `null` as "unset" (as the spec allows), at most one member per oneof.
 * - well-known types: Any (via `@type`, resolved in the given root, then checked recursively), Duration, Timestamp,
 *   FieldMask, Struct/Value/ListValue, the wrappers, Empty.
 * - the PGV rules that appear in the configs we write: required messages (`message/any/duration/timestamp.required`),
 *   required oneofs (`(validate.required)`), `repeated.min_items/max_items`, `string.min_len/max_len/min_bytes/
 *   max_bytes` (honouring `ignore_empty`), and `duration` bounds (`lt/lte/gt/gte`). protobufjs exposes these as
 *   flattened `field.options` keys (`(validate.rules).message.required`) and, when parsed from .proto, as nested
 *   `parsedOptions`; only the flattened form survives `toJSON`, so both are read.
 *
 * Envoy's semantic rules (things no schema states) are reported separately by `envoyRuleViolations`.
 */
import * as protobuf from 'protobufjs';
import { lookupTypeByUrl } from '@kvroute/protocol/envoy';

export interface ProtoJsonOptions {
  /**
   * The value is a partial message merged into an existing one (an Istio EnvoyFilter `MERGE` patch). Presence rules
   * (required, min_items, min_len on absent strings, required oneofs) are then skipped on the merged message and on
   * its singular sub-messages, because the target supplies what the patch omits. They still apply to repeated
   * elements, map values and Any payloads, which a merge appends or replaces whole.
   */
  readonly mergePatch?: boolean;
}

type Obj = Record<string, unknown>;

const WRAPPERS: Readonly<Record<string, string>> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
};

/** Types whose JSON form is not an object of fields; inside an Any they sit under `value`. */
const SPECIAL_JSON = new Set([
  '.google.protobuf.Any', '.google.protobuf.Duration', '.google.protobuf.Timestamp', '.google.protobuf.FieldMask',
  '.google.protobuf.Struct', '.google.protobuf.Value', '.google.protobuf.ListValue', ...Object.keys(WRAPPERS),
]);

const INT_RANGES: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

const MAX_DURATION_SECONDS = 315_576_000_000n;
const FLOAT_MAX = 3.4028234663852886e38;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

function member(path: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

export function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_v, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

// ---------------------------------------------------------------------------------------------------------------------
// PGV options

/** The `(validate.rules)` of a field as one nested object, from whichever form protobufjs kept. */
export function validateRules(field: protobuf.Field): Obj {
  const out: Obj = {};
  const set = (path: string[], value: unknown): void => {
    let cur = out;
    for (const p of path.slice(0, -1)) {
      if (!isObject(cur[p])) cur[p] = {};
      cur = cur[p] as Obj;
    }
    cur[path[path.length - 1]] = value;
  };
  const merge = (target: Obj, src: Obj): void => {
    for (const [k, v] of Object.entries(src)) {
      if (isObject(v)) {
        if (!isObject(target[k])) target[k] = {};
        merge(target[k] as Obj, v);
      } else {
        target[k] = v;
      }
    }
  };
  for (const [k, v] of Object.entries(field.options ?? {})) {
    if (k.startsWith('(validate.rules).')) set(k.slice('(validate.rules).'.length).split('.'), v);
  }
  for (const entry of (field.parsedOptions ?? []) as Obj[]) {
    const rules = entry['(validate.rules)'];
    if (isObject(rules)) merge(out, rules);
  }
  return out;
}

function oneofRequired(oneof: protobuf.OneOf): boolean {
  if (oneof.options?.['(validate.required)'] === true) return true;
  return ((oneof as unknown as { parsedOptions?: Obj[] }).parsedOptions ?? [])
    .some((o) => o['(validate.required)'] === true);
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------------

interface FieldIndex {
  readonly byKey: ReadonlyMap<string, protobuf.Field>;
}

const indexCache = new WeakMap<protobuf.Type, FieldIndex>();

function fieldIndex(type: protobuf.Type): FieldIndex {
  let idx = indexCache.get(type);
  if (!idx) {
    const byKey = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      byKey.set(f.name, f);
      byKey.set(lowerCamel(f.name), f);
      const jsonName = f.options?.json_name;
      if (typeof jsonName === 'string') byKey.set(jsonName, f);
    }
    idx = { byKey };
    indexCache.set(type, idx);
  }
  return idx;
}

/** Reads a field of a JSON message by either of its names. */
function get(obj: Obj, protoName: string): unknown {
  if (obj[protoName] !== undefined) return obj[protoName];
  return obj[lowerCamel(protoName)];
}

type SemanticRule = (value: Obj, path: string, root: protobuf.Root, report: (at: string, msg: string) => void) => void;

class Walker {
  readonly errors: string[] = [];
  readonly violations: string[] = [];

  constructor(private readonly root: protobuf.Root, private readonly rules: ReadonlyMap<string, SemanticRule>) {}

  private error(path: string, msg: string): void {
    this.errors.push(`${path}: ${msg}`);
  }

  message(type: protobuf.Type, value: unknown, path: string, merge: boolean): void {
    const name = type.fullName;
    if (name === '.google.protobuf.Any') return this.any(value, path);
    if (name === '.google.protobuf.Duration') return void this.duration(value, path);
    if (name === '.google.protobuf.Timestamp') return this.timestamp(value, path);
    if (name === '.google.protobuf.FieldMask') return this.fieldMask(value, path);
    if (name === '.google.protobuf.Value') return;
    if (name === '.google.protobuf.Struct') {
      if (!isObject(value)) this.error(path, `expected an object (google.protobuf.Struct), got ${describe(value)}`);
      return;
    }
    if (name === '.google.protobuf.ListValue') {
      if (!Array.isArray(value)) this.error(path, `expected an array (google.protobuf.ListValue), got ${describe(value)}`);
      return;
    }
    const wrapped = WRAPPERS[name];
    if (wrapped) return this.scalar(wrapped, value, path);
    if (!isObject(value)) {
      this.error(path, `expected an object (${name.slice(1)}), got ${describe(value)}`);
      return;
    }
    if (name === '.google.protobuf.Empty') {
      for (const k of Object.keys(value)) this.error(member(path, k), 'google.protobuf.Empty has no fields');
      return;
    }

    const { byKey } = fieldIndex(type);
    const present = new Map<protobuf.Field, string>();
    for (const [key, v] of Object.entries(value)) {
      const f = byKey.get(key);
      const at = member(path, key);
      if (!f) {
        this.error(at, `unknown field "${key}" in ${name.slice(1)}${this.suggest(type, key)}`);
        continue;
      }
      const earlier = present.get(f);
      if (earlier !== undefined) {
        this.error(at, `field ${f.name} is set twice (as "${earlier}" and "${key}")`);
        continue;
      }
      f.resolve();
      // proto3 JSON treats null as "not set", except where null is itself a value (google.protobuf.Value).
      if (v === null && !(f.resolvedType?.fullName === '.google.protobuf.Value' && !f.repeated && !f.map)) continue;
      present.set(f, key);
      this.field(f, v, at, merge);
    }

    for (const oneof of type.oneofsArray) {
      const set = oneof.fieldsArray.filter((f) => present.has(f));
      if (set.length > 1) {
        this.error(path, `oneof ${oneof.name} allows one member, but ${set.map((f) => present.get(f)).join(' and ')} are set`);
      } else if (set.length === 0 && !merge && oneofRequired(oneof)) {
        this.error(path, `oneof ${oneof.name} is required: set one of ${oneof.fieldsArray.map((f) => f.name).join(', ')}`);
      }
    }

    for (const f of type.fieldsArray) this.fieldRules(f, present.has(f) ? get(value, f.name) : undefined, present.get(f), path, merge);

    const rule = this.rules.get(name);
    if (rule) rule(value, path, this.root, (at, msg) => this.violations.push(`${at}: ${msg}`));
  }

  private suggest(type: protobuf.Type, key: string): string {
    let best: string | undefined;
    let bestDist = Infinity;
    for (const f of type.fieldsArray) {
      const d = Math.min(editDistance(key, f.name), editDistance(key, lowerCamel(f.name)));
      if (d < bestDist) {
        best = f.name;
        bestDist = d;
      }
    }
    return best !== undefined && bestDist <= Math.max(2, Math.floor(key.length / 4)) ? ` (did you mean "${best}"?)` : '';
  }

  private field(f: protobuf.Field, v: unknown, path: string, merge: boolean): void {
    if (f instanceof protobuf.MapField) {
      if (!isObject(v)) return this.error(path, `expected an object (map<${f.keyType}, ${f.type}>), got ${describe(v)}`);
      for (const [k, item] of Object.entries(v)) {
        const at = member(path, k);
        this.mapKey(f.keyType, k, at);
        if (item === null && f.resolvedType?.fullName !== '.google.protobuf.Value') this.error(at, 'map values cannot be null');
        else this.single(f, item, at, false);
      }
      return;
    }
    if (f.repeated) {
      if (!Array.isArray(v)) return this.error(path, `expected an array (repeated ${f.type}), got ${describe(v)}`);
      v.forEach((item, i) => {
        const at = `${path}[${i}]`;
        if (item === null && f.resolvedType?.fullName !== '.google.protobuf.Value') this.error(at, 'repeated elements cannot be null');
        else this.single(f, item, at, false);
      });
      return;
    }
    this.single(f, v, path, merge);
  }

  private single(f: protobuf.Field, v: unknown, path: string, merge: boolean): void {
    const t = f.resolvedType;
    if (t instanceof protobuf.Enum) return this.enumValue(t, v, path);
    if (t instanceof protobuf.Type) return this.message(t, v, path, merge);
    this.scalar(f.type, v, path);
  }

  private fieldRules(f: protobuf.Field, v: unknown, key: string | undefined, path: string, merge: boolean): void {
    const rules = validateRules(f);
    if (Object.keys(rules).length === 0) return;
    const at = member(path, key ?? f.name);
    const present = key !== undefined;
    const kind = Object.keys(rules)[0];
    const r = (rules[kind] ?? {}) as Obj;

    if (['message', 'any', 'duration', 'timestamp'].includes(kind) && r.required === true && !present && !merge && !f.partOf) {
      this.error(at, `${f.name} is required`);
    }
    if (kind === 'repeated' && f.repeated) {
      const n = Array.isArray(v) ? v.length : 0;
      const min = num(r.min_items);
      const max = num(r.max_items);
      if (min !== undefined && n < min && !merge) this.error(at, `${f.name} needs at least ${min} item(s), has ${n}`);
      if (max !== undefined && n > max) this.error(at, `${f.name} allows at most ${max} item(s), has ${n}`);
    }
    if (kind === 'string' && !f.repeated) {
      // PGV checks a proto3 string even when unset (it reads as ""), except inside an unset oneof.
      if (f.partOf && !present) return;
      if (merge && !present) return;
      if (typeof v !== 'string' && present) return; // already reported as a type error
      const s = typeof v === 'string' ? v : '';
      if (r.ignore_empty === true && s === '') return;
      const chars = [...s].length;
      const bytes = Buffer.byteLength(s, 'utf8');
      const minLen = num(r.min_len);
      const maxLen = num(r.max_len);
      const minBytes = num(r.min_bytes);
      const maxBytes = num(r.max_bytes);
      if (minLen !== undefined && chars < minLen) this.error(at, `${f.name} must be at least ${minLen} character(s) long`);
      if (maxLen !== undefined && chars > maxLen) this.error(at, `${f.name} must be at most ${maxLen} character(s) long`);
      if (minBytes !== undefined && bytes < minBytes) this.error(at, `${f.name} must be at least ${minBytes} byte(s) long`);
      if (maxBytes !== undefined && bytes > maxBytes) this.error(at, `${f.name} must be at most ${maxBytes} byte(s) long`);
    }
    if (kind === 'duration' && present && typeof v === 'string') {
      const nanos = parseDuration(v);
      if (nanos === undefined) return;
      const bound = (b: unknown): bigint | undefined => {
        if (!isObject(b)) return undefined;
        return BigInt(num(b.seconds) ?? 0) * 1_000_000_000n + BigInt(num(b.nanos) ?? 0);
      };
      const lt = bound(r.lt);
      const lte = bound(r.lte);
      const gt = bound(r.gt);
      const gte = bound(r.gte);
      const show = (n: bigint): string => formatDuration(n);
      if (lt !== undefined && !(nanos < lt)) this.error(at, `${f.name} must be less than ${show(lt)}`);
      if (lte !== undefined && !(nanos <= lte)) this.error(at, `${f.name} must be at most ${show(lte)}`);
      if (gt !== undefined && !(nanos > gt)) this.error(at, `${f.name} must be greater than ${show(gt)}`);
      if (gte !== undefined && !(nanos >= gte)) this.error(at, `${f.name} must be at least ${show(gte)}`);
    }
  }

  private mapKey(keyType: string, k: string, path: string): void {
    if (keyType === 'string') return;
    if (keyType === 'bool') {
      if (k !== 'true' && k !== 'false') this.error(path, `map key must be "true" or "false"`);
      return;
    }
    this.scalar(keyType, k, path);
  }

  private enumValue(e: protobuf.Enum, v: unknown, path: string): void {
    if (typeof v === 'string' && Object.prototype.hasOwnProperty.call(e.values, v)) return;
    if (typeof v === 'number' && Number.isInteger(v) && e.valuesById[v] !== undefined) return;
    const names = Object.keys(e.values);
    const shown = names.length > 12 ? names.slice(0, 12).join(', ') + ', …' : names.join(', ');
    this.error(path, `invalid value ${describe(v)} for enum ${e.fullName.slice(1)} (expected one of ${shown})`);
  }

  private scalar(type: string, v: unknown, path: string): void {
    const range = INT_RANGES[type];
    if (range) {
      let n: bigint | undefined;
      if (typeof v === 'number') {
        if (!Number.isInteger(v)) return this.error(path, `expected an integer (${type}), got ${describe(v)}`);
        if (!Number.isSafeInteger(v)) return this.error(path, `${describe(v)} loses precision as a JSON number; quote it (${type})`);
        n = BigInt(v);
      } else if (typeof v === 'string' && /^-?\d+$/.test(v)) {
        n = BigInt(v);
      } else {
        return this.error(path, `expected an integer (${type}) as a number or decimal string, got ${describe(v)}`);
      }
      if (n < range[0] || n > range[1]) this.error(path, `${String(v)} is out of range for ${type}`);
      return;
    }
    switch (type) {
      case 'double':
      case 'float': {
        if (typeof v === 'string') {
          if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return;
          if (v.trim() === '' || !Number.isFinite(Number(v))) return this.error(path, `expected a number (${type}), got ${describe(v)}`);
          v = Number(v);
        }
        if (typeof v !== 'number') return this.error(path, `expected a number (${type}), got ${describe(v)}`);
        if (type === 'float' && Math.abs(v) > FLOAT_MAX) this.error(path, `${v} is out of range for float`);
        return;
      }
      case 'bool':
        if (typeof v !== 'boolean') this.error(path, `expected true or false, got ${describe(v)}`);
        return;
      case 'string':
        if (typeof v !== 'string') this.error(path, `expected a string, got ${describe(v)}`);
        return;
      case 'bytes':
        if (typeof v !== 'string' || !isBase64(v)) this.error(path, `expected base64-encoded bytes, got ${describe(v)}`);
        return;
      default:
        this.error(path, `unsupported scalar type ${type}`);
    }
  }

  private any(value: unknown, path: string): void {
    if (!isObject(value)) return this.error(path, `expected an object (google.protobuf.Any), got ${describe(value)}`);
    const url = value['@type'];
    const at = member(path, '@type');
    if (typeof url !== 'string' || url === '') return this.error(at, 'google.protobuf.Any needs an "@type" string');
    const type = lookupTypeByUrl(this.root, url);
    if (!type) return this.error(at, `cannot resolve type URL ${JSON.stringify(url)} to a known message`);
    if (SPECIAL_JSON.has(type.fullName)) {
      for (const k of Object.keys(value)) {
        if (k !== '@type' && k !== 'value') this.error(member(path, k), `unknown field "${k}" (an Any holding ${type.fullName.slice(1)} has only "value")`);
      }
      if (!('value' in value)) return this.error(path, `an Any holding ${type.fullName.slice(1)} needs "value"`);
      this.message(type, value.value, member(path, 'value'), false);
      return;
    }
    const rest: Obj = {};
    for (const [k, v] of Object.entries(value)) if (k !== '@type') rest[k] = v;
    this.message(type, rest, path, false);
  }

  private duration(value: unknown, path: string): bigint | undefined {
    const nanos = typeof value === 'string' ? parseDuration(value) : undefined;
    if (nanos === undefined) {
      this.error(path, `expected a duration like "1.5s" (seconds with up to 9 fractional digits and an "s" suffix), got ${describe(value)}`);
    } else if (nanos > MAX_DURATION_SECONDS * 1_000_000_000n || nanos < -MAX_DURATION_SECONDS * 1_000_000_000n) {
      this.error(path, `duration ${String(value)} is out of range (±315576000000s)`);
    }
    return nanos;
  }

  private timestamp(value: unknown, path: string): void {
    const m = typeof value === 'string'
      ? /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/.exec(value)
      : null;
    if (!m) return this.error(path, `expected an RFC 3339 timestamp like "1972-01-01T10:00:20.021Z", got ${describe(value)}`);
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
    const days = new Date(Date.UTC(2000, month, 0)).getUTCDate();
    const leap = month === 2 && day === 29 && (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0));
    const offsetOk = m[8] === 'Z' || (Number(m[9]) <= 23 && Number(m[10]) <= 59);
    if (year < 1 || month < 1 || month > 12 || day < 1 || (day > days && !leap) || (month === 2 && day === 29 && !leap)
      || hour > 23 || minute > 59 || second > 59 || !offsetOk) {
      this.error(path, `${describe(value)} is not a valid timestamp`);
    }
  }

  private fieldMask(value: unknown, path: string): void {
    if (typeof value !== 'string') return this.error(path, `expected a field mask string like "a.b,cD", got ${describe(value)}`);
    if (value === '') return;
    for (const p of value.split(',')) {
      if (!/^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*$/.test(p)) this.error(path, `field mask path ${JSON.stringify(p)} is not lowerCamel dotted`);
    }
  }
}

function isBase64(s: string): boolean {
  const body = s.replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/_-]*$/.test(body)) return false;
  if (body.length % 4 === 1) return false;
  if (s.length !== body.length && s.length % 4 !== 0) return false;
  return !(/[+/]/.test(body) && /[-_]/.test(body));
}

function parseDuration(s: string): bigint | undefined {
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(s);
  if (!m) return undefined;
  const n = BigInt(m[2]) * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0') || '0');
  return m[1] ? -n : n;
}

function formatDuration(nanos: bigint): string {
  const sign = nanos < 0n ? '-' : '';
  const abs = nanos < 0n ? -nanos : nanos;
  const frac = (abs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${sign}${abs / 1_000_000_000n}${frac ? '.' + frac : ''}s`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Envoy semantic rules

const HEADER_SEND_MODE = 'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.HeaderSendMode';
const BODY_SEND_MODE = 'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode';

function enumName(root: protobuf.Root, enumName: string, v: unknown, dflt: string): string {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return root.lookupEnum(enumName).valuesById[v] ?? String(v);
  return String(v);
}

/**
 * Envoy rejects an ext_proc filter whose body mode is FULL_DUPLEX_STREAMED unless the trailer mode of the same
 * direction is SEND: in that mode the processor must see the end of the body, and trailers are where it ends when
 * there are any (processing_mode.proto comments).
 */
const duplexNeedsTrailers: SemanticRule = (value, path, root, report) => {
  const mode = get(value, 'processing_mode');
  if (!isObject(mode)) return;
  const at = member(path, 'processing_mode');
  for (const dir of ['request', 'response'] as const) {
    const body = enumName(root, BODY_SEND_MODE, get(mode, `${dir}_body_mode`), 'NONE');
    const trailer = enumName(root, HEADER_SEND_MODE, get(mode, `${dir}_trailer_mode`), 'DEFAULT');
    if (body === 'FULL_DUPLEX_STREAMED' && trailer !== 'SEND') {
      report(at, `${dir}_body_mode FULL_DUPLEX_STREAMED requires ${dir}_trailer_mode SEND (got ${trailer})`);
    }
  }
};

const ENVOY_RULES: ReadonlyMap<string, SemanticRule> = new Map([
  ['.envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor', duplexNeedsTrailers],
  // ExtProcPerRoute carries its processing_mode in `overrides`.
  ['.envoy.extensions.filters.http.ext_proc.v3.ExtProcOverrides', duplexNeedsTrailers],
]);

function run(root: protobuf.Root, fullTypeName: string, value: unknown, options: ProtoJsonOptions, rules: ReadonlyMap<string, SemanticRule>): Walker {
  const walker = new Walker(root, rules);
  const found = root.lookup(fullTypeName.startsWith('.') ? fullTypeName : '.' + fullTypeName);
  if (!(found instanceof protobuf.Type)) {
    walker.errors.push(`$: unknown message type ${fullTypeName}`);
    return walker;
  }
  walker.message(found, value, '$', options.mergePatch === true);
  return walker;
}

/**
 * Checks `value` as the proto3 JSON form of `fullTypeName` (a message in `root`). Returns one human-readable error per
 * problem, each starting with a JSON path (`$.processing_mode.request_body_mode: ...`); an empty array means valid.
 */
export function checkProtoJson(root: protobuf.Root, fullTypeName: string, value: unknown, options: ProtoJsonOptions = {}): string[] {
  return run(root, fullTypeName, value, options, new Map()).errors;
}

/**
 * Envoy's semantic rules that the schema cannot express, checked wherever the governed messages occur inside `value`
 * (including inside Any payloads). Currently: FULL_DUPLEX_STREAMED body mode needs trailer mode SEND on the same side,
 * for ExternalProcessor.processing_mode and ExtProcPerRoute.overrides.processing_mode.
 */
export function envoyRuleViolations(root: protobuf.Root, fullTypeName: string, value: unknown, options: ProtoJsonOptions = {}): string[] {
  return run(root, fullTypeName, value, options, ENVOY_RULES).violations;
}

/** Both of the above: schema, PGV and Envoy's semantic rules. */
export function checkEnvoyConfig(root: protobuf.Root, fullTypeName: string, value: unknown, options: ProtoJsonOptions = {}): string[] {
  const w = run(root, fullTypeName, value, options, ENVOY_RULES);
  return [...w.errors, ...w.violations];
}
