/**
 * A pool larger than the EPP's open-file limit allows. Each per-pod KV-event subscription holds about four file
 * descriptors (the SUB socket's and its event observer's mailboxes, and its TCP connection), and the pod's metrics
 * scrape one more: 1,000 pods hold about 4,000 (measured on the real EPP with the precise per-pod config: 4,032). Node
 * raises its soft RLIMIT_NOFILE to the hard limit at start, so the container's hard limit is what counts; where it is
 * too low, libzmq refuses a pod's socket with EMFILE. `addEndpoint` threw then, after making the SUB socket (left open,
 * its descriptors leaked) and registering the pod's warm-up wait; the datastore logged one "datastore listener failed"
 * error a pod (668 lines at once for 1,000 pods under a limit of 1,024) and the pod was never tried again.
 * llm-d-router v0.10.0's subscriber retries a socket it could not dial every `retryInterval` (5 s;
 * pkg/kvevents/zmq_subscriber.go `Start`/`runSubscriber`, which logs each failure); kvroute now does the same, saying it
 * once for a run of refusals.
 *
 * The subscriber runs in a process of its own under `ulimit -n`, the limit being the process's.
 */
import * as path from 'node:path';
import { runTsChild } from './ts-child';

jest.setTimeout(60_000);

const SUBSCRIBER = path.join(__dirname, '..', 'src', 'kvindex', 'event-subscriber');
const PODS = 100;
const FD_LIMIT = 256;

const child = `
const { KvEventSubscriber } = require(${JSON.stringify(SUBSCRIBER)});
const warnings = [];
let refusals = 0;
const subscriber = new KvEventSubscriber({
  mode: 'per-pod', topicFilter: 'kv@', socketPort: 1, resolvePod: () => undefined, subscribeRetryMs: 100,
  logger: {
    warn: (msg, fields) => { refusals++; warnings.push({ msg, error: fields && fields.error, limit: fields && fields.openFileLimit }); },
    debug: (msg) => { if (msg.includes('EMFILE')) refusals++; },
  },
  events: { batch() {}, reset() {}, dropped() {}, gap() {}, replay() {} },
});
// Every subscription attempt's outcome, retries included (they call addEndpoint on the instance): libzmq's I/O thread
// opens and closes connections meanwhile (nothing listens on the pods' port), so a descriptor can come free between two
// attempts and a refusal follow a success: a new run of refusals, said again.
const outcomes = [];
const addEndpoint = subscriber.addEndpoint.bind(subscriber);
subscriber.addEndpoint = (pod, rank) => {
  const [subscriptions, refused] = [subscriber.subscriptions, refusals];
  try { addEndpoint(pod, rank); } finally {
    outcomes.push(refusals > refused ? 'refused' : subscriber.subscriptions > subscriptions ? 'made' : 'none');
  }
};
const pods = Array.from({ length: ${PODS} }, (_, i) => '127.0.' + Math.floor(i / 200) + '.' + (i % 200 + 1) + ':8000');
// As the datastore calls a listener: a throw is caught and logged, one "datastore listener failed" a pod.
const thrown = [];
for (const pod of pods) {
  try { subscriber.addEndpoint(pod); } catch (e) { thrown.push(String(e.message)); }
}
const subscribed = subscriber.subscriptions;
// The first pods leave, as many as were subscribed: their descriptors free room for the ones refused.
for (const pod of pods.slice(0, subscribed)) subscriber.removeEndpoint(pod);
const waitingFor = ${PODS} - subscribed;
const until = Date.now() + 15000;
(function poll() {
  if (subscriber.subscriptions < waitingFor && Date.now() < until) return setTimeout(poll, 50);
  // Runs of refusals: a refusal that is the first, or follows a subscription made.
  const runs = outcomes.filter((o) => o !== 'none').filter((o, i, all) => o === 'refused' && (i === 0 || all[i - 1] === 'made')).length;
  process.stdout.write(JSON.stringify({ thrown: thrown.length, firstThrown: thrown[0], subscribed, after: subscriber.subscriptions, waitingFor, warnings, refusals, runs }) + '\\n');
  subscriber.close();
  process.exit(0);
})();
`;

it(`${PODS} pods under an open-file limit of ${FD_LIMIT}: the refused subscriptions are said once and retried, not thrown a pod (llm-d-router v0.10.0 zmq_subscriber.go retryInterval)`, async () => {
  const { code, stdout, stderr } = await runTsChild(child, { fdLimit: FD_LIMIT });
  expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
  const r = JSON.parse(stdout.trim()) as { thrown: number; firstThrown?: string; subscribed: number; after: number; waitingFor: number; warnings: { msg: string; error?: string; limit?: number }[]; refusals: number; runs: number };
  // The limit was met (else the test proves nothing), and left room for the pods refused once the first ones left.
  expect(r.subscribed).toBeGreaterThan(0);
  expect(r.subscribed).toBeLessThan(PODS);
  expect(r.waitingFor).toBeLessThanOrEqual(r.subscribed);
  // Before the fix: one throw a refused pod ("Too many open file descriptors"), and none of them ever subscribed.
  expect({ thrown: r.thrown, firstThrown: r.firstThrown }).toEqual({ thrown: 0, firstThrown: undefined });
  expect(r.after).toBe(r.waitingFor);
  // One warning a run of refusals (usually one run; two seen on a busy machine), naming the cause and the limit; the
  // other refusals at debug.
  expect(r.refusals).toBeGreaterThanOrEqual(r.waitingFor);
  expect(r.runs).toBeGreaterThanOrEqual(1);
  expect(r.warnings).toHaveLength(r.runs);
  for (const w of r.warnings) {
    // Refused by libzmq, or before its sockets were made for want of the descriptors kept free (SUBSCRIBE_FD_HEADROOM).
    expect(w).toMatchObject({ limit: FD_LIMIT });
    expect(w.error).toMatch(/^(Too many open file descriptors|fewer than 16 file descriptors free \(kept free beside the subscriptions\))$/);
    expect(w.msg).toMatch(/out of file descriptors \(EMFILE\).*RLIMIT_NOFILE/);
  }
});
