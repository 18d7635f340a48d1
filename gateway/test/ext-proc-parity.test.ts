/**
 * The ext_proc filter's remaining differences from Envoy, each pinned to the Envoy source it mirrors
 * (envoyproxy/envoy v1.35.0, `84305a6cb6`; `EP` = source/extensions/filters/http/ext_proc), over real sockets and
 * the real gRPC protocol: a scripted ext_proc server, loopback HTTP upstreams and clients. No assertion is about speed;
 * waits are `waitFor` polls with generous limits.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import type { AddressInfo } from 'net';
import { headersResponse } from '@kvroute/protocol/envoy';
import { StreamingReply } from './clients';
import { destroyClientAgent, gateway, LOOPBACK, send, startUpstream, waitFor, type Upstream } from './harness';
import { startScriptedExtProc } from './scripted-ext-proc';
import { DEFAULTS, resolveOptions } from '../src/options';

jest.setTimeout(60_000);

let up: Upstream;
/** Answers (headers and a first piece) as soon as a request arrives, then reads the body and ends when the request does. */
let early: http.Server;
let earlyAddress: string;
let earlyBodyBytes = 0;
let earlyRequests = 0;

beforeAll(async () => {
  up = await startUpstream();
  early = http.createServer((req, res) => {
    earlyRequests++;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('early;');
    req.on('data', (c: Buffer) => {
      earlyBodyBytes += c.length;
    });
    req.on('end', () => res.end('done'));
  });
  await new Promise<void>((resolve) => early.listen(0, LOOPBACK, resolve));
  earlyAddress = `${LOOPBACK}:${(early.address() as AddressInfo).port}`;
});

afterAll(async () => {
  early.closeAllConnections();
  await new Promise<void>((resolve) => early.close(() => resolve()));
  await up.close();
  destroyClientAgent();
});

