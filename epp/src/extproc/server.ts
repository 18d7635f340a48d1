/**
 * The ext_proc gRPC server: `envoy.service.ext_proc.v3.ExternalProcessor/Process` plus `grpc.health.v1.Health` on the
 * ext_proc port, and optionally a plaintext health-only server on a second port (upstream's 9002/9003 split). Protocol
 * only: every routing decision comes from the `RequestDirector`.
 *
 * Body mode detection, per stream: Envoy sends `protocol_config` (request/response body modes) in the first message of
 * each stream when it supports that field; it wins. Otherwise the configured defaults apply (FULL_DUPLEX_STREAMED both
 * ways unless set), and they must match the filter's processing_mode, because the two modes cannot be told apart from
 * the first message: in duplex mode Envoy streams the body without waiting, in buffered mode it waits for our header
 * answer, and guessing wrong would stall the request until Envoy's message timeout.
 */
import { selfSignedCertificate } from './self-signed-certificate';
import { CertReloader, loadCertificatePair } from './cert-reloader';
import { withTlsPolicy, type TlsPolicy } from './tls-policy';
import * as net from 'net';
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi, processingRequestReader } from '@kvroute/protocol/envoy';
import type { RequestDirector } from './request-director';
import { healthImplementation, healthServiceDefinition, HealthState } from './health';
import type { BodyMode, ProcessingRequest, ProcessingResponse } from '@kvroute/protocol/envoy';
import { ExtProcStream, MalformedMessage, type ExtProcLogger, type StreamSettings } from './stream';
import { liftStreamResetLimit } from './stream-reset-limit';
import { EncodedAnswers } from './encoded-answers';

export const EXT_PROC_SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';
export const DEFAULT_EXT_PROC_PORT = 9002;
export const DEFAULT_HEALTH_PORT = 9003;
export const DESTINATION_ENDPOINT_HEADER = 'x-gateway-destination-endpoint';
export const DESTINATION_METADATA_NAMESPACE = 'envoy.lb';
/** Upstream's limit: "some envoy implementations cap streamed chunks at 64KB". */
export const MAX_STREAMED_CHUNK_BYTES = 62_000;
export const DEFAULT_MAX_REQUEST_BODY_BYTES = 64 * 1024 * 1024;

export interface ExtProcServerOptions {
  readonly director: RequestDirector;
  /** Bind address; default every address (`allAddresses`). */
  readonly host?: string;
  /** ext_proc (+ health) port; default 9002; 0 picks a free port. */
  readonly port?: number;
  /** A separate plaintext health-only server; omitted or null = none; 0 picks a free port. */
  readonly healthPort?: number | null;
  /** Directory holding `tls.crt` and `tls.key`: serve TLS on the ext_proc port. Plaintext when omitted. */
  readonly tlsCertDir?: string;
  /** With `tlsCertDir`: follow changes to the pair (`--enable-cert-reload`, `CertReloader`). */
  readonly tlsCertReload?: boolean;
  /** Without `tlsCertDir`: serve TLS with a self-signed certificate made now (GIE's `--secure-serving` default). */
  readonly selfSignedTls?: boolean;
  /** With TLS: the lowest version and the TLS 1.0-1.2 suites served (`--tls-min-version`, `--tls-cipher-suites`). */
  readonly tlsPolicy?: TlsPolicy;
  /** The request body mode assumed when Envoy sends no `protocol_config`. @default 'FULL_DUPLEX_STREAMED' */
  readonly defaultRequestBodyMode?: BodyMode;
  /**
   * The response body mode assumed when Envoy sends no `protocol_config`. kvroute's EnvoyFilter uses NONE (the EPP then
   * learns a response ended when Envoy closes the stream at the end of the exchange); the EPP's CLI defaults to that.
   * @default 'FULL_DUPLEX_STREAMED'
   */
  readonly defaultResponseBodyMode?: BodyMode;
  readonly destinationHeader?: string;
  /** Dynamic metadata namespace for the pick; '' puts the key at the top level. */
  readonly metadataNamespace?: string;
  readonly maxChunkBytes?: number;
  readonly maxRequestBodyBytes?: number;
  /**
   * The gRPC server's message limits (llm-d's `--grpc-max-recv-msg-size` / `--grpc-max-send-msg-size`); undefined or 0:
   * receive the request body limit + 1 MiB (a buffered body is one message), send unlimited; -1: no limit (grpc-js's).
   */
  readonly maxReceiveMessageBytes?: number;
  readonly maxSendMessageBytes?: number;
  /** Share a health state with other components; a new one (NOT_SERVING) otherwise. */
  readonly health?: HealthState;
  readonly logger?: ExtProcLogger;
}

