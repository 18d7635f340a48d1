import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as YAML from 'yaml';
import { eppMetricSeriesNames } from '@kvroute/epp/config';
import { CLUSTERS } from '../lib/clusters';
import { RECORDED } from '../lib/monitoring';
import { VLLM_HISTOGRAMS, VLLM_METRICS } from '../lib/vllm-metrics';
import { one, synthProfile } from './support/manifests';

const promtool = spawnSync('promtool', ['--version']).status === 0 ? 'promtool' : undefined;
if (!promtool && process.env.CI) {
  throw new Error('promtool is required in CI (.ci/run installs the Debian package "prometheus")');
}

const known = new Set<string>([
  ...Object.values(VLLM_METRICS),
  ...VLLM_HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
  ...eppMetricSeriesNames(),
  ...Object.values(RECORDED),
]);

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

  test('queries only metrics vLLM 0.10 or the EPP export, or series the rule itself records', () => {
    for (const r of rules) {
      const metrics = selectedMetrics(r.expr);
      expect(metrics.length).toBeGreaterThan(0);
      const unknown = metrics.filter((m) => !known.has(m));
      expect({ rule: r.record ?? r.alert, unknown }).toEqual({ rule: r.record ?? r.alert, unknown: [] });
    }
  });

  test('every recorded series the dashboard shows is recorded by the rule', () => {
    const recorded = new Set(rules.map((r) => r.record).filter(Boolean));
    const dashboard = JSON.parse(one(manifests, 'ConfigMap', `${rule.metadata.name}-dashboard`).data['kvroute.json']);
    const queried = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.flatMap((t) => selectedMetrics(t.expr)));
    expect(queried.length).toBeGreaterThan(0);
    for (const q of queried) expect(recorded).toContain(q);
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

test('the metric-name check catches an unknown metric', () => {
  expect(selectedMetrics('sum(rate(vllm:prefix_cache_hit_total{namespace="x"}[5m]))').filter((m) => !known.has(m)))
    .toEqual(['vllm:prefix_cache_hit_total']);
});

/**
 * `promtool check rules` proves syntax only. These `promtool test rules` cases feed synthetic series through the
 * demo cluster's rules and assert which alerts fire, so an expression that can never fire fails here.
 */
(promtool ? describe : describe.skip)('alerts fire when they should (promtool test rules)', () => {
  const manifests = synthProfile(CLUSTERS[0]);
  const rule = one(manifests, 'PrometheusRule');
  const ns = one(manifests, 'Namespace').metadata.name;
  const pool = one(manifests, 'InferencePool').metadata.name;
  const alerts: Record<string, { annotations: Record<string, string>; labels: Record<string, string> }> = Object.fromEntries(
    rule.spec.groups.flatMap((g: { rules: { alert?: string }[] }) => g.rules).filter((r: { alert?: string }) => r.alert)
      .map((r: { alert: string; annotations: Record<string, string>; labels: Record<string, string> }) => [r.alert, r]));

  const vllm = (name: string, values: string, pod = 'decode-a') => ({ series: `${name}{namespace="${ns}",pod="${pod}",model_name="m",engine="0"}`, values });
  const epp = (name: string, values: string, labels = 'model_name="m",target_model_name="m"') => ({ series: `${name}{namespace="${ns}",${labels}}`, values });
  const served = vllm('vllm:e2e_request_latency_seconds_count', '0+600x40');
  const queries = vllm('vllm:prefix_cache_queries_total', '0+6000x40');
  const running = vllm('vllm:num_requests_running', '4x40');

  /** The alert as promtool reports it: templates rendered for the value and labels given. */
  function expected(alert: string, value: string, extraLabels: Record<string, string> = {}) {
    const render = (t: string) => t.replace(/\{\{ \$value \| humanizePercentage \}\}/g, value).replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l) => extraLabels[l] ?? '');
    const a = alerts[alert];
    return {
      exp_labels: { ...a.labels, namespace: ns, ...extraLabels },
      exp_annotations: Object.fromEntries(Object.entries(a.annotations).map(([k, v]) => [k, render(v)])),
    };
  }

  function run(cases: { name: string; series: { series: string; values: string }[]; alert: string; fires: unknown[] }[]): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-promtool-'));
    try {
      fs.writeFileSync(path.join(dir, 'rules.yaml'), YAML.stringify({ groups: rule.spec.groups }));
      fs.writeFileSync(path.join(dir, 'tests.yaml'), YAML.stringify({
        rule_files: ['rules.yaml'],
        evaluation_interval: '30s',
        tests: cases.map((c) => ({
          name: c.name,
          interval: '1m',
          input_series: c.series,
          alert_rule_test: [{ eval_time: '30m', alertname: c.alert, exp_alerts: c.fires }],
        })),
      }));
      const r = spawnSync(promtool!, ['test', 'rules', 'tests.yaml'], { cwd: dir, encoding: 'utf8' });
      return `${r.status}\n${r.stdout}${r.stderr}`;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test('failing open: fires when the EPP routes nothing, or is gone entirely, and stays quiet when it routes everything', () => {
    const out = run([
      { name: 'EPP counts nothing', alert: 'KvrouteEppFailingOpen', series: [served, epp('inference_model_request_total', '0+0x40')], fires: [expected('KvrouteEppFailingOpen', '0%')] },
      { name: 'EPP exports nothing', alert: 'KvrouteEppFailingOpen', series: [served], fires: [expected('KvrouteEppFailingOpen', '0%')] },
      { name: 'EPP routes everything', alert: 'KvrouteEppFailingOpen', series: [served, epp('inference_model_request_total', '0+600x40')], fires: [] },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('hit ratio: fires at 0% for 15 minutes, quiet at 90%', () => {
    const out = run([
      { name: 'no hits', alert: 'KvroutePrefixCacheHitRatioLow', series: [queries, vllm('vllm:prefix_cache_hits_total', '0+0x40')], fires: [expected('KvroutePrefixCacheHitRatioLow', '0%')] },
      { name: '90% hits', alert: 'KvroutePrefixCacheHitRatioLow', series: [queries, vllm('vllm:prefix_cache_hits_total', '0+5400x40')], fires: [] },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('KV cache near full and no ready pods', () => {
    const out = run([
      { name: 'KV full', alert: 'KvrouteKvCacheNearFull', series: [vllm('vllm:kv_cache_usage_perc', '0.97x40')], fires: [expected('KvrouteKvCacheNearFull', '97%', { pod: 'decode-a' })] },
      { name: 'KV fine', alert: 'KvrouteKvCacheNearFull', series: [vllm('vllm:kv_cache_usage_perc', '0.5x40')], fires: [] },
      { name: 'pool empty', alert: 'KvrouteNoReadyDecodePods', series: [epp('inference_pool_ready_pods', '0x40', `name="${pool}"`), running], fires: [expected('KvrouteNoReadyDecodePods', '')] },
      { name: 'pool ready', alert: 'KvrouteNoReadyDecodePods', series: [epp('inference_pool_ready_pods', '2x40', `name="${pool}"`), running], fires: [] },
    ]);
    expect(out).toMatch(/^0\n/);
  });

  test('the harness itself fails on a wrong expectation', () => {
    const out = run([{ name: 'wrong on purpose', alert: 'KvrouteEppFailingOpen', series: [served, epp('inference_model_request_total', '0+600x40')], fires: [expected('KvrouteEppFailingOpen', '0%')] }]);
    expect(out).toMatch(/^1\n/);
  });
});
