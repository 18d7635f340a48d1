/**
 * The local request path the end-to-end tests drive: simulated vLLM pods on fixed ports, the EPP (in-process, static
 * `--endpoints`, a config text) and the gateway playing Envoy in front.
 */
import * as http from 'node:http';
import { parseArgs, startEpp, type RunningEpp } from '@kvroute/epp';
import { startGateway, type Gateway } from '@kvroute/gateway';
import { startSimulator, type Simulator, type StartOptions } from '@kvroute/sim';
import { waitFor } from '@kvroute/testkit';

/** Bounds a hung wait only: on a loaded 2-core machine loading the tokenizer and starting the sims can exceed 20 s. */
export const HUNG = { limitMs: 60_000 };

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

export interface LocalPath {
  readonly epp: RunningEpp;
  readonly sims: Simulator[];
  readonly gateway: Gateway;
}

/** The EPP over `ports` with `configText`, one simulator per port with `simOptions(port)`, the gateway in front. */
export async function startLocalPath(ports: readonly number[], configText: string, simOptions: (port: number) => StartOptions): Promise<LocalPath> {
  // The simulators first, on the ports the caller reserved (`freePort` released them): an EPP started before them
  // scrapes ports where nothing listens yet, and each refused connection takes a local port from the same ephemeral
  // range, which can be another reserved port (a CI run failed a simulator's listen with EADDRINUSE that way).
  const sims = await Promise.all(ports.map((port) => startSimulator({ host: '127.0.0.1', port, ...simOptions(port) })));
  const epp = await startEpp(parseArgs(['--endpoints', ports.map((p) => `127.0.0.1:${p}`).join(','), '--grpc-port', '0', '--grpc-health-port', '0',
    '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '50ms', '--config-text', configText])!, quiet).catch(async (e: unknown) => {
    await Promise.all(sims.map((s) => s.close()));
    throw e;
  });
  // The gateway waits 10 s for each EPP answer, not the EnvoyFilter's 1 s: these tests assert where requests were
  // routed, and a process stalled past 1 s between the EPP's receipt and its answer (a busy machine, a GC pause; shown
  // with a 1.5 s busy-wait in the EPP's pick) fails the request open to round robin, routed elsewhere, a failure of
  // the machine and not of the routing under test. No test here is about fail-open.
  const gateway = await startGateway({ endpoints: ports.map((p) => `127.0.0.1:${p}`), extProc: `127.0.0.1:${epp.grpcPort}`, port: 0, messageTimeoutMs: 10_000 });
  await waitFor(() => epp.serving, 'the EPP to serve', HUNG);
  // And every pod's first page read: until then the EPP holds a request in flow control (every pod's metrics stale).
  // On a loaded 2-core CI run that hold outlasted the gateway's message timeout (then 1 s), and the request failed open
  // to round robin, unrouted: the likely cause of a Responses test's untagged response id in one CI run (2026-12-05).
  await waitFor(() => {
    const pods = epp.datastore.snapshot();
    return pods.length === ports.length && pods.every((pod) => pod.metrics.updateTime > 0);
  }, 'the EPP to read every pod\'s metrics', HUNG);
  return { epp, sims, gateway };
}

/** Stops what started; a partly started path (a failed beforeAll) is fine. */
export async function stopLocalPath(path: Partial<LocalPath> | undefined): Promise<void> {
  await path?.gateway?.close();
  await Promise.all((path?.sims ?? []).map((s) => s.close()));
  await path?.epp?.stop();
}

export function post(url: string, body: unknown, options: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    // A connection per request (agent: false): these posts go straight to the simulated pods too, which close an idle
    // connection at 5 s as uvicorn does, without a Keep-Alive header, while Node's global agent keeps idle sockets for
    // 5 s. Reusing one as the pod closes it is a `read ECONNRESET` (twice on a loaded full run; reproduced by posting at
    // 1 s to a pod with --timeout-keep-alive 1). No test here is about connection reuse.
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...options.headers }, signal: options.signal, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
