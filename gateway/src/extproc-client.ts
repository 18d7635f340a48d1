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
import type { Direction } from './failure-policy';
import { monotonicMs } from './clock';

export const EXT_PROC_SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';
const PROCESS_PATH = `/${EXT_PROC_SERVICE}/Process`;

export type ProcFailure = 'unavailable' | 'error' | 'timeout' | 'closed';

export interface SessionHandlers {
  onMessage(msg: DecodedProcessingResponse): void;
  /** `grpcCode`: the stream's gRPC status (0 for a clean close, DEADLINE_EXCEEDED for the message timeout). */
  onFailure(kind: ProcFailure, detail: string, grpcCode: number): void;
  /**
   * Whether the filter is waiting for an answer in `direction` that its failure policy times, right now. Envoy keeps
   * one message timer per direction, each ProcessorState its own (DecodingProcessorState, EncodingProcessorState): it
   * (re)starts when that direction sends a message that needs an answer and stops when that direction's answer
   * arrives (onStartProcessorCall / onFinishProcessorCall, `processor_state.cc` @ v1.35.0 L21-51). Traffic in the
   * other direction never moves it.
   */
  owed(direction: Direction): boolean;
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
  /** Set by `closeWhenIdle`: the channel closes when its last stream ends, then this is called. */
  private onDrained: (() => void) | undefined;
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
    if (this.sessions.size === 0 && this.onDrained !== undefined) this.close();
  }

  /**
   * Envoy's DrainAndDelete of a host EDS removed: its streams go on, and the channel (its HTTP/2 connection) closes once
   * the last has ended (at once when none is open); `onClosed` is called then. The caller opens no stream on it after.
   */
  closeWhenIdle(onClosed: () => void): void {
    if (this.closed) {
      onClosed();
      return;
    }
    this.onDrained = onClosed;
    if (this.sessions.size === 0) this.close();
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sessions]) s.cancel();
    this.client.close();
    const onDrained = this.onDrained;
    this.onDrained = undefined;
    onDrained?.();
  }
}

export class ExtProcSession {
  private readonly call: grpc.ClientDuplexStream<Buffer, Buffer> | null;
  private done = false;
  /** The EPP's status has arrived: the stream is over on its side. */
  private remoteClosed = false;
  private halfClosed = false;
  /** Envoy's two message timers, `decoding_state_`'s and `encoding_state_`'s. */
  private readonly timers: Record<Direction, MessageTimer> = { request: new MessageTimer(), response: new MessageTimer() };
  private readonly drainWaiters: (() => void)[] = [];
  /** Why the stream could not start (no call was made), until `failIfNotStarted` or the next turn reports it. */
  private readonly startFailure: string | undefined;

  constructor(private readonly owner: ExtProcClient, private readonly handlers: SessionHandlers, private readonly timeoutMs: number,
    refusal?: string) {
    let call: grpc.ClientDuplexStream<Buffer, Buffer> | null = null;
    let startFailure = refusal;
    if (startFailure === undefined) {
      try {
        call = owner.startCall();
      } catch (err) {
        // The channel is shut down (gateway closing): reported like an unreachable EPP.
        startFailure = `cannot start a stream: ${String(err)}`;
      }
    }
    this.startFailure = startFailure;
    // Reported on the next turn unless the caller asks first (`failIfNotStarted`), once it holds the session.
    if (startFailure !== undefined) setImmediate(() => this.failIfNotStarted());
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
   * A stream that could not start fails now, UNAVAILABLE, through `onFailure`; true when it did (or already had). Envoy's
   * gRPC client reports a stream its router refuses (no healthy upstream) inside `Filter::openStream`, before the filter
   * sends anything, so the failure policy runs before the request headers' processing goes on (`ext_proc.cc` @ v1.35.0
   * openStream: onGrpcError, then `IgnoreError`).
   */
  failIfNotStarted(): boolean {
    if (this.startFailure === undefined) return false;
    this.fail('unavailable', this.startFailure, grpc.status.UNAVAILABLE);
    return true;
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
    // onStartProcessorCall: the sending direction's timer restarts from now, the other one runs on untouched.
    const direction = requestDirection(msg);
    this.timers[direction].restart();
    this.arm(direction);
    return this.call.write(bytes);
  }

  onDrain(cb: () => void): void {
    if (this.done) return;
    this.drainWaiters.push(cb);
  }

