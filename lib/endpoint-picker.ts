import { createHash } from 'crypto';
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import {
  defaultEndpointPickerConfig, EndpointPickerConfig, preciseEndpointPickerConfig, renderEndpointPickerConfig,
  validateEndpointPickerConfig, withLoraRoomFilter, withMaxNumSeqs, type PreciseDefaults,
  EPP_NODE_ARGS, parseDuration,
} from '@kvroute/epp/config';
import * as eppPackage from '@kvroute/epp/package.json';
import { hasBundledTokenizer } from '@kvroute/tokenizer/bundled';
import type { RequestBodyMode } from './ext-proc';
import { ROUTING_SIDECAR_CLIENT_HEADERS } from './gateway';
import { hardenedContainerSecurityContext, PodSecurityException, RUNTIME_DEFAULT_SECCOMP } from './pod-security';
import { checkSecretKeyReference, SESSION_STORE_PASSWORD_ENV, type SecretKeyReference, type SessionStoreConnection } from './session-store';
import {
  checkClusterDomain, checkDns1035Label, checkDnsLabel, checkDnsSubdomain, checkDuration, checkImage, checkInteger, checkOneOf, checkQuantity, durationMs, PropsError,
} from './validation';

/**
 * The response body mode the EPP assumes when Envoy sends no `protocol_config` (`--response-body-mode`): `none` under
 * kvroute's EnvoyFilter (response bodies NONE, trailers SEND), `full-duplex` under Istio's native InferencePool routing.
 */
export type ResponseBodyMode = 'none' | 'full-duplex';

/** API group of the InferencePool the EPP reads: GIE v0.5 (llm-d v0.2, Istio 1.27) or GIE v1 (Istio >= 1.28). */
export type InferencePoolApiGroup = 'inference.networking.x-k8s.io' | 'inference.networking.k8s.io';

