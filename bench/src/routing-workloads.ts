/**
 * The routing benchmark's workloads, deterministic from a seed, and what they need from the KV cache:
 * - `high-cache`: shared-prefix groups like SGLang's generated-shared-prefix and GIE's high-cache set — G groups × P
 *   prompts, a long group system prompt, a short per-user question, a short reply;
 * - `low-cache`: GIE's low-cache shape — a short shared prefix and a long question;
 * - `multi-turn`: the demo's chat sessions (`workload.ts`), turn by turn with the real replies in the history;
 * - `poisson-groups`: many shared-prefix groups arriving open loop at a Poisson rate, the shape of llm-d's precise
 *   vs approximate benchmark (150 groups × 5 users, 6,000-token contexts, Poisson arrivals, prefixes ≈ 73% of the
 *   cluster's KV) scaled to 2 cores; meant for KV capacity several times short of the working set.
 * Shared-prefix requests are shuffled (as SGLang's bench_serving does; the load ladder's are `staggered` instead, see
 * SharedPrefixOrder) and each carries `x-session-id` naming its user, which is what a session-hash router can key on.
 *
 * Sizes are in tokens of the simulator's own tokenizer (Qwen3, chat template included), and the working set is
 * counted in the simulator's KV blocks: every full block of every prompt and reply, deduplicated by prefix (two
 * requests share a block exactly when they share all tokens up to its end, vLLM's rule).
 */
import { createHash } from 'crypto';
import { loadQwen3Tokenizer } from '@kvroute/sim/tokenizer';
import type { RampArrivals, RampStage } from './poisson-ramp';
import { buildWorkload, rng, text, type ChatMessage, type RagPlan, type Workload, type WorkloadOptions } from './workload';

/** What the generators and the working-set count need from a tokenizer. */
export interface TokenizerLike {
  /** Tokens of plain text (sizes generated text). */
  count(text: string): number;
  /** Token ids of a chat request as the simulator renders and tokenizes it (generation prompt added). */
  chatTokens(messages: readonly ChatMessage[]): ArrayLike<number>;
  /** The simulator's reply of `n` tokens: its ids and the text a client receives. */
  reply(n: number): { readonly ids: readonly number[]; readonly text: string };
}

/** The simulator's tokenizer (Qwen3 + chat template), loaded in this process (~1 s the first time). */
export function simTokenizer(): TokenizerLike {
  const tok = loadQwen3Tokenizer();
  return {
    count: (t) => tok.encode(t, false).length,
    chatTokens: (messages) => tok.encode(tok.renderChat(messages.map((m) => ({ role: m.role, content: m.content })), {
      addGenerationPrompt: true,
      templateKwargs: {},
    }), false),
    reply: (n) => {
      const { ids, texts } = tok.filler(n);
      return { ids, text: texts.join('') };
    },
  };
}

export type WorkloadName = 'high-cache' | 'low-cache' | 'multi-turn' | 'poisson-groups';
export const WORKLOAD_NAMES: readonly WorkloadName[] = ['high-cache', 'low-cache', 'multi-turn', 'poisson-groups'];
export type SharedPrefixName = Exclude<WorkloadName, 'multi-turn'>;

export interface SharedPrefixOptions {
  readonly seed: number;
  /** G */
  readonly groups: number;
  /** P */
  readonly promptsPerGroup: number;
  /** Target tokens of each group's system prompt (content only; the template adds a few). */
  readonly systemTokens: number;
  /** Target tokens of each question. */
  readonly questionTokens: number;
  /** max_tokens of each reply. */
  readonly outputTokens: number;
}

export interface ChatOptions {
  readonly seed: number;
  readonly systemPrompts: number;
  readonly systemPromptWords: number;
  readonly sessions: number;
  readonly turnsPerSession: number;
  readonly userWords: number;
  readonly outputTokens: number;
}

export interface BenchWorkload {
  readonly name: WorkloadName;
  readonly kind: 'shared-prefix' | 'multi-turn';
  /** One line for reports. */
  readonly description: string;
  /** What `runWorkload` drives. */
  readonly workload: Workload;
  /** G and P of a shared-prefix workload. */
  readonly groups?: { readonly G: number; readonly P: number };
  /** Every request as it will be sent (chat replies filled in as the simulator will produce them), in send order. */
  readonly requests: readonly (readonly ChatMessage[])[];
  /** Request index → group, for shared-prefix workloads. */
  readonly groupOf?: readonly number[];
  /** Open loop: request i is sent `arrivalsMs[i]` after the start, whatever is still in flight. Absent: closed loop. */
  readonly arrivalsMs?: readonly number[];
  /** The mean rate of `arrivalsMs`, requests per second. */
  readonly arrivalRate?: number;
  /**
   * Open loop with a rate ramp (`poisson-ramp.ts`): each request's stage and send time within it at a top rate of 1
   * request/s; the run scales them to the pool's capacity. Absent: `arrivalsMs` or a closed loop.
   */
  readonly ramp?: { readonly arrivals: RampArrivals; readonly stages: readonly RampStage[] };
}

