/**
 * GIE v1.5.0's InferenceModelRewrite (kubernetes-sigs/gateway-api-inference-extension @ df9f890):
 * `apix/v1alpha2/inferencemodelrewrite_types.go` (the resource and its precedence rules),
 * `pkg/epp/datastore/modelrewritestore.go` (which rule wins), `pkg/epp/controller/inferencemodelrewrite_reconciler.go`
 * (which resources are kept), `pkg/epp/requestcontrol/director.go` (mutateModel, applyWeightedModelRewrite,
 * selectWeightedModel) and `pkg/epp/metrics/metrics.go` (`inference_extension_model_rewrite_decisions_total`).
 */
import * as fs from 'fs';
import * as path from 'path';
import { FakeKubeApiServer, FakeVllmServer, INTEGRATION_TEST_TIMEOUT_MS, fakeModelRewrite, fakePod, fakePoolV1 } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { parseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { KubernetesDiscovery } from '../src/datastore/kubernetes-discovery';
import { ModelRewriteStore, selectWeightedTarget } from '../src/datastore/model-rewrites';
import type { IncomingRequest } from '../src/extproc/request-director';
import { createEppMetrics } from '../src/metrics';
import { RequestControl } from '../src/requestcontrol/request-control';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { buildScheduler } from '../src/scheduling/scheduler';
import { FakeEnvoy, readStreamedBody, requestBody, requestHeaders, responseBody, responseHeaders, setHeaders, waitFor } from './extproc-harness';
import { staticPool } from './static-pool';
import { at, discoveryFixture, rewriteRule as rule } from './discovery-fixture';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);


describe('ModelRewriteStore (modelrewritestore.go getRule)', () => {
  test('an exact match beats a generic rule, whatever their ages', () => {
    const store = new ModelRewriteStore();
    store.set(fakeModelRewrite('catch-all', 'pool', [rule(undefined, ['base-v2'])], { creationTimestamp: at(0) }));
    store.set(fakeModelRewrite('canary', 'pool', [rule(['llama'], ['llama-canary'])], { creationTimestamp: at(30) }));
    expect(store.rule('llama')).toMatchObject({ rewriteName: 'canary', targets: [{ modelRewrite: 'llama-canary', weight: 0 }] });
    expect(store.rule('qwen')).toMatchObject({ rewriteName: 'catch-all' });
  });

  test('between resources the older wins (creation timestamp); within one, the first rule in list order', () => {
    const store = new ModelRewriteStore();
    store.set(fakeModelRewrite('newer', 'pool', [rule(['m'], ['from-newer'])], { creationTimestamp: at(20) }));
    store.set(fakeModelRewrite('older', 'pool', [rule(['m'], ['first']), rule(['m', 'n'], ['second'])], { creationTimestamp: at(10) }));
    expect(store.rule('m')?.targets[0]?.modelRewrite).toBe('first');
    expect(store.rule('n')?.targets[0]?.modelRewrite).toBe('second');
    store.set(fakeModelRewrite('newer-generic', 'pool', [rule(undefined, ['g0'])], { creationTimestamp: at(5) }));
    store.set(fakeModelRewrite('oldest-generic', 'pool', [rule(undefined, ['g1']), rule([], ['g2'])], { creationTimestamp: at(1) }));
    expect(store.rule('other')?.targets[0]?.modelRewrite).toBe('g1'); // an empty `matches` is generic too
    store.delete('oldest-generic');
    expect(store.rule('other')?.targets[0]?.modelRewrite).toBe('g0');
  });

  test('set replaces a resource\'s rules; delete and clear forget them', () => {
    const store = new ModelRewriteStore();
    store.set(fakeModelRewrite('r', 'pool', [rule(['a'], ['a2'])]));
    store.set(fakeModelRewrite('r', 'pool', [rule(['b'], ['b2'])]));
    expect(store.rule('a')).toBeUndefined();
    expect(store.rule('b')?.targets[0]?.modelRewrite).toBe('b2');
    store.delete('r');
    expect(store.rule('b')).toBeUndefined();
    expect(store.size).toBe(0);
    store.set(fakeModelRewrite('g', 'pool', [rule(undefined, ['x'])]));
    store.clear();
    expect(store.rule('anything')).toBeUndefined();
  });

  test('rules without a usable target are dropped (the CRD requires one; GIE would forward an empty model), and so are matches naming no model', () => {
    const store = new ModelRewriteStore();
    store.set(fakeModelRewrite('r', 'pool', [
      { matches: [{ model: { value: 'm' } }], targets: [] },
      { matches: [{ model: { value: 'm' } }], targets: [{ modelRewrite: '' }] },
      { matches: [{ model: { value: 'm' } }], targets: [{ modelRewrite: 'kept', weight: 0.5 }] },
    ]));
    expect(store.rule('m')?.targets).toEqual([{ modelRewrite: 'kept', weight: 0 }]);
  });

  test('only resources naming the pool\'s group apply, once the group is known', () => {
    let group: string | undefined;
    const store = new ModelRewriteStore(() => group);
    store.set(fakeModelRewrite('x-k8s', 'pool', [rule(['m'], ['alpha'])], { poolGroup: 'inference.networking.x-k8s.io', creationTimestamp: at(1) }));
    store.set(fakeModelRewrite('k8s', 'pool', [rule(['m'], ['v1'])], { creationTimestamp: at(2) }));
    expect(store.rule('m')?.rewriteName).toBe('x-k8s');
    group = 'inference.networking.k8s.io';
    expect(store.rule('m')?.rewriteName).toBe('k8s');
  });
});

