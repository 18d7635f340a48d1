import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import * as pm from '../imports/podmonitor-monitoring.coreos.com';
import * as pr from '../imports/prometheusrule-monitoring.coreos.com';
import * as sm from '../imports/servicemonitor-monitoring.coreos.com';
import { EPP_METRIC_NAMES as EPP_METRICS } from '@kvroute/epp/config';
import { DecodePool } from './decode-pool';
import { EndpointPicker } from './endpoint-picker';
import { ENVOY_EXT_PROC_METRICS as ENVOY, ENVOY_PROM_PATH, ENVOY_PROM_PORT_NAME } from './envoy-metrics';
import type { InferenceGateway } from './gateway';
import { buildDashboard } from './dashboard';
import { checkFraction, checkLabels, checkOneOf, checkPrometheusDuration, durationMs, PropsError } from './validation';
import { KUBE_STATE_METRICS as KSM } from './kube-state-metrics';
import { VLLM_METRICS } from './vllm-metrics';

/** Props of {@link Monitoring}. */
export interface MonitoringProps {
  readonly decodePool: DecodePool;
  readonly endpointPicker: EndpointPicker;
  /**
   * The gateway whose Envoy calls the EPP: a PodMonitor scrapes its ext_proc counters (port `http-envoy-prom`), which
   * the fail-open alerts read. The Gateway must export them (`InferenceGateway` `exportExtProcStats`, on by default).
   */
  readonly gateway: InferenceGateway;
  /**
   * Labels on the monitors and the rule, for Prometheus Operator instances that select by label (kube-prometheus-stack
   * selects `release: <its release name>` unless told to select everything). Keys and values as Kubernetes labels take them.
   * @default none
   * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
   */
  readonly selectorLabels?: Record<string, string>;
  /**
   * Scrape interval of the vLLM PodMonitor. A Prometheus Operator duration: whole numbers with units in the order h, m,
   * s, ms ("15s", "1m30s"; not "7.5s"). At most 75s: the recorded ratios rate vLLM's counters over 5 minutes, and a
   * rate needs several samples in its window (4 at least).
   * @default '15s'
   * @see https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.Duration
   */
  readonly vllmScrapeInterval?: string;
  /**
   * Scrape interval of the EPP ServiceMonitor; a Prometheus Operator duration, as `vllmScrapeInterval`. At most 10s, so
   * that an EPP outage of a minute pages during it: the scrape, the alert evaluation (15 s) and `KvrouteEppDown`'s
   * `for: 30s` add up to at most 55 s.
   * @default '10s'
   * @see https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.Duration
   */
  readonly eppScrapeInterval?: string;
  /**
   * Scrape interval of the gateway pods' Envoy stats; a Prometheus Operator duration, as `vllmScrapeInterval`. At most
   * 15s: the paging alerts rate the gateway's ext_proc counters over 1 minute, which needs 4 samples at least (at 1m a
   * window holds two at best, and `KvrouteEppFailingOpen` never fired through ten minutes of failing open).
   * @default '10s'
   * @see https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.Duration
   */
  readonly gatewayScrapeInterval?: string;
  /**
   * Also warn (`KvroutePrefixCacheHitRatioLow`) when the pool's prefix-cache hit ratio stays below this absolute floor
   * for 15 minutes. What ratio is healthy depends on the workload (a chat fleet sharing system prompts reaches 0.8-0.9,
   * distinct prompts near 0), so there is no default floor: by default the warning is `KvroutePrefixCacheHitsBelowExpected`,
   * which compares the pods' ratio with what the EPP's precise index predicted of its picks (where it runs; with the
   * approximate index alone this floor is the only hit-ratio warning).
   * @default none
   */
  readonly minPrefixCacheHitRatio?: number;
  /**
   * Warn (`KvroutePrefixCacheHitsBelowExpected`) when the pool's prefix-cache hit ratio stays this far (in ratio points)
   * under the one the EPP's precise index predicted the pods would count, for 15 minutes: the pods evict what the index
   * still credits (a KV cache too small for the working set) or the index is out of step with them. Only where the
   * precise index runs: the approximate index's per-request share of whole character blocks is not in vLLM's units.
   * @default 0.25
   */
  readonly maxPrefixHitShortfall?: number;
  /**
   * Warn (`KvrouteEppRefusingRequests`) when more than this share of the requests the EPP saw over 5 minutes (and over
   * the last minute) was refused by the EPP itself: 429 (every pod saturated and flow control refused the request) or
   * 503 (no usable pod), for 5 minutes. Requests whose client went away while they waited are not counted.
   * @default 0.05
   */
  readonly maxRefusedRatio?: number;
  /**
   * With a session store: warn (`KvrouteSessionStoreFailing`) when more than this share of a replica's store reads
   * timed out, failed or answered only after the read timeout (a new session's pick waits up to `unboundTimeout`)
   * over 5 minutes, for 10 minutes, though it is connected.
   * @default 0.05
   */
  readonly maxSessionStoreFallbackRatio?: number;
  /** Alert when a pod's KV cache stays fuller than this for 10 minutes. @default 0.95 */
  readonly maxKvCacheUsage?: number;
  /**
   * Page when more than this share of the gateway's ext_proc streams went on without the EPP (Envoy's
   * `failure_mode_allowed`) over the last minute, and at least {@link PAGE_MIN_FAILED_REQUESTS} in 5 minutes, for 30 seconds.
   * @default 0.1
   */
  readonly maxFailOpenRatio?: number;
  /**
   * Warn when more than this share of the EPP's answers missed the message timeout over 5 minutes, and over the last
   * minute, for 5 minutes.
   * @default 0.01
   */
  readonly maxMessageTimeoutRatio?: number;
  /**
   * Who calls the EPP: kvroute's EnvoyFilter or Istio's native InferencePool routing, which streams bodies
   * FULL_DUPLEX_STREAMED with a 1000 s message timeout (pilot/pkg/xds/filters/filters.go,
   * pilot/pkg/networking/core/route/route.go @ 1.30.0). Only the alerts' wording depends on it beyond the two below.
   * @default 'envoy-filter'
   * @see https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api-inference-extension/
   */
  readonly inferenceRouting?: 'envoy-filter' | 'native';
  /**
   * The ext_proc request body mode the gateway uses (native routing: always `full-duplex`). In `full-duplex` Envoy
   * starts no message timer, so `KvrouteEppSlow` could never fire and is left out, and an EPP failure after a body
   * chunk is a 500 or a reset for the client (Envoy >= 1.36), never a fail-open.
   * @default 'buffered'
   */
  readonly extProcRequestBodyMode?: 'buffered' | 'full-duplex';
  /**
   * Whether the gateway fails open when the EPP fails (`failure_mode_allow`; the pool's `FailOpen` with native
   * routing). Fail-closed, EPP failures are 500s for clients and `KvrouteEppFailingOpen` could never fire, so it is
   * left out.
   * @default true
   */
  readonly extProcFailOpen?: boolean;
  /**
   * When EPP stream failures reach clients (`full-duplex` bodies, or fail-closed), page when more than this share of
   * the gateway's ext_proc streams to the EPP failed (Envoy's `streams_failed`, and failing closed its
   * `message_timeouts`) over the last minute, and at least {@link PAGE_MIN_FAILED_REQUESTS} in 5 minutes, for 30 seconds
   * (`KvrouteEppStreamsFailing`).
   * @default 0.1
   */
  readonly maxStreamFailureRatio?: number;
  /**
   * Multiplies every duration the monitors and rules carry: scrape intervals, evaluation intervals, rate windows and
   * `for:`. Only for tests that run these very rules against a local stack in seconds instead of minutes
   * (test/prometheus-alerts.test.ts renders them at 0.1); manifests keep the production timings ({@link RULE_TIMINGS}).
   * @default 1
   */
  readonly durationScale?: number;
  /**
   * Label that makes Grafana's dashboard sidecar (kube-prometheus-stack) load the dashboard ConfigMap. Keys and values
   * as Kubernetes labels take them.
   * @default { grafana_dashboard: '1' }
   * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
   */
  readonly dashboardLabels?: Record<string, string>;
}

