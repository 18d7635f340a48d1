import { FakeVllmServer } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { FakeEnvoy, waitFor } from './extproc-harness';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * The whole EPP over `--endpoints` of idle fake vLLM metrics servers, driven by a FakeEnvoy, for the calling
 * `describe` (its afterEach is registered here). `start` resolves once every pod has been scraped.
 */
export function liveEpp() {
  const live = {
    pods: [] as FakeVllmServer[],
    epp: undefined as RunningEpp | undefined,
    envoy: undefined as FakeEnvoy | undefined,
    async start(podCount: number, ...flags: string[]): Promise<void> {
      live.pods = await Promise.all(Array.from({ length: podCount }, () => FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] })));
      const epp = await startEpp(parseArgs(['--endpoints', live.pods.map((p) => `127.0.0.1:${p.port}`).join(','), '--grpc-port', '0', '--grpc-health-port', '0',
        '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms', ...flags], {})!, quiet);
      live.epp = epp;
      live.envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
      await waitFor(() => epp.datastore.snapshot().every((s) => s.metrics.updateTime > 0));
    },
    /** The EPP's `/metrics` page. */
    async metrics(): Promise<string> {
      return (await fetch(`http://127.0.0.1:${live.epp!.metricsPort}/metrics`)).text();
    },
    async stop(): Promise<void> {
      live.envoy?.close();
      live.envoy = undefined;
      await live.epp?.stop();
      live.epp = undefined;
      await Promise.all(live.pods.map((p) => p.close()));
      live.pods = [];
    },
  };
  afterEach(() => live.stop());
  return live;
}
