import { seededRandom } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { EMPTY_METRICS, type EndpointMetrics } from '../src/datastore/types';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyReading, parseVllmMetrics, VllmPageReader } from '../src/datastore/vllm-metrics';
import { DecayedRobustLinearFit } from '../src/latency/linear-fit';
import { CycleState } from '../src/scheduling/framework';
import type { LatencyScorer } from '../src/scheduling/plugins/latency-scorer';
import { buildScheduler } from '../src/scheduling/scheduler';
import { DEFAULT_MAX_NUM_SEQS, LANE_LOAD_WINDOW_MS, LatencyModel, PodLatencyModel, type LatencyModelOptions } from '../src/latency/pod-latency-model';

const seeded = seededRandom;

const PRIOR = { intercept: 0.02, slope: 0.0002, weight: 8, x: 1024 };
const HALF_LIFE_MS = 60_000;

function fit(): DecayedRobustLinearFit {
  return new DecayedRobustLinearFit({ prior: PRIOR, halfLifeMs: HALF_LIFE_MS });
}

/** Feeds `n` observations of y = o + c·x (±5% noise), one per 250 ms from `startMs`; returns the time after the last. */
function feed(f: DecayedRobustLinearFit, n: number, line: { o: number; c: number }, random: () => number, startMs: number, outlierEvery = 0): number {
  let t = startMs;
  for (let i = 1; i <= n; i++) {
    const x = Math.floor(random() * 4000);
    let y = (line.o + line.c * x) * (0.95 + 0.1 * random());
    if (outlierEvery > 0 && i % outlierEvery === 0) y *= 10; // a request stuck behind something the model cannot see
    f.observe(x, y, 1 + Math.floor(random() * 4), t);
    t += 250;
  }
  return t;
}

describe('DecayedRobustLinearFit: TTFT = overhead + seconds per uncached token × tokens', () => {
  it('is exactly the prior before any data', () => {
    const f = fit();
    expect(f.estimate(0)).toEqual({ intercept: PRIOR.intercept, slope: PRIOR.slope });
    expect(f.predictAt(1000)).toBeCloseTo(0.02 + 0.2, 12);
  });

  it('fits a known linear cost from synthetic observations, 1 in 20 of them 10× outliers', () => {
    const f = fit();
    const t = feed(f, 400, { o: 0.035, c: 0.0005 }, seeded(7), 0, 20);
    const { intercept, slope } = f.estimate(t);
    expect(slope).toBeGreaterThan(0.0005 * 0.95);
    expect(slope).toBeLessThan(0.0005 * 1.05);
    expect(intercept).toBeGreaterThan(0.035 * 0.8);
    expect(intercept).toBeLessThan(0.035 * 1.2);
  });

  it('without the robust weights the same outliers would drag the slope (the test above can fail)', () => {
    // Ordinary least squares on the same data, for contrast: the outliers pull it well above 5%.
    const random = seeded(7);
    let w = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (let i = 1; i <= 400; i++) {
      const x = Math.floor(random() * 4000);
      let y = (0.035 + 0.0005 * x) * (0.95 + 0.1 * random());
      if (i % 20 === 0) y *= 10;
      const weight = 1 + Math.floor(random() * 4);
      w += weight; sx += weight * x; sy += weight * y; sxx += weight * x * x; sxy += weight * x * y;
    }
    const olsSlope = (sxy - (sx * sy) / w) / (sxx - (sx * sx) / w);
    expect(olsSlope).toBeGreaterThan(0.0005 * 1.2);
  });

  it('recovers after the pod slows down 3×: within 10% of the new cost three half-lives later', () => {
    const f = fit();
    const random = seeded(11);
    let t = feed(f, 480, { o: 0.02, c: 0.0002 }, random, 0); // two minutes at the old speed
    expect(f.estimate(t).slope).toBeCloseTo(0.0002, 4);
    t = feed(f, 3 * 240, { o: 0.02, c: 0.0006 }, random, t); // three half-lives (60 s each) at 3× the cost
    const { slope } = f.estimate(t);
    expect(slope).toBeGreaterThan(0.0006 * 0.9);
    expect(slope).toBeLessThan(0.0006 * 1.1);
  });

  it('one wild observation moves an established fit by less than 5%', () => {
    const f = fit();
    const t = feed(f, 400, { o: 0.02, c: 0.0003 }, seeded(3), 0);
    const before = f.estimate(t).slope;
    expect(f.observe(3000, 50, 4, t)).toBeLessThan(0.05); // 50 s for 3000 tokens: its Huber weight is tiny
    expect(Math.abs(f.estimate(t).slope - before) / before).toBeLessThan(0.05);
  });

  it('falls back to the prior as its data ages: 20 half-lives without observations', () => {
    const f = fit();
    const t = feed(f, 200, { o: 0.05, c: 0.001 }, seeded(5), 0);
    expect(f.estimate(t).slope).toBeGreaterThan(0.0009);
    const later = f.estimate(t + 20 * HALF_LIFE_MS);
    expect(later.slope).toBeCloseTo(PRIOR.slope, 5);
    expect(later.intercept).toBeCloseTo(PRIOR.intercept, 3);
  });

  it('never returns a negative cost or overhead', () => {
    const f = fit();
    for (let i = 0; i < 100; i++) f.observe(i * 40, 0.5 - i * 0.004, 4, i * 100); // TTFT falling with tokens: noise
    const { slope, intercept } = f.estimate(10_000);
    expect(slope).toBeGreaterThanOrEqual(0);
    expect(intercept).toBeGreaterThanOrEqual(0);
  });

  it('pullToward moves the data\'s line the given share of the way to another line and fades the data as much; an anchor takes the prior\'s place', () => {
    const f = fit();
    const t = feed(f, 2000, { o: 0.05, c: 0.001 }, seeded(9), 0);
    const target = { intercept: 0.01, slope: 0.0002 };
    const before = f.estimate(t, target);
    const weight = f.dataWeight(t);
    f.pullToward(target, 0.25);
    expect(f.dataWeight(t)).toBeCloseTo(0.25 * weight, 6);
    const after = f.estimate(t, target);
    // A quarter of the distance left in the data, which now weigh a quarter as much against the anchor's 8.
    const left = 0.25 * ((0.25 * weight) / (0.25 * weight + PRIOR.weight));
    // (Not exact: the anchor's pseudo-points sit at other x than the data.)
    expect(after.slope / (target.slope + left * (before.slope - target.slope))).toBeCloseTo(1, 1);
    expect(Math.abs(after.intercept - target.intercept)).toBeLessThan(1.05 * left * Math.abs(before.intercept - target.intercept));
    f.pullToward(target, 1);
    expect(f.estimate(t, target)).toEqual(after);
    // With no data, the anchor is the line.
    expect(fit().estimate(0, target)).toEqual(target);
  });

  it('leans on the prior for the slope when all data sit at one x', () => {
    const f = fit();
    for (let i = 0; i < 100; i++) f.observe(500, 0.3, 4, i * 100);
    const { slope, intercept } = f.estimate(10_000);
    expect(Math.abs(slope - PRIOR.slope) / PRIOR.slope).toBeLessThan(0.1);
    expect(intercept + slope * 500).toBeCloseTo(0.3, 2); // and the line goes through the data
  });
});

const OPTIONS: LatencyModelOptions = {
  priorSecondsPerToken: 0.0002,
  priorOverheadSeconds: 0.02,
  priorWeight: 8,
  halfLifeMs: 60_000,
  pendingTimeoutMs: 30_000,
};

/** A pod's scrapes: cumulative counters advanced as a vLLM engine would for `requests` first tokens per interval. */
class ScrapeSeries {
  private count = 0;
  private sum = 0;
  private queries = 0;
  private hits = 0;
  private time = 1_000;

