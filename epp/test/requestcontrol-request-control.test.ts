import { defaultEndpointPickerConfig } from '../src/config';
import type { Datastore } from '../src/datastore/datastore';
import { freshenMetrics, staticPool } from './static-pool';
import type { IncomingRequest } from '../src/extproc/request-director';
import { createEppMetrics } from '../src/metrics';
import { FAIRNESS_ID_HEADER, MAX_FLOW_LABEL_SETS, MAX_LLMD_LABEL_SETS, MAX_MODEL_LABELS, MAX_MODEL_SERIES, MAX_PRIORITY_LABELS, MODEL_REWRITE_HEADER, OBJECTIVE_HEADER, PRIORITY_HEADER, RequestControl, SUBSET_HINT_KEY, SUBSET_HINT_NAMESPACE } from '../src/requestcontrol/request-control';
import { parseEndpointPickerConfig } from '../src/config';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import type { LLMRequest } from '../src/scheduling/types';
import * as v8 from 'v8';
import * as vm from 'vm';

const pool = staticPool;

/** A POST of `body` to the path whose API reads it (upstream's openai-parser refuses a chat sent to /v1/completions). */
const request = (body: unknown, filterMetadata: IncomingRequest['filterMetadata'] = {}): IncomingRequest => ({
  requestId: 'r',
  headers: new Map([[':method', 'POST'], [':path', typeof body === 'object' && body !== null && 'messages' in body ? '/v1/chat/completions' : '/v1/completions']]),
  body: Buffer.from(JSON.stringify(body)),
  filterMetadata,
});
const chat = (model = 'm') => ({ model, messages: [{ role: 'user', content: 'hello' }] });

