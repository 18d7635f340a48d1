import { seededRandom } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, prefixFirstEndpointPickerConfig, validateEndpointPickerConfig, withoutNoHitLru, type EndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import type { IncomingRequest } from '../src/extproc/request-director';
import { RequestControl } from '../src/requestcontrol/request-control';
import { CycleState } from '../src/scheduling/framework';
import { NEUTRAL_SCORE, type NoHitLruScorer } from '../src/scheduling/plugins/no-hit-lru-scorer';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';

/** The default config before the scorer joined it (`withoutNoHitLru`). */
// The prefix-first config (the default until the latency scorer joined it, 2026-11-30): these tests weigh the no-hit
// LRU against its load signals, whose arithmetic the latency scorer's learned predictions would blur.
const BEFORE = (): EndpointPickerConfig => withoutNoHitLru(prefixFirstEndpointPickerConfig());

/** The default config before the scorer joined it, with `no-hit-lru-scorer` after its prefix scorer at `weight`. */
function withNoHitLru(weight: number, parameters: object = {}, base: EndpointPickerConfig = BEFORE()): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    ...base,
    plugins: [...base.plugins, { type: 'no-hit-lru-scorer', parameters }],
    schedulingProfiles: base.schedulingProfiles.map((p) => ({
      ...p,
      plugins: p.plugins.flatMap((r) => (r.pluginRef === 'prefix-cache-scorer' ? [r, { pluginRef: 'no-hit-lru-scorer', weight }] : [r])),
    })),
  });
}

/**
 * Four pods behind the real scheduler; `send` schedules a request and then runs the pre-request plugins on the pick, as
 * request control's commit does. By default the last scrape favours p0 (waiting queues 0, 1, 2, 3: the queue scorer's
 * full point), the "load signals of that instant" that make the default config pile new groups on one pod. At weight 4
 * one LRU rank (4/3 of a point over four pods) outweighs that point, so the tests below see a strict rotation; at a
 * lower weight a large enough load difference still wins, as the sum of weighted scores intends.
 */
class Pool {
  now = 1_700_000_000_000;
  readonly scheduler: Scheduler;
  readonly pods: EndpointSnapshot[];

  constructor(config: EndpointPickerConfig, { n = 4, skewed = true } = {}) {
    this.scheduler = buildScheduler(config, { now: () => this.now, random: seededRandom(11) });
    this.pods = Array.from({ length: n }, (_, i) => ({
      endpoint: { key: `p${i}:8000`, name: `p${i}`, namespace: 'default', address: `p${i}`, port: 8000, labels: {} },
      metrics: { ...EMPTY_METRICS, waitingQueueSize: skewed ? i : 0, updateTime: this.now },
      activeRequests: 0,
    }));
  }

  snapshot(): EndpointSnapshot[] {
    return this.pods.map((p) => ({ ...p, metrics: { ...p.metrics, updateTime: this.now } }));
  }

  send(prompt: string): string {
    const request: LLMRequest = { requestId: `r-${prompt.length}`, model: 'm', prompt, headers: {}, attributes: new CycleState() };
    const result = this.scheduler.schedule(request, this.snapshot());
    for (const plugin of this.scheduler.plugins.ofKind('pre-request')) plugin.preRequest(request, result);
    return result.target.endpoint.name;
  }

  get scorer(): NoHitLruScorer {
    return this.scheduler.plugin('no-hit-lru-scorer') as NoHitLruScorer;
  }
}

/** A group's long system prompt (many 64-character blocks), distinct from the first block on, and a user's question. */
const system = (g: number) => `Group ${g} system prompt. ${'Answer questions about the shared document carefully. '.repeat(16)}`;
const ask = (g: number, u: number) => `${system(g)}\nuser ${u} of group ${g}: a question?`;

function expectScores(actual: readonly number[], expected: readonly number[]): void {
  expect(actual).toHaveLength(expected.length);
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, 12));
}

