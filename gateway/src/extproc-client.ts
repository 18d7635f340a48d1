/**
 * Envoy's side of `envoy.service.ext_proc.v3.ExternalProcessor/Process`: one gRPC channel to the EPP, one
 * bidirectional stream per HTTP request. A session knows nothing about HTTP; it sends what the filter gives it,
 * delivers what the EPP answers, and turns every way the EPP can let a request down into one `failure` callback:
 *
 * - `unavailable`: the EPP cannot be reached (gRPC UNAVAILABLE: nothing listening, connection refused or lost);
 * - `error`: any other non-OK gRPC status (INTERNAL, INVALID_ARGUMENT, a reset stream, ...);
 * - `timeout`: the filter was waiting for an answer and the EPP stayed silent for `messageTimeoutMs`;
 * - `closed`: the EPP ended the stream with OK while the filter still had it open.
 *
 * The protos are the ones `@kvroute/protocol/envoy` loads (the package's Envoy API plus the newer members), so the
 * gateway and the EPP always agree on the wire format.
 */
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi, type ProcessingRequest } from '@kvroute/protocol/envoy';
import type { DecodedProcessingResponse } from './ext-proc-answers';

export const EXT_PROC_SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';
const PROCESS_PATH = `/${EXT_PROC_SERVICE}/Process`;

export type ProcFailure = 'unavailable' | 'error' | 'timeout' | 'closed';

export interface SessionHandlers {
  onMessage(msg: DecodedProcessingResponse): void;
  /** `grpcCode`: the stream's gRPC status (0 for a clean close, DEADLINE_EXCEEDED for the message timeout). */
  onFailure(kind: ProcFailure, detail: string, grpcCode: number): void;
  /**
   * Whether the filter is waiting for an answer its failure policy times, right now. Envoy starts a direction's timer
   * when it sends a message that needs an answer and stops it when the answer arrives (ProcessorState
   * onStartProcessorCall / onFinishProcessorCall, `processor_state.cc` @ v1.35.0 L21-51); the messages of one
   * exchange are answered in order, so one timer measured from the last message either way is the same timer.
   */
  owed(): boolean;
  /** The stream is over for the gateway (closed, cancelled or failed), once; the EPP cluster counts active streams by it. */
  onEnd?(): void;
}

export interface ExtProcClientOptions {
  /** `host:port` of the EPP's ext_proc port. */
  readonly target: string;
  readonly messageTimeoutMs: number;
  /** Largest message the gateway sends (a buffered body travels in one message); answers have no limit, as in Envoy. */
  readonly maxMessageBytes: number;
}

/** One channel (one HTTP/2 connection) to the EPP, shared by all requests. */
export class ExtProcClient {
  private readonly client: grpc.Client;
  private readonly serialize: (v: ProcessingRequest) => Buffer;
  private readonly deserialize: (b: Buffer) => DecodedProcessingResponse;
  private readonly sessions = new Set<ExtProcSession>();
  private closed = false;
  streamsOpened = 0;
  /** Envoy's `streams_started`: streams that opened without failing at once (the channel was not shut down). */
  streamsStarted = 0;
  /** Live streams the gateway closed (END_STREAM + RST): Envoy's `streams_closed` from closeStream. */
  streamsClosed = 0;
  messagesSent = 0;
  messagesReceived = 0;

