import { batchPrompts, isBatch, promptHead, promptOf, type PromptInput } from '@kvroute/protocol/openai';
import { ConfigError, describeValue } from '../../config/errors';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import {
  doubleZeros,
  scoresFromInto,
  SILENT_PLUGIN_LOGGER,
  stateKey,
  type CycleContext,
  type PluginLogger,
  type PostCycle,
  type ProfileRunResult,
  type Scorer,
} from '../framework';
import type { SchedulingMetrics } from '../metrics-hooks';
import { definePlugin, parameters } from '../plugin';
import { LazyLengths, publishPrefixMatch, type PrefixMatchRatios } from '../prefix-match';
import { CharactersPerTokenEstimate } from './characters-per-token';
import { matchLengthScore, readMatchLength, type MatchLengthParameters } from './match-length';
import { hashPromptBlocks, hashTailProbes } from './prefix-hash';
import { PrefixBlockIndex, type PrefixMatches } from './prefix-index';

/** 256 pods × GIE's 31,250 entries per server: ~200 MiB at ~26 bytes an entry. */
export const DEFAULT_MAX_INDEX_ENTRIES = 8_000_000;

/**
 * `matchLengthWeight` and `matchLengthScaleTokens` (`match-length.ts`) are llm-d-router v0.10.0's scorer parameters
 * (`scheduling/scorer/prefix/plugin.go`); the others are the estimate's, which llm-d and GIE v1.5.0 set on an
 * `approx-prefix-cache-producer` (moved here by the loader, `config/producer-form.ts`).
 */
export interface PrefixCacheScorerParameters extends MatchLengthParameters {
  /**
   * `estimate` builds the prefix index from kvroute's own routing history. llm-d's `cache_tracking` (the index fed by
   * vLLM KV events) is the separate `precise-prefix-cache-scorer` plugin here.
   * @default "estimate"
   */
  mode?: 'estimate';
  /**
   * Characters per hashed block; 64 characters ≈ 16 tokens, vLLM's default block size. With `tuneBlockSize`, only until
   * the pods' own block size is scraped. @default 64
   */
  hashBlockSize?: number;
  /**
   * Prompt blocks considered, from the start; longer prompts are truncated. 0 (with `maxPrefixTokensToMatch` 0 too)
   * hashes the whole prompt, as llm-d-router v0.10.0 reads both caps at 0 (`approximateprefix/plugin.go`
   * resolveMaxBlocks: unlimitedPrefixBlocks; the prompt is bounded by the model's context window anyway). @default 256
   */
  maxPrefixBlocksToMatch?: number;
  /**
   * The smallest block hashed, in tokens (× 4 characters): a block size given or tuned from the pods under it is raised
   * to it. kvroute's parameter for llm-d-router v0.10.0's fixed floor of 64 (`approximateprefix/plugin.go`
   * minBlockSizeTokens, GetBlockSize; llm-d-router#1158: vLLM's 16-token blocks made its index too large), which the
   * loader sets for a config in llm-d's group; GIE v1.5.0 has no floor. @default 1 (64 in llm-d's group)
   */
  minBlockSizeTokens?: number;
  /**
   * Hash the prompt's short last block too (while under the block cap), so a prompt shorter than one block is matched
   * when repeated: kvroute's parameter for llm-d-router v0.10.0's cut (`prefixhash/hashing.go` getKVCacheBlocksFromTokens
   * yields the short last block), which the loader sets for a config in llm-d's group; GIE v1.5.0 hashes full blocks
   * only (`approximateprefix/hashing.go`). @default false (true in llm-d's group)
   */
  partialLastBlock?: boolean;
  /**
   * GIE v1.5.0's window in tokens, which wins over `maxPrefixBlocksToMatch` when positive: with `tuneBlockSize` it is
   * divided by the block size of each request's hashing (approximateprefix/plugin.go PrepareRequestData), else turned
   * into `maxPrefixBlocksToMatch` once. @default 0
   */
  maxPrefixTokensToMatch?: number;
  /**
   * With `autoTune`, hash each request in blocks of the first candidate's vLLM `block_size` (scraped from
   * `vllm:cache_config_info`) × 4 characters, `hashBlockSize` until one is scraped, as GIE v1.5.0 does
   * (approximateprefix/plugin.go GetBlockSize: `blockSizeTokens` is only its fallback). @default true when the config
   * gives the block size in GIE's terms (`blockSizeTokens`, `blockSize`) or not at all, false when it gives kvroute's
   * `hashBlockSize` (kvroute's default config does: 64 characters whatever the pods' block size)
   */
  tuneBlockSize?: boolean;
  /**
   * Size each endpoint's index from its real KV capacity (`num_gpu_blocks` × `block_size` tokens in
   * `vllm:cache_config_info`) once scraped, as GIE's `autoTune` does; `false` gives every endpoint
   * `lruCapacityPerServer` (and turns `tuneBlockSize` off). @default true
   */
  autoTune?: boolean;
  /**
   * With `autoTune`, entries a pod's index keeps as a multiple of what its KV cache holds. More than 1 makes the index
   * remember a prompt's pod for a while after vLLM evicted it, so the prompt's next request goes back there (a miss that
   * refills the same pod) instead of scoring cold everywhere and being placed by load on another pod, where it would
   * evict other prompts: with KV far below the working set, sizing at exactly 1 spread each prompt over about three of
   * four pods. The price is a hit predicted for a prompt evicted since. Still bounded by `maxIndexEntries`. kvroute's
   * addition (GIE's `autoTune` sizes at 1); measured in epp/README.md "Prefix index memory".
   * @default 1
   */
  capacityFactor?: number;
  /**
   * With `autoTune`, turn a pod's KV capacity in tokens into characters at the ratio its prompts really have: the mean
   * prompt length in characters of the requests routed over the mean prompt tokens of the requests the pods finished
   * (`vllm:request_prompt_tokens`), once both count 16 requests; 4 (GIE's `averageCharactersPerToken`) until then or
   * when `false`. Capacities follow the ratio when it moves by more than a tenth. Learnt and published
   * (`kvroute_epp_prefix_characters_per_token`) under `autoTune` either way; off by default because the larger index
   * it gives English text (≈4.9 characters a token) won hit rate at 60% load and lost it at 80% on the load ladder's
   * shared-prefix × constrained cells (bench/README.md, "Session 34"). kvroute's addition (`characters-per-token.ts`).
   * @default false
   */
  learnCharactersPerToken?: boolean;
  /**
   * Block hashes remembered per endpoint (LRU) until its KV capacity is scraped, or always without `autoTune`.
   * 31,250 ≈ (80 GB − 16 GB of weights) / 128 KB of KV per token ≈ 500k tokens ≈ 2M characters ÷ 64 (GIE's sizing).
   * 0 is the default, as in llm-d-router v0.10.0 (`approximateprefix/plugin.go` makeserver). @default 31250
   */
  lruCapacityPerServer?: number;
  /**
   * (block, endpoint) entries all endpoints together may hold: when their capacities add up to more, each is scaled
   * down by the same factor. An entry costs about 26 bytes (epp/README.md "Prefix index memory"), so the default,
   * 256 pods × 31,250, is ~200 MiB: 256 pods of any KV size fit in the EPP's 1 GiB limit. kvroute's addition; GIE has
   * no bound.
   * @default 8000000
   */
  maxIndexEntries?: number;
}