/**
 * Send times of `n` requests arriving as a Poisson process of `ratePerSecond`, as vLLM's `vllm bench serve
 * --request-rate` draws them with burstiness 1 (vllm/benchmarks/serve.py `get_request`): one exponential delay per
 * request, summed, then rescaled so that the last request goes out at n / rate. Without the rescale a draw's span is
 * off by a few percent (the ladder's default seed offered its 80% rung at 87% of μ); with it the offered rate is the
 * labelled one whatever the seed. Deterministic from `seed`.
 */
export function poissonArrivals(n: number, ratePerSecond: number, seed: number): number[] {
  if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) throw new RangeError(`the arrival rate must be a positive number, got ${ratePerSecond}`);
  const random = rng(seed);
  const unitTimes: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) unitTimes.push((t -= Math.log(1 - random())));
  const msPerUnit = ((n / ratePerSecond) * 1000) / t;
  return unitTimes.map((u) => u * msPerUnit);
}

/** Token counts of single words (with their leading space), shared by every `sizedText` call. */
const wordTokens = new Map<string, number>();

/**
 * Text of at least `target` tokens (the fewest words that reach it), drawn from `random`; the words come from one
 * fixed-length draw, so the result depends only on the seed. Byte-level BPE splits text at spaces before merging, so a
 * word's tokens do not depend on its neighbours: prefix sums of per-word counts find the length, and two full
 * tokenizations confirm it (a binary search, O(log target) tokenizations, takes over if they disagree).
 */
export function sizedText(random: () => number, target: number, lead: string, count: (t: string) => number): string {
  const words = text(random, Math.max(1, target)).split(' ');
  const make = (n: number) => `${lead}${words.slice(0, n).join(' ')}`;
  let sum = count(make(1));
  let n = 1;
  while (n < words.length && sum < target) {
    const piece = ` ${words[n]}`;
    let c = wordTokens.get(piece);
    if (c === undefined) {
      c = count(piece);
      wordTokens.set(piece, c);
    }
    sum += c;
    n++;
  }
  if (count(make(n)) >= target && (n === 1 || count(make(n - 1)) < target)) return make(n);
  if (count(make(words.length)) < target) return make(words.length);
  let lo = 1;
  let hi = words.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (count(make(mid)) >= target) hi = mid;
    else lo = mid + 1;
  }
  return make(lo);
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(random() * (i + 1)));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function workloadOptions(seed: number, maxTokens: number, ragRequests: number): WorkloadOptions {
  return {
    seed, systemPrompts: 0, systemPromptWords: 0, sessions: 0, turnsPerSession: 0, userWords: 0, maxTokens,
    documents: 0, documentWords: 0, ragRequests, questionWords: 0,
  };
}

/**
 * The order a shared-prefix workload sends its requests in:
 * - `shuffled`: every prompt of every group shuffled together, as SGLang's generated-shared-prefix benchmark sends them
 *   (`sample_generated_shared_prefix_requests` in `bench_serving.py`, unless `--gsp-ordered`). A group's first prompt
 *   is the one that prefills its system prompt, and in a shuffled list first appearances crowd the start: with 32 groups
 *   of 4, the first quarter of the requests holds about 20 of the 32 cold prefills and the last quarter none. Sent open
 *   loop, such a run begins far above its average load and ends below it;
 * - `staggered`: groups' first prompts spread over the run (sort keys in G equal slots of [0, 1), in random group
 *   order, each at a random point of its slot) and each group's other prompts follow its first within a quarter of the
 *   run (keys up to a quarter beyond). Positions are compressed at the start, where few followers have keys yet, and
 *   the last requests are all followers: with 32 groups of 4 the quarters hold about 11, 8, 8 and 5 cold prefills,
 *   the eighths about 7, then 3-5 each, then 0-1, so between the first and last eighth every stretch carries about one
 *   cold prefill in P. The load ladder uses it: a rung's rate is then the load the pool carries for most of the run,
 *   not an average over a cold-start burst and a warm tail.
 */
export type SharedPrefixOrder = 'shuffled' | 'staggered';
export const SHARED_PREFIX_ORDERS: readonly SharedPrefixOrder[] = ['staggered', 'shuffled'];

/** Share of the run over which a staggered group's other prompts follow its first. */
export const STAGGERED_GROUP_SPAN = 0.25;

