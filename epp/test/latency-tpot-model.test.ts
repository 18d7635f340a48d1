/**
 * The TPOT model (`src/latency/pod-tpot-model.ts`): a per-pod line `TPOT = i + s · batch` fitted from the inter-token
 * histogram's `_count`/`_sum` deltas between scrapes, with a prior before data and the pool's line for a pod not
 * observed for a while; no prediction at all while no pod has reported the histogram.
 */
import { EMPTY_METRICS, endpointMetrics, type EndpointMetrics } from '../src/datastore/types';
import { DEFAULT_TPOT_PRIOR, MAX_INTERVAL_TOKENS, TpotModel } from '../src/latency/pod-tpot-model';
import { parseEndpointPickerConfig } from '../src/config';
import type { LatencyScorer } from '../src/scheduling/plugins/latency-scorer';
import { buildScheduler } from '../src/scheduling/scheduler';

const HALF_LIFE_MS = 60_000;
const options = { ...DEFAULT_TPOT_PRIOR, halfLifeMs: HALF_LIFE_MS };

/** A pod whose decode steps cost `intercept + slope · batch` seconds, scraped by `scrape(running, tokens)`. */
function pod(intercept: number, slope: number, engines = 1) {
  let count = 0;
  let sum = 0;
  let t = 0;
  return {
    scrape(running: number, tokens: number): EndpointMetrics {
      count += tokens;
      sum += tokens * (intercept + slope * (running / engines));
      t += 100;
      return endpointMetrics({ ...EMPTY_METRICS, runningQueueSize: running, engines, interTokenCount: count, interTokenSecondsSum: sum, updateTime: t });
    },
    get now() {
      return t;
    },
  };
}

