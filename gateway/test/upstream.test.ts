/**
 * Upstream health: connect failures move on to the next address of the pick list, then to the fallback policy,
 * then 503; nothing hangs. Also the gateway's own endpoints and clean-up when a client goes away.
 */
import * as http from 'http';
import * as net from 'net';
import type { AddressInfo } from 'net';
import type { ExtProcServer } from '@kvroute/epp/extproc';
import { EndpointPool, parseEndpoint, RingHash, type Endpoint } from '../src/endpoints';
import {
  completion,
  deadPort,
  destroyClientAgent,
  gateway,
  LOOPBACK,
  send,
  startEpp,
  startUpstream,
  TestDirector,
  waitFor,
  type Upstream,
} from './harness';
import { startScriptedExtProc } from './scripted-ext-proc';

// Generous bounds for a shared, loaded machine (no test relies on them for timing).
jest.setTimeout(30_000);

let ups: Upstream[];
let dead: string;
let director: TestDirector;
let epp: ExtProcServer;
const json = { 'content-type': 'application/json' };

beforeAll(async () => {
  ups = await Promise.all([startUpstream(), startUpstream()]);
  dead = `${LOOPBACK}:${await deadPort()}`;
  director = new TestDirector(ups.map((u) => u.address));
  epp = await startEpp(director);
});

afterAll(async () => {
  await epp.stop();
  await Promise.all(ups.map((u) => u.close()));
  destroyClientAgent();
});

/** A pod that answers every request with a streaming response head and no body, keeping the request's socket. */
async function headOnlyPod(): Promise<{ pod: http.Server; socket: () => net.Socket | undefined }> {
  let socket: net.Socket | undefined;
  const pod = http.createServer((req, res) => {
    req.resume();
    socket = req.socket;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
  });
  await new Promise<void>((resolve) => pod.listen(0, LOOPBACK, resolve));
  return { pod, socket: () => socket };
}