interface PrefixMatch {
  /** The window's block keys, then the tail probes' (`hashTailProbes`) when the window cut the prompt short. */
  readonly blocks: readonly number[];
  /** A batch's other prompts' window keys (`blocks` is its first keyed prompt's), each recorded as a chain of its own. */
  readonly otherPrompts?: readonly (readonly number[])[];
  /**
   * How many of `blocks` are the window's (a batch: all its prompts' blocks): scores, hit metrics and stats count these
   * only, as GIE's do.
   */
  readonly windowBlocks: number;
  /** Characters per block of this request's hashing. */
  readonly blockChars: number;
  /** Every endpoint's leading blocks held, from the index's walk (a batch: summed over its prompts' walks). */
  readonly matches: Pick<PrefixMatches, 'keys' | 'counts'>;
  /** The candidates scored, and the characters each holds (blocks × hashBlockSize), by position. */
  readonly candidates: readonly EndpointSnapshot[];
  readonly cachedLength: number[];
}

/** The leading blocks `target` holds according to `match`: by its position among the scored candidates, else by key. */
function matchedBlocksOf(match: PrefixMatch, target: EndpointSnapshot): number {
  const i = match.candidates.indexOf(target);
  // A length past the window (matched probes) is every window block.
  if (i >= 0) return Math.min(match.windowBlocks, Math.floor(match.cachedLength[i]! / match.blockChars));
  const j = match.matches.keys.indexOf(target.endpoint.key);
  return j >= 0 ? Math.min(match.windowBlocks, match.matches.counts[j]!) : 0;
}

/** Each tools list's JSON, made once per parsed request (an affinity filter's match and the score read it twice). */
const toolsJson = new WeakMap<readonly unknown[], string>();

/**
 * What a request's chain of block keys starts from. vLLM shares no KV block across cache salts, so a salted request's
 * chain starts from its own seed: the model and the salt, as upstream seeds it (GIE v1.5.0 approximateprefix/hashing.go,
 * llm-d-router v0.10.0 prefixhash/hashing.go computeBlockHashes: TargetModel, then the CacheSalt). A chat's `tools`,
 * which the chat template renders into the prompt, are in the seed too: llm-d-router v0.10.0 hashes their JSON ahead
 * of the messages (`tokenizer/estimate.go` chatCompletionsBytes), so the same messages with other tools share no block
 * there, and no pod caches them for another tool list. The seed rather than the hashed text, so that lengths stay the
 * rendered messages' characters for the plugins reading the match. GIE v1.5.0 hashes the messages alone.
 */
function chainSeed(request: CycleContext['request']): string {
  const seed = request.cacheSalt ? `${request.model}\u0000${request.cacheSalt}` : request.model;
  const input = request.input;
  if (input === undefined || input.kind !== 'chat') return seed;
  // A Responses body's tools (`keyedTools`, any JSON, an empty list included): upstream hashes `{"tools": …}` ahead of
  // its input whenever the body has them (estimate.go estimateBytes L176-178).
  if (input.keyedTools !== undefined) return `${seed}\u0002${JSON.stringify(input.keyedTools)}`;
  if (input.tools === undefined || input.tools.length === 0) return seed;
  let json = toolsJson.get(input.tools);
  if (json === undefined) toolsJson.set(input.tools, (json = JSON.stringify(input.tools)));
  return `${seed}\u0001${json}`;
}

