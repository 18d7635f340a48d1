/**
 * Differential test: kvroute's session-affinity scorer and filter (built by the config loader, scheduled through the
 * real scheduler, the response hook called as request control calls it) against a reference model of llm-d-router
 * v0.10.0's session affinity, written from its source:
 *
 * - util/sessionaffinity/session_id.go @ v0.10.0: resolveSessionID (sources in order, TrimSpace, first non-empty),
 *   Choose (the bound pod if it is a candidate; presence recorded only when a binding exists), PreRequest (bind a new
 *   session; refresh lastSeen when picked onto its pod; move only on a confirmed absence), expiry `now - lastSeen > ttl`.
 * - scorer/sessionaffinity/session_id_header.go: the chosen pod scores 1, every other 0; ResponseHeader writes nothing.
 * - util/sessionaffinity/header.go: DecodePodName (base64.StdEncoding, padded; "" on error), WriteResponseHeader
 *   (base64 of `namespace/name` of the serving pod).
 * - filter/sessionaffinity/encoded_endpoint_header.go: the decoded pod alone while it is a candidate, else every
 *   candidate; scorer/sessionaffinity/encoded_endpoint_header.go: that pod scores 1.
 *
 * kvroute's documented differences (epp/README.md "llm-d-router v0.10.0's session-affinity parameters") are modelled as
 * documented: ids over 4,096 characters are ignored; a binding lives exactly evictionTtlSeconds (no sweep lag).
 *
 * Scores are checked through the picks: affinity weighs 10 against a queue-scorer of weight 1 and every step gives the
 * candidates distinct queue sizes, so the pick is the pod the model scores 1, else the emptiest candidate.
 */
import { seededRandom } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import type { SessionAffinityFilter } from '../src/scheduling/plugins/session-affinity-filter';
import type { SessionAffinityScorer } from '../src/scheduling/plugins/session-affinity-scorer';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';

const NAMESPACE = 'team';
const PODS = ['p0', 'p1', 'p2', 'p3', 'p4'];
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Go's base64.StdEncoding.DecodeString as DecodePodName uses it: padded standard alphabet; CR/LF skipped. */
function goStdDecode(token: string): string | undefined {
  const s = token.replace(/[\r\n]/g, '');
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const pad = s.length - s.replace(/=+$/, '').length;
  if (pad > 0 && /=/.test(s.slice(0, s.length - pad))) return undefined;
  if (s.length > 0 && pad === 0 && /=/.test(s)) return undefined;
  return Buffer.from(s, 'base64').toString('utf8');
}

/** The reference model of util/sessionaffinity/session_id.go @ v0.10.0. */
class SessionIdModel {
  private readonly bindings = new Map<string, { pod: string; lastSeen: number }>();
  constructor(private readonly sources: string[], private readonly ttlMs: number) {}

  resolve(headers: Record<string, string>): string {
    for (const h of this.sources) {
      const id = (headers[h] ?? '').trim();
      // kvroute's documented bound (README): ids over 4,096 characters are ignored.
      if (id !== '' && id.length <= 4096) return id;
      if (id !== '') return '';
    }
    return '';
  }

  private bound(id: string, now: number): string | undefined {
    const b = this.bindings.get(id);
    if (b === undefined) return undefined;
    // kvroute's documented difference: expiry exact, upstream's a sweep (<= evictionSweepSeconds) later.
    if (now - b.lastSeen > this.ttlMs) {
      this.bindings.delete(id);
      return undefined;
    }
    return b.pod;
  }

  /** Choose: the bound pod if a candidate; presence recorded only when a binding exists. */
  choose(id: string, candidates: string[], now: number): { target?: string; present?: boolean } {
    if (id === '') return {};
    const pod = this.bound(id, now);
    if (pod === undefined) return {};
    const present = candidates.includes(pod);
    return present ? { target: pod, present } : { present };
  }

  preRequest(id: string, pick: string, present: boolean | undefined, now: number): void {
    if (id === '') return;
    const existing = this.bound(id, now);
    if (existing === undefined || existing === pick) {
      this.bindings.set(id, { pod: pick, lastSeen: now });
      return;
    }
    if (present === undefined || present) return;
    this.bindings.set(id, { pod: pick, lastSeen: now });
  }

