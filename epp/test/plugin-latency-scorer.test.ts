import { seededRandom } from '@kvroute/testkit';
import { ConfigError, defaultEndpointPickerConfig, latencyEndpointPickerConfig, parseEndpointPickerConfig, prefixFirstEndpointPickerConfig, renderEndpointPickerConfig, resolvePluginParameters, withMaxNumSeqs, withoutSessionLoad, type EndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import type { IncomingRequest } from '../src/extproc/request-director';
import { RequestControl } from '../src/requestcontrol/request-control';
import { CycleState, SILENT_PLUGIN_LOGGER } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { LatencyScorer, type SlotWaitMode } from '../src/scheduling/plugins/latency-scorer';
import type { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { PrefixBlockIndex } from '../src/scheduling/plugins/prefix-index';
import { PREFIX_MATCH, publishPrefixMatch } from '../src/scheduling/prefix-match';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { LLMRequest, SchedulingResult } from '../src/scheduling/types';

const NOW = 1_700_000_000_000;
const MODEL = 'qwen';

const seeded = seededRandom;

/** Distinct 64-character blocks (16 tokens at 4 characters a token), so prompts share exactly the blocks we choose. */
function blocks(label: string, count: number): string {
  return Array.from({ length: count }, (_, i) => `${label}-${i}-`.padEnd(64, '.')).join('');
}

function pod(name: string, metrics: Partial<EndpointMetrics> = {}, activeRequests = 0): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: NOW, ...metrics },
    activeRequests,
  };
}

let requestCounter = 0;
function request(prompt: string): LLMRequest {
  return { requestId: `r${++requestCounter}`, model: MODEL, prompt, headers: {}, attributes: new CycleState() };
}

/** What request control does after a pick: the pre-request hooks learn the commitment. */
function commit(scheduler: Scheduler, req: LLMRequest, result: SchedulingResult): void {
  for (const plugin of scheduler.plugins.ofKind('pre-request')) plugin.preRequest(req, result);
}

function latencyOf(scheduler: Scheduler): LatencyScorer {
  return scheduler.plugin('latency-scorer') as LatencyScorer;
}

/**
 * Pods a and b as their scrapes report them (vLLM's TTFT histogram and prefix-cache query counters), on a clock `t` the
 * scheduler under test reads.
 */
class TwoPodScrapes {
  t = NOW;
  private readonly counters = { a: { count: 0, sum: 0, queries: 0 }, b: { count: 0, sum: 0, queries: 0 } };

  snapshot(name: 'a' | 'b'): EndpointSnapshot {
    const c = this.counters[name];
    return pod(name, { updateTime: this.t, firstTokenCount: c.count, firstTokenSecondsSum: c.sum, prefixCacheQueryTokens: c.queries, prefixCacheHitTokens: 0 });
  }

  /** One first token on `name` after `seconds`, for a prompt of `tokens` uncached tokens. */
  firstToken(name: 'a' | 'b', seconds: number, tokens: number): void {
    const c = this.counters[name];
    c.count += 1;
    c.sum += seconds;
    c.queries += tokens;
  }

  /**
   * 200 scrapes 50 ms apart, each with one first token per pod for a random prompt at the pod's seconds per token (and
   * 20 ms fixed), scored through `scheduler`: scoring reads the scrapes; nothing is committed, so no queue builds up.
   */
  learn(scheduler: Scheduler, costA: number, costB: number): void {
    const random = seeded(4);
    for (let i = 0; i < 200; i++) {
      this.t += 50;
      for (const [name, cost] of [['a', costA], ['b', costB]] as const) {
        const tokens = 200 + Math.floor(random() * 2000);
        this.firstToken(name, 0.02 + cost * tokens, tokens);
      }
      scheduler.schedule(request(blocks(`probe${i}`, 8)), [this.snapshot('a'), this.snapshot('b')]);
    }
  }
}