/** Running totals over the picks this scorer saw, for logs and tests (metrics get per-pick observations). */
export interface PrefixCacheStats {
  /** (block, endpoint) pairs in the index. */
  readonly indexEntries: number;
  /** Endpoints the index knows (each with its share of `maxIndexEntries`), picked or not yet. */
  readonly indexedEndpoints: number;
  readonly picks: number;
  /** Blocks of picked requests already held by the picked endpoint ÷ blocks hashed. */
  readonly hitRatio: number;
  /** Characters per token the capacities are computed with (`learnCharactersPerToken`; else 4). */
  readonly charactersPerToken: number;
  /** Characters per token learnt from the pods (`autoTune`; 4 until learnt), whether or not capacities use it. */
  readonly learntCharactersPerToken: number;
}

/**
 * Characters per token, to turn a pod's KV capacity in tokens into the index's character blocks: GIE's
 * `averageCharactersPerToken` (pkg/epp/scheduling/framework/plugins/multi/prefix/plugin.go @ v1.2.0), the usual rule
 * of thumb for English text with a ~150k-token BPE vocabulary such as Qwen3's or Llama 3's. Denser text (code, CJK:
 * 1–3 characters a token) makes the index forget blocks a pod still holds, which costs hits but never invents them.
 */
export const CHARACTERS_PER_TOKEN = 4;

/**
 * vLLM's default `--block-size` on GPUs, for a pod whose `cache_config_info` has no `block_size`
 * (vllm-project/vllm vllm/platforms/cuda.py `check_and_update_config`: an unset block size becomes 16; main @ 002db49).
 */
const DEFAULT_VLLM_BLOCK_SIZE = 16;

/**
 * Index entries a pod's KV cache corresponds to: its `num_gpu_blocks` × `block_size` tokens, in blocks of
 * `hashBlockSize` characters. With the defaults (16-token blocks, 64-character blocks) one entry per KV block.
 */
export function indexCapacityFor(numGpuBlocks: number, blockSizeTokens: number | undefined, hashBlockSize: number, charactersPerToken = CHARACTERS_PER_TOKEN): number {
  const tokens = numGpuBlocks * (blockSizeTokens ?? DEFAULT_VLLM_BLOCK_SIZE);
  return Math.ceil((tokens * charactersPerToken) / hashBlockSize);
}

/** How far the learnt characters per token moves from the one the capacities were computed with before they follow. */
const CHARACTERS_PER_TOKEN_RESIZE = 0.1;

/**
 * `prefix-cache-scorer` in `estimate` mode: scores each candidate by the share of the prompt's leading blocks it is
 * believed to cache, and after each pick records the whole prompt as cached on the chosen endpoint (optimistically:
 * vLLM gives no feedback). See `prefix-hash.ts` for the block hashes and `prefix-index.ts` for the index.
 *
 * Each endpoint's index holds as many blocks as its vLLM can: from its scraped `num_gpu_blocks` (GIE v1.2.0's
 * `autoTune`, which sizes a pod's LRU from `CacheNumGPUBlocks` when the pod first gets a pick; here it also follows
 * later changes), `lruCapacityPerServer` until then; and all of them together at most `maxIndexEntries`.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/multi/prefix/plugin.go @ v0.5.1, v1.2.0 (autoTune)
 */
export class PrefixCacheScorer implements Scorer, PostCycle, PrefixMatchRatios {
  readonly type = 'prefix-cache-scorer';
  readonly index: PrefixBlockIndex;
  private readonly matchKey = stateKey<PrefixMatch>('prefix-cache-scorer match');
  private picks = 0;
  private pickedBlocks = 0;
  private pickedHits = 0;
  /** The `num_gpu_blocks` and `block_size` each endpoint's capacity was last computed from. */
  private readonly sizedFrom = new Map<string, { numGpuBlocks: number; blockSize: number | undefined }>();
  /** Characters per token learnt from the pods (under `autoTune`), the value published, and the one capacities use. */
  private readonly charactersPerToken = new CharactersPerTokenEstimate();
  private publishedCharactersPerToken = CHARACTERS_PER_TOKEN;
  private sizedAtCharactersPerToken = CHARACTERS_PER_TOKEN;
  private budgetBinding = false;
  /** The snapshot learnt from at each candidate position in the last cycle (see `score`); cleared on pool changes. */
  private learntFrom: (EndpointSnapshot | undefined)[] = [];
  /** `locateCandidates`: the index id of the endpoint at each candidate position, and that endpoint. */
  private ids = new Int32Array(0);
  private readonly idOwners: (Endpoint | undefined)[] = [];
  private idsVersion = -1;
  /** `locateCandidates`: by index id, the candidate position in the round `locatedStamp[id]` says. */
  private positions = new Int32Array(0);
  private locatedStamp = new Float64Array(0);
  private locateRound = 0;

  /**
   * `PrefixMatchEstimate.cacheFull`: the index holds as much for the pod as its capacity (one closure, not one a
   * request). Only while each pod's capacity is its KV cache's (`autoTune` at `capacityFactor` 1): a fixed or scaled
   * capacity says nothing of what the pod's vLLM has room for, and the match then does not tell.
   */
  private readonly cacheFull: ((endpointKey: string) => boolean) | undefined;

  constructor(
    readonly name: string,
    private readonly parameters: Required<PrefixCacheScorerParameters>,
    private readonly metrics: SchedulingMetrics,
    private readonly logger: PluginLogger = SILENT_PLUGIN_LOGGER,
  ) {
    this.index = new PrefixBlockIndex({
      defaultCapacityPerEndpoint: parameters.lruCapacityPerServer,
      maxEntries: parameters.maxIndexEntries,
    });
    if (parameters.autoTune) metrics.setPrefixCharactersPerToken(CHARACTERS_PER_TOKEN);
    this.cacheFull = parameters.autoTune && parameters.capacityFactor === 1 ? (endpointKey) => this.index.isFull(endpointKey) : undefined;
  }

