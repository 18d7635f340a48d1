/**
 * The shipped PrometheusRule, run by a real Prometheus (Debian's `prometheus`, which .ci/run installs) against the local
 * stack: simulated vLLM pods, the EPP and the gateway, each its own process on loopback, scraped the way Prometheus
 * Operator scrapes them in a cluster (same job and target labels, the monitors' paths).
 *
 * The rules are the demo cluster's, rendered with `monitoring.durationScale: 0.1` (the very same expressions; every
 * scrape interval, evaluation interval, rate window and `for:` a tenth of production: alerts evaluated every 1.5 s, the
 * pages' `for: 3s` and 6 s window), so what takes minutes in a cluster takes seconds here. The test asserts:
 * - idle: every recorded ratio and quantile exists and is NaN before any request (the dashboard's "idle");
 * - healthy: under a light load nothing fires and every rule evaluates without error;
 * - outage: killing the EPP makes KvrouteEppDown and KvrouteEppFailingOpen go pending and fire while it is down, by
 *   Prometheus's own evaluation times within two (scaled) minutes of the kill;
 * - recovery: after the EPP restarts on its ports, both resolve, and nothing is left firing;
 * - dashboard: under load every panel's query returns series with the labels its legend names and values its unit
 *   fits; once the load stops, every stat panel reduces its range to "idle" as Grafana reduces it.
 * Every wait is a poll with a generous limit. The one bound on time is read on Prometheus's clock (its scheduled
 * evaluation times), with twice the rules' worst case as its limit.
 */
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as YAML from 'yaml';
import { DEFAULT_SIM, startStack, type Stack } from '@kvroute/bench';
import { E2E_TEST_TIMEOUT_MS, freePort, sleep, waitFor } from '@kvroute/testkit';
import { DEMO, withOverrides } from '../lib/clusters';
import { RECORDED_RATIOS } from '../lib/monitoring';
import { durationMs } from '../lib/validation';
import { one, synthProps } from './support/manifests';

const PROMETHEUS = 'prometheus';
const available = spawnSync(PROMETHEUS, ['--version']).status === 0;
if (!available && process.env.CI) {
  throw new Error('the prometheus binary is required in CI (.ci/run installs the Debian package "prometheus")');
}
const SCALE = 0.1;
const PAGES = ['KvrouteEppDown', 'KvrouteEppFailingOpen'];

interface ActiveAlert { labels: { alertname: string; [k: string]: string }; state: 'pending' | 'firing'; value: string; activeAt: string }

