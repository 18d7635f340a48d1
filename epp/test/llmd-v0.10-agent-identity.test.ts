/**
 * llm-d-router v0.10.0's `agent-identity` plugin (pkg/epp/framework/plugins/requestcontrol/requestheader/agentidentity,
 * agent_identity.go and README.md @ v0.10.0): the agent session a request names, which the director takes as the
 * flow-control fairness id when no header sets one (requestcontrol/director.go), and which the session-affinity
 * plugins read through a `sessionIdConfig.sources` entry `{attribute: agent-identity}` (their READMEs @ v0.10.0).
 */
import { seededRandom } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import type { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest } from '../src/extproc/request-director';
import { createEppMetrics } from '../src/metrics';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import { LLMD_FAIRNESS_ID_HEADER, RequestControl } from '../src/requestcontrol/request-control';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import type { AgentIdentity } from '../src/scheduling/plugins/agent-identity';
import type { SessionAffinityFilter } from '../src/scheduling/plugins/session-affinity-filter';
import { buildScheduler } from '../src/scheduling/scheduler';
import { staticPool } from './static-pool';

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';

describe('agent-identity: the first non-empty of the additional headers, then the built-in agent headers', () => {
  const identity = (config: string): AgentIdentity => buildScheduler(parseEndpointPickerConfig(config)).plugin('agent-identity') as unknown as AgentIdentity;

  test('loads the README @ v0.10.0 examples; built-in order Claude Code, OpenCode, Codex, Codex legacy; additional headers first, lower-cased', () => {
    const plain = identity('apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n  - type: agent-identity\n');
    expect(plain.headers).toEqual(['x-claude-code-session-id', 'x-session-affinity', 'session-id', 'session_id']);
    expect(plain.identityOf({ session_id: 'legacy', 'session-id': 'codex', 'x-session-affinity': 'opencode' })).toBe('opencode');
    expect(plain.identityOf({ session_id: 'legacy', 'session-id': '' })).toBe('legacy');
    expect(plain.identityOf({ 'x-session-id': 's' })).toBeUndefined();
    const extended = identity(`${LLMD}plugins:\n  - type: agent-identity\n    parameters:\n      additionalSessionHeaders:\n        - X-My-Agent-Session\n        - x-another-agent-id\n`);
    expect(extended.headers.slice(0, 3)).toEqual(['x-my-agent-session', 'x-another-agent-id', 'x-claude-code-session-id']);
    expect(extended.identityOf({ 'x-claude-code-session-id': 'claude', 'x-another-agent-id': 'mine' })).toBe('mine');
  });

  test('with several agent-identity plugins the last one that matches names the session, as upstream runs each and each writes the attribute', () => {
    const config = parseEndpointPickerConfig(`${LLMD}plugins:
  - {type: agent-identity, name: first, parameters: {additionalSessionHeaders: [x-a]}}
  - {type: agent-identity, name: second, parameters: {additionalSessionHeaders: [x-b]}}
  - name: affinity
    type: session-affinity-filter
    parameters: {strategy: session_id, sessionIdConfig: {sources: [{attribute: agent-identity}]}}
`);
    const filter = buildScheduler(config).plugin('affinity') as unknown as SessionAffinityFilter;
    expect(filter.settings.headers.slice(0, 2)).toEqual(['x-b', 'x-claude-code-session-id']);
    expect(filter.settings.headers).toContain('x-a');
  });

  test('renders and loads again unchanged; a header name that is not a string is refused, naming the field', () => {
    const config = parseEndpointPickerConfig(`${LLMD}plugins:\n  - type: agent-identity\n    parameters: {additionalSessionHeaders: [x-a]}\n`);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config)).plugins).toEqual(config.plugins);
    expect(() => parseEndpointPickerConfig(`${LLMD}plugins:\n  - type: agent-identity\n    parameters: {additionalSessionHeaders: [3]}\n`))
      .toThrow('plugins[0].parameters.additionalSessionHeaders[0]: must be a string, got 3');
  });
});

