/**
 * The engine's own block hashes, for KV events that carry no usable token ids (llm-d-kv-cache's way of indexing:
 * by the hashes in `block_hashes` alone, `pkg/kvcache/kvevents/pool.go` @ v0.4.0).
 *
 * A request's blocks are hashed as llm-d-kv-cache's `ChunkedTokenDatabase` does (`pkg/kvcache/kvblock/
 * token_processor.go` @ v0.4.0), which is vLLM's `sha256_cbor` (`--prefix-caching-hash-algo sha256_cbor`, vLLM >=
 * 0.10.2, `vllm/v1/core/kv_cache_utils.py` hash_block_tokens and init_none_hash @ 0.10.2):
 *
 *   root     = sha256(cbor(hashSeed))                         (the seed string; vLLM's PYTHONHASHSEED)
 *   block(i) = sha256(cbor([block(i-1), tokens of block i, null]))   (canonical CBOR; the parent as 32 bytes)
 *   event    = the digest's last 8 bytes, big-endian               (what vLLM puts in `block_hashes`)
 *
 * No extra keys (LoRA, cache_salt): llm-d-kv-cache hashes none either. Both sides fold the 64-bit value into one
 * negative JavaScript number, a key space apart from kvroute's own (non-negative) block keys.
 */
import { createHash } from 'crypto';

const LOW_52_BITS = (1n << 52n) - 1n;
const TWO_TO_32 = 2 ** 32;

/** The index key of an engine block hash as events carry it: a decimal integer, or `x:` and hex bytes. */
export function engineKeyOf(hash: string): number {
  let value: bigint;
  if (hash.startsWith('x:')) {
    const bytes = Buffer.from(hash.slice(2), 'hex');
    value = bytes.length >= 8 ? bytes.readBigUInt64BE(bytes.length - 8) : BigInt(`0x${hash.slice(2) || '0'}`);
  } else {
    value = BigInt.asUintN(64, BigInt(hash));
  }
  return -(Number(value & LOW_52_BITS) + 1);
}

/** The same key from a 32-byte digest: its last 8 bytes, as `engineKeyOf` reads the event's integer. */
function keyOfDigest(digest: Buffer): number {
  return -(((digest.readUInt32BE(24) & 0xfffff) * TWO_TO_32 + digest.readUInt32BE(28)) + 1);
}

/** CBOR head: major type and argument, in the shortest form (canonical). */
function head(major: number, n: number, out: number[]): void {
  const m = major << 5;
  if (n < 24) out.push(m | n);
  else if (n < 0x100) out.push(m | 24, n);
  else if (n < 0x10000) out.push(m | 25, n >>> 8, n & 0xff);
  else out.push(m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** CBOR heads of each block's payload up to the parent: array(3), then bytes(32). */
const ARRAY3_BYTES32 = Buffer.from([0x83, 0x58, 0x20]);

/** sha256(cbor(seed)): the chain's root. */
export function engineRoot(seed: string): Buffer {
  const text = Buffer.from(seed, 'utf8');
  const out: number[] = [];
  head(3, text.length, out);
  return createHash('sha256').update(Buffer.from(out)).update(text).digest();
}

/**
 * The engine keys of the full blocks of `tokens` (ids < 2^32), chained from `root`: what a pod's events name when
 * its vLLM hashes with `sha256_cbor` and the same seed, or what an llm-d-kv-cache-style publisher sends.
 */
export function engineKeys(tokens: ArrayLike<number>, blockSize: number, root: Buffer): number[] {
  return blockDigests(tokens, blockSize, root).map(keyOfDigest);
}

/** The `block_hashes` vLLM (`sha256_cbor`) or llm-d-kv-cache would publish for these blocks: decimal uint64 strings. */
export function engineEventHashes(tokens: ArrayLike<number>, blockSize: number, root: Buffer): string[] {
  return blockDigests(tokens, blockSize, root).map((d) => d.readBigUInt64BE(24).toString());
}

function blockDigests(tokens: ArrayLike<number>, blockSize: number, root: Buffer): Buffer[] {
  const digests: Buffer[] = [];
  let parent = root;
  const full = Math.floor(tokens.length / blockSize);
  const bytes: number[] = [];
  for (let b = 0; b < full; b++) {
    bytes.length = 0;
    head(4, blockSize, bytes);
    for (let i = b * blockSize; i < (b + 1) * blockSize; i++) head(0, tokens[i]!, bytes);
    bytes.push(0xf6); // null: no extra keys
    parent = createHash('sha256').update(ARRAY3_BYTES32).update(parent).update(Buffer.from(bytes)).digest();
    digests.push(parent);
  }
  return digests;
}
