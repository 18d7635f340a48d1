import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { hardenedContainerSecurityContext, PodSecurityException, RUNTIME_DEFAULT_SECCOMP } from './pod-security';
import { checkClusterDomain, checkDns1035Label, checkDnsLabel, checkDnsSubdomain, checkImage, checkPort, checkQuantity, PropsError } from './validation';
import type { NetworkPeer } from './network-policy';

/** A key of a Kubernetes Secret in the EPP's namespace, read into an environment variable. */
export interface SecretKeyReference {
  /** The Secret's name. */
  readonly name: string;
  /** The key inside it. @default 'password' */
  readonly key?: string;
}

/**
 * A Valkey kvroute deploys for the EPP replicas' session bindings: one pod of a StatefulSet, its Service, and (through
 * `EppNetworkPolicy`) an ingress policy admitting the EPP pods only.
 */
export interface DeployedSessionStoreProps {
  /**
   * The image: Valkey, BSD-licensed, maintained by the Linux Foundation, wire-compatible with Redis. Its Debian image
   * runs as `valkey` (UID/GID 999) and needs only its working directory `/data` writable.
   * @default 'valkey/valkey:8.1.8'
   * @see https://github.com/valkey-io/valkey-container (8.1/debian/Dockerfile, docker-entrypoint.sh)
   */
  readonly image?: string;
  /**
   * Largest memory Valkey uses for data before it evicts the least recently used binding (`--maxmemory`, with
   * `allkeys-lru`: every binding has a TTL, so it evicts as `volatile-lru` would, and never refuses a write). A binding
   * takes about 220 bytes with its key (epp/README.md "Sessions across replicas"), so the default holds about 900,000
   * sessions, 14 times the session filter's default capacity; the container's memory limit is this plus 64 MiB. As
   * Valkey reads it: bytes, or a number with `k`, `m`, `g` (powers of 1000) or `kb`, `mb`, `gb` (of 1024), any case;
   * at least 16mb.
   * @default '192mb'
   */
  readonly maxMemory?: string;
  /**
   * A Secret key holding the password Valkey requires (`--requirepass`), passed to Valkey and to the EPP through
   * environment variables. Without it the store is reachable without a password by the pods the NetworkPolicy admits
   * (the EPP's, when the policy is enabled and enforced).
   * @default no password
   */
  readonly passwordSecret?: SecretKeyReference;
  /**
   * CPU request of the Valkey container; a Kubernetes quantity.
   * @default '100m'
   * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
   */
  readonly cpu?: string;
}

/** A Redis or Valkey the platform already runs, which the EPP replicas share. */
export interface ExistingSessionStoreProps {
  /** Its host name or address, e.g. `valkey.cache.svc.cluster.local`. */
  readonly host: string;
  /** @default 6379 */
  readonly port?: number;
  /** TLS (`rediss://`). @default false */
  readonly tls?: boolean;
  /** A Secret key, in the EPP's namespace, holding the store's password. @default no password */
  readonly passwordSecret?: SecretKeyReference;
  /**
   * Where the store's pods (or addresses) are, for the EPP's NetworkPolicy egress rule. Required when that policy
   * restricts egress; unused otherwise.
   * @default none
   */
  readonly networkPeer?: NetworkPeer;
  /**
   * The port the store listens on at `networkPeer`, for that egress rule, when it is not `port`: a NetworkPolicy
   * matches the port on the pod, after the Service has mapped its port to the pods' (a Service exposing 6380 in front
   * of pods on 6379 needs 6379 here).
   * @default port
   * @see https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/#NetworkPolicySpec
   */
  readonly networkPeerPort?: number;
}

/**
 * Where the EPP replicas share session bindings: exactly one of `deploy` (a Valkey kvroute deploys) or `existing` (a
 * Redis or Valkey the platform runs).
 * @see epp/README.md "Sessions across replicas"
 */
export type SessionStoreProps =
  | { readonly deploy: DeployedSessionStoreProps; readonly existing?: undefined }
  | { readonly existing: ExistingSessionStoreProps; readonly deploy?: undefined };