  addEndpoint(endpoint: Endpoint): void {
    this.learntFrom = [];
    this.index.addEndpoint(endpoint.key);
    this.afterCapacityChange();
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  /**
   * llm-d's `PrefixCacheMatchInfo` ratio per candidate (`PrefixMatchRatios`): the score itself, the longest run of the
   * window's leading blocks the candidate holds ÷ the window's blocks (the score at `matchLengthWeight` 0), as upstream's approximate producer gives
   * `MatchBlocks` and `TotalBlocks` (`approximateprefix/plugin.go` Produce @ llm-d-router v0.10.0). Pass a cycle state of
   * the caller's own: this match is then not the one `postCycle` records.
   */
  matchRatios(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    // The ratio whatever `matchLengthWeight`: upstream's filter reads MatchBlocks ÷ TotalBlocks, not the scorer's blend.
    const out = new Float64Array(candidates.length);
    this.match(cycle, candidates, out, 0);
    return Array.from(out);
  }

  scoreInto(cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    this.match(cycle, candidates, out, this.parameters.matchLengthWeight);
  }

  /** `scoreInto` with the match-length blend at `matchLengthWeight` (0: the matched share alone). */
  private match(cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array, matchLengthWeight: number): void {
    const n = candidates.length;
    const positions = this.locateCandidates(candidates);
    const { request } = cycle;
    // Only the first maxPrefixBlocksToMatch blocks are hashed: a longer prompt is read no further than they reach.
    const hashBlockSize = this.blockCharsFor(candidates);
    const maxPrefixBlocksToMatch = this.maxBlocksFor(hashBlockSize);
    const hashedChars = hashBlockSize * maxPrefixBlocksToMatch;
    const seed = chainSeed(request);
    if (request.input !== undefined && isBatch(request.input)) {
      this.matchBatch(cycle, candidates, out, matchLengthWeight, request.input, seed, hashBlockSize, maxPrefixBlocksToMatch);
      return;
    }
    const text = request.prompt.length > hashedChars && request.promptHead !== undefined ? request.promptHead(hashedChars) : request.prompt;
    const windowKeys = hashPromptBlocks(seed, text, hashBlockSize, maxPrefixBlocksToMatch, this.parameters.partialLastBlock);
    if (windowKeys.length === 0) return;
    const windowBlocks = windowKeys.length;
    // A prompt the window cut short gets sparse probes past it, matched and recorded as the chain's continuation: how
    // far past the window a pod holds the same text, for the cached length the latency scorer reads (a long shared
    // document before a short question; a long shared prefix before long unique content). Scores use the window only.
    let blocks = windowKeys;
    let tailEnds: readonly number[] | undefined;
    if (windowBlocks === maxPrefixBlocksToMatch && request.prompt.length >= hashedChars + hashBlockSize) {
      const { promptSlice } = request;
      const probes = hashTailProbes(windowKeys[windowBlocks - 1]!, request.prompt, hashedChars, hashBlockSize, promptSlice);
      if (probes.keys.length > 0) {
        blocks = windowKeys.concat(probes.keys);
        tailEnds = probes.ends;
      }
    }
    const lengthOf = (count: number): number => (count <= windowBlocks ? count * hashBlockSize : tailEnds![count - windowBlocks - 1]!);
    // Every endpoint's match in one walk (a candidate's count does not depend on the others'); the keyed map the
    // latency scorer and logs read is built only if they read it.
    const matches = this.index.matchPrefix(blocks);
    // Zeros kept as doubles, not a Float64Array: ~4x cheaper to allocate at 256 (see doubleZeros).
    const cachedLength = doubleZeros(n);
    // llm-d-router v0.10.0's match-length blend (`match-length.ts`), which at weight 0 is the matched share alone. A
    // block holds blockChars ÷ 4 tokens (GIE's averageCharactersPerToken): the pods' own block size when tuned.
    const { matchLengthScaleTokens } = this.parameters;
    const blockTokens = hashBlockSize / CHARACTERS_PER_TOKEN;
    const scoreOf = (count: number): number => {
      const m = Math.min(count, windowBlocks);
      return matchLengthScore(m, windowBlocks, blockTokens, matchLengthWeight, matchLengthScaleTokens);
    };
    let matched = 0;
    let longest = 0;
    if (positions !== undefined) {
      // Each candidate's place by index id: only the endpoints holding the first block are visited.
      const stamp = this.locatedStamp;
      for (let j = 0; j < matches.size; j++) {
        const id = matches.ids[j]!;
        if (id >= stamp.length || stamp[id] !== this.locateRound) continue; // not a candidate
        const i = positions[id]!;
        const count = matches.counts[j]!;
        out[i] = scoreOf(count);
        cachedLength[i] = lengthOf(count);
        matched++;
        if (count > longest) longest = count;
      }
    } else {
      // Some endpoint is a candidate twice (no datastore snapshot does that): every position reads its own count.
      for (let i = 0; i < n; i++) {
        const id = this.ids[i]!;
        const count = id < 0 ? 0 : matches.blocksOf(id);
        if (count > 0) {
          out[i] = scoreOf(count);
          cachedLength[i] = lengthOf(count);
          matched++;
          if (count > longest) longest = count;
        }
      }
    }
    cycle.state.set(this.matchKey, { blocks, windowBlocks, blockChars: hashBlockSize, matches, candidates, cachedLength });
    publishPrefixMatch(cycle.state, {
      producer: this.name,
      unit: 'characters',
      promptLength: request.prompt.length,
      cachedLength: new LazyLengths(matches.keys, matches.counts, hashBlockSize, tailEnds === undefined ? undefined : lengthOf),
      byCandidate: { candidates, cachedLength, matched },
      // The window's blocks only: the tail's sparse probes are chained over the sampled blocks alone (and placed by the
      // prompt's length), so equal probe keys do not mean an equal leading part.
      ...(longest > 0 ? { heldBlocks: { keys: windowKeys, longest: Math.min(longest, windowBlocks), lengthOf } } : {}),
      ...(tailEnds !== undefined ? { window: windowBlocks * hashBlockSize } : {}),
      ...(this.cacheFull !== undefined ? { cacheFull: this.cacheFull } : {}),
    });
  }

  /**
   * `match` for a batch, which vLLM serves as one engine request per prompt, each prefilled and cached on its own: each
   * prompt's window hashed on its own, its chain seeded as a single prompt's (so a prompt matches what it left as part
   * of a batch and alone alike), and each candidate's leading blocks of each prompt summed over the sum of the prompts'
   * blocks, as llm-d-router v0.10.0 matches a batch (`prefixhash/hashing.go` GetBlockHashes, one hash list per prompt;
   * `approximateprefix/plugin.go` Produce, MatchBlocks and TotalBlocks summed over them). No tail probes, so no
   * length passes a prompt's window; and no `heldBlocks`, which stand for one prompt's chain.
   */
  private matchBatch(
    cycle: CycleContext,
    candidates: readonly EndpointSnapshot[],
    out: Float64Array,
    matchLengthWeight: number,
    input: PromptInput,
    seed: string,
    hashBlockSize: number,
    maxPrefixBlocksToMatch: number,
  ): void {
    const prompts: number[][] = [];
    const held = new Map<string, number>();
    let total = 0;
    let promptLength = 0;
    for (const prompt of batchPrompts(input)) {
      promptLength += promptOf(prompt).length;
      const keys = hashPromptBlocks(seed, promptHead(prompt, hashBlockSize * maxPrefixBlocksToMatch), hashBlockSize, maxPrefixBlocksToMatch, this.parameters.partialLastBlock);
      if (keys.length === 0) continue;
      prompts.push(keys);
      total += keys.length;
      const matches = this.index.matchPrefix(keys);
      for (let j = 0; j < matches.size; j++) held.set(matches.keys[j]!, (held.get(matches.keys[j]!) ?? 0) + matches.counts[j]!);
    }
    if (total === 0) return;
    const n = candidates.length;
    const cachedLength = doubleZeros(n);
    const { matchLengthScaleTokens } = this.parameters;
    const blockTokens = hashBlockSize / CHARACTERS_PER_TOKEN;
    let matched = 0;
    for (let i = 0; i < n; i++) {
      const count = held.get(candidates[i]!.endpoint.key) ?? 0;
      if (count === 0) continue;
      out[i] = matchLengthScore(count, total, blockTokens, matchLengthWeight, matchLengthScaleTokens);
      cachedLength[i] = count * hashBlockSize;
      matched++;
    }
    const matches = { keys: [...held.keys()], counts: [...held.values()] };
    cycle.state.set(this.matchKey, { blocks: prompts[0]!, otherPrompts: prompts.slice(1), windowBlocks: total, blockChars: hashBlockSize, matches, candidates, cachedLength });
    publishPrefixMatch(cycle.state, {
      producer: this.name,
      unit: 'characters',
      promptLength,
      cachedLength: new LazyLengths(matches.keys, matches.counts, hashBlockSize),
      byCandidate: { candidates, cachedLength, matched },
      ...(this.cacheFull !== undefined ? { cacheFull: this.cacheFull } : {}),
    });
  }

  /**
   * Characters per block for a request over `candidates`: the first candidate's (GIE v1.5.0 GetBlockSize reads
   * `endpoints[0]`).
   */
  private blockCharsFor(candidates: readonly EndpointSnapshot[]): number {
    return this.podBlockChars(candidates.length === 0 ? undefined : candidates[0]!.metrics.blockSize);
  }

  /**
   * Characters per block of a pod whose vLLM block size is `blockSizeTokens`: that × 4 with `tuneBlockSize` (resolved
   * off without `autoTune`) once scraped, else `hashBlockSize`; at least `minBlockSizeTokens` × 4 either way, as
   * llm-d-router v0.10.0's GetBlockSize raises the pods', the fallback and a configured size alike.
   */
  private podBlockChars(blockSizeTokens: number | undefined): number {
    return Math.max(this.podOwnBlockChars(blockSizeTokens), this.parameters.minBlockSizeTokens * CHARACTERS_PER_TOKEN);
  }

  /** `podBlockChars` before `minBlockSizeTokens` raises it: the block the pod's own KV cache is counted in. */
  private podOwnBlockChars(blockSizeTokens: number | undefined): number {
    const { tuneBlockSize, hashBlockSize } = this.parameters;
    return tuneBlockSize && blockSizeTokens !== undefined && blockSizeTokens > 0 ? blockSizeTokens * CHARACTERS_PER_TOKEN : hashBlockSize;
  }

  /**
   * Blocks hashed at most: GIE's token window over this request's blocks when one is set (a window under one block
   * hashes none, as GIE's integer division gives 0), else `maxPrefixBlocksToMatch`, or no cap when that is 0 too
   * (llm-d-router v0.10.0 `approximateprefix/plugin.go` resolveMaxBlocks).
   */
  private maxBlocksFor(blockChars: number): number {
    const { maxPrefixTokensToMatch, maxPrefixBlocksToMatch } = this.parameters;
    if (maxPrefixTokensToMatch <= 0) return maxPrefixBlocksToMatch > 0 ? maxPrefixBlocksToMatch : Number.POSITIVE_INFINITY;
    return Math.floor((maxPrefixTokensToMatch * CHARACTERS_PER_TOKEN) / blockChars);
  }

  /**
   * One pass over the candidates before the walk: learns capacities (autoTune), resolves each candidate's index id,
   * and notes each id's position for this round, so the walk's matched endpoints are scored without another pass.
   * Returns the positions by id, or undefined when an endpoint is a candidate twice.
   *
   * The datastore hands out the same frozen snapshot object while an endpoint's metrics and in-flight count are
   * unchanged, and the same endpoint object until discovery changes the pod, and candidates come in pool order: so
   * comparing with what sat at the same position last time skips the capacity check and the id lookup for all but the
   * few that changed since the last request.
   */
  private locateCandidates(candidates: readonly EndpointSnapshot[]): Int32Array | undefined {
    const n = candidates.length;
    const index = this.index;
    // An id freed by a removal may stand for another endpoint now: every position's id is looked up again.
    if (this.idsVersion !== index.endpointsVersion) this.idOwners.length = 0;
    if (this.ids.length < n) {
      this.ids = new Int32Array(Math.max(n, 2 * this.ids.length));
      this.idOwners.length = 0;
    }
    this.growLocated(index.idLimit);
    const round = ++this.locateRound;
    const autoTune = this.parameters.autoTune;
    const seen = this.learntFrom;
    const owners = this.idOwners;
    const ids = this.ids;
    let unique = true;
    for (let i = 0; i < n; i++) {
      const candidate = candidates[i]!;
      const endpoint = candidate.endpoint;
      if (autoTune && seen[i] !== candidate) {
        seen[i] = candidate;
        this.charactersPerToken.observePod(endpoint.key, candidate.metrics.promptTokensCount, candidate.metrics.promptTokensSum);
        // Learning may add the endpoint to the index (a new id): look its id up again below.
        if (this.learnCapacity(candidate)) owners[i] = undefined;
      }
      if (owners[i] !== endpoint) {
        owners[i] = endpoint;
        ids[i] = index.idOf(endpoint.key);
      }
      const id = ids[i]!;
      if (id < 0) continue;
      // An id added by this pass's learning may lie beyond the arrays sized before it.
      this.growLocated(id + 1);
      if (this.locatedStamp[id] === round) unique = false;
      this.locatedStamp[id] = round;
      this.positions[id] = i;
    }
    this.idsVersion = index.endpointsVersion;
    // After this round's readings: a pod that just reported its finished requests counts for this request's sizes.
    if (autoTune) this.followCharactersPerToken(this.charactersPerToken.value());
    return unique ? this.positions : undefined;
  }

  /** `locatedStamp` and `positions` at least `limit` long, keeping what this round already noted. */
  private growLocated(limit: number): void {
    if (this.locatedStamp.length >= limit) return;
    const length = Math.max(limit, 2 * this.locatedStamp.length);
    const stamp = new Float64Array(length);
    stamp.set(this.locatedStamp);
    const positions = new Int32Array(length);
    positions.set(this.positions);
    this.locatedStamp = stamp;
    this.positions = positions;
  }

  /**
   * Records `target` as holding the prompt this scorer matched in `cycle`'s state, for a pick made by a profile that
   * does not list this scorer (the P/D decider's decode pick, `prefix-based-pd-decider.ts`). The prefix-match metrics
   * observe it when it is the primary profile's pick (`primary`), as upstream's PreRequest observes the primary pick
   * whichever profiles list the scorer (`postCycle`).
   */
  learnPick(cycle: CycleContext, target: EndpointSnapshot, primary = false): void {
    const match = cycle.state.get(this.matchKey);
    if (primary) this.observeMatch(match, target);
    if (match === undefined) return;
    this.record(target.endpoint.key, match);
    this.metrics.setPrefixIndexerSize(this.index.size, this);
  }

  /**
   * Records `match`'s prompt as cached on `endpointKey`: every prompt of a batch, each as a chain of its own, as
   * llm-d-router v0.10.0 `approximateprefix/plugin.go` PreRequest adds each of a batch's `PerPromptHashes`.
   */
  private record(endpointKey: string, match: PrefixMatch): void {
    this.index.record(endpointKey, match.blocks);
    if (match.otherPrompts !== undefined) for (const blocks of match.otherPrompts) this.index.record(endpointKey, blocks);
  }

  /**
   * Counts a routed request's prompt characters for the learnt characters per token: a batch's prompt by prompt, since
   * vLLM's `vllm:request_prompt_tokens` counts each of its engine requests.
   */
  private recordRouted(request: CycleContext['request']): void {
    const input = request.input;
    if (input !== undefined && isBatch(input)) for (const prompt of batchPrompts(input)) this.charactersPerToken.recordRouted(promptOf(prompt).length);
    else this.charactersPerToken.recordRouted(request.prompt.length);
  }

  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const match = cycle.state.get(this.matchKey);
    const [target] = result.targets;
    if (target === undefined) return;
    // Every pick, a prompt shorter than one block too (it hashes nothing, but vLLM counts its tokens).
    if (this.parameters.autoTune) this.recordRouted(cycle.request);
    // The hit histograms observe a request once, at its primary profile's pick: GIE v1.5.0 and llm-d-router v0.10.0
    // approximateprefix/plugin.go PreRequest record the match of `ProfileResults[PrimaryProfileName]`'s target only,
    // and index the `prefill` profile's pick without observing it. Observed at every profile's pick (until session 77),
    // a P/D request listing the scorer in both profiles was counted twice, its prefill pick's match beside its decode one.
    if (result.primary !== false) this.observeMatch(match, target);
    if (match === undefined) return;
    const hits = matchedBlocksOf(match, target);
    this.picks++;
    this.pickedBlocks += match.windowBlocks;
    this.pickedHits += hits;
    this.record(target.endpoint.key, match);
    this.metrics.setPrefixIndexerSize(this.index.size, this);
  }

