/**
 * Headers as Envoy's ext_proc filter sees them: an ordered list of (lower-case name, value) pairs that includes the
 * HTTP/2-style pseudo-headers (`:method`, `:path`, `:authority`, `:scheme` on requests, `:status` on responses), and
 * the application of an ext_proc `HeaderMutation` under Envoy's default header-mutation rules.
 *
 * Values are kept as Node keeps them: latin1 strings, one char per byte. Converting with `latin1` both ways keeps any
 * byte sequence (UTF-8 included) exact from client, through the EPP's `raw_value`, to the upstream.
 */
import type { HeaderMap, HeaderValue } from '@kvroute/protocol/envoy';

export type HeaderPair = [name: string, value: string];

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus ones Envoy never forwards; the proxy writes its own framing. */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect',
  'http2-settings',
]);

export class HeaderList {
  constructor(readonly pairs: HeaderPair[] = []) {}

  /** From Node's `rawHeaders` (name, value, name, value...), lower-casing names. */
  static fromRaw(raw: readonly string[]): HeaderList {
    const pairs: HeaderPair[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i].toLowerCase(), raw[i + 1]]);
    return new HeaderList(pairs);
  }

  clone(): HeaderList {
    return new HeaderList(this.pairs.map(([n, v]) => [n, v]));
  }

  has(name: string): boolean {
    return this.pairs.some(([n]) => n === name);
  }

  /** The first value of `name`. */
  get(name: string): string | undefined {
    for (const [n, v] of this.pairs) if (n === name) return v;
    return undefined;
  }

  /** All values of `name` joined with `,` (how HTTP combines repeated fields). */
  getJoined(name: string): string | undefined {
    const values = this.pairs.filter(([n]) => n === name).map(([, v]) => v);
    return values.length === 0 ? undefined : values.join(',');
  }

  /** Replaces every occurrence of `name` by one, kept at the position of the first; appends when absent. */
  set(name: string, value: string): void {
    const i = this.pairs.findIndex(([n]) => n === name);
    if (i < 0) {
      this.pairs.push([name, value]);
      return;
    }
    this.pairs[i] = [name, value];
    for (let j = this.pairs.length - 1; j > i; j--) if (this.pairs[j][0] === name) this.pairs.splice(j, 1);
  }

  add(name: string, value: string): void {
    this.pairs.push([name, value]);
  }

  remove(name: string): boolean {
    const before = this.pairs.length;
    for (let j = this.pairs.length - 1; j >= 0; j--) if (this.pairs[j][0] === name) this.pairs.splice(j, 1);
    return this.pairs.length !== before;
  }

  /** The ext_proc HeaderMap, values in `raw_value` bytes like current Envoy sends them. */
  toHeaderMap(): HeaderMap {
    return { headers: this.pairs.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) };
  }

  /** Flat `[name, value, ...]` array of the non-pseudo headers, for `http.request` / `writeHead`. */
  toRawArray(): string[] {
    const out: string[] = [];
    for (const [n, v] of this.pairs) if (!n.startsWith(':')) out.push(n, v);
    return out;
  }
}

/** HTTP/1.1 trailers from Node's `rawTrailers`, hop-by-hop names removed; null when none are left. */
export function trailerList(raw: readonly string[]): HeaderList | null {
  if (raw.length === 0) return null;
  const list = HeaderList.fromRaw(raw);
  for (const h of HOP_BY_HOP) list.remove(h);
  return list.pairs.length > 0 ? list : null;
}