describe('latency-scorer in latencyEndpointPickerConfig (4·latency + prefix + kv)', () => {
  const now = () => NOW;

  it('sends a request to an idle uncached pod rather than a cached pod with a long queue, where the default config keeps it on the cache', () => {
    const system = blocks('system', 100); // 6,400 characters ≈ 1,600 tokens
    const question = blocks('question', 4);
    const [a, b] = [pod('a'), pod('b')];

    const latency = buildScheduler(latencyEndpointPickerConfig(), { now, random: seeded(1) });
    // Pod a learns the system prompt, then takes six more long requests this EPP has not seen a first token of.
    const first = request(system + blocks('q0', 4));
    commit(latency, first, latency.schedule(first, [a]));
    for (let i = 0; i < 5; i++) {
      const other = request(blocks(`other${i}`, 100));
      commit(latency, other, latency.schedule(other, [a]));
    }
    const next = request(system + question);
    const result = latency.schedule(next, [a, b]);
    expect(result.target.endpoint.name).toBe('b');
    const predictions = latencyOf(latency).predictions(next)!;
    const onA = predictions.get('a:8000')!;
    const onB = predictions.get('b:8000')!;
    // a: the 64 uncached tokens of the question behind 1,664 + 5 × 1,600 queued tokens; b: the whole prompt, no queue.
    expect(onA.uncachedTokens).toBe(64);
    expect(onA.queuedTokens).toBe(1664 + 5 * 1600);
    expect(onB.uncachedTokens).toBe(1664);
    expect(onB.queuedTokens).toBe(0);
    expect(onB.ttftSeconds).toBeCloseTo(0.02 + 1664 * 0.0002, 9);
    expect(onA.ttftSeconds).toBeGreaterThan(5 * onB.ttftSeconds);

    // The same situation under the prefix-first config (the default until 2026-11-30): the prefix (3 points) outweighs
    // a's six in-flight requests.
    const defaults = buildScheduler(prefixFirstEndpointPickerConfig(), { now, random: seeded(1) });
    defaults.schedule(request(system + blocks('q0', 4)), [a]);
    expect(defaults.schedule(request(system + question), [pod('a', {}, 6), b]).target.endpoint.name).toBe('a');
  });

  it('keeps a request on the cached pod when its queue is short: the hit saves more than the queue costs', () => {
    const system = blocks('system', 100);
    const latency = buildScheduler(latencyEndpointPickerConfig(), { now, random: seeded(2) });
    const [a, b] = [pod('a'), pod('b')];
    const first = request(system + blocks('q0', 4));
    commit(latency, first, latency.schedule(first, [a]));
    const next = request(system + blocks('q1', 4));
    // a: 1,664 queued + 64 own tokens ≈ 0.37 s; b: 1,664 own tokens ≈ 0.35 s — close, and the prefix point decides.
    expect(latency.schedule(next, [a, b]).target.endpoint.name).toBe('a');
    // Once a's first request is past its first token (a scrape counted it), a wins on latency alone too.
    const counted = pod('a', { updateTime: NOW + 50, firstTokenCount: 1, firstTokenSecondsSum: 0.35, prefixCacheQueryTokens: 1664, prefixCacheHitTokens: 0 });
    const base = pod('a', { updateTime: NOW + 10, firstTokenCount: 0, firstTokenSecondsSum: 0, prefixCacheQueryTokens: 0, prefixCacheHitTokens: 0 });
    const scorer = latencyOf(latency);
    scorer.model.pod('a:8000').ingest(base.metrics, NOW + 10);
    const after = request(system + blocks('q2', 4));
    const scores = scorer.score({ request: after, state: stateWithMatch(after, 'a:8000', system.length) }, [counted, b]);
    expect(scores[0]).toBe(1);
    expect(scores[1]).toBeLessThan(0.2);
  });

  it('ownPrefillWeight 2 charges a pod that would recompute the prefix twice its prefill: the holder keeps a request the plain prediction moves, and the predictions stay the request\'s own', () => {
    const system = blocks('system', 100); // 1,600 tokens
    const [a, b] = [pod('a'), pod('b')];
    const place = (ownPrefillWeight: number | undefined) => {
      const base = latencyEndpointPickerConfig();
      const config = ownPrefillWeight === undefined ? base : withLatencyScorer(base, { ownPrefillWeight });
      const latency = buildScheduler(config, { now, random: seeded(6) });
      // Pod a holds the system prompt, with its first request (1,664 tokens) and another of 1,600 still queued there.
      const first = request(system + blocks('q0', 4));
      commit(latency, first, latency.schedule(first, [a]));
      const other = request(blocks('other', 100));
      commit(latency, other, latency.schedule(other, [a]));
      const next = request(system + blocks('q1', 4));
      const target = latency.schedule(next, [a, b]).target.endpoint.name;
      return { target, predictions: latencyOf(latency).predictions(next)! };
    };
    // a: 3,264 queued + 64 own tokens; b: 1,664 own tokens. Predicted alone, b answers in half a's time (4 × ½ = 2
    // points) and the prefix's single point cannot keep the request on a.
    const plain = place(undefined);
    expect(plain.target).toBe('b');
    // Charged twice, b's 1,664 tokens cost 3,328 against a's 3,264 + 128: within 2%, and the prefix point decides.
    const charged = place(2);
    expect(charged.target).toBe('a');
    // The predictions the pre-request hook commits and the logs show are the request's own TTFT either way.
    for (const { predictions } of [plain, charged]) {
      expect(predictions.get('b:8000')!.ttftSeconds).toBeCloseTo(0.02 + 1664 * 0.0002, 9);
      expect(predictions.get('a:8000')!.ttftSeconds).toBeCloseTo(0.02 + (3264 + 64) * 0.0002, 9);
    }
  });

  it('ownPrefillWeight spares a candidate whose line prefills the prompt in under 0.8 of the best holder\'s time (fasterPodRatio), and charges an equal one and one cheaper per token but slower overall; fasterPodRatio 0 charges every candidate; a cold request is charged everywhere', () => {
    const scoresWith = (extra: Record<string, number>, held = true) => {
      let t = NOW;
      const config = withLatencyScorer(latencyEndpointPickerConfig(), { ownPrefillWeight: 2, ...extra });
      const latency = buildScheduler(config, { now: () => t, random: seeded(7) });
      // a and c learnt at 20 ms + 0.6 ms a token, b at 20 ms + 0.2 (a newer GPU), d at 500 ms + 0.4: cheaper per token
      // than a, but its line at the prompt's 1,664 tokens (1.17 s) is not under 0.8 of a's (1.02 s).
      const lines = { a: [0.02, 0.0006], b: [0.02, 0.0002], c: [0.02, 0.0006], d: [0.5, 0.0004] } as const;
      const names = ['a', 'b', 'c', 'd'] as const;
      const counters = Object.fromEntries(names.map((n) => [n, { count: 0, sum: 0, queries: 0 }])) as Record<(typeof names)[number], { count: number; sum: number; queries: number }>;
      const random = seeded(8);
      const snapshot = (name: (typeof names)[number]) =>
        pod(name, { updateTime: t, firstTokenCount: counters[name].count, firstTokenSecondsSum: counters[name].sum, prefixCacheQueryTokens: counters[name].queries, prefixCacheHitTokens: 0 });
      for (let i = 0; i < 200; i++) {
        t += 50;
        for (const name of names) {
          const tokens = 200 + Math.floor(random() * 2000);
          counters[name].count += 1;
          counters[name].sum += lines[name][0] + lines[name][1] * tokens;
          counters[name].queries += tokens;
        }
        latency.schedule(request(blocks(`warm${i}`, 8)), names.map(snapshot));
      }
      // Held: a holds 1,600 of the request's 1,664 tokens, the others none. Cold: nobody holds any.
      const next = request(blocks('system', 100) + blocks('q', 4));
      const candidates = names.map(snapshot);
      const scorer = latencyOf(latency);
      const scores = scorer.score({ request: next, state: stateWithMatch(next, 'a:8000', held ? 6400 : 0) }, candidates);
      const expected = (weights: readonly number[]) => {
        const predicted = candidates.map((c, i) => scorer.model.pod(c.endpoint.key).predictSeconds(i === 0 && held ? 64 : 1664, c.metrics, t, 0, false, weights[i]));
        const best = Math.min(...predicted);
        return predicted.map((p) => best / p);
      };
      return { scores, expected };
    };
    const spared = scoresWith({});
    // b's line is a third of a's, the holder's: charged once; c is a's equal and d slower at the prompt, though
    // cheaper per token: charged twice, as a is.
    spared.expected([2, 1, 2, 2]).forEach((e, i) => expect(spared.scores[i]).toBeCloseTo(e, 9));
    expect(spared.scores[1]).toBeGreaterThan(spared.expected([2, 2, 2, 2])[1]! * 1.5);
    expect(spared.scores[3]).toBeLessThan(spared.expected([2, 1, 2, 1])[3]! * 0.8);
    const charged = scoresWith({ fasterPodRatio: 0 });
    charged.expected([2, 2, 2, 2]).forEach((e, i) => expect(charged.scores[i]).toBeCloseTo(e, 9));
    // Cold: the holder is the fastest line (b's), nobody is faster, so every candidate is charged twice.
    const cold = scoresWith({}, false);
    cold.expected([2, 2, 2, 2]).forEach((e, i) => expect(cold.scores[i]).toBeCloseTo(e, 9));
  });

  it('learns from the scrapes that a pod has become 3× slower per token and prefers the other', () => {
    const pods = new TwoPodScrapes();
    const latency = buildScheduler(latencyEndpointPickerConfig(), { now: () => pods.t, random: seeded(3) });
    pods.learn(latency, 0.0006, 0.0002);
    const estimateA = latencyOf(latency).model.pod('a:8000').stats(pods.t).estimate;
    const estimateB = latencyOf(latency).model.pod('b:8000').stats(pods.t).estimate;
    expect(Math.abs(estimateA.slope - 0.0006) / 0.0006).toBeLessThan(0.05);
    expect(Math.abs(estimateB.slope - 0.0002) / 0.0002).toBeLessThan(0.05);
    expect(latency.schedule(request(blocks('fresh', 100)), [pods.snapshot('a'), pods.snapshot('b')]).target.endpoint.name).toBe('b');
  });

  it('tries a pod learnt slow again once it has produced no first token for a while: its line goes to the pool\'s (a pod that recovered was avoided for minutes, session 44\'s probe)', () => {
    let t = NOW;
    const latency = buildScheduler(latencyEndpointPickerConfig(), { now: () => t, random: seeded(3) });
    const counters = { a: { count: 0, sum: 0, queries: 0 }, b: { count: 0, sum: 0, queries: 0 } };
    const random = seeded(4);
    const snapshot = (name: 'a' | 'b', waiting = 0) =>
      pod(name, { updateTime: t, waitingQueueSize: waiting, firstTokenCount: counters[name].count, firstTokenSecondsSum: counters[name].sum, prefixCacheQueryTokens: counters[name].queries, prefixCacheHitTokens: 0 });
    const tick = (serving: readonly ['a' | 'b', number][]) => {
      t += 50;
      for (const [name, cost] of serving) {
        const tokens = 200 + Math.floor(random() * 2000);
        counters[name].count += 1;
        counters[name].sum += 0.02 + cost * tokens;
        counters[name].queries += tokens;
      }
      latency.schedule(request(blocks(`probe${t}`, 8)), [snapshot('a'), snapshot('b')]);
    };
    for (let i = 0; i < 200; i++) tick([['a', 0.0006], ['b', 0.0002]]);
    // From now on a gets nothing (the scorer avoids it; it has recovered, unseen). b has two requests waiting: 1,600
    // tokens of its own plus ~2,400 queued at 0.2 ms beat a's 1,600 at 0.6 ms while a's line stands.
    const fresh = () => latency.schedule(request(blocks(`fresh${t}`, 100)), [snapshot('a'), snapshot('b', 2)]).target.endpoint.name;
    for (let i = 0; i < 100; i++) tick([['b', 0.0002]]);
    expect(fresh()).toBe('b'); // 5 s without a first token on a
    for (let i = 0; i < 700; i++) tick([['b', 0.0002]]);
    expect(fresh()).toBe('a'); // 40 s: a's line is b's but for an eighth of the difference
    expect(latencyOf(latency).model.pod('a:8000').stats(t).estimate.slope).toBeLessThan(0.0003);
  });

  it('in the default config, a pod learnt 2.5× slower keeps its prefix group while its queue is short and loses members to a fast pod once picks queue there; the prefix-first config keeps them all', () => {
    const run = (config: EndpointPickerConfig) => {
      let t = NOW;
      const scheduler = buildScheduler(config, { now: () => t, random: seeded(5) });
      const counters = { a: { count: 0, sum: 0, queries: 0 }, b: { count: 0, sum: 0, queries: 0 } };
      const random = seeded(6);
      const snapshot = (name: 'a' | 'b') =>
        pod(name, { updateTime: t, firstTokenCount: counters[name].count, firstTokenSecondsSum: counters[name].sum, prefixCacheQueryTokens: counters[name].queries, prefixCacheHitTokens: 0 });
      // Both pods' scrapes show first tokens: a at 2.5× b's cost per token and overhead (an older GPU beside a newer one).
      for (let i = 0; i < 200; i++) {
        t += 50;
        for (const [name, slowdown] of [['a', 2.5], ['b', 1]] as const) {
          const tokens = 200 + Math.floor(random() * 2000);
          counters[name].count += 1;
          counters[name].sum += slowdown * (0.02 + 0.0002 * tokens);
          counters[name].queries += tokens;
        }
        scheduler.schedule(request(blocks(`probe${i}`, 8)), [snapshot('a'), snapshot('b')]);
      }
      const system = blocks('system', 100);
      // The group's first request lands on a (the only candidate then): a holds the prompt.
      const first = request(system + blocks('q0', 4));
      commit(scheduler, first, scheduler.schedule(first, [snapshot('a')]));
      const picks: string[] = [];
      for (let i = 1; i <= 16; i++) {
        const next = request(system + blocks(`q${i}`, 4));
        const result = scheduler.schedule(next, [snapshot('a'), snapshot('b')]);
        commit(scheduler, next, result);
        picks.push(result.target.endpoint.name);
      }
      return picks;
    };
    // Prefix-first: the hit's 3 points keep every member on the slow pod, however much queues there.
    expect(run(prefixFirstEndpointPickerConfig())).toEqual(Array(16).fill('a'));
    // Default: the first members stay with the hit (a's queue is short: about 1 s predicted against b's 0.35 s with the
    // whole prompt to recompute, a loss of 2.6 latency points against the hit's 2.9). Each pick queues 64 more
    // tokens at a's learnt 0.5 ms a token; past about 1.26 s predicted the hit no longer pays, and members go to b.
    const picks = run(defaultEndpointPickerConfig());
    expect(picks[0]).toBe('a');
    expect(picks.slice(8)).toContain('b');
  });

  it('credits a pod past the prefix window only as far as its tail probes match: a long shared document stays on its pod, a long unique question after a long shared prefix still counts', () => {
    // The default approximate scorer compares the first 256 blocks of 64 characters (16,384). Session 28: charging
    // the part past the window to the pod holding a 25,600-character document moved its later questions to idle pods;
    // crediting every window holder with the whole prompt herded long unique questions after a shared prefix onto one.
    const doc = blocks('doc', 400);
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now, random: seeded(3) });
    const first = request(doc + blocks('q0', 1));
    commit(scheduler, first, scheduler.schedule(first, [pod('a')]));
    const picks: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const next = request(doc + blocks(`q${i}`, 1));
      const result = scheduler.schedule(next, [pod('a', {}, i), pod('b'), pod('c')]);
      picks.push(result.target.endpoint.name);
      const predictions = latencyOf(scheduler).predictions(next)!;
      // The probes reach the document's last block (the question's block is the one left).
      expect(predictions.get('a:8000')!.uncachedTokens).toBe(16);
      expect(predictions.get('b:8000')!.uncachedTokens).toBe((400 + 1) * 16);
      commit(scheduler, next, result);
    }
    expect(picks).toEqual(['a', 'a', 'a']);

    // A 19,200-character shared prefix, then 600 unique blocks: the holder is charged the unique part (its probes match
    // up to 18,432, the last one inside the shared prefix), and its queued work grows with every pick.
    const system = blocks('system', 300);
    const other = buildScheduler(defaultEndpointPickerConfig(), { now, random: seeded(3) });
    const warm = request(system + blocks('warm', 600));
    commit(other, warm, other.schedule(warm, [pod('a')]));
    const unique = request(system + blocks('unique', 600));
    other.schedule(unique, [pod('a'), pod('b')]);
    const onA = latencyOf(other).predictions(unique)!.get('a:8000')!;
    expect(onA.uncachedTokens).toBe((300 * 64 + 600 * 64 - 18_432) / 4);
    // The prefix score is the window's, probes or not: a full-window holder scores 1.
    const scored = other.plugin('prefix-cache-scorer')!;
    expect((scored as unknown as { score(c: unknown, e: EndpointSnapshot[]): number[] }).score({ request: request(system + blocks('again', 600)), state: new CycleState() }, [pod('a'), pod('b')])).toEqual([1, 0]);
  });

  it('commits the pick\'s prefill to its pod whether the result names the scored snapshot itself or an equal copy of it', () => {
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { now, random: seeded(3) });
    const pods = [pod('a'), pod('b'), pod('c')];
    const pendingOn = (name: string) => latencyOf(scheduler).model.pod(`${name}:8000`).stats(NOW).pendingTokens;
    const first = request(blocks('one', 8));
    const picked = scheduler.schedule(first, pods);
    commit(scheduler, first, picked);
    expect(pendingOn(picked.target.endpoint.name)).toBe(8 * 16);
    // A profile handler may hand back another object for the same endpoint: found by key, charged to the same pod.
    const second = request(blocks('two', 4));
    const result = scheduler.schedule(second, pods);
    const before = pendingOn(result.target.endpoint.name);
    commit(scheduler, second, { ...result, target: { ...result.target } });
    expect(pendingOn(result.target.endpoint.name)).toBe(before + 4 * 16);
    const total = pods.reduce((sum, p) => sum + pendingOn(p.endpoint.name), 0);
    expect(total).toBe(12 * 16);
  });

  it('drops the prefills queued on a pod before its model server restarted, keeps those picked after, and leaves other pods alone', () => {
    let t = NOW;
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { now: () => t, random: seeded(5) });
    const pending = (name: string) => latencyOf(scheduler).model.pod(`${name}:8000`).stats(t).pendingTokens;
    const onA = (label: string, count: number) => {
      const req = request(blocks(label, count));
      commit(scheduler, req, scheduler.schedule(req, [pod('a')]));
    };
    onA('old-1', 8);
    onA('old-2', 4);
    const onB = request(blocks('b', 2));
    commit(scheduler, onB, scheduler.schedule(onB, [pod('b')]));
    t = NOW + 100;
    onA('new', 2);
    expect(pending('a')).toBe(14 * 16);
    scheduler.plugins.endpointRestarted('a:8000', NOW + 50);
    expect(pending('a')).toBe(2 * 16);
    expect(pending('b')).toBe(2 * 16);
    // A pod the model never saw: nothing to do, and no model made for it.
    scheduler.plugins.endpointRestarted('z:8000', NOW + 50);
    expect(latencyOf(scheduler).model.get('z:8000')).toBeUndefined();
  });

  it('charges the whole prompt (characters ÷ charactersPerToken) when no prefix scorer ran before it', () => {
    const scorer = new LatencyScorer('latency', resolvePluginParameters('latency-scorer', { charactersPerToken: 2 }) as never, {
      now: () => NOW, random: Math.random, metrics: NOOP_SCHEDULING_METRICS, logger: SILENT_PLUGIN_LOGGER,
    });
    const req = request('x'.repeat(1000));
    scorer.score({ request: req, state: new CycleState() }, [pod('a')]);
    expect(scorer.predictions(req)!.get('a:8000')!.uncachedTokens).toBe(500);
  });

  it('prefers the precise scorer\'s match in tokens over the approximate one\'s characters, whichever runs first', () => {
    const state = new CycleState();
    publishPrefixMatch(state, { unit: 'tokens', promptLength: 100, cachedLength: new Map([['a:8000', 64]]) });
    publishPrefixMatch(state, { unit: 'characters', promptLength: 400, cachedLength: new Map() });
    expect(state.get(PREFIX_MATCH)?.unit).toBe('tokens');
    const other = new CycleState();
    publishPrefixMatch(other, { unit: 'characters', promptLength: 400, cachedLength: new Map() });
    publishPrefixMatch(other, { unit: 'tokens', promptLength: 100, cachedLength: new Map() });
    expect(other.get(PREFIX_MATCH)?.unit).toBe('tokens');
  });

  it('composes with the default filters and weights: the config validates, with the replaced scorers gone', () => {
    const config = latencyEndpointPickerConfig();
    const [profile] = config.schedulingProfiles;
    expect(profile!.plugins.map((p) => [p.pluginRef, p.weight])).toEqual([
      ['decode-filter', undefined],
      ['saturation-filter', undefined],
      ['session-affinity-filter', undefined],
      ['prefix-cache-scorer', 1],
      ['latency-scorer', 4],
      ['kv-cache-utilization-scorer', 1],
      ['max-score-picker', undefined],
    ]);
    // A saturated pod is still excluded before any scorer runs, and a full pool still answers 429.
    const latency = buildScheduler(config, { now: () => NOW, random: seeded(5) });
    expect(latency.schedule(request('hello'), [pod('a', { waitingQueueSize: 6 }), pod('b')]).target.endpoint.name).toBe('b');
    expect(() => latency.schedule(request('hello'), [pod('a', { waitingQueueSize: 6 })])).toThrow(/saturated|saturation/);
  });
});

