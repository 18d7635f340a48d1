/**
 * The Grafana dashboard (schema 39, Grafana 10/11) shipped as a ConfigMap. Panels query only the series the
 * PrometheusRule records, so the heavy PromQL runs once in Prometheus and the dashboard and alerts agree. The recorded
 * ratios and quantiles are NaN while the pool is idle (see `RECORDED` in monitoring.ts); every panel maps NaN to the
 * text "idle", so an idle pool reads "idle" and only a series Prometheus does not have reads "No data".
 */
import { createHash } from 'crypto';

/**
 * The stat panels' calculation: the value at the end of the time range, NaN included. Grafana's stat panel defaults to
 * `lastNotNull` (public/app/plugins/panel/stat/common.ts addStandardDataReduceOptions), which skips NaN ("Last, not null
 * value in a field (also excludes NaNs)", Grafana 10.4 and 11.4 docs, panels-visualizations/query-transform-data/
 * calculation-types; packages/grafana-data/src/transformations/fieldReducer.ts calculateLastNotNull): a pool that went
 * idle kept showing its last busy hit ratio or fail-open share for the whole range, and one idle throughout showed no
 * value at all, never "idle".
 */
export const STAT_REDUCE_OPTIONS = { calcs: ['last'], fields: '', values: false } as const;

/** Grafana's value mapping of NaN to the text "idle". */
export const IDLE_MAPPING = { type: 'special', options: { match: 'nan', result: { text: 'idle', index: 0 } } } as const;

interface Target { expr: string; legendFormat: string }

interface PanelSpec {
  title: string;
  description: string;
  unit: string;
  targets: Target[];
  type?: 'timeseries' | 'stat' | 'table';
  max?: number;
}

