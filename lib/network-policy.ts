import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { DecodePool } from './decode-pool';
import { EndpointPicker } from './endpoint-picker';
import { InferenceGateway } from './gateway';
import { SessionStore } from './session-store';
import { checkCidr, checkCidrExcept, checkDnsLabel, checkLabels, checkPort, PropsError } from './validation';

/**
 * The label the control plane sets on every Namespace, valued with its name, so a policy can select one namespace.
 * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/#targeting-a-namespace-by-its-name
 */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** Pods of one namespace, selected by the namespace's name. */
export interface NamespacePeer {
  /** The namespace's name (matched through `kubernetes.io/metadata.name`). */
  readonly namespace: string;
  /** Only the pods with these labels. @default every pod of the namespace */
  readonly podLabels?: Readonly<Record<string, string>>;
}

/** Pods of every namespace carrying some labels. */
export interface NamespaceLabelsPeer {
  /** Labels the namespaces carry (at least one: an empty selector would match every namespace). */
  readonly namespaceLabels: Readonly<Record<string, string>>;
  /** Only the pods with these labels. @default every pod of those namespaces */
  readonly podLabels?: Readonly<Record<string, string>>;
}

/** Pods of the policy's own namespace, by label. */
export interface LocalPodsPeer {
  /** Labels the pods carry (at least one: an empty selector would match every pod of the namespace). */
  readonly podLabels: Readonly<Record<string, string>>;
}

/**
 * Addresses outside the pod network (nodes, the API server, an external checker). Kubernetes leaves undefined whether
 * a policy sees addresses before or after Service and NAT rewriting, so list what the network plugin sees.
 * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-resource (ipBlock)
 */
export interface CidrPeer {
  /** An IPv4 or IPv6 CIDR, e.g. "10.0.0.0/16" or "192.0.2.10/32". */
  readonly cidr: string;
  /**
   * Ranges inside `cidr` to leave out, each a strict subset of it (the same address family, a longer prefix), as the
   * API server requires.
   * @default none
   */
  readonly except?: readonly string[];
}

/**
 * A source (or destination) of traffic, typed: exactly one of `namespace`, `namespaceLabels`, `podLabels` alone (this
 * namespace) or `cidr`. Checked at construction.
 */
export type NetworkPeer = NamespacePeer | NamespaceLabelsPeer | LocalPodsPeer | CidrPeer;

/** Where the EPP reaches the Kubernetes API server: addresses and the TCP ports it listens on at those addresses. */
export interface ApiServerEndpoint {
  /** The addresses, as CIDRs ("10.96.0.1/32"). */
  readonly cidrs: readonly string[];
  /** TCP ports at those addresses. */
  readonly ports: readonly number[];
}

/** Egress lockdown of the EPP; see {@link EppNetworkPolicyProps.egress}. */
export interface EppEgressOptions {
  /**
   * The API server the EPP watches pods and its InferencePool on. Whether the network plugin checks the `kubernetes`
   * Service's ClusterIP (port 443) or the endpoint addresses behind it (often a node or control-plane address on 6443) is
   * not defined by Kubernetes, so list both, each with its own port: `kubectl get svc kubernetes -n default` and
   * `kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes` show them.
   * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-resource
   */
  readonly apiServer: readonly ApiServerEndpoint[];
  /**
   * DNS servers, on UDP and TCP 53. Add a `cidr` peer for NodeLocal DNSCache (host-network pods no selector matches).
   * @default the kube-dns/CoreDNS pods: `{ namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } }`
   * @see https://kubernetes.io/docs/tasks/administer-cluster/nodelocaldns/
   */
  readonly dns?: readonly NetworkPeer[];
}

