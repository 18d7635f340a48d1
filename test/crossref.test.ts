import { parseArgs } from '@kvroute/epp/cli';
import { parseEndpointPickerConfig } from '@kvroute/epp/config';
import { LIVENESS_SERVICE } from '@kvroute/epp/extproc';
import { CLUSTERS } from '../lib/clusters';
import { all, container, Manifest, one, synthProfile } from './support/manifests';

/** Does a label selector (matchLabels or a plain map) select these labels? */
function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The workloads (Deployments and StatefulSets) whose pods a selector selects. */
function podsSelectedBy(manifests: Manifest[], selector: Record<string, string>): Manifest[] {
  return workloads(manifests).filter((d) => selects(selector, d.spec.template.metadata.labels));
}

function workloads(manifests: Manifest[]): Manifest[] {
  return [...all(manifests, 'Deployment'), ...all(manifests, 'StatefulSet')];
}

function servicePort(svc: Manifest, port: number): { name: string; targetPort: string | number } {
  const p = svc.spec.ports.find((x: { port: number }) => x.port === port);
  if (!p) throw new Error(`Service ${svc.metadata.name} has no port ${port}`);
  return p;
}

/** The container port a Service port's targetPort reaches in a Deployment (by name or number). */
function containerPortNumber(deployment: Manifest, target: string | number): number | undefined {
  for (const c of deployment.spec.template.spec.containers) {
    for (const p of c.ports ?? []) if (p.name === target || p.containerPort === target) return p.containerPort;
  }
  return undefined;
}

/** An InferencePool of either API, read the same way: v1alpha2 (GIE v0.5) or v1 (GIE v1.0). */
function poolView(pool: Manifest): { selector: Record<string, string>; targetPort: number; epp: { name: string; port: number } } {
  if (pool.apiVersion === 'inference.networking.k8s.io/v1') {
    return {
      selector: pool.spec.selector.matchLabels,
      targetPort: pool.spec.targetPorts[0].number,
      epp: { name: pool.spec.endpointPickerRef.name, port: pool.spec.endpointPickerRef.port.number },
    };
  }
  return { selector: pool.spec.selector, targetPort: pool.spec.targetPortNumber, epp: { name: pool.spec.extensionRef.name, port: pool.spec.extensionRef.portNumber } };
}

/** The ext_proc EnvoyFilter, when kvroute wires the EPP (absent with native routing). */
function extProcFilter(m: Manifest[]): Manifest | undefined {
  return all(m, 'EnvoyFilter').find((f) => f.spec.configPatches.some((p: { applyTo: string }) => p.applyTo === 'HTTP_FILTER'));
}

