/**
 * llm-d-router v0.10.0's standalone mode: no InferencePool, the pool is the namespace's pods a label selector matches
 * (`--endpoint-selector`, `--endpoint-target-ports`; `pkg/epp/server/options.go` Complete/Validate, `cmd/epp/runner/
 * runner.go` extractGKNN, NewEndpointPoolFromOptions), as its `llm-d-router-standalone` chart deploys the EPP
 * (`config/charts/routerlib/templates/_deployment.yaml`). The selector is Kubernetes' (`k8s.io/apimachinery
 * pkg/labels/selector.go` Parse, Requirement.Matches).
 */
import { FakeKubeApiServer, fakePod, INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { parseArgs, UsageError } from '../src/cli';
import { Datastore } from '../src/datastore/datastore';
import { KubernetesDiscovery } from '../src/datastore/kubernetes-discovery';
import { podEndpoints, type PodLike } from '../src/datastore/inference-pool';
import { parseLabelSelector } from '../src/datastore/label-selector';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { waitFor } from './extproc-harness';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

describe('label selectors (apimachinery pkg/labels/selector.go Parse and Requirement.Matches)', () => {
  test.each([
    ['app=vllm', { app: 'vllm' }, true],
    ['app==vllm', { app: 'sglang' }, false],
    ['app!=vllm', {}, true], // NotEquals matches an absent label
    ['app!=vllm', { app: 'vllm' }, false],
    ['env in (prod,staging)', { env: 'staging' }, true],
    ['env in (prod,staging)', {}, false],
    ['env notin (prod, staging)', {}, true],
    ['env notin (prod,staging)', { env: 'prod' }, false],
    ['tier', { tier: '' }, true],
    ['!deprecated', { deprecated: 'x' }, false],
    ['llm-d.ai/role=decode,!canary', { 'llm-d.ai/role': 'decode' }, true],
    ['rank>1', { rank: '2' }, true],
    ['rank>2', { rank: '2' }, false], // strict: Matches' GreaterThan is `lsValue > rValue`
    ['rank<2', { rank: '2' }, false], // and LessThan `lsValue < rValue`
    ['rank<1', { rank: 'a' }, false], // a value that is not an integer never matches
    ['app=', { app: '' }, true],
    ['', { anything: 'x' }, true], // labels.Everything()
    // Parse's own doc example: "()" is the set {""}, and ",," holds an empty value.
    ['x in (foo,,baz),y,z notin ()', { x: '', y: '1', z: 'a' }, true],
    ['x in (foo,,baz),y,z notin ()', { x: 'foo', y: '1', z: '' }, false],
    ['env in ()', { env: '' }, true],
    ['rank>9223372036854775806', { rank: '9223372036854775807' }, true], // int64, not float64
    ['rank<1', { rank: '99999999999999999999' }, false], // past int64: ParseInt fails, no match
  ])('%s on %j: %s', (text, labels, expected) => {
    expect(parseLabelSelector(text).matches(labels)).toBe(expected);
  });

  test('podEndpoints applies the selector itself too (inference-pool.ts), whatever the server sent', () => {
    const pool = { selector: parseLabelSelector('app=vllm,!canary'), targetPorts: [8000] };
    expect(podEndpoints(fakePod({ name: 'a', ip: '10.0.0.1', labels: { app: 'vllm' } }) as PodLike, pool).map((e) => e.key)).toEqual(['10.0.0.1:8000']);
    expect(podEndpoints(fakePod({ name: 'b', ip: '10.0.0.2', labels: { app: 'vllm', canary: 'true' } }) as PodLike, pool)).toEqual([]);
  });

  test('the canonical string sorts requirements by key and values within a set, as upstream String() does', () => {
    expect(parseLabelSelector('tier notin (b, a), app = vllm ,!canary').toString()).toBe('app=vllm,!canary,tier notin (a,b)');
    expect(parseLabelSelector('x in (foo,,baz),y,z notin ()').toString()).toBe('x in (,baz,foo),y,z notin ()');
    expect(parseLabelSelector('x in (a,,,)').toString()).toBe('x in (,a)');
  });

  test.each([
    ['app=vllm,', "found end of string, expected a requirement after ','"],
    ['env in (a,,)', "found \")\", expected ',' or a value"], // parseIdentifiersList: ",," then ")"
    ['rank>99999999999999999999', "for '>', the value must be an integer"], // strconv.ParseInt(v, 10, 64)
    ['app=x\u00a0', 'value "x\u00a0"'], // only space, tab, CR and LF separate tokens (isWhitespace)
    ['env in (a', "found end of string, expected ',' or ')'"],
    ['app vllm', 'found "vllm", expected one of'],
    ['-app=x', 'key "-app"'],
    ['app=-x', 'value "-x"'],
    [`app=${'v'.repeat(64)}`, 'at most 63'],
    ['rank>x', "for '>', the value must be an integer"],
    ['Example.com/app=x', 'its prefix must be a DNS subdomain'],
  ])('%s is refused: %s', (text, message) => {
    expect(() => parseLabelSelector(text)).toThrow(message);
  });
});

describe('--endpoint-selector and --endpoint-target-ports (options.go, runner.go extractGKNN)', () => {
  const env = { POD_NAME: 'llm-d-router-epp-7d9f8b6c5d-x2x9k', NAMESPACE: 'llm-d' };

  test("the pool is the EPP's Deployment (from $POD_NAME) in $NAMESPACE; ports deduplicated in order", () => {
    const o = parseArgs(['--endpoint-selector', 'app=vllm,llm-d.ai/role in (decode,both)', '--endpoint-target-ports', '8000,8001,8000'], env)!;
    expect(o.poolName).toBe('llm-d-router-epp');
    expect(o.poolNamespace).toBe('llm-d');
    expect(o.endpointSelector!.selector.toString()).toBe('app=vllm,llm-d.ai/role in (both,decode)');
    expect(o.endpointSelector!.targetPorts).toEqual([8000, 8001]);
  });

  // GIE v1.5.0 / llm-d-router v0.10.0 pkg/epp/server/options.go: fs.IntSliceVar; spf13/pflag int_slice.go Set replaces
  // the default on the first use and appends on every later one.
  test('a repeated --endpoint-target-ports appends, as pflag\'s IntSlice does, rather than keeping the last; the bounds apply to the whole list', () => {
    const ports = (...argv: string[]) => parseArgs(['--endpoint-selector', 'app=vllm', ...argv], env)!.endpointSelector!.targetPorts;
    expect(ports('--endpoint-target-ports', '8000', '--endpoint-target-ports', '8001')).toEqual([8000, 8001]);
    expect(ports('--endpoint-target-ports=8000,8001', '--endpoint-target-ports', '8002,8000')).toEqual([8000, 8001, 8002]);
    expect(() => ports('--endpoint-target-ports', '1,2,3,4,5', '--endpoint-target-ports', '6,7,8,9')).toThrow('at most 8 ports, got 9');
  });

  test.each([
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '8000', '--pool-name', 'p'], env, '--pool-name and --endpoint-selector are exclusive'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '8000', '--endpoints', '127.0.0.1:1'], env, '--endpoints and --endpoint-selector are exclusive'],
    [['--endpoint-selector', 'app=vllm'], env, '--endpoint-selector needs --endpoint-target-ports'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '8000, 8001'], env, '--endpoint-target-ports: " 8001" is not a port 1-65535'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '0'], env, '--endpoint-target-ports: "0" is not a port'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '1,2,3,4,5,6,7,8,9'], env, 'at most 8 ports, got 9'],
    [['--endpoint-selector', 'app in (', '--endpoint-target-ports', '8000'], env, '--endpoint-selector: invalid label selector "app in ("'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '8000'], {}, '$POD_NAME is not set'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '8000'], { POD_NAME: 'epp' }, 'cannot take a Deployment name from $POD_NAME "epp"'],
  ])('%j (env %j): %s', (argv, environment, message) => {
    expect(() => parseArgs(argv, environment)).toThrow(UsageError);
    expect(() => parseArgs(argv, environment)).toThrow(message);
  });

  test('--endpoint-target-ports beside --pool-name is ignored (reported), as upstream reads it only with a selector', () => {
    expect(parseArgs(['--pool-name', 'p', '--endpoint-target-ports', '8000'], {})!.ignoredFlags).toEqual(['--endpoint-target-ports']);
  });
});

