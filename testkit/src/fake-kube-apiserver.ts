/**
 * A small Kubernetes API server on loopback: Pods (core/v1), InferencePools (both API versions), InferenceObjectives and
 * InferenceModelRewrites (GIE's `inference.networking.x-k8s.io/v1alpha2` and llm-d-router v0.10.0's
 * `llm-d.ai/v1alpha2`), with GET, list
 * and watch (`?watch=true`, newline-delimited JSON events) honouring labelSelector, fieldSelector and resourceVersion
 * the way the real one does: objects leaving a selector are sent as DELETED, watches from a compacted version get an
 * ERROR 410 event. API discovery (`GET /apis/<group>/<version>`, an APIResourceList) names the kinds served there.
 * For discovery tests; not used by the EPP itself.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

type Obj = { apiVersion?: string; kind?: string; metadata: Record<string, unknown> & { name: string; namespace?: string }; [k: string]: unknown };

interface StoredEvent {
  rv: number;
  collection: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: Obj;
  prev?: Obj;
}

interface Watcher {
  collection: string;
  matches: (o: Obj) => boolean;
  res: http.ServerResponse;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
}

export const TEST_TOKEN = 'kvroute-test-token';

export interface FakePodOptions {
  name: string;
  namespace?: string;
  ip?: string;
  ready?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deleting?: boolean;
}

export function fakePod(o: FakePodOptions): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name,
      namespace: o.namespace ?? 'default',
      labels: o.labels ?? {},
      ...(o.annotations ? { annotations: o.annotations } : {}),
      ...(o.deleting ? { deletionTimestamp: '2025-07-24T10:00:00Z', deletionGracePeriodSeconds: 30 } : {}),
    },
    spec: { containers: [{ name: 'vllm', image: 'vllm/vllm-openai:v0.10.0' }] },
    status: {
      phase: 'Running',
      ...(o.ip ? { podIP: o.ip, podIPs: [{ ip: o.ip }] } : {}),
      conditions: [
        { type: 'Initialized', status: 'True' },
        { type: 'Ready', status: o.ready === false ? 'False' : 'True' },
        { type: 'ContainersReady', status: o.ready === false ? 'False' : 'True' },
        { type: 'PodScheduled', status: 'True' },
      ],
    },
  };
}

/** GIE's group for InferenceObjective and InferenceModelRewrite (v1alpha2). */
export const GIE_INFERENCE_API_GROUP = 'inference.networking.x-k8s.io';
/** llm-d-router v0.10.0's group for the same kinds (`apix/v1alpha2/zz_generated.register.go`). */
export const LLMD_INFERENCE_API_GROUP = 'llm-d.ai';

/**
 * A GIE InferenceObjective (`inference.networking.x-k8s.io/v1alpha2`, as in GIE v1.5.0
 * config/manifests/inferenceobjective.yaml), or with `apiGroup: 'llm-d.ai'` llm-d-router v0.10.0's, same spec.
 */
export function fakeObjective(name: string, poolName: string, priority?: number, options: { poolGroup?: string; namespace?: string; apiGroup?: string } = {}): Obj {
  return {
    apiVersion: `${options.apiGroup ?? GIE_INFERENCE_API_GROUP}/v1alpha2`,
    kind: 'InferenceObjective',
    metadata: { name, namespace: options.namespace ?? 'default' },
    spec: { ...(priority !== undefined ? { priority } : {}), poolRef: { group: options.poolGroup ?? 'inference.networking.k8s.io', name: poolName } },
  };
}

/**
 * A GIE InferenceModelRewrite (`inference.networking.x-k8s.io/v1alpha2`, GIE v1.5.0
 * `apix/v1alpha2/inferencemodelrewrite_types.go`): `rules` as the CRD spells them. With `apiGroup: 'llm-d.ai'`,
 * llm-d-router v0.10.0's, same spec.
 */