describe('connect failures', () => {
  it('tries the next address of the pick list when the first refuses the connection', async () => {
    const gw = await gateway({ endpoints: [dead, ups[0].address, ups[1].address], extProc: `${LOOPBACK}:${epp.port}` });
    try {
      const r = await send(gw.port, { body: completion(), headers: { ...json, 'x-test-pick': `${dead},${ups[1].address}` } });
      expect(r.status).toBe(200);
      expect(r.json().port).toBe(ups[1].port);
      expect(r.headers['x-gateway-destination-endpoint-served']).toBe(ups[1].address);
      const s = gw.stats();
      expect(s.retries).toBe(1);
      expect(s.upstreamConnectFailures).toBe(1);
      expect(s.picksHonoured).toBe(1);
      // No ejection by default: kvroute's decode DestinationRule sets no outlierDetection.
      expect(s.endpoints[dead]).toMatchObject({ connectFailures: 1, served: 0, ejected: false });
      expect(s.endpoints[ups[1].address].served).toBe(1);
    } finally {
      await gw.close();
    }
  });

  it('falls back to the fallback policy when every pick fails, keeping the body', async () => {
    const gw = await gateway({ endpoints: [dead, ups[0].address], extProc: `${LOOPBACK}:${epp.port}` });
    try {
      const body = completion('x'.repeat(200_000));
      const r = await send(gw.port, { body, headers: { ...json, 'x-test-pick': dead } });
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ port: ups[0].port, bodyBytes: body.length });
      expect(r.headers['x-gateway-destination-endpoint-served']).toBe(ups[0].address);
      expect(gw.stats().fallbacks).toBe(1);
    } finally {
      await gw.close();
    }
  });

  // Router::Filter::decodeData @ v1.35.0: the body passes the retry buffer limit while a retry waits out its back-off
  // (no upstream request in flight): 507 "exceeded request buffer limit while retrying upstream", no retry.
  it('a body that outgrows the retry buffer while a retry waits out its back-off is answered 507, never sent on in part', async () => {
    const gw = await gateway({ endpoints: [dead, ups[0].address], ejectMs: 0, retryBackOffBaseMs: 3000, requestBodyBufferLimitBytes: 64 * 1024 });
    try {
      const seenBefore = ups[0].seen.length;
      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ host: LOOPBACK, port: gw.port, method: 'POST', path: '/v1/completions', headers: json, agent: false }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => { body += d.toString(); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        // A small first chunk (the round robin's first pick, the dead endpoint, refuses at once), then more than the
        // 64 KiB limit while the retry waits its (3 s) back-off.
        req.write(`{"prompt": "${'a'.repeat(1024)}`);
        // The rest once the refusal is in (the retry is then waiting): past the limit, during the back-off.
        void waitFor(() => gw.stats().upstreamConnectFailures === 1, 'the first attempt refused').then(() => {
          for (let i = 0; i < 10; i++) req.write('b'.repeat(8 * 1024));
          req.end('"}');
        }, reject);
      });
      expect(reply).toEqual({ status: 507, body: 'exceeded request buffer limit while retrying upstream' });
      expect(ups[0].seen.length).toBe(seenBefore);
    } finally {
      await gw.close();
    }
  });

  it('with --eject-ms (a stand-in for outlierDetection) skips a dead endpoint in round robin after its first failure and serves everything', async () => {
    // Ejected for longer than a loaded machine's eight requests can take: what is tested is that it is skipped.
    const gw = await gateway({ endpoints: [dead, ups[0].address, ups[1].address], ejectMs: 60_000 });
    try {
      const ports: number[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await send(gw.port, { body: completion(), headers: json });
        expect(r.status).toBe(200);
        ports.push(r.json().port);
      }
      expect(new Set(ports)).toEqual(new Set([ups[0].port, ups[1].port]));
      // Only the first turn on the dead endpoint costs a connect attempt; afterwards it is ejected.
      expect(gw.stats().upstreamConnectFailures).toBe(1);
      expect(gw.stats().endpoints[dead].ejected).toBe(true);
    } finally {
      await gw.close();
    }
  });

  // Envoy's round robin moves its cursor on every pick, retries included (RoundRobinLoadBalancer::unweightedHostPick,
  // load_balancer_impl.h): with one of two pods down and no outlier detection, every request tries it first.
  it('without ejection (the default, as Envoy without outlier detection) every request tries the dead endpoint first and is served by its retry', async () => {
    const gw = await gateway({ endpoints: [dead, ups[0].address] });
    try {
      for (let i = 0; i < 4; i++) expect((await send(gw.port, { body: completion(), headers: json })).json().port).toBe(ups[0].port);
      expect(gw.stats().upstreamConnectFailures).toBe(4);
      expect(gw.stats().retries).toBe(4);
    } finally {
      await gw.close();
    }
  });

  // Envoy v1.35 router.cc onUpstreamReset: "upstream connect error or disconnect/reset before headers. " + ("retried
  // and the latest " only after a retry) + "reset reason: " + resetReasonToString (utility.cc) + the transport failure
  // reason (connection_impl.cc onWriteReady: "delayed connect error: " + strerror); sent as is, no newline.
  it('words a refused connection as Envoy does, "retried and the latest" only after a retry', async () => {
    const refused = 'reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused';
    const once = await gateway({ endpoints: [dead], ejectMs: 0, maxRetries: 0 });
    try {
      const r = await send(once.port, { body: completion(), headers: json });
      expect(r.status).toBe(503);
      expect(r.body.toString()).toBe(`upstream connect error or disconnect/reset before headers. ${refused}`);
      expect(r.headers['content-length']).toBe(String(Buffer.byteLength(r.body.toString())));
    } finally {
      await once.close();
    }
    const retried = await gateway({ endpoints: [dead, `${LOOPBACK}:${await deadPort()}`], ejectMs: 0 });
    try {
      const r = await send(retried.port, { body: completion(), headers: json });
      expect(r.body.toString()).toBe(`upstream connect error or disconnect/reset before headers. retried and the latest ${refused}`);
    } finally {
      await retried.close();
    }
  });

  it('words a pod that closes the connection before its headers "connection termination"', async () => {
    const rude = http.createServer((req) => req.socket.destroy());
    await new Promise<void>((resolve) => rude.listen(0, LOOPBACK, resolve));
    const address = `${LOOPBACK}:${(rude.address() as AddressInfo).port}`;
    const gw = await gateway({ endpoints: [address], ejectMs: 0, maxRetries: 0 });
    try {
      const r = await send(gw.port, { body: completion(), headers: json });
      expect(r.status).toBe(503);
      expect(r.body.toString()).toBe('upstream connect error or disconnect/reset before headers. reset reason: connection termination');
    } finally {
      await gw.close();
      await new Promise((resolve) => rude.close(resolve));
    }
  });

  // Found by the chaos soak (a pod killed while the EPP sat on its response headers): the client's connection was reset
  // with no response. Envoy's router calls sendLocalReply on the upstream reset (router.cc @ v1.35.0 onUpstreamReset ->
  // onUpstreamAbort), and the filter manager sends it "directly to the encoder" while no non-1xx headers were encoded
  // (filter_manager.cc @ v1.35.0 sendLocalReply): a 503; only a response whose headers went out is reset.
  it('answers 503 "connection termination" when the pod dies while the EPP holds its response headers', async () => {
    const { pod, socket: podSocket } = await headOnlyPod();
    const address = `${LOOPBACK}:${(pod.address() as AddressInfo).port}`;
    const scripted = await startScriptedExtProc({ silentOn: ['response_headers'] });
    // The message timeout is far off, so the EPP's silence holds the head until the pod is gone (no fail-open).
    const gw = await gateway({ endpoints: [address], ejectMs: 0, extProc: scripted.address, messageTimeoutMs: 600_000 });
    try {
      const reply = send(gw.port, { body: completion(), headers: json });
      await waitFor(() => scripted.streams[0]?.events.includes('response_headers') ?? false, 'the response headers at the EPP');
      podSocket()!.destroy();
      const r = await reply;
      expect(r.status).toBe(503);
      expect(r.body.toString()).toBe('upstream connect error or disconnect/reset before headers. reset reason: connection termination');
      expect(gw.stats().responsesByStatus).toEqual({ 503: 1 });
    } finally {
      await gw.close();
      await scripted.stop();
      pod.closeAllConnections();
      await new Promise((resolve) => pod.close(resolve));
    }
  });

  // override_host/load_balancer.cc: each attempt consumes the next entry (consumeNextHost), with no retry predicate.
  it('retries a repeated pick entry on the same endpoint before moving on, as override_host consumes one entry an attempt', async () => {
    const gw = await gateway({ endpoints: [dead, ups[0].address, ups[1].address], extProc: `${LOOPBACK}:${epp.port}`, ejectMs: 0 });
    try {
      const r = await send(gw.port, { body: completion(), headers: { ...json, 'x-test-pick': `${dead},${dead},${ups[1].address}` } });
      expect(r.status).toBe(200);
      expect(r.json().port).toBe(ups[1].port);
      expect(gw.stats().endpoints[dead]).toMatchObject({ connectFailures: 2 });
      expect(gw.stats().retries).toBe(2);
    } finally {
      await gw.close();
    }
  });

  it('answers 503 when no endpoint accepts a connection', async () => {
    const other = `${LOOPBACK}:${await deadPort()}`;
    const gw = await gateway({ endpoints: [dead, other], extProc: `${LOOPBACK}:${epp.port}` });
    try {
      const r = await send(gw.port, { body: completion(), headers: { ...json, 'x-test-pick': dead } });
      expect(r.status).toBe(503);
      expect(r.body.toString()).toContain('upstream connect error');
      expect(r.headers['x-gateway-destination-endpoint-served']).toBeUndefined();
      const g = await send(gw.port, { method: 'GET', path: '/v1/models' });
      expect(g.status).toBe(503);
      expect(gw.stats().errorsByStatus).toEqual({ 503: 2 });
      expect(gw.stats().inFlight).toBe(0);
    } finally {
      await gw.close();
    }
  });
});

