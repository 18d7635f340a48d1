import { parseRequestBody } from '@kvroute/protocol/openai';
import { resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, SILENT_PLUGIN_LOGGER, type CycleContext } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS, type SchedulingMetrics } from '../src/scheduling/metrics-hooks';
import { indexCapacityFor, PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { matchLengthScore } from '../src/scheduling/plugins/match-length';
import { hashPromptBlocks, hashTailProbes } from '../src/scheduling/plugins/prefix-hash';
import { PrefixBlockIndex } from '../src/scheduling/plugins/prefix-index';
import { PREFIX_MATCH, uncachedPromptTokens } from '../src/scheduling/prefix-match';

function pod(name: string): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: EMPTY_METRICS,
    activeRequests: 0,
  };
}

function cycle(prompt: string, model = 'llama'): CycleContext {
  return { request: { requestId: 'r', model, prompt, headers: {} }, state: new CycleState() };
}

const podA = pod('a');
const podB = pod('b');
const podC = pod('c');

describe('hashPromptBlocks', () => {
  it('hashes only full blocks, up to maxBlocks', () => {
    expect(hashPromptBlocks('m', 'abc', 4, 256)).toEqual([]);
    expect(hashPromptBlocks('m', 'abcd', 4, 256)).toHaveLength(1);
    expect(hashPromptBlocks('m', 'abcdefghi', 4, 256)).toHaveLength(2);
    expect(hashPromptBlocks('m', 'x'.repeat(4 * 300), 4, 256)).toHaveLength(256);
  });

  it('ignores the partial last block', () => {
    expect(hashPromptBlocks('m', 'aaaabbbbcc', 4, 256)).toEqual(hashPromptBlocks('m', 'aaaabbbbdd', 4, 256));
  });

  it('with partialLastBlock hashes the short last block as one more key while under maxBlocks, as llm-d-router v0.10.0 prefixhash/hashing.go getKVCacheBlocksFromTokens', () => {
    expect(hashPromptBlocks('m', 'abc', 4, 256, true)).toHaveLength(1);
    expect(hashPromptBlocks('m', 'abcd', 4, 256, true)).toHaveLength(1);
    const [cc, dd] = [hashPromptBlocks('m', 'aaaabbbbcc', 4, 256, true), hashPromptBlocks('m', 'aaaabbbbdd', 4, 256, true)];
    expect(cc).toHaveLength(3);
    expect(cc.slice(0, 2)).toEqual(dd.slice(0, 2));
    expect(cc[2]).not.toBe(dd[2]);
    // The full blocks' keys are the same either way; a short block is not the full block it begins.
    expect(cc.slice(0, 2)).toEqual(hashPromptBlocks('m', 'aaaabbbbcc', 4, 256));
    expect(hashPromptBlocks('m', 'aaaabbbbcccc', 4, 256, true)[2]).not.toBe(cc[2]);
    // At the cap the rest is cut, as upstream stops at maxPrefixBlocks.
    expect(hashPromptBlocks('m', 'aaaabbbbcc', 4, 2, true)).toEqual(cc.slice(0, 2));
    expect(hashPromptBlocks('m', '', 4, 256, true)).toEqual([]);
  });

  it('gives prompts sharing N leading blocks the same first N keys, then different ones', () => {
    const first = hashPromptBlocks('m', 'aaaabbbbccccdddd', 4, 256);
    const second = hashPromptBlocks('m', 'aaaabbbbXcccdddd', 4, 256);
    expect(second.slice(0, 2)).toEqual(first.slice(0, 2));
    expect(second[2]).not.toBe(first[2]);
    // Chained: block 3 is identical text but follows a different block 2.
    expect(second[3]).not.toBe(first[3]);
  });

  it('seeds the chain with the model, so the same prompt on another model shares nothing', () => {
    const llama = hashPromptBlocks('llama', 'aaaabbbbcccc', 4, 256);
    const qwen = hashPromptBlocks('qwen', 'aaaabbbbcccc', 4, 256);
    expect(llama.filter((key) => qwen.includes(key))).toEqual([]);
  });

  it('is deterministic, non-negative and exact as a JS number', () => {
    const keys = hashPromptBlocks('m', 'The quick brown fox jumps over the lazy dog. '.repeat(20), 16, 256);
    expect(hashPromptBlocks('m', 'The quick brown fox jumps over the lazy dog. '.repeat(20), 16, 256)).toEqual(keys);
    for (const key of keys) {
      expect(Number.isSafeInteger(key)).toBe(true);
      expect(key).toBeGreaterThanOrEqual(0);
    }
  });

  it('distinguishes an odd tail unit from a pair ending in U+0000, and handles non-ASCII text', () => {
    expect(hashPromptBlocks('m', 'abc', 3, 1)).not.toEqual(hashPromptBlocks('m', 'abc\u0000', 4, 1));
    const cjk = hashPromptBlocks('m', '日本語のプロンプト🙂です', 4, 256);
    expect(cjk).toHaveLength(3);
    expect(new Set(cjk).size).toBe(3);
  });

  it('has no collisions over 50,000 distinct one-block prompts', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 50_000; i++) {
      const [key] = hashPromptBlocks('m', `block-${i.toString(36).padStart(10, '0')}`, 16, 1);
      seen.add(key!);
    }
    expect(seen.size).toBe(50_000);
  });
});

