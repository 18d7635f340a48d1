/**
 * What a prefix scorer found for the request in this cycle, published in the cycle state for plugins that need a
 * per-endpoint cached length rather than a score (the `latency-scorer` turns it into uncached tokens). Each prefix
 * scorer publishes in its own unit: the approximate index hashes characters, the precise one tokens. When both run, a
 * match in tokens is kept over one in characters: it is what vLLM will actually find.
 */
import { batchPrompts, isBatch, promptOf } from '@kvroute/protocol/openai';
import { ConfigError } from '../config/errors';
import { DEFAULT_APPROX_PRODUCER_NAME, defaultApproxScorer } from '../config/producer-form';
import type { EndpointSnapshot } from '../datastore/types';
import { CycleState, stateKey, type CycleContext, type Plugin, type PluginHandle } from './framework';
import { LazyReadonlyMap } from './lazy-map';
import type { LLMRequest } from './types';

export interface PrefixMatchEstimate {
  /** `characters` for the approximate `prefix-cache-scorer`, `tokens` for the `precise-prefix-cache-scorer`. */
  readonly unit: 'characters' | 'tokens';
  /**
   * The name of the prefix scorer that made this match, so a reader resolved to one producer can tell its match from
   * another scorer's in the shared slot (`producerMatch`).
   */
  readonly producer?: string;
  /**
   * The whole prompt's length in `unit` (matches cover at most the scorer's hashed leading part of it); a batch's, all
   * its prompts' summed.
   */
  readonly promptLength: number;
  /**
   * Endpoint key → length of the prompt's leading part the endpoint is believed to hold, in `unit`; a batch's, each
   * prompt's leading part summed.
   */
  readonly cachedLength: ReadonlyMap<string, number>;
  /**
   * Optional: the same lengths by position for the candidates the publishing scorer scored (`candidates` is that very
   * array; 0 where `cachedLength` has no entry). A reader walking those candidates reads here instead of looking every
   * key up in `cachedLength` (256 lookups a request at 256 pods); for another candidates array it reads `cachedLength`.
   */
  readonly byCandidate?: {
    readonly candidates: readonly EndpointSnapshot[];
    readonly cachedLength: ArrayLike<number>;
    /** How many of them have a length above 0. */
    readonly matched: number;
  };
  /**
   * Optional: the prompt's leading blocks as the prefix index keys them, when some candidate holds at least one. A
   * block's key is chained over every block before it, so it stands for the prompt's whole leading part through it:
   * requests with equal keys at a block share all of that part. The `latency-scorer` counts the requests in flight per
   * key to see a prefix hot enough to replicate (`slotWait: hot-prefixes`).
   */
  readonly heldBlocks?: HeldBlocks;
  /**
   * Optional: the leading length (in `unit`) the publisher's match window covers, when lengths past it come from sparse
   * probes beyond the window (the approximate scorer's tail probes, for the latency scorer's uncached prefill). Readers
   * that count as upstream does, its producer matching the window alone (the P/D decider), cap lengths here.
   */
  readonly window?: number;
  /**
   * Optional: whether the publisher's index holds as much as `endpointKey`'s cache can (the approximate index at its
   * capacity for the pod, sized from the pod's KV cache), so that a prefill there evicts cached prefixes; one with room
   * evicts little or nothing. The index sees only this EPP's picks: with several replicas a pod's cache fills before
   * any one index does. Absent when the publisher cannot tell (the precise scorer; the approximate one without
   * `autoTune` or at a `capacityFactor` other than 1); readers then take every cache as full.
   */
  readonly cacheFull?: (endpointKey: string) => boolean;
}

/** The prompt's leading blocks by key, and how many of them the longest match covers (`PrefixMatchEstimate.heldBlocks`). */
export interface HeldBlocks {
  /** The chained key of each of the prompt's leading blocks in order, at least `longest` of them. */
  readonly keys: readonly number[];
  /** Blocks of the longest match any candidate holds (at least 1). */
  readonly longest: number;
  /** The leading length, in the match's unit, that the first `count` blocks cover, as `cachedLength` counts it. */
  lengthOf(count: number): number;
}

