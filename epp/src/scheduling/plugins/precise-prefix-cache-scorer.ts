/**
 * `precise-prefix-cache-scorer`: scores each pod by the longest prefix of the request's KV blocks it really holds,
 * as its own vLLM reports them in KV events, instead of guessing from past picks. Loads llm-d's configuration for it
 * unchanged (llm-d/llm-d-inference-scheduler pkg/plugins/scorer/precise_prefix_cache.go @ v0.3.2, and the newest
 * top-level `tokenProcessorConfig`, `speculativeIndexing`, `speculativeTTL`). See README "Precise prefix-cache
 * routing" for the vLLM flags it needs.
 *
 * Per request: before the cycle, the prompt is tokenized exactly as vLLM tokenizes it (the model's own tokenizer and
 * chat template, `@kvroute/tokenizer`) and cut into block keys; the score is the matched share of the request's
 * blocks, each block weighted by the best tier holding it (GPU 1, CPU 0.8, any other 1 by default). After the pick, the request's blocks are marked
 * as speculatively cached on the chosen pod for a short time, so a burst sharing a new prefix follows the first
 * request before the pod's events arrive.
 */
import { LRUCache } from 'lru-cache';
import { performance } from 'node:perf_hooks';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { isIPv6 } from 'node:net';
import type { KvEventBatch } from '@kvroute/protocol/kv-events';
import { batchPrompts, ChatTemplateRefusal, type PromptInput } from '@kvroute/protocol/openai';
import type * as Tokenizer from '@kvroute/tokenizer';
import { parseDuration, type Duration } from '../../config/duration';
import { ConfigError, describeValue } from '../../config/errors';
import { FieldReader } from '../../config/fields';
import { endpointKey } from '../../datastore/endpoint-key';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import { chainStartOf } from '../../kvindex/chain-start';
import { KvEventSubscriber, type ResetReason } from '../../kvindex/event-subscriber';
import { engineKeys, engineRoot } from '../../kvindex/engine-hash';
import { DEFAULT_TIER_WEIGHTS, KvBlockIndex, type TierWeights } from '../../kvindex/kv-block-index';
import type { PrepareRequest, ResponseComplete } from '../../requestcontrol/hooks';
import { stateKey, type CycleContext, type PluginHandle, type PostCycle, type ProfileRunResult, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';
import type { LLMRequest } from '../types';
import { publishPrefixMatch, type PrefixMatchRatios, type UnlistedPickMarker } from '../prefix-match';
import { matchLengthScore, readMatchLength, type MatchLengthParameters } from './match-length';
import { blockKey, rootKey, stringWords } from './prefix-hash';

export interface KvEventsConfig {
  /** Central mode: where the EPP binds its SUB socket for every pod's vLLM to connect to. @default "tcp://*:5557" */
  zmqEndpoint?: string;
  /** The topic prefix subscribed to; vLLM's `topic` must start with it. @default "kv@" */
  topicFilter?: string;
  /** Accepted for llm-d configs; events are applied on the EPP's event loop in order. @default 4 */
  concurrency?: number;
  /** Accepted for llm-d configs; only `vllm` is understood. @default "vllm" */
  engineType?: string;
  /** Per-pod mode: dial every endpoint's publisher (needed for more than one EPP replica). @default false */
  discoverPods?: boolean;
  podDiscoveryConfig?: {
    /** The port vLLM's publisher binds on each pod (`"endpoint": "tcp://*:5557"`). @default 5557 */
    socketPort?: number;
    /** Accepted for llm-d configs; kvroute follows the InferencePool's endpoints. */
    podLabelSelector?: string;
    podNamespace?: string;
    /**
     * llm-d-router v0.10.0's name for `replayPort` (`pkg/kvevents/pool.go` PodDiscoveryConfig.ReplaySocketPort, dialled
     * by `preciseprefixcache/extractor.go`); 0 or negative is unset, as upstream's EffectiveReplayPort. Not with
     * `replayPort` too. @default none
     */
    replaySocketPort?: number;
  };
  /**
   * The port of each pod's replay socket (vLLM's `replay_endpoint`, `tcp://*:<port>`), used to repair a sequence gap and
   * to warm up; without it a gap is counted and the pod's entries are kept. kvroute's name, from before llm-d-router
   * v0.10.0 named it `podDiscoveryConfig.replaySocketPort`. @default none
   */
  replayPort?: number;
  /**
   * kvroute's addition: per-pod mode, how long the EPP's readiness waits at start-up for a pod's subscription to connect
   * before it stops waiting for that pod (`kvindex/event-subscriber.ts`, "Warm-up"). @default "10s"
   */
  warmUpTimeout?: Duration;
}

export interface TokenProcessorConfig {
  /**
   * Tokens per KV block of the index. vLLM's `--block-size`, or a multiple or divisor of it: events at a larger size are
   * cut into blocks, at a smaller one gathered (README, "Any hash algorithm"). @default 16
   */
  blockSize?: number;
  /** The newer name of `blockSize` (llm-d-kv-cache >= v0.8.1; llm-d v0.8.0's v0.7.1 knows only `blockSize`). */
  blockSizeTokens?: number;
  /**
   * vLLM's `PYTHONHASHSEED`: seeds the engine-hash chain (vLLM's `sha256_cbor`, llm-d-kv-cache's hashing) that blocks
   * known by engine hash only are matched by. kvroute's own block keys, from events' token ids, need no seed.
   * @default ""
   */
  hashSeed?: string;
}

/**
 * `matchLengthWeight` and `matchLengthScaleTokens` (`match-length.ts`) are llm-d-router v0.10.0's `prefix-cache-scorer`
 * parameters, which this plugin carries when loaded from llm-d's producer form (a `prefix-cache-scorer` reading a
 * `precise-prefix-cache-producer`, `config/producer-form.ts`); upstream's deprecated all-in-one
 * `precise-prefix-cache-scorer` does not take them (its strict decoder would refuse them), kvroute's does.
 */
export interface PrecisePrefixCacheScorerParameters extends MatchLengthParameters {
  kvEventsConfig?: KvEventsConfig;
  indexerConfig?: {
    tokenProcessorConfig?: TokenProcessorConfig;
    /** Accepted for llm-d configs (in-memory, Redis); kvroute's index is in memory, bounded per pod. */
    kvBlockIndexConfig?: Record<string, unknown>;
    /** Accepted for llm-d configs. */
    prefixStoreConfig?: Record<string, unknown>;
    tokenizersPoolConfig?: {
      /** The model whose tokenizer to use. @default the model named in the pods' event topics, else the request's */
      modelName?: string;
      /** kvroute's addition: a folder holding `tokenizer.json` and `tokenizer_config.json`. */
      localTokenizerDir?: string;
      /**
       * llm-d-kv-cache v0.7.1's local tokenizers (`pkg/tokenization/embedded_tokenizer.go` LocalTokenizerConfig): a
       * model's `tokenizer.json` by model name, and a folder searched for it (a Hugging Face cache, or `<dir>/<model>`).
       */
      local?: { modelTokenizerMap?: Record<string, string>; autoDiscoveryDir?: string };
      /**
       * llm-d-kv-cache v0.7.1's external tokenizer service (`uds_tokenizer.go`): accepted so llm-d's configs load; kvroute
       * tokenizes in process with the same Hugging Face tokenizer, so the socket is not used (logged at start).
       */
      uds?: Record<string, unknown>;
      /** The Hugging Face hub cache to look in. @default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub */
      tokenizersCacheDir?: string;
      /**
       * llm-d-kv-cache's tokenization worker-pool size (`pool_uds.go` @ v0.8.1): accepted so llm-d's configs load, and
       * ignored (kvroute has no such pool: templates render on the event loop, the tokenizer encodes on libuv's pool).
       */
      workersCount?: number;
      huggingFaceToken?: string;
    };
    /**
     * Block weights by the tier holding them: a name is an event's `medium` lower-cased (`gpu` when absent; vLLM's
     * offloading sends `CPU`, a KV connector what its cache reports). A given list replaces the default; a tier it
     * does not name weighs 1 (llm-d-kv-cache `kvblock_scorer.go`). @default [{name: gpu, weight: 1.0}, {name: cpu, weight: 0.8}]
     */
    kvCacheBackendConfigs?: { name: string; weight: number }[];
  };
  /** The newer place of the same settings; wins over `indexerConfig.tokenProcessorConfig`. */
  tokenProcessorConfig?: TokenProcessorConfig;
  /**
   * Mark a picked request's blocks as cached on its pod until its events arrive. @default false, llm-d's
   * (`precise_prefix_cache.go` @ v0.8.0: a Go bool; its deploy examples leave it unset); kvroute's own precise config
   * (`preciseEndpointPickerConfig`) sets it
   */
  speculativeIndexing?: boolean;
  /** How long a speculative entry counts. @default "2s" */
  speculativeTTL?: Duration;
  /** Block keys per pod until the pod's real capacity (`num_gpu_blocks`) is scraped. @default 1000000 */
  maxBlocksPerPod?: number;
  /**
   * Block keys all pods together may hold, for the EPP's memory: beyond it every pod keeps the same fraction of its
   * capacity, its most recently stored blocks (`index-budget.ts`, as `prefix-cache-scorer`'s). kvroute's addition.
   * @default PRECISE_DEFAULT_MAX_INDEX_ENTRIES
   */
  maxIndexEntries?: number;
  /**
   * How a pod's matched blocks (tier-weighted) become its score. `share`: the matched fraction of the request's
   * blocks, llm-d's since llm-d-router v0.9.0 (#1107, e6f6b84f: "switch to absolute matched/total normalization";
   * v0.10.0 `dataproducer/preciseprefixcache/producer.go` matchLen ÷ totalBlocks, `scorer/prefix/plugin.go`
   * matchRatioScore), so a short match weighs little against load. `min-max` is llm-d v0.8.0's
   * (`pkg/epp/framework/plugins/scheduling/scorer/preciseprefixcache/utils.go` indexedScoresToNormalizedScoredPods):
   * among the candidates holding any of the prefix, the longest match scores 1 and the shortest 0, all 1 when they tie
   * (a lone holder scores 1 however little it holds). llm-d truncates a tier-weighted match to whole blocks; `share`
   * keeps the fraction (the same with GPU blocks only).
   * @default "share"
   */
  scoreNormalization?: 'min-max' | 'share';
  /**
   * kvroute's addition: the pool's LoRA adapter names in the order of its pods' `--lora-modules`. A vLLM from #27728
   * (merged 2025-11-03; before it, vLLM 0.10.x included, the engine failed on the first LoRA block event) until #27577
   * (merged 2025-12-30, which added `lora_name`) reports a LoRA block's adapter by `lora_int_id` only (`BlockStored.lora_id`), numbering the
   * adapters it loads at start-up 1, 2, … in that order (vllm/entrypoints/openai/serving_models.py @ v0.10.0), so the
   * i-th name is id i and the blocks match requests for that adapter. Without it, or for ids beyond it (adapters loaded
   * at run time, numbered by each pod's own history), such blocks match no request. Every pod of the pool must list the
   * adapters in this order, as kvroute's manifests write them; `KvAwareRouting` sets it from `decode.loraAdapters`.
   * @default [] (LoRA blocks reported by id only match nothing)
   */
  loraAdapters?: string[];
}

/**
 * An entry of the precise index costs ~400 bytes (epp/README.md "Prefix index memory": a Map of holders per block,
 * per-pod Maps of keys and of engine-hash strings), 15× the approximate index's, so its budget is smaller: ~190 MiB,
 * room left in the EPP's 1 GiB for the tokenizer. It holds 12 pods of 40,000 blocks in full.
 */
export const PRECISE_DEFAULT_MAX_INDEX_ENTRIES = 500_000;

type Resolved = Required<PrecisePrefixCacheScorerParameters>;

interface RequestBlocks {
  readonly keys: readonly number[];
  /** The token ids the keys were made from, and the root they chain from (for the index's parent recovery, `noteRouted`). */
  readonly ids: ArrayLike<number>;
  readonly root: number;
  readonly promptTokens: number;
  /** The same blocks' engine keys (`engine-hash.ts`), when any pod's blocks are known by engine hash only. */
  readonly engineKeys?: readonly number[];
  /**
   * A batch's other prompts, each keyed on its own (the fields above are its first's): vLLM serves each as an engine
   * request of its own, whose blocks chain from the root, not from the prompt before it.
   */
  readonly rest?: readonly RequestBlocks[];
}

/** Each prompt's blocks: the request's, or a batch's prompt by prompt. */
function promptBlocks(blocks: RequestBlocks): readonly RequestBlocks[] {
  return blocks.rest === undefined ? [blocks] : [blocks, ...blocks.rest];
}

/** The request's blocks (a batch's, all its prompts'). */
function totalBlocks(blocks: RequestBlocks): number {
  let total = blocks.keys.length;
  if (blocks.rest !== undefined) for (const prompt of blocks.rest) total += prompt.keys.length;
  return total;
}

/** The request's prompt tokens (a batch's, all its prompts'). */
function totalTokens(blocks: RequestBlocks): number {
  let total = blocks.promptTokens;
  if (blocks.rest !== undefined) for (const prompt of blocks.rest) total += prompt.promptTokens;
  return total;
}

const NO_IDS: ArrayLike<number> = new Uint32Array(0);

/** A request's block keys, as `prepareRequest` leaves them for `score`. */
const BLOCKS = stateKey<RequestBlocks>('precise-prefix-cache-scorer blocks');

/** Reads an optional nested map whose known fields are checked and whose other fields are kept as llm-d has them. */
function nested(fields: FieldReader, key: string, read: (f: FieldReader) => Record<string, unknown>): Record<string, unknown> {
  const f = FieldReader.ofOptionalMap(fields.raw(key), fields.fieldPath(key));
  const out = read(f);
  f.finish();
  return out;
}

function opaque(fields: FieldReader, key: string): Record<string, unknown> {
  const value = fields.raw(key);
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(fields.fieldPath(key), `must be a map, got ${describeValue(value)}`);
  return value as Record<string, unknown>;
}

/**
 * Where a model's tokenizer lies on disk, from kvroute's `localTokenizerDir` or llm-d-kv-cache v0.7.1's `local` block:
 * the folder of the map's `tokenizer.json` for the model; else under `autoDiscoveryDir` the folder named after the
 * model if it holds one (llm-d's "relative path as model name"), else the directory as a Hugging Face cache if it
 * holds the model's repository; else nothing (the caller's `tokenizersCacheDir` is looked in next).
 */
export function localTokenizerSource(config: NonNullable<NonNullable<PrecisePrefixCacheScorerParameters['indexerConfig']>['tokenizersPoolConfig']>, model: string): { path?: string; hubCache?: string } {
  if (config.localTokenizerDir) return { path: config.localTokenizerDir };
  const mapped = config.local?.modelTokenizerMap?.[model];
  if (mapped !== undefined) return { path: nodePath.dirname(mapped) };
  const dir = config.local?.autoDiscoveryDir;
  if (dir === undefined) return {};
  const named = nodePath.join(dir, model);
  if (fs.existsSync(nodePath.join(named, 'tokenizer.json'))) return { path: named };
  return fs.existsSync(nodePath.join(dir, `models--${model.replace(/\//g, '--')}`)) ? { hubCache: dir } : {};
}

/** `{ [key]: read() }` when the field is set, else nothing; the key is allowed either way. */
function optional<T>(f: FieldReader, key: string, read: () => T): Record<string, T> {
  if (!f.has(key)) {
    f.raw(key);
    return {};
  }
  return { [key]: read() };
}

/**
 * llm-d-router v0.10.0's match-length blend; it weighs the matched share (`share`), which v0.8.0's `min-max`
 * normalization replaces, so a positive weight there is refused rather than given a meaning upstream never had.
 */
function matchLength(fields: FieldReader): Required<MatchLengthParameters> {
  const read = readMatchLength(fields);
  if (read.matchLengthWeight > 0 && fields.raw('scoreNormalization') === 'min-max') {
    throw new ConfigError(
      fields.fieldPath('matchLengthWeight'),
      `blends the match length into the matched share (scoreNormalization "share", llm-d-router v0.10.0); with "min-max" (llm-d v0.8.0's) set it to 0 or drop it`,
    );
  }
  return read;
}

/** `share` is llm-d's normalization from llm-d-router v0.9.0; `min-max` v0.8.0's. */
function scoreNormalization(f: FieldReader): 'min-max' | 'share' {
  return f.oneOf('scoreNormalization', ['min-max', 'share'], 'share');
}

/**
 * A 0 size is unset, as upstream's NewChunkedTokenDatabase takes it: `blockSizeTokens` falls back to `blockSize`, then
 * to 16 (`pkg/kvcache/kvblock/token_processor.go` @ llm-d-router v0.10.0); a 0 is dropped, so the other applies.
 */
function tokenProcessor(f: FieldReader): Record<string, unknown> {
  const size = (key: string): Record<string, number> => {
    if (!f.has(key)) return {};
    const value = f.integer(key, 16, 0, 1024);
    return value === 0 ? {} : { [key]: value };
  };
  return {
    ...size('blockSize'),
    ...size('blockSizeTokens'),
    ...optional(f, 'hashSeed', () => hashSeed(f)),
  };
}

/**
 * `hashSeed`: a string, as upstream's strict decoder takes it (`HashSeed string`, pkg/kvcache/kvblock/token_processor.go
 * @ llm-d-router v0.10.0; the factory fails "cannot unmarshal number into Go struct field ... of type string"). A YAML
 * number is refused rather than turned into a string: it no longer spells the PYTHONHASHSEED it stood for (`007` reads
 * as 7, while vLLM hashes the seed string "007"), and every block would then miss. null is Go's unset, as before.
 */
function hashSeed(f: FieldReader): unknown {
  const value = f.raw('hashSeed');
  if (value !== null && typeof value !== 'string') {
    throw new ConfigError(f.fieldPath('hashSeed'), `must be a string, the vLLM pods' PYTHONHASHSEED as they spell it; quote it (hashSeed: "42"), got ${describeValue(value)}`);
  }
  return value;
}

/**
 * `speculativeTTL`: "", zero or negative keep the 2 s default, as upstream's buildSpeculativeCache (`time.ParseDuration`
 * takes a sign; only a positive TTL replaces the default); anything else as a duration.
 */
function speculativeTtl(fields: FieldReader): Duration {
  const value = fields.raw('speculativeTTL');
  if (value === '') return '2s';
  if (typeof value === 'string') {
    try {
      if (value.startsWith('-') || parseDuration(value) <= 0) {
        parseDuration(value.replace(/^-/, ''));
        return '2s';
      }
    } catch {
      // Not a duration: the reader below names the field.
    }
  }
  return fields.duration('speculativeTTL', '2s');
}

/** The replay port either naming gives (`podDiscoveryConfig.replaySocketPort` ≤ 0 is none, as upstream's EffectiveReplayPort). */
function replayPortOf(events: KvEventsConfig): { replayPort?: number } {
  const upstream = events.podDiscoveryConfig?.replaySocketPort;
  if (upstream !== undefined) return upstream > 0 ? { replayPort: upstream } : {};
  return events.replayPort !== undefined ? { replayPort: events.replayPort } : {};
}

export class PrecisePrefixCacheScorer implements Scorer, PostCycle, PrepareRequest, ResponseComplete, PrefixMatchRatios, UnlistedPickMarker {
  readonly type = 'precise-prefix-cache-scorer';
  readonly index: KvBlockIndex;
  readonly subscriber: KvEventSubscriber;
  private readonly blockSize: number;
  private readonly engineRoot: Buffer;
  private readonly speculativeTtlMs: number;
  private readonly endpoints = new Map<string, Endpoint>();
  /** Whether a pod's events carried `extra_keys` (vLLM >= #33304), where salted blocks can be told apart. */
  private eventsCarryExtraKeys = false;
  /** Base-model names seen in event topics: a request naming one uses the base chain, any other name a LoRA's. */
  private readonly baseModels = new Set<string>();
  /**
   * Per endpoint, the base models its event topics named. llm-d-router v0.10.0 chains a block from the topic's model
   * (pool.go processEventBatch `effectiveModelName`; token_processor.go `getInitHash(modelName)`) and a request from the
   * model it targets (preciseprefixcache/blockkeys.go `request.TargetModel`), so a pod publishing under another base
   * model matches none of a request's blocks. kvroute chains every base model from one root, so it drops such a pod's
   * match at scoring instead (`score`).
   */
  private readonly endpointModels = new Map<string, Set<string>>();
  /**
   * Tokenizers by model name; a name without one is kept as such, so one failed load (a first request naming a LoRA
   * adapter before any event named the base model) does not turn precise scoring off for the others. Bounded: without
   * `modelName` and before any event, the name is the client's.
   */
  private readonly tokenizers = new LRUCache<string, Promise<Tokenizer.ModelTokenizer | undefined>>({ max: 32 });
  /**
   * The loaded tokenizers by their `tokenizer.json`: names that resolve to the same files share one (tens of MB each),
   * so a client cycling model names costs file lookups, not a tokenizer per name.
   */
  private readonly loaded = new Map<string, Tokenizer.ModelTokenizer>();
  private readonly capacities = new Map<string, number>();
  /** Per pod, when (the handle's clock) its publisher was last seen restarting (its sequence stepped back). */
  private readonly publisherRestartedAt = new Map<string, number>();
  private readonly warmListeners: (() => void)[] = [];
  /**
   * The kinds of warning each pod has had, so a stream of such events logs once per pod; forgotten when the pod leaves,
   * so pods coming and going do not grow it, and a new pod under the same name is warned about afresh.
   */
  private readonly warned = new Map<string, Set<string>>();

  constructor(
    readonly name: string,
    private readonly parameters: Resolved,
    private readonly handle: PluginHandle,
  ) {
    const tp = { ...parameters.indexerConfig.tokenProcessorConfig, ...parameters.tokenProcessorConfig };
    this.blockSize = tp.blockSizeTokens ?? tp.blockSize ?? 16;
    // The seed of the engine-hash chain (vLLM's PYTHONHASHSEED), for blocks known by engine hash only.
    this.engineRoot = engineRoot(typeof tp.hashSeed === 'string' ? tp.hashSeed : tp.hashSeed === undefined || tp.hashSeed === null ? '' : String(tp.hashSeed));
    this.speculativeTtlMs = parseDuration(parameters.speculativeTTL);
    const nestedTp = parameters.indexerConfig.tokenProcessorConfig;
    if (nestedTp !== undefined && Object.keys(nestedTp).length > 0 && Object.keys(parameters.tokenProcessorConfig).length === 0) {
      // llm-d-kv-cache v0.7.1's kvcache.Config has no tokenProcessorConfig (llm-d v0.8.0 reads only the plugin's own,
      // precise_prefix_cache.go), so there this block is dropped without a word and the block size is 16.
      handle.logger.warn('indexerConfig.tokenProcessorConfig is read (llm-d up to v0.4 put it there), but llm-d v0.8.0 ignores it: move it to parameters.tokenProcessorConfig', { tokenProcessorConfig: nestedTp });
    }
    // llm-d-kv-cache v0.7.1's index backends (in-memory size and podCacheSize, cost-aware, Redis/Valkey): kvroute keeps
    // its own in-memory index, bounded by maxBlocksPerPod / num_gpu_blocks and maxIndexEntries.
    const backendKeys = Object.keys(parameters.indexerConfig.kvBlockIndexConfig ?? {}).filter((k) => k !== 'enableMetrics' && k !== 'metricsLoggingInterval');
    if (backendKeys.length > 0) {
      handle.logger.warn('indexerConfig.kvBlockIndexConfig is not used: kvroute keeps its own in-memory index (bounded by maxBlocksPerPod and maxIndexEntries)', {
        keys: backendKeys.join(','),
      });
    }
    if (parameters.indexerConfig.tokenizersPoolConfig?.uds !== undefined) {
      handle.logger.warn('tokenizersPoolConfig.uds (an external tokenizer service) is not used: kvroute tokenizes in process with the same Hugging Face tokenizer', {});
    }
    // A list replaces the defaults, as llm-d-kv-cache's JSON does (indexer.go `BackendConfigs`): a tier it leaves out
    // weighs 1 there and here. Names are matched lower-cased, as the events' media are.
    const backends = parameters.indexerConfig.kvCacheBackendConfigs;
    const weights: TierWeights = backends === undefined ? DEFAULT_TIER_WEIGHTS : new Map(backends.map((b) => [b.name.toLowerCase(), b.weight]));
    this.index = new KvBlockIndex(this.blockSize, parameters.maxBlocksPerPod, weights, parameters.maxIndexEntries);
    const events = parameters.kvEventsConfig;
    // As llm-d v0.8.0 (precise_prefix_cache.go): with discoverPods every endpoint is dialled, and a zmqEndpoint is
    // bound besides ("global socket mode"); without discoverPods the socket is bound. Left unset, discoverPods is
    // llm-d-kv-cache ≥ v0.5.0's default, true (kvevents.DefaultConfig, pool.go @ v0.7.1), but before v0.5.0 (llm-d
    // ≤ v0.4) the same text meant a socket bound at tcp://*:5557 that the pods connect to: both are done then, so a
    // config that names neither gets events from pods deployed either way.
    const perPod = events.discoverPods !== false;
    const bound = events.discoverPods === true ? events.zmqEndpoint : events.zmqEndpoint ?? 'tcp://*:5557';
    this.subscriber = new KvEventSubscriber({
      mode: perPod ? (bound !== undefined ? 'both' : 'per-pod') : 'central',
      ...(bound !== undefined ? { zmqEndpoint: bound } : {}),
      // The unset-discoverPods default binds an address the config did not name: failing to is not fatal.
      ...(events.discoverPods === undefined && events.zmqEndpoint === undefined ? { bindIsOptional: true } : {}),
      topicFilter: events.topicFilter ?? 'kv@',
      socketPort: events.podDiscoveryConfig?.socketPort ?? 5557,
      ...replayPortOf(events),
      ...(events.warmUpTimeout !== undefined ? { warmUpTimeoutMs: parseDuration(events.warmUpTimeout) } : {}),
      onWarmUpChange: () => { for (const fn of this.warmListeners) fn(); },
      resolvePod: (podId, rank) => this.resolvePod(podId, rank),
      logger: handle.logger,
      events: {
        batch: (endpoint, batch, model) => this.applyBatch(endpoint, batch, model),
        reset: (endpoint, reason) => this.reset(endpoint, reason),
        dropped: (endpoint, reason, count = 1) => handle.metrics.countKvEvents(endpoint ?? 'unknown', `dropped_${reason.replace(/-/g, '_')}`, count),
        gap: (endpoint) => handle.metrics.countKvEventGap(endpoint),
        replay: (endpoint, outcome) => handle.metrics.countKvEventReplay(endpoint, outcome),
      },
    });
    const model = parameters.indexerConfig.tokenizersPoolConfig?.modelName;
    if (model) this.tokenizerFor(model);
  }

  async start(): Promise<void> {
    await this.subscriber.start();
  }

  close(): void {
    this.subscriber.close();
  }

  /** Warm once every pod's KV-event subscription connected or its warm-up wait ran out (per-pod), or bound (central). */
  warm(): boolean {
    return this.subscriber.warm;
  }

  onWarmChange(listener: () => void): void {
    this.warmListeners.push(listener);
  }

  addEndpoint(endpoint: Endpoint): void {
    this.endpoints.set(endpoint.key, endpoint);
    this.index.addPod(endpoint.key);
    this.subscriber.addEndpoint(endpoint.key, endpoint.rank ?? 0);
  }

  /**
   * The pod's vLLM restarted (a scrape read a new process start time, or its counters went back): its entries go (reset reason `pod_restart`), without
   * waiting for the new process's first KV event, which is what tells the subscriber otherwise (a step back in its
   * sequence) and may come only after requests were routed on the stale entries. Unless that step back was already seen
   * since the reading before (`sinceMs`): the index then holds the new process's blocks. Its publishers' sequences are
   * forgotten, so the new process's batches are taken as a publisher joining (replayed from 0 when past it). llm-d's
   * kv-cache manager has no such signal: it keeps a restarted pod's entries until evictions remove them.
   */
  endpointRestarted(endpointKey: string, sinceMs: number): void {
    if (!this.endpoints.has(endpointKey)) return;
    if ((this.publisherRestartedAt.get(endpointKey) ?? -Infinity) >= sinceMs) return;
    this.reset(endpointKey, 'pod-restart');
    this.subscriber.forgetSequences(endpointKey);
  }

  removeEndpoint(endpointKey: string): void {
    this.endpoints.delete(endpointKey);
    this.capacities.delete(endpointKey);
    this.publisherRestartedAt.delete(endpointKey);
    this.endpointModels.delete(endpointKey);
    this.warned.delete(endpointKey);
    this.subscriber.removeEndpoint(endpointKey);
    this.index.removePod(endpointKey);
  }

  async prepareRequest(request: LLMRequest): Promise<void> {
    if (!request.input || !request.attributes) return;
    const tokenizer = await this.tokenizerFor(this.tokenizerModel(request.model));
    if (!tokenizer) return;
    const started = performance.now();
    // A batch is keyed prompt by prompt, as llm-d-router v0.10.0 keys it (preciseprefixcache/blockkeys.go
    // computeBlockKeys: one key list per PerPromptTokens entry, the salt in each one's first block).
    const [first, ...rest] = batchPrompts(request.input);
    const blocks = await this.blocksOf(tokenizer, request, first!);
    if (blocks === undefined) return;
    const others: RequestBlocks[] = [];
    for (const input of rest) {
      const prompt = await this.blocksOf(tokenizer, request, input);
      if (prompt !== undefined) others.push(prompt);
    }
    request.attributes.set(BLOCKS, others.length > 0 ? { ...blocks, rest: others } : blocks);
    this.handle.metrics.observeTokenization((performance.now() - started) / 1000);
  }

  /** One prompt's block keys (`input`: the request's, or one prompt of its batch); undefined when it has none to key. */
  private async blocksOf(tokenizer: Tokenizer.ModelTokenizer, request: LLMRequest, input: PromptInput): Promise<RequestBlocks | undefined> {
    let tokenized: Awaited<ReturnType<typeof tokenizer.promptTokens>>;
    try {
      // vLLM keeps only the last truncate_prompt_tokens tokens (serving_engine.py @ v0.10.0): a text prompt truncated
      // on the left by the tokenizer, which keeps the post-processor's BOS, token ids sliced. Its blocks, and so its
      // BlockStored events, start there.
      tokenized = await tokenizer.promptTokens(input, { truncatePromptTokens: request.truncatePromptTokens });
    } catch (error) {
      // A chat vLLM itself refuses (its answer will be a 400) is the client's mistake, not the EPP's: no keys, and no
      // error line per request (request control logs what a plugin throws as an internal error).
      if (error instanceof ChatTemplateRefusal) {
        this.handle.logger.debug('chat refused as vLLM refuses it; routed without prefix keys', { requestId: request.requestId, reason: error.message });
        return undefined;
      }
      throw error;
    }
    if (!tokenized) return undefined;
    const tokens = tokenized;
    const adapter = request.model === '' || this.baseModels.size === 0 || this.baseModels.has(request.model) ? '' : request.model;
    const root = rootKey(adapter);
    let parent = root;
    const keys: number[] = [];
    const full = Math.floor(tokens.ids.length / this.blockSize);
    // A salt is matched only once the pods' events carry extra keys (vLLM >= #33304): vLLM 0.10.x publishes none, so
    // its salted blocks look unsalted, and a salted request folding its salt in would never match, even the blocks its
    // own prompt stored. Until then the salt is ignored, as llm-d-kv-cache v0.7.1 ignores it on the request side (on the
    // event side it reads every string extra key as a multimodal hash, `kvblock/extra_keys.go` ParseRawExtraKeys, so
    // it never matches a salted or LoRA block whose event carries extra keys; kvroute matches them by salt and adapter).
    const salt = this.eventsCarryExtraKeys ? request.cacheSalt : undefined;
    for (let i = 0; i < full; i++) {
      const extra = i === 0 && salt !== undefined ? stringWords(salt) : undefined;
      parent = blockKey(parent, tokens.ids, i * this.blockSize, (i + 1) * this.blockSize, extra);
      keys.push(parent);
    }
    // Blocks known by engine hash only (hash-only events) are matched through the engine's chain; llm-d-kv-cache
    // hashes no LoRA or salt, so such requests have none.
    const engine = this.index.hasEngineHashKeys && adapter === '' && salt === undefined
      ? engineKeys(tokens.ids, this.blockSize, this.engineRoot)
      : undefined;
    return { keys, ids: tokens.ids, root, promptTokens: tokens.ids.length, ...(engine !== undefined ? { engineKeys: engine } : {}) };
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    const blocks = cycle.request.attributes?.get(BLOCKS);
    for (const c of candidates) this.learnCapacity(c);
    if (!blocks) return candidates.map(() => 0);
    const total = totalBlocks(blocks);
    if (total === 0) return candidates.map(() => 0);
    if (cycle.request.skipsPrefixCache) {
      // vLLM looks no prompt-logprobs request up in its prefix cache (kv_cache_manager.py @ v0.10.0
      // get_computed_blocks): every pod prefills all of it, so no pod scores and the predicted cached length is 0. Its
      // blocks are still stored on the pick (postCycle speculates them, and its events confirm them).
      publishPrefixMatch(cycle.state, { producer: this.name, unit: 'tokens', promptLength: totalTokens(blocks), cachedLength: new Map() });
      return candidates.map(() => 0);
    }
    const minMax = this.parameters.scoreNormalization === 'min-max';
    const candidateKeys = new Set(candidates.map((c) => c.endpoint.key));
    // llm-d takes min and max over every pod of the index (KVM's Lookup with no pod filter, or the pool before the
    // profile's filters with speculative indexing: precise_prefix_cache.go @ v0.8.0), so a holder a filter removed
    // still lowers the others' scores; kvroute looks up the pool it knows.
    const looked = minMax ? { has: (pod: string) => candidateKeys.has(pod) || this.endpoints.has(pod) } : candidateKeys;
    const found = blocks.rest === undefined
      ? this.index.longestPrefix(blocks.keys, looked, this.handle.now(), blocks.engineKeys)
      : this.batchLongestPrefix(blocks, looked);
    // A base-model request matches nothing on a pod whose topics named only other base models (upstream keys their
    // blocks from the other model's root): models sharing a tokenizer (one family's sizes) store equal token blocks.
    if (blocks.root === rootKey('') && cycle.request.model !== '') {
      for (const pod of [...found.keys()]) {
        const models = this.endpointModels.get(pod);
        if (models !== undefined && !models.has(cycle.request.model)) found.delete(pod);
      }
    }
    const matches = minMax ? new Map([...found].filter(([pod]) => candidateKeys.has(pod))) : found;
    cycle.state.set(MATCHES, matches);
    let longest = 0;
    for (const m of matches.values()) if (m.blocks > longest) longest = m.blocks;
    publishPrefixMatch(cycle.state, {
      producer: this.name,
      unit: 'tokens',
      promptLength: totalTokens(blocks),
      cachedLength: new Map([...matches].map(([k, m]) => [k, m.blocks * this.blockSize])),
      // One prompt's chain (a batch's lengths are sums over several).
      ...(longest > 0 && longest <= blocks.keys.length && blocks.rest === undefined ? { heldBlocks: { keys: blocks.keys, longest, lengthOf: (count: number) => count * this.blockSize } } : {}),
    });
    if (!minMax) {
      // llm-d-router v0.10.0: the producer's match info (tier-weighted blocks of the request's total) read by
      // prefix-cache-scorer, with its match-length blend when weighted (upstream truncates the weighted blocks to an
      // int, kvroute keeps the fraction).
      const { matchLengthWeight, matchLengthScaleTokens } = this.parameters;
      return candidates.map((c) => {
        const weight = matches.get(c.endpoint.key)?.weight ?? 0;
        return matchLengthWeight > 0 ? matchLengthScore(weight, total, this.blockSize, matchLengthWeight, matchLengthScaleTokens) : weight / total;
      });
    }
    return minMaxNormalized(candidates.map((c) => matches.get(c.endpoint.key)?.weight), [...found.values()].map((m) => m.weight));
  }

  /**
   * Each pod's leading blocks of each of a batch's prompts, blocks and tier weights summed over the prompts, as
   * llm-d-router v0.10.0 `preciseprefixcache/producer.go` produceFromBlockKeys sums a batch's per-prompt scores.
   */
  private batchLongestPrefix(blocks: RequestBlocks, looked: { has(pod: string): boolean }): Map<string, { blocks: number; weight: number }> {
    const summed = new Map<string, { blocks: number; weight: number }>();
    const now = this.handle.now();
    for (const prompt of promptBlocks(blocks)) {
      if (prompt.keys.length === 0) continue;
      for (const [pod, m] of this.index.longestPrefix(prompt.keys, looked, now, prompt.engineKeys)) {
        const sum = summed.get(pod);
        summed.set(pod, sum === undefined ? { blocks: m.blocks, weight: m.weight } : { blocks: sum.blocks + m.blocks, weight: sum.weight + m.weight });
      }
    }
    return summed;
  }

  /**
   * llm-d's `PrefixCacheMatchInfo` ratio per candidate (`PrefixMatchRatios`): the tier-weighted longest match ÷ the
   * prompt's blocks, as upstream's precise producer gives `MatchBlocks` and `TotalBlocks` (`preciseprefixcache/
   * producer.go` produceFromBlockKeys @ llm-d-router v0.10.0): the `share` score, whichever normalization this scorer
   * scores with, and without its `matchLengthWeight` blend. Pass a cycle state of the caller's own (see `PrefixMatchRatios`).
   */
  matchRatios(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    const scores = this.score(cycle, candidates);
    // The `share` score is the ratio only without the match-length blend.
    if (this.parameters.scoreNormalization !== 'min-max' && this.parameters.matchLengthWeight === 0) return scores;
    const blocks = cycle.request.attributes?.get(BLOCKS);
    const matches = cycle.state.get(MATCHES);
    const total = blocks === undefined ? 0 : totalBlocks(blocks);
    if (total === 0 || matches === undefined) return candidates.map(() => 0);
    return candidates.map((c) => (matches.get(c.endpoint.key)?.weight ?? 0) / total);
  }

  postCycle(cycle: CycleContext, result: ProfileRunResult): void {
    const blocks = cycle.request.attributes?.get(BLOCKS);
    const [target] = result.targets;
    if (!blocks || !target) return;
    const pod = target.endpoint.key;
    const match = cycle.state.get(MATCHES)?.get(pod);
    const engineBlockSize = target.metrics.blockSize ?? this.blockSize;
    if (blocks.rest === undefined) {
      this.handle.metrics.observePreciseMatch(this.predictedHitTokens(match?.blocks ?? 0, blocks.promptTokens, engineBlockSize), blocks.promptTokens);
      this.recordPick(pod, blocks, match);
    } else {
      // Each prompt of a batch by its own match on the pick: what it reuses and what it lacks are its own (upstream's
      // PreRequest speculates every prompt's keys, prerequest.go); each is predicted, as `batchLongestPrefix` matched
      // it, before any is recorded.
      const only = new Set([pod]);
      const now = this.handle.now();
      const prompts = promptBlocks(blocks).filter((prompt) => prompt.keys.length > 0);
      const matches = prompts.map((prompt) => this.index.longestPrefix(prompt.keys, only, now, prompt.engineKeys).get(pod));
      const predicted = prompts.reduce((sum, prompt, i) => sum + this.predictedHitTokens(matches[i]?.blocks ?? 0, prompt.promptTokens, engineBlockSize), 0);
      this.handle.metrics.observePreciseMatch(predicted, totalTokens(blocks));
      for (const prompt of prompts) this.recordPick(pod, prompt, this.index.longestPrefix(prompt.keys, only, now, prompt.engineKeys).get(pod));
    }
    // The request is kept until its response ends (for `responseComplete`); its token ids need not be: the index's
    // bounded ring holds those it keeps.
    cycle.request.attributes?.set(BLOCKS, blocks.rest === undefined
      ? { ...blocks, ids: NO_IDS }
      : { ...blocks, ids: NO_IDS, rest: blocks.rest.map((prompt) => ({ ...prompt, ids: NO_IDS })) });
    this.handle.metrics.setKvIndexBlocks(pod, this.index.blocksOf(pod));
  }

  /**
   * Records a pick of a profile that does not list this scorer, which the scheduler passes for the primary profile and
   * the `prefill` one (`Scheduler.markUnlistedPicks`): llm-d-router v0.10.0's precise producer speculates every key of
   * the request on both in PreRequest, whichever profiles list its scorer, with the same keys and the one TTL
   * (`dataproducer/preciseprefixcache/prerequest.go` L148-193). Under P/D both will hold the prompt: the prefill pod
   * computes it, the decode pod receives it through the KV connector and caches those blocks once they arrive (vLLM's
   * scheduler `_update_waiting_for_remote_kv` → `cache_blocks`, whose `BlockStored` events name the same token ids). So
   * a request right behind it sharing the prefix finds its KV where it will be (the P/D decider reads the decode pod's
   * match) before those events come. Not observed in the match metrics: that is the listed profile's pick.
   */
  markUnlistedPick(cycle: CycleContext, target: EndpointSnapshot): void {
    const blocks = cycle.request.attributes?.get(BLOCKS);
    if (!blocks) return;
    const pod = target.endpoint.key;
    const only = new Set([pod]);
    const now = this.handle.now();
    for (const prompt of promptBlocks(blocks)) {
      if (prompt.keys.length > 0) this.recordPick(pod, prompt, this.index.longestPrefix(prompt.keys, only, now, prompt.engineKeys).get(pod));
    }
    this.handle.metrics.setKvIndexBlocks(pod, this.index.blocksOf(pod));
  }

  /**
   * The prompt tokens vLLM will count as prefix-cache hits of a prompt of `promptTokens` whose leading `matched`
   * configured blocks the pod holds: whole engine blocks only, and never the prompt's last token, which vLLM recomputes
   * for its logits (vllm/v1/core/kv_cache_manager.py get_computed_blocks @ v0.10.0: max_cache_hit_length =
   * num_tokens - 1; its prefix_cache_stats count those hits over every prompt token). A fully cached 48-token prompt of
   * 16-token blocks hits 32 tokens, not 48. `engineBlockSize` is the pod's vLLM block size: a match ending inside an
   * engine block (an engine block of several configured blocks, 1:many) hits only the engine blocks before it.
   */
  private predictedHitTokens(matched: number, promptTokens: number, engineBlockSize: number): number {
    const hittable = Math.min(matched * this.blockSize, Math.max(0, promptTokens - 1));
    return Math.floor(hittable / engineBlockSize) * engineBlockSize;
  }

  /** Records on `pod` a prompt routed there, which it holds `match` of. */
  private recordPick(pod: string, blocks: RequestBlocks, match: { blocks: number; weight: number } | undefined): void {
    const matched = match?.blocks ?? 0;
    // The blocks the pod will reuse are its most recently used, as in vLLM's free queue.
    if (matched > 0) this.index.touch(pod, blocks.keys, matched);
    // Upstream marks every key of the request on the pick (preciseprefixcache/prerequest.go PreRequest @ llm-d-router
    // v0.10.0): besides the blocks it lacks, a prefix matched on a slower tier (CPU) counts as GPU until the pod's own
    // events say where it went, and one matched on GPU keeps counting if vLLM evicts it before the request runs (the
    // request stores it again; a `BlockRemoved` leaves the live mark, as upstream's leaves its speculative entry).
    // Until session 76 a prefix matched wholly on GPU was not marked, and such a removal dropped it at once.
    if (this.parameters.speculativeIndexing) {
      const now = this.handle.now();
      // Every pick sweeps the lapsed marks when a sweep is due (upstream's TTL cache expires them on its own). What it
      // drops may be other pods' (pods no longer picked, whose gauge nothing else would set): each gauge follows its
      // pod's entries. The picked pod's is set by postCycle.
      const swept = this.index.speculate(pod, blocks.keys, now + this.speculativeTtlMs, now);
      for (const other of swept) this.handle.metrics.setKvIndexBlocks(other, this.index.blocksOf(other));
    }
    // So the pod's events that continue a prefix this index never saw stored can still be keyed (`recoverParent`).
    this.index.noteRouted(pod, blocks.root, blocks.keys, blocks.ids);
  }

  /**
   * The request's blocks the pod holds are its most recently used now, the prompt's head last: vLLM frees a finished
   * (or aborted) request's blocks in reverse (vllm/v1/core/kv_cache_manager.py `free` @ v0.10.0), so they leave its
   * cache tail first, after every older block.
   */
  responseComplete(request: LLMRequest, target: Endpoint): void {
    const blocks = request.attributes?.get(BLOCKS);
    if (blocks === undefined) return;
    this.index.touch(target.key, blocks.keys, blocks.keys.length);
    // vLLM frees each prompt of a batch as the engine request it is.
    if (blocks.rest !== undefined) for (const prompt of blocks.rest) this.index.touch(target.key, prompt.keys, prompt.keys.length);
  }

  private applyBatch(endpoint: string, batch: KvEventBatch, model: string | undefined): void {
    if (model) {
      this.rememberModel(model);
      // The topic's model counts as a base model unless the events name a LoRA, as upstream's effectiveModelName.
      let models = this.endpointModels.get(endpoint);
      if (models === undefined) this.endpointModels.set(endpoint, (models = new Set()));
      models.add(model);
    }
    let applied = 0;
    for (const event of batch.events) {
      switch (event.type) {
        case 'BlockStored': {
          // The adapter's root and the first block's salt, read from vLLM's extra keys as requests compute them.
          if (event.extraKeys !== undefined && event.extraKeys !== null) this.eventsCarryExtraKeys = true;
          const start = chainStartOf(event, this.parameters.loraAdapters);
          const outcome = this.index.store(endpoint, event, rootKey(start.adapter), start.cacheSalt !== undefined ? stringWords(start.cacheSalt) : undefined);
          if (outcome.byEngineHash !== undefined) {
            this.handle.metrics.countKvEvents(endpoint, 'indexed_by_engine_hash', 1);
            this.warnOnce(endpoint, 'engine-hash', 'KV event token ids cannot be its blocks\' (none, or not block_size per block); they are indexed by engine hash, and match requests only if the engine hashes with sha256_cbor (vLLM >= 0.10.2; never the hashes of 0.10.0 or 0.10.1) and tokenProcessorConfig.hashSeed is its PYTHONHASHSEED', {
              eventBlockSize: event.blockSize, tokenIds: event.tokenIds.length, blocks: event.blockHashes.length,
            });
            applied++;
          } else if (outcome.recoveredParent) {
            this.handle.metrics.countKvEvents(endpoint, 'recovered_parent', 1);
            this.warnOnce(endpoint, 'recovered-parent', 'a KV event continued a prefix this EPP never saw stored (cached before it subscribed, or a gap); the prefix was keyed from a request routed to the pod', {
              blocks: event.blockHashes.length,
            }, 'info');
            applied++;
          } else if (outcome.skipped) {
            this.handle.metrics.countKvEvents(endpoint, `skipped_${outcome.skipped.replace(/-/g, '_')}`, 1);
            if (outcome.skipped === 'block-size-mismatch') {
              this.warnOnce(endpoint, 'block-size', 'KV event block size is neither a multiple nor a divisor of tokenProcessorConfig.blockSize; its blocks are not indexed', {
                eventBlockSize: event.blockSize, configuredBlockSize: this.blockSize,
              });
            }
          } else {
            applied++;
          }
          break;
        }
        case 'BlockRemoved':
          this.index.remove(endpoint, event, this.handle.now());
          applied++;
          break;
        case 'AllBlocksCleared':
          this.index.clearPod(endpoint);
          applied++;
          break;
      }
    }
    this.handle.metrics.countKvEvents(endpoint, 'received', batch.events.length);
    this.handle.metrics.countKvEvents(endpoint, 'applied', applied);
    this.handle.metrics.setKvIndexBlocks(endpoint, this.index.blocksOf(endpoint));
  }

  private warnOnce(endpoint: string, kind: string, message: string, fields: Record<string, unknown>, level: 'warn' | 'info' = 'warn'): void {
    let kinds = this.warned.get(endpoint);
    if (kinds === undefined) this.warned.set(endpoint, (kinds = new Set()));
    if (kinds.has(kind)) return;
    kinds.add(kind);
    this.handle.logger[level](message, { endpoint, ...fields });
  }

  private reset(endpoint: string, reason: ResetReason | 'pod-restart'): void {
    if (reason === 'publisher-restart') this.publisherRestartedAt.set(endpoint, this.handle.now());
    this.index.clearPod(endpoint);
    // The models its topics named go with its blocks: a pod restarted under another model (same address) names its new
    // one with its next batch, and a request for the old model must not match the new model's blocks there.
    this.endpointModels.delete(endpoint);
    this.handle.metrics.countKvIndexReset(endpoint, reason.replace(/-/g, '_'));
    this.handle.metrics.setKvIndexBlocks(endpoint, 0);
  }

  private rememberModel(model: string): void {
    if (this.baseModels.has(model)) return;
    this.baseModels.add(model);
    if (!this.parameters.indexerConfig.tokenizersPoolConfig?.modelName) this.tokenizerFor(model);
  }

  /**
   * The pool's endpoint a topic names: its `ip:port`, or its IP alone (llm-d's topics). A pod that serves several of
   * the pool's target ports has one endpoint per rank; an IP alone then means the endpoint of the batch's
   * `data_parallel_rank` (kvroute's reading: the i-th target port is served by DP rank i), the first when none has it.
   */
  private resolvePod(podId: string, rank: number): string | undefined {
    // A topic naming an endpoint (`ip:port`, as kvroute's decode pods publish) names the pod: every data-parallel rank
    // publishes under the one topic (they share --kv-events-config), so a batch of rank r goes to the endpoint of rank r
    // at that pod's address when the pool has one, else to the named endpoint (one port fronting every rank).
    const named = this.endpoints.get(podId);
    if (named !== undefined && (named.rank ?? 0) === rank) return podId;
    const host = named?.address ?? podId.replace(/^\[|\]$/g, '');
    let first: Endpoint | undefined;
    for (const e of this.endpoints.values()) {
      if (e.address !== podId && e.address !== host) continue;
      if ((e.rank ?? 0) === rank) return e.key;
      if (first === undefined || (e.rank ?? 0) < (first.rank ?? 0)) first = e;
    }
    if (named !== undefined) return podId;
    if (first !== undefined) return first.key;
    // An IPv6 pod's `$(POD_IP):port` without brackets (the topic the decode pods publish: the kubelet cannot add them
    // for IPv6 only): the address before the last colon, the port after it.
    const colon = podId.lastIndexOf(':');
    const port = podId.slice(colon + 1);
    if (colon > 0 && /^\d{1,5}$/.test(port) && isIPv6(podId.slice(0, colon))) {
      const key = endpointKey(podId.slice(0, colon), Number(port));
      if (this.endpoints.has(key)) return key;
    }
    return undefined;
  }

  private learnCapacity(candidate: EndpointSnapshot): void {
    const engineBlocks = candidate.metrics.numGpuBlocks;
    if (engineBlocks === undefined) return;
    // `num_gpu_blocks` counts vLLM's blocks (`block_size` in the same cache_config_info); the index holds configured
    // ones: a quarter as many at 16 under 64, four times as many at 64 under 16.
    const gpuBlocks = Math.ceil((engineBlocks * (candidate.metrics.blockSize ?? this.blockSize)) / this.blockSize);
    // A pod that offloads (its events store blocks on CPU) holds more than its GPU can, and its page gives no CPU block
    // count: it may keep OFFLOADING_CAPACITY_FACTOR times its GPU's blocks (up to `maxBlocksPerPod`), so a prefix
    // offloaded to CPU keeps scoring until its own BlockRemoved, as llm-d-router v0.10.0's index keeps it (no per-pod
    // bound), without its share of the budget crowding out the pods that do not offload.
    const blocks = this.index.offloads(candidate.endpoint.key)
      ? Math.max(gpuBlocks, Math.min(this.parameters.maxBlocksPerPod, OFFLOADING_CAPACITY_FACTOR * gpuBlocks))
      : gpuBlocks;
    if (this.capacities.get(candidate.endpoint.key) === blocks) return;
    this.capacities.set(candidate.endpoint.key, blocks);
    this.index.setCapacity(candidate.endpoint.key, blocks);
  }

  /**
   * Whose tokenizer keys a request for `model`: the configured `modelName`; else the request's own model when the pods'
   * events name it as a base model (each vLLM server tokenizes with its own model's tokenizer; llm-d-kv-cache's indexer
   * did the same while it took the model per request, `tokenizersPool.Tokenize(renderReq, prompt, modelName)` in
   * pkg/kvcache/indexer.go GetPodScores, before its pool was bound to the one configured model as `modelName` binds it
   * here); else the first base model the events named (a LoRA adapter's request is tokenized by its base model's
   * tokenizer); else, before any event, the request's model.
   */
  private tokenizerModel(model: string): string {
    const configured = this.parameters.indexerConfig.tokenizersPoolConfig?.modelName;
    if (configured) return configured;
    if (this.baseModels.has(model)) return model;
    for (const base of this.baseModels) return base;
    return model;
  }

  /** Loads a model's tokenizer once, in the background; until it is ready requests score 0 (routed by load). */
  private tokenizerFor(model: string): Promise<Tokenizer.ModelTokenizer | undefined> {
    const known = this.tokenizers.get(model);
    if (known) return known;
    const config = this.parameters.indexerConfig.tokenizersPoolConfig ?? {};
    const loading = new Promise<Tokenizer.ModelTokenizer | undefined>((resolve) => setImmediate(() => {
      // Loaded here, not at import: the config module (imported by the cdk8s app) must not load a native addon.
      const { ModelTokenizer, resolveTokenizerFiles, TokenizerNotFoundError } = require('@kvroute/tokenizer') as typeof Tokenizer;
      try {
        // Local first, then the Hugging Face cache, as llm-d-kv-cache v0.7.1's pool chains its tokenizers.
        const local = localTokenizerSource(config, model);
        const files = resolveTokenizerFiles({
          model,
          ...local,
          ...(local.hubCache === undefined && config.tokenizersCacheDir ? { hubCache: config.tokenizersCacheDir } : {}),
        });
        let tokenizer = this.loaded.get(files.tokenizerJson);
        if (tokenizer === undefined) {
          tokenizer = ModelTokenizer.load(files);
          this.loaded.set(files.tokenizerJson, tokenizer);
          this.handle.logger.info('tokenizer loaded', { model, source: files.source });
        }
        resolve(tokenizer);
      } catch (e) {
        // Not found, or files that do not load (a corrupt tokenizer.json): the model's requests score 0 either way.
        const message = e instanceof TokenizerNotFoundError ? 'no tokenizer: precise prefix scoring is off for this model, its requests are routed by the other scorers'
          : 'tokenizer failed to load: precise prefix scoring is off for this model, its requests are routed by the other scorers';
        this.handle.logger.error(message, { model, error: e instanceof Error ? e.message : String(e) });
        resolve(undefined);
      }
    }));
    this.tokenizers.set(model, loading);
    return loading;
  }
}

/**
 * llm-d's min-max normalization (`utils.go` indexedScoresToNormalizedScoredPods and getMinMax @ v0.8.0): min and max
 * over `population` (the weights of every pod holding the prefix's first block, which KVM's score map holds, a holder
 * whose only copy is in a tier weighted 0 included at 0: `kvblock_scorer.go` @ llm-d-kv-cache v0.7.1; the holders of
 * `weights` by default), each holder then (w − min) / (max − min), every holder 1 when min equals max; `undefined` (a
 * pod holding nothing) 0.
 */
export function minMaxNormalized(weights: readonly (number | undefined)[], population: readonly (number | undefined)[] = weights): number[] {
  let min = Infinity;
  let max = -Infinity;
  for (const w of population) {
    if (w === undefined) continue;
    if (w < min) min = w;
    if (w > max) max = w;
  }
  return weights.map((w) => (w === undefined ? 0 : max === min ? 1 : Math.max(0, (w - min) / (max - min))));
}

function loraAdapterOrder(fields: FieldReader): string[] {
  const names = fields.stringList('loraAdapters', []);
  // The position is the id: a repeated name would give one adapter two ids and leave the other's blocks to it.
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (seen.has(name)) throw new ConfigError(`${fields.fieldPath('loraAdapters')}[${i}]`, `names ${describeValue(name)} twice; list each adapter once, in --lora-modules order`);
    seen.add(name);
  });
  return names;
}

