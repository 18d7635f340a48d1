import { seededRandom } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, resolvePluginParameters, withLoraRoomFilter } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, type CycleContext } from '../src/scheduling/framework';
import { LoraRoomFilter } from '../src/scheduling/plugins/lora-room-filter';
import { buildScheduler } from '../src/scheduling/scheduler';
import { RequestControl } from '../src/requestcontrol/request-control';
import type { IncomingRequest } from '../src/extproc/request-director';
import { createEppMetrics } from '../src/metrics';
import { staticPool } from './static-pool';

const NOW = 1_700_000_000_000;

function pod(name: string, lora?: { running: string[]; waiting?: string[]; maxLora: number }): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: NOW, ...(lora ? { lora: { running: lora.running, waiting: lora.waiting ?? [], maxLora: lora.maxLora } } : {}) },
    activeRequests: 0,
  };
}

const forModel = (model: string): CycleContext => ({ request: { requestId: 'r', model, prompt: 'p', headers: {} }, state: new CycleState() });
const names = (xs: readonly EndpointSnapshot[]) => xs.map((x) => x.endpoint.name);

describe('lora-room-filter (kvroute): an adapter request skips pods whose --max-loras other adapters hold (vLLM 0.10 scheduler.py lines 363-370)', () => {
  // spillWaiting 0: no preference for pods where the adapter is active (tested below), only the room rule.
  const filter = new LoraRoomFilter('f', { adapters: ['sql', 'chat', 'summarize'], spillWaiting: 0 });
  const pool = [
    pod('runs', { running: ['sql'], maxLora: 1 }),
    pod('full', { running: ['chat'], maxLora: 1 }),
    pod('room', { running: ['chat'], maxLora: 2 }),
    pod('waitsBehindChat', { running: ['chat'], waiting: ['sql'], maxLora: 1 }),
    pod('chatArriving', { running: [], waiting: ['chat'], maxLora: 1 }),
    // A busy adapter is in both lists (waiting from arrival to first token): one slot, not two.
    pod('busyChatRoom', { running: ['chat'], waiting: ['chat'], maxLora: 2 }),
    // The adapter's own first request still prefilling: the pod stays open to its next ones.
    pod('sqlArriving', { running: [], waiting: ['sql'], maxLora: 1 }),
    pod('noLora'),
  ];

  it('keeps the pods running the adapter, those where it fits among the distinct adapters running or waiting, and those without LoRA state; drops the full ones', () => {
    expect(names(filter.filter(forModel('sql'), pool))).toEqual(['runs', 'room', 'busyChatRoom', 'sqlArriving', 'noLora']);
  });

  it('never filters other models\' requests (the base model, a request without a model): vLLM schedules them whatever adapters run', () => {
    expect(filter.filter(forModel('base'), pool)).toBe(pool);
    expect(filter.filter(forModel(''), pool)).toBe(pool);
  });

  it('when no pod can start the adapter now: the pods where it already waits for a slot, else every pod (the request waits wherever it goes)', () => {
    expect(names(filter.filter(forModel('sql'), [pool[1]!, pool[3]!]))).toEqual(['waitsBehindChat']);
    const full = [pool[1]!, pod('fullToo', { running: ['summarize'], maxLora: 1 })];
    expect(filter.filter(forModel('sql'), full)).toBe(full);
  });

  it('hands the candidates on unchanged when all qualify', () => {
    const fine = [pool[0]!, pool[5]!];
    expect(filter.filter(forModel('sql'), fine)).toBe(fine);
    const active = [pool[0]!, pool[6]!];
    expect(new LoraRoomFilter('f', { adapters: ['sql'], spillWaiting: 1 }).filter(forModel('sql'), active)).toBe(active);
  });

  it('affinity (spillWaiting 1, the default): of the pods that can start it, those where the adapter is active are kept alone while one of them has no request waiting; then the pods with room join them', () => {
    const affine = new LoraRoomFilter('f', { adapters: ['sql', 'chat', 'summarize'], spillWaiting: 1 });
    expect(names(affine.filter(forModel('sql'), pool))).toEqual(['runs', 'sqlArriving']);
    const busy = (p: EndpointSnapshot, waitingQueueSize: number): EndpointSnapshot => ({ ...p, metrics: { ...p.metrics, waitingQueueSize } });
    // One active pod still without a queue: affinity holds.
    expect(names(affine.filter(forModel('sql'), [busy(pool[0]!, 3), ...pool.slice(1)]))).toEqual(['runs', 'sqlArriving']);
    // Every active pod has requests waiting: the adapter needs more pods, and those with room are kept too.
    const queued = [busy(pool[0]!, 3), ...pool.slice(1, 6), busy(pool[6]!, 1), pool[7]!];
    expect(names(affine.filter(forModel('sql'), queued))).toEqual(['runs', 'room', 'busyChatRoom', 'sqlArriving', 'noLora']);
    // Not active anywhere: the room rule alone.
    expect(names(affine.filter(forModel('summarize'), pool))).toEqual(['room', 'busyChatRoom', 'noLora']);
  });

  it('draining: on a pod where a request waits for a slot, the running adapter with the fewest of this EPP\'s requests there gets no more while it can go elsewhere, so its slot frees (vLLM 0.10 starts the waiting one only then)', () => {
    const f = new LoraRoomFilter('f', { adapters: ['a', 'b', 'c'], spillWaiting: 1 });
    const p = pod('p', { running: ['a', 'b'], maxLora: 2 });
    const q = pod('q', { running: [], maxLora: 1 });
    const qFull = pod('qFull', { running: ['c'], maxLora: 1 });
    const send = (model: string, to: EndpointSnapshot) => f.preRequest({ requestId: `${model}-${Math.random()}`, model, prompt: '', headers: {} }, { target: to, targets: [to], profile: 'default', scores: new Map() } as never);
    for (let i = 0; i < 3; i++) send('a', p);
    send('b', p);
    // Nothing waits on p yet: both its adapters keep their affinity.
    expect(names(f.filter(forModel('b'), [p, q]))).toEqual(['p']);
    // A request for c was sent to p, where it waits for a slot: b (1 request in flight there, against a's 3) drains.
    send('c', p);
    expect(names(f.filter(forModel('b'), [p, q]))).toEqual(['q']);
    expect(names(f.filter(forModel('a'), [p, q]))).toEqual(['p']);
    // With nowhere else to start, b still goes to p rather than to a pod where it would wait.
    expect(names(f.filter(forModel('b'), [p, qFull]))).toEqual(['p']);
    // c can start nowhere now: it goes where a request for it already waits (p), not to another full pod.
    const full = pod('full', { running: ['a'], maxLora: 1 });
    expect(names(f.filter(forModel('c'), [full, p]))).toEqual(['p']);
    // A pod that lists c waiting behind other adapters counts the same way.
    const r = pod('r', { running: ['a'], waiting: ['c'], maxLora: 1 });
    expect(names(f.filter(forModel('c'), [full, r]))).toEqual(['r']);
  });

  it('parameters: adapters, a non-empty list of names', () => {
    expect(resolvePluginParameters('lora-room-filter', { adapters: ['sql'] })).toEqual({ adapters: ['sql'], spillWaiting: 1 });
    expect(resolvePluginParameters('lora-room-filter', { adapters: ['sql'], spillWaiting: 0 })).toEqual({ adapters: ['sql'], spillWaiting: 0 });
    expect(() => resolvePluginParameters('lora-room-filter', { adapters: ['sql'], spillWaiting: -1 })).toThrow(/spillWaiting/);
    expect(() => resolvePluginParameters('lora-room-filter', undefined)).toThrow(/adapters: must list the pool's LoRA adapter names/);
    expect(() => resolvePluginParameters('lora-room-filter', { adapters: 'sql' })).toThrow(/adapters/);
  });

  it('withLoraRoomFilter puts it after the default config\'s last filter (saturation, then session affinity, decide first); the default scorers then never pick a full pod for a cold adapter request', () => {
    const config = withLoraRoomFilter(defaultEndpointPickerConfig(), ['sql', 'chat']);
    expect(config.schedulingProfiles[0]!.plugins.slice(0, 4)).toEqual([
      { pluginRef: 'decode-filter' }, { pluginRef: 'saturation-filter' }, { pluginRef: 'session-affinity-filter' }, { pluginRef: 'lora-room-filter' },
    ]);
    expect(withLoraRoomFilter(config, ['sql'])).toBe(config);
    const scheduler = buildScheduler(config, { now: () => NOW, random: seededRandom(9) });
    // A pod without LoRA state because its scrapes are stale (new or down) is dropped by the saturation filter first,
    // so it cannot draw the request alone: with the live pods full, the request still goes to one of them.
    const stale = { ...pod('stale'), metrics: { ...EMPTY_METRICS, updateTime: NOW - 60_000 } };
    const live = [pod('fullA', { running: ['chat'], maxLora: 1 }), pod('fullB', { running: ['summarize'], maxLora: 1 })];
    for (let i = 0; i < 5; i++) {
      const picked = scheduler.schedule({ requestId: `s${i}`, model: 'sql', prompt: `stale case ${i}`, headers: {} }, [stale, ...live]).target.endpoint.name;
      expect(['fullA', 'fullB']).toContain(picked);
    }
    const two = [pod('full', { running: ['chat'], maxLora: 1 }), pod('room', { running: [], maxLora: 1 })];
    for (let i = 0; i < 20; i++) {
      const request = { requestId: `r${i}`, model: 'sql', prompt: `cold prompt ${i} `.repeat(30), headers: {} };
      expect(scheduler.schedule(request, two).target.endpoint.name).toBe('room');
    }
  });
});

describe('lora-room-filter counts this EPP\'s own requests in flight (pre-request to response-complete), which no scrape shows yet', () => {
  // Two pods with one LoRA slot each and nothing running at the last scrape; pod 1 scraped with an empty queue, pod 2
  // with one waiting request. Scored as GIE's default profile scores (queue, KV use, prefix), every request of a burst
  // within one scrape interval prefers pod 1: without the in-flight count, requests for three adapters all land there,
  // where vLLM (--max-loras 1) runs one adapter at a time. (kvroute's default config spreads a new adapter's first
  // request by its no-hit LRU already; the filter must not depend on that.)
  const config = parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: lora-room-filter
  parameters:
    adapters: [sql, chat, summarize]
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: lora-room-filter
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
`);
  const body = (model: string, question: string): IncomingRequest => ({
    requestId: `${model}-${question}`, headers: new Map([[':method', 'POST'], [':path', '/v1/chat/completions']]), filterMetadata: {},
    body: Buffer.from(JSON.stringify({ model, messages: [{ role: 'user', content: question }] })),
  });
  const POD1 = '10.0.0.1:8000';
  const POD2 = '10.0.0.2:8000';

  it('a burst for new adapters within one scrape spreads over the pods with room; a pod frees its slot when its requests end', async () => {
    const ds = staticPool(2);
    try {
      for (const e of ds.endpoints()) ds.setMetrics(e.key, { lora: { running: [], waiting: [], maxLora: 1 } });
      const metrics = createEppMetrics();
      const scheduler = buildScheduler(config, { metrics: metrics.scheduling, random: seededRandom(3) });
      const director = new RequestControl({ datastore: ds, scheduler, metrics: metrics.collectors });
      const route = async (model: string, question: string) => {
        const d = await director.route(body(model, question));
        if (d.kind !== 'route') throw new Error(`${model}: ${d.kind}`);
        return d;
      };
      const sql = await route('sql', 'q1');
      expect(sql.endpoint).toBe(POD1);
      // The same adapter again: its pod is still open to it.
      const sql2 = await route('sql', 'q2');
      expect(sql2.endpoint).toBe(POD1);
      // Another adapter: pod 1's one slot is held by this EPP's sql requests, which its last scrape did not show.
      const chat = await route('chat', 'q3');
      expect(chat.endpoint).toBe(POD2);
      const filter = scheduler.plugin('lora-room-filter') as LoraRoomFilter;
      expect(filter.inFlightAdapters(POD1)).toEqual(['sql']);
      expect(filter.inFlightAdapters(POD2)).toEqual(['chat']);
      // A scrape shows pod 1 with the longer queue now, and no adapter yet on either pod.
      ds.setMetrics(POD1, { waitingQueueSize: 3, updateTime: Date.now() });
      ds.setMetrics(POD2, { waitingQueueSize: 0, updateTime: Date.now() });
      // Both slots held: the filter keeps every pod and the scorers choose (the request waits wherever it goes).
      const full = await route('summarize', 'q4');
      expect(full.endpoint).toBe(POD2);
      director.release(full.ticket, 'completed');
      // One sql request ends; the other still holds pod 1's slot.
      director.release(sql.ticket, 'completed');
      expect(filter.inFlightAdapters(POD1)).toEqual(['sql']);
      // The last one is cancelled by its client: pod 1's slot is free, and a new adapter goes there despite its queue.
      director.release(sql2.ticket, 'cancelled');
      expect(filter.inFlightAdapters(POD1)).toEqual([]);
      expect((await route('summarize', 'q5')).endpoint).toBe(POD1);
      // Response-complete is timed like GIE's other request-control extension points: one call per ended request.
      expect(await metrics.registry.metrics()).toMatch(/inference_extension_plugin_duration_seconds_count\{extension_point="ResponseStreaming",plugin_type="lora-room-filter",plugin_name="lora-room-filter"\} 3/);
    } finally {
      ds.stop();
    }
  });
});
