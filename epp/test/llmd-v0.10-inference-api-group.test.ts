/**
 * llm-d-router v0.10.0 serves InferenceObjective and InferenceModelRewrite in its own group, `llm-d.ai/v1alpha2`
 * (`apix/v1alpha2/zz_generated.register.go`), as well as GIE's `inference.networking.x-k8s.io/v1alpha2`. Which one the
 * EPP reads is decided by API discovery, the new group first (`pkg/epp/server/controller_config.go` @ v0.10.0,
 * `populateWithDiscovery`, `findGroupVersion`, `gvkExists`): when both are installed the new group is read and the
 * legacy resources are ignored. The spec (priority, poolRef, rules) is the same in both. All over HTTP against the
 * fake API server.
 */
import {
  INTEGRATION_TEST_TIMEOUT_MS,
  LLMD_INFERENCE_API_GROUP,
  fakeModelRewrite,
  fakeObjective,
  waitFor,
} from '@kvroute/testkit';
import { INFERENCE_API_GROUPS, type KubernetesDiscovery } from '../src/datastore/kubernetes-discovery';
import { at, discoveryFixture, rewriteRule as rule } from './discovery-fixture';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const LLMD = LLMD_INFERENCE_API_GROUP;
const GIE = 'inference.networking.x-k8s.io';

