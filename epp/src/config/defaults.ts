import { validateEndpointPickerConfig } from './loader';
import { pluginCycleState, pluginHasKind } from './catalogue';
import {
  ENDPOINT_PICKER_CONFIG_API_VERSION,
  ENDPOINT_PICKER_CONFIG_KIND,
  type EndpointPickerConfig,
  type PluginSpecFor,
} from './types';

/** The `latency-scorer` of kvroute's configs, with the reasons for its parameters. */
const LATENCY_SCORER = {
  type: 'latency-scorer' as const,
  parameters: {
    // Of the order of kvroute's simulator defaults (0.25 ms/token, 20 ms); a real pod's own data replaces them within a
    // few scrapes that saw first tokens (8 requests' worth of evidence), and once any pod is observed the pool's
    // median line stands in for them (a pod new to the pool starts there).
    priorPrefillMsPerToken: 0.2,
    priorOverheadMs: 20,
    priorWeight: 8,
    // A minute: long enough to average over many scrapes (50 ms apart), short enough to follow a pod that slows.
    halfLife: '60s',
    // A safety net only: picks normally leave the queue at the scrape that counts their first token.
    pendingTimeout: '30s',
    charactersPerToken: 4,
    // vLLM 0.10's largest default --max-num-seqs (1024 on H100-class GPUs, 256 on smaller ones and the A100), so an EPP
    // not told its pods' limit never predicts a slot wait they do not have. The cdk8s app writes the decode pool's own
    // (`DecodePool.maxNumSeqs`, `withMaxNumSeqs`) when it sets one.
    maxNumSeqs: 1024,
    // The slot wait for requests carrying a session id (their placement is permanent under hard affinity), and for
    // one-off requests only while some pod's slots are all taken and another has half of its own free. Priced for
    // every request (`all`) it moved one-off requests off their group's pods whenever the pods were about equally
    // full (llm-d's ramp, sessions 30 and 51; llm-d's shared-prefix workload, 7-8 hit points in session 55's probe);
    // left out for them (`sessions`, the default until session 55) one hot system prompt without session ids piled
    // onto its holders' full slots while a pod stood idle: TTFT p90 16-23× round robin's in session 55's probe, and
    // 1.5-2.2 s against 370-420 ms with `imbalanced` (bench/README.md, "Session 55: one hot system prompt"). It costs
    // llm-d's ramp in its overloaded stages (p90 1.3-1.7× in two runs), and once every pod is past half full the wait
    // stops counting for one-off requests however full their holders are. `avoidable` (session 56) also prices it, for
    // one-off requests, on a full pod when another holding as much of the prompt waits less (avoiding it recomputes
    // nothing): the same hot prompt at 20 req/s (83% of the slots' capacity, every pod past half full) read TTFT p90
    // 0.56-2.02 s against 0.93-2.23 s with `imbalanced` over three seeds (round robin 0.32-0.96 s), and llm-d's
    // shared-prefix workload, long documents on tight KV and chat without session ids read even (bench/README.md,
    // "Session 56: the hot prompt at 83% of the slots' capacity"). On llm-d's ramp (constrained KV) its two runs
    // split: worse in one (hits 76.6 against 78.9%, p90 11.1 against 9.4 s), better in the other (81.4 against 75.8%,
    // 3.2 against 11.4 s). `hot-prefixes` (sessions 57-58) also replicates a hot prefix: for a one-off request whose
    // leading part's requests in flight would take half of `maxNumSeqs` while its least occupied holder runs a quarter
    // of its slots more than the least occupied pod without it, which has a free slot, every wait is priced and the
    // pods without the part that have a free slot and are that much less occupied are scored as holding it (the
    // holders as not). Two hot system prompts at 16 req/s
    // had stayed on their first holders, queueing while the other pods had free slots: TTFT p90 200 / 238 / 703 ms
    // over three seeds (206 / 172 / 639 on the final build) against 384 / 226 / 809 with session 57's rule (which waited for the prompt's requests to fill
    // every holder's slots); one hot prompt at 20 req/s 983 / 373 / 1,352 against 1,122 / 546 / 1,892; four prompts
    // 169 / 249 / 659 against 439 / 160 / 689 (round robin 106 / 101 / 721, 961 / 321 / 901 and 289 / 490 / 913); the
    // heterogeneous pool's p90 129 against 156 ms; the other probe scenarios within their runs' spread (long documents
    // on tight KV 84.2 / 81.7% against 83.2 / 84.5% hits, p90 1.80 / 3.30 against 1.82 / 2.61 s; llm-d's shared-prefix
    // 68.9 / 69.7% against 70.5 / 69.7%); llm-d's ramp (constrained KV, seeds 7 / 2) 75.5 / 75.7% against 76.0 / 77.2%
    // hits, p90 12.10 / 10.66 against 11.38 / 10.40 s, p50 2.34 / 0.54 against 1.52 / 0.55 s, its stages from 72% of the
    // top rate worse on one seed and better on the other (bench/README.md,
    // "Session 57: two hot prompts, a prefix that fills its holders" and "Session 58: a hot prefix replicated while its
    // holders are the busier").
    slotWait: 'hot-prefixes' as const,
    // A request without a session id stays with the pod holding the most of its prompt as far as this score goes: a pod
    // that would recompute the prompt is predicted no faster than its holder unless its line is twice as fast or its cache
    // has room by the approximate index (a prefill there evicts little or nothing); the load scorers still weigh the
    // queues against the prefix, and a hot prefix's replica counts as a holder. Without it, on llm-d's ramp
    // (poisson-groups, KV 4× short of the working set) the scorer moved requests off their group's holder past half the
    // top rate, each for a predicted gain of seconds, and every such prefill evicted other groups' prompts there:
    // 63.2-64.7% hits and TTFT p90 12.6-16.4 s at 256 slots, against 82.8% and 1.88 s with it (the prefix-first config
    // 81.8-83.7% and 2.2-2.35 s); at 16 slots 72.6% and 15.6 s against 85.7% and 1.84 s (its first form, with no room
    // exemption, 86.2% and 1.94 s; it also read even on the heterogeneous pool, p90 134 / 160 against 139 / 169 ms); two
    // hot prompts on 256 slots at 30 req/s read 148 / 134 against 151 / 138 ms, where the first form had cost 12-14%; the
    // load ladder's workloads carry session ids, which the rule leaves alone (bench/README.md, "Session 61").
    keepOneOffOnHolder: true,
  },
};

