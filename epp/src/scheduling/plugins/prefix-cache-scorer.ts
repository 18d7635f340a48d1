import { ConfigError, describeValue } from '../../config/errors';
import type { EndpointSnapshot } from '../../datastore/types';
import { stateKey, type CycleContext, type PostCycle, type ProfileRunResult, type Scorer } from '../framework';
import type { SchedulingMetrics } from '../metrics-hooks';
import { definePlugin, parameters } from '../plugin';
import { publishPrefixMatch } from '../prefix-match';
import { hashPromptBlocks } from './prefix-hash';
import { PrefixBlockIndex } from './prefix-index';

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
   * Block hashes remembered per endpoint (LRU). 31,250 ≈ (80 GB − 16 GB of weights) / 128 KB of KV per token
   * ≈ 500k tokens ≈ 2M characters ÷ 64 (GIE's sizing).
   * @default 31250
   */
  lruCapacityPerServer?: number;
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
  readonly indexedEndpoints: number;
  readonly picks: number;
  /** Blocks of picked requests already held by the picked endpoint ÷ blocks hashed. */
  readonly hitRatio: number;
}

/**
 * `prefix-cache-scorer` in `estimate` mode: scores each candidate by the share of the prompt's leading blocks it is
 * believed to cache, and after each pick records the whole prompt as cached on the chosen endpoint (optimistically:
 * vLLM gives no feedback). See `prefix-hash.ts` for the block hashes and `prefix-index.ts` for the index.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/multi/prefix/plugin.go @ v0.5.1
 */
export class PrefixCacheScorer implements Scorer, PostCycle {
  readonly type = 'prefix-cache-scorer';
  readonly index: PrefixBlockIndex;
  private readonly matchKey = stateKey<PrefixMatch>('prefix-cache-scorer match');
  private picks = 0;
  private pickedBlocks = 0;
  private pickedHits = 0;

  constructor(
    readonly name: string,
    private readonly parameters: Required<PrefixCacheScorerParameters>,
    private readonly metrics: SchedulingMetrics,
  ) {
    this.index = new PrefixBlockIndex(parameters.lruCapacityPerServer);
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    const { request } = cycle;
    const blocks = hashPromptBlocks(
      request.model,
      request.prompt,
      this.parameters.hashBlockSize,
      this.parameters.maxPrefixBlocksToMatch,
    );
    if (blocks.length === 0) return candidates.map(() => 0);
    const candidateKeys = new Set(candidates.map((candidate) => candidate.endpoint.key));
    const matchedBlocks = this.index.longestPrefixMatches(blocks, candidateKeys);
    cycle.state.set(this.matchKey, { blocks, matchedBlocks });
    publishPrefixMatch(cycle.state, { unit: 'characters', promptLength: request.prompt.length, cachedLength: new Map([...matchedBlocks].map(([k, n]) => [k, n * this.parameters.hashBlockSize])) });
    return candidates.map((candidate) => (matchedBlocks.get(candidate.endpoint.key) ?? 0) / blocks.length);
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
    this.index.removeEndpoint(endpointKey);
    this.metrics.setPrefixIndexerSize(this.index.size);
  }

  stats(): PrefixCacheStats {
    return {
      indexEntries: this.index.size,
      indexedEndpoints: this.index.endpointCount,
      picks: this.picks,
      hitRatio: this.pickedBlocks === 0 ? 0 : this.pickedHits / this.pickedBlocks,
    };
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
      lruCapacityPerServer: fields.integer('lruCapacityPerServer', 31250, 1),
    };
  }),
  create: (name, resolved, handle) => new PrefixCacheScorer(name, resolved, handle.metrics),
});
