/**
 * EndpointPickerConfigs shipped in llm-d-router v0.10.0 (llm-d/llm-d-router, tag v0.10.0) that no other test loads,
 * each verbatim with its file cited, run through the loader and scheduler builder `--config-file`/`--config-text` use.
 */
import { featureGateEnabled, parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';

/**
 * cmd/epp/runner/feature_gate_test.go @ v0.10.0: the configs TestHAPopulateNonLeaderDatastoreFeatureGate and
 * TestFlowControlFeatureGateAdmissionControlWiring give `opts.ConfigText`, verbatim. None has a `plugins` section, and
 * upstream loads each (`parseConfigurationPhaseOne` and `parseConfigurationPhaseTwo`: require.NoError): Go's json leaves
 * `Plugins` nil and the loader's defaults fill in a `default` profile with a max-score-picker and the single profile
 * handler (pkg/epp/config/loader/defaults.go ensureSchedulingLayer).
 */
const FEATURE_GATE_TEST_CONFIGS: readonly (readonly [name: string, yaml: string, flowControl: boolean, haPopulate: boolean])[] = [
  ['disabled via config', `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates:
- haPopulateNonLeaderDatastore=false
`, false, false],
  ['no featureGates stanza follows the registered default', `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
`, false, true],
  ['flowControl gate enabled wires the flow control admission controller', `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates:
- flowControl
`, true, true],
  ['flowControl=false restores the legacy admission controller', `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates:
- flowControl=false
`, false, true],
];

describe('cmd/epp/runner/feature_gate_test.go @ llm-d-router v0.10.0: configs without a plugins section', () => {
  test.each(FEATURE_GATE_TEST_CONFIGS)('"%s" loads, its gates as upstream reads them, and schedules with the defaults', (_name, yaml, flowControl, haPopulate) => {
    const config = parseEndpointPickerConfig(yaml);
    expect(featureGateEnabled(config, 'flowControl')).toBe(flowControl);
    expect(featureGateEnabled(config, 'haPopulateNonLeaderDatastore')).toBe(haPopulate);
    // What upstream's ensureSchedulingLayer makes of no plugins: one profile, picker only, the single handler.
    expect(config.schedulingProfiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'max-score-picker' }] }]);
    expect(config.plugins.map((p) => p.type)).toEqual(expect.arrayContaining(['max-score-picker', 'single-profile-handler']));
    // The same config as one writing `plugins: []`.
    const withEmptyList = parseEndpointPickerConfig(yaml.replace('kind: EndpointPickerConfig\n', 'kind: EndpointPickerConfig\nplugins: []\n'));
    expect(renderEndpointPickerConfig(config)).toBe(renderEndpointPickerConfig(withEmptyList));
    expect(() => buildScheduler(config)).not.toThrow();
  });

  test('a profile without a plugins list gets the picker too (apix/config/v1alpha1 SchedulingProfile.Plugins is a plain json list)', () => {
    const config = parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: default\n');
    expect(config.schedulingProfiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'max-score-picker' }] }]);
  });
});