/**
 * kvroute's default scheduling: KV-cache-aware routing with hard session affinity, for a pool of decode pods.
 *
 * Per request: drop non-decode pods → admit while some pod has room (GIE's saturation detector: when none has, the
 * request waits in flow control, and 429 when that is full) → a session with a live binding goes to its pod →
 * otherwise score prefix locality against load and predicted latency, and take the best (ties broken at random).
 *
 * Scores add up as `3·prefix + 4·no-hit-lru + queue + kv + active + 4·latency + 4·session-load`: a pod holding the request's prefix
 * gets up to 3 points, and the three load signals can take up to 3 points from a loaded pod, the latency scorer up to
 * 4 from a pod predicted much slower, and for a new session's first request the session load up to 4 from the pod
 * carrying the most live sessions. With only a fraction `f` of the
 * prompt cached, a pod keeps the request while `3f` exceeds its load deficit, so a long shared prefix beats mild load
 * but a short one does not; a pod beyond the saturation thresholds stays a candidate, its load weighed, while another
 * has room. A request no pod caches any of (a new group's first, which its later members then follow) goes to the pod
 * least recently given such a request, unless that pod is worse on two load signals at once (`no-hit-lru-scorer`,
 * llm-d's; issue 9's load ladder: bench/README.md). The latency scorer adds each pod's predicted time to first token,
 * learned online per pod: on identical pods it agrees with the prefix and queue signals (a hit is less to prefill, a
 * queue is prefill ahead), and where pods differ (an older GPU generation in the pool, a throttled card) it is what
 * tells a slow pod holding the prefix from a fast one that would recompute it (bench/README.md, `npm run bench:hetero`).
 * For a request without a session id it never favours a pod that would recompute the prompt over the prompt's holder
 * unless that pod is twice as fast per token or its cache has room (`keepOneOffOnHolder`): each such move evicts other
 * prompts from a full cache, which on llm-d's ramp with KV tight cost 20 hit points (bench/README.md, "Session 61").
 * A new session's first request also weighs the live conversations each pod already carries (`session-load-scorer`):
 * hard affinity sends every later turn where the first went, so conversations that share a system prompt are spread
 * over the pods rather than stacked on its holder.
 *
 * Returned normalized (every parameter default filled), as the loader would return it.
 */
