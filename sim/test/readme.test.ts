import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as sim from '../src';
import { startSimulator } from '../src/server';

/**
 * sim/README.md's "From code" example, run as a reader would copy it: the options it passes `startSimulator` must start
 * a simulator (they once named 2,048 KV blocks, 32,768 tokens, against the default --max-model-len of 40,960, which
 * resolveOptions refuses as vLLM refuses a KV cache that cannot hold one max-length sequence:
 * vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory @ v0.10.0), the members its comment names exist, and
 * every name "The package also exports" lists is exported.
 */
const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
const snippet = [...readme.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!).find((s) => s.includes('startSimulator('))!;

/** The object literal passed to `startSimulator(`, read as JavaScript (it is plain data). */
function startOptions(): Record<string, unknown> {
  const open = snippet.indexOf('{', snippet.indexOf('startSimulator('));
  let depth = 0;
  let end = open;
  for (; end < snippet.length; end++) {
    if (snippet[end] === '{') depth++;
    else if (snippet[end] === '}' && --depth === 0) break;
  }
  return new Function(`return (${snippet.slice(open, end + 1)});`)() as Record<string, unknown>;
}

describe('sim/README.md\'s code', () => {
  test('the From code example starts a simulator with the options it shows, and has the members it names', async () => {
    expect(snippet).toBeDefined();
    const options = startOptions();
    expect(options).toHaveProperty('port', 0);
    const s = await startSimulator(options);
    try {
      // "sim.port, sim.url ("http://127.0.0.1:PORT"), sim.engine.stats(), await sim.metrics.metrics()"
      expect(s.port).toBeGreaterThan(0);
      expect(s.url).toBe(`http://127.0.0.1:${s.port}`);
      expect(typeof s.engine.stats()).toBe('object');
      expect(await s.metrics.metrics()).toContain('vllm:');
    } finally {
      await s.close();
    }
  });

  test('every name "The package also exports" lists is exported', () => {
    const sentence = /The package also exports ([\s\S]*?)\(see `src\/index\.ts`\)/.exec(readme)?.[1];
    expect(sentence).toBeDefined();
    const names = [...sentence!.matchAll(/`([A-Za-z0-9]+)`/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(5);
    expect(names.filter((n) => !(n in sim))).toEqual([]);
  });
});
