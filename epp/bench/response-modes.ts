/**
 * `npm run bench:response-modes -w epp`: what it costs the EPP to see the end of each response, per ext_proc response
 * mode, at the target of 1,000 streamed responses/s (issue 11, "256 pods on one EPP") and at a rate a shared 2-core
 * machine can sustain (`--rates`, default 50 and 1000), every mode at every rate in one invocation.
 *
 * The real EPP runs in its own process (`dist/main.js`, static endpoints, its 50 ms scraper on loopback fake vLLM
 * `/metrics` pages, the default scheduling config), one fresh process per mode, and this process plays the gateway's
 * Envoy over real gRPC with Envoy's own ext_proc messages (the package's protos), one `Process` stream per request:
 *
 * - request: `request_headers` (with `protocol_config`, as Envoy sends on a stream's first message), the answer, then
 *   the whole chat body in one BUFFERED `request_body`, whose answer carries the pick (kvroute's EnvoyFilter default);
 * - response: `response_headers`, then one SSE event per token, shaped like vLLM's `chat.completion.chunk` (~210 B), an
 *   event every `--itl-ms`, 100-300 tokens per response, then `data: [DONE]` with end of stream;
 * - the stream's end as Envoy ends it, `closeStream()`: END_STREAM, then RST_STREAM at once
 *   (envoyproxy/envoy source/extensions/filters/common/ext_proc/grpc_client_impl.h `ProcessorStreamImpl::close`
 *   @ v1.35.0 L133-146).
 *
 * Modes, all in one invocation:
 * - `full-duplex`: response body FULL_DUPLEX_STREAMED (what Istio's native InferencePool routing configures). Every
 *   event goes to the EPP, and the client sees it only once the EPP has sent it back; the stream ends with the
 *   exchange, after the end-of-stream chunk came back.
 * - `none-trailers-send`: response body NONE, trailers SEND (kvroute's EnvoyFilter). The body goes straight to the
 *   client; the stream stays open until the exchange ends (`Filter::onDestroy`, `ext_proc.cc` @ v1.35.0 L667-701; on
 *   Envoy >= 1.37 because trailers SEND is still pending, `ProcessorState::isLastResponseAfterHeaderResp`
 *   `processor_state.cc` @ v1.37.0 L652-677), and the EPP releases the request on the half-close.
 * - `none-early-close`: response body NONE, trailers SKIP on Envoy >= 1.37 (#41425's stream-close optimization,
 *   `Filter::closeGrpcStreamIfLastRespReceived` `ext_proc.cc` @ v1.37.0 L1721-1772): the stream is closed right after
 *   the response-headers answer, so the EPP counts the request as finished at the first byte.
 *
 * Per mode: achieved responses/s (steady state), the EPP's CPU seconds per 1,000 responses (`/proc/<pid>/stat`, and net
 * of the idle scraper's CPU measured just before), its event-loop delay (prom-client's p99 per scrape), messages and
 * gRPC payload bytes crossing the EPP per response, the latency the EPP adds before the client's first response byte
 * (p50/p99) and, in full duplex, to every token, and the in-flight gauge (`inference_objective_running_requests`, scraped
 * every `--sample-ms`) against the client's own count of open responses, and its value once all have ended.
 *
 * This process, the EPP and the fake pods share the machine; results are ratios of one invocation. Writes
 * bench/response-modes.json (or `--out`).
 */
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi, type ProcessingRequest } from '@kvroute/protocol/envoy';
import { FakeVllmServer } from '@kvroute/testkit';

// ---------------------------------------------------------------------------------------------------------------------
// Options

export const MODES = ['full-duplex', 'none-trailers-send', 'none-early-close'] as const;
export type Mode = (typeof MODES)[number];

interface ModeSpec {
  readonly label: string;
  /** `protocol_config.response_body_mode`, and the EPP's `--response-body-mode`. */
  readonly responseBodyMode: 'FULL_DUPLEX_STREAMED' | 'NONE';
  /** When Envoy closes the ext_proc stream. */
  readonly closeAt: 'exchange-end' | 'response-headers-answer';
}

const MODE_SPECS: Readonly<Record<Mode, ModeSpec>> = {
  'full-duplex': { label: '(a) response body FULL_DUPLEX_STREAMED, trailers SEND', responseBodyMode: 'FULL_DUPLEX_STREAMED', closeAt: 'exchange-end' },
  'none-trailers-send': { label: '(b) response body NONE, trailers SEND (kvroute)', responseBodyMode: 'NONE', closeAt: 'exchange-end' },
  'none-early-close': { label: '(c) response body NONE, trailers SKIP, Envoy >= 1.37 early close', responseBodyMode: 'NONE', closeAt: 'response-headers-answer' },
};

interface Options {
  /** Offered rates, each mode runs at each (ascending). */
  rates: number[];
  seconds: number;
  tokensMin: number;
  tokensMax: number;
  itlMs: number;
  pods: number;
  sampleMs: number;
  idleSeconds: number;
  modes: Mode[];
  /** Where the JSON goes; undefined: nothing is written (a quick check without --out). */
  out: string | undefined;
}

const DEFAULTS: Options = {
  rates: [50, 1000], seconds: 15, tokensMin: 100, tokensMax: 300, itlMs: 20, pods: 8, sampleMs: 200, idleSeconds: 3,
  modes: [...MODES], out: path.join(__dirname, 'response-modes.json'),
};
const QUICK: Partial<Options> = { rates: [100], seconds: 6, tokensMin: 20, tokensMax: 60, idleSeconds: 1 };

