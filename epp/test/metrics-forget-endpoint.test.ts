/**
 * A pod that leaves the pool takes its series with it: its picks, its scheduler attempts and its KV-event families
 * (soak 40, F4). Kept, `kvroute_epp_kv_index_blocks` went on reporting a gone pod's last index size, and every pod a
 * rollout or an autoscaler created stayed a series for the EPP's lifetime.
 */
import { FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { createEppMetrics } from '../src/metrics';
import { startEpp, type Logger } from '../src/runner';
import { FakeEnvoy, requestBody, requestHeaders, setHeaders, waitFor } from './extproc-harness';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('forgetEndpoint', () => {
  const a = { key: '10.0.0.1:8000', name: 'decode-a-rank-0', podName: 'decode-a', namespace: 'llm', port: 8000 };
  const b = { key: '10.0.0.2:8000', name: 'decode-b-rank-0', podName: 'decode-b', namespace: 'llm', port: 8000 };

  function filled() {
    const metrics = createEppMetrics();
    for (const ep of [a, b]) {
      metrics.scheduling.countPick(ep.key);
      metrics.collectors.schedulerAttempts.inc({ status: 'success', target_model_name: 'm', pod_name: ep.podName, namespace: ep.namespace, port: String(ep.port) });
      metrics.scheduling.countKvEvents(ep.key, 'received', 3);
      metrics.scheduling.countKvEventGap(ep.key);
      metrics.scheduling.countKvEventReplay(ep.key, 'repaired');
      metrics.scheduling.countKvIndexReset(ep.key, 'gap');
      metrics.scheduling.setKvIndexBlocks(ep.key, 42);
    }
    return metrics;
  }

  it('drops every series labelled by the endpoint that left, and only those', async () => {
    const metrics = filled();
    const before = await metrics.registry.metrics();
    for (const ep of [a, b]) {
      expect(before).toContain(`kvroute_epp_kv_index_blocks{model_server_pod="${ep.key}"} 42`);
      expect(before).toContain(`kvroute_epp_picks_total{destination_endpoint="${ep.key}"} 1`);
    }
    metrics.forgetEndpoint(a);
    const after = await metrics.registry.metrics();
    expect(after).not.toContain(a.key);
    expect(after).not.toContain(`pod_name="${a.podName}"`);
    for (const family of ['kv_events_total', 'kv_event_gaps_total', 'kv_event_replays_total', 'kv_index_resets_total', 'kv_index_blocks']) {
      expect(after).toMatch(new RegExp(`^kvroute_epp_${family}\\{model_server_pod="${b.key.replace(/\./g, '\\.')}"`, 'm'));
    }
    expect(after).toContain(`kvroute_epp_picks_total{destination_endpoint="${b.key}"} 1`);
    expect(after).toContain(`pod_name="${b.podName}",namespace="llm",port="8000"} 1`);
  });

  it('an endpoint that comes back counts again from zero (a held series is resolved anew)', async () => {
    const metrics = filled();
    metrics.forgetEndpoint(a);
    metrics.scheduling.countPick(a.key);
    metrics.scheduling.countPick(a.key);
    expect(await metrics.registry.metrics()).toContain(`kvroute_epp_picks_total{destination_endpoint="${a.key}"} 2`);
  });

  it('another rank of the same pod keeps its scheduler attempts (pod, namespace and port all match)', async () => {
    const metrics = filled();
    metrics.collectors.schedulerAttempts.inc({ status: 'success', target_model_name: 'm', pod_name: 'decode-a', namespace: 'llm', port: '8001' });
    metrics.forgetEndpoint(a);
    const after = await metrics.registry.metrics();
    expect(after).toContain('pod_name="decode-a",namespace="llm",port="8001"} 1');
    expect(after).not.toContain('pod_name="decode-a",namespace="llm",port="8000"}');
  });
});

test('the running EPP forgets a removed endpoint\'s series on /metrics', async () => {
  const pods = [await FakeVllmServer.start(), await FakeVllmServer.start()];
  const keys = pods.map((p) => `127.0.0.1:${p.port}`);
  const epp = await startEpp(parseArgs(['--endpoints', keys.join(','), '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1'])!, quiet);
  const envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
  const page = async (): Promise<string> => (await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`)).text();
  try {
    await waitFor(() => epp.datastore.snapshot().every((s) => s.metrics.updateTime > 0));
    // Distinct prompts until both pods have been picked.
    const picked = new Set<string>();
    for (let i = 0; picked.size < 2 && i < 200; i++) {
      const s = envoy.open();
      s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' }, false));
      s.send(requestBody(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `prompt ${i} `.repeat(40) }] }), true));
      picked.add(setHeaders((await s.next()).request_headers.response.header_mutation)['x-gateway-destination-endpoint']!);
      s.cancel();
    }
    expect([...picked].sort()).toEqual([...keys].sort());
    for (const key of keys) expect(await page()).toContain(`destination_endpoint="${key}"`);
    expect(epp.datastore.removeEndpoint(keys[0]!)).toBe(true);
    const after = await page();
    expect(after).not.toContain(`destination_endpoint="${keys[0]}"`);
    expect(after).not.toContain(`pod_name="${keys[0]}"`);
    expect(after).toContain(`destination_endpoint="${keys[1]}"`);
    expect(after).toContain(`pod_name="${keys[1]}"`);
  } finally {
    envoy.close();
    await epp.stop();
    for (const p of pods) await p.close();
  }
}, INTEGRATION_TEST_TIMEOUT_MS);