/**
 * The production timings of the rules. The paging alerts are sized so that a one-minute EPP outage pages during it and
 * resolves after it: the EPP scrape (10 s) plus the alert evaluation (15 s) plus `for: 30s` is at most 55 s for the EPP
 * target going down. The gateway's fail-open share over a 1-minute window first needs about 5 s of failed-open requests
 * (a tenth of the ~50 s its 10 s-apart samples span, which `rate()` reads), so that page comes at most about 60 s after
 * (65 s with a 15 s gateway scrape); once the EPP is back, its target is up within a scrape and the fail-open share
 * falls under the threshold within the window.
 */
export const RULE_TIMINGS = {
  /** Evaluation interval of the recording group (the dashboard's series). */
  recordingInterval: '30s',
  /** Evaluation interval of the alert group. */
  alertInterval: '15s',
  /** Rate window of the recorded ratios, quantiles and rates the dashboard shows. */
  dashboardWindow: '5m',
  /** Rate window of the gateway's ext_proc counters in the fail-open page. */
  pageWindow: '1m',
  /** `for:` of the two pages: the EPP target down or absent, and the gateway failing open. */
  pageFor: '30s',
  /**
   * Window in which the gateway pages (`KvrouteEppFailingOpen`, `KvrouteEppStreamsFailing`) also need
   * {@link PAGE_MIN_FAILED_REQUESTS} failed requests: at a quiet gateway one failed request is most of the minute.
   */
  pageVolumeWindow: '5m',
  /**
   * Window and `for:` of the slow-EPP and refusing-requests warnings, and the short window whose ratio must be over
   * the threshold too: a 5-minute window stays high for 5 minutes after a burst, so the long window alone fired the
   * warning minutes after a one-minute incident had ended.
   */
  slowWindow: '5m',
  slowFor: '5m',
  slowConfirmWindow: '1m',
  /** `for:` of the warning that the gateway's ext_proc counters are missing from Prometheus. */
  statsMissingFor: '10m',
  hitRatioFor: '15m',
  /** `for:` of the warning that a replica's session store is disconnected. */
  sessionStoreFor: '5m',
  kvCacheFullFor: '10m',
  noReadyPodsFor: '5m',
  /** `for:` of the warning that some, not all, EPP replicas are down (a rollout or a reschedule takes less). */
  replicaDownFor: '5m',
} as const;

/**
 * Failed requests (Envoy counts each once: `onMessageTimeout`, `onGrpcError` in ext_proc.cc @ v1.35.0) the gateway
 * pages need within {@link RULE_TIMINGS}.pageVolumeWindow besides their share of the last minute. At 2 requests a
 * minute one late answer read 46 % and paged; three failures in 5 minutes are no single slow or lost request, and
 * an EPP that fails every request reaches them within 1.5 minutes even at one request every 30 s (an EPP that is down
 * pages as `KvrouteEppDown` regardless). At a busy gateway the share decides alone, as before.
 */
export const PAGE_MIN_FAILED_REQUESTS = 3;

/**
 * Names of the series the PrometheusRule records; the dashboard reads only these. A ratio or quantile is NaN while its
 * source is idle (0/0 requests, or an empty histogram), never missing while its source is scraped, so "idle" and "not
 * scraped" stay apart: the dashboard shows NaN as "idle" and a missing series as "No data". Names carry the production
 * window.
 */
