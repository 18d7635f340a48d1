import { createHash, randomBytes } from 'node:crypto';
// node-cbor (hildjj), CommonJS. `canonical` uses the shortest heads and, with `collapseBigIntegers` (implied by
// canonical), writes a bigint in [-2^64, 2^64) as a plain CBOR integer in its shortest form instead of a tag-2/3
// bignum, as Python's cbor2 does for ints. sim/test/block-hash.test.ts checks the bytes against python3-cbor2.
import { Encoder } from 'cbor';

/**
 * vLLM's prefix-cache block hashes, per `--prefix-caching-hash-algo`.
 *
 * vLLM v0.10.0 / v0.10.1 (vllm-project/vllm: vllm/v1/core/kv_cache_utils.py @ v0.10.0, `hash_block_tokens`,
 * `init_none_hash`; vllm/utils/__init__.py @ v0.10.0, `sha256_cbor_64bit`):
 *
 *   hash(block) = fn((parent_int or NONE_HASH, tuple(tokens), extra_keys or None))
 *   sha256_cbor_64bit(x) = int(sha256(cbor2.dumps(x, canonical=True))) & (2^64 - 1)   (= digest[24:32] big-endian)
 *   NONE_HASH = fn(os.environ["PYTHONHASHSEED"])  — the seed *string* — or a random 256-bit int when it is unset
 *
 * vLLM v0.10.2 (vllm/v1/core/kv_cache_utils.py @ 82dfb12e5, #23673): block hashes are the 32-byte digests and the
 * parent goes into the tuple as those 32 bytes; `sha256_cbor(x) = sha256(cbor2.dumps(x, canonical=True))`; events
 * carry `maybe_convert_block_hash` = the low 64 bits of the digest (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1`, the
 * default); NONE_HASH = `sha256_cbor(seed)` or 32 random bytes.
 *
 * `sha256_cbor_64bit` and `sha256_cbor` are reproduced bit for bit. `builtin` (Python's `hash()` of a tuple, with a
 * SipHash-keyed str hash and, before CPython 3.12, an address-based `hash(None)`) and `sha256` (SHA-256 over a
 * `pickle` of the tuple) are simulated by stand-ins of the same shape: see {@link BlockHasher}.
 */
export type HashAlgo = 'builtin' | 'sha256' | 'sha256_cbor_64bit' | 'sha256_cbor';

export const HASH_ALGOS: readonly HashAlgo[] = ['builtin', 'sha256', 'sha256_cbor_64bit', 'sha256_cbor'];

/**
 * The vLLM release whose shapes the simulator reproduces, picked by the hash algorithm: `builtin` and
 * `sha256_cbor_64bit` exist only up to 0.10.1 (removed by #23673), `sha256_cbor` only from 0.10.2; `sha256` exists in
 * both, and is simulated as 0.10.2's (its default), where its events are publishable.
 */
export type VllmGeneration = '0.10.0' | '0.10.2';

export function generationOf(algo: HashAlgo): VllmGeneration {
  return algo === 'builtin' || algo === 'sha256_cbor_64bit' ? '0.10.0' : '0.10.2';
}

/** One block's hash. */
export interface BlockHash {
  /** Identity inside the cache (a hex string, cheap as a Map key). */
  readonly key: string;
  /** The integer vLLM puts in `block_hashes` / `parent_block_hash` of its KV events. */
  readonly event: bigint;
  /** What the next block's hash takes as its parent: the int (v0.10.0) or the 32-byte digest (v0.10.2). */
  readonly chain: bigint | Buffer;
}

/**
 * One of vLLM's extra keys: a LoRA int id (v0.10.x) or name (>= #27577), a multimodal `(identifier, offset)` tuple, a
 * cache_salt, or a prompt-embedding digest (bytes). cbor2 writes a tuple as an array and bytes as a byte string, as
 * node-cbor does for an array and a Buffer.
 */
export type ExtraKey = number | string | Uint8Array | readonly [string, number];

