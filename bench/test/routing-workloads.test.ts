import {
  blockKeys, buildChats, buildSharedPrefix, measureWorkload, poissonArrivals, simTokenizer, sizedText, type BenchWorkload, type TokenizerLike,
} from '../src/routing-workloads';
import { rng } from '../src/workload';
import type { ChatMessage } from '../src/workload';

/** One token per character of the message contents, concatenated; replies are n × token 1 ("x"). */
const charTokenizer: TokenizerLike = {
  count: (t) => t.length,
  chatTokens: (messages) => Array.from(messages.map((m) => m.content).join(''), (c) => c.charCodeAt(0)),
  reply: (n) => ({ ids: Array(n).fill(1), text: 'x'.repeat(n) }),
};

function handMade(prompts: [string, string][], groupOf: number[], maxTokens: number): BenchWorkload {
  const requests: ChatMessage[][] = prompts.map(([s, q]) => [{ role: 'system', content: s }, { role: 'user', content: q }]);
  return {
    name: 'high-cache',
    kind: 'shared-prefix',
    description: 'hand-made',
    workload: {
      options: { seed: 0, systemPrompts: 0, systemPromptWords: 0, sessions: 0, turnsPerSession: 0, userWords: 0, maxTokens, documents: 0, documentWords: 0, ragRequests: 0, questionWords: 0 },
      sessions: [],
      rag: [],
      totalRequests: prompts.length,
    },
    groups: { G: Math.max(...groupOf) + 1, P: 2 },
    requests,
    groupOf,
  };
}

describe('working set and replay, by hand (one token per character, blocks of 4)', () => {
  test('blocks are keyed by their whole prefix', () => {
    const a = blockKeys([1, 2, 3, 4, 5, 6, 7, 8, 9], 4);
    expect(a).toHaveLength(2); // the partial ninth token is not a block
    const b = blockKeys([1, 2, 3, 4, 9, 9, 9, 9], 4);
    expect(b[0]).toBe(a[0]);
    expect(b[1]).not.toBe(a[1]);
    // The same second block after a different first block is a different block.
    expect(blockKeys([0, 2, 3, 4, 5, 6, 7, 8], 4)[1]).not.toBe(a[1]);
  });

  test('distinct blocks, reused blocks, shared prefix and the in-order replay hit rate', () => {
    const w = handMade([['AAAAAAAA', 'x1'], ['AAAAAAAA', 'y2'], ['BBBBBBBB', 'z3'], ['BBBBBBBB', '']], [0, 0, 1, 1], 1);
    const s = measureWorkload(w, charTokenizer, 4);
    // AAAA, AAAA·AAAA, BBBB, BBBB·BBBB: the 2-token tails never fill a block.
    expect(s.workingSetBlocks).toBe(4);
    expect(s.reusedBlocks).toBe(4);
    expect(s.promptTokens).toBe(38);
    expect(s.maxPromptTokens).toBe(10);
    expect(s.maxSequenceTokens).toBe(11);
    expect(s.sharedPrefixTokens).toBe(8);
    expect(s.uniqueTokens).toBeCloseTo(38 / 4 - 8, 12);
    // Request 2 hits both A blocks (8 tokens). Request 4 is fully cached but vLLM computes its last token, so only
    // ⌊(8 − 1) / 4⌋ = 1 block hits.
    expect(s.replayHitRate).toBeCloseTo((8 + 4) / 38, 12);
  });

  test('replies count toward the working set (all but the last generated token)', () => {
    const w = handMade([['AAAAAAAA', 'x1'], ['AAAAAAAA', 'y2']], [0, 0], 7);
    // Each sequence is 10 prompt + 6 reply tokens = 4 blocks; the last two differ per request.
    expect(measureWorkload(w, charTokenizer, 4).workingSetBlocks).toBe(2 + 2 + 2);
  });
});

