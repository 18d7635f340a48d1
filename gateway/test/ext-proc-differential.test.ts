/**
 * Differential test of the ext_proc filter: a reference model of what Envoy 1.35 does with each answer an ext_proc
 * server may give (written from envoyproxy/envoy v1.35-era source, `EP` = source/extensions/filters/http/ext_proc,
 * `MR` = source/extensions/filters/common/mutation_rules), against the real gateway in front of a real gRPC ext_proc
 * server that gives those answers, comparing the client's status, headers and body, which pod got the request and
 * what it got, and Envoy's ext_proc counters.
 *
 * The gateway runs kvroute's EnvoyFilter defaults: BUFFERED request body, response headers SEND, response body NONE,
 * default mutation rules, no allow_mode_override, `envoy.lb` receiving namespace; `failure_mode_allow` per scenario.
 * Pod 0 is the first the fallback round robin picks (a fresh gateway per scenario), so a pick of pod 1 is visible.
 *
 * What the model covers, with its sources:
 * - header mutations: MR/mutation_rules.cc Checker::check, isAllowed, isValidValue; EP/mutation_utils.cc
 *   applyHeaderMutations (count limit, invalid name/value → error, remove then set, `append` BoolValue, `:method`
 *   under CONTINUE_AND_REPLACE);
 * - body mutations in BUFFERED mode: EP/processor_state.cc handleBufferedBodyCallback, validateContentLength;
 *   CONTINUE_AND_REPLACE: handleHeadersResponse (Content-Length removed, body mode NONE afterwards);
 * - ImmediateResponse: EP/ext_proc.cc sendImmediateResponse (200 when unset or < 200; headers under the filter's
 *   checker, `:status` reset by the local reply) and source/common/http/utility.cc prepareLocalReply (text/plain only
 *   without an EPP Content-Type, none without a body); on the response path a direct local reply
 *   (source/common/http/filter_manager.cc DownstreamFilterManager::sendLocalReply);
 * - answers for another phase: EP/processor_state.cc handleHeadersResponse/handleBodyResponse/handleTrailersResponse
 *   return FailedPrecondition ("spurious message"), and EP/ext_proc.cc onReceiveMessage fails open with
 *   failure_mode_allow (`failure_mode_allowed`) or answers 500; dynamic metadata is set before the state check, so a
 *   spurious answer's pick still counts; a message with no response member is spurious and sets nothing;
 * - the stream ending: OK → onGrpcClose, the request goes on whatever failure_mode_allow says; any other status →
 *   onGrpcError (`streams_failed`): on with failure_mode_allow, else 500;
 * - no answer: onMessageTimeout (`message_timeouts`): on with failure_mode_allow, else 504.
 *
 * Documented differences of the HTTP/1.1 proxy (gateway README, "The EPP's answers") are kept out of the scenarios.
 */
import * as grpc from '@grpc/grpc-js';
import { extProcServiceDefinition } from '@kvroute/epp/extproc';
import { destinationMetadata, type ProcessingRequest } from '@kvroute/protocol/envoy';
import { destroyClientAgent, gateway, LOOPBACK, send, startUpstream, type Upstream } from './harness';

jest.setTimeout(60_000);

type Phase = 'request_headers' | 'request_body' | 'response_headers';
type Member = Phase | 'request_trailers' | 'response_body' | 'response_trailers';

/** A header mutation entry: [name, raw value, append?]. */
type SetEntry = readonly [string, string, boolean?];

type Answer =
  /** The answer for this phase: CONTINUE (or CONTINUE_AND_REPLACE) with mutations and, maybe, a pick. */
  | { readonly kind: 'continue'; readonly set?: readonly SetEntry[]; readonly remove?: readonly string[]; readonly pick?: 0 | 1;
    readonly replace?: boolean; readonly body?: string; readonly clearBody?: boolean;
    /** The dynamic metadata namespace the pick is written under (default `envoy.lb`, the receiving namespace). */
    readonly namespace?: string }
  | { readonly kind: 'immediate'; readonly code?: number; readonly body?: string; readonly set?: readonly SetEntry[] }
  /** An answer for another message (out of order), maybe carrying a pick. */
  | { readonly kind: 'wrong'; readonly as: Member | 'none'; readonly pick?: 0 | 1 }
  /** The stream ends with this gRPC status instead of an answer. */
  | { readonly kind: 'status'; readonly code: grpc.status }
  /** No answer at all. */
  | { readonly kind: 'silent' };

