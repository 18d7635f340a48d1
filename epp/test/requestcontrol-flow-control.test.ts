import { sleep, turns, waitFor } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig } from '../src/config';
import { Datastore, STUCK_GAUGES_MS } from '../src/datastore/datastore';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { DROPPED_REASON_HEADER, FLOW_CONTROL_HEADER, FlowControlQueue, FlowControlRejection, type FlowControlOptions, type FlowRequest } from '../src/requestcontrol/flow-control';
import { LLMD_FLOW_QUEUE_DURATION_HEADER, LLMD_TTL_HEADER, PRIORITY_HEADER, RequestControl, SUBSET_HINT_KEY, SUBSET_HINT_NAMESPACE, requestTtlMs } from '../src/requestcontrol/request-control';
import { LATE_WINDOW_MS } from '../src/scheduling/plugins/saturation-filter';
import { buildScheduler } from '../src/scheduling/scheduler';

/** A queue on a manual clock, with deadlines expired only when the test says so. */
function queue(options: Partial<FlowControlOptions> = {}) {
  let now = 1_000;
  const q = new FlowControlQueue({ maxQueued: 8, maxWaitMs: 1_000, maxDispatchPerCall: 100, now: () => now, timers: false, ...options });
  return { q, advance: (ms: number) => { now += ms; }, now: () => now };
}

/** Enqueues and records the outcome under `label` in `log`, in the order outcomes happen. */
function track(q: FlowControlQueue, log: string[], label: string, request: FlowRequest): Promise<void> {
  return q.enqueue(request).then(
    () => { log.push(label); },
    (e: unknown) => { log.push(`${label}:${e instanceof FlowControlRejection ? e.reason : String(e)}`); },
  );
}

