import type { IncomingRequest } from '@kvroute/epp/extproc';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, preciseEndpointPickerConfig, prefixFirstEndpointPickerConfig, renderEndpointPickerConfig, type EndpointPickerConfig } from '@kvroute/epp/config';
import {
  APPROX_PREFIX_CONFIG, ApproxPrefixTree, CacheAwareDirector, LeastRequestDirector, POLICY_NAMES, RandomDirector, RoundRobinDirector,
  SGLANG_DEFAULTS, isImbalancedLoad, leastLoadedIndex, routingPolicy, type PolicyName,
} from '../src/policies';
import { DEFAULT_ROUTING_OPTIONS } from '../src/routing-bench';
import { DEFAULT_SIM, simArgs, toldPodLimit } from '../src/stack';

const ENDPOINTS = ['127.0.0.1:8001', '127.0.0.1:8002', '127.0.0.1:8003', '127.0.0.1:8004'];
const signal = new AbortController().signal;

function chatRequest(system: string, user: string): IncomingRequest {
  const body = Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'system', content: system }, { role: 'user', content: user }] }));
  return { requestId: 'r', headers: new Map([[':path', '/v1/chat/completions']]), body, filterMetadata: {} };
}

const LONG_A = 'You are assistant A. '.repeat(40);
const LONG_B = 'You are assistant B, another group entirely. '.repeat(20);

describe('ApproxPrefixTree', () => {
  test('splits edges on insert, counts characters, matches the longest prefix', () => {
    const t = new ApproxPrefixTree();
    t.insert('hello world');
    expect(t.size).toBe(11);
    t.insert('hello there');
    // "hello " shared, then "world" and "there".
    expect(t.size).toBe(16);
    expect(t.nodeCount).toBe(3);
    expect(t.matchLength('hello wx')).toBe(7);
    expect(t.matchLength('hello there, again')).toBe(11);
    expect(t.matchLength('goodbye')).toBe(0);
    expect(t.matchLength('')).toBe(0);
    t.insert('hello world');
    expect(t.size).toBe(16);
    t.insert('hello');
    expect(t.size).toBe(16);
    expect(t.matchLength('hello')).toBe(5);
  });

  test('grows with new text and evicts least-recently-used leaves first, then emptied parents', () => {
    const t = new ApproxPrefixTree();
    t.insert('shared-prefix/alpha');
    t.insert('shared-prefix/beta');
    t.insert('other');
    t.insert('shared-prefix/alpha'); // alpha is now the most recent
    expect(t.size).toBe('shared-prefix/'.length + 'alpha'.length + 'beta'.length + 'other'.length);
    // Over budget by a little: the oldest leaf is "beta" (inserted before "other", and alpha was touched again).
    expect(t.evictTo(t.size - 1)).toBe(4);
    expect(t.matchLength('shared-prefix/beta')).toBe('shared-prefix/'.length);
    expect(t.matchLength('other')).toBe(5);
    // Next oldest is "other", then "alpha"; then "shared-prefix/" is a leaf and goes too.
    t.evictTo(0);
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
    expect(t.evictedChars).toBe('shared-prefix/'.length + 'alpha'.length + 'beta'.length + 'other'.length);
    expect(t.evictTo(0)).toBe(0);
  });
});

