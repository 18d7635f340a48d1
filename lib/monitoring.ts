import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import * as pm from '../imports/podmonitor-monitoring.coreos.com';
import * as pr from '../imports/prometheusrule-monitoring.coreos.com';
import * as sm from '../imports/servicemonitor-monitoring.coreos.com';
import { EPP_METRIC_NAMES as EPP_METRICS } from '@kvroute/epp/config';
import { DecodePool } from './decode-pool';
import { EndpointPicker } from './endpoint-picker';
import { buildDashboard } from './dashboard';
import { checkDuration, checkFraction } from './validation';
import { VLLM_METRICS } from './vllm-metrics';

/** Props of {@link Monitoring}. */
export interface MonitoringProps {
  readonly decodePool: DecodePool;
  readonly endpointPicker: EndpointPicker;
  /**
   * Labels on the monitors and the rule, for Prometheus Operator instances that select by label (kube-prometheus-stack
   * selects `release: <its release name>` unless told to select everything).
   * @default none
   */
  readonly selectorLabels?: Record<string, string>;
  /** @default '15s' */
  readonly vllmScrapeInterval?: string;
  /** @default '10s' */
  readonly eppScrapeInterval?: string;
  /** Alert when the pool's prefix-cache hit ratio stays below this for 15 minutes. @default 0.8 */
  readonly minPrefixCacheHitRatio?: number;
  /** Alert when a pod's KV cache stays fuller than this for 10 minutes. @default 0.95 */
  readonly maxKvCacheUsage?: number;
  /** Alert when the EPP routed less than this share of the requests vLLM served (the gateway failing open). @default 0.9 */
  readonly minEppRoutedFraction?: number;
  /**
   * Label that makes Grafana's dashboard sidecar (kube-prometheus-stack) load the dashboard ConfigMap.
   * @default { grafana_dashboard: '1' }
   */
  readonly dashboardLabels?: Record<string, string>;
}

/** Names of the series the PrometheusRule records; the dashboard reads only these. */
export const RECORDED = {
  prefixHitRatioByPod: 'kvroute:vllm_prefix_cache_hit_ratio:rate5m',
  prefixHitRatio: 'kvroute:vllm_prefix_cache_hit_ratio_pool:rate5m',
  ttftP50: 'kvroute:vllm_time_to_first_token_seconds:p50_5m',
  ttftP99: 'kvroute:vllm_time_to_first_token_seconds:p99_5m',
  kvCacheUsageByPod: 'kvroute:vllm_kv_cache_usage:max',
  waitingByPod: 'kvroute:vllm_num_requests_waiting:sum',
  gpuMemoryConfig: 'kvroute:vllm_gpu_memory_utilization:info',
  servedRate: 'kvroute:vllm_requests_served:rate5m',
  eppRoutedFraction: 'kvroute:epp_routed_fraction:rate5m',
  sessionAffinityHitRatio: 'kvroute:epp_session_affinity_hit_ratio:rate5m',
  schedulerP99: 'kvroute:epp_scheduler_e2e_seconds:p99_5m',
  picksByEndpoint: 'kvroute:epp_picks:rate5m',
} as const;

/**
 * Prometheus Operator objects for the stack: a PodMonitor on vLLM's own port (the sidecar proxies /metrics too, but
 * per-pod series need the pod target), a ServiceMonitor on the EPP, a PrometheusRule with the recorded series and
 * alerts, and a Grafana dashboard ConfigMap whose panels query the recorded series.
 */
export class Monitoring extends Construct {
  public readonly podMonitor: pm.PodMonitor;
  public readonly serviceMonitor: sm.ServiceMonitor;
  public readonly rule: pr.PrometheusRule;
  public readonly dashboard: k8s.KubeConfigMap;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const S = 'Monitoring';
    const { decodePool, endpointPicker } = props;
    const ns = decodePool.namespace;
    const labels = props.selectorLabels ? { ...props.selectorLabels } : undefined;
    const vllmInterval = checkDuration(S, 'vllmScrapeInterval', props.vllmScrapeInterval ?? '15s');
    const eppInterval = checkDuration(S, 'eppScrapeInterval', props.eppScrapeInterval ?? '10s');
    const minHit = checkFraction(S, 'minPrefixCacheHitRatio', props.minPrefixCacheHitRatio ?? 0.8, 0, 1);
    const maxKv = checkFraction(S, 'maxKvCacheUsage', props.maxKvCacheUsage ?? 0.95, 0, 1);
    const minRouted = checkFraction(S, 'minEppRoutedFraction', props.minEppRoutedFraction ?? 0.9, 0, 1);

