/**
 * The sixth round (epp/README.md "Where the CPU goes per request") cut the scheduling cycle's per-candidate work at 256
 * pods without changing a pick: scorers write into a reused Float64Array (`Scorer.scoreInto`), the scheduler sums into
 * another, the prefix scorer reads each candidate's match by index id (`PrefixBlockIndex.matchPrefix`) and publishes it
 * by position, and the datastore patches its last snapshot. These tests compare each with a plain reference written
 * here (the rules as the plugins' docs state them, on Maps and arrays) on seeded random pools and prompts, with ties,
 * pods leaving and coming back, and index evictions.
 */
import { seededRandom } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, prefixFirstEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import type { Endpoint, EndpointMetrics, EndpointSnapshot } from '../src/datastore/types';
import { CycleState, type CycleContext, type Scorer } from '../src/scheduling/framework';
import { ActiveRequestScorer } from '../src/scheduling/plugins/active-request-scorer';
import { ROLE_LABEL } from '../src/scheduling/plugins/by-label';
import { KvCacheUtilizationScorer } from '../src/scheduling/plugins/kv-cache-utilization-scorer';
import { indexCapacityFor, type PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { hashPromptBlocks } from '../src/scheduling/plugins/prefix-hash';
import { PrefixBlockIndex } from '../src/scheduling/plugins/prefix-index';
import { QueueScorer } from '../src/scheduling/plugins/queue-scorer';
import type { PreRequest } from '../src/requestcontrol/hooks';
import { buildScheduler } from '../src/scheduling/scheduler';
import { SchedulingError, type LLMRequest } from '../src/scheduling/types';
import { parseEndpointPickerConfig } from '../src/config';

const NOW = 1_700_000_000_000;
const key = (i: number) => `10.0.${i >> 8}.${i & 255}:8000`;
const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/** A plain per-endpoint LRU of blocks (Map insertion order), the index's documented behaviour without its arrays. */
class ReferenceIndex {
  readonly held = new Map<string, Map<number, true>>();
  readonly capacity = new Map<string, number>();

  constructor(private readonly defaultCapacity: number) {}

  add(pod: string): void {
    if (this.held.has(pod)) return;
    this.held.set(pod, new Map());
    this.capacity.set(pod, this.defaultCapacity);
  }

  setCapacity(pod: string, capacity: number): void {
    this.add(pod);
    this.capacity.set(pod, capacity);
    this.trim(pod);
  }

  record(pod: string, blocks: readonly number[]): void {
    this.add(pod);
    const held = this.held.get(pod)!;
    if (this.capacity.get(pod) === 0) return;
    for (const block of blocks) {
      if (held.has(block)) held.delete(block);
      else if (held.size >= this.capacity.get(pod)!) held.delete(held.keys().next().value!);
      held.set(block, true);
    }
  }

  remove(pod: string): void {
    this.held.delete(pod);
    this.capacity.delete(pod);
  }

  /** Leading blocks of `blocks` the pod holds without a gap. */
  leading(pod: string, blocks: readonly number[]): number {
    const held = this.held.get(pod);
    let n = 0;
    while (held !== undefined && n < blocks.length && held.has(blocks[n]!)) n++;
    return n;
  }

  private trim(pod: string): void {
    const held = this.held.get(pod)!;
    while (held.size > this.capacity.get(pod)!) held.delete(held.keys().next().value!);
  }
}

describe('PrefixBlockIndex.matchPrefix', () => {
  it('answers every endpoint as longestPrefixMatches and a plain LRU do, through records, evictions, removals and re-adds', () => {
    const random = seededRandom(61);
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 40 });
    const reference = new ReferenceIndex(40);
    const pods = Array.from({ length: 48 }, (_, i) => `p${i}`);
    // Families sharing leading blocks, so many pods hold the same prefix and walks follow many holders.
    const families = Array.from({ length: 10 }, (_, f) => Array.from({ length: 30 }, (_, b) => (b < 8 ? f % 3 : f) * 1000 + b));
    let walked = 0;
    for (let step = 0; step < 4000; step++) {
      const op = random();
      const pod = pick(random, pods);
      if (op < 0.55) {
        const family = pick(random, families);
        const blocks = family.slice(0, 1 + Math.floor(random() * family.length));
        index.record(pod, blocks);
        reference.record(pod, blocks);
      } else if (op < 0.62) {
        // Shrinking evicts the oldest entries; growing keeps them.
        const capacity = Math.floor(random() * 60);
        index.setCapacity(pod, capacity);
        reference.setCapacity(pod, capacity);
      } else if (op < 0.66) {
        index.removeEndpoint(pod); // its id is freed and reused by the next endpoint that joins
        reference.remove(pod);
      } else if (op < 0.7) {
        index.addEndpoint(pod);
        reference.add(pod);
      } else {
        const family = pick(random, families);
        const blocks = family.slice(0, 1 + Math.floor(random() * family.length)).map((b) => (random() < 0.05 ? b + 7 : b));
        const keyed = index.longestPrefixMatches(blocks);
        const matches = index.matchPrefix(blocks);
        const expected = new Map(pods.map((p) => [p, reference.leading(p, blocks)] as const).filter(([, n]) => n > 0));
        expect(keyed).toEqual(expected);
        expect(new Map(matches.keys.map((k, j) => [k, matches.counts[j]!]))).toEqual(expected);
        expect(matches.size).toBe(expected.size);
        for (const p of pods) {
          const id = index.idOf(p);
          if (id < 0) expect(reference.held.has(p)).toBe(false);
          else expect(matches.blocksOf(id)).toBe(expected.get(p) ?? 0);
        }
        if (expected.size > 0) walked++;
      }
    }
    expect(walked).toBeGreaterThan(300);
  });

  it('gives the counts the index holds when the budget scales capacities (reference: each pod\'s own blocks)', () => {
    const random = seededRandom(62);
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 30, maxEntries: 400 });
    const pods = Array.from({ length: 24 }, (_, i) => `q${i}`);
    const families = Array.from({ length: 6 }, (_, f) => Array.from({ length: 25 }, (_, b) => f * 100 + b));
    for (let step = 0; step < 3000; step++) {
      const pod = pick(random, pods);
      const op = random();
      if (op < 0.6) index.record(pod, pick(random, families).slice(0, 5 + Math.floor(random() * 20)));
      else if (op < 0.7) index.setCapacity(pod, 5 + Math.floor(random() * 60));
      else if (op < 0.75) index.removeEndpoint(pod);
      else {
        const blocks = pick(random, families);
        const matches = index.matchPrefix(blocks);
        for (const p of pods) {
          const held = new Set(index.blocksOf(p));
          let n = 0;
          while (n < blocks.length && held.has(blocks[n]!)) n++;
          const id = index.idOf(p);
          expect(id < 0 ? 0 : matches.blocksOf(id)).toBe(n);
        }
      }
    }
    expect(index.budgetScale).toBeLessThan(1);
  });

  it('refuses to answer for an earlier walk once the index has walked again', () => {
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 10 });
    index.record('a', [1, 2, 3]);
    const first = index.matchPrefix([1, 2]);
    expect(first.blocksOf(index.idOf('a'))).toBe(2);
    index.matchPrefix([1]);
    expect(() => first.blocksOf(index.idOf('a'))).toThrow(/later walk/);
    // Its keyed answer was copied out and stays readable.
    expect(first.keys).toEqual(['a']);
    expect(first.counts).toEqual([2]);
  });
});