  constructor(readonly options: ExtProcClientOptions) {
    const def = loadEnvoyApi().packageDefinition[EXT_PROC_SERVICE] as grpc.ServiceDefinition;
    this.serialize = def.Process.requestSerialize as (v: ProcessingRequest) => Buffer;
    this.deserialize = def.Process.responseDeserialize as (b: Buffer) => DecodedProcessingResponse;
    this.client = new grpc.Client(options.target, grpc.credentials.createInsecure(), {
      // A restarted EPP is found again within about a second (grpc-js defaults back off up to 120 s).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.min_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.max_send_message_length': options.maxMessageBytes,
      // Envoy's gRPC client takes answers of any size: GrpcService.EnvoyGrpc `max_receive_message_length` defaults to
      // 0, unlimited (`api/envoy/config/core/v3/grpc_service.proto` @ v1.35.0 L54-58), and kvroute's EnvoyFilter sets
      // none. (grpc-js would refuse anything over 4 MiB with RESOURCE_EXHAUSTED.)
      'grpc.max_receive_message_length': -1,
      // Many concurrent streams with request bodies in flight outgrow Node's 10 MB HTTP/2 session default.
      'grpc-node.max_session_memory': 256,
      // Its own connection: grpc-js otherwise shares one subchannel among channels to the same target, so a new channel
      // to a replica that came back (EDS re-adding it) would inherit the old one's reconnect backoff.
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  /** Opens a `Process` stream. Never throws: a channel problem surfaces as the session's failure. */
  open(handlers: SessionHandlers): ExtProcSession {
    this.streamsOpened++;
    const session = new ExtProcSession(this, handlers, this.options.messageTimeoutMs);
    this.sessions.add(session);
    return session;
  }

  /**
   * A stream that never reaches an EPP: it fails with UNAVAILABLE and `detail` once the caller has it, as Envoy's gRPC
   * client reports the router's local reply (e.g. "no healthy upstream" when every replica is ejected).
   */
  refuse(handlers: SessionHandlers, detail: string): ExtProcSession {
    this.streamsOpened++;
    const session = new ExtProcSession(this, handlers, this.options.messageTimeoutMs, detail);
    this.sessions.add(session);
    return session;
  }

  /** @internal */
  startCall(): grpc.ClientDuplexStream<Buffer, Buffer> {
    // Raw buffers on the wire: serialization is done here so a bad outgoing object throws where it is built.
    return this.client.makeBidiStreamRequest<Buffer, Buffer>(PROCESS_PATH, (b) => b, (b) => b);
  }

  /** @internal */
  encode(msg: ProcessingRequest): Buffer {
    return this.serialize(msg);
  }

  /** @internal */
  decode(buf: Buffer): DecodedProcessingResponse {
    return this.deserialize(buf);
  }

  /** @internal */
  forget(s: ExtProcSession): void {
    this.sessions.delete(s);
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sessions]) s.cancel();
    this.client.close();
  }
}

export class ExtProcSession {
  private readonly call: grpc.ClientDuplexStream<Buffer, Buffer> | null;
  private done = false;
  /** The EPP's status has arrived: the stream is over on its side. */
  private remoteClosed = false;
  private halfClosed = false;
  private lastActivity = Date.now();
  /** An honoured `override_message_timeout` for the answer owed now; null: the configured timeout. */
  private timeoutOverrideMs: number | null = null;
  /** An override was already honoured since the last message either way (Envoy's `new_timeout_received_`). */
  private overrideUsed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly drainWaiters: (() => void)[] = [];

  constructor(private readonly owner: ExtProcClient, private readonly handlers: SessionHandlers, private readonly timeoutMs: number,
    refusal?: string) {
    let call: grpc.ClientDuplexStream<Buffer, Buffer> | null = null;
    if (refusal !== undefined) {
      setImmediate(() => this.fail('unavailable', refusal, grpc.status.UNAVAILABLE));
    } else {
      try {
        call = owner.startCall();
      } catch (err) {
        // The channel is shut down (gateway closing): report it like an unreachable EPP, after the caller has the session.
        setImmediate(() => this.fail('unavailable', `cannot start a stream: ${String(err)}`, grpc.status.UNAVAILABLE));
      }
    }
    this.call = call;
    if (!call) return;
    owner.streamsStarted++;
    call.on('data', (buf: Buffer) => this.onData(buf));
    // 'error' always comes with a non-OK 'status'; the status handler reports it. A listener must exist regardless.
    call.on('error', () => undefined);
    call.on('status', (st: grpc.StatusObject) => this.onStatus(st));
    call.on('drain', () => {
      for (const w of this.drainWaiters.splice(0)) w();
    });
  }

  get active(): boolean {
    return !this.done;
  }

  /**
   * Sends one ProcessingRequest. Returns false when the stream's buffer is full (call `onDrain` before sending more)
   * or when the session is over (the message is dropped).
   */
  send(msg: ProcessingRequest): boolean {
    if (this.done || this.halfClosed || !this.call) return false;
    let bytes: Buffer;
    try {
      bytes = this.owner.encode(msg);
    } catch (err) {
      this.fail('error', `could not encode ProcessingRequest: ${String(err)}`, grpc.status.INTERNAL);
      return false;
    }
    this.owner.messagesSent++;
    this.newState();
    this.touch();
    return this.call.write(bytes);
  }

  onDrain(cb: () => void): void {
    if (this.done) return;
    this.drainWaiters.push(cb);
  }

