import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { DecodePool, DecodePoolProps } from './decode-pool';
import { checkCentralKvEventsPort, EndpointPicker, EndpointPickerProps } from './endpoint-picker';
import { EppClusterReference, ExtProcRouting, ExtProcRoutingProps, resolveMaxMessageTimeout } from './ext-proc';
import { InferenceGateway, InferenceGatewayProps } from './gateway';
import { InferencePool, PoolFailureMode } from './inference-pool';
import { istioSupport, type IstioSupport } from './istio';
import { Monitoring, MonitoringProps } from './monitoring';
import { checkNetworkPeer, DecodeNetworkPolicy, DecodeNetworkPolicyProps, EppNetworkPolicy, EppNetworkPolicyProps, SessionStoreNetworkPolicy } from './network-policy';
import { existingSessionStore, SessionStore, type SessionStoreConnection, type SessionStoreProps } from './session-store';
import { checkClusterDomain, checkDns1035Label, checkDnsLabel, checkOneOf, PropsError } from './validation';
import type { EndpointPickerConfig } from '@kvroute/epp/config';

/**
 * Who calls the EPP for each request:
 * - `envoy-filter`: kvroute's EnvoyFilter inserts ext_proc into the gateway and patches the decode Service's cluster
 *   (the seed architecture; any Istio >= 1.27, shape chosen by `istioVersion`);
 * - `native`: Istio's own Gateway API Inference Extension support routes the `/v1` HTTPRoute to the InferencePool and
 *   calls its EPP (Istio >= 1.28 with `ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true` in istiod, InferencePool v1); no
 *   ext_proc EnvoyFilter. Istio then streams bodies FULL_DUPLEX_STREAMED, so a hung EPP is bounded only by the
 *   gateway's `requestReceiveTimeout`, and an EPP failure after the first body byte answers 500.
 */
export type InferenceRouting = 'envoy-filter' | 'native';

