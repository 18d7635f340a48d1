/**
 * A bounded queue for requests that arrive while every candidate is saturated (issue 9, "flow control instead of 429
 * storms"): instead of answering 429 at once, request control parks the request here and dispatches it when capacity
 * frees. `request-control.ts` uses it when given one (`RequestControlOptions.flowControl`), which the EPP does by
 * default (`--flow-control`, `flowControl.enabled`; `config/flow-control-defaults.ts`).
 *
 * Semantics, shaped like GIE's flow controller (kubernetes-sigs/gateway-api-inference-extension: pkg/epp/flowcontrol/,
 * late 2025: priority bands, a fairness policy across flows within a band, FCFS within a flow, a TTL per item) and its
 * notion of sheddable traffic (pkg/epp/util/request/sheddable.go: `IsSheddable(priority) = priority < 0`, the priority
 * coming from the request's InferenceObjective, 0 without one):
 * - **Priority bands**: a higher `priority` is always dispatched first.
 * - **Fair across flows** (a flow is a session, a tenant or an objective — the caller chooses the key): within a band,
 *   flows take turns (round robin, as GIE v1.5.0's `fairness/roundrobin.go` Pick: in sorted flow-key order, each turn
 *   the first flow with requests waiting after the one served last, wrapping), so one chatty session cannot starve the
 *   others; within a flow, first come first served. Only requests that wait are picked here: GIE also picks the ones
 *   that pass its queue at once, and empty bands every tick (which resets its cursor), so its cursor can stand
 *   elsewhere when a backlog starts.
 * - **Bounded**: at most `maxQueued` requests wait, holding at most `maxQueuedBytes` of request bodies together (GIE
 *   bounds bytes: `flowcontrol/registry/config.go`, per band and an optional global `limits.maxBytes`); a retry,
 *   below, may pass either by the few just dispatched. When a newcomer does not fit, it displaces the lowest-priority
 *   *sheddable* requests lower than itself, in order (the lowest band first, the newest first within it: they have
 *   waited least) until it fits, each rejected as `shed`; when even all of those would not make room, nothing is
 *   displaced and the newcomer is rejected as `queue-full`. Non-sheddable requests are never displaced. Displacing is
 *   kvroute's own: GIE never evicts a queued item for room, a newcomer over a bound is `RejectedCapacity` (v1.5.0
 *   `controller/internal/processor.go` enqueue, hasCapacity).
 * - **Deadlines**: each request waits at most its deadline (`maxWaitMs` by default), then is rejected as `deadline`.
 * - **Paced**: `dispatch(capacity)` releases at most `maxDispatchPerCall` requests however much capacity is offered
 *   (and as many narrowed ones, below), so a backlog that built up during a stall is released a slice per tick, never
 *   dumped onto pods at once.
 * - **Retries keep their place**: a dispatched request that finds every pod still saturated re-enters with
 *   `retry: true`, at the head of its flow, with its original deadline, and under round robin the band's cursor goes
 *   back to where it was before the earliest release of that dispatch that came back, so the order requests are
 *   finally released in does not depend on how many dispatches found the pool full. (A request that comes back after
 *   a later dispatch released from its band only takes the head of its flow: rewinding the cursor then would replay
 *   that dispatch's turns.) GIE has no such case: its dispatch cycle never re-queues a dispatched item (v1.5.0
 *   `controller/internal/processor.go`).
 * - **Narrowed requests wait apart**: a request restricted to some of the pool's pods (`narrowed`: the proxy's subset
 *   hint) waits for room on those pods, not the pool's. It waits in its band's rotation, outside the flows: a retry
 *   goes to the back of it, `dispatch` releases up to its limit of them besides the pool-wide ones, and
 *   `highestWaitingPriority` does not count them. A few requests whose own pods are full therefore cannot hold up,
 *   tick after tick, the pool-wide requests behind them (and newcomers need not queue behind them) while other pods
 *   idle; GIE gates its dispatch on the pool only and never re-queues (v1.5.0 `controller/internal/processor.go`).
 * Rejections carry the reason, for the 429's `x-kvroute-flow-control` header.
 */

import { monotonicMs } from '../clock';
import { DeadlineHeap, type DeadlineEntry } from './deadline-heap';
import { SortedKeys } from './sorted-keys';