describe('FlowControlQueue', () => {
  it('holds requests until dispatched and releases no more than the capacity offered', async () => {
    const { q } = queue();
    const log: string[] = [];
    for (let i = 0; i < 3; i++) void track(q, log, `r${i}`, { flow: 'f', priority: 0 });
    await turns(5);
    expect(log).toEqual([]);
    expect(q.size).toBe(3);
    expect(q.dispatch(2)).toBe(2);
    await turns(5);
    expect(log).toEqual(['r0', 'r1']);
    expect(q.dispatch(0)).toBe(0);
    expect(q.dispatch(5)).toBe(1);
    await turns(5);
    expect(log).toEqual(['r0', 'r1', 'r2']);
    expect(q.size).toBe(0);
  });

  it('paces a backlog: one dispatch releases at most maxDispatchPerCall, whatever capacity a stall left', async () => {
    const { q } = queue({ maxQueued: 100, maxDispatchPerCall: 4 });
    const log: string[] = [];
    for (let i = 0; i < 30; i++) void track(q, log, `r${i}`, { flow: `s${i}`, priority: 0 });
    expect(q.dispatch(1_000)).toBe(4);
    await turns(5);
    expect(log).toHaveLength(4);
    expect(q.size).toBe(26);
  });

  it('is bounded: a newcomer beyond maxQueued is rejected as queue-full, and the waiting ones are kept', async () => {
    const { q } = queue({ maxQueued: 3 });
    const log: string[] = [];
    const waiting = [0, 1, 2].map((i) => track(q, log, `r${i}`, { flow: 'f', priority: 0 }));
    await track(q, log, 'late', { flow: 'g', priority: 0 });
    expect(log).toEqual(['late:queue-full']);
    expect(q.size).toBe(3);
    q.dispatch(3);
    await Promise.all(waiting);
    expect(log).toEqual(['late:queue-full', 'r0', 'r1', 'r2']);
  });

  it('sheds sheddable requests first: a newcomer displaces the newest of the lowest-priority sheddable ones below it', async () => {
    const { q } = queue({ maxQueued: 4 });
    const log: string[] = [];
    void track(q, log, 'batch-old', { flow: 'batch', priority: -2 });
    void track(q, log, 'batch-new', { flow: 'batch', priority: -2 });
    void track(q, log, 'bulk', { flow: 'bulk', priority: -1 });
    void track(q, log, 'chat', { flow: 'chat', priority: 0 });
    // Full. A standard request displaces the newest priority −2 request.
    void track(q, log, 'chat2', { flow: 'chat', priority: 0 });
    await turns(5);
    expect(log).toEqual(['batch-new:shed']);
    // A sheddable newcomer of priority −1 may displace the remaining −2, never a peer or anything standard.
    void track(q, log, 'bulk2', { flow: 'bulk', priority: -1 });
    await turns(5);
    expect(log).toEqual(['batch-new:shed', 'batch-old:shed']);
    await track(q, log, 'bulk3', { flow: 'bulk', priority: -1 });
    expect(log.at(-1)).toBe('bulk3:queue-full');
    // Nothing sheddable is left below a standard request: queue-full, and non-sheddable requests are never displaced.
    void track(q, log, 'x', { flow: 'x', priority: -1 });
    await turns(5);
    expect(log.at(-1)).toBe('x:queue-full');
    expect(q.sizes()).toEqual(new Map([[0, 2], [-1, 2]]));
  });

  it('a retry keeps its place for shedding too: a request released into a full pool and back is not the newest of its band', async () => {
    // Newest first by arrival, as llm-d-router v0.10.0 evicts the newest of the lowest priority first
    // (eviction/ordering/priority_time.go Less) and as kvroute's retries keep their place: before, a retry was pushed
    // again and counted newest, so in a saturated pool (each tick's releases coming back) the sheddable requests that
    // had waited longest were the first displaced.
    const { q } = queue({ maxQueued: 2 });
    const log: string[] = [];
    const oldest = q.arrivalTicket();
    void track(q, log, 'old', { flow: 'batch', priority: -1, arrival: oldest });
    void track(q, log, 'new', { flow: 'batch', priority: -1 });
    // The tick releases the oldest; it finds every pod saturated and goes back with its ticket.
    expect(q.dispatch(1)).toBe(1);
    await turns(5);
    expect(log).toEqual(['old']);
    void track(q, log, 'old-retry', { flow: 'batch', priority: -1, arrival: oldest, retry: true });
    // Full: a standard newcomer displaces the sheddable request that arrived last.
    void track(q, log, 'chat', { flow: 'chat', priority: 0 });
    await turns(5);
    expect(log).toEqual(['old', 'new:shed']);
  });

  it('sheds the newest sheddable requests still waiting, passing over those that left (aborted, dispatched), however many left before', async () => {
    const { q } = queue({ maxQueued: 200, maxDispatchPerCall: 200 });
    const log: string[] = [];
    const aborts: AbortController[] = [];
    for (let i = 0; i < 200; i++) {
      const abort = new AbortController();
      aborts.push(abort);
      void track(q, log, `b${i}`, { flow: `f${i % 7}`, priority: -1, signal: abort.signal });
    }
    // The newest ten and every third of the rest leave: 126 wait, the newest of them b188.
    for (let i = 0; i < 200; i++) if (i >= 190 || i % 3 === 0) aborts[i]!.abort();
    await turns(5);
    expect(q.size).toBe(126);
    // 74 newcomers fit without shedding; each of the next 5 displaces the newest sheddable one still waiting.
    for (let i = 0; i < 79; i++) void track(q, log, `c${i}`, { flow: 'chat', priority: 0 });
    await turns(5);
    expect(log.filter((l) => l.endsWith(':shed'))).toEqual(['b188:shed', 'b187:shed', 'b185:shed', 'b184:shed', 'b182:shed']);
    expect(q.size).toBe(200);
    // The oldest are released first within their flows; the shed ones are not among them, and nothing is lost.
    expect(q.dispatch(200)).toBe(200);
    await turns(5);
    expect(log.filter((l) => !l.includes(':')).length).toBe(200);
    expect(new Set(log.map((l) => l.split(':')[0])).size).toBe(log.length);
  });

  it('shedding for room passes over requests that left in between, and holds after most of a band left', async () => {
    // Several victims for one newcomer (bytes), two of the newest gone: the next older ones go instead.
    const bytes = queue({ maxQueued: 100, maxQueuedBytes: 1_000 });
    const log: string[] = [];
    const aborts = Array.from({ length: 10 }, () => new AbortController());
    for (let i = 0; i < 10; i++) void track(bytes.q, log, `s${i}`, { flow: 'batch', priority: -1, bytes: 100, signal: aborts[i]!.signal });
    aborts[8]!.abort();
    aborts[6]!.abort();
    await turns(5);
    void track(bytes.q, log, 'big', { flow: 'chat', priority: 0, bytes: 500 });
    await turns(5);
    expect(log).toEqual(['s8:aborted', 's6:aborted', 's9:shed', 's7:shed', 's5:shed']);
    expect(bytes.q.queuedBytes).toBe(1_000);
    // 50 of 60 leave (its bookkeeping of who left is rebuilt on the way): the newest still waiting is shed first.
    const count = queue({ maxQueued: 60 });
    const log2: string[] = [];
    const aborts2 = Array.from({ length: 60 }, () => new AbortController());
    for (let i = 0; i < 60; i++) void track(count.q, log2, `d${i}`, { flow: `f${i % 7}`, priority: -1, signal: aborts2[i]!.signal });
    for (let i = 0; i < 50; i++) aborts2[i]!.abort();
    await turns(5);
    for (let i = 0; i < 51; i++) void track(count.q, log2, `c${i}`, { flow: 'chat', priority: 0 });
    await turns(5);
    expect(log2.filter((l) => !l.endsWith(':aborted'))).toEqual(['d59:shed']);
    expect(count.q.size).toBe(60);
  });

  it('its bands\' arrival lists (for shedding) hold no more than about twice the waiters: those that left are dropped', async () => {
    const { q } = queue({ maxQueued: 100, maxDispatchPerCall: 100 });
    const log: string[] = [];
    const band = () => (q as unknown as { bands: Map<number, { size: number; pushed: unknown[] }> }).bands.get(-1)!;
    let maxOver = 0;
    for (let round = 0; round < 500; round++) {
      const aborts = Array.from({ length: 10 }, () => new AbortController());
      for (let i = 0; i < 10; i++) void track(q, log, `r${round}.${i}`, { flow: `f${i % 3}`, priority: -1, signal: aborts[i]!.signal });
      // Some leave aborted (from the middle of the list), the others are dispatched; a few stay waiting a round.
      for (let i = 0; i < 10; i += 3) aborts[i]!.abort();
      q.dispatch(round % 2 === 0 ? 5 : 10);
      maxOver = Math.max(maxOver, band().pushed.length - 2 * band().size);
    }
    await turns(5);
    expect(log.length).toBeGreaterThan(4_900);
    expect(maxOver).toBeLessThanOrEqual(33);
  });

  it('is bounded in bytes too: a newcomer whose body would pass maxQueuedBytes is queue-full; leaving frees its bytes', async () => {
    const { q } = queue({ maxQueued: 100, maxQueuedBytes: 1_000 });
    const log: string[] = [];
    void track(q, log, 'a', { flow: 'f', priority: 0, bytes: 600 });
    void track(q, log, 'b', { flow: 'g', priority: 0, bytes: 400 });
    expect(q.queuedBytes).toBe(1_000);
    await track(q, log, 'one-more-byte', { flow: 'h', priority: 0, bytes: 1 });
    expect(log).toEqual(['one-more-byte:queue-full']);
    // A request alone larger than the bound never fits, even in an empty queue.
    q.dispatch(2);
    await turns(5);
    expect(q.queuedBytes).toBe(0);
    await track(q, log, 'huge', { flow: 'h', priority: 0, bytes: 1_001 });
    expect(log.at(-1)).toBe('huge:queue-full');
    // Bodies of no size count nothing; the request bound still holds them.
    void track(q, log, 'empty', { flow: 'h', priority: 0 });
    await turns(5);
    expect(q.size).toBe(1);
    expect(q.queuedBytes).toBe(0);
  });

  it('sheds as many sheddable requests as a large newcomer needs, lowest band and newest first, and none when they would not make room', async () => {
    const { q, advance } = queue({ maxQueued: 100, maxQueuedBytes: 1_000 });
    const log: string[] = [];
    void track(q, log, 'batch-old', { flow: 'b1', priority: -2, bytes: 300 });
    void track(q, log, 'batch-new', { flow: 'b2', priority: -2, bytes: 300 });
    void track(q, log, 'bulk', { flow: 'b3', priority: -1, bytes: 300 });
    void track(q, log, 'chat', { flow: 'c', priority: 0, bytes: 100 });
    // 1,000 held. A standard newcomer of 500 needs two sheddable ones gone: the -2 band's newest, then its oldest.
    void track(q, log, 'chat-large', { flow: 'c2', priority: 0, bytes: 500 });
    await turns(5);
    expect(log).toEqual(['batch-new:shed', 'batch-old:shed']);
    expect(q.queuedBytes).toBe(900);
    // A newcomer that even shedding every sheddable request below it (bulk's 300) could not fit sheds nothing.
    await track(q, log, 'chat-huge', { flow: 'c3', priority: 0, bytes: 500 });
    expect(log.at(-1)).toBe('chat-huge:queue-full');
    expect(q.sizes()).toEqual(new Map([[0, 2], [-1, 1]]));
    expect(q.queuedBytes).toBe(900);
    // Leaving by deadline or abort frees bytes as dispatch does.
    advance(2_000);
    expect(q.expire()).toBe(3);
    await turns(5);
    expect(q.queuedBytes).toBe(0);
  });

  it('dispatches higher priority first, whatever the arrival order', async () => {
    const { q } = queue();
    const log: string[] = [];
    void track(q, log, 'low', { flow: 'a', priority: -1 });
    void track(q, log, 'std', { flow: 'b', priority: 0 });
    void track(q, log, 'high', { flow: 'c', priority: 5 });
    q.dispatch(3);
    await turns(5);
    expect(log).toEqual(['high', 'std', 'low']);
  });

  it('is fair across flows: flows of one priority take turns in sorted flow-key order (GIE v1.5.0 roundrobin.go), each first come first served', async () => {
    const { q } = queue({ maxQueued: 100 });
    const log: string[] = [];
    for (let i = 1; i <= 6; i++) void track(q, log, `A${i}`, { flow: 'chatty', priority: 0 });
    void track(q, log, 'B1', { flow: 'quiet', priority: 0 });
    void track(q, log, 'B2', { flow: 'quiet', priority: 0 });
    void track(q, log, 'C1', { flow: 'late', priority: 0 });
    q.dispatch(100);
    await turns(5);
    expect(log).toEqual(['A1', 'C1', 'B1', 'A2', 'B2', 'A3', 'A4', 'A5', 'A6']);
  });

  // GIE v1.5.0 pkg/epp/framework/plugins/flowcontrol/fairness/roundrobin_test.go TestRoundRobin_Pick_Logic ("Expected
  // order is based on sorted FlowKeys: flow1, flow2, flow3", the band's keys handed over unsorted) and
  // TestRoundRobin_Pick_SkipsEmptyQueues: roundrobin.go Pick sorts the band's flow keys (FlowKey.Compare: priority, then
  // ID) and serves the first non-empty flow after the last one served, wrapping. (Reviewer rev-flow's test.)
  it('round robin serves flows in sorted flow-key order, from the flow after the last one served: flows arriving flow3, flow1, flow2 go flow1, flow2, flow3, then around again, skipping empty ones (GIE v1.5.0 roundrobin.go Pick)', async () => {
    const { q } = queue({ maxQueued: 100, defaultBand: { fairness: 'round-robin' } });
    const log: string[] = [];
    // TestRoundRobin_Pick_Logic's band: flow1 holds 1, flow2 2, flow3 3; keys handed over unsorted (flow3, flow1, flow2).
    for (const [flow, n] of [['flow3', 3], ['flow1', 1], ['flow2', 2]] as const) {
      for (let i = 0; i < n; i++) void track(q, log, flow, { flow, priority: 0 });
    }
    for (let i = 0; i < 6; i++) q.dispatch(1);
    await turns(5);
    expect(log).toEqual(['flow1', 'flow2', 'flow3', 'flow2', 'flow3', 'flow3']);
    // The cursor is the key last served, not a place in a list: a flow that joins sorts into its turn (flow25 after
    // flow2, before flow3), and flow1, empty a while, is next after the last flow again.
    void track(q, log, 'flow3', { flow: 'flow3', priority: 0 });
    void track(q, log, 'flow1', { flow: 'flow1', priority: 0 });
    q.dispatch(1);
    void track(q, log, 'flow25', { flow: 'flow25', priority: 0 });
    void track(q, log, 'flow2', { flow: 'flow2', priority: 0 });
    q.dispatch(3);
    await turns(5);
    expect(log.slice(6)).toEqual(['flow1', 'flow2', 'flow25', 'flow3']);
  });

  it('round robin orders flow keys as Go compares strings, by UTF-8 bytes (code points), not by UTF-16 units', async () => {
    const { q } = queue({ maxQueued: 100, defaultBand: { fairness: 'round-robin' } });
    const log: string[] = [];
    // U+FF21 (EF BC A1 in UTF-8) sorts before U+1F600 (F0 9F 98 80); in UTF-16 the emoji's surrogate D83D comes first.
    for (const flow of ['\u{1F600}', '\uFF21', 'a']) void track(q, log, flow, { flow, priority: 0 });
    q.dispatch(3);
    await turns(5);
    expect(log).toEqual(['a', '\uFF21', '\u{1F600}']);
  });

  it('rejects a request whose deadline passed as deadline, keeping the others', async () => {
    const { q, advance, now } = queue();
    const log: string[] = [];
    void track(q, log, 'short', { flow: 'a', priority: 0, deadlineMs: now() + 100 });
    void track(q, log, 'default', { flow: 'b', priority: 0 });
    advance(100);
    expect(q.expire()).toBe(1);
    await turns(5);
    expect(log).toEqual(['short:deadline']);
    advance(899);
    expect(q.expire()).toBe(0);
    // Dispatch expires first: a request past its deadline is never dispatched.
    advance(1);
    expect(q.dispatch(10)).toBe(0);
    await turns(5);
    expect(log).toEqual(['short:deadline', 'default:deadline']);
  });

  it('at 20,000 waiting (a size GIE\'s configs allow), expiry rejects exactly the due requests, earliest deadline first, and dispatch releases the rest (deadlines kept in a heap, not rescanned on every enqueue: bench:flow-control)', async () => {
    const n = 20_000;
    const { q, advance, now } = queue({ maxQueued: n, maxWaitMs: 10_000, maxDispatchPerCall: n });
    const rejected: number[] = [];
    let released = 0;
    const deadlines: number[] = [];
    const start = now();
    for (let i = 0; i < n; i++) {
      // Deadlines out of arrival order: every 7th its own, the rest the default, spread over 1,000 flows.
      const deadlineMs = i % 7 === 0 ? start + 1 + ((i * 7919) % 20_000) : undefined;
      deadlines.push(deadlineMs ?? start + 10_000);
      void q.enqueue({ flow: `s${i % 1_000}`, priority: 0, ...(deadlineMs !== undefined ? { deadlineMs } : {}) }).then(
        () => { released++; },
        (e: unknown) => { rejected.push(e instanceof FlowControlRejection && e.reason === 'deadline' ? i : -1); },
      );
    }
    expect(q.size).toBe(n);
    advance(5_000);
    const dueFirst = deadlines.filter((d) => d <= start + 5_000).length;
    expect(q.expire()).toBe(dueFirst);
    await turns(5);
    expect(rejected).toHaveLength(dueFirst);
    expect(rejected.every((i, k) => i >= 0 && (k === 0 || deadlines[rejected[k - 1]!]! <= deadlines[i]!))).toBe(true);
    advance(5_000);
    const dueBoth = deadlines.filter((d) => d <= start + 10_000).length;
    expect(q.expire()).toBe(dueBoth - dueFirst);
    expect(q.dispatch(n)).toBe(n - dueBoth);
    await turns(5);
    expect(released).toBe(n - dueBoth);
    expect(rejected).toHaveLength(dueBoth);
    expect(q.size).toBe(0);
  });

  it('rejects on its own timer when nothing else happens', async () => {
    const q = new FlowControlQueue({ maxQueued: 4, maxWaitMs: 20, maxDispatchPerCall: 4 });
    const log: string[] = [];
    void track(q, log, 'r', { flow: 'a', priority: 0 });
    await waitFor(() => log.length === 1, 'the deadline timer');
    expect(log).toEqual(['r:deadline']);
    q.close();
  });

  it('arms its timer at the earliest deadline of any waiter, a request\'s own included, and re-arms past one that left', async () => {
    // The timer reads the deadline heap's top: a request's own deadlineMs earlier than the default deadline of those
    // before it is rejected on time, and an aborted earlier one (a dead top) does not stop the timer at the next.
    const q = new FlowControlQueue({ maxQueued: 8, maxWaitMs: 60_000, maxDispatchPerCall: 8 });
    const log: string[] = [];
    const abort = new AbortController();
    void track(q, log, 'long', { flow: 'a', priority: 0 });
    // Deadlines a second apart from now, not milliseconds: a stall of the process between these lines must not let
    // `gone` expire (each enqueue expires what is due) before it is aborted.
    void track(q, log, 'gone', { flow: 'b', priority: 0, deadlineMs: Date.now() + 1_000, signal: abort.signal });
    void track(q, log, 'short', { flow: 'c', priority: 0, deadlineMs: Date.now() + 1_500 });
    abort.abort();
    await waitFor(() => log.length === 2, 'the own deadline timer', { limitMs: 20_000 });
    expect(log).toEqual(['gone:aborted', 'short:deadline']);
    expect(q.size).toBe(1);
    q.close();
  });

  it('forgets a request whose client went away, and rejects everything when closed', async () => {
    const { q } = queue();
    const log: string[] = [];
    const abort = new AbortController();
    void track(q, log, 'gone', { flow: 'a', priority: 0, signal: abort.signal });
    void track(q, log, 'stays', { flow: 'a', priority: 0 });
    abort.abort();
    await turns(5);
    expect(log).toEqual(['gone:aborted']);
    expect(q.size).toBe(1);
    q.close();
    await track(q, log, 'after', { flow: 'a', priority: 0 });
    expect(log).toEqual(['gone:aborted', 'stays:closed', 'after:closed']);
  });

  it('an idle queue\'s dispatch (request control calls it at every request\'s end) returns at once; one that just lost a waiter still re-arms its timer', async () => {
    let reads = 0;
    // A deadline long enough that the gone waiter's timer cannot fire during the few turns below on a loaded machine
    // (at 20 ms it did in CI, and the dispatch then rightly took the idle path).
    const q = new FlowControlQueue({ maxQueued: 4, maxWaitMs: 1000, maxDispatchPerCall: 4, now: () => { reads++; return Date.now(); } });
    expect(q.dispatch(1)).toBe(0);
    expect(reads).toBe(0);
    // A waiter that went away leaves its deadline timer armed: the next dispatch takes the full path (and re-arms it).
    const log: string[] = [];
    const abort = new AbortController();
    void track(q, log, 'gone', { flow: 'a', priority: 0, signal: abort.signal });
    abort.abort();
    await turns(5);
    const before = reads;
    expect(q.dispatch(1)).toBe(0);
    expect(reads).toBeGreaterThan(before);
    // Idle again, and a newcomer is still rejected on time by the timer.
    const idle = reads;
    expect(q.dispatch(1)).toBe(0);
    expect(reads).toBe(idle);
    void track(q, log, 'late', { flow: 'b', priority: 0 });
    await waitFor(() => log.length === 2, 'the deadline timer');
    expect(log).toEqual(['gone:aborted', 'late:deadline']);
    q.close();
  });

  it('a retry (dispatched, still saturated) goes back to the head of its flow and is never refused for room', async () => {
    const { q } = queue({ maxQueued: 2 });
    const log: string[] = [];
    // As request control sends them: the retry keeps its first arrival ticket.
    const arrival = q.arrivalTicket();
    void track(q, log, 'a1', { flow: 'a', priority: 0, arrival });
    void track(q, log, 'a2', { flow: 'a', priority: 0 });
    expect(q.dispatch(1)).toBe(1);
    await turns(5);
    expect(log).toEqual(['a1']);
    // a1 found no capacity; meanwhile a newcomer took its slot. The retry still gets in, ahead of a2, and its turn back.
    void track(q, log, 'b1', { flow: 'b', priority: 0 });
    void track(q, log, 'a1-retry', { flow: 'a', priority: 0, retry: true, arrival });
    await turns(5);
    expect(q.size).toBe(3);
    q.dispatch(1);
    await turns(5);
    expect(log).toEqual(['a1', 'a1-retry']);
  });

  it('narrowed requests (the proxy\'s subset hint) wait apart: they take none of the pool-wide releases, a retry goes to the back of their rotation, and newcomers do not queue behind them', async () => {
    const { q } = queue({ maxDispatchPerCall: 2 });
    const log: string[] = [];
    for (const id of ['n1', 'n2', 'n3']) void track(q, log, id, { flow: id, priority: 0, narrowed: true });
    void track(q, log, 'w1', { flow: 'w1', priority: 0 });
    void track(q, log, 'w2', { flow: 'w2', priority: 0 });
    void track(q, log, 'w3', { flow: 'w3', priority: 0 });
    // Only pool-wide waiters make a newcomer wait its turn.
    expect(q.highestWaitingPriority()).toBe(0);
    // One call: two pool-wide releases, and two narrowed ones besides, not in their place.
    expect(q.dispatch(Infinity)).toBe(4);
    await turns(5);
    expect(log).toEqual(['w1', 'w2', 'n1', 'n2']);
    // n1 and n2 found their pods still full: back, behind n3.
    void track(q, log, 'n1-retry', { flow: 'n1', priority: 0, narrowed: true, retry: true });
    void track(q, log, 'n2-retry', { flow: 'n2', priority: 0, narrowed: true, retry: true });
    await turns(5);
    expect(q.dispatch(Infinity)).toBe(3);
    await turns(5);
    expect(log).toEqual(['w1', 'w2', 'n1', 'n2', 'w3', 'n3', 'n1-retry']);
    expect(q.highestWaitingPriority()).toBeUndefined();
    expect(q.size).toBe(1);
    // A narrowed waiter still counts against the bounds, and leaves on its deadline like any other.
    expect(q.sizes()).toEqual(new Map([[0, 1]]));
  });

  it('strict priority holds with narrowed requests: a lower band\'s narrowed ones wait while a higher band\'s pool-wide ones do (review 29)', async () => {
    const { q } = queue({ maxQueued: 32, maxDispatchPerCall: 4 });
    const log: string[] = [];
    for (let i = 0; i < 10; i++) void track(q, log, `high${i}`, { flow: `h${i}`, priority: 10 });
    for (let i = 0; i < 3; i++) void track(q, log, `low${i}`, { flow: `l${i}`, priority: -5, narrowed: true });
    expect(q.dispatch(Infinity)).toBe(4);
    await turns(5);
    expect(log).toEqual(['high0', 'high1', 'high2', 'high3']);
  });

  it('a rejection carries its reason and no stack (it is an answer, and capturing one cost most of shedding under a flood); other errors keep theirs', () => {
    const before = Error.stackTraceLimit;
    const e = new FlowControlRejection('shed');
    expect(e).toBeInstanceOf(Error);
    expect(e.reason).toBe('shed');
    expect(e.message).toBe('flow control rejected the request: shed');
    expect(e.stack ?? '').not.toMatch(/\n\s+at /);
    expect(Error.stackTraceLimit).toBe(before);
    expect(new Error('x').stack).toMatch(/\n\s+at /);
  });

  it('rejects bad options naming the field', () => {
    expect(() => new FlowControlQueue({ maxQueued: 0, maxWaitMs: 1, maxDispatchPerCall: 1 })).toThrow('maxQueued must be an integer >= 1, got 0');
    expect(() => new FlowControlQueue({ maxQueued: 1, maxWaitMs: 0, maxDispatchPerCall: 1 })).toThrow('maxWaitMs must be > 0 (Infinity: no deadline), got 0');
    expect(() => new FlowControlQueue({ maxQueued: 1, maxWaitMs: 1, maxDispatchPerCall: 1.5 })).toThrow('maxDispatchPerCall must be an integer >= 1, got 1.5');
    expect(() => new FlowControlQueue({ maxQueued: 1, maxQueuedBytes: 0, maxWaitMs: 1, maxDispatchPerCall: 1 })).toThrow('maxQueuedBytes must be an integer >= 1, got 0');
  });
});

