/**
 * Subscriptions to the pods' vLLM KV-event publishers, in both of llm-d's shapes:
 * - central: the EPP binds one SUB socket (`zmqEndpoint`, e.g. `tcp://*:5557`) and every pod's vLLM connects to it,
 *   naming itself in the topic `kv@<pod address>@<model>`; one receiver only;
 * - per-pod: the EPP dials `tcp://<pod ip>:<socketPort>` for every endpoint of the pool, where vLLM binds
 *   (`"endpoint": "tcp://*:5557"`); every EPP replica can subscribe, so several agree on one index.
 * @see llm-d/llm-d-kv-cache pkg/kvevents (pool.go, the pod reconciler) @ v0.5.0; vLLM's publisher
 *   vllm/distributed/kv_events.py @ v0.10.0 (`ZmqEventPublisher`).
 *
 * Every publisher numbers its batches from 0. A batch with the next number is applied; a gap is repaired through the
 * publisher's replay socket when it has one (a DEALER asking the ROUTER from the first missing number; live batches
 * wait meanwhile), and when the replay cannot cover the gap, the pod's entries are dropped; without a replay socket the
 * gap is counted and the entries kept (see `sequenced`). A return to 0 after the stream moved past it is a restarted
 * publisher: a restarted vLLM has an empty cache, so its entries are dropped too. A subscriber that joins a running
 * publisher asks for a replay from 0 to warm up: as soon as its subscription connects (per-pod mode, which then counts
 * the pod warm only once the replay ended), or at the first batch it hears (central mode, where pods connect to it).
 *
 * Warm-up, for readiness: per-pod, a subscription counts as up once its ZMTP handshake with the pod's publisher
 * completed (zeromq's `handshake` socket event), because events published before that are lost (PUB drops what it
 * sends to a peer not yet connected). A pod whose publisher does not answer within `warmUpTimeoutMs` (events not
 * enabled on it, a network policy in the way) stops counting, so one such pod cannot keep the EPP unready forever; its
 * subscription keeps retrying and its entries arrive once it connects. Central mode is warm once its socket is bound.
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import type * as Zmq from 'zeromq';
import { monotonicMs } from '../clock';
import {
  decodeEventBatch,
  decodeSeq,
  encodeSeq,
  isReplayEnd,
  KvEventDecodeError,
  parseKvTopic,
  type DecodeSkips,
  type KvEventBatch,
} from '@kvroute/protocol/kv-events';

/** `both`: a bound socket and a subscription per pod, as llm-d v0.8.0 runs them when `zmqEndpoint` is set too. */
export type SubscriptionMode = 'central' | 'per-pod' | 'both';

/** Why a pod's entries were dropped. */
export type ResetReason = 'gap' | 'publisher-restart' | 'removed';

export interface SubscriberEvents {
  /** A batch to apply, in publisher order, for the endpoint (`ip:port`) it belongs to. */
  batch(endpointKey: string, batch: KvEventBatch, model: string | undefined): void;
  /** Drop every entry of the endpoint. */
  reset(endpointKey: string, reason: ResetReason): void;
  /** Counted problems: unknown topics or pods, malformed frames, skipped fields or event types. */
  dropped(endpointKey: string | undefined, reason: 'malformed' | 'unknown-pod' | 'unknown-event' | 'unknown-field' | 'bad-topic' | 'connection', count?: number): void;
  gap(endpointKey: string): void;
  replay(endpointKey: string, outcome: 'repaired' | 'failed'): void;
}

export interface SubscriberOptions {
  readonly mode: SubscriptionMode;
  /** Central mode: the endpoint the EPP binds. */
  readonly zmqEndpoint?: string;
  /**
   * In `both` mode: a bind that fails (the address in use, e.g. by a vLLM on the same host with its default
   * `tcp://*:5557`) is logged and per-pod subscriptions go on, instead of failing the start. For a default address
   * the config did not name.
   */
  readonly bindIsOptional?: boolean;
  /** Topic prefix to subscribe to. @default "kv@" */
  readonly topicFilter: string;
  /** Per-pod mode: the port each pod's vLLM publishes on. */
  readonly socketPort: number;
  /** The port of each pod's replay socket (vLLM's `replay_endpoint`), when it has one. */
  readonly replayPort?: number;
  /**
   * How long one replay answer may go quiet before it is asked for again from the first batch missing (three quiet
   * answers in a row, or REPLAY_DEADLINE_MS in all, and the pod's entries are dropped instead). @default 2000
   */
  readonly replayTimeoutMs?: number;
  /**
   * Maps a topic's pod id (`ip` or `ip:port`) to an endpoint key of the pool, for the bound socket's messages (a
   * dialled socket's belong to the endpoint dialled); `rank` is the batch's `data_parallel_rank` (0 when unset), which
   * picks among the endpoints of a pod serving several target ports.
   */
  readonly resolvePod: (podId: string, rank: number) => string | undefined;
  readonly events: SubscriberEvents;
  /**
   * Per-pod mode: how long `warm` waits for a pod's subscription to connect before it stops counting that pod.
   * @default DEFAULT_WARM_UP_TIMEOUT_MS
   */
  readonly warmUpTimeoutMs?: number;
  /** Called whenever `warm` may have changed: a subscription connected, a pod left, or a pod's warm-up wait ran out. */
  readonly onWarmUpChange?: () => void;
  /** Per-pod mode: how long after libzmq refused a pod's socket (EMFILE) it is tried again. @default SUBSCRIBE_RETRY_MS */
  readonly subscribeRetryMs?: number;
  /**
   * Per-pod mode: the file descriptors that must be free for a pod's sockets to be made (see SUBSCRIBE_FD_HEADROOM);
   * 0 makes them whenever libzmq can.
   * @default SUBSCRIBE_FD_HEADROOM
   */
  readonly subscribeFdHeadroom?: number;
  readonly logger: { warn(msg: string, fields?: Record<string, unknown>): void; debug(msg: string, fields?: Record<string, unknown>): void };
  /** The largest frame a socket accepts (see MAX_KV_EVENT_FRAME_BYTES). @default MAX_KV_EVENT_FRAME_BYTES */
  readonly maxFrameBytes?: number;
  /** Per-pod mode: how long a dropped connection may go without a reconnect attempt before it is re-dialled. @default REDIAL_AFTER_MS */
  readonly redialAfterMs?: number;
  /** Central mode: the bytes of batches held for pods not yet in the pool, all ids together. @default UNRESOLVED_BYTES */
  readonly unresolvedBytes?: number;
}

/**
 * A Ready vLLM pod has bound its publisher already (vLLM v1's Scheduler creates it in its constructor,
 * vllm/v1/core/sched/scheduler.py, before the API server answers), and a ZMQ connection takes milliseconds plus ZMQ's
 * 100 ms reconnect interval; ten seconds is many retries, and two readiness-probe periods of the EPP's Deployment.
 */
export const DEFAULT_WARM_UP_TIMEOUT_MS = 10_000;