/** The longest delay Node's timers take (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

export type FlowRejectionReason = 'queue-full' | 'deadline' | 'shed' | 'aborted' | 'closed';

/** The response header a 429 from flow control carries, naming the reason. */
export const FLOW_CONTROL_HEADER = 'x-kvroute-flow-control';

/**
 * llm-d-router's header naming why flow control dropped a request, set beside kvroute's own so that clients and
 * dashboards written for llm-d read it (`pkg/common/error/error.go` RequestDroppedReasonHeaderKey, llm-d/llm-d-router
 * @ 29cd704 and later).
 */
export const DROPPED_REASON_HEADER = 'x-llm-d-request-dropped-reason';

/**
 * Its values for kvroute's answered rejections, as llm-d-router's `translateFlowControlError`
 * (`pkg/epp/requestcontrol/admission.go`) maps its own: a full queue is `rejected-saturated` (kvroute's shedding frees
 * room for a newcomer, so a shed request was turned away for capacity too), a TTL expiry `rejected-ttl-expired` (429
 * while the pool has endpoints) or `rejected-no-endpoints` (503, DROPPED_NO_ENDPOINTS), a shutdown
 * `rejected-shutting-down` (503).
 */
export const DROPPED_REASONS: Readonly<Record<Exclude<FlowRejectionReason, 'aborted'>, string>> = {
  'queue-full': 'rejected-saturated',
  shed: 'rejected-saturated',
  deadline: 'rejected-ttl-expired',
  closed: 'rejected-shutting-down',
};
export const DROPPED_NO_ENDPOINTS = 'rejected-no-endpoints';

export class FlowControlRejection extends Error {
  constructor(readonly reason: FlowRejectionReason) {
    // No stack: a rejection is an answer (a 429 and its reason), thrown from the same few places, and capturing a
    // stack was most of what shedding cost under a flood (~15 µs of the routing thread per rejection; session 42).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`flow control rejected the request: ${reason}`);
    Error.stackTraceLimit = limit;
    this.name = 'FlowControlRejection';
  }
}

export interface FlowControlOptions {
  /** Requests that may wait at once, all flows and priorities together. */
  readonly maxQueued: number;
  /** Request body bytes that may wait at once (each request's `bytes`), all together. @default unbounded */
  readonly maxQueuedBytes?: number;
  /** How long a request may wait when it names no deadline of its own, in ms. */
  readonly maxWaitMs: number;
  /** The most requests one `dispatch` call releases (pacing). */
  readonly maxDispatchPerCall: number;
  /**
   * The queue's clock in ms. @default monotonicMs: deadlines on the wall clock expired every waiting request at once
   * when it stepped forward and kept them for the length of the step when it stepped back (GIE v1.5.0 times them on
   * `clock.RealClock`, Go's monotonic time, `flowcontrol/controller/controller.go` `enqueueTime := fc.clock.Now()`).
   */
  readonly now?: () => number;
  /** Expire deadlines by timer; tests that drive `expire()` themselves turn it off. @default true */
  readonly timers?: boolean;
  /** Limits and fairness of given priority levels (GIE's `flowControl.priorityBands`). @default none */
  readonly bands?: ReadonlyMap<number, BandOptions>;
  /** Limits and fairness of every other priority level (GIE's `flowControl.defaultPriorityBand`). @default round robin, no limit */
  readonly defaultBand?: BandOptions;
  /**
   * For the unlisted levels below 0 instead of `defaultBand` (llm-d-router v0.10.0's `defaultNegativePriorityBand`:
   * `pkg/epp/flowcontrol/registry/registry.go` provisionPriorityBandLocked). @default `defaultBand`
   */
  readonly defaultNegativeBand?: BandOptions;
}

/**
 * How the flows of one priority level share it (GIE v1.5.0 `pkg/epp/framework/plugins/flowcontrol/fairness`):
 * `round-robin` gives each flow a turn, in sorted flow-key order from the flow after the one served last
 * (`roundrobin.go` Pick; the queue's default, issue 9's "fair across sessions");
 * `global-strict` serves the band's oldest request whatever its flow, one FCFS order (`besthead.go`, GIE's default,
 * which the EPP gives a band naming no policy in a config written in GIE's terms: `FlowControlConfig.sessionFairness`).
 */