/** `config` with `parameters` set on its latency scorer, loaded as a file would be. */
describe('keepOneOffOnHolder: a request without a session id is not predicted faster on a pod that would recompute its prompt\'s holder\'s prefix (session 61, llm-d\'s ramp on tight KV)', () => {
  const system = blocks('system', 100); // 1,600 tokens

  /**
   * Pod a holds the system prompt and has six long prefills queued (this EPP picked them; none has produced a first
   * token); b is idle and holds none of it. Returns the pick for the next request sharing the prompt (with `headers`)
   * and the scheduler's predictions for it.
   */
  function place(keepOneOffOnHolder: boolean | undefined, headers: Record<string, string> = {}, bFull = true, base = defaultEndpointPickerConfig()) {
    const config = keepOneOffOnHolder === undefined ? base : withLatencyScorer(base, { keepOneOffOnHolder });
    const scheduler = buildScheduler(config, { now: () => NOW, random: seeded(61) });
    if (bFull) fillCache(scheduler, 'b:8000');
    const first = request(system + blocks('q0', 4));
    commit(scheduler, first, scheduler.schedule(first, [pod('a')]));
    for (let i = 0; i < 5; i++) {
      const other = request(blocks(`other${i}`, 100));
      commit(scheduler, other, scheduler.schedule(other, [pod('a')]));
    }
    const next = { ...request(system + blocks('q1', 4)), headers };
    const result = scheduler.schedule(next, [pod('a'), pod('b')]);
    return { pick: result.target.endpoint.name, predictions: latencyOf(scheduler).predictions(next)! };
  }

  /** Makes the approximate index hold as much for `key` as its capacity: a prefill there evicts (a full vLLM cache). */
  function fillCache(scheduler: Scheduler, key: string): void {
    const index = (scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer).index;
    index.setCapacity(key, 4);
    index.record(key, [11, 12, 13, 14]);
    expect(index.isFull(key)).toBe(true);
  }

  it('keeps a one-off request on its holder (kvroute\'s default since session 61) where without it the request goes to the idle pod that would recompute the prompt; the predictions stay the request\'s own', () => {
    expect(place(undefined).pick).toBe('a');
    expect(place(false).pick).toBe('b');
    const kept = place(true);
    expect(kept.pick).toBe('a');
    expect(kept.predictions.get('b:8000')!.ttftSeconds).toBeLessThan(kept.predictions.get('a:8000')!.ttftSeconds / 3);
  });

  it('places a session\'s request as without it: its pick is its conversation\'s pod for every later turn', () => {
    expect(place(true, { 'x-session-id': 'chat-1' }).pick).toBe('b');
  });

  it('lets the request go to a pod whose cache the index has room in (a prefill there evicts little or nothing), and where the index cannot tell (a fixed or scaled capacity, a match without cacheFull as the precise scorer publishes it) takes every cache as full', () => {
    expect(place(true, {}, false).pick).toBe('b');
    // Without autoTune (a fixed capacity, not the pod's KV cache) or at a capacityFactor other than 1 the index cannot
    // tell: b's empty index does not count as room.
    for (const parameters of [{ autoTune: false }, { capacityFactor: 2 }]) {
      const base = defaultEndpointPickerConfig();
      const config = parseEndpointPickerConfig(JSON.stringify({
        ...base,
        plugins: base.plugins.map((p) => (p.type === 'prefix-cache-scorer' ? { ...p, parameters: { ...p.parameters, ...parameters } } : p)),
      }));
      expect(place(true, {}, false, config).pick).toBe('a');
    }
    // A match that cannot tell (no cacheFull, as the precise scorer publishes it): b is held to a's prediction.
    const config = withLatencyScorer(defaultEndpointPickerConfig(), { keepOneOffOnHolder: true });
    const scorer = latencyOf(buildScheduler(config, { now: () => NOW, random: seeded(64) }));
    for (let i = 0; i < 3; i++) {
      const queued = request(blocks(`queued${i}`, 100));
      scorer.score({ request: queued, state: stateWithMatch(queued, 'a:8000', 0) }, [pod('a')]);
      scorer.preRequest(queued, { target: pod('a') } as SchedulingResult);
    }
    const next = request(system + blocks('q1', 4));
    const scores = scorer.score({ request: next, state: stateWithMatch(next, 'a:8000', system.length) }, [pod('a'), pod('b')]);
    expect(scorer.predictions(next)!.get('b:8000')!.ttftSeconds).toBeLessThan(scorer.predictions(next)!.get('a:8000')!.ttftSeconds);
    expect(scores).toEqual([1, 1]);
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 4, maxEntries: 100 });
    index.record('x', [1, 2, 3]);
    expect(index.isFull('x')).toBe(false);
    index.record('x', [4]);
    expect(index.isFull('x')).toBe(true);
    expect(index.isFull('unknown')).toBe(false);
    index.setCapacity('none', 0);
    expect(index.isFull('none')).toBe(false);
  });

  it('lets a pod whose learned line prefills the prompt in under half the holder\'s time take it (a faster GPU\'s gain lasts), not one only a third faster', () => {
    /** a learnt at `costA` seconds a token, b at 0.2 ms; a holds the prompt with three long prefills queued. */
    const pick = (costA: number, keepOneOffOnHolder: boolean) => {
      const pods = new TwoPodScrapes();
      const scheduler = buildScheduler(withLatencyScorer(defaultEndpointPickerConfig(), { keepOneOffOnHolder }), { now: () => pods.t, random: seeded(63) });
      fillCache(scheduler, 'b:8000');
      pods.learn(scheduler, costA, 0.0002);
      const first = request(system + blocks('q0', 4));
      commit(scheduler, first, scheduler.schedule(first, [pods.snapshot('a')]));
      pods.t += 50;
      pods.firstToken('a', 0.02 + costA * 1664, 1664);
      for (const r of [0, 1, 2].map((i) => request(blocks(`busy${i}`, 100)))) commit(scheduler, r, scheduler.schedule(r, [pods.snapshot('a')]));
      return scheduler.schedule(request(system + blocks('q1', 4)), [pods.snapshot('a'), pods.snapshot('b')]).target.endpoint.name;
    };
    // 6× b's cost a token: b's line is far under half a's, so b takes the request as without the rule.
    expect(pick(0.0012, true)).toBe('b');
    // 1.5×: b's line is two thirds of a's; the queue on a sends the request to b without the rule, not with it.
    expect(pick(0.0003, false)).toBe('b');
    expect(pick(0.0003, true)).toBe('a');
    // Either side of one half: 2.5× (the heterogeneous pool's slow pods) lets b take it, 1.8× does not.
    expect(pick(0.0005, true)).toBe('b');
    expect(pick(0.00036, false)).toBe('b');
    expect(pick(0.00036, true)).toBe('a');
  });

  it('is validated as a boolean, named among the allowed fields, and rendered only when set', () => {
    expect(resolvePluginParameters('latency-scorer', { keepOneOffOnHolder: true })).toMatchObject({ keepOneOffOnHolder: true });
    expect(resolvePluginParameters('latency-scorer', undefined)).not.toHaveProperty('keepOneOffOnHolder');
    expect(() => resolvePluginParameters('latency-scorer', { keepOneOffOnHolder: 'yes' })).toThrow(/keepOneOffOnHolder: must be/);
  });
});

function withLatencyScorer(config: EndpointPickerConfig, parameters: Record<string, unknown>): EndpointPickerConfig {
  return parseEndpointPickerConfig(JSON.stringify({
    ...config,
    plugins: config.plugins.map((p) => (p.type === 'latency-scorer' ? { ...p, parameters: { ...p.parameters, ...parameters } } : p)),
  }));
}

/** `config` with the latency scorer's `slotWait` set. */
function withSlotWait(config: EndpointPickerConfig, slotWait: SlotWaitMode): EndpointPickerConfig {
  return withLatencyScorer(config, { slotWait });
}

