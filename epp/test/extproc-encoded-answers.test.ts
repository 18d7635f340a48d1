import { EncodedAnswers, MAX_ENCODED_DESTINATIONS, MAX_ENCODED_RESPONSE_HEADERS } from '../src/extproc/encoded-answers';
import { extProcServiceDefinition, streamSettings } from '../src/extproc/server';
import { ExtProcStream, type StreamSettings } from '../src/extproc/stream';
import type { ProcessingRequest, ProcessingResponse } from '@kvroute/protocol/envoy';
import type { IncomingRequest, RequestDirector, RouteDecision } from '../src/extproc/request-director';
import { protocolConfig, requestBody, requestHeaders, requestTrailers, responseHeaders, type Json } from './extproc-harness';

const def = extProcServiceDefinition().Process!;
const serialize = def.responseSerialize as (m: unknown) => Buffer;
const decodeResponse = def.responseDeserialize as (b: Buffer) => Json;
const encodeRequest = def.requestSerialize as (m: unknown) => Buffer;
const decodeRequest = def.requestDeserialize as (b: Buffer) => ProcessingRequest;
/** A message as the server's deserializer hands it to the stream (proto-loader's oneof member set). */
const wire = (m: Json): ProcessingRequest => decodeRequest(encodeRequest(m));
/** The same message as the EPP's own server reads it (`leanRequests`). */
const decodeLean = extProcServiceDefinition({ leanRequests: true }).Process!.requestDeserialize as (b: Buffer) => ProcessingRequest;
const leanWire = (m: Json): ProcessingRequest => decodeLean(encodeRequest(m));

class Director implements RequestDirector {
  readonly requests: IncomingRequest[] = [];
  constructor(
    private readonly choose: (req: IncomingRequest) => RouteDecision,
    /** What the response headers get set (the post-response hooks' and flow control's headers). */
    private readonly respond?: () => Readonly<Record<string, string>> | undefined,
  ) {}
  responseHeaders(): Readonly<Record<string, string>> | undefined {
    return this.respond?.();
  }
  route(req: IncomingRequest): Promise<RouteDecision> {
    this.requests.push(req);
    return Promise.resolve(this.choose(req));
  }
  release(): void {}
}

/** Runs one stream over `messages` and returns what it sent, each as the bytes grpc-js would write. */
async function run(settings: StreamSettings, messages: Json[], read: (m: Json) => ProcessingRequest = wire): Promise<Buffer[]> {
  const sent: Buffer[] = [];
  const stream = new ExtProcStream(settings, {
    send: (m: ProcessingResponse | Buffer) => sent.push(serialize(m)),
    end: () => undefined,
    fail: (code, details) => {
      throw new Error(`stream failed: ${code} ${details}`);
    },
  });
  for (const m of messages) {
    stream.onMessage(read(m));
    for (let i = 0; i < 5; i++) await Promise.resolve(); // let a routing decision land
  }
  stream.onHalfClose();
  return sent;
}

