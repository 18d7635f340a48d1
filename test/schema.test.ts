import { CLUSTERS, DEMO, withOverrides } from '../lib/clusters';
import { Manifest, synthProfile, synthProps } from './support/manifests';
import { ManifestValidator } from './support/schema';

const validator = new ManifestValidator();

const variants: [string, Manifest[]][] = [
  ...CLUSTERS.map((c) => [c.name, synthProfile(c)] as [string, Manifest[]]),
  ['v1 InferencePool', synthProps(withOverrides(DEMO, { endpointPicker: { poolApiGroup: 'inference.networking.k8s.io' } }))],
  ['central KV events', synthProps(withOverrides(DEMO, { decode: { prefixCachingHashAlgo: 'sha256_cbor_64bit', kvEvents: { mode: 'central' } } }))],
  ['full-duplex request bodies', synthProps(withOverrides(DEMO, { extProc: { requestBodyMode: 'full-duplex' } }))],
  ['vLLM as a non-root UID', synthProps(withOverrides(DEMO, { decode: { runAsUser: 2000 } }))],
  ['a native routing sidecar (Kubernetes >= 1.29)', synthProps(withOverrides(DEMO, { decode: { routingSidecar: 'native' } }))],
  // The HA objects in their other forms: a deployed store with a password, nodes required, egress to the store.
  ['3 EPP replicas on separate nodes, a deployed Valkey with a password, egress locked down', synthProps(withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'per-pod' } },
    endpointPicker: { replicas: 3, nodeSpread: 'required' },
    sessionStore: { deploy: { passwordSecret: { name: 'valkey-auth' }, maxMemory: '1gb', image: 'valkey/valkey:8.1.8' } },
    networkPolicy: { egress: { apiServer: [{ cidrs: ['10.96.0.1/32'], ports: [443] }] } },
  }))],
  ['an existing TLS store without a password', synthProps(withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'per-pod' } },
    endpointPicker: { replicas: 2 },
    sessionStore: { existing: { host: 'redis.cache.svc.cluster.local', port: 6380, tls: true } },
  }))],
  // The edges of what the construction-time checks accept: the longest names, wildcard hosts, multi-unit durations.
  ['the longest names and the edge forms the checks accept', synthProps(withOverrides(DEMO, {
    name: 'n'.repeat(38),
    sessionStore: { deploy: { cpu: '0.25' } },
    decode: {
      kvEvents: { mode: 'per-pod', port: 8002, replayPort: 8003 },
      cpu: '2.5', memory: '30G', shmSize: '512Mi', modelCacheSize: '1e11',
      nodeSelector: { 'nvidia.com/gpu.product': 'A100-SXM4-80GB' },
      hfTokenSecret: { name: 'hf.token', key: 'token.txt' },
    },
    endpointPicker: { replicas: 2, cpu: '1500m', memory: '2Gi', tokenizerCacheClaim: 'hf-cache.v1' },
    gateway: { name: 'g'.repeat(57), hostname: '*.llm.example.com', requestTimeout: '1h30m' },
    monitoring: { vllmScrapeInterval: '1m10s', eppScrapeInterval: '500ms', gatewayScrapeInterval: '14s500ms', selectorLabels: { 'example.com/team': 'ml' }, dashboardLabels: {} },
  }))],
  ['central KV events on another port', synthProps(withOverrides(DEMO, { decode: { kvEvents: { mode: 'central', endpoint: 'tcp://ms-llm-d-modelservice-epp.llm-d.svc.cluster.local:6000' } } }))],
  // Every peer form and the egress rules of the EPP's NetworkPolicy.
  ['NetworkPolicy with egress and every peer form', synthProps(withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'central' } },
    networkPolicy: {
      healthSources: [{ cidr: '10.0.0.0/16', except: ['10.0.99.0/24'] }, { podLabels: { app: 'prober' } }],
      metricsSources: [{ namespace: 'monitoring', podLabels: { 'app.kubernetes.io/name': 'prometheus' } }, { namespaceLabels: { team: 'observability' } }],
      egress: { apiServer: [{ cidrs: ['10.96.0.1/32', 'fd00::1/128'], ports: [443, 6443] }], dns: [{ cidr: '169.254.20.10/32' }] },
    },
  }))],
];

test('the variants synthesize the EPP\'s and the decode pods\' NetworkPolicies (and the deployed store\'s), and the validator knows their schemas', () => {
  for (const [name, manifests] of variants) {
    const stores = manifests.filter((m) => m.kind === 'StatefulSet').length;
    expect({ name, policies: manifests.filter((m) => m.kind === 'NetworkPolicy').length }).toEqual({ name, policies: 2 + stores });
  }
  expect(validator.knows('networking.k8s.io/v1', 'NetworkPolicy')).toBe(true);
  expect(validator.knows('policy/v1', 'PodDisruptionBudget')).toBe(true);
  expect(validator.knows('apps/v1', 'StatefulSet')).toBe(true);
});

test('the HA variants carry every new kind: a PodDisruptionBudget, a StatefulSet and its policy', () => {
  const kinds = new Set(variants.flatMap(([, manifests]) => manifests.map((m) => m.kind)));
  for (const kind of ['PodDisruptionBudget', 'StatefulSet']) expect(kinds).toContain(kind);
});

describe.each(variants)('%s: every object is valid against its schema', (_name, manifests) => {
  test.each(manifests.map((m) => [`${m.kind}/${m.metadata.name}`, m] as const))('%s', (_id, manifest) => {
    expect(validator.validate(manifest)).toEqual([]);
  });
});

