/**
 * Every prop fed values at and just past the boundary its real consumer draws: what the API server, the CRDs or vLLM
 * accept must synthesize (and pass the repo's schema validation and the API server's name and key rules below); what
 * they refuse must fail at construction, with a message naming the field and what is allowed. Both directions: a
 * value refused here that the consumer takes is a regression too.
 */
import { Testing } from 'cdk8s';
import { checkEnvoyConfig } from '@kvroute/testkit';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import { parseArgs } from '@kvroute/epp/cli';
import { DEMO, Overrides, withOverrides } from '../lib/clusters';
import { vllmHumanReadableInt } from '../lib/decode-pool';
import { KvAwareRouting, KvAwareRoutingProps } from '../lib/kv-aware-routing';
import { valkeyMemoryBytes } from '../lib/session-store';
import { Manifest, synthProps } from './support/manifests';
import { ManifestValidator } from './support/schema';

const validator = new ManifestValidator();
const envoyApi = loadEnvoyApi([
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/config/route/v3/route_components.proto',
  'envoy/config/listener/v3/listener.proto',
]);

/** What Envoy's JSON parser and PGV rules refuse in an EnvoyFilter's patches (as test/envoy-filter.test.ts checks them). */
function envoyErrors(m: Manifest): string[] {
  if (m.kind !== 'EnvoyFilter') return [];
  const types: Record<string, string> = {
    HTTP_FILTER: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
    NETWORK_FILTER: 'envoy.config.listener.v3.Filter',
    LISTENER: 'envoy.config.listener.v3.Listener',
    CLUSTER: 'envoy.config.cluster.v3.Cluster',
    VIRTUAL_HOST: 'envoy.config.route.v3.VirtualHost',
    HTTP_ROUTE: 'envoy.config.route.v3.Route',
  };
  return (m.spec.configPatches as { applyTo: string; patch: { operation: string; value?: Record<string, unknown> } }[]).flatMap((p) => {
    if (p.patch.value === undefined) return [];
    const mergePatch = p.patch.operation === 'MERGE';
    const typed = p.patch.value.typed_config as ({ '@type'?: string } & Record<string, unknown>) | undefined;
    // Istio merges a network filter's typed_config into the generated one of the same @type: a partial message.
    if (p.applyTo === 'NETWORK_FILTER' && mergePatch && typed?.['@type'] !== undefined) {
      const { '@type': url, ...payload } = typed;
      return checkEnvoyConfig(envoyApi.root, envoyApi.lookupTypeByUrl(url!)!.fullName.replace(/^\./, ''), payload, { mergePatch });
    }
    const type = types[p.applyTo];
    if (type === undefined) return [`${m.metadata.name}: no Envoy message known for applyTo ${p.applyTo}`];
    return checkEnvoyConfig(envoyApi.root, type, p.patch.value, { mergePatch }).map((e) => `${m.metadata.name} ${p.applyTo}: ${e}`);
  });
}

/** apimachinery validation.go: IsDNS1123Subdomain, IsDNS1035Label, IsValidLabelValue, IsConfigMapKey. */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const isConfigMapKey = (k: string): boolean => k.length <= 253 && /^[-._a-zA-Z0-9]+$/.test(k) && k !== '.' && !k.startsWith('..');

/**
 * What the API server (and the Prometheus Operator, for the rule file it makes of a PrometheusRule) would refuse in
 * these objects' names, label values and keys, beyond the OpenAPI schemas (which carry no name rules).
 */
