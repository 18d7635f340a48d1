/**
 * vLLM's KV-cache events on the wire: the msgpack payload of each ZMQ message, in both encodings vLLM has used.
 *
 * - Positional (vLLM 0.10 through mid-2026): msgspec structs with `array_like=True, tag=True`, so a batch is
 *   `[ts, [event…], data_parallel_rank]` and each event an array whose first element is its class name:
 *   `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium?, lora_name?,
 *   extra_keys?, group_idx?, …]`, `["BlockRemoved", block_hashes, medium?, group_idx?]`, `["AllBlocksCleared"]`; a `?`
 *   field is on the wire from the release that added it on, always, as `nil` when unset: msgspec ignores
 *   `omit_defaults` for `array_like` structs (checked with msgspec 0.22.0: `EventBatch(ts=1.0, events=[])` encodes as
 *   `[1.0, [], nil]`), so a release's arrays always have all its fields.
 *   @see vllm-project/vllm: vllm/distributed/kv_events.py @ v0.10.0 (EventBatch, BlockStored, BlockRemoved);
 *   `medium` from v0.10.2 (#19737), `lora_name` (#27577), `extra_keys` (#33304), `group_idx` (#37688).
 * - Tagged maps (vLLM #42892, merged June 2026: v0.23.0 was still positional, v0.26.0 sends maps): each event a map
 *   with its class name under `"type"`, fields in declaration order, those equal to their default (`None`) omitted
 *   (`omit_defaults`); `lora_id`, `medium` and `lora_name` have no default and are always written. The batch stays a
 *   positional array in released versions (a v0.26.0 capture: volcano-sh/kthena#1535); vLLM main after them
 *   (kv_events.py @ 0181ea31) dropped `array_like` from `EventBatch` too, so a map `{ts, events,
 *   data_parallel_rank}` is accepted as well.
 *
 * Decoding is tolerant where vLLM moved on (trailing fields, unknown event types, unknown map keys are skipped and
 * counted) and strict where a payload is simply broken (a malformed frame throws `KvEventDecodeError`).
 */
import { decode, encode } from '@msgpack/msgpack';

/**
 * A block hash as the engine published it, normalized to a string key: the decimal integer (vLLM publishes uint64
 * hashes, and signed ones for the `builtin` algorithm), or `x:<hex>` for a raw digest (vLLM >= 0.10.2 with
 * `VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0`).
 */
export type EngineBlockHash = string;

export interface BlockStored {
  readonly type: 'BlockStored';
  readonly blockHashes: readonly EngineBlockHash[];
  /** The hash of the block before the first one here; null for a chain that starts at the first block. */
  readonly parentBlockHash: EngineBlockHash | null;
  /** The tokens of every stored block, `blockHashes.length × blockSize` of them (empty in some CPU-offload events). */
  readonly tokenIds: readonly number[];
  readonly blockSize: number;
  readonly loraId: number | null;
  /** `"GPU"`, `"CPU"` or a storage tier; absent before vLLM 0.10.2 (= GPU). */
  readonly medium?: string | null;
  readonly loraName?: string | null;
  /**
   * Per block: the extra keys vLLM hashed it with (LoRA name, multimodal `(identifier, offset)` tuples, cache_salt on
   * the first block, prompt-embedding digests), or null for a block without any (vLLM >= #33304).
   */
  readonly extraKeys?: readonly (readonly unknown[] | null)[] | null;
  /** The KV-cache group (#37688); 0 for a model with one attention type. */
  readonly groupIdx?: number | null;
  /** The group's cache spec (#40984): `"full_attention"`, `"sliding_window"`, `"mamba"`, … */
  readonly kvCacheSpecKind?: string | null;
  /** The sliding window of a `sliding_window` group (#40984). */
  readonly kvCacheSpecSlidingWindow?: number | null;
}

export interface BlockRemoved {
  readonly type: 'BlockRemoved';
  readonly blockHashes: readonly EngineBlockHash[];
  readonly medium?: string | null;
  readonly groupIdx?: number | null;
}

export interface AllBlocksCleared {
  readonly type: 'AllBlocksCleared';
}

export type KvCacheEvent = BlockStored | BlockRemoved | AllBlocksCleared;

export interface KvEventBatch {
  /** Wall-clock seconds when the scheduler step that produced the events ended (`time.time()`). */
  readonly ts: number;
  readonly events: readonly KvCacheEvent[];
  readonly dataParallelRank: number | null;
}

