/** A ZMQ SUB socket for the simulator's KV-event publisher, shared by the tests that read its batches. */
import { Subscriber } from 'zeromq';
import { waitFor } from './helpers';

/** One message a SUB socket received: its topic, sequence number and payload frames. */
export interface Live {
  topic: string;
  seq: bigint;
  payload: Buffer;
}

/** A SUB socket that keeps every message it receives. */
export class KvEventCollector {
  readonly sub = new Subscriber({ linger: 0 });
  readonly got: Live[] = [];
  private readonly loop: Promise<void>;
  private connected = false;

  constructor(topicPrefix: string) {
    this.sub.subscribe(topicPrefix);
    // The ZMTP handshake, not the TCP connect: the SUB sends its subscription right after it, so only the PUB's I/O
    // thread is left to apply it (the short wait in `ready`), however slowly this process got to the connect.
    this.sub.events.on('handshake', () => (this.connected = true));
    this.loop = (async () => {
      try {
        for await (const frames of this.sub) {
          expect(frames).toHaveLength(3);
          const [topic, seq, payload] = frames;
          expect(seq).toHaveLength(8);
          this.got.push({ topic: topic.toString('utf8'), seq: seq.readBigUInt64BE(0), payload });
        }
      } catch {
        // closed
      }
    })();
  }

  /** After the ZMTP handshake, give the subscription a moment to reach the PUB (ZMQ's slow joiner). */
  async ready(): Promise<void> {
    await waitFor(() => this.connected, 'the SUB socket\'s handshake');
    await new Promise((r) => setTimeout(r, 150));
  }

  async close(): Promise<void> {
    this.sub.close();
    await this.loop;
  }
}
