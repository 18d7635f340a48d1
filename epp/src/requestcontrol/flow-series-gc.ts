import { OTHER_LABEL } from '../bounded-label';

/**
 * How often idle flows are collected, and how long a flow must have been idle to be: llm-d-router v0.10.0's
 * `FlowGCTimeout` (`pkg/epp/flowcontrol/registry/config.go` defaultFlowGCTimeout), which the EPP's config cannot set.
 */
export const FLOW_GC_INTERVAL_MS = 5 * 60_000;

interface FlowLeases {
  readonly fairnessId: string;
  readonly priority: string;
  /** Requests of the flow in flow control now. */
  leases: number;
  /** When the last of them left (meaningful while `leases` is 0). */
  idleSinceMs: number;
}

/**
 * llm-d-router v0.10.0's flow garbage collection, as far as kvroute has flows: their flow-control series. A flow (a
 * `fairness_id` at a `priority`) is leased while a request of it is in flow control, waiting in the queue or passing it,
 * and idle from when the last one left (`flowcontrol/registry/leasing.go` tryPin, unpin; the controller holds the lease
 * from enqueue to the request's final outcome, `controller/controller.go` EnqueueAndWait). Every `intervalMs` the flows
 * idle at least that long are collected and `forget` drops their series (`registry.go` gcFlows →
 * `metrics.DeleteFlowControlFlowSeries`): fairness ids come from clients, and without this every id ever seen kept its
 * series for the EPP's life. A flow is collected between one and two intervals after it went idle; a request of it
 * after that records it afresh. Series of the `other` fairness id, which every id past the label bound shares, are never
 * dropped (upstream's overflowValue exception).
 */
export class FlowSeriesGc {
  private readonly flows = new Map<string, FlowLeases>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly intervalMs: number,
    private readonly forget: (fairnessId: string, priority: string) => void,
    private readonly nowMs: () => number,
  ) {
    this.timer = setInterval(() => this.collect(), intervalMs).unref();
  }

  /** A request of the flow enters flow control; the returned function is its leaving (later calls do nothing). */
  lease(fairnessId: string, priority: string): () => void {
    if (fairnessId === OTHER_LABEL) return () => undefined;
    const key = `${fairnessId}\u0000${priority}`;
    let flow = this.flows.get(key);
    if (flow === undefined) {
      flow = { fairnessId, priority, leases: 0, idleSinceMs: 0 };
      this.flows.set(key, flow);
    }
    flow.leases++;
    const leased = flow;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--leased.leases === 0) leased.idleSinceMs = this.nowMs();
    };
  }

  /** A request of the flow that passed flow control at once (admitted or refused on arrival). */
  touch(fairnessId: string, priority: string): void {
    this.lease(fairnessId, priority)();
  }

  /** One GC cycle: the flows idle for at least an interval are dropped, with their series. */
  collect(): void {
    const now = this.nowMs();
    for (const [key, flow] of this.flows) {
      if (flow.leases > 0 || now - flow.idleSinceMs < this.intervalMs) continue;
      this.flows.delete(key);
      this.forget(flow.fairnessId, flow.priority);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
