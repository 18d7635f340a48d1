/**
 * The routing policies the benchmark compares, as `RoutingPolicy` values for `startStack`:
 * - `kvroute`: the EPP with its built-in config (separate process);
 * - `kvroute-precise`: the same config with precise prefix scoring from the pods' KV events (central mode);
 * - `kvroute-latency`: the EPP with `latencyEndpointPickerConfig()` (scoring by predicted TTFT, issue 9); not in the
 *   matrix's default list; the load ladder (`load-ladder.ts`) runs it by default, side by side with `kvroute`;
 * - `kvroute-nohit`, `kvroute-sessions-nohit`: the default config and `kvroute-sessions` with llm-d's `no-hit-lru-scorer`
 *   (issue 9's placement of new prefix groups; candidates like `kvroute-sessions`);
 * - `approx-prefix`: the EPP with upstream GIE's "plugins-v2" style config (queue 1, kv-cache utilization 1, approximate
 *   prefix 2, max-score picker; no saturation filter, no session affinity);
 * - `sglang`: the SGLang-style cache-aware director (in the benchmark process, behind ext_proc);
 * - `random`, `least-request`: directors in the benchmark process, behind ext_proc;
 * - `round-robin`, `session-hash`: the gateway alone (Envoy's fallback policies, no ext_proc).
 */
import {
  defaultEndpointPickerConfig, latencyEndpointPickerConfig, renderEndpointPickerConfig, validateEndpointPickerConfig, type EndpointPickerConfig,
} from '@kvroute/epp/config';
import type { RoutingPolicy } from '../stack';
import { CacheAwareDirector, type CacheAwareOptions } from './cache-aware';
import { LeastRequestDirector, RandomDirector } from './simple';

export { ApproxPrefixTree } from './prefix-tree';
export { CacheAwareDirector, SGLANG_DEFAULTS, isImbalancedLoad, type CacheAwareOptions, type CacheAwareBranch } from './cache-aware';
export { CountingDirector, LeastRequestDirector, RandomDirector, RoundRobinDirector, leastLoadedIndex } from './simple';

/**
 * GIE's approximate-prefix EPP config in the shape of its Helm chart's plugins-v2.yaml, with the prefix scorer weighted
 * 2 as in llm-d's benchmarks (queue 1, kv-cache 1, prefix 2), the estimate mode and GIE's sizing (64-byte blocks, 256
 * blocks matched, 31,250 LRU entries per pod: `autoTune: false`, as before GIE v1.2.0 sized pods from num_gpu_blocks).
 */
