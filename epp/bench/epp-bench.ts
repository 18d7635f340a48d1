/**
 * `npm run bench -w epp`: the EPP's cost per request.
 *
 * - Scheduling latency: `RequestControl.route` (parse the OpenAI body, snapshot the pool, run the default
 *   scheduling config: filters, prefix hashing and scoring, pick) per request, p50 and p99.
 * - ext_proc round trips per second: complete Envoy-side exchanges (headers, body in 16 KB full-duplex chunks, the
 *   pick, the body streamed back, response headers and body) over real gRPC on loopback, 16 streams in flight.
 * - Baseline, same run: the same exchanges against a director that picks at random without reading the body, so the
 *   ratio isolates what scheduling costs on top of the protocol.
 *
 * Grid: 8, 64, 256 endpoints × 1 KB, 16 KB, 128 KB prompts. Prints a table, writes bench/results.json.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import { defaultEndpointPickerConfig, preciseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import type { IncomingRequest, RequestDirector, RouteDecision } from '../src/extproc/request-director';
import { startExtProcServer } from '../src/extproc/server';
import { RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';

/** `--quick`: a smaller grid and shorter cells, for a check that the benchmark runs (a minute instead of several). */
const QUICK = process.argv.includes('--quick');
const ENDPOINTS = QUICK ? [8, 256] : [8, 64, 256];
const PROMPT_BYTES = QUICK ? [1024, 16 * 1024] : [1024, 16 * 1024, 128 * 1024];
const SCHEDULE_SAMPLES = Number(process.env.BENCH_SCHEDULE_SAMPLES ?? (QUICK ? 300 : 2000));
const ROUND_TRIP_SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 0.5 : 2));
const CONCURRENCY = 16;
const SHARED_PREFIXES = 32;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const VOCABULARY = (
  'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were '
  + 'her she there can all their has been if more one would will other so what up when who about out than into some them '
  + 'only time could these two may then do first any my now such like our over man me even most made after also did many '
  + 'before must through back years where much your way well down should because each just those people how too little '
  + 'state good very make world still own see men work long get here between both life being under never day same another '
  + 'know while last might us great old year off come since against go came right used take three cache route prefix block '
  + 'token model server request latency queue memory tensor batch decode prefill kernel scheduler replica cluster gateway'
).split(' ');

/** Chat bodies of about `bytes`, in `SHARED_PREFIXES` families that share all but the last ~10% (RAG-like). */
function workload(bytes: number, count: number): Buffer[] {
  const rnd = lcg(bytes);
  // English-like words (a few hundred distinct, roughly one token each, as in prose): token density like real prompts,
  // not the digit-per-token density of synthetic ids.
  const word = () => VOCABULARY[Math.floor(rnd() * VOCABULARY.length)]!;
  const text = (n: number) => {
    const parts: string[] = [];
    let len = 0;
    while (len < n) { const w = word(); parts.push(w); len += w.length + 1; }
    return parts.join(' ');
  };
  const prefixes = Array.from({ length: SHARED_PREFIXES }, () => text(Math.floor(bytes * 0.9)));
  return Array.from({ length: count }, (_, i) => Buffer.from(JSON.stringify({
    model: 'Qwen/Qwen3-0.6B',
    messages: [
      { role: 'system', content: prefixes[i % SHARED_PREFIXES] },
      { role: 'user', content: text(Math.floor(bytes * 0.1)) },
    ],
  })));
}

function pool(n: number): Datastore {
  const ds = new Datastore({ scrape: false });
  const rnd = lcg(n);
  for (let i = 0; i < n; i++) {
    const address = `10.${(i >> 8) & 255}.${i & 255}.7`;
    ds.upsertEndpoint({ key: `${address}:8000`, name: `decode-${i}`, namespace: 'llm-d', address, port: 8000, labels: { 'llm-d.ai/role': 'decode' } });
    ds.setMetrics(`${address}:8000`, { waitingQueueSize: Math.floor(rnd() * 4), runningQueueSize: Math.floor(rnd() * 16), kvCacheUsagePercent: rnd() * 0.8, updateTime: Date.now(), consecutiveFailures: 0 });
  }
  return ds;
}