interface Scenario {
  readonly name: string;
  readonly fma: boolean;
  readonly answers: Partial<Record<Phase, Answer>>;
  /** A second message written right behind the answer to this phase (an answer nothing asked for). */
  readonly then?: { readonly phase: Phase; readonly answer: Answer };
}

interface Outcome {
  readonly status: number;
  /** The client's body: the pod's echo (`pod`), or this exact text. */
  readonly body: 'pod' | string;
  /** Client response headers to compare (undefined: absent). */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The pod that got the request, or null. */
  readonly pod: 0 | 1 | null;
  /** What the pod got: method, path, body, and headers to compare. */
  readonly upstream: { readonly method: string; readonly path: string; readonly body: string; readonly headers: Readonly<Record<string, string | undefined>> } | null;
  readonly counters: Readonly<Record<string, number>>;
}

// ---------------------------------------------------------------------------------------------------------------------
// The reference model.

const CLIENT_BODY = '{"model":"m","prompt":"hello"}';
const CLIENT_HEADERS: Readonly<Record<string, string>> = { 'content-type': 'application/json', 'x-b': '1', 'x-gone': 'yes' };
/** The headers compared at the pod and at the client (every name a scenario touches). */
const WATCHED = ['x-a', 'x-b', 'x-gone', 'content-length', 'transfer-encoding', 'content-type', 'retry-after', 'x-envoy-foo', 'x-envoyfoo', 'x-r'];

type Check = 'OK' | 'IGNORE';

/** MR/mutation_rules.cc Checker::check with the default HeaderMutationRules (disallow_is_error false). */
function check(op: 'remove' | 'set' | 'append', name: string, value: string): Check {
  // isAllowed
  if (op === 'remove' && (name.startsWith(':') || name === 'host')) return 'IGNORE';
  if (['host', ':authority', ':method', ':scheme'].includes(name)) return 'IGNORE';
  if (name.startsWith(':') && op === 'append') return 'IGNORE';
  if (name.startsWith('x-envoy')) return 'IGNORE';
  if (op === 'remove') return 'OK';
  // isValidValue: `:status` must be an integer >= 200 (absl::SimpleAtoi into uint32).
  if (name === ':status') {
    const n = /^\s*\+?\d+\s*$/.test(value) ? Number(value.trim()) : NaN;
    if (!(n >= 200 && n <= 0xffffffff)) return 'IGNORE';
  }
  return 'OK';
}

