/**
 * llm-d-router v0.10.0's session-affinity parameters on kvroute's session-affinity scorer and filter:
 * `strategy`, `encodedEndpointHeaderConfig.header`, `sessionIdConfig{sources, evictionTtlSeconds, evictionSweepSeconds}`
 * and `profileName` (pkg/epp/framework/plugins/scheduling/{scorer,filter,util}/sessionaffinity/ @ v0.10.0). The YAML
 * below is upstream's README examples (scorer/sessionaffinity/README.md, filter/sessionaffinity/README.md @ v0.10.0).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS, seededRandom } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, validateEndpointPickerConfig } from '../src/config';
import { ConfigError } from '../src/config/errors';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import type { SessionAffinityFilter } from '../src/scheduling/plugins/session-affinity-filter';
import type { SessionAffinityScorer } from '../src/scheduling/plugins/session-affinity-scorer';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { FakeEnvoy, requestBody, requestHeaders, responseBody, responseHeaders, setHeaders, waitFor } from './extproc-harness';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function scorerConfig(parameters: string, profile = 'default', scorerWeight = 10): string {
  return `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- name: affinity
  type: session-affinity-scorer
  parameters:
${parameters.split('\n').map((l) => `    ${l}`).join('\n')}
- type: queue-scorer
schedulingProfiles:
- name: ${profile}
  plugins:
  - pluginRef: affinity
    weight: ${scorerWeight}
  - pluginRef: queue-scorer
`;
}

class Fixture {
  now = 1_700_000_000_000;
  readonly scheduler: Scheduler;

  constructor(config: string) {
    this.scheduler = buildScheduler(parseEndpointPickerConfig(config), {
      now: () => this.now, random: seededRandom(7), metrics: NOOP_SCHEDULING_METRICS,
    });
  }

  plugin<T>(name: string): T {
    return this.scheduler.plugin(name) as T;
  }

  pod(name: string, metrics: Partial<EndpointMetrics> = {}): EndpointSnapshot {
    return {
      endpoint: { key: `${name}:8000`, name, namespace: 'team', address: name, port: 8000, labels: {} },
      metrics: { ...EMPTY_METRICS, updateTime: this.now, ...metrics },
      activeRequests: 0,
    };
  }

  route(headers: Record<string, string>, candidates: EndpointSnapshot[]): string {
    const request: LLMRequest = { requestId: 'r', model: 'm', prompt: 'hello', headers };
    return this.scheduler.schedule(request, candidates).target.endpoint.name;
  }
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('no ConfigError');
}

const request = (headers: Record<string, string>): LLMRequest => ({ requestId: 'r', model: 'm', prompt: '', headers });

describe('session-affinity-scorer: llm-d-router v0.10.0 parameters (scorer/sessionaffinity/session_affinity.go @ v0.10.0)', () => {
  it('loads the README @ v0.10.0 examples: the default, session_id, the PD decode instance; strategy defaults to encoded_endpoint_header', () => {
    for (const parameters of [
      '{}',
      'strategy: session_id\nsessionIdConfig:\n  sources:\n    - header: x-session-id\n  evictionTtlSeconds: 300\n  evictionSweepSeconds: 10',
      'encodedEndpointHeaderConfig:\n  header: x-session-token',
      'profileName: decode\nencodedEndpointHeaderConfig:\n  header: x-session-token',
    ]) {
      expect(() => new Fixture(scorerConfig(parameters))).not.toThrow();
    }
    const f = new Fixture(scorerConfig('encodedEndpointHeaderConfig:\n  header: x-session-token'));
    const [a, b] = [f.pod('a'), f.pod('b', { waitingQueueSize: 5 })];
    expect(f.route({ 'x-session-token': b64('team/b') }, [a, b])).toBe('b');
  });

  it('encodedEndpointHeaderConfig.header: the token is read from and written to that header (lower-cased, trimmed; "" is the default x-session-token)', () => {
    const f = new Fixture(scorerConfig('encodedEndpointHeaderConfig:\n  header: " X-Session-Token-Decode "'));
    const [a, b] = [f.pod('a'), f.pod('b', { waitingQueueSize: 5 })];
    expect(f.route({ 'x-session-token-decode': b64('team/b') }, [a, b])).toBe('b');
    expect(f.route({ 'x-session-token': b64('team/b') }, [a, b])).toBe('a');
    const scorer = f.plugin<SessionAffinityScorer>('affinity');
    expect(scorer.postResponse(request({}), { headers: {}, metadata: {} }, b.endpoint)).toEqual({ 'x-session-token-decode': b64('team/b') });
    const byDefault = new Fixture(scorerConfig('encodedEndpointHeaderConfig:\n  header: ""')).plugin<SessionAffinityScorer>('affinity');
    expect(byDefault.postResponse(request({}), { headers: {}, metadata: {} }, b.endpoint)).toEqual({ 'x-session-token': b64('team/b') });
  });

  it('strategy: session_id binds an opaque id to the pod that served it, scores that pod 1 while a candidate, writes nothing back (session_id_header.go @ v0.10.0)', () => {
    const f = new Fixture(scorerConfig('strategy: session_id'));
    const scorer = f.plugin<SessionAffinityScorer>('affinity');
    const [a, b] = [f.pod('a'), f.pod('b', { waitingQueueSize: 1 })];
    // Unbound: no preference; the queue scorer places it on a.
    expect(f.route({ 'x-session-id': 's1' }, [a, b])).toBe('a');
    expect(scorer.boundEndpoint('s1')).toBe('team/a');
    // Bound: a keeps it even once b is the emptier pod (weight 10 against 1).
    const [a2, b2] = [f.pod('a', { waitingQueueSize: 3 }), f.pod('b')];
    expect(f.route({ 'x-session-id': 's1' }, [a2, b2])).toBe('a');
    // The default source is x-session-id only (upstream's DefaultSessionIDHeader), not x-session-token.
    expect(f.route({ 'x-session-token': 's1' }, [a2, b2])).toBe('b');
    expect(scorer.postResponse(request({ 'x-session-id': 's1' }), { headers: {}, metadata: {} }, a.endpoint)).toBeUndefined();
  });

  it('session_id: a bound pod that is not a candidate moves the session to the pick; one outvoted while a candidate keeps its binding', () => {
    const f = new Fixture(scorerConfig('strategy: session_id', 'default', 0.5));
    const scorer = f.plugin<SessionAffinityScorer>('affinity');
    expect(f.route({ 'x-session-id': 's' }, [f.pod('a'), f.pod('b', { waitingQueueSize: 4 })])).toBe('a');
    // a is busier: the queue scorer (weight 1) outvotes affinity (weight 0.5).
    expect(f.route({ 'x-session-id': 's' }, [f.pod('a', { waitingQueueSize: 100 }), f.pod('b')])).toBe('b');
    expect(scorer.boundEndpoint('s')).toBe('team/a');
    // a is gone: the pick (b) becomes the binding.
    expect(f.route({ 'x-session-id': 's' }, [f.pod('b', { waitingQueueSize: 9 }), f.pod('c')])).toBe('c');
    expect(scorer.boundEndpoint('s')).toBe('team/c');
  });

  it('session_id: sources in priority order; evictionTtlSeconds expires a binding unused that long (evictionSweepSeconds accepted)', () => {
    const f = new Fixture(scorerConfig('strategy: session_id\nsessionIdConfig:\n  sources: [{header: X-Conversation}, {header: x-session-id}]\n  evictionTtlSeconds: 60\n  evictionSweepSeconds: 5'));
    const scorer = f.plugin<SessionAffinityScorer>('affinity');
    f.route({ 'x-conversation': 'c1', 'x-session-id': 'ignored' }, [f.pod('a'), f.pod('b', { waitingQueueSize: 1 })]);
    expect(scorer.boundEndpoint('c1')).toBe('team/a');
    f.now += 59_000;
    expect(scorer.boundEndpoint('c1')).toBe('team/a');
    f.now += 2_000;
    expect(scorer.boundEndpoint('c1')).toBeUndefined();
  });

  it('refuses tokenSigning with strategy: session_id, naming tokenSigning; keeps tokenSigning with encoded_endpoint_header on its header', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-llmd-session-'));
    try {
      const key = path.join(dir, 'key');
      fs.writeFileSync(key, 'k'.repeat(40));
      const e = configError(() => parseEndpointPickerConfig(scorerConfig(`strategy: session_id\ntokenSigning: {keyFile: ${key}}`)));
      expect(e.path).toBe('plugins[0].parameters.tokenSigning');
      expect(e.message).toMatch(/session_id/);
      const signed = new Fixture(scorerConfig(`strategy: encoded_endpoint_header\nencodedEndpointHeaderConfig: {header: x-tok}\ntokenSigning: {keyFile: ${key}}`));
      const scorer = signed.plugin<SessionAffinityScorer>('affinity');
      await scorer.start();
      const headers = scorer.postResponse(request({}), { headers: {}, metadata: {} }, signed.pod('b').endpoint);
      expect(Object.keys(headers ?? {})).toEqual(['x-tok']);
      expect(headers?.['x-tok']).toMatch(new RegExp(`^${b64('team/b')}\\.\\d+\\.`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what upstream\'s validate refuses, and request-attribute sources other than agent-identity (kvroute publishes no other), each naming its field', () => {
    const cases: [string, string][] = [
      ['strategy: sticky', 'plugins[0].parameters.strategy'],
      ['strategy: session_id\nsessionIdConfig: {evictionTtlSeconds: -1}', 'plugins[0].parameters.sessionIdConfig.evictionTtlSeconds'],
      ['strategy: session_id\nsessionIdConfig: {sources: [{header: a, attribute: b}]}', 'plugins[0].parameters.sessionIdConfig.sources[0]'],
      ['strategy: session_id\nsessionIdConfig: {sources: [{attribute: tenant}]}', 'plugins[0].parameters.sessionIdConfig.sources[0].attribute'],
      ['encodedEndpointHeaderConfig: {name: x}', 'plugins[0].parameters.encodedEndpointHeaderConfig.name'],
    ];
    for (const [parameters, field] of cases) {
      expect(configError(() => parseEndpointPickerConfig(scorerConfig(parameters))).path).toBe(field);
    }
    // Upstream uses only the block its strategy selects: an unused sessionIdConfig loads.
    expect(() => parseEndpointPickerConfig(scorerConfig('sessionIdConfig: {sources: [{attribute: agent-identity}]}'))).not.toThrow();
  });

  it('profileName: empty, "decode" or the config\'s one profile load; another (llm-d\'s "prefill") is refused naming the field', () => {
    for (const [profileName, profile] of [['""', 'default'], ['decode', 'default'], ['chat', 'chat']]) {
      expect(() => new Fixture(scorerConfig(`profileName: ${profileName}`, profile!))).not.toThrow();
    }
    const e = configError(() => new Fixture(scorerConfig('profileName: prefill\nencodedEndpointHeaderConfig: {header: x-session-token-prefill}')));
    expect(e.path).toBe('plugins[0].parameters.profileName');
    expect(e.message).toMatch(/"prefill"/);
  });
});

function filterConfig(parameters: string | undefined, profile = 'default'): string {
  const block = parameters === undefined ? '' : `  parameters:\n${parameters.split('\n').map((l) => `    ${l}`).join('\n')}\n`;
  return `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- name: affinity
  type: session-affinity-filter
${block}- type: queue-scorer
schedulingProfiles:
- name: ${profile}
  plugins:
  - pluginRef: affinity
  - pluginRef: queue-scorer
`;
}

describe('session-affinity-filter: llm-d-router v0.10.0 parameters (filter/sessionaffinity/session_affinity.go @ v0.10.0)', () => {
  const noResponse = { headers: {}, metadata: {} };

  it('strategy: encoded_endpoint_header keeps only the pod the token names while it is a candidate, else every candidate; the response carries its pod\'s token (encoded_endpoint_header.go @ v0.10.0)', () => {
    // No parameters at all is upstream's default too (`defaultParameters`), as the filter's README @ v0.10.0 lists it.
    for (const parameters of [undefined, 'strategy: encoded_endpoint_header', 'encodedEndpointHeaderConfig: {header: x-session-token}', 'profileName: decode']) {
      const f = new Fixture(filterConfig(parameters));
      const filter = f.plugin<SessionAffinityFilter>('affinity');
      expect(filter.settings.strategy).toBe('encoded_endpoint_header');
      const [a, b] = [f.pod('a'), f.pod('b', { waitingQueueSize: 50 })];
      // A hard pin: the busier b is kept alone.
      expect(f.route({ 'x-session-token': b64('team/b') }, [a, b])).toBe('b');
      expect(f.route({ 'x-session-token': b64('team/gone') }, [a, b])).toBe('a');
      expect(f.route({ 'x-session-token': 'not base64!' }, [a, b])).toBe('a');
      // An opaque id is not a token, and nothing is bound.
      expect(f.route({ 'x-session-id': 's' }, [a, f.pod('b')])).toBeDefined();
      expect(filter.stats().bindings).toBe(0);
      expect(filter.postResponse(request({}), noResponse, b.endpoint)).toEqual({ 'x-session-token': b64('team/b') });
    }
  });

  it('only encoded_endpoint_header works at the response: under session_id (the default config\'s) request control neither calls nor times the filter there', () => {
    expect(new Fixture(filterConfig('strategy: encoded_endpoint_header')).plugin<SessionAffinityFilter>('affinity').handlesResponses).toBe(true);
    expect(new Fixture(filterConfig('strategy: session_id')).plugin<SessionAffinityFilter>('affinity').handlesResponses).toBe(false);
    const defaults = buildScheduler(defaultEndpointPickerConfig()).plugins.ofKind('post-response');
    // Of the default config's plugins, only the latency model and the in-flight load producer (which the default
    // active-request-scorer brings in, as llm-d-router v0.10.0's data layer does) work at the response.
    expect(defaults.filter((p) => p.handlesResponses !== false).map((p) => p.type)).toEqual(['latency-scorer', 'inflight-load-producer']);
  });

  it('encodedEndpointHeaderConfig.header names the request and response header (the README @ v0.10.0 prefill example\'s header on the decode profile)', () => {
    const f = new Fixture(filterConfig('encodedEndpointHeaderConfig:\n  header: X-Session-Token-Prefill'));
    const filter = f.plugin<SessionAffinityFilter>('affinity');
    const [a, b] = [f.pod('a'), f.pod('b', { waitingQueueSize: 50 })];
    expect(f.route({ 'x-session-token-prefill': b64('team/b') }, [a, b])).toBe('b');
    expect(f.route({ 'x-session-token': b64('team/b') }, [a, b])).toBe('a');
    expect(filter.postResponse(request({}), noResponse, a.endpoint)).toEqual({ 'x-session-token-prefill': b64('team/a') });
  });

  it('strategy: session_id is kvroute\'s opaque-id binding: sessionIdConfig.sources are its headers, evictionTtlSeconds its ttl; upstream\'s defaults [x-session-id] and 300 s; nothing on the response', () => {
    const f = new Fixture(filterConfig('strategy: session_id\nsessionIdConfig:\n  sources:\n    - header: X-Conversation\n    - header: x-session-id\n  evictionTtlSeconds: 120\n  evictionSweepSeconds: 10'));
    const filter = f.plugin<SessionAffinityFilter>('affinity');
    expect(filter.settings).toMatchObject({ strategy: 'session_id', headers: ['x-conversation', 'x-session-id'], ttlMs: 120_000, capacity: 65536 });
    const [a, b] = [f.pod('a'), f.pod('b', { waitingQueueSize: 1 })];
    expect(f.route({ 'x-conversation': 'c', 'x-session-id': 'other' }, [a, b])).toBe('a');
    expect(f.route({ 'x-conversation': 'c' }, [f.pod('a', { waitingQueueSize: 9 }), f.pod('b')])).toBe('a');
    f.now += 121_000;
    expect(filter.boundEndpoint('c')).toBeUndefined();
    expect(filter.postResponse(request({ 'x-conversation': 'c' }), noResponse, a.endpoint)).toBeUndefined();
    const defaults = new Fixture(filterConfig('strategy: session_id')).plugin<SessionAffinityFilter>('affinity');
    expect(defaults.settings).toMatchObject({ headers: ['x-session-id'], ttlMs: 300_000 });
  });

  it('keeps kvroute\'s parameters and defaults: kvroute\'s names are session_id with [x-session-id, x-session-token] and 30m; kvroute-only fields combine with strategy: session_id', () => {
    for (const parameters of ['ttl: 30m', 'headers: [x-session-id, x-session-token]\ncapacity: 10\nstickiness: soft', 'stickiness: hard', 'capacity: 65536']) {
      const filter = new Fixture(filterConfig(parameters)).plugin<SessionAffinityFilter>('affinity');
      expect(filter.settings).toMatchObject({ strategy: 'session_id', headers: ['x-session-id', 'x-session-token'], ttlMs: 1_800_000 });
    }
    const mixed = new Fixture(filterConfig('strategy: session_id\nheaders: [x-conv]\ncapacity: 2\nstickiness: hard\nsessionIdConfig: {evictionTtlSeconds: 60}'));
    expect(mixed.plugin<SessionAffinityFilter>('affinity').settings).toMatchObject({ strategy: 'session_id', headers: ['x-conv'], ttlMs: 60_000, capacity: 2 });
  });

  it('refuses a setting named both ways (headers and sessionIdConfig.sources, ttl and sessionIdConfig.evictionTtlSeconds), naming both fields', () => {
    for (const [parameters, kvroute, upstream] of [
      ['strategy: session_id\nheaders: [x-a]\nsessionIdConfig: {sources: [{header: x-b}]}', 'headers', 'sessionIdConfig.sources'],
      ['ttl: 10m\nsessionIdConfig: {evictionTtlSeconds: 600}\nstrategy: session_id', 'ttl', 'sessionIdConfig.evictionTtlSeconds'],
    ] as const) {
      const e = configError(() => parseEndpointPickerConfig(filterConfig(parameters)));
      expect(e.path).toBe(`plugins[0].parameters.${kvroute}`);
      expect(e.message).toContain(upstream);
    }
  });

  it('refuses kvroute\'s binding fields with strategy encoded_endpoint_header, request-attribute sources, and a profileName naming no profile kvroute runs', () => {
    for (const [parameters, field] of [
      ['strategy: encoded_endpoint_header\nsessionStore: {address: "redis:6379"}', 'sessionStore'],
      ['encodedEndpointHeaderConfig: {header: x-t}\nstrategy: encoded_endpoint_header\nstickiness: soft', 'stickiness'],
      ['strategy: session_id\nsessionIdConfig: {sources: [{attribute: tenant}]}', 'sessionIdConfig.sources[0].attribute'],
    ] as const) {
      expect(configError(() => parseEndpointPickerConfig(filterConfig(parameters))).path).toBe(`plugins[0].parameters.${field}`);
    }
    expect(configError(() => new Fixture(filterConfig('profileName: prefill'))).path).toBe('plugins[0].parameters.profileName');
    expect(() => new Fixture(filterConfig('profileName: chat', 'chat'))).not.toThrow();
  });

  it('renders what it read: a parsed config loads again unchanged, in either naming', () => {
    for (const parameters of [undefined, 'strategy: session_id', 'profileName: decode\nencodedEndpointHeaderConfig: {header: x-t}', 'strategy: session_id\nheaders: [x-a]\nsessionIdConfig: {evictionTtlSeconds: 0}']) {
      const once = parseEndpointPickerConfig(filterConfig(parameters));
      expect(validateEndpointPickerConfig(once).plugins).toEqual(once.plugins);
    }
  });
});

/**
 * llm-d-router v0.10.0's `session-id-producer` (cmd/epp/runner/runner.go registers it, Beta, as SessionIDDataKey's default
 * producer; requestcontrol/dataproducer/sessionid/producer.go, README.md): a session id from a header or a cookie,
 * published as the attribute "SessionIDDataKey/<producer name>", which the session plugins read through
 * sessionIdConfig.sources[].attribute (util/sessionaffinity/session_id.go resolveSessionID, attributeString).
 */