  /** Observes a primary pick's prefix match in the hit histograms (`postCycle`, `learnPick`). */
  private observeMatch(match: PrefixMatch | undefined, target: EndpointSnapshot): void {
    if (match === undefined) {
      // The prompt hashed to no block. Upstream still observes the pick: 0 bytes matched, and no ratio of 0 blocks
      // (GIE v1.5.0 and llm-d-router v0.10.0 approximateprefix/plugin.go PreRequest reads the state Produce wrote
      // whatever it hashed; metrics.go recordPrefixCacheMatch), so hit_bytes counts every pick there.
      this.metrics.observePrefixMatch(0, 0, this);
      return;
    }
    const blockSize = match.blockChars;
    this.metrics.observePrefixMatch(matchedBlocksOf(match, target) * blockSize, match.windowBlocks * blockSize, this);
  }

  /**
   * The pod's model server restarted: its new process caches nothing the index learnt from earlier picks. Beyond GIE
   * v1.5.0, whose approximate index keeps such entries until they age out of the pod's LRU, steering every request
   * with those prefixes to the pod for a cold prefill (and, by the prefix weight, ahead of less-loaded pods).
   */
  endpointRestarted(endpointKey: string): void {
    this.index.clearEndpoint(endpointKey);
    this.metrics.setPrefixIndexerSize(this.index.size, this);
  }