/** Props of {@link KvAwareRouting}: the whole stack of one cluster in one typed object. */
export interface KvAwareRoutingProps {
  /**
   * Namespace every object lives in. kvroute supports one stack per namespace: the monitoring rules select and
   * aggregate by namespace, and a second stack would share the Gateway, its routes and the Namespace object. A second
   * `KvAwareRouting` in the same cdk8s App with the same namespace is refused; a second release needs its own namespace.
   * @see README.md "What `npm run synth` produces" (one stack per namespace)
   */
  readonly namespace: string;
  /**
   * Emit the Namespace object too. Turn off when the namespace is managed elsewhere (it must then exist). The emitted
   * Namespace carries Pod Security Admission labels: it enforces `baseline` and warns and audits at `restricted`. The
   * EPP and session store pods meet restricted; the decode pod meets baseline, and restricted with `decode.runAsUser`
   * (`DecodePool.podSecurityExceptions`); Istio's gateway pods meet baseline. It also carries Argo CD's and Flux's
   * never-prune annotations (`NAMESPACE_PRUNE_PROTECTION`): turning this off later, or removing the stack from Git,
   * leaves the namespace and what else lives in it; delete it by hand.
   * The namespaces Kubernetes itself creates (`default`, `kube-system`, `kube-public`, `kube-node-lease`) are never
   * emitted: the labels would enforce `baseline` on every other workload there (kube-system's network and proxy pods
   * need `privileged`), and a GitOps tool would take them as the stack's own, so a prune would try to delete them (the
   * API server's NamespaceLifecycle admission refuses it for the first three, not for `kube-node-lease`). Left out when
   * this is not set; `true` with one of them is refused.
   * @default true (false for the namespaces Kubernetes creates)
   * @see https://kubernetes.io/docs/concepts/security/pod-security-admission/
   */
  readonly createNamespace?: boolean;
  /**
   * Base name, like a Helm release's fullname: decode objects are `<name>-decode`, the EPP `<name>-epp`, a deployed
   * session store `<name>-session-store`. These are Service names, so it is a DNS-1035 label (starting with a letter) of
   * at most 56 characters (`<name>-decode` is then 63), at most 38 with `sessionStore.deploy` (the store's StatefulSet name must leave room for its
   * pod's `controller-revision-hash` label). Unlike a Helm release name it does not make a second stack in the same
   * namespace possible: the Gateway, routes and monitoring are per namespace, so a second release needs its own namespace.
   * @default 'ms-llm-d-modelservice' (llm-d-modelservice release `ms`)
   * @see README.md "What `npm run synth` produces" (one stack per namespace)
   */
  readonly name?: string;
  /**
   * InferencePool name (the EPP's `--pool-name`): a DNS-1123 subdomain. With monitoring on, `namespace` and it have at
   * most 202 characters together: the Prometheus Operator keys the PrometheusRule `<poolName>-kvroute` in its rule
   * ConfigMap `<namespace>-<name>-<36-character uid>.yaml`, at most 253 (pkg/operator/rules.go @ v0.84.0). With
   * `native` routing a DNS-1035 label of at most 63 characters: Istio names the Service it creates for the pool
   * `<poolName>-ip-<8 hex>` and labels it `istio.io/inferencepool-name: <poolName>`.
   * @default the `name` value
   */
  readonly poolName?: string;
  /**
   * The Istio the gateway runs ("1.27.0", a minor line such as "1.28", or "1.28.3"): every Istio-facing object takes
   * the shape that version accepts and behaves as documented (README, "Istio and Envoy support matrix"). A minor line
   * without a patch is taken at its most restrictive release.
   * @default '1.27.0' (the seed's Istio, the oldest supported)
   */
  readonly istioVersion?: string;
  /**
   * The cluster's DNS domain (kubelet's `--cluster-domain`; Istio's `global.proxy.clusterDomain`, istiod's `--domain`),
   * as llm-d-router's chart takes it (`router.clusterDomain`, llm-d-router v0.10.0 config/charts/routerlib/values.yaml).
   * Every in-cluster Service name ends `.svc.<clusterDomain>`: the EnvoyFilter's ext_proc cluster and cluster match, the
   * DestinationRules' hosts, the `referenced-services` annotations, a deployed session store's address and the central
   * KV-event endpoint. Istio names its clusters after it (pilot/pkg/serviceregistry/kube/conversion.go ServiceHostname),
   * so with another domain a `cluster.local` name matches nothing and the gateway cannot reach the EPP.
   * @default 'cluster.local'
   * @see https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/
   */
  readonly clusterDomain?: string;
  /** Who calls the EPP; see {@link InferenceRouting}. @default 'envoy-filter' */
  readonly inferenceRouting?: InferenceRouting;
  /** The vLLM decode pods. */
  readonly decode: Omit<DecodePoolProps, 'namespace' | 'name' | 'clusterDomain'>;
  /**
   * The Endpoint Picker. `poolApiGroup` defaults to the InferencePool API the Istio version reads (v1alpha2 on 1.27,
   * v1 from 1.28), not to the construct's own default.
   * @default its defaults
   */
  readonly endpointPicker?: Omit<EndpointPickerProps, 'namespace' | 'name' | 'clusterDomain' | 'poolName' | 'requestBodyMode' | 'responseBodyMode' | 'precise' | 'sessionStore'>;
  /**
   * Share session bindings between EPP replicas through Redis or Valkey: `deploy` a Valkey (StatefulSet, Service and
   * a NetworkPolicy admitting the EPP pods only), or use an `existing` one with its password in a Secret. The EPP's
   * config gets the session-affinity-filter's `sessionStore`; its NetworkPolicy, an egress rule to the store when it
   * restricts egress. Readiness never depends on the store: picks fall back to each replica's own bindings.
   * @default none: bindings live in each replica's memory (all a single replica needs)
   * @see SessionStore (lib/session-store.ts), README.md "Running more than one EPP replica"
   */
  readonly sessionStore?: SessionStoreProps;
  /**
   * What the gateway does when the EPP fails, as the InferencePool declares it. With the EnvoyFilter it is the same
   * intent as `extProc.failureModeAllow`: one given alone sets the other, and the two given in disagreement are refused
   * (the pool would declare one contract while the gateway kept the other).
   * @default 'FailOpen', or what `extProc.failureModeAllow` says
   */
  readonly poolFailureMode?: PoolFailureMode;
  /** Gateway and routes. @default the seed's `llm-d-gateway` for `llm-d.demo.local` */
  readonly gateway?: Omit<InferenceGatewayProps, 'namespace' | 'decodePool'>;
  /**
   * The ext_proc EnvoyFilter and decode DestinationRule (`envoy-filter` routing only).
   * @default buffered request bodies, fail open, round-robin fallback
   */
  readonly extProc?: Omit<ExtProcRoutingProps, 'gateway' | 'endpointPicker' | 'decodePool' | 'istio'>;
  /**
   * Prometheus Operator monitors, rules and the Grafana dashboard; `enabled: false` leaves them out (clusters
   * without the Prometheus Operator CRDs).
   * @default enabled with the Monitoring defaults
   */
  readonly monitoring?: Omit<MonitoringProps, 'decodePool' | 'endpointPicker' | 'gateway' | 'inferenceRouting' | 'extProcRequestBodyMode' | 'extProcFailOpen'> & { readonly enabled?: boolean };
  /**
   * The NetworkPolicies. The EPP's: ext_proc from the gateway's pods, metrics from the monitoring namespace, central KV
   * events from the decode pods, health from the kubelet; egress too when `egress` is given. The decode pods': the
   * serving port from the gateway's and the EPP's pods and `decodeClients`, vLLM's port from `metricsSources`, per-pod KV
   * sockets from the EPP's pods. `enabled: false` leaves them all out. They take effect only where the network plugin
   * enforces NetworkPolicy.
   * @default enabled, ingress only, metrics from namespace `monitoring`, no other decode clients
   * @see EppNetworkPolicy, DecodeNetworkPolicy (lib/network-policy.ts)
   */
  readonly networkPolicy?: Omit<EppNetworkPolicyProps, 'endpointPicker' | 'gateway' | 'decodePool'> & {
    readonly enabled?: boolean;
    /** In-cluster clients allowed to call the decode pods directly, past the gateway (`DecodeNetworkPolicyProps.clients`). @default none */
    readonly decodeClients?: DecodeNetworkPolicyProps['clients'];
  };
}

