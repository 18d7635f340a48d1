/**
 * llm-d-router v0.10.0 serves InferenceObjective and InferenceModelRewrite in its own group, `llm-d.ai/v1alpha2`
 * (`apix/v1alpha2/zz_generated.register.go`), as well as GIE's `inference.networking.x-k8s.io/v1alpha2`. Which one the
 * EPP reads is decided by API discovery, the new group first (`pkg/epp/server/controller_config.go` @ v0.10.0,
 * `populateWithDiscovery`, `findGroupVersion`, `gvkExists`): when both are installed the new group is read and the
 * legacy resources are ignored. The spec (priority, poolRef, rules) is the same in both. All over HTTP against the
 * fake API server.
 */
import {
  FakeKubeApiServer,
  INTEGRATION_TEST_TIMEOUT_MS,
  LLMD_INFERENCE_API_GROUP,
  fakeModelRewrite,
  fakeObjective,
  fakePoolV1,
  waitFor,
} from '@kvroute/testkit';
import { Datastore } from '../src/datastore/datastore';
import { INFERENCE_API_GROUPS, KubernetesDiscovery } from '../src/datastore/kubernetes-discovery';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const LLMD = LLMD_INFERENCE_API_GROUP;
const GIE = 'inference.networking.x-k8s.io';
const rule = (models: string[] | undefined, ...targets: [string, number?][]) => ({
  ...(models !== undefined ? { matches: models.map((value) => ({ model: { type: 'Exact', value } })) } : {}),
  targets: targets.map(([modelRewrite, weight]) => ({ modelRewrite, ...(weight !== undefined ? { weight } : {}) })),
});
const at = (minute: number) => `2026-01-01T00:${String(minute).padStart(2, '0')}:00Z`;

