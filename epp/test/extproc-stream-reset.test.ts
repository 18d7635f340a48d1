/**
 * Envoy closes every ext_proc stream with END_STREAM and, at once, RST_STREAM(CANCEL)
 * (`ExternalProcessorStreamImpl::close`, envoyproxy/envoy source/extensions/filters/http/ext_proc/client_impl.cc
 * @ v1.35.0 through v1.38.0). nghttp2 limits the resets a server accepts per connection (burst 1000, 33 a second) and
 * sends GOAWAY beyond; Node ≥ 22.10 lets the EPP lift that limit. These tests drive the real ext_proc server over one
 * raw HTTP/2 connection exactly so: on a Node that honours the option no GOAWAY ever comes, on one that does not the
 * limit is real (which is what the start-up warning claims).
 */
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { startExtProcServer, type ExtProcServer } from '../src/extproc/server';
import {
  liftStreamResetLimit, nodeHonoursStreamResetLimit, streamResetLimitWarning, STREAM_RESET_BURST, STREAM_RESET_RATE,
} from '../src/extproc/stream-reset-limit';
import { collectingLogger, TestDirector } from './extproc-harness';
import { INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';

/** Streams closed the way Envoy closes them, one after another on one connection, until GOAWAY or `count`. */
async function closeLikeEnvoy(port: number, count: number): Promise<{ streams: number; goaway?: number }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  let goaway: number | undefined;
  session.on('goaway', (code) => { goaway = code; });
  await new Promise<void>((resolve, reject) => { session.once('connect', () => resolve()); session.once('error', reject); });
  let streams = 0;
  try {
    for (; streams < count && goaway === undefined && !session.destroyed; streams++) {
      const stream = session.request({
        ':method': 'POST', ':path': '/envoy.service.ext_proc.v3.ExternalProcessor/Process',
        'content-type': 'application/grpc', te: 'trailers',
      });
      stream.on('error', () => undefined);
      stream.end(); // END_STREAM (Envoy's closeStream) …
      stream.close(http2.constants.NGHTTP2_CANCEL); // … then RST_STREAM(CANCEL) (its resetStream)
      await new Promise((r) => setImmediate(r));
    }
    // A GOAWAY sent for the last streams may still be in flight: one ping round trip lets it arrive.
    if (goaway === undefined && !session.destroyed) await new Promise((r) => session.ping((err) => r(err)));
  } finally {
    session.destroy();
  }
  return { streams, goaway };
}

describe('Envoy resets every ext_proc stream it closes: the EPP must take that at any rate', () => {
  let server: ExtProcServer;

  beforeAll(async () => {
    server = await startExtProcServer({ director: new TestDirector(), host: '127.0.0.1', port: 0, logger: collectingLogger() });
  });
  afterAll(async () => server?.stop());

  test('the limit is lifted exactly where Node honours it', () => {
    expect(server.streamResetLimitLifted).toBe(nodeHonoursStreamResetLimit());
    expect(streamResetLimitWarning(server.streamResetLimitLifted) === undefined).toBe(server.streamResetLimitLifted);
  });

  test(`${nodeHonoursStreamResetLimit() ? 'no GOAWAY' : 'GOAWAY (nghttp2\'s limit, which this Node keeps)'} after 3,000 streams closed as Envoy closes them on one connection`, async () => {
    const { streams, goaway } = await closeLikeEnvoy(server.port, 3000);
    if (server.streamResetLimitLifted) {
      expect({ streams, goaway }).toEqual({ streams: 3000, goaway: undefined });
    } else {
      // INTERNAL_ERROR once the burst of 1,000 is spent (the refill of 33 a second cannot keep up with this loop).
      expect(goaway).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
      expect(streams).toBeGreaterThan(1000);
    }
  }, INTEGRATION_TEST_TIMEOUT_MS);
});

describe('liftStreamResetLimit', () => {
  test('sets the bucket on the options grpc-js builds its HTTP/2 servers from (fails if grpc-js renames them)', () => {
    const server = new grpc.Server();
    const lifted = liftStreamResetLimit(server, '22.10.0');
    const options = (server as unknown as { commonServerOptions: Record<string, unknown> }).commonServerOptions;
    expect(options).toMatchObject({ streamResetBurst: STREAM_RESET_BURST, streamResetRate: STREAM_RESET_RATE });
    expect(lifted).toBe(true);
    expect(liftStreamResetLimit(new grpc.Server(), '20.20.2')).toBe(false);
  });

  test('Node versions: 22.10 and later, 23 and later', () => {
    expect(['20.20.2', '22.9.0', '21.7.3'].map((v) => nodeHonoursStreamResetLimit(v))).toEqual([false, false, false]);
    expect(['22.10.0', '22.21.1', '23.0.0', '24.11.0'].map((v) => nodeHonoursStreamResetLimit(v))).toEqual([true, true, true, true]);
    expect(streamResetLimitWarning(false, '20.20.2')).toMatch(/Node 20\.20\.2 keeps nghttp2's limit of 33 reset streams a second .*Node 22\.10 or later/);
  });
});