describe('generators with the simulator\'s tokenizer', () => {
  let tok: TokenizerLike;
  beforeAll(() => {
    tok = simTokenizer();
  });

  test('sizedText takes the fewest words that reach the target', () => {
    for (const target of [17, 64, 300]) {
      const t = sizedText(rng(target), target, 'Lead: ', tok.count);
      expect(tok.count(t)).toBeGreaterThanOrEqual(target);
      expect(tok.count(t.slice(0, t.lastIndexOf(' ')))).toBeLessThan(target);
    }
    expect(sizedText(rng(5), 40, '', tok.count)).toBe(sizedText(rng(5), 40, '', tok.count));
  });

  test('shared-prefix groups: G × P requests, one system prompt per group, unique questions and users, shuffled', () => {
    const o = { seed: 3, groups: 3, promptsPerGroup: 4, systemTokens: 120, questionTokens: 20, outputTokens: 4 };
    const w = buildSharedPrefix('high-cache', o, tok);
    expect(w.workload.totalRequests).toBe(12);
    expect(w.requests).toHaveLength(12);
    expect(w.workload.options.maxTokens).toBe(4);
    expect(w.groups).toEqual({ G: 3, P: 4 });
    const systems = new Map<number, Set<string>>();
    w.workload.rag.forEach((r) => {
      if (!systems.has(r.document)) systems.set(r.document, new Set());
      systems.get(r.document)!.add(r.messages[0].content);
      expect(r.messages.map((m) => m.role)).toEqual(['system', 'user']);
    });
    expect([...systems.values()].map((s) => s.size)).toEqual([1, 1, 1]);
    expect(new Set([...systems.values()].map((s) => [...s][0])).size).toBe(3);
    for (const s of systems.values()) expect(tok.count([...s][0])).toBeGreaterThanOrEqual(120);
    expect(new Set(w.workload.rag.map((r) => r.messages[1].content)).size).toBe(12);
    expect(new Set(w.workload.rag.map((r) => r.headers?.['x-session-id'])).size).toBe(12);
    // Shuffled: not group by group.
    expect(w.groupOf).not.toEqual([...w.groupOf!].sort((a, b) => a - b));
    // Deterministic from the seed.
    expect(buildSharedPrefix('high-cache', o, tok)).toEqual(w);
    expect(buildSharedPrefix('high-cache', { ...o, seed: 4 }, tok).requests).not.toEqual(w.requests);
    expect(buildSharedPrefix('low-cache', o, tok).requests).not.toEqual(w.requests);
    expect(() => buildSharedPrefix('high-cache', { ...o, groups: 0 }, tok)).toThrow(/groups must be a positive integer/);
  });

  test('shared-prefix staggered order: the same requests, groups starting over the whole run instead of crowding its start', () => {
    const o = { seed: 7, groups: 32, promptsPerGroup: 4, systemTokens: 8, questionTokens: 4, outputTokens: 2 };
    const shuffled = buildSharedPrefix('poisson-groups', o, tok);
    const staggered = buildSharedPrefix('poisson-groups', o, tok, 'staggered');
    const key = (r: { messages: readonly { content: string }[] }) => r.messages.map((m) => m.content).join('|');
    expect(staggered.workload.rag.map(key).sort()).toEqual(shuffled.workload.rag.map(key).sort());
    expect(staggered.description).toMatch(/groups staggered over the run$/);
    expect(buildSharedPrefix('poisson-groups', o, tok, 'staggered')).toEqual(staggered);
    // A group's first request prefills its system prompt: count those (the cold ones) per quarter of the run.
    const coldByQuarter = (groupOf: readonly number[]) => {
      const seen = new Set<number>();
      const q = [0, 0, 0, 0];
      groupOf.forEach((g, i) => {
        if (!seen.has(g)) q[Math.floor((4 * i) / groupOf.length)]++;
        seen.add(g);
      });
      return q;
    };
    // Shuffled, most cold prefills come in the first quarter and none in the last.
    const before = coldByQuarter(shuffled.groupOf!);
    expect(before[0]).toBeGreaterThanOrEqual(16);
    expect(before[3]).toBe(0);
    // Staggered, every quarter carries some; none more than 40% of its requests (a quarter of the run holds 32).
    const after = coldByQuarter(staggered.groupOf!);
    expect(after.reduce((a, b) => a + b, 0)).toBe(32);
    for (const n of after) {
      expect(n).toBeGreaterThanOrEqual(3);
      expect(n).toBeLessThanOrEqual(13);
    }
    // Each group's requests span about a quarter of the run after its start slot, not the whole run, and start with its
    // prompt 0 (the key the group's slot places).
    const spans: number[] = [];
    for (let g = 0; g < 32; g++) {
      const at = staggered.groupOf!.flatMap((x, i) => (x === g ? [i] : []));
      expect(at).toHaveLength(4);
      expect(at[3]! - at[0]!).toBeLessThanOrEqual(0.4 * 128);
      expect(staggered.workload.rag[at[0]!]!.headers!['x-session-id']).toBe(`poisson-groups-g${g}-u0`);
      spans.push(at[3]! - at[0]!);
    }
    // The groups interleave (about 22 requests from a group's first to its last with seed 7), not back to back as built
    // (3), and start in random order, not 0, 1, 2, ...: the counts above hold for either.
    expect(spans.reduce((a, b) => a + b, 0) / spans.length).toBeGreaterThanOrEqual(0.1 * 128);
    const starts = [...new Set(staggered.groupOf!)];
    expect(starts).not.toEqual([...starts].sort((a, b) => a - b));
  });

  test('measured shapes: S and Q in tokens, and the working set in blocks', () => {
    const high = buildSharedPrefix('high-cache', { seed: 1, groups: 4, promptsPerGroup: 3, systemTokens: 256, questionTokens: 16, outputTokens: 8 }, tok);
    const s = measureWorkload(high, tok, 16);
    // The template adds a few tokens around the system prompt; the user turn starts the unique part.
    expect(s.sharedPrefixTokens!).toBeGreaterThanOrEqual(256);
    expect(s.sharedPrefixTokens!).toBeLessThan(256 + 30);
    expect(s.uniqueTokens!).toBeGreaterThanOrEqual(16);
    expect(s.uniqueTokens!).toBeLessThan(16 + 30);
    // Each group's shared whole blocks (a system prompt of at least 256 tokens is at least 16 blocks).
    expect(s.reusedBlocks).toBeGreaterThanOrEqual(4 * 16);
    expect(s.reusedBlocks).toBeLessThanOrEqual(4 * Math.floor((256 + 30) / 16));
    const perRequestTail = s.workingSetBlocks - s.reusedBlocks;
    expect(perRequestTail).toBeGreaterThanOrEqual(12); // each request's own question + reply fill at least a block
    // With infinite cache and in order: each group's prefix is computed once, as h* says.
    const hStar = ((3 - 1) * 16 * Math.floor(s.sharedPrefixTokens! / 16)) / (3 * s.meanPromptTokens);
    expect(Math.abs(s.replayHitRate - hStar)).toBeLessThan(0.02);
  });

  test('multi-turn chats: the sessions of workload.ts with the simulator\'s replies in the history', () => {
    const o = { seed: 2, systemPrompts: 2, systemPromptWords: 100, sessions: 4, turnsPerSession: 3, userWords: 20, outputTokens: 6 };
    const w = buildChats(o, tok);
    expect(w.workload.sessions).toHaveLength(4);
    expect(w.workload.rag).toHaveLength(0);
    expect(w.workload.totalRequests).toBe(12);
    expect(w.requests).toHaveLength(12);
    const last = w.requests[w.requests.length - 1];
    expect(last.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'user']);
    expect(last[2].content).toBe(tok.reply(6).text);
    expect(buildChats(o, tok)).toEqual(w);
    const s = measureWorkload(w, tok, 16);
    expect(s.sharedPrefixTokens).toBeUndefined();
    expect(s.reusedBlocks).toBeGreaterThan(0);
    expect(s.replayHitRate).toBeGreaterThan(0.4);
    expect(s.workingSetBlocks).toBeLessThan(w.requests.reduce((n, r) => n + Math.ceil(tok.chatTokens(r).length / 16) + 1, 0));
  });
});

