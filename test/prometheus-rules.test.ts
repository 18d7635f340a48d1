import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as YAML from 'yaml';
import { eppMetricSeriesNames } from '@kvroute/epp/config';
import { ENVOY_SEMANTICS_VERSIONS, envoySemantics, extProcSeriesName, type EnvoySemantics } from '@kvroute/gateway';
import { IDLE_MAPPING } from '../lib/dashboard';
import { CLUSTERS, DEMO, withOverrides } from '../lib/clusters';
import { ENVOY_EXT_PROC_METRICS } from '../lib/envoy-metrics';
import { KUBE_STATE_METRICS } from '../lib/kube-state-metrics';
import { PROMETHEUS_SERIES, RECORDED, RECORDED_RATIOS, RULE_TIMINGS } from '../lib/monitoring';
import { VLLM_HISTOGRAMS, VLLM_METRICS } from '../lib/vllm-metrics';
import { one, synthProfile, synthProps } from './support/manifests';

const promtool = spawnSync('promtool', ['--version']).status === 0 ? 'promtool' : undefined;
if (!promtool && process.env.CI) {
  throw new Error('promtool is required in CI (.ci/run installs the Debian package "prometheus")');
}

const known = new Set<string>([
  ...Object.values(VLLM_METRICS),
  ...VLLM_HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
  ...eppMetricSeriesNames(),
  ...Object.values(ENVOY_EXT_PROC_METRICS),
  ...Object.values(KUBE_STATE_METRICS),
  ...Object.values(PROMETHEUS_SERIES),
  ...Object.values(RECORDED),
]);

test('the Envoy counters the rules read are series the gateway Envoy exports on every release (and the local gateway serves)', () => {
  for (const version of ENVOY_SEMANTICS_VERSIONS) {
    const exported = (envoySemantics(version) as EnvoySemantics).extProcCounters.map(extProcSeriesName);
    expect({ version, missing: Object.values(ENVOY_EXT_PROC_METRICS).filter((m) => !exported.includes(m)) }).toEqual({ version, missing: [] });
  }
});

/** Metric names an expression selects: every identifier directly followed by a `{` matcher block. */
function selectedMetrics(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...withoutStrings.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g)].map((m) => m[1]);
}

describe.each(CLUSTERS.map((c) => [c.name, synthProfile(c)] as const))('cluster %s: PrometheusRule', (name, manifests) => {
  const rule = one(manifests, 'PrometheusRule');
  const rules: { record?: string; alert?: string; expr: string }[] = rule.spec.groups.flatMap((g: { rules: unknown[] }) => g.rules);

  (promtool ? test : test.skip)('passes promtool check rules', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-rules-'));
    const file = path.join(dir, `${name}.rules.yaml`);
    fs.writeFileSync(file, YAML.stringify({ groups: rule.spec.groups }));
    try {
      const out = execFileSync(promtool!, ['check', 'rules', file], { encoding: 'utf8' });
      expect(out).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('queries only metrics vLLM 0.10, the EPP, the gateway Envoy or kube-state-metrics export, Prometheus\'s up, or series the rule itself records', () => {
    for (const r of rules) {
      const metrics = selectedMetrics(r.expr);
      expect(metrics.length).toBeGreaterThan(0);
      const unknown = metrics.filter((m) => !known.has(m));
      expect({ rule: r.record ?? r.alert, unknown }).toEqual({ rule: r.record ?? r.alert, unknown: [] });
    }
  });

  test('every recorded series the dashboard shows is recorded by the rule, and every panel shows an idle (NaN) series as "idle"', () => {
    const recorded = new Set(rules.map((r) => r.record).filter(Boolean));
    const dashboard = JSON.parse(one(manifests, 'ConfigMap', `${rule.metadata.name}-dashboard`).data['kvroute.json']);
    const queried = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.flatMap((t) => selectedMetrics(t.expr)));
    expect(queried.length).toBeGreaterThan(0);
    for (const q of queried) expect(recorded).toContain(q);
    for (const panel of dashboard.panels) expect(panel.fieldConfig.defaults.mappings).toEqual([IDLE_MAPPING]);
  });

  test('no ratio drops its series when idle: no division by a filtered denominator, no "or 0" in place of NaN', () => {
    for (const r of rules.filter((x) => x.record && RECORDED_RATIOS.includes(x.record))) {
      expect({ rule: r.record, filtered: />\s*0\s*\)/.test(r.expr) || /\bor\s+0\b/.test(r.expr) }).toEqual({ rule: r.record, filtered: false });
    }
  });

  test('every expression is scoped to the stack namespace', () => {
    const ns = one(manifests, 'Namespace').metadata.name;
    for (const r of rules) {
      for (const m of r.expr.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*\s*\{([^}]*)\}/g)) {
        expect(m[1]).toContain(`namespace="${ns}"`);
      }
    }
  });
});

test('the Envoy alerts follow how EPP failures reach clients: KvrouteEppSlow only with buffered bodies (the message timer), KvrouteEppFailingOpen only failing open, KvrouteEppStreamsFailing with full-duplex bodies or failing closed', () => {
  const alertNames = (props: Parameters<typeof synthProps>[0]): string[] => one(synthProps(props), 'PrometheusRule').spec.groups
    .flatMap((g: { rules: { alert?: string }[] }) => g.rules).map((r: { alert?: string }) => r.alert).filter((a: string | undefined) => a?.startsWith('KvrouteEpp') && a !== 'KvrouteEppDown' && a !== 'KvrouteEppReplicaDown' && a !== 'KvrouteEppRefusingRequests');
  expect(alertNames(DEMO)).toEqual(['KvrouteEppFailingOpen', 'KvrouteEppSlow']);
  expect(alertNames(withOverrides(DEMO, { extProc: { requestBodyMode: 'full-duplex' } }))).toEqual(['KvrouteEppFailingOpen', 'KvrouteEppStreamsFailing']);
  expect(alertNames(withOverrides(DEMO, { extProc: { failureModeAllow: false } }))).toEqual(['KvrouteEppSlow', 'KvrouteEppStreamsFailing']);
  const native = CLUSTERS.find((c) => c.routing.inferenceRouting === 'native')!.routing;
  expect(alertNames(native)).toEqual(['KvrouteEppFailingOpen', 'KvrouteEppStreamsFailing']);
  expect(alertNames(withOverrides(native, { poolFailureMode: 'FailClose' }))).toEqual(['KvrouteEppStreamsFailing']);
});

