import { CLUSTERS, DEMO, withOverrides } from '../lib/clusters';
import type { KvAwareRoutingProps } from '../lib/kv-aware-routing';
import { Manifest, one, synthChart } from './support/manifests';
import { BASELINE_CHECK_IDS, baselineViolations, RESTRICTED_CHECK_IDS, restrictedViolations } from './support/pod-security';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

const variants: [string, KvAwareRoutingProps][] = [
  ...CLUSTERS.map((c) => [c.name, c.routing] as [string, KvAwareRoutingProps]),
  ['central KV events', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central' } } })],
  ['vLLM as a non-root UID', withOverrides(DEMO, { decode: { runAsUser: 2000 } })],
  ['a native routing sidecar', withOverrides(DEMO, { decode: { routingSidecar: 'native' } })],
  ['an EPP tokenizer cache volume', withOverrides(DEMO, { decode: { kvEvents: { mode: 'per-pod' } }, endpointPicker: { tokenizerCacheClaim: 'hf-cache' } })],
  ['a deployed Valkey with a password', withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'per-pod' } }, endpointPicker: { replicas: 2 }, sessionStore: { deploy: { passwordSecret: { name: 'valkey-auth' } } },
  })],
];

// ---------------------------------------------------------------------------------------------------------------
// The Pod Security "restricted" checker (test/support/pod-security.ts) can fail, control by control.
// ---------------------------------------------------------------------------------------------------------------

describe('the Pod Security "restricted" checker', () => {
  const compliant = (): { metadata: Json; spec: Json } => ({
    metadata: { annotations: {} },
    spec: {
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      initContainers: [{ name: 'init', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
      containers: [{
        name: 'app',
        ports: [{ containerPort: 8080 }],
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } },
      }],
      volumes: [{ name: 'cfg', configMap: { name: 'x' } }, { name: 'tmp', emptyDir: {} }, { name: 'data', persistentVolumeClaim: { claimName: 'd' } }],
    },
  });

  test('admits a pod that meets every control', () => {
    expect(restrictedViolations(compliant())).toEqual([]);
  });

  // One violation per control; each must be reported under its upstream check ID, and only under it.
  const cases: [string, (p: { metadata: Json; spec: Json }) => void][] = [
    ['windowsHostProcess', (p) => { p.spec.containers[0].securityContext.windowsOptions = { hostProcess: true }; }],
    ['hostNamespaces', (p) => { p.spec.hostNetwork = true; }],
    ['hostNamespaces', (p) => { p.spec.hostPID = true; }],
    ['hostNamespaces', (p) => { p.spec.hostIPC = true; }],
    ['privileged', (p) => { p.spec.containers[0].securityContext.privileged = true; }],
    ['hostPorts', (p) => { p.spec.containers[0].ports[0].hostPort = 8080; }],
    ['appArmorProfile', (p) => { p.metadata.annotations['container.apparmor.security.beta.kubernetes.io/app'] = 'unconfined'; }],
    ['seLinuxOptions', (p) => { p.spec.securityContext.seLinuxOptions = { type: 'spc_t' }; }],
    ['seLinuxOptions', (p) => { p.spec.containers[0].securityContext.seLinuxOptions = { user: 'system_u' }; }],
    ['procMount', (p) => { p.spec.containers[0].securityContext.procMount = 'Unmasked'; }],
    ['sysctls', (p) => { p.spec.securityContext.sysctls = [{ name: 'kernel.msgmax', value: '1' }]; }],
    ['restrictedVolumes', (p) => { p.spec.volumes.push({ name: 'host', hostPath: { path: '/var/run' } }); }],
    ['restrictedVolumes', (p) => { p.spec.volumes.push({ name: 'nfs', nfs: { server: 'x', path: '/' } }); }],
    ['allowPrivilegeEscalation', (p) => { delete p.spec.containers[0].securityContext.allowPrivilegeEscalation; }],
    ['allowPrivilegeEscalation', (p) => { p.spec.initContainers[0].securityContext.allowPrivilegeEscalation = true; }],
    ['runAsNonRoot', (p) => { delete p.spec.securityContext.runAsNonRoot; }],
    ['runAsNonRoot', (p) => { p.spec.containers[0].securityContext.runAsNonRoot = false; }],
    ['runAsUser', (p) => { p.spec.containers[0].securityContext.runAsUser = 0; }],
    ['runAsUser', (p) => { p.spec.securityContext.runAsUser = 0; }],
    ['seccompProfile_restricted', (p) => { delete p.spec.securityContext.seccompProfile; }],
    ['seccompProfile_restricted', (p) => { p.spec.containers[0].securityContext.seccompProfile = { type: 'Unconfined' }; }],
    ['capabilities_restricted', (p) => { p.spec.containers[0].securityContext.capabilities.drop = ['NET_RAW']; }],
    ['capabilities_restricted', (p) => { p.spec.containers[0].securityContext.capabilities.add = ['SYS_ADMIN']; }],
    ['capabilities_restricted', (p) => { p.spec.ephemeralContainers = [{ name: 'debug', securityContext: { allowPrivilegeEscalation: false } }]; }],
  ];

  test.each(cases)('catches a %s violation', (check, mutate) => {
    const pod = compliant();
    mutate(pod);
    expect(restrictedViolations(pod).map((v) => v.check)).toEqual([check]);
  });

  test('has a violating case for every check it runs', () => {
    expect(new Set(cases.map(([check]) => check))).toEqual(new Set(RESTRICTED_CHECK_IDS));
  });

  test('accepts container-level settings in place of pod-level ones, and a Localhost profile', () => {
    const pod = compliant();
    delete pod.spec.securityContext;
    for (const c of [...pod.spec.initContainers, ...pod.spec.containers]) {
      c.securityContext.runAsNonRoot = true;
      c.securityContext.seccompProfile = { type: 'Localhost', localhostProfile: 'x.json' };
    }
    expect(restrictedViolations(pod)).toEqual([]);
  });

  test('names the containers at fault', () => {
    const pod = compliant();
    delete pod.spec.securityContext.runAsNonRoot;
    pod.spec.containers[0].securityContext.runAsNonRoot = true;
    expect(restrictedViolations(pod)).toEqual([{ check: 'runAsNonRoot', detail: 'runAsNonRoot != true', containers: ['init'] }]);
  });
});