describe('CacheAwareDirector (SGLang-style)', () => {
  test('defaults are SGLang\'s', () => {
    const d = new CacheAwareDirector(ENDPOINTS);
    expect(d.options).toEqual(SGLANG_DEFAULTS);
    expect(SGLANG_DEFAULTS).toEqual({ cacheThreshold: 0.3, balanceAbsThreshold: 64, balanceRelThreshold: 1.5, maxTreeChars: 67_108_864, missRouting: 'least-load' });
  });

  test('a cache miss goes to the least-loaded worker (SGLang since PR #14650), not to the smallest tree', () => {
    // Workers 0-2 each take one long prompt, worker 3 a short one; the long ones finish, and two more short prompts
    // match worker 3's (a match of 50% of the text) and stay running there. Both routers place these the same way.
    const setUp = (d: CacheAwareDirector) => {
      const long = [0, 1, 2].map((i) => d.choose(`long prompt ${i} `.repeat(50)).index);
      expect(long).toEqual([0, 1, 2]);
      expect(d.choose('x0').index).toBe(3);
      long.forEach((i) => d.done(i));
      expect(d.choose('x1')).toMatchObject({ index: 3, branch: 'prefix-match' });
      expect(d.choose('x2')).toMatchObject({ index: 3, branch: 'prefix-match' });
      expect(d.trees.map((t) => t.size)).toEqual([700, 700, 700, 4]);
      expect(d.inFlight).toEqual([0, 0, 0, 3]);
      expect(d.isImbalanced()).toBe(false);
    };
    const d = new CacheAwareDirector(ENDPOINTS);
    setUp(d);
    // Worker 3 has the smallest tree but the most work: the miss goes to the first of the least loaded, as Rust's
    // min_by_key picks it.
    const miss = d.choose('a brand new prompt nobody has seen');
    expect(miss).toMatchObject({ index: 0, branch: 'least-load' });
    expect(miss.matchRate).toBeLessThanOrEqual(0.3);
    // The text still goes into the chosen worker's tree.
    expect(d.trees[0].matchLength('a brand new prompt nobody has seen')).toBe('a brand new prompt nobody has seen'.length);
    expect(d.decisions).toEqual({ imbalanced: 0, 'prefix-match': 2, 'least-load': 5, 'smallest-tree': 0 });
    // The earlier router (get_smallest_tenant) sends the same miss to the busy worker 3.
    const old = new CacheAwareDirector(ENDPOINTS, { missRouting: 'smallest-tree' });
    setUp(old);
    expect(old.choose('a brand new prompt nobody has seen')).toMatchObject({ index: 3, branch: 'smallest-tree' });
    expect(() => new CacheAwareDirector(ENDPOINTS, { missRouting: 'random' as never })).toThrow(/missRouting must be one of least-load, smallest-tree/);
  });

  test('with missRouting smallest-tree, new text goes to the smallest tree; text matching more than the threshold goes to its worker', () => {
    const d = new CacheAwareDirector(ENDPOINTS, { missRouting: 'smallest-tree' });
    const a = d.choose(`${LONG_A}question one`);
    expect(a).toMatchObject({ index: 0, branch: 'smallest-tree' });
    d.done(0);
    const b = d.choose(`${LONG_B}question two`);
    expect(b).toMatchObject({ index: 1, branch: 'smallest-tree' });
    d.done(1);
    const a2 = d.choose(`${LONG_A}question three, a different one`);
    expect(a2.index).toBe(0);
    expect(a2.branch).toBe('prefix-match');
    expect(a2.matchRate).toBeGreaterThan(0.3);
    d.done(0);
    // A match of under 30% of the text does not count: the smallest tree (worker 2, empty) gets it.
    const short = d.choose(`You are assistant A. ${'unrelated words here '.repeat(30)}`);
    expect(short.branch).toBe('smallest-tree');
    expect(short.index).toBe(2);
    expect(short.matchRate).toBeLessThan(0.3);
    expect(d.decisions).toEqual({ imbalanced: 0, 'prefix-match': 1, 'least-load': 0, 'smallest-tree': 3 });
  });

  test('switches to the least-loaded worker when loads are imbalanced, and still grows that worker\'s tree', () => {
    const d = new CacheAwareDirector(ENDPOINTS, { balanceAbsThreshold: 2, balanceRelThreshold: 1.5 });
    const text = (i: number) => `${LONG_A}question ${i}`;
    // None released: worker 0 takes the group until it is 3 ahead (3 - 0 > 2 and 3 > 1.5 × 0).
    expect([0, 1, 2].map((i) => d.choose(text(i)).index)).toEqual([0, 0, 0]);
    expect(d.isImbalanced()).toBe(true);
    const c = d.choose(text(3));
    expect(c).toMatchObject({ index: 1, branch: 'imbalanced' });
    expect(d.trees[1].size).toBe(text(3).length);
    expect(d.inFlight).toEqual([3, 1, 0, 0]);
    // Still imbalanced (3 vs 0): the next least loaded.
    expect(d.choose(text(4))).toMatchObject({ index: 2, branch: 'imbalanced' });
    // Releasing brings the loads back within the thresholds: the prefix wins again (worker 0 or 1 hold it; 1 is less loaded).
    d.done(0);
    d.done(0);
    expect(d.isImbalanced()).toBe(false);
    const back = d.choose(text(5));
    expect(back.branch).toBe('prefix-match');
    expect(d.decisions.imbalanced).toBe(2);
  });

  test('imbalance needs both thresholds crossed', () => {
    // SGLang's defaults: 64 apart and 1.5× the minimum.
    expect(isImbalancedLoad([65, 0], 64, 1.5)).toBe(true);
    expect(isImbalancedLoad([64, 0], 64, 1.5)).toBe(false);
    expect(isImbalancedLoad([200, 100], 64, 1.5)).toBe(true);
    expect(isImbalancedLoad([200, 140], 64, 1.5)).toBe(false); // 60 apart
    expect(isImbalancedLoad([300, 201], 64, 1.5)).toBe(false); // 99 apart but 300 < 1.5 × 201
    expect(isImbalancedLoad([5, 2], 2, 3)).toBe(false); // 3 apart but 5 < 3 × 2
    expect(isImbalancedLoad([7, 1], 2, 3)).toBe(true);
    expect(isImbalancedLoad([], 2, 3)).toBe(false);
  });

  test('trees stay within the budget by evicting old text', () => {
    const d = new CacheAwareDirector(ENDPOINTS, { maxTreeChars: 300 });
    for (let i = 0; i < 40; i++) {
      const { index } = d.choose(`Group ${i % 7} `.repeat(20) + `question ${i}`);
      d.done(index);
    }
    // Seven 160-character group prompts over four workers: some worker holds two groups and must evict.
    for (const t of d.trees) expect(t.size).toBeLessThanOrEqual(300);
    expect(d.trees.some((t) => t.evictedChars > 0)).toBe(true);
  });

  test('routes and releases through the RequestDirector interface', async () => {
    const d = new CacheAwareDirector(ENDPOINTS);
    const first = await d.route(chatRequest(LONG_A, 'one'), signal);
    const second = await d.route(chatRequest(LONG_A, 'two'), signal);
    if (first.kind !== 'route' || second.kind !== 'route') throw new Error('expected routes');
    expect(first.endpoint).toBe(ENDPOINTS[0]);
    expect(second.endpoint).toBe(ENDPOINTS[0]);
    expect(d.inFlight).toEqual([2, 0, 0, 0]);
    d.release(first.ticket, 'completed');
    d.release(second.ticket, 'cancelled');
    expect(d.inFlight).toEqual([0, 0, 0, 0]);
    // A request without a body (or with one that is not JSON) still gets an endpoint.
    const bare = await d.route({ requestId: 'x', headers: new Map(), filterMetadata: {} }, signal);
    const junk = await d.route({ requestId: 'y', headers: new Map(), body: Buffer.from('not json'), filterMetadata: {} }, signal);
    expect(bare.kind).toBe('route');
    expect(junk.kind).toBe('route');
  });

  test('rejects bad options', () => {
    expect(() => new CacheAwareDirector([])).toThrow(/at least one endpoint/);
    expect(() => new CacheAwareDirector(ENDPOINTS, { cacheThreshold: 2 })).toThrow(/cacheThreshold/);
    expect(() => new CacheAwareDirector(ENDPOINTS, { balanceRelThreshold: 0.5 })).toThrow(/balanceRelThreshold/);
  });
});

