/**
 * The three timers Envoy runs on one HTTP stream, as the gateway EnvoyFilter and the HTTPRoute configure them. Cited
 * at envoyproxy/envoy v1.35.0 (84305a6cb6); the same code runs in every release the gateway can play.
 *
 * - HCM `request_timeout` (`requestReceiveTimeoutMs`): armed when the stream is created (ActiveStream constructor,
 *   `source/common/http/conn_manager_impl.cc` L885-890), which the HTTP/1 codec does on the request's first byte
 *   (`http1/codec_impl.cc` ConnectionImpl::onMessageBeginImpl → ServerConnectionImpl::onMessageBeginBase →
 *   ConnectionManagerImpl::newStream; the gateway's listener runs both timers while a head is coming in); disarmed only once the whole request has passed every
 *   decoder filter, the router included (`source/common/http/filter_manager.cc` decodeHeaders L655-658, decodeData
 *   L781-784, decodeTrailers L863: a filter that stops iteration returns before these), or when response headers are
 *   encoded (encodeHeaders L1254-1255). So it bounds the client's upload plus the time the EPP holds the request.
 *   Expiry: onRequestTimeout (L980-986), a local reply "request timeout".
 * - HCM `stream_idle_timeout` (`idleTimeoutMs`): on every stream, whatever its route (armed in the ActiveStream
 *   constructor, at the request's first byte as well; a route's own `idle_timeout` would replace it, refreshIdleTimeout L2155-2176, and the manifests set
 *   none); reset by every header, data or trailer event either way (see `DownstreamEvents.activity`). Expiry:
 *   onIdleTimeout (L970-978), a local reply "stream timeout".
 * - route `timeout` of the route the router took (the inference route's `requestTimeoutMs`; the models route has
 *   none): armed when the router has the whole request (Filter::onRequestComplete, `source/common/router/router.cc`
 *   L1123-1148, timer L1138-1141), cleared when the upstream response is complete.
 *   Expiry: onResponseTimeout (L1170-1214) resets the upstream request and onUpstreamTimeoutAbort (L1347-1362)
 *   answers 504 "upstream request timeout".
 *
 * The status of the first two is `Utility::maybeRequestTimeoutCode(hasLastDownstreamByteReceived())`
 * (`source/common/http/utility.cc` L1539-1544): 408 while the client's request is incomplete, 504 once it is all in.
 * Every local reply becomes a reset of the client's stream when response headers were already sent
 * (DownstreamFilterManager::sendLocalReply, `filter_manager.cc` L1048-1057).
 */
import type { TimeoutKind } from './stats';

export interface TimeoutSettings {
  readonly requestReceiveTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

export interface TimeoutExpiry {
  readonly kind: TimeoutKind;
  /** The local reply's body, Envoy's. */
  readonly body: string;
}

export class StreamTimeouts {
  private requestTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private routeTimer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(private readonly settings: TimeoutSettings, private readonly expire: (e: TimeoutExpiry) => void) {}

  /**
   * The request headers are in. `streamStartedAt` (`performance.now()`) is when the stream began, the head's first
   * byte: the request timer has run since then, while the idle timer starts over with the headers.
   */
  start(streamStartedAt = performance.now()): void {
    if (this.settings.requestReceiveTimeoutMs > 0) {
      const left = Math.max(0, this.settings.requestReceiveTimeoutMs - (performance.now() - streamStartedAt));
      this.requestTimer = setTimeout(() => this.fire({ kind: 'requestReceive', body: 'request timeout' }), left);
    }
    this.activity();
  }

  /** Bytes moved either way: the idle timer starts over. */
  activity(): void {
    if (this.done || this.settings.idleTimeoutMs <= 0) return;
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => this.fire({ kind: 'idle', body: 'stream timeout' }), this.settings.idleTimeoutMs);
  }

  /**
   * The router has the whole request: the HCM's request timer stops and the timeout of the route the router took
   * (`routeTimeoutMs`, 0: none; the inference route's `timeout`, the models route has none) starts.
   */
  requestComplete(routeTimeoutMs: number): void {
    this.stopRequestTimer();
    if (this.done || routeTimeoutMs <= 0 || this.routeTimer) return;
    this.routeTimer = setTimeout(() => this.fire({ kind: 'route', body: 'upstream request timeout' }), routeTimeoutMs);
  }

  /** Response headers are on their way to the client. */
  responseHeaders(): void {
    this.stopRequestTimer();
  }

  /** The upstream's whole response is in. */
  responseComplete(): void {
    if (this.routeTimer) clearTimeout(this.routeTimer);
    this.routeTimer = undefined;
  }

  /** The exchange is over. */
  clear(): void {
    this.done = true;
    this.stopRequestTimer();
    this.responseComplete();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private stopRequestTimer(): void {
    if (this.requestTimer) clearTimeout(this.requestTimer);
    this.requestTimer = undefined;
  }

  private fire(e: TimeoutExpiry): void {
    if (this.done) return;
    this.clear();
    this.expire(e);
  }
}