export function fakeModelRewrite(
  name: string,
  poolName: string,
  rules: readonly { matches?: readonly { model: { type?: string; value: string } }[]; targets: readonly { modelRewrite: string; weight?: number }[] }[],
  options: { poolGroup?: string; namespace?: string; creationTimestamp?: string; apiGroup?: string } = {},
): Obj {
  return {
    apiVersion: `${options.apiGroup ?? GIE_INFERENCE_API_GROUP}/v1alpha2`,
    kind: 'InferenceModelRewrite',
    metadata: { name, namespace: options.namespace ?? 'default', ...(options.creationTimestamp ? { creationTimestamp: options.creationTimestamp } : {}) },
    spec: { poolRef: { group: options.poolGroup ?? 'inference.networking.k8s.io', name: poolName }, rules },
  };
}

/** A v1 InferencePool; `port` may list several target ports (GIE ≥ v1.1.0, each a distinct endpoint per pod). */
export function fakePoolV1(name: string, selector: Record<string, string>, port: number | readonly number[], namespace = 'default'): Obj {
  return {
    apiVersion: 'inference.networking.k8s.io/v1',
    kind: 'InferencePool',
    metadata: { name, namespace },
    spec: {
      selector: { matchLabels: selector },
      targetPorts: (typeof port === 'number' ? [port] : port).map((number) => ({ number })),
      endpointPickerRef: { name: `${name}-epp`, port: { number: 9002 } },
    },
  };
}

export function fakePoolV1alpha2(name: string, selector: Record<string, string>, port: number, namespace = 'default'): Obj {
  return {
    apiVersion: 'inference.networking.x-k8s.io/v1alpha2',
    kind: 'InferencePool',
    metadata: { name, namespace },
    spec: { selector, targetPortNumber: port, extensionRef: { name: `${name}-epp`, portNumber: 9002, failureMode: 'FailClose' } },
  };
}

export class FakeKubeApiServer {
  readonly requests: RequestRecord[] = [];
  /** Group/versions whose CRD counts as installed; others answer 404 like an unknown resource. */
  servedGroupVersions = new Set(['inference.networking.k8s.io/v1', 'inference.networking.x-k8s.io/v1alpha2']);
  /** Whether the InferenceObjective CRD (inference.networking.x-k8s.io/v1alpha2) is installed. */
  servesObjectives = true;
  /** Whether the InferenceModelRewrite CRD (inference.networking.x-k8s.io/v1alpha2, GIE ≥ v1.5.0) is installed. */
  servesModelRewrites = true;
  /** Whether llm-d-router v0.10.0's InferenceObjective CRD (llm-d.ai/v1alpha2) is installed. Off by default. */
  servesLlmdObjectives = false;
  /** Whether llm-d-router v0.10.0's InferenceModelRewrite CRD (llm-d.ai/v1alpha2) is installed. Off by default. */
  servesLlmdModelRewrites = false;
  private readonly server: http.Server;
  private readonly objects = new Map<string, Obj>();
  private readonly events: StoredEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private rv = 100;
  private compactedRv = 0;
  private readonly failures: Array<{ match: RegExp; status: number; times: number }> = [];

