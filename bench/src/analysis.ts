/**
 * What a run achieved, measured from the outside: success rate, prefix-cache hit rate from the pods' own counters,
 * session stickiness from the endpoint that served each request, and TTFT split by how much of the prompt the server
 * reports as cached.
 */
import type { RequestRecord } from './run';

export interface LatencySummary {
  readonly count: number;
  readonly p50: number | null;
  readonly p90: number | null;
}

export interface PolicyResult {
  readonly policy: string;
  readonly requests: number;
  readonly succeeded: number;
  /** Successful requests whose stream carried no content token: they have no TTFT (`ttftOf`). */
  readonly noToken: number;
  readonly successRate: number;
  /** Prefix-cache hits / queries in tokens, summed over the pods (vLLM's counters). */
  readonly hitRate: number;
  /**
   * Cached prompt tokens / prompt tokens as the responses report them (`usage.prompt_tokens_details.cached_tokens`),
   * over the successful requests that report it; null when none does. vLLM 0.10 counts a prefix-cache lookup each time
   * its scheduler looks a waiting request up, so a request blocked or preempted several times is counted several times
   * in `hitRate` (vllm/v1/core/sched/scheduler.py, kv_cache_manager.py @ v0.10.0): under preemption only this one is
   * the share of prompts served from the cache.
   */
  readonly servedHitRate: number | null;
  /** Prefix-cache lookups in tokens over the prompt tokens sent: above 1, vLLM looked prompts up more than once. */
  readonly lookupsPerPromptToken: number | null;
  /** The best hit rate any router could reach on the requests of this run (see oracle.ts). */
  readonly bestHitRate: number | null;
  /** hitRate / bestHitRate. */
  readonly hitRateOfBest: number | null;
  /** Share of chat requests served by the endpoint that served the session's first turn. */
  readonly requestStickiness: number;
  /** Share of sessions whose every turn was served by one endpoint. */
  readonly sessionsOnOnePod: number;
  /** Sessions whose turns moved between endpoints, with how many moves each. */
  readonly sessionMoves: Record<string, number>;
  readonly ttft: LatencySummary;
  /** TTFT of requests with at least half the prompt cached. */
  readonly ttftCached: LatencySummary;
  /** TTFT of requests with under a tenth of the prompt cached. */
  readonly ttftUncached: LatencySummary;
  /** Median uncached TTFT / median cached TTFT. */
  readonly cachedSpeedup: number | null;
  /**
   * Successful requests per simulated second (the clock the TTFTs are read in: wall seconds × `timeScale`), over the
   * run from its start to its last answer, as vLLM's `request_throughput = completed / dur_s` (vllm/benchmarks/serve.py
   * `calculate_metrics`) counts it in the clock its rates and latencies share. Per wall second until session 76, which
   * read the same at time scale 1 and, for the `poisson-groups` ramp at its 0.127, 1/0.127 of the simulated rates beside it.
   */
  readonly throughputRps: number;
  readonly wallSeconds: number;
  /** Requests served by each endpoint. */
  readonly perEndpoint: Record<string, number>;
  readonly failures: { readonly status: number; readonly error: string }[];
}

/**
 * The q-quantile of `values`, linear between the two closest ranks: numpy's default `percentile`/`median`, which is
 * what vLLM's `vllm bench serve` (vllm/benchmarks/serve.py `calculate_metrics`) and inference-perf
 * (inference_perf/reportgen/base.py `summarize`) report, so a p50 or p90 here reads like theirs; the median of two
 * values is their mean. Null when there are none.
 */
export function quantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = Math.min(1, Math.max(0, q)) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Seconds from sending a request to its first content token; undefined for a failed request and for a successful one
 * whose stream carried no content token, which has no TTFT and is left out of TTFT percentiles, as inference-perf v0.6.1
 * leaves it out: inference_perf/apis/streaming_parser.py `parse_sse_stream` timestamps content-bearing chunks only, and
 * reportgen/base.py `summarize_requests` appends None for a request without token times and filters the Nones out
 * before the percentiles. (Its end-to-end time is not a first token: counted as one, a reply that never streamed would
 * read as a late first token.)
 */
export function ttftOf(r: RequestRecord): number | undefined {
  return r.result.ok ? r.result.ttft : undefined;
}

/** Successful requests whose stream carried no content token (no TTFT; `ttftOf`). */
export function noTokenCount(results: readonly { readonly ok: boolean; readonly ttft?: number }[]): number {
  return results.filter((r) => r.ok && r.ttft === undefined).length;
}

