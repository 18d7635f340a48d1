import { CLUSTERS, DEMO, withOverrides } from '../lib/clusters';
import type { KvAwareRoutingProps } from '../lib/kv-aware-routing';
import { all, Manifest, one, synthChart } from './support/manifests';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x));

const API_SERVER = [{ cidrs: ['10.96.0.1/32'], ports: [443] }, { cidrs: ['192.0.2.10/32'], ports: [6443] }];

const variants: [string, KvAwareRoutingProps][] = [
  ...CLUSTERS.map((c) => [c.name, c.routing] as [string, KvAwareRoutingProps]),
  ['central KV events', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central' } } })],
  ['locked-down egress, per-pod KV events, extra health and metrics sources', withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'per-pod' } },
    networkPolicy: {
      egress: { apiServer: API_SERVER },
      healthSources: [{ cidr: '10.0.0.0/16', except: ['10.0.99.0/24'] }],
      metricsSources: [{ namespaceLabels: { team: 'observability' }, podLabels: { 'app.kubernetes.io/name': 'prometheus' } }],
    },
  })],
  ['locked-down egress, central KV events', withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'central' } },
    networkPolicy: { egress: { apiServer: API_SERVER } },
  })],
  ['2 replicas, a deployed Valkey, locked-down egress', withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'per-pod' } },
    endpointPicker: { replicas: 2 },
    sessionStore: { deploy: {} },
    networkPolicy: { egress: { apiServer: API_SERVER } },
  })],
  ['3 replicas, an existing store in another namespace, locked-down egress', withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'per-pod' } },
    endpointPicker: { replicas: 3 },
    sessionStore: { existing: { host: 'valkey.cache.svc.cluster.local', port: 6380, networkPeer: { namespace: 'cache', podLabels: { app: 'valkey' } } } },
    networkPolicy: { egress: { apiServer: API_SERVER } },
  })],
];

// ---------------------------------------------------------------------------------------------------------------
// The EPP's NetworkPolicy against the ports the Services expose.
// ---------------------------------------------------------------------------------------------------------------

function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

const portsOf = (rule: Json): number[] => (rule.ports ?? []).map((p: Json) => p.port);

/**
 * What is wrong with the EPP's NetworkPolicy, read from the manifests only: which pods it selects, and for each port
 * the EPP Service exposes, who may connect. Every Service port must be accounted for: a port added to the Service
 * without a decision here (a state store, another ZMQ socket) fails.
 */