describe('PrefixBlockIndex', () => {
  it('matches the longest run of leading blocks each candidate holds, without gaps', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 100 });
    index.record('a', [1, 2, 3, 4]);
    index.record('b', [1, 2]);
    index.record('c', [1, 3, 4]); // holds blocks 3 and 4 but not 2: only the first block counts
    expect(index.longestPrefixMatches([1, 2, 3, 4, 5], new Set(['a', 'b', 'c']))).toEqual(
      new Map([
        ['a', 4],
        ['b', 2],
        ['c', 1],
      ]),
    );
    expect(index.longestPrefixMatches([9, 1, 2], new Set(['a', 'b', 'c']))).toEqual(new Map());
  });

  it('only reports candidates', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 100 });
    index.record('a', [1, 2]);
    index.record('b', [1, 2]);
    expect(index.longestPrefixMatches([1, 2], new Set(['b']))).toEqual(new Map([['b', 2]]));
  });

  it('evicts the least recently recorded block beyond the per-endpoint capacity', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 3 });
    index.record('a', [1, 2, 3]);
    index.record('a', [1]); // touch 1: now 2 is the least recent
    index.record('a', [4]);
    expect(index.blocksOf('a')).toEqual([3, 1, 4]);
    expect(index.size).toBe(3);
    expect(index.longestPrefixMatches([1, 2], new Set(['a']))).toEqual(new Map([['a', 1]]));
    // Eviction on one endpoint leaves the others' copies alone.
    index.record('b', [2]);
    index.record('a', [5]);
    expect(index.longestPrefixMatches([2], new Set(['a', 'b']))).toEqual(new Map([['b', 1]]));
  });

  it('a request longer than the capacity keeps its tail', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 2 });
    index.record('a', [1, 2, 3, 4]);
    expect(index.blocksOf('a')).toEqual([3, 4]);
    expect(index.size).toBe(2);
  });

  it('removeEndpoint drops every entry of that endpoint only', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 10 });
    index.record('a', [1, 2, 3]);
    index.record('b', [1, 2]);
    expect(index.size).toBe(5);
    index.removeEndpoint('a');
    expect(index.size).toBe(2);
    expect(index.endpointCount).toBe(1);
    expect(index.blocksOf('a')).toEqual([]);
    expect(index.longestPrefixMatches([1, 2, 3], new Set(['a', 'b']))).toEqual(new Map([['b', 2]]));
    index.removeEndpoint('unknown');
    expect(index.size).toBe(2);
  });

  it('setCapacity shrinks an endpoint to its most recent blocks and lets it grow again', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 10 });
    index.record('a', [1, 2, 3, 4, 5, 6]);
    index.record('b', [1, 2]);
    index.setCapacity('a', 3);
    expect(index.capacityOf('a')).toBe(3);
    expect(index.blocksOf('a')).toEqual([4, 5, 6]);
    expect(index.size).toBe(5);
    // Block 1 is still on b; a lost it.
    expect(index.longestPrefixMatches([1, 2], new Set(['a', 'b']))).toEqual(new Map([['b', 2]]));
    index.setCapacity('a', 5);
    index.record('a', [7, 8]);
    expect(index.blocksOf('a')).toEqual([4, 5, 6, 7, 8]);
    index.record('a', [9]);
    expect(index.blocksOf('a')).toEqual([5, 6, 7, 8, 9]);
    // Back to the default.
    index.setCapacity('a', undefined);
    expect(index.capacityOf('a')).toBe(10);
  });

  it('gives an endpoint the default capacity until its own is set, from addEndpoint or its first record', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 4 });
    expect(index.capacityOf('a')).toBeUndefined();
    index.addEndpoint('a');
    expect(index.capacityOf('a')).toBe(4);
    expect(index.endpointCount).toBe(1);
    index.record('b', [1, 2, 3, 4, 5, 6]);
    expect(index.capacityOf('b')).toBe(4);
    expect(index.blocksOf('b')).toEqual([3, 4, 5, 6]);
    index.addEndpoint('b'); // known: unchanged
    expect(index.blocksOf('b')).toEqual([3, 4, 5, 6]);
  });

  it('scales every capacity by the same factor when they add up to more than maxEntries', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 100, maxEntries: 300 });
    index.setCapacity('a', 100);
    index.setCapacity('b', 200);
    expect([index.capacityOf('a'), index.capacityOf('b'), index.budgetScale]).toEqual([100, 200, 1]);
    index.setCapacity('c', 300); // 600 wanted, 300 allowed: half each
    expect([index.capacityOf('a'), index.capacityOf('b'), index.capacityOf('c')]).toEqual([50, 100, 150]);
    expect(index.budgetScale).toBe(0.5);
    // Removing c gives a and b their full capacity back.
    index.removeEndpoint('c');
    expect([index.capacityOf('a'), index.capacityOf('b'), index.budgetScale]).toEqual([100, 200, 1]);
  });

  it('evicts the oldest entries of every endpoint when a new endpoint takes its share of the budget', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 4, maxEntries: 8 });
    index.record('a', [1, 2, 3, 4]);
    index.record('b', [11, 12, 13, 14]);
    expect(index.size).toBe(8);
    index.addEndpoint('c'); // 12 wanted, 8 allowed: 2 each (floors), a and b lose their two oldest
    expect(index.blocksOf('a')).toEqual([3, 4]);
    expect(index.blocksOf('b')).toEqual([13, 14]);
    expect(index.size).toBe(4);
  });

  it('keeps the total within maxEntries across 256 endpoints of different sizes, whatever they record', () => {
    const maxEntries = 5000;
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 50, maxEntries });
    const endpoints = Array.from({ length: 256 }, (_, i) => `pod-${i}`);
    endpoints.forEach((endpoint, i) => index.setCapacity(endpoint, 20 + (i % 7) * 10)); // 20..80 each
    let next = 1;
    for (let round = 0; round < 4; round++) {
      for (const endpoint of endpoints) {
        index.record(endpoint, Array.from({ length: 30 }, () => next++));
        expect(index.size).toBeLessThanOrEqual(maxEntries);
      }
    }
    let counted = 0;
    let capacities = 0;
    for (const endpoint of endpoints) {
      const held = index.blocksOf(endpoint).length;
      expect(held).toBe(index.capacityOf(endpoint)); // each is full after 120 blocks
      counted += held;
      capacities += index.capacityOf(endpoint)!;
    }
    expect(counted).toBe(index.size);
    expect(capacities).toBeLessThanOrEqual(maxEntries);
    // Proportional: an 80-entry endpoint keeps 4× what a 20-entry one keeps (give or take the floor).
    const small = index.capacityOf('pod-0')!;
    const large = index.capacityOf('pod-6')!;
    expect(Math.abs(large - 4 * small)).toBeLessThanOrEqual(4);
    expect(small).toBeLessThan(20);
  });

  it('holds nothing for endpoints whose share rounds to zero, and never exceeds a budget smaller than the pool', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 1, maxEntries: 2 });
    for (const endpoint of ['a', 'b', 'c', 'd']) index.record(endpoint, [1, 2, 3]);
    expect(index.size).toBeLessThanOrEqual(2);
    expect(['a', 'b', 'c', 'd'].map((e) => index.capacityOf(e)!).reduce((x, y) => x + y)).toBeLessThanOrEqual(2);
  });

  it('removeEndpoint frees every entry and its slots are reused', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 1000, maxEntries: 2000 });
    index.record('a', Array.from({ length: 1000 }, (_, i) => i));
    index.record('b', Array.from({ length: 1000 }, (_, i) => i + 0.5 * 2 ** 40));
    const bytes = index.allocatedBytes;
    index.removeEndpoint('a');
    expect(index.size).toBe(1000);
    index.record('c', Array.from({ length: 1000 }, (_, i) => i + 2 ** 41));
    expect(index.size).toBe(2000);
    expect(index.allocatedBytes).toBe(bytes);
  });

  it('sizes its buckets when capacities grow, around the free slots evictions left, which are then reused', () => {
    const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 8 });
    index.record('a', range(1, 8));
    index.record('b', range(101, 8));
    index.removeEndpoint('a'); // 8 free slots
    const before = index.allocatedBytes;
    index.setCapacity('b', 1000); // room for 1,000 entries: the buckets are rebuilt now, not while recording
    expect(index.allocatedBytes).toBeGreaterThan(before);
    // The freed entries of a are not in the rebuilt buckets.
    expect(index.longestPrefixMatches(range(1, 8), new Set(['a', 'b']))).toEqual(new Map());
    index.record('c', range(201, 16)); // reuses the free slots
    expect(index.blocksOf('b')).toEqual(range(101, 8));
    expect(index.longestPrefixMatches(range(1, 8), new Set(['a', 'b', 'c']))).toEqual(new Map());
    expect(index.longestPrefixMatches(range(101, 8), new Set(['b', 'c']))).toEqual(new Map([['b', 8]]));
    expect(index.blocksOf('c')).toEqual(range(209, 8)); // its default capacity: the last 8
    expect(index.longestPrefixMatches(range(209, 8), new Set(['b', 'c']))).toEqual(new Map([['c', 8]]));
    index.removeEndpoint('b');
    index.removeEndpoint('c');
    expect(index.size).toBe(0);
    expect(index.longestPrefixMatches(range(101, 8), new Set(['b']))).toEqual(new Map());
  });

  it('allocates for an unbounded capacity only as entries arrive', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 8 });
    index.setCapacity('a', 1e12); // no budget: the buckets stop at their presized maximum, the entries at what is held
    expect(index.allocatedBytes).toBeLessThanOrEqual(64 * 1024 ** 2 + 1024);
    index.record('a', [1, 2, 3]);
    expect(index.longestPrefixMatches([1, 2, 3], new Set(['a']))).toEqual(new Map([['a', 3]]));
  });

  it('agrees with a plain Map-based model under random records, capacity changes and removals', () => {
    // Reference: each endpoint's blocks in recency order, trimmed to the capacity the index reports.
    let seed = 12345;
    const random = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 40, maxEntries: 150 });
    const model = new Map<string, number[]>();
    const endpoints = ['a', 'b', 'c', 'd', 'e'];
    const trim = () => {
      for (const [endpoint, blocks] of model) {
        const capacity = index.capacityOf(endpoint)!;
        if (blocks.length > capacity) blocks.splice(0, blocks.length - capacity);
      }
    };
    // Keys share low 32 bits in groups of 4, so bucket chains hold several distinct keys.
    const key = () => (random(4) * 2 ** 32) + random(60);
    for (let step = 0; step < 3000; step++) {
      const endpoint = endpoints[random(endpoints.length)]!;
      const op = random(20);
      if (op === 0) {
        index.removeEndpoint(endpoint);
        model.delete(endpoint);
        trim();
      } else if (op === 1) {
        index.setCapacity(endpoint, random(60));
        if (!model.has(endpoint)) model.set(endpoint, []);
        trim();
      } else {
        const blocks = Array.from({ length: 1 + random(12) }, key);
        if (!model.has(endpoint)) model.set(endpoint, []);
        index.record(endpoint, blocks);
        trim(); // a new endpoint may have shrunk the others
        const held = model.get(endpoint)!;
        const capacity = index.capacityOf(endpoint)!;
        for (const block of blocks) {
          if (capacity === 0) break;
          const at = held.indexOf(block);
          if (at >= 0) held.splice(at, 1);
          else if (held.length >= capacity) held.shift();
          held.push(block);
        }
      }
      let total = 0;
      for (const [endpoint, blocks] of model) {
        expect(index.blocksOf(endpoint)).toEqual(blocks);
        total += blocks.length;
      }
      expect(index.size).toBe(total);
      expect(index.size).toBeLessThanOrEqual(150);
      if (step % 10 === 0) {
        const query = Array.from({ length: 6 }, key);
        const expected = new Map<string, number>();
        for (const [endpoint, blocks] of model) {
          let n = 0;
          while (n < query.length && blocks.includes(query[n]!)) n++;
          if (n > 0 && endpoint !== 'e') expected.set(endpoint, n);
        }
        expect(index.longestPrefixMatches(query, new Set(['a', 'b', 'c', 'd']))).toEqual(expected);
      }
    }
  });
});

