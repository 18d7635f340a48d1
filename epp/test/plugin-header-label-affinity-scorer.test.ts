/**
 * `header-label-affinity-scorer`, mirroring llm-d-router v0.10.0
 * pkg/epp/framework/plugins/scheduling/scorer/headerlabelaffinity/ (plugin.go Factory and Score; README.md's
 * configuration example), registered there by cmd/epp/runner/runner.go registerInTreePlugins.
 */
import { parseEndpointPickerConfig, resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { HeaderLabelAffinityScorer } from '../src/scheduling/plugins/header-label-affinity-scorer';

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const README_EXAMPLE = `${LLMD}plugins:
- type: header-label-affinity-scorer
  name: slice-affinity
  parameters:
    headerName: x-disagg-slice
    labelKey: disaggregatedset.x-k8s.io/slice
- type: header-label-affinity-scorer
  name: zone-affinity
  parameters:
    headerName: x-preferred-zone
    labelKey: topology.kubernetes.io/zone
- type: weighted-random-picker
  name: picker
schedulingProfiles:
- name: decode
  plugins:
  - pluginRef: slice-affinity
    weight: 3
  - pluginRef: zone-affinity
    weight: 1
  - pluginRef: picker
`;

function pod(name: string, labels: Record<string, string>): EndpointSnapshot {
  return { endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels }, metrics: { ...EMPTY_METRICS, updateTime: 1 }, activeRequests: 0 };
}

describe('header-label-affinity-scorer (llm-d-router v0.10.0 scorer/headerlabelaffinity/plugin.go)', () => {
  const scheduler = buildScheduler(parseEndpointPickerConfig(README_EXAMPLE));
  const slice = scheduler.plugin('slice-affinity') as HeaderLabelAffinityScorer;
  const pods = [pod('s0', { 'disaggregatedset.x-k8s.io/slice': '0' }), pod('s1', { 'disaggregatedset.x-k8s.io/slice': '1' }), pod('none', {})];
  const cycle = (headers: Record<string, string>) => ({ request: { requestId: 'r', model: 'm', prompt: '', headers }, state: new CycleState() });

  test('README.md example loads', () => {
    expect(slice.type).toBe('header-label-affinity-scorer');
  });

  test('1 where the label equals the header, 0 elsewhere; 0 everywhere without the header or with an empty one', () => {
    expect(slice.score(cycle({ 'x-disagg-slice': '1' }), pods)).toEqual([0, 1, 0]);
    expect(slice.score(cycle({}), pods)).toEqual([0, 0, 0]);
    expect(slice.score(cycle({ 'x-disagg-slice': '' }), pods)).toEqual([0, 0, 0]);
  });

  test('the configured header name is lower-cased, as request header names are', () => {
    const mixed = buildScheduler(parseEndpointPickerConfig(README_EXAMPLE.replace('headerName: x-disagg-slice', 'headerName: X-Disagg-Slice')));
    expect((mixed.plugin('slice-affinity') as HeaderLabelAffinityScorer).score(cycle({ 'x-disagg-slice': '0' }), pods)).toEqual([1, 0, 0]);
  });

  test('the weighted picks follow the header', () => {
    for (let i = 0; i < 5; i++) {
      const result = scheduler.schedule({ requestId: `r${i}`, model: 'm', prompt: 'p', headers: { 'x-disagg-slice': '1' }, attributes: new CycleState() }, pods);
      expect(result.target.endpoint.name).toBe('s1');
    }
  });

  // plugin.go Factory's checks and messages (llm-d-router v0.10.0); no parameters reach the factory as a nil decoder
  // (plugin/registry.go StrictDecoder); `parameters:` written empty (null) is the RawMessage `null`, a decoder, as `{}`.
  test.each<[string, unknown, string]>([
    ['no parameters', undefined, 'p: header-label-affinity-scorer requires parameters'],
    ['null parameters', null, 'p.headerName: header-label-affinity-scorer headerName is required'],
    ['empty parameters', {}, 'p.headerName: header-label-affinity-scorer headerName is required'],
    ['no headerName', { labelKey: 'k' }, 'p.headerName: header-label-affinity-scorer headerName is required'],
    ['an empty labelKey', { headerName: 'h', labelKey: '' }, 'p.labelKey: header-label-affinity-scorer labelKey is required'],
    ['an unknown key (upstream decodes strictly)', { headerName: 'h', labelKey: 'k', header: 'x' }, 'p.header'],
  ])('%s is refused', (_what, raw, message) => {
    expect(() => resolvePluginParameters('header-label-affinity-scorer', raw, 'p')).toThrow(message);
  });
});
