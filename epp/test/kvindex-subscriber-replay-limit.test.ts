/**
 * How much replaying a process does, as llm-d-router v0.10.0 pkg/kvevents/zmq_subscriber.go `requestReplay` bounds it:
 * at most `maxConcurrentReplay` (8) replay answers at once in the process (`processReplayLimiter`), and no replay asked
 * of a publisher for `replayCooldown` (30 s) after one failed (`canAttemptReplay`). A replica that starts (or restarts)
 * beside a running pool dials every pod at once and, with a replay socket, asks every pod's vLLM for its whole replay
 * buffer at once (up to `buffer_steps`, 10,000 batches, per pod: vllm/distributed/kv_events.py @ v0.10.0
 * `ZmqEventPublisher`); found by the replicas review (rev-replicas). Real ZMQ sockets on loopback, one pod per loopback
 * address (127.0.0.2 …), whose replay ROUTERs record requests and answer only when told.
 */
import * as net from 'node:net';
import * as zmq from 'zeromq';
import { encodeEventBatch, REPLAY_END_SEQ } from '@kvroute/protocol/kv-events';
import { TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { KvEventSubscriber, type SubscriberEvents } from '../src/kvindex/event-subscriber';

jest.setTimeout(60_000);

const PODS = 12;
const quiet = { warn: () => undefined, debug: () => undefined };

/** Subscriber events written to `log` in order: each batch by its first removed block, resets, gaps, replay outcomes. */
function loggedEvents(log: string[]): SubscriberEvents {
  return {
    batch: (_pod, b) => log.push(`batch ${b.events[0]?.type === 'BlockRemoved' ? b.events[0].blockHashes[0] : '?'}`),
    reset: (_pod, reason) => log.push(`reset ${reason}`), dropped: () => undefined, gap: () => log.push('gap'),
    replay: (_pod, outcome) => log.push(`replay ${outcome}`),
  };
}

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('a new replica asks at most 8 pods for their replay buffers at once, as llm-d-router\'s processReplayLimiter bounds it; the rest are asked as answers end', async () => {
  const socketPort = await freePort('127.0.0.2');
  const replayPort = await freePort('127.0.0.2');
  const pubs: zmq.Publisher[] = [];
  const routers: zmq.Router[] = [];
  /** The pods whose replay socket was asked, and who asked (to answer later). */
  const asked = new Map<number, Buffer>();
  for (let i = 0; i < PODS; i++) {
    const host = `127.0.0.${i + 2}`;
    const pub = new zmq.Publisher();
    await pub.bind(`tcp://${host}:${socketPort}`);
    const router = new zmq.Router();
    await router.bind(`tcp://${host}:${replayPort}`);
    // Holds every answer (a large buffer still streaming): the request stays outstanding.
    void (async () => { for await (const [identity] of router) asked.set(i, identity!); })().catch(() => undefined);
    pubs.push(pub);
    routers.push(router);
  }
  const replays: string[] = [];
  const events: SubscriberEvents = {
    batch: () => undefined, reset: () => undefined, dropped: () => undefined, gap: () => undefined, replay: (_pod, outcome) => replays.push(outcome),
  };
  const subscriber = new KvEventSubscriber({
    mode: 'per-pod', topicFilter: 'kv@', socketPort, replayPort, replayTimeoutMs: 10_000, warmUpTimeoutMs: 30_000,
    resolvePod: () => undefined, events, logger: quiet,
  });
  try {
    for (let i = 0; i < PODS; i++) subscriber.addEndpoint(`127.0.0.${i + 2}:8000`);
    await waitFor(() => asked.size >= 8, 'the first replay requests');
    await new Promise((r) => setTimeout(r, 1500));
    expect(asked.size).toBe(8); // llm-d-router v0.10.0 maxConcurrentReplay
    expect(subscriber.warm).toBe(false);
    // The answers end (an empty buffer): each frees a slot for a pod still waiting, within its own quiet timeout.
    const answered = new Set<number>();
    await waitFor(async () => {
      for (const [i, identity] of asked) {
        if (answered.has(i)) continue;
        answered.add(i);
        await routers[i]!.send([identity, '', REPLAY_END_SEQ, '']);
      }
      return answered.size === PODS;
    }, 'every pod asked');
    await waitFor(() => subscriber.warm && replays.length === PODS, 'every replay ended');
    expect(replays).toEqual(Array.from({ length: PODS }, () => 'repaired'));
  } finally {
    subscriber.close();
    for (const s of [...pubs, ...routers]) s.close();
  }
});

test('after a replay failed, a gap within llm-d-router\'s replayCooldown (30 s) asks nothing: the pod\'s entries are dropped at once and the live batch applies', async () => {
  const POD = '127.0.0.1:8000';
  const publisher = new TestKvEventPublisher(`kv@${POD}@m`);
  const { socketPort } = await publisher.bind();
  // A replay socket that never answers.
  const router = new zmq.Router();
  await router.bind('tcp://127.0.0.1:0');
  let asked = 0;
  void (async () => { for await (const _ of router) asked++; })().catch(() => undefined);
  const log: string[] = [];
  const events = loggedEvents(log);
  const subscriber = new KvEventSubscriber({
    mode: 'per-pod', topicFilter: 'kv@', socketPort, replayPort: Number(/:(\d+)$/.exec(router.lastEndpoint ?? '')![1]),
    replayTimeoutMs: 300, resolvePod: () => undefined, events, logger: quiet,
  });
  const send = (seq: number, lost = false) => publisher.publish([{ type: 'BlockRemoved', blockHashes: [String(seq)] }], { seq: BigInt(seq), lost });
  try {
    subscriber.addEndpoint(POD);
    await publisher.waitSubscribed();
    // The warm-up replay, asked three times, fails.
    await waitFor(() => log.includes('replay failed'), 'the warm-up replay to fail');
    expect(asked).toBe(3);
    await send(1);
    await send(2, true);
    await send(3);
    await waitFor(() => log.includes('batch 3'), 'the batch after the gap');
    await new Promise((r) => setTimeout(r, 1000));
    expect(asked).toBe(3);
    expect(log).toEqual(['reset gap', 'replay failed', 'batch 1', 'gap', 'reset gap', 'batch 3']);
  } finally {
    subscriber.close();
    router.close();
    publisher.close();
  }
});

// llm-d-router v0.10.0 pkg/kvevents/zmq_subscriber.go: at "Detected event sequence reset, rebuilding index" the subscriber
// sets `z.lastReplayFailure = time.Time{}` and asks the new process's replay socket from 0: a restarted vLLM has a new
// replay buffer, so the cooldown its predecessor's failed replay started does not apply to it.
test('a publisher restart within the cooldown of a failed replay asks the new process for its replay: the batches it sent before the subscription came back are indexed', async () => {
  const POD = '127.0.0.1:8000';
  const publisher = new TestKvEventPublisher(`kv@${POD}@m`);
  const { socketPort, replayPort } = await publisher.bind();
  // The old process's replay socket never answers: the warm-up's three requests go unanswered and the replay fails.
  publisher.dropReplayed = (request) => request < 3;
  const log: string[] = [];
  const events = loggedEvents(log);
  const subscriber = new KvEventSubscriber({
    mode: 'per-pod', topicFilter: 'kv@', socketPort, replayPort, replayTimeoutMs: 300, resolvePod: () => undefined, events, logger: quiet,
  });
  const removed = (seq: number) => [{ type: 'BlockRemoved' as const, blockHashes: [String(seq)] }];
  try {
    subscriber.addEndpoint(POD);
    await publisher.waitSubscribed();
    await waitFor(() => log.includes('replay failed'), 'the warm-up replay to fail');
    await publisher.publish(removed(5), { seq: 5n });
    await publisher.publish(removed(6), { seq: 6n });
    await waitFor(() => log.includes('batch 6'), 'the old process\'s live batches');
    // vLLM restarts: the new process numbers from 0, and its batches 0 and 1 went out while this subscription was
    // reconnecting (PUB drops them), so only its replay buffer holds them.
    publisher.buffer.length = 0;
    for (const seq of [0, 1]) publisher.buffer.push([BigInt(seq), encodeEventBatch({ ts: 0, events: removed(100 + seq), dataParallelRank: 0 }, 'positional-v0.10.0')]);
    await publisher.publish(removed(102), { seq: 2n });
    // Settled either way: the new process's replay ended, or its live batch was applied with no replay asked for.
    await waitFor(() => log.filter((l) => l.startsWith('replay ')).length === 2 || (log.includes('batch 102') && publisher.replayRequests.length === 3),
      'the new process\'s replay to end, or its live batch to be applied without one');
    expect(publisher.replayRequests).toEqual([0n, 0n, 0n, 0n]);
    expect(log).toEqual(['reset gap', 'replay failed', 'batch 5', 'batch 6', 'reset publisher-restart', 'batch 100', 'batch 101', 'batch 102', 'replay repaired']);
  } finally {
    subscriber.close();
    publisher.close();
  }
});
