/**
 * Differential test: kvroute's scheduler, built by its real config loader from configs that list upstream's load scorers
 * with random weights, against a reference model written from llm-d-router v0.10.0's source:
 *
 * - queue-scorer: pkg/epp/framework/plugins/scheduling/scorer/queuedepth/queue.go Score, (max − q) / (max − min), 1 when equal
 * - running-requests-size-scorer: scorer/runningrequests/runningrequest.go Score, the same on RunningRequestsSize
 * - kv-cache-utilization-scorer: scorer/kvcacheutilization/kvcache_utilization.go Score, 1 − KVCacheUsagePercent
 * - load-aware-scorer: scorer/loadaware/load_aware.go Score, 0.5 when q = 0 else 0.5 × (1 − min(q, threshold) / threshold)
 * - lora-affinity-scorer: scorer/loraaffinity/lora_affinity.go Score, 1 active / 0.8 room / 0.6 waiting / 0
 * - active-request-scorer: scorer/activerequest/active_request.go Score, idle 1 else (max − c) / max × maxBusyScore
 * - the profile's sum: pkg/epp/scheduling/scheduler_profile.go runScorerPlugins, Σ enforceScoreRange(score) × weight
 *   (enforceScoreRange clamps to [0, 1])
 * - max-score-picker: picker/maxscore/picker.go Pick, shuffle then stable sort by score descending, first
 *   maxNumOfEndpoints: any of the tied maxima may come first.
 *
 * Pools are seeded (`seededRandom`), with pods whose metrics are missing (EMPTY_METRICS, as before the first scrape).
 */
import { seededRandom } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { buildScheduler } from '../src/scheduling/scheduler';

type ScorerType =
  | 'queue-scorer'
  | 'running-requests-size-scorer'
  | 'kv-cache-utilization-scorer'
  | 'load-aware-scorer'
  | 'lora-affinity-scorer'
  | 'active-request-scorer';

const SCORERS: readonly ScorerType[] = [
  'queue-scorer',
  'running-requests-size-scorer',
  'kv-cache-utilization-scorer',
  'load-aware-scorer',
  'lora-affinity-scorer',
  'active-request-scorer',
];

const ADAPTERS = ['a1', 'a2', 'a3', 'a4'];

function pool(random: () => number, size: number): EndpointSnapshot[] {
  const int = (n: number) => Math.floor(random() * n);
  const pods: EndpointSnapshot[] = [];
  for (let i = 0; i < size; i++) {
    let metrics: EndpointMetrics;
    if (random() < 0.15) {
      metrics = EMPTY_METRICS; // never scraped
    } else {
      const running = ADAPTERS.filter(() => random() < 0.3);
      const waiting = ADAPTERS.filter((a) => !running.includes(a) && random() < 0.2);
      metrics = {
        ...EMPTY_METRICS,
        // Small ranges so that ties (and so random tie-breaks) are common.
        waitingQueueSize: random() < 0.3 ? 0 : int(random() < 0.2 ? 300 : 6),
        runningQueueSize: int(5),
        // Now and then above 1, which the profile's clamp must catch.
        kvCacheUsagePercent: random() < 0.1 ? 1 + random() * 0.2 : Math.round(random() * 4) / 4,
        ...(random() < 0.8 ? { lora: { running, waiting, maxLora: int(4) } } : {}),
      };
    }
    pods.push({
      endpoint: { key: `10.0.0.${i}:8000`, name: `p${i}`, namespace: 'default', address: `10.0.0.${i}`, port: 8000, labels: {} },
      metrics,
      activeRequests: random() < 0.3 ? 0 : int(4),
    });
  }
  return pods;
}

interface Params { threshold: number; idleThreshold: number; maxBusyScore: number }