/** Trailers as Node's `addTrailers` takes them, repeated names joined as HTTP combines them. */
export function trailerRecord(list: HeaderList | null): Record<string, string> | null {
  if (!list) return null;
  const out: Record<string, string> = {};
  for (const [n, v] of list.pairs) if (!n.startsWith(':')) out[n] = out[n] === undefined ? v : `${out[n]}, ${v}`;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Validation (what Node will accept on the wire; Envoy's own check is laxer on values, never stricter).

const TOKEN = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

export function isValidHeaderName(name: string): boolean {
  return TOKEN.test(name);
}

export function isValidHeaderValue(value: string): boolean {
  return !BAD_VALUE.test(value);
}

/** A header value out of an ext_proc HeaderValue: `raw_value` bytes when set (what Envoy reads), else `value`. */
export function headerValueText(h: HeaderValue): string {
  if (h.raw_value && h.raw_value.length > 0) return Buffer.from(h.raw_value).toString('latin1');
  return Buffer.from(h.value ?? '', 'utf8').toString('latin1');
}

// ---------------------------------------------------------------------------------------------------------------------
// Mutations

/** proto-loader object form of the HeaderMutation members the gateway reads. */
export interface DecodedHeaderValueOption {
  header?: HeaderValue | null;
  /** `google.protobuf.BoolValue` (deprecated `append`). */
  append?: { value?: boolean } | null;
  /** Enum name (proto-loader `enums: String`), or a number for a value this proto snapshot does not know. */
  append_action?: string | number;
  keep_empty_value?: boolean;
}

export interface DecodedHeaderMutation {
  set_headers?: DecodedHeaderValueOption[] | null;
  remove_headers?: string[] | null;
}

export type MutationTarget = 'request' | 'response' | 'trailers' | 'local-reply';

/** Raised for a mutation Envoy answers with a 500 local reply (invalid characters, both value and raw_value set). */
export class InvalidMutation extends Error {}

const ROUTING_HEADERS = new Set(['host', ':authority', ':method', ':scheme']);

/**
 * Envoy's default HeaderMutationRules (no `mutation_rules` in our EnvoyFilter): routing headers (`host`,
 * `:authority`, `:method`, `:scheme`) and `x-envoy-*` headers may not be changed; everything else may. A local reply
 * (ImmediateResponse) uses Envoy's permissive checker that allows both. On top, this proxy refuses what it cannot
 * honour over HTTP/1.1: hop-by-hop/framing headers (it writes its own), `content-length` outside requests, removing
 * pseudo-headers, and pseudo-headers that do not belong to the target.
 */
function allowed(target: MutationTarget, name: string, op: 'set' | 'remove', replacingMessage: boolean): boolean {
  if (HOP_BY_HOP.has(name)) return false;
  // Requests: kept so a buffered body mutation can be checked against it (as Envoy does); the proxy then frames the
  // body it actually sends. Responses and local replies: the proxy owns framing.
  if (name === 'content-length') return target === 'request';
  if (name.startsWith(':')) {
    if (op === 'remove') return false;
    if (target === 'request') {
      if (name === ':path') return true;
      return name === ':method' && replacingMessage;
    }
    return target === 'response' && name === ':status';
  }
  if (target === 'local-reply') return true;
  if (ROUTING_HEADERS.has(name)) return name === ':method' && replacingMessage;
  if (name.startsWith('x-envoy-')) return false;
  return true;
}

function appendMode(opt: DecodedHeaderValueOption, exists: boolean): 'append' | 'overwrite' | 'skip' {
  switch (opt.append_action) {
    case 'ADD_IF_ABSENT':
    case 2:
      return exists ? 'skip' : 'append';
    case 'OVERWRITE_IF_EXISTS_OR_ADD':
    case 1:
      return 'overwrite';
    case 'OVERWRITE_IF_EXISTS':
    case 3:
      return exists ? 'overwrite' : 'skip';
    default:
      // APPEND_IF_EXISTS_OR_ADD is the enum's zero value, so it cannot be told apart from "unset": Envoy then falls
      // back to the deprecated `append` BoolValue, which defaults to false, i.e. overwrite.
      return opt.append?.value ? 'append' : 'overwrite';
  }
}

/**
 * Applies `mutation` to `headers` in place: removals first, then sets, as Envoy does. Disallowed changes are skipped
 * and counted; malformed ones throw `InvalidMutation`. Returns the number of skipped changes.
 */
export function applyHeaderMutation(
  headers: HeaderList,
  mutation: DecodedHeaderMutation | null | undefined,
  target: MutationTarget,
  replacingMessage = false,
): number {
  if (!mutation) return 0;
  let rejected = 0;
  for (const raw of mutation.remove_headers ?? []) {
    const name = raw.toLowerCase();
    if (!isValidHeaderName(name)) throw new InvalidMutation('Invalid character in remove_headers mutation.');
    if (!allowed(target, name, 'remove', replacingMessage)) {
      rejected++;
      continue;
    }
    headers.remove(name);
  }
  for (const opt of mutation.set_headers ?? []) {
    const h = opt.header;
    if (!h || !h.key) continue;
    if ((h.value ?? '') !== '' && h.raw_value && h.raw_value.length > 0) {
      throw new InvalidMutation('Only one of value or raw_value in the HeaderValue message should be set.');
    }
    const name = h.key.toLowerCase();
    const value = headerValueText(h);
    if (!isValidHeaderName(name) || !isValidHeaderValue(value)) {
      throw new InvalidMutation('Invalid character in set_headers mutation.');
    }
    if (!allowed(target, name, 'set', replacingMessage)) {
      rejected++;
      continue;
    }
    if (name === ':status' && !/^[2-9]\d\d$/.test(value)) {
      rejected++;
      continue;
    }
    if (name === ':path' && !(value.startsWith('/') && !/[\s]/.test(value))) {
      rejected++;
      continue;
    }
    const mode = appendMode(opt, headers.has(name));
    if (mode === 'skip') continue;
    if (mode === 'append' && !name.startsWith(':')) headers.add(name, value);
    else headers.set(name, value);
  }
  return rejected;
}
