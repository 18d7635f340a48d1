/**
 * `npm run bench -w tokenizer`: the two tokenizer implementations on Qwen3's tokenizer, on the same texts in one run:
 * npm `tokenizers` (Hugging Face's Rust crate, native) against `@huggingface/tokenizers` (its pure-JS port). Reports the
 * median and p90 latency per encode and the time the event loop is blocked, for 1, 16 and 128 KB prompts, and checks
 * that both produce the same ids.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Tokenizer as NativeTokenizer } from 'tokenizers';
import { resolveTokenizerFiles } from '../src';

type TokenizersModule = typeof import('@huggingface/tokenizers', { with: { 'resolution-mode': 'import' } });
const { Tokenizer: JsTokenizer } = require('@huggingface/tokenizers') as TokenizersModule;

const WORDS = ['cache', 'route', 'prefix', 'block', 'token', 'model', 'pod', 'queue', 'latency', 'score', 'The', 'quick', 'über', 'naïve', '数据', '🙂', '\n'];
function text(n: number, seed: number): string {
  let s = '';
  let x = seed >>> 0;
  while (s.length < n) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    s += WORDS[x % WORDS.length] + (x % 7 === 0 ? '. ' : ' ');
  }
  return s.slice(0, n);
}

const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function main(): Promise<void> {
  const reps = process.argv.includes('--quick') ? 5 : 30;
  const files = resolveTokenizerFiles({ model: 'Qwen/Qwen3-0.6B', hubCache: '/nonexistent' });
  const native = NativeTokenizer.fromFile(files.tokenizerJson);
  const js = new JsTokenizer(JSON.parse(fs.readFileSync(files.tokenizerJson, 'utf8')), JSON.parse(fs.readFileSync(files.tokenizerConfigJson, 'utf8')));
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, node ${process.version}; ${reps} texts per size`);
  console.log('size    native p50 / p90 (loop blocked p50)    pure-JS p50 / p90 (= loop blocked)    same ids');
  for (const kb of [1, 16, 128]) {
    const texts = Array.from({ length: reps }, (_, i) => text(kb * 1024, i + 1));
    for (const t of texts.slice(0, 2)) {
      await native.encode(t);
      js.encode(t);
    }
    const nat: number[] = [];
    const blocked: number[] = [];
    const pure: number[] = [];
    let same = 0;
    for (const t of texts) {
      let start = process.hrtime.bigint();
      const pending = native.encode(t, undefined, { addSpecialTokens: false });
      blocked.push(ms(start));
      const a = (await pending).getIds();
      nat.push(ms(start));
      start = process.hrtime.bigint();
      const b = js.encode(t, { add_special_tokens: false }).ids;
      pure.push(ms(start));
      if (a.length === b.length && a.every((v, i) => v === b[i])) same++;
    }
    const f = (x: number) => x.toFixed(2).padStart(6);
    console.log(`${String(kb).padStart(3)} KB  ${f(quantile(nat, 0.5))} / ${f(quantile(nat, 0.9))} (${f(quantile(blocked, 0.5))})               ${f(quantile(pure, 0.5))} / ${f(quantile(pure, 0.9))}                   ${same}/${reps}`);
  }
}

void main();