function apiServerErrors(m: Manifest): string[] {
  const id = `${m.kind}/${m.metadata.name}`;
  const errors: string[] = [];
  const name = m.metadata.name;
  // ValidateServiceName = NameIsDNS1035Label (63); every other kind here takes a DNS-1123 subdomain (253).
  if (m.kind === 'Service' ? !(name.length <= 63 && DNS1035_LABEL.test(name)) : !(name.length <= 253 && DNS1123_SUBDOMAIN.test(name))) errors.push(`${id}: name`);
  // ValidateNamespaceName = ValidateNameFunc(IsDNS1123Label): at most 63.
  if (m.kind === 'Namespace' && !(name.length <= 63 && DNS1123_LABEL.test(name))) errors.push(`${id}: namespace name`);
  for (const [k, v] of Object.entries(m.metadata.labels ?? {})) if (!(v.length <= 63 && LABEL_VALUE.test(v))) errors.push(`${id}: label ${k}`);
  const podLabels = m.spec?.template?.metadata?.labels as Record<string, string> | undefined;
  for (const [k, v] of Object.entries(podLabels ?? {})) if (!(v.length <= 63 && LABEL_VALUE.test(v))) errors.push(`${id}: pod label ${k}`);
  if (m.kind === 'ConfigMap') for (const k of Object.keys(m.data ?? {})) if (!isConfigMapKey(k)) errors.push(`${id}: data key ${k}`);
  // A pod's secretKeyRef.key: validateSecretKeySelector → IsConfigMapKey.
  for (const c of [...(m.spec?.template?.spec?.containers ?? []), ...(m.spec?.template?.spec?.initContainers ?? [])]) {
    for (const e of c.env ?? []) {
      const key = e.valueFrom?.secretKeyRef?.key as string | undefined;
      if (key !== undefined && !isConfigMapKey(key)) errors.push(`${id}: env ${e.name} secretKeyRef.key`);
    }
  }
  // prometheus-operator pkg/operator/rules.go @ v0.84.0: the rule file "<namespace>-<name>-<uid>.yaml", a ConfigMap key.
  if (m.kind === 'PrometheusRule' && !isConfigMapKey(`${m.metadata.namespace}-${name}-${'0'.repeat(36)}.yaml`)) errors.push(`${id}: rule file key`);
  return errors;
}

type Row = [string, Overrides<KvAwareRoutingProps>, RegExp | 'accepted'];