export const PREFIX_MATCH = stateKey<PrefixMatchEstimate>('prefix match per endpoint');

/**
 * The request's prompt characters as the approximate scorer counts them: `prompt`'s, and a batch's every prompt's (vLLM
 * prefills each; `PrefixMatchEstimate.promptLength` sums them too).
 */
export function promptCharacters(request: LLMRequest): number {
  const input = request.input;
  if (input === undefined || !isBatch(input)) return request.prompt.length;
  let characters = 0;
  for (const prompt of batchPrompts(input)) characters += promptOf(prompt).length;
  return characters;
}

/**
 * The prompt tokens `endpointKey` would still have to prefill by `match`: the uncached length, divided by
 * `charactersPerToken` when the match counts characters; without a match, the whole prompt (every prompt of a batch).
 */
export function uncachedPromptTokens(request: LLMRequest, match: PrefixMatchEstimate | undefined, endpointKey: string, charactersPerToken: number): number {
  if (match === undefined) return promptCharacters(request) / charactersPerToken;
  return uncachedTokensOf(match, match.cachedLength.get(endpointKey) ?? 0, charactersPerToken);
}

/** The prompt tokens left to prefill past a cached length (in `match`'s unit). */
export function uncachedTokensOf(match: PrefixMatchEstimate, cachedLength: number, charactersPerToken: number): number {
  const uncached = Math.max(0, match.promptLength - cachedLength);
  return match.unit === 'tokens' ? uncached : uncached / charactersPerToken;
}

/**
 * The match of another producer than `PREFIX_MATCH`'s, kept when a profile lists two (the loader's approximate scorer
 * beside a precise one, `addDefaultPrefixScorer`), so a reader of either (`producerMatch`) finds it without asking its
 * producer again.
 */
const OTHER_PREFIX_MATCH = stateKey<PrefixMatchEstimate>('prefix match per endpoint, of the other producer');

/** Publishes `match` unless a match in tokens is already there and this one is in characters; keeps the other one. */
export function publishPrefixMatch(state: CycleState, match: PrefixMatchEstimate): void {
  const existing = state.get(PREFIX_MATCH);
  if (existing?.unit === 'tokens' && match.unit === 'characters') {
    state.set(OTHER_PREFIX_MATCH, match);
    return;
  }
  if (existing !== undefined && existing.producer !== match.producer) state.set(OTHER_PREFIX_MATCH, existing);
  state.set(PREFIX_MATCH, match);
}

/**
 * `cachedLength` from parallel arrays of keys and lengths in blocks, as a Map built only when read: the cycle's own
 * readers go by candidate position (`byCandidate`), and with a popular prefix on most of 256 pods, building the Map for
 * every request cost more than scoring it. Readers (the latency scorer, logs, tests) get the Map it replaced.
 */
export class LazyLengths extends LazyReadonlyMap<string, number> {
  constructor(
    private readonly endpointKeys: readonly string[],
    private readonly blocks: readonly number[],
    private readonly blockLength: number,
    /** A block count's length when blocks are not all `blockLength` long (the approximate scorer's tail probes). */
    private readonly lengthOf?: (blocks: number) => number,
  ) {
    super();
  }

  protected build(): Map<string, number> {
    const map = new Map<string, number>();
    const lengthOf = this.lengthOf;
    for (let j = 0; j < this.endpointKeys.length; j++) map.set(this.endpointKeys[j]!, lengthOf !== undefined ? lengthOf(this.blocks[j]!) : this.blocks[j]! * this.blockLength);
    return map;
  }

  /** Known without building the Map: one entry per matched endpoint. */
  override get size(): number { return this.endpointKeys.length; }
}

