import type { InferencePoolApiGroup } from './endpoint-picker';
import { PropsError } from './validation';

/**
 * What the Envoy inside each Istio release does with the ext_proc wiring kvroute emits, read from source (the README's
 * "Istio and Envoy support matrix" lists the same facts with their citations). The constructs choose their shapes from
 * it, so every cluster profile synthesizes configuration its Istio accepts and behaves as documented.
 *
 * Chain of pins: istio/istio `istio.deps` → istio/proxy `WORKSPACE` (`ENVOY_SHA`) → envoyproxy/envoy.
 */
export interface IstioSupport {
  /** The version as configured ("1.27.0", "1.27", "1.28.3"). */
  readonly version: string;
  readonly minor: number;
  /** Undefined for a minor line ("1.28"): the facts must then hold for every patch release of it. */
  readonly patch?: number;
  /** The Envoy release line its proxy pins. */
  readonly envoyLine: string;
  /**
   * Envoy refuses `failure_mode_allow: true` beside a filter-level FULL_DUPLEX_STREAMED body mode (either direction)
   * and NACKs the listener: envoyproxy/envoy source/extensions/filters/http/ext_proc/config.cc
   * `verifyProcessingModeConfig` @ v1.35.0 (84305a6cb6) L53-62, added by #39740, reverted by #40503 and on
   * release/v1.35 by #40757 (e9741858f6, 2025-08-19). Only Istio 1.27.0 pins an Envoy in that window (01cfa86465).
   */
  readonly rejectsFilterLevelFullDuplexWithFailOpen: boolean;
  /**
   * What an EPP failure does once a FULL_DUPLEX_STREAMED body chunk went to it, even with `failure_mode_allow`:
   * - `lossy-fail-open` (Envoy 1.35): the chunks already sent were drained, so the request continues without them
   *   (ext_proc.cc `handleDataStreamedModeBase` L800-805, `onGrpcError` L1648-1673 @ 6e9539d036);
   * - `local-reply` (Envoy >= 1.36, #41276): a 500 (or `status_on_error`), a reset once response headers went out
   *   (`Filter::failureModeAllow()` @ v1.36.0 63ee0dc79d L1008-1016; `ProcessorState::canFailOpen()` on main).
   */
  readonly fullDuplexFailureAfterBody: 'lossy-fail-open' | 'local-reply';
  /** The InferencePool API its native Gateway API Inference Extension support reads (pilot `gvk` @ tag). */
  readonly inferencePoolApiGroup: InferencePoolApiGroup;
  /**
   * Native InferencePool routing usable as kvroute's mode: from 1.28, whose per-route `ExtProcPerRoute` carries the
   * trailer modes FULL_DUPLEX_STREAMED requires (istio/istio 27f1eeb3b5, #57041; 1.27.x omits them). Istio then
   * streams request and response bodies FULL_DUPLEX_STREAMED (pilot/pkg/networking/core/route/route.go L521-545 @ 1.28.0
   * b8d1df5446, the same at 1.29.0 2300e2458a and 1.30.3 56df41f63e): every token crosses the EPP twice, which kvroute
   * cannot change (the cost is in `RESPONSE_TRAILER_MODE`'s comment, lib/ext-proc.ts).
   */
  readonly nativeInferencePool: boolean;
  /**
   * A route's `request_body_buffer_limit` takes effect at route match, so ext_proc's BUFFERED body can exceed the
   * listener limit on that route only: Envoy >= 1.37 (#42607, 8fc5e0b36f), Istio >= 1.29.
   */
  readonly routeRequestBodyBufferLimit: boolean;
  /**
   * The `override_host` policy can write the endpoint it chose into dynamic metadata (`selected_host_key`), which
   * ext_proc's `forwarding_namespaces` then sends to the EPP with the response: the EPP protocol's "Destination
   * Endpoint Served" (`envoy.lb` / `x-gateway-destination-endpoint-served`, GIE docs/proposals/004). The field came with
   * envoyproxy/envoy a7589bb142 (2026-03-04; go-control-plane `envoy/v1.38.0` has it, `envoy/v1.37.0` does not), and
   * istiod converts EnvoyFilter patches with its own go-control-plane, so Istio >= 1.30 only; Istio 1.30.0 sets it on
   * its own InferencePool clusters (istio/istio efc2b41130 `cluster_builder.go`). Before that the served endpoint
   * cannot reach the EPP.
   */
  readonly reportsServedEndpoint: boolean;
}

/** The oldest Istio kvroute supports: the first whose Envoy has the `override_host` load-balancing policy. */
export const MIN_ISTIO_MINOR = 27;

const ENVOY_LINE: Readonly<Record<number, string>> = {
  27: 'release/v1.35',
  28: 'release/v1.36',
  29: 'release/v1.37',
  30: 'release/v1.38',
};

/**
 * Parses an Istio version and returns what its Envoy does. A minor line without a patch ("1.27") is taken at its
 * most restrictive patch, so the shapes chosen for it load on every release of the line.
 * @throws PropsError for a malformed version or one older than 1.27.
 */
export function istioSupport(version: string, scope = 'KvAwareRouting', field = 'istioVersion'): IstioSupport {
  const m = typeof version === 'string' ? /^1\.(\d+)(?:\.(\d+))?$/.exec(version) : null;
  if (!m) throw new PropsError(scope, field, 'must be an Istio version such as "1.27.0", "1.27" or "1.28.3"', version);
  const minor = Number(m[1]);
  const patch = m[2] === undefined ? undefined : Number(m[2]);
  if (minor < MIN_ISTIO_MINOR) {
    throw new PropsError(scope, field, `must be 1.${MIN_ISTIO_MINOR} or newer (the first Istio whose Envoy has the override_host load-balancing policy)`, version);
  }
  return {
    version,
    minor,
    ...(patch !== undefined ? { patch } : {}),
    envoyLine: ENVOY_LINE[minor] ?? 'release/v1.38 or newer',
    rejectsFilterLevelFullDuplexWithFailOpen: minor === 27 && (patch === undefined || patch === 0),
    fullDuplexFailureAfterBody: minor === 27 ? 'lossy-fail-open' : 'local-reply',
    inferencePoolApiGroup: minor === 27 ? 'inference.networking.x-k8s.io' : 'inference.networking.k8s.io',
    nativeInferencePool: minor >= 28,
    routeRequestBodyBufferLimit: minor >= 29,
    reportsServedEndpoint: minor >= 30,
  };
}
