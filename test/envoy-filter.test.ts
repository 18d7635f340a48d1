import { checkEnvoyConfig } from '@kvroute/testkit';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import { CLUSTERS, DEMO, withOverrides } from '../lib/clusters';
import type { KvAwareRoutingProps } from '../lib/kv-aware-routing';
import { all, container, Manifest, one, synthProfile, synthProps } from './support/manifests';

// The HTTP filter and route messages are not needed by the EPP itself; load their files for this check.
const api = loadEnvoyApi([
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/config/route/v3/route_components.proto',
  'envoy/config/listener/v3/listener.proto',
]);

/** The Envoy message an EnvoyFilter patch value is, by what it applies to. */
const MESSAGE_FOR: Record<string, string> = {
  HTTP_FILTER: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  NETWORK_FILTER: 'envoy.config.listener.v3.Filter',
  LISTENER: 'envoy.config.listener.v3.Listener',
  CLUSTER: 'envoy.config.cluster.v3.Cluster',
  VIRTUAL_HOST: 'envoy.config.route.v3.VirtualHost',
  HTTP_ROUTE: 'envoy.config.route.v3.Route',
};

type Patch = { applyTo: string; patch: { operation: string; value: unknown } };

function check(p: Patch): string[] {
  const type = MESSAGE_FOR[p.applyTo];
  if (!type) return [`no Envoy message known for applyTo ${p.applyTo}`];
  const mergePatch = p.patch.operation === 'MERGE';
  // Istio merges a network filter's typed_config into the generated one of the same @type
  // (pilot/pkg/networking/core/envoyfilter/listener_patch.go, NETWORK_FILTER MERGE @ 1.27.0), so that payload is a
  // partial message too; everywhere else an Any is replaced whole.
  const value = p.patch.value as { typed_config?: { '@type'?: string } & Record<string, unknown> };
  if (p.applyTo === 'NETWORK_FILTER' && mergePatch && value.typed_config?.['@type'] !== undefined) {
    const { '@type': url, ...payload } = value.typed_config;
    const payloadType = api.lookupTypeByUrl(url!);
    if (!payloadType) return [`$.typed_config: @type ${url} names no message`];
    return checkEnvoyConfig(api.root, payloadType.fullName.replace(/^\./, ''), payload, { mergePatch });
  }
  // A MERGE value is a partial message merged into what Istio generated; presence rules apply to the result.
  return checkEnvoyConfig(api.root, type, p.patch.value, { mergePatch });
}

const FULL_DUPLEX: KvAwareRoutingProps = withOverrides(DEMO, { extProc: { requestBodyMode: 'full-duplex' } });
const CASES: [string, Manifest[]][] = [
  ...CLUSTERS.map((c) => [c.name, synthProfile(c)] as [string, Manifest[]]),
  ['demo with full-duplex bodies', synthProps(FULL_DUPLEX)],
];

describe.each(CASES)('%s: every EnvoyFilter decoded with Envoy\'s protos', (_name, m) => {
  const filters: Manifest[] = all(m, 'EnvoyFilter');
  const patches: [string, Patch][] = filters.flatMap((f) =>
    f.spec.configPatches.map((p: Patch) => [`${f.metadata.name}: ${p.applyTo} ${p.patch.operation}`, p] as [string, Patch]));
  test.each(patches)('%s is a valid Envoy config', (_id, patch) => {
    expect(check(patch)).toEqual([]);
  });

  test('every @type resolves to a message of the loaded API', () => {
    const urls = JSON.stringify(filters.map((f) => f.spec.configPatches)).match(/type\.googleapis\.com\/[A-Za-z0-9_.]+/g) ?? [];
    expect(urls.length).toBeGreaterThanOrEqual(1);
    for (const url of urls) expect({ url, found: api.lookupTypeByUrl(url) !== undefined }).toEqual({ url, found: true });
  });
});