describe('RequestControl', () => {
  let ds: Datastore;
  beforeEach(() => { ds = pool(3); });
  afterEach(() => ds.stop());

  test('honours the protocol\'s subset hint (namespace envoy.lb.subset_hint), a port the pool lacks matching by IP', async () => {
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()) });
    const hint = { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: ['10.0.0.3:1234'] } };
    for (let i = 0; i < 5; i++) {
      const d = await director.route(request(chat(), hint));
      expect(d).toMatchObject({ kind: 'route', endpoint: '10.0.0.3:8000' });
      if (d.kind === 'route') director.release(d.ticket, 'completed');
    }
    const none = await director.route(request(chat(), { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: [] } }));
    expect(none).toMatchObject({ kind: 'reject', status: 503 });
  });

  test('subset hint: a comma-separated string is read too (GIE v1.6.0 lwepp #2935); an ip:port of the pool selects that endpoint only, a bare IP or a port the pool lacks every endpoint at the IP, a pool port the pod lacks none (lwepp #2963, v1.5.0 candidates.go)', async () => {
    // A data-parallel pod: two endpoints at one IP (two target ports).
    for (const port of [8000, 8001]) {
      ds.upsertEndpoint({ key: `10.0.0.9:${port}`, name: `dp-rank-${port - 8000}`, podName: 'dp', rank: port - 8000, namespace: 'ns', address: '10.0.0.9', port, labels: {} });
      ds.setMetrics(`10.0.0.9:${port}`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    }
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()) });
    const picks = async (hint: string | string[]): Promise<Set<string>> => {
      const seen = new Set<string>();
      for (let i = 0; i < 24; i++) {
        const d = await director.route(request(chat(), { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: hint } }));
        if (d.kind !== 'route') throw new Error(`rejected: ${d.kind}`);
        seen.add(d.endpoint);
        director.release(d.ticket, 'completed');
      }
      return seen;
    };
    expect(await picks('10.0.0.1:8000, 10.0.0.2:8000')).toEqual(new Set(['10.0.0.1:8000', '10.0.0.2:8000']));
    expect(await picks(['10.0.0.9:8001'])).toEqual(new Set(['10.0.0.9:8001']));
    expect(await picks('10.0.0.9:8000')).toEqual(new Set(['10.0.0.9:8000']));
    expect(await picks(['10.0.0.9'])).toEqual(new Set(['10.0.0.9:8000', '10.0.0.9:8001']));
    expect(await picks(['10.0.0.9:1234'])).toEqual(new Set(['10.0.0.9:8000', '10.0.0.9:8001']));
    // A pool port this pod does not serve (`llm-d.ai/active-ports` left it out): the hint allows only that rank, so
    // nothing qualifies, as the protocol's "Endpoint Subset" says (GIE v1.6.0 docs/proposals/004-endpoint-picker-protocol,
    // lwepp `handleRequestHeaders`), never another port of the pod.
    ds.removeEndpoint('10.0.0.9:8001');
    ds.upsertEndpoint({ key: '10.0.0.8:8001', name: 'dp2-rank-1', podName: 'dp2', rank: 1, namespace: 'ns', address: '10.0.0.8', port: 8001, labels: {} });
    ds.setMetrics('10.0.0.8:8001', { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
    expect(await director.route(request(chat(), { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: ['10.0.0.9:8001'] } }))).toMatchObject({ kind: 'reject', status: 503 });
    expect(await picks(['10.0.0.9:8001', '10.0.0.8:8001'])).toEqual(new Set(['10.0.0.8:8001']));
    // The pool's targetPorts decide, not the endpoints that happen to exist: with no pod serving 8001 at all, a hint
    // on 8001 still selects nothing (lwepp matches IP and port).
    ds.removeEndpoint('10.0.0.8:8001');
    const pooled = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), poolTargetPorts: () => [8000, 8001] });
    expect(await pooled.route(request(chat(), { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: ['10.0.0.9:8001'] } }))).toMatchObject({ kind: 'reject', status: 503 });
    const byIp = await pooled.route(request(chat(), { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: ['10.0.0.9:1234'] } }));
    expect(byIp).toMatchObject({ kind: 'route', endpoint: '10.0.0.9:8000' });
    if (byIp.kind === 'route') pooled.release(byIp.ticket, 'completed');
    const none = await director.route(request(chat(), { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: ' , ' } }));
    expect(none).toMatchObject({ kind: 'reject', status: 503 });
  });

  test('a request whose stream is abandoned while it is being prepared (tokenized) is never scheduled nor counted in flight', async () => {
    // The default config's scheduler, plus one request-preparing plugin that finishes when the test says so, as a
    // tokenizer still working when Envoy's message timeout fires.
    const metrics = createEppMetrics();
    const real = buildScheduler(defaultEndpointPickerConfig(), { metrics: metrics.scheduling });
    let finishPreparing!: () => void;
    const preparing = new Promise<void>((resolve) => { finishPreparing = resolve; });
    const slow = { type: 'slow-tokenizer', name: 'slow-tokenizer', prepareRequest: () => preparing };
    const plugins = Object.create(real.plugins) as Scheduler['plugins'];
    plugins.ofKind = ((kind: string) => (kind === 'prepare-request' ? [slow] : real.plugins.ofKind(kind as 'pre-request'))) as Scheduler['plugins']['ofKind'];
    let cycles = 0;
    const scheduler = Object.create(real, {
      plugins: { value: plugins },
      schedule: { value: (...args: Parameters<Scheduler['schedule']>) => { cycles++; return real.schedule(...args); } },
    }) as Scheduler;
    const director = new RequestControl({ datastore: ds, scheduler, metrics: metrics.collectors });

    const envoyGaveUp = new AbortController();
    const decision = director.route(request(chat()), envoyGaveUp.signal);
    envoyGaveUp.abort();
    finishPreparing();
    expect((await decision).kind).toBe('reject');
    expect(cycles).toBe(0);
    expect(ds.snapshot().map((s) => s.activeRequests)).toEqual([0, 0, 0]);
    expect(await metrics.registry.getSingleMetricAsString('kvroute_epp_picks_total')).not.toMatch(/destination_endpoint=/);

    // The same request not abandoned is scheduled once and counted.
    const kept = await director.route(request(chat()), new AbortController().signal);
    expect(kept.kind).toBe('route');
    expect(cycles).toBe(1);
    // Each preparation is timed as llm-d-router v0.10.0 times a data producer (requestcontrol/plugin_executor.go).
    expect(await metrics.registry.getSingleMetricAsString('inference_extension_plugin_duration_seconds'))
      .toContain('inference_extension_plugin_duration_seconds_count{extension_point="DataProducer",plugin_type="slow-tokenizer",plugin_name="slow-tokenizer"} 2');
  });

  test('a burst of requests routed at once spreads evenly: each pick sees the ones committed before it, not the counts from before it awaited', async () => {
    ds.stop();
    ds = pool(0);
    // The scheduler's clock is frozen at the metrics' stamp: a jest worker stalled for over a second on a loaded
    // machine would otherwise see every pod's metrics go stale (the saturation filter's 1 s) and route nothing.
    const now = Date.now();
    for (let i = 0; i < 4; i++) {
      const address = `10.0.1.${i + 1}`;
      ds.upsertEndpoint({ key: `${address}:8000`, name: `q${i}`, namespace: 'ns', address, port: 8000, labels: {} });
      ds.setMetrics(`${address}:8000`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: now, consecutiveFailures: 0 });
    }
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => now }) });
    // All 16 are handed over in one turn of the event loop (as one socket read of a burst delivers them): each route()
    // starts, awaits its preparation, and only then schedules.
    const decisions = await Promise.all(Array.from({ length: 16 }, (_, i) => director.route({
      ...request({ model: 'm', prompt: `${String.fromCharCode(97 + i).repeat(400)} question ${i}` }),
      headers: new Map([[':method', 'POST'], ['content-type', 'application/json']]),
    })));
    const perPod = new Map<string, number>();
    for (const d of decisions) if (d.kind === 'route') perPod.set(d.endpoint, (perPod.get(d.endpoint) ?? 0) + 1);
    expect([...perPod.values()]).toEqual([4, 4, 4, 4]);
  });

  test('a scheduler failure falls back to the least-loaded endpoint instead of failing the request', async () => {
    const healthy = buildScheduler(defaultEndpointPickerConfig());
    const broken = { plugins: healthy.plugins, schedule() { throw new Error('plugin bug'); } } as unknown as Scheduler;
    const errors: string[] = [];
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: broken, metrics: metrics.collectors, onInternalError: (e) => errors.push(e.message) });
    const d = await director.route(request(chat()));
    expect(d).toMatchObject({ kind: 'route', endpoint: '10.0.0.1:8000' });
    expect(errors).toEqual(['plugin bug']);
    expect(await metrics.registry.getSingleMetricAsString('inference_objective_request_error_total')).toContain('error_code="Internal"');
    if (d.kind === 'route') director.release(d.ticket, 'completed');
    expect(ds.activeRequests('10.0.0.1:8000')).toBe(0);
    // Except a conditional decode (`Prefer: if-available`, llm-d-router v0.10.0 director.go): without a pick nothing says
    // the pod holds its prompt, so it is refused 412 rather than sent where nothing may be cached.
    const conditional = request(chat());
    const refused = await director.route({ ...conditional, headers: new Map([...conditional.headers, ['prefer', 'if-available']]) });
    expect(refused).toMatchObject({ kind: 'reject', status: 412 });
  });

  test('the request the scheduler sees carries the headers as Object.fromEntries gives them, odd names included', async () => {
    const real = buildScheduler(defaultEndpointPickerConfig());
    const seen: Record<string, string>[] = [];
    const scheduler = Object.create(real, {
      schedule: { value: (...args: Parameters<Scheduler['schedule']>) => { seen.push(args[0].headers); return real.schedule(...args); } },
    }) as Scheduler;
    const director = new RequestControl({ datastore: ds, scheduler });
    const headerSets = [
      [[':method', 'POST'], ['content-type', 'application/json'], ['x-session-id', 's1']],
      [[':method', 'POST'], ['__proto__', 'p'], ['constructor', 'c'], ['2', 'two'], ['1', 'one'], ['toString', 't']],
      [['hasOwnProperty', 'h'], ['valueOf', '']],
    ];
    for (const set of headerSets) {
      const headers = new Map(set as [string, string][]);
      // A completion: none of these header sets has a :path, and the path upstream's parser then reads is /v1/completions.
      const d = await director.route({ requestId: 'r', headers, body: Buffer.from(JSON.stringify({ model: 'm', prompt: 'hello' })), filterMetadata: {} });
      if (d.kind === 'route') director.release(d.ticket, 'completed');
      const got = seen[seen.length - 1]!;
      const expected = Object.fromEntries(headers);
      expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
      expect(Object.getOwnPropertyNames(got)).toEqual(Object.getOwnPropertyNames(expected));
      for (const name of Object.getOwnPropertyNames(expected)) expect(Object.getOwnPropertyDescriptor(got, name)).toEqual(Object.getOwnPropertyDescriptor(expected, name));
    }
    expect(seen).toHaveLength(headerSets.length);
  });

  test('client-chosen model names cannot grow the metric label set without bound', async () => {
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: metrics.collectors });
    for (let i = 0; i < MAX_MODEL_LABELS + 20; i++) {
      const d = await director.route(request(chat(`model-${i}`)));
      if (d.kind === 'route') director.release(d.ticket, 'completed');
    }
    const text = await metrics.registry.getSingleMetricAsString('inference_objective_request_total');
    const series = text.split('\n').filter((l) => l.startsWith('inference_objective_request_total{'));
    expect(series).toHaveLength(MAX_MODEL_LABELS + 1);
    expect(text).toContain('inference_objective_request_total{model_name="other",target_model_name="other",priority="0"} 20');
  });

  test('long client-chosen model names never become labels: 80 requests naming 8 KiB models leave /metrics small', async () => {
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: metrics.collectors });
    const before = (await metrics.registry.metrics()).length;
    for (let i = 0; i < 80; i++) {
      const d = await director.route(request(chat(`${i}-${'m'.repeat(8192)}`)));
      if (d.kind === 'route') director.release(d.ticket, 'completed');
    }
    const after = (await metrics.registry.metrics()).length;
    // One "other" series per request metric, not 80 × 8 KiB labels (30 MB before the bound).
    expect(after - before).toBeLessThan(64 * 1024);
    expect(await metrics.registry.getSingleMetricAsString('inference_objective_request_total')).toContain('model_name="other",target_model_name="other",priority="0"} 80');
  });

  test('client-chosen model × rewrite target × priority combinations cannot grow /metrics without bound', async () => {
    // Each name is bounded on its own; the combinations were not: 20 models × 20 rewrite targets × 5 priorities took
    // /metrics from 14 KB to 2.85 MB before the pair and priority bounds. The gateway is trusted with the header (the cap
    // at its top): every value a client sends is its own.
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: metrics.collectors, maxHeaderPriority: 100 });
    const before = (await metrics.registry.metrics()).length;
    let routed = 0;
    for (let model = 0; model < 20; model++) {
      for (let target = 0; target < 20; target++) {
        // 4,800 requests take seconds on a busy machine: keep the pods' metrics fresh every 12 routes, as their
        // scrapers would (left as they were at the start, they went stale and the saturation filter answered 503 on a
        // loaded CI run).
        freshenMetrics(ds);
        for (let priority = 1; priority <= 12; priority++) {
          const req = request(chat(`model-${model}`));
          const headers = new Map([...req.headers, [MODEL_REWRITE_HEADER, `target-${target}`], [PRIORITY_HEADER, String(priority)]]);
          const d = await director.route({ ...req, headers });
          if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
          // A streamed answer with usage, so the response-side histograms (sizes, tokens) are labelled too.
          director.responseHeaders(d.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]));
          director.responseBody(d.ticket, Buffer.from('data: {"usage":{"prompt_tokens":5,"completion_tokens":3}}\n\ndata: [DONE]\n\n'), true);
          director.release(d.ticket, 'completed');
          routed++;
        }
      }
    }
    const text = await metrics.registry.getSingleMetricAsString('inference_objective_request_total');
    const series = text.split('\n').filter((l) => l.startsWith('inference_objective_request_total{'));
    const pairs = new Set(series.map((l) => /model_name="([^"]*)",target_model_name="([^"]*)"/.exec(l)!.slice(1).join('→')));
    const priorities = new Set(series.map((l) => /priority="([^"]*)"/.exec(l)![1]));
    expect(pairs.size).toBe(MAX_MODEL_SERIES + 1);
    expect(pairs).toContain('other→other');
    expect(priorities.size).toBe(MAX_PRIORITY_LABELS + 1);
    expect(priorities).toContain('other');
    // Every request is still counted, under its own labels or "other".
    const counted = series.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    expect(counted).toBe(routed);
    // The histograms of a request use its series' labels too, the response side's included: no pair beyond the bound
    // appears anywhere.
    const outputTokens = await metrics.registry.getSingleMetricAsString('inference_objective_output_tokens');
    expect(outputTokens).toContain('model_name="other",target_model_name="other"');
    const all = await metrics.registry.metrics();
    const allPairs = new Set([...all.matchAll(/model_name="([^"]*)",target_model_name="([^"]*)"/g)].map((m) => `${m[1]}→${m[2]}`));
    expect(allPairs.size).toBeLessThanOrEqual(MAX_MODEL_SERIES + 1);
    // llm-d's per-request twins are bounded as sets: the first MAX_LLMD_LABEL_SETS keep their labels, later ones keep
    // their (bounded) model pair with fairness id and priority "other".
    const llmdTotals = all.split('\n').filter((l) => l.startsWith('llm_d_epp_request_total{'));
    const own = llmdTotals.filter((l) => !l.includes('fairness_id="other",priority="other"'));
    expect(own).toHaveLength(MAX_LLMD_LABEL_SETS);
    expect(llmdTotals.length - own.length).toBeGreaterThan(0);
    expect(llmdTotals.length - own.length).toBeLessThanOrEqual(MAX_MODEL_SERIES + 1);
    expect(llmdTotals.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)).toBe(routed);
    // GIE's 65 pairs with their request and response histograms come to about 1 MB here (the 400 pairs unbounded,
    // ~6 MB); llm-d's sets (at most 32 + 65) to about 2.8 MB more (3.86 MB in all), where its 4,800 sets unbounded
    // would be ~140 MB.
    expect(all.length - before).toBeLessThan(5 * 1024 * 1024);
  });

  test('with GIE\'s flowControl gate named, a request that does not fit the queue\'s bounds is refused 429 queue-full even on an idle pool, as GIE\'s enqueue checks capacity for every request (controller/internal/processor.go hasCapacity); without the gate it is routed', async () => {
    const metrics = createEppMetrics();
    const route = async (recordEveryRequest: boolean) => {
      const queue = new FlowControlQueue({ maxQueued: 4, maxQueuedBytes: 10, maxWaitMs: 1000, maxDispatchPerCall: 1 });
      const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: metrics.collectors, flowControl: { queue, recordEveryRequest } });
      try {
        freshenMetrics(ds);
        const d = await director.route(request(chat()));
        if (d.kind === 'route') director.release(d.ticket, 'completed');
        return d;
      } finally {
        director.close();
      }
    };
    expect(await route(true)).toMatchObject({ kind: 'reject', status: 429, headers: { 'x-kvroute-flow-control': 'queue-full' } });
    expect((await metrics.registry.getSingleMetricAsString('inference_extension_flow_control_request_enqueue_duration_seconds'))).toMatch(/_count\{fairness_id="default-flow",priority="0",outcome="RejectedCapacity"\} 1/);
    expect((await route(false)).kind).toBe('route');
  });

  test('client-chosen fairness id × priority × model combinations of the flow-control series are bounded as a set (audit s46: ~4 KB a set, ~150 MB at the single-label caps)', async () => {
    const metrics = createEppMetrics();
    const queue = new FlowControlQueue({ maxQueued: 4, maxWaitMs: 1000, maxDispatchPerCall: 1 });
    // A config naming GIE's flowControl gate records every request's queue series (runner.ts: recordEveryRequest).
    const director = new RequestControl({
      datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()), metrics: metrics.collectors,
      flowControl: { queue, recordEveryRequest: true }, maxHeaderPriority: 100,
    });
    const family = 'inference_extension_flow_control_request_queue_duration_seconds';
    try {
      const before = (await metrics.registry.metrics()).length;
      let routed = 0;
      for (let fairness = 0; fairness < 12; fairness++) {
        freshenMetrics(ds);
        for (let priority = 1; priority <= 6; priority++) {
          for (let model = 0; model < 6; model++) {
            const req = request(chat(`model-${model}`));
            const headers = new Map([...req.headers, [FAIRNESS_ID_HEADER, `tenant-${fairness}`], [PRIORITY_HEADER, String(priority)]]);
            const d = await director.route({ ...req, headers });
            if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
            director.release(d.ticket, 'completed');
            routed++;
          }
        }
      }
      const text = await metrics.registry.getSingleMetricAsString(family);
      const counts = text.split('\n').filter((l) => l.startsWith(`${family}_count{`));
      const sets = new Set(counts.map((l) => l.slice(l.indexOf('{'), l.lastIndexOf('}') + 1)));
      // 432 combinations (each label within its own bound): the first MAX_FLOW_LABEL_SETS keep theirs, the rest share one per model.
      expect(sets.size).toBe(MAX_FLOW_LABEL_SETS + 6);
      // Past the bound the model pair stays (6 models here), the client's flow labels go: one "other" set per model.
      const others = [...sets].filter((l) => l.includes('fairness_id="other"'));
      expect(others).toHaveLength(6);
      for (const l of others) expect(l).toMatch(/priority="other".*model_name="model-\d",target_model_name="model-\d"/);
      expect(counts.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)).toBe(routed);
      // Unbounded, the 432 sets came to 1.9 MB; bounded, 0.65 MB, and 1.5 MB with llm-d's per-request twins
      // (MAX_LLMD_LABEL_SETS + 1 sets).
      expect((await metrics.registry.metrics()).length - before).toBeLessThan(2 * 1024 * 1024);
    } finally {
      director.close();
    }
  });

  test('priorities of configured objectives are always their own label value; x-kvroute-priority values share a bound', async () => {
    const metrics = createEppMetrics();
    const queue = new FlowControlQueue({ maxQueued: 4, maxWaitMs: 1000, maxDispatchPerCall: 1 });
    const director = new RequestControl({
      datastore: ds,
      scheduler: buildScheduler(defaultEndpointPickerConfig()),
      metrics: metrics.collectors,
      flowControl: { queue, objectives: new Map([['batch', -50], ['chat', 50]]) },
      maxHeaderPriority: 100,
    });
    try {
      const send = async (headers: [string, string][]) => {
        const req = request(chat());
        const d = await director.route({ ...req, headers: new Map([...req.headers, ...headers]) });
        if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
        director.release(d.ticket, 'completed');
      };
      for (let priority = -20; priority <= 20; priority++) await send([[PRIORITY_HEADER, String(priority)]]);
      // After the header's values used up the bound, the objectives' priorities still get their own values.
      await send([[OBJECTIVE_HEADER, 'batch']]);
      await send([[OBJECTIVE_HEADER, 'chat'], [PRIORITY_HEADER, '7']]);
      const text = await metrics.registry.getSingleMetricAsString('inference_objective_request_total');
      const counts = new Map([...text.matchAll(/priority="([^"]*)"} (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
      // 0, the first MAX_PRIORITY_LABELS other header values in arrival order, the two objectives', then "other".
      expect([...counts.keys()].sort()).toEqual(['-13', '-14', '-15', '-16', '-17', '-18', '-19', '-20', '-50', '0', '50', 'other'].sort());
      expect(counts.get('other')).toBe(41 - 1 - MAX_PRIORITY_LABELS);
      expect(counts.get('-50')).toBe(1);
      expect(counts.get('50')).toBe(1);
    } finally {
      director.close();
    }
  });

  test('owns the lifecycle: commit counts the request in flight, post-response hooks run at the response headers (attached globally), release ends it', async () => {
    // session-affinity-scorer is in no profile, yet its post-response hook runs: request hooks are global, as in GIE.
    const scheduler = buildScheduler(parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-scorer
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`));
    const control = new RequestControl({ datastore: ds, scheduler });
    const d = await control.route(request(chat()));
    if (d.kind !== 'route') throw new Error('expected a route');
    expect(d.endpoint).toBe('10.0.0.1:8000');
    expect(ds.activeRequests(d.endpoint)).toBe(1);
    expect(control.responseHeaders!(d.ticket, new Map([[':status', '200']]))).toEqual({
      'x-session-token': Buffer.from('ns/p0').toString('base64'),
    });
    control.release(d.ticket, 'completed');
    expect(ds.activeRequests(d.endpoint)).toBe(0);
  });

  test('a body it cannot read a prompt from is routed by load, not refused; a malformed one is a 400 naming the field (GIE v1.5.0 parsers/openai/openai.go extractRequestBody\'s message)', async () => {
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()) });
    const multipart: IncomingRequest = { requestId: 'r', headers: new Map([[':method', 'POST'], ['content-type', 'multipart/form-data; boundary=x']]), body: Buffer.from('--x--'), filterMetadata: {} };
    expect(await control.route(multipart)).toMatchObject({ kind: 'route', endpoint: '10.0.0.1:8000' });
    const bad = await control.route(request({ model: 'm', messages: 'hi' }));
    expect(bad).toMatchObject({ kind: 'reject', status: 400 });
    if (bad.kind === 'reject') expect(JSON.parse(bad.body).error).toMatchObject({ message: 'invalid chat completions request: must have valid messages field', param: 'messages' });
  });

  test('response-complete hooks (GIE v1.5.0 ResponseComplete) run once per committed request, however it ends, after the in-flight count drops; one that throws is reported and does not keep the request in flight', async () => {
    const real = buildScheduler(defaultEndpointPickerConfig());
    const ended: Array<[string, string, string, number]> = [];
    const errors: string[] = [];
    const recorder = {
      type: 'recorder', name: 'recorder',
      responseComplete: (r: LLMRequest, target: { key: string }, outcome: string) => { ended.push([r.requestId, target.key, outcome, ds.activeRequests(target.key)]); },
    };
    const broken = { type: 'broken', name: 'broken', responseComplete: () => { throw new Error('plugin bug'); } };
    const plugins = Object.create(real.plugins) as Scheduler['plugins'];
    plugins.ofKind = ((kind: string) => (kind === 'response-complete' ? [broken, recorder] : real.plugins.ofKind(kind as 'pre-request'))) as Scheduler['plugins']['ofKind'];
    const director = new RequestControl({
      datastore: ds, scheduler: Object.create(real, { plugins: { value: plugins } }) as Scheduler,
      onInternalError: (e, id) => errors.push(`${id}: ${e.message}`),
    });
    const a = await director.route({ ...request(chat()), requestId: 'a' });
    const b = await director.route({ ...request(chat()), requestId: 'b' });
    if (a.kind !== 'route' || b.kind !== 'route') throw new Error('not routed');
    director.release(a.ticket, 'completed');
    director.release(b.ticket, 'cancelled');
    // The count seen is the pod's after this request left (b is still in flight when a ends, if both went to one pod).
    expect(ended).toEqual([['a', a.endpoint, 'completed', a.endpoint === b.endpoint ? 1 : 0], ['b', b.endpoint, 'cancelled', 0]]);
    expect(errors).toEqual(['a: plugin bug', 'b: plugin bug']);
    // A request routed without a scheduling cycle (no body) never reached the pre-request hooks: no response-complete.
    const bodiless = await director.route({ requestId: 'c', headers: new Map([[':method', 'GET']]), body: undefined, filterMetadata: {} });
    if (bodiless.kind !== 'route') throw new Error('not routed');
    director.release(bodiless.ticket, 'completed');
    expect(ended.map((e) => e[0])).toEqual(['a', 'b']);
  });

  test('the body is read as the request\'s :path names its vLLM endpoint: /v1/responses as the chat it renders, /tokenize as nothing to prefill', async () => {
    const real = buildScheduler(defaultEndpointPickerConfig());
    const inputs: unknown[] = [];
    const scheduler = Object.create(real, {
      schedule: { value: (...args: Parameters<Scheduler['schedule']>) => { inputs.push(args[0].input); return real.schedule(...args); } },
    }) as Scheduler;
    const director = new RequestControl({ datastore: ds, scheduler });
    for (const [path, body] of [['/v1/responses', { model: 'm', instructions: 'sys', input: 'hi' }], ['/tokenize', { model: 'm', prompt: 'hi' }]] as const) {
      const d = await director.route({ ...request(body), headers: new Map([[':method', 'POST'], [':path', path]]) });
      if (d.kind === 'route') director.release(d.ticket, 'completed');
    }
    expect(inputs).toEqual([
      { kind: 'chat', messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'hi' }], addGenerationPrompt: true, continueFinalMessage: false, estimateJson: [{ instructions: 'sys' }, { input: 'hi' }] },
      { kind: 'none' },
    ]);
  });

  test('a pre-request hook that throws is reported with its name; the pick stands and the other hooks keep their pairing (pre-request, then response-complete)', async () => {
    const real = buildScheduler(defaultEndpointPickerConfig());
    const log: string[] = [];
    const counting = {
      type: 'counting', name: 'counting',
      preRequest: (r: LLMRequest) => { log.push(`pre ${r.requestId}`); },
      responseComplete: (r: LLMRequest) => { log.push(`end ${r.requestId}`); },
    };
    const broken = { type: 'broken', name: 'broken', preRequest: () => { throw new Error('plugin bug'); } };
    const plugins = Object.create(real.plugins) as Scheduler['plugins'];
    plugins.ofKind = ((kind: string) => (kind === 'pre-request' ? [counting, broken] : kind === 'response-complete' ? [counting] : real.plugins.ofKind(kind as 'pre-request'))) as Scheduler['plugins']['ofKind'];
    const errors: string[] = [];
    let scheduledTo: string | undefined;
    const scheduler = Object.create(real, {
      plugins: { value: plugins },
      schedule: { value: (...args: Parameters<Scheduler['schedule']>) => { const r = real.schedule(...args); scheduledTo = r.target.endpoint.key; return r; } },
    }) as Scheduler;
    const director = new RequestControl({ datastore: ds, scheduler, onInternalError: (e, id, hook) => errors.push(`${id} ${hook}: ${e.message}`) });
    const d = await director.route({ ...request(chat()), requestId: 'x' });
    if (d.kind !== 'route') throw new Error('not routed');
    expect(d.endpoint).toBe(scheduledTo);
    expect(errors).toEqual(['x broken pre-request: plugin bug']);
    director.release(d.ticket, 'completed');
    expect(log).toEqual(['pre x', 'end x']);
  });

  test('a routed request keeps no prompt: the post-response hooks see it without one, and requests held in flight do not hold theirs', async () => {
    // The default scheduler with one post-response hook that records what it is given.
    const real = buildScheduler(defaultEndpointPickerConfig());
    const seen: LLMRequest[] = [];
    const hook = { type: 'recorder', name: 'recorder', postResponse: (r: LLMRequest) => { seen.push(r); return undefined; } };
    const plugins = Object.create(real.plugins) as Scheduler['plugins'];
    plugins.ofKind = ((kind: string) => (kind === 'post-response' ? [hook] : real.plugins.ofKind(kind as 'pre-request'))) as Scheduler['plugins']['ofKind'];
    const director = new RequestControl({ datastore: ds, scheduler: Object.create(real, { plugins: { value: plugins } }) as Scheduler });
    const first = await director.route({ ...request(chat()), headers: new Map([[':method', 'POST'], [':path', '/v1/chat/completions'], ['x-session-id', 's1']]), requestId: 'req-1' });
    if (first.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(first)}`);
    director.responseHeaders(first.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]));
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ requestId: 'req-1', model: 'm', prompt: '', headers: { 'x-session-id': 's1' } });
    expect(seen[0]!.input).toBeUndefined();
    expect(seen[0]!.promptHead).toBeUndefined();
    expect(seen[0]!.attributes).toBeDefined();
    director.release(first.ticket, 'completed');

    // 32 chat requests of 1 MiB each, every prompt its own, routed and held in flight (their generations running).
    // Kept with their tickets, their prompts would hold ~32 MiB (twice that in two-byte strings); without, a few KiB each.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const mib = 1024 * 1024;
    const heapAfterGc = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
    const before = heapAfterGc();
    const held: unknown[] = [];
    for (let i = 0; i < 32; i++) {
      // The pool is not scraped; on a loaded machine 32 MiB of bodies can take longer than the metrics stay fresh.
      freshenMetrics(ds);
      const d = await director.route(request({ model: 'm', messages: [{ role: 'user', content: `${i} ${'x'.repeat(mib)}` }], stream: true }));
      if (d.kind !== 'route') throw new Error(`request ${i} not routed: ${JSON.stringify(d)}`);
      held.push(d.ticket);
    }
    const grown = heapAfterGc() - before;
    expect(held).toHaveLength(32);
    expect(grown).toBeLessThan(8 * mib);
    for (const t of held) director.release(t, 'completed');
  });

  test('a flood of long unique session ids leaves the heap flat: no plugin of the default config keeps an id as sent (issue 11: ~2,300 ids of 60 KiB exhausted a 160 MiB heap; ids over 4,096 characters are never kept, so these are 4,000)', async () => {
    // Every store a session id reaches in the default config (session affinity's bindings, the session-load scorer's
    // live sessions, flow control's flows) keeps a digest or nothing; kept as sent, 20,000 ids of 4,000 characters
    // would hold ~80 MB. Both tables' capacities (65,536) are above the 22,000 ids, so no eviction hides a leak.
    // The scheduler's clock stands still at the pods' stamp: refreshed every 500 routes on the real clock, the metrics
    // went stale (the saturation filter's 1 s) when a loaded machine took longer than that over 500 routes, and the
    // filter answered 503.
    const stamp = Date.now();
    for (const endpoint of ds.endpoints()) ds.setMetrics(endpoint.key, { updateTime: stamp });
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => stamp }) });
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const heapAfterGc = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
    const flood = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        const d = await director.route({ ...request(chat()), headers: new Map([[':method', 'POST'], [':path', '/v1/chat/completions'], ['x-session-id', `${i}:`.padEnd(4000, 'x')]]) });
        if (d.kind !== 'route') throw new Error(`request ${i} not routed: ${JSON.stringify(d)}`);
        director.responseHeaders(d.ticket, new Map([[':status', '200'], ['content-type', 'text/event-stream']]));
        director.release(d.ticket, 'completed');
      }
    };
    try {
      // Warm-up: every code path compiled, every table allocated at its first sizes.
      await flood(0, 2_000);
      const before = heapAfterGc();
      await flood(2_000, 20_000);
      const grown = heapAfterGc() - before;
      // A digest, an endpoint key and a table entry per session: a few hundred bytes each, ~7.4 MB for 20,000 (measured).
      expect(grown).toBeLessThan(16 * 1024 * 1024);
    } finally {
      director.close();
    }
  });
});