describe('prefix-cache-scorer (estimate mode)', () => {
  const parameters = resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 4, lruCapacityPerServer: 100 });

  /** Scores a prompt and, like the scheduler, runs post-cycle with the given pick. */
  function route(scorer: PrefixCacheScorer, prompt: string, candidates: EndpointSnapshot[], picked: EndpointSnapshot): number[] {
    const context = cycle(prompt);
    const scores = scorer.score(context, candidates);
    scorer.postCycle(context, { targets: [picked], scores: new Map() });
    return scores;
  }

  it('scores N/total on the pod that served a prompt sharing the first N blocks, 0 elsewhere', () => {
    const scorer = new PrefixCacheScorer('prefix', parameters, NOOP_SCHEDULING_METRICS);
    expect(route(scorer, 'aaaabbbbccccdddd', [podA, podB, podC], podA)).toEqual([0, 0, 0]);
    // 5 blocks, the first 2 shared with what pod a served.
    expect(route(scorer, 'aaaabbbbXXXXYYYYZZZZ', [podA, podB, podC], podB)).toEqual([2 / 5, 0, 0]);
    // Pod b now holds all five blocks of the second prompt, pod a the first two.
    expect(scorer.score(cycle('aaaabbbbXXXXYYYYZZZZ!'), [podA, podB, podC])).toEqual([2 / 5, 1, 0]);
  });

  it('keeps cache salts apart, as vLLM does and GIE v1.5.0 seeds its chain (approximateprefix/hashing.go: TargetModel, then CacheSalt)', () => {
    const scorer = new PrefixCacheScorer('prefix', parameters, NOOP_SCHEDULING_METRICS);
    const salted = (prompt: string, cacheSalt?: string): CycleContext => ({
      request: { requestId: 'r', model: 'llama', prompt, headers: {}, ...(cacheSalt !== undefined ? { cacheSalt } : {}) },
      state: new CycleState(),
    });
    const served = salted('aaaabbbbcccc', 'tenant-1');
    scorer.score(served, [podA, podB]);
    scorer.postCycle(served, { targets: [podA], scores: new Map() });
    expect(scorer.score(salted('aaaabbbbcccc!', 'tenant-1'), [podA, podB])).toEqual([1, 0]);
    expect(scorer.score(salted('aaaabbbbcccc!', 'tenant-2'), [podA, podB])).toEqual([0, 0]);
    expect(scorer.score(salted('aaaabbbbcccc!'), [podA, podB])).toEqual([0, 0]);
  });

  it('caps the match at maxPrefixBlocksToMatch and scores prompts shorter than a block 0', () => {
    const scorer = new PrefixCacheScorer('prefix', { ...parameters, maxPrefixBlocksToMatch: 2 }, NOOP_SCHEDULING_METRICS);
    route(scorer, 'aaaabbbbcccc', [podA], podA);
    expect(scorer.score(cycle('aaaabbbbzzzz'), [podA, podB])).toEqual([1, 0]);
    expect(scorer.score(cycle('aaa'), [podA, podB])).toEqual([0, 0]);
  });

  it('reads a prompt longer than the blocks it hashes through the request\'s promptHead, to the same scores', () => {
    const capped = { ...parameters, maxPrefixBlocksToMatch: 3 };
    const withHead = new PrefixCacheScorer('prefix', capped, NOOP_SCHEDULING_METRICS);
    const whole = new PrefixCacheScorer('prefix', capped, NOOP_SCHEDULING_METRICS);
    const asked: number[] = [];
    const headed = (prompt: string): CycleContext => ({
      request: { requestId: 'r', model: 'llama', prompt, headers: {}, promptHead: (n) => (asked.push(n), prompt.slice(0, n)) },
      state: new CycleState(),
    });
    const prompts = ['aaaabbbbccccddddeeee', 'aaaabbbbXXXXYYYY', 'aaaabbbbcccc', 'aaaab'];
    for (const [i, prompt] of prompts.entries()) {
      const picked = [podA, podB, podC][i % 3]!;
      const a = headed(prompt);
      const b = cycle(prompt);
      expect(withHead.score(a, [podA, podB, podC])).toEqual(whole.score(b, [podA, podB, podC]));
      withHead.postCycle(a, { targets: [picked], scores: new Map() });
      whole.postCycle(b, { targets: [picked], scores: new Map() });
    }
    // Asked for 3 blocks of 4 characters, and only for the two prompts longer than that.
    expect(asked).toEqual([12, 12]);
    expect(withHead.score(cycle('aaaabbbbcccc!!'), [podA, podB, podC])).toEqual(whole.score(cycle('aaaabbbbcccc!!'), [podA, podB, podC]));
  });

  it('does not share prefixes across models', () => {
    const scorer = new PrefixCacheScorer('prefix', parameters, NOOP_SCHEDULING_METRICS);
    route(scorer, 'aaaabbbb', [podA], podA);
    expect(scorer.score(cycle('aaaabbbb', 'other-model'), [podA])).toEqual([0]);
  });

  it('forgets a removed endpoint', () => {
    const scorer = new PrefixCacheScorer('prefix', parameters, NOOP_SCHEDULING_METRICS);
    route(scorer, 'aaaabbbb', [podA], podA);
    scorer.removeEndpoint(podA.endpoint.key);
    expect(scorer.score(cycle('aaaabbbb'), [podA])).toEqual([0]);
    expect(scorer.stats().indexEntries).toBe(0);
  });

  /** A candidate whose scraped cache_config_info says it holds `numGpuBlocks` blocks of `blockSize` tokens. */
  function sized(name: string, numGpuBlocks: number, blockSize?: number): EndpointSnapshot {
    const base = pod(name);
    return { ...base, metrics: { ...EMPTY_METRICS, numGpuBlocks, ...(blockSize !== undefined ? { blockSize } : {}) } };
  }

  it('sizes each pod from num_gpu_blocks × block_size tokens in character blocks, lruCapacityPerServer until scraped', () => {
    const scorer = new PrefixCacheScorer('prefix', parameters, NOOP_SCHEDULING_METRICS);
    scorer.addEndpoint(podC.endpoint);
    scorer.score(cycle('aaaa'), [sized('a', 10, 16), sized('b', 10), podC]);
    // 10 blocks × 16 tokens × 4 characters a token ÷ 4-character index blocks.
    expect(scorer.index.capacityOf('a:8000')).toBe(160);
    expect(scorer.index.capacityOf('b:8000')).toBe(160); // no block_size: vLLM's default 16
    expect(scorer.index.capacityOf('c:8000')).toBe(100); // not scraped yet: lruCapacityPerServer
    expect(indexCapacityFor(10, 32, 64)).toBe(20);
    expect(indexCapacityFor(1, 16, 64)).toBe(1);
    expect(indexCapacityFor(3, 16, 128)).toBe(2); // rounded up
  });

  it('follows num_gpu_blocks as it changes: a shrunk pod keeps only its most recent blocks', () => {
    const scorer = new PrefixCacheScorer('prefix', { ...parameters, hashBlockSize: 64 }, NOOP_SCHEDULING_METRICS);
    const first = 'a'.repeat(64) + 'b'.repeat(64) + 'c'.repeat(64) + 'd'.repeat(64);
    const second = 'w'.repeat(64) + 'x'.repeat(64) + 'y'.repeat(64) + 'z'.repeat(64);
    route(scorer, first, [sized('a', 8, 16)], sized('a', 8, 16));
    route(scorer, second, [sized('a', 8, 16)], sized('a', 8, 16));
    expect(scorer.stats().indexEntries).toBe(8);
    expect(scorer.score(cycle(first), [sized('a', 8, 16)])).toEqual([1]);
    // vLLM restarted with half the KV cache: the first prompt, the older, is evicted.
    expect(scorer.score(cycle(first), [sized('a', 4, 16)])).toEqual([0]);
    expect(scorer.score(cycle(second), [sized('a', 4, 16)])).toEqual([1]);
    expect(scorer.stats().indexEntries).toBe(4);
    // And with more: room for both again.
    route(scorer, first, [sized('a', 16, 16)], sized('a', 16, 16));
    expect(scorer.index.capacityOf('a:8000')).toBe(16);
    expect(scorer.score(cycle(second), [sized('a', 16, 16)])).toEqual([1]);
    expect(scorer.score(cycle(first), [sized('a', 16, 16)])).toEqual([1]);
  });

  it('capacityFactor keeps that many times the KV cache\'s blocks, so a prompt the pod evicted still names its pod', () => {
    const first = 'a'.repeat(64) + 'b'.repeat(64) + 'c'.repeat(64) + 'd'.repeat(64);
    const second = 'w'.repeat(64) + 'x'.repeat(64) + 'y'.repeat(64) + 'z'.repeat(64);
    const at = (capacityFactor: number) => {
      const scorer = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 64, lruCapacityPerServer: 100, capacityFactor }), NOOP_SCHEDULING_METRICS);
      // 4 KV blocks of 16 tokens: one 4-block prompt at a time in the pod's vLLM.
      route(scorer, first, [sized('a', 4, 16)], sized('a', 4, 16));
      route(scorer, second, [sized('a', 4, 16)], sized('a', 4, 16));
      return { capacity: scorer.index.capacityOf('a:8000'), first: scorer.score(cycle(first), [sized('a', 4, 16)])[0] };
    };
    expect(at(1)).toEqual({ capacity: 4, first: 0 }); // GIE's autoTune: forgotten with the pod's eviction
    expect(at(2)).toEqual({ capacity: 8, first: 1 });
    expect(at(1.5)).toEqual({ capacity: 6, first: 0 }); // 2 of the first prompt's 4 blocks kept, but not the leading ones
    // Still within maxIndexEntries.
    const bounded = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 64, capacityFactor: 4, maxIndexEntries: 10 }), NOOP_SCHEDULING_METRICS);
    bounded.score(cycle(first), [sized('a', 4, 16)]);
    expect(bounded.index.capacityOf('a:8000')).toBe(10);
    expect(() => resolvePluginParameters('prefix-cache-scorer', { capacityFactor: 0.5 })).toThrow(/capacityFactor: must be a number between 1 and 64, got 0\.5/);
    expect(() => resolvePluginParameters('prefix-cache-scorer', { capacityFactor: 2, autoTune: false })).toThrow(/capacityFactor: multiplies the sizes autoTune learns; with autoTune: false give lruCapacityPerServer instead \(got 2\)/);
    expect(resolvePluginParameters('prefix-cache-scorer', { capacityFactor: 1, autoTune: false })).toMatchObject({ capacityFactor: 1, autoTune: false });
  });

  describe('learnCharactersPerToken: capacities at the prompts\' own characters per token (vllm:request_prompt_tokens)', () => {
    /** A pod of 100 KV blocks of 16 tokens whose vLLM has finished `count` requests of `sum` prompt tokens in all. */
    const served = (count: number, sum: number): EndpointSnapshot => ({
      ...pod('a'),
      metrics: { ...EMPTY_METRICS, numGpuBlocks: 100, blockSize: 16, promptTokensCount: count, promptTokensSum: sum },
    });
    /** Routes 80 distinct prompts of 480 characters (7.5 index blocks of 64) to the pod, then lets it report them. */
    const learn = (params: Record<string, unknown>) => {
      const scorer = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 64, ...params }), NOOP_SCHEDULING_METRICS);
      scorer.score(cycle('x'), [served(0, 0)]);
      const before = scorer.index.capacityOf('a:8000');
      for (let i = 0; i < 80; i++) route(scorer, `${i}`.padStart(480, '.'), [served(0, 0)], served(0, 0));
      // The pod finished them: 100 tokens each, 4.8 characters a token.
      scorer.score(cycle('x'), [served(80, 8000)]);
      return { before, after: scorer.index.capacityOf('a:8000'), stats: scorer.stats() };
    };

    it('with learnCharactersPerToken, grows a pod\'s index by the ratio learnt: 100 blocks × 16 tokens × 4.8 characters ÷ 64', () => {
      const { before, after, stats } = learn({ learnCharactersPerToken: true });
      expect(before).toBe(100); // 4 characters a token until learnt (GIE's averageCharactersPerToken)
      expect(after).toBe(120);
      expect(stats.charactersPerToken).toBeCloseTo(4.8, 10);
      expect(stats.learntCharactersPerToken).toBeCloseTo(4.8, 10);
    });

    it('by default (and with false) learns and publishes the ratio but sizes at GIE\'s 4; without autoTune neither', () => {
      const published: number[] = [];
      const metrics: SchedulingMetrics = { ...NOOP_SCHEDULING_METRICS, setPrefixCharactersPerToken: (v) => published.push(v) };
      const scorer = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 64 }), metrics);
      scorer.score(cycle('x'), [served(0, 0)]);
      for (let i = 0; i < 80; i++) route(scorer, `${i}`.padStart(480, '.'), [served(0, 0)], served(0, 0));
      scorer.score(cycle('x'), [served(80, 8000)]);
      expect(scorer.index.capacityOf('a:8000')).toBe(100);
      expect(scorer.stats()).toMatchObject({ charactersPerToken: 4 });
      expect(scorer.stats().learntCharactersPerToken).toBeCloseTo(4.8, 10);
      expect(published).toEqual([4, 4.8]);
      expect(learn({ learnCharactersPerToken: false })).toMatchObject({ before: 100, after: 100, stats: { charactersPerToken: 4 } });
      expect(resolvePluginParameters('prefix-cache-scorer', { autoTune: false, learnCharactersPerToken: true })).toMatchObject({ learnCharactersPerToken: false });
      expect(() => resolvePluginParameters('prefix-cache-scorer', { learnCharactersPerToken: 'yes' })).toThrow(/learnCharactersPerToken/);
    });

    it('counts every routed prompt, those shorter than one hashed block too (vLLM counts their tokens)', () => {
      const scorer = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 64 }), NOOP_SCHEDULING_METRICS);
      scorer.score(cycle('x'), [served(0, 0)]);
      // 40 short turns of 40 characters (10 tokens) and 40 documents of 4,000 (1,000 tokens): 4 characters a token.
      for (let i = 0; i < 40; i++) route(scorer, `${i}`.padStart(40, '.'), [served(0, 0)], served(0, 0));
      for (let i = 0; i < 40; i++) route(scorer, `${i}`.padStart(4000, '-'), [served(0, 0)], served(0, 0));
      scorer.score(cycle('x'), [served(80, 40 * 10 + 40 * 1000)]);
      expect(scorer.stats().learntCharactersPerToken).toBeCloseTo(4, 10);
    });

    it('resizes only when the ratio moves by more than a tenth', () => {
      const scorer = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 64, learnCharactersPerToken: true }), NOOP_SCHEDULING_METRICS);
      scorer.score(cycle('x'), [served(0, 0)]);
      for (let i = 0; i < 80; i++) route(scorer, `${i}`.padStart(430, '.'), [served(0, 0)], served(0, 0));
      // 4.3 characters a token: within a tenth of 4.
      scorer.score(cycle('x'), [served(80, 8000)]);
      expect(scorer.index.capacityOf('a:8000')).toBe(100);
      expect(scorer.stats().charactersPerToken).toBe(4);
    });
  });

  describe('the hashed block size (GIE v1.5.0 approximateprefix/plugin.go GetBlockSize: under autoTune the first candidate\'s vLLM block_size, the configured size only until scraped)', () => {
    /** 16 blocks of 64 distinct characters, so every block size cuts distinct blocks. */
    const prompt = Array.from({ length: 16 }, (_, i) => String.fromCharCode(65 + i).repeat(64)).join('');
    const blocksHashed = (params: Record<string, unknown>, candidate: EndpointSnapshot): number => {
      const scorer = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', params), NOOP_SCHEDULING_METRICS);
      route(scorer, prompt, [candidate], candidate);
      return scorer.stats().indexEntries;
    };

    it('GIE\'s guide config (blockSizeTokens: 5): 20-character blocks until the pod is scraped, then its 16-token blocks (64 characters)', () => {
      expect(blocksHashed({ blockSizeTokens: 5 }, podA)).toBe(Math.floor(prompt.length / 20));
      expect(blocksHashed({ blockSizeTokens: 5 }, sized('a', 1000, 16))).toBe(prompt.length / 64);
      expect(blocksHashed({ blockSizeTokens: 5 }, sized('a', 1000, 32))).toBe(prompt.length / 128);
      // No block size at all (GIE's chart default): the same.
      expect(blocksHashed({}, sized('a', 1000, 32))).toBe(prompt.length / 128);
    });

    it('kvroute\'s hashBlockSize stays fixed, and so does any size with autoTune: false', () => {
      expect(blocksHashed({ hashBlockSize: 20 }, sized('a', 1000, 16))).toBe(Math.floor(prompt.length / 20));
      expect(blocksHashed({ blockSizeTokens: 5, autoTune: false }, sized('a', 1000, 16))).toBe(Math.floor(prompt.length / 20));
      expect(resolvePluginParameters('prefix-cache-scorer', { blockSizeTokens: 5, autoTune: false })).toMatchObject({ tuneBlockSize: false });
    });

    it('maxPrefixTokensToMatch is divided by the block size of each request (plugin.go PrepareRequestData)', () => {
      // 128 tokens: 8 blocks of 16 tokens, 4 of 32; the window cuts this prompt short, so its tail probes are recorded
      // beside it (kvroute's, for the cached length past the window; hashTailProbes).
      expect(blocksHashed({ maxPrefixTokensToMatch: 128 }, sized('a', 1000, 16))).toBe(8 + hashTailProbes(0, prompt, 8 * 64, 64).keys.length);
      expect(blocksHashed({ maxPrefixTokensToMatch: 128 }, sized('a', 1000, 32))).toBe(4 + hashTailProbes(0, prompt, 4 * 128, 128).keys.length);
      // Past the window at +1, +2, +4, +8 blocks; before the end at -0, -1, -2, -4 blocks (deduplicated, ascending).
      expect(hashTailProbes(0, prompt, 8 * 64, 64).ends).toEqual([576, 640, 768, 896, 960, 1024]);
      // A window under one block hashes none: GIE's integer division gives 0 blocks, and no prefix scoring.
      expect(blocksHashed({ maxPrefixTokensToMatch: 8 }, sized('a', 1000, 16))).toBe(0);
    });

    it('a tuned pod\'s index holds one entry a KV block (makeserver: NumOfGPUBlocks)', () => {
      const scorer = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { blockSizeTokens: 5 }), NOOP_SCHEDULING_METRICS);
      scorer.score(cycle('x'), [sized('a', 10, 32)]);
      expect(scorer.index.capacityOf('a:8000')).toBe(10);
    });
  });

  it('keeps lruCapacityPerServer for every pod with autoTune: false', () => {
    const scorer = new PrefixCacheScorer('prefix', { ...parameters, autoTune: false }, NOOP_SCHEDULING_METRICS);
    route(scorer, 'aaaabbbb', [sized('a', 10, 16)], sized('a', 10, 16));
    expect(scorer.index.capacityOf('a:8000')).toBe(100);
  });

  it('bounds the whole index by maxIndexEntries across 64 pods, and gives the share of removed pods back', () => {
    const scorer = new PrefixCacheScorer('prefix', { ...parameters, hashBlockSize: 64, maxIndexEntries: 1000 }, NOOP_SCHEDULING_METRICS);
    const pods = Array.from({ length: 64 }, (_, i) => sized(`p${i}`, 100, 16)); // 100 entries each, 6,400 in all
    let n = 0;
    for (let round = 0; round < 20; round++) {
      for (const target of pods) {
        const prompt = Array.from({ length: 8 }, () => `${n++}`.padStart(64, '.')).join('');
        route(scorer, prompt, pods, target);
        expect(scorer.stats().indexEntries).toBeLessThanOrEqual(1000);
      }
    }
    // floor(100 × 1000 / 6400) = 15 each, all full after 160 blocks apiece.
    expect(pods.map((p) => scorer.index.capacityOf(p.endpoint.key))).toEqual(pods.map(() => 15));
    expect(scorer.stats().indexEntries).toBe(64 * 15);
    for (const gone of pods.slice(32)) scorer.removeEndpoint(gone.endpoint.key);
    expect(scorer.index.capacityOf('p0:8000')).toBe(31); // floor(100 × 1000 / 3200)
    expect(scorer.stats()).toMatchObject({ indexEntries: 32 * 15, indexedEndpoints: 32 });
  });

  it('logs once when the budget starts and stops binding', () => {
    const lines: string[] = [];
    const logger = { ...SILENT_PLUGIN_LOGGER, info: (msg: string) => lines.push(msg) };
    const scorer = new PrefixCacheScorer('prefix', { ...parameters, maxIndexEntries: 250 }, NOOP_SCHEDULING_METRICS, logger);
    scorer.addEndpoint(podA.endpoint);
    scorer.addEndpoint(podB.endpoint);
    expect(lines).toEqual([]);
    scorer.addEndpoint(podC.endpoint);
    scorer.removeEndpoint(podC.endpoint.key);
    expect(lines).toEqual([
      expect.stringContaining('prefix index budget reached'),
      expect.stringContaining('prefix index fits maxIndexEntries again'),
    ]);
  });

  it('reports the index size and the hit ratio of its picks', () => {
    const recorded: string[] = [];
    const metrics: SchedulingMetrics = {
      ...NOOP_SCHEDULING_METRICS,
      setPrefixIndexerSize: (entries) => recorded.push(`size ${entries}`),
      observePrefixMatch: (matched, total) => recorded.push(`match ${matched}/${total}`),
    };
    const scorer = new PrefixCacheScorer('prefix', parameters, metrics);
    route(scorer, 'aaaabbbbcccc', [podA, podB], podA);
    route(scorer, 'aaaabbbbdddd', [podA, podB], podA);
    expect(recorded).toEqual(['match 0/12', 'size 3', 'match 8/12', 'size 4']);
    expect(scorer.stats()).toEqual({ indexEntries: 4, indexedEndpoints: 1, picks: 2, hitRatio: 2 / 6, charactersPerToken: 4, learntCharactersPerToken: 4 });
  });
});