export function buildDashboard(namespace: string, recorded: Record<string, string>): Record<string, unknown> {
  const sel = `{namespace="${namespace}"}`;
  const panels: PanelSpec[] = [
    {
      title: 'Prefix-cache hit ratio (pool)', type: 'stat', unit: 'percentunit', max: 1,
      description: 'Prompt tokens served from vLLM\'s prefix cache over tokens looked up, across the pool (5m).',
      targets: [{ expr: `${recorded.prefixHitRatio}${sel}`, legendFormat: 'pool' }],
    },
    {
      title: 'Requests failed open (gateway)', type: 'stat', unit: 'percentunit', max: 1,
      description: 'Share of the gateway Envoy\'s ext_proc streams that went on without the EPP\'s pick (failure_mode_allowed: unreachable, erroring or later than the message timeout), 5m. Above 0 the gateway routed without KV-cache affinity. While streams cannot even open (no EPP endpoint) they are not counted as started, so the share reads high: an upper bound.',
      targets: [{ expr: `${recorded.gatewayFailOpenRatio}${sel}`, legendFormat: 'failed open' }],
    },
    {
      title: 'Session affinity hit ratio', type: 'stat', unit: 'percentunit', max: 1,
      description: 'Returning session requests that landed on their bound pod (re-pins after a pod left count against it).',
      targets: [{ expr: `${recorded.sessionAffinityHitRatio}${sel}`, legendFormat: 'hits' }],
    },
    {
      title: 'Prefix-cache hit ratio per pod', unit: 'percentunit', max: 1,
      description: 'Per decode pod (5m).',
      targets: [{ expr: `${recorded.prefixHitRatioByPod}${sel}`, legendFormat: '{{pod}}' }],
    },
    {
      title: 'Time to first token', unit: 's',
      description: 'p50 and p99 from vLLM\'s TTFT histogram (5m).',
      targets: [
        { expr: `${recorded.ttftP50}${sel}`, legendFormat: 'p50 {{model_name}}' },
        { expr: `${recorded.ttftP99}${sel}`, legendFormat: 'p99 {{model_name}}' },
      ],
    },
    {
      title: 'KV-cache usage per pod', unit: 'percentunit', max: 1,
      description: 'Share of KV-cache blocks in use; near 100% the pod evicts cached prefixes and queues.',
      targets: [{ expr: `${recorded.kvCacheUsageByPod}${sel}`, legendFormat: '{{pod}}' }],
    },
    {
      title: 'Waiting requests per pod', unit: 'short',
      description: 'vLLM\'s queue depth: what the EPP\'s queue scorer and saturation filter read.',
      targets: [{ expr: `${recorded.waitingByPod}${sel}`, legendFormat: '{{pod}}' }],
    },
    {
      title: 'EPP picks per endpoint', unit: 'reqps',
      description: 'Where the EPP sends traffic; a skew here with a high hit ratio is the routing working.',
      targets: [{ expr: `${recorded.picksByEndpoint}${sel}`, legendFormat: '{{destination_endpoint}}' }],
    },
    {
      title: 'EPP answers past the message timeout', unit: 'percentunit', max: 1,
      description: 'Share of the gateway\'s ext_proc streams whose EPP answer came later than the message timeout (Envoy\'s message_timeouts), 5m.',
      targets: [{ expr: `${recorded.gatewayMessageTimeoutRatio}${sel}`, legendFormat: 'timed out' }],
    },
    {
      title: 'EPP scheduling latency p99', unit: 's',
      description: 'Time from a complete request body to the pick.',
      targets: [{ expr: `${recorded.schedulerP99}${sel}`, legendFormat: 'p99' }],
    },
    {
      // An info metric: the values are in its labels, so a table of the current series shows them.
      title: 'GPU memory budget per pod', unit: 'short', type: 'table',
      description: 'vLLM\'s --gpu-memory-utilization, KV-cache blocks and block size per pod, from cache_config_info.',
      targets: [{ expr: `${recorded.cacheConfigInfo}${sel}`, legendFormat: '{{pod}}' }],
    },
  ];

  return {
    uid: dashboardUid(namespace),
    title: `kvroute: KV-cache-aware routing (${namespace})`,
    tags: ['kvroute', 'vllm', 'llm-d'],
    schemaVersion: 39,
    editable: true,
    time: { from: 'now-1h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [{ name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Prometheus', current: {} }],
    },
    panels: layout(panels).map(({ panel: p, gridPos }, i) => ({
      id: i + 1,
      type: p.type ?? 'timeseries',
      title: p.title,
      description: p.description,
      datasource: { type: 'prometheus', uid: '${datasource}' },
      gridPos,
      fieldConfig: {
        defaults: { unit: p.unit, min: 0, ...(p.max !== undefined ? { max: p.max } : {}), mappings: [IDLE_MAPPING] },
        overrides: [],
      },
      options: p.type === 'stat' ? { reduceOptions: STAT_REDUCE_OPTIONS } : {},
      targets: p.targets.map((t, j) => ({
        refId: String.fromCharCode(65 + j),
        expr: t.expr,
        legendFormat: t.legendFormat,
        ...(p.type === 'table' ? { instant: true, range: false, format: 'table' } : {}),
      })),
    })),
  };
}

/**
 * The dashboard's uid: `kvroute-<namespace>`, at most the 40 characters Grafana takes (pkg/util/shortid_generator.go
 * MaxUIDLength). A longer one keeps the namespace's first 23 characters and adds 8 hex digits of its SHA-256, so two
 * long namespaces that share their first 32 characters (`llm-inference-team-a-production-us-east-1` and `…-us-west-2`)
 * still get two uids: cut at 40 they got one, and Grafana's provisioning, finding the same uid twice, logs "the same
 * UID is used more than once" and takes the provider's database write permission away (pkg/services/provisioning/
 * dashboards/validator.go duplicateValidator), so the sidecar's provider stopped updating every dashboard it loads.
 */
export function dashboardUid(namespace: string): string {
  const uid = `kvroute-${namespace}`;
  if (uid.length <= 40) return uid;
  return `kvroute-${namespace.slice(0, 23)}-${createHash('sha256').update(namespace).digest('hex').slice(0, 8)}`;
}

/** Stats in a top row of four, then time series two to a row. */
function layout(panels: PanelSpec[]): { panel: PanelSpec; gridPos: { h: number; w: number; x: number; y: number } }[] {
  const stats = panels.filter((p) => p.type === 'stat');
  const series = panels.filter((p) => p.type !== 'stat');
  const statWidth = Math.floor(24 / Math.max(stats.length, 1));
  return [
    ...stats.map((panel, i) => ({ panel, gridPos: { h: 5, w: statWidth, x: i * statWidth, y: 0 } })),
    ...series.map((panel, i) => ({ panel, gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: 5 + Math.floor(i / 2) * 8 } })),
  ];
}