/** The plugin types that publish `PREFIX_MATCH` and answer `matchRatios`. */
export const PREFIX_SCORER_TYPES = ['prefix-cache-scorer', 'precise-prefix-cache-scorer'] as const;

/**
 * A prefix scorer asked for its match by a plugin that runs before it (or outside the profile that lists it): llm-d's
 * `PrefixCacheMatchInfo` as a ratio, `MatchBlocks ÷ TotalBlocks` per candidate. The caller passes a cycle state of its
 * own, never the profile's: the scorer then publishes `PREFIX_MATCH` there, and what it learns at post-cycle stays its
 * own run's in the profile.
 */
export interface PrefixMatchRatios extends Plugin {
  matchRatios(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): ArrayLike<number>;
}

export function isPrefixMatchRatios(plugin: Plugin): plugin is PrefixMatchRatios {
  return (PREFIX_SCORER_TYPES as readonly string[]).includes(plugin.type) && typeof (plugin as Partial<PrefixMatchRatios>).matchRatios === 'function';
}

/**
 * The prefix scorer a reader of the prefix match (`prefixMatchInfoProducerName` at `path`, value `named`) reads, as
 * llm-d-router v0.10.0's readers key it (`PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName(name)`,
 * `framework/interface/plugin/datakey.go`): a name → that producer (an llm-d producer merged into a scorer is named by
 * the scorer, `config/producer-form.ts`); no name → the key's default producer, `approx-prefix-cache-producer`
 * (`datalayer/attribute/prefix/data_types.go`), whatever precise producer the config has, since the precise one
 * publishes under its own name (`dataproducer/preciseprefixcache/producer.go`). Here that is the config's approximate
 * `prefix-cache-scorer`; among several, the one named `prefix-cache-scorer` (the scorer that reads the default producer
 * when llm-d's form is merged), else the one named after upstream's producer (as the loader names the one it adds
 * beside a precise scorer named `prefix-cache-scorer`). Undefined when the config has no approximate scorer, or, for a
 * reader that reads the match `optional`ly (`inflight-load-producer`: upstream counts the whole prompt without it),
 * several and none of those two: the loader adds one for the readers that require the match upstream
 * (`addDefaultPrefixScorer`), as upstream's data layer creates the default producer for them. Naming that producer,
 * `approx-prefix-cache-producer`, when no plugin has its name is naming none: the same data key.
 * @throws ConfigError when the name is unknown, names another kind of plugin, or the default is ambiguous for a reader
 * that requires it.
 */
export function resolvePrefixProducer(handle: PluginHandle, path: string, named: string, optional = false): PrefixMatchRatios | undefined {
  const plugins = [...(handle.plugins?.() ?? [])];
  const plugin = named !== '' ? handle.plugin?.(named) ?? plugins.find((x) => x.name === named) : undefined;
  // The default producer's own name, with no plugin of that name, is the default: WithNonEmptyProducerName gives the
  // very key a reader naming none reads, whose producer upstream's data layer makes (CreateMissingDataProducers).
  if (named !== '' && !(plugin === undefined && named === DEFAULT_APPROX_PRODUCER_NAME)) {
    if (plugin === undefined) throw new ConfigError(path, `no plugin named ${JSON.stringify(named)}`);
    if (!isPrefixMatchRatios(plugin)) throw new ConfigError(path, `${JSON.stringify(named)} is a ${plugin.type}; name a ${PREFIX_SCORER_TYPES.join(' or ')}`);
    return plugin;
  }
  const approx = plugins.filter((x): x is PrefixMatchRatios => x.type === 'prefix-cache-scorer' && isPrefixMatchRatios(x));
  const chosen = defaultApproxScorer(approx);
  if (chosen !== undefined || optional || approx.length === 0) return chosen;
  throw new ConfigError(path, `the config has several prefix-cache-scorers (${approx.map((x) => x.name).join(', ')}) and none reads upstream's default producer: name the one to read`);
}