/** What the EPP needs to reach the store: rendered into its config (address) and its env (the password). */
export interface SessionStoreConnection {
  /** `redis://host:port` or `rediss://host:port`, as the session-affinity-filter's `sessionStore.address` takes it. */
  readonly address: string;
  readonly port: number;
  /** The Secret key holding the password, if any. */
  readonly passwordSecret?: Required<SecretKeyReference>;
  /** The store's pods, for the EPP's egress rule: labels in the EPP's namespace, or a peer the profile named. */
  readonly peer?: { readonly podLabels: Readonly<Record<string, string>> } | NetworkPeer;
  /** The port the egress rule opens at `peer` (the pods' port, which a Service may map `port` to). */
  readonly peerPort: number;
}

const SCOPE = 'SessionStore';

/** The environment variable the EPP reads the store's password from (the filter's `sessionStore.passwordEnv`). */
export const SESSION_STORE_PASSWORD_ENV = 'KVROUTE_SESSION_STORE_PASSWORD';

function secretRef(field: string, ref: SecretKeyReference | undefined): Required<SecretKeyReference> | undefined {
  return ref === undefined ? undefined : checkSecretKeyReference(SCOPE, field, ref, 'password');
}

/** A Secret name and key, checked: `{ name, key? }` with `key` defaulting to `defaultKey`. */
export function checkSecretKeyReference(scope: string, field: string, ref: SecretKeyReference, defaultKey: string): Required<SecretKeyReference> {
  if (typeof ref !== 'object' || ref === null) throw new PropsError(scope, field, 'must be { name, key? }', ref);
  const unknown = Object.keys(ref).filter((k) => k !== 'name' && k !== 'key');
  if (unknown.length > 0) throw new PropsError(scope, field, `must be { name, key? }; unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}`, ref);
  const key = ref.key ?? defaultKey;
  // A Secret's data keys: alphanumerics, '-', '_' and '.', at most 253, and neither '.' nor starting with '..'
  // (apimachinery validation.IsConfigMapKey and its hasChDirPrefix, which the API server applies to a pod's
  // secretKeyRef.key too: ValidateEnvVarSource, validateSecretKeySelector).
  if (typeof key !== 'string' || key.length === 0 || key.length > 253 || !/^[-._a-zA-Z0-9]+$/.test(key) || key === '.' || key.startsWith('..')) {
    throw new PropsError(scope, `${field}.key`, "must be a Secret key (at most 253 alphanumerics, '-', '_' or '.'; not '.', not starting with '..')", key);
  }
  return { name: checkDnsSubdomain(scope, `${field}.name`, ref.name), key };
}

/**
 * A memory amount as Valkey reads `--maxmemory` (memtoull, src/util.c): digits, then nothing or `b` (bytes), `k`, `m`,
 * `g` (10³, 10⁶, 10⁹) or `kb`, `mb`, `gb` (2¹⁰, 2²⁰, 2³⁰), the unit in any case. Undefined for what Valkey refuses
 * at start-up.
 */
export function valkeyMemoryBytes(value: string): number | undefined {
  const m = typeof value === 'string' ? /^(\d{1,18})(b|k|kb|m|mb|g|gb)?$/i.exec(value) : null;
  if (!m) return undefined;
  const unit: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 2 ** 10, m: 1e6, mb: 2 ** 20, g: 1e9, gb: 2 ** 30 };
  return Number(m[1]) * unit[(m[2] ?? '').toLowerCase()]!;
}

/** Checks an existing store's props and says how the EPP reaches it (a deployed store's construct says it itself). */
export function existingSessionStore(props: ExistingSessionStoreProps): SessionStoreConnection {
  const host = props.host;
  if (typeof host !== 'string' || host.length === 0 || host.length > 253 || !/^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/.test(host)) {
    throw new PropsError(SCOPE, 'existing.host', 'must be a host name or IPv4 address (letters, digits, \'-\' and \'.\')', host);
  }
  const port = checkPort(SCOPE, 'existing.port', props.port ?? 6379);
  const tls = props.tls ?? false;
  if (typeof tls !== 'boolean') throw new PropsError(SCOPE, 'existing.tls', 'must be true or false', tls);
  const passwordSecret = secretRef('existing.passwordSecret', props.passwordSecret);
  const peerPort = checkPort(SCOPE, 'existing.networkPeerPort', props.networkPeerPort ?? port);
  return {
    address: `${tls ? 'rediss' : 'redis'}://${host}:${port}`,
    port,
    peerPort,
    ...(passwordSecret ? { passwordSecret } : {}),
    ...(props.networkPeer !== undefined ? { peer: props.networkPeer } : {}),
  };
}