  boundNow(id: string, now: number): string | undefined {
    return this.bound(id, now);
  }
}

function config(pluginType: string, parameters: string, kind: 'scorer' | 'filter', weight = 10): string {
  return `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- name: affinity
  type: ${pluginType}
  parameters:
${parameters.split('\n').map((l) => `    ${l}`).join('\n')}
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: affinity${kind === 'scorer' ? `\n    weight: ${weight}` : ''}
  - pluginRef: queue-scorer
`;
}

interface World {
  now: number;
  random: () => number;
}

function candidatesOf(world: World): EndpointSnapshot[] {
  // Pods leave and return: each is a candidate with probability 0.7 (at least one); queue sizes distinct.
  let present = PODS.filter(() => world.random() < 0.7);
  if (present.length === 0) present = [PODS[Math.floor(world.random() * PODS.length)]!];
  const queues = [...present.keys()].sort(() => world.random() - 0.5);
  return present.map((name, i) => ({
    endpoint: { key: `${name}:8000`, name, namespace: NAMESPACE, address: `10.0.0.${PODS.indexOf(name) + 1}`, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: world.now, waitingQueueSize: queues[i]! },
    activeRequests: 0,
  }));
}

const emptiest = (c: EndpointSnapshot[]) =>
  c.reduce((best, x) => (x.metrics.waitingQueueSize < best.metrics.waitingQueueSize ? x : best)).endpoint.name;

/**
 * The pick under weight × affinity + queue-scorer ((max − q) / (max − min)). Weights 10 and 0.3 never tie: queue scores
 * are k/(n−1) for n ≤ 5 candidates, none 0.7 apart from 1.
 */
function expectedPick(c: EndpointSnapshot[], affinityPod: string | undefined, weight: number): string {
  const qs = c.map((x) => x.metrics.waitingQueueSize);
  const [max, min] = [Math.max(...qs), Math.min(...qs)];
  const total = (x: EndpointSnapshot) =>
    (max === min ? 1 : (max - x.metrics.waitingQueueSize) / (max - min)) + (x.endpoint.name === affinityPod ? weight : 0);
  return c.reduce((best, x) => (total(x) > total(best) ? x : best)).endpoint.name;
}

/** A session id header value: known ids (some padded with spaces), empty, whitespace-only, oversized. */
function sessionHeaders(random: () => number, sessions: string[]): Record<string, string> {
  const r = random();
  const id = sessions[Math.floor(random() * sessions.length)]!;
  const headers: Record<string, string> = {};
  if (r < 0.55) headers['x-session-id'] = id;
  else if (r < 0.65) headers['x-session-id'] = `  ${id}\t`;
  else if (r < 0.72) headers['x-conversation'] = id; // the first source wins
  else if (r < 0.77) { headers['x-conversation'] = '   '; headers['x-session-id'] = id; } // blank first source: the next
  else if (r < 0.82) headers['x-session-id'] = '';
  else if (r < 0.87) headers['x-session-id'] = 'x'.repeat(4097);
  else if (r < 0.9) headers['x-session-id'] = 'y'.repeat(4096);
  // else: no header at all
  return headers;
}

/** A token header value: a pod's token, an unknown pod's, unpadded, not base64, the bare name, none. */
function tokenHeaders(random: () => number, header: string): Record<string, string> {
  const r = random();
  const pod = PODS[Math.floor(random() * PODS.length)]!;
  if (r < 0.5) return { [header]: b64(`${NAMESPACE}/${pod}`) };
  if (r < 0.55) return { [header]: b64(`other/${pod}`) };
  if (r < 0.6) return { [header]: b64(`${NAMESPACE}/${pod}`).replace(/=+$/, '') };
  if (r < 0.65) return { [header]: `${NAMESPACE}/${pod}` };
  if (r < 0.7) return { [header]: ` ${b64(`${NAMESPACE}/${pod}`)}` };
  if (r < 0.75) return { [header]: b64(`${NAMESPACE}/${pod}`).replace(/.$/, '') };
  if (r < 0.8) return { [header]: '' };
  return {};
}