describe('no-hit-lru-scorer', () => {
  it('without it, the prefix-first config piles every new group on the pod the last scrape favoured (the issue)', () => {
    const pool = new Pool(BEFORE());
    expect(Array.from({ length: 4 }, (_, g) => pool.send(ask(g, 0)))).toEqual(['p0', 'p0', 'p0', 'p0']);
  });

  it('is in the default profile at weight 4, right after the prefix scorer, so the prefix-first config rotates new groups', () => {
    const config = prefixFirstEndpointPickerConfig();
    // The default is the same profile with the latency and session-load scorers before the picker.
    expect(defaultEndpointPickerConfig().schedulingProfiles[0]!.plugins.filter((r) => r.pluginRef !== 'latency-scorer' && r.pluginRef !== 'session-load-scorer')).toEqual(config.schedulingProfiles[0]!.plugins);
    const refs = config.schedulingProfiles[0]!.plugins;
    const at = refs.findIndex((r) => r.pluginRef === 'no-hit-lru-scorer');
    expect(refs[at - 1]!.pluginRef).toBe('prefix-cache-scorer');
    expect(refs[at]!.weight).toBe(4);
    // Removing it gives back exactly the profile it was measured against.
    expect(BEFORE().schedulingProfiles[0]!.plugins).toEqual(refs.filter((r) => r.pluginRef !== 'no-hit-lru-scorer'));
    const pool = new Pool(config);
    expect(Array.from({ length: 4 }, (_, g) => pool.send(ask(g, 0)))).toEqual(['p0', 'p1', 'p2', 'p3']);
  });

  it('on two pods one LRU rank is its whole weight (4): a cold request alternates even onto a loaded pod, short of the saturation filter', () => {
    // Upstream's rank scores span 1 → 0 over the candidates, so the weight per rank is weight / (N − 1): 4/3 of a point
    // on the benchmark's 4 pods, all 4 points on 2. A request with a hit is placed by prefix and load as before.
    const pool = new Pool(prefixFirstEndpointPickerConfig(), { n: 2, skewed: false });
    pool.send(ask(0, 0));
    pool.pods[0] = { ...pool.pods[0]!, metrics: { ...pool.pods[0]!.metrics, waitingQueueSize: 3, kvCacheUsagePercent: 0.6 }, activeRequests: 3 };
    // p0 took the last cold request: the next goes to p1 ...
    expect(pool.send(ask(1, 0))).toBe('p1');
    // ... and the one after to p0, although it is loaded (queue 3 < the filter's 5): p1's load lead (about 2 points) is
    // less than one rank.
    expect(pool.send(ask(2, 0))).toBe('p0');
    // Group 1's next user hits on p1 and stays there.
    expect(pool.send(ask(1, 1))).toBe('p1');
    // Past the saturation filter's threshold p0 is no candidate at all.
    pool.pods[0] = { ...pool.pods[0]!, metrics: { ...pool.pods[0]!.metrics, waitingQueueSize: 5 } };
    expect(pool.send(ask(3, 0))).toBe('p1');
  });

  it('a cold request skips a loaded pod the admission-mode saturation filter kept: it stays a candidate only for requests with a reason to go there', () => {
    const pool = new Pool(prefixFirstEndpointPickerConfig(), { n: 3, skewed: false });
    expect([0, 1, 2].map((g) => pool.send(ask(g, 0)))).toEqual(['p0', 'p1', 'p2']);
    // p0 is over the queue threshold (9 > 5) but kept (admission mode: p1 and p2 have room) and would be next in the
    // rotation: cold requests alternate over p1 and p2 instead.
    pool.pods[0] = { ...pool.pods[0]!, metrics: { ...pool.pods[0]!.metrics, waitingQueueSize: 9 } };
    expect([3, 4, 5, 6].map((g) => pool.send(ask(g, 0)))).toEqual(['p1', 'p2', 'p1', 'p2']);
    // Group 0's next user still reaches p0, whose whole prefix it holds.
    expect(pool.send(ask(0, 1))).toBe('p0');
    // Every candidate loaded: the pool is saturated (the request would wait in flow control).
    for (const i of [1, 2]) pool.pods[i] = { ...pool.pods[i]!, metrics: { ...pool.pods[i]!.metrics, waitingQueueSize: 9 } };
    expect(() => pool.send(ask(7, 0))).toThrow(/saturation-filter/);
  });

  it('a cold request goes to the least recently cold-loaded pod: new groups rotate over the pods', () => {
    const pool = new Pool(withNoHitLru(4));
    expect(Array.from({ length: 8 }, (_, g) => pool.send(ask(g, 0)))).toEqual(['p0', 'p1', 'p2', 'p3', 'p0', 'p1', 'p2', 'p3']);
    expect(pool.scorer.order()).toEqual(['p0:8000', 'p1:8000', 'p2:8000', 'p3:8000']);
  });

  it('a request with a hit scores 0.5 everywhere and leaves the LRU alone: each group\'s users follow its prefix', () => {
    const pool = new Pool(withNoHitLru(4));
    const home = Array.from({ length: 4 }, (_, g) => pool.send(ask(g, 0)));
    const order = pool.scorer.order();
    for (let u = 1; u < 4; u++) for (let g = 0; g < 4; g++) expect(pool.send(ask(g, u))).toBe(home[g]);
    expect(pool.scorer.order()).toEqual(order);
    // Scored directly after the prefix scorer published its match: a hit on any candidate is neutral on all.
    const request: LLMRequest = { requestId: 'w', model: 'm', prompt: ask(2, 9), headers: {}, attributes: new CycleState() };
    const cycle = { request, state: new CycleState() };
    const pods = pool.snapshot();
    (pool.scheduler.plugin('prefix-cache-scorer') as unknown as { score: NoHitLruScorer['score'] }).score(cycle, pods);
    expect(pool.scorer.score(cycle, pods)).toEqual([NEUTRAL_SCORE, NEUTRAL_SCORE, NEUTRAL_SCORE, NEUTRAL_SCORE]);
  });

  it('scores as upstream ranks: never-used pods first in candidate order, then the LRU oldest first, counted over every pod it holds', () => {
    const pool = new Pool(withNoHitLru(4));
    const cold = (pods: EndpointSnapshot[]) => pool.scorer.score({ request: { requestId: 'c', model: 'm', prompt: 'x', headers: {} }, state: new CycleState() }, pods);
    // No prefix match published (no prefix scorer ran): cold, as upstream treats a missing prefix state.
    expectScores(cold(pool.snapshot()), [1, 2 / 3, 1 / 3, 0]);
    pool.send(ask(0, 0)); // p0
    pool.send(ask(1, 0)); // p1
    // Never used p2, p3 rank 0, 1; p0 (oldest in the LRU) 2, p1 3.
    expectScores(cold(pool.snapshot()), [1 / 3, 0, 1, 2 / 3]);
    // Over two candidates the LRU positions still count p0 (not a candidate): p1 ranks 1 + 1 = 2 → clamped to 0.
    const [, p1, p2] = pool.snapshot();
    expect(cold([p1!, p2!])).toEqual([0, 1]);
    expect(cold([p1!])).toEqual([1]);
  });

  it('listed before the prefix scorer it would see no match and count every request as cold (upstream: list it after), so the loader refuses that order', () => {
    const base = BEFORE();
    expect(() => validateEndpointPickerConfig({
      ...base,
      plugins: [...base.plugins, { type: 'no-hit-lru-scorer' }],
      schedulingProfiles: base.schedulingProfiles.map((p) => ({
        ...p,
        plugins: p.plugins.flatMap((r) => (r.pluginRef === 'prefix-cache-scorer' ? [{ pluginRef: 'no-hit-lru-scorer', weight: 4 }, r] : [r])),
      })),
    })).toThrow(/"no-hit-lru-scorer" reads the prefix-match that "prefix-cache-scorer" \(plugins\[\d+\]\) writes, and scorers run in the order listed: list "no-hit-lru-scorer" after it/);
    // Listed after it, group 0's second user is a hit on p0 and not recorded as a cold load of p0.
    const after = new Pool(withNoHitLru(4));
    for (let g = 0; g < 4; g++) after.send(ask(g, 0));
    expect(after.send(ask(0, 1))).toBe('p0');
    expect(after.scorer.order()).toEqual(['p0:8000', 'p1:8000', 'p2:8000', 'p3:8000']);
  });

  it('is bounded by lruSize, and forgets a pod that leaves the pool (it returns as never used)', () => {
    const pool = new Pool(withNoHitLru(4, { lruSize: 2 }));
    // p0, p1, then p2 evicts p0 from the LRU: p0 ranks as never used again, ahead of p3 in candidate order.
    expect(Array.from({ length: 4 }, (_, g) => pool.send(ask(g, 0)))).toEqual(['p0', 'p1', 'p2', 'p0']);
    expect(pool.scorer.order()).toEqual(['p2:8000', 'p0:8000']);
    pool.scorer.removeEndpoint('p0:8000');
    expect(pool.scorer.order()).toEqual(['p2:8000']);
  });

  it('under P/D records the prefill profile\'s pick after the primary one, as upstream (nohitlru/no_hit_lru.go PreRequest @ llm-d-router v0.10.0)', () => {
    const pool = new Pool(withNoHitLru(4));
    const request: LLMRequest = { requestId: 'pd', model: 'm', prompt: ask(0, 0), headers: {}, attributes: new CycleState() };
    const result = pool.scheduler.schedule(request, pool.snapshot());
    expect(result.target.endpoint.name).toBe('p0');
    const [decode, prefill] = [pool.pods[0]!, pool.pods[2]!];
    pool.scorer.preRequest(request, { ...result, target: decode, profileTargets: new Map([['decode', decode], ['prefill', prefill]]) });
    expect(pool.scorer.order()).toEqual(['p0:8000', 'p2:8000']);
    // Only the profile named `prefill` (upstream's hardcoded name) is recorded beside the primary one.
    const other: LLMRequest = { ...request, requestId: 'pd2', prompt: ask(1, 0), attributes: new CycleState() };
    const second = pool.scheduler.schedule(other, pool.snapshot());
    pool.scorer.preRequest(other, { ...second, target: pool.pods[1]!, profileTargets: new Map([['decode', pool.pods[1]!], ['pre', pool.pods[3]!]]) });
    expect(pool.scorer.order()).toEqual(['p0:8000', 'p2:8000', 'p1:8000']);
  });

  it('learns only from committed picks, through request control (pre-request), not from scoring alone', async () => {
    const ds = new Datastore({ scrape: false });
    try {
      for (let i = 0; i < 4; i++) {
        ds.upsertEndpoint({ key: `10.0.0.${i + 1}:8000`, name: `p${i}`, namespace: 'ns', address: `10.0.0.${i + 1}`, port: 8000, labels: {} });
        ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: i, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
      }
      const scheduler = buildScheduler(withNoHitLru(4));
      const control = new RequestControl({ datastore: ds, scheduler });
      const scorer = scheduler.plugin('no-hit-lru-scorer') as NoHitLruScorer;
      const placed: string[] = [];
      for (let g = 0; g < 4; g++) {
        const body = { model: 'm', messages: [{ role: 'system', content: system(g) }, { role: 'user', content: 'q' }] };
        const incoming: IncomingRequest = { requestId: `g${g}`, headers: new Map([[':method', 'POST'], [':path', '/v1/chat/completions'], ['content-type', 'application/json']]), body: Buffer.from(JSON.stringify(body)), filterMetadata: {} };
        const decision = await control.route(incoming);
        if (decision.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(decision)}`);
        placed.push(decision.endpoint);
        // Released at once: the in-flight count never spreads them; only the LRU does.
        control.release(decision.ticket, 'completed');
      }
      expect(placed).toEqual(['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000', '10.0.0.4:8000']);
      expect(scorer.order()).toEqual(placed);
      // Scoring a cold request without committing it changes nothing.
      scorer.score({ request: { requestId: 'x', model: 'm', prompt: 'x', headers: {}, attributes: new CycleState() }, state: new CycleState() }, ds.snapshot());
      expect(scorer.order()).toEqual(placed);
    } finally {
      ds.stop();
    }
  });

  it('takes llm-d-router v0.10.0\'s prefixMatchInfoProducerName (nohitlru/no_hit_lru.go Parameters): a prefix producer or scorer of the config', () => {
    const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
    const config = (ref: string) => `${LLMD}plugins:\n- type: approx-prefix-cache-producer\n  name: approx\n- type: prefix-cache-scorer\n  parameters: {prefixMatchInfoProducerName: approx}\n`
      + `- type: queue-scorer\n- type: no-hit-lru-scorer\n  parameters: {prefixMatchInfoProducerName: ${ref}}\n- type: max-score-picker\n`
      + 'schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: prefix-cache-scorer\n  - pluginRef: no-hit-lru-scorer\n  - pluginRef: max-score-picker\n';
    // The merged producer's name now names the scorer that does its work.
    const parsed = parseEndpointPickerConfig(config('approx'));
    expect(parsed.plugins.find((p) => p.type === 'no-hit-lru-scorer')!.parameters).toEqual({
      prefixPluginType: 'prefix-cache-scorer', prefixPluginName: 'prefix-cache-scorer', lruSize: 1024, prefixMatchInfoProducerName: 'prefix-cache-scorer',
    });
    expect(() => buildScheduler(parsed)).not.toThrow();
    // "" is unset upstream (omitempty); not stated in the normalized config.
    expect(parseEndpointPickerConfig(config('""')).plugins.find((p) => p.type === 'no-hit-lru-scorer')!.parameters).not.toHaveProperty('prefixMatchInfoProducerName');
    expect(() => buildScheduler(parseEndpointPickerConfig(config('queue-scorer')))).toThrow('no-hit-lru-scorer.parameters.prefixMatchInfoProducerName: "queue-scorer" is a queue-scorer; name a prefix-cache-scorer or precise-prefix-cache-scorer');
    expect(() => buildScheduler(parseEndpointPickerConfig(config('nope')))).toThrow('no-hit-lru-scorer.parameters.prefixMatchInfoProducerName: no plugin named "nope"');
  });

  it('loads llm-d\'s configs unchanged, and checks its parameters with errors naming the field', () => {
    // llm-d's optimized-baseline guide: queue 2, kv-cache 2, prefix 3, no-hit-lru 2.
    const guide = parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['optimized-baseline']);
    // Equal loads: the LRU alone orders the pods (at this weight a full point of queue difference would outweigh one rank).
    const pool = new Pool(guide, { skewed: false });
    expect(Array.from({ length: 4 }, (_, g) => pool.send(ask(g, 0)))).toEqual(['p0', 'p1', 'p2', 'p3']);

    const yaml = (params: string) => `apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: no-hit-lru-scorer\n  parameters: ${params}\n`;
    expect(parseEndpointPickerConfig(yaml('{}')).plugins[0]).toEqual({
      type: 'no-hit-lru-scorer', name: 'no-hit-lru-scorer', parameters: { prefixPluginType: 'prefix-cache-scorer', prefixPluginName: 'prefix-cache-scorer', lruSize: 1024 },
    });
    expect(parseEndpointPickerConfig(yaml('{prefixPluginType: precise-prefix-cache-scorer, prefixPluginName: cache-scorer, lruSize: 2048}')).plugins[0]!.parameters)
      .toEqual({ prefixPluginType: 'precise-prefix-cache-scorer', prefixPluginName: 'cache-scorer', lruSize: 2048 });
    expect(() => parseEndpointPickerConfig(yaml('{lruSize: 0}'))).toThrow('plugins[0].parameters.lruSize: must be an integer >= 1, got 0');
    expect(() => parseEndpointPickerConfig(yaml('{lruSize: 1.5}'))).toThrow('plugins[0].parameters.lruSize: must be an integer >= 1');
    expect(() => parseEndpointPickerConfig(yaml('{prefixPluginName: 5}'))).toThrow('plugins[0].parameters.prefixPluginName: must be a non-empty string, got 5');
    expect(() => parseEndpointPickerConfig(yaml('{prefillProfile: prefill}'))).toThrow('plugins[0].parameters.prefillProfile: unknown field; allowed: prefixPluginType, prefixPluginName, lruSize, prefixMatchInfoProducerName');
  });
});