/**
 * Session 56's probe: one hot system prompt every pod holds, at 83% of the slots' capacity (bench/README.md, "Session
 * 56"). Each pod has 4 slots and a learnt mean request time of 0.8 s; `occupants` are its running + waiting requests;
 * `holders` hold the whole prompt, the others none of it. Returns each candidate's predicted slot wait for a one-off
 * request (no session id) and the pick.
 */
function hotPromptWaits(slotWait: SlotWaitMode, occupants: readonly number[], holders: readonly boolean[]): { waits: number[]; pick: string } {
  const scheduler = buildScheduler(withSlotWait(withMaxNumSeqs(defaultEndpointPickerConfig(), 4), slotWait), { now: () => NOW, random: seeded(11) });
  const scorer = latencyOf(scheduler);
  const names = occupants.map((_, i) => `p${i}`);
  const system = blocks('system', 100);
  // Each holder's prefix index learns the prompt from a request scheduled there alone (not committed: no queued work).
  names.forEach((name, i) => holders[i] && scheduler.schedule(request(system + blocks(`warm${i}`, 4)), [pod(name)]));
  // A page before: none finished; the candidates' page: 8 finished in 6.4 s of running (a mean of 0.8 s).
  for (const name of names) scorer.model.pod(`${name}:8000`).ingest({ ...EMPTY_METRICS, updateTime: NOW - 1000, inferenceCount: 0, inferenceSecondsSum: 0 }, NOW - 1000);
  const candidates = names.map((name, i) => pod(name, {
    runningQueueSize: Math.min(4, occupants[i]!), waitingQueueSize: Math.max(0, occupants[i]! - 4), inferenceCount: 8, inferenceSecondsSum: 6.4,
  }));
  const req = request(system + blocks('question', 4));
  const pick = scheduler.schedule(req, candidates).target.endpoint.name;
  const predictions = scorer.predictions(req)!;
  return { waits: names.map((name) => predictions.get(`${name}:8000`)!.slotWaitSeconds), pick };
}

describe('slotWait: avoidable (the default in session 56): the wait priced on a full pod another holder of the prompt would spare', () => {
  it('with every pod past half full, prices the full holder\'s wait when another holder has a free slot; imbalanced (session 55) prices none, since no pod has half its slots free', () => {
    const occupants = [5, 3, 3, 3]; // p0: 4 running, 1 waiting; the others 3 of 4
    const all = [true, true, true, true];
    expect(hotPromptWaits('imbalanced', occupants, all).waits).toEqual([0, 0, 0, 0]);
    const avoidable = hotPromptWaits('avoidable', occupants, all);
    // p0: one request ahead of it for 4 slots, (1 + 1) ÷ 4 × 0.8 s.
    expect(avoidable.waits[0]).toBeCloseTo(0.4, 9);
    expect(avoidable.waits.slice(1)).toEqual([0, 0, 0]);
    expect(avoidable.pick).not.toBe('p0');
  });

  it('with every pod full, prices each holder\'s wait but the shortest among the pods holding as much, so the one that frees a slot first is preferred', () => {
    const { waits, pick } = hotPromptWaits('avoidable', [6, 5, 7, 6], [true, true, true, true]);
    expect(waits[0]).toBeCloseTo(0.6, 9);
    expect(waits[1]).toBe(0);
    expect(waits[2]).toBeCloseTo(0.8, 9);
    expect(waits[3]).toBeCloseTo(0.6, 9);
    expect(pick).toBe('p1');
    // imbalanced leaves them all unpriced (none has half its slots free).
    expect(hotPromptWaits('imbalanced', [6, 5, 7, 6], [true, true, true, true]).waits).toEqual([0, 0, 0, 0]);
  });

  it('leaves the wait unpriced where avoiding it means recomputing the prompt: the only holder is full and the others, with free slots, hold none of it', () => {
    const { waits, pick } = hotPromptWaits('avoidable', [5, 3, 3, 3], [true, false, false, false]);
    expect(waits).toEqual([0, 0, 0, 0]);
    // The holder keeps it: 1,600 recomputed tokens elsewhere against its 64.
    expect(pick).toBe('p0');
    // A second holder with a free slot (p2) spares both full pods their wait, the holder p0 and the non-holder p1.
    const mixed = hotPromptWaits('avoidable', [5, 6, 3, 3], [true, false, true, false]);
    expect(mixed.waits[0]).toBeCloseTo(0.4, 9);
    expect(mixed.waits[1]).toBeCloseTo(0.6, 9);
    expect(mixed.pick).toBe('p2');
  });

  it('with every pod full, a holder is not priced for a non-holder\'s shorter wait; each is measured against the pods holding at least as much', () => {
    // p0 and p2 hold the prompt (waits 0.4, 0.6 s), p1 and p3 do not (0.2, 0.8 s).
    const { waits } = hotPromptWaits('avoidable', [5, 4, 6, 7], [true, false, true, false]);
    expect(waits[0]).toBe(0);
    expect(waits[1]).toBe(0);
    expect(waits[2]).toBeCloseTo(0.6, 9);
    expect(waits[3]).toBeCloseTo(0.8, 9);
  });

  it('without a prefix match every candidate prefills the whole prompt alike, so each full one is priced when another waits less; the prediction a load gate reads (predictTtftSeconds) is the score\'s', () => {
    const scheduler = buildScheduler(withSlotWait(withMaxNumSeqs(defaultEndpointPickerConfig(), 4), 'avoidable'), { now: () => NOW, random: seeded(12) });
    const scorer = latencyOf(scheduler);
    // Occupants as this EPP's own in-flight count (no waiting requests on the page: no queued prefill either).
    const candidatesOf = (name: string, occupants: readonly number[]) => occupants.map((o, i) => {
      scorer.model.pod(`${name}${i}:8000`).ingest({ ...EMPTY_METRICS, updateTime: NOW - 1000, inferenceCount: 0, inferenceSecondsSum: 0 }, NOW - 1000);
      return pod(`${name}${i}`, { runningQueueSize: Math.min(4, o), inferenceCount: 8, inferenceSecondsSum: 6.4 }, o);
    });
    const req = request(blocks('question', 4));
    // Two candidates, then six on the same scorer (its per-position scratch grows).
    const two = scorer.predictTtftSeconds(req, undefined, candidatesOf('t', [5, 6]));
    const six = candidatesOf('s', [5, 3, 6, 4, 4, 7]);
    const predicted = scorer.predictTtftSeconds(req, undefined, six);
    const base = predicted[1]!; // s1 has a free slot: no wait, and it spares every full one its wait
    expect(two[1]! - two[0]!).toBeCloseTo(0.6, 9); // t1's 0.6 s priced against t0's shorter wait, t0's not at all
    expect(predicted[0]! - base).toBeCloseTo(0.4, 9);
    expect(predicted[2]! - base).toBeCloseTo(0.6, 9);
    expect(predicted[3]! - base).toBeCloseTo(0.2, 9);
    expect(predicted[4]! - base).toBeCloseTo(0.2, 9);
    expect(predicted[5]! - base).toBeCloseTo(0.8, 9);
    // The score's own predictions for the same candidates agree.
    const scored = request(blocks('question', 4));
    scorer.score({ request: scored, state: new CycleState() }, six);
    const byKey = scorer.predictions(scored)!;
    six.forEach((c, i) => expect(byKey.get(c.endpoint.key)!.ttftSeconds).toBeCloseTo(predicted[i]!, 9));
  });

  it('with no pod full prices nothing, as imbalanced', () => {
    expect(hotPromptWaits('avoidable', [3, 2, 3, 1], [true, true, true, true]).waits).toEqual([0, 0, 0, 0]);
  });
});

/**
 * Two hot system prompts at 16 req/s (bench/README.md, "Session 57"): pods of 4 slots with a learnt mean request time
 * of 0.8 s. `holders` hold the prompt (each from a request scheduled there alone); `committed` requests sharing it are
 * committed to the first holder (this EPP's count of the prompt's requests in flight), and `occupants` are each pod's
 * running + waiting requests. Returns the scheduler, the slot waits a one-off request's predictions counted, and its pick.
 */
function hotPrefixRun(slotWait: SlotWaitMode, occupants: readonly number[], holders: readonly boolean[], committed: number, now: () => number = () => NOW, parameters: Record<string, unknown> = {}) {
  const scheduler = buildScheduler(withLatencyScorer(withMaxNumSeqs(defaultEndpointPickerConfig(), 4), { slotWait, ...parameters }), { now, random: seeded(13) });
  const scorer = latencyOf(scheduler);
  const names = occupants.map((_, i) => `p${i}`);
  const system = blocks('system', 100);
  names.forEach((name, i) => holders[i] && scheduler.schedule(request(system + blocks(`warm${i}`, 4)), [pod(name)]));
  const first = names[holders.indexOf(true)]!;
  const inFlight: LLMRequest[] = [];
  for (let k = 0; k < committed; k++) {
    const req = request(system + blocks(`earlier${k}`, 4));
    commit(scheduler, req, scheduler.schedule(req, [pod(first)]));
    inFlight.push(req);
  }
  for (const name of names) scorer.model.pod(`${name}:8000`).ingest({ ...EMPTY_METRICS, updateTime: NOW - 1000, inferenceCount: 0, inferenceSecondsSum: 0 }, NOW - 1000);
  const candidates = names.map((name, i) => pod(name, {
    runningQueueSize: Math.min(4, occupants[i]!), waitingQueueSize: Math.max(0, occupants[i]! - 4), inferenceCount: 8, inferenceSecondsSum: 6.4,
  }, occupants[i]!));
  const req = request(system + blocks('question', 4));
  const pick = scheduler.schedule(req, candidates).target.endpoint.name;
  const predictions = scorer.predictions(req)!;
  return { scheduler, scorer, inFlight, first, req, candidates, waits: names.map((name) => predictions.get(`${name}:8000`)!.slotWaitSeconds), pick };
}

