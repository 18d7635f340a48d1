import { ConfigError, describeValue } from '../../config/errors';
import { FieldReader } from '../../config/fields';
import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Filter, PluginHandle } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { referencedPlugin } from './plugin-reference';

/** The metrics a condition may cap, by upstream's names (`filter/utilization/filter.go` Metric* @ llm-d-router v0.10.0). */
export const UTILIZATION_METRICS = ['active-requests', 'running-requests', 'waiting-queue', 'kv-cache-utilization'] as const;
export type UtilizationMetric = (typeof UTILIZATION_METRICS)[number];

export interface UtilizationCondition {
  metric: UtilizationMetric;
  /** The largest value of `metric` an endpoint may have and still be kept; ≥ 0, and ≤ 1 for `kv-cache-utilization`. */
  maxValue: number;
}

export interface UtilizationFilterParameters {
  /** The caps an endpoint must all satisfy to be kept; at least one. */
  conditions: UtilizationCondition[];
  /** When every candidate was dropped, keep them all instead, so the request is still routed. @default false */
  fallbackOnEmpty?: boolean;
  /**
   * `active-requests` only: the `inflight-load-producer` whose count is read. "": the default producer. Every such
   * producer reports this EPP's in-flight count per endpoint, which is what the filter reads. @default ""
   */
  inFlightLoadProducerName?: string;
}

/**
 * `utilization-filter`: keeps the candidates whose every capped metric is at most its `maxValue`, so one condition
 * exceeded drops an endpoint (an OR of overload rules); with `fallbackOnEmpty`, every candidate when none is left.
 * `active-requests` is this EPP's in-flight count per endpoint (upstream's `InFlightLoad.Requests`, which the
 * `inflight-load-producer` reports as this same count), `running-requests`, `waiting-queue` and `kv-cache-utilization`
 * (a 0–1 fraction) are the scraped vLLM metrics; an endpoint not yet scraped reads 0, as upstream reads a missing
 * metric. Left empty, the request fails as saturated (429), as kvroute's other load filters do; upstream's scheduler
 * answers an empty profile with its internal "no endpoints available for the given request".
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/filter/utilization/filter.go, README.md @ v0.10.0
 */
export class UtilizationFilter implements Filter {
  readonly type = 'utilization-filter';
  readonly emptyResultReason = 'saturated' as const;

  constructor(
    readonly name: string,
    readonly parameters: Required<UtilizationFilterParameters>,
    private readonly handle: PluginHandle,
  ) {}

  /** A named producer must be an `inflight-load-producer`, when a condition reads it (upstream consumes its key only then). */
  resolveReferences(): void {
    const p = this.parameters;
    if (p.inFlightLoadProducerName === '' || !p.conditions.some((c) => c.metric === 'active-requests')) return;
    const path = `${this.name}.parameters.inFlightLoadProducerName`;
    const producer = referencedPlugin(this.handle, [...(this.handle.plugins?.() ?? [])], path, p.inFlightLoadProducerName, (x) => x.type === 'inflight-load-producer');
    if (producer !== undefined && producer.type !== 'inflight-load-producer') {
      throw new ConfigError(path, `${JSON.stringify(producer.name)} is a ${producer.type}; name an inflight-load-producer`);
    }
  }

  filter(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const kept = candidates.filter((c) => this.parameters.conditions.every((cond) => metricValue(c, cond.metric) <= cond.maxValue));
    return kept.length === 0 && this.parameters.fallbackOnEmpty ? candidates : kept;
  }
}

function metricValue(candidate: EndpointSnapshot, metric: UtilizationMetric): number {
  switch (metric) {
    case 'active-requests': return candidate.activeRequests;
    case 'running-requests': return candidate.metrics.runningQueueSize;
    case 'waiting-queue': return candidate.metrics.waitingQueueSize;
    case 'kv-cache-utilization': return candidate.metrics.kvCacheUsagePercent;
  }
}

/** One condition, with upstream's checks and messages in its order (NewUtilizationFilter), unknown keys refused as its strict decoder does. */
function readCondition(value: unknown, path: string): UtilizationCondition {
  const fields = FieldReader.ofMap(value, path);
  const metric = fields.raw('metric');
  if (!(UTILIZATION_METRICS as readonly unknown[]).includes(metric)) {
    const got = typeof metric === 'string' ? JSON.stringify(metric) : metric === undefined || metric === null ? '""' : describeValue(metric);
    throw new ConfigError(fields.fieldPath('metric'), `utilization filter condition metric must be one of ${UTILIZATION_METRICS.map((m) => JSON.stringify(m)).join(', ')}, got ${got}`);
  }
  const maxValue = fields.raw('maxValue');
  if (maxValue === undefined || maxValue === null) throw new ConfigError(fields.fieldPath('maxValue'), `utilization filter condition for ${JSON.stringify(metric)} requires maxValue`);
  if (typeof maxValue !== 'number' || !Number.isFinite(maxValue)) throw new ConfigError(fields.fieldPath('maxValue'), `must be a number, got ${describeValue(maxValue)}`);
  if (maxValue < 0) {
    throw new ConfigError(fields.fieldPath('maxValue'), `utilization filter condition for ${JSON.stringify(metric)} requires a non-negative maxValue, got ${String(maxValue)}`);
  }
  if (metric === 'kv-cache-utilization' && maxValue > 1) {
    throw new ConfigError(fields.fieldPath('maxValue'), `utilization filter maxValue for "kv-cache-utilization" is a fraction and must be at most 1, got ${String(maxValue)}`);
  }
  fields.finish();
  return { metric: metric as UtilizationMetric, maxValue };
}

export const utilizationFilter = definePlugin({
  type: 'utilization-filter',
  kinds: ['filter'],
  parameters: parameters<UtilizationFilterParameters>((fields) => {
    const raw = fields.raw('conditions');
    if (raw !== undefined && raw !== null && !Array.isArray(raw)) throw new ConfigError(fields.fieldPath('conditions'), `must be a list, got ${describeValue(raw)}`);
    if (raw === undefined || raw === null || raw.length === 0) throw new ConfigError(fields.fieldPath('conditions'), 'utilization filter requires at least one condition');
    return {
      conditions: raw.map((c: unknown, i: number) => readCondition(c, `${fields.fieldPath('conditions')}[${i}]`)),
      fallbackOnEmpty: fields.boolean('fallbackOnEmpty', false),
      inFlightLoadProducerName: fields.goString('inFlightLoadProducerName', 'a plugin name'),
    };
  }),
  create: (name, resolved, handle) => new UtilizationFilter(name, resolved, handle),
});
