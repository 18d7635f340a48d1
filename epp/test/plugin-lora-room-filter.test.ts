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
  const filter = new LoraRoomFilter('f', { baseModels: ['base'] });
  const pool = [
    pod('runs', { running: ['sql'], maxLora: 1 }),
    pod('full', { running: ['chat'], maxLora: 1 }),
    pod('room', { running: ['chat'], maxLora: 2 }),
    pod('waitsOnly', { running: ['chat'], waiting: ['sql'], maxLora: 1 }),
    pod('fullWaiting', { running: [], waiting: ['chat'], maxLora: 1 }),
    pod('noLora'),
  ];

  it('keeps the pods running the adapter, those with room and those without LoRA state; drops the full ones', () => {
    expect(names(filter.filter(forModel('sql'), pool))).toEqual(['runs', 'room', 'noLora']);
  });

  it('never filters a base model\'s requests: vLLM schedules them whatever adapters run', () => {
    expect(filter.filter(forModel('base'), pool)).toBe(pool);
  });

  it('keeps every pod when none could start the adapter now (the request waits wherever it goes)', () => {
    const full = [pool[1]!, pool[3]!];
    expect(filter.filter(forModel('sql'), full)).toBe(full);
  });

  it('hands the candidates on unchanged when all qualify', () => {
    const fine = [pool[0]!, pool[5]!];
    expect(filter.filter(forModel('sql'), fine)).toBe(fine);
  });

  it('parameters: baseModels, a list of names, default none', () => {
    expect(resolvePluginParameters('lora-room-filter', undefined)).toEqual({ baseModels: [] });
    expect(resolvePluginParameters('lora-room-filter', { baseModels: ['Qwen/Qwen3-0.6B'] })).toEqual({ baseModels: ['Qwen/Qwen3-0.6B'] });
    expect(() => resolvePluginParameters('lora-room-filter', { baseModels: 'base' })).toThrow(/baseModels/);
  });

  it('withLoraRoomFilter puts it right after the role filter of the default config; the default scorers then never pick a full pod for a cold adapter request', () => {
    const config = withLoraRoomFilter(defaultEndpointPickerConfig(), ['base']);
    expect(config.schedulingProfiles[0]!.plugins.slice(0, 2)).toEqual([{ pluginRef: 'decode-filter' }, { pluginRef: 'lora-room-filter' }]);
    expect(withLoraRoomFilter(config, ['base'])).toBe(config);
    const scheduler = buildScheduler(config, { now: () => NOW, random: seededRandom(9) });
    const two = [pod('full', { running: ['chat'], maxLora: 1 }), pod('room', { running: [], maxLora: 1 })];
    for (let i = 0; i < 20; i++) {
      const request = { requestId: `r${i}`, model: 'sql', prompt: `cold prompt ${i} `.repeat(30), headers: {} };
      expect(scheduler.schedule(request, two).target.endpoint.name).toBe('room');
    }
  });
});