/** Props of {@link EndpointPicker}. */
export interface EndpointPickerProps {
  /** Namespace of every object; the EPP watches pods and its InferencePool only here. */
  readonly namespace: string;
  /**
   * Name of the Deployment, Service, ServiceAccount, Role and ConfigMap. The EnvoyFilter's gRPC cluster is derived
   * from it (`outbound|9002||<name>.<namespace>.svc.<clusterDomain>`). A DNS-1035 label (it is the Service's name).
   * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#rfc-1035-label-names
   */
  readonly name: string;
  /**
   * The cluster's DNS domain: the EnvoyFilter's gRPC cluster and the DestinationRule name the Service `<name>.<namespace>.svc.<clusterDomain>`,
   * as Istio names it (istiod's `--domain`, Istio's `global.proxy.clusterDomain`).
   * @default 'cluster.local'
   * @see https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/
   */
  readonly clusterDomain?: string;
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
   * The response body mode the gateway's ext_proc filter uses, passed as `--response-body-mode` for Envoys that send no
   * `protocol_config`: `none` for kvroute's EnvoyFilter (`ExtProcRouting` refuses anything else), `full-duplex` under
   * Istio's native InferencePool routing, whose per-route `ExtProcPerRoute` streams response bodies FULL_DUPLEX_STREAMED
   * (istio/istio `pilot/pkg/networking/core/route/route.go` L540 @ 1.28.0, unchanged at 1.30.0). `KvAwareRouting` sets
   * it from the routing mode.
   * @default 'none'
   */
  readonly responseBodyMode?: ResponseBodyMode;
  /**
   * The gateway ext_proc filter's `max_message_timeout`, passed as `--ext-proc-max-message-timeout`: a request that
   * waits in flow control asks Envoy to hold its answer that long. `KvAwareRouting` sets it from
   * `extProc.maxMessageTimeout`; `ExtProcRouting` refuses a filter whose value differs. Above 0 and at most 1h,
   * as the EPP's flag takes it.
   * @default undefined (the EPP never asks; Envoy's message_timeout bounds a flow-control wait)
   * @see https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/ext_proc/v3/ext_proc.proto
   */
  readonly extProcMaxMessageTimeout?: string;
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
   * wired to these ports, block size and model). `KvAwareRouting` sets it from the decode pool. In `central` mode the
   * EPP binds `zmqEndpoint`'s port, which must be from 1 to 65535 and none of its own (9002, 9003, 9090).
   * @default approximate prefix scoring
   * @see epp/README.md "Precise prefix-cache routing"
   */
  readonly precise?: PreciseDefaults;
  /**
   * The LoRA adapters the decode pods serve: the built-in config gets kvroute's `lora-room-filter` for them
   * (`withLoraRoomFilter`), so a request for one skips the pods whose `--max-loras` other adapters hold, where vLLM would
   * make it wait, and the default scorers choose among the rest. Not applied to a `config` given here; an empty list
   * adds nothing. `KvAwareRouting` sets the names of `decode.loraAdapters` (the precise scorer's id-to-name order comes
   * from `precise.loraAdapters`, which it sets from the same list, whatever this one says).
   * @default none (no filter)
   */
  readonly loraAdapters?: readonly string[];
  /**
   * The decode pods' vLLM `--max-num-seqs`: the built-in config's `latency-scorer` gets it (`withMaxNumSeqs`), so a pod
   * already running that many requests is predicted to make the next one wait for a slot. Not applied to a `config`
   * given here. `KvAwareRouting` sets it from `decode.maxNumSeqs`.
   * @default the scorer's own, 1024 (vLLM 0.10's largest default)
   * @see epp/README.md "Scheduling by predicted time to first token (`latency-scorer`)"
   */
  readonly maxNumSeqs?: number;
  /**
   * A PersistentVolumeClaim holding the Hugging Face hub cache with the model's tokenizer files (the precise scorer
   * tokenizes prompts exactly as vLLM does), mounted read-only; `HF_HUB_CACHE` points at its `hub/` folder. Not
   * needed for Qwen3 models, whose tokenizer the EPP image carries; required with `precise` and the built-in config
   * for any other model (refused at construction without it). A claim name: a DNS-1123 subdomain.
   * @default none
   * @see https://kubernetes.io/docs/concepts/storage/persistent-volumes/#persistentvolumeclaims
   */
  readonly tokenizerCacheClaim?: string;
  /**
   * How often the EPP scrapes each pod's `/metrics` (`--refresh-metrics-interval`): a duration as the EPP reads it
   * (units h, m, s, ms, us, ns; `1m30s`, `.5s`), above 0, which the EPP refuses.
   * @default '50ms'
   */
  readonly refreshMetricsInterval?: string;
  /**
   * EPP replicas, all active: Envoy spreads ext_proc streams over them. With more than one the Deployment rolls one
   * new pod in before it takes one out (`maxSurge: 1`, `maxUnavailable: 0`), a PodDisruptionBudget lets voluntary
   * disruptions take one replica at a time, and the replicas are spread over nodes (`nodeSpread`). What each replica
   * knows: with per-pod KV events (precise scorer) every replica subscribes to every pod and builds the same index;
   * with the approximate scorer each learns only from its own picks; session bindings are per replica unless
   * `sessionStore` shares them. Must be 1 with central KV events (vLLM publishes to one subscriber).
   * @default 1
   * @see README.md "Running more than one EPP replica"
   */
  readonly replicas?: number;
  /**
   * With more than one replica, how strictly they are kept on different nodes (`topologySpreadConstraints` on
   * `kubernetes.io/hostname`, max skew 1, counted per ReplicaSet revision):
   * - `preferred` (`ScheduleAnyway`): spread where the nodes allow, never Pending; on a cluster with fewer schedulable
   *   nodes than replicas some share a node, so a node failure can take more than one;
   * - `required` (`DoNotSchedule` with `minDomains` = replicas): a replica that cannot get a node of its own stays
   *   Pending (and a rollout with it). Without `minDomains` max skew 1 alone would let 3 replicas share 2 nodes (2 + 1);
   *   with it, fewer eligible nodes than replicas count the global minimum as 0, so a second replica on a node is
   *   refused (GA in Kubernetes 1.30, on by default from 1.27).
   * @default 'preferred'
   * @see https://kubernetes.io/docs/concepts/scheduling-eviction/topology-spread-constraints/
   */
  readonly nodeSpread?: 'preferred' | 'required';
  /**
   * The shared session store the replicas use: the session-affinity-filter's `sessionStore` (address and, from a
   * Secret through an environment variable, the password) is set in the config. `KvAwareRouting` sets it from its
   * `sessionStore`.
   * @default none: session bindings live in each replica's memory
   * @see SessionStore (lib/session-store.ts)
   */
  readonly sessionStore?: SessionStoreConnection;
  /**
   * Keys for the session-affinity-scorer's signed `x-session-token` (honoured by every replica holding the key, with no
   * store), each from a Secret key through an environment variable (`tokenSigning.keyEnv`, `previousKeyEnv`), never
   * the ConfigMap. The config must have a `session-affinity-scorer` (the default config has none) whose
   * `tokenSigning` names no key itself; its `ttl` is kept.
   * @default unsigned tokens, if the config has the scorer
   * @see epp/README.md "Sessions across replicas" (the signed token, rotating the key)
   */
  readonly sessionTokenSigning?: {
    /** The key tokens are signed with (at least 32 bytes). */
    readonly keySecret: SecretKeyReference;
    /** The previous key, still accepted during a rotation. @default none */
    readonly previousKeySecret?: SecretKeyReference;
  };
  /**
   * CPU request (no limit is set, so the EPP may burst onto idle cores). The scrape worker thread needs a core of its
   * own beside the routing thread once the pool is large. A Kubernetes quantity.
   * @default '1', or '2' when `KvAwareRouting`'s decode pool runs more than 64 replicas (epp/README.md, "Scraping at 256 pods")
   * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
   */
  readonly cpu?: string;
  /**
   * Memory request and limit; a Kubernetes quantity.
   * @default '1Gi'
   * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
   */
  readonly memory?: string;
  /**
   * Node.js and V8 flags on the EPP's command line, before its script. The container then runs
   * `node <nodeArgs> dist/main.js` (the image's entry point with the flags added); an empty list keeps the image's
   * entry point as it is. The default starts V8's old generation at 128 MiB: the EPP's live heap (the Envoy protos'
   * reflection objects, the prefix index) is ~32 MB and more, and with V8's default start the old generation's limit
   * sat just above it, so under load the EPP ran mark-compacts every megabyte or two promoted. Measured with the
   * benchmark's A/B (the same build with and without the flag, alternating slices, 2 × AMD EPYC, Node 20.20.2):
   * 1.01-1.15× the requests/s at 8 and 256 pods with 16 and 128 KB prompts, in two runs; RSS ~80 MiB higher at 256 pods
   * (epp/README.md, "Why the floor's cost swings"). `NODE_OPTIONS` cannot carry this flag (Node refuses it there). It
   * applies to the scrape worker's heap too (up to ~100 MB more before it collects): with `--metrics-scrape-workers`
   * above 1, raise `memory` or set `[]`.
   * @default ['--initial-old-space-size=128']
   * @see https://nodejs.org/api/cli.html#v8-options
   */
  readonly nodeArgs?: readonly string[];
}

