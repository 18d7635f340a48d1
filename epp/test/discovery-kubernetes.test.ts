import { waitFor } from '@kvroute/testkit';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Datastore } from '../src/datastore/datastore';
import { KubernetesDiscovery, NO_KUBECONFIG, type KubernetesDiscoveryOptions } from '../src/datastore/kubernetes-discovery';
import { FakeKubeApiServer, fakeObjective, fakePod, fakePoolV1, fakePoolV1alpha2 } from '@kvroute/testkit';
import { FakeVllmServer } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { startEpp, type Logger } from '../src/runner';

// The waits below are conditions with generous limits, not speed assertions; give them room on a shared machine.
jest.setTimeout(60_000);

const SELECTOR = { 'llm-d.ai/inferenceServing': 'true' };
const V1 = 'inference.networking.k8s.io/v1';
const V1ALPHA2 = 'inference.networking.x-k8s.io/v1alpha2';
// Pod IPs stay on loopback: nothing here may send traffic anywhere else.
const ip = (n: number): string => `127.0.10.${n}`;

describe('KubernetesDiscovery against a fake API server', () => {
  let api: FakeKubeApiServer;
  let ds: Datastore;
  let discovery: KubernetesDiscovery | undefined;
  let events: string[];

  const start = async (opts: Partial<KubernetesDiscoveryOptions> = {}): Promise<KubernetesDiscovery> => {
    discovery = new KubernetesDiscovery(ds, {
      poolName: 'pool',
      poolNamespace: 'default',
      kubeConfig: { kind: 'options', options: api.kubeConfigOptions() },
      backoff: { initialMs: 20, maxMs: 200 },
      ...opts,
    });
    await discovery.start();
    return discovery;
  };
  const keys = (): string[] => ds.endpoints().map((e) => e.key).sort();

  beforeEach(async () => {
    api = await FakeKubeApiServer.start();
    ds = new Datastore({ scrape: false });
    events = [];
    ds.on('endpointAdded', (e) => events.push(`+${e.key}`)).on('endpointRemoved', (e) => events.push(`-${e.key}`));
  });

  afterEach(async () => {
    await discovery?.stop();
    discovery = undefined;
    await ds.stop();
    await api.close();
  });

  it('gives a pod one endpoint per target port of a v1 pool, follows its active-ports annotation and removes all on delete (GIE v1.5.0 podUpdateOrAddIfNotExist)', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, [8000, 8001]));
    api.upsertPod(fakePod({ name: 'dp-0', ip: ip(1), labels: SELECTOR }));
    api.upsertPod(fakePod({ name: 'dp-1', ip: ip(2), labels: SELECTOR, annotations: { 'inference.networking.k8s.io/active-ports': '8001' } }));
    const d = await start();
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`, `${ip(1)}:8001`, `${ip(2)}:8001`]);
    expect(ds.get(`${ip(1)}:8001`)).toMatchObject({ name: 'dp-0-rank-1', podName: 'dp-0', rank: 1, metricsPort: 8001 });
    expect(ds.get(`${ip(2)}:8001`)).toMatchObject({ name: 'dp-1-rank-1', podName: 'dp-1', rank: 1 });

    // The annotation changes: rank 1 stops, rank 0 starts; the pod's other endpoint is untouched.
    api.upsertPod(fakePod({ name: 'dp-1', ip: ip(2), labels: SELECTOR, annotations: { 'inference.networking.k8s.io/active-ports': '8000' } }));
    await waitFor(() => keys().includes(`${ip(2)}:8000`) && !keys().includes(`${ip(2)}:8001`), 'active ports followed');
    api.deletePod('dp-0');
    await waitFor(() => !keys().some((k) => k.startsWith(`${ip(1)}:`)), 'both ranks removed');
    expect(keys()).toEqual([`${ip(2)}:8000`]);

    // Back to one target port: a resync, and the endpoint keeps its name but is scraped as a single-port pool's is.
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    await waitFor(() => ds.get(`${ip(2)}:8000`)?.metricsPort === undefined, 'single port again');
    expect(ds.get(`${ip(2)}:8000`)).toMatchObject({ name: 'dp-1-rank-0', podName: 'dp-1', rank: 0 });
    expect(d.currentPool?.targetPorts).toEqual([8000]);
  });

  it('follows a pod\'s llm-d.ai/active-ports before its inference.networking.k8s.io/active-ports (llm-d-router pkg/epp/datastore/datastore.go @ v0.10.0)', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, [8000, 8001]));
    api.upsertPod(fakePod({ name: 'dp-0', ip: ip(1), labels: SELECTOR, annotations: { 'llm-d.ai/active-ports': '8000', 'inference.networking.k8s.io/active-ports': '8001' } }));
    api.upsertPod(fakePod({ name: 'dp-1', ip: ip(2), labels: SELECTOR, annotations: { 'inference.networking.k8s.io/active-ports': '8001' } }));
    const d = await start();
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`, `${ip(2)}:8001`]);
    // The new key added to a pod that had only the old one takes over.
    api.upsertPod(fakePod({ name: 'dp-1', ip: ip(2), labels: SELECTOR, annotations: { 'llm-d.ai/active-ports': '8000', 'inference.networking.k8s.io/active-ports': '8001' } }));
    await waitFor(() => keys().includes(`${ip(2)}:8000`) && !keys().includes(`${ip(2)}:8001`), 'new key followed');
    expect(keys()).toEqual([`${ip(1)}:8000`, `${ip(2)}:8000`]);
  });

  it('lists the Ready, matching pods of a v1 pool and reports synced', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'vllm-0', ip: ip(1), labels: { ...SELECTOR, role: 'decode' } }));
    api.upsertPod(fakePod({ name: 'vllm-1', ip: ip(2), labels: SELECTOR }));
    api.upsertPod(fakePod({ name: 'starting', ip: ip(3), labels: SELECTOR, ready: false }));
    api.upsertPod(fakePod({ name: 'unscheduled', labels: SELECTOR }));
    api.upsertPod(fakePod({ name: 'other-app', ip: ip(4), labels: { app: 'other' } }));
    api.upsertPod(fakePod({ name: 'elsewhere', namespace: 'other', ip: ip(5), labels: SELECTOR }));

    const d = await start();
    await d.waitForSync(15_000);
    expect(d.synced).toBe(true);
    expect(ds.poolSynced).toBe(true);
    expect(keys()).toEqual([`${ip(1)}:8000`, `${ip(2)}:8000`]);
    const vllm0 = ds.get(`${ip(1)}:8000`);
    expect(vllm0).toMatchObject({ name: 'vllm-0-rank-0', podName: 'vllm-0', namespace: 'default', address: ip(1), port: 8000 });
    expect(vllm0?.labels).toEqual({ ...SELECTOR, role: 'decode' });
    expect(d.currentPool).toMatchObject({ apiVersion: V1, targetPorts: [8000], selector: SELECTOR });

    // The selector went to the API server rather than being applied to every pod in the namespace.
    const podList = api.requests.find((r) => r.path === '/api/v1/namespaces/default/pods' && r.query.watch === undefined);
    expect(podList?.query.labelSelector).toBe('llm-d.ai/inferenceServing=true');
  });

  it('follows pods as they become ready, stop being ready, terminate, change labels and go away', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR, ready: false }));
    const d = await start();
    await d.waitForSync(15_000);
    expect(keys()).toEqual([]);
    const a = `${ip(1)}:8000`;

    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    await waitFor(() => ds.has(a), 'a Ready');

    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR, ready: false }));
    await waitFor(() => !ds.has(a), 'a not ready');

    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    await waitFor(() => ds.has(a), 'a Ready again');

    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR, deleting: true }));
    await waitFor(() => !ds.has(a), 'a terminating');

    api.upsertPod(fakePod({ name: 'b', ip: ip(2), labels: SELECTOR }));
    const b = `${ip(2)}:8000`;
    await waitFor(() => ds.has(b), 'b added');
    api.deletePod('b');
    await waitFor(() => !ds.has(b), 'b deleted');

    api.upsertPod(fakePod({ name: 'c', ip: ip(3), labels: SELECTOR }));
    const c = `${ip(3)}:8000`;
    await waitFor(() => ds.has(c), 'c added');
    api.upsertPod(fakePod({ name: 'c', ip: ip(3), labels: { app: 'moved' } }));
    await waitFor(() => !ds.has(c), 'c no longer selected');

    expect(events).toEqual([`+${a}`, `-${a}`, `+${a}`, `-${a}`, `+${b}`, `-${b}`, `+${c}`, `-${c}`]);
    expect(d.synced).toBe(true);
  });

  it('re-keys every endpoint when the pool target port changes', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    api.upsertPod(fakePod({ name: 'b', ip: ip(2), labels: SELECTOR }));
    const d = await start();
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`, `${ip(2)}:8000`]);

    api.upsertPool(fakePoolV1('pool', SELECTOR, 8200));
    await waitFor(() => keys().join() === [`${ip(1)}:8200`, `${ip(2)}:8200`].join(), 'new port');
    expect(ds.get(`${ip(1)}:8200`)?.port).toBe(8200);
    expect(events.filter((e) => e.startsWith('-')).sort()).toEqual([`-${ip(1)}:8000`, `-${ip(2)}:8000`]);
    expect(d.synced).toBe(true);
  });

  it('resyncs when the selector changes', async () => {
    api.upsertPool(fakePoolV1('pool', { app: 'old' }, 8000));
    api.upsertPod(fakePod({ name: 'old-0', ip: ip(1), labels: { app: 'old' } }));
    api.upsertPod(fakePod({ name: 'new-0', ip: ip(2), labels: { app: 'new' } }));
    const d = await start();
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`]);

    api.upsertPool(fakePoolV1('pool', { app: 'new' }, 8000));
    await waitFor(() => keys().join() === `${ip(2)}:8000`, 'new selection');
    // Pods of the new selection keep being followed.
    api.upsertPod(fakePod({ name: 'new-1', ip: ip(3), labels: { app: 'new' } }));
    await waitFor(() => ds.has(`${ip(3)}:8000`), 'new-1');
  });

  it('reads a v1alpha2 pool when the v1 API is not installed', async () => {
    api.servedGroupVersions = new Set([V1ALPHA2]);
    api.upsertPool(fakePoolV1alpha2('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const d = await start();
    await d.waitForSync(15_000);
    expect(d.currentPool?.apiVersion).toBe(V1ALPHA2);
    expect(keys()).toEqual([`${ip(1)}:8000`]);

    api.upsertPool(fakePoolV1alpha2('pool', SELECTOR, 9000));
    await waitFor(() => keys().join() === `${ip(1)}:9000`, 'v1alpha2 port change');
  });

  it('--pool-group inference.networking.x-k8s.io reads the v1alpha2 pool first, as GIE v1.0-v1.4 read that group (inferencepool_reconciler.go @ v1.4.0)', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPool(fakePoolV1alpha2('pool', SELECTOR, 9000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const d = await start({ poolGroup: 'inference.networking.x-k8s.io' });
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:9000`]);
    expect(api.requests.some((r) => r.path.startsWith('/apis/inference.networking.k8s.io/'))).toBe(false);
  });

  // GIE v1.5.0 pkg/epp/server/controller_manager.go and inferencepool_reconciler.go: the pool reconciler always reads
  // v1.InferencePool; --pool-group is only the group InferenceObjectives' and InferenceModelRewrites' poolRef must name.
  it('--pool-group inference.networking.x-k8s.io still reads a v1 InferencePool when there is no v1alpha2 one (GIE v1.5.0 reads v1.InferencePool whatever the group)', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const file = api.writeKubeconfig();
    const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    const epp = await startEpp(parseArgs(['--pool-name', 'pool', '--pool-group', 'inference.networking.x-k8s.io', '--kubeconfig', file,
      '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1'], {})!, quiet);
    try {
      await waitFor(() => epp.datastore.poolSynced, 'pool synced', { limitMs: 5000 }).catch(() => undefined);
      expect({ synced: epp.datastore.poolSynced, endpoints: epp.datastore.endpoints().map((e) => e.key) }).toEqual({ synced: true, endpoints: [`${ip(1)}:8000`] });
    } finally {
      await epp.stop();
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('--pool-group inference.networking.x-k8s.io with only the v1 API readable (RBAC grants the other group): the v1alpha2 list\'s 403 does not hide the v1 pool, and a missing pool is reported as missing', async () => {
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    api.failNext(/\/apis\/inference\.networking\.x-k8s\.io\/v1alpha2\/namespaces\/default\/inferencepools/, 403, 1000);
    const d = await start({ poolGroup: 'inference.networking.x-k8s.io' });
    await waitFor(() => d.lastError !== undefined, 'an error');
    expect(d.lastError?.message).toMatch(/InferencePool default\/pool not found \(looked for inference\.networking\.x-k8s\.io\/v1alpha2 \(forbidden: HTTP 403\), inference\.networking\.k8s\.io\/v1\)/);
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`]);
  });

  it('is not synced while the pool is missing, with an error naming it, and syncs once it appears', async () => {
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const d = await start();
    await waitFor(() => d.lastError !== undefined, 'an error');
    expect(d.synced).toBe(false);
    expect(ds.poolSynced).toBe(false);
    expect(d.lastError?.message).toMatch(/InferencePool default\/pool not found/);
    expect(d.lastError?.message).toContain(V1);
    expect(d.lastError?.message).toContain(V1ALPHA2);
    await expect(d.waitForSync(100)).rejects.toThrow(/not synced after 100 ms: InferencePool default\/pool not found/);
    expect(keys()).toEqual([]);

    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`]);
    expect(d.lastError).toBeUndefined();
  });

  it('empties the pool and stops being synced when the pool is deleted', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const d = await start();
    await d.waitForSync(15_000);
    const unsynced = new Promise<void>((resolve) => d.on('unsynced', resolve));

    api.deletePool(V1, 'pool');
    await unsynced;
    expect(ds.poolSynced).toBe(false);
    expect(keys()).toEqual([]);
    expect(d.lastError?.message).toMatch(/deleted|not found/);

    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`]);
  });

  // GIE v1.5.0 pkg/epp/controller/inferencepool_reconciler.go Reconcile (and llm-d-router v0.10.0's): "InferencePool is
  // marked for deletion. Clearing the datastore": a pool with deletionTimestamp set is no pool, in the watch and the list.
  it('empties the pool and stops being synced when the pool is marked for deletion (deletionTimestamp set, a finalizer pending), and syncs once it is recreated', async () => {
    const marked = (): ReturnType<typeof fakePoolV1> => {
      const pool = fakePoolV1('pool', SELECTOR, 8000);
      pool.metadata.deletionTimestamp = '2026-12-06T14:00:00Z';
      pool.metadata.finalizers = ['example.com/gateway-cleanup'];
      return pool;
    };
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const d = await start();
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`]);

    // The API server sets deletionTimestamp and keeps the object while the finalizer is pending: a MODIFIED event.
    api.upsertPool(marked());
    await waitFor(() => keys().length === 0 && !ds.poolSynced, 'pool marked for deletion cleared', { limitMs: 5000 }).catch(() => undefined);
    expect({ endpoints: keys(), poolSynced: ds.poolSynced, synced: d.synced }).toEqual({ endpoints: [], poolSynced: false, synced: false });
    expect(d.lastError?.message).toMatch(/InferencePool default\/pool is marked for deletion/);
    await d.stop();

    // Listed so from the start: not synced either.
    const listed = await start();
    await waitFor(() => listed.lastError !== undefined, 'an error');
    expect({ endpoints: keys(), synced: listed.synced }).toEqual({ endpoints: [], synced: false });
    expect(listed.lastError?.message).toMatch(/marked for deletion/);

    api.deletePool(V1, 'pool');
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    await listed.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`]);
  });

  it('re-lists after 410 Gone and catches up on what changed while disconnected', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    api.upsertPod(fakePod({ name: 'b', ip: ip(2), labels: SELECTOR }));
    const d = await start();
    await d.waitForSync(15_000);
    await waitFor(() => api.openWatches === 2, 'pool and pod watches open');
    const listsBefore = api.requests.filter((r) => r.path.endsWith('/pods') && r.query.watch === undefined).length;

    // Changes happen, history is compacted, and the streams drop: resuming from the old version must fail with 410.
    api.closeWatches();
    api.deletePod('a');
    api.upsertPod(fakePod({ name: 'c', ip: ip(3), labels: SELECTOR }));
    api.compact();

    await waitFor(() => keys().join() === [`${ip(2)}:8000`, `${ip(3)}:8000`].join(), 'caught up');
    const lists = api.requests.filter((r) => r.path.endsWith('/pods') && r.query.watch === undefined).length;
    expect(lists).toBeGreaterThan(listsBefore);
    expect(d.synced).toBe(true);

    // And it keeps following afterwards.
    api.upsertPod(fakePod({ name: 'd', ip: ip(4), labels: SELECTOR }));
    await waitFor(() => ds.has(`${ip(4)}:8000`), 'd after relist');
  });

  it('keeps watching a pool that has not changed since long before a compaction', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    // Much later: unrelated writes, then the server compacts its history. The pool's own version is now too old to
    // watch from, so discovery must watch from a current version rather than the pool object's.
    for (let i = 0; i < 5; i++) api.upsertPod(fakePod({ name: `noise-${i}`, labels: { app: 'noise' } }));
    api.compact();
    const d = await start();
    await d.waitForSync(15_000);
    await waitFor(() => api.openWatches === 2, 'pool and pod watches open');
    const poolWatches = (): number =>
      api.requests.filter((r) => r.path.endsWith('/inferencepools') && r.query.watch === 'true').length;
    const before = poolWatches();
    await new Promise((r) => setTimeout(r, 200));
    expect(poolWatches()).toBe(before);

    api.upsertPool(fakePoolV1('pool', SELECTOR, 8100));
    await waitFor(() => ds.has(`${ip(1)}:8100`), 'port change seen through the watch');
  });

  it('resumes a cleanly closed watch from the last version without re-listing', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const d = await start();
    await d.waitForSync(15_000);
    await waitFor(() => api.openWatches === 2, 'watches open');
    const podLists = (): number => api.requests.filter((r) => r.path.endsWith('/pods') && r.query.watch === undefined).length;
    const before = podLists();

    api.closeWatches();
    api.upsertPod(fakePod({ name: 'b', ip: ip(2), labels: SELECTOR }));
    await waitFor(() => ds.has(`${ip(2)}:8000`), 'b via resumed watch');
    expect(podLists()).toBe(before);
    const resumed = api.requests.filter((r) => r.path.endsWith('/pods') && r.query.watch === 'true');
    expect(Number(resumed[resumed.length - 1]?.query.resourceVersion)).toBeGreaterThan(0);
  });

  it('a watch that ran past QUICK_CLOSE_MS is resumed at once after a wall-clock step back (its age is monotonic, as client-go\'s reflector times it with the clock package\'s time.Since)', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    // A clean close after a short watch is backed off like an error; this backoff would outlast the wait below.
    const d = await start({ backoff: { initialMs: 60_000, maxMs: 60_000 } });
    await d.waitForSync(15_000);
    await waitFor(() => api.openWatches === 2, 'watches open');
    await new Promise((r) => setTimeout(r, 1_200)); // past QUICK_CLOSE_MS (1 s) on any clock
    const wall = Date.now;
    const stepped = jest.spyOn(Date, 'now').mockImplementation(() => wall.call(Date) - 3_600_000);
    try {
      api.closeWatches();
      api.upsertPod(fakePod({ name: 'b', ip: ip(2), labels: SELECTOR }));
      await waitFor(() => ds.has(`${ip(2)}:8000`), 'b via the watch resumed at once');
    } finally {
      stepped.mockRestore();
    }
  });

  it('retries API errors with backoff and syncs once the server answers', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    api.failNext(/\/pods\?/, 500, 2);
    const errors: string[] = [];
    const d = await start();
    d.on('error', (e) => errors.push(e.message));
    await d.waitForSync(15_000);
    expect(keys()).toEqual([`${ip(1)}:8000`]);
    expect(api.requests.filter((r) => r.path.endsWith('/pods')).length).toBeGreaterThanOrEqual(3);
  });

  it('reports a forbidden pool read as an error without syncing', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.failNext(/inferencepools/, 403, 1000);
    const d = await start();
    await waitFor(() => d.lastError !== undefined, 'an error');
    expect(d.lastError?.message).toMatch(/HTTP 403/);
    expect(d.synced).toBe(false);
  });

  it('loads a kubeconfig file', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const file = api.writeKubeconfig();
    try {
      const d = await start({ kubeConfig: { kind: 'file', path: file } });
      await d.waitForSync(15_000);
      expect(keys()).toEqual([`${ip(1)}:8000`]);
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('rejects start() naming the kubeconfig file it could not read', async () => {
    const missing = path.join(os.tmpdir(), 'kvroute-no-such-kubeconfig');
    const d = new KubernetesDiscovery(ds, { poolName: 'pool', kubeConfig: { kind: 'file', path: missing } });
    await expect(d.start()).rejects.toThrow(`kubeconfig ${missing}: ENOENT`);
  });

  it('rejects start() on an unusable kubeconfig', async () => {
    const d = new KubernetesDiscovery(ds, { poolName: 'pool', kubeConfig: { kind: 'options', options: { clusters: [], users: [], contexts: [], currentContext: '' } } });
    await expect(d.start()).rejects.toThrow(/no current cluster/);
  });

  // Outside a pod (a service account mounted, as in a CI job on Kubernetes, is a real source) with no $KUBECONFIG and no
  // ~/.kube/config, client-node would load a placeholder http://localhost:8080 and the EPP would warn forever about
  // "HTTP protocol is not allowed"; GIE's runner stops at start-up (ctrl.GetConfig(), cmd/epp/runner/runner.go @ v1.5.0).
  const inPod = fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token');
  (inPod ? it.skip : it)('rejects start() naming the flags when no kubeconfig is found', async () => {
    const saved = { KUBECONFIG: process.env.KUBECONFIG, HOME: process.env.HOME };
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-no-kubeconfig-'));
    process.env.KUBECONFIG = '';
    process.env.HOME = home;
    try {
      const d = new KubernetesDiscovery(ds, { poolName: 'pool', kubeConfig: { kind: 'default' } });
      await expect(d.start()).rejects.toThrow(NO_KUBECONFIG);
      expect(NO_KUBECONFIG).toMatch(/--kubeconfig/);
      expect(NO_KUBECONFIG).toMatch(/--endpoints/);
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it('stop() closes its watches and leaves the endpoints', async () => {
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
    api.upsertPod(fakePod({ name: 'a', ip: ip(1), labels: SELECTOR }));
    const d = await start();
    await d.waitForSync(15_000);
    await waitFor(() => api.openWatches === 2, 'watches open');
    await d.stop();
    discovery = undefined;
    await waitFor(() => api.openWatches === 0, 'watches closed');
    expect(d.synced).toBe(false);
    expect(ds.poolSynced).toBe(false);
    expect(keys()).toEqual([`${ip(1)}:8000`]);
  });
});

describe('KubernetesDiscovery following InferenceObjectives (GIE v1.5.0 inferenceobjective_reconciler.go)', () => {
  let api: FakeKubeApiServer;
  let ds: Datastore;
  let discovery: KubernetesDiscovery | undefined;
  const logs: string[] = [];

  const start = async (opts: Partial<KubernetesDiscoveryOptions> = {}): Promise<KubernetesDiscovery> => {
    discovery = new KubernetesDiscovery(ds, {
      poolName: 'pool',
      kubeConfig: { kind: 'options', options: api.kubeConfigOptions() },
      backoff: { initialMs: 20, maxMs: 200 },
      objectives: true,
      ...opts,
      log: (level, message) => logs.push(`${level}: ${message}`),
    });
    await discovery.start();
    await discovery.waitForSync(15_000);
    return discovery;
  };

  beforeEach(async () => {
    api = await FakeKubeApiServer.start();
    ds = new Datastore({ scrape: false });
    logs.length = 0;
    api.upsertPool(fakePoolV1('pool', SELECTOR, 8000));
  });

  afterEach(async () => {
    await discovery?.stop();
    discovery = undefined;
    await ds.stop();
    await api.close();
  });

  it('answers the priority of the objectives that refer to this pool: listed, then added, changed and deleted through the watch', async () => {
    api.upsertObjective(fakeObjective('critical', 'pool', 10));
    api.upsertObjective(fakeObjective('unset', 'pool'));
    api.upsertObjective(fakeObjective('other-pools', 'another-pool', 5));
    api.upsertObjective(fakeObjective('other-group', 'pool', 7, { poolGroup: 'inference.networking.x-k8s.io' }));
    api.upsertObjective(fakeObjective('elsewhere', 'pool', 3, { namespace: 'other' }));
    const d = await start();
    await waitFor(() => d.objectivePriority('critical') === 10, 'listed');
    expect(d.objectivePriority('unset')).toBe(0); // GIE: an unset priority is 0
    expect(d.objectivePriority('other-pools')).toBeUndefined();
    expect(d.objectivePriority('other-group')).toBeUndefined(); // the v1 pool's group is inference.networking.k8s.io
    expect(d.objectivePriority('elsewhere')).toBeUndefined();

    api.upsertObjective(fakeObjective('batch', 'pool', -5));
    await waitFor(() => d.objectivePriority('batch') === -5, 'added');
    api.upsertObjective(fakeObjective('critical', 'pool', 20));
    await waitFor(() => d.objectivePriority('critical') === 20, 'changed');
    api.upsertObjective(fakeObjective('critical', 'another-pool', 20));
    await waitFor(() => d.objectivePriority('critical') === undefined, 'moved to another pool');
    api.deleteObjective('batch');
    await waitFor(() => d.objectivePriority('batch') === undefined, 'deleted');
  });

  it('with --pool-group, the objectives whose poolRef names that group refer to the pool, whichever version the pool was read as (GIE v1.5.0 inferenceobjective_reconciler.go compares poolRef.group with the flag\'s)', async () => {
    api.upsertObjective(fakeObjective('x-group', 'pool', 7, { poolGroup: 'inference.networking.x-k8s.io' }));
    api.upsertObjective(fakeObjective('v1-group', 'pool', 3));
    const d = await start({ poolGroup: 'inference.networking.x-k8s.io' });
    await waitFor(() => d.objectivePriority('x-group') === 7, 'listed');
    expect(d.currentPool?.apiVersion).toBe(V1);
    expect(d.objectivePriority('v1-group')).toBeUndefined();
  });

  it('a cluster without the InferenceObjective CRD is not an error: the pool syncs and the absence is logged at info', async () => {
    api.servesObjectives = false;
    const d = await start();
    await waitFor(() => logs.some((l) => l.includes('no InferenceObjective resource')), 'logged');
    expect(logs.find((l) => l.includes('no InferenceObjective resource'))).toMatch(/^info: /);
    expect(d.objectivePriority('anything')).toBeUndefined();
    expect(d.lastError).toBeUndefined();
  });

  it('a watch answered 410 Gone is followed by a fresh list, which finds what changed meanwhile', async () => {
    const d = await start();
    api.upsertObjective(fakeObjective('a', 'pool', 1));
    await waitFor(() => d.objectivePriority('a') === 1, 'watched');
    const lists = () => api.requests.filter((r) => r.path.endsWith('/inferenceobjectives') && r.query.watch !== 'true').length;
    const listed = lists();
    // The next watch request is refused as too old; the change made meanwhile is only found by listing again.
    api.failNext(/inferenceobjectives.*watch=true/, 410);
    api.closeWatches();
    api.upsertObjective(fakeObjective('a', 'pool', 2));
    await waitFor(() => d.objectivePriority('a') === 2, 'relisted');
    expect(lists()).toBeGreaterThan(listed);
  });

  it('errors without an HTTP status (a refused connection) are logged too', async () => {
    const d = await start();
    await api.close();
    await waitFor(() => logs.some((l) => l.startsWith('warn: reading InferenceObjectives')), 'logged');
    expect(d.objectivePriority('a')).toBeUndefined();
    api = await FakeKubeApiServer.start(); // for afterEach
  });
});

describe('KubernetesDiscovery feeding real scrapers', () => {
  it('discovers a pod on loopback and scrapes its metrics', async () => {
    const api = await FakeKubeApiServer.start();
    const vllm = await FakeVllmServer.start({ engines: [{ waiting: 4, running: 2, kvUsage: 0.3 }] });
    const ds = new Datastore({ refreshIntervalMs: 10 });
    const d = new KubernetesDiscovery(ds, {
      poolName: 'pool',
      kubeConfig: { kind: 'options', options: api.kubeConfigOptions() },
      backoff: { initialMs: 20, maxMs: 200 },
    });
    try {
      api.upsertPool(fakePoolV1alpha2('pool', SELECTOR, vllm.port));
      api.upsertPod(fakePod({ name: 'vllm-0', ip: '127.0.0.1', labels: SELECTOR }));
      await d.start();
      await d.waitForSync(15_000);
      const key = `127.0.0.1:${vllm.port}`;
      await waitFor(() => (ds.metrics(key)?.updateTime ?? 0) > 0, 'scrape');
      expect(ds.snapshot()[0]).toMatchObject({
        endpoint: { key, name: 'vllm-0-rank-0', podName: 'vllm-0' },
        metrics: { waitingQueueSize: 4, runningQueueSize: 2, kvCacheUsagePercent: 0.3, consecutiveFailures: 0 },
        activeRequests: 0,
      });
    } finally {
      await d.stop();
      await ds.stop();
      await vllm.close();
      await api.close();
    }
  });

  it('scrapes each rank of a several-port pool on its own port, whatever the model-server metrics port says (GIE v1.5.0)', async () => {
    const api = await FakeKubeApiServer.start();
    const rank0 = await FakeVllmServer.start({ engines: [{ waiting: 3, running: 1, kvUsage: 0.1 }] });
    const rank1 = await FakeVllmServer.start({ engines: [{ waiting: 7, running: 2, kvUsage: 0.6 }] });
    // metricsPort would send a single-port pool's scrapes to rank0's server; GIE ignores it when there are several.
    const ds = new Datastore({ refreshIntervalMs: 10, metricsPort: rank0.port });
    const d = new KubernetesDiscovery(ds, {
      poolName: 'pool',
      kubeConfig: { kind: 'options', options: api.kubeConfigOptions() },
      backoff: { initialMs: 20, maxMs: 200 },
    });
    try {
      api.upsertPool(fakePoolV1('pool', SELECTOR, [rank0.port, rank1.port]));
      api.upsertPod(fakePod({ name: 'dp', ip: '127.0.0.1', labels: SELECTOR }));
      await d.start();
      await d.waitForSync(15_000);
      const k0 = `127.0.0.1:${rank0.port}`;
      const k1 = `127.0.0.1:${rank1.port}`;
      await waitFor(() => (ds.metrics(k0)?.updateTime ?? 0) > 0 && (ds.metrics(k1)?.updateTime ?? 0) > 0, 'both scraped');
      expect(ds.metrics(k0)).toMatchObject({ waitingQueueSize: 3, kvCacheUsagePercent: 0.1 });
      expect(ds.metrics(k1)).toMatchObject({ waitingQueueSize: 7, kvCacheUsagePercent: 0.6 });
    } finally {
      await d.stop();
      await ds.stop();
      await rank0.close();
      await rank1.close();
      await api.close();
    }
  });
});
