/**
 * What happens when the EPP lets a request down with the EnvoyFilter's modes (BUFFERED request bodies, response
 * bodies NONE): unreachable, silent past the message timeout, killed mid-request (request upload or response stream),
 * restarted. With failure_mode_allow the request is served by the fallback policy (round robin or the session ring
 * hash) without losing a byte, on every Envoy release; without it the client gets Envoy's 500/504. What differs
 * between releases (FULL_DUPLEX_STREAMED) is in envoy-versions.test.ts.
 */
import * as grpc from '@grpc/grpc-js';
import * as http from 'http';
import type { ExtProcServer } from '@kvroute/epp/extproc';
import { ENVOY_SEMANTICS_VERSIONS } from '../src/envoy-semantics';
import {
  collectLogs,
  completion,
  deadPort,
  destroyClientAgent,
  gateway,
  LOOPBACK,
  pseudoRandom,
  send,
  sha256,
  sleep,
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

beforeAll(async () => {
  ups = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
});

afterAll(async () => {
  await Promise.all(ups.map((u) => u.close()));
  destroyClientAgent();
});

const json = { 'content-type': 'application/json' };

describe('EPP unreachable (nothing listening)', () => {
  it('serves every request round robin over the pool and counts the fail-opens', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${await deadPort()}` });
    try {
      const ports: number[] = [];
      for (let i = 0; i < 9; i++) {
        const r = await send(gw.port, { body: completion(`q${i}`), headers: json });
        expect(r.status).toBe(200);
        ports.push(r.json().port);
      }
      const rr = ups.map((u) => u.port);
      expect(ports).toEqual([...rr, ...rr, ...rr]);
      // Concurrent ones too, with bodies of all sizes, none lost.
      const bodies = [0, 10, 70_000, 300_000].map((n) => pseudoRandom(n, n + 1));
      const replies = await Promise.all(bodies.map((b) => send(gw.port, { body: b, headers: { 'content-length': String(b.length) } })));
      replies.forEach((r, i) => {
        expect(r.status).toBe(200);
        expect(r.json()).toMatchObject({ bodyBytes: bodies[i].length, sha256: sha256(bodies[i]) });
      });
      const s = gw.stats();
      expect(s.failOpens).toBe(13);
      expect(s.failOpenReasons.unavailable).toBe(13);
      expect(s.fallbacks).toBe(13);
      expect(s.errorsByStatus).toEqual({});
    } finally {
      await gw.close();
    }
  });

  it('answers 500 instead when failure_mode_allow is false', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${await deadPort()}`, failureModeAllow: false });
    try {
      const r = await send(gw.port, { body: completion(), headers: json });
      expect(r.status).toBe(500);
      // Envoy's ImmediateResponse for a gRPC error carries details but no body (onGrpcError @ v1.35.0 L1648-1673).
      expect(r.body.length).toBe(0);
      expect(r.headers['content-length']).toBe('0');
      const g = await send(gw.port, { method: 'GET', path: '/v1/x' });
      expect(g.status).toBe(500);
      expect(gw.stats().failClosed).toBe(2);
      // The bypassed models route never needs the EPP.
      expect((await send(gw.port, { method: 'GET', path: '/v1/models' })).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});

describe('EPP that never answers', () => {
  let director: TestDirector;
  let epp: ExtProcServer;

  beforeAll(async () => {
    director = new TestDirector(ups.map((u) => u.address));
    epp = await startEpp(director);
  });

  afterAll(async () => {
    await epp.stop();
  });

  // BUFFERED is not FULL_DUPLEX_STREAMED, so Envoy times the body message (ProcessorState::onStartProcessorCall,
  // envoyproxy/envoy source/extensions/filters/http/ext_proc/processor_state.cc @ v1.35.0 L21-38) and fails open with
  // the body the filter manager still holds (ext_proc.cc onMessageTimeout L1686-1713, handleDataBufferedMode L761-786).
  it.each(ENVOY_SEMANTICS_VERSIONS)('serves the request after the message timeout, body intact (BUFFERED, Envoy %s)', async (version) => {
    // 1 s (the EnvoyFilter's): the 1.2 MB body message must reach the EPP whole before the timer fires, which 300 ms did
    // not always allow on a loaded machine.
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, messageTimeoutMs: 1000, envoySemantics: version });
    try {
      const body = pseudoRandom(1_200_000, 3);
      const seenBefore = director.requests.length;
      const started = Date.now();
      const r = await send(gw.port, { body, headers: { 'content-length': String(body.length), 'x-test-action': 'hang' } });
      const elapsed = Date.now() - started;
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ bodyBytes: body.length, sha256: sha256(body) });
      // The EPP did get the whole body before it went silent (this request's: the earlier versions' had the same size).
      expect(director.requests.length).toBe(seenBefore + 1);
      expect(director.requests.at(-1)?.body?.length).toBe(body.length);
      expect(elapsed).toBeGreaterThanOrEqual(990);
      expect(elapsed).toBeLessThan(10_000);
      expect(gw.stats().failOpenReasons.timeout).toBe(1);
    } finally {
      await gw.close();
    }
  });

  // The EPP's flow control asks for more time (override_message_timeout) before it answers late. Envoy honours it only
  // when 1 ms <= it <= max_message_timeout (0 by default) and its timer runs (`ext_proc.cc` onNewTimeout,
  // `processor_state.cc` restartMessageTimer @ v1.35.0); the timer then restarts from the override's arrival.
  const extend = (extendMs: number, answerAfterMs: number) => ({
    ...json, 'x-test-action': 'extend', 'x-test-extend-ms': String(extendMs), 'x-test-answer-after-ms': String(answerAfterMs), 'x-test-pick': ups[1].address,
  });

  it.each([
    ['no max_message_timeout (Envoy\'s default 0)', 0, 3000],
    ['an override above max_message_timeout', 1000, 3000],
  ])('ignores the override with %s: fails open at message_timeout', async (_name, maxMessageTimeoutMs, extendMs) => {
    // message_timeout 1 s: the override must reach the gateway while its timer runs to be counted as ignored (at 300 ms a
    // loaded machine could fire it first); the answer, 1.5 s after the EPP got the message, still comes after it.
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, messageTimeoutMs: 1000, maxMessageTimeoutMs });
    try {
      const r = await send(gw.port, { body: completion(), headers: extend(extendMs, 1500) });
      expect(r.status).toBe(200);
      expect(r.json().headers['x-picked-by']).toBeUndefined();
      expect(gw.stats().failOpenReasons.timeout).toBe(1);
      expect(gw.envoyStats()).toMatchObject({ override_message_timeout_ignored: 1, override_message_timeout_received: 0, message_timeouts: 1 });
    } finally {
      await gw.close();
    }
  });

  // onNewTimeout reads the override in whole milliseconds (DurationUtil::durationToMillisecondsNoThrow) and ignores one
  // below 1 ms (`min_timeout_ms = 1`, ext_proc.cc @ v1.35.0): half a millisecond is 0 ms, ignored and counted so, and the
  // configured timer keeps running; the answer right behind it is taken.
  it('ignores an override under 1 ms (0.5 ms reads as 0 ms), counted as ignored; the answer behind it is taken', async () => {
    const scripted = await startScriptedExtProc({
      respond: (kind, _msg, plain) => (kind === 'request_headers' ? [{ override_message_timeout: { seconds: 0, nanos: 500_000 } }, plain] : undefined),
    });
    const gw = await gateway({ endpoints: [ups[0].address], extProc: scripted.address, messageTimeoutMs: 1000, maxMessageTimeoutMs: 5000 });
    try {
      const r = await send(gw.port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(gw.stats().failOpens).toBe(0);
      expect(gw.envoyStats()).toMatchObject({ override_message_timeout_ignored: 1, override_message_timeout_received: 0, message_timeouts: 0 });
    } finally {
      await gw.close();
      await scripted.stop();
    }
  });

  it('honours an override within max_message_timeout: the late pick is taken, no timeout', async () => {
    // message_timeout 1 s (the EnvoyFilter's): a shorter one could fire on a loaded machine before the override is read.
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, messageTimeoutMs: 1000, maxMessageTimeoutMs: 5000 });
    try {
      const r = await send(gw.port, { body: completion(), headers: extend(5000, 2000) });
      expect(r.status).toBe(200);
      expect(r.json().headers['x-picked-by']).toBe('test-director');
      expect(r.json().port).toBe(ups[1].port);
      expect(gw.stats().failOpenReasons.timeout).toBe(0);
      expect(gw.envoyStats()).toMatchObject({ override_message_timeout_received: 1, override_message_timeout_ignored: 0, message_timeouts: 0 });
    } finally {
      await gw.close();
    }
  });

  it('times the extended answer from the override: an EPP silent past it still fails open', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, messageTimeoutMs: 1000, maxMessageTimeoutMs: 5000 });
    try {
      const started = Date.now();
      const r = await send(gw.port, { body: completion(), headers: extend(2500, 8000) });
      expect(r.status).toBe(200);
      expect(r.json().headers['x-picked-by']).toBeUndefined();
      expect(Date.now() - started).toBeGreaterThanOrEqual(2400);
      expect(gw.stats().failOpenReasons.timeout).toBe(1);
      expect(gw.envoyStats()).toMatchObject({ override_message_timeout_received: 1, message_timeouts: 1 });
    } finally {
      await gw.close();
    }
  });

  it('answers an empty 504 on a message timeout when failure_mode_allow is false (onMessageTimeout @ v1.35.0 L1686-1713)', async () => {
    const logs = collectLogs();
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, messageTimeoutMs: 200, failureModeAllow: false, logger: logs });
    try {
      const r = await send(gw.port, { body: completion(), headers: { ...json, 'x-test-action': 'hang' } });
      expect(r.status).toBe(504);
      expect(r.body.length).toBe(0);
      expect(logs.lines.map((l) => l.fields?.details)).toContain('ext_proc_error_per-message_timeout_exceeded');
    } finally {
      await gw.close();
    }
  });
});