// llm-d-router v0.10.0 pkg/epp/framework/plugins/scheduling/scorer/prefix/plugin.go (Score, PrefixCachePluginFactory)
// and plugin_test.go: score = w·min(1, matchBlocks·blockSizeTokens/scale)² + (1−w)·matchBlocks/totalBlocks.
describe('matchLengthWeight and matchLengthScaleTokens (llm-d-router v0.10.0 scorer/prefix/plugin.go)', () => {
  /** `blocks` 4-character blocks; blocks before `shared` are the common head. */
  const blocksOf = (tag: string, blocks: number, shared = 0) => Array.from({ length: blocks }, (_, i) => (i < shared ? `h${String(i).padStart(3, '0')}` : `${tag}${String(i).padStart(3, '0')}`)).join('');

  test('the formula, on plugin_test.go\'s vectors', () => {
    // TestPrefixPluginScore: the default weight 0 is the matched share.
    expect(matchLengthScore(5, 10, 1, 0, 8192)).toBe(0.5);
    expect(matchLengthScore(2, 10, 1, 0, 8192)).toBe(0.2);
    // TestPrefixPluginScoreWithWeights: weight 0.5, scale 100, block size 1.
    expect(matchLengthScore(5, 10, 1, 0.5, 100)).toBeCloseTo(0.25125, 6);
    expect(matchLengthScore(50, 100, 1, 0.5, 100)).toBeCloseTo(0.375, 6);
    // The length term saturates at the scale; an unknown block size (0) leaves it out; no blocks score 0.
    expect(matchLengthScore(8, 10, 16, 1, 64)).toBe(1);
    expect(matchLengthScore(5, 10, 0, 0.5, 100)).toBe(0.25);
    expect(matchLengthScore(0, 0, 16, 0.5, 100)).toBe(0);
  });

  function scorerWith(params: Record<string, unknown>) {
    // 4-character blocks, 1 token each (4 characters a token): plugin_test.go's block size of 1.
    return new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 4, lruCapacityPerServer: 1000, ...params }), NOOP_SCHEDULING_METRICS);
  }
  function served(scorer: PrefixCacheScorer, prompt: string, picked: EndpointSnapshot) {
    const context = cycle(prompt);
    scorer.score(context, [picked]);
    scorer.postCycle(context, { targets: [picked], scores: new Map() });
  }

  test('the approximate scorer scores plugin_test.go\'s endpoints: 5 of 10 blocks matched and 50 of 100, the same share, the longer match higher', () => {
    const scorer = scorerWith({ matchLengthWeight: 0.5, matchLengthScaleTokens: 100 });
    served(scorer, blocksOf('p', 5, 5), podA);
    served(scorer, blocksOf('p', 50, 50), podB);
    expect(scorer.score(cycle(blocksOf('q', 10, 5)), [podA, podC])).toEqual([expect.closeTo(0.25125, 9), 0]);
    expect(scorer.score(cycle(blocksOf('r', 100, 50)), [podB, podC])).toEqual([expect.closeTo(0.375, 9), 0]);
    // Weight 0 (the default): the share alone, as before the parameters.
    const plain = scorerWith({});
    served(plain, blocksOf('p', 5, 5), podA);
    expect(plain.score(cycle(blocksOf('q', 10, 5)), [podA])).toEqual([0.5]);
  });

  test('a tuned scorer counts the pods\' own block size in tokens; a whole prompt matched but shorter than the scale scores below 1', () => {
    const tuned = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', { blockSizeTokens: 16, matchLengthWeight: 0.5, matchLengthScaleTokens: 256 }), NOOP_SCHEDULING_METRICS);
    const pod16 = { ...podA, metrics: { ...EMPTY_METRICS, blockSize: 16 } };
    const text = (n: number, tail: string) => Array.from({ length: n }, (_, i) => `shared ${i} `.padEnd(64, '.')).join('') + tail.padEnd(64 * 4, tail);
    // 8 blocks of 16 tokens (64 characters) held, of 12: 128 tokens of a 256-token scale.
    served(tuned, text(8, 'x'), pod16);
    expect(tuned.score(cycle(text(8, 'y')), [pod16])).toEqual([expect.closeTo(0.5 * (128 / 256) ** 2 + 0.5 * (8 / 12), 9)]);
    // All 12 blocks (192 tokens): the share is 1, the length term (192/256)².
    served(tuned, text(8, 'y'), pod16);
    expect(tuned.score(cycle(text(8, 'y')), [pod16])).toEqual([0.5 * (192 / 256) ** 2 + 0.5]);
  });

  // TestPrefixPluginFactoryValidation, and its messages; the precise scorer (llm-d's producer form) reads them alike.
  test.each(['prefix-cache-scorer', 'precise-prefix-cache-scorer'] as const)('%s: the parameters, their defaults and upstream\'s checks', (type) => {
    const read = (params: Record<string, unknown>) => {
      const { matchLengthWeight, matchLengthScaleTokens } = resolvePluginParameters(type, params);
      return [matchLengthWeight, matchLengthScaleTokens];
    };
    expect(read({})).toEqual([0, 8192]);
    expect(read({ matchLengthWeight: 0.5, matchLengthScaleTokens: 100 })).toEqual([0.5, 100]);
    expect(read({ matchLengthWeight: 0.5 })).toEqual([0.5, 8192]);
    expect(read({ matchLengthWeight: 0 })).toEqual([0, 8192]);
    // A Go int, checked only under a positive weight.
    expect(read({ matchLengthWeight: 0, matchLengthScaleTokens: -5 })).toEqual([0, -5]);
    expect(() => read({ matchLengthWeight: -0.1, matchLengthScaleTokens: 100 })).toThrow('parameters.matchLengthWeight: matchLengthWeight must be between 0.0 and 1.0, got -0.100000');
    expect(() => read({ matchLengthWeight: 1.1, matchLengthScaleTokens: 100 })).toThrow('parameters.matchLengthWeight: matchLengthWeight must be between 0.0 and 1.0, got 1.100000');
    expect(() => read({ matchLengthWeight: 0.5, matchLengthScaleTokens: 0 }))
      .toThrow('parameters.matchLengthScaleTokens: matchLengthScaleTokens must be greater than 0 when matchLengthWeight is greater than 0, got 0');
    expect(() => read({ matchLengthWeight: '0.5' })).toThrow('parameters.matchLengthWeight: must be a number between 0.0 and 1.0, got "0.5"');
    expect(() => read({ matchLengthScaleTokens: 1.5 })).toThrow('parameters.matchLengthScaleTokens: must be an integer, got 1.5');
  });
});

