import { defaultEndpointPickerConfig, parseEndpointPickerConfig, validateEndpointPickerConfig, withPrefillPriority, type EndpointPickerConfig } from '../src/config';
import type { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest } from '../src/extproc/request-director';
import { MODEL_REWRITE_HEADER, RequestControl, withPriority } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { staticPool } from './static-pool';

/** The default config with `prefill-priority` after its prefix scorer (`withPrefillPriority`), with `parameters`. */
function prefillPriorityConfig(parameters: object = {}): EndpointPickerConfig {
  const config = withPrefillPriority(defaultEndpointPickerConfig());
  return validateEndpointPickerConfig({ ...config, plugins: config.plugins.map((p) => (p.type === 'prefill-priority' ? { ...p, parameters } : p)) });
}

const request = (body: object, headers: Record<string, string> = {}): IncomingRequest => ({
  requestId: 'r', headers: new Map([[':method', 'POST'], [':path', typeof body === 'object' && body !== null && 'messages' in body ? '/v1/chat/completions' : '/v1/completions'], ...Object.entries(headers)]), body: Buffer.from(JSON.stringify(body)), filterMetadata: {},
});

/** A 4,096-character prompt: 1,024 tokens at the approximate prefix scorer's 4 characters a token. */
const longPrompt = (seed: number): string => `${seed} `.padEnd(4096, 'abcd ');

describe('prefill-priority: vLLM\'s priority field from the pick\'s uncached prefill (vllm/entrypoints/openai/protocol.py, v1/core/sched/request_queue.py @ v0.10.0)', () => {
  let ds: Datastore;
  beforeEach(() => { ds = staticPool(3); });
  afterEach(() => ds.stop());

  test('a cold prompt goes out with "priority": uncached tokens ÷ tokensPerLevel as its first member; its cached repeat, at level 0, unchanged', () => {
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(prefillPriorityConfig()) });
    const body = { model: 'm', prompt: longPrompt(1), max_tokens: 4 };
    const cold = control.decide(request(body), () => new AbortController().signal);
    if ('then' in cold || cold.kind !== 'route') throw new Error('expected a synchronous route');
    expect(cold.body?.subarray(0, 15).toString()).toBe('{"priority":4,"');
    expect(JSON.parse(cold.body!.toString())).toEqual({ priority: 4, ...body });
    control.release(cold.ticket, 'completed');

    const warm = control.decide(request(body), () => new AbortController().signal);
    if ('then' in warm || warm.kind !== 'route') throw new Error('expected a synchronous route');
    expect(warm.endpoint).toBe(cold.endpoint);
    expect(warm.body).toBeUndefined();
    control.release(warm.ticket, 'completed');
  });

  test('the level is capped at maxPriority; a body that sets priority itself is left as the client sent it (no repeated member)', () => {
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(prefillPriorityConfig({ tokensPerLevel: 64, maxPriority: 3 })) });
    const capped = control.decide(request({ model: 'm', prompt: longPrompt(2) }), () => new AbortController().signal);
    if ('then' in capped || capped.kind !== 'route') throw new Error('expected a synchronous route');
    expect(capped.body?.toString()).toMatch(/^\{"priority":3,"model"/);
    for (const priority of [-5, 0, 7]) {
      const own = control.decide(request({ model: 'm', prompt: longPrompt(10 + priority), priority }), () => new AbortController().signal);
      if ('then' in own || own.kind !== 'route') throw new Error('expected a synchronous route');
      expect(own.body).toBeUndefined();
    }
  });

  test('with a model rewrite both edits reach the pod', () => {
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(prefillPriorityConfig()) });
    const d = control.decide(request({ model: 'm', prompt: longPrompt(3) }, { [MODEL_REWRITE_HEADER]: 'm-v2' }), () => new AbortController().signal);
    if ('then' in d || d.kind !== 'route') throw new Error('expected a synchronous route');
    expect(JSON.parse(d.body!.toString())).toEqual({ priority: 4, model: 'm-v2', prompt: longPrompt(3) });
  });

  test('it decides nothing: the same picks and scores as the config without it', () => {
    const plain = buildScheduler(defaultEndpointPickerConfig());
    const ranked = buildScheduler(prefillPriorityConfig());
    const snapshot = ds.snapshot();
    for (let i = 0; i < 5; i++) {
      const req = { requestId: `r${i}`, model: 'm', prompt: longPrompt(i), headers: {} };
      const a = plain.schedule(req, snapshot);
      const b = ranked.schedule(req, snapshot);
      expect(b.target.endpoint.key).toBe(a.target.endpoint.key);
    }
  });

  test('withPriority edits only the opening brace, whitespace and an empty object included; anything else is left alone', () => {
    expect(withPriority(Buffer.from(' \n{"a":1}'), 2)?.toString()).toBe(' \n{"priority":2,"a":1}');
    expect(withPriority(Buffer.from('{ }'), 7)?.toString()).toBe('{"priority":7 }');
    expect(JSON.parse(withPriority(Buffer.from('{ }'), 7)!.toString())).toEqual({ priority: 7 });
    expect(withPriority(Buffer.from('[1]'), 1)).toBeUndefined();
    expect(withPriority(Buffer.from(''), 1)).toBeUndefined();
  });

  test('parameters: defaults, and errors naming the field', () => {
    const yaml = (params: string) => `apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: prefill-priority\n  parameters: ${params}\n`;
    expect(parseEndpointPickerConfig(yaml('{}')).plugins[0]!.parameters).toEqual({ tokensPerLevel: 256, maxPriority: 16, charactersPerToken: 4 });
    expect(() => parseEndpointPickerConfig(yaml('{tokensPerLevel: 0}'))).toThrow('plugins[0].parameters.tokensPerLevel: must be an integer >= 1, got 0');
    expect(() => parseEndpointPickerConfig(yaml('{maxPriority: 0}'))).toThrow('plugins[0].parameters.maxPriority');
    expect(() => parseEndpointPickerConfig(yaml('{level: 1}'))).toThrow('plugins[0].parameters.level: unknown field; allowed: tokensPerLevel, maxPriority, charactersPerToken');
  });
});