/** Props of {@link EppNetworkPolicy}. */
export interface EppNetworkPolicyProps {
  /** The EPP the policy selects; its ports and pod labels come from here. */
  readonly endpointPicker: EndpointPicker;
  /** The gateway whose pods call ext_proc (Istio labels them `gateway.networking.k8s.io/gateway-name: <name>`). */
  readonly gateway: InferenceGateway;
  /** The decode pods: central KV events arrive from them, and with `egress` the EPP may reach them only. */
  readonly decodePool: DecodePool;
  /**
   * Who may scrape the EPP's metrics port (9090): the Prometheus the ServiceMonitor feeds. An empty list closes it.
   * @default [{ namespace: 'monitoring' }] (kube-prometheus-stack's usual namespace)
   * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/#targeting-a-namespace-by-its-name
   */
  readonly metricsSources?: readonly NetworkPeer[];
  /**
   * Who besides the kubelet may call the gRPC health port (9003). The kubelet's probes come from the pod's own node, and
   * NetworkPolicy does not restrict that traffic ("traffic to and from the node where a Pod is running is always
   * allowed"; pods cannot "block access from their resident node"), so they need no rule. List peers here for other
   * health checkers, or a node CIDR where a network plugin filters node traffic all the same.
   * @default none
   * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/#what-you-can-t-do-with-network-policies-at-least-not-yet
   */
  readonly healthSources?: readonly NetworkPeer[];
  /**
   * Also restrict what the EPP connects to: DNS, the API server, the decode pods (their metrics on the InferencePool
   * target port; with per-pod KV events, their publisher and replay ports) and, with a shared session store, the
   * store's port on its pods (a deployed Valkey's, or `sessionStore.existing.networkPeer`), nothing else. Off by default because the
   * API server's address is the cluster's own; without it only ingress is restricted and the EPP may connect anywhere.
   * @default ingress only
   * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/#the-two-sorts-of-pod-isolation
   */
  readonly egress?: EppEgressOptions;
}

const SCOPE = 'EppNetworkPolicy';

/**
 * The EPP's NetworkPolicy: a pod selected by it accepts only what a rule allows.
 *
 * Ingress, per port of the EPP's Service:
 * - `grpc-ext-proc` 9002 from the gateway's pods only (the Envoy that runs ext_proc, or calls the EPP natively);
 * - `grpc-health` 9003 from the kubelet, which as node traffic needs no rule, plus `healthSources`;
 * - `http-metrics` 9090 from `metricsSources` (the monitoring namespace);
 * - `tcp-kv-events` (central KV events) from the decode pods, whose vLLM publishers connect to it.
 *
 * Egress is open unless `egress` is given; the EPP's own outbound calls are the API server, the pods' `/metrics` and,
 * per pod, their ZMQ sockets. Policies need a network plugin that enforces them; without one this object changes
 * nothing.
 */
export class EppNetworkPolicy extends Construct {
  public readonly name: string;
  public readonly namespace: string;
  public readonly policy: k8s.KubeNetworkPolicy;
  /** The EPP ports some ingress rule opens, in Service order. */
  public readonly ingressPorts: readonly number[];
  /** Whether egress is restricted too. */
  public readonly restrictsEgress: boolean;