const rows: Row[] = [
  // Names and their derived objects (Service names: <name>-decode, <name>-epp; the gateway's <name>-<class>).
  ['name of 56 characters (<name>-decode, a Service name, of 63)', { name: 'n'.repeat(56) }, 'accepted'],
  ['name of 56 characters with native routing (the pool, and Istio\'s shadow Service, named after it)', { name: 'n'.repeat(56), istioVersion: '1.28', inferenceRouting: 'native' }, 'accepted'],
  ['name of 56 characters with every optional object (EPP replicas, a session store elsewhere, egress)', {
    name: 'n'.repeat(56), endpointPicker: { replicas: 2 }, decode: { kvEvents: {} },
    sessionStore: { existing: { host: 'cache', networkPeer: { podLabels: { app: 'cache' } } } },
    networkPolicy: { egress: { apiServer: [{ cidrs: ['10.96.0.1/32'], ports: [443] }] } },
  }, 'accepted'],
  ['name of 57 characters (<name>-decode of 64)', { name: 'n'.repeat(57) }, /^KvAwareRouting\.name: must be a DNS-1035 label .*at most 56 characters/],
  ['name starting with a digit (a Service name may not)', { name: '1pool' }, /^KvAwareRouting\.name: must be a DNS-1035 label/],
  ['namespace of 63 characters', { namespace: 'n'.repeat(63) }, 'accepted'],
  ['namespace of 64 characters', { namespace: 'n'.repeat(64) }, /^KvAwareRouting\.namespace: must be a DNS-1123 label/],
  ['gateway name of 57 characters (<name>-istio, 63)', { gateway: { name: 'g'.repeat(57) } }, 'accepted'],
  ['gateway name of 58 characters', { gateway: { name: 'g'.repeat(58) } }, /^InferenceGateway\.name: must be at most 57 characters with gatewayClassName "istio"/],
  // The PrometheusRule's rule file key in the operator's ConfigMap: namespace + poolName at most 202.
  ['poolName of 197 characters in llm-d (rule file key of 253)', { poolName: 'p'.repeat(197) }, 'accepted'],
  ['poolName of 198 characters in llm-d (rule file key of 254, IsConfigMapKey)', { poolName: 'p'.repeat(198) },
    /^Monitoring\.endpointPicker\.poolName: must be at most 197 characters with monitoring on in namespace "llm-d": the Prometheus Operator stores the PrometheusRule/],
  ['poolName of 253 characters without monitoring (the InferencePool\'s own limit)', { poolName: 'p'.repeat(253), monitoring: { enabled: false } }, 'accepted'],
  ['poolName of 254 characters', { poolName: 'p'.repeat(254), monitoring: { enabled: false } }, /^EndpointPicker\.poolName: must be a DNS-1123 subdomain/],

  // Ports (Gateway API PortNumber: 1 to 65535).
  ['listener port 1', { gateway: { port: 1 } }, 'accepted'],
  ['listener port 65535', { gateway: { port: 65535 } }, 'accepted'],
  ['listener port 0', { gateway: { port: 0 } }, /^InferenceGateway\.port: must be an integer from 1 to 65535, got 0$/],
  ['listener port 65536', { gateway: { port: 65536 } }, /^InferenceGateway\.port: must be an integer from 1 to 65535, got 65536$/],

  // vLLM 0.10.0: CacheConfig gpu_memory_utilization at most 1; --block-size choices on the default image's backend.
  ['gpuMemoryUtilization 1', { decode: { gpuMemoryUtilization: 1 } }, 'accepted'],
  ['gpuMemoryUtilization 1.01', { decode: { gpuMemoryUtilization: 1.01 } }, /^DecodePool\.gpuMemoryUtilization: must be a number greater than 0 and at most 1, got 1\.01$/],
  ['blockSize 128', { decode: { blockSize: 128 } }, 'accepted'],
  ['blockSize 256', { decode: { blockSize: 256 } }, /^DecodePool\.blockSize: must be one of 16, 32, 64, 128, got 256$/],

  // `vllm serve <model>`: a positional argument argparse must not take for an option.
  ['a model given as a path', { decode: { model: '/models/qwen3-0.6b' } }, 'accepted'],
  ['a model starting with "-"', { decode: { model: '-Qwen3-0.6B' } }, /^DecodePool\.model: must be a non-empty model id without spaces, not starting with "-", .*, got "-Qwen3-0\.6B"$/],

  // vLLM SchedulerConfig._verify_args @ v0.10.0: max_num_batched_tokens >= max_num_seqs, the batched tokens read by
  // human_readable_int (vLLM #18968, 0.9.1: k/m/g decimal, K/M/G binary).
  ['maxNumSeqs 512 with 512 batched tokens', { decode: { maxNumSeqs: 512, extraArgs: ['--max-num-batched-tokens=512'] } }, 'accepted'],
  ['maxNumSeqs 512 with 511 batched tokens, which vLLM refuses at start-up', { decode: { maxNumSeqs: 512, extraArgs: ['--max-num-batched-tokens', '511'] } },
    /^DecodePool\.maxNumSeqs: must be at most the --max-num-batched-tokens in extraArgs \("511", 511 tokens\): vLLM refuses max_num_batched_tokens < max_num_seqs at start-up .*, got 512$/],
  ['maxNumSeqs 4096 with "4K" batched tokens (4096, as vLLM reads it)', { decode: { maxNumSeqs: 4096, extraArgs: ['--max-num-batched-tokens=4K'] } }, 'accepted'],
  ['maxNumSeqs 4096 with "4.1k" batched tokens (4100)', { decode: { maxNumSeqs: 4096, extraArgs: ['--max-num-batched-tokens=4.1k'] } }, 'accepted'],
  ['maxNumSeqs 4096 with "4k" batched tokens (4000)', { decode: { maxNumSeqs: 4096, extraArgs: ['--max-num-batched-tokens=4k'] } },
    /^DecodePool\.maxNumSeqs: must be at most the --max-num-batched-tokens in extraArgs \("4k", 4000 tokens\)/],
  ['batched tokens "4.5K" (no decimals with a binary suffix)', { decode: { extraArgs: ['--max-num-batched-tokens=4.5K'] } },
    /^DecodePool\.extraArgs: --max-num-batched-tokens must be a whole number, or one with a suffix vLLM 0\.10 reads .*, got "4\.5K"$/],

  // Secret keys (IsConfigMapKey, which a pod's secretKeyRef.key must pass).
  ['a Secret key of 253 characters', { decode: { hfTokenSecret: { name: 'hf', key: 'k'.repeat(253) } } }, 'accepted'],
  ['a Secret key starting with one dot', { decode: { hfTokenSecret: { name: 'hf', key: '.token' } } }, 'accepted'],
  ['a Secret key of 254 characters', { decode: { hfTokenSecret: { name: 'hf', key: 'k'.repeat(254) } } }, /^DecodePool\.hfTokenSecret\.key: must be a Secret key/],
  ['a Secret key "."', { decode: { hfTokenSecret: { name: 'hf', key: '.' } } },
    /^DecodePool\.hfTokenSecret\.key: must be a Secret key \(at most 253 alphanumerics, '-', '_' or '\.'; not '\.', not starting with '\.\.'\), got "\."$/],
  ['a Secret key starting with ".."', { sessionStore: { existing: { host: 'cache', passwordSecret: { name: 'auth', key: '..password' } } } },
    /^SessionStore\.existing\.passwordSecret\.key: must be a Secret key \(.*not starting with '\.\.'\), got "\.\.password"$/],

  // A DestinationRule's outlier detection (networking.istio.io @ 1.27.0 CRD: duration(self) >= duration('1ms'); istiod's
  // agent.ValidateDuration: whole milliseconds).
  ['EPP outlier detection interval 1ms', { endpointPicker: { replicas: 2 }, extProc: { eppOutlierDetection: { interval: '1ms', baseEjectionTime: '1.5s' } } }, 'accepted'],
  ['EPP outlier detection interval 0s', { endpointPicker: { replicas: 2 }, extProc: { eppOutlierDetection: { interval: '0s' } } },
    /^ExtProcRouting\.eppOutlierDetection\.interval: must be a duration of at least 1ms in whole milliseconds, .*, got "0s"$/],
  ['EPP outlier detection baseEjectionTime 1.0005s (finer than a millisecond)', { endpointPicker: { replicas: 2 }, extProc: { eppOutlierDetection: { baseEjectionTime: '1.0005s' } } },
    /^ExtProcRouting\.eppOutlierDetection\.baseEjectionTime: must be a duration of at least 1ms in whole milliseconds/],

  // Envoy's ext_proc message_timeout: (validate.rules).duration lte 3600s (ext_proc.proto @ v1.35.0).
  ['ext_proc messageTimeout 1h (max_message_timeout off)', { extProc: { messageTimeout: '1h', maxMessageTimeout: '0s' } }, 'accepted'],
  ['ext_proc messageTimeout 3600.001s (max_message_timeout off)', { extProc: { messageTimeout: '3600.001s', maxMessageTimeout: '0s' } },
    /^ExtProcRouting\.messageTimeout: must be at most 1h \(Envoy's bound for the ext_proc filter's message_timeout; .*\), got "3600\.001s"$/],
  ['ext_proc messageTimeout 2h with full-duplex bodies (no timer runs, the bound still holds)', { extProc: { requestBodyMode: 'full-duplex', messageTimeout: '2h' } },
    /^ExtProcRouting\.messageTimeout: must be at most 1h/],

  // The EPP's --refresh-metrics-interval, as its CLI reads it (epp/src/cli.ts: Go-style units h to ns, above 0).
  ['refreshMetricsInterval ".5s"', { endpointPicker: { refreshMetricsInterval: '.5s' } }, 'accepted'],
  ['refreshMetricsInterval "500us"', { endpointPicker: { refreshMetricsInterval: '500us' } }, 'accepted'],
  ['refreshMetricsInterval "0us"', { endpointPicker: { refreshMetricsInterval: '0us' } }, /^EndpointPicker\.refreshMetricsInterval: must be a duration above 0/],
  ['refreshMetricsInterval "50 ms"', { endpointPicker: { refreshMetricsInterval: '50 ms' } }, /^EndpointPicker\.refreshMetricsInterval: must be a duration such as "50ms"/],

  // Quantities in core objects, as apimachinery ParseQuantity reads them (pkg/api/resource/quantity.go).
  ['memory with a whole exponent "3e+10"', { decode: { memory: '3e+10' } }, 'accepted'],
  ['memory with a fractional exponent "3e10.5" (ParseQuantity: ErrFormatWrong)', { decode: { memory: '3e10.5' } },
    /^DecodePool\.memory: must be a Kubernetes quantity that is not negative, such as "500m", "4", "32Gi" or "1\.5G", got "3e10\.5"$/],
  ['EPP cpu with a fractional exponent ".5e.5"', { endpointPicker: { cpu: '.5e.5' } }, /^EndpointPicker\.cpu: must be a Kubernetes quantity/],

  // Valkey's --maxmemory (memtoull, src/util.c: bytes, k/m/g powers of 1000, kb/mb/gb of 1024, any case), at least 16mb.
  ['Valkey maxMemory in bytes, 16 MiB', { sessionStore: { deploy: { maxMemory: String(16 * 2 ** 20) } } }, 'accepted'],
  ['Valkey maxMemory "1GB" (upper case)', { sessionStore: { deploy: { maxMemory: '1GB' } } }, 'accepted'],
  ['Valkey maxMemory "200m" (200,000,000 bytes)', { sessionStore: { deploy: { maxMemory: '200m' } } }, 'accepted'],
  ['Valkey maxMemory one byte under 16 MiB', { sessionStore: { deploy: { maxMemory: String(16 * 2 ** 20 - 1) } } }, /^SessionStore\.deploy\.maxMemory: must be Valkey memory, .*at least 16mb/],
  ['Valkey maxMemory "1.5gb" (memtoull takes whole numbers)', { sessionStore: { deploy: { maxMemory: '1.5gb' } } }, /^SessionStore\.deploy\.maxMemory: must be Valkey memory/],

  // Label values (IsValidLabelValue: at most 63).
  ['a nodeSelector value of 63 characters', { decode: { nodeSelector: { 'example.com/gpu': 'v'.repeat(63) } } }, 'accepted'],
  ['a nodeSelector value of 64 characters', { decode: { nodeSelector: { 'example.com/gpu': 'v'.repeat(64) } } }, /^DecodePool\.nodeSelector: must be a map of Kubernetes labels/],

  // IsValidUserID: 0 to 2147483647 (0 refused here: runAsNonRoot).
  ['runAsUser 2147483647', { decode: { runAsUser: 2147483647 } }, 'accepted'],
  ['runAsUser 2147483648', { decode: { runAsUser: 2147483648 } }, /^DecodePool\.runAsUser: must be an integer from 1 to 2147483647, got 2147483648$/],
];

