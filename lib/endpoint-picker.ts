import { createHash } from 'crypto';
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import {
  defaultEndpointPickerConfig, EndpointPickerConfig, preciseEndpointPickerConfig, renderEndpointPickerConfig,
  validateEndpointPickerConfig, type PreciseDefaults,
} from '@kvroute/epp/config';
import * as eppPackage from '@kvroute/epp/package.json';
import type { RequestBodyMode } from './ext-proc';
import { hardenedContainerSecurityContext, PodSecurityException, RUNTIME_DEFAULT_SECCOMP } from './pod-security';
import {
  checkDnsLabel, checkDnsSubdomain, checkDuration, checkImage, checkInteger, checkOneOf, PropsError,
} from './validation';

/** API group of the InferencePool the EPP reads: GIE v0.5 (llm-d v0.2, Istio 1.27) or GIE v1 (Istio >= 1.28). */
export type InferencePoolApiGroup = 'inference.networking.x-k8s.io' | 'inference.networking.k8s.io';

/** Props of {@link EndpointPicker}. */
export interface EndpointPickerProps {
  /** Namespace of every object; the EPP watches pods and its InferencePool only here. */
  readonly namespace: string;
  /**
   * Name of the Deployment, Service, ServiceAccount, Role and ConfigMap. The EnvoyFilter's gRPC cluster is derived
   * from it (`outbound|9002||<name>.<namespace>.svc.cluster.local`).
   */
  readonly name: string;
  /** Name of the InferencePool the EPP reads (its selector and target port define the endpoints). */
  readonly poolName: string;
  /** @default 'inference.networking.x-k8s.io' (InferencePool v1alpha2) */
  readonly poolApiGroup?: InferencePoolApiGroup;
  /**
   * The request body mode the gateway's ext_proc filter uses, passed as `--request-body-mode` for Envoys that send no
   * `protocol_config`; `ExtProcRouting` refuses a filter whose mode differs.
   * @default 'buffered'
   */
  readonly requestBodyMode?: RequestBodyMode;
  /**
   * Full image reference; overrides `imageRegistry`.
   * @default `${imageRegistry}/kvroute-epp:<version in epp/package.json>`
   */
  readonly image?: string;
  /** Registry the kvroute EPP image is pushed to. @default 'ghcr.io/kvroute' */
  readonly imageRegistry?: string;
  /**
   * The scheduling configuration, typed by the EPP's own config module and validated with its loader at synth time.
   * @default kvroute's default (prefix cache + load + session affinity; see epp/src/config), with the precise
   *   prefix-cache scorer in place of the approximate one when `precise` is set
   */
  readonly config?: EndpointPickerConfig;
  /**
   * The decode pods publish vLLM KV events: the default config scores prefixes from them (`precise-prefix-cache-scorer`,
   * wired to these ports, block size and model). `KvAwareRouting` sets it from the decode pool.
   * @default approximate prefix scoring
   */
  readonly precise?: PreciseDefaults;
  /**
   * A PersistentVolumeClaim holding the Hugging Face hub cache with the model's tokenizer files (the precise scorer
   * tokenizes prompts exactly as vLLM does), mounted read-only; `HF_HUB_CACHE` points at its `hub/` folder. Not
   * needed for Qwen3 models, whose tokenizer the EPP image carries.
   * @default none
   */
  readonly tokenizerCacheClaim?: string;
  /**
   * How often the EPP scrapes each pod's `/metrics`.
   * @default '50ms'
   */
  readonly refreshMetricsInterval?: string;
  /**
   * EPP replicas. Each replica keeps its own prefix index and session table, so more than one splits what the
   * scheduler learns; raise it only for availability.
   * @default 1
   */
  readonly replicas?: number;
  /** @default '1' */
  readonly cpu?: string;
  /** @default '1Gi' */
  readonly memory?: string;
}

const SCOPE = 'EndpointPicker';