export const RECORDED = {
  prefixHitRatioByPod: 'kvroute:vllm_prefix_cache_hit_ratio:rate5m',
  prefixHitRatio: 'kvroute:vllm_prefix_cache_hit_ratio_pool:rate5m',
  ttftP50: 'kvroute:vllm_time_to_first_token_seconds:p50_5m',
  ttftP99: 'kvroute:vllm_time_to_first_token_seconds:p99_5m',
  kvCacheUsageByPod: 'kvroute:vllm_kv_cache_usage:max',
  waitingByPod: 'kvroute:vllm_num_requests_waiting:sum',
  /** vLLM's `cache_config_info` per pod: value 1, the KV-cache budget (gpu_memory_utilization, num_gpu_blocks, block_size) in its labels. */
  cacheConfigInfo: 'kvroute:vllm_cache_config_info:max',
  gatewayFailOpenRatio: 'kvroute:gateway_ext_proc_fail_open_ratio:rate5m',
  gatewayMessageTimeoutRatio: 'kvroute:gateway_ext_proc_message_timeout_ratio:rate5m',
  sessionAffinityHitRatio: 'kvroute:epp_session_affinity_hit_ratio:rate5m',
  schedulerP99: 'kvroute:epp_scheduler_e2e_seconds:p99_5m',
  picksByEndpoint: 'kvroute:epp_picks:rate5m',
} as const;

/** The recorded ratios and quantiles: NaN when idle. */
export const RECORDED_RATIOS: readonly string[] = [
  RECORDED.prefixHitRatioByPod, RECORDED.prefixHitRatio, RECORDED.ttftP50, RECORDED.ttftP99, RECORDED.gatewayFailOpenRatio,
  RECORDED.gatewayMessageTimeoutRatio, RECORDED.sessionAffinityHitRatio, RECORDED.schedulerP99,
];

/** Series Prometheus itself writes for every target, which the rules may query. */
export const PROMETHEUS_SERIES = { up: 'up' } as const;

/**
 * Prometheus Operator objects for the stack: a PodMonitor on vLLM's own port (the sidecar proxies /metrics too, but
 * per-pod series need the pod target), a ServiceMonitor on the EPP, a PodMonitor on the gateway pods' Envoy stats, a
 * PrometheusRule with the recorded series and alerts, and a Grafana dashboard ConfigMap whose panels query the
 * recorded series.
 *
 * What pages (severity critical), with the production timings ({@link RULE_TIMINGS}):
 * - `KvrouteEppDown`: no EPP scrape target up, or none at all, for 30 s (alerts evaluated every 15 s, the EPP scraped
 *   every 10 s): the EPP is gone and every request is routed without KV-cache affinity.
 * - `KvrouteEppFailingOpen`: over the last minute more than `maxFailOpenRatio` (10 %) of the gateway Envoy's ext_proc
 *   streams went on without the EPP's pick (`failure_mode_allowed`: unreachable, erroring, or later than the message
 *   timeout), with at least 3 of them in 5 minutes ({@link PAGE_MIN_FAILED_REQUESTS}), for 30 s. It reads Envoy, not
 *   the EPP, so a slow EPP whose late answers Envoy discards counts too.
 * - `KvrouteEppStreamsFailing` (full-duplex bodies, which native routing always uses, or fail-closed): over the last
 *   minute more than `maxStreamFailureRatio` (10 %) of the ext_proc streams failed (`streams_failed`; failing closed,
 *   also those whose answer came after the message timeout, `message_timeouts`), with at least 3 of them in 5 minutes,
 *   for 30 s: there an EPP failure reaches
 *   the client as a 500, a 504 or a reset instead of failing open.
 * - `KvrouteNoReadyDecodePods`: no ready decode pod, or no vLLM series at all, for 5 minutes.
 * Warnings: `KvrouteEppReplicaDown` (fewer EPP scrape targets up than the Deployment's replicas, or, from
 * kube-state-metrics where it runs, fewer replicas available than the Deployment asks for, while at least one target
 * is up, for 5 minutes: the others route, with less headroom; a replica down with one replica pages `KvrouteEppDown`
 * instead), `KvrouteEppSlow` (buffered bodies only, where Envoy runs a message timer: more than
 * `maxMessageTimeoutRatio`, 1 %, of the streams hit the message timeout over 5 minutes and over the last minute, for 5
 * minutes), `KvrouteEppRefusingRequests` (more than `maxRefusedRatio`, 5 %, of the requests answered 429 or 503 by the
 * EPP itself, over 5 minutes and the last minute, for 5 minutes), `KvrouteSessionStoreDisconnected` and
 * `KvrouteSessionStoreFailing` (with a session store: a replica without it for 5 minutes, or whose reads fall back
 * more than `maxSessionStoreFallbackRatio`, 5 %, of the time for 10 minutes), `KvrouteGatewayExtProcStatsMissing` (no ext_proc counters from the
 * gateway for 10 minutes, so the fail-open page could not fire), `KvroutePrefixCacheHitsBelowExpected` (the pods' hit
 * ratio `maxPrefixHitShortfall`, 25 points, under what the EPP's precise index predicted, for 15 minutes; not with the
 * approximate index, whose ratio is not in vLLM's units),
 * `KvroutePrefixCacheHitRatioLow` (only with `minPrefixCacheHitRatio`: under it for 15 minutes) and
 * `KvrouteKvCacheNearFull` (over `maxKvCacheUsage` for 10 minutes). Scrape intervals are bounded so that every window
 * holds four scrapes and the EPP-down page comes within 55 s.
 */