describe('the Pod Security "baseline" checker', () => {
  const pod = (): { spec: Json } => ({ spec: { securityContext: {}, containers: [{ name: 'app', securityContext: {} }], volumes: [] } });
  test('admits a plain pod (root, writable root, default capabilities) and refuses each baseline control it can break', () => {
    expect(baselineViolations(pod())).toEqual([]);
    const cases: [string, (p: { spec: Json }) => void][] = [
      ['hostPathVolumes', (p) => { p.spec.volumes.push({ name: 'host', hostPath: { path: '/var/run' } }); }],
      ['capabilities_baseline', (p) => { p.spec.containers[0].securityContext.capabilities = { add: ['NET_ADMIN'] }; }],
      ['seccompProfile_baseline', (p) => { p.spec.securityContext.seccompProfile = { type: 'Unconfined' }; }],
      ['seccompProfile_baseline', (p) => { p.spec.containers[0].securityContext.seccompProfile = { type: 'Unconfined' }; }],
      ['privileged', (p) => { p.spec.containers[0].securityContext.privileged = true; }],
      ['hostNamespaces', (p) => { p.spec.hostNetwork = true; }],
    ];
    for (const [check, breakIt] of cases) {
      const p = pod();
      breakIt(p);
      expect(baselineViolations(p).map((v) => v.check)).toEqual([check]);
      expect(BASELINE_CHECK_IDS).toContain(check);
    }
    const ok = pod();
    ok.spec.containers[0].securityContext.capabilities = { add: ['NET_BIND_SERVICE', 'CHOWN'] };
    expect(baselineViolations(ok)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// kvroute's pods against it.
// ---------------------------------------------------------------------------------------------------------------

describe.each(variants)('%s: pod security', (_name, props) => {
  const { chart, manifests: m } = synthChart(props);
  const epp = one(m, 'Deployment', chart.endpointPicker.name);
  const decode = one(m, 'Deployment', chart.decodePool.deploymentName);
  const containers = (d: Manifest): Json[] => d.spec.template.spec.containers;

  test('the EPP pod meets every control of the restricted profile, with a read-only root and its API token', () => {
    expect(restrictedViolations(epp.spec.template)).toEqual([]);
    expect(chart.endpointPicker.podSecurityExceptions).toEqual([]);
    for (const c of containers(epp)) expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    // The EPP watches pods and InferencePools, so it keeps its service account token.
    expect(epp.spec.template.spec.automountServiceAccountToken).toBe(true);
  });

  test('the decode pod fails exactly the restricted controls its construct documents', () => {
    const documented = chart.decodePool.podSecurityExceptions.filter((e) => e.control !== 'readOnlyRootFilesystem');
    const failures = restrictedViolations(decode.spec.template).flatMap((v) => v.containers.map((c) => ({ control: v.check, container: c })));
    expect(failures).toEqual(documented.map(({ control, container }) => ({ control, container })));
    const nonRoot = props.decode.runAsUser !== undefined;
    expect(documented.map((e) => `${e.control}:${e.container}`)).toEqual(nonRoot ? [] : ['runAsNonRoot:vllm']);
  });

  test('the decode pod: read-only roots except where documented, no API token, RuntimeDefault seccomp, no capabilities', () => {
    const writable = chart.decodePool.podSecurityExceptions.filter((e) => e.control === 'readOnlyRootFilesystem').map((e) => e.container);
    expect(containers(decode).filter((c) => c.securityContext?.readOnlyRootFilesystem !== true).map((c) => c.name)).toEqual(writable);
    expect(writable).toEqual(['vllm']);
    expect(decode.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(decode.spec.template.spec.securityContext).toEqual({ seccompProfile: { type: 'RuntimeDefault' } });
    for (const c of containers(decode)) {
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    }
    const vllm = containers(decode).find((c) => c.name === 'vllm')!;
    if (props.decode.runAsUser !== undefined) expect(vllm.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: props.decode.runAsUser });
    else expect(vllm.securityContext.runAsNonRoot).toBeUndefined();
  });

  test('the session store pod, when deployed, meets every control of the restricted profile with a read-only root and no API token', () => {
    const stores = m.filter((x) => x.kind === 'StatefulSet');
    expect(stores.length).toBe(chart.sessionStore ? 1 : 0);
    for (const store of stores) {
      expect(restrictedViolations(store.spec.template)).toEqual([]);
      expect(chart.sessionStore!.podSecurityExceptions).toEqual([]);
      for (const c of containers(store)) expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(store.spec.template.spec.automountServiceAccountToken).toBe(false);
      // The image's entrypoint refuses to start unless its working directory /data is writable by the user.
      const data = containers(store)[0]!.volumeMounts.find((v: Json) => v.mountPath === '/data');
      expect(store.spec.template.spec.volumes.find((v: Json) => v.name === data.name)).toEqual({ name: data.name, emptyDir: {} });
    }
  });

  test('every documented exception gives a reason', () => {
    for (const e of chart.decodePool.podSecurityExceptions) expect(e.reason.length).toBeGreaterThan(20);
  });

  test('the Namespace enforces baseline, warns and audits at restricted, and every pod template of the stack meets baseline', () => {
    const ns = one(m, 'Namespace');
    expect(ns.metadata.labels).toEqual({
      'pod-security.kubernetes.io/enforce': 'baseline', 'pod-security.kubernetes.io/warn': 'restricted', 'pod-security.kubernetes.io/audit': 'restricted',
    });
    const workloads = m.filter((x) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(x.kind));
    expect(workloads.length).toBeGreaterThanOrEqual(2);
    for (const w of workloads) {
      expect({ workload: w.metadata.name, violations: baselineViolations(w.spec.template) }).toEqual({ workload: w.metadata.name, violations: [] });
    }
  });
});