export const APPROX_PREFIX_CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
  parameters:
    mode: estimate
    hashBlockSize: 64
    maxPrefixBlocksToMatch: 256
    autoTune: false
    lruCapacityPerServer: 31250
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 1
  - pluginRef: kv-cache-utilization-scorer
    weight: 1
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: max-score-picker
`;

/**
 * Issue 9's session-placement candidates, measured with the load ladder (bench/README.md):
 * - `kvroute-sessions`: the default config plus `session-load-scorer` at weight 4, counting sessions that came back
 *   (a new session's first request avoids pods that already carry live conversations);
 * - `kvroute-soft`: `latencyEndpointPickerConfig()` with soft session stickiness (the affinity filter keeps every
 *   candidate; the latency scorer moves a session when another pod's predicted TTFT, recomputing the history included,
 *   beats its own pod's) and `session-load-scorer`.
 */
export function sessionLoadConfig(base: EndpointPickerConfig, weight: number): EndpointPickerConfig {
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

/**
 * Issue 9's placement of new prefix groups: `base` plus llm-d's `no-hit-lru-scorer` right after its prefix scorer
 * (whose match tells a cold request from one with a hit), at `weight`. A request no pod holds any prefix block of goes
 * to the pod least recently given such a request, so new groups rotate over the pods as the SGLang-style router's
 * smallest-tree rule spreads them; every other request scores the same everywhere.
 */
export function noHitLruConfig(base: EndpointPickerConfig, weight: number): EndpointPickerConfig {
  const prefixRefs = new Set(['prefix-cache-scorer', 'precise-prefix-cache-scorer']);
  return validateEndpointPickerConfig({
    ...base,
    plugins: [...base.plugins, { type: 'no-hit-lru-scorer' }],
    schedulingProfiles: base.schedulingProfiles.map((profile) => ({
      ...profile,
      plugins: profile.plugins.flatMap((ref) => (prefixRefs.has(ref.pluginRef) ? [ref, { pluginRef: 'no-hit-lru-scorer', weight }] : [ref])),
    })),
  });
}

/**
 * The no-hit-lru-scorer's weight in the `kvroute-nohit` candidates: 4. Over 4 pods one LRU rank is then 4/3 of a point,
 * more than any one load signal's full swing (each is worth at most 1), so a cold request goes to the least recently
 * cold-loaded pod unless that pod is worse on two load signals at once; the oldest against the newest differs by 4,
 * more than all three load signals together, and with the prefix scorer's 3 it never competes: it only scores cold
 * requests, which no pod caches. llm-d's optimized-baseline guide weights it 2 beside prefix 3 and load 4
 * (queue 2, kv-cache 2); at 2 here (one rank = 2/3 of a point) the dev runs on shared-prefix × ample at 80% read
 * p90 754 / 956 ms against 697 / 941 ms at 4 (seeds 2 and 3; 8 read 689 ms / 1.05 s): bench/README.md.
 */
export const NO_HIT_LRU_WEIGHT = 4;

export function softStickinessConfig(base: EndpointPickerConfig): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...base,
    plugins: base.plugins.map((p) => (p.type === 'session-affinity-filter' ? { ...p, parameters: { ...p.parameters, stickiness: 'soft' as const } } : p)),
  });
}

/** The saturation filter in GIE's admission mode: loaded pods stay candidates until none has room. */
export function admissionSaturationConfig(base: EndpointPickerConfig): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...base,
    plugins: base.plugins.map((p) => (p.type === 'saturation-filter' ? { ...p, parameters: { ...p.parameters, mode: 'admission' as const } } : p)),
  });
}

export const POLICY_NAMES = [
  'kvroute', 'kvroute-precise', 'kvroute-latency', 'kvroute-sessions', 'kvroute-nohit', 'kvroute-sessions-nohit', 'kvroute-soft', 'kvroute-admission', 'kvroute-precise-admission', 'approx-prefix', 'sglang', 'round-robin', 'random', 'least-request', 'session-hash',
] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];
/** kvroute's opt-in candidate configs: not in the matrix's default list. */
export const CANDIDATE_POLICY_NAMES: readonly PolicyName[] = ['kvroute-latency', 'kvroute-sessions', 'kvroute-nohit', 'kvroute-sessions-nohit', 'kvroute-soft', 'kvroute-admission', 'kvroute-precise-admission'];
/** What a run without `--policies` compares: every policy but the opt-in candidates. */
export const DEFAULT_POLICY_NAMES: readonly PolicyName[] = POLICY_NAMES.filter((name) => !CANDIDATE_POLICY_NAMES.includes(name));

export const POLICY_DESCRIPTIONS: Readonly<Record<PolicyName, string>> = {
  kvroute: 'EPP process, built-in config (prefix 3 + queue + kv + active, saturation filter, session affinity)',
  'kvroute-precise': 'EPP process, built-in config with precise-prefix-cache-scorer at the prefix weight, fed by the pods\' vLLM KV events over ZMQ (central mode)',
  'kvroute-latency': 'EPP process, latencyEndpointPickerConfig (latency 4 + prefix 1 + kv 1, saturation filter, session affinity)',
  'kvroute-sessions': 'EPP process, built-in config plus session-load-scorer 4, minRequests 2 (new sessions avoid pods carrying live conversations)',
  'kvroute-nohit': `EPP process, built-in config plus no-hit-lru-scorer ${NO_HIT_LRU_WEIGHT} after the prefix scorer (a request no pod caches goes to the pod least recently given one)`,
  'kvroute-sessions-nohit': `kvroute-sessions plus no-hit-lru-scorer ${NO_HIT_LRU_WEIGHT} after the prefix scorer`,
  'kvroute-soft': 'EPP process, latencyEndpointPickerConfig with soft session stickiness (a session moves when the predicted TTFT elsewhere, its history recomputed, is lower) plus session-load-scorer 4, minRequests 2',
  'kvroute-admission': 'EPP process, built-in config with the saturation filter in admission mode (GIE\'s detector: loaded pods stay candidates until none has room)',
  'kvroute-precise-admission': 'kvroute-precise with the saturation filter in admission mode',
  'approx-prefix': 'EPP process, upstream GIE plugins-v2 style config (queue 1, kv-cache 1, prefix 2)',
  sglang: 'SGLang-style cache-aware director (approximate char tree per worker, imbalance thresholds), in-process ext_proc',
  'round-robin': 'gateway alone, round robin (no ext_proc)',
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

/** A fresh `RoutingPolicy` (directors are created per stack, so no state leaks between runs). */
export function routingPolicy(name: PolicyName, settings: PolicySettings): RoutingPolicy {
  switch (name) {
    case 'kvroute':
      return { kind: 'epp', name };
    case 'kvroute-precise':
      return { kind: 'epp', name, precise: true };
    case 'kvroute-latency':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(latencyEndpointPickerConfig()) };
    case 'kvroute-sessions':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(sessionLoadConfig(defaultEndpointPickerConfig(), 4)) };
    case 'kvroute-nohit':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(noHitLruConfig(defaultEndpointPickerConfig(), NO_HIT_LRU_WEIGHT)) };
    case 'kvroute-sessions-nohit':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(sessionLoadConfig(noHitLruConfig(defaultEndpointPickerConfig(), NO_HIT_LRU_WEIGHT), 4)) };
    case 'kvroute-soft':
      return { kind: 'epp', name, configText: renderEndpointPickerConfig(sessionLoadConfig(softStickinessConfig(latencyEndpointPickerConfig()), 4)) };
    case 'kvroute-admission':
      return { kind: 'epp', name, configTransform: admissionSaturationConfig };
    case 'kvroute-precise-admission':
      return { kind: 'epp', name, precise: true, configTransform: admissionSaturationConfig };
    case 'approx-prefix':
      return { kind: 'epp', name, configText: APPROX_PREFIX_CONFIG };
    case 'sglang':
      return { kind: 'director', name, director: (endpoints) => new CacheAwareDirector(endpoints, settings.sglang) };
    case 'round-robin':
      return { kind: 'round-robin', name };
    case 'random':
      return { kind: 'director', name, director: (endpoints) => new RandomDirector(endpoints, settings.seed) };
    case 'least-request':
      return { kind: 'director', name, director: (endpoints) => new LeastRequestDirector(endpoints, settings.seed) };
    case 'session-hash':
      return { kind: 'session-hash', name, header: 'x-session-id' };
  }
}
