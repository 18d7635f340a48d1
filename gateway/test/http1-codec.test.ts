/**
 * Envoy's HTTP/1 codec as Istio's gateway configures it, both towards the client (the HCM's ServerConnectionImpl) and
 * towards the pod (the decode cluster's ClientConnectionImpl). Real loopback upstream, real scripted ext_proc server,
 * real HTTP client; no mocks. Cited at envoyproxy/envoy v1.35.0 unless said otherwise.
 */
import * as http from 'http';
import * as net from 'net';
import type { AddressInfo } from 'net';
import { destroyClientAgent, gateway, LOOPBACK, send, startUpstream, type Upstream } from './harness';
import { rawUntilIdle } from './clients';
import { startScriptedExtProc } from './scripted-ext-proc';

jest.setTimeout(30_000);

let up: Upstream;

beforeAll(async () => {
  up = await startUpstream();
});

afterAll(async () => {
  await up.close();
  destroyClientAgent();
});

const json = { 'content-type': 'application/json' };

/**
 * `Http1ProtocolOptions.enable_trailers` defaults to false ("By default the HTTP/1 codec drops proxied trailers",
 * `api/envoy/config/core/v3/protocol.proto`), and neither Istio's gateway (pilot/pkg/networking/core @ 1.27.0 sets no
 * `enable_trailers`) nor kvroute's EnvoyFilter sets it. The codec then ignores the trailers it parses
 * (`source/common/http/http1/codec_impl.cc` ConnectionImpl::onHeaderFieldImpl / onHeaderValueImpl: "Ignore
 * trailers."; `balsa_parser.cc` validateAndProcessHeadersOrTrailersImpl: `if (trailers && !enable_trailers_)
 * continue;`) and drops those it would encode (StreamEncoderImpl::encodeTrailersBase: `if
 * (!connection_.enableTrailers()) return endEncode();`).
 */
describe('HTTP/1 trailers with enable_trailers unset (codec_impl.cc, Envoy\'s default, Istio sets none)', () => {
  test('the pod\'s response trailers do not reach the client', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const r = await send(gw.port, { path: '/v1/completions?trailers=1', body: '{}', headers: json });
      expect(r.status).toBe(200);
      expect(r.trailers['x-upstream-trailer']).toBeUndefined();
    } finally {
      await gw.close();
    }
  });

  test('the client\'s request trailers do not reach the pod', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const r = await send(gw.port, { body: ['{"a":', '1}'], headers: json, trailers: { 'x-client-trailer': 'sent' } });
      expect(r.status).toBe(200);
      expect(up.seen[before].body.toString()).toBe('{"a":1}');
      expect(up.seen[before].trailers['x-client-trailer']).toBeUndefined();
    } finally {
      await gw.close();
    }
  });

  test('with trailer modes SEND the EPP gets no request_trailers or response_trailers message: there are none', async () => {
    const epp = await startScriptedExtProc();
    const gw = await gateway({ endpoints: [up.address], extProc: epp.address, requestTrailerMode: 'send', responseTrailerMode: 'send' });
    try {
      const r = await send(gw.port, {
        path: '/v1/completions?trailers=1', body: ['{"a":', '1}'], headers: json, trailers: { 'x-client-trailer': 'sent' },
      });
      expect(r.status).toBe(200);
      const events = epp.streams[0].events;
      expect(events).not.toContain('request_trailers');
      expect(events).not.toContain('response_trailers');
    } finally {
      await gw.close();
      await epp.stop();
    }
  });

  test('--http1-enable-trailers (enable_trailers: true) carries them both ways', async () => {
    const gw = await gateway({ endpoints: [up.address], http1EnableTrailers: true });
    try {
      const before = up.seen.length;
      const r = await send(gw.port, { path: '/v1/completions?trailers=1', body: ['{"a":', '1}'], headers: json, trailers: { 'x-client-trailer': 'sent' } });
      expect(r.status).toBe(200);
      expect(r.trailers['x-upstream-trailer']).toBe('done');
      expect(up.seen[before].trailers['x-client-trailer']).toBe('sent');
    } finally {
      await gw.close();
    }
  });
});