  /**
   * The EPP asked for `ms` more for the answer it owes (`override_message_timeout`, already checked against
   * `max_message_timeout` by the filter). Envoy offers it to both directions' timers (Filter::onNewTimeout, `ext_proc.cc`
   * @ v1.35.0): each that runs and has not been extended since its message went out restarts from now with that length
   * (ProcessorState::restartMessageTimer, `processor_state.cc` @ v1.35.0: `message_timer_->enabled() &&
   * !new_timeout_received_`). Returns whether any was restarted.
   */
  restartTimer(ms: number): boolean {
    if (this.done) return false;
    let restarted = false;
    for (const direction of DIRECTIONS) {
      const t = this.timers[direction];
      if (t.overrideUsed || !this.handlers.owed(direction)) continue;
      t.override(ms);
      this.stopTimer(direction);
      this.arm(direction);
      restarted = true;
    }
    return restarted;
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
    this.stopTimers();
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
    this.stopTimers();
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
    // A message that only asks for more time is not an answer: the timers go on from where they were unless the
    // filter honours the request (restartTimer). Envoy handles it before anything else (Filter::onReceiveMessage).
    // An answer stops its own direction's timer only (onFinishProcessorCall); a message the filter sends in answer
    // restarts it (send).
    const direction = msg.override_message_timeout ? null : answerDirection(msg);
    if (direction) {
      this.timers[direction].restart();
      this.stopTimer(direction);
    }
    this.handlers.onMessage(msg);
    if (this.done) return;
    for (const d of DIRECTIONS) this.arm(d);
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
   * Arms `direction`'s timer when the filter owes an answer there and it is not armed yet. Lazily: it is scheduled for
   * the direction's start plus its timeout and, if it fires for a start that has since moved (a newer message of the
   * same direction), reschedules itself for the remainder instead of being reset on every message.
   */
  private arm(direction: Direction): void {
    const t = this.timers[direction];
    if (this.done || t.handle) return;
    if (!this.handlers.owed(direction)) return;
    const wait = Math.max(1, t.startedAt + t.timeoutMs(this.timeoutMs) - monotonicMs());
    t.handle = setTimeout(() => this.onTimer(direction), wait);
  }

  /** Either timer expiring is Envoy's one Filter::onMessageTimeout: both directions' timers bind the same callback. */
  private onTimer(direction: Direction): void {
    const t = this.timers[direction];
    t.handle = undefined;
    if (this.done || !this.handlers.owed(direction)) return;
    const timeoutMs = t.timeoutMs(this.timeoutMs);
    if (monotonicMs() - t.startedAt >= timeoutMs) {
      this.fail('timeout', `no ${direction} answer from the EPP within ${timeoutMs} ms`, grpc.status.DEADLINE_EXCEEDED);
      return;
    }
    this.arm(direction);
  }

  private stopTimer(direction: Direction): void {
    const t = this.timers[direction];
    if (t.handle) clearTimeout(t.handle);
    t.handle = undefined;
  }

  private stopTimers(): void {
    for (const d of DIRECTIONS) this.stopTimer(d);
  }
}

const DIRECTIONS: readonly Direction[] = ['request', 'response'];

/** One direction's message timer (ProcessorState's `message_timer_`, `new_timeout_received_`). */
class MessageTimer {
  handle: NodeJS.Timeout | undefined;
  /** When the direction's current wait began: its last message out, its last answer, or an honoured override. */
  startedAt = monotonicMs();
  /** An honoured `override_message_timeout` for the wait now; null: the configured timeout. */
  private overrideMs: number | null = null;
  /** An override was already honoured in this wait (Envoy's `new_timeout_received_`). */
  overrideUsed = false;

  /** A message of this direction went out, or its answer came in: a fresh wait with the configured timeout. */
  restart(): void {
    this.startedAt = monotonicMs();
    this.overrideMs = null;
    this.overrideUsed = false;
  }

  override(ms: number): void {
    this.startedAt = monotonicMs();
    this.overrideMs = ms;
    this.overrideUsed = true;
  }

  timeoutMs(configured: number): number {
    return this.overrideMs ?? configured;
  }
}

/** The direction a ProcessingRequest belongs to: the decoding state's messages or the encoding state's. */
function requestDirection(msg: ProcessingRequest): Direction {
  return msg.request_headers || msg.request_body || msg.request_trailers ? 'request' : 'response';
}

/** The direction an answer belongs to; null for one that belongs to neither (an ImmediateResponse, a spurious one). */
function answerDirection(msg: DecodedProcessingResponse): Direction | null {
  switch (msg.response) {
    case 'request_headers': case 'request_body': case 'request_trailers': return 'request';
    case 'response_headers': case 'response_body': case 'response_trailers': return 'response';
    default: return null;
  }
}