/** The load scorers as they were written before `scoreInto` (one `map` each), for any metric values. */
const referenceScores = {
  queue: (c: readonly EndpointSnapshot[]) => {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const s of c) {
      if (s.metrics.waitingQueueSize < min) min = s.metrics.waitingQueueSize;
      if (s.metrics.waitingQueueSize > max) max = s.metrics.waitingQueueSize;
    }
    const range = max - min;
    return c.map((s) => (range > 0 ? (max - s.metrics.waitingQueueSize) / range : 1));
  },
  kv: (c: readonly EndpointSnapshot[]) => c.map((s) => 1 - Math.min(Math.max(s.metrics.kvCacheUsagePercent, 0), 1)),
  active: (c: readonly EndpointSnapshot[]) => {
    let max = 0;
    for (const s of c) max = Math.max(max, s.activeRequests);
    // llm-d v0.8.0's rule at its defaults (idleThreshold 0, maxBusyScore 1): an idle pod scores 1 whatever the max.
    return c.map((s) => {
      if (!(max > 0)) return 1;
      const count = Math.max(s.activeRequests, 0);
      return count <= 0 ? 1 : (max - count) / max;
    });
  },
};

function metrics(partial: Partial<EndpointMetrics>): EndpointMetrics {
  return { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: NOW, consecutiveFailures: 0, ...partial };
}

