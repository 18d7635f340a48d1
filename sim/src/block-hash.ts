import { createHash } from 'node:crypto';
import { endianness } from 'node:os';

/**
 * Chained block hashes over full blocks only, like vLLM's hash_block_tokens:
 *
 *   h[-1] = ROOT
 *   h[i]  = first 8 bytes of sha256( h[i-1] (8 bytes) || tokens of block i as u32 little-endian
 *                                    [|| 0xff || utf8(cache_salt)  for block 0 only] )
 *
 * Returned as 16-char hex strings, which make cheap Map keys. The function is
 * deliberately *not* vLLM's sha256_cbor_64bit: these hashes never leave the
 * process (no KV events), so only the properties matter — a block's identity
 * depends on every token before it, and a trailing partial block has none.
 * 64 bits keep accidental collisions negligible (~n²/2^65) for any cache a
 * simulator holds. sha256 costs ~1.5 µs per 16-token block, a few ms for a
 * 128 KB prompt, an order of magnitude below tokenizing it.
 */
export const ROOT_HASH = createHash('sha256').update('kvroute-sim/block-hash/v1').digest().subarray(0, 8);

const LITTLE_ENDIAN = endianness() === 'LE';

export function chainBlockHashes(
  tokens: ArrayLike<number>,
  blockSize: number,
  cacheSalt?: string,
  maxTokens = tokens.length,
): string[] {
  const limit = Math.min(tokens.length, maxTokens);
  const numBlocks = Math.floor(limit / blockSize);
  const out: string[] = new Array<string>(numBlocks);
  // On little-endian hosts a Uint32Array already is the u32le byte string: hash it in place.
  const view = tokens instanceof Uint32Array && LITTLE_ENDIAN ? Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength) : null;
  const buf = Buffer.alloc(4 * blockSize);
  let parent: Buffer = ROOT_HASH;
  for (let b = 0; b < numBlocks; b++) {
    const base = b * blockSize;
    let body: Buffer;
    if (view) {
      body = view.subarray(4 * base, 4 * (base + blockSize));
    } else {
      for (let i = 0; i < blockSize; i++) buf.writeUInt32LE(tokens[base + i], 4 * i);
      body = buf;
    }
    const h = createHash('sha256').update(parent).update(body);
    if (b === 0 && cacheSalt !== undefined) h.update(Buffer.from([0xff])).update(cacheSalt, 'utf8');
    parent = h.digest().subarray(0, 8);
    out[b] = parent.toString('hex');
  }
  return out;
}