describe('InferenceObjective / InferenceModelRewrite API group (llm-d-router pkg/epp/server/controller_config.go @ v0.10.0)', () => {
  const f = discoveryFixture({ objectives: true, modelRewrites: true });
  const target = (d: KubernetesDiscovery, model: string) => d.modelRewrites.rule(model)?.targets[0]?.modelRewrite;
  const discoveryRequests = () => f.api.requests.filter((r) => /^\/apis\/[^/]+\/v1alpha2$/.test(r.path)).length;
  const listed = (group: string, plural: string) =>
    f.api.requests.filter((r) => r.path === `/apis/${group}/v1alpha2/namespaces/default/${plural}` && r.query.watch === undefined).length;

  test('upstream\'s supportedInferenceAPIGVs order: llm-d.ai first, then inference.networking.x-k8s.io', () => {
    expect(INFERENCE_API_GROUPS).toEqual(['llm-d.ai', 'inference.networking.x-k8s.io']);
  });

  test('only llm-d.ai/v1alpha2 installed: objectives and rewrites are read from it, with the same priority, poolRef and rule semantics', async () => {
    f.api.servesObjectives = false;
    f.api.servesModelRewrites = false;
    f.api.servesLlmdObjectives = true;
    f.api.servesLlmdModelRewrites = true;
    f.api.upsertObjective(fakeObjective('critical', 'pool', 10, { apiGroup: LLMD }));
    f.api.upsertObjective(fakeObjective('unset', 'pool', undefined, { apiGroup: LLMD }));
    f.api.upsertObjective(fakeObjective('other-pool', 'another-pool', 5, { apiGroup: LLMD }));
    f.api.upsertObjective(fakeObjective('other-group', 'pool', 7, { apiGroup: LLMD, poolGroup: 'inference.networking.x-k8s.io' }));
    f.api.upsertModelRewrite(fakeModelRewrite('catch-all', 'pool', [rule(undefined, ['base-v2'])], { apiGroup: LLMD, creationTimestamp: at(0) }));
    f.api.upsertModelRewrite(fakeModelRewrite('canary', 'pool', [rule(['m'], ['m-canary', 5])], { apiGroup: LLMD, creationTimestamp: at(30) }));
    f.api.upsertModelRewrite(fakeModelRewrite('other-group', 'pool', [rule(['g'], ['g2'])], { apiGroup: LLMD, poolGroup: 'inference.networking.x-k8s.io' }));
    const d = await f.start();
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
    f.api.upsertObjective(fakeObjective('critical', 'pool', 20, { apiGroup: LLMD }));
    await waitFor(() => d.objectivePriority('critical') === 20, 'changed');
    f.api.deleteObjective('critical', 'default', LLMD);
    await waitFor(() => d.objectivePriority('critical') === undefined, 'deleted');
    f.api.upsertModelRewrite(fakeModelRewrite('canary', 'pool', [rule(['m'], ['m-stable'])], { apiGroup: LLMD, creationTimestamp: at(30) }));
    await waitFor(() => target(d, 'm') === 'm-stable', 'rewrite changed');
    f.api.deleteModelRewrite('canary', 'default', LLMD);
    await waitFor(() => target(d, 'm') === 'base-v2', 'rewrite deleted');
  });

  test('both installed: the llm-d.ai resources are read, the legacy ones ignored, and upstream\'s warning is logged once per kind', async () => {
    f.api.servesLlmdObjectives = true;
    f.api.servesLlmdModelRewrites = true;
    f.api.upsertObjective(fakeObjective('new', 'pool', 3, { apiGroup: LLMD }));
    f.api.upsertObjective(fakeObjective('shared', 'pool', 4, { apiGroup: LLMD }));
    f.api.upsertObjective(fakeObjective('legacy', 'pool', 9));
    f.api.upsertObjective(fakeObjective('shared', 'pool', 99));
    f.api.upsertModelRewrite(fakeModelRewrite('new', 'pool', [rule(['m'], ['m-new'])], { apiGroup: LLMD }));
    f.api.upsertModelRewrite(fakeModelRewrite('legacy', 'pool', [rule(['m'], ['m-legacy'])], { creationTimestamp: '2020-01-01T00:00:00Z' }));
    f.api.upsertModelRewrite(fakeModelRewrite('legacy-only', 'pool', [rule(['l'], ['l2'])]));
    const d = await f.start();
    await waitFor(() => d.objectivePriority('new') === 3 && target(d, 'm') === 'm-new', 'listed');
    expect(d.objectivePriority('shared')).toBe(4);
    expect(d.objectivePriority('legacy')).toBeUndefined();
    expect(target(d, 'l')).toBeUndefined();
    expect(d.objectivesGroup).toBe(LLMD);
    expect(d.modelRewritesGroup).toBe(LLMD);
    await waitFor(() => f.logs.filter((l) => l.startsWith('warn: Both legacy')).length === 2, 'warned');
    expect(f.logs).toContain('warn: Both legacy (inference.networking.x-k8s.io) and new (llm-d.ai) InferenceObjective CRDs are installed. '
      + 'EPP will prefer the new group and IGNORE legacy resources.');
    expect(f.logs).toContain('warn: Both legacy (inference.networking.x-k8s.io) and new (llm-d.ai) InferenceModelRewrite CRDs are installed. '
      + 'EPP will prefer the new group and IGNORE legacy resources.');
    expect(listed(GIE, 'inferenceobjectives')).toBe(0);
    expect(listed(GIE, 'inferencemodelrewrites')).toBe(0);

    // Legacy changes stay unseen, across a restarted watch (which asks discovery again) too.
    f.api.upsertObjective(fakeObjective('legacy-2', 'pool', 1));
    f.api.upsertObjective(fakeObjective('new-2', 'pool', 2, { apiGroup: LLMD }));
    await waitFor(() => d.objectivePriority('new-2') === 2, 'new group watched');
    await waitFor(() => f.api.openWatches === 4, 'pool, pods, objectives and rewrites watched');
    const asked = discoveryRequests();
    f.api.closeWatches();
    f.api.upsertObjective(fakeObjective('new-3', 'pool', 5, { apiGroup: LLMD }));
    await waitFor(() => d.objectivePriority('new-3') === 5, 'resumed');
    expect(discoveryRequests()).toBeGreaterThan(asked);
    expect(d.objectivePriority('legacy-2')).toBeUndefined();
    expect(f.logs.filter((l) => l.startsWith('warn: Both legacy')).length).toBe(2);
  });

  test('only GIE\'s group installed: read from it, after asking discovery for llm-d.ai first', async () => {
    f.api.upsertObjective(fakeObjective('legacy', 'pool', 9));
    f.api.upsertModelRewrite(fakeModelRewrite('legacy', 'pool', [rule(['m'], ['m-legacy'])]));
    const d = await f.start();
    await waitFor(() => d.objectivePriority('legacy') === 9 && target(d, 'm') === 'm-legacy', 'listed');
    expect(d.objectivesGroup).toBe(GIE);
    expect(d.modelRewritesGroup).toBe(GIE);
    const discoveryPaths = f.api.requests.filter((r) => /^\/apis\/[^/]+\/v1alpha2$/.test(r.path)).map((r) => r.path);
    expect(discoveryPaths.indexOf(`/apis/${LLMD}/v1alpha2`)).toBeGreaterThanOrEqual(0);
    expect(discoveryPaths.indexOf(`/apis/${LLMD}/v1alpha2`)).toBeLessThan(discoveryPaths.indexOf(`/apis/${GIE}/v1alpha2`));
    expect(listed(LLMD, 'inferenceobjectives')).toBe(0);
    expect(f.logs.some((l) => l.startsWith('warn: Both legacy'))).toBe(false);
    // Upstream's reconcilers note the deprecation (inferenceobjective_reconciler.go @ v0.10.0); here once per kind, at info.
    expect(f.logs).toContain('info: InferenceObjectives read from inference.networking.x-k8s.io/v1alpha2; DEPRECATION: apiVersion '
      + 'inference.networking.x-k8s.io/v1alpha2/InferenceObjective is deprecated, replacement llm-d.ai/v1alpha2/InferenceObjective');
  });

  test('neither installed: logged at info naming both groups, and nothing is read', async () => {
    f.api.servesObjectives = false;
    f.api.servesModelRewrites = false;
    const d = await f.start();
    await waitFor(() => f.logs.some((l) => l.includes('no InferenceObjective resource')) && f.logs.some((l) => l.includes('no InferenceModelRewrite resource')), 'logged');
    expect(f.logs.find((l) => l.includes('no InferenceObjective resource'))).toMatch(
      /^info: no InferenceObjective resource \(llm-d\.ai\/v1alpha2 or inference\.networking\.x-k8s\.io\/v1alpha2\) in this cluster/,
    );
    expect(d.objectivesGroup).toBeUndefined();
    expect(d.lastError).toBeUndefined();
  });

  test('a failing discovery request is retried, not taken as "not served": the llm-d.ai group is still chosen', async () => {
    f.api.servesLlmdObjectives = true;
    f.api.upsertObjective(fakeObjective('new', 'pool', 3, { apiGroup: LLMD }));
    f.api.upsertObjective(fakeObjective('legacy', 'pool', 9));
    f.api.failNext(new RegExp(`^/apis/${LLMD.replace('.', '\\.')}/v1alpha2$`), 500, 1);
    const d = await f.start();
    await waitFor(() => d.objectivePriority('new') === 3, 'listed from llm-d.ai');
    expect(f.logs.some((l) => l.startsWith('warn: reading InferenceObjectives: HTTP 500'))).toBe(true);
    expect(d.objectivePriority('legacy')).toBeUndefined();
    expect(listed(GIE, 'inferenceobjectives')).toBe(0);
  });

  test('the llm-d.ai CRD installed later: the next restarted watch asks discovery again and switches, relisting from the new group', async () => {
    f.api.upsertObjective(fakeObjective('legacy', 'pool', 9));
    f.api.upsertObjective(fakeObjective('new', 'pool', 3, { apiGroup: LLMD }));
    const d = await f.start();
    await waitFor(() => d.objectivePriority('legacy') === 9, 'legacy listed');
    expect(d.objectivePriority('new')).toBeUndefined();
    await waitFor(() => f.api.openWatches === 4, 'pool, pods, objectives and rewrites watched');
    f.api.servesLlmdObjectives = true;
    f.api.closeWatches();
    await waitFor(() => d.objectivePriority('new') === 3, 'switched');
    expect(d.objectivePriority('legacy')).toBeUndefined();
    expect(d.objectivesGroup).toBe(LLMD);
    expect(f.logs).toContain('info: InferenceObjectives read from llm-d.ai/v1alpha2 (was inference.networking.x-k8s.io/v1alpha2)');
  });
});