describe('slotWait: hot-prefixes (the default since session 57): a prefix whose requests in flight would take half a pod\'s slots is replicated onto a pod with room while its holders are the busier', () => {
  it('prices every wait and scores the request as a replication once the prompt is hot and its holder runs a quarter of its slots more than a pod with room without it, so it goes to that pod (which then holds it too); avoidable keeps it on the holder', () => {
    // p0 holds the prompt and runs 8 of its requests (4 running, 4 waiting); p1-p3 run 3 each (past half full, so
    // the slots are not "imbalanced") with a slot free, and hold none of it.
    const hot = hotPrefixRun('hot-prefixes', [8, 3, 3, 3], [true, false, false, false], 8);
    expect(hot.waits[0]).toBeGreaterThan(0.5);
    expect(hot.waits.slice(1)).toEqual([0, 0, 0]);
    expect(hot.pick).not.toBe('p0');
    const avoidable = hotPrefixRun('avoidable', [8, 3, 3, 3], [true, false, false, false], 8);
    expect(avoidable.waits).toEqual([0, 0, 0, 0]);
    expect(avoidable.pick).toBe('p0');
  });

  it('replicates before the holders are full: a holder with a free slot a quarter of its slots busier than a pod with room is the busier side', () => {
    // 4 slots a pod: p0 runs 3 (a slot free), p1-p3 run 2 each.
    const hot = hotPrefixRun('hot-prefixes', [3, 2, 2, 2], [true, false, false, false], 3);
    expect(hot.pick).not.toBe('p0');
    expect(hotPrefixRun('avoidable', [3, 2, 2, 2], [true, false, false, false], 3).pick).toBe('p0');
    // As busy as the others (a gap under a quarter of the slots): it stays with its holder.
    expect(hotPrefixRun('hot-prefixes', [2, 2, 2, 2], [true, false, false, false], 3).pick).toBe('p0');
  });

  it('is not hot while its requests in flight would take under half of one pod\'s slots, however busy the holder', () => {
    // The same full holder, but only one of its requests shares the prompt (the rest are other traffic).
    const cool = hotPrefixRun('hot-prefixes', [8, 3, 3, 3], [true, false, false, false], 1);
    expect(cool.waits).toEqual([0, 0, 0, 0]);
    expect(cool.pick).toBe('p0');
    // Two, half a pod's slots: hot.
    expect(hotPrefixRun('hot-prefixes', [8, 3, 3, 3], [true, false, false, false], 2).pick).not.toBe('p0');
  });

  it('charges a pod with room that lacks the hot part as a holder and the holders as if it were not cached, in the score only: the predictions kept for the commit are the request\'s own', () => {
    const run = hotPrefixRun('hot-prefixes', [8, 3, 3, 3], [true, false, false, false], 8);
    const own = run.scorer.predictions(run.req)!;
    const tokens = (i: number) => own.get(`p${i}:8000`)!.uncachedTokens;
    // Its own uncached tokens: the holder's question alone, the whole prompt elsewhere.
    expect(tokens(1)).toBe(tokens(2));
    expect(tokens(1)).toBeGreaterThan(20 * tokens(0));
    // The score of another such request over p0 and the two pods the first did not go to (the pick now holds the
    // prompt too): those two (no queue, no wait, charged the holder's uncached tokens) predict alike and best; p0 is
    // charged the whole prompt and its slot wait.
    const rest = run.candidates.filter((c) => c.endpoint.name !== run.pick);
    expect(rest.map((c) => c.endpoint.name)[0]).toBe('p0');
    const cycle = { request: request(blocks('system', 100) + blocks('another', 4)), state: new CycleState() };
    (run.scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer).matchRatios(cycle, rest);
    const scores = run.scorer.score(cycle, rest);
    expect(scores.slice(1)).toEqual([1, 1]);
    expect(scores[0]).toBeLessThan(0.2);
    // With the pick among them, its room equal to the others' (3 of 4 slots each) and the prompt held: no longer the
    // busier side's, so no replication (the others prefill it all).
    const again = { request: request(blocks('system', 100) + blocks('once more', 4)), state: new CycleState() };
    (run.scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer).matchRatios(again, run.candidates);
    const unreplicated = run.scorer.score(again, run.candidates);
    expect(run.candidates.filter((_, i) => unreplicated[i] === 1).map((c) => c.endpoint.name)).toEqual([run.pick]);
  });

  it('a request carrying a session id right after a replicating one is scored as its own, not as a replication', () => {
    const run = hotPrefixRun('hot-prefixes', [8, 3, 3, 3], [true, false, false, false], 8);
    const rest = run.candidates.filter((c) => c.endpoint.name !== run.pick);
    const prefix = run.scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer;
    const scored = (req: LLMRequest) => {
      const cycle = { request: req, state: new CycleState() };
      prefix.matchRatios(cycle, rest);
      return run.scorer.score(cycle, rest);
    };
    const session = (label: string): LLMRequest => ({ ...request(blocks('system', 100) + blocks(label, 4)), headers: { 'x-session-id': label } });
    const replicating = scored(request(blocks('system', 100) + blocks('one-off', 4)));
    expect(replicating.slice(1)).toEqual([1, 1]);
    const afterReplication = scored(session('s1'));
    // The same session request after a request that is no replication (an unrelated prompt) scores the same.
    scored(request(blocks('unrelated', 8)));
    expect(afterReplication).toEqual(scored(session('s1')));
    // Its own prediction: the holder's wait against the others' whole prompt, not the holder charged the prompt too.
    expect(afterReplication[0]).toBeGreaterThan(5 * replicating[0]!);
  });

  it('replicates onto the pods without the prompt that are a quarter of their slots roomier than its least occupied holder, not onto one as busy as the holder', () => {
    // p0 holds the prompt at 3 of its 4 slots (a slot free) with 3 of the prompt's requests in flight; p1 runs 1, p2
    // and p3 run 3 each.
    const run = hotPrefixRun('hot-prefixes', [3, 1, 3, 3], [true, false, false, false], 3);
    expect(run.pick).toBe('p1');
    expect(hotPrefixRun('avoidable', [3, 1, 3, 3], [true, false, false, false], 3).pick).toBe('p0');
    // Again over p0, p2, p3 and a fresh pod running 1: only the fresh pod is charged as a holder; p2 and p3, as busy as
    // p0 though each has a free slot, are charged the whole prompt.
    const fresh = pod('p9', { runningQueueSize: 1, inferenceCount: 8, inferenceSecondsSum: 6.4 }, 1);
    const candidates = [...run.candidates.filter((c) => c.endpoint.name !== 'p1'), fresh];
    const cycle = { request: request(blocks('system', 100) + blocks('again', 4)), state: new CycleState() };
    (run.scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer).matchRatios(cycle, candidates);
    const scores = run.scorer.score(cycle, candidates);
    expect(scores[3]).toBe(1);
    expect(scores[1]).toBeLessThan(0.5);
    expect(scores[2]).toBeLessThan(0.5);
  });

  it('replicates under ownPrefillWeight 2 as well, the holder chosen by its real uncached tokens', () => {
    const hot = hotPrefixRun('hot-prefixes', [8, 3, 3, 3], [true, false, false, false], 8, () => NOW, { ownPrefillWeight: 2 });
    expect(hot.pick).not.toBe('p0');
    expect(hotPrefixRun('avoidable', [8, 3, 3, 3], [true, false, false, false], 8, () => NOW, { ownPrefillWeight: 2 }).pick).toBe('p0');
  });

  it('with every pod that does not hold the prompt full as well (an overloaded pool) there is no room to replicate it into: priced as under avoidable', () => {
    const occupants = [8, 5, 5, 5];
    const one = [true, false, false, false];
    const hot = hotPrefixRun('hot-prefixes', occupants, one, 8);
    expect(hot.waits).toEqual([0, 0, 0, 0]);
    expect(hot.waits).toEqual(hotPrefixRun('avoidable', occupants, one, 8).waits);
    expect(hot.pick).toBe('p0');
    // One of them with a free slot (3 of 4): hot again.
    expect(hotPrefixRun('hot-prefixes', [8, 5, 3, 5], one, 8).waits[0]).toBeGreaterThan(0);
  });

  it('with every candidate holding the prompt there is no pod to replicate it to (no pod without it, so none with room): its waits are priced as under avoidable, however many of its requests are in flight', () => {
    const occupants = [8, 5, 5, 5];
    const all = [true, true, true, true];
    const hot = hotPrefixRun('hot-prefixes', occupants, all, 16);
    // p0's wait is priced against the other holders' shorter ones; theirs, the shortest, are not.
    expect(hot.waits[0]).toBeGreaterThan(0);
    expect(hot.waits.slice(1)).toEqual([0, 0, 0]);
    expect(hot.waits).toEqual(hotPrefixRun('avoidable', occupants, all, 16).waits);
  });

  /**
   * On pods of `slots` sequence slots: `commits[h]` requests of one prompt committed to holder `p<h>`, each with
   * `questionBlocks` of its own (16 tokens a block) to prefill, whose first tokens a scrape has counted (no queue left
   * there); `others` more candidates without the prompt, each running `running` requests and having prefilled `busy`
   * unrelated prompts of 30 blocks; then a one-off request of the prompt with a short question. Returns its pick and the
   * first holder's lane load.
   */
  function laneRun(slotWait: SlotWaitMode, commits: readonly number[], questionBlocks: number, others: readonly { running?: number; busy?: number }[] = [{}, {}, {}], slots = 256) {
    const scheduler = buildScheduler(withLatencyScorer(withMaxNumSeqs(defaultEndpointPickerConfig(), slots), { slotWait }), { now: () => NOW, random: seeded(13) });
    const scorer = latencyOf(scheduler);
    const system = blocks('system', 100);
    const holders = commits.map((_, h) => `p${h}`);
    const rest = others.map((_, k) => `p${commits.length + k}`);
    const tokens = new Map<string, number>();
    holders.forEach((name, h) => {
      scheduler.schedule(request(system + blocks(`warm${h}`, 4)), [pod(name)]);
      for (let k = 0; k < commits[h]!; k++) {
        const req = request(system + blocks(`earlier${h}-${k}`, questionBlocks));
        commit(scheduler, req, scheduler.schedule(req, [pod(name)]));
      }
      tokens.set(name, commits[h]!);
    });
    rest.forEach((name, k) => {
      for (let j = 0; j < (others[k]!.busy ?? 0); j++) {
        const req = request(blocks(`unrelated${k}-${j}`, 30));
        commit(scheduler, req, scheduler.schedule(req, [pod(name)]));
      }
      tokens.set(name, others[k]!.busy ?? 0);
    });
    const names = [...holders, ...rest];
    const counters = { firstTokenSecondsSum: 0, prefixCacheQueryTokens: 0, prefixCacheHitTokens: 0, inferenceCount: 0, inferenceSecondsSum: 0 };
    for (const name of names) scorer.model.pod(`${name}:8000`).ingest({ ...EMPTY_METRICS, ...counters, updateTime: NOW - 1000, firstTokenCount: 0 }, NOW - 1000);
    const candidates = names.map((name, i) => {
      const running = i < holders.length ? commits[i]! : (others[i - holders.length]!.running ?? 0);
      return pod(name, { ...counters, firstTokenCount: tokens.get(name)!, runningQueueSize: running }, running);
    });
    const req = request(system + blocks('question', 4));
    return { pick: scheduler.schedule(req, candidates).target.endpoint.name, load: scorer.model.pod('p0:8000').laneLoad(NOW), queued: scorer.model.pod('p0:8000').pendingPrefillTokens(NOW) };
  }

  it('on pods whose slots do not bind (256), replicates a prompt with 8 requests in flight on its one holder once that holder\'s prefill lane was busy over a third of the last seconds and a pod without it a quarter less; not with a lighter lane nor with fewer requests (session 59: one hot prompt at 20 req/s stayed on two of four pods)', () => {
    // Eight requests of 30 blocks (480 tokens, about 0.12 s each on the prior's line): p0's lane about 0.46 busy.
    const hot = laneRun('hot-prefixes', [8], 30);
    expect(hot.queued).toBe(0);
    expect(hot.load).toBeGreaterThan(0.35);
    expect(hot.pick).not.toBe('p0');
    expect(laneRun('avoidable', [8], 30).pick).toBe('p0');
    // As many requests with short questions (p0's lane about 0.13 busy): it stays.
    const light = laneRun('hot-prefixes', [8], 4);
    expect(light.load).toBeLessThan(0.35);
    expect(light.pick).toBe('p0');
    // Seven long ones (a busier lane, about 1.2, but under 8 of the prompt's requests in flight on its holder): it stays.
    const few = laneRun('hot-prefixes', [7], 100);
    expect(few.load).toBeGreaterThan(0.35);
    expect(few.pick).toBe('p0');
  });

  it('the lane rule counts 8 requests in flight for each holder: two busy holders with 14 between them keep the prompt, with 16 they replicate it', () => {
    // p0 and p1 both hold the prompt, each lane about 0.41 (7 × 0.116 s) or 0.46 busy; p2 and p3 idle without it.
    const holders = (pick: string) => pick === 'p0' || pick === 'p1';
    expect(holders(laneRun('hot-prefixes', [7, 7], 30, [{}, {}]).pick)).toBe(true);
    expect(holders(laneRun('hot-prefixes', [8, 8], 30, [{}, {}]).pick)).toBe(false);
    // One holder busy, the other idle: the least loaded holder has time to spare, so nothing is replicated.
    expect(holders(laneRun('hot-prefixes', [16, 0], 30, [{}, {}]).pick)).toBe(true);
  });

  it('the lane rule replicates only onto a pod at least a quarter less busy than the least loaded holder, and with at most half of its slots taken', () => {
    // p0 holds the prompt, its lane about 0.46 busy; p1 without it has prefilled unrelated prompts of 30 blocks.
    // 3 of them (about 0.17 busy, 0.29 less): it takes the replica. 5 (about 0.29, 0.17 less): the prompt stays.
    expect(laneRun('hot-prefixes', [8], 30, [{ busy: 3 }]).pick).toBe('p1');
    expect(laneRun('hot-prefixes', [8], 30, [{ busy: 5 }]).pick).toBe('p0');
    // On 16-slot pods (8 of the prompt's requests: half of them, so the slot rule looks too, and declines with p0 at
    // 8 of 16 and p1 at 8 as well): an idle-laned p1 running 8 (half its slots) takes it, one running 9 does not.
    expect(laneRun('hot-prefixes', [8], 30, [{ running: 8 }], 16).pick).toBe('p1');
    expect(laneRun('hot-prefixes', [8], 30, [{ running: 9 }], 16).pick).toBe('p0');
  });

  it('counts each request from its commit to its end: once the prompt\'s requests have ended it is no longer hot', () => {
    const run = hotPrefixRun('hot-prefixes', [8, 3, 3, 3], [true, false, false, false], 8);
    // The prefix index's key of the prompt's leading `depth` blocks, as the prefix scorer publishes it.
    const keyAt = (depth: number) => {
      const cycle = { request: request(blocks('system', 100) + blocks('again', 4)), state: new CycleState() };
      (run.scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer).matchRatios(cycle, [pod(run.first)]);
      const held = cycle.state.get(PREFIX_MATCH)!.heldBlocks!;
      expect(held.longest).toBe(100);
      return held.keys[depth - 1]!;
    };
    // Counted at 1, 2, 3, 4, 6, 8, …, 64 and 96 blocks: the prompt's 100 shared blocks.
    expect(run.scorer.inFlightForPrefix(keyAt(96))).toBe(8);
    expect(run.scorer.inFlightForPrefix(keyAt(1))).toBe(8);
    expect(run.scorer.inFlightForPrefix(keyAt(100))).toBe(0);
    // The full holder beside a pod with room that holds none of the prompt (a fresh one each time: the pick learns
    // the prompt): its slot wait is priced while hot.
    const slotWaits = (label: string) => {
      const holderAndRoomy = [run.candidates[0]!, pod(`roomy-${label}`, { runningQueueSize: 3, inferenceCount: 8, inferenceSecondsSum: 6.4 }, 3)];
      const req = request(blocks('system', 100) + blocks(label, 4));
      run.scheduler.schedule(req, holderAndRoomy);
      return holderAndRoomy.map((c) => run.scorer.predictions(req)!.get(c.endpoint.key)!.slotWaitSeconds);
    };
    expect(slotWaits('before')[0]).toBeGreaterThan(0);
    // Ending one twice uncounts it once.
    run.scorer.responseComplete(run.inFlight[0]!, pod(run.first).endpoint);
    run.scorer.responseComplete(run.inFlight[0]!, pod(run.first).endpoint);
    expect(run.scorer.inFlightForPrefix(keyAt(96))).toBe(7);
    for (const req of run.inFlight.slice(1)) run.scorer.responseComplete(req, pod(run.first).endpoint);
    expect(run.scorer.inFlightForPrefix(keyAt(96))).toBe(0);
    expect(slotWaits('after')).toEqual([0, 0]);
  });

  it('stops counting a commit whose end never comes after ten minutes, and a request committed again only under its last commit', () => {
    let t = NOW;
    const run = hotPrefixRun('hot-prefixes', [8, 3, 3, 3], [true, false, false, false], 8, () => t);
    const system = blocks('system', 100);
    const keyAt96 = () => {
      const cycle = { request: request(system + blocks('again', 4)), state: new CycleState() };
      (run.scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer).matchRatios(cycle, [pod(run.first)]);
      return run.scorer.inFlightForPrefix(cycle.state.get(PREFIX_MATCH)!.heldBlocks!.keys[95]!);
    };
    expect(keyAt96()).toBe(8);
    // The same request committed again: counted once, under the new commit.
    // A page as fresh as the clock (the saturation filter drops a pod whose page is older than a second).
    const holder = () => [pod(run.first, { updateTime: t })];
    const again = run.inFlight[0]!;
    commit(run.scheduler, again, run.scheduler.schedule(again, holder()));
    expect(keyAt96()).toBe(8);
    // Nine minutes on, a new commit: the eight are still counted (nine); past ten minutes from theirs, only it is.
    t = NOW + 9 * 60_000;
    const late = request(system + blocks('late', 4));
    commit(run.scheduler, late, run.scheduler.schedule(late, holder()));
    expect(keyAt96()).toBe(9);
    t = NOW + 10 * 60_000 + 1;
    const later = request(system + blocks('later', 4));
    commit(run.scheduler, later, run.scheduler.schedule(later, holder()));
    expect(keyAt96()).toBe(2);
    // Their ends, when they come, uncount nothing more.
    for (const req of run.inFlight) run.scorer.responseComplete(req, pod(run.first).endpoint);
    expect(keyAt96()).toBe(2);
  });

  it('counts only the approximate index\'s hashed window, not the sparse probes past it', () => {
    const scheduler = buildScheduler(withSlotWait(withMaxNumSeqs(defaultEndpointPickerConfig(), 4), 'hot-prefixes'), { now: () => NOW, random: seeded(14) });
    const prefix = scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer;
    const system = blocks('system', 400); // past the default window of 256 blocks
    scheduler.schedule(request(system + blocks('warm', 4)), [pod('a')]);
    const cycle = { request: request(system + blocks('question', 4)), state: new CycleState() };
    prefix.matchRatios(cycle, [pod('a')]);
    const match = cycle.state.get(PREFIX_MATCH)!;
    // The cached length the latency scorer charges reaches past the window (the probes); the counted blocks stop at it.
    expect(match.cachedLength.get('a:8000')).toBeGreaterThan(256 * 64);
    expect(match.heldBlocks!.longest).toBe(256);
    expect(match.heldBlocks!.keys).toHaveLength(256);
    expect(match.heldBlocks!.lengthOf(256)).toBe(256 * 64);
  });

  it('renders as a slotWait value', () => {
    expect(renderEndpointPickerConfig(withSlotWait(defaultEndpointPickerConfig(), 'hot-prefixes'))).toContain('slotWait: hot-prefixes');
  });
});