/**
 * Media parts are part of the approximate key, at their place in the message: GIE v1.5.0
 * `pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix/hashing.go` getUserInputBytes hashes
 * `json.Marshal(Messages)` (image URLs included); llm-d-router v0.10.0 `dataproducer/tokenizer/estimate.go`
 * appendChatMessage → appendMMAsset puts placeholder tokens hashed from the URL (an input_audio's data and format).
 * Until 2026-12-06 kvroute's prompt dropped them, so a chat that differed only in its image scored a full hit.
 */
describe('prefix-cache-scorer: media parts in the approximate key', () => {
  const chatCycle = (content: unknown[]): CycleContext => {
    const parsed = parseRequestBody(Buffer.from(JSON.stringify({ model: 'llava', messages: [{ role: 'user', content }] })), '/v1/chat/completions');
    return { request: { requestId: 'r', model: 'llava', prompt: parsed.prompt, input: parsed.input, headers: {} } as CycleContext['request'], state: new CycleState() };
  };
  const question = { type: 'text', text: 'Describe this picture in detail, please. '.repeat(100) };
  const served = (first: CycleContext): PrefixCacheScorer => {
    const scorer = new PrefixCacheScorer('prefix', resolvePluginParameters('prefix-cache-scorer', {}), NOOP_SCHEDULING_METRICS);
    scorer.score(first, [podA, podB]);
    scorer.postCycle(first, { targets: [podA], scores: new Map() });
    return scorer;
  };

  test.each([
    ['image_url', (u: string) => ({ type: 'image_url', image_url: { url: `https://example.com/${u}.png` } })],
    ['video_url', (u: string) => ({ type: 'video_url', video_url: { url: `https://example.com/${u}.mp4` } })],
    ['input_audio', (u: string) => ({ type: 'input_audio', input_audio: { data: Buffer.from(u).toString('base64'), format: 'wav' } })],
  ])('a chat whose only difference is its %s part shares no block with the other; the same one is a full hit', (_type, part) => {
    const scorer = served(chatCycle([part('cat'), question]));
    expect(scorer.score(chatCycle([part('cat'), question]), [podA, podB])).toEqual([1, 0]);
    expect(scorer.score(chatCycle([part('dog'), question]), [podA, podB])).toEqual([0, 0]);
  });

  test('text-only content keeps its key: parts joined, as a string content of the same text', () => {
    const parts = parseRequestBody(Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }] })));
    expect(parts.prompt).toBe('<|im_start|>user\nab<|im_end|>\n');
  });

  test('the image sits where it was sent: text before it still matches, the text after it does not', () => {
    const before = { type: 'text', text: 'Shared instructions before the picture. '.repeat(50) };
    const scorer = served(chatCycle([before, { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }, question]));
    const [onA] = scorer.score(chatCycle([before, { type: 'image_url', image_url: { url: 'https://example.com/dog.png' } }, question]), [podA, podB]);
    expect(onA).toBeGreaterThan(0.3);
    expect(onA).toBeLessThan(0.6);
  });
});