export class Monitoring extends Construct {
  public readonly podMonitor: pm.PodMonitor;
  public readonly serviceMonitor: sm.ServiceMonitor;
  public readonly gatewayPodMonitor: pm.PodMonitor;
  public readonly rule: pr.PrometheusRule;
  public readonly dashboard: k8s.KubeConfigMap;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const S = 'Monitoring';
    const { decodePool, endpointPicker, gateway } = props;
    const ns = decodePool.namespace;
    const labels = props.selectorLabels ? checkLabels(S, 'selectorLabels', props.selectorLabels, { allowEmpty: true }) : undefined;
    const dashboardLabels = checkLabels(S, 'dashboardLabels', props.dashboardLabels ?? { grafana_dashboard: '1' }, { allowEmpty: true });
    // poolName may be 253 characters (a DNS-1123 subdomain, as an InferencePool's name), and so may the names made from
    // it (ValidateConfigMapName = NameIsDNSSubdomain; a custom resource's name likewise): the dashboard's is the longer,
    // so the PrometheusRule's `<poolName>-kvroute` fits whenever it does.
    const dashboardName = `${endpointPicker.poolName}-kvroute-dashboard`;
    if (dashboardName.length > 253) {
      throw new PropsError(S, 'endpointPicker.poolName', `must be at most ${253 - (dashboardName.length - endpointPicker.poolName.length)} characters with monitoring on: the dashboard ConfigMap's name "<poolName>-kvroute-dashboard" would be ${dashboardName.length} characters, over the 253 Kubernetes allows (a DNS-1123 subdomain)`, endpointPicker.poolName);
    }
    // The Prometheus Operator writes each PrometheusRule it selects into its rule ConfigMaps under the key
    // "<namespace>-<name>-<uid>.yaml" (pkg/operator/rules.go PrometheusRuleSelector.Select @ v0.84.0, unchanged at
    // v0.93.0), and a ConfigMap key may not pass 253 characters (apimachinery validation.IsConfigMapKey). A longer key
    // fails the operator's create of the whole ConfigMap, after it has deleted the current ones
    // (pkg/prometheus/server/rules.go createOrUpdateRuleConfigMaps): every rule of that Prometheus stops updating, not
    // only kvroute's. The uid is 36 characters (a UUID).
    const ruleName = `${endpointPicker.poolName}-kvroute`;
    const ruleFileKey = `${ns}-${ruleName}-${'0'.repeat(PROMETHEUS_RULE_UID_LENGTH)}.yaml`;
    if (ruleFileKey.length > 253) {
      throw new PropsError(S, 'endpointPicker.poolName', `must be at most ${253 - (ruleFileKey.length - endpointPicker.poolName.length)} characters with monitoring on in namespace "${ns}": the Prometheus Operator stores the PrometheusRule "<poolName>-kvroute" as the rule file "<namespace>-<name>-<36-character uid>.yaml", a ConfigMap key of at most 253 characters, and that key would be ${ruleFileKey.length} (its ConfigMap would be refused, and with it every rule of that Prometheus)`, endpointPicker.poolName);
    }
    const scale = props.durationScale ?? 1;
    if (typeof scale !== 'number' || !(scale > 0 && scale <= 1)) {
      throw new PropsError(S, 'durationScale', 'must be a number greater than 0 and at most 1', scale);
    }
    const d = (duration: string) => scaleDuration(duration, scale);
    const vllmInterval = d(checkPrometheusDuration(S, 'vllmScrapeInterval', props.vllmScrapeInterval ?? '15s'));
    const eppInterval = d(checkPrometheusDuration(S, 'eppScrapeInterval', props.eppScrapeInterval ?? '10s'));
    const gatewayInterval = d(checkPrometheusDuration(S, 'gatewayScrapeInterval', props.gatewayScrapeInterval ?? '10s'));
    // Each window must hold several scrapes, and the EPP-down page must come within a one-minute outage: checked on the
    // production timings (the scale multiplies both sides alike).
    const limits: [keyof MonitoringProps, string, number, string][] = [
      ['vllmScrapeInterval', props.vllmScrapeInterval ?? '15s', durationMs(RULE_TIMINGS.dashboardWindow) / 4,
        `a quarter of the ${RULE_TIMINGS.dashboardWindow} window the recorded ratios rate vLLM's counters over`],
      ['eppScrapeInterval', props.eppScrapeInterval ?? '10s', 55_000 - durationMs(RULE_TIMINGS.alertInterval) - durationMs(RULE_TIMINGS.pageFor),
        `so that a one-minute EPP outage pages during it (the scrape, the ${RULE_TIMINGS.alertInterval} alert evaluation and KvrouteEppDown's for: ${RULE_TIMINGS.pageFor} within 55s)`],
      ['gatewayScrapeInterval', props.gatewayScrapeInterval ?? '10s', durationMs(RULE_TIMINGS.pageWindow) / 4,
        `a quarter of the ${RULE_TIMINGS.pageWindow} window KvrouteEppFailingOpen rates the gateway's counters over (with fewer samples the page may never fire)`],
    ];
    for (const [field, value, maxMs, why] of limits) {
      if (durationMs(value) > maxMs) throw new PropsError(S, field, `must be at most ${maxMs / 1000}s: ${why}`, value);
    }
    const minHit = props.minPrefixCacheHitRatio === undefined ? undefined : checkFraction(S, 'minPrefixCacheHitRatio', props.minPrefixCacheHitRatio, 0, 1);
    const maxShortfall = checkFraction(S, 'maxPrefixHitShortfall', props.maxPrefixHitShortfall ?? 0.25, 0, 1);
    const maxRefused = checkFraction(S, 'maxRefusedRatio', props.maxRefusedRatio ?? 0.05, 0, 1);
    const maxStoreFallback = checkFraction(S, 'maxSessionStoreFallbackRatio', props.maxSessionStoreFallbackRatio ?? 0.05, 0, 1);
    const maxKv = checkFraction(S, 'maxKvCacheUsage', props.maxKvCacheUsage ?? 0.95, 0, 1);
    const maxFailOpen = checkFraction(S, 'maxFailOpenRatio', props.maxFailOpenRatio ?? 0.1, 0, 1);
    const maxTimeouts = checkFraction(S, 'maxMessageTimeoutRatio', props.maxMessageTimeoutRatio ?? 0.01, 0, 1);
    const native = checkOneOf(S, 'inferenceRouting', props.inferenceRouting ?? 'envoy-filter', ['envoy-filter', 'native'] as const) === 'native';
    const bodyMode = native ? 'full-duplex' : checkOneOf(S, 'extProcRequestBodyMode', props.extProcRequestBodyMode ?? 'buffered', ['buffered', 'full-duplex'] as const);
    const failOpen = props.extProcFailOpen ?? true;
    if (typeof failOpen !== 'boolean') throw new PropsError(S, 'extProcFailOpen', 'must be true or false', failOpen);
    // Envoy runs a message timer for BUFFERED bodies only; in full duplex, or fail-closed, an EPP failure reaches the
    // client instead of failing open.
    const messageTimer = bodyMode === 'buffered';
    const failuresReachClients = bodyMode === 'full-duplex' || !failOpen;
    const maxStreamFailures = checkFraction(S, 'maxStreamFailureRatio', props.maxStreamFailureRatio ?? 0.1, 0, 1);
    const t = Object.fromEntries(Object.entries(RULE_TIMINGS).map(([k, v]) => [k, d(v)])) as Record<keyof typeof RULE_TIMINGS, string>;