export function defaultEndpointPickerConfig(): EndpointPickerConfig {
  // Typed first so the compiler checks every type and parameter name; then normalized like a loaded file.
  const config: EndpointPickerConfig = {
    apiVersion: ENDPOINT_PICKER_CONFIG_API_VERSION,
    kind: ENDPOINT_PICKER_CONFIG_KIND,
    plugins: [
      { type: 'single-profile-handler' },
      // Pods labelled llm-d.ai/role=prefill never decode; unlabelled pods are decode pods.
      { type: 'decode-filter' },
      {
        type: 'saturation-filter',
        parameters: {
          // vLLM queues only when it cannot schedule: 5 waiting requests means a newcomer waits behind a full batch
          // step or more, which costs more than recomputing a prefix elsewhere (GIE's detector uses 5 too). The queue
          // includes the requests routed to the pod less those ended there since its last page (`countPicksSinceScrape`,
          // on unless set false; not rendered): a burst, such as the backlog an EPP reads at once after a stall, fills
          // each pod one past this and waits in flow control for the next pages, where the last page alone would let
          // it all through.
          queueDepthThreshold: 5,
          // Running requests hold 90% of the KV blocks: close to vLLM preempting. Below that the KV scorer steers
          // softly; GIE's 0.8 would exclude busy-but-healthy pods and shed load early.
          kvCacheUtilThreshold: 0.9,
          // 20 scrapes at the 50 ms interval. GIE's 200 ms is tight for a Node event loop that also hashes 100 KB
          // prompts; dead pods are caught sooner by the scrape-failure limit below.
          metricsStalenessThreshold: '1s',
          // A refused connection fails each 50 ms scrape at once: three in a row ≈ 150 ms to drop a dead pod.
          maxConsecutiveScrapeFailures: 3,
          // GIE's detector: saturated only when no pod has room; a loaded pod stays a candidate for the scorers to
          // weigh, so a session keeps its pod and a prefix its holder through a burst. Dropping every loaded pod
          // (`filter`, the default before 2026-11-30) moves sessions off their pods whenever vLLM's waiting queue
          // passes 5, and the moved turns' recomputed histories load the next pod: on the load ladder with the
          // simulator counting waiting requests as vLLM does, filter mode overloaded the pool at 80% of its saturation
          // rate on interactive (TTFT p90 1.85 s, hit rate 70%, against 397-403 ms and 84.6% in admission mode); on
          // shared-prefix × ample it read 877 against 714 ms at 80% and overloaded at 95% (3.23 s against 878 ms); on
          // shared-prefix × constrained the modes were equal. The precise config measured the same on a KV-constrained
          // pool (hits 60% against 91%).
          mode: 'admission',
        },
      },
      {
        type: 'session-affinity-filter',
        parameters: {
          headers: ['x-session-id', 'x-session-token'],
          // Long enough to span a user's think time between turns of a conversation.
          ttl: '30m',
          // About 150 bytes per binding: ≈ 10 MB at capacity.
          capacity: 65536,
        },
      },
      {
        type: 'prefix-cache-scorer',
        parameters: {
          mode: 'estimate',
          // 64 characters ≈ 16 tokens = one vLLM KV block at the default --block-size.
          hashBlockSize: 64,
          // 256 blocks = the first 16 KB of the prompt, where shared system prompts and contexts sit.
          maxPrefixBlocksToMatch: 256,
          // Each pod's index holds what its vLLM can (num_gpu_blocks × block_size tokens from cache_config_info, at the
          // characters per token learnt from the pods' vllm:request_prompt_tokens, 4 until learnt), GIE's 31,250 until
          // its first scrape.
          autoTune: true,
          lruCapacityPerServer: 31250,
          // ~26 bytes an entry: at most ~200 MiB for the whole index, so 256 pods of any size fit the EPP's 1 GiB
          // limit (epp/bench/index-memory.ts); beyond 8M entries every pod keeps the same fraction of its capacity.
          maxIndexEntries: 8_000_000,
        },
      },
      // llm-d's default: one entry per pod, far more pods than a pool has.
      { type: 'no-hit-lru-scorer', parameters: { prefixPluginType: 'prefix-cache-scorer', prefixPluginName: 'prefix-cache-scorer', lruSize: 1024 } },
      { type: 'queue-scorer' },
      { type: 'kv-cache-utilization-scorer' },
      { type: 'active-request-scorer' },
      LATENCY_SCORER,
      // Counts a session on its pod from its first request: every live session will come back (issue 9), a session of
      // one request so far at the learnt share of sessions that do (1 until ids are seen not to return). From the
      // second (`minRequests: 2`) one-request session ids would weigh nothing from the start, but conversations that
      // start close together are then placed before any has come back: on gen29's long chats that stacked them in two
      // runs of three (three of four with precise).
      { type: 'session-load-scorer', parameters: { headers: ['x-session-id', 'x-session-token'], liveWindow: '5m', capacity: 65536, minRequests: 1 } },
      { type: 'max-score-picker', parameters: { maxNumOfEndpoints: 1 } },
    ],
    schedulingProfiles: [
      {
        name: 'default',
        plugins: [
          { pluginRef: 'decode-filter' },
          // Before session affinity. In admission mode it keeps a loaded pod among the candidates while others have room;
          // a bound pod whose KV cache is over its threshold is then left to the scorers, so the session may move to a
          // pod with room (session-affinity-filter.ts), while a long queue alone keeps the session where it is.
          { pluginRef: 'saturation-filter' },
          { pluginRef: 'session-affinity-filter' },
          // 3: a full prefix hit outweighs any one load signal (each <= 1) and equals all three together —
          // recomputing a long shared prefix costs more prefill than queueing briefly behind it.
          { pluginRef: 'prefix-cache-scorer', weight: 3 },
          // 4, right after the prefix scorer whose match tells a cold request (no pod holds a block of it): over 4 pods
          // one LRU rank is 4/3 of a point, more than any one load signal's swing, so new prefix groups rotate over the
          // pods unless the next pod is worse on two load signals at once; requests with a hit score the same on every
          // pod, so it never competes with the prefix. On the load ladder at 80% it lowered TTFT p90 on both workloads
          // and capacities, below the SGLang-style router's, with no hit-rate loss (llm-d's guide weighs it 2 beside
          // prefix 3 and load 4; at 2 here the dev runs read 3-8% higher p90).
          { pluginRef: 'no-hit-lru-scorer', weight: 4 },
          // 1: min-max normalized, so a one-request difference already swings the full point; at 1 that noise
          // breaks ties between equal prefixes but cannot overturn a prefix hit alone.
          { pluginRef: 'queue-scorer', weight: 1 },
          // 1: absolute headroom (1 − usage), so a pod near its KV limit loses even when every pod has a queue.
          { pluginRef: 'kv-cache-utilization-scorer', weight: 1 },
          // 1: the EPP's own in-flight count changes with every pick, not every scrape, so a burst of cold requests
          // spreads instead of herding for 50 ms onto the pod that looked idlest. A burst sharing a cached prefix goes
          // to its holder (the prefix's 3 points against 1 here): new sessions until its sequence slots are full
          // (`maxNumSeqs`, the latency scorer's slot wait), then they spread; one-off requests without a session id
          // stay there until it is full while another pod has half its slots free, or another holder a shorter wait,
          // or it is hot and its holders are the busier pods (`slotWait: hot-prefixes`; plugin-latency-scorer.test.ts, "a
          // burst of new sessions …", "slotWait: imbalanced …", "slotWait: avoidable …", "slotWait: hot-prefixes …"). At 2
          // it took more off slow pods on the heterogeneous pool but cost 3-5 hit points on shared-prefix × constrained
          // (the load ladder, 2026-11-30; bench/README.md).
          { pluginRef: 'active-request-scorer', weight: 1 },
          // 4: the predicted time to first token per pod (queued prefill work + own uncached prefill + overhead, each
          // pod's cost per token learned from its own vLLM metrics), scored best ÷ own: a pod predicted twice as slow
          // as the best loses 2 points, so a slow pod's prefix hit stops pinning its groups there once its queue and
          // speed say a fast pod would answer sooner, while on identical pods its ranking follows the prefix and queue
          // signals. Added 2026-11-30: on a pool with two of four pods 2.5× slower (`npm run bench:hetero`) the
          // previous default placed prompt groups whatever a pod's speed (a quarter of the requests on each slow pod on
          // one seed) and its TTFT p90 was 2.3-12× this config's; on the load ladder (identical pods) p90 and hit rate
          // stayed within the runs' noise (bench/README.md). Its price: 11-13 µs of routing-thread CPU a request at 256
          // pods since session 19's cut (epp/README.md, "What it costs the routing thread").
          { pluginRef: 'latency-scorer', weight: 4 },
          // 4: a new session's first request, scored by the live sessions each pod carries ((max − own) ÷ max; every
          // other request scores the same everywhere). Hard affinity makes a session's first pick its pod for every
          // later turn, and a conversation's history grows each turn, while the system prompt that draws it to the
          // prefix holder is recomputed once per pod. At 4 a holder carrying the most live sessions, with the load
          // they put on it, loses to a pod carrying fewer unless the cached prompt is much longer than the first turn
          // (at 2 it kept them). Added 2026-12-02 (session 31): on long chats whose histories outgrow a constrained KV
          // cache (gen29's 12 conversations × 22 turns, 2 system prompts, 4 pods of 1,024 blocks) the default without
          // it stacked the conversations on the two system-prompt holders, which then preempted and recomputed them
          // (hit rate 69-85%, TTFT p90 0.46-2.33 s over three seeds); with it 3 a pod in every run (93.7%, p90
          // 97-129 ms). On the load ladder's interactive workload hit rates were equal and p90 had no clear direction
          // over two seeds; on shared-prefix, whose requests each carry a session id of their own, the hit rate fell
          // 1.1 points on average over the ample cells, 2.5 in one seed's mean (bench/README.md, "Session 31"); since
          // session 34 such ids stop weighing once seen not to return, seconds into the traffic (the ladder's cells are
          // over before that). At 16 agents on tight KV spread (p90 −70%) but shared-prefix lost 2-7 hit points.
          { pluginRef: 'session-load-scorer', weight: 4 },
          { pluginRef: 'max-score-picker' },
        ],
      },
    ],
  };
  return validateEndpointPickerConfig(config);
}

