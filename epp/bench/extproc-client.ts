/**
 * What the EPP benchmarks drive: Envoy's side of one ext_proc exchange over real gRPC (the same code for every server
 * measured, EPP or floor), the chat bodies they send, and the paired driver that alternates two servers. Shared by
 * `epp-bench.ts`, `replica-scaling.ts`, `profile-epp.ts` and `ab.ts`.
 */
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import { eppFirst } from './round-stats';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Prompt families per workload: requests share a family's prefix. */
export const SHARED_PREFIXES = 32;

export function lcg(seed: number): () => number {
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
export function workload(bytes: number, count: number): Buffer[] {
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

export class ExtProcClient {
  private readonly client: grpc.Client;
  private static readonly def = loadEnvoyApi().packageDefinition['envoy.service.ext_proc.v3.ExternalProcessor'] as grpc.ServiceDefinition;
  private readonly serialize = ExtProcClient.def.Process.requestSerialize as (v: unknown) => Buffer;
  // Envoy decodes each ProcessingResponse in C++ into a message it reads a few members of. proto-loader's
  // deserializer (`responseDeserialize`) instead builds a JavaScript object with every default member and converts
  // each google.protobuf.Struct of dynamic metadata: on two cores shared with the server that costs the client more
  // for the EPP's answers (header mutations, metadata) than for the floor's bare ones, and so charges the client's
  // own decoding to the EPP's side of every ratio. protobufjs's `decode` builds message instances with only the
  // members on the wire, as a protobuf runtime does, and the same reads below work on them.
  private static readonly responseType = loadEnvoyApi().lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
  private readonly deserialize = (b: Buffer) => ExtProcClient.responseType.decode(b) as unknown as Json;
  // Envoy's router always sends x-request-id (generated unless the client sent one); without it the EPP sets a
  // generated one on the request (GIE v1.5.0 handlers/server.go), which Envoy never makes it do.
  private readonly reqHeaders = headerMap({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', 'x-request-id': 'bench' });
  private readonly respHeaders = headerMap({ ':status': '200', 'content-type': 'application/json' });

  constructor(port: number) {
    this.client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }

  /**
   * Request headers, the body in 16 KB full-duplex chunks, until the last body chunk comes back (the pick made and the
   * body released); then the response headers (end of stream) and their answer. Resolves with the round trip in ms.
   */
  exchange(body: Buffer): Promise<number> {
    const t0 = performance.now();
    return new Promise<number>((resolve, reject) => {
      const call = this.client.makeBidiStreamRequest<Buffer, Buffer>('/envoy.service.ext_proc.v3.ExternalProcessor/Process', (b) => b, (b) => b);
      let phase: 'request' | 'response' = 'request';
      call.on('data', (b: Buffer) => {
        const m = this.deserialize(b);
        if (m.immediate_response) {
          reject(new ImmediateResponse(JSON.stringify(m.immediate_response.status)));
          call.cancel();
          return;
        }
        if (phase === 'request' && m.request_body?.response?.body_mutation?.streamed_response?.end_of_stream) {
          phase = 'response';
          call.write(this.serialize({ response_headers: { headers: this.respHeaders, end_of_stream: true } }));
        } else if (phase === 'response' && m.response_headers) {
          call.end();
        }
      });
      call.on('error', reject);
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve(performance.now() - t0) : reject(new Error(s.details))));
      call.write(this.serialize({ request_headers: { headers: this.reqHeaders, end_of_stream: false } }));
      for (let off = 0; off < body.length; off += 16 * 1024) {
        call.write(this.serialize({ request_body: { body: body.subarray(off, off + 16 * 1024), end_of_stream: off + 16 * 1024 >= body.length } }));
      }
    });
  }

  close(): void {
    this.client.close();
  }
}

/** The server answered with a local reply instead of a pick (the EPP's 503 when no endpoint has fresh metrics). */
export class ImmediateResponse extends Error {}

export function headerMap(h: Record<string, string>): Json {
  return { headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export interface Load {
  /** Exchanges answered with an immediate response (a 503 or 429) instead of a pick; not in the latencies. */
  rejected: number;
  /** Exchanges answered with a pick, in both phases. */
  answered: number;
  serialP50: number;
  serialP99: number;
  rps: number;
  concP50: number;
  concP99: number;
}

export const ROUNDS = 4;

/**
 * One exchange, timed into `into`; an exchange answered with an immediate response (a 503 or 429) is counted by
 * `onRejected` instead, not fatal: an EPP whose pods all went stale answers 503 until they refresh.
 */
export async function timedExchange(client: ExtProcClient, body: Buffer, into: number[], onRejected: () => void): Promise<void> {
  try {
    into.push(await client.exchange(body));
  } catch (e) {
    if (!(e instanceof ImmediateResponse)) throw e;
    onRejected();
  }
}

/** Exchanges one at a time for `ms`, round trips into `into`. */
export async function driveSerial(client: ExtProcClient, bodies: readonly Buffer[], ms: number, into: number[], onRejected: () => void): Promise<void> {
  const deadline = performance.now() + ms;
  for (let i = 0; performance.now() < deadline; i++) await timedExchange(client, bodies[i % bodies.length]!, into, onRejected);
}

/**
 * `concurrency` exchanges in flight until `ms` have passed (those in flight then are finished and counted), round
 * trips into `into`. Resolves with the seconds from the first exchange to the last answer: requests/s is
 * answered exchanges over that.
 */
export async function driveConcurrent(client: ExtProcClient, bodies: readonly Buffer[], ms: number, concurrency: number, into: number[], onRejected: () => void): Promise<number> {
  const deadline = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    for (let i = w; performance.now() < deadline; i += concurrency) await timedExchange(client, bodies[i % bodies.length]!, into, onRejected);
  }));
  return (performance.now() - t0) / 1000;
}

/** Warm-up: `count` exchanges one at a time, untimed (connections, the JIT, the prefix index). */
export async function warmUp(client: ExtProcClient, bodies: readonly Buffer[], count = 50): Promise<void> {
  for (let i = 0; i < count; i++) await timedExchange(client, bodies[i % bodies.length]!, [], () => undefined);
}

/** A step of `drivePaired`, in the order it is taken: what a test of its schedule records. */
export interface PairedStep {
  /** -1 for the untimed warm-up before the rounds. */
  readonly round: number;
  /** 0 the first port given (the EPP, or bench:ab's A), 1 the second (the floor, or B). */
  readonly side: 0 | 1;
  /** `warm-up`: the untimed exchanges before the rounds; `serial`: the phase at one in flight; `warm`: unmeasured load
   * at `concurrency` in flight; `measured`: the phase at `concurrency` in flight that requests/s is read from. */
  readonly phase: 'warm-up' | 'serial' | 'warm' | 'measured';
}

export interface PairedOptions {
  /** Paired rounds; even, so each side goes first as often (default ROUNDS). */
  readonly rounds?: number;
  /** Unmeasured load at `concurrency` in flight before each measured phase, both sides alike (default 0). */
  readonly warmMs?: number;
  /** Called as each step starts, for tests and progress. */
  readonly onStep?: (step: PairedStep) => void;
}

/** A side's load over the paired rounds, with its requests/s round by round (in round order). */
export interface PairedLoad extends Load {
  readonly roundRps: number[];
}

/**
 * Which side goes first in round `round`: the first port in even rounds, the second in odd ones (A B, B A, A B, …),
 * the alternation `paired-rounds.ts` uses between an EPP and its floor (`eppFirst`). Always the same side first
 * measured it right after the other side's burst, or after the warm-up, every round: an A/A run of one build read
 * B ÷ A 1.04-2.09 and B won 8 of 9 A/B runs that way.
 */
export function pairedSideOrder(round: number): readonly [0, 1] | readonly [1, 0] {
  return eppFirst(round, 0) ? [0, 1] : [1, 0];
}

/**
 * The EPP and the floor (or any two ext_proc servers, e.g. bench:ab's two builds), paired: `rounds` rounds, each a
 * slice against each server in the order `pairedSideOrder` alternates round by round. A slice is a phase at one
 * request in flight, `warmMs` of unmeasured load at `concurrency` in flight, then the measured phase at `concurrency`
 * in flight, as `paired-rounds.ts` slices are; `phaseSeconds` per phase and server over all rounds. On a shared
 * machine other work comes and goes by the second; alternating short slices gives both servers the same share of it,
 * so their ratio holds where back-to-back runs would not, and each round's requests/s (`roundRps`) gives a per-round
 * ratio whose spread shows the noise.
 */
export async function drivePaired(eppPort: number, floorPort: number, bodies: Buffer[], phaseSeconds: number, concurrency: number, options: PairedOptions = {}): Promise<{ epp: PairedLoad; floor: PairedLoad }> {
  const rounds = options.rounds ?? ROUNDS;
  const warmMs = options.warmMs ?? 0;
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`rounds must be an integer >= 1, got ${rounds}`);
  if (!(Number.isFinite(warmMs) && warmMs >= 0)) throw new Error(`warmMs must be a non-negative number of milliseconds, got ${warmMs}`);
  const step = options.onStep ?? (() => undefined);
  const clients = [new ExtProcClient(eppPort), new ExtProcClient(floorPort)];
  const serial: number[][] = [[], []];
  const conc: number[][] = [[], []];
  const concSeconds = [0, 0];
  const roundRps: number[][] = [[], []];
  const rejected = [0, 0];
  const slice = (phaseSeconds * 1000) / rounds;
  try {
    for (const k of pairedSideOrder(0)) {
      step({ round: -1, side: k, phase: 'warm-up' });
      await warmUp(clients[k]!, bodies);
    }
    for (let round = 0; round < rounds; round++) {
      for (const k of pairedSideOrder(round)) {
        const c = clients[k]!;
        const reject = () => { rejected[k]!++; };
        step({ round, side: k, phase: 'serial' });
        await driveSerial(c, bodies, slice, serial[k]!, reject);
        if (warmMs > 0) {
          // Not timed; an answer rejected here still counts as rejected.
          step({ round, side: k, phase: 'warm' });
          await driveConcurrent(c, bodies, warmMs, concurrency, [], reject);
        }
        step({ round, side: k, phase: 'measured' });
        const before = conc[k]!.length;
        const seconds = await driveConcurrent(c, bodies, slice, concurrency, conc[k]!, reject);
        concSeconds[k]! += seconds;
        roundRps[k]!.push((conc[k]!.length - before) / seconds);
      }
    }
  } finally {
    for (const c of clients) c.close();
  }
  const load = (k: number): PairedLoad => {
    const s = serial[k]!.sort((a, b) => a - b);
    const c = conc[k]!.sort((a, b) => a - b);
    return { rejected: rejected[k]!, answered: s.length + c.length, serialP50: quantile(s, 0.5), serialP99: quantile(s, 0.99), rps: c.length / concSeconds[k]!, concP50: quantile(c, 0.5), concP99: quantile(c, 0.99), roundRps: roundRps[k]! };
  };
  return { epp: load(0), floor: load(1) };
}