// Istio writes this retry policy on every route that has none of its own (an HTTPRoute rule without `retry`):
// istio/istio pilot/pkg/networking/core/route/retry/retry.go @ 1.27.0 defaultPolicy L44-51 (`num_retries: 2`,
// retry_on connect-failure,…) via route.go L669-672, L696; unchanged through 1.30.0. Envoy's router then makes at most
// three attempts and numbers each in x-envoy-attempt-count, which Istio's gateway virtual hosts turn on
// (gateway.go @ 1.27.0 L499, L523; httproute.go L311-316 IncludeRequestAttemptCount: true).
describe("Istio's default route retry policy (retry.go @ 1.27.0)", () => {
  it("gives up after Istio's default two retries (three attempts)", async () => {
    const live = await startUpstream();
    const dead = await Promise.all([deadPort(), deadPort(), deadPort()]);
    const gw = await gateway({ endpoints: [...dead.map((p) => `${LOOPBACK}:${p}`), live.address], ejectMs: 0 });
    try {
      const r = await send(gw.port, { body: completion(), headers: json });
      expect(r.status).toBe(503);
      expect(r.body.toString()).toContain('upstream connect error or disconnect/reset before headers. retried and the latest reset reason');
      expect(live.seen).toHaveLength(0);
      expect(gw.stats().retries).toBe(2);
      expect(gw.stats().upstreamConnectFailures).toBe(3);
    } finally {
      await gw.close();
      await live.close();
    }
  });

  it('takes the retry budget from --max-retries (an HTTPRoute retry.attempts)', async () => {
    const live = await startUpstream();
    const gw = await gateway({ endpoints: [`${LOOPBACK}:${await deadPort()}`, live.address], ejectMs: 0, maxRetries: 0 });
    try {
      expect((await send(gw.port, { body: completion(), headers: json })).status).toBe(503);
      expect(gw.stats().retries).toBe(0);
      expect(live.seen).toHaveLength(0);
    } finally {
      await gw.close();
      await live.close();
    }
  });

  // With previous_hosts every re-pick of a tried host is refused until host_selection_retry_max_attempts (5) is
  // spent, and then Envoy keeps the last pick (LoadBalancerBase::chooseHost): the third attempt still happens.
  it('makes all three attempts even when the pool has fewer endpoints (a tried host comes again)', async () => {
    const gw = await gateway({ endpoints: [`${LOOPBACK}:${await deadPort()}`, `${LOOPBACK}:${await deadPort()}`], ejectMs: 0 });
    try {
      expect((await send(gw.port, { body: completion(), headers: json })).status).toBe(503);
      expect(gw.stats().upstreamConnectFailures).toBe(3);
      expect(gw.stats().retries).toBe(2);
    } finally {
      await gw.close();
    }
  });

  it('numbers attempts like Envoy (x-envoy-attempt-count, the client\'s own overwritten)', async () => {
    const live = await startUpstream();
    const gw = await gateway({ endpoints: [`${LOOPBACK}:${await deadPort()}`, live.address], ejectMs: 0 });
    try {
      // Round robin starts on the dead endpoint: the live one gets the second attempt. The cursor moved on both picks,
      // so the next request starts on the dead one again: a second attempt again.
      await send(gw.port, { body: completion(), headers: { ...json, 'x-envoy-attempt-count': '7' } });
      await send(gw.port, { body: completion(), headers: json });
      expect(live.seen.map((r) => r.headers['x-envoy-attempt-count'])).toEqual(['2', '2']);
      expect(live.seen[0].rawHeaders.filter((h) => h.toLowerCase() === 'x-envoy-attempt-count')).toHaveLength(1);
    } finally {
      await gw.close();
      await live.close();
    }
  });
});

