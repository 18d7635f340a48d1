/**
 * The upstream's response on its way to the client, as Envoy's router passes it back down the filter chain
 * (`source/common/router/router.cc` onUpstreamHeaders / onUpstreamData / onUpstreamTrailers, and
 * `source/common/router/upstream_request.cc`): headers cleaned of hop-by-hop fields and stamped with the endpoint
 * that served them; the body streamed chunk by chunk, either straight to the client or through the ext_proc
 * filter's response phase, never collected (SSE must arrive as it is produced); the client's backpressure and the
 * filter's held back onto the upstream socket. An upstream that dies mid-response resets the client.
 */
import type * as http from 'http';
import type { Downstream } from './downstream';
import type { Endpoint } from './endpoints';
import { HeaderList, RESPONSE_HOP_BY_HOP, trailerList } from './headers';
import { SERVED_HEADER } from './router';

/**
 * Where the upstream's body chunks go. `drain`: dropped, but the upstream's end (with its trailers) still ends the
 * client's response, as Envoy drains every chunk after a CONTINUE_AND_REPLACE with a body mutation and lets the end of
 * stream and the trailers continue (`ext_proc.cc` @ v1.35.0 Filter::onData, `bodyReplaced()`).
 */
export type ResponseBodyRoute = 'filter' | 'client' | 'drain' | 'discard';

/**
 * Why the upstream's body is not being read: the EPP has not answered the response headers yet (`headers`), too
 * much of the body awaits its echo (`echo`), the EPP stream is full (`grpc`), or the client's socket is (`client`).
 * Reading resumes once no reason is left.
 */
export type ResponsePause = 'headers' | 'echo' | 'grpc' | 'client';

/** The ext_proc filter's response phase, as the relay feeds it. */
export interface ResponseFilter {
  /** The upstream's status and headers (`headers`, which the filter may mutate until the head is written). */
  headersReady(headers: HeaderList, noBody: boolean): void;
  /** A body chunk, while the body goes through the filter. */
  data(chunk: Buffer): void;
  /** The end of the body, while it goes through the filter. */
  end(trailers: HeaderList | null): void;
  /** The end of a body that went straight to the client; true when the filter ends the client's response itself. */
  clientBodyEnded(trailers: HeaderList | null): boolean;
}

export class ResponseRelay {
  private upstream: http.IncomingMessage | null = null;
  private servedBy: Endpoint | null = null;
  private headers: HeaderList | null = null;
  private filter: ResponseFilter | null = null;
  // With a filter, its 'headers' pause holds the body back until the filter has chosen the route.
  private route: ResponseBodyRoute = 'client';
  private readonly pauses = new Set<ResponsePause>();
  private waitingForClient = false;
  private ended = false;
  /** The upstream ended while the filter held its headers: the end is handled once the filter has chosen the route. */
  private endHeldForHeaders = false;
  private trailers: HeaderList | null = null;

  /**
   * `onUpstreamComplete`: the upstream's whole response is in (Envoy's router onUpstreamComplete). `enableTrailers`:
   * the cluster's Http1ProtocolOptions.enable_trailers; without it Envoy's HTTP/1 client codec ignores the pod's
   * trailers (`source/common/http/http1/codec_impl.cc` @ v1.35.0 ConnectionImpl::onHeaderFieldImpl), so neither the
   * EPP nor the client gets them. `onUpstreamReset`: the upstream went away before its response was complete while
   * no byte of the response head has reached the client (an encoder filter, the ext_proc response phase, holds it).
   */
  constructor(
    private readonly downstream: Downstream,
    private readonly onUpstreamComplete: () => void,
    private readonly enableTrailers: boolean,
    private readonly onUpstreamReset: () => void,
  ) {}

  get bodyRoute(): ResponseBodyRoute {
    return this.route;
  }

  /** The upstream's body is complete. */
  get upstreamEnded(): boolean {
    return this.ended;
  }

  /** The upstream's trailers, once its body is complete. */
  get upstreamTrailers(): HeaderList | null {
    return this.trailers;
  }

  get clientResponseStarted(): boolean {
    return this.downstream.responseStarted;
  }

  /**
   * The upstream's whole response has been read off the wire (even if not yet consumed), without trailers: Envoy's
   * `completeBodyAvailable() && responseTrailers() == nullptr` while it waits for the EPP.
   */
  get upstreamCompleteWithoutTrailers(): boolean {
    const res = this.upstream;
    return res !== null && res.complete && (!this.enableTrailers || res.rawTrailers.length === 0);
  }