/** Replay answers in a row that may bring nothing new before the replay counts as failed (llm-d-router's 3). */
export const MAX_IDLE_REPLAY_ATTEMPTS = 3;

/**
 * The longest a replay may go on, all its answers together and its waits for a replay slot included (llm-d-router's
 * `replayTimeout`, whose context also bounds its wait on `processReplayLimiter`).
 */
export const REPLAY_DEADLINE_MS = 120_000;

/**
 * Replay answers streaming at once in this process, every subscriber's together (llm-d-router v0.10.0
 * `maxConcurrentReplay`, the process-wide `processReplayLimiter`, pkg/kvevents/zmq_subscriber.go `requestReplay`): a
 * replica that starts beside a running pool asks every pod for its whole buffer (up to 10,000 batches each), and
 * decoding them all at once would hold the event loop, and the picks waiting on it, for as long.
 */
export const MAX_CONCURRENT_REPLAYS = 8;

/**
 * A pod whose subscription libzmq refused (EMFILE: out of file descriptors) is tried again after this long
 * (llm-d-router v0.10.0's `retryInterval`, pkg/kvevents/zmq_subscriber.go).
 */
export const SUBSCRIBE_RETRY_MS = 5_000;

/**
 * The longest libzmq waits between two dials of a pod that does not accept (no publisher there yet, or a vLLM without
 * KV events), its wait doubling from libzmq's default 100 ms (ZMQ_RECONNECT_IVL_MAX: `get_new_reconnect_ivl`,
 * src/stream_connecter_base.cpp @ libzmq 4.3.5). Left at libzmq's default 0, a SUB dials every 100 ms for ever: ten TCP
 * sockets a second a pod, each a file descriptor, and two monitor events (`connect:delay`, `connect:retry`) handed to
 * the routing thread; 500 such pods cost 1.7 s of CPU every 10 s and 10,000 events a second (0.12 s and 1,000 with
 * this). llm-d-router v0.10.0 dials such a pod 11 times 250 ms apart, then waits `retryInterval`, 5 s
 * (pkg/kvevents/zmq_subscriber.go `Start`; go-zeromq/zmq4 v0.17.0 `Dial`, `defaultRetry`, `defaultMaxRetries`):
 * about 1.5 dials a second. A pod that starts publishing is connected at most this long after.
 */
export const RECONNECT_MAX_INTERVAL_MS = SUBSCRIBE_RETRY_MS;

/**
 * A pod's sockets are made only while this many file descriptors are free (proven by opening as many of /dev/null and
 * closing them just before its event observer is made), else the pod is refused as libzmq refuses it (EMFILE) and
 * tried again after SUBSCRIBE_RETRY_MS. Two reasons. zeromq.js's Observer (src/observer.cc @ zeromq 6.8.0) makes the
 * socket's monitor (`zmq_socket_monitor`, a PAIR socket bound to inproc) before its own PAIR socket; when the last
 * descriptor goes to the monitor and the Observer's socket is refused, the monitor has no reader, and closing that
 * socket blocks libzmq's reaper thread for good in the send of ZMQ_EVENT_MONITOR_STOPPED (`stop_monitor`,
 * src/socket_base.cpp @ libzmq 4.3.5, a blocking send on a PAIR without a peer): no socket closed after it ever gives
 * its descriptors back, so the pods that left never make room for the ones refused. And the last descriptors stay for
 * what the EPP needs beside its subscriptions: Envoy's ext_proc connections, the metrics scrapes, /metrics.
 */
export const SUBSCRIBE_FD_HEADROOM = 16;

/**
 * After a replay that failed, the publisher's replay socket is not asked again for this long (llm-d-router v0.10.0
 * `replayCooldown`, `canAttemptReplay`): a gap meanwhile drops the pod's entries at once, as a failed replay does.
 */
export const REPLAY_COOLDOWN_MS = 30_000;

/**
 * The replay slots (MAX_CONCURRENT_REPLAYS), taken first come first served: a semaphore like llm-d-router's
 * `semaphore.NewWeighted`, whose waiters are admitted in order.
 */
class ReplaySlots {
  private readonly waiting: (() => void)[] = [];

  constructor(private free: number) {}

  /**
   * Resolves true once a slot is this caller's (to `release`), false when `deadline` (`monotonicMs`) passed or `signal`
   * was aborted first (the pod left: its wait ends then, as llm-d-router's `processReplayLimiter.Acquire(replayCtx)`).
   */
  acquire(deadline: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const admit = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', giveUp);
        resolve(true);
      };
      const giveUp = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', giveUp);
        const at = this.waiting.indexOf(admit);
        if (at >= 0) this.waiting.splice(at, 1);
        resolve(false);
      };
      const timer = setTimeout(giveUp, Math.max(0, deadline - monotonicMs()));
      timer.unref();
      signal?.addEventListener('abort', giveUp, { once: true });
      this.waiting.push(admit);
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.free++;
  }
}

const replaySlots = new ReplaySlots(MAX_CONCURRENT_REPLAYS);

/** A payload decoded once, on arrival: its data-parallel rank picks the sequence it belongs to. */
interface Decoded {
  readonly batch?: KvEventBatch;
  readonly skips: DecodeSkips;
  readonly error?: string;
}

interface PublisherState {
  /** The pod the publisher runs in. */
  readonly endpointKey: string;
  /** Its data-parallel rank: each rank of a vLLM runs a publisher of its own, numbering from 0. */
  readonly rank: number;
  /** The next sequence number expected (after live and replayed batches); undefined before the first batch. */
  next?: bigint;
  /**
   * One past the highest number the live socket delivered. A replay can run ahead of the live stream (it serves what
   * the publisher already sent, some of it still on its way here), so only this tells a publisher restart (a step back
   * in the live numbering) from a live copy of a batch the replay already applied.
   */
  liveNext?: bigint;
  /** Live batches that arrived while a replay was running, applied after it. */
  held?: { seq: bigint; decoded: Decoded; model?: string }[];
  /** The replay running now, if one is: a warm-up waits for it rather than starting another. */
  replaying?: Promise<void>;
  /** When its last replay failed, while that is less than REPLAY_COOLDOWN_MS ago matters. */
  replayFailedAt?: number;
  /** Aborted when the pod leaves (or the subscriber closes): ends its replay's wait for a slot and its DEALER at once. */
  replayAbort?: AbortController;
}

/**
 * One sequence per publisher. With data parallelism every rank of a pod's vLLM publishes on its own (vLLM's
 * `ZmqEventPublisher` per DP rank, its `itertools.count()` from 0, the rank in each batch's `data_parallel_rank`;
 * vllm/distributed/kv_events.py @ 0181ea31, since #18925), under the pod's one topic: numbered as one stream, two
 * ranks' batches looked like a publisher restart every time and kept dropping the pod's entries. Each rank also
 * offsets its endpoint's port by its rank, whether it binds or connects (`offset_endpoint_port`, the same file @
 * v0.10.0): in central mode rank r connects to the EPP's port + r, which `bindRank` binds on the same socket.
 */