  next(interval: { requests: number; uncached: number; cached: number; ttft: number; waiting?: number }): EndpointMetrics {
    this.time += 50;
    this.count += interval.requests;
    this.sum += interval.requests * interval.ttft;
    this.queries += interval.requests * (interval.uncached + interval.cached);
    this.hits += interval.requests * interval.cached;
    return {
      ...EMPTY_METRICS,
      waitingQueueSize: interval.waiting ?? 0,
      updateTime: this.time,
      firstTokenCount: this.count,
      firstTokenSecondsSum: this.sum,
      prefixCacheQueryTokens: this.queries,
      prefixCacheHitTokens: this.hits,
    };
  }

  get now(): number {
    return this.time;
  }
}

describe('PodLatencyModel: learning from scraped engine counters', () => {
  it('fits seconds per uncached token and overhead from the deltas between scrapes', () => {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    const random = seeded(21);
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now); // baseline
    for (let i = 0; i < 300; i++) {
      const uncached = 100 + Math.floor(random() * 3000);
      model.ingest(scrapes.next({ requests: 2, uncached, cached: 2000, ttft: 0.03 + 0.0004 * uncached }), scrapes.now);
    }
    const { estimate, observations } = model.stats(scrapes.now);
    expect(observations).toBe(300);
    expect(estimate.slope).toBeCloseTo(0.0004, 5);
    // The prior (8 requests' worth, never decayed) still pulls a little against ~3,000 decayed requests' worth of data.
    expect(estimate.intercept).toBeCloseTo(0.03, 2);
    const p = model.predict(1000, EMPTY_METRICS, scrapes.now);
    expect(p.ttftSeconds).toBeCloseTo(0.03 + 0.4, 2);
    expect(p.queueSeconds).toBe(0);
  });

  it('pairs first tokens with the uncached tokens counted scrapes before them: TTFTs longer than the 50 ms scrape interval still give the slope (probe: the slope read 0 under load)', () => {
    // One request at a time, as vLLM counts it: its prompt's lookup (prefix_cache_queries) at the scrape after it is
    // scheduled, its first token ttft later (several scrapes), then 200 ms idle. Before the fix every observation read
    // x = 0 tokens (the queries fell in intervals without a first token): slope 0, intercept the mean TTFT.
    const model = new PodLatencyModel(OPTIONS);
    const random = seeded(5);
    let t = 1_000, queries = 0, count = 0, sum = 0, update = 0;
    const scrape = () => model.ingest({ ...EMPTY_METRICS, updateTime: ++update, firstTokenCount: count, firstTokenSecondsSum: sum, prefixCacheQueryTokens: queries, prefixCacheHitTokens: 0 }, t);
    scrape();
    for (let i = 0; i < 300; i++) {
      const uncached = 200 + Math.floor(random() * 4000);
      const ttft = 0.02 + 0.00025 * uncached;
      queries += uncached;
      t += 50;
      scrape();
      const firstTokenAt = t - 50 + ttft * 1000;
      while (t + 50 < firstTokenAt) { t += 50; scrape(); }
      count++;
      sum += ttft;
      t += 50;
      scrape();
      t += 200;
      scrape();
    }
    const { slope, intercept } = model.stats(t).estimate;
    expect(slope).toBeGreaterThan(0.00025 * 0.9);
    expect(slope).toBeLessThan(0.00025 * 1.1);
    expect(intercept).toBeLessThan(0.06);
  });

  it('fits TTFT against the work counted ahead at the pick plus the request\'s own: a pod that prefills its running requests one after another (the simulator\'s lane; chunked prefill in a shared step likewise) gives the true slope under load, where its own tokens alone read a slope near 0', () => {
    // Bursts of 1-4 requests every 400-1,200 ms, each admitted at once (running, so no scrape shows any waiting), their
    // prefills served first come first served at 0.25 ms a token + 20 ms: TTFT = 0.25 ms × (work ahead + own) + 20 ms.
    // The EPP's picks record the model's own queued tokens ahead, as the latency scorer's pre-request hook does.
    const c = 0.00025, o = 0.02;
    const model = new PodLatencyModel(OPTIONS);
    const random = seeded(11);
    let queries = 0, count = 0, sum = 0, update = 0, now = 1_000, busyUntil = 1_000;
    const firstTokens: { at: number; ttft: number }[] = [];
    const metrics = () => ({ ...EMPTY_METRICS, runningQueueSize: 1, updateTime: ++update, firstTokenCount: count, firstTokenSecondsSum: sum, prefixCacheQueryTokens: queries, prefixCacheHitTokens: 0 });
    let id = 0;
    for (let burst = 0; burst < 150; burst++) {
      const size = 1 + Math.floor(random() * 4);
      for (let k = 0; k < size; k++) {
        const own = 300 + Math.floor(random() * 3000);
        const ahead = model.predict(own, metrics(), now).queuedTokens;
        model.addPending(`r${++id}`, own, 1, now, ahead);
        queries += own;
        const start = Math.max(now, busyUntil);
        busyUntil = start + (o + c * own) * 1000;
        firstTokens.push({ at: busyUntil, ttft: (busyUntil - now) / 1000 });
      }
      const next = now + 400 + Math.floor(random() * 800);
      // Scrapes every 50 ms until the next burst, counting the first tokens produced by then.
      for (let t = now + 50; t < next; t += 50) {
        while (firstTokens.length > 0 && firstTokens[0]!.at <= t) {
          count++;
          sum += firstTokens.shift()!.ttft;
        }
        model.ingest(metrics(), t);
      }
      now = next;
    }
    const { slope, intercept } = model.stats(now).estimate;
    expect(slope).toBeGreaterThan(c * 0.85);
    expect(slope).toBeLessThan(c * 1.15);
    expect(intercept).toBeLessThan(0.1);
  });

  it('does not fit intervals whose TTFT contains queue wait (requests waiting at either scrape)', () => {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    for (let i = 0; i < 50; i++) model.ingest(scrapes.next({ requests: 3, uncached: 1000, cached: 0, ttft: 5, waiting: 4 }), scrapes.now);
    const stats = model.stats(scrapes.now);
    expect(stats.observations).toBe(0);
    expect(stats.skippedQueued).toBe(50);
    expect(stats.estimate).toEqual({ intercept: 0.02, slope: 0.0002 });
  });

  // The datastore's pages, not only the snapshots a scored request carried: the scorer reads a pod's page only when a
  // request is scored, and a burst that queued and drained between two of those reads was fitted as prefill cost.
  it('does not fit an interval whose queue showed only on a page no request read (the datastore counts such pages: waitingPages)', () => {
    const ds = new Datastore({ scrape: false });
    ds.upsertEndpoint({ key: 'a:8000', name: 'a', namespace: 'ns', address: 'a', port: 8000, labels: {} });
    const page = (update: number, waiting: number, firstTokens: number, ttftSum: number, queries: number) => ds.setMetrics('a:8000', {
      updateTime: update, waitingQueueSize: waiting, runningQueueSize: 1, firstTokenCount: firstTokens, firstTokenSecondsSum: ttftSum, prefixCacheQueryTokens: queries, prefixCacheHitTokens: 0,
    });
    const model = new PodLatencyModel(OPTIONS);
    const read = (now: number) => model.ingest(ds.snapshot()[0]!.metrics, now);
    page(1, 0, 0, 0, 0);
    read(1000);
    // Another client's burst: 6 waiting on a page nobody scored, then their 6 first tokens at 2 s each (mostly queue).
    page(2, 6, 0, 0, 600);
    page(3, 0, 6, 12, 600);
    read(4000);
    const stats = model.stats(4000);
    expect(stats.skippedQueued).toBe(1);
    expect(stats.observations).toBe(0);
  });

  it.each([[false], [true]])('a pod of the prior\'s cost (20 ms + 0.2 ms/token) whose bursts queue between the scorer\'s requests keeps a line near it (burst page scored too: %s)', (burstScored) => {
    let now = 1_000_000;
    const ds = new Datastore({ scrape: false });
    ds.upsertEndpoint({ key: 'a:8000', name: 'a', namespace: 'ns', address: 'a', port: 8000, labels: {} });
    const scheduler = buildScheduler(parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: latency-scorer\n- type: max-score-picker\n'
      + 'schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: latency-scorer\n  - pluginRef: max-score-picker\n'), { now: () => now });
    const scorer = scheduler.plugin('latency-scorer') as LatencyScorer;
    let update = 0;
    let firstTokens = 0;
    let ttftSum = 0;
    let queries = 0;
    const page = (waiting: number) => ds.setMetrics('a:8000', {
      updateTime: ++update, waitingQueueSize: waiting, runningQueueSize: 1, firstTokenCount: firstTokens, firstTokenSecondsSum: ttftSum, prefixCacheQueryTokens: queries, prefixCacheHitTokens: 0,
    });
    const schedule = (id: string) => scheduler.schedule({ requestId: id, model: 'm', prompt: 'x'.repeat(400), headers: {}, attributes: new CycleState() }, ds.snapshot());
    page(0);
    schedule('r0');
    for (let k = 1; k <= 30; k++) {
      // Between two of this EPP's requests, 3 s apart, a burst of 8 × 100-token requests queued (7 waiting on one page)
      // and each waited ~1 s before its 40 ms prefill.
      queries += 800;
      page(7);
      if (burstScored) schedule(`b${k}`);
      firstTokens += 8;
      ttftSum += 8 * 1.04;
      now += 3000;
      page(0);
      schedule(`r${k}`);
    }
    const line = scorer.model.pod('a:8000').line(now);
    // Truth: 20 ms + 0.2 ms × 100 tokens = 40 ms; within 50%.
    expect(line.intercept + line.slope * 100).toBeLessThan(0.06);
  });

  it('starts a new baseline when counters go down (a restarted pod) instead of fitting a negative interval', () => {
    const model = new PodLatencyModel(OPTIONS);
    const first = new ScrapeSeries();
    model.ingest(first.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), first.now);
    for (let i = 0; i < 5; i++) model.ingest(first.next({ requests: 100, uncached: 1000, cached: 0, ttft: 0.1 }), first.now);
    const restarted = new ScrapeSeries();
    const metrics = { ...restarted.next({ requests: 1, uncached: 10, cached: 0, ttft: 0.05 }), updateTime: first.now + 50 };
    model.ingest(metrics, first.now + 50);
    expect(model.stats(first.now + 50).observations).toBe(5);
    model.ingest({ ...metrics, updateTime: first.now + 100, firstTokenCount: 2, firstTokenSecondsSum: 0.1 }, first.now + 100);
    expect(model.stats(first.now + 100).observations).toBe(6);
  });

  it('reads each scrape once, however many requests are scored between scrapes', () => {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    const m = scrapes.next({ requests: 2, uncached: 500, cached: 0, ttft: 0.2 });
    for (let i = 0; i < 10; i++) model.ingest(m, scrapes.now);
    expect(model.stats(scrapes.now).observations).toBe(1);
  });
});