export type FairnessPolicy = 'round-robin' | 'global-strict';

/** One priority level's bounds (GIE's per-band `maxRequests`, `maxBytes`) and fairness. */
export interface BandOptions {
  /** Requests that may wait at this priority at once. @default unbounded */
  readonly maxRequests?: number;
  /** Request body bytes that may wait at this priority at once. @default unbounded */
  readonly maxBytes?: number;
  /** @default "round-robin" */
  readonly fairness?: FairnessPolicy;
}

export interface FlowRequest {
  /** Who takes turns: a session id, a tenant, an objective name. */
  readonly flow: string;
  /** Higher goes first; negative is sheddable (GIE's rule). */
  readonly priority: number;
  /** What the request holds while it waits (its body's size), counted against `maxQueuedBytes`. @default 0 */
  readonly bytes?: number;
  /** Absolute deadline in ms on the `now` clock. @default now + maxWaitMs */
  readonly deadlineMs?: number;
  /** Aborts the wait (the client went away). */
  readonly signal?: AbortSignal;
  /**
   * A request that was dispatched but found every pod still saturated goes back where it was: at the head of its
   * flow, and its flow next in its band, so a retry never costs it its place. @default false
   */
  readonly retry?: boolean;
  /**
   * The request may go only to some of the pool's pods (the proxy's subset hint), so it waits for room there rather
   * than in the pool: it waits apart from the pool-wide flows (see the module comment). @default false
   */
  readonly narrowed?: boolean;
  /**
   * The request's place in arrival order, from `arrivalTicket()` when it first started waiting: FCFS order ranks by it
   * (`global-strict` fairness across flows, and a retry's place within its flow and among retried flows), so a retry
   * passes its first ticket and keeps its turn. @default a new ticket
   */
  readonly arrival?: number;
  /**
   * Told synchronously how the admission went: undefined when the request is waiting, else why it was refused at once.
   * (GIE times this step as `inference_extension_flow_control_request_enqueue_duration_seconds`.)
   */
  readonly admitted?: (refused: FlowRejectionReason | undefined) => void;
}

interface Waiter extends DeadlineEntry {
  readonly request: FlowRequest;
  readonly arrival: number;
  readonly resolve: () => void;
  readonly reject: (error: FlowControlRejection) => void;
  readonly onAbort?: () => void;
}

/** Whether `w` is a retried waiter that first arrived before `than`. */
function isEarlierRetry(w: Waiter | undefined, than: Waiter): boolean {
  return w !== undefined && w.request.retry === true && w.arrival < than.arrival;
}

/**
 * The round-robin releases of one dispatch: for each arrival ticket it released, the release's place in the dispatch
 * and the flow served last before it; and the earliest of those places whose request came back.
 */
interface Turn {
  readonly dispatch: number;
  readonly released: Map<number, { readonly index: number; readonly lastServed: string | undefined }>;
  restoredFrom: number;
}

/** One priority level: its flows, each a FIFO, and its narrowed requests in rotation. */
class Band {
  /** The flows with requests waiting. */
  readonly flows = new Map<string, Waiter[]>();
  /** Narrowed requests (`FlowRequest.narrowed`), in the order they are tried: a retry goes to the back. */
  readonly narrowed: Waiter[] = [];
  /** The keys of `flows` in GIE's flow-key order (`FlowKey.Compare`: one band's flows differ only by ID). */
  private readonly keys = new SortedKeys();
  /**
   * Round robin's cursor, GIE's `lastSelected` (v1.5.0 `fairness/roundrobin.go`): the flow served last, kept when that
   * flow empties (GIE's registry keeps an empty flow, so its place in the sorted keys stays), undefined from a pick
   * that found no flow waiting.
   */
  private lastServed: string | undefined;
  /** Round robin: the releases of the latest dispatch that released from this band (`push` of a retry). */
  private turn: Turn | undefined;
  /** Every waiter of the band, narrowed ones included (the band's bounds count them all). */
  size = 0;
  /** The waiters' `bytes`. */
  bytes = 0;
  /**
   * Every waiter pushed, in arrival order (ascending `arrival`), those that left still in it until they outnumber the
   * ones waiting: shedding takes the newest first from the end without sorting the band (`newestFirst`). A retry goes
   * back to its arrival's place, not the end: pushed again after each release into a full pool, it would otherwise
   * count as the newest, and the sheddable requests that had waited longest would be displaced first.
   */
  private pushed: Waiter[] = [];

