/**
 * The gateway as each Envoy release behaves (`--envoy-semantics`), against the real EPP ext_proc server or a scripted
 * one that fails on cue, over real sockets. Test names cite the envoyproxy/envoy source each behaviour mirrors
 * (`EP` = source/extensions/filters/http/ext_proc; v1.35.0 = 84305a6cb6, v1.36.0 = 63ee0dc79d).
 */
import * as grpc from '@grpc/grpc-js';
import { ENVOY_SEMANTICS_VERSIONS, type EnvoySemanticsVersion } from '../src/envoy-semantics';
import { GatewayConfigError, type GatewayOptions } from '../src/options';
import { StreamingReply } from './clients';
import {
  collectLogs, completion, deadPort, destroyClientAgent, gateway, LOOPBACK, pseudoRandom, send, sha256, startEpp, startUpstream, TestDirector, waitFor,
  type Upstream,
} from './harness';
import { startScriptedExtProc, type Script } from './scripted-ext-proc';

// Generous bounds for a shared, loaded machine (no test relies on them for timing).
jest.setTimeout(30_000);

const LOSSY = ['1.35.0', '1.35'] as const;
const LOCAL_REPLY = ['1.36', '1.37', '1.38'] as const;
/** FULL_DUPLEX_STREAMED request bodies as the EnvoyFilter configures them (vhost ExtProcPerRoute): loads on every version. */
const DUPLEX: Partial<GatewayOptions> = { processingMode: 'full-duplex', processingModeScope: 'vhost' };
const json = { 'content-type': 'application/json' };

let up: Upstream;

beforeAll(async () => {
  up = await startUpstream();
});

afterAll(async () => {
  await up.close();
  destroyClientAgent();
});

/** The gateway behaving as `version`, with an EPP at `extProc`. */
function gatewayAs(version: EnvoySemanticsVersion, extProc: string, extra: Partial<GatewayOptions> = {}): ReturnType<typeof gateway> {
  return gateway({ endpoints: [up.address], extProc, envoySemantics: version, ...extra });
}

async function rejection(extra: Partial<GatewayOptions>): Promise<GatewayConfigError | null> {
  try {
    const gw = await gateway({ endpoints: [up.address], extProc: `${LOOPBACK}:1`, ...extra });
    await gw.close();
    return null;
  } catch (err) {
    if (err instanceof GatewayConfigError) return err;
    throw err;
  }
}

describe('config: EP/config.cc verifyProcessingModeConfig', () => {
  const FAIL_OPEN = 'If the ext_proc filter has either the request_body_mode or the response_body_mode set to FULL_DUPLEX_STREAMED, '
    + 'then the failure_mode_allow has to be left as false';

  it.each([['processingMode', 'full-duplex'], ['responseBodyMode', 'full-duplex']] as const)(
    '@ v1.35.0 L53-62: a filter-level FULL_DUPLEX_STREAMED %s beside failure_mode_allow keeps 1.35.0 (Istio 1.27.0) from starting', async (option, value) => {
      const err = await rejection({ [option]: value });
      expect(err?.option).toBe(option);
      expect(err?.message).toBe(`${option}: Envoy 1.35.0 (Istio 1.27.0) rejects this ext_proc filter: ${FAIL_OPEN}`);
    });

  it.each(['1.35', '1.36', '1.37', '1.38'] as const)('loads on %s (#39740 reverted by #40757, e9741858f6, before v1.35.1)', async (version) => {
    expect(await rejection({ envoySemantics: version, processingMode: 'full-duplex', responseBodyMode: 'full-duplex' })).toBeNull();
  });

  it('@ v1.35.0: loads with failure_mode_allow false, or as the vhost ExtProcPerRoute (createRouteSpecificFilterConfigTyped L123-128 checks nothing)', async () => {
    expect(await rejection({ processingMode: 'full-duplex', failureModeAllow: false })).toBeNull();
    expect(await rejection({ processingMode: 'full-duplex', responseBodyMode: 'full-duplex', processingModeScope: 'vhost' })).toBeNull();
    // Without an EPP there is no ext_proc filter to refuse.
    expect(await rejection({ extProc: undefined, processingMode: 'full-duplex' })).toBeNull();
  });

  it.each(ENVOY_SEMANTICS_VERSIONS)('%s: a filter-level FULL_DUPLEX_STREAMED body needs trailer mode SEND (L35-51 @ v1.35.0, L36-52 @ v1.38.0)', async (version) => {
    const req = await rejection({ envoySemantics: version, processingMode: 'full-duplex', requestTrailerMode: 'skip', failureModeAllow: false });
    expect(req?.message).toMatch(/^processingMode: Envoy .* rejects this ext_proc filter: If the ext_proc filter has the request_body_mode set to FULL_DUPLEX_STREAMED, then the request_trailer_mode has to be set to SEND$/);
    const res = await rejection({ envoySemantics: version, responseBodyMode: 'full-duplex', responseTrailerMode: 'skip', failureModeAllow: false });
    expect(res?.message).toMatch(/^responseBodyMode: .* If the ext_proc filter has the response_body_mode set to FULL_DUPLEX_STREAMED, then the response_trailer_mode has to be set to SEND$/);
  });
});