describe('props at and past each boundary of their consumer (Kubernetes apimachinery, the CRDs, prometheus-operator v0.84.0, vLLM 0.10.0)', () => {
  test.each(rows)('%s', (_what, overrides, expected) => {
    const props = withOverrides(DEMO, overrides);
    if (expected === 'accepted') {
      const manifests = synthProps(props);
      expect(manifests.flatMap((m) => [...validator.validate(m), ...apiServerErrors(m), ...envoyErrors(m)])).toEqual([]);
      // The EPP's own command line parser (epp/src/cli.ts) takes the flags the Deployment passes.
      const epp = manifests.find((m) => m.kind === 'Deployment' && m.spec.template.spec.containers[0].name === 'epp')!;
      expect(() => parseArgs(epp.spec.template.spec.containers[0].args)).not.toThrow();
    } else {
      expect(() => new KvAwareRouting(Testing.app(), 'test', props)).toThrow(expected);
    }
  });
});

describe('--max-num-batched-tokens as vLLM 0.10 reads it (human_readable_int, vllm/engine/arg_utils.py)', () => {
  test.each<[string, number | undefined]>([
    ['8192', 8192], [' 8192 ', 8192], ['8_192', 8192], ['+64', 64],
    ['1k', 1000], ['1K', 1024], ['25.6k', 25600], ['2m', 2_000_000], ['2M', 2 * 2 ** 20], ['1g', 1e9], ['1G', 2 ** 30],
    ['1.5K', undefined], ['1t', undefined], ['1T', undefined], ['8Ki', undefined], ['8 k', undefined], ['', undefined], ['1e4', undefined], ['8__192', undefined],
  ])('%j reads as %p', (value, expected) => {
    expect(vllmHumanReadableInt(value)).toBe(expected);
  });
});

describe('Valkey memory as Valkey reads --maxmemory (memtoull, src/util.c)', () => {
  test.each<[string, number | undefined]>([
    ['201326592', 201_326_592], ['192mb', 192 * 2 ** 20], ['192MB', 192 * 2 ** 20], ['1Gb', 2 ** 30], ['200m', 2e8], ['5k', 5000], ['5KB', 5120], ['7b', 7],
    ['1.5gb', undefined], ['1gib', undefined], ['-1mb', undefined], [' 1mb', undefined],
  ])('%j reads as %p bytes', (value, expected) => {
    expect(valkeyMemoryBytes(value)).toBe(expected);
  });

  test('the container\'s memory limit is maxMemory in MiB, rounded up, plus 64 MiB', () => {
    const limit = (maxMemory: string): string => {
      const sts = synthProps(withOverrides(DEMO, { sessionStore: { deploy: { maxMemory } } })).find((m) => m.kind === 'StatefulSet')!;
      return sts.spec.template.spec.containers[0].resources.limits.memory;
    };
    expect(limit('192mb')).toBe('256Mi');
    expect(limit('200m')).toBe(`${Math.ceil(2e8 / 2 ** 20) + 64}Mi`);
  });
});
