/**
 * A KV-event publisher whose batches cannot be read (another engine's or version's format, a wrong `encoding`) is said
 * in the log once, at the default verbosity, and again only after one of its batches decoded: kvroute logged each such
 * batch at debug only, so at --v 0 a pod whose every event was dropped left precise scoring without its blocks and no
 * line to say so; llm-d-kv-cache v0.7.1 logs an error for every such message (`pkg/kvevents/pool.go`
 * processRawMessage: "Failed to parse message"), a line per batch for as long as the publisher sends them.
 *
 * A real ZMQ PUB on loopback (TestKvEventPublisher) and the subscriber's per-pod SUB; waits are conditions.
 */
import { encodeEventBatch, encodeSeq, liveFrames, type KvEventBatch } from '@kvroute/protocol/kv-events';
import { TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { KvEventSubscriber, type SubscriberEvents } from '../src/kvindex/event-subscriber';

jest.setTimeout(60_000);

const POD = '127.0.0.1:8000';
const TOPIC = `kv@${POD}@Qwen/Qwen3-0.6B`;
const good = (n: number): Uint8Array => encodeEventBatch({ ts: 1_700_000_000 + n, events: [{ type: 'BlockRemoved', blockHashes: [String(n)] }], dataParallelRank: 0 } as KvEventBatch, 'positional-v0.10.0');
/** 0xc1 is the one byte msgpack never uses. */
const GARBAGE = Buffer.from([0xc1, 0xc1, 0xc1]);

describe('malformed KV-event batches: one warning per publisher until one of its batches decodes', () => {
  let publisher: TestKvEventPublisher;
  let subscriber: KvEventSubscriber | undefined;
  beforeEach(() => { publisher = new TestKvEventPublisher(TOPIC); });
  afterEach(() => {
    subscriber?.close();
    publisher.close();
  });

  test('twenty undecodable payloads make one warning (and twenty drops); a good batch, then another bad one, a second', async () => {
    const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
    let malformed = 0;
    let applied = 0;
    const events: SubscriberEvents = {
      batch: () => { applied++; },
      reset: () => undefined,
      dropped: (_endpoint, reason) => { if (reason === 'malformed') malformed++; },
      gap: () => undefined,
      replay: () => undefined,
    };
    const { socketPort } = await publisher.bind();
    subscriber = new KvEventSubscriber({
      mode: 'per-pod', topicFilter: 'kv@', socketPort, resolvePod: () => undefined, events,
      logger: { warn: (msg, fields) => { warnings.push({ msg, ...(fields ? { fields } : {}) }); }, debug: () => undefined },
    });
    subscriber.addEndpoint(POD);
    await publisher.waitSubscribed();
    for (let seq = 0; seq < 20; seq++) await publisher.pub.send(liveFrames(TOPIC, BigInt(seq), GARBAGE));
    // Two frames instead of three: unreadable too, and the same spell.
    await publisher.pub.send([TOPIC, encodeSeq(20n)]);
    await waitFor(() => malformed === 21, 'the 21 bad messages dropped');
    const told = () => warnings.filter((w) => w.msg.startsWith('malformed KV-event batch'));
    expect(told()).toHaveLength(1);
    expect(told()[0]!.fields).toMatchObject({ endpoint: POD, error: expect.any(String) });
    await publisher.pub.send(liveFrames(TOPIC, 21n, good(21)));
    await waitFor(() => applied === 1, 'the good batch applied');
    await publisher.pub.send(liveFrames(TOPIC, 22n, GARBAGE));
    await waitFor(() => malformed === 22, 'the next bad one dropped');
    expect(told()).toHaveLength(2);
  });
});
