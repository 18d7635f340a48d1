/**
 * llm-d-router v0.10.0's ext_proc server flags with their effect, over a real gRPC stream to the whole EPP:
 * `--emit-endpoint-scores` (`pkg/epp/handlers/request.go` generateMetadata, `requestcontrol/director.go` prepareRequest)
 * and `--grpc-max-recv-msg-size` / `--grpc-max-send-msg-size` (`pkg/epp/server/options.go`, `runserver.go` grpc.MaxRecvMsgSize).
 */
import * as grpc from '@grpc/grpc-js';
import { structToJson, type StructObject } from '@kvroute/protocol/envoy';
import { INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { requestBody, requestHeaders, setHeaders } from './extproc-harness';
import { liveEpp } from './live-epp';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const BASE = { ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json' };

describe('llm-d-router v0.10.0 ext_proc flags', () => {
  const live = liveEpp();
  const start = (...flags: string[]) => live.start(2, ...flags);

  async function pick(headers: Record<string, string> = {}) {
    const s = live.envoy!.open();
    s.send(requestHeaders({ ...BASE, ...headers }, false));
    s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt: 'hello' })), true));
    const first = await s.next();
    s.cancel();
    return { endpoint: setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint'] as string, metadata: structToJson(first.dynamic_metadata as StructObject) };
  }

  test('--emit-endpoint-scores: the envoy.lb metadata carries every scored candidate\'s score beside the pick; without it, only the pick', async () => {
    await start('--emit-endpoint-scores');
    const { endpoint, metadata } = await pick();
    const lb = metadata['envoy.lb'] as Record<string, unknown>;
    expect(lb['x-gateway-destination-endpoint']).toBe(endpoint);
    const scores = lb['x-gateway-destination-endpoint-scores'] as Record<string, number>;
    expect(Object.keys(scores).sort()).toEqual(live.pods.map((p) => `127.0.0.1:${p.port}`).sort());
    for (const score of Object.values(scores)) expect(typeof score).toBe('number');
    // The pick is a best-scored candidate.
    expect(scores[endpoint]).toBe(Math.max(...Object.values(scores)));
    await live.stop();
    await start();
    const plain = await pick();
    expect(plain.metadata).toEqual({ 'envoy.lb': { 'x-gateway-destination-endpoint': plain.endpoint } });
  });

  test('--grpc-max-recv-msg-size bounds the messages the ext_proc server takes: a larger one ends the stream RESOURCE_EXHAUSTED', async () => {
    await start('--grpc-max-recv-msg-size', '2KiB'); // a trailing B is dropped, as upstream's sanitizeSizeString does
    expect((await pick()).endpoint).toBeDefined();
    const s = live.envoy!.open();
    s.send(requestHeaders({ ...BASE, 'x-big': 'x'.repeat(4096) }, false));
    expect((await s.status).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  // options.go Complete refuses only a negative size or one past math.MaxInt (64-bit), and runserver.go hands it to
  // grpc.MaxRecvMsgSize / MaxSendMsgSize: 2Gi and 4Gi, as good as no limit, start the EPP.
  test('--grpc-max-recv-msg-size 2Gi and --grpc-max-send-msg-size 4Gi start the EPP, which routes', async () => {
    await start('--grpc-max-recv-msg-size', '2Gi', '--grpc-max-send-msg-size', '4Gi');
    expect(live.pods.map((p) => `127.0.0.1:${p.port}`)).toContain((await pick()).endpoint);
  });
});
