import { seededRandom } from '@kvroute/testkit';
import { ConfigError, defaultEndpointPickerConfig, parseEndpointPickerConfig, prefixFirstEndpointPickerConfig, withoutNoHitLru, type EndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { NOOP_SCHEDULING_METRICS, type SchedulingMetrics } from '../src/scheduling/metrics-hooks';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { SchedulingError, type LLMRequest, type SchedulingErrorReason } from '../src/scheduling/types';

const NOW = 1_700_000_000_000;
const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

interface PodState extends Partial<EndpointMetrics> {
  active?: number;
  labels?: Record<string, string>;
}

function pod(name: string, state: PodState = {}): EndpointSnapshot {
  const { active = 0, labels = {}, ...metrics } = state;
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels },
    metrics: { ...EMPTY_METRICS, updateTime: NOW, ...metrics },
    activeRequests: active,
  };
}

function request(prompt: string, headers: Record<string, string> = {}): LLMRequest {
  return { requestId: 'r', model: MODEL, prompt, headers };
}

/** Distinct 64-character blocks, so prompts share exactly the blocks we choose. */
function blocks(label: string, count: number): string {
  return Array.from({ length: count }, (_, i) => `${label}-${i}-`.padEnd(64, '.')).join('');
}

function reasonOf(call: () => unknown): SchedulingErrorReason {
  try {
    call();
  } catch (error) {
    if (error instanceof SchedulingError) return error.reason;
    throw error;
  }
  throw new Error('expected a SchedulingError');
}

/**
 * The prefix-first config's filters and its prefix and load weights (the default without its `latency-scorer`, whose
 * learned predictions are tested in plugin-latency-scorer.test.ts). Without its `no-hit-lru-scorer`, which ranks only
 * requests no pod caches by the order pods last took one (learned at pre-request, which these scheduler-only cycles
 * never run): its effect on the default is tested in plugin-no-hit-lru.test.ts.
 */
function defaultScheduler(metrics: SchedulingMetrics = NOOP_SCHEDULING_METRICS): Scheduler {
  return buildScheduler(withoutNoHitLru(prefixFirstEndpointPickerConfig()), { now: () => NOW, random: seededRandom(1), metrics });
}

