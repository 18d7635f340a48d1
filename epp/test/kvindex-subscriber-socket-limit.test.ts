/**
 * A replay whose DEALER socket libzmq refuses to make must fail that replay, not the EPP's process. libzmq refuses a
 * new socket with EMFILE ("Too many open file descriptors") once its context holds ZMQ_MAX_SOCKETS sockets (1023 by
 * default, zmq_ctx_set(3)); every pod the EPP subscribes to holds some, so a large pool (or an EPP out of descriptors)
 * meets it. The replay runs detached from the loop that started it, so the throw was an unhandled rejection, which ends
 * a Node ≥ 15 process. llm-d-router's subscriber gives up that replay instead (pkg/kvevents/zmq_subscriber.go
 * requestReplay: a dealer it cannot dial is logged "Failed to connect replay socket" and the replay invalidated).
 *
 * The subscriber runs in a process of its own: the socket limit is the context's, set before its first socket, and an
 * unhandled rejection ends that process, which is what the test watches.
 */
import * as path from 'node:path';
import { TestKvEventPublisher } from '@kvroute/testkit';
import { runTsChild } from './ts-child';

jest.setTimeout(60_000);

const SUBSCRIBER = path.join(__dirname, '..', 'src', 'kvindex', 'event-subscriber');

/**
 * The child: a per-pod subscriber in a context of 4 sockets, one taken first, then the pod's SUB socket and the two
 * PAIR sockets of its event observer (measured with zeromq 6.8.0: with 5 the replay's DEALER is made and the replay
 * answered), so the warm-up replay's DEALER is refused. It prints what the subscriber reported and exits 0 once the
 * replay has ended.
 */
const child = (socketPort: number, replayPort: number) => `
const zmq = require('zeromq');
zmq.context.maxSockets = 4;
// The context's first socket fixes its size: the subscriber's own raise of the limit (\`zmq()\`) then changes nothing.
const first = new zmq.Pair();
const { KvEventSubscriber } = require(${JSON.stringify(SUBSCRIBER)});
const warnings = [];
const subscriber = new KvEventSubscriber({
  mode: 'per-pod', topicFilter: 'kv@', socketPort: ${socketPort}, replayPort: ${replayPort}, warmUpTimeoutMs: 60000,
  resolvePod: () => undefined,
  logger: { warn: (msg, fields) => warnings.push({ msg, error: fields && fields.error }), debug: () => undefined },
  events: {
    batch() {}, reset() {}, dropped() {}, gap() {},
    replay(endpoint, outcome) {
      setImmediate(() => {
        process.stdout.write(JSON.stringify({ endpoint, outcome, warm: subscriber.warm, warnings }) + '\\n');
        subscriber.close();
        process.exit(0);
      });
    },
  },
});
subscriber.addEndpoint('127.0.0.1:8000');
`;

it('a replay whose DEALER libzmq refuses (EMFILE at the context\'s socket limit) fails that replay; the process goes on (llm-d-router zmq_subscriber.go requestReplay)', async () => {
  const publisher = new TestKvEventPublisher();
  const { socketPort, replayPort } = await publisher.bind();
  try {
    const { code, stdout, stderr } = await runTsChild(child(socketPort, replayPort));
    // Before the fix: exit 1, stderr "Error: Too many open file descriptors … code: 'EMFILE'" from `new Dealer`.
    expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
    const report = JSON.parse(stdout.trim()) as { endpoint: string; outcome: string; warm: boolean; warnings: { msg: string; error?: string }[] };
    // The replay failed as one the pod cannot answer does: the pod's entries dropped, its live batches indexed from now,
    // and readiness no longer waits for it.
    expect(report.endpoint).toBe('127.0.0.1:8000');
    expect(report.outcome).toBe('failed');
    expect(report.warm).toBe(true);
    expect(report.warnings).toEqual([{ msg: 'KV-event replay failed; dropping the pod\'s entries', error: 'Too many open file descriptors' }]);
  } finally {
    publisher.close();
  }
});


// libzmq's default context holds 1023 sockets and a per-pod subscription three (SUB, and its event observer's two
// PAIR sockets), so the 342nd pod's addEndpoint threw EMFILE: the datastore caught it as a listener's error and that
// pod's KV events were never heard. llm-d-router dials each pod with the pure-Go zmq4 (pkg/kvevents/zmq_subscriber.go),
// which has no socket limit of its own.
it('a pool of 400 pods is subscribed in per-pod mode, past the 341 that libzmq\'s default socket limit (1023) holds', async () => {
  const pods = 400;
  const { code, stdout, stderr } = await runTsChild(`
const { KvEventSubscriber } = require(${JSON.stringify(SUBSCRIBER)});
const subscriber = new KvEventSubscriber({
  mode: 'per-pod', topicFilter: 'kv@', socketPort: 1, resolvePod: () => undefined,
  logger: { warn: () => undefined, debug: () => undefined },
  events: { batch() {}, reset() {}, dropped() {}, gap() {}, replay() {} },
});
for (let i = 0; i < ${pods}; i++) subscriber.addEndpoint('127.0.' + Math.floor(i / 200) + '.' + (i % 200 + 1) + ':8000');
process.stdout.write(JSON.stringify({ subscriptions: subscriber.subscriptions }) + '\\n');
subscriber.close();
process.exit(0);
`);
  // Before the fix: exit 1, "Error: Too many open file descriptors … code: 'EMFILE'" from the 342nd addEndpoint.
  expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
  expect(JSON.parse(stdout.trim())).toEqual({ subscriptions: pods });
});
