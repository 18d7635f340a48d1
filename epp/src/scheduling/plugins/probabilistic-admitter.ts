/**
 * `probabilistic-admitter`: llm-d-router v0.10.0's binary-tier probabilistic shedding, at the `Admission` extension
 * point (after flow control and the request-preparing plugins, before the cycle: hooks.ts `Admitter`). A request of
 * priority >= 0 is always admitted, as is any request with no candidates. A sheddable one (priority < 0: the
 * InferenceObjective's, or `x-kvroute-priority`'s) is denied with probability min(sat^power · k, 1), where sat is the
 * mean over the candidates of max(waiting / queueDepthThreshold, KV-cache usage / kvCacheUtilThreshold) (a candidate
 * without metrics counts 1.0: upstream's nil metrics; kvroute's snapshots always carry them, a pod not scraped yet
 * reading zeros as upstream's new endpoint does). With the defaults (power 5, k 300) ~2.3% is shed at sat 0.15 and
 * all of it from sat = (1/300)^(1/5) ≈ 0.32 (upstream's README rounds it to 0.34). Request control answers a denial as upstream's director does: 500 (code Internal),
 * `request cannot be admitted: inference error: ResourceExhausted - probabilistic-admitter: rejected, saturation=…
 * prob=…` (`requestcontrol/director.go` HandleRequest wraps any admitter error as Internal; the plugin's own
 * ResourceExhausted code only shows in the text). The draw comes from the plugin handle's random source (the
 * scheduler's `random` option), as upstream's `WithRandFn` replaces `rand.Float64` in its tests.
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/requestcontrol/admitter/probabilisticadmitter/{plugin.go,README.md} @ v0.10.0
 */
import type { EndpointMetrics, EndpointSnapshot } from '../../datastore/types';
import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { Admitter } from '../../requestcontrol/hooks';
import type { LLMRequest } from '../types';
import { definePlugin, parameters } from '../plugin';

export interface ProbabilisticAdmitterParameters {
  /** A pod's waiting queue at which its saturation is 1.0; an integer > 0. @default 5 */
  queueDepthThreshold?: number;
  /** A pod's KV-cache usage (0-1) at which its saturation is 1.0; > 0. @default 0.8 */
  kvCacheUtilThreshold?: number;
  /** The shedding curve's steepness; > 0. @default 5 */
  power?: number;
  /** Where the curve starts shedding: all of it at sat = (1/k)^(1/power); > 0. @default 300 */
  k?: number;
}

export class ProbabilisticAdmitter implements Admitter {
  readonly type = 'probabilistic-admitter';

  constructor(
    readonly name: string,
    readonly parameters: Required<ProbabilisticAdmitterParameters>,
    private readonly random: () => number,
  ) {}

  admit(_request: LLMRequest, priority: number, candidates: readonly EndpointSnapshot[]): string | undefined {
    if (priority >= 0) return undefined;
    if (candidates.length === 0) return undefined;
    const saturation = this.computeSaturation(candidates);
    const prob = Math.min(Math.pow(saturation, this.parameters.power) * this.parameters.k, 1);
    if (this.random() < prob) {
      // errcommon.Error{Code: ResourceExhausted, Msg: …}.Error(), with Go's %.3f and %.2f.
      return `inference error: ResourceExhausted - probabilistic-admitter: rejected, saturation=${saturation.toFixed(3)} prob=${prob.toFixed(2)}`;
    }
    return undefined;
  }

  /** Upstream's computeSaturation: avg over the candidates of max(QD / qdThreshold, KV / kvThreshold). */
  computeSaturation(candidates: readonly EndpointSnapshot[]): number {
    let total = 0;
    for (const candidate of candidates) {
      const m = candidate.metrics as EndpointMetrics | undefined;
      if (m === undefined || m === null) {
        total += 1;
        continue;
      }
      total += Math.max(m.waitingQueueSize / this.parameters.queueDepthThreshold, m.kvCacheUsagePercent / this.parameters.kvCacheUtilThreshold);
    }
    return total / candidates.length;
  }
}

/** A number field that must be > 0, with upstream's message (`plugin.go` Factory); `integer` refuses fractions too. */
function positive(fields: FieldReader, key: string, defaultValue: number, integer = false): number {
  const value = fields.raw(key);
  if (value === undefined || value === null) return defaultValue;
  // Upstream decodes into Go's int and float64: a string, or a fraction for the int, fails to decode.
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new ConfigError(fields.fieldPath(key), `must be ${integer ? 'an integer' : 'a number'}, got ${describeValue(value)}`);
  }
  if (value <= 0) throw new ConfigError(fields.fieldPath(key), `must be > 0, got ${value}`);
  return value;
}

export const probabilisticAdmitter = definePlugin({
  type: 'probabilistic-admitter',
  kinds: ['admission'],
  parameters: parameters<ProbabilisticAdmitterParameters>((fields) => ({
    queueDepthThreshold: positive(fields, 'queueDepthThreshold', 5, true),
    kvCacheUtilThreshold: positive(fields, 'kvCacheUtilThreshold', 0.8),
    power: positive(fields, 'power', 5),
    k: positive(fields, 'k', 300),
  })),
  create: (name, resolved, handle) => new ProbabilisticAdmitter(name, resolved, handle.random),
});
