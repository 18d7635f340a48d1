import { headerMapToMap, loadEnvoyApi, processingRequestReader, type HeaderMap, type ProcessingRequest } from '../src/envoy';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const api = loadEnvoyApi();
const processMethod = (api.packageDefinition['envoy.service.ext_proc.v3.ExternalProcessor'] as Json).Process;
const serialize = processMethod.requestSerialize as (m: unknown) => Buffer;
const protoLoader = processMethod.requestDeserialize as (b: Buffer) => ProcessingRequest;
const lean = processingRequestReader(api);

const KINDS = ['request_headers', 'response_headers', 'request_body', 'response_body', 'request_trailers', 'response_trailers'] as const;

function randomMessage(random: () => number): Json {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const headerMap = (): Json => ({
    headers: Array.from({ length: Math.floor(random() * 5) }, () => {
      const h: Json = {};
      if (random() < 0.9) h.key = pick(['content-type', ':path', 'X-Up', 'x-request-id', '']);
      if (random() < 0.6) h.raw_value = Buffer.from(pick(['application/json', 'ü', '', 'a,b']));
      if (random() < 0.4) h.value = pick(['v', '', 'w']);
      return h;
    }),
  });
  const member = (kind: (typeof KINDS)[number]): Json => {
    if (kind.endsWith('headers')) return { ...(random() < 0.9 ? { headers: headerMap() } : {}), ...(random() < 0.5 ? { end_of_stream: random() < 0.5 } : {}) };
    if (kind.endsWith('body')) return { ...(random() < 0.8 ? { body: Buffer.from('x'.repeat(Math.floor(random() * 40))) } : {}), ...(random() < 0.5 ? { end_of_stream: random() < 0.5 } : {}) };
    return random() < 0.7 ? { trailers: headerMap() } : {};
  };
  const m: Json = {};
  const members = random() < 0.05 ? 0 : random() < 0.05 ? 2 : 1;
  for (let i = 0; i < members; i++) m[pick(KINDS)] = member(pick(KINDS));
  if (random() < 0.3) m.protocol_config = { request_body_mode: pick(['NONE', 'BUFFERED', 'FULL_DUPLEX_STREAMED']), response_body_mode: pick(['NONE', 'STREAMED']) };
  if (random() < 0.2) {
    m.metadata_context = { filter_metadata: { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': { listValue: { values: [{ stringValue: '10.0.0.1:8000' }] } } } } } };
  }
  if (random() < 0.2) m.observability_mode = random() < 0.5;
  return m;
}

/** What an ext_proc server reads of a message (ExtProcStream's reads), equal for equal readings. */
function reading(m: ProcessingRequest): Json {
  const headers = (map: HeaderMap | null | undefined) => [...headerMapToMap(map)];
  const kind = m.request;
  const out: Json = { request: kind, metadata_context: m.metadata_context ?? null, protocol_config: m.protocol_config ?? null, observability_mode: m.observability_mode ?? false };
  if (kind === 'request_headers' || kind === 'response_headers') {
    out.headers = headers(m[kind]?.headers);
    out.end_of_stream = m[kind]?.end_of_stream ?? false;
  } else if (kind === 'request_body' || kind === 'response_body') {
    const body = m[kind]?.body;
    expect(Buffer.isBuffer(body)).toBe(true);
    out.body = body!.toString('latin1');
    out.end_of_stream = m[kind]?.end_of_stream ?? false;
  } else if (kind === 'request_trailers' || kind === 'response_trailers') {
    out.trailers = headers(m[kind]?.trailers);
  }
  return out;
}

describe('processingRequestReader', () => {
  it('reads what proto-loader\'s deserializer reads, on 3,000 random messages (every member, headers, bodies, metadata, protocol_config)', () => {
    const random = lcg(7);
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const bytes = serialize(randomMessage(random));
      const expected = protoLoader(bytes);
      const actual = lean(bytes);
      expect(reading(actual)).toEqual(reading(expected));
      seen.add(String(expected.request));
    }
    expect([...seen].sort()).toEqual([...KINDS, 'undefined'].sort());
  });

  it('a message with two oneof members set (never sent by a proxy) is read as proto-loader reads it', () => {
    const bytes = Buffer.concat([serialize({ response_body: { body: Buffer.from('b') } }), serialize({ request_headers: { end_of_stream: true } })]);
    expect(lean(bytes)).toEqual(protoLoader(bytes));
    expect(lean(bytes).request).toBe('response_body');
  });

  it('throws on bytes that do not decode, as proto-loader does', () => {
    for (const bytes of [Buffer.from([0x0a, 0xff]), Buffer.from([0xff, 0xff, 0xff]), Buffer.from('not a protobuf at all, no')]) {
      let theirs: unknown;
      try { protoLoader(bytes); } catch (e) { theirs = e; }
      expect(() => lean(bytes)).toThrow((theirs as Error).message);
    }
  });
});