/**
 * kvroute's default until 2026-11-30 (session 18): the default config without the `latency-scorer` (and the
 * `session-load-scorer`, which joined later),
 * `3·prefix + 4·no-hit-lru + queue + kv + active`. The latency config is derived from it, the shape it was measured
 * in (the precise config from the default); the benchmark's `kvroute-prefix-first` runs it.
 */
export function prefixFirstEndpointPickerConfig(): EndpointPickerConfig {
  return withoutLatencyScorer(withoutSessionLoad(defaultEndpointPickerConfig()));
}

/**
 * `config` without the `session-load-scorer`: kvroute's default before 2026-12-02 (session 31), the benchmark's
 * `kvroute-no-session-load`.
 */
export function withoutSessionLoad(config: EndpointPickerConfig): EndpointPickerConfig {
  return withoutPluginType(config, 'session-load-scorer');
}

/**
 * `config` without the `latency-scorer`: its prefix-first form (the benchmark's `kvroute-prefix-first` and
 * `kvroute-precise-prefix-first` run the default and precise configs through it).
 */
export function withoutLatencyScorer(config: EndpointPickerConfig): EndpointPickerConfig {
  return withoutPluginType(config, 'latency-scorer');
}

/** `config` without the plugins of `type` and every profile step referencing them, validated. */
function withoutPluginType(config: EndpointPickerConfig, type: string): EndpointPickerConfig {
  const removed = new Set(config.plugins.filter((p) => p.type === type).map((p) => p.name ?? p.type));
  return validateEndpointPickerConfig({
    ...config,
    plugins: config.plugins.filter((p) => p.type !== type),
    schedulingProfiles: config.schedulingProfiles.map((profile) => ({
      ...profile,
      plugins: profile.plugins.filter((ref) => !removed.has(ref.pluginRef)),
    })),
  });
}

