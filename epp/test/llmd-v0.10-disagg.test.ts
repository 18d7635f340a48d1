/**
 * llm-d-router v0.10.0's prefill/decode disaggregation (`pkg/epp/framework/plugins/scheduling/profilehandler/disagg/`:
 * `disagg_profile_handler.go`, `prefix_based_pd_decider.go`, `always_disagg_pd_decider.go`, `metrics.go`), with its own
 * sample config (`deploy/config/pd-epp-config.yaml`, loaded verbatim) over a real ext_proc stream to the whole EPP,
 * real metrics servers as the pods, their roles from a file-discovery endpoints file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { parseEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { SchedulingError } from '../src/scheduling/types';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { createEppMetrics } from '../src/metrics';
import { prefixBasedPdDecider } from '../src/scheduling/plugins/prefix-based-pd-decider';
import { createPlugin } from '../src/scheduling/plugin';
import { PREFIX_MATCH } from '../src/scheduling/prefix-match';
import { estimatedPromptTokens } from '../src/scheduling/estimated-tokens';
import { parseAnthropicRequest, parseOpenAiRequest } from '../src/requestcontrol/request-parsers';
import type { Plugin } from '../src/scheduling/framework';
import type { PdDecider } from '../src/scheduling/pd-decider';
import { FakeEnvoy, protocolConfig, requestBody, requestHeaders, responseBody, responseHeaders, setHeaders, waitFor } from './extproc-harness';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';
import { configErrorOf } from './config-error';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** llm-d-router v0.10.0 deploy/config/pd-epp-config.yaml, as published (the handler before its decider). */
const PD_EPP_CONFIG = `# Sample EPP configuration for running with P/D
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  parameters:
    maxPrefixTokensToMatch: 16384
    lruCapacityPerServer: 31250
- type: prefix-cache-scorer
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: prefix-based-pd-decider
- type: prefix-based-pd-decider
  parameters:
    nonCachedTokens: 16
schedulingProfiles:
- name: prefill
  plugins:
  - pluginRef: prefill-filter
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: queue-scorer
    weight: 1
- name: decode
  plugins:
  - pluginRef: decode-filter
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: queue-scorer
    weight: 1
`;

