import { resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, SILENT_PLUGIN_LOGGER, type CycleContext, type Filter, type PluginHandle } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS, type SaturationExclusionReason } from '../src/scheduling/metrics-hooks';
import { createPlugin } from '../src/scheduling/plugin';
import { ByLabelFilter, ROLE_LABEL } from '../src/scheduling/plugins/by-label';
import { decodeFilter } from '../src/scheduling/plugins/decode-filter';
import { headerBasedTestingFilter } from '../src/scheduling/plugins/header-based-testing-filter';
import { byLabelSelector, labelSelectorFilter } from '../src/scheduling/plugins/label-selector-filter';
import { prefillFilter } from '../src/scheduling/plugins/prefill-filter';
import { KV_LOADED_CANDIDATES, LATE_WINDOW_MS, LOADED_CANDIDATES, SaturationFilter } from '../src/scheduling/plugins/saturation-filter';

const NOW = 1_700_000_000_000;

const silentHandle: PluginHandle = { now: () => NOW, random: Math.random, metrics: NOOP_SCHEDULING_METRICS, logger: SILENT_PLUGIN_LOGGER };

function build(definition: Parameters<typeof createPlugin>[0], name: string): Filter {
  return createPlugin(definition, name, {}, silentHandle) as Filter;
}

function pod(name: string, options: { labels?: Record<string, string>; metrics?: Partial<EndpointMetrics> } = {}): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: options.labels ?? {} },
    metrics: { ...EMPTY_METRICS, updateTime: NOW, ...options.metrics },
    activeRequests: 0,
  };
}

const cycle: CycleContext = { request: { requestId: 'r', model: 'm', prompt: '', headers: {} }, state: new CycleState() };
const names = (endpoints: readonly EndpointSnapshot[]) => endpoints.map((e) => e.endpoint.name);

