import { encodeEventBatch, encodeSeq, liveFrames, REPLAY_END_SEQ, type KvEventBatch, type KvEventEncoding } from '@kvroute/protocol/kv-events';
import { Publisher, Router } from 'zeromq';
import { pubSocketBinds, type KvEventsConfig } from './kv-events-config';

export interface PublisherLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * vLLM's `ZmqEventPublisher` (vllm-project/vllm: vllm/distributed/kv_events.py @ v0.10.0), with zeromq.js:
 *
 * - a PUB socket with `hwm` as its send high-water mark (PUB drops above it), **bound** when the endpoint contains
 *   `*` or `::` or starts with ipc:// or inproc://, **connected** otherwise (`_socket_setup`);
 * - each batch as 3 frames `[topic, seq (8 bytes big-endian, from 0), msgpack payload]` (`_publisher_thread`);
 * - the last `buffer_steps` `(seq, payload)` pairs kept for replay;
 * - a ROUTER bound at `replay_endpoint`: a request `[identity, "", start_seq]` is answered with
 *   `[identity, "", seq, payload]` for every kept batch with seq >= start_seq, then `[identity, "", END_SEQ, ""]`
 *   (`_service_replay`); a request of any other frame count is logged and ignored.
 *
 * Differences: vLLM's `publish()` blocks the scheduler when `max_queue_size` batches wait; here the simulator does
 * not block, it drops the batch (counted in `dropped`) — with a PUB socket that drops at its high-water mark anyway,
 * the queue only fills if the event loop is starved.
 */
export class KvEventPublisher {
  /** The PUB socket's endpoint as bound (the actual port for `tcp://host:*`) or as connected. */
  readonly endpoint: string;
  /** The ROUTER's bound endpoint, or null. */
  readonly replayEndpoint: string | null;
  /** Batches sent (the next sequence number). */
  sent = 0;
  /** Batches dropped because the queue was full. */
  dropped = 0;

  private readonly queue: KvEventBatch[] = [];
  private readonly buffer: { seq: bigint; payload: Uint8Array }[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private readonly sendLoop: Promise<void>;
  private readonly replayLoop: Promise<void>;
  private drained: (() => void)[] = [];

  private constructor(
    private readonly config: KvEventsConfig,
    private readonly encoding: KvEventEncoding,
    private readonly pub: Publisher,
    private readonly router: Router | null,
    endpoint: string,
    private readonly log: PublisherLogger,
  ) {
    this.endpoint = endpoint;
    this.replayEndpoint = router ? (router.lastEndpoint ?? config.replay_endpoint) : null;
    this.sendLoop = this.runSend();
    this.replayLoop = router ? this.runReplay(router) : Promise.resolve();
  }

  static async start(config: KvEventsConfig, encoding: KvEventEncoding, log: PublisherLogger = { warn: () => undefined }): Promise<KvEventPublisher> {
    // linger 0 as vLLM's shutdown closes with linger=0.
    const pub = new Publisher({ sendHighWaterMark: config.hwm, linger: 0 });
    let router: Router | null = null;
    try {
      let endpoint = config.endpoint;
      if (pubSocketBinds(config.endpoint)) {
        await pub.bind(config.endpoint);
        endpoint = pub.lastEndpoint ?? config.endpoint;
      } else {
        pub.connect(config.endpoint);
      }
      if (config.replay_endpoint !== null) {
        router = new Router({ linger: 0 });
        await router.bind(config.replay_endpoint);
      }
      return new KvEventPublisher(config, encoding, pub, router, endpoint, log);
    } catch (e) {
      pub.close();
      router?.close();
      throw e;
    }
  }

  /** Queues one scheduler step's batch. */
  publish(batch: KvEventBatch): void {
    if (this.closed) return;
    // Python's Queue(maxsize<=0) is unbounded.
    if (this.config.max_queue_size > 0 && this.queue.length >= this.config.max_queue_size) {
      this.dropped++;
      return;
    }
    this.queue.push(batch);
    this.wake?.();
  }

  /** Resolves once every queued batch has been handed to the socket. */
  flushed(): Promise<void> {
    if (this.queue.length === 0 && !this.sending) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  private sending = false;

  private async runSend(): Promise<void> {
    for (;;) {
      const batch = this.queue.shift();
      if (!batch) {
        this.sending = false;
        for (const d of this.drained.splice(0)) d();
        if (this.closed) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
        continue;
      }
      this.sending = true;
      const seq = BigInt(this.sent++); // itertools.count(): consumed even if the send fails
      try {
        const payload = encodeEventBatch(batch, this.encoding);
        await this.pub.send(liveFrames(this.config.topic, seq, payload));
        if (this.config.buffer_steps > 0) {
          this.buffer.push({ seq, payload });
          if (this.buffer.length > this.config.buffer_steps) this.buffer.shift();
        }
      } catch (e) {
        if (this.closed) return;
        // vLLM logs, sleeps 0.1 s and loses the batch.
        this.log.warn('kv-events: publishing failed; batch lost', { seq: Number(seq), error: (e as Error).message });
      }
    }
  }

  private async runReplay(router: Router): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await router.receive();
      } catch (e) {
        if (this.closed) return;
        this.log.warn('kv-events: replay receive failed', { error: (e as Error).message });
        continue;
      }
      try {
        if (frames.length !== 3) {
          this.log.warn('kv-events: invalid replay request', { frames: frames.length });
          continue;
        }
        const [client, , startBytes] = frames;
        const start = startBytes.length === 0 ? 0n : BigInt(`0x${startBytes.toString('hex')}`); // int.from_bytes(…, "big")
        for (const { seq, payload } of [...this.buffer]) {
          if (seq >= start) await router.send([client, Buffer.alloc(0), encodeSeq(seq), payload]);
        }
        await router.send([client, Buffer.alloc(0), REPLAY_END_SEQ, Buffer.alloc(0)]);
      } catch (e) {
        if (this.closed) return;
        this.log.warn('kv-events: replay failed', { error: (e as Error).message });
      }
    }
  }

  /** Sends what is queued (up to `timeoutMs`, like vLLM's 1 s shutdown wait), then closes both sockets. */
  async close(timeoutMs = 1000): Promise<void> {
    if (this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flushed(), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.closed = true;
    this.wake?.();
    this.pub.close();
    this.router?.close();
    await Promise.allSettled([this.sendLoop, this.replayLoop]);
  }
}