describe('the load scorers writing into a reused buffer', () => {
  it('write exactly the reference scores, odd values included, and nothing past the candidates', () => {
    const random = seededRandom(63);
    const odd = [Number.NaN, -1, -0, 0, 0.5, 1, 2, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
    const value = (scale: number) => (random() < 0.1 ? pick(random, odd) : Math.floor(random() * 4) * scale);
    const cycle: CycleContext = { request: { requestId: 'r', model: 'm', prompt: '', headers: {} }, state: new CycleState() };
    const scorers: [Scorer, (c: readonly EndpointSnapshot[]) => number[]][] = [
      [new QueueScorer('q'), referenceScores.queue],
      [new KvCacheUtilizationScorer('k'), referenceScores.kv],
      [new ActiveRequestScorer('a'), referenceScores.active],
    ];
    const out = new Float64Array(64);
    for (let round = 0; round < 600; round++) {
      const n = Math.floor(random() * 40);
      const candidates = Array.from({ length: n }, (_, i): EndpointSnapshot => ({
        endpoint: { key: key(i), name: `p${i}`, namespace: '', address: '', port: 8000, labels: {} },
        metrics: metrics({ waitingQueueSize: value(1), kvCacheUsagePercent: value(0.3) }),
        activeRequests: value(1),
      }));
      for (const [scorer, reference] of scorers) {
        out.fill(0);
        out.fill(7, n); // scratch beyond the candidates: left alone
        scorer.scoreInto!(cycle, candidates, out);
        expect(Array.from(out.subarray(0, n))).toEqual(reference(candidates));
        expect(out.subarray(n).every((x) => x === 7)).toBe(true);
        expect(scorer.score(cycle, candidates)).toEqual(reference(candidates));
      }
    }
  });

  it('the scheduler sums scoreInto and score() scorers alike, clamping NaN, negatives and values above 1', () => {
    const values = [5, Number.NaN, -1, 0.25, 1, -0, Number.POSITIVE_INFINITY];
    const config = parseEndpointPickerConfig(
      'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n',
    );
    const pods = values.map((_, i): EndpointSnapshot => ({
      endpoint: { key: key(i), name: `p${i}`, namespace: '', address: '', port: 8000, labels: {} },
      metrics: metrics({}),
      activeRequests: 0,
    }));
    const request = (): LLMRequest => ({ requestId: 'r', model: 'm', prompt: 'hi', headers: {} });
    const viaScore = buildScheduler(config, {
      factories: {
        'queue-scorer': (name) => ({ type: 'queue-scorer', name, score: () => values }),
        'kv-cache-utilization-scorer': (name) => ({ type: 'kv-cache-utilization-scorer', name, score: () => values.map((v) => v / 2) }),
      },
    });
    const viaInto = buildScheduler(config, {
      factories: {
        'queue-scorer': (name) => ({
          type: 'queue-scorer', name, score: () => [], scoreInto: (_c: CycleContext, _p: readonly EndpointSnapshot[], out: Float64Array) => out.set(values),
        }),
        'kv-cache-utilization-scorer': (name) => ({
          type: 'kv-cache-utilization-scorer', name, score: () => [],
          scoreInto: (_c: CycleContext, _p: readonly EndpointSnapshot[], out: Float64Array) => out.set(values.map((v) => v / 2)),
        }),
      },
    });
    const a = viaScore.schedule(request(), pods);
    const b = viaInto.schedule(request(), pods);
    expect([...b.scores]).toEqual([...a.scores]);
    expect([...a.scores.values()]).toEqual([2, 0, 0, 0.375, 1.5, 0, 2]);
  });
});

/**
 * The prefix-first profile (decode-filter, saturation-filter in admission mode, session-affinity-filter without a session, prefix 3,
 * no-hit-lru 4, queue 1, kv-cache 1, active-request 1, max-score-picker) on plain Maps and arrays, learning as the
 * plugins learn: each candidate's index capacity from its KV blocks, the pick's blocks, a cold pick's LRU move.
 */
class ReferenceCycle {
  readonly index = new ReferenceIndex(31250);
  readonly lru = new Map<string, true>();

  constructor(private readonly random: () => number) {}

  schedule(prompt: string, pool: readonly EndpointSnapshot[]): { target: string; scores: Map<string, number>; cold: boolean } | SchedulingError {
    const decode = pool.filter((s) => {
      const role = s.endpoint.labels[ROLE_LABEL];
      return role === undefined || role === 'decode' || role === 'both';
    });
    if (decode.length === 0) return new SchedulingError('no-endpoints', 'decode');
    // Admission mode (GIE's detector): pods whose metrics cannot be read go; loaded pods stay while one has room.
    const loaded = new Set<string>();
    let roomy = false;
    const candidates = decode.filter((s) => {
      const m = s.metrics;
      if (m.consecutiveFailures > 3 || m.updateTime <= 0 || NOW - m.updateTime > 1000) return false;
      // The scraped queue plus what was routed there since the scrape (`countPicksSinceScrape`, on by default).
      if (m.waitingQueueSize + (s.netPicksSinceScrape ?? 0) > 5 || m.kvCacheUsagePercent > 0.9) loaded.add(s.endpoint.key);
      else roomy = true;
      return true;
    });
    if (!roomy) return new SchedulingError(loaded.size > 0 ? 'saturated' : 'no-endpoints', 'saturation');
    for (const c of candidates) {
      if (c.metrics.numGpuBlocks !== undefined) this.index.setCapacity(c.endpoint.key, indexCapacityFor(c.metrics.numGpuBlocks, c.metrics.blockSize, 64));
    }
    const blocks = hashPromptBlocks('m', prompt, 64, 256);
    const matched = candidates.map((c) => this.index.leading(c.endpoint.key, blocks));
    const prefix = matched.map((m) => (blocks.length === 0 ? 0 : m / blocks.length));
    const cold = matched.every((m) => m === 0);
    // A cold request ranks the pods with room; loaded candidates score 0 (all of them are ranked if all are loaded).
    const roomyCandidates = candidates.filter((c) => !loaded.has(c.endpoint.key));
    const ranked = roomyCandidates.length > 0 ? roomyCandidates : candidates;
    const n = ranked.length;
    let noHit: number[];
    if (!cold) noHit = candidates.map(() => 0.5);
    else {
      const order = [...this.lru.keys()].filter((k) => ranked === candidates || !loaded.has(k));
      const neverUsed = ranked.filter((c) => !this.lru.has(c.endpoint.key)).length;
      let next = 0;
      const rankedScores = new Map(ranked.map((c) => {
        const at = order.indexOf(c.endpoint.key);
        return [c.endpoint.key, n === 1 ? 1 : Math.max(0, 1 - (at < 0 ? next++ : neverUsed + at) / (n - 1))] as const;
      }));
      noHit = candidates.map((c) => rankedScores.get(c.endpoint.key) ?? 0);
    }
    const clamp = (s: number | undefined) => (s === undefined || !(s > 0) ? 0 : s > 1 ? 1 : s);
    const weighted: [number[], number][] = [
      [prefix, 3], [noHit, 4], [referenceScores.queue(candidates), 1], [referenceScores.kv(candidates), 1], [referenceScores.active(candidates), 1],
    ];
    const totals = candidates.map((_, i) => weighted.reduce((t, [scores, w]) => t + clamp(scores[i]) * w, 0));
    const best = Math.max(...totals);
    const ties = candidates.filter((_, i) => totals[i] === best);
    const target = ties.length === 1 ? ties[0]! : ties[Math.floor(this.random() * ties.length)]!;
    this.index.record(target.endpoint.key, blocks);
    if (cold) {
      this.lru.delete(target.endpoint.key);
      this.lru.set(target.endpoint.key, true);
      while (this.lru.size > 1024) this.lru.delete(this.lru.keys().next().value!);
    }
    return { target: target.endpoint.key, scores: new Map(candidates.map((c, i) => [c.endpoint.key, totals[i]!])), cold };
  }

  remove(pod: string): void {
    this.index.remove(pod);
    this.lru.delete(pod);
  }
}

describe('the prefix scorer\'s index ids by candidate position', () => {
  it('sees the id the index gives a pod when its KV capacity is first learnt, at a position where it was unknown', () => {
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => NOW });
    const scorer = scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer;
    const endpoint = (name: string, i: number): Endpoint => ({ key: key(i), name, namespace: '', address: key(i).split(':')[0]!, port: 8000, labels: {} });
    const a = endpoint('a', 1);
    const b = endpoint('b', 2);
    const snapshot = (ep: Endpoint, m: Partial<EndpointMetrics>): EndpointSnapshot => ({ endpoint: ep, metrics: metrics(m), activeRequests: 0 });
    const prompt = 'a shared system prompt, long enough for several blocks. '.repeat(6);
    const blocks = hashPromptBlocks('m', prompt, 64, 256);
    const score = (candidates: EndpointSnapshot[]) =>
      scorer.score({ request: { requestId: 'r', model: 'm', prompt, headers: {} }, state: new CycleState() }, candidates);
    const [a0, b0] = [snapshot(a, {}), snapshot(b, {})]; // no cache config exported, never announced: unknown
    expect(score([a0, b0])).toEqual([0, 0]);
    scorer.index.record(a.key, blocks); // a joins the index (its ids change)
    expect(score([a0, b0])).toEqual([1, 0]);
    const b1 = snapshot(b, { numGpuBlocks: 100, blockSize: 16 }); // b's capacity is learnt in this pass: b joins
    expect(score([a0, b1])).toEqual([1, 0]);
    scorer.index.record(b.key, blocks); // b is known now: no id changes
    expect(score([a0, b1])).toEqual([1, 1]);
  });
});