  private constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static async start(): Promise<FakeKubeApiServer> {
    const s = new FakeKubeApiServer();
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(0, '127.0.0.1', () => resolve());
    });
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig object for KubeConfig.loadFromOptions. Plain HTTP needs skipTLSVerify in client-node. */
  kubeConfigOptions(): Record<string, unknown> {
    return {
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'tester', token: TEST_TOKEN }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'tester', namespace: 'default' }],
      currentContext: 'fake',
    };
  }

  /** Writes a kubeconfig file for this server into a fresh temp directory and returns its path. */
  writeKubeconfig(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-kubeconfig-'));
    const file = path.join(dir, 'config');
    fs.writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: fake',
        '  cluster:',
        `    server: ${this.url}`,
        '    insecure-skip-tls-verify: true',
        'users:',
        '- name: tester',
        '  user:',
        `    token: ${TEST_TOKEN}`,
        'contexts:',
        '- name: fake',
        '  context: {cluster: fake, user: tester, namespace: default}',
        'current-context: fake',
        '',
      ].join('\n'),
    );
    return file;
  }

  // ---- state changes (each one becomes a watch event) ----

  upsertPod(pod: Obj): void {
    this.put('pods', 'v1', pod);
  }

  deletePod(name: string, namespace = 'default'): void {
    this.remove('pods', 'v1', namespace, name);
  }

  upsertPool(pool: Obj): void {
    this.put('inferencepools', String(pool.apiVersion), pool);
  }

  deletePool(apiVersion: string, name: string, namespace = 'default'): void {
    this.remove('inferencepools', apiVersion, namespace, name);
  }

  /** Stored under the object's own apiVersion (GIE's group unless it says llm-d.ai/v1alpha2). */
  upsertObjective(objective: Obj): void {
    this.put('inferenceobjectives', objective.apiVersion ?? `${GIE_INFERENCE_API_GROUP}/v1alpha2`, objective);
  }

  deleteObjective(name: string, namespace = 'default', apiGroup = GIE_INFERENCE_API_GROUP): void {
    this.remove('inferenceobjectives', `${apiGroup}/v1alpha2`, namespace, name);
  }

  /** Stored under the object's own apiVersion (GIE's group unless it says llm-d.ai/v1alpha2). */
  upsertModelRewrite(rewrite: Obj): void {
    this.put('inferencemodelrewrites', rewrite.apiVersion ?? `${GIE_INFERENCE_API_GROUP}/v1alpha2`, rewrite);
  }

  deleteModelRewrite(name: string, namespace = 'default', apiGroup = GIE_INFERENCE_API_GROUP): void {
    this.remove('inferencemodelrewrites', `${apiGroup}/v1alpha2`, namespace, name);
  }

  /** The kinds API discovery lists for a group/version (`GET /apis/<group>/<version>`), from what is served. */
  servedKinds(groupVersion: string): string[] {
    const kinds: string[] = [];
    if (this.servedGroupVersions.has(groupVersion)) kinds.push('InferencePool');
    if (groupVersion === `${GIE_INFERENCE_API_GROUP}/v1alpha2`) {
      if (this.servesObjectives) kinds.push('InferenceObjective');
      if (this.servesModelRewrites) kinds.push('InferenceModelRewrite');
    } else if (groupVersion === `${LLMD_INFERENCE_API_GROUP}/v1alpha2`) {
      if (this.servesLlmdObjectives) kinds.push('InferenceObjective');
      if (this.servesLlmdModelRewrites) kinds.push('InferenceModelRewrite');
    }
    return kinds;
  }

  /** Forgets the event history: watches that resume from an older version get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.events.length = 0;
  }

  /** Ends every open watch stream cleanly, as an API server restart or watch timeout would. */
  closeWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** The next `times` requests whose path (with query) matches answer `status` instead. */
  failNext(match: RegExp, status: number, times = 1): void {
    this.failures.push({ match, status, times });
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  async close(): Promise<void> {
    this.closeWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- storage ----

  private put(resource: string, gv: string, input: Obj): void {
    const obj = structuredClone(input);
    const ns = obj.metadata.namespace ?? 'default';
    obj.metadata.namespace = ns;
    const key = objectKey(resource, gv, ns, obj.metadata.name);
    const prev = this.objects.get(key);
    const rv = ++this.rv;
    obj.metadata.resourceVersion = String(rv);
    obj.metadata.uid = prev?.metadata.uid ?? `uid-${resource}-${obj.metadata.name}-${rv}`;
    // The server sets it on create; a test may give one (the age that decides between InferenceModelRewrites).
    obj.metadata.creationTimestamp = prev?.metadata.creationTimestamp ?? obj.metadata.creationTimestamp ?? '2025-07-24T09:00:00Z';
    this.objects.set(key, obj);
    this.publish({ rv, collection: collectionKey(resource, gv, ns), type: prev ? 'MODIFIED' : 'ADDED', obj, prev });
  }

  private remove(resource: string, gv: string, ns: string, name: string): void {
    const key = objectKey(resource, gv, ns, name);
    const prev = this.objects.get(key);
    if (!prev) return;
    this.objects.delete(key);
    const rv = ++this.rv;
    const obj = structuredClone(prev);
    obj.metadata.resourceVersion = String(rv);
    this.publish({ rv, collection: collectionKey(resource, gv, ns), type: 'DELETED', obj });
  }

  private publish(ev: StoredEvent): void {
    this.events.push(ev);
    for (const w of this.watchers) if (w.collection === ev.collection) this.deliver(w, ev);
  }

  /** Sends an event as a selector-filtered watch sees it. */
  private deliver(w: Watcher, ev: StoredEvent): void {
    const now = w.matches(ev.obj);
    if (ev.type === 'MODIFIED') {
      const before = ev.prev !== undefined && w.matches(ev.prev);
      if (before && now) writeEvent(w.res, 'MODIFIED', ev.obj);
      else if (!before && now) writeEvent(w.res, 'ADDED', ev.obj);
      else if (before && !now) writeEvent(w.res, 'DELETED', ev.obj);
    } else if (now) {
      writeEvent(w.res, ev.type, ev.obj);
    }
  }

  // ---- HTTP ----

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const query = Object.fromEntries(url.searchParams.entries());
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query });

    if (req.headers.authorization !== `Bearer ${TEST_TOKEN}`) {
      sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
      return;
    }
    const failure = this.failures.find((f) => f.times > 0 && f.match.test(`${url.pathname}${url.search}`));
    if (failure) {
      failure.times--;
      sendStatus(res, failure.status, failure.status === 403 ? 'Forbidden' : 'InternalError', `injected failure ${failure.status}`);
      return;
    }
    if (req.method !== 'GET') {
      sendStatus(res, 405, 'MethodNotAllowed', 'only GET is served');
      return;
    }

    let m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?$/.exec(url.pathname);
    if (m) {
      this.serve(res, query, 'pods', 'v1', decodeURIComponent(m[1] as string), m[2] && decodeURIComponent(m[2]), 'PodList', 'v1');
      return;
    }
    m = /^\/apis\/(inference\.networking\.x-k8s\.io|llm-d\.ai)\/v1alpha2\/namespaces\/([^/]+)\/(inferenceobjectives|inferencemodelrewrites)(?:\/([^/]+))?$/.exec(url.pathname);
    if (m) {
      const gv = `${m[1] as string}/v1alpha2`;
      const kind = m[3] === 'inferenceobjectives' ? 'InferenceObjective' : 'InferenceModelRewrite';
      if (this.servedKinds(gv).includes(kind)) {
        this.serve(res, query, m[3] as string, gv, decodeURIComponent(m[2] as string), m[4] && decodeURIComponent(m[4]), `${kind}List`, gv);
        return;
      }
    }
    m = /^\/apis\/([^/]+)\/([^/]+)\/?$/.exec(url.pathname);
    if (m) {
      // API discovery (client-go's ServerResourcesForGroupVersion): 404 for a group/version nothing is served in.
      const gv = `${m[1] as string}/${m[2] as string}`;
      const kinds = this.servedKinds(gv);
      if (kinds.length === 0) {
        sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
        return;
      }
      const plural = (kind: string): string => `${kind.toLowerCase()}s`;
      sendJson(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: gv,
        resources: kinds.map((kind) => ({ name: plural(kind), singularName: kind.toLowerCase(), namespaced: true, kind, verbs: ['get', 'list', 'watch'] })),
      });
      return;
    }
    m = /^\/apis\/([^/]+)\/([^/]+)\/namespaces\/([^/]+)\/inferencepools(?:\/([^/]+))?$/.exec(url.pathname);
    if (m) {
      const gv = `${m[1]}/${m[2]}`;
      if (!this.servedGroupVersions.has(gv)) {
        sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
        return;
      }
      this.serve(res, query, 'inferencepools', gv, decodeURIComponent(m[3] as string), m[4] && decodeURIComponent(m[4]), 'InferencePoolList', gv);
      return;
    }
    sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
  }

  private serve(
    res: http.ServerResponse,
    query: Record<string, string>,
    resource: string,
    gv: string,
    ns: string,
    name: string | undefined | '',
    listKind: string,
    listApiVersion: string,
  ): void {
    if (name) {
      const obj = this.objects.get(objectKey(resource, gv, ns, name));
      if (!obj) {
        sendStatus(res, 404, 'NotFound', `${resource} "${name}" not found`);
        return;
      }
      sendJson(res, 200, obj);
      return;
    }
    let matches: (o: Obj) => boolean;
    try {
      const labelMatch = parseLabelSelector(query.labelSelector ?? '');
      const fieldMatch = parseFieldSelector(query.fieldSelector ?? '');
      matches = (o) => labelMatch((o.metadata.labels as Record<string, string> | undefined) ?? {}) && fieldMatch(o);
    } catch (err) {
      sendStatus(res, 400, 'BadRequest', (err as Error).message);
      return;
    }
    const collection = collectionKey(resource, gv, ns);
    if (query.watch === 'true' || query.watch === '1') {
      this.startWatch(res, collection, matches, query);
      return;
    }
    const items = [...this.objects.entries()]
      .filter(([k, o]) => k.startsWith(`${collection}|`) && matches(o))
      .map(([, o]) => o);
    sendJson(res, 200, { apiVersion: listApiVersion, kind: listKind, metadata: { resourceVersion: String(this.rv) }, items });
  }

  private startWatch(res: http.ServerResponse, collection: string, matches: (o: Obj) => boolean, query: Record<string, string>): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { collection, matches, res };
    const from = query.resourceVersion;
    if (from === undefined || from === '' || from === '0') {
      // No version: the real server starts with synthetic ADDED events for what exists now.
      for (const [k, o] of this.objects) if (k.startsWith(`${collection}|`) && matches(o)) writeEvent(res, 'ADDED', o);
    } else {
      const since = Number(from);
      if (!Number.isFinite(since) || since < this.compactedRv) {
        writeEvent(res, 'ERROR', {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: `too old resource version: ${from} (${this.compactedRv})`,
          reason: 'Expired',
          code: 410,
        });
        res.end();
        return;
      }
      for (const ev of this.events) if (ev.collection === collection && ev.rv > since) this.deliver(w, ev);
    }
    this.watchers.add(w);
    const timeout = Number(query.timeoutSeconds);
    let timer: NodeJS.Timeout | undefined;
    if (Number.isFinite(timeout) && timeout > 0) timer = setTimeout(() => res.end(), timeout * 1000);
    res.on('close', () => {
      if (timer) clearTimeout(timer);
      this.watchers.delete(w);
    });
  }
}