    this.podMonitor = new pm.PodMonitor(this, 'VllmPodMonitor', {
      metadata: { name: `${decodePool.deploymentName}-vllm`, namespace: ns, labels },
      spec: {
        selector: { matchLabels: { ...decodePool.podLabels } },
        podMetricsEndpoints: [{ port: DecodePool.VLLM_PORT_NAME, path: '/metrics', interval: vllmInterval }],
      },
    });

    // Prometheus Operator sets a ServiceMonitor target's `job` to its Service's name (no jobLabel here), which the
    // EPP-down alert selects on.
    this.serviceMonitor = new sm.ServiceMonitor(this, 'EppServiceMonitor', {
      metadata: { name: endpointPicker.name, namespace: ns, labels },
      spec: {
        selector: { matchLabels: { ...endpointPicker.podLabels } },
        endpoints: [{ port: EndpointPicker.METRICS_PORT_NAME, path: '/metrics', interval: eppInterval }],
      },
    });

    // The Istio gateway's own Envoy: its ext_proc counters are the direct signal of requests routed without the EPP.
    this.gatewayPodMonitor = new pm.PodMonitor(this, 'GatewayPodMonitor', {
      metadata: { name: `${gateway.serviceName}-envoy`, namespace: gateway.namespace, labels },
      spec: {
        selector: { matchLabels: { ...gateway.podLabels } },
        podMetricsEndpoints: [{ port: ENVOY_PROM_PORT_NAME, path: ENVOY_PROM_PATH, interval: gatewayInterval }],
      },
    });