// The prefix-first config (the default until the latency scorer joined it, 2026-11-30): the reference below implements
// its scorers' arithmetic; the latency scorer's learned predictions are tested on their own (plugin-latency-scorer).
describe('the prefix-first config against the plain reference cycle', () => {
  for (const pods of [40, 256]) {
    it(`picks the same target with the same scores on a random ${pods}-pod pool, through pods leaving and coming back and index evictions`, async () => {
      const random = seededRandom(pods);
      const ds = new Datastore({ scrape: false });
      const scheduler = buildScheduler(prefixFirstEndpointPickerConfig(), { now: () => NOW, random: seededRandom(1000 + pods) });
      const preRequests = scheduler.plugins.ofKind('pre-request') as PreRequest[];
      const prefixScorer = scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer;
      const reference = new ReferenceCycle(seededRandom(1000 + pods));
      const endpoint = (i: number, generation: number): Endpoint => {
        const role = i % 17 === 3 ? 'prefill' : i % 5 === 0 ? undefined : 'decode';
        return { key: key(i), name: `pod-${i}-${generation}`, namespace: 'ns', address: key(i).split(':')[0]!, port: 8000, labels: role ? { [ROLE_LABEL]: role } : {} };
      };
      // Few distinct values, so totals tie often and the picker's random draw decides; small KV capacities, so the
      // index evicts (a 16 KB prompt is 256 blocks; these pods hold 40-120).
      const randomMetrics = (): Partial<EndpointMetrics> => ({
        waitingQueueSize: random() < 0.85 ? 0 : pick(random, [1, 6]),
        kvCacheUsagePercent: random() < 0.85 ? 0.1 : pick(random, [0.5, 0.95]),
        // Some pods export no cache config: the index keeps its default (or last learnt) capacity for them.
        numGpuBlocks: random() < 0.2 ? undefined : pick(random, [40, 80, 120]),
        blockSize: 16,
        updateTime: random() < 0.03 ? NOW - 5000 : NOW,
        consecutiveFailures: random() < 0.02 ? 5 : 0,
      });
      const generation = new Map<number, number>();
      const join = (i: number) => {
        const g = (generation.get(i) ?? 0) + 1;
        generation.set(i, g);
        const ep = endpoint(i, g);
        ds.upsertEndpoint(ep);
        ds.setMetrics(ep.key, randomMetrics());
        // The runner announces every pod; half are left unannounced here, so the index first learns of some pods
        // when they are picked, and the scorer must see the id it then assigns.
        if (random() < 0.5) scheduler.plugins.addEndpoint(ds.endpoints().find((e) => e.key === ep.key)!);
      };
      for (let i = 0; i < pods; i++) join(i);
      const families = Array.from({ length: 12 }, (_, f) => `family ${f} shares this system prompt; `.repeat(40 + f * 10));
      const inFlight: string[] = [];
      let picks = 0;
      let ties = 0;
      let failures = 0;
      let hits = 0;
      for (let r = 0; r < 1200; r++) {
        const op = random();
        const i = Math.floor(random() * pods);
        const saturatedPhase = r >= 600 && r < 603;
        if (saturatedPhase) {
          // (no pod changes: every one stays saturated)
        } else if (op < 0.02) {
          // A pod leaves (its index entries and LRU place go) and another pod comes up at the same address.
          ds.removeEndpoint(key(i));
          scheduler.plugins.removeEndpoint(key(i));
          reference.remove(key(i));
          join(i);
        } else if (op < 0.5) {
          ds.setMetrics(key(i), randomMetrics());
        }
        // Three requests with every pod's queue over the threshold: both cycles fail 'saturated' and learn nothing.
        // (40, not 6: the filter adds the requests routed less those ended since each pod's page, which ends make negative)
        if (r === 600) for (let j = 0; j < pods; j++) ds.setMetrics(key(j), { waitingQueueSize: 40 });
        if (r === 603) for (let j = 0; j < pods; j++) ds.setMetrics(key(j), randomMetrics());
        if (r % 20 === 0) {
          // A family's prefix learnt by several pods at once, in both indexes (as if routed there earlier under other
          // load): holders with equal matches and equal load tie, and the picker's random draw decides.
          const blocks = hashPromptBlocks('m', pick(random, families), 64, 256);
          for (let k = 0; k < 4; k++) {
            const holder = key(Math.floor(random() * pods));
            prefixScorer.index.record(holder, blocks);
            reference.index.record(holder, blocks);
          }
        }
        const prompt = random() < 0.1 ? `a cold prompt ${r} `.repeat(8) : pick(random, families) + `question ${r % 7}`;
        const request: LLMRequest = { requestId: `r${r}`, model: 'm', prompt, headers: {}, attributes: new CycleState() };
        const candidates = ds.snapshot();
        const expected = reference.schedule(prompt, candidates);
        let actual;
        try {
          actual = scheduler.schedule(request, candidates);
        } catch (error) {
          expect(expected).toBeInstanceOf(SchedulingError);
          expect((error as SchedulingError).reason).toBe((expected as SchedulingError).reason);
          failures++;
          continue;
        }
        if (expected instanceof SchedulingError) throw new Error(`reference failed (${expected.reason}) where the scheduler picked`);
        expect(actual.target.endpoint.key).toBe(expected.target);
        expect(new Map(actual.scores)).toEqual(expected.scores);
        for (const hook of preRequests) hook.preRequest(request, actual);
        const values = [...expected.scores.values()];
        if (values.filter((v) => v === Math.max(...values)).length > 1) ties++;
        if (!expected.cold) hits++;
        picks++;
        ds.acquire(actual.target.endpoint.key);
        inFlight.push(actual.target.endpoint.key);
        if (inFlight.length > 16 || random() < 0.3) ds.release(inFlight.splice(Math.floor(random() * inFlight.length), 1)[0]!);
      }
      // Every path was taken: picks decided by a random draw among ties, prefix hits, cold picks, failed cycles.
      expect(picks).toBeGreaterThan(1000);
      expect(ties).toBeGreaterThan(100);
      expect(hits).toBeGreaterThan(500);
      expect(picks - hits).toBeGreaterThan(50);
      expect(failures).toBeGreaterThanOrEqual(3); // the saturated phase
      expect(failures + picks).toBe(1200);
      await ds.stop();
    });
  }
});

