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

/**
 * The request headers Envoy's connection manager removes before any filter (ConnectionManagerUtility::
 * mutateRequestHeaders, `source/common/http/conn_manager_utility.cc` @ v1.35.0): Connection and Upgrade, Keep-Alive,
 * Proxy-Connection, Transfer-Encoding; and TE, which sanitizeTEHeader puts back as `trailers` when it lists that token
 * (`Downstream`). Envoy keeps Connection and Upgrade on an upgrade request; this proxy has no upgrade path (it answers
 * such a request as a plain one), so it removes them always. Expect and HTTP2-Settings go only in some cases
 * (`Downstream`); Trailer stays.
 */
export const REQUEST_HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te',
]);

/**
 * The response headers Envoy's connection manager removes (ConnectionManagerUtility::mutateResponseHeaders,
 * `conn_manager_utility.cc` @ v1.35.0): Connection, Upgrade, Transfer-Encoding, Keep-Alive, Proxy-Connection. A pod's
 * Trailer and TE go on to the client.
 */
export const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade',
]);

/**
 * Names this HTTP/1.1 proxy never takes from a header mutation nor carries in trailers: the hop-by-hop headers
 * (RFC 9110 §7.6.1) and the ones whose framing Node writes itself.
 */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect',
  'http2-settings',
]);

/**
 * Envoy's O(1) inline request headers, as the HTTP/1 codec's map knows them whatever extensions are built in
 * (`envoy/http/header_map.h` INLINE_REQ_STRING_HEADERS, INLINE_REQ_NUMERIC_HEADERS, INLINE_REQ_RESP_STRING_HEADERS,
 * INLINE_REQ_RESP_NUMERIC_HEADERS), by wire name; `host` is the static lookup table's HostLegacy alias of `:authority`.
 * Extensions may register more (CustomInlineHeaderRegistry); which ones an Istio proxy build registers is not known
 * here, so those stay one entry per line.
 */
const ENVOY_INLINE_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  // INLINE_REQ_RESP_STRING_HEADERS, INLINE_REQ_RESP_NUMERIC_HEADERS
  'connection', 'content-type', 'x-envoy-decorator-operation', 'keep-alive', 'proxy-connection', 'proxy-status',
  'x-request-id', 'transfer-encoding', 'upgrade', 'via', 'content-length', 'x-envoy-attempt-count',
  // INLINE_REQ_STRING_HEADERS (`:method`, `:path`, `:protocol`, `:scheme` have no HTTP/1 header line)
  'x-client-trace-id', 'x-envoy-downstream-service-cluster', 'x-envoy-downstream-service-node', 'x-envoy-external-address',
  'x-envoy-force-trace', 'x-envoy-hedge-on-per-try-timeout', 'x-envoy-internal', 'x-envoy-ip-tags', 'x-envoy-retry-on',
  'x-envoy-retry-grpc-on', 'x-envoy-retriable-status-codes', 'x-envoy-retriable-header-names', 'x-envoy-original-path',
  'x-envoy-original-url', 'x-envoy-upstream-alt-stat-name', 'x-envoy-upstream-rq-timeout-alt-response', 'expect',
  'x-forwarded-client-cert', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'grpc-timeout', 'host', 'te',
  'user-agent',
  // INLINE_REQ_NUMERIC_HEADERS
  'x-envoy-expected-rq-timeout-ms', 'x-envoy-max-retries', 'x-envoy-upstream-rq-timeout-ms',
  'x-envoy-upstream-rq-per-try-timeout-ms', 'x-envoy-upstream-stream-duration-ms',
]);

/**
 * The request header lines as Envoy's HTTP/1 codec builds its map: each line goes through HeaderMapImpl::addViaMove
 * (`source/common/http/http1/codec_impl.cc` ConnectionImpl::completeCurrentHeader), which appends a repeated inline
 * header to the first occurrence (`source/common/http/header_map_impl.cc` insertByKey → appendToHeader: "," between
 * values, none before a first value that is empty, an empty value adds nothing; Cookie's "; " does not apply, Cookie is
 * not among the built-in inline headers). Other names keep one entry per line, in order.
 */