function eppPolicyProblems(m: Manifest[], healthSources: Json[] = []): string[] {
  const problems: string[] = [];
  const pool = one(m, 'InferencePool');
  const eppName = pool.spec.extensionRef?.name ?? pool.spec.endpointPickerRef.name;
  const eppSvc = one(m, 'Service', eppName);
  const eppDeployment = one(m, 'Deployment', eppName);
  const poolSelector = pool.spec.selector.matchLabels ?? pool.spec.selector;
  const decodeDeployment = all(m, 'Deployment').find((d) => selects(poolSelector, d.spec.template.metadata.labels))!;
  const policies = all(m, 'NetworkPolicy');
  const policy = policies.find((p) => selects(p.spec.podSelector.matchLabels, eppDeployment.spec.template.metadata.labels));
  if (!policy) return ['no NetworkPolicy selects the EPP pods'];
  for (const d of all(m, 'Deployment').filter((x) => x !== eppDeployment)) {
    if (selects(policy.spec.podSelector.matchLabels, d.spec.template.metadata.labels)) problems.push(`the policy also selects ${d.metadata.name}`);
  }
  if (policy.metadata.namespace !== eppDeployment.metadata.namespace) problems.push('the policy is not in the EPP namespace');
  if (!policy.spec.policyTypes.includes('Ingress')) problems.push('the policy does not restrict ingress');

  const rules: Json[] = policy.spec.ingress ?? [];
  for (const [i, r] of rules.entries()) {
    // A rule without `from` admits every source, without `ports` every port.
    if (!r.from?.length) problems.push(`ingress[${i}] has no from: it admits everyone`);
    if (!r.ports?.length) problems.push(`ingress[${i}] has no ports: it opens every port`);
  }
  const containerPorts = eppDeployment.spec.template.spec.containers.flatMap((c: Json) => c.ports ?? []);
  const byNumber = (n: number) => containerPorts.find((p: Json) => p.containerPort === n);
  const rulesFor = (port: number) => rules.filter((r) => portsOf(r).includes(port));
  for (const r of rules) {
    for (const port of portsOf(r)) {
      const cp = byNumber(port);
      if (!cp || !eppSvc.spec.ports.some((sp: Json) => sp.targetPort === cp.name || sp.targetPort === port)) {
        problems.push(`ingress opens ${port}, which the EPP Service does not expose`);
      }
    }
  }

  const gateway = one(m, 'Gateway');
  const expected: Record<string, Json[] | undefined> = {
    // Istio labels its gateway pods with the Gateway's name (kube-gateway.yaml).
    'grpc-ext-proc': [{ podSelector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': gateway.metadata.name } } }],
    // The kubelet probes from the node, which NetworkPolicy does not filter: no rule unless other checkers are named.
    'grpc-health': healthSources.length ? healthSources : undefined,
    'http-metrics': undefined, // checked below: whatever the profile names, the default being the monitoring namespace
    'tcp-kv-events': [{ podSelector: { matchLabels: decodeDeployment.spec.template.metadata.labels } }],
  };
  for (const sp of eppSvc.spec.ports as Json[]) {
    const cp = containerPorts.find((p: Json) => p.name === sp.targetPort);
    const found = rulesFor(cp.containerPort);
    if (!(sp.name in expected)) {
      problems.push(`Service port ${sp.name} (${sp.port}) has no documented source in the EPP's NetworkPolicy`);
      continue;
    }
    if (found.length > 1) problems.push(`Service port ${sp.name} is opened by ${found.length} rules`);
    const from = found[0]?.from;
    if (sp.name === 'http-metrics') {
      if (!from?.length) problems.push('the metrics port is closed to Prometheus');
      else if (from.some((peer: Json) => !peer.namespaceSelector && !peer.podSelector && !peer.ipBlock)) problems.push('an empty metrics peer');
      continue;
    }
    if (JSON.stringify(from) !== JSON.stringify(expected[sp.name])) {
      problems.push(`Service port ${sp.name}: sources ${JSON.stringify(from)}, expected ${JSON.stringify(expected[sp.name])}`);
    }
  }
  return problems;
}

/**
 * What is wrong with the deployed session store's NetworkPolicy, from the manifests only: for each port the store's
 * Service exposes, only the EPP's pods may connect; nothing else is open, in or out.
 */
function storePolicyProblems(m: Manifest[]): string[] {
  const stores = all(m, 'StatefulSet');
  if (stores.length === 0) return [];
  const problems: string[] = [];
  const pool = one(m, 'InferencePool');
  const eppDeployment = one(m, 'Deployment', pool.spec.extensionRef?.name ?? pool.spec.endpointPickerRef.name);
  for (const store of stores) {
    const labels = store.spec.template.metadata.labels;
    const svc = one(m, 'Service', store.spec.serviceName);
    const policy = all(m, 'NetworkPolicy').find((p) => selects(p.spec.podSelector.matchLabels, labels));
    if (!policy) {
      problems.push(`no NetworkPolicy selects the ${store.metadata.name} pods`);
      continue;
    }
    for (const w of [...all(m, 'Deployment'), ...stores].filter((x) => x !== store)) {
      if (selects(policy.spec.podSelector.matchLabels, w.spec.template.metadata.labels)) problems.push(`the store policy also selects ${w.metadata.name}`);
    }
    if (JSON.stringify(policy.spec.policyTypes) !== JSON.stringify(['Ingress', 'Egress'])) problems.push('the store policy does not restrict both directions');
    if ((policy.spec.egress ?? []).length > 0) problems.push('the store policy opens egress');
    const containerPorts = store.spec.template.spec.containers.flatMap((c: Json) => c.ports ?? []);
    const rules: Json[] = policy.spec.ingress ?? [];
    const eppOnly = [{ podSelector: { matchLabels: eppDeployment.spec.template.metadata.labels } }];
    for (const sp of svc.spec.ports as Json[]) {
      const cp = containerPorts.find((p: Json) => p.name === sp.targetPort || p.containerPort === sp.targetPort);
      const found = rules.filter((r) => portsOf(r).includes(cp?.containerPort));
      if (found.length !== 1 || JSON.stringify(found[0]!.from) !== JSON.stringify(eppOnly)) {
        problems.push(`store Service port ${sp.name}: sources ${JSON.stringify(found.map((r) => r.from))}, expected the EPP pods only`);
      }
    }
    for (const r of rules) {
      for (const port of portsOf(r)) {
        if (!containerPorts.some((p: Json) => p.containerPort === port)) problems.push(`the store policy opens ${port}, which the store does not serve`);
      }
    }
  }
  return problems;
}

describe.each(variants)('%s: the EPP NetworkPolicy', (_name, props) => {
  const { chart, manifests: m } = synthChart(props);
  const policy = one(m, 'NetworkPolicy', chart.endpointPicker.name);
  const healthSources = (props.networkPolicy?.healthSources ?? []).map((s: Json) => ({ ipBlock: { cidr: s.cidr, except: s.except } }));

  test('opens each port the EPP Service exposes to its callers only', () => {
    expect(eppPolicyProblems(m, healthSources)).toEqual([]);
    expect(storePolicyProblems(m)).toEqual([]);
    // What the construct exposes matches what it wrote.
    expect(chart.networkPolicy!.ingressPorts).toEqual(policy.spec.ingress.flatMap(portsOf));
    expect(chart.networkPolicy!.restrictsEgress).toBe(props.networkPolicy?.egress !== undefined);
  });

  test('admits Prometheus from the configured sources (default: the monitoring namespace) on the port the ServiceMonitor scrapes', () => {
    const metricsRule = policy.spec.ingress.find((r: Json) => portsOf(r).includes(9090));
    const configured = props.networkPolicy?.metricsSources;
    if (configured === undefined) {
      expect(metricsRule.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
    } else {
      expect(metricsRule.from).toEqual([{ namespaceSelector: { matchLabels: { team: 'observability' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }]);
    }
    const sm = all(m, 'ServiceMonitor')[0];
    if (sm) {
      const svcPort = one(m, 'Service', chart.endpointPicker.name).spec.ports.find((p: Json) => p.name === sm.spec.endpoints[0].port);
      expect(svcPort.port).toBe(9090);
    }
  });

  test('restricts egress only when asked, and then to DNS, the API server and the decode pods\' ports', () => {
    const egress = props.networkPolicy?.egress;
    if (!egress) {
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      expect(policy.spec.egress).toBeUndefined();
      return;
    }
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const decode = one(m, 'Deployment', chart.decodePool.deploymentName);
    const vllmPorts = decode.spec.template.spec.containers.find((c: Json) => c.name === 'vllm').ports;
    const portNamed = (n: string) => vllmPorts.find((p: Json) => p.name === n)?.containerPort;
    const pool = one(m, 'InferencePool');
    const decodeRulePorts = [pool.spec.targetPortNumber];
    if (chart.decodePool.kvEvents?.mode === 'per-pod') decodeRulePorts.push(portNamed('kv-events'), portNamed('kv-replay'));
    // The shared session store: the deployed one's pods on the port its Service exposes, or the existing one's peer.
    const storeRules: Json[] = [];
    const [deployed] = all(m, 'StatefulSet');
    const existing = props.sessionStore?.existing;
    if (deployed) {
      const storeSvc = one(m, 'Service', deployed.spec.serviceName);
      storeRules.push({ to: [{ podSelector: { matchLabels: deployed.spec.template.metadata.labels } }], ports: [{ protocol: 'TCP', port: storeSvc.spec.ports[0].port }] });
    } else if (existing) {
      storeRules.push({
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'cache' } }, podSelector: { matchLabels: { app: 'valkey' } } }],
        ports: [{ protocol: 'TCP', port: existing.port }],
      });
    }
    expect(policy.spec.egress).toEqual([
      {
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
        ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }],
      },
      { to: [{ ipBlock: { cidr: '10.96.0.1/32' } }], ports: [{ protocol: 'TCP', port: 443 }] },
      { to: [{ ipBlock: { cidr: '192.0.2.10/32' } }], ports: [{ protocol: 'TCP', port: 6443 }] },
      {
        to: [{ podSelector: { matchLabels: decode.spec.template.metadata.labels } }],
        ports: decodeRulePorts.map((port) => ({ protocol: 'TCP', port })),
      },
      ...storeRules,
    ]);
  });
});