    // Every expression is scoped to this stack: other vLLM fleets in the same Prometheus must not mix in.
    const sel = `namespace="${ns}"`;
    const eppTarget = `up{${sel},job="${endpointPicker.serviceName}"}`;
    // `exported_namespace=""`: a kube-state-metrics scraped without honorLabels from this very namespace labels every
    // Deployment in the cluster with it, the Deployment's own namespace then in exported_namespace.
    const eppDeployment = `${sel},exported_namespace="",deployment="${endpointPicker.deployment.name}"`;
    const rate = (metric: string, matchers: string, window: string) => `rate(${metric}{${matchers}}[${window}])`;
    const sumRate = (by: string, metric: string, matchers: string, window: string) => `sum by (${by}) (${rate(metric, matchers, window)})`;
    const sumIncrease = (by: string, metric: string, matchers: string, window: string) => `sum by (${by}) (increase(${metric}{${matchers}}[${window}]))`;
    const W = t.dashboardWindow;
    const quantile = (q: number) =>
      `histogram_quantile(${q}, sum by (namespace, model_name, le) (${rate(`${VLLM_METRICS.timeToFirstToken}_bucket`, sel, W)}))`;
    // Idle is explicit and the same everywhere: a ratio divides plainly, so 0/0 is NaN while its source is scraped but
    // idle (never `/ (x > 0)`, which drops the series, nor `or 0`, which would read as "0 % hits"); a histogram
    // quantile of an empty window is NaN as well. Counters the EPP creates on first use (session outcomes, picks per
    // endpoint) are completed with 0 from a series it always exports, so their ratio is NaN and their rate 0, not absent.
    const eppPresent = `0 * group by (namespace) (${EPP_METRICS.info}{${sel}})`;
    const orIdle = (expr: string) => `(\n  ${expr}\n  or on (namespace)\n  ${eppPresent}\n)`;
    // Fail-opens over the requests that reached the filter. A stream that fails while opening (no EPP endpoint at all)
    // counts as failed open but not as started, so the denominator is the larger of the two: exact when streams open
    // and then fail (refused, reset, timed out), never above 1.
    const overStreams = (counter: string, window: string) => {
      const part = sumRate('namespace', counter, sel, window);
      const started = sumRate('namespace', ENVOY.streamsStarted, sel, window);
      return `${part}\n/\n(\n  ${started}\n  > ${part}\n  or\n  ${part}\n)`;
    };
    const failOpenRatio = (window: string) => overStreams(ENVOY.failureModeAllowed, window);
    // Failed streams over started ones, with the same denominator (a stream that fails while opening is failed, not
    // started). Envoy counts every gRPC error as streams_failed and, failing open, the same error again as
    // failure_mode_allowed (`Filter::onGrpcError`, source/extensions/filters/http/ext_proc/ext_proc.cc @ v1.35.0):
    // failing open, only the difference reached clients as a 500 or a reset (a body chunk had gone to the EPP).
    // `sum` is sumRate for the ratio, sumIncrease for the count of failed requests the page needs as well.
    const streamFailures = (window: string, sum: typeof sumRate) => {
      const failed = sum('namespace', ENVOY.streamsFailed, sel, window);
      const timeouts = sum('namespace', ENVOY.messageTimeouts, sel, window);
      // Failing closed, a message timeout is a 500/504 to the client as well, counted only as message_timeouts
      // (`Filter::onMessageTimeout`): a late EPP fails every request without a single failed stream.
      if (!failOpen) return `(\n  ${failed}\n  +\n  (${timeouts} or 0 * ${failed})\n)`;
      const allowed = sum('namespace', ENVOY.failureModeAllowed, sel, window);
      // failure_mode_allowed also counts message timeouts failed open (`onMessageTimeout`), which streams_failed
      // never counts: only the gRPC errors failed open are taken off.
      const grpcErrorsFailedOpen = `clamp_min((${allowed} or 0 * ${failed}) - (${timeouts} or 0 * ${failed}), 0)`;
      return `clamp_min(\n  ${failed}\n  -\n  ${grpcErrorsFailedOpen},\n  0\n)`;
    };
    const streamFailureRatio = (window: string) => {
      const reachedClients = streamFailures(window, sumRate);
      const started = sumRate('namespace', ENVOY.streamsStarted, sel, window);
      const failed = failOpen ? sumRate('namespace', ENVOY.streamsFailed, sel, window) : reachedClients;
      return `${reachedClients}\n/\n(\n  ${started}\n  > ${failed}\n  or\n  ${failed}\n)`;
    };
    // A page: the share of the last minute over its threshold, and at least PAGE_MIN_FAILED_REQUESTS failed requests in
    // the volume window, both `sum by (namespace)` so that `and` matches.
    const page = (ratio: string, threshold: number, failures: string) =>
      `(\n${indent(ratio)}\n) > ${threshold}\nand on (namespace)\n(\n${indent(failures)}\n) >= ${PAGE_MIN_FAILED_REQUESTS}`;
    const timeoutRatio = (window: string) =>
      `${sumRate('namespace', ENVOY.messageTimeouts, sel, window)}\n/\n${sumRate('namespace', ENVOY.streamsStarted, sel, window)}`;
    // Over `long` and still over the last `short`: the warning ends with its incident instead of minutes after it.
    const sustained = (ratio: (window: string) => string, threshold: number, long: string, short: string) =>
      `(\n${indent(ratio(long))}\n) > ${threshold}\nand\n(\n${indent(ratio(short))}\n) > ${threshold}`;
    // Requests the EPP refused itself (429 saturated, 503 no usable pod) over those it saw: GIE's error counter, less the
    // requests whose proxy or client went away while they waited (counted ServiceUnavailable, as GIE does, but nobody
    // was answered), over the refused plus the routed ones. A series the EPP has not created yet counts as 0.
    const refusedRatio = (window: string) => {
      const errors = sumRate('namespace', EPP_METRICS.requestErrorTotal, `${sel},error_code=~"ResourceExhausted|ServiceUnavailable"`, window);
      const aborted = sumRate('namespace', EPP_METRICS.flowControlRejections, `${sel},reason="aborted"`, window);
      const routed = sumRate('namespace', EPP_METRICS.requestTotal, sel, window);
      const refused = `(\n  ${errors}\n  -\n  (${aborted} or 0 * ${errors})\n)`;
      return `${refused}\n/\n(\n${indent(refused)}\n  +\n  (${routed} or 0 * ${errors})\n)`;
    };
    // The hit ratio the picked pods will count by the precise index: its predicted hit tokens (whole blocks, never a
    // prompt's last token, as vLLM counts hits) over prompt tokens (every one, as vLLM counts queries). Every EPP exports
    // the counters, at 0 without the precise index: kept only where it scored prompt tokens, so that an EPP without it
    // (0/0) warns of nothing. The approximate index's ratio (GIE v1.5.0's prefix_indexer_hit_ratio) is not compared: it
    // is matched whole blocks of characters per request, where vLLM counts tokens, so a cached 24-token prompt reads 1
    // against vLLM's 16 of 24 (approximateprefix/hashing.go, plugin.go PreRequest; vllm/v1/core/kv_cache_manager.py
    // get_computed_blocks @ v0.10.0).
    const expectedHitRatio = `${sumRate('namespace', EPP_METRICS.precisePredictedHitTokens, sel, W)}\n/\n(${sumRate('namespace', EPP_METRICS.precisePromptTokens, sel, W)} > 0)`;
    const eppReplicas = endpointPicker.replicas;

