/**
 * Characters of prompt text per vLLM prompt token, learnt from the pods instead of assumed.
 *
 * The approximate prefix index is in characters and vLLM's KV cache in tokens; sizing a pod's index from its
 * `num_gpu_blocks` needs the ratio. GIE assumes 4 (`averageCharactersPerToken`). Real text varies: Qwen3's tokenizer
 * gives ~4.8 characters a token on the English RAG documents of bench/results/gen33-probe, code and CJK give 1–3, a
 * prompt of token ids (joined with spaces here) ~6, and images add tokens with no characters at all. An index sized at
 * 4 on 4.8-character text forgets documents a fifth sooner than the pods evict them, scores them cold and lets load
 * place them on another pod, which then holds them twice.
 *
 * The ratio is the mean prompt length in characters of the requests this EPP routed over the mean prompt length in
 * tokens of the requests the pods finished (`vllm:request_prompt_tokens` `_sum`/`_count`, observed once per finished
 * request: vllm-project/vllm vllm/v1/metrics/loggers.py @ v0.10.0 `record` → `histogram_num_prompt_tokens_request`).
 * Means per request, not totals, because with several EPP replicas each routes only part of what a pod serves; the
 * replicas see the same mix of requests, so each one's mean is the pool's. The chat prompt the EPP hashes carries the
 * Qwen/ChatML turn markers (`promptText` in @kvroute/protocol), so a chat template's own tokens mostly cancel out.
 * What the template adds beyond the hashed text (a tool schema, a default system prompt) counts as tokens without
 * characters and lowers the ratio, which is what sizing wants: those tokens take KV blocks the hashed text cannot.
 *
 * Both sides are sums decayed together by halving once either passes `window` requests, so the ratio follows a change of
 * workload within a few thousand requests and a request's characters and its tokens (counted when it finishes, a
 * response time later) fall in the same stretch.
 */
export class CharactersPerTokenEstimate {
  private routedChars = 0;
  private routedRequests = 0;
  private servedTokens = 0;
  private servedRequests = 0;
  /** Each pod's last `_count` and `_sum`, to turn the cumulative histogram into what it finished since. */
  private readonly lastSeen = new Map<string, { count: number; sum: number }>();

  constructor(private readonly options: CharactersPerTokenOptions = DEFAULT_CHARACTERS_PER_TOKEN_OPTIONS) {}

  /** A request routed by this EPP, `characters` its whole prompt's length (not only the hashed window's). */
  recordRouted(characters: number): void {
    // A request without text (token ids are text here; an empty prompt, an embeddings input that is neither) would
    // count as 0 characters against tokens vLLM counts: leave it out of both means (its tokens cannot be told apart).
    if (!(characters > 0)) return;
    this.routedChars += characters;
    this.routedRequests++;
    this.decay();
  }

  /**
   * A pod's scraped `vllm:request_prompt_tokens` `_count` and `_sum` (cumulative, summed over its engines). The first
   * reading of a pod is its baseline; a count that went down is a restarted vLLM and becomes the new baseline.
   */
  observePod(endpointKey: string, count: number | undefined, sum: number | undefined): void {
    if (count === undefined || sum === undefined || !Number.isFinite(count) || !Number.isFinite(sum)) return;
    const last = this.lastSeen.get(endpointKey);
    this.lastSeen.set(endpointKey, { count, sum });
    if (last === undefined || count < last.count || sum < last.sum) return;
    const finished = count - last.count;
    if (finished <= 0) return;
    this.servedRequests += finished;
    this.servedTokens += sum - last.sum;
    this.decay();
  }

  /** A pod gone from the pool: its next reading (if it comes back) starts a new baseline. */
  forget(endpointKey: string): void {
    this.lastSeen.delete(endpointKey);
  }

  /** The learnt ratio, clamped to `[min, max]`; `fallback` until both sides have `minRequests`. */
  value(): number {
    const { fallback, minRequests, min, max } = this.options;
    if (this.routedRequests < minRequests || this.servedRequests < minRequests || this.servedTokens <= 0) return fallback;
    const ratio = (this.routedChars / this.routedRequests) / (this.servedTokens / this.servedRequests);
    return ratio < min ? min : ratio > max ? max : ratio;
  }

  /** What `value` is computed from, for logs and tests. */
  stats(): { routedRequests: number; meanCharacters: number; servedRequests: number; meanTokens: number } {
    return {
      routedRequests: this.routedRequests,
      meanCharacters: this.routedRequests === 0 ? 0 : this.routedChars / this.routedRequests,
      servedRequests: this.servedRequests,
      meanTokens: this.servedRequests === 0 ? 0 : this.servedTokens / this.servedRequests,
    };
  }

  private decay(): void {
    if (this.routedRequests < this.options.window && this.servedRequests < this.options.window) return;
    this.routedChars /= 2;
    this.routedRequests /= 2;
    this.servedTokens /= 2;
    this.servedRequests /= 2;
  }
}

export interface CharactersPerTokenOptions {
  /** The ratio until learnt: GIE's `averageCharactersPerToken`. */
  readonly fallback: number;
  /** Requests each side needs before the learnt ratio is used. */
  readonly minRequests: number;
  /** Requests either side counts before both are halved. */
  readonly window: number;
  /**
   * Bounds on the learnt ratio. Below 1 is real (a prompt of images is many tokens and little text), but under a
   * quarter of a character a token the two means are more likely from different requests than from the same ones.
   */
  readonly min: number;
  readonly max: number;
}

export const DEFAULT_CHARACTERS_PER_TOKEN_OPTIONS: CharactersPerTokenOptions = Object.freeze({
  fallback: 4,
  minRequests: 16,
  window: 4096,
  min: 0.25,
  max: 16,
});