  constructor(readonly options: BandOptions = {}) {}

  /** Whether one more request holding `bytes` fits this band's own bounds. */
  fits(bytes: number): boolean {
    return this.size < (this.options.maxRequests ?? Infinity) && this.bytes + bytes <= (this.options.maxBytes ?? Infinity);
  }

  /** Waiters in the flows: the pool-wide ones. */
  get poolWideSize(): number {
    return this.size - this.narrowed.length;
  }

  push(w: Waiter): void {
    this.size++;
    this.bytes += w.request.bytes ?? 0;
    this.addPushed(w);
    if (w.request.narrowed === true) {
      this.narrowed.push(w);
      return;
    }
    const retry = w.request.retry === true;
    let queue = this.flows.get(w.request.flow);
    if (queue === undefined) {
      queue = [];
      this.flows.set(w.request.flow, queue);
      this.keys.add(w.request.flow);
    }
    if (retry) {
      // Released by the latest dispatch and back (the pool was still full): the cursor goes back to where it was
      // before the earliest such release, so a batch released into a full pool leaves the rotation as it was, and
      // the order requests are finally released in does not depend on how many dispatches failed before.
      const release = this.turn?.released.get(w.arrival);
      if (release !== undefined && release.index < this.turn!.restoredFrom) {
        this.turn!.restoredFrom = release.index;
        this.lastServed = release.lastServed;
      }
      // At the head of its flow, behind the retries that arrived before it: a released batch keeps its order.
      let at = 0;
      while (at < queue.length && isEarlierRetry(queue[at], w)) at++;
      queue.splice(at, 0, w);
    } else queue.push(w);
  }

  /** The next narrowed waiter. */
  shiftNarrowed(): Waiter | undefined {
    const w = this.narrowed.shift();
    if (w === undefined) return undefined;
    this.leaveBand(w);
    return w;
  }

  /** Adds `w` to `pushed` at its arrival's place: the end for a newcomer, by binary search for a retry. */
  private addPushed(w: Waiter): void {
    const pushed = this.pushed;
    if (pushed.length === 0 || pushed[pushed.length - 1]!.arrival <= w.arrival) {
      pushed.push(w);
      return;
    }
    let lo = 0;
    let hi = pushed.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pushed[mid]!.arrival <= w.arrival) lo = mid + 1;
      else hi = mid;
    }
    pushed.splice(lo, 0, w);
  }

  /** The waiters from the newest (the latest arrival) back, skipping those that left. */
  *newestFirst(): IterableIterator<Waiter> {
    while (this.pushed.length > 0 && this.pushed[this.pushed.length - 1]!.left) this.pushed.pop();
    for (let i = this.pushed.length - 1; i >= 0; i--) {
      const w = this.pushed[i]!;
      if (!w.left) yield w;
    }
  }

  /** Counts `w` out of the band (its queue already lost it); it is marked `left` by the flow-control queue next. */
  private leaveBand(w: Waiter): void {
    this.size--;
    this.bytes -= w.request.bytes ?? 0;
    // Rebuilt without the ones that left once they outnumber the waiting: `pushed` stays within about twice the band.
    if (this.pushed.length > 2 * this.size + 32) this.pushed = this.pushed.filter((x) => !x.left && x !== w);
  }

  /**
   * The next pool-wide waiter, released by dispatch number `dispatch`. Round robin is GIE v1.5.0's
   * `fairness/roundrobin.go` Pick: the first flow after the one served last in sorted flow-key order, wrapping to the
   * first; a pick that finds no flow waiting forgets the last one served.
   */
  shift(dispatch: number): Waiter | undefined {
    if (this.flows.size === 0) {
      this.lastServed = undefined;
      return undefined;
    }
    let flow: string;
    if (this.options.fairness === 'global-strict') {
      flow = this.oldestHead();
    } else {
      flow = (this.lastServed !== undefined ? this.keys.after(this.lastServed) : undefined) ?? this.keys.first()!;
      if (this.turn?.dispatch !== dispatch) this.turn = { dispatch, released: new Map(), restoredFrom: Infinity };
    }
    const queue = this.flows.get(flow)!;
    const w = queue.shift()!;
    this.leaveBand(w);
    if (queue.length === 0) {
      this.flows.delete(flow);
      this.keys.delete(flow);
    }
    if (this.turn?.dispatch === dispatch) {
      this.turn.released.set(w.arrival, { index: this.turn.released.size, lastServed: this.lastServed });
      this.lastServed = flow;
    }
    return w;
  }

  remove(w: Waiter): boolean {
    if (w.request.narrowed === true) {
      const at = this.narrowed.indexOf(w);
      if (at < 0) return false;
      this.narrowed.splice(at, 1);
      this.leaveBand(w);
      return true;
    }
    const queue = this.flows.get(w.request.flow);
    const i = queue?.indexOf(w) ?? -1;
    if (queue === undefined || i < 0) return false;
    queue.splice(i, 1);
    this.leaveBand(w);
    if (queue.length === 0) {
      this.flows.delete(w.request.flow);
      this.keys.delete(w.request.flow);
    }
    return true;
  }

  /** The flow whose head arrived first (GIE's global-strict "best head" under FCFS). */
  private oldestHead(): string {
    let best = '';
    let bestHead: Waiter | undefined;
    for (const [flow, queue] of this.flows) {
      const head = queue[0]!;
      if (bestHead === undefined || head.arrival < bestHead.arrival) {
        best = flow;
        bestHead = head;
      }
    }
    return best;
  }

  *waiters(): IterableIterator<Waiter> {
    for (const queue of this.flows.values()) yield* queue;
    yield* this.narrowed;
  }
}