describe('session affinity against a reference model of llm-d-router v0.10.0 (util/sessionaffinity/*.go, {scorer,filter}/sessionaffinity/*.go)', () => {
  it.each([[1, 10], [2, 10], [3, 10], [4, 0.3], [5, 0.3], [6, 0.3]])('session-affinity-scorer strategy session_id, seed %i, weight %d against queue-scorer 1: picks and bindings agree after every step (outvoted while a candidate: kept; absent: moved)', (seed, weight) => {
    const world: World = { now: 1_700_000_000_000, random: seededRandom(seed) };
    const ttlSeconds = 60;
    const scheduler = buildScheduler(parseEndpointPickerConfig(config('session-affinity-scorer',
      `strategy: session_id\nsessionIdConfig:\n  sources: [{header: X-Conversation}, {header: x-session-id}]\n  evictionTtlSeconds: ${ttlSeconds}`, 'scorer', weight)), {
      now: () => world.now, random: seededRandom(seed + 100), metrics: NOOP_SCHEDULING_METRICS,
    });
    const scorer = scheduler.plugin('affinity') as SessionAffinityScorer;
    const model = new SessionIdModel(['x-conversation', 'x-session-id'], ttlSeconds * 1000);
    const sessions = Array.from({ length: 6 }, (_, i) => `s${seed}-${i}`);
    for (let step = 0; step < 400; step++) {
      world.now += Math.floor(world.random() * 20_000);
      const candidates = candidatesOf(world);
      const headers = sessionHeaders(world.random, sessions);
      const request: LLMRequest = { requestId: `r${step}`, model: 'm', prompt: 'hi', headers };
      const id = model.resolve(headers);
      const choice = model.choose(id, candidates.map((c) => c.endpoint.name).map((n) => `${NAMESPACE}/${n}`), world.now);
      const expected = expectedPick(candidates, choice.target?.split('/')[1], weight);
      const result = scheduler.schedule(request, candidates);
      const picked = result.target.endpoint.name;
      const where = `seed ${seed} step ${step} headers ${JSON.stringify(headers).slice(0, 80)} candidates ${candidates.map((c) => c.endpoint.name)}`;
      expect(`${where} -> ${picked}`).toBe(`${where} -> ${expected}`);
      model.preRequest(id, `${NAMESPACE}/${picked}`, choice.present, world.now);
      // SessionIDHeader.ResponseHeader is a no-op.
      expect(scorer.postResponse(request, { headers: {}, metadata: {} }, result.target.endpoint)).toBeUndefined();
      for (const s of sessions) expect(`${where} ${s}: ${scorer.boundEndpoint(s)}`).toBe(`${where} ${s}: ${model.boundNow(s, world.now)}`);
    }
  });

  it.each([
    ['session-affinity-scorer', 'scorer'],
    ['session-affinity-filter', 'filter'],
    ['multicluster-session-affinity-filter', 'filter'],
  ] as const)('%s strategy encoded_endpoint_header: picks and response tokens agree on seeded tokens (valid, unknown pod, unpadded, not base64, padded with a space, truncated)', (type, kind) => {
    for (const seed of [11, 12, 13]) {
      const world: World = { now: 1_700_000_000_000, random: seededRandom(seed) };
      const header = 'x-session-token';
      const scheduler = buildScheduler(parseEndpointPickerConfig(config(type, `encodedEndpointHeaderConfig: {header: " X-Session-Token "}`, kind)), {
        now: () => world.now, random: seededRandom(seed + 100), metrics: NOOP_SCHEDULING_METRICS,
      });
      const plugin = scheduler.plugin('affinity') as SessionAffinityScorer | SessionAffinityFilter;
      for (let step = 0; step < 300; step++) {
        const candidates = candidatesOf(world);
        const headers = tokenHeaders(world.random, header);
        const request: LLMRequest = { requestId: `r${step}`, model: 'm', prompt: 'hi', headers };
        // DecodePodName(request.Headers[header]): no TrimSpace of the token.
        const pod = headers[header] === undefined || headers[header] === '' ? undefined : goStdDecode(headers[header]!);
        const named = candidates.find((c) => `${NAMESPACE}/${c.endpoint.name}` === pod);
        const expected = named !== undefined ? named.endpoint.name : emptiest(candidates);
        const result = scheduler.schedule(request, candidates);
        const where = `${type} seed ${seed} step ${step} token ${JSON.stringify(headers[header])} candidates ${candidates.map((c) => c.endpoint.name)}`;
        expect(`${where} -> ${result.target.endpoint.name}`).toBe(`${where} -> ${expected}`);
        // WriteResponseHeader: base64 of the serving pod's namespace/name, on every response.
        expect(plugin.postResponse(request, { headers: {}, metadata: {} }, result.target.endpoint))
          .toEqual({ [header]: b64(`${NAMESPACE}/${result.target.endpoint.name}`) });
      }
    }
  });
});