/**
 * Past this many decode pods the EPP requests 2 CPUs by default: at 256 pods its scrape worker thread parses ~1,000
 * metrics pages a second (the scrape budget) beside the routing thread (epp/README.md, "Scraping at 256 pods").
 */
export const LARGE_POOL_REPLICAS = 64;

/** The longest `name`: `<name>-decode`, the decode Service's name, is then 63 characters. */
const MAX_NAME_LENGTH = 63 - '-decode'.length;

/** A deployed session store is `<name>-session-store`. */
const SESSION_STORE_SUFFIX = '-session-store';

/**
 * The Pod Security Admission labels of the Namespace kvroute emits: enforce baseline (the decode pod's vLLM runs as its
 * image's user), warn and audit restricted.
 * @see https://kubernetes.io/docs/concepts/security/pod-security-admission/#pod-security-admission-labels-for-namespaces
 */
export const NAMESPACE_POD_SECURITY_LABELS: Readonly<Record<string, string>> = {
  'pod-security.kubernetes.io/enforce': 'baseline',
  'pod-security.kubernetes.io/warn': 'restricted',
  'pod-security.kubernetes.io/audit': 'restricted',
};

/**
 * The GitOps tools' "never prune" annotations on the Namespace kvroute emits. Deleting a namespace deletes everything
 * in it (the GPU pods, Secrets made by hand, Istio's gateway Deployment), so when the Namespace leaves the rendered set
 * (`createNamespace: false` once the namespace is managed elsewhere, or the stack removed from Git) Argo CD and Flux
 * leave it in place instead of pruning it; it is then deleted by hand. Neither GIE's nor llm-d's charts render a
 * Namespace at all (everything goes into the release's namespace), so no values change of theirs can delete one.
 * @see https://argo-cd.readthedocs.io/en/stable/user-guide/sync-options/#no-prune-resources
 * @see https://fluxcd.io/flux/components/kustomize/kustomizations/#garbage-collection
 */