export class FlowControlQueue {
  private readonly bands = new Map<number, Band>();
  /** Every waiting request by deadline: expiry and the timer read it instead of walking the bands. */
  private readonly deadlines = new DeadlineHeap<Waiter>();
  private readonly now: () => number;
  private seq = 0;
  private arrivals = 0;
  private count = 0;
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;
  private dispatches = 0;

  constructor(private readonly options: FlowControlOptions) {
    for (const key of ['maxQueued', 'maxDispatchPerCall'] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 1) throw new RangeError(`${key} must be an integer >= 1, got ${options[key]}`);
    }
    if (options.maxQueuedBytes !== undefined && !(Number.isInteger(options.maxQueuedBytes) && options.maxQueuedBytes >= 1)) {
      throw new RangeError(`maxQueuedBytes must be an integer >= 1, got ${options.maxQueuedBytes}`);
    }
    if (!(options.maxWaitMs > 0)) throw new RangeError(`maxWaitMs must be > 0 (Infinity: no deadline), got ${options.maxWaitMs}`);
    const bands: [string, BandOptions | undefined][] = [...(options.bands ?? new Map()).entries()].map(([p, b]) => [`bands[${p}]`, b]);
    for (const [where, band] of [...bands, ['defaultBand', options.defaultBand], ['defaultNegativeBand', options.defaultNegativeBand]] as [string, BandOptions | undefined][]) {
      for (const key of ['maxRequests', 'maxBytes'] as const) {
        const v = band?.[key];
        if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new RangeError(`${where}.${key} must be an integer >= 1, got ${v}`);
      }
    }
    this.now = options.now ?? monotonicMs;
  }

  /** How long a request waits when it names no deadline of its own, in ms. */
  get maxWaitMs(): number {
    return this.options.maxWaitMs;
  }

  /** The queue's clock, in ms. */
  nowMs(): number {
    return this.now();
  }

  /** A place in arrival order, for a request about to wait (`FlowRequest.arrival`). */
  arrivalTicket(): number {
    return this.arrivals++;
  }

  /** The default deadline for a request that starts waiting now (`now + maxWaitMs`). */
  deadlineFromNow(): number {
    return this.now() + this.options.maxWaitMs;
  }

  /** Requests waiting. */
  get size(): number {
    return this.count;
  }

  /**
   * The highest priority a pool-wide request waits at, or undefined when none waits. Narrowed requests (waiting for
   * room on their own pods) are not counted: a newcomer takes nothing they wait for unless it goes to their pods, and
   * then it finds them full and waits too.
   */
  highestWaitingPriority(): number | undefined {
    let highest: number | undefined;
    for (const [priority, band] of this.bands) if (band.poolWideSize > 0 && (highest === undefined || priority > highest)) highest = priority;
    return highest;
  }

  /** The bytes the waiting requests hold (their `bytes`). */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** Waiting requests per priority, for metrics and tests. */
  sizes(): ReadonlyMap<number, number> {
    return new Map([...this.bands].filter(([, b]) => b.size > 0).map(([p, b]) => [p, b.size]));
  }

  /**
   * Waits for a dispatch. Resolves when `dispatch` releases the request; rejects with a `FlowControlRejection` naming
   * why it will not be (queue full, displaced, deadline, aborted, closed).
   */
  enqueue(request: FlowRequest): Promise<void> {
    const refuse = (reason: FlowRejectionReason): Promise<void> => {
      request.admitted?.(reason);
      return Promise.reject(new FlowControlRejection(reason));
    };
    if (this.closed) return refuse('closed');
    if (request.signal?.aborted) return refuse('aborted');
    if (!Number.isFinite(request.priority)) return Promise.reject(new RangeError(`priority must be a finite number, got ${request.priority}`));
    const bytes = request.bytes ?? 0;
    if (!(Number.isFinite(bytes) && bytes >= 0)) return Promise.reject(new RangeError(`bytes must be a finite number >= 0, got ${request.bytes}`));
    this.expire();
    // A retry held its slot a moment ago (dispatched, then still saturated): it is never the one refused for room.
    if (request.retry !== true && !this.makeRoom(request.priority, bytes)) return refuse('queue-full');
    request.admitted?.(undefined);
    return new Promise<void>((resolve, reject) => {
      const deadlineMs = request.deadlineMs ?? this.now() + this.options.maxWaitMs;
      let waiter: Waiter;
      const onAbort = request.signal ? () => this.drop(waiter, 'aborted') : undefined;
      const arrival = request.arrival ?? this.arrivalTicket();
      waiter = { request, deadlineMs, arrival, seq: this.seq++, left: false, resolve, reject, ...(onAbort ? { onAbort } : {}) };
      if (onAbort) request.signal!.addEventListener('abort', onAbort, { once: true });
      this.band(request.priority).push(waiter);
      this.deadlines.add(waiter);
      this.count++;
      this.bytes += bytes;
      this.armTimer();
    });
  }

  /**
   * Releases up to `capacity` waiting requests (at most `maxDispatchPerCall`), highest priority first, flows in turn,
   * while `ready` (when given) says the pool can take one more of that priority; and as many narrowed requests besides,
   * in their rotation, so that narrowed requests whose pods stay full come back to the back of it instead of taking
   * every release. `ready` is asked once before each release (one dispatch decision: llm-d-router v0.10.0's dispatch
   * cycle, which computes the usage limits once and releases at most one request) with the priority of the band about
   * to release; the first no stops the whole call (head-of-line blocking: upstream's cycle stops at the first band
   * whose ceiling is reached, and ceilings never rise down the bands). Returns how many were released.
   */
  dispatch(capacity: number, ready?: (priority: number) => boolean): number {
    // Nothing waits and no timer is armed: what follows would release nothing and leave the same state, but request
    // control calls this at every request's end, and the full pass allocates (the priorities, the waiters' copies).
    if (this.count === 0 && this.timer === undefined && this.timerAt === Infinity) return 0;
    this.expire();
    const limit = Math.min(Math.max(0, Math.floor(capacity)), this.options.maxDispatchPerCall);
    const dispatch = this.dispatches++;
    let released = 0;
    let narrowedReleased = 0;
    for (const priority of this.prioritiesDescending()) {
      const band = this.bands.get(priority)!;
      for (const narrowed of [false, true]) {
        while ((narrowed ? narrowedReleased : released) < limit) {
          // Head-of-line blocking, as GIE's dispatch cycle checks the pool before it takes an item out
          // (`controller/internal/processor.go` dispatchCycle @ v1.5.0): a request released into a full pool would
          // only come back, behind the ones released with it.
          if ((narrowed ? band.narrowed.length : band.poolWideSize) > 0 && ready !== undefined && !ready(priority)) {
            this.armTimer();
            return released + narrowedReleased;
          }
          const w = narrowed ? band.shiftNarrowed() : band.shift(dispatch);
          if (w === undefined) break;
          this.settle(w);
          w.resolve();
          if (narrowed) narrowedReleased++;
          else released++;
        }
      }
      // Past the limit with this band's pool-wide requests still waiting, the lower bands' narrowed ones wait too, or
      // strict priority would not hold.
      if (released >= limit && (narrowedReleased >= limit || band.poolWideSize > 0)) break;
    }
    this.armTimer();
    return released + narrowedReleased;
  }

  /** Rejects every request whose deadline has passed; returns how many. */
  expire(): number {
    const due = this.deadlines.takeDue(this.now());
    for (const w of due) this.drop(w, 'deadline');
    return due.length;
  }

  /** Rejects everything waiting and everything that arrives later. */
  close(): void {
    this.closed = true;
    for (const band of this.bands.values()) for (const w of [...band.waiters()]) this.drop(w, 'closed');
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Whether one more request of `priority` holding `bytes` fits the global bounds and its band's now, displacing
   * nothing: GIE checks that capacity for every request its flow control sees, one it then dispatches at once included
   * (`controller/internal/processor.go` enqueue, hasCapacity), and request control asks it for a request that passes
   * the queue without waiting.
   */
  hasRoom(priority: number, bytes: number): boolean {
    if (this.closed) return false;
    return this.count < this.options.maxQueued && this.bytes + bytes <= (this.options.maxQueuedBytes ?? Infinity) && this.band(priority).fits(bytes);
  }

  /**
   * Whether a newcomer of `priority` holding `bytes` fits, after shedding what it may: the sheddable waiters below
   * its priority, lowest priority first and newest first within one, until it fits (in that order, not the fewest
   * possible). When even all of them would not make room, none is shed.
   */
  private makeRoom(priority: number, bytes: number): boolean {
    // The newcomer's own band is full: shedding lower bands frees nothing there (GIE's processor checks the band's
    // capacity and the global one, `controller/internal/processor.go` hasCapacity).
    if (!this.band(priority).fits(bytes)) return false;
    const maxBytes = this.options.maxQueuedBytes ?? Infinity;
    let count = this.count;
    let held = this.bytes;
    const fits = () => count < this.options.maxQueued && held + bytes <= maxBytes;
    if (fits()) return true;
    const victims: Waiter[] = [];
    for (const p of this.prioritiesDescending().reverse()) {
      if (p >= 0 || p >= priority) break;
      for (const w of this.bands.get(p)!.newestFirst()) {
        victims.push(w);
        count--;
        held -= w.request.bytes ?? 0;
        if (fits()) {
          for (const v of victims) this.drop(v, 'shed');
          return true;
        }
      }
    }
    return false;
  }

  private drop(w: Waiter, reason: FlowRejectionReason): void {
    if (!this.band(w.request.priority).remove(w)) return;
    this.settle(w);
    w.reject(new FlowControlRejection(reason));
  }

  private settle(w: Waiter): void {
    this.deadlines.leave(w);
    this.count--;
    this.bytes -= w.request.bytes ?? 0;
    if (w.onAbort) w.request.signal?.removeEventListener('abort', w.onAbort);
  }

  private band(priority: number): Band {
    let band = this.bands.get(priority);
    if (band === undefined) {
      band = new Band(this.options.bands?.get(priority) ?? (priority < 0 ? this.options.defaultNegativeBand : undefined) ?? this.options.defaultBand);
      this.bands.set(priority, band);
    }
    return band;
  }

  private prioritiesDescending(): number[] {
    return [...this.bands.keys()].filter((p) => this.bands.get(p)!.size > 0).sort((a, b) => b - a);
  }

  /** One timer, at the earliest deadline, so waiting requests are rejected on time even when nothing else happens. */
  private armTimer(): void {
    if (this.options.timers === false || this.closed) return;
    const earliest = this.deadlines.peek()?.deadlineMs ?? Infinity;
    if (earliest === this.timerAt && this.timer !== undefined) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = earliest;
    if (earliest === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.expire();
      this.armTimer();
      // Node fires a delay beyond 2^31 - 1 ms at once; a long deadline is re-armed from there instead.
    }, Math.min(MAX_TIMER_MS, Math.max(0, earliest - this.now())));
    this.timer.unref();
  }
}