/** Props of {@link SessionStore}. */
export interface SessionStoreConstructProps extends DeployedSessionStoreProps {
  readonly namespace: string;
  /**
   * The cluster's DNS domain: the EPP connects to `<name>.<namespace>.svc.<clusterDomain>`, a name cluster DNS answers.
   * @default 'cluster.local'
   * @see https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/
   */
  readonly clusterDomain?: string;
  /**
   * Name of the StatefulSet and Service: a DNS-1035 label (a Service name) of at most
   * {@link SessionStore.MAX_NAME_LENGTH} characters, so that the pod's `controller-revision-hash` label fits.
   * @see https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#pod-name-label
   */
  readonly name: string;
}

/**
 * A Valkey for the EPP replicas' session bindings: a StatefulSet of one pod and a headless Service, its pods selected
 * by the StatefulSet's name label.
 *
 * Bindings are soft state (a lost binding costs one session's next request its cache, never a request), so:
 * persistence is off (`--save ''`, `--appendonly no`: nothing written, a restarted pod starts empty); one replica,
 * no PodDisruptionBudget (one would block every node drain; while the pod moves the EPPs fall back to their local
 * bindings, counted in `kvroute_epp_session_store_operations_total{operation="read"}` as timeout, error or unavailable); memory bounded with LRU eviction. The pod meets the
 * Pod Security "restricted" profile with a read-only root: the image runs as UID 999 and writes only `/data`, an
 * emptyDir here. It exports no metrics (Valkey has no Prometheus endpoint); the EPP's store counters watch it.
 */
export class SessionStore extends Construct {
  /** Valkey's port (the image's `EXPOSE 6379`). */
  public static readonly PORT = 6379;
  public static readonly PORT_NAME = 'tcp-valkey';
  /** The image's `valkey` user and group. */
  public static readonly UID = 999;
  /**
   * Longest StatefulSet name whose pod Kubernetes can label: the StatefulSet controller labels each pod
   * `controller-revision-hash: <StatefulSet>-<hash>`, the hash a 32-bit FNV hash written in decimal and safe-encoded (up to
   * 10 characters; `ControllerRevisionName`, k8s.io/kubernetes pkg/controller/history), and a label value has at most 63
   * characters. Longer, the StatefulSet is accepted but its pod is never created (kubernetes/kubernetes#64023); the
   * `statefulset.kubernetes.io/pod-name: <StatefulSet>-0` label is shorter.
   */
  public static readonly MAX_NAME_LENGTH = 63 - '-'.length - 10;

  public readonly namespace: string;
  public readonly name: string;
  public readonly image: string;
  public readonly podLabels: Readonly<Record<string, string>>;
  public readonly statefulSet: k8s.KubeStatefulSet;
  public readonly service: k8s.KubeService;
  public readonly serviceFqdn: string;
  public readonly connection: SessionStoreConnection;
  /** None: the pod meets every control of the Pod Security "restricted" profile and has a read-only root. */
  public readonly podSecurityExceptions: readonly PodSecurityException[] = [];