/** A pod that answers every request with `head` (raw bytes), then closes. */
async function rawPod(head: string): Promise<{ address: string; close(): Promise<void> }> {
  const server = net.createServer((socket) => {
    // The gateway may close before reading all of a head it refuses.
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end(head));
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  return {
    address: `${LOOPBACK}:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A response the HTTP/1 client codec cannot parse fails its dispatch: CodecClient::onData sets `protocol_error_` and
 * closes, and the close resets the stream with StreamResetReason::ProtocolError (`source/common/http/codec_client.cc`
 * onEvent: `if (protocol_error_) reason = StreamResetReason::ProtocolError`), which
 * Http::Utility::resetReasonToString writes `protocol error` (`source/common/http/utility.cc`). Not a connect failure,
 * so Istio's retry_on (connect-failure,…) does not retry it.
 */
describe('upstream response heads the HTTP/1 client codec refuses (codec_client.cc onData/onEvent)', () => {
  test('a malformed header line is a 503 with reset reason `protocol error`', async () => {
    const pod = await rawPod('HTTP/1.1 200 OK\r\nBad Header Line\r\nContent-Length: 2\r\n\r\nok');
    const gw = await gateway({ endpoints: [pod.address] });
    try {
      const r = await send(gw.port, { body: '{}', headers: json });
      expect(r.status).toBe(503);
      expect(r.body.toString()).toBe('upstream connect error or disconnect/reset before headers. reset reason: protocol error');
      expect(gw.stats().retries).toBe(0);
    } finally {
      await gw.close();
      await pod.close();
    }
  });
});

/**
 * The decode cluster's response head limits, which neither Istio nor kvroute sets: `max_response_headers_kb` unset →
 * the codec's MAX_RESPONSE_HEADERS_KB, 80 KiB (`source/common/http/http1/codec_impl.h`, ClientConnectionImpl in
 * `codec_impl.cc`), and `common_http_protocol_options.max_headers_count` unset → 100 (ClusterInfoImpl
 * max_response_headers_count_ = DEFAULT_MAX_HEADERS_COUNT, `source/common/upstream/upstream_impl.cc`). Past either,
 * ConnectionImpl::completeCurrentHeader / checkMaxHeadersSize fail the dispatch: a protocol error, the stream reset
 * before headers, 503. Node's own client limits (16 KiB, 2000 headers) must not apply.
 */
describe('upstream response head limits (HTTP/1 ClientConnectionImpl with the cluster defaults)', () => {
  /** A response head of `fields` header fields in all, the first carrying `kib` KiB. */
  const head = (fields: number, kib = 0): string => {
    const lines = ['Content-Length: 2', `X-Big: ${'a'.repeat(kib * 1024)}`];
    for (let i = lines.length; i < fields; i++) lines.push(`X-H${i}: ${i}`);
    return `HTTP/1.1 200 OK\r\n${lines.join('\r\n')}\r\n\r\nok`;
  };

  /** Status and `x-big` length as a client with room for an 80 KiB head sees them (Node's own client stops at 16). */
  const fetchHead = (port: number): Promise<{ status: number; big: number }> => new Promise((resolve, reject) => {
    const req = http.request({ host: LOOPBACK, port, method: 'POST', path: '/v1/completions', headers: json, maxHeaderSize: 128 * 1024 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, big: String(res.headers['x-big'] ?? '').length }));
    });
    req.on('error', reject);
    req.end('{}');
  });

  const through = async (podHead: string): Promise<{ status: number; big: number; body: string; retries: number }> => {
    const pod = await rawPod(podHead);
    const gw = await gateway({ endpoints: [pod.address] });
    try {
      const { status, big } = await fetchHead(gw.port);
      const body = status === 503 ? (await send(gw.port, { body: '{}', headers: json })).body.toString() : '';
      return { status, big, body, retries: gw.stats().retries };
    } finally {
      await gw.close();
      await pod.close();
    }
  };

  const reset = 'upstream connect error or disconnect/reset before headers. reset reason: protocol error';

  test('a 20 KiB response head (over Node\'s 16 KiB, under Envoy\'s 80 KiB) reaches the client', async () => {
    expect(await through(head(2, 20))).toMatchObject({ status: 200, big: 20 * 1024 });
  });

  test('an 81 KiB response head is a 503 with reset reason `protocol error`', async () => {
    expect(await through(head(2, 81))).toEqual({ status: 503, big: 0, body: reset, retries: 0 });
  });

  test('100 response header fields pass; 101 (over max_headers_count) are a 503 with reset reason `protocol error`', async () => {
    expect(await through(head(100))).toMatchObject({ status: 200 });
    expect(await through(head(101))).toEqual({ status: 503, big: 0, body: reset, retries: 0 });
  });
});

/**
 * `source/common/http/http1/codec_impl.cc` @ v1.35.0 ServerConnectionImpl::getHeadersSize: "Add in the size of the
 * request URL if processing request headers" (`url_size + ConnectionImpl::getHeadersSize()`, the latter the names and
 * values so far), which ConnectionImpl::checkMaxHeadersSize compares with `max_request_headers_kb` (60 KiB by default,
 * set by neither Istio nor kvroute) and answers 431 through sendProtocolError.
 */
describe('request head limits (HTTP/1 ServerConnectionImpl::getHeadersSize, checkMaxHeadersSize)', () => {
  test('the request URL counts towards the 60 KiB of max_request_headers_kb: 431 before any pod', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const query = 'q='.padEnd(40 * 1024, 'a');
      const filler = 'b'.repeat(30 * 1024);
      // 40 KiB of URL and ~30 KiB of header values: over 60 KiB in Envoy's count, under it without the URL.
      const head = await rawUntilIdle(gw.port, `GET /v1/models?${query} HTTP/1.1\r\nHost: x\r\nX-Filler: ${filler}\r\n\r\n`);
      // The gateway's own 431 (the code's name as the body), not the test pod's (a Node server with a 16 KiB limit,
      // which answers 431 with no body).
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 431 Request Header Fields Too Large');
      expect(head.endsWith('\r\n\r\nRequest Header Fields Too Large')).toBe(true);
      expect(up.seen.length).toBe(before);
    } finally {
      await gw.close();
    }
  });
});

/**
 * Envoy's hop-by-hop sets, cited at v1.35.0: `source/common/http/conn_manager_utility.cc`
 * ConnectionManagerUtility::mutateRequestHeaders removes Connection and Upgrade (on a non-upgrade request), Keep-Alive,
 * Proxy-Connection, Transfer-Encoding and sanitizes TE; `conn_manager_impl.cc` ActiveStream::decodeHeaders removes
 * Expect only when it is `100-continue`; `http1/codec_impl.cc` ConnectionImpl::onHeadersCompleteImpl removes
 * HTTP2-Settings only beside `Upgrade: h2c`; mutateResponseHeaders removes Connection, Upgrade, Transfer-Encoding,
 * Keep-Alive and Proxy-Connection from a response. Everything else goes on.
 */
describe('hop-by-hop headers (conn_manager_utility.cc mutateRequestHeaders / mutateResponseHeaders)', () => {
  test('Expect (not 100-continue), Trailer and HTTP2-Settings reach the pod; a pod\'s Trailer reaches the client', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const head = await rawUntilIdle(gw.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        + 'Expect: x-custom\r\nTrailer: x-t\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n'
        + '2\r\n{}\r\n0\r\n\r\n', 800);
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      const h = up.seen[before].headers;
      expect({ expect: h.expect, trailer: h.trailer, settings: h['http2-settings'], keepAlive: h['keep-alive'] })
        .toEqual({ expect: 'x-custom', trailer: 'x-t', settings: 'AAMAAABkAAQAAP__', keepAlive: undefined });
      const resp = await rawUntilIdle(gw.port, 'GET /v1/completions?trailers=1 HTTP/1.1\r\nHost: x\r\n\r\n', 800);
      expect(resp.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      expect(resp.toLowerCase()).toContain('\r\ntrailer: x-upstream-trailer\r\n');
    } finally {
      await gw.close();
    }
  });

  test('Expect: 100-continue is answered and removed; HTTP2-Settings goes with an `Upgrade: h2c` upgrade', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const out = await rawUntilIdle(gw.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        + 'Expect: 100-continue\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n'
        + 'Content-Length: 2\r\n\r\n{}', 800);
      expect(out.split('\r\n')[0]).toBe('HTTP/1.1 100 Continue');
      expect(out).toContain('HTTP/1.1 200 OK');
      const h = up.seen[before].headers;
      expect({ expect: h.expect, upgrade: h.upgrade, settings: h['http2-settings'] }).toEqual({ expect: undefined, upgrade: undefined, settings: undefined });
    } finally {
      await gw.close();
    }
  });

  // conn_manager_impl.cc ActiveStream::decodeHeaders answers 100 only when Expect equals `100-continue` (any case);
  // Node's server would answer any list holding it.
  // The HCM answers 100 in ActiveStream::decodeHeaders (`conn_manager_impl.cc` @ v1.35.0), which a request the HTTP/1
  // codec refuses never reaches: an unsupported transfer coding (ConnectionImpl::onHeadersCompleteImpl, 501) or a head
  // over max_request_headers_kb (checkMaxHeadersSize, 431) is answered by sendProtocolError alone. A client told to go
  // on would send its body into a connection about to close.
  test('Expect: 100-continue on a request the codec refuses (501, 431) gets no 100 Continue before the error', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const refused = [
        'POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
        `POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-Big: ${'a'.repeat(61 * 1024)}\r\nContent-Length: 2\r\n\r\n`,
      ];
      const first: string[] = [];
      for (const request of refused) first.push((await rawUntilIdle(gw.port, request, 800)).split('\r\n')[0]);
      expect(first).toEqual(['HTTP/1.1 501 Not Implemented', 'HTTP/1.1 431 Request Header Fields Too Large']);
      expect(up.seen.length).toBe(before);
    } finally {
      await gw.close();
    }
  });

  test('Expect: 100-continue, x-foo is not answered 100 Continue and reaches the pod as sent', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const out = await rawUntilIdle(gw.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        + 'Expect: 100-continue, x-foo\r\nContent-Length: 2\r\n\r\n{}', 800);
      expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      expect(up.seen[before].headers.expect).toBe('100-continue, x-foo');
    } finally {
      await gw.close();
    }
  });

  test('a Trailer Node cannot frame (a Content-Length request) is the one left out; the request goes on', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const out = await rawUntilIdle(gw.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        + 'Trailer: x-t\r\nContent-Length: 2\r\n\r\n{}', 800);
      expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      expect(up.seen[before].headers.trailer).toBeUndefined();
    } finally {
      await gw.close();
    }
  });
});

/**
 * Envoy's HTTP/1 codec adds each header line to the request map with HeaderMapImpl::addViaMove
 * (`source/common/http/http1/codec_impl.cc` ConnectionImpl::completeCurrentHeader), which appends a repeated O(1)
 * inline header to the first with "," (`source/common/http/header_map_impl.cc` insertByKey → appendToHeader with
 * delimiterByHeader: "," for all but Cookie; an empty value adds nothing), and maps `host` onto `:authority` (the
 * static lookup table's HostLegacy case). The inline request headers are Envoy's own list (`envoy/http/header_map.h`
 * INLINE_REQ_STRING_HEADERS, INLINE_REQ_RESP_STRING_HEADERS: Content-Type, User-Agent, Via, X-Forwarded-Host, …); any
 * other name stays one entry per line. So the EPP and the pod see one joined Content-Type, as vLLM behind Envoy does
 * (its validate_json_request then refuses `application/json,application/json` with 400, where the first line alone
 * passes).
 */
describe('repeated inline request headers (HeaderMapImpl::addViaMove / appendToHeader)', () => {
  test('two Content-Type, User-Agent or Host lines become one value joined with ","; an empty one adds nothing; other names stay repeated', async () => {
    const epp = await startScriptedExtProc();
    const gw = await gateway({ endpoints: [up.address], extProc: epp.address });
    try {
      const before = up.seen.length;
      const out = await rawUntilIdle(gw.port, 'POST /v1/completions HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Type: application/json\r\n'
        + 'Content-Type: text/plain\r\nUser-Agent: one\r\nUser-Agent:\r\nUser-Agent: two\r\nX-Multi: a\r\nX-Multi: b\r\nContent-Length: 2\r\n\r\n{}', 800);
      expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      const raw = up.seen[before].rawHeaders;
      const values = (name: string): string[] => raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === name ? [raw[i + 1]] : []));
      expect({ host: values('host'), ct: values('content-type'), ua: values('user-agent'), multi: values('x-multi') })
        .toEqual({ host: ['a,b'], ct: ['application/json,text/plain'], ua: ['one,two'], multi: ['a', 'b'] });
      const sent = (epp.streams[0].messages[0]?.request_headers?.headers?.headers ?? [])
        .map((h) => [h.key, Buffer.from(h.raw_value ?? '').toString('latin1')]);
      expect(sent.filter(([n]) => n === 'content-type')).toEqual([['content-type', 'application/json,text/plain']]);
      expect(sent.filter(([n]) => n === ':authority')).toEqual([[':authority', 'a,b']]);
      expect(sent.filter(([n]) => n === 'x-multi')).toEqual([['x-multi', 'a'], ['x-multi', 'b']]);
    } finally {
      await gw.close();
      await epp.stop();
    }
  });
});

/**
 * Upgrades: Istio's gateway HCM has one upgrade config, `websocket` (istio/istio `pilot/pkg/networking/core/
 * listener_builder.go` @ 1.29.6 L361-363), so HttpConnectionManagerConfig::createUpgradeFilterChain refuses every other
 * type and ConnectionManagerImpl::ActiveStream::decodeHeaders (`conn_manager_impl.cc` @ v1.35.0) answers 403, empty, and
 * closes the connection (`saw_connection_close_`), where a route matched. An Upgrade header without the `upgrade`
 * token in Connection is no upgrade (Utility::isUpgrade) and mutateRequestHeaders removes it.
 */
describe('upgrades (conn_manager_impl.cc decodeHeaders upgrade_rejected, Istio\'s websocket-only upgrade config)', () => {
  test('an upgrade to a type other than websocket is answered 403 with an empty body and the connection closed; a pipelined request behind it is not served', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const out = await rawUntilIdle(gw.port, 'GET /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: foo/1\r\n\r\n'
        + 'GET /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n', 3000);
      expect(out.split('\r\n')[0]).toBe('HTTP/1.1 403 Forbidden');
      expect(out.toLowerCase()).toContain('\r\ncontent-length: 0\r\n');
      expect(out.toLowerCase()).toContain('\r\nconnection: close\r\n');
      expect(out.endsWith('\r\n\r\n')).toBe(true);
      expect(out.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
      expect(up.seen.length).toBe(before);
      expect(gw.stats().upgradesRejected).toBe(1);
    } finally {
      await gw.close();
    }
  });

  test('an Upgrade header without `upgrade` in Connection is no upgrade: the request is served and the header removed', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const out = await rawUntilIdle(gw.port, 'GET /v1/completions HTTP/1.1\r\nHost: x\r\nUpgrade: foo/1\r\n\r\n', 800);
      expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      expect(up.seen[before].headers.upgrade).toBeUndefined();
      expect(gw.stats().upgradesRejected).toBe(0);
    } finally {
      await gw.close();
    }
  });

  test('a websocket upgrade (any case) is not refused; without a route an upgrade gets the router\'s 404', async () => {
    const gw = await gateway({ endpoints: [up.address], routePrefixes: ['/v1'] });
    try {
      const ws = await rawUntilIdle(gw.port, 'GET /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n', 800);
      expect(ws.split('\r\n')[0]).not.toBe('HTTP/1.1 403 Forbidden');
      const unrouted = await rawUntilIdle(gw.port, 'GET /other HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n', 800);
      expect(unrouted.split('\r\n')[0]).toBe('HTTP/1.1 404 Not Found');
      expect(gw.stats().upgradesRejected).toBe(0);
    } finally {
      await gw.close();
    }
  });
});

/** What the client's socket receives, lower-cased, for requests written raw, once `responses` status lines are in. */
async function rawExchange(port: number, requests: string, responses = 1): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, LOOPBACK, () => socket.write(requests));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      data += c.toLowerCase();
      if ((data.match(/http\/1\.1 \d{3} /g) ?? []).length >= responses && data.endsWith('}')) {
        socket.destroy();
        resolve(data);
      }
    });
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
}

/**
 * Envoy's HTTP/1 ResponseEncoderImpl::encodeHeaders / encodeHeadersBase (`source/common/http/http1/codec_impl.cc`)
 * write the response header map and only `transfer-encoding: chunked` or `content-length: 0` of their own; the HCM
 * removes the upstream's `connection` (ConnectionManagerUtility::mutateResponseHeaders) and sets `connection: close`
 * only when the connection is to close (ActiveStream::encodeHeaders, `conn_manager_impl.cc`: drain_state_ not
 * NotDraining, e.g. the client's own `Connection: close` via saw_connection_close_). Node adds `Connection:
 * keep-alive` to every other response.
 */
describe('the connection header of a response (HTTP/1 ResponseEncoderImpl::encodeHeaders, HCM encodeHeaders)', () => {
  test('an HTTP/1.1 keep-alive response, upstream or local, carries none', async () => {
    const gw = await gateway({ endpoints: [up.address], routePrefixes: ['/v1'] });
    try {
      const r = await send(gw.port, { body: '{}', headers: json });
      expect(r.status).toBe(200);
      expect(r.headers.connection).toBeUndefined();
      // A local reply to a complete request (one before the request is complete closes the connection, as in Envoy).
      const local = await send(gw.port, { method: 'GET', path: '/other' });
      expect(local.status).toBe(404);
      expect(local.headers.connection).toBeUndefined();
      // The connection is kept all the same: a second request on it is answered.
      const request = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}';
      const both = await rawExchange(gw.port, request + request, 2);
      expect(both.match(/http\/1\.1 200 /g)).toHaveLength(2);
      expect(both).not.toContain('\r\nconnection:');
    } finally {
      await gw.close();
    }
  });

  test('a response on a connection that closes says `connection: close`, as the HCM does once it drains it', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const head = await rawExchange(gw.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}');
      expect(head).toMatch(/^http\/1\.1 200 /);
      expect(head).toContain('\r\nconnection: close\r\n');
    } finally {
      await gw.close();
    }
  });
});

/**
 * `source/common/http/http1/codec_impl.cc` @ v1.35.0 StreamEncoderImpl::encodeHeadersBase: a response without
 * Content-Length to a HEAD request skips the `end_stream && !is_response_to_head_request_` branch (no
 * `content-length: 0`) and, on HTTP/1.1, takes the last one, which writes `transfer-encoding: chunked` with
 * chunk_encoding_ false ("When sending a response to a HEAD request Envoy may send an informational
 * \"Transfer-Encoding: chunked\" header, but should not send a chunk encoded body"). A local reply with no body has no
 * Content-Length (Utility::prepareLocalReply removes it), so it is framed the same way.
 */
describe('a HEAD response without Content-Length (HTTP/1 StreamEncoderImpl::encodeHeadersBase)', () => {
  test('carries `transfer-encoding: chunked` and no body, from the pod or the gateway; one with a Content-Length keeps it', async () => {
    const gw = await gateway({ endpoints: [up.address], routePrefixes: ['/v1'] });
    try {
      const head = (path: string): string => `HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
      const next = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}';
      // The connection goes on after each HEAD: no body (no last chunk) was written.
      for (const path of ['/v1/completions?empty=1', '/other']) {
        const out = await rawExchange(gw.port, head(path) + next, 2);
        const first = out.slice(0, out.indexOf('\r\n\r\n') + 4);
        expect(first).toContain('\r\ntransfer-encoding: chunked\r\n');
        expect(first).not.toContain('content-length');
        expect(out.slice(first.length)).toMatch(/^http\/1\.1 200 /);
      }
      const sized = await rawExchange(gw.port, head('/v1/completions') + next, 2);
      const first = sized.slice(0, sized.indexOf('\r\n\r\n') + 4);
      expect(first).toMatch(/\r\ncontent-length: \d+\r\n/);
      expect(first).not.toContain('transfer-encoding');
    } finally {
      await gw.close();
    }
  });
});