/**
 * vLLM's extra keys of one block, `lora + multimodal + cache_salt (block 0 only) + prompt embeds`
 * (`generate_block_hash_extra_keys`), or null when there are none.
 */
export type ExtraKeys = readonly ExtraKey[] | null;

const encoder = new Encoder({ canonical: true, collapseBigIntegers: true });

/** Canonical CBOR of `value` (one reused encoder: encoding is synchronous, so its output buffer holds just this value). */
export function cborCanonical(value: unknown): Buffer {
  encoder.pushAny(value);
  const out = encoder.read() as Buffer | null;
  if (!out) throw new Error('CBOR encoder produced no bytes');
  return out;
}

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

function low64(digest: Buffer): bigint {
  return digest.readBigUInt64BE(24);
}

/** Python's `hash()` is a signed 64-bit value that is never -1 (CPython maps -1 to -2). */
function asPythonHash(u: bigint): bigint {
  const s = BigInt.asIntN(64, u);
  return s === -1n ? -2n : s;
}

function hex64(v: bigint): string {
  return BigInt.asUintN(64, v).toString(16).padStart(16, '0');
}

export class BlockHasher {
  readonly algo: HashAlgo;
  readonly generation: VllmGeneration;
  /** The chain's root, what block 0 takes as its parent. */
  readonly noneHash: bigint | Buffer;
  /** True when NONE_HASH came from PYTHONHASHSEED, so two processes with the same seed agree. */
  readonly seeded: boolean;
  /** Random per process for the stand-ins (`builtin`, `sha256`), or derived from the seed when one is set. */
  private readonly standInKey: Buffer;

  /**
   * @param pythonHashSeed the value of `PYTHONHASHSEED` as vLLM would read it (any string, even `"random"`, is
   *   hashed as the seed, as `init_none_hash` does); undefined = unset = a random root.
   */
  constructor(algo: HashAlgo, pythonHashSeed?: string) {
    this.algo = algo;
    this.generation = generationOf(algo);
    this.seeded = pythonHashSeed !== undefined;
    this.standInKey =
      pythonHashSeed === undefined ? randomBytes(32) : sha256(Buffer.from(`kvroute-sim/${algo}-stand-in/`), Buffer.from(pythonHashSeed, 'utf8'));
    switch (algo) {
      case 'sha256_cbor_64bit':
        // init_none_hash: hash_fn(hash_seed), i.e. the CBOR text string of the seed; else a random 256-bit int.
        this.noneHash = pythonHashSeed === undefined ? BigInt(`0x${randomBytes(32).toString('hex')}`) : low64(sha256(cborCanonical(pythonHashSeed)));
        break;
      case 'sha256_cbor':
        this.noneHash = pythonHashSeed === undefined ? randomBytes(32) : sha256(cborCanonical(pythonHashSeed));
        break;
      case 'builtin':
        // Stand-in for hash(seed) (SipHash keyed by the seed in CPython) or hash(os.urandom(32)-int).
        this.noneHash = asPythonHash(low64(sha256(this.standInKey, Buffer.from('none'))));
        break;
      case 'sha256':
        // Stand-in for sha256(pickle.dumps(seed)) (v0.10.2: 32 bytes).
        this.noneHash = sha256(this.standInKey, Buffer.from('none'));
        break;
    }
  }