describe('session-id-producer (requestcontrol/dataproducer/sessionid/producer.go @ llm-d-router v0.10.0)', () => {
  const withProducer = (producer: string, session: string, sources: string) => `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
${producer}
- name: affinity
  type: session-affinity-${session}
  parameters:
    strategy: session_id
    sessionIdConfig:
      sources: ${sources}
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: affinity${session === 'scorer' ? '\n    weight: 10' : ''}
  - pluginRef: queue-scorer
`;
  const COOKIE_PRODUCER = '- type: session-id-producer\n  parameters:\n    cookieName: llm-d-session';

  it('the README\'s cookie example: a filter reading SessionIDDataKey/session-id-producer pins the cookie\'s session (the cookie trimmed, other cookies and pairs without "=" skipped)', () => {
    const f = new Fixture(withProducer(COOKIE_PRODUCER, 'filter', '[{attribute: SessionIDDataKey/session-id-producer}]'));
    const filter = f.plugin<SessionAffinityFilter>('affinity');
    expect(f.route({ cookie: 'theme=dark; flag; llm-d-session=abc' }, [f.pod('a'), f.pod('b', { waitingQueueSize: 5 })])).toBe('a');
    expect(filter.boundEndpoint('abc')).toBe('team/a');
    // Bound to a: stays there though b is now the emptier pod.
    expect(f.route({ cookie: 'llm-d-session= abc ' }, [f.pod('a', { waitingQueueSize: 9 }), f.pod('b')])).toBe('a');
    // No such cookie: no session.
    expect(f.route({ cookie: 'llm-d-session2=abc' }, [f.pod('a', { waitingQueueSize: 9 }), f.pod('b')])).toBe('b');
  });

  it('the README\'s header example, named: the scorer reads SessionIDDataKey/<its name> after a header source, in the sources\' order', () => {
    const producer = '- name: conv\n  type: session-id-producer\n  parameters:\n    headerName: X-Conversation';
    const f = new Fixture(withProducer(producer, 'scorer', '[{header: x-session-id}, {attribute: SessionIDDataKey/conv}]'));
    const scorer = f.plugin<SessionAffinityScorer>('affinity');
    expect(f.route({ 'x-conversation': 'c1' }, [f.pod('a'), f.pod('b', { waitingQueueSize: 1 })])).toBe('a');
    expect(scorer.boundEndpoint('c1')).toBe('team/a');
    expect(f.route({ 'x-conversation': 'c1' }, [f.pod('a', { waitingQueueSize: 3 }), f.pod('b')])).toBe('a');
    // The header source comes first.
    f.route({ 'x-session-id': 's1', 'x-conversation': 'c1' }, [f.pod('a', { waitingQueueSize: 3 }), f.pod('b')]);
    expect(scorer.boundEndpoint('s1')).toBe('team/b');
    // The header's value trimmed, as the cookie's (producer.go extract: strings.TrimSpace(request.Headers[headerName])).
    expect(f.route({ 'x-conversation': ' c1 ' }, [f.pod('a', { waitingQueueSize: 3 }), f.pod('b')])).toBe('a');
    // A header source trimmed too (util/sessionaffinity/session_id.go resolveSessionID: TrimSpace).
    expect(f.route({ 'x-session-id': ' s1 ' }, [f.pod('a'), f.pod('b', { waitingQueueSize: 3 })])).toBe('b');
    // A producer name the config does not have: its attribute is never set, as upstream's.
    const unnamed = new Fixture(withProducer(producer, 'scorer', '[{attribute: SessionIDDataKey/session-id-producer}]'));
    unnamed.route({ 'x-conversation': 'c1' }, [unnamed.pod('a'), unnamed.pod('b')]);
    expect(unnamed.plugin<SessionAffinityScorer>('affinity').boundEndpoint('c1')).toBeUndefined();
  });

  it('refuses what producer.go Factory refuses, in its words: neither or both of headerName and cookieName ("" is unset)', () => {
    const load = (parameters: string) => parseEndpointPickerConfig(withProducer(`- type: session-id-producer\n  parameters: ${parameters}`, 'filter', '[{attribute: SessionIDDataKey/session-id-producer}]'));
    for (const [parameters, field, message] of [
      ['{}', 'headerName', '\'session-id-producer\' requires exactly one of headerName or cookieName to be set'],
      ['{headerName: " ", cookieName: ""}', 'headerName', '\'session-id-producer\' requires exactly one of headerName or cookieName to be set'],
      ['{headerName: x-a, cookieName: c}', 'cookieName', '\'session-id-producer\' requires exactly one of headerName or cookieName to be set, not both'],
    ] as const) {
      const e = configError(() => load(parameters));
      expect(e.path).toBe(`plugins[0].parameters.${field}`);
      expect(e.message).toContain(message);
    }
    expect(load('{headerName: " X-A "}').plugins[0]).toEqual({ type: 'session-id-producer', name: 'session-id-producer', parameters: { headerName: 'x-a' } });
  });
});

