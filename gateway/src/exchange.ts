/**
 * One HTTP request through the gateway: what Envoy's ext_proc filter, the override_host load balancer and the router
 * do for a request on the route the EnvoyFilter configures.
 *
 * Request path
 * - The client's `x-gateway-destination-endpoint` (and `-served`) headers are stripped before anything else.
 * - FULL_DUPLEX_STREAMED: request headers go to the EPP at once (with `protocol_config`), then each body chunk as it
 *   arrives (the last one with end_of_stream, or the trailers). Nothing goes upstream until the EPP answers the
 *   headers; its header mutations and dynamic metadata (the pick) then start the upstream request, and the body the
 *   EPP streams back (StreamedBodyResponse) is what the upstream receives, chunked (Envoy drops Content-Length in this
 *   mode because the EPP may change the body).
 * - BUFFERED: headers go to the EPP, the body is collected; once the header answer is in, the whole body goes in one
 *   message; the body answer carries the mutations, the pick and possibly a new body; Content-Length is set to the
 *   body actually sent (a mutated body that contradicts a Content-Length the EPP left in place is a 500, as in Envoy).
 * - Every body byte sent to the EPP is also kept (EchoTracker) until the EPP has returned it, so a failure at any
 *   point can continue with exactly the bytes the upstream has not seen yet.
 *
 * Response path (response header mode SEND, body FULL_DUPLEX_STREAMED by default): the upstream's headers go to the
 * EPP and the client gets them after the answer; each body chunk goes to the EPP and what the EPP streams back is
 * written to the client as it arrives (SSE is never buffered). `x-gateway-destination-endpoint-served` names the
 * upstream actually used.
 *
 * Failures (see `procGone`): with failure_mode_allow the request goes on without the EPP, by the fallback policy if
 * it was not routed yet; without it the client gets 500 (504 for a message timeout), like Envoy's local replies.
 */
import { randomUUID } from 'crypto';
import type * as http from 'http';
import { structToJson, type JsonValue } from '@kvroute/protocol/envoy';
import type { ProcessingRequest } from '@kvroute/protocol/envoy';
import type { Endpoint } from './endpoints';
import { EchoTracker } from './echo-tracker';
import {
  isReplace,
  type DecodedBodyMutation,
  type DecodedCommonResponse,
  type DecodedImmediateResponse,
  type DecodedProcessingResponse,
} from './ext-proc-answers';
import type { ExtProcClient, ExtProcSession, ProcFailure } from './extproc-client';
import {
  applyHeaderMutation,
  HeaderList,
  HOP_BY_HOP,
  InvalidMutation,
  trailerList,
  trailerRecord,
  type DecodedHeaderMutation,
  type MutationTarget,
} from './headers';
import type { BypassRule } from './options';
import type { FailurePolicy } from './failure-policy';
import { DESTINATION_HEADER, LB_NAMESPACE, Router, SERVED_HEADER, type RouterContext } from './router';

const EMPTY = Buffer.alloc(0);
/** Response bytes sent to the EPP but not yet echoed, above which the upstream response is paused. */
const ECHO_HIGH_WATER = 1024 * 1024;
const ECHO_LOW_WATER = 256 * 1024;

export interface ExchangeContext extends RouterContext {
  readonly extProc: ExtProcClient | null;
  readonly failurePolicy: FailurePolicy;
  /** `envoy.type.v3.StatusCode` name or number → HTTP status (0 when unknown). */
  statusCodeOf(code: string | number | undefined): number;
  done(x: Exchange): void;
}

function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

export function bypasses(rules: readonly BypassRule[], method: string, url: string): boolean {
  const path = pathOnly(url);
  return rules.some((r) => r.path === path && (r.method === undefined || r.method === method));
}

export class Exchange {
  private readonly method: string;
  /** The request target as origin-form (`/path?query`). */
  private readonly path: string;
  private readonly headers: HeaderList;
  private readonly originalContentLength: string | undefined;
  private readonly hasBody: boolean;
  private readonly duplex: boolean;
  private proc: ExtProcSession | null = null;
  private lbMetadata: { [key: string]: JsonValue } = {};
  private finished = false;
  /** A body chunk has gone to the EPP: some Envoy releases treat a failure after that differently. */
  private bodySent = false;

