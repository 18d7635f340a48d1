/**
 * Differential test of prefill/decode disaggregation against a reference model of llm-d-router v0.10.0
 * (`pkg/epp/framework/plugins/scheduling/profilehandler/disagg/`: `disagg_profile_handler.go` pickDecodeFirst,
 * pickPrefillFirst, ProcessResults, PreRequest; `pd_profile_handler.go` Pick; `prefix_based_pd_decider.go`
 * disaggregate; `always_disagg_pd_decider.go`; `disagg_headers_handler.go`; `metrics.go` RecordDisaggDecision,
 * RecordPDDecision; `filter/bylabel/roles.go`; `requestcontrol/dataproducer/approximateprefix/plugin.go` Produce,
 * PreRequest, GetBlockSize; `pkg/epp/scheduling/scheduler.go` Schedule: a failed profile's result is nil).
 *
 * kvroute's scheduler is built by its real config loader from upstream-shaped YAML (llm-d-router v0.10.0
 * `deploy/config/pd-epp-config.yaml`'s plugins, varied: handler, stage order, decider and its thresholds, the
 * deprecated header handler beside it) and driven with seeded random pods (roles from `llm-d.ai/role`, IPv4 and IPv6
 * addresses) and prompts sharing 256-character blocks, a client's own `x-prefiller-host-port` now and then; its pre-request
 * hooks then set the headers as request control runs them. The model predicts for every request: the decode pod (the
 * set of best-scoring decode candidates, max-score-picker breaking ties at random), whether the decider disaggregates,
 * the prefill pod (likewise a set), the prefill header, an error when no decode pod passes, and the decision counted.
 *
 * The model keeps upstream's approximate producer index: blocks of 64 pseudo-tokens (GetBlockSize's floor,
 * minBlockSizeTokens; 4 bytes a pseudo-token, `tokenizer/estimate.go`), so 256 ASCII characters; a pod's match is its
 * leading run of chained blocks; the primary (decode) pick and the `prefill` profile's pick are recorded after the
 * cycle (PreRequest). Prompts are ASCII, where upstream's bytes and kvroute's characters agree.
 *
 * Deliberate differences (epp/README.md): no decode pod is kvroute's 503 where upstream answers 429 (either way the
 * request fails); a client's `x-prefiller-host-port` is blanked rather than left to Envoy when no prefill pod is picked.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS, seededRandom } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { parseEndpointPickerConfig } from '../src/config';
import { startEpp, type Logger } from '../src/runner';
import { FakeEnvoy, requestBody, requestHeaders, setHeaders, waitFor } from './extproc-harness';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { SET_REQUEST_HEADERS } from '../src/requestcontrol/hooks';
import { CycleState } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { buildScheduler } from '../src/scheduling/scheduler';
import { SchedulingError, type LLMRequest } from '../src/scheduling/types';

/** GetBlockSize's floor (minBlockSizeTokens 64) × 4 bytes a pseudo-token (estimate.go bytesPerToken). */
const BLOCK_CHARS = 256;
const PREFILL_ROLES = new Set(['prefill', 'encode-prefill', 'prefill-decode', 'both', 'encode-prefill-decode']);
const DECODE_ROLES = new Set(['decode', 'prefill-decode', 'both', 'encode-prefill-decode']);
const ROLES = ['prefill', 'decode', 'both', 'prefill-decode', 'encode-prefill', 'encode-prefill-decode', 'encode', 'Decode', undefined] as const;
const PREFILL_HEADER = 'x-prefiller-host-port';

type Handler = 'disagg' | 'disagg+headers' | 'disagg-no-decider' | 'pd+headers' | 'pd' | 'prefill-first';
interface Scenario {
  handler: Handler;
  /** approx-prefix-cache-producer's maxPrefixTokensToMatch (the sample's 16384, or a window of a few blocks). */
  maxPrefixTokens: number;
  decider: { type: 'prefix'; nonCachedTokens: number; promptTokens: number } | { type: 'always' };
}