export function envoyRequestHeaderLines(list: HeaderList): HeaderList {
  const out: HeaderPair[] = [];
  const inline = new Map<string, HeaderPair>();
  for (const [name, value] of list.pairs) {
    if (!ENVOY_INLINE_REQUEST_HEADERS.has(name)) {
      out.push([name, value]);
      continue;
    }
    const first = inline.get(name);
    if (first === undefined) {
      const pair: HeaderPair = [name, value];
      inline.set(name, pair);
      out.push(pair);
    } else if (value !== '') {
      first[1] = first[1] === '' ? value : `${first[1]},${value}`;
    }
  }
  return new HeaderList(out);
}

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
// Validation. Envoy's own checks (`source/common/http/header_utility.cc` @ v1.35.0): headerNameIsValid L132-150 (an
// optional leading `:`, then RFC 9110 tchars, upper case allowed), headerValueIsValid L127-130 (oghttp2's value check
// with obs-text: HTAB, SP-`~` and 0x80-0xff).

const TOKEN = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

export function isValidHeaderName(name: string): boolean {
  return TOKEN.test(name);
}

export function isValidHeaderValue(value: string): boolean {
  return !BAD_VALUE.test(value);
}

/**
 * A header value out of an ext_proc mutation's HeaderValue: the `raw_value` bytes, and only those. Envoy has read
 * nothing else since the runtime guard `send_header_raw_value` was removed (#35388, v1.32): a HeaderValue that sets
 * only `value` sets the header to the empty string, and one that sets both uses `raw_value`
 * (`source/extensions/filters/http/ext_proc/mutation_utils.cc` applyHeaderMutations @ v1.35.0 L156, unchanged through
 * main @ 06e40b2de3, Dec 2025).
 */
export function headerValueText(h: HeaderValue): string {
  return h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('latin1') : '';
}

// ---------------------------------------------------------------------------------------------------------------------
// Mutations

/** proto-loader object form of the HeaderMutation members the gateway reads. */
export interface DecodedHeaderValueOption {
  header?: HeaderValue | null;
  /** `google.protobuf.BoolValue` (deprecated `append`): the only append flag Envoy's ext_proc reads. */
  append?: { value?: boolean } | null;
  /** Ignored by Envoy's ext_proc (mutation_utils.cc reads only `append`); kept for the decoder's shape. */
  append_action?: string | number;
  keep_empty_value?: boolean;
}

export interface DecodedHeaderMutation {
  set_headers?: DecodedHeaderValueOption[] | null;
  remove_headers?: string[] | null;
}

export type MutationTarget = 'request' | 'response' | 'trailers' | 'local-reply';

/**
 * Raised for a mutation Envoy answers with a 500 local reply (`handleErrorResponse`): an invalid character, too many
 * set or remove entries, or a result over the header map's limits. The message is Envoy's.
 */
export class InvalidMutation extends Error {}

/**
 * The header map limits Envoy checks a mutation against (MutationUtils::responseHeaderSizeCheck and
 * headerMutationResultCheck, `mutation_utils.cc` @ v1.35.0 L70-107): the request map's are the HCM's
 * `max_request_headers_count` (default 100) and `max_request_headers_kb` (default 60), the upstream response's the
 * cluster's `max_headers_count` and `max_response_headers_kb` (the same defaults; kvroute's manifests and Istio set
 * neither). A local reply's map is built without limits (`createHeaderMap<ResponseHeaderMapImpl>`, whose defaults are
 * UINT32_MAX, `source/common/http/header_map_impl.h` @ v1.35.0 L494-497).
 */
export const MAX_HEADERS_COUNT = 100;
export const MAX_HEADERS_KB = 60;

/** What a mutation was refused, counted two ways. */
export class MutationCounts {
  /** Refused by Envoy's rules: Envoy's `rejected_header_mutations`. */
  envoy = 0;
  /**
   * Allowed by Envoy but refused by this HTTP/1.1 proxy, which cannot carry them: framing headers it writes itself
   * (hop-by-hop ones; `content-length` outside request headers), a pseudo-header the target does not have, a `:path`
   * or `:status` Node cannot write. Envoy would apply these; the gateway counts them only in its own
   * `rejectedHeaderMutations`.
   */
  proxy = 0;
}

