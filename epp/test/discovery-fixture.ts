import { FakeKubeApiServer, fakePoolV1 } from '@kvroute/testkit';
import { Datastore } from '../src/datastore/datastore';
import { KubernetesDiscovery } from '../src/datastore/kubernetes-discovery';

/** An InferenceModelRewrite rule: exact model matches (none: every model) and weighted targets. */
export const rewriteRule = (models: string[] | undefined, ...targets: [string, number?][]) => ({
  ...(models !== undefined ? { matches: models.map((value) => ({ model: { type: 'Exact', value } })) } : {}),
  targets: targets.map(([modelRewrite, weight]) => ({ modelRewrite, ...(weight !== undefined ? { weight } : {}) })),
});

/** A creation timestamp `minute` minutes into 2026 (rules of equal precedence go by age). */
export const at = (minute: number) => `2026-01-01T00:${String(minute).padStart(2, '0')}:00Z`;

/**
 * A fake API server holding pool `pool` and a datastore, fresh for each test of the calling `describe` (its hooks are
 * registered here), and `start`, which runs a KubernetesDiscovery following the objectives and/or model rewrites until
 * it has synced. Every log line is kept in `logs` as `level: message`.
 */
export function discoveryFixture(follow: { objectives?: boolean; modelRewrites?: boolean }) {
  const fixture = {
    api: undefined as unknown as FakeKubeApiServer,
    ds: undefined as unknown as Datastore,
    discovery: undefined as KubernetesDiscovery | undefined,
    logs: [] as string[],
    async start(): Promise<KubernetesDiscovery> {
      const discovery = new KubernetesDiscovery(fixture.ds, {
        poolName: 'pool',
        kubeConfig: { kind: 'options', options: fixture.api.kubeConfigOptions() },
        backoff: { initialMs: 20, maxMs: 200 },
        ...follow,
        log: (level, message) => fixture.logs.push(`${level}: ${message}`),
      });
      fixture.discovery = discovery;
      await discovery.start();
      await discovery.waitForSync(15_000);
      return discovery;
    },
  };
  beforeEach(async () => {
    fixture.api = await FakeKubeApiServer.start();
    fixture.ds = new Datastore({ scrape: false });
    fixture.logs.length = 0;
    fixture.api.upsertPool(fakePoolV1('pool', { app: 'vllm' }, 8000));
  });
  afterEach(async () => {
    await fixture.discovery?.stop();
    fixture.discovery = undefined;
    await fixture.ds.stop();
    await fixture.api.close();
  });
  return fixture;
}