  /**
   * hash_block_tokens(hash_fn, parent, tokens, extra_keys). `parent` null (or, as in vLLM's `if not parent_block_hash`,
   * the int 0) means the chain starts here and NONE_HASH is used.
   */
  hashBlock(parent: BlockHash | null, tokens: ArrayLike<number>, extraKeys: ExtraKeys = null): BlockHash {
    const toks = Array.from(tokens);
    // A digest as a Buffer: node-cbor writes a Buffer as a byte string (as cbor2 writes bytes), a bare Uint8Array as
    // a tagged typed array.
    const extra = extraKeys && extraKeys.length > 0 ? extraKeys.map((k) => (k instanceof Uint8Array && !Buffer.isBuffer(k) ? Buffer.from(k) : k)) : null;
    switch (this.algo) {
      case 'sha256_cbor_64bit': {
        const p = parent === null || parent.chain === 0n ? (this.noneHash as bigint) : (parent.chain as bigint);
        const v = low64(sha256(cborCanonical([p, toks, extra])));
        return { key: hex64(v), event: v, chain: v };
      }
      case 'sha256_cbor': {
        const p = parent === null ? (this.noneHash as Buffer) : (parent.chain as Buffer);
        const d = sha256(cborCanonical([p, toks, extra]));
        return { key: d.toString('hex'), event: low64(d), chain: d };
      }
      case 'builtin': {
        const p = parent === null || parent.chain === 0n ? (this.noneHash as bigint) : (parent.chain as bigint);
        const v = asPythonHash(low64(sha256(this.standInKey, cborCanonical([p, toks, extra]))));
        return { key: hex64(v), event: v, chain: v };
      }
      case 'sha256': {
        const p = parent === null ? (this.noneHash as Buffer) : (parent.chain as Buffer);
        const d = sha256(this.standInKey, cborCanonical([p, toks, extra]));
        return { key: d.toString('hex'), event: low64(d), chain: d };
      }
    }
  }
}

/** What makes a request's blocks differ beyond their tokens (vLLM's `generate_block_hash_extra_keys`). */
export interface HashExtras {
  /** LoRA adapter's `lora_int_id`, the LoRA key on every block up to v0.10.x (vllm/v1/core/kv_cache_utils.py @ v0.10.0). */
  loraId?: number | null;
  /**
   * LoRA adapter's `lora_name`, the LoRA key on every block from vLLM #27577 on (`_gen_lora_extra_hash_keys`,
   * vllm/v1/core/kv_cache_utils.py @ main 001cabc1); wins over `loraId` when both are set.
   */
  loraName?: string | null;
  /** `cache_salt`; on the block that starts at token 0 only, and only when non-empty (vLLM tests its truthiness). */
  cacheSalt?: string | null;
}

/** Extra keys of the block starting at `startToken`: `lora_extra_keys + mm_extra_keys + cache_salt_keys`, or null. */
export function extraKeysFor(startToken: number, extras: HashExtras): ExtraKeys {
  const keys: ExtraKey[] = [];
  if (extras.loraName !== undefined && extras.loraName !== null) keys.push(extras.loraName);
  else if (extras.loraId !== undefined && extras.loraId !== null) keys.push(extras.loraId);
  if (startToken === 0 && extras.cacheSalt) keys.push(extras.cacheSalt);
  return keys.length > 0 ? keys : null;
}

/**
 * Extends `hashes` (the chain so far) over every full block of `tokens[0, limit)`, as `hash_request_tokens` does for
 * a prompt and `cache_full_blocks` for blocks completed by generated tokens. Returns `hashes`.
 */
export function extendBlockHashes(
  hasher: BlockHasher,
  hashes: BlockHash[],
  tokens: ArrayLike<number>,
  blockSize: number,
  extras: HashExtras = {},
  limit = tokens.length,
): BlockHash[] {
  const full = Math.floor(Math.min(limit, tokens.length) / blockSize);
  const view = tokens instanceof Uint32Array ? tokens : null;
  for (let b = hashes.length; b < full; b++) {
    const start = b * blockSize;
    const block = view ? view.subarray(start, start + blockSize) : Array.prototype.slice.call(tokens, start, start + blockSize);
    hashes.push(hasher.hashBlock(b === 0 ? null : hashes[b - 1], block as ArrayLike<number>, extraKeysFor(start, extras)));
  }
  return hashes;
}

/** The hash chain over every full block of `tokens` (test and probe helper). */
export function chainBlockHashes(hasher: BlockHasher, tokens: ArrayLike<number>, blockSize: number, extras: HashExtras = {}, limit = tokens.length): BlockHash[] {
  return extendBlockHashes(hasher, [], tokens, blockSize, extras, limit);
}