/**
 * Scheduling by predicted time to first token with the prefix scorer demoted (issue 9; not the default, which keeps the
 * prefix-first weights and adds the latency scorer beside them: the routing benchmark's load ladder did not show this
 * config meeting a goal the prefix-first one misses; on the quiet run with μ under round robin it matched it on the
 * interactive workload and lowered p90 13-30% on shared-prefix, and at kvroute's own saturation (one busy-machine run)
 * it lost 9-15 hit points on shared-prefix — bench/README.md, "The open-loop load ladder"):
 * the prefix-first config's filters (decode, saturation, hard session affinity), then
 * `4·latency + prefix + kv` instead of `3·prefix + queue + kv + active`.
 *
 * The `latency-scorer` already prices what the replaced scorers approximated: a prefix hit is fewer uncached tokens
 * to prefill, a queue is prefill work ahead (the scraped waiting requests and, at once, every pick this EPP made that
 * has not produced a first token). So its weight dominates, and the prefix scorer stays at 1 — it must still run
 * first, because it publishes the per-pod match the latency scorer reads and records each pick in its index — as the
 * tie-breaker that keeps a conversation's future turns where its history is cached.
 *
 * Returned normalized, as the loader would return it.
 */
export function latencyEndpointPickerConfig(options: {
  /** Keep the default's `no-hit-lru-scorer` (4). @default false */
  readonly noHitLru?: boolean;
  /** Keep `active-request-scorer` at this weight. @default 0 (left out) */
  readonly activeRequests?: number;
} = {}): EndpointPickerConfig {
  const base = options.noHitLru === true ? prefixFirstEndpointPickerConfig() : withoutNoHitLru(prefixFirstEndpointPickerConfig());
  const active = options.activeRequests ?? 0;
  const replaced = new Set(active > 0 ? ['queue-scorer'] : ['queue-scorer', 'active-request-scorer']);
  const plugins = [
    ...base.plugins.filter((p) => !replaced.has(p.type)),
    LATENCY_SCORER,
  ];
  const schedulingProfiles = base.schedulingProfiles.map((profile) => ({
    ...profile,
    plugins: profile.plugins.flatMap((ref) => {
      if (replaced.has(ref.pluginRef)) return [];
      // Prefix at 1: breaks near-ties toward the pod holding the prefix; the hit itself is already priced in the
      // latency. Latency at 4, right after the prefix scorer whose match it reads: a pod predicted twice as slow
      // loses 2 points, more than a prefix hit and KV headroom can give back; within ~25% of the best the other
      // two decide.
      if (ref.pluginRef === 'prefix-cache-scorer') return [{ ...ref, weight: 1 }, { pluginRef: 'latency-scorer', weight: 4 }];
      if (ref.pluginRef === 'active-request-scorer') return [{ ...ref, weight: active }];
      return [ref];
    }),
  }));
  return validateEndpointPickerConfig({ ...base, plugins, schedulingProfiles });
}

