/**
 * What the gateway does when the EPP lets a request down, as Envoy's ext_proc filter decides it
 * (`source/extensions/filters/http/ext_proc/ext_proc.cc`: onGrpcError, onGrpcClose, onMessageTimeout, the spurious
 * branch of onReceiveMessage): go on without the EPP (fail open, to the fallback policy), or end the request with a
 * local reply (fail closed); and which owed answers the message timer covers.
 *
 * The filter only asks; every rule lives here, and where Envoy releases differ the rule reads the release's
 * `EnvoySemantics` (chosen at startup), never a branch in the filter.
 */
import type { EnvoySemantics } from './envoy-semantics';
import type { ProcFailure } from './extproc-client';

/** The message an answer is owed for, on either side. */
export type ProcessingMessage = 'headers' | 'body' | 'trailers';
export type Direction = 'request' | 'response';

/** How the stream let the request down: a session failure, or an answer out of order. */
export type FailureKind = ProcFailure | 'spurious';

/** What the filter knows when its stream fails while it is still open. */
export interface StreamFailure {
  readonly kind: FailureKind;
  readonly detail: string;
  /** The gRPC status code (0 for a clean close, 4 for the message timeout). */
  readonly grpcCode: number;
  /** A FULL_DUPLEX_STREAMED direction has received a body chunk (Envoy's `ProcessorState::bodyReceived`). */
  readonly fullDuplexBodyReceived: boolean;
}

export type FailureOutcome =
  | { readonly action: 'fail-open' }
  /** A local reply (a reset once the response has started); `details` is Envoy's response code details. */
  | { readonly action: 'fail-closed'; readonly status: number; readonly details: string };

export interface FailurePolicy {
  /** Whether the message timer runs while the EPP owes the answer to `message` in `direction`. */
  timesOut(direction: Direction, message: ProcessingMessage): boolean;
  onStreamFailure(failure: StreamFailure): FailureOutcome;
}

export interface PolicyModes {
  readonly requestFullDuplex: boolean;
  readonly responseFullDuplex: boolean;
  readonly failureModeAllow: boolean;
}

const FAIL_OPEN: FailureOutcome = { action: 'fail-open' };
/** Envoy's `ErrorPrefix` for ext_proc local replies. */
const ERROR_PREFIX = 'ext_proc_error';

export class EnvoyFailurePolicy implements FailurePolicy {
  constructor(private readonly semantics: EnvoySemantics, private readonly modes: PolicyModes) {}

  /**
   * `ProcessorState::onStartProcessorCall` starts the direction's timer for every message, unless that direction's
   * body mode is FULL_DUPLEX_STREAMED (`processor_state.cc` @ v1.35.0 L21-38, identical through v1.38.0 L26-39).
   */
  timesOut(direction: Direction): boolean {
    return direction === 'request' ? !this.modes.requestFullDuplex : !this.modes.responseFullDuplex;
  }

  onStreamFailure(f: StreamFailure): FailureOutcome {
    // The EPP ended the stream with OK: onGrpcClose goes on without it, with no failure-mode check on any version
    // (`ext_proc.cc` @ v1.35.0 L1675-1684; onGrpcCloseWithStatus @ v1.36.0 L1717-1726).
    if (f.kind === 'closed') return FAIL_OPEN;
    if (this.failureModeAllow(f)) return FAIL_OPEN;
    switch (f.kind) {
      case 'timeout':
        // onMessageTimeout @ v1.35.0 L1686-1713: 504.
        return { action: 'fail-closed', status: 504, details: `${ERROR_PREFIX}_per-message_timeout_exceeded` };
      case 'spurious':
        // handleErrorResponse (runtime guard ext_proc_fail_close_spurious_resp, on by default): 500.
        return { action: 'fail-closed', status: 500, details: f.detail };
      default:
        // onGrpcError @ v1.35.0 L1648-1673 (`status_on_error`, default 500, from v1.36.0): "%s_gRPC_error_%i{%s}".
        return { action: 'fail-closed', status: 500, details: `${ERROR_PREFIX}_gRPC_error_${f.grpcCode}{${f.detail}}` };
    }
  }

  /** `failure_mode_allow` as the release reads it at the time of the failure (`Filter::failureModeAllow()` >= 1.36). */
  private failureModeAllow(f: StreamFailure): boolean {
    if (this.semantics.afterFullDuplexBody === 'local-reply' && f.fullDuplexBodyReceived) return false;
    return this.modes.failureModeAllow;
  }
}