describe('EncodedAnswers (pre-encoded ext_proc answers)', () => {
  it('routeTo is the serializer\'s encoding of the route answer, cached per endpoint and bounded', () => {
    const answers = new EncodedAnswers(serialize, 'x-gateway-destination-endpoint', 'envoy.lb');
    const bytes = answers.routeTo('10.0.0.7:8000');
    expect(bytes.equals(serialize(EncodedAnswers.routeMessage('10.0.0.7:8000', 'x-gateway-destination-endpoint', 'envoy.lb')))).toBe(true);
    expect(answers.routeTo('10.0.0.7:8000')).toBe(bytes);
    const msg = decodeResponse(bytes);
    expect(msg.request_headers.response.clear_route_cache).toBe(true);
    expect(msg.request_headers.response.header_mutation.set_headers[0].header).toMatchObject({ key: 'x-gateway-destination-endpoint' });
    expect(msg.request_headers.response.header_mutation.set_headers[0].header.raw_value.toString()).toBe('10.0.0.7:8000');
    expect(msg.dynamic_metadata.fields['envoy.lb'].structValue.fields['x-gateway-destination-endpoint'].stringValue).toBe('10.0.0.7:8000');
    expect(decodeResponse(answers.responseHeadersContinue).response_headers.response).toMatchObject({ status: 'CONTINUE', header_mutation: null });
    for (let i = 0; i < MAX_ENCODED_DESTINATIONS + 10; i++) answers.routeTo(`10.1.${i >> 8}.${i & 255}:8000`);
    expect(answers.size).toBeLessThanOrEqual(MAX_ENCODED_DESTINATIONS);
    // The one-header response answer (flow control's x-llm-d-flow-queue-duration-ms on every response), cached too.
    const queued = answers.responseHeadersSetting('x-llm-d-flow-queue-duration-ms', '0');
    expect(decodeResponse(queued).response_headers.response.header_mutation.set_headers[0].header).toMatchObject({ key: 'x-llm-d-flow-queue-duration-ms' });
    expect(answers.responseHeadersSetting('x-llm-d-flow-queue-duration-ms', '0')).toBe(queued);
    for (let i = 0; i < MAX_ENCODED_RESPONSE_HEADERS + 10; i++) answers.responseHeadersSetting('x-llm-d-flow-queue-duration-ms', String(i));
    expect(answers.responseHeadersSetting('x-llm-d-flow-queue-duration-ms', '7').equals(answers.responseHeadersSetting('x-llm-d-flow-queue-duration-ms', '7'))).toBe(true);
  });

  it('the service serializer writes a Buffer as it is and encodes objects as before', () => {
    const b = Buffer.from([1, 2, 3]);
    expect(serialize(b)).toBe(b);
    expect(decodeResponse(serialize({ response_headers: { response: {} } })).response).toBe('response_headers');
  });

  it('a stream sends the same bytes with and without the pre-encoded answers, in every body mode and with extra headers', async () => {
    // Every request names its x-request-id, as Envoy's router sets one: a generated id would differ between the runs.
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'x'.repeat(70_000) }));
    const exchanges: { decide: (req: IncomingRequest) => RouteDecision; messages: Json[]; respond?: () => Readonly<Record<string, string>> }[] = [
      // Full duplex (kvroute's EnvoyFilter, the benchmark): headers, body in two chunks, response headers.
      { decide: () => ({ kind: 'route', endpoint: '10.0.0.1:8000', ticket: 1 }), messages: [requestHeaders({ ':method': 'POST', 'x-request-id': 'r' }, false), requestBody(body.subarray(0, 16384), false), requestBody(body.subarray(16384), true), responseHeaders({ ':status': '200' }, true)] },
      // Trailers after the body.
      { decide: () => ({ kind: 'route', endpoint: '10.0.0.2:8000', ticket: 2 }), messages: [requestHeaders({ ':method': 'POST', 'x-request-id': 'r' }, false), requestBody('{}', false), requestTrailers({ 'x-t': '1' }), responseHeaders({ ':status': '200' }, true)] },
      // No body.
      { decide: () => ({ kind: 'route', endpoint: '10.0.0.3:8000', ticket: 3 }), messages: [requestHeaders({ ':method': 'GET', 'x-request-id': 'r' }, true), responseHeaders({ ':status': '200' }, true)] },
      // Buffered mode answers in the body response (no pre-encoded answer applies).
      { decide: () => ({ kind: 'route', endpoint: '10.0.0.4:8000', ticket: 4 }), messages: [requestHeaders({ ':method': 'POST', 'x-request-id': 'r' }, false, protocolConfig('BUFFERED', 'NONE')), requestBody('{}', true), responseHeaders({ ':status': '200' }, true)] },
      // Extra headers and a replaced body take the general path.
      { decide: () => ({ kind: 'route', endpoint: '10.0.0.5:8000', setHeaders: { 'X-Extra': 'y' }, ticket: 5 }), messages: [requestHeaders({ ':method': 'POST', 'x-request-id': 'r' }, false), requestBody('{}', true), responseHeaders({ ':status': '200' }, true)] },
      { decide: () => ({ kind: 'route', endpoint: '10.0.0.6:8000', body: Buffer.from('{"a":1}'), ticket: 6 }), messages: [requestHeaders({ ':method': 'POST', 'x-request-id': 'r' }, false), requestBody('{}', true), responseHeaders({ ':status': '200' }, true)] },
      // Response headers set: one (flow control's queue time, the cached answer), then two (the general path).
      { decide: () => ({ kind: 'route', endpoint: '10.0.0.7:8000', ticket: 7 }), respond: () => ({ 'x-llm-d-flow-queue-duration-ms': '0' }), messages: [requestHeaders({ ':method': 'POST', 'x-request-id': 'r' }, false), requestBody('{}', true), responseHeaders({ ':status': '200' }, true)] },
      { decide: () => ({ kind: 'route', endpoint: '10.0.0.8:8000', ticket: 8 }), respond: () => ({ 'x-llm-d-flow-queue-duration-ms': '12', 'x-session-token': 'dA==' }), messages: [requestHeaders({ ':method': 'POST', 'x-request-id': 'r' }, false), requestBody('{}', true), responseHeaders({ ':status': '200' }, true)] },
    ];
    for (const { decide, messages, respond } of exchanges) {
      const director = new Director(decide, respond);
      const plain = streamSettings({ director, defaultResponseBodyMode: 'NONE' });
      const withEncoded: StreamSettings = { ...plain, encoded: new EncodedAnswers(serialize, plain.destinationHeader, plain.metadataNamespace) };
      const a = await run(plain, messages);
      const b = await run(withEncoded, messages);
      expect(a.length).toBeGreaterThanOrEqual(2);
      expect(b.map((x) => x.toString('hex'))).toEqual(a.map((x) => x.toString('hex')));
      // The EPP's server reads messages with the lean reader: the same bytes go out.
      const c = await run(withEncoded, messages, leanWire);
      expect(c.map((x) => x.toString('hex'))).toEqual(a.map((x) => x.toString('hex')));
      // And the director is handed the same request (headers, body bytes, metadata) either way.
      const [first, , lean] = director.requests;
      expect(lean).toBeDefined();
      expect([...lean!.headers]).toEqual([...first!.headers]);
      expect(lean!.body?.toString('hex')).toEqual(first!.body?.toString('hex'));
      expect(lean!.filterMetadata).toEqual(first!.filterMetadata);
      expect(lean!.bodyWithheld).toEqual(first!.bodyWithheld);
    }
  });
});