function streamKey(endpointKey: string, rank: number): string {
  return rank === 0 ? endpointKey : `${endpointKey}#dp${rank}`;
}

/** Whether the publisher's last replay failed less than REPLAY_COOLDOWN_MS ago. */
function coolingDown(state: PublisherState): boolean {
  return state.replayFailedAt !== undefined && monotonicMs() - state.replayFailedAt < REPLAY_COOLDOWN_MS;
}

function decodePayload(payload: Uint8Array): Decoded {
  const skips: DecodeSkips = { unknownEvents: 0, unknownFields: 0 };
  try {
    return { batch: decodeEventBatch(payload, skips), skips };
  } catch (e) {
    if (!(e instanceof KvEventDecodeError)) throw e;
    return { skips, error: e.message };
  }
}

/**
 * The process's open-file limit (soft, the one enforced) from /proc/self/limits; undefined off Linux. Read when zeromq
 * is loaded (`zmq()`): once the process is out of descriptors, reading the file fails too.
 */
let fileLimit: number | undefined;
function readOpenFileLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return line ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}

let socketLimitRaised = false;

/**
 * zeromq is loaded when a subscription starts, not when this module is imported: the EPP's config module (which the
 * cdk8s app imports to validate configs) reaches this file through the plugin list and must not load a native addon.
 */
function zmq(): typeof Zmq {
  const z = require('zeromq') as typeof Zmq;
  if (!socketLimitRaised) {
    // libzmq's context holds at most ZMQ_MAX_SOCKETS sockets, 1023 by default (zmq_ctx_set(3)), and refuses more with
    // EMFILE. A per-pod subscription holds three (its SUB socket and the two PAIR sockets of its event observer), so
    // the 342nd pod of a pool could not be subscribed and was never indexed (its addEndpoint threw), while llm-d-router
    // dials every pod with the pure-Go zmq4, which has no such limit. The limit libzmq allows instead (65535 with
    // zeromq 6.8.0); it takes effect only before the context's first socket, which the EPP makes here.
    z.context.maxSockets = z.context.maxSocketsLimit;
    socketLimitRaised = true;
    fileLimit = readOpenFileLimit();
  }
  return z;
}

function messageBytes(frames: readonly Buffer[]): number {
  let n = 0;
  for (const f of frames) n += f.length;
  return n;
}

function ipOf(endpointKey: string): string {
  const bracket = /^\[([^\]]+)\]:\d+$/.exec(endpointKey);
  if (bracket) return bracket[1]!;
  return endpointKey.slice(0, endpointKey.lastIndexOf(':'));
}

