/**
 * A flow-control wait longer than Envoy's message_timeout, through the gateway and the whole real EPP (`startEpp`
 * scraping a vLLM `/metrics` page that says the pod is saturated), configured as the manifests configure both
 * (`lib/ext-proc.ts`: message_timeout 1s, max_message_timeout 30s; the EPP's `--ext-proc-max-message-timeout 30s`).
 *
 * The EPP asks for more time when the wait starts (override_message_timeout); Envoy honours it within
 * max_message_timeout (`ext_proc.cc` onNewTimeout, `processor_state.cc` restartMessageTimer @ v1.35.0), so the request
 * is routed by the EPP when the pod drains. Without max_message_timeout (Envoy's default 0) the same wait ends in a
 * fail-open at message_timeout onto the fallback policy: what the EnvoyFilter did before it set one.
 */
import { parseArgs, startEpp, type Logger, type RunningEpp } from '@kvroute/epp';
import { FakeVllmServer } from '@kvroute/testkit';
import { completion, destroyClientAgent, gateway, LOOPBACK, send, sleep, startUpstream, waitFor, type Upstream } from './harness';

jest.setTimeout(60_000);

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const json = { 'content-type': 'application/json' };

let up: Upstream;
let pod: FakeVllmServer;
let epp: RunningEpp;

beforeEach(async () => {
  up = await startUpstream();
  // Saturated: 50 waiting is past the default config's queue threshold.
  pod = await FakeVllmServer.start({ engines: [{ waiting: 50, running: 8, kvUsage: 0.5 }] });
  epp = await startEpp(parseArgs(['--endpoints', up.address, '--model-server-metrics-port', String(pod.port),
    '--host', LOOPBACK, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
    '--refresh-metrics-interval', '20ms', '--request-body-mode', 'buffered', '--shutdown-grace-period', '1ms',
    '--ext-proc-max-message-timeout', '30s'])!, quiet);
  await waitFor(() => epp.datastore.snapshot()[0]?.metrics.waitingQueueSize === 50);
});

afterEach(async () => {
  await epp.stop();
  await up.close();
  await pod.close();
});

afterAll(() => destroyClientAgent());

/**
 * Sends one request, lets it wait well past the message timeout, then drains the pod; resolves with the reply. The
 * timeout is the EnvoyFilter's 1 s, not shorter: the EPP sends its override as the wait starts, and on a loaded CI
 * machine a shorter timer could fire before that message is read, which would test the machine, not the protocol.
 */
async function waitThenDrain(port: number, messageTimeoutMs: number) {
  const reply = send(port, { body: completion(), headers: json });
  await sleep(messageTimeoutMs * 2.5);
  pod.page = { engines: [{ waiting: 0, running: 1, kvUsage: 0.1 }] };
  return reply;
}

test('with max_message_timeout the EPP holds the request past message_timeout and routes it once the pod drains', async () => {
  const gw = await gateway({ endpoints: [up.address], extProc: `${LOOPBACK}:${epp.grpcPort}`, messageTimeoutMs: 1000, maxMessageTimeoutMs: 30_000 });
  try {
    const r = await waitThenDrain(gw.port, 1000);
    expect(r.status).toBe(200);
    const s = gw.stats();
    expect(s.picksHonoured).toBe(1);
    expect(s.failOpens).toBe(0);
    expect(gw.envoyStats()).toMatchObject({ override_message_timeout_received: 1, message_timeouts: 0 });
  } finally {
    await gw.close();
  }
});

test('without it (0, Envoy\'s default when the field is unset) the override is ignored and the wait ends in a fail-open at message_timeout', async () => {
  const gw = await gateway({ endpoints: [up.address], extProc: `${LOOPBACK}:${epp.grpcPort}`, messageTimeoutMs: 1000, maxMessageTimeoutMs: 0 });
  try {
    const r = await waitThenDrain(gw.port, 1000);
    expect(r.status).toBe(200);
    const s = gw.stats();
    expect(s.picksHonoured).toBe(0);
    expect(s.failOpenReasons.timeout).toBe(1);
    expect(gw.envoyStats()).toMatchObject({ override_message_timeout_ignored: 1, message_timeouts: 1 });
  } finally {
    await gw.close();
  }
});

/**
 * Why `lib/ext-proc.ts` refuses gateway timeouts that do not outlast max_message_timeout: neither of the connection
 * manager's stream timers stops while ext_proc holds the buffered request. `request_timeout` is disarmed only once
 * the request has passed every decoder filter (http_connection_manager.proto field 28; `filter_manager.cc` decodeData
 * L781-784 @ v1.35.0, which a filter that stops iteration never reaches), and `stream_idle_timeout` is reset only by
 * the stream's own events, none of which moves during the hold. The pod stays saturated, so the EPP would answer
 * only at its deadline, 29.75 s in; message_timeout (10 s) is far above the gateway timer, so the outcome does not
 * depend on how fast the EPP's override arrives: Envoy's 504 ends the wait the EPP was told it may take.
 */
describe('gateway timers shorter than the hold the EPP may take cut it with a 504', () => {
  test.each([
    ['request_timeout', { requestReceiveTimeoutMs: 2000 }, 'request timeout', { requestReceive: 1, idle: 0, route: 0 }],
    ['stream_idle_timeout', { idleTimeoutMs: 2000 }, 'stream timeout', { requestReceive: 0, idle: 1, route: 0 }],
  ] as const)('%s', async (_timer, timeouts, body, fired) => {
    const gw = await gateway({ endpoints: [up.address], extProc: `${LOOPBACK}:${epp.grpcPort}`, messageTimeoutMs: 10_000, maxMessageTimeoutMs: 30_000, ...timeouts });
    try {
      const r = await send(gw.port, { body: completion(), headers: json });
      expect({ status: r.status, body: r.body.toString() }).toEqual({ status: 504, body });
      const s = gw.stats();
      expect({ timeouts: s.timeouts, picksHonoured: s.picksHonoured, failOpens: s.failOpens }).toEqual({ timeouts: fired, picksHonoured: 0, failOpens: 0 });
    } finally {
      await gw.close();
    }
  });
});