  removeEndpoint(endpointKey: string): void {
    this.learntFrom = [];
    this.index.removeEndpoint(endpointKey);
    this.sizedFrom.delete(endpointKey);
    this.charactersPerToken.forget(endpointKey);
    this.afterCapacityChange();
  }

  stats(): PrefixCacheStats {
    return {
      indexEntries: this.index.size,
      indexedEndpoints: this.index.endpointCount,
      picks: this.picks,
      hitRatio: this.pickedBlocks === 0 ? 0 : this.pickedHits / this.pickedBlocks,
      charactersPerToken: this.sizedAtCharactersPerToken,
      learntCharactersPerToken: this.charactersPerToken.value(),
    };
  }

  /**
   * Sizes a candidate's index from its scraped KV capacity when that is new or changed (a restarted vLLM); true when it
   * did (which may have added the endpoint to the index).
   */
  private learnCapacity(candidate: EndpointSnapshot): boolean {
    const { numGpuBlocks, blockSize } = candidate.metrics;
    if (numGpuBlocks === undefined) return false;
    const key = candidate.endpoint.key;
    const last = this.sizedFrom.get(key);
    if (last !== undefined && last.numGpuBlocks === numGpuBlocks && last.blockSize === blockSize) return false;
    this.sizedFrom.set(key, { numGpuBlocks, blockSize });
    // One entry a KV block of the pod's own, as upstream's makeserver sizes it (GIE v1.5.0 and llm-d-router v0.10.0:
    // NumOfGPUBlocks entries): tuned, the pod's blocks are hashed at its own size; under llm-d's 64-token floor a hashed
    // block spans several of the pod's, and the index remembers more than the KV holds, as upstream's does.
    const entries = this.entriesFor(numGpuBlocks, blockSize);
    this.index.setCapacity(key, entries);
    this.logger.debug('prefix index sized from the pod\'s KV capacity', {
      endpoint: key, numGpuBlocks, blockSize, entries, capacity: this.index.capacityOf(key),
    });
    this.afterCapacityChange();
    return true;
  }

