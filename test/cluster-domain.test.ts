/**
 * A stack on a cluster whose DNS domain is not `cluster.local`. Cluster DNS answers `<svc>.<ns>.svc.<cluster domain>`
 * only, and Istio names every Service `<name>.<namespace>.svc.<domainSuffix>` from istiod's `--domain` (istio/istio
 * 1.27.0 pilot/pkg/serviceregistry/kube/conversion.go ServiceHostname), so its clusters `outbound|<port>||<that name>`;
 * llm-d-router v0.10.0's chart builds its in-cluster names from `router.clusterDomain` (config/charts/routerlib/
 * values.yaml, templates/_helpers.tpl `llm-d-router.proxy.extProcHost`).
 */
import { DEMO, withOverrides } from '../lib/clusters';
import type { KvAwareRoutingProps } from '../lib/kv-aware-routing';
import { all, one, synthProps } from './support/manifests';

const DOMAIN = 'corp.internal';

function withDomain(props: KvAwareRoutingProps): KvAwareRoutingProps {
  return { ...props, clusterDomain: DOMAIN };
}

describe('a stack for a cluster whose DNS domain is corp.internal (clusterDomain)', () => {
  test('the ext_proc filter calls the EPP cluster Istio builds there (outbound|9002||<epp>.<ns>.svc.corp.internal)', () => {
    const m = synthProps(withDomain(withOverrides(DEMO, { istioVersion: '1.28' })));
    const filter = all(m, 'EnvoyFilter').find((f) => f.metadata.name.endsWith('-ext-proc'))!;
    const extProc = filter.spec.configPatches.find((p: { applyTo: string }) => p.applyTo === 'HTTP_FILTER');
    expect(extProc.patch.value.typed_config.grpc_service.envoy_grpc.cluster_name)
      .toBe(`outbound|9002||ms-llm-d-modelservice-epp.llm-d.svc.${DOMAIN}`);
  });

  test('the override_host patch matches the decode cluster Istio builds there', () => {
    const m = synthProps(withDomain(withOverrides(DEMO, { istioVersion: '1.28' })));
    const filter = all(m, 'EnvoyFilter').find((f) => f.metadata.name.endsWith('-ext-proc'))!;
    const cluster = filter.spec.configPatches.find((p: { applyTo: string }) => p.applyTo === 'CLUSTER');
    expect(cluster.match.cluster.service).toBe(`ms-llm-d-modelservice-decode.llm-d.svc.${DOMAIN}`);
  });

  test('the DestinationRules name the Services\' hosts there', () => {
    const m = synthProps(withDomain(withOverrides(DEMO, { istioVersion: '1.29', endpointPicker: { replicas: 2 } })));
    const hosts = all(m, 'DestinationRule').map((d) => d.spec.host).sort();
    expect(hosts).toEqual([`ms-llm-d-modelservice-decode.llm-d.svc.${DOMAIN}`, `ms-llm-d-modelservice-epp.llm-d.svc.${DOMAIN}`]);
  });

  test('native routing: the referenced-services annotation names the EPP host Istio calls there', () => {
    const m = synthProps(withDomain(withOverrides(DEMO, { istioVersion: '1.30', inferenceRouting: 'native' })));
    const ref = one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-cluster-reference');
    expect(ref.metadata.annotations?.['envoyfilter.istio.io/referenced-services'])
      .toBe(`llm-d/ms-llm-d-modelservice-epp.llm-d.svc.${DOMAIN}`);
  });

  test('a deployed session store is addressed by a name cluster DNS answers there', () => {
    const m = synthProps(withDomain(withOverrides(DEMO, {
      istioVersion: '1.28', decode: { kvEvents: { mode: 'per-pod' } }, endpointPicker: { replicas: 2 }, sessionStore: { deploy: {} },
    })));
    const cm = one(m, 'ConfigMap', 'ms-llm-d-modelservice-epp');
    expect(cm.data['epp-config.yaml']).toContain(`ms-llm-d-modelservice-session-store.llm-d.svc.${DOMAIN}:6379`);
  });

  test('central KV events: vLLM publishes to the EPP by its name there', () => {
    const m = synthProps(withDomain(withOverrides(DEMO, { istioVersion: '1.28', decode: { kvEvents: { mode: 'central' } } })));
    const decode = one(m, 'Deployment', 'ms-llm-d-modelservice-decode');
    expect(JSON.stringify(decode.spec.template.spec)).toContain(`tcp://ms-llm-d-modelservice-epp.llm-d.svc.${DOMAIN}:5557`);
  });

  test('the default stays cluster.local', () => {
    const m = synthProps(withOverrides(DEMO, { istioVersion: '1.28' }));
    const hosts = all(m, 'DestinationRule').map((d) => d.spec.host);
    expect(hosts).toContain('ms-llm-d-modelservice-decode.llm-d.svc.cluster.local');
  });

  test('a domain that is not a DNS subdomain is refused, naming the field', () => {
    expect(() => synthProps({ ...DEMO, clusterDomain: 'Corp_Internal' }))
      .toThrow(/KvAwareRouting\.clusterDomain: must be a DNS-1123 subdomain/);
  });
});