test('KvrouteEppDown says what an EPP outage does to clients: served without affinity failing open, 500s failing closed', () => {
  const description = (props: Parameters<typeof synthProps>[0]): string => one(synthProps(props), 'PrometheusRule').spec.groups
    .flatMap((g: { rules: { alert?: string; annotations?: { description: string } }[] }) => g.rules)
    .find((r: { alert?: string }) => r.alert === 'KvrouteEppDown').annotations.description;
  expect(description(DEMO)).toMatch(/^The gateway fails open/);
  expect(description(withOverrides(DEMO, { extProc: { failureModeAllow: false } }))).toMatch(/^The gateway does not fail open: every request through it fails \(500\)/);
});

test('the metric-name check catches an unknown metric', () => {
  expect(selectedMetrics('sum(rate(vllm:prefix_cache_hit_total{namespace="x"}[5m]))').filter((m) => !known.has(m)))
    .toEqual(['vllm:prefix_cache_hit_total']);
});

/**
 * The test variant of the rules (`durationScale`) is the very same rules with every duration scaled: what
 * test/prometheus-alerts.test.ts runs against a real Prometheus in seconds is what ships.
 */
describe('durationScale renders the same rules with scaled durations', () => {
  const production = one(synthProps(DEMO), 'PrometheusRule');
  const fast = one(synthProps(withOverrides(DEMO, { monitoring: { durationScale: 0.1 } })), 'PrometheusRule');
  const durations = /\b\d+(?:ms|s|m|h)\b/g;

  test('expressions, labels and annotations are identical once durations are masked', () => {
    const mask = (x: unknown) => JSON.parse(JSON.stringify(x).replace(durations, 'D'));
    expect(mask(fast.spec)).toEqual(mask(production.spec));
  });

  test('every duration is scaled by 0.1; production keeps RULE_TIMINGS', () => {
    const alertsOf = (r: typeof production) => Object.fromEntries(r.spec.groups[1].rules.map((a: { alert: string; for: string }) => [a.alert, a.for]));
    expect(alertsOf(fast)).toEqual({
      KvrouteEppDown: '3s', KvrouteEppReplicaDown: '30s', KvrouteEppFailingOpen: '3s', KvrouteEppSlow: '30s', KvrouteEppRefusingRequests: '30s',
      KvrouteGatewayExtProcStatsMissing: '1m', KvroutePrefixCacheHitsBelowExpected: '90s', KvrouteKvCacheNearFull: '1m', KvrouteNoReadyDecodePods: '30s',
    });
    expect(fast.spec.groups.map((g: { interval: string }) => g.interval)).toEqual(['3s', '1500ms']);
    expect(production.spec.groups.map((g: { interval: string }) => g.interval)).toEqual([RULE_TIMINGS.recordingInterval, RULE_TIMINGS.alertInterval]);
    const failOpen = fast.spec.groups[1].rules.find((a: { alert: string }) => a.alert === 'KvrouteEppFailingOpen');
    expect(failOpen.expr).toContain('[6s]');
    expect(failOpen.expr).not.toMatch(/\[1m\]/);
  });

  test('the monitors scale too, and a scale outside (0, 1] is refused', () => {
    const monitors = synthProps(withOverrides(DEMO, { monitoring: { durationScale: 0.1 } }));
    expect(one(monitors, 'ServiceMonitor').spec.endpoints[0].interval).toBe('1s');
    expect(one(monitors, 'PodMonitor', 'llm-d-gateway-istio-envoy').spec.podMetricsEndpoints[0].interval).toBe('1s');
    expect(one(monitors, 'PodMonitor', 'ms-llm-d-modelservice-decode-vllm').spec.podMetricsEndpoints[0].interval).toBe('1500ms');
    expect(() => synthProps(withOverrides(DEMO, { monitoring: { durationScale: 2 } }))).toThrow(/Monitoring\.durationScale: must be a number greater than 0 and at most 1/);
  });
});

/**
 * `promtool check rules` proves syntax only. These `promtool test rules` cases feed synthetic series through the
 * demo cluster's rules and assert which alerts fire when, and what the recordings hold when idle, so an expression
 * that can never fire, or fires too late, fails here. The real-Prometheus test (prometheus-alerts.test.ts) runs the
 * same rules against the local stack.
 */
