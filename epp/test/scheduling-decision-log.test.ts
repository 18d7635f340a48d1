/**
 * The scheduling decision record (`--v 3`): why a request went where it did, each scorer's score for the picked
 * endpoint and the best others. Off by default; GIE logs its scheduler's scores and picks at its debug levels
 * (`max_score_picker.go`, `scorer/latency/plugin.go` @ v1.5.0), kvroute as one line per decision.
 */
import { FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { defaultEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { CycleState } from '../src/scheduling/framework';
import { buildScheduler, DECISION_TOP_CANDIDATES, type SchedulingDecision } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';
import { FakeEnvoy, readStreamedBody, requestBody, requestHeaders, responseHeaders } from './extproc-harness';

const NOW = 1_700_000_000_000;

function pod(i: number, waiting = 0): EndpointSnapshot {
  const name = `p${i}`;
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: NOW, waitingQueueSize: waiting },
    activeRequests: 0,
  };
}

function request(id: string, prompt: string): LLMRequest {
  return { requestId: id, model: 'm', prompt, headers: {}, attributes: new CycleState() };
}

describe('scheduling decision record', () => {
  it('names the pick, each scorer\'s weight and, for the pick and the best others, the total and every score', () => {
    const decisions: SchedulingDecision[] = [];
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => NOW, random: () => 0.5, decisionLog: (d) => decisions.push(d) });
    // Twelve pods, the later ones with a queue, so totals differ.
    const pods = Array.from({ length: 12 }, (_, i) => pod(i, i));
    const result = scheduler.schedule(request('r1', 'x'.repeat(2000)), pods);
    expect(decisions).toHaveLength(1);
    const d = decisions[0]!;
    expect(d).toMatchObject({ requestId: 'r1', profile: 'default', candidates: 12, picked: [result.target.endpoint.key] });
    const weights = Object.fromEntries(
      scheduler.plugins.config.schedulingProfiles[0]!.plugins
        .filter((ref) => ref.weight !== undefined)
        .map((ref) => [ref.pluginRef, ref.weight]),
    );
    expect(d.weights).toEqual(weights);
    expect(d.top).toHaveLength(DECISION_TOP_CANDIDATES);
    expect(d.top[0]!.endpoint).toBe(result.target.endpoint.key);
    for (const entry of d.top) {
      expect(Object.keys(entry.scores).sort()).toEqual(Object.keys(weights).sort());
      // The total is the weighted sum of the scores (each in [0, 1] here), to the record's rounding.
      const sum = Object.entries(entry.scores).reduce((acc, [name, score]) => acc + weights[name]! * Math.min(1, Math.max(0, score)), 0);
      expect(Math.abs(sum - entry.total)).toBeLessThan(0.01);
    }
    const others = d.top.slice(1).map((e) => e.total);
    expect(others).toEqual([...others].sort((a, b) => b - a));
    // The queue-free pods lead the queued ones: the queue scorer's score is in the record.
    expect(d.top.find((e) => e.endpoint === 'p11:8000')).toBeUndefined();
    expect(d.top[0]!.scores['queue-scorer']).toBe(1);
  });

  it('is not built without a decision log', () => {
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => NOW, random: () => 0.5 });
    expect(() => scheduler.schedule(request('r2', 'hello'), [pod(0), pod(1)])).not.toThrow();
  });
});

describe('the EPP logs each decision at --v 3, not below', () => {
  async function decisionsAt(verbosity: string): Promise<Record<string, unknown>[]> {
    const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
    const logger: Logger = {
      debug: (msg, fields) => { if (Number(verbosity) >= 2) lines.push({ msg, fields }); },
      info() {}, warn() {}, error() {},
    };
    const server = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    let epp: RunningEpp | undefined;
    let envoy: FakeEnvoy | undefined;
    try {
      epp = await startEpp(parseArgs(['--endpoints', `127.0.0.1:${server.port}`, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
        '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms', '--shutdown-grace-period', '1s', '--v', verbosity])!, logger);
      const running = epp;
      const deadline = Date.now() + 10_000;
      while (running.datastore.snapshot()[0]?.metrics.updateTime === 0 || running.datastore.snapshot().length === 0) {
        if (Date.now() > deadline) throw new Error('no scrape');
        await new Promise((r) => setTimeout(r, 20));
      }
      envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
      const s = envoy.open();
      s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json', 'x-request-id': 'req-7' }, false));
      s.send(requestBody(JSON.stringify({ model: 'm', prompt: 'hello' }), true));
      await s.next();
      await readStreamedBody(s, 'request_body');
      s.send(responseHeaders({ ':status': '200', 'content-type': 'application/json' }, true));
      await s.next();
      s.end();
      await s.status;
    } finally {
      envoy?.close();
      await epp?.stop();
      await server.close();
    }
    return lines.filter((l) => l.msg === 'scheduling decision').map((l) => l.fields ?? {});
  }

  test('one record per request at 3; none at 2', async () => {
    const at3 = await decisionsAt('3');
    expect(at3).toHaveLength(1);
    expect(at3[0]).toMatchObject({ requestId: 'req-7', profile: 'default', candidates: 1, picked: [expect.stringMatching(/^127\.0\.0\.1:\d+$/)] });
    expect(await decisionsAt('2')).toEqual([]);
  }, INTEGRATION_TEST_TIMEOUT_MS);
});