    this.podMonitor = new pm.PodMonitor(this, 'VllmPodMonitor', {
      metadata: { name: `${decodePool.deploymentName}-vllm`, namespace: ns, labels },
      spec: {
        selector: { matchLabels: { ...decodePool.podLabels } },
        podMetricsEndpoints: [{ port: DecodePool.VLLM_PORT_NAME, path: '/metrics', interval: vllmInterval }],
      },
    });

    this.serviceMonitor = new sm.ServiceMonitor(this, 'EppServiceMonitor', {
      metadata: { name: endpointPicker.name, namespace: ns, labels },
      spec: {
        selector: { matchLabels: { ...endpointPicker.podLabels } },
        endpoints: [{ port: EndpointPicker.METRICS_PORT_NAME, path: '/metrics', interval: eppInterval }],
      },
    });

    // Every expression is scoped to this stack: other vLLM fleets in the same Prometheus must not mix in.
    const vllm = `namespace="${ns}"`;
    const epp = `namespace="${ns}"`;
    const rate = (metric: string, sel: string) => `rate(${metric}{${sel}}[5m])`;
    const quantile = (q: number) =>
      `histogram_quantile(${q}, sum by (namespace, model_name, le) (${rate(`${VLLM_METRICS.timeToFirstToken}_bucket`, vllm)}))`;
    // Ratios divide by `(denominator > 0)`, never `A / B > 0`: the latter also drops a ratio of exactly 0, which is
    // precisely when the hit-ratio and failing-open alerts must fire.
    const rules: pr.PrometheusRuleSpecGroupsRules[] = [
      record(RECORDED.prefixHitRatioByPod,
        `sum by (namespace, pod) (${rate(VLLM_METRICS.prefixCacheHits, vllm)})\n/\n`
        + `(sum by (namespace, pod) (${rate(VLLM_METRICS.prefixCacheQueries, vllm)}) > 0)`),
      record(RECORDED.prefixHitRatio,
        `sum by (namespace) (${rate(VLLM_METRICS.prefixCacheHits, vllm)})\n/\n`
        + `(sum by (namespace) (${rate(VLLM_METRICS.prefixCacheQueries, vllm)}) > 0)`),
      record(RECORDED.ttftP50, quantile(0.5)),
      record(RECORDED.ttftP99, quantile(0.99)),
      record(RECORDED.kvCacheUsageByPod, `max by (namespace, pod) (${VLLM_METRICS.kvCacheUsagePerc}{${vllm}})`),
      record(RECORDED.waitingByPod, `sum by (namespace, pod) (${VLLM_METRICS.numRequestsWaiting}{${vllm}})`),
      // vLLM exports its memory budget as labels of cache_config_info; used framebuffer bytes come from DCGM.
      record(RECORDED.gpuMemoryConfig,
        `max by (namespace, pod, gpu_memory_utilization, num_gpu_blocks, block_size) (${VLLM_METRICS.cacheConfigInfo}{${vllm}})`),
      record(RECORDED.servedRate, `sum by (namespace) (${rate(`${VLLM_METRICS.e2eRequestLatency}_count`, vllm)})`),
      // Requests the EPP scheduled over requests vLLM finished: below 1 means the gateway routed without a pick. An
      // EPP that is down exports nothing, so its share counts as 0 rather than vanishing.
      record(RECORDED.eppRoutedFraction,
        `(\n  sum by (namespace) (${rate(EPP_METRICS.requestTotal, epp)})\n  or\n  0 * ${RECORDED.servedRate}{${epp}}\n)\n/\n`
        + `(${RECORDED.servedRate}{${epp}} > 0)`),
      // Hits over returning sessions; a new session's first request is neither a hit nor a re-pin.
      record(RECORDED.sessionAffinityHitRatio,
        `sum by (namespace) (${rate(EPP_METRICS.sessionAffinity, `${epp},outcome="hit"`)})\n/\n`
        + `(sum by (namespace) (${rate(EPP_METRICS.sessionAffinity, `${epp},outcome=~"hit|repin"`)}) > 0)`),
      record(RECORDED.schedulerP99,
        `histogram_quantile(0.99, sum by (namespace, le) (${rate(`${EPP_METRICS.schedulerE2eDuration}_bucket`, epp)}))`),
      record(RECORDED.picksByEndpoint, `sum by (namespace, destination_endpoint) (${rate(EPP_METRICS.picks, epp)})`),
    ];
    const alerts: pr.PrometheusRuleSpecGroupsRules[] = [
      alert('KvroutePrefixCacheHitRatioLow', `${RECORDED.prefixHitRatio}{${vllm}} < ${minHit}`, '15m', 'warning',
        `Prefix-cache hit ratio in ${ns} is {{ $value | humanizePercentage }}, under ${minHit * 100}% for 15 minutes.`,
        'Requests that share prefixes are not landing where their KV cache is: check the EPP picks and its prefix scorer weight, or whether the KV cache is too small for the working set.'),
      alert('KvrouteEppFailingOpen', `${RECORDED.eppRoutedFraction}{${epp}} < ${minRouted}`, '5m', 'critical',
        `Only {{ $value | humanizePercentage }} of the requests served in ${ns} were routed by the EPP.`,
        'The gateway is failing open (EPP down, slow or unreachable): requests are served round robin without KV-cache affinity.'),
      alert('KvrouteKvCacheNearFull', `${RECORDED.kvCacheUsageByPod}{${vllm}} > ${maxKv}`, '10m', 'warning',
        'KV cache of {{ $labels.pod }} is {{ $value | humanizePercentage }} full.',
        'The pod is evicting cached prefixes and will queue or preempt requests; add replicas or lower max-model-len.'),
      alert('KvrouteNoReadyDecodePods',
        `max by (namespace) (${EPP_METRICS.poolReadyPods}{${epp},name="${endpointPicker.poolName}"}) == 0`
        + `\nor\nabsent(${VLLM_METRICS.numRequestsRunning}{${vllm}})`,
        '5m', 'critical',
        `No decode pod of pool ${endpointPicker.poolName} in ${ns} is ready.`,
        'Every request fails: check GPU scheduling, model download and vLLM start-up logs.'),
    ];