describe('the check rejects what Envoy would reject', () => {
  const demoFilter = one(synthProfile(CLUSTERS[0]), 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc');
  const patch = (i: number): Patch => JSON.parse(JSON.stringify(demoFilter.spec.configPatches[i]));

  test('a misspelled field', () => {
    const p = patch(0);
    (p.patch.value as { typed_config: Record<string, unknown> }).typed_config.failure_mode_alow = true;
    expect(check(p).join('\n')).toMatch(/failure_mode_alow/);
  });

  test('an enum value Envoy does not have', () => {
    const p = patch(0);
    (p.patch.value as { typed_config: { processing_mode: Record<string, string> } }).typed_config.processing_mode.request_body_mode = 'FULL_DUPLEX';
    expect(check(p).join('\n')).toMatch(/request_body_mode/);
  });

  test('FULL_DUPLEX_STREAMED without trailer mode SEND', () => {
    const p = patch(0);
    const mode = (p.patch.value as { typed_config: { processing_mode: Record<string, string> } }).typed_config.processing_mode;
    Object.assign(mode, { request_body_mode: 'FULL_DUPLEX_STREAMED', request_trailer_mode: 'SKIP' });
    expect(check(p).join('\n')).toMatch(/FULL_DUPLEX_STREAMED/);
  });

  test('an @type that names no message', () => {
    const p = patch(1);
    const json = JSON.stringify(p).replace('override_host.v3.OverrideHost', 'override_host.v3.OverideHost');
    expect(check(JSON.parse(json)).join('\n')).toMatch(/OverideHost/);
  });

  test('an override_host policy without its required fallback', () => {
    const p = patch(1);
    const cfg = (p.patch.value as { load_balancing_policy: { policies: { typed_extension_config: { typed_config: Record<string, unknown> } }[] } })
      .load_balancing_policy.policies[0].typed_extension_config.typed_config;
    delete cfg.fallback_policy;
    expect(check(p).join('\n')).toMatch(/fallback_policy/);
  });
});

// Flow control holds an answer longer than Envoy's 1 s message_timeout; the EPP asks for more with
// override_message_timeout, which Envoy honours only up to max_message_timeout (`ext_proc.cc` onNewTimeout @ v1.35.0).
describe('max_message_timeout: the EnvoyFilter allows what the EPP is told to ask for', () => {
  const filterOf = (m: Manifest[]) => all(m, 'EnvoyFilter').flatMap((f) => f.spec.configPatches)
    .map((p: Patch) => (p.patch.value as { typed_config?: Record<string, unknown> }).typed_config)
    .find((c) => c?.['@type'] === 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor')!;
  const eppArgs = (m: Manifest[]): string[] => container(one(m, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').args;

  test('buffered (the default): 30s on both sides by default, a chosen value on both, "0s" on neither', () => {
    const byDefault = synthProfile(CLUSTERS[0]);
    expect(filterOf(byDefault)).toMatchObject({ message_timeout: '1s', max_message_timeout: '30s' });
    expect(eppArgs(byDefault)).toContain('--ext-proc-max-message-timeout=30s');

    // The gateway's request_timeout raised with it: it keeps running while the EPP holds the request.
    const chosen = synthProps(withOverrides(DEMO, { extProc: { maxMessageTimeout: '90s' }, gateway: { requestReceiveTimeout: '120s' } }));
    expect(filterOf(chosen)).toMatchObject({ max_message_timeout: '90s' });
    expect(eppArgs(chosen)).toContain('--ext-proc-max-message-timeout=90s');

    const off = synthProps(withOverrides(DEMO, { extProc: { maxMessageTimeout: '0s' } }));
    expect(filterOf(off)).not.toHaveProperty('max_message_timeout');
    expect(eppArgs(off).some((a) => a.startsWith('--ext-proc-max-message-timeout'))).toBe(false);
  });

  // Envoy's HCM request_timeout runs on while ext_proc holds the buffered request (disarmed "when the last byte of the
  // request is sent upstream", http_connection_manager.proto field 28 at go-control-plane 197b96a9c7, Istio 1.27.0's
  // pin), and stream_idle_timeout is reset only by the stream's own events: both must outlast the hold.
  test.each(CLUSTERS.map((c) => [c.name, c] as const))('%s: the gateway\'s request_timeout (by more than the 10s upload margin) and stream_idle_timeout outlast max_message_timeout', (_name, profile) => {
    const m = synthProfile(profile);
    const seconds = (d: unknown): number => (typeof d === 'string' ? Number(/^(\d+(?:\.\d+)?)s$/.exec(d)![1]) : Infinity);
    const hcm = (all(m, 'EnvoyFilter').find((f) => f.metadata.name.endsWith('-timeouts'))?.spec.configPatches[0]?.patch.value.typed_config ?? {}) as Record<string, unknown>;
    const hold = seconds(filterOf(m)?.max_message_timeout ?? '0s');
    if (hold === 0) return;
    expect(seconds(hcm.request_timeout)).toBeGreaterThan(hold + 10);
    expect(seconds(hcm.stream_idle_timeout)).toBeGreaterThan(hold);
  });

  test('full-duplex: Envoy runs no message timer, so neither side sets it', () => {
    const m = synthProps(FULL_DUPLEX);
    expect(filterOf(m)).not.toHaveProperty('max_message_timeout');
    expect(eppArgs(m).some((a) => a.startsWith('--ext-proc-max-message-timeout'))).toBe(false);
  });
});

// The EPP protocol's "Destination Endpoint Served" (GIE docs/proposals/004-endpoint-picker-protocol): the data plane
// MUST send the endpoint that served in `metadata_context` `envoy.lb` / `x-gateway-destination-endpoint-served`.
describe('the endpoint that served reaches the EPP where the Envoy can say it', () => {
  const extProc = (m: Manifest[]) => all(m, 'EnvoyFilter').flatMap((f) => f.spec.configPatches)
    .map((p: Patch) => (p.patch.value as { typed_config?: Record<string, unknown> }).typed_config)
    .find((c) => c?.['@type'] === 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor')!;
  const overrideHost = (m: Manifest[]) => {
    const cluster = all(m, 'EnvoyFilter').flatMap((f) => f.spec.configPatches).find((p: Patch) => p.applyTo === 'CLUSTER');
    return (cluster.patch.value as { load_balancing_policy: { policies: { typed_extension_config: { typed_config: Record<string, unknown> } }[] } })
      .load_balancing_policy.policies[0]!.typed_extension_config.typed_config;
  };

  test.each(['1.27.0', '1.28', '1.29'])('Istio %s: ext_proc forwards envoy.lb; override_host has no selected_host_key (Envoy < 1.38 lacks the field)', (version) => {
    const m = synthProps(withOverrides(DEMO, { istioVersion: version }));
    expect(extProc(m).metadata_options).toEqual({ receiving_namespaces: { untyped: ['envoy.lb'] }, forwarding_namespaces: { untyped: ['envoy.lb'] } });
    expect(overrideHost(m)).not.toHaveProperty('selected_host_key');
  });

  test.each(['1.30', '1.31'])('Istio %s: override_host writes the served endpoint into envoy.lb (Istio\'s own cluster_builder.go @ 1.30.0 does the same)', (version) => {
    const m = synthProps(withOverrides(DEMO, { istioVersion: version }));
    expect(overrideHost(m).selected_host_key).toEqual({ key: 'envoy.lb', path: [{ key: 'x-gateway-destination-endpoint-served' }] });
    expect(extProc(m).metadata_options).toMatchObject({ forwarding_namespaces: { untyped: ['envoy.lb'] } });
    const patch = all(m, 'EnvoyFilter').flatMap((f) => f.spec.configPatches).find((p: Patch) => p.applyTo === 'CLUSTER');
    expect(check(patch)).toEqual([]);
  });
});
