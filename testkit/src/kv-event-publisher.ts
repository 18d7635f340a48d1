/**
 * A KV-event publisher as vLLM runs one (vllm/distributed/kv_events.py @ v0.10.0, `ZmqEventPublisher`): a PUB socket
 * sending `[topic, seq, payload]`, and a ROUTER replay socket serving `["", seq]` → `["", seq, payload]`… then
 * `["", END_SEQ, ""]` from its buffer. The PUB is an XPUB so a test can wait until a subscriber's subscription has
 * arrived instead of racing ZMQ's slow-joiner window.
 */
import * as zmq from 'zeromq';
import { encodeEventBatch, encodeSeq, liveFrames, REPLAY_END_SEQ, type KvCacheEvent, type KvEventEncoding } from '@kvroute/protocol/kv-events';
import { waitFor } from './wait';

const portOf = (endpoint: string | null) => Number(/:(\d+)$/.exec(endpoint ?? '')![1]);

export class TestKvEventPublisher {
  readonly pub = new zmq.XPublisher();
  readonly router = new zmq.Router();
  /** What the replay socket serves: (seq, payload), oldest first. */
  readonly buffer: [bigint, Uint8Array][] = [];
  /** The start each replay request asked for, in order. */
  readonly replayRequests: bigint[] = [];
  /**
   * Replayed messages to drop, by the request's index and the batch's number (or `'end'` for the end marker): vLLM's
   * replay ROUTER has libzmq's default send high-water mark (1,000) and drops, silently, what it routes to a peer
   * whose pipe is full (`_socket_setup`, `_service_replay`, vllm/distributed/kv_events.py @ v0.10.0; a ROUTER without
   * ZMQ_ROUTER_MANDATORY drops at the HWM, zmq_socket(3)), so a large replay arrives with holes, or without its end.
   */
  dropReplayed: ((request: number, seq: bigint | 'end') => boolean) | undefined;
  private subscriptions = 0;
  private seq = 0n;

  constructor(readonly topic = 'kv@127.0.0.1:8000@Qwen/Qwen3-0.6B') {
    void (async () => {
      for await (const [msg] of this.pub) if (msg![0] === 1) this.subscriptions++;
    })().catch(() => undefined);
    void (async () => {
      for await (const [identity, , seqFrame] of this.router) {
        const from = seqFrame!.readBigUInt64BE();
        const request = this.replayRequests.push(from) - 1;
        const drop = this.dropReplayed;
        for (const [seq, buf] of this.buffer) {
          if (seq >= from && !drop?.(request, seq)) await this.router.send([identity!, '', encodeSeq(seq), buf]);
        }
        if (!drop?.(request, 'end')) await this.router.send([identity!, '', REPLAY_END_SEQ, '']);
      }
    })().catch(() => undefined);
  }

  /** Binds both sockets on loopback ports (per-pod mode). */
  async bind(): Promise<{ socketPort: number; replayPort: number }> {
    await this.pub.bind('tcp://127.0.0.1:0');
    await this.router.bind('tcp://127.0.0.1:0');
    return { socketPort: portOf(this.pub.lastEndpoint), replayPort: portOf(this.router.lastEndpoint) };
  }

  /** Connects the PUB to a subscriber's bound endpoint (central mode). */
  connect(endpoint: string): void {
    this.pub.connect(endpoint);
  }

  /** Resolves once `n` subscriptions reached the publisher. */
  waitSubscribed(n = 1): Promise<void> {
    return waitFor(() => this.subscriptions >= n, 'the subscription to reach the publisher');
  }

  /**
   * Publishes one batch under the next sequence number (or `options.seq`), keeping it for replay unless `lost`, encoded
   * as vLLM 0.10.0 does unless `options.encoding` names another release's wire (`map`: v0.26, with `lora_name`,
   * `extra_keys`, `group_idx`).
   */
  async publish(
    events: readonly KvCacheEvent[],
    options: { seq?: bigint; lost?: boolean; topic?: string; encoding?: KvEventEncoding; dataParallelRank?: number } = {},
  ): Promise<bigint> {
    const seq = options.seq ?? this.seq;
    this.seq = seq + 1n;
    const batch = { ts: Date.now() / 1000, events, dataParallelRank: options.dataParallelRank ?? 0 };
    const payload = encodeEventBatch(batch, options.encoding ?? 'positional-v0.10.0');
    if (options.lost) return seq;
    this.buffer.push([seq, payload]);
    await this.pub.send(liveFrames(options.topic ?? this.topic, seq, payload));
    return seq;
  }

  close(): void {
    this.pub.close();
    this.router.close();
  }
}