  // Request side.
  private reqSink: 'proc' | 'upstream' | 'discard' = 'upstream';
  private readonly reqPause = new Set<string>();
  private clientBytes = 0;
  private clientEnded = false;
  private clientTrailers: HeaderList | null = null;
  private held: Buffer | null = null;
  private readonly reqTracker = new EchoTracker();
  private buffered: Buffer[] = [];
  private reqHeadersSent = false;
  private reqHeadersAnswered = false;
  private reqBodySent = false;
  private reqBodyAnswered = false;
  private reqTrailersSent = false;
  private reqTrailersAnswered = false;
  private reqReplaced = false;

  // Upstream.
  private readonly router: Router;

  // Response side.
  private ures: http.IncomingMessage | null = null;
  private servedBy: Endpoint | null = null;
  private respHeaders: HeaderList | null = null;
  private respNoBody = false;
  private respSink: 'proc' | 'client' | 'discard' = 'client';
  private readonly respTracker = new EchoTracker();
  private readonly uresPause = new Set<string>();
  private uresEnded = false;
  private upstreamTrailers: HeaderList | null = null;
  private respHeadersSent = false;
  private respHeadersAnswered = false;
  private respEosSent = false;
  private respBodyAnswered = false;
  private respTrailersSent = false;
  private respTrailersAnswered = false;
  private respReplaced = false;
  private clientHeadSent = false;
  private waitingClientDrain = false;

  constructor(private readonly ctx: ExchangeContext, private readonly req: http.IncomingMessage, private readonly res: http.ServerResponse) {
    this.method = req.method ?? 'GET';
    this.duplex = ctx.opts.processingMode === 'full-duplex';
    const list = HeaderList.fromRaw(req.rawHeaders);
    // Never obey (or even forward) a destination a client names itself.
    list.remove(DESTINATION_HEADER);
    list.remove(SERVED_HEADER);
    this.originalContentLength = list.get('content-length');
    this.hasBody = list.has('transfer-encoding') || (this.originalContentLength !== undefined && this.originalContentLength !== '0');
    let authority = list.get('host') ?? '';
    let path = req.url ?? '/';
    if (/^https?:\/\//i.test(path)) {
      // Absolute-form request target (a client talking to us as a proxy): like Envoy's codec, the URL's host
      // becomes :authority and only path and query remain.
      try {
        const u = new URL(path);
        authority = u.host;
        path = `${u.pathname}${u.search}`;
      } catch {
        // leave it; the upstream will reject it
      }
    }
    this.path = path;
    const headers = new HeaderList([
      [':authority', authority],
      [':path', path],
      [':method', this.method],
      [':scheme', 'http'],
    ]);
    for (const [n, v] of list.pairs) if (n !== 'host' && !HOP_BY_HOP.has(n)) headers.add(n, v);
    const remote = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const xff = headers.get('x-forwarded-for');
    if (remote) headers.set('x-forwarded-for', xff ? `${xff}, ${remote}` : remote);
    if (!headers.has('x-forwarded-proto')) headers.add('x-forwarded-proto', 'http');
    if (!headers.get('x-request-id')) headers.set('x-request-id', randomUUID());
    this.headers = headers;
    this.router = new Router(ctx, {
      onResponse: (upstreamRes, endpoint) => this.onUpstreamResponse(upstreamRes, endpoint),
      onNoResponse: (status, message) => this.onUpstreamError(status, message),
      onDrain: () => this.resumeReq('upstream'),
    });
  }

  start(): void {
    const { stats, opts, extProc } = this.ctx;
    stats.requests++;
    stats.inFlight++;
    this.req.on('error', () => undefined);
    this.res.on('error', () => undefined);
    this.res.on('close', () => this.onClientClose());
    this.req.on('data', (c: Buffer) => this.onClientData(c));
    this.req.on('end', () => this.onClientEnd());

    if (!extProc || bypasses(opts.extProcBypass, this.method, this.path)) {
      this.reqSink = 'upstream';
      this.route();
      return;
    }
    this.proc = extProc.open({
      onMessage: (m) => this.onProcMessage(m),
      onFailure: (kind, detail) => this.procGone(kind, detail),
      owed: () => this.owed(),
    });
    this.reqHeadersSent = true;
    this.reqSink = this.hasBody ? 'proc' : 'discard';
    const msg: ProcessingRequest = {
      request_headers: { headers: this.headers.toHeaderMap(), end_of_stream: !this.hasBody },
      metadata_context: { filter_metadata: {} },
      protocol_config: {
        request_body_mode: this.duplex ? 'FULL_DUPLEX_STREAMED' : 'BUFFERED',
        response_body_mode: opts.responseBodyMode === 'full-duplex' ? 'FULL_DUPLEX_STREAMED' : 'NONE',
        send_body_without_waiting_for_header_response: false,
      },
    };
    this.procSend(msg, 'req');
  }