/**
 * What is wrong with the decode pods' NetworkPolicy, from the manifests only: for every port a decode container declares,
 * who may connect. The serving port (the InferencePool's target port) admits the gateway's pods and the EPP's (its
 * scrapes) and the named clients; vLLM's own port, whoever the vLLM PodMonitor's Prometheus is; the per-pod KV sockets,
 * the EPP's pods. A port declared without a rule, or a rule for a port nothing declares, is a problem.
 */
function decodePolicyProblems(m: Manifest[], metricsFrom: Json[], clients: Json[] = []): string[] {
  const problems: string[] = [];
  const pool = one(m, 'InferencePool');
  const poolSelector = pool.spec.selector.matchLabels ?? pool.spec.selector;
  const decode = all(m, 'Deployment').find((d) => selects(poolSelector, d.spec.template.metadata.labels))!;
  const eppDeployment = one(m, 'Deployment', pool.spec.extensionRef?.name ?? pool.spec.endpointPickerRef.name);
  const policy = all(m, 'NetworkPolicy').find((p) => selects(p.spec.podSelector.matchLabels, decode.spec.template.metadata.labels));
  if (!policy) return ['no NetworkPolicy selects the decode pods'];
  for (const d of all(m, 'Deployment').filter((x) => x !== decode)) {
    if (selects(policy.spec.podSelector.matchLabels, d.spec.template.metadata.labels)) problems.push(`the decode policy also selects ${d.metadata.name}`);
  }
  if (!policy.spec.policyTypes.includes('Ingress')) problems.push('the decode policy does not restrict ingress');
  const rules: Json[] = policy.spec.ingress ?? [];
  for (const [i, r] of rules.entries()) {
    if (!r.from?.length) problems.push(`ingress[${i}] has no from: it admits everyone`);
    if (!r.ports?.length) problems.push(`ingress[${i}] has no ports: it opens every port`);
  }
  const spec = decode.spec.template.spec;
  const declared: Json[] = [...(spec.initContainers ?? []), ...spec.containers].flatMap((c: Json) => c.ports ?? []);
  const gateway = one(m, 'Gateway');
  const eppPods = { podSelector: { matchLabels: eppDeployment.spec.template.metadata.labels } };
  const expected: Record<string, Json[]> = {
    http: [{ podSelector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': gateway.metadata.name } } }, eppPods, ...clients],
    vllm: metricsFrom,
    'kv-events': [eppPods],
    'kv-replay': [eppPods],
  };
  if (!declared.some((p) => p.containerPort === pool.spec.targetPortNumber || p.containerPort === pool.spec.targetPorts?.[0]?.number)) problems.push('the pool target port is not declared');
  for (const p of declared) {
    const found = rules.filter((r) => portsOf(r).includes(p.containerPort));
    if (!(p.name in expected)) {
      problems.push(`decode port ${p.name} (${p.containerPort}) has no documented source`);
      continue;
    }
    if (found.length > 1) problems.push(`decode port ${p.name} is opened by ${found.length} rules`);
    const from = found[0]?.from ?? [];
    if (JSON.stringify(from) !== JSON.stringify(expected[p.name])) problems.push(`decode port ${p.name}: sources ${JSON.stringify(from)}, expected ${JSON.stringify(expected[p.name])}`);
  }
  for (const r of rules) {
    for (const port of portsOf(r)) if (!declared.some((p) => p.containerPort === port)) problems.push(`the decode policy opens ${port}, which no decode container declares`);
  }
  return problems;
}

describe.each(variants)('%s: the decode pods\' NetworkPolicy', (_name, props) => {
  const { chart, manifests: m } = synthChart(props);
  const configured = props.networkPolicy?.metricsSources;
  const metricsFrom = configured === undefined
    ? [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]
    : [{ namespaceSelector: { matchLabels: { team: 'observability' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }];

  test('opens each port a decode container declares to its callers only (the gateway and the EPP on the serving port, Prometheus on vLLM\'s, the EPP on the KV sockets)', () => {
    expect(decodePolicyProblems(m, metricsFrom)).toEqual([]);
    const policy = all(m, 'NetworkPolicy').find((p) => p.metadata.name === chart.decodePool.deploymentName)!;
    expect(chart.decodeNetworkPolicy!.ingressPorts).toEqual(policy.spec.ingress.flatMap(portsOf));
    // The vLLM PodMonitor scrapes a port the policy opens to Prometheus.
    const podMonitor = all(m, 'PodMonitor').find((p) => selects(p.spec.selector.matchLabels, policy.spec.podSelector.matchLabels));
    if (podMonitor) {
      const vllmPort = one(m, 'Deployment', chart.decodePool.deploymentName).spec.template.spec.containers.flatMap((c: Json) => c.ports ?? [])
        .find((p: Json) => p.name === podMonitor.spec.podMetricsEndpoints[0].port).containerPort;
      expect(policy.spec.ingress.find((r: Json) => portsOf(r).includes(vllmPort)).from).toEqual(metricsFrom);
    }
  });
});

describe('the NetworkPolicy check itself', () => {
  const { manifests: m } = synthChart(withOverrides(DEMO, { decode: { kvEvents: { mode: 'central' } } }));
  const withMutation = (mutate: (m: Manifest[]) => void): string[] => {
    const copy = clone(m);
    mutate(copy);
    return eppPolicyProblems(copy);
  };
  const policyOf = (x: Manifest[]) => one(x, 'NetworkPolicy', 'ms-llm-d-modelservice-epp');

  test('fails when the EPP Service gains a port the policy says nothing about', () => {
    expect(withMutation((x) => {
      one(x, 'Service', 'ms-llm-d-modelservice-epp').spec.ports.push({ name: 'tcp-store', port: 6379, targetPort: 'tcp-store', protocol: 'TCP' });
      container0(one(x, 'Deployment', 'ms-llm-d-modelservice-epp')).ports.push({ name: 'tcp-store', containerPort: 6379, protocol: 'TCP' });
    })).toEqual(['Service port tcp-store (6379) has no documented source in the EPP\'s NetworkPolicy']);
  });

  test('fails when a rule admits everyone, opens a port the Service lacks, or the wrong callers', () => {
    expect(withMutation((x) => { delete policyOf(x).spec.ingress[0].from; })).toContain('ingress[0] has no from: it admits everyone');
    expect(withMutation((x) => { policyOf(x).spec.ingress[0].ports.push({ protocol: 'TCP', port: 22 }); }))
      .toContain('ingress opens 22, which the EPP Service does not expose');
    expect(withMutation((x) => { policyOf(x).spec.ingress[0].from[0].podSelector.matchLabels = { app: 'anything' }; }).join('\n'))
      .toMatch(/Service port grpc-ext-proc: sources/);
    expect(withMutation((x) => { policyOf(x).spec.ingress.pop(); }).join('\n')).toMatch(/Service port tcp-kv-events: sources undefined/);
    expect(withMutation((x) => { policyOf(x).spec.ingress.splice(1, 1); })).toContain('the metrics port is closed to Prometheus');
  });

  test('fails when the policy selects other pods, or none', () => {
    expect(withMutation((x) => { policyOf(x).spec.podSelector.matchLabels = { 'llm-d.ai/model': 'ms-llm-d-modelservice' }; }))
      .toEqual(['no NetworkPolicy selects the EPP pods']);
    expect(withMutation((x) => { one(x, 'Deployment', 'ms-llm-d-modelservice-decode').spec.template.metadata.labels['llm-d.ai/epp'] = 'ms-llm-d-modelservice-epp'; }))
      .toContain('the policy also selects ms-llm-d-modelservice-decode');
  });

  test('the store check fails when the store admits others, opens egress, or has no policy', () => {
    const { manifests: ha } = synthChart(withOverrides(DEMO, { decode: { kvEvents: { mode: 'per-pod' } }, endpointPicker: { replicas: 2 }, sessionStore: { deploy: {} } }));
    expect(storePolicyProblems(ha)).toEqual([]);
    const storePolicy = (x: Manifest[]) => all(x, 'NetworkPolicy').find((p) => p.metadata.name.endsWith('-session-store'))!;
    const mutated = (mutate: (x: Manifest[]) => void): string[] => {
      const copy = clone(ha);
      mutate(copy);
      return storePolicyProblems(copy);
    };
    expect(mutated((x) => { storePolicy(x).spec.ingress[0].from.push({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }); }).join('\n'))
      .toMatch(/store Service port tcp-valkey: sources .*expected the EPP pods only/);
    expect(mutated((x) => { storePolicy(x).spec.egress = [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }]; })).toEqual(['the store policy opens egress']);
    expect(mutated((x) => { storePolicy(x).spec.ingress[0].ports.push({ protocol: 'TCP', port: 16379 }); })).toEqual(['the store policy opens 16379, which the store does not serve']);
    expect(mutated((x) => { x.splice(x.indexOf(storePolicy(x)), 1); })).toEqual(['no NetworkPolicy selects the ms-llm-d-modelservice-session-store pods']);
  });

  // NetworkPolicyPort.port is "a numerical or named port on a pod" (k8s.io/api networking/v1 types.go @ v0.28): a
  // connection through the store's Service arrives at the pods' port, which the rule must open.
  test('an existing store whose Service maps its port to another port on the pods: the egress rule opens the pods\' port (networkPeerPort)', () => {
    const store = { host: 'valkey.cache.svc.cluster.local', port: 6380, networkPeer: { namespace: 'cache', podLabels: { app: 'valkey' } } };
    const storeRule = (networkPeerPort?: number) => {
      const { manifests: x } = synthChart(withOverrides(DEMO, {
        decode: { kvEvents: { mode: 'per-pod' } }, endpointPicker: { replicas: 2 },
        sessionStore: { existing: { ...store, ...(networkPeerPort !== undefined ? { networkPeerPort } : {}) } },
        networkPolicy: { egress: { apiServer: API_SERVER } },
      }));
      const epp = one(x, 'NetworkPolicy', 'ms-llm-d-modelservice-epp');
      return epp.spec.egress.find((r: Json) => r.to?.[0]?.podSelector?.matchLabels?.app === 'valkey');
    };
    expect(storeRule(6379).ports).toEqual([{ protocol: 'TCP', port: 6379 }]);
    expect(storeRule().ports).toEqual([{ protocol: 'TCP', port: 6380 }]);
    expect(() => storeRule(0)).toThrow(/^SessionStore\.existing\.networkPeerPort: /);
  });

  test('restricted egress with an existing store needs to know where the store is', () => {
    expect(() => synthChart(withOverrides(DEMO, {
      sessionStore: { existing: { host: 'valkey.cache.svc.cluster.local' } },
      networkPolicy: { egress: { apiServer: API_SERVER } },
    }))).toThrow(/^EppNetworkPolicy\.egress: restricts egress, so the existing session store needs sessionStore\.existing\.networkPeer/);
  });

  test('the decode check fails when a rule admits the whole namespace, when a port loses its rule, or when the gateway is left out', () => {
    const { manifests: base } = synthChart(withOverrides(DEMO, { decode: { kvEvents: { mode: 'per-pod' } } }));
    const metricsFrom = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
    expect(decodePolicyProblems(base, metricsFrom)).toEqual([]);
    const decodePolicy = (x: Manifest[]) => all(x, 'NetworkPolicy').find((p) => p.metadata.name === 'ms-llm-d-modelservice-decode')!;
    const open = clone(base);
    decodePolicy(open).spec.ingress[0].from = [{ podSelector: {} }];
    expect(decodePolicyProblems(open, metricsFrom).join('\n')).toMatch(/decode port http: sources/);
    const dropped = clone(base);
    decodePolicy(dropped).spec.ingress.splice(2, 1);
    expect(decodePolicyProblems(dropped, metricsFrom).join('\n')).toMatch(/decode port kv-events: sources \[\]/);
    const noGateway = clone(base);
    decodePolicy(noGateway).spec.ingress[0].from.shift();
    expect(decodePolicyProblems(noGateway, metricsFrom).join('\n')).toMatch(/decode port http/);
    const gone = clone(base).filter((x) => x !== decodePolicy(base) && !(x.kind === 'NetworkPolicy' && x.metadata.name === 'ms-llm-d-modelservice-decode'));
    expect(decodePolicyProblems(gone, metricsFrom)).toEqual(['no NetworkPolicy selects the decode pods']);
  });

  test('named decode clients reach the serving port only', () => {
    const { manifests: x } = synthChart(withOverrides(DEMO, { networkPolicy: { decodeClients: [{ namespace: 'evals', podLabels: { app: 'harness' } }] } }));
    const clients = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'evals' } }, podSelector: { matchLabels: { app: 'harness' } } }];
    expect(decodePolicyProblems(x, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], clients)).toEqual([]);
    expect(() => synthChart(withOverrides(DEMO, { networkPolicy: { decodeClients: [{ namespace: 'evals', cidr: '10.0.0.0/8' }] as never } })))
      .toThrow(/^DecodeNetworkPolicy\.clients\[0\]: must set exactly one of namespace, namespaceLabels, podLabels alone/);
  });

  test('the policy can be left out', () => {
    const { chart, manifests: without } = synthChart(withOverrides(DEMO, { networkPolicy: { enabled: false }, sessionStore: { deploy: {} } }));
    expect(all(without, 'NetworkPolicy')).toHaveLength(0);
    expect(chart.networkPolicy).toBeUndefined();
    expect(chart.sessionStoreNetworkPolicy).toBeUndefined();
    expect(chart.decodeNetworkPolicy).toBeUndefined();
  });

  test('a closed metrics port and named health checkers', () => {
    const { manifests: x } = synthChart(withOverrides(DEMO, { networkPolicy: { metricsSources: [], healthSources: [{ namespace: 'probes' }] } }));
    expect(policyOf(x).spec.ingress.map((r: Json) => [portsOf(r), r.from])).toEqual([
      [[9002], [{ podSelector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'llm-d-gateway' } } }]],
      [[9003], [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'probes' } } }]],
    ]);
  });
});

