/**
 * What the gateway does when the EPP lets a request down, as Envoy's ext_proc filter decides it
 * (`source/extensions/filters/http/ext_proc/ext_proc.cc`: onGrpcError, onGrpcClose, onMessageTimeout): go on without
 * the EPP (fail open, to the fallback policy), or end the request with a local reply (fail closed).
 *
 * The filter only asks; every rule lives here. Envoy releases differ on these rules (whether the message timer runs
 * for FULL_DUPLEX_STREAMED bodies; whether an error after a body chunk went out may still fail open), so a release's
 * semantics are one `FailurePolicy` object chosen at startup, not branches in the filter.
 */
import type { ProcFailure } from './extproc-client';

/** The message an answer is owed for, on either side. */
export type ProcessingMessage = 'headers' | 'body' | 'trailers';
export type Direction = 'request' | 'response';

/** What the filter knows when its stream fails while the request still needed the EPP. */
export interface StreamFailure {
  readonly kind: ProcFailure;
  readonly detail: string;
  /** Whether any request or response body chunk had gone to the EPP. */
  readonly bodySent: boolean;
}

export type FailureOutcome =
  | { readonly action: 'fail-open' }
  /** A local reply; `details` is its body, Envoy's response code details. */
  | { readonly action: 'fail-closed'; readonly status: number; readonly details: string };

export interface FailurePolicy {
  /** Whether the message timer runs while the EPP owes the answer to `message`; silence past it is a `timeout`. */
  timesOut(direction: Direction, message: ProcessingMessage): boolean;
  onStreamFailure(failure: StreamFailure): FailureOutcome;
}

const FAIL_OPEN: FailureOutcome = { action: 'fail-open' };

/**
 * The rules the gateway has always followed: every owed answer is timed; `failure_mode_allow` alone chooses between
 * failing open and failing closed, wherever the request is.
 */
export class EnvoyFailurePolicy implements FailurePolicy {
  constructor(private readonly failureModeAllow: boolean) {}

  timesOut(): boolean {
    return true;
  }

  onStreamFailure({ kind, detail }: StreamFailure): FailureOutcome {
    // A stream the EPP closes cleanly is not a failure to Envoy: it just stops processing.
    if (this.failureModeAllow || kind === 'closed') return FAIL_OPEN;
    if (kind === 'timeout') return { action: 'fail-closed', status: 504, details: 'ext_proc_error_per-message_timeout_exceeded' };
    return { action: 'fail-closed', status: 500, details: `ext_proc_error_gRPC_error (${kind}: ${detail})` };
  }
}