  /** Ends the exchange at once (gateway shutdown). */
  abort(): void {
    this.res.destroy();
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Client request body

  private onClientData(chunk: Buffer): void {
    if (this.finished) return;
    switch (this.reqSink) {
      case 'proc':
        this.clientBytes += chunk.length;
        if (this.clientBytes > this.ctx.opts.maxRequestBodyBytes) {
          this.localReply(413, `request body exceeds ${this.ctx.opts.maxRequestBodyBytes} bytes\n`);
          return;
        }
        if (this.duplex) {
          // Hold one chunk back so the last one can carry end_of_stream (saves a message per request).
          if (this.held) this.sendReqBodyChunk(this.held, false);
          this.held = chunk;
        } else {
          this.buffered.push(chunk);
        }
        return;
      case 'upstream':
        if (!this.router.write(chunk)) this.pauseReq('upstream');
        return;
      case 'discard':
        return;
    }
  }

  private onClientEnd(): void {
    if (this.finished) return;
    this.clientEnded = true;
    this.clientTrailers = trailerList(this.req.rawTrailers);
    switch (this.reqSink) {
      case 'proc':
        if (this.duplex) {
          if (this.clientTrailers) {
            if (this.held) this.sendReqBodyChunk(this.held, false);
            this.held = null;
            this.sendReqTrailers();
          } else {
            const last = this.held ?? EMPTY;
            this.held = null;
            this.sendReqBodyChunk(last, true);
          }
        } else if (this.reqHeadersAnswered) {
          this.sendBufferedBody();
        }
        return;
      case 'upstream':
        this.router.end(this.clientTrailers);
        return;
      case 'discard':
        return;
    }
  }

  private sendReqBodyChunk(chunk: Buffer, eos: boolean): void {
    this.reqTracker.push(chunk);
    if (eos) this.reqBodySent = true;
    this.procSend({ request_body: { body: chunk, end_of_stream: eos } }, 'req');
  }

  private sendReqTrailers(): void {
    this.reqBodySent = true;
    this.reqTrailersSent = true;
    this.procSend({ request_trailers: { trailers: (this.clientTrailers as HeaderList).toHeaderMap() } }, 'req');
  }

  private sendBufferedBody(): void {
    const body = this.buffered.length === 1 ? this.buffered[0] : Buffer.concat(this.buffered);
    this.buffered = [body];
    this.reqBodySent = true;
    this.procSend({ request_body: { body, end_of_stream: this.clientTrailers === null } }, 'req');
  }

  // -------------------------------------------------------------------------------------------------------------------
  // ext_proc plumbing

  private procSend(msg: ProcessingRequest, direction: 'req' | 'resp'): void {
    const proc = this.proc;
    if (!proc || !proc.active) return;
    if (msg.request_body || msg.response_body) this.bodySent = true;
    if (!proc.send(msg)) {
      if (!proc.active) return;
      const reason = 'grpc';
      if (direction === 'req') this.pauseReq(reason);
      else this.pauseUres(reason);
      proc.onDrain(() => {
        this.resumeReq(reason);
        this.resumeUres(reason);
      });
    }
  }

  /** Whether the EPP owes an answer right now (the message timer runs only then). */
  private owed(): boolean {
    if (!this.proc) return false;
    return (this.reqHeadersSent && !this.reqHeadersAnswered)
      || (!this.reqReplaced && this.reqTracker.pending > 0)
      || (this.reqBodySent && !this.reqBodyAnswered && !this.reqReplaced)
      || (this.reqTrailersSent && !this.reqTrailersAnswered)
      || (this.respHeadersSent && !this.respHeadersAnswered)
      || (!this.respReplaced && this.respTracker.pending > 0)
      || (this.respEosSent && !this.respBodyAnswered)
      || (this.respTrailersSent && !this.respTrailersAnswered);
  }

  private requestProcessed(): boolean {
    return this.reqHeadersAnswered
      && (this.reqReplaced || !this.hasBody || this.reqBodyAnswered)
      && (!this.reqTrailersSent || this.reqTrailersAnswered);
  }

  private responseProcessed(): boolean {
    if (this.ctx.opts.responseHeaderMode === 'skip') return true;
    return this.respHeadersAnswered
      && (this.respReplaced || this.respNoBody || this.ctx.opts.responseBodyMode === 'none' || this.respBodyAnswered)
      && (!this.respTrailersSent || this.respTrailersAnswered);
  }

  private onProcMessage(msg: DecodedProcessingResponse): void {
    if (this.finished || !this.proc) return;
    // Envoy consumes such a message only to extend its timer (which our EnvoyFilter does not allow), nothing else.
    if (msg.override_message_timeout) return;
    this.mergeMetadata(msg);
    try {
      switch (msg.response) {
        case 'request_headers': return this.onReqHeadersAnswer(msg.request_headers?.response ?? {});
        case 'request_body': return this.onReqBodyAnswer(msg.request_body?.response ?? {});
        case 'request_trailers': return this.onReqTrailersAnswer(msg.request_trailers?.header_mutation);
        case 'response_headers': return this.onRespHeadersAnswer(msg.response_headers?.response ?? {});
        case 'response_body': return this.onRespBodyAnswer(msg.response_body?.response ?? {});
        case 'response_trailers': return this.onRespTrailersAnswer(msg.response_trailers?.header_mutation);
        case 'immediate_response': return this.onImmediateResponse(msg.immediate_response ?? {});
        default: return this.spurious('ProcessingResponse with no response member');
      }
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      if (!(err instanceof InvalidMutation)) this.ctx.warn('internal', 'gateway error while applying an ext_proc answer', { error: detail });
      this.processingError(detail);
    }
  }

  /** Untyped dynamic metadata, accepted for the receiving namespace `envoy.lb` only (merged, as Envoy does). */
  private mergeMetadata(msg: DecodedProcessingResponse): void {
    if (!msg.dynamic_metadata?.fields) return;
    const ns = structToJson(msg.dynamic_metadata)[LB_NAMESPACE];
    if (ns && typeof ns === 'object' && !Array.isArray(ns)) Object.assign(this.lbMetadata, ns);
  }

  private mutate(list: HeaderList, mutation: DecodedHeaderMutation | null | undefined, target: MutationTarget, replacing = false): void {
    const rejected = applyHeaderMutation(list, mutation, target, replacing);
    this.ctx.stats.rejectedHeaderMutations += rejected;
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Request answers

  private onReqHeadersAnswer(common: DecodedCommonResponse): void {
    if (!this.reqHeadersSent || this.reqHeadersAnswered) return this.spurious('unexpected request headers answer');
    this.reqHeadersAnswered = true;
    const replacing = isReplace(common.status);
    this.mutate(this.headers, common.header_mutation, 'request', replacing);
    if (common.clear_route_cache) this.ctx.stats.routeCacheClears++;
    if (replacing) return this.replaceRequestBody(common.body_mutation);
    if (!this.hasBody) {
      this.route();
      this.router.end(null);
      return;
    }
    if (this.duplex) {
      // Envoy removes Content-Length in this mode: the body the EPP streams back may differ in length.
      this.headers.remove('content-length');
      this.route();
      // The body the EPP returns is what goes upstream; nothing to do until it arrives.
      return;
    }
    if (this.clientEnded) this.sendBufferedBody();
  }

  /** CONTINUE_AND_REPLACE on the request headers: the EPP's body (if any) replaces the client's entirely. */
  private replaceRequestBody(bm: DecodedBodyMutation | null | undefined): void {
    this.reqReplaced = true;
    const replacement = bm?.mutation === 'body' ? bm.body ?? EMPTY : bm?.mutation === 'clear_body' && bm.clear_body ? EMPTY : null;
    if (replacement) {
      this.reqSink = 'discard';
      this.held = null;
      this.reqTracker.clear();
      this.buffered = [];
      this.headers.set('content-length', String(replacement.length));
      this.route();
      this.router.write(replacement);
      this.router.end(null);
      return;
    }
    // No body mutation: the rest of the original body passes through untouched.
    const body = this.duplex ? this.reqTracker.takeRemaining() : this.buffered;
    if (this.held) body.push(this.held);
    this.held = null;
    this.buffered = [];
    this.reqSink = 'upstream';
    this.restoreContentLength();
    this.route();
    for (const b of body) this.router.write(b);
    if (this.clientEnded) this.router.end(this.clientTrailers);
  }

  private onReqBodyAnswer(common: DecodedCommonResponse): void {
    if (this.duplex) {
      if (!this.reqHeadersAnswered || this.reqBodyAnswered || this.reqReplaced || !this.router.routed) {
        return this.spurious('unexpected request body answer');
      }
      const sr = common.body_mutation?.mutation === 'streamed_response' ? common.body_mutation.streamed_response : null;
      if (!sr) return this.spurious('FULL_DUPLEX_STREAMED requires StreamedBodyResponse body answers');
      const body = sr.body ?? EMPTY;
      this.reqTracker.match(body);
      this.router.write(body);
      if (sr.end_of_stream) {
        this.reqBodyAnswered = true;
        if (!this.clientEnded) {
          // The EPP ended the body early: the rest of the client's is not forwarded.
          this.reqSink = 'discard';
          this.held = null;
        }
        if (!this.reqTrailersSent) this.router.end(null);
      }
      return;
    }
    if (!this.reqBodySent || this.reqBodyAnswered) return this.spurious('unexpected request body answer');
    this.reqBodyAnswered = true;
    const replacing = isReplace(common.status);
    this.mutate(this.headers, common.header_mutation, 'request', replacing);
    if (common.clear_route_cache) this.ctx.stats.routeCacheClears++;
    let body = this.buffered[0] ?? EMPTY;
    const bm = common.body_mutation;
    let mutated = false;
    if (bm?.mutation === 'body') {
      body = bm.body ?? EMPTY;
      mutated = true;
    } else if (bm?.mutation === 'clear_body' && bm.clear_body) {
      body = EMPTY;
      mutated = true;
    }
    if (mutated) {
      const cl = this.headers.get('content-length');
      if (cl !== undefined && Number(cl) !== body.length) {
        return this.processingError('mismatch between content length and the length of the mutated body');
      }
    }
    this.buffered = [];
    // The whole body is known, so it gets an exact Content-Length, unless trailers follow (those need chunking).
    if (this.clientTrailers) this.headers.remove('content-length');
    else this.headers.set('content-length', String(body.length));
    this.route();
    this.router.write(body);
    if (this.clientTrailers) this.sendReqTrailers();
    else this.router.end(null);
  }

  private onReqTrailersAnswer(mutation: DecodedHeaderMutation | null | undefined): void {
    if (!this.reqTrailersSent || this.reqTrailersAnswered || !this.router.routed) return this.spurious('unexpected request trailers answer');
    this.reqTrailersAnswered = true;
    this.reqBodyAnswered = true;
    const trailers = this.clientTrailers as HeaderList;
    this.mutate(trailers, mutation, 'trailers');
    this.router.end(trailers);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Routing and the upstream request

  /** override_host: the EPP's pick list (pool members only), then the fallback policy. Starts the upstream call. */
  private route(): void {
    if (this.finished) return;
    this.router.route(this.headers, this.lbMetadata, this.method);
  }

  private onUpstreamError(status: number, message: string): void {
    if (this.finished) return;
    this.ctx.warn(`upstream:${status}`, 'no upstream response', { status, message });
    this.endProc();
    this.localReply(status, `${message}\n`);
  }

  private onUpstreamResponse(res: http.IncomingMessage, endpoint: Endpoint): void {
    if (this.finished) {
      res.resume();
      return;
    }
    const { opts } = this.ctx;
    this.ures = res;
    this.servedBy = endpoint;
    this.router.recordServedBy(endpoint);
    res.on('data', (c: Buffer) => this.onUpstreamData(c));
    res.on('end', () => this.onUpstreamEnd());
    res.on('error', () => undefined);
    res.on('close', () => {
      // The upstream went away mid-response: the client cannot be told otherwise than by a reset.
      if (!this.uresEnded && !this.finished) this.res.destroy();
    });
    const status = res.statusCode ?? 502;
    const headers = new HeaderList([[':status', String(status)]]);
    for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
      const n = res.rawHeaders[i].toLowerCase();
      if (!HOP_BY_HOP.has(n) && n !== SERVED_HEADER) headers.add(n, res.rawHeaders[i + 1]);
    }
    this.respHeaders = headers;
    this.respNoBody = this.method === 'HEAD' || status === 204 || status === 304 || status < 200 || headers.get('content-length') === '0';
    if (this.proc && opts.responseHeaderMode === 'send') {
      this.respHeadersSent = true;
      this.pauseUres('headers');
      this.procSend({ response_headers: { headers: headers.toHeaderMap(), end_of_stream: this.respNoBody } }, 'resp');
      return;
    }
    this.respSink = 'client';
    this.writeClientHead();
  }

  private onUpstreamData(chunk: Buffer): void {
    if (this.finished) return;
    switch (this.respSink) {
      case 'proc':
        this.respTracker.push(chunk);
        this.procSend({ response_body: { body: chunk, end_of_stream: false } }, 'resp');
        if (this.respTracker.pending > ECHO_HIGH_WATER) this.pauseUres('echo');
        return;
      case 'client':
        this.writeClient(chunk);
        return;
      case 'discard':
        return;
    }
  }

  private onUpstreamEnd(): void {
    this.uresEnded = true;
    if (this.finished) return;
    this.upstreamTrailers = trailerList(this.ures?.rawTrailers ?? []);
    switch (this.respSink) {
      case 'proc':
        if (this.upstreamTrailers) {
          this.respTrailersSent = true;
          this.procSend({ response_trailers: { trailers: this.upstreamTrailers.toHeaderMap() } }, 'resp');
        } else {
          this.respEosSent = true;
          this.procSend({ response_body: { body: EMPTY, end_of_stream: true } }, 'resp');
        }
        return;
      case 'client':
        this.endClient(this.upstreamTrailers);
        return;
      case 'discard':
        return;
    }
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Response answers

  private onRespHeadersAnswer(common: DecodedCommonResponse): void {
    if (!this.respHeadersSent || this.respHeadersAnswered || !this.respHeaders) return this.spurious('unexpected response headers answer');
    this.respHeadersAnswered = true;
    const replacing = isReplace(common.status);
    this.mutate(this.respHeaders, common.header_mutation, 'response', replacing);
    const bm = common.body_mutation;
    const replacement = !replacing ? null
      : bm?.mutation === 'body' ? bm.body ?? EMPTY : bm?.mutation === 'clear_body' && bm.clear_body ? EMPTY : null;
    if (replacing) this.respReplaced = true;
    if (replacement) {
      this.respSink = 'discard';
      this.respHeaders.set('content-length', String(replacement.length));
      this.writeClientHead();
      this.res.end(replacement);
      this.resumeUres('headers');
      return;
    }
    this.respSink = !replacing && !this.respNoBody && this.ctx.opts.responseBodyMode === 'full-duplex' ? 'proc' : 'client';
    this.writeClientHead();
    this.resumeUres('headers');
  }

  private onRespBodyAnswer(common: DecodedCommonResponse): void {
    if (!this.respHeadersAnswered || this.respBodyAnswered || this.respSink !== 'proc') return this.spurious('unexpected response body answer');
    const sr = common.body_mutation?.mutation === 'streamed_response' ? common.body_mutation.streamed_response : null;
    if (!sr) return this.spurious('FULL_DUPLEX_STREAMED requires StreamedBodyResponse body answers');
    const body = sr.body ?? EMPTY;
    this.respTracker.match(body);
    this.writeClient(body);
    if (this.respTracker.pending < ECHO_LOW_WATER) this.resumeUres('echo');
    if (sr.end_of_stream) {
      this.respBodyAnswered = true;
      if (!this.uresEnded) this.respSink = 'discard';
      if (!this.respTrailersSent) this.endClient(null);
    }
  }

  private onRespTrailersAnswer(mutation: DecodedHeaderMutation | null | undefined): void {
    if (!this.respTrailersSent || this.respTrailersAnswered) return this.spurious('unexpected response trailers answer');
    this.respTrailersAnswered = true;
    this.respBodyAnswered = true;
    const trailers = this.upstreamTrailers as HeaderList;
    this.mutate(trailers, mutation, 'trailers');
    this.endClient(trailers);
  }

  private onImmediateResponse(ir: DecodedImmediateResponse): void {
    this.ctx.stats.immediateResponses++;
    let status = this.ctx.statusCodeOf(ir.status?.code ?? undefined);
    // Envoy: no status means 200, and a status below 200 is not allowed for a local reply.
    if (!ir.status || status < 200) status = 200;
    const body = ir.body ?? EMPTY;
    const headers = new HeaderList(body.length > 0 ? [['content-type', 'text/plain']] : []);
    try {
      this.mutate(headers, ir.headers, 'local-reply');
    } catch (err) {
      this.ctx.warn('immediate', 'ImmediateResponse header mutation failed', { error: String(err) });
    }
    this.endProc();
    this.localReply(status, body, headers);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Failures

  /** The session failed (it has already cancelled itself). */
  private procGone(kind: ProcFailure, detail: string): void {
    if (this.finished || !this.proc) return;
    this.proc = null;
    if (this.requestProcessed() && this.responseProcessed()) return;
    const { stats } = this.ctx;
    const outcome = this.ctx.failurePolicy.onStreamFailure({ kind, detail, bodySent: this.bodySent });
    if (outcome.action === 'fail-closed') {
      stats.failClosed++;
      this.ctx.warn(`fail-closed:${kind}`, 'ext_proc failed; failing closed', { kind, detail });
      this.router.abort();
      this.localReply(outcome.status, `${outcome.details}\n`);
      return;
    }
    stats.failOpen(kind);
    this.ctx.warn(`fail-open:${kind}`, 'ext_proc failed; failing open', { kind, detail });
    this.continueWithoutProc();
  }

  /** An answer out of order: Envoy ignores the processor for the rest of the request (whatever the failure mode). */
  private spurious(detail: string): void {
    if (!this.proc) return;
    this.proc.cancel();
    this.proc = null;
    this.ctx.stats.failOpen('spurious');
    this.ctx.warn('spurious', 'spurious ext_proc message; ignoring the EPP for this request', { detail });
    this.continueWithoutProc();
  }

  /** A mutation Envoy refuses (bad characters, Content-Length mismatch): a 500 local reply. */
  private processingError(detail: string): void {
    this.endProc();
    this.router.abort();
    this.localReply(500, `ext_proc_error: ${detail}\n`);
  }

  private endProc(): void {
    this.proc?.finish();
    this.proc = null;
  }

  private restoreContentLength(): void {
    if (!this.hasBody) return;
    if (this.originalContentLength !== undefined) this.headers.set('content-length', this.originalContentLength);
    else this.headers.remove('content-length');
  }

  /** Goes on without the EPP from wherever the exchange is, losing no body byte. */
  private continueWithoutProc(): void {
    if (this.finished) return;
    if (!this.requestProcessed() && !this.reqReplaced) {
      if (!this.router.routed) {
        // Not routed yet: the client's body so far (all of it kept) goes upstream, then the rest as it comes.
        const body = this.duplex ? this.reqTracker.takeRemaining() : this.buffered;
        if (this.held) body.push(this.held);
        this.held = null;
        this.buffered = [];
        this.reqSink = this.hasBody ? 'upstream' : 'discard';
        this.restoreContentLength();
        this.route();
        for (const b of body) this.router.write(b);
        if (this.clientEnded || !this.hasBody) this.router.end(this.clientTrailers);
      } else if (this.duplex && this.reqTracker.diverged) {
        this.router.abort();
        this.localReply(502, 'the endpoint picker failed while streaming a changed request body\n');
        return;
      } else {
        for (const b of this.reqTracker.takeRemaining()) this.router.write(b);
        if (this.held) this.router.write(this.held);
        this.held = null;
        if (this.reqSink === 'proc') this.reqSink = 'upstream';
        if (this.clientEnded) this.router.end(this.clientTrailers);
      }
    }
    if (this.ures && !this.responseProcessed()) {
      if (!this.clientHeadSent) {
        this.respSink = 'client';
        this.writeClientHead();
        this.resumeUres('headers');
      } else if (this.respSink === 'proc') {
        if (this.respTracker.diverged) {
          this.res.destroy();
          return;
        }
        for (const b of this.respTracker.takeRemaining()) this.writeClient(b);
        this.respSink = 'client';
        if (this.uresEnded) this.endClient(this.upstreamTrailers);
      }
      this.resumeUres('echo');
      this.resumeUres('grpc');
    }
    this.resumeReq('grpc');
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Client response

  private writeClientHead(): void {
    if (this.clientHeadSent || this.finished) return;
    const headers = this.respHeaders as HeaderList;
    const status = Number(headers.get(':status'));
    // Envoy removes Content-Length when the body goes through the EPP (the EPP may change it); HTTP/1.1 chunks it.
    if (this.respSink === 'proc') headers.remove('content-length');
    if (this.servedBy) headers.set(SERVED_HEADER, this.servedBy.address);
    if (headers.has('date')) this.res.sendDate = false;
    this.clientHeadSent = true;
    this.ctx.stats.status(status);
    this.res.writeHead(status, headers.toRawArray());
  }

  private writeClient(chunk: Buffer): void {
    if (chunk.length === 0 || this.finished) return;
    if (!this.res.write(chunk) && !this.waitingClientDrain) {
      this.waitingClientDrain = true;
      this.pauseUres('client');
      this.res.once('drain', () => {
        this.waitingClientDrain = false;
        this.resumeUres('client');
      });
    }
  }

  private endClient(trailers: HeaderList | null): void {
    if (this.finished || this.res.writableEnded) return;
    const t = trailerRecord(trailers);
    if (t && !this.respHeaders?.has('content-length')) {
      try {
        this.res.addTrailers(t);
      } catch {
        // an invalid trailer is dropped
      }
    }
    this.res.end();
  }

  /** A response made by the gateway itself (errors, the EPP's ImmediateResponse). */
  private localReply(status: number, body: string | Buffer, extra?: HeaderList): void {
    if (this.finished) return;
    this.endProc();
    this.router.abort();
    this.ures?.destroy();
    this.reqSink = 'discard';
    this.respSink = 'discard';
    this.held = null;
    this.reqTracker.clear();
    this.respTracker.clear();
    this.buffered = [];
    this.reqPause.clear();
    this.req.resume();
    if (this.clientHeadSent) {
      this.res.destroy();
      return;
    }
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const headers = extra ?? new HeaderList(bytes.length > 0 ? [['content-type', 'text/plain']] : []);
    headers.set('content-length', String(bytes.length));
    this.clientHeadSent = true;
    this.ctx.stats.status(status);
    this.res.writeHead(status, headers.toRawArray());
    this.res.end(bytes);
  }

  private onClientClose(): void {
    if (this.finished) return;
    this.finished = true;
    const complete = this.res.writableFinished;
    const { stats } = this.ctx;
    stats.inFlight--;
    if (complete) stats.completed++;
    else stats.aborted++;
    if (this.proc) {
      // Half-close after a complete exchange (the EPP's "response over"); reset otherwise.
      if (complete) this.proc.finish();
      else this.proc.cancel();
      this.proc = null;
    }
    if (!complete || !this.uresEnded) {
      this.router.abort();
      this.ures?.destroy();
    }
    this.held = null;
    this.reqTracker.clear();
    this.respTracker.clear();
    this.buffered = [];
    this.ctx.done(this);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Flow control

  private pauseReq(reason: string): void {
    this.reqPause.add(reason);
    this.req.pause();
  }

  private resumeReq(reason: string): void {
    if (!this.reqPause.delete(reason)) return;
    if (this.reqPause.size === 0 && !this.finished) this.req.resume();
  }

  private pauseUres(reason: string): void {
    this.uresPause.add(reason);
    this.ures?.pause();
  }

  private resumeUres(reason: string): void {
    if (!this.uresPause.delete(reason)) return;
    if (this.uresPause.size === 0 && !this.finished) this.ures?.resume();
  }
}