const USAGE = `usage: npm run bench:response-modes -w epp -- [options]
  --rates A,B       offered responses per second, open loop; every mode runs at each (default ${DEFAULTS.rates.join(',')})
  --seconds N       arrival window per mode; throughput is counted after the longest response's duration (default ${DEFAULTS.seconds})
  --tokens A-B      SSE events (tokens) per response, uniform (default ${DEFAULTS.tokensMin}-${DEFAULTS.tokensMax})
  --itl-ms N        time between tokens (default ${DEFAULTS.itlMs})
  --pods N          static endpoints the EPP scrapes (default ${DEFAULTS.pods})
  --sample-ms N     how often the in-flight gauge is scraped (default ${DEFAULTS.sampleMs})
  --modes LIST      comma list of ${MODES.join(', ')} (default all)
  --out FILE        JSON results (default bench/response-modes.json; with --quick, nothing unless given)
  --quick           a short check that the benchmark runs (100/s, 6 s, 20-60 tokens); writes no file`;

class UsageError extends Error {}

function positive(flag: string, v: string | undefined, integer = true): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag}: must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function parseOptions(argv: readonly string[]): Options | undefined {
  const o: Options = { ...DEFAULTS, modes: [...DEFAULTS.modes] };
  // A quick check never overwrites the recorded run (bench/response-modes.json) unless --out says where to write.
  if (argv.includes('--quick')) Object.assign(o, QUICK, { out: undefined });
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string | undefined => argv[++i];
    switch (flag) {
      case '--quick': break;
      case '--help': case '-h': return undefined;
      case '--rates': {
        const v = value();
        o.rates = (v ?? '').split(',').map((x) => positive(flag, x, false)).sort((a, b) => a - b);
        break;
      }
      case '--seconds': o.seconds = positive(flag, value(), false); break;
      case '--itl-ms': o.itlMs = positive(flag, value(), false); break;
      case '--pods': o.pods = positive(flag, value()); break;
      case '--sample-ms': o.sampleMs = positive(flag, value()); break;
      case '--out': {
        const v = value();
        if (!v) throw new UsageError('--out: needs a file name');
        o.out = path.resolve(v);
        break;
      }
      case '--tokens': {
        const v = value() ?? '';
        const m = /^(\d+)-(\d+)$/.exec(v);
        if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1])) throw new UsageError(`--tokens: must be A-B with 1 <= A <= B, got ${JSON.stringify(v)}`);
        o.tokensMin = Number(m[1]);
        o.tokensMax = Number(m[2]);
        break;
      }
      case '--modes': {
        const list = (value() ?? '').split(',').filter((s) => s !== '');
        const bad = list.filter((m) => !(MODES as readonly string[]).includes(m));
        if (list.length === 0 || bad.length > 0) throw new UsageError(`--modes: must be a comma list of ${MODES.join(', ')}, got ${JSON.stringify(bad.join(',') || '')}`);
        o.modes = list as Mode[];
        break;
      }
      default:
        throw new UsageError(`unknown flag ${JSON.stringify(flag)} (see --help)`);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------------------------------
// Wire format

const SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';
const api = loadEnvoyApi();
const serviceDef = api.packageDefinition[SERVICE] as grpc.ServiceDefinition;
const encode = serviceDef.Process.requestSerialize as (m: ProcessingRequest) => Buffer;
function encodeRequest(m: ProcessingRequest): Buffer {
  return encode(m);
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Decoded = Record<string, any>;
const decode = serviceDef.Process.responseDeserialize as (b: Buffer) => Decoded;

const MODEL = 'Qwen/Qwen3-0.6B';
const WORDS = ('the of and to in a is that for it as was with be by on not this are or from at which have an they you '
  + 'cache route prefix block token model server request latency queue memory tensor batch decode prefill kernel').split(' ');

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function headerMap(h: Record<string, string>): { headers: { key: string; raw_value: Buffer }[] } {
  return { headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
}

/** Chat bodies of ~2 KB in 16 families sharing a system prompt, so the prefix scorer does its usual work. */
function chatBodies(count: number): Buffer[] {
  const rnd = lcg(7);
  const text = (n: number) => Array.from({ length: n }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ');
  const systems = Array.from({ length: 16 }, () => text(250));
  return Array.from({ length: count }, (_, i) => Buffer.from(JSON.stringify({
    model: MODEL,
    stream: true,
    messages: [{ role: 'system', content: systems[i % systems.length] }, { role: 'user', content: text(60) }],
  })));
}

/**
 * One SSE event per token as vLLM's OpenAI server streams a chat completion (vllm-project/vllm
 * vllm/entrypoints/openai/serving_chat.py `chat_completion_stream_generator`: `data: {chunk.model_dump_json(
 * exclude_unset=True)}\n\n` per delta, then `data: [DONE]\n\n`; the chunk is protocol.py's ChatCompletionStreamResponse).
 */
function sseEvent(id: string, created: number, token: string, finish: string | null): Buffer {
  return Buffer.from(`data: ${JSON.stringify({
    id, object: 'chat.completion.chunk', created, model: MODEL,
    choices: [{ index: 0, delta: { content: token }, logprobs: null, finish_reason: finish }],
  })}\n\n`);
}
const DONE_EVENT = Buffer.from('data: [DONE]\n\n');

/**
 * The response body messages, encoded once: the EPP treats the events as opaque bytes, so responses share a pool of
 * distinct events (the driver must not cost more per message than the EPP it measures). `TOKEN_MESSAGES[i]` is a
 * mid-stream event, `LAST_TOKEN_MESSAGES[i]` the one with `finish_reason`, `DONE_MESSAGE` ends the body.
 */
const TOKEN_POOL = 509;
const TOKEN_MESSAGES: Buffer[] = [];
const LAST_TOKEN_MESSAGES: Buffer[] = [];
for (let i = 0; i < TOKEN_POOL; i++) {
  const id = `chatcmpl-${(0x9e3779b9 * (i + 1) >>> 0).toString(16).padStart(8, '0')}c0ffee${i.toString(16).padStart(4, '0')}`;
  const token = ` ${WORDS[i % WORDS.length]}`;
  TOKEN_MESSAGES.push(encodeRequest({ response_body: { body: sseEvent(id, 1764400000 + i, token, null), end_of_stream: false } }));
  LAST_TOKEN_MESSAGES.push(encodeRequest({ response_body: { body: sseEvent(id, 1764400000 + i, token, 'stop'), end_of_stream: false } }));
}
const DONE_MESSAGE = encodeRequest({ response_body: { body: DONE_EVENT, end_of_stream: true } });
/** ProcessingResponse's `response_body` is field 4 (external_processor.proto): its tag byte, length-delimited. */
const RESPONSE_BODY_TAG = (4 << 3) | 2;

// ---------------------------------------------------------------------------------------------------------------------
// The EPP process

interface EppProcess {
  readonly child: ChildProcess;
  readonly grpcPort: number;
  readonly metricsPort: number;
  stop(): Promise<void>;
}

async function startEppProcess(endpoints: string, responseBodyMode: 'none' | 'full-duplex'): Promise<EppProcess> {
  const main = path.join(__dirname, '..', 'dist', 'main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [main, '--endpoints', endpoints, '--host', '127.0.0.1', '--grpc-port', '0',
    '--grpc-health-port', '0', '--metrics-port', '0', '--request-body-mode', 'buffered', '--response-body-mode', responseBodyMode,
    '--shutdown-grace-period', '1s'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The EPP dies with this process, however it ends.
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  child.once('exit', () => process.removeListener('exit', killChild));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000); });
  const ports = await new Promise<{ grpcPort: number; metricsPort: number }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the EPP did not start within 30 s: ${stderr}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { grpcPort: number; metricsPort: number });
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the EPP exited with ${code}: ${stderr}`)); });
  });
  return {
    child,
    ...ports,
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }),
  };
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds of a process, from `/proc/<pid>/stat` (fields 14 and 15, in clock ticks). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Seconds the process's threads spent runnable but not running (the second field of each thread's schedstat). */
function runQueueSeconds(pid: number): number {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e9;
}

function getText(port: number, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The sum of a metric's samples on a Prometheus text page (the EPP's own exposition; labels ignored). */
function metricSum(page: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const line of page.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

const IN_FLIGHT_METRIC = 'inference_objective_running_requests';
const LAG_P99_METRIC = 'nodejs_eventloop_lag_p99_seconds';

// ---------------------------------------------------------------------------------------------------------------------
// The Envoy side

interface Exchange {
  readonly index: number;
  readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  /** Body messages: `tokens` events and the final `[DONE]` with end of stream. */
  readonly chunks: number;
  readonly tokenBase: number;
  readonly measured: boolean;
  state: 'request-headers' | 'request-body' | 'streaming' | 'closed';
  /** performance.now() of the response headers (and, in full duplex, of the first event) going out. */
  responseAt: number;
  nextChunk: number;
  echoed: number;
  /** Whether the client's response is still open (the client's own in-flight count). */
  open: boolean;
  /** When the last byte of the response reaches the client, in full duplex once the EPP echoed it. */
  endAt: number;
  sentAt: number[];
  readonly requestStarted: number;
  msgsSent: number;
  msgsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  failed?: string;
}

interface RunStats {
  started: number;
  completed: number;
  failed: number;
  failures: string[];
  /** When each measured response ended (performance.now()). */
  endTimes: number[];
  /** Completions counted after the ramp (arrival window minus the longest response). */
  steadyCompletions: number;
  steadySeconds: number;
  generatorLagMaxMs: number;
  msgsSent: number;
  msgsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  firstByteMs: number[];
  tokenEchoMs: number[];
  pickMs: number[];
  /** Response body messages the EPP sent back (full duplex). */
  echoes: number;
  /** Why the run was cut short, when the machine could not keep up with the offered rate. */
  saturated?: string;
}

/**
 * Every ext_proc stream ends with an RST_STREAM (Envoy's closeStream), and a Node (nghttp2 >= 1.57) server answers
 * more than its rapid-reset budget of RST_STREAMs on one connection (a burst of 1000, then 33 per second:
 * `streamResetBurst`/`streamResetRate`) with GOAWAY(INTERNAL_ERROR), which fails every stream on it. The driver
 * therefore spreads exchanges over enough connections to stay under 33 per second each, so that the benchmark
 * measures the response modes and not that limit (see the EPP README).
 */
export const RESETS_PER_CONNECTION_PER_SECOND = 25;

class EnvoySide {
  private readonly clients: grpc.Client[];
  private readonly client: grpc.Client;
  readonly live = new Set<Exchange>();
  /** Responses open at the client right now (picked, last byte not yet delivered). */
  openResponses = 0;
  private seq = 0;
  private readonly bodies = chatBodies(64);
  private readonly rnd = lcg(42);

  constructor(target: string, private readonly mode: ModeSpec, private readonly o: Options, connections: number) {
    this.clients = Array.from({ length: connections }, () => new grpc.Client(target, grpc.credentials.createInsecure(), {
      'grpc-node.max_session_memory': 1024,
      // Envoy's own HTTP/2 windows are large (envoy/config/core/v3/protocol.proto Http2ProtocolOptions:
      // initial_stream_window_size defaults to 256 MiB, initial_connection_window_size to the same): the client must not
      // be what throttles the EPP's answers.
      'grpc-node.flow_control_window': 64 * 1024 * 1024,
      // One connection per client (grpc-js otherwise shares one subchannel between clients of the same target).
      'grpc.use_local_subchannel_pool': 1,
    }));
    this.client = this.clients[0];
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  /** One probe exchange; resolves to whether the EPP picked an endpoint (false: not ready yet, e.g. 503). */
  probe(): Promise<boolean> {
    return new Promise((resolve) => {
      const call = this.client.makeBidiStreamRequest<Buffer, Buffer>(`/${SERVICE}/Process`, (b) => b, (b) => b);
      let answers = 0;
      const done = (ok: boolean) => { call.end(); setImmediate(() => call.cancel()); resolve(ok); };
      call.on('error', () => resolve(false));
      call.on('data', (b: Buffer) => {
        const m = decode(b);
        if (m.response === 'immediate_response') return done(false);
        if (++answers === 1) call.write(encode({ request_body: { body: this.bodies[0], end_of_stream: true } }));
        else done(true);
      });
      call.write(encode(this.requestHeaders('probe')));
    });
  }

  private requestHeaders(id: string): ProcessingRequest {
    return {
      request_headers: {
        headers: headerMap({
          ':method': 'POST', ':path': '/v1/chat/completions', ':authority': 'llm.example.com', ':scheme': 'http',
          'content-type': 'application/json', 'x-request-id': id, 'x-session-id': `s-${this.seq % 512}`,
        }),
        end_of_stream: false,
      },
      metadata_context: { filter_metadata: {} },
      protocol_config: { request_body_mode: 'BUFFERED', response_body_mode: this.mode.responseBodyMode, send_body_without_waiting_for_header_response: false },
    };
  }

  /** Opens one exchange: request headers now, the body once they are answered (Envoy's BUFFERED order). */
  start(measured: boolean, stats: RunStats): Exchange {
    const index = this.seq++;
    const id = `bench-${index}`;
    const tokens = this.o.tokensMin + Math.floor(this.rnd() * (this.o.tokensMax - this.o.tokensMin + 1));
    const chunks = tokens + 1;
    const call = this.clients[index % this.clients.length].makeBidiStreamRequest<Buffer, Buffer>(`/${SERVICE}/Process`, (b) => b, (b) => b);
    const ex: Exchange = {
      index, call, chunks, tokenBase: (index * 7919) % TOKEN_POOL, measured, state: 'request-headers', responseAt: 0, nextChunk: 0, echoed: 0, open: false, endAt: 0,
      sentAt: [], requestStarted: performance.now(), msgsSent: 0, msgsReceived: 0, bytesSent: 0, bytesReceived: 0,
    };
    const requestStarted = ex.requestStarted;
    this.live.add(ex);
    call.on('error', (e: Error) => this.fail(ex, stats, `stream error: ${e.message}`));
    call.on('data', (b: Buffer) => {
      ex.msgsReceived++;
      ex.bytesReceived += b.length;
      if (ex.state === 'closed') return;
      // Mid-stream echoes are recognised by their tag and counted; the last one is decoded to check end_of_stream.
      if (ex.state === 'streaming' && b[0] === RESPONSE_BODY_TAG && ex.echoed > 0 && ex.echoed < ex.chunks - 1) {
        const i = ex.echoed++;
        if (measured && i % 8 === 0) stats.tokenEchoMs.push(performance.now() - ex.sentAt[i]);
        stats.echoes += measured ? 1 : 0;
        return;
      }
      const m = decode(b);
      switch (m.response) {
        case 'request_headers':
          ex.state = 'request-body';
          this.write(ex, encode({ request_body: { body: this.bodies[index % this.bodies.length], end_of_stream: true } }));
          return;
        case 'request_body': {
          if (measured) stats.pickMs.push(performance.now() - requestStarted);
          // The pick is in: the request goes upstream, which answers at once (the model's time to first token is the
          // same in every mode); the response headers go to the EPP, and in full duplex the first event with them.
          ex.open = true;
          this.openResponses++;
          ex.state = 'streaming';
          ex.responseAt = performance.now();
          this.write(ex, encode({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }), end_of_stream: false } }));
          if (this.mode.responseBodyMode === 'FULL_DUPLEX_STREAMED') this.sendChunk(ex);
          return;
        }
        case 'response_headers':
          if (this.mode.responseBodyMode === 'NONE') {
            // Nothing of the body waits for the EPP: the first byte goes out with these headers.
            if (measured) stats.firstByteMs.push(performance.now() - ex.responseAt);
            if (this.mode.closeAt === 'response-headers-answer') this.closeStream(ex);
          }
          return;
        case 'response_body': {
          const i = ex.echoed++;
          const now = performance.now();
          stats.echoes += measured ? 1 : 0;
          if (i === 0 && measured) stats.firstByteMs.push(now - ex.responseAt);
          // Every 8th token's echo is kept: enough for the p99 without millions of samples.
          if (measured && i % 8 === 0) stats.tokenEchoMs.push(now - ex.sentAt[i]);
          const eos = m.response_body?.response?.body_mutation?.streamed_response?.end_of_stream === true;
          if (eos !== (i === ex.chunks - 1)) return this.fail(ex, stats, `echo ${i} of ${ex.chunks} has end_of_stream ${eos}`);
          if (eos) {
            this.finishResponse(ex, stats);
            this.closeStream(ex);
          }
          return;
        }
        default:
          this.fail(ex, stats, `unexpected answer ${String(m.response)}${m.immediate_response ? ` ${String(m.immediate_response.status?.code)}: ${String(m.immediate_response.body)}` : ''}`);
      }
    });
    this.write(ex, encode(this.requestHeaders(id)));
    return ex;
  }

  /** Sends the events that are due (full duplex), or ends the response when its last event is due (body NONE). */
  tick(now: number, stats: RunStats): void {
    for (const ex of this.live) {
      if (ex.state !== 'streaming' && !(ex.state === 'closed' && ex.open)) continue;
      if (this.mode.responseBodyMode === 'FULL_DUPLEX_STREAMED') {
        while (ex.state === 'streaming' && ex.nextChunk < ex.chunks && ex.responseAt + ex.nextChunk * this.o.itlMs <= now) this.sendChunk(ex);
      } else if (ex.responseAt + (ex.chunks - 1) * this.o.itlMs <= now) {
        // The last event reached the client straight from the upstream: the exchange ends, Envoy destroys the filter.
        this.finishResponse(ex, stats);
        if (ex.state !== 'closed') this.closeStream(ex);
        this.live.delete(ex);
      }
    }
  }

  /** How long the oldest message still waiting for its answer has waited (ms). */
  oldestPendingMs(now: number): number {
    let oldest = 0;
    for (const ex of this.live) {
      if (ex.state === 'request-headers' || ex.state === 'request-body') oldest = Math.max(oldest, now - ex.requestStarted);
      else if (ex.state === 'streaming' && ex.echoed < ex.nextChunk) oldest = Math.max(oldest, now - ex.sentAt[ex.echoed]);
    }
    return oldest;
  }

  /** Cancels every exchange (a saturated run): nothing of them is counted. */
  abortAll(): void {
    for (const ex of this.live) {
      ex.state = 'closed';
      if (ex.open) {
        ex.open = false;
        this.openResponses--;
      }
      ex.call.cancel();
    }
    this.live.clear();
  }

  private sendChunk(ex: Exchange): void {
    const i = ex.nextChunk++;
    ex.sentAt[i] = performance.now();
    const message = i === ex.chunks - 1 ? DONE_MESSAGE : i === ex.chunks - 2 ? LAST_TOKEN_MESSAGES[(ex.tokenBase + i) % TOKEN_POOL]
      : TOKEN_MESSAGES[(ex.tokenBase + i) % TOKEN_POOL];
    this.write(ex, message);
  }

  private write(ex: Exchange, b: Buffer): void {
    ex.msgsSent++;
    ex.bytesSent += b.length;
    ex.call.write(b);
  }

  private finishResponse(ex: Exchange, stats: RunStats): void {
    if (!ex.open) return;
    ex.open = false;
    ex.endAt = performance.now();
    this.openResponses--;
    if (ex.measured) {
      stats.completed++;
      stats.endTimes.push(ex.endAt);
    }
    this.account(ex, stats);
  }

  private account(ex: Exchange, stats: RunStats): void {
    if (!ex.measured) return;
    stats.msgsSent += ex.msgsSent;
    stats.msgsReceived += ex.msgsReceived;
    stats.bytesSent += ex.bytesSent;
    stats.bytesReceived += ex.bytesReceived;
  }

  /** Envoy's closeStream(): END_STREAM, then RST_STREAM (grpc_client_impl.h ProcessorStreamImpl::close @ v1.35.0 L133-146). */
  private closeStream(ex: Exchange): void {
    if (ex.state === 'closed') return;
    ex.state = 'closed';
    ex.call.end();
    setImmediate(() => ex.call.cancel());
    if (!ex.open) this.live.delete(ex);
  }

  private fail(ex: Exchange, stats: RunStats, why: string): void {
    // After our own close the cancellation surfaces here too: not a failure.
    if (ex.state === 'closed') return;
    if (ex.measured) {
      stats.failed++;
      if (stats.failures.length < 5) stats.failures.push(why);
    }
    if (ex.open) {
      ex.open = false;
      this.openResponses--;
    }
    ex.state = 'closed';
    ex.call.cancel();
    this.live.delete(ex);
  }
}

function newStats(): RunStats {
  return {
    started: 0, completed: 0, failed: 0, failures: [], endTimes: [], steadyCompletions: 0, steadySeconds: 0, generatorLagMaxMs: 0,
    msgsSent: 0, msgsReceived: 0, bytesSent: 0, bytesReceived: 0, firstByteMs: [], tokenEchoMs: [], pickMs: [], echoes: 0,
  };
}

interface Sample {
  readonly t: number;
  readonly gauge: number;
  /** The client's count when the scrape was sent and when it came back. */
  readonly trueBefore: number;
  readonly trueAfter: number;
  readonly lagP99Ms?: number;
}

/** A run is cut short once an answer or an arrival is this late: the machine cannot keep up with the offered rate. */
const SATURATION_MS = 5000;

/**
 * Open-loop arrivals at `rate` for `seconds`, every exchange run to its end; scrapes the in-flight gauge meanwhile when
 * `metricsPort` is given. Arrivals are never skipped: a late tick starts the ones it owes at once. When an arrival or
 * an answer falls `SATURATION_MS` behind, the run stops (everything open is cancelled) and says so.
 */
async function runLoad(side: EnvoySide, o: Options, rate: number, seconds: number, measured: boolean, metricsPort?: number): Promise<{ stats: RunStats; samples: Sample[]; endedAt: number }> {
  const stats = newStats();
  const samples: Sample[] = [];
  let total = Math.round(rate * seconds);
  let nextCheck = 0;
  const longestMs = o.tokensMax * o.itlMs;
  const t0 = performance.now();
  let sampling = metricsPort !== undefined;
  const sampler = (async () => {
    while (sampling) {
      const before = side.openResponses;
      const t = performance.now() - t0;
      try {
        const page = await getText(metricsPort!, '/metrics');
        const lag = metricSum(page, LAG_P99_METRIC);
        samples.push({ t, gauge: metricSum(page, IN_FLIGHT_METRIC) ?? 0, trueBefore: before, trueAfter: side.openResponses, ...(lag !== undefined ? { lagP99Ms: lag * 1000 } : {}) });
      } catch {
        // a scrape that failed under load is simply not a sample
      }
      await new Promise((r) => setTimeout(r, o.sampleMs));
    }
  })();
  await new Promise<void>((resolve) => {
    const steadyFrom = t0 + longestMs;
    const arrivalsEnd = t0 + seconds * 1000;
    const timer = setInterval(() => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - t0) / 1000) * rate));
      if (due > stats.started) stats.generatorLagMaxMs = Math.max(stats.generatorLagMaxMs, now - (t0 + (stats.started / rate) * 1000));
      if (now >= nextCheck && stats.saturated === undefined) {
        nextCheck = now + 100;
        const pending = side.oldestPendingMs(now);
        const lag = due > stats.started ? now - (t0 + (stats.started / rate) * 1000) : 0;
        if (pending > SATURATION_MS || lag > SATURATION_MS) {
          stats.saturated = `after ${r2((now - t0) / 1000)} s: ${pending > SATURATION_MS ? `an answer ${Math.round(pending)} ms late` : `arrivals ${Math.round(lag)} ms behind`}`;
          stats.steadySeconds = (now - t0) / 1000;
          total = stats.started;
          side.abortAll();
          clearInterval(timer);
          resolve();
          return;
        }
      }
      while (stats.started < due) {
        side.start(measured, stats);
        stats.started++;
      }
      side.tick(now, stats);
      if (stats.started === total && side.live.size === 0) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
    // Completions before the longest response could have ended are the ramp-up, after the arrivals stopped the
    // ramp-down: neither is steady state.
    stats.steadySeconds = Math.max(0, (arrivalsEnd - steadyFrom) / 1000);
  });
  // Exchanges the EPP answered in full duplex also leave `live` through their own echo; wait for stragglers.
  const endedAt = performance.now();
  if (stats.saturated === undefined) {
    const from = t0 + longestMs;
    const to = t0 + seconds * 1000;
    stats.steadyCompletions = stats.endTimes.filter((t) => t >= from && t <= to).length;
  }
  sampling = false;
  await sampler;
  return { stats, samples, endedAt };
}

// ---------------------------------------------------------------------------------------------------------------------
// Statistics and report

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

interface ModeResult {
  mode: Mode;
  label: string;
  offeredPerSecond: number;
  /** Responses per second completed in steady state; when saturated, the rate of response bodies the EPP echoed. */
  achievedPerSecond: number;
  saturated: string | null;
  started: number;
  completed: number;
  failed: number;
  failures: string[];
  generatorLagMaxMs: number;
  eppCpuSecondsPer1000: number;
  eppCpuSecondsPer1000NetOfIdle: number;
  eppIdleCpuPerSecond: number;
  eppCoresBusy: number;
  /** CPU seconds per 1,000 responses (net) plus the idle cost: the EPP cores 1,000 responses/s would keep busy. */
  eppCoresAt1000PerSecond: number;
  eventLoopLagP99Ms: { median: number; max: number };
  perResponse: { messagesToEpp: number; messagesFromEpp: number; bytesToEpp: number; bytesFromEpp: number };
  addedFirstByteMs: { p50: number; p99: number };
  addedPerTokenMs?: { p50: number; p99: number };
  pickMs: { p50: number; p99: number };
  inFlight: {
    samples: number;
    meanGauge: number;
    meanTrue: number;
    /** Distance of the gauge from [true count when the scrape left, true count when it came back]. */
    maxOutsideTrue: number;
    meanOutsideTrue: number;
    /**
     * The largest count below the open responses: requests the scorers believe finished while they still stream.
     * (A count above them is the EPP not yet having processed closes already sent: its event-loop delay.)
     */
    maxUndercount: number;
    /** Mean of the count above the open responses: closes in transit or queued in the EPP. */
    meanOvercount: number;
    /** The gauge once every response ended and every stream closed. */
    final: number;
    tracksTrueCount: boolean;
  };
  driverCpuSeconds: number;
  /** gRPC connections the exchanges were spread over (RESETS_PER_CONNECTION_PER_SECOND). */
  connections: number;
  /** Time the EPP's threads were runnable but waiting for a CPU (`/proc/<pid>/task/<tid>/schedstat`), per wall second. */
  eppRunQueueWaitPerSecond: number;
}

async function runMode(mode: Mode, rate: number, o: Options, endpoints: string): Promise<ModeResult> {
  const spec = MODE_SPECS[mode];
  const fullDuplex = spec.responseBodyMode === 'FULL_DUPLEX_STREAMED';
  const epp = await startEppProcess(endpoints, fullDuplex ? 'full-duplex' : 'none');
  const pid = epp.child.pid!;
  const connections = Math.max(1, Math.ceil(rate / RESETS_PER_CONNECTION_PER_SECOND));
  const side = new EnvoySide(`127.0.0.1:${epp.grpcPort}`, spec, o, connections);
  try {
    // Ready once the pods were scraped and a request gets a pick.
    const readyBy = Date.now() + 30_000;
    while (!(await side.probe())) {
      if (Date.now() > readyBy) throw new Error('the EPP never picked an endpoint');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Idle cost (the scraper, the event loop), then a short warm-up at a tenth of the rate (JIT, connection, pools).
    const idle0 = cpuSeconds(pid);
    const idleT = performance.now();
    await new Promise((r) => setTimeout(r, o.idleSeconds * 1000));
    const idlePerSecond = (cpuSeconds(pid) - idle0) / ((performance.now() - idleT) / 1000);
    await runLoad(side, o, Math.max(10, rate / 10), 1, false);

    const cpu0 = cpuSeconds(pid);
    const wait0 = runQueueSeconds(pid);
    const drv0 = process.cpuUsage();
    const t0 = performance.now();
    const { stats, samples, endedAt } = await runLoad(side, o, rate, o.seconds, true, epp.metricsPort);
    const wall = (endedAt - t0) / 1000;
    const cpu = cpuSeconds(pid) - cpu0;
    const drv = process.cpuUsage(drv0);

    // Every response has ended and every stream was closed: the gauge must come back to exactly 0.
    let final = NaN;
    const settleBy = Date.now() + 20_000;
    while (Date.now() < settleBy) {
      final = metricSum(await getText(epp.metricsPort, '/metrics'), IN_FLIGHT_METRIC) ?? 0;
      if (final === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }

    const outside = samples.map((s) => {
      const lo = Math.min(s.trueBefore, s.trueAfter);
      const hi = Math.max(s.trueBefore, s.trueAfter);
      return s.gauge < lo ? lo - s.gauge : s.gauge > hi ? s.gauge - hi : 0;
    });
    const under = samples.map((s) => Math.max(0, Math.min(s.trueBefore, s.trueAfter) - s.gauge));
    const over = samples.map((s) => Math.max(0, s.gauge - Math.max(s.trueBefore, s.trueAfter)));
    const meanTrue = samples.reduce((a, s) => a + (s.trueBefore + s.trueAfter) / 2, 0) / Math.max(1, samples.length);
    const maxOutside = Math.max(0, ...outside);
    const lags = samples.map((s) => s.lagP99Ms).filter((x): x is number => x !== undefined);
    // A saturated full-duplex run ends with most responses cut: count the work the EPP did in response bodies echoed.
    const meanBodyMessages = (o.tokensMin + o.tokensMax) / 2 + 1;
    const responsesDone = stats.saturated !== undefined && fullDuplex ? stats.echoes / meanBodyMessages : stats.completed;
    const n = Math.max(1, responsesDone);
    const netCpu = Math.max(0, cpu - idlePerSecond * wall);
    const achieved = stats.saturated !== undefined ? responsesDone / wall
      : stats.steadySeconds > 0 ? stats.steadyCompletions / stats.steadySeconds : stats.completed / wall;
    const finished = Math.max(1, stats.completed);
    return {
      mode,
      label: spec.label,
      offeredPerSecond: rate,
      achievedPerSecond: r2(achieved),
      saturated: stats.saturated ?? null,
      started: stats.started,
      completed: stats.completed,
      failed: stats.failed,
      failures: stats.failures,
      generatorLagMaxMs: r2(stats.generatorLagMaxMs),
      eppCpuSecondsPer1000: r3((cpu / n) * 1000),
      eppCpuSecondsPer1000NetOfIdle: r3((netCpu / n) * 1000),
      eppIdleCpuPerSecond: r3(idlePerSecond),
      eppCoresBusy: r2(cpu / wall),
      eppCoresAt1000PerSecond: r2((netCpu / n) * 1000 + idlePerSecond),
      eventLoopLagP99Ms: { median: r2(quantile(lags, 0.5)), max: r2(Math.max(0, ...lags)) },
      perResponse: {
        messagesToEpp: r2(stats.msgsSent / finished),
        messagesFromEpp: r2(stats.msgsReceived / finished),
        bytesToEpp: Math.round(stats.bytesSent / finished),
        bytesFromEpp: Math.round(stats.bytesReceived / finished),
      },
      addedFirstByteMs: { p50: r2(quantile(stats.firstByteMs, 0.5)), p99: r2(quantile(stats.firstByteMs, 0.99)) },
      ...(fullDuplex ? { addedPerTokenMs: { p50: r2(quantile(stats.tokenEchoMs, 0.5)), p99: r2(quantile(stats.tokenEchoMs, 0.99)) } } : {}),
      pickMs: { p50: r2(quantile(stats.pickMs, 0.5)), p99: r2(quantile(stats.pickMs, 0.99)) },
      inFlight: {
        samples: samples.length,
        meanGauge: r2(samples.reduce((a, s) => a + s.gauge, 0) / Math.max(1, samples.length)),
        meanTrue: r2(meanTrue),
        maxOutsideTrue: maxOutside,
        meanOutsideTrue: r2(outside.reduce((a, b) => a + b, 0) / Math.max(1, outside.length)),
        maxUndercount: Math.max(0, ...under),
        meanOvercount: r2(over.reduce((a, b) => a + b, 0) / Math.max(1, over.length)),
        final,
        // Never below the open responses by more than 2% (at least 5, exchanges in transit while the scrape travels),
        // and exactly 0 at the end. Above them it may be by the closes the EPP has not processed yet.
        tracksTrueCount: final === 0 && samples.length > 0
          && samples.every((s, i) => under[i] <= Math.max(5, 0.02 * Math.max(s.trueBefore, s.trueAfter))),
      },
      driverCpuSeconds: r2((drv.user + drv.system) / 1e6),
      connections,
      eppRunQueueWaitPerSecond: r2((runQueueSeconds(pid) - wait0) / wall),
    };
  } finally {
    side.close();
    await epp.stop();
  }
}

function table(results: readonly ModeResult[]): string {
  const rows: [string, (r: ModeResult) => string][] = [
    ['achieved responses/s (offered)', (r) => `${r.achievedPerSecond} (${r.offeredPerSecond})${r.saturated ? ' SATURATED' : ''}`],
    ['EPP CPU s per 1,000 responses (net of idle)', (r) => `${r.eppCpuSecondsPer1000} (${r.eppCpuSecondsPer1000NetOfIdle})`],
    ['EPP cores at 1,000 responses/s', (r) => String(r.eppCoresAt1000PerSecond)],
    ['EPP cores busy during the run', (r) => String(r.eppCoresBusy)],
    ['EPP event-loop delay p99, median / max (ms)', (r) => `${r.eventLoopLagP99Ms.median} / ${r.eventLoopLagP99Ms.max}`],
    ['messages to / from the EPP per response', (r) => `${r.perResponse.messagesToEpp} / ${r.perResponse.messagesFromEpp}`],
    ['gRPC payload bytes to / from the EPP per response', (r) => `${r.perResponse.bytesToEpp} / ${r.perResponse.bytesFromEpp}`],
    ['added to the first response byte p50 / p99 (ms)', (r) => `${r.addedFirstByteMs.p50} / ${r.addedFirstByteMs.p99}`],
    ['added to every token p50 / p99 (ms)', (r) => (r.addedPerTokenMs ? `${r.addedPerTokenMs.p50} / ${r.addedPerTokenMs.p99}` : '0 (not through the EPP)')],
    ['in flight: mean gauge / mean open responses', (r) => `${r.inFlight.meanGauge} / ${r.inFlight.meanTrue}`],
    ['in flight: largest count below the open responses', (r) => String(r.inFlight.maxUndercount)],
    ['in flight: mean count above them (closes not yet processed)', (r) => String(r.inFlight.meanOvercount)],
    ['in flight: gauge after all ended', (r) => String(r.inFlight.final)],
    ['in flight: tracks the open responses', (r) => (r.inFlight.tracksTrueCount ? 'yes' : 'NO')],
    ['failed exchanges', (r) => String(r.failed)],
    ['driver (Envoy side) CPU s during the run', (r) => String(r.driverCpuSeconds)],
    ['EPP waiting for a CPU, s per s (shared machine)', (r) => String(r.eppRunQueueWaitPerSecond)],
    ['gRPC connections', (r) => String(r.connections)],
  ];
  const head = `| | ${results.map((r) => `${r.mode} @ ${r.offeredPerSecond}/s`).join(' | ')} |\n|---|${results.map(() => '---').join('|')}|`;
  return [head, ...rows.map(([name, f]) => `| ${name} | ${results.map(f).join(' | ')} |`)].join('\n');
}

async function main(): Promise<number> {
  let o: Options | undefined;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bench:response-modes: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (!o) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const pods = await Promise.all(Array.from({ length: o.pods }, () => FakeVllmServer.start({ modelName: MODEL, engines: [{ waiting: 0, running: 4, kvUsage: 0.3 }] })));
  const endpoints = pods.map((p) => `127.0.0.1:${p.port}`).join(',');
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart: os.loadavg().map(r2),
    note: 'shared machine (other engineers running builds and tests); the driver, the EPP and the fake pods share its cores: compare modes within this invocation only',
  };
  process.stdout.write(`machine: ${machine.cpus} × ${machine.cpuModel}, node ${machine.node}, load ${machine.loadAverageAtStart.join(' ')}\n`);
  process.stdout.write(`workload: ${o.rates.join(' and ')} responses/s offered for ${o.seconds} s, ${o.tokensMin}-${o.tokensMax} SSE events each, one per ${o.itlMs} ms, ${o.pods} pods\n`);
  const results: ModeResult[] = [];
  try {
    for (const rate of o.rates) {
      for (const mode of o.modes) {
        process.stdout.write(`${MODE_SPECS[mode].label} at ${rate}/s ...\n`);
        const r = await runMode(mode, rate, o, endpoints);
        results.push(r);
        process.stdout.write(`  ${r.achievedPerSecond} responses/s${r.saturated ? ` (saturated ${r.saturated})` : ''}, ${r.eppCpuSecondsPer1000NetOfIdle} EPP CPU s / 1,000 responses net of idle, `
          + `in flight ${r.inFlight.meanGauge} vs ${r.inFlight.meanTrue} open, final ${r.inFlight.final}\n`);
      }
    }
  } finally {
    await Promise.all(pods.map((p) => p.close()));
  }
  const ratios = o.rates.map((rate) => {
    const base = results.find((r) => r.mode === 'none-trailers-send' && r.offeredPerSecond === rate);
    return {
      rate,
      vsNoneTrailersSend: base ? Object.fromEntries(results.filter((r) => r.offeredPerSecond === rate).map((r) => [r.mode, {
        eppCpuPer1000NetOfIdle: r2(r.eppCpuSecondsPer1000NetOfIdle / base.eppCpuSecondsPer1000NetOfIdle),
        messages: r2((r.perResponse.messagesToEpp + r.perResponse.messagesFromEpp) / (base.perResponse.messagesToEpp + base.perResponse.messagesFromEpp)),
      }])) : null,
    };
  });
  const { out, ...workload } = o;
  const report = {
    benchmark: 'EPP cost per ext_proc response mode (epp/bench/response-modes.ts, npm run bench:response-modes -w epp)',
    date: new Date().toISOString(),
    machine: { ...machine, loadAverageAtEnd: os.loadavg().map(r2) },
    workload: { ...workload, requestBody: 'chat completion, about 2 KB, BUFFERED', sseEvent: 'vLLM chat.completion.chunk, about 210 B each' },
    results,
    ratios,
  };
  if (out !== undefined) fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\n${table(results)}\n\nratios against none-trailers-send at the same rate: ${JSON.stringify(ratios)}\n${out !== undefined ? `wrote ${out}` : 'nothing written (--quick without --out)'}\n`);
  return results.every((r) => r.failed === 0) ? 0 : 1;
}

if (require.main === module) {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().then((code) => process.exit(code), (e: Error) => {
    process.stderr.write(`bench:response-modes: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