/** What a tolerant decode skipped: counted, never fatal. */
export interface DecodeSkips {
  /** Events of a type this decoder does not know (a newer vLLM). */
  unknownEvents: number;
  /** Fields beyond those known (positional) or map keys not known, summed over events. */
  unknownFields: number;
}

export class KvEventDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvEventDecodeError';
  }
}

/** Positional field names after the tag, oldest first; later vLLM versions append. */
const STORED_FIELDS = [
  'block_hashes', 'parent_block_hash', 'token_ids', 'block_size', 'lora_id', 'medium', 'lora_name', 'extra_keys', 'group_idx',
  'kv_cache_spec_kind', 'kv_cache_spec_sliding_window',
] as const;
const REMOVED_FIELDS = ['block_hashes', 'medium', 'group_idx'] as const;

const MAX_UINT64 = (1n << 64n) - 1n;

function hashKey(value: unknown, where: string): EngineBlockHash {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (value instanceof Uint8Array) return `x:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  throw new KvEventDecodeError(`${where}: a block hash must be an integer or bytes, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (value === null) return 'nil';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return 'bytes';
  return typeof value;
}

function hashList(value: unknown, where: string): EngineBlockHash[] {
  if (!Array.isArray(value)) throw new KvEventDecodeError(`${where}: must be an array of block hashes, got ${describe(value)}`);
  return value.map((h, i) => hashKey(h, `${where}[${i}]`));
}

function intOrNull(value: unknown, where: string): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(value);
  throw new KvEventDecodeError(`${where}: must be an integer or nil, got ${describe(value)}`);
}

function stringOrNull(value: unknown, where: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  throw new KvEventDecodeError(`${where}: must be a string or nil, got ${describe(value)}`);
}

function tokenList(value: unknown, where: string): number[] {
  if (!Array.isArray(value)) throw new KvEventDecodeError(`${where}: must be an array of token ids, got ${describe(value)}`);
  return value.map((t, i) => {
    const n = intOrNull(t, `${where}[${i}]`);
    if (n === null || n < 0) throw new KvEventDecodeError(`${where}[${i}]: must be a token id`);
    return n;
  });
}

/** Field accessor over either encoding, so both share one decoder per event type. */
type Fields = (name: string) => unknown;

function storedFrom(get: Fields, where: string): BlockStored {
  const blockHashes = hashList(get('block_hashes'), `${where}.block_hashes`);
  const parent = get('parent_block_hash');
  const blockSize = intOrNull(get('block_size'), `${where}.block_size`);
  if (blockSize === null || blockSize < 0) throw new KvEventDecodeError(`${where}.block_size: must be a non-negative integer`);
  const extra = get('extra_keys');
  return {
    type: 'BlockStored',
    blockHashes,
    parentBlockHash: parent === null || parent === undefined ? null : hashKey(parent, `${where}.parent_block_hash`),
    tokenIds: tokenList(get('token_ids') ?? [], `${where}.token_ids`),
    blockSize,
    loraId: intOrNull(get('lora_id'), `${where}.lora_id`),
    ...(get('medium') !== undefined ? { medium: stringOrNull(get('medium'), `${where}.medium`) } : {}),
    ...(get('lora_name') !== undefined ? { loraName: stringOrNull(get('lora_name'), `${where}.lora_name`) } : {}),
    ...(extra !== undefined ? { extraKeys: Array.isArray(extra) ? extra.map((e) => (Array.isArray(e) ? e : null)) : null } : {}),
    ...(get('group_idx') !== undefined ? { groupIdx: intOrNull(get('group_idx'), `${where}.group_idx`) } : {}),
    ...(get('kv_cache_spec_kind') !== undefined ? { kvCacheSpecKind: stringOrNull(get('kv_cache_spec_kind'), `${where}.kv_cache_spec_kind`) } : {}),
    ...(get('kv_cache_spec_sliding_window') !== undefined
      ? { kvCacheSpecSlidingWindow: intOrNull(get('kv_cache_spec_sliding_window'), `${where}.kv_cache_spec_sliding_window`) }
      : {}),
  };
}

function removedFrom(get: Fields, where: string): BlockRemoved {
  return {
    type: 'BlockRemoved',
    blockHashes: hashList(get('block_hashes'), `${where}.block_hashes`),
    ...(get('medium') !== undefined ? { medium: stringOrNull(get('medium'), `${where}.medium`) } : {}),
    ...(get('group_idx') !== undefined ? { groupIdx: intOrNull(get('group_idx'), `${where}.group_idx`) } : {}),
  };
}