describe('RequestControl with flow control: saturated pools queue instead of answering 429 at once', () => {
  const T0 = 1_700_000_000_000;
  let ds: Datastore;
  let director: RequestControl | undefined;
  const setWaiting = (waiting: number) => {
    for (let i = 0; i < 2; i++) {
      ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: waiting, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: T0, consecutiveFailures: 0 });
    }
  };
  beforeEach(() => {
    // The tests set pages by hand on Date.now (often jest's fake one), the scheduler's clock: discovery times and the
    // since-scrape ledger follow it too.
    ds = new Datastore({ scrape: false, now: () => Date.now() });
    for (let i = 0; i < 2; i++) {
      const address = `10.0.0.${i + 1}`;
      ds.upsertEndpoint({ key: `${address}:8000`, name: `p${i}`, namespace: 'ns', address, port: 8000, labels: {} });
    }
    setWaiting(6); // past the default config's queueDepthThreshold of 5: every pod saturated
  });
  afterEach(() => {
    director?.close();
    ds.stop();
  });

  function control(options: Partial<FlowControlOptions>): RequestControl {
    // The scheduler's clock is pinned to the metrics' time so they never go stale while a test waits.
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 });
    const queue = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4, ...options });
    director = new RequestControl({ datastore: ds, scheduler, flowControl: { queue, tickMs: 5 } });
    return director;
  }
  const incoming = (id: string, headers: Record<string, string> = {}): IncomingRequest => ({
    requestId: id,
    headers: new Map([[':method', 'POST'], ['content-type', 'application/json'], ...Object.entries(headers)]),
    body: Buffer.from(JSON.stringify({ model: 'm', prompt: `hello ${id}` })),
    filterMetadata: {},
  });

  // The pool emptied while the request waited (scaled to zero, every pod deleted): llm-d-router answers a queued
  // request with no endpoint left to serve it 503 ServiceUnavailable with x-llm-d-request-dropped-reason
  // rejected-no-endpoints ("No serving capacity exists (e.g. pool scaled to zero): signal genuine unavailability rather
  // than backpressure", pkg/epp/requestcontrol/admission.go translateFlowControlOutcome, QueueOutcomeRejectedNoEndpoints
  // and QueueOutcomeEvictedNoEndpoints, llm-d/llm-d-router @ ebab6879), not 429: a retry into an empty pool will not help.
  it('a request waiting while every pod leaves the pool is answered 503 rejected-no-endpoints, not 429', async () => {
    const rc = control({});
    let answer: RouteDecision | undefined;
    void rc.route(incoming('orphan')).then((d) => { answer = d; });
    await turns(20);
    expect(answer).toBeUndefined();
    for (let i = 0; i < 2; i++) ds.removeEndpoint(`10.0.0.${i + 1}:8000`);
    await waitFor(() => answer !== undefined, 'the waiting request to be answered');
    expect(answer).toMatchObject({ kind: 'reject', status: 503, headers: { [DROPPED_REASON_HEADER]: 'rejected-no-endpoints' } });
    expect(JSON.parse((answer as { body: string }).body).error).toMatchObject({ code: 'no_ready_endpoints' });
  });

  it('holds every request of a burst while the pods are saturated and routes all of them once they drain: no 429', async () => {
    const rc = control({});
    const decisions: RouteDecision[] = [];
    const pending = Array.from({ length: 10 }, (_, i) => rc.route(incoming(`r${i}`, { 'x-session-id': `s${i % 3}` })).then((d) => { decisions.push(d); }));
    await turns(20);
    expect(decisions).toEqual([]);
    setWaiting(0);
    await Promise.all(pending);
    expect(decisions.map((d) => d.kind)).toEqual(Array(10).fill('route'));
  });

  it('counts each waiting request\'s body against maxQueuedBytes: past it a 429 names queue-full', async () => {
    const rc = control({ maxQueuedBytes: 2 * incoming('r0').body!.length });
    const waiting = [rc.route(incoming('r0')), rc.route(incoming('r1'))];
    const third = await rc.route(incoming('r2'));
    expect(third).toMatchObject({ kind: 'reject', status: 429, headers: { [FLOW_CONTROL_HEADER]: 'queue-full' } });
    setWaiting(0);
    for (const d of await Promise.all(waiting)) expect(d.kind).toBe('route');
  });

  it('answers 429 naming the reason when the queue is full, and when the deadline passes, in kvroute\'s header and llm-d-router\'s (pkg/common/error/error.go, requestcontrol/admission.go translateFlowControlError)', async () => {
    // The queue's clock stands still until 'b' is refused: on the real clock a stall of 50 ms between the two routes
    // (a loaded machine) expired 'a' first, and 'b' then found room and waited out its own deadline.
    let now = 0;
    const rc = control({ maxQueued: 1, maxWaitMs: 50, now: () => now });
    const first = rc.route(incoming('a'));
    const second = await rc.route(incoming('b'));
    expect(second).toMatchObject({ kind: 'reject', status: 429, headers: { [FLOW_CONTROL_HEADER]: 'queue-full', [DROPPED_REASON_HEADER]: 'rejected-saturated' } });
    now = 51; // past 'a''s deadline: the queue's own timer rejects it
    expect(await first).toMatchObject({ kind: 'reject', status: 429, headers: { [FLOW_CONTROL_HEADER]: 'deadline', [DROPPED_REASON_HEADER]: 'rejected-ttl-expired' } });
  });

  it('x-llm-d-inference-ttl shortens the default wait for its request; an unreadable or non-positive one is ignored (llm-d-router #2649 requestcontrol/admission.go Admit, time.ParseDuration)', async () => {
    const rc = control({ maxQueued: 8, maxWaitMs: 60_000 });
    const outcomes = new Map<string, string>();
    const send = (id: string, ttl?: string) => rc.route(incoming(id, ttl !== undefined ? { [LLMD_TTL_HEADER]: ttl } : {}))
      .then((d) => { outcomes.set(id, d.kind === 'reject' ? `${d.status} ${d.headers?.[FLOW_CONTROL_HEADER]}` : d.kind); });
    const pending = [send('default'), send('garbled', 'soon'), send('zero', '0s'), send('negative', '-1s'), send('empty', ' ')];
    await send('short', ' 40ms ');
    expect(outcomes).toEqual(new Map([['short', '429 deadline']]));
    setWaiting(0);
    await Promise.all(pending);
    expect([...outcomes.values()].filter((o) => o === 'route')).toHaveLength(5);
    expect(requestTtlMs('1m30s')).toBe(90_000);
    expect(requestTtlMs('1.5s')).toBe(1_500);
    expect(requestTtlMs(undefined)).toBeUndefined();
  });

  it('x-llm-d-inference-ttl never lengthens a finite default (a client cannot hold its queue slot longer), and sets one where the default is none (llm-d-router #2316, #2649)', async () => {
    const rc = control({ maxQueued: 8, maxWaitMs: 40 });
    const longer = await rc.route(incoming('longer', { [LLMD_TTL_HEADER]: '10m' }));
    expect(longer).toMatchObject({ kind: 'reject', status: 429, headers: { [FLOW_CONTROL_HEADER]: 'deadline' } });
    rc.close();
    const unbounded = control({ maxQueued: 8, maxWaitMs: Infinity });
    const waiting = unbounded.route(incoming('no-header'));
    expect(await unbounded.route(incoming('bounded', { [LLMD_TTL_HEADER]: '30ms' }))).toMatchObject({ kind: 'reject', status: 429, headers: { [FLOW_CONTROL_HEADER]: 'deadline' } });
    setWaiting(0);
    expect(await waiting).toMatchObject({ kind: 'route' });
  });

  it('the response of a request flow control dispatched carries x-llm-d-flow-queue-duration-ms: its wait, 0 when it did not wait (llm-d-router #2490 handlers/response.go, after v0.10.0)', async () => {
    const rc = control({});
    const waited = rc.route(incoming('waited'));
    await sleep(30);
    setWaiting(0);
    const late = await waited;
    const prompt = await rc.route(incoming('at-once'));
    if (late.kind !== 'route' || prompt.kind !== 'route') throw new Error('expected routes');
    const ok = new Map([[':status', '200']]);
    expect(Number(rc.responseHeaders(late.ticket, ok)?.[LLMD_FLOW_QUEUE_DURATION_HEADER])).toBeGreaterThanOrEqual(25);
    expect(rc.responseHeaders(prompt.ticket, ok)).toEqual({ [LLMD_FLOW_QUEUE_DURATION_HEADER]: '0' });
    // Flow control off: no header.
    rc.close();
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 });
    director = new RequestControl({ datastore: ds, scheduler });
    const plain = await director.route(incoming('plain'));
    if (plain.kind !== 'route') throw new Error('expected a route');
    expect(director.responseHeaders(plain.ticket, ok)).toBeUndefined();
  });

  it('answers what still waits when the EPP shuts down 503 (another replica can take it), as llm-d-router answers a flow controller that stopped', async () => {
    const rc = control({ maxQueued: 4, maxWaitMs: 60_000 });
    const waiting = rc.route(incoming('a'));
    await turns(5);
    rc.close();
    const answer = await waiting;
    expect(answer).toMatchObject({ kind: 'reject', status: 503, headers: { [FLOW_CONTROL_HEADER]: 'closed', [DROPPED_REASON_HEADER]: 'rejected-shutting-down' } });
    expect(JSON.parse((answer as { body: string }).body).error).toMatchObject({ code: 'service_unavailable' });
  });

  it('paces a backlog: with capacity back, each tick releases dispatchPerTick requests, not the whole backlog at once', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 });
      const q = new FlowControlQueue({ maxQueued: 64, maxWaitMs: 60_000, maxDispatchPerCall: 3 });
      director = new RequestControl({ datastore: ds, scheduler, flowControl: { queue: q, tickMs: 50 } });
      const routed: string[] = [];
      for (let i = 0; i < 10; i++) void director.route(incoming(`r${i}`)).then((d) => { if (d.kind === 'route') routed.push(`r${i}`); });
      await turns(20);
      expect(q.size).toBe(10);
      setWaiting(0); // the stall is over: every pod idle
      const perTick: number[] = [];
      for (let tick = 0; tick < 4; tick++) {
        const before = routed.length;
        jest.advanceTimersByTime(50);
        await turns(20);
        perTick.push(routed.length - before);
      }
      expect(perTick).toEqual([3, 3, 3, 1]);
    } finally {
      jest.useRealTimers();
    }
  });

  // Issue 9: "a backlog released after a stall is paced, never dumped"; "picks account for in-flight work at pick time
  // (not the last scrape)". vLLM v0.10.0 `vllm/v1/core/sched/scheduler.py` queues every arriving request in WAITING
  // until a step schedules it, so what was routed since a pod's last page is queue that page does not show.
  it('a burst onto idle pods (a backlog read at once after a stall): each pod takes what its threshold allows beyond its last page, the rest wait in flow control and go as pages count what was sent; none refused, none dumped', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      const burst = async (countPicksSinceScrape: boolean) => {
        const config = defaultEndpointPickerConfig();
        const saturation = config.plugins.find((p) => p.type === 'saturation-filter')!;
        saturation.parameters = { ...saturation.parameters, countPicksSinceScrape };
        const scheduler = buildScheduler(config, { now: () => Date.now() });
        const q = new FlowControlQueue({ maxQueued: 64, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
        director?.close();
        director = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000, flowControl: { queue: q, tickMs: 50 } });
        // Every pod idle as of its last page.
        let pageTime = Date.now();
        const page = (running: number) => {
          pageTime = Math.max(pageTime + 1, Date.now());
          for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: 0, runningQueueSize: running, kvCacheUsagePercent: 0.1, updateTime: pageTime, consecutiveFailures: 0 });
        };
        page(0);
        const routed = new Map<string, number>();
        const answers: RouteDecision[] = [];
        for (let i = 0; i < 30; i++) {
          void director.route(incoming(`b${countPicksSinceScrape}${i}`, { 'x-session-id': `burst-${i}` })).then((d) => {
            answers.push(d);
            if (d.kind === 'route') routed.set(d.endpoint, (routed.get(d.endpoint) ?? 0) + 1);
          });
        }
        await turns(40);
        const first = new Map(routed);
        // Pages every 50 ms: the pods run what they were sent (vLLM's queue empties into the batch), so each page
        // frees the threshold again; the ticks between release the waiting requests a few at a time.
        for (let t = 0; t < 20 && answers.length < 30; t++) {
          page(Math.min(16, [...routed.values()].reduce((a, b) => a + b, 0) / 2));
          jest.advanceTimersByTime(50);
          await turns(40);
        }
        return { first, answers, queued: q.size };
      };

      const counted = await burst(true);
      // queueDepthThreshold 5: a pod with nothing waiting takes 6 before it is over it; the other 18 wait.
      expect([...counted.first.values()]).toEqual([6, 6]);
      expect(counted.answers.map((d) => d.kind)).toEqual(Array(30).fill('route'));
      expect(counted.queued).toBe(0);

      // Reading the page alone (GIE's detector), the same burst lands on the pods at once.
      const scrapedOnly = await burst(false);
      expect([...scrapedOnly.first.values()].reduce((a, b) => a + b, 0)).toBe(30);
    } finally {
      jest.useRealTimers();
    }
  });

  // Review 50 (H1): counting routes alone capped each pod at 6 requests per scrape interval however fast it served them.
  it('requests that come and go between two pages never pile up: idle pods serving 100 short requests a second each route every one at once', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      let pageTime = Date.now();
      const page = () => {
        pageTime = Math.max(pageTime + 1, Date.now());
        for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.05, updateTime: pageTime, consecutiveFailures: 0 });
      };
      page();
      const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => Date.now() });
      const q = new FlowControlQueue({ maxQueued: 1_000, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
      director = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000, flowControl: { queue: q, tickMs: 50 } });
      let routed = 0;
      let mostWaiting = 0;
      for (let w = 0; w < 10; w++) {
        for (let i = 0; i < 20; i++) {
          void director.route(incoming(`w${w}r${i}`)).then((d) => {
            if (d.kind !== 'route') return;
            routed++;
            director!.release(d.ticket, 'completed');
          });
        }
        await turns(40);
        mostWaiting = Math.max(mostWaiting, q.size);
        jest.advanceTimersByTime(50);
        page();
        await turns(40);
      }
      expect({ routed, mostWaiting }).toEqual({ routed: 200, mostWaiting: 0 });
    } finally {
      jest.useRealTimers();
    }
  });

  it('after a stall of the EPP itself, a request that finds every pod\'s metrics stale waits for fresh scrapes instead of a 503; a pool whose scrapes fail while the EPP runs still gets its 503 at once', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      const fresh = () => {
        for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
      };
      fresh();
      // Every clock follows the fake one: the scheduler's staleness check, the queue's deadlines, the stall detector.
      const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => Date.now() });
      const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
      director = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000, flowControl: { queue: q, tickMs: 50 } });
      jest.advanceTimersByTime(200);

      // Frozen for 15 s (SIGSTOP): the clock moves, no timer runs, no scrape lands.
      jest.setSystemTime(Date.now() + 15_000);
      let answer: RouteDecision | undefined;
      void director.route(incoming('after-stall')).then((d) => { answer = d; });
      await turns(20);
      expect(answer).toBeUndefined();
      expect(q.size).toBe(1);
      fresh(); // the scrapers' first pages after the resume
      jest.advanceTimersByTime(50);
      await turns(20);
      expect(answer).toMatchObject({ kind: 'route' });

      // Later, running normally, the pods go: their scrapes fail (refused) and their metrics go stale with the EPP awake.
      jest.advanceTimersByTime(5_000);
      for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { consecutiveFailures: 2 });
      const dead = await director.route(incoming('dead-pool'));
      expect(dead).toMatchObject({ kind: 'reject', status: 503 });
    } finally {
      jest.useRealTimers();
    }
  });

  it('a request that waited after a stall (the pool\'s metrics stale) and whose pods\' scrapes then failed until its deadline gets 503, not 429: the pods are gone, not busy', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
      const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => Date.now() });
      // A deadline shorter than the resume grace (RESUME_GRACE_MS): the request is still held when it passes.
      const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 1_000, maxDispatchPerCall: 4 });
      director = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000, flowControl: { queue: q, tickMs: 50 } });
      jest.advanceTimersByTime(200);
      jest.setSystemTime(Date.now() + 15_000); // the EPP frozen for 15 s
      let answer: RouteDecision | undefined;
      void director.route(incoming('after-stall')).then((d) => { answer = d; });
      await turns(20);
      expect(q.size).toBe(1);
      // The scrapers' first attempts after the resume are refused: the pods went away during the stall.
      for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { consecutiveFailures: 2 });
      for (let t = 0; t < 22; t++) { // 1.1 s in ticks, each followed by the promise turns a real loop would run
        jest.advanceTimersByTime(50);
        await turns(5);
      }
      expect(answer).toMatchObject({ kind: 'reject', status: 503, headers: { [FLOW_CONTROL_HEADER]: 'deadline', [DROPPED_REASON_HEADER]: 'rejected-no-endpoints' } });
      expect(JSON.parse((answer as { body: string }).body).error).toMatchObject({ code: 'no_ready_endpoints' });
    } finally {
      jest.useRealTimers();
    }
  });

  // GIE v1.5.0 saturationdetector/utilization/detector.go: a pod with stale metrics counts as full, and flow control
  // holds requests while the pool is full. kvroute answers 503 only once the scrapes fail (the pods gone).
  it('with the EPP awake, metrics that are late (old, no failed scrape: the scraper is behind) hold the request for the next scrapes, not a 503; failures while it waits end it with a 503', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      const page = (consecutiveFailures: number, updateTime: number) => {
        for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime, consecutiveFailures });
      };
      page(0, Date.now());
      const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => Date.now() });
      const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
      director = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000, flowControl: { queue: q, tickMs: 50 } });
      // Past the start-up grace, the ticker running all along (the routing thread is fine), no page for 2.5 s.
      jest.advanceTimersByTime(2_500);
      let answer: RouteDecision | undefined;
      void director.route(incoming('late')).then((d) => { answer = d; });
      await turns(20);
      expect(answer).toBeUndefined();
      expect(q.size).toBe(1);
      page(0, Date.now()); // the scraper catches up
      jest.advanceTimersByTime(50);
      await turns(20);
      expect(answer).toMatchObject({ kind: 'route' });

      // Late again; this time the scrapes come back failed while the request waits: the pods are gone.
      jest.advanceTimersByTime(2_500);
      let second: RouteDecision | undefined;
      void director.route(incoming('late-then-gone')).then((d) => { second = d; });
      await turns(20);
      expect(second).toBeUndefined();
      page(1, Date.now() - 2_500);
      jest.advanceTimersByTime(50);
      await turns(20);
      expect(second).toMatchObject({ kind: 'reject', status: 503 });
      expect(q.size).toBe(0);

      // A scraper that stops reporting without a failure (a hung worker): the request waits while the metrics are only
      // late, then gets a 503 once they are past the late window, long before the queue's 60 s deadline, not a 429.
      page(0, Date.now());
      jest.advanceTimersByTime(2_500);
      let third: RouteDecision | undefined;
      const asked = Date.now();
      void director.route(incoming('stuck-scraper')).then((d) => { third = d; });
      await turns(20);
      expect(third).toBeUndefined();
      for (let i = 0; i < 60 && third === undefined; i++) {
        jest.advanceTimersByTime(50);
        await turns(5);
      }
      expect(third).toMatchObject({ kind: 'reject', status: 503 });
      // Metrics 2.5 s old when it came; answered once they were past 1 s (staleness) + 4 s (the late window).
      expect(Date.now() - asked).toBeGreaterThan(2_500);
      expect(Date.now() - asked).toBeLessThanOrEqual(2_600);
    } finally {
      jest.useRealTimers();
    }
  });

  // A pool scaled from zero, or replaced whole, long after the EPP started: the new pod's first scrape is some
  // milliseconds away when the first request comes. That request waits for it, as for late metrics, not a 503.
  it('a pod discovered moments ago, not scraped yet, alone in the pool: the request waits for its first scrape; one never read since discovery long ago gets a 503', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      const pool = new Datastore({ scrape: false, now: () => Date.now() });
      const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => Date.now() });
      const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
      director = new RequestControl({ datastore: pool, scheduler, monotonicSeconds: () => Date.now() / 1000, flowControl: { queue: q, tickMs: 50 } });
      jest.advanceTimersByTime(60_000); // long past the start-up grace
      pool.upsertEndpoint({ key: '10.0.1.1:8000', name: 'new', namespace: 'ns', address: '10.0.1.1', port: 8000, labels: {} });
      let answer: RouteDecision | undefined;
      void director.route(incoming('first')).then((d) => { answer = d; });
      await turns(20);
      expect(answer).toBeUndefined();
      expect(q.size).toBe(1);
      jest.advanceTimersByTime(50);
      pool.setMetrics('10.0.1.1:8000', { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: Date.now(), consecutiveFailures: 0 });
      jest.advanceTimersByTime(50);
      await turns(20);
      expect(answer).toMatchObject({ kind: 'route', endpoint: '10.0.1.1:8000' });

      // A pod whose scrape never came back, found 10 s ago (a hung scraper): nothing to wait for.
      pool.upsertEndpoint({ key: '10.0.1.2:8000', name: 'never', namespace: 'ns', address: '10.0.1.2', port: 8000, labels: {} });
      pool.removeEndpoint('10.0.1.1:8000');
      jest.advanceTimersByTime(10_000);
      const never = await director.route(incoming('never'));
      expect(never).toMatchObject({ kind: 'reject', status: 503 });

      // Found just now, and its first scrape never comes: the request waits while the pod is late, then gets a 503
      // once the window counted from the discovery (staleness 1 s + the late window 4 s) has passed, long before the
      // queue's 60 s deadline, and not a 429.
      pool.removeEndpoint('10.0.1.2:8000');
      const found = Date.now();
      pool.upsertEndpoint({ key: '10.0.1.3:8000', name: 'silent', namespace: 'ns', address: '10.0.1.3', port: 8000, labels: {} });
      let silent: RouteDecision | undefined;
      void director.route(incoming('silent')).then((d) => { silent = d; });
      await turns(20);
      expect(silent).toBeUndefined();
      expect(q.size).toBe(1);
      let waitedMs = 0;
      for (let i = 0; i < 400 && silent === undefined; i++) {
        jest.advanceTimersByTime(50);
        await turns(5);
        waitedMs = Date.now() - found;
      }
      expect(silent).toMatchObject({ kind: 'reject', status: 503 });
      expect(q.size).toBe(0);
      expect(waitedMs).toBeGreaterThan(1_000 + LATE_WINDOW_MS);
      expect(waitedMs).toBeLessThanOrEqual(1_000 + LATE_WINDOW_MS + 200);
      pool.stop();
    } finally {
      jest.useRealTimers();
    }
  });

  // The same with GIE's utilization-detector as the pool's detector (its dispatch gate, not the filters, holds the
  // queue): late metrics hold requests as a full pool, lost ones (stuck past the late window) do not.
  it('with a utilization-detector pool detector, a stuck scraper (metrics past the late window, no failure) ends the wait (the cycle runs), not a 429 at the deadline', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      const config = parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: utilization-detector
  parameters: { metricsStalenessThreshold: 1s }
saturationDetector:
  pluginRef: utilization-detector
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`);
      for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: Date.now(), consecutiveFailures: 0 });
      const scheduler = buildScheduler(config, { now: () => Date.now() });
      const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 30_000, maxDispatchPerCall: 4 });
      director = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000, flowControl: { queue: q, tickMs: 50 } });
      jest.advanceTimersByTime(2_500); // late: held
      let answer: RouteDecision | undefined;
      const asked = Date.now();
      void director.route(incoming('stuck')).then((d) => { answer = d; });
      await turns(20);
      expect(answer).toBeUndefined();
      for (let i = 0; i < 800 && answer === undefined; i++) {
        jest.advanceTimersByTime(50);
        await turns(5);
      }
      // Released once the metrics are lost (1 s + 4 s old): the detector no longer holds it and the cycle runs; this
      // profile has no saturation-filter to answer 503, so it routes (the pods are there; only their scraper is stuck).
      expect(Date.now() - asked).toBeLessThanOrEqual(2_600);
      expect(answer).toMatchObject({ kind: 'route' });
    } finally {
      jest.useRealTimers();
    }
  });

  // vLLM 0.10.0 (scheduler.py @ 6eca337ce lines 909-912) leaves its gauges at their last values once aborts empty the
  // engine; a pool whose every pod stuck at waiting 6 read as saturated forever and held every request to its deadline.
  it('a pool whose gauges are stuck (vLLM 0.10.0 after aborts: waiting 6, unchanged, nothing in flight) is read idle after STUCK_GAUGES_MS and routes again', async () => {
    jest.useFakeTimers({ now: T0, doNotFake: ['setImmediate'] });
    try {
      const stuckSince = Date.now();
      const scrape = () => {
        for (let i = 0; i < 2; i++) ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: 6, runningQueueSize: 1, kvCacheUsagePercent: 0.5, updateTime: Date.now(), changedTime: stuckSince, consecutiveFailures: 0 });
      };
      scrape();
      const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => Date.now() });
      const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
      director = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000, flowControl: { queue: q, tickMs: 50 } });
      jest.advanceTimersByTime(3_000);
      scrape();
      let answer: RouteDecision | undefined;
      void director.route(incoming('after-the-aborts')).then((d) => { answer = d; });
      await turns(20);
      expect(answer).toBeUndefined(); // saturated by the gauges, held
      while (answer === undefined && Date.now() - stuckSince < 20_000) {
        jest.advanceTimersByTime(100);
        scrape();
        await turns(5);
      }
      expect(answer).toMatchObject({ kind: 'route' });
      expect(Date.now() - stuckSince).toBeGreaterThanOrEqual(STUCK_GAUGES_MS);
      expect(Date.now() - stuckSince).toBeLessThan(STUCK_GAUGES_MS + 500);
    } finally {
      jest.useRealTimers();
    }
  });

  it('a priority from the objective table (x-gateway-inference-objective) wins over x-kvroute-priority; the fairness id names the flow', async () => {
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 });
    const q = new FlowControlQueue({ maxQueued: 2, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
    director = new RequestControl({ datastore: ds, scheduler, flowControl: { queue: q, tickMs: 5, objectives: new Map([['batch', -1]]) } });
    const batch = director.route(incoming('b', { 'x-gateway-inference-objective': 'batch', [PRIORITY_HEADER]: '50' }));
    const other = director.route(incoming('o', { 'x-gateway-inference-objective': 'unlisted', 'x-gateway-inference-fairness-id': 'tenant-a' }));
    await turns(20);
    expect(q.sizes()).toEqual(new Map([[0, 1], [-1, 1]]));
    // Full: a priority-0 newcomer sheds the batch request (-1 from the table, though its header said 50).
    const third = director.route(incoming('t'));
    expect(await batch).toMatchObject({ kind: 'reject', status: 429, headers: { [FLOW_CONTROL_HEADER]: 'shed' } });
    setWaiting(0);
    expect(await other).toMatchObject({ kind: 'route' });
    expect(await third).toMatchObject({ kind: 'route' });
  });

  it('a newcomer takes its turn behind waiting requests of its priority or higher, even once capacity is back (GIE v1.5.0 admission.go: every request passes the queue, strict priority)', async () => {
    // The tick is slow, so only the order of dispatch decides who gets the pods first.
    const scheduler = buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 });
    const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 1 });
    director = new RequestControl({ datastore: ds, scheduler, flowControl: { queue: q, tickMs: 60_000 }, maxHeaderPriority: 10 });
    const order: string[] = [];
    const route = (id: string, priority: string) => director!.route(incoming(id, { [PRIORITY_HEADER]: priority })).then((d) => { order.push(`${id}:${d.kind}`); });
    const high = route('high', '10');
    await turns(20);
    expect(q.size).toBe(1);
    setWaiting(0);
    // Capacity is back, but the priority-10 request still waits for its dispatch: a sheddable newcomer queues behind it,
    const low = route('low', '-1');
    await turns(20);
    expect(order).toEqual([]);
    expect(q.sizes()).toEqual(new Map([[10, 1], [-1, 1]]));
    // and dispatch releases them in priority order.
    q.dispatch(1);
    await high;
    q.dispatch(1);
    await low;
    expect(order).toEqual(['high:route', 'low:route']);
    // A newcomer of a higher priority than anything waiting is not held back behind it.
    setWaiting(6);
    const sheddable = route('sheddable', '-1');
    await turns(20);
    setWaiting(0);
    await route('top', '5');
    expect(order).toEqual(['high:route', 'low:route', 'top:route']);
    q.dispatch(1);
    await sheddable;
    expect(order).toEqual(['high:route', 'low:route', 'top:route', 'sheddable:route']);
  });

  it('requests the proxy narrows to a saturated pod (subset hint) hold up neither the pool-wide requests waiting behind them nor newcomers while another pod has room (audit 29 F1)', async () => {
    const rc = control({});
    const waiting = (key: string, n: number) => ds.setMetrics(key, { waitingQueueSize: n, runningQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: T0, consecutiveFailures: 0 });
    const hinted = (id: string) => ({ ...incoming(id), filterMetadata: { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: ['10.0.0.1:8000'] } } });
    // Both pods full: five requests for pod 1 only, then four for the pool, all wait.
    const narrowed = Array.from({ length: 5 }, (_, i) => rc.route(hinted(`h${i}`)));
    const early = Array.from({ length: 4 }, (_, i) => rc.route(incoming(`e${i}`)));
    await turns(20);
    // Pod 2 frees up; pod 1 stays full. The ticks keep releasing the narrowed requests (four a tick, more than the
    // dispatch limit's worth of them), and they keep coming back; the pool-wide ones go to pod 2 all the same.
    waiting('10.0.0.2:8000', 0);
    const routedEarly = await Promise.all(early);
    expect(routedEarly.map((d) => (d.kind === 'route' ? d.endpoint : d.kind))).toEqual(Array(4).fill('10.0.0.2:8000'));
    // A newcomer is not held behind them either: it is routed at once.
    const late = rc.decide(incoming('late'), () => new AbortController().signal);
    expect(late).toMatchObject({ kind: 'route', endpoint: '10.0.0.2:8000' });
    // And the narrowed ones go when their own pod has room.
    waiting('10.0.0.1:8000', 0);
    expect((await Promise.all(narrowed)).map((d) => (d.kind === 'route' ? d.endpoint : d.kind))).toEqual(Array(5).fill('10.0.0.1:8000'));
  });

  it('rejects an unreadable x-kvroute-priority with a 400 naming the header and its range, on an idle pool as on a saturated one (audit 29 F3)', async () => {
    const rc = control({});
    for (const waiting of [6, 0]) {
      setWaiting(waiting);
      for (const value of ['urgent', '1000']) {
        const d = await rc.route(incoming('p', { [PRIORITY_HEADER]: value }));
        expect(d).toMatchObject({ kind: 'reject', status: 400 });
        if (d.kind === 'reject') expect(d.body).toContain('x-kvroute-priority must be an integer between -100 and 100');
      }
    }
    // A known objective's priority wins, and the header is not read.
    rc.close();
    const withObjective = new RequestControl({
      datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 }),
      flowControl: { queue: new FlowControlQueue({ maxQueued: 4, maxWaitMs: 60_000, maxDispatchPerCall: 4 }), tickMs: 5, objectives: new Map([['chat', 1]]) },
    });
    director = withObjective;
    expect(await withObjective.route(incoming('o', { [PRIORITY_HEADER]: 'urgent', 'x-gateway-inference-objective': 'chat' }))).toMatchObject({ kind: 'route' });
  });

  it('x-kvroute-priority cannot raise a request above maxHeaderPriority (0 by default: a client may mark itself sheddable, not jump the queue; audit 29 F2)', async () => {
    const order: string[] = [];
    const run = async (maxHeaderPriority: number | undefined) => {
      order.length = 0;
      setWaiting(6);
      const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 1 });
      director?.close();
      director = new RequestControl({
        datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 }),
        flowControl: { queue: q, tickMs: 60_000, objectives: new Map([['interactive', 10]]) },
        ...(maxHeaderPriority !== undefined ? { maxHeaderPriority } : {}),
      });
      const route = (id: string, headers: Record<string, string>) => director!.route(incoming(id, headers)).then((d) => { order.push(`${id}:${d.kind}`); });
      const first = route('interactive', { 'x-gateway-inference-objective': 'interactive' });
      await turns(20);
      const second = route('self-promoted', { [PRIORITY_HEADER]: '100' });
      await turns(20);
      const sizes = q.sizes();
      setWaiting(0);
      for (let i = 0; i < 2; i++) {
        q.dispatch(1);
        await turns(20);
      }
      await Promise.all([first, second]);
      return { sizes, order: [...order] };
    };
    // Capped at 0: the header's 100 counts as 0, behind the operator's objective.
    expect(await run(undefined)).toEqual({ sizes: new Map([[10, 1], [0, 1]]), order: ['interactive:route', 'self-promoted:route'] });
    // An operator whose gateway sets the header lets it through.
    expect(await run(100)).toEqual({ sizes: new Map([[100, 1], [10, 1]]), order: ['self-promoted:route', 'interactive:route'] });
    // A negative cap lowers what the header says, not requests without it (GIE's default 0 stays 0).
    setWaiting(6);
    const q = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 4 });
    director?.close();
    director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 }), flowControl: { queue: q, tickMs: 60_000 }, maxHeaderPriority: -5 });
    const plain = director.route(incoming('plain'));
    const raised = director.route(incoming('raised', { [PRIORITY_HEADER]: '3' }));
    await turns(20);
    expect(q.sizes()).toEqual(new Map([[0, 1], [-5, 1]]));
    setWaiting(0);
    q.dispatch(4);
    await Promise.all([plain, raised]);
  });

  it('an empty fairness id or session id names no flow: such requests are each their own flow, not one shared one', async () => {
    const queue = new FlowControlQueue({ maxQueued: 16, maxWaitMs: 60_000, maxDispatchPerCall: 100 });
    director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 }), flowControl: { queue, tickMs: 60_000 } });
    const waiting = [
      director.route(incoming('a', { 'x-gateway-inference-fairness-id': '' })),
      director.route(incoming('b', { 'x-session-id': '' })),
      director.route(incoming('c', { 'x-gateway-inference-fairness-id': '', 'x-session-id': 's1' })),
    ];
    await turns(20);
    const flows = [...(queue as unknown as { bands: Map<number, { flows: Map<string, unknown> }> }).bands.get(0)!.flows.keys()];
    expect(flows.sort()).toEqual(['request:a', 'request:b', 's1']);
    setWaiting(0);
    queue.dispatch(100);
    await Promise.all(waiting);
  });

  it('without flow control the same saturated pool answers 429 at once (the behaviour flow control replaces)', async () => {
    const rc = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { now: () => T0 }) });
    expect(await rc.route(incoming('x'))).toMatchObject({ kind: 'reject', status: 429 });
  });
});