/** `latencyEndpointPickerConfig()` with the affinity filter's stickiness set. */
function withStickiness(stickiness: 'hard' | 'soft') {
  const base = latencyEndpointPickerConfig();
  return parseEndpointPickerConfig(JSON.stringify({
    ...base,
    plugins: base.plugins.map((p) => (p.type === 'session-affinity-filter' ? { ...p, parameters: { ...p.parameters, stickiness } } : p)),
  }));
}

describe('soft session stickiness (session-affinity-filter stickiness: soft, with the latency scorer)', () => {
  const now = () => NOW;
  const system = blocks('system', 100); // ≈ 1,600 tokens, shared by every conversation
  const history = system + blocks('turn1', 40) + blocks('reply1', 4); // the session's history: ≈ 2,300 tokens
  const sessionRequest = (prompt: string): LLMRequest => ({ ...request(prompt), headers: { 'x-session-id': 'chat-1' } });

  /** Pod a holds the session's history; pod b holds the shared system prompt; a then has `queued` long requests ahead. */
  function scenario(stickiness: 'hard' | 'soft', queued: number): { scheduler: Scheduler; outcomes: string[] } {
    const outcomes: string[] = [];
    const scheduler = buildScheduler(withStickiness(stickiness), {
      now, random: seeded(3), metrics: { ...NOOP_SCHEDULING_METRICS, countSessionAffinity: (o) => outcomes.push(o) },
    });
    const [a, b] = [pod('a'), pod('b')];
    const first = sessionRequest(history);
    expect(scheduler.schedule(first, [a]).target.endpoint.name).toBe('a');
    // b learns the system prompt from another conversation (both past their first token: no queued work from them).
    scheduler.schedule(request(system + blocks('other', 4)), [b]);
    for (let i = 0; i < queued; i++) {
      const other = request(blocks(`long${i}`, 100));
      commit(scheduler, other, scheduler.schedule(other, [a]));
    }
    return { scheduler, outcomes };
  }

  it('moves the session when its pod\'s queue costs more than recomputing its history elsewhere; hard stickiness never does', () => {
    const next = () => sessionRequest(history + blocks('turn2', 4));
    // a: 3 × 1,600 queued tokens + 64 own ≈ 1 s; b: the history beyond the system prompt, ≈ 740 tokens ≈ 0.17 s.
    const soft = scenario('soft', 3);
    const moved = next();
    expect(soft.scheduler.schedule(moved, [pod('a'), pod('b')]).target.endpoint.name).toBe('b');
    const predictions = latencyOf(soft.scheduler).predictions(moved)!;
    expect(predictions.get('b:8000')!.uncachedTokens).toBeGreaterThan(predictions.get('a:8000')!.uncachedTokens);
    expect(soft.outcomes).toEqual(['miss', 'repin']);
    // The session is bound to b now, and its history is cached there: its next turn stays.
    expect(soft.scheduler.schedule(sessionRequest(history + blocks('turn2', 4) + blocks('turn3', 4)), [pod('a'), pod('b')]).target.endpoint.name).toBe('b');
    expect(soft.outcomes).toEqual(['miss', 'repin', 'hit']);

    const hard = scenario('hard', 3);
    expect(hard.scheduler.schedule(next(), [pod('a'), pod('b')]).target.endpoint.name).toBe('a');
    expect(hard.outcomes).toEqual(['miss', 'hit']);
  });

  it('keeps the session on its pod when the queue there costs less than the recomputation', () => {
    // No queue on a: 64 own tokens there against ≈ 740 recomputed on b.
    const soft = scenario('soft', 0);
    expect(soft.scheduler.schedule(sessionRequest(history + blocks('turn2', 4)), [pod('a'), pod('b')]).target.endpoint.name).toBe('a');
    expect(soft.outcomes).toEqual(['miss', 'hit']);
  });

  it('is validated: hard or soft, absent by default so configs render unchanged', () => {
    const rendered = defaultEndpointPickerConfig().plugins.find((p) => p.type === 'session-affinity-filter')!;
    expect(rendered.parameters).not.toHaveProperty('stickiness');
    expect(() => parseEndpointPickerConfig('apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: session-affinity-filter\n  parameters: {stickiness: sometimes}\n'))
      .toThrow(/plugins\[0\]\.parameters\.stickiness: must be "hard" or "soft", got "sometimes"/);
  });
});