export const NAMESPACE_PRUNE_PROTECTION: Readonly<Record<string, string>> = {
  'argocd.argoproj.io/sync-options': 'Prune=false',
  'kustomize.toolkit.fluxcd.io/prune': 'disabled',
};

/**
 * One cluster's KV-cache-aware routing stack: decode pool, EPP, InferencePool, gateway, the ext_proc wiring,
 * monitoring and the EPP's NetworkPolicy. Names, ports and selectors flow from construct to construct; nothing is repeated as a string.
 *
 * One stack per namespace: the recording rules and alerts select and aggregate on `namespace` alone, and the Gateway,
 * its HTTPRoutes, its timeouts EnvoyFilter and the Namespace object are named independently of `name`, so two stacks in one
 * namespace would record the same series, fire each other's alerts and share (and fight over) one Gateway. A second
 * `KvAwareRouting` in the same cdk8s App with the namespace of an earlier one is refused, naming the first; give a
 * second release its own namespace.
 */
export class KvAwareRouting extends Chart {
  public readonly decodePool: DecodePool;
  public readonly endpointPicker: EndpointPicker;
  public readonly inferencePool: InferencePool;
  public readonly gateway: InferenceGateway;
  /** The ext_proc wiring; absent with `native` routing, where Istio calls the EPP itself. */
  public readonly extProc?: ExtProcRouting;
  /** With `native` routing only: the patch-less EnvoyFilter that names the EPP's Service for cluster-filtering gateways. */
  public readonly eppClusterReference?: EppClusterReference;
  public readonly monitoring?: Monitoring;
  /** The EPP's NetworkPolicy; absent with `networkPolicy.enabled: false`. */
  public readonly networkPolicy?: EppNetworkPolicy;
  /** The decode pods' NetworkPolicy; absent with `networkPolicy.enabled: false`. */
  public readonly decodeNetworkPolicy?: DecodeNetworkPolicy;
  /** The Valkey kvroute deploys for shared sessions (`sessionStore.deploy`). */
  public readonly sessionStore?: SessionStore;
  /** The deployed store's NetworkPolicy; absent with `networkPolicy.enabled: false`. */
  public readonly sessionStoreNetworkPolicy?: SessionStoreNetworkPolicy;
  public readonly istio: IstioSupport;
  public readonly inferenceRouting: InferenceRouting;
  /** The namespace, for the one-stack-per-namespace check (not the Chart's `namespace`, which cdk8s would apply). */
  private readonly stackNamespace: string;