// An EPP that ends its stream with status OK is not a failure: onGrpcClose ("Successful close. We can ignore the stream
// for the rest of our request and response processing") closes the stream and continues the request, with no
// failure_mode_allow check (`ext_proc.cc` @ v1.35.0 L1675-1684), so even a fail-closed filter serves it by the fallback.
describe('EPP that ends the stream with OK', () => {
  it('is not a failure: the request goes on to the fallback policy even with failure_mode_allow false (onGrpcClose @ v1.35.0)', async () => {
    const epp = await startScriptedExtProc({ failOn: { message: 'request_headers', code: grpc.status.OK } });
    const gw = await gateway({ endpoints: [ups[0].address], extProc: epp.address, failureModeAllow: false });
    try {
      const r = await send(gw.port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(r.json().port).toBe(ups[0].port);
      expect(epp.streams[0].events.slice(0, 2)).toEqual(['request_headers', 'failed']);
      expect(gw.stats().failOpenReasons).toMatchObject({ closed: 1 });
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});

describe('EPP killed mid-run and restarted', () => {
  it('fails open for requests in flight and later ones, and honours picks again once it is back', async () => {
    const director = new TestDirector([ups[2].address]);
    let epp = await startEpp(director);
    const eppPort = epp.port;
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${eppPort}` });
    try {
      for (let i = 0; i < 3; i++) expect((await send(gw.port, { body: completion(), headers: json })).json().port).toBe(ups[2].port);
      expect(gw.stats().picksHonoured).toBe(3);

      // One request waits inside the EPP when it dies.
      const inFlight = send(gw.port, { body: completion(), headers: { ...json, 'x-test-action': 'hang' } });
      await waitFor(() => director.requests.length === 4);
      await epp.stop(0);
      expect((await inFlight).status).toBe(200);

      const during = await Promise.all([1, 2, 3, 4, 5, 6].map(() => send(gw.port, { body: completion(), headers: json })));
      expect(during.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
      const s1 = gw.stats();
      expect(s1.failOpens).toBe(7);
      expect(s1.picksHonoured).toBe(3);

      epp = await startEpp(director, eppPort);
      // The channel reconnects within its (1 s max) backoff; bounded retries, not a timed assertion.
      let honoured = false;
      for (let i = 0; i < 100 && !honoured; i++) {
        const r = await send(gw.port, { body: completion(), headers: json });
        expect(r.status).toBe(200);
        honoured = r.json().port === ups[2].port && gw.stats().picksHonoured > 3;
        if (!honoured) await sleep(50);
      }
      expect(honoured).toBe(true);
      for (let i = 0; i < 3; i++) expect((await send(gw.port, { body: completion(), headers: json })).json().port).toBe(ups[2].port);
      expect(gw.stats().errorsByStatus).toEqual({});
    } finally {
      await gw.close();
      await epp.stop();
    }
  });

  it('fails open with the whole body when the EPP dies mid-upload (BUFFERED: the filter manager holds the body)', async () => {
    const director = new TestDirector([ups[0].address]);
    const epp = await startEpp(director);
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}` });
    try {
      const body = pseudoRandom(600_000, 11);
      const pieces = [0, 1, 2, 3, 4, 5].map((i) => body.subarray(i * 100_000, (i + 1) * 100_000));
      const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ host: LOOPBACK, port: gw.port, method: 'POST', path: '/v1/completions', agent: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        for (const p of pieces.slice(0, 3)) req.write(p);
        void (async () => {
          // The headers went to the EPP and were answered; then it dies; then the client sends the rest.
          await waitFor(() => gw.stats().extProc.messagesReceived >= 1);
          await epp.stop(0);
          await waitFor(() => gw.stats().failOpens === 1);
          for (const p of pieces.slice(3)) req.write(p);
          req.end();
        })().catch(reject);
      });
      const r = await reply;
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ bodyBytes: body.length, sha256: sha256(body) });
      expect(gw.stats()).toMatchObject({ lossyFailOpens: 0, failOpenBytesDropped: 0 });
    } finally {
      await gw.close();
      await epp.stop();
    }
  });

  // Response bodies NONE: nothing of the response is at the EPP, so the response goes on untouched (onGrpcError →
  // onGrpcClose → clearAsyncState, ext_proc.cc @ v1.35.0 L1648-1684).
  it('completes a streaming response when the EPP dies during it (response body NONE)', async () => {
    const director = new TestDirector([ups[1].address]);
    const epp = await startEpp(director);
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}` });
    try {
      let text = '';
      let ended = false;
      const done = new Promise<void>((resolve, reject) => {
        const req = http.request({ host: LOOPBACK, port: gw.port, method: 'POST', path: '/sse?n=3', headers: json, agent: false }, (res) => {
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            ended = true;
            resolve();
          });
        });
        req.on('error', reject);
        req.end(completion());
      });
      await waitFor(() => text.includes('"i":0'));
      await epp.stop(0);
      await waitFor(() => gw.stats().failOpens === 1);
      ups[1].gate.open();
      ups[1].gate.open();
      await done;
      expect(ended).toBe(true);
      expect(text).toBe([0, 1, 2].map((i) => `data: {"port":${ups[1].port},"i":${i}}\n\n`).join('') + 'data: [DONE]\n\n');
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});

describe('session hash fallback (--hash-header x-session-id)', () => {
  it('keeps each session on one endpoint while the EPP is down, and spreads sessions', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${await deadPort()}`, hashHeader: 'x-session-id' });
    try {
      const homes = new Map<string, Set<number>>();
      for (let round = 0; round < 4; round++) {
        for (let s = 0; s < 12; s++) {
          const session = `session-${s}`;
          const r = await send(gw.port, { body: completion(), headers: { ...json, 'x-session-id': session } });
          expect(r.status).toBe(200);
          if (!homes.has(session)) homes.set(session, new Set());
          homes.get(session)?.add(r.json().port);
        }
      }
      for (const ports of homes.values()) expect(ports.size).toBe(1);
      const used = new Set([...homes.values()].map((p) => [...p][0]));
      expect(used.size).toBeGreaterThanOrEqual(2);
      expect(gw.stats().fallbackPolicy).toBe('ring_hash');
    } finally {
      await gw.close();
    }
  });

  it('matches the session on the same endpoint across gateways (the ring depends only on the pool)', async () => {
    const a = await gateway({ endpoints: ups.map((u) => u.address), hashHeader: 'x-session-id' });
    const b = await gateway({ endpoints: ups.map((u) => u.address), hashHeader: 'x-session-id' });
    try {
      for (let s = 0; s < 6; s++) {
        const h = { ...json, 'x-session-id': `abc-${s}` };
        const ra = await send(a.port, { body: completion(), headers: h });
        const rb = await send(b.port, { body: completion(), headers: h });
        expect(ra.json().port).toBe(rb.json().port);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});