function hostForUrl(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

/**
 * The largest frame (message part) of a KV event a subscription accepts (libzmq's ZMQ_MAXMSGSIZE, set on every SUB
 * socket): a larger frame makes libzmq drop the connection before it reads the frame's body (the ZMTP decoder checks
 * each frame's length as it reads its header: `size_ready`, src/v2_decoder.cpp), so one batch's payload frame, where
 * vLLM's bulk is, cannot make the EPP allocate more than this. The bound is per frame, not per message: libzmq reads a
 * message of any number of frames, each up to this size (one of other than vLLM's three is then counted malformed),
 * and the receive queue holds up to 100,000 messages; so what a peer that is not vLLM can make the EPP hold is bounded
 * by who may reach the port (NetworkPolicy), not by this. One vLLM batch holds one engine step's events
 * (`KVEventBatch`, vllm/distributed/kv_events.py @ v0.10.0): `BlockStored` carries the step's new blocks with their
 * token ids, at most `max_num_batched_tokens` of them (8,192 by default), a few hundred KB even at 128K; 64 MiB is
 * ample headroom for any scheduler setting.
 */
export const MAX_KV_EVENT_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * libzmq retries a connection that broke on its own (`connect:retry` at once), but treats a peer it dropped for a
 * protocol error (an oversized frame among them) as gone for good: the connecting SUB never dials again (probed
 * with zeromq 6.8.0: `disconnect`, then nothing; libzmq's `session_base_t::engine_error` terminates the session on
 * `protocol_error` instead of reconnecting). A per-pod subscription that saw no reconnect attempt this long after a
 * disconnect is dialled again, so one bad message costs the events sent meanwhile (a gap, repaired by replay where the
 * pod has it), not the pod's events until the EPP restarts; at most once per interval, so a publisher that keeps
 * sending oversized messages is not dialled in a busy loop.
 */
export const REDIAL_AFTER_MS = 1_000;

/** Central mode's held batches of pods not yet in the pool: the newest this many a pod id. */
export const UNRESOLVED_BATCHES_PER_POD = 128;
/** …for at most this many pod ids. */
export const UNRESOLVED_PODS = 64;
/** …and at most this many bytes, all ids together: the count bounds above alone allow 8,192 messages of any size. */
export const UNRESOLVED_BYTES = 32 * 1024 * 1024;

export class KvEventSubscriber {
  private central?: Zmq.Subscriber;
  private readonly perPod = new Map<string, Zmq.Subscriber>();
  private readonly publishers = new Map<string, PublisherState>();
  /** Per-pod subscriptions not yet connected whose warm-up wait has not run out, with the timer that ends it. */
  private readonly warmingUp = new Map<string, NodeJS.Timeout>();
  /**
   * Endpoints (`''`: the central socket's batches that name none) whose malformed batches were logged, until one of
   * their batches decodes again: see `malformed`.
   */
  private readonly malformedTold = new Set<string>();
  private closed = false;
  /** `both` mode's optional bind failed (see `bindIsOptional`). */
  private bindSkipped = false;
  /** The central socket's first (rank 0's) bound address, the one other ranks' ports are offset from. */
  private baseEndpoint?: string;
  /** Data-parallel ranks whose offset port the central socket binds (or will, once `start` has bound rank 0's). */
  private readonly centralRanks = new Set<number>([0]);
  /** The rank binds in progress, one after another: zeromq refuses a second bind while one is pending (it throws). */
  private binding: Promise<void> = Promise.resolve();
  /**
   * Central mode: the batches whose topic named no endpoint of the pool yet, by the topic's pod id, oldest first,
   * applied when that pod joins. A pod that publishes before discovery lists it (the EPP just started, or a pod whose
   * readiness flapped) would otherwise lose what it cached then: llm-d-kv-cache indexes every message under its
   * topic's pod id whether or not the scheduler knows the pod (pool.go processEventBatch @ 7be76e1). Bounded:
   * UNRESOLVED_BATCHES_PER_POD a pod id (the newest), UNRESOLVED_PODS ids (the first seen kept).
   */
  private readonly unresolved = new Map<string, Buffer[][]>();
  private unresolvedBytes = 0;
  /** Per-pod subscriptions refused with EMFILE since the last one made (`socketsRefused`). */
  private refusedRun = 0;
  /** Pods whose subscription libzmq refused (EMFILE), by key: the timer that tries it again. */
  private readonly refused = new Map<string, NodeJS.Timeout>();
  /**
   * Sockets whose event observer libzmq refused (EMFILE) after their monitor may have been made: never closed (nor
   * left to the garbage collector, whose finalizer closes them), since closing one with a monitor but no reader blocks
   * libzmq's reaper for good (see SUBSCRIBE_FD_HEADROOM). Only when the headroom's proof raced another thread.
   */
  private readonly unclosable: Zmq.Subscriber[] = [];
  /** Whether /dev/null can be opened for the headroom's proof (a sandbox without it skips the proof). */
  private headroomProvable = true;

  constructor(private readonly options: SubscriberOptions) {}

  /** Central mode (and `both`): binds the SUB socket every pod connects to. */
  async start(): Promise<void> {
    if (this.options.mode === 'per-pod') return;
    const endpoint = this.options.zmqEndpoint;
    if (!endpoint) throw new Error('central KV-event subscription needs zmqEndpoint');
    const socket = this.newSocket();
    try {
      await socket.bind(endpoint);
    } catch (e) {
      socket.close();
      if (!(this.options.mode === 'both' && this.options.bindIsOptional === true)) throw e;
      this.bindSkipped = true;
      this.options.logger.warn('KV-event socket not bound; pods that connect to the EPP will not be heard, pods that bind are dialled', {
        endpoint, error: (e as Error).message,
      });
      return;
    }
    socket.subscribe(this.options.topicFilter);
    this.central = socket;
    this.baseEndpoint = socket.lastEndpoint ?? endpoint;
    void this.consume(socket, undefined);
    for (const rank of this.centralRanks) if (rank > 0) this.bindOffset(rank);
    await this.binding;
  }

  /**
   * Central mode, a pool with data parallelism: vLLM's rank r connects to the configured port + r
   * (`offset_endpoint_port` offsets a connecting endpoint too), so the one SUB socket also binds that port, once, when
   * an endpoint of rank r appears. Without it, ranks ≥ 1 would connect to a port nobody binds, and zeromq retries that
   * forever without an error: their blocks would never be indexed, and nothing would say so.
   */
  private bindRank(rank: number): void {
    if (rank <= 0 || this.centralRanks.has(rank) || this.closed) return;
    this.centralRanks.add(rank);
    if (this.central !== undefined) this.bindOffset(rank);
  }

  /** Queues the bind of rank's port behind the binds before it; never throws (a failure is logged). */
  private bindOffset(rank: number): void {
    const socket = this.central!;
    const address = this.rankAddress(rank);
    if (address === undefined) {
      this.options.logger.warn('KV-event socket has no TCP port to offset: data-parallel rank not heard', { endpoint: this.baseEndpoint, rank });
      return;
    }
    this.binding = this.binding.then(async () => {
      if (this.closed || socket.closed) return;
      try {
        await socket.bind(address);
        this.options.logger.debug('KV-event socket bound for a data-parallel rank', { endpoint: address, rank });
      } catch (e) {
        if (this.closed || socket.closed) return;
        this.options.logger.warn('KV-event socket could not bind a data-parallel rank\'s port: that rank\'s events are not heard', { endpoint: address, rank, error: (e as Error).message });
      }
    });
  }

  /** Resolves when every rank bind asked for so far has been tried (for tests). */
  get ranksBound(): Promise<void> {
    return this.binding;
  }

  /** The addresses the central socket binds for data-parallel ranks above 0 (rank 0's is `boundEndpoint`). */
  get rankEndpoints(): string[] {
    return [...this.centralRanks].filter((r) => r > 0).sort((a, b) => a - b).flatMap((r) => this.rankAddress(r) ?? []);
  }

  /** Rank 0's bound address with its port offset by `rank`; undefined before the bind or without a TCP port. */
  private rankAddress(rank: number): string | undefined {
    const base = this.baseEndpoint;
    const port = base === undefined ? null : /:(\d+)$/.exec(base);
    return port ? `${base!.slice(0, port.index)}:${Number(port[1]) + rank}` : undefined;
  }

  /** How events arrive: a bound socket, a subscription per pod, or both. */
  get mode(): SubscriptionMode {
    return this.options.mode;
  }

  /** The address central mode binds, as configured. */
  get zmqEndpoint(): string | undefined {
    return this.options.zmqEndpoint;
  }

  /** The address central mode bound for rank 0 (with the port chosen when it asked for 0). */
  get boundEndpoint(): string | undefined {
    return this.central !== undefined ? this.baseEndpoint : undefined;
  }

  /**
   * An endpoint joined the pool. `rank` is its data-parallel rank (its target port's index): vLLM's rank r publishes
   * on the configured port + r (`ZmqEventPublisher.offset_endpoint_port`, vllm/distributed/kv_events.py @ v0.10.0).
   * Per-pod mode subscribes to it there; central mode binds its port + r for it (`bindRank`).
   */
  addEndpoint(endpointKey: string, rank = 0): void {
    if (this.options.mode !== 'per-pod') {
      this.bindRank(rank);
      this.deliverUnresolved();
    }
    if (this.options.mode === 'central' || this.perPod.has(endpointKey) || this.refused.has(endpointKey) || this.closed) return;
    // The SUB socket and its event observer (two PAIR sockets, made on the first `events`) are made first, in a try:
    // past the process's open-file limit libzmq refuses one with EMFILE, and a throw here left the socket made before
    // it open (its descriptors leaked), the pod waited for by readiness, and one "datastore listener failed" error a
    // pod, hundreds of them at once for a large pool (see `socketsRefused`).
    let made: Zmq.Subscriber | undefined;
    let observing = false;
    let reserve: number[] = [];
    try {
      reserve = this.reserveDescriptors();
      made = this.newSocket();
      this.releaseDescriptors(reserve);
      observing = true;
      void made.events;
    } catch (err) {
      this.releaseDescriptors(reserve);
      if (observing && (err as NodeJS.ErrnoException).code === 'EMFILE') this.unclosable.push(made!);
      else made?.close();
      if ((err as NodeJS.ErrnoException).code !== 'EMFILE') throw err;
      this.socketsRefused(endpointKey, err as Error);
      const retry = setTimeout(() => {
        if (this.refused.get(endpointKey) !== retry) return;
        this.refused.delete(endpointKey);
        this.addEndpoint(endpointKey, rank);
      }, this.options.subscribeRetryMs ?? SUBSCRIBE_RETRY_MS);
      retry.unref();
      this.refused.set(endpointKey, retry);
      return;
    }
    const socket = made;
    this.refusedRun = 0;
    const address = `tcp://${hostForUrl(ipOf(endpointKey))}:${this.options.socketPort + rank}`;
    const timeoutMs = this.options.warmUpTimeoutMs ?? DEFAULT_WARM_UP_TIMEOUT_MS;
    const timer = setTimeout(() => {
      if (this.warmingUp.get(endpointKey) !== timer) return;
      this.warmingUp.delete(endpointKey);
      this.options.logger.warn('KV-event publisher not connected within the warm-up wait; readiness no longer waits for it (its events are indexed once it connects)', {
        endpoint: endpointKey, address, warmUpTimeoutMs: timeoutMs,
      });
      this.options.onWarmUpChange?.();
    }, timeoutMs);
    timer.unref();
    this.warmingUp.set(endpointKey, timer);
    // Registered before connect, so a handshake on a fast loopback connection is not missed. With a replay socket the
    // pod counts as warm once its buffer has been replayed: a pod that publishes nothing new (idle, or serving only
    // hits, for which vLLM sends no event) would otherwise stay empty in this EPP's index while it reports ready.
    socket.events.on('handshake', () => {
      // A handshake that lands after the pod left (or the subscriber closed) must not register it again.
      if (this.closed || this.perPod.get(endpointKey) !== socket) return;
      if (this.options.replayPort === undefined) {
        this.connected(endpointKey, timer);
        return;
      }
      void this.warmUpFromReplay(endpointKey, rank).finally(() => this.connected(endpointKey, timer));
    });
    this.redialWhenDropped(socket, endpointKey, address);
    socket.connect(address);
    socket.subscribe(this.options.topicFilter);
    this.perPod.set(endpointKey, socket);
    void this.consume(socket, endpointKey);
  }

  /**
   * libzmq refused a pod's sockets with EMFILE: the process is out of file descriptors (or, past 65535, libzmq's own
   * socket limit). The pod is tried again after SUBSCRIBE_RETRY_MS, as llm-d-router's subscriber retries a socket it
   * could not dial (`Start`, `retryInterval`, pkg/kvevents/zmq_subscriber.go @ v0.10.0), where it logs every failure.
   * Said once here, clearly, for a run of refusals (a pool added at start-up meets it for every pod past the limit, and
   * again at every retry); the rest of the run at debug, with the count.
   */
  private socketsRefused(endpointKey: string, err: Error): void {
    this.refusedRun++;
    if (this.refusedRun === 1) {
      this.options.logger.warn('KV-event subscription refused: the EPP is out of file descriptors (EMFILE), so this pod and any added while it lasts are not subscribed and their KV events not indexed. Each subscribed pod holds about four descriptors (ZMQ SUB socket, its connection, its monitor) and its metrics scrape one more: raise the EPP container\'s open-file limit (RLIMIT_NOFILE, whose hard limit Node takes at start) above five per pod, plus the descriptors kept free', {
        endpoint: endpointKey, error: err.message, openFileLimit: fileLimit, subscriptions: this.perPod.size,
        keptFree: this.options.subscribeFdHeadroom ?? SUBSCRIBE_FD_HEADROOM,
      });
    } else {
      this.options.logger.debug('KV-event subscription refused (EMFILE)', { endpoint: endpointKey, refusedInARow: this.refusedRun });
    }
  }

  /**
   * Proves SUBSCRIBE_FD_HEADROOM descriptors free by opening as many, held while the pod's SUB socket is made and
   * released just before its observer is (see there); throws EMFILE, as libzmq does, when they are not.
   */
  private reserveDescriptors(): number[] {
    const want = this.options.subscribeFdHeadroom ?? SUBSCRIBE_FD_HEADROOM;
    const held: number[] = [];
    if (!this.headroomProvable) return held;
    try {
      while (held.length < want) held.push(openSync('/dev/null', 'r'));
    } catch (err) {
      this.releaseDescriptors(held);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EMFILE' || code === 'ENFILE') {
        throw Object.assign(new Error(`fewer than ${want} file descriptors free (kept free beside the subscriptions)`), { code: 'EMFILE' });
      }
      this.headroomProvable = false;
      this.options.logger.debug('cannot open /dev/null: KV-event subscriptions are made without proving descriptors free', { error: (err as Error).message });
      return [];
    }
    return held;
  }

  private releaseDescriptors(held: number[]): void {
    for (const fd of held.splice(0)) closeSync(fd);
  }

  private newSocket(): Zmq.Subscriber {
    return new (zmq().Subscriber)({
      receiveHighWaterMark: 100_000,
      maxMessageSize: this.options.maxFrameBytes ?? MAX_KV_EVENT_FRAME_BYTES,
      reconnectMaxInterval: RECONNECT_MAX_INTERVAL_MS,
    });
  }

  /** See REDIAL_AFTER_MS: dials `address` again when libzmq dropped the pod's connection and will not retry it. */
  private redialWhenDropped(socket: Zmq.Subscriber, endpointKey: string, address: string): void {
    const afterMs = this.options.redialAfterMs ?? REDIAL_AFTER_MS;
    let timer: NodeJS.Timeout | undefined;
    const settled = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    socket.events.on('disconnect', () => {
      settled();
      timer = setTimeout(() => {
        timer = undefined;
        if (this.closed || socket.closed || this.perPod.get(endpointKey) !== socket) return;
        this.options.events.dropped(endpointKey, 'connection');
        this.options.logger.warn('KV-event publisher dropped by this subscriber (a frame over the size limit, or a protocol error) and not retried by ZMQ; dialling it again', {
          endpoint: endpointKey, address, maxFrameBytes: this.options.maxFrameBytes ?? MAX_KV_EVENT_FRAME_BYTES,
        });
        try {
          socket.disconnect(address);
        } catch {
          // Already forgotten by libzmq: connecting again is what matters.
        }
        socket.connect(address);
      }, afterMs);
      timer.unref();
    });
    // libzmq's own retry (a connection that broke) or a new connection: nothing to do.
    for (const type of ['connect:retry', 'connect:delay', 'connect', 'handshake', 'close'] as const) socket.events.on(type, settled);
  }

  /**
   * Asks a just-connected publisher's replay socket for everything it still holds (vLLM answers a replay request at any
   * time: `_publisher_thread` serves the ROUTER on every turn of its loop, `_service_replay` sends each buffered batch
   * from the asked number on, then the end marker; vllm/distributed/kv_events.py @ v0.10.0), holding live batches
   * meanwhile. Only before this subscriber has a position in the publisher's stream: a reconnect of a stream it follows
   * is handled by the sequence numbers (a gap, or a restart) as before.
   */
  private async warmUpFromReplay(endpointKey: string, rank: number): Promise<void> {
    const key = streamKey(endpointKey, rank);
    let state = this.publishers.get(key);
    if (!state) this.publishers.set(key, (state = { endpointKey, rank }));
    // A replay already running (a live batch came first, or a second handshake): warm once it ended.
    if (state.replaying !== undefined) return state.replaying;
    if (state.next !== undefined || state.held !== undefined || this.closed) return;
    state.held = [];
    await this.replay(state, 0n, undefined, false);
  }

  private connected(endpointKey: string, timer: NodeJS.Timeout): void {
    if (this.warmingUp.get(endpointKey) !== timer) return;
    clearTimeout(timer);
    this.warmingUp.delete(endpointKey);
    this.options.onWarmUpChange?.();
  }

  /**
   * Whether every subscription has connected or stopped being waited for (per-pod), or the socket is bound (central):
   * what the EPP's readiness waits for before it first reports SERVING.
   */
  get warm(): boolean {
    return (this.options.mode === 'per-pod' || this.central !== undefined || this.bindSkipped) && this.warmingUp.size === 0;
  }

  /** Pods whose subscription readiness still waits for (per-pod), for logs and tests. */
  get warmingUpEndpoints(): string[] {
    return [...this.warmingUp.keys()];
  }

  /**
   * The pod's vLLM restarted (known from elsewhere: its metrics): its publishers number from 0 again, so what this
   * subscriber expected of their sequences is forgotten, and the new process's first batch is taken as a publisher
   * joining (its replay asked from 0 when the batch is past 0) rather than as a step back. A publisher with a replay
   * running keeps its state: the replay ends (answered or timed out) as it would have.
   */
  forgetSequences(endpointKey: string): void {
    for (const state of this.publishers.values()) {
      if (state.endpointKey !== endpointKey || state.held !== undefined) continue;
      state.next = undefined;
      state.liveNext = undefined;
      state.replayFailedAt = undefined;
    }
  }

  /** A pod left the pool: stop listening to it and forget its entries. */
  removeEndpoint(endpointKey: string): void {
    clearTimeout(this.refused.get(endpointKey));
    this.refused.delete(endpointKey);
    const socket = this.perPod.get(endpointKey);
    if (socket) {
      this.perPod.delete(endpointKey);
      socket.close();
    }
    for (const [key, state] of this.publishers) {
      if (state.endpointKey !== endpointKey) continue;
      this.publishers.delete(key);
      state.replayAbort?.abort();
    }
    this.malformedTold.delete(endpointKey);
    const timer = this.warmingUp.get(endpointKey);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.warmingUp.delete(endpointKey);
      this.options.onWarmUpChange?.();
    }
    this.options.events.reset(endpointKey, 'removed');
  }

  /** Subscribed pods (per-pod mode). */
  get subscriptions(): number {
    return this.perPod.size;
  }

  close(): void {
    this.closed = true;
    for (const timer of this.warmingUp.values()) clearTimeout(timer);
    this.warmingUp.clear();
    for (const timer of this.refused.values()) clearTimeout(timer);
    this.refused.clear();
    this.central?.close();
    for (const socket of this.perPod.values()) socket.close();
    this.perPod.clear();
    for (const state of this.publishers.values()) state.replayAbort?.abort();
  }

  private async consume(socket: Zmq.Subscriber, endpointKey: string | undefined): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch (e) {
        // A socket closed under the loop ends it.
        if (this.closed || socket.closed) return;
        // zeromq.js refuses to read while the socket binds (EBUSY, "Socket is blocked by a bind or unbind operation":
        // zeromq src/socket.cc ValidateOpen @ v6): a data-parallel rank's port bound while events flow (`bindOffset`)
        // must not end the subscription, as it did (every later event of every pod unheard). Read again after it.
        if ((e as { code?: string }).code === 'EBUSY') {
          await this.binding;
          await new Promise((resolve) => setTimeout(resolve, 1));
          continue;
        }
        this.options.logger.warn('KV-event subscription failed', { endpoint: endpointKey, error: (e as Error).message });
        return;
      }
      try {
        this.receive(frames, endpointKey);
      } catch (e) {
        // One batch that cannot be applied is a line in the log, not the end of the pod's (or the pool's) events.
        this.options.logger.warn('KV-event batch not applied', { endpoint: endpointKey, error: (e as Error).message });
      }
    }
  }

  private receive(frames: Buffer[], socketEndpoint: string | undefined): void {
    const { events } = this.options;
    if (frames.length !== 3) {
      this.malformed(socketEndpoint, `${frames.length} frames, not vLLM's 3 (topic, sequence, payload)`);
      return;
    }
    const [topicFrame, seqFrame, payload] = frames as [Buffer, Buffer, Buffer];
    const topic = parseKvTopic(topicFrame.toString('utf8'));
    if (socketEndpoint === undefined && !topic) {
      events.dropped(undefined, 'bad-topic');
      return;
    }
    // Decoded once, here: the rank it names says whose sequence it continues (a malformed one counts as rank 0's),
    // and, in central mode, which of a pod's ranks the topic's pod id means.
    const decoded = decodePayload(payload);
    const rank = decoded.batch?.dataParallelRank ?? 0;
    // A dialled socket's batches belong to the endpoint it was dialled for, whatever its topic says (a copied or
    // mis-set topic must not put one pod's blocks and sequence numbers on another): llm-d-router v0.10.0 sets the
    // dialled endpoint as the message's SourceEndpoint, which wins over the topic's pod (pkg/kvevents/pool.go
    // processRawMessage; llm-d-kv-cache v0.7.1 went by the topic). The bound socket's come by their topic.
    const endpointKey = socketEndpoint ?? (topic ? this.options.resolvePod(topic.pod, rank) : undefined);
    if (endpointKey === undefined) {
      // Not applied now (counted so); kept for the pod's joining (`unresolved`).
      events.dropped(undefined, 'unknown-pod');
      if (topic) this.holdUnresolved(topic.pod, frames);
      return;
    }
    const seq = decodeSeq(seqFrame);
    if (seq === undefined) {
      this.malformed(endpointKey, `a sequence frame of ${seqFrame.length} bytes, not an 8-byte big-endian number`);
      return;
    }
    const key = streamKey(endpointKey, rank);
    let state = this.publishers.get(key);
    if (!state) this.publishers.set(key, (state = { endpointKey, rank }));
    this.sequenced(state, seq, decoded, topic?.model);
  }

  private holdUnresolved(podId: string, frames: Buffer[]): void {
    const bytes = messageBytes(frames);
    const limit = this.options.unresolvedBytes ?? UNRESOLVED_BYTES;
    if (bytes > limit) return;
    let held = this.unresolved.get(podId);
    if (held === undefined) {
      if (this.unresolved.size >= UNRESOLVED_PODS) return;
      this.unresolved.set(podId, (held = []));
    }
    // Room is made from this pod id's own oldest batches: another id's held batches are not this one's to give up.
    while (this.unresolvedBytes + bytes > limit && held.length > 0) this.unresolvedBytes -= messageBytes(held.shift()!);
    if (this.unresolvedBytes + bytes > limit) {
      if (held.length === 0) this.unresolved.delete(podId);
      return;
    }
    held.push(frames);
    this.unresolvedBytes += bytes;
    if (held.length > UNRESOLVED_BATCHES_PER_POD) this.unresolvedBytes -= messageBytes(held.shift()!);
  }

  /** Applies, oldest first, the held batches of every pod id that now names an endpoint of the pool. */
  private deliverUnresolved(): void {
    for (const [podId, held] of [...this.unresolved]) {
      if (this.options.resolvePod(podId, 0) === undefined) continue;
      this.unresolved.delete(podId);
      for (const frames of held) this.unresolvedBytes -= messageBytes(frames);
      for (const frames of held) {
        try {
          this.receive(frames, undefined);
        } catch (e) {
          this.options.logger.warn('KV-event batch not applied', { podId, error: (e as Error).message });
        }
      }
    }
  }

  private sequenced(state: PublisherState, seq: bigint, decoded: Decoded, model: string | undefined): void {
    const { endpointKey } = state;
    const lastLive = state.liveNext;
    if (lastLive === undefined || seq + 1n > lastLive) state.liveNext = seq + 1n;
    if (state.held) {
      state.held.push({ seq, decoded, ...(model !== undefined ? { model } : {}) });
      return;
    }
    if (state.next === undefined) {
      // Joining a running publisher: what it cached before is unknown; its replay buffer can tell.
      if (seq > 0n && this.options.replayPort !== undefined && !coolingDown(state)) {
        state.held = [{ seq, decoded, ...(model !== undefined ? { model } : {}) }];
        void this.replay(state, 0n, model, false);
        return;
      }
    } else if (seq < state.next) {
      // A restarted vLLM numbers from 0 again (its `itertools.count()`, kv_events.py @ v0.10.0) and holds nothing, and
      // its first batches may be gone before this socket reconnects (PUB drops what it sends with no subscriber): a
      // step back past the live stream's last number is a restart, whether or not 0 was seen; the old process's blocks would never
      // be removed by the new one. Only a repeat of the last number (a publisher that resends it, or numbers every
      // batch 0) is applied as it comes, as llm-d-kv-cache, which never compares numbers (zmq_subscriber.go, pool.go @
      // v0.7.1), applies everything.
      if (lastLive !== undefined && seq + 1n < lastLive) {
        this.options.events.reset(endpointKey, 'publisher-restart');
        // The reset dropped the endpoint's entries, every rank's: the other ranks behind it restarted with this one (one
        // vLLM), and their own step backs must not drop this rank's new blocks again. Their next batches are taken as
        // publishers joining.
        this.forgetSequences(endpointKey);
        state.next = undefined;
        state.liveNext = undefined;
        // A new process, a new replay buffer: llm-d-router ends the cooldown at a sequence reset too.
        state.replayFailedAt = undefined;
        // Now as a publisher joined mid-stream: its replay buffer may still hold the batches this socket missed.
        this.sequenced(state, seq, decoded, model);
        return;
      }
      // Past the live stream's last number but behind the replay's: the live copy of a batch the replay applied.
      if (lastLive === undefined || seq >= lastLive) return;
    } else if (seq > state.next) {
      this.options.events.gap(endpointKey);
      if (this.options.replayPort !== undefined && coolingDown(state)) {
        // The replay socket failed a moment ago: the lost batches are taken as gone, as that replay's failure took them.
        this.options.events.reset(endpointKey, 'gap');
      } else if (this.options.replayPort !== undefined) {
        state.held = [{ seq, decoded, ...(model !== undefined ? { model } : {}) }];
        void this.replay(state, state.next, model, true);
        return;
      }
      // Without a replay socket the lost batches are gone: the gap is counted and the pod's entries are kept, as
      // llm-d-kv-cache-manager keeps them (it never compares sequence numbers: kvevents/pool.go @ v0.3.0). A missed
      // removal costs one cold prefill on the pod, whose next BlockStored of those blocks puts the index right; dropping
      // the pod's entries would cost every hit it still has. A jump is also no sign of loss for every publisher:
      // llm-d-kv-cache-manager's example numbers the batches of all its topics with one counter
      // (examples/kv_events/offline/publisher.go @ v0.3.0), so each pod's sequence jumps whenever another's came between.
    }
    this.apply(state, seq, decoded, model);
  }

  private apply(state: PublisherState, seq: bigint, decoded: Decoded, model: string | undefined): void {
    const { endpointKey } = state;
    // A replay still running for a pod that left the pool (its state forgotten) must not index it again.
    if (this.publishers.get(streamKey(endpointKey, state.rank)) !== state) return;
    if (state.next === undefined || seq >= state.next) state.next = seq + 1n;
    if (!decoded.batch) {
      this.malformed(endpointKey, decoded.error ?? 'undecodable payload');
      return;
    }
    if (this.malformedTold.size > 0) this.malformedTold.delete(endpointKey);
    const { skips } = decoded;
    if (skips.unknownEvents > 0) this.options.events.dropped(endpointKey, 'unknown-event', skips.unknownEvents);
    if (skips.unknownFields > 0) this.options.events.dropped(endpointKey, 'unknown-field', skips.unknownFields);
    this.options.events.batch(endpointKey, decoded.batch, model);
  }

  /**
   * A batch that cannot be read is counted (`dropped_malformed`) and skipped. The first of a publisher's is a warning,
   * further ones only debug lines until one of its batches decodes again: a publisher whose every batch is unreadable
   * (another engine's or version's format, a wrong `encoding`) leaves precise scoring without its blocks, which the
   * operator needs to read once, while llm-d-kv-cache v0.7.1 logs an error for each such message
   * (`pkg/kvevents/pool.go` processRawMessage: "Failed to parse message"), a line per batch for as long as it publishes.
   */
  private malformed(endpointKey: string | undefined, error: string): void {
    this.options.events.dropped(endpointKey, 'malformed');
    const key = endpointKey ?? '';
    if (this.malformedTold.has(key)) {
      this.options.logger.debug('malformed KV-event batch skipped', { endpoint: endpointKey, error });
      return;
    }
    this.malformedTold.add(key);
    this.options.logger.warn('malformed KV-event batch skipped; further ones from this publisher are only counted (kvroute_epp_kv_events_total{outcome="dropped_malformed"}) until one of its batches decodes', { endpoint: endpointKey, error });
  }

  /**
   * Asks the pod's replay socket for every batch from `from` on (vLLM's `_service_replay`: `["", seq]` in, `["", seq,
   * payload]` per batch out, then the end marker), applies them, then the live batches held meanwhile. A DP rank's
   * replay socket listens on `replayPort + rank`, as vLLM offsets it (`ZmqEventPublisher.offset_endpoint_port`).
   */
  private replay(state: PublisherState, from: bigint, model: string | undefined, repairing: boolean): Promise<void> {
    const running = this.runReplay(state, from, model, repairing);
    state.replaying = running;
    return running.finally(() => {
      if (state.replaying === running) state.replaying = undefined;
    });
  }

  private async runReplay(state: PublisherState, from: bigint, model: string | undefined, repairing: boolean): Promise<void> {
    // vLLM's replay ROUTER keeps libzmq's default send high-water mark and drops, silently, what it routes past it
    // (`_socket_setup`, `_service_replay`, vllm/distributed/kv_events.py @ v0.10.0): a replay of a few thousand
    // batches arrives with holes, or without its end marker. So every batch is checked against the one expected, and
    // an interrupted answer is asked for again from the first batch still missing, as llm-d-router's subscriber does
    // (`requestReplay`, pkg/kvevents/zmq_subscriber.go @ ebab6879): up to MAX_IDLE_REPLAY_ATTEMPTS answers in a row
    // that bring nothing new, then the entries are dropped as before.
    // llm-d-router bounds the whole replay too (`replayTimeout`, 2 minutes): a publisher that drops something in every
    // answer must not keep the live batches held for ever. The deadline counts from the request, waits for a replay
    // slot included, as upstream's context does: the live batches are held from then, so that is what it bounds; the
    // quiet-answer timeout (`replayTimeoutMs`) only starts once an answer is asked for, with a slot taken.
    const deadline = monotonicMs() + REPLAY_DEADLINE_MS;
    // The pod's leaving aborts this (`removeEndpoint`, `close`): a replay of a pod that left held its DEALER (a socket, a
    // descriptor) and a replay slot until the answer's timeout, and its wait for a slot lasted up to the deadline, where
    // llm-d-router's replay ends at once with the subscriber's context (`requestReplay`: `replayCtx` from `ctx`, the
    // dealer made on it, pkg/kvevents/zmq_subscriber.go @ v0.10.0).
    const abort = new AbortController();
    state.replayAbort = abort;
    try {
      await this.replayAttempts(state, from, model, repairing, deadline, abort.signal);
    } finally {
      if (state.replayAbort === abort) state.replayAbort = undefined;
    }
  }

  private async replayAttempts(state: PublisherState, from: bigint, model: string | undefined, repairing: boolean, deadline: number, signal: AbortSignal): Promise<void> {
    // A pod that left meanwhile (its state forgotten, or replaced by a re-added pod's) is not reset or counted again.
    const registered = () => !this.closed && this.publishers.get(streamKey(state.endpointKey, state.rank)) === state;
    const { endpointKey } = state;
    let covered = false;
    let first = true;
    let askFrom = from;
    let idleAttempts = 0;
    for (;;) {
      // One slot an answer, given back between answers, as llm-d-router holds `processReplayLimiter` per attempt.
      const admitted = await replaySlots.acquire(deadline, signal);
      if (!registered()) {
        if (admitted) replaySlots.release();
        return;
      }
      let dealer: Zmq.Dealer | undefined;
      let dealerAbortListener: (() => void) | undefined;
      let outcome: 'complete' | 'interrupted' | 'moved-on' = 'interrupted';
      let progressed = false;
      let failure: string | undefined;
      try {
        if (!admitted) throw new Error(`no replay slot free (at most ${MAX_CONCURRENT_REPLAYS} replays at once)`);
        // Made inside the try: libzmq refuses a new socket (EMFILE, "Too many open file descriptors") once the context
        // holds ZMQ_MAX_SOCKETS of them (see `zmq()`) or the process is out of descriptors, and this replay runs
        // detached (`void this.replay(…)`): a throw outside the try was an unhandled rejection, which ended the EPP. It fails this attempt instead, as
        // llm-d-router's requestReplay gives up a replay whose dealer it cannot dial (pkg/kvevents/zmq_subscriber.go:
        // "Failed to connect replay socket", then invalidateReplay).
        dealer = new (zmq().Dealer)({ receiveTimeout: this.options.replayTimeoutMs ?? 2000, linger: 0 });
        const made = dealer;
        // Closing it rejects the receive waiting on it (EAGAIN), which ends this attempt.
        const closeOnAbort = () => made.close();
        if (signal.aborted) made.close();
        else signal.addEventListener('abort', closeOnAbort, { once: true });
        dealerAbortListener = closeOnAbort;
        dealer.connect(`tcp://${hostForUrl(ipOf(endpointKey))}:${this.options.replayPort! + state.rank}`);
        await dealer.send(['', encodeSeq(askFrom)]);
        let expected = askFrom;
        let answered = false;
        for (;;) {
          const frames = await dealer.receive();
          const [, seqFrame, payload] = frames.length === 3 ? frames : ['', frames[0], frames[1]];
          if (!seqFrame || isReplayEnd(seqFrame)) {
            outcome = 'complete';
            break;
          }
          const seq = decodeSeq(seqFrame);
          if (seq === undefined || !payload) continue;
          if (first) {
            // The buffer starts after the gap: the missing batches are gone for good.
            covered = seq <= from;
            first = false;
            if (!covered) {
              if (registered()) this.options.events.reset(endpointKey, 'gap');
              covered = !repairing; // a warm-up may still start from whatever the buffer holds
            }
          } else if (seq > expected) {
            // An answer asked again that starts past its first batch: the buffer moved on, those batches are gone.
            // Later in an answer: a batch the ROUTER dropped; ask again from it.
            outcome = answered ? 'interrupted' : 'moved-on';
            break;
          } else if (seq < expected) {
            continue;
          }
          answered = true;
          expected = seq + 1n;
          if (!registered()) break;
          if (state.next === undefined || seq >= state.next) {
            this.apply(state, seq, decodePayload(payload), model);
            progressed = true;
          }
        }
        if (first && outcome === 'complete' && !repairing) covered = true; // nothing buffered before us: a cold start is exact
      } catch (e) {
        failure = (e as Error).message;
      } finally {
        if (dealerAbortListener) signal.removeEventListener('abort', dealerAbortListener);
        dealer?.close();
        if (admitted) replaySlots.release();
      }
      if (!registered()) return;
      // An answer whose last batches the ROUTER dropped while its end marker got through: a live batch held meanwhile
      // is past what arrived, so ask again from the first missing one rather than find the hole afterwards.
      if (outcome === 'complete' && !(state.next !== undefined && state.held?.some((m) => m.seq > state.next!))) break;
      idleAttempts = progressed ? 0 : idleAttempts + 1;
      if (outcome === 'moved-on' || idleAttempts >= MAX_IDLE_REPLAY_ATTEMPTS || monotonicMs() >= deadline) {
        const reason = outcome === 'moved-on' ? 'the replay buffer moved past the batches still missing'
          : idleAttempts >= MAX_IDLE_REPLAY_ATTEMPTS ? 'replay answers stopped bringing batches' : `the replay took over ${REPLAY_DEADLINE_MS / 1000} s`;
        this.options.logger.warn('KV-event replay failed; dropping the pod\'s entries', { endpoint: endpointKey, error: failure ?? reason });
        this.options.events.reset(endpointKey, 'gap');
        covered = false; // even if its first batch covered the gap: what it applied before failing was just dropped
        break;
      }
      askFrom = state.next ?? askFrom;
      this.options.logger.debug('KV-event replay interrupted; asking again', { endpoint: endpointKey, from: String(askFrom), error: failure });
    }
    if (!registered()) return;
    state.replayFailedAt = covered ? undefined : monotonicMs();
    this.options.events.replay(endpointKey, covered ? 'repaired' : 'failed');
    const held = state.held ?? [];
    state.held = undefined;
    for (const m of held) {
      if (state.next !== undefined && m.seq < state.next) continue;
      if (state.next !== undefined && m.seq > state.next) {
        // Still a hole between the replay and the live stream: the entries cannot be trusted.
        this.options.events.gap(endpointKey);
        this.options.events.reset(endpointKey, 'gap');
      }
      this.apply(state, m.seq, m.decoded, m.model);
    }
  }
}
