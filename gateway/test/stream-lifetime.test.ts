/**
 * When the gateway closes the ext_proc stream, per Envoy release, and what the close looks like on the wire; against
 * the real EPP (whose in-flight ticket is released when the stream ends) and a scripted server that records the stream
 * events. `EP` = envoyproxy/envoy source/extensions/filters/http/ext_proc; v1.35.0 = 84305a6cb6, v1.37.0 = 6d9bb7d9a8.
 */
import type { ExtProcServer } from '@kvroute/epp/extproc';
import { ENVOY_SEMANTICS_VERSIONS, type EnvoySemanticsVersion } from '../src/envoy-semantics';
import type { GatewayOptions } from '../src/options';
import { isLastAnswer, type LifetimeModes, type LifetimeState } from '../src/stream-lifetime';
import { StreamingReply } from './clients';
import { completion, destroyClientAgent, gateway, send, startEpp, startUpstream, TestDirector, waitFor, type Upstream } from './harness';
import { startScriptedExtProc } from './scripted-ext-proc';

// Generous bounds for a shared, loaded machine (no test relies on them for timing).
jest.setTimeout(30_000);

const EARLY_CLOSE: readonly EnvoySemanticsVersion[] = ['1.37', '1.38'];

let up: Upstream;
let director: TestDirector;
let epp: ExtProcServer;

beforeAll(async () => {
  up = await startUpstream();
  director = new TestDirector([up.address]);
  epp = await startEpp(director);
});

afterAll(async () => {
  await epp.stop();
  await up.close();
  destroyClientAgent();
});

describe('the close is Envoy\'s closeStream: END_STREAM, then RST (source/extensions/filters/common/ext_proc/grpc_client_impl.h ProcessorStreamImpl::close @ v1.35.0 L133-146)', () => {
  it.each(ENVOY_SEMANTICS_VERSIONS)('%s: the EPP sees the half-close, then the cancellation', async (version) => {
    const scripted = await startScriptedExtProc();
    const gw = await gateway({ endpoints: [up.address], extProc: scripted.address, envoySemantics: version });
    try {
      expect((await send(gw.port, { body: completion() })).status).toBe(200);
      await waitFor(() => scripted.streams[0]?.events.includes('cancelled'));
      expect(scripted.streams[0].events).toEqual(['request_headers', 'request_body', 'response_headers', 'end', 'cancelled']);
    } finally {
      await gw.close();
      await scripted.stop();
    }
  });
});

describe('stream lifetime during a streaming response (response body NONE)', () => {
  const cases = ENVOY_SEMANTICS_VERSIONS.flatMap((v) => (['send', 'skip'] as const).map((t) => [v, t, EARLY_CLOSE.includes(v) && t === 'skip'] as const));
  it.each(cases)('%s, response trailers %s: stream closed at the response-headers answer: %s '
    + '(onDestroy @ v1.35.0 L667-701; closeGrpcStreamIfLastRespReceived @ v1.37.0 L1721-1772, isLastResponseAfterHeaderResp processor_state.cc L652-677)',
  async (version, trailers, closedEarly) => {
    const gw = await gateway({ endpoints: [up.address], extProc: `127.0.0.1:${epp.port}`, envoySemantics: version, responseTrailerMode: trailers });
    try {
      const releases = director.releases.length;
      const reply = new StreamingReply(gw.port, '/sse?n=2', completion());
      await reply.until('"i":0');
      // The response is still streaming (the upstream waits on its gate).
      expect(reply.ended).toBe(false);
      expect(gw.stats().extProc.openStreams).toBe(closedEarly ? 0 : 1);
      if (closedEarly) {
        // The EPP learns the request is over at the first byte, not at its end.
        await waitFor(() => director.releases.length === releases + 1);
        expect(reply.ended).toBe(false);
      } else {
        expect(director.releases.length).toBe(releases);
      }
      up.gate.open();
      await reply.done;
      await waitFor(() => director.releases.length === releases + 1);
      expect(director.releases.at(-1)?.outcome).toBe('completed');
    } finally {
      await gw.close();
    }
  });

  it.each(ENVOY_SEMANTICS_VERSIONS)('%s, nothing of the response to process: closed when the upstream\'s response headers arrive on >= 1.37 (encodeHeaders @ v1.37.0 L1373-1377)', async (version) => {
    const scripted = await startScriptedExtProc();
    const modes: Partial<GatewayOptions> = { responseHeaderMode: 'skip', responseTrailerMode: 'skip' };
    const gw = await gateway({ endpoints: [up.address], extProc: scripted.address, envoySemantics: version, ...modes });
    try {
      const reply = new StreamingReply(gw.port, '/sse?n=2', completion());
      await reply.until('"i":0');
      expect(gw.stats().extProc.openStreams).toBe(EARLY_CLOSE.includes(version) ? 0 : 1);
      up.gate.open();
      await reply.done;
      await waitFor(() => scripted.streams[0]?.events.includes('cancelled'));
      expect(scripted.streams[0].events).toEqual(['request_headers', 'request_body', 'end', 'cancelled']);
    } finally {
      await gw.close();
      await scripted.stop();
    }
  });
});

describe('which answer is the last on >= 1.37 (EP/ext_proc.cc closeGrpcStreamIfLastRespReceived @ v1.37.0 L1721-1772)', () => {
  const modes: LifetimeModes = { requestFullDuplex: false, requestTrailersSend: false, responseHeadersSend: true, responseFullDuplex: false, responseTrailersSend: true };
  const state: LifetimeState = {
    requestHasNoBody: false, requestTrailersReceived: false, requestBodyEndOfStream: false,
    responseHasNoBody: false, responseCompleteWithoutTrailers: false, responseBodyEndOfStream: false,
  };

  it('response headers, trailers SEND: only once the whole body is in without trailers, or there is no body (isLastResponseAfterHeaderResp L652-677)', () => {
    expect(isLastAnswer('response_headers', modes, state)).toBe(false);
    expect(isLastAnswer('response_headers', modes, { ...state, responseCompleteWithoutTrailers: true })).toBe(true);
    expect(isLastAnswer('response_headers', modes, { ...state, responseHasNoBody: true })).toBe(true);
    expect(isLastAnswer('response_headers', { ...modes, responseTrailersSend: false }, state)).toBe(true);
    expect(isLastAnswer('response_trailers', modes, state)).toBe(true);
  });

  it('request answers close only when the response needs nothing; a BUFFERED body answer never does (eosSeenInBody L1692-1716)', () => {
    const none: LifetimeModes = { ...modes, responseHeadersSend: false, responseTrailersSend: false };
    expect(isLastAnswer('request_headers', modes, { ...state, requestHasNoBody: true })).toBe(false);
    expect(isLastAnswer('request_headers', none, { ...state, requestHasNoBody: true })).toBe(true);
    expect(isLastAnswer('request_body', none, state)).toBe(false);
    expect(isLastAnswer('request_body', { ...none, requestFullDuplex: true }, { ...state, requestBodyEndOfStream: true })).toBe(true);
    expect(isLastAnswer('request_trailers', none, state)).toBe(true);
  });
});