export interface ExtProcServer {
  readonly port: number;
  readonly healthPort?: number;
  readonly health: HealthState;
  /** Readiness, as the owner computes it; ignored once `stop` was called (a draining EPP stays NOT_SERVING). */
  setServing(serving: boolean): void;
  /**
   * Whether the ext_proc port accepts Envoy's reset-per-stream at any realistic rate; false on a Node before 22.10,
   * which keeps nghttp2's 33 a second per connection (see stream-reset-limit.ts).
   */
  readonly streamResetLimitLifted: boolean;
  /** Process streams currently open. */
  activeStreams(): number;
  /**
   * Reports NOT_SERVING and keeps accepting new streams for `drainMs` (llm-d-router v0.10.0 runWithGracefulShutdown's
   * drain window: Envoys that have not yet learnt the pod is leaving still send to it), then stops accepting and waits
   * up to `graceMs` for open streams to finish before cancelling them (their tickets are released as 'cancelled').
   */
  stop(graceMs?: number, drainMs?: number): Promise<void>;
}

const consoleLogger: ExtProcLogger = {
  debug: () => undefined,
  warn: (msg, fields) => console.warn(`[extproc] ${msg}`, fields ?? {}),
};

export interface ExtProcServiceDefinitionOptions {
  /**
   * Read requests with `processingRequestReader` (`@kvroute/protocol/envoy`): only the members an ext_proc server
   * reads, without proto-loader's full object copy of every message. What the EPP's own server uses; off by default,
   * for a handler that reads other members (a test's scripted processor keeps whole messages).
   */
  readonly leanRequests?: boolean;
}

/**
 * The ExternalProcessor service definition with a deserializer that never throws: undecodable bytes arrive as a
 * `MalformedMessage`, so the stream fails with our INVALID_ARGUMENT and releases its state, instead of grpc-js ending
 * the call behind the handler's back. Its serializer writes a Buffer as it is: an answer encoded beforehand
 * (`EncodedAnswers`); a message object is encoded as usual.
 */
export function extProcServiceDefinition(options: ExtProcServiceDefinitionOptions = {}): grpc.ServiceDefinition {
  const api = loadEnvoyApi();
  const def = api.packageDefinition[EXT_PROC_SERVICE] as grpc.ServiceDefinition;
  const process = def.Process;
  const decode = options.leanRequests === true ? processingRequestReader(api) : process.requestDeserialize;
  const encode = process.responseSerialize;
  return {
    Process: {
      ...process,
      responseSerialize: (msg: unknown): Buffer => (Buffer.isBuffer(msg) ? msg : encode(msg)),
      requestDeserialize: (buf: Buffer): unknown => {
        try {
          return decode(buf);
        } catch (err) {
          return new MalformedMessage(err instanceof Error ? err : new Error(String(err)));
        }
      },
    },
  };
}

export function isValidEnvoyHttpStatus(code: number): boolean {
  // Envoy validates ImmediateResponse.status with defined_only and not_in [0].
  const e = loadEnvoyApi().root.lookupEnum('envoy.type.v3.StatusCode');
  return code !== 0 && e.valuesById[code] !== undefined;
}

export function streamSettings(opts: ExtProcServerOptions): StreamSettings {
  const maxChunkBytes = opts.maxChunkBytes ?? MAX_STREAMED_CHUNK_BYTES;
  if (!(maxChunkBytes > 0)) throw new Error('maxChunkBytes must be positive');
  return {
    director: opts.director,
    defaultRequestBodyMode: opts.defaultRequestBodyMode ?? 'FULL_DUPLEX_STREAMED',
    defaultResponseBodyMode: opts.defaultResponseBodyMode ?? 'FULL_DUPLEX_STREAMED',
    destinationHeader: (opts.destinationHeader ?? DESTINATION_ENDPOINT_HEADER).toLowerCase(),
    metadataNamespace: opts.metadataNamespace ?? DESTINATION_METADATA_NAMESPACE,
    maxChunkBytes,
    maxRequestBodyBytes: opts.maxRequestBodyBytes ?? DEFAULT_MAX_REQUEST_BODY_BYTES,
    isValidHttpStatus: isValidEnvoyHttpStatus,
    logger: opts.logger ?? consoleLogger,
  };
}