const TCHAR = /^:?[!#$%&'*+\-.^_`|~0-9a-zA-Z]*$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** A header map as Envoy keeps it: (name, value) pairs, names lower case. */
type HeaderMap = [string, string][];

/** EP/mutation_utils.cc applyHeaderMutations; returns false for the error (a 500), counting into `rejected`. */
function applyMutation(map: HeaderMap, set: readonly SetEntry[] = [], remove: readonly string[] = [], replacing: boolean, rejected: { n: number }): boolean {
  if (set.length > 100 || remove.length > 100) {
    rejected.n++;
    return false;
  }
  for (const raw of remove) {
    if (!TCHAR.test(raw)) {
      rejected.n++;
      return false;
    }
    const name = raw.toLowerCase();
    if (check('remove', name, '') === 'OK') {
      for (let i = map.length - 1; i >= 0; i--) if (map[i][0] === name) map.splice(i, 1);
    } else rejected.n++;
  }
  for (const [key, value, append] of set) {
    if (!TCHAR.test(key) || BAD_VALUE.test(value)) {
      rejected.n++;
      return false;
    }
    const name = key.toLowerCase();
    const exists = map.some(([n]) => n === name);
    let result = check(append && exists ? 'append' : 'set', name, value);
    if (replacing && name === ':method') result = 'OK';
    if (result !== 'OK') {
      rejected.n++;
      continue;
    }
    if (append) map.push([name, value]);
    else {
      const i = map.findIndex(([n]) => n === name);
      if (i < 0) map.push([name, value]);
      else {
        map[i] = [name, value];
        for (let j = map.length - 1; j > i; j--) if (map[j][0] === name) map.splice(j, 1);
      }
    }
  }
  return true;
}

const get = (map: HeaderMap, name: string): string | undefined => {
  const values = map.filter(([n]) => n === name).map(([, v]) => v);
  return values.length > 0 ? values.join(', ') : undefined;
};

function envoyModel(s: Scenario): Outcome {
  const counters = { rejected_header_mutations: 0, spurious_msgs_received: 0, failure_mode_allowed: 0, message_timeouts: 0, streams_failed: 0 };
  const rejected = { n: 0 };
  const finish = (o: Omit<Outcome, 'counters'>): Outcome => ({ ...o, counters: { ...counters, rejected_header_mutations: rejected.n } });
  const localReply = (status: number, body = '', set: readonly SetEntry[] = [], pod: 0 | 1 | null = null, upstream: Outcome['upstream'] = null): Outcome => {
    // sendImmediateResponse → prepareLocalReply: the mutation runs on a map holding `:status` (failures only logged),
    // LocalReply::rewrite sets `:status` again; Content-Length and Content-Type follow the body.
    const map: HeaderMap = [[':status', String(status)]];
    applyMutation(map, set, [], false, rejected);
    const headers: Record<string, string | undefined> = {};
    for (const n of WATCHED) headers[n] = get(map, n);
    headers['content-length'] = String(Buffer.byteLength(body));
    headers['content-type'] = body.length > 0 ? get(map, 'content-type') ?? 'text/plain' : undefined;
    return finish({ status, body, headers, pod, upstream });
  };
  /** What a stream failure leads to: null to go on without the EPP, else the local reply. */
  const failure = (a: Answer): Outcome | 'on' => {
    if (a.kind === 'status') {
      if (a.code === grpc.status.OK) return 'on';
      counters.streams_failed++;
      if (s.fma) {
        counters.failure_mode_allowed++;
        return 'on';
      }
      return localReply(500);
    }
    if (a.kind === 'silent') {
      counters.message_timeouts++;
      if (s.fma) {
        counters.failure_mode_allowed++;
        return 'on';
      }
      return localReply(504);
    }
    // spurious
    counters.spurious_msgs_received++;
    if (s.fma) {
      counters.failure_mode_allowed++;
      return 'on';
    }
    return localReply(500);
  };

  const req: HeaderMap = [[':method', 'POST'], [':path', '/v1/completions'], ...Object.entries(CLIENT_HEADERS),
    ['content-length', String(Buffer.byteLength(CLIENT_BODY))]];
  let body = CLIENT_BODY;
  let pick: 0 | 1 | null = null;
  let processing = true;
  let bodyToEpp = true;

  for (const phase of ['request_headers', 'request_body'] as const) {
    if (!processing || (phase === 'request_body' && !bodyToEpp)) continue;
    const a: Answer = s.answers[phase] ?? { kind: 'continue' };
    if (a.kind === 'wrong' && a.pick !== undefined && a.as !== 'none') pick = a.pick;
    // Only the receiving namespace `envoy.lb` is taken (EP/ext_proc.cc setDynamicMetadata).
    if (a.kind === 'continue' && a.pick !== undefined && (a.namespace ?? 'envoy.lb') === 'envoy.lb') pick = a.pick;
    if (a.kind === 'continue') {
      if (!applyMutation(req, a.set, a.remove, a.replace === true, rejected)) return localReply(500);
      if (phase === 'request_headers' && a.replace) {
        // CONTINUE_AND_REPLACE: the body mutation (if any) replaces the body, Content-Length goes; no body message.
        if (a.body !== undefined || a.clearBody) {
          body = a.clearBody ? '' : a.body ?? '';
          for (let i = req.length - 1; i >= 0; i--) if (req[i][0] === 'content-length') req.splice(i, 1);
        }
        bodyToEpp = false;
      }
      if (phase === 'request_body' && (a.body !== undefined || a.clearBody)) {
        const cl = get(req, 'content-length');
        const mutated = a.clearBody ? '' : a.body ?? '';
        if (cl !== undefined && Number(cl) !== Buffer.byteLength(mutated)) return localReply(500);
        body = mutated;
      }
      // A message behind the headers answer lands while the body answer is owed: spurious.
      if (phase === 'request_headers' && bodyToEpp && s.then?.phase === 'request_headers') {
        const t = s.then.answer;
        if (t.kind === 'wrong' && t.pick !== undefined && t.as !== 'none') pick = t.pick;
        const f = failure(t);
        if (f !== 'on') return f;
        processing = false;
      }
      continue;
    }
    if (a.kind === 'immediate') return localReply(a.code === undefined || a.code < 200 ? 200 : a.code, a.body ?? '', a.set ?? []);
    const f = failure(a);
    if (f !== 'on') return f;
    processing = false;
  }
  // A message behind the last request answer: nothing is owed, so it is spurious. Its pick is set, but too late: the
  // last answer continued the filter chain and the router chose its host then.
  if (processing && s.then && (s.then.phase === 'request_body' || (s.then.phase === 'request_headers' && !bodyToEpp))) {
    const f = failure(s.then.answer);
    if (f !== 'on') return f;
    processing = false;
  }

  const pod = pick ?? 0;
  const upstreamHeaders: Record<string, string | undefined> = {};
  for (const n of WATCHED) upstreamHeaders[n] = get(req, n);
  // Envoy's HTTP/1 upstream codec frames a body without Content-Length as chunked (source/common/http/http1/
  // codec_impl.cc StreamEncoderImpl::encodeHeadersBase).
  if (upstreamHeaders['content-length'] === undefined) upstreamHeaders['transfer-encoding'] = 'chunked';
  const upstream = { method: get(req, ':method') ?? '', path: get(req, ':path') ?? '', body, headers: upstreamHeaders };

  // The pod's answer: 200, JSON, with a Content-Length.
  const resp: HeaderMap = [[':status', '200'], ['content-type', 'application/json'], ['content-length', '<echo>']];
  let status = 200;
  const a: Answer = processing ? s.answers.response_headers ?? { kind: 'continue' } : { kind: 'continue' };
  if (a.kind === 'continue' && processing) {
    if (!applyMutation(resp, a.set, a.remove, a.replace === true, rejected)) return localReply(500, '', [], pod, upstream);
    status = Number(get(resp, ':status'));
  } else if (a.kind === 'immediate') {
    return localReply(a.code === undefined || a.code < 200 ? 200 : a.code, a.body ?? '', a.set ?? [], pod, upstream);
  } else if (a.kind !== 'continue') {
    const f = failure(a);
    if (f !== 'on') return { ...f, pod, upstream };
  }
  const headers: Record<string, string | undefined> = {};
  for (const n of WATCHED) headers[n] = get(resp, n);
  return finish({ status, body: 'pod', headers, pod, upstream });
}

// ---------------------------------------------------------------------------------------------------------------------
// The real thing: a gRPC ext_proc server answering each message as the scenario says.

let ups: Upstream[];
beforeAll(async () => {
  ups = await Promise.all([startUpstream(), startUpstream()]);
});
afterAll(async () => {
  await Promise.all(ups.map((u) => u.close()));
  destroyClientAgent();
});

const raw = (v: string): Buffer => Buffer.from(v, 'latin1');
const mutation = (set: readonly SetEntry[] = [], remove: readonly string[] = []): unknown => ({
  set_headers: set.map(([key, value, append]) => ({ header: { key, raw_value: raw(value === '<pod1>' ? ups[1].address : value) }, ...(append === undefined ? {} : { append: { value: append } }) })),
  remove_headers: [...remove],
});

function wire(phase: Phase, a: Answer): unknown {
  const pick = (p: 0 | 1 | undefined): Record<string, unknown> => (p === undefined ? {} : { dynamic_metadata: destinationMetadata('envoy.lb', 'x-gateway-destination-endpoint', ups[p].address) });
  switch (a.kind) {
    case 'continue': {
      const bodyMutation = a.clearBody ? { clear_body: true } : a.body !== undefined ? { body: raw(a.body) } : undefined;
      const common = {
        ...(a.replace ? { status: 'CONTINUE_AND_REPLACE' } : {}),
        ...(a.set || a.remove ? { header_mutation: mutation(a.set, a.remove) } : {}),
        ...(bodyMutation ? { body_mutation: bodyMutation } : {}),
      };
      const metadata = a.pick === undefined ? {} : { dynamic_metadata: destinationMetadata(a.namespace ?? 'envoy.lb', 'x-gateway-destination-endpoint', ups[a.pick].address) };
      return { [phase]: { response: common }, ...metadata };
    }
    case 'immediate':
      return { immediate_response: { ...(a.code === undefined ? {} : { status: { code: a.code } }), ...(a.body ? { body: raw(a.body) } : {}), ...(a.set ? { headers: mutation(a.set) } : {}) } };
    case 'wrong':
      if (a.as === 'none') return { ...pick(a.pick) };
      return { [a.as]: a.as.endsWith('trailers') ? {} : { response: {} }, ...pick(a.pick) };
    default:
      return null;
  }
}

async function startScripted(s: Scenario): Promise<{ address: string; stop(): void }> {
  const server = new grpc.Server();
  server.addService(extProcServiceDefinition(), {
    Process: (call: grpc.ServerDuplexStream<ProcessingRequest, unknown>) => {
      let over = false;
      call.on('data', (msg: ProcessingRequest) => {
        const phase = msg.request as Member;
        if (over || !['request_headers', 'request_body', 'response_headers'].includes(phase)) return;
        const a = s.answers[phase as Phase] ?? { kind: 'continue' };
        if (a.kind === 'silent') return;
        if (a.kind === 'status') {
          over = true;
          if (a.code === grpc.status.OK) call.end();
          else call.emit('error', { code: a.code, details: 'scripted', metadata: new grpc.Metadata() });
          return;
        }
        call.write(wire(phase as Phase, a));
        if (s.then?.phase === phase) call.write(wire(phase as Phase, s.then.answer));
      });
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${LOOPBACK}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { address: `${LOOPBACK}:${port}`, stop: () => server.forceShutdown() };
}

async function gatewayRun(s: Scenario): Promise<Outcome> {
  const epp = await startScripted(s);
  const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: epp.address, failureModeAllow: s.fma, messageTimeoutMs: 200 });
  const seenBefore = ups.map((u) => u.seen.length);
  try {
    const r = await send(gw.port, { body: CLIENT_BODY, headers: CLIENT_HEADERS });
    const podIndex = ups.findIndex((u, i) => u.seen.length > seenBefore[i]);
    const seen = podIndex >= 0 ? ups[podIndex].seen[ups[podIndex].seen.length - 1] : null;
    const headers: Record<string, string | undefined> = {};
    for (const n of WATCHED) headers[n] = typeof r.headers[n] === 'string' ? r.headers[n] as string : undefined;
    // The pod's echo has its own length; the model writes `<echo>` for it.
    let body = r.body.toString('latin1');
    if (seen && r.body.length > 0 && body.startsWith('{"port":')) {
      body = 'pod';
      if (headers['content-length'] === String(r.body.length)) headers['content-length'] = '<echo>';
    }
    const upstreamHeaders: Record<string, string | undefined> = {};
    if (seen) for (const n of WATCHED) upstreamHeaders[n] = typeof seen.headers[n] === 'string' ? seen.headers[n] as string : undefined;
    const env = gw.envoyStats();
    return {
      status: r.status,
      body,
      headers,
      pod: podIndex < 0 ? null : podIndex as 0 | 1,
      upstream: seen ? { method: seen.method, path: seen.url, body: seen.body.toString('latin1'), headers: upstreamHeaders } : null,
      counters: {
        rejected_header_mutations: env.rejected_header_mutations, spurious_msgs_received: env.spurious_msgs_received,
        failure_mode_allowed: env.failure_mode_allowed, message_timeouts: env.message_timeouts, streams_failed: env.streams_failed,
      },
    };
  } finally {
    await gw.close();
    epp.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The scenarios.

const both = (name: string, answers: Partial<Record<Phase, Answer>>): Scenario[] => [
  { name: `${name} (failure_mode_allow)`, fma: true, answers },
  { name: `${name} (fail closed)`, fma: false, answers },
];

const SCENARIOS: Scenario[] = [
  { name: 'plain answers, no pick: the fallback pod', fma: true, answers: {} },
  { name: 'pick on the headers answer', fma: true, answers: { request_headers: { kind: 'continue', pick: 1 } } },
  { name: 'pick on the body answer', fma: true, answers: { request_body: { kind: 'continue', pick: 1 } } },
  { name: 'a pick in another metadata namespace is not taken', fma: true, answers: { request_body: { kind: 'continue', pick: 1, namespace: 'envoy.filters.http.ext_proc' } } },
  { name: 'request header set, append, remove', fma: true, answers: { request_body: { kind: 'continue', pick: 1, set: [['x-a', 'v'], ['x-b', '2', true], ['X-A', 'w']], remove: ['X-Gone'] } } },
  { name: 'append to an absent header is a set', fma: true, answers: { request_headers: { kind: 'continue', set: [['x-a', 'v', true]] } } },
  { name: ':path rewritten', fma: true, answers: { request_body: { kind: 'continue', set: [[':path', '/v1/chat/completions']] } } },
  { name: 'routing, system and x-envoy headers refused', fma: true, answers: { request_headers: { kind: 'continue', set: [['host', 'h'], [':authority', 'h'], [':method', 'PUT'], [':scheme', 'https'], ['x-envoy-foo', '1'], ['x-envoyfoo', '1'], [':path', '/x', true]], remove: [':path', 'host', 'x-envoy-foo'] } } },
  { name: ':method changes under CONTINUE_AND_REPLACE (body untouched, not sent)', fma: true, answers: { request_headers: { kind: 'continue', replace: true, set: [[':method', 'PUT']], pick: 1 } } },
  { name: 'CONTINUE_AND_REPLACE with a body', fma: true, answers: { request_headers: { kind: 'continue', replace: true, body: 'new body' } } },
  { name: 'body mutation with a matching Content-Length', fma: true, answers: { request_body: { kind: 'continue', set: [['content-length', '3']], body: 'abc' } } },
  { name: 'body mutation against the client\'s Content-Length: 500', fma: true, answers: { request_body: { kind: 'continue', body: 'abc' } } },
  { name: 'clear_body against the client\'s Content-Length: 500', fma: true, answers: { request_body: { kind: 'continue', clearBody: true } } },
  { name: 'body mutation with Content-Length removed: chunked', fma: true, answers: { request_body: { kind: 'continue', remove: ['content-length'], body: 'abc' } } },
  { name: 'invalid value: 500', fma: true, answers: { request_headers: { kind: 'continue', set: [['x-a', 'ok'], ['x-b', 'a\rb']] } } },
  { name: 'invalid name: 500', fma: true, answers: { request_body: { kind: 'continue', set: [['x a', 'v']] } } },
  { name: 'invalid name to remove: 500', fma: true, answers: { request_body: { kind: 'continue', remove: ['x\na'] } } },
  { name: 'more than 100 set entries: 500', fma: true, answers: { request_body: { kind: 'continue', set: Array.from({ length: 101 }, (_, i) => [`x-h${i}`, 'v'] as const) } } },
  { name: 'ImmediateResponse on the headers', fma: true, answers: { request_headers: { kind: 'immediate', code: 429, body: '{"e":1}', set: [['content-type', 'application/json'], ['retry-after', '1'], ['x-envoy-foo', '1'], [':status', '503']] } } },
  { name: 'ImmediateResponse with no status and no body', fma: true, answers: { request_headers: { kind: 'immediate', set: [['content-type', 'application/json']] } } },
  { name: 'ImmediateResponse 101 becomes 200', fma: true, answers: { request_body: { kind: 'immediate', code: 101, body: 'x' } } },
  { name: 'ImmediateResponse with a status the enum does not name', fma: true, answers: { request_body: { kind: 'immediate', code: 299, body: 'x' } } },
  { name: 'ImmediateResponse on the response headers', fma: true, answers: { request_headers: { kind: 'continue', pick: 1 }, response_headers: { kind: 'immediate', code: 503, body: 'busy' } } },
  { name: 'response headers mutated', fma: true, answers: { response_headers: { kind: 'continue', set: [[':status', '201'], ['x-r', '1']], remove: ['content-type'] } } },
  { name: 'response :status below 200 or not a number is refused', fma: true, answers: { response_headers: { kind: 'continue', set: [[':status', '150'], [':status', 'abc'], [':status', ' 202 ']] } } },
  // override_host reads the pick from `envoy.lb` metadata only (lib/ext-proc.ts override_host_sources): the header,
  // from the EPP or the client, chooses nothing.
  { name: 'a pick in the destination header only is not a pick', fma: true, answers: { request_body: { kind: 'continue', set: [['x-gateway-destination-endpoint', '<pod1>']] } } },
  { name: 'CONTINUE_AND_REPLACE on the body answer lets :method change', fma: true, answers: { request_body: { kind: 'continue', replace: true, set: [[':method', 'PATCH'], ['x-a', 'v']] } } },
  { name: 'a Content-Length set on the headers answer is what the body mutation is checked against', fma: true, answers: { request_headers: { kind: 'continue', set: [['content-length', '5']] }, request_body: { kind: 'continue', body: 'fives', pick: 1 } } },
  { name: 'obs-text and tabs in values pass as bytes', fma: true, answers: { request_body: { kind: 'continue', set: [['x-a', 'caf\xe9\tbar']] } } },
  { name: 'ImmediateResponse: its Content-Length is the body\'s', fma: true, answers: { request_body: { kind: 'immediate', code: 503, body: 'four', set: [['content-length', '99'], ['x-r', 'a'], ['x-r', 'b', true]] } } },
  { name: 'ImmediateResponse: x-envoy and routing headers refused and counted, a bad value only logged', fma: true, answers: { request_headers: { kind: 'immediate', code: 403, set: [['x-envoy-foo', '1'], ['host', 'h'], ['x-r', '1'], ['x-a', 'a\nb'], ['retry-after', '2']] } } },
  ...both('a second headers answer while the body answer is owed', { request_headers: { kind: 'continue', pick: 1 } }).map((x) => ({ ...x, then: { phase: 'request_headers' as const, answer: { kind: 'wrong' as const, as: 'request_headers' as const } } })),
  ...both('a headers answer (with a pick) behind the body answer', { request_body: { kind: 'continue' } }).map((x) => ({ ...x, then: { phase: 'request_body' as const, answer: { kind: 'wrong' as const, as: 'request_headers' as const, pick: 1 as const } } })),
  ...both('a body answer to the headers', { request_headers: { kind: 'wrong', as: 'request_body' } }),
  ...both('a response-headers answer (with a pick) to the request headers', { request_headers: { kind: 'wrong', as: 'response_headers', pick: 1 } }),
  ...both('a trailers answer to the request body', { request_body: { kind: 'wrong', as: 'request_trailers', pick: 1 } }),
  ...both('a message with no response member (and a pick)', { request_body: { kind: 'wrong', as: 'none', pick: 1 } }),
  ...both('a request-headers answer to the response headers', { response_headers: { kind: 'wrong', as: 'request_headers' } }),
  ...both('a response-body answer to the response headers', { response_headers: { kind: 'wrong', as: 'response_body' } }),
  ...both('no answer to the headers', { request_headers: { kind: 'silent' } }),
  ...both('no answer to the body', { request_headers: { kind: 'continue', pick: 1 }, request_body: { kind: 'silent' } }),
  ...both('no answer to the response headers', { response_headers: { kind: 'silent' } }),
  ...both('OK before the headers answer', { request_headers: { kind: 'status', code: grpc.status.OK } }),
  ...both('OK after the request, before the response headers answer', { request_body: { kind: 'continue', pick: 1 }, response_headers: { kind: 'status', code: grpc.status.OK } }),
  ...[grpc.status.UNKNOWN, grpc.status.INVALID_ARGUMENT, grpc.status.DEADLINE_EXCEEDED, grpc.status.NOT_FOUND, grpc.status.PERMISSION_DENIED,
    grpc.status.RESOURCE_EXHAUSTED, grpc.status.FAILED_PRECONDITION, grpc.status.ABORTED, grpc.status.UNIMPLEMENTED, grpc.status.INTERNAL,
    grpc.status.UNAVAILABLE, grpc.status.UNAUTHENTICATED].flatMap((code) => both(`gRPC status ${grpc.status[code]} before the body answer`, {
    request_headers: { kind: 'continue', pick: 1 }, request_body: { kind: 'status', code } })),
  ...both('gRPC status INTERNAL before the response headers answer', { request_body: { kind: 'continue', pick: 1 }, response_headers: { kind: 'status', code: grpc.status.INTERNAL } }),
];

describe('the gateway answers every scenario as the reference model of Envoy 1.35\'s ext_proc filter does', () => {
  test.each(SCENARIOS.map((s) => [s.name, s] as const))('%s', async (_name, s) => {
    const actual = await gatewayRun(s);
    expect(actual).toEqual(envoyModel(s));
  });
});