  constructor(scope: Construct, id: string, props: EppNetworkPolicyProps) {
    super(scope, id);
    const { endpointPicker: epp, gateway, decodePool } = props;
    this.namespace = epp.namespace;
    this.name = epp.name;
    const local = (ns: string, labels: Readonly<Record<string, string>>) => podsIn(this.namespace, ns, labels);
    const metricsSources = peers('metricsSources', props.metricsSources ?? [{ namespace: 'monitoring' }]);
    const healthSources = peers('healthSources', props.healthSources ?? []);

    // One rule per EPP port, in the Service's order; a port without sources gets no rule (closed, bar node traffic).
    const sources: [number, k8s.NetworkPolicyPeer[]][] = [
      [EndpointPicker.GRPC_PORT, [local(gateway.namespace, gateway.podLabels)]],
      [EndpointPicker.HEALTH_PORT, healthSources],
      [EndpointPicker.METRICS_PORT, metricsSources],
      ...(epp.kvEventsPort !== undefined ? [[epp.kvEventsPort, [local(decodePool.namespace, decodePool.podLabels)]] as [number, k8s.NetworkPolicyPeer[]]] : []),
    ];
    const open = sources.filter(([, from]) => from.length > 0);
    const ingress: k8s.NetworkPolicyIngressRule[] = open.map(([port, from]) => ({ from, ports: [tcp(port)] }));
    this.ingressPorts = open.map(([port]) => port);

    let egress: k8s.NetworkPolicyEgressRule[] | undefined;
    if (props.egress !== undefined) {
      const opts = props.egress;
      const dns = peers('egress.dns', opts.dns ?? [{ namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } }]);
      if (dns.length === 0) throw new PropsError(SCOPE, 'egress.dns', 'must name at least one DNS server peer', opts.dns);
      if (!opts.apiServer?.length) {
        throw new PropsError(SCOPE, 'egress.apiServer', 'must list the API server\'s addresses and ports (the EPP watches pods and its InferencePool)', opts.apiServer);
      }
      const decodePorts = [decodePool.servicePort];
      if (decodePool.kvEvents?.mode === 'per-pod') decodePorts.push(decodePool.kvEvents.port, decodePool.kvEvents.replayPort);
      egress = [
        { to: dns, ports: [{ protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) }, tcp(53)] },
        ...opts.apiServer.map((ep, i): k8s.NetworkPolicyEgressRule => {
          const field = `egress.apiServer[${i}]`;
          if (!(ep?.cidrs?.length) || !(ep.ports?.length)) {
            throw new PropsError(SCOPE, field, 'must have non-empty cidrs and ports', ep);
          }
          return {
            to: ep.cidrs.map((c, j) => ({ ipBlock: { cidr: checkCidr(SCOPE, `${field}.cidrs[${j}]`, c) } })),
            ports: ep.ports.map((p, j) => tcp(checkPort(SCOPE, `${field}.ports[${j}]`, p))),
          };
        }),
        // The pods' /metrics on the InferencePool target port (the sidecar proxies it), and per-pod ZMQ sockets.
        { to: [local(decodePool.namespace, decodePool.podLabels)], ports: decodePorts.map(tcp) },
      ];
      // The shared session store: the EPP's only other outbound connection.
      const store = epp.sessionStore;
      if (store !== undefined) {
        if (store.peer === undefined) {
          throw new PropsError(SCOPE, 'egress', 'restricts egress, so the existing session store needs sessionStore.existing.networkPeer (where its pods or addresses are)', undefined);
        }
        egress.push({ to: [toPeer('sessionStore.existing.networkPeer', store.peer)], ports: [tcp(store.peerPort)] });
      }
    }
    this.restrictsEgress = egress !== undefined;

    this.policy = new k8s.KubeNetworkPolicy(this, 'Resource', {
      metadata: { name: this.name, namespace: this.namespace, labels: { ...epp.podLabels } },
      spec: {
        podSelector: { matchLabels: { ...epp.podLabels } },
        policyTypes: egress ? ['Ingress', 'Egress'] : ['Ingress'],
        ingress,
        ...(egress ? { egress } : {}),
      },
    });
  }
}

/** Validates and translates typed peers; errors name the construct, the field and the index. */
function peers(field: string, list: readonly NetworkPeer[], scope: string = SCOPE): k8s.NetworkPolicyPeer[] {
  if (!Array.isArray(list)) throw new PropsError(scope, field, 'must be a list of peers', list);
  return list.map((peer, i) => toPeer(`${field}[${i}]`, peer, scope));
}

/** The pods with `labels` in namespace `ns`, as a peer of a policy in `own` (no namespace selector there). */
function podsIn(own: string, ns: string, labels: Readonly<Record<string, string>>): k8s.NetworkPolicyPeer {
  return {
    podSelector: { matchLabels: { ...labels } },
    ...(ns !== own ? { namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: ns } } } : {}),
  };
}

function tcp(port: number): k8s.NetworkPolicyPort {
  return { protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) };
}

/** Checks a typed peer where a construct other than the EPP's policy takes one (errors name `scope.field`). */
export function checkNetworkPeer(scope: string, field: string, peer: NetworkPeer): NetworkPeer {
  toPeer(field, peer, scope);
  return peer;
}