function stateWithMatch(req: LLMRequest, key: string, cachedCharacters: number): CycleState {
  const state = new CycleState();
  publishPrefixMatch(state, { unit: 'characters', promptLength: req.prompt.length, cachedLength: new Map([[key, cachedCharacters]]) });
  return state;
}

describe('latency-scorer through request control', () => {
  let ds: Datastore;
  // The scheduler's clock, still through each test: its requests come all at once, as the bursts they stand for. On the
  // real clock a loaded machine spread them out: a slot freed meanwhile moved picks, and a second's stall aged the
  // pages past the saturation filter's staleness (a 503 for the whole burst).
  let now = 0;
  const clock = () => now;
  beforeEach(() => {
    now = Date.now();
    ds = new Datastore({ scrape: false });
    for (let i = 0; i < 4; i++) {
      const address = `10.0.0.${i + 1}`;
      ds.upsertEndpoint({ key: `${address}:8000`, name: `p${i}`, namespace: 'ns', address, port: 8000, labels: {} });
      ds.setMetrics(`${address}:8000`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: now, consecutiveFailures: 0 });
    }
  });
  afterEach(() => ds.stop());

  const incoming = (id: string, body: unknown): IncomingRequest => ({
    requestId: id,
    headers: new Map([[':method', 'POST'], ['content-type', 'application/json']]),
    body: Buffer.from(JSON.stringify(body)),
    filterMetadata: {},
  });

  it('spreads a burst of equal requests over idle pods: each pick is queued work the next one sees', async () => {
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { random: seeded(6), now: clock });
    const director = new RequestControl({ datastore: ds, scheduler });
    const counts = new Map<string, number>();
    for (let i = 0; i < 8; i++) {
      const d = await director.route(incoming(`burst-${i}`, { model: MODEL, prompt: blocks(`burst${i}`, 16), stream: true }));
      if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
      counts.set(d.endpoint, (counts.get(d.endpoint) ?? 0) + 1);
    }
    expect([...counts.values()]).toEqual([2, 2, 2, 2]);
  });

  /**
   * gen29's burst (session 29's independent check): new sessions sharing one cached system prompt, all at once, each a
   * short question. vLLM runs `--max-num-seqs` of them at a time (vllm/v1/core/sched/scheduler.py @ v0.10.0), so past
   * that the holder's hit saves a short prefill and costs a whole decode's wait.
   */
  async function burstOfNewSessions(config: EndpointPickerConfig, sessions: number, withSessionIds = true,
    inspect?: (scheduler: Scheduler, holder: string) => void): Promise<number[]> {
    const scheduler = buildScheduler(config, { random: seeded(8), now: clock });
    const director = new RequestControl({ datastore: ds, scheduler });
    const system = blocks('system', 100);
    const keys = ds.snapshot().map((s) => s.endpoint.key);
    const scrape = (at: number, ranOn?: string) => {
      for (const key of keys) {
        const ran = key === ranOn ? 1 : 0;
        ds.setMetrics(key, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: at, consecutiveFailures: 0, inferenceCount: ran, inferenceSecondsSum: 0.8 * ran });
      }
    };
    const start = now;
    scrape(start);
    const warm = await director.route(incoming('warm', { model: MODEL, prompt: system + blocks('warm', 4) }));
    if (warm.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(warm)}`);
    director.responseHeaders(warm.ticket, new Map([[':status', '200'], ['content-type', 'application/json']]));
    director.release(warm.ticket, 'completed');
    // The next scrape: the warm request finished on its pod after 0.8 s running (vllm:request_inference_time_seconds).
    scrape(start + 1, warm.endpoint);
    now = start + 1;
    const counts = new Map(keys.map((k) => [k, 0]));
    for (let i = 0; i < sessions; i++) {
      const headers = new Map([[':method', 'POST'], ['content-type', 'application/json'], ...(withSessionIds ? [['x-session-id', `s${i}`] as [string, string]] : [])]);
      const d = await director.route({ ...incoming(`s${i}`, { model: MODEL, prompt: system + blocks(`question${i}`, 4), stream: true }), headers });
      if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
      counts.set(d.endpoint, counts.get(d.endpoint)! + 1);
    }
    inspect?.(scheduler, warm.endpoint);
    // The holder first.
    return [counts.get(warm.endpoint)!, ...[...counts].filter(([k]) => k !== warm.endpoint).map(([, n]) => n)];
  }

  it('a burst of new sessions on one cached system prompt fills the holder\'s --max-num-seqs slots, then spreads (gen29 F2: it herded onto the holder)', async () => {
    // The scrapes show no running requests yet: only the EPP's own in-flight count sees the burst.
    // Without the default's session-load-scorer, which spreads new sessions whatever the slots: the slot wait alone.
    const [holder, ...others] = await burstOfNewSessions(withMaxNumSeqs(withoutSessionLoad(defaultEndpointPickerConfig()), 4), 16);
    expect(holder).toBeGreaterThanOrEqual(4);
    expect(holder).toBeLessThanOrEqual(8);
    expect(others.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  });

  it('a request picked for a pod whose slots are full is recorded as starting when a slot frees, not at its pick (review 32)', async () => {
    let latestAhead = Number.NaN;
    let tracked = 0;
    // One-off requests (no session id) under slotWait: sessions: their scores leave the slot wait out, so the holder
    // takes more than its slots; the start recorded for each still counts it.
    const [holder] = await burstOfNewSessions(withSlotWait(withMaxNumSeqs(withoutSessionLoad(defaultEndpointPickerConfig()), 4), 'sessions'), 16, false, (scheduler, key) => {
      const stats = latencyOf(scheduler).model.pod(key).stats(now);
      tracked = stats.trackedStarts;
      latestAhead = stats.latestStartMs! - now;
    });
    expect(holder).toBeGreaterThan(4);
    expect(tracked).toBe(holder);
    // Its four slots hold requests that run 0.8 s each and have just started: the fifth waits about that long.
    expect(latestAhead).toBeGreaterThan(400);
  });

  it('one-off requests (no session id) are placed without the slot wait under slotWait: sessions (the default until session 55), and with it under slotWait: all', async () => {
    const told = withMaxNumSeqs(defaultEndpointPickerConfig(), 4);
    const [holder] = await burstOfNewSessions(withSlotWait(told, 'sessions'), 16, false);
    expect(holder).toBe(16);
    const all = withSlotWait(told, 'all');
    expect(renderEndpointPickerConfig(all)).toContain('slotWait: all');
    const [everyHolder, ...others] = await burstOfNewSessions(all, 16, false);
    expect(everyHolder).toBeLessThanOrEqual(8);
    expect(others.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  });

  it('slotWait: imbalanced (the default in session 55) prices the wait for one-off requests while the holder\'s slots are full and another pod has half of its own free, so one hot prompt without session ids spreads; with every pod half full or more it stops (session 55\'s probe: a pod idle while the holders\' slots were full)', async () => {
    const imbalanced = withSlotWait(withMaxNumSeqs(defaultEndpointPickerConfig(), 4), 'imbalanced');
    expect(renderEndpointPickerConfig(imbalanced)).toContain('slotWait: imbalanced');
    expect(renderEndpointPickerConfig(defaultEndpointPickerConfig())).toContain('slotWait: hot-prefixes');
    let taken: number[] = [];
    const [holder, ...others] = await burstOfNewSessions(imbalanced, 16, false, (scheduler, holderKey) => {
      // After the burst: the scorer's own view of each pod's slots.
      const scorer = latencyOf(scheduler);
      taken = ds.snapshot().map((c) => scorer.model.pod(c.endpoint.key).slotShare(c.metrics, c.activeRequests));
      expect(ds.snapshot().find((c) => c.endpoint.key === holderKey)).toBeDefined();
    });
    // The holder fills its 4 slots and more, but the others each take requests once it is full: no pod stays idle.
    expect(holder).toBeLessThan(16);
    expect(others.every((n) => n > 0)).toBe(true);
    // Where it stopped: no pod had half its slots free any more while one was full.
    expect(taken.some((share) => share >= 1) && taken.some((share) => share <= 0.5)).toBe(false);
  });

  it('told nothing (1024 slots, vLLM\'s largest default) the same burst stays on the holder: its queue of short prefills never outweighs the hit', async () => {
    // Without the default's session-load-scorer, which spreads new sessions by the sessions each pod carries whatever
    // the slots: this is the latency scorer's own behaviour.
    const [holder] = await burstOfNewSessions(withoutSessionLoad(defaultEndpointPickerConfig()), 16);
    expect(holder).toBe(16);
  });

  it('a non-streaming response\'s headers end the request\'s queued work; a streaming response\'s do not', async () => {
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { random: seeded(7), now: clock });
    const director = new RequestControl({ datastore: ds, scheduler });
    const model = latencyOf(scheduler).model;
    const streamed = await director.route(incoming('s', { model: MODEL, prompt: blocks('s', 16), stream: true }));
    const plain = await director.route(incoming('p', { model: MODEL, prompt: blocks('p', 16) }));
    if (streamed.kind !== 'route' || plain.kind !== 'route') throw new Error('expected routes');
    expect(streamed.endpoint).not.toBe(plain.endpoint);
    director.responseHeaders(streamed.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream; charset=utf-8']]));
    director.responseHeaders(plain.ticket, new Map([[':status', '200'], ['content-type', 'application/json']]));
    expect(model.pod(streamed.endpoint).stats(now).pendingRequests).toBe(1);
    expect(model.pod(plain.endpoint).stats(now).pendingRequests).toBe(0);
  });

  it('keeps each routed request\'s start for the slot wait from the pick until its response ends, however it ends (review 30 #3)', async () => {
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { random: seeded(7), now: clock });
    const director = new RequestControl({ datastore: ds, scheduler });
    const model = latencyOf(scheduler).model;
    const a = await director.route(incoming('a', { model: MODEL, prompt: blocks('a', 16), stream: true }));
    const b = await director.route(incoming('b', { model: MODEL, prompt: blocks('a', 16), stream: true }));
    if (a.kind !== 'route' || b.kind !== 'route') throw new Error('expected routes');
    const tracked = () => [a.endpoint, b.endpoint].filter((e, i, all) => all.indexOf(e) === i)
      .reduce((n, e) => n + model.pod(e).stats(now).trackedStarts, 0);
    expect(tracked()).toBe(2);
    // The first token (streamed headers) does not free the slot; the response's end does.
    director.responseHeaders(a.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]));
    expect(tracked()).toBe(2);
    director.release(a.ticket, 'completed');
    expect(tracked()).toBe(1);
    director.release(b.ticket, 'cancelled');
    expect(tracked()).toBe(0);
  });

  it('tracks two requests that share an x-request-id on one pod as two, each ended by its own response (a retry or hedged copy in flight with the first)', async () => {
    for (const key of ds.snapshot().map((s) => s.endpoint.key).slice(1)) ds.removeEndpoint(key);
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { random: seeded(7), now: clock });
    const director = new RequestControl({ datastore: ds, scheduler });
    const model = latencyOf(scheduler).model;
    const first = await director.route(incoming('same-id', { model: MODEL, prompt: blocks('a', 16), stream: true }));
    const copy = await director.route(incoming('same-id', { model: MODEL, prompt: blocks('a', 16), stream: true }));
    if (first.kind !== 'route' || copy.kind !== 'route') throw new Error('expected routes');
    expect(copy.endpoint).toBe(first.endpoint);
    const stats = () => model.pod(first.endpoint).stats(now);
    expect(stats().trackedStarts).toBe(2);
    expect(stats().pendingRequests).toBe(2);
    director.release(first.ticket, 'completed');
    expect(stats()).toMatchObject({ trackedStarts: 1, pendingRequests: 1 });
    director.release(copy.ticket, 'completed');
    expect(stats()).toMatchObject({ trackedStarts: 0, pendingRequests: 0 });
  });

  it('a streamed request whose client gave up before its first token stops weighing on its pod when its stream ends, not at its expiry', async () => {
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { random: seeded(7), now: clock });
    const director = new RequestControl({ datastore: ds, scheduler });
    const model = latencyOf(scheduler).model;
    const long = await director.route(incoming('long', { model: MODEL, prompt: blocks('long', 64), stream: true }));
    if (long.kind !== 'route') throw new Error('expected a route');
    const pod = model.pod(long.endpoint);
    const queued = pod.stats(now).pendingTokens;
    expect(queued).toBeGreaterThan(0);
    expect(pod.predict(0, EMPTY_METRICS, now).queuedTokens).toBe(queued);
    // vLLM sends a streamed response's headers before the prefill; then the client leaves (with response body mode
    // NONE, Envoy's half-close after the headers: released as 'completed').
    director.responseHeaders(long.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]));
    director.release(long.ticket, 'completed');
    expect(pod.stats(now)).toMatchObject({ pendingRequests: 0, pendingTokens: 0 });
    expect(pod.predict(0, EMPTY_METRICS, now).queuedTokens).toBe(0);
  });
});

describe('latency-scorer\'s per-position cache of pod models', () => {
  it('learns a new scrape of a pod at the same position, and gives a removed pod a fresh model even for the same snapshot', () => {
    let t = NOW;
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => t, random: seeded(9) });
    const scorer = latencyOf(scheduler);
    const score = (candidates: EndpointSnapshot[]) => {
      const out = new Float64Array(candidates.length);
      scorer.scoreInto({ request: request(blocks('q', 20)), state: new CycleState() }, candidates, out);
      return [...out];
    };
    const a = pod('a');
    const b0 = pod('b', { firstTokenCount: 0, firstTokenSecondsSum: 0, prefixCacheQueryTokens: 0, prefixCacheHitTokens: 0 });
    expect(score([a, b0])).toEqual([1, 1]);
    // A later scrape of b (a new snapshot at the same position): 100 first tokens at 2 s each for 320 uncached tokens,
    // 10× the prior. Learnt (against the prior's 8 requests' worth), so b now scores well below a.
    t += 50;
    const b1 = pod('b', { updateTime: t, firstTokenCount: 100, firstTokenSecondsSum: 200, prefixCacheQueryTokens: 32_000, prefixCacheHitTokens: 0 });
    const learnt = score([a, b1]);
    expect(learnt[0]).toBe(1);
    expect(learnt[1]).toBeLessThan(0.75);
    expect(scorer.model.pod('b:8000').stats(t).observations).toBe(1);
    // b leaves the pool: its model goes. Scored again with the very same snapshot object at the same position, b is a
    // new pod to the scorer (its first reading is a baseline, not an observation), so it scores like a again.
    scorer.removeEndpoint('b:8000');
    expect(score([a, b1])).toEqual([1, 1]);
    expect(scorer.model.pod('b:8000').stats(t).observations).toBe(0);
  });
});

describe('latency-scorer: a non-streaming response whose first token a later scrape counts', () => {
  /** Pod a with `firstTokens` counted by its scrape at `updateTime`. */
  const scraped = (firstTokens: number, updateTime: number) => pod('a', { updateTime, firstTokenCount: firstTokens, firstTokenSecondsSum: 0.05 * firstTokens });

  it('a success\'s headers stop its queued work at once, and the scrape that then counts its first token retires it, not a request still queued (vLLM records the first token before the non-streaming response is built: vllm/v1/engine/async_llm.py output_handler @ v0.10.0)', () => {
    let clock = NOW;
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { now: () => clock, random: seeded(5) });
    const scorer = latencyOf(scheduler);
    const model = () => scorer.model.pod('a:8000');
    const short = request(blocks('short', 4));
    commit(scheduler, short, scheduler.schedule(short, [scraped(0, NOW)]));
    const queued = request(blocks('queued', 64));
    commit(scheduler, queued, scheduler.schedule(queued, [scraped(0, NOW)]));
    const queuedTokens = model().stats(clock).pendingTokens - 64;
    // A one-token answer (max_tokens 1): its first token and its response within one scrape interval.
    clock += 20;
    scorer.postResponse(short, { headers: { ':status': '200', 'content-type': 'application/json' }, metadata: {} }, scraped(0, NOW).endpoint);
    expect(model().stats(clock)).toMatchObject({ pendingRequests: 1, pendingTokens: queuedTokens });
    // The next scrape counts that first token; 'queued' has not started.
    clock += 40;
    scheduler.schedule(request(blocks('next', 4)), [scraped(1, NOW + 50)]);
    expect(model().stats(clock)).toMatchObject({ pendingRequests: 1, pendingTokens: queuedTokens });
    // Its own first token retires it.
    clock += 50;
    scheduler.schedule(request(blocks('next2', 4)), [scraped(2, NOW + 100)]);
    expect(model().stats(clock)).toMatchObject({ pendingRequests: 0, pendingTokens: 0 });
  });

  it('an error\'s headers (no token produced) drop its entry at once: the next first token is the queued request\'s', () => {
    let clock = NOW;
    const scheduler = buildScheduler(latencyEndpointPickerConfig(), { now: () => clock, random: seeded(5) });
    const scorer = latencyOf(scheduler);
    const model = () => scorer.model.pod('a:8000');
    const failed = request(blocks('failed', 4));
    commit(scheduler, failed, scheduler.schedule(failed, [scraped(0, NOW)]));
    const queued = request(blocks('queued', 64));
    commit(scheduler, queued, scheduler.schedule(queued, [scraped(0, NOW)]));
    clock += 20;
    scorer.postResponse(failed, { headers: { ':status': '400', 'content-type': 'application/json' }, metadata: {} }, scraped(0, NOW).endpoint);
    expect(model().stats(clock).pendingRequests).toBe(1);
    clock += 40;
    scheduler.schedule(request(blocks('next', 4)), [scraped(1, NOW + 50)]);
    expect(model().stats(clock)).toMatchObject({ pendingRequests: 0, pendingTokens: 0 });
  });
});

describe('latency-scorer and pods that leave the pool with requests in flight', () => {
  it('a request ending on a removed pod does not bring the pod\'s model back', () => {
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => NOW, random: seeded(3) });
    const scorer = latencyOf(scheduler);
    const candidates = [pod('a'), pod('b')];
    const reqs = [0, 1, 2, 3].map((i) => request(blocks(`q${i}`, 8)));
    const results = reqs.map((req) => {
      const result = scheduler.schedule(req, candidates);
      commit(scheduler, req, result);
      return result;
    });
    expect(scorer.model.size).toBe(2);
    // Both pods leave (a rollout: each terminating pod drains its requests after its endpoint is gone), then the
    // requests end: a non-streamed response's headers (post-response), then the end (response-complete).
    scheduler.plugins.removeEndpoint('a:8000');
    scheduler.plugins.removeEndpoint('b:8000');
    reqs.forEach((req, i) => {
      const target = results[i]!.target.endpoint;
      scorer.postResponse(req, { headers: { ':status': '200', 'content-type': 'application/json' }, metadata: {} }, target);
      scorer.responseComplete(req, target);
    });
    expect(scorer.model.has('a:8000')).toBe(false);
    expect(scorer.model.has('b:8000')).toBe(false);
    expect(scorer.model.size).toBe(0);
  });
});

describe('latency-scorer parameters', () => {
  it('fills every default', () => {
    expect(resolvePluginParameters('latency-scorer', undefined)).toEqual({
      priorPrefillMsPerToken: 0.2,
      priorOverheadMs: 20,
      priorWeight: 8,
      halfLife: '60s',
      pendingTimeout: '30s',
      charactersPerToken: 4,
      maxNumSeqs: 1024,
      slotWait: 'sessions',
      sessionHeaders: ['x-session-id', 'x-session-token'],
    });
  });

  it.each([
    [{ priorWeight: 0 }, 'plugins[0].parameters.priorWeight: must be a number > 0, got 0'],
    [{ charactersPerToken: -1 }, 'plugins[0].parameters.charactersPerToken: must be a number >= 0, got -1'],
    [{ priorPrefillMsPerToken: '0.2' }, 'plugins[0].parameters.priorPrefillMsPerToken: must be a number >= 0'],
    [{ halfLife: 60 }, 'plugins[0].parameters.halfLife: must be a duration like'],
    [{ pendingTimeout: '0s' }, 'plugins[0].parameters.pendingTimeout: must be longer than 0'],
    [{ maxNumSeqs: 0 }, 'plugins[0].parameters.maxNumSeqs: must be an integer >= 1, got 0'],
    [{ maxNumSeqs: 1.5 }, 'plugins[0].parameters.maxNumSeqs: must be an integer >= 1, got 1.5'],
    [{ slotWait: 'never' }, 'plugins[0].parameters.slotWait: must be one of "sessions", "all", "imbalanced", "avoidable", "hot-prefixes", got "never"'],
    [{ ownPrefillWeight: 0.5 }, 'plugins[0].parameters.ownPrefillWeight: must be a number >= 1, got 0.5'],
    [{ fasterPodRatio: 1.5 }, 'plugins[0].parameters.fasterPodRatio: must be a number between 0 and 1, got 1.5'],
    [{ halfLive: '1m' }, 'plugins[0].parameters.halfLive: unknown field; allowed: priorPrefillMsPerToken, priorOverheadMs, priorWeight, halfLife, pendingTimeout, charactersPerToken, maxNumSeqs, slotWait, sessionHeaders, ownPrefillWeight, fasterPodRatio, keepOneOffOnHolder'],
  ])('rejects %j naming the field and what it allows', (parameters, message) => {
    const yaml = [
      'apiVersion: inference.networking.x-k8s.io/v1alpha1',
      'kind: EndpointPickerConfig',
      'plugins:',
      '- type: latency-scorer',
      `  parameters: ${JSON.stringify(parameters)}`,
      '- type: max-score-picker',
      'schedulingProfiles:',
      '- name: default',
      '  plugins:',
      '  - pluginRef: latency-scorer',
      '  - pluginRef: max-score-picker',
    ].join('\n');
    expect(() => parseEndpointPickerConfig(yaml)).toThrow(ConfigError);
    expect(() => parseEndpointPickerConfig(yaml)).toThrow(message);
  });
});
