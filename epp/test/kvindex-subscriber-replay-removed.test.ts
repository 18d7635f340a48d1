/**
 * A pod that leaves while its replay waits for an answer gives its replay slot and its DEALER back at once. Before,
 * the replay went on until the answer's quiet timeout (`replayTimeoutMs`, 2 s by default, per attempt), holding one of
 * the process's MAX_CONCURRENT_REPLAYS slots and a socket for a pod no longer in the pool: pods leaving mid-replay (a
 * rollout, whose leaving vLLMs stop answering) kept the replays of the pods joining waiting behind them.
 * llm-d-router v0.10.0 ends such a replay with the subscriber's context (`requestReplay`: `replayCtx` derived from
 * `ctx`, the DEALER made on it, `processReplayLimiter.Acquire(replayCtx, 1)`; pkg/kvevents/zmq_subscriber.go).
 *
 * Real ZMQ on loopback: a publisher every pod's SUB connects to, and a replay ROUTER that records requests and never
 * answers; the quiet timeout is longer than the test may wait, so only the pods' leaving can free the slots.
 */
import { waitFor } from '@kvroute/testkit';
import * as zmq from 'zeromq';
import { KvEventSubscriber, MAX_CONCURRENT_REPLAYS } from '../src/kvindex/event-subscriber';

jest.setTimeout(60_000);

const portOf = (endpoint: string | null) => Number(/:(\d+)$/.exec(endpoint ?? '')![1]);

it(`pods that leave mid-replay free their ${MAX_CONCURRENT_REPLAYS} replay slots at once, and a pod waiting for one is asked (llm-d-router v0.10.0 requestReplay replayCtx)`, async () => {
  const publisher = new zmq.Publisher();
  await publisher.bind('tcp://0.0.0.0:0');
  const router = new zmq.Router();
  await router.bind('tcp://0.0.0.0:0');
  const asked: string[] = [];
  void (async () => {
    for await (const [identity] of router) asked.push(identity!.toString('hex'));
  })().catch(() => undefined);
  const subscriber = new KvEventSubscriber({
    mode: 'per-pod', topicFilter: 'kv@', socketPort: portOf(publisher.lastEndpoint), replayPort: portOf(router.lastEndpoint),
    replayTimeoutMs: 600_000, warmUpTimeoutMs: 600_000, resolvePod: () => undefined,
    logger: { warn: () => undefined, debug: () => undefined },
    events: { batch() {}, reset() {}, dropped() {}, gap() {}, replay() {} },
  });
  try {
    const leaving = Array.from({ length: MAX_CONCURRENT_REPLAYS }, (_, i) => `127.0.0.${i + 1}:8000`);
    // Each pod's handshake asks its replay socket for everything it holds: every slot taken, none answered.
    for (const pod of leaving) subscriber.addEndpoint(pod);
    await waitFor(() => asked.length === MAX_CONCURRENT_REPLAYS, 'a replay request from every leaving pod');
    // One more pod, whose replay waits for a slot (it stays warming up until its replay ends).
    const joining = '127.0.0.100:8000';
    subscriber.addEndpoint(joining);
    expect(subscriber.warmingUpEndpoints).toContain(joining);
    for (const pod of leaving) subscriber.removeEndpoint(pod);
    // Before: the slots stayed taken until the 600 s quiet timeout, and the joining pod's replay was never asked.
    await waitFor(() => asked.length === MAX_CONCURRENT_REPLAYS + 1, 'the joining pod\'s replay request');
    expect(subscriber.warmingUpEndpoints).toEqual([joining]);
  } finally {
    subscriber.close();
    publisher.close();
    router.close();
  }
});