describe('disagg-profile-handler parameters', () => {
  const HEAD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
  const PROFILES = 'schedulingProfiles:\n- name: prefill\n  plugins: [{pluginRef: prefill-filter}]\n- name: decode\n  plugins: [{pluginRef: decode-filter}]\n';
  const build = (plugins: string, profiles = PROFILES) => buildScheduler(parseEndpointPickerConfig(`${HEAD}plugins:\n- {type: prefill-filter}\n- {type: decode-filter}\n${plugins}${profiles}`));

  test('defaults, the nested form, and the flat form v0.9.0 deprecated (deciderPluginName), read into one shape', () => {
    expect(parseEndpointPickerConfig(`${HEAD}plugins:\n- {type: decode-filter}\n- {type: disagg-profile-handler}\nschedulingProfiles:\n- name: decode\n  plugins: [{pluginRef: decode-filter}]\n`).plugins[1])
      .toEqual({ type: 'disagg-profile-handler', name: 'disagg-profile-handler', parameters: { stageOrder: 'decode-first', profiles: { decode: 'decode', prefill: 'prefill', encode: 'encode' }, deciders: {} } });
    const flat = parseEndpointPickerConfig(`${HEAD}plugins:\n- {type: prefill-filter}\n- {type: decode-filter}\n- {type: always-disagg-pd-decider}\n` +
      `- {type: disagg-profile-handler, parameters: {deciderPluginName: always-disagg-pd-decider, decodeProfile: d}}\nschedulingProfiles:\n- name: prefill\n  plugins: [{pluginRef: prefill-filter}]\n- name: d\n  plugins: [{pluginRef: decode-filter}]\n`);
    expect(flat.plugins[3]!.parameters).toEqual({ stageOrder: 'decode-first', profiles: { decode: 'd', prefill: 'prefill', encode: 'encode' }, deciders: { prefill: 'always-disagg-pd-decider' } });
    expect(parseEndpointPickerConfig(`${HEAD}plugins:\n- {type: decode-filter}\n- {type: disagg-profile-handler, parameters: {stageOrder: Prefill_First}}\nschedulingProfiles:\n- name: decode\n  plugins: [{pluginRef: decode-filter}]\n`).plugins[1]!.parameters)
      .toMatchObject({ stageOrder: 'prefill-first' }); // ParseStageOrder ignores case, "-" and "_"
    expect(parseEndpointPickerConfig(`${HEAD}plugins:\n- {type: decode-filter}\n- {type: disagg-profile-handler, parameters: {stageOrder: ""}}\nschedulingProfiles:\n- name: decode\n  plugins: [{pluginRef: decode-filter}]\n`).plugins[1]!.parameters)
      .toMatchObject({ stageOrder: 'decode-first' }); // and takes "" as decode-first
  });

  test('pd-profile-handler: its upstream parameters, the deprecated unused ones included, read into the same shape', () => {
    const config = parseEndpointPickerConfig(`${HEAD}plugins:\n- {type: prefill-filter}\n- {type: decode-filter}\n- {type: always-disagg-pd-decider, name: d}\n- {type: approx-prefix-cache-producer, name: q}\n` +
      `- {type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: q}}\n` +
      `- {type: pd-profile-handler, parameters: {deciderPluginName: d, primaryPort: 0, prefixPluginType: prefix-cache-scorer, prefixPluginName: q, prefixMatchInfoProducerName: q}}\n${PROFILES}`);
    expect(config.plugins.find((p) => p.type === 'pd-profile-handler')!.parameters).toEqual({ decodeProfile: 'decode', prefillProfile: 'prefill', deciderPluginName: 'd', primaryPort: 0 });
    expect(buildScheduler(config).plugin('pd-profile-handler')!.type).toBe('pd-profile-handler');
  });

  /**
   * llm-d-router v0.10.0 `profilehandler/disagg/pd_profile_handler.go`: the handler `Consumes` (Required)
   * PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName(prefixMatchInfoProducerName), and the runner refuses a config
   * where no plugin produces that key and it is no key's default (`pkg/epp/datalayer/data_graph.go`
   * CreateMissingDataProducers: "no default producer found for missing data key ..., consumed by ..."; only the
   * default-named `approx-prefix-cache-producer` is made when unlisted). The producers are the prefix producers (and
   * the precise scorer's legacy producer, `scorer/preciseprefixcache/legacy_producer.go`), by name.
   */
  /**
   * llm-d-router v0.10.0 `profilehandler/disagg/pd_profile_handler.go`: `prefixPluginName` carries a `pluginRef` tag
   * (and takes `prefixPluginType` when empty, PdProfileHandlerConfigParser), and the handler is registered with its
   * plugin dependencies (`cmd/epp/runner/runner.go` RegisterDeprecatedWithPluginDependencies), so the loader refuses a
   * name no configured plugin has (`pkg/epp/config/loader/configloader.go` buildPluginDAG: "a plugin has a dependency on
   * the unregistered plugin"), whatever its type, though the handler never reads it.
   */
  test('pd-profile-handler prefixPluginName (else prefixPluginType) must name a configured plugin, as llm-d-router v0.10.0 configloader.go buildPluginDAG requires of its pluginRef', () => {
    const pd = (parameters: string) => `${HEAD}plugins:\n- {type: prefill-filter}\n- {type: decode-filter}\n- {type: always-disagg-pd-decider, name: d}\n- {type: queue-scorer}\n`
      + `- {type: pd-profile-handler, parameters: {deciderPluginName: d, ${parameters}}}\n${PROFILES}`;
    expect(configErrorOf(() => parseEndpointPickerConfig(pd('prefixPluginName: p'))))
      .toBe('plugins[4].parameters.prefixPluginName: no plugin named "p" (llm-d-router v0.10.0: a plugin has a dependency on the unregistered plugin p)');
    expect(configErrorOf(() => parseEndpointPickerConfig(pd('prefixPluginType: prefix-cache-scorer'))))
      .toBe('plugins[4].parameters.prefixPluginType: no plugin named "prefix-cache-scorer" (prefixPluginName, empty, takes it; llm-d-router v0.10.0: a plugin has a dependency on the unregistered plugin prefix-cache-scorer)');
    expect(configErrorOf(() => parseEndpointPickerConfig(pd('prefixPluginType: prefix-cache-scorer, prefixPluginName: ""'))))
      .toMatch(/^plugins\[4\]\.parameters\.prefixPluginType: no plugin named "prefix-cache-scorer"/);
    // Any configured plugin, by name; the type is not read when a name is given; "" is no name.
    for (const parameters of ['prefixPluginName: queue-scorer', 'prefixPluginType: nothing-by-this-name, prefixPluginName: d', 'prefixPluginType: queue-scorer', 'prefixPluginName: ""']) {
      expect(buildScheduler(parseEndpointPickerConfig(pd(parameters))).plugin('pd-profile-handler')!.type).toBe('pd-profile-handler');
    }
  });

  test('pd-profile-handler prefixMatchInfoProducerName must name a prefix producer of the config, as llm-d-router v0.10.0 pd_profile_handler.go Consumes and data_graph.go CreateMissingDataProducers require', () => {
    const pd = (ref: string, others = '') => `${HEAD}plugins:\n- {type: prefill-filter}\n- {type: decode-filter}\n- {type: always-disagg-pd-decider, name: d}\n- {type: queue-scorer}\n${others}`
      + `- {type: pd-profile-handler, parameters: {deciderPluginName: d, prefixMatchInfoProducerName: ${ref}}}\n${PROFILES}`;
    const at = (i: number) => `plugins[${i}].parameters.prefixMatchInfoProducerName: `;
    expect(configErrorOf(() => parseEndpointPickerConfig(pd('q')))).toBe(`${at(4)}no approx-prefix-cache-producer or precise-prefix-cache-producer named "q"; `
      + 'approx-prefix-cache-producers: (none); precise-prefix-cache-producers: (none) '
      + '(approx-prefix-cache-producer may also be named unlisted: llm-d-router v0.10.0 makes that one with its defaults)');
    expect(configErrorOf(() => parseEndpointPickerConfig(pd('queue-scorer')))).toBe(`${at(4)}"queue-scorer" is a queue-scorer (plugins[3]), not a producer of the prefix match; `
      + 'approx-prefix-cache-producers: (none); precise-prefix-cache-producers: (none)');
    // Upstream's prefix-cache-scorer reads a producer's match and produces none.
    expect(configErrorOf(() => parseEndpointPickerConfig(pd('prefix-cache-scorer', '- {type: prefix-cache-scorer}\n')))).toMatch(/^plugins\[5\]\.parameters\.prefixMatchInfoProducerName: "prefix-cache-scorer" is a prefix-cache-scorer \(plugins\[4\]\), not a producer/);
    // Accepted: a listed producer, the default producer's name unlisted (upstream makes it), no name.
    const producer = '- {type: approx-prefix-cache-producer, name: approx}\n- {type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: approx}}\n';
    for (const [ref, others] of [['approx', producer], ['approx-prefix-cache-producer', ''], ['""', '']] as const) {
      expect(buildScheduler(parseEndpointPickerConfig(pd(ref, others))).plugin('pd-profile-handler')!.type).toBe('pd-profile-handler');
    }
  });

  test.each([
    ['- {type: disagg-profile-handler, parameters: {deciders: {prefill: nope}}}\n', 'disagg-profile-handler.parameters.deciders.prefill: no plugin named "nope"'],
    ['- {type: disagg-profile-handler, parameters: {deciders: {prefill: queue-scorer}}}\n- {type: queue-scorer}\n', '"queue-scorer" is a queue-scorer, not a decider'],
    ['- {type: disagg-profile-handler, parameters: {deciders: {encode: x}}}\n', 'encode disaggregation (E/P/D) is not supported'],
    ['- {type: always-disagg-pd-decider}\n- {type: disagg-profile-handler, parameters: {stageOrder: prefill-first, deciders: {prefill: always-disagg-pd-decider}}}\n', 'prefill decider is not supported in prefill-first stage order'],
    ['- {type: disagg-profile-handler, parameters: {stageOrder: sideways}}\n', 'invalid stage order "sideways"'],
    ['- {type: disagg-profile-handler, parameters: {profiles: {decode: main}}}\n', 'parameters.profiles.decode: no scheduling profile named "main"'],
    ['- {type: disagg-profile-handler, parameters: {decodeProfile: decode, deciders: {}}}\n', 'use one format exclusively'],
    ['- {type: prefix-based-pd-decider, parameters: {nonCachedTokens: -1}}\n- {type: disagg-profile-handler}\n', 'nonCachedTokens: must be an integer >= 0'],
    // pd_profile_handler.go PdProfileHandlerFactory: its decider by name, prefix-based-pd-decider by default.
    ['- {type: pd-profile-handler}\n', 'pd-profile-handler.parameters.deciderPluginName: no plugin named "prefix-based-pd-decider"'],
    ['- {type: pd-profile-handler, parameters: {deciderPluginName: ""}}\n', 'deciderPluginName: decider plugin name is not defined'],
    ['- {type: always-disagg-pd-decider}\n- {type: pd-profile-handler, parameters: {deciderPluginName: always-disagg-pd-decider, primaryPort: 8200}}\n', 'primaryPort: data parallelism through one primary port (8200) is not supported'],
    ['- {type: always-disagg-pd-decider}\n- {type: pd-profile-handler, parameters: {deciderPluginName: always-disagg-pd-decider, primaryPort: 70000}}\n', 'primaryPort: must be an integer'],
    ['- {type: always-disagg-pd-decider}\n- {type: pd-profile-handler, parameters: {deciderPluginName: always-disagg-pd-decider, decodeProfile: main}}\n', 'parameters.decodeProfile: no scheduling profile named "main"'],
    ['- {type: disagg-headers-handler, parameters: {prefillProfile: ""}}\n', 'prefillProfile: must be a non-empty string'],
  ])('%s is refused: %s', (plugins, message) => {
    expect(() => build(plugins)).toThrow(message);
  });
});

/** A pod of the P/D role `role` (`llm-d.ai/role`), its metrics fresh. */
const pod = (name: string, role: string): EndpointSnapshot => ({
  endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: { 'llm-d.ai/role': role } },
  metrics: { ...EMPTY_METRICS, updateTime: Date.now() },
  activeRequests: 0,
});
const request = { requestId: 'r', model: 'm', prompt: 'hello', headers: {}, attributes: new CycleState() };

describe('disagg decisions counted (metrics.go RecordDisaggDecision)', () => {
  const HEAD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';

  test.each(['decode-first', 'prefill-first'])('%s: a cycle whose decode profile picks nothing counts no decision (upstream returns before recording)', (stageOrder) => {
    const counted: string[] = [];
    const scheduler = buildScheduler(parseEndpointPickerConfig(`${HEAD}plugins:\n- {type: prefill-filter}\n- {type: decode-filter}\n- {type: max-score-picker}\n` +
      `- {type: disagg-profile-handler, parameters: {stageOrder: ${stageOrder}}}\nschedulingProfiles:\n` +
      '- name: prefill\n  plugins: [{pluginRef: prefill-filter}, {pluginRef: max-score-picker}]\n- name: decode\n  plugins: [{pluginRef: decode-filter}, {pluginRef: max-score-picker}]\n'),
    { metrics: { ...NOOP_SCHEDULING_METRICS, countDisaggDecision: (_n, _t, _m, decision) => counted.push(decision) } });
    expect(() => scheduler.schedule(request, [pod('p', 'prefill')])).toThrow(SchedulingError);
    expect(counted).toEqual([]);
    expect(scheduler.schedule(request, [pod('p', 'prefill'), pod('d', 'decode')]).target.endpoint.name).toBe('d');
    expect(counted).toEqual([stageOrder === 'prefill-first' ? 'prefill-decode' : 'decode-only']);
  });
});