/** Keeps metrics fresh for the saturation filter's staleness bound while the benchmark runs. */
function keepFresh(ds: Datastore): NodeJS.Timeout {
  return setInterval(() => { for (const e of ds.endpoints()) ds.setMetrics(e.key, { updateTime: Date.now() }); }, 100);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const request = (body: Buffer): IncomingRequest => ({ requestId: 'bench', headers: new Map([[':method', 'POST'], [':path', '/v1/chat/completions']]), body, filterMetadata: {} });

async function scheduleLatency(n: number, bodies: Buffer[]): Promise<{ p50: number; p99: number }> {
  const ds = pool(n);
  const timer = keepFresh(ds);
  const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()) });
  const times: number[] = [];
  for (let i = 0; i < SCHEDULE_SAMPLES + 200; i++) {
    // Yield to the event loop between samples, outside the timed part: the loop must run timers (the metrics refresh)
    // as it does in the EPP, or the metrics go stale and every endpoint is excluded.
    await new Promise((r) => setImmediate(r));
    const t0 = performance.now();
    const d = await director.route(request(bodies[i % bodies.length]));
    const t1 = performance.now();
    if (d.kind !== 'route') throw new Error(`unexpected ${d.kind}`);
    director.release(d.ticket, 'completed');
    if (i >= 200) times.push(t1 - t0); // the first 200 warm the JIT and the prefix index
  }
  clearInterval(timer);
  await ds.stop();
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

/**
 * What precise prefix scoring adds per request: `route` with the precise scorer (tokenize as vLLM does, cut into
 * block keys, look them up in an index holding every family's prefix on one pod), p50 and p99, over the same bodies.
 * The tokenizer's memo is warm for the shared part of each family after its first request, as in a real stream.
 */
async function preciseLatency(n: number, bodies: Buffer[]): Promise<{ p50: number; p99: number }> {
  const ds = pool(n);
  const timer = keepFresh(ds);
  const scheduler = buildScheduler(preciseEndpointPickerConfig({ mode: 'per-pod', socketPort: 5557, blockSize: 16, modelName: 'Qwen/Qwen3-0.6B' }));
  const director = new RequestControl({ datastore: ds, scheduler });
  const times: number[] = [];
  for (let i = 0; i < Math.min(SCHEDULE_SAMPLES, 500) + 50; i++) {
    await new Promise((r) => setImmediate(r));
    const t0 = performance.now();
    const d = await director.route(request(bodies[i % bodies.length]));
    const t1 = performance.now();
    if (d.kind !== 'route') throw new Error(`unexpected ${d.kind}`);
    director.release(d.ticket, 'completed');
    if (i >= 50) times.push(t1 - t0);
  }
  clearInterval(timer);
  await ds.stop();
  await scheduler.plugins.close();
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

/** A random pick that never reads the body: the protocol's own cost. */
class RandomDirector implements RequestDirector {
  constructor(private readonly keys: string[]) {}
  async route(): Promise<RouteDecision> {
    return { kind: 'route', endpoint: this.keys[Math.floor(Math.random() * this.keys.length)], ticket: null };
  }
  release(): void {}
}

async function roundTrips(director: RequestDirector, bodies: Buffer[]): Promise<number> {
  const server = await startExtProcServer({ director, host: '127.0.0.1', port: 0, logger: { debug() {}, warn() {} } });
  server.setServing(true);
  const def = loadEnvoyApi().packageDefinition['envoy.service.ext_proc.v3.ExternalProcessor'] as grpc.ServiceDefinition;
  const serialize = def.Process.requestSerialize as (v: unknown) => Buffer;
  const deserialize = def.Process.responseDeserialize as (b: Buffer) => Json;
  const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  const headerMap = (h: Record<string, string>) => ({ headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });
  const reqHeaders = headerMap({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
  const respHeaders = headerMap({ ':status': '200', 'content-type': 'application/json' });

  const one = (body: Buffer) => new Promise<void>((resolve, reject) => {
    const call = client.makeBidiStreamRequest<Buffer, Buffer>('/envoy.service.ext_proc.v3.ExternalProcessor/Process', (b) => b, (b) => b);
    let phase: 'request' | 'response' = 'request';
    call.on('data', (b: Buffer) => {
      const m = deserialize(b);
      if (m.immediate_response) { reject(new Error('immediate response')); return; }
      if (phase === 'request' && m.request_body?.response?.body_mutation?.streamed_response?.end_of_stream) {
        phase = 'response';
        call.write(serialize({ response_headers: { headers: respHeaders, end_of_stream: false } }));
        call.write(serialize({ response_body: { body: Buffer.from('{"choices":[]}'), end_of_stream: true } }));
      } else if (m.response_body) {
        call.end();
      }
    });
    call.on('error', reject);
    call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
    call.write(serialize({ request_headers: { headers: reqHeaders, end_of_stream: false } }));
    for (let off = 0; off < body.length; off += 16 * 1024) {
      call.write(serialize({ request_body: { body: body.subarray(off, off + 16 * 1024), end_of_stream: off + 16 * 1024 >= body.length } }));
    }
  });

  for (let i = 0; i < 50; i++) await one(bodies[i % bodies.length]); // warm-up
  let done = 0;
  const deadline = performance.now() + ROUND_TRIP_SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    for (let i = w; performance.now() < deadline; i += CONCURRENCY) {
      await one(bodies[i % bodies.length]);
      done++;
    }
  }));
  const rate = done / ((performance.now() - t0) / 1000);
  client.close();
  await server.stop();
  return rate;
}