  constructor(scope: Construct, id: string, props: SessionStoreConstructProps) {
    super(scope, id);
    this.namespace = checkDnsLabel(SCOPE, 'namespace', props.namespace);
    this.name = checkDns1035Label(SCOPE, 'name', props.name, SessionStore.MAX_NAME_LENGTH);
    this.image = checkImage(SCOPE, 'deploy.image', props.image ?? 'valkey/valkey:8.1.8');
    const maxMemory = props.maxMemory ?? '192mb';
    const maxMemoryBytes = valkeyMemoryBytes(maxMemory);
    if (maxMemoryBytes === undefined || maxMemoryBytes < 16 * 2 ** 20) {
      throw new PropsError(SCOPE, 'deploy.maxMemory', 'must be Valkey memory, bytes or a number with k, kb, m, mb, g or gb (any case; k, m, g are powers of 1000, kb, mb, gb of 1024) such as "192mb" or "1gb", at least 16mb', maxMemory);
    }
    const maxMemoryMiB = Math.ceil(maxMemoryBytes / 2 ** 20);
    const passwordSecret = secretRef('deploy.passwordSecret', props.passwordSecret);
    const cpu = checkQuantity(SCOPE, 'deploy.cpu', props.cpu ?? '100m');
    this.podLabels = { 'app.kubernetes.io/name': 'valkey', 'app.kubernetes.io/instance': this.name, 'app.kubernetes.io/component': 'session-store' };
    this.serviceFqdn = `${this.name}.${this.namespace}.svc.${checkClusterDomain(SCOPE, props.clusterDomain)}`;
    const metadata = { name: this.name, namespace: this.namespace, labels: { ...this.podLabels } };

    this.service = new k8s.KubeService(this, 'Service', {
      metadata,
      spec: {
        // Headless: the StatefulSet's governing Service, and the name resolves to the one pod's address (ioredis
        // resolves it again on every reconnect, so a rescheduled pod is found).
        clusterIp: 'None',
        selector: { ...this.podLabels },
        // RESP is not HTTP: Istio must pass it through as TCP.
        ports: [{ name: SessionStore.PORT_NAME, port: SessionStore.PORT, targetPort: k8s.IntOrString.fromString(SessionStore.PORT_NAME), protocol: 'TCP', appProtocol: 'tcp' }],
      },
    });

    const tcpProbe = (periodSeconds: number): k8s.Probe => ({
      tcpSocket: { port: k8s.IntOrString.fromString(SessionStore.PORT_NAME) },
      initialDelaySeconds: 2,
      periodSeconds,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });
    const memoryLimit = `${maxMemoryMiB + 64}Mi`;
    this.statefulSet = new k8s.KubeStatefulSet(this, 'StatefulSet', {
      metadata,
      spec: {
        serviceName: this.name,
        replicas: 1,
        selector: { matchLabels: { ...this.podLabels } },
        template: {
          metadata: { labels: { ...this.podLabels } },
          spec: {
            // Valkey calls no Kubernetes API.
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: {
              runAsNonRoot: true, runAsUser: SessionStore.UID, runAsGroup: SessionStore.UID, seccompProfile: RUNTIME_DEFAULT_SECCOMP,
            },
            containers: [{
              name: 'valkey',
              image: this.image,
              imagePullPolicy: 'IfNotPresent',
              args: [
                'valkey-server',
                // Soft state: no RDB snapshots, no append-only file.
                '--save', '', '--appendonly', 'no',
                '--maxmemory', maxMemory, '--maxmemory-policy', 'allkeys-lru',
                '--port', String(SessionStore.PORT),
                // Kubernetes expands $(VAR) from the env below, so the value stays out of the manifest (it is in the
                // process's command line inside the pod, where anyone who can read it can reach Valkey anyway).
                ...(passwordSecret ? ['--requirepass', `$(${SESSION_STORE_PASSWORD_ENV})`] : []),
              ],
              ...(passwordSecret
                ? { env: [{ name: SESSION_STORE_PASSWORD_ENV, valueFrom: { secretKeyRef: { name: passwordSecret.name, key: passwordSecret.key } } }] }
                : {}),
              ports: [{ name: SessionStore.PORT_NAME, containerPort: SessionStore.PORT, protocol: 'TCP' }],
              resources: {
                requests: { cpu: k8s.Quantity.fromString(cpu), memory: k8s.Quantity.fromString(memoryLimit) },
                limits: { memory: k8s.Quantity.fromString(memoryLimit) },
              },
              readinessProbe: tcpProbe(5),
              livenessProbe: tcpProbe(10),
              securityContext: { ...hardenedContainerSecurityContext(), readOnlyRootFilesystem: true },
              // The image's WORKDIR; its entrypoint refuses to start when it is not writable.
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            }],
            volumes: [{ name: 'data', emptyDir: {} }],
          },
        },
      },
    });

    this.connection = {
      address: `redis://${this.serviceFqdn}:${SessionStore.PORT}`,
      port: SessionStore.PORT,
      peerPort: SessionStore.PORT,
      ...(passwordSecret ? { passwordSecret } : {}),
      peer: { podLabels: this.podLabels },
    };
  }
}
