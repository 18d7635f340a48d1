import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import type { PreRequest, ResponseComplete } from '../../requestcontrol/hooks';
import type { CycleContext, Filter } from '../framework';
import type { LLMRequest, SchedulingResult } from '../types';
import { ConfigError } from '../../config/errors';
import { definePlugin, parameters } from '../plugin';

export interface LoraRoomFilterParameters {
  /**
   * The pool's LoRA adapter names (the models clients request them by). Requests for any other model (the base model,
   * a request without one) are never filtered, since vLLM schedules them whatever adapters run. `KvAwareRouting` sets
   * the decode pool's `loraAdapters`.
   */
  adapters: string[];
  /**
   * Affinity, and when to give it up. Among the pods that can start the adapter, those where it is already active
   * (running or waiting there, or with this EPP's requests for it in flight) are kept alone, so an adapter's traffic
   * stays on the pods that hold its weights instead of taking a slot on every pod. The pods with room join them once
   * every such pod has at least this many requests waiting (`vllm:num_requests_waiting`): the adapter then needs more
   * capacity than its pods have, and spreads. 0 keeps the pods with room always (no preference).
   * @default 1
   */
  spillWaiting?: number;
}

/**
 * `lora-room-filter` (kvroute's own): for a request for one of `adapters`, drops the pods that cannot start it now.
 * vLLM schedules at most `--max-loras` adapters at once and skips a waiting request for one more until a running
 * adapter has no request left (vllm/v1/core/sched/scheduler.py @ v0.10.0 lines 363-370), so such a pod makes the
 * request wait behind other adapters' traffic. A pod can start the request when its `vllm:lora_requests_info` shows the
 * adapter running, or when the distinct adapters in use there, with this one, number at most `max_lora`; so can pods
 * without LoRA state. Of those, the pods where the adapter is active are kept alone until every one of them has
 * `spillWaiting` requests waiting (affinity: see the parameter), then the others join them. A pod where requests wait
 * for a slot (more adapters in use than `max_lora`) lets its running adapter with the fewest of this EPP's requests
 * drain: that adapter goes elsewhere while it can start anywhere else, so the slot frees and the waiting request
 * starts; affinity alone kept busy adapters busy there and starved it. When no pod can start it now, the pods where the
 * adapter already waits for a slot are kept (it starts there with the waiting request), else every pod (the request
 * waits wherever it goes, and the scorers choose where).
 *
 * In use on a pod: the adapters it lists running or waiting (vLLM lists an adapter as waiting from a request's arrival
 * to its first token, so a busy adapter is often in both lists), and the adapters of the requests this EPP sent there
 * that have not ended (counted from the commit, pre-request, to the exchange's end, response-complete). The second set
 * is what the scrape cannot show yet: a burst of requests for new adapters within one scrape interval spreads over the
 * pods with room instead of all going to the first.
 *
 * A filter rather than a weight, because in kvroute's default config the no-hit LRU (4) and the prefix scorer (3) would
 * outweigh GIE's `lora-affinity-scorer` (0 to 1) for exactly the requests that need it, new and cold adapter requests.
 * It runs after the profile's other filters (`withLoraRoomFilter`): after the saturation filter, so a pod that lacks
 * LoRA state because it is new or down cannot draw the request alone, and after session affinity, so a session keeps
 * its pod. GIE v0.3's `loraAffinityFilter` (pkg/epp/scheduling/filter.go) preferred, with probability 0.999, the pods
 * already serving the adapter over those with room, after a least-queue filter; here the preference yields to the
 * active pods' own queues instead. GIE v1.5.0 has only the scorer (running 1, room 0.8). Measured with
 * `npm run bench:lora` (bench/README.md). Other EPP replicas' picks reach this one only through the scrape.
 */
export class LoraRoomFilter implements Filter, PreRequest, ResponseComplete {
  readonly type = 'lora-room-filter';
  /** Never reached: the filter keeps every candidate rather than none. */
  readonly emptyResultReason = 'no-endpoints' as const;
  private readonly adapters: ReadonlySet<string>;
  private readonly spillWaiting: number;
  /** Endpoint key → adapter → this EPP's requests for it committed there and not yet ended. */
  private readonly inFlight = new Map<string, Map<string, number>>();

  constructor(readonly name: string, parameters: Required<LoraRoomFilterParameters>) {
    this.adapters = new Set(parameters.adapters);
    this.spillWaiting = parameters.spillWaiting;
  }

  /** The adapters this EPP has requests in flight for on `endpointKey` (for tests and logs). */
  inFlightAdapters(endpointKey: string): readonly string[] {
    return [...(this.inFlight.get(endpointKey)?.keys() ?? [])];
  }

