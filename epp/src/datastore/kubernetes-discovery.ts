import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { monotonicMs } from '../clock';
import type { Datastore } from './datastore';
import type { LabelSelector } from './label-selector';
import {
  POOL_API_VERSIONS,
  PoolSpecError,
  labelSelectorString,
  parseInferencePool,
  podEndpoints,
  splitApiVersion,
  type PodLike,
  type PoolApiVersion,
  type PoolGroup,
  type PoolSpec,
} from './inference-pool';
import { loadKubernetesClient } from './k8s-client';
import { ModelRewriteStore, poolRefGroup, type ModelRewrites } from './model-rewrites';
import type { Discovery } from './static-discovery';
import type { Endpoint } from './types';

/** Where the API server and credentials come from. */
export type KubeConfigSource =
  /** `$KUBECONFIG`, then `~/.kube/config`, then the in-cluster service account (client-node's loadFromDefault). */
  | { readonly kind: 'default' }
  /** The pod's service account only. */
  | { readonly kind: 'in-cluster' }
  | { readonly kind: 'file'; readonly path: string; readonly context?: string }
  /** A kubeconfig as an object (`clusters`, `users`, `contexts`, `currentContext`), for KubeConfig.loadFromOptions. */
  | { readonly kind: 'options'; readonly options: Readonly<Record<string, unknown>> };

/**
 * What start() says when `kind: 'default'` finds no credentials. GIE's runner stops there (`ctrl.GetConfig()`,
 * `cmd/epp/runner/runner.go` @ v1.5.0: controller-runtime's "could not locate a kubeconfig"); client-node instead
 * hands back a placeholder, an unauthenticated `http://localhost:8080`, which every request then refuses with "HTTP
 * protocol is not allowed when skipTLSVerify is not set or false", a warning that names neither the kubeconfig nor
 * the flags.
 */
export const NO_KUBECONFIG =
  'no Kubernetes credentials: $KUBECONFIG is unset, ~/.kube/config does not exist and no service account is mounted '
  + '(not in a pod); pass --kubeconfig FILE, or list the model servers with --endpoints HOST:PORT,...';

/**
 * client-node's loadFromDefault, when it finds no `$KUBECONFIG`, no `~/.kube/config` and no in-cluster service
 * account, loads this placeholder: cluster `cluster` at `http://localhost:8080`, user `user`, context
 * `loaded-context` (`loadFromClusterAndUser` in `dist/config.js` @ @kubernetes/client-node 1.4.0).
 */
function isPlaceholderKubeConfig(kc: K8s.KubeConfig): boolean {
  const cluster = kc.getCurrentCluster();
  const users = kc.getUsers();
  return kc.getCurrentContext() === 'loaded-context' && kc.getClusters().length === 1 && cluster?.name === 'cluster'
    && cluster.server === 'http://localhost:8080' && users.length === 1 && users[0]?.name === 'user' && !users[0].token;
}

export interface KubernetesDiscoveryOptions {
  readonly poolName: string;
  /** Default `default`. */
  readonly poolNamespace?: string;
  /**
   * `--pool-group`: the group InferenceObjectives' and InferenceModelRewrites' `poolRef.group` must name (GIE v1.5.0
   * `inferenceobjective_reconciler.go`, `inferencemodelrewrite_reconciler.go`; default: the pool's own group), and the
   * pool version read first: v1alpha2 for `inference.networking.x-k8s.io` (GIE v1.0-v1.4 read that group's pool), then
   * v1, which GIE v1.5.0 reads whatever the group (`controller_manager.go`). Default: v1, then v1alpha2.
   */
  readonly poolGroup?: PoolGroup;
  readonly kubeConfig?: KubeConfigSource;
  /** Retry delays after API errors: doubling from initialMs up to maxMs, with ±20% jitter. Default 500 ms .. 30 s. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /** Asked of the API server for each watch, which then ends it and discovery re-lists or resumes. Default 300. */
  readonly watchTimeoutSeconds?: number;
  /** Progress and error lines; default none. */
  readonly log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /**
   * Also follow the namespace's InferenceObjectives (`llm-d.ai/v1alpha2` when served, else GIE's
   * `inference.networking.x-k8s.io/v1alpha2`), whose priorities `objectivePriority` answers for the pool. Default false.
   */
  readonly objectives?: boolean;
  /**
   * Also follow the namespace's InferenceModelRewrites (`llm-d.ai/v1alpha2` when served, else GIE's
   * `inference.networking.x-k8s.io/v1alpha2`) that refer to the pool, whose rules `modelRewrites` answers.
   * Default false.
   */
  readonly modelRewrites?: boolean;
  /**
   * llm-d-router v0.10.0's standalone mode (`--endpoint-selector`, `--endpoint-target-ports`; `cmd/epp/runner/runner.go`
   * NewEndpointPoolFromOptions): no InferencePool is read; the namespace's pods this selector matches, at these ports,
   * are the pool, and `poolName` only names it. Default: read the InferencePool `poolName`.
   */
  readonly endpointSelector?: { readonly selector: LabelSelector; readonly targetPorts: readonly number[] };
}

