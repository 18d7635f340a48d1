/**
 * A KV-event replay's deadline (llm-d-router's `replayTimeout`, 2 minutes, a Go context deadline: monotonic time) and
 * the cooldown after a failed one must not move with the wall clock. Real ZMQ sockets on loopback (the test
 * publisher's PUB and replay ROUTER); only `Date.now()` is stepped, mid-replay.
 */
import { encodeEventBatch, type KvEventBatch } from '@kvroute/protocol/kv-events';
import { stepWallClock, TestKvEventPublisher, waitFor, type SteppedWallClock } from '@kvroute/testkit';
import { KvEventSubscriber } from '../src/kvindex/event-subscriber';
import { Recorder } from './kv-event-recorder';

jest.setTimeout(60_000);

const POD = '127.0.0.1:8000';
const TOPIC = `kv@${POD}@Qwen/Qwen3-0.6B`;
const HOUR_MS = 3_600_000;

const batch = (n: number): KvEventBatch => ({ ts: 1_700_000_000 + n, events: [{ type: 'BlockRemoved', blockHashes: [String(n)] }], dataParallelRank: 0 });
const payload = (n: number) => encodeEventBatch(batch(n), 'positional-v0.10.0');

let wall: SteppedWallClock;
let publisher: TestKvEventPublisher;
let subscriber: KvEventSubscriber | undefined;

beforeEach(() => {
  wall = stepWallClock();
  publisher = new TestKvEventPublisher(TOPIC);
});

afterEach(() => {
  subscriber?.close();
  publisher.close();
  wall.restore();
});

test('a wall-clock step forward of an hour during a replay does not end it as past its 2-minute deadline: the interrupted answer is asked again and the gap repaired', async () => {
  const r = new Recorder();
  for (let n = 0; n < 30; n++) publisher.buffer.push([BigInt(n), payload(n)]);
  // The first answer (the warm-up replay, asked from 0) loses 10-14 and its end marker, and the node's clock steps
  // forward while it streams: the answer is asked again from 10, as llm-d-router's requestReplay does within its deadline.
  publisher.dropReplayed = (request, seq) => {
    if (request === 0) wall.step(HOUR_MS);
    if (seq === 'end') return request === 0;
    return request === 0 && seq >= 10n && seq < 15n;
  };
  const { socketPort, replayPort } = await publisher.bind();
  subscriber = new KvEventSubscriber({ mode: 'per-pod', topicFilter: 'kv@', socketPort, replayPort, replayTimeoutMs: 1000, resolvePod: () => undefined, events: r, logger: { warn: () => undefined, debug: () => undefined } });
  subscriber.addEndpoint(POD);
  await waitFor(() => r.log.some((l) => l.startsWith('replay')), 'the replay to end');
  // On the wall clock the replay was an hour past its deadline at the first interruption: failed, the entries dropped.
  expect(r.log.filter((l) => !l.startsWith('batch'))).toEqual([`replay ${POD} repaired`]);
  expect(r.log.filter((l) => l.startsWith('batch'))).toHaveLength(30);
  expect(publisher.replayRequests.slice(0, 2)).toEqual([0n, 10n]);
});