function configOf(s: Scenario): string {
  const decider = s.decider.type === 'always'
    ? '- type: always-disagg-pd-decider\n'
    : `- type: prefix-based-pd-decider\n  parameters:\n    nonCachedTokens: ${s.decider.nonCachedTokens}\n    promptTokens: ${s.decider.promptTokens}\n`;
  const deciderName = s.decider.type === 'always' ? 'always-disagg-pd-decider' : 'prefix-based-pd-decider';
  let handler: string;
  switch (s.handler) {
    case 'disagg': handler = `- type: disagg-profile-handler\n  parameters:\n    deciders:\n      prefill: ${deciderName}\n`; break;
    case 'disagg+headers': handler = `- type: disagg-profile-handler\n  parameters:\n    deciders:\n      prefill: ${deciderName}\n- type: disagg-headers-handler\n`; break;
    case 'pd+headers': handler = `- type: pd-profile-handler\n  parameters:\n    deciderPluginName: ${deciderName}\n- type: prefill-header-handler\n`; break;
    case 'pd': handler = `- type: pd-profile-handler\n  parameters:\n    deciderPluginName: ${deciderName}\n`; break;
    case 'prefill-first': handler = '- type: disagg-profile-handler\n  parameters:\n    stageOrder: prefill-first\n'; break;
    case 'disagg-no-decider': handler = '- type: disagg-profile-handler\n'; break;
  }
  // deploy/config/pd-epp-config.yaml @ llm-d-router v0.10.0, the handler and decider varied.
  return `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  parameters:
    maxPrefixTokensToMatch: ${s.maxPrefixTokens}
    lruCapacityPerServer: 31250
- type: prefix-cache-scorer
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
${handler}${s.handler === 'prefill-first' || s.handler === 'disagg-no-decider' ? '' : decider}schedulingProfiles:
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
}

interface ModelPod { name: string; address: string; port: number; role: string | undefined }

/** net.JoinHostPort(address, port), as PreRequest writes the prefill pod. */
const joinHostPort = (address: string, port: number) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/** The reference model of one EPP: upstream's approximate index and the disagg handlers' cycle. */
class Model {
  /** Pod name → chained block prefixes recorded there (a block's key stands for the prompt through it). */
  private readonly index = new Map<string, Set<string>>();

  constructor(private readonly s: Scenario) {}

  /**
   * prefixhash.GetBlockHashes: the prompt's full blocks, at most resolveMaxBlocks (maxPrefixTokensToMatch ÷ the block
   * size, rounded down), each chained from a seed of the request's model (computeBlockHashes).
   */
  private blocks(model: string, prompt: string): string[] {
    const keys: string[] = [];
    const maxBlocks = Math.floor(this.s.maxPrefixTokens / (BLOCK_CHARS / 4));
    for (let end = BLOCK_CHARS; end <= prompt.length && keys.length < maxBlocks; end += BLOCK_CHARS) keys.push(`${model}\u0000${prompt.slice(0, end)}`);
    return keys;
  }

  /** matchLongestPrefix: the leading blocks the pod holds, stopping at the first it does not. */
  cachedBlocks(pod: string, model: string, prompt: string): number {
    const held = this.index.get(pod);
    let n = 0;
    for (const key of this.blocks(model, prompt)) {
      if (held?.has(key) !== true) break;
      n++;
    }
    return n;
  }

  /**
   * The best candidates of a profile: prefix-cache-scorer (matched blocks ÷ the prompt's blocks, weight 2) plus
   * queue-scorer (every queue empty: equal), so the most matched blocks; max-score-picker picks one of them at random.
   */
  best(candidates: readonly ModelPod[], model: string, prompt: string): Set<string> {
    const hits = candidates.map((p) => this.cachedBlocks(p.name, model, prompt));
    const top = Math.max(...hits);
    return new Set(candidates.filter((_, i) => hits[i] === top).map((p) => p.name));
  }

  /** prefix_based_pd_decider.go disaggregate, or always_disagg_pd_decider.go. */
  disaggregate(model: string, prompt: string, decodePod: string): boolean {
    const d = this.s.decider;
    if (d.type === 'always') return true;
    if (d.nonCachedTokens === 0) return false;
    const inputTokens = Math.ceil(Buffer.byteLength(prompt) / 4); // estimate.go: bytes packed 4 to a pseudo-token
    if (d.promptTokens > 0 && inputTokens < d.promptTokens) return false;
    if (inputTokens < d.nonCachedTokens) return false;
    const hitPrefixTokens = this.cachedBlocks(decodePod, model, prompt) * (BLOCK_CHARS / 4); // CachedBlockCount × BlockSizeTokens
    return inputTokens - hitPrefixTokens >= d.nonCachedTokens;
  }

  /** approximateprefix/plugin.go PreRequest: the primary pick and the `prefill` profile's pick learn every block. */
  record(model: string, prompt: string, pods: readonly string[]): void {
    for (const pod of pods) {
      let held = this.index.get(pod);
      if (held === undefined) this.index.set(pod, (held = new Set()));
      for (const key of this.blocks(model, prompt)) held.add(key);
    }
  }
}

interface Outcome {
  error: boolean;
  decode?: string;
  prefill?: string;
  header?: string;
  counted: string[];
}

const snapshotOf = (p: ModelPod): EndpointSnapshot => ({
  endpoint: { key: joinHostPort(p.address, p.port), name: p.name, namespace: 'default', address: p.address, port: p.port, labels: p.role === undefined ? {} : { 'llm-d.ai/role': p.role } },
  metrics: { ...EMPTY_METRICS, updateTime: Date.now() },
  activeRequests: 0,
});

/** A pod layout, a scenario and prompts drawn from `random`. */
interface Draw {
  pods: ModelPod[];
  prompt(): string;
  clientHeader(): Record<string, string>;
}

function drawPods(random: () => number, count: number, address: (i: number, v6: boolean) => string): ModelPod[] {
  return Array.from({ length: count }, (_, i) => {
    const v6 = random() < 0.3;
    return { name: `pod-${i}`, address: address(i, v6), port: 8000 + Math.floor(random() * 3), role: ROLES[Math.floor(random() * ROLES.length)] };
  });
}

function draws(random: () => number, pods: ModelPod[]): Draw {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const shared = Array.from({ length: 4 }, (_, i) => String.fromCharCode(97 + i).repeat(BLOCK_CHARS - 8) + `block-${i}.`);
  return {
    pods,
    // Prompts of shared 256-character blocks and a tail of 0..600 characters (ASCII).
    prompt: () => {
      let prompt = '';
      for (let b = Math.floor(random() * 4); b > 0; b--) prompt += pick(shared);
      const tail = Math.floor(random() * 600);
      for (let c = 0; c < tail; c++) prompt += String.fromCharCode(32 + Math.floor(random() * 95));
      return prompt;
    },
    clientHeader: (): Record<string, string> => (random() < 0.3 ? { [PREFILL_HEADER]: 'attacker.example:1' } : {}),
  };
}

/**
 * What upstream does with `prompt`, given kvroute's picks `got` where upstream's picker would choose at random among
 * equals (those are checked to be among the model's best, then taken): the outcome kvroute must match. Records the picks.
 */
function judge(model: Model, s: Scenario, pods: readonly ModelPod[], modelName: string, prompt: string, clientHeader: Record<string, string>, got: Outcome, where: string): Outcome {
  const decodable = pods.filter((p) => p.role === undefined || DECODE_ROLES.has(p.role));
  const prefillable = pods.filter((p) => p.role !== undefined && PREFILL_ROLES.has(p.role));
  const among = (what: 'decode' | 'prefill', best: Set<string>, picked: string | undefined) => {
    if (picked === undefined || !best.has(picked)) expect({ where, [what]: picked }).toEqual({ where, [what]: [...best] });
  };
  const want: Outcome = { error: false, counted: [] };
  const type = s.handler.startsWith('pd') ? 'pd-profile-handler' : 'disagg-profile-handler';
  let prefillPod: string | undefined;
  if (decodable.length === 0) {
    // ProcessResults: "failed to find available decode workers"; the handler returned before counting.
    want.error = true;
  } else if (s.handler === 'prefill-first') {
    // pickPrefillFirst: the prefill profile (whatever it picks), then decode.
    if (prefillable.length > 0) {
      among('prefill', model.best(prefillable, modelName, prompt), got.prefill);
      prefillPod = got.prefill;
    }
    among('decode', model.best(decodable, modelName, prompt), got.decode);
    want.decode = got.decode;
    want.counted = [`${type}:${prefillPod !== undefined ? 'prefill-decode' : 'decode-only'}`];
  } else {
    // pickDecodeFirst / pd_profile_handler.go Pick: decode, then the decider on the decode pick.
    among('decode', model.best(decodable, modelName, prompt), got.decode);
    want.decode = got.decode;
    // "No deciders.prefill configured, P/D disaggregation disabled" (HandlerFactory): never a prefill.
    const split = s.handler !== 'disagg-no-decider' && model.disaggregate(modelName, prompt, got.decode!);
    if (split && prefillable.length > 0) {
      among('prefill', model.best(prefillable, modelName, prompt), got.prefill);
      prefillPod = got.prefill;
    }
    // pd_profile_handler.go counts the decider's answer; disagg_profile_handler.go whether prefill picked a pod.
    const decision = type === 'pd-profile-handler' ? (split ? 'prefill-decode' : 'decode-only') : (prefillPod !== undefined ? 'prefill-decode' : 'decode-only');
    want.counted = [`${type}:${decision}`];
  }
  if (!want.error) {
    want.prefill = prefillPod;
    if (s.handler === 'pd') {
      want.header = clientHeader[PREFILL_HEADER]; // pd-profile-handler is no PreRequest: the header is not touched
    } else if (prefillPod !== undefined) {
      const p = pods.find((x) => x.name === prefillPod)!;
      want.header = joinHostPort(p.address, p.port);
    } else {
      // Upstream deletes it from the headers it re-sets (Envoy keeps the client's); kvroute blanks it (deliberate, epp/README.md).
      want.header = clientHeader[PREFILL_HEADER] === undefined ? undefined : '';
    }
    model.record(modelName, prompt, [want.decode!, ...(prefillPod !== undefined ? [prefillPod] : [])]);
  }
  return want;
}

function drawScenario(random: () => number, handlers: readonly Handler[]): Scenario {
  const handler = handlers[Math.floor(random() * handlers.length)]!;
  const decider: Scenario['decider'] = random() < 0.2
    ? { type: 'always' }
    : { type: 'prefix', nonCachedTokens: random() < 0.1 ? 0 : 1 + Math.floor(random() * 200), promptTokens: random() < 0.5 ? 0 : Math.floor(random() * 300) };
  const maxPrefixTokens = random() < 0.5 ? 16384 : [32, 128, 320, 512][Math.floor(random() * 4)]!;
  return { handler, decider, maxPrefixTokens };
}

function runScenario(seed: number): { cases: number; disaggregated: number } {
  const random = seededRandom(seed);
  const scenario = drawScenario(random, ['disagg', 'disagg+headers', 'disagg-no-decider', 'pd+headers', 'pd', 'prefill-first']);
  const counted: string[] = [];
  const count = (_n: string, type: string, _m: string, decision: string) => counted.push(`${type}:${decision}`);
  const scheduler = buildScheduler(parseEndpointPickerConfig(configOf(scenario)),
    { metrics: { ...NOOP_SCHEDULING_METRICS, countDisaggDecision: count, countPdDecision: count } });
  const hooks = scheduler.plugins.ofKind('pre-request');
  const model = new Model(scenario);
  const pods = drawPods(random, 1 + Math.floor(random() * 5), (i, v6) => (v6 ? `fd00::${i + 1}` : `10.0.0.${i + 1}`));
  const draw = draws(random, pods);
  const snapshots = pods.map(snapshotOf);

  let disaggregated = 0;
  const cases = 25;
  for (let r = 0; r < cases; r++) {
    const prompt = draw.prompt();
    const clientHeader = draw.clientHeader();
    const modelName = random() < 0.8 ? 'm' : 'other-model';
    const where = `seed ${seed} request ${r} (${scenario.handler}, ${JSON.stringify(scenario.decider)}, model ${modelName}, window ${scenario.maxPrefixTokens}, ${prompt.length} characters, pods ${pods.map((p) => `${p.name}=${p.role}`).join(' ')})`;
    const request: LLMRequest = { requestId: `r${r}`, model: modelName, prompt, headers: { ...clientHeader }, attributes: new CycleState() };
    counted.length = 0;
    const got: Outcome = { error: false, counted: [] };
    try {
      const result = scheduler.schedule(request, snapshots);
      got.decode = result.target.endpoint.name;
      got.prefill = result.profileTargets?.get('prefill')?.endpoint.name;
      // As request control runs them once the request is committed.
      for (const hook of hooks) hook.preRequest(request, result);
      got.header = request.attributes!.get(SET_REQUEST_HEADERS)?.[PREFILL_HEADER] ?? request.headers[PREFILL_HEADER];
    } catch (e) {
      if (!(e instanceof SchedulingError)) throw e;
      got.error = true;
    }
    got.counted = [...counted];
    const want = judge(model, scenario, pods, modelName, prompt, clientHeader, got, where);
    expect({ where, ...got }).toEqual({ where, ...want });
    if (want.prefill !== undefined) disaggregated++;
  }
  return { cases, disaggregated };
}

describe('P/D disaggregation against a reference model of llm-d-router v0.10.0 (seeded)', () => {
  test('80 scenarios of 25 requests each: every pick, decision, header and count as the model says', () => {
    let cases = 0;
    let disaggregated = 0;
    for (let seed = 1; seed <= 80; seed++) {
      const r = runScenario(seed);
      cases += r.cases;
      disaggregated += r.disaggregated;
    }
    // Both outcomes are exercised, not just one.
    expect(cases).toBe(2000);
    expect(disaggregated).toBeGreaterThan(200);
    expect(cases - disaggregated).toBeGreaterThan(200);
  });
});

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('P/D disaggregation over the ext_proc stream against the reference model (seeded)', () => {
  const servers: FakeVllmServer[] = [];
  let dir: string | undefined;
  let close = async (): Promise<void> => undefined;
  afterEach(async () => {
    await close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  // One EPP (its start is the slow part): pd-epp-config.yaml with disagg-profile-handler and the prefix decider at a
  // drawn threshold, six real metrics servers with drawn roles (at least one decode pod, so the stream always gets a
  // destination), from a file-discovery endpoints file (IPv4 only, as upstream's; IPv6 keys are drawn above).
  test('40 requests: destination, x-prefiller-host-port and llm_d_epp_disagg_decision_total as the model says', async () => {
    const random = seededRandom(7);
    const scenario: Scenario = { handler: 'disagg', maxPrefixTokens: 16384, decider: { type: 'prefix', nonCachedTokens: 40 + Math.floor(random() * 60), promptTokens: 0 } };
    const pods = drawPods(random, 6, () => '127.0.0.1');
    pods[0]!.role = 'decode';
    for (const p of pods) {
      const server = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] }, p.address);
      servers.push(server);
      p.port = server.port;
    }
    dir = mkdtempSync(join(tmpdir(), 'kvroute-disagg-diff-'));
    const file = join(dir, 'endpoints.yaml');
    writeFileSync(file, `endpoints:\n${pods.map((p) => `  - {name: ${p.name}, address: "${p.address}", port: "${p.port}"${p.role === undefined ? '' : `, labels: {llm-d.ai/role: ${p.role}}`}}`).join('\n')}\n`);
    const text = configOf(scenario)
      .replace('plugins:\n', `plugins:\n- name: files\n  type: file-discovery\n  parameters: {path: ${JSON.stringify(file)}}\n`)
      .replace('schedulingProfiles:', 'dataLayer:\n  discovery: {pluginRef: files}\nschedulingProfiles:');
    const epp = await startEpp(parseArgs(['--config-text', text, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms'], {})!, quiet);
    const envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    close = async () => { envoy.close(); await epp.stop(); };
    await waitFor(() => epp.datastore.snapshot().length === pods.length && epp.datastore.snapshot().every((s) => s.metrics.updateTime > 0), 'every pod scraped', { limitMs: 45_000 });

    const byKey = new Map(pods.map((p) => [joinHostPort(p.address, p.port), p.name]));
    const model = new Model(scenario);
    const draw = draws(random, pods);
    const counted = new Map<string, number>();
    for (let r = 0; r < 40; r++) {
      const prompt = draw.prompt();
      const clientHeader = draw.clientHeader();
      const where = `request ${r} (${JSON.stringify(scenario.decider)}, ${prompt.length} characters, pods ${pods.map((p) => `${p.name}=${p.role}@${p.address}`).join(' ')})`;
      const s = envoy.open();
      s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json', ...clientHeader }, false));
      s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt })), true));
      const first = await s.next();
      s.cancel();
      const set = setHeaders(first.request_headers?.response?.header_mutation);
      const header = set[PREFILL_HEADER] ?? clientHeader[PREFILL_HEADER];
      const got: Outcome = { error: first.immediate_response !== undefined && first.immediate_response !== null, decode: byKey.get(set['x-gateway-destination-endpoint']!), prefill: header === undefined ? undefined : byKey.get(header), header, counted: [] };
      const want = judge(model, scenario, pods, 'm', prompt, clientHeader, got, where);
      got.counted = want.counted; // counted from the metrics page below
      expect({ where, ...got }).toEqual({ where, ...want });
      for (const c of want.counted) counted.set(c, (counted.get(c) ?? 0) + 1);
    }
    // metrics.go RecordDisaggDecision: llm_d_epp_disagg_decision_total{plugin_name, plugin_type, model_name, decision_type}.
    const page = await (await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`)).text();
    const lines = page.split('\n').filter((l) => l.startsWith('llm_d_epp_disagg_decision_total{')).sort();
    const expected = [...counted].map(([k, n]) => `llm_d_epp_disagg_decision_total{plugin_name="disagg-profile-handler",plugin_type="disagg-profile-handler",model_name="m",decision_type="${k.split(':')[1]}"} ${n}`).sort();
    expect(lines).toEqual(expected);
    expect(counted.size).toBe(2); // both decisions were exercised
  });
});