/** A count of failed requests, with the successful ones that carried no content token beside it when there are any. */
export function failedText(failed: number, noToken: number): string {
  return noToken > 0 ? `${failed}, ${noToken} without a token` : String(failed);
}

function summary(values: number[]): LatencySummary {
  return { count: values.length, p50: quantile(values, 0.5), p90: quantile(values, 0.9) };
}

export function analyze(policy: string, records: readonly RequestRecord[], counters: { hits: number; queries: number },
  wallSeconds: number, bestHitRate: number | null, timeScale: number): PolicyResult {
  const ok = records.filter((r) => r.result.ok);
  const perEndpoint: Record<string, number> = {};
  for (const r of ok) if (r.result.servedBy) perEndpoint[r.result.servedBy] = (perEndpoint[r.result.servedBy] ?? 0) + 1;

  // Stickiness over successful turns, in turn order.
  const bySession = new Map<string, RequestRecord[]>();
  for (const r of ok) {
    if (r.kind !== 'chat' || !r.sessionId) continue;
    if (!bySession.has(r.sessionId)) bySession.set(r.sessionId, []);
    bySession.get(r.sessionId)!.push(r);
  }
  let sticky = 0;
  let chatRequests = 0;
  let onOne = 0;
  const sessionMoves: Record<string, number> = {};
  for (const [id, turns] of bySession) {
    turns.sort((a, b) => (a.turn ?? 0) - (b.turn ?? 0));
    const home = turns[0].result.servedBy;
    let moves = 0;
    turns.forEach((t, i) => {
      chatRequests++;
      if (t.result.servedBy === home) sticky++;
      if (i > 0 && t.result.servedBy !== turns[i - 1].result.servedBy) moves++;
    });
    if (moves === 0) onOne++;
    else sessionMoves[id] = moves;
  }

  // Client-measured times, scaled back to the simulated GPU's clock, of the successful requests with a first token.
  const timed = ok.filter((r) => ttftOf(r) !== undefined);
  const ttft = (r: RequestRecord) => ttftOf(r)! * timeScale;
  // From usage.prompt_tokens_details.cached_tokens, which needs the pods' --enable-prompt-tokens-details (stack.ts
  // simArgs); the hit rate above does not, it comes from the pods' counters.
  const cachedShare = (r: RequestRecord) => (r.result.cachedTokens ?? 0) / Math.max(1, r.result.promptTokens ?? 1);
  const cached = timed.filter((r) => cachedShare(r) >= 0.5).map(ttft);
  const uncached = timed.filter((r) => cachedShare(r) < 0.1).map(ttft);
  const ttftCached = summary(cached);
  const ttftUncached = summary(uncached);
  const hitRate = counters.queries > 0 ? counters.hits / counters.queries : 0;
  const reporting = ok.filter((r) => r.result.cachedTokens !== undefined && (r.result.promptTokens ?? 0) > 0);
  const promptTokens = reporting.reduce((a, r) => a + r.result.promptTokens!, 0);
  const servedHitRate = promptTokens > 0 ? reporting.reduce((a, r) => a + r.result.cachedTokens!, 0) / promptTokens : null;
  const sentTokens = ok.reduce((a, r) => a + (r.result.promptTokens ?? 0), 0);

  return {
    policy,
    requests: records.length,
    succeeded: ok.length,
    noToken: ok.length - timed.length,
    successRate: records.length > 0 ? ok.length / records.length : 0,
    hitRate,
    servedHitRate,
    lookupsPerPromptToken: sentTokens > 0 ? counters.queries / sentTokens : null,
    bestHitRate,
    hitRateOfBest: bestHitRate ? hitRate / bestHitRate : null,
    requestStickiness: chatRequests > 0 ? sticky / chatRequests : 1,
    sessionsOnOnePod: bySession.size > 0 ? onOne / bySession.size : 1,
    sessionMoves,
    ttft: summary(timed.map(ttft)),
    ttftCached,
    ttftUncached,
    cachedSpeedup: ttftCached.p50 && ttftUncached.p50 ? ttftUncached.p50 / ttftCached.p50 : null,
    throughputRps: wallSeconds > 0 && timeScale > 0 ? ok.length / (wallSeconds * timeScale) : 0,
    wallSeconds,
    perEndpoint,
    failures: records.filter((r) => !r.result.ok).map((r) => ({ status: r.result.status, error: r.result.error ?? '' })),
  };
}
