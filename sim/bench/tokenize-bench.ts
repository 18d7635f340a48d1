/**
 * How long the request path spends on CPU for big prompts:
 *   npx ts-node --transpile-only bench/tokenize-bench.ts
 * Prints cold (first sight of the text) and warm (memoized) tokenization,
 * block hashing, and a chat turn that appends one message to a long history.
 */
import { BlockHasher, chainBlockHashes } from '../src/block-hash';
import { loadQwen3Tokenizer } from '../src/tokenizer';

function text(bytes: number, seed: number): string {
  const words = ['routing', 'cache', 'prefix', 'block', 'token', 'latency', 'pod', 'gateway', 'queue', 'score', 'vLLM'];
  let s = '';
  for (let i = 0; s.length < bytes; i++) s += `${words[(i * 7 + seed) % words.length]}${i % 17 === 0 ? '.\n' : ' '}`;
  return s;
}

function time<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const v = fn();
  return [v, performance.now() - t0];
}

const [tok, loadMs] = time(() => loadQwen3Tokenizer());
console.log(`load tokenizer: ${loadMs.toFixed(0)} ms`);
// Warm the JIT on unrelated text so the numbers below are steady-state.
tok.encode(text(64 * 1024, 99));

for (const kb of [8, 32, 128]) {
  const t = text(kb * 1024, kb);
  const [ids, cold] = time(() => tok.encode(t, true));
  const [, warm] = time(() => tok.encode(t, true));
  const hashMs = (['sha256_cbor_64bit', 'sha256_cbor', 'builtin'] as const).map((algo) => {
    const hasher = new BlockHasher(algo, '42');
    chainBlockHashes(hasher, ids, 16); // warm
    return `${algo} ${time(() => chainBlockHashes(hasher, ids, 16))[1].toFixed(1)} ms`;
  });
  console.log(`${String(kb).padStart(4)} KB: ${ids.length} tokens, cold ${cold.toFixed(1)} ms, memoized ${warm.toFixed(2)} ms, block hashes: ${hashMs.join(', ')}`);
}

const history = [
  { role: 'system', content: text(64 * 1024, 1) },
  { role: 'user', content: 'Summarize.' },
];
tok.encode(tok.renderChat(history));
const [, turn] = time(() =>
  tok.encode(tok.renderChat([...history, { role: 'assistant', content: 'The quick brown fox.' }, { role: 'user', content: 'More detail.' }])),
);
console.log(`next chat turn over a 64 KB history (render + encode): ${turn.toFixed(1)} ms`);