describe.each(CLUSTERS.map((c) => [c.name, synthProfile(c)] as const))('cluster %s: references resolve', (_name, m) => {
  const ns = one(m, 'Namespace').metadata.name;
  const pool = poolView(one(m, 'InferencePool'));
  const eppSvc = one(m, 'Service', pool.epp.name);
  // The models route always goes to the decode Service; the /v1 route goes there too, or to the pool natively.
  const decodeSvc = one(m, 'Service', one(m, 'HTTPRoute', 'llm-d-gateway-models').spec.rules[0].backendRefs[0].name);
  const ef = extProcFilter(m);
  const [eppDeployment] = podsSelectedBy(m, eppSvc.spec.selector);
  const [decodeDeployment] = podsSelectedBy(m, decodeSvc.spec.selector);

  test('each workload selects its own pod template, and each Service exactly one workload', () => {
    for (const d of workloads(m)) expect(selects(d.spec.selector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
    for (const s of all(m, 'Service')) expect(podsSelectedBy(m, s.spec.selector)).toHaveLength(1);
    // A StatefulSet's governing Service exists and selects it.
    for (const ss of all(m, 'StatefulSet')) expect(podsSelectedBy(m, one(m, 'Service', ss.spec.serviceName).spec.selector)).toEqual([ss]);
  });

  test('with more than one EPP replica, a PodDisruptionBudget selects exactly the EPP pods and leaves all but one', () => {
    const pdbs = all(m, 'PodDisruptionBudget');
    if (eppDeployment.spec.replicas === 1) {
      expect(pdbs).toHaveLength(0);
      return;
    }
    expect(pdbs).toHaveLength(1);
    expect(podsSelectedBy(m, pdbs[0]!.spec.selector.matchLabels)).toEqual([eppDeployment]);
    expect(pdbs[0]!.spec.maxUnavailable).toBe(1);
    expect(eppDeployment.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
  });

  test('the session store the EPP config names is reachable: a deployed store\'s Service port, and the password from a Secret', () => {
    const c = container(eppDeployment, 'epp');
    const file: string = c.args.find((a: string) => a.startsWith('--config-file=')).split('=')[1];
    const cm = one(m, 'ConfigMap', eppDeployment.spec.template.spec.volumes.find((v: { configMap?: unknown }) => v.configMap).configMap.name);
    const config = parseEndpointPickerConfig(cm.data[file.split('/').pop()!]);
    const filter = config.plugins.find((p) => p.type === 'session-affinity-filter')!;
    const store = (filter.parameters as { sessionStore?: { address: string; passwordEnv?: string } }).sessionStore;
    const deployed = all(m, 'StatefulSet');
    if (!store) {
      expect(deployed).toHaveLength(0);
      return;
    }
    const url = new URL(store.address);
    const inCluster = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$/.exec(url.hostname);
    if (deployed.length > 0) {
      const svc = one(m, 'Service', inCluster![1]);
      expect(inCluster![2]).toBe(ns);
      expect(servicePort(svc, Number(url.port))).toBeDefined();
      expect(podsSelectedBy(m, svc.spec.selector)).toEqual(deployed);
    }
    const env = (c.env ?? []) as { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
    if (store.passwordEnv !== undefined) {
      expect(env.find((e) => e.name === store.passwordEnv)?.valueFrom?.secretKeyRef).toEqual({ name: expect.any(String), key: expect.any(String) });
    }
    // The password never sits in the ConfigMap.
    expect(cm.data[file.split('/').pop()!]).not.toMatch(/password:/i);
  });

  test('Service target ports name container ports that exist', () => {
    for (const s of all(m, 'Service')) {
      const [d] = podsSelectedBy(m, s.spec.selector);
      for (const p of s.spec.ports) expect(containerPortNumber(d, p.targetPort)).toBe(p.port);
    }
  });

  test('every probe asks a port its own container declares (a named one must, or the kubelet cannot resolve it), HTTP probes vLLM\'s /health', () => {
    for (const w of workloads(m)) {
      for (const c of w.spec.template.spec.containers) {
        for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
          const probe = c[kind];
          if (!probe) continue;
          const handler = probe.httpGet ?? probe.tcpSocket ?? probe.grpc;
          expect({ where: `${w.metadata.name}/${c.name} ${kind}`, handler: Boolean(handler) }).toEqual({ where: `${w.metadata.name}/${c.name} ${kind}`, handler: true });
          const declared = (c.ports ?? []).find((p: { name?: string; containerPort: number }) => p.name === handler.port || p.containerPort === handler.port);
          expect({ where: `${w.metadata.name}/${c.name} ${kind}`, port: handler.port, declared: Boolean(declared) })
            .toEqual({ where: `${w.metadata.name}/${c.name} ${kind}`, port: handler.port, declared: true });
          // vLLM's own /health (vllm/entrypoints/openai/api_server.py @ v0.10.0); the sidecar's always answers 200.
          if (probe.httpGet) expect(probe.httpGet.path).toBe('/health');
        }
      }
    }
  });

  test('no Deployment\'s progress deadline is shorter than its pods may take to start (a pod still within its startup probe would fail the rollout: ProgressDeadlineExceeded)', () => {
    for (const w of workloads(m).filter((x) => x.kind === 'Deployment')) {
      const startup = Math.max(0, ...w.spec.template.spec.containers.map((c: { startupProbe?: { periodSeconds?: number; failureThreshold?: number; initialDelaySeconds?: number } }) =>
        (c.startupProbe ? (c.startupProbe.initialDelaySeconds ?? 0) + (c.startupProbe.periodSeconds ?? 10) * (c.startupProbe.failureThreshold ?? 3) : 0)));
      const deadline = w.spec.progressDeadlineSeconds ?? 600; // Kubernetes' default
      expect({ deployment: w.metadata.name, roomy: deadline > startup }).toEqual({ deployment: w.metadata.name, roomy: true });
    }
  });

  test('the InferencePool selects the decode pods on the port the decode Service serves, and names the EPP gRPC port', () => {
    expect(podsSelectedBy(m, pool.selector)).toEqual([decodeDeployment]);
    expect(servicePort(decodeSvc, pool.targetPort)).toBeDefined();
    expect(containerPortNumber(decodeDeployment, pool.targetPort)).toBe(pool.targetPort);
    expect(servicePort(eppSvc, pool.epp.port).name).toBe('grpc-ext-proc');
  });

  test('the /v1 route sends to the decode Service (EnvoyFilter routing) or to the InferencePool (native routing)', () => {
    const [backend] = one(m, 'HTTPRoute', 'llm-d-gateway').spec.rules[0].backendRefs;
    if (ef) expect(backend).toMatchObject({ kind: 'Service', name: decodeSvc.metadata.name });
    else expect(backend).toMatchObject({ kind: 'InferencePool', name: one(m, 'InferencePool').metadata.name, group: one(m, 'InferencePool').apiVersion.split('/')[0] });
  });

  test('the EPP assumes the request and response body modes the gateway sends', () => {
    const options = parseArgs(container(eppDeployment, 'epp').args)!;
    const mode = options.requestBodyMode;
    if (!ef) {
      // Istio's native per-route ExtProcPerRoute streams both bodies FULL_DUPLEX_STREAMED (istio/istio
      // pilot/pkg/networking/core/route/route.go L533-542 @ 1.28.0, unchanged at 1.30.0).
      expect(mode).toBe('full-duplex');
      expect(options.responseBodyMode).toBe('full-duplex');
      return;
    }
    expect(ef.spec.configPatches[0].patch.value.typed_config.processing_mode.response_body_mode).toBe('NONE');
    expect(options.responseBodyMode).toBe('none');
    const filterMode = ef.spec.configPatches[0].patch.value.typed_config.processing_mode.request_body_mode;
    const vhost = ef.spec.configPatches.find((p: { applyTo: string }) => p.applyTo === 'VIRTUAL_HOST');
    const effective = vhost ? vhost.patch.value.typed_per_filter_config['envoy.filters.http.ext_proc'].overrides.processing_mode.request_body_mode : filterMode;
    expect({ BUFFERED: 'buffered', FULL_DUPLEX_STREAMED: 'full-duplex' }[effective as string]).toBe(mode);
  });

  test('the EPP reads that pool, in its namespace, with RBAC for it', () => {
    const args: string[] = container(eppDeployment, 'epp').args;
    const pool = one(m, 'InferencePool');
    expect(args).toContain(`--pool-name=${pool.metadata.name}`);
    expect(args).toContain(`--pool-namespace=${pool.metadata.namespace}`);
    expect(args).toContain(`--pool-group=${pool.apiVersion.split('/')[0]}`);
    const sa = eppDeployment.spec.template.spec.serviceAccountName;
    expect(one(m, 'ServiceAccount', sa)).toBeDefined();
    const binding = all(m, 'RoleBinding').find((b) => b.subjects.some((s: { name: string }) => s.name === sa))!;
    const role = one(m, 'Role', binding.roleRef.name);
    expect(role.rules).toContainEqual({ apiGroups: [pool.apiVersion.split('/')[0]], resources: ['inferencepools'], verbs: ['list', 'watch'] });
  });

  test('the EPP accepts its container args, and its probes ask the health services it serves', () => {
    const c = container(eppDeployment, 'epp');
    const options = parseArgs(c.args)!;
    const pool = one(m, 'InferencePool');
    expect(options).toMatchObject({ poolName: pool.metadata.name, poolNamespace: ns, grpcPort: 9002, grpcHealthPort: 9003, metricsPort: 9090 });
    const portOf = (name: string) => c.ports.find((p: { name: string }) => p.name === name).containerPort;
    expect(portOf('grpc-ext-proc')).toBe(options.grpcPort);
    expect(portOf('grpc-health')).toBe(options.grpcHealthPort);
    expect(portOf('http-metrics')).toBe(options.metricsPort);
    expect(c.readinessProbe.grpc.port).toBe(options.grpcHealthPort);
    expect(c.readinessProbe.grpc.service).not.toBe(LIVENESS_SERVICE);
    // The drain window and the drain of open streams must end before Kubernetes kills the pod.
    expect((options.drainTimeoutMs + options.shutdownGracePeriodMs) / 1000).toBeLessThan(eppDeployment.spec.template.spec.terminationGracePeriodSeconds);
    expect(options.ignoredFlags).toEqual([]);
    expect(c.livenessProbe.grpc).toEqual({ port: options.grpcHealthPort, service: LIVENESS_SERVICE });
  });

  test('the EPP mounts its ConfigMap at the --config-file path, and the EPP loader accepts the config', () => {
    const c = container(eppDeployment, 'epp');
    const file: string = c.args.find((a: string) => a.startsWith('--config-file=')).split('=')[1];
    const mount = c.volumeMounts.find((v: { mountPath: string }) => file.startsWith(`${v.mountPath}/`));
    const volume = eppDeployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === mount.name);
    const cm = one(m, 'ConfigMap', volume.configMap.name);
    const text = cm.data[file.slice(mount.mountPath.length + 1)];
    expect(() => parseEndpointPickerConfig(text)).not.toThrow();
    expect(parseEndpointPickerConfig(text).schedulingProfiles.length).toBeGreaterThan(0);
  });

  test('an EnvoyFilter on the Gateway opts the EPP Service in for gateways that receive only their routes\' clusters', () => {
    // istio/istio pilot/pkg/model/envoyfilter.go @ 1.27.0-1.30.0: `<namespace>/<hostname>`, comma-separated. With the
    // EnvoyFilter routing it is the ext_proc filter itself; with native routing a filter without patches.
    const refsOf = (f: Manifest): string[] => (f.metadata.annotations?.['envoyfilter.istio.io/referenced-services'] ?? '').split(',');
    const eppRef = `${eppSvc.metadata.namespace}/${eppSvc.metadata.name}.${eppSvc.metadata.namespace}.svc.cluster.local`;
    const carriers = all(m, 'EnvoyFilter').filter((f) => refsOf(f).includes(eppRef));
    expect(carriers).toHaveLength(1);
    expect(carriers[0].spec.targetRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: one(m, 'Gateway').metadata.name }]);
    if (ef) {
      expect(carriers[0]).toBe(ef);
      const cluster: string = ef.spec.configPatches[0].patch.value.typed_config.grpc_service.envoy_grpc.cluster_name;
      expect(refsOf(ef).map((r) => r.split('/')[1])).toContain(cluster.split('||')[1]);
    } else {
      expect(carriers[0].spec.configPatches).toEqual([]);
      // The cluster Istio's native filter calls: outbound|<endpointPickerRef port>||<EPP FQDN> (route.go L528 @ 1.28.0).
      expect(servicePort(eppSvc, pool.epp.port).name).toBe('grpc-ext-proc');
    }
  });

  test('the ext_proc gRPC cluster is the EPP Service FQDN and gRPC port', () => {
    if (!ef) return; // native routing: Istio builds the cluster from the pool's endpointPickerRef
    const cfg = ef.spec.configPatches[0].patch.value.typed_config;
    expect(cfg.grpc_service.envoy_grpc.cluster_name).toBe(`outbound|${pool.epp.port}||${eppSvc.metadata.name}.${ns}.svc.cluster.local`);
    expect(servicePort(eppSvc, pool.epp.port)).toMatchObject({ name: 'grpc-ext-proc' });
  });

  test('the patched cluster and the DestinationRule host are the decode Service the route sends to', () => {
    if (!ef) {
      expect(all(m, 'DestinationRule')).toHaveLength(0);
      return;
    }
    const route = one(m, 'HTTPRoute', 'llm-d-gateway');
    const backend = route.spec.rules[0].backendRefs[0];
    const fqdn = `${decodeSvc.metadata.name}.${ns}.svc.cluster.local`;
    expect(ef.spec.configPatches[1].match.cluster).toEqual({ service: fqdn, portNumber: backend.port });
    expect(one(m, 'DestinationRule', decodeSvc.metadata.name).spec.host).toBe(fqdn);
    expect(servicePort(decodeSvc, backend.port)).toBeDefined();
  });

  test('the EPP DestinationRule (several replicas only) targets the cluster ext_proc calls', () => {
    const rules = all(m, 'DestinationRule').filter((d) => d.metadata.name === eppSvc.metadata.name);
    const replicas = one(m, 'Deployment', eppSvc.metadata.name).spec.replicas;
    expect(rules).toHaveLength(ef && replicas > 1 ? 1 : 0);
    if (rules.length === 0) return;
    // Istio applies a DestinationRule to the outbound cluster of its host: the one the ext_proc filter names.
    const cfg = ef!.spec.configPatches[0].patch.value.typed_config;
    expect(cfg.grpc_service.envoy_grpc.cluster_name).toBe(`outbound|${pool.epp.port}||${rules[0].spec.host}`);
    expect(rules[0].metadata.namespace).toBe(eppSvc.metadata.namespace);
  });

  test('the Gateway\'s infrastructure.parametersRef, when set, names a ConfigMap in its namespace with only overlays Istio knows', () => {
    const gw = one(m, 'Gateway');
    const ref = gw.spec.infrastructure?.parametersRef;
    if (!ref) return;
    // Istio reads a ConfigMap of the Gateway's namespace (fetchParameters) and refuses unknown overlay keys
    // (supportedOverlays, pilot/pkg/config/kube/gateway/deploymentcontroller.go @ 1.27.0).
    expect(ref).toMatchObject({ group: '', kind: 'ConfigMap' });
    const cm = one(m, 'ConfigMap', ref.name);
    expect(cm.metadata.namespace).toBe(gw.metadata.namespace);
    for (const k of Object.keys(cm.data)) expect(['deployment', 'service', 'serviceAccount', 'horizontalPodAutoscaler', 'podDisruptionBudget']).toContain(k);
  });

  // llm-d-routing-sidecar v0.2.0 (proxy.go, chat_completions.go) forwards a completion's prefill to the host:port in
  // x-prefiller-host-port / x-prefiller-url, SSRF protection off by default: a client must not reach it with them.
  test('when the decode pods run llm-d\'s routing sidecar, the /v1 route removes the headers it would send a prefill to', () => {
    const sidecar = decodeDeployment!.spec.template.spec.containers.concat(decodeDeployment!.spec.template.spec.initContainers ?? [])
      .some((c: { image: string }) => c.image.includes('llm-d-routing-sidecar'));
    expect(sidecar).toBe(true);
    const rule = one(m, 'HTTPRoute', 'llm-d-gateway').spec.rules[0];
    expect(rule.filters).toEqual([{ type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['x-prefiller-host-port', 'x-prefiller-url'] } }]);
  });

  test('HTTPRoute parents and the EnvoyFilter target resolve to the Gateway and its listener', () => {
    const gw = one(m, 'Gateway');
    for (const r of all(m, 'HTTPRoute')) {
      for (const ref of r.spec.parentRefs) {
        expect(ref.name).toBe(gw.metadata.name);
        expect(gw.spec.listeners.map((l: { name: string }) => l.name)).toContain(ref.sectionName);
      }
      for (const b of r.spec.rules.flatMap((x: { backendRefs: { kind: string; name: string }[] }) => x.backendRefs)) {
        expect(one(m, b.kind, b.name)).toBeDefined();
      }
    }
    // Istio names routes <namespace>.<HTTPRoute>.<rule index> and virtual hosts <hostname>:<port>.
    const vhost = `${gw.spec.listeners[0].hostname}:${gw.spec.listeners[0].port}`;
    const routeNames = new Set(all(m, 'HTTPRoute').map((r) => `${ns}.${r.metadata.name}.0`));
    for (const f of all(m, 'EnvoyFilter')) {
      expect(f.spec.targetRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: gw.metadata.name }]);
      for (const p of f.spec.configPatches) {
        if (p.match.listener) expect(p.match.listener.portNumber).toBe(gw.spec.listeners[0].port);
        if (p.match.routeConfiguration) {
          expect(p.match.routeConfiguration.vhost.name).toBe(vhost);
          if (p.match.routeConfiguration.vhost.route) expect(routeNames).toContain(p.match.routeConfiguration.vhost.route.name);
        }
      }
    }
    if (ef) {
      const routePatch = ef.spec.configPatches.find((p: { applyTo: string }) => p.applyTo === 'HTTP_ROUTE');
      const models = one(m, 'HTTPRoute', `${gw.metadata.name}-models`);
      expect(routePatch.match.routeConfiguration.vhost).toEqual({ name: vhost, route: { name: `${ns}.${models.metadata.name}.0` } });
    }
  });

  test('monitors select the pods and ports they scrape', () => {
    const pm = one(m, 'PodMonitor', `${decodeDeployment.metadata.name}-vllm`);
    expect(podsSelectedBy(m, pm.spec.selector.matchLabels)).toEqual([decodeDeployment]);
    expect(containerPortNumber(decodeDeployment, pm.spec.podMetricsEndpoints[0].port)).toBe(8001);
    const sm = one(m, 'ServiceMonitor');
    const svcs = all(m, 'Service').filter((s) => selects(sm.spec.selector.matchLabels, s.metadata.labels));
    expect(svcs).toEqual([eppSvc]);
    expect(eppSvc.spec.ports.map((p: { name: string }) => p.name)).toContain(sm.spec.endpoints[0].port);
  });

  test('the gateway PodMonitor selects the pods Istio deploys for the Gateway, on their Envoy stats port', () => {
    const gw = one(m, 'Gateway');
    // Istio's gateway deployment: pods labelled gateway.networking.k8s.io/gateway-name: <Gateway>, container port
    // 15090 named http-envoy-prom serving Envoy's /stats/prometheus (istio/istio
    // manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml @ 1.27.0 L112-114, the same to 1.30).
    const pm = one(m, 'PodMonitor', `${gw.metadata.name}-${gw.spec.gatewayClassName}-envoy`);
    expect(pm.metadata.namespace).toBe(gw.metadata.namespace);
    expect(pm.spec.selector.matchLabels).toEqual({ 'gateway.networking.k8s.io/gateway-name': gw.metadata.name });
    expect(pm.spec.podMetricsEndpoints).toEqual([expect.objectContaining({ port: 'http-envoy-prom', path: '/stats/prometheus' })]);
    expect(gw.spec.infrastructure.annotations['proxy.istio.io/config']).toContain('ext_proc');
  });
});
