/**
 * What a `session_id` binding names when pods leave and come back: the pod, not its address. llm-d-router v0.10.0 binds
 * a session to the endpoint's ID, its NamespacedName (`util/sessionaffinity/session_id.go` PreRequest → pickedPodName:
 * `md.ID.String()`; Choose compares `endpoint.GetMetadata().ID.String() == podName`), and file discovery gives an entry
 * the ID {namespace, name} (`datalayer/discovery/file/plugin.go` load: `ID: types.NamespacedName{Name: e.Name, ...}`),
 * as GIE's datastore keys pods by name. So:
 *  - an address:port taken over by another pod (another name: Kubernetes reuses pod IPs, every vLLM pod serves one
 *    port) is not the session's pod: the binding's pod is absent, the filter passes every candidate, the scorers pick,
 *    and PreRequest moves the binding there;
 *  - a pod that comes back under its name at another address is still the session's pod.
 * Nothing clears a binding when its pod leaves (upstream's neither): a name no longer among the candidates rebinds.
 * Real EPP, real file discovery (atomic rewrites), real metrics servers, a real ext_proc stream.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { FakeEnvoy, requestBody, requestHeaders, setHeaders, waitFor } from './extproc-harness';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const HEAD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';

/** The session plugin under test, then queue-scorer (the idle pod wins when the session names no candidate). */
const FILTER = `- {type: session-affinity-filter, parameters: {strategy: session_id}}\n- {type: queue-scorer}\n` +
  'schedulingProfiles:\n- name: default\n  plugins:\n  - {pluginRef: session-affinity-filter}\n  - {pluginRef: queue-scorer}\n';
const SCORER = `- {type: session-affinity-scorer, parameters: {strategy: session_id}}\n- {type: queue-scorer}\n` +
  'schedulingProfiles:\n- name: default\n  plugins:\n  - {pluginRef: session-affinity-scorer, weight: 2}\n  - {pluginRef: queue-scorer, weight: 1}\n';