/**
 * `config` without the `no-hit-lru-scorer`: the default as it was before the scorer joined it. The latency and precise
 * configs are derived from it because that is the shape they were measured in (the load ladder; llm-d's ramp for
 * precise, issue 8); the scorer joins them when a run shows it helps there too. The benchmark's `kvroute-no-lru`
 * policy is the prefix-first config through it.
 */
export function withoutNoHitLru(config: EndpointPickerConfig): EndpointPickerConfig {
  return withoutPluginType(config, 'no-hit-lru-scorer');
}

/**
 * `config` with every `latency-scorer` told the pods' vLLM `--max-num-seqs`, so it predicts the wait for a sequence
 * slot on a pod that already runs that many requests (the parameter's default is vLLM's largest default, 1024). The cdk8s app sets it
 * from the decode pool's `maxNumSeqs`; the benchmarks from the simulator's `--max-num-seqs`. A config without a
 * latency scorer is returned as it is. Validated as the loader validates: a `maxNumSeqs` below 1 or not an integer is a
 * `ConfigError` naming the plugin's field.
 */
export function withMaxNumSeqs(config: EndpointPickerConfig, maxNumSeqs: number): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...config,
    plugins: config.plugins.map((p) => (p.type === 'latency-scorer' ? { ...p, parameters: { ...(p.parameters ?? {}), maxNumSeqs } } : p)),
  });
}

/**
 * `config` with `prefill-priority` (default parameters) right after every profile's prefix scorer, at weight 1 (it
 * scores 0 everywhere: it only ranks the request for vLLM's priority scheduler). The pods must run
 * `--scheduling-policy priority` (`DecodePool.schedulingPolicy`).
 */
