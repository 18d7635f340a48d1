/**
 * The routing policies the benchmark compares, as `RoutingPolicy` values for `startStack`:
 * - `kvroute`: the EPP with its built-in config (separate process);
 * - `kvroute-precise`: `preciseEndpointPickerConfig()`, precise prefix scoring from the pods' KV events (central mode);
 *   `kvroute-precise-prefix-first` is it without the latency scorer (the precise config until session 19, 2026-11-30),
 *   `kvroute-precise-latency4` with it at the default's 4 (measured, not taken), `kvroute-precise-lru` with the
 *   default's `no-hit-lru-scorer` (measured, not taken);
 * - `kvroute-latency`: the EPP with `latencyEndpointPickerConfig()` (scoring by predicted TTFT, issue 9); not in the
 *   matrix's default list; the load ladder (`load-ladder.ts`) runs it by default, side by side with `kvroute`;
 * - `kvroute-prefix-first`: `prefixFirstEndpointPickerConfig()`, the default until 2026-11-30 (no latency scorer);
 * - `kvroute-active2`: the default with `active-request-scorer` at 2; `kvroute-latency-active`: the latency config
 *   with the no-hit LRU and the in-flight scorer at 2 (candidates measured on the heterogeneous pool, `hetero-bench.ts`);
 * - `kvroute-no-lru`: the prefix-first config without llm-d's `no-hit-lru-scorer`, the default before it joined (issue
 *   9's placement of new prefix groups), for comparison;
 * - `approx-prefix`: the EPP with GIE v1.5.0's default config (queue 2, kv-cache utilization 2, approximate prefix 3
 *   auto-tuned, max-score picker; no saturation filter, no session affinity);
 * - `sglang`: the SGLang-style cache-aware director (in the benchmark process, behind ext_proc);
 * - `random`, `least-request`: directors in the benchmark process, behind ext_proc; `round-robin-extproc` (opt-in):
 *   round robin as such a director, the baseline for placement alone;
 * - `round-robin`, `session-hash`: the gateway alone (Envoy's fallback policies, no ext_proc).
 */
import {
  defaultEndpointPickerConfig, latencyEndpointPickerConfig, prefixFirstEndpointPickerConfig, renderEndpointPickerConfig, validateEndpointPickerConfig, withoutLatencyScorer, withoutNoHitLru, withoutSessionLoad, withPrefillPriority, type EndpointPickerConfig,
} from '@kvroute/epp/config';
import type { RoutingPolicy } from '../stack';
import { CacheAwareDirector, type CacheAwareOptions } from './cache-aware';
import { LeastRequestDirector, RandomDirector, RoundRobinDirector } from './simple';

export { ApproxPrefixTree } from './prefix-tree';
export { CACHE_MISS_ROUTINGS, CacheAwareDirector, SGLANG_DEFAULTS, isImbalancedLoad, type CacheAwareOptions, type CacheAwareBranch, type CacheMissRouting } from './cache-aware';
export { CountingDirector, LeastRequestDirector, RandomDirector, RoundRobinDirector, leastLoadedIndex } from './simple';

/**
 * GIE v1.5.0's default EPP config, what its loader builds when none is given (`pkg/epp/config/loader/defaults.go` @
 * v1.5.0: queue-scorer 2, kv-cache-utilization-scorer 2, prefix-cache-scorer 3, max-score-picker) and what its Helm
 * chart ships since v1.2.0: the approximate prefix index auto-tuned from each pod's KV capacity and vLLM block size
 * (`AutoTune: true`, 16-token blocks at 4 characters a token, `approximateprefix/types.go` @ v1.5.0; 31,250 entries per
 * pod only until a pod's capacity is scraped), 256 blocks matched. Until session 37 this baseline was a hybrid no GIE
 * release ships (plugins-v2's fixed 31,250-entry sizing with weights 1/1/2), and the runs recorded before then used it.
 */