describe.each([['session-affinity-filter', FILTER], ['session-affinity-scorer', SCORER]])('%s strategy session_id across pods leaving and joining', (_name, plugins) => {
  let dir = '';
  let pods: FakeVllmServer[] = [];
  let epp: RunningEpp | undefined;
  let envoy: FakeEnvoy | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-session-identity-'));
  });
  afterEach(async () => {
    envoy?.close();
    envoy = undefined;
    await epp?.stop();
    epp = undefined;
    await Promise.all(pods.map((p) => p.close()));
    pods = [];
    rmSync(dir, { recursive: true, force: true });
  });

  const yaml = (entries: ReadonlyArray<{ name: string; port: number }>) =>
    `endpoints:\n${entries.map((e) => `  - {name: ${e.name}, address: "127.0.0.1", port: "${e.port}"}`).join('\n')}\n`;
  const write = (path: string, text: string) => {
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  };
  /** Waits until the pool is exactly these (name, port) pairs, each scraped. */
  const poolIs = (entries: ReadonlyArray<{ name: string; port: number }>) => waitFor(() => {
    const snap = epp!.datastore.snapshot();
    const want = entries.map((e) => `${e.name}@127.0.0.1:${e.port}`).sort().join();
    return snap.map((s) => `${s.endpoint.name}@${s.endpoint.key}`).sort().join() === want && snap.every((s) => s.metrics.updateTime > 0);
  });
  async function pick(session: string): Promise<string> {
    const s = envoy!.open();
    s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json', 'x-session-id': session }, false));
    s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt: 'hello' })), true));
    const first = await s.next();
    s.cancel();
    return setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint'] as string;
  }
  async function start(path: string, entries: ReadonlyArray<{ name: string; port: number }>) {
    write(path, yaml(entries));
    const config = `${HEAD}plugins:\n- {name: files, type: file-discovery, parameters: {path: ${JSON.stringify(path)}, watchFile: true}}\n${plugins}` +
      'dataLayer:\n  discovery: {pluginRef: files}\n';
    epp = await startEpp(parseArgs(['--config-text', config, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
      '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms'], {})!, quiet);
    envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    await poolIs(entries);
  }

  test('an address:port another pod (another name) took over is not the session\'s pod: the session goes where the scorers pick', async () => {
    // busy: the address the session's pod had, queue 2 (under every saturation threshold); idle: queue 0.
    const busy = await FakeVllmServer.start({ engines: [{ waiting: 2, running: 1, kvUsage: 0.1 }] });
    const idle = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    pods = [busy, idle];
    const path = join(dir, 'endpoints.yaml');
    // The session is bound while vllm-0 is the pool's only pod.
    await start(path, [{ name: 'vllm-0', port: busy.port }]);
    expect(await pick('s1')).toBe(`127.0.0.1:${busy.port}`);
    // vllm-0 leaves; a new pod, vllm-7, gets its address and port; vllm-1 joins.
    write(path, yaml([{ name: 'vllm-1', port: idle.port }]));
    await poolIs([{ name: 'vllm-1', port: idle.port }]);
    write(path, yaml([{ name: 'vllm-7', port: busy.port }, { name: 'vllm-1', port: idle.port }]));
    await poolIs([{ name: 'vllm-7', port: busy.port }, { name: 'vllm-1', port: idle.port }]);
    // Control: a session with no binding goes to the idle pod.
    expect(await pick('unbound-1')).toBe(`127.0.0.1:${idle.port}`);
    // Upstream: default/vllm-0 is no candidate → no pin, queue-scorer picks vllm-1, and the binding moves there.
    expect(await pick('s1')).toBe(`127.0.0.1:${idle.port}`);
    expect(await pick('s1')).toBe(`127.0.0.1:${idle.port}`);
  });

  test('the same at once (one rewrite renames the entry at that address:port)', async () => {
    const busy = await FakeVllmServer.start({ engines: [{ waiting: 2, running: 1, kvUsage: 0.1 }] });
    const idle = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    pods = [busy, idle];
    const path = join(dir, 'endpoints.yaml');
    await start(path, [{ name: 'vllm-0', port: busy.port }]);
    expect(await pick('s2')).toBe(`127.0.0.1:${busy.port}`);
    write(path, yaml([{ name: 'vllm-7', port: busy.port }, { name: 'vllm-1', port: idle.port }]));
    await poolIs([{ name: 'vllm-7', port: busy.port }, { name: 'vllm-1', port: idle.port }]);
    expect(await pick('unbound-2')).toBe(`127.0.0.1:${idle.port}`);
    expect(await pick('s2')).toBe(`127.0.0.1:${idle.port}`);
  });

  test('a pod that comes back under its name at another address is still the session\'s pod', async () => {
    const first = await FakeVllmServer.start({ engines: [{ waiting: 2, running: 1, kvUsage: 0.1 }] });
    const other = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    const moved = await FakeVllmServer.start({ engines: [{ waiting: 2, running: 1, kvUsage: 0.1 }] });
    pods = [first, other, moved];
    const path = join(dir, 'endpoints.yaml');
    await start(path, [{ name: 'vllm-0', port: first.port }]);
    expect(await pick('s3')).toBe(`127.0.0.1:${first.port}`);
    // Control: while vllm-0 has not moved, the session stays on it against an idle vllm-1.
    write(path, yaml([{ name: 'vllm-0', port: first.port }, { name: 'vllm-1', port: other.port }]));
    await poolIs([{ name: 'vllm-0', port: first.port }, { name: 'vllm-1', port: other.port }]);
    expect(await pick('s3')).toBe(`127.0.0.1:${first.port}`);
    // vllm-0 is re-created at a new address (here: port); vllm-1 joins, idle.
    write(path, yaml([{ name: 'vllm-0', port: moved.port }, { name: 'vllm-1', port: other.port }]));
    await poolIs([{ name: 'vllm-0', port: moved.port }, { name: 'vllm-1', port: other.port }]);
    // Upstream: default/vllm-0 is a candidate → the filter keeps it alone / the scorer's 2 outweighs the queue's 1.
    expect(await pick('s3')).toBe(`127.0.0.1:${moved.port}`);
  });
});