describe('multicluster-session-affinity-filter (filter/sessionaffinity/multicluster.go @ llm-d-router v0.10.0: MultiClusterFactory builds the session-affinity-filter from the same parameters and delegates to it)', () => {
  const multicluster = (parameters: string | undefined) => filterConfig(parameters).replace('type: session-affinity-filter', 'type: multicluster-session-affinity-filter');

  it('loads with no parameters and behaves as session-affinity-filter: the token\'s pod alone, the response carrying its token; its type is its own (TestMultiClusterFactory)', () => {
    const f = new Fixture(multicluster(undefined));
    const filter = f.plugin<SessionAffinityFilter>('affinity');
    expect(filter.type).toBe('multicluster-session-affinity-filter');
    expect(filter.settings.strategy).toBe('encoded_endpoint_header');
    const [a, b] = [f.pod('a'), f.pod('b', { waitingQueueSize: 50 })];
    expect(f.route({ 'x-session-token': b64('team/b') }, [a, b])).toBe('b');
    expect(filter.postResponse(request({}), { headers: {}, metadata: {} }, a.endpoint)).toEqual({ 'x-session-token': b64('team/a') });
  });

  it('takes the filter\'s parameters (session_id) and refuses what the filter refuses, naming the field', () => {
    const f = new Fixture(multicluster('strategy: session_id'));
    expect(f.route({ 'x-session-id': 's' }, [f.pod('a'), f.pod('b', { waitingQueueSize: 1 })])).toBe('a');
    expect(f.route({ 'x-session-id': 's' }, [f.pod('a', { waitingQueueSize: 9 }), f.pod('b')])).toBe('a');
    expect(f.plugin<SessionAffinityFilter>('affinity').boundEndpoint('s')).toBe('team/a');
    expect(configError(() => parseEndpointPickerConfig(multicluster('strategy: sticky'))).path).toBe('plugins[0].parameters.strategy');
  });
});