/**
 * Several pods' scrapes on one clock (50 ms apart), as the EPP's scrapers feed its one `LatencyModel`: each tick, every
 * listed pod is scraped; those given a line produced one first token of `uncached` tokens at TTFT = o + c·uncached.
 */
class PoolScrapes {
  t = 1_000;
  private readonly counters = new Map<string, { count: number; sum: number; queries: number }>();
  constructor(readonly model: LatencyModel, readonly uncached = 2000) {}

  tick(pods: Record<string, { c: number; o: number } | null>): void {
    this.t += 50;
    for (const [key, line] of Object.entries(pods)) {
      let k = this.counters.get(key);
      if (k === undefined) this.counters.set(key, (k = { count: 0, sum: 0, queries: 0 }));
      if (line !== null) {
        // Uncached prompts of 500-3,500 tokens (a spread the slope can be fitted from), one per tick.
        const uncached = 500 + ((k.count * 977) % 3000);
        k.count++;
        k.sum += line.o + line.c * uncached;
        k.queries += uncached;
      }
      this.model.pod(key).ingest({
        ...EMPTY_METRICS, updateTime: this.t, firstTokenCount: k.count, firstTokenSecondsSum: k.sum, prefixCacheQueryTokens: k.queries, prefixCacheHitTokens: 0,
      }, this.t);
    }
  }

  run(seconds: number, pods: Record<string, { c: number; o: number } | null>): void {
    for (let i = 0; i < seconds * 20; i++) this.tick(pods);
  }
}

describe('LatencyModel: a pod not observed for a while is pulled toward the pool\'s line (Peak-EWMA\'s idle decay, tower/src/load/peak_ewma.rs, toward the pool instead of 0)', () => {
  const FAST = { c: 0.00025, o: 0.02 };
  const SLOW = { c: 0.001, o: 0.02 };

  it('a pod slowed 4× and then avoided (no first tokens) returns to the pool\'s line from a sixth of the half-life on, halving the distance every sixth; its own first tokens then take over', () => {
    const model = new LatencyModel(OPTIONS);
    const pool = new PoolScrapes(model);
    const d = model.pod('d');
    pool.run(60, { a: FAST, b: FAST, c: FAST, d: SLOW });
    expect(d.line(pool.t).slope).toBeCloseTo(0.001, 4);
    expect(d.anchored.staleAfterMs).toBe(10_000);
    // The scorer stops sending to d: its scrapes count no first token. Distance: d's slope less the pool's.
    const distance = () => d.line(pool.t).slope - model.referenceLine(pool.t)!.slope;
    const start = distance();
    pool.run(10, { a: FAST, b: FAST, c: FAST, d: null });
    expect(distance() / start).toBeGreaterThan(0.95); // not stale yet
    expect(model.referenceLine(pool.t)!.slope).toBeCloseTo(0.00025, 5);
    pool.run(10, { a: FAST, b: FAST, c: FAST, d: null });
    const half = distance() / start; // stale for one pull half-life: about half the distance left
    expect(half).toBeGreaterThan(0.4);
    expect(half).toBeLessThan(0.55);
    pool.run(20, { a: FAST, b: FAST, c: FAST, d: null });
    expect(distance() / start).toBeLessThan(0.135); // three pull half-lives: about an eighth
    const pulled = d.line(pool.t).slope;
    expect(pulled).toBeLessThan(0.00036);
    // Tried again, d is fast now: its own first tokens take over (the faded data weigh an eighth of what they did).
    pool.run(2, { a: FAST, b: FAST, c: FAST, d: FAST });
    expect(d.line(pool.t).slope).toBeLessThan(pulled - 0.3 * (pulled - 0.00025));
    pool.run(18, { a: FAST, b: FAST, c: FAST, d: FAST });
    expect(d.line(pool.t).slope).toBeLessThan(0.00025 * 1.1);
  });

  it('a pod observed more often than every sixth of the half-life keeps its own line, however slow', () => {
    const model = new LatencyModel(OPTIONS);
    const pool = new PoolScrapes(model);
    pool.run(60, { a: FAST, b: FAST, d: SLOW });
    for (let i = 0; i < 12; i++) {
      pool.run(5, { a: FAST, b: FAST, d: null });
      pool.tick({ a: FAST, b: FAST, d: SLOW });
    }
    expect(model.pod('d').line(pool.t).slope).toBeGreaterThan(0.00095);
  });

  it('a pod with no data takes the pool\'s line rather than the prior, and with no pod observed recently the prior stands', () => {
    const model = new LatencyModel(OPTIONS);
    const prior = { intercept: OPTIONS.priorOverheadSeconds, slope: OPTIONS.priorSecondsPerToken };
    const pool = new PoolScrapes(model);
    expect(model.pod('new').line(pool.t)).toEqual(prior);
    pool.run(30, { a: SLOW, b: SLOW, c: FAST });
    const joined = model.pod('new').line(pool.t); // the median pod's line: slow
    expect(joined).toEqual(model.referenceLine(pool.t));
    expect(joined.slope).toBeCloseTo(0.001, 4);
    pool.run(20, { a: null, b: null, c: null }); // the whole pool idle past a sixth of the half-life: no reference
    expect(model.pod('new').line(pool.t)).toEqual(prior);
    expect(model.pod('a').line(pool.t).slope).toBeGreaterThan(0.0009);
  });
});