/**
 * `source`'s match of the prompt on `candidates` in this cycle: the one it published in the cycle's slot (or as the
 * other producer's) over these very candidates, else asked of it in a cycle state of the reader's own (the profile's state, and what the scorer learns at
 * post-cycle, stay its own run's). Never another scorer's match, which the slot may hold instead.
 */
export function producerMatch(cycle: CycleContext, source: PrefixMatchRatios, candidates: readonly EndpointSnapshot[]): PrefixMatchEstimate | undefined {
  for (const published of [cycle.state.get(PREFIX_MATCH), cycle.state.get(OTHER_PREFIX_MATCH)]) {
    if (published?.producer === source.name && published.byCandidate?.candidates === candidates) return published;
  }
  const scratch: CycleContext = { request: cycle.request, state: new CycleState() };
  source.matchRatios(scratch, candidates);
  return scratch.state.get(PREFIX_MATCH);
}

/** A prefix scorer that records a pick made by a profile not listing it (the approximate one: `PrefixCacheScorer`). */
export interface PickLearner extends PrefixMatchRatios {
  /** `primary`: the pick is the primary profile's, which the prefix-match metrics observe (once per request). */
  learnPick(cycle: CycleContext, target: EndpointSnapshot, primary?: boolean): void;
}

export function isPickLearner(plugin: PrefixMatchRatios): plugin is PickLearner {
  return typeof (plugin as Partial<PickLearner>).learnPick === 'function';
}

/**
 * A prefix plugin that marks the request's blocks on picks made by profiles not listing it (the precise scorer): llm-d-router
 * v0.10.0's precise producer speculates in PreRequest, whatever profiles list its scorer, on the primary profile's
 * pick and on the `prefill` profile's (`dataproducer/preciseprefixcache/prerequest.go` L148-188).
 */
export interface UnlistedPickMarker extends Plugin {
  markUnlistedPick(cycle: CycleContext, target: EndpointSnapshot): void;
}

export function isUnlistedPickMarker(plugin: Plugin): plugin is UnlistedPickMarker {
  return typeof (plugin as Partial<UnlistedPickMarker>).markUnlistedPick === 'function';
}

/**
 * The prefix scorer whose match of a P/D cycle's picks the decider and the conditional-decode gate read when the
 * decode profile lists none, and which records the picks of the profiles not listing it: llm-d-router v0.10.0's
 * approximate producer, which matches before scheduling and records the primary and prefill picks in PreRequest
 * (`approximateprefix/plugin.go`). The precise one when the config has both; the loader adds an approximate one to a
 * P/D config that has neither (`addPdPrefixScorer`).
 */
export function pdPrefixSource(plugins: Iterable<Plugin>): PrefixMatchRatios | undefined {
  let approx: PrefixMatchRatios | undefined;
  for (const plugin of plugins) {
    if (!isPrefixMatchRatios(plugin)) continue;
    if (plugin.type === 'precise-prefix-cache-scorer') return plugin;
    approx ??= plugin;
  }
  return approx;
}

const PICK_MATCH = stateKey<{ readonly target: EndpointSnapshot; readonly cycle: CycleContext }>('prefix match of one pick');

/**
 * `source`'s match of the prompt on `target` alone, in a cycle of its own (`PREFIX_MATCH` in its state): the profiles'
 * matches stay theirs. Made once a cycle for the same target, for the decider and the conditional-decode gate both.
 */
export function pickPrefixMatch(cycle: CycleContext, source: PrefixMatchRatios, target: EndpointSnapshot): CycleContext {
  const made = cycle.state.get(PICK_MATCH);
  if (made?.target === target) return made.cycle;
  const scratch: CycleContext = { request: cycle.request, state: new CycleState() };
  source.matchRatios(scratch, [target]);
  cycle.state.set(PICK_MATCH, { target, cycle: scratch });
  return scratch;
}