  constructor(scope: Construct, id: string, props: KvAwareRoutingProps, chartProps: Omit<ChartProps, 'namespace'> = {}) {
    super(scope, id, { disableResourceNameHashes: true, ...chartProps });
    const namespace = checkDnsLabel('KvAwareRouting', 'namespace', props.namespace);
    this.stackNamespace = namespace;
    const first = this.node.root.node.findAll()
      .filter((c): c is KvAwareRouting => c instanceof KvAwareRouting && c !== this)
      .find((other) => other.stackNamespace === namespace);
    if (first !== undefined) {
      throw new PropsError('KvAwareRouting', 'namespace',
        `must differ from every other KvAwareRouting's in the app: kvroute supports one stack per namespace, and stack "${first.node.path}" already uses this one (a second release needs its own namespace)`,
        namespace);
    }
    // <name>-decode, <name>-epp and <name>-session-store are Service names (DNS-1035 labels, pkg/apis/core/validation
    // ValidateServiceName): the longest, <name>-decode, bounds the name at 63 - 7 = 56 (DecodePool's own bound).
    const name = checkDns1035Label('KvAwareRouting', 'name', props.name ?? 'ms-llm-d-modelservice', MAX_NAME_LENGTH);
    if (props.sessionStore?.deploy !== undefined) {
      const maxName = SessionStore.MAX_NAME_LENGTH - SESSION_STORE_SUFFIX.length;
      if (name.length > maxName) {
        throw new PropsError('KvAwareRouting', 'name',
          `must be at most ${maxName} characters with sessionStore.deploy: the store's StatefulSet "<name>${SESSION_STORE_SUFFIX}" labels its pod "controller-revision-hash: <StatefulSet>-<10-character hash>", which Kubernetes limits to 63 characters`,
          name);
      }
    }

    if (createsNamespace(namespace, props.createNamespace)) {
      // Enforce the level every pod of the stack meets, and report what would break restricted on each apply (warn)
      // and in the audit log, so an image update that loses a control shows before a stricter level is enforced.
      new k8s.KubeNamespace(this, 'Namespace', {
        metadata: { name: namespace, labels: NAMESPACE_POD_SECURITY_LABELS, annotations: NAMESPACE_PRUNE_PROTECTION },
      });
    }
    this.istio = istioSupport(props.istioVersion ?? '1.27.0');
    this.inferenceRouting = checkOneOf('KvAwareRouting', 'inferenceRouting', props.inferenceRouting ?? 'envoy-filter', ['envoy-filter', 'native'] as const);
    const native = this.inferenceRouting === 'native';
    if (native && !this.istio.nativeInferencePool) {
      throw new PropsError('KvAwareRouting', 'inferenceRouting', `"native" needs Istio 1.28 or newer (InferencePool v1, per-route ext_proc with trailer modes); istioVersion is ${this.istio.version}`, 'native');
    }
    if (native && props.extProc !== undefined) {
      throw new PropsError('KvAwareRouting', 'extProc', 'applies to "envoy-filter" routing only; with "native" routing Istio configures ext_proc itself', props.extProc);
    }
    // The InferencePool API follows the Istio: native routing needs the one Istio reads. With the EnvoyFilter only the
    // EPP reads the pool, but the cluster's CRDs go with its Istio: 1.27 (the seed's) knows v1alpha2, 1.28 and later
    // read GIE v1's v1 API, and GIE v1.5.0 ships no v1alpha2 InferencePool CRD any more (#2796).
    const poolApiGroup = props.endpointPicker?.poolApiGroup ?? this.istio.inferencePoolApiGroup;
    if (native && poolApiGroup !== this.istio.inferencePoolApiGroup) {
      throw new PropsError('EndpointPicker', 'poolApiGroup', `must be "${this.istio.inferencePoolApiGroup}" with native routing on Istio ${this.istio.version}`, poolApiGroup);
    }
    const poolName = props.poolName ?? name;
    if (native) {
      // Istio makes a Service of every InferencePool a Gateway routes to (istio/istio pilot/pkg/config/kube/gateway/
      // inferencepool_collection.go InferencePoolServiceName @ 1.28.0-1.30.0): it cuts the name to 63 characters but
      // keeps a dot or a leading digit, which the API server refuses in a Service name, and labels the Service with the
      // whole pool name, which a label value takes up to 63 characters. The route would have no endpoints.
      checkDns1035Label('KvAwareRouting', 'poolName', poolName, 63,
        ' with "native" routing: Istio creates the pool\'s shadow Service "<poolName>-ip-<8 hex>" (cut to 63 characters, dots and a leading digit kept) labelled istio.io/inferencepool-name=<poolName>, and Kubernetes refuses a Service name that is not a DNS-1035 label and a label value over 63 characters');
    }

    // Central KV events: vLLM connects to the EPP's Service unless the profile names another endpoint.
    const eppName = `${name}-epp`;
    const clusterDomain = checkClusterDomain('KvAwareRouting', props.clusterDomain);
    const decodeProps = props.decode.kvEvents?.mode === 'central' && props.decode.kvEvents.endpoint === undefined
      ? { ...props.decode, kvEvents: { ...props.decode.kvEvents, endpoint: `tcp://${eppName}.${namespace}.svc.${clusterDomain}:5557` } }
      : props.decode;
    this.decodePool = new DecodePool(this, 'Decode', { ...decodeProps, namespace, name, clusterDomain });
    const events = this.decodePool.kvEvents;
    const store = props.sessionStore;
    let storeConnection: SessionStoreConnection | undefined;
    if (store !== undefined) {
      const forms = (['deploy', 'existing'] as const).filter((k) => (store as Record<string, unknown>)[k] !== undefined);
      const unknown = Object.keys(store).filter((k) => k !== 'deploy' && k !== 'existing');
      if (forms.length !== 1 || unknown.length > 0) {
        throw new PropsError('KvAwareRouting', 'sessionStore', 'must set exactly one of deploy (a Valkey kvroute deploys) or existing (host, port, passwordSecret)', store);
      }
      if (store.deploy !== undefined) {
        this.sessionStore = new SessionStore(this, 'SessionStore', { ...store.deploy, namespace, clusterDomain, name: `${name}${SESSION_STORE_SUFFIX}` });
        storeConnection = this.sessionStore.connection;
      } else {
        storeConnection = existingSessionStore(store.existing);
        // Checked here even when no policy restricts egress, so a mistake shows before someone turns egress on.
        if (store.existing.networkPeer !== undefined) checkNetworkPeer('SessionStore', 'existing.networkPeer', store.existing.networkPeer);
      }
    }
    if (events?.mode === 'central') {
      // The EPP binds the endpoint's port beside its own.
      checkCentralKvEventsPort('KvAwareRouting', 'decode.kvEvents.endpoint', events.endpoint!);
    }
    const requestBodyMode = native
      ? 'full-duplex'
      : checkOneOf('ExtProcRouting', 'requestBodyMode', props.extProc?.requestBodyMode ?? 'buffered', ['buffered', 'full-duplex'] as const);
    // Istio's native InferencePool integration writes its own ext_proc filter, without a max_message_timeout.
    const maxMessageTimeout = native ? undefined : resolveMaxMessageTimeout(props.extProc ?? {}, requestBodyMode);
    this.endpointPicker = new EndpointPicker(this, 'EndpointPicker', {
      ...(this.decodePool.replicas > LARGE_POOL_REPLICAS ? { cpu: '2' } : {}),
      ...props.endpointPicker,
      ...(storeConnection ? { sessionStore: storeConnection } : {}),
      ...(poolApiGroup ? { poolApiGroup } : {}),
      // Istio's native integration streams request and response bodies full duplex (route.go L533-542 @ 1.28.0); the
      // EnvoyFilter uses what extProc asks for, and response bodies NONE.
      requestBodyMode,
      responseBodyMode: native ? 'full-duplex' : 'none',
      loraAdapters: props.endpointPicker?.loraAdapters ?? this.decodePool.loraAdapters.map((a) => a.name),
      ...(props.endpointPicker?.maxNumSeqs === undefined && this.decodePool.maxNumSeqs !== undefined ? { maxNumSeqs: this.decodePool.maxNumSeqs } : {}),
      ...(maxMessageTimeout ? { extProcMaxMessageTimeout: maxMessageTimeout } : {}),
      ...(events
        ? {
            precise: {
              mode: events.mode,
              blockSize: this.decodePool.blockSize,
              modelName: this.decodePool.model,
              // The ids vLLM gives the adapters are their places in --lora-modules, which the decode pool writes.
              loraAdapters: this.decodePool.loraAdapters.map((a) => a.name),
              ...(events.mode === 'per-pod' ? { socketPort: events.port, replayPort: events.replayPort } : { zmqEndpoint: `tcp://*:${/:(\d+)$/.exec(events.endpoint!)![1]}` }),
            },
          }
        : {}),
      namespace,
      clusterDomain,
      name: eppName,
      poolName,
    });
    // vLLM's fcfs queue ignores the priority the plugin writes (V1's processor passes it on, request_queue.py @ v0.10.0
    // orders by arrival only): the plugin would cost a body edit a request and change nothing, a misconfiguration.
    if (this.endpointPicker.config.plugins.some((p) => p.type === 'prefill-priority') && this.decodePool.schedulingPolicy !== 'priority') {
      throw new PropsError('KvAwareRouting', 'decode.schedulingPolicy', `must be "priority" when the EPP config has a prefill-priority plugin (vLLM's "fcfs" ignores the priority it writes); got "${this.decodePool.schedulingPolicy}"`, this.decodePool.schedulingPolicy);
    }
    checkMaxNumSeqsAgree(this.decodePool.maxNumSeqs, props.endpointPicker?.maxNumSeqs, this.endpointPicker.config);
    const failOpen = resolveFailOpen(props.poolFailureMode, native ? undefined : props.extProc?.failureModeAllow);
    this.inferencePool = new InferencePool(this, 'InferencePool', {
      decodePool: this.decodePool,
      endpointPicker: this.endpointPicker,
      failureMode: failOpen ? 'FailOpen' : 'FailClose',
    });
    this.gateway = new InferenceGateway(this, 'Gateway', {
      ...props.gateway,
      namespace,
      decodePool: this.decodePool,
      ...(native ? { inferencePool: this.inferencePool } : {}),
    });
    if (native) {
      // Istio writes the ext_proc filter; this keeps the EPP's cluster on gateways that receive only their routes'.
      this.eppClusterReference = new EppClusterReference(this, 'EppClusterReference', { gateway: this.gateway, endpointPicker: this.endpointPicker });
    } else {
      this.extProc = new ExtProcRouting(this, 'ExtProc', {
        ...props.extProc,
        failureModeAllow: failOpen,
        istio: this.istio,
        gateway: this.gateway,
        endpointPicker: this.endpointPicker,
        decodePool: this.decodePool,
      });
    }
    const { enabled = true, ...monitoringProps } = props.monitoring ?? {};
    if (enabled) {
      this.monitoring = new Monitoring(this, 'Monitoring', {
        inferenceRouting: this.inferenceRouting,
        extProcRequestBodyMode: requestBodyMode,
        extProcFailOpen: failOpen,
        ...monitoringProps,
        decodePool: this.decodePool,
        endpointPicker: this.endpointPicker,
        gateway: this.gateway,
      });
    }
    const { enabled: policyEnabled = true, decodeClients, ...policyProps } = props.networkPolicy ?? {};
    if (policyEnabled) {
      this.networkPolicy = new EppNetworkPolicy(this, 'NetworkPolicy', {
        ...policyProps,
        endpointPicker: this.endpointPicker,
        gateway: this.gateway,
        decodePool: this.decodePool,
      });
      this.decodeNetworkPolicy = new DecodeNetworkPolicy(this, 'DecodeNetworkPolicy', {
        decodePool: this.decodePool,
        gateway: this.gateway,
        endpointPicker: this.endpointPicker,
        ...(policyProps.metricsSources !== undefined ? { metricsSources: policyProps.metricsSources } : {}),
        ...(decodeClients !== undefined ? { clients: decodeClients } : {}),
      });
      if (this.sessionStore) {
        this.sessionStoreNetworkPolicy = new SessionStoreNetworkPolicy(this, 'SessionStoreNetworkPolicy', {
          sessionStore: this.sessionStore,
          endpointPicker: this.endpointPicker,
        });
      }
    }
  }
}