// With a consistent hash on the destination Istio writes DefaultConsistentHashPolicy, the default policy without the
// previous_hosts predicate ("When Consistent Hashing is enabled, we don't want to use other hosts during retries":
// istio/istio pilot/pkg/networking/core/route/retry/retry.go @ 1.27.0 L53-57, chosen by route.go L674-678, L696;
// unchanged through 1.30.0). Envoy's ring then answers every retry with the same host (thread_aware_lb_impl.cc
// ThreadAwareLoadBalancerBase::LoadBalancerImpl::chooseHost: nothing rejects it), so the request fails.
describe("consistent-hash retries (Istio's DefaultConsistentHashPolicy, retry.go @ 1.27.0)", () => {
  const keyOn = async (target: string, pool: string[]): Promise<string> => {
    const ring = new RingHash(new EndpointPool(pool.map((a) => parseEndpoint(a) as Endpoint), 0), 1024);
    const key = Array.from({ length: 64 }, (_, i) => `s${i}`).find((k) => ring.order(k)[0].address === target);
    if (!key) throw new Error('no key hashes to the target');
    return key;
  };

  it("retries a dead hashed pod in place, as Envoy with Istio's hash retry policy (no previous_hosts)", async () => {
    const live = await startUpstream();
    const deadPod = `${LOOPBACK}:${await deadPort()}`;
    const key = await keyOn(deadPod, [deadPod, live.address]);
    const gw = await gateway({ endpoints: [deadPod, live.address], hashHeader: 'x-session-id', ejectMs: 0 });
    try {
      const r = await send(gw.port, { headers: { ...json, 'x-session-id': key }, body: completion() });
      expect(r.status).toBe(503);
      expect(live.seen).toHaveLength(0);
      expect(gw.stats().endpoints[deadPod].connectFailures).toBe(3);
    } finally {
      await gw.close();
      await live.close();
    }
  });

  it('keeps the retries in place even when the first failure ejects the pod; later requests walk past it', async () => {
    const live = await startUpstream();
    const deadPod = `${LOOPBACK}:${await deadPort()}`;
    const key = await keyOn(deadPod, [deadPod, live.address]);
    const gw = await gateway({ endpoints: [deadPod, live.address], hashHeader: 'x-session-id', ejectMs: 60_000 });
    try {
      expect((await send(gw.port, { headers: { ...json, 'x-session-id': key }, body: completion() })).status).toBe(503);
      expect(live.seen).toHaveLength(0);
      // The gateway's own passive health (--eject-ms) takes the pod out of the ring for the next request, as an
      // EDS removal or outlier ejection would in Envoy.
      const again = await send(gw.port, { headers: { ...json, 'x-session-id': key }, body: completion() });
      expect(again.status).toBe(200);
      expect(again.json().port).toBe(live.port);
    } finally {
      await gw.close();
      await live.close();
    }
  });
});