/**
 * Envoy's Checker::isAllowed with the default HeaderMutationRules (kvroute's EnvoyFilter sets no `mutation_rules`),
 * `source/extensions/filters/common/mutation_rules/mutation_rules.cc` @ v1.35.0 L69-102: never remove `host` or a
 * `:`-header (HeaderUtility::isModifiableHeader); never touch the "extra routing headers" `host`, `:authority`,
 * `:method`, `:scheme`; never append to a `:`-header; never touch a name that starts with `x-envoy`, the prefix
 * `Http::Headers::get().prefix()` returns (`source/common/http/headers.h` PrefixValue, no dash: `x-envoyfoo` too; Istio
 * sets no bootstrap `header_prefix`). Every target uses these rules, the ImmediateResponse's headers included:
 * `sendImmediateResponse` applies `config().mutationChecker()`, not the permissive ImmediateMutationChecker the file
 * defines (`ext_proc.cc` @ v1.35.0 L1741-1751; the same through main @ 06e40b2de3).
 */
function envoyAllows(op: 'set' | 'append' | 'remove', name: string): boolean {
  if (op === 'remove' && (name.startsWith(':') || name === 'host')) return false;
  if (ROUTING_HEADERS.has(name)) return false;
  if (name.startsWith(':') && op === 'append') return false;
  return !name.startsWith('x-envoy');
}

/** Checker::isValidValue (L104-132) for the names it checks beyond the character set: `:status` is an integer >= 200. */
function envoyValueValid(name: string, value: string): boolean {
  if (name !== ':status') return true;
  const status = simpleAtoiUint32(value);
  return status !== null && status >= 200;
}

/**
 * absl::SimpleAtoi into a uint32_t, as Checker::isValidValue reads `:status`: optional surrounding ASCII whitespace and
 * a `+`, then decimal digits that fit 32 bits; null otherwise.
 */
function simpleAtoiUint32(value: string): number | null {
  const m = /^[ \t\n\v\f\r]*\+?(\d+)[ \t\n\v\f\r]*$/.exec(value);
  if (!m) return null;
  const n = Number(m[1]);
  return n <= 0xffffffff ? n : null;
}

const ROUTING_HEADERS = new Set(['host', ':authority', ':method', ':scheme']);

/** Pseudo-headers each target carries (and this proxy can write back out). */
const PSEUDO: Readonly<Record<MutationTarget, ReadonlySet<string>>> = {
  request: new Set([':authority', ':path', ':method', ':scheme']),
  response: new Set([':status']),
  trailers: new Set(),
  'local-reply': new Set([':status']),
};

/** Whether this HTTP/1.1 proxy can carry a change Envoy's rules allowed (see `MutationCounts.proxy`). */
function proxyCarries(target: MutationTarget, name: string, value: string | null): boolean {
  if (HOP_BY_HOP.has(name)) return value === null;
  // A request's Content-Length stays, to be checked against a mutated BUFFERED body (as Envoy does); the proxy frames
  // the body it sends. Elsewhere it may only go.
  if (name === 'content-length') return target === 'request' || value === null;
  if (!name.startsWith(':')) return name !== '';
  if (!PSEUDO[target].has(name)) return false;
  if (value === null) return true;
  // Envoy's HTTP/1 codec writes the status line from the number (Utility::getResponseStatus, `codec_impl.cc`
  // ResponseEncoderImpl::encodeHeaders @ v1.35.0), so " 201" or "+0201" go out as 201; Node writes only 100-999, and a
  // larger number (which Envoy would write as it is) is skipped.
  if (name === ':status') {
    const status = simpleAtoiUint32(value);
    return status !== null && status <= 999;
  }
  // Node writes the request target as given, refusing only bytes outside 0x21-0xff.
  if (name === ':path') return value !== '' && !/[^\x21-\xff]/.test(value);
  return true;
}

