import { defaultEndpointPickerConfig, parseEndpointPickerConfig, type EndpointPickerConfig } from '@kvroute/epp/config';
import { GATEWAY_ENVOY_FLAGS, HA_OUTLIER_DETECTION } from '@kvroute/bench';
import { parseArgs, resolveOptions } from '@kvroute/gateway';
import * as YAML from 'yaml';
import { CLUSTERS, clusterProfile, DEMO, withOverrides } from '../lib/clusters';
import { all, container, Manifest, one, synthProfile, synthProps } from './support/manifests';

const demo = synthProfile(clusterProfile('demo'));

describe.each(CLUSTERS.map((c) => [c.name, c] as const))('cluster %s', (_name, profile) => {
  test('matches its snapshot', () => {
    expect(synthProfile(profile)).toMatchSnapshot();
  });
});

describe('the seed (demo cluster)', () => {
  const decode = one(demo, 'Deployment', 'ms-llm-d-modelservice-decode');
  const vllm = container(decode, 'vllm');
  const sidecar = container(decode, 'routing-proxy');

  test('every object lives in namespace llm-d, which is created', () => {
    expect(one(demo, 'Namespace').metadata.name).toBe('llm-d');
    for (const m of demo.filter((x) => x.kind !== 'Namespace')) expect(m.metadata.namespace).toBe('llm-d');
  });

  test('vLLM serves on 8001 with exactly the seed flags, plus --enable-prompt-tokens-details', () => {
    expect(vllm.image).toBe('ghcr.io/llm-d/llm-d:v0.2.0');
    expect(vllm.command).toEqual(['vllm', 'serve']);
    expect(vllm.args).toEqual([
      'Qwen/Qwen3-0.6B',
      '--port=8001',
      '--served-model-name=Qwen/Qwen3-0.6B',
      '--enable-prefix-caching',
      '--prefix-caching-hash-algo=builtin',
      '--block-size=16',
      '--no-enable-chunked-prefill',
      '--gpu-memory-utilization=0.9',
      '--max-model-len=4096',
      // The one addition: vLLM reports usage.prompt_tokens_details.cached_tokens only with it.
      '--enable-prompt-tokens-details',
    ]);
    expect(vllm.ports).toEqual([{ name: 'vllm', containerPort: 8001, protocol: 'TCP' }]);
    expect(vllm.env.find((e: { name: string }) => e.name === 'PYTHONHASHSEED')).toBeUndefined();
  });

  test('vLLM gets a GPU, the HF token, writable caches and probes on its own /health', () => {
    expect(vllm.resources.limits['nvidia.com/gpu']).toBe('1');
    expect(vllm.resources.requests['nvidia.com/gpu']).toBe('1');
    expect(vllm.env).toContainEqual({ name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'llm-d-hf-token', key: 'HF_TOKEN', optional: true } } });
    expect(vllm.volumeMounts.map((v: { mountPath: string }) => v.mountPath).sort()).toEqual(['/.cache', '/.config', '/dev/shm', '/model-cache']);
    const shm = decode.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'shm');
    expect(shm.emptyDir.medium).toBe('Memory');
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      expect(vllm[probe].httpGet).toEqual({ path: '/health', port: 'vllm' });
    }
    // Long enough for a model download and load: 30 minutes.
    expect(vllm.startupProbe.periodSeconds * vllm.startupProbe.failureThreshold).toBeGreaterThanOrEqual(1800);
  });

  test('the routing sidecar is a plain container on 8000 with plain HTTP', () => {
    expect(decode.spec.template.spec.initContainers).toBeUndefined();
    expect(sidecar.image).toBe('ghcr.io/llm-d/llm-d-routing-sidecar:v0.2.0');
    expect(sidecar.args).toEqual(['--port=8000', '--vllm-port=8001', '--secure-proxy=false']);
    expect(sidecar.ports).toEqual([{ name: 'http', containerPort: 8000, protocol: 'TCP' }]);
  });

  test('decode pods carry the llm-d labels and the decode Service targets the sidecar', () => {
    const labels = decode.spec.template.metadata.labels;
    expect(labels).toEqual({ 'llm-d.ai/inferenceServing': 'true', 'llm-d.ai/role': 'decode', 'llm-d.ai/model': 'ms-llm-d-modelservice' });
    const svc = one(demo, 'Service', 'ms-llm-d-modelservice-decode');
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 8000, targetPort: 'http', protocol: 'TCP', appProtocol: 'http' }]);
    expect(svc.spec.selector).toEqual(labels);
  });

  test('the EPP runs the kvroute image and serves gRPC 9002, health 9003, metrics 9090', () => {
    const epp = one(demo, 'Deployment', 'ms-llm-d-modelservice-epp');
    const c = container(epp, 'epp');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const version = require('@kvroute/epp/package.json').version;
    expect(c.image).toBe(`ghcr.io/kvroute/kvroute-epp:${version}`);
    expect(c.args).toEqual(expect.arrayContaining([
      '--pool-name=ms-llm-d-modelservice', '--pool-namespace=llm-d', '--grpc-port=9002', '--grpc-health-port=9003',
      '--metrics-port=9090', '--config-file=/config/epp-config.yaml', '--refresh-metrics-interval=50ms',
    ]));
    expect(c.readinessProbe.grpc).toEqual({ port: 9003, service: 'envoy.service.ext_proc.v3.ExternalProcessor' });
    expect(c.livenessProbe.grpc.port).toBe(9003);
    const svc = one(demo, 'Service', 'ms-llm-d-modelservice-epp');
    expect(svc.spec.ports.map((p: { port: number; appProtocol: string }) => [p.port, p.appProtocol]))
      .toEqual([[9002, 'http2'], [9003, 'http2'], [9090, 'http']]);
  });

  test('the EPP has least-privilege RBAC in its namespace only', () => {
    expect(all(demo, 'ClusterRole')).toHaveLength(0);
    expect(all(demo, 'ClusterRoleBinding')).toHaveLength(0);
    const role = one(demo, 'Role', 'ms-llm-d-modelservice-epp');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
      { apiGroups: ['inference.networking.x-k8s.io'], resources: ['inferencepools'], verbs: ['list', 'watch'] },
      { apiGroups: ['inference.networking.x-k8s.io'], resources: ['inferenceobjectives', 'inferencemodelrewrites'], verbs: ['list', 'watch'] },
      // llm-d-router v0.10.0's group, read in preference when installed (pkg/epp/server/controller_config.go @ v0.10.0).
      { apiGroups: ['llm-d.ai'], resources: ['inferenceobjectives', 'inferencemodelrewrites'], verbs: ['list', 'watch'] },
    ]);
    const binding = one(demo, 'RoleBinding', 'ms-llm-d-modelservice-epp');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'ms-llm-d-modelservice-epp', namespace: 'llm-d' }]);
  });

  test('the InferencePool is v1alpha2, selects the decode pods on 8000 and fails open to the EPP on 9002', () => {
    const pool = one(demo, 'InferencePool');
    expect(pool.apiVersion).toBe('inference.networking.x-k8s.io/v1alpha2');
    expect(pool.spec).toEqual({
      selector: { 'llm-d.ai/inferenceServing': 'true', 'llm-d.ai/model': 'ms-llm-d-modelservice', 'llm-d.ai/role': 'decode' },
      targetPortNumber: 8000,
      extensionRef: { group: '', kind: 'Service', name: 'ms-llm-d-modelservice-epp', portNumber: 9002, failureMode: 'FailOpen' },
    });
  });

  test('the Istio Gateway llm-d-gateway and the /v1 route for llm-d.demo.local', () => {
    const gw = one(demo, 'Gateway', 'llm-d-gateway');
    expect(gw.spec.gatewayClassName).toBe('istio');
    const route = one(demo, 'HTTPRoute', 'llm-d-gateway');
    expect(route.spec.hostnames).toEqual(['llm-d.demo.local']);
    expect(route.spec.rules[0].matches).toEqual([{ path: { type: 'PathPrefix', value: '/v1' } }]);
    expect(route.spec.rules[0].backendRefs).toEqual([{ group: '', kind: 'Service', name: 'ms-llm-d-modelservice-decode', port: 8000, weight: 1 }]);
    const models = one(demo, 'HTTPRoute', 'llm-d-gateway-models');
    expect(models.spec.rules[0].matches).toEqual([{ path: { type: 'Exact', value: '/v1/models' }, method: 'GET' }]);
  });

  test('the Gateway asks Istio to export the ext_proc counters (proxyStatsMatcher through infrastructure annotations)', () => {
    const gw = one(demo, 'Gateway', 'llm-d-gateway');
    const proxyConfig = JSON.parse(gw.spec.infrastructure.annotations['proxy.istio.io/config']);
    expect(proxyConfig).toEqual({ proxyStatsMatcher: { inclusionRegexps: ['http\\..*\\.ext_proc\\..*'] } });
    // Envoy matches the whole stat name (StringMatcher safe_regex), as Istio names it for the port-80 listener.
    const regex = new RegExp(`^${proxyConfig.proxyStatsMatcher.inclusionRegexps[0]}$`);
    expect(regex.test('http.outbound_0.0.0.0_80;.ext_proc.failure_mode_allowed')).toBe(true);
    expect(regex.test('http.outbound_0.0.0.0_80;.downstream_rq_total')).toBe(false);
    const off = synthProps(withOverrides(DEMO, { gateway: { exportExtProcStats: false } }));
    expect(one(off, 'Gateway').spec.infrastructure).toBeUndefined();
  });

  const extProcFilter = () => one(demo, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc');
  const patchOf = (filter: Manifest, applyTo: string) => {
    const found = filter.spec.configPatches.filter((p: { applyTo: string }) => p.applyTo === applyTo);
    expect(found).toHaveLength(1);
    return found[0];
  };

  test('the EnvoyFilter inserts ext_proc before the router: buffered request bodies, a real message timeout, fail open (Istio 1.27.0)', () => {
    const filter = extProcFilter();
    const insert = patchOf(filter, 'HTTP_FILTER');
    expect(insert.match.context).toBe('GATEWAY');
    expect(insert.match.listener.filterChain.filter.subFilter.name).toBe('envoy.filters.http.router');
    expect(insert.patch.operation).toBe('INSERT_BEFORE');
    const cfg = insert.patch.value.typed_config;
    expect(cfg.failure_mode_allow).toBe(true);
    expect(cfg.grpc_service).toEqual({ envoy_grpc: { cluster_name: 'outbound|9002||ms-llm-d-modelservice-epp.llm-d.svc.cluster.local' } });
    expect(cfg.processing_mode).toEqual({
      request_header_mode: 'SEND', request_body_mode: 'BUFFERED', request_trailer_mode: 'SKIP',
      response_header_mode: 'SEND', response_body_mode: 'NONE', response_trailer_mode: 'SEND',
    });
    expect(cfg.metadata_options.receiving_namespaces.untyped).toEqual(['envoy.lb']);
    expect(cfg.message_timeout).toBe('1s');
    expect(filter.spec.targetRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'llm-d-gateway' }]);
    expect(filter.metadata.annotations).toEqual({
      'kvroute.dev/istio-version': '1.27.0', 'kvroute.dev/envoy-line': 'release/v1.35',
      'envoyfilter.istio.io/referenced-services': 'llm-d/ms-llm-d-modelservice-epp.llm-d.svc.cluster.local',
    });
    // The listener buffers whole bodies for the EPP: 8 MiB instead of Envoy's 1 MiB.
    expect(patchOf(filter, 'LISTENER').patch.value).toEqual({ per_connection_buffer_limit_bytes: 8388608 });
    // The EPP assumes the same body mode when Envoy sends no protocol_config.
    expect(container(one(demo, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').args).toContain('--request-body-mode=buffered');
  });

  test('the decode cluster honours the pick from envoy.lb metadata and falls back to round robin', () => {
    const patch = patchOf(extProcFilter(), 'CLUSTER');
    expect(patch.match.cluster).toEqual({ service: 'ms-llm-d-modelservice-decode.llm-d.svc.cluster.local', portNumber: 8000 });
    const override = patch.patch.value.load_balancing_policy.policies[0].typed_extension_config;
    expect(override.name).toBe('envoy.load_balancing_policies.override_host');
    expect(override.typed_config.override_host_sources).toEqual([{ metadata: { key: 'envoy.lb', path: [{ key: 'x-gateway-destination-endpoint' }] } }]);
    expect(override.typed_config.fallback_policy.policies[0].typed_extension_config.name).toBe('envoy.load_balancing_policies.round_robin');
  });

  test('ext_proc is disabled on the /v1/models route', () => {
    const patch = patchOf(extProcFilter(), 'HTTP_ROUTE');
    expect(patch.match.routeConfiguration.vhost).toEqual({ name: 'llm-d.demo.local:80', route: { name: 'llm-d.llm-d-gateway-models.0' } });
    expect(patch.patch.value.typed_per_filter_config['envoy.filters.http.ext_proc'].disabled).toBe(true);
  });

  // Istio writes `stream_idle_timeout: 0s` on every connection manager it builds, gateways included
  // (istio/istio pilot/pkg/networking/core/listener_builder.go buildHTTPConnectionManager, L365 @ 1.27.0, L371 @ 1.28.0
  // to 1.30.0), so Envoy's 5-minute default never applies: only what the EnvoyFilter writes bounds an idle exchange.
  test('the gateway bounds receiving a request (client upload and EPP hold) and an idle exchange on every route', () => {
    const timeouts = one(demo, 'EnvoyFilter', 'llm-d-gateway-timeouts');
    expect(timeouts.spec.configPatches).toHaveLength(1);
    const hcm = patchOf(timeouts, 'NETWORK_FILTER');
    expect(hcm.match.listener).toEqual({ portNumber: 80, filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } });
    expect(hcm.patch.value.typed_config).toMatchObject({ request_timeout: '60s', stream_idle_timeout: '300s' });
  });

  test('"0s" timeouts write nothing: with both off the gateway has no timeouts EnvoyFilter and, under Istio, no idle bound', () => {
    const idleOff = synthProps(withOverrides(DEMO, { gateway: { idleTimeout: '0s' } }));
    expect(patchOf(one(idleOff, 'EnvoyFilter', 'llm-d-gateway-timeouts'), 'NETWORK_FILTER').patch.value.typed_config).not.toHaveProperty('stream_idle_timeout');
    const bothOff = synthProps(withOverrides(DEMO, { gateway: { idleTimeout: '0s', requestReceiveTimeout: '0s' } }));
    expect(all(bothOff, 'EnvoyFilter').map((f) => f.metadata.name)).not.toContain('llm-d-gateway-timeouts');
  });

  test('the local gateway (bench/src/stack.ts GATEWAY_ENVOY_FLAGS) runs with the timeouts these manifests give Envoy', () => {
    const flag = (name: string) => Number(GATEWAY_ENVOY_FLAGS[GATEWAY_ENVOY_FLAGS.indexOf(name) + 1]);
    const ms = (duration: string) => [...duration.matchAll(/(\d+)(ms|h|m|s)/g)].reduce((t, [, n, unit]) => t + Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit!]!, 0);
    const timeouts = one(demo, 'EnvoyFilter', 'llm-d-gateway-timeouts');
    expect(flag('--request-receive-timeout-ms')).toBe(ms(patchOf(timeouts, 'NETWORK_FILTER').patch.value.typed_config.request_timeout));
    expect(flag('--idle-timeout-ms')).toBe(ms(patchOf(timeouts, 'NETWORK_FILTER').patch.value.typed_config.stream_idle_timeout));
    expect(flag('--request-timeout-ms')).toBe(ms(one(demo, 'HTTPRoute', 'llm-d-gateway').spec.rules[0].timeouts.request));
  });

  // The demo's EPP replicas (bench/src/demo-ha.ts) play the gateway's Envoy with the outlier detection the EPP
  // DestinationRule gives it, as Istio translates it (istio/istio pilot/pkg/networking/core/cluster_traffic_policy.go
  // applyOutlierDetection @ 461f85ba, read here; lib/ext-proc.ts cites it at 1.27: consecutive5xxErrors →
  // consecutive_5xx, 0 = never; consecutiveGatewayErrors → consecutive_gateway_failure, enforced 100; interval,
  // baseEjectionTime and maxEjectionPercent as given; max_ejection_time not set, so Envoy's max(300 s, base)). The demo's flag left consecutive5xx at Envoy's 5, so its
  // gateway ejected a replica after five INTERNAL statuses that the manifests' Envoy never counts.
  test('the demo\'s gateway (bench/src/demo-ha.ts HA_OUTLIER_DETECTION) ejects EPP replicas as the EPP DestinationRule does', () => {
    const ms = (duration: string) => [...duration.matchAll(/(\d+)(ms|h|m|s)/g)].reduce((t, [, n, unit]) => t + Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit!]!, 0);
    const od = one(synthProfile(clusterProfile('prod-ha')), 'DestinationRule', 'ms-llm-d-modelservice-epp').spec.trafficPolicy.outlierDetection;
    const base = ms(od.baseEjectionTime ?? '30s');
    const cmd = parseArgs(['--endpoints', '127.0.0.1:1', '--ext-proc', '127.0.0.1:2,127.0.0.1:3', '--ext-proc-outlier-detection', HA_OUTLIER_DETECTION]);
    expect(cmd.kind === 'run' && resolveOptions(cmd.options).extProcOutlierDetection).toEqual({
      consecutive5xx: od.consecutive5xxErrors ?? 5,
      consecutiveGatewayFailure: od.consecutiveGatewayErrors ?? 0,
      intervalMs: ms(od.interval ?? '10s'),
      baseEjectionTimeMs: base,
      maxEjectionTimeMs: Math.max(300_000, base),
      maxEjectionPercent: od.maxEjectionPercent || 10,
    });
  });

  test('the decode DestinationRule balances round robin with locality load balancing off', () => {
    const dr = one(demo, 'DestinationRule');
    expect(dr.spec).toEqual({
      host: 'ms-llm-d-modelservice-decode.llm-d.svc.cluster.local',
      trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { enabled: false } } },
    });
  });

  test('monitoring: vLLM PodMonitor on its named port, EPP ServiceMonitor, gateway Envoy PodMonitor, rules and a dashboard', () => {
    const pm = one(demo, 'PodMonitor', 'ms-llm-d-modelservice-decode-vllm');
    expect(pm.spec.podMetricsEndpoints).toEqual([{ port: 'vllm', path: '/metrics', interval: '15s' }]);
    const sm = one(demo, 'ServiceMonitor');
    expect(sm.spec.endpoints[0].port).toBe('http-metrics');
    const gwPm = one(demo, 'PodMonitor', 'llm-d-gateway-istio-envoy');
    expect(gwPm.spec).toEqual({
      selector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'llm-d-gateway' } },
      podMetricsEndpoints: [{ port: 'http-envoy-prom', path: '/stats/prometheus', interval: '10s' }],
    });
    const rule = one(demo, 'PrometheusRule');
    expect(rule.spec.groups.map((g: { name: string; interval: string }) => [g.name, g.interval]))
      .toEqual([['kvroute.recording', '30s'], ['kvroute.alerts', '15s']]);
    const alerts = rule.spec.groups.flatMap((g: { rules: { alert?: string }[] }) => g.rules).filter((r: { alert?: string }) => r.alert);
    // The production timings the README states.
    expect(Object.fromEntries(alerts.map((a: { alert: string; for: string; labels: { severity: string } }) => [a.alert, `${a.labels.severity} for ${a.for}`]))).toEqual({
      KvrouteEppDown: 'critical for 30s',
      KvrouteEppReplicaDown: 'warning for 5m',
      KvrouteEppFailingOpen: 'critical for 30s',
      KvrouteEppSlow: 'warning for 5m',
      KvrouteEppRefusingRequests: 'warning for 5m',
      KvrouteGatewayExtProcStatsMissing: 'warning for 10m',
      KvroutePrefixCacheHitsBelowExpected: 'warning for 15m',
      KvrouteKvCacheNearFull: 'warning for 10m',
      KvrouteNoReadyDecodePods: 'critical for 5m',
    });
    const byName = (n: string) => alerts.find((a: { alert: string }) => a.alert === n);
    expect(byName('KvroutePrefixCacheHitsBelowExpected').expr).toMatch(/> 0\.25$/);
    // The share of the last minute, and (at a quiet gateway one failed request is most of it) 3 failed in 5 minutes.
    expect(byName('KvrouteEppFailingOpen').expr).toMatch(/\[1m\][\s\S]*\) > 0\.1\nand on \(namespace\)\n[\s\S]*increase\(envoy_http_ext_proc_failure_mode_allowed\{[^}]*\}\[5m\]\)[\s\S]*\) >= 3$/);
    expect(byName('KvrouteEppSlow').expr).toMatch(/\[5m\][\s\S]*\) > 0\.01$/);
    expect(byName('KvrouteEppDown').expr).toContain('up{namespace="llm-d",job="ms-llm-d-modelservice-epp"}');
    const dash = one(demo, 'ConfigMap', 'ms-llm-d-modelservice-kvroute-dashboard');
    expect(dash.metadata.labels).toEqual({ grafana_dashboard: '1' });
    expect(JSON.parse(dash.data['kvroute.json']).panels.length).toBeGreaterThan(5);
  });
});