    const rules: pr.PrometheusRuleSpecGroupsRules[] = [
      record(RECORDED.prefixHitRatioByPod,
        `${sumRate('namespace, pod', VLLM_METRICS.prefixCacheHits, sel, W)}\n/\n${sumRate('namespace, pod', VLLM_METRICS.prefixCacheQueries, sel, W)}`),
      record(RECORDED.prefixHitRatio,
        `${sumRate('namespace', VLLM_METRICS.prefixCacheHits, sel, W)}\n/\n${sumRate('namespace', VLLM_METRICS.prefixCacheQueries, sel, W)}`),
      record(RECORDED.ttftP50, quantile(0.5)),
      record(RECORDED.ttftP99, quantile(0.99)),
      record(RECORDED.kvCacheUsageByPod, `max by (namespace, pod) (${VLLM_METRICS.kvCacheUsagePerc}{${sel}})`),
      record(RECORDED.waitingByPod, `sum by (namespace, pod) (${VLLM_METRICS.numRequestsWaiting}{${sel}})`),
      // vLLM exports its memory budget as labels of cache_config_info; used framebuffer bytes come from DCGM.
      record(RECORDED.cacheConfigInfo,
        `max by (namespace, pod, gpu_memory_utilization, num_gpu_blocks, block_size) (${VLLM_METRICS.cacheConfigInfo}{${sel}})`),
      record(RECORDED.gatewayFailOpenRatio, failOpenRatio(W)),
      record(RECORDED.gatewayMessageTimeoutRatio, timeoutRatio(W)),
      // Hits over returning sessions; a new session's first request is neither a hit nor a re-pin.
      record(RECORDED.sessionAffinityHitRatio,
        `${orIdle(sumRate('namespace', EPP_METRICS.sessionAffinity, `${sel},outcome="hit"`, W))}\n/\n`
        + orIdle(sumRate('namespace', EPP_METRICS.sessionAffinity, `${sel},outcome=~"hit|repin"`, W))),
      record(RECORDED.schedulerP99,
        `histogram_quantile(0.99, sum by (namespace, le) (${rate(`${EPP_METRICS.schedulerE2eDuration}_bucket`, sel, W)}))`),
      record(RECORDED.picksByEndpoint, orIdle(sumRate('namespace, destination_endpoint', EPP_METRICS.picks, sel, W))),
    ];
    const alerts: pr.PrometheusRuleSpecGroupsRules[] = [
      alert('KvrouteEppDown', `max by (namespace, job) (${eppTarget}) == 0\nor\nabsent(${eppTarget})`, t.pageFor, 'critical',
        `No Endpoint Picker of ${ns} is up (scrape target ${endpointPicker.serviceName} down or absent).`,
        (failOpen
          ? 'The gateway fails open: requests are served by the fallback policy without KV-cache affinity. '
          : 'The gateway does not fail open: every request through it fails (500) until an EPP is back. ')
        + 'Check the EPP pods, their logs and readiness.'),
      // Up targets against the Deployment's replicas, not down targets: a replica that is Pending, evicted or gone has
      // no scrape target at all (endpoints discovery makes targets from the Service's addresses), so it is never "down".
      // Where kube-state-metrics runs, fewer available replicas than the Deployment asks for: a replica that runs but
      // fails readiness is out of the Service (and of Envoy's rotation) while its /metrics still answers, so its target
      // reads up. That branch comes first, so its count (which also misses the gone ones) is the value reported when
      // both hold; without kube-state-metrics it selects nothing and the up targets decide alone.
      alert('KvrouteEppReplicaDown',
        `(\n  max by (namespace) (${KSM.deploymentStatusReplicasAvailable}{${eppDeployment}})\n  < on (namespace)\n  max by (namespace) (${KSM.deploymentSpecReplicas}{${eppDeployment}})\n  or\n`
        + `  count by (namespace) (${eppTarget} == 1) < ${eppReplicas}\n)\n`
        + `and on (namespace)\nmax by (namespace) (${eppTarget}) == 1`,
        t.replicaDownFor, 'warning',
        `{{ $value }} of the Endpoint Picker replicas of ${ns} are up and ready (the cdk8s app deploys ${eppReplicas}).`,
        (eppReplicas > 1
          ? 'The remaining replicas take every ext_proc stream (the gateway ejects the missing one): routing goes on with less headroom. '
          : `With its only replica not ready the EPP Service has no endpoint: ${failOpen ? 'the gateway fails open (KvrouteEppFailingOpen pages)' : 'requests through the gateway fail (KvrouteEppStreamsFailing pages)'}. `)
        + 'A replica is missing when its scrape target is down or gone (Pending, evicted, its node lost), or, read from kube-state-metrics, when it runs but is not available (failing readiness): check the EPP Deployment\'s pods, their events, logs and nodes.'),
      // Fail-closed, nothing fails open: this could never fire.
      ...(failOpen ? [alert('KvrouteEppFailingOpen',
        page(failOpenRatio(t.pageWindow), maxFailOpen, sumIncrease('namespace', ENVOY.failureModeAllowed, sel, t.pageVolumeWindow)), t.pageFor, 'critical',
        `{{ $value | humanizePercentage }} of the gateway's requests in ${ns} went on without the EPP's pick.`,
        native
          ? 'Envoy counted them as failure_mode_allowed: the EPP was unreachable or failed the stream before any body chunk went to it. Istio\'s InferencePool cluster serves them by its own load balancing, without KV-cache affinity.'
          : `Envoy counted them as failure_mode_allowed: the EPP was unreachable, failed the stream${messageTimer ? ', or answered later than the message timeout' : ' before any body chunk went to it'}. They are served round robin without KV-cache affinity.`)] : []),
      // Full-duplex bodies start no message timer: this could never fire.
      ...(messageTimer ? [alert('KvrouteEppSlow', sustained(timeoutRatio, maxTimeouts, t.slowWindow, t.slowConfirmWindow), t.slowFor, 'warning',
        `{{ $value | humanizePercentage }} of the EPP's answers in ${ns} came later than the gateway's message timeout.`,
        'Envoy discarded those answers and routed without them. Check the EPP\'s CPU, its scheduling latency (inference_extension_scheduler_e2e_duration_seconds) and tokenization time.')] : []),
      ...(failuresReachClients ? [alert('KvrouteEppStreamsFailing',
        page(streamFailureRatio(t.pageWindow), maxStreamFailures, streamFailures(t.pageVolumeWindow, sumIncrease)), t.pageFor, 'critical',
        `{{ $value | humanizePercentage }} of the gateway's ext_proc streams to the EPP in ${ns} failed.`,
        failOpen
          ? 'The bodies stream to the EPP in full duplex: once a body chunk went to it, an EPP failure is a 500 or a reset for the client (Envoy >= 1.36), not a fail-open. Counted here: the failed streams less those Envoy failed open (KvrouteEppFailingOpen pages for those). Check the EPP pods, their restarts and logs.'
          : 'The gateway does not fail open: each failed stream, and each EPP answer later than the message timeout (Envoy\'s message_timeouts), is a 500 or 504 for its client. Check the EPP pods, their restarts, logs and CPU.')] : []),
      alert('KvrouteGatewayExtProcStatsMissing', `absent(${ENVOY.streamsStarted}{${sel}})`, t.statsMissingFor, 'warning',
        `Prometheus has no ext_proc counters from the gateway in ${ns}.`,
        `${spoken([failOpen && 'KvrouteEppFailingOpen', messageTimer && 'KvrouteEppSlow', failuresReachClients && 'KvrouteEppStreamsFailing'])} cannot fire without them: check the gateway PodMonitor (port http-envoy-prom) and that the gateway pods carry the proxy.istio.io/config stats inclusion.`),
      alert('KvrouteEppRefusingRequests', sustained(refusedRatio, maxRefused, t.slowWindow, t.slowConfirmWindow), t.slowFor, 'warning',
        `The EPP of ${ns} refused {{ $value | humanizePercentage }} of its requests itself (429 or 503).`,
        'inference_objective_request_error_total{error_code} says which. ResourceExhausted (429): every decode pod was over its queue or KV-cache threshold and flow control refused the request (queue full, deadline, shed: kvroute_epp_flow_control_rejections_total); add decode replicas or raise the flow-control bounds. ServiceUnavailable (503): no ready pod, or every pod\'s metrics scrapes failing (kvroute_epp_scheduling_failures_total{reason}); check the decode pods and the EPP\'s scrapes.'),
      ...(endpointPicker.sessionStore !== undefined ? [
        alert('KvrouteSessionStoreDisconnected', `${EPP_METRICS.sessionStoreConnected}{${sel}} == 0`, t.sessionStoreFor, 'warning',
          'EPP replica {{ $labels.pod }} of ' + ns + ' has lost its session store.',
          'Its picks fall back to the replica\'s own session bindings, so replicas may send one session to different pods and lose its KV cache. Check the Valkey/Redis the EPP config\'s sessionStore names, its password Secret and the network policy.'),
        // Connected is not working: a store that answers after the read timeout, or refuses the commands (a Redis
        // without GETEX, a read-only replica, ACLs), keeps the connection while every pick falls back.
        alert('KvrouteSessionStoreFailing',
          `sum by (namespace, pod) (${rate(EPP_METRICS.sessionStoreOperations, `${sel},operation="read",outcome=~"timeout|error|unavailable|late_hit|late_miss"`, t.slowWindow)})\n/\n`
          + `sum by (namespace, pod) (${rate(EPP_METRICS.sessionStoreOperations, `${sel},operation="read"`, t.slowWindow)})\n> ${maxStoreFallback}`,
          t.statsMissingFor, 'warning',
          'EPP replica {{ $labels.pod }} of ' + ns + ' fell back from its session store, or waited past its read timeout, on {{ $value | humanizePercentage }} of its reads.',
          'The store is connected but its reads time out, fail or answer late (kvroute_epp_session_store_operations_total{operation="read"} by outcome): after a timeout or failure the pick uses the replica\'s own bindings, so replicas may send one session to different pods; a late answer (late_hit, late_miss) held a new session\'s pick up to the sessionStore unboundTimeout. Check the store\'s latency against the sessionStore timeout, and that it accepts GETEX and writes (Redis >= 6.2 or Valkey, a primary, not full, ACLs).'),
      ] : []),
      alert('KvroutePrefixCacheHitsBelowExpected', `(\n${indent(expectedHitRatio)}\n)\n- on (namespace)\n${RECORDED.prefixHitRatio}{${sel}}\n> ${maxShortfall}`, t.hitRatioFor, 'warning',
        `Prefix-cache hit ratio in ${ns} is {{ $value | humanizePercentage }} under what the EPP's precise index predicted of its picks.`,
        'The pods are evicting prefixes the EPP still credits them with (a KV cache too small for the working set: lower max-model-len or add replicas), or the index is out of step with them (KV events lost: check the EPP\'s kvroute_epp_kv_events_total).'),
      ...(minHit !== undefined ? [alert('KvroutePrefixCacheHitRatioLow', `${RECORDED.prefixHitRatio}{${sel}} < ${minHit}`, t.hitRatioFor, 'warning',
        `Prefix-cache hit ratio in ${ns} is {{ $value | humanizePercentage }}, under ${minHit * 100}% for 15 minutes.`,
        'Requests that share prefixes are not landing where their KV cache is: check the EPP picks and its prefix scorer weight, or whether the KV cache is too small for the working set.')] : []),
      alert('KvrouteKvCacheNearFull', `${RECORDED.kvCacheUsageByPod}{${sel}} > ${maxKv}`, t.kvCacheFullFor, 'warning',
        'KV cache of {{ $labels.pod }} is {{ $value | humanizePercentage }} full.',
        'The pod is evicting cached prefixes and will queue or preempt requests; add replicas or lower max-model-len.'),
      alert('KvrouteNoReadyDecodePods',
        `max by (namespace) (${EPP_METRICS.poolReadyPods}{${sel},name="${endpointPicker.poolName}"}) == 0`
        + `\nor\nabsent(${VLLM_METRICS.numRequestsRunning}{${sel}})`,
        t.noReadyPodsFor, 'critical',
        `No decode pod of pool ${endpointPicker.poolName} in ${ns} is ready.`,
        'Every request fails: check GPU scheduling, model download and vLLM start-up logs.'),
    ];