(promtool ? describe : describe.skip)('alerts fire when they should (promtool test rules)', () => {
  const manifests = synthProfile(CLUSTERS[0]);
  const rule = one(manifests, 'PrometheusRule');
  const ns = one(manifests, 'Namespace').metadata.name;
  const pool = one(manifests, 'InferencePool').metadata.name;
  const eppJob = one(manifests, 'Service', 'ms-llm-d-modelservice-epp').metadata.name;
  type AlertRule = { annotations: Record<string, string>; labels: Record<string, string> };
  const alertsOf = (r: typeof rule): Record<string, AlertRule> => Object.fromEntries(
    r.spec.groups.flatMap((g: { rules: { alert?: string }[] }) => g.rules).filter((x: { alert?: string }) => x.alert)
      .map((x: AlertRule & { alert: string }) => [x.alert, x]));
  const alerts = alertsOf(rule);
  // Istio's native InferencePool routing (prod-native-istio): the same stack, other failure modes.
  const nativeRule = one(synthProfile(CLUSTERS.find((c) => c.routing.inferenceRouting === 'native')!), 'PrometheusRule');
  const nativeAlerts = alertsOf(nativeRule);
  // prod-ha: three EPP replicas and a session store; the same namespace and EPP Service as the demo.
  const haProfile = CLUSTERS.find((c) => c.name === 'prod-ha')!;
  const haManifests = synthProfile(haProfile);
  const haRule = one(haManifests, 'PrometheusRule');
  const haAlerts = alertsOf(haRule);

  type Series = { series: string; values: string };
  const vllm = (name: string, values: string, pod = 'decode-a', extra = ''): Series => ({ series: `${name}{namespace="${ns}",pod="${pod}",model_name="m",engine="0"${extra}}`, values });
  const epp = (name: string, values: string, labels = 'model_name="m",target_model_name="m"'): Series => ({ series: `${name}{namespace="${ns}",${labels}}`, values });
  const envoy = (counter: string, values: string): Series => ({ series: `envoy_http_ext_proc_${counter}{namespace="${ns}",pod="gw-a",http_conn_manager_prefix="outbound_0.0.0.0_80"}`, values });
  const eppUp = (values: string): Series => ({ series: `up{namespace="${ns}",job="${eppJob}",pod="epp-a"}`, values });
  const queries = vllm('vllm:prefix_cache_queries_total', '0+6000x40');
  const running = vllm('vllm:num_requests_running', '4x40');

  /** The alert as promtool reports it: templates rendered for the value and labels given. */
  function expected(alert: string, value: string, extraLabels: Record<string, string> = {}, from: Record<string, AlertRule> = alerts) {
    const render = (t: string) => t.replace(/\{\{ \$value \| humanizePercentage \}\}/g, value).replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l) => extraLabels[l] ?? '');
    const a = from[alert];
    return {
      exp_labels: { ...a.labels, namespace: ns, ...extraLabels },
      exp_annotations: Object.fromEntries(Object.entries(a.annotations).map(([k, v]) => [k, render(v)])),
    };
  }

  interface Case {
    name: string;
    series: Series[];
    /** Input sample spacing. @default '1m' */
    interval?: string;
    alerts?: { at: string; alert: string; fires: unknown[] }[];
    exprs?: { at: string; expr: string; samples: { labels: string; value: number }[] }[];
  }

  /** Runs the cases with the rules evaluated every 15 s (the alert group's interval). */
  function run(cases: Case[], rules: typeof rule = rule): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-promtool-'));
    try {
      fs.writeFileSync(path.join(dir, 'rules.yaml'), YAML.stringify({ groups: rules.spec.groups }));
      fs.writeFileSync(path.join(dir, 'tests.yaml'), YAML.stringify({
        rule_files: ['rules.yaml'],
        evaluation_interval: RULE_TIMINGS.alertInterval,
        tests: cases.map((c) => ({
          name: c.name,
          interval: c.interval ?? '1m',
          input_series: c.series,
          ...(c.alerts ? { alert_rule_test: c.alerts.map((a) => ({ eval_time: a.at, alertname: a.alert, exp_alerts: a.fires })) } : {}),
          ...(c.exprs ? { promql_expr_test: c.exprs.map((e) => ({ expr: e.expr, eval_time: e.at, exp_samples: e.samples })) } : {}),
        })),
      }));
      const r = spawnSync(promtool!, ['test', 'rules', 'tests.yaml'], { cwd: dir, encoding: 'utf8' });
      return `${r.status}\n${r.stdout}${r.stderr}`;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  // One request a second through the gateway, sampled every 10 s; the EPP is down from 110 s to 200 s (a 100-second
  // outage: its target reports up 0, every stream fails open), then back.
  const outage = (): Series[] => [
    eppUp('1x10 0x9 1x30'),
    envoy('streams_started', '0+10x50'),
    envoy('failure_mode_allowed', '0x10 10+10x9 100x30'),
    envoy('message_timeouts', '0x50'),
  ];

  test('a 100-second EPP outage pages during it (EPP down, failing open) and resolves after it', () => {
    const out = run([{
      name: '100 s outage', interval: '10s', series: outage(),
      alerts: [
        { at: '90s', alert: 'KvrouteEppDown', fires: [] },
        { at: '180s', alert: 'KvrouteEppDown', fires: [expected('KvrouteEppDown', '', { job: eppJob })] },
        { at: '240s', alert: 'KvrouteEppDown', fires: [] },
        { at: '90s', alert: 'KvrouteEppFailingOpen', fires: [] },
        { at: '180s', alert: 'KvrouteEppFailingOpen', fires: [expected('KvrouteEppFailingOpen', '100%')] },
        { at: '300s', alert: 'KvrouteEppFailingOpen', fires: [] },
        { at: '180s', alert: 'KvrouteEppSlow', fires: [] },
      ],
    }]);
    expect(out).toMatch(/^0\n/);
  });

  test('an EPP replica down, or missing altogether (Pending, evicted: no scrape target), warns (KvrouteEppReplicaDown) without paging; all down pages instead', () => {
    expect(haProfile.routing.endpointPicker?.replicas).toBe(3);
    const haJob = one(haManifests, 'Service', 'ms-llm-d-modelservice-epp').metadata.name;
    const replica = (pod: string, values: string): Series => ({ series: `up{namespace="${ns}",job="${haJob}",pod="${pod}"}`, values });
    const upOf = (n: number) => {
      const e = expected('KvrouteEppReplicaDown', '', {}, haAlerts);
      return { ...e, exp_annotations: { ...e.exp_annotations, summary: e.exp_annotations.summary.replace('{{ $value }}', String(n)) } };
    };
    const out = run([
      {
        name: 'one of three down', interval: '1m', series: [replica('epp-a', '1x20'), replica('epp-b', '1x20'), replica('epp-c', '1x2 0x17')],
        alerts: [
          { at: '5m', alert: 'KvrouteEppReplicaDown', fires: [] },
          { at: '10m', alert: 'KvrouteEppReplicaDown', fires: [upOf(2)] },
          { at: '10m', alert: 'KvrouteEppDown', fires: [] },
        ],
      },
      {
        // Audit 29: evicted at 3 minutes, its replacement Pending: the target is gone (stale), never "down".
        name: 'one of three gone', interval: '1m', series: [replica('epp-a', '1x20'), replica('epp-b', '1x20'), replica('epp-c', '1x2 stale')],
        alerts: [
          { at: '5m', alert: 'KvrouteEppReplicaDown', fires: [] },
          { at: '10m', alert: 'KvrouteEppReplicaDown', fires: [upOf(2)] },
          { at: '19m', alert: 'KvrouteEppReplicaDown', fires: [upOf(2)] },
        ],
      },
      {
        name: 'all down', interval: '1m', series: [replica('epp-a', '1x2 0x17'), replica('epp-b', '1x2 0x17'), replica('epp-c', '1x2 0x17')],
        alerts: [
          { at: '10m', alert: 'KvrouteEppReplicaDown', fires: [] },
          { at: '10m', alert: 'KvrouteEppDown', fires: [expected('KvrouteEppDown', '', { job: haJob }, haAlerts)] },
        ],
      },
      { name: 'all up', interval: '1m', series: [replica('epp-a', '1x20'), replica('epp-b', '1x20'), replica('epp-c', '1x20')], alerts: [{ at: '15m', alert: 'KvrouteEppReplicaDown', fires: [] }] },
    ], haRule);
    expect(out).toMatch(/^0\n/);
  });

  test('an EPP replica that runs but fails readiness (its target up, out of the Service) warns from kube-state-metrics; a drain\'s dip does not', () => {
    const haJob = one(haManifests, 'Service', 'ms-llm-d-modelservice-epp').metadata.name;
    const deployment = one(haManifests, 'Deployment', 'ms-llm-d-modelservice-epp').metadata.name;
    const replica = (pod: string, values: string): Series => ({ series: `up{namespace="${ns}",job="${haJob}",pod="${pod}"}`, values });
    const allUp = [replica('epp-a', '1x20'), replica('epp-b', '1x20'), replica('epp-c', '1x20')];
    // kube-state-metrics' own target labels (job, instance) ride along, as in kube-prometheus-stack (honorLabels).
    const ksm = (metric: string, values: string): Series => ({ series: `${metric}{namespace="${ns}",deployment="${deployment}",job="kube-state-metrics",instance="10.0.0.9:8080"}`, values });
    const spec = ksm(KUBE_STATE_METRICS.deploymentSpecReplicas, '3x20');
    const available = (values: string) => ksm(KUBE_STATE_METRICS.deploymentStatusReplicasAvailable, values);
    const availableOf = (n: number) => {
      const e = expected('KvrouteEppReplicaDown', '', {}, haAlerts);
      return { ...e, exp_annotations: { ...e.exp_annotations, summary: e.exp_annotations.summary.replace('{{ $value }}', String(n)) } };
    };
    const out = run([
      {
        name: 'one of three not ready', interval: '1m', series: [...allUp, spec, available('3x2 2x17')],
        alerts: [
          { at: '5m', alert: 'KvrouteEppReplicaDown', fires: [] },
          { at: '10m', alert: 'KvrouteEppReplicaDown', fires: [availableOf(2)] },
          { at: '10m', alert: 'KvrouteEppDown', fires: [] },
        ],
      },
      {
        // A node drain (the PodDisruptionBudget lets one replica go) dips for minutes, not for the alert's 5.
        name: 'a node drain', interval: '1m', series: [...allUp, spec, available('3x4 2x2 3x13')],
        alerts: [{ at: '8m', alert: 'KvrouteEppReplicaDown', fires: [] }, { at: '15m', alert: 'KvrouteEppReplicaDown', fires: [] }],
      },
      {
        // Every replica gone: KvrouteEppDown pages, this warning stays out of it.
        name: 'all down and none available', interval: '1m', series: [replica('epp-a', '1x2 0x17'), replica('epp-b', '1x2 0x17'), replica('epp-c', '1x2 0x17'), spec, available('3x2 0x17')],
        alerts: [{ at: '10m', alert: 'KvrouteEppReplicaDown', fires: [] }],
      },
      { name: 'all available', interval: '1m', series: [...allUp, spec, available('3x20')], alerts: [{ at: '15m', alert: 'KvrouteEppReplicaDown', fires: [] }] },
      {
        // One gone (no target) and one more running unready: kube-state-metrics' count is the one reported.
        name: 'one gone, one unready', interval: '1m', series: [replica('epp-a', '1x20'), replica('epp-b', '1x20'), replica('epp-c', '1x2 stale'), spec, available('3x2 1x17')],
        alerts: [{ at: '10m', alert: 'KvrouteEppReplicaDown', fires: [availableOf(1)] }],
      },
      {
        // kube-state-metrics scraped without honorLabels from this namespace: another namespace's Deployment of the
        // same name carries namespace="<this one>" and its own in exported_namespace; it is not this stack's.
        name: 'exported_namespace', interval: '1m',
        series: [...allUp, { series: `${KUBE_STATE_METRICS.deploymentSpecReplicas}{namespace="${ns}",exported_namespace="other",deployment="${deployment}"}`, values: '3x20' },
          { series: `${KUBE_STATE_METRICS.deploymentStatusReplicasAvailable}{namespace="${ns}",exported_namespace="other",deployment="${deployment}"}`, values: '1x20' }],
        alerts: [{ at: '15m', alert: 'KvrouteEppReplicaDown', fires: [] }],
      },
      {
        // Another namespace's Deployment of the same name is not this stack's.
        name: 'another namespace', interval: '1m',
        series: [...allUp, { series: `${KUBE_STATE_METRICS.deploymentSpecReplicas}{namespace="other",deployment="${deployment}"}`, values: '3x20' },
          { series: `${KUBE_STATE_METRICS.deploymentStatusReplicasAvailable}{namespace="other",deployment="${deployment}"}`, values: '1x20' }],
        alerts: [{ at: '15m', alert: 'KvrouteEppReplicaDown', fires: [] }],
      },
    ], haRule);
    expect(out).toMatch(/^0\n/);
  });

  test('KvrouteEppDown keeps one label set, down or gone: a down EPP target that then disappears (pod deleted, its replacement Pending) stays firing (Prometheus rules/alerting.go keys an alert by its labels; absent() keeps the selector\'s equality matchers, namespace and job)', () => {
    const firing = (at: string) => ({ at, expr: 'count(ALERTS{alertname="KvrouteEppDown",alertstate="firing"})', samples: [{ labels: '{}', value: 1 }] });
    const out = run([{
      name: 'EPP target up, down from 70 s, gone (stale) from 250 s', interval: '10s',
      series: [eppUp('1x6 0x17 stale')],
      exprs: ['2m', '4m', '4m15s', '4m30s', '5m', '8m'].map(firing),
      alerts: [{ at: '4m30s', alert: 'KvrouteEppDown', fires: [expected('KvrouteEppDown', '', { job: eppJob })] }],
    }]);
    expect(out).toMatch(/^0\n/);
  });

  test('failing closed, an EPP answering after the message timeout fails every client (Envoy onMessageTimeout: message_timeouts, then a 500/504 without failure_mode_allow; streams_failed counts only gRPC errors, ext_proc.cc @ v1.35-v1.38) and pages KvrouteEppStreamsFailing', () => {
    const closedRule = one(synthProps(withOverrides(DEMO, { extProc: { failureModeAllow: false } })), 'PrometheusRule');
    const closedAlerts = alertsOf(closedRule);
    const late = [eppUp('1x60'), envoy('streams_started', '0+100x60'), envoy('message_timeouts', '0+100x60'), envoy('streams_failed', '0x60'), envoy('failure_mode_allowed', '0x60')];
    const someLate = [eppUp('1x60'), envoy('streams_started', '0+100x60'), envoy('message_timeouts', '0+2x60'), envoy('streams_failed', '0+3x60'), envoy('failure_mode_allowed', '0x60')];
    const out = run([
      {
        name: 'every answer late, failing closed', interval: '10s', series: late,
        alerts: [{ at: '3m', alert: 'KvrouteEppStreamsFailing', fires: [expected('KvrouteEppStreamsFailing', '100%', {}, closedAlerts)] }],
      },
      {
        name: '2 % late and 3 % failed: 5 % of the clients failed, under the page', interval: '10s', series: someLate,
        alerts: [{ at: '5m', alert: 'KvrouteEppStreamsFailing', fires: [] }],
      },
    ], closedRule);
    expect(out).toMatch(/^0\n/);
  });

  test('an EPP target that is gone entirely pages; one that is up does not', () => {
    const out = run([
      { name: 'no EPP target', series: [running], alerts: [{ at: '5m', alert: 'KvrouteEppDown', fires: [expected('KvrouteEppDown', '', { job: eppJob })] }] },
      { name: 'EPP up', series: [eppUp('1x40')], alerts: [{ at: '30m', alert: 'KvrouteEppDown', fires: [] }] },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('a slow EPP is seen: answers past the message timeout page as failing open when most are late, warn as slow when some are', () => {
    const out = run([
      {
        name: 'every answer late (Envoy fails open on each timeout)', interval: '10s',
        series: [eppUp('1x80'), envoy('streams_started', '0+10x80'), envoy('message_timeouts', '0+10x80'), envoy('failure_mode_allowed', '0+10x80')],
        alerts: [
          { at: '10m', alert: 'KvrouteEppFailingOpen', fires: [expected('KvrouteEppFailingOpen', '100%')] },
          { at: '10m', alert: 'KvrouteEppSlow', fires: [expected('KvrouteEppSlow', '100%')] },
          { at: '10m', alert: 'KvrouteEppDown', fires: [] },
        ],
      },
      {
        name: '5% late', interval: '10s',
        series: [eppUp('1x80'), envoy('streams_started', '0+20x80'), envoy('message_timeouts', '0+1x80'), envoy('failure_mode_allowed', '0+1x80')],
        alerts: [
          { at: '12m', alert: 'KvrouteEppSlow', fires: [expected('KvrouteEppSlow', '5%')] },
          { at: '12m', alert: 'KvrouteEppFailingOpen', fires: [] },
        ],
      },
      {
        name: 'healthy', interval: '10s',
        series: [eppUp('1x80'), envoy('streams_started', '0+20x80'), envoy('message_timeouts', '0x80'), envoy('failure_mode_allowed', '0x80')],
        alerts: [
          { at: '12m', alert: 'KvrouteEppSlow', fires: [] },
          { at: '12m', alert: 'KvrouteEppFailingOpen', fires: [] },
        ],
      },
      {
        // Audit 29: a two-minute stall (every answer late), then healthy. The 5-minute ratio stays over 1 % for five
        // minutes after it, which alone fired the warning minutes after the incident; it must not fire once it is over.
        name: 'two late minutes, then healthy', interval: '10s',
        series: [eppUp('1x120'), envoy('streams_started', '0+20x120'), envoy('message_timeouts', '0x12 20+20x11 240x96'), envoy('failure_mode_allowed', '0x12 20+20x11 240x96')],
        alerts: ['3m', '4m', '5m', '6m', '7m', '8m', '9m', '10m', '12m', '15m', '19m'].map((at) => ({ at, alert: 'KvrouteEppSlow', fires: [] })),
      },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  /** A quiet gateway: one request every 30 s (the 10 s samples step 0,0,1,1,1,2,...), for `minutes`. */
  const quietStarted = (minutes: number): string => Array.from({ length: minutes * 6 + 1 }, (_, i) => String(Math.floor(i / 3))).join(' ');
  /** From the same quiet gateway, every request from `from` seconds on: an EPP that stalls for good. */
  const quietFailingFrom = (from: number, minutes: number): string =>
    Array.from({ length: minutes * 6 + 1 }, (_, i) => String(Math.max(0, Math.floor(i / 3) - Math.floor(from / 30)))).join(' ');
  /** One request counted at 185 s, between the samples at 180 s and 190 s, the counter's `samples` long. */
  const oneAt185 = (samples: number) => `0x18 1x${samples - 19}`;

  // Envoy counts each failed request once (ext_proc.cc @ v1.35.0: onMessageTimeout adds one message_timeouts and, failing
  // open, one failure_mode_allowed; onGrpcError one streams_failed): at a quiet gateway one late answer is ~46 % of the
  // minute. Reviewer rev-prom's cases, real series shapes through promtool.
  test('a quiet gateway (2 requests/min): ONE request whose EPP answer came after the message timeout does not page KvrouteEppFailingOpen; a stall of every request does, within about 2 minutes', () => {
    const out = run([
      {
        name: 'one late request at 2 requests/min', interval: '10s',
        series: [eppUp('1x60'), envoy('streams_started', quietStarted(10)), envoy('message_timeouts', oneAt185(61)), envoy('failure_mode_allowed', oneAt185(61))],
        alerts: ['210s', '225s', '240s', '255s', '270s'].map((at) => ({ at, alert: 'KvrouteEppFailingOpen', fires: [] })),
      },
      {
        // The EPP up but answering every request late from 120 s on: three failed open by 210 s.
        name: 'every request late from 120 s at 2 requests/min', interval: '10s',
        series: [eppUp('1x60'), envoy('streams_started', quietStarted(10)), envoy('message_timeouts', quietFailingFrom(120, 10)), envoy('failure_mode_allowed', quietFailingFrom(120, 10))],
        alerts: [
          { at: '180s', alert: 'KvrouteEppFailingOpen', fires: [] },
          { at: '255s', alert: 'KvrouteEppFailingOpen', fires: [expected('KvrouteEppFailingOpen', '100%')] },
          { at: '300s', alert: 'KvrouteEppFailingOpen', fires: [expected('KvrouteEppFailingOpen', '100%')] },
        ],
      },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('a gateway at 6 requests/min: ONE late request does not page KvrouteEppFailingOpen either', () => {
    const out = run([{
      name: 'one late request at 6 requests/min', interval: '10s',
      series: [eppUp('1x60'), envoy('streams_started', '0+1x60'), envoy('message_timeouts', oneAt185(61)), envoy('failure_mode_allowed', oneAt185(61))],
      alerts: ['210s', '225s', '240s', '255s', '270s'].map((at) => ({ at, alert: 'KvrouteEppFailingOpen', fires: [] })),
    }]);
    expect(out).toMatch(/^0\n/);
  });

  test('native routing, a quiet gateway (2 requests/min): ONE failed ext_proc stream does not page KvrouteEppStreamsFailing; every stream failing does', () => {
    const out = run([
      {
        name: 'one failed stream at 2 requests/min', interval: '10s',
        series: [eppUp('1x60'), envoy('streams_started', quietStarted(10)), envoy('streams_failed', oneAt185(61)), envoy('failure_mode_allowed', '0x60'), envoy('message_timeouts', '0x60')],
        alerts: ['210s', '225s', '240s', '255s', '270s'].map((at) => ({ at, alert: 'KvrouteEppStreamsFailing', fires: [] })),
      },
      {
        name: 'every stream failing mid-body from 120 s at 2 requests/min', interval: '10s',
        series: [eppUp('1x60'), envoy('streams_started', quietStarted(10)), envoy('streams_failed', quietFailingFrom(120, 10)), envoy('failure_mode_allowed', '0x60'), envoy('message_timeouts', '0x60')],
        alerts: [
          { at: '180s', alert: 'KvrouteEppStreamsFailing', fires: [] },
          { at: '300s', alert: 'KvrouteEppStreamsFailing', fires: [expected('KvrouteEppStreamsFailing', '100%', {}, nativeAlerts)] },
        ],
      },
    ], nativeRule);
    expect(out).toMatch(/^0\n/);
  });

  test('streams that fail while opening (no EPP endpoint) count as failed open without being started', () => {
    const out = run([{
      name: 'no stream opens', interval: '10s',
      series: [envoy('streams_started', '100x40'), envoy('failure_mode_allowed', '0+10x40')],
      alerts: [{ at: '5m', alert: 'KvrouteEppFailingOpen', fires: [expected('KvrouteEppFailingOpen', '100%')] }],
    }]);
    expect(out).toMatch(/^0\n/);
  });

  test('native routing (Istio\'s InferencePool, full duplex): EPP streams failing after a body chunk page as KvrouteEppStreamsFailing, streams Envoy failed open (counted under both counters) do not; no KvrouteEppSlow, whose timer never runs there', () => {
    expect(Object.keys(nativeAlerts)).not.toContain('KvrouteEppSlow');
    expect(Object.keys(alerts)).not.toContain('KvrouteEppStreamsFailing');
    const failing = [eppUp('1x80'), envoy('streams_started', '0+10x80'), envoy('streams_failed', '0+5x80'), envoy('failure_mode_allowed', '0x80')];
    const healthy = [eppUp('1x80'), envoy('streams_started', '0+10x80'), envoy('streams_failed', '0x80'), envoy('failure_mode_allowed', '0x80')];
    const out = run([
      {
        name: 'half the streams fail (500s to clients)', interval: '10s', series: failing,
        alerts: [
          { at: '5m', alert: 'KvrouteEppStreamsFailing', fires: [expected('KvrouteEppStreamsFailing', '50%', {}, nativeAlerts)] },
          { at: '5m', alert: 'KvrouteEppFailingOpen', fires: [] },
        ],
      },
      { name: 'healthy', interval: '10s', series: healthy, alerts: [{ at: '5m', alert: 'KvrouteEppStreamsFailing', fires: [] }] },
      {
        // Envoy's onGrpcError counts a stream it fails open as streams_failed and as failure_mode_allowed (ext_proc.cc
        // @ v1.35.0): an EPP unreachable before any body chunk is a fail-open, not a client failure (audit s36).
        // Message timeouts failed open are counted in failure_mode_allowed but not in streams_failed: they must not
        // cancel the mid-body failures that reached clients (review s36).
        name: 'half the streams fail mid-body while others time out and fail open', interval: '10s',
        series: [eppUp('1x80'), envoy('streams_started', '0+10x80'), envoy('streams_failed', '0+5x80'), envoy('failure_mode_allowed', '0+5x80'), envoy('message_timeouts', '0+5x80')],
        alerts: [{ at: '5m', alert: 'KvrouteEppStreamsFailing', fires: [expected('KvrouteEppStreamsFailing', '50%', {}, nativeAlerts)] }],
      },
      {
        name: 'EPP unreachable, every stream failed open', interval: '10s',
        series: [eppUp('1x80'), envoy('streams_started', '0x80'), envoy('streams_failed', '0+100x80'), envoy('failure_mode_allowed', '0+100x80')],
        alerts: [
          { at: '5m', alert: 'KvrouteEppStreamsFailing', fires: [] },
          { at: '5m', alert: 'KvrouteEppFailingOpen', fires: [expected('KvrouteEppFailingOpen', '100%', {}, nativeAlerts)] },
        ],
      },
    ], nativeRule);
    expect(out).toMatch(/^0\n/);
  });

  test('missing gateway ext_proc counters warn after 10 minutes', () => {
    const out = run([
      { name: 'none', series: [running], alerts: [{ at: '15m', alert: 'KvrouteGatewayExtProcStatsMissing', fires: [expected('KvrouteGatewayExtProcStatsMissing', '')] }] },
      { name: 'present', series: [envoy('streams_started', '0x40')], alerts: [{ at: '15m', alert: 'KvrouteGatewayExtProcStatsMissing', fires: [] }] },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('hit ratio: warns when the pods hit well under what the precise index predicted they would count, not when a workload shares little (audit 29: the absolute floor fired on a healthy stack of distinct prompts)', () => {
    // The precise index's counters: predicted hit tokens (as vLLM counts hits: whole blocks, never a prompt's last token)
    // over prompt tokens; vLLM's queries are 6000 tokens a minute.
    const predicted = (ratio: number): Series[] => [
      epp('kvroute_epp_precise_predicted_hit_tokens_total', `0+${Math.round(6000 * ratio)}x40`, 'pod="epp-a"'),
      epp('kvroute_epp_precise_prompt_tokens_total', '0+6000x40', 'pod="epp-a"'),
    ];
    // GIE's per-request match ratio histogram (mean = _sum / _count; 10 requests a minute), which every EPP exports.
    const approximateMean = (mean: number): Series[] => [
      epp('inference_extension_prefix_indexer_hit_ratio_sum', `0+${Math.round(mean * 10)}x40`, 'pod="epp-a"'),
      epp('inference_extension_prefix_indexer_hit_ratio_count', '0+10x40', 'pod="epp-a"'),
    ];
    // Every EPP exports the precise index's counters, at 0 where it does not run (prom-client's unlabelled counters).
    const preciseIdle: Series[] = [
      epp('kvroute_epp_precise_predicted_hit_tokens_total', '0x40', 'pod="epp-a"'),
      epp('kvroute_epp_precise_prompt_tokens_total', '0x40', 'pod="epp-a"'),
    ];
    const hits = (ratio: number) => vllm('vllm:prefix_cache_hits_total', `0+${Math.round(6000 * ratio)}x40`);
    const out = run([
      { name: 'predicted 90%, hit 10%', series: [queries, hits(0.1), ...predicted(0.9), ...approximateMean(0.9)], alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitsBelowExpected', fires: [expected('KvroutePrefixCacheHitsBelowExpected', '80%')] }] },
      { name: 'predicted 90%, hit 85%', series: [queries, hits(0.85), ...predicted(0.9), ...approximateMean(0.9)], alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitsBelowExpected', fires: [] }] },
      { name: 'distinct prompts: predicted 0%, hit 0%', series: [queries, hits(0), ...predicted(0), ...approximateMean(0)], alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitsBelowExpected', fires: [] }] },
      {
        // The precise index's own prediction, whatever GIE's histogram says.
        name: 'precise: predicted 90% of prompt tokens, hit 30%',
        series: [queries, hits(0.3), ...approximateMean(0.2), ...predicted(0.9)],
        alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitsBelowExpected', fires: [expected('KvroutePrefixCacheHitsBelowExpected', '60%')] }],
      },
      { name: 'idle', series: [vllm('vllm:prefix_cache_queries_total', '0x40'), vllm('vllm:prefix_cache_hits_total', '0x40'), ...preciseIdle, ...approximateMean(0)], alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitsBelowExpected', fires: [] }] },
    ]);
    expect(out).toMatch(/^0\n/);
    expect(Object.keys(alerts)).not.toContain('KvroutePrefixCacheHitRatioLow');
  });

  test('the approximate index\'s match ratio is not compared with vLLM\'s (reviewer rev-prom: a repeated 24-token prompt, perfectly routed and cached, read 1 against vLLM\'s 16 of 24 tokens and warned)', () => {
    // GIE v1.5.0 approximateprefix: hashing.go hashes whole blocks of characters only and plugin.go PreRequest records
    // matched ÷ total blocks per request, so a cached prompt reads 1; vLLM v0.10.0 counts every prompt token as a query
    // and hits in whole blocks short of the last token (kv_cache_manager.py get_computed_blocks): 16 of 24 tokens.
    const vllm24 = (name: string, values: string): Series => ({ series: `${name}{namespace="${ns}",pod="decode-a",model_name="Qwen/Qwen3-0.6B",engine="0"}`, values });
    const eppA = (name: string, values: string): Series => ({ series: `${name}{namespace="${ns}",pod="epp-a",job="${eppJob}"}`, values });
    const out = run([
      {
        name: 'short repeated prompt, one request every 10 s', interval: '10s',
        series: [
          eppUp('1x240'),
          vllm24('vllm:prefix_cache_queries_total', '0+24x240'), vllm24('vllm:prefix_cache_hits_total', '0+16x240'),
          eppA('inference_extension_prefix_indexer_hit_ratio_sum', '0+1x240'), eppA('inference_extension_prefix_indexer_hit_ratio_count', '0+1x240'),
          eppA('kvroute_epp_precise_predicted_hit_tokens_total', '0x240'), eppA('kvroute_epp_precise_prompt_tokens_total', '0x240'),
        ],
        alerts: [{ at: '35m', alert: 'KvroutePrefixCacheHitsBelowExpected', fires: [] }],
      },
      {
        // Nor does a 90 % mean match against 10 % hits warn: the approximate index's ratio is not in vLLM's units.
        name: 'approximate only: mean match 90%, hit 10%',
        series: [queries, vllm('vllm:prefix_cache_hits_total', '0+600x40'),
          epp('inference_extension_prefix_indexer_hit_ratio_sum', '0+9x40', 'pod="epp-a"'), epp('inference_extension_prefix_indexer_hit_ratio_count', '0+10x40', 'pod="epp-a"'),
          epp('kvroute_epp_precise_predicted_hit_tokens_total', '0x40', 'pod="epp-a"'), epp('kvroute_epp_precise_prompt_tokens_total', '0x40', 'pod="epp-a"')],
        alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitsBelowExpected', fires: [] }],
      },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('an absolute hit-ratio floor warns only where the profile sets one (minPrefixCacheHitRatio): fires at 0%, quiet at 90% and when idle', () => {
    const floorRule = one(synthProps(withOverrides(DEMO, { monitoring: { minPrefixCacheHitRatio: 0.8 } })), 'PrometheusRule');
    const floorAlerts = alertsOf(floorRule);
    const out = run([
      { name: 'no hits', series: [queries, vllm('vllm:prefix_cache_hits_total', '0+0x40')], alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitRatioLow', fires: [expected('KvroutePrefixCacheHitRatioLow', '0%', {}, floorAlerts)] }] },
      { name: '90% hits', series: [queries, vllm('vllm:prefix_cache_hits_total', '0+5400x40')], alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitRatioLow', fires: [] }] },
      { name: 'idle', series: [vllm('vllm:prefix_cache_queries_total', '0x40'), vllm('vllm:prefix_cache_hits_total', '0x40')], alerts: [{ at: '30m', alert: 'KvroutePrefixCacheHitRatioLow', fires: [] }] },
    ], floorRule);
    expect(out).toMatch(/^0\n/);
  });

  test('requests the EPP refuses itself (429, 503) warn when over 5 % for 5 minutes; waits whose client left do not count; none refused, none fires (audit 29)', () => {
    // Counters scraped every 10 s (the EPP's interval: the 1-minute confirmation window needs several samples), per 10 s.
    const routed = (per10s: number) => epp('inference_objective_request_total', `0+${per10s}x150`, 'model_name="m",target_model_name="m",priority="0",pod="epp-a"');
    const errors = (code: string, per10s: number) => epp('inference_objective_request_error_total', `0+${per10s}x150`, `model_name="m",target_model_name="m",error_code="${code}",pod="epp-a"`);
    const aborted = (per10s: number) => epp('kvroute_epp_flow_control_rejections_total', `0+${per10s}x150`, 'reason="aborted",pod="epp-a"');
    const out = run([
      { name: '10% refused 429', interval: '10s', series: [routed(90), errors('ResourceExhausted', 10)], alerts: [{ at: '20m', alert: 'KvrouteEppRefusingRequests', fires: [expected('KvrouteEppRefusingRequests', '10%')] }] },
      { name: 'every request 503, none routed ever', interval: '10s', series: [errors('ServiceUnavailable', 50)], alerts: [{ at: '20m', alert: 'KvrouteEppRefusingRequests', fires: [expected('KvrouteEppRefusingRequests', '100%')] }] },
      { name: 'waits abandoned by the proxy (counted ServiceUnavailable as GIE counts them)', interval: '10s', series: [routed(90), errors('ServiceUnavailable', 10), aborted(10)], alerts: [{ at: '20m', alert: 'KvrouteEppRefusingRequests', fires: [] }] },
      { name: '2% refused, client errors aside', interval: '10s', series: [routed(98), errors('ResourceExhausted', 2), errors('BadRequest', 30)], alerts: [{ at: '20m', alert: 'KvrouteEppRefusingRequests', fires: [] }] },
      { name: 'healthy', interval: '10s', series: [routed(100)], alerts: [{ at: '20m', alert: 'KvrouteEppRefusingRequests', fires: [] }] },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('with a session store, a replica that lost it warns after 5 minutes; without one there is no such alert', () => {
    expect(Object.keys(alerts)).not.toContain('KvrouteSessionStoreDisconnected');
    const connected = (pod: string, values: string): Series => ({ series: `kvroute_epp_session_store_connected{namespace="${ns}",pod="${pod}"}`, values });
    const out = run([
      { name: 'epp-b lost it', series: [connected('epp-a', '1x20'), connected('epp-b', '1x2 0x17')], alerts: [{ at: '10m', alert: 'KvrouteSessionStoreDisconnected', fires: [expected('KvrouteSessionStoreDisconnected', '', { pod: 'epp-b' }, haAlerts)] }] },
      { name: 'connected', series: [connected('epp-a', '1x20'), connected('epp-b', '1x20')], alerts: [{ at: '10m', alert: 'KvrouteSessionStoreDisconnected', fires: [] }] },
    ], haRule);
    expect(out).toMatch(/^0\n/);
  });

  test('a store that stays connected but whose reads time out, fail or answer late warns (audit 29: a slow store split every session while connected read 1; review 32: late answers held new sessions\' picks unseen)', () => {
    const reads = (pod: string, outcome: string, perMinute: number): Series => ({
      series: `kvroute_epp_session_store_operations_total{namespace="${ns}",pod="${pod}",operation="read",outcome="${outcome}"}`, values: `0+${perMinute}x40`,
    });
    const out = run([
      {
        name: 'epp-b times out on most reads', series: [reads('epp-a', 'hit', 100), reads('epp-b', 'hit', 10), reads('epp-b', 'timeout', 90)],
        alerts: [{ at: '20m', alert: 'KvrouteSessionStoreFailing', fires: [expected('KvrouteSessionStoreFailing', '90%', { pod: 'epp-b' }, haAlerts)] }],
      },
      { name: 'a few timeouts', series: [reads('epp-a', 'hit', 97), reads('epp-a', 'timeout', 3)], alerts: [{ at: '20m', alert: 'KvrouteSessionStoreFailing', fires: [] }] },
      // Every read of new sessions answered between timeout and unboundTimeout: nothing fell back, each pick waited.
      {
        name: 'epp-a answers every new session late', series: [reads('epp-a', 'late_miss', 30), reads('epp-a', 'late_hit', 10), reads('epp-a', 'hit', 60)],
        alerts: [{ at: '20m', alert: 'KvrouteSessionStoreFailing', fires: [expected('KvrouteSessionStoreFailing', '40%', { pod: 'epp-a' }, haAlerts)] }],
      },
      { name: 'a few late answers', series: [reads('epp-a', 'hit', 97), reads('epp-a', 'late_miss', 3)], alerts: [{ at: '20m', alert: 'KvrouteSessionStoreFailing', fires: [] }] },
    ], haRule);
    expect(out).toMatch(/^0\n/);
  });

  test('KV cache near full and no ready pods', () => {
    const out = run([
      { name: 'KV full', series: [vllm('vllm:kv_cache_usage_perc', '0.97x40')], alerts: [{ at: '30m', alert: 'KvrouteKvCacheNearFull', fires: [expected('KvrouteKvCacheNearFull', '97%', { pod: 'decode-a' })] }] },
      { name: 'KV fine', series: [vllm('vllm:kv_cache_usage_perc', '0.5x40')], alerts: [{ at: '30m', alert: 'KvrouteKvCacheNearFull', fires: [] }] },
      { name: 'pool empty', series: [epp('inference_pool_ready_pods', '0x40', `name="${pool}"`), running], alerts: [{ at: '30m', alert: 'KvrouteNoReadyDecodePods', fires: [expected('KvrouteNoReadyDecodePods', '')] }] },
      { name: 'pool ready', series: [epp('inference_pool_ready_pods', '2x40', `name="${pool}"`), running], alerts: [{ at: '30m', alert: 'KvrouteNoReadyDecodePods', fires: [] }] },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('an idle stack records every ratio and quantile as NaN (present, not missing) and rates as 0', () => {
    // `x != x` keeps exactly the NaN samples, so its count is 1 for a present NaN series and nothing for a number or
    // a missing series.
    const isNaN = (name: string) => ({ at: '10m', expr: `count(${name}{namespace="${ns}"} != ${name}{namespace="${ns}"})`, samples: [{ labels: '{}', value: 1 }] });
    const bucket = (name: string, le: string, labels = 'model_name="m"'): Series => ({ series: `${name}_bucket{namespace="${ns}",${labels},le="${le}"}`, values: '0x40' });
    const out = run([{
      name: 'idle',
      series: [
        vllm('vllm:prefix_cache_queries_total', '0x40'), vllm('vllm:prefix_cache_hits_total', '0x40'),
        bucket('vllm:time_to_first_token_seconds', '0.1'), bucket('vllm:time_to_first_token_seconds', '+Inf'),
        envoy('streams_started', '0x40'), envoy('failure_mode_allowed', '0x40'), envoy('message_timeouts', '0x40'),
        epp('inference_extension_info', '1x40', 'commit="c",build_ref="b"'),
        bucket('inference_extension_scheduler_e2e_duration_seconds', '0.001', 'pod="epp-a"'), bucket('inference_extension_scheduler_e2e_duration_seconds', '+Inf', 'pod="epp-a"'),
      ],
      exprs: [
        ...RECORDED_RATIOS.map(isNaN),
        { at: '10m', expr: `${RECORDED.picksByEndpoint}{namespace="${ns}"}`, samples: [{ labels: `${RECORDED.picksByEndpoint}{namespace="${ns}"}`, value: 0 }] },
      ],
    }]);
    expect(out).toMatch(/^0\n/);
  });

  test('the harness itself fails on a wrong expectation', () => {
    const out = run([{ name: 'wrong on purpose', interval: '10s', series: outage(), alerts: [{ at: '90s', alert: 'KvrouteEppDown', fires: [expected('KvrouteEppDown', '')] }] }]);
    expect(out).toMatch(/^1\n/);
  });
});
