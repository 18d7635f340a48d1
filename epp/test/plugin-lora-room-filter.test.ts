import { seededRandom } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, resolvePluginParameters, withLoraRoomFilter } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, type CycleContext } from '../src/scheduling/framework';
import { LoraRoomFilter } from '../src/scheduling/plugins/lora-room-filter';
import { buildScheduler } from '../src/scheduling/scheduler';

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
  const filter = new LoraRoomFilter('f', { adapters: ['sql', 'chat', 'summarize'] });
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

  it('keeps every pod when none could start the adapter now (the request waits wherever it goes)', () => {
    const full = [pool[1]!, pool[3]!];
    expect(filter.filter(forModel('sql'), full)).toBe(full);
  });

  it('hands the candidates on unchanged when all qualify', () => {
    const fine = [pool[0]!, pool[5]!];
    expect(filter.filter(forModel('sql'), fine)).toBe(fine);
  });

  it('parameters: adapters, a non-empty list of names', () => {
    expect(resolvePluginParameters('lora-room-filter', { adapters: ['sql'] })).toEqual({ adapters: ['sql'] });
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