/**
 * The four initial namespaces Kubernetes starts with and keeps (kubernetes.io/docs/concepts/overview/working-with-objects
 * /namespaces/, "Initial namespaces"; the first three may not be deleted: `immortalNamespaces` of the
 * NamespaceLifecycle admission plugin, staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go
 * @ Kubernetes v1.28): never the stack's to own.
 */
export const KUBERNETES_NAMESPACES: readonly string[] = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

/** Whether to emit the Namespace object: `createNamespace` as given, never for one Kubernetes creates itself. */
function createsNamespace(namespace: string, createNamespace: boolean | undefined): boolean {
  if (!KUBERNETES_NAMESPACES.includes(namespace)) return createNamespace ?? true;
  if (createNamespace === true) {
    throw new PropsError('KvAwareRouting', 'createNamespace',
      `must be false or unset with namespace "${namespace}", which Kubernetes creates and keeps itself (${KUBERNETES_NAMESPACES.join(', ')}): emitting it would enforce Pod Security "baseline" on every workload there and hand the namespace to the GitOps tool, whose prune would try to delete it`,
      createNamespace);
  }
  return false;
}

/**
 * The EPP's latency scorer predicts the wait for a free sequence slot from the pods' `--max-num-seqs`: a number that
 * differs from what the decode pool runs predicts waits the pods do not have (or misses those they do), so a mismatch
 * fails synth rather than deploying quietly.
 */