describe('pd decisions counted (metrics.go RecordPDDecision, called from pd_profile_handler.go Pick)', () => {
  const HEAD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
  const PLUGINS = '- {type: prefill-filter}\n- {type: decode-filter}\n- {type: max-score-picker}\n- {type: always-disagg-pd-decider}\n'
    + '- {type: pd-profile-handler, parameters: {deciderPluginName: always-disagg-pd-decider}}\n';
  const PREFILL = '- name: prefill\n  plugins: [{pluginRef: prefill-filter}, {pluginRef: max-score-picker}]\n';
  const DECODE = '- name: decode\n  plugins: [{pluginRef: decode-filter}, {pluginRef: max-score-picker}]\n';
  const counting = (profiles: string) => {
    const counted: string[] = [];
    const scheduler = buildScheduler(parseEndpointPickerConfig(`${HEAD}plugins:\n${PLUGINS}schedulingProfiles:\n${profiles}`),
      { metrics: { ...NOOP_SCHEDULING_METRICS, countPdDecision: (_n, _t, _m, decision) => counted.push(decision) } });
    return { scheduler, counted };
  };

  test('the decider said prefill: prefill-decode, counted before the prefill profile runs, even when it then picks nothing', () => {
    const { scheduler, counted } = counting(PREFILL + DECODE);
    expect(scheduler.schedule(request, [pod('d', 'decode')]).target.endpoint.name).toBe('d');
    expect(counted).toEqual(['prefill-decode']);
  });

  test('a config with the decode profile alone counts nothing (Pick returns once every profile ran)', () => {
    const { scheduler, counted } = counting(DECODE);
    expect(scheduler.schedule(request, [pod('d', 'decode')]).target.endpoint.name).toBe('d');
    expect(counted).toEqual([]);
  });
});

describe('prefix-based-pd-decider when only the prefill profile lists the prefix scorer (llm-d\'s data-parallel guide)', () => {
  const long = Array.from({ length: 60 }, (_, i) => `echo sentence ${i} of a long shared document.`).join(' ');

  // Upstream's approximate producer records every request's primary (decode) pick, and the prefill pick besides
  // (approximateprefix/plugin.go PreRequest @ v0.10.0), so the decider's PrefixCacheMatchInfo for the decode pod knows
  // what that pod was sent before: the same long prompt again on the same decode pod is decode only.
  // kvroute's prefix-cache-scorer records the picks of the profiles listing it (here the prefill profile's), so the
  // scheduler records the decode pick into the scorer the decider asked (learnPick) after the cycle: without that,
  // every long prompt went to prefill.
  test('the same long prompt again, on the one decode pod that took it, is decode only', () => {
    const config = LLMD_GUIDE_CONFIGS['wide-ep-lws-experimental-dp-aware']
      .replace('- type: prefix-based-pd-decider\n', '- type: prefix-based-pd-decider\n  parameters:\n    nonCachedTokens: 16\n');
    const scheduler = buildScheduler(parseEndpointPickerConfig(config));
    const pods = [pod('p0', 'prefill'), pod('d0', 'decode')];
    const send = () => scheduler.schedule({ requestId: 'r', model: 'm', prompt: long, headers: {}, attributes: new CycleState() }, pods);
    const first = send();
    expect(first.target.endpoint.name).toBe('d0');
    expect(first.profileTargets?.get('prefill')?.endpoint.name).toBe('p0');
    const second = send();
    expect(second.target.endpoint.name).toBe('d0');
    expect(second.profileTargets?.get('prefill')).toBeUndefined();
  });
});

