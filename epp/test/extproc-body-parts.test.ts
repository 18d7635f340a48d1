/**
 * How a stream keeps a request body that comes in many ext_proc messages: every part's bytes, in order, with the small
 * parts merged as they come so that a proxy forwarding one-byte chunks (Envoy's FULL_DUPLEX_STREAMED forwards data as
 * its codec decodes it, `ext_proc.cc` @ v1.35.0) does not keep a view and its gRPC message alive per byte.
 */
import { extProcServiceDefinition, streamSettings } from '../src/extproc/server';
import { ExtProcStream, MERGE_PARTS } from '../src/extproc/stream';
import type { ProcessingRequest } from '@kvroute/protocol/envoy';
import type { IncomingRequest, RequestDirector, RouteDecision } from '../src/extproc/request-director';
import { requestBody, requestHeaders, type Json } from './extproc-harness';

const def = extProcServiceDefinition().Process!;
const encodeRequest = def.requestSerialize as (m: unknown) => Buffer;
const decodeRequest = def.requestDeserialize as (b: Buffer) => ProcessingRequest;
/** As the server hands a message to the stream: decoded from its own wire bytes, the body a view into them. */
const wire = (m: Json): ProcessingRequest => decodeRequest(encodeRequest(m));

class Director implements RequestDirector {
  readonly requests: IncomingRequest[] = [];
  route(req: IncomingRequest): Promise<RouteDecision> {
    this.requests.push(req);
    return Promise.resolve({ kind: 'route', endpoint: '10.0.0.1:8000', ticket: 1 });
  }
  release(): void {}
}

/** Sends `chunks` as one request body; returns the body the director saw and the most parts the stream held at once. */
async function sendBody(chunks: Buffer[]): Promise<{ body: Buffer | undefined; mostParts: number; partsBeforeLast: number }> {
  const director = new Director();
  const stream = new ExtProcStream(streamSettings({ director }), { send: () => undefined, end: () => undefined, fail: (code, details) => { throw new Error(`stream failed: ${code} ${details}`); } });
  const held = stream as unknown as { bodyParts: Buffer[] };
  stream.onMessage(wire(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', 'x-request-id': 'r' }, false)));
  let mostParts = 0;
  let partsBeforeLast = 0;
  chunks.forEach((chunk, i) => {
    if (i === chunks.length - 1) partsBeforeLast = held.bodyParts.length;
    stream.onMessage(wire(requestBody(chunk, i === chunks.length - 1)));
    mostParts = Math.max(mostParts, held.bodyParts.length);
  });
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return { body: director.requests[0]?.body, mostParts, partsBeforeLast };
}

describe('a request body in many messages', () => {
  it('one-byte chunks are merged as they come (at most MERGE_PARTS + 1 + one part per merged run held) and arrive whole, in order', async () => {
    const text = Buffer.from(JSON.stringify({ model: 'm', prompt: 'abcdefghij'.repeat(1000) }));
    const chunks = [...text].map((b) => Buffer.from([b]));
    const { body, mostParts } = await sendBody(chunks);
    expect(body?.equals(text)).toBe(true);
    // 10,029 one-byte parts kept as sent would be 10,029 views, each holding its decoded message.
    expect(mostParts).toBeLessThanOrEqual(MERGE_PARTS + Math.ceil(text.length / MERGE_PARTS));
  });

  it('large parts are kept as sent (never copied before the end), small ones between them merged, the order kept', async () => {
    const big = (c: string) => Buffer.from(c.repeat(4096));
    const small = Array.from({ length: 2 * MERGE_PARTS + 7 }, (_, i) => Buffer.from(String(i % 10)));
    const chunks = [Buffer.from('{"model":"m","prompt":"'), big('a'), ...small, big('b'), ...Array.from({ length: MERGE_PARTS }, () => big('c')), Buffer.from('"}')];
    const { body, partsBeforeLast } = await sendBody(chunks);
    expect(body?.equals(Buffer.concat(chunks))).toBe(true);
    // Before the closing chunk: the opening piece, 'a', then the small parts' runs merged (with 'a' and the opening in the
    // first run of MERGE_PARTS), 'b' and the MERGE_PARTS 'c' parts (4 MiB together, over the merge limit), each its own.
    expect(partsBeforeLast).toBe(chunks.length - 1 - 2 * (MERGE_PARTS - 1));
  });
});
