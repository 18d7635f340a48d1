import { ConfigError, describeValue } from '../../config/errors';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import {
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
import { publishPrefixMatch } from '../prefix-match';
import { hashPromptBlocks } from './prefix-hash';
import { PrefixBlockIndex } from './prefix-index';

/** 256 pods × GIE's 31,250 entries per server: ~200 MiB at ~26 bytes an entry. */
export const DEFAULT_MAX_INDEX_ENTRIES = 8_000_000;

export interface PrefixCacheScorerParameters {
  /**
   * `estimate` builds the prefix index from kvroute's own routing history. llm-d's `cache_tracking` (the index fed by
   * vLLM KV events) is the separate `precise-prefix-cache-scorer` plugin here.
   * @default "estimate"
   */
  mode?: 'estimate';
  /** Characters per hashed block; 64 characters ≈ 16 tokens, vLLM's default block size. @default 64 */
  hashBlockSize?: number;
  /** Prompt blocks considered, from the start; longer prompts are truncated. @default 256 */
  maxPrefixBlocksToMatch?: number;
  /**
   * Size each endpoint's index from its real KV capacity (`num_gpu_blocks` × `block_size` tokens in
   * `vllm:cache_config_info`) once scraped, as GIE's `autoTune` does; `false` gives every endpoint
   * `lruCapacityPerServer`. Unlike GIE, the hashed block size stays `hashBlockSize`: the capacity is converted instead.
   * @default true
   */
  autoTune?: boolean;
  /**
   * Block hashes remembered per endpoint (LRU) until its KV capacity is scraped, or always without `autoTune`.
   * 31,250 ≈ (80 GB − 16 GB of weights) / 128 KB of KV per token ≈ 500k tokens ≈ 2M characters ÷ 64 (GIE's sizing).
   * @default 31250
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
  readonly blocks: readonly number[];
  /** Endpoint key → leading blocks it holds. */
  readonly matchedBlocks: ReadonlyMap<string, number>;
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
export function indexCapacityFor(numGpuBlocks: number, blockSizeTokens: number | undefined, hashBlockSize: number): number {
  const tokens = numGpuBlocks * (blockSizeTokens ?? DEFAULT_VLLM_BLOCK_SIZE);
  return Math.ceil((tokens * CHARACTERS_PER_TOKEN) / hashBlockSize);
}

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
export class PrefixCacheScorer implements Scorer, PostCycle {
  readonly type = 'prefix-cache-scorer';
  readonly index: PrefixBlockIndex;
  private readonly matchKey = stateKey<PrefixMatch>('prefix-cache-scorer match');
  private picks = 0;
  private pickedBlocks = 0;
  private pickedHits = 0;
  /** The `num_gpu_blocks` and `block_size` each endpoint's capacity was last computed from. */
  private readonly sizedFrom = new Map<string, { numGpuBlocks: number; blockSize: number | undefined }>();
  private budgetBinding = false;
  /** The snapshot learnt from at each candidate position in the last cycle (see `score`); cleared on pool changes. */
  private learntFrom: (EndpointSnapshot | undefined)[] = [];

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
  }

  addEndpoint(endpoint: Endpoint): void {
    this.learntFrom = [];
    this.index.addEndpoint(endpoint.key);
    this.afterCapacityChange();
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    if (this.parameters.autoTune) {
      // The datastore hands out the same frozen snapshot object while an endpoint's metrics and in-flight count are
      // unchanged, and candidates come in pool order, so comparing with what sat at the same position last time skips
      // all but the few that changed since the last request, without a lookup per candidate.
      const seen = this.learntFrom;
      for (let i = 0; i < candidates.length; i++) {
        const candidate = candidates[i]!;
        if (seen[i] === candidate) continue;
        seen[i] = candidate;
        this.learnCapacity(candidate);
      }
    }
    const { request } = cycle;
    // Only the first maxPrefixBlocksToMatch blocks are hashed: a longer prompt is read no further than they reach.
    const { hashBlockSize, maxPrefixBlocksToMatch } = this.parameters;
    const hashedChars = hashBlockSize * maxPrefixBlocksToMatch;
    const text = request.prompt.length > hashedChars && request.promptHead !== undefined ? request.promptHead(hashedChars) : request.prompt;
    const blocks = hashPromptBlocks(request.model, text, hashBlockSize, maxPrefixBlocksToMatch);
    const scores = new Array<number>(candidates.length).fill(0);
    if (blocks.length === 0) return scores;
    // Every endpoint's match (the candidates' do not depend on the others'), read for the candidates below: cheaper
    // than a set of their keys. Non-candidates in the map are never read for scoring, and the latency scorer and
    // post-cycle read it by candidate key.
    const matchedBlocks = this.index.longestPrefixMatches(blocks);
    cycle.state.set(this.matchKey, { blocks, matchedBlocks });
    publishPrefixMatch(cycle.state, { unit: 'characters', promptLength: request.prompt.length, cachedLength: new Map([...matchedBlocks].map(([k, n]) => [k, n * this.parameters.hashBlockSize])) });
    if (matchedBlocks.size === 0) return scores;
    for (let i = 0; i < candidates.length; i++) {
      const matched = matchedBlocks.get(candidates[i]!.endpoint.key);
      if (matched !== undefined) scores[i] = matched / blocks.length;
    }
    return scores;
  }

  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const match = cycle.state.get(this.matchKey);
    const [target] = result.targets;
    if (match === undefined || target === undefined) return;
    const hits = match.matchedBlocks.get(target.endpoint.key) ?? 0;
    this.picks++;
    this.pickedBlocks += match.blocks.length;
    this.pickedHits += hits;
    const blockSize = this.parameters.hashBlockSize;
    this.metrics.observePrefixMatch(hits * blockSize, match.blocks.length * blockSize);
    this.index.record(target.endpoint.key, match.blocks);
    this.metrics.setPrefixIndexerSize(this.index.size);
  }

  removeEndpoint(endpointKey: string): void {
    this.learntFrom = [];
    this.index.removeEndpoint(endpointKey);
    this.sizedFrom.delete(endpointKey);
    this.afterCapacityChange();
  }

  stats(): PrefixCacheStats {
    return {
      indexEntries: this.index.size,
      indexedEndpoints: this.index.endpointCount,
      picks: this.picks,
      hitRatio: this.pickedBlocks === 0 ? 0 : this.pickedHits / this.pickedBlocks,
    };
  }

  /** Sizes a candidate's index from its scraped KV capacity when that is new or changed (a restarted vLLM). */
  private learnCapacity(candidate: EndpointSnapshot): void {
    const { numGpuBlocks, blockSize } = candidate.metrics;
    if (numGpuBlocks === undefined) return;
    const key = candidate.endpoint.key;
    const last = this.sizedFrom.get(key);
    if (last !== undefined && last.numGpuBlocks === numGpuBlocks && last.blockSize === blockSize) return;
    this.sizedFrom.set(key, { numGpuBlocks, blockSize });
    const entries = indexCapacityFor(numGpuBlocks, blockSize, this.parameters.hashBlockSize);
    this.index.setCapacity(key, entries);
    this.logger.debug('prefix index sized from the pod\'s KV capacity', {
      endpoint: key, numGpuBlocks, blockSize, entries, capacity: this.index.capacityOf(key),
    });
    this.afterCapacityChange();
  }

  private afterCapacityChange(): void {
    this.metrics.setPrefixIndexerSize(this.index.size);
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
  parameters: parameters<PrefixCacheScorerParameters>((fields) => {
    const mode = fields.raw('mode');
    if (mode === 'cache_tracking') {
      throw new ConfigError(
        fields.fieldPath('mode'),
        '"cache_tracking" (the index fed by vLLM KV events) is kvroute\'s precise-prefix-cache-scorer plugin; ' +
          'use that type, or "estimate" (the default) here',
      );
    }
    if (mode !== undefined && mode !== null && mode !== 'estimate') {
      throw new ConfigError(fields.fieldPath('mode'), `must be "estimate", got ${describeValue(mode)}`);
    }
    return {
      mode: 'estimate',
      hashBlockSize: fields.integer('hashBlockSize', 64, 1),
      maxPrefixBlocksToMatch: fields.integer('maxPrefixBlocksToMatch', 256, 1),
      autoTune: fields.boolean('autoTune', true),
      lruCapacityPerServer: fields.integer('lruCapacityPerServer', 31250, 1),
      maxIndexEntries: fields.integer('maxIndexEntries', DEFAULT_MAX_INDEX_ENTRIES, 1),
    };
  }),
  create: (name, resolved, handle) => new PrefixCacheScorer(name, resolved, handle.metrics, handle.logger),
});