describe('InferenceObjective / InferenceModelRewrite API group (llm-d-router pkg/epp/server/controller_config.go @ v0.10.0)', () => {
  let api: FakeKubeApiServer;
  let ds: Datastore;
  let discovery: KubernetesDiscovery | undefined;
  const logs: string[] = [];

  beforeEach(async () => {
    api = await FakeKubeApiServer.start();
    ds = new Datastore({ scrape: false });
    logs.length = 0;
    api.upsertPool(fakePoolV1('pool', { app: 'vllm' }, 8000));
  });

  afterEach(async () => {
    await discovery?.stop();
    discovery = undefined;
    await ds.stop();
    await api.close();
  });

  const start = async (): Promise<KubernetesDiscovery> => {
    discovery = new KubernetesDiscovery(ds, {
      poolName: 'pool',
      kubeConfig: { kind: 'options', options: api.kubeConfigOptions() },
      backoff: { initialMs: 20, maxMs: 200 },
      objectives: true,
      modelRewrites: true,
      log: (level, message) => logs.push(`${level}: ${message}`),
    });
    await discovery.start();
    await discovery.waitForSync(15_000);
    return discovery;
  };
  const target = (d: KubernetesDiscovery, model: string) => d.modelRewrites.rule(model)?.targets[0]?.modelRewrite;
  const discoveryRequests = () => api.requests.filter((r) => /^\/apis\/[^/]+\/v1alpha2$/.test(r.path)).length;
  const listed = (group: string, plural: string) =>
    api.requests.filter((r) => r.path === `/apis/${group}/v1alpha2/namespaces/default/${plural}` && r.query.watch === undefined).length;

  test('upstream\'s supportedInferenceAPIGVs order: llm-d.ai first, then inference.networking.x-k8s.io', () => {
    expect(INFERENCE_API_GROUPS).toEqual(['llm-d.ai', 'inference.networking.x-k8s.io']);
  });

  test('only llm-d.ai/v1alpha2 installed: objectives and rewrites are read from it, with the same priority, poolRef and rule semantics', async () => {
    api.servesObjectives = false;
    api.servesModelRewrites = false;
    api.servesLlmdObjectives = true;
    api.servesLlmdModelRewrites = true;
    api.upsertObjective(fakeObjective('critical', 'pool', 10, { apiGroup: LLMD }));
    api.upsertObjective(fakeObjective('unset', 'pool', undefined, { apiGroup: LLMD }));
    api.upsertObjective(fakeObjective('other-pool', 'another-pool', 5, { apiGroup: LLMD }));
    api.upsertObjective(fakeObjective('other-group', 'pool', 7, { apiGroup: LLMD, poolGroup: 'inference.networking.x-k8s.io' }));
    api.upsertModelRewrite(fakeModelRewrite('catch-all', 'pool', [rule(undefined, ['base-v2'])], { apiGroup: LLMD, creationTimestamp: at(0) }));
    api.upsertModelRewrite(fakeModelRewrite('canary', 'pool', [rule(['m'], ['m-canary', 5])], { apiGroup: LLMD, creationTimestamp: at(30) }));
    api.upsertModelRewrite(fakeModelRewrite('other-group', 'pool', [rule(['g'], ['g2'])], { apiGroup: LLMD, poolGroup: 'inference.networking.x-k8s.io' }));
    const d = await start();
    await waitFor(() => d.objectivePriority('critical') === 10 && target(d, 'm') === 'm-canary', 'listed');
    expect(d.objectivesGroup).toBe(LLMD);
    expect(d.modelRewritesGroup).toBe(LLMD);
    expect(d.objectivePriority('unset')).toBe(0);
    expect(d.objectivePriority('other-pool')).toBeUndefined();
    expect(d.objectivePriority('other-group')).toBeUndefined(); // the v1 pool's group is inference.networking.k8s.io
    expect(d.modelRewrites.rule('m')).toMatchObject({ rewriteName: 'canary', targets: [{ modelRewrite: 'm-canary', weight: 5 }] });
    expect(target(d, 'g')).toBe('base-v2'); // other-group's rule is not kept; the generic rule applies
    expect(listed(GIE, 'inferenceobjectives')).toBe(0);
    expect(listed(GIE, 'inferencemodelrewrites')).toBe(0);

    // Watched in the new group too.
    api.upsertObjective(fakeObjective('critical', 'pool', 20, { apiGroup: LLMD }));
    await waitFor(() => d.objectivePriority('critical') === 20, 'changed');
    api.deleteObjective('critical', 'default', LLMD);
    await waitFor(() => d.objectivePriority('critical') === undefined, 'deleted');
    api.upsertModelRewrite(fakeModelRewrite('canary', 'pool', [rule(['m'], ['m-stable'])], { apiGroup: LLMD, creationTimestamp: at(30) }));
    await waitFor(() => target(d, 'm') === 'm-stable', 'rewrite changed');
    api.deleteModelRewrite('canary', 'default', LLMD);
    await waitFor(() => target(d, 'm') === 'base-v2', 'rewrite deleted');
  });

  test('both installed: the llm-d.ai resources are read, the legacy ones ignored, and upstream\'s warning is logged once per kind', async () => {
    api.servesLlmdObjectives = true;
    api.servesLlmdModelRewrites = true;
    api.upsertObjective(fakeObjective('new', 'pool', 3, { apiGroup: LLMD }));
    api.upsertObjective(fakeObjective('shared', 'pool', 4, { apiGroup: LLMD }));
    api.upsertObjective(fakeObjective('legacy', 'pool', 9));
    api.upsertObjective(fakeObjective('shared', 'pool', 99));
    api.upsertModelRewrite(fakeModelRewrite('new', 'pool', [rule(['m'], ['m-new'])], { apiGroup: LLMD }));
    api.upsertModelRewrite(fakeModelRewrite('legacy', 'pool', [rule(['m'], ['m-legacy'])], { creationTimestamp: '2020-01-01T00:00:00Z' }));
    api.upsertModelRewrite(fakeModelRewrite('legacy-only', 'pool', [rule(['l'], ['l2'])]));
    const d = await start();
    await waitFor(() => d.objectivePriority('new') === 3 && target(d, 'm') === 'm-new', 'listed');
    expect(d.objectivePriority('shared')).toBe(4);
    expect(d.objectivePriority('legacy')).toBeUndefined();
    expect(target(d, 'l')).toBeUndefined();
    expect(d.objectivesGroup).toBe(LLMD);
    expect(d.modelRewritesGroup).toBe(LLMD);
    await waitFor(() => logs.filter((l) => l.startsWith('warn: Both legacy')).length === 2, 'warned');
    expect(logs).toContain('warn: Both legacy (inference.networking.x-k8s.io) and new (llm-d.ai) InferenceObjective CRDs are installed. '
      + 'EPP will prefer the new group and IGNORE legacy resources.');
    expect(logs).toContain('warn: Both legacy (inference.networking.x-k8s.io) and new (llm-d.ai) InferenceModelRewrite CRDs are installed. '
      + 'EPP will prefer the new group and IGNORE legacy resources.');
    expect(listed(GIE, 'inferenceobjectives')).toBe(0);
    expect(listed(GIE, 'inferencemodelrewrites')).toBe(0);

    // Legacy changes stay unseen, across a restarted watch (which asks discovery again) too.
    api.upsertObjective(fakeObjective('legacy-2', 'pool', 1));
    api.upsertObjective(fakeObjective('new-2', 'pool', 2, { apiGroup: LLMD }));
    await waitFor(() => d.objectivePriority('new-2') === 2, 'new group watched');
    await waitFor(() => api.openWatches === 4, 'pool, pods, objectives and rewrites watched');
    const asked = discoveryRequests();
    api.closeWatches();
    api.upsertObjective(fakeObjective('new-3', 'pool', 5, { apiGroup: LLMD }));
    await waitFor(() => d.objectivePriority('new-3') === 5, 'resumed');
    expect(discoveryRequests()).toBeGreaterThan(asked);
    expect(d.objectivePriority('legacy-2')).toBeUndefined();
    expect(logs.filter((l) => l.startsWith('warn: Both legacy')).length).toBe(2);
  });

  test('only GIE\'s group installed: read from it, after asking discovery for llm-d.ai first', async () => {
    api.upsertObjective(fakeObjective('legacy', 'pool', 9));
    api.upsertModelRewrite(fakeModelRewrite('legacy', 'pool', [rule(['m'], ['m-legacy'])]));
    const d = await start();
    await waitFor(() => d.objectivePriority('legacy') === 9 && target(d, 'm') === 'm-legacy', 'listed');
    expect(d.objectivesGroup).toBe(GIE);
    expect(d.modelRewritesGroup).toBe(GIE);
    const discoveryPaths = api.requests.filter((r) => /^\/apis\/[^/]+\/v1alpha2$/.test(r.path)).map((r) => r.path);
    expect(discoveryPaths.indexOf(`/apis/${LLMD}/v1alpha2`)).toBeGreaterThanOrEqual(0);
    expect(discoveryPaths.indexOf(`/apis/${LLMD}/v1alpha2`)).toBeLessThan(discoveryPaths.indexOf(`/apis/${GIE}/v1alpha2`));
    expect(listed(LLMD, 'inferenceobjectives')).toBe(0);
    expect(logs.some((l) => l.startsWith('warn: Both legacy'))).toBe(false);
    // Upstream's reconcilers note the deprecation (inferenceobjective_reconciler.go @ v0.10.0); here once per kind, at info.
    expect(logs).toContain('info: InferenceObjectives read from inference.networking.x-k8s.io/v1alpha2; DEPRECATION: apiVersion '
      + 'inference.networking.x-k8s.io/v1alpha2/InferenceObjective is deprecated, replacement llm-d.ai/v1alpha2/InferenceObjective');
  });

  test('neither installed: logged at info naming both groups, and nothing is read', async () => {
    api.servesObjectives = false;
    api.servesModelRewrites = false;
    const d = await start();
    await waitFor(() => logs.some((l) => l.includes('no InferenceObjective resource')) && logs.some((l) => l.includes('no InferenceModelRewrite resource')), 'logged');
    expect(logs.find((l) => l.includes('no InferenceObjective resource'))).toMatch(
      /^info: no InferenceObjective resource \(llm-d\.ai\/v1alpha2 or inference\.networking\.x-k8s\.io\/v1alpha2\) in this cluster/,
    );
    expect(d.objectivesGroup).toBeUndefined();
    expect(d.lastError).toBeUndefined();
  });

  test('a failing discovery request is retried, not taken as "not served": the llm-d.ai group is still chosen', async () => {
    api.servesLlmdObjectives = true;
    api.upsertObjective(fakeObjective('new', 'pool', 3, { apiGroup: LLMD }));
    api.upsertObjective(fakeObjective('legacy', 'pool', 9));
    api.failNext(new RegExp(`^/apis/${LLMD.replace('.', '\\.')}/v1alpha2$`), 500, 1);
    const d = await start();
    await waitFor(() => d.objectivePriority('new') === 3, 'listed from llm-d.ai');
    expect(logs.some((l) => l.startsWith('warn: reading InferenceObjectives: HTTP 500'))).toBe(true);
    expect(d.objectivePriority('legacy')).toBeUndefined();
    expect(listed(GIE, 'inferenceobjectives')).toBe(0);
  });

  test('the llm-d.ai CRD installed later: the next restarted watch asks discovery again and switches, relisting from the new group', async () => {
    api.upsertObjective(fakeObjective('legacy', 'pool', 9));
    api.upsertObjective(fakeObjective('new', 'pool', 3, { apiGroup: LLMD }));
    const d = await start();
    await waitFor(() => d.objectivePriority('legacy') === 9, 'legacy listed');
    expect(d.objectivePriority('new')).toBeUndefined();
    await waitFor(() => api.openWatches === 4, 'pool, pods, objectives and rewrites watched');
    api.servesLlmdObjectives = true;
    api.closeWatches();
    await waitFor(() => d.objectivePriority('new') === 3, 'switched');
    expect(d.objectivePriority('legacy')).toBeUndefined();
    expect(d.objectivesGroup).toBe(LLMD);
    expect(logs).toContain('info: InferenceObjectives read from llm-d.ai/v1alpha2 (was inference.networking.x-k8s.io/v1alpha2)');
  });
});