describe('PodLatencyModel: the scorer\'s cached line (predictSeconds)', () => {
  /** A model with data (so its line decays toward the prior) and no queue. */
  function learnt(): { model: PodLatencyModel; at: number } {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    for (let i = 0; i < 40; i++) model.ingest(scrapes.next({ requests: 4, uncached: 500 + 50 * i, cached: 0, ttft: 0.05 + 0.001 * (500 + 50 * i) }), scrapes.now);
    return { model, at: scrapes.now };
  }

  it('keeps the line for a thousandth of the half-life, then refits it to the decayed data', () => {
    const { model, at } = learnt();
    const first = model.predictSeconds(1000, EMPTY_METRICS, at);
    expect(first).toBeCloseTo(model.predict(1000, EMPTY_METRICS, at).ttftSeconds, 12);
    // Within HALF_LIFE_MS / 1000 = 60 ms: the same line, although the exact one has decayed a little.
    const within = at + HALF_LIFE_MS / 1000 - 1;
    expect(model.predictSeconds(1000, EMPTY_METRICS, within)).toBe(first);
    // Half a half-life later the data weigh 0.71 of what they did and the prior pulls the line: a refit.
    const later = at + HALF_LIFE_MS / 2;
    const refit = model.predictSeconds(1000, EMPTY_METRICS, later);
    expect(refit).not.toBe(first);
    expect(refit).toBeCloseTo(model.predict(1000, EMPTY_METRICS, later).ttftSeconds, 12);
  });

  it('refits at once when a scrape brings an observation, however recent the line', () => {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    const before = model.predictSeconds(1000, EMPTY_METRICS, scrapes.now);
    // 50 ms later (within the 60 ms the line is kept), a scrape shows requests 10× slower than the prior.
    model.ingest(scrapes.next({ requests: 50, uncached: 1000, cached: 0, ttft: 2.2 }), scrapes.now);
    const after = model.predictSeconds(1000, EMPTY_METRICS, scrapes.now);
    expect(after).toBeGreaterThan(before * 2);
    expect(after).toBeCloseTo(model.predict(1000, EMPTY_METRICS, scrapes.now).ttftSeconds, 12);
  });
});

