import type { EndpointSnapshot } from '../../datastore/types';
import type { PreRequest } from '../../requestcontrol/hooks';
import type { CycleContext, PluginHandle, Scorer } from '../framework';
import { scoresFromInto, stateKey } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { producerMatch, resolvePrefixProducer, type PrefixMatchRatios } from '../prefix-match';
import type { FieldReader } from '../../config/fields';
import { LOADED_CANDIDATES } from './saturation-filter';
import { UPSTREAM_PREFILL_PROFILE, type LLMRequest, type SchedulingResult } from '../types';

export interface NoHitLruScorerParameters {
  /**
   * Accepted for llm-d configs (up to v0.7, the prefix plugin whose state was read); unused: the match read is the
   * producer's of `prefixMatchInfoProducerName`. @default "prefix-cache-scorer"
   */
  prefixPluginType?: string;
  /** Accepted for llm-d configs; see `prefixPluginType`. @default "prefix-cache-scorer" */
  prefixPluginName?: string;
  /**
   * Endpoints remembered in the cold-request LRU, most recently cold-loaded last; beyond it the endpoint cold-loaded
   * longest ago is forgotten (it then ranks as never used). Upstream's default. @default 1024
   */
  lruSize?: number;
  /**
   * llm-d-router v0.10.0's name of the producer whose prefix match tells a cold request (`nohitlru/no_hit_lru.go`
   * Parameters). Here a `prefix-cache-scorer` or `precise-prefix-cache-scorer` of the config (an llm-d producer merged
   * into a scorer names that scorer). Absent or "": upstream's default producer, the approximate one
   * (`resolvePrefixProducer`), even beside a precise scorer; the loader adds one when the config has none.
   */
  prefixMatchInfoProducerName?: string;
}


/** Upstream's score for every candidate of a request with a prefix hit: the same everywhere, so it decides nothing. */
export const NEUTRAL_SCORE = 0.5;

/**
 * `no-hit-lru-scorer` (llm-d's): spreads *cold* requests — requests no candidate holds any prefix block of — over the
 * endpoints least recently given one, so the new prefixes they bring (a new prompt group's first request, a new
 * document) rotate over the pool and its KV cache fills evenly, instead of piling on whichever pod the load signals
 * happened to favour at the last scrape. A request with a hit anywhere among the candidates scores
 * {@link NEUTRAL_SCORE} everywhere and is left to the prefix and load scorers.
 *
 * A cold request's scores, over N candidates (1 when N = 1): endpoints never given a cold request first, in candidate
 * order, `1 − i/(N−1)`; then the others by their place in the LRU (oldest first, counted over every endpoint the LRU
 * holds, candidates or not), `max(0, 1 − (neverUsed + position)/(N−1))`. It learns at pre-request, once the pick is
 * committed: a cold request's target moves to the LRU's most recent end, followed, under P/D disaggregation, by the
 * pick of the profile named `prefill` (as upstream, which hardcodes that name). Coldness is read from the prefix match of the
 * producer `prefixMatchInfoProducerName` names, else of upstream's default approximate one (`resolvePrefixProducer`),
 * in the same cycle: the match that producer published over these candidates, else asked of it (a precise scorer's
 * match in the profile is not read unless named); without a producer every request is cold, as upstream treats a
 * missing state.
 *
 * Mirrors llm-d/llm-d-router pkg/epp/framework/plugins/scheduling/scorer/nohitlru/no_hit_lru.go @ v0.10.0 (unchanged in
 * its scoring since llm-d-inference-scheduler v0.8.0, 05c91f0d; `pkg/plugins/scorer/no_hit_lru.go` in v0.4.0–v0.7.x, added by 12aa104c "a scoring plugin to distribute new
 * groups evenly"): the type, parameters and defaults, the neutral 0.5, the rank formula, coldness as "no candidate
 * reports a matched block" (v0.8.0; up to v0.7 it was "the prefix plugin found no server at all"), and the update in
 * PreRequest. Two differences: an endpoint that leaves the pool is dropped from the LRU (`removeEndpoint`; upstream
 * keeps the name until evicted), so a replacement pod with an empty cache ranks as never used; and a pod the
 * saturation filter kept in admission mode although it is over a threshold (`LOADED_CANDIDATES`) scores 0 for a cold
 * request and holds no place in the rotation, which runs over the pods with room; a cold request has no reason to
 * join a loaded pod's queue (upstream's GIE admission check keeps such pods and this scorer would rank them as any).
 */
export class NoHitLruScorer implements Scorer, PreRequest {
  readonly type = 'no-hit-lru-scorer';
  /** Endpoint key → nothing; Map order is the LRU order, least recently cold-loaded first. */
  private readonly lru = new Map<string, true>();
  /** Whether the request's last scoring found it cold, read at pre-request (lives on the request's attributes). */
  private readonly coldKey = stateKey<boolean>('no-hit-lru-scorer cold');
  /** The prefix scorer whose match tells a cold request (see `prefixMatchInfoProducerName`). */
  private prefix: PrefixMatchRatios | undefined;

