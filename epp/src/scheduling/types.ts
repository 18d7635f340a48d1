import type { PromptInput } from '@kvroute/protocol/openai';
import type { EndpointSnapshot } from '../datastore/types';
import type { PrefixMatchEstimate } from './prefix-match';
import type { CycleState } from './framework';

/** The parsed request the scheduler sees: nothing of gRPC or HTTP beyond the headers. */
export interface LLMRequest {
  /** `x-request-id` when the client sent one, otherwise generated. */
  readonly requestId: string;
  /** The OpenAI `model` field. */
  readonly model: string;
  /**
   * The text the prefix scorer hashes: `prompt` for completions, or the chat messages flattened in order
   * (role and content of each message) for chat completions.
   */
  readonly prompt: string;
  /**
   * The first `maxChars` characters of `prompt`, where the caller can give them without reading the rest (request
   * control does, from the parsed body): a long chat prompt is a rope until its characters are read, and reading them
   * copies all of it, so a plugin that needs only the head asks for it here. Absent: `prompt.slice(0, maxChars)`.
   */
  readonly promptHead?: (maxChars: number) => string;
  /** Characters `[start, end)` of `prompt` without reading the rest (`promptSlice`); absent: `prompt.slice`. */
  readonly promptSlice?: (start: number, end: number) => string;
  /** What the body asks the model to read, structured, for plugins that tokenize as the engine does. */
  readonly input?: PromptInput;
  /** vLLM's `cache_salt`: prefix-cache entries are shared only between requests with the same salt. */
  readonly cacheSalt?: string;
  /** vLLM's `truncate_prompt_tokens`: the engine prefills and caches only the prompt's last N tokens. */
  readonly truncatePromptTokens?: number;
  /**
   * vLLM serves the request without a prefix-cache lookup (it asks for prompt logprobs: `ParsedRequestBody`), so no
   * pod's cache shortens its prefill.
   */
  readonly skipsPrefixCache?: true;
  /** Request headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * What request-preparing plugins computed before the cycle (token ids, block keys), by typed key; lives as long as
   * the request, so response hooks can read it too.
   */
  readonly attributes?: CycleState;
}

/**
 * The profile name llm-d-router v0.10.0 treats as a P/D request's prefill stage wherever it reads a profile's pick by a
 * hardcoded name, whatever the profile handler's `profiles.prefill` says: the in-flight count releases its pick at the
 * response's start (`dataproducer/inflightload/producer.go` profilePrefill), and the no-hit LRU records its pick beside
 * the primary one (`scorer/nohitlru/no_hit_lru.go` defaultPrefillProfile), and the precise producer speculates on its pick
 * beside the primary one (`dataproducer/preciseprefixcache/prerequest.go` experimentalPrefillProfile).
 */
export const UPSTREAM_PREFILL_PROFILE = 'prefill';

/** What one scheduling cycle returns. */
export interface SchedulingResult {
  /** The chosen endpoint. */
  readonly target: EndpointSnapshot;
  /**
   * Everything the primary profile's picker returned, best first (`targets[0] === target`); more than one only when
   * the picker's `maxNumOfEndpoints` > 1, for callers that want fallbacks.
   */
  readonly targets?: readonly EndpointSnapshot[];
  /** Name of the profile that chose it. */
  readonly profile: string;
  /** Final weighted score of each candidate that survived the filters, by endpoint key (for logs and tests). */
  readonly scores: ReadonlyMap<string, number>;
  /** What the primary profile's prefix scorer found per endpoint (`prefix-match.ts`); absent when none ran. */
  readonly prefixMatch?: PrefixMatchEstimate;
  /**
   * When the profile handler ran several profiles (P/D disaggregation), each one's pick by profile name, those that
   * picked only; absent with one profile.
   */
  readonly profileTargets?: ReadonlyMap<string, EndpointSnapshot>;
}

/** Why a cycle could not pick; the request-control layer maps these to HTTP status codes. */
export type SchedulingErrorReason =
  /** No endpoint is known or ready: 503. */
  | 'no-endpoints'
  /** Endpoints exist but every one was filtered out as saturated: 429. */
  | 'saturated'
  /**
   * Endpoints exist, none was loaded, and some were dropped only because their metrics are old although no scrape of
   * them failed: the scraper is behind (a starved worker thread, a slow metrics page), not the pods gone, and the next
   * scrapes will tell. Flow control holds the request for them, as GIE's detector counts a pod with stale metrics as
   * full; without flow control, 503.
   */
  | 'metrics-late';

export class SchedulingError extends Error {
  constructor(readonly reason: SchedulingErrorReason, message: string) {
    super(message);
    this.name = 'SchedulingError';
  }
}