describe('P/D through the EPP (pd-epp-config.yaml)', () => {
  let dir: string;
  let pods: { decode: FakeVllmServer[]; prefill: FakeVllmServer[] };
  let epp: RunningEpp | undefined;
  let envoy: FakeEnvoy | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-disagg-'));
  });
  afterEach(async () => {
    envoy?.close();
    envoy = undefined;
    await epp?.stop();
    epp = undefined;
    await Promise.all([...pods.decode, ...pods.prefill].map((p) => p.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(config: string): Promise<void> {
    const page = { engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] };
    pods = { decode: await Promise.all([0, 1].map(() => FakeVllmServer.start(page))), prefill: await Promise.all([0, 1].map(() => FakeVllmServer.start(page))) };
    const entries = [...pods.decode.map((p, i) => ({ p, name: `decode-${i}`, role: 'decode' })), ...pods.prefill.map((p, i) => ({ p, name: `prefill-${i}`, role: 'prefill' }))];
    const file = join(dir, 'endpoints.yaml');
    writeFileSync(file, `endpoints:\n${entries.map((e) => `  - {name: ${e.name}, address: "127.0.0.1", port: "${e.p.port}", labels: {llm-d.ai/role: ${e.role}}}`).join('\n')}\n`);
    // The pool comes from that file (file-discovery), named before the sample's own plugins.
    const text = config
      .replace('plugins:\n', `plugins:\n- name: files\n  type: file-discovery\n  parameters: {path: ${JSON.stringify(file)}}\n`)
      .replace('schedulingProfiles:', 'dataLayer:\n  discovery: {pluginRef: files}\nschedulingProfiles:');
    epp = await startEpp(parseArgs(['--config-text', text, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms'], {})!, quiet);
    envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    // The EPP's start and its scrape worker's (which loads TypeScript in tests): 3-4 s alone on a loaded core, once
    // past the default 20 s in a full loaded run.
    await waitFor(() => epp!.datastore.snapshot().length === 4 && epp!.datastore.snapshot().every((s) => s.metrics.updateTime > 0), 'every pod scraped', { limitMs: 45_000 });
  }

  async function send(prompt: string, headers: Record<string, string> = {}): Promise<{ destination: string; prefiller: string | undefined; encoders?: string }> {
    const s = envoy!.open();
    s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json', ...headers }, false));
    s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt })), true));
    const first = await s.next();
    s.cancel();
    const set = setHeaders(first.request_headers.response.header_mutation);
    return { destination: set['x-gateway-destination-endpoint'] as string, prefiller: set['x-prefiller-host-port'], encoders: set['x-encoder-hosts-ports'] };
  }

  const key = (p: FakeVllmServer) => `127.0.0.1:${p.port}`;
  const document = (seed: string) => Array.from({ length: 60 }, (_, i) => `${seed} sentence ${i} of a long shared document.`).join(' ');
  /** The EPP's decision counters, both handlers' (disagg-profile-handler's disagg_*, pd-profile-handler's pd_*). */
  const decisions = async () => (await (await fetch(`http://127.0.0.1:${epp!.metricsPort}/metrics`)).text())
    .split('\n').filter((l) => /^llm_d_(epp|inference_scheduler)_(pd|disagg)_decision_total\{/.test(l)).sort();

  test('a long uncached prompt: decode pod as destination, prefill pod in x-prefiller-host-port; the same prompt again, cached on its decode pod: decode only; a short one: decode only', async () => {
    await start(PD_EPP_CONFIG);
    const first = await send(document('alpha'));
    expect(pods.decode.map(key)).toContain(first.destination);
    expect(pods.prefill.map(key)).toContain(first.prefiller);
    // The decode pod now holds the prompt (the approximate index learnt the pick): under 16 tokens left to prefill.
    expect(await send(document('alpha'))).toEqual({ destination: first.destination, prefiller: undefined });
    const short = await send('hi');
    expect(pods.decode.map(key)).toContain(short.destination);
    expect(short.prefiller).toBeUndefined();
    expect(await decisions()).toEqual([
      'llm_d_epp_disagg_decision_total{plugin_name="disagg-profile-handler",plugin_type="disagg-profile-handler",model_name="m",decision_type="decode-only"} 2',
      'llm_d_epp_disagg_decision_total{plugin_name="disagg-profile-handler",plugin_type="disagg-profile-handler",model_name="m",decision_type="prefill-decode"} 1',
      'llm_d_inference_scheduler_disagg_decision_total{model_name="m",decision_type="decode-only"} 2',
      'llm_d_inference_scheduler_disagg_decision_total{model_name="m",decision_type="prefill-decode"} 1',
    ]);
  });

  test('a client cannot choose the prefill pod: its x-prefiller-host-port is blanked when no prefill pod is picked, replaced when one is', async () => {
    await start(PD_EPP_CONFIG);
    expect((await send('hi', { 'x-prefiller-host-port': '10.9.9.9:8000' })).prefiller).toBe('');
    expect(pods.prefill.map(key)).toContain((await send(document('beta'), { 'x-prefiller-host-port': '10.9.9.9:8000' })).prefiller);
  });

  test('a session filter listed in both profiles binds the decode pick, the primary\'s (session_id.go pickedPodName): the session stays on its decode pod', async () => {
    const config = PD_EPP_CONFIG
      .replace('- type: max-score-picker\n', '- type: max-score-picker\n- type: session-affinity-filter\n  parameters: {strategy: session_id}\n')
      .replace(/  - pluginRef: prefill-filter\n/, '  - pluginRef: prefill-filter\n  - pluginRef: session-affinity-filter\n')
      .replace(/  - pluginRef: decode-filter\n/, '  - pluginRef: decode-filter\n  - pluginRef: session-affinity-filter\n');
    await start(config);
    const first = await send(document('gamma'), { 'x-session-id': 's1' });
    expect(pods.prefill.map(key)).toContain(first.prefiller);
    const filter = epp!.scheduler.plugin('session-affinity-filter') as unknown as { boundEndpoint(id: string): string | undefined };
    // Bound by the decode pod's namespace/name (file discovery's default namespace), as upstream's md.ID.String().
    const decodePod = `default/decode-${pods.decode.map(key).indexOf(first.destination)}`;
    expect(filter.boundEndpoint('s1')).toBe(decodePod);
    for (let i = 0; i < 3; i++) {
      const next = await send(document(`turn-${i}`), { 'x-session-id': 's1' });
      expect(pods.prefill.map(key)).toContain(next.prefiller); // disaggregated: the prefill profile ran, and did not rebind
      expect(next.destination).toBe(first.destination);
      expect(filter.boundEndpoint('s1')).toBe(decodePod);
    }
  });

  test('llm-d\'s pd-disaggregation guide verbatim (disagg-headers-handler beside disagg-profile-handler, always-disagg-pd-decider): every request gets a prefill pod; with none left, a client\'s header is blanked', async () => {
    await start(LLMD_GUIDE_CONFIGS['pd-disaggregation']);
    const sent = await send('hi', { 'x-prefiller-host-port': '10.9.9.9:8000', 'x-encoder-hosts-ports': '10.9.9.9:9000' });
    expect(pods.decode.map(key)).toContain(sent.destination);
    expect(pods.prefill.map(key)).toContain(sent.prefiller);
    expect(sent.encoders).toBe(''); // no encode profile ran (disagg_headers_handler.go clears the header)
    for (const p of pods.prefill) epp!.datastore.removeEndpoint(key(p));
    expect((await send('hi', { 'x-prefiller-host-port': '10.9.9.9:8000' })).prefiller).toBe('');
  });

  const dataParallelGuide = (decider: string) => LLMD_GUIDE_CONFIGS['wide-ep-lws-experimental-dp-aware'].replace('- type: prefix-based-pd-decider\n', decider);

  test('llm-d\'s data-parallel guide (pd-profile-handler, prefill-header-handler): the decider reads the decode pick\'s prefix though only the prefill profile scores one; counted in pd_decision_total', async () => {
    await start(dataParallelGuide('- type: prefix-based-pd-decider\n  parameters:\n    nonCachedTokens: 16\n'));
    const long = await send(document('delta'));
    expect(pods.decode.map(key)).toContain(long.destination);
    expect(pods.prefill.map(key)).toContain(long.prefiller);
    const short = await send('hi', { 'x-prefiller-host-port': '10.9.9.9:8000' });
    expect(pods.decode.map(key)).toContain(short.destination);
    expect(short.prefiller).toBe('');
    expect(await decisions()).toEqual([
      'llm_d_epp_pd_decision_total{plugin_name="pd-profile-handler",plugin_type="pd-profile-handler",model_name="m",decision_type="decode-only"} 1',
      'llm_d_epp_pd_decision_total{plugin_name="pd-profile-handler",plugin_type="pd-profile-handler",model_name="m",decision_type="prefill-decode"} 1',
      'llm_d_inference_scheduler_pd_decision_total{model_name="m",decision_type="decode-only"} 1',
      'llm_d_inference_scheduler_pd_decision_total{model_name="m",decision_type="prefill-decode"} 1',
    ]);
  });

  test('pd-profile-handler names no prefill pod itself (pd_profile_handler.go is no PreRequest): without prefill-header-handler the header is not set', async () => {
    await start(dataParallelGuide('- type: always-disagg-pd-decider\n  name: prefix-based-pd-decider\n').replace('- type: prefill-header-handler\n', ''));
    const sent = await send('hi');
    expect(pods.decode.map(key)).toContain(sent.destination);
    expect(sent.prefiller).toBeUndefined();
    expect(await decisions()).toContain('llm_d_epp_pd_decision_total{plugin_name="pd-profile-handler",plugin_type="pd-profile-handler",model_name="m",decision_type="prefill-decode"} 1');
  });

  test('the prefill pod counts the request in flight until the response starts (inflightload/producer.go StartOfStream): the response headers under body mode NONE, the first body chunk when the EPP is shown the body; a reset stream leaves no count', async () => {
    await start(LLMD_GUIDE_CONFIGS['pd-disaggregation']);
    const active = (k: string) => epp!.datastore.activeRequests(k);
    const open = async (responseMode: string) => {
      const s = envoy!.open();
      s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json' }, false, protocolConfig('BUFFERED', responseMode)));
      await s.next();
      s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt: 'hi', stream: true })), true));
      const set = setHeaders((await s.next()).request_body.response.header_mutation);
      const routed = { s, decode: set['x-gateway-destination-endpoint'] as string, prefill: set['x-prefiller-host-port'] as string };
      expect(pods.prefill.map(key)).toContain(routed.prefill);
      expect([active(routed.decode), active(routed.prefill)]).toEqual([1, 1]);
      return routed;
    };
    const sse = { ':status': '200', 'content-type': 'text/event-stream' };

    const none = await open('NONE');
    none.s.send(responseHeaders(sse, false));
    expect((await none.s.next()).response).toBe('response_headers');
    expect([active(none.decode), active(none.prefill)]).toEqual([1, 0]);
    none.s.end();
    await waitFor(() => active(none.decode) === 0);

    const duplex = await open('FULL_DUPLEX_STREAMED');
    duplex.s.send(responseHeaders(sse, false));
    expect((await duplex.s.next()).response).toBe('response_headers');
    expect([active(duplex.decode), active(duplex.prefill)]).toEqual([1, 1]);
    duplex.s.send(responseBody('data: {"choices":[]}\n\n', false));
    expect((await duplex.s.next()).response).toBe('response_body');
    expect([active(duplex.decode), active(duplex.prefill)]).toEqual([1, 0]);
    duplex.s.send(responseBody('data: [DONE]\n\n', true));
    await duplex.s.next();
    expect(active(duplex.decode)).toBe(0);
    duplex.s.end();

    const reset = await open('NONE');
    reset.s.cancel();
    await waitFor(() => active(reset.decode) === 0 && active(reset.prefill) === 0);
    expect([...pods.decode, ...pods.prefill].map((p) => active(key(p)))).toEqual([0, 0, 0, 0]);
  });

  test('always-disagg-pd-decider: every request gets a prefill pod; with no prefill pod left, decode alone', async () => {
    await start(PD_EPP_CONFIG.replace('prefill: prefix-based-pd-decider', 'prefill: always-disagg-pd-decider').replace('- type: prefix-based-pd-decider\n  parameters:\n    nonCachedTokens: 16\n', '- type: always-disagg-pd-decider\n'));
    expect(pods.prefill.map(key)).toContain((await send('hi')).prefiller);
    for (const p of pods.prefill) epp!.datastore.removeEndpoint(key(p));
    const alone = await send('hi');
    expect(pods.decode.map(key)).toContain(alone.destination);
    expect(alone.prefiller).toBeUndefined();
  });
});