describe('baseline directors', () => {
  test('random is reproducible from its seed and spreads over every endpoint', async () => {
    const picks = async (seed: number, n: number) => {
      const d = new RandomDirector(ENDPOINTS, seed);
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = await d.route(chatRequest('s', `${i}`), signal);
        if (r.kind !== 'route') throw new Error('expected a route');
        out.push(r.endpoint);
        d.release(r.ticket, 'completed');
      }
      return out;
    };
    const a = await picks(3, 2000);
    expect(await picks(3, 2000)).toEqual(a);
    expect(await picks(4, 50)).not.toEqual(a.slice(0, 50));
    for (const e of ENDPOINTS) {
      const share = a.filter((x) => x === e).length / a.length;
      expect(share).toBeGreaterThan(0.2);
      expect(share).toBeLessThan(0.3);
    }
  });

  test('least-request picks the endpoint with the fewest requests in flight', async () => {
    const d = new LeastRequestDirector(ENDPOINTS, 1);
    const tickets: unknown[] = [];
    const chosen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await d.route(chatRequest('s', `${i}`), signal);
      if (r.kind !== 'route') throw new Error('expected a route');
      chosen.push(r.endpoint);
      tickets.push(r.ticket);
    }
    expect([...chosen].sort()).toEqual(ENDPOINTS); // one each, whatever the tie-breaks
    expect(d.inFlight).toEqual([1, 1, 1, 1]);
    const freed = chosen.indexOf(ENDPOINTS[2]);
    d.release(tickets[freed], 'completed');
    const next = await d.route(chatRequest('s', 'next'), signal);
    expect(next.kind === 'route' && next.endpoint).toBe(ENDPOINTS[2]);
    expect(d.routed).toEqual([1, 1, 2, 1]);
  });

  test('round robin cycles; leastLoadedIndex breaks ties with the generator or takes the first', async () => {
    const d = new RoundRobinDirector(ENDPOINTS);
    const out: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await d.route(chatRequest('s', `${i}`), signal);
      if (r.kind === 'route') out.push(r.endpoint);
    }
    expect(out).toEqual([...ENDPOINTS, ENDPOINTS[0], ENDPOINTS[1]]);
    expect(leastLoadedIndex([2, 1, 1, 3])).toBe(1);
    expect(leastLoadedIndex([2, 1, 1, 3], () => 0.99)).toBe(2);
  });
});