/**
 * The kvroute Endpoint Picker: Deployment, Service (ext_proc gRPC, health, metrics), least-privilege RBAC and the
 * ConfigMap holding its `EndpointPickerConfig`. Exposes the Service and ports the InferencePool and EnvoyFilter use.
 */
export class EndpointPicker extends Construct {
  public static readonly GRPC_PORT = 9002;
  public static readonly HEALTH_PORT = 9003;
  public static readonly METRICS_PORT = 9090;
  public static readonly GRPC_PORT_NAME = 'grpc-ext-proc';
  public static readonly HEALTH_PORT_NAME = 'grpc-health';
  public static readonly METRICS_PORT_NAME = 'http-metrics';
  /** Central KV-event mode: the port the EPP binds for the pods' vLLM publishers to connect to. */
  public static readonly KV_EVENTS_PORT_NAME = 'tcp-kv-events';
  /** gRPC health service the readiness probe asks: SERVING once the pool has synced and endpoints are known. */
  public static readonly READINESS_SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';
  /** gRPC health service the liveness probe asks: SERVING while the process runs, so an empty pool never restarts it. */
  public static readonly LIVENESS_SERVICE = 'liveness';
  /** Drain time the EPP gets on SIGTERM (its --shutdown-grace-period). */
  public static readonly SHUTDOWN_GRACE_SECONDS = 120;
  private static readonly CONFIG_DIR = '/config';
  private static readonly HF_CACHE_DIR = '/hf-cache';
  private static readonly CONFIG_FILE = 'epp-config.yaml';

  public readonly namespace: string;
  public readonly name: string;
  public readonly poolName: string;
  public readonly poolApiGroup: InferencePoolApiGroup;
  public readonly requestBodyMode: RequestBodyMode;
  public readonly image: string;
  public readonly config: EndpointPickerConfig;
  public readonly deployment: k8s.KubeDeployment;
  public readonly service: k8s.KubeService;
  public readonly serviceAccount: k8s.KubeServiceAccount;
  public readonly configMap: k8s.KubeConfigMap;
  public readonly serviceName: string;
  public readonly serviceFqdn: string;
  public readonly grpcPort = EndpointPicker.GRPC_PORT;
  public readonly metricsPort = EndpointPicker.METRICS_PORT;
  public readonly podLabels: Readonly<Record<string, string>>;
  /** The port the EPP binds for central KV events; undefined unless the pods connect to it. */
  public readonly kvEventsPort?: number;
  /** None: the EPP pod meets every control of the Pod Security "restricted" profile and has a read-only root. */
  public readonly podSecurityExceptions: readonly PodSecurityException[] = [];

