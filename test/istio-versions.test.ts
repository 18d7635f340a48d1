import * as fs from 'fs';
import * as path from 'path';
import { CLUSTERS, DEMO, withOverrides } from '../lib/clusters';
import type { RequestBodyMode } from '../lib/ext-proc';
import { istioSupport } from '../lib/istio';
import type { KvAwareRoutingProps } from '../lib/kv-aware-routing';
import { envoyRejections } from './support/envoy-acceptance';
import { all, one, synthProfile, synthProps, type Manifest } from './support/manifests';

/** The Istio releases the support matrix covers (README), oldest first; "1.27" stands for every 1.27.x. */
const VERSIONS = ['1.27.0', '1.27.1', '1.27.9', '1.27', '1.28', '1.29', '1.30', '1.31'];

describe.each(VERSIONS)('Istio %s', (version) => {
  const istio = istioSupport(version);

  test.each<RequestBodyMode>(['buffered', 'full-duplex'])('the EnvoyFilter shape for %s request bodies loads', (mode) => {
    const m = synthProps(withOverrides(DEMO, { istioVersion: version, extProc: { requestBodyMode: mode } }));
    expect(envoyRejections(istio, m)).toEqual([]);
    expect(one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc').metadata.annotations).toMatchObject({ 'kvroute.dev/istio-version': version });
  });

  if (istio.nativeInferencePool) {
    test('native InferencePool routing loads: v1 pool, no ext_proc EnvoyFilter (only the timeouts and the EPP cluster reference)', () => {
      const m = synthProps(withOverrides(DEMO, { istioVersion: version, inferenceRouting: 'native' }));
      expect(envoyRejections(istio, m)).toEqual([]);
      expect(one(m, 'InferencePool').apiVersion).toBe('inference.networking.k8s.io/v1');
      expect(all(m, 'EnvoyFilter').map((f) => f.metadata.name).sort()).toEqual(['llm-d-gateway-timeouts', 'ms-llm-d-modelservice-epp-cluster-reference']);
      expect(one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-cluster-reference').spec.configPatches).toEqual([]);
    });
  } else {
    test('native InferencePool routing is refused with the reason', () => {
      expect(() => synthProps(withOverrides(DEMO, { istioVersion: version, inferenceRouting: 'native' })))
        .toThrow(/^KvAwareRouting\.inferenceRouting: "native" needs Istio 1\.28 or newer/);
    });
  }
});

describe.each(CLUSTERS.map((c) => [c.name, c] as const))('cluster profile %s', (_name, profile) => {
  test('synthesizes objects its Istio accepts', () => {
    const istio = istioSupport(profile.routing.istioVersion ?? '1.27.0');
    expect(envoyRejections(istio, synthProfile(profile))).toEqual([]);
  });
});

describe('the acceptance model rejects what each proxy refuses', () => {
  const istio1270 = istioSupport('1.27.0');
  const demo = (): Manifest[] => JSON.parse(JSON.stringify(synthProps(DEMO)));
  const extProcFilter = (m: Manifest[]) => one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc').spec.configPatches[0].patch.value.typed_config;

  test('the previous filter-level FULL_DUPLEX_STREAMED shape with failure_mode_allow is NACKed by Istio 1.27.0, loads on 1.27.1', () => {
    const m = demo();
    Object.assign(extProcFilter(m).processing_mode, {
      request_body_mode: 'FULL_DUPLEX_STREAMED', request_trailer_mode: 'SEND', response_body_mode: 'FULL_DUPLEX_STREAMED', response_trailer_mode: 'SEND',
    });
    expect(envoyRejections(istio1270, m)).toEqual([expect.stringMatching(/failure_mode_allow has to be left as false/)]);
    expect(envoyRejections(istioSupport('1.27.1'), m)).toEqual([]);
  });

  test('FULL_DUPLEX_STREAMED without trailer SEND, at filter level or per route', () => {
    const m = demo();
    Object.assign(extProcFilter(m), { failure_mode_allow: false });
    Object.assign(extProcFilter(m).processing_mode, { request_body_mode: 'FULL_DUPLEX_STREAMED' });
    expect(envoyRejections(istioSupport('1.30'), m)).toEqual([expect.stringMatching(/request_trailer_mode has to be set to SEND/)]);
    const fd = JSON.parse(JSON.stringify(synthProps(withOverrides(DEMO, { extProc: { requestBodyMode: 'full-duplex' } }))));
    const vhost = one(fd, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc').spec.configPatches.find((p: { applyTo: string }) => p.applyTo === 'VIRTUAL_HOST');
    vhost.patch.value.typed_per_filter_config['envoy.filters.http.ext_proc'].overrides.processing_mode.request_trailer_mode = 'SKIP';
    expect(envoyRejections(istio1270, fd)).toEqual([expect.stringMatching(/^ExtProcPerRoute: request_body_mode FULL_DUPLEX_STREAMED without/)]);
  });

  test('override_host beside locality load balancing', () => {
    const m = demo();
    delete one(m, 'DestinationRule').spec.trafficPolicy.loadBalancer.localityLbSetting;
    expect(envoyRejections(istio1270, m)).toEqual([expect.stringMatching(/cannot be combined with partial fields/)]);
    const failover = demo();
    one(failover, 'DestinationRule').spec.trafficPolicy.loadBalancer.localityLbSetting = { enabled: false, failover: [{ from: 'a', to: 'b' }] };
    expect(envoyRejections(istio1270, failover)).toEqual([expect.stringMatching(/distribute or failover/)]);
  });

  test('override_host selected_host_key before Istio 1.30', () => {
    const m = JSON.parse(JSON.stringify(synthProps(withOverrides(DEMO, { istioVersion: '1.30' }))));
    expect(envoyRejections(istioSupport('1.30'), m)).toEqual([]);
    expect(envoyRejections(istioSupport('1.29'), m)).toEqual([expect.stringMatching(/no field selected_host_key before Envoy 1\.38/)]);
  });

  test('a native route to a pool of the wrong API group for the Istio', () => {
    const m: Manifest[] = JSON.parse(JSON.stringify(synthProps(withOverrides(DEMO, { istioVersion: '1.28', inferenceRouting: 'native' }))));
    one(m, 'HTTPRoute', 'llm-d-gateway').spec.rules[0].backendRefs[0].group = 'inference.networking.x-k8s.io';
    expect(envoyRejections(istioSupport('1.28'), m)).toEqual([expect.stringMatching(/routes to InferencePools of inference\.networking\.k8s\.io/)]);
  });
});

describe('istioSupport', () => {
  test.each<[string, Partial<ReturnType<typeof istioSupport>>]>([
    ['1.27.0', { envoyLine: 'release/v1.35', rejectsFilterLevelFullDuplexWithFailOpen: true, fullDuplexFailureAfterBody: 'lossy-fail-open', nativeInferencePool: false }],
    ['1.27', { rejectsFilterLevelFullDuplexWithFailOpen: true }],
    ['1.27.1', { rejectsFilterLevelFullDuplexWithFailOpen: false, inferencePoolApiGroup: 'inference.networking.x-k8s.io' }],
    ['1.28.3', { envoyLine: 'release/v1.36', fullDuplexFailureAfterBody: 'local-reply', inferencePoolApiGroup: 'inference.networking.k8s.io', nativeInferencePool: true, routeRequestBodyBufferLimit: false }],
    ['1.29', { envoyLine: 'release/v1.37', routeRequestBodyBufferLimit: true }],
  ])('%s', (version, facts) => {
    expect(istioSupport(version)).toMatchObject(facts);
  });

  test.each(['1.26.3', '2.0', 'latest', '1.27.x'])('refuses %s, naming the field', (version) => {
    expect(() => istioSupport(version)).toThrow(/^KvAwareRouting\.istioVersion: must be/);
  });

  test('the InferencePool failureMode doc names the first Istio that reads the pool natively, the one KvAwareRouting allows native routing on', () => {
    const source = fs.readFileSync(path.join(__dirname, '..', 'lib', 'inference-pool.ts'), 'utf8');
    const doc = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*readonly failureMode\?/.exec(source)![1]!;
    const named = /Istio >= 1\.(\d+)/.exec(doc);
    expect(named).not.toBeNull();
    const minor = Number(named![1]);
    expect(istioSupport(`1.${minor}`).nativeInferencePool).toBe(true);
    expect(istioSupport(`1.${minor - 1}`).nativeInferencePool).toBe(false);
  });

  test('the profile that uses native routing cannot also configure the EnvoyFilter', () => {
    const props: KvAwareRoutingProps = withOverrides(DEMO, { istioVersion: '1.30', inferenceRouting: 'native', extProc: { failureModeAllow: false } });
    expect(() => synthProps(props)).toThrow(/^KvAwareRouting\.extProc: applies to "envoy-filter" routing only/);
  });
});