function objectKey(resource: string, gv: string, ns: string, name: string): string {
  return `${collectionKey(resource, gv, ns)}|${name}`;
}

function collectionKey(resource: string, gv: string, ns: string): string {
  return `${resource}|${gv}|${ns}`;
}

function writeEvent(res: http.ServerResponse, type: string, object: unknown): void {
  res.write(`${JSON.stringify({ type, object })}\n`);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function sendStatus(res: http.ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

/** Equality-based and set-based label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`). */
export function parseLabelSelector(selector: string): (labels: Record<string, string>) => boolean {
  const terms: Array<(l: Record<string, string>) => boolean> = [];
  const parts = selector.match(/(?:[^,(]|\([^)]*\))+/g) ?? [];
  for (const raw of parts) {
    const t = raw.trim();
    if (t === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(t))) {
      const [, k, op, v] = m as unknown as [string, string, string, string];
      terms.push(op === '!=' ? (l) => l[k] !== v : (l) => l[k] === v);
    } else if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t))) {
      const [, k, op, list] = m as unknown as [string, string, string, string];
      const set = new Set(list.split(',').map((s) => s.trim()));
      terms.push(op === 'in' ? (l) => l[k] !== undefined && set.has(l[k] as string) : (l) => l[k] === undefined || !set.has(l[k] as string));
    } else if ((m = /^!([\w./-]+)$/.exec(t))) {
      const k = m[1] as string;
      terms.push((l) => l[k] === undefined);
    } else if ((m = /^([\w./-]+)$/.exec(t))) {
      const k = m[1] as string;
      terms.push((l) => l[k] !== undefined);
    } else {
      throw new Error(`unable to parse requirement: ${t}`);
    }
  }
  return (labels) => terms.every((f) => f(labels));
}

function parseFieldSelector(selector: string): (o: Obj) => boolean {
  const terms: Array<(o: Obj) => boolean> = [];
  for (const raw of selector.split(',')) {
    const t = raw.trim();
    if (t === '') continue;
    const m = /^(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(.*)$/.exec(t);
    if (!m) throw new Error(`field label not supported: ${t}`);
    const [, field, op, v] = m as unknown as [string, string, string, string];
    const get = (o: Obj): unknown => (field === 'metadata.name' ? o.metadata.name : o.metadata.namespace);
    terms.push(op === '!=' ? (o) => get(o) !== v : (o) => get(o) === v);
  }
  return (o) => terms.every((f) => f(o));
}