  /**
   * The EPP asked for `ms` more for the answer it owes (`override_message_timeout`, already checked against
   * `max_message_timeout` by the filter): the timer restarts from now with that length, once per owed answer, and only
   * while an answer is owed (ProcessorState::restartMessageTimer, `processor_state.cc` @ v1.35.0: the timer must be
   * enabled and `new_timeout_received_` unset). Returns whether it was honoured.
   */
  restartTimer(ms: number): boolean {
    if (this.done || this.overrideUsed || !this.handlers.owed()) return false;
    this.overrideUsed = true;
    this.timeoutOverrideMs = ms;
    this.lastActivity = Date.now();
    this.stopTimer();
    this.arm();
    return true;
  }

  /** Re-evaluates the message timer after the filter's state changed. */
  touch(): void {
    if (this.done) return;
    this.lastActivity = Date.now();
    this.arm();
  }

  /**
   * Envoy's `closeStream()`: END_STREAM, then RST_STREAM right behind it (ProcessorStreamImpl::close:
   * `stream_.closeStream(); stream_closed_ = true; stream_.resetStream();`, `grpc_client_impl.h` @ v1.35.0 L133-146).
   * The reset waits one turn of the event loop so that grpc-js has handed the half-close to HTTP/2 first; the EPP
   * then sees the end of input and the cancellation, in that order. Nothing is sent or reported afterwards.
   */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.halfClosed = true;
    this.stopTimer();
    this.drainWaiters.length = 0;
    const call = this.call;
    if (call && !this.remoteClosed) this.owner.streamsClosed++;
    try {
      call?.end();
    } catch {
      // already ended
    }
    setImmediate(() => call?.cancel());
    this.owner.forget(this);
    this.handlers.onEnd?.();
  }

  /** Abandons the stream at once (RST_STREAM only): the gateway is shutting down. */
  cancel(): void {
    if (this.done) return;
    this.done = true;
    this.stopTimer();
    this.drainWaiters.length = 0;
    this.call?.cancel();
    this.owner.forget(this);
    this.handlers.onEnd?.();
  }

  private onData(buf: Buffer): void {
    if (this.done) return;
    let msg: DecodedProcessingResponse;
    try {
      msg = this.owner.decode(buf);
    } catch (err) {
      this.fail('error', `undecodable ProcessingResponse: ${String(err)}`, grpc.status.INTERNAL);
      return;
    }
    this.owner.messagesReceived++;
    // A message that only asks for more time is not an answer: the timer goes on from where it was unless the filter
    // honours the request (restartTimer). Envoy handles it before anything else (Filter::onReceiveMessage).
    if (!msg.override_message_timeout) {
      this.newState();
      this.lastActivity = Date.now();
    }
    this.handlers.onMessage(msg);
    if (!this.done) this.arm();
  }

  /** A message went out or an answer came in: the next owed answer gets the configured timeout and may be extended once. */
  private newState(): void {
    this.timeoutOverrideMs = null;
    this.overrideUsed = false;
  }

  private get currentTimeoutMs(): number {
    return this.timeoutOverrideMs ?? this.timeoutMs;
  }

  private onStatus(st: grpc.StatusObject): void {
    if (this.done) return;
    this.remoteClosed = true;
    if (st.code === grpc.status.OK) this.fail('closed', 'the EPP ended the stream', st.code);
    else if (st.code === grpc.status.UNAVAILABLE) this.fail('unavailable', st.details || 'UNAVAILABLE', st.code);
    else this.fail('error', `${grpc.status[st.code] ?? st.code}: ${st.details}`, st.code);
  }

  /** The stream let the filter down: Envoy closes its side (END_STREAM + RST) and the filter decides. */
  private fail(kind: ProcFailure, detail: string, grpcCode: number): void {
    if (this.done) return;
    this.close();
    this.handlers.onFailure(kind, detail, grpcCode);
  }

  /**
   * One timer per session, re-armed lazily: it is scheduled for `lastActivity + timeout` and, when it fires early
   * because of later activity, reschedules itself for the remainder instead of being reset on every message.
   */
  private arm(): void {
    if (this.done || this.timer) return;
    if (!this.handlers.owed()) return;
    const wait = Math.max(1, this.lastActivity + this.currentTimeoutMs - Date.now());
    this.timer = setTimeout(() => this.onTimer(), wait);
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.done || !this.handlers.owed()) return;
    const idle = Date.now() - this.lastActivity;
    const timeoutMs = this.currentTimeoutMs;
    if (idle >= timeoutMs) {
      this.fail('timeout', `no answer from the EPP within ${timeoutMs} ms`, grpc.status.DEADLINE_EXCEEDED);
      return;
    }
    this.arm();
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