/**
 * Envoy's HTTP/1 RequestEncoderImpl::encodeHeaders writes the request line and the header map (encodeHeadersBase adds
 * only `transfer-encoding: chunked` or `content-length: 0`), and the HCM has removed the client's `connection` as a
 * hop-by-hop header: a keep-alive upstream request carries no `connection` header. Node's client adds `Connection:
 * keep-alive` when its agent keeps connections.
 */
describe('the connection header of an upstream request (HTTP/1 RequestEncoderImpl::encodeHeaders)', () => {
  test('carries none, whatever the client sent', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      for (let i = 0; i < 2; i++) expect((await send(gw.port, { body: '{}', headers: { ...json, connection: 'keep-alive', 'x-a': '1' } })).status).toBe(200);
      expect(up.seen[before].headers.connection).toBeUndefined();
      expect(up.seen[before + 1].headers.connection).toBeUndefined();
      expect(up.seen[before].headers['x-a']).toBe('1');
    } finally {
      await gw.close();
    }
  });

  test('repeated fields keep their values in order', async () => {
    const gw = await gateway({ endpoints: [up.address] });
    try {
      const before = up.seen.length;
      const r = await send(gw.port, { body: '{}', headers: { ...json, 'x-multi': ['a', 'b'] } });
      expect(r.status).toBe(200);
      const raw = up.seen[before].rawHeaders;
      expect(raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === 'x-multi' ? [raw[i + 1]] : []))).toEqual(['a', 'b']);
    } finally {
      await gw.close();
    }
  });
});