export const APPROX_PREFIX_CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
  parameters:
    mode: estimate
    maxPrefixBlocksToMatch: 256
    autoTune: true
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: max-score-picker
`;

/**
 * Issue 9's session-placement candidates, measured with the load ladder (bench/README.md):
 * - `kvroute-sessions`: the prefix-first config plus `session-load-scorer` at weight 4, counting sessions that came back
 *   (a new session's first request avoids pods that already carry live conversations);
 * - `kvroute-soft`: `latencyEndpointPickerConfig()` with soft session stickiness (the affinity filter keeps every
 *   candidate; the latency scorer moves a session when another pod's predicted TTFT, recomputing the history included,
 *   beats its own pod's) and `session-load-scorer`.
 */
export function sessionLoadConfig(config: EndpointPickerConfig, weight: number): EndpointPickerConfig {
  // Replaces the scorer a config derived from the default already carries (the default's since session 31).
  const base = withoutSessionLoad(config);
  return validateEndpointPickerConfig({
    ...base,
    // minRequests 2: only sessions that came back weigh on their pod, so one-request sessions (a shared-prefix set's
    // users) are placed by their prefix as before.
    plugins: [...base.plugins, { type: 'session-load-scorer', parameters: { minRequests: 2 } }],
    schedulingProfiles: base.schedulingProfiles.map((profile) => ({
      ...profile,
      plugins: profile.plugins.flatMap((ref) => (ref.pluginRef === 'max-score-picker' ? [{ pluginRef: 'session-load-scorer', weight }, ref] : [ref])),
    })),
  });
}

export function softStickinessConfig(base: EndpointPickerConfig): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...base,
    plugins: base.plugins.map((p) => (p.type === 'session-affinity-filter' ? { ...p, parameters: { ...p.parameters, stickiness: 'soft' as const } } : p)),
  });
}

/**
 * The saturation filter in filter mode, the default's before 2026-11-30: every loaded pod is dropped while another has
 * room (the defaults now run GIE's admission mode).
 */
export function filterSaturationConfig(base: EndpointPickerConfig): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...base,
    plugins: base.plugins.map((p) => (p.type === 'saturation-filter' ? { ...p, parameters: { ...p.parameters, mode: 'filter' as const } } : p)),
  });
}

export const POLICY_NAMES = [
  'kvroute', 'kvroute-precise', 'kvroute-untold', 'kvroute-precise-untold', 'kvroute-latency', 'kvroute-latency-active', 'kvroute-prefix-first', 'kvroute-active2', 'kvroute-sessions', 'kvroute-no-session-load', 'kvroute-no-lru', 'kvroute-soft', 'kvroute-filter', 'kvroute-precise-filter', 'kvroute-precise-prefix-first', 'kvroute-precise-latency4', 'kvroute-precise-64', 'kvroute-precise-no-session-load', 'kvroute-precise-lru', 'kvroute-prefill-priority', 'kvroute-session-load16', 'kvroute-session-headroom', 'kvroute-learnt-cpt', 'kvroute-page-queue', 'kvroute-slot-wait-all', 'kvroute-long-prefill-256', 'kvroute-own-prefill2', 'kvroute-own-prefill2-peers', 'kvroute-slot-wait-sessions', 'kvroute-slot-wait-imbalanced', 'kvroute-slot-wait-avoidable', 'kvroute-no-flow-control', 'kvroute-latency2', 'kvroute-no-keep-holder', 'kvroute-precise-no-keep-holder', 'approx-prefix', 'sglang', 'round-robin', 'round-robin-extproc', 'random', 'least-request', 'session-hash',
] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];
/** kvroute's opt-in candidate configs: not in the matrix's default list. */
export const CANDIDATE_POLICY_NAMES: readonly PolicyName[] = ['kvroute-untold', 'kvroute-precise-untold', 'kvroute-latency', 'kvroute-latency-active', 'kvroute-prefix-first', 'kvroute-active2', 'kvroute-sessions', 'kvroute-no-session-load', 'kvroute-no-lru', 'kvroute-soft', 'kvroute-filter', 'kvroute-precise-filter', 'kvroute-precise-prefix-first', 'kvroute-precise-latency4', 'kvroute-precise-64', 'kvroute-precise-no-session-load', 'kvroute-precise-lru', 'kvroute-prefill-priority', 'kvroute-session-load16', 'kvroute-session-headroom', 'kvroute-learnt-cpt', 'kvroute-page-queue', 'kvroute-slot-wait-all', 'kvroute-long-prefill-256', 'kvroute-own-prefill2', 'kvroute-own-prefill2-peers', 'kvroute-slot-wait-sessions', 'kvroute-slot-wait-imbalanced', 'kvroute-slot-wait-avoidable', 'kvroute-no-flow-control', 'kvroute-latency2', 'kvroute-no-keep-holder', 'kvroute-precise-no-keep-holder'];
/**
 * Opt-in baselines, not in the matrix's default list either: `round-robin-extproc` is round robin through the same
 * ext_proc path as the EPP policies, so that a comparison with it is of placement alone (`round-robin` is the gateway
 * without ext_proc, which spares every request the protocol's round trip and the body's buffering).
 */
export const OPT_IN_BASELINE_NAMES: readonly PolicyName[] = ['round-robin-extproc'];
/** What a run without `--policies` compares: every policy but the opt-in candidates and baselines. */
export const DEFAULT_POLICY_NAMES: readonly PolicyName[] = POLICY_NAMES.filter((name) => !CANDIDATE_POLICY_NAMES.includes(name) && !OPT_IN_BASELINE_NAMES.includes(name));

export const POLICY_DESCRIPTIONS: Readonly<Record<PolicyName, string>> = {
  kvroute: 'EPP process, built-in config (prefix 3 + no-hit-lru 4 + queue + kv + active + latency 4 + session-load 4, saturation filter, session affinity)',
  'kvroute-precise': 'EPP process, preciseEndpointPickerConfig (the built-in config without no-hit-lru, precise-prefix-cache-scorer at the prefix weight, latency at 2: precise 3 + queue + kv + active + latency 2 + session-load 4), fed by the pods\' vLLM KV events over ZMQ (central mode)',
  'kvroute-latency': 'EPP process, latencyEndpointPickerConfig (latency 4 + prefix 1 + kv 1, saturation filter, session affinity)',
  'kvroute-latency-active': 'EPP process, latencyEndpointPickerConfig({ noHitLru: true, activeRequests: 2 }) (latency 4 + prefix 1 + no-hit-lru 4 + kv 1 + active 2, saturation filter, session affinity)',
  'kvroute-prefix-first': 'EPP process, prefixFirstEndpointPickerConfig (the default until 2026-11-30: prefix 3 + no-hit-lru 4 + queue + kv + active, saturation filter, session affinity; no latency scorer)',
  'kvroute-active2': 'EPP process, the built-in config with active-request-scorer at 2 (prefix 3 + no-hit-lru 4 + queue + kv + 2·active + latency 4 + session-load 4)',
  'kvroute-sessions': 'EPP process, the prefix-first config plus session-load-scorer 4, minRequests 2 (new sessions avoid pods carrying live conversations)',
  'kvroute-no-session-load': 'EPP process, the built-in config without session-load-scorer (the default before session 31, 2026-12-02; session 31\'s recorded runs name it kvroute and today\'s default kvroute-session-load, a name for kvroute in those runs only)',
  'kvroute-precise-lru': 'kvroute-precise with the default\'s no-hit-lru-scorer at 4 after the precise scorer (session 39: measured on long shared documents with ample KV, three seeds, no consistent gain: bench/README.md "Session 39")',
  'kvroute-precise-no-session-load': 'kvroute-precise without session-load-scorer (the precise config before session 31, 2026-12-02)',
  'kvroute-session-headroom': 'EPP process, the built-in config with session-load-scorer\'s headroom at 4 (session 38\'s sweep: one live session against none no longer outweighs a full prefix hit while counts are small, so a cold burst of one-request sessions keeps each new prefix on one pod)',
  'kvroute-session-load16': 'EPP process, the built-in config with session-load-scorer at 16 (session 33\'s candidate: with 3 system prompts over 4 pods a new agent session\'s prefix and latency scores, up to 3 + 4 points, kept it on its prompt\'s holder until the others carried under a third of its sessions)',
  'kvroute-learnt-cpt': 'EPP process, the built-in config with learnCharactersPerToken: true: the approximate index sizes each pod at the characters per token learnt from vllm:request_prompt_tokens (≈4.9 on the bench\'s text) rather than GIE\'s fixed 4 (session 34\'s candidate)',
  'kvroute-page-queue': 'EPP process, the built-in config with the saturation filter reading each pod\'s queue from its last scraped page alone (countPicksSinceScrape: false, as GIE\'s detector reads it; the default before session 50, 2026-12-04), not adding the requests routed to the pod since that page',
  'kvroute-slot-wait-all': 'EPP process, the built-in config with the latency scorer\'s slot wait for every request (slotWait: all), not only those carrying a session id: a one-off request picked for a pod whose --max-num-seqs slots are full is predicted to wait for one there too (session 51\'s candidate: the stall run\'s sessionless backlog piled onto the two pods holding its documents)',
  'kvroute-slot-wait-sessions': 'EPP process, the built-in config with the latency scorer\'s slot wait for requests carrying a session id only (slotWait: sessions, the default until session 55, but with the start-up estimate of the slot wait that sessions 55 and 56 added: twice the oldest running request\'s age since session 56, the age itself in session 55\'s recorded files): a one-off request is placed on a pod whose slots are full as if it had one free (which build each name in session 55\'s recorded files ran: bench/README.md, "Session 55: one hot system prompt")',
  'kvroute-slot-wait-imbalanced': 'EPP process, the built-in config with the latency scorer\'s slot wait for one-off requests only while some pod is full and another at most half full (slotWait: imbalanced, the default in session 55, with session 56\'s start-up estimate of the mean request time): a full holder of the prompt is not charged the wait when another holder has a free slot but is past half full (bench/README.md, "Session 56")',
  'kvroute-slot-wait-avoidable': 'EPP process, the built-in config with the latency scorer\'s slot wait for one-off requests while some pod is full and another at most half full, and on a full pod whenever another holding at least as much of the prompt predicts a shorter wait (slotWait: avoidable, the default in session 56): a hot prefix whose holders are the busier pods is not replicated onto a pod with room, which would recompute it',
  'kvroute-no-lru': 'EPP process, the prefix-first config without no-hit-lru-scorer (the default before it joined, as the recorded ladder runs measured it)',
  'kvroute-soft': 'EPP process, latencyEndpointPickerConfig with soft session stickiness (a session moves when the predicted TTFT elsewhere, its history recomputed, is lower) plus session-load-scorer 4, minRequests 2',
  'kvroute-filter': 'EPP process, built-in config with the saturation filter in filter mode (every loaded pod dropped while another has room; the default before 2026-11-30); with the default\'s session-load-scorer since session 31',
  'kvroute-precise-filter': 'kvroute-precise with the saturation filter in filter mode; with the default\'s session-load-scorer since session 31',
  'kvroute-untold': 'kvroute with the EPP not told the pods\' --max-num-seqs: the latency scorer assumes vLLM\'s largest default, 1024 slots, so on the simulator\'s 16 it never predicts a wait for a slot, as before session 30 (every EPP policy is otherwise told the simulator\'s, as the cdk8s app tells the EPP DecodePool.maxNumSeqs; recorded runs name it kvroute-slots-256, from when the default was 256: the same behaviour here); with the default\'s session-load-scorer since session 31',
  'kvroute-precise-untold': 'kvroute-precise with the EPP not told the pods\' --max-num-seqs (as kvroute-untold; kvroute-precise-slots-256 in recorded runs); with the default\'s session-load-scorer since session 31',
  'kvroute-precise-latency4': 'kvroute-precise with latency-scorer at the default\'s 4 instead of 2 (measured on 2026-11-30 and not taken: it collapsed on llm-d\'s ramp in one run of two); with the default\'s session-load-scorer since session 31',
  'kvroute-precise-prefix-first': 'kvroute-precise without the latency scorer (the precise config until session 19 on 2026-11-30: precise 3 + queue + kv + active); with the default\'s session-load-scorer since session 31',
  'kvroute-precise-64': 'kvroute-precise with the scorer\'s blockSize 4× the pods\' --block-size (llm-d\'s guides\' 64 over vLLM\'s default 16): the pods\' engine blocks gathered four to a block (many:1); with the default\'s session-load-scorer since session 31',
  'kvroute-long-prefill-256': 'EPP process, the built-in config, the pods on vLLM\'s --long-prefill-token-threshold 256 (a request computes at most 256 tokens a step, so a cached turn\'s short prefill shares the next step with a slice of a long one instead of waiting for all of it; session 52\'s candidate for cached ≥ 4× at 80% load)',
  'kvroute-own-prefill2': 'EPP process, the built-in config with the latency scorer counting each candidate\'s own uncached prefill twice (ownPrefillWeight: 2, fasterPodRatio: 0: every candidate charged): once for the request, once for the wait it adds for the requests queued behind it, so a pod recomputing a prefix must be predicted faster by more than the recomputation (session 55\'s candidate: on shared-prefix the default\'s latency scorer moved a few group members off their group\'s pod)',
  'kvroute-own-prefill2-peers': 'EPP process, the built-in config with the latency scorer\'s ownPrefillWeight: 2 at its default fasterPodRatio 0.8: the own prefill counted twice except on a candidate whose learned line prefills the prompt in under 0.8 of the time the prompt\'s best holder\'s line takes (session 55\'s second candidate: kvroute-own-prefill2 kept groups on slow pods)',
  'kvroute-prefill-priority': 'EPP process, built-in config plus prefill-priority (vLLM\'s priority field from the pick\'s uncached prefill), the pods on --scheduling-policy priority; with the default\'s session-load-scorer since session 31',
  'kvroute-no-flow-control': 'EPP process, the built-in config with the EPP started with --flow-control=false (as the approx-prefix baseline runs GIE\'s chart config): when the saturation filter finds every pod past its thresholds the request is refused with 429 rather than held in the EPP\'s queue until a pod has room; session 60 ran it on 256-slot pods, where vLLM fills the KV cache under load, to see how often that is',
  'kvroute-latency2': 'EPP process, the built-in config with latency-scorer at 2 instead of 4, as the precise config weighs it: a group\'s request leaves the pod holding its prompt only for a larger predicted gain (session 60\'s candidate for llm-d\'s ramp, where the default moved requests off their prompts\' holders under load and lost hits)',
  'kvroute-no-keep-holder': 'EPP process, the built-in config with latency-scorer keepOneOffOnHolder false: the default before session 61, whose latency scorer moved a request without a session id off its prompt\'s holder for a predicted gain (on llm-d\'s ramp with KV tight that lost about 20 hit points)',
  'kvroute-precise-no-keep-holder': 'kvroute-precise with latency-scorer keepOneOffOnHolder false: the precise config before session 61',
  'approx-prefix': 'EPP process, GIE v1.5.0\'s default config (queue 2, kv-cache 2, prefix 3, index auto-tuned)',
  sglang: 'SGLang-style cache-aware director (approximate char tree per worker, imbalance thresholds, cache misses to the least-loaded worker as SGLang since PR #14650), in-process ext_proc',
  'round-robin': 'gateway alone, round robin (no ext_proc)',
  'round-robin-extproc': 'round-robin director, in-process ext_proc: round robin through the EPP policies\' protocol path (opt-in)',
  random: 'random director, in-process ext_proc',
  'least-request': 'least in-flight requests director, in-process ext_proc',
  'session-hash': 'gateway alone, consistent (ring) hash on x-session-id (no ext_proc)',
};

export interface PolicySettings {
  readonly seed: number;
  readonly sglang: CacheAwareOptions;
}

export function isPolicyName(name: string): name is PolicyName {
  return (POLICY_NAMES as readonly string[]).includes(name);
}

/** `config` with every `prefix-cache-scorer` sizing pods at the characters per token learnt (`learnCharactersPerToken: true`). */
function withLearntCharactersPerToken(config: EndpointPickerConfig): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...config,
    plugins: config.plugins.map((plugin) => (plugin.type === 'prefix-cache-scorer' ? { ...plugin, parameters: { ...plugin.parameters, learnCharactersPerToken: true } } : plugin)),
  });
}

/** `config` with `key: value` among the parameters of every plugin of type `type`. */
function withPluginParameter(config: EndpointPickerConfig, type: string, key: string, value: unknown): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...config,
    plugins: config.plugins.map((plugin) => (plugin.type === type ? { ...plugin, parameters: { ...plugin.parameters, [key]: value } } : plugin)),
  });
}

/**
 * The precise config with the default's `no-hit-lru-scorer` (its parameters, weight 4) right after the precise scorer,
 * whose prefix match it reads to tell a cold request: named, since one naming no producer reads upstream's default
 * approximate producer (llm-d-router v0.10.0 `nohitlru/no_hit_lru.go`), as measured in session 39 it read the precise one.
 */
function withPreciseNoHitLru(config: EndpointPickerConfig): EndpointPickerConfig {
  const noHitLru = defaultEndpointPickerConfig().plugins.find((plugin) => plugin.type === 'no-hit-lru-scorer');
  if (noHitLru === undefined) throw new Error('the default config has no no-hit-lru-scorer');
  const readingPrecise = { ...noHitLru, parameters: { ...noHitLru.parameters, prefixMatchInfoProducerName: 'precise-prefix-cache-scorer' } };
  return validateEndpointPickerConfig({
    ...config,
    plugins: [...config.plugins, readingPrecise],
    schedulingProfiles: config.schedulingProfiles.map((profile) => ({
      ...profile,
      plugins: profile.plugins.flatMap((ref) => (ref.pluginRef === 'precise-prefix-cache-scorer' ? [ref, { pluginRef: noHitLru.name ?? noHitLru.type, weight: 4 }] : [ref])),
    })),
  });
}

/** `config` with the scorer `pluginRef` at `weight` in every profile. */
function withScorerWeight(config: EndpointPickerConfig, pluginRef: string, weight: number): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...config,
    schedulingProfiles: config.schedulingProfiles.map((profile) => ({
      ...profile,
      plugins: profile.plugins.map((ref) => (ref.pluginRef === pluginRef ? { ...ref, weight } : ref)),
    })),
  });
}

/** A fresh `RoutingPolicy` (directors are created per stack, so no state leaks between runs). */
export function routingPolicy(name: PolicyName, settings: PolicySettings): RoutingPolicy {
  switch (name) {
    case 'kvroute':
      return { kind: 'epp', name };
    case 'kvroute-precise':
      return { kind: 'epp', name, precise: true };
    case 'kvroute-untold':
      return { kind: 'epp', name, podLimitUnknown: true };
    case 'kvroute-precise-untold':
      return { kind: 'epp', name, precise: true, podLimitUnknown: true };
    case 'kvroute-precise-64':
      return { kind: 'epp', name, precise: true, preciseBlockFactor: 4 };
    case 'kvroute-latency':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(latencyEndpointPickerConfig()) };
    case 'kvroute-latency-active':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(latencyEndpointPickerConfig({ noHitLru: true, activeRequests: 2 })) };
    case 'kvroute-prefix-first':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(prefixFirstEndpointPickerConfig()) };
    case 'kvroute-active2':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(withScorerWeight(defaultEndpointPickerConfig(), 'active-request-scorer', 2)) };
    case 'kvroute-sessions':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(sessionLoadConfig(prefixFirstEndpointPickerConfig(), 4)) };
    case 'kvroute-no-session-load':
      return { kind: 'epp', name, configTransform: withoutSessionLoad };
    case 'kvroute-precise-lru':
      return { kind: 'epp', name, precise: true, configTransform: withPreciseNoHitLru };
    case 'kvroute-precise-no-session-load':
      return { kind: 'epp', name, precise: true, configTransform: withoutSessionLoad };
    case 'kvroute-session-headroom':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(config, 'session-load-scorer', 'headroom', 4) };
    case 'kvroute-session-load16':
      return { kind: 'epp', name, configTransform: (config) => withScorerWeight(config, 'session-load-scorer', 16) };
    case 'kvroute-learnt-cpt':
      return { kind: 'epp', name, configTransform: withLearntCharactersPerToken };
    case 'kvroute-latency2':
      return { kind: 'epp', name, configTransform: (config) => withScorerWeight(config, 'latency-scorer', 2) };
    case 'kvroute-no-keep-holder':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(config, 'latency-scorer', 'keepOneOffOnHolder', false) };
    case 'kvroute-precise-no-keep-holder':
      return { kind: 'epp', name, precise: true, configTransform: (config) => withPluginParameter(config, 'latency-scorer', 'keepOneOffOnHolder', false) };
    case 'kvroute-no-flow-control':
      return { kind: 'epp', name, eppArgs: ['--flow-control=false'] };
    case 'kvroute-page-queue':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(config, 'saturation-filter', 'countPicksSinceScrape', false) };
    case 'kvroute-slot-wait-all':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(config, 'latency-scorer', 'slotWait', 'all') };
    case 'kvroute-own-prefill2':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(withPluginParameter(config, 'latency-scorer', 'ownPrefillWeight', 2), 'latency-scorer', 'fasterPodRatio', 0) };
    case 'kvroute-own-prefill2-peers':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(config, 'latency-scorer', 'ownPrefillWeight', 2) };
    case 'kvroute-slot-wait-sessions':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(config, 'latency-scorer', 'slotWait', 'sessions') };
    case 'kvroute-slot-wait-imbalanced':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(config, 'latency-scorer', 'slotWait', 'imbalanced') };
    case 'kvroute-slot-wait-avoidable':
      return { kind: 'epp', name, configTransform: (config) => withPluginParameter(config, 'latency-scorer', 'slotWait', 'avoidable') };
    case 'kvroute-no-lru':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(withoutNoHitLru(prefixFirstEndpointPickerConfig())) };
    case 'kvroute-soft':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(sessionLoadConfig(softStickinessConfig(latencyEndpointPickerConfig()), 4)) };
    case 'kvroute-filter':
      return { kind: 'epp', name, configTransform: filterSaturationConfig };
    case 'kvroute-long-prefill-256':
      return { kind: 'epp', name, longPrefillTokenThreshold: 256 };
    case 'kvroute-prefill-priority':
      return { kind: 'epp', name, configTransform: withPrefillPriority, schedulingPolicy: 'priority' };
    case 'kvroute-precise-latency4':
      return { kind: 'epp', name, precise: true, configTransform: (config) => withScorerWeight(config, 'latency-scorer', 4) };
    case 'kvroute-precise-prefix-first':
      return { kind: 'epp', name, precise: true, configTransform: withoutLatencyScorer };
    case 'kvroute-precise-filter':
      return { kind: 'epp', name, precise: true, configTransform: filterSaturationConfig };
    case 'approx-prefix':
      // GIE runs its chart's config without the flowControl feature gate: GIE's default utilization-detector (which
      // the loader adds) then only sheds sheddable requests (legacy admission), never queues.
      return { kind: 'epp', name, configText: APPROX_PREFIX_CONFIG, eppArgs: ['--flow-control=false'] };
    case 'sglang':
      return { kind: 'director', name, director: (endpoints) => new CacheAwareDirector(endpoints, settings.sglang) };
    case 'round-robin':
      return { kind: 'round-robin', name };
    case 'round-robin-extproc':
      return { kind: 'director', name, director: (endpoints) => new RoundRobinDirector(endpoints) };
    case 'random':
      return { kind: 'director', name, director: (endpoints) => new RandomDirector(endpoints, settings.seed) };
    case 'least-request':
      return { kind: 'director', name, director: (endpoints) => new LeastRequestDirector(endpoints, settings.seed) };
    case 'session-hash':
      return { kind: 'session-hash', name, header: 'x-session-id' };
  }
}