describe('resets and clean-up', () => {
  let flaky: http.Server;
  let flakyAddress: string;
  let flakySocket: net.Socket | undefined;

  beforeAll(async () => {
    // Sends headers and part of a body, then drops the connection once the client has that part: the response has
    // reached the client, so a reset is all that can tell it (dropped while the EPP still held the headers, it is a
    // 503, see 'answers 503 "connection termination" ...' above).
    flaky = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: partial\n\n');
        flakySocket = res.socket ?? undefined;
      });
    });
    await new Promise<void>((r) => flaky.listen(0, LOOPBACK, r));
    flakyAddress = `${LOOPBACK}:${(flaky.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((r) => flaky.close(() => r()));
  });

  it('resets the client connection when the upstream dies mid-response (no hang)', async () => {
    const gw = await gateway({ endpoints: [flakyAddress], extProc: `${LOOPBACK}:${epp.port}` });
    try {
      const outcome = await new Promise<string>((resolve) => {
        const req = http.request({ host: LOOPBACK, port: gw.port, method: 'POST', path: '/v1/x', headers: json, agent: false }, (res) => {
          res.on('data', () => flakySocket?.destroy());
          res.on('end', () => resolve('end'));
          res.on('aborted', () => resolve('aborted'));
          res.on('error', () => resolve('aborted'));
        });
        req.on('error', () => resolve('aborted'));
        req.end(completion());
      });
      expect(outcome).toBe('aborted');
      await waitFor(() => gw.stats().inFlight === 0);
      expect(gw.stats().aborted).toBe(1);
    } finally {
      await gw.close();
    }
  });

  // Found by the chaos soak: a streaming request whose pod died before its first token (queued, or prefilling) left
  // the client a reset with no status, because Node holds a written head until the first body byte. Envoy's HTTP/1
  // codec flushes the head as it encodes it (StreamEncoderImpl::encodeHeadersBase -> flushOutput(),
  // source/common/http/http1/codec_impl.cc @ v1.35.0), so the client has the 200 and then sees the reset.
  it('passes the response head on before any body byte, so a pod dying before its first token is a 200 then a reset', async () => {
    const { pod, socket: podSocket } = await headOnlyPod();
    const gw = await gateway({ endpoints: [`${LOOPBACK}:${(pod.address() as AddressInfo).port}`], ejectMs: 0 });
    try {
      let head: number | undefined;
      const outcome = new Promise<string>((resolve) => {
        const req = http.request({ host: LOOPBACK, port: gw.port, method: 'POST', path: '/v1/x', headers: json, agent: false }, (res) => {
          head = res.statusCode;
          res.on('data', () => undefined);
          res.on('end', () => resolve('end'));
          res.on('aborted', () => resolve('aborted'));
          res.on('error', () => resolve('aborted'));
        });
        req.on('error', (e) => resolve(`no response: ${e.message}`));
        req.end(completion());
      });
      await waitFor(() => head !== undefined, 'the response head at the client', { limitMs: 10_000 }).catch(() => undefined);
      expect(head).toBe(200);
      podSocket()!.destroy();
      expect(await outcome).toBe('aborted');
    } finally {
      await gw.close();
      pod.closeAllConnections();
      await new Promise((resolve) => pod.close(resolve));
    }
  });

  // The stream is closed the same way (END_STREAM, then RST) whether the exchange completed or not (Filter::onDestroy,
  // envoyproxy/envoy source/extensions/filters/http/ext_proc/ext_proc.cc @ v1.35.0 L667-701). With response bodies
  // NONE the EPP cannot tell an abort from a completion (it releases on the half-close it sees first); with response
  // bodies FULL_DUPLEX_STREAMED it never saw the end of the body, so it releases the ticket as cancelled.
  it.each([
    ['NONE', {}, 'completed'],
    ['FULL_DUPLEX_STREAMED', { responseBodyMode: 'full-duplex', processingModeScope: 'vhost' }, 'cancelled'],
  ] as const)('aborts the upstream request and closes the EPP stream when the client goes away (response body %s)', async (_mode, extra, outcome) => {
    const gw = await gateway({ endpoints: [ups[0].address], extProc: `${LOOPBACK}:${epp.port}`, ...extra });
    try {
      const releases = director.releases.length;
      const tickets = director.seq;
      await new Promise<void>((resolve) => {
        const req = http.request({ host: LOOPBACK, port: gw.port, method: 'POST', path: '/sse?n=5', headers: json, agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
        req.end(completion());
      });
      await waitFor(() => gw.stats().inFlight === 0);
      expect(gw.stats().aborted).toBe(1);
      await waitFor(() => director.releases.length === releases + (director.seq - tickets));
      expect(director.releases.at(-1)?.outcome).toBe(outcome);
      await waitFor(() => epp.activeStreams() === 0);
    } finally {
      await gw.close();
    }
  });
});

describe('gateway endpoints', () => {
  it('serves /healthz and /gateway/stats itself', async () => {
    const gw = await gateway({ endpoints: [ups[0].address] });
    try {
      await send(gw.port, { body: completion(), headers: json });
      const h = await send(gw.port, { method: 'GET', path: '/healthz' });
      expect(h.status).toBe(200);
      expect(h.json()).toEqual({ status: 'ok' });
      const s = await send(gw.port, { method: 'GET', path: '/gateway/stats' });
      expect(s.status).toBe(200);
      expect(s.json()).toMatchObject({
        requests: 1,
        completed: 1,
        fallbacks: 1,
        responsesByStatus: { 200: 1 },
        endpoints: { [ups[0].address]: { served: 1 } },
        extProc: { target: null, envoySemantics: '1.35.0', requestBodyMode: 'BUFFERED', responseBodyMode: 'NONE', responseTrailerMode: 'SEND' },
        fallbackPolicy: 'round_robin',
      });
      expect((await send(gw.port, { method: 'POST', path: '/healthz' })).status).toBe(405);
    } finally {
      await gw.close();
    }
  });

  it('lets an in-flight request finish on close() within the grace period', async () => {
    const gw = await gateway({ endpoints: [ups[1].address], shutdownGraceMs: 10_000 });
    let text = '';
    const done = new Promise<number>((resolve, reject) => {
      const req = http.request({ host: LOOPBACK, port: gw.port, method: 'POST', path: '/sse?n=2', headers: json, agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(completion());
    });
    await waitFor(() => text.includes('"i":0'));
    const closed = gw.close();
    ups[1].gate.open();
    expect(await done).toBe(200);
    await closed;
    expect(text).toContain('[DONE]');
  });
});

// Messages Envoy's HTTP/1 codec refuses (ServerConnectionImpl::sendProtocolError, `source/common/http/http1/codec_impl.cc`
// @ v1.35.0): the HCM's local reply with the code's name as a text body, the HCM's `server` header, connection closed.
// A Host-less request passes the codec and is the HCM's `missing_host_header` 400, no body (ActiveStream::decodeHeaders,
// `source/common/http/conn_manager_impl.cc` @ v1.35.0).
describe('malformed requests, answered as Envoy answers them', () => {
  const raw = (port: number, request: string, endAfter = false) => new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, LOOPBACK, () => socket.write(request));
    let out = '';
    socket.on('data', (d) => {
      out += d.toString('latin1');
      // A kept-alive connection: two answers read, then closed by the test.
      if (endAfter && (out.match(/HTTP\/1\.1 /g) ?? []).length === 2 && /\r\n\r\n[^]*\r\n\r\n/.test(out)) socket.end();
    });
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
  });
  const expectCodecError = (answer: string): void => {
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    const head = answer.slice(0, answer.indexOf('\r\n\r\n') + 2);
    for (const line of ['content-length: 11', 'content-type: text/plain', 'server: istio-envoy', 'connection: close']) {
      expect(head).toContain(`\r\n${line}\r\n`);
    }
    expect(answer.slice(head.length + 2)).toBe('Bad Request');
  };

  it.each([
    ['Content-Length beside chunked Transfer-Encoding (allow_chunked_length false)', 'POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['a header line without a colon', 'GET /v1/models HTTP/1.1\r\nHost: a\r\nnot-a-header\r\n\r\n'],
    ['a request line with an invalid method', 'G@T /v1/models HTTP/1.1\r\nHost: a\r\n\r\n'],
  ])('%s: 400 "Bad Request" with the HCM\'s headers, connection closed, nothing forwarded', async (_name, request) => {
    const gw = await gateway({ endpoints: [ups[0].address] });
    try {
      const before = ups[0].seen.length;
      expectCodecError(await raw(gw.port, request));
      expect(ups[0].seen.length).toBe(before);
      expect(gw.stats().responsesByStatus['400']).toBe(1);
    } finally {
      await gw.close();
    }
  });

  it.each([
    ['Transfer-Encoding other than chunked (ConnectionImpl::onHeadersCompleteImpl: error_code_ NotImplemented, InvalidTransferEncoding)', 'Transfer-Encoding: gzip', 501, 'Not Implemented'],
    ['"gzip, chunked" (the whole value must be chunked, EqualsIgnoreCase)', 'Transfer-Encoding: gzip, chunked', 501, 'Not Implemented'],
  ])('%s: %s is answered at once, nothing forwarded', async (_name, header, status, text) => {
    const gw = await gateway({ endpoints: [ups[0].address] });
    try {
      const before = ups[0].seen.length;
      const answer = await raw(gw.port, `POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n${header}\r\n\r\n{"model":"m","prompt":"x"}`);
      expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} ${text}\r\n`));
      expect(answer).toMatch(/\r\nserver: istio-envoy\r\n/);
      expect(answer.endsWith(`\r\n\r\n${text}`)).toBe(true);
      expect(ups[0].seen.length).toBe(before);
    } finally {
      await gw.close();
    }
  });

  it.each(['buffered', 'full-duplex'] as const)('a body the codec refuses after its headers (a chunk size that overflows) is answered 400 at once, as ServerConnectionImpl::sendProtocolError answers while no response started (%s)', async (processingMode) => {
    const up = await startUpstream();
    const epp = await startEpp(new TestDirector([up.address]));
    const gw = await gateway({ endpoints: [up.address], extProc: `${LOOPBACK}:${epp.port}`, processingMode, failureModeAllow: processingMode === 'buffered' });
    try {
      // Before the fix the gateway held the connection until the HCM's 60 s request_timeout: past this test's timeout.
      expectCodecError(await raw(gw.port, 'POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}\r\n0\r\n\r\n'));
      expect(up.seen.length).toBe(0);
    } finally {
      await gw.close();
      await epp.stop();
      await up.close();
    }
  });

  it.each(['HTTP/1.2', 'HTTP/2.0'])('a %s request line is answered 426 Upgrade Required, as HTTP/1.0 is (checkProtocolVersion: "anything which is not HTTP/1.1")', async (version) => {
    const gw = await gateway({ endpoints: [ups[0].address] });
    try {
      const before = ups[0].seen.length;
      const answer = await raw(gw.port, `GET /v1/models ${version}\r\nHost: a\r\n\r\n`);
      expect(answer).toMatch(/^HTTP\/1\.1 426 Upgrade Required\r\n/);
      expect(answer).toMatch(/\r\n\r\nUpgrade Required$/);
      expect(ups[0].seen.length).toBe(before);
    } finally {
      await gw.close();
    }
  });

  it('an Expect other than 100-continue goes on with the request (the HCM acts only on 100-continue: conn_manager_impl.cc ActiveStream::decodeHeaders), never a 417 of its own', async () => {
    const gw = await gateway({ endpoints: [ups[0].address] });
    try {
      const answer = await raw(gw.port, 'GET /v1/models HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nConnection: close\r\n\r\n');
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    } finally {
      await gw.close();
    }
  });

  it('a malformed request pipelined behind a response in flight is answered after that response, as Envoy\'s codec parses one request at a time', async () => {
    // An upstream of its own: the shared ones' gates may hold waiters of streams earlier tests cut.
    const up = await startUpstream();
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const socket = net.connect(gw.port, LOOPBACK);
      let out = '';
      socket.on('data', (d) => { out += d.toString('latin1'); });
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.write('GET /sse?n=2 HTTP/1.1\r\nHost: a\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      await waitFor(() => out.includes('"i":0'));
      expect(out).not.toContain('400 Bad Request');
      up.gate.open();
      await closed;
      const at = out.indexOf('HTTP/1.1 400 Bad Request');
      expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      // The whole SSE response (its chunked end included) comes first, then the 400.
      expect(at).toBeGreaterThan(out.indexOf('"i":1'));
      expect(out.slice(0, at)).toMatch(/\r\n0\r\n\r\n$/);
      expectCodecError(out.slice(at));
    } finally {
      await gw.close();
      await up.close();
    }
  });

  it('an absolute-form target without Host is routed with the URL\'s authority (allow_absolute_url, on by default)', async () => {
    const gw = await gateway({ endpoints: [ups[0].address] });
    try {
      const answer = await raw(gw.port, 'GET http://llm.example/v1/models HTTP/1.1\r\nConnection: close\r\n\r\n');
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    } finally {
      await gw.close();
    }
  });

  it('a request without Host: 400 with no body and the HCM\'s headers, nothing forwarded, the connection kept for the next request', async () => {
    const gw = await gateway({ endpoints: [ups[0].address] });
    try {
      const before = ups[0].seen.length;
      const answer = await raw(gw.port, 'GET /v1/models HTTP/1.1\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: a\r\n\r\n', true);
      const [first, second] = answer.split(/(?=HTTP\/1\.1 )/);
      expect(first).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(first).toMatch(/\r\ncontent-length: 0\r\n/i);
      expect(first).toMatch(/\r\nserver: istio-envoy\r\n/i);
      expect(first).not.toMatch(/\r\nconnection: close\r\n/i);
      expect(first).toMatch(/\r\n\r\n$/);
      expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(ups[0].seen.length).toBe(before + 1);
    } finally {
      await gw.close();
    }
  });
});

