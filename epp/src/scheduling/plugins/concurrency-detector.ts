import { ConfigError } from '../../config/errors';
import type { EndpointSnapshot } from '../../datastore/types';
import type { SaturationDetector } from '../../requestcontrol/hooks';
import type { CycleContext, Filter, PluginHandle } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { checkInFlightLoadProducerRef } from './inflight-load-producer';

export interface ConcurrencyDetectorParameters {
  /**
   * What is counted in flight. Only `requests` here: GIE's `tokens` mode estimates each request's tokens with its own
   * estimator, which kvroute does not reproduce, so it is refused rather than counted differently. @default "requests"
   */
  concurrencyMode?: 'requests';
  /** The ideal number of requests in flight on one pod; must be > 0. @default 100 */
  maxConcurrency?: number;
  /** How far the filter lets one pod go above `maxConcurrency` (0.1 = 10%); the pool fraction ignores it. @default 0 */
  headroom?: number;
  /**
   * llm-d-router v0.10.0's: the `inflight-load-producer` whose counts it reads ("": the default one). When set it must
   * name one in the config; the count read is the same either way (the datastore's, which the producer's stands for).
   * @default ""
   */
  inFlightLoadProducerName?: string;
}

/**
 * `concurrency-detector`: GIE v1.5.0's alternative saturation detector, from the EPP's own in-flight accounting (the
 * requests it routed whose responses have not ended, and a P/D request's prefill pick until its response starts, as
 * llm-d-router v0.10.0's `inflight-load-producer` counts them where GIE v1.5.0's counted the primary profile's picks
 * alone; kvroute's `activeRequests`, the count `active-request-scorer` reads) rather than scraped metrics, so it sees a burst at once.
 * - **As the detector**: the pool's saturation is the requests in flight on all candidates ÷ (candidates ×
 *   `maxConcurrency`); 1.0 for no candidate.
 * - **As a filter**: keeps the pods with fewer than ⌊`maxConcurrency` × (1 + `headroom`)⌋ requests in flight. It does
 *   not fail open: when no pod is below its limit the cycle fails `saturated`, and the request waits in flow control.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/flowcontrol/saturationdetector/concurrency/detector.go, config.go @ v1.5.0
 */
export class ConcurrencyDetector implements Filter, SaturationDetector {
  readonly type = 'concurrency-detector';
  readonly emptyResultReason = 'saturated' as const;
  private readonly limit: number;

  constructor(
    readonly name: string,
    private readonly parameters: ConcurrencyDetectorParameters & Required<Pick<ConcurrencyDetectorParameters, 'maxConcurrency' | 'headroom'>>,
    private readonly handle?: PluginHandle,
  ) {
    // Go's int64(float64(max) * (1 + headroom)) truncates.
    this.limit = Math.trunc(parameters.maxConcurrency * (1 + parameters.headroom));
  }

  /** A named producer must be an `inflight-load-producer` of the config (upstream's detector Consumes its key). */
  resolveReferences(): void {
    checkInFlightLoadProducerRef(this.name, this.parameters.inFlightLoadProducerName, this.handle);
  }

  saturation(candidates: readonly EndpointSnapshot[]): number {
    if (candidates.length === 0) return 1;
    let inFlight = 0;
    for (const candidate of candidates) inFlight += candidate.activeRequests;
    return inFlight / (candidates.length * this.parameters.maxConcurrency);
  }

  filter(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    let kept: EndpointSnapshot[] | undefined;
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[i]!;
      if (candidate.activeRequests < this.limit) kept?.push(candidate);
      else kept ??= candidates.slice(0, i);
    }
    return kept ?? candidates;
  }
}

export const concurrencyDetector = definePlugin({
  type: 'concurrency-detector',
  kinds: ['filter', 'saturation-detector'],
  parameters: parameters<ConcurrencyDetectorParameters>((fields) => {
    // llm-d-router v0.10.0 adds "hybrid" (`concurrency/config.go` validateConfig), which reads token counts as well.
    const mode = fields.oneOf('concurrencyMode', ['requests', 'tokens', 'hybrid'] as const, 'requests');
    if (mode === 'tokens') {
      throw new ConfigError(fields.fieldPath('concurrencyMode'), 'GIE\'s "tokens" mode is not supported (kvroute does not reproduce its token estimator); use "requests"');
    }
    if (mode === 'hybrid') {
      throw new ConfigError(fields.fieldPath('concurrencyMode'), 'llm-d-router\'s "hybrid" mode is not supported (it reads token counts, and kvroute does not reproduce the token estimator); use "requests"');
    }
    // GIE validates it in every mode and uses it in tokens mode only (`concurrency/config.go` @ v1.5.0): checked, unused.
    fields.integer('maxTokenConcurrency', 1_000_000, 1);
    // llm-d-router v0.10.0 `concurrency/config.go` apiConfig.InFlightLoadProducerName (a plain string field).
    const inFlightLoadProducerName = fields.goString('inFlightLoadProducerName', 'a plugin name');
    return {
      concurrencyMode: 'requests',
      maxConcurrency: fields.integer('maxConcurrency', 100, 1),
      headroom: fields.number('headroom', 0, 0),
      // Rendered only when given, so configs that never set it render unchanged.
      ...(inFlightLoadProducerName !== '' ? { inFlightLoadProducerName } : {}),
    } as Required<ConcurrencyDetectorParameters>;
  }),
  create: (name, resolved, handle) => new ConcurrencyDetector(name, resolved, handle),
});