describe('cluster overrides', () => {
  const vllmArgs = (m: Manifest[]) => container(one(m, 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args as string[];

  test('prod-shared-gpus runs vLLM at 0.7 GPU memory utilization with 6 replicas', () => {
    const m = synthProfile(clusterProfile('prod-shared-gpus'));
    expect(vllmArgs(m)).toContain('--gpu-memory-utilization=0.7');
    expect(vllmArgs(m)).not.toContain('--gpu-memory-utilization=0.9');
    expect(one(m, 'Deployment', 'ms-llm-d-modelservice-decode').spec.replicas).toBe(6);
    for (const monitor of all(m, 'PodMonitor')) expect(monitor.metadata.labels).toEqual({ release: 'kube-prometheus-stack' });
    // Everything else stays the seed's.
    expect(vllmArgs(m).filter((a) => !a.startsWith('--gpu-memory-utilization'))).toEqual(vllmArgs(demo).filter((a) => !a.startsWith('--gpu-memory-utilization')));
  });

  test('prod-shared-gpus asks Istio for a ClusterIP gateway Service through infrastructure.parametersRef, not the deprecated annotation', () => {
    const m = synthProfile(clusterProfile('prod-shared-gpus'));
    const gateway = one(m, 'Gateway', 'llm-d-gateway');
    // Istio 1.27-1.30 report a Gateway carrying networking.istio.io/service-type as Accepted: False
    // (DeprecateFieldUsage, pilot/pkg/config/kube/gateway/conversion.go extractGatewayServices).
    expect(gateway.metadata.annotations?.['networking.istio.io/service-type']).toBeUndefined();
    expect(gateway.spec.infrastructure.parametersRef).toEqual({ group: '', kind: 'ConfigMap', name: 'llm-d-gateway-parameters' });
    const params = one(m, 'ConfigMap', 'llm-d-gateway-parameters');
    expect(params.metadata.namespace).toBe(gateway.metadata.namespace);
    // The `service` key is a strategic-merge overlay on the Service Istio renders (deploymentcontroller.go applyOverlay).
    expect(Object.keys(params.data)).toEqual(['service']);
    expect(YAML.parse(params.data.service)).toEqual({ spec: { type: 'ClusterIP' } });
    // The stats annotations stay beside it, and the seed keeps Istio's default (LoadBalancer): no parameters at all.
    expect(gateway.spec.infrastructure.annotations).toEqual(one(demo, 'Gateway').spec.infrastructure.annotations);
    expect(one(demo, 'Gateway').spec.infrastructure.parametersRef).toBeUndefined();
    expect(all(demo, 'ConfigMap').map((c) => c.metadata.name)).not.toContain('llm-d-gateway-parameters');
  });

  test('prod-session-hash falls back to a ring hash on x-session-id, in Envoy and in the DestinationRule', () => {
    const m = synthProfile(clusterProfile('prod-session-hash'));
    const override = one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc').spec.configPatches[1].patch.value.load_balancing_policy.policies[0].typed_extension_config;
    expect(override.typed_config.fallback_policy.policies[0].typed_extension_config.name).toBe('envoy.load_balancing_policies.ring_hash');
    expect(one(m, 'DestinationRule').spec.trafficPolicy.loadBalancer).toEqual({
      consistentHash: { httpHeaderName: 'x-session-id', ringHash: { minimumRingSize: 1024 } },
      localityLbSetting: { enabled: false },
    });
  });

  // The documented ring size (Envoy's RingHash `minimum_ring_size`, default 1024, at most 8M: ring_hash.proto @ v1.35.0;
  // Istio's `consistentHash.ringHash.minimumRingSize`) is taken with the consistent-hash fallback, and reaches both.
  test('a chosen minimumRingSize with the consistent-hash fallback builds, and is the ring size in Envoy and in the DestinationRule', () => {
    const m = synthProps(withOverrides(DEMO, { extProc: { consistentHashFallback: true, minimumRingSize: 4096 } }));
    const override = one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc').spec.configPatches[1].patch.value.load_balancing_policy.policies[0].typed_extension_config;
    expect(override.typed_config.fallback_policy.policies[0].typed_extension_config.typed_config).toMatchObject({ minimum_ring_size: 4096 });
    expect(one(m, 'DestinationRule').spec.trafficPolicy.loadBalancer.consistentHash).toEqual({ httpHeaderName: 'x-session-id', ringHash: { minimumRingSize: 4096 } });
  });

  test('withOverrides merges in depth and leaves the base untouched', () => {
    const merged = withOverrides(DEMO, { decode: { gpuMemoryUtilization: 0.5 } });
    expect(merged.decode).toEqual({ ...DEMO.decode, gpuMemoryUtilization: 0.5 });
    expect(DEMO.decode.gpuMemoryUtilization).toBe(0.9);
  });

  test('withOverrides replaces label maps whole and removes a field set to null (audit s36: a moved nodeSelector required both labels; an inherited session store could not be dropped)', () => {
    const a100 = withOverrides(DEMO, { decode: { nodeSelector: { gpu: 'a100-80gb' } } });
    const h100 = withOverrides(a100, { decode: { nodeSelector: { 'nvidia.com/gpu.product': 'H100' } } });
    expect(h100.decode.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'H100' });
    expect(container(one(synthProps(h100), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm')).toBeDefined();
    expect(one(synthProps(h100), 'Deployment', 'ms-llm-d-modelservice-decode').spec.template.spec.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'H100' });
    // Plain objects still merge in depth.
    expect(withOverrides(DEMO, { gateway: { hostname: 'x.example.com' } }).gateway).toEqual({ ...DEMO.gateway, hostname: 'x.example.com' });
    const precise = CLUSTERS.find((c) => c.name === 'prod-precise')!.routing;
    expect(precise.sessionStore).toBeDefined();
    const withoutStore = withOverrides(precise, { sessionStore: null });
    expect('sessionStore' in withoutStore).toBe(false);
    const kinds = (props: typeof precise) => synthProps(props).map((o: { kind: string }) => o.kind);
    expect(kinds(precise)).toContain('StatefulSet');
    expect(kinds(withoutStore)).not.toContain('StatefulSet');
    // Switching a union's form: remove, then set.
    const ha = CLUSTERS.find((c) => c.name === 'prod-ha')!.routing;
    const deployed = withOverrides(withOverrides(ha, { sessionStore: null }), { sessionStore: { deploy: {} } });
    expect(deployed.sessionStore).toEqual({ deploy: {} });
    expect(kinds(deployed)).toContain('StatefulSet');
  });

  test('the v1 InferencePool option switches the pool API and the EPP RBAC together', () => {
    const m = synthProps(withOverrides(DEMO, { endpointPicker: { poolApiGroup: 'inference.networking.k8s.io' } }));
    const pool = one(m, 'InferencePool');
    expect(pool.apiVersion).toBe('inference.networking.k8s.io/v1');
    expect(pool.spec.targetPorts).toEqual([{ number: 8000 }]);
    expect(pool.spec.endpointPickerRef).toMatchObject({ name: 'ms-llm-d-modelservice-epp', port: { number: 9002 }, failureMode: 'FailOpen' });
    expect(one(m, 'Role').rules[1].apiGroups).toEqual(['inference.networking.k8s.io']);
    expect(container(one(m, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').args).toContain('--pool-group=inference.networking.k8s.io');
  });

  test('sha256_cbor_64bit hashing sets PYTHONHASHSEED', () => {
    const m = synthProps(withOverrides(DEMO, { decode: { prefixCachingHashAlgo: 'sha256_cbor_64bit' } }));
    const vllm = container(one(m, 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm');
    expect(vllm.args).toContain('--prefix-caching-hash-algo=sha256_cbor_64bit');
    expect(vllm.env).toContainEqual({ name: 'PYTHONHASHSEED', value: '42' });
  });

  test('a newer vLLM image takes its own hash algorithms (sha256_cbor from 0.10.2), with PYTHONHASHSEED so pods hash alike', () => {
    const m = synthProps(withOverrides(DEMO, { decode: { image: 'vllm/vllm-openai:v0.11.0', prefixCachingHashAlgo: 'sha256_cbor', pythonHashSeed: '7' } }));
    const vllm = container(one(m, 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm');
    expect(vllm.args).toContain('--prefix-caching-hash-algo=sha256_cbor');
    expect(vllm.env).toContainEqual({ name: 'PYTHONHASHSEED', value: '7' });
    // The seed architecture's builtin hash stays without it.
    const seed = container(one(synthProps(DEMO), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm');
    expect((seed.env ?? []).map((e: { name: string }) => e.name)).not.toContain('PYTHONHASHSEED');
  });

  test('prod-precise: every vLLM binds its KV-event publisher and replay socket per pod, with the builtin hash; the EPP scores from them', () => {
    const m = synthProfile(clusterProfile('prod-precise'));
    const vllm = container(one(m, 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm');
    expect(vllm.args).toContain('--prefix-caching-hash-algo=builtin');
    const events = vllm.args.find((a: string) => a.startsWith('--kv-events-config='));
    expect(JSON.parse(events.slice('--kv-events-config='.length))).toEqual({
      enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://*:5557', replay_endpoint: 'tcp://*:5558',
      buffer_steps: 10000, topic: 'kv@$(POD_IP):8000@Qwen/Qwen3-0.6B',
    });
    expect(vllm.ports).toEqual([
      { name: 'vllm', containerPort: 8001, protocol: 'TCP' },
      { name: 'kv-events', containerPort: 5557, protocol: 'TCP' },
      { name: 'kv-replay', containerPort: 5558, protocol: 'TCP' },
    ]);
    const config = one(m, 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml'];
    const parsed = parseEndpointPickerConfig(config);
    const precise = parsed.plugins.find((p) => p.type === 'precise-prefix-cache-scorer');
    expect(precise?.parameters).toMatchObject({
      kvEventsConfig: { discoverPods: true, podDiscoveryConfig: { socketPort: 5557 }, replayPort: 5558 },
      // The block size where llm-d v0.8.0 reads it (precise_prefix_cache.go), not under indexerConfig.
      tokenProcessorConfig: { blockSize: 16 },
      indexerConfig: { tokenProcessorConfig: {}, tokenizersPoolConfig: { modelName: 'Qwen/Qwen3-0.6B' } },
    });
    expect(parsed.plugins.some((p) => p.type === 'prefix-cache-scorer')).toBe(false);
  });

  test('prod-precise and prod-ha: several active EPP replicas that roll one at a time, a PodDisruptionBudget, spread over nodes', () => {
    for (const [name, replicas, spread] of [['prod-precise', 2, 'ScheduleAnyway'], ['prod-ha', 3, 'DoNotSchedule']] as const) {
      const m = synthProfile(clusterProfile(name));
      const epp = one(m, 'Deployment', 'ms-llm-d-modelservice-epp');
      expect(epp.spec.replicas).toBe(replicas);
      // Never fewer serving replicas during a rollout (GIE's chart: Recreate with leader election).
      expect(epp.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
      expect(epp.spec.minReadySeconds).toBe(10);
      // Streams keep being accepted until the gateways learn the replica left; the drain still fits the grace.
      expect(container(epp, 'epp').lifecycle).toEqual({ preStop: { exec: { command: ['sleep', '5'] } } });
      expect(epp.spec.template.spec.terminationGracePeriodSeconds).toBe(5 + 120 + 10);
      // Required: minDomains = replicas, or max skew 1 alone would let 3 replicas share 2 nodes (2 + 1).
      expect(epp.spec.template.spec.topologySpreadConstraints).toEqual([{
        topologyKey: 'kubernetes.io/hostname', maxSkew: 1, whenUnsatisfiable: spread,
        ...(spread === 'DoNotSchedule' ? { minDomains: replicas } : {}),
        labelSelector: { matchLabels: { 'llm-d.ai/epp': 'ms-llm-d-modelservice-epp' } }, matchLabelKeys: ['pod-template-hash'],
      }]);
      expect(one(m, 'PodDisruptionBudget', 'ms-llm-d-modelservice-epp').spec).toEqual({
        maxUnavailable: 1, selector: { matchLabels: { 'llm-d.ai/epp': 'ms-llm-d-modelservice-epp' } }, unhealthyPodEvictionPolicy: 'AlwaysAllow',
      });
      // A dead replica is ejected from the gateway's EPP cluster on its first connection failure (Envoy never retries
      // an ext_proc stream on another replica); 50% so that one of two can be (Envoy's default 10% never ejects).
      expect(one(m, 'DestinationRule', 'ms-llm-d-modelservice-epp').spec).toEqual({
        host: 'ms-llm-d-modelservice-epp.llm-d.svc.cluster.local',
        trafficPolicy: { outlierDetection: { consecutiveGatewayErrors: 1, consecutive5xxErrors: 0, interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 50 } },
      });
      // Per-pod events: every replica dials every pod, none binds a port the pods connect to.
      const config = parseEndpointPickerConfig(one(m, 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml']);
      expect(config.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')?.parameters).toMatchObject({ kvEventsConfig: { discoverPods: true } });
    }
    // The single-replica profiles keep the Deployment's defaults and have no budget.
    for (const name of ['demo', 'prod-shared-gpus', 'prod-session-hash', 'prod-native-istio']) {
      const m = synthProfile(clusterProfile(name));
      const epp = one(m, 'Deployment', 'ms-llm-d-modelservice-epp');
      expect({ name, replicas: epp.spec.replicas, strategy: epp.spec.strategy, pdbs: all(m, 'PodDisruptionBudget').length }).toEqual({ name, replicas: 1, strategy: undefined, pdbs: 0 });
      // The default strategy is RollingUpdate, maxSurge 25% (rounded up: 1) and maxUnavailable 25% (rounded down: 0;
      // Kubernetes "Deployments", Rolling Update Deployment): a rollout deletes the old pod once the new one is ready,
      // while the gateways' Envoys still send it streams until Istio's push. It keeps accepting them for the preStop.
      expect([name, container(epp, 'epp').lifecycle]).toEqual([name, { preStop: { exec: { command: ['sleep', '5'] } } }]);
      expect([name, epp.spec.template.spec.terminationGracePeriodSeconds]).toEqual([name, 5 + 120 + 10]);
      expect(all(m, 'DestinationRule').map((d) => d.metadata.name)).not.toContain('ms-llm-d-modelservice-epp');
    }
  });

  test('prod-precise deploys a Valkey for sessions; prod-ha uses the platform\'s, its password from a Secret through the env', () => {
    const precise = synthProfile(clusterProfile('prod-precise'));
    const store = (m: Manifest[]) => parseEndpointPickerConfig(one(m, 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml'])
      .plugins.find((p) => p.type === 'session-affinity-filter')!.parameters as Record<string, unknown>;
    expect(store(precise).sessionStore).toEqual({
      address: 'redis://ms-llm-d-modelservice-session-store.llm-d.svc.cluster.local:6379', keyPrefix: 'kvroute:session:llm-d/ms-llm-d-modelservice:', timeout: '5ms', unavailablePlacement: 'scorers',
    });
    const valkey = container(one(precise, 'StatefulSet', 'ms-llm-d-modelservice-session-store'), 'valkey');
    expect(valkey.image).toBe('valkey/valkey:8.1.8');
    // Soft state: nothing persisted, memory bounded with LRU eviction.
    expect(valkey.args).toEqual(['valkey-server', '--save', '', '--appendonly', 'no', '--maxmemory', '192mb', '--maxmemory-policy', 'allkeys-lru', '--port', '6379']);
    expect(valkey.resources.limits.memory).toBe('256Mi');
    expect(container(one(precise, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').env).toBeUndefined();

    const ha = synthProfile(clusterProfile('prod-ha'));
    expect(all(ha, 'StatefulSet')).toHaveLength(0);
    expect(store(ha).sessionStore).toEqual({
      address: 'redis://valkey.platform-cache.svc.cluster.local:6379', keyPrefix: 'kvroute:session:llm-d/ms-llm-d-modelservice:', timeout: '5ms', passwordEnv: 'KVROUTE_SESSION_STORE_PASSWORD', unavailablePlacement: 'scorers',
    });
    expect(container(one(ha, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').env).toEqual([
      { name: 'KVROUTE_SESSION_STORE_PASSWORD', valueFrom: { secretKeyRef: { name: 'kvroute-session-store', key: 'password' } } },
    ]);
  });

  // Found by the replicas review (rev-replicas): every stack rendered the EPP's default prefix, "kvroute:session:", so
  // stacks sharing the platform's store (the README's `existing` example) shared every key, and a session id both saw
  // was one binding for both pools (epp/test/session-store-two-stacks.test.ts).
  test('stacks sharing the platform\'s store render key prefixes of their own, by namespace and pool', () => {
    const prefix = (namespace: string) => {
      const m = synthProps(withOverrides(DEMO, {
        namespace, decode: { kvEvents: { mode: 'per-pod' } }, endpointPicker: { replicas: 2 },
        sessionStore: { existing: { host: 'valkey.platform-cache.svc.cluster.local' } },
      }));
      const filter = parseEndpointPickerConfig(one(m, 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml'])
        .plugins.find((p) => p.type === 'session-affinity-filter')!;
      return (filter.parameters as { sessionStore: { keyPrefix: string } }).sessionStore.keyPrefix;
    };
    expect(prefix('team-a')).toBe('kvroute:session:team-a/ms-llm-d-modelservice:');
    expect(prefix('team-b')).toBe('kvroute:session:team-b/ms-llm-d-modelservice:');
  });

  test('a deployed Valkey with a password: Valkey and the EPP read the same Secret key, neither manifest holds it', () => {
    const m = synthProps(withOverrides(DEMO, { decode: { kvEvents: { mode: 'per-pod' } }, endpointPicker: { replicas: 2 }, sessionStore: { deploy: { passwordSecret: { name: 'valkey-auth' } } } }));
    const secretEnv = { name: 'KVROUTE_SESSION_STORE_PASSWORD', valueFrom: { secretKeyRef: { name: 'valkey-auth', key: 'password' } } };
    const valkey = container(one(m, 'StatefulSet', 'ms-llm-d-modelservice-session-store'), 'valkey');
    expect(valkey.env).toEqual([secretEnv]);
    // Kubernetes expands $(VAR) in args from the container's env.
    expect(valkey.args.slice(-2)).toEqual(['--requirepass', '$(KVROUTE_SESSION_STORE_PASSWORD)']);
    expect(container(one(m, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').env).toEqual([secretEnv]);
  });

  test('signed session tokens: the scorer\'s keys come from Secrets through the env, its ttl kept', () => {
    const base = defaultEndpointPickerConfig();
    const config = {
      ...base,
      plugins: [...base.plugins, { type: 'session-affinity-scorer' as const, parameters: { tokenSigning: { ttl: '12h' } } }],
      schedulingProfiles: base.schedulingProfiles.map((sp) => ({ ...sp, plugins: [...sp.plugins.slice(0, -1), { pluginRef: 'session-affinity-scorer', weight: 2 }, ...sp.plugins.slice(-1)] })),
    } as EndpointPickerConfig;
    const m = synthProps(withOverrides(DEMO, {
      decode: { kvEvents: { mode: 'per-pod' } },
      endpointPicker: { replicas: 2, config, sessionTokenSigning: { keySecret: { name: 'session-token' }, previousKeySecret: { name: 'session-token', key: 'previous' } } },
    }));
    const parsed = parseEndpointPickerConfig(one(m, 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml']);
    expect(parsed.plugins.find((p) => p.type === 'session-affinity-scorer')?.parameters).toEqual({
      tokenSigning: { keyEnv: 'KVROUTE_SESSION_TOKEN_KEY', previousKeyEnv: 'KVROUTE_SESSION_TOKEN_PREVIOUS_KEY', ttl: '12h' },
    });
    expect(container(one(m, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').env).toEqual([
      { name: 'KVROUTE_SESSION_TOKEN_KEY', valueFrom: { secretKeyRef: { name: 'session-token', key: 'key' } } },
      { name: 'KVROUTE_SESSION_TOKEN_PREVIOUS_KEY', valueFrom: { secretKeyRef: { name: 'session-token', key: 'previous' } } },
    ]);
    // The default config has no session-affinity-scorer to sign for; a config naming its own key conflicts.
    expect(() => synthProps(withOverrides(DEMO, { endpointPicker: { sessionTokenSigning: { keySecret: { name: 'session-token' } } } })))
      .toThrow(/^EndpointPicker\.sessionTokenSigning: needs exactly one session-affinity-scorer in the config \(found 0; the default config has none\)/);
    const withFile = { ...config, plugins: config.plugins.map((p) => (p.type === 'session-affinity-scorer' ? { ...p, parameters: { tokenSigning: { keyFile: '/k' } } } : p)) } as EndpointPickerConfig;
    expect(() => synthProps(withOverrides(DEMO, { endpointPicker: { config: withFile, sessionTokenSigning: { keySecret: { name: 'session-token' } } } })))
      .toThrow(/^EndpointPicker\.config: must not name tokenSigning keys in the session-affinity-scorer when sessionTokenSigning is given/);
  });

  test('central KV events: vLLM connects to the EPP Service, which exposes the bound port; one EPP replica only', () => {
    const m = synthProps(withOverrides(DEMO, { decode: { kvEvents: { mode: 'central' } } }));
    const vllm = container(one(m, 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm');
    const events = JSON.parse(vllm.args.find((a: string) => a.startsWith('--kv-events-config=')).slice('--kv-events-config='.length));
    expect(events.endpoint).toBe('tcp://ms-llm-d-modelservice-epp.llm-d.svc.cluster.local:5557');
    expect(events.replay_endpoint).toBeUndefined();
    const svc = one(m, 'Service', 'ms-llm-d-modelservice-epp');
    expect(svc.spec.ports).toContainEqual({ name: 'tcp-kv-events', port: 5557, targetPort: 'tcp-kv-events', protocol: 'TCP', appProtocol: 'tcp' });
    const config = parseEndpointPickerConfig(one(m, 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml']);
    expect(config.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')?.parameters).toMatchObject({ kvEventsConfig: { discoverPods: false, zmqEndpoint: 'tcp://*:5557' } });
    expect(() => synthProps(withOverrides(DEMO, { decode: { kvEvents: { mode: 'central' } }, endpointPicker: { replicas: 2 } })))
      .toThrow(/^EndpointPicker\.replicas: must be 1 with central KV events/);
  });

  test('full-duplex request bodies: a filter that sends nothing, turned on per virtual host (loads on Istio 1.27.0 with fail-open)', () => {
    const m = synthProps(withOverrides(DEMO, { extProc: { requestBodyMode: 'full-duplex' } }));
    const filter = one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc');
    const cfg = filter.spec.configPatches[0].patch.value.typed_config;
    expect(cfg.processing_mode).toMatchObject({ request_header_mode: 'SKIP', request_body_mode: 'NONE', response_header_mode: 'SKIP' });
    const vhost = filter.spec.configPatches.find((p: { applyTo: string }) => p.applyTo === 'VIRTUAL_HOST');
    expect(vhost.match.routeConfiguration.vhost).toEqual({ name: 'llm-d.demo.local:80' });
    expect(vhost.patch.value.typed_per_filter_config['envoy.filters.http.ext_proc'].overrides).toEqual({
      failure_mode_allow: true,
      processing_mode: {
        request_header_mode: 'SEND', request_body_mode: 'FULL_DUPLEX_STREAMED', request_trailer_mode: 'SEND',
        response_header_mode: 'SEND', response_body_mode: 'NONE', response_trailer_mode: 'SEND',
      },
    });
    expect(filter.spec.configPatches.some((p: { applyTo: string }) => p.applyTo === 'LISTENER')).toBe(false);
    expect(container(one(m, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').args).toContain('--request-body-mode=full-duplex');
  });

  test('prod-native-istio routes /v1 to the v1 InferencePool and lets Istio call the EPP: no ext_proc EnvoyFilter, no DestinationRule, the EPP\'s cluster kept', () => {
    const m = synthProfile(clusterProfile('prod-native-istio'));
    expect(one(m, 'HTTPRoute', 'llm-d-gateway').spec.rules[0].backendRefs).toEqual([
      { group: 'inference.networking.k8s.io', kind: 'InferencePool', name: 'ms-llm-d-modelservice', weight: 1 },
    ]);
    expect(one(m, 'HTTPRoute', 'llm-d-gateway-models').spec.rules[0].backendRefs[0].kind).toBe('Service');
    expect(one(m, 'InferencePool').apiVersion).toBe('inference.networking.k8s.io/v1');
    // No ext_proc filter of kvroute's: only the gateway timeouts, and a filter without patches whose annotation keeps the
    // EPP's cluster on gateways that receive only their routes' clusters (PILOT_FILTER_GATEWAY_CLUSTER_CONFIG).
    expect(all(m, 'EnvoyFilter').map((f) => f.metadata.name).sort()).toEqual(['llm-d-gateway-timeouts', 'ms-llm-d-modelservice-epp-cluster-reference']);
    const reference = one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-cluster-reference');
    expect(reference.spec.configPatches).toEqual([]);
    expect(reference.metadata.annotations).toEqual({ 'envoyfilter.istio.io/referenced-services': 'llm-d/ms-llm-d-modelservice-epp.llm-d.svc.cluster.local' });
    expect(all(m, 'DestinationRule')).toHaveLength(0);
    const args = container(one(m, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').args;
    expect(args).toEqual(expect.arrayContaining(['--request-body-mode=full-duplex', '--response-body-mode=full-duplex', '--pool-group=inference.networking.k8s.io']));
  });

  test('monitoring can be left out for clusters without the Prometheus Operator', () => {
    const m = synthProps(withOverrides(DEMO, { monitoring: { enabled: false } }));
    for (const kind of ['PodMonitor', 'ServiceMonitor', 'PrometheusRule']) expect(all(m, kind)).toHaveLength(0);
  });
});