/** The Process handler; `track` hears when a stream opens (+1) and closes (-1). */
export function extProcHandler(
  settings: StreamSettings,
  track: (delta: 1 | -1) => void = () => undefined,
): grpc.handleBidiStreamingCall<ProcessingRequest | MalformedMessage, ProcessingResponse | Buffer> {
  return (call) => {
    track(1);
    let ended = false;
    const stream = new ExtProcStream(settings, {
      send: (msg) => {
        if (!ended && !call.destroyed && call.writable) call.write(msg);
      },
      end: () => {
        if (ended) return;
        ended = true;
        call.end();
      },
      fail: (code, details) => {
        if (ended) return;
        ended = true;
        // grpc-js turns an 'error' on a server stream into the call's final status.
        call.emit('error', { code, details, metadata: new grpc.Metadata() } as Partial<grpc.StatusObject>);
      },
    });
    call.on('data', (msg: ProcessingRequest | MalformedMessage) => stream.onMessage(msg));
    call.on('end', () => stream.onHalfClose());
    call.on('cancelled', () => stream.onCancel());
    call.on('error', (err: Error) => stream.onTransportError(err));
    call.once('close', () => {
      // grpc-js destroys the call after its final status or a cancellation; either way this stream is over. (A no-op
      // when the stream already ended itself.)
      stream.onCancel();
      track(-1);
    });
  };
}

function selfSignedTls(): grpc.ServerCredentials {
  const { cert, key } = selfSignedCertificate();
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: cert, private_key: key }], false);
}

function readTls(dir: string): grpc.ServerCredentials {
  // Checked as the reloader checks a pair, so a bad one is refused naming it rather than as a failure to listen.
  const { certificate, privateKey } = loadCertificatePair(dir);
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: certificate, private_key: privateKey }], false);
}

/** Binds `address`; a failure names the address and the server, which grpc-js's own message does not always do. */
function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(new Error(`cannot listen on ${address} for ${what}: ${err.message}`)) : resolve(port)));
  });
}

/**
 * How long a connection's peer gets to close it once no ext_proc stream is open on the draining server: grpc-go's
 * GracefulStop (v1.82.1 internal/transport/http2_server.go) ends a transport's writer once its final GOAWAY is written
 * and no stream is active, waits at most a second for the peer to close ("to avoid the potential problem where there is
 * unread data on the receive side"), then closes the connection itself. Node's http2 session.close() instead waits for
 * the peer's FIN without a bound, so a peer gone silent (an Envoy whose node vanished, a half-open connection) held the
 * drain until --shutdown-grace-period ended.
 */
export const PEER_CLOSE_WAIT_MS = 1000;

/** The server's streams, for a drain that ends once they have. */
interface OpenStreams {
  count(): number;
  /** Calls `fn` whenever a stream ends. */
  onEnded(fn: () => void): void;
}

/**
 * Stops `server` gracefully: no new connections or streams, open streams finish. Once none is open (still none
 * PEER_CLOSE_WAIT_MS later: a stream the peer sent before it saw the GOAWAY may start meanwhile) the connections still
 * open are closed; after `graceMs` everything is.
 */
function shutdown(server: grpc.Server, graceMs: number, streams?: OpenStreams): Promise<void> {
  return new Promise((resolve) => {
    if (graceMs <= 0) {
      server.forceShutdown();
      resolve();
      return;
    }
    let done = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const finish = (force: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(idleTimer);
      if (force) server.forceShutdown();
      resolve();
    };
    const timer = setTimeout(() => finish(true), graceMs);
    server.tryShutdown(() => finish(false));
    if (!streams) return;
    const closeWhenIdle = (): void => {
      if (done || idleTimer !== undefined || streams.count() > 0) return;
      idleTimer = setTimeout(() => {
        idleTimer = undefined;
        if (streams.count() === 0) finish(true);
      }, PEER_CLOSE_WAIT_MS);
    };
    streams.onEnded(closeWhenIdle);
    closeWhenIdle();
  });
}