export function withPrefillPriority(config: EndpointPickerConfig): EndpointPickerConfig {
  // The prefix scorers are the plugins that write the prefix match prefill-priority reads (their cycleState).
  const prefix = new Set(config.plugins.filter((p) => pluginCycleState(p.type).writes.includes('prefix-match')).map((p) => p.name ?? p.type));
  return validateEndpointPickerConfig({
    ...config,
    plugins: [...config.plugins, { type: 'prefill-priority', name: 'prefill-priority', parameters: {} }],
    schedulingProfiles: config.schedulingProfiles.map((profile) => ({
      ...profile,
      plugins: profile.plugins.flatMap((ref) => (prefix.has(ref.pluginRef) ? [ref, { pluginRef: 'prefill-priority', weight: 1 }] : [ref])),
    })),
  });
}

/**
 * `config` with kvroute's `lora-room-filter` after each profile's last filter, for pods serving the LoRA `adapters`: a
 * request for one skips the pods whose `--max-loras` other adapters hold, where vLLM would make it wait, and the
 * config's scorers choose among the rest. Last, so the saturation filter and session affinity have decided first (see
 * the plugin). A config that has the filter already is returned as it is.
 */
export function withLoraRoomFilter(config: EndpointPickerConfig, adapters: readonly string[]): EndpointPickerConfig {
  if (config.plugins.some((p) => p.type === 'lora-room-filter')) return config;
  const isFilter = (ref: { pluginRef: string }) => config.plugins.some((p) => (p.name ?? p.type) === ref.pluginRef && pluginHasKind(p.type, 'filter'));
  return validateEndpointPickerConfig({
    ...config,
    plugins: [...config.plugins, { type: 'lora-room-filter', name: 'lora-room-filter', parameters: { adapters: [...adapters] } }],
    schedulingProfiles: config.schedulingProfiles.map((profile) => {
      const plugins = [...profile.plugins];
      let lastFilter = -1;
      plugins.forEach((ref, i) => { if (isFilter(ref)) lastFilter = i; });
      plugins.splice(lastFilter + 1, 0, { pluginRef: 'lora-room-filter' });
      return { ...profile, plugins };
    }),
  });
}

/** Where the precise scorer gets vLLM's KV events, as the manifests wire them. */
export interface PreciseDefaults {
  /** `per-pod`: the EPP dials every pod's publisher; `central`: the EPP binds `zmqEndpoint`. */
  readonly mode: 'per-pod' | 'central';
  /** per-pod: the port each vLLM publishes on. */
  readonly socketPort?: number;
  /** per-pod: the port of each vLLM's replay socket. */
  readonly replayPort?: number;
  /** central: the endpoint the EPP binds, e.g. `tcp://*:5557`. */
  readonly zmqEndpoint?: string;
  /** vLLM's `--block-size`. */
  readonly blockSize: number;
  /** The model whose tokenizer the EPP loads. */
  readonly modelName: string;
  /**
   * The pods' LoRA adapter names in `--lora-modules` order: the precise scorer's `loraAdapters`, which names the blocks a
   * vLLM reports by `lora_id` only. @default none
   */
  readonly loraAdapters?: readonly string[];
}

/**
 * kvroute's default scheduling with precise prefix scoring: the default config (without `no-hit-lru-scorer`, the shape
 * llm-d's ramp measured; with the default's `session-load-scorer`, which spread gen29's long chats 3 a pod here too:
 * bench/README.md "Session 31") with the approximate prefix scorer replaced by `precise-prefix-cache-scorer` at the same
 * weight, fed by the pods' KV events, and the `latency-scorer` at 2 rather than 4 (it reads the precise scorer's
 * matched tokens).
 *
 * The latency scorer joined on 2026-11-30 (session 19): on the heterogeneous pool (`npm run bench:hetero`, two of four
 * pods 2.5× slower, 28 req/s) the precise config without it kept each prompt group on the pod that first computed it,
 * whatever its speed; where that put 3 of 8 groups on one slow pod (seed 1, 28 req/s) TTFT p90 read 11.6 s (round robin
 * 2.5 s), and 0.16 s with the scorer at 2. At 2, not the default's 4: on llm-d's ramp (poisson-groups, constrained KV)
 * weight 4 collapsed at the top in one of two runs (p90 4.5 s, 25 saturation exclusions a request) while 2 stayed at or
 * under the config without it (p90 1.12 against 1.45 s, hit rate 89.5 against 89.1%). Weight 4 did better on the
 * heterogeneous pool's other two runs (156-159 ms, where 2 read 513-909 ms and no scorer 117-779 ms): the safe weight on
 * precise routing's own benchmark was preferred. The precise match is exact, so a pod holding the prefix is worth its
 * full 3 points; at 2 the latency scorer moves a request off it only together with the load scorers. bench/README.md
 * has the runs. The default's `keepOneOffOnHolder` comes with it (session 61): on llm-d's ramp at 256 slots the precise
 * config read 90.1% hits and TTFT p90 219 ms with it, 90.9% and 304 ms without (one run each; its index sees
 * evictions, so it had not lost there as the approximate default had).
 */