describe('the message timer: EP/processor_state.cc onStartProcessorCall @ v1.35.0 L21-38, "Skip starting timer For FULL_DUPLEX_STREAMED"', () => {
  it.each(ENVOY_SEMANTICS_VERSIONS)('%s: a FULL_DUPLEX_STREAMED request whose EPP never answers, not even the headers, is not timed; it ends at the request-receive timeout', async (version) => {
    const director = new TestDirector([up.address]);
    const epp = await startEpp(director);
    const gw = await gatewayAs(version, `${LOOPBACK}:${epp.port}`, { ...DUPLEX, messageTimeoutMs: 100, requestReceiveTimeoutMs: 600 });
    try {
      const r = await send(gw.port, { body: completion(), headers: { ...json, 'x-test-action': 'hang' } });
      // The whole request was in: 504 (source/common/http/utility.cc maybeRequestTimeoutCode @ v1.35.0 L1539-1544).
      expect(r.status).toBe(504);
      expect(r.body.toString()).toBe('request timeout');
      expect(gw.stats()).toMatchObject({ failOpens: 0, timeouts: { requestReceive: 1 } });
    } finally {
      await gw.close();
      await epp.stop();
    }
  });

  it.each(['request_headers', 'response_headers'] as const)('times the %s message when its direction is not FULL_DUPLEX_STREAMED: fail-open after it', async (message) => {
    const epp = await startScriptedExtProc({ silentOn: [message] });
    const gw = await gatewayAs('1.38', epp.address, { messageTimeoutMs: 200 });
    try {
      const r = await send(gw.port, { body: completion(), headers: json });
      expect(r.status).toBe(200);
      expect(gw.stats().failOpenReasons.timeout).toBe(1);
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});

describe('a bodiless response (HEAD, 204, 304) whose end the gateway holds for the response_headers answer', () => {
  // Envoy's encoder chain holds end_of_stream with the headers until the ext_proc filter continues them; when the
  // filter fails open instead (message timeout, or the stream's gRPC error: ext_proc.cc onMessageTimeout / onGrpcError
  // @ v1.35.0), the headers continue with their end, so the client still gets the upstream's own head, complete.
  const silent: Script = { silentOn: ['response_headers'] };
  const failing: Script = { failOn: { message: 'response_headers', code: grpc.status.UNAVAILABLE } };
  const cases = [['silent past message_timeout', silent, 'timeout'], ['failing the stream', failing, 'unavailable']] as const;
  it.each(cases)('the EPP %s: fail-open delivers the upstream head and its end', async (_name, script, reason) => {
    const epp = await startScriptedExtProc(script);
    // 1 s (the EnvoyFilter's): the request's own messages, answered, must beat it, or a loaded machine counts their
    // timeout where the failing case expects its gRPC error.
    const gw = await gatewayAs('1.38', epp.address, { messageTimeoutMs: 1000 });
    try {
      const heads = [];
      for (const [method, status] of [['HEAD', 405], ['GET', 204], ['GET', 304]] as const) {
        const r = await send(gw.port, { method, path: `/h?status=${status}` });
        heads.push({ status: r.status, type: r.headers['content-type'], bytes: r.body.length });
      }
      expect(heads).toEqual([405, 204, 304].map((status) => ({ status, type: 'application/json', bytes: 0 })));
      expect(gw.stats().failOpenReasons[reason]).toBe(3);
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});

describe('the EPP unreachable when the stream opens, no body chunk handed over yet', () => {
  const cases = ENVOY_SEMANTICS_VERSIONS.flatMap((v) => [[v, 'full-duplex'], [v, 'buffered']] as const);
  it.each(cases)('%s, %s: fail-open with the body intact (EP/ext_proc.cc onGrpcError @ v1.35.0 L1648-1673, nothing drained)', async (version, mode) => {
    const gw = await gatewayAs(version, `${LOOPBACK}:${await deadPort()}`, mode === 'full-duplex' ? DUPLEX : {});
    try {
      const body = pseudoRandom(200_000, 5);
      const reply = new StreamingReply(gw.port, '/v1/completions', undefined, { 'content-type': 'application/octet-stream' });
      reply.flushHeaders();
      await waitFor(() => gw.stats().failOpens === 1);
      await reply.write(body);
      reply.end();
      await reply.done;
      expect(reply.status).toBe(200);
      expect(reply.json()).toMatchObject({ bodyBytes: body.length, sha256: sha256(body) });
      expect(gw.stats()).toMatchObject({ failOpenReasons: { unavailable: 1 }, lossyFailOpens: 0 });
    } finally {
      await gw.close();
    }
  });
});

/**
 * Sends 300 kB, waits until the EPP has failed the request, then sends the remaining 300 kB, or (`rest` false) waits
 * for the gateway's answer instead (a client still writing into a connection the server closed may see a reset first).
 */
async function uploadAcrossFailure(port: number, settled: () => boolean, rest = true): Promise<{ reply: StreamingReply; body: Buffer }> {
  const body = pseudoRandom(600_000, 21);
  const reply = new StreamingReply(port, '/v1/completions', undefined, { 'content-type': 'application/octet-stream' });
  for (let i = 0; i < 3; i++) await reply.write(body.subarray(i * 100_000, (i + 1) * 100_000));
  await waitFor(settled);
  if (rest) {
    await reply.write(body.subarray(300_000));
    reply.end();
  }
  await reply.done;
  return { reply, body };
}

describe('the EPP fails after a FULL_DUPLEX_STREAMED request body chunk went to it', () => {
  const failing: Script = { failOn: { message: 'request_body', code: grpc.status.UNAVAILABLE } };

  it.each(LOSSY)('%s: lossy fail-open, the upstream gets the body without the bytes the EPP had (EP/ext_proc.cc @ v1.35.0 L800-805 drained, processor_state.cc clearAsyncState L539-549)', async (version) => {
    const epp = await startScriptedExtProc(failing);
    // 1.35.0 takes full duplex beside failure_mode_allow only as the vhost override; 1.35.1+ on the filter too.
    const gw = await gatewayAs(version, epp.address, version === '1.35.0' ? DUPLEX : { processingMode: 'full-duplex' });
    try {
      const { reply, body } = await uploadAcrossFailure(gw.port, () => gw.stats().failOpens === 1);
      expect(reply.status).toBe(200);
      const s = gw.stats();
      const dropped = s.failOpenBytesDropped;
      expect(s.lossyFailOpens).toBe(1);
      expect(dropped).toBeGreaterThan(0);
      expect(dropped).toBeLessThanOrEqual(300_000);
      expect(reply.json()).toMatchObject({ bodyBytes: body.length - dropped, sha256: sha256(body.subarray(dropped)) });
      // Content-Length went when the stream opened (decodeHeaders L755-756): the truncated body travels chunked.
      expect(up.seen.at(-1)?.headers['transfer-encoding']).toBe('chunked');
    } finally {
      await gw.close();
      await epp.stop();
    }
  });

  it.each(LOCAL_REPLY)('%s: a 500 local reply, failure_mode_allow notwithstanding (Filter::failureModeAllow @ v1.36.0 L1008-1016, onGrpcError L1687-1713)', async (version) => {
    const epp = await startScriptedExtProc(failing);
    const logs = collectLogs();
    const gw = await gatewayAs(version, epp.address, { processingMode: 'full-duplex', logger: logs });
    const seen = up.seen.length;
    try {
      const { reply } = await uploadAcrossFailure(gw.port, () => gw.stats().failClosed === 1, false);
      expect(reply.status).toBe(500);
      // The ImmediateResponse onGrpcError builds has no body: its details reach only the response code details.
      expect(reply.text).toBe('');
      expect(logs.lines.map((l) => l.fields?.details)).toContain('ext_proc_error_gRPC_error_14{scripted failure on request_body}');
      expect(up.seen.length).toBe(seen);
    } finally {
      await gw.close();
      await epp.stop();
    }
  });

  it.each(ENVOY_SEMANTICS_VERSIONS)('%s, BUFFERED instead: the whole body goes on (handleDataBufferedMode @ v1.35.0 L761-786 keeps it)', async (version) => {
    const epp = await startScriptedExtProc(failing);
    // The failure under test is the EPP's gRPC error on the body: a message timeout long enough that a loaded machine
    // cannot fail the stream open on the headers' answer first (a CI run saw the body never reach the EPP: 0 bytes).
    const gw = await gatewayAs(version, epp.address, { messageTimeoutMs: 10_000 });
    try {
      const body = pseudoRandom(500_000, 8);
      const r = await send(gw.port, { body, headers: { 'content-length': String(body.length) } });
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ bodyBytes: body.length, sha256: sha256(body) });
      expect(epp.streams[0].requestBodyBytes).toBe(body.length);
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});

describe('the EPP dies while a response streams, the request having been FULL_DUPLEX_STREAMED', () => {
  const cases = [...LOSSY.map((v) => [v, 'completes'] as const), ...LOCAL_REPLY.map((v) => [v, 'is reset'] as const)];
  it.each(cases)('%s: the response %s (>= 1.36 the local reply after response headers resets: filter_manager.cc sendLocalReply @ v1.35.0 L1048-1057)', async (version, outcome) => {
    const epp = await startEpp(new TestDirector([up.address]));
    const gw = await gatewayAs(version, `${LOOPBACK}:${epp.port}`, DUPLEX);
    try {
      const reply = new StreamingReply(gw.port, '/sse?n=2', completion());
      await reply.until('"i":0');
      await epp.stop(0);
      await waitFor(() => gw.stats().failOpens + gw.stats().failClosed === 1);
      up.gate.open();
      await reply.done;
      expect(reply.reset).toBe(outcome === 'is reset');
      if (outcome === 'completes') expect(reply.text).toContain('[DONE]');
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});

describe('the EPP fails on a FULL_DUPLEX_STREAMED response body chunk', () => {
  const cases = [...LOSSY.map((v) => [v, 'loses the chunk the EPP had'] as const), ...LOCAL_REPLY.map((v) => [v, 'is reset'] as const)];
  it.each(cases)('%s: the response %s', async (version, outcome) => {
    const epp = await startScriptedExtProc({ failOn: { message: 'response_body', code: grpc.status.UNAVAILABLE } });
    const gw = await gatewayAs(version, epp.address, { responseBodyMode: 'full-duplex', processingModeScope: 'vhost' });
    try {
      const reply = new StreamingReply(gw.port, '/sse?n=3', completion());
      await waitFor(() => gw.stats().failOpens + gw.stats().failClosed === 1);
      up.gate.open();
      up.gate.open();
      await reply.done;
      if (outcome === 'is reset') {
        expect(reply.reset).toBe(true);
        return;
      }
      expect(reply.text).toBe([1, 2].map((i) => `data: {"port":${up.port},"i":${i}}\n\n`).join('') + 'data: [DONE]\n\n');
      expect(gw.stats().failOpenBytesDropped).toBe(Buffer.byteLength(`data: {"port":${up.port},"i":0}\n\n`));
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});

describe('a spurious answer: EP/ext_proc.cc onReceiveMessage @ v1.35.0 L1620-1643 (ext_proc_fail_close_spurious_resp on)', () => {
  it.each([[true, 200], [false, 500]] as const)('failure_mode_allow %s: %i', async (failureModeAllow, status) => {
    const epp = await startScriptedExtProc({ outOfOrderOn: 'request_headers' });
    const gw = await gatewayAs('1.35.0', epp.address, { failureModeAllow });
    try {
      const r = await send(gw.port, { body: completion(), headers: json });
      expect(r.status).toBe(status);
      // Counted fail open or not (L1623), and never as received.
      expect(gw.envoyStats()).toMatchObject({ spurious_msgs_received: 1, stream_msgs_received: 0 });
      if (status === 500) {
        // handleErrorResponse: an ImmediateResponse with details and no body.
        expect(r.body.length).toBe(0);
        expect(r.headers['content-type']).toBeUndefined();
      } else {
        expect(gw.stats().failOpenReasons.spurious).toBe(1);
      }
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});