describe('Datastore.snapshot() patched from the last one', () => {
  it('never changes an array it handed out, and equals a fresh snapshot after every change', async () => {
    const random = seededRandom(64);
    const ds = new Datastore({ scrape: false });
    const handedOut: { array: readonly EndpointSnapshot[]; copy: EndpointSnapshot[] }[] = [];
    for (let step = 0; step < 2000; step++) {
      const i = Math.floor(random() * 30);
      const op = random();
      const known = ds.endpoints().some((e) => e.key === key(i));
      if (op < 0.08) ds.upsertEndpoint({ key: key(i), name: `pod-${i}-${step % 4}`, namespace: 'ns', address: key(i).split(':')[0]!, port: 8000, labels: {} });
      else if (op < 0.12 && known) ds.removeEndpoint(key(i));
      else if (op < 0.5 && known) ds.setMetrics(key(i), { waitingQueueSize: Math.floor(random() * 8), updateTime: step });
      else if (op < 0.75) ds.acquire(key(i));
      else ds.release(key(i));
      if (random() < 0.6) {
        const snap = ds.snapshot();
        expect(snap).toEqual(ds.endpoints().map((endpoint) => ({
          endpoint, metrics: ds.metrics(endpoint.key)!, activeRequests: ds.activeRequests(endpoint.key), discoveredTime: ds.discoveredTime(endpoint.key),
          netPicksSinceScrape: ds.netPicksSinceScrape(endpoint.key),
        })));
        handedOut.push({ array: snap, copy: [...snap] });
      }
    }
    // Element by element the same objects: a patch goes into a copy, never into an array a cycle may still hold.
    for (const { array, copy } of handedOut) {
      expect(array.length).toBe(copy.length);
      expect(array.every((s, j) => s === copy[j])).toBe(true);
    }
    expect(handedOut.length).toBeGreaterThan(1000);
    await ds.stop();
  });
});