  constructor(scope: Construct, id: string, props: EndpointPickerProps) {
    super(scope, id);
    this.namespace = checkDnsLabel(SCOPE, 'namespace', props.namespace);
    this.name = checkDnsLabel(SCOPE, 'name', props.name);
    this.poolName = checkDnsSubdomain(SCOPE, 'poolName', props.poolName);
    this.poolApiGroup = props.poolApiGroup ?? 'inference.networking.x-k8s.io';
    if (!['inference.networking.x-k8s.io', 'inference.networking.k8s.io'].includes(this.poolApiGroup)) {
      throw new PropsError(SCOPE, 'poolApiGroup', 'must be "inference.networking.x-k8s.io" or "inference.networking.k8s.io"', this.poolApiGroup);
    }
    this.requestBodyMode = checkOneOf(SCOPE, 'requestBodyMode', props.requestBodyMode ?? 'buffered', ['buffered', 'full-duplex'] as const);
    const registry = props.imageRegistry ?? 'ghcr.io/kvroute';
    this.image = checkImage(SCOPE, props.image ? 'image' : 'imageRegistry', props.image ?? `${registry}/kvroute-epp:${eppPackage.version}`);
    const refresh = checkDuration(SCOPE, 'refreshMetricsInterval', props.refreshMetricsInterval ?? '50ms');
    const replicas = checkInteger(SCOPE, 'replicas', props.replicas ?? 1, 1, 10);
    try {
      // The EPP's own loader: a config that would crash the EPP at start-up fails synth instead.
      this.config = validateEndpointPickerConfig(props.config ?? (props.precise ? preciseEndpointPickerConfig(props.precise) : defaultEndpointPickerConfig()));
    } catch (e) {
      throw new PropsError(SCOPE, 'config', `must be a valid EndpointPickerConfig (${(e as Error).message})`, '(see above)');
    }
    const configYaml = renderEndpointPickerConfig(this.config);
    if (props.precise?.mode === 'central') {
      const port = /:(\d+)$/.exec(props.precise.zmqEndpoint ?? 'tcp://*:5557');
      this.kvEventsPort = Number(port![1]);
      if (replicas > 1) throw new PropsError(SCOPE, 'replicas', 'must be 1 with central KV events (each vLLM publishes to one subscriber); use per-pod events for more', replicas);
    }

    this.serviceName = this.name;
    this.serviceFqdn = `${this.name}.${this.namespace}.svc.cluster.local`;
    this.podLabels = { 'llm-d.ai/epp': this.name };
    const metadata = { name: this.name, namespace: this.namespace, labels: { ...this.podLabels } };

    this.serviceAccount = new k8s.KubeServiceAccount(this, 'ServiceAccount', { metadata });
    new k8s.KubeRole(this, 'Role', {
      metadata,
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [this.poolApiGroup], resources: ['inferencepools'], verbs: ['get', 'list', 'watch'] },
      ],
    });
    new k8s.KubeRoleBinding(this, 'RoleBinding', {
      metadata,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: this.name },
      subjects: [{ kind: 'ServiceAccount', name: this.name, namespace: this.namespace }],
    });
    this.configMap = new k8s.KubeConfigMap(this, 'ConfigMap', {
      metadata,
      data: { [EndpointPicker.CONFIG_FILE]: configYaml },
    });

    const grpcProbe = (service: string, periodSeconds: number): k8s.Probe => ({
      grpc: { port: EndpointPicker.HEALTH_PORT, service },
      initialDelaySeconds: 2,
      periodSeconds,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });

    this.deployment = new k8s.KubeDeployment(this, 'Deployment', {
      metadata,
      spec: {
        replicas,
        selector: { matchLabels: { ...this.podLabels } },
        template: {
          metadata: {
            labels: { ...this.podLabels },
            // A config change must restart the EPP: it reads the file once at start-up.
            annotations: { 'kvroute.dev/config-sha256': createHash('sha256').update(configYaml).digest('hex') },
          },
          spec: {
            serviceAccountName: this.name,
            // The EPP watches pods and its InferencePool: it needs its token (and the Role above, nothing more).
            automountServiceAccountToken: true,
            // An ext_proc stream lasts as long as its HTTP exchange, so a rollout waits for generations in flight:
            // --shutdown-grace-period plus a margin.
            terminationGracePeriodSeconds: EndpointPicker.SHUTDOWN_GRACE_SECONDS + 10,
            // Pod Security "restricted" (see lib/pod-security.ts): the image runs as USER 65532:65532 (Dockerfile).
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: RUNTIME_DEFAULT_SECCOMP },
            containers: [{
              name: 'epp',
              image: this.image,
              imagePullPolicy: 'IfNotPresent',
              args: [
                `--pool-name=${this.poolName}`,
                `--pool-namespace=${this.namespace}`,
                `--pool-group=${this.poolApiGroup}`,
                `--grpc-port=${EndpointPicker.GRPC_PORT}`,
                `--grpc-health-port=${EndpointPicker.HEALTH_PORT}`,
                `--metrics-port=${EndpointPicker.METRICS_PORT}`,
                `--config-file=${EndpointPicker.CONFIG_DIR}/${EndpointPicker.CONFIG_FILE}`,
                `--refresh-metrics-interval=${refresh}`,
                `--shutdown-grace-period=${EndpointPicker.SHUTDOWN_GRACE_SECONDS}s`,
                `--request-body-mode=${this.requestBodyMode}`,
              ],
              ports: [
                { name: EndpointPicker.GRPC_PORT_NAME, containerPort: EndpointPicker.GRPC_PORT, protocol: 'TCP' },
                { name: EndpointPicker.HEALTH_PORT_NAME, containerPort: EndpointPicker.HEALTH_PORT, protocol: 'TCP' },
                { name: EndpointPicker.METRICS_PORT_NAME, containerPort: EndpointPicker.METRICS_PORT, protocol: 'TCP' },
                ...(this.kvEventsPort !== undefined ? [{ name: EndpointPicker.KV_EVENTS_PORT_NAME, containerPort: this.kvEventsPort, protocol: 'TCP' }] : []),
              ],
              resources: {
                requests: { cpu: k8s.Quantity.fromString(props.cpu ?? '1'), memory: k8s.Quantity.fromString(props.memory ?? '1Gi') },
                limits: { memory: k8s.Quantity.fromString(props.memory ?? '1Gi') },
              },
              readinessProbe: grpcProbe(EndpointPicker.READINESS_SERVICE, 5),
              livenessProbe: grpcProbe(EndpointPicker.LIVENESS_SERVICE, 10),
              securityContext: {
                ...hardenedContainerSecurityContext(),
                readOnlyRootFilesystem: true,
              },
              volumeMounts: [
                { name: 'config', mountPath: EndpointPicker.CONFIG_DIR, readOnly: true },
                ...(props.tokenizerCacheClaim ? [{ name: 'hf-cache', mountPath: EndpointPicker.HF_CACHE_DIR, readOnly: true }] : []),
              ],
              ...(props.tokenizerCacheClaim ? { env: [{ name: 'HF_HUB_CACHE', value: `${EndpointPicker.HF_CACHE_DIR}/hub` }] } : {}),
            }],
            volumes: [
              { name: 'config', configMap: { name: this.name } },
              ...(props.tokenizerCacheClaim ? [{ name: 'hf-cache', persistentVolumeClaim: { claimName: props.tokenizerCacheClaim, readOnly: true } }] : []),
            ],
          },
        },
      },
    });

    this.service = new k8s.KubeService(this, 'Service', {
      metadata,
      spec: {
        type: 'ClusterIP',
        selector: { ...this.podLabels },
        ports: [
          // appProtocol http2: Istio must build an HTTP/2 cluster for gRPC, or ext_proc calls fail.
          { name: EndpointPicker.GRPC_PORT_NAME, port: EndpointPicker.GRPC_PORT, targetPort: k8s.IntOrString.fromString(EndpointPicker.GRPC_PORT_NAME), protocol: 'TCP', appProtocol: 'http2' },
          { name: EndpointPicker.HEALTH_PORT_NAME, port: EndpointPicker.HEALTH_PORT, targetPort: k8s.IntOrString.fromString(EndpointPicker.HEALTH_PORT_NAME), protocol: 'TCP', appProtocol: 'http2' },
          { name: EndpointPicker.METRICS_PORT_NAME, port: EndpointPicker.METRICS_PORT, targetPort: k8s.IntOrString.fromString(EndpointPicker.METRICS_PORT_NAME), protocol: 'TCP', appProtocol: 'http' },
          // Central KV events: every vLLM connects here. ZMTP is not HTTP: Istio must pass it through as TCP.
          ...(this.kvEventsPort !== undefined
            ? [{ name: EndpointPicker.KV_EVENTS_PORT_NAME, port: this.kvEventsPort, targetPort: k8s.IntOrString.fromString(EndpointPicker.KV_EVENTS_PORT_NAME), protocol: 'TCP', appProtocol: 'tcp' }]
            : []),
        ],
      },
    });
  }

  /** The Envoy cluster Istio builds for the EPP's gRPC port, which the ext_proc filter calls. */
  public get grpcClusterName(): string {
    return `outbound|${this.grpcPort}||${this.serviceFqdn}`;
  }
}
