import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlockHasher, cborCanonical, chainBlockHashes, extraKeysFor, generationOf, type BlockHash, type ExtraKey, type HashAlgo } from '../src/block-hash';

/** Written by sim/test/vectors/block-hash.py with real Python + cbor2 (vLLM's function bodies restated). */
interface Chain {
  none_hash: string;
  seed_cbor: string;
  blocks: { event: string; digest?: string; cbor: string | null }[];
}
interface Case {
  name: string;
  seed: string;
  tokens: number[];
  block_size: number;
  lora_int_id: number | null;
  cache_salt: string | null;
  '0.10.0': Chain;
  '0.10.2': Chain;
}
/** An extra key in the vectors' JSON: tuples as arrays, bytes as `{bytes: hex}`. */
type JsonKey = number | string | { bytes: string } | JsonKey[];
interface MainCase {
  name: string;
  seed: string;
  tokens: number[];
  block_size: number;
  lora_name: string | null;
  cache_salt: string | null;
  mm: [string, number, number][];
  main: { none_hash: string; blocks: { extra_keys: JsonKey[] | null; digest: string; event: string; cbor: string }[] };
}
const VECTORS = JSON.parse(readFileSync(join(__dirname, 'vectors', 'block-hash.json'), 'utf8')) as { cbor2: string; cases: Case[]; main_cases: MainCase[] };

function extraKey(k: JsonKey): ExtraKey {
  if (Array.isArray(k)) return k.map(extraKey) as unknown as readonly [string, number];
  if (typeof k === 'object') return Buffer.from(k.bytes, 'hex');
  return k;
}

describe('block hashes bit-exact with vLLM (vectors from python3-cbor2)', () => {
  it('the vectors file has cases and names its generator', () => {
    expect(VECTORS.cases.length).toBeGreaterThanOrEqual(9);
    expect(VECTORS.cbor2).toMatch(/^\d+\./);
  });

  describe.each(VECTORS.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const extras = { loraId: c.lora_int_id, cacheSalt: c.cache_salt };

    it('CBOR of the seed string as cbor2 writes it', () => {
      expect(cborCanonical(c.seed).toString('hex')).toBe(c['0.10.0'].seed_cbor);
    });

    it('sha256_cbor_64bit: NONE_HASH, CBOR of block 0 and every event hash (vllm/v1/core/kv_cache_utils.py @ v0.10.0)', () => {
      const h = new BlockHasher('sha256_cbor_64bit', c.seed);
      const want = c['0.10.0'];
      expect((h.noneHash as bigint).toString()).toBe(want.none_hash);
      expect(cborCanonical([h.noneHash, c.tokens.slice(0, c.block_size), extraKeysFor(0, extras)]).toString('hex')).toBe(want.blocks[0].cbor);
      expect(chainBlockHashes(h, c.tokens, c.block_size, extras).map((b) => b.event.toString())).toEqual(want.blocks.map((b) => b.event));
    });

    it('sha256_cbor: 32-byte chain, events = low 64 bits (vllm/v1/core/kv_cache_utils.py @ v0.10.2 / 82dfb12e5)', () => {
      const h = new BlockHasher('sha256_cbor', c.seed);
      const want = c['0.10.2'];
      expect((h.noneHash as Buffer).toString('hex')).toBe(want.none_hash);
      expect(cborCanonical([h.noneHash, c.tokens.slice(0, c.block_size), extraKeysFor(0, extras)]).toString('hex')).toBe(want.blocks[0].cbor);
      const chain = chainBlockHashes(h, c.tokens, c.block_size, extras);
      expect(chain.map((b) => (b.chain as Buffer).toString('hex'))).toEqual(want.blocks.map((b) => b.digest));
      expect(chain.map((b) => b.event.toString())).toEqual(want.blocks.map((b) => b.event));
    });

    it('a Uint32Array hashes like a number[]', () => {
      const h = new BlockHasher('sha256_cbor_64bit', c.seed);
      expect(chainBlockHashes(h, Uint32Array.from(c.tokens), c.block_size, extras)).toEqual(chainBlockHashes(h, c.tokens, c.block_size, extras));
    });
  });

  // vLLM main (vllm/v1/core/kv_cache_utils.py @ 001cabc1): the same sha256_cbor chain as v0.10.2, with the extra keys
  // of newer releases: the LoRA name (#27577), multimodal (identifier, offset) tuples, prompt-embedding digests.
  describe.each(VECTORS.main_cases.map((c) => [c.name, c] as const))('main: %s', (_name, c) => {
    it('every block\'s CBOR, digest and event hash, given its extra keys (sha256_cbor)', () => {
      const h = new BlockHasher('sha256_cbor', c.seed);
      expect((h.noneHash as Buffer).toString('hex')).toBe(c.main.none_hash);
      let parent: BlockHash | null = null;
      c.main.blocks.forEach((want, i) => {
        const extra = want.extra_keys === null ? null : want.extra_keys.map(extraKey);
        const tokens = c.tokens.slice(i * c.block_size, (i + 1) * c.block_size);
        const p = parent === null ? h.noneHash : parent.chain;
        expect(cborCanonical([p, tokens, extra]).toString('hex')).toBe(want.cbor);
        const block: BlockHash = h.hashBlock(parent, tokens, extra);
        expect({ i, digest: (block.chain as Buffer).toString('hex'), event: block.event.toString() }).toEqual({ i, digest: want.digest, event: want.event });
        parent = block;
      });
      // Only full blocks: a partial last block has no hash.
      expect(c.main.blocks).toHaveLength(Math.floor(c.tokens.length / c.block_size));
    });

    if (c.mm.length === 0 && c.lora_name !== null) {
      it('extraKeysFor puts the LoRA name first and the salt on block 0, as generate_block_hash_extra_keys does', () => {
        const extras = { loraName: c.lora_name, loraId: 5, cacheSalt: c.cache_salt };
        expect(c.main.blocks.map((_, i) => extraKeysFor(i * c.block_size, extras))).toEqual(c.main.blocks.map((b) => b.extra_keys));
        const chain = chainBlockHashes(new BlockHasher('sha256_cbor', c.seed), c.tokens, c.block_size, extras);
        expect(chain.map((b) => b.event.toString())).toEqual(c.main.blocks.map((b) => b.event));
      });
    }
  });

  it('the golden vectors of the notes (seed "42", tokens 1..32)', () => {
    const t = Array.from({ length: 32 }, (_, i) => i + 1);
    const v0100 = chainBlockHashes(new BlockHasher('sha256_cbor_64bit', '42'), t, 16).map((b) => b.event);
    expect(v0100).toEqual([9442596223568401980n, 10401597220457154048n]);
    const v0102 = chainBlockHashes(new BlockHasher('sha256_cbor', '42'), t, 16).map((b) => b.event);
    expect(v0102).toEqual([16300212363532267629n, 8671309795006503672n]);
    // The low 64 bits of the 32-byte NONE_HASH are v0.10.0's NONE_HASH: the same digest.
    expect((new BlockHasher('sha256_cbor', '42').noneHash as Buffer).readBigUInt64BE(24)).toBe(12056132650316601216n);
  });
});