function toPeer(field: string, peer: NetworkPeer, scope: string = SCOPE): k8s.NetworkPolicyPeer {
  const p = (peer ?? {}) as Partial<NamespacePeer & NamespaceLabelsPeer & CidrPeer>;
  const forms = (['namespace', 'namespaceLabels', 'cidr'] as const).filter((k) => p[k] !== undefined);
  const exactlyOne = 'must set exactly one of namespace, namespaceLabels, podLabels alone (pods of this namespace) or cidr';
  if (typeof peer !== 'object' || peer === null || forms.length > 1 || (forms.length === 0 && p.podLabels === undefined)) {
    throw new PropsError(scope, field, exactlyOne, peer);
  }
  const known = new Set(['namespace', 'namespaceLabels', 'podLabels', 'cidr', 'except']);
  const unknown = Object.keys(peer).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new PropsError(scope, field, `${exactlyOne}; unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}`, peer);
  if (p.cidr !== undefined) {
    if (p.podLabels !== undefined) throw new PropsError(scope, field, 'cidr cannot be combined with podLabels', peer);
    return {
      ipBlock: {
        cidr: checkCidr(scope, `${field}.cidr`, p.cidr),
        ...(p.except ? { except: checkCidrExcept(scope, field, p.cidr, p.except) } : {}),
      },
    };
  }
  if (p.except !== undefined) throw new PropsError(scope, field, 'except applies to cidr peers only', peer);
  const podSelector = p.podLabels !== undefined ? { podSelector: { matchLabels: checkLabels(scope, `${field}.podLabels`, p.podLabels) } } : {};
  if (p.namespace !== undefined) {
    return { namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: checkDnsLabel(scope, `${field}.namespace`, p.namespace) } }, ...podSelector };
  }
  if (p.namespaceLabels !== undefined) {
    return { namespaceSelector: { matchLabels: checkLabels(scope, `${field}.namespaceLabels`, p.namespaceLabels) }, ...podSelector };
  }
  return podSelector;
}

/** Props of {@link DecodeNetworkPolicy}. */
export interface DecodeNetworkPolicyProps {
  /** The decode pods the policy selects; their ports and labels come from here. */
  readonly decodePool: DecodePool;
  /** The gateway whose pods forward the requests (Istio labels them `gateway.networking.k8s.io/gateway-name`). */
  readonly gateway: InferenceGateway;
  /** The EPP, which scrapes the pods' metrics on the serving port and, with per-pod KV events, connects to their sockets. */
  readonly endpointPicker: EndpointPicker;
  /**
   * Who may scrape vLLM's own port (8001), where the vLLM PodMonitor reads per-pod series: the Prometheus the
   * ServiceMonitor feeds. The same list as the EPP's `metricsSources`.
   * @default [{ namespace: 'monitoring' }]
   */
  readonly metricsSources?: readonly NetworkPeer[];
  /**
   * Other clients allowed on the serving port (8000, the routing sidecar) besides the gateway's and the EPP's pods: an
   * in-cluster load test or an evaluation job that calls the pods directly. Everything else is refused, so a pod in the
   * cluster cannot send the sidecar the prefill headers the gateway strips (`x-prefiller-host-port`: the routing sidecar
   * would send the prompt to any host, its SSRF protection being off by default) nor reach vLLM past the gateway.
   * @default none
   * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/
   */
  readonly clients?: readonly NetworkPeer[];
}

/**
 * The decode pods' NetworkPolicy (ingress only: vLLM downloads its model and, with central KV events, connects to the
 * EPP): per port the decode pod declares,
 * - `http` 8000 (the routing sidecar, the InferencePool's target port) from the gateway's pods, the EPP's pods (their
 *   `/metrics` scrapes) and `clients`;
 * - `vllm` 8001 (vLLM's own server) from `metricsSources`, for the vLLM PodMonitor; the sidecar reaches it on the pod's
 *   own loopback, which NetworkPolicy does not see;
 * - `kv-events` and `kv-replay` (per-pod KV events) from the EPP's pods, which subscribe and ask for replays.
 * The kubelet's probes come from the node, which NetworkPolicy does not filter. A port the pod declares without a
 * decision here fails synth.
 */
