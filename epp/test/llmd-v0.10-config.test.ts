/**
 * llm-d-router v0.10.0's EndpointPickerConfig (apix/config/v1alpha1, pkg/epp/config/loader @ v0.10.0): what its
 * loader accepts, kvroute's loader accepts too, with the same meaning where kvroute has one.
 */
import {
  ConfigError,
  endpointPickerConfigNotes,
  featureGateEnabled,
  parseEndpointPickerConfig,
  renderEndpointPickerConfig,
} from '../src/config';

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const GIE = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';

function configErrorOf(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('apiVersion (llm-d-router v0.10.0 apix/config/v1alpha1/zz_generated.register.go, pkg/epp/config/loader/configloader.go)', () => {
  test('llm-d.ai/v1alpha1 loads, keeps its group when rendered, and carries no deprecation note', () => {
    const config = parseEndpointPickerConfig(`${LLMD}plugins:\n- type: queue-scorer\n`);
    expect(config.apiVersion).toBe('llm-d.ai/v1alpha1');
    expect(endpointPickerConfigNotes(config)).toEqual([]);
    const rendered = renderEndpointPickerConfig(config);
    expect(rendered).toMatch(/^apiVersion: llm-d.ai\/v1alpha1$/m);
    expect(parseEndpointPickerConfig(rendered)).toEqual(config);
  });

  test('GIE\'s inference.networking.x-k8s.io/v1alpha1 still loads, with upstream\'s DEPRECATION note naming the replacement', () => {
    const config = parseEndpointPickerConfig(`${GIE}plugins:\n- type: queue-scorer\n`);
    expect(config.apiVersion).toBe('inference.networking.x-k8s.io/v1alpha1');
    expect(endpointPickerConfigNotes(config)).toEqual([
      'DEPRECATION: apiVersion inference.networking.x-k8s.io/v1alpha1/EndpointPickerConfig is deprecated (llm-d-router v0.10.0); replacement: llm-d.ai/v1alpha1/EndpointPickerConfig',
    ]);
  });

  test.each([
    ['another group', 'apiVersion: llm-d.ai/v1beta1\n', '"llm-d.ai/v1beta1"'],
    ['none', '', 'nothing'],
  ])('a wrong apiVersion (%s) names both allowed values', (_case, line, got) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(`${line}kind: EndpointPickerConfig\nplugins: []\n`)))
      .toBe(`apiVersion: must be "llm-d.ai/v1alpha1" or "inference.networking.x-k8s.io/v1alpha1", got ${got}`);
  });
});

describe('featureGates (llm-d-router v0.10.0 pkg/epp/config/loader/validation.go validateFeatureGates, configloader.go loadFeatureConfig, cmd/epp/runner/runner.go L752-753)', () => {
  const gates = (list: string) => `${LLMD}plugins: []\nfeatureGates: [${list}]\n`;

  test('name, name=true and name=false load and are kept as written; the registered gates flowControl and haPopulateNonLeaderDatastore are known', () => {
    const config = parseEndpointPickerConfig(gates('flowControl=true, haPopulateNonLeaderDatastore=false'));
    expect(config.featureGates).toEqual(['flowControl=true', 'haPopulateNonLeaderDatastore=false']);
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config)).featureGates).toEqual(config.featureGates);
  });

  test('a gate\'s value: upstream\'s registered default, then each entry in order, a bare name meaning true and ParseBool\'s spellings after lower-casing', () => {
    const on = (list: string | undefined, gate: 'flowControl' | 'haPopulateNonLeaderDatastore') =>
      featureGateEnabled(parseEndpointPickerConfig(list === undefined ? `${LLMD}plugins: []\n` : gates(list)), gate);
    expect(on(undefined, 'flowControl')).toBe(false);
    expect(on(undefined, 'haPopulateNonLeaderDatastore')).toBe(true);
    expect(on('flowControl', 'flowControl')).toBe(true);
    expect(on('flowControl=false', 'flowControl')).toBe(false);
    expect(on('flowControl=TRUE', 'flowControl')).toBe(true);
    expect(on('"flowControl= 1 "', 'flowControl')).toBe(true);
    expect(on('flowControl, flowControl=F', 'flowControl')).toBe(false);
    expect(on('haPopulateNonLeaderDatastore=false', 'haPopulateNonLeaderDatastore')).toBe(false);
  });

  test('GIE v1.5.0\'s dataLayer and enableLegacyMetrics, which llm-d-router v0.10.0 no longer registers, still load', () => {
    expect(parseEndpointPickerConfig(gates('dataLayer, enableLegacyMetrics=false')).featureGates).toEqual(['dataLayer', 'enableLegacyMetrics=false']);
  });

  test.each([
    ['an unknown name', 'prepareDataPlugins=true', 'featureGates[0]: unknown feature gate "prepareDataPlugins"; known: flowControl, dataLayer, enableLegacyMetrics, haPopulateNonLeaderDatastore'],
    ['a value ParseBool refuses', 'flowControl=yes', 'featureGates[0]: "yes" is not a valid value for the feature gate flowControl; write flowControl, flowControl=true or flowControl=false'],
    ['an empty value', '"flowControl="', 'featureGates[0]: "" is not a valid value for the feature gate flowControl; write flowControl, flowControl=true or flowControl=false'],
  ])('%s is an error naming the entry', (_case, list, message) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(gates(list)))).toBe(message);
  });
});