describe('PodLatencyModel: queued prefill work', () => {
  it('counts picks as queued work until the scrape counts their first tokens, oldest first', () => {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    model.addPending('a', 1000, 0.2, scrapes.now);
    model.addPending('b', 2000, 0.4, scrapes.now);
    model.addPending('c', 500, 0.1, scrapes.now);
    const queued = model.predict(100, EMPTY_METRICS, scrapes.now);
    expect(queued.queuedTokens).toBe(3500);
    expect(queued.queueSeconds).toBeCloseTo(3500 * 0.0002, 9);
    expect(queued.ttftSeconds).toBeCloseTo(3500 * 0.0002 + 100 * 0.0002 + 0.02, 9);
    model.ingest(scrapes.next({ requests: 2, uncached: 1500, cached: 0, ttft: 0.3, waiting: 1 }), scrapes.now);
    expect(model.stats(scrapes.now)).toMatchObject({ pendingRequests: 1, pendingTokens: 500 });
  });

  it('laneLoad: the share of the last seconds the pod\'s prefill lane spent on this EPP\'s picks, each its line at its uncached tokens, weighted over LANE_LOAD_WINDOW_MS and kept when the picks are retired', () => {
    const model = new PodLatencyModel(OPTIONS);
    expect(model.laneLoad(0)).toBe(0);
    // The prior's line: 0.02 s + 0.0002 s a token. Two picks of 1000 and 2000 tokens: 0.22 + 0.42 s of prefill.
    model.addPending('a', 1000, 0.2, 0);
    model.addPending('b', 2000, 0.4, 0);
    expect(model.laneLoad(0)).toBeCloseTo(0.64 / (LANE_LOAD_WINDOW_MS / 1000), 9);
    model.finish('a');
    model.finish('b');
    expect(model.laneLoad(0)).toBeCloseTo(0.64 / (LANE_LOAD_WINDOW_MS / 1000), 9);
    // One window later, 1/e of it; a pick then adds its own on top.
    expect(model.laneLoad(LANE_LOAD_WINDOW_MS)).toBeCloseTo((0.64 / (LANE_LOAD_WINDOW_MS / 1000)) * Math.exp(-1), 9);
    model.addPending('c', 0, 0.02, LANE_LOAD_WINDOW_MS);
    expect(model.laneLoad(LANE_LOAD_WINDOW_MS)).toBeCloseTo(((0.64 * Math.exp(-1)) + 0.02) / (LANE_LOAD_WINDOW_MS / 1000), 9);
    // A clock that steps back reads the load as of the last pick.
    expect(model.laneLoad(0)).toBe(model.laneLoad(LANE_LOAD_WINDOW_MS));
    // A pick at a time that is not a number adds nothing and leaves the load decaying from the last real pick.
    const before = model.laneLoad(2 * LANE_LOAD_WINDOW_MS);
    model.addPending('d', 1000, 0.2, Number.NaN);
    expect(model.laneLoad(2 * LANE_LOAD_WINDOW_MS)).toBe(before);
    expect(before).toBeGreaterThan(0);
  });

  it('ends a request\'s queued work by id (a non-streaming response is past its first token) and expires the rest', () => {
    const model = new PodLatencyModel(OPTIONS);
    model.addPending('a', 1000, 0.2, 0);
    model.addPending('b', 2000, 0.4, 0);
    model.finish('b');
    expect(model.stats(0)).toMatchObject({ pendingRequests: 1, pendingTokens: 1000 });
    model.finish('unknown');
    expect(model.stats(0).pendingRequests).toBe(1);
    // 4 × the 0.2 s predicted, but at least 500 ms: gone by 801 ms.
    expect(model.stats(799).pendingRequests).toBe(1);
    expect(model.stats(801).pendingRequests).toBe(0);
  });

  it('keeps a pick queued as long as the pod\'s recent picks took to leave, when that is longer than its prediction', () => {
    const model = new PodLatencyModel(OPTIONS);
    const counters = { ...EMPTY_METRICS, firstTokenCount: 0, firstTokenSecondsSum: 0, prefixCacheQueryTokens: 0, prefixCacheHitTokens: 0 };
    model.ingest({ ...counters, updateTime: 1 }, 0);
    // The engine reports 50 ms TTFTs, but by the EPP's clock each pick takes 3 s to leave (a time-scaled simulator, or
    // a pod slower than its own clock says): the first pick, predicted at 50 ms, is retired by the scrape at 3 s.
    model.addPending('first', 300, 0.05, 0);
    model.ingest({ ...counters, updateTime: 2, firstTokenCount: 1, firstTokenSecondsSum: 0.05 }, 3_000);
    expect(model.stats(3_000).pendingRequests).toBe(0);
    // The next pick, predicted at 50 ms too, stays queued for 4 × the 3 s its predecessor took, not 500 ms.
    model.addPending('second', 300, 0.05, 3_000);
    expect(model.stats(3_000 + 11_999)).toMatchObject({ pendingRequests: 1, pendingTokens: 300 });
    expect(model.stats(3_000 + 12_001).pendingRequests).toBe(0);
    // pendingTimeout still caps it.
    const capped = new PodLatencyModel({ ...OPTIONS, pendingTimeoutMs: 5_000 });
    capped.ingest({ ...counters, updateTime: 1 }, 0);
    capped.addPending('first', 300, 0.05, 0);
    capped.ingest({ ...counters, updateTime: 2, firstTokenCount: 1, firstTokenSecondsSum: 0.05 }, 3_000);
    capped.addPending('second', 300, 0.05, 3_000);
    expect(capped.stats(3_000 + 5_001).pendingRequests).toBe(0);
  });

  it('stops counting a request abandoned before its first token when its response ends, and its entry no longer takes a later first token (vLLM never counts an aborted request\'s TTFT: vllm/v1/metrics/stats.py @ v0.10.0)', () => {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    model.addPending('abandoned', 4000, 1, scrapes.now);
    model.addPending('b', 1000, 0.4, scrapes.now);
    model.addPending('c', 500, 0.5, scrapes.now);
    // The client of the oldest gives up: its stream closes; no first token was ever produced for it.
    model.ended('abandoned', scrapes.now + 10);
    expect(model.stats(scrapes.now + 10)).toMatchObject({ pendingRequests: 2, pendingTokens: 1500 });
    expect(model.predict(0, EMPTY_METRICS, scrapes.now + 10).queuedTokens).toBe(1500);
    // The scrape after the release counts nothing new; the one after that drops the entry, so 'b''s first token retires
    // 'b' and not the abandoned entry in its place (which left 'b''s 1,000 tokens counted while it decoded).
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    model.ingest(scrapes.next({ requests: 1, uncached: 1000, cached: 0, ttft: 0.4 }), scrapes.now);
    expect(model.stats(scrapes.now)).toMatchObject({ pendingRequests: 1, pendingTokens: 500 });
    model.ingest(scrapes.next({ requests: 1, uncached: 500, cached: 0, ttft: 0.5 }), scrapes.now);
    expect(model.stats(scrapes.now)).toMatchObject({ pendingRequests: 0, pendingTokens: 0 });
  });

  it('lets a released request\'s first token, counted at the scrape right after its release, retire its own entry', () => {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    model.addPending('short', 200, 0.05, scrapes.now);
    model.addPending('queued', 3000, 0.7, scrapes.now);
    // A one-token answer: first token and end within one scrape interval, released before the scrape that counts it.
    model.ended('short', scrapes.now + 20);
    expect(model.stats(scrapes.now + 20)).toMatchObject({ pendingRequests: 1, pendingTokens: 3000 });
    model.ingest(scrapes.next({ requests: 1, uncached: 200, cached: 0, ttft: 0.05 }), scrapes.now);
    // Its count retired its own entry (the oldest): 'queued' still counts, as it has not started.
    expect(model.stats(scrapes.now)).toMatchObject({ pendingRequests: 1, pendingTokens: 3000 });
    model.ingest(scrapes.next({ requests: 1, uncached: 3000, cached: 0, ttft: 0.7 }), scrapes.now);
    expect(model.stats(scrapes.now)).toMatchObject({ pendingRequests: 0, pendingTokens: 0 });
  });

  it('keeps a request released while a page was on its way for the next page, which may be the first to count its first token', () => {
    const model = new PodLatencyModel(OPTIONS);
    const scrapes = new ScrapeSeries();
    model.ingest(scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), scrapes.now);
    model.addPending('short', 200, 0.05, scrapes.now);
    model.addPending('queued', 3000, 0.7, scrapes.now);
    // The next page's request goes out at +20 ms and the page, rendered before 'short''s first token, arrives at +50
    // ms; 'short' produced its token and ended at +40 ms, in between: that page counts nothing.
    const sent = scrapes.now + 20;
    model.ended('short', scrapes.now + 40);
    model.ingest({ ...scrapes.next({ requests: 0, uncached: 0, cached: 0, ttft: 0 }), requestTime: sent }, scrapes.now);
    expect(model.stats(scrapes.now)).toMatchObject({ pendingRequests: 1, pendingTokens: 3000 });
    // The page after counts its first token: it retires 'short''s own entry, not 'queued', which has not started.
    model.ingest(scrapes.next({ requests: 1, uncached: 200, cached: 0, ttft: 0.05 }), scrapes.now);
    expect(model.stats(scrapes.now)).toMatchObject({ pendingRequests: 1, pendingTokens: 3000 });
    model.ingest(scrapes.next({ requests: 1, uncached: 3000, cached: 0, ttft: 0.7 }), scrapes.now);
    expect(model.stats(scrapes.now)).toMatchObject({ pendingRequests: 0, pendingTokens: 0 });
  });

  it('values requests waiting beyond its own picks at the pod\'s typical uncached prompt', () => {
    const model = new PodLatencyModel(OPTIONS);
    model.addPending('a', 1000, 0.2, 0);
    // 3 waiting, 1 of them ours: 2 others, charged at the request's own 400 tokens before any observation.
    const p = model.predict(400, { ...EMPTY_METRICS, waitingQueueSize: 3 }, 0);
    expect(p.queuedTokens).toBe(1000 + 2 * 400);
  });
});