export class DecodeNetworkPolicy extends Construct {
  public readonly policy: k8s.KubeNetworkPolicy;
  /** The decode ports some ingress rule opens, in the pod's order. */
  public readonly ingressPorts: readonly number[];

  constructor(scope: Construct, id: string, props: DecodeNetworkPolicyProps) {
    super(scope, id);
    const scopeName = 'DecodeNetworkPolicy';
    const { decodePool: pool, gateway, endpointPicker: epp } = props;
    const local = (ns: string, labels: Readonly<Record<string, string>>) => podsIn(pool.namespace, ns, labels);
    const metricsSources = peers('metricsSources', props.metricsSources ?? [{ namespace: 'monitoring' }], scopeName);
    const clients = peers('clients', props.clients ?? [], scopeName);
    const eppPods = local(epp.namespace, epp.podLabels);
    const sourcesByName: Record<string, k8s.NetworkPolicyPeer[]> = {
      [DecodePool.SIDECAR_PORT_NAME]: [local(gateway.namespace, gateway.podLabels), eppPods, ...clients],
      [DecodePool.VLLM_PORT_NAME]: metricsSources,
      [DecodePool.KV_EVENTS_PORT_NAME]: [eppPods],
      [DecodePool.KV_REPLAY_PORT_NAME]: [eppPods],
    };
    const rules: [number, k8s.NetworkPolicyPeer[]][] = pool.containerPorts.map((p) => {
      const from = sourcesByName[p.name];
      if (from === undefined) throw new PropsError(scopeName, 'decodePool', `declares port ${p.name} (${p.port}), which this policy has no rule for`, p.name);
      return [p.port, from];
    });
    const open = rules.filter(([, from]) => from.length > 0);
    this.ingressPorts = open.map(([port]) => port);
    this.policy = new k8s.KubeNetworkPolicy(this, 'Resource', {
      metadata: { name: pool.deploymentName, namespace: pool.namespace, labels: { ...pool.podLabels } },
      spec: {
        podSelector: { matchLabels: { ...pool.podLabels } },
        policyTypes: ['Ingress'],
        ingress: open.map(([port, from]) => ({ from, ports: [tcp(port)] })),
      },
    });
  }
}

/** Props of {@link SessionStoreNetworkPolicy}. */
export interface SessionStoreNetworkPolicyProps {
  /** The Valkey kvroute deploys. */
  readonly sessionStore: SessionStore;
  /** The EPP whose pods alone may connect to it. */
  readonly endpointPicker: EndpointPicker;
}

/**
 * The deployed session store's NetworkPolicy: its port admits the EPP's pods only (no metrics port: Valkey exports no
 * Prometheus metrics, the EPP's store counters watch it), and it connects nowhere (egress closed: a standalone Valkey
 * without replication opens no connection, not even DNS). The kubelet's TCP probes come from the node, which
 * NetworkPolicy does not filter.
 */
export class SessionStoreNetworkPolicy extends Construct {
  public readonly policy: k8s.KubeNetworkPolicy;
  /** The store ports some ingress rule opens. */
  public readonly ingressPorts: readonly number[];

  constructor(scope: Construct, id: string, props: SessionStoreNetworkPolicyProps) {
    super(scope, id);
    const { sessionStore: store, endpointPicker: epp } = props;
    if (store.namespace !== epp.namespace) {
      throw new PropsError('SessionStoreNetworkPolicy', 'sessionStore', `must be in the EPP's namespace "${epp.namespace}"`, store.namespace);
    }
    this.ingressPorts = [SessionStore.PORT];
    this.policy = new k8s.KubeNetworkPolicy(this, 'Resource', {
      metadata: { name: store.name, namespace: store.namespace, labels: { ...store.podLabels } },
      spec: {
        podSelector: { matchLabels: { ...store.podLabels } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{
          from: [{ podSelector: { matchLabels: { ...epp.podLabels } } }],
          ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(SessionStore.PORT) }],
        }],
        egress: [],
      },
    });
  }
}