  /** Takes over the upstream's response; `filter` is the ext_proc response phase when the EPP is to see it. */
  start(res: http.IncomingMessage, endpoint: Endpoint, filter: ResponseFilter | null, serviceTimeMs?: number): void {
    this.upstream = res;
    this.servedBy = endpoint;
    res.on('data', (c: Buffer) => this.onData(c));
    res.on('end', () => this.onEnd());
    res.on('error', () => undefined);
    res.on('close', () => {
      // The upstream went away mid-response. Once the head is with the client only a reset can say so; before that
      // (its headers still held by the EPP) the exchange answers as Envoy's router does (`onUpstreamReset`).
      if (this.ended || this.downstream.closed) return;
      if (this.downstream.responseStarted) this.downstream.reset();
      else this.onUpstreamReset();
    });
    const status = res.statusCode ?? 502;
    const headers = new HeaderList([[':status', String(status)]]);
    for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
      const n = res.rawHeaders[i].toLowerCase();
      if (!RESPONSE_HOP_BY_HOP.has(n) && n !== SERVED_HEADER) headers.add(n, res.rawHeaders[i + 1]);
    }
    // Set by the router before the encoder filters run, so the EPP's response_headers carry it too.
    if (serviceTimeMs !== undefined) headers.set('x-envoy-upstream-service-time', String(serviceTimeMs));
    this.headers = headers;
    const noBody = this.downstream.method === 'HEAD' || status === 204 || status === 304 || status < 200 || headers.get('content-length') === '0';
    if (filter) {
      this.filter = filter;
      filter.headersReady(headers, noBody);
      return;
    }
    this.route = 'client';
    this.writeHead();
  }

  bodyTo(route: ResponseBodyRoute): void {
    this.route = route;
  }

  /** Writes the response head to the client, once. */
  writeHead(): void {
    const headers = this.headers;
    if (!headers || this.downstream.responseStarted || this.downstream.closed) return;
    const status = Number(headers.get(':status'));
    // Envoy removes Content-Length when the body goes through the EPP (the EPP may change it); HTTP/1.1 chunks it.
    if (this.route === 'filter') headers.remove('content-length');
    if (this.servedBy) headers.set(SERVED_HEADER, this.servedBy.address);
    this.downstream.writeHead(status, headers);
  }

  writeClient(chunk: Buffer): void {
    if (chunk.length === 0 || this.downstream.closed) return;
    if (!this.downstream.write(chunk) && !this.waitingForClient) {
      this.waitingForClient = true;
      this.pause('client');
      this.downstream.onceDrained(() => {
        this.waitingForClient = false;
        this.resume('client');
      });
    }
  }

  endClient(trailers: HeaderList | null): void {
    // HTTP/1.1 carries trailers only on a chunked body.
    this.downstream.end(this.headers?.has('content-length') ? null : trailers);
  }

  /** Cuts the client's connection: a response already under way cannot be completed. */
  resetClient(): void {
    this.downstream.reset();
  }

  pause(reason: ResponsePause): void {
    this.pauses.add(reason);
    this.upstream?.pause();
  }

  resume(reason: ResponsePause): void {
    if (!this.pauses.delete(reason)) return;
    if (reason === 'headers' && this.endHeldForHeaders) {
      this.endHeldForHeaders = false;
      this.deliverEnd();
    }
    if (this.pauses.size === 0 && !this.downstream.closed) this.upstream?.resume();
  }

  /** The exchange is ending without this response (a local reply or the client gone): drop the upstream's. */
  abandon(): void {
    this.upstream?.destroy();
    this.route = 'discard';
  }

  private onData(chunk: Buffer): void {
    if (this.downstream.closed) return;
    switch (this.route) {
      case 'filter':
        this.filter?.data(chunk);
        return;
      case 'client':
        this.writeClient(chunk);
        return;
      case 'drain':
      case 'discard':
        return;
    }
  }

  private onEnd(): void {
    this.ended = true;
    this.onUpstreamComplete();
    if (this.downstream.closed) return;
    this.trailers = this.enableTrailers ? trailerList(this.upstream?.rawTrailers ?? []) : null;
    // A response without a body (HEAD, 204, 304, Content-Length: 0) ends at its headers, before the EPP has answered
    // them; ending the client's response now would write a default head in place of the upstream's. Envoy's encoder
    // chain holds the end of stream with the headers until the ext_proc filter continues them.
    if (this.pauses.has('headers')) {
      this.endHeldForHeaders = true;
      return;
    }
    this.deliverEnd();
  }

  private deliverEnd(): void {
    if (this.downstream.closed) return;
    switch (this.route) {
      case 'filter':
        this.filter?.end(this.trailers);
        return;
      case 'client':
        if (this.filter?.clientBodyEnded(this.trailers)) return;
        this.endClient(this.trailers);
        return;
      case 'drain':
        this.endClient(this.trailers);
        return;
      case 'discard':
        return;
    }
  }
}
