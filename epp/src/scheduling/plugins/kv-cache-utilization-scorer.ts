import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type Scorer } from '../framework';
import { aliasOf, definePlugin, NO_PARAMETERS } from '../plugin';

/**
 * `kv-cache-utilization-scorer`: `1 − KV usage`; absolute, not relative to the other candidates.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/scorer/kvcache.go @ v0.5.1
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/scorer/kvcacheutilization/kvcache_utilization.go @ v0.10.0
 *   (the same rule; its scheduler clamps each score to [0, 1], `enforceScoreRange` in scheduling/scheduler_profile.go, as the clamp here does)
 */
export class KvCacheUtilizationScorer implements Scorer {
  readonly type: string = 'kv-cache-utilization-scorer';

  constructor(readonly name: string) {}

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(_cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    for (let i = 0; i < candidates.length; i++) out[i] = 1 - Math.min(Math.max(candidates[i]!.metrics.kvCacheUsagePercent, 0), 1);
  }
}

export const kvCacheUtilizationScorer = definePlugin({
  type: 'kv-cache-utilization-scorer',
  kinds: ['scorer'],
  parameters: NO_PARAMETERS,
  create: (name) => new KvCacheUtilizationScorer(name),
});

/** GIE v0.5.1's name for the same scorer (renamed in GIE PR #1238); both load. */
export const kvCacheScorer = aliasOf('kv-cache-scorer', kvCacheUtilizationScorer);