  /** Index entries for a pod of `numGpuBlocks` blocks of `blockSize` tokens, at the current characters per token. */
  private entriesFor(numGpuBlocks: number, blockSize: number | undefined): number {
    return Math.ceil(indexCapacityFor(numGpuBlocks, blockSize, this.podOwnBlockChars(blockSize), this.sizedAtCharactersPerToken) * this.parameters.capacityFactor);
  }

  /**
   * Publishes the learnt characters per token when it moved by a hundredth, and with `learnCharactersPerToken`
   * resizes every sized pod's index when it moved by more than a tenth from the value they were sized with: a steady
   * workload's ratio wanders by a few percent, and each resize that shrinks drops entries.
   */
  private followCharactersPerToken(learnt: number): void {
    if (Math.abs(learnt - this.publishedCharactersPerToken) >= 0.01) {
      this.publishedCharactersPerToken = learnt;
      this.metrics.setPrefixCharactersPerToken(learnt);
    }
    if (!this.parameters.learnCharactersPerToken) return;
    const was = this.sizedAtCharactersPerToken;
    if (Math.abs(learnt - was) <= was * CHARACTERS_PER_TOKEN_RESIZE) return;
    this.sizedAtCharactersPerToken = learnt;
    for (const [key, { numGpuBlocks, blockSize }] of this.sizedFrom) this.index.setCapacity(key, this.entriesFor(numGpuBlocks, blockSize));
    this.logger.info('prefix index resized to the prompts\' characters per token', {
      charactersPerToken: Number(learnt.toFixed(3)), was: Number(was.toFixed(3)), ...this.charactersPerToken.stats(), endpoints: this.sizedFrom.size,
    });
    this.afterCapacityChange();
  }