// llm-d-inference-scheduler v0.8.0 pkg/epp/framework/plugins/scheduling/filter/bylabel/roles.go: NewDecodeRole,
// NewPrefillRole.
describe('role filters', () => {
  const pods = [
    pod('decode', { labels: { [ROLE_LABEL]: 'decode' } }),
    pod('both', { labels: { [ROLE_LABEL]: 'both' } }),
    pod('prefill', { labels: { [ROLE_LABEL]: 'prefill' } }),
    pod('plain'),
    pod('encode', { labels: { [ROLE_LABEL]: 'encode' } }),
    pod('prefill-decode', { labels: { [ROLE_LABEL]: 'prefill-decode' } }),
    pod('encode-prefill', { labels: { [ROLE_LABEL]: 'encode-prefill' } }),
    pod('encode-prefill-decode', { labels: { [ROLE_LABEL]: 'encode-prefill-decode' } }),
    pod('odd', { labels: { [ROLE_LABEL]: 'router' } }),
  ];

  it('decode-filter keeps decode, both, prefill-decode, encode-prefill-decode and unlabelled pods', () => {
    const filter = build(decodeFilter, 'decode-filter');
    expect(names(filter.filter(cycle, pods))).toEqual(['decode', 'both', 'plain', 'prefill-decode', 'encode-prefill-decode']);
    expect(filter.type).toBe('decode-filter');
    expect(filter.emptyResultReason).toBe('no-endpoints');
  });

  it('prefill-filter keeps the roles that prefill, never unlabelled pods', () => {
    expect(names(build(prefillFilter, 'prefill-filter').filter(cycle, pods)))
      .toEqual(['both', 'prefill', 'prefill-decode', 'encode-prefill', 'encode-prefill-decode']);
  });

  it('by-label matches the valid values and, if allowed, unlabelled pods', () => {
    const strict = new ByLabelFilter('gpu', resolvePluginParameters('by-label', { label: 'gpu', validValues: ['a100', 'h100'] }));
    const lenient = new ByLabelFilter('gpu', resolvePluginParameters('by-label', { label: 'gpu', validValues: ['h100'], allowsNoLabel: true }));
    const gpus = [pod('a', { labels: { gpu: 'a100' } }), pod('h', { labels: { gpu: 'h100' } }), pod('l', { labels: { gpu: 'l4' } }), pod('none')];
    expect(names(strict.filter(cycle, gpus))).toEqual(['a', 'h']);
    expect(names(lenient.filter(cycle, gpus))).toEqual(['h', 'none']);
  });

  it('by-label takes "" among validValues, which keeps unlabelled pods and pods labelled "" (llm-d-router v0.10.0 filter/bylabel/filter.go: a missing label reads as "")', () => {
    const blank = new ByLabelFilter('gpu', resolvePluginParameters('by-label', { label: 'gpu', validValues: ['', 'h100'] }));
    const gpus = [pod('a', { labels: { gpu: 'a100' } }), pod('h', { labels: { gpu: 'h100' } }), pod('e', { labels: { gpu: '' } }), pod('none')];
    expect(names(blank.filter(cycle, gpus))).toEqual(['h', 'e', 'none']);
  });

  it('label-selector-filter (llm-d-router filter/bylabel/selector.go @ v0.10.0; by-label-selector, its deprecated name) keeps pods matching a Kubernetes label selector, as apimachinery matches one', () => {
    const pods = [
      pod('decode-h100', { labels: { 'llm-d.ai/role': 'decode', gpu: 'h100' } }),
      pod('decode-a100', { labels: { 'llm-d.ai/role': 'decode', gpu: 'a100' } }),
      pod('prefill', { labels: { 'llm-d.ai/role': 'prefill', gpu: 'h100' } }),
      pod('bare'),
    ];
    const run = (parameters: object, type?: 'by-label-selector') => {
      const f = createPlugin(type === 'by-label-selector' ? byLabelSelector : labelSelectorFilter, 'sel', resolvePluginParameters(type ?? 'label-selector-filter', parameters), silentHandle) as Filter;
      return names(f.filter(cycle, pods));
    };
    // An empty selector is labels.Everything().
    expect(run({})).toEqual(['decode-h100', 'decode-a100', 'prefill', 'bare']);
    expect(run({ matchLabels: { 'llm-d.ai/role': 'decode' } })).toEqual(['decode-h100', 'decode-a100']);
    expect(run({ matchLabels: { 'llm-d.ai/role': 'decode' }, matchExpressions: [{ key: 'gpu', operator: 'NotIn', values: ['a100'] }] })).toEqual(['decode-h100']);
    // NotIn and DoesNotExist hold for a pod without the label; In and Exists do not.
    expect(run({ matchExpressions: [{ key: 'gpu', operator: 'NotIn', values: ['h100'] }] })).toEqual(['decode-a100', 'bare']);
    expect(run({ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] })).toEqual(['bare']);
    expect(run({ matchExpressions: [{ key: 'gpu', operator: 'Exists' }, { key: 'llm-d.ai/role', operator: 'In', values: ['prefill', 'decode'] }] })).toEqual(['decode-h100', 'decode-a100', 'prefill']);
    // The deprecated name builds the same filter and reports itself by that name.
    expect(run({ matchLabels: { gpu: 'h100' } }, 'by-label-selector')).toEqual(['decode-h100', 'prefill']);
    expect((createPlugin(byLabelSelector, 'old', resolvePluginParameters('by-label-selector', {}), silentHandle) as { type: string }).type).toBe('by-label-selector');
    // Malformed selectors are config errors naming the field (labels.NewRequirement's rules).
    expect(() => resolvePluginParameters('label-selector-filter', { matchExpressions: [{ key: 'gpu', operator: 'Equals', values: ['a'] }] })).toThrow(/matchExpressions\[0\]\.operator: "Equals" is not a valid label selector operator/);
    expect(() => resolvePluginParameters('label-selector-filter', { matchExpressions: [{ key: 'gpu', operator: 'In' }] })).toThrow(/matchExpressions\[0\]\.values: must be non-empty for operator In/);
    expect(() => resolvePluginParameters('label-selector-filter', { matchExpressions: [{ key: 'gpu', operator: 'Exists', values: ['x'] }] })).toThrow(/must be empty for operator Exists/);
    expect(() => resolvePluginParameters('label-selector-filter', { matchLabels: { gpu: 1 } })).toThrow(/matchLabels\.gpu: must be a string/);
    expect(() => resolvePluginParameters('label-selector-filter', { matchLabel: { gpu: 'a' } })).toThrow(/matchLabel/);
    // Label syntax, as apimachinery's IsQualifiedName / IsValidLabelValue check it.
    expect(() => resolvePluginParameters('label-selector-filter', { matchLabels: { 'bad key!': 'a' } })).toThrow(/matchLabels\.bad key!: "bad key!": a label key's name must be/);
    expect(() => resolvePluginParameters('label-selector-filter', { matchLabels: { 'Example.com/gpu': 'a' } })).toThrow(/prefix must be a DNS subdomain/);
    expect(() => resolvePluginParameters('label-selector-filter', { matchLabels: { gpu: '-h100' } })).toThrow(/"-h100" is not a label value/);
    expect(() => resolvePluginParameters('label-selector-filter', { matchExpressions: [{ key: 'a/b/c', operator: 'Exists' }] })).toThrow(/matchExpressions\[0\]\.key: "a\/b\/c"/);
    expect(() => resolvePluginParameters('label-selector-filter', { matchExpressions: [{ key: 'gpu', operator: 'In', values: ['x'.repeat(64)] }] })).toThrow(/is not a label value/);
    expect(resolvePluginParameters('label-selector-filter', { matchLabels: { 'llm-d.ai/role': 'decode', empty: '' } })).toMatchObject({ matchLabels: { 'llm-d.ai/role': 'decode', empty: '' } });
  });
});