export function preciseEndpointPickerConfig(precise: PreciseDefaults): EndpointPickerConfig {
  const base = withoutNoHitLru(defaultEndpointPickerConfig());
  // The saturation filter comes from the default, in admission mode: on llm-d's ramp (`bench/README.md`,
  // poisson-groups) filter mode took precise hits from 91% to 60% and sent 22% of requests to the wait limit.
  const plugins = base.plugins.map((p) => (p.type === 'inflight-load-producer' ? inflightReadingPrecise(p) : p.type !== 'prefix-cache-scorer' ? p : {
    type: 'precise-prefix-cache-scorer' as const,
    parameters: {
      kvEventsConfig: precise.mode === 'per-pod'
        ? { discoverPods: true, topicFilter: 'kv@', podDiscoveryConfig: { socketPort: precise.socketPort ?? 5557 }, ...(precise.replayPort !== undefined ? { replayPort: precise.replayPort } : {}) }
        : { discoverPods: false, topicFilter: 'kv@', zmqEndpoint: precise.zmqEndpoint ?? 'tcp://*:5557' },
      // The plugin's own tokenProcessorConfig, where llm-d v0.8.0 reads it (precise_prefix_cache.go); its
      // llm-d-kv-cache v0.7.1 has none under indexerConfig and would drop one there.
      tokenProcessorConfig: { blockSize: precise.blockSize },
      indexerConfig: {
        tokenizersPoolConfig: { modelName: precise.modelName },
      },
      // The matched share (the default, llm-d's since v0.9.0), stated: not v0.8.0's min-max, where a pod holding 2 of
      // 60 blocks is worth the full weight against a less loaded pod (the measured precise runs in bench/README.md used it).
      scoreNormalization: 'share' as const,
      // Set, though llm-d's default is off: a burst of requests opening the same new prefix would otherwise each see no
      // holder until the first one's BlockStored events arrive, and scatter the prefix over the pool.
      speculativeIndexing: true,
      ...(precise.loraAdapters !== undefined && precise.loraAdapters.length > 0 ? { loraAdapters: [...precise.loraAdapters] } : {}),
    },
  }));
  const schedulingProfiles = base.schedulingProfiles.map((profile) => ({
    ...profile,
    plugins: profile.plugins.map((ref) => {
      if (ref.pluginRef === 'prefix-cache-scorer') return { ...ref, pluginRef: 'precise-prefix-cache-scorer' };
      // 2: see above (weight 4 collapsed on llm-d's ramp in one run of two; 2 did as well on the heterogeneous pool).
      if (ref.pluginRef === 'latency-scorer') return { ...ref, weight: 2 };
      return ref;
    }),
  }));
  return validateEndpointPickerConfig({ ...base, plugins, schedulingProfiles });
}

/**
 * The default's `inflight-load-producer` (which the loader adds for its `active-request-scorer`) discounting each
 * pick's cached prefix by the precise scorer's match, named: one naming no producer reads upstream's default approximate
 * producer's match (llm-d-router v0.10.0 `inflightload/producer.go`, `WithNonEmptyProducerName("")`), which this config
 * has not, and would count every prompt whole in `llm_d_epp_inflight_tokens`; the KV events' match is what the pods
 * actually skip.
 */
function inflightReadingPrecise(plugin: PluginSpecFor<'inflight-load-producer'>): PluginSpecFor<'inflight-load-producer'> {
  return { ...plugin, parameters: { ...plugin.parameters, prefixMatchInfoProducerName: 'precise-prefix-cache-scorer' } };
}