function decodeEvent(raw: unknown, where: string, skips: DecodeSkips): KvCacheEvent | undefined {
  if (Array.isArray(raw)) {
    const [tag, ...values] = raw;
    if (typeof tag !== 'string') throw new KvEventDecodeError(`${where}: a positional event starts with its type name, got ${describe(tag)}`);
    const names: readonly string[] = tag === 'BlockStored' ? STORED_FIELDS : tag === 'BlockRemoved' ? REMOVED_FIELDS : [];
    if (tag !== 'BlockStored' && tag !== 'BlockRemoved' && tag !== 'AllBlocksCleared') {
      skips.unknownEvents++;
      return undefined;
    }
    if (values.length > names.length) skips.unknownFields += values.length - names.length;
    const get: Fields = (name) => values[names.indexOf(name)];
    return tag === 'BlockStored' ? storedFrom(get, where) : tag === 'BlockRemoved' ? removedFrom(get, where) : { type: 'AllBlocksCleared' };
  }
  if (raw !== null && typeof raw === 'object' && !(raw instanceof Uint8Array)) {
    const map = raw as Record<string, unknown>;
    const tag = map.type;
    if (typeof tag !== 'string') throw new KvEventDecodeError(`${where}: a map event needs a "type", got ${describe(tag)}`);
    const known: readonly string[] = tag === 'BlockStored' ? STORED_FIELDS : tag === 'BlockRemoved' ? REMOVED_FIELDS : tag === 'AllBlocksCleared' ? [] : [];
    if (tag !== 'BlockStored' && tag !== 'BlockRemoved' && tag !== 'AllBlocksCleared') {
      skips.unknownEvents++;
      return undefined;
    }
    for (const key of Object.keys(map)) {
      if (key !== 'type' && !known.includes(key)) skips.unknownFields++;
    }
    const get: Fields = (name) => map[name];
    return tag === 'BlockStored' ? storedFrom(get, where) : tag === 'BlockRemoved' ? removedFrom(get, where) : { type: 'AllBlocksCleared' };
  }
  throw new KvEventDecodeError(`${where}: an event must be an array or a map, got ${describe(raw)}`);
}

/**
 * Decodes one payload. @throws KvEventDecodeError for bytes that are not msgpack or not an event batch.
 */
export function decodeEventBatch(payload: Uint8Array, skips: DecodeSkips = { unknownEvents: 0, unknownFields: 0 }): KvEventBatch {
  let raw: unknown;
  try {
    raw = decode(payload, { useBigInt64: true });
  } catch (e) {
    throw new KvEventDecodeError(`payload is not msgpack: ${(e as Error).message}`);
  }
  let ts: unknown;
  let events: unknown;
  let rank: unknown;
  if (Array.isArray(raw)) {
    [ts, events, rank] = raw;
  } else if (raw !== null && typeof raw === 'object' && !(raw instanceof Uint8Array)) {
    const map = raw as Record<string, unknown>;
    ({ ts, events, data_parallel_rank: rank } = map);
  } else {
    throw new KvEventDecodeError(`an event batch must be an array or a map, got ${describe(raw)}`);
  }
  if (typeof ts !== 'number') throw new KvEventDecodeError(`batch ts: must be a number, got ${describe(ts)}`);
  if (!Array.isArray(events)) throw new KvEventDecodeError(`batch events: must be an array, got ${describe(events)}`);
  const decoded: KvCacheEvent[] = [];
  events.forEach((e, i) => {
    const event = decodeEvent(e, `events[${i}]`, skips);
    if (event) decoded.push(event);
  });
  return { ts, events: decoded, dataParallelRank: intOrNull(rank, 'batch data_parallel_rank') };
}

/**
 * How to encode, as a given vLLM release writes its events:
 * - `positional-v0.10.0`: 0.10.0/0.10.1, `BlockStored` with five fields after the tag, `BlockRemoved` with one;
 * - `positional-v0.10.2`: 0.10.2, `medium` appended to both (#19737);
 * - `map`: a release after #42892 (v0.26.0): every event a tagged map carrying the fields vLLM main declares
 *   (vllm/distributed/kv_events.py @ 0181ea31) and its block pool sets, defaults omitted, inside a positional batch.
 */
export type KvEventEncoding = 'positional-v0.10.0' | 'positional-v0.10.2' | 'map';

/**
 * A hash back in the form msgspec writes it: an int in the smallest msgpack format (a JS number while exact, a bigint
 * beyond 2^53), or bin for a raw digest.
 */