describe('the fairness id of a request without a fairness-id header is its agent session (director.go)', () => {
  let ds: Datastore;
  let control: RequestControl | undefined;
  beforeEach(() => {
    ds = staticPool(2);
  });
  afterEach(() => {
    control?.close();
    ds.stop();
  });

  const post = (headers: Record<string, string>): IncomingRequest => ({
    requestId: 'r',
    headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
    body: Buffer.from(JSON.stringify({ model: 'm', prompt: 'hello' })),
    filterMetadata: {},
  });

  /** The fairness ids the flow-control series counted for one request each of `requests`, with or without the plugin. */
  async function fairnessIds(withPlugin: boolean, requests: Record<string, string>[]): Promise<string[]> {
    const base = defaultEndpointPickerConfig();
    const config = withPlugin ? { ...base, plugins: [...base.plugins, { type: 'agent-identity' as const, name: 'agent-identity' }] } : base;
    const metrics = createEppMetrics();
    control = new RequestControl({
      datastore: ds,
      scheduler: buildScheduler(parseEndpointPickerConfig(renderEndpointPickerConfig(config))),
      metrics: metrics.collectors,
      poolName: 'pool',
      flowControl: { queue: new FlowControlQueue({ maxQueued: 4, maxWaitMs: 1000, maxDispatchPerCall: 1 }), objectives: new Map(), recordEveryRequest: true },
    });
    for (const headers of requests) {
      const d = await control.route(post(headers));
      if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
      control.release(d.ticket, 'completed');
    }
    const page = await metrics.registry.metrics();
    return [...page.matchAll(/inference_extension_flow_control_request_queue_duration_seconds_count\{fairness_id="([^"]*)"/g)].map((m) => m[1]!).sort();
  }

  test('with agent-identity: the agent session; an explicit fairness id wins; neither is default-flow', async () => {
    expect(await fairnessIds(true, [{ 'x-claude-code-session-id': 'claude-1' }, { 'session-id': 'codex-1', [LLMD_FAIRNESS_ID_HEADER]: 'tenant-a' }, {}]))
      .toEqual(['claude-1', 'default-flow', 'tenant-a']);
  });

  test('without it, agent headers are not read', async () => {
    expect(await fairnessIds(false, [{ 'x-claude-code-session-id': 'claude-1' }])).toEqual(['default-flow']);
  });
});

describe('session-affinity-filter: sessionIdConfig.sources {attribute: agent-identity} (filter/sessionaffinity/README.md @ v0.10.0)', () => {
  const config = (withPlugin: boolean): string => `${LLMD}plugins:
${withPlugin ? '- type: agent-identity\n' : ''}- name: affinity
  type: session-affinity-filter
  parameters:
    strategy: session_id
    sessionIdConfig:
      sources:
        - header: x-session-id
        - attribute: agent-identity
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: affinity
  - pluginRef: queue-scorer
`;
  const pod = (name: string, waitingQueueSize = 0): EndpointSnapshot => ({
    endpoint: { key: `${name}:8000`, name, namespace: 'team', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now(), waitingQueueSize },
    activeRequests: 0,
  });

  test('the attribute reads the agent-identity plugin\'s headers after x-session-id: an agent session is pinned to its pod', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(config(true)), { random: seededRandom(3), metrics: NOOP_SCHEDULING_METRICS });
    const filter = scheduler.plugin('affinity') as unknown as SessionAffinityFilter;
    expect(filter.settings.headers).toEqual(['x-session-id', 'x-claude-code-session-id', 'x-session-affinity', 'session-id', 'session_id']);
    const route = (headers: Record<string, string>, pods: EndpointSnapshot[]): string =>
      scheduler.schedule({ requestId: 'r', model: 'm', prompt: 'hello', headers }, pods).target.endpoint.name;
    expect(route({ 'session-id': 'codex-1' }, [pod('a'), pod('b', 3)])).toBe('a');
    // Pinned: a kept alone although busier now.
    expect(route({ 'session-id': 'codex-1' }, [pod('a', 9), pod('b')])).toBe('a');
  });

  test('without an agent-identity plugin the attribute is never set, as upstream\'s: only x-session-id is read', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(config(false)));
    expect((scheduler.plugin('affinity') as unknown as SessionAffinityFilter).settings.headers).toEqual(['x-session-id']);
  });
});
