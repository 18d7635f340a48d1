/**
 * Responses stream to the client chunk by chunk: the upstream holds each SSE event after the first until the test
 * has seen the previous one arrive at the client, so a gateway that buffered anything would deadlock (and fail on
 * jest's timeout) instead of passing.
 */
import type { ExtProcServer } from '@kvroute/epp/extproc';
import type { GatewayOptions } from '../src/options';
import { StreamingReply } from './clients';
import { destroyClientAgent, gateway, startEpp, startUpstream, TestDirector, waitFor, type Upstream } from './harness';

// Generous bounds for a shared, loaded machine (no test relies on them for timing).
jest.setTimeout(30_000);

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

/** Response FULL_DUPLEX_STREAMED as an ExtProcPerRoute on the vhost (Envoy 1.35.0 refuses it on the filter). */
const responseDuplex: Partial<GatewayOptions> = { responseBodyMode: 'full-duplex', processingModeScope: 'vhost' };

const variants: [string, () => Partial<GatewayOptions>][] = [
  ['through the EPP (response body FULL_DUPLEX_STREAMED)', () => ({ extProc: `127.0.0.1:${epp.port}`, ...responseDuplex })],
  ['through the EPP with the EnvoyFilter\'s modes (BUFFERED request, response body NONE, trailers SEND)', () => ({ extProc: `127.0.0.1:${epp.port}` })],
  ['with a full-duplex request', () => ({ extProc: `127.0.0.1:${epp.port}`, processingMode: 'full-duplex', processingModeScope: 'vhost' })],
  ['with response headers SKIP', () => ({ extProc: `127.0.0.1:${epp.port}`, responseHeaderMode: 'skip' })],
  ['without an EPP', () => ({})],
];

describe.each(variants)('SSE %s', (_name, extra) => {
  it('delivers each event before the upstream has produced the next one', async () => {
    const gw = await gateway({ endpoints: [up.address], ...extra() });
    try {
      const reply = new StreamingReply(gw.port, '/sse?n=4', '{"model":"m","prompt":"p","stream":true}');
      await reply.until('"i":0');
      // The upstream is still blocked on its gate: the first event reached the client while the response was open.
      expect(reply.ended).toBe(false);
      expect(reply.status).toBe(200);
      expect(reply.headers['content-type']).toBe('text/event-stream');
      expect(reply.headers['x-gateway-destination-endpoint-served']).toBe(up.address);
      for (let i = 1; i < 3; i++) {
        up.gate.open();
        await reply.until(`"i":${i}`);
        expect(reply.ended).toBe(false);
      }
      // The last event is followed by [DONE] and the end at once.
      up.gate.open();
      await reply.done;
      expect(reply.text).toBe([0, 1, 2, 3].map((i) => `data: {"port":${up.port},"i":${i}}\n\n`).join('') + 'data: [DONE]\n\n');
    } finally {
      await gw.close();
    }
  });
});

it('lets the EPP echo every response chunk (it sees data: [DONE] and the end of stream)', async () => {
  const gw = await gateway({ endpoints: [up.address], extProc: `127.0.0.1:${epp.port}`, ...responseDuplex });
  try {
    const sentBefore = gw.stats().extProc.messagesSent;
    const reply = new StreamingReply(gw.port, '/sse?n=2', '{"model":"m","prompt":"p","stream":true}');
    await reply.until('"i":0');
    up.gate.open();
    await reply.done;
    const s = gw.stats();
    // request headers+body (2), response headers (1), three body chunks and the end-of-stream chunk.
    expect(s.extProc.messagesSent - sentBefore).toBeGreaterThanOrEqual(6);
    expect(s.extProc.messagesReceived).toBeGreaterThanOrEqual(s.extProc.messagesSent - 1);
    expect(s.failOpens).toBe(0);
  } finally {
    await gw.close();
  }
});

it.each([
  ['send', 'completed'],
  ['skip', 'cancelled'],
] as const)('with response body mode NONE and header mode %s the EPP releases its ticket as %s', async (headerMode, outcome) => {
  const gw = await gateway({ endpoints: [up.address], extProc: `127.0.0.1:${epp.port}`, responseHeaderMode: headerMode });
  try {
    const before = director.seq;
    const reply = new StreamingReply(gw.port, '/v1/completions', '{"model":"m","prompt":"p"}');
    await reply.done;
    expect(reply.status).toBe(200);
    // The release happens when the EPP processes the half-close, just after the client has its response.
    await waitFor(() => director.releases.length >= director.seq, 'the release');
    expect(director.seq).toBe(before + 1);
    expect(director.releases.at(-1)?.outcome).toBe(outcome);
  } finally {
    await gw.close();
  }
});