  private afterCapacityChange(): void {
    this.metrics.setPrefixIndexerSize(this.index.size, this);
    const binding = this.index.budgetScale < 1;
    if (binding === this.budgetBinding) return;
    this.budgetBinding = binding;
    this.logger.info(
      binding
        ? 'prefix index budget reached: every pod\'s capacity is scaled down to fit maxIndexEntries'
        : 'prefix index fits maxIndexEntries again: pods hold their full capacity',
      { maxIndexEntries: this.parameters.maxIndexEntries, scale: this.index.budgetScale, endpoints: this.index.endpointCount },
    );
  }
}

export const prefixCacheScorer = definePlugin({
  type: 'prefix-cache-scorer',
  kinds: ['scorer', 'post-cycle'],
  cycleState: { writes: ['prefix-match'] },
  parameters: parameters<PrefixCacheScorerParameters>((fields) => {
    const mode = fields.raw('mode');
    // A loaded config never brings `cache_tracking` here: the loader rewrites it into precise-prefix-cache-scorer
    // (producer-form.ts). Parameters resolved on their own (a typed config) can.
    if (mode === 'cache_tracking') {
      throw new ConfigError(fields.fieldPath('mode'), '"cache_tracking" (llm-d v0.2\'s precise mode) is the precise-prefix-cache-scorer type; use that type here');
    }
    if (mode !== undefined && mode !== null && mode !== 'estimate') {
      throw new ConfigError(fields.fieldPath('mode'), `must be "estimate" or "cache_tracking" (llm-d v0.2's precise mode), got ${describeValue(mode)}`);
    }
    // GIE's later names (pkg/epp/.../prefix/plugin.go): `blockSize` in characters (v1.1.0-v1.3.x), `blockSizeTokens`
    // (v1.4.0 on; a block of N tokens hashes N × 4 characters here, GIE's averageCharactersPerToken) and v1.5.0's
    // `maxPrefixTokensToMatch` (approximateprefix/types.go), which wins over `maxPrefixBlocksToMatch` when positive.
    // As in v1.5.0, `blockSizeTokens` wins over `blockSize`; beside kvroute's `hashBlockSize` either is ambiguous.
    const present = (key: string) => fields.has(key) && fields.raw(key) !== null;
    const upstreamSize = ['blockSizeTokens', 'blockSize'].find(present);
    if (upstreamSize !== undefined && present('hashBlockSize')) {
      throw new ConfigError(fields.fieldPath(upstreamSize), `give the block size once: hashBlockSize (characters) and GIE's ${upstreamSize} are both set`);
    }
    const characters = fields.integer('hashBlockSize', 64, 1);
    const blockSize = fields.integer('blockSize', 64, 1);
    const blockSizeTokens = fields.integer('blockSizeTokens', 16, 1);
    const hashBlockSize = upstreamSize === 'blockSizeTokens' ? blockSizeTokens * CHARACTERS_PER_TOKEN : upstreamSize === 'blockSize' ? blockSize : characters;
    const maxPrefixTokens = fields.integer('maxPrefixTokensToMatch', 0, 0);
    const maxPrefixBlocks = fields.integer('maxPrefixBlocksToMatch', 256, 0);
    const minBlockSizeTokens = fields.integer('minBlockSizeTokens', 1, 1);
    const partialLastBlock = fields.boolean('partialLastBlock', false);
    const autoTune = fields.boolean('autoTune', true);
    // Read whatever autoTune says, so a rendered config (which states it) loads again.
    const tuneBlockSize = fields.boolean('tuneBlockSize', !present('hashBlockSize'));
    const capacityFactor = fields.number('capacityFactor', 1, 1, 64);
    const learnCharactersPerToken = fields.boolean('learnCharactersPerToken', false);
    // Without autoTune every pod keeps lruCapacityPerServer: a factor would be ignored without a word.
    if (!autoTune && capacityFactor !== 1) {
      throw new ConfigError(fields.fieldPath('capacityFactor'), `multiplies the sizes autoTune learns; with autoTune: false give lruCapacityPerServer instead (got ${capacityFactor})`);
    }
    return {
      mode: 'estimate',
      hashBlockSize,
      maxPrefixBlocksToMatch: maxPrefixTokens > 0 ? Math.max(1, Math.floor(maxPrefixTokens / Math.max(hashBlockSize / CHARACTERS_PER_TOKEN, minBlockSizeTokens))) : maxPrefixBlocks,
      maxPrefixTokensToMatch: maxPrefixTokens,
      minBlockSizeTokens,
      partialLastBlock,
      // GIE sizes blocks from the pods under autoTune; kvroute's own hashBlockSize is a fixed size.
      tuneBlockSize: autoTune && tuneBlockSize,
      autoTune,
      capacityFactor,
      // Like tuneBlockSize: read either way, in force only with autoTune (the capacities it scales are autoTune's).
      learnCharactersPerToken: autoTune && learnCharactersPerToken,
      // 0 is the default, as upstream sizes a pod from it only when positive (approximateprefix/plugin.go makeserver).
      lruCapacityPerServer: fields.integer('lruCapacityPerServer', 31250, 0) || 31250,
      maxIndexEntries: fields.integer('maxIndexEntries', DEFAULT_MAX_INDEX_ENTRIES, 1),
      ...readMatchLength(fields),
    };
  }),
  create: (name, resolved, handle) => new PrefixCacheScorer(name, resolved, handle.metrics, handle.logger),
});