function hashValue(hash: EngineBlockHash): number | bigint | Uint8Array {
  if (hash.startsWith('x:')) return Buffer.from(hash.slice(2), 'hex');
  const n = BigInt(hash);
  if (n > MAX_UINT64 || n < -(1n << 63n)) throw new RangeError(`block hash ${hash} does not fit 64 bits`);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n;
}

function storedValues(e: BlockStored, withMedium: boolean): unknown[] {
  const values: unknown[] = [
    e.blockHashes.map(hashValue),
    e.parentBlockHash === null ? null : hashValue(e.parentBlockHash),
    [...e.tokenIds],
    e.blockSize,
    e.loraId,
  ];
  if (withMedium) values.push(e.medium ?? 'GPU');
  return values;
}

/** A per-block extra key back as msgspec writes it: tuples as arrays, digests as bin, the rest as is. */
function extraKeyValue(key: unknown): unknown {
  if (Array.isArray(key)) return key.map(extraKeyValue);
  if (key instanceof Uint8Array) return Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return key;
}

/** `{name: value}` when the value differs from the field's default `None` (msgspec `omit_defaults`), else nothing. */
function unlessNone(name: string, value: unknown): Record<string, unknown> {
  return value === null || value === undefined ? {} : { [name]: value };
}

/**
 * A map-encoded event as vLLM after #42892 writes it: the tag under `"type"` first, then the fields in the order the
 * struct declares them (vllm/distributed/kv_events.py @ 0181ea31), those with a `None` default left out when `None`.
 */
function mapEvent(e: KvCacheEvent): Record<string, unknown> {
  switch (e.type) {
    case 'BlockStored':
      return {
        type: e.type,
        block_hashes: e.blockHashes.map(hashValue),
        parent_block_hash: e.parentBlockHash === null ? null : hashValue(e.parentBlockHash),
        token_ids: [...e.tokenIds],
        block_size: e.blockSize,
        lora_id: e.loraId,
        medium: e.medium ?? 'GPU',
        lora_name: e.loraName ?? null,
        ...unlessNone('extra_keys', e.extraKeys?.map((k) => (k === null ? null : k.map(extraKeyValue)))),
        ...unlessNone('group_idx', e.groupIdx),
        ...unlessNone('kv_cache_spec_kind', e.kvCacheSpecKind),
        ...unlessNone('kv_cache_spec_sliding_window', e.kvCacheSpecSlidingWindow),
      };
    case 'BlockRemoved':
      return { type: e.type, block_hashes: e.blockHashes.map(hashValue), medium: e.medium ?? 'GPU', ...unlessNone('group_idx', e.groupIdx) };
    case 'AllBlocksCleared':
      return { type: e.type };
  }
}

/**
 * Encodes a batch as the chosen vLLM version does: positional 0.10.x with the fields that version had, or map events
 * (vLLM #42892) inside a positional batch as released vLLM sends it.
 */
export function encodeEventBatch(batch: KvEventBatch, encoding: KvEventEncoding): Uint8Array {
  const events = batch.events.map((e): unknown => {
    if (encoding === 'map') return mapEvent(e);
    const withMedium = encoding === 'positional-v0.10.2';
    switch (e.type) {
      case 'BlockStored':
        return ['BlockStored', ...storedValues(e, withMedium)];
      case 'BlockRemoved':
        return withMedium ? ['BlockRemoved', e.blockHashes.map(hashValue), e.medium ?? 'GPU'] : ['BlockRemoved', e.blockHashes.map(hashValue)];
      case 'AllBlocksCleared':
        return ['AllBlocksCleared'];
    }
  });
  // Always three elements: msgspec writes every field of an array_like struct, a None data_parallel_rank as nil
  // (`omit_defaults` applies to map encodings only); vLLM sets the rank anyway (0 without DP).
  const rest: unknown[] = [events, batch.dataParallelRank];
  // `ts` is `time.time()`, a Python float, which msgspec always writes as a float64 (0xcb), even at a whole second
  // (`EventBatch.ts: float`, vllm/distributed/kv_events.py @ v0.10.0; `KVEventBatch(ts=time.time(), ...)`,
  // vllm/v1/core/sched/scheduler.py:580 @ v0.10.0). @msgpack/msgpack writes an integral number as an int, so the
  // envelope is assembled by hand: a fixarray header, the float64, then the other elements, one after another.
  const parts = [
    Uint8Array.of(0x90 | (rest.length + 1)),
    encode(batch.ts, { forceIntegerToFloat: true }),
    ...rest.map((v) => encode(v, { useBigInt64: true })),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