describe('standalone discovery against a real HTTP API server', () => {
  let api: FakeKubeApiServer;
  let ds: Datastore;
  let discovery: KubernetesDiscovery | undefined;
  let epp: RunningEpp | undefined;
  beforeEach(async () => {
    api = await FakeKubeApiServer.start();
    ds = new Datastore({ scrape: false });
  });
  afterEach(async () => {
    await discovery?.stop();
    discovery = undefined;
    await epp?.stop();
    epp = undefined;
    await ds.stop();
    await api.close();
  });

  test('the Ready pods the selector matches, one endpoint per target port, with no InferencePool in the cluster; a relabelled pod leaves', async () => {
    api.upsertPod(fakePod({ name: 'decode-0', ip: '10.0.0.1', labels: { app: 'vllm', 'llm-d.ai/role': 'decode' } }));
    api.upsertPod(fakePod({ name: 'both-0', ip: '10.0.0.2', labels: { app: 'vllm', 'llm-d.ai/role': 'both' } }));
    api.upsertPod(fakePod({ name: 'prefill-0', ip: '10.0.0.3', labels: { app: 'vllm', 'llm-d.ai/role': 'prefill' } }));
    api.upsertPod(fakePod({ name: 'canary-0', ip: '10.0.0.4', labels: { app: 'vllm', 'llm-d.ai/role': 'decode', canary: 'true' } }));
    api.upsertPod(fakePod({ name: 'starting-0', ip: '10.0.0.5', labels: { app: 'vllm', 'llm-d.ai/role': 'decode' }, ready: false }));
    const logs: string[] = [];
    discovery = new KubernetesDiscovery(ds, {
      poolName: 'llm-d-router-epp',
      kubeConfig: { kind: 'options', options: api.kubeConfigOptions() },
      backoff: { initialMs: 20, maxMs: 200 },
      endpointSelector: { selector: parseLabelSelector('app=vllm,llm-d.ai/role in (decode,both),!canary'), targetPorts: [8000, 8001] },
      log: (level, message) => logs.push(`${level}: ${message}`),
    });
    await discovery.start();
    await discovery.waitForSync(15_000);
    const keys = () => ds.snapshot().map((s) => `${s.endpoint.name}@${s.endpoint.key}`).sort();
    expect(keys()).toEqual(['both-0-rank-0@10.0.0.2:8000', 'both-0-rank-1@10.0.0.2:8001', 'decode-0-rank-0@10.0.0.1:8000', 'decode-0-rank-1@10.0.0.1:8001']);
    expect(logs).toContain('info: endpoint selector app=vllm,!canary,llm-d.ai/role in (both,decode) in namespace default, target ports 8000, 8001 (no InferencePool; pool named llm-d-router-epp)');
    // Relabelled out of the selector: the API server's filtered watch reports it gone.
    api.upsertPod(fakePod({ name: 'decode-0', ip: '10.0.0.1', labels: { app: 'vllm', 'llm-d.ai/role': 'decode', canary: 'true' } }));
    await waitFor(() => keys().length === 2);
    expect(keys()).toEqual(['both-0-rank-0@10.0.0.2:8000', 'both-0-rank-1@10.0.0.2:8001']);
    expect(discovery.lastError).toBeUndefined();
  });

  test('the whole EPP from llm-d-router-standalone\'s flags: pool gauges labelled with the Deployment, no InferenceObjective watch', async () => {
    api.upsertPod(fakePod({ name: 'vllm-0', ip: '127.0.0.1', labels: { app: 'vllm' } }));
    const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    epp = await startEpp(parseArgs(['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '8000', '--kubeconfig', api.writeKubeconfig(),
      '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1'], { POD_NAME: 'router-epp-5c4d8f9b7-abcde', NAMESPACE: 'default' })!, quiet);
    await waitFor(() => epp!.datastore.snapshot().length === 1);
    expect(epp.datastore.snapshot()[0]!.endpoint.key).toBe('127.0.0.1:8000');
    const page = await (await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`)).text();
    expect(page).toMatch(/inference_pool_ready_pods\{name="router-epp"\}/);
    // Only pods are read: no InferencePool, and no API discovery of InferenceObjective or InferenceModelRewrite groups.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(api.requests.map((r) => r.path).filter((path) => !path.startsWith('/api/v1/namespaces/default/pods'))).toEqual([]);
  });
});