describe('poissonArrivals', () => {
  test('exponential gaps at the given mean rate, deterministic per seed', () => {
    const t = poissonArrivals(4000, 20, 3);
    expect(t[0]).toBeGreaterThan(0);
    const gaps = t.slice(1).map((x, i) => x - t[i]!);
    expect(gaps.every((g) => g >= 0)).toBe(true);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    expect(mean).toBeGreaterThan(50 * 0.95);
    expect(mean).toBeLessThan(50 * 1.05);
    // An exponential's standard deviation equals its mean (a fixed-interval or uniform generator would fail this).
    const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length);
    expect(sd / mean).toBeGreaterThan(0.9);
    expect(sd / mean).toBeLessThan(1.1);
    expect(poissonArrivals(4000, 20, 3)).toEqual(t);
    expect(poissonArrivals(4000, 20, 4)).not.toEqual(t);
  });

  // vLLM vllm/benchmarks/serve.py @ 009e6d4 get_request: the cumulative delays are rescaled so that the last request
  // goes out at total_requests / request_rate ("to ensure the final delay_ts align with target_total_delay_s").
  test('the last request goes out at n / rate, so the offered rate is the labelled one, as vLLM serve.py get_request rescales', () => {
    expect(poissonArrivals(4000, 20, 3)[3999]).toBeCloseTo(200_000, 6);
    // load-ladder.ts buildLadderWorkload, default seed 7: interactive (192 requests) and shared-prefix (32 × 4); the
    // unscaled draw offered the 80% rung at about 87% of μ.
    for (const [n, seed] of [[192, 7 * 7919 + 12], [128, 7 * 7919 + 13]] as const) {
      const rate = 10;
      const arrivals = poissonArrivals(n, rate, seed);
      const realized = n / (arrivals[n - 1]! / 1000);
      expect(realized / rate).toBeCloseTo(1, 9);
    }
  });

  test.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('a rate of %s is refused', (rate) => {
    expect(() => poissonArrivals(3, rate, 1)).toThrow(/arrival rate must be a positive number/);
  });
});