describe('block hash chains', () => {
  const algos: HashAlgo[] = ['builtin', 'sha256', 'sha256_cbor_64bit', 'sha256_cbor'];

  it.each(algos)('%s: full blocks only, chained, salted on block 0 only', (algo) => {
    const h = new BlockHasher(algo, '7');
    const t = Array.from({ length: 40 }, (_, i) => i * 31);
    expect(chainBlockHashes(h, t, 16)).toHaveLength(2);
    expect(chainBlockHashes(h, t.slice(0, 15), 16)).toHaveLength(0);
    // Same second block, different first: the chain differs.
    const other = [...t.slice(0, 16).map((x) => x + 1), ...t.slice(16)];
    expect(chainBlockHashes(h, other, 16)[1].key).not.toBe(chainBlockHashes(h, t, 16)[1].key);
    const salted = chainBlockHashes(h, t, 16, { cacheSalt: 'a' });
    expect(salted[0].key).not.toBe(chainBlockHashes(h, t, 16)[0].key);
    expect(salted[1].key).not.toBe(chainBlockHashes(h, t, 16)[1].key);
    expect(chainBlockHashes(h, t, 16, { loraId: 1 })[0].key).not.toBe(chainBlockHashes(h, t, 16, { loraId: 2 })[0].key);
  });

  it('the stand-ins: same seed → same hashes in another process-like hasher; no seed → a random root', () => {
    const t = Array.from({ length: 16 }, (_, i) => i);
    for (const algo of ['builtin', 'sha256'] as const) {
      expect(chainBlockHashes(new BlockHasher(algo, '42'), t, 16)).toEqual(chainBlockHashes(new BlockHasher(algo, '42'), t, 16));
      expect(chainBlockHashes(new BlockHasher(algo), t, 16)[0].key).not.toBe(chainBlockHashes(new BlockHasher(algo), t, 16)[0].key);
    }
    // builtin's values are Python hash()es: signed 64-bit, never -1.
    const values = chainBlockHashes(new BlockHasher('builtin', '1'), Array.from({ length: 16 * 64 }, (_, i) => i), 16).map((b) => b.event);
    expect(values.every((v) => v >= -(1n << 63n) && v < 1n << 63n && v !== -1n)).toBe(true);
    expect(values.some((v) => v < 0n)).toBe(true);
  });

  it('without PYTHONHASHSEED the real algorithms get a random root too (vLLM: os.urandom(32))', () => {
    const t = Array.from({ length: 16 }, (_, i) => i);
    expect(chainBlockHashes(new BlockHasher('sha256_cbor_64bit'), t, 16)[0].key).not.toBe(chainBlockHashes(new BlockHasher('sha256_cbor_64bit'), t, 16)[0].key);
  });

  it('the hash algorithm picks the vLLM generation', () => {
    expect(algos.map(generationOf)).toEqual(['0.10.0', '0.10.2', '0.10.0', '0.10.2']);
  });
});