describe('the prefix-first config on synthetic pools', () => {
  it('avoids a loaded pod, with the weighted totals the weights predict', () => {
    const scheduler = defaultScheduler();
    const pool = [pod('busy', { waitingQueueSize: 3, kvCacheUsagePercent: 0.6, active: 8 }), pod('idle', { kvCacheUsagePercent: 0.1, active: 1 })];
    const result = scheduler.schedule(request(blocks('p', 4)), pool);
    expect(result.target.endpoint.name).toBe('idle');
    expect(result.profile).toBe('default');
    expect(result.targets).toEqual([result.target]);
    // busy: prefix 0 + queue 0 + kv (1 − 0.6) + active 0;  idle: 0 + 1 + (1 − 0.1) + (8 − 1) / 8
    expect(result.scores.get('busy:8000')).toBeCloseTo(0.4, 12);
    expect(result.scores.get('idle:8000')).toBeCloseTo(1 + 0.9 + 7 / 8, 12);
    for (let i = 0; i < 50; i++) {
      expect(scheduler.schedule(request(blocks(`q${i}`, 4)), pool).target.endpoint.name).toBe('idle');
    }
  });

  it('keeps a long shared prefix on its pod under mild load, but lets a short one go to an idle pod', () => {
    const scheduler = defaultScheduler();
    const shared = blocks('system', 40);
    const holder = scheduler.schedule(request(shared), [pod('a'), pod('b'), pod('c')]).target.endpoint.name;
    const mildlyLoaded = (name: string) =>
      name === holder ? pod(name, { waitingQueueSize: 1, kvCacheUsagePercent: 0.3, active: 2 }) : pod(name, { kvCacheUsagePercent: 0.1 });
    const pool = ['a', 'b', 'c'].map(mildlyLoaded);

    // 40 of 42 blocks cached: 3 × 40/42 ≈ 2.86 + kv 0.7 beats an idle pod's 1 + 0.9 + 1 = 2.9.
    const followUp = scheduler.schedule(request(shared + blocks('question', 2)), pool);
    expect(followUp.target.endpoint.name).toBe(holder);
    expect(followUp.scores.get(`${holder}:8000`)).toBeCloseTo((3 * 40) / 42 + 0.7, 12);

    // 10 of 40 blocks cached: 3 × 10/40 + 0.7 = 1.45 loses to 2.9.
    const unrelated = scheduler.schedule(request(blocks('system', 10) + blocks('other', 30)), pool);
    expect(unrelated.target.endpoint.name).not.toBe(holder);
  });

  it("fails with 'saturated' (429) when every pod is over a threshold, with 'no-endpoints' (503) when every scrape fails, 'metrics-late' when the scraper is behind", () => {
    const scheduler = defaultScheduler();
    expect(reasonOf(() => scheduler.schedule(request('hi'), [pod('a', { waitingQueueSize: 6 }), pod('b', { kvCacheUsagePercent: 0.95 })]))).toBe('saturated');
    expect(reasonOf(() => scheduler.schedule(request('hi'), [pod('a', { updateTime: NOW - 5_000, consecutiveFailures: 1 }), pod('b', { updateTime: 0, consecutiveFailures: 4 })]))).toBe('no-endpoints');
    // Old metrics that no failed scrape explains: the scraper is behind, and flow control waits for it.
    expect(reasonOf(() => scheduler.schedule(request('hi'), [pod('a', { updateTime: NOW - 2_000 }), pod('b', { updateTime: 0 })]))).toBe('metrics-late');
    expect(reasonOf(() => scheduler.schedule(request('hi'), [pod('a', { updateTime: NOW - 5_000 }), pod('b', { waitingQueueSize: 6 })]))).toBe('saturated');
  });

  it('keeps a saturated pod that holds the whole prefix as a candidate while another has room (admission mode); filter mode routes around it', () => {
    const prompt = blocks('doc', 20);
    const pick = (config: EndpointPickerConfig): { holder: string; next: string } => {
      const scheduler = buildScheduler(config, { now: () => NOW, random: seededRandom(1) });
      const holder = scheduler.schedule(request(prompt), [pod('a'), pod('b')]).target.endpoint.name;
      const pool = [pod('a'), pod('b')].map((p) => (p.endpoint.name === holder ? pod(holder, { waitingQueueSize: 9 }) : p));
      return { holder, next: scheduler.schedule(request(prompt), pool).target.endpoint.name };
    };
    const admission = pick(withoutNoHitLru(prefixFirstEndpointPickerConfig()));
    expect(admission.next).toBe(admission.holder);
    const base = withoutNoHitLru(prefixFirstEndpointPickerConfig());
    const filter = pick({ ...base, plugins: base.plugins.map((p) => (p.type === 'saturation-filter' ? { ...p, parameters: { ...p.parameters, mode: 'filter' as const } } : p)) });
    expect(filter.next).not.toBe(filter.holder);
  });

  it('runs GIE\'s weighted-random-picker from a loaded config: every pick among the scored pods, the best-scored most often', () => {
    const config = parseEndpointPickerConfig([
      'apiVersion: inference.networking.x-k8s.io/v1alpha1', 'kind: EndpointPickerConfig', 'plugins:',
      '- type: queue-scorer', '- type: weighted-random-picker',
      'schedulingProfiles:', '- name: default', '  plugins:', '  - pluginRef: queue-scorer', '  - pluginRef: weighted-random-picker',
    ].join('\n'));
    const scheduler = buildScheduler(config, { now: () => NOW, random: seededRandom(3) });
    // queue-scorer: the emptiest queue 1, the fullest 0 (never picked while another scores above 0).
    const pool = [pod('idle'), pod('busy', { waitingQueueSize: 4 }), pod('full', { waitingQueueSize: 8 })];
    const counts = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const name = scheduler.schedule(request(`r${i}`), pool).target.endpoint.name;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    expect(counts.get('full')).toBeUndefined();
    expect(counts.get('idle')!).toBeGreaterThan(counts.get('busy')!);
    expect(counts.get('busy')!).toBeGreaterThan(0);
  });

  it('takes a negative weight as a penalty, as upstream takes any float64 weight (llm-d-router v0.10.0 config/loader/configloader.go)', () => {
    const config = parseEndpointPickerConfig([
      'apiVersion: llm-d.ai/v1alpha1', 'kind: EndpointPickerConfig', 'plugins:',
      '- type: queue-scorer', '- type: kv-cache-utilization-scorer', '- type: max-score-picker',
      'schedulingProfiles:', '- name: default', '  plugins:',
      '  - pluginRef: queue-scorer', '    weight: -2', '  - pluginRef: kv-cache-utilization-scorer', '  - pluginRef: max-score-picker',
    ].join('\n'));
    expect(config.schedulingProfiles[0]!.plugins[0]).toEqual({ pluginRef: 'queue-scorer', weight: -2 });
    const scheduler = buildScheduler(config, { now: () => NOW, random: seededRandom(3) });
    // Totals: queued −2 × 0 + 0.9 = 0.9 against empty −2 × 1 + 0.5 = −1.5: the penalty outweighs the free cache.
    const pool = [pod('empty', { kvCacheUsagePercent: 0.5 }), pod('queued', { waitingQueueSize: 4, kvCacheUsagePercent: 0.1 })];
    expect(scheduler.schedule(request('hi'), pool).target.endpoint.name).toBe('queued');
  });

  it("fails with 'no-endpoints' for an empty pool or a pool without decode pods", () => {
    const scheduler = defaultScheduler();
    expect(reasonOf(() => scheduler.schedule(request('hi'), []))).toBe('no-endpoints');
    const prefillOnly = [pod('p1', { labels: { 'llm-d.ai/role': 'prefill' } })];
    expect(reasonOf(() => scheduler.schedule(request('hi'), prefillOnly))).toBe('no-endpoints');
  });

  it('forgets prefixes cached on a removed endpoint', () => {
    const scheduler = defaultScheduler();
    const prompt = blocks('doc', 8);
    const holder = scheduler.schedule(request(prompt), [pod('a'), pod('b')]).target.endpoint.key;
    expect(scheduler.schedule(request(prompt), [pod('a'), pod('b')]).scores.get(holder)).toBeCloseTo(3 + 3, 12);
    scheduler.plugins.removeEndpoint(holder);
    const scores = scheduler.schedule(request(blocks('fresh', 8)), [pod('a'), pod('b')]).scores;
    expect(scores.get(holder)).toBeCloseTo(3, 12);
    expect(scheduler.schedule(request(prompt), [pod('a'), pod('b')]).scores.get(holder)).toBeLessThan(6);
  });

  it('forgets prefixes cached on an endpoint whose model server restarted, and keeps the other endpoints\' (prefix-cache-scorer)', () => {
    const scheduler = defaultScheduler();
    const pods = [pod('a'), pod('b')];
    const prompt = blocks('doc', 8);
    const holder = scheduler.schedule(request(prompt), pods).target.endpoint.key;
    const other = pods.map((p) => p.endpoint.key).find((k) => k !== holder)!;
    const elsewhere = blocks('other', 8);
    // Two picks of `elsewhere` with the holder loaded: the second finds it on the other pod.
    const loaded = pods.map((p) => (p.endpoint.key === holder ? pod(p.endpoint.name, { waitingQueueSize: 4, active: 4 }) : p));
    scheduler.schedule(request(elsewhere), loaded.filter((p) => p.endpoint.key === other));
    expect(scheduler.schedule(request(prompt), pods).scores.get(holder)).toBeCloseTo(3 + 3, 12);
    scheduler.plugins.endpointRestarted(holder, NOW);
    // The holder's entries are gone: the document scores as a miss everywhere (the no-hit LRU's points, no prefix).
    expect(scheduler.schedule(request(prompt), pods).scores.get(holder)).toBeLessThan(6);
    expect(scheduler.schedule(request(elsewhere), pods).scores.get(other)).toBeGreaterThanOrEqual(3);
    const prefix = scheduler.plugin('prefix-cache-scorer') as PrefixCacheScorer;
    expect(prefix.stats().indexedEndpoints).toBe(2);
  });
});

