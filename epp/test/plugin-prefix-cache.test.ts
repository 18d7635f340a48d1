import { resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, type CycleContext } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS, type SchedulingMetrics } from '../src/scheduling/metrics-hooks';
import { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { hashPromptBlocks } from '../src/scheduling/plugins/prefix-hash';
import { PrefixBlockIndex } from '../src/scheduling/plugins/prefix-index';

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
    const index = new PrefixBlockIndex(100);
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
    const index = new PrefixBlockIndex(100);
    index.record('a', [1, 2]);
    index.record('b', [1, 2]);
    expect(index.longestPrefixMatches([1, 2], new Set(['b']))).toEqual(new Map([['b', 2]]));
  });

  it('evicts the least recently recorded block beyond the per-endpoint capacity', () => {
    const index = new PrefixBlockIndex(3);
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
    const index = new PrefixBlockIndex(2);
    index.record('a', [1, 2, 3, 4]);
    expect(index.blocksOf('a')).toEqual([3, 4]);
    expect(index.size).toBe(2);
  });

  it('removeEndpoint drops every entry of that endpoint only', () => {
    const index = new PrefixBlockIndex(10);
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

  it('caps the match at maxPrefixBlocksToMatch and scores prompts shorter than a block 0', () => {
    const scorer = new PrefixCacheScorer('prefix', { ...parameters, maxPrefixBlocksToMatch: 2 }, NOOP_SCHEDULING_METRICS);
    route(scorer, 'aaaabbbbcccc', [podA], podA);
    expect(scorer.score(cycle('aaaabbbbzzzz'), [podA, podB])).toEqual([1, 0]);
    expect(scorer.score(cycle('aaa'), [podA, podB])).toEqual([0, 0]);
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
    expect(scorer.stats()).toEqual({ indexEntries: 4, indexedEndpoints: 1, picks: 2, hitRatio: 2 / 6 });
  });
});