/**
 * The groups InferenceObjective and InferenceModelRewrite are served in, the preferred first: llm-d-router v0.10.0's
 * own `llm-d.ai/v1alpha2` (`apix/v1alpha2/zz_generated.register.go`), then GIE's `inference.networking.x-k8s.io/
 * v1alpha2` (InferenceObjective in every GIE release since v1.0.0, InferenceModelRewrite since v1.5.0), as
 * `supportedInferenceAPIGVs` in llm-d-router's `pkg/epp/server/controller_config.go` @ v0.10.0. Same spec in both.
 */
export const INFERENCE_API_GROUPS = ['llm-d.ai', 'inference.networking.x-k8s.io'] as const;
export type InferenceApiGroup = (typeof INFERENCE_API_GROUPS)[number];
const V1ALPHA2_VERSION = 'v1alpha2';
/** How often a cluster without one of those CRDs is asked again. */
const MISSING_CRD_POLL_MS = 30_000;

/** A followed `v1alpha2` resource: its plural, what to log, and where its objects go. */
interface FollowedResource {
  readonly plural: string;
  readonly kind: string;
  /** What routing falls back to without the CRD (logged once). */
  readonly without: string;
  changed(obj: unknown): void;
  deleted(name: string): void;
  clear(): void;
  size(): number;
}

/** Neither group serves a followed kind (API discovery lists it in neither): handled as the list's 404 is. */
class KindNotServed extends Error {
  readonly statusCode = NOT_FOUND;
}

type DiscoveryEvent = 'synced' | 'unsynced' | 'error';

interface WatchHandle {
  /** Resolves when the stream ends: null on a clean close, the error otherwise. */
  readonly done: Promise<unknown>;
  cancel(): void;
}

const GONE = 410;
/** A watch the server ends cleanly sooner than this is retried after a backoff rather than at once. */
const QUICK_CLOSE_MS = 1000;
const MISSING_POOL_POLL_MS = 5000;
const NOT_FOUND = 404;
const FORBIDDEN = 403;

/**
 * Follows one InferencePool and the Ready pods its selector picks, keeping the datastore's endpoint set equal to
 * `{podIP:targetPort}` of those pods, one endpoint per target port each serves.
 *
 * Two loops run side by side. The pool loop reads the pool (either API version), applies its selector and port, and
 * watches it; a change of selector or port restarts the pod loop, which re-lists (a full resync) and replaces the
 * endpoint set. The pod loop lists the matching pods, then watches from the list's resourceVersion; a watch that the
 * server ends cleanly is resumed from the last version seen, a 410 Gone or any error leads to a fresh list after a
 * backoff. The pool counts as synced once it exists and one pod list under its current spec has been applied; it
 * stays synced through later watch errors (the last known endpoints keep serving) and stops being so when the pool is
 * missing or deleted, which also empties the endpoint set.
 */
export class KubernetesDiscovery implements Discovery {
  private readonly poolName: string;
  private readonly namespace: string;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly watchTimeoutSeconds: number;
  private core: K8s.CoreV1Api | undefined;
  private custom: K8s.CustomObjectsApi | undefined;
  private watcher: K8s.Watch | undefined;

  private running = false;
  private stopped = false;
  private isSynced = false;
  private error: Error | undefined;
  private pool: PoolSpec | undefined;
  /** Bumped whenever the pod loop must restart (pool spec change, pool gone, stop). */
  private podGeneration = 0;
  private podsListedGeneration = -1;
  /** Pod name → the endpoint keys it currently contributes (one per target port it serves). */
  private readonly podKeys = new Map<string, readonly string[]>();
  /** The namespace's InferenceObjectives that refer to this pool by name: their pool group and priority. */
  private readonly objectives = new Map<string, { readonly poolGroup: string; readonly priority: number }>();
  /** The namespace's InferenceModelRewrites that refer to this pool by name. */
  private readonly rewrites = new ModelRewriteStore(() => this.poolGroup());
  /** The group each followed kind is read from (InferenceObjective, InferenceModelRewrite), once discovery chose one. */
  private readonly followedGroups = new Map<string, InferenceApiGroup>();
  private readonly cancels = new Set<() => void>();
  private readonly loops = new Set<Promise<void>>();
  private readonly listeners: Record<DiscoveryEvent, Set<(arg?: unknown) => void>> = {
    synced: new Set(),
    unsynced: new Set(),
    error: new Set(),
  };

  constructor(private readonly datastore: Datastore, private readonly options: KubernetesDiscoveryOptions) {
    if (!options.poolName) throw new Error('poolName is required');
    this.poolName = options.poolName;
    this.namespace = options.poolNamespace || 'default';
    this.initialBackoffMs = options.backoff?.initialMs ?? 500;
    this.maxBackoffMs = Math.max(this.initialBackoffMs, options.backoff?.maxMs ?? 30_000);
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
  }

  get synced(): boolean {
    return this.isSynced;
  }

  get lastError(): Error | undefined {
    return this.error;
  }

  /** The pool spec in force, once the pool has been read. */
  get currentPool(): PoolSpec | undefined {
    return this.pool;
  }

  on(event: 'synced' | 'unsynced', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: DiscoveryEvent, listener: (err: Error) => void): this {
    this.listeners[event].add(listener as (arg?: unknown) => void);
    return this;
  }

  off(event: DiscoveryEvent, listener: (err: Error) => void): this {
    this.listeners[event].delete(listener as (arg?: unknown) => void);
    return this;
  }