/**
 * llm-d-router v0.10.0 deploy/config/pd-epp-config.yaml with the filter README's two P/D instances (a decode one on
 * x-session-token, a `profileName: prefill` one on x-session-token-prefill), as test/integration/epp/
 * session_affinity_test.go @ v0.10.0 `pdConfigBase` lists them.
 */
const pdSessionConfig = (kind: 'filter' | 'scorer', decider: string) => `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: ${decider}
- type: ${decider}
- name: session-affinity-decode
  type: session-affinity-${kind}
  parameters:
    encodedEndpointHeaderConfig:
      header: x-session-token
- name: session-affinity-prefill
  type: session-affinity-${kind}
  parameters:
    profileName: prefill
    encodedEndpointHeaderConfig:
      header: x-session-token-prefill
schedulingProfiles:
- name: prefill
  plugins:
  - pluginRef: prefill-filter
  - pluginRef: session-affinity-prefill${kind === 'scorer' ? '\n    weight: 10' : ''}
  - pluginRef: max-score-picker
  - pluginRef: queue-scorer
- name: decode
  plugins:
  - pluginRef: decode-filter
  - pluginRef: session-affinity-decode${kind === 'scorer' ? '\n    weight: 10' : ''}
  - pluginRef: max-score-picker
  - pluginRef: queue-scorer
`;