describe('selectWeightedTarget (director.go selectWeightedModel)', () => {
  const targets = [{ modelRewrite: 'a', weight: 1 }, { modelRewrite: 'b', weight: 3 }];
  test('a uniform draw below the total weight picks the first target whose cumulative weight exceeds it', () => {
    // total 4: draws 0 → a; 1, 2, 3 → b
    expect(selectWeightedTarget(targets, () => 0)).toBe('a');
    expect(selectWeightedTarget(targets, () => 0.2499)).toBe('a');
    expect(selectWeightedTarget(targets, () => 0.25)).toBe('b');
    expect(selectWeightedTarget(targets, () => 0.9999)).toBe('b');
  });

  test('all weights unset: an even split', () => {
    const even = [{ modelRewrite: 'a', weight: 0 }, { modelRewrite: 'b', weight: 0 }, { modelRewrite: 'c', weight: 0 }];
    expect([0, 0.34, 0.67].map((r) => selectWeightedTarget(even, () => r))).toEqual(['a', 'b', 'c']);
  });
});

describe('request control applies the rule for the body\'s model (director.go mutateModel)', () => {
  let ds: Datastore;
  afterEach(() => ds.stop());
  const config = parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`);
  const post = (body: unknown, headers: Record<string, string> = {}): IncomingRequest => ({
    requestId: 'r',
    headers: new Map([[':method', 'POST'], [':path', typeof body === 'object' && body !== null && 'messages' in body ? '/v1/chat/completions' : '/v1/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
    body: Buffer.from(JSON.stringify(body)),
    filterMetadata: {},
  });

  test('the drawn target replaces the body\'s model, labels the request and counts the decision; it overrides x-gateway-model-name-rewrite', async () => {
    ds = staticPool(1);
    const store = new ModelRewriteStore();
    store.set(fakeModelRewrite('split', 'pool', [rule(['food-review'], ['food-review-v1', 1], ['food-review-v2', 1])]));
    const draws = [0.1, 0.9, 0.9];
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config), metrics: metrics.collectors, modelRewrites: store, random: () => draws.shift() ?? 0.5 });
    const forwarded: string[] = [];
    for (const headers of [{}, {}, { 'x-gateway-model-name-rewrite': 'from-header' }] as Record<string, string>[]) {
      const d = await director.route(post({ model: 'food-review', prompt: 'hi' }, headers));
      if (d.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(d)}`);
      forwarded.push(JSON.parse(d.body!.toString()).model);
      director.release(d.ticket, 'completed');
    }
    expect(forwarded).toEqual(['food-review-v1', 'food-review-v2', 'food-review-v2']);
    const text = await metrics.registry.metrics();
    expect(text).toContain('inference_extension_model_rewrite_decisions_total{model_rewrite_name="split",model_name="food-review",target_model="food-review-v1"} 1');
    expect(text).toContain('inference_extension_model_rewrite_decisions_total{model_rewrite_name="split",model_name="food-review",target_model="food-review-v2"} 2');
    expect(text).toContain('inference_objective_request_total{model_name="food-review",target_model_name="food-review-v2",priority="0"} 2');
    // No rule for this model: the header still rewrites, and nothing is counted for it.
    const other = await director.route(post({ model: 'other', prompt: 'hi' }, { 'x-gateway-model-name-rewrite': 'other-v2' }));
    expect(other.kind === 'route' && JSON.parse(other.body!.toString()).model).toBe('other-v2');
    expect(await metrics.registry.metrics()).not.toContain('model_name="other",target_model="other-v2"');
  });

  test('decided as the body is read: a request no pod can take is labelled with the drawn target (503)', async () => {
    ds = staticPool(0);
    const store = new ModelRewriteStore();
    store.set(fakeModelRewrite('all', 'pool', [rule(undefined, ['base-v3'])]));
    const metrics = createEppMetrics();
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config), metrics: metrics.collectors, modelRewrites: store });
    expect(await director.route(post({ model: 'base', prompt: 'hi' }))).toMatchObject({ kind: 'reject', status: 503 });
    const text = await metrics.registry.metrics();
    expect(text).toContain('inference_objective_request_error_total{model_name="base",target_model_name="base-v3",error_code="ServiceUnavailable"} 1');
    expect(text).toContain('inference_extension_model_rewrite_decisions_total{model_rewrite_name="all",model_name="base",target_model="base-v3"} 1');
  });

  test('a target that is the body\'s own model leaves the body as it came, not re-serialized (llm-d-router c51b75a1, #2318: modelRewriteIfNeeded skips RewriteModelName when TargetModelName equals the body\'s model)', async () => {
    // A canary split whose first target is the model itself, and a rewrite header naming the body's model: nothing to
    // rewrite. Re-serialized through JSON.parse/stringify the body lost what a JS number cannot hold (a 64-bit seed).
    ds = staticPool(1);
    const store = new ModelRewriteStore();
    store.set(fakeModelRewrite('canary', 'pool', [rule(['food-review'], ['food-review', 9], ['food-review-v2', 1])]));
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(config), modelRewrites: store, random: () => 0.1 });
    const text = '{"model":"food-review","prompt":"hi","seed":12345678901234567890,"temperature":1.0}';
    const send = (model: string, headers: Record<string, string>): IncomingRequest => ({ ...post({}, headers), body: Buffer.from(text.replace('food-review', model)) });
    for (const [model, headers] of [['food-review', {}], ['other', { 'x-gateway-model-name-rewrite': 'other' }]] as [string, Record<string, string>][]) {
      const req = send(model, headers);
      const d = await director.route(req);
      if (d.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(d)}`);
      expect((d.body ?? req.body!).toString()).toBe(req.body!.toString());
      director.release(d.ticket, 'completed');
    }
    // A target that differs still rewrites the body.
    const drawn = new RequestControl({ datastore: ds, scheduler: buildScheduler(config), modelRewrites: store, random: () => 0.95 });
    const d = await drawn.route(send('food-review', {}));
    if (d.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(d)}`);
    expect(JSON.parse(d.body!.toString()).model).toBe('food-review-v2');
    drawn.release(d.ticket, 'completed');
  });

  test('the passthrough parser mutates nothing, so no rule applies (GIE rewrites only a parsed body)', async () => {
    ds = staticPool(1);
    const store = new ModelRewriteStore();
    store.set(fakeModelRewrite('all', 'pool', [rule(undefined, ['base-v3'])]));
    const passthrough = parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: passthrough-parser
- type: queue-scorer
parser:
  pluginRef: passthrough-parser
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
`);
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(passthrough), modelRewrites: store });
    const d = await director.route(post({ model: 'base', prompt: 'hi' }));
    expect(d.kind).toBe('route');
    expect(d.kind === 'route' && d.body).toBeFalsy();
  });
});

describe('KubernetesDiscovery following InferenceModelRewrites (inferencemodelrewrite_reconciler.go)', () => {
  const f = discoveryFixture({ modelRewrites: true });
  const target = (d: KubernetesDiscovery, model: string) => d.modelRewrites.rule(model)?.targets[0]?.modelRewrite;

  test('keeps the rewrites that refer to this pool by name and group: listed, then added, changed, moved away and deleted through the watch', async () => {
    f.api.upsertModelRewrite(fakeModelRewrite('canary', 'pool', [rule(['m'], ['m-canary'])]));
    f.api.upsertModelRewrite(fakeModelRewrite('other-pool', 'another-pool', [rule(['n'], ['n2'])]));
    f.api.upsertModelRewrite(fakeModelRewrite('other-group', 'pool', [rule(['g'], ['g2'])], { poolGroup: 'inference.networking.x-k8s.io' }));
    f.api.upsertModelRewrite(fakeModelRewrite('elsewhere', 'pool', [rule(['e'], ['e2'])], { namespace: 'other' }));
    const d = await f.start();
    await waitFor(() => target(d, 'm') === 'm-canary', 'listed');
    expect(target(d, 'n')).toBeUndefined();
    expect(target(d, 'g')).toBeUndefined(); // the v1 pool's group is inference.networking.k8s.io
    expect(target(d, 'e')).toBeUndefined();
    f.api.upsertModelRewrite(fakeModelRewrite('later', 'pool', [rule(['x'], ['x2'])]));
    await waitFor(() => target(d, 'x') === 'x2', 'added');
    f.api.upsertModelRewrite(fakeModelRewrite('canary', 'pool', [rule(['m'], ['m-stable'])]));
    await waitFor(() => target(d, 'm') === 'm-stable', 'changed');
    f.api.upsertModelRewrite(fakeModelRewrite('canary', 'another-pool', [rule(['m'], ['m-stable'])]));
    await waitFor(() => target(d, 'm') === undefined, 'moved to another pool');
    f.api.deleteModelRewrite('later');
    await waitFor(() => target(d, 'x') === undefined, 'deleted');
  });

  test('a cluster without the CRD (GIE before v1.5.0) is not an error: the pool syncs and the absence is logged at info', async () => {
    f.api.servesModelRewrites = false;
    const d = await f.start();
    await waitFor(() => f.logs.some((l) => l.includes('no InferenceModelRewrite resource')), 'logged');
    expect(f.logs.find((l) => l.includes('no InferenceModelRewrite resource'))).toMatch(/^info: /);
    expect(d.synced).toBe(true);
    expect(d.modelRewrites.rule('m')).toBeUndefined();
  });
});

describe('the running EPP rewrites by the pool\'s InferenceModelRewrites, over a real ext_proc stream', () => {
  const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

  test('the pod gets the target model and the client sees its own name back (handlers/server.go rewriteModelName)', async () => {
    const api = await FakeKubeApiServer.start();
    const kubeconfig = api.writeKubeconfig();
    const pod = await FakeVllmServer.start({ engines: [{ waiting: 0, running: 0, kvUsage: 0.1 }] });
    let epp: RunningEpp | undefined;
    let envoy: FakeEnvoy | undefined;
    try {
      api.upsertPool(fakePoolV1('pool', { app: 'vllm' }, pod.port));
      api.upsertPod(fakePod({ name: 'vllm-0', ip: '127.0.0.1', labels: { app: 'vllm' } }));
      api.upsertModelRewrite(fakeModelRewrite('canary', 'pool', [rule(['m'], ['m-canary', 5])]));
      epp = await startEpp(parseArgs(['--pool-name', 'pool', '--kubeconfig', kubeconfig, '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
        '--host', '127.0.0.1', '--refresh-metrics-interval', '20ms', '--shutdown-grace-period', '1s'])!, quiet);
      envoy = new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`);
      const running = epp;
      await waitFor(() => running.datastore.snapshot().length === 1 && running.datastore.snapshot()[0]!.metrics.updateTime > 0);
      const forward = async (): Promise<string> => {
        const s = envoy!.open();
        s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json' }, false));
        s.send(requestBody(JSON.stringify({ model: 'm', prompt: 'hello' }), true));
        const first = await s.next();
        expect(setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint']).toBe(`127.0.0.1:${pod.port}`);
        const body = Buffer.concat((await readStreamedBody(s, 'request_body')).chunks).toString();
        s.send(responseHeaders({ ':status': '200', 'content-type': 'application/json' }, false));
        await s.next();
        s.send(responseBody(`{"model":"${JSON.parse(body).model}","choices":[]}`, true));
        const answer = Buffer.concat((await readStreamedBody(s, 'response_body')).chunks).toString();
        expect(JSON.parse(answer).model).toBe('m');
        s.end();
        await s.status;
        return JSON.parse(body).model;
      };
      // The resource is followed, not configured: the first requests may precede its list.
      await waitFor(async () => (await forward()) === 'm-canary', 'rewrite followed');
      const text = await (await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`)).text();
      expect(text).toMatch(/^inference_extension_model_rewrite_decisions_total\{model_rewrite_name="canary",model_name="m",target_model="m-canary"\} [1-9]/m);
    } finally {
      envoy?.close();
      await epp?.stop();
      await pod.close();
      await api.close();
      fs.rmSync(path.dirname(kubeconfig), { recursive: true, force: true });
    }
  });
});