describe('the disagg decision counters\' model label is bounded (profilehandler/disagg/metrics.go @ llm-d-router v0.10.0 labels them with the client\'s model)', () => {
  test('a model name over 128 characters counts as "other", as every client-chosen model label; past 64 names, so does every new one', async () => {
    const { registry, scheduling } = createEppMetrics();
    for (let i = 0; i < 4; i++) scheduling.countDisaggDecision('disagg-profile-handler', 'disagg-profile-handler', `${i}-${'m'.repeat(100_000)}`, 'prefill-decode');
    scheduling.countDisaggDecision('disagg-profile-handler', 'disagg-profile-handler', 'm'.repeat(128), 'decode-only');
    for (let i = 0; i < 70; i++) scheduling.countDisaggDecision('disagg-profile-handler', 'disagg-profile-handler', `model-${i}`, 'decode-only');
    const lines = (await registry.metrics()).split('\n').filter((l) => /^llm_d_(epp|inference_scheduler)_(disagg|pd)_decision_total\{/.test(l));
    expect(lines.filter((l) => l.length > 400)).toEqual([]);
    expect(lines).toContain('llm_d_epp_disagg_decision_total{plugin_name="disagg-profile-handler",plugin_type="disagg-profile-handler",model_name="other",decision_type="prefill-decode"} 4');
    expect(lines).toContain(`llm_d_epp_disagg_decision_total{plugin_name="disagg-profile-handler",plugin_type="disagg-profile-handler",model_name="${'m'.repeat(128)}",decision_type="decode-only"} 1`);
    // 64 names kept: the 128-character one and model-0 … model-62; model-63 … model-69 are "other".
    expect(lines).toContain('llm_d_epp_disagg_decision_total{plugin_name="disagg-profile-handler",plugin_type="disagg-profile-handler",model_name="other",decision_type="decode-only"} 7');
  });
});

/**
 * llm-d-router v0.10.0 deploy/config/sim-e-p-d-epp-config.yaml with its encode stage taken out (kvroute refuses E/P/D
 * by name): P/D scored by queue depth alone, the prefix-based decider at 16 non-cached tokens, no prefix scorer listed.
 */
const PD_QUEUE_ONLY_CONFIG = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: prefix-based-pd-decider
- type: prefix-based-pd-decider
  parameters:
    nonCachedTokens: 16
schedulingProfiles:
- name: prefill
  plugins:
  - pluginRef: prefill-filter
  - pluginRef: queue-scorer
    weight: 1
- name: decode
  plugins:
  - pluginRef: decode-filter
  - pluginRef: queue-scorer
    weight: 1
`;

describe('P/D through the EPP: the decider\'s prefix match (pods of any role and queue depth)', () => {
  interface Pod { name: string; role: string; waiting: number; server?: FakeVllmServer }
  let dir: string;
  let pods: Pod[] = [];
  let epp: RunningEpp | undefined;
  let envoy: FakeEnvoy | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-disagg-match-'));
  });
  afterEach(async () => {
    envoy?.close();
    envoy = undefined;
    await epp?.stop();
    epp = undefined;
    await Promise.all(pods.map((p) => p.server?.close()));
    pods = [];
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(config: string, layout: Pod[]): Promise<void> {
    pods = layout;
    for (const p of pods) p.server = await FakeVllmServer.start({ engines: [{ waiting: p.waiting, running: 0, kvUsage: 0.1 }] });
    const file = join(dir, 'endpoints.yaml');
    writeFileSync(file, `endpoints:\n${pods.map((p) => `  - {name: ${p.name}, address: "127.0.0.1", port: "${p.server!.port}", labels: {llm-d.ai/role: ${p.role}}}`).join('\n')}\n`);
    const text = config
      .replace('plugins:\n', `plugins:\n- name: files\n  type: file-discovery\n  parameters: {path: ${JSON.stringify(file)}}\n`)
      .replace('schedulingProfiles:', 'dataLayer:\n  discovery: {pluginRef: files}\nschedulingProfiles:');
    epp = await startEpp(parseArgs(['--config-text', text, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms'], {})!, quiet);
    envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    await waitFor(() => epp!.datastore.snapshot().length === pods.length && epp!.datastore.snapshot().every((s) => s.metrics.updateTime > 0));
  }

  const key = (name: string) => `127.0.0.1:${pods.find((p) => p.name === name)!.server!.port}`;
  const nameOf = (k: string | undefined) => pods.find((p) => k !== undefined && key(p.name) === k)?.name ?? k;
  const decodeAndPrefill = (): Pod[] => [{ name: 'decode-0', role: 'decode', waiting: 0 }, { name: 'prefill-0', role: 'prefill', waiting: 0 }];

  async function send(prompt: string | number[] | string[], headers: Record<string, string> = {}): Promise<{ destination: string | undefined; prefiller: string | undefined; status?: string }> {
    const s = envoy!.open();
    s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json', ...headers }, false));
    s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt })), true));
    const first = await s.next();
    s.cancel();
    if (first.immediate_response) return { destination: undefined, prefiller: undefined, status: first.immediate_response.status.code };
    const set = setHeaders(first.request_headers.response.header_mutation);
    return { destination: nameOf(set['x-gateway-destination-endpoint']), prefiller: nameOf(set['x-prefiller-host-port']) };
  }

  const document = (seed: string) => Array.from({ length: 60 }, (_, i) => `${seed} sentence ${i} of a long shared document.`).join(' ');

  // llm-d-router v0.10.0: disagg_profile_handler.go Handler.Consumes() requires PrefixCacheMatchInfo; runner.go
  // registers approx-prefix-cache-producer as its default producer and datalayer/data_graph.go
  // CreateMissingDataProducers makes it (nil parameters) when no plugin produces it. So prefix_based_pd_decider.go
  // disaggregate always finds the decode pick's PrefixCacheMatchInfo: a long cold prompt is disaggregated.
  test('a P/D config listing no prefix scorer (sim-e-p-d-epp-config.yaml without encode) still disaggregates a long uncached prompt, and not the same prompt again on its decode pod', async () => {
    await start(PD_QUEUE_ONLY_CONFIG, decodeAndPrefill());
    expect(await send(document('alpha'))).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
    // The producer recorded the decode pick (approximateprefix/plugin.go PreRequest): cached there now.
    expect(await send(document('alpha'))).toEqual({ destination: 'decode-0', prefiller: undefined });
    expect(epp!.scheduler.config.plugins.filter((p) => p.type === 'prefix-cache-scorer').map((p) => p.name)).toEqual(['prefix-cache-scorer']);
    expect(epp!.scheduler.config.schedulingProfiles.every((s) => s.plugins.every((r) => r.pluginRef !== 'prefix-cache-scorer'))).toBe(true);
  });

  // llm-d-router v0.10.0: the approximate producer matches the prompt on every candidate once, before scheduling
  // (approximateprefix/plugin.go Produce, run by requestcontrol/director.go before Schedule), and records the picks only
  // in PreRequest, after the whole cycle: the prefill profile sees the same cold match the decode profile saw. B (role
  // both) is the decode pick (A is busier); in the prefill profile B (1 waiting) and C (0 waiting) match nothing alike,
  // so queue-scorer decides: C. Recording the decode pick before the prefill profile scores would give B the whole
  // prompt (prefix weight 2) and make the decode pod its own prefiller.
  test('pd-epp-config.yaml: the decode pick is not yet in the prefix index when the prefill profile scores (a "both" pod is not made its own prefiller)', async () => {
    await start(PD_EPP_CONFIG, [
      { name: 'A', role: 'decode', waiting: 5 },
      { name: 'B', role: 'both', waiting: 1 },
      { name: 'C', role: 'prefill', waiting: 0 },
    ]);
    expect(await send(document('gamma'))).toEqual({ destination: 'B', prefiller: 'C' });
    // Both picks recorded after the cycle: the same prompt again is cached on its decode pod, decode only.
    expect(await send(document('gamma'))).toEqual({ destination: 'B', prefiller: undefined });
  });

  // llm-d-router v0.10.0: prefix_based_pd_decider.go disaggregate reads the prompt's length from
  // getUserInputLenInTokens, the TokenizedPrompt's TokenCount; the default token-producer is the estimate backend
  // (requestcontrol/dataproducer/tokenizer/estimate.go produce: a completions prompt's UTF-8 bytes packed 4 to a token,
  // packBytes/align). 40 CJK characters are 120 bytes: 30 tokens >= nonCachedTokens 16, none cached: disaggregated.
  test('pd-epp-config.yaml: a 40-character CJK prompt (120 UTF-8 bytes, 30 estimated tokens) is disaggregated at nonCachedTokens 16', async () => {
    await start(PD_EPP_CONFIG, decodeAndPrefill());
    const prompt = '長い文書の要約をお願いします。'.repeat(3).slice(0, 40);
    expect(Buffer.byteLength(prompt, 'utf8')).toBe(120);
    expect(await send(prompt)).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
  });

  // llm-d-router v0.10.0 estimate.go produce: a completions prompt of token ids is those tokens as they are
  // (`body.Completions.Prompt.TokenIDs`), TokenCount 40 here: cold, at nonCachedTokens 32, disaggregated.
  test('pd-epp-config.yaml at nonCachedTokens 32: a cold prompt of 40 token ids is disaggregated (the ids counted, not their text)', async () => {
    await start(PD_EPP_CONFIG.replace('nonCachedTokens: 16', 'nonCachedTokens: 32'), decodeAndPrefill());
    expect(await send(Array.from({ length: 40 }, (_, i) => i + 1))).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
  });

  // llm-d-router v0.10.0: a batch of strings is one token list per prompt (requestcontrol/dataproducer/tokenizer/
  // estimate.go estimateMultiStringCompletions, each string's bytes packed 4 to a token; the render backend's per-prompt
  // lists, backend.go renderCompletions), the decider's TokenCount their sum (framework/interface/requesthandling/
  // types.go TokenizedPrompt.TokenCount). Two prompts of 80 ASCII bytes: 40 tokens >= nonCachedTokens 32,
  // disaggregated (until session 65 the first prompt alone, 20 tokens, stayed decode only).
  test('pd-epp-config.yaml at nonCachedTokens 32: a cold batch of two 80-byte prompts (20 estimated tokens each) is disaggregated (both prompts counted)', async () => {
    await start(PD_EPP_CONFIG.replace('nonCachedTokens: 16', 'nonCachedTokens: 32'), decodeAndPrefill());
    const prompts = ['first', 'other'].map((seed) => `${seed} prompt of the batch, eighty ASCII characters long. `.padEnd(80, '.'));
    expect(prompts.map((p) => Buffer.byteLength(p, 'utf8'))).toEqual([80, 80]);
    expect(await send(prompts)).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
  });

  // llm-d-router v0.10.0: each prompt of a batch is hashed on its own (dataproducer/prefixhash/hashing.go
  // GetBlockHashes), matched and summed (approximateprefix/plugin.go Produce), and every prompt's hashes are recorded on
  // the decode and prefill picks (PreRequest). So the batch's second document alone is then cached on the decode pod,
  // decode only (until session 65 only the first prompt was keyed and recorded: the second stayed cold, disaggregated);
  // a batch of a cached document and a cold one leaves the cold one's tokens to prefill, disaggregated.
  test('pd-epp-config.yaml: a batch of two cold documents is disaggregated and recorded prompt by prompt: its second document alone is then decode only', async () => {
    await start(PD_EPP_CONFIG, decodeAndPrefill());
    expect(await send([document('delta'), document('epsilon')])).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
    expect(await send(document('epsilon'))).toEqual({ destination: 'decode-0', prefiller: undefined });
    expect(await send([document('epsilon'), document('zeta')])).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
  });

  // llm-d-router v0.10.0 estimate.go chatCompletionsBytes/appendChatMessage: a chat is packed from the tools' JSON and
  // each message's role and content bytes, nothing else: "user" + 40 characters = 44 bytes = 11 tokens, under
  // nonCachedTokens 16: decode only (prefix_based_pd_decider.go "Input is shorter than the nonCachedToken"). With one
  // tool (Go's JSON of the array, [{"function":{"name":"lookup"},"type":"function"}], 50 bytes) it is 94 bytes, 24
  // tokens: disaggregated.
  test('pd-epp-config.yaml: a one-message chat of 40 characters (11 estimated tokens) stays decode only at nonCachedTokens 16; with a tool, 24 tokens, it is disaggregated', async () => {
    await start(PD_EPP_CONFIG, decodeAndPrefill());
    const chat = async (body: object) => {
      const s = envoy!.open();
      s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/chat/completions', ':authority': 'gw', 'content-type': 'application/json' }, false));
      s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', ...body })), true));
      const first = await s.next();
      s.cancel();
      const set = setHeaders(first.request_headers.response.header_mutation);
      return { destination: nameOf(set['x-gateway-destination-endpoint']), prefiller: nameOf(set['x-prefiller-host-port']) };
    };
    const messages = [{ role: 'user', content: 'Please summarise the attached document.!' }];
    expect(await chat({ messages })).toEqual({ destination: 'decode-0', prefiller: undefined });
    const tools = [{ type: 'function', function: { name: 'lookup' } }];
    expect(JSON.stringify(tools)).toHaveLength(50);
    expect(await chat({ messages: [{ role: 'user', content: 'Please summarise the other document now!' }], tools })).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
  });

  // llm-d-router v0.10.0: prefix_based_pd_decider.go disaggregate counts as cached CachedBlockCount × BlockSizeTokens,
  // and the approximate producer hashes at most maxPrefixTokensToMatch tokens (approximateprefix/plugin.go Produce,
  // resolveMaxBlocks: 16384 in pd-epp-config.yaml). A prompt of ~22,400 estimated tokens sent again to the decode pod
  // holding all of it still has 22,400 − 16,384 ≥ 16 tokens "non-cached": disaggregated again.
  test('pd-epp-config.yaml: a ~22,400-token prompt sent again to its decode pod is disaggregated again (cached length capped at maxPrefixTokensToMatch)', async () => {
    await start(PD_EPP_CONFIG, decodeAndPrefill());
    const long = Array.from({ length: 3200 }, (_, i) => `Line ${String(i).padStart(5, '0')} of the long doc. `).join('');
    expect(long.length).toBeGreaterThanOrEqual(88_000);
    expect(await send(long)).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
    expect(await send(long)).toEqual({ destination: 'decode-0', prefiller: 'prefill-0' });
    // Within the window (and whole blocks at 16 and at 64 tokens), a prompt the pod holds all of is decode only.
    const within = long.slice(0, 59_904);
    expect(await send(within)).toEqual({ destination: 'decode-0', prefiller: undefined });
  });

  // llm-d-router v0.10.0: pd_profile_handler.go PdProfileHandler.Consumes() requires PrefixCacheMatchInfo, so the
  // auto-created approx-prefix-cache-producer matches every candidate before scheduling and records the primary
  // (decode) pick in PreRequest (approximateprefix/plugin.go); the director's conditional-decode gate
  // (director.go primaryEndpointHasCachedPrefix) reads that endpoint attribute. The data-parallel guide's decode
  // profile lists no prefix scorer (its decider, at nonCachedTokens 0, never disaggregates).
  test('llm-d\'s data-parallel guide verbatim: the same prompt again with Prefer: if-available, on the decode pod that took it, is forwarded, not 412', async () => {
    await start(LLMD_GUIDE_CONFIGS['wide-ep-lws-experimental-dp-aware'], decodeAndPrefill());
    expect((await send(document('delta'))).destination).toBe('decode-0');
    expect(await send(document('delta'), { prefer: 'if-available' })).toEqual({ destination: 'decode-0', prefiller: undefined });
    expect((await send(document('epsilon'), { prefer: 'if-available' })).status).toBe('PreconditionFailed');
  });
});

describe('prefix-based-pd-decider with no prefix match for the decode pick (prefix_based_pd_decider.go @ llm-d-router v0.10.0: "unable to read prefix cache state" keeps decode only)', () => {
  /** A prefix scorer of `type` that publishes no match: the precise one when it cannot key the prompt (no tokenizer). */
  const silentScorer = (type: string): Plugin => ({ name: type, type, matchRatios: () => [] }) as unknown as Plugin;
  const decider = (scorers: Plugin[]): PdDecider => {
    const handle = { now: Date.now, random: Math.random, metrics: NOOP_SCHEDULING_METRICS, logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }, plugins: () => scorers };
    const plugin = createPlugin(prefixBasedPdDecider, 'prefix-based-pd-decider', { nonCachedTokens: 16, promptTokens: 0 }, handle as never) as PdDecider & { resolveReferences(): void };
    plugin.resolveReferences();
    return plugin;
  };
  const long = { ...request, prompt: 'x'.repeat(400) };

  test('the precise scorer could not key the prompt: decode only, as upstream\'s precise producer puts no match', () => {
    expect(decider([silentScorer('precise-prefix-cache-scorer')]).disaggregate({ request: long, state: new CycleState() }, pod('d', 'decode'))).toBe(false);
  });

  test('the approximate scorer published none (a prompt under one block): nothing cached, as upstream\'s producer puts a match of 0 blocks', () => {
    expect(decider([silentScorer('prefix-cache-scorer')]).disaggregate({ request: long, state: new CycleState() }, pod('d', 'decode'))).toBe(true);
  });
});

// llm-d-router v0.10.0 prefix_based_pd_decider.go disaggregate: hitPrefixTokens = CachedBlockCount × BlockSizeTokens
// (whole blocks of whole pseudo-tokens: 64 of 4 bytes, approximateprefix/plugin.go GetBlockSize's floor), nonCached =
// TokenCount − that, disaggregated when nonCached >= nonCachedTokens. An 861-character ASCII prompt is 216 estimated
// tokens (861 ÷ 4 rounded up, estimate.go); its decode pod holding its first 256-character block holds 64 of them:
// 152 left, disaggregated at nonCachedTokens 152. kvroute took 256/861 of 216 tokens (64.2) as cached, left 151.8 and
// kept the request decode only.
describe('prefix-based-pd-decider counts the decode pod\'s cached tokens as whole tokens (prefix_based_pd_decider.go @ llm-d-router v0.10.0)', () => {
  test('861 characters, the first 256 cached on the decode pod: 152 tokens left, disaggregated at nonCachedTokens 152', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(PD_EPP_CONFIG.replace('nonCachedTokens: 16', 'nonCachedTokens: 152')));
    const pods = [pod('p0', 'prefill'), pod('d0', 'decode')];
    const block = 'a'.repeat(256);
    const send = (prompt: string) => scheduler.schedule({ requestId: 'r', model: 'm', prompt, headers: {}, attributes: new CycleState() }, pods);
    // 1,000 characters (250 tokens), cold: disaggregated, its blocks recorded on d0 (and p0).
    expect(send(block + 'b'.repeat(744)).profileTargets?.get('prefill')?.endpoint.name).toBe('p0');
    const shared = send(block + 'c'.repeat(605));
    expect(shared.target.endpoint.name).toBe('d0');
    expect(shared.profileTargets?.get('prefill')?.endpoint.name).toBe('p0');
  });
});

// llm-d-router v0.10.0 prefix_based_pd_decider_test.go TestDisaggregate, ported: a 10-token prompt, the decode pod's
// PrefixCacheMatchInfo holding `cached` tokens (blocks of 1 token there). kvroute's decider reads the decode profile's
// prefix match: in tokens (the precise scorer's), and in characters (the approximate scorer's, 4 a token: a 40-character
// prompt). Its "negative promptTokens is invalid" case is the config refusal above; the nil-endpoint cases have no
// kvroute counterpart (the handler always passes the decode pick).
describe('prefix_based_pd_decider_test.go TestDisaggregate (llm-d-router v0.10.0), ported', () => {
  const deciderOf = (nonCachedTokens: number, promptTokens: number, scorerType: string): PdDecider => {
    const handle = { now: Date.now, random: Math.random, metrics: NOOP_SCHEDULING_METRICS, logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }, plugins: () => [{ name: scorerType, type: scorerType, matchRatios: () => [] }] };
    const plugin = createPlugin(prefixBasedPdDecider, 'prefix-based-pd-decider', { nonCachedTokens, promptTokens }, handle as never) as PdDecider & { resolveReferences(): void };
    plugin.resolveReferences();
    return plugin;
  };
  const endpoint = pod('test-pod', 'decode');
  const cases: [string, number, number, number, boolean][] = [
    // name, nonCachedTokens, promptTokens, cached tokens of the 10, expected
    ['threshold zero disables disaggregation', 0, 0, 5, false],
    ['input shorter than promptTokens threshold', 5, 20, 0, false],
    ['input shorter than threshold', 20, 0, 0, false],
    ['input equals promptTokens threshold', 5, 10, 5, true],
    ['non-cached suffix below threshold', 5, 0, 8, false],
    ['non-cached suffix equals threshold', 5, 0, 5, true],
    ['non-cached suffix above threshold', 3, 0, 2, true],
    ['fully cached prompt', 1, 0, 10, false],
    ['no cache hit at all', 5, 0, 0, true],
  ];
  test.each(cases)('%s (tokens: the precise scorer\'s match)', (_name, nonCachedTokens, promptTokens, cached, expected) => {
    const state = new CycleState();
    state.set(PREFIX_MATCH, { unit: 'tokens', promptLength: 10, cachedLength: new Map([[endpoint.endpoint.key, cached]]) });
    expect(deciderOf(nonCachedTokens, promptTokens, 'precise-prefix-cache-scorer').disaggregate({ request: { ...request, prompt: 'x'.repeat(40) }, state }, endpoint)).toBe(expected);
  });
  test.each(cases)('%s (characters: the approximate scorer\'s match)', (_name, nonCachedTokens, promptTokens, cached, expected) => {
    const state = new CycleState();
    state.set(PREFIX_MATCH, { unit: 'characters', promptLength: 40, cachedLength: new Map([[endpoint.endpoint.key, cached * 4]]) });
    expect(deciderOf(nonCachedTokens, promptTokens, 'prefix-cache-scorer').disaggregate({ request: { ...request, prompt: 'x'.repeat(40) }, state }, endpoint)).toBe(expected);
  });

  // TestDisaggregate_UsesUnweightedCachedBlockCount (#1047): 4096 tokens, 240 of 256 16-token blocks cached on CPU
  // (tier weight 0.8): the decider counts 240 blocks (256 left, under 512: decode only), not the weighted 192.
  test('the cached block count is unweighted by tier (#1047): decode only', () => {
    const state = new CycleState();
    state.set(PREFIX_MATCH, { unit: 'tokens', promptLength: 4096, cachedLength: new Map([[endpoint.endpoint.key, 240 * 16]]) });
    expect(deciderOf(512, 0, 'precise-prefix-cache-scorer').disaggregate({ request, state }, endpoint)).toBe(false);
  });
});

// llm-d-router v0.10.0 tokenizer/estimate.go produce: an Anthropic Messages body (body.Messages) is packed from
// messagesBytes: Go's JSON of its tools as []AnthropicTool, the system text (no role), each message's role and its
// text, thinking, tool_use id + name + raw input, and tool_result text. prefix_based_pd_decider.go reads that count
// (getUserInputLenInTokens). kvroute counted the OpenAI chat the body is converted to instead: a "system" role, tools
// in OpenAI's wrapper, "tool" messages, and no thinking or tool-use input at all.
describe('prefix-based-pd-decider reads an Anthropic Messages body\'s length as upstream\'s estimate counts it (estimate.go messagesBytes @ llm-d-router v0.10.0)', () => {
  const anthropic = (o: unknown) => parseAnthropicRequest(Buffer.from(JSON.stringify(o)), '/v1/messages');
  const toolUse = (input: unknown) => ({
    model: 'm',
    system: [{ type: 'text', text: 'x-anthropic-billing-header: cc_version=1' }, { type: 'text', text: 'You are ' }, { type: 'text', text: 'helpful.' }],
    tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } }, cache_control: { type: 'ephemeral' } }],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'Call it.' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'Sunny' }, { type: 'text', text: '21C' }] }] },
    ],
  });

  test('the estimate: the body\'s own fields, packed 4 bytes a token', () => {
    const bytes = [
      '[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]',
      'You are helpful.',
      'user', 'Weather in Paris?',
      'assistant', 'Call it.', 'toolu_1', 'get_weather', '{"city":"Paris"}',
      'user', 'Sunny\n21C',
    ].reduce((n, s) => n + Buffer.byteLength(s), 0);
    const parsed = anthropic(toolUse({ city: 'Paris' }));
    expect(estimatedPromptTokens({ requestId: 'r', model: 'm', prompt: parsed.prompt, input: parsed.input, headers: {} })).toBe(Math.ceil(bytes / 4));
  });

  test('a cold conversation whose tool use carries a 2,000-byte file is disaggregated at nonCachedTokens 256 (upstream counts ~560 tokens)', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(PD_EPP_CONFIG.replace('nonCachedTokens: 16', 'nonCachedTokens: 256')));
    const parsed = anthropic(toolUse({ path: 'notes.txt', content: 'All work and no play. '.repeat(91) }));
    const result = scheduler.schedule({ requestId: 'r', model: 'm', prompt: parsed.prompt, input: parsed.input, headers: {}, attributes: new CycleState() }, [pod('p0', 'prefill'), pod('d0', 'decode')]);
    expect(result.target.endpoint.name).toBe('d0');
    expect(result.profileTargets?.get('prefill')?.endpoint.name).toBe('p0');
  });
});

// llm-d-router v0.10.0: the anthropic parser decodes the body straight into MessagesRequest (parsers/anthropic/
// anthropic.go ParseRequest: json.Unmarshal(body, &messagesReq)), whose tool_use `Input` is a json.RawMessage
// (requesthandling/types.go L767: "keep raw JSON bytes"), and estimate.go messagesBytes appends `block.Input` as is.
// So a tool input sent with Python's json.dumps spacing, or with \u escapes (json.dumps' ensure_ascii default), counts
// its bytes as they came on the wire, not those of a compact re-serialization.
describe('prefix-based-pd-decider counts a tool_use input\'s raw bytes as sent (json.RawMessage, estimate.go messagesBytes @ llm-d-router v0.10.0)', () => {
  const tokensOf = (raw: string) => {
    const parsed = parseAnthropicRequest(Buffer.from(raw), '/v1/messages');
    return estimatedPromptTokens({ requestId: 'r', model: 'm', prompt: parsed.prompt, input: parsed.input, headers: {} });
  };
  // The body as Python's json.dumps writes it (", " and ": " separators, ensure_ascii), with a duplicated input key
  // (Go and JSON.parse keep the last) and a second tool_use whose input is null (RawMessage "null").
  const input = '{"city": "Z\\u00fcrich", "days": [1, 2,\n 3]}';
  const raw = `{"model": "m", "messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": [`
    + `{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"dropped": true}, "input": ${input}}, `
    + `{"type": "tool_use", "id": "toolu_2", "name": "noop", "input": null}]}]}`;

  test('the raw input bytes, spacing and escapes included', () => {
    const bytes = ['user', 'Weather?', 'assistant', 'toolu_1', 'get_weather', input, 'toolu_2', 'noop', 'null'].reduce((n, s) => n + Buffer.byteLength(s), 0);
    expect(tokensOf(raw)).toBe(Math.ceil(bytes / 4));
  });

  test('the same body sent compactly counts fewer tokens, as upstream counts it', () => {
    const compact = JSON.stringify(JSON.parse(raw.replace('{"dropped": true}, "input": ', '')));
    const bytes = ['user', 'Weather?', 'assistant', 'toolu_1', 'get_weather', '{"city":"Zürich","days":[1,2,3]}', 'toolu_2', 'noop', 'null'].reduce((n, s) => n + Buffer.byteLength(s), 0);
    expect(tokensOf(compact)).toBe(Math.ceil(bytes / 4));
    expect(tokensOf(compact)).toBeLessThan(tokensOf(raw));
  });
});

// The same for a tool's input_schema, a json.RawMessage too (requesthandling/types.go L689 @ llm-d-router v0.10.0):
// estimate.go messagesBytes packs json.Marshal(req.Tools), and Go marshals a RawMessage by compacting its raw bytes
// (encoding/json encode.go marshalerEncoder: appendCompact with HTML escaping), so the whitespace goes but the escapes
// as sent stay (`\u00fc` is six bytes, not ü's two), and `<`, `>`, `&` become `\u003c`, `\u003e`, `\u0026`.
describe('prefix-based-pd-decider counts a tool\'s input_schema as Go compacts its raw JSON (json.RawMessage, estimate.go messagesBytes @ llm-d-router v0.10.0)', () => {
  test('escapes as sent stay, whitespace goes', () => {
    const schema = '{"type": "object",\n  "description": "Z\\u00fcrich, M\\u00fcnchen or K\\u00f8benhavn <city>", "x": ["a", 1.50]}';
    const raw = `{"model": "m", "tools": [{"name": "get_weather", "input_schema": ${schema}}], "messages": [{"role": "user", "content": "Weather?"}]}`;
    const goJson = '[{"name":"get_weather","input_schema":{"type":"object","description":"Z\\u00fcrich, M\\u00fcnchen or K\\u00f8benhavn \\u003ccity\\u003e","x":["a",1.50]}}]';
    const bytes = [goJson, 'user', 'Weather?'].reduce((n, s) => n + Buffer.byteLength(s), 0);
    const parsed = parseAnthropicRequest(Buffer.from(raw), '/v1/messages');
    expect(estimatedPromptTokens({ requestId: 'r', model: 'm', prompt: parsed.prompt, input: parsed.input, headers: {} })).toBe(Math.ceil(bytes / 4));
  });
});

// llm-d-router v0.10.0 tokenizer/estimate.go chatCompletionsBytes / appendChatMessage: an OpenAI chat's stream is its
// tools' JSON, then each message's role and content, nothing else: an assistant's tool_calls are not in it. Its
// approximate producer hashes blocks of that stream, so a decode pod that served turn N holds every block of turn N+1
// but those of the short tail (the assistant's role, the tool's answer). kvroute's scorer hashes ChatML turns that also
// carry the tool calls (as vLLM renders them), so its cached characters are mapped back to the bytes the estimate
// counts; taken as a share of the text, the 8 KB call made the pod hold a fifth of the prompt and disaggregated it.
describe('prefix-based-pd-decider counts an OpenAI chat\'s cached share in the estimate\'s own bytes (estimate.go appendChatMessage @ llm-d-router v0.10.0)', () => {
  test('turn N+1 after a large tool call stays on the decode pod that served turn N (nonCachedTokens 256)', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(PD_EPP_CONFIG.replace('nonCachedTokens: 16', 'nonCachedTokens: 256')));
    const sys = { role: 'system', content: 'You are a coding agent. '.repeat(90) };
    const user = { role: 'user', content: 'Write the file notes.txt please.' };
    const call = { id: 'call_1', type: 'function', function: { name: 'write_file', arguments: JSON.stringify({ path: 'notes.txt', content: 'All work and no play. '.repeat(360) }) } };
    const schedule = (messages: unknown[]) => {
      const parsed = parseOpenAiRequest(Buffer.from(JSON.stringify({ model: 'm', messages })), new Map([[':path', '/v1/chat/completions']]), 'llmd');
      const request = { requestId: 'r', model: 'm', prompt: parsed.prompt, input: parsed.input, headers: {}, attributes: new CycleState() };
      const result = scheduler.schedule(request, [pod('p0', 'prefill'), pod('d0', 'decode')]);
      return { tokens: estimatedPromptTokens(request), decode: result.target.endpoint.name, prefill: result.profileTargets?.get('prefill')?.endpoint.name };
    };
    // Turn N, cold: 551 estimated tokens, all to prefill.
    expect(schedule([sys, user])).toEqual({ tokens: 551, decode: 'd0', prefill: 'p0' });
    // Turn N+1: 556 tokens upstream (the call's 8 KB of arguments not among them), all but a few held by d0.
    expect(schedule([sys, user, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_1', content: 'written' }]))
      .toEqual({ tokens: 556, decode: 'd0', prefill: undefined });
  });
});
