import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlockHasher, cborCanonical, chainBlockHashes, extraKeysFor, generationOf, type HashAlgo } from '../src/block-hash';

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
const VECTORS = JSON.parse(readFileSync(join(__dirname, 'vectors', 'block-hash.json'), 'utf8')) as { cbor2: string; cases: Case[] };

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
