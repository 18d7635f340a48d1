/**
 * Envoy ends every ext_proc stream with END_STREAM followed at once by RST_STREAM(CANCEL):
 * `ExternalProcessorStreamImpl::close()` calls `closeStream()` then `resetStream()` (envoyproxy/envoy
 * source/extensions/filters/http/ext_proc/client_impl.cc @ v1.35.0 through v1.38.0), and the reset goes on the wire
 * unless the EPP already ended the call, which it cannot: it learns the request is over from that very close. So one
 * Envoy connection sends the EPP as many RST_STREAMs per second as it routes requests.
 *
 * nghttp2 ≥ 1.57 (the "rapid reset" fix, CVE-2023-44487) limits the RST_STREAMs a server accepts on one connection
 * with a token bucket (`nghttp2_option_set_stream_reset_rate_limit`: burst 1000, 33 a second) and answers a faster
 * client with GOAWAY(INTERNAL_ERROR). Node's HTTP/2 server, which grpc-js uses, has those defaults: measured on Node
 * 20.20.2, the 1,001st reset stream on one connection draws the GOAWAY (test/extproc-stream-reset.test.ts), after which
 * the connection's streams fail and Envoy fails those requests open. An Envoy worker that routes more than 33 requests
 * a second for longer than ~30 s would lose its EPP connection over and over.
 *
 * Node ≥ 22.10 (and ≥ 23.0) lets a server set the bucket (`streamResetBurst`, `streamResetRate`, nodejs/node#54875);
 * earlier releases ignore the options. grpc-js 1.14 has no channel option for them, but builds every HTTP/2 server from
 * the options object it keeps as `commonServerOptions`, so they are added there. The EPP's port is reachable only
 * from the gateway's pods (the NetworkPolicy), and the limits stay finite: far above what one EPP process can route,
 * low enough that a runaway client is still cut off.
 */
import type * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';

/** RST_STREAMs a connection may send at once. */
export const STREAM_RESET_BURST = 20_000;
/** RST_STREAMs a second a connection may sustain: several times the most one EPP process routes. */
export const STREAM_RESET_RATE = 10_000;
/** nghttp2's own limits, in force where the options are ignored. */
export const NGHTTP2_DEFAULT_STREAM_RESET = { burst: 1000, rate: 33 } as const;

/** Whether this Node honours `streamResetBurst`/`streamResetRate` (v22.10.0 and later, v23.0.0 and later). */
export function nodeHonoursStreamResetLimit(version: string = process.versions.node): boolean {
  const [major, minor] = version.split('.').map(Number) as [number, number];
  return major > 22 || (major === 22 && minor >= 10);
}

/**
 * Raises the per-connection RST_STREAM limit of every HTTP/2 server `server` will create. Call before binding.
 * Returns whether it took effect: false on a Node that ignores the options, or a grpc-js without `commonServerOptions`.
 */
export function liftStreamResetLimit(server: grpc.Server, version: string = process.versions.node): boolean {
  const internals = server as unknown as { commonServerOptions?: http2.ServerOptions & { streamResetBurst?: number; streamResetRate?: number } };
  if (internals.commonServerOptions === undefined || typeof internals.commonServerOptions !== 'object') return false;
  internals.commonServerOptions.streamResetBurst = STREAM_RESET_BURST;
  internals.commonServerOptions.streamResetRate = STREAM_RESET_RATE;
  return nodeHonoursStreamResetLimit(version);
}

/** The start-up warning for a Node that keeps nghttp2's limit, or undefined when the limit was lifted. */
export function streamResetLimitWarning(lifted: boolean, version: string = process.versions.node): string | undefined {
  if (lifted) return undefined;
  return `Node ${version} keeps nghttp2's limit of ${NGHTTP2_DEFAULT_STREAM_RESET.rate} reset streams a second (burst ${NGHTTP2_DEFAULT_STREAM_RESET.burst}) `
    + 'per connection, and Envoy resets every ext_proc stream it closes: an Envoy connection routing more than '
    + `${NGHTTP2_DEFAULT_STREAM_RESET.rate} requests a second will be sent GOAWAY and fail requests open. Run the EPP on Node 22.10 or later (its image does).`;
}