  constructor(
    readonly name: string,
    private readonly parameters: Required<NoHitLruScorerParameters>,
    private readonly handle: PluginHandle,
  ) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const cold = this.isCold(cycle, candidates);
    cycle.request.attributes?.set(this.coldKey, cold);
    if (!cold) {
      out.fill(NEUTRAL_SCORE, 0, candidates.length);
      return;
    }
    // A cold request has no reason to go to a pod the saturation filter kept although it is loaded (admission mode):
    // those score 0 and hold no place in the rotation, which runs over the others (all of them when all are loaded).
    let aside = cycle.state.get(LOADED_CANDIDATES);
    let n = candidates.length;
    if (aside !== undefined) {
      let roomy = 0;
      for (const c of candidates) if (!aside.has(c.endpoint.key)) roomy++;
      if (roomy > 0 && roomy < n) n = roomy;
      else aside = undefined;
    }
    if (n === 1) {
      for (let i = 0; i < candidates.length; i++) out[i] = aside?.has(candidates[i]!.endpoint.key) ?? false ? 0 : 1;
      return;
    }
    // Upstream counts positions over every pod the LRU holds; the loaded pods set aside hold none.
    const position = new Map<string, number>();
    for (const key of this.lru.keys()) if (aside === undefined || !aside.has(key)) position.set(key, position.size);
    let neverUsed = 0;
    for (const c of candidates) if (!position.has(c.endpoint.key) && !(aside?.has(c.endpoint.key) ?? false)) neverUsed++;
    let nextNeverUsed = 0;
    for (let i = 0; i < candidates.length; i++) {
      const key = candidates[i]!.endpoint.key;
      if (aside?.has(key) ?? false) {
        out[i] = 0;
        continue;
      }
      const at = position.get(key);
      const rank = at === undefined ? nextNeverUsed++ : neverUsed + at;
      out[i] = Math.max(0, 1 - rank / (n - 1));
    }
  }

  /** The producer whose match tells a cold request: the one named, else upstream's default approximate one. */
  resolveReferences(): void {
    this.prefix = resolvePrefixProducer(this.handle, `${this.name}.parameters.prefixMatchInfoProducerName`, this.parameters.prefixMatchInfoProducerName ?? '');
  }

  /**
   * A committed cold request's target becomes the most recently cold-loaded endpoint, then, under P/D
   * disaggregation, the `prefill` profile's pick (upstream's PreRequest records the primary profile's target and then
   * the profile named `prefill`, a name it hardcodes: `nohitlru/no_hit_lru.go` defaultPrefillProfile @ llm-d-router
   * v0.10.0).
   */
  preRequest(request: LLMRequest, result: SchedulingResult): void {
    if (request.attributes?.get(this.coldKey) !== true) return;
    this.touch(result.target.endpoint.key, request.requestId);
    const prefill = result.profileTargets?.get(UPSTREAM_PREFILL_PROFILE);
    if (prefill !== undefined) this.touch(prefill.endpoint.key, request.requestId);
  }

  private touch(key: string, requestId: string): void {
    this.lru.delete(key);
    this.lru.set(key, true);
    while (this.lru.size > this.parameters.lruSize) this.lru.delete(this.lru.keys().next().value!);
    this.handle.logger.debug('cold request: endpoint moved to the most recent end of the no-hit LRU', { endpoint: key, requestId });
  }

  /** A pod that left the pool holds no cache; if it returns it ranks as never cold-loaded. */
  removeEndpoint(endpointKey: string): void {
    this.lru.delete(endpointKey);
  }

  /** Endpoint keys in LRU order, least recently cold-loaded first (for logs and tests). */
  order(): readonly string[] {
    return [...this.lru.keys()];
  }

  /** Cold: no candidate holds a leading block of the prompt by the producer's match (or there is no producer). */
  private isCold(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): boolean {
    const match = this.prefix === undefined ? undefined : producerMatch(cycle, this.prefix, candidates);
    if (match === undefined) return true;
    const byCandidate = match.byCandidate;
    // The producer counted these very candidates' matches: no lookup by key.
    if (byCandidate !== undefined && byCandidate.candidates === candidates) return byCandidate.matched === 0;
    for (const candidate of candidates) if ((match.cachedLength.get(candidate.endpoint.key) ?? 0) > 0) return false;
    return true;
  }
}

function optionalProducer(fields: FieldReader): { prefixMatchInfoProducerName?: string } {
  const name = fields.goString('prefixMatchInfoProducerName', 'a plugin name');
  return name === '' ? {} : { prefixMatchInfoProducerName: name };
}

export const noHitLruScorer = definePlugin({
  type: 'no-hit-lru-scorer',
  kinds: ['scorer', 'pre-request'],
  cycleState: { reads: ['prefix-match'] },
  parameters: parameters<NoHitLruScorerParameters>((fields) => ({
    prefixPluginType: fields.optionalString('prefixPluginType') ?? 'prefix-cache-scorer',
    prefixPluginName: fields.optionalString('prefixPluginName') ?? 'prefix-cache-scorer',
    // Upstream treats lruSize <= 0 as "use the default"; here a bad size is an error naming the field.
    lruSize: fields.integer('lruSize', 1024, 1),
    // llm-d-router v0.10.0's parameter (no_hit_lru.go Parameters; "" is unset there), stated only when set.
    ...optionalProducer(fields),
  }) as Required<NoHitLruScorerParameters>),
  create: (name, resolved, handle) => new NoHitLruScorer(name, resolved, handle),
});