describe('the validator itself', () => {
  const demo = synthProfile(CLUSTERS[0]);
  const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x));

  test('rejects a misspelled field in a core object', () => {
    const d = clone(demo.find((m) => m.kind === 'Deployment')!);
    d.spec.template.spec.containers[0].imagePullPolice = 'Always';
    expect(validator.validate(d).join('\n')).toMatch(/must NOT have additional properties \(imagePullPolice\)/);
  });

  test('rejects a misspelled field in a custom resource', () => {
    const pool = clone(demo.find((m) => m.kind === 'InferencePool')!);
    pool.spec.targetPort = 8000;
    expect(validator.validate(pool).join('\n')).toMatch(/additional properties \(targetPort\)/);
  });

  test('rejects a wrong type and a bad enum value', () => {
    const dr = clone(demo.find((m) => m.kind === 'DestinationRule')!);
    dr.spec.trafficPolicy.loadBalancer.simple = 'ROUNDROBIN';
    expect(validator.validate(dr).join('\n')).toMatch(/must be equal to one of the allowed values/);
    const svc = clone(demo.find((m) => m.kind === 'Service')!);
    svc.spec.ports[0].port = '8000';
    expect(validator.validate(svc).join('\n')).toMatch(/port: must be integer/);
  });

  test('rejects a misspelled field and a wrong type in a NetworkPolicy', () => {
    const np = clone(demo.find((m) => m.kind === 'NetworkPolicy')!);
    np.spec.ingress[0].form = np.spec.ingress[0].from;
    expect(validator.validate(np).join('\n')).toMatch(/additional properties \(form\)/);
    const np2 = clone(demo.find((m) => m.kind === 'NetworkPolicy')!);
    np2.spec.ingress[0].from[0].podSelector.matchLabels = 'gateway';
    expect(validator.validate(np2).join('\n')).toMatch(/matchLabels: must be object/);
  });

  test('rejects bad metadata and unknown kinds', () => {
    const cm = clone(demo.find((m) => m.kind === 'ConfigMap')!);
    (cm.metadata as Record<string, unknown>).lables = {};
    expect(validator.validate(cm).join('\n')).toMatch(/metadata.*lables/);
    expect(validator.validate({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'x' } })).toEqual(['Widget/x: no schema for apiVersion example.com/v1 kind Widget']);
  });

  test('validates a v1 InferencePool against GIE v1.0.2\'s schema: its selector must name 1 to 64 labels', () => {
    const pool = clone(synthProfile(CLUSTERS.find((c) => c.name === 'prod-native-istio')!).find((m) => m.kind === 'InferencePool')!);
    pool.spec.selector.matchLabels = {};
    expect(validator.validate(pool).join('\n')).toMatch(/\/spec\/selector\/matchLabels: must NOT have fewer than 1 properties/);
  });

  describe('evaluates the CRDs\' CEL rules (x-kubernetes-validations), as the API server does on create', () => {
    const native = synthProfile(CLUSTERS.find((c) => c.name === 'prod-native-istio')!);

    test('a v1 InferencePool\'s endpointPickerRef needs a port when its kind is Service, also when kind is left to its default', () => {
      const pool = clone(native.find((m) => m.kind === 'InferencePool')!);
      expect(validator.validate(pool)).toEqual([]);
      delete pool.spec.endpointPickerRef.port;
      delete pool.spec.endpointPickerRef.kind;
      expect(validator.validate(pool)).toEqual([
        "InferencePool/ms-llm-d-modelservice /spec/endpointPickerRef: port is required when kind is 'Service' or unspecified (defaults to 'Service')",
      ]);
    });

    test('an EnvoyFilter names targetRefs or a workloadSelector, not both', () => {
      const ef = clone(demo.find((m) => m.kind === 'EnvoyFilter')!);
      ef.spec.workloadSelector = { labels: { 'gateway.networking.k8s.io/gateway-name': 'llm-d-gateway' } };
      expect(validator.validate(ef).join('\n')).toMatch(/\/spec: only one of targetRefs or workloadSelector can be set/);
    });

    test('a DestinationRule\'s durations are at least 1 ms', () => {
      const dr = clone(demo.find((m) => m.kind === 'DestinationRule')!);
      dr.spec.trafficPolicy.outlierDetection = { interval: '0s' };
      expect(validator.validate(dr).join('\n')).toMatch(/\/spec\/trafficPolicy\/outlierDetection\/interval: /);
    });

    test('a Gateway\'s listener names are unique, and an HTTPRoute\'s path is a clean path', () => {
      const gw = clone(demo.find((m) => m.kind === 'Gateway')!);
      gw.spec.listeners.push({ ...gw.spec.listeners[0], port: 8080 });
      expect(validator.validate(gw).join('\n')).toMatch(/\/spec\/listeners: Listener name must be unique within the Gateway/);
      const route = clone(demo.find((m) => m.kind === 'HTTPRoute' && m.metadata.name === 'llm-d-gateway')!);
      route.spec.rules[0].matches[0].path.value = '/v1//chat';
      expect(validator.validate(route).join('\n')).toMatch(/must not contain '\/\/'/);
    });
  });

  test('keeps free-form fields free where the schema says so (EnvoyFilter patch values)', () => {
    const ef = clone(demo.find((m) => m.kind === 'EnvoyFilter')!);
    ef.spec.configPatches[0].patch.value.anything_goes_here = true;
    expect(validator.validate(ef)).toEqual([]);
  });
});