describe('scheduler mechanics', () => {
  it('times every plugin call, counts picks and failures, and times whole cycles', () => {
    const calls: string[] = [];
    let tick = 0;
    const metrics: SchedulingMetrics = {
      ...NOOP_SCHEDULING_METRICS,
      observePluginDuration: (point, type, name, seconds) => calls.push(`${point} ${type === name ? name : `${type}/${name}`} ${seconds}`),
      observeSchedulingDuration: (seconds) => calls.push(`cycle ${seconds > 0}`),
      countPick: (key) => calls.push(`pick ${key}`),
      countSchedulingFailure: (reason) => calls.push(`failure ${reason}`),
    };
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), {
      now: () => NOW,
      random: () => 0,
      metrics,
      monotonicSeconds: () => (tick += 0.001),
    });
    scheduler.schedule(request('hi'), [pod('a')]);
    // Extension points as GIE v1.5.0 names them (pkg/epp/scheduling/scheduler.go): the handler's pick runs until it
    // returns no profile (ProfilePicker), its result processing once (ProcessProfilesResults).
    expect(calls.map((call) => call.replace(/ 0\.00\d+$/, ''))).toEqual([
      'ProfilePicker single-profile-handler',
      'Filter decode-filter',
      'Filter saturation-filter',
      'Filter session-affinity-filter',
      'Scorer prefix-cache-scorer',
      'Scorer no-hit-lru-scorer',
      'Scorer queue-scorer',
      'Scorer kv-cache-utilization-scorer',
      'Scorer active-request-scorer',
      'Scorer latency-scorer',
      'Scorer session-load-scorer',
      'Picker max-score-picker',
      'PostCycle session-affinity-filter',
      'PostCycle prefix-cache-scorer',
      'PostCycle session-load-scorer',
      'ProfilePicker single-profile-handler',
      'ProcessProfilesResults single-profile-handler',
      'pick a:8000',
      'cycle true',
    ]);
    calls.length = 0;
    expect(() => scheduler.schedule(request('hi'), [pod('a', { waitingQueueSize: 99 })])).toThrow(SchedulingError);
    expect(calls.slice(-2)).toEqual(['failure saturated', 'cycle true']);
  });

  it('clamps scores to [0, 1] and treats NaN as 0', () => {
    const scheduler = buildScheduler(
      parseEndpointPickerConfig(
        'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n',
      ),
      {
        factories: { 'queue-scorer': (name) => ({ type: 'queue-scorer', name, score: () => [5, Number.NaN, -1, 0.25] }) },
      },
    );
    const scores = scheduler.schedule(request('hi'), [pod('a'), pod('b'), pod('c'), pod('d')]).scores;
    expect([...scores.values()]).toEqual([1, 0, 0, 0.25]);
  });

  it('returns several targets, best first, when the picker is asked for more than one', () => {
    const scheduler = buildScheduler(
      parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: max-score-picker
  parameters: {maxNumOfEndpoints: 2}
`),
    );
    const result = scheduler.schedule(request('hi'), [pod('a', { waitingQueueSize: 4 }), pod('b'), pod('c', { waitingQueueSize: 2 })]);
    expect(result.targets!.map((t) => t.endpoint.name)).toEqual(['b', 'c']);
    expect(result.target.endpoint.name).toBe('b');
  });

  it('only schedules: request hooks are left to request control, which finds them by declared kind', () => {
    const scheduler = buildScheduler(
      parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-scorer
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`),
    );
    expect(scheduler.schedule(request('hi'), [pod('a')]).target.endpoint.name).toBe('a');
    expect(scheduler.plugins.ofKind('post-response').map((p) => p.name)).toEqual(['session-affinity-scorer']);
    expect(scheduler.plugins.ofKind('pre-request')).toEqual([]);
    expect('preRequest' in scheduler || 'postResponse' in scheduler).toBe(false);
  });

  it('validates the config it is given', () => {
    const config = defaultEndpointPickerConfig();
    config.schedulingProfiles[0]!.plugins.push({ pluginRef: 'missing' });
    expect(() => buildScheduler(config)).toThrow(ConfigError);
  });
});