/**
 * How many times its GPU's blocks a pod that offloads to CPU may keep in the index: CPU tiers are commonly sized a few
 * times the GPU's KV cache (vLLM's `--kv-offloading-size` in GiB beside `--gpu-memory-utilization`; LMCache's
 * `max_local_cpu_size`), and vLLM's page reports none of it.
 */
const OFFLOADING_CAPACITY_FACTOR = 4;

const MATCHES = stateKey<ReadonlyMap<string, { blocks: number; weight: number }>>('precise-prefix-cache-scorer matches');

export const precisePrefixCacheScorer = definePlugin({
  type: 'precise-prefix-cache-scorer',
  kinds: ['prepare-request', 'scorer', 'post-cycle', 'response-complete'],
  cycleState: { writes: ['prefix-match'] },
  parameters: parameters<PrecisePrefixCacheScorerParameters>((fields) => {
    const kvEventsConfig = nested(fields, 'kvEventsConfig', (f) => {
      const zmqEndpoint = f.optionalString('zmqEndpoint');
      if (zmqEndpoint !== undefined && !/^(tcp|ipc|inproc):\/\/\S+$/.test(zmqEndpoint)) {
        throw new ConfigError(f.fieldPath('zmqEndpoint'), `must be a ZMQ endpoint like "tcp://*:5557", got ${describeValue(zmqEndpoint)}`);
      }
      const engineType = f.optionalString('engineType');
      if (engineType !== undefined && engineType !== 'vllm') throw new ConfigError(f.fieldPath('engineType'), `only "vllm" is supported, got ${describeValue(engineType)}`);
      return {
        ...(zmqEndpoint !== undefined ? { zmqEndpoint } : {}),
        topicFilter: f.optionalString('topicFilter') ?? 'kv@',
        concurrency: f.integer('concurrency', 4, 1),
        ...(engineType !== undefined ? { engineType } : {}),
        // Unset is kept apart from true: it means both generations' defaults (see the constructor).
        ...optional(f, 'discoverPods', () => f.boolean('discoverPods', true)),
        podDiscoveryConfig: nested(f, 'podDiscoveryConfig', (p) => ({
          socketPort: p.integer('socketPort', 5557, 1, 65535),
          ...optional(p, 'podLabelSelector', () => p.raw('podLabelSelector')),
          ...optional(p, 'podNamespace', () => p.raw('podNamespace')),
          ...optional(p, 'replaySocketPort', () => p.integer('replaySocketPort', 0, Number.MIN_SAFE_INTEGER, 65535)),
        })),
        ...optional(f, 'replayPort', () => {
          if (f.has('podDiscoveryConfig') && FieldReader.ofOptionalMap(f.raw('podDiscoveryConfig'), f.fieldPath('podDiscoveryConfig')).has('replaySocketPort')) {
            throw new ConfigError(f.fieldPath('replayPort'), 'names the replay port podDiscoveryConfig.replaySocketPort names too (llm-d-router v0.10.0\'s name for it): set one');
          }
          return f.integer('replayPort', 5558, 1, 65535);
        }),
        ...optional(f, 'warmUpTimeout', () => f.duration('warmUpTimeout', '10s')),
      };
    });
    const indexerConfig = nested(fields, 'indexerConfig', (f) => {
      const backends = f.raw('kvCacheBackendConfigs');
      if (backends !== undefined && backends !== null) {
        if (!Array.isArray(backends)) throw new ConfigError(f.fieldPath('kvCacheBackendConfigs'), 'must be a list of {name, weight} (a tier name, e.g. gpu or cpu, and a non-negative weight)');
        const seen = new Set<string>();
        backends.forEach((b: { name?: unknown; weight?: unknown } | null, i) => {
          const at = `${f.fieldPath('kvCacheBackendConfigs')}[${i}]`;
          if (typeof b?.name !== 'string' || b.name.trim() === '' || b.name.trim() !== b.name) throw new ConfigError(`${at}.name`, `must be a tier name (an event's medium, e.g. gpu or cpu) without surrounding spaces, got ${JSON.stringify(b?.name)}`);
          if (typeof b.weight !== 'number' || !Number.isFinite(b.weight) || b.weight < 0) throw new ConfigError(`${at}.weight`, `must be a non-negative number, got ${JSON.stringify(b.weight)}`);
          const tier = b.name.toLowerCase();
          if (seen.has(tier)) throw new ConfigError(`${at}.name`, `names tier "${tier}" a second time (names are compared lower-cased)`);
          seen.add(tier);
        });
      }
      const tokenizers = nested(f, 'tokenizersPoolConfig', (t) => {
        // llm-d-kv-cache's newer nesting (llm-d v0.8.0 deploy/config/sim-epp-kvcache-config.yaml):
        // `hf: {enabled, huggingFaceToken, tokenizersCacheDir}`; its cache directory is the flat field's.
        const hf = nested(t, 'hf', (h) => ({
          ...optional(h, 'enabled', () => h.boolean('enabled', true)),
          ...optional(h, 'huggingFaceToken', () => h.raw('huggingFaceToken')),
          ...optional(h, 'tokenizersCacheDir', () => h.optionalString('tokenizersCacheDir')),
        })) as { tokenizersCacheDir?: string };
        const cacheDir = t.optionalString('tokenizersCacheDir') ?? hf.tokenizersCacheDir;
        const local = nested(t, 'local', (l) => {
          const map = l.raw('modelTokenizerMap');
          if (map !== undefined && map !== null) {
            if (typeof map !== 'object' || Array.isArray(map)) throw new ConfigError(l.fieldPath('modelTokenizerMap'), `must be a map of model name to the path of its tokenizer.json, got ${describeValue(map)}`);
            for (const [model, file] of Object.entries(map)) {
              if (typeof file !== 'string' || file === '') throw new ConfigError(`${l.fieldPath('modelTokenizerMap')}.${model}`, `must be the path of a tokenizer.json, got ${describeValue(file)}`);
            }
          }
          const fileName = l.optionalString('autoDiscoveryTokenizerFileName');
          if (fileName !== undefined && fileName !== 'tokenizer.json') {
            throw new ConfigError(l.fieldPath('autoDiscoveryTokenizerFileName'), `kvroute reads tokenizer.json (beside its tokenizer_config.json) only, got ${JSON.stringify(fileName)}`);
          }
          return {
            ...(map !== undefined && map !== null ? { modelTokenizerMap: map as Record<string, string> } : {}),
            ...optional(l, 'autoDiscoveryDir', () => l.optionalString('autoDiscoveryDir')),
          };
        });
        const uds = opaque(t, 'uds');
        return {
        ...(Object.keys(local).length > 0 ? { local } : {}),
        ...(t.has('uds') ? { uds } : {}),
        ...optional(t, 'modelName', () => t.optionalString('modelName')),
        ...optional(t, 'localTokenizerDir', () => t.optionalString('localTokenizerDir')),
        ...(cacheDir !== undefined ? { tokenizersCacheDir: cacheDir } : {}),
        ...optional(t, 'workersCount', () => t.integer('workersCount', 5, 1)),
        ...optional(t, 'huggingFaceToken', () => t.raw('huggingFaceToken')),
        ...optional(t, 'minPrefixOverlapRatio', () => t.raw('minPrefixOverlapRatio')),
        };
      });
      return {
        tokenProcessorConfig: nested(f, 'tokenProcessorConfig', tokenProcessor),
        kvBlockIndexConfig: opaque(f, 'kvBlockIndexConfig'),
        prefixStoreConfig: opaque(f, 'prefixStoreConfig'),
        tokenizersPoolConfig: tokenizers,
        ...(Array.isArray(backends) ? { kvCacheBackendConfigs: backends } : {}),
      };
    });
    const topLevel = FieldReader.ofOptionalMap(fields.raw('tokenProcessorConfig'), fields.fieldPath('tokenProcessorConfig'));
    const tokenProcessorConfig = tokenProcessor(topLevel);
    topLevel.finish();
    return {
      kvEventsConfig: kvEventsConfig as KvEventsConfig,
      indexerConfig: indexerConfig as Resolved['indexerConfig'],
      tokenProcessorConfig: tokenProcessorConfig as TokenProcessorConfig,
      speculativeIndexing: fields.boolean('speculativeIndexing', false),
      // A TTL that is not positive keeps the 2 s default (`preciseprefixcache/prerequest.go` buildSpeculativeCache @ v0.10.0).
      speculativeTTL: speculativeTtl(fields),
      maxBlocksPerPod: fields.integer('maxBlocksPerPod', 1_000_000, 1),
      maxIndexEntries: fields.integer('maxIndexEntries', PRECISE_DEFAULT_MAX_INDEX_ENTRIES, 1),
      scoreNormalization: scoreNormalization(fields),
      loraAdapters: loraAdapterOrder(fields),
      ...matchLength(fields),
    };
  }),
  create: (name, resolved, handle) => new PrecisePrefixCacheScorer(name, resolved, handle),
});
