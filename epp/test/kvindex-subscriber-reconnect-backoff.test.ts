/**
 * A pod that does not accept the subscription (its vLLM not started yet, or started without KV events) is dialled
 * with a wait that doubles up to RECONNECT_MAX_INTERVAL_MS (5 s), not every 100 ms for ever. libzmq's SUB retries a
 * refused connection after ZMQ_RECONNECT_IVL (100 ms) plus up to as much again of jitter, and, with
 * ZMQ_RECONNECT_IVL_MAX at its default 0, never waits longer (`get_new_reconnect_ivl`, src/stream_connecter_base.cpp
 * @ libzmq 4.3.5, the interval reported in each `connect:retry` event): ten TCP sockets a second a pod, each a file
 * descriptor, and their monitor events through the routing thread (500 such pods: 1.7 s of CPU every 10 s, 10,000
 * events a second). llm-d-router v0.10.0 dials such a pod 11 times 250 ms apart, then waits its 5 s `retryInterval`
 * (pkg/kvevents/zmq_subscriber.go `Start`; go-zeromq/zmq4 v0.17.0 socket.go `Dial`).
 *
 * Real libzmq: the intervals are read from the subscription's own `connect:retry` events.
 */
import { freePort, waitFor } from '@kvroute/testkit';
import * as zmq from 'zeromq';
import { KvEventSubscriber, RECONNECT_MAX_INTERVAL_MS } from '../src/kvindex/event-subscriber';

jest.setTimeout(60_000);

const quiet = { warn: () => undefined, debug: () => undefined };

it('a pod that refuses is dialled again after 100, 200, 400 ms… up to 5 s, and subscribed once it listens (libzmq 4.3.5 ZMQ_RECONNECT_IVL_MAX; llm-d-router v0.10.0 retryInterval)', async () => {
  const port = await freePort();
  const pod = '127.0.0.1:8000';
  const subscriber = new KvEventSubscriber({
    mode: 'per-pod', topicFilter: 'kv@', socketPort: port, resolvePod: () => undefined, logger: quiet, warmUpTimeoutMs: 60_000,
    events: { batch() {}, reset() {}, dropped() {}, gap() {}, replay() {} },
  });
  const publisher = new zmq.Publisher();
  try {
    subscriber.addEndpoint(pod);
    expect(subscriber.warmingUpEndpoints).toEqual([pod]);
    const socket = (subscriber as unknown as { perPod: Map<string, zmq.Subscriber> }).perPod.get(pod)!;
    const intervals: number[] = [];
    socket.events.on('connect:retry', (e) => intervals.push(e.interval));
    // Until the wait has grown past 1.6 s, or as many retries as would have taken it there: every 100-199 ms without
    // a maximum, the eight come within about 1.5 s.
    await waitFor(() => intervals.some((i) => i >= 1_600) || intervals.length >= 8, 'eight retries or a wait of 1.6 s');
    expect(Math.max(...intervals)).toBeGreaterThanOrEqual(1_600);
    for (let i = 1; i < intervals.length; i++) expect(intervals[i]).toBe(Math.min(2 * intervals[i - 1]!, RECONNECT_MAX_INTERVAL_MS));
    // Still dialled: the publisher that starts listening now is connected within the longest wait.
    await publisher.bind(`tcp://127.0.0.1:${port}`);
    await waitFor(() => subscriber.warmingUpEndpoints.length === 0, 'the subscription to connect');
  } finally {
    subscriber.close();
    publisher.close();
  }
});
