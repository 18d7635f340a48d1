import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, PluginHandle } from '../framework';
import type { PdDecider } from '../pd-decider';
import { definePlugin, parameters } from '../plugin';
import { estimatedChatTokensWithin, estimatedPromptTokens } from '../estimated-tokens';
import type { LLMRequest } from '../types';
import { pdPrefixSource, pickPrefixMatch, PREFIX_MATCH, type PrefixMatchEstimate, type PrefixMatchRatios } from '../prefix-match';

export interface PrefixBasedPdDeciderParameters {
  /**
   * Disaggregate when the decode pod would have at least this many prompt tokens left to prefill (not in its prefix
   * cache); 0 turns disaggregation off.
   * @default 0
   */
  nonCachedTokens?: number;
  /** Disaggregate only prompts of at least this many tokens; 0: any length. @default 0 */
  promptTokens?: number;
}

/**
 * A cached length in `match`'s unit as tokens of a prompt of `inputTokens`, at most the match window's (upstream's
 * CachedBlockCount × BlockSizeTokens counts the blocks its producer hashed, at most `maxPrefixTokensToMatch`; the
 * approximate scorer's tail probes past the window do not count). The precise scorer's are tokens; the approximate
 * scorer's are characters of kvroute's prompt text (a chat's ChatML turns, token ids written out), so the cached share
 * of that text is taken of the estimated tokens (an OpenAI chat's held characters are mapped back to the role and
 * content bytes the estimate counts, `estimatedChatTokensWithin`): upstream's blocks are of the same pseudo-tokens its estimate counts,
 * and for ASCII text the two agree. That share is rounded down to whole tokens: upstream's count is whole blocks of
 * whole pseudo-tokens, while the estimate rounds the prompt's last partial pseudo-token up, so the unrounded share of a
 * prompt of 861 characters (216 tokens) holding one 256-character block is 64.2, not 64, and left 151.8 tokens to
 * prefill where upstream counts 152 (disaggregated at `nonCachedTokens: 152`). For an ASCII prompt the share is short
 * of a whole token above upstream's, so the floor is upstream's count exactly.
 */
function cachedTokensOf(request: LLMRequest, match: PrefixMatchEstimate, cached: number, inputTokens: number): number {
  const held = Math.min(cached, match.window ?? cached);
  if (match.unit === 'tokens') return held;
  if (match.promptLength === 0) return 0;
  const chars = Math.min(held, match.promptLength);
  // An OpenAI chat: the held characters mapped back to the role and content bytes the estimate counts.
  const chat = estimatedChatTokensWithin(request, chars);
  return chat !== undefined ? Math.min(chat, inputTokens) : Math.floor((chars / match.promptLength) * inputTokens);
}

/**
 * `prefix-based-pd-decider` (llm-d-router v0.10.0 `profilehandler/disagg/prefix_based_pd_decider.go`): a separate
 * prefill when the prompt is long enough (`promptTokens`, `nonCachedTokens`) and the decode pod's cached prefix leaves
 * at least `nonCachedTokens` of it to compute. The cached length is the decode profile's prefix scorer's match for the
 * decode pick (upstream reads `PrefixCacheMatchInfo` from that endpoint), or, when the decode profile lists no prefix
 * scorer, the config's prefix scorer's match for the pick alone (`pdPrefixSource`: a P/D config always has one, the
 * loader adding upstream's default approximate producer as a `prefix-cache-scorer` in no profile when it lists none).
 */
class PrefixBasedPdDecider implements PdDecider {
  readonly type = 'prefix-based-pd-decider';
  /** The config's prefix scorer (the precise one when both are listed): asked when the decode profile scored no prefix. */
  private prefixScorer: PrefixMatchRatios | undefined;

  constructor(readonly name: string, private readonly p: Required<PrefixBasedPdDeciderParameters>, private readonly handle?: PluginHandle) {}

  resolveReferences(): void {
    this.prefixScorer = pdPrefixSource(this.handle?.plugins?.() ?? []);
  }

  disaggregate(cycle: CycleContext, decodeTarget: EndpointSnapshot): boolean {
    const { nonCachedTokens } = this.p;
    if (nonCachedTokens === 0) return false;
    let match = cycle.state.get(PREFIX_MATCH);
    // Upstream matches the prompt on every candidate before scheduling (the approx producer is a data producer the
    // director runs first, director.go runDataProducerPlugins), so its decider knows the decode pod's cached prefix
    // even when only the prefill profile lists the prefix scorer, as llm-d's data-parallel guide does
    // (wellknown_configs_test.go "wide-ep-lws-experimental-dp-aware"), or none does. The scheduler records the pick
    // after the cycle, as upstream's producer does in PreRequest.
    if (match === undefined && this.prefixScorer !== undefined) match = pickPrefixMatch(cycle, this.prefixScorer, decodeTarget).state.get(PREFIX_MATCH);
    return this.decide(cycle, match, decodeTarget);
  }

  private decide(cycle: CycleContext, match: PrefixMatchEstimate | undefined, decodeTarget: EndpointSnapshot): boolean {
    const { nonCachedTokens, promptTokens } = this.p;
    // The precise scorer's tokens are the tokenizer's; otherwise upstream's default token producer's estimate.
    const inputTokens = match?.unit === 'tokens' ? match.promptLength : estimatedPromptTokens(cycle.request);
    if (promptTokens > 0 && inputTokens < promptTokens) return false;
    if (inputTokens < nonCachedTokens) return false;
    // No match. From the approximate scorer: the prompt is shorter than one block, where upstream's producer still
    // puts a match of 0 blocks (nothing cached). From the precise scorer: it could not key the prompt (no tokenizer
    // for the model, a tokenization error), where upstream's producer puts nothing and the decider, "unable to read
    // prefix cache state", keeps the request on its decode pod (prefix_based_pd_decider.go).
    if (match === undefined) return this.prefixScorer !== undefined && this.prefixScorer.type !== 'precise-prefix-cache-scorer';
    const key = decodeTarget.endpoint.key;
    const byCandidate = match.byCandidate;
    const i = byCandidate !== undefined ? byCandidate.candidates.indexOf(decodeTarget) : -1;
    const cached = i !== -1 ? byCandidate!.cachedLength[i]! : match.cachedLength.get(key) ?? 0;
    return inputTokens - cachedTokensOf(cycle.request, match, cached, inputTokens) >= nonCachedTokens;
  }

}

export const prefixBasedPdDecider = definePlugin({
  type: 'prefix-based-pd-decider',
  kinds: [],
  parameters: parameters<PrefixBasedPdDeciderParameters>((fields) => ({
    nonCachedTokens: fields.integer('nonCachedTokens', 0, 0),
    promptTokens: fields.integer('promptTokens', 0, 0),
  })),
  create: (name, p, handle) => new PrefixBasedPdDecider(name, p, handle),
});