/**
 * The address that binds every interface, as Go's `net.Listen("tcp", ":<port>")` does for GIE v1.5.0's servers
 * (`internal/runnable/grpc.go` GRPCServer; the metrics server's ":9090"): `::`, which also takes IPv4 (libuv clears
 * IPV6_V6ONLY), or `0.0.0.0` on a host without IPv6, where binding `::` fails (Node's own fallback for a `listen`
 * without a host). An IPv6 single-stack cluster probes and routes to the pod's IPv6 address.
 */
export function allAddresses(): Promise<string> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve('0.0.0.0'));
    probe.listen(0, '::', () => probe.close(() => resolve('::')));
  });
}

/** `host:port`, an IPv6 host bracketed, for a bind address or a message. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function startExtProcServer(opts: ExtProcServerOptions): Promise<ExtProcServer> {
  const base = streamSettings(opts);
  const definition = extProcServiceDefinition({ leanRequests: true });
  const serialize = definition.Process!.responseSerialize as (msg: ProcessingResponse) => Buffer;
  const settings: StreamSettings = { ...base, encoded: new EncodedAnswers(serialize, base.destinationHeader, base.metadataNamespace) };
  const health = opts.health ?? new HealthState(false);
  const host = opts.host ?? await allAddresses();
  let active = 0;
  let onStreamEnded: (() => void) | undefined;

  const maxBody = settings.maxRequestBodyBytes;
  const main = new grpc.Server({
    // A buffered request body arrives as one message.
    'grpc.max_receive_message_length': opts.maxReceiveMessageBytes || maxBody + 1024 * 1024,
    ...(opts.maxSendMessageBytes ? { 'grpc.max_send_message_length': opts.maxSendMessageBytes } : {}),
  });
  const streamResetLimitLifted = liftStreamResetLimit(main);
  main.addService(definition, {
    Process: extProcHandler(settings, (d) => {
      active += d;
      if (d < 0) onStreamEnded?.();
    }),
  });
  main.addService(healthServiceDefinition(), healthImplementation(health));

  const servers: grpc.Server[] = [main];
  let reloader: CertReloader | undefined;
  try {
    if (opts.tlsCertDir !== undefined && opts.tlsCertReload === true) reloader = new CertReloader(opts.tlsCertDir, opts.logger ?? consoleLogger);
    const tlsCreds = reloader
      ? grpc.experimental.createCertificateProviderServerCredentials(reloader, null, false)
      : opts.tlsCertDir
      ? readTls(opts.tlsCertDir)
      : opts.selfSignedTls === true
        ? selfSignedTls()
        : undefined;
    const creds = tlsCreds ? withTlsPolicy(tlsCreds, opts.tlsPolicy ?? {}) : grpc.ServerCredentials.createInsecure();
    const port = await bind(main, hostPort(host, opts.port ?? DEFAULT_EXT_PROC_PORT), creds, 'ext_proc');
    let healthPort: number | undefined;
    if (opts.healthPort !== undefined && opts.healthPort !== null) {
      const healthServer = new grpc.Server();
      healthServer.addService(healthServiceDefinition(), healthImplementation(health));
      servers.push(healthServer);
      healthPort = await bind(healthServer, hostPort(host, opts.healthPort), grpc.ServerCredentials.createInsecure(), 'gRPC health');
    }
    // Once stopping, NOT_SERVING stays: an endpoint change or a KV-event subscription warming up during the drain
    // must not report the draining EPP ready again.
    let stopping = false;
    return {
      port,
      healthPort,
      health,
      streamResetLimitLifted,
      setServing: (serving) => {
        if (!stopping) health.setServing(serving);
      },
      activeStreams: () => active,
      stop: async (graceMs = 0, drainMs = 0) => {
        stopping = true;
        health.setServing(false);
        if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
        // The health port stays open through the drain, answering NOT_SERVING for readiness and SERVING for
        // `liveness`: closed at once, every probe would be refused, liveness included, for as long as the drain lasts.
        // It closes once the ext_proc streams have drained (or the grace period has passed).
        await shutdown(main, graceMs, { count: () => active, onEnded: (fn) => { onStreamEnded = fn; } });
        reloader?.close();
        await Promise.all(servers.filter((s) => s !== main).map((s) => shutdown(s, 0)));
      },
    };
  } catch (err) {
    reloader?.close();
    for (const s of servers) s.forceShutdown();
    throw err;
  }
}