describe('one message timer per direction (EP/processor_state.cc @ v1.35.0 onStartProcessorCall/onFinishProcessorCall L21-51)', () => {
  test('request traffic does not hold off the response headers timeout: the encoding timer runs from its own message', async () => {
    // FULL_DUPLEX_STREAMED request (its own timer never starts) and response headers SEND (timed). The pod answers
    // its headers before it has the body; the EPP never answers them, but streams every request chunk straight back
    // while the client keeps uploading. In Envoy the encoding state's timer is not touched by the decoding state's
    // messages, so the message timeout fires `message_timeout` after the response headers went out, upload or not.
    earlyBodyBytes = 0;
    const epp = await startScriptedExtProc({ silentOn: ['response_headers'] });
    const gw = await gateway({
      endpoints: [earlyAddress], extProc: epp.address, envoySemantics: '1.35', processingMode: 'full-duplex',
      requestTrailerMode: 'send', messageTimeoutMs: 1000, requestReceiveTimeoutMs: 0, idleTimeoutMs: 0,
    });
    const client = new StreamingReply(gw.port, '/v1/completions');
    client.flushHeaders();
    let uploading = true;
    let writes = 0;
    const writer = (async () => {
      // Writes until the message timeout fired (or the wait below gave up): no pause as long as the timer.
      while (uploading) {
        void client.write(`chunk ${writes++};`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await waitFor(() => epp.streams[0]?.events.includes('response_headers') ?? false, 'the response headers at the EPP').catch((e) => {
        throw new Error(`${String(e)} ${JSON.stringify(epp.streams[0]?.events)} ${earlyBodyBytes} ${JSON.stringify(gw.envoyStats())}`);
      });
      await waitFor(() => gw.envoyStats().message_timeouts === 1, 'the response headers message timeout', { limitMs: 20_000 });
      const stillUploading = uploading;
      expect(stillUploading).toBe(true);
      expect(epp.streams[0].events).toContain('response_headers');
    } finally {
      uploading = false;
      await writer;
      client.end();
    }
    await client.done;
    expect(client.ended).toBe(true);
    expect(client.status).toBe(200);
    expect(client.text).toBe('early;done');
    // One expiry is Envoy's one onMessageTimeout: counted once, failing open (EP/ext_proc.cc onMessageTimeout).
    expect(gw.envoyStats()).toMatchObject({ message_timeouts: 1, failure_mode_allowed: 1 });
    expect(gw.stats().failOpenReasons.timeout).toBe(1);
    expect(earlyBodyBytes).toBeGreaterThan(0);
    await gw.close();
    await epp.stop();
  });
});

describe('the request body after the response has begun (source/common/router/router.cc @ v1.35.0)', () => {
  test('a pod that answers before reading the whole body still gets the rest of it and its end', async () => {
    // Envoy's router keeps streaming the request to the upstream after the response headers came back (an HTTP/1.1
    // server may answer early); the gateway used to drop every later byte and the end, so such a request never ended.
    earlyBodyBytes = 0;
    const gw = await gateway({ endpoints: [earlyAddress] });
    const client = new StreamingReply(gw.port, '/v1/completions');
    client.flushHeaders();
    await client.write('first;');
    await client.until('early;');
    expect(client.status).toBe(200);
    for (let i = 0; i < 5; i++) await client.write('later;');
    client.end();
    await waitFor(() => client.ended || client.reset, 'the end of the response');
    expect(client.ended).toBe(true);
    expect(client.text).toBe('early;done');
    expect(earlyBodyBytes).toBe('first;'.length + 5 * 'later;'.length);
    await gw.close();
  });
});

describe('CONTINUE_AND_REPLACE does not end the other side at once (EP/ext_proc.cc @ v1.35.0 Filter::onData bodyReplaced; EP/processor_state.cc handleHeaderContinueAndReplace)', () => {
  const replace = (direction: 'request' | 'response'): unknown =>
    headersResponse(direction, { status: 'CONTINUE_AND_REPLACE', body_mutation: { body: Buffer.from('replaced') } });

  test('on the request headers: the client\'s later body is drained and its end, with its trailers, ends the upstream request', async () => {
    // Envoy drains each chunk that follows the replacement and lets end_of_stream and the trailers continue
    // (send_trailers_ is false after CONTINUE_AND_REPLACE): the pod gets the new body and the client's trailers, at the
    // client's end. The gateway used to end the upstream request at once, without them.
    const epp = await startScriptedExtProc({ respond: (kind) => (kind === 'request_headers' ? [replace('request')] : undefined) });
    // Trailers reach the filter only with the HTTP/1 codec's enable_trailers (off in Envoy and Istio; http1-codec.test.ts).
    const gw = await gateway({ endpoints: [up.address], extProc: epp.address, http1EnableTrailers: true });
    const before = up.seen.length;
    const r = await send(gw.port, { body: ['{"a":', '1}'], headers: { 'content-type': 'application/json' }, trailers: { 'x-client-trailer': 'kept' } });
    expect(r.status).toBe(200);
    const seen = up.seen[before];
    expect(seen.body.toString()).toBe('replaced');
    expect(seen.trailers['x-client-trailer']).toBe('kept');
    expect(gw.envoyStats().spurious_msgs_received).toBe(0);
    await gw.close();
    await epp.stop();
  });

  test('on the response headers: the upstream\'s later body is drained and its end, with its trailers, ends the client\'s response', async () => {
    const epp = await startScriptedExtProc({ respond: (kind) => (kind === 'response_headers' ? [replace('response')] : undefined) });
    const gw = await gateway({ endpoints: [up.address], extProc: epp.address, http1EnableTrailers: true });
    const r = await send(gw.port, { path: '/v1/completions?trailers=1', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('replaced');
    expect(r.trailers['x-upstream-trailer']).toBe('done');
    // The trailers went by the EPP: send_trailers_ is false after the replacement.
    expect(epp.streams[0].events).not.toContain('response_trailers');
    await gw.close();
    await epp.stop();
  });
});

describe('max_message_timeout defaults to what the demo EnvoyFilter sets (Envoy\'s own default is 0: config.h DefaultMaxMessageTimeoutMs @ v1.35.0)', () => {
  const endpoints = ['127.0.0.1:1'];

  test('30 s beside BUFFERED, as the synthesized EnvoyFilter; 0 beside FULL_DUPLEX_STREAMED, where it sets none; a given value wins', () => {
    const yaml = fs.readFileSync(path.join(__dirname, '../../dist/demo/EnvoyFilter.ms-llm-d-modelservice-epp-ext-proc.k8s.yaml'), 'utf8');
    const seconds = /max_message_timeout: (\d+)s/.exec(yaml);
    expect(seconds).not.toBeNull();
    expect(DEFAULTS.maxMessageTimeoutMs).toBe(Number(seconds?.[1]) * 1000);
    expect(resolveOptions({ endpoints }).maxMessageTimeoutMs).toBe(30_000);
    expect(resolveOptions({ endpoints, processingMode: 'full-duplex', processingModeScope: 'vhost' }).maxMessageTimeoutMs).toBe(0);
    expect(resolveOptions({ endpoints, maxMessageTimeoutMs: 0 }).maxMessageTimeoutMs).toBe(0);
    expect(resolveOptions({ endpoints, processingMode: 'full-duplex', processingModeScope: 'vhost', maxMessageTimeoutMs: 5000 }).maxMessageTimeoutMs).toBe(5000);
  });
});

describe('the upstream timeouts default to what the demo manifests set (lib/gateway.ts: the llm-d-gateway-timeouts EnvoyFilter and the HTTPRoute)', () => {
  test('request_timeout, stream_idle_timeout and the HTTPRoute\'s timeouts.request are the gateway\'s defaults', () => {
    const demo = path.join(__dirname, '../../dist/demo');
    const filter = fs.readFileSync(path.join(demo, 'EnvoyFilter.llm-d-gateway-timeouts.k8s.yaml'), 'utf8');
    const route = fs.readFileSync(path.join(demo, 'HTTPRoute.llm-d-gateway.k8s.yaml'), 'utf8');
    const seconds = (yaml: string, key: string): number => {
      const m = new RegExp(`^\\s*${key}: "?(\\d+)s"?$`, 'm').exec(yaml);
      if (m === null) throw new Error(`${key} not found in the demo manifests`);
      return Number(m[1]) * 1000;
    };
    expect(DEFAULTS.requestReceiveTimeoutMs).toBe(seconds(filter, 'request_timeout'));
    expect(DEFAULTS.idleTimeoutMs).toBe(seconds(filter, 'stream_idle_timeout'));
    expect(DEFAULTS.requestTimeoutMs).toBe(seconds(route, 'request'));
  });
});

describe(':status values Envoy takes and the HTTP/1 codec writes as a number (source/extensions/filters/common/mutation_rules/mutation_rules.cc Checker::isValidValue; source/common/http/http1/codec_impl.cc ResponseEncoderImpl::encodeHeaders @ v1.35.0)', () => {
  const setStatus = (value: string): unknown => ({
    response_headers: { response: { header_mutation: { set_headers: [{ header: { key: ':status', raw_value: Buffer.from(value, 'latin1') } }] } } },
  });

  test.each([
    [' 201', 201, 0, 0],
    ['+0202\t', 202, 0, 0],
    // Not a number, or below 200: Envoy's rules skip it and count it.
    ['abc', 200, 1, 1],
    ['199', 200, 1, 1],
    // Envoy takes it and would write it; Node writes only 100-999: skipped, counted only as the gateway's own.
    ['1000', 200, 0, 1],
  ])('an EPP setting :status to %j: the client gets %i', async (value, status, envoyRejected, gatewayRejected) => {
    const epp = await startScriptedExtProc({ respond: (kind) => (kind === 'response_headers' ? [setStatus(value)] : undefined) });
    const gw = await gateway({ endpoints: [up.address], extProc: epp.address });
    const r = await send(gw.port, { body: '{}', headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(status);
    expect(gw.envoyStats().rejected_header_mutations).toBe(envoyRejected);
    expect(gw.stats().rejectedHeaderMutations).toBe(gatewayRejected);
    await gw.close();
    await epp.stop();
  });
});

// These need trailers to reach the filter at all: the HTTP/1 codec's enable_trailers (off in Envoy and Istio; see
// http1-codec.test.ts) is turned on for them.
describe('a BUFFERED request with trailers SEND waits for the trailers answer (EP/processor_state.cc @ v1.35.0 finalizeBodyResponse)', () => {
  test('nothing reaches the pod before the trailers answer: a timeout on it fails closed with no upstream request made', async () => {
    // Envoy sends the trailers from the body answer and only the trailers answer continues the filter chain, so the
    // router has not seen the request yet; the gateway used to start the upstream request at the body answer.
    earlyRequests = 0;
    const epp = await startScriptedExtProc({ silentOn: ['request_trailers'] });
    const gw = await gateway({ endpoints: [earlyAddress], extProc: epp.address, requestTrailerMode: 'send', failureModeAllow: false, messageTimeoutMs: 1000, http1EnableTrailers: true });
    const r = await send(gw.port, { body: ['{"a":', '1}'], headers: { 'content-type': 'application/json' }, trailers: { 'x-client-trailer': 'held' } });
    expect(r.status).toBe(504);
    expect(epp.streams[0].events.slice(0, 3)).toEqual(['request_headers', 'request_body', 'request_trailers']);
    expect(earlyRequests).toBe(0);
    await gw.close();
    await epp.stop();
  });

  test('once answered, the body and the mutated trailers go upstream together', async () => {
    const epp = await startScriptedExtProc({
      respond: (kind) => (kind === 'request_trailers'
        ? [{ request_trailers: { header_mutation: { set_headers: [{ header: { key: 'x-epp-trailer', raw_value: Buffer.from('added') } }] } } }]
        : undefined),
    });
    const gw = await gateway({ endpoints: [up.address], extProc: epp.address, requestTrailerMode: 'send', http1EnableTrailers: true });
    const before = up.seen.length;
    const r = await send(gw.port, { body: ['{"a":', '1}'], headers: { 'content-type': 'application/json' }, trailers: { 'x-client-trailer': 'kept' } });
    expect(r.status).toBe(200);
    const seen = up.seen[before];
    expect(seen.body.toString()).toBe('{"a":1}');
    expect(seen.trailers).toMatchObject({ 'x-client-trailer': 'kept', 'x-epp-trailer': 'added' });
    await gw.close();
    await epp.stop();
  });
});