/** Reference model of one upstream scorer's Score (files cited in the header). */
function referenceScores(type: ScorerType, model: string, pods: readonly EndpointSnapshot[], p: Params): number[] {
  const minMax = (values: number[]) => {
    const min = Math.min(...values);
    const max = Math.max(...values);
    return values.map((v) => (max === min ? 1 : (max - v) / (max - min)));
  };
  switch (type) {
    case 'queue-scorer':
      return minMax(pods.map((e) => e.metrics.waitingQueueSize));
    case 'running-requests-size-scorer':
      return minMax(pods.map((e) => e.metrics.runningQueueSize));
    case 'kv-cache-utilization-scorer':
      return pods.map((e) => 1 - e.metrics.kvCacheUsagePercent);
    case 'load-aware-scorer':
      return pods.map((e) => {
        const q = e.metrics.waitingQueueSize;
        return q === 0 ? 0.5 : 0.5 * (1 - Math.min(q, p.threshold) / p.threshold);
      });
    case 'lora-affinity-scorer':
      return pods.map((e) => {
        // Go's nil maps and zero MaxActiveModels when the pod exports no lora_requests_info.
        const running = e.metrics.lora?.running ?? [];
        const waiting = e.metrics.lora?.waiting ?? [];
        const maxLora = e.metrics.lora?.maxLora ?? 0;
        if (running.includes(model)) return 1;
        if (running.length + waiting.length < maxLora) return 0.8;
        if (waiting.includes(model)) return 0.6;
        return 0;
      });
    case 'active-request-scorer': {
      const max = Math.max(0, ...pods.map((e) => e.activeRequests));
      return pods.map((e) => (e.activeRequests <= p.idleThreshold ? 1 : ((max - e.activeRequests) / max) * p.maxBusyScore));
    }
  }
}

const enforceScoreRange = (s: number) => (s < 0 ? 0 : s > 1 ? 1 : s);

function config(scorers: readonly { type: ScorerType; weight: number }[], p: Params, maxNumOfEndpoints: number, picker = 'max-score-picker'): string {
  const parameters = (type: ScorerType): string[] => {
    if (type === 'load-aware-scorer') return [`  parameters: {threshold: ${p.threshold}}`];
    if (type === 'active-request-scorer') return [`  parameters: {idleThreshold: ${p.idleThreshold}, maxBusyScore: ${p.maxBusyScore}}`];
    return [];
  };
  return [
    'apiVersion: llm-d.ai/v1alpha1',
    'kind: EndpointPickerConfig',
    'plugins:',
    ...scorers.flatMap(({ type }) => [`- type: ${type}`, ...parameters(type)]),
    `- type: ${picker}`,
    `  parameters: {maxNumOfEndpoints: ${maxNumOfEndpoints}}`,
    'schedulingProfiles:',
    '- name: default',
    '  plugins:',
    ...scorers.map(({ type, weight }) => `  - {pluginRef: ${type}, weight: ${weight}}`),
    `  - pluginRef: ${picker}`,
    '',
  ].join('\n');
}

