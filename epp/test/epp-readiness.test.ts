/**
 * The EPP's readiness (the gRPC health status its Deployment's readiness probe asks) with the precise scorer: SERVING
 * only once the pool synced and every pod ready then has its KV-event subscription connected (or its warm-up wait ran
 * out), so a new replica enters the EPP Service with an index that receives events. A pool synced with no ready pod is
 * SERVING at once, as GIE's EPP (epp-integration.test.ts). The whole EPP in-process
 * (`startEpp`), real HTTP metrics servers, real ZMQ publishers on loopback.
 */
import * as zmq from 'zeromq';
import { FakeVllmServer, freePort, INTEGRATION_TEST_TIMEOUT_MS, turns, waitFor } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, preciseEndpointPickerConfig, renderEndpointPickerConfig, type EndpointPickerConfig } from '../src/config';
import { parseArgs } from '../src/cli';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The precise config kvroute's manifests render for per-pod events, with the warm-up wait given. */
function perPodConfig(socketPort: number, warmUpTimeout?: string): EndpointPickerConfig {
  const config = preciseEndpointPickerConfig({ mode: 'per-pod', socketPort, blockSize: 16, modelName: 'Qwen/Qwen3-0.6B' });
  if (warmUpTimeout === undefined) return config;
  return {
    ...config,
    plugins: config.plugins.map((p) => (p.type !== 'precise-prefix-cache-scorer' ? p : {
      ...p,
      parameters: { ...p.parameters, kvEventsConfig: { ...p.parameters?.kvEventsConfig, warmUpTimeout } },
    })),
  };
}

describe('EPP readiness', () => {
  let pod: FakeVllmServer;
  let epp: RunningEpp | undefined;
  let publisher: zmq.Publisher | undefined;
  beforeEach(async () => {
    pod = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
  });
  afterEach(async () => {
    await epp?.stop();
    epp = undefined;
    publisher?.close();
    publisher = undefined;
    await pod.close();
  });

  async function start(config: EndpointPickerConfig): Promise<RunningEpp> {
    epp = await startEpp(parseArgs(['--endpoints', `127.0.0.1:${pod.port}`, '--grpc-port', '0', '--grpc-health-port', '0',
      '--metrics-port', '0', '--host', '127.0.0.1', '--config-text', renderEndpointPickerConfig(config)])!, quiet);
    return epp;
  }

  test('precise, per-pod events: NOT_SERVING until the pod\'s KV-event publisher is connected, then SERVING', async () => {
    const socketPort = await freePort();
    const e = await start(perPodConfig(socketPort));
    // The pool synced (static endpoints) and the pod is scraped: everything the approximate EPP waits for.
    await waitFor(() => e.datastore.snapshot().every((s) => s.metrics.updateTime > 0));
    expect(e.datastore.poolSynced && e.datastore.readyCount).toBe(1);
    await turns(20);
    expect(e.serving).toBe(false);
    // The pod's vLLM binds its publisher: the subscription's reconnect finds it, the EPP becomes ready.
    publisher = new zmq.Publisher();
    await publisher.bind(`tcp://127.0.0.1:${socketPort}`);
    await waitFor(() => e.serving, 'SERVING after the KV-event subscription connected');
  });

  test('a pod whose publisher never comes up keeps the EPP unready for its warm-up wait only', async () => {
    const e = await start(perPodConfig(await freePort(), '300ms'));
    await waitFor(() => e.serving, 'SERVING once the warm-up wait ran out');
  });

  test('warm-up gates the first SERVING only: a pod added later never takes a serving EPP out of its Service', async () => {
    const socketPort = await freePort();
    publisher = new zmq.Publisher();
    await publisher.bind(`tcp://127.0.0.1:${socketPort}`);
    const e = await start(perPodConfig(socketPort));
    await waitFor(() => e.serving);
    // 127.0.0.2: loopback, but no publisher (nor metrics server) there; its subscription keeps retrying.
    e.datastore.upsertEndpoint({ key: '127.0.0.2:8000', name: 'late', namespace: '', address: '127.0.0.2', port: 8000, labels: {} });
    await turns(20);
    expect(e.serving).toBe(true);
  });

  test('a configured session store does not gate readiness: the EPP serves with the store unreachable', async () => {
    const config = defaultEndpointPickerConfig();
    const unreachable = `redis://127.0.0.1:${await freePort()}`;
    const e = await start({
      ...config,
      plugins: config.plugins.map((p) => (p.type !== 'session-affinity-filter' ? p : {
        ...p, parameters: { ...p.parameters, sessionStore: { address: unreachable } },
      })),
    });
    await waitFor(() => e.serving, 'SERVING without the store');
  });
});