  preRequest(request: LLMRequest, result: SchedulingResult): void {
    if (!this.adapters.has(request.model)) return;
    const key = result.target.endpoint.key;
    let counts = this.inFlight.get(key);
    if (counts === undefined) this.inFlight.set(key, (counts = new Map()));
    counts.set(request.model, (counts.get(request.model) ?? 0) + 1);
  }

  responseComplete(request: LLMRequest, target: Endpoint): void {
    const counts = this.inFlight.get(target.key);
    const n = counts?.get(request.model);
    if (counts === undefined || n === undefined) return;
    if (n > 1) counts.set(request.model, n - 1);
    else {
      counts.delete(request.model);
      if (counts.size === 0) this.inFlight.delete(target.key);
    }
  }

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const model = cycle.request.model;
    if (!this.adapters.has(model)) return candidates;
    const active: EndpointSnapshot[] = [];
    const room: EndpointSnapshot[] = [];
    const draining: EndpointSnapshot[] = [];
    const queued: EndpointSnapshot[] = [];
    let activeHasSpace = false;
    for (const c of candidates) {
      const fit = fitOf(c, model, this.inFlight.get(c.endpoint.key));
      if (fit === 'active') {
        active.push(c);
        if (c.metrics.waitingQueueSize < this.spillWaiting) activeHasSpace = true;
      } else if (fit === 'room') {
        room.push(c);
      } else if (fit === 'draining') {
        draining.push(c);
      } else if (fit === 'queued') {
        queued.push(c);
      }
    }
    let kept: EndpointSnapshot[];
    if (active.length > 0 && activeHasSpace) kept = active;
    else if (active.length + room.length > 0) kept = [...active, ...room];
    else if (draining.length > 0) kept = draining;
    // Nowhere to start now: where the adapter already waits, it starts with the waiting one when a slot frees, rather
    // than waiting for a slot of its own on another full pod.
    else if (queued.length > 0) kept = queued;
    else return candidates;
    if (kept.length === candidates.length) return candidates;
    // In candidate order, as the scorers and the picker's ties expect.
    const keep = new Set(kept);
    return candidates.filter((c) => keep.has(c));
  }
}

/**
 * Whether `c` can start a request for `adapter` now, and whether the adapter is already active there: `active` (running
 * or waiting there, or this EPP's requests for it in flight, with a slot for it), `room` (a slot free for it, or no LoRA
 * state), `draining` (running there, but the pod's adapters in use outnumber its slots and this is the one to let
 * drain), `queued` (waiting there for a slot, or this EPP's requests for it are), or `full` (its `max_lora` slots held
 * by other adapters).
 */
function fitOf(c: EndpointSnapshot, adapter: string, ownInFlight: ReadonlyMap<string, number> | undefined): 'active' | 'room' | 'draining' | 'queued' | 'full' {
  const lora = c.metrics.lora;
  if (lora === undefined) return ownInFlight?.has(adapter) === true ? 'active' : 'room';
  const inUse = new Set(lora.running);
  for (const a of lora.waiting) inUse.add(a);
  if (ownInFlight !== undefined) for (const a of ownInFlight.keys()) inUse.add(a);
  if (lora.running.includes(adapter)) return inUse.size > lora.maxLora && drainsFirst(lora.running, ownInFlight) === adapter ? 'draining' : 'active';
  const present = inUse.has(adapter);
  inUse.add(adapter);
  if (inUse.size > lora.maxLora) return present ? 'queued' : 'full';
  return present ? 'active' : 'room';
}

/**
 * On a pod where requests wait for an adapter slot (vLLM starts one for another adapter only once a running adapter has
 * no request left: scheduler.py @ v0.10.0 lines 363-370), the running adapter with the fewest of this EPP's requests
 * there: sent elsewhere while it has somewhere else to go, it frees its slot first. Without this, affinity keeps a
 * pod's busy adapters busy and the waiting request starves.
 */
function drainsFirst(running: readonly string[], ownInFlight: ReadonlyMap<string, number> | undefined): string | undefined {
  let best: string | undefined;
  let fewest = Infinity;
  for (const a of running) {
    const n = ownInFlight?.get(a) ?? 0;
    if (n < fewest) {
      fewest = n;
      best = a;
    }
  }
  return best;
}

export const loraRoomFilter = definePlugin({
  type: 'lora-room-filter',
  kinds: ['filter', 'pre-request', 'response-complete'],
  parameters: parameters<LoraRoomFilterParameters>((fields) => {
    const adapters = fields.stringList('adapters', []);
    if (adapters.length === 0) throw new ConfigError(fields.fieldPath('adapters'), 'must list the pool\'s LoRA adapter names (the filter leaves every other model\'s requests alone)');
    return { adapters, spillWaiting: fields.integer('spillWaiting', 1, 0) };
  }),
  create: (name, resolved) => new LoraRoomFilter(name, resolved),
});