function checkMaxNumSeqsAgree(pool: number | undefined, picker: number | undefined, config: EndpointPickerConfig): void {
  if (pool === undefined) return;
  if (picker !== undefined && picker !== pool) {
    throw new PropsError('KvAwareRouting', 'endpointPicker.maxNumSeqs', `must equal decode.maxNumSeqs (${pool}), the pods' --max-num-seqs, or be left unset (it is then taken from there)`, picker);
  }
  for (const plugin of config.plugins) {
    if (plugin.type !== 'latency-scorer') continue;
    const told = (plugin.parameters as { maxNumSeqs?: number } | undefined)?.maxNumSeqs;
    if (told !== pool) {
      throw new PropsError('KvAwareRouting', 'endpointPicker.config', `must tell its latency-scorer the pods' --max-num-seqs (decode.maxNumSeqs ${pool}): withMaxNumSeqs(config, ${pool}) from @kvroute/epp/config sets it`, told ?? 'unset');
    }
  }
}

/**
 * Whether the gateway fails open: the pool's `failureMode` and the EnvoyFilter's `failure_mode_allow` are one intent
 * (`failureModeAllow` is undefined in native mode, where Istio reads the pool's). Either given alone decides; both given
 * must agree.
 */
function resolveFailOpen(given: PoolFailureMode | undefined, failureModeAllow: boolean | undefined): boolean {
  const poolFailureMode = given === undefined ? undefined : checkOneOf('KvAwareRouting', 'poolFailureMode', given, ['FailOpen', 'FailClose'] as const);
  if (poolFailureMode !== undefined && failureModeAllow !== undefined && (poolFailureMode === 'FailOpen') !== failureModeAllow) {
    throw new PropsError('KvAwareRouting', 'poolFailureMode',
      `must agree with extProc.failureModeAllow (${failureModeAllow}): "${failureModeAllow ? 'FailOpen' : 'FailClose'}", or leave one of them unset to follow the other`, poolFailureMode);
  }
  if (poolFailureMode !== undefined) return poolFailureMode === 'FailOpen';
  return failureModeAllow ?? true;
}