describe('the policy catalogue', () => {
  test('the upstream approximate-prefix config loads with the EPP\'s strict loader, with the GIE shape', () => {
    const config = parseEndpointPickerConfig(APPROX_PREFIX_CONFIG);
    // The utilization-detector is GIE's default detector, which GIE's loader adds (config/loader/defaults.go).
    expect(config.plugins.map((p) => p.type)).toEqual(['queue-scorer', 'kv-cache-utilization-scorer', 'prefix-cache-scorer', 'max-score-picker', 'single-profile-handler', 'utilization-detector']);
    // GIE v1.5.0's default (pkg/epp/config/loader/defaults.go: 2 / 2 / 3; approximateprefix/types.go: AutoTune true).
    expect(config.plugins[2].parameters).toMatchObject({ mode: 'estimate', maxPrefixBlocksToMatch: 256, autoTune: true });
    const weights = Object.fromEntries(config.schedulingProfiles[0].plugins.map((p) => [p.pluginRef, p.weight]));
    expect(weights).toMatchObject({ 'queue-scorer': 2, 'kv-cache-utilization-scorer': 2, 'prefix-cache-scorer': 3 });
    // As GIE runs the chart without the flowControl feature gate; and what the EPP renders from it loads again.
    expect(routingPolicy('approx-prefix', { seed: 1, sglang: {} })).toMatchObject({ kind: 'epp', eppArgs: ['--flow-control=false'] });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
  });

  test('kvroute-latency runs the EPP with latencyEndpointPickerConfig, rendered so the strict loader reads it back; it is opt-in', () => {
    const policy = routingPolicy('kvroute-latency', { seed: 1, sglang: {} });
    if (policy.kind !== 'epp' || policy.configText === undefined) throw new Error('expected an EPP policy with a config');
    const config = parseEndpointPickerConfig(policy.configText);
    const weights = Object.fromEntries(config.schedulingProfiles[0].plugins.map((p) => [p.pluginRef, p.weight]));
    expect(weights).toMatchObject({ 'prefix-cache-scorer': 1, 'latency-scorer': 4, 'kv-cache-utilization-scorer': 1 });
    expect(DEFAULT_ROUTING_OPTIONS.policies).not.toContain('kvroute-latency');
    expect(DEFAULT_ROUTING_OPTIONS.policies).toEqual(POLICY_NAMES.filter((n) => !['kvroute-latency', 'kvroute-latency-active', 'kvroute-prefix-first', 'kvroute-active2', 'kvroute-sessions', 'kvroute-no-session-load', 'kvroute-no-lru', 'kvroute-soft', 'kvroute-filter', 'kvroute-precise-filter', 'kvroute-precise-prefix-first', 'kvroute-precise-latency4', 'kvroute-precise-64', 'kvroute-precise-no-session-load', 'kvroute-precise-lru', 'kvroute-prefill-priority', 'kvroute-untold', 'kvroute-precise-untold', 'kvroute-session-load16', 'kvroute-session-headroom', 'kvroute-learnt-cpt', 'kvroute-page-queue', 'kvroute-slot-wait-all', 'kvroute-long-prefill-256', 'kvroute-own-prefill2', 'kvroute-own-prefill2-peers', 'kvroute-slot-wait-sessions', 'kvroute-slot-wait-imbalanced', 'kvroute-slot-wait-avoidable', 'kvroute-no-flow-control', 'kvroute-latency2', 'kvroute-no-keep-holder', 'kvroute-precise-no-keep-holder', 'round-robin-extproc'].includes(n)));
  });

  test('kvroute-precise-prefix-first and kvroute-precise-latency4 are the precise config without the latency scorer and with it at 4 (it has 2)', () => {
    const precise = preciseEndpointPickerConfig({ mode: 'central', zmqEndpoint: 'tcp://127.0.0.1:5557', blockSize: 16, modelName: 'm' });
    const latencyWeight = (c: typeof precise) => c.schedulingProfiles[0]!.plugins.find((r) => r.pluginRef === 'latency-scorer')?.weight;
    expect(latencyWeight(precise)).toBe(2);
    for (const [name, weight] of [['kvroute-precise-prefix-first', undefined], ['kvroute-precise-latency4', 4]] as const) {
      const policy = routingPolicy(name, { seed: 1, sglang: {} });
      if (policy.kind !== 'epp' || policy.precise !== true || policy.configTransform === undefined) throw new Error(`${name}: expected a precise EPP policy with a transform`);
      const config = policy.configTransform(precise);
      expect(latencyWeight(config)).toBe(weight);
      expect(config.schedulingProfiles[0]!.plugins.map((r) => r.pluginRef)).toContain('precise-prefix-cache-scorer');
    }
  });

  test('kvroute-precise-lru is the precise config with the default\'s no-hit-lru-scorer at 4 right after the precise scorer', () => {
    const precise = preciseEndpointPickerConfig({ mode: 'central', zmqEndpoint: 'tcp://127.0.0.1:5557', blockSize: 16, modelName: 'm' });
    expect(precise.plugins.map((p) => p.type)).not.toContain('no-hit-lru-scorer');
    const policy = routingPolicy('kvroute-precise-lru', { seed: 1, sglang: {} });
    if (policy.kind !== 'epp' || policy.precise !== true || policy.configTransform === undefined) throw new Error('expected a precise EPP policy with a transform');
    const config = policy.configTransform(precise);
    // Naming the precise scorer, whose match it read when measured (one naming none reads the default approximate producer).
    const lru = defaultEndpointPickerConfig().plugins.find((p) => p.type === 'no-hit-lru-scorer')!;
    expect(config.plugins.find((p) => p.type === 'no-hit-lru-scorer')).toEqual({ ...lru, parameters: { ...lru.parameters, prefixMatchInfoProducerName: 'precise-prefix-cache-scorer' } });
    const refs = config.schedulingProfiles[0]!.plugins;
    const at = refs.findIndex((r) => r.pluginRef === 'precise-prefix-cache-scorer');
    expect(refs[at + 1]).toEqual({ pluginRef: 'no-hit-lru-scorer', weight: 4 });
    expect(refs.filter((r) => r.pluginRef !== 'no-hit-lru-scorer')).toEqual(precise.schedulingProfiles[0]!.plugins);
  });

  test('kvroute-precise-64 is the precise config over engine blocks a quarter of its blockSize (llm-d\'s guides\' 64 over vLLM\'s default 16: many:1)', () => {
    const policy = routingPolicy('kvroute-precise-64', { seed: 1, sglang: {} });
    expect(policy).toEqual({ kind: 'epp', name: 'kvroute-precise-64', precise: true, preciseBlockFactor: 4 });
  });

  test('the session-placement candidates: kvroute-sessions adds session-load-scorer 4 to the prefix-first config; kvroute-soft is the latency config with soft stickiness and it', () => {
    const configOf = (name: 'kvroute-sessions' | 'kvroute-soft') => {
      const policy = routingPolicy(name, { seed: 1, sglang: {} });
      if (policy.kind !== 'epp' || policy.configText === undefined) throw new Error('expected an EPP policy with a config');
      return parseEndpointPickerConfig(policy.configText);
    };
    const sessions = configOf('kvroute-sessions');
    const refs = sessions.schedulingProfiles[0].plugins.map((p) => p.pluginRef);
    expect(refs.slice(-2)).toEqual(['session-load-scorer', 'max-score-picker']);
    expect(Object.fromEntries(sessions.schedulingProfiles[0].plugins.map((p) => [p.pluginRef, p.weight]))).toMatchObject({
      'prefix-cache-scorer': 3, 'queue-scorer': 1, 'session-load-scorer': 4,
    });
    expect(sessions.plugins.find((p) => p.type === 'session-affinity-filter')!.parameters).not.toHaveProperty('stickiness');
    expect(sessions.plugins.find((p) => p.type === 'session-load-scorer')!.parameters).toMatchObject({ minRequests: 2 });
    const soft = configOf('kvroute-soft');
    expect(soft.plugins.find((p) => p.type === 'session-affinity-filter')!.parameters).toMatchObject({ stickiness: 'soft' });
    expect(Object.fromEntries(soft.schedulingProfiles[0].plugins.map((p) => [p.pluginRef, p.weight]))).toMatchObject({
      'prefix-cache-scorer': 1, 'latency-scorer': 4, 'session-load-scorer': 4,
    });
  });

  test('kvroute-no-lru is the prefix-first config without no-hit-lru-scorer, the default before it joined; kvroute-prefix-first the default before the latency scorer joined; kvroute-active2 the default with the in-flight scorer at 2', () => {
    const configOf = (name: 'kvroute-no-lru' | 'kvroute-prefix-first' | 'kvroute-active2') => {
      const policy = routingPolicy(name, { seed: 1, sglang: {} });
      if (policy.kind !== 'epp' || policy.configText === undefined) throw new Error('expected an EPP policy with a config');
      return parseEndpointPickerConfig(policy.configText);
    };
    const weights = (config: EndpointPickerConfig) => Object.fromEntries(config.schedulingProfiles[0].plugins.map((p) => [p.pluginRef, p.weight]));
    const before = configOf('kvroute-no-lru');
    expect(before.plugins.map((p) => p.type)).not.toContain('no-hit-lru-scorer');
    expect(weights(before)).toEqual({
      'decode-filter': undefined, 'saturation-filter': undefined, 'session-affinity-filter': undefined,
      'prefix-cache-scorer': 3, 'queue-scorer': 1, 'kv-cache-utilization-scorer': 1, 'active-request-scorer': 1, 'max-score-picker': undefined,
    });
    expect(defaultEndpointPickerConfig().schedulingProfiles[0].plugins.find((p) => p.pluginRef === 'no-hit-lru-scorer')?.weight).toBe(4);
    expect(configOf('kvroute-prefix-first')).toEqual(prefixFirstEndpointPickerConfig());
    expect(weights(configOf('kvroute-prefix-first'))).not.toHaveProperty('latency-scorer');
    expect(weights(configOf('kvroute-active2'))).toEqual({ ...weights(defaultEndpointPickerConfig()), 'active-request-scorer': 2 });
    const latency2 = routingPolicy('kvroute-latency2', { seed: 1, sglang: {} });
    if (latency2.kind !== 'epp' || latency2.configTransform === undefined) throw new Error('expected an EPP policy with a config transform');
    expect(weights(latency2.configTransform(defaultEndpointPickerConfig()))).toEqual({ ...weights(defaultEndpointPickerConfig()), 'latency-scorer': 2 });
    expect(weights(defaultEndpointPickerConfig())).toMatchObject({ 'latency-scorer': 4, 'active-request-scorer': 1, 'prefix-cache-scorer': 3 });
    // The defaults before session 61: the latency scorer's keepOneOffOnHolder off, weights unchanged, precise or not.
    expect(defaultEndpointPickerConfig().plugins.find((p) => p.type === 'latency-scorer')?.parameters).toMatchObject({ keepOneOffOnHolder: true });
    for (const [name, precise] of [['kvroute-no-keep-holder', undefined], ['kvroute-precise-no-keep-holder', true]] as const) {
      const policy = routingPolicy(name, { seed: 1, sglang: {} });
      if (policy.kind !== 'epp' || policy.configTransform === undefined) throw new Error('expected an EPP policy with a config transform');
      expect(policy.precise).toBe(precise);
      const kept = policy.configTransform(defaultEndpointPickerConfig());
      expect(weights(kept)).toEqual(weights(defaultEndpointPickerConfig()));
      expect(kept.plugins.find((p) => p.type === 'latency-scorer')?.parameters).toMatchObject({ keepOneOffOnHolder: false });
    }
  });

  test('every policy name maps to a stack policy; directors are created fresh per stack', () => {
    const settings = { seed: 1, sglang: { balanceAbsThreshold: 4 } };
    const kinds = Object.fromEntries(POLICY_NAMES.map((n) => [n, routingPolicy(n, settings).kind]));
    expect(kinds).toEqual({
      kvroute: 'epp', 'kvroute-precise': 'epp', 'kvroute-latency': 'epp', 'kvroute-latency-active': 'epp', 'kvroute-prefix-first': 'epp', 'kvroute-active2': 'epp', 'kvroute-sessions': 'epp', 'kvroute-no-session-load': 'epp', 'kvroute-no-lru': 'epp', 'kvroute-soft': 'epp', 'kvroute-filter': 'epp', 'kvroute-precise-filter': 'epp', 'kvroute-precise-prefix-first': 'epp', 'kvroute-precise-latency4': 'epp', 'kvroute-precise-64': 'epp', 'kvroute-precise-no-session-load': 'epp', 'kvroute-precise-lru': 'epp', 'kvroute-prefill-priority': 'epp', 'kvroute-untold': 'epp', 'kvroute-precise-untold': 'epp', 'kvroute-session-load16': 'epp', 'kvroute-session-headroom': 'epp', 'kvroute-learnt-cpt': 'epp', 'kvroute-page-queue': 'epp', 'kvroute-slot-wait-all': 'epp', 'kvroute-long-prefill-256': 'epp', 'kvroute-own-prefill2': 'epp', 'kvroute-own-prefill2-peers': 'epp', 'kvroute-slot-wait-sessions': 'epp', 'kvroute-slot-wait-imbalanced': 'epp', 'kvroute-slot-wait-avoidable': 'epp', 'kvroute-no-flow-control': 'epp', 'kvroute-latency2': 'epp', 'kvroute-no-keep-holder': 'epp', 'kvroute-precise-no-keep-holder': 'epp', 'approx-prefix': 'epp', sglang: 'director', 'round-robin': 'round-robin', 'round-robin-extproc': 'director', random: 'director',
      'least-request': 'director', 'session-hash': 'session-hash',
    });
    const p = routingPolicy('sglang', settings);
    if (p.kind !== 'director' || typeof p.director !== 'function') throw new Error('expected a director factory');
    const one = p.director(ENDPOINTS) as CacheAwareDirector;
    expect(one).not.toBe(p.director(ENDPOINTS));
    expect(one.options.balanceAbsThreshold).toBe(4);
    // The opt-in baseline: round robin behind ext_proc, a fresh rotation per stack, not in the matrix's default list.
    const rr = routingPolicy('round-robin-extproc', settings);
    if (rr.kind !== 'director' || typeof rr.director !== 'function') throw new Error('expected a director factory');
    const rotation = rr.director(ENDPOINTS);
    expect(rotation).toBeInstanceOf(RoundRobinDirector);
    expect(rotation).not.toBe(rr.director(ENDPOINTS));
    expect(DEFAULT_ROUTING_OPTIONS.policies).not.toContain('round-robin-extproc');
  });

  test('the stack tells every EPP policy with a latency scorer the simulator\'s --max-num-seqs; the untold candidates and configs without the scorer are left as they are', () => {
    const settings = { seed: 1, sglang: { balanceAbsThreshold: 4 } };
    const sim = { ...DEFAULT_SIM, maxNumSeqs: 16 };
    const slotsOf = (config: EndpointPickerConfig | undefined) =>
      (config?.plugins.find((p) => p.type === 'latency-scorer')?.parameters as { maxNumSeqs?: number } | undefined)?.maxNumSeqs;
    const epp = (name: PolicyName) => {
      const policy = routingPolicy(name, settings);
      if (policy.kind !== 'epp') throw new Error(`${name} is not an EPP policy`);
      return policy;
    };
    expect(slotsOf(toldPodLimit(epp('kvroute'), undefined, sim))).toBe(16);
    expect(slotsOf(toldPodLimit(epp('kvroute-latency'), undefined, sim))).toBe(16);
    const precise = toldPodLimit(epp('kvroute-precise'), preciseEndpointPickerConfig({ mode: 'central', zmqEndpoint: 'tcp://127.0.0.1:1', blockSize: 16, modelName: 'm' }), sim);
    expect(slotsOf(precise)).toBe(16);
    expect(precise?.plugins.some((p) => p.type === 'precise-prefix-cache-scorer')).toBe(true);
    expect(toldPodLimit(epp('kvroute-untold'), undefined, sim)).toBeUndefined();
    expect(toldPodLimit(epp('kvroute-precise-untold'), undefined, sim)).toBeUndefined();
    expect(toldPodLimit(epp('approx-prefix'), undefined, sim)).toBeUndefined();
    expect(slotsOf(defaultEndpointPickerConfig())).toBe(1024);
  });

  test('the defaults run the saturation filter in GIE\'s admission mode; the filter candidates put the previous filter mode back', () => {
    expect(defaultEndpointPickerConfig().plugins.find((p) => p.type === 'saturation-filter')?.parameters).toMatchObject({ mode: 'admission' });
    const settings = { seed: 1, sglang: { balanceAbsThreshold: 4 } };
    for (const name of ['kvroute-filter', 'kvroute-precise-filter'] as const) {
      const policy = routingPolicy(name, settings);
      if (policy.kind !== 'epp' || !policy.configTransform) throw new Error(`${name} has no config transform`);
      const config = policy.configTransform(defaultEndpointPickerConfig());
      expect(config.plugins.find((p) => p.type === 'saturation-filter')?.parameters).toMatchObject({ mode: 'filter' });
      expect(policy.precise === true).toBe(name === 'kvroute-precise-filter');
    }
  });

  test('the default places new sessions by the sessions each pod carries (session 31); kvroute-no-session-load is the default before', () => {
    const refs = (c: EndpointPickerConfig) => c.schedulingProfiles[0]!.plugins.map((r) => `${r.pluginRef}${r.weight !== undefined ? `:${r.weight}` : ''}`);
    expect(refs(defaultEndpointPickerConfig())).toContain('session-load-scorer:4');
    const policy = routingPolicy('kvroute-no-session-load', { seed: 1, sglang: { balanceAbsThreshold: 4 } });
    if (policy.kind !== 'epp' || !policy.configTransform) throw new Error('no config transform');
    const before = policy.configTransform(defaultEndpointPickerConfig());
    expect(refs(before)).toEqual(refs(defaultEndpointPickerConfig()).filter((r) => r !== 'session-load-scorer:4'));
    expect(before.plugins.map((p) => p.type)).not.toContain('session-load-scorer');
  });

  test('kvroute-session-load16 is the default with session-load-scorer at 16, every other weight as the default\'s', () => {
    const refs = (c: EndpointPickerConfig) => c.schedulingProfiles[0]!.plugins.map((r) => `${r.pluginRef}${r.weight !== undefined ? `:${r.weight}` : ''}`);
    const policy = routingPolicy('kvroute-session-load16', { seed: 1, sglang: { balanceAbsThreshold: 4 } });
    if (policy.kind !== 'epp' || !policy.configTransform) throw new Error('no config transform');
    const candidate = policy.configTransform(defaultEndpointPickerConfig());
    expect(refs(candidate)).toEqual(refs(defaultEndpointPickerConfig()).map((r) => (r === 'session-load-scorer:4' ? 'session-load-scorer:16' : r)));
  });

  test('kvroute-session-headroom is the default with session-load-scorer\'s headroom at 4, nothing else changed', () => {
    const policy = routingPolicy('kvroute-session-headroom', { seed: 1, sglang: { balanceAbsThreshold: 4 } });
    if (policy.kind !== 'epp' || !policy.configTransform) throw new Error('no config transform');
    const base = defaultEndpointPickerConfig();
    const candidate = policy.configTransform(base);
    expect(candidate.schedulingProfiles).toEqual(base.schedulingProfiles);
    expect(candidate.plugins.map((p) => (p.type === 'session-load-scorer' ? { ...p, parameters: { ...p.parameters, headroom: undefined } } : p)))
      .toEqual(base.plugins.map((p) => (p.type === 'session-load-scorer' ? { ...p, parameters: { ...p.parameters, headroom: undefined } } : p)));
    expect(candidate.plugins.find((p) => p.type === 'session-load-scorer')?.parameters).toMatchObject({ headroom: 4 });
  });

  /**
   * Policy `name`'s config against the default: everything but plugin `type` equal to a fresh default (so the
   * transform changed nothing else and left its input alone); returns that plugin's parameters in both.
   */
  const parametersChangedBy = (name: PolicyName, type: string) => {
    const policy = routingPolicy(name, { seed: 1, sglang: { balanceAbsThreshold: 4 } });
    if (policy.kind !== 'epp' || !policy.configTransform) throw new Error('no config transform');
    const candidate = policy.configTransform(defaultEndpointPickerConfig());
    const others = (c: EndpointPickerConfig) => ({ ...c, plugins: c.plugins.filter((p) => p.type !== type) });
    expect(others(candidate)).toEqual(others(defaultEndpointPickerConfig()));
    const of = (c: EndpointPickerConfig) => c.plugins.find((p) => p.type === type)!.parameters;
    return { before: of(defaultEndpointPickerConfig()), after: of(candidate) };
  };

  test('kvroute-learnt-cpt is the default with the prefix index at the characters per token learnt, nothing else changed', () => {
    const { before, after } = parametersChangedBy('kvroute-learnt-cpt', 'prefix-cache-scorer');
    expect(before).toMatchObject({ learnCharactersPerToken: false });
    expect(after).toEqual({ ...before, learnCharactersPerToken: true });
  });

  test('kvroute-page-queue is the default with the saturation filter reading each pod\'s scraped queue alone (countPicksSinceScrape: false), nothing else changed', () => {
    const { before, after } = parametersChangedBy('kvroute-page-queue', 'saturation-filter');
    expect(before).not.toHaveProperty('countPicksSinceScrape');
    expect(after).toEqual({ ...before, countPicksSinceScrape: false });
  });

  test('kvroute-slot-wait-all is the default with the latency scorer\'s slot wait for every request (slotWait: all), nothing else changed', () => {
    const { before, after } = parametersChangedBy('kvroute-slot-wait-all', 'latency-scorer');
    expect(before).toMatchObject({ slotWait: 'hot-prefixes' });
    expect(after).toEqual({ ...before, slotWait: 'all' });
  });

  test('kvroute-own-prefill2 is the default with the latency scorer counting every candidate\'s own prefill twice (ownPrefillWeight: 2, fasterPodRatio: 0), nothing else changed', () => {
    const { before, after } = parametersChangedBy('kvroute-own-prefill2', 'latency-scorer');
    expect(before).not.toHaveProperty('ownPrefillWeight');
    expect(before).not.toHaveProperty('fasterPodRatio');
    expect(after).toEqual({ ...before, ownPrefillWeight: 2, fasterPodRatio: 0 });
  });

  test('kvroute-slot-wait-sessions is the default with the latency scorer\'s slot wait for session requests only (slotWait: sessions, the default before session 55), nothing else changed', () => {
    const { before, after } = parametersChangedBy('kvroute-slot-wait-sessions', 'latency-scorer');
    expect(before).toMatchObject({ slotWait: 'hot-prefixes' });
    expect(after).toEqual({ ...before, slotWait: 'sessions' });
  });

  test('kvroute-slot-wait-imbalanced is the default with the latency scorer\'s slot wait for one-off requests only on clearly imbalanced slots (slotWait: imbalanced, the default in session 55), nothing else changed', () => {
    const { before, after } = parametersChangedBy('kvroute-slot-wait-imbalanced', 'latency-scorer');
    expect(before).toMatchObject({ slotWait: 'hot-prefixes' });
    expect(after).toEqual({ ...before, slotWait: 'imbalanced' });
  });

  test('kvroute-slot-wait-avoidable is the default without the hot-prefix rule (slotWait: avoidable, the default in session 56), nothing else changed', () => {
    const { before, after } = parametersChangedBy('kvroute-slot-wait-avoidable', 'latency-scorer');
    expect(before).toMatchObject({ slotWait: 'hot-prefixes' });
    expect(after).toEqual({ ...before, slotWait: 'avoidable' });
  });

  test('kvroute-own-prefill2-peers is the default with ownPrefillWeight: 2 at the default fasterPodRatio (not rendered), nothing else changed', () => {
    const { before, after } = parametersChangedBy('kvroute-own-prefill2-peers', 'latency-scorer');
    expect(after).toEqual({ ...before, ownPrefillWeight: 2 });
  });

  test('kvroute-prefill-priority adds prefill-priority after the prefix scorer and starts its pods on vLLM\'s priority scheduling', () => {
    const policy = routingPolicy('kvroute-prefill-priority', { seed: 1, sglang: { balanceAbsThreshold: 4 } });
    if (policy.kind !== 'epp' || !policy.configTransform) throw new Error('no config transform');
    expect(policy.schedulingPolicy).toBe('priority');
    const refs = policy.configTransform(defaultEndpointPickerConfig()).schedulingProfiles[0]!.plugins.map((r) => r.pluginRef);
    expect(refs.slice(refs.indexOf('prefix-cache-scorer'), refs.indexOf('prefix-cache-scorer') + 2)).toEqual(['prefix-cache-scorer', 'prefill-priority']);
    expect(simArgs({ ...DEFAULT_SIM, schedulingPolicy: 'priority' }, 'p').join(' ')).toContain('--scheduling-policy priority');
    expect(simArgs(DEFAULT_SIM, 'p')).not.toContain('--scheduling-policy');
  });

  test('kvroute-long-prefill-256 is the default config on pods started with vLLM\'s --long-prefill-token-threshold 256', () => {
    const policy = routingPolicy('kvroute-long-prefill-256', { seed: 1, sglang: { balanceAbsThreshold: 4 } });
    if (policy.kind !== 'epp') throw new Error('not an EPP policy');
    expect(policy).toEqual({ kind: 'epp', name: 'kvroute-long-prefill-256', longPrefillTokenThreshold: 256 });
    const args = simArgs({ ...DEFAULT_SIM, longPrefillTokenThreshold: 256 }, 'p');
    expect(args.slice(args.indexOf('--long-prefill-token-threshold'), args.indexOf('--long-prefill-token-threshold') + 2)).toEqual(['--long-prefill-token-threshold', '256']);
    expect(simArgs(DEFAULT_SIM, 'p')).not.toContain('--long-prefill-token-threshold');
  });
});
