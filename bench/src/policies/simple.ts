/**
 * Baseline routers as `RequestDirector`s, hosted in the benchmark process behind the same ext_proc server the EPP runs
 * (`startExtProcServer`), so they pay the same protocol path: random, least-request and round-robin. Each keeps its
 * own in-flight count per endpoint (a request counts from the routing decision until the ext_proc stream releases it).
 */
import type { IncomingRequest, ReleaseOutcome, RequestDirector, RouteDecision } from '@kvroute/epp/extproc';
import { rng } from '../workload';

export interface Ticket {
  readonly index: number;
}

/** Endpoints (ip:port) and their in-flight requests; subclasses only choose an index. */
export abstract class CountingDirector implements RequestDirector {
  readonly endpoints: readonly string[];
  private readonly load: number[];
  /** Requests routed to each endpoint so far. */
  readonly routed: number[];

  constructor(endpoints: readonly string[]) {
    if (endpoints.length === 0) throw new Error('a director needs at least one endpoint');
    this.endpoints = [...endpoints];
    this.load = endpoints.map(() => 0);
    this.routed = endpoints.map(() => 0);
  }

  /** In-flight requests per endpoint, in endpoint order. */
  get inFlight(): readonly number[] {
    return this.load;
  }

  protected abstract choose(req: IncomingRequest): number;

  async route(req: IncomingRequest, _signal?: AbortSignal): Promise<RouteDecision> {
    const index = this.choose(req);
    this.load[index]++;
    this.routed[index]++;
    const ticket: Ticket = { index };
    return { kind: 'route', endpoint: this.endpoints[index], ticket };
  }

  release(ticket: unknown, _outcome: ReleaseOutcome): void {
    const { index } = ticket as Ticket;
    if (this.load[index] > 0) this.load[index]--;
  }
}

/** Uniformly random endpoint, from a seeded generator (reproducible runs). */
export class RandomDirector extends CountingDirector {
  private readonly random: () => number;

  constructor(endpoints: readonly string[], seed = 1) {
    super(endpoints);
    this.random = rng(seed);
  }

  protected choose(): number {
    return Math.min(this.endpoints.length - 1, Math.floor(this.random() * this.endpoints.length));
  }
}

/** Fewest in-flight requests (a full scan, not Envoy's power-of-two sampling); ties broken at random (seeded). */
export class LeastRequestDirector extends CountingDirector {
  private readonly random: () => number;

  constructor(endpoints: readonly string[], seed = 1) {
    super(endpoints);
    this.random = rng(seed);
  }

  protected choose(): number {
    return leastLoadedIndex(this.inFlight, this.random);
  }
}

/** Endpoints in turn: the gateway's fallback, but behind ext_proc (isolates the protocol's cost). */
export class RoundRobinDirector extends CountingDirector {
  private next = 0;

  protected choose(): number {
    const i = this.next;
    this.next = (this.next + 1) % this.endpoints.length;
    return i;
  }
}

/** Index of the smallest load; ties broken by `random` when given, else the first. */
export function leastLoadedIndex(load: readonly number[], random?: () => number): number {
  const min = Math.min(...load);
  const ties: number[] = [];
  load.forEach((l, i) => {
    if (l === min) ties.push(i);
  });
  if (!random || ties.length === 1) return ties[0];
  return ties[Math.min(ties.length - 1, Math.floor(random() * ties.length))];
}