/**
 * TestSessionAffinity_FactoryValidation (scorer/sessionaffinity/session_affinity_test.go and
 * filter/sessionaffinity/session_affinity_test.go @ llm-d-router v0.10.0), its rows unchanged, plus rows for what its
 * validate() leaves alone (the block the strategy does not select is not validated) and what SessionIDSource.validate
 * refuses (an empty header is unset).
 */
describe('TestSessionAffinity_FactoryValidation (llm-d-router v0.10.0) on the config loader', () => {
  const rows: [string, string, boolean][] = [
    ['empty params default to encoded_endpoint_header', '', false],
    ['explicit encoded_endpoint_header', '{"strategy":"encoded_endpoint_header"}', false],
    ['session_id with defaults', '{"strategy":"session_id"}', false],
    ['session_id with attribute source', '{"strategy":"session_id","sessionIdConfig":{"sources":[{"attribute":"agent-identity"}]}}', false],
    ['session_id header then attribute fallback sources', '{"strategy":"session_id","sessionIdConfig":{"sources":[{"header":"x-session-id"},{"attribute":"agent-identity"}]}}', false],
    ['session_id empty sources defaults, valid', '{"strategy":"session_id","sessionIdConfig":{"sources":[]}}', false],
    ['session_id zero ttl defaults, valid', '{"strategy":"session_id","sessionIdConfig":{"evictionTtlSeconds":0}}', false],
    ['unknown strategy rejected', '{"strategy":"bogus"}', true],
    ['session_id source with both header and attribute rejected', '{"strategy":"session_id","sessionIdConfig":{"sources":[{"header":"h","attribute":"a"}]}}', true],
    ['session_id negative ttl rejected', '{"strategy":"session_id","sessionIdConfig":{"evictionTtlSeconds":-1}}', true],
    ['session_id negative sweep rejected', '{"strategy":"session_id","sessionIdConfig":{"evictionSweepSeconds":-1}}', true],
    ['encoded_endpoint_header ignores an invalid sessionIdConfig (validate() checks the selected strategy only)', '{"strategy":"encoded_endpoint_header","sessionIdConfig":{"evictionTtlSeconds":-1}}', false],
    ['session_id fractional ttl and sweep', '{"strategy":"session_id","sessionIdConfig":{"evictionTtlSeconds":0.5,"evictionSweepSeconds":0.1}}', false],
    ['session_id source with an empty header rejected (neither set)', '{"strategy":"session_id","sessionIdConfig":{"sources":[{"header":""}]}}', true],
  ];
  const cases = ['session-affinity-scorer', 'session-affinity-filter'].flatMap((type) => rows.map(([name, params, err]) => [type, name, params, err] as const));
  it.each(cases)('%s: %s', (type, _name, params, expectErr) => {
    const cfg = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- name: a
  type: ${type}
${params === '' ? '' : `  parameters: ${params}\n`}- type: agent-identity
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: a
`;
    const build = () => buildScheduler(parseEndpointPickerConfig(cfg), { now: () => 0, random: seededRandom(1), metrics: NOOP_SCHEDULING_METRICS });
    if (expectErr) expect(build).toThrow();
    else expect(build).not.toThrow();
  });
});