describe('PodLatencyModel: waiting for a sequence slot (vLLM v1 scheduler: max_num_running_reqs = max_num_seqs, vllm/v1/core/sched/scheduler.py @ v0.10.0)', () => {
  const SLOTS = { ...OPTIONS, maxNumSeqs: 4 };
  /** Two scrapes of a pod whose finished requests ran `seconds` each: the second carries the interval's delta. */
  function finished(model: PodLatencyModel, seconds: number, requests = 8, extra: Partial<EndpointMetrics> = {}): void {
    model.ingest({ ...EMPTY_METRICS, updateTime: 1, inferenceCount: 0, inferenceSecondsSum: 0, ...extra }, 1);
    model.ingest({ ...EMPTY_METRICS, updateTime: 2, inferenceCount: requests, inferenceSecondsSum: requests * seconds, ...extra }, 2);
  }

  it('adds no wait while the pod has a free slot, then (in flight − slots + 1) ÷ slots × its mean inference seconds', () => {
    const model = new PodLatencyModel(SLOTS);
    finished(model, 0.8);
    expect(model.stats(2).inferenceSeconds).toBeCloseTo(0.8, 12);
    const idle = model.predict(100, EMPTY_METRICS, 2, 3);
    expect(idle.slotWaitSeconds).toBe(0);
    // 4 in flight on 4 slots: the next waits for the first of them to finish, a quarter of a run on average.
    expect(model.predict(100, EMPTY_METRICS, 2, 4).slotWaitSeconds).toBeCloseTo(0.2, 12);
    const full = model.predict(100, EMPTY_METRICS, 2, 11);
    expect(full.slotWaitSeconds).toBeCloseTo((8 / 4) * 0.8, 12);
    expect(full.ttftSeconds).toBeCloseTo(idle.ttftSeconds + 1.6, 12);
    expect(model.predictSeconds(100, EMPTY_METRICS, 2, 11)).toBeCloseTo(full.ttftSeconds, 12);
  });

  it('counts the scrape\'s running + waiting when it shows more than this EPP has in flight (other replicas, other clients)', () => {
    const model = new PodLatencyModel(SLOTS);
    finished(model, 0.8);
    expect(model.predict(0, { ...EMPTY_METRICS, runningQueueSize: 4, waitingQueueSize: 2 }, 2, 1).slotWaitSeconds).toBeCloseTo((3 / 4) * 0.8, 12);
  });

  it('predicts no slot wait before any pod finished a request, and takes the pool\'s mean for a pod that has not', () => {
    const model = new LatencyModel(SLOTS);
    expect(model.pod('a').predict(0, EMPTY_METRICS, 0, 40).slotWaitSeconds).toBe(0);
    finished(model.pod('a'), 1.0);
    finished(model.pod('b'), 0.5);
    expect(model.pod('c').predict(0, EMPTY_METRICS, 2, 4).slotWaitSeconds).toBeCloseTo(0.75 / 4, 12);
    expect(model.pod('a').predict(0, EMPTY_METRICS, 2, 4).slotWaitSeconds).toBeCloseTo(1.0 / 4, 12);
  });

  it('before any pod finished a request, takes no less than the age of the oldest request this EPP runs on the pod as the mean (none has finished, so each runs at least that long); the pool\'s mean replaces it once reported', () => {
    const model = new LatencyModel(SLOTS);
    const a = model.pod('a');
    for (let i = 0; i < 4; i++) {
      a.addPending(`r${i}`, 100, 0.1, 0);
      a.started(`r${i}`, 0);
    }
    // At 3 s the four have run 3 s each and none has finished: a fifth waits at least (5 − 4 + 1) ÷ 4 × 3 s.
    const wait = a.predict(0, EMPTY_METRICS, 3000, 5).slotWaitSeconds;
    expect(wait).toBeGreaterThanOrEqual(1.5 - 1e-12);
    // With room there is no wait, lower bound or not.
    expect(a.predict(0, EMPTY_METRICS, 3000, 3).slotWaitSeconds).toBe(0);
    // Another pod reports requests of 0.8 s: its mean is the pool's, and a's wait follows it.
    finished(model.pod('b'), 0.8);
    expect(a.predict(0, EMPTY_METRICS, 3000, 5).slotWaitSeconds).toBeLessThan(wait);
  });

  it('before any pod finished a request, takes twice the oldest request\'s age as the mean: the oldest has as long again to run, not nothing (session 56: a full holder read a sixteenth of a request while its slots stayed taken a second more)', () => {
    const a = new LatencyModel(SLOTS).pod('a');
    for (let i = 0; i < 4; i++) a.started(`r${i}`, 0);
    // At 3 s the four have run 3 s: the mean is taken as 6 s, so each has 3 s to go, and a fifth waits for the first.
    expect(a.predict(0, EMPTY_METRICS, 3000, 5).slotWaitSeconds).toBeCloseTo(3, 9);
    // Two beyond the slots: the second to free, also 3 s away, and never under the staggered (2 + 1) ÷ 4 × 6 s.
    expect(a.predict(0, EMPTY_METRICS, 3000, 6).slotWaitSeconds).toBeCloseTo(4.5, 9);
  });

  it('keeps the pool\'s mean inference seconds until a pod observes finished requests or leaves the pool, then recomputes it (a pod with none of its own reads it on every slot wait)', () => {
    const model = new LatencyModel(SLOTS);
    finished(model.pod('a'), 1.0);
    expect(model.poolInferenceSeconds()).toBeCloseTo(1.0, 12);
    finished(model.pod('b'), 0.5);
    expect(model.poolInferenceSeconds()).toBeCloseTo(0.75, 12);
    // c has finished nothing: its slot wait reads the pool's mean.
    expect(model.pod('c').predict(0, EMPTY_METRICS, 2, 4).slotWaitSeconds).toBeCloseTo(0.75 / 4, 12);
    model.remove('a');
    expect(model.poolInferenceSeconds()).toBeCloseTo(0.5, 12);
    // b's next page: 8 more finished in 12 s, a mean of 1.5 s; b's own mean moves to about 1.0, and the pool's with it.
    model.pod('b').ingest({ ...EMPTY_METRICS, updateTime: 3, inferenceCount: 16, inferenceSecondsSum: 16 }, 3);
    expect(model.poolInferenceSeconds()).toBeCloseTo(1.0, 3);
    expect(model.pod('c').predict(0, EMPTY_METRICS, 3, 4).slotWaitSeconds).toBeCloseTo(1.0 / 4, 3);
  });

  it('takes a pod seen running more than it was told as having one slot more than it ran (its limit is at least that, and unknown)', () => {
    const model = new PodLatencyModel(SLOTS);
    finished(model, 0.8, 8, { runningQueueSize: 10 });
    expect(model.stats(2).slots).toBe(11);
    expect(model.predict(0, EMPTY_METRICS, 2, 10).slotWaitSeconds).toBe(0);
    expect(model.predict(0, EMPTY_METRICS, 2, 11).slotWaitSeconds).toBeCloseTo(0.8 / 11, 12);
    // Running exactly what it was told says nothing more.
    const full = new PodLatencyModel(SLOTS);
    finished(full, 0.8, 8, { runningQueueSize: 4 });
    expect(full.stats(2).slots).toBe(4);
  });

  it('counts maxNumSeqs per engine: a pod whose one page sums two data-parallel engines has twice the slots', () => {
    const model = new PodLatencyModel(SLOTS);
    finished(model, 0.8, 8, { runningQueueSize: 5, engines: 2 });
    expect(model.stats(2).slots).toBe(8);
    expect(model.predict(0, { ...EMPTY_METRICS, runningQueueSize: 5 }, 2, 5).slotWaitSeconds).toBe(0);
    expect(model.predict(0, EMPTY_METRICS, 2, 8).slotWaitSeconds).toBeCloseTo(0.1, 12);
  });

  it('reads the ages of its own requests: slots a burst filled at one instant free after about a whole inference, not a quarter of one (review 30 #3)', () => {
    const model = new PodLatencyModel(SLOTS);
    finished(model, 10); // each request runs 10 s
    const t0 = 2;
    for (const id of ['a', 'b', 'c', 'd']) model.started(id, t0);
    // The fifth, picked at once: all four finish about 10 s from now (the staggered formula said 2.5 s).
    expect(model.predict(0, EMPTY_METRICS, t0, 4).slotWaitSeconds).toBeCloseTo(10, 9);
    // Six seconds on: 4 s left.
    expect(model.predict(0, EMPTY_METRICS, t0 + 6_000, 4).slotWaitSeconds).toBeCloseTo(4, 9);
    // Past their mean they are long generations, not due ones: never under the staggered formula (10 ÷ 4 s).
    expect(model.predict(0, EMPTY_METRICS, t0 + 12_000, 4).slotWaitSeconds).toBeCloseTo(2.5, 9);
    // Two more waiting (6 in flight): the third slot to free, and a seventh beyond the slots waits a whole round more.
    expect(model.predict(0, EMPTY_METRICS, t0 + 1_000, 6).slotWaitSeconds).toBeCloseTo(9, 9);
    expect(model.predict(0, EMPTY_METRICS, t0 + 1_000, 8).slotWaitSeconds).toBeCloseTo(9 + 10, 9);
    // Ended requests are forgotten.
    expect(model.stats(t0).trackedStarts).toBe(4);
    model.ended('a', 0);
    model.ended('b', 0);
    expect(model.stats(t0).trackedStarts).toBe(2);
  });

  it('counts a queued request\'s age from when it is predicted to get a slot: after a burst\'s first wave the second is not read as due (review 32)', () => {
    const model = new PodLatencyModel(SLOTS);
    finished(model, 10);
    const t0 = 2;
    // Eight picked at once on four slots: four run now, four start when those end, 10 s on (as preRequest records them).
    for (const id of ['a', 'b', 'c', 'd']) model.started(id, t0);
    for (const id of ['e', 'f', 'g', 'h']) model.started(id, t0 + model.predict(0, EMPTY_METRICS, t0, 4).slotWaitSeconds * 1000);
    expect(model.predict(0, EMPTY_METRICS, t0, 8).slotWaitSeconds).toBeCloseTo(20, 9);
    // 11.5 s on, the first four ended: the second four have run 1.5 s of their 10.
    for (const id of ['a', 'b', 'c', 'd']) model.ended(id, 0);
    expect(model.predict(0, EMPTY_METRICS, t0 + 11_500, 4).slotWaitSeconds).toBeCloseTo(8.5, 9);
  });

  it('keeps its starts in order when one arrives earlier than the last (a shorter prediction, the clock stepping back)', () => {
    const model = new PodLatencyModel({ ...OPTIONS, maxNumSeqs: 2 });
    finished(model, 10);
    model.started('late', 30_000);
    model.started('early', 0); // recorded after, runs first
    // At 20 s: 'early' has 0 s left (its mean passed), 'late' 10 s; the first slot frees at the staggered floor, 5 s,
    // and a request behind one more waits for the second, 10 s.
    expect(model.predict(0, EMPTY_METRICS, 20_000, 2).slotWaitSeconds).toBeCloseTo(5, 9);
    expect(model.predict(0, EMPTY_METRICS, 20_000, 3).slotWaitSeconds).toBeCloseTo(10, 9);
    model.started('later', 25_000);
    expect(model.predict(0, EMPTY_METRICS, 29_000, 2).slotWaitSeconds).toBeCloseTo(6, 9);
    expect(model.stats(29_000).latestStartMs).toBe(30_000);
    model.ended('late', 0);
    expect(model.stats(29_000).latestStartMs).toBe(25_000);
    model.ended('later', 0);
    model.ended('early', 0);
    expect(model.stats(29_000)).toMatchObject({ trackedStarts: 0, latestStartMs: undefined });
  });

  it('staggered arrivals read as before, and slots it has no age for (scrape-only occupants) are spread over one inference', () => {
    const model = new PodLatencyModel(SLOTS);
    finished(model, 0.8);
    // Four own requests started 0.2 s apart, the oldest 0.8 s ago: remaining 0, 0.2, 0.4, 0.6 s.
    [0, 200, 400, 600].forEach((at, i) => model.started(`r${i}`, 2 + at));
    const now = 2 + 800;
    // Ages would say 0 and 0.4 s; the staggered formula, the floor, says 0.2 and 0.6 s: what staggered arrivals read before.
    expect(model.predict(0, EMPTY_METRICS, now, 4).slotWaitSeconds).toBeCloseTo(0.2, 9);
    expect(model.predict(0, EMPTY_METRICS, now, 6).slotWaitSeconds).toBeCloseTo(0.6, 9);
    // Two own (started now: 0.8 s left) and two others the scrape shows running (0.4, 0.8 s spread): the first slot
    // frees at 0.4 s, the third at 0.8 s.
    const mixed = new PodLatencyModel(SLOTS);
    finished(mixed, 0.8);
    mixed.started('x', 1_000);
    mixed.started('y', 1_000);
    const running = { ...EMPTY_METRICS, runningQueueSize: 4 };
    expect(mixed.predict(0, running, 1_000, 2).slotWaitSeconds).toBeCloseTo(0.4, 9);
    expect(mixed.predict(0, { ...running, waitingQueueSize: 2 }, 1_000, 2).slotWaitSeconds).toBeCloseTo(0.8, 9);
    // Only the youngest `inFlight` starts count: one whose completion never arrived (inFlight says 1) is ignored.
    const lost = new PodLatencyModel(SLOTS);
    finished(lost, 0.8);
    lost.started('lost', 0);
    lost.started('live', 5_000);
    expect(lost.predict(0, running, 5_000, 1).slotWaitSeconds).toBeCloseTo(0.8 / 3, 9);
  });

  /**
   * The slot wait as its definition reads (PodLatencyModel.slotWaitSeconds' doc comment), by sorting: the m-th smallest
   * of the own remaining times and the even spread, a whole inference per round beyond, never under the staggered floor.
   */
  function referenceSlotWait(starts: number[], inference: number, slots: number, inFlight: number, scraped: number, nowMs: number): number {
    const occupants = Math.max(inFlight, scraped);
    if (occupants < slots) return 0;
    const releases = occupants - slots;
    const staggered = ((releases + 1) / slots) * inference;
    if (starts.length === 0 || inFlight === 0) return staggered;
    const sorted = [...starts].sort((a, b) => a - b);
    const counted = sorted.slice(sorted.length - Math.min(inFlight, sorted.length));
    const own = counted.slice(0, Math.min(counted.length, slots)).map((s) => Math.max(0, inference - Math.max(0, nowMs - s) / 1000));
    const spread = slots - own.length;
    const all = [...own, ...Array.from({ length: spread }, (_, j) => ((j + 1) / spread) * inference)].sort((a, b) => a - b);
    const round = Math.floor(releases / slots);
    return Math.max(staggered, round * inference + all[releases - round * slots]!);
  }

  it('equals its definition (the m-th smallest remaining time, by sorting) on random pods, starts added in any order, with ties and ended requests', () => {
    const random = seededRandom(35);
    for (let trial = 0; trial < 400; trial++) {
      const slots = 1 + Math.floor(random() * 24);
      const model = new PodLatencyModel({ ...OPTIONS, maxNumSeqs: slots });
      const inference = 0.2 + random() * 10;
      finished(model, inference);
      const live = new Map<string, number>();
      const adds = Math.floor(random() * 3 * slots);
      for (let i = 0; i < adds; i++) {
        // Whole seconds make ties common; some starts lie ahead (queued requests' predicted starts).
        const at = Math.floor(random() * 30) * 1_000;
        const id = `r${Math.floor(random() * adds * 1.5)}`; // ids reused: a re-start moves the entry
        model.started(id, at);
        live.set(id, at);
        if (random() < 0.25) {
          const gone = [...live.keys()][Math.floor(random() * live.size)]!;
          model.ended(gone, 0);
          live.delete(gone);
        }
      }
      expect(model.stats(0).trackedStarts).toBe(live.size);
      expect(model.stats(0).latestStartMs).toBe(live.size === 0 ? undefined : Math.max(...live.values()));
      for (let q = 0; q < 5; q++) {
        const inFlight = Math.floor(random() * (live.size + slots + 2));
        const scraped = Math.floor(random() * 3 * slots);
        const nowMs = Math.floor(random() * 40_000);
        const metrics = { ...EMPTY_METRICS, runningQueueSize: Math.min(scraped, slots), waitingQueueSize: scraped - Math.min(scraped, slots) };
        const expected = referenceSlotWait([...live.values()], inference, slots, inFlight, scraped, nowMs);
        expect(model.slotWaitSeconds(metrics, inFlight, nowMs)).toBeCloseTo(expected, 9);
      }
    }
  });

  it('follows a pod whose requests run longer: older intervals lose half their weight every half-life', () => {
    const model = new PodLatencyModel(SLOTS);
    let t = 0;
    let count = 0;
    let sum = 0;
    const scrape = (seconds: number) => {
      t += 1_000;
      count += 4;
      sum += 4 * seconds;
      model.ingest({ ...EMPTY_METRICS, updateTime: t, inferenceCount: count, inferenceSecondsSum: sum }, t);
    };
    for (let i = 0; i < 60; i++) scrape(0.5);
    for (let i = 0; i < 300; i++) scrape(2.0);
    expect(model.stats(t).inferenceSeconds).toBeGreaterThan(1.95);
  });

  it('defaults maxNumSeqs to vLLM 0.10\'s largest default, 1024 (H100-class GPUs; vllm/engine/arg_utils.py _set_default_args_v1), so an untold EPP predicts no wait below it', () => {
    expect(DEFAULT_MAX_NUM_SEQS).toBe(1024);
    const model = new PodLatencyModel(OPTIONS);
    finished(model, 0.8);
    expect(model.stats(2).slots).toBe(1024);
    expect(model.predict(0, EMPTY_METRICS, 2, 1023).slotWaitSeconds).toBe(0);
    expect(model.predict(0, EMPTY_METRICS, 2, 1024).slotWaitSeconds).toBeGreaterThan(0);
  });
});