  /** Loads the client and kubeconfig (rejecting if either is unusable) and starts following the pool. */
  async start(): Promise<void> {
    if (this.running || this.stopped) throw new Error('KubernetesDiscovery can be started once');
    const k8s = await loadKubernetesClient();
    const kc = new k8s.KubeConfig();
    const src = this.options.kubeConfig ?? { kind: 'default' };
    switch (src.kind) {
      case 'default':
        kc.loadFromDefault();
        if (isPlaceholderKubeConfig(kc)) throw new Error(NO_KUBECONFIG);
        break;
      case 'in-cluster':
        kc.loadFromCluster();
        break;
      case 'file':
        try {
          kc.loadFromFile(src.path);
        } catch (e) {
          // client-node's own text names neither the file's role nor, for a parse error, the file.
          throw new Error(`kubeconfig ${src.path}: ${(e as Error).message}`);
        }
        if (src.context) kc.setCurrentContext(src.context);
        break;
      case 'options':
        kc.loadFromOptions(src.options);
        break;
    }
    if (!kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster');
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    this.watcher = new k8s.Watch(kc);
    this.running = true;
    const standalone = this.options.endpointSelector;
    if (standalone !== undefined) {
      // The pool is the flags: nothing to read or watch but the pods.
      this.applyPool({ apiVersion: 'inference.networking.k8s.io/v1', name: this.poolName, namespace: this.namespace, selector: standalone.selector, targetPorts: standalone.targetPorts });
    } else {
      this.spawn(this.poolLoop());
    }
    if (this.options.objectives === true) {
      this.spawn(this.followResources({
        plural: 'inferenceobjectives',
        kind: 'InferenceObjective',
        without: "priorities come from the config's flowControl.objectives",
        changed: (obj) => this.objectiveChanged(obj),
        deleted: (name) => this.objectives.delete(name),
        clear: () => this.objectives.clear(),
        size: () => this.objectives.size,
      }));
    }
    if (this.options.modelRewrites === true) {
      this.spawn(this.followResources({
        plural: 'inferencemodelrewrites',
        kind: 'InferenceModelRewrite',
        without: 'models are forwarded as asked (or as x-gateway-model-name-rewrite says)',
        changed: (obj) => this.modelRewriteChanged(obj),
        deleted: (name) => this.rewrites.delete(name),
        clear: () => this.rewrites.clear(),
        size: () => this.rewrites.size,
      }));
    }
  }

  /**
   * The priority of the InferenceObjective `name` when it refers to this pool (by name, and by `--pool-group`, else by
   * the pool's group once its API version is known), as GIE's reconciler keeps it (`pkg/epp/controller/inferenceobjective_reconciler.go` @
   * v1.5.0: objectives of other pools are dropped); an unset `spec.priority` is 0. Undefined for any other name.
   */
  objectivePriority(name: string): number | undefined {
    const objective = this.objectives.get(name);
    if (objective === undefined) return undefined;
    const group = this.poolGroup();
    return group === undefined || objective.poolGroup === group ? objective.priority : undefined;
  }

  /**
   * The priorities of the InferenceObjectives `objectivePriority` answers for (those referring to this pool), each
   * once: llm-d-router v0.10.0 provisions a flow-control band for each (`controller/inferenceobjective_reconciler.go`
   * syncPriorityBands), so they are active levels of a per-band usage-limit policy.
   */
  objectivePriorities(): number[] {
    const group = this.poolGroup();
    const out = new Set<number>();
    for (const objective of this.objectives.values()) if (group === undefined || objective.poolGroup === group) out.add(objective.priority);
    return [...out];
  }

  /**
   * The group InferenceObjectives are read from: `llm-d.ai` when the cluster serves them there, else GIE's
   * `inference.networking.x-k8s.io`; undefined before discovery or when neither serves them.
   */
  get objectivesGroup(): InferenceApiGroup | undefined {
    return this.followedGroups.get('InferenceObjective');
  }

  /** The group InferenceModelRewrites are read from, chosen as `objectivesGroup`'s is. */
  get modelRewritesGroup(): InferenceApiGroup | undefined {
    return this.followedGroups.get('InferenceModelRewrite');
  }

  /** The group objectives and rewrites must refer to: `--pool-group`, else the pool's, once its API version is known. */
  private poolGroup(): string | undefined {
    if (this.options.endpointSelector !== undefined) return undefined;
    if (this.options.poolGroup !== undefined) return this.options.poolGroup;
    return this.pool !== undefined ? splitApiVersion(this.pool.apiVersion).group : undefined;
  }

  /**
   * The namespace's InferenceModelRewrites that refer to this pool (by name, and by `--pool-group`, else by the pool's
   * group once its API version is known), as GIE v1.5.0's reconciler and store keep them (`pkg/epp/controller/inferencemodelrewrite_reconciler.go`,
   * `pkg/epp/datastore/modelrewritestore.go`).
   */
  get modelRewrites(): ModelRewrites {
    return this.rewrites;
  }

  /** Resolves once synced; rejects after timeoutMs with the last error. */
  waitForSync(timeoutMs: number): Promise<void> {
    if (this.isSynced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onSynced = (): void => {
        clearTimeout(timer);
        this.off('synced', onSynced);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off('synced', onSynced);
        reject(new Error(`InferencePool ${this.namespace}/${this.poolName} not synced after ${timeoutMs} ms${this.error ? `: ${this.error.message}` : ''}`));
      }, timeoutMs);
      this.on('synced', onSynced);
    });
  }

  /** Ends all watches and loops. Endpoints are left in the datastore; the pool no longer counts as synced. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.podGeneration++;
    for (const cancel of [...this.cancels]) cancel();
    while (this.loops.size > 0) await Promise.all([...this.loops]);
    this.setSynced(false);
  }

  // ---- pool ----

  private async poolLoop(): Promise<void> {
    let backoff = this.initialBackoffMs;
    while (!this.stopped) {
      try {
        const found = await this.fetchPool();
        if (this.stopped) return;
        if (!('pool' in found)) {
          this.poolMissing(found.kind === 'missing'
            ? `InferencePool ${this.namespace}/${this.poolName} not found (looked for ${found.looked.join(', ')})`
            : this.markedForDeletionMessage());
          // Polled rather than backed off to the API-error ceiling: the pool is often created just after the EPP.
          await this.sleep(Math.min(backoff, MISSING_POOL_POLL_MS));
          backoff = this.nextBackoff(backoff);
          continue;
        }
        this.applyPool(found.pool);
        const watchStarted = monotonicMs();
        const outcome = await this.watchPool(found.pool, found.listVersion);
        if (outcome === 'deleted') this.poolMissing(`InferencePool ${this.namespace}/${this.poolName} was deleted`);
        if (outcome === 'marked-for-deletion') this.poolMissing(this.markedForDeletionMessage());
        // Any other end (server timeout, 410, dropped connection) falls through to a fresh list, which is cheap for
        // one object and re-establishes a valid resourceVersion. A watch that ends at once, again and again, is
        // backed off like an error so a misbehaving server cannot spin this loop.
        if (outcome === 'error' || monotonicMs() - watchStarted < QUICK_CLOSE_MS) {
          await this.sleep(backoff);
          backoff = this.nextBackoff(backoff);
        } else {
          backoff = this.initialBackoffMs;
        }
      } catch (err) {
        if (this.stopped) return;
        this.fail(err, 'reading the InferencePool');
        await this.sleep(backoff);
        backoff = this.nextBackoff(backoff);
      }
    }
  }

  private versionsToTry(): PoolApiVersion[] {
    const [v1, v1alpha2] = POOL_API_VERSIONS;
    return this.options.poolGroup === 'inference.networking.x-k8s.io' ? [v1alpha2, v1] : [v1, v1alpha2];
  }

  /**
   * Lists the pool by name rather than GETting it: a list carries the collection's current resourceVersion, which is
   * safe to watch from. The object's own version can predate the server's compaction window (a pool unchanged for
   * hours), and a watch from it would only ever answer 410 Gone.
   */
  private async fetchPool(): Promise<{ pool: PoolSpec; listVersion: string } | { kind: 'marked-for-deletion' } | { kind: 'missing'; looked: string[] }> {
    const looked: string[] = [];
    /** The first 403, thrown when no version could be read at all. */
    let forbidden: unknown;
    let answered = false;
    for (const apiVersion of this.versionsToTry()) {
      const { group, version } = splitApiVersion(apiVersion);
      let list: { items?: unknown[]; metadata?: { resourceVersion?: string } };
      try {
        list = (await this.customApi().listNamespacedCustomObject({
          group,
          version,
          namespace: this.namespace,
          plural: 'inferencepools',
          fieldSelector: `metadata.name=${this.poolName}`,
        })) as typeof list;
      } catch (err) {
        // 404: this version's CRD is not installed; the pool may exist under the other one. 403: the Role grants the
        // other group only (kvroute's and GIE's charts grant the one group they deploy the pool in).
        if (statusCode(err) === NOT_FOUND) {
          answered = true;
          looked.push(apiVersion);
          continue;
        }
        if (statusCode(err) === FORBIDDEN) {
          forbidden ??= err;
          looked.push(`${apiVersion} (forbidden: HTTP ${FORBIDDEN})`);
          continue;
        }
        throw err;
      }
      answered = true;
      looked.push(apiVersion);
      const obj = (list.items ?? []).find((o) => (o as { metadata?: { name?: string } }).metadata?.name === this.poolName);
      if (obj !== undefined && isMarkedForDeletion(obj)) return { kind: 'marked-for-deletion' };
      if (obj !== undefined) return { pool: parseInferencePool(obj, apiVersion), listVersion: list.metadata?.resourceVersion ?? '' };
    }
    // No version could be read at all: that is the error to report, not a missing pool.
    if (!answered && forbidden !== undefined) throw forbidden;
    return { kind: 'missing', looked };
  }

  private applyPool(next: PoolSpec): void {
    const prev = this.pool;
    this.pool = next;
    const changed =
      !prev ||
      prev.apiVersion !== next.apiVersion ||
      prev.targetPorts.join(',') !== next.targetPorts.join(',') ||
      labelSelectorString(prev.selector) !== labelSelectorString(next.selector);
    if (!changed) return;
    if (this.options.endpointSelector !== undefined) {
      this.log('info', `endpoint selector ${labelSelectorString(next.selector) || '(every pod)'} in namespace ${this.namespace}, target port${next.targetPorts.length > 1 ? 's' : ''} ${next.targetPorts.join(', ')} (no InferencePool; pool named ${this.poolName})`);
      this.restartPodLoop();
      return;
    }
    this.log(
      'info',
      `InferencePool ${this.namespace}/${this.poolName} (${next.apiVersion}): selector ${labelSelectorString(next.selector)}, target port${next.targetPorts.length > 1 ? 's' : ''} ${next.targetPorts.join(', ')}${prev ? ' (changed, resyncing pods)' : ''}`,
    );
    this.restartPodLoop();
  }

  /**
   * A pool whose deletion has begun (a finalizer still holds the object) is no pool: GIE v1.5.0's (and llm-d-router
   * v0.10.0's) `inferencepool_reconciler.go` Reconcile clears the datastore for it ("InferencePool is marked for
   * deletion"), so the gateway's fallback takes over rather than a pool about to vanish.
   */
  private markedForDeletionMessage(): string {
    return `InferencePool ${this.namespace}/${this.poolName} is marked for deletion (metadata.deletionTimestamp is set)`;
  }

  private poolMissing(message: string): void {
    if (this.pool || !this.error || this.error.message !== message) this.fail(new Error(message));
    this.pool = undefined;
    this.podGeneration++;
    this.cancelPodWatch?.();
    this.podKeys.clear();
    this.datastore.clear();
    this.setSynced(false);
  }

  private async watchPool(pool: PoolSpec, fromVersion: string): Promise<'deleted' | 'marked-for-deletion' | 'closed' | 'error'> {
    const { group, version } = splitApiVersion(pool.apiVersion);
    let deleted = false;
    let marked = false;
    const handle = this.startWatch(
      `/apis/${group}/${version}/namespaces/${this.namespace}/inferencepools`,
      {
        fieldSelector: `metadata.name=${this.poolName}`,
        resourceVersion: fromVersion || undefined,
        timeoutSeconds: this.watchTimeoutSeconds,
      },
      (type, obj) => {
        if (type === 'DELETED') {
          deleted = true;
          return true;
        }
        if ((type === 'ADDED' || type === 'MODIFIED') && isMarkedForDeletion(obj)) {
          marked = true;
          return true;
        }
        if (type === 'ADDED' || type === 'MODIFIED') {
          try {
            this.applyPool(parseInferencePool(obj, pool.apiVersion));
          } catch (err) {
            // The CRD's validation makes this unlikely; keep routing with the last good spec.
            this.fail(err, 'reading an InferencePool update');
          }
        }
        return false;
      },
    );
    const err = await handle.done;
    if (deleted) return 'deleted';
    if (marked) return 'marked-for-deletion';
    if (err) {
      if (!this.stopped) this.fail(err, 'watching the InferencePool');
      return 'error';
    }
    return 'closed';
  }

  // ---- pods ----

  private cancelPodWatch: (() => void) | undefined;

  private restartPodLoop(): void {
    const generation = ++this.podGeneration;
    this.cancelPodWatch?.();
    this.spawn(this.podLoop(generation));
  }

  private async podLoop(generation: number): Promise<void> {
    let backoff = this.initialBackoffMs;
    let resourceVersion: string | undefined;
    const current = (): boolean => !this.stopped && generation === this.podGeneration;
    while (current()) {
      const pool = this.pool;
      if (!pool) return;
      try {
        if (resourceVersion === undefined) {
          resourceVersion = await this.listPods(pool, current);
          if (resourceVersion === undefined) return;
          this.podsListedGeneration = generation;
          this.setSynced(true);
        }
        const watchStarted = monotonicMs();
        const result = await this.watchPods(pool, resourceVersion, current);
        if (!current()) return;
        if (!result.ok) {
          resourceVersion = undefined;
          if (statusCode(result.error) !== GONE) {
            this.fail(result.error, 'watching pods');
            await this.sleep(backoff);
            backoff = this.nextBackoff(backoff);
          }
          continue;
        }
        resourceVersion = result.resourceVersion;
        backoff = await this.afterCleanClose(watchStarted, backoff);
      } catch (err) {
        if (!current()) return;
        resourceVersion = undefined;
        this.fail(err, 'listing pods');
        await this.sleep(backoff);
        backoff = this.nextBackoff(backoff);
      }
    }
  }

  /** Lists the pool's pods and makes them the endpoint set. Returns the list's resourceVersion. */
  private async listPods(pool: PoolSpec, current: () => boolean): Promise<string | undefined> {
    const list = await this.coreApi().listNamespacedPod({
      namespace: this.namespace,
      labelSelector: labelSelectorString(pool.selector),
    });
    if (!current()) return undefined;
    const desired: Endpoint[] = [];
    this.podKeys.clear();
    for (const pod of list.items as PodLike[]) {
      const eps = podEndpoints(pod, pool);
      if (eps.length > 0 && pod.metadata?.name) {
        desired.push(...eps);
        this.podKeys.set(pod.metadata.name, eps.map((ep) => ep.key));
      }
    }
    const { added, removed } = this.datastore.replaceEndpoints(desired);
    if (added.length > 0 || removed.length > 0) {
      this.log('info', `pods listed: ${desired.length} ready endpoints (+${added.length} -${removed.length})`);
    }
    return list.metadata?.resourceVersion ?? '';
  }

  private async watchPods(
    pool: PoolSpec,
    resourceVersion: string,
    current: () => boolean,
  ): Promise<{ ok: true; resourceVersion: string } | { ok: false; error: unknown }> {
    let rv = resourceVersion;
    let gone: unknown;
    const handle = this.startWatch(
      `/api/v1/namespaces/${this.namespace}/pods`,
      {
        labelSelector: labelSelectorString(pool.selector),
        resourceVersion: resourceVersion || undefined,
        allowWatchBookmarks: true,
        timeoutSeconds: this.watchTimeoutSeconds,
      },
      (type, obj) => {
        if (!current()) return true;
        if (type === 'ERROR') {
          const code = (obj as { code?: unknown } | undefined)?.code;
          gone = code === GONE ? { statusCode: GONE, message: 'resource version too old' } : new Error(`watch error: ${JSON.stringify(obj)}`);
          return true;
        }
        const pod = obj as PodLike;
        if (pod.metadata?.resourceVersion) rv = pod.metadata.resourceVersion;
        if (type === 'ADDED' || type === 'MODIFIED') this.podChanged(pod, pool);
        else if (type === 'DELETED') this.podGone(pod);
        return false;
      },
    );
    this.cancelPodWatch = handle.cancel;
    const err = await handle.done;
    if (this.cancelPodWatch === handle.cancel) this.cancelPodWatch = undefined;
    if (gone !== undefined) return { ok: false, error: gone };
    if (err) return { ok: false, error: err };
    return { ok: true, resourceVersion: rv };
  }

  private podChanged(pod: PodLike, pool: PoolSpec): void {
    const name = pod.metadata?.name;
    if (!name) return;
    const eps = podEndpoints(pod, pool);
    const keys = eps.map((ep) => ep.key);
    for (const oldKey of this.podKeys.get(name) ?? []) if (!keys.includes(oldKey)) this.removeOwned(name, oldKey);
    if (eps.length === 0) {
      this.podKeys.delete(name);
      return;
    }
    this.podKeys.set(name, keys);
    for (const ep of eps) this.datastore.upsertEndpoint(ep);
  }

  private podGone(pod: PodLike): void {
    const name = pod.metadata?.name;
    if (!name) return;
    for (const key of this.podKeys.get(name) ?? []) this.removeOwned(name, key);
    this.podKeys.delete(name);
  }

  /** Removes `key` only while it still belongs to pod `name`: its IP may already have gone to a newer pod. */
  private removeOwned(name: string, key: string): void {
    const ep = this.datastore.get(key);
    if (ep && (ep.podName ?? ep.name) === name && ep.namespace === this.namespace) this.datastore.removeEndpoint(key);
  }

  // ---- InferenceObjectives and InferenceModelRewrites ----

  /**
   * Asks API discovery (`GET /apis/<group>/v1alpha2`) which group serves `kind`, llm-d.ai first, then GIE's, as
   * llm-d-router's `populateWithDiscovery` / `findGroupVersion` / `gvkExists` (`pkg/epp/server/controller_config.go` @
   * v0.10.0): a group counts when its resource list names the kind. `both` says the preferred group serves it and
   * GIE's does too (whose resources are then ignored). Undefined when neither does. Upstream takes any discovery
   * error as "not served"; here only a 404 is, and other errors (a refused connection, a 5xx) are retried like a
   * failed list, so a passing API-server hiccup does not turn the resources off.
   */
  private async servedGroup(kind: string): Promise<{ readonly group: InferenceApiGroup; readonly both: boolean } | undefined> {
    const serves = async (group: InferenceApiGroup): Promise<boolean> => {
      try {
        const list = await this.customApi().getAPIResources({ group, version: V1ALPHA2_VERSION });
        return (list.resources ?? []).some((r) => r.kind === kind);
      } catch (err) {
        if (statusCode(err) === NOT_FOUND) return false;
        throw err;
      }
    };
    const [preferred, legacy] = INFERENCE_API_GROUPS;
    if (await serves(preferred)) return { group: preferred, both: await serves(legacy) };
    if (await serves(legacy)) return { group: legacy, both: false };
    return undefined;
  }

  /**
   * Follows the namespace's resources of `kind` in the group API discovery names (`servedGroup`: llm-d.ai/v1alpha2,
   * else inference.networking.x-k8s.io/v1alpha2): lists them, then watches from the list's version, as the pod loop
   * does. The group is asked again before each list and each resumed watch; when it changes (a CRD installed or
   * removed) the resources are listed afresh from the new one. Upstream chooses once, at start. A cluster serving the
   * kind in neither group (an older GIE, or none) is asked again every 30 s, quietly; other errors are logged and
   * retried with backoff. Neither marks discovery as failing: routing does not depend on these resources.
   */
  private async followResources(kind: FollowedResource): Promise<void> {
    let backoff = this.initialBackoffMs;
    let resourceVersion: string | undefined;
    /** What was last logged (a status, or an error's message): each condition is logged once, when it starts. */
    let reported: string | undefined;
    /** Whether the "both groups installed" warning has been logged (once, as upstream logs it once at start). */
    let warnedBoth = false;
    while (!this.stopped) {
      try {
        const served = await this.servedGroup(kind.kind);
        if (this.stopped) return;
        if (served === undefined) throw new KindNotServed();
        const group = served.group;
        if (this.followedGroups.get(kind.kind) !== group) {
          const previous = this.followedGroups.get(kind.kind);
          this.followedGroups.set(kind.kind, group);
          resourceVersion = undefined;
          // For GIE's group, with llm-d-router's deprecation note, which its reconcilers log at info for each legacy
          // object (`pkg/epp/controller/inferenceobjective_reconciler.go`, `inferencemodelrewrite_reconciler.go` @ v0.10.0).
          const deprecation = group === INFERENCE_API_GROUPS[1]
            ? `; DEPRECATION: apiVersion ${group}/${V1ALPHA2_VERSION}/${kind.kind} is deprecated, replacement ${INFERENCE_API_GROUPS[0]}/${V1ALPHA2_VERSION}/${kind.kind}`
            : '';
          this.log('info', `${kind.kind}s read from ${group}/${V1ALPHA2_VERSION}${previous !== undefined ? ` (was ${previous}/${V1ALPHA2_VERSION})` : ''}${deprecation}`);
        }
        if (served.both && !warnedBoth) {
          // llm-d-router v0.10.0's own words (controller_config.go populateWithDiscovery).
          this.log('warn', `Both legacy (inference.networking.x-k8s.io) and new (llm-d.ai) ${kind.kind} CRDs are installed. `
            + 'EPP will prefer the new group and IGNORE legacy resources.');
          warnedBoth = true;
        }
        if (resourceVersion === undefined) {
          const list = (await this.customApi().listNamespacedCustomObject({
            group,
            version: V1ALPHA2_VERSION,
            namespace: this.namespace,
            plural: kind.plural,
          })) as { items?: unknown[]; metadata?: { resourceVersion?: string } };
          if (this.stopped) return;
          kind.clear();
          for (const item of list.items ?? []) kind.changed(item);
          resourceVersion = list.metadata?.resourceVersion ?? '';
          if (reported !== undefined) this.log('info', `${kind.kind}s readable again: ${kind.size()} for pool ${this.poolName}`);
          reported = undefined;
        }
        const path = `/apis/${group}/${V1ALPHA2_VERSION}/namespaces/${this.namespace}/${kind.plural}`;
        let rv = resourceVersion;
        let watchError: unknown;
        const watchStarted = monotonicMs();
        const handle = this.startWatch(path, { resourceVersion: rv || undefined, allowWatchBookmarks: true, timeoutSeconds: this.watchTimeoutSeconds }, (type, obj) => {
          if (type === 'ERROR') {
            // A Status object: keep its code, so a 410 relists and others are logged with it.
            const code = (obj as { code?: unknown } | undefined)?.code;
            watchError = typeof code === 'number' ? { statusCode: code, message: JSON.stringify(obj) } : new Error(`watch error: ${JSON.stringify(obj)}`);
            return true;
          }
          const version = (obj as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
          if (version) rv = version;
          if (type === 'ADDED' || type === 'MODIFIED') kind.changed(obj);
          else if (type === 'DELETED') kind.deleted(objectName(obj) ?? '');
          return false;
        });
        const err = (await handle.done) ?? watchError;
        if (this.stopped) return;
        if (err) {
          resourceVersion = undefined;
          if (statusCode(err) === GONE) continue;
          throw err;
        }
        resourceVersion = rv;
        backoff = await this.afterCleanClose(watchStarted, backoff);
      } catch (err) {
        if (this.stopped) return;
        resourceVersion = undefined;
        const code = statusCode(err);
        const message = code === NOT_FOUND
          ? `no ${kind.kind} resource (${INFERENCE_API_GROUPS.map((g) => `${g}/${V1ALPHA2_VERSION}`).join(' or ')}) in this cluster: ${kind.without}`
          : toError(err, `reading ${kind.kind}s`).message;
        const condition = code !== undefined ? `HTTP ${code}` : message;
        if (reported !== condition) {
          this.log(code === NOT_FOUND ? 'info' : 'warn', message);
          reported = condition;
        }
        if (code === NOT_FOUND) {
          kind.clear();
          this.followedGroups.delete(kind.kind);
          await this.sleep(MISSING_CRD_POLL_MS);
        } else {
          await this.sleep(backoff);
          backoff = this.nextBackoff(backoff);
        }
      }
    }
  }

  /** Keeps an objective that refers to this pool by name; forgets one that no longer does (GIE's reconciler). */
  private objectiveChanged(obj: unknown): void {
    const name = objectName(obj);
    if (name === undefined) return;
    if (!this.refersToPool(obj)) {
      this.objectives.delete(name);
      return;
    }
    const spec = (obj as { spec: { priority?: unknown; poolRef: { group?: unknown } } }).spec;
    const priority = typeof spec.priority === 'number' && Number.isInteger(spec.priority) ? spec.priority : 0;
    this.objectives.set(name, { poolGroup: poolRefGroup(spec.poolRef), priority });
  }

  /** Keeps a rewrite that refers to this pool by name; forgets one that no longer does (GIE's reconciler). */
  private modelRewriteChanged(obj: unknown): void {
    const name = objectName(obj);
    if (name === undefined) return;
    if (this.refersToPool(obj)) this.rewrites.set(obj);
    else this.rewrites.delete(name);
  }

  /** A v1alpha2 resource that names this pool in `spec.poolRef` and is not being deleted (the group is checked at use). */
  private refersToPool(obj: unknown): boolean {
    return !isMarkedForDeletion(obj) && (obj as { spec?: { poolRef?: { name?: unknown } } }).spec?.poolRef?.name === this.poolName;
  }

  // ---- plumbing ----

  /**
   * Starts a watch. `onEvent` returning true ends it. The returned promise settles once, on the stream's end, an
   * error, or cancel().
   */
  private startWatch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, obj: unknown) => boolean,
  ): WatchHandle {
    let settled = false;
    let controller: AbortController | undefined;
    let resolveDone!: (err: unknown) => void;
    const done = new Promise<unknown>((resolve) => (resolveDone = resolve));
    const finish = (err: unknown): void => {
      if (settled) return;
      settled = true;
      this.cancels.delete(cancel);
      controller?.abort();
      resolveDone(err ?? null);
    };
    const cancel = (): void => finish(null);
    this.cancels.add(cancel);
    const params = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined));
    this.watchClient()
      .watch(
        path,
        params,
        (type: string, obj: unknown) => {
          if (!settled && onEvent(type, obj)) finish(null);
        },
        (err: unknown) => finish(isAbort(err) ? null : err),
      )
      .then(
        (c) => {
          controller = c;
          // The request may have been cancelled while it was being made.
          if (settled) c.abort();
        },
        (err: unknown) => finish(err),
      );
    return { done, cancel };
  }

  private setSynced(synced: boolean): void {
    const next = synced && this.pool !== undefined && this.podsListedGeneration >= 0 && !this.stopped;
    if (next === this.isSynced) return;
    this.isSynced = next;
    if (next) {
      this.error = undefined;
      this.log('info', `InferencePool ${this.namespace}/${this.poolName} synced: ${this.datastore.readyCount} ready endpoints`);
    }
    this.datastore.setPoolSynced(next);
    this.emit(next ? 'synced' : 'unsynced');
  }

  private fail(err: unknown, doing?: string): void {
    const e = toError(err, doing);
    this.error = e;
    this.log('warn', e.message);
    this.emit('error', e);
  }

  private emit(event: DiscoveryEvent, arg?: unknown): void {
    for (const l of [...this.listeners[event]]) {
      try {
        l(arg);
      } catch (err) {
        this.log('error', `discovery ${event} listener threw: ${toError(err).message}`);
      }
    }
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.options.log?.(level, message);
  }

  private spawn(loop: Promise<void>): void {
    const p = loop.catch((err: unknown) => this.fail(err, 'discovery loop'));
    this.loops.add(p);
    void p.finally(() => this.loops.delete(p));
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.cancels.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.cancels.add(wake);
    });
  }

  /**
   * After a watch the server ended cleanly: resumed at once, unless it ended sooner than QUICK_CLOSE_MS after it
   * started, when it is backed off like an error so a misbehaving server cannot spin the loop. Returns the next backoff.
   */
  private async afterCleanClose(watchStarted: number, backoff: number): Promise<number> {
    if (monotonicMs() - watchStarted >= QUICK_CLOSE_MS) return this.initialBackoffMs;
    await this.sleep(backoff);
    return this.nextBackoff(backoff);
  }

  private nextBackoff(ms: number): number {
    const doubled = Math.min(this.maxBackoffMs, ms * 2);
    return Math.max(1, Math.round(doubled * (0.8 + Math.random() * 0.4)));
  }

  private coreApi(): K8s.CoreV1Api {
    if (!this.core) throw new Error('not started');
    return this.core;
  }

  private customApi(): K8s.CustomObjectsApi {
    if (!this.custom) throw new Error('not started');
    return this.custom;
  }

  private watchClient(): K8s.Watch {
    if (!this.watcher) throw new Error('not started');
    return this.watcher;
  }
}