const SCOPE = 'EndpointPicker';

/** llm-d-router v0.10.0's prefill/decode profile handlers, which these manifests cannot serve (see the constructor). */
const P_D_PROFILE_HANDLERS: readonly string[] = ['disagg-profile-handler', 'pd-profile-handler'];

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
  /**
   * gRPC health service the readiness probe asks: SERVING once the pool has synced (ready pods or not, as GIE's EPP)
   * and, with per-pod KV events, the subscriptions of the pods present then connected (each waited for at most
   * `warmUpTimeout`, 10 s), at start-up.
   */
  public static readonly READINESS_SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';
  /** gRPC health service the liveness probe asks: SERVING while the process runs, whatever the pool and the warm-up. */
  public static readonly LIVENESS_SERVICE = 'liveness';
  /** Drain time the EPP gets on SIGTERM (its --shutdown-grace-period). */
  public static readonly SHUTDOWN_GRACE_SECONDS = 120;
  /**
   * How long a terminating replica keeps accepting ext_proc streams before SIGTERM (a preStop `sleep`): a deleted pod
   * leaves the EPP Service's endpoints at once, but the gateways' Envoys learn it only at Istio's next push, and a
   * stream Envoy opens to a replica that already stopped accepting fails open. One replica too: its Deployment keeps
   * the default RollingUpdate (maxSurge 25% rounds up to 1, maxUnavailable 25% down to 0), so a rollout (every config
   * change is one) deletes the old pod as soon as the new one is ready, the same race. llm-d's router chart sleeps 5 s
   * for the same reason (llm-d/llm-d-router config/charts/routerlib/templates/_deployment.yaml @ 2200bfcf,
   * `lifecycle.preStop`).
   */
  public static readonly PRE_STOP_SECONDS = 5;
  private static readonly CONFIG_DIR = '/config';
  private static readonly HF_CACHE_DIR = '/hf-cache';
  private static readonly CONFIG_FILE = 'epp-config.yaml';
  /** The script the image's entry point runs, relative to its working directory (the Dockerfile's ENTRYPOINT). */
  public static readonly ENTRY_SCRIPT = 'dist/main.js';
  /** `nodeArgs`' default (the EPP's own `EPP_NODE_ARGS`, which its benchmarks run with); see there. */
  public static readonly DEFAULT_NODE_ARGS: readonly string[] = EPP_NODE_ARGS;

  public readonly namespace: string;
  public readonly name: string;
  public readonly poolName: string;
  public readonly poolApiGroup: InferencePoolApiGroup;
  public readonly requestBodyMode: RequestBodyMode;
  /** `--response-body-mode`. */
  public readonly responseBodyMode: ResponseBodyMode;
  /** `--ext-proc-max-message-timeout`, when set. */
  public readonly extProcMaxMessageTimeout?: string;
  public readonly image: string;
  /** The Node.js and V8 flags the container's command passes (`nodeArgs`). */
  public readonly nodeArgs: readonly string[];
  public readonly config: EndpointPickerConfig;
  public readonly deployment: k8s.KubeDeployment;
  public readonly service: k8s.KubeService;
  public readonly serviceAccount: k8s.KubeServiceAccount;
  public readonly configMap: k8s.KubeConfigMap;
  /** The PodDisruptionBudget; only with more than one replica. */
  public readonly podDisruptionBudget?: k8s.KubePodDisruptionBudget;
  public readonly replicas: number;
  /** The shared session store the config names; undefined when bindings stay in each replica. */
  public readonly sessionStore?: SessionStoreConnection;
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
    this.name = checkDns1035Label(SCOPE, 'name', props.name);
    this.poolName = checkDnsSubdomain(SCOPE, 'poolName', props.poolName);
    this.poolApiGroup = props.poolApiGroup ?? 'inference.networking.x-k8s.io';
    if (!['inference.networking.x-k8s.io', 'inference.networking.k8s.io'].includes(this.poolApiGroup)) {
      throw new PropsError(SCOPE, 'poolApiGroup', 'must be "inference.networking.x-k8s.io" or "inference.networking.k8s.io"', this.poolApiGroup);
    }
    this.requestBodyMode = checkOneOf(SCOPE, 'requestBodyMode', props.requestBodyMode ?? 'buffered', ['buffered', 'full-duplex'] as const);
    this.responseBodyMode = checkOneOf(SCOPE, 'responseBodyMode', props.responseBodyMode ?? 'none', ['none', 'full-duplex'] as const);
    if (props.extProcMaxMessageTimeout !== undefined) {
      this.extProcMaxMessageTimeout = checkDuration(SCOPE, 'extProcMaxMessageTimeout', props.extProcMaxMessageTimeout);
      // The EPP refuses the flag at 0 (leave the prop unset for "never ask") and above Envoy's bound for
      // max_message_timeout, 1h (`epp/src/cli.ts`): refuse both here, not in a crash-looping pod.
      const ms = durationMs(this.extProcMaxMessageTimeout);
      if (ms <= 0 || ms > 3_600_000) {
        throw new PropsError(SCOPE, 'extProcMaxMessageTimeout', 'must be above 0 and at most 1h (unset: the EPP never asks Envoy to wait longer)', props.extProcMaxMessageTimeout);
      }
    }
    const registry = props.imageRegistry ?? 'ghcr.io/kvroute';
    this.image = checkImage(SCOPE, props.image ? 'image' : 'imageRegistry', props.image ?? `${registry}/kvroute-epp:${eppPackage.version}`);
    this.nodeArgs = checkNodeArgs(props.nodeArgs ?? EndpointPicker.DEFAULT_NODE_ARGS);
    const refresh = checkRefreshMetricsInterval(props.refreshMetricsInterval ?? '50ms');
    const replicas = checkInteger(SCOPE, 'replicas', props.replicas ?? 1, 1, 10);
    this.replicas = replicas;
    const nodeSpread = checkOneOf(SCOPE, 'nodeSpread', props.nodeSpread ?? 'preferred', ['preferred', 'required'] as const);
    this.sessionStore = props.sessionStore;
    const builtIn = props.precise ? preciseEndpointPickerConfig(props.precise) : defaultEndpointPickerConfig();
    const loraAdapters = props.loraAdapters ?? [];
    const maxNumSeqs = props.maxNumSeqs === undefined ? undefined : checkInteger(SCOPE, 'maxNumSeqs', props.maxNumSeqs, 1, 65536);
    const sized = maxNumSeqs === undefined ? builtIn : withMaxNumSeqs(builtIn, maxNumSeqs);
    const base = props.config ?? (loraAdapters.length > 0 ? withLoraRoomFilter(sized, loraAdapters) : sized);
    const withStore = this.sessionStore ? withSessionStore(base, this.sessionStore, sessionKeyPrefix(this.namespace, this.poolName)) : base;
    const signing = props.sessionTokenSigning === undefined ? undefined : {
      key: checkSecretKeyReference(SCOPE, 'sessionTokenSigning.keySecret', props.sessionTokenSigning.keySecret, 'key'),
      previous: props.sessionTokenSigning.previousKeySecret === undefined
        ? undefined
        : checkSecretKeyReference(SCOPE, 'sessionTokenSigning.previousKeySecret', props.sessionTokenSigning.previousKeySecret, 'key'),
    };
    const withSigning = signing ? withTokenSigning(withStore, signing.previous !== undefined) : withStore;
    try {
      // The EPP's own loader: a config that would crash the EPP at start-up fails synth instead.
      this.config = validateEndpointPickerConfig(withSigning);
    } catch (e) {
      throw new PropsError(SCOPE, 'config', `must be a valid EndpointPickerConfig (${(e as Error).message})`, '(see above)');
    }
    // Prefill/decode disaggregation needs prefill pods and the decode pods' routing sidecar reading the prefill pod the
    // EPP names in `x-prefiller-host-port`; these manifests deploy one decode pool, and the `/v1` route removes that
    // header at Envoy's router, after ext_proc set it (ROUTING_SIDECAR_CLIENT_HEADERS): such a config would synthesize
    // and never disaggregate.
    const pdHandler = this.config.plugins.find((p) => P_D_PROFILE_HANDLERS.includes(p.type));
    if (pdHandler !== undefined) {
      throw new PropsError(
        SCOPE,
        'config',
        `must not disaggregate prefill and decode (${pdHandler.type} "${pdHandler.name}"): these manifests deploy no prefill pool, and the /v1 HTTPRoute removes `
          + `${ROUTING_SIDECAR_CLIENT_HEADERS.join(' and ')} after the EPP sets them (lib/gateway.ts ROUTING_SIDECAR_CLIENT_HEADERS, the routing sidecar's SSRF guard); `
          + 'use a single-profile config here, or run the EPP with this config outside these manifests (epp/README.md)',
        pdHandler.type,
      );
    }
    const configYaml = renderEndpointPickerConfig(this.config);
    if (props.precise?.mode === 'central') {
      const zmqEndpoint = props.precise.zmqEndpoint ?? 'tcp://*:5557';
      this.kvEventsPort = checkCentralKvEventsPort(SCOPE, 'precise.zmqEndpoint', zmqEndpoint);
      if (replicas > 1) throw new PropsError(SCOPE, 'replicas', 'must be 1 with central KV events (each vLLM publishes to one subscriber); use per-pod events for more', replicas);
    }

    this.serviceName = this.name;
    this.serviceFqdn = `${this.name}.${this.namespace}.svc.${checkClusterDomain(SCOPE, props.clusterDomain)}`;
    this.podLabels = { 'llm-d.ai/epp': this.name };
    const metadata = { name: this.name, namespace: this.namespace, labels: { ...this.podLabels } };

    this.serviceAccount = new k8s.KubeServiceAccount(this, 'ServiceAccount', { metadata });
    new k8s.KubeRole(this, 'Role', {
      metadata,
      rules: [
        // list and watch only: the EPP lists and watches everything it reads (epp/src/datastore/kubernetes-discovery.ts,
        // its pool by a metadata.name field selector) and GETs nothing. GIE's chart also grants get
        // (config/charts/inferencepool/templates/rbac.yaml @ v1.5.0), which its controller-runtime cache does not need either.
        { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
        { apiGroups: [this.poolApiGroup], resources: ['inferencepools'], verbs: ['list', 'watch'] },
        // The EPP reads request priorities from the pool's InferenceObjectives and model rewrites from its
        // InferenceModelRewrites (GIE's RBAC grants them too); without a CRD it logs once and goes on (priorities from
        // its config; models as the request names them). It reads them from llm-d-router v0.10.0's llm-d.ai group when
        // API discovery lists them there, else from GIE's, so both are granted, as llm-d-router's own chart does
        // (config/charts/llm-d-router-gateway/templates/rbac.yaml @ v0.10.0). API discovery itself needs no Role: the
        // built-in system:discovery ClusterRole lets every authenticated user read /apis.
        { apiGroups: ['inference.networking.x-k8s.io'], resources: ['inferenceobjectives', 'inferencemodelrewrites'], verbs: ['list', 'watch'] },
        { apiGroups: ['llm-d.ai'], resources: ['inferenceobjectives', 'inferencemodelrewrites'], verbs: ['list', 'watch'] },
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

    const tokenizerCacheClaim = props.tokenizerCacheClaim === undefined ? undefined : checkDnsSubdomain(SCOPE, 'tokenizerCacheClaim', props.tokenizerCacheClaim);
    // The precise scorer tokenizes each prompt with the model's own tokenizer, and the image carries only Qwen3's:
    // without the files the EPP starts, logs "no tokenizer" once and routes without precise scores, which is what a
    // profile asking for KV events least expects. A config given here may name its own tokenizer files
    // (tokenizersPoolConfig), so only the built-in one is checked.
    if (props.precise !== undefined && props.config === undefined && tokenizerCacheClaim === undefined && !hasBundledTokenizer(props.precise.modelName)) {
      throw new PropsError(SCOPE, 'tokenizerCacheClaim', `must name a PersistentVolumeClaim holding the Hugging Face cache with the tokenizer of ${props.precise.modelName} when the decode pods publish KV events (precise prefix scoring tokenizes prompts as vLLM does; the EPP image carries only the Qwen3 tokenizer, Qwen/Qwen3-<size>B; or give endpointPicker.config with its own tokenizer files)`, undefined);
    }
    const cpu = checkQuantity(SCOPE, 'cpu', props.cpu ?? '1');
    const memory = checkQuantity(SCOPE, 'memory', props.memory ?? '1Gi');
    const env: k8s.EnvVar[] = [
      ...(tokenizerCacheClaim ? [{ name: 'HF_HUB_CACHE', value: `${EndpointPicker.HF_CACHE_DIR}/hub` }] : []),
      // The store's password from its Secret, never in the ConfigMap (the filter's sessionStore.passwordEnv names it).
      ...(this.sessionStore?.passwordSecret
        ? [{ name: SESSION_STORE_PASSWORD_ENV, valueFrom: { secretKeyRef: { name: this.sessionStore.passwordSecret.name, key: this.sessionStore.passwordSecret.key } } }]
        : []),
      ...(signing ? [{ name: SESSION_TOKEN_KEY_ENV, valueFrom: { secretKeyRef: { ...signing.key } } }] : []),
      ...(signing?.previous ? [{ name: SESSION_TOKEN_PREVIOUS_KEY_ENV, valueFrom: { secretKeyRef: { ...signing.previous } } }] : []),
    ];
    const ha = replicas > 1;
    this.deployment = new k8s.KubeDeployment(this, 'Deployment', {
      metadata,
      spec: {
        replicas,
        ...(ha
          ? {
              // Active-active: a new replica is added and must be ready (pool synced, KV-event subscriptions warm)
              // before an old one goes, so a rollout never lowers the serving count. Upstream's charts use Recreate
              // (GIE config/charts/epplib/templates/_deployment.yaml @ v1.5.0, and inferencepool's
              // epp-deployment.yaml @ v1.3.0; llm-d/llm-d-router config/charts/routerlib/templates/_deployment.yaml
              // @ 2200bfcf) because their replicas are a leader and standbys (--ha-enable-leader-election when
              // replicas > 1, readiness only on the leader), and a rolling update could not replace the leader.
              strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(1), maxUnavailable: k8s.IntOrString.fromNumber(0) } },
              // Ready for 10 s before the next old replica goes: the gateways' Envoys learn the new endpoint (an
              // Istio push) before they lose the old one, and a replica that crashes right after start stops the
              // rollout instead of replacing every replica in turn.
              minReadySeconds: 10,
            }
          : {}),
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
            // The kubelet counts the preStop sleep within the grace period.
            terminationGracePeriodSeconds: EndpointPicker.PRE_STOP_SECONDS + EndpointPicker.SHUTDOWN_GRACE_SECONDS + 10,
            // Pod Security "restricted" (see lib/pod-security.ts): the image runs as USER 65532:65532 (Dockerfile).
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: RUNTIME_DEFAULT_SECCOMP },
            ...(ha
              ? {
                  topologySpreadConstraints: [{
                    topologyKey: 'kubernetes.io/hostname',
                    maxSkew: 1,
                    whenUnsatisfiable: nodeSpread === 'required' ? 'DoNotSchedule' : 'ScheduleAnyway',
                    ...(nodeSpread === 'required' ? { minDomains: this.replicas } : {}),
                    labelSelector: { matchLabels: { ...this.podLabels } },
                    // Counted within one ReplicaSet revision, so a rollout's surge pod is not placed against the
                    // old pods it is about to replace (beta and on by default since Kubernetes 1.27).
                    matchLabelKeys: ['pod-template-hash'],
                  }],
                }
              : {}),
            containers: [{
              name: 'epp',
              image: this.image,
              imagePullPolicy: 'IfNotPresent',
              // The image's entry point (Dockerfile: WORKDIR /app/epp, ENTRYPOINT ["node", "dist/main.js"]) with the flags
              // added; test/images.test.ts holds the two together.
              ...(this.nodeArgs.length > 0 ? { command: ['node', ...this.nodeArgs, EndpointPicker.ENTRY_SCRIPT] } : {}),
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
                `--response-body-mode=${this.responseBodyMode}`,
                ...(this.extProcMaxMessageTimeout ? [`--ext-proc-max-message-timeout=${this.extProcMaxMessageTimeout}`] : []),
              ],
              ports: [
                { name: EndpointPicker.GRPC_PORT_NAME, containerPort: EndpointPicker.GRPC_PORT, protocol: 'TCP' },
                { name: EndpointPicker.HEALTH_PORT_NAME, containerPort: EndpointPicker.HEALTH_PORT, protocol: 'TCP' },
                { name: EndpointPicker.METRICS_PORT_NAME, containerPort: EndpointPicker.METRICS_PORT, protocol: 'TCP' },
                ...(this.kvEventsPort !== undefined ? [{ name: EndpointPicker.KV_EVENTS_PORT_NAME, containerPort: this.kvEventsPort, protocol: 'TCP' }] : []),
              ],
              resources: {
                requests: { cpu: k8s.Quantity.fromString(cpu), memory: k8s.Quantity.fromString(memory) },
                limits: { memory: k8s.Quantity.fromString(memory) },
              },
              // The image is node:22-bookworm-slim, which has sleep (Kubernetes 1.28 has no preStop sleep action).
              lifecycle: { preStop: { exec: { command: ['sleep', String(EndpointPicker.PRE_STOP_SECONDS)] } } },
              readinessProbe: grpcProbe(EndpointPicker.READINESS_SERVICE, 5),
              livenessProbe: grpcProbe(EndpointPicker.LIVENESS_SERVICE, 10),
              securityContext: {
                ...hardenedContainerSecurityContext(),
                readOnlyRootFilesystem: true,
              },
              volumeMounts: [
                { name: 'config', mountPath: EndpointPicker.CONFIG_DIR, readOnly: true },
                ...(tokenizerCacheClaim ? [{ name: 'hf-cache', mountPath: EndpointPicker.HF_CACHE_DIR, readOnly: true }] : []),
              ],
              ...(env.length > 0 ? { env } : {}),
            }],
            volumes: [
              { name: 'config', configMap: { name: this.name } },
              ...(tokenizerCacheClaim ? [{ name: 'hf-cache', persistentVolumeClaim: { claimName: tokenizerCacheClaim, readOnly: true } }] : []),
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

    if (ha) {
      this.podDisruptionBudget = new k8s.KubePodDisruptionBudget(this, 'PodDisruptionBudget', {
        metadata,
        spec: {
          // maxUnavailable 1 rather than minAvailable 1: a drain takes one replica at a time whatever the count, so
          // N-1 keep serving (minAvailable 1 would let a drain take 2 of 3 at once, each replica carrying 1/N of the
          // streams), and it stays right when replicas change.
          maxUnavailable: k8s.IntOrString.fromNumber(1),
          selector: { matchLabels: { ...this.podLabels } },
          // An unready replica routes nothing, so evicting it costs nothing; without this a crash-looping replica
          // would block every node drain (Kubernetes 1.27+, beta and on by default).
          unhealthyPodEvictionPolicy: 'AlwaysAllow',
        },
      });
    }
  }

  /** The Envoy cluster Istio builds for the EPP's gRPC port, which the ext_proc filter calls. */
  public get grpcClusterName(): string {
    return `outbound|${this.grpcPort}||${this.serviceFqdn}`;
  }
}

/**
 * The session store's key prefix for one pool. Stacks may share one store (the platform's, `sessionStore.existing`):
 * with the EPP's default prefix, which every stack rendered until the replicas review, a session id two pools both see
 * was one key, and each pool overwrote the other's binding of it.
 */
export function sessionKeyPrefix(namespace: string, poolName: string): string {
  return `kvroute:session:${namespace}/${poolName}:`;
}

/**
 * `config` with the session-affinity-filter's `sessionStore` set to `store`: the address, the pool's own `keyPrefix`
 * (`sessionKeyPrefix`), and the environment variable
 * the Deployment fills from the password's Secret. The config must have a session-affinity-filter that names no store.
 * With precise prefix scoring (`precise-prefix-cache-scorer` in the config) a session the store cannot place while it
 * is down is left to the scorers (`unavailablePlacement: scorers`): every replica's precise index is built from the
 * same KV events, so replicas agree on where a session's history is without the store; the approximate index is each
 * replica's own, so there the default rendezvous hash makes them agree.
 */
export function withSessionStore(config: EndpointPickerConfig, store: SessionStoreConnection, keyPrefix: string): EndpointPickerConfig {
  const filters = config.plugins.filter((p) => p.type === 'session-affinity-filter');
  if (filters.length !== 1) {
    throw new PropsError(SCOPE, 'config', `must have exactly one session-affinity-filter to share its bindings through sessionStore (found ${filters.length})`, filters.length);
  }
  const precise = config.plugins.some((p) => p.type === 'precise-prefix-cache-scorer');
  const plugins = config.plugins.map((p) => {
    if (p.type !== 'session-affinity-filter') return p;
    if (p.parameters?.sessionStore !== undefined) {
      throw new PropsError(SCOPE, 'config', 'must not set the session-affinity-filter\'s sessionStore when sessionStore is given (it is rendered from it)', p.parameters.sessionStore);
    }
    return {
      ...p,
      parameters: {
        ...p.parameters,
        sessionStore: {
          address: store.address,
          keyPrefix,
          ...(store.passwordSecret ? { passwordEnv: SESSION_STORE_PASSWORD_ENV } : {}),
          ...(precise ? { unavailablePlacement: 'scorers' as const } : {}),
        },
      },
    };
  });
  return { ...config, plugins };
}

/** The environment variables the EPP reads the session-token signing keys from (`tokenSigning.keyEnv`, `previousKeyEnv`). */
export const SESSION_TOKEN_KEY_ENV = 'KVROUTE_SESSION_TOKEN_KEY';
export const SESSION_TOKEN_PREVIOUS_KEY_ENV = 'KVROUTE_SESSION_TOKEN_PREVIOUS_KEY';

/**
 * `config` with the session-affinity-scorer's `tokenSigning` reading its keys from the environment variables the
 * Deployment fills from Secrets; its `ttl` is kept. The config must have exactly one such scorer naming no key.
 */
export function withTokenSigning(config: EndpointPickerConfig, previous: boolean): EndpointPickerConfig {
  const scorers = config.plugins.filter((p) => p.type === 'session-affinity-scorer');
  if (scorers.length !== 1) {
    throw new PropsError(SCOPE, 'sessionTokenSigning', `needs exactly one session-affinity-scorer in the config (found ${scorers.length}; the default config has none)`, scorers.length);
  }
  const plugins = config.plugins.map((p) => {
    if (p.type !== 'session-affinity-scorer') return p;
    const { keyFile, keyEnv, previousKeyFile, previousKeyEnv, ...rest } = p.parameters?.tokenSigning ?? {};
    if ([keyFile, keyEnv, previousKeyFile, previousKeyEnv].some((v) => v !== undefined)) {
      throw new PropsError(SCOPE, 'config', 'must not name tokenSigning keys in the session-affinity-scorer when sessionTokenSigning is given (they come from its Secrets)', p.parameters?.tokenSigning);
    }
    return {
      ...p,
      parameters: {
        ...p.parameters,
        tokenSigning: { ...rest, keyEnv: SESSION_TOKEN_KEY_ENV, ...(previous ? { previousKeyEnv: SESSION_TOKEN_PREVIOUS_KEY_ENV } : {}) },
      },
    };
  });
  return { ...config, plugins };
}

/**
 * The port of a central KV-event endpoint the EPP binds (`tcp://<host>:<port>`): from 1 to 65535 and none of the EPP's
 * own (ext_proc gRPC 9002, gRPC health 9003, metrics 9090), which the Service and the container already declare.
 */
export function checkCentralKvEventsPort(scope: string, field: string, endpoint: string): number {
  // The host: a name, an address, `*`, or an IPv6 address in brackets (`tcp://[::]:5557`, ZMQ's form).
  const m = typeof endpoint === 'string' ? /^tcp:\/\/(?:\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(endpoint) : null;
  const port = m ? Number(m[1]) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new PropsError(scope, field, 'must be a ZMQ endpoint "tcp://<host>:<port>" with a port from 1 to 65535', endpoint);
  }
  const own = [EndpointPicker.GRPC_PORT, EndpointPicker.HEALTH_PORT, EndpointPicker.METRICS_PORT];
  if (own.includes(port)) {
    throw new PropsError(scope, field, `must not use a port the EPP already listens on (${EndpointPicker.GRPC_PORT} ext_proc gRPC, ${EndpointPicker.HEALTH_PORT} gRPC health, ${EndpointPicker.METRICS_PORT} metrics): the EPP binds the endpoint's port for central KV events`, endpoint);
  }
  return port;
}

/**
 * `--refresh-metrics-interval` as the EPP reads it (epp/src/cli.ts, kind `duration`: an optional sign, then the EPP's
 * own Go-style parseDuration, `.5s`, `100us` and `1h30m` included), refused where the EPP exits at start-up: a value it
 * cannot parse, or 0 and below ("must be positive").
 */
function checkRefreshMetricsInterval(value: string): string {
  let ms = NaN;
  if (typeof value === 'string') {
    try {
      ms = parseDuration(value.startsWith('+') ? value.slice(1) : value);
    } catch {
      // Reported below.
    }
  }
  if (Number.isNaN(ms)) {
    throw new PropsError(SCOPE, 'refreshMetricsInterval', 'must be a duration such as "50ms", "1s" or "1m30s" (units h, m, s, ms, us, ns), as the EPP\'s --refresh-metrics-interval reads it', value);
  }
  if (!(ms > 0)) {
    throw new PropsError(SCOPE, 'refreshMetricsInterval', 'must be a duration above 0 such as "50ms" (how often the EPP scrapes each pod; it refuses 0)', value);
  }
  return value;
}

/** Each flag one `--name` or `--name=value` word: a space or an empty string would pass as another argument to node. */
function checkNodeArgs(args: readonly string[]): readonly string[] {
  if (!Array.isArray(args)) throw new PropsError(SCOPE, 'nodeArgs', 'must be a list of flags', args);
  args.forEach((a, i) => {
    if (typeof a !== 'string' || !/^--[A-Za-z0-9][A-Za-z0-9_-]*(=\S+)?$/.test(a)) {
      throw new PropsError(SCOPE, `nodeArgs[${i}]`, 'must be one flag, --name or --name=value, without spaces', a);
    }
  });
  return Object.freeze([...args]);
}