describe('vllm-metrics: the latency model\'s engine counters', () => {
  // As vLLM 0.10's prometheus_client serves them: counters with `_total`, two engines (data parallel) of one model.
  const page = [
    '# HELP vllm:num_requests_waiting Number of requests waiting to be processed.',
    '# TYPE vllm:num_requests_waiting gauge',
    'vllm:num_requests_waiting{engine="0",model_name="qwen"} 1.0',
    'vllm:num_requests_waiting{engine="1",model_name="qwen"} 0.0',
    '# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.',
    '# TYPE vllm:prefix_cache_queries_total counter',
    'vllm:prefix_cache_queries_total{engine="0",model_name="qwen"} 9000.0',
    'vllm:prefix_cache_queries_total{engine="1",model_name="qwen"} 1000.0',
    '# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.',
    '# TYPE vllm:prefix_cache_hits_total counter',
    'vllm:prefix_cache_hits_total{engine="0",model_name="qwen"} 6000.0',
    'vllm:prefix_cache_hits_total{engine="1",model_name="qwen"} 500.0',
    '# HELP vllm:gpu_prefix_cache_queries_total GPU prefix cache queries, in terms of number of queried tokens.',
    '# TYPE vllm:gpu_prefix_cache_queries_total counter',
    'vllm:gpu_prefix_cache_queries_total{engine="0",model_name="qwen"} 1.0',
    '# HELP vllm:gpu_prefix_cache_hits_total GPU prefix cache hits, in terms of number of cached tokens.',
    '# TYPE vllm:gpu_prefix_cache_hits_total counter',
    'vllm:gpu_prefix_cache_hits_total{engine="0",model_name="qwen"} 1.0',
    '# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.',
    '# TYPE vllm:time_to_first_token_seconds histogram',
    'vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="qwen"} 10.0',
    'vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="qwen"} 12.0',
    'vllm:time_to_first_token_seconds_count{engine="0",model_name="qwen"} 12.0',
    'vllm:time_to_first_token_seconds_sum{engine="0",model_name="qwen"} 1.5',
    'vllm:time_to_first_token_seconds_bucket{engine="1",le="0.1",model_name="qwen"} 3.0',
    'vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="qwen"} 3.0',
    'vllm:time_to_first_token_seconds_count{engine="1",model_name="qwen"} 3.0',
    'vllm:time_to_first_token_seconds_sum{engine="1",model_name="qwen"} 0.25',
    'vllm:time_to_first_token_seconds_count{engine="0",model_name="other"} 100.0',
    'vllm:time_to_first_token_seconds_sum{engine="0",model_name="other"} 100.0',
    '# HELP vllm:request_inference_time_seconds Histogram of time spent in RUNNING phase for request.',
    '# TYPE vllm:request_inference_time_seconds histogram',
    'vllm:request_inference_time_seconds_bucket{engine="0",le="+Inf",model_name="qwen"} 10.0',
    'vllm:request_inference_time_seconds_count{engine="0",model_name="qwen"} 10.0',
    'vllm:request_inference_time_seconds_sum{engine="0",model_name="qwen"} 7.5',
    'vllm:request_inference_time_seconds_count{engine="1",model_name="qwen"} 2.0',
    'vllm:request_inference_time_seconds_sum{engine="1",model_name="qwen"} 0.5',
    'vllm:request_inference_time_seconds_count{engine="0",model_name="other"} 50.0',
    'vllm:request_inference_time_seconds_sum{engine="0",model_name="other"} 50.0',
    '',
  ].join('\n');

  it('sums the TTFT and inference-time histograms\' _count/_sum and the prefix-cache counters over engines, preferring the 0.10 names', () => {
    const r = parseVllmMetrics(page, { modelName: 'qwen' });
    expect(r).toMatchObject({ firstTokenCount: 15, firstTokenSecondsSum: 1.75, prefixCacheQueryTokens: 10000, prefixCacheHitTokens: 6500 });
    expect(r).toMatchObject({ inferenceCount: 12, inferenceSecondsSum: 8 });
    expect(r.issues).toEqual([]);
  });

  it('reads vllm:request_prompt_tokens _count/_sum (prompt tokens of finished requests) from the simulator\'s page, through the byte path too', () => {
    // Three requests of 51 prompt tokens in all (fixtures/sim-metrics-page.txt, kvroute-sim 2026-11-29).
    const simPage = fs.readFileSync(path.join(__dirname, 'fixtures', 'sim-metrics-page.txt'));
    const expected = { promptTokensCount: 3, promptTokensSum: 51 };
    expect(parseVllmMetrics(simPage.toString('utf8'), { modelName: 'Qwen/Qwen3-0.6B' })).toMatchObject(expected);
    expect(new VllmPageReader({ modelName: 'Qwen/Qwen3-0.6B' }).readBytes(simPage)).toMatchObject(expected);
    expect(parseVllmMetrics(simPage.toString('utf8'), { modelName: 'another-model' }).promptTokensCount).toBeUndefined();
    const carried = applyReading(EMPTY_METRICS, parseVllmMetrics(simPage.toString('utf8')), 5);
    expect(carried).toMatchObject(expected);
    expect(applyReading(carried, parseVllmMetrics('vllm:num_requests_waiting 2\n'), 6).promptTokensCount).toBeUndefined();
  });

  it('falls back to the gpu_ names of vLLM before 0.10, and leaves the fields absent when the page has none', () => {
    const old = page.split('\n').filter((l) => !/vllm:prefix_cache_/.test(l)).join('\n');
    expect(parseVllmMetrics(old, { modelName: 'qwen' })).toMatchObject({ prefixCacheQueryTokens: 1, prefixCacheHitTokens: 1 });
    const bare = parseVllmMetrics('vllm:num_requests_waiting 2\n');
    expect(bare.firstTokenCount).toBeUndefined();
    expect(bare.prefixCacheQueryTokens).toBeUndefined();
  });

  it('carries the counters into the endpoint\'s metrics, and drops them when a later page lacks them', () => {
    const withCounters = applyReading(EMPTY_METRICS, parseVllmMetrics(page, { modelName: 'qwen' }), 5);
    expect(withCounters).toMatchObject({ waitingQueueSize: 1, firstTokenCount: 15, prefixCacheHitTokens: 6500, inferenceCount: 12, inferenceSecondsSum: 8, updateTime: 5 });
    const without = applyReading(withCounters, parseVllmMetrics('vllm:num_requests_waiting 2\n'), 6);
    expect(without.firstTokenCount).toBeUndefined();
    expect(without.inferenceCount).toBeUndefined();
    expect(without.waitingQueueSize).toBe(2);
  });
});