    this.rule = new pr.PrometheusRule(this, 'Rules', {
      metadata: { name: ruleName, namespace: ns, labels },
      spec: {
        groups: [
          { name: 'kvroute.recording', interval: t.recordingInterval, rules },
          { name: 'kvroute.alerts', interval: t.alertInterval, rules: alerts },
        ],
      },
    });

    this.dashboard = new k8s.KubeConfigMap(this, 'Dashboard', {
      metadata: {
        name: dashboardName,
        namespace: ns,
        labels: dashboardLabels,
      },
      data: { 'kvroute.json': JSON.stringify(buildDashboard(ns, RECORDED), null, 2) },
    });
  }
}

/** A Kubernetes object's uid: a UUID in its 36-character text form (apimachinery util/uuid NewUUID). */
const PROMETHEUS_RULE_UID_LENGTH = 36;

/** Names as a sentence lists them: `A`, `A and B`, `A, B and C` (false entries left out). */
function spoken(names: readonly (string | false)[]): string {
  const kept = names.filter((n): n is string => typeof n === 'string');
  return kept.length <= 1 ? kept.join('') : `${kept.slice(0, -1).join(', ')} and ${kept[kept.length - 1]}`;
}

/** `duration` times `scale`, in whole milliseconds written the way Prometheus reads them; unchanged at scale 1. */
export function scaleDuration(duration: string, scale: number): string {
  if (scale === 1) return duration;
  const ms = Math.max(1, Math.round(durationMs(duration) * scale));
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function indent(expr: string): string {
  return expr.split('\n').map((line) => `  ${line}`).join('\n');
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
