/**
 * llm-d-router v0.10.0's file discovery: the EPP with no Kubernetes, its pool read from a file
 * (`pkg/epp/framework/plugins/datalayer/discovery/file/plugin.go`, `cmd/epp/runner/runner.go` runWithFileDiscovery,
 * `docs/discovery.md`), and the `dataLayer` fields v0.10.0 added beside it (`apix/config/v1alpha1/
 * endpointpickerconfig_types.go` DataLayerConfig). The end-to-end cases run the whole EPP against real metrics servers
 * and drive it over a real ext_proc stream.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { parseArgs, UsageError } from '../src/cli';
import { endpointPickerConfigNotes, parseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { FileDiscovery, MAX_ENDPOINTS_FILE_BYTES, parseEndpointsFile } from '../src/datastore/file-discovery';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { FakeEnvoy, requestBody, requestHeaders, setHeaders, waitFor } from './extproc-harness';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const HEAD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';

describe('file-discovery endpoints file (llm-d-router v0.10.0 discovery/file/plugin.go load)', () => {
  test("docs/discovery.md's example: names, the default namespace, labels, address:port keys", () => {
    const r = parseEndpointsFile([
      'endpoints:',
      '  - name: vllm-0',
      '    address: "10.0.0.1"',
      '    port: "8000"',
      '    labels:',
      '      model: llama-3-8b',
      '  - name: tp-rank-1',
      '    namespace: inference',
      '    address: "192.168.1.11"',
      '    port: "8000"',
      '    labels: {rank: "1"}',
    ].join('\n'), 'f.yaml');
    expect(r.entryErrors).toEqual([]);
    expect(r.endpoints).toEqual([
      { key: '10.0.0.1:8000', name: 'vllm-0', namespace: 'default', address: '10.0.0.1', port: 8000, labels: { model: 'llama-3-8b' } },
      { key: '192.168.1.11:8000', name: 'tp-rank-1', namespace: 'inference', address: '192.168.1.11', port: 8000, labels: { rank: '1' } },
    ]);
  });

  test('JSON is read as well, and an empty file or a missing list is an empty pool', () => {
    expect(parseEndpointsFile('{"endpoints":[{"name":"a","address":"10.0.0.1","port":"80"}]}', 'f.json').endpoints.map((e) => e.key)).toEqual(['10.0.0.1:80']);
    expect(parseEndpointsFile('', 'f').endpoints).toEqual([]);
    expect(parseEndpointsFile('endpoints: []\n', 'f').endpoints).toEqual([]);
    expect(parseEndpointsFile('other: 1\n', 'f').endpoints).toEqual([]);
  });

  test('a port is a string (a Go string field): an unquoted number fails the whole file, naming the fix', () => {
    expect(() => parseEndpointsFile('endpoints:\n  - {name: a, address: "10.0.0.1", port: 8000}\n', 'f.yaml'))
      .toThrow('endpoints file f.yaml: endpoints[0].port: must be a string (quote it: port: "8000"), got number 8000');
    expect(() => parseEndpointsFile('endpoints:\n  - {name: a, address: "10.0.0.1", port: "1", labels: {rank: 0}}\n', 'f.yaml'))
      .toThrow('endpoints[0].labels.rank: must be a string (quote it), got number 0');
    expect(() => parseEndpointsFile('endpoints: {a: 1}\n', 'f.yaml')).toThrow('endpoints: must be a list, got a map');
    expect(() => parseEndpointsFile('- a\n', 'f.yaml')).toThrow('must be a map with an "endpoints" list, got a list');
    expect(() => parseEndpointsFile('endpoints: [a: b: c\n', 'f.yaml')).toThrow('not valid YAML or JSON');
  });

  test('invalid addresses and ports skip their entry, the rest apply (validateIPv4Address, strconv.Atoi in 1-65535)', () => {
    const r = parseEndpointsFile([
      'endpoints:',
      '  - {name: ok, address: "10.0.0.1", port: "8000"}',
      '  - {name: host, address: "vllm-0.local", port: "8000"}',
      '  - {name: v6, address: "::1", port: "8000"}',
      '  - {name: zero, address: "10.0.0.2", port: "0"}',
      '  - {name: big, address: "10.0.0.3", port: "65536"}',
      '  - {name: text, address: "10.0.0.4", port: "http"}',
      '  - {name: plus, address: "10.0.0.5", port: "+8001"}',
      '  - {address: "10.0.0.6", port: "8000"}',
    ].join('\n'), 'f');
    expect(r.endpoints.map((e) => e.name)).toEqual(['ok', 'plus']);
    expect(r.endpoints[1]!.port).toBe(8001);
    expect(r.entryErrors).toEqual([
      'endpoint "host": invalid IPv4 address "vllm-0.local"',
      'endpoint "v6": invalid IPv4 address "::1"',
      'endpoint "zero": invalid port "0"',
      'endpoint "big": invalid port "65536"',
      'endpoint "text": invalid port "http"',
      'endpoints[7]: name is required',
    ]);
  });

  test('a repeated namespace/name: the last entry wins ("last Upsert wins"); one address:port under two names: the later is kept, with a warning', () => {
    const r = parseEndpointsFile([
      'endpoints:',
      '  - {name: a, address: "10.0.0.1", port: "8000"}',
      '  - {name: b, address: "10.0.0.2", port: "8000"}',
      '  - {name: a, address: "10.0.0.3", port: "8000"}',
      '  - {name: a, namespace: other, address: "10.0.0.2", port: "8000"}',
    ].join('\n'), 'f');
    expect(r.endpoints.map((e) => `${e.namespace}/${e.name}@${e.key}`)).toEqual(['default/a@10.0.0.3:8000', 'other/a@10.0.0.2:8000']);
    expect(r.warnings).toEqual(['endpoint other/a has the address 10.0.0.2:8000 of default/b: one endpoint, other/a kept']);
  });

  test('field names match case-insensitively and a null label value is "", as Go\'s encoding/json decodes them', () => {
    const r = parseEndpointsFile('endpoints:\n  - {Name: a, ADDRESS: "10.0.0.1", Port: "80", Labels: {tier: null}}\n', 'f');
    expect(r.endpoints).toEqual([{ key: '10.0.0.1:80', name: 'a', namespace: 'default', address: '10.0.0.1', port: 80, labels: { tier: '' } }]);
  });

  test('a file over 1 MiB is refused (maxEndpointsFileSize)', () => {
    expect(() => parseEndpointsFile(`# ${'x'.repeat(MAX_ENDPOINTS_FILE_BYTES)}\nendpoints: []\n`, 'big.yaml')).toThrow('endpoints file big.yaml: exceeds the 1 MiB limit');
  });
});

describe('file-discovery reloads (plugin.go Start: fsnotify re-attach, load)', () => {
  const entry = (name: string, address: string, port = '8000') => `  - {name: ${name}, address: "${address}", port: "${port}"}`;
  let dir: string;
  let ds: Datastore;
  let fd: FileDiscovery | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-file-reload-'));
    ds = new Datastore({ scrape: false });
  });
  afterEach(async () => {
    await fd?.stop();
    fd = undefined;
    await ds.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const keys = () => ds.snapshot().map((s) => s.endpoint.key).sort().join();

  test("a ConfigMap update (kubelet's atomic writer: a new ..<timestamp> directory, ..data_tmp renamed over ..data) reloads the file", async () => {
    const version = (n: number, text: string) => {
      mkdirSync(join(dir, `..v${n}`));
      writeFileSync(join(dir, `..v${n}`, 'endpoints.yaml'), text);
      return `..v${n}`;
    };
    symlinkSync(version(1, `endpoints:\n${entry('a', '10.0.0.1')}\n`), join(dir, '..data'));
    symlinkSync('..data/endpoints.yaml', join(dir, 'endpoints.yaml'));
    fd = new FileDiscovery(ds, { path: join(dir, 'endpoints.yaml'), watchFile: true });
    await fd.start();
    expect(keys()).toBe('10.0.0.1:8000');
    symlinkSync(version(2, `endpoints:\n${entry('b', '10.0.0.2')}\n`), join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await waitFor(() => keys() === '10.0.0.2:8000');
  });

  test('a reload with an invalid entry applies the valid ones and drops what the file no longer lists (load: errors joined after the Upserts and Deletes)', async () => {
    const path = join(dir, 'endpoints.yaml');
    writeFileSync(path, `endpoints:\n${entry('a', '10.0.0.1')}\n${entry('b', '10.0.0.2')}\n`);
    fd = new FileDiscovery(ds, { path, watchFile: true });
    await fd.start();
    expect(keys()).toBe('10.0.0.1:8000,10.0.0.2:8000');
    writeFileSync(path, `endpoints:\n${entry('a', '10.0.0.1')}\n${entry('b', 'vllm-1')}\n${entry('c', '10.0.0.3')}\n`);
    await waitFor(() => keys() === '10.0.0.1:8000,10.0.0.3:8000');
    expect(fd.lastError?.message).toBe(`endpoints file ${path}: endpoint "b": invalid IPv4 address "vllm-1"`);
  });
});

describe('dataLayer fields of llm-d-router v0.10.0 (apix/config/v1alpha1 DataLayerConfig)', () => {
  const plugins = 'plugins:\n- {name: files, type: file-discovery, parameters: {path: /etc/epp/endpoints.yaml}}\n- {type: queue-scorer}\n';
  const load = (text: string) => parseEndpointPickerConfig(HEAD + text);

  test("discovery names a file-discovery plugin; sources may be left out (omitempty); watchFile defaults to false", () => {
    const c = load(`${plugins}dataLayer:\n  discovery: {pluginRef: files}\n`);
    expect(c.dataLayer).toEqual({ sources: [], discovery: { pluginRef: 'files' } });
    expect(c.plugins[0]).toEqual({ type: 'file-discovery', name: 'files', parameters: { path: '/etc/epp/endpoints.yaml', watchFile: false } });
  });

  test('discovery naming a missing plugin or one of another type, and file-discovery without a path, are errors naming the field', () => {
    expect(() => load(`${plugins}dataLayer:\n  discovery: {pluginRef: nope}\n`)).toThrow('dataLayer.discovery.pluginRef: no plugin named "nope"');
    expect(() => load(`${plugins}dataLayer:\n  discovery: {pluginRef: queue-scorer}\n`)).toThrow('dataLayer.discovery.pluginRef: "queue-scorer" is a queue-scorer; allowed here: file-discovery');
    expect(() => load('plugins:\n- {type: file-discovery}\n')).toThrow("plugins[0].parameters.path: is required: the endpoints file");
    expect(() => load('plugins:\n- {type: file-discovery, parameters: {path: /f, watchFile: "yes"}}\n')).toThrow('plugins[0].parameters.watchFile: must be true or false, got "yes"');
  });

  test('injectDefaults is a boolean; crossReplicaSyncInterval a duration; crossReplicaSyncerPluginRef refused, as no v0.10.0 plugin is a CrossReplicaSyncer (configloader.go buildDataLayerConfig)', () => {
    expect(load(`${plugins}dataLayer: {injectDefaults: false, crossReplicaSyncInterval: 500ms}\n`).dataLayer).toEqual({ sources: [], injectDefaults: false, crossReplicaSyncInterval: '500ms' });
    expect(() => load(`${plugins}dataLayer: {injectDefaults: "no"}\n`)).toThrow('dataLayer.injectDefaults: must be true or false, got "no"');
    expect(() => load(`${plugins}dataLayer: {crossReplicaSyncInterval: 5}\n`)).toThrow('dataLayer.crossReplicaSyncInterval: must be');
    expect(() => load(`${plugins}dataLayer: {crossReplicaSyncerPluginRef: queue-scorer}\n`)).toThrow('dataLayer.crossReplicaSyncerPluginRef: no cross-replica syncer plugin exists');
  });

  test("docs/discovery.md's config loads as upstream loads it: the handler's parameters ignored (factory takes `_ *json.Decoder`), the handler skipped in the profile (scheduler_profile.go AddPlugins), the listed picker added", () => {
    const c = load([
      'plugins:',
      '  - {name: file-disc, type: file-discovery, parameters: {path: /etc/epp/endpoints.yaml, watchFile: true}}',
      '  - {name: kv-cache-scorer, type: kv-cache-utilization-scorer}',
      '  - {name: random-picker, type: random-picker}',
      '  - {name: single-profile, type: single-profile-handler, parameters: {scorer: kv-cache-scorer, picker: random-picker}}',
      'schedulingProfiles:',
      '  - name: default',
      '    plugins:',
      '      - pluginRef: single-profile',
      'dataLayer:',
      '  discovery:',
      '    pluginRef: file-disc',
    ].join('\n'));
    expect(c.schedulingProfiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'random-picker' }] }]);
    expect(c.plugins.find((p) => p.name === 'single-profile')).toEqual({ type: 'single-profile-handler', name: 'single-profile' });
    expect(endpointPickerConfigNotes(c)).toEqual([
      'plugins[3].parameters: single-profile-handler takes no parameters; ignored as upstream ignores them (scorer, picker)',
      'schedulingProfiles[0].plugins[0].pluginRef: "single-profile" is a single-profile-handler, which acts outside profiles (a profile holds filters, scorers and a picker); skipped as upstream skips it',
    ]);
  });
});

describe('the EPP in file-discovery mode (runner.go runWithFileDiscovery), end to end', () => {
  const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
  let dir: string;
  let pods: FakeVllmServer[] = [];
  let epp: RunningEpp | undefined;
  let envoy: FakeEnvoy | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-file-discovery-'));
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

  const endpointsYaml = (entries: ReadonlyArray<{ name: string; port: number }>) =>
    `endpoints:\n${entries.map((e) => `  - {name: ${e.name}, address: "127.0.0.1", port: "${e.port}", labels: {pod: ${e.name}}}`).join('\n')}\n`;
  /** Replaces the file as an editor's safe write or a ConfigMap update does: a new inode renamed over the old. */
  const replaceAtomically = (path: string, text: string) => {
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  };
  const configFor = (path: string, extra = '') =>
    `${HEAD}plugins:\n- {name: files, type: file-discovery, parameters: {path: ${JSON.stringify(path)}, watchFile: true}}\n- {type: queue-scorer}\n` +
    `dataLayer:\n  discovery: {pluginRef: files}\n${extra}`;

  async function pick(): Promise<string> {
    const s = envoy!.open();
    s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json' }, false));
    s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt: 'hello' })), true));
    const first = await s.next();
    s.cancel();
    return setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint'] as string;
  }

  test('with no --pool-name and no Kubernetes, the pool is the file\'s endpoints, named "epp"; a rewritten file (atomic rename) moves it; an unparsable one changes nothing', async () => {
    pods = await Promise.all([0, 1, 2].map(() => FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] })));
    const path = join(dir, 'endpoints.yaml');
    writeFileSync(path, endpointsYaml([{ name: 'vllm-0', port: pods[0]!.port }, { name: 'vllm-1', port: pods[1]!.port }]));
    epp = await startEpp(parseArgs(['--config-text', configFor(path), '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
      '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms'], {})!, quiet);
    expect(epp.serving).toBe(true);
    const keys = (p: FakeVllmServer[]) => p.map((s) => `127.0.0.1:${s.port}`).sort();
    expect(epp.datastore.snapshot().map((s) => s.endpoint.key).sort()).toEqual(keys(pods.slice(0, 2)));
    expect(epp.datastore.snapshot().map((s) => [s.endpoint.name, s.endpoint.namespace, s.endpoint.labels.pod])).toEqual(
      expect.arrayContaining([['vllm-0', 'default', 'vllm-0'], ['vllm-1', 'default', 'vllm-1']]));
    envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    expect(keys(pods.slice(0, 2))).toContain(await pick());
    // The pool gauge counts pods with a fresh scrape, and nothing above waited for one: the pick does not need it (a
    // pod whose first scrapes failed is routed to), and a loaded machine read 0 here. Wait for the count; a wrong pool
    // name or endpoint count never matches.
    const page = async () => (await fetch(`http://127.0.0.1:${epp!.metricsPort}/metrics`)).text();
    await waitFor(async () => /inference_pool_ready_pods\{name="epp"\} 2/.test(await page()), 'both file endpoints counted ready in the pool named "epp"');

    replaceAtomically(path, endpointsYaml([{ name: 'vllm-2', port: pods[2]!.port }]));
    await waitFor(() => epp!.datastore.snapshot().map((s) => s.endpoint.key).join() === `127.0.0.1:${pods[2]!.port}`);
    expect(await pick()).toBe(`127.0.0.1:${pods[2]!.port}`);

    // Unparsable: upstream's load returns before any Upsert or Delete, so the pool stays.
    writeFileSync(path, 'endpoints: [oops\n');
    await waitFor(() => epp!.datastore.snapshot().length === 1 && /not valid YAML/.test(String(lastErrorOf(epp!))));
    expect(await pick()).toBe(`127.0.0.1:${pods[2]!.port}`);
    // In place (a write, not a rename) is seen too.
    writeFileSync(path, endpointsYaml([{ name: 'vllm-0', port: pods[0]!.port }]));
    await waitFor(() => epp!.datastore.snapshot().map((s) => s.endpoint.key).join() === `127.0.0.1:${pods[0]!.port}`);
  });

  test('a file with an invalid entry fails start-up (Start: "initial load failed"), naming the entry', async () => {
    const path = join(dir, 'endpoints.yaml');
    writeFileSync(path, 'endpoints:\n  - {name: a, address: "127.0.0.1", port: "8000"}\n  - {name: b, address: "vllm-1", port: "8000"}\n');
    await expect(startEpp(parseArgs(['--config-text', configFor(path), '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1'], {})!, quiet))
      .rejects.toThrow(`endpoints file ${path}: endpoint "b": invalid IPv4 address "vllm-1"`);
    await expect(startEpp(parseArgs(['--config-text', configFor(join(dir, 'missing.yaml')), '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1'], {})!, quiet))
      .rejects.toThrow('missing.yaml: cannot be read');
  });

  test('--endpoints beside a config that names a discovery is a usage error; no discovery and neither flag is one too', async () => {
    const path = join(dir, 'endpoints.yaml');
    writeFileSync(path, 'endpoints: []\n');
    await expect(startEpp(parseArgs(['--config-text', configFor(path), '--endpoints', '127.0.0.1:1'], {})!, quiet)).rejects.toThrow(UsageError);
    await expect(startEpp(parseArgs(['--config-text', configFor(path), '--endpoints', '127.0.0.1:1'], {})!, quiet))
      .rejects.toThrow('--endpoints and the config\'s dataLayer.discovery ("files") both list the pool\'s endpoints: give one');
    await expect(startEpp(parseArgs(['--config-text', `${HEAD}plugins:\n- {type: queue-scorer}\n`], {})!, quiet))
      .rejects.toThrow('one of --pool-name (Kubernetes discovery) or --endpoints (static) is required, or a config whose dataLayer.discovery names a file-discovery plugin');
  });

  test('injectDefaults: false with no metrics-data-source listed scrapes nothing and still routes; listing one scrapes (docs/architecture.md "DataLayer")', async () => {
    pods = [await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] })];
    const path = join(dir, 'endpoints.yaml');
    writeFileSync(path, endpointsYaml([{ name: 'vllm-0', port: pods[0]!.port }]));
    const args = (config: string) => parseArgs(['--config-text', config, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms'], {})!;
    epp = await startEpp(args(configFor(path).replace('discovery: {pluginRef: files}', 'discovery: {pluginRef: files}\n  injectDefaults: false')), quiet);
    envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    expect(await pick()).toBe(`127.0.0.1:${pods[0]!.port}`);
    await new Promise((resolve) => setTimeout(resolve, 200)); // ten scrape intervals
    expect(pods[0]!.requests).toBe(0);
    // No pod has fresh metrics, so none counts as ready in the pool gauge (datalayer/logger/logger.go podsWithFreshMetrics).
    expect(await (await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`)).text()).toMatch(/inference_pool_ready_pods\{name="epp"\} 0/);
    envoy.close();
    await epp.stop();

    const withSource = configFor(path)
      .replace('- {type: queue-scorer}\n', '- {type: queue-scorer}\n- {type: metrics-data-source}\n- {type: core-metrics-extractor}\n')
      .replace('discovery: {pluginRef: files}', 'discovery: {pluginRef: files}\n  injectDefaults: false\n  sources: [{pluginRef: metrics-data-source, extractors: [{pluginRef: core-metrics-extractor}]}]');
    epp = await startEpp(args(withSource), quiet);
    await waitFor(() => pods[0]!.requests > 0);
  });
});

function lastErrorOf(epp: RunningEpp): string | undefined {
  return epp.discoveryError?.message;
}
