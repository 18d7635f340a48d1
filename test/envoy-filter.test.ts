import { checkEnvoyConfig } from '@kvroute/testkit';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import { CLUSTERS } from '../lib/clusters';
import { Manifest, one, synthProfile } from './support/manifests';

// The HTTP filter and route messages are not needed by the EPP itself; load their files for this check.
const api = loadEnvoyApi([
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/config/route/v3/route_components.proto',
]);

/** The Envoy message an EnvoyFilter patch value is, by what it applies to. */
const MESSAGE_FOR: Record<string, string> = {
  HTTP_FILTER: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  CLUSTER: 'envoy.config.cluster.v3.Cluster',
  HTTP_ROUTE: 'envoy.config.route.v3.Route',
};

type Patch = { applyTo: string; patch: { operation: string; value: unknown } };

function check(p: Patch): string[] {
  const type = MESSAGE_FOR[p.applyTo];
  if (!type) return [`no Envoy message known for applyTo ${p.applyTo}`];
  // A MERGE value is a partial message merged into what Istio generated; presence rules apply to the result.
  return checkEnvoyConfig(api.root, type, p.patch.value, { mergePatch: p.patch.operation === 'MERGE' });
}

describe.each(CLUSTERS.map((c) => [c.name, synthProfile(c)] as const))('cluster %s: EnvoyFilter decoded with Envoy\'s protos', (_name, m) => {
  const filter: Manifest = one(m, 'EnvoyFilter');
  const patches: [string, Patch][] = filter.spec.configPatches.map((p: Patch) => [`${p.applyTo} ${p.patch.operation}`, p]);
  test.each(patches)('%s is a valid Envoy config', (_id, patch) => {
    expect(check(patch)).toEqual([]);
  });

  test('every @type resolves to a message of the loaded API', () => {
    const urls = JSON.stringify(filter.spec.configPatches).match(/type\.googleapis\.com\/[A-Za-z0-9_.]+/g) ?? [];
    expect(urls.length).toBeGreaterThanOrEqual(4);
    for (const url of urls) expect({ url, found: api.lookupTypeByUrl(url) !== undefined }).toEqual({ url, found: true });
  });
});

describe('the check rejects what Envoy would reject', () => {
  const demoFilter = one(synthProfile(CLUSTERS[0]), 'EnvoyFilter');
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
    (p.patch.value as { typed_config: { processing_mode: Record<string, string> } }).typed_config.processing_mode.request_trailer_mode = 'SKIP';
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