describe('profileName under P/D: the response token names THAT profile\'s pick, none when it picked nothing (util/sessionaffinity/header.go ResolvePodToWrite @ llm-d-router v0.10.0), over ext_proc to the whole EPP', () => {
  const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
  let dir: string;
  let pods: FakeVllmServer[] = [];
  let names = new Map<string, string>();
  let epp: RunningEpp | undefined;
  let envoy: FakeEnvoy | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-llmd-session-pd-'));
  });
  afterEach(async () => {
    envoy?.close();
    envoy = undefined;
    await epp?.stop();
    epp = undefined;
    await Promise.all(pods.map((p) => p.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Two decode and two prefill pods (real metrics servers), their roles from a file-discovery endpoints file. */
  async function start(text: string): Promise<void> {
    const page = { engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] };
    pods = await Promise.all([0, 1, 2, 3].map(() => FakeVllmServer.start(page)));
    const entries = pods.map((p, i) => ({ p, name: i < 2 ? `decode-${i}` : `prefill-${i - 2}`, role: i < 2 ? 'decode' : 'prefill' }));
    names = new Map(entries.map((e) => [`127.0.0.1:${e.p.port}`, e.name]));
    const file = path.join(dir, 'endpoints.yaml');
    fs.writeFileSync(file, `endpoints:\n${entries.map((e) => `  - {name: ${e.name}, address: "127.0.0.1", port: "${e.p.port}", labels: {llm-d.ai/role: ${e.role}}}`).join('\n')}\n`);
    const full = text
      .replace('plugins:\n', `plugins:\n- name: files\n  type: file-discovery\n  parameters: {path: ${JSON.stringify(file)}}\n`)
      .replace('schedulingProfiles:', 'dataLayer:\n  discovery: {pluginRef: files}\nschedulingProfiles:');
    epp = await startEpp(parseArgs(['--config-text', full, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms'], {})!, quiet);
    envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
    await waitFor(() => epp!.datastore.snapshot().length === 4 && epp!.datastore.snapshot().every((s) => s.metrics.updateTime > 0));
  }

  /** One request through ext_proc: where it was routed, and the headers set on its response. */
  async function exchange(prompt: string, headers: Record<string, string> = {}): Promise<{ decode: string; prefill?: string; response: Record<string, string> }> {
    const s = envoy!.open();
    s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json', ...headers }, false));
    s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt })), true));
    const routed = setHeaders((await s.next()).request_headers.response.header_mutation);
    for (;;) {
      const m = await s.next();
      if (m.request_body.response.body_mutation.streamed_response.end_of_stream) break;
    }
    s.send(responseHeaders({ ':status': '200', 'content-type': 'application/json' }, false));
    const response = setHeaders((await s.next()).response_headers.response?.header_mutation);
    s.send(responseBody('{"choices":[]}', true));
    await s.next();
    s.end();
    const prefill = routed['x-prefiller-host-port'];
    return { decode: names.get(routed['x-gateway-destination-endpoint'] as string)!, ...(prefill ? { prefill: names.get(prefill)! } : {}), response };
  }

  const decoded = (token: string | undefined) => (token === undefined ? undefined : Buffer.from(token, 'base64').toString('utf8'));

  test.each(['filter', 'scorer'] as const)('session-affinity-%s: the profileName: prefill instance writes the prefill pick to x-session-token-prefill; both tokens sent back pin both pods (TestSessionAffinityFilter_PDDisaggregated)', async (kind) => {
    await start(pdSessionConfig(kind, 'always-disagg-pd-decider'));
    const first = await exchange('hello there');
    expect(first.prefill).toMatch(/^prefill-/);
    expect(decoded(first.response['x-session-token'])).toBe(`default/${first.decode}`);
    // Upstream: base64("<namespace>/<pod>") of the prefill profile's TargetEndpoints[0] (until 2026-12-06 the decode pod's).
    expect(decoded(first.response['x-session-token-prefill'])).toBe(`default/${first.prefill}`);
    const tokens = { 'x-session-token': first.response['x-session-token']!, 'x-session-token-prefill': first.response['x-session-token-prefill']! };
    for (let i = 0; i < 3; i++) {
      const again = await exchange('hello there', tokens);
      expect([again.decode, again.prefill]).toEqual([first.decode, first.prefill]);
      expect(again.response).toMatchObject(tokens);
    }
  });

  test('a decode-only request (the decider said no prefill): the profileName: prefill instance writes nothing, the decode one its token (TestSessionAffinityFilter_DecodeOnly)', async () => {
    await start(pdSessionConfig('filter', 'prefix-based-pd-decider'));
    const r = await exchange('hi');
    expect(r.prefill).toBeUndefined();
    expect(decoded(r.response['x-session-token'])).toBe(`default/${r.decode}`);
    expect(r.response['x-session-token-prefill']).toBeUndefined();
  });
});

test('epp/README.md lists llm-d-router v0.10.0\'s session-affinity parameters in both plugins\' rows and their section, citing the upstream files @ v0.10.0', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  for (const type of ['session-affinity-filter', 'session-affinity-scorer']) {
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${type}\` |`));
    expect(row).toBeDefined();
    for (const name of ['strategy', 'encodedEndpointHeaderConfig.header', 'sessionIdConfig', 'evictionTtlSeconds', 'profileName', 'post-response']) expect(row).toContain(name);
    expect(row).toContain(`${type === 'session-affinity-filter' ? 'filter' : 'scorer'}/sessionaffinity/session_affinity.go\` @ v0.10.0`);
  }
  const section = readme.slice(readme.indexOf('### llm-d-router v0.10.0\'s session-affinity parameters'), readme.indexOf('### Sessions across replicas'));
  for (const name of ['`strategy`', '`encodedEndpointHeaderConfig.header`', '`sessionIdConfig.sources`', '`sessionIdConfig.evictionTtlSeconds`', '`sessionIdConfig.evictionSweepSeconds`', '`profileName`', 'session_id.go', 'header.go']) {
    expect(section).toContain(name);
  }
});