/**
 * A batch (`prompt` or `input` as a list of strings or of token-id lists) is keyed prompt by prompt, as llm-d-router
 * v0.10.0 keys it: `dataproducer/prefixhash/hashing.go` GetBlockHashes hashes each of `TokenizedPrompt.PerPromptTokens`
 * on its own (its first block seeded with the model and cache salt, no chaining across prompts);
 * `dataproducer/approximateprefix/plugin.go` Produce sums each prompt's matched blocks per pod over the sum of their
 * blocks, and PreRequest adds every prompt's hashes to the index for the pick. vLLM serves each prompt of a batch as an
 * engine request of its own (serving_engine.py @ v0.10.0 `_tokenize_prompt_inputs`). Until session 65 a batch was
 * keyed by its first prompt alone.
 */
describe('prefix-cache-scorer: a batch of prompts, each keyed on its own (llm-d-router v0.10.0 prefixhash/hashing.go, approximateprefix/plugin.go)', () => {
  const parameters = resolvePluginParameters('prefix-cache-scorer', { hashBlockSize: 4, lruCapacityPerServer: 100 });
  const completion = (prompt: unknown): CycleContext => {
    const parsed = parseRequestBody(Buffer.from(JSON.stringify({ model: 'llama', prompt })), '/v1/completions');
    return { request: { requestId: 'r', model: 'llama', prompt: parsed.prompt, input: parsed.input, headers: {} }, state: new CycleState() };
  };
  const routed = (scorer: PrefixCacheScorer, context: CycleContext, picked: EndpointSnapshot): number[] => {
    const scores = scorer.score(context, [podA, podB, podC]);
    scorer.postCycle(context, { targets: [picked], scores: new Map() });
    return scores;
  };
  const A = 'aaaabbbbcccc'; // 3 blocks
  const B = 'wwwwxxxx'; // 2 blocks
  const C = 'ppppqqqqrrrrssss'; // 4 blocks

  test('after a batch [A, B] routed to a pod, B alone is a full hit there: every prompt is recorded on the pick', () => {
    const scorer = new PrefixCacheScorer('prefix', parameters, NOOP_SCHEDULING_METRICS);
    expect(routed(scorer, completion([A, B]), podA)).toEqual([0, 0, 0]);
    expect(scorer.score(completion(B), [podA, podB, podC])).toEqual([1, 0, 0]);
    expect(scorer.score(completion(A), [podA, podB, podC])).toEqual([1, 0, 0]);
  });

  test('a batch [A, C] against A on one pod and C on another scores both: each pod\'s matched blocks over all the batch\'s blocks', () => {
    const scorer = new PrefixCacheScorer('prefix', parameters, NOOP_SCHEDULING_METRICS);
    routed(scorer, completion(A), podA);
    routed(scorer, completion(C), podB);
    const context = completion([A, C]);
    expect(scorer.score(context, [podA, podB, podC])).toEqual([3 / 7, 4 / 7, 0]);
    expect(scorer.matchRatios({ request: context.request, state: new CycleState() }, [podA, podB, podC])).toEqual([3 / 7, 4 / 7, 0]);
    // What the latency scorer and the P/D decider read: the whole batch's characters, and each pod's held ones summed.
    const match = context.state.get(PREFIX_MATCH)!;
    expect(match.promptLength).toBe(A.length + C.length);
    expect(new Map(match.cachedLength)).toEqual(new Map([[podA.endpoint.key, A.length], [podB.endpoint.key, C.length]]));
    // The prompt tokens left to prefill (the latency scorer's, prefill-priority's, the in-flight load's): the other
    // prompt's on each holder; with no match, every prompt's.
    expect(uncachedPromptTokens(context.request, match, podA.endpoint.key, 4)).toBe(C.length / 4);
    expect(uncachedPromptTokens(context.request, match, podC.endpoint.key, 4)).toBe((A.length + C.length) / 4);
    expect(uncachedPromptTokens(context.request, undefined, podA.endpoint.key, 4)).toBe((A.length + C.length) / 4);
    // A prompt's blocks are chained from the model alone, not from the prompt before it: [C, A] matches the same.
    expect(scorer.score(completion([C, A]), [podA, podB, podC])).toEqual([3 / 7, 4 / 7, 0]);
  });

  test('a batch of token-id lists is keyed list by list (each as the text of its ids, as a single token-id prompt is)', () => {
    const scorer = new PrefixCacheScorer('prefix', parameters, NOOP_SCHEDULING_METRICS);
    const first = Array.from({ length: 8 }, (_, i) => 100 + i);
    const second = Array.from({ length: 8 }, (_, i) => 200 + i);
    routed(scorer, completion([first, second]), podC);
    expect(scorer.score(completion(second), [podA, podB, podC])).toEqual([0, 0, 1]);
  });
});