describe('saturation-filter', () => {
  function saturationFilter(parameters: object = {}) {
    const excluded: SaturationExclusionReason[] = [];
    const handle: PluginHandle = {
      now: () => NOW,
      random: Math.random,
      metrics: { ...NOOP_SCHEDULING_METRICS, countSaturationExclusion: (reason) => excluded.push(reason) },
      logger: SILENT_PLUGIN_LOGGER,
    };
    const filter = new SaturationFilter('saturation', resolvePluginParameters('saturation-filter', parameters), handle);
    return { filter, excluded };
  }

  it('keeps endpoints at the thresholds and drops those above, counting why', () => {
    const { filter, excluded } = saturationFilter({ queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 });
    const pods = [
      pod('ok', { metrics: { waitingQueueSize: 5, kvCacheUsagePercent: 0.8 } }),
      pod('queued', { metrics: { waitingQueueSize: 6 } }),
      pod('full', { metrics: { kvCacheUsagePercent: 0.81 } }),
    ];
    expect(names(filter.filter(cycle, pods))).toEqual(['ok']);
    expect(excluded).toEqual(['queue', 'kv_cache']);
  });

  // Issue 9 (a backlog released after a stall is paced, never dumped): vLLM v0.10.0 `vllm/v1/core/sched/scheduler.py`
  // puts every arriving request in WAITING until a step schedules it, so requests routed since the last scrape are
  // queue that page cannot show yet.
  it('counts the requests routed to a pod since its last scrape as queue (countPicksSinceScrape, default on), in both modes', () => {
    for (const mode of ['filter', 'admission'] as const) {
      const { filter, excluded } = saturationFilter({ mode, queueDepthThreshold: 5 });
      const burst = (picks: number) => ({ ...pod(`p${picks}`, { metrics: { waitingQueueSize: 2 } }), netPicksSinceScrape: picks });
      const c = { request: cycle.request, state: new CycleState() };
      // 2 scraped + 3 routed since = 5 (at the threshold) stays; 2 + 4 = 6 is over it.
      expect(names(filter.filter(c, [burst(3), burst(4), pod('idle')]))).toEqual(mode === 'filter' ? ['p3', 'idle'] : ['p3', 'p4', 'idle']);
      if (mode === 'admission') expect([...c.state.get(LOADED_CANDIDATES)!]).toEqual(['p4:8000']);
      else expect(excluded).toEqual(['queue']);
      // When every pod is over it by what was routed since its scrape, the pool is saturated: the request waits.
      const full = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(full, [burst(4), { ...pod('idle'), netPicksSinceScrape: 6 }])).toEqual([]);
      expect(emptyReason(filter, full)).toBe('saturated');
    }
    // Off, the scraped page alone decides, as GIE's detector reads it.
    const { filter } = saturationFilter({ queueDepthThreshold: 5, countPicksSinceScrape: false });
    expect(names(filter.filter(cycle, [{ ...pod('busy', { metrics: { waitingQueueSize: 5 } }), netPicksSinceScrape: 40 }]))).toEqual(['busy']);
    expect(() => saturationFilter({ countPicksSinceScrape: 'yes' })).toThrow(/countPicksSinceScrape.*must be true or false, got "yes"/);
  });

  // As since-scrape-ledger.ts documents it: ends count as well as routes, because vLLM's waiting queue moves with both
  // (an ended request frees a running slot the next waiting one takes); counting routes alone capped a pod at
  // queueDepthThreshold + 1 requests per scrape interval however fast it served them.
  it('a pod whose page showed a queue over the threshold is kept once as many of this EPP\'s requests ended there since (net picks below 0)', () => {
    const { filter, excluded } = saturationFilter({ queueDepthThreshold: 5 });
    const drained = (net: number) => ({ ...pod(`net${net}`, { metrics: { waitingQueueSize: 7 } }), netPicksSinceScrape: net });
    // 7 scraped, 2 ended since: 5, at the threshold, stays; 1 ended: 6, over it.
    expect(names(filter.filter({ request: cycle.request, state: new CycleState() }, [drained(-2), drained(-1)]))).toEqual(['net-2']);
    expect(excluded).toEqual(['queue']);
  });

  it('drops endpoints with stale or never-scraped metrics (default bound 200ms)', () => {
    const { filter, excluded } = saturationFilter();
    const pods = [
      pod('fresh', { metrics: { updateTime: NOW - 200 } }),
      pod('stale', { metrics: { updateTime: NOW - 201 } }),
      pod('never', { metrics: { updateTime: 0 } }),
    ];
    expect(names(filter.filter(cycle, pods))).toEqual(['fresh']);
    expect(excluded).toEqual(['stale_metrics', 'stale_metrics']);
  });

  it('drops endpoints whose scrapes keep failing even while their last data is fresh', () => {
    const { filter, excluded } = saturationFilter({ maxConsecutiveScrapeFailures: 2, metricsStalenessThreshold: '1s' });
    const pods = [
      pod('flaky', { metrics: { consecutiveFailures: 2, updateTime: NOW - 100 } }),
      pod('down', { metrics: { consecutiveFailures: 3, updateTime: NOW - 100, waitingQueueSize: 50 } }),
    ];
    expect(names(filter.filter(cycle, pods))).toEqual(['flaky']);
    expect(excluded).toEqual(['scrape_failures']);
  });

  const emptyReason = (filter: SaturationFilter, c: CycleContext) =>
    (typeof filter.emptyResultReason === 'function' ? filter.emptyResultReason(c) : filter.emptyResultReason);

  it('returns nothing when every endpoint is saturated, and says so (the scheduler turns that into a 429)', () => {
    const { filter } = saturationFilter();
    const c = { request: cycle.request, state: new CycleState() };
    expect(filter.filter(c, [pod('a', { metrics: { waitingQueueSize: 9 } }), pod('b', { metrics: { consecutiveFailures: 9 } })])).toEqual([]);
    expect(emptyReason(filter, c)).toBe('saturated');
  });

  it('when every endpoint\'s scrapes are failing (all pods gone), that is no endpoint (503), not saturation (429)', () => {
    const { filter } = saturationFilter();
    const c = { request: cycle.request, state: new CycleState() };
    // Stale with a failed scrape since (a refused connection fails at once; a hung pod at the scrape timeout).
    expect(filter.filter(c, [pod('a', { metrics: { consecutiveFailures: 9 } }), pod('b', { metrics: { updateTime: NOW - 5_000, consecutiveFailures: 1 } })])).toEqual([]);
    expect(emptyReason(filter, c)).toBe('no-endpoints');
  });

  // GIE v1.5.0 saturationdetector/utilization/detector.go Saturation: a pod with stale metrics counts as full, and
  // flow control holds requests while the pool is full; kvroute reserves 503 for pods whose scrapes fail.
  it('when some endpoint is dropped only because its metrics are late (old, no failed scrape: the scraper is behind), that is metrics-late (flow control waits), in both modes', () => {
    for (const mode of ['filter', 'admission'] as const) {
      const { filter, excluded } = saturationFilter({ mode });
      const late = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(late, [pod('gone', { metrics: { consecutiveFailures: 9 } }), pod('late', { metrics: { updateTime: NOW - 2_000 } })])).toEqual([]);
      expect(emptyReason(filter, late)).toBe('metrics-late');
      // Past the late window (staleness + LATE_WINDOW_MS) the scraper is stuck, not behind; a pod never scraped has
      // nothing to be late with (start-up waits are request control's): no endpoint.
      const stuck = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(stuck, [pod('stuck', { metrics: { updateTime: NOW - 200 - LATE_WINDOW_MS - 1 } }), pod('new', { metrics: { updateTime: 0 } })])).toEqual([]);
      expect(emptyReason(filter, stuck)).toBe('no-endpoints');
      const edge = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(edge, [pod('late', { metrics: { updateTime: NOW - 200 - LATE_WINDOW_MS } })])).toEqual([]);
      expect(emptyReason(filter, edge)).toBe('metrics-late');
      // A pod never scraped but discovered within the window has its first scrape on its way: late. Discovered longer
      // ago than that (or outside any datastore), it was never read: no endpoint.
      const fresh = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(fresh, [{ ...pod('new', { metrics: { updateTime: 0 } }), discoveredTime: NOW - 100 }])).toEqual([]);
      expect(emptyReason(filter, fresh)).toBe('metrics-late');
      const unread = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(unread, [{ ...pod('old', { metrics: { updateTime: 0 } }), discoveredTime: NOW - 200 - LATE_WINDOW_MS - 1 }])).toEqual([]);
      expect(emptyReason(filter, unread)).toBe('no-endpoints');
      const refused = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(refused, [{ ...pod('refused', { metrics: { updateTime: 0, consecutiveFailures: 1 } }), discoveredTime: NOW - 100 }])).toEqual([]);
      expect(emptyReason(filter, refused)).toBe('no-endpoints');
      // Load anywhere still makes it saturation (429 without flow control).
      const loaded = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(loaded, [pod('busy', { metrics: { waitingQueueSize: 9 } }), pod('late', { metrics: { updateTime: NOW - 2_000 } })])).toEqual([]);
      expect(emptyReason(filter, loaded)).toBe('saturated');
      // The exclusion metric's labels are unchanged: late metrics are stale metrics.
      expect(new Set(excluded)).toEqual(new Set(['scrape_failures', 'stale_metrics', 'queue']));
    }
  });

  // GIE v1.5.0 never answers 503 for failed scrapes (backend/metrics/pod_metrics.go refreshMetrics stores nothing, and
  // saturationdetector/utilization/detector.go Saturation counts the stale pod as full: flow control waits). kvroute
  // waits likewise for scrapes that only timed out, fewer than maxConsecutiveScrapeFailures in a row; a fast failure,
  // or that many timeouts, is a pod gone (503).
  it('a pod whose last scrapes only timed out, fewer than maxConsecutiveScrapeFailures in a row, is late (metrics-late); one more timeout, or any fast failure, and it is lost (no-endpoints), in both modes', () => {
    for (const mode of ['filter', 'admission'] as const) {
      const reasonFor = (metrics: Partial<EndpointMetrics>, parameters: Record<string, unknown> = {}) => {
        const { filter } = saturationFilter({ mode, ...parameters });
        const c = { request: cycle.request, state: new CycleState() };
        expect(filter.filter(c, [pod('p', { metrics: { updateTime: NOW - 1_500, ...metrics } })])).toEqual([]);
        return emptyReason(filter, c);
      };
      expect(reasonFor({ consecutiveFailures: 1, timedOutFailures: 1 })).toBe('metrics-late');
      expect(reasonFor({ consecutiveFailures: 2, timedOutFailures: 2 })).toBe('metrics-late');
      expect(reasonFor({ consecutiveFailures: 3, timedOutFailures: 3 })).toBe('no-endpoints');
      expect(reasonFor({ consecutiveFailures: 4, timedOutFailures: 4 }, { maxConsecutiveScrapeFailures: 5 })).toBe('metrics-late');
      expect(reasonFor({ consecutiveFailures: 1, timedOutFailures: 1 }, { maxConsecutiveScrapeFailures: 0 })).toBe('no-endpoints');
      // A refused connection among them (or alone) says the pod is gone.
      expect(reasonFor({ consecutiveFailures: 2, timedOutFailures: 1 })).toBe('no-endpoints');
      expect(reasonFor({ consecutiveFailures: 1 })).toBe('no-endpoints');
      // Timeouts do not stretch the late window: past staleness + LATE_WINDOW_MS the metrics are lost.
      expect(reasonFor({ consecutiveFailures: 1, timedOutFailures: 1, updateTime: NOW - 200 - LATE_WINDOW_MS - 1 })).toBe('no-endpoints');
    }
  });

  // GIE's saturation detector (pkg/epp/saturationdetector/saturationdetector.go IsSaturated @ v0.5): the pool is
  // saturated only when NO pod has good capacity; until then loaded pods stay candidates for the scorers to weigh.
  describe('mode: admission (GIE\'s detector)', () => {
    it('keeps loaded pods while one readable pod has room; drops unreadable ones; counts only those', () => {
      const { filter, excluded } = saturationFilter({ mode: 'admission', queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 });
      const pods = [
        pod('queued', { metrics: { waitingQueueSize: 6 } }),
        pod('ok', { metrics: { waitingQueueSize: 5 } }),
        pod('full', { metrics: { kvCacheUsagePercent: 0.95 } }),
        pod('gone', { metrics: { consecutiveFailures: 9 } }),
      ];
      expect(names(filter.filter(cycle, pods))).toEqual(['queued', 'ok', 'full']);
      expect(excluded).toEqual(['scrape_failures']);
    });

    it('publishes the loaded pods for the scorers, and a later profile\'s run in the same cycle replaces an earlier one\'s sets rather than inheriting them', () => {
      const { filter } = saturationFilter({ mode: 'admission', queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 });
      const c = { request: cycle.request, state: new CycleState() };
      filter.filter(c, [pod('queued', { metrics: { waitingQueueSize: 6 } }), pod('full', { metrics: { kvCacheUsagePercent: 0.95 } }), pod('ok')]);
      expect([...c.state.get(LOADED_CANDIDATES)!].sort()).toEqual(['full:8000', 'queued:8000']);
      expect([...c.state.get(KV_LOADED_CANDIDATES)!]).toEqual(['full:8000']);
      // A second profile (another filter instance, say with other thresholds) over the same pods finds none loaded.
      const { filter: lenient } = saturationFilter({ mode: 'admission', queueDepthThreshold: 50, kvCacheUtilThreshold: 0.99 });
      lenient.filter(c, [pod('queued', { metrics: { waitingQueueSize: 6 } }), pod('full', { metrics: { kvCacheUsagePercent: 0.95 } }), pod('ok')]);
      expect(c.state.get(LOADED_CANDIDATES)?.size ?? 0).toBe(0);
      expect(c.state.get(KV_LOADED_CANDIDATES)?.size ?? 0).toBe(0);
    });

    it('drops every pod when none readable has room: saturated (flow control holds the request), as in filter mode', () => {
      const { filter, excluded } = saturationFilter({ mode: 'admission' });
      const c = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(c, [pod('a', { metrics: { waitingQueueSize: 9 } }), pod('b', { metrics: { kvCacheUsagePercent: 0.9 } }), pod('c', { metrics: { updateTime: 0 } })])).toEqual([]);
      expect(emptyReason(filter, c)).toBe('saturated');
      expect(excluded).toEqual(['stale_metrics', 'queue', 'kv_cache']);
    });

    it('all scrapes failing is still no endpoint (503); an unknown mode is refused naming the field', () => {
      const { filter } = saturationFilter({ mode: 'admission' });
      const c = { request: cycle.request, state: new CycleState() };
      expect(filter.filter(c, [pod('a', { metrics: { updateTime: 0, consecutiveFailures: 1 } })])).toEqual([]);
      expect(emptyReason(filter, c)).toBe('no-endpoints');
      expect(() => saturationFilter({ mode: 'gate' })).toThrow(/mode.*must be "filter" or "admission", got "gate"/);
    });
  });
});