function sizeOf(headers: HeaderList): number {
  let bytes = 0;
  for (const [n, v] of headers.pairs) bytes += n.length + v.length;
  return bytes;
}

export interface MutationOptions {
  /** The message's status is CONTINUE_AND_REPLACE: `:method` may change (mutation_utils.cc L169-173). */
  readonly replacingMessage?: boolean;
  /**
   * The direction's body mode removes Content-Length (STREAMED, FULL_DUPLEX_STREAMED, ...): a Content-Length in
   * `set_headers` is skipped, uncounted (`remove_content_length`, mutation_utils.cc L150-154).
   */
  readonly removeContentLength?: boolean;
  /** Where the counts go (kept when the mutation throws); a fresh one by default. */
  readonly counts?: MutationCounts;
}

/**
 * Applies `mutation` to `headers` in place as Envoy's MutationUtils::applyHeaderMutations does (`mutation_utils.cc`
 * @ v1.35.0 L109-197): first the entry counts against the map's limit, then removals, then sets in order, then the
 * result against the map's limits. A change the rules refuse is skipped and counted; an invalid character or a limit
 * throws `InvalidMutation` (counted first, and what was applied before it stays, as in Envoy). `append` (the
 * BoolValue) adds a value when the header exists, else sets it; `append_action` is not read. Returns the counts.
 */
export function applyHeaderMutation(
  headers: HeaderList,
  mutation: DecodedHeaderMutation | null | undefined,
  target: MutationTarget,
  options: MutationOptions = {},
): MutationCounts {
  const counts = options.counts ?? new MutationCounts();
  if (!mutation) return counts;
  const removes = mutation.remove_headers ?? [];
  const sets = mutation.set_headers ?? [];
  const limited = target !== 'local-reply';
  if (limited && (removes.length > MAX_HEADERS_COUNT || sets.length > MAX_HEADERS_COUNT)) {
    counts.envoy++;
    throw new InvalidMutation(`Header mutation remove header count ${removes.length} or set header count ${sets.length} exceed the HCM header countlimit ${MAX_HEADERS_COUNT}`);
  }
  for (const raw of removes) {
    const name = raw.toLowerCase();
    // headerNameIsValid accepts the empty name (nothing to check), and removing it removes nothing.
    if (name !== '' && !isValidHeaderName(name)) {
      counts.envoy++;
      throw new InvalidMutation('Invalid character in remove_headers mutation.');
    }
    if (!envoyAllows('remove', name)) {
      counts.envoy++;
      continue;
    }
    if (!proxyCarries(target, name, null)) {
      counts.proxy++;
      continue;
    }
    headers.remove(name);
  }
  for (const opt of sets) {
    const h = opt.header;
    if (!h) continue;
    const name = (h.key ?? '').toLowerCase();
    if (options.removeContentLength && name === 'content-length') continue;
    const value = headerValueText(h);
    if ((name !== '' && !isValidHeaderName(name)) || !isValidHeaderValue(value)) {
      counts.envoy++;
      throw new InvalidMutation('Invalid character in set_headers mutation.');
    }
    const append = opt.append?.value === true;
    const op = append && headers.has(name) ? 'append' : 'set';
    const allowed = (options.replacingMessage === true && name === ':method')
      || (envoyAllows(op, name) && envoyValueValid(name, value));
    if (!allowed) {
      counts.envoy++;
      continue;
    }
    if (!proxyCarries(target, name, value)) {
      counts.proxy++;
      continue;
    }
    if (append && !name.startsWith(':')) headers.add(name, value);
    else headers.set(name, name === ':status' ? String(simpleAtoiUint32(value)) : value);
  }
  if (limited && (headers.pairs.length > MAX_HEADERS_COUNT || sizeOf(headers) > MAX_HEADERS_KB * 1024)) {
    counts.envoy++;
    throw new InvalidMutation(`Header mutation causes end result header count ${headers.pairs.length} or header size ${sizeOf(headers)} bytes, exceeding the count limit ${MAX_HEADERS_COUNT} or the size limit ${MAX_HEADERS_KB} kilobytes`);
  }
  return counts;
}