describe('load scorers, the weighted sum and max-score-picker against a reference model of llm-d-router v0.10.0', () => {
  it('agree on every pod\'s per-scorer score, its total, and the picked set over seeded random pools', () => {
    let tiedCycles = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const random = seededRandom(seed);
      const chosen = SCORERS.filter(() => random() < 0.6);
      if (chosen.length === 0) chosen.push(SCORERS[seed % SCORERS.length]!);
      const scorers = chosen.map((type) => ({ type, weight: 1 + Math.floor(random() * 5) }));
      const p: Params = { threshold: 1 + Math.floor(random() * 20), idleThreshold: Math.floor(random() * 3), maxBusyScore: Math.round(random() * 4) / 4 };
      const maxNumOfEndpoints = random() < 0.7 ? 1 : 2 + Math.floor(random() * 3);
      const pods = pool(random, 1 + Math.floor(random() * 12));
      const model = ADAPTERS[Math.floor(random() * ADAPTERS.length)]!;

      const decisions: { top: readonly { endpoint: string; total: number; scores: Readonly<Record<string, number>> }[] }[] = [];
      const scheduler = buildScheduler(parseEndpointPickerConfig(config(scorers, p, maxNumOfEndpoints)), {
        random: seededRandom(seed * 7919),
        decisionLog: (d) => decisions.push(d),
      });
      const result = scheduler.schedule({ requestId: `r${seed}`, model, prompt: 'hello', headers: {} }, pods);

      // The model's per-scorer scores and totals.
      const perScorer = new Map(scorers.map(({ type }) => [type, referenceScores(type, model, pods, p)]));
      const totals = pods.map((_, i) => scorers.reduce((sum, { type, weight }) => sum + enforceScoreRange(perScorer.get(type)![i]!) * weight, 0));
      const where = `seed ${seed}, config ${JSON.stringify({ scorers, p, maxNumOfEndpoints, model })}`;

      pods.forEach((pod, i) => {
        expect([where, pod.endpoint.name, result.scores.get(pod.endpoint.key)]).toEqual([where, pod.endpoint.name, expect.closeTo(totals[i]!, 9)]);
      });
      // The decision log carries each scorer's own score (rounded to 1e-3) for the top candidates; kvroute's
      // kv-cache-utilization-scorer clamps usage above 1 itself, which the profile's clamp makes equivalent.
      for (const entry of decisions[0]!.top) {
        const i = pods.findIndex((e) => e.endpoint.key === entry.endpoint || e.endpoint.name === entry.endpoint);
        if (i < 0) continue;
        for (const { type } of scorers) {
          expect([where, entry.endpoint, type, entry.scores[type]]).toEqual([where, entry.endpoint, type, expect.closeTo(type === 'kv-cache-utilization-scorer' ? enforceScoreRange(perScorer.get(type)![i]!) : perScorer.get(type)![i]!, 2)]);
        }
      }

      // max-score-picker: sorted by total descending, ties in any order; the k picked are a valid top-k.
      const picked = (result.targets ?? [result.target]).map((e) => pods.indexOf(e));
      expect([where, picked.length]).toEqual([where, Math.min(maxNumOfEndpoints, pods.length)]);
      const sorted = [...totals].sort((a, b) => b - a);
      picked.forEach((i, rank) => {
        expect([where, rank, totals[i]]).toEqual([where, rank, expect.closeTo(sorted[rank]!, 9)]);
      });
      expect(new Set(picked).size).toBe(picked.length);
      if (totals.filter((t) => Math.abs(t - sorted[0]!) < 1e-9).length > 1) tiedCycles++;
    }
    // The pools are meant to exercise random tie-breaks, not only clear winners.
    expect(tiedCycles).toBeGreaterThan(10);
  });

  it('max-score-picker returns every tied maximum over seeded draws (picker/maxscore/picker.go: shuffle, then stable sort)', () => {
    const random = seededRandom(42);
    const pods = pool(random, 6).map((e) => ({ ...e, metrics: { ...e.metrics, waitingQueueSize: 0 }, activeRequests: 0 }));
    const tied = pods.slice(0, 4);
    const others = pods.slice(4).map((e) => ({ ...e, metrics: { ...e.metrics, waitingQueueSize: 5 } }));
    const scheduler = buildScheduler(parseEndpointPickerConfig(config([{ type: 'queue-scorer', weight: 2 }], { threshold: 1, idleThreshold: 0, maxBusyScore: 1 }, 1)), {
      random: seededRandom(3),
    });
    const seen = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const name = scheduler.schedule({ requestId: `r${i}`, model: 'm', prompt: '', headers: {} }, [...tied, ...others]).target.endpoint.name;
      seen.set(name, (seen.get(name) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(tied.map((e) => e.endpoint.name).sort());
    for (const count of seen.values()) expect(count).toBeGreaterThan(50); // 100 expected each
  });

  it('weighted-random-picker picks in proportion to the totals, zero totals never while one is positive (picker/weightedrandom/picker.go: A-Res key u^(1/score))', () => {
    // Queues 0, 1, 2, 3, 4, 4 under queue-scorer at weight 2: totals 2, 1.5, 1, 0.5, 0, 0.
    const pods = pool(seededRandom(5), 6).map((e, i) => ({ ...e, metrics: { ...EMPTY_METRICS, waitingQueueSize: Math.min(i, 4) } }));
    const totals = [2, 1.5, 1, 0.5, 0, 0];
    const draws = 5000;
    for (const k of [1, 2]) {
      const scheduler = buildScheduler(parseEndpointPickerConfig(config([{ type: 'queue-scorer', weight: 2 }], { threshold: 1, idleThreshold: 0, maxBusyScore: 1 }, k, 'weighted-random-picker')), {
        random: seededRandom(11 + k),
      });
      // The model: upstream's A-Res with its own draws.
      const modelRandom = seededRandom(97 + k);
      const seen = totals.map(() => 0);
      const expected = totals.map(() => 0);
      for (let d = 0; d < draws; d++) {
        const result = scheduler.schedule({ requestId: `r${d}`, model: 'm', prompt: '', headers: {} }, pods);
        expect([...result.scores.values()]).toEqual(totals);
        for (const e of result.targets ?? [result.target]) seen[pods.indexOf(e)]!++;
        const keyed = totals.map((t, i) => ({ i, key: t > 0 ? (modelRandom() || 1e-10) ** (1 / t) : 0 }));
        keyed.sort((a, b) => b.key - a.key);
        for (const { i } of keyed.slice(0, k)) expected[i]!++;
      }
      if (k === 1) expect(expected.map((c) => Math.round((c / draws) * 20))).toEqual(totals.map((t) => Math.round((t / 5) * 20)));
      // Zero totals are never picked while k positive totals exist.
      expect([k, seen[4], seen[5]]).toEqual([k, 0, 0]);
      for (let i = 0; i < 4; i++) expect([k, i, Math.abs(seen[i]! - expected[i]!) / draws < 0.02]).toEqual([k, i, true]);
    }
  });
});