describe('header-based-testing-filter (GIE pkg/epp/framework/plugins/scheduling/test/filter/request_header_based_filter.go @ v1.5.0)', () => {
  const filter = build(headerBasedTestingFilter, 'header-based-testing-filter');
  const pods = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((address) => pod(address));
  const withHeader = (value: string | undefined): CycleContext => ({
    request: { requestId: 'r', model: 'm', prompt: '', headers: value === undefined ? {} : { 'test-epp-endpoint-selection': value } },
    state: new CycleState(),
  });

  it('keeps the pods the header lists by address, in the header\'s order, trimming spaces and skipping unknown ones', () => {
    expect(names(filter.filter(withHeader('10.0.0.3'), pods))).toEqual(['10.0.0.3']);
    expect(names(filter.filter(withHeader(' 10.0.0.3 , 10.0.0.9,10.0.0.1'), pods))).toEqual(['10.0.0.3', '10.0.0.1']);
  });

  it('keeps none without the header or with a blank one, and the failure is no-endpoints (waiting will not help)', () => {
    expect(filter.filter(withHeader(undefined), pods)).toEqual([]);
    expect(filter.filter(withHeader(''), pods)).toEqual([]);
    expect(filter.filter(withHeader('  '), pods)).toEqual([]);
    expect(filter.emptyResultReason).toBe('no-endpoints');
  });

  it('reads IP:port as an exact endpoint (the conformance tests name pods so), [IPv6]:port and bracketed or bare IPv6, and keeps an endpoint once', () => {
    const ranks = [pod('10.0.0.1'), { ...pod('10.0.0.1'), endpoint: { ...pod('10.0.0.1').endpoint, key: '10.0.0.1:8001', port: 8001 } }];
    const keys = (kept: readonly EndpointSnapshot[]) => kept.map((s) => s.endpoint.key);
    expect(keys(filter.filter(withHeader('10.0.0.1:8000'), ranks))).toEqual(['10.0.0.1:8000']);
    expect(keys(filter.filter(withHeader('10.0.0.1:8001'), ranks))).toEqual(['10.0.0.1:8001']);
    expect(keys(filter.filter(withHeader('10.0.0.1:9999'), ranks))).toEqual([]);
    // A bare IP: the last endpoint listed at it (Go's map), once however often it is named.
    expect(keys(filter.filter(withHeader('10.0.0.1,10.0.0.1'), ranks))).toEqual(['10.0.0.1:8001']);
    expect(keys(filter.filter(withHeader('10.0.0.1:8000, 10.0.0.1:8001'), ranks))).toEqual(['10.0.0.1:8000']); // de-duplicated by IP
    const v6 = [pod('fd00::1')];
    for (const entry of ['[fd00::1]:8000', '[fd00::1]', 'fd00::1']) expect(names(filter.filter(withHeader(entry), v6))).toEqual(['fd00::1']);
    expect(filter.filter(withHeader('[fd00::1]:9'), v6)).toEqual([]);
  });
});