describe('TpotModel (pod-tpot-model.ts)', () => {
  test('recovers a known linear cost from synthetic scrape pairs (y = Δsum/Δcount, x = the batch over the interval)', () => {
    const model = new TpotModel(options);
    const truth = pod(0.012, 0.0006);
    // Batches from 1 to 96, steady within each pair of scrapes.
    for (let k = 0; k < 200; k++) {
      const running = 1 + ((k * 37) % 96);
      model.ingest('a', truth.scrape(running, 0), truth.now);
      model.ingest('a', truth.scrape(running, 500), truth.now);
    }
    const line = model.pod('a').line(truth.now);
    expect(line.intercept).toBeCloseTo(0.012, 3);
    expect(line.slope).toBeCloseTo(0.0006, 5);
    // A candidate running 40 with this EPP's 10 in flight: batch 40 + 1.
    const m = endpointMetrics({ ...EMPTY_METRICS, runningQueueSize: 40, interTokenCount: 1, interTokenSecondsSum: 0, updateTime: truth.now });
    expect(model.predictSeconds('a', m, 10, truth.now)! * 1000).toBeCloseTo(12 + 0.6 * 41, 0);
    // This EPP's count wins when it is the larger (picks since the scrape).
    expect(model.predictSeconds('a', m, 60, truth.now)! * 1000).toBeCloseTo(12 + 0.6 * 61, 0);
  });

  test('a data-parallel pod: the batch is per engine (the gauges are summed over engines)', () => {
    const model = new TpotModel(options);
    const truth = pod(0.01, 0.001, 2);
    for (let k = 0; k < 100; k++) {
      const running = 2 + ((k * 13) % 60);
      model.ingest('dp', truth.scrape(running, 0), truth.now);
      model.ingest('dp', truth.scrape(running, 400), truth.now);
    }
    expect(model.pod('dp').line(truth.now).slope).toBeCloseTo(0.001, 4);
  });

  test('weight is Δcount, capped per interval; counters that went back start a new baseline without an observation', () => {
    const model = new TpotModel(options);
    const base = { ...EMPTY_METRICS, runningQueueSize: 4 };
    model.ingest('a', endpointMetrics({ ...base, interTokenCount: 1000, interTokenSecondsSum: 20, updateTime: 1 }), 1);
    model.ingest('a', endpointMetrics({ ...base, interTokenCount: 10, interTokenSecondsSum: 0.2, updateTime: 2 }), 2);
    expect(model.pod('a').fit.count).toBe(0);
    model.ingest('a', endpointMetrics({ ...base, interTokenCount: 10 + 10 * MAX_INTERVAL_TOKENS, interTokenSecondsSum: 0.2 + 10 * MAX_INTERVAL_TOKENS * 0.03, updateTime: 3 }), 3);
    expect(model.pod('a').fit.count).toBe(1);
    expect(model.pod('a').fit.dataWeight(3)).toBeLessThanOrEqual(MAX_INTERVAL_TOKENS);
  });

  test('before data: the prior (20 ms + 0.2 ms per running request); the same scrape twice is one reading', () => {
    const model = new TpotModel(options);
    const m = endpointMetrics({ ...EMPTY_METRICS, runningQueueSize: 9, interTokenCount: 0, interTokenSecondsSum: 0, updateTime: 5 });
    model.ingest('a', m, 5);
    model.ingest('a', m, 5);
    expect(model.reported).toBe(true);
    expect(model.predictSeconds('a', m, 0, 5)! * 1000).toBeCloseTo(20 + 0.2 * 10, 9);
  });

  test('no pod has reported the histogram: no prediction at all (the producer neutralizes TPOT)', () => {
    const model = new TpotModel(options);
    const m = endpointMetrics({ ...EMPTY_METRICS, runningQueueSize: 9, updateTime: 5 });
    model.ingest('a', m, 5);
    expect(model.reported).toBe(false);
    expect(model.predictSeconds('a', m, 3, 5)).toBeUndefined();
  });

  test('a pod with no data of its own starts on the pool\'s line, not the prior', () => {
    const model = new TpotModel(options);
    const a = pod(0.03, 0.001);
    const b = pod(0.03, 0.001);
    for (let k = 0; k < 100; k++) {
      const running = 1 + (k % 50);
      model.ingest('a', a.scrape(running, 0), a.now);
      model.ingest('a', a.scrape(running, 300), a.now);
      model.ingest('b', b.scrape(running, 0), b.now);
      model.ingest('b', b.scrape(running, 300), b.now);
    }
    const now = a.now;
    const fresh = endpointMetrics({ ...EMPTY_METRICS, runningQueueSize: 19, interTokenCount: 0, interTokenSecondsSum: 0, updateTime: now });
    model.ingest('new', fresh, now);
    const pool = model.referenceLine(now)!;
    expect(pool.intercept).toBeCloseTo(0.03, 3);
    expect(model.predictSeconds('new', fresh, 0, now)!).toBeCloseTo(pool.intercept + pool.slope * 20, 9);
    expect(model.predictSeconds('new', fresh, 0, now)! * 1000).toBeGreaterThan(40); // the prior would say 24 ms
  });

  test('a pod not observed for a while is pulled toward the pool\'s line', () => {
    const model = new TpotModel(options);
    const slow = pod(0.1, 0.002);
    const a = pod(0.02, 0.0005);
    const b = pod(0.02, 0.0005);
    for (let k = 0; k < 60; k++) {
      const running = 1 + (k % 30);
      model.ingest('slow', slow.scrape(running, 0), slow.now);
      model.ingest('slow', slow.scrape(running, 300), slow.now);
    }
    const before = model.pod('slow').line(slow.now).intercept;
    expect(before).toBeGreaterThan(0.08);
    // The slow pod stops producing tokens; the others go on for two half-lives.
    for (let k = 0; k < 1200; k++) {
      const running = 1 + (k % 30);
      model.ingest('a', a.scrape(running, 0), a.now + 6_000);
      model.ingest('a', a.scrape(running, 300), a.now + 6_000);
      model.ingest('b', b.scrape(running, 0), b.now + 6_000);
      model.ingest('b', b.scrape(running, 300), b.now + 6_000);
    }
    const after = model.pod('slow').line(a.now + 6_000).intercept;
    expect(after).toBeLessThan(0.03);
  });
});

describe('the latency-scorer feeds the TPOT model from the scrapes it learns TTFT from', () => {
  test('only once a reader wants it (the default config lists no predicted-latency-producer: nothing is fed)', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: latency-scorer\n- type: max-score-picker\n'
      + 'schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: latency-scorer\n  - pluginRef: max-score-picker\n'), { now: () => 1000 });
    const scorer = scheduler.plugin('latency-scorer') as unknown as LatencyScorer;
    const snapshot = (updateTime: number, count: number) => ({
      endpoint: { key: 'a:8000', name: 'a', namespace: '', address: 'a', port: 8000, labels: {} },
      metrics: endpointMetrics({ ...EMPTY_METRICS, runningQueueSize: 4, interTokenCount: count, interTokenSecondsSum: count * 0.05, updateTime }),
      activeRequests: 0,
    });
    const request = { requestId: 'r', model: 'm', prompt: 'p', headers: {} };
    scorer.predictTtftSeconds(request, undefined, [snapshot(1, 0)]);
    scorer.predictTtftSeconds(request, undefined, [snapshot(2, 1000)]);
    expect(scorer.tpotModel.reported).toBe(false);
    scorer.wantTpot();
    scorer.predictTtftSeconds(request, undefined, [snapshot(3, 1000)]);
    scorer.predictTtftSeconds(request, undefined, [snapshot(4, 2000)]);
    expect(scorer.tpotModel.reported).toBe(true);
    expect(scorer.tpotModel.get('a:8000')!.fit.count).toBe(1);
    expect(scorer.predictTpotSeconds([snapshot(4, 2000)])![0]).toBeGreaterThan(0.03);
  });
});