// kubernetes/kubernetes pkg/apis/networking/validation/validation.go ValidateIPBlock: each `except` must be a strict
// subset of `cidr` ("must be a strict subset of `cidr`": inside it, with a longer mask), or the API server refuses the
// whole NetworkPolicy at apply.
describe('ipBlock except ranges are strict subsets of their cidr, as the API server requires (ValidateIPBlock)', () => {
  const lockedDown = { apiServer: [{ cidrs: ['10.96.0.1/32'], ports: [443] }] };
  test.each<[string, KvAwareRoutingProps, RegExp]>([
    ['a metrics source except outside its cidr', withOverrides(DEMO, { networkPolicy: { metricsSources: [{ cidr: '10.0.0.0/16', except: ['192.168.0.0/24'] }] } }),
      /^EppNetworkPolicy\.metricsSources\[0\]\.except\[0\]: must be a strict subset of cidr "10\.0\.0\.0\/16" \(the same address family, a longer prefix, inside it\), as the API server requires of an ipBlock, got "192\.168\.0\.0\/24"$/],
    ['a health source except equal to its cidr', withOverrides(DEMO, { networkPolicy: { healthSources: [{ cidr: '10.0.0.0/16', except: ['10.0.0.0/16'] }] } }),
      /^EppNetworkPolicy\.healthSources\[0\]\.except\[0\]: must be a strict subset of cidr "10\.0\.0\.0\/16"/],
    ['an except wider than its cidr', withOverrides(DEMO, { networkPolicy: { healthSources: [{ cidr: '10.0.0.0/16', except: ['10.0.1.0/24', '10.0.0.0/8'] }] } }),
      /^EppNetworkPolicy\.healthSources\[0\]\.except\[1\]: must be a strict subset of cidr "10\.0\.0\.0\/16"/],
    ['a DNS peer except of the other address family', withOverrides(DEMO, { networkPolicy: { egress: { ...lockedDown, dns: [{ cidr: '169.254.0.0/16', except: ['fd00::/64'] }] } } }),
      /^EppNetworkPolicy\.egress\.dns\[0\]\.except\[0\]: must be a strict subset of cidr "169\.254\.0\.0\/16"/],
    ['an IPv6 except outside its cidr', withOverrides(DEMO, { networkPolicy: { healthSources: [{ cidr: 'fd00::/48', except: ['fd01::/64'] }] } }),
      /^EppNetworkPolicy\.healthSources\[0\]\.except\[0\]: must be a strict subset of cidr "fd00::\/48"/],
    ['an existing session store\'s network peer except outside its cidr', withOverrides(DEMO, {
      decode: { kvEvents: { mode: 'per-pod' } }, endpointPicker: { replicas: 2 },
      sessionStore: { existing: { host: 'redis.cache.svc.cluster.local', networkPeer: { cidr: '10.1.0.0/16', except: ['10.2.0.0/24'] } } },
      networkPolicy: { egress: lockedDown },
    }), /^SessionStore\.existing\.networkPeer\.except\[0\]: must be a strict subset of cidr "10\.1\.0\.0\/16"/],
    ['a decode client except outside its cidr', withOverrides(DEMO, { networkPolicy: { decodeClients: [{ cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] }] } }),
      /^DecodeNetworkPolicy\.clients\[0\]\.except\[0\]: must be a strict subset of cidr "10\.0\.0\.0\/16"/],
    // ValidateCIDR parses with k8s.io/utils/net ParseCIDRSloppy, which (as Go's net.ParseCIDR) takes no IPv6 zone.
    ['an IPv6 cidr with a zone', withOverrides(DEMO, { networkPolicy: { healthSources: [{ cidr: 'fe80::%eth0/64' }] } }),
      /^EppNetworkPolicy\.healthSources\[0\]\.cidr: must be an IPv4 or IPv6 CIDR/],
  ])('%s is refused at synth', (_what, props, message) => {
    expect(() => synthChart(props)).toThrow(message);
  });

  test('excepts inside their cidr with a longer prefix, IPv4 and IPv6, reach the policy as given', () => {
    const healthSources = [{ cidr: '10.0.0.0/16', except: ['10.0.99.0/24', '10.0.255.255/32'] }, { cidr: 'fd00::/48', except: ['fd00:0:0:1::/64'] }];
    const { manifests: x } = synthChart(withOverrides(DEMO, { networkPolicy: { healthSources } }));
    const policy = one(x, 'NetworkPolicy', 'ms-llm-d-modelservice-epp');
    expect(policy.spec.ingress.find((r: Json) => portsOf(r).includes(9003)).from).toEqual(healthSources.map((s) => ({ ipBlock: s })));
  });
});

function container0(d: Manifest): Json {
  return d.spec.template.spec.containers[0];
}