// Envoy's HTTP/1 codec without accept_http_10, which Istio leaves off on gateways (PILOT_HTTP10 false:
// pilot/pkg/networking/core/gateway.go @ 1.27.0 L700-703; codec_impl.cc ServerConnectionImpl::checkProtocolVersion).
describe('HTTP/1.0', () => {
  const raw = (port: number, request: string) => new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, LOOPBACK, () => socket.write(request));
    let out = '';
    socket.on('data', (d) => { out += d.toString('latin1'); });
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
  });

  it('is answered 426 Upgrade Required and the connection closed, as Istio\'s gateway does; --accept-http-10 serves it', async () => {
    const gw = await gateway({ endpoints: [ups[0].address] });
    try {
      const before = ups[0].seen.length;
      const answer = await raw(gw.port, 'GET /v1/models HTTP/1.0\r\nHost: llm-d.demo.local\r\n\r\n');
      expect(answer).toMatch(/^HTTP\/1\.1 426 Upgrade Required\r\n/);
      expect(answer).toMatch(/\r\n\r\nUpgrade Required$/);
      expect(answer).toMatch(/\r\nserver: istio-envoy\r\n/);
      expect(ups[0].seen.length).toBe(before);
    } finally {
      await gw.close();
    }
    const lenient = await gateway({ endpoints: [ups[0].address], acceptHttp10: true });
    try {
      expect(await raw(lenient.port, 'GET /v1/models HTTP/1.0\r\nHost: llm-d.demo.local\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    } finally {
      await lenient.close();
    }
  });
});