/**
 * Positions for `staggered` order: sort keys, one per request, from each request's group and whether it is the group's
 * first (`isFirst`). Group ranks are a random permutation; a group's first prompt gets (rank + u) ÷ G and each other
 * prompt that plus u' × STAGGERED_GROUP_SPAN (u, u' uniform in [0, 1)).
 */
function staggeredKeys(groupOf: readonly number[], isFirst: readonly boolean[], groups: number, random: () => number): number[] {
  const rank = shuffle(Array.from({ length: groups }, (_, g) => g), random);
  const start = new Array<number>(groups);
  rank.forEach((g, r) => { start[g] = (r + random()) / groups; });
  return groupOf.map((g, i) => (isFirst[i] ? start[g]! : start[g]! + random() * STAGGERED_GROUP_SPAN));
}

/** G groups × P prompts: a group system prompt and a per-user question, in `order` (shuffled by default). */
export function buildSharedPrefix(name: SharedPrefixName, o: SharedPrefixOptions, tok: TokenizerLike, order: SharedPrefixOrder = 'shuffled'): BenchWorkload {
  for (const [k, v] of Object.entries(o)) {
    if (!Number.isInteger(v) || v < (k === 'seed' ? 0 : 1)) throw new RangeError(`${name}: ${k} must be a positive integer, got ${v}`);
  }
  const random = rng(o.seed * 7919 + { 'high-cache': 1, 'low-cache': 2, 'poisson-groups': 3 }[name]);
  const systems = Array.from({ length: o.groups }, (_, g) => sizedText(random, o.systemTokens, `Group ${g} system prompt. `, tok.count));
  const plans: RagPlan[] = [];
  for (let g = 0; g < o.groups; g++) {
    for (let p = 0; p < o.promptsPerGroup; p++) {
      const question = `${sizedText(random, o.questionTokens, `User ${p} of group ${g} asks: `, tok.count)}?`;
      plans.push({
        kind: 'rag',
        document: g,
        messages: [{ role: 'system', content: systems[g] }, { role: 'user', content: question }],
        headers: { 'x-session-id': `${name}-g${g}-u${p}` },
      });
    }
  }
  if (order === 'staggered') {
    // Plans are built group by group, so a group's first plan is its prompt 0.
    const keys = staggeredKeys(plans.map((p) => p.document), plans.map((_, i) => i % o.promptsPerGroup === 0), o.groups, random);
    const byKey = plans.map((plan, i) => ({ plan, key: keys[i]! })).sort((a, b) => a.key - b.key);
    plans.splice(0, plans.length, ...byKey.map((x) => x.plan));
  } else {
    shuffle(plans, random);
  }
  const workload: Workload = { options: workloadOptions(o.seed, o.outputTokens, plans.length), sessions: [], rag: plans, totalRequests: plans.length };
  return {
    name,
    kind: 'shared-prefix',
    description: `${o.groups} groups × ${o.promptsPerGroup} prompts, system ≈${o.systemTokens} tokens, question ≈${o.questionTokens}, output ${o.outputTokens}${order === 'staggered' ? ', groups staggered over the run' : ''}`,
    workload,
    groups: { G: o.groups, P: o.promptsPerGroup },
    requests: plans.map((p) => p.messages),
    groupOf: plans.map((p) => p.document),
  };
}