/** The object's deletion has begun: `metadata.deletionTimestamp` is set (finalizers may still hold it). */
function isMarkedForDeletion(obj: unknown): boolean {
  const ts = (obj as { metadata?: { deletionTimestamp?: unknown } } | undefined)?.metadata?.deletionTimestamp;
  return ts !== undefined && ts !== null;
}

function objectName(obj: unknown): string | undefined {
  const name = (obj as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
  return typeof name === 'string' ? name : undefined;
}

/** HTTP status of a client-node error: ApiException has `code`, watch errors `statusCode`. */
function statusCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

function isAbort(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

/**
 * Errors from client-node may come from another realm under jest, where `instanceof Error` fails, and ApiException
 * messages carry the whole response; this keeps the status and the server's own message.
 */
function toError(err: unknown, doing?: string): Error {
  const prefix = doing ? `${doing}: ` : '';
  if (err instanceof PoolSpecError) return new PoolSpecError(prefix + err.message);
  if (typeof err === 'object' && err !== null) {
    const e = err as { message?: unknown; body?: unknown };
    const code = statusCode(err);
    let serverMessage: string | undefined;
    if (typeof e.body === 'string') {
      try {
        const parsed = JSON.parse(e.body) as { message?: unknown };
        if (typeof parsed.message === 'string') serverMessage = parsed.message;
      } catch {
        serverMessage = undefined;
      }
    } else if (typeof e.body === 'object' && e.body !== null && typeof (e.body as { message?: unknown }).message === 'string') {
      serverMessage = (e.body as { message: string }).message;
    }
    if (code !== undefined) return new Error(`${prefix}HTTP ${code}${serverMessage ? `: ${serverMessage}` : ''}`);
    if (typeof e.message === 'string') return new Error(prefix + e.message);
  }
  return new Error(prefix + String(err));
}