    this.rule = new pr.PrometheusRule(this, 'Rules', {
      metadata: { name: `${endpointPicker.poolName}-kvroute`, namespace: ns, labels },
      spec: {
        groups: [
          { name: 'kvroute.recording', interval: '30s', rules },
          { name: 'kvroute.alerts', rules: alerts },
        ],
      },
    });

    this.dashboard = new k8s.KubeConfigMap(this, 'Dashboard', {
      metadata: {
        name: `${endpointPicker.poolName}-kvroute-dashboard`,
        namespace: ns,
        labels: { ...(props.dashboardLabels ?? { grafana_dashboard: '1' }) },
      },
      data: { 'kvroute.json': JSON.stringify(buildDashboard(ns, RECORDED), null, 2) },
    });
  }
}

function record(name: string, expr: string): pr.PrometheusRuleSpecGroupsRules {
  return { record: name, expr: pr.PrometheusRuleSpecGroupsRulesExpr.fromString(expr) };
}

function alert(name: string, expr: string, forDuration: string, severity: 'warning' | 'critical', summary: string,
  description: string): pr.PrometheusRuleSpecGroupsRules {
  return {
    alert: name,
    expr: pr.PrometheusRuleSpecGroupsRulesExpr.fromString(expr),
    for: forDuration,
    labels: { severity },
    annotations: { summary, description },
  };
}