async function main(): Promise<void> {
  const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.arch()}` };
  console.log(`kvroute EPP benchmark on ${machine.cpus} × ${machine.cpu}, node ${machine.node}`);
  console.log(`scheduling: ${SCHEDULE_SAMPLES} requests per cell; round trips: ${ROUND_TRIP_SECONDS}s per cell, ${CONCURRENCY} streams in flight\n`);
  const rows: Json[] = [];
  for (const n of ENDPOINTS) {
    for (const bytes of PROMPT_BYTES) {
      const bodies = workload(bytes, 256);
      const latency = await scheduleLatency(n, bodies);
      const precise = await preciseLatency(n, bodies);
      const ds = pool(n);
      const timer = keepFresh(ds);
      const kvroute = await roundTrips(new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()) }), bodies);
      clearInterval(timer);
      const baseline = await roundTrips(new RandomDirector(ds.endpoints().map((e) => e.key)), bodies);
      await ds.stop();
      const row = {
        endpoints: n, promptBytes: bodies[0].length,
        scheduleP50Ms: +latency.p50.toFixed(3), scheduleP99Ms: +latency.p99.toFixed(3),
        preciseP50Ms: +precise.p50.toFixed(3), preciseP99Ms: +precise.p99.toFixed(3),
        roundTripsPerSec: Math.round(kvroute), baselineRoundTripsPerSec: Math.round(baseline),
        ratioToBaseline: +(kvroute / baseline).toFixed(2),
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
  }
  console.log('\n| endpoints | prompt | schedule p50 | schedule p99 | precise p50 | precise p99 | ext_proc round trips/s | random-pick baseline/s | ratio |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.endpoints} | ${(r.promptBytes / 1024).toFixed(0)} KB | ${r.scheduleP50Ms} ms | ${r.scheduleP99Ms} ms | ${r.preciseP50Ms} ms | ${r.preciseP99Ms} ms | ${r.roundTripsPerSec} | ${r.baselineRoundTripsPerSec} | ${r.ratioToBaseline} |`);
  }
  if (QUICK) return; // a quick run checks the benchmark; only full runs are recorded
  const out = path.join(__dirname, 'results.json');
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), machine, scheduleSamples: SCHEDULE_SAMPLES, roundTripSeconds: ROUND_TRIP_SECONDS, concurrency: CONCURRENCY, rows }, null, 2)}\n`);
  console.log(`\nwritten ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
