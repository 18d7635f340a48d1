import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as YAML from 'yaml';
import { eppMetricSeriesNames } from '../epp/src/config';
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
