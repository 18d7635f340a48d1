import type { EndpointSnapshot } from '../../datastore/types';
import { ENGINE_PRIORITY, type PreRequest } from '../../requestcontrol/hooks';
import { stateKey, type CycleContext, type PluginHandle, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { PREFIX_MATCH, uncachedPromptTokens, type PrefixMatchEstimate } from '../prefix-match';
import type { LLMRequest, SchedulingResult } from '../types';
import { CHARACTERS_PER_TOKEN } from './prefix-cache-scorer';

export interface PrefillPriorityParameters {
  /**
   * Uncached prompt tokens per priority level: a request whose pick must prefill `u` tokens is sent with vLLM's
   * `priority` = floor(u / tokensPerLevel), capped at `maxPriority`. 256 puts a cached chat turn (a few hundred new
   * tokens) one or two levels ahead of a new conversation's or document's full prefill (thousands). @default 256
   */
  tokensPerLevel?: number;
  /** The largest priority sent (vLLM's lowest rank): every longer prefill shares it, first come first served. @default 16 */
  maxPriority?: number;
  /** Characters per token, for a prefix match counted in characters (the approximate prefix scorer's). @default 4 */
  charactersPerToken?: number;
}

/**
 * `prefill-priority`: shortest prefill first, on the engine. It ranks each request for vLLM's priority scheduler by the
 * prompt tokens its chosen pod must still prefill, so a cached turn's short prefill is not queued behind another
 * request's long one.
 *
 * Why: vLLM serves its waiting queue first come first served by default. A pod at 80% load then makes every request
 * wait for whatever prefills arrived before it. A cached chat turn needs ~0.1 s of prefill and a new conversation's
 * system prompt ~0.4 s, so FCFS waits erase the gap the prefix cache made (bench/README.md, "Why cached ≥ 4× at 80% load
 * is out of reach by placement"). Under `--scheduling-policy priority` vLLM orders the waiting queue by (priority,
 * arrival), lower first (vllm/v1/core/sched/request_queue.py @ v0.10.0). A request's `priority` body field sets its
 * place (vllm/entrypoints/openai/protocol.py @ v0.10.0).
 *
 * How: as a scorer it gives every candidate 0 (it decides nothing) and keeps the cycle's prefix match on the request.
 * At pre-request it reads the target's match and sets {@link ENGINE_PRIORITY}; request control then writes
 * `"priority":N` as the body's first member. A body that sets `priority` itself is left as the client sent it, and
 * level 0, vLLM's default, is not written.
 *
 * Needs every pod of the pool on `--scheduling-policy priority`: vLLM's default `fcfs` queue ignores the field (V1's
 * processor accepts any priority since vLLM #19057), so there it does nothing. List it after the prefix scorer in the
 * profile; without a prefix match the whole prompt counts as uncached.
 *
 * Shortest first has no aging: near saturation a stream of short prefills keeps long ones waiting (on the load
 * ladder at 95% of the pool's saturation rate its p90 was 1.37-1.42 s against the default's 0.97-1.05 s), and vLLM's
 * priority preemption takes the largest priority value, the longest prefills, first. Not in the default profile.
 *
 * Upstream: neither GIE nor llm-d sets vLLM's priority field. GIE's priorities (InferenceObjective) order the EPP's own
 * flow-control queue, which this does not touch.
 */
export class PrefillPriority implements Scorer, PreRequest {
  readonly type = 'prefill-priority';
  /** The cycle's prefix match, kept on the request from scoring to pre-request and dropped there. */
  private readonly matchKey = stateKey<PrefixMatchEstimate | null>('prefill-priority match');

  constructor(
    readonly name: string,
    private readonly parameters: Required<PrefillPriorityParameters>,
    readonly handle: PluginHandle,
  ) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    cycle.request.attributes?.set(this.matchKey, cycle.state.get(PREFIX_MATCH) ?? null);
    return new Array<number>(candidates.length).fill(0);
  }

  preRequest(request: LLMRequest, result: SchedulingResult): void {
    const attributes = request.attributes;
    if (attributes === undefined) return;
    const match = attributes.get(this.matchKey);
    if (match === undefined) return; // not scored in this cycle (a request routed without scheduling)
    attributes.set(this.matchKey, null);
    const uncached = uncachedPromptTokens(request, match ?? undefined, result.target.endpoint.key, this.parameters.charactersPerToken);
    attributes.set(ENGINE_PRIORITY, this.priority(uncached));
  }

  /** The level for `uncachedTokens` of prefill. */
  priority(uncachedTokens: number): number {
    return Math.min(this.parameters.maxPriority, Math.floor(uncachedTokens / this.parameters.tokensPerLevel));
  }
}

export const prefillPriority = definePlugin({
  type: 'prefill-priority',
  kinds: ['scorer', 'pre-request'],
  cycleState: { reads: ['prefix-match'] },
  parameters: parameters<PrefillPriorityParameters>((fields) => ({
    tokensPerLevel: fields.integer('tokensPerLevel', 256, 1),
    // vLLM's priority is a Python int; this bound keeps the header-free body edit a few bytes.
    maxPriority: fields.integer('maxPriority', 16, 1, 1_000_000),
    charactersPerToken: fields.number('charactersPerToken', CHARACTERS_PER_TOKEN, 0.5, 64),
  })),
  create: (name, resolved, handle) => new PrefillPriority(name, resolved, handle),
});