/** The demo's multi-turn chats (no RAG requests), with the requests they will send. */
export function buildChats(o: ChatOptions, tok: TokenizerLike): BenchWorkload {
  const workload = buildWorkload({
    seed: o.seed, systemPrompts: o.systemPrompts, systemPromptWords: o.systemPromptWords, sessions: o.sessions,
    turnsPerSession: o.turnsPerSession, userWords: o.userWords, maxTokens: o.outputTokens,
    documents: 0, documentWords: 0, ragRequests: 0, questionWords: 0,
  });
  const reply = tok.reply(o.outputTokens).text;
  // Turn-major order: roughly how the sessions interleave when they run side by side.
  const requests: ChatMessage[][] = [];
  for (let turn = 0; turn < o.turnsPerSession; turn++) {
    for (const s of workload.sessions) {
      const history: ChatMessage[] = [{ role: 'system', content: s.system }];
      for (let t = 0; t <= turn; t++) {
        history.push({ role: 'user', content: s.userTurns[t] });
        if (t < turn) history.push({ role: 'assistant', content: reply });
      }
      requests.push(history);
    }
  }
  return {
    name: 'multi-turn',
    kind: 'multi-turn',
    description: `${o.sessions} sessions × ${o.turnsPerSession} turns over ${o.systemPrompts} system prompts of ${o.systemPromptWords} words, `
      + `${o.userWords}-word user turns, output ${o.outputTokens}`,
    workload,
    requests,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// What the workload asks of the KV cache

export interface WorkloadStats {
  readonly requests: number;
  readonly promptTokens: number;
  readonly meanPromptTokens: number;
  readonly maxPromptTokens: number;
  /** Largest prompt + output of one request: what one sequence needs. */
  readonly maxSequenceTokens: number;
  /** The working set W in blocks: distinct full blocks of all prompts and replies. */
  readonly workingSetBlocks: number;
  /** Blocks that more than one request uses (the part a cache can turn into hits). */
  readonly reusedBlocks: number;
  /** Shared-prefix workloads: mean tokens a group's requests share (S, template included) and the rest (Q). */
  readonly sharedPrefixTokens?: number;
  readonly uniqueTokens?: number;
  /** Token hit rate of one pod that never evicts, replaying the requests in order (vLLM's rules: full blocks only,
   *  the last prompt token always computed). The in-process twin of the oracle. */
  readonly replayHitRate: number;
}

/** Chained block keys: block i's key covers every token up to the end of block i. */
export function blockKeys(tokens: ArrayLike<number>, blockSize: number): string[] {
  const keys: string[] = [];
  let prev = '';
  const full = Math.floor(tokens.length / blockSize);
  for (let b = 0; b < full; b++) {
    const block = new Uint32Array(blockSize);
    for (let j = 0; j < blockSize; j++) block[j] = tokens[b * blockSize + j];
    const h = createHash('sha1');
    h.update(prev);
    h.update(Buffer.from(block.buffer));
    prev = h.digest('base64');
    keys.push(prev);
  }
  return keys;
}

function commonPrefixLength(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export function measureWorkload(w: BenchWorkload, tok: TokenizerLike, blockSize: number): WorkloadStats {
  const maxTokens = w.workload.options.maxTokens;
  const output = tok.reply(maxTokens).ids;
  const prompts = w.requests.map((m) => tok.chatTokens(m));
  const uses = new Map<string, number>();
  const seen = new Set<string>();
  let hits = 0;
  let queries = 0;
  prompts.forEach((prompt) => {
    const promptKeys = blockKeys(prompt, blockSize);
    // vLLM never serves the whole prompt from cache: at most ⌊(n−1)/B⌋ blocks hit.
    const limit = Math.floor((prompt.length - 1) / blockSize);
    let matched = 0;
    while (matched < Math.min(limit, promptKeys.length) && seen.has(promptKeys[matched])) matched++;
    hits += matched * blockSize;
    queries += prompt.length;
    // The sequence the pod ends up holding: the prompt and the reply (the last sampled token never enters the cache).
    const sequence = Array.from(prompt);
    for (let i = 0; i < output.length - 1; i++) sequence.push(output[i]);
    for (const k of new Set(blockKeys(sequence, blockSize))) {
      uses.set(k, (uses.get(k) ?? 0) + 1);
      seen.add(k);
    }
  });
  const lengths = prompts.map((p) => p.length);
  const total = lengths.reduce((a, b) => a + b, 0);
  let reused = 0;
  for (const n of uses.values()) if (n > 1) reused++;

  let sharedPrefixTokens: number | undefined;
  let uniqueTokens: number | undefined;
  if (w.kind === 'shared-prefix' && w.groupOf) {
    // Each group's distinct prompts: a stage of the ramp may send one prompt of a group several times and no other
    // (each stage starts the list over), and its copies would "share" the whole prompt.
    const byGroup = new Map<number, Map<string, ArrayLike<number>>>();
    w.groupOf.forEach((g, i) => {
      if (!byGroup.has(g)) byGroup.set(g, new Map());
      byGroup.get(g)!.set(Array.prototype.join.call(prompts[i], ','), prompts[i]);
    });
    let shared = 0;
    let groups = 0;
    for (const distinct of byGroup.values()) {
      const members = [...distinct.values()];
      if (members.length < 2) continue;
      let lcp = members[0].length;
      for (let i = 1; i < members.length; i++) lcp = Math.min(lcp, commonPrefixLength(members[0], members[i]));
      shared += lcp;
      groups++;
    }
    if (groups > 0) {
      sharedPrefixTokens = shared / groups;
      uniqueTokens = total / prompts.length - sharedPrefixTokens;
    }
  }
  return {
    requests: prompts.length,
    promptTokens: total,
    meanPromptTokens: prompts.length > 0 ? total / prompts.length : 0,
    maxPromptTokens: Math.max(0, ...lengths),
    maxSequenceTokens: Math.max(0, ...lengths) + maxTokens,
    workingSetBlocks: uses.size,
    reusedBlocks: reused,
    sharedPrefixTokens,
    uniqueTokens,
    replayHitRate: queries > 0 ? hits / queries : 0,
  };
}
