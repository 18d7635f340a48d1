import { defaultEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest, RequestDirector, RouteDecision } from '../src/extproc/request-director';
import { extProcServiceDefinition, streamSettings } from '../src/extproc/server';
import { ExtProcStream } from '../src/extproc/stream';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import { RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { ProcessingRequest } from '@kvroute/protocol/envoy';
import { requestBody, requestHeaders, waitFor, type Json } from './extproc-harness';

const T0 = Date.now();

function pool(n: number, waiting: number): Datastore {
  const ds = new Datastore({ scrape: false });
  for (let i = 0; i < n; i++) {
    const address = `10.0.0.${i + 1}`;
    ds.upsertEndpoint({ key: `${address}:8000`, name: `p${i}`, namespace: 'ns', address, port: 8000, labels: {} });
    ds.setMetrics(`${address}:8000`, { waitingQueueSize: waiting, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: T0, consecutiveFailures: 0 });
  }
  return ds;
}

const incoming = (id: string): IncomingRequest => ({
  requestId: id,
  headers: new Map([[':method', 'POST'], [':path', '/v1/chat/completions'], ['content-type', 'application/json']]),
  body: Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `hello ${id}` }] })),
  filterMetadata: {},
});

const isPromise = (x: unknown): boolean => typeof (x as { then?: unknown }).then === 'function';

describe('RequestControl.decide (the synchronous path)', () => {
  let ds: Datastore;
  let director: RequestControl | undefined;
  afterEach(async () => {
    director?.close();
    await ds.stop();
  });

  it('answers at once in the default config (its session filter has nothing to prepare without a store), without asking for the abort signal', () => {
    ds = pool(4, 0);
    director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 }) });
    let asked = 0;
    const viaDecide: string[] = [];
    for (let i = 0; i < 8; i++) {
      const d = director.decide(incoming(`r${i}`), () => {
        asked++;
        return new AbortController().signal;
      });
      expect(isPromise(d)).toBe(false);
      const decision = d as RouteDecision;
      if (decision.kind === 'route') {
        viaDecide.push(decision.endpoint);
        director.release(decision.ticket, 'completed');
      }
    }
    expect(asked).toBe(0);
    expect(viaDecide).toHaveLength(8);
    // Committed like route()'s picks: counted in flight until released (all were released above).
    expect(ds.snapshot().map((x) => x.activeRequests)).toEqual([0, 0, 0, 0]);
    const held = director.decide(incoming('h'), () => new AbortController().signal) as RouteDecision;
    expect(held.kind).toBe('route');
    expect(ds.snapshot().reduce((n, x) => n + x.activeRequests, 0)).toBe(1);
  });

  it('waits (a promise, with the signal asked for once) when every pod is saturated and flow control holds the request', async () => {
    ds = pool(2, 6); // past the default config's queueDepthThreshold of 5
    const queue = new FlowControlQueue({ maxQueued: 4, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
    director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 }), flowControl: { queue, tickMs: 5 } });
    let asked = 0;
    const d = director.decide(incoming('w'), () => {
      asked++;
      return new AbortController().signal;
    });
    expect(isPromise(d)).toBe(true);
    expect(asked).toBe(1);
    for (const s of ds.snapshot()) ds.setMetrics(s.endpoint.key, { waitingQueueSize: 0 });
    expect(await d).toMatchObject({ kind: 'route' });
  });
});

describe('ExtProcStream with a deciding director', () => {
  const def = extProcServiceDefinition().Process!;
  const wire = (m: Json): ProcessingRequest => (def.requestDeserialize as (b: Buffer) => ProcessingRequest)((def.requestSerialize as (m: unknown) => Buffer)(m));

  class Deciding implements RequestDirector {
    signals: (() => AbortSignal)[] = [];
    routeCalls = 0;
    constructor(private readonly answer: 'now' | 'later') {}
    route(): Promise<RouteDecision> {
      this.routeCalls++;
      return Promise.reject(new Error('route must not be called when decide exists'));
    }
    decide(_req: IncomingRequest, signal: () => AbortSignal): RouteDecision | Promise<RouteDecision> {
      this.signals.push(signal);
      const decision: RouteDecision = { kind: 'route', endpoint: '10.0.0.9:8000', ticket: 1 };
      return this.answer === 'now' ? decision : new Promise((resolve) => setTimeout(() => resolve(decision), 5));
    }
    release(): void {}
  }

  function open(director: RequestDirector): { stream: ExtProcStream; sent: unknown[] } {
    const sent: unknown[] = [];
    const stream = new ExtProcStream(streamSettings({ director }), { send: (m) => sent.push(m), end: () => undefined, fail: () => undefined });
    return { stream, sent };
  }

  it('answers a synchronous decision before the last body message returns', () => {
    const director = new Deciding('now');
    const { stream, sent } = open(director);
    stream.onMessage(wire(requestHeaders({ ':method': 'POST' }, false)));
    stream.onMessage(wire(requestBody('{}', true)));
    // The headers answer and the body, with no await in between.
    expect(sent).toHaveLength(2);
    expect(director.routeCalls).toBe(0);
  });

  it('a signal asked for before the stream is cancelled aborts with it; one asked for after is aborted already', async () => {
    const director = new Deciding('later');
    const first = open(director);
    first.stream.onMessage(wire(requestHeaders({ ':method': 'POST' }, false)));
    first.stream.onMessage(wire(requestBody('{}', true)));
    const early = director.signals[0]!();
    expect(early.aborted).toBe(false);
    first.stream.onCancel();
    expect(early.aborted).toBe(true);

    const second = open(director);
    second.stream.onMessage(wire(requestHeaders({ ':method': 'POST' }, false)));
    second.stream.onMessage(wire(requestBody('{}', true)));
    second.stream.onCancel();
    expect(director.signals[1]!().aborted).toBe(true);
    // The late decision for a closed stream sends nothing.
    await waitFor(() => true);
    await new Promise((r) => setTimeout(r, 20));
    expect(second.sent).toHaveLength(0);
  });
});