(available ? describe : describe.skip)(
  available ? 'the PrometheusRule in a real Prometheus scraping the local stack' : 'the PrometheusRule in a real Prometheus (skipped: no prometheus binary; apt-get install prometheus)',
  () => {
    jest.setTimeout(E2E_TEST_TIMEOUT_MS);

    const manifests = synthProps(withOverrides(DEMO, { monitoring: { durationScale: SCALE } }));
    const rule = one(manifests, 'PrometheusRule');
    const ns = one(manifests, 'Namespace').metadata.name;
    const eppMonitor = one(manifests, 'ServiceMonitor');
    const vllmMonitor = one(manifests, 'PodMonitor', 'ms-llm-d-modelservice-decode-vllm');
    const gatewayMonitor = one(manifests, 'PodMonitor', 'llm-d-gateway-istio-envoy');

    let dir: string;
    let stack: Stack | undefined;
    let prometheus: ChildProcess | undefined;
    let api: string;
    let load: { stop(): Promise<{ ok: number; failed: string[] }> } | undefined;
    let startedAt: number;

    beforeAll(async () => {
      startedAt = Date.now() / 1000;
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-prometheus-'));
      // The gateway waits 10 s for each EPP answer, not the EnvoyFilter's 1 s: on a loaded machine the EPP's process can
      // go unscheduled past 1 s (stopped for 1.5 s, about one request in 70 failed open and the healthy run's fail-open
      // ratio read 0.015), which is the machine's speed, not the rules'. The outage still fails open at once: a killed
      // EPP's connection is refused, no timer involved.
      stack = await startStack({ pods: 2, sim: DEFAULT_SIM, policy: { kind: 'epp', name: 'alerts' }, logDir: path.join(dir, 'logs'), messageTimeoutMs: 10_000 });
      const port = await freePort();
      api = `http://127.0.0.1:${port}`;
      fs.writeFileSync(path.join(dir, 'rules.yaml'), YAML.stringify({ groups: rule.spec.groups }));
      fs.writeFileSync(path.join(dir, 'prometheus.yaml'), YAML.stringify(prometheusConfig(stack)));
      const log = fs.openSync(path.join(dir, 'prometheus.log'), 'a');
      prometheus = spawn(PROMETHEUS, [
        `--config.file=${path.join(dir, 'prometheus.yaml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
      ], { stdio: ['ignore', 'ignore', log] });
      fs.closeSync(log);
      await waitFor(async () => (await fetch(`${api}/-/ready`).catch(() => undefined))?.ok === true, 'Prometheus to be ready', { limitMs: 30_000, intervalMs: 200 });
    });

    afterAll(async () => {
      await load?.stop();
      if (prometheus && prometheus.exitCode === null) {
        const exited = new Promise((resolve) => prometheus!.once('exit', resolve));
        prometheus.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
      }
      await stack?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /**
     * Scrape jobs as Prometheus Operator generates them from the monitors: a ServiceMonitor target's `job` is its
     * Service, a PodMonitor target's `<namespace>/<PodMonitor>`; every target carries `namespace` and `pod`.
     */
    function prometheusConfig(s: Stack): Record<string, unknown> {
      const job = (name: string, interval: string, targets: { address: string; pod: string }[], metricsPath: string) => ({
        job_name: name,
        scrape_interval: interval,
        scrape_timeout: interval,
        metrics_path: metricsPath,
        static_configs: targets.map((t) => ({ targets: [t.address], labels: { namespace: ns, pod: t.pod } })),
      });
      const eppEndpoint = eppMonitor.spec.endpoints[0];
      const vllmEndpoint = vllmMonitor.spec.podMetricsEndpoints[0];
      const gatewayEndpoint = gatewayMonitor.spec.podMetricsEndpoints[0];
      return {
        global: { evaluation_interval: rule.spec.groups[1].interval },
        rule_files: [path.join(dir, 'rules.yaml')],
        scrape_configs: [
          job(one(manifests, 'Service', eppMonitor.metadata.name).metadata.name, eppEndpoint.interval,
            [{ address: `127.0.0.1:${s.epp!.info.metricsPort as number}`, pod: 'epp-0' }], eppEndpoint.path),
          job(`${ns}/${vllmMonitor.metadata.name}`, vllmEndpoint.interval,
            s.podAddresses.map((address, i) => ({ address, pod: `decode-${i}` })), vllmEndpoint.path),
          job(`${ns}/${gatewayMonitor.metadata.name}`, gatewayEndpoint.interval,
            [{ address: new URL(s.gatewayUrl).host, pod: 'gateway-0' }], gatewayEndpoint.path),
        ],
      };
    }

    async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
      const r = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = await r.json() as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      expect(body.status).toBe('success');
      return body.data.result;
    }

    async function activeAlerts(): Promise<ActiveAlert[]> {
      const body = await (await fetch(`${api}/api/v1/alerts`)).json() as { data: { alerts: ActiveAlert[] } };
      return body.data.alerts;
    }

    const ruleNamed = (name: string): { for: string } =>
      rule.spec.groups.flatMap((g: { rules: { alert?: string; for: string }[] }) => g.rules).find((r: { alert?: string }) => r.alert === name);
    const stateOf = (alerts: ActiveAlert[], name: string) => alerts.find((a) => a.labels.alertname === name)?.state;
    const firing = (alerts: ActiveAlert[]) => alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname);

    /** Requests through the gateway, two at a time, all sharing a long system prompt (so the pods' hit ratio is high). */
    function startLoad(s: Stack): { stop(): Promise<{ ok: number; failed: string[] }> } {
      const prefix = `You are a careful assistant for the kvroute alerting test. ${'Answer briefly and precisely. '.repeat(60)}`;
      let running = true;
      let ok = 0;
      let n = 0;
      const failed: string[] = [];
      const worker = async () => {
        while (running) {
          const i = n++;
          try {
            const r = await fetch(`${s.gatewayUrl}/v1/completions`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ model: DEFAULT_SIM.model, prompt: `${prefix}Question ${i}?`, max_tokens: 2 }),
              signal: AbortSignal.timeout(30_000),
            });
            await r.arrayBuffer();
            if (r.status === 200) ok++;
            else failed.push(`request ${i}: ${r.status}`);
          } catch (e) {
            failed.push(`request ${i}: ${String(e)}`);
          }
          await sleep(50);
        }
      };
      const workers = [worker(), worker()];
      return {
        async stop() {
          running = false;
          await Promise.all(workers);
          return { ok, failed };
        },
      };
    }

    test('idle: every target is up and every recorded ratio and quantile is present and NaN', async () => {
      await waitFor(async () => {
        const body = await (await fetch(`${api}/api/v1/targets`)).json() as { data: { activeTargets: { health: string }[] } };
        return body.data.activeTargets.length === 4 && body.data.activeTargets.every((t) => t.health === 'up');
      }, 'all four targets up', { limitMs: 30_000, intervalMs: 250 });
      const values = async () => Object.fromEntries(await Promise.all(RECORDED_RATIOS.map(async (name) =>
        [name, (await query(`${name}{namespace="${ns}"}`)).map((r) => r.value[1])] as const)));
      await waitFor(async () => Object.values(await values()).every((v) => v.length > 0), 'the recording rules to run', { limitMs: 30_000, intervalMs: 250 });
      const idle = await values();
      for (const name of RECORDED_RATIOS) expect({ name, values: idle[name] }).toEqual({ name, values: idle[name].map(() => 'NaN') });
    });

    test('healthy: under load nothing fires, and every rule evaluates without error', async () => {
      load = startLoad(stack!);
      // Traffic reached the pods and the gateway's counters, as Prometheus sees them.
      await waitFor(async () => (await query(`sum(rate(envoy_http_ext_proc_streams_started{namespace="${ns}"}[5s])) > 0`)).length > 0,
        'Prometheus to see the gateway\'s streams', { limitMs: 30_000, intervalMs: 250 });
      const seen = new Map<string, Set<string>>();
      const until = Date.now() + 10_000; // more than three times the pages' `for:` plus their window (3 s + 6 s)
      while (Date.now() < until) {
        const alerts = await activeAlerts();
        for (const a of alerts) (seen.get(a.state) ?? seen.set(a.state, new Set()).get(a.state)!).add(a.labels.alertname);
        expect({ firing: firing(alerts) }).toEqual({ firing: [] });
        await sleep(300);
      }
      const rules = await (await fetch(`${api}/api/v1/rules`)).json() as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
      const all = rules.data.groups.flatMap((g) => g.rules);
      expect(all).toHaveLength(rule.spec.groups.flatMap((g: { rules: unknown[] }) => g.rules).length);
      for (const r of all) expect({ rule: r.name, health: r.health, error: r.lastError ?? '' }).toEqual({ rule: r.name, health: 'ok', error: '' });
      const [failOpen] = await query(`kvroute:gateway_ext_proc_fail_open_ratio:rate5m{namespace="${ns}"}`);
      expect(Number(failOpen.value[1])).toBe(0);
      // Pending alerts are allowed here (a ratio may dip for one evaluation on a loaded machine); none may fire.
      if (seen.get('pending')?.size) process.stderr.write(`healthy run: pending at some point: ${[...seen.get('pending')!].join(', ')}\n`);
    });

    /**
     * What an operator sees: every panel of the shipped dashboard ConfigMap, its queries run as Grafana's Prometheus
     * data source runs them (the panels use no Grafana variable in their PromQL; the data source is the `datasource`
     * template variable), against the stack under the load above. Each query parses, returns series, every label its
     * legend names is on every series, and the values are what the unit says: a share within [0, 1] (or NaN, the
     * documented idle, for a source the load does not exercise), seconds and rates not negative.
     */
    test('dashboard: under load every panel\'s query returns series whose labels its legend names and whose values fit its unit', async () => {
      const dashboard = JSON.parse(one(manifests, 'ConfigMap', `${rule.metadata.name}-dashboard`).data['kvroute.json']) as {
        panels: { title: string; fieldConfig: { defaults: { unit: string } }; targets: { expr: string; legendFormat: string }[] }[];
      };
      // The recording group runs every few (scaled) seconds: wait for each panel's series rather than time it.
      const problems = async (): Promise<string[]> => {
        const out: string[] = [];
        for (const panel of dashboard.panels) {
          for (const target of panel.targets) {
            expect(target.expr).not.toMatch(/\$/); // no Grafana variable left to substitute
            const series = await query(target.expr);
            if (series.length === 0) { out.push(`${panel.title}: ${target.expr} returned no series`); continue; }
            const legendLabels = [...target.legendFormat.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]);
            for (const s of series) {
              const missing = legendLabels.filter((l) => s.metric[l] === undefined);
              if (missing.length) out.push(`${panel.title}: legend ${target.legendFormat} names ${missing.join(', ')}, absent from ${JSON.stringify(s.metric)}`);
              const v = Number(s.value[1]);
              const unit = panel.fieldConfig.defaults.unit;
              if (unit === 'percentunit' && !(Number.isNaN(v) || (v >= 0 && v <= 1))) out.push(`${panel.title}: ${v} is no share (${unit})`);
              if ((unit === 's' || unit === 'reqps') && !(Number.isNaN(v) || v >= 0)) out.push(`${panel.title}: ${v} is negative (${unit})`);
            }
          }
        }
        return out;
      };
      let last: string[] = [];
      await waitFor(async () => (last = await problems()).length === 0, 'every dashboard panel to show series', { limitMs: 60_000, intervalMs: 500 })
        .catch(() => undefined);
      expect(last).toEqual([]);
    });

    test('outage: the EPP killed, both pages go pending and fire while it is down; restarted, both resolve', async () => {
      const killedAt = Date.now();
      await stack!.epp!.kill();
      const firstSeen: Record<string, Record<string, number>> = {};
      const note = (alerts: ActiveAlert[], since: number) => {
        for (const name of PAGES) {
          const state = stateOf(alerts, name);
          if (state) (firstSeen[name] ??= {})[state] ??= Date.now() - since;
        }
      };
      await waitFor(async () => {
        const alerts = await activeAlerts();
        note(alerts, killedAt);
        return PAGES.every((name) => stateOf(alerts, name) === 'firing');
      }, `${PAGES.join(' and ')} to fire during the outage`, { limitMs: 60_000, intervalMs: 200 });
      // Each went through pending first (the `for:`), as Prometheus reports it.
      for (const name of PAGES) expect(Object.keys(firstSeen[name]).sort()).toEqual(['firing', 'pending']);
      // The pages fire within two (scaled) minutes of the kill, judged on Prometheus's own clock rather than on how soon
      // this poll saw them: the evaluation that made the alert pending (`activeAt`, a scheduled evaluation time) plus
      // the rule's `for:` is when it fires. Two minutes, not one: the rules' own worst case (a scrape interval, an
      // evaluation interval, the fail-open ratio's share of its window, then `for:`) comes close to one scaled minute,
      // and scrapes run late on a loaded machine. The one-minute promise is proven at production timings, without a
      // clock, by promtool (`prometheus-rules.test.ts`). This still fails a rule with 5-minute windows or `for: 5m`
      // (30 scaled seconds; the alert the issue found silent through a 100-second outage), which the wait above passes.
      const fired = await activeAlerts();
      for (const name of PAGES) {
        const alert = fired.find((a) => a.labels.alertname === name)!;
        const forMs = durationMs(ruleNamed(name).for);
        expect({ name, forMs: forMs > 0 }).toEqual({ name, forMs: true });
        const firesAfterKillMs = Date.parse(alert.activeAt) + forMs - killedAt;
        expect({ name, within: firesAfterKillMs <= 2 * 60_000 * SCALE, firesAfterKillMs }).toEqual({ name, within: true, firesAfterKillMs });
      }

      const restartedAt = Date.now();
      await stack!.restartEpp();
      await waitFor(async () => {
        const alerts = await activeAlerts();
        return PAGES.every((name) => stateOf(alerts, name) === undefined);
      }, `${PAGES.join(' and ')} to resolve once the EPP is back`, { limitMs: 60_000, intervalMs: 200 });
      const resolvedAfterMs = Date.now() - restartedAt;
      expect(firing(await activeAlerts())).toEqual([]);

      // Requests never failed: the gateway failed open while the EPP was down, as Envoy does.
      const result = await load!.stop();
      load = undefined;
      expect(result.failed).toEqual([]);
      expect(result.ok).toBeGreaterThan(0);
      process.stderr.write(`outage (time scale ${SCALE}): ${JSON.stringify(firstSeen)} ms after the kill; resolved ${resolvedAfterMs} ms after the restart\n`);
    });

    /**
     * The stat panels reduce their range to one value. Grafana (not run here) reduces it by the panel's
     * `reduceOptions.calcs`, `lastNotNull` when unset (public/app/plugins/panel/stat/common.ts), as its docs define them
     * (Grafana 10.4 / 11.4 panels-visualizations/query-transform-data/calculation-types): "Last: last value in a field";
     * "Last* (not null): last, not null value in a field (also excludes NaNs)". Then its value mappings apply: NaN is
     * mapped to "idle" by every panel. After the load, with the stack idle again, each stat panel's range (the load and
     * the idle since) must read "idle", not the last busy value, nor nothing at all (a source idle throughout).
     */
    test('idle again: once the load has stopped, every stat panel reduces its range to "idle" as Grafana reduces it, not to the last busy value', async () => {
      await load?.stop();
      load = undefined;
      const dashboard = JSON.parse(one(manifests, 'ConfigMap', `${rule.metadata.name}-dashboard`).data['kvroute.json']) as {
        panels: { title: string; type: string; options: { reduceOptions?: { calcs: string[] } }; targets: { expr: string }[] }[];
      };
      const stats = dashboard.panels.filter((p) => p.type === 'stat');
      expect(stats.length).toBeGreaterThan(0);
      // The recorded ratios go NaN once their (scaled) window holds no request: wait for that rather than time it.
      await waitFor(async () => {
        for (const p of stats) for (const t of p.targets) if (!(await query(t.expr)).every((r) => r.value[1] === 'NaN')) return false;
        return true;
      }, 'the stat panels\' series to read NaN (idle)', { limitMs: 90_000, intervalMs: 500 });
      const shown: Record<string, (string | number | null)[]> = {};
      for (const p of stats) {
        for (const t of p.targets) {
          // Whole steps back from now, so that the range's last point is now (after the instant query that read NaN).
          const end = Date.now() / 1000;
          const start = end - Math.ceil(end - startedAt);
          const r = await fetch(`${api}/api/v1/query_range?query=${encodeURIComponent(t.expr)}&start=${start}&end=${end}&step=1`);
          const body = await r.json() as { status: string; data: { result: { values: [number, string][] }[] } };
          expect(body.status).toBe('success');
          shown[p.title] = body.data.result.map((series) => {
            const values = series.values.map(([, v]) => Number(v));
            const calc = p.options.reduceOptions?.calcs[0] ?? 'lastNotNull';
            const reduced = calc === 'last' ? values[values.length - 1]
              : calc === 'lastNotNull' ? [...values].reverse().find((v) => v != null && !Number.isNaN(v)) ?? null
              : `unhandled calculation ${calc}`;
            return typeof reduced === 'number' && Number.isNaN(reduced) ? 'idle' : reduced;
          });
        }
      }
      expect(shown).toEqual(Object.fromEntries(stats.map((p) => [p.title, ['idle']])));
    });
  },
);
